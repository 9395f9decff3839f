//! `med8k detect` (a model over a clip or a cube) and `med8k eval detect`
//! (a model against a sample set's labels, and against onnxruntime; the
//! scoring is `med8k_benches::detect`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use med8k_benches::detect::{EvalDetectOptions, eval_detect as eval_detect_report};
use med8k_benches::heldout::{HeldoutOptions, eval_heldout, print_heldout};
use med8k_detect::contract::InputSource;
use med8k_detect::model::{Detection, Model};
use med8k_detect::run::run_frames;
use med8k_media::spectral::envi;
use med8k_pipeline::input::{Input, InputSpec};
use serde::Serialize;

use crate::Outcome;

/// Options of `med8k detect`.
#[derive(Debug, Clone, clap::Args)]
pub struct DetectArgs {
    /// The ONNX model; its contract `NAME.json` must be beside it.
    #[arg(long)]
    pub model: PathBuf,
    /// A clip (a sample set's clip or directory, or any clip GStreamer
    /// reads) for a frame model; an ENVI `.hdr` cube for a cube model.
    #[arg(long = "in")]
    pub input: String,
    /// Write an overlay PNG here for every frame that is anomalous or has boxes.
    #[arg(long)]
    pub overlay: Option<PathBuf>,
    /// Print JSON on stdout instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Options of `med8k eval detect`.
#[derive(Debug, Clone, clap::Args)]
pub struct EvalDetectArgs {
    /// The ONNX model; its contract `NAME.json` must be beside it.
    #[arg(long)]
    pub model: PathBuf,
    /// The sample set directory (`med8k samples generate`).
    #[arg(long, required_unless_present = "heldout")]
    pub samples: Option<PathBuf>,
    /// Instead: the held-out evaluation (anomaly kinds no model was fitted on,
    /// on generator frames and real fixture crops; false alarms per minute).
    #[arg(long, conflicts_with = "samples")]
    pub heldout: bool,
    /// Held-out: generator seeds, `A..B` or `A..=B` (none used in fitting).
    #[arg(long, default_value = "5000..5008", requires = "heldout")]
    pub seeds: med8k_samples::dataset::Seeds,
    /// Held-out: anomaly kinds, `held-out`, `dev`, `all` or names with commas.
    #[arg(long, default_value = "held-out", requires = "heldout",
          value_parser = crate::samples::parse_kind_list)]
    pub kinds: crate::samples::KindList,
    /// Held-out: crops of each real fixture's evaluation rows.
    #[arg(long, default_value_t = 40, requires = "heldout")]
    pub real: usize,
    /// Held-out: seconds of contiguous normal video for false alarms per minute.
    #[arg(long, default_value_t = 30, requires = "heldout")]
    pub video_seconds: u32,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Timed runs of the bare model for the tract / onnxruntime comparison.
    #[arg(long, default_value_t = 30)]
    pub bench_iters: u32,
    /// Threads of tract and of onnxruntime in that comparison.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub threads: u16,
}

#[derive(Debug, Serialize)]
struct DetectReport {
    model: String,
    version: String,
    input: String,
    analysed: usize,
    anomalous: usize,
    frames_per_s: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    detections: Vec<Detection>,
}

fn load(path: &Path) -> anyhow::Result<Model> {
    use med8k_detect::model::ModelError;
    Model::load(path).map_err(|e| match e {
        // The other errors name the file themselves.
        ModelError::Contract(_) => {
            anyhow::Error::new(e).context(format!("model {}", path.display()))
        }
        e => e.into(),
    })
}

fn is_cube(input: &str) -> bool {
    Path::new(input)
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("hdr"))
}

pub fn detect(args: &DetectArgs) -> anyhow::Result<Outcome> {
    let model = load(&args.model)?;
    let mut runner = model.runner()?;
    if let Some(dir) = &args.overlay {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let contract = model.contract().clone();
    let (detections, latency, frames_per_s) = match contract.input.source {
        InputSource::CubeBands => {
            if !is_cube(&args.input) {
                bail!(
                    "{} is a cube model; --in must be an ENVI .hdr cube, not {}",
                    args.model.display(),
                    args.input
                );
            }
            let cube = envi::read(Path::new(&args.input))?;
            let t0 = Instant::now();
            let d = runner.detect_cube(&cube)?;
            let seconds = t0.elapsed().as_secs_f64();
            let per_tile = 1000.0 * seconds / d.tiles.len().max(1) as f64;
            if !args.json {
                println!(
                    "cube {}x{}: {} tiles of {}x{}",
                    d.width,
                    d.height,
                    d.tiles.len(),
                    contract.input.width(),
                    contract.input.height()
                );
            }
            let dets: Vec<Detection> = d.tiles.into_iter().map(|t| t.detection).collect();
            let fps = dets.len() as f64 / seconds.max(1e-9);
            (dets, vec![per_tile, per_tile], fps)
        }
        InputSource::FrameYcbcr => {
            if is_cube(&args.input) {
                bail!(
                    "{} is a frame model; --in must be a clip, not the cube {}",
                    args.model.display(),
                    args.input
                );
            }
            let json = args.json;
            let mut source = InputSpec::parse(&args.input, None)
                .open("detect")
                .and_then(Input::into_source)
                .with_context(|| format!("opening {}", args.input))?;
            let run = run_frames(
                &mut runner,
                source.frames(),
                args.overlay.as_deref(),
                |d, _| {
                    if !json {
                        println!("{}", line(d));
                    }
                },
            )?;
            let (fps, p50, p99) = (
                run.frames_per_s(),
                run.latency_ms(0.5),
                run.latency_ms(0.99),
            );
            (run.detections, vec![p50, p99], fps)
        }
        other => bail!("model input source {other:?} is not supported by this med8k"),
    };
    let report = DetectReport {
        model: contract.name.clone(),
        version: contract.version.clone(),
        input: args.input.clone(),
        analysed: detections.len(),
        anomalous: detections.iter().filter(|d| d.anomalous).count(),
        frames_per_s,
        latency_ms_p50: latency[0],
        latency_ms_p99: latency[1],
        detections,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if contract.input.source == InputSource::CubeBands {
            for d in &report.detections {
                println!("tile {}", line(d).trim_start_matches("frame "));
            }
        }
        println!(
            "{} {}: {} analysed, {} anomalous, {:.1}/s, latency p50 {:.2} ms p99 {:.2} ms",
            report.model,
            report.version,
            report.analysed,
            report.anomalous,
            report.frames_per_s,
            report.latency_ms_p50,
            report.latency_ms_p99
        );
    }
    Ok(Outcome::Done)
}

fn line(d: &Detection) -> String {
    let boxes: Vec<String> = d
        .boxes
        .iter()
        .map(|b| format!("{}x{}+{}+{}", b.width, b.height, b.x, b.y))
        .collect();
    format!(
        "frame {:>5}: score {:.4}{}{}",
        d.seq,
        d.score,
        if d.anomalous { " ANOMALOUS" } else { "" },
        if boxes.is_empty() {
            String::new()
        } else {
            format!(" boxes {}", boxes.join(" "))
        }
    )
}

pub fn eval_detect(args: &EvalDetectArgs) -> anyhow::Result<Outcome> {
    let Some(samples) = args.samples.clone() else {
        let mut options = HeldoutOptions::new(args.model.clone());
        options.seeds = args.seeds.0.clone();
        options.kinds = args.kinds.0.clone();
        options.real = args.real;
        options.video_seconds = args.video_seconds;
        let report = eval_heldout(&options, &mut |line| eprintln!("{line}"))?;
        print_heldout(&report);
        if let Some(path) = &args.json {
            std::fs::write(path, serde_json::to_vec_pretty(&report)?)
                .with_context(|| format!("writing {}", path.display()))?;
        }
        return Ok(Outcome::Done);
    };
    let report = eval_detect_report(&EvalDetectOptions {
        model: args.model.clone(),
        samples,
        bench_iters: args.bench_iters,
        threads: usize::from(args.threads),
    })?;
    let show = |v: Option<f64>| v.map_or("n/a".to_owned(), |v| format!("{v:.4}"));
    println!(
        "{} {} on {}: {} items ({} anomalous)",
        report.model,
        report.version,
        report.samples.display(),
        report.items,
        report.anomalous_labels
    );
    println!(
        "AUROC image {}  pixel {}  tile {}",
        show(report.image_auroc),
        show(report.pixel_auroc),
        show(report.tile_auroc)
    );
    println!(
        "tract: {:.1} items/s, latency p50 {:.2} ms p99 {:.2} ms",
        report.frames_per_s, report.latency_ms_p50, report.latency_ms_p99
    );
    let o = &report.onnxruntime;
    match (o.ort_frames_per_s, o.tract_over_ort) {
        (Some(ort), Some(ratio)) => println!(
            "bare model, {} thread(s), {} runs: tract {:.1}/s, onnxruntime {} {:.1}/s, tract/ort {:.2}",
            o.threads,
            o.iterations,
            o.tract_frames_per_s,
            o.ort_version.as_deref().unwrap_or("?"),
            ort,
            ratio
        ),
        _ => println!(
            "bare model: tract {:.1}/s; onnxruntime comparison skipped: {}",
            o.tract_frames_per_s, o.status
        ),
    }
    let ops: Vec<String> = o
        .tract_ops
        .iter()
        .take(6)
        .map(|t| format!("{} x{} {:.2} ms", t.op, t.nodes, t.ms))
        .collect();
    println!(
        "tract op profile ({:.2} ms a run): {}",
        o.tract_profile_ms,
        ops.join(", ")
    );
    let nodes: Vec<String> = o
        .tract_nodes
        .iter()
        .take(8)
        .map(|t| format!("{} ({}) {:.2} ms", t.name, t.op, t.ms))
        .collect();
    println!("tract's slowest nodes: {}", nodes.join(", "));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Outcome::Done)
}
