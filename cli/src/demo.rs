//! `med8k demo`: the main job on built-in defaults.
//!
//! Samples (generated when missing) go through the pipeline: the recorded 8K
//! clip is captured through GStreamer, coded losslessly by the wavelet codec
//! (on a GPU when there is one) and checked bit for bit, packed to `v210` as
//! an SDI playout card takes it, and handed to a GStreamer sink; the
//! reference anomaly detector (built into the binary) analyses the newest
//! frame it can (frames analysed, skipped and flagged are in the report,
//! beside the labels' count of anomalous frames); each 7-band cube is read
//! back. Then the pilot's consent path on a demo PKI (SoftHSM2 tokens made
//! next to the samples on first run): the patient signs consent on their
//! token, the ledger permits a Medical Doctor and refuses a Pharmacist, and
//! the audit log is verified.
//! A summary goes to stdout and a JSON report to `--report`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};
use med8k_capture::{SinkOptions, SourceOptions};
use med8k_detect::contract::Contract;
use med8k_detect::model::Model;
use med8k_media::frame::VideoFrame;
use med8k_media::spectral::envi;
use med8k_pipeline::detect::DetectStage;
use med8k_pipeline::encode::{Backend, EncodeStage};
use med8k_pipeline::{
    BoxError, Ending, Pipeline, PipelineReport, Shutdown, SinkStage, Stage, V210Pack,
};
use med8k_samples::SampleSet;
use serde::Serialize;

use crate::samples::{GenerateArgs, generate_with_progress};
use crate::{Outcome, on_ctrl_c, report};

/// Options of `med8k demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// Sample set to use; generated there when it has none.
    #[command(flatten)]
    pub samples: GenerateArgs,
    /// GStreamer sink for the monitor output (try `videoconvert ! autovideosink`).
    #[arg(long, default_value = "fakesink")]
    pub sink: String,
    /// Where to write the JSON report.
    #[arg(long, default_value = "med8k-demo-report.json")]
    pub report: PathBuf,
    /// Code one frame in N [default: 1 on a GPU; on the CPU twin, enough
    /// for about 10 frames, since two cores cannot code 8K at 60 frames/s].
    #[arg(long)]
    pub encode_every: Option<u64>,
    /// Anomaly detection model (an ONNX file with its sidecar .json beside
    /// it) [default: the reference endoscope model built into med8k].
    #[arg(long)]
    pub model: Option<PathBuf>,
}

/// The reference endoscope model (a small convolutional autoencoder trained
/// here) and its contract, built in so the demo needs no file beside the
/// binary (`models/endoscope-cae/`).
const REFERENCE_MODEL: &[u8] =
    include_bytes!("../../models/endoscope-cae/med8k-endoscope-cae.onnx");
const REFERENCE_CONTRACT: &str =
    include_str!("../../models/endoscope-cae/med8k-endoscope-cae.json");

fn detector(path: Option<&std::path::Path>) -> anyhow::Result<Model> {
    Ok(match path {
        Some(p) => Model::load(p)?,
        None => {
            let at = std::path::Path::new("models/endoscope-cae/med8k-endoscope-cae.onnx");
            let contract = Contract::parse(REFERENCE_CONTRACT, at)?;
            Model::from_bytes(REFERENCE_MODEL, contract, at)?
        }
    })
}

#[derive(Debug, Serialize)]
struct CubeReport {
    name: String,
    width: usize,
    height: usize,
    bands: Vec<f32>,
    mean_reflectance: Vec<f64>,
    read_mb_per_s: f64,
}

#[derive(Debug, Serialize)]
struct DemoReport {
    samples: PathBuf,
    seed: u64,
    width: u32,
    height: u32,
    frames_expected: u32,
    anomalous_frames: usize,
    pipeline: PipelineReport,
    cubes: Vec<CubeReport>,
    consent: ConsentRound,
    /// The remote-pathology loop: consent to cut lines.
    desk: Option<crate::demo_desk::DeskRound>,
}

/// What the consent round of the demo came to.
#[derive(Debug, Serialize)]
struct ConsentRound {
    /// The demo PKI (tokens on SoftHSM2), the ledger and the audit log.
    pki: PathBuf,
    /// The Medical Doctor at jp.hospital-b was permitted.
    doctor_permitted: bool,
    /// The Pharmacist was refused.
    pharmacist_refused: bool,
    /// Entries in the audit log, verified.
    audit_entries: u64,
    /// The patient's pseudonym (never printed).
    #[serde(skip)]
    patient: String,
}

/// The pilot's consent path on the demo PKI (made next to the samples on
/// first run): the patient signs consent on their SoftHSM2 token for
/// jp.hospital-b, then the ledger decides for a Medical Doctor (permit) and
/// a Pharmacist (refused), every step in the audit log, which is verified.
/// The demo PKI's folder beside the samples.
pub(crate) const DEMO_PKI: &str = "pki-v2";

fn consent_round(samples: &std::path::Path) -> anyhow::Result<ConsentRound> {
    // `pki-v2`: demo PKIs and ledgers made before the HPKI sub-CA carried
    // its policies and the ledger its schema 2 are left alone.
    let pki = samples.join(DEMO_PKI);
    let dir = pki.to_string_lossy().into_owned();
    if !pki.join(med8k_auth::pkifile::FILE).exists() {
        crate::run_args(&["pki", "demo-init", "--out", &dir])?;
    }
    let ledger = pki.join("consent.sqlite").to_string_lossy().into_owned();
    let audit = pki.join("audit.jsonl").to_string_lossy().into_owned();
    crate::run_args(&[
        "consent",
        "grant",
        "--pki",
        &dir,
        "--ledger",
        &ledger,
        "--audit",
        &audit,
        "--patient-token",
        "med8k-patient",
        "--grantee",
        "jp.hospital-b",
        "--purpose",
        "remote-consultation",
        "--category",
        "endoscope-video",
        "--category",
        "pathology-images",
        "--scope",
        "register,disclose",
        "--days",
        "30",
    ])?;
    let cert = pki.join("certs/med8k-patient-sign.pem");
    let pem = std::fs::read(&cert).with_context(|| format!("reading {}", cert.display()))?;
    let der = med8k_auth::cert::pem_blocks(&pem, "CERTIFICATE")?
        .into_iter()
        .next()
        .with_context(|| format!("{} holds no certificate", cert.display()))?;
    let patient = med8k_auth::consent::PatientId::from_signing_cert(&der);
    let check = |who: &str| {
        let cert = pki.join(format!("certs/{who}-auth.pem"));
        crate::run_args(&[
            "consent",
            "check",
            "--pki",
            &dir,
            "--ledger",
            &ledger,
            "--audit",
            &audit,
            "--physician-cert",
            &cert.to_string_lossy(),
            "--facility",
            "jp.hospital-b",
            "--patient",
            patient.as_str(),
            "--category",
            "endoscope-video",
            "--purpose",
            "remote-consultation",
        ])
    };
    let doctor_permitted = check("med8k-physician")? == Outcome::Done;
    let pharmacist_refused = check("med8k-pharmacist")? == Outcome::Denied;
    let audit_entries = med8k_auth::audit::verify(&audit)?.entries;
    println!("audit log {audit}: {audit_entries} entries, chain verified");
    Ok(ConsentRound {
        pki,
        doctor_permitted,
        pharmacist_refused,
        audit_entries,
        patient: patient.as_str().to_owned(),
    })
}

pub fn demo(args: &DemoArgs) -> anyhow::Result<Outcome> {
    let opts = args.samples.options();
    // First, while this process has no other thread: the demo PKI sets
    // SoftHSM2's configuration in the environment.
    let consent = consent_round(&opts.out)?;
    let set = match med8k_samples::open(&opts.out) {
        Ok(set) => set,
        Err(med8k_samples::SampleError::Manifest { .. }) => generate_with_progress(&opts)?,
        Err(e) => return Err(e.into()),
    };
    let labels = set.labels()?;
    let shutdown = Shutdown::new();
    on_ctrl_c(&shutdown)?;

    let (encoder, place) = Backend::Auto.encoder(&med8k_codec::Config::lossless())?;
    let every = args.encode_every.unwrap_or(if place.starts_with("gpu") {
        1
    } else {
        u64::from(set.manifest.frames / 10).max(1)
    });
    println!("codec: lossless wavelet on {place}, one frame in {every}, each decoded and checked");
    let mut encode = EncodeStage::new(encoder, None, true)?.every(every);
    let model = detector(args.model.as_deref())?;
    println!(
        "detector: {} {} (latest frame wins)",
        model.contract().name,
        model.contract().version
    );
    // The monitor shows the detector's marks; on a GPU the model input is
    // made next to compression.
    let detect = DetectStage::new(&model, None)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .draw(true);
    if let Some(tap) = detect.input_tap() {
        encode = encode.input_tap(tap);
    }
    let pipeline = capture_pipeline(&set, encode, detect, &args.sink)?;
    let result = pipeline
        .run(&shutdown)
        .context("running the demo pipeline")?;
    if result.ending == Ending::EndOfStream
        && result.source.frames_out != u64::from(set.manifest.frames)
    {
        bail!(
            "{}: captured {} frames, the manifest lists {}",
            set.clip().display(),
            result.source.frames_out,
            set.manifest.frames
        );
    }
    report::print(&result);

    let mut cubes = Vec::new();
    for path in set.cubes() {
        if shutdown.is_requested() {
            break;
        }
        cubes.push(read_cube(&path)?);
    }
    for c in &cubes {
        let means: Vec<String> = c
            .mean_reflectance
            .iter()
            .map(|m| format!("{m:.3}"))
            .collect();
        println!(
            "cube {:<10} {}x{} x{} bands, read {:.0} MB/s, mean reflectance [{}]",
            c.name,
            c.width,
            c.height,
            c.bands.len(),
            c.read_mb_per_s,
            means.join(" ")
        );
    }

    // The remote pathologist's loop on the first cube: consent to cut lines.
    let desk = match set.cubes().into_iter().next() {
        Some(cube) if !shutdown.is_requested() => Some(crate::demo_desk::desk_round(
            &opts.out,
            &cube,
            &consent.patient,
        )?),
        _ => None,
    };
    if let Some(d) = &desk
        && !d.stored
    {
        bail!(
            "the pathologist's instructions were not stored: {}",
            d.outcome
        );
    }

    let demo = DemoReport {
        samples: set.dir.clone(),
        seed: set.manifest.seed,
        width: set.manifest.size.width,
        height: set.manifest.size.height,
        frames_expected: set.manifest.frames,
        anomalous_frames: labels.frames.iter().filter(|f| f.anomalous).count(),
        pipeline: result,
        cubes,
        consent,
        desk,
    };
    std::fs::write(&args.report, serde_json::to_vec_pretty(&demo)?)
        .with_context(|| format!("writing {}", args.report.display()))?;
    println!("report: {}", args.report.display());
    Ok(if demo.pipeline.ending == Ending::Shutdown {
        Outcome::Interrupted
    } else {
        Outcome::Done
    })
}

fn capture_pipeline(
    set: &SampleSet,
    encode: EncodeStage,
    detect: DetectStage,
    sink: &str,
) -> anyhow::Result<Pipeline> {
    let source = set.open_clip(SourceOptions::default().id("endoscope"))?;
    let output = SinkOptions::default()
        .framerate(med8k_samples::FPS as i32, 1)
        .open(sink)?;
    Ok(Pipeline::new(source)
        .stage(encode)
        .stage(detect)
        .stage(V210Pack)
        .stage(ProgressStage::new(u64::from(set.manifest.frames)))
        .stage(SinkStage::new(output, Duration::from_secs(60))))
}

fn read_cube(path: &std::path::Path) -> anyhow::Result<CubeReport> {
    let started = Instant::now();
    let cube = envi::read(path)?;
    let seconds = started.elapsed().as_secs_f64();
    let scale = f64::from(cube.reflectance_scale.unwrap_or(65535.0));
    let pixels = (cube.width() * cube.height()) as f64;
    let mean_reflectance = cube
        .data()
        .outer_iter()
        .map(|band| band.iter().map(|&v| f64::from(v)).sum::<f64>() / pixels / scale)
        .collect();
    Ok(CubeReport {
        name: path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
        width: cube.width(),
        height: cube.height(),
        bands: cube.bands().iter().map(|b| b.center_nm).collect(),
        mean_reflectance,
        read_mb_per_s: cube.data().len() as f64 * 2.0 / 1e6 / seconds.max(1e-9),
    })
}

/// Passes frames on and moves a progress bar.
struct ProgressStage(ProgressBar);

impl ProgressStage {
    fn new(total: u64) -> Self {
        let style = ProgressStyle::with_template("   capture [{bar:40}] {pos}/{len} {per_sec}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        ProgressStage(ProgressBar::new(total).with_style(style))
    }
}

impl Stage for ProgressStage {
    fn name(&self) -> &str {
        "progress"
    }

    fn process(&mut self, frame: VideoFrame) -> Result<Option<VideoFrame>, BoxError> {
        self.0.inc(1);
        Ok(Some(frame))
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.0.finish_and_clear();
        Ok(())
    }
}
