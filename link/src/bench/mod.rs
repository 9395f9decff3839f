//! The link bench (`med8k bench link`): both ends of a link in one process
//! on loopback, through the impairment relay when loss, delay or a rate cap
//! is given.
//!
//! 1. The ceiling ([`ceiling`]): a plain quinn connection (same TLS, same
//!    transport settings, same sockets) writing one unidirectional stream
//!    as fast as it goes.
//! 2. Live frames ([`live`]) of [`BenchLinkOptions::frame_kb`] on the med8k
//!    link, either as fast as the link takes them (at most a window of
//!    frames in flight, paced by a rate the sender adapts: the measure of
//!    goodput) or at a frame rate. Latency is from handing the frame to the
//!    link to its delivery, whole and checked (one clock: both ends are
//!    here).
//!
//! [`bench_classes`] runs the link classes instead ([`classes`]).
//!
//! Every phase ends within its time plus a bounded grace
//! ([`CONNECT_TIMEOUT`], [`GRACE`]) whatever the path does, and says what
//! happened: a path that delivers nothing is a phase that failed to
//! connect, not a bench that waits.
//!
//! The default frame, 312 KB, is an 8K frame at 60 fps on the 150 Mbit/s
//! link class (150e6 / 8 / 60 bytes). An ephemeral CA and two facility
//! certificates are made in memory for the run.

mod ceiling;
pub mod classes;
pub mod fidelity;
pub mod frames;
mod frames_av1;
mod live;
pub mod pathology;
mod report;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use med8k_transport::driver::{Congestion, DriverConfig, MAX_UDP_PAYLOAD, Site};
use med8k_transport::pki::Ephemeral;
use med8k_transport::proto::{Capabilities, Hello};
use med8k_transport::relay::{Impairment, Relay};
use serde::Serialize;

pub use classes::{BenchClassesOptions, ClassReport, ClassesReport, bench_classes};
pub use frames::{FramesOptions, FramesReport, StageLatency, bench_frames};
pub use pathology::{PathologyOptions, PathologyReport, bench_pathology};

/// An 8K frame at 60 fps on the 150 Mbit/s link class, in KB.
pub const DEFAULT_FRAME_KB: u32 = 312;
/// The longest a phase waits for its connection and session.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest a phase takes beyond its seconds to let the last frames
/// arrive and close.
pub const GRACE: Duration = Duration::from_secs(3);
const SENDER: &str = "bench.sender";
const RECEIVER: &str = "bench.receiver";

/// What the bench runs.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BenchLinkOptions {
    /// Random loss per datagram, each direction, in percent (0..=100).
    pub loss_percent: Option<f64>,
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
    /// Frames in flight at most when not paced (default: 3 on loopback;
    /// through the relay, two round trips' worth at the cap plus three).
    pub window: Option<u32>,
    /// Live frame deadline in milliseconds.
    pub deadline_ms: u64,
    /// Congestion controller for both phases.
    pub congestion: Congestion,
    /// The largest UDP payload path MTU discovery may reach, both phases
    /// (1200..=[`MAX_UDP_PAYLOAD`]; default: the driver's,
    /// [`MAX_UDP_PAYLOAD`]). Loopback carries any size, so 1452 is what an
    /// Ethernet path between the sites would allow.
    pub max_udp_payload: Option<u16>,
}

impl Default for BenchLinkOptions {
    fn default() -> Self {
        BenchLinkOptions {
            loss_percent: None,
            delay: None,
            rate: None,
            seconds: 5.0,
            frame_kb: DEFAULT_FRAME_KB,
            fps: None,
            window: None,
            deadline_ms: 250,
            congestion: Congestion::Bbr,
            max_udp_payload: None,
        }
    }
}

/// What the bench measured.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct BenchLinkReport {
    /// `loopback` or `relay`.
    pub path: &'static str,
    /// Loss per datagram, percent.
    pub loss_percent: f64,
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
    /// The largest UDP payload path MTU discovery may reach.
    pub max_udp_payload: u16,
    /// The UDP payload the ceiling's connection had reached at its end (0
    /// if it failed).
    pub ceiling_udp_payload: u16,
    /// The UDP payload the live link had reached at its end (0 if it never
    /// opened).
    pub live_udp_payload: u16,
    /// Plain quinn's goodput on the same path.
    pub ceiling_mbps: f64,
    /// Why the ceiling phase failed, if it did.
    pub ceiling_error: Option<String>,
    /// Why the live phase failed or ended early, if it did (its figures
    /// are what it measured until then).
    pub live_error: Option<String>,
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
    /// Frames delivered after their deadline.
    pub frames_late: u64,
    /// Frames not delivered.
    pub frames_lost: u64,
    /// Hand-over to delivery.
    pub latency_ms: Latency,
    /// Wall-clock seconds of both phases together.
    pub elapsed_s: f64,
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

impl Latency {
    /// The percentiles of latencies in microseconds (sorted here).
    fn of(mut us: Vec<u64>) -> Latency {
        us.sort_unstable();
        let pick = |q: f64| -> f64 {
            if us.is_empty() {
                return 0.0;
            }
            let i = ((us.len() - 1) as f64 * q).round() as usize;
            us[i] as f64 / 1000.0
        };
        Latency {
            p50: pick(0.5),
            p99: pick(0.99),
            max: pick(1.0),
        }
    }
}

/// The link's two ends and the relay between them, if any.
#[derive(Debug)]
pub(crate) struct Setup {
    tx: Site,
    rx: Site,
    config: DriverConfig,
    impairment: Option<Impairment>,
}

impl Setup {
    /// Two sites under a CA made for the run, `config` for both, and the
    /// relay's impairment (each direction) if any.
    fn new(config: DriverConfig, impairment: Option<Impairment>) -> anyhow::Result<Setup> {
        let ca = Ephemeral::new("med8k bench CA")?;
        let site = |id: &str, peer: &str, caps| -> anyhow::Result<Site> {
            Ok(Site {
                identity: ca.facility(id)?.identity(),
                trust: ca.trust(vec![peer.to_owned()]),
                hello: Hello::new(id, id, caps),
            })
        };
        Ok(Setup {
            tx: site(
                SENDER,
                RECEIVER,
                Capabilities::SEND_LIVE | Capabilities::SEND_OBJECTS,
            )?,
            rx: site(
                RECEIVER,
                SENDER,
                Capabilities::RECEIVE_LIVE | Capabilities::RECEIVE_OBJECTS,
            )?,
            config,
            impairment,
        })
    }

    /// Where the client connects: the server, or a relay in front of it.
    fn path(&self, server: SocketAddr) -> anyhow::Result<(SocketAddr, Option<Relay>)> {
        match &self.impairment {
            Some(i) => {
                let relay = Relay::start("127.0.0.1:0".parse()?, server, i.clone(), i.clone())
                    .context("starting the relay")?;
                Ok((relay.local_addr(), Some(relay)))
            }
            None => Ok((server, None)),
        }
    }
}

/// The driver settings of both phases: the frame deadline and the frames
/// tracked for `window` frames in flight; the rest are the driver's
/// defaults.
fn driver_config(deadline_ms: u64, window: u32, congestion: Congestion) -> DriverConfig {
    let session = DriverConfig::default()
        .session
        .with_frame_deadline(Duration::from_millis(deadline_ms))
        .with_max_tracked_frames((window as usize * 2).max(8));
    DriverConfig::default()
        .with_session(session)
        .with_congestion(congestion)
        .with_max_concurrent_frames(window + 2)
        .with_event_capacity(256)
}

/// Checks the options every mode shares.
fn check_path(
    loss_percent: Option<f64>,
    delay: Option<u64>,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    if let Some(l) = loss_percent
        && !(0.0..=100.0).contains(&l)
    {
        bail!("--loss {l} is outside 0..=100 (percent)");
    }
    if let Some(d) = delay
        && d > 10_000
    {
        bail!("--delay {d} is outside 0..=10000 ms");
    }
    if let Some(r) = rate
        && !(0.1..=100_000.0).contains(&r)
    {
        bail!("--rate {r} is outside 0.1..=100000 Mbit/s");
    }
    Ok(())
}

/// Runs both phases and reports. Fails only on bad options or a machine
/// that cannot run it (no sockets, no threads); what the path does is
/// reported.
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
    check_path(args.loss_percent, args.delay, args.rate)?;
    if let Some(p) = args.max_udp_payload
        && !(1200..=MAX_UDP_PAYLOAD).contains(&p)
    {
        bail!("--max-udp-payload {p} is outside 1200..={MAX_UDP_PAYLOAD}");
    }
    let impaired = args.loss_percent.is_some() || args.delay.is_some() || args.rate.is_some();
    let delay = Duration::from_millis(args.delay.unwrap_or(0));
    let impairment = impaired
        .then(|| impairment(args.loss_percent.unwrap_or(0.0), delay, args.rate))
        .transpose()
        .context("bad impairment")?;
    let frame_bytes = args.frame_kb as usize * 1000;
    let window = args
        .window
        .unwrap_or_else(|| default_window(args.rate, delay * 2, frame_bytes));
    let mut config = driver_config(args.deadline_ms, window, args.congestion);
    if let Some(p) = args.max_udp_payload {
        config = config.with_max_udp_payload(p);
    }
    let max_udp_payload = config.max_udp_payload;
    let setup = Setup::new(config, impairment)?;
    let seconds = Duration::from_secs_f64(args.seconds);

    let began = Instant::now();
    let rt = super::runtime()?;
    let (ceiling, live) = rt.block_on(async {
        let ceiling = ceiling::run(&setup, seconds).await;
        // The pacer starts from the ceiling (or the cap, if lower) and may
        // climb past the ceiling up to the cap: one quinn stream at 1% loss
        // is held by its stream window, while live frames are a stream
        // each (tied to the ceiling, the live link stayed within 1.2 times
        // it: 55-65% of a 1000 Mbit/s cap at 1% loss over 40 ms).
        let measured = ceiling.as_ref().map_or(0.0, |c| c.mbps);
        let start = match (args.rate, measured > 0.0) {
            (Some(r), true) => r.min(measured),
            (Some(r), false) => r,
            (None, _) => measured.max(100.0),
        };
        let most = args.rate.unwrap_or(start);
        let traffic = match args.fps {
            Some(fps) => live::Traffic::Paced {
                fps,
                plan: crate::plan::StreamPlan::Wavelet {
                    bpp: 0.0,
                    frame_bytes,
                },
            },
            None => live::Traffic::Saturate {
                frame_bytes,
                window,
                start_mbps: start,
                most_mbps: most,
            },
        };
        let live = live::run_once(&setup, traffic, seconds, delay * 2).await;
        (ceiling, live)
    });
    let (ceiling_mbps, ceiling_udp_payload, ceiling_error) = match ceiling {
        Ok(c) => (c.mbps, c.udp_payload, None),
        Err(e) => (0.0, 0, Some(e)),
    };
    let m = live.measured;
    Ok(BenchLinkReport {
        path: if impaired { "relay" } else { "loopback" },
        loss_percent: args.loss_percent.unwrap_or(0.0),
        delay_ms: args.delay.unwrap_or(0),
        rate_mbps: args.rate,
        congestion: congestion_name(args.congestion),
        seconds: args.seconds,
        frame_bytes,
        fps: args.fps,
        window,
        deadline_ms: args.deadline_ms,
        max_udp_payload,
        ceiling_udp_payload,
        live_udp_payload: live.udp_payload,
        ceiling_mbps,
        ceiling_error,
        live_error: live.error,
        goodput_mbps: m.goodput_mbps,
        ratio_to_ceiling: if ceiling_mbps > 0.0 {
            m.goodput_mbps / ceiling_mbps
        } else {
            0.0
        },
        ratio_to_cap: args.rate.map(|r| m.goodput_mbps / r),
        frames_sent: m.sent,
        frames_received: m.received,
        frames_late: m.late,
        frames_lost: m.lost,
        latency_ms: m.latency,
        elapsed_s: began.elapsed().as_secs_f64(),
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

/// The relay's impairment, each direction: `loss_percent` random loss,
/// `delay` one way and, with `rate`, a cap with a drop-tail queue of one
/// round trip (at least 256 KB), as a router's buffer.
fn impairment(loss_percent: f64, delay: Duration, rate: Option<f64>) -> anyhow::Result<Impairment> {
    let mut i = Impairment::new().delay(delay).loss(loss_percent / 100.0);
    if let Some(rate) = rate {
        let rtt = (delay * 2).max(Duration::from_millis(10));
        let bdp = (rate * 1e6 / 8.0 * rtt.as_secs_f64()) as usize;
        i = i.rate_mbps(rate).queue_limit_bytes(bdp.max(256 << 10));
    }
    i.validate()?;
    Ok(i)
}

/// Frames in flight. Loopback without the relay: three. More is worse
/// there: the driver sends the newest frame first, so every frame beyond
/// what the path holds only delays the older ones (4 in flight gave 76% of
/// the ceiling, 3 gave 78-80%, 8 gave 53%). Through the relay: two round
/// trips' worth at the cap (the relay's queue holds one more round trip,
/// and a frame waiting for a retransmission holds the frames after it)
/// plus three: at 1% loss, 40 ms and 200 Mbit/s, 6 in flight (one round
/// trip plus two) gave 69% of the cap, 10 gave 82%, 16 gave 84%.
fn default_window(rate: Option<f64>, rtt: Duration, frame: usize) -> u32 {
    if rtt.is_zero() && rate.is_none() {
        return 3;
    }
    let rate = rate.unwrap_or(2000.0) * 1e6 / 8.0;
    let rtt = rtt.max(Duration::from_millis(1)).as_secs_f64();
    let bdp = rate * rtt;
    ((2.0 * bdp / frame as f64).ceil() as u32 + 3).clamp(3, 64)
}
