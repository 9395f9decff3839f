//! A userspace network impairment relay for UDP on loopback.
//!
//! There is no kernel traffic shaping on the test machines, so tests put a
//! [`Relay`] between a client and a server: the client sends to
//! [`Relay::local_addr`], the relay forwards to the upstream address and sends
//! the replies back, delaying, dropping, reordering and rate-limiting each
//! direction according to its [`Impairment`].
//!
//! # Tour
//! - [`Impairment`]: what one direction does (delay, jitter, random and
//!   Gilbert–Elliott burst loss, reordering, a bandwidth cap with a drop-tail
//!   queue), seeded for reproducible runs; [`InvalidImpairment`] names a bad
//!   value and its allowed range.
//! - [`Relay`]: the running relay. Each client address gets its own upstream
//!   socket, so the server sees as many peers as there are clients. The
//!   handle changes a direction at runtime ([`Relay::set_impairment`]), cuts
//!   the link for a while ([`Relay::blackout`]) and reports counters
//!   ([`Relay::stats`]). Dropping it stops and joins its threads.
//!
//! Datagrams wait in a queue ordered by departure time, so delays overlap
//! instead of adding up; a bandwidth cap is a virtual departure clock (each
//! datagram occupies the link for `len * 8 / rate`).
//!
//! ```no_run
//! use std::net::UdpSocket;
//! use std::time::Duration;
//! use med8k_transport::relay::{Direction, Impairment, Relay};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let server = UdpSocket::bind("127.0.0.1:0")?;
//! let wan = Impairment::new().delay(Duration::from_millis(20)).loss(0.01);
//! let relay = Relay::start("127.0.0.1:0".parse()?, server.local_addr()?, wan.clone(), wan)?;
//!
//! let client = UdpSocket::bind("127.0.0.1:0")?;
//! client.send_to(b"hello", relay.local_addr())?;
//!
//! relay.blackout(Duration::from_millis(300));
//! relay.set_impairment(Direction::Backward, Impairment::new().rate_mbps(50.0))?;
//! println!("{:?}", relay.stats().forward);
//! # Ok(())
//! # }
//! ```

mod impairment;
mod lane;

pub use impairment::{
    DEFAULT_SEED, Impairment, InvalidImpairment, MAX_DELAY, MAX_RATE_MBPS, MIN_RATE_MBPS,
};

use std::cmp::{Ordering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use lane::Lane;

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Most distinct clients one relay serves; datagrams from further clients are
/// dropped and counted in [`DirectionStats::dropped_client_limit`].
pub const MAX_CLIENTS: usize = 256;

/// Longest blackout; longer requests are cut to this.
pub const MAX_BLACKOUT: Duration = Duration::from_secs(24 * 3600);

/// Large enough for any UDP payload over IPv4 or IPv6 (without jumbograms).
const RECV_BUFFER: usize = 65_536;

/// Which way a datagram travels through the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From a client to the upstream server.
    Forward,
    /// From the upstream server back to a client.
    Backward,
}

impl Direction {
    const fn index(self) -> usize {
        match self {
            Self::Forward => 0,
            Self::Backward => 1,
        }
    }
}

/// Counters for one direction. Once traffic has stopped and
/// [`in_flight`](Self::in_flight) is 0,
/// `datagrams_in == forwarded + dropped_* + send_errors`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DirectionStats {
    /// Datagrams received by the relay in this direction.
    pub datagrams_in: u64,
    /// Their payload bytes.
    pub bytes_in: u64,
    /// Datagrams sent on.
    pub forwarded: u64,
    /// Their payload bytes.
    pub bytes_forwarded: u64,
    /// Dropped by random loss.
    pub dropped_loss: u64,
    /// Dropped in the bad state of burst loss.
    pub dropped_burst: u64,
    /// Dropped because the rate-capped queue was full.
    pub dropped_queue: u64,
    /// Dropped by a blackout (on arrival, or due to leave during one).
    pub dropped_blackout: u64,
    /// Dropped because [`MAX_CLIENTS`] clients were already served (forward
    /// direction only).
    pub dropped_client_limit: u64,
    /// Datagrams the socket refused to send (for example after an ICMP
    /// error from an unreachable upstream).
    pub send_errors: u64,
    /// Datagrams sent after a later datagram of the same client.
    pub reordered: u64,
    /// Datagrams currently held by the relay.
    pub in_flight: u64,
}

impl DirectionStats {
    /// All drops together (loss, burst, queue, blackout, client limit).
    #[must_use]
    pub const fn dropped(&self) -> u64 {
        self.dropped_loss
            + self.dropped_burst
            + self.dropped_queue
            + self.dropped_blackout
            + self.dropped_client_limit
    }
}

/// A snapshot of a relay's counters, per direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RelayStats {
    /// Client → upstream.
    pub forward: DirectionStats,
    /// Upstream → client.
    pub backward: DirectionStats,
}

impl RelayStats {
    fn direction_mut(&mut self, direction: Direction) -> &mut DirectionStats {
        match direction {
            Direction::Forward => &mut self.forward,
            Direction::Backward => &mut self.backward,
        }
    }
}

type SharedStats = Arc<Mutex<RelayStats>>;

fn lock(stats: &SharedStats) -> MutexGuard<'_, RelayStats> {
    // The counters stay meaningful even if a holder panicked.
    stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A running impairment relay; see the [module docs](self).
///
/// Threads: one reads the listening socket, one per client reads its upstream
/// socket, and one scheduler applies the impairments and sends. All are
/// stopped and joined when the relay is dropped; datagrams still held are
/// discarded.
///
/// Memory: held datagrams are bounded by `queue_limit_bytes` behind a rate
/// cap, and otherwise only by how much arrives during one delay. The relay
/// does not enable UDP GRO and does not carry ECN marks.
pub struct Relay {
    local_addr: SocketAddr,
    upstream: SocketAddr,
    control: Sender<Message>,
    stats: SharedStats,
    stop: Arc<AtomicBool>,
    listener: Option<JoinHandle<()>>,
    scheduler: Option<JoinHandle<()>>,
    client_threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl fmt::Debug for Relay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Relay")
            .field("local_addr", &self.local_addr)
            .field("upstream", &self.upstream)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// Binds `listen` (port 0 picks a free one) and starts relaying to
    /// `upstream`, impairing client → upstream traffic with `forward` and
    /// upstream → client traffic with `backward`.
    ///
    /// Fails with [`io::ErrorKind::InvalidInput`] wrapping an
    /// [`InvalidImpairment`] if either impairment is out of range, or with the
    /// error from binding the socket or spawning a thread.
    pub fn start(
        listen: SocketAddr,
        upstream: SocketAddr,
        forward: Impairment,
        backward: Impairment,
    ) -> io::Result<Self> {
        for impairment in [&forward, &backward] {
            impairment
                .validate()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        }
        let socket = bind_udp(listen)?;
        socket.set_read_timeout(Some(POLL))?;
        let local_addr = socket.local_addr()?;
        let socket = Arc::new(socket);

        let stop = Arc::new(AtomicBool::new(false));
        let stats = SharedStats::default();
        let client_threads = Arc::new(Mutex::new(Vec::new()));
        let (control, inbox) = mpsc::channel();

        let scheduler = Scheduler {
            lanes: [
                Lane::new(forward, 0),
                Lane::new(backward, 0x9e37_79b9_7f4a_7c15),
            ],
            heap: BinaryHeap::new(),
            order: 0,
            next_seq: [0, 0],
            last_sent: HashMap::new(),
            blackout: None,
            listen: Arc::clone(&socket),
            stats: Arc::clone(&stats),
        };
        let scheduler = spawn("med8k-relay-scheduler", {
            let stop = Arc::clone(&stop);
            move || scheduler.run(&inbox, &stop)
        })?;

        let listener = Listener {
            socket,
            upstream,
            to_scheduler: control.clone(),
            stop: Arc::clone(&stop),
            stats: Arc::clone(&stats),
            client_threads: Arc::clone(&client_threads),
            clients: HashMap::new(),
        };
        let listener = match spawn("med8k-relay-listener", move || listener.run()) {
            Ok(handle) => handle,
            Err(e) => {
                stop.store(true, AtomicOrdering::SeqCst);
                let _ = scheduler.join();
                return Err(e);
            }
        };

        Ok(Self {
            local_addr,
            upstream,
            control,
            stats,
            stop,
            listener: Some(listener),
            scheduler: Some(scheduler),
            client_threads,
        })
    }

    /// The address clients send to.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The address datagrams are forwarded to.
    #[must_use]
    pub const fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Replaces one direction's impairment for datagrams arriving from now on
    /// (those already held keep their departure time). Reseeds that
    /// direction's PRNG; the rate-capped link keeps its backlog.
    pub fn set_impairment(
        &self,
        direction: Direction,
        impairment: Impairment,
    ) -> Result<(), InvalidImpairment> {
        impairment.validate()?;
        // The scheduler only goes away with the relay.
        let _ = self.control.send(Message::Set(direction, impairment));
        Ok(())
    }

    /// Drops everything in both directions, starting now, for `duration`
    /// (at most [`MAX_BLACKOUT`]): datagrams arriving meanwhile and those
    /// held ones due to leave meanwhile. A blackout requested while another
    /// is on extends it if it ends later. Returns when it ends.
    pub fn blackout(&self, duration: Duration) -> Instant {
        let start = Instant::now();
        let end = start + duration.min(MAX_BLACKOUT);
        let _ = self.control.send(Message::Blackout { start, end });
        end
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> RelayStats {
        *lock(&self.stats)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, AtomicOrdering::SeqCst);
        // The listener spawns client threads: join it first so no more appear.
        if let Some(listener) = self.listener.take() {
            let _ = listener.join();
        }
        let clients = std::mem::take(
            &mut *self
                .client_threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for client in clients {
            let _ = client.join();
        }
        if let Some(scheduler) = self.scheduler.take() {
            let _ = scheduler.join();
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<JoinHandle<()>> {
    thread::Builder::new().name(name.to_owned()).spawn(f)
}

/// What the reader threads and the handle tell the scheduler.
enum Message {
    Datagram(Datagram),
    Set(Direction, Impairment),
    Blackout { start: Instant, end: Instant },
}

struct Datagram {
    direction: Direction,
    /// The client this datagram comes from or goes to.
    client: SocketAddr,
    /// For [`Direction::Forward`]: the client's upstream socket.
    upstream_socket: Option<Arc<UdpSocket>>,
    arrived: Instant,
    payload: Vec<u8>,
}

/// Reads the listening socket and gives each client its upstream socket.
struct Listener {
    socket: Arc<UdpSocket>,
    upstream: SocketAddr,
    to_scheduler: Sender<Message>,
    stop: Arc<AtomicBool>,
    stats: SharedStats,
    client_threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    clients: HashMap<SocketAddr, Arc<UdpSocket>>,
}

impl Listener {
    fn run(mut self) {
        let mut buf = vec![0; RECV_BUFFER];
        while !self.stop.load(AtomicOrdering::Relaxed) {
            let (len, client) = match self.socket.recv_from(&mut buf) {
                Ok(received) => received,
                // Timeouts, and ICMP errors some platforms report on
                // unconnected sockets: neither concerns the relay.
                Err(_) => continue,
            };
            let arrived = Instant::now();
            let Some(upstream_socket) = self.client_socket(client) else {
                let mut stats = lock(&self.stats);
                stats.forward.datagrams_in += 1;
                stats.forward.bytes_in += len as u64;
                stats.forward.dropped_client_limit += 1;
                continue;
            };
            let datagram = Datagram {
                direction: Direction::Forward,
                client,
                upstream_socket: Some(upstream_socket),
                arrived,
                payload: buf[..len].to_vec(),
            };
            if self.to_scheduler.send(Message::Datagram(datagram)).is_err() {
                return;
            }
        }
    }

    /// The client's upstream socket, opened (with its reader thread) on its
    /// first datagram; `None` past [`MAX_CLIENTS`] or if opening failed.
    fn client_socket(&mut self, client: SocketAddr) -> Option<Arc<UdpSocket>> {
        if let Some(socket) = self.clients.get(&client) {
            return Some(Arc::clone(socket));
        }
        if self.clients.len() >= MAX_CLIENTS {
            return None;
        }
        let socket = Arc::new(open_upstream_socket(self.upstream).ok()?);
        let reader = UpstreamReader {
            socket: Arc::clone(&socket),
            client,
            to_scheduler: self.to_scheduler.clone(),
            stop: Arc::clone(&self.stop),
        };
        let handle = spawn("med8k-relay-upstream", move || reader.run()).ok()?;
        self.client_threads
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(handle);
        self.clients.insert(client, Arc::clone(&socket));
        Some(socket)
    }
}

/// A socket connected to `upstream`, bound to loopback when upstream is on
/// loopback, else to the unspecified address of its family.
fn open_upstream_socket(upstream: SocketAddr) -> io::Result<UdpSocket> {
    let ip: IpAddr = match (upstream.ip(), upstream.ip().is_loopback()) {
        (IpAddr::V4(_), true) => Ipv4Addr::LOCALHOST.into(),
        (IpAddr::V4(_), false) => Ipv4Addr::UNSPECIFIED.into(),
        (IpAddr::V6(_), true) => Ipv6Addr::LOCALHOST.into(),
        (IpAddr::V6(_), false) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let socket = bind_udp(SocketAddr::new(ip, 0))?;
    socket.connect(upstream)?;
    socket.set_read_timeout(Some(POLL))?;
    Ok(socket)
}

/// Socket buffers the relay asks for: the kernel's 208 KiB default overflows
/// under a Gbit/s burst, and datagrams lost there would be losses the test
/// did not ask for. Linux caps the request at `net.core.rmem_max`/`wmem_max`.
const SOCKET_BUFFER: usize = 8 << 20;

/// A UDP socket bound to `addr` with large kernel buffers.
fn bind_udp(addr: SocketAddr) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    // Best effort: a smaller buffer still works, only with more drops.
    let _ = socket.set_recv_buffer_size(SOCKET_BUFFER);
    let _ = socket.set_send_buffer_size(SOCKET_BUFFER);
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// Reads one client's upstream socket.
struct UpstreamReader {
    socket: Arc<UdpSocket>,
    client: SocketAddr,
    to_scheduler: Sender<Message>,
    stop: Arc<AtomicBool>,
}

impl UpstreamReader {
    fn run(self) {
        let mut buf = vec![0; RECV_BUFFER];
        while !self.stop.load(AtomicOrdering::Relaxed) {
            // Errors are timeouts or ICMP errors (ECONNREFUSED when upstream
            // is not listening): keep reading.
            let Ok(len) = self.socket.recv(&mut buf) else {
                continue;
            };
            let datagram = Datagram {
                direction: Direction::Backward,
                client: self.client,
                upstream_socket: None,
                arrived: Instant::now(),
                payload: buf[..len].to_vec(),
            };
            if self.to_scheduler.send(Message::Datagram(datagram)).is_err() {
                return;
            }
        }
    }
}

/// A datagram waiting for its departure time.
struct Held {
    due: Instant,
    /// Arrival order among all held datagrams, to break ties in due time.
    order: u64,
    /// Arrival order within its direction, to detect reordering.
    seq: u64,
    datagram: Datagram,
}

impl PartialEq for Held {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Held {}

impl PartialOrd for Held {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Held {
    fn cmp(&self, other: &Self) -> Ordering {
        (self.due, self.order).cmp(&(other.due, other.order))
    }
}

/// Applies the impairments and sends datagrams when they are due.
struct Scheduler {
    lanes: [Lane; 2],
    heap: BinaryHeap<Reverse<Held>>,
    order: u64,
    next_seq: [u64; 2],
    /// Highest sequence number sent, per direction and client.
    last_sent: HashMap<(Direction, SocketAddr), u64>,
    blackout: Option<(Instant, Instant)>,
    listen: Arc<UdpSocket>,
    stats: SharedStats,
}

impl Scheduler {
    fn run(mut self, inbox: &Receiver<Message>, stop: &AtomicBool) {
        while !stop.load(AtomicOrdering::Relaxed) {
            let now = Instant::now();
            self.send_due(now);
            let wait = self
                .heap
                .peek()
                .map_or(POLL, |Reverse(held)| {
                    held.due.saturating_duration_since(now)
                })
                .min(POLL);
            match inbox.recv_timeout(wait) {
                Ok(message) => {
                    self.handle(message);
                    // Take what else is waiting, but keep sending on time.
                    for message in inbox.try_iter().take(256) {
                        self.handle(message);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    fn in_blackout(&self, t: Instant) -> bool {
        self.blackout
            .is_some_and(|(start, end)| start <= t && t < end)
    }

    fn handle(&mut self, message: Message) {
        match message {
            Message::Set(direction, impairment) => self.lanes[direction.index()].set(impairment),
            Message::Blackout { start, end } => {
                self.blackout = match self.blackout {
                    Some((old_start, old_end)) if start < old_end => {
                        Some((old_start, old_end.max(end)))
                    }
                    _ => Some((start, end)),
                };
            }
            Message::Datagram(datagram) => self.admit(datagram),
        }
    }

    fn admit(&mut self, datagram: Datagram) {
        let direction = datagram.direction;
        let len = datagram.payload.len();
        let blackout = self.in_blackout(datagram.arrived);
        let verdict = if blackout {
            None
        } else {
            Some(self.lanes[direction.index()].admit(datagram.arrived, len))
        };
        let mut stats = lock(&self.stats);
        let stats = stats.direction_mut(direction);
        stats.datagrams_in += 1;
        stats.bytes_in += len as u64;
        match verdict {
            None => stats.dropped_blackout += 1,
            Some(Err(lane::Dropped::Burst)) => stats.dropped_burst += 1,
            Some(Err(lane::Dropped::Loss)) => stats.dropped_loss += 1,
            Some(Err(lane::Dropped::Queue)) => stats.dropped_queue += 1,
            Some(Ok(due)) => {
                stats.in_flight += 1;
                let seq = self.next_seq[direction.index()];
                self.next_seq[direction.index()] += 1;
                self.order += 1;
                self.heap.push(Reverse(Held {
                    due,
                    order: self.order,
                    seq,
                    datagram,
                }));
            }
        }
    }

    fn send_due(&mut self, now: Instant) {
        while self
            .heap
            .peek()
            .is_some_and(|Reverse(held)| held.due <= now)
        {
            let Some(Reverse(held)) = self.heap.pop() else {
                return;
            };
            let Datagram {
                direction,
                client,
                upstream_socket,
                payload,
                ..
            } = held.datagram;
            let blackout = self.in_blackout(now);
            let sent = if blackout {
                None
            } else {
                Some(match &upstream_socket {
                    Some(socket) => socket.send(&payload),
                    None => self.listen.send_to(&payload, client),
                })
            };
            let reordered = if let Some(Ok(_)) = sent {
                let last = self
                    .last_sent
                    .entry((direction, client))
                    .or_insert(held.seq);
                let reordered = held.seq < *last;
                *last = (*last).max(held.seq);
                reordered
            } else {
                false
            };
            let mut stats = lock(&self.stats);
            let stats = stats.direction_mut(direction);
            stats.in_flight -= 1;
            match sent {
                None => stats.dropped_blackout += 1,
                Some(Ok(_)) => {
                    stats.forwarded += 1;
                    stats.bytes_forwarded += payload.len() as u64;
                    stats.reordered += u64::from(reordered);
                }
                Some(Err(_)) => stats.send_errors += 1,
            }
        }
    }
}
