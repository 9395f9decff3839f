//! The sending site (`med8k send`): captures, codes and sends live frames,
//! and a file on the reliable channel too.
//!
//! Capture and coding run on a thread of their own and hand frames to the
//! link through a short queue: a live source drops frames when the link
//! falls behind (counted), a file waits.
//!
//! With a model (a `frame-ycbcr` ONNX model and its sidecar), a
//! detector thread analyses the newest captured picture whenever it is idle
//! ("latest frame wins": pictures captured while it is busy are not
//! analysed, and capture never waits for it). Each result is stamped with
//! the sequence number the link gave that frame and sent as a `FrameMeta`
//! (score, the contract's threshold, boxes normalised to the picture) as
//! soon as both the frame and its result are there.

mod capture;
mod detect;
mod object;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use med8k_codec::Mode;
use med8k_pipeline::Shutdown;
use med8k_pipeline::input::InputSpec;
use med8k_transport::driver::{Dialer, Link, LinkError};
use med8k_transport::proto::{
    CallError, Capabilities, CloseReason, ClosedBy, Ended, Event, SeqRange,
};
use tokio::sync::mpsc;

use crate::site::SiteConfig;
use crate::{count_lost, development_credentials, mbps};
use capture::{Captured, Coded, FrameSink, capture};
use detect::{CloseOnDrop, Stamps, load_model, next_result, start_detector};
use object::open_object;

/// Attempts to reach the receiver before giving up (with backoff between).
const CONNECT_ATTEMPTS: u32 = 5;

/// Coded frames waiting for the link.
const SEND_QUEUE: usize = 4;
/// Object bytes handed to the link per call.
const OBJECT_PIECE: usize = 1 << 20;
/// How long a piece of the object may wait to be taken by the connection
/// (the receiver reads nothing: flow control holds the sender) before the
/// link counts as stalled and is dialled again; the object then resumes
/// from what the receiver acknowledged.
const OBJECT_STALL: Duration = Duration::from_secs(30);
/// Sizes of the most recent frames kept to count the bytes of frames
/// reported lost (older reports count frames, not bytes).
const SIZES_KEPT: usize = 4096;

/// What [`send`] sends, and where.
#[derive(Debug, Clone)]
pub struct SendOptions {
    /// The receiving site's address.
    pub to: SocketAddr,
    /// The site configuration (TOML).
    pub config: PathBuf,
    /// The frames: a clip, a sample folder, a picture or raw file, or a
    /// GStreamer pipeline ([`InputSpec`]).
    pub source: InputSpec,
    /// Target bits per pixel per frame; `None` is lossless.
    pub bpp: Option<f64>,
    /// The facility the receiver's certificate must name (default: the one
    /// allowed facility of the configuration).
    pub facility: Option<String>,
    /// Also send this file on the reliable channel (a cube's .raw, a DICOM file…).
    pub object: Option<PathBuf>,
    /// Most frames to send.
    pub frames: Option<u64>,
    /// Frames per second from a file (a live source keeps its own pace);
    /// sent faster than the link takes them, newer frames overtake older
    /// ones, which are then lost.
    pub fps: f64,
    /// Run this anomaly model (a `frame-ycbcr` ONNX model beside its
    /// `.json` sidecar) on the newest captured frame whenever it is idle,
    /// and send each result with its frame as metadata.
    pub model: Option<PathBuf>,
}

impl SendOptions {
    /// Send `source` losslessly at 60 frames/s to `to`, as the site
    /// `config` describes.
    pub fn new(to: SocketAddr, config: impl Into<PathBuf>, source: InputSpec) -> Self {
        SendOptions {
            to,
            config: config.into(),
            source,
            bpp: None,
            facility: None,
            object: None,
            frames: None,
            fps: 60.0,
            model: None,
        }
    }
}

/// What [`send`] reports as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendEvent {
    /// The session opened.
    Connected {
        /// The receiving facility.
        facility: String,
        /// Its address.
        to: SocketAddr,
    },
    /// The link was lost and is back.
    Reconnected {
        /// The receiving facility.
        facility: String,
        /// Its address.
        to: SocketAddr,
        /// Reconnections so far.
        count: u32,
    },
    /// The object arrived whole and checked.
    ObjectDelivered {
        /// Its id.
        id: u64,
        /// Its size.
        bytes: u64,
    },
}

/// What a send came to.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SendReport {
    /// Frames captured.
    pub captured: u64,
    /// Where they were coded (`gpu: ...`, `cpu: N threads`).
    pub encoder: String,
    /// Frames sent.
    pub sent: u64,
    /// Frames the receiver reported lost or late.
    pub lost: u64,
    /// Frames dropped before sending (a live source ahead of the link,
    /// frames past their deadline after an outage).
    pub dropped: u64,
    /// Goodput of the frames that arrived, Mbit/s.
    pub goodput_mbps: f64,
    /// From the first frame sent to the last.
    pub seconds: f64,
    /// Reconnections after an outage.
    pub reconnects: u32,
    /// The detector's figures, with a model.
    pub detection: Option<DetectionReport>,
    /// Whether it stopped on a shutdown request.
    pub interrupted: bool,
}

/// What the detector did during a send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DetectionReport {
    /// Frames analysed.
    pub analysed: u64,
    /// Frames captured while it was busy.
    pub skipped: u64,
    /// Frames not analysed because they are not Y'CbCr.
    pub unsupported: u64,
    /// Model inputs made on the GPU next to compression.
    pub inputs_on_gpu: u64,
    /// `FrameMeta` messages sent.
    pub metas: u64,
    /// Results whose frame never went.
    pub unsent: u64,
}

/// Captures, codes and sends until the source ends, `options.frames`, or
/// `shutdown`; reconnects (with backoff) when the link drops, drops frames
/// that passed their deadline meanwhile, and resumes the object. `on` hears
/// what happens.
pub fn send(
    args: &SendOptions,
    shutdown: &Shutdown,
    on: &mut (dyn FnMut(SendEvent) + Send),
) -> anyhow::Result<SendReport> {
    let config = SiteConfig::load(&args.config)?;
    let site = config.site(Capabilities::SEND_LIVE | Capabilities::SEND_OBJECTS)?;
    let driver = config.driver_config();
    let facility = match (&args.facility, config.allowed.as_slice()) {
        (Some(f), _) => f.clone(),
        (None, [only]) => only.clone(),
        (None, many) => bail!(
            "name the receiving facility with --facility (allowed: {})",
            many.join(", ")
        ),
    };
    let object = match &args.object {
        Some(path) => Some(open_object(path)?),
        None => None,
    };
    let mode = args.bpp.map_or(Mode::Lossless, Mode::Bpp);
    let codec_config = med8k_codec::Config::lossless().with_mode(mode);
    codec_config.validate()?;
    let lossless = args.bpp.is_none();
    if !(args.fps > 0.0 && args.fps <= 1000.0) {
        bail!("--fps {} is outside (0, 1000]", args.fps);
    }
    let period = Duration::from_secs_f64(1.0 / args.fps);
    let model = match &args.model {
        Some(path) => Some(load_model(path)?),
        None => None,
    };
    let detector = match &model {
        Some(m) => Some(start_detector(m)?),
        None => None,
    };
    let mailbox = detector.as_ref().map(|d| d.mailbox.clone());
    let input_size = model.as_ref().map_or((0, 0), |m| {
        let input = &m.contract().input;
        (input.width() as u32, input.height() as u32)
    });
    // The source opens on the capture thread (GStreamer objects stay there);
    // frames wait in the queue until the session opens.
    let (tx, mut rx) = mpsc::channel::<Coded>(SEND_QUEUE);
    let (ready_tx, ready) = std::sync::mpsc::sync_channel(1);
    let epoch = Instant::now();
    let capture = {
        let stop = shutdown.clone();
        let spec = args.source.clone();
        let limit = args.frames.unwrap_or(u64::MAX) as usize;
        std::thread::Builder::new()
            .name("med8k-send-capture".into())
            .spawn(move || {
                // The detector stops once capture does, whatever happens.
                let _close = CloseOnDrop(mailbox.clone());
                let source = match spec.open("capture") {
                    Ok(input) => {
                        let _ = ready_tx.send(Ok(()));
                        let live = input.is_live();
                        (input.pictures(), live, limit)
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow::Error::from(e).context(format!(
                            "{spec} is neither a file nor a usable GStreamer pipeline"
                        ))));
                        return Ok(Captured::default());
                    }
                };
                let sink = FrameSink {
                    tx: &tx,
                    detector: mailbox.as_deref(),
                    input_size,
                };
                capture(source, &codec_config, lossless, period, epoch, &sink, &stop)
            })?
    };
    ready
        .recv()
        .map_err(|_| anyhow::anyhow!("the capture thread ended"))??;

    let (mut results, worker) = match detector {
        Some(d) => (Some(d.results), Some(d.worker)),
        None => (None, None),
    };
    let rt = crate::runtime()?;
    rt.block_on(async {
        // A receiver that is not up yet (or a link that does not answer)
        // is tried again with backoff; a refusal is final at once.
        let mut dialer = Dialer::new(
            args.to,
            site,
            facility.clone(),
            development_credentials(),
            driver.clone(),
        )
        .on_retry(|attempt, error, delay| {
            tracing::warn!(attempt, %error, ?delay, "connecting failed, trying again");
        });
        let mut link = dialer
            .connect(Some(CONNECT_ATTEMPTS))
            .await
            .with_context(|| format!("connecting to {facility} at {}", args.to))?;
        wait_open(&mut link).await?;
        on(SendEvent::Connected {
            facility: facility.clone(),
            to: args.to,
        });

        let mut outgoing = object;
        if let Some(o) = &outgoing {
            link.offer_object(o.offer()).await?;
        }
        let mut sizes: BTreeMap<u64, u32> = BTreeMap::new();
        let mut lost = 0u64;
        let mut lost_bytes = 0u64;
        let mut sent_bytes = 0u64;
        let mut stale = 0u64;
        let mut sent_frames = 0u64;
        let mut reconnects = 0u32;
        let mut frames_done = false;
        let mut stamps = Stamps {
            on: results.is_some(),
            ..Stamps::default()
        };
        let mut closed = None;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let start = Instant::now();
        let mut last_send = start;
        let deadline = driver.session.frame_deadline;
        let interrupted = loop {
            let object_ready = outgoing.as_ref().is_some_and(|o| o.next.is_some());
            let object_done = outgoing.as_ref().is_none_or(|o| o.delivered);
            if frames_done && object_done && results.is_none() {
                break false;
            }
            let mut link_lost = false;
            tokio::select! {
                biased;
                event = link.next_event() => match event {
                    Some(Event::PeerFramesLost { ranges, .. }) => {
                        lost = lost.saturating_add(count_lost(&ranges));
                        lost_bytes += take_sizes(&mut sizes, &ranges);
                    }
                    Some(Event::ObjectResume { id, from }) => {
                        if let Some(o) = outgoing.as_mut().filter(|o| o.id == id) {
                            o.next = Some(from);
                        }
                    }
                    Some(Event::ObjectDelivered { id }) => {
                        if let Some(o) = outgoing.as_mut().filter(|o| o.id == id) {
                            o.delivered = true;
                            o.next = None;
                            on(SendEvent::ObjectDelivered { id, bytes: o.size });
                        }
                    }
                    Some(Event::ObjectRefused { id }) => bail!("the receiver refused object {id:016x}"),
                    Some(Event::Closed { by, why, detail }) => {
                        link_lost = connection_lost(by, &why);
                        closed = Some(format!("closed by {by:?}: {why:?} ({detail})"));
                    }
                    Some(_) => {}
                    None => link_lost = closed.is_none(),
                },
                coded = rx.recv(), if !frames_done => match coded {
                    Some(c) => {
                        let len = c.payload.len();
                        let channel = c.header.channel;
                        // A link that just ended refuses the frame; its
                        // Closed event comes next and decides what follows.
                        let Ok(seq) = link.send_frame(c.header, c.payload).await else {
                            stale += 1;
                            continue;
                        };
                        stamps.frame_sent(&link, c.index, channel, seq).await;
                        sizes.insert(seq, u32::try_from(len).unwrap_or(u32::MAX));
                        if sizes.len() > SIZES_KEPT {
                            sizes.pop_first();
                        }
                        sent_bytes += len as u64;
                        sent_frames += 1;
                        last_send = Instant::now();
                    }
                    None => frames_done = true,
                },
                analysed = next_result(&mut results) => match analysed {
                    Some(a) => stamps.result(&link, a).await,
                    None => {
                        results = None;
                        stamps.on = false;
                    }
                },
                () = std::future::ready(()), if object_ready => {
                    if let Some(o) = outgoing.as_mut() {
                        let piece = tokio::time::timeout(OBJECT_STALL, o.send_piece(&link));
                        let sent = tokio::select! {
                            sent = piece => sent,
                            () = shutdown_requested(shutdown) => break true,
                        };
                        match sent {
                            Ok(Ok(())) => {}
                            // Resumed from what was acknowledged once the
                            // link is back; anything else is fatal.
                            Ok(Err(e)) if link_ended(&e) => o.next = None,
                            Ok(Err(e)) => return Err(e),
                            Err(_) => {
                                tracing::warn!(
                                    "the receiver took no object bytes for {} s; dialling again",
                                    OBJECT_STALL.as_secs()
                                );
                                o.next = None;
                                link.close("object stream stalled");
                                link_lost = true;
                            }
                        }
                    }
                }
                _ = tick.tick() => {
                    if shutdown.is_requested() {
                        break true;
                    }
                }
            }
            if link_lost {
                // The connection went (an outage, the receiver restarted):
                // dial again and go on. Frames captured meanwhile that are
                // past their deadline are dropped, not sent late; the
                // object resumes from what the receiver acknowledged.
                tracing::warn!("the link was lost; reconnecting");
                dialer.link_ended(link).await;
                link = dialer
                    .connect(Some(CONNECT_ATTEMPTS))
                    .await
                    .with_context(|| format!("reconnecting to {facility} at {}", args.to))?;
                wait_open(&mut link).await?;
                reconnects += 1;
                closed = None;
                // A new session numbers frames from 0 again.
                sizes.clear();
                stamps.reconnected();
                if let Some(o) = outgoing.as_mut() {
                    o.next = None;
                }
                let now_us = epoch.elapsed().as_micros() as u64;
                while let Ok(c) = rx.try_recv() {
                    if now_us.saturating_sub(c.header.capture_us) <= deadline.as_micros() as u64 {
                        sent_bytes += c.payload.len() as u64;
                        let channel = c.header.channel;
                        let Ok(seq) = link.send_frame(c.header, c.payload).await else {
                            stale += 1;
                            continue;
                        };
                        stamps.frame_sent(&link, c.index, channel, seq).await;
                        sent_frames += 1;
                    } else {
                        stale += 1;
                    }
                }
                on(SendEvent::Reconnected {
                    facility: facility.clone(),
                    to: args.to,
                    count: reconnects,
                });
            } else if closed.is_some() {
                // Closed for good (refused, revoked, shut down by the peer).
                break false;
            }
        };
        // Loss reports for the last frames come within a deadline and a round trip.
        let grace = driver.session.frame_deadline + Duration::from_millis(300);
        let until = tokio::time::Instant::now() + grace;
        while let Ok(Some(event)) = tokio::time::timeout_at(until, link.next_event()).await {
            if let Event::PeerFramesLost { ranges, .. } = event {
                lost = lost.saturating_add(count_lost(&ranges));
            }
        }
        link.close("sender done");
        let _ = tokio::time::timeout(Duration::from_secs(2), link.into_transfers()).await;
        // The capture thread may wait on a full queue: closing it ends that.
        drop(rx);
        let captured = capture
            .join()
            .map_err(|_| anyhow::anyhow!("the capture thread panicked"))??;
        let seconds = (last_send - start).as_secs_f64();
        let mut report = SendReport {
            captured: captured.frames,
            encoder: captured.encoder,
            sent: sent_frames,
            lost,
            dropped: captured.dropped + stale,
            goodput_mbps: mbps(sent_bytes.saturating_sub(lost_bytes), seconds),
            seconds,
            reconnects,
            detection: None,
            interrupted,
        };
        if let Some(worker) = worker {
            // The capture thread closed the mailbox: the worker ends after
            // at most the frame it holds.
            let analysed = worker
                .join()
                .map_err(|_| anyhow::anyhow!("the detector thread panicked"))?;
            report.detection = Some(DetectionReport {
                analysed,
                skipped: captured.frames.saturating_sub(analysed),
                unsupported: captured.unsupported,
                inputs_on_gpu: captured.inputs_on_gpu,
                metas: stamps.metas,
                unsent: stamps.unsent + stamps.waiting.len() as u64,
            });
        }
        if let Some(c) = closed {
            tracing::info!("{c}");
        }
        if let Some(o) = &outgoing
            && !o.delivered
        {
            bail!("object {:016x} was not delivered", o.id);
        }
        anyhow::Ok(report)
    })
}

/// Bytes of the frames in `ranges` whose sizes are still kept; each frame's
/// size is taken once (a frame named again counts no bytes), and the work
/// is bounded by the sizes kept, not by the ranges the peer names.
fn take_sizes(sizes: &mut BTreeMap<u64, u32>, ranges: &[SeqRange]) -> u64 {
    let mut bytes = 0u64;
    for r in ranges {
        if r.first > r.last {
            continue;
        }
        let gone: Vec<u64> = sizes.range(r.first..=r.last).map(|(&s, _)| s).collect();
        for s in gone {
            bytes += sizes.remove(&s).map_or(0, u64::from);
        }
    }
    bytes
}

/// Resolves once a shutdown is requested (looked at every 50 ms).
async fn shutdown_requested(shutdown: &Shutdown) {
    while !shutdown.is_requested() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether an error says the link had ended (not a fault of the call).
fn link_ended(e: &anyhow::Error) -> bool {
    matches!(
        e.downcast_ref::<LinkError>(),
        Some(LinkError::Ended | LinkError::Call(CallError::NotOpen { .. }))
    )
}

/// Whether a session ended because its connection went (an outage, an idle
/// timeout, the peer's process gone), not because either end closed it.
fn connection_lost(by: ClosedBy, why: &Ended) -> bool {
    by == ClosedBy::Local
        && matches!(
            why,
            Ended::Close(CloseReason::Shutdown) | Ended::Close(CloseReason::Timeout)
        )
}

/// Waits for the gate's permit.
async fn wait_open(link: &mut Link) -> anyhow::Result<()> {
    while let Some(event) = link.next_event().await {
        match event {
            Event::Open { .. } => return Ok(()),
            Event::Closed { why, detail, .. } => {
                bail!("the session was not opened: {why:?} ({detail})")
            }
            _ => {}
        }
    }
    bail!("the link ended before the session opened")
}
