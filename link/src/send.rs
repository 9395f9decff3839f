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

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use med8k_codec::Mode;
use med8k_detect::contract::InputSource;
use med8k_detect::input::picture_tensor;
use med8k_detect::model::{Model, ModelError};
use med8k_detect::schedule::Mailbox;
use med8k_media::picture::{Layout, Picture};
use med8k_pipeline::Shutdown;
use med8k_pipeline::encode::{Backend, ResidentInputs};
use med8k_pipeline::input::{InputSpec, Pictures};
use med8k_transport::driver::{Dialer, Link, LinkError};
use med8k_transport::proto::{
    BoundingBox, CallError, Capabilities, CloseReason, ClosedBy, Ended, Event, FrameHeader,
    FrameMeta, MAX_BOXES, ObjectKind, ObjectOffer, Quality,
};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::site::SiteConfig;
use crate::{count_lost, development_credentials, frame_header, mbps};

/// Attempts to reach the receiver before giving up (with backoff between).
const CONNECT_ATTEMPTS: u32 = 5;

/// Coded frames waiting for the link.
const SEND_QUEUE: usize = 4;
/// Object bytes handed to the link per call.
const OBJECT_PIECE: usize = 1 << 20;

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

/// A coded frame for the link.
struct Coded {
    /// The frame's index in capture order (results name frames by it).
    index: u64,
    header: FrameHeader,
    payload: Vec<u8>,
}

/// What the capture thread came to.
#[derive(Debug, Default)]
struct Captured {
    frames: u64,
    dropped: u64,
    encoder: String,
    /// Frames not offered to the detector because their layout is not Y'CbCr.
    unsupported: u64,
    /// Model inputs made on the GPU next to compression.
    inputs_on_gpu: u64,
}

/// A detector result, waiting for its frame's link sequence number.
#[derive(Debug, Clone)]
struct Analysed {
    /// The frame's capture index.
    index: u64,
    score: f32,
    threshold: f32,
    /// Normalised to the picture, at most [`MAX_BOXES`].
    boxes: Vec<BoundingBox>,
    /// The image-quality alarm, when the model has one.
    quality: Option<Quality>,
}

/// The detector side of a send: the worker's mailbox and its results.
struct Detector {
    mailbox: Arc<Mailbox<(u64, ToAnalyse)>>,
    results: mpsc::UnboundedReceiver<Analysed>,
    worker: std::thread::JoinHandle<u64>,
}

/// What the detector is given: a copy of the picture (it makes the model
/// input), or the input made already next to compression on the GPU.
enum ToAnalyse {
    Picture(Picture),
    Input {
        tensor: Vec<f32>,
        /// The picture's width and height.
        size: (usize, usize),
    },
}

/// Frames sent and detection results, matched by capture index.
#[derive(Debug, Default)]
struct Stamps {
    /// Whether results may still come (frames sent are remembered).
    on: bool,
    /// Capture index -> (channel, link sequence number) of frames sent in
    /// this session.
    sent: HashMap<u64, (u16, u64)>,
    /// Results whose frame has not been sent yet.
    waiting: BTreeMap<u64, Analysed>,
    /// `FrameMeta` messages sent.
    metas: u64,
    /// Results whose frame never went (dropped, stale, or the meta failed).
    unsent: u64,
}

impl Stamps {
    /// A frame went as `(channel, seq)`: its result, if already there,
    /// goes now.
    async fn frame_sent(&mut self, link: &Link, index: u64, channel: u16, seq: u64) {
        // Results of older frames that never went will not find them.
        let rest = self.waiting.split_off(&index);
        self.unsent += self.waiting.len() as u64;
        self.waiting = rest;
        if let Some(a) = self.waiting.remove(&index) {
            self.send(link, a, channel, seq).await;
        } else if self.on {
            self.sent.insert(index, (channel, seq));
        }
    }

    /// A result is ready: it goes now if its frame went, else waits.
    async fn result(&mut self, link: &Link, a: Analysed) {
        // Results come in capture order: older frames get none now.
        self.sent.retain(|&i, _| i >= a.index);
        match self.sent.remove(&a.index) {
            Some((channel, seq)) => self.send(link, a, channel, seq).await,
            None => {
                self.waiting.insert(a.index, a);
            }
        }
    }

    async fn send(&mut self, link: &Link, a: Analysed, channel: u16, seq: u64) {
        let meta = FrameMeta {
            channel,
            seq,
            score: a.score,
            threshold: a.threshold,
            boxes: a.boxes,
            quality: a.quality,
        };
        match link.send_frame_meta(meta).await {
            Ok(()) => self.metas += 1,
            Err(e) => {
                self.unsent += 1;
                tracing::warn!(seq, "sending the detection result: {e}");
            }
        }
    }

    /// A new session numbers frames from 0 again: forget the old numbers.
    fn reconnected(&mut self) {
        self.unsent += self.sent.len() as u64;
        self.sent.clear();
    }
}

/// The object being sent.
struct Outgoing {
    id: u64,
    kind: ObjectKind,
    file: std::fs::File,
    size: u64,
    sha: [u8; 32],
    next: Option<u64>,
    delivered: bool,
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
        let mut sizes: Vec<u32> = Vec::new();
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
                        lost += count_lost(&ranges);
                        for r in &ranges {
                            for s in r.first..=r.last {
                                lost_bytes += sizes.get(s as usize).copied().map_or(0, u64::from);
                            }
                        }
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
                        let i = seq as usize;
                        if sizes.len() <= i {
                            sizes.resize(i + 1, 0);
                        }
                        sizes[i] = len as u32;
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
                    if let Some(o) = outgoing.as_mut()
                        && let Err(e) = o.send_piece(&link).await
                    {
                        // Resumed from what was acknowledged once the
                        // link is back; anything else is fatal.
                        if !link_ended(&e) {
                            return Err(e);
                        }
                        o.next = None;
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
                lost += count_lost(&ranges);
            }
        }
        link.close("sender done");
        let _ = tokio::time::timeout(Duration::from_secs(2), link.into_transfers()).await;
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

/// What the receiver is told the object is, from its name: DICOM Part 10
/// (`.dcm`), a spectral cube (ENVI `.hdr`/`.raw`/`.img`), a
/// still image, or other.
fn object_kind(path: &Path) -> ObjectKind {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("dcm" | "dicom") => ObjectKind::Dicom,
        Some("hdr" | "raw" | "img") => ObjectKind::SpectralCube,
        Some("png" | "tif" | "tiff" | "pgm" | "ppm" | "jpg" | "jpeg") => ObjectKind::Image,
        _ => ObjectKind::Other,
    }
}

fn open_object(path: &Path) -> anyhow::Result<Outgoing> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; OBJECT_PIECE];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    if size == 0 {
        bail!("{} is empty", path.display());
    }
    let sha: [u8; 32] = hasher.finalize().into();
    let id = u64::from_be_bytes(sha[..8].try_into()?);
    Ok(Outgoing {
        id,
        kind: object_kind(path),
        file,
        size,
        sha,
        next: None,
        delivered: false,
    })
}

impl Outgoing {
    fn offer(&self) -> ObjectOffer {
        ObjectOffer {
            id: self.id,
            kind: self.kind,
            size: self.size,
            sha256: self.sha,
        }
    }

    async fn send_piece(&mut self, link: &Link) -> anyhow::Result<()> {
        let Some(offset) = self.next else {
            return Ok(());
        };
        let len = (self.size - offset).min(OBJECT_PIECE as u64) as usize;
        let mut data = vec![0u8; len];
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(&mut data)?;
        link.send_object_data(self.id, offset, data).await?;
        let next = offset + len as u64;
        self.next = (next < self.size).then_some(next);
        Ok(())
    }
}

/// Loads `--model`: a frame model, checked against its sidecar.
fn load_model(path: &Path) -> anyhow::Result<Model> {
    let model = Model::load(path).map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let source = model.contract().input.source;
    if source != InputSource::FrameYcbcr {
        bail!(
            "--model {}: a {source:?} model, not a frame (frame-ycbcr) model",
            path.display()
        );
    }
    Ok(model)
}

/// Starts the detector thread: it takes the newest offered picture, runs
/// the model and sends the result; it ends when the mailbox is closed and
/// empty, returning how many frames it analysed.
fn start_detector(model: &Model) -> anyhow::Result<Detector> {
    let mut runner = model
        .runner()
        .map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let mailbox: Arc<Mailbox<(u64, ToAnalyse)>> = Arc::new(Mailbox::new());
    let (tx, results) = mpsc::unbounded_channel();
    let worker = {
        let mailbox = mailbox.clone();
        std::thread::Builder::new()
            .name("med8k-send-detect".into())
            .spawn(move || {
                let mut analysed = 0u64;
                let mut failed = 0u64;
                while let Some((index, job)) = mailbox.take() {
                    match analyse(&mut runner, index, job) {
                        Ok(a) => {
                            analysed += 1;
                            // The link loop gone: nobody wants results.
                            let _ = tx.send(a);
                        }
                        Err(e) => {
                            failed += 1;
                            if failed == 1 {
                                tracing::warn!("detection failed on frame {index}: {e}");
                            }
                        }
                    }
                    mailbox.done();
                }
                if failed > 1 {
                    tracing::warn!("detection failed on {failed} frame(s)");
                }
                analysed
            })?
    };
    Ok(Detector {
        mailbox,
        results,
        worker,
    })
}

/// Runs the model on a Y'CbCr picture or its input; boxes normalised to the
/// picture and clipped to [`MAX_BOXES`] (the largest are kept).
fn analyse(
    runner: &mut med8k_detect::model::Runner,
    index: u64,
    job: ToAnalyse,
) -> Result<Analysed, ModelError> {
    let contract = runner.model().contract();
    let (iw, ih) = (contract.input.width(), contract.input.height());
    let threshold = contract.threshold.score;
    let (tensor, (w, h)) = match job {
        ToAnalyse::Input { tensor, size } => (tensor, size),
        ToAnalyse::Picture(pic) => {
            let size = (pic.width() as usize, pic.height() as usize);
            (picture_tensor(&pic, iw, ih)?, size)
        }
    };
    let d = runner.run_tensor(index, tensor, (w, h))?;
    let unit = |v: u32, full: usize| (v as f32 / full.max(1) as f32).clamp(0.0, 1.0);
    let boxes = d
        .boxes
        .iter()
        .take(MAX_BOXES)
        .map(|b| BoundingBox {
            x: unit(b.x, w),
            y: unit(b.y, h),
            w: unit(b.width, w),
            h: unit(b.height, h),
            score: if b.peak.is_finite() { b.peak } else { 0.0 },
            class: 0,
        })
        .collect();
    let quality = match (d.quality, runner.model().contract().threshold.quality) {
        (Some(value), Some(threshold)) if value.is_finite() => Some(Quality { value, threshold }),
        _ => None,
    };
    Ok(Analysed {
        index,
        score: d.score,
        threshold,
        boxes,
        quality,
    })
}

/// The next detection result; `None` once the detector ended; pending
/// forever without one.
async fn next_result<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Closes the detector's mailbox when capture ends (or fails).
struct CloseOnDrop(Option<Arc<Mailbox<(u64, ToAnalyse)>>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(m) = &self.0 {
            m.close();
        }
    }
}

/// Where captured frames go: coded to the link's queue, and (a copy, when
/// the detector is idle) to the detector.
struct FrameSink<'a> {
    tx: &'a mpsc::Sender<Coded>,
    detector: Option<&'a Mailbox<(u64, ToAnalyse)>>,
    /// The model's input width and height.
    input_size: (u32, u32),
}

fn capture(
    (pictures, live, limit): (Pictures, bool, usize),
    config: &med8k_codec::Config,
    lossless: bool,
    period: Duration,
    epoch: Instant,
    sink: &FrameSink<'_>,
    stop: &Shutdown,
) -> anyhow::Result<Captured> {
    let tx = sink.tx;
    let (mut encoder, name) = Backend::Auto.encoder(config)?;
    let mut out = Captured {
        encoder: name,
        ..Captured::default()
    };
    let mut next = Instant::now();
    let mut inputs = ResidentInputs::default();
    for pic in pictures.take(limit) {
        if stop.is_requested() {
            break;
        }
        if !live {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next = next.max(Instant::now() - period) + period;
        }
        let pic = pic?;
        let capture_us = epoch.elapsed().as_micros() as u64;
        let index = out.frames;
        // Latest frame wins: only an idle detector gets a frame. On the GPU
        // its input is made after coding, from the picture already there;
        // otherwise the detector gets a copy now and works while this codes.
        let mut offer_input = None;
        if let Some(mailbox) = sink.detector {
            if !matches!(pic.layout(), Layout::Yuv422 | Layout::Yuv420) {
                if out.unsupported == 0 {
                    tracing::warn!(
                        "the source's pictures are {}, not Y'CbCr: no detection",
                        pic.layout()
                    );
                }
                out.unsupported += 1;
            } else if !mailbox.wants() {
                mailbox.pass();
            } else if ResidentInputs::possible(&encoder) {
                offer_input = Some(mailbox);
            } else {
                mailbox.offer((index, ToAnalyse::Picture(pic.clone())));
            }
        }
        let packet = encoder.encode(&pic)?;
        if let Some(mailbox) = offer_input {
            let (iw, ih) = sink.input_size;
            let size = (pic.width() as usize, pic.height() as usize);
            let job = match inputs.make(&encoder, iw, ih) {
                Some(Ok(tensor)) => {
                    out.inputs_on_gpu += 1;
                    ToAnalyse::Input { tensor, size }
                }
                Some(Err(e)) => {
                    tracing::warn!("model input on the GPU: {e}; the detector makes it");
                    ToAnalyse::Picture(pic.clone())
                }
                None => ToAnalyse::Picture(pic.clone()),
            };
            mailbox.offer((index, job));
        }
        out.frames += 1;
        let header = frame_header(&pic, lossless, &packet.data, capture_us);
        let coded = Coded {
            index,
            header,
            payload: packet.data,
        };
        if live {
            match tx.try_send(coded) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => out.dropped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        } else if tx.blocking_send(coded).is_err() {
            break;
        }
    }
    Ok(out)
}
