//! The detector against the sample set's labels (`med8k eval detect`):
//! AUROC at image, pixel and tile level, items per second through the whole
//! path, and the bare model in tract against onnxruntime on one thread each.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, bail};
use med8k_capture::SourceOptions;
use med8k_detect::contract::InputSource;
use med8k_detect::input;
use med8k_detect::metrics::auroc;
use med8k_detect::model::{Model, Runner};
use med8k_detect::profile::{NodeTime, OpTime};
use med8k_detect::run::{percentile, run_frames};
use med8k_media::imageio;
use med8k_samples::SampleSet;
use serde::Serialize;

/// What [`eval_detect`] scores.
#[derive(Debug, Clone)]
pub struct EvalDetectOptions {
    /// The ONNX model; its contract `NAME.json` must be beside it.
    pub model: PathBuf,
    /// The sample set directory (`med8k samples generate`).
    pub samples: PathBuf,
    /// Timed runs of the bare model for the tract / onnxruntime comparison.
    pub bench_iters: u32,
    /// Threads of each runtime in that comparison (tract's matrix products,
    /// onnxruntime's intra-op threads).
    pub threads: usize,
}

/// tract against onnxruntime on the bare model, same input, same threads.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct OrtComparison {
    /// "done" or why it was skipped.
    pub status: String,
    pub threads: u32,
    pub iterations: u32,
    pub tract_frames_per_s: f64,
    pub ort_frames_per_s: Option<f64>,
    pub tract_over_ort: Option<f64>,
    pub ort_version: Option<String>,
    /// tract's op profile on the same input: milliseconds per run by operator,
    /// slowest first (`Runner::profile`; timing each node adds a little).
    pub tract_profile_ms: f64,
    pub tract_ops: Vec<OpTime>,
    /// The same by node, slowest first.
    pub tract_nodes: Vec<NodeTime>,
}

/// A model scored against a sample set's labels, and timed.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct EvalReport {
    pub model: String,
    pub version: String,
    pub samples: PathBuf,
    pub items: usize,
    pub anomalous_labels: usize,
    pub image_auroc: Option<f64>,
    pub pixel_auroc: Option<f64>,
    pub tile_auroc: Option<f64>,
    pub frames_per_s: f64,
    pub latency_ms_p50: f64,
    pub latency_ms_p99: f64,
    /// Alarms on the clip's frames labelled normal, at the contract's
    /// operating thresholds (`None` for cubes).
    pub normal_alarms: Option<NormalAlarms>,
    pub onnxruntime: OrtComparison,
}

/// Alarms (tissue score or quality over its threshold) on frames labelled
/// normal, as a viewer of the clip at 60 frames/s would see them.
#[derive(Debug, Clone, Serialize)]
pub struct NormalAlarms {
    /// Frames labelled normal.
    pub normal_frames: usize,
    /// Of them, frames that raised an alarm.
    pub alarmed_frames: usize,
    /// Runs of consecutive alarmed normal frames (an anomalous frame ends a run).
    pub episodes: usize,
    /// Alarmed frames per minute of normal video at 60 frames/s.
    pub frames_per_minute: f64,
    /// Episodes per minute of normal video at 60 frames/s.
    pub episodes_per_minute: f64,
}

impl NormalAlarms {
    /// From each frame's (labelled anomalous, alarmed), in clip order.
    pub fn of(frames: &[(bool, bool)]) -> NormalAlarms {
        let (mut normal, mut alarmed, mut episodes, mut previous) = (0, 0, 0, false);
        for &(anomalous, alarm) in frames {
            if anomalous {
                previous = false;
                continue;
            }
            normal += 1;
            alarmed += usize::from(alarm);
            episodes += usize::from(alarm && !previous);
            previous = alarm;
        }
        let minutes = normal as f64 / f64::from(med8k_samples::FPS) / 60.0;
        let per_minute = |n: usize| {
            if minutes > 0.0 {
                n as f64 / minutes
            } else {
                0.0
            }
        };
        NormalAlarms {
            normal_frames: normal,
            alarmed_frames: alarmed,
            episodes,
            frames_per_minute: per_minute(alarmed),
            episodes_per_minute: per_minute(episodes),
        }
    }
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

/// Scores `options.model` on the sample set: image and pixel AUROC for a
/// frame model, tile AUROC for a cube model; speed through the whole path,
/// and the bare model in tract against onnxruntime.
pub fn eval_detect(args: &EvalDetectOptions) -> anyhow::Result<EvalReport> {
    let model = Model::load(&args.model)?;
    let set = med8k_samples::open(&args.samples)?;
    let contract = model.contract().clone();
    let mut runner = model.runner()?;
    match contract.input.source {
        InputSource::FrameYcbcr => eval_frames(&mut runner, &set, args),
        InputSource::CubeBands => eval_cubes(&mut runner, &set, args),
        other => bail!("model input source {other:?} is not supported by this med8k"),
    }
}

fn eval_frames(
    runner: &mut Runner,
    set: &SampleSet,
    args: &EvalDetectOptions,
) -> anyhow::Result<EvalReport> {
    let labels = set.labels()?;
    let contract = runner.model().contract().clone();
    let mut pixel_scores = Vec::new();
    let mut pixel_labels = Vec::new();
    let mut frame_labels = Vec::new();
    let mut source = set.open_clip(SourceOptions::default().id("eval"))?;
    let mut failed = None;
    let run = run_frames(runner, source.frames(), None, |d, _| {
        if failed.is_some() {
            return;
        }
        let mut score = || -> anyhow::Result<()> {
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
        };
        failed = score().err();
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    let detections = &run.detections;
    if detections.len() != labels.frames.len() {
        bail!(
            "{}: read {} frames, labels.json lists {}",
            set.clip().display(),
            detections.len(),
            labels.frames.len()
        );
    }
    let scores: Vec<f32> = detections.iter().map(|d| d.score).collect();
    // Each detection with its own frame's label (detections are in clip order).
    let alarms: Vec<(bool, bool)> = detections
        .iter()
        .map(|d| {
            let anomalous = labels
                .frames
                .get(d.seq as usize)
                .is_some_and(|l| l.anomalous);
            (anomalous, d.anomalous || d.quality_alarm)
        })
        .collect();
    Ok(EvalReport {
        model: contract.name.clone(),
        version: contract.version.clone(),
        samples: set.dir.clone(),
        items: detections.len(),
        anomalous_labels: frame_labels.iter().filter(|&&l| l).count(),
        image_auroc: auroc(&scores, &frame_labels),
        pixel_auroc: auroc(&pixel_scores, &pixel_labels),
        tile_auroc: None,
        frames_per_s: run.frames_per_s(),
        latency_ms_p50: run.latency_ms(0.5),
        latency_ms_p99: run.latency_ms(0.99),
        normal_alarms: Some(NormalAlarms::of(&alarms)),
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
    args: &EvalDetectOptions,
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
        let cube = med8k_media::spectral::envi::read(header)?;
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
        normal_alarms: None,
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
/// onnxruntime, `args.threads` threads each.
fn compare_ort(runner: &mut Runner, args: &EvalDetectOptions) -> anyhow::Result<OrtComparison> {
    let contract = runner.model().contract().clone();
    let shape = &contract.input.shape;
    let n: usize = shape.iter().product();
    let iterations = args.bench_iters.max(1);
    let threads = args.threads.max(1);
    runner.set_threads(threads);
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
    let profile = runner.profile(&input, iterations as usize)?;
    runner.set_threads(1);
    let mut out = OrtComparison {
        tract_profile_ms: profile.ms_per_run,
        tract_ops: profile.ops,
        tract_nodes: profile.nodes,
        status: String::new(),
        threads: threads as u32,
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
        .args(["--shape", &shape_arg.join(",")])
        .args(["--threads", &threads.to_string()])
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
