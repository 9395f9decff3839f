//! The impairment relay driven with plain UDP sockets on loopback.
//!
//! Decisions are seeded, and senders are paced by the relay's own counters
//! (a sender waits until the relay has taken what it sent) so the kernel never
//! drops a datagram before the relay sees it: loss counts are exact. Timing is
//! only ever checked as a lower bound; the waits below are hang guards.
#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::io::ErrorKind;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use med8k_transport::relay::{Direction, DirectionStats, Impairment, Relay, RelayStats};

/// Longest any test waits for something that should happen quickly.
const GUARD: Duration = Duration::from_secs(60);

const V4: &str = "127.0.0.1:0";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn bind(s: &str) -> UdpSocket {
    let socket = UdpSocket::bind(addr(s)).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    socket
}

/// `len` bytes (at least 4) starting with `seq`, then a pattern derived from it.
fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(31).wrapping_add(seq) as u8)
        .collect();
    bytes[..4].copy_from_slice(&seq.to_le_bytes());
    bytes
}

fn seq_of(bytes: &[u8]) -> u32 {
    u32::from_le_bytes(bytes[..4].try_into().unwrap())
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + GUARD;
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        thread::sleep(Duration::from_millis(1));
    }
}

/// Waits until the relay has taken `count` datagrams in `direction` and holds none.
fn settle(relay: &Relay, direction: Direction, count: u64) -> DirectionStats {
    let pick = |s: RelayStats| match direction {
        Direction::Forward => s.forward,
        Direction::Backward => s.backward,
    };
    wait_until("relay to settle", || {
        let s = pick(relay.stats());
        s.datagrams_in >= count && s.in_flight == 0
    });
    pick(relay.stats())
}

/// Sends `datagrams` to the relay, keeping at most `window` of them not yet
/// accounted for. Returns when each was sent.
///
/// With a sink, a datagram is accounted for once the sink has it or the relay
/// dropped it, so a starved sink thread never has more than `window` waiting
/// in its socket buffer and the kernel never drops one behind the relay's
/// back. Without one, once the relay has taken it (for tests that hold
/// datagrams in the relay on purpose).
fn send_paced(
    client: &UdpSocket,
    relay: &Relay,
    sink: Option<&Sink>,
    datagrams: &[Vec<u8>],
    window: u64,
) -> Vec<Instant> {
    let accounted = || {
        let forward = relay.stats().forward;
        match sink {
            None => forward.datagrams_in,
            Some(sink) => {
                let dropped = forward.datagrams_in - forward.forwarded - forward.in_flight;
                sink.count() as u64 + dropped
            }
        }
    };
    let base = accounted();
    let mut sent_at = Vec::with_capacity(datagrams.len());
    for (i, datagram) in datagrams.iter().enumerate() {
        let sent = i as u64;
        if sent >= window {
            wait_until("the window to drain", || accounted() + window > base + sent);
        }
        sent_at.push(Instant::now());
        client.send_to(datagram, relay.local_addr()).unwrap();
    }
    sent_at
}

/// Datagrams with their arrival times.
type Received = Vec<(Instant, Vec<u8>)>;

/// A thread that stores every datagram a socket receives, with its arrival time.
struct Sink {
    socket: Arc<UdpSocket>,
    got: Arc<Mutex<Received>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Sink {
    fn new(socket: UdpSocket) -> Self {
        let socket = Arc::new(socket);
        let got = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = thread::spawn({
            let (socket, got, stop) = (Arc::clone(&socket), Arc::clone(&got), Arc::clone(&stop));
            move || {
                let mut buf = vec![0; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(len) = socket.recv(&mut buf) {
                        got.lock()
                            .unwrap()
                            .push((Instant::now(), buf[..len].to_vec()));
                    }
                }
            }
        });
        Self {
            socket,
            got,
            stop,
            thread: Some(thread),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.socket.local_addr().unwrap()
    }

    fn count(&self) -> usize {
        self.got.lock().unwrap().len()
    }

    fn wait_for(&self, count: u64) -> Received {
        wait_until("datagrams to reach the sink", || {
            self.count() as u64 >= count
        });
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A thread that sends every datagram back where it came from.
struct Echo {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    peers: Arc<Mutex<HashSet<SocketAddr>>>,
    thread: Option<JoinHandle<()>>,
}

impl Echo {
    fn new(at: &str) -> Self {
        Self::on(bind(at))
    }

    fn on(socket: UdpSocket) -> Self {
        socket
            .set_read_timeout(Some(Duration::from_millis(20)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let peers = Arc::new(Mutex::new(HashSet::new()));
        let thread = thread::spawn({
            let (stop, peers) = (Arc::clone(&stop), Arc::clone(&peers));
            move || {
                let mut buf = vec![0; 65_536];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok((len, peer)) = socket.recv_from(&mut buf) {
                        peers.lock().unwrap().insert(peer);
                        let _ = socket.send_to(&buf[..len], peer);
                    }
                }
            }
        });
        Self {
            addr,
            stop,
            peers,
            thread: Some(thread),
        }
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn recv_n(socket: &UdpSocket, count: usize) -> Received {
    let deadline = Instant::now() + GUARD;
    let mut buf = vec![0; 65_536];
    let mut got = Vec::new();
    while got.len() < count {
        assert!(
            Instant::now() < deadline,
            "received {} of {count}",
            got.len()
        );
        if let Ok(len) = socket.recv(&mut buf) {
            got.push((Instant::now(), buf[..len].to_vec()));
        }
    }
    got
}

fn seqs(got: &[(Instant, Vec<u8>)]) -> Vec<u32> {
    got.iter().map(|(_, bytes)| seq_of(bytes)).collect()
}

#[test]
fn pass_through_both_directions() {
    let echo = Echo::new(V4);
    let relay = Relay::start(addr(V4), echo.addr, Impairment::new(), Impairment::new()).unwrap();
    let client = bind(V4);
    let sent: Vec<Vec<u8>> = (0..64)
        .map(|i| payload(i, 4 + (i as usize * 37) % 1400))
        .collect();
    for datagram in &sent {
        client.send_to(datagram, relay.local_addr()).unwrap();
    }
    let mut got: Vec<Vec<u8>> = recv_n(&client, sent.len())
        .into_iter()
        .map(|(_, b)| b)
        .collect();
    got.sort_by_key(|b| seq_of(b));
    assert_eq!(got, sent);
    // The counters move just after the send: wait for them.
    let forward = settle(&relay, Direction::Forward, 64);
    let backward = settle(&relay, Direction::Backward, 64);
    assert_eq!(forward.forwarded, 64);
    assert_eq!(backward.forwarded, 64);
    assert_eq!(forward.dropped() + backward.dropped(), 0);
}

#[test]
fn delay_is_a_floor_each_way() {
    let echo = Echo::new(V4);
    let forward = Impairment::new().delay(Duration::from_millis(30));
    let backward = Impairment::new().delay(Duration::from_millis(20));
    let relay = Relay::start(addr(V4), echo.addr, forward, backward).unwrap();
    let client = bind(V4);
    let sent: Vec<Vec<u8>> = (0..20).map(|i| payload(i, 100)).collect();
    let mut sent_at = Vec::new();
    for datagram in &sent {
        sent_at.push(Instant::now());
        client.send_to(datagram, relay.local_addr()).unwrap();
        thread::sleep(Duration::from_millis(2));
    }
    for (arrived, bytes) in recv_n(&client, sent.len()) {
        let seq = seq_of(&bytes) as usize;
        assert_eq!(bytes, sent[seq]);
        let rtt = arrived - sent_at[seq];
        assert!(
            rtt >= Duration::from_millis(50),
            "datagram {seq} came back after {rtt:?}"
        );
    }
}

#[test]
fn random_loss_is_near_its_probability_and_counted_exactly() {
    let sink = Sink::new(bind(V4));
    let lossy = Impairment::new().loss(0.10).seed(1);
    let relay = Relay::start(addr(V4), sink.addr(), lossy, Impairment::new()).unwrap();
    let client = bind(V4);
    let n = 5000;
    let sent: Vec<Vec<u8>> = (0..n).map(|i| payload(i, 64)).collect();
    send_paced(&client, &relay, Some(&sink), &sent, 32);
    let stats = settle(&relay, Direction::Forward, u64::from(n));
    let got = sink.wait_for(stats.forwarded);

    assert_eq!(stats.datagrams_in, u64::from(n));
    assert_eq!(stats.forwarded + stats.dropped_loss, u64::from(n));
    assert_eq!(got.len() as u64, stats.forwarded);
    let unique: HashSet<u32> = seqs(&got).into_iter().collect();
    assert_eq!(unique.len(), got.len(), "duplicates");
    let lost = f64::from(n - got.len() as u32) / f64::from(n);
    println!("loss {lost:.4}, {stats:?}");
    assert!((0.07..=0.13).contains(&lost), "observed loss {lost}");
}

#[test]
fn burst_loss_comes_in_runs() {
    let sink = Sink::new(bind(V4));
    let bursty = Impairment::new().burst_loss(0.02, 0.3).seed(2);
    let relay = Relay::start(addr(V4), sink.addr(), bursty, Impairment::new()).unwrap();
    let client = bind(V4);
    let n: u32 = 5000;
    let sent: Vec<Vec<u8>> = (0..n).map(|i| payload(i, 64)).collect();
    send_paced(&client, &relay, Some(&sink), &sent, 32);
    let stats = settle(&relay, Direction::Forward, u64::from(n));
    let got = sink.wait_for(stats.forwarded);

    let received: HashSet<u32> = seqs(&got).into_iter().collect();
    assert_eq!(received.len() as u64, stats.forwarded);
    assert_eq!(stats.dropped_burst, u64::from(n) - stats.forwarded);
    let (mut runs, mut in_run) = (0u32, false);
    for seq in 0..n {
        let lost = !received.contains(&seq);
        if lost && !in_run {
            runs += 1;
        }
        in_run = lost;
    }
    assert!(runs > 0, "nothing lost");
    let mean = stats.dropped_burst as f64 / f64::from(runs);
    println!("{runs} runs, mean length {mean:.2}, {stats:?}");
    assert!(mean > 1.5, "mean run length {mean}");
}

#[test]
fn rate_cap_spreads_20_mb_over_its_serialisation_time() {
    const RATE_MBPS: f64 = 50.0;
    let sink = Sink::new(bind(V4));
    let capped = Impairment::new()
        .rate_mbps(RATE_MBPS)
        .queue_limit_bytes(64 << 20);
    let relay = Relay::start(addr(V4), sink.addr(), capped, Impairment::new()).unwrap();
    let client = bind(V4);
    let (count, size) = (16_000u32, 1250usize); // 20 MB
    let sent: Vec<Vec<u8>> = (0..count).map(|i| payload(i, size)).collect();
    let start = Instant::now();
    send_paced(&client, &relay, None, &sent, 64);
    let stats = settle(&relay, Direction::Forward, u64::from(count));
    assert_eq!(stats.dropped_queue, 0);
    assert_eq!(stats.bytes_forwarded, 20_000_000);

    // The sink may miss a few if it is starved; what it got bounds the time.
    wait_until("the sink to go quiet", || {
        let before = sink.count();
        thread::sleep(Duration::from_millis(200));
        sink.count() == before
    });
    let got = sink.got.lock().unwrap().clone();
    let bytes: usize = got.iter().map(|(_, b)| b.len()).sum();
    let last = got.iter().map(|(t, _)| *t).max().unwrap();
    let elapsed = last - start;
    let floor = Duration::from_secs_f64(bytes as f64 * 8.0 / (RATE_MBPS * 1e6) * 0.9);
    println!("{bytes} bytes in {elapsed:?} (floor {floor:?})");
    assert!(bytes > 0);
    assert!(elapsed >= floor, "{bytes} bytes took only {elapsed:?}");
}

#[test]
fn rate_cap_drops_tail_when_the_queue_is_full() {
    let sink = Sink::new(bind(V4));
    let capped = Impairment::new().rate_mbps(10.0).queue_limit_bytes(30_000);
    let relay = Relay::start(addr(V4), sink.addr(), capped, Impairment::new()).unwrap();
    let client = bind(V4);
    let sent: Vec<Vec<u8>> = (0..500).map(|i| payload(i, 1200)).collect();
    send_paced(&client, &relay, Some(&sink), &sent, 64);
    let stats = settle(&relay, Direction::Forward, 500);
    println!("{stats:?}");
    assert!(stats.dropped_queue > 0);
    assert_eq!(stats.forwarded + stats.dropped_queue, 500);
    let got = sink.wait_for(stats.forwarded);
    assert_eq!(got.len() as u64, stats.forwarded);
}

#[test]
fn blackout_drops_everything_then_traffic_flows_again() {
    let sink = Sink::new(bind(V4));
    let relay = Relay::start(addr(V4), sink.addr(), Impairment::new(), Impairment::new()).unwrap();
    let client = bind(V4);
    let send = |seqs: std::ops::Range<u32>| {
        for seq in seqs {
            client
                .send_to(&payload(seq, 100), relay.local_addr())
                .unwrap();
            thread::sleep(Duration::from_millis(2));
        }
    };

    send(0..10);
    assert_eq!(seqs(&sink.wait_for(10)), (0..10).collect::<Vec<_>>());

    let end = relay.blackout(Duration::from_millis(300));
    send(10..30);
    let stats = settle(&relay, Direction::Forward, 30);
    let through_during = stats.forwarded - 10;
    assert!(stats.dropped_blackout > 0);
    assert_eq!(stats.dropped_blackout + through_during, 20);
    // Nothing is delivered while the link is down; anything the relay took
    // only after the end (a very slow machine) may pass, and only after it.
    for (arrived, bytes) in sink.wait_for(stats.forwarded).iter().skip(10) {
        assert!(
            *arrived >= end,
            "datagram {} delivered during the blackout",
            seq_of(bytes)
        );
    }

    let now = Instant::now();
    if now < end {
        thread::sleep(end - now);
    }
    send(30..40);
    let got = sink.wait_for(10 + through_during + 10);
    let after: Vec<u32> = seqs(&got).into_iter().filter(|&s| s >= 30).collect();
    assert_eq!(after, (30..40).collect::<Vec<_>>());
    assert_eq!(
        relay.stats().forward.dropped_blackout,
        stats.dropped_blackout
    );
}

/// Counts datagrams that arrive after one with a higher sequence number.
fn out_of_order(seqs: &[u32]) -> u64 {
    let mut highest = None;
    let mut late = 0;
    for &seq in seqs {
        match highest {
            Some(h) if seq < h => late += 1,
            _ => highest = Some(seq),
        }
    }
    late
}

#[test]
fn jitter_reorders_without_duplicating() {
    let sink = Sink::new(bind(V4));
    let jittery = Impairment::new().jitter(Duration::from_millis(20)).seed(3);
    let relay = Relay::start(addr(V4), sink.addr(), jittery, Impairment::new()).unwrap();
    let client = bind(V4);
    let sent: Vec<Vec<u8>> = (0..300).map(|i| payload(i, 200)).collect();
    send_paced(&client, &relay, Some(&sink), &sent, 32);
    let stats = settle(&relay, Direction::Forward, 300);
    let got = seqs(&sink.wait_for(300));
    let unique: HashSet<u32> = got.iter().copied().collect();
    assert_eq!(unique.len(), 300, "lost or duplicated");
    let late = out_of_order(&got);
    println!("{late} out of order, {stats:?}");
    assert!(late > 0);
    assert!(stats.reordered > 0);
}

#[test]
fn explicit_reordering_lets_later_datagrams_overtake() {
    let sink = Sink::new(bind(V4));
    let shuffling = Impairment::new()
        .reorder(0.2, Duration::from_millis(15))
        .seed(4);
    let relay = Relay::start(addr(V4), sink.addr(), shuffling, Impairment::new()).unwrap();
    let client = bind(V4);
    let sent: Vec<Vec<u8>> = (0..200).map(|i| payload(i, 200)).collect();
    send_paced(&client, &relay, Some(&sink), &sent, 32);
    settle(&relay, Direction::Forward, 200);
    let got = seqs(&sink.wait_for(200));
    assert_eq!(got.iter().copied().collect::<HashSet<_>>().len(), 200);
    assert!(out_of_order(&got) > 0);
    assert!(relay.stats().forward.reordered > 0);
}

#[test]
fn ipv6_loopback_works() {
    const V6: &str = "[::1]:0";
    if UdpSocket::bind(addr(V6)).is_err() {
        println!("SKIPPED ipv6_loopback_works: this machine has no ::1");
        return;
    }
    let echo = Echo::new(V6);
    let delayed = Impairment::new().delay(Duration::from_millis(5));
    let relay = Relay::start(addr(V6), echo.addr, delayed.clone(), delayed).unwrap();
    assert!(relay.local_addr().is_ipv6());
    let client = bind(V6);
    for i in 0..10 {
        client
            .send_to(&payload(i, 500), relay.local_addr())
            .unwrap();
    }
    let mut got = seqs(&recv_n(&client, 10));
    got.sort_unstable();
    assert_eq!(got, (0..10).collect::<Vec<_>>());
}

#[test]
fn hostile_sizes_pass_and_the_relay_keeps_going() {
    let echo = Echo::new(V4);
    let relay = Relay::start(addr(V4), echo.addr, Impairment::new(), Impairment::new()).unwrap();
    let client = bind(V4);
    let biggest = payload(1, 65_507);
    for datagram in [Vec::new(), biggest.clone(), payload(2, 10)] {
        client.send_to(&datagram, relay.local_addr()).unwrap();
        let back = recv_n(&client, 1).pop().unwrap().1;
        assert_eq!(back, datagram);
    }
    let forward = settle(&relay, Direction::Forward, 3);
    let backward = settle(&relay, Direction::Backward, 3);
    assert_eq!(forward.forwarded, 3);
    assert_eq!(backward.forwarded, 3);
    assert_eq!(forward.bytes_forwarded, 65_507 + 10);
}

#[test]
fn unreachable_upstream_does_not_stop_the_relay() {
    // A port with nobody behind it: sends provoke ICMP port unreachable.
    let gone = bind(V4);
    let upstream = gone.local_addr().unwrap();
    drop(gone);
    let relay = Relay::start(addr(V4), upstream, Impairment::new(), Impairment::new()).unwrap();
    let client = bind(V4);
    let sent: Vec<Vec<u8>> = (0..50).map(|i| payload(i, 100)).collect();
    for datagram in &sent {
        client.send_to(datagram, relay.local_addr()).unwrap();
        thread::sleep(Duration::from_millis(1));
    }
    let stats = settle(&relay, Direction::Forward, 50);
    println!("{stats:?}");
    assert_eq!(stats.forwarded + stats.send_errors, 50);

    // Someone starts listening there: traffic flows both ways, so neither the
    // listener nor the client's upstream reader died of the ICMP errors.
    let Ok(server) = UdpSocket::bind(upstream) else {
        println!("SKIPPED the recovery half: port {upstream} was taken meanwhile");
        return;
    };
    let _echo = Echo::on(server);
    let deadline = Instant::now() + GUARD;
    let mut buf = [0; 64];
    loop {
        assert!(
            Instant::now() < deadline,
            "no reply after upstream came back"
        );
        client.send_to(b"again", relay.local_addr()).unwrap();
        match client.recv(&mut buf) {
            Ok(len) => {
                assert_eq!(&buf[..len], b"again");
                break;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("{e}"),
        }
    }
}

#[test]
fn each_client_gets_its_own_upstream_address_and_its_own_replies() {
    let echo = Echo::new(V4);
    let relay = Relay::start(addr(V4), echo.addr, Impairment::new(), Impairment::new()).unwrap();
    let clients: Vec<UdpSocket> = (0..3).map(|_| bind(V4)).collect();
    for round in 0..5 {
        for (i, client) in clients.iter().enumerate() {
            client
                .send_to(&payload(i as u32 * 100 + round, 50), relay.local_addr())
                .unwrap();
        }
    }
    for (i, client) in clients.iter().enumerate() {
        let mut got = seqs(&recv_n(client, 5));
        got.sort_unstable();
        let want: Vec<u32> = (0..5).map(|round| i as u32 * 100 + round).collect();
        assert_eq!(got, want, "client {i}");
    }
    assert_eq!(echo.peers.lock().unwrap().len(), 3);
}

#[test]
fn impairments_change_at_runtime() {
    let sink = Sink::new(bind(V4));
    let relay = Relay::start(addr(V4), sink.addr(), Impairment::new(), Impairment::new()).unwrap();
    let client = bind(V4);
    let batch = |from: u32| {
        (from..from + 20)
            .map(|i| payload(i, 100))
            .collect::<Vec<_>>()
    };

    relay
        .set_impairment(Direction::Forward, Impairment::new().loss(1.0))
        .unwrap();
    send_paced(&client, &relay, Some(&sink), &batch(0), 8);
    let stats = settle(&relay, Direction::Forward, 20);
    assert_eq!(stats.dropped_loss, 20);

    relay
        .set_impairment(Direction::Forward, Impairment::new())
        .unwrap();
    send_paced(&client, &relay, Some(&sink), &batch(20), 8);
    let got = sink.wait_for(20);
    assert_eq!(seqs(&got), (20..40).collect::<Vec<_>>());
}

#[test]
fn invalid_impairments_name_the_field_and_range() {
    let cases = [
        (Impairment::new().loss(1.5), "loss"),
        (Impairment::new().loss(f64::NAN), "loss"),
        (
            Impairment::new().burst_loss(-0.1, 0.5),
            "burst_loss.p_enter",
        ),
        (Impairment::new().burst_loss(0.1, 0.0), "burst_loss.p_exit"),
        (
            Impairment::new().reorder(2.0, Duration::ZERO),
            "reorder.probability",
        ),
        (Impairment::new().rate_mbps(0.0), "rate_mbps"),
        (Impairment::new().rate_mbps(f64::INFINITY), "rate_mbps"),
        (
            Impairment::new().queue_limit_bytes(1000),
            "queue_limit_bytes",
        ),
        (
            Impairment::new().rate_mbps(1.0).queue_limit_bytes(0),
            "queue_limit_bytes",
        ),
        (Impairment::new().delay(Duration::from_secs(7200)), "delay"),
        (Impairment::new().jitter(Duration::MAX), "jitter"),
    ];
    for (impairment, field) in cases {
        let err = impairment.validate().unwrap_err();
        assert_eq!(err.field, field);
        let message = err.to_string();
        assert!(
            message.contains(field)
                && message.contains(&err.value)
                && message.contains(err.allowed),
            "{message}"
        );
    }

    let sink = bind(V4);
    let bad = Impairment::new().loss(-1.0);
    let err = Relay::start(
        addr(V4),
        sink.local_addr().unwrap(),
        bad.clone(),
        Impairment::new(),
    )
    .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("loss"), "{err}");

    let relay = Relay::start(
        addr(V4),
        sink.local_addr().unwrap(),
        Impairment::new(),
        Impairment::new(),
    )
    .unwrap();
    assert!(relay.set_impairment(Direction::Backward, bad).is_err());
}

#[test]
fn dropping_the_relay_releases_its_sockets() {
    let echo = Echo::new(V4);
    let relay = Relay::start(addr(V4), echo.addr, Impairment::new(), Impairment::new()).unwrap();
    let local = relay.local_addr();
    let client = bind(V4);
    client.send_to(b"hello", local).unwrap();
    recv_n(&client, 1);
    drop(relay);
    // Every thread holding the listening socket has been joined.
    UdpSocket::bind(local).unwrap();
}

#[test]
fn the_handle_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Relay>();
    shareable::<RelayStats>();
}

#[test]
fn delay_is_a_floor_one_way() {
    let sink = Sink::new(bind(V4));
    let delayed = Impairment::new().delay(Duration::from_millis(40));
    let relay = Relay::start(addr(V4), sink.addr(), delayed, Impairment::new()).unwrap();
    let client = bind(V4);
    let sent: Vec<Vec<u8>> = (0..50).map(|i| payload(i, 300)).collect();
    let sent_at = send_paced(&client, &relay, Some(&sink), &sent, 8);
    for (arrived, bytes) in sink.wait_for(50) {
        let seq = seq_of(&bytes) as usize;
        assert_eq!(bytes, sent[seq]);
        let took = arrived - sent_at[seq];
        assert!(
            took >= Duration::from_millis(40),
            "datagram {seq} took {took:?}"
        );
    }
}

/// Names of this process's relay threads (Linux only).
fn relay_threads() -> Option<Vec<String>> {
    let tasks = std::fs::read_dir("/proc/self/task").ok()?;
    let names = tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.starts_with("med8k-relay"))
        .collect();
    Some(names)
}

/// Other tests run relays concurrently in this process, so the thread count is
/// checked in a child process that runs only this test.
#[test]
fn no_thread_outlives_the_relay() {
    const CHILD: &str = "MED8K_RELAY_THREAD_CHECK";
    if std::env::var_os(CHILD).is_none() {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "no_thread_outlives_the_relay",
                "--test-threads=1",
            ])
            .env(CHILD, "1")
            .status()
            .unwrap();
        assert!(status.success(), "child: {status}");
        return;
    }
    let Some(before) = relay_threads() else {
        println!("SKIPPED no_thread_outlives_the_relay: no /proc/self/task");
        return;
    };
    assert!(before.is_empty(), "{before:?}");
    let echo = Echo::new(V4);
    let relay = Relay::start(addr(V4), echo.addr, Impairment::new(), Impairment::new()).unwrap();
    let clients: Vec<UdpSocket> = (0..3).map(|_| bind(V4)).collect();
    for client in &clients {
        client.send_to(b"hi", relay.local_addr()).unwrap();
        recv_n(client, 1);
    }
    // A listener, a scheduler and one upstream reader per client.
    assert_eq!(relay_threads().unwrap().len(), 5);
    drop(relay);
    // A joined thread may linger in /proc for a moment; a leaked one stays.
    wait_until("relay threads to exit", || {
        relay_threads().unwrap().is_empty()
    });
}
