//! The remote monitor's frames across the link: the clip's pictures coded,
//! sent over a med8k session through the impairment relay at each link
//! class, and decoded at the far end ([`med8k_link::bench::frames`], where
//! the measuring lives: the link crate owns the endpoints and the relay).

use std::path::Path;

use anyhow::Context;
use med8k_link::bench::classes::CLASSES;
use med8k_link::bench::{BenchLinkOptions, FramesOptions, FramesReport, bench_frames, bench_link};
use med8k_media::imageio::RawSpec;
use med8k_media::picture::Picture;
use med8k_pipeline::input::InputSpec;

use super::{Better, HarnessOptions, Scenario, StageFigures};

/// A short label for a class in the per-stage chart.
fn short(class: &str) -> String {
    let rate = class
        .split_whitespace()
        .find(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .unwrap_or(class);
    let unit = if class.contains("Gbit") { "G" } else { "M" };
    let lossless = if class.ends_with("lossless") {
        " lossless"
    } else {
        ""
    };
    format!("{rate}{unit}{lossless}")
}

/// The first `frames` pictures of `clip`.
fn pictures(clip: &Path, raw: Option<RawSpec>, frames: usize) -> anyhow::Result<Vec<Picture>> {
    let input = InputSpec::file(clip, raw)
        .open("link")
        .with_context(|| format!("opening {}", clip.display()))?;
    let pictures: Vec<Picture> = input
        .pictures()
        .take(frames)
        .collect::<Result<_, _>>()
        .with_context(|| format!("reading {}", clip.display()))?;
    anyhow::ensure!(!pictures.is_empty(), "{} has no frames", clip.display());
    Ok(pictures)
}

/// Runs every class and adds its figures, stages and notes to `s`.
pub fn add(
    s: &mut Scenario,
    clip: &Path,
    options: &HarnessOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    // At 8K a picture is 133 MB: a few, replayed in a loop, are enough.
    let pictures = pictures(clip, options.raw, if options.quick { 24 } else { 4 })?;
    let frames = FramesOptions::default();
    progress(&format!(
        "  over the link: {} camera frames per class at {} fps",
        frames.camera_frames, frames.fps
    ));
    let reports = bench_frames(&pictures, &frames, progress)?;
    for r in &reports {
        figures(s, r);
        stages(s, r, r.camera_frames as f64 / frames.fps);
    }
    s.notes.push(format!(
        "Over the link: the clip's first {} pictures replayed as a {} fps camera ({} frames, \
         more until {} are coded), the encoder taking the newest picture whenever it is free; \
         each class's stream as the sender chooses it at the class's cap ({}), sent over a \
         med8k session (quinn, mutual TLS under a CA made for the run) through the impairment \
         relay (cap; {}% loss and {} ms each way on the inter-hospital classes), decoded at the \
         far end. Latency is from capture to leaving each stage on one clock (both ends are in \
         this process). Wavelet frames are decoded by a sink that takes the newest; AV1 frames \
         are decoded after the run by FFmpeg, every one delivered, and compared with the \
         downscaled picture rav1e was given.",
        pictures.len(),
        frames.fps,
        frames.camera_frames,
        frames.min_coded,
        reports
            .iter()
            .map(|r| format!("{}: {}", r.class, r.stream))
            .collect::<Vec<_>>()
            .join("; "),
        frames.loss_percent,
        frames.delay_ms,
    ));
    for r in &reports {
        if let Some(e) = &r.error {
            s.notes.push(format!("over the link, {}: {e}", r.class));
        }
    }
    ceilings(s, options, &frames, progress)
}

/// Plain quinn on each class's path, the peer the link is held to: one
/// stream as fast as the path takes it (`med8k bench link`'s ceiling
/// phase), then med8k's live link with as many frames in flight as the
/// path holds, each for a few seconds.
fn ceilings(
    s: &mut Scenario,
    options: &HarnessOptions,
    frames: &FramesOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    let seconds = if options.quick { 2.0 } else { 5.0 };
    for (class, cap, wan) in CLASSES {
        progress(&format!(
            "  {class}: plain quinn's ceiling and the live link"
        ));
        let mut o = BenchLinkOptions::default();
        o.rate = Some(cap);
        o.seconds = seconds;
        if wan {
            o.loss_percent = Some(frames.loss_percent);
            o.delay = Some(frames.delay_ms);
        }
        let r = bench_link(&o).with_context(|| format!("bench link on the {class} path"))?;
        let c = format!("{class} link");
        s.figure(
            format!("{c}: plain quinn ceiling"),
            r.ceiling_mbps,
            "Mbit/s",
            Better::Higher,
        );
        s.figure(
            format!("{c}: med8k live goodput"),
            r.goodput_mbps,
            "Mbit/s",
            Better::Higher,
        );
        s.figure(
            format!("{c}: live over ceiling"),
            r.ratio_to_ceiling,
            "",
            Better::Higher,
        );
        let impaired = if wan {
            format!(
                " --loss {} --delay {}",
                frames.loss_percent, frames.delay_ms
            )
        } else {
            String::new()
        };
        s.notes.push(format!(
            "peer: plain quinn, {class}: med8k bench link --rate {cap}{impaired} --seconds {seconds}"
        ));
        for e in [&r.ceiling_error, &r.live_error].into_iter().flatten() {
            s.notes.push(format!("{c}: {e}"));
        }
    }
    Ok(())
}

fn figures(s: &mut Scenario, r: &FramesReport) {
    let c = format!("{} over the link", r.class);
    s.figure(
        format!("{c}: camera frames"),
        r.camera_frames as f64,
        "",
        Better::None,
    );
    s.figure(format!("{c}: frames sent"), r.sent as f64, "", Better::None);
    s.figure(
        format!("{c}: frames delivered"),
        r.delivered as f64,
        "",
        Better::Higher,
    );
    s.figure(
        format!("{c}: frames dropped before the link"),
        r.dropped_before_link as f64,
        "",
        Better::Lower,
    );
    s.figure(
        format!("{c}: frames still in the encoder at the end"),
        r.held_in_encoder as f64,
        "",
        Better::None,
    );
    s.figure(
        format!("{c}: frames lost"),
        r.lost as f64,
        "",
        Better::Lower,
    );
    s.figure(
        format!("{c}: frames late"),
        r.late as f64,
        "",
        Better::Lower,
    );
    s.figure(
        format!("{c}: delivered rate"),
        r.delivered_fps,
        "fps",
        Better::Higher,
    );
    s.figure(
        format!("{c}: goodput"),
        r.goodput_mbps,
        "Mbit/s",
        Better::None,
    );
    s.figure(
        format!("{c}: bytes on the wire"),
        r.wire_bytes as f64,
        "B",
        Better::None,
    );
    s.figure(
        format!("{c}: coded bytes"),
        r.payload_bytes as f64,
        "B",
        Better::None,
    );
    for st in &r.stages {
        if st.frames == 0 {
            continue;
        }
        for (q, v) in [
            ("p50", st.latency_ms.p50),
            ("p99", st.latency_ms.p99),
            ("max", st.latency_ms.max),
        ] {
            s.figure(
                format!("{c}: capture→{} {q}", st.stage),
                v,
                "ms",
                Better::Lower,
            );
        }
    }
    s.figure(
        format!("{c}: frames decoded"),
        r.decoded as f64,
        "",
        Better::Higher,
    );
    if let Some(exact) = r.exact {
        s.figure(
            format!("{c}: decoded frames bit-exact"),
            exact as f64,
            "",
            Better::Higher,
        );
        s.figure(
            format!("{c}: decoded frames not bit-exact"),
            r.decoded.saturating_sub(exact) as f64,
            "",
            Better::Lower,
        );
    }
    if let Some(p) = r.psnr_db {
        s.figure(format!("{c}: PSNR"), p, "dB", Better::Higher);
    }
    if let Some(e) = r.delta_e_mean {
        s.figure(format!("{c}: ΔE2000 mean"), e, "", Better::Lower);
    }
    if let Some(e) = r.delta_e_p95 {
        s.figure(format!("{c}: ΔE2000 p95"), e, "", Better::Lower);
    }
}

fn stages(s: &mut Scenario, r: &FramesReport, camera_seconds: f64) {
    let label = short(&r.class);
    for st in &r.stages {
        if st.frames == 0 {
            continue;
        }
        let dropped = match st.stage {
            "coded" => r.dropped_before_link,
            "delivered" => r.lost,
            _ => r.skipped_at_sink,
        };
        s.stages.push(StageFigures {
            name: format!("{label} {}", st.stage),
            fps: st.frames as f64 / camera_seconds.max(1e-9),
            p50_ms: st.latency_ms.p50,
            p99_ms: st.latency_ms.p99,
            max_ms: st.latency_ms.max,
            dropped,
        });
    }
}
