//! `med8k serve --listen ADDR --config SITE.toml`: accepts links, stores
//! what arrives, and (with `--source`) offers frames to each permitted
//! session.
//!
//! # Gates
//! With `[gate] kind = "consent"` in the site configuration, every session
//! is decided by the consent gate ([`ConsentGate`]): the requesting
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
//! ends when the source does (or when consent is revoked).
//!
//! Prints `listening on ADDR` first (the bound address, so `--listen
//! 127.0.0.1:0` is usable by scripts), then one line per link when it ends.
//! Frames of each link go to `DIR/<facility>-<n>.m8ks` (an M8KS sequence of
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
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, bail};
use med8k_auth::cert::{
    CrlFile, PolicyRule, Profile, ProfileConfig, Purpose, Role, StoreKind, TrustStore,
};
use med8k_auth::gate::{ConsentGate, GateConfig};
use med8k_engine::codec;
use med8k_engine::codec::sequence::SequenceWriter;
use med8k_engine::codec::stage::Backend;
use med8k_engine::gst::SourceOptions;
use med8k_engine::picture::Picture;
use med8k_engine::pipeline::Shutdown;
use med8k_transport::driver::{Gate, Link, Server, SessionControl};
use med8k_transport::proto::{
    Capabilities, CloseReason, Ended, Event, FrameHeader, FrameMeta, ObjectKind, ObjectOffer,
};
use med8k_transport::site::{ConsentSettings, GateKind, SiteConfig};
use tokio::sync::mpsc;

use super::{DevelopmentGate, count_lost, frame_header, mbps};
use crate::{Outcome, on_ctrl_c};

/// Frames and object pieces queued for a link's writer; beyond it frames
/// are dropped (counted) rather than stall the link.
const STORE_QUEUE: usize = 64;
/// Coded frames of the offered source waiting for a session.
const OFFER_QUEUE: usize = 4;
/// How often the consent gate decides open sessions again.
const CONSENT_RECHECK: Duration = Duration::from_millis(500);

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on (IPv4 or IPv6; port 0 picks one).
    #[arg(long)]
    listen: SocketAddr,
    /// The site configuration (TOML).
    #[arg(long)]
    config: PathBuf,
    /// Store frames (M8KS per link) and objects in this folder.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Decode every frame and push it to this GStreamer sink (for example
    /// `videoconvert ! autovideosink`); frames the decoder cannot keep up
    /// with are dropped, never the link.
    #[arg(long)]
    sink: Option<String>,
    /// Stop after this many frames (over all links).
    #[arg(long)]
    frames: Option<u64>,
    /// Stop after this many links have ended.
    #[arg(long)]
    links: Option<u64>,
    /// Offer this to every permitted session: a picture or raw file, a
    /// recorded clip (.mkv) or a sample folder, coded losslessly.
    #[arg(long)]
    source: Option<PathBuf>,
    /// Frames per second of the offered source.
    #[arg(long, default_value_t = 30.0)]
    fps: f64,
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
struct LinkReport {
    facility: String,
    remote: Option<SocketAddr>,
    frames: u64,
    bytes: u64,
    lost: u64,
    dropped: u64,
    objects: Vec<PathBuf>,
    corrupt: u64,
    /// `FrameMeta` messages received.
    detections: u64,
    /// Of them, with a score above their threshold.
    anomalous: u64,
    /// Where they were written.
    detections_file: Option<PathBuf>,
    seconds: f64,
    sequence: Option<PathBuf>,
    shown: Option<u64>,
    late: u64,
    sent: Option<(u64, u64)>,
    rtt_ms: f64,
    loss_ppm: u32,
    ended: String,
    error: Option<String>,
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<Outcome> {
    let config = SiteConfig::load(&args.config)?;
    let mut capabilities = Capabilities::RECEIVE_LIVE | Capabilities::RECEIVE_OBJECTS;
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
        (GateKind::AllowAuthenticated, _) => Arc::new(DevelopmentGate::default()),
        (GateKind::Consent, Some(settings)) => {
            let gate = consent_gate(&config, settings)
                .with_context(|| format!("{}: consent gate", args.config.display()))?;
            _watch = Some(gate.watch().context("starting the consent watch")?);
            Arc::new(gate)
        }
        (other, _) => bail!("{}: gate {other:?} is not supported", args.config.display()),
    };
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let shutdown = Shutdown::new();
    on_ctrl_c(&shutdown)?;
    let rt = super::runtime()?;
    rt.block_on(async {
        let mut server = Server::bind(args.listen, site, gate, driver)
            .with_context(|| format!("listening on {}", args.listen))?;
        println!("listening on {}", server.local_addr()?);
        std::io::stdout().flush()?;
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
                    "--source is offered to every such peer without a consent check: use \
                     [gate] kind = \"consent\" for patient data"
                );
            }
        }
        let frames = Arc::new(AtomicU64::new(0));
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<LinkReport>();
        let mut controls: Vec<SessionControl> = Vec::new();
        let mut running = 0u64;
        let mut ended = 0u64;
        let mut tick = tokio::time::interval(Duration::from_millis(50));
        let outcome = loop {
            tokio::select! {
                accepted = server.accept() => match accepted {
                    Some(Ok(link)) => {
                        controls.push(link.control());
                        running += 1;
                        let n = controls.len();
                        let out = args.out.clone();
                        let sink = args.sink.clone();
                        let frames = frames.clone();
                        let done = done_tx.clone();
                        let offer = offer.clone();
                        tokio::spawn(async move {
                            let report = run_link(link, n, out, sink, frames, offer).await;
                            let _ = done.send(report);
                        });
                    }
                    Some(Err(refused)) => {
                        tracing::warn!(remote = %refused.remote, "refused: {}", refused.error);
                    }
                    None => break Outcome::Done,
                },
                Some(report) = done_rx.recv() => {
                    running -= 1;
                    ended += 1;
                    print_report(&report);
                    if args.links.is_some_and(|n| ended >= n) {
                        break Outcome::Done;
                    }
                }
                _ = tick.tick() => {
                    if shutdown.is_requested() {
                        break Outcome::Interrupted;
                    }
                    if args.frames.is_some_and(|n| frames.load(Ordering::Relaxed) >= n) {
                        break Outcome::Done;
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
                    print_report(&report);
                }
                _ => break,
            }
        }
        server.close();
        println!(
            "{} frame(s) received on {} link(s)",
            frames.load(Ordering::Relaxed),
            controls.len()
        );
        anyhow::Ok(outcome)
    })
}

fn print_report(r: &LinkReport) {
    let remote = r.remote.map(|a| a.to_string()).unwrap_or_default();
    println!(
        "link {} ({remote}): {} frame(s), {} bytes in {:.2} s ({:.1} Mbit/s), {} lost, \
         {} late, {} dropped by this host, rtt {:.1} ms, packet loss {:.2}%, \
         {} object(s) stored, {} corrupt; {}",
        r.facility,
        r.frames,
        r.bytes,
        r.seconds,
        mbps(r.bytes, r.seconds),
        r.lost,
        r.late,
        r.dropped,
        r.rtt_ms,
        f64::from(r.loss_ppm) / 1e4,
        r.objects.len(),
        r.corrupt,
        r.ended,
    );
    if let Some((n, bytes)) = r.sent {
        println!("  {n} frame(s), {bytes} bytes sent from the source");
    }
    if let Some(n) = r.shown {
        println!("  {n} frame(s) decoded to the sink");
    }
    if r.detections > 0 {
        println!(
            "  {} detection result(s), {} anomalous",
            r.detections, r.anomalous
        );
    }
    if let Some(p) = &r.sequence {
        println!("  frames -> {}", p.display());
    }
    if let Some(p) = &r.detections_file {
        println!("  detections -> {}", p.display());
    }
    for p in &r.objects {
        println!("  object -> {}", p.display());
    }
    if let Some(e) = &r.error {
        eprintln!("med8k: link {}: {e}", r.facility);
    }
}

async fn run_link(
    mut link: Link,
    n: usize,
    out: Option<PathBuf>,
    sink: Option<String>,
    total: Arc<AtomicU64>,
    offer: Option<Offer>,
) -> LinkReport {
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
                        close_at = Some(tokio::time::Instant::now() + linger);
                    }
                }
                continue;
            }
        };
        let store = match event {
            Event::Open { peer } => {
                tracing::info!(facility = %peer.site_id, "session open");
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

type Pictures = Box<dyn Iterator<Item = anyhow::Result<Picture>>>;

fn open_offer(path: &Path) -> anyhow::Result<Pictures> {
    if path.is_dir() {
        let mut src =
            med8k_engine::samples::open(path)?.open_clip(SourceOptions::default().id("offer"))?;
        Ok(Box::new(std::iter::from_fn(move || {
            match src.next_frame() {
                Ok(Some(f)) => Some(Picture::from_frame(&f).map_err(anyhow::Error::from)),
                Ok(None) => None,
                Err(e) => Some(Err(e.into())),
            }
        })))
    } else {
        crate::codec::frames(path, None, None)
    }
}

fn code_offer(offer: &Offer, tx: &mpsc::Sender<CodedFrame>) -> anyhow::Result<()> {
    let pictures =
        open_offer(&offer.source).with_context(|| format!("opening {}", offer.source.display()))?;
    let (mut encoder, _) = Backend::Auto.encoder(&codec::Config::lossless())?;
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

/// The certificate profile of `[gate]`: its HPKI policies and, when given,
/// its hcRole names.
fn profile_config(settings: &ConsentSettings) -> anyhow::Result<ProfileConfig> {
    let mut profile = ProfileConfig::default();
    profile.policies.insert(
        Purpose::HpkiAuth,
        PolicyRule::AnyOf(settings.hpki_policies.clone()),
    );
    if !settings.roles.is_empty() {
        profile.role_names = settings
            .roles
            .iter()
            .map(|(name, role)| {
                let role: Role = role
                    .parse()
                    .map_err(|e| anyhow::anyhow!("[gate] roles, {name:?}: {e}"))?;
                Ok((name.clone(), role))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    Ok(profile)
}

/// Builds the consent gate from `[gate]`.
fn consent_gate(config: &SiteConfig, settings: &ConsentSettings) -> anyhow::Result<ConsentGate> {
    let store = |kind: StoreKind, files: &[PathBuf]| -> anyhow::Result<TrustStore> {
        let mut store = TrustStore::new(kind);
        for f in files {
            let pem = std::fs::read(f).with_context(|| format!("reading {}", f.display()))?;
            let n = store
                .add_pem(&pem)
                .with_context(|| format!("trust anchors {}", f.display()))?;
            if n == 0 {
                bail!("{} holds no CERTIFICATE block", f.display());
            }
        }
        Ok(store)
    };
    let profile = profile_config(settings)?;
    let jpki = if settings.jpki_roots.is_empty() {
        None
    } else {
        Some(store(StoreKind::Jpki, &settings.jpki_roots)?)
    };
    let revocation: Option<Arc<dyn med8k_auth::cert::Revocation + Send + Sync>> =
        if settings.crl_fetch {
            Some(Arc::new(med8k_auth::cert::CrlFetcher::new()))
        } else if settings.crl.is_empty() {
            None
        } else {
            let mut crls = CrlFile::new();
            for c in &settings.crl {
                crls.add_file(c)
                    .with_context(|| format!("CRL {}", c.display()))?;
            }
            Some(Arc::new(crls))
        };
    for p in [&settings.ledger, &settings.audit] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let gate = ConsentGate::new(GateConfig {
        facility: config.id.clone(),
        ledger: settings.ledger.clone(),
        audit: settings.audit.clone(),
        audit_salt: med8k_auth::audit::site_salt(&settings.audit_salt_file)
            .with_context(|| format!("audit salt {}", settings.audit_salt_file.display()))?,
        profile: Profile::new(profile),
        hpki: store(StoreKind::Hpki, &settings.hpki_roots)?,
        jpki,
        revocation,
        require_patient: settings.require_patient,
        recheck: CONSENT_RECHECK,
        clock: Arc::new(SystemTime::now),
    })?;
    Ok(gate)
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
    sink: Option<String>,
    mut rx: mpsc::Receiver<Store>,
) -> anyhow::Result<Stored> {
    let seq_path = dir.map(|d| d.join(name));
    let meta_path = dir.map(|d| {
        let stem = name.strip_suffix(".m8ks").unwrap_or(name);
        d.join(format!("{stem}.detections.jsonl"))
    });
    let mut metas: Option<BufWriter<File>> = None;
    let mut seq: Option<SequenceWriter<BufWriter<File>>> = None;
    let mut display = sink.as_deref().map(super::display::Display::new);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(roles: &[(&str, &str)]) -> ConsentSettings {
        let mut text = String::from(
            "[site]\nid = \"jp.hospital-a\"\nname = \"A\"\n[tls]\ncert = \"a.pem\"\n\
             key = \"a.key\"\nroots = [\"ca.pem\"]\nallowed = [\"jp.hospital-b\"]\n\
             [gate]\nkind = \"consent\"\nledger = \"c.sqlite\"\naudit = \"a.jsonl\"\n\
             hpki_roots = [\"h.pem\"]\nhpki_policies = [\"1.2.3\"]\njpki_roots = [\"j.pem\"]\n\
             [gate.roles]\n",
        );
        for (name, role) in roles {
            text.push_str(&format!("{name:?} = {role:?}\n"));
        }
        SiteConfig::parse(&text, Path::new("a.toml"))
            .unwrap()
            .consent
            .unwrap()
    }

    #[test]
    fn the_role_map_comes_from_the_site_config() {
        let default = profile_config(&settings(&[])).unwrap();
        assert_eq!(default.role_names, ProfileConfig::default().role_names);
        let own = profile_config(&settings(&[("Doctor of Medicine", "medical-doctor")])).unwrap();
        assert_eq!(
            own.role_names,
            vec![("Doctor of Medicine".to_owned(), Role::MedicalDoctor)]
        );
        let e = profile_config(&settings(&[("Surgeon", "surgeon")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[gate] roles") && e.contains("\"surgeon\" is not a role"),
            "{e}"
        );
    }
}
