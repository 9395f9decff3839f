//! An evaluation that cannot flatter the model (`med8k eval detect --heldout`):
//! anomaly kinds the generator never makes ([`med8k_samples::anomalies`]),
//! painted into normal frames of seeds no model was fitted on and into crops of
//! the real fixtures' evaluation rows ([`med8k_samples::real`]), scored with
//! tract through the model's contract.
//!
//! For each kind: AUROC of the altered inputs against all the untouched normal
//! inputs (generator frames and real crops together), for the tissue score, the
//! quality value, and "either alarm" (each divided by its threshold, the larger
//! taken: what a person sees as one alarm), and the share caught at the
//! operating thresholds. Also: the generator's own lesions (image AUROC on the
//! same seeds' frames) and false alarms per minute over contiguous normal video
//! at 60 frames/s.

use std::ops::Range;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, bail};
use med8k_detect::contract::InputSource;
use med8k_detect::input;
use med8k_detect::metrics::auroc;
use med8k_detect::model::{Detection, Model, Runner};
use med8k_samples::Size;
use med8k_samples::anomalies::{self, Alarm, Kind};
use med8k_samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};
use med8k_samples::real::{self, Region};
use serde::Serialize;

/// What [`eval_heldout`] runs.
#[derive(Debug, Clone)]
pub struct HeldoutOptions {
    /// The model (a `frame-ycbcr` contract).
    pub model: PathBuf,
    /// Generator seeds of the normal and lesion frames (none fitted on).
    pub seeds: Range<u64>,
    /// Frames per seed, every `step`-th.
    pub frames: u32,
    /// Frame step.
    pub step: u32,
    /// Rendered size before area averaging.
    pub size: Size,
    /// Crops of each real fixture's evaluation rows.
    pub real: usize,
    /// Kinds to score.
    pub kinds: Vec<Kind>,
    /// Seconds of contiguous normal video (60 frames/s) for false alarms, 0 for none.
    pub video_seconds: u32,
}

impl HeldoutOptions {
    /// The defaults of `med8k eval detect --heldout`.
    pub fn new(model: PathBuf) -> HeldoutOptions {
        HeldoutOptions {
            model,
            seeds: 5000..5008,
            frames: 24,
            step: 5,
            size: Size {
                width: 1024,
                height: 576,
            },
            real: 40,
            kinds: anomalies::parse_kinds("held-out").unwrap_or_default(),
            video_seconds: 30,
        }
    }
}

/// One kind's figures.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct KindRow {
    pub kind: String,
    pub alarm: Alarm,
    pub held_out: bool,
    pub altered: usize,
    pub tissue_auroc: Option<f64>,
    pub quality_auroc: Option<f64>,
    pub either_auroc: Option<f64>,
    /// Either AUROC on generator frames only, and on real crops only.
    pub either_auroc_generator: Option<f64>,
    pub either_auroc_real: Option<f64>,
    /// Share of altered inputs over either threshold.
    pub caught: f64,
}

/// False alarms over contiguous normal video.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct FalseAlarms {
    pub seconds: f64,
    pub normal_frames: usize,
    /// Normal frames over the tissue threshold, over the quality threshold, over either.
    pub tissue_frames: usize,
    pub quality_frames: usize,
    pub either_frames: usize,
    /// Alarm episodes (a run of consecutive alarmed frames counts once) per minute.
    pub episodes_per_minute: f64,
    pub frames_per_minute: f64,
}

/// The report.
#[derive(Debug, Clone, Serialize)]
#[allow(missing_docs)]
pub struct HeldoutReport {
    pub model: String,
    pub version: String,
    pub seeds: String,
    pub negatives_generator: usize,
    pub negatives_real: usize,
    pub threshold_score: f32,
    pub threshold_quality: Option<f32>,
    pub kinds: Vec<KindRow>,
    /// Either-alarm AUROC of all the scored kinds' altered inputs against the negatives.
    pub overall_either_auroc: Option<f64>,
    /// Same, held-out kinds only.
    pub held_out_either_auroc: Option<f64>,
    pub lesion_frames: usize,
    pub generator_lesions_image_auroc: Option<f64>,
    pub false_alarms: Option<FalseAlarms>,
    pub seconds: f64,
}

/// Scores of one input.
#[derive(Debug, Clone, Copy)]
struct Scored {
    tissue: f32,
    quality: f32,
    either: f32,
    alarm: bool,
}

fn scored(d: &Detection, thr_score: f32, thr_quality: Option<f32>) -> Scored {
    let ratio = |v: f32, t: f32| if t > 0.0 { v / t } else { v - t };
    let quality = d.quality.unwrap_or(f32::NEG_INFINITY);
    let either = match thr_quality {
        Some(tq) if d.quality.is_some() => ratio(d.score, thr_score).max(ratio(quality, tq)),
        _ => ratio(d.score, thr_score),
    };
    Scored {
        tissue: d.score,
        quality,
        either,
        alarm: d.alarm(),
    }
}

fn auc(neg: &[f32], pos: &[f32]) -> Option<f64> {
    let scores: Vec<f32> = neg.iter().chain(pos).copied().collect();
    let labels: Vec<bool> = (0..scores.len()).map(|i| i >= neg.len()).collect();
    auroc(&scores, &labels)
}

/// Run the held-out evaluation; `progress` hears a line per stage.
pub fn eval_heldout(
    args: &HeldoutOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<HeldoutReport> {
    let started = Instant::now();
    let model = Model::load(&args.model)?;
    let c = model.contract().clone();
    if c.input.source != InputSource::FrameYcbcr {
        bail!(
            "--heldout needs a frame-ycbcr model, {} takes {:?}",
            c.name,
            c.input.source
        );
    }
    if args.seeds.is_empty() || args.frames == 0 || args.step == 0 {
        bail!("--heldout needs at least one seed and one frame");
    }
    let (w, h) = (c.input.width(), c.input.height());
    let (thr_s, thr_q) = (c.threshold.score, c.threshold.quality);
    let mut runner = model.runner()?;
    let run = |runner: &mut Runner, t: Vec<f32>| -> anyhow::Result<Scored> {
        let d = runner.run_tensor(0, t, (w, h))?;
        Ok(scored(&d, thr_s, thr_q))
    };

    // Normal and lesion frames of the seeds; real crops of the evaluation rows.
    let mut normal_frames = Vec::new();
    let mut lesion_scores = Vec::new();
    for seed in args.seeds.clone() {
        let scene = EndoscopeScene::new(SceneConfig {
            width: args.size.width,
            height: args.size.height,
            frames: args.frames * args.step,
            seed,
        })?;
        let mut buf = FrameBuffers::new(&scene);
        for k in 0..args.frames {
            let truth = scene.render(k * args.step, &mut buf.planes())?;
            let t = input::ycbcr_tensor(&buf.ycbcr(), w, h)?;
            if truth.anomalous {
                lesion_scores.push(run(&mut runner, t)?.tissue);
            } else {
                normal_frames.push(t);
            }
        }
    }
    let crops = real::crops(Region::Eval, args.real, w, h, args.seeds.start)?;
    progress(&format!(
        "{} normal frames, {} lesion frames, {} real crops ({:.1} s)",
        normal_frames.len(),
        lesion_scores.len(),
        crops.len(),
        started.elapsed().as_secs_f64()
    ));
    let bases: Vec<(bool, &Vec<f32>)> = normal_frames
        .iter()
        .map(|t| (true, t))
        .chain(crops.iter().map(|c| (false, &c.tensor)))
        .collect();
    let mut neg = Vec::new();
    for (_, t) in &bases {
        neg.push(run(&mut runner, (*t).clone())?);
    }
    let gen_neg: Vec<f32> = neg
        .iter()
        .zip(&bases)
        .filter(|(_, b)| b.0)
        .map(|(s, _)| s.either)
        .collect();
    let real_neg: Vec<f32> = neg
        .iter()
        .zip(&bases)
        .filter(|(_, b)| !b.0)
        .map(|(s, _)| s.either)
        .collect();
    let pick = |v: &[Scored], f: fn(&Scored) -> f32| v.iter().map(f).collect::<Vec<f32>>();

    let mut rows = Vec::new();
    let mut all_pos = Vec::new();
    let mut held_pos = Vec::new();
    for &kind in &args.kinds {
        let mut pos = Vec::new();
        let mut on_gen = Vec::new();
        for (i, (generator, t)) in bases.iter().enumerate() {
            let mut t = (*t).clone();
            anomalies::apply(kind, &mut t, w, h, 0x0E7A_1000 + i as u64);
            let s = run(&mut runner, t)?;
            pos.push(s);
            on_gen.push(*generator);
        }
        let either = pick(&pos, |s| s.either);
        let split = |want: bool| -> Vec<f32> {
            either
                .iter()
                .zip(&on_gen)
                .filter(|(_, g)| **g == want)
                .map(|(v, _)| *v)
                .collect()
        };
        let row = KindRow {
            kind: kind.name().to_owned(),
            alarm: kind.alarm(),
            held_out: kind.held_out(),
            altered: pos.len(),
            tissue_auroc: auc(&pick(&neg, |s| s.tissue), &pick(&pos, |s| s.tissue)),
            quality_auroc: thr_q
                .and_then(|_| auc(&pick(&neg, |s| s.quality), &pick(&pos, |s| s.quality))),
            either_auroc: auc(&pick(&neg, |s| s.either), &either),
            either_auroc_generator: auc(&gen_neg, &split(true)),
            either_auroc_real: auc(&real_neg, &split(false)),
            caught: pos.iter().filter(|s| s.alarm).count() as f64 / pos.len().max(1) as f64,
        };
        progress(&format!(
            "{:14} either {:.4} ({:.1} s)",
            row.kind,
            row.either_auroc.unwrap_or(f64::NAN),
            started.elapsed().as_secs_f64()
        ));
        rows.push(row);
        if kind.held_out() {
            held_pos.extend_from_slice(&either);
        }
        all_pos.extend(either);
    }
    let neg_either = pick(&neg, |s| s.either);
    let neg_tissue = pick(&neg[..normal_frames.len()], |s| s.tissue);

    let false_alarms = if args.video_seconds > 0 {
        Some(video_false_alarms(args, &mut runner, w, h, thr_s, thr_q)?)
    } else {
        None
    };
    Ok(HeldoutReport {
        model: c.name.clone(),
        version: c.version.clone(),
        seeds: format!("{}..{}", args.seeds.start, args.seeds.end),
        negatives_generator: normal_frames.len(),
        negatives_real: crops.len(),
        threshold_score: thr_s,
        threshold_quality: thr_q,
        kinds: rows,
        overall_either_auroc: auc(&neg_either, &all_pos),
        held_out_either_auroc: auc(&neg_either, &held_pos),
        lesion_frames: lesion_scores.len(),
        generator_lesions_image_auroc: auc(&neg_tissue, &lesion_scores),
        false_alarms,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Contiguous frames (60 frames/s) of the seeds, split evenly; frames the
/// generator labels anomalous are left out of the counts (and break episodes).
fn video_false_alarms(
    args: &HeldoutOptions,
    runner: &mut Runner,
    w: usize,
    h: usize,
    thr_s: f32,
    thr_q: Option<f32>,
) -> anyhow::Result<FalseAlarms> {
    let total = args.video_seconds as usize * med8k_samples::FPS as usize;
    let seeds = (args.seeds.end - args.seeds.start) as usize;
    let per_seed = total.div_ceil(seeds) as u32;
    let (mut normal, mut tissue, mut quality, mut either, mut episodes) = (0, 0, 0, 0, 0);
    for seed in args.seeds.clone() {
        let scene = EndoscopeScene::new(SceneConfig {
            width: args.size.width,
            height: args.size.height,
            frames: per_seed,
            seed: seed + 1_000,
        })
        .context("video scene")?;
        let mut buf = FrameBuffers::new(&scene);
        let mut previous = false;
        for i in 0..per_seed {
            let truth = scene.render(i, &mut buf.planes())?;
            if truth.anomalous {
                previous = false;
                continue;
            }
            let d = runner.run_tensor(
                u64::from(i),
                input::ycbcr_tensor(&buf.ycbcr(), w, h)?,
                (w, h),
            )?;
            let s = scored(&d, thr_s, thr_q);
            normal += 1;
            tissue += usize::from(d.anomalous);
            quality += usize::from(d.quality_alarm);
            either += usize::from(s.alarm);
            episodes += usize::from(s.alarm && !previous);
            previous = s.alarm;
        }
    }
    let minutes = normal as f64 / f64::from(med8k_samples::FPS) / 60.0;
    Ok(FalseAlarms {
        seconds: minutes * 60.0,
        normal_frames: normal,
        tissue_frames: tissue,
        quality_frames: quality,
        either_frames: either,
        episodes_per_minute: episodes as f64 / minutes.max(1e-9),
        frames_per_minute: either as f64 / minutes.max(1e-9),
    })
}

/// The report as a table for a terminal.
pub fn print_heldout(r: &HeldoutReport) {
    let show = |v: Option<f64>| v.map_or("  n/a ".to_owned(), |v| format!("{v:.4}"));
    println!(
        "{} {} held-out evaluation, seeds {}: {} normal frames + {} real crops as negatives",
        r.model, r.version, r.seeds, r.negatives_generator, r.negatives_real
    );
    println!(
        "{:14} {:8} {:>4} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7}",
        "kind", "alarm", "held", "tissue", "quality", "either", "gen", "real", "caught"
    );
    for k in &r.kinds {
        println!(
            "{:14} {:8} {:>4} {:>7} {:>7} {:>7} {:>7} {:>7} {:>7.3}",
            k.kind,
            format!("{:?}", k.alarm).to_lowercase(),
            if k.held_out { "yes" } else { "no" },
            show(k.tissue_auroc),
            show(k.quality_auroc),
            show(k.either_auroc),
            show(k.either_auroc_generator),
            show(k.either_auroc_real),
            k.caught
        );
    }
    println!(
        "either-alarm AUROC: all kinds {}, held-out kinds {}; generator lesions (image, {} frames) {}",
        show(r.overall_either_auroc),
        show(r.held_out_either_auroc),
        r.lesion_frames,
        show(r.generator_lesions_image_auroc)
    );
    if let Some(f) = &r.false_alarms {
        println!(
            "false alarms over {:.0} s of normal video: {} frames (tissue {}, quality {}), {:.2} episodes/min, {:.1} frames/min",
            f.seconds,
            f.either_frames,
            f.tissue_frames,
            f.quality_frames,
            f.episodes_per_minute,
            f.frames_per_minute
        );
    }
}
