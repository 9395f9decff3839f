//! `med8k serve --listen ADDR --config SITE.toml`: accepts links and stores
//! what arrives.
//!
//! Prints `listening on ADDR` first (the bound address, so `--listen
//! 127.0.0.1:0` is usable by scripts), then one line per link when it ends.
//! Frames of each link go to `DIR/<facility>-<n>.m8ks` (an M8KS sequence of
//! the wavelet bitstreams as they arrived), reliable objects to
//! `DIR/object-<id>.<kind>` once whole and checked (the protocol carries no
//! file name: the id is the sender's, stable across sessions).

use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use med8k_engine::codec::sequence::SequenceWriter;
use med8k_engine::pipeline::Shutdown;
use med8k_transport::driver::{Link, Server, SessionControl};
use med8k_transport::proto::{Capabilities, Event, ObjectKind, ObjectOffer};
use med8k_transport::site::{GateKind, SiteConfig};
use tokio::sync::mpsc;

use super::{DevelopmentGate, count_lost, mbps};
use crate::{Outcome, on_ctrl_c};

/// Frames and object pieces queued for a link's writer; beyond it frames
/// are dropped (counted) rather than stall the link.
const STORE_QUEUE: usize = 64;

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
}

/// What a link's writer is handed.
enum Store {
    Frame(Vec<u8>),
    Offered(ObjectOffer, u64),
    Data(u64, u64, Vec<u8>),
    Complete(u64),
    Corrupt(u64),
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
    seconds: f64,
    sequence: Option<PathBuf>,
    shown: Option<u64>,
    late: u64,
    rtt_ms: f64,
    loss_ppm: u32,
    ended: String,
    error: Option<String>,
}

pub fn serve(args: &ServeArgs) -> anyhow::Result<Outcome> {
    let config = SiteConfig::load(&args.config)?;
    let site = config.site(Capabilities::RECEIVE_LIVE | Capabilities::RECEIVE_OBJECTS)?;
    let driver = config.driver_config();
    let gate = match config.gate {
        GateKind::AllowAuthenticated => Arc::new(DevelopmentGate::default()),
        other => anyhow::bail!("{}: gate {other:?} is not supported", args.config.display()),
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
        tracing::warn!(
            "gate: development (allow-authenticated): peers are admitted on mutual TLS alone; \
             consent is NOT checked"
        );
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
                        tokio::spawn(async move {
                            let report = run_link(link, n, out, sink, frames).await;
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
    if let Some(n) = r.shown {
        println!("  {n} frame(s) decoded to the sink");
    }
    if let Some(p) = &r.sequence {
        println!("  frames -> {}", p.display());
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
    while let Some(event) = link.next_event().await {
        let store = match event {
            Event::Open { peer } => {
                tracing::info!(facility = %peer.site_id, "session open");
                None
            }
            Event::Frame(f) => {
                let now = Instant::now();
                first.get_or_insert(now);
                last = now;
                report.frames += 1;
                report.bytes += f.payload.len() as u64;
                total.fetch_add(1, Ordering::Relaxed);
                if writer.is_some() && tx.try_send(Store::Frame(f.payload)).is_err() {
                    report.dropped += 1;
                }
                None
            }
            Event::FramesLost { ranges, .. } => {
                report.lost += count_lost(&ranges);
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
                report.ended = format!("closed by {by:?}: {why:?} ({detail})");
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
                report.objects = stored.objects;
                report.shown = stored.shown;
            }
            Ok(Err(e)) => report.error = Some(format!("{e:#}")),
            Err(e) => report.error = Some(e.to_string()),
        }
    }
    report
}

/// What a link's writer stored.
struct Stored {
    sequence: Option<PathBuf>,
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
    let mut seq: Option<SequenceWriter<BufWriter<File>>> = None;
    let mut display = sink.as_deref().map(super::display::Display::new);
    let mut open: std::collections::HashMap<u64, (File, PathBuf, ObjectKind)> =
        std::collections::HashMap::new();
    let mut objects = Vec::new();
    let mut shown = None;
    while let Some(item) = rx.blocking_recv() {
        match item {
            Store::Frame(bytes) => {
                if let Some(d) = display.as_mut()
                    && let Err(e) = d.show(&bytes)
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
        }
    }
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
        objects,
        shown,
    })
}

fn extension(kind: ObjectKind) -> &'static str {
    match kind {
        ObjectKind::Dicom => "dcm",
        ObjectKind::SpectralCube => "cube",
        ObjectKind::Image => "image",
        _ => "bin",
    }
}
