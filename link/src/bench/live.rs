//! Phase 2: live frames over the med8k link, and the link the classes
//! reuse for their probe and their stream.
//!
//! Every wait is bounded: the link has [`CONNECT_TIMEOUT`] to open, a run
//! sends for its seconds and then waits at most two frame deadlines (and
//! never more than [`GRACE`]) for the last frames, and closing waits at
//! most [`GRACE`] for the receiver. A phase cut short reports what it
//! measured until then and why it stopped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, bail};
use med8k_transport::driver::{Client, Link, Server};
use med8k_transport::proto::{Codec, Event, FrameHeader, Layout, PixelFormat, Slice};
use med8k_transport::relay::Relay;
use tokio::sync::Notify;

use super::{CONNECT_TIMEOUT, GRACE, Latency, RECEIVER, Setup};
use crate::plan::StreamPlan;
use crate::{DevelopmentGate, count_lost, development_credentials, mbps};

/// What a run sends.
#[derive(Debug, Clone, Copy)]
pub(super) enum Traffic {
    /// Frames of one size as fast as the link takes them: at most `window`
    /// in flight, paced by a rate the sender adapts from `start_mbps` (a
    /// share of it: [`START`]) up to [`MOST`] times `most_mbps`.
    Saturate {
        frame_bytes: usize,
        window: u32,
        start_mbps: f64,
        most_mbps: f64,
    },
    /// A stream at `fps`, frame sizes as `plan` says.
    Paced { fps: f64, plan: StreamPlan },
}

/// What one run came to.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Measured {
    /// Payload of the frames delivered, over the sending time.
    pub goodput_mbps: f64,
    /// Frames handed to the link.
    pub sent: u64,
    /// Frames delivered whole.
    pub received: u64,
    /// Delivered after the frame deadline.
    pub late: u64,
    /// Never delivered.
    pub lost: u64,
    /// Hand-over to delivery.
    pub latency: Latency,
    /// Seconds spent sending.
    pub seconds: f64,
    /// The delivery rate from the middle of the sending time to the last
    /// delivery (a probe's measure, past its start-up).
    pub tail_mbps: f64,
}

impl Measured {
    /// Frames delivered per second of sending.
    pub fn fps(&self) -> f64 {
        if self.seconds > 0.0 {
            self.received as f64 / self.seconds
        } else {
            0.0
        }
    }
}

/// A run's figures, and why it stopped early if it did.
#[derive(Debug, Default)]
pub(super) struct Outcome {
    pub measured: Measured,
    pub error: Option<String>,
    /// The UDP payload the sender's connection had reached at the end (0
    /// if the link never opened).
    pub udp_payload: u16,
}

/// Opens a link, runs `traffic` for `seconds`, closes: all bounded.
pub(super) async fn run_once(
    setup: &Setup,
    traffic: Traffic,
    seconds: Duration,
    rtt: Duration,
) -> Outcome {
    let mut link = match LiveLink::open(setup).await {
        Ok(l) => l,
        Err(e) => {
            return Outcome {
                measured: Measured::default(),
                error: Some(format!("{e:#}")),
                udp_payload: 0,
            };
        }
    };
    let pacer_rtt = setup.impairment.is_some().then_some(rtt);
    let (measured, error) = link.run(traffic, seconds, pacer_rtt).await;
    let udp_payload = link.tx.stats().udp_payload;
    let closed = link.close().await;
    Outcome {
        measured,
        error: error.or(closed.err().map(|e| format!("{e:#}"))),
        udp_payload,
    }
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

/// Every frame delivered: (sequence number, latency in µs, bytes, when in
/// µs since the epoch).
type Book = Arc<Mutex<Vec<(u64, u64, u32, u64)>>>;

/// Aborts a task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A med8k link between the two sites, its receiver counting in a task.
pub(super) struct LiveLink {
    tx: Link,
    server: Server,
    _relay: Option<Relay>,
    receiver: AbortOnDrop,
    book: Book,
    shared: Arc<Shared>,
    epoch: Instant,
    deadline: Duration,
    sent: u64,
    payloads: HashMap<usize, (Vec<u8>, u32)>,
}

impl LiveLink {
    /// Connects and opens the session, within [`CONNECT_TIMEOUT`].
    pub(super) async fn open(setup: &Setup) -> anyhow::Result<LiveLink> {
        tokio::time::timeout(CONNECT_TIMEOUT, Self::connect(setup))
            .await
            .map_err(|_| {
                anyhow!(
                    "no session within {} s: the path delivered nothing",
                    CONNECT_TIMEOUT.as_secs()
                )
            })?
    }

    async fn connect(setup: &Setup) -> anyhow::Result<LiveLink> {
        let Ends {
            tx,
            rx,
            server,
            relay,
        } = Ends::open(setup).await?;
        let book = Book::default();
        let shared = Arc::new(Shared::default());
        let epoch = Instant::now();
        let deadline = setup.config.session.frame_deadline;
        let receiver = AbortOnDrop(tokio::spawn(receive(
            rx,
            book.clone(),
            shared.clone(),
            epoch,
        )));
        Ok(LiveLink {
            tx,
            server,
            _relay: relay,
            receiver,
            book,
            shared,
            epoch,
            deadline,
            sent: 0,
            payloads: HashMap::new(),
        })
    }

    /// The link's smoothed round trip now.
    pub(super) fn rtt(&self) -> Duration {
        self.tx.stats().rtt
    }

    /// A payload of `len` bytes and its CRC (made once per size).
    fn payload(&mut self, len: usize) -> (Vec<u8>, u32) {
        let (p, crc) = self.payloads.entry(len).or_insert_with(|| {
            let p: Vec<u8> = (0..len).map(|i| (i * 31 % 251) as u8).collect();
            let crc = crc32fast::hash(&p);
            (p, crc)
        });
        (p.clone(), *crc)
    }

    /// Sends `traffic` for `seconds`, waits for the last frames (at most
    /// two deadlines, at most [`GRACE`]), and measures this run's frames.
    pub(super) async fn run(
        &mut self,
        traffic: Traffic,
        seconds: Duration,
        pacer_rtt: Option<Duration>,
    ) -> (Measured, Option<String>) {
        let first = self.sent;
        let start = self.epoch.elapsed();
        let end = tokio::time::Instant::now() + seconds;
        let error = self.send(traffic, end, pacer_rtt).await.err();
        let stop = self.epoch.elapsed();
        let last = self.sent;
        // Let the last frames arrive or expire.
        let settle = (self.deadline * 2 + Duration::from_millis(200)).min(GRACE);
        tokio::time::sleep(settle).await;
        let measured = self.measure(first..last, start, stop);
        (measured, error.map(|e| format!("{e:#}")))
    }

    async fn send(
        &mut self,
        traffic: Traffic,
        end: tokio::time::Instant,
        pacer_rtt: Option<Duration>,
    ) -> anyhow::Result<()> {
        let mut done_credit = 0u64;
        let first = self.sent;
        let (mut pacer, window, mut tick, plan) = match traffic {
            Traffic::Saturate {
                frame_bytes,
                window,
                start_mbps,
                most_mbps,
            } => (
                Some(Pacer::new(start_mbps, most_mbps, frame_bytes, pacer_rtt)),
                window,
                None,
                StreamPlan::Wavelet {
                    bpp: 0.0,
                    frame_bytes,
                },
            ),
            Traffic::Paced { fps, plan } => {
                let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / fps));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
                (None, u32::MAX, Some(tick), plan)
            }
        };
        let codec = match plan {
            StreamPlan::Av1 { .. } => Codec::Av1,
            _ => Codec::WaveletLossy,
        };
        while tokio::time::Instant::now() < end {
            if let Some(tick) = tick.as_mut() {
                tokio::select! {
                    _ = tick.tick() => {}
                    () = tokio::time::sleep_until(end) => break,
                }
            }
            if let Some(pacer) = pacer.as_mut() {
                // At most `window` frames outstanding, and no earlier than
                // the pacer's slot.
                loop {
                    let done = self.shared.done.load(Ordering::Acquire);
                    pacer.update(&self.shared);
                    let outstanding = (self.sent - first).saturating_sub(done + done_credit);
                    let now = Instant::now();
                    if outstanding < u64::from(window) && now + SLACK >= pacer.next {
                        break;
                    }
                    if tokio::time::Instant::now() >= end {
                        return Ok(());
                    }
                    if outstanding >= u64::from(window) {
                        let notified = self.shared.changed.notified();
                        let until = (tokio::time::Instant::now() + self.deadline).min(end);
                        if tokio::time::timeout_at(until, notified).await.is_err()
                            && tokio::time::Instant::now() < end
                        {
                            // Nothing came back within a deadline: count
                            // that frame as gone rather than stall.
                            done_credit += 1;
                        }
                    } else {
                        // Never spin: on a 2-core machine a busy sender
                        // takes the CPU the link itself needs.
                        let at = tokio::time::Instant::from_std(pacer.next).min(end);
                        tokio::time::sleep_until(at).await;
                    }
                }
            }
            // Loss reports from the peer are read so its queue never fills.
            // (Not `timeout(ZERO, next_event())`: tokio rounds a deadline up
            // to its next 1 ms tick, which capped the sender at ~750
            // frames/s.)
            while self.tx.try_next_event().is_some() {}
            let index = self.sent - first;
            let (payload, crc) = self.payload(plan.frame_bytes(index));
            let header = frame_header(codec, &payload, crc, self.epoch);
            let sent = tokio::time::timeout_at(end + GRACE, self.tx.send_frame(header, payload));
            match sent.await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(anyhow!("sending frame {}: {e}", self.sent)),
                Err(_) => bail!("the link took no frame for {} s", GRACE.as_secs()),
            }
            self.sent += 1;
            if let Some(p) = pacer.as_mut() {
                p.sent();
            }
        }
        Ok(())
    }

    /// The figures of frames `seqs`, sent from `start` to `stop` (since
    /// the epoch), from the receiver's book.
    fn measure(&self, seqs: std::ops::Range<u64>, start: Duration, stop: Duration) -> Measured {
        let book = self.book.lock().unwrap_or_else(PoisonError::into_inner);
        let deadline_us = self.deadline.as_micros() as u64;
        let sending = stop.saturating_sub(start);
        let mid = (start + sending / 2).as_micros() as u64;
        let mut tail_end = mid;
        let mut latencies = Vec::new();
        let mut bytes = 0u64;
        let mut tail = 0u64;
        let mut late = 0u64;
        for &(seq, latency, len, at) in book.iter() {
            if seqs.contains(&seq) {
                latencies.push(latency);
                bytes += u64::from(len);
                late += u64::from(latency > deadline_us);
                if at >= mid {
                    tail += u64::from(len);
                    tail_end = tail_end.max(at);
                }
            }
        }
        let sent = seqs.end - seqs.start;
        let received = latencies.len() as u64;
        Measured {
            goodput_mbps: mbps(bytes, sending.as_secs_f64()),
            sent,
            received,
            late,
            lost: sent.saturating_sub(received),
            latency: Latency::of(latencies),
            seconds: sending.as_secs_f64(),
            tail_mbps: if tail_end > mid {
                mbps(tail, (tail_end - mid) as f64 / 1e6)
            } else {
                mbps(bytes, sending.as_secs_f64())
            },
        }
    }

    /// Closes the session and waits (at most [`GRACE`]) for the receiver.
    pub(super) async fn close(self) -> anyhow::Result<()> {
        let LiveLink {
            tx,
            server,
            mut receiver,
            ..
        } = self;
        tx.close("bench done");
        let ended = tokio::time::timeout(GRACE, &mut receiver.0).await;
        drop(tx);
        server.close();
        match ended {
            Ok(_) => Ok(()),
            Err(_) => Err(anyhow!(
                "the receiving end did not finish within {} s of the close",
                GRACE.as_secs()
            )),
        }
    }
}

/// Both ends of an open session (mutual TLS, the development gate), and
/// the relay between them when the setup has an impairment.
pub(super) struct Ends {
    /// The sending end (the client).
    pub tx: Link,
    /// The receiving end (accepted by `server`).
    pub rx: Link,
    /// The receiving site's endpoint.
    pub server: Server,
    /// The impairment relay, if any (dropping it stops it).
    pub relay: Option<Relay>,
}

impl Ends {
    /// Binds the server, connects the client (through the relay when there
    /// is one) and waits until both ends have opened the session. Not
    /// bounded: callers wrap it in [`CONNECT_TIMEOUT`].
    pub(super) async fn open(setup: &Setup) -> anyhow::Result<Ends> {
        let mut server = Server::bind(
            "127.0.0.1:0".parse()?,
            setup.rx.clone(),
            Arc::new(DevelopmentGate::quiet()),
            setup.config.clone(),
        )?;
        let (to, relay) = setup.path(server.local_addr()?)?;
        let mut tx = Client::connect(
            to,
            &setup.tx,
            RECEIVER,
            development_credentials(),
            &setup.config,
        )
        .await
        .context("connecting")?;
        let mut rx = match server.accept().await {
            Some(Ok(link)) => link,
            Some(Err(refused)) => bail!("the server refused the link: {}", refused.error),
            None => bail!("the server closed"),
        };
        let (a, b) = tokio::join!(wait_open(&mut tx), wait_open(&mut rx));
        a?;
        b?;
        Ok(Ends {
            tx,
            rx,
            server,
            relay,
        })
    }
}

fn frame_header(codec: Codec, payload: &[u8], crc: u32, epoch: Instant) -> FrameHeader {
    FrameHeader {
        channel: 0,
        seq: 0,
        capture_us: epoch.elapsed().as_micros() as u64,
        codec,
        width: 7680,
        height: 4320,
        format: PixelFormat {
            layout: Layout::Yuv422,
            bit_depth: 10,
        },
        slices: vec![Slice {
            len: payload.len() as u32,
            crc,
        }],
        payload_len: payload.len() as u32,
    }
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

/// The receiving end: books every frame, counts losses for the sender's
/// window; ends with the session.
async fn receive(mut link: Link, book: Book, shared: Arc<Shared>, epoch: Instant) {
    while let Some(event) = link.next_event().await {
        match event {
            Event::Frame(f) => {
                let now = epoch.elapsed().as_micros() as u64;
                let latency = now.saturating_sub(f.header.capture_us);
                book.lock().unwrap_or_else(PoisonError::into_inner).push((
                    f.header.seq,
                    latency,
                    f.payload.len() as u32,
                    now,
                ));
                shared.done.fetch_add(1, Ordering::AcqRel);
                shared.changed.notify_one();
            }
            Event::FramesLost { ranges, .. } => {
                let n = count_lost(&ranges);
                shared.lost.fetch_add(n, Ordering::AcqRel);
                shared.done.fetch_add(n, Ordering::AcqRel);
                shared.changed.notify_one();
            }
            _ => {}
        }
    }
}

/// How early a frame may go before its pacer slot (timers are ~1 ms
/// coarse; the pacer's debt rule keeps the average rate).
const SLACK: Duration = Duration::from_millis(2);

/// Where the pacer starts, as a share of the rate it is given (the ceiling
/// measured just before, or the cap if lower): at 1% loss, 40 ms and a
/// 200 Mbit/s cap, starting at half took a second of the five to climb
/// (71% of the cap); at 0.9, 91% (and 85-92% of the ceiling on loopback).
const START: f64 = 0.9;

/// How far above the rate it may reach the pacer climbs, as a share of
/// that rate (the cap, or the ceiling without one): headroom for the
/// pacer's own swings, the relay's queue taking the excess.
const MOST: f64 = 1.2;

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
    fn new(start_mbps: f64, most_mbps: f64, frame: usize, rtt: Option<Duration>) -> Pacer {
        let rate = (start_mbps * 1e6 / 8.0).max(1e5);
        let most = (most_mbps * 1e6 / 8.0).max(rate);
        Pacer {
            rate: rate * START,
            max_rate: most * MOST,
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
        let delivered = done
            .saturating_sub(lost)
            .saturating_sub(self.seen_done.saturating_sub(self.seen_lost));
        if lost > self.seen_lost {
            if self.last_cut.elapsed() >= self.hold {
                self.rate *= 0.85;
                self.last_cut = Instant::now();
            }
        } else if delivered > 0 {
            let steps = i32::try_from(delivered).unwrap_or(i32::MAX);
            self.rate = (self.rate * 1.01f64.powi(steps)).min(self.max_rate);
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
