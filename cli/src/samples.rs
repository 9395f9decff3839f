//! `med8k samples generate` and `med8k samples dataset`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use med8k_samples::anomalies::{self, Kind};
use med8k_samples::dataset::{DatasetOptions, Seeds};
use med8k_samples::real::Region;
use med8k_samples::{GenerateOptions, Progress, SampleSet, Size};

use crate::Outcome;

/// Options of `med8k samples generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Output directory [default: $MED8K_SAMPLES, or the user's cache: ~/.cache/med8k/samples].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Frames in the endoscope clip (60 per second).
    #[arg(long, default_value_t = med8k_samples::DEFAULT_FRAMES)]
    pub frames: u32,
    /// Frame and cube size: 8k, 4k, 1080p or WIDTHxHEIGHT.
    #[arg(long, default_value = "8k")]
    pub size: Size,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = med8k_samples::DEFAULT_SEED)]
    pub seed: u64,
}

impl GenerateArgs {
    pub fn options(&self) -> GenerateOptions {
        GenerateOptions::new()
            .out(self.out.clone().unwrap_or_else(med8k_samples::default_dir))
            .frames(self.frames)
            .size(self.size)
            .seed(self.seed)
    }
}

pub fn generate(args: &GenerateArgs) -> anyhow::Result<Outcome> {
    let set = generate_with_progress(&args.options())?;
    println!("samples in {}", set.dir.display());
    Ok(Outcome::Done)
}

/// Generate with progress bars on stderr (hidden when it is not a terminal).
pub fn generate_with_progress(opts: &GenerateOptions) -> anyhow::Result<SampleSet> {
    let started = Instant::now();
    tracing::info!(
        dir = %opts.out.display(),
        width = opts.size.width,
        height = opts.size.height,
        frames = opts.frames,
        seed = opts.seed,
        "generating samples"
    );
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}<{eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut bar: Option<(String, ProgressBar)> = None;
    let mut on_progress = |p: Progress<'_>| {
        if bar.as_ref().is_none_or(|(task, _)| task != p.task) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = ProgressBar::new(p.total)
                .with_style(style.clone())
                .with_message(p.task.to_owned());
            bar = Some((p.task.to_owned(), b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(p.done);
        }
    };
    let set = med8k_samples::generate(opts, &mut on_progress)
        .with_context(|| format!("generating samples in {}", opts.out.display()))?;
    if let Some((_, b)) = bar.take() {
        b.finish();
    }
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "samples ready");
    Ok(set)
}

/// Options of `med8k samples dataset`.
#[derive(Debug, Clone, clap::Args)]
pub struct DatasetArgs {
    /// Output directory (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// Seeds: `A..B` (B excluded) or `A..=B`.
    #[arg(long)]
    pub seeds: Seeds,
    /// Frames per seed.
    #[arg(long, default_value_t = 60)]
    pub frames: u32,
    /// Take every STEP-th frame of the seed's clip (frames 0, STEP, 2·STEP, ...).
    #[arg(long, default_value_t = 1)]
    pub step: u32,
    /// Rendered frame size (and cube size): WIDTHxHEIGHT, 8k, 4k or 1080p;
    /// frames are then area-averaged to the model's 256x144.
    #[arg(long, default_value = "1024x576")]
    pub size: Size,
    /// Also write cube tiles and masks of the sample cubes of each seed.
    #[arg(long)]
    pub cubes: bool,
    /// Cube tile side, in pixels.
    #[arg(long, default_value_t = 256)]
    pub tile: usize,
    /// Skip the endoscope frames (cubes only).
    #[arg(long)]
    pub no_frames: bool,
    /// Also write N crops of each real-image fixture (`real_inputs.npy`).
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub real: usize,
    /// Which rows of the fixtures the crops come from: `fit` (top 60 %),
    /// `eval` (the rest), or the fit rows' halves for design checks:
    /// `dev-fit` (top 30 %) and `dev-check` (30-60 %).
    #[arg(long, default_value = "fit", value_parser = parse_region)]
    pub real_region: Region,
    /// Paint these anomaly kinds into every normal frame and crop
    /// (`altered_inputs.npy`): `all`, `held-out`, `dev` or names with commas.
    #[arg(long, value_parser = parse_kind_list)]
    pub kinds: Option<KindList>,
}

/// Anomaly kinds named on the command line.
#[derive(Debug, Clone)]
pub struct KindList(pub Vec<Kind>);

/// `all`, `held-out`, `dev` or names separated by commas.
pub fn parse_kind_list(s: &str) -> Result<KindList, String> {
    anomalies::parse_kinds(s).map(KindList)
}

fn parse_region(s: &str) -> Result<Region, String> {
    match s {
        "fit" => Ok(Region::Fit),
        "eval" => Ok(Region::Eval),
        "dev-fit" => Ok(Region::DevFit),
        "dev-check" => Ok(Region::DevCheck),
        _ => Err(format!(
            "`{s}` is not a region (fit, eval, dev-fit or dev-check)"
        )),
    }
}

pub fn dataset(args: &DatasetArgs) -> anyhow::Result<Outcome> {
    let started = Instant::now();
    let options = DatasetOptions {
        out: args.out.clone(),
        seeds: args.seeds.clone(),
        frames: args.frames,
        step: args.step,
        size: args.size,
        cubes: args.cubes,
        tile: args.tile,
        no_frames: args.no_frames,
        real: args.real,
        real_region: args.real_region,
        kinds: args.kinds.clone().map(|k| k.0).unwrap_or_default(),
    };
    let summary = med8k_samples::dataset::write(&options, &mut |line| eprintln!("{line}"))?;
    println!(
        "dataset in {}: {} frames, {} cube tiles ({:.1} s)",
        args.out.display(),
        summary.frames,
        summary.tiles,
        started.elapsed().as_secs_f64()
    );
    Ok(Outcome::Done)
}
