//! The receiving site (`med8k serve`): accepts links, stores what
//! arrives, and (with a source) offers frames to each permitted session.
//!
//! # Gates
//! With `[gate] kind = "consent"` in the site configuration, every session
//! is decided by the consent gate ([`crate::gate::ConsentGate`]): the requesting
//! physician's HPKI login, the patient's JPKI login (when required) and the
//! consent ledger; every decision goes to the audit log, and open sessions
//! are decided again every half second, so that a consent revoked closes
//! them. The model is pull: the hospital holding the data runs `serve
//! --source ...` and a physician elsewhere runs `med8k fetch`; nothing
//! leaves before the gate permitted the session. With `allow-authenticated`
//! (the development gate) consent is not checked, and the log says so.
//!
//! With `--source` (a picture or raw file, a recorded clip, or a sample
//! folder), each permitted session gets the source's frames, coded
//! losslessly with the wavelet codec at `--fps`, from the start; the session
//! ends when the source does (or when consent is revoked). The source
//! belongs to one patient and data category ([`ServeOptions::source_patient`],
//! [`ServeOptions::source_category`]): the consent gate permits only claims
//! for exactly those. Under the development gate a source is refused unless
//! the operator asks for it ([`ServeOptions::development_gate`]): it would
//! go to any peer with a facility certificate.
//!
//! Reports [`ServeEvent::Listening`] first (the bound address, so a listen
//! address with port 0 is usable), then [`ServeEvent::LinkEnded`] as each
//! link ends. Frames of each link go to `DIR/<facility>-<n>.m8ks` (an M8KS sequence of
//! the wavelet bitstreams as they arrived), reliable objects to
//! `DIR/object-<id>.<kind>` once whole and checked (the protocol carries no
//! file name: the id is the sender's, stable across sessions).
//!
//! Detection results that travel with the frames (`FrameMeta`, from `send
//! --model`) are counted per link; anomalous ones are logged (sequence
//! number and score only) and, with `--out`, every result is appended to
//! `DIR/<facility>-<n>.detections.jsonl` (one JSON object a line: `seq`,
//! `channel`, `score`, `threshold`, `anomalous`, `boxes` normalised to the
//! picture).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use med8k_codec::sequence::SequenceWriter;
use med8k_pipeline::Shutdown;
use med8k_pipeline::encode::Backend;
use med8k_pipeline::input::InputSpec;
use med8k_transport::driver::{Gate, Link, Server, SessionControl};
use med8k_transport::proto::{
    Capabilities, CloseReason, Ended, Event, FrameHeader, FrameMeta, ObjectKind, ObjectOffer,
};
use tokio::sync::mpsc;

use crate::site::{GateKind, SiteConfig};
use crate::{DevelopmentGate, count_lost, frame_header};

/// Frames and object pieces queued for a link's writer; beyond it frames
/// are dropped (counted) rather than stall the link.
const STORE_QUEUE: usize = 64;
/// Coded frames of the offered source waiting for a session.
const OFFER_QUEUE: usize = 4;

/// What [`serve`] does.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to listen on (IPv4 or IPv6; port 0 picks one).
    pub listen: SocketAddr,
    /// The site configuration (TOML).
    pub config: PathBuf,
    /// Store frames (M8KS per link) and objects in this folder.
    pub out: Option<PathBuf>,
    /// Decode every frame and push it to this GStreamer sink (for example
    /// `videoconvert ! autovideosink`); frames the decoder cannot keep up
    /// with are dropped, never the link.
    pub sink: Option<String>,
    /// Where the sink's frames are decoded (`auto`: a hardware GPU when
    /// there is one, else the CPU twin).
    pub decode: med8k_pipeline::encode::Backend,
    /// Stop after this many frames (over all links).
    pub frames: Option<u64>,
    /// Stop after this many links have ended.
    pub links: Option<u64>,
    /// Offer this to every permitted session: a picture or raw file, a
    /// recorded clip or a sample folder, coded losslessly.
    pub source: Option<PathBuf>,
    /// Frames per second of the offered source.
    pub fps: f64,
    /// The patient (pseudonym) the source belongs to: required with a
    /// source under the consent gate.
    pub source_patient: Option<String>,
    /// The data category of the source: required with a source under the
    /// consent gate.
    pub source_category: Option<med8k_auth::consent::DataCategory>,
    /// Offer the source under the development gate, to any peer that passes
    /// mutual TLS, with no consent checked (refused without it).
    pub development_gate: bool,
}

impl ServeOptions {
    /// Listen on `listen` as the site `config` describes; store nothing,
    /// offer nothing, run until shut down.
    pub fn new(listen: SocketAddr, config: impl Into<PathBuf>) -> Self {
        ServeOptions {
            listen,
            config: config.into(),
            out: None,
            sink: None,
            decode: med8k_pipeline::encode::Backend::Auto,
            frames: None,
            links: None,
            source: None,
            fps: 30.0,
            source_patient: None,
            source_category: None,
            development_gate: false,
        }
    }
}

/// What [`serve`] reports as it runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServeEvent {
    /// Bound and accepting on this address.
    Listening(SocketAddr),
    /// A link ended.
    LinkEnded(Box<LinkReport>),
    /// Cut-out instructions came back: stored, or refused.
    Instructions(Box<crate::instructions::InstructionOutcome>),
}

/// How [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeSummary {
    /// Frames received over all links.
    pub frames: u64,
    /// Links accepted.
    pub links: usize,
    /// Whether it stopped on a shutdown request (Ctrl-C).
    pub interrupted: bool,
}

/// A coded frame of the offered source (header, payload), or why the
/// source failed.
type CodedFrame = anyhow::Result<(FrameHeader, Vec<u8>)>;

/// What is offered to each permitted session.
#[derive(Debug, Clone)]
struct Offer {
    source: PathBuf,
    period: Duration,
    /// How long the session stays open after the source's last frame, so
    /// that frames still in flight arrive (a frame deadline).
    linger: Duration,
}

/// What a link's writer is handed.
enum Store {
    /// A frame's link sequence number and bitstream.
    Frame(u64, Vec<u8>),
    Offered(ObjectOffer, u64),
    Data(u64, u64, Vec<u8>),
    Complete(u64),
    Corrupt(u64),
    Meta(FrameMeta),
}

/// What one link came to.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct LinkReport {
    /// The peer facility.
    pub facility: String,
    /// The peer's address.
    pub remote: Option<SocketAddr>,
    /// Frames received.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Frames reported lost.
    pub lost: u64,
    /// Frames this host dropped (its writer fell behind).
    pub dropped: u64,
    /// Objects stored, whole and SHA-256 checked.
    pub objects: Vec<PathBuf>,
    /// Objects that arrived corrupt (and were discarded).
    pub corrupt: u64,
    /// `FrameMeta` messages received.
    pub detections: u64,
    /// Of them, with a score above their threshold.
    pub anomalous: u64,
    /// Where they were written.
    pub detections_file: Option<PathBuf>,
    /// From the first frame to the last.
    pub seconds: f64,
    /// The M8KS file of the frames.
    pub sequence: Option<PathBuf>,
    /// Frames decoded to the sink.
    pub shown: Option<u64>,
    /// Frames that arrived after their deadline.
    pub late: u64,
    /// Frames and bytes sent from the offered source.
    pub sent: Option<(u64, u64)>,
    /// Smoothed round trip.
    pub rtt_ms: f64,
    /// Packet loss, parts per million.
    pub loss_ppm: u32,
    /// How the session ended.
    pub ended: String,
    /// What failed, if anything.
    pub error: Option<String>,
}

/// Runs the receiving site until `options`' limits or `shutdown`; `on`
/// hears what happens.
pub fn serve(
    args: &ServeOptions,
    shutdown: &Shutdown,
    on: &mut (dyn FnMut(ServeEvent) + Send),
) -> anyhow::Result<ServeSummary> {
    let config = SiteConfig::load(&args.config)?;
    let mut capabilities =
        Capabilities::RECEIVE_LIVE | Capabilities::RECEIVE_OBJECTS | Capabilities::QUALITY;
    let offer = match &args.source {
        Some(source) => {
            if !(args.fps > 0.0 && args.fps <= 1000.0) {
                bail!("--fps {} is outside (0, 1000]", args.fps);
            }
            if !source.exists() {
                bail!("--source {}: no such file or folder", source.display());
            }
            capabilities = capabilities | Capabilities::SEND_LIVE;
            Some(Offer {
                source: source.clone(),
                period: Duration::from_secs_f64(1.0 / args.fps),
                linger: Duration::ZERO,
            })
        }
        None => None,
    };
    let site = config.site(capabilities)?;
    let driver = config.driver_config();
    let offer = offer.map(|o| Offer {
        linger: driver.session.frame_deadline + Duration::from_millis(100),
        ..o
    });
    // The consent gate's watch thread runs while the gate lives.
    let mut _watch = None;
    let gate: Arc<dyn Gate> = match (config.gate, &config.consent) {
        (GateKind::AllowAuthenticated, _) => {
            if offer.is_some() && !args.development_gate {
                bail!(
                    "{}: --source under the development gate (allow-authenticated) would stream \
                     to any peer with a facility certificate, with no consent checked; use \
                     [gate] kind = \"consent\", or pass --development-gate to do it anyway",
                    args.config.display()
                );
            }
            Arc::new(DevelopmentGate::default())
        }
        (GateKind::Consent, Some(settings)) => {
            let serves = match (&offer, &args.source_patient, args.source_category) {
                (None, _, _) => None,
                (Some(_), Some(p), Some(c)) => Some((
                    med8k_auth::consent::PatientId::parse(p.as_str()).map_err(|_| {
                        anyhow::anyhow!("--source-patient: a pseudonym is 64 lowercase hex digits")
                    })?,
                    c,
                )),
                (Some(_), _, _) => bail!(
                    "--source under the consent gate needs --source-patient and \
                     --source-category: the patient and data the source holds"
                ),
            };
            let gate = crate::gate::from_site(&config, settings, serves)
                .with_context(|| format!("{}: consent gate", args.config.display()))?;
            _watch = Some(gate.watch().context("starting the consent watch")?);
            Arc::new(gate)
        }
        (other, _) => bail!("{}: gate {other:?} is not supported", args.config.display()),
    };
    // Instructions for an offered cube are checked against the consent gate's HPKI roots.
    let desk = match (&config.consent, &args.source) {
        (Some(settings), Some(source)) if config.gate == GateKind::Consent => {
            crate::instructions::InstructionDesk::for_source(
                &config,
                settings,
                source,
                args.out.as_deref(),
            )?
            .map(Arc::new)
        }
        _ => None,
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rt = crate::runtime()?;
    rt.block_on(async {
        let mut server = Server::bind(args.listen, site, gate, driver)
            .with_context(|| format!("listening on {}", args.listen))?;
        on(ServeEvent::Listening(server.local_addr()?));
        if config.gate == GateKind::Consent {
            tracing::info!(
                "gate: consent (HPKI, JPKI and the consent ledger decide every session)"
            );
        } else {
            tracing::warn!(
                "gate: development (allow-authenticated): peers are admitted on mutual TLS \
                 alone; consent is NOT checked"
            );
            if offer.is_some() {
                tracing::warn!(
                    "DEVELOPMENT GATE: --source is offered to EVERY peer with a facility \
                     certificate, with NO consent check (--development-gate): never with \
                     patient data"
                );
            }
        }
        let frames = Arc::new(AtomicU64::new(0));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<LinkReport>();
        let (instr_tx, mut instr_rx) = mpsc::unbounded_channel();
        let mut controls: Vec<SessionControl> = Vec::new();
        let mut running = 0u64;
        let mut ended = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let interrupted = loop {
            tokio::select! {
                accepted = server.accept() => match accepted {
                    Some(Ok(link)) => {
                        controls.push(link.control());
                        running += 1;
                        let n = controls.len();
                        let out = args.out.clone();
                        let sink = args.sink.clone().map(|s| (s, args.decode));
                        let frames = frames.clone();
                        let done = done_tx.clone();
                        let offer = offer.clone();
                        let desk = desk.clone().map(|d| (d, instr_tx.clone()));
                        tokio::spawn(async move {
                            let report = run_link(link, n, out, sink, frames, offer, desk).await;
                            let _ = done.send(report);
                        });
                    }
                    Some(Err(refused)) => {
                        tracing::warn!(remote = %refused.remote, "refused: {}", refused.error);
                    }
                    None => break false,
                },
                Some(outcome) = instr_rx.recv() => {
                    on(ServeEvent::Instructions(Box::new(outcome)));
                }
                Some(report) = done_rx.recv() => {
                    running -= 1;
                    ended += 1;
                    on(ServeEvent::LinkEnded(Box::new(report)));
                    if args.links.is_some_and(|n| ended >= n) {
                        break false;
                    }
                }
                _ = tick.tick() => {
                    if shutdown.is_requested() {
                        break true;
                    }
                    if args.frames.is_some_and(|n| frames.load(Ordering::Relaxed) >= n) {
                        break false;
                    }
                }
            }
        };
        for c in &controls {
            c.close(
                med8k_transport::proto::CloseReason::Shutdown,
                "server stopping",
            );
        }
        // The links still running end within their close grace; report them.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
        while running > 0 {
            match tokio::time::timeout_at(deadline, done_rx.recv()).await {
                Ok(Some(report)) => {
                    running -= 1;
                    on(ServeEvent::LinkEnded(Box::new(report)));
                }
                _ => break,
            }
        }
        server.close();
        while let Ok(outcome) = instr_rx.try_recv() {
            on(ServeEvent::Instructions(Box::new(outcome)));
        }
        anyhow::Ok(ServeSummary {
            frames: frames.load(Ordering::Relaxed),
            links: controls.len(),
            interrupted,
        })
    })
}

async fn run_link(
    mut link: Link,
    n: usize,
    out: Option<PathBuf>,
    sink: Option<(String, med8k_pipeline::encode::Backend)>,
    total: Arc<AtomicU64>,
    offer: Option<Offer>,
    desk: Option<crate::instructions::DeskHandle>,
) -> LinkReport {
    let mut inbox = crate::annotations::Inbox::new();
    let mut annotates = false;
    let mut report = LinkReport {
        facility: link.facility().to_owned(),
        remote: Some(link.remote()),
        ..LinkReport::default()
    };
    let (tx, rx) = mpsc::channel(STORE_QUEUE);
    let writer = (out.is_some() || sink.is_some()).then(|| {
        let name = format!("{}-{n}.m8ks", report.facility);
        tokio::task::spawn_blocking(move || write_link(out.as_deref(), &name, sink, rx))
    });
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut outgoing: Option<mpsc::Receiver<CodedFrame>> = None;
    let mut close_at: Option<tokio::time::Instant> = None;
    loop {
        let event = tokio::select! {
            () = sleep_until(close_at) => {
                close_at = None;
                link.close("source ended");
                continue;
            }
            event = link.next_event() => match event {
                Some(event) => event,
                None => break,
            },
            coded = next_coded(&mut outgoing) => {
                let (n, bytes) = report.sent.get_or_insert((0, 0));
                match coded {
                    Some(Ok((header, payload))) => {
                        let len = payload.len() as u64;
                        if let Err(e) = link.send_frame(header, payload).await {
                            tracing::warn!(facility = %report.facility, "sending: {e}");
                            outgoing = None;
                        } else {
                            *n += 1;
                            *bytes += len;
                        }
                    }
                    Some(Err(e)) => {
                        report.error = Some(format!("source: {e:#}"));
                        outgoing = None;
                        link.close("the source failed");
                    }
                    None => {
                        tracing::info!(facility = %report.facility, frames = *n, "source ended; closing the session");
                        outgoing = None;
                        let linger = offer.as_ref().map_or(Duration::ZERO, |o| o.linger);
                        // A pathologist's desk keeps the session for its instructions.
                        if !(annotates && desk.is_some()) {
                            close_at = Some(tokio::time::Instant::now() + linger);
                        }
                    }
                }
                continue;
            }
        };
        let store = match event {
            Event::Open { peer } => {
                tracing::info!(facility = %peer.site_id, "session open");
                annotates = peer.capabilities.contains(Capabilities::ANNOTATE);
                // A peer that only sends (`med8k send`) is not offered the
                // source.
                if let Some(offer) = offer
                    .as_ref()
                    .filter(|_| peer.capabilities.contains(Capabilities::RECEIVE_LIVE))
                {
                    match start_offer(offer.clone()) {
                        Ok(rx) => outgoing = Some(rx),
                        Err(e) => {
                            report.error = Some(format!("source: {e:#}"));
                            link.close("the source could not be opened");
                        }
                    }
                }
                None
            }
            Event::Frame(f) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                report.frames += 1;
                report.bytes += f.payload.len() as u64;
                total.fetch_add(1, Ordering::Relaxed);
                if writer.is_some() && tx.try_send(Store::Frame(f.header.seq, f.payload)).is_err() {
                    report.dropped += 1;
                }
                None
            }
            Event::FramesLost { ranges, .. } => {
                report.lost += count_lost(&ranges);
                None
            }
            Event::FrameMeta(m) => {
                report.detections += 1;
                if m.score > m.threshold {
                    report.anomalous += 1;
                    // The frame's number and score only: no patient data.
                    tracing::warn!(
                        facility = %report.facility,
                        seq = m.seq,
                        score = m.score,
                        threshold = m.threshold,
                        "anomalous frame"
                    );
                }
                Some(Store::Meta(m))
            }
            Event::Annotation(a) => {
                inbox.annotation(a);
                None
            }
            Event::Instructions(i) => {
                crate::instructions::receive(desk.as_ref(), &mut inbox, &report.facility, &i);
                None
            }
            Event::ObjectOffered { offer, resume_from } => Some(Store::Offered(offer, resume_from)),
            Event::ObjectData(d) => Some(Store::Data(d.id, d.offset, d.data)),
            Event::ObjectComplete { id } => Some(Store::Complete(id)),
            Event::ObjectCorrupt { id } => {
                report.corrupt += 1;
                Some(Store::Corrupt(id))
            }
            Event::Closed { by, why, detail } => {
                if why == Ended::Close(CloseReason::ConsentRevoked) {
                    tracing::warn!(facility = %report.facility, "consent revoked: session closed");
                }
                report.ended = format!("closed by {by:?}: {why:?} ({detail})");
                // Stops the source's coding thread.
                outgoing = None;
                None
            }
            Event::Error(e) => {
                tracing::warn!(facility = %report.facility, "protocol error: {e}");
                None
            }
            _ => None,
        };
        if let Some(s) = store
            && writer.is_some()
            && tx.send(s).await.is_err()
        {
            break;
        }
    }
    drop(tx);
    crate::instructions::finish(desk.as_ref(), inbox, &report.facility);
    let stats = link.stats();
    report.late = stats.frames.frames_late;
    report.rtt_ms = stats.rtt.as_secs_f64() * 1e3;
    report.loss_ppm = stats.loss_ppm();
    report.seconds = first.map_or(0.0, |f| (last - f).as_secs_f64());
    if let Some(w) = writer {
        match w.await {
            Ok(Ok(stored)) => {
                report.sequence = stored.sequence;
                report.detections_file = stored.detections;
                report.objects = stored.objects;
                report.shown = stored.shown;
            }
            Ok(Err(e)) => report.error = Some(format!("{e:#}")),
            Err(e) => report.error = Some(e.to_string()),
        }
    }
    report
}

/// Sleeps until `at`; pending forever without one.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// The next coded frame of the offered source; `None` when it ended;
/// pending forever without one.
async fn next_coded<T>(rx: &mut Option<mpsc::Receiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Opens the offered source on a thread of its own and codes its frames
/// into a short queue, at the offer's pace; the thread stops when the
/// queue's receiver is dropped.
fn start_offer(offer: Offer) -> anyhow::Result<mpsc::Receiver<CodedFrame>> {
    let (tx, rx) = mpsc::channel(OFFER_QUEUE);
    std::thread::Builder::new()
        .name("med8k-serve-source".into())
        .spawn(move || {
            if let Err(e) = code_offer(&offer, &tx) {
                let _ = tx.blocking_send(Err(e));
            }
        })?;
    Ok(rx)
}

fn code_offer(offer: &Offer, tx: &mpsc::Sender<CodedFrame>) -> anyhow::Result<()> {
    let is_dicom = offer
        .source
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("dcm"));
    let pictures: Box<dyn Iterator<Item = anyhow::Result<med8k_media::picture::Picture>>> =
        if is_dicom {
            // A 7-band whole-slide object (`med8k dicom export`): its cube, once.
            let cube = med8k_dicom::import::read_cube(&offer.source)?;
            Box::new(std::iter::once(
                med8k_media::picture::Picture::from_cube(&cube)
                    .with_context(|| format!("{}: not a picture", offer.source.display())),
            ))
        } else {
            let spec = match offer.source.to_str() {
                Some(name) => InputSpec::parse(name, None),
                None => InputSpec::file(&offer.source, None),
            };
            Box::new(
                spec.open("offer")
                    .with_context(|| format!("opening {}", offer.source.display()))?
                    .pictures()
                    .map(|p| p.map_err(anyhow::Error::from)),
            )
        };
    let (mut encoder, _) = Backend::Auto.encoder(&med8k_codec::Config::lossless())?;
    let epoch = Instant::now();
    let mut next = Instant::now();
    for pic in pictures {
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
        next = next.max(Instant::now() - offer.period) + offer.period;
        let pic = pic?;
        let capture_us = u64::try_from(epoch.elapsed().as_micros()).unwrap_or(u64::MAX);
        let packet = encoder.encode(&pic)?;
        let header = frame_header(&pic, true, &packet.data, capture_us);
        if tx.blocking_send(Ok((header, packet.data))).is_err() {
            // The session ended (closed, or consent revoked).
            break;
        }
    }
    Ok(())
}

/// What a link's writer stored.
struct Stored {
    sequence: Option<PathBuf>,
    detections: Option<PathBuf>,
    objects: Vec<PathBuf>,
    shown: Option<u64>,
}

/// Writes one link's frames and objects under `dir` (when given) and shows
/// its frames on `sink` (when given).
fn write_link(
    dir: Option<&Path>,
    name: &str,
    sink: Option<(String, med8k_pipeline::encode::Backend)>,
    mut rx: mpsc::Receiver<Store>,
) -> anyhow::Result<Stored> {
    let seq_path = dir.map(|d| d.join(name));
    let meta_path = dir.map(|d| {
        let stem = name.strip_suffix(".m8ks").unwrap_or(name);
        d.join(format!("{stem}.detections.jsonl"))
    });
    let mut metas: Option<BufWriter<File>> = None;
    let mut seq: Option<SequenceWriter<BufWriter<File>>> = None;
    let mut display = sink
        .as_ref()
        .map(|(s, backend)| crate::display::Display::new(s, *backend));
    let mut open: std::collections::HashMap<u64, (File, PathBuf, ObjectKind)> =
        std::collections::HashMap::new();
    let mut objects = Vec::new();
    let mut shown = None;
    while let Some(item) = rx.blocking_recv() {
        match item {
            Store::Frame(link_seq, bytes) => {
                if let Some(d) = display.as_mut()
                    && let Err(e) = d.show(link_seq, &bytes)
                {
                    // The monitor failing does not stop storing.
                    tracing::warn!("sink: {e:#}; no more frames are shown");
                    shown = display.take().map(|d| d.shown());
                }
                let Some(seq_path) = &seq_path else {
                    continue;
                };
                if seq.is_none() {
                    let f = File::create(seq_path)
                        .with_context(|| format!("creating {}", seq_path.display()))?;
                    seq = Some(SequenceWriter::new(BufWriter::new(f))?);
                }
                if let Some(w) = seq.as_mut() {
                    w.write_frame(&bytes)
                        .with_context(|| format!("writing {}", seq_path.display()))?;
                }
            }
            Store::Offered(offer, resume_from) => {
                let Some(dir) = dir else {
                    continue;
                };
                let part = dir.join(format!("object-{:016x}.part", offer.id));
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .write(true)
                    .truncate(false)
                    .open(&part)
                    .with_context(|| format!("opening {}", part.display()))?;
                f.set_len(resume_from)?;
                f.seek(SeekFrom::Start(resume_from))?;
                open.insert(offer.id, (f, part, offer.kind));
            }
            Store::Data(id, offset, data) => {
                if let Some((f, part, _)) = open.get_mut(&id) {
                    f.seek(SeekFrom::Start(offset))?;
                    f.write_all(&data)
                        .with_context(|| format!("writing {}", part.display()))?;
                }
            }
            Store::Complete(id) => {
                if let (Some((f, part, kind)), Some(dir)) = (open.remove(&id), dir) {
                    f.sync_all()?;
                    drop(f);
                    let done = dir.join(format!("object-{id:016x}.{}", extension(kind)));
                    std::fs::rename(&part, &done)
                        .with_context(|| format!("renaming {}", part.display()))?;
                    objects.push(done);
                }
            }
            Store::Corrupt(id) => {
                if let Some((f, _, _)) = open.get_mut(&id) {
                    f.set_len(0)?;
                    f.seek(SeekFrom::Start(0))?;
                }
            }
            Store::Meta(m) => {
                if let Some(d) = display.as_mut() {
                    d.detected(&m);
                }
                let Some(meta_path) = &meta_path else {
                    continue;
                };
                if metas.is_none() {
                    let f = std::fs::OpenOptions::new()
                        .create(true)
                        .append(true)
                        .open(meta_path)
                        .with_context(|| format!("opening {}", meta_path.display()))?;
                    metas = Some(BufWriter::new(f));
                }
                if let Some(w) = metas.as_mut() {
                    writeln!(w, "{}", meta_json(&m))
                        .with_context(|| format!("writing {}", meta_path.display()))?;
                }
            }
        }
    }
    let detections = match metas {
        Some(mut w) => {
            w.flush()
                .with_context(|| format!("writing {}", path_or_empty(&meta_path)))?;
            meta_path
        }
        None => None,
    };
    let sequence = match seq {
        Some(w) => {
            w.finish()?.flush()?;
            seq_path
        }
        None => None,
    };
    if let Some(d) = display {
        shown = Some(d.finish()?);
    }
    Ok(Stored {
        sequence,
        detections,
        objects,
        shown,
    })
}

/// One detection result as a JSON Lines record.
fn meta_json(m: &FrameMeta) -> serde_json::Value {
    let boxes: Vec<serde_json::Value> = m
        .boxes
        .iter()
        .map(|b| {
            serde_json::json!({
                "x": b.x, "y": b.y, "w": b.w, "h": b.h, "score": b.score, "class": b.class,
            })
        })
        .collect();
    serde_json::json!({
        "seq": m.seq,
        "channel": m.channel,
        "score": m.score,
        "threshold": m.threshold,
        "anomalous": m.score > m.threshold,
        "quality": m.quality.map(|q| q.value),
        "quality_threshold": m.quality.map(|q| q.threshold),
        "quality_alarm": m.quality.is_some_and(|q| q.value > q.threshold),
        "boxes": boxes,
    })
}

fn path_or_empty(p: &Option<PathBuf>) -> String {
    p.as_deref()
        .map(|p| p.display().to_string())
        .unwrap_or_default()
}

fn extension(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Dicom => "dcm",
        ObjectKind::SpectralCube => "cube",
        ObjectKind::Image => "image",
        _ => "bin",
    }
}
