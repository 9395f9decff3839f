//! The link classes (`med8k bench link --classes`): what arrives of an 8K
//! stream on each link the brief names. For each class the relay caps the
//! path (the three inter-hospital classes, 150, 40 and 20 Mbit/s, with the
//! given loss and delay; in-hospital 5 Gbit/s with neither); the sender
//! measures the path with a short probe (frames as fast as the link takes
//! them), chooses its stream from what it measured ([`crate::plan`]: the
//! rate-controlled wavelet stream or AV1 of a downscaled picture), and
//! sends it at 60 frames/s. Frame sizes are what the chosen codec's rate
//! control produces (constant for the wavelet stream; a key frame every
//! 120 frames for AV1); the bench moves bytes, it does not code pictures
//! (`med8k send --bpp` does).
//!
//! Reported per class: frames per second delivered, frames late (past the
//! deadline) and lost, latency p50 and p99.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use med8k_transport::driver::Congestion;
use serde::Serialize;

use super::live::{LiveLink, Measured, Traffic};
use super::{
    Latency, Setup, check_path, congestion_name, default_window, driver_config, impairment,
};
use crate::plan::{self, StreamPlan};

/// The link classes: name, cap in Mbit/s, and whether it is a WAN (the
/// given loss and delay apply) or in-hospital (neither).
pub const CLASSES: [(&str, f64, bool); 4] = [
    ("in-hospital 5 Gbit/s", 5000.0, false),
    ("inter-hospital 150 Mbit/s", 150.0, true),
    ("fall-back 40 Mbit/s", 40.0, true),
    ("fall-back 20 Mbit/s", 20.0, true),
];

/// What `bench link --classes` runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BenchClassesOptions {
    /// Random loss on the inter-hospital classes, percent.
    pub loss_percent: f64,
    /// One-way delay on the inter-hospital classes, ms.
    pub delay_ms: u64,
    /// Seconds of the stream per class.
    pub seconds: f64,
    /// Seconds of the probe that measures each path.
    pub probe_seconds: f64,
    /// Live frame deadline, ms.
    pub deadline_ms: u64,
    /// Congestion controller.
    pub congestion: Congestion,
}

impl Default for BenchClassesOptions {
    fn default() -> Self {
        BenchClassesOptions {
            // An ordinary inter-hospital path: 1% random loss, 40 ms round trip.
            loss_percent: 1.0,
            delay_ms: 20,
            seconds: 5.0,
            probe_seconds: 2.0,
            deadline_ms: 250,
            congestion: Congestion::Bbr,
        }
    }
}

/// What arrived on one class.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ClassReport {
    /// The class.
    pub class: &'static str,
    /// The relay's cap, Mbit/s.
    pub cap_mbps: f64,
    /// Loss, percent.
    pub loss_percent: f64,
    /// One-way delay, ms.
    pub delay_ms: u64,
    /// What the probe measured, Mbit/s.
    pub measured_mbps: f64,
    /// The round trip the sender saw, ms.
    pub rtt_ms: f64,
    /// The stream the sender chose from the measurement.
    pub stream: Option<StreamPlan>,
    /// Its description.
    pub stream_name: String,
    /// Its mean rate, Mbit/s.
    pub stream_mbps: f64,
    /// Seconds streamed.
    pub seconds: f64,
    /// Frames sent.
    pub frames_sent: u64,
    /// Frames delivered.
    pub frames_received: u64,
    /// Frames delivered per second.
    pub fps: f64,
    /// Frames delivered past their deadline.
    pub frames_late: u64,
    /// Frames never delivered.
    pub frames_lost: u64,
    /// Hand-over to delivery.
    pub latency_ms: Latency,
    /// What went wrong, if anything (the figures are what was measured).
    pub error: Option<String>,
}

/// Every class.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct ClassesReport {
    /// Congestion controller.
    pub congestion: &'static str,
    /// Frame deadline, ms.
    pub deadline_ms: u64,
    /// The classes, widest first.
    pub classes: Vec<ClassReport>,
    /// Wall-clock seconds of the whole run.
    pub elapsed_s: f64,
}

/// Runs every class and reports.
pub fn bench_classes(args: &BenchClassesOptions) -> anyhow::Result<ClassesReport> {
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--seconds {} is outside (0, 600]", args.seconds);
    }
    if !(args.probe_seconds > 0.0 && args.probe_seconds <= 60.0) {
        bail!("probe seconds {} outside (0, 60]", args.probe_seconds);
    }
    if args.deadline_ms == 0 {
        bail!("--deadline-ms must be at least 1");
    }
    check_path(Some(args.loss_percent), Some(args.delay_ms), None)?;
    let began = Instant::now();
    let rt = crate::runtime()?;
    let mut classes = Vec::new();
    for (name, cap, wan) in CLASSES {
        let (loss, delay) = if wan {
            (args.loss_percent, args.delay_ms)
        } else {
            (0.0, 0)
        };
        let report = rt
            .block_on(one_class(args, name, cap, loss, delay))
            .with_context(|| format!("class {name}"))?;
        classes.push(report);
    }
    Ok(ClassesReport {
        congestion: congestion_name(args.congestion),
        deadline_ms: args.deadline_ms,
        classes,
        elapsed_s: began.elapsed().as_secs_f64(),
    })
}

async fn one_class(
    args: &BenchClassesOptions,
    name: &'static str,
    cap: f64,
    loss: f64,
    delay_ms: u64,
) -> anyhow::Result<ClassReport> {
    let delay = Duration::from_millis(delay_ms);
    let rtt = delay * 2;
    // The probe: a sixtieth of a second at the cap per frame.
    let probe_frame = ((cap * 1e6 / 8.0 / plan::FPS) as usize).max(1000);
    let probe_window = default_window(Some(cap), rtt, probe_frame);
    // The stream: up to a deadline's worth of frames at 60/s in flight.
    let stream_window = (args.deadline_ms as f64 * plan::FPS / 1000.0).ceil() as u32 + 2;
    let config = driver_config(
        args.deadline_ms,
        probe_window.max(stream_window),
        args.congestion,
    );
    let setup = Setup::new(config, Some(impairment(loss, delay, Some(cap))?))?;
    let mut report = ClassReport {
        class: name,
        cap_mbps: cap,
        loss_percent: loss,
        delay_ms,
        measured_mbps: 0.0,
        rtt_ms: 0.0,
        stream: None,
        stream_name: String::new(),
        stream_mbps: 0.0,
        seconds: args.seconds,
        frames_sent: 0,
        frames_received: 0,
        fps: 0.0,
        frames_late: 0,
        frames_lost: 0,
        latency_ms: Latency::default(),
        error: None,
    };
    let mut link = match LiveLink::open(&setup).await {
        Ok(l) => l,
        Err(e) => {
            report.error = Some(format!("{e:#}"));
            return Ok(report);
        }
    };
    let probe = Traffic::Saturate {
        frame_bytes: probe_frame,
        window: probe_window,
        start_mbps: cap,
        most_mbps: cap,
    };
    let (measured, error) = link
        .run(
            probe,
            Duration::from_secs_f64(args.probe_seconds),
            Some(rtt),
        )
        .await;
    // Past the probe's start-up: the rate of its second half.
    report.measured_mbps = measured.tail_mbps;
    report.rtt_ms = link.rtt().as_secs_f64() * 1e3;
    let stream = plan::choose(report.measured_mbps);
    report.stream = Some(stream);
    report.stream_name = stream.describe();
    report.stream_mbps = stream.mbps();
    let mut error = error;
    if error.is_none() {
        let paced = Traffic::Paced {
            fps: plan::FPS,
            plan: stream,
        };
        let (m, e) = link
            .run(paced, Duration::from_secs_f64(args.seconds), Some(rtt))
            .await;
        fill(&mut report, &m);
        error = e;
    }
    let closed = link.close().await;
    report.error = error.or(closed.err().map(|e| format!("{e:#}")));
    Ok(report)
}

fn fill(report: &mut ClassReport, m: &Measured) {
    report.frames_sent = m.sent;
    report.frames_received = m.received;
    report.fps = m.fps();
    report.frames_late = m.late;
    report.frames_lost = m.lost;
    report.latency_ms = m.latency;
    report.seconds = m.seconds;
}
