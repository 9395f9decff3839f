//! A soak through the impairment relay: a sender streams live frames and a
//! queue of reliable objects to a receiver for `MED8K_SOAK_SECONDS`
//! (default 40: CI's minute; a few minutes: `MED8K_SOAK_SECONDS=300`),
//! while the path changes under it: random loss with bursts, reordering,
//! jitter, rate changes and blackouts of 0.5-5 s (seeded: `MED8K_SOAK_SEED`).
//!
//! What must hold:
//! - the live channel resumes within a second of the path coming back
//!   after every blackout;
//! - memory stays bounded (the process's resident set, sampled);
//! - every reliable object arrives bit-exact (SHA-256 over what the
//!   receiver was handed) or is reported failed to its sender, never
//!   delivered wrong;
//! - at the end nothing is left waiting: every task the links started has
//!   ended (the runtime's count of live tasks is back where it was).
#![allow(clippy::unwrap_used)]

mod driver_support;

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use driver_support::*;
use med8k_transport::driver::{Backoff, Dialer, DriverConfig, LinkSender};
use med8k_transport::proto::{self, Event};
use med8k_transport::relay::{Direction, Impairment, Relay};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// SplitMix64 for the schedule and the objects.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.unit()
    }
}

/// The path most of the time: an inter-hospital link with a little of
/// everything.
fn base(seed: u64, rate_mbps: f64) -> Impairment {
    Impairment::new()
        .delay(Duration::from_millis(10))
        .jitter(Duration::from_millis(2))
        .loss(0.002)
        .reorder(0.01, Duration::from_millis(5))
        .rate_mbps(rate_mbps)
        .queue_limit_bytes(512 << 10)
        .seed(seed)
}

/// What the path does next.
#[derive(Debug, Clone, Copy)]
enum Change {
    Blackout(Duration),
    Rate(f64),
    Bursts,
    Reorder,
    Calm,
}

/// The schedule: the first run covers every kind of change, with
/// blackouts of 0.5, 2 and 5 s; then random ones.
fn schedule(rng: &mut Rng, n: usize) -> Vec<Change> {
    let mut out = vec![
        Change::Blackout(Duration::from_millis(500)),
        Change::Rate(30.0),
        Change::Bursts,
        Change::Blackout(Duration::from_secs(2)),
        Change::Rate(200.0),
        Change::Reorder,
        Change::Blackout(Duration::from_secs(5)),
        Change::Calm,
    ];
    while out.len() < n {
        out.push(match rng.next() % 5 {
            0 | 1 => Change::Blackout(Duration::from_secs_f64(rng.between(0.5, 5.0))),
            2 => Change::Rate(rng.between(20.0, 200.0)),
            3 => Change::Bursts,
            _ => Change::Reorder,
        });
    }
    out.truncate(n);
    out
}

/// Resident set size of this process, bytes (Linux).
fn rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// What the receiver saw.
#[derive(Debug, Default)]
struct Received {
    /// When each live frame was delivered.
    frames: Vec<Instant>,
    /// Per object: bytes held and their running hash.
    objects: BTreeMap<u64, (u64, Sha256)>,
    /// Objects whose bytes hashed to their offer's digest.
    verified: Vec<u64>,
    /// Objects the session reported corrupt.
    corrupt: Vec<u64>,
    links: u32,
}

fn object_bytes(id: u64, len: usize) -> Vec<u8> {
    payload(len, id ^ 0x50a4)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_link_survives_a_soak_of_loss_reordering_rate_changes_and_blackouts() {
    let seconds = env_u64("MED8K_SOAK_SECONDS", 40).max(20);
    let seed = env_u64("MED8K_SOAK_SEED", 14);
    let mut rng = Rng(seed);
    let tasks_before = tokio::runtime::Handle::current()
        .metrics()
        .num_alive_tasks();
    let rss_before = rss();

    let deadline = Duration::from_millis(250);
    let config = DriverConfig::default().with_session(
        proto::Config::default()
            .with_frame_deadline(deadline)
            .with_handshake_timeout(Duration::from_secs(5)),
    );
    let p = pki();
    let (gate, _opened) = gate(true);
    let mut server = server(&p, gate, config.clone());
    let relay = Relay::start(
        localhost(),
        server.local_addr().unwrap(),
        base(seed, 100.0),
        base(seed + 1, 100.0),
    )
    .unwrap();

    // The receiver: every link the sender opens, one task each.
    let received = Arc::new(Mutex::new(Received::default()));
    let acceptor = tokio::spawn({
        let received = received.clone();
        async move {
            let mut readers = Vec::new();
            while let Some(accepted) = server.accept().await {
                let Ok(mut link) = accepted else { continue };
                received.lock().unwrap().links += 1;
                let received = received.clone();
                readers.push(tokio::spawn(async move {
                    while let Some(event) = link.next_event().await {
                        let mut r = received.lock().unwrap();
                        match event {
                            Event::Frame(_) => r.frames.push(Instant::now()),
                            Event::ObjectOffered { offer, resume_from } => {
                                let held = r.objects.get(&offer.id).map_or(0, |(h, _)| *h);
                                assert_eq!(resume_from, held, "resumes from what it holds");
                                r.objects.entry(offer.id).or_insert((0, Sha256::new()));
                            }
                            Event::ObjectData(d) => {
                                let (held, hash) = r.objects.get_mut(&d.id).unwrap();
                                assert_eq!(d.offset, *held, "in order, each byte once");
                                hash.update(&d.data);
                                *held += d.data.len() as u64;
                            }
                            Event::ObjectComplete { id } => {
                                let (_, hash) = r.objects.remove(&id).unwrap();
                                let digest: [u8; 32] = hash.finalize().into();
                                let len = OBJECT_SIZES[(id % 3) as usize];
                                let want: [u8; 32] = Sha256::digest(object_bytes(id, len)).into();
                                assert_eq!(digest, want, "object {id} arrived different");
                                r.verified.push(id);
                            }
                            Event::ObjectCorrupt { id } => r.corrupt.push(id),
                            _ => {}
                        }
                    }
                }));
            }
            for r in readers {
                let _ = tokio::time::timeout(Duration::from_secs(10), r).await;
            }
        }
    });

    // The path's schedule, in its own task.
    let start = Instant::now();
    let end = start + Duration::from_secs(seconds);
    let changes = schedule(&mut rng, (seconds / 4) as usize);
    let relay = Arc::new(relay);
    let path = tokio::spawn({
        let relay = relay.clone();
        async move {
            let mut rng = Rng(seed ^ 0xb1ac);
            let mut blackouts = Vec::new();
            for change in changes {
                tokio::time::sleep(Duration::from_secs(3)).await;
                if Instant::now() + Duration::from_secs(6) > end {
                    break;
                }
                let s = rng.next();
                let (fwd, bwd) = match change {
                    Change::Blackout(d) => {
                        let back = relay.blackout(d);
                        eprintln!("soak: {:?}: blackout of {d:?}", start.elapsed());
                        blackouts.push((back, d));
                        tokio::time::sleep(d).await;
                        continue;
                    }
                    Change::Rate(r) => (base(s, r), base(s + 1, r)),
                    Change::Bursts => (
                        base(s, 100.0).burst_loss(0.01, 0.3),
                        base(s + 1, 100.0).burst_loss(0.01, 0.3),
                    ),
                    Change::Reorder => (
                        base(s, 100.0).reorder(0.05, Duration::from_millis(15)),
                        base(s + 1, 100.0),
                    ),
                    Change::Calm => (base(s, 100.0), base(s + 1, 100.0)),
                };
                relay.set_impairment(Direction::Forward, fwd).unwrap();
                relay.set_impairment(Direction::Backward, bwd).unwrap();
            }
            blackouts
        }
    });

    // Memory, sampled.
    let peak = Arc::new(Mutex::new(rss_before));
    let sampler = tokio::spawn({
        let peak = peak.clone();
        async move {
            while Instant::now() < end {
                let now = rss();
                {
                    let mut p = peak.lock().unwrap();
                    *p = (*p).max(now);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });

    // The sender: 30 frames/s of 48 KB, and objects one after another.
    let site = site(p.client.identity(), trust(&p.ca, &[SERVER]), CLIENT);
    let mut dialer = Dialer::new(relay.local_addr(), site, SERVER, credentials(), config)
        .with_backoff(
            Backoff::default()
                .with_initial(Duration::from_millis(50))
                .with_max(Duration::from_millis(500)),
        );
    let frame = payload(48_000, 7);
    let mut queue: VecDeque<u64> = (1..).take(1000).collect();
    let mut current: Option<u64> = None;
    let mut delivered = Vec::new();
    let mut failed = Vec::new();
    let mut links = 0u32;
    let mut frames_sent = 0u64;
    let mut piece_task: Option<tokio::task::JoinHandle<()>> = None;
    'links: while Instant::now() < end {
        let Ok(Ok(mut link)) =
            tokio::time::timeout(Duration::from_secs(15), dialer.connect(Some(20))).await
        else {
            panic!("no link within 15 s");
        };
        links += 1;
        if links > 1 {
            eprintln!("soak: {:?}: link {links} connected", start.elapsed());
        }
        let opened = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match link.next_event().await {
                    Some(Event::Open { .. }) => return true,
                    Some(Event::Closed { .. }) | None => return false,
                    Some(_) => {}
                }
            }
        })
        .await;
        if opened != Ok(true) {
            dialer.link_ended(link).await;
            continue;
        }
        if current.is_none() {
            current = queue.pop_front();
            if let Some(id) = current {
                let len = OBJECT_SIZES[(id % 3) as usize];
                let _ = link.offer_object(offer(id, &object_bytes(id, len))).await;
            }
        }
        let mut tick = tokio::time::interval(Duration::from_millis(33));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                event = link.next_event() => match event {
                    Some(Event::ObjectResume { id, from }) if Some(id) == current => {
                        // The object's pieces go from a task of their own:
                        // frames never wait behind them.
                        if let Some(t) = piece_task.take() {
                            t.abort();
                        }
                        let len = OBJECT_SIZES[(id % 3) as usize];
                        piece_task = Some(tokio::spawn(send_pieces(
                            link.sender(),
                            id,
                            object_bytes(id, len),
                            from,
                        )));
                    }
                    Some(Event::ObjectDelivered { id }) => {
                        delivered.push(id);
                        current = queue.pop_front();
                        if let Some(id) = current {
                            let len = OBJECT_SIZES[(id % 3) as usize];
                            let _ = link.offer_object(offer(id, &object_bytes(id, len))).await;
                        }
                    }
                    Some(Event::ObjectRefused { id }) => {
                        failed.push(id);
                        current = queue.pop_front();
                    }
                    Some(Event::Closed { by, why, detail }) => {
                        eprintln!(
                            "soak: {:?}: link {links} closed by {by:?}: {why:?} ({detail})",
                            start.elapsed()
                        );
                        if let Some(t) = piece_task.take() {
                            t.abort();
                        }
                        dialer.link_ended(link).await;
                        continue 'links;
                    }
                    None => {
                        if let Some(t) = piece_task.take() {
                            t.abort();
                        }
                        dialer.link_ended(link).await;
                        continue 'links;
                    }
                    Some(_) => {}
                },
                _ = tick.tick() => {
                    if Instant::now() >= end {
                        if let Some(t) = piece_task.take() {
                            t.abort();
                        }
                        link.close("soak over");
                        drop(link);
                        break 'links;
                    }
                    let mut h = header(0);
                    h.payload_len = frame.len() as u32;
                    if link.send_frame(h, frame.clone()).await.is_ok() {
                        frames_sent += 1;
                    }
                }
            }
        }
    }
    // An object still on its way when the soak ends is reported failed to
    // the sender (here: not delivered), never delivered wrong.
    if let Some(id) = current {
        failed.push(id);
    }
    let blackouts = tokio::time::timeout(Duration::from_secs(10), path)
        .await
        .expect("the path schedule ended")
        .unwrap();
    sampler.await.unwrap();
    drop(dialer);

    // Give the receiver's links their close grace, then close the server.
    tokio::time::sleep(Duration::from_secs(2)).await;
    acceptor.abort();
    let _ = acceptor.await;
    let r = std::mem::take(&mut *received.lock().unwrap());
    let peak = *peak.lock().unwrap();

    // Resumption after each blackout: the first frame delivered after the
    // path came back.
    let mut resumes = Vec::new();
    for (back, length) in &blackouts {
        let first = r.frames.iter().find(|t| **t >= *back).copied();
        resumes.push((*length, first.map(|t| t - *back)));
    }
    eprintln!(
        "soak: {seconds} s (seed {seed}); {frames_sent} frames sent, {} delivered; {} client \
         links, {} server links; objects delivered {:?}, failed {:?}, verified {:?}, corrupt {:?}; \
         resident set {} MB before, {} MB peak; relay {:?}",
        r.frames.len(),
        links,
        r.links,
        delivered,
        failed,
        r.verified,
        r.corrupt,
        rss_before >> 20,
        peak >> 20,
        relay.stats()
    );
    for (length, resume) in &resumes {
        eprintln!("soak: blackout of {length:?}: live frames back after {resume:?}");
    }

    // Live: resumed within a second of every blackout's end.
    assert!(!blackouts.is_empty(), "no blackout happened");
    for (length, resume) in &resumes {
        let resume = resume.unwrap_or_else(|| panic!("no frame after the {length:?} blackout"));
        assert!(
            resume <= Duration::from_secs(1),
            "live frames came back {resume:?} after a {length:?} blackout"
        );
    }
    // Objects: every one the sender was told delivered was verified at the
    // receiver, none corrupt; and some got through.
    assert!(r.corrupt.is_empty(), "corrupt objects: {:?}", r.corrupt);
    for id in &delivered {
        assert!(r.verified.contains(id), "object {id} delivered unverified");
    }
    assert!(
        delivered.len() >= 2,
        "too few objects got through: {delivered:?}"
    );
    // Memory: bounded well below what a queue growing with time would take.
    assert!(
        peak.saturating_sub(rss_before) < 600 << 20,
        "resident set grew from {} MB to {} MB",
        rss_before >> 20,
        peak >> 20
    );
    // Nothing left waiting: every link task, frame stream and reader ended.
    drop(relay);
    let settled = Instant::now();
    loop {
        let alive = tokio::runtime::Handle::current()
            .metrics()
            .num_alive_tasks();
        if alive <= tasks_before {
            break;
        }
        assert!(
            settled.elapsed() < Duration::from_secs(10),
            "{alive} tasks still alive (was {tasks_before})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Object sizes, by id modulo 3.
const OBJECT_SIZES: [usize; 3] = [3 << 20, 5 << 20, 8 << 20];

/// Sends an object from `from`, in 256 KB pieces, until it is all sent or
/// the link ends.
async fn send_pieces(sender: LinkSender, id: u64, data: Vec<u8>, from: u64) {
    let mut at = from as usize;
    while at < data.len() {
        let end = (at + (256 << 10)).min(data.len());
        if sender
            .send_object_data(id, at as u64, data[at..end].to_vec())
            .await
            .is_err()
        {
            return;
        }
        at = end;
    }
}
