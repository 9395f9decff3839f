//! The remote-monitor, pathology and detection scenarios, built on the
//! codec bench ([`crate::codec`]) and the detector's evaluation
//! ([`crate::detect`]).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use super::usage::Meter;
use super::{Better, CodecPoint, HarnessOptions, Scenario};
use crate::codec::{CodecBenchOptions, Row, bench_codec};
use crate::detect::{EvalDetectOptions, eval_detect};
use med8k_pipeline::encode::Backend;

/// The link classes a remote monitor is fed over, in bits per second.
pub const LINK_CLASSES: [(&str, f64); 4] = [
    ("in-hospital 5 Gbit/s", 5e9),
    ("inter-hospital 150 Mbit/s", 150e6),
    ("fall-back 40 Mbit/s", 40e6),
    ("fall-back 20 Mbit/s", 20e6),
];

/// An 8K60 pixel rate: a link's budget in bits per pixel is its rate over this.
const PX_PER_S_8K60: f64 = 7680.0 * 4320.0 * 60.0;

/// Bits per pixel a link of `bps` leaves each pixel of 8K60 video.
pub fn budget_bpp(bps: f64) -> f64 {
    // The codec takes 0.01 bpp at the least (20 Mbit/s is 0.01005).
    (bps / PX_PER_S_8K60).max(0.01)
}

/// The peers `crate::codec` runs, as they run them.
const PEER_COMMANDS: [&str; 3] = [
    "ojph_compress -i in.yuv -o out.j2c -num_decomps 5 -reversible true (then ojph_expand)",
    "ffmpeg -f rawvideo -i in.yuv -c:v ffv1 -level 3 (then ffmpeg decode to rawvideo)",
    "ffmpeg -f rawvideo -i in.yuv -c:v jpegls (then ffmpeg decode to rawvideo)",
];

fn point(r: &Row) -> CodecPoint {
    CodecPoint {
        input: r.input.clone(),
        codec: r.codec.clone(),
        mode: r.mode.clone(),
        ratio: r.ratio,
        bpp: r.bpp,
        encode_mpx_s: r.encode_mpx_s,
        decode_mpx_s: r.decode_mpx_s,
        psnr_db: r.psnr_db,
        ssim: r.ssim,
        exact: r.exact,
        gpu_encode_ms: r.gpu_ms.and_then(|g| g.encode_ms),
        gpu_decode_ms: r.gpu_ms.map(|g| g.decode_ms),
    }
}

/// The GPU's own time per frame of `rows` (med8k on a GPU), as figures
/// named after `what`; nothing for rows coded on the CPU.
fn gpu_figures(s: &mut Scenario, what: &str, rows: &[&Row]) {
    let times: Vec<_> = rows.iter().filter_map(|r| r.gpu_ms).collect();
    let Some(first) = times.first() else {
        return;
    };
    let clock = match first.source {
        med8k_gpu::TimeSource::GpuTimestamps => "GPU timestamps",
        med8k_gpu::TimeSource::CpuWall => "CPU wall per stage",
    };
    if let Some(t) = mean(times.iter().filter_map(|g| g.encode_ms)) {
        s.figure(
            format!("{what}: GPU time per frame, encode ({clock})"),
            t,
            "ms",
            Better::Lower,
        );
    }
    if let Some(t) = mean(times.iter().map(|g| g.decode_ms)) {
        s.figure(
            format!("{what}: GPU time per frame, decode ({clock})"),
            t,
            "ms",
            Better::Lower,
        );
    }
}

fn codec_rows(
    files: Vec<PathBuf>,
    bpp: Vec<f64>,
    options: &HarnessOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<Row>> {
    // The CPU twin, and a hardware GPU where there is one: a software GPU
    // (lavapipe) codes correctly and slowly, and its times are no figure.
    let mut backends = vec![Backend::Cpu];
    if let Ok(Some(_)) = Backend::Auto.gpu() {
        backends.push(Backend::Gpu);
    }
    let opts = CodecBenchOptions {
        files,
        format: options.raw,
        frames: options.codec_frames,
        runs: if options.quick { 1 } else { 3 },
        bpp,
        backends,
        no_peers: options.no_peers,
    };
    bench_codec(&opts, &mut |line| progress(&format!("  {line}")))
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}

/// A frame's time in ms from a rate in Mpx/s and the frame's size.
fn ms_per_frame(mpx: f64, mpx_s: f64) -> f64 {
    if mpx_s > 0.0 {
        mpx / mpx_s * 1e3
    } else {
        f64::INFINITY
    }
}

/// Megapixels of a row's picture (`WxH ...`).
fn row_mpx(r: &Row) -> f64 {
    r.picture
        .split_whitespace()
        .next()
        .and_then(|wh| wh.split_once('x'))
        .and_then(|(w, h)| Some(w.parse::<f64>().ok()? * h.parse::<f64>().ok()? / 1e6))
        .unwrap_or(0.0)
}

/// The clip through the codec at each link class's budget.
pub fn remote_monitor(
    clip: &Path,
    options: &HarnessOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Scenario> {
    let meter = Meter::start();
    let budgets: Vec<f64> = LINK_CLASSES.iter().map(|(_, b)| budget_bpp(*b)).collect();
    let rows = codec_rows(vec![clip.to_path_buf()], budgets.clone(), options, progress)?;
    let usage = meter.stop();
    let mut s = Scenario::new(
        "remote-monitor",
        "capture → encode at each link class's bits per pixel (8K60 budget) → decode → compare; \
         then capture → encode → QUIC link through the impairment relay → decode → sink, per class",
    );
    for ((class, _), bpp) in LINK_CLASSES.iter().zip(&budgets) {
        let mode = format!("{bpp} bpp");
        let ours: Vec<&Row> = rows
            .iter()
            .filter(|r| r.mode == mode && r.codec.starts_with("med8k"))
            .collect();
        let backend = ours
            .first()
            .map_or("cpu", |r| r.codec.rsplit('/').next().unwrap_or("cpu"));
        let Some(psnr) = mean(ours.iter().filter_map(|r| r.psnr_db)) else {
            continue;
        };
        s.figure(format!("{class}: PSNR"), psnr, "dB", Better::Higher);
        if let Some(ssim) = mean(ours.iter().filter_map(|r| r.ssim)) {
            s.figure(format!("{class}: SSIM"), ssim, "", Better::Higher);
        }
        if let Some(b) = mean(ours.iter().map(|r| r.bpp)) {
            s.figure(format!("{class}: bits per pixel"), b, "bpp", Better::None);
        }
        if let Some(r) = mean(ours.iter().map(|r| r.ratio)) {
            s.figure(format!("{class}: ratio"), r, ":1", Better::Higher);
        }
        if let Some(t) = mean(
            ours.iter()
                .map(|r| ms_per_frame(row_mpx(r), r.encode_mpx_s)),
        ) {
            s.figure(
                format!("{class}: encode per frame ({backend})"),
                t,
                "ms",
                Better::Lower,
            );
        }
        if let Some(t) = mean(
            ours.iter()
                .filter_map(|r| Some(ms_per_frame(row_mpx(r), r.decode_mpx_s?))),
        ) {
            s.figure(
                format!("{class}: decode per frame ({backend})"),
                t,
                "ms",
                Better::Lower,
            );
        }
        gpu_figures(&mut s, class, &ours);
    }
    s.usage(&usage, rows.len() as u64);
    s.codecs = rows.iter().map(point).collect();
    // The thin links' own stream: AV1 at each class's video rate, and the peers.
    let frames = if options.quick { 24 } else { 8 };
    let thin = super::thin::thin_links(clip, options.raw, frames, options.no_peers, progress)?;
    for r in &thin {
        let who = if r.codec.starts_with("med8k") {
            "AV1".to_owned()
        } else {
            format!("peer {}", r.codec)
        };
        s.figure(
            format!("{} {who}: PSNR", r.class),
            r.psnr_db,
            "dB",
            Better::Higher,
        );
        s.figure(
            format!("{} {who}: rate (asked {})", r.class, r.target_kbps),
            r.kbps,
            "kbit/s",
            Better::None,
        );
        s.figure(
            format!("{} {who}: encode per frame", r.class),
            r.encode_ms,
            "ms",
            Better::Lower,
        );
    }
    s.notes.push(format!(
        "Thin links: the first {frames} frames downscaled by 2 to 8-bit 4:2:0, coded at each \
         class's video rate (80% of the link) at 60 frames/s; PSNR by FFmpeg's psnr filter \
         against those frames for every codec (read it beside the rate each reached: over a few \
         frames the first, a key frame, weighs heavily); a peer's time includes FFmpeg's start."
    ));
    if !options.no_peers {
        s.notes.extend(
            super::thin::peer_commands()
                .into_iter()
                .map(|c| format!("peer: {c}")),
        );
    }
    s.notes.push(
        "Budgets (the \"class: PSNR\" rows) are each link's rate over an 8K60 pixel rate, \
         applied at the clip's size, coded and decoded without the link; the \"over the link\" \
         rows are the frames that crossed it (`med8k bench link` measures the link alone and \
         its ceiling)."
            .into(),
    );
    super::over_link::add(&mut s, clip, options, progress)?;
    if !options.no_peers {
        s.notes
            .extend(PEER_COMMANDS.iter().map(|c| format!("peer: {c}")));
    }
    Ok(s)
}

/// Each cube through the lossless codec, against the peers.
pub fn pathology(
    cubes: &[PathBuf],
    options: &HarnessOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Scenario> {
    let meter = Meter::start();
    let rows = codec_rows(cubes.to_vec(), Vec::new(), options, progress)?;
    let usage = meter.stop();
    let mut s = Scenario::new(
        "pathology",
        "7-band cube → lossless encode → decode → bit-exact check; then lossless encode → QUIC \
         link through the impairment relay → PACS store → viewer's first screen and whole image",
    );
    let ours: Vec<&Row> = rows
        .iter()
        .filter(|r| r.codec.starts_with("med8k") && r.mode == "lossless")
        .collect();
    anyhow::ensure!(!ours.is_empty(), "the codec measured no cube");
    let exact = ours.iter().filter(|r| r.exact).count();
    s.figure("bit-exact cubes", exact as f64, "", Better::None);
    s.figure(
        "cubes not bit-exact",
        (ours.len() - exact) as f64,
        "",
        Better::Lower,
    );
    if let Some(r) = mean(ours.iter().map(|r| r.ratio)) {
        s.figure("lossless ratio", r, ":1", Better::Higher);
    }
    if let Some(b) = mean(ours.iter().map(|r| r.bpp)) {
        s.figure("lossless bits per sample", b / 7.0, "bps", Better::Lower);
    }
    if let Some(v) = mean(ours.iter().map(|r| r.encode_mpx_s)) {
        s.figure("encode", v, "Mpx/s", Better::Higher);
    }
    if let Some(v) = mean(ours.iter().filter_map(|r| r.decode_mpx_s)) {
        s.figure("decode", v, "Mpx/s", Better::Higher);
    }
    // What a pathologist waits for with an infinitely fast link: encode + decode.
    if let Some(v) = mean(ours.iter().filter_map(|r| {
        let mpx = row_mpx(r);
        Some(ms_per_frame(mpx, r.encode_mpx_s) + ms_per_frame(mpx, r.decode_mpx_s?))
    })) {
        s.figure("whole cube, encode + decode", v, "ms", Better::Lower);
    }
    gpu_figures(&mut s, "cube", &ours);
    s.usage(&usage, ours.len() as u64);
    s.codecs = rows.iter().map(point).collect();
    super::pathology_link::add(&mut s, cubes, options, progress)?;
    if !options.no_peers {
        s.notes
            .extend(PEER_COMMANDS.iter().map(|c| format!("peer: {c}")));
    }
    Ok(s)
}

/// The model against the clip's labels, and its analysis rate.
pub fn detection(
    model: &Path,
    samples: &Path,
    options: &HarnessOptions,
) -> anyhow::Result<Scenario> {
    let meter = Meter::start();
    let report = eval_detect(&EvalDetectOptions {
        model: model.to_path_buf(),
        samples: samples.to_path_buf(),
        bench_iters: if options.quick { 3 } else { 20 },
        threads: 1,
    })?;
    let usage = meter.stop();
    let mut s = Scenario::new(
        "detection",
        format!(
            "{} {} on every frame of the clip, scored against the labels",
            report.model, report.version
        ),
    );
    if let Some(a) = report.image_auroc {
        s.figure("image AUROC", a, "", Better::Higher);
    }
    if let Some(a) = report.pixel_auroc {
        s.figure("pixel AUROC", a, "", Better::Higher);
    }
    s.figure("analysis rate", report.frames_per_s, "fps", Better::Higher);
    s.figure("latency p50", report.latency_ms_p50, "ms", Better::Lower);
    s.figure("latency p99", report.latency_ms_p99, "ms", Better::Lower);
    s.figure("labelled frames", report.items as f64, "", Better::None);
    let ort = &report.onnxruntime;
    s.figure(
        "bare model, tract",
        ort.tract_frames_per_s,
        "fps",
        Better::Higher,
    );
    match ort.ort_frames_per_s {
        Some(v) => {
            s.figure("bare model, onnxruntime", v, "fps", Better::Higher);
            s.notes.push(format!(
                "peer: onnxruntime {} (python3 models/ort_bench.py), {} thread(s), {} iterations",
                ort.ort_version.as_deref().unwrap_or("?"),
                ort.threads,
                ort.iterations
            ));
        }
        None => s.notes.push(format!("onnxruntime: {}", ort.status)),
    }
    if let Some(a) = &report.normal_alarms {
        s.figure(
            "normal frames in the clip",
            a.normal_frames as f64,
            "",
            Better::None,
        );
        s.figure(
            "false alarms per minute (clip's normal frames)",
            a.frames_per_minute,
            "frames/min",
            Better::Lower,
        );
        s.figure(
            "false alarm episodes per minute (clip's normal frames)",
            a.episodes_per_minute,
            "/min",
            Better::Lower,
        );
        s.notes.push(format!(
            "False alarms: frames the clip labels normal on which the tissue score or the \
             quality value passed the contract's operating threshold ({} of {}), per minute of \
             those frames at 60 frames/s; an episode is a run of consecutive alarmed frames. A \
             short clip gives a coarse figure (one alarmed frame in {} frames is {:.0} per minute).",
            a.alarmed_frames,
            a.normal_frames,
            a.normal_frames,
            if a.normal_frames > 0 {
                3600.0 / a.normal_frames as f64
            } else {
                0.0
            }
        ));
    }
    s.usage(&usage, report.items as u64);
    heldout(&mut s, model, options)?;
    Ok(s)
}

/// Image AUROC per anomaly kind ([`crate::heldout`]): the generator's
/// anomaly kinds painted into normal frames of seeds no model was fitted
/// on, and into crops of the real fixtures; and false alarms over
/// contiguous normal generator video.
fn heldout(s: &mut Scenario, model: &Path, options: &HarnessOptions) -> anyhow::Result<()> {
    let mut args = crate::heldout::HeldoutOptions::new(model.to_path_buf());
    args.kinds = med8k_samples::anomalies::Kind::ALL.to_vec();
    if options.quick {
        args.seeds = 5000..5001;
        args.frames = 6;
        args.size = med8k_samples::Size {
            width: 384,
            height: 216,
        };
        args.real = 4;
        args.video_seconds = 2;
    } else {
        args.seeds = 5000..5004;
        args.frames = 12;
        args.real = 20;
        args.video_seconds = 30;
    }
    let r = crate::heldout::eval_heldout(&args, &mut |_| {})?;
    for k in &r.kinds {
        if let Some(a) = k.either_auroc {
            s.figure(
                format!(
                    "image AUROC, {}{}",
                    k.kind,
                    if k.held_out { " (held out)" } else { "" }
                ),
                a,
                "",
                Better::Higher,
            );
        }
    }
    if let Some(a) = r.generator_lesions_image_auroc {
        s.figure("image AUROC, generator lesions", a, "", Better::Higher);
    }
    if let Some(f) = &r.false_alarms {
        s.figure(
            format!("false alarms per minute (normal video, {:.0} s)", f.seconds),
            f.frames_per_minute,
            "frames/min",
            Better::Lower,
        );
    }
    s.notes.push(format!(
        "AUROC per kind: {} normal generator frames (seeds {}, {}x{}) and {} crops of the real \
         fixtures, each kind painted into every one of them (med8k_samples::anomalies), scored \
         by the tissue score or quality value over its threshold, whichever is larger (\"either \
         alarm\"), against the untouched ones; held-out kinds are ones no model was fitted on. \
         Generator lesions: {} lesion frames against the normal frames. Normal video: \
         contiguous generator frames at 60 frames/s, anomalous frames left out.",
        r.negatives_generator,
        r.seeds,
        args.size.width,
        args.size.height,
        r.negatives_real,
        r.lesion_frames
    ));
    Ok(())
}

/// GStreamer's own decode of a sample set's clip (four FFV1 quadrant
/// tracks) to `fakesink`, timed from outside: (frames per second, the
/// command). `None` when `gst-launch-1.0` is missing or fails.
pub fn gstreamer_decode(clip: &Path, frames: u64) -> Option<(f64, String)> {
    let location = clip.to_str()?;
    let mut args = vec![
        "-q".to_owned(),
        "filesrc".into(),
        format!("location={location}"),
        "!".into(),
        "matroskademux".into(),
        "name=d".into(),
    ];
    for i in 0..4 {
        args.extend(
            [
                &format!("d.video_{i}"),
                "!",
                "queue",
                "!",
                "avdec_ffv1",
                "!",
                "fakesink",
                "sync=false",
            ]
            .map(str::to_owned),
        );
    }
    let started = Instant::now();
    let ok = Command::new("gst-launch-1.0")
        .args(&args)
        .output()
        .ok()?
        .status
        .success();
    let seconds = started.elapsed().as_secs_f64();
    ok.then(|| {
        (
            frames as f64 / seconds.max(1e-9),
            format!("gst-launch-1.0 {}", args.join(" ")),
        )
    })
}
