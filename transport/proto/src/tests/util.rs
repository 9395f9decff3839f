//! Test helpers: a seeded PRNG, sample values, and the `Pair` harness
//! (two sessions in memory under a simulated clock, as quinn-proto's
//! `tests/util.rs`).
//!
//! The link model follows what QUIC gives the driver: the control and object
//! streams are ordered and reliable (a loss shows up as delay, never as a
//! gap); each live frame travels on its own stream, so frames overtake each
//! other, may be delayed past their deadline, or be reset halfway. An outage
//! drops everything in flight; the hosts then reconnect with new sessions.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::codec;
use crate::message::*;
use crate::session::{Config, Event, FrameStream, ReceivedFrame, Session, Transfers, Transmit};

/// SplitMix64: small, seeded, good enough to drive tests.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn usize_below(&mut self, n: usize) -> usize {
        self.below(n as u64) as usize
    }
    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next_u64() as u8).collect()
    }
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

// ---------------------------------------------------------------------------
// Sample values

pub fn hello(site: &str) -> Hello {
    Hello::new(
        site,
        format!("Facility {site}"),
        Capabilities::SEND_LIVE
            | Capabilities::RECEIVE_LIVE
            | Capabilities::SEND_OBJECTS
            | Capabilities::RECEIVE_OBJECTS
            | Capabilities::ANNOTATE,
    )
}

/// A frame header for `payload` cut into `slices` slices with their CRCs
/// (seq and payload_len are filled in by the sending session).
pub fn frame_header(channel: u16, payload: &[u8], slices: usize) -> FrameHeader {
    let slices = slices.max(1);
    let step = payload.len().div_ceil(slices).max(1);
    let table = payload
        .chunks(step)
        .map(|c| Slice {
            len: c.len() as u32,
            crc: crc32fast::hash(c),
        })
        .collect();
    FrameHeader {
        channel,
        seq: 0,
        capture_us: 16_667,
        codec: Codec::WaveletLossless,
        width: 7680,
        height: 4320,
        format: PixelFormat {
            layout: Layout::Yuv422,
            bit_depth: 10,
        },
        slices: table,
        payload_len: payload.len() as u32,
    }
}

// ---------------------------------------------------------------------------
// The Pair harness

/// Something on its way to one end.
#[derive(Debug)]
enum Delivery {
    Control(Vec<u8>),
    Object(Vec<u8>),
    /// A frame stream: header message, payload, and whether the sender
    /// resets it after half the payload.
    Frame {
        channel: u16,
        seq: u64,
        header: Vec<u8>,
        payload: Vec<u8>,
        reset: bool,
    },
}

/// One end: its session and what its host does and keeps.
#[derive(Debug)]
pub struct End {
    pub session: Session,
    /// Every event the session produced, in order.
    pub events: Vec<Event>,
    /// Client host: tokens presented on `AuthChallenge` (none: wait).
    pub tokens: Vec<Token>,
    /// Server host: the gate's answer to `AuthRequest` (none: wait).
    pub gate: Option<AuthDecision>,
    /// Objects this host sends when told to resume.
    pub objects_to_send: BTreeMap<u64, Vec<u8>>,
    /// Flip one byte of the next object data sent (to test the SHA-256 check).
    pub corrupt_next_object_send: bool,
    /// Objects received, as the events handed them over.
    pub objects_received: BTreeMap<u64, Vec<u8>>,
    /// Frames delivered.
    pub frames: Vec<ReceivedFrame>,
    /// In flight towards this end: (arrival, order, what).
    inbound: Vec<(Instant, u64, Delivery)>,
    object_reader: codec::MessageReader,
    last_control_arrival: Option<Instant>,
    last_object_arrival: Option<Instant>,
}

impl End {
    fn new(session: Session) -> End {
        End {
            session,
            events: Vec::new(),
            tokens: Vec::new(),
            gate: None,
            objects_to_send: BTreeMap::new(),
            corrupt_next_object_send: false,
            objects_received: BTreeMap::new(),
            frames: Vec::new(),
            inbound: Vec::new(),
            object_reader: codec::MessageReader::new(),
            last_control_arrival: None,
            last_object_arrival: None,
        }
    }

    /// Sequence numbers declared lost on `channel`.
    pub fn lost_seqs(&self, channel: u16) -> Vec<u64> {
        let mut out = Vec::new();
        for e in &self.events {
            if let Event::FramesLost { channel: c, ranges } = e
                && *c == channel
            {
                for r in ranges {
                    out.extend(r.first..=r.last);
                }
            }
        }
        out
    }

    /// Runs the host's reactions to new events.
    pub fn react(&mut self, now: Instant) -> bool {
        let mut any = false;
        while let Some(event) = self.session.poll_event() {
            any = true;
            match &event {
                Event::AuthChallenge { .. } if !self.tokens.is_empty() => {
                    self.session
                        .authenticate(now, self.tokens.clone())
                        .expect("authenticate");
                }
                Event::AuthRequest { .. } => {
                    if let Some(d) = self.gate.clone() {
                        self.session.authorise(now, d).expect("authorise");
                    }
                }
                Event::ObjectResume { id, from } => {
                    if let Some(data) = self.objects_to_send.get(id) {
                        let mut rest = data[*from as usize..].to_vec();
                        if self.corrupt_next_object_send && !rest.is_empty() {
                            self.corrupt_next_object_send = false;
                            let last = rest.len() - 1;
                            rest[last] ^= 0x01;
                        }
                        self.session
                            .send_object_data(*id, *from, &rest)
                            .expect("send object data");
                    }
                }
                Event::ObjectData(d) => {
                    let buf = self.objects_received.entry(d.id).or_default();
                    assert_eq!(
                        buf.len() as u64,
                        d.offset,
                        "object bytes arrive in order, once"
                    );
                    buf.extend_from_slice(&d.data);
                }
                Event::ObjectCorrupt { id } => {
                    self.objects_received.remove(id);
                }
                Event::Frame(f) => self.frames.push(f.clone()),
                _ => {}
            }
            self.events.push(event);
        }
        any
    }

    fn next_arrival(&self) -> Option<Instant> {
        self.inbound.iter().map(|(t, _, _)| *t).min()
    }

    /// Delivers everything due by `now`, in arrival order.
    fn deliver(&mut self, now: Instant) -> bool {
        let mut any = false;
        loop {
            let due = self
                .inbound
                .iter()
                .enumerate()
                .filter(|(_, (t, _, _))| *t <= now)
                .min_by_key(|(_, (t, order, _))| (*t, *order))
                .map(|(i, _)| i);
            let Some(i) = due else { return any };
            any = true;
            let (_, _, d) = self.inbound.remove(i);
            match d {
                Delivery::Control(bytes) => self.session.handle_control_data(now, &bytes),
                Delivery::Object(bytes) => {
                    self.object_reader.push(&bytes);
                    while let Some(msg) = self
                        .object_reader
                        .next_message()
                        .expect("object stream decodes")
                    {
                        self.session.handle_message(now, msg);
                    }
                }
                Delivery::Frame {
                    channel,
                    seq,
                    header,
                    payload,
                    reset,
                } => {
                    let (msg, used) = codec::decode(&header)
                        .expect("frame header decodes")
                        .expect("frame header is whole");
                    assert_eq!(used, header.len());
                    self.session.handle_message(now, msg);
                    let (first, second) = payload.split_at(payload.len() / 2);
                    let mut status = self.session.handle_frame_payload(now, channel, seq, first);
                    if reset {
                        self.session.handle_frame_reset(now, channel, seq);
                    } else if status == FrameStream::Continue {
                        status = self.session.handle_frame_payload(now, channel, seq, second);
                        let _ = status;
                    }
                }
            }
        }
    }
}

/// Two sessions joined by a simulated link.
#[derive(Debug)]
pub struct Pair {
    pub time: Instant,
    /// One-way delay of every stream.
    pub latency: Duration,
    /// Probability that a control or object message needs a retransmission
    /// (arrives one round trip later; later bytes on the stream wait for it).
    pub stream_loss: f64,
    /// Probability that a frame's stream is delayed by `frame_delay` more.
    pub frame_delay_prob: f64,
    /// Extra delay of a delayed frame.
    pub frame_delay: Duration,
    /// Probability that the sender resets a frame's stream halfway.
    pub frame_reset_prob: f64,
    /// Bytes per second of the object stream (0: unlimited); a chunk arrives
    /// when the one before it and its own bytes have crossed.
    pub object_rate: u64,
    /// While true, everything sent is lost.
    pub link_down: bool,
    pub rng: Rng,
    pub client: End,
    pub server: End,
    order: u64,
    pub config: Config,
}

pub const CHALLENGE: [u8; CHALLENGE_LEN] = [0x42; CHALLENGE_LEN];

impl Pair {
    pub fn new(config: Config) -> Pair {
        Pair::with_transfers(config, Instant::now(), Transfers::new(), Transfers::new())
    }

    fn with_transfers(config: Config, time: Instant, client: Transfers, server: Transfers) -> Pair {
        let c = Session::client(time, config.clone(), hello("jp.hospital-a"))
            .expect("client")
            .with_transfers(client);
        let s = Session::server(time, config.clone(), hello("jp.hospital-b"), CHALLENGE)
            .expect("server")
            .with_transfers(server);
        Pair {
            time,
            latency: Duration::from_millis(10),
            stream_loss: 0.0,
            frame_delay_prob: 0.0,
            frame_delay: Duration::from_millis(200),
            frame_reset_prob: 0.0,
            object_rate: 0,
            link_down: false,
            rng: Rng::new(1),
            client: End::new(c),
            server: End::new(s),
            order: 0,
            config,
        }
    }

    /// [`Pair::permitting`] with the client announcing `extra` capabilities too.
    pub fn permitting_with(config: Config, extra: Capabilities) -> Pair {
        let mut pair = Pair::permitting(config.clone());
        let mut h = hello("jp.hospital-a");
        h.capabilities = h.capabilities | extra;
        let tokens = std::mem::take(&mut pair.client.tokens);
        pair.client = End::new(Session::client(pair.time, config, h).expect("client"));
        pair.client.tokens = tokens;
        pair
    }

    /// A pair whose hosts present one token and permit.
    pub fn permitting(config: Config) -> Pair {
        let mut pair = Pair::new(config);
        pair.client.tokens = vec![Token {
            kind: TokenKind::Hpki,
            bytes: b"signature over challenge".to_vec(),
        }];
        pair.server.gate = Some(AuthDecision::Permit);
        pair
    }

    /// The link goes down: everything in flight is lost, and everything sent
    /// from now on until [`reconnect`](Self::reconnect).
    pub fn cut(&mut self) {
        self.link_down = true;
        self.client.inbound.clear();
        self.server.inbound.clear();
    }

    /// The link broke: everything in flight is lost, both sessions are gone.
    /// The hosts reconnect with new sessions that carry the object transfers
    /// over; the hosts' policies and stored objects stay.
    pub fn reconnect(&mut self) {
        let config = self.config.clone();
        let time = self.time;
        let c = std::mem::replace(
            &mut self.client.session,
            Session::client(time, config.clone(), hello("placeholder")).expect("client"),
        );
        let s = std::mem::replace(
            &mut self.server.session,
            Session::server(time, config.clone(), hello("placeholder"), CHALLENGE).expect("server"),
        );
        let fresh = Pair::with_transfers(config, time, c.into_transfers(), s.into_transfers());
        for (end, new) in [
            (&mut self.client, fresh.client),
            (&mut self.server, fresh.server),
        ] {
            end.session = new.session;
            end.inbound.clear();
            end.object_reader = codec::MessageReader::new();
            end.last_control_arrival = None;
            end.last_object_arrival = None;
        }
        self.link_down = false;
    }

    /// Hosts react, sessions transmit, due deliveries happen; true if
    /// anything moved.
    pub fn step(&mut self) -> bool {
        let now = self.time;
        let mut any = self.client.react(now) | self.server.react(now);
        any |= self.transmit(true) | self.transmit(false);
        any |= self.client.deliver(now) | self.server.deliver(now);
        any |= self.client.react(now) | self.server.react(now);
        any
    }

    fn transmit(&mut self, from_client: bool) -> bool {
        let now = self.time;
        let (from, to) = if from_client {
            (&mut self.client, &mut self.server)
        } else {
            (&mut self.server, &mut self.client)
        };
        let mut any = false;
        while let Some(t) = from.session.poll_transmit(now) {
            any = true;
            if self.link_down {
                continue;
            }
            self.order += 1;
            let mut arrival = now + self.latency;
            let delivery = match t {
                Transmit::Control(bytes) => {
                    if self.rng.chance(self.stream_loss) {
                        arrival += 2 * self.latency;
                    }
                    arrival = arrival.max(to.last_control_arrival.unwrap_or(arrival));
                    to.last_control_arrival = Some(arrival);
                    Delivery::Control(bytes)
                }
                Transmit::Object { bytes, .. } => {
                    if self.rng.chance(self.stream_loss) {
                        arrival += 2 * self.latency;
                    }
                    if self.object_rate > 0 {
                        let wire =
                            Duration::from_secs_f64(bytes.len() as f64 / self.object_rate as f64);
                        let start = to
                            .last_object_arrival
                            .map_or(arrival, |t| t.max(now + self.latency));
                        arrival = arrival.max(start + wire);
                    }
                    arrival = arrival.max(to.last_object_arrival.unwrap_or(arrival));
                    to.last_object_arrival = Some(arrival);
                    Delivery::Object(bytes)
                }
                Transmit::Frame {
                    channel,
                    seq,
                    header,
                    payload,
                    ..
                } => {
                    if self.rng.chance(self.frame_delay_prob) {
                        arrival += self.frame_delay;
                    }
                    Delivery::Frame {
                        channel,
                        seq,
                        header,
                        payload,
                        reset: self.rng.chance(self.frame_reset_prob),
                    }
                }
            };
            to.inbound.push((arrival, self.order, delivery));
        }
        any
    }

    fn next_wakeup(&self) -> Option<Instant> {
        [
            self.client.next_arrival(),
            self.server.next_arrival(),
            self.client.session.poll_timeout(),
            self.server.session.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn fire_timeouts(&mut self) {
        let now = self.time;
        for end in [&mut self.client, &mut self.server] {
            if end.session.poll_timeout().is_some_and(|t| t <= now) {
                end.session.handle_timeout(now);
            }
        }
    }

    /// Runs until nothing is in flight (timers due before the last arrival fire).
    pub fn drive(&mut self) {
        for _ in 0..1_000_000 {
            while self.step() {}
            let in_flight = [self.client.next_arrival(), self.server.next_arrival()]
                .into_iter()
                .flatten()
                .min();
            let Some(arrival) = in_flight else { return };
            let next = self.next_wakeup().unwrap_or(arrival).min(arrival);
            self.time = self.time.max(next);
            self.fire_timeouts();
        }
        panic!("the pair did not settle");
    }

    /// Runs for `d` of simulated time, firing every timer on the way.
    pub fn run_for(&mut self, d: Duration) {
        let end = self.time + d;
        for _ in 0..1_000_000 {
            while self.step() {}
            match self.next_wakeup() {
                Some(t) if t <= end => {
                    self.time = self.time.max(t);
                    self.fire_timeouts();
                }
                _ => {
                    self.time = end;
                    self.fire_timeouts();
                    while self.step() {}
                    return;
                }
            }
        }
        panic!("the pair did not settle");
    }

    /// Runs the handshake and checks that both ends opened.
    pub fn connect(&mut self) {
        self.drive();
        assert_eq!(
            self.client.session.state(),
            crate::State::Open,
            "client opened"
        );
        assert_eq!(
            self.server.session.state(),
            crate::State::Open,
            "server opened"
        );
    }
}
