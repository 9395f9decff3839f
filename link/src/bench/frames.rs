//! Coded pictures across the link, as a remote monitor receives them
//! (`med8k bench`'s remote-monitor scenario): for each link class the
//! pictures are replayed as a live camera, coded as the sender codes them,
//! sent over a med8k session (quinn, mutual TLS under a CA made for the
//! run, the development gate) through the impairment relay at the class's
//! cap, loss and delay, and decoded at the far end.
//!
//! - **Camera → encoder.** The camera delivers a picture every `1/fps`;
//!   the encoder takes the newest one each time it is free (latest frame
//!   wins) and counts the ones it never took as dropped before the link.
//! - **Stream.** [`plan::choose`] at the class's cap picks it, as the
//!   sender would on a path measured at that rate: the rate-controlled
//!   wavelet stream (in-hospital) or AV1 of the picture downscaled by 2 or 4
//!   (rav1e, low latency, one frame of lookahead) at the class's video rate,
//!   scaled to the pictures' size. One more run sends the in-hospital
//!   class losslessly, as `med8k send` does by default.
//! - **Stamps, one clock.** Both ends are in this process: each frame
//!   carries its capture time (`capture_us`) and the bench notes when it
//!   was coded, delivered whole, and decoded, on one [`Instant`].
//! - **Far end.** Wavelet frames are decoded as they arrive by a sink that
//!   takes the newest (a monitor shows the latest picture) and compared
//!   with the picture captured: bit-exact when lossless, PSNR when lossy.
//!   AV1 frames are decoded after the run by FFmpeg (med8k has no AV1
//!   decoder of its own), every delivered frame in order, and compared
//!   with the downscaled picture the encoder was given.
//!
//! Every wait is bounded ([`CONNECT_TIMEOUT`], [`GRACE`], and
//! [`FramesOptions::max_seconds`] for the camera).

use std::collections::HashMap;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use med8k_av1::{Av1Config, downscale_420};
use med8k_codec::metrics::psnr;
use med8k_media::picture::Picture;
use med8k_pipeline::encode::Backend;
use med8k_transport::driver::{Congestion, Link};
use med8k_transport::proto::{Codec, Event, FrameHeader};
use serde::Serialize;
use tokio::sync::mpsc;

use super::fidelity::delta_e;
use super::frames_av1::{crop_even, decode_av1};
use super::live::Ends;
use super::{
    CONNECT_TIMEOUT, GRACE, Latency, Setup, check_path, classes::CLASSES, driver_config, impairment,
};
use crate::plan::{self, PIXELS_8K, StreamPlan};
use crate::{frame_header, mbps};

/// What [`bench_frames`] runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct FramesOptions {
    /// The camera's rate, frames per second.
    pub fps: f64,
    /// Pictures the camera delivers per class (more when fewer than
    /// [`min_coded`](Self::min_coded) were coded by then).
    pub camera_frames: u64,
    /// Frames coded per class at the least (a slow encoder at 8K codes few).
    pub min_coded: u64,
    /// The longest the camera runs per class, seconds (it stops then even
    /// if fewer than `min_coded` were coded, after at least one).
    pub max_seconds: f64,
    /// Random loss on the inter-hospital classes, percent.
    pub loss_percent: f64,
    /// One-way delay on the inter-hospital classes, ms.
    pub delay_ms: u64,
    /// Live frame deadline, ms.
    pub deadline_ms: u64,
}

impl Default for FramesOptions {
    fn default() -> Self {
        FramesOptions {
            fps: plan::FPS,
            camera_frames: 60,
            min_coded: 3,
            max_seconds: 120.0,
            // The inter-hospital path of `bench link --classes`.
            loss_percent: 1.0,
            delay_ms: 20,
            deadline_ms: 250,
        }
    }
}

/// Latency from capture to leaving one stage, over the frames that did.
#[derive(Debug, Clone, Serialize)]
pub struct StageLatency {
    /// `coded`, `delivered` or `decoded`.
    pub stage: &'static str,
    /// Frames that left the stage.
    pub frames: u64,
    /// Capture → leaving the stage.
    pub latency_ms: Latency,
}

/// What one class delivered.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct FramesReport {
    /// The class (`fall-back 40 Mbit/s`), with `lossless` for the lossless run.
    pub class: String,
    /// The relay's cap, Mbit/s.
    pub cap_mbps: f64,
    /// Loss, percent.
    pub loss_percent: f64,
    /// One-way delay, ms.
    pub delay_ms: u64,
    /// The stream sent (`wavelet 8K 2.01 bpp`, `AV1 96x54 …`, `wavelet lossless`).
    pub stream: String,
    /// Whether the stream is lossless (bit-exactness is checked then).
    pub lossless: bool,
    /// Where the wavelet codec ran (`cpu: 2 threads`), or `rav1e`.
    pub encoder: String,
    /// Coded picture size, `WxH`.
    pub picture: String,
    /// Pictures the camera delivered.
    pub camera_frames: u64,
    /// Frames coded and queued for the link.
    pub sent: u64,
    /// Pictures the camera delivered while the encoder was busy (never
    /// coded), and frames coded while the link's queue was full.
    pub dropped_before_link: u64,
    /// Pictures the encoder had taken and not yet coded when the camera
    /// stopped (AV1's encoder holds a few; the wavelet codec none).
    pub held_in_encoder: u64,
    /// Frames delivered whole.
    pub delivered: u64,
    /// Frames queued for the link and never delivered.
    pub lost: u64,
    /// Frames delivered later than the deadline after their hand-over.
    pub late: u64,
    /// Frames the far end decoded.
    pub decoded: u64,
    /// Frames delivered that the sink skipped for a newer one (wavelet).
    pub skipped_at_sink: u64,
    /// Seconds from the first capture to the last delivery.
    pub seconds: f64,
    /// Frames delivered per second of camera time.
    pub delivered_fps: f64,
    /// Coded bytes delivered over the camera time, Mbit/s.
    pub goodput_mbps: f64,
    /// Coded bytes handed to the link.
    pub payload_bytes: u64,
    /// UDP payload bytes the sender put on the wire (QUIC, retransmissions included).
    pub wire_bytes: u64,
    /// Capture → coded, delivered, decoded.
    pub stages: Vec<StageLatency>,
    /// Mean PSNR of the decoded frames against what went in (lossy), dB.
    pub psnr_db: Option<f64>,
    /// Mean over the decoded frames of each frame's mean CIE ΔE2000 against
    /// what went in ([`super::fidelity`]; lossy).
    pub delta_e_mean: Option<f64>,
    /// Mean over the decoded frames of each frame's 95th-percentile ΔE2000.
    pub delta_e_p95: Option<f64>,
    /// Decoded frames identical to the picture captured (lossless).
    pub exact: Option<u64>,
    /// What went wrong or was not measured, if anything (the figures are
    /// what was measured).
    pub error: Option<String>,
}

/// Runs every class on `pictures` (replayed in a loop) and reports.
pub fn bench_frames(
    pictures: &[Picture],
    options: &FramesOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<FramesReport>> {
    let first = pictures.first().context("no pictures to send")?;
    if pictures.iter().any(|p| {
        (p.width(), p.height(), p.layout()) != (first.width(), first.height(), first.layout())
    }) {
        bail!("the pictures differ in size or layout");
    }
    if !(options.fps > 0.0 && options.fps <= 1000.0) {
        bail!("camera rate {} is outside (0, 1000] frames/s", options.fps);
    }
    if options.camera_frames == 0 || options.min_coded == 0 || options.deadline_ms == 0 {
        bail!("camera frames, frames coded and the deadline must be at least 1");
    }
    check_path(Some(options.loss_percent), Some(options.delay_ms), None)?;
    let rt = crate::runtime()?;
    let mut out = Vec::new();
    let mut runs: Vec<(&str, f64, bool, bool)> = vec![(CLASSES[0].0, CLASSES[0].1, false, true)];
    runs.extend(
        CLASSES
            .iter()
            .map(|&(name, cap, wan)| (name, cap, wan, false)),
    );
    for (name, cap, wan, lossless) in runs {
        let (loss, delay) = if wan {
            (options.loss_percent, options.delay_ms)
        } else {
            (0.0, 0)
        };
        let stream = if lossless {
            Stream::Lossless
        } else {
            match plan::choose(cap) {
                StreamPlan::Wavelet { bpp, .. } => Stream::Wavelet(bpp),
                StreamPlan::Av1 { width, kbps, .. } => {
                    let factor = 7680 / width;
                    let share = f64::from(first.width() / factor * (first.height() / factor))
                        / (PIXELS_8K / f64::from(factor * factor));
                    Stream::Av1 {
                        factor,
                        kbps: ((f64::from(kbps) * share.min(1.0)).round() as u32).max(1),
                    }
                }
            }
        };
        let class = if lossless {
            format!("{name} lossless")
        } else {
            name.to_owned()
        };
        progress(&format!("  link {class}: {}", stream.describe(first)));
        let job = Job {
            class,
            cap,
            loss,
            delay_ms: delay,
            stream,
        };
        out.push(run_class(&rt, pictures, options, &job)?);
    }
    Ok(out)
}

/// What one class sends.
#[derive(Debug, Clone, Copy)]
enum Stream {
    Lossless,
    Wavelet(f64),
    Av1 { factor: u32, kbps: u32 },
}

impl Stream {
    fn describe(&self, pic: &Picture) -> String {
        match *self {
            Stream::Lossless => format!("wavelet lossless {}x{}", pic.width(), pic.height()),
            Stream::Wavelet(bpp) => {
                format!("wavelet {bpp:.2} bpp {}x{}", pic.width(), pic.height())
            }
            Stream::Av1 { factor, kbps } => format!(
                "AV1 {}x{} {kbps} kbit/s (downscaled by {factor})",
                pic.width() / factor,
                pic.height() / factor
            ),
        }
    }
}

struct Job {
    class: String,
    cap: f64,
    loss: f64,
    delay_ms: u64,
    stream: Stream,
}

/// A coded frame on its way to the link.
struct Coded {
    header: FrameHeader,
    payload: Vec<u8>,
}

/// What the camera and encoder thread came to.
#[derive(Default)]
pub(super) struct Camera {
    delivered: u64,
    coded: u64,
    dropped: u64,
    encoder: String,
    /// (capture µs, coded µs) of each frame coded.
    coded_at: Vec<(u64, u64)>,
    /// Coded bytes handed to the link.
    bytes: u64,
    /// Pictures taken by the encoder and not coded by the end.
    held: u64,
    /// Coded picture size.
    pub(super) width: u32,
    pub(super) height: u32,
}

/// Every frame delivered: (sequence number, capture µs, delivery µs, bytes).
type Arrivals = Arc<Mutex<Vec<(u64, u64, u64, usize)>>>;

/// A frame the far end got, for the sink.
pub(super) struct Arrived {
    pub(super) seq: u64,
    pub(super) capture_us: u64,
    pub(super) payload: Vec<u8>,
}

fn run_class(
    rt: &tokio::runtime::Runtime,
    pictures: &[Picture],
    options: &FramesOptions,
    job: &Job,
) -> anyhow::Result<FramesReport> {
    let window = (options.deadline_ms as f64 * options.fps / 1000.0).ceil() as u32 + 2;
    let config = driver_config(options.deadline_ms, window, Congestion::Bbr)
        // A lossless 8K frame is ~30 MB; let a few be read at once.
        .with_frame_buffer_budget(256 << 20);
    let setup = Setup::new(
        config,
        Some(impairment(
            job.loss,
            Duration::from_millis(job.delay_ms),
            Some(job.cap),
        )?),
    )?;
    let first = &pictures[0];
    let mut report = FramesReport {
        class: job.class.clone(),
        cap_mbps: job.cap,
        loss_percent: job.loss,
        delay_ms: job.delay_ms,
        stream: job.stream.describe(first),
        lossless: matches!(job.stream, Stream::Lossless),
        encoder: String::new(),
        picture: String::new(),
        camera_frames: 0,
        sent: 0,
        dropped_before_link: 0,
        held_in_encoder: 0,
        delivered: 0,
        lost: 0,
        late: 0,
        decoded: 0,
        skipped_at_sink: 0,
        seconds: 0.0,
        delivered_fps: 0.0,
        goodput_mbps: 0.0,
        payload_bytes: 0,
        wire_bytes: 0,
        stages: Vec::new(),
        psnr_db: None,
        delta_e_mean: None,
        delta_e_p95: None,
        exact: None,
        error: None,
    };
    let ends = match rt
        .block_on(async { tokio::time::timeout(CONNECT_TIMEOUT, Ends::open(&setup)).await })
    {
        Ok(Ok(ends)) => ends,
        Ok(Err(e)) => {
            report.error = Some(format!("{e:#}"));
            return Ok(report);
        }
        Err(_) => {
            report.error = Some(format!(
                "no session within {} s: the path delivered nothing",
                CONNECT_TIMEOUT.as_secs()
            ));
            return Ok(report);
        }
    };
    let Ends {
        tx,
        rx,
        server,
        relay,
    } = ends;
    let epoch = Instant::now();
    let deadline = Duration::from_millis(options.deadline_ms);
    let (coded_tx, coded_rx) = mpsc::channel::<Coded>(2);
    let (sink_tx, sink_rx) = std_mpsc::channel::<Arrived>();
    let handed: Arc<Mutex<HashMap<u64, u64>>> = Arc::default();
    let arrivals = Arrivals::default();
    let av1 = matches!(job.stream, Stream::Av1 { .. });
    let sender = rt.spawn(send_frames(tx, coded_rx, handed.clone(), epoch));
    let receiver = rt.spawn(receive_frames(rx, sink_tx, arrivals.clone(), epoch));
    let t0_us = 20_000;
    let period_us = (1e6 / options.fps).round() as u64;
    let index_of = move |capture_us: u64| ((capture_us - t0_us) / period_us) as usize;
    // The camera codes on this thread while the sink decodes on another;
    // then the sender finishes what was queued, the last frames arrive or
    // expire, and the session closes, which ends the receiver and the sink.
    let ran = std::thread::scope(|scope| {
        let sink = scope.spawn(move || {
            if av1 {
                // Every frame is kept, in order, for the decoder after the run.
                Sink::Kept(sink_rx.iter().collect())
            } else {
                Sink::Decoded(decode_newest(&sink_rx, pictures, &index_of, epoch))
            }
        });
        let camera = camera(
            pictures,
            options,
            job.stream,
            (epoch, t0_us, period_us),
            &coded_tx,
        );
        drop(coded_tx);
        if camera.is_err() {
            // Ends the sink too (its channel closes with the receiver).
            sender.abort();
            receiver.abort();
            server.close();
            return (camera, sink.join(), None, false, 0);
        }
        let (tx, send_error) = rt.block_on(async {
            match tokio::time::timeout(GRACE * 4, sender).await {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => (None, Some(format!("the sending task failed: {e}"))),
                Err(_) => (None, Some("the sender did not finish".to_owned())),
            }
        });
        let settle = (deadline * 2 + Duration::from_millis(200)).min(GRACE);
        rt.block_on(async { tokio::time::sleep(settle).await });
        let wire_bytes = tx.as_ref().map_or(0, |tx| {
            tx.close("bench done");
            tx.stats().bytes_sent
        });
        let received = rt.block_on(async { tokio::time::timeout(GRACE, receiver).await });
        drop(tx);
        server.close();
        (
            camera,
            sink.join(),
            send_error,
            matches!(received, Ok(Ok(()))),
            wire_bytes,
        )
    });
    drop(relay);
    let (camera, sink, send_error, received, wire_bytes) = ran;
    let camera = camera.with_context(|| format!("coding for {}", job.class))?;
    let sink = sink.map_err(|_| anyhow!("the decoding sink panicked"))?;
    report.wire_bytes = wire_bytes;
    let last_delivery_us = {
        let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        arrivals.iter().map(|a| a.2).max().unwrap_or(0)
    };
    report.encoder = camera.encoder.clone();
    report.picture = format!("{}x{}", camera.width, camera.height);
    report.camera_frames = camera.delivered;
    report.sent = camera.coded;
    report.dropped_before_link = camera.dropped;
    report.held_in_encoder = camera.held;
    let handed = handed.lock().unwrap_or_else(PoisonError::into_inner);
    let arrivals = arrivals.lock().unwrap_or_else(PoisonError::into_inner);
    report.delivered = arrivals.len() as u64;
    report.lost = report.sent.saturating_sub(report.delivered);
    report.late = arrivals
        .iter()
        .filter(|(seq, _, at, _)| {
            handed
                .get(seq)
                .is_some_and(|h| at.saturating_sub(*h) > deadline.as_micros() as u64)
        })
        .count() as u64;
    report.payload_bytes = camera.bytes;
    let delivered_bytes: u64 = arrivals.iter().map(|a| a.3 as u64).sum();
    let camera_seconds = camera.delivered as f64 / options.fps;
    report.seconds = last_delivery_us.saturating_sub(t0_us) as f64 / 1e6;
    report.delivered_fps = report.delivered as f64 / camera_seconds.max(1e-9);
    report.goodput_mbps = mbps(delivered_bytes, camera_seconds);
    report.stages.push(stage(
        "coded",
        camera.coded_at.iter().map(|(c, e)| e - c).collect(),
    ));
    report.stages.push(stage(
        "delivered",
        arrivals.iter().map(|a| a.2.saturating_sub(a.1)).collect(),
    ));
    let mut errors: Vec<String> = send_error.into_iter().collect();
    if !received {
        errors.push(format!(
            "the receiving end did not finish within {} s of the close",
            GRACE.as_secs()
        ));
    }
    match sink {
        Sink::Decoded(d) => {
            report.decoded = d.latency_us.len() as u64;
            report.skipped_at_sink = d.skipped;
            report.stages.push(stage("decoded", d.latency_us));
            if report.lossless {
                report.exact = Some(d.exact);
            } else {
                report.psnr_db = mean(d.psnr.iter().copied());
                report.delta_e_mean = mean(d.delta_e.iter().map(|e| e.0));
                report.delta_e_p95 = mean(d.delta_e.iter().map(|e| e.1));
            }
            errors.extend(d.error);
        }
        Sink::Kept(frames) => {
            let Stream::Av1 { factor, .. } = job.stream else {
                unreachable!("frames are kept for AV1 only")
            };
            match decode_av1(&frames, &camera, pictures, factor, &index_of) {
                Ok(d) => {
                    report.decoded = d.decoded;
                    report.psnr_db = mean(d.psnr.iter().copied());
                    report.delta_e_mean = mean(d.delta_e.iter().map(|e| e.0));
                    report.delta_e_p95 = mean(d.delta_e.iter().map(|e| e.1));
                }
                Err(e) => errors.push(format!("{e:#}")),
            }
        }
    }
    report.error = (!errors.is_empty()).then(|| errors.join("; "));
    Ok(report)
}

fn stage(name: &'static str, us: Vec<u64>) -> StageLatency {
    StageLatency {
        stage: name,
        frames: us.len() as u64,
        latency_ms: Latency::of(us),
    }
}

/// The camera and the encoder: a picture every period from `t0_us`, the
/// newest taken whenever the encoder is free, coded and queued for the
/// link (dropped when the queue is full: a live source never waits).
fn camera(
    pictures: &[Picture],
    options: &FramesOptions,
    stream: Stream,
    (epoch, t0_us, period_us): (Instant, u64, u64),
    queue: &mpsc::Sender<Coded>,
) -> anyhow::Result<Camera> {
    enum Enc {
        Wavelet(med8k_codec::Encoder),
        Av1(Box<med8k_av1::Av1Encoder>, u32, HashMap<u64, u64>),
    }
    let first = &pictures[0];
    let mut out = Camera::default();
    let mut enc = match stream {
        Stream::Lossless | Stream::Wavelet(_) => {
            let config = match stream {
                Stream::Wavelet(bpp) => med8k_codec::Config::bpp(bpp),
                _ => med8k_codec::Config::lossless(),
            };
            let (e, name) = Backend::Auto.encoder(&config)?;
            out.encoder = name;
            (out.width, out.height) = (first.width(), first.height());
            Enc::Wavelet(e)
        }
        Stream::Av1 { factor, kbps } => {
            let (w, h) = (first.width() / factor, first.height() / factor);
            let e = Av1Config::new(kbps)
                .with_lookahead(Some(1))
                .with_frame_rate((options.fps.round() as u32).max(1), 1)
                .new_encoder(w & !1, h & !1)?;
            out.encoder = "rav1e".into();
            (out.width, out.height) = (w & !1, h & !1);
            Enc::Av1(Box::new(e), factor, HashMap::new())
        }
    };
    let began = Instant::now();
    let mut next = 0u64;
    loop {
        let now_us = epoch.elapsed().as_micros() as u64;
        let due = t0_us + next * period_us;
        if now_us < due {
            std::thread::sleep(Duration::from_micros(due - now_us));
            continue;
        }
        // The newest picture the camera has delivered.
        let k = (now_us - t0_us) / period_us;
        let enough = out.coded >= options.min_coded
            || (out.coded >= 1 && began.elapsed().as_secs_f64() >= options.max_seconds);
        if k >= options.camera_frames && enough {
            break;
        }
        out.dropped += k - next;
        next = k + 1;
        out.delivered = next;
        let pic = &pictures[(k % pictures.len() as u64) as usize];
        let capture_us = t0_us + k * period_us;
        let mut ready = Vec::new();
        match &mut enc {
            Enc::Wavelet(e) => {
                let packet = e.encode(pic)?;
                let header = frame_header(
                    pic,
                    matches!(stream, Stream::Lossless),
                    &packet.data,
                    capture_us,
                );
                ready.push((header, packet.data));
            }
            Enc::Av1(e, factor, frames) => {
                let small = downscale_420(pic, *factor, 8)?;
                let small = crop_even(small, e.width(), e.height())?;
                frames.insert(e.pictures_sent(), capture_us);
                e.send_picture(&small)?;
                for p in e.receive_packets()? {
                    let at = frames.remove(&p.frame).unwrap_or(capture_us);
                    let mut header = frame_header(&small, false, &p.data, at);
                    header.codec = Codec::Av1;
                    ready.push((header, p.data));
                }
            }
        }
        let coded_us = epoch.elapsed().as_micros() as u64;
        for (header, payload) in ready {
            let (capture_us, len) = (header.capture_us, payload.len() as u64);
            match queue.try_send(Coded { header, payload }) {
                Ok(()) => {
                    out.coded += 1;
                    out.coded_at.push((capture_us, coded_us));
                    out.bytes += len;
                }
                // The link is behind: this frame never reaches it.
                Err(mpsc::error::TrySendError::Full(_)) => out.dropped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => bail!("the link's sender ended"),
            }
        }
    }
    if let Enc::Av1(_, _, waiting) = &enc {
        out.held = waiting.len() as u64;
    }
    Ok(out)
}

/// The sending end: hands each coded frame to the link and notes when
/// (by sequence number); returns the link for its figures and close.
async fn send_frames(
    mut tx: Link,
    mut queue: mpsc::Receiver<Coded>,
    handed: Arc<Mutex<HashMap<u64, u64>>>,
    epoch: Instant,
) -> (Option<Link>, Option<String>) {
    while let Some(c) = queue.recv().await {
        // Loss reports from the peer are read so its queue never fills.
        while tx.try_next_event().is_some() {}
        let at = epoch.elapsed().as_micros() as u64;
        match tokio::time::timeout(GRACE, tx.send_frame(c.header, c.payload)).await {
            Ok(Ok(seq)) => {
                handed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(seq, at);
            }
            Ok(Err(e)) => return (Some(tx), Some(format!("sending a frame: {e}"))),
            Err(_) => {
                return (
                    Some(tx),
                    Some(format!("the link took no frame for {} s", GRACE.as_secs())),
                );
            }
        }
    }
    (Some(tx), None)
}

/// The receiving end: notes each frame delivered (sequence number, capture
/// µs, delivery µs, bytes) and passes it to the sink; ends with the session.
async fn receive_frames(
    mut rx: Link,
    sink: std_mpsc::Sender<Arrived>,
    arrivals: Arrivals,
    epoch: Instant,
) {
    while let Some(event) = rx.next_event().await {
        if let Event::Frame(f) = event {
            let delivered_us = epoch.elapsed().as_micros() as u64;
            let capture_us = f.header.capture_us;
            arrivals
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((f.header.seq, capture_us, delivered_us, f.payload.len()));
            // The sink ends only after this task: a send error cannot happen
            // but is harmless.
            let _ = sink.send(Arrived {
                seq: f.header.seq,
                capture_us,
                payload: f.payload,
            });
        }
    }
}

/// What the far end's sink came to.
enum Sink {
    Decoded(Decoded),
    Kept(Vec<Arrived>),
}

#[derive(Default)]
pub(super) struct Decoded {
    /// Frames decoded.
    pub(super) decoded: u64,
    latency_us: Vec<u64>,
    skipped: u64,
    exact: u64,
    /// Each decoded frame's PSNR against what went in.
    pub(super) psnr: Vec<f64>,
    /// Each decoded frame's ΔE2000 (mean, p95) against what went in.
    pub(super) delta_e: Vec<(f64, f64)>,
    error: Option<String>,
}

/// The monitor's sink: decodes the newest frame delivered whenever it is
/// free, and compares it with the picture captured.
fn decode_newest(
    arrived: &std_mpsc::Receiver<Arrived>,
    pictures: &[Picture],
    index_of: &dyn Fn(u64) -> usize,
    epoch: Instant,
) -> Decoded {
    let mut out = Decoded::default();
    let mut decoder = match Backend::Auto.decoder() {
        Ok(d) => d,
        Err(e) => {
            out.error = Some(format!("no decoder: {e}"));
            return out;
        }
    };
    while let Ok(mut frame) = arrived.recv() {
        // Latest frame wins: skip to the newest already here.
        while let Ok(newer) = arrived.try_recv() {
            out.skipped += 1;
            frame = newer;
        }
        let pic = match decoder.decode(&frame.payload, med8k_codec::DEFAULT_MAX_SAMPLES) {
            Ok(p) => p,
            Err(e) => {
                out.error
                    .get_or_insert(format!("decoding frame {}: {e}", frame.seq));
                continue;
            }
        };
        let decoded_us = epoch.elapsed().as_micros() as u64;
        out.latency_us
            .push(decoded_us.saturating_sub(frame.capture_us));
        let original = &pictures[index_of(frame.capture_us) % pictures.len()];
        if pic == *original {
            out.exact += 1;
        }
        out.psnr.push(psnr(original, &pic));
        out.delta_e.extend(delta_e(original, &pic));
    }
    out
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let (sum, n) = values.fold((0.0, 0usize), |(s, n), v| (s + v, n + 1));
    (n > 0).then(|| sum / n as f64)
}
