//! `med8k detect` (a model over a clip or a cube) and `med8k eval detect`
//! (a model against a sample set's labels, and against onnxruntime).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use med8k_engine::detect::contract::InputSource;
use med8k_engine::detect::input;
use med8k_engine::detect::metrics::auroc;
use med8k_engine::detect::model::{Detection, Model, Runner};
use med8k_engine::detect::overlay;
use med8k_engine::detect::stage::OVERLAY_MAX_WIDTH;
use med8k_engine::gst::{GstSource, SourceOptions};
use med8k_engine::imageio;
use med8k_engine::samples::{self, SampleSet};
use med8k_engine::spectral::envi;
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
    pub input: PathBuf,
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
    #[arg(long)]
    pub samples: PathBuf,
    /// Also write the report as JSON here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Timed runs of the bare model for the tract / onnxruntime comparison.
    #[arg(long, default_value_t = 30)]
    pub bench_iters: u32,
}

#[derive(Debug, Serialize)]
struct DetectReport {
    model: String,
    version: String,
    input: PathBuf,
    analysed: usize,
    anomalous: usize,
    frames_per_s: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    detections: Vec<Detection>,
}

fn load(path: &Path) -> anyhow::Result<Model> {
    use med8k_engine::detect::model::ModelError;
    Model::load(path).map_err(|e| match e {
        // The other errors name the file themselves.
        ModelError::Contract(_) => {
            anyhow::Error::new(e).context(format!("model {}", path.display()))
        }
        e => e.into(),
    })
}

/// A clip as frames: a sample set (directory or its clip) through its own
/// reader, anything else through GStreamer's decodebin.
fn open_clip(path: &Path) -> anyhow::Result<GstSource> {
    let options = SourceOptions::default().id("detect");
    if path.is_dir() {
        return Ok(samples::open(path)?.open_clip(options)?);
    }
    let parent = path.parent().unwrap_or(Path::new("."));
    if let Ok(set) = samples::open(parent)
        && set.clip() == parent.join(path.file_name().unwrap_or_default())
    {
        return Ok(set.open_clip(options)?);
    }
    Ok(GstSource::open_clip(path, options)?)
}

fn is_cube(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("hdr"))
}

/// Percentile `q` of sorted values (nearest rank).
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[k]
}

/// Every frame of a clip through the model, in order (a file loses nothing).
fn run_clip(
    runner: &mut Runner,
    path: &Path,
    overlays: Option<&Path>,
    mut each: impl FnMut(&Detection, &med8k_engine::frame::VideoFrame) -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<Detection>, Vec<f64>, f64)> {
    let mut source = open_clip(path).with_context(|| format!("opening {}", path.display()))?;
    let mut detections = Vec::new();
    let mut latencies = Vec::new();
    let started = Instant::now();
    while let Some(frame) = source.next_frame()? {
        let t0 = Instant::now();
        let d = runner
            .detect_frame(&frame)
            .with_context(|| format!("frame {}", frame.seq))?;
        latencies.push(t0.elapsed().as_secs_f64() * 1000.0);
        if let Some(dir) = overlays
            && (d.anomalous || !d.boxes.is_empty())
        {
            overlay::write_png(
                &dir.join(format!("frame_{:06}.png", frame.seq)),
                &frame,
                &d,
                OVERLAY_MAX_WIDTH,
            )?;
        }
        each(&d, &frame)?;
        detections.push(d);
    }
    let seconds = started.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    Ok((detections, latencies, seconds))
}

pub fn detect(args: &DetectArgs) -> anyhow::Result<Outcome> {
    let model = load(&args.model)?;
    let mut runner = model.runner()?;
    if let Some(dir) = &args.overlay {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let contract = model.contract().clone();
    let (detections, latencies, seconds) = match contract.input.source {
        InputSource::CubeBands => {
            if !is_cube(&args.input) {
                bail!(
                    "{} is a cube model; --in must be an ENVI .hdr cube, not {}",
                    args.model.display(),
                    args.input.display()
                );
            }
            let cube = envi::read(&args.input)?;
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
            (dets, vec![per_tile], seconds)
        }
        InputSource::FrameYcbcr => {
            if is_cube(&args.input) {
                bail!(
                    "{} is a frame model; --in must be a clip, not the cube {}",
                    args.model.display(),
                    args.input.display()
                );
            }
            let json = args.json;
            run_clip(&mut runner, &args.input, args.overlay.as_deref(), |d, _| {
                if !json {
                    println!("{}", line(d));
                }
                Ok(())
            })?
        }
        other => bail!("model input source {other:?} is not supported by this med8k"),
    };
    let report = DetectReport {
        model: contract.name.clone(),
        version: contract.version.clone(),
        input: args.input.clone(),
        analysed: detections.len(),
        anomalous: detections.iter().filter(|d| d.anomalous).count(),
        frames_per_s: detections.len() as f64 / seconds.max(1e-9),
        latency_ms_p50: percentile(&latencies, 0.5),
        latency_ms_p99: percentile(&latencies, 0.99),
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

#[derive(Debug, Serialize)]
struct OrtComparison {
    /// "done" or why it was skipped.
    status: String,
    threads: u32,
    iterations: u32,
    tract_frames_per_s: f64,
    ort_frames_per_s: Option<f64>,
    tract_over_ort: Option<f64>,
    ort_version: Option<String>,
}

#[derive(Debug, Serialize)]
struct EvalReport {
    model: String,
    version: String,
    samples: PathBuf,
    items: usize,
    anomalous_labels: usize,
    image_auroc: Option<f64>,
    pixel_auroc: Option<f64>,
    tile_auroc: Option<f64>,
    frames_per_s: f64,
    latency_ms_p50: f64,
    latency_ms_p99: f64,
    onnxruntime: OrtComparison,
}

/// A lesion mask PNG as bytes, non-zero = lesion.
fn read_mask(path: &Path) -> anyhow::Result<(Vec<u8>, usize, usize)> {
    let pic = imageio::read_picture(path, None)?;
    let plane = pic
        .planes()
        .first()
        .with_context(|| format!("{}: no planes", path.display()))?;
    let bytes = plane.iter().map(|&v| u8::from(v != 0)).collect();
    Ok((bytes, pic.width() as usize, pic.height() as usize))
}

pub fn eval_detect(args: &EvalDetectArgs) -> anyhow::Result<Outcome> {
    let model = load(&args.model)?;
    let set = samples::open(&args.samples)?;
    let contract = model.contract().clone();
    let mut runner = model.runner()?;
    let report = match contract.input.source {
        InputSource::FrameYcbcr => eval_frames(&mut runner, &set, args)?,
        InputSource::CubeBands => eval_cubes(&mut runner, &set, args)?,
        other => bail!("model input source {other:?} is not supported by this med8k"),
    };
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
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Outcome::Done)
}

fn eval_frames(
    runner: &mut Runner,
    set: &SampleSet,
    args: &EvalDetectArgs,
) -> anyhow::Result<EvalReport> {
    let labels = set.labels()?;
    let contract = runner.model().contract().clone();
    let mut pixel_scores = Vec::new();
    let mut pixel_labels = Vec::new();
    let mut frame_labels = Vec::new();
    let (detections, latencies, seconds) = run_clip(runner, &set.clip(), None, |d, _| {
        let label = labels
            .frames
            .get(d.seq as usize)
            .with_context(|| format!("frame {} has no label", d.seq))?;
        frame_labels.push(label.anomalous);
        if let Some(map) = &d.map {
            let truth = match &label.mask {
                Some(mask) => {
                    let (bytes, mw, mh) = read_mask(&set.dir.join(mask))?;
                    input::mask_to_map(&bytes, mw, mh, d.map_width, d.map_height)
                }
                None => vec![0.0; map.len()],
            };
            pixel_scores.extend_from_slice(map);
            pixel_labels.extend(truth.iter().map(|&t| t >= 0.5));
        }
        Ok(())
    })?;
    if detections.len() != labels.frames.len() {
        bail!(
            "{}: read {} frames, labels.json lists {}",
            set.clip().display(),
            detections.len(),
            labels.frames.len()
        );
    }
    let scores: Vec<f32> = detections.iter().map(|d| d.score).collect();
    Ok(EvalReport {
        model: contract.name.clone(),
        version: contract.version.clone(),
        samples: set.dir.clone(),
        items: detections.len(),
        anomalous_labels: frame_labels.iter().filter(|&&l| l).count(),
        image_auroc: auroc(&scores, &frame_labels),
        pixel_auroc: auroc(&pixel_scores, &pixel_labels),
        tile_auroc: None,
        frames_per_s: detections.len() as f64 / seconds.max(1e-9),
        latency_ms_p50: percentile(&latencies, 0.5),
        latency_ms_p99: percentile(&latencies, 0.99),
        onnxruntime: compare_ort(runner, args)?,
    })
}

/// Cube masks from `labels.json` (full size, non-zero = anomalous), by cube
/// name; none for sets written before the generator labelled cubes.
fn cube_masks(set: &SampleSet) -> anyhow::Result<Vec<(String, PathBuf)>> {
    Ok(set
        .labels()?
        .cubes
        .into_iter()
        .map(|c| (c.name, set.dir.join(c.mask)))
        .collect())
}

fn eval_cubes(
    runner: &mut Runner,
    set: &SampleSet,
    args: &EvalDetectArgs,
) -> anyhow::Result<EvalReport> {
    let contract = runner.model().contract().clone();
    let masks = cube_masks(set)?;
    let (tw, th) = (contract.input.width(), contract.input.height());
    let mut tile_scores = Vec::new();
    let mut tile_labels = Vec::new();
    let mut pixel_scores = Vec::new();
    let mut pixel_labels = Vec::new();
    let mut latencies = Vec::new();
    let mut tiles = 0usize;
    let mut seconds = 0.0;
    for (i, header) in set.cubes().iter().enumerate() {
        let cube = envi::read(header)?;
        let t0 = Instant::now();
        let d = runner.detect_cube(&cube)?;
        let s = t0.elapsed().as_secs_f64();
        seconds += s;
        tiles += d.tiles.len();
        latencies.push(1000.0 * s / d.tiles.len().max(1) as f64);
        let name = &set.manifest.cubes[i].name;
        let Some((_, mask)) = masks.iter().find(|(n, _)| n == name) else {
            continue;
        };
        let (bytes, mw, mh) = read_mask(mask)?;
        let truth = input::mask_to_map(&bytes, mw, mh, d.width, d.height);
        if let Some(map) = &d.map {
            pixel_scores.extend_from_slice(map);
            pixel_labels.extend(truth.iter().map(|&t| t >= 0.5));
        }
        for t in &d.tiles {
            let any = (t.y..(t.y + th).min(d.height))
                .any(|y| (t.x..(t.x + tw).min(d.width)).any(|x| truth[y * d.width + x] >= 0.5));
            tile_scores.push(t.detection.score);
            tile_labels.push(any);
        }
    }
    latencies.sort_by(f64::total_cmp);
    Ok(EvalReport {
        model: contract.name.clone(),
        version: contract.version.clone(),
        samples: set.dir.clone(),
        items: tiles,
        anomalous_labels: tile_labels.iter().filter(|&&l| l).count(),
        image_auroc: None,
        pixel_auroc: auroc(&pixel_scores, &pixel_labels),
        tile_auroc: auroc(&tile_scores, &tile_labels),
        frames_per_s: tiles as f64 / f64::max(seconds, 1e-9),
        latency_ms_p50: percentile(&latencies, 0.5),
        latency_ms_p99: percentile(&latencies, 0.99),
        onnxruntime: compare_ort(runner, args)?,
    })
}

/// `models/ort_bench.py`: `$MED8K_ORT_BENCH`, else beside the current
/// directory's `models/`, else the source tree's.
fn ort_bench_script() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MED8K_ORT_BENCH") {
        return Some(PathBuf::from(p));
    }
    [
        PathBuf::from("models/ort_bench.py"),
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/ort_bench.py"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

/// The bare model on the same input shape with tract and (when it imports)
/// onnxruntime, one thread each.
fn compare_ort(runner: &mut Runner, args: &EvalDetectArgs) -> anyhow::Result<OrtComparison> {
    let contract = runner.model().contract().clone();
    let shape = &contract.input.shape;
    let n: usize = shape.iter().product();
    let iterations = args.bench_iters.max(1);
    // The same kind of input as the script's: deterministic values in [0, 1).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let input: Vec<f32> = (0..n)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect();
    runner.run_tensor(0, input.clone(), (1, 1))?;
    let t0 = Instant::now();
    for i in 0..iterations {
        runner.run_tensor(u64::from(i), input.clone(), (1, 1))?;
    }
    let tract_fps = f64::from(iterations) / t0.elapsed().as_secs_f64().max(1e-9);
    let mut out = OrtComparison {
        status: String::new(),
        threads: 1,
        iterations,
        tract_frames_per_s: tract_fps,
        ort_frames_per_s: None,
        tract_over_ort: None,
        ort_version: None,
    };
    let python_has_ort = Command::new("python3")
        .args(["-c", "import onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !python_has_ort {
        out.status = "skipped: python3 cannot import onnxruntime".into();
        return Ok(out);
    }
    let Some(script) = ort_bench_script() else {
        out.status = "skipped: models/ort_bench.py not found (set MED8K_ORT_BENCH)".into();
        return Ok(out);
    };
    let shape_arg: Vec<String> = shape.iter().map(usize::to_string).collect();
    let o = Command::new("python3")
        .arg(&script)
        .arg("--model")
        .arg(runner.model().path())
        .args(["--shape", &shape_arg.join(","), "--threads", "1"])
        .args(["--iters", &iterations.to_string()])
        .output()
        .with_context(|| format!("running {}", script.display()))?;
    if !o.status.success() {
        out.status = format!(
            "skipped: {} failed: {}",
            script.display(),
            String::from_utf8_lossy(&o.stderr).trim()
        );
        return Ok(out);
    }
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .with_context(|| format!("{} printed no JSON", script.display()))?;
    let ort = v["frames_per_s"].as_f64().filter(|f| *f > 0.0);
    out.ort_version = v["version"].as_str().map(str::to_owned);
    out.ort_frames_per_s = ort;
    out.tract_over_ort = ort.map(|o| tract_fps / o);
    out.status = if ort.is_some() {
        "done".into()
    } else {
        "skipped: no frames_per_s from the script".into()
    };
    Ok(out)
}
