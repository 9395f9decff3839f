//! `med8k colour render` (a 7-band cube to true colour) and `med8k colour
//! eval` (the 7-band camera against an RGB camera on measured reflectances),
//! over `med8k_colour`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use med8k_colour::eval::{EvalOptions, ReflectanceSet, Reflectances};
use med8k_colour::{BitDepth, CubeRef, Illuminant, OutputSpace, RenderOptions, render};
use med8k_media::spectral::envi;

use crate::Outcome;

/// `med8k colour` subcommands.
#[derive(Debug, Subcommand)]
pub enum ColourCommand {
    /// Render a multispectral cube (ENVI .hdr) to an RGB PNG with its ICC
    /// profile: spectral estimation, illuminant, observer, output space.
    Render(RenderArgs),
    /// Simulate the 7-band camera and an RGB camera on measured reflectances
    /// and print ΔE2000 mean, median, p95 and max for each, per illuminant.
    Eval(EvalArgs),
}

/// `med8k colour render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// The cube: an ENVI header (`.hdr`) beside its data.
    #[arg(long = "in")]
    input: PathBuf,
    /// The picture to write: `.png` or `.tif`, with the output space's ICC
    /// profile.
    #[arg(long)]
    out: PathBuf,
    /// Viewing illuminant: D65, D50, A, FL11 or E.
    #[arg(long, default_value = "D65")]
    illuminant: Illuminant,
    /// Output space: srgb or p3.
    #[arg(long, default_value = "srgb")]
    space: OutputSpace,
    /// 16-bit output instead of 8-bit.
    #[arg(long)]
    sixteen_bit: bool,
}

/// `med8k colour eval`.
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Test reflectances: a CSV (first column wavelength in nm, one column
    /// per sample, values 0-1, covering 400-700 nm) or a built-in set
    /// (colorchecker, colorchecker-babel, cie2017, rawtoaces190); repeat for
    /// several [default: colorchecker and rawtoaces190].
    #[arg(long)]
    spectra: Vec<String>,
    /// Reflectances the Wiener estimator is fitted on (CSV or a built-in
    /// set) [default: cie2017, the 99 CIE 2017 colour-fidelity samples];
    /// keep them apart from the test sets.
    #[arg(long)]
    train: Option<String>,
    /// Illuminants, each both capture and viewing (repeat) [default: D65, D50, A].
    #[arg(long)]
    illuminant: Vec<Illuminant>,
    /// Sensor SNR at white in dB; `none` for noise-free cameras.
    #[arg(long, default_value = "40")]
    noise: String,
    /// Also write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Runs a `med8k colour` subcommand.
pub fn run(command: &ColourCommand) -> anyhow::Result<Outcome> {
    match command {
        ColourCommand::Render(args) => render_cube(args),
        ColourCommand::Eval(args) => eval(args),
    }
}

fn render_cube(args: &RenderArgs) -> anyhow::Result<Outcome> {
    let cube = envi::read(&args.input)?;
    let options = RenderOptions::default()
        .with_illuminant(args.illuminant)
        .with_space(args.space)
        .with_depth(if args.sixteen_bit {
            BitDepth::Sixteen
        } else {
            BitDepth::Eight
        });
    let started = Instant::now();
    let view = CubeRef::from_cube(&cube).with_context(|| args.input.display().to_string())?;
    let image = render(&view, &options).with_context(|| args.input.display().to_string())?;
    let seconds = started.elapsed().as_secs_f64();
    let tiff = args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("tif") || e.eq_ignore_ascii_case("tiff"));
    if tiff {
        med8k_colour::tiff_io::write_tiff_file(&args.out, &image)?;
    } else {
        med8k_colour::png_io::write_png_file(&args.out, &image)?;
    }
    println!(
        "{}x{} {}-band cube -> {} ({}, {}, {}-bit) in {:.2} s",
        cube.width(),
        cube.height(),
        cube.band_count(),
        args.out.display(),
        args.space.name(),
        args.illuminant.name(),
        if args.sixteen_bit { 16 } else { 8 },
        seconds
    );
    Ok(Outcome::Done)
}

/// A reflectance set named on the command line: a built-in one or a CSV file.
fn reflectances(name: &str) -> anyhow::Result<Reflectances> {
    if let Ok(set) = name.parse::<ReflectanceSet>() {
        return Ok(Reflectances::builtin(set));
    }
    Reflectances::from_csv_file(name.as_ref()).with_context(|| format!("reading {name}"))
}

fn eval(args: &EvalArgs) -> anyhow::Result<Outcome> {
    let mut options = EvalOptions::default();
    if let Some(train) = &args.train {
        options = options.with_train(reflectances(train)?);
    }
    if !args.spectra.is_empty() {
        let tests = args
            .spectra
            .iter()
            .map(|s| reflectances(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if tests.iter().any(|t| t.name() == options.train.name()) {
            bail!(
                "the test set {} is also the training set: the estimator would be scored on what it was fitted on",
                options.train.name()
            );
        }
        options = options.with_tests(tests);
    }
    if !args.illuminant.is_empty() {
        options = options.with_illuminants(args.illuminant.clone());
    }
    let snr = match args.noise.as_str() {
        "none" => None,
        db => Some(
            db.parse::<f64>()
                .ok()
                .filter(|v| v.is_finite() && *v > 0.0)
                .with_context(|| format!("--noise {db}: a positive SNR in dB, or none"))?,
        ),
    };
    options = options.with_snr_db(snr);
    let report = med8k_colour::compare_cameras(&options)?;
    println!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Outcome::Done)
}
