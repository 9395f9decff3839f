//! The link bench (`med8k bench link`): both ends of a link in one process
//! on loopback, through the impairment relay when loss, delay or a rate cap
//! is given.
//!
//! 1. The ceiling: a plain quinn connection (same TLS, same transport
//!    settings) writing one unidirectional stream as fast as it goes.
//! 2. Live frames of [`BenchLinkOptions::frame_kb`] on the med8k link, either
//!    as fast as the link takes them (at most a window of frames in flight,
//!    the measure of goodput) or paced at a frame rate. Latency is from handing the frame to the
//!    link to its delivery, whole and checked (one clock: both ends are
//!    here).
//!
//! The default frame, 312 KB, is an 8K frame at 60 fps on the 150 Mbit/s
//! link class (150e6 / 8 / 60 bytes). An ephemeral CA and two facility
//! certificates are made in memory for the run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use med8k_transport::driver::tls::{self, facility_dns_name};
use med8k_transport::driver::{Client, Congestion, DriverConfig, Link, Server, Site};
use med8k_transport::pki::Ephemeral;
use med8k_transport::proto::{
    Capabilities, Codec, Event, FrameHeader, Hello, Layout, PixelFormat, Slice,
};
use med8k_transport::relay::{Impairment, Relay};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use serde::Serialize;
use tokio::sync::Notify;

use crate::{DevelopmentGate, count_lost, development_credentials, mbps};

/// An 8K frame at 60 fps on the 150 Mbit/s link class, in KB.
pub const DEFAULT_FRAME_KB: u32 = 312;
const SENDER: &str = "bench.sender";
const RECEIVER: &str = "bench.receiver";
/// Bytes per write in the bulk phase.
const BULK_WRITE: usize = 1 << 20;

/// What the bench runs.
#[derive(Debug, Clone, PartialEq)]
pub struct BenchLinkOptions {
    /// Random loss probability per datagram, each direction (0..1).
    pub loss: Option<f64>,
    /// One-way delay in milliseconds, each direction (the round trip is twice it).
    pub delay: Option<u64>,
    /// Bandwidth cap in Mbit/s, each direction.
    pub rate: Option<f64>,
    /// Seconds per phase.
    pub seconds: f64,
    /// Live frame size in KB (1000 bytes).
    pub frame_kb: u32,
    /// Pace frames at this rate instead of as fast as the link takes them.
    pub fps: Option<f64>,
    /// Frames in flight at most when not paced (default: a round trip's
    /// worth plus two, at least three).
    pub window: Option<u32>,
    /// Live frame deadline in milliseconds.
    pub deadline_ms: u64,
    /// Congestion controller for both phases.
    pub congestion: Congestion,
}

impl Default for BenchLinkOptions {
    fn default() -> Self {
        BenchLinkOptions {
            loss: None,
            delay: None,
            rate: None,
            seconds: 5.0,
            frame_kb: DEFAULT_FRAME_KB,
            fps: None,
            window: None,
            deadline_ms: 250,
            congestion: Congestion::Bbr,
        }
    }
}

/// What the bench measured.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BenchLinkReport {
    /// `loopback` or `relay`.
    pub path: &'static str,
    /// Loss probability per datagram.
    pub loss: f64,
    /// One-way delay.
    pub delay_ms: u64,
    /// The relay's cap.
    pub rate_mbps: Option<f64>,
    /// Congestion controller.
    pub congestion: &'static str,
    /// Seconds per phase.
    pub seconds: f64,
    /// Live frame size.
    pub frame_bytes: usize,
    /// Pace, when paced.
    pub fps: Option<f64>,
    /// Frames in flight at most.
    pub window: u32,
    /// Frame deadline.
    pub deadline_ms: u64,
    /// Plain quinn's goodput on the same path.
    pub ceiling_mbps: f64,
    /// Why the ceiling phase failed, if it did.
    pub ceiling_error: Option<String>,
    /// Live frames delivered whole, Mbit/s.
    pub goodput_mbps: f64,
    /// Goodput over the ceiling.
    pub ratio_to_ceiling: f64,
    /// Goodput over the cap.
    pub ratio_to_cap: Option<f64>,
    /// Frames handed to the link.
    pub frames_sent: u64,
    /// Frames delivered.
    pub frames_received: u64,
    /// Frames that missed their deadline.
    pub frames_late: u64,
    /// Frames reported lost.
    pub frames_lost: u64,
    /// Hand-over to delivery.
    pub latency_ms: Latency,
}

/// Frame latency percentiles, milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The link's two ends and the relay between them, if any.
struct Setup {
    tx: Site,
    rx: Site,
    config: DriverConfig,
    impairment: Option<Impairment>,
}

/// Runs both phases and reports.
pub fn bench_link(args: &BenchLinkOptions) -> anyhow::Result<BenchLinkReport> {
    if !(args.seconds > 0.0 && args.seconds <= 600.0) {
        bail!("--seconds {} is outside (0, 600]", args.seconds);
    }
    if !(1..=65_536).contains(&args.frame_kb) {
        bail!("--frame-kb {} is outside 1..=65536", args.frame_kb);
    }
    if let Some(f) = args.fps
        && !(f > 0.0 && f <= 10_000.0)
    {
        bail!("--fps {f} is outside (0, 10000]");
    }
    if args.window == Some(0) || args.deadline_ms == 0 {
        bail!("--window and --deadline-ms must be at least 1");
    }
    let impaired = args.loss.is_some() || args.delay.is_some() || args.rate.is_some();
    let impairment = impaired
        .then(|| impairment(args))
        .transpose()
        .context("bad impairment")?;
    let frame_bytes = args.frame_kb as usize * 1000;
    let delay = Duration::from_millis(args.delay.unwrap_or(0));
    let window = args
        .window
        .unwrap_or_else(|| default_window(args.rate, delay * 2, frame_bytes));

    let ca = Ephemeral::new("med8k bench CA")?;
    let site = |id: &str, peer: &str, caps| -> anyhow::Result<Site> {
        Ok(Site {
            identity: ca.facility(id)?.identity(),
            trust: ca.trust(vec![peer.to_owned()]),
            hello: Hello::new(id, id, caps),
        })
    };
    let session = DriverConfig::default()
        .session
        .with_frame_deadline(Duration::from_millis(args.deadline_ms))
        .with_max_tracked_frames((window as usize * 2).max(8));
    let config = DriverConfig::default()
        .with_session(session)
        .with_congestion(args.congestion)
        .with_max_concurrent_frames(window + 2)
        .with_event_capacity(256);
    let setup = Setup {
        tx: site(SENDER, RECEIVER, Capabilities::SEND_LIVE)?,
        rx: site(RECEIVER, SENDER, Capabilities::RECEIVE_LIVE)?,
        config,
        impairment,
    };
    let seconds = Duration::from_secs_f64(args.seconds);

    let rt = super::runtime()?;
    let (ceiling, ceiling_error, live) = rt.block_on(async {
        // A failed ceiling (quinn gives up on a stream with too many gaps
        // under heavy loss with BBR) is reported, and the live phase still runs.
        let (ceiling, ceiling_error) = match bulk(&setup, seconds).await {
            Ok(c) => (c, None),
            Err(e) => (0.0, Some(format!("{e:#}"))),
        };
        // The pacer starts from the ceiling (or the cap, if lower).
        let start = match (args.rate, ceiling > 0.0) {
            (Some(r), true) => r.min(ceiling),
            (Some(r), false) => r,
            (None, _) => ceiling.max(100.0),
        };
        let live = live(
            &setup,
            seconds,
            frame_bytes,
            args.fps,
            window,
            start,
            delay * 2,
        )
        .await
        .context("live phase")?;
        anyhow::Ok((ceiling, ceiling_error, live))
    })?;

    Ok(BenchLinkReport {
        path: if impaired { "relay" } else { "loopback" },
        loss: args.loss.unwrap_or(0.0),
        delay_ms: args.delay.unwrap_or(0),
        rate_mbps: args.rate,
        congestion: congestion_name(args.congestion),
        seconds: args.seconds,
        frame_bytes,
        fps: args.fps,
        window,
        deadline_ms: args.deadline_ms,
        ceiling_mbps: ceiling,
        ceiling_error,
        goodput_mbps: live.goodput,
        ratio_to_ceiling: if ceiling > 0.0 {
            live.goodput / ceiling
        } else {
            0.0
        },
        ratio_to_cap: args.rate.map(|r| live.goodput / r),
        frames_sent: live.sent,
        frames_received: live.received,
        frames_late: live.late,
        frames_lost: live.lost,
        latency_ms: live.latency,
    })
}

fn congestion_name(c: Congestion) -> &'static str {
    match c {
        Congestion::Cubic => "cubic",
        Congestion::Bbr => "bbr",
        Congestion::NewReno => "newreno",
        _ => "other",
    }
}

impl std::fmt::Display for BenchLinkReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let r = self;
        let path = match r.rate_mbps {
            _ if r.path == "loopback" => "loopback, no relay".to_owned(),
            Some(rate) => format!(
                "relay: loss {}, delay {} ms each way, cap {rate} Mbit/s",
                r.loss, r.delay_ms
            ),
            None => format!("relay: loss {}, delay {} ms each way", r.loss, r.delay_ms),
        };
        writeln!(f, "path: {path}; congestion {}", r.congestion)?;
        writeln!(
            f,
            "ceiling (plain quinn, one stream): {:.1} Mbit/s",
            r.ceiling_mbps
        )?;
        let pacing = match r.fps {
            Some(f) => format!("at {f} fps"),
            None => format!("as fast as the link takes them, {} in flight", r.window),
        };
        writeln!(
            f,
            "live frames of {} KB {pacing}: goodput {:.1} Mbit/s",
            r.frame_bytes / 1000,
            r.goodput_mbps
        )?;
        writeln!(f, "ratio to ceiling: {:.1}%", r.ratio_to_ceiling * 100.0)?;
        if let Some(c) = r.ratio_to_cap {
            writeln!(f, "ratio to relay cap: {:.1}%", c * 100.0)?;
        }
        writeln!(
            f,
            "frames: {} sent, {} received, {} late (> {} ms), {} lost",
            r.frames_sent, r.frames_received, r.frames_late, r.deadline_ms, r.frames_lost
        )?;
        write!(
            f,
            "frame latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            r.latency_ms.p50, r.latency_ms.p99, r.latency_ms.max
        )
    }
}

fn impairment(args: &BenchLinkOptions) -> anyhow::Result<Impairment> {
    let delay = Duration::from_millis(args.delay.unwrap_or(0));
    let mut i = Impairment::new()
        .delay(delay)
        .loss(args.loss.unwrap_or(0.0));
    if let Some(rate) = args.rate {
        // A drop-tail queue of one round trip at the cap (at least 256 KB),
        // as a router's buffer: without a limit the queue only grows.
        let rtt = (delay * 2).max(Duration::from_millis(10));
        let bdp = (rate * 1e6 / 8.0 * rtt.as_secs_f64()) as usize;
        i = i.rate_mbps(rate).queue_limit_bytes(bdp.max(256 << 10));
    }
    i.validate()?;
    Ok(i)
}

/// Frames in flight: a round trip's worth at the cap (loopback: 2 Gbit/s
/// over 1 ms) plus two, at least three. More is worse: the driver sends the
/// newest frame first, so every frame beyond what the path holds only
/// delays the older ones (on loopback, 4 in flight gave 76% of the
/// ceiling, 3 gave 78-80%, 8 gave 53%).
fn default_window(rate: Option<f64>, rtt: Duration, frame: usize) -> u32 {
    let rate = rate.unwrap_or(2000.0) * 1e6 / 8.0;
    let rtt = rtt.max(Duration::from_millis(1)).as_secs_f64();
    let bdp = rate * rtt;
    ((bdp / frame as f64).ceil() as u32 + 2).clamp(3, 64)
}

/// Where the client connects: the server, or a relay in front of it.
fn path(setup: &Setup, server: SocketAddr) -> anyhow::Result<(SocketAddr, Option<Relay>)> {
    match &setup.impairment {
        Some(i) => {
            let relay = Relay::start("127.0.0.1:0".parse()?, server, i.clone(), i.clone())
                .context("starting the relay")?;
            Ok((relay.local_addr(), Some(relay)))
        }
        None => Ok((server, None)),
    }
}

/// Phase 1: one stream, as fast as it goes, for `seconds`; Mbit/s at the
/// receiver.
async fn bulk(setup: &Setup, seconds: Duration) -> anyhow::Result<f64> {
    let transport = setup.config.transport();
    let server_crypto =
        QuicServerConfig::try_from(tls::server_config(&setup.rx.identity, &setup.rx.trust)?)?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server_config.transport_config(transport.clone());
    let server = quinn::Endpoint::server(server_config, "127.0.0.1:0".parse()?)?;
    let (to, _relay) = path(setup, server.local_addr()?)?;

    let receiver = tokio::spawn({
        let server = server.clone();
        async move {
            let conn = server.accept().await.context("no connection")?.await?;
            let mut stream = conn.accept_uni().await?;
            // Counts for `seconds` from the first byte, then ends the
            // connection (what the sender buffered beyond does not count).
            let mut bytes = 0u64;
            let mut first: Option<Instant> = None;
            let mut last = Instant::now();
            while let Some(chunk) = stream.read_chunk(usize::MAX, true).await? {
                let now = Instant::now();
                let start = *first.get_or_insert(now);
                last = now;
                bytes += chunk.bytes.len() as u64;
                if now - start >= seconds {
                    break;
                }
            }
            conn.close(0u32.into(), b"done");
            let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
            anyhow::Ok(mbps(bytes, secs))
        }
    });

    let client_crypto =
        QuicClientConfig::try_from(tls::client_config(&setup.tx.identity, &setup.tx.trust)?)?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
    client_config.transport_config(transport);
    let client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    let conn = client
        .connect_with(client_config, to, &facility_dns_name(RECEIVER))?
        .await?;
    let mut stream = conn.open_uni().await?;
    let buf = vec![0x5au8; BULK_WRITE];
    // Writes until the receiver has seen enough and closes (a write then
    // fails), or long past it.
    let start = Instant::now();
    while start.elapsed() < seconds * 2 + Duration::from_secs(10) {
        if stream.write_all(&buf).await.is_err() {
            break;
        }
    }
    let result = tokio::time::timeout(Duration::from_secs(10), receiver)
        .await
        .context("the bulk receiver did not finish")???;
    conn.close(0u32.into(), b"done");
    client.wait_idle().await;
    server.close(0u32.into(), b"done");
    Ok(result)
}

/// What the live phase came to.
#[derive(Debug, Default)]
struct Live {
    goodput: f64,
    sent: u64,
    received: u64,
    late: u64,
    lost: u64,
    latency: Latency,
}

/// Counters the receiver keeps and the sender reads.
#[derive(Debug, Default)]
struct Shared {
    /// Frames delivered or reported lost.
    done: AtomicU64,
    /// Frames reported lost.
    lost: AtomicU64,
    changed: Notify,
}

/// "As fast as the link takes them": the driver sends newer frames first,
/// so a frame queued while an older one is still going out overtakes it
/// (and the older one is lost). The sender therefore paces frames at a rate
/// it adapts like a codec's rate control would: up 1% per frame delivered,
/// down 15% on a loss (at most once per round trip).
#[derive(Debug)]
struct Pacer {
    /// Bytes per second.
    rate: f64,
    max_rate: f64,
    frame: f64,
    next: Instant,
    seen_done: u64,
    seen_lost: u64,
    last_cut: Instant,
    hold: Duration,
}

impl Pacer {
    fn new(start_mbps: f64, frame: usize, rtt: Option<Duration>) -> Pacer {
        let rate = (start_mbps * 1e6 / 8.0).max(1e5);
        Pacer {
            rate: rate * 0.5,
            max_rate: rate * 1.2,
            frame: frame as f64,
            next: Instant::now(),
            seen_done: 0,
            seen_lost: 0,
            last_cut: Instant::now(),
            hold: rtt.unwrap_or(Duration::ZERO).max(Duration::from_millis(5)),
        }
    }

    fn update(&mut self, shared: &Shared) {
        let done = shared.done.load(Ordering::Acquire);
        let lost = shared.lost.load(Ordering::Acquire);
        let delivered = (done - lost).saturating_sub(self.seen_done - self.seen_lost);
        if lost > self.seen_lost {
            if self.last_cut.elapsed() >= self.hold {
                self.rate *= 0.85;
                self.last_cut = Instant::now();
            }
        } else if delivered > 0 {
            self.rate = (self.rate * 1.01f64.powi(delivered as i32)).min(self.max_rate);
        }
        self.seen_done = done;
        self.seen_lost = lost;
    }

    fn sent(&mut self) {
        let gap = Duration::from_secs_f64(self.frame / self.rate);
        // No debt beyond one frame: a stall is not made up in a burst.
        self.next = self.next.max(Instant::now() - gap) + gap;
    }
}

/// How early a frame may go before its pacer slot (timers are ~1 ms
/// coarse; the pacer's debt rule keeps the average rate).
const SLACK: Duration = Duration::from_millis(2);

/// Phase 2: live frames over the med8k link.
async fn live(
    setup: &Setup,
    seconds: Duration,
    frame_bytes: usize,
    fps: Option<f64>,
    window: u32,
    start_mbps: f64,
    rtt: Duration,
) -> anyhow::Result<Live> {
    let mut server = Server::bind(
        "127.0.0.1:0".parse()?,
        setup.rx.clone(),
        Arc::new(DevelopmentGate::quiet()),
        setup.config.clone(),
    )?;
    let (to, _relay) = path(setup, server.local_addr()?)?;
    let connect = Client::connect(
        to,
        &setup.tx,
        RECEIVER,
        development_credentials(),
        &setup.config,
    );
    let (client, accepted) = tokio::join!(connect, server.accept());
    let mut tx = client?;
    let mut rx = match accepted {
        Some(Ok(link)) => link,
        Some(Err(refused)) => bail!("the server refused the link: {}", refused.error),
        None => bail!("the server closed"),
    };
    let (a, b) = tokio::join!(wait_open(&mut tx), wait_open(&mut rx));
    a?;
    b?;

    let shared = Arc::new(Shared::default());
    let epoch = Instant::now();
    let deadline = setup.config.session.frame_deadline;
    let receiver = tokio::spawn(receive(rx, shared.clone(), epoch, deadline));

    // The sender: as fast as the window allows, or paced.
    let header = FrameHeader {
        channel: 0,
        seq: 0,
        capture_us: 0,
        codec: Codec::WaveletLossy,
        width: 7680,
        height: 4320,
        format: PixelFormat {
            layout: Layout::Yuv422,
            bit_depth: 10,
        },
        slices: Vec::new(),
        payload_len: frame_bytes as u32,
    };
    let payload: Vec<u8> = (0..frame_bytes).map(|i| (i * 31 % 251) as u8).collect();
    let header = FrameHeader {
        slices: vec![Slice {
            len: frame_bytes as u32,
            crc: crc32fast::hash(&payload),
        }],
        ..header
    };
    let mut sent = 0u64;
    let mut credit = 0u64;
    let start = Instant::now();
    let mut pace = fps.map(|f| tokio::time::interval(Duration::from_secs_f64(1.0 / f)));
    let mut pacer = Pacer::new(
        start_mbps,
        frame_bytes,
        setup.impairment.is_some().then_some(rtt),
    );
    // Reports from the peer are read so its queue never fills.
    let mut peer_lost = 0u64;
    let mut in_send = Duration::ZERO;
    let mut in_window = Duration::ZERO;
    while start.elapsed() < seconds {
        match pace.as_mut() {
            Some(p) => {
                p.tick().await;
            }
            None => loop {
                // At most `window` frames outstanding, and no earlier than
                // the pacer's slot.
                let done = shared.done.load(Ordering::Acquire);
                pacer.update(&shared);
                let outstanding = sent.saturating_sub(done + credit);
                let now = Instant::now();
                if outstanding < u64::from(window) && now + SLACK >= pacer.next {
                    break;
                }
                if outstanding >= u64::from(window) {
                    let notified = shared.changed.notified();
                    let t = Instant::now();
                    let r = tokio::time::timeout(deadline, notified).await;
                    in_window += t.elapsed();
                    if r.is_err() {
                        // Nothing came back within a deadline: count that
                        // frame as gone rather than stall.
                        credit += 1;
                    }
                } else {
                    // Never spin: on a 2-core machine a busy sender takes
                    // the CPU the link itself needs.
                    tokio::time::sleep_until(pacer.next.into()).await;
                }
            },
        }
        // Not `timeout(ZERO, next_event())`: tokio rounds a deadline up to
        // its next 1 ms tick, which capped the sender at ~750 frames/s.
        while let Some(event) = tx.try_next_event() {
            if let Event::PeerFramesLost { ranges, .. } = event {
                peer_lost += count_lost(&ranges);
            }
        }
        let header = FrameHeader {
            capture_us: epoch.elapsed().as_micros() as u64,
            ..header.clone()
        };
        let call = Instant::now();
        tx.send_frame(header, payload.clone()).await?;
        in_send += call.elapsed();
        sent += 1;
        pacer.sent();
    }
    let send_seconds = start.elapsed();
    // Let the last frames arrive or expire, then close.
    let grace = deadline * 2 + Duration::from_millis(200);
    tokio::time::sleep(grace).await;
    tx.close("bench done");
    let stats = tokio::time::timeout(Duration::from_secs(5), receiver)
        .await
        .context("the receiver did not finish")??;
    drop(tx);
    server.close();
    tracing::debug!(
        peer_lost,
        send_frame_ms = in_send.as_secs_f64() * 1e3 / sent.max(1) as f64,
        pacer_mbps = pacer.rate * 8.0 / 1e6,
        window_wait_s = in_window.as_secs_f64(),
        "sender: losses reported, mean time in send_frame"
    );

    let mut latencies = stats.latencies_us;
    latencies.sort_unstable();
    let pick = |q: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        let i = ((latencies.len() - 1) as f64 * q).round() as usize;
        latencies[i] as f64 / 1000.0
    };
    let received = latencies.len() as u64;
    // Measured over the sending time: frames still arriving after it count,
    // which the grace allows only for the last deadline's worth.
    let goodput = mbps(stats.bytes, send_seconds.as_secs_f64());
    Ok(Live {
        goodput,
        sent,
        received,
        late: stats.late,
        lost: stats.lost.max(sent.saturating_sub(received)),
        latency: Latency {
            p50: pick(0.5),
            p99: pick(0.99),
            max: pick(1.0),
        },
    })
}

async fn wait_open(link: &mut Link) -> anyhow::Result<()> {
    while let Some(event) = link.next_event().await {
        match event {
            Event::Open { .. } => return Ok(()),
            Event::Closed { why, detail, .. } => bail!("session not opened: {why:?} ({detail})"),
            _ => {}
        }
    }
    bail!("the link ended before opening")
}

#[derive(Debug, Default)]
struct Received {
    bytes: u64,
    late: u64,
    lost: u64,
    latencies_us: Vec<u64>,
}

async fn receive(
    mut link: Link,
    shared: Arc<Shared>,
    epoch: Instant,
    deadline: Duration,
) -> Received {
    let mut r = Received::default();
    while let Some(event) = link.next_event().await {
        match event {
            Event::Frame(f) => {
                let now = epoch.elapsed().as_micros() as u64;
                let latency = now.saturating_sub(f.header.capture_us);
                if latency > deadline.as_micros() as u64 {
                    r.late += 1;
                }
                r.latencies_us.push(latency);
                r.bytes += f.payload.len() as u64;
                shared.done.fetch_add(1, Ordering::AcqRel);
                shared.changed.notify_one();
            }
            Event::FramesLost { ranges, .. } => {
                let n = count_lost(&ranges);
                r.lost += n;
                shared.lost.fetch_add(n, Ordering::AcqRel);
                shared.done.fetch_add(n, Ordering::AcqRel);
                shared.changed.notify_one();
            }
            Event::Closed { .. } => {}
            _ => {}
        }
    }
    r
}
