//! The quinn driver through the impairment relay: live frames under loss and
//! delay, a spectral cube across a blackout, garbage datagrams, the frame
//! buffer budget, link statistics.
//!
//! Timings here are bounds against regressions, generous for a small shared
//! build machine; the figures themselves are printed (`--nocapture`).
#![allow(clippy::unwrap_used)]

mod driver_support;

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};

use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use driver_support::*;
use med8k_transport::driver::{Backoff, Client, Congestion, Dialer, DriverConfig, Link, Server};
use med8k_transport::proto::{self, Codec, Event, ObjectKind, ObjectOffer, Slice};
use med8k_transport::relay::{Impairment, Relay};

// -- fixtures -------------------------------------------------------------------

/// The live and cube tests measure timings and load both cores: one at a
/// time.
static HEAVY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A server behind a relay; the client dials the relay.
struct Wan {
    server: Server,
    relay: Relay,
}

fn wan(p: &Pki, config: DriverConfig, impairment: Impairment) -> Wan {
    let (gate, _) = gate(true);
    let server = server(p, gate, config);
    let relay = Relay::start(
        localhost(),
        server.local_addr().unwrap(),
        impairment.clone(),
        impairment,
    )
    .unwrap();
    Wan { server, relay }
}

async fn linked(
    p: &Pki,
    addr: SocketAddr,
    server: &mut Server,
    config: &DriverConfig,
) -> (Link, Link) {
    let site = site(p.client.identity(), trust(&p.ca, &[SERVER]), CLIENT);
    let mut client = Client::connect(addr, &site, SERVER, credentials(), config)
        .await
        .unwrap();
    let mut remote = accept(server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;
    (client, remote)
}

/// A compressed 8K frame's header: `slices` equal slices with their CRCs.
fn frame_header(payload: &[u8], slices: usize, capture_us: u64) -> proto::FrameHeader {
    let mut h = header(0);
    h.codec = Codec::WaveletLossy;
    h.width = 7680;
    h.height = 4320;
    h.capture_us = capture_us;
    let piece = payload.len().div_ceil(slices);
    h.slices = payload
        .chunks(piece)
        .map(|c| Slice {
            len: c.len() as u32,
            crc: crc32fast::hash(c),
        })
        .collect();
    h
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    percentile(v, 0.5)
}

// -- live frames under loss ------------------------------------------------------

/// "Live channel at 1% random loss and 20 ms delay: no latency build-up over
/// a minute of 8K frames; p99 frame latency stays under the deadline."
///
/// The frames: compressed 8K (7680×4320) at the low-rate link class, 30
/// frames/s of 384 KiB (~0.1 bit per pixel, ~94 Mbit/s: what an 8K
/// wavelet/AV1 stream for a thin hospital link carries), 16 slices each. A
/// 4 MB-per-frame visually lossless stream at 60 frames/s (2 Gbit/s) is
/// beyond this test machine's loopback through a userspace relay on two
/// shared cores; the protocol's behaviour under loss is the same.
///
/// The relay drops 1% of datagrams at random and delays each by 20 ms, both
/// ways (40 ms round trip). The congestion controller is BBR: with
/// loss-based CUBIC a 1% random loss caps a 40 ms path far below the
/// stream's rate (the Mathis bound, a few Mbit/s; measured: 2 frames of 300
/// delivered). The send window is 4 MiB (a round trip at 800 Mbit/s): with
/// quinn's BBR and the default 256 MiB the sender bursts far beyond what
/// the relay's socket takes.
///
/// The receiver holds a complete frame up to 150 ms while an older one is
/// still arriving (`frame_reorder_wait`): with a 40 ms round trip and 33 ms
/// between frames, a frame needing a retransmission would otherwise be
/// overtaken by the next one and lost (the newest frame wins).
///
/// `MED8K_LINK_TEST_SECONDS` (default 60) shortens the run; also
/// `MED8K_LINK_TEST_FRAME_KB`, `MED8K_LINK_TEST_FPS`,
/// `MED8K_LINK_TEST_REORDER_MS` (0: newest wins at once),
/// `MED8K_LINK_TEST_SEND_WINDOW_KB`, `MED8K_LINK_TEST_CC`
/// (`cubic`, `newreno`; default BBR) and `MED8K_LINK_TEST_TRACE` (print the
/// sender's round trip, window and losses every 5 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_frames_at_one_percent_loss_keep_their_deadline_without_build_up() {
    let _heavy = HEAVY.lock().await;
    let seconds = env_u64("MED8K_LINK_TEST_SECONDS", 60).max(3);
    let frame_len = (env_u64("MED8K_LINK_TEST_FRAME_KB", 384) * 1024) as usize;
    let fps = env_u64("MED8K_LINK_TEST_FPS", 30).max(1);
    let deadline = Duration::from_millis(250);
    let session = proto::Config::default()
        .with_frame_deadline(deadline)
        .with_handshake_timeout(Duration::from_secs(5));
    let config = DriverConfig::default()
        .with_session(session)
        .with_congestion(match std::env::var("MED8K_LINK_TEST_CC").as_deref() {
            Ok("cubic") => Congestion::Cubic,
            Ok("newreno") => Congestion::NewReno,
            _ => Congestion::Bbr,
        })
        .with_send_window(env_u64("MED8K_LINK_TEST_SEND_WINDOW_KB", 4096) * 1024)
        .with_frame_reorder_wait(Duration::from_millis(env_u64(
            "MED8K_LINK_TEST_REORDER_MS",
            150,
        )))
        .with_event_capacity(4096);
    let p = pki();
    let impairment = Impairment::new()
        .delay(Duration::from_millis(20))
        .loss(0.01)
        .seed(7);
    let Wan { mut server, relay } = wan(&p, config.clone(), impairment);
    let (client, mut remote) = linked(&p, relay.local_addr(), &mut server, &config).await;

    // Both ends in one process: one epoch for capture times.
    let epoch = Instant::now();
    let frames: Vec<Vec<u8>> = (0..8).map(|i| payload(frame_len, i)).collect();
    let headers: Vec<proto::FrameHeader> = frames.iter().map(|f| frame_header(f, 16, 0)).collect();
    let interval = Duration::from_secs(1) / fps as u32;
    let run = Duration::from_secs(seconds);
    // Frames after the measured run settle every measured one (a lost
    // frame is known to the receiver from a later frame's header).
    let tail = Duration::from_secs(2);
    let sender = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut measured = 0u64;
        let mut i = 0usize;
        loop {
            tick.tick().await;
            let at = epoch.elapsed();
            if at >= run + tail {
                break;
            }
            let mut h = headers[i % headers.len()].clone();
            h.capture_us = at.as_micros() as u64;
            let seq = client
                .send_frame(h, frames[i % frames.len()].clone())
                .await
                .unwrap();
            if at < run {
                assert_eq!(seq, measured);
                measured += 1;
            }
            i += 1;
            if std::env::var_os("MED8K_LINK_TEST_TRACE").is_some() && i.is_multiple_of(150) {
                let s = client.stats();
                eprintln!(
                    "trace {at:?}: rtt {:?} cwnd {} lost {} sent {}",
                    s.rtt, s.congestion_window, s.packets_lost, s.packets_sent
                );
            }
        }
        (measured, client)
    });

    // (capture time, latency) of each delivered frame.
    let mut delivered: Vec<(Duration, Duration)> = Vec::new();
    let mut seen = BTreeSet::new();
    let mut lost = BTreeSet::new();
    let mut lost_twice = 0u64;
    let mut peer_stats = 0u32;
    let stop = epoch + run + tail + Duration::from_secs(1);
    while let Ok(event) =
        tokio::time::timeout_at(tokio::time::Instant::from_std(stop), remote.next_event()).await
    {
        match event {
            Some(Event::Frame(f)) => {
                let now = epoch.elapsed();
                let captured = Duration::from_micros(f.header.capture_us);
                assert!(seen.insert(f.header.seq), "frame {} twice", f.header.seq);
                assert_eq!(f.payload.len(), frame_len);
                delivered.push((captured, now.saturating_sub(captured)));
            }
            Some(Event::FramesLost { ranges, .. }) => {
                for r in ranges {
                    for s in r.first..=r.last {
                        if !lost.insert(s) {
                            lost_twice += 1;
                        }
                    }
                }
            }
            Some(Event::PeerStats(_)) => peer_stats += 1,
            Some(Event::Closed { by, why, detail }) => panic!("closed: {by:?} {why:?} {detail}"),
            None => panic!("server link ended"),
            Some(_) => {}
        }
    }
    let (sent, client) = sender.await.unwrap();
    let client_stats = client.stats();
    let server_stats = remote.stats();

    // Only the measured frames.
    let measured: Vec<(Duration, Duration)> = delivered
        .iter()
        .copied()
        .filter(|(c, _)| *c < run)
        .collect();
    let delivered_seqs: BTreeSet<u64> = seen.iter().copied().filter(|s| *s < sent).collect();
    let lost_seqs: BTreeSet<u64> = lost.iter().copied().filter(|s| *s < sent).collect();
    let mut latencies: Vec<Duration> = measured.iter().map(|(_, l)| *l).collect();
    latencies.sort();
    let p50 = percentile(&latencies, 0.5);
    let p99 = percentile(&latencies, 0.99);
    let max = latencies.last().copied().unwrap_or_default();
    let window = Duration::from_secs(10).min(run / 3);
    let mut first: Vec<Duration> = measured
        .iter()
        .filter(|(c, _)| *c < window)
        .map(|(_, l)| *l)
        .collect();
    let mut last: Vec<Duration> = measured
        .iter()
        .filter(|(c, _)| *c >= run - window)
        .map(|(_, l)| *l)
        .collect();
    let (first_median, last_median) = (median(&mut first), median(&mut last));
    let timeline: Vec<String> = (0..run.as_secs().div_ceil(5))
        .map(|w| {
            let from = Duration::from_secs(w * 5);
            let mut v: Vec<Duration> = measured
                .iter()
                .filter(|(c, _)| *c >= from && *c < from + Duration::from_secs(5))
                .map(|(_, l)| *l)
                .collect();
            format!("{}", median(&mut v).as_millis())
        })
        .collect();
    eprintln!("live: median latency per 5 s, ms: {}", timeline.join(" "));
    let relay_stats = relay.stats();
    eprintln!(
        "live: {seconds} s, {fps} frames/s of {} KiB: sent {sent}, delivered {}, lost {} \
         (reported twice: {lost_twice}); latency p50 {p50:?} p99 {p99:?} max {max:?}; \
         median first {window:?} {first_median:?}, last {last_median:?}",
        frame_len / 1024,
        delivered_seqs.len(),
        lost_seqs.len(),
    );
    eprintln!(
        "live: relay {relay_stats:?}; dropped {} + {} of {} + {} datagrams; client stats {client_stats:?}; \
         server stats {server_stats:?}; {peer_stats} peer reports at the server",
        relay_stats.forward.dropped_loss,
        relay_stats.backward.dropped_loss,
        relay_stats.forward.datagrams_in,
        relay_stats.backward.datagrams_in,
    );

    assert!(
        sent >= seconds * fps / 2,
        "the sender fell far behind: {sent}"
    );
    // Every measured frame is settled once: delivered or reported lost.
    assert_eq!(lost_twice, 0, "a frame was reported lost twice");
    assert!(
        delivered_seqs.is_disjoint(&lost_seqs),
        "a frame both delivered and lost"
    );
    assert_eq!(
        delivered_seqs.len() as u64 + lost_seqs.len() as u64,
        sent,
        "sent − delivered must equal the frames reported lost"
    );
    // Nearly every frame gets through: a frame waiting for a retransmission
    // is held for (`frame_reorder_wait`), not given up when the next one
    // completes. Without the wait, 20–30% of frames are lost here.
    assert!(
        delivered_seqs.len() as u64 * 100 >= sent * 95,
        "too many frames lost: {} of {sent}",
        lost_seqs.len()
    );
    assert!(
        p99 < deadline,
        "p99 latency {p99:?} ≥ deadline {deadline:?}"
    );
    // No build-up: a queue growing behind the link would take the latency
    // to the deadline. Measured here: ~68 ms at first, and in some runs a
    // step of about one round trip (to ~105 ms) that then stays flat, with
    // or without the reorder wait (the BBR sender's pacing, or the loaded
    // machine); hence the margin of 75 ms rather than 50.
    assert!(
        last_median <= first_median + Duration::from_millis(75),
        "latency builds up: median {first_median:?} → {last_median:?}"
    );
    // Link statistics flow both ways.
    assert!(peer_stats >= 1, "no link statistics from the client");
    assert!(
        client_stats.rtt >= Duration::from_millis(35),
        "{client_stats:?}"
    );
    assert!(client_stats.packets_lost > 0, "{client_stats:?}");
    assert_eq!(
        client_stats.frames.frames_sent,
        client_stats.frames.frames_sent.max(sent)
    );
    assert_eq!(
        server_stats.frames.frames_delivered,
        seen.len() as u64,
        "{server_stats:?}"
    );
    let peer = client_stats
        .peer
        .expect("the server's report reached the client");
    assert!(peer.frames_delivered > 0, "{peer:?}");
}

// -- a spectral cube across a blackout -------------------------------------------

/// 7680×4320 pixels × 7 bands × 2 bytes: 464,486,400 bytes.
const CUBE_LEN: u64 = 7680 * 4320 * 7 * 2;
const PIECE: u64 = 4 << 20;
const SEND_WINDOW: u64 = 16 << 20;

/// The cube's bytes at `offset..offset + len`: deterministic, generated on
/// the fly (splitmix64 of each 8-byte block's index).
fn cube_bytes(offset: u64, len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    let first = offset / 8;
    let skip = (offset % 8) as usize;
    let blocks = (skip + len).div_ceil(8) as u64;
    for b in first..first + blocks {
        let mut z = b.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.drain(..skip);
    out.truncate(len);
    out
}

fn cube_digest(len: u64) -> [u8; 32] {
    let mut h = Sha256::new();
    let mut at = 0;
    while at < len {
        let n = PIECE.min(len - at);
        h.update(cube_bytes(at, n as usize));
        at += n;
    }
    h.finalize().into()
}

/// "Reliable channel: a 464 MB 7-band cube arrives bit-exact across a
/// 2-second blackout, by resuming."
///
/// The idle timeout is 1 s, so the blackout ends the connection: the client
/// reconnects through the [`Dialer`] and the transfer resumes from what the
/// server holds. `MED8K_CUBE_TEST_MB` shrinks the cube for quick runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_464_mb_cube_arrives_bit_exact_across_a_blackout_by_resuming() {
    let _heavy = HEAVY.lock().await;
    let len = env_u64("MED8K_CUBE_TEST_MB", 0)
        .checked_mul(1 << 20)
        .filter(|l| *l > 0)
        .unwrap_or(CUBE_LEN);
    let config = DriverConfig::default()
        .with_session(proto::Config::default().with_handshake_timeout(Duration::from_secs(5)))
        .with_idle_timeout(Duration::from_secs(1))
        .with_keep_alive(Duration::from_millis(250))
        // What the sender buffers unacknowledged (and the host's pieces
        // wait on): ample for loopback, and what a resume may send again.
        .with_send_window(SEND_WINDOW);
    let p = pki();
    let Wan { mut server, relay } = wan(&p, config.clone(), Impairment::new());
    let started = Instant::now();
    let digest = cube_digest(len);
    eprintln!("cube: {len} bytes hashed in {:?}", started.elapsed());
    let offer = ObjectOffer {
        id: 42,
        kind: ObjectKind::SpectralCube,
        size: len,
        sha256: digest,
    };

    // The receiver: every byte once, in order, across links.
    let receiver = tokio::spawn(async move {
        let mut hash = Sha256::new();
        let mut held = 0u64;
        let mut links = 0u32;
        'links: loop {
            let mut remote = accept(&mut server).await.unwrap();
            links += 1;
            loop {
                let event = tokio::time::timeout(Duration::from_secs(60), remote.next_event())
                    .await
                    .expect("the receiver heard nothing for a minute");
                match event {
                    Some(Event::ObjectOffered { offer, resume_from }) => {
                        assert_eq!(offer.id, 42);
                        assert_eq!(resume_from, held, "resumes from what the receiver holds");
                    }
                    Some(Event::ObjectData(d)) => {
                        assert_eq!(d.offset, held, "in order, each byte once");
                        hash.update(&d.data);
                        held += d.data.len() as u64;
                    }
                    Some(Event::ObjectComplete { id }) => {
                        assert_eq!(id, 42);
                        break 'links;
                    }
                    Some(Event::ObjectCorrupt { .. }) => panic!("cube corrupt"),
                    Some(Event::Closed { .. }) | None => {
                        eprintln!("cube: receiver link {links} ended at {held} bytes");
                        while remote.next_event().await.is_some() {}
                        continue 'links;
                    }
                    Some(_) => {}
                }
            }
        }
        let ours: [u8; 32] = hash.finalize().into();
        (held, ours, links, server)
    });

    let site = site(p.client.identity(), trust(&p.ca, &[SERVER]), CLIENT);
    let mut dialer = Dialer::new(relay.local_addr(), site, SERVER, credentials(), config)
        .with_backoff(
            Backoff::default()
                .with_initial(Duration::from_millis(100))
                .with_max(Duration::from_secs(1)),
        );
    let transfer_start = Instant::now();
    let mut blackout_at = None;
    let mut links = 0;
    let mut sent = 0u64;
    'links: loop {
        let mut link = dialer.connect(Some(30)).await.unwrap();
        links += 1;
        open(&mut link).await;
        if links == 1 {
            link.offer_object(offer).await.unwrap();
        }
        let mut next_piece: Option<u64> = None;
        loop {
            // Events first (resume points, delivery, the end).
            while next_piece.is_none() || link.queued_events() > 0 {
                let event = tokio::time::timeout(Duration::from_secs(30), link.next_event())
                    .await
                    .expect("the sender heard nothing for 30 s");
                match event {
                    Some(Event::ObjectResume { id: 42, from }) => next_piece = Some(from),
                    Some(Event::ObjectDelivered { id: 42 }) => break 'links,
                    Some(Event::ObjectRefused { .. }) => panic!("cube refused"),
                    Some(Event::Closed { .. }) | None => {
                        dialer.link_ended(link).await;
                        continue 'links;
                    }
                    Some(_) => {}
                }
            }
            let Some(at) = next_piece else { continue };
            if at >= len {
                // All sent: wait for delivery.
                next_piece = None;
                continue;
            }
            if blackout_at.is_none() && at >= len / 3 {
                eprintln!(
                    "cube: blackout at {at} bytes, {:?}",
                    transfer_start.elapsed()
                );
                blackout_at = Some(relay.blackout(Duration::from_secs(2)));
            }
            let n = PIECE.min(len - at);
            if link
                .send_object_data(42, at, cube_bytes(at, n as usize))
                .await
                .is_err()
            {
                dialer.link_ended(link).await;
                continue 'links;
            }
            sent += n;
            next_piece = Some(at + n);
        }
    }
    let elapsed = transfer_start.elapsed();
    let (held, ours, server_links, _server) =
        tokio::time::timeout(Duration::from_secs(30), receiver)
            .await
            .unwrap()
            .unwrap();
    let goodput = len as f64 * 8.0 / elapsed.as_secs_f64() / 1e6;
    eprintln!(
        "cube: {len} bytes in {elapsed:?} ({goodput:.0} Mbit/s goodput, {sent} bytes sent \
         by the host), {links} client links, {server_links} server links; relay {:?}",
        relay.stats()
    );
    assert!(blackout_at.is_some(), "the blackout never happened");
    assert_eq!(held, len);
    assert_eq!(ours, digest, "the cube differs");
    assert!(
        links >= 2,
        "the blackout did not end the connection: no resume exercised"
    );
    // Resent: at most what was in flight when the link broke.
    assert!(
        sent <= len + SEND_WINDOW + 2 * PIECE,
        "resuming resent too much: {sent} of {len}"
    );
}

// -- hostile datagrams ---------------------------------------------------------

/// "Garbage datagrams never crash the receiver or grow its memory without
/// bound": thousands of random datagrams (to 1,500 and to 65,507 bytes, some
/// shaped like QUIC long headers) at the server's socket while a link
/// carries frames; the link keeps working and the server keeps accepting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_datagrams_do_not_disturb_a_live_link_or_the_server() {
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    let addr = server.local_addr().unwrap();
    let (client, mut remote) = linked(&p, addr, &mut server, &config()).await;

    let spray = std::thread::spawn(move || {
        let sockets: Vec<UdpSocket> = (0..4)
            .map(|_| UdpSocket::bind(localhost()).unwrap())
            .collect();
        let mut x = 0x1234_5678_9abc_def1u64;
        let mut rand = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut sent = 0u64;
        for i in 0..6000u64 {
            let len = match i % 10 {
                0 => (rand() % 65_508) as usize,
                1 => 1200,
                _ => (rand() % 1501) as usize,
            };
            let mut d = payload(len, rand());
            match i % 4 {
                // A long header: Initial, version 1, random connection ids.
                0 if len > 8 => {
                    d[0] = 0xc0 | (d[0] & 0x0f);
                    d[1..5].copy_from_slice(&1u32.to_be_bytes());
                }
                // A short header.
                1 if len > 0 => d[0] = 0x40 | (d[0] & 0x3f),
                _ => {}
            }
            if sockets[(i % 4) as usize].send_to(&d, addr).is_ok() {
                sent += 1;
            }
            if i % 500 == 0 {
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        sent
    });

    let mut delivered = 0u32;
    let mut round = 0u64;
    while !spray.is_finished() || delivered < 20 {
        let data = payload(100_000, round);
        client.send_frame(header(0), data.clone()).await.unwrap();
        round += 1;
        loop {
            match next(&mut remote).await {
                Some(Event::Frame(f)) => {
                    assert!(f.payload == data);
                    delivered += 1;
                    break;
                }
                Some(Event::FramesLost { .. }) => break,
                Some(Event::Closed { by, why, detail }) => {
                    panic!("closed: {by:?} {why:?} {detail}")
                }
                None => panic!("server link ended"),
                Some(_) => {}
            }
        }
        assert!(round < 10_000, "the link stopped delivering");
    }
    let sprayed = spray.join().unwrap();
    eprintln!("garbage: {sprayed} datagrams; {delivered} of {round} frames delivered meanwhile");
    assert!(delivered as u64 * 10 >= round * 9, "{delivered} of {round}");

    // The server still accepts.
    let (second, mut remote2) = linked(&p, addr, &mut server, &config()).await;
    let data = payload(50_000, 99);
    second.send_frame(header(1), data.clone()).await.unwrap();
    loop {
        if let Some(Event::Frame(f)) = next(&mut remote2).await {
            assert!(f.payload == data);
            break;
        }
    }
    drop(client);
}

// -- the frame buffer budget -----------------------------------------------------

/// The bytes a receiver holds for frames being read never exceed
/// [`DriverConfig::frame_buffer_budget`], however many frame streams are
/// open: here 16 streams of 1 MiB frames crawl through a 40 Mbit/s relay
/// towards a receiver with a 2 MiB budget, and frames still get through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frame_readers_stay_within_the_buffer_budget() {
    let frame = 1 << 20;
    let budget = 2 << 20;
    let session = proto::Config::default()
        .with_frame_deadline(Duration::from_secs(3))
        .with_handshake_timeout(Duration::from_secs(5))
        .with_max_tracked_frames(32)
        .with_max_frame_payload(frame as u32);
    let receiver = DriverConfig::default()
        .with_session(session.clone())
        .with_frame_buffer_budget(budget)
        .with_frame_read_timeout(Duration::from_secs(3));
    let sender = DriverConfig::default().with_session(session);
    let p = pki();
    let Wan { mut server, relay } = wan(&p, receiver, Impairment::new().rate_mbps(40.0));
    let (client, mut remote) = linked(&p, relay.local_addr(), &mut server, &sender).await;
    let data = payload(frame, 3);
    for _ in 0..16 {
        client.send_frame(header(0), data.clone()).await.unwrap();
    }
    let mut most = 0;
    let mut delivered = 0;
    let end = Instant::now() + Duration::from_secs(8);
    while Instant::now() < end {
        most = most.max(remote.stats().frame_bytes_buffered);
        if let Ok(Some(e)) =
            tokio::time::timeout(Duration::from_millis(2), remote.next_event()).await
            && let Event::Frame(f) = e
        {
            assert!(f.payload == data);
            delivered += 1;
        }
    }
    eprintln!("budget: at most {most} bytes held by frame readers; {delivered} frames delivered");
    assert!(most <= budget, "{most} > {budget}");
    assert!(most > 0, "never saw a frame being read");
    assert!(delivered > 0, "no frame got through");
    drop(client);
}

/// `Link::stats` on a plain loopback link, and link statistics reaching the
/// peer as events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_statistics_reach_both_ends() {
    let p = pki();
    let (gate, _) = gate(true);
    let fast = config().with_stats_interval(Duration::from_millis(100));
    let mut server = server(&p, gate, fast.clone());
    let addr = server.local_addr().unwrap();
    let (client, mut remote) = linked(&p, addr, &mut server, &fast).await;
    let data = payload(200_000, 1);
    client.send_frame(header(0), data).await.unwrap();
    let mut frame = false;
    let mut report = None;
    while !frame || report.is_none() {
        match next(&mut remote).await {
            Some(Event::Frame(_)) => frame = true,
            Some(Event::PeerStats(s)) => report = Some(s),
            Some(Event::Closed { .. }) | None => panic!("link ended"),
            Some(_) => {}
        }
    }
    let s = remote.stats();
    assert_eq!(s.frames.frames_delivered, 1, "{s:?}");
    assert!(s.app_bytes_received >= 200_000, "{s:?}");
    assert!(s.bytes_received > 200_000 && s.packets_sent > 0, "{s:?}");
    assert!(s.rtt > Duration::ZERO, "{s:?}");
    assert_eq!(s.frame_bytes_buffered, 0, "{s:?}");
    let c = client.stats();
    assert_eq!(c.frames.frames_sent, 1, "{c:?}");
    assert!(c.bytes_sent > 200_000, "{c:?}");
    // The client's report, then the server's reaching the client.
    let deadline = Instant::now() + WAIT;
    while client.stats().peer.is_none_or(|p| p.frames_delivered == 0) {
        assert!(
            Instant::now() < deadline,
            "no report with the delivered frame"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Frames the host leaves unread hold at most the frame buffer budget:
/// beyond it they are dropped and counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_frames_stay_within_the_buffer_budget() {
    let frame = 200_000;
    let budget = 1 << 20;
    let session = proto::Config::default()
        .with_frame_deadline(Duration::from_secs(3))
        .with_handshake_timeout(Duration::from_secs(5))
        .with_max_frame_payload(256 << 10);
    let receiver = DriverConfig::default()
        .with_session(session.clone())
        .with_frame_buffer_budget(budget)
        .with_event_capacity(1000);
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, receiver);
    let addr = server.local_addr().unwrap();
    let sender = DriverConfig::default().with_session(session);
    let (client, mut remote) = linked(&p, addr, &mut server, &sender).await;
    let sent = 20;
    for i in 0..sent {
        client
            .send_frame(header(0), payload(frame, i))
            .await
            .unwrap();
        // Paced, so that frames arrive in order.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let deadline = Instant::now() + WAIT;
    let s = loop {
        let s = remote.stats();
        if s.frames.frames_delivered + s.frames.frames_lost >= sent {
            break s;
        }
        assert!(Instant::now() < deadline, "frames never settled: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    eprintln!(
        "unread: {} bytes queued, {} frames dropped unread, {} delivered",
        s.frame_bytes_queued, s.frames_unread, s.frames.frames_delivered
    );
    assert!(s.frame_bytes_queued <= budget, "{s:?}");
    assert!(s.frames_unread > 0, "{s:?}");
    let mut read = 0;
    while let Ok(Some(e)) =
        tokio::time::timeout(Duration::from_millis(200), remote.next_event()).await
    {
        if let Event::Frame(f) = e {
            assert_eq!(f.payload.len(), frame);
            read += 1;
        }
    }
    assert_eq!(
        read,
        budget / frame as u64,
        "whole frames within the budget"
    );
    assert_eq!(remote.stats().frame_bytes_queued, 0);
    assert_eq!(
        read + s.frames_unread,
        s.frames.frames_delivered,
        "every delivered frame read or counted unread"
    );
    drop(client);
}
