//! `med8k bench`: the product run the way a hospital uses it, on recorded
//! samples, with every figure on one page.
//!
//! Four scenarios, each a [`Scenario`] of named [`Figure`]s:
//!
//! - **surgeon** ([`surgeon`]): the clip replayed as a live 60 fps camera,
//!   a code stamped in each frame's pixels at capture, the detector (latest
//!   frame wins) drawing its overlay, a GStreamer monitor sink, and the code
//!   read back after the sink's last element: capture → glass latency on
//!   one clock;
//! - **remote-monitor**: the clip through the codec at the budget of each
//!   link class, decoded, PSNR and SSIM, with the peers' lossless figures;
//!   the thin links' AV1 against x265, SVT-AV1 and rav1e ([`thin`]); and
//!   the frames across a med8k link through the impairment relay per class,
//!   decoded at the far end (`over_link`, measured by
//!   `med8k_link::bench::frames`);
//! - **pathology**: each 7-band cube through the lossless codec, bit-exact
//!   or not, against OpenJPH, FFV1 and JPEG-LS where installed; then across
//!   the link, into a real PACS (Orthanc, started here) and back, to the
//!   viewer's first screen and whole image (`pathology_link`, measured by
//!   `med8k_link::bench::pathology`);
//! - **detection**: the model against the clip's labels (AUROC, false
//!   alarms per minute on its normal frames) and its analysis rate, tract
//!   against onnxruntime where installed, and AUROC per anomaly kind
//!   ([`crate::heldout`]).
//!
//! A [`Report`] serialises to the JSON that `--json` writes and `--compare`
//! reads; [`html::render`] makes the self-contained HTML page and
//! [`compare::compare`] the percent changes against an older report.
//!
//! ```no_run
//! use med8k_benches::harness::{HarnessOptions, run};
//! # fn main() -> anyhow::Result<()> {
//! let report = run(&HarnessOptions::quick(), &mut |line| eprintln!("{line}"))?;
//! std::fs::write("report.html", med8k_benches::harness::html::render(&report, None)?)?;
//! # Ok(()) }
//! ```

pub mod compare;
pub mod html;
pub mod machine;
mod over_link;
mod pathology_link;
mod scenarios;
pub mod surgeon;
pub mod thin;
mod usage;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use serde::{Deserialize, Serialize};

pub use machine::Machine;
pub use usage::Usage;

/// Version of the report's JSON shape; `--compare` refuses another.
pub const REPORT_VERSION: u32 = 1;

/// Which way a figure improves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Better {
    /// More is better (frames/s, ratio, PSNR, AUROC).
    Higher,
    /// Less is better (latency, drops, CPU time, memory).
    Lower,
    /// Neither: a count or a setting, shown but never marked.
    None,
}

/// One measured value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    /// What it is, unique within its scenario (`glass p99`).
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`ms`, `fps`, `dB`, `MiB`), empty for a ratio.
    pub unit: String,
    /// Which way is better.
    pub better: Better,
}

impl Figure {
    /// A figure.
    pub fn new(name: impl Into<String>, value: f64, unit: &str, better: Better) -> Self {
        Figure {
            name: name.into(),
            value,
            unit: unit.to_owned(),
            better,
        }
    }
}

/// One stage's latency since capture and rate, for the per-stage chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageFigures {
    /// Stage name as the pipeline reports it.
    pub name: String,
    /// Frames out per second.
    pub fps: f64,
    /// Capture → leaving this stage, median, ms.
    pub p50_ms: f64,
    /// Capture → leaving this stage, 99th percentile, ms.
    pub p99_ms: f64,
    /// Capture → leaving this stage, largest, ms.
    pub max_ms: f64,
    /// Frames the stage dropped.
    pub dropped: u64,
}

/// A codec measurement (ours or a peer's) for the ratio-versus-speed chart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodecPoint {
    /// Which input (`endoscope.mkv#0`).
    pub input: String,
    /// Codec and backend (`med8k-wavelet/cpu`, `ffmpeg-ffv1`).
    pub codec: String,
    /// `lossless` or a rate.
    pub mode: String,
    /// Uncompressed over compressed size.
    pub ratio: f64,
    /// Bits per pixel.
    pub bpp: f64,
    /// Encode speed, Mpx/s.
    pub encode_mpx_s: f64,
    /// Decode speed, Mpx/s.
    pub decode_mpx_s: Option<f64>,
    /// PSNR when lossy, dB.
    pub psnr_db: Option<f64>,
    /// SSIM when lossy.
    pub ssim: Option<f64>,
    /// Decoded to the input exactly.
    pub exact: bool,
    /// med8k on a GPU: the GPU's time per frame to encode (lossless), ms.
    #[serde(default)]
    pub gpu_encode_ms: Option<f64>,
    /// med8k on a GPU: the GPU's time per frame to decode, ms.
    #[serde(default)]
    pub gpu_decode_ms: Option<f64>,
}

/// What one scenario measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// `surgeon`, `remote-monitor`, `pathology` or `detection`.
    pub name: String,
    /// What ran, in one line.
    pub what: String,
    /// The figures.
    pub figures: Vec<Figure>,
    /// Per-stage latency since capture (pipelines only).
    pub stages: Vec<StageFigures>,
    /// Capture → glass latency of each frame read back, (seq, ms), in order.
    pub series: Vec<(u64, f64)>,
    /// Codec measurements, ours and the peers'.
    pub codecs: Vec<CodecPoint>,
    /// The commands peers ran, and what was not measured and why.
    pub notes: Vec<String>,
}

impl Scenario {
    fn new(name: &str, what: impl Into<String>) -> Self {
        Scenario {
            name: name.to_owned(),
            what: what.into(),
            figures: Vec::new(),
            stages: Vec::new(),
            series: Vec::new(),
            codecs: Vec::new(),
            notes: Vec::new(),
        }
    }

    fn figure(&mut self, name: impl Into<String>, value: f64, unit: &str, better: Better) {
        self.figures.push(Figure::new(name, value, unit, better));
    }

    fn usage(&mut self, usage: &Usage, frames: u64) {
        if frames > 0 {
            self.figure(
                "CPU time per frame",
                usage.cpu_ms / frames as f64,
                "ms",
                Better::Lower,
            );
        }
        if let Some(peak) = usage.peak_mib {
            self.figure("peak memory", peak, "MiB", Better::Lower);
        }
    }
}

/// The inputs a report measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Inputs {
    /// The clip.
    pub clip: PathBuf,
    /// The cubes.
    pub cubes: Vec<PathBuf>,
    /// The sample set's SHA-256 of the clip when the inputs are recorded samples.
    pub clip_sha256: Option<String>,
}

/// A whole `med8k bench` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// [`REPORT_VERSION`].
    pub version: u32,
    /// med8k's version.
    pub med8k: String,
    /// Whether this was a `--quick` run (small sizes, few frames).
    pub quick: bool,
    /// Unix time the run started.
    pub started_unix: u64,
    /// Seconds the whole run took.
    pub seconds: f64,
    /// The machine.
    pub machine: Machine,
    /// The inputs.
    pub inputs: Inputs,
    /// The scenarios, in the order they ran.
    pub scenarios: Vec<Scenario>,
    /// Why the run ended before its last scenario (stopped with Ctrl-C);
    /// `None` for a whole run.
    #[serde(default)]
    pub stopped: Option<String>,
}

impl Report {
    /// Read a report written by `--json`.
    pub fn load(path: &Path) -> anyhow::Result<Report> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let report: Report = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a med8k bench report", path.display()))?;
        anyhow::ensure!(
            report.version == REPORT_VERSION,
            "{} is a version {} report; this med8k reads version {REPORT_VERSION}",
            path.display(),
            report.version
        );
        Ok(report)
    }
}

/// Which scenario names exist, in run order.
pub const SCENARIOS: [&str; 4] = ["surgeon", "remote-monitor", "pathology", "detection"];

/// What `med8k bench` runs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HarnessOptions {
    /// Recorded samples (a `med8k samples generate` directory); `None` with
    /// `quick` generates small ones in a temporary directory.
    pub samples: Option<PathBuf>,
    /// The user's clip instead of the samples' clip.
    pub clip: Option<PathBuf>,
    /// The user's cubes instead of the samples' cubes.
    pub cubes: Vec<PathBuf>,
    /// The detector model (ONNX with its JSON contract beside it).
    pub model: Option<PathBuf>,
    /// Small sizes and few frames.
    pub quick: bool,
    /// Frames the surgeon's camera delivers (replayed in a loop).
    pub surgeon_frames: u64,
    /// Frames each codec measurement takes from the clip.
    pub codec_frames: u64,
    /// Scenarios to run (all when empty).
    pub only: Vec<String>,
    /// Leave out the peers.
    pub no_peers: bool,
    /// The user's clip is raw frames of this layout (`WxH:v210`, as an SDI
    /// card delivers them); the surgeon's camera then replays them packed
    /// and the engine unpacks them first.
    pub raw: Option<med8k_media::imageio::RawSpec>,
}

impl HarnessOptions {
    /// The full run on the recorded samples in [`med8k_samples::default_dir`].
    pub fn full() -> Self {
        HarnessOptions {
            samples: Some(med8k_samples::default_dir()),
            clip: None,
            cubes: Vec::new(),
            model: None,
            quick: false,
            surgeon_frames: 240,
            codec_frames: 2,
            only: Vec::new(),
            no_peers: false,
            raw: None,
        }
    }

    /// The `--quick` run: samples generated at 384×216, few frames.
    pub fn quick() -> Self {
        HarnessOptions {
            samples: None,
            quick: true,
            surgeon_frames: 60,
            codec_frames: 1,
            ..Self::full()
        }
    }

    fn wants(&self, scenario: &str) -> bool {
        self.only.is_empty() || self.only.iter().any(|s| s == scenario)
    }
}

/// The size and length of the samples `--quick` generates.
pub const QUICK_SIZE: med8k_samples::Size = med8k_samples::Size {
    width: 384,
    height: 216,
};
/// Frames in the `--quick` clip.
pub const QUICK_FRAMES: u32 = 24;

/// The default detector model, found beside the binary's source tree or in
/// `MED8K_MODELS`: the reference endoscope model, with its tissue and
/// image-quality alarms (the colour-statistics baseline misses most kinds).
fn default_model() -> Option<PathBuf> {
    let dir = std::env::var_os("MED8K_MODELS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models")));
    let path = dir.join("endoscope-patch/med8k-endoscope-patch.onnx");
    path.exists().then_some(path)
}

/// What a run tells its caller while it goes, and how it is stopped.
#[allow(missing_debug_implementations)] // closures
pub struct Hooks<'a> {
    /// One line per step.
    pub progress: &'a mut dyn FnMut(&str),
    /// The report so far, after each scenario (write it out: a run stopped
    /// or killed later keeps these figures).
    pub scenario_done: &'a mut dyn FnMut(&Report),
    /// Whether to stop before the next scenario.
    pub stop: &'a dyn Fn() -> bool,
}

/// Run the scenarios; `progress` hears one line per step.
pub fn run(options: &HarnessOptions, progress: &mut dyn FnMut(&str)) -> anyhow::Result<Report> {
    run_with(
        options,
        Hooks {
            progress,
            scenario_done: &mut |_| {},
            stop: &|| false,
        },
    )
}

/// [`run`], telling `hooks` of each scenario done and stopping when asked
/// (between scenarios: the report then says so in [`Report::stopped`]).
pub fn run_with(options: &HarnessOptions, hooks: Hooks<'_>) -> anyhow::Result<Report> {
    let Hooks {
        progress,
        scenario_done,
        stop,
    } = hooks;
    for name in &options.only {
        anyhow::ensure!(
            SCENARIOS.contains(&name.as_str()),
            "unknown scenario {name:?} (one of {})",
            SCENARIOS.join(", ")
        );
    }
    let started = Instant::now();
    let started_unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let scratch = tempfile::tempdir()?;
    let samples_dir = match &options.samples {
        Some(dir) => dir.clone(),
        None => {
            progress(&format!(
                "generating samples {}x{}, {QUICK_FRAMES} frames, seed 7",
                QUICK_SIZE.width, QUICK_SIZE.height
            ));
            let dir = scratch.path().join("samples");
            let opts = med8k_samples::GenerateOptions::new()
                .out(&dir)
                .size(QUICK_SIZE)
                .frames(QUICK_FRAMES)
                .seed(7);
            med8k_samples::generate(&opts, &mut |_| {})?;
            dir
        }
    };
    // The samples are opened only for what a scenario run takes from them.
    let needs_samples = (options.clip.is_none()
        && (options.wants("surgeon") || options.wants("remote-monitor")))
        || (options.cubes.is_empty() && options.wants("pathology"))
        || options.wants("detection");
    let set = if needs_samples {
        Some(med8k_samples::open(&samples_dir).with_context(|| {
            format!(
                "no recorded samples in {} (run `med8k samples generate`, or name --clip and --cube)",
                samples_dir.display()
            )
        })?)
    } else {
        None
    };
    let clip = match (&options.clip, &set) {
        (Some(c), _) => c.clone(),
        (None, Some(s)) => s.clip(),
        // No scenario run reads a clip.
        (None, None) => PathBuf::new(),
    };
    let cubes = match (&options.cubes.is_empty(), &set) {
        (false, _) | (true, None) => options.cubes.clone(),
        (true, Some(s)) => s.cubes(),
    };
    let clip_sha256 = match (&options.clip, &set) {
        (None, Some(s)) => s.manifest.sha256.get(med8k_samples::CLIP).cloned(),
        _ => None,
    };
    let model = options.model.clone().or_else(default_model);
    progress("naming the machine");
    let machine = machine::describe();
    let mut report = Report {
        version: REPORT_VERSION,
        med8k: env!("CARGO_PKG_VERSION").to_owned(),
        quick: options.quick,
        started_unix,
        seconds: 0.0,
        machine,
        inputs: Inputs {
            clip: clip.clone(),
            cubes: cubes.clone(),
            clip_sha256,
        },
        scenarios: Vec::new(),
        stopped: None,
    };
    for name in SCENARIOS {
        if !options.wants(name) {
            continue;
        }
        if stop() {
            report.stopped = Some(format!("stopped (Ctrl-C) before {name}"));
            progress(&format!("stopped before {name}"));
            break;
        }
        let scenario = match name {
            "surgeon" => {
                progress("surgeon: replaying the clip as a 60 fps camera");
                let sample_frames = match (&options.clip, &set) {
                    (None, Some(s)) => Some(s.manifest.frames.into()),
                    _ => None,
                };
                Some(surgeon::run(
                    &clip,
                    sample_frames,
                    model.as_deref(),
                    options,
                    progress,
                )?)
            }
            "remote-monitor" => {
                progress("remote-monitor: the clip at each link class's budget");
                Some(scenarios::remote_monitor(&clip, options, progress)?)
            }
            "pathology" if !cubes.is_empty() => {
                progress("pathology: 7-band cubes, lossless");
                Some(scenarios::pathology(&cubes, options, progress)?)
            }
            "detection" => match (&model, &set) {
                (Some(m), Some(s)) => {
                    progress("detection: accuracy and analysis rate on the clip");
                    Some(scenarios::detection(m, &s.dir, options)?)
                }
                _ => {
                    progress("detection: skipped (no model, or no labelled samples)");
                    None
                }
            },
            _ => None,
        };
        if let Some(s) = scenario {
            report.scenarios.push(s);
            report.seconds = started.elapsed().as_secs_f64();
            scenario_done(&report);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}
