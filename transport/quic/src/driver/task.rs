//! The task that runs one [`Session`] over a QUIC connection: it feeds the
//! session what arrives (control stream bytes, frame stream headers,
//! payloads and resets, host calls, close requests, the timer), then drains
//! it: control messages go to a writer task through a bounded queue, each
//! live frame to a task of its own on a new unidirectional stream, events
//! to the host through a bounded channel.
//!
//! No wait here depends on the host alone: events that must not be dropped
//! wait in the task (not in an `await`) while the host's queue is full,
//! and the task meanwhile stops reading the peer, so a host busy in
//! [`Link::send_frame`](super::Link::send_frame) is always answered. Every
//! other wait ends with the connection or a deadline (the close grace, the
//! frame deadline, the frame read timeout).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::endpoint::Slot;
use super::frames::{self, FrameInput, ObjectWrite};
use super::gate::{
    CHALLENGE_EXPORTER_LABEL, CloseRequest, PeerInfo, SessionControl, bind_challenge,
};
use super::link::{Command, Media, Role};
use super::reorder::{Payload, Reorder};
use super::stats::{Reporter, Shared};
use super::watchdog::{self, Watchdog};
use super::{DriverConfig, codes};
use crate::proto::{
    AuthDecision, CHALLENGE_LEN, CallError, CloseReason, DenyReason, Ended, Event, Message,
    Session, State, Transfers, Transmit,
};

/// Read size on the control stream.
const CONTROL_READ: usize = 64 * 1024;

/// Session ids of [`PeerInfo::session`].
static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// A fresh [`PeerInfo::session`] id.
pub(super) fn next_session_id() -> u64 {
    SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

pub(super) struct Driver {
    /// [`PeerInfo::session`].
    pub(super) session_id: u64,
    pub(super) conn: Connection,
    /// Complete frames held while older ones arrive.
    pub(super) reorder: Reorder,
    pub(super) shared: Arc<Shared>,
    pub(super) session: Session,
    pub(super) facility: String,
    pub(super) remote: SocketAddr,
    pub(super) role: Role,
    pub(super) config: DriverConfig,
    pub(super) control_tx: mpsc::Sender<Vec<u8>>,
    pub(super) events: mpsc::Sender<Event>,
    pub(super) control: SessionControl,
    pub(super) frames_tx: mpsc::Sender<FrameInput>,
    /// How the session ended, for the connection's close code.
    pub(super) ended: Option<(Ended, String)>,
    /// The peer stopped reading the control stream.
    pub(super) stalled: bool,
    /// Object id → its stream's writer.
    pub(super) objects: HashMap<u64, mpsc::UnboundedSender<ObjectWrite>>,
    /// `send_object_data` calls answered once their bytes are written.
    pub(super) flushes: Vec<(u64, oneshot::Sender<Result<(), CallError>>)>,
    pub(super) keep: Box<dyn FnOnce(Transfers) + Send>,
    pub(super) close_rx: watch::Receiver<Option<CloseRequest>>,
    /// Events that must not be dropped (open, close, object data…) waiting
    /// for room in the host's queue. While [`PENDING_MAX`] wait, the task
    /// stops reading what the peer sends (QUIC flow control then holds the
    /// peer back) but keeps serving the host's calls, the timer and close
    /// requests: a host busy in a call never waits on a task waiting on
    /// the host.
    pub(super) pending: VecDeque<Event>,
    /// A server link's place: given back when the task ends.
    pub(super) _slot: Option<Slot>,
}

impl Driver {
    pub(super) async fn run(
        mut self,
        mut recv: RecvStream,
        writer: JoinHandle<()>,
        mut commands: mpsc::Receiver<Command>,
        mut frames_rx: mpsc::Receiver<FrameInput>,
    ) {
        let mut buf = vec![0u8; CONTROL_READ];
        let mut control_open = true;
        let mut commands_open = true;
        let stats_every = self.config.stats_interval;
        let mut ticker = tokio::time::interval(stats_every.max(Duration::from_millis(1)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut reporter = Reporter::new(&self.shared);
        // Only a client can dial again: a server's links are not watched.
        let watch = matches!(self.role, Role::Client(_));
        let mut watchdog = Watchdog::new(Instant::now());
        let mut watch_tick = tokio::time::interval(watchdog::PERIOD);
        watch_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            self.pump();
            self.flush_objects();
            self.shared.set_frames(self.session.stats());
            if self.session.state() == State::Closed || self.stalled {
                break;
            }
            let timer = self.session.poll_timeout();
            let held = self
                .reorder
                .next_release()
                .map(tokio::time::Instant::from_std);
            let wake = tokio::time::Instant::from_std(
                timer.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)),
            );
            // The host is behind: read nothing more from the peer until it
            // catches up.
            let paused = self.pending.len() >= self.pending_max();
            let events = self.events.clone();
            tokio::select! {
                // Close requests and the timer first (a peer flooding the
                // link must not delay a revocation); then control data
                // before the connection's end (a peer's last message, Close,
                // must be read before its connection close is noticed).
                biased;
                Ok(()) = self.close_rx.changed() => self.close_requested(),
                permit = events.reserve(), if !self.pending.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(event) = self.pending.pop_front() {
                            permit.send(event);
                        }
                        self.flush_pending();
                    }
                    // The host dropped its handle: nobody to tell.
                    Err(_) => self.pending.clear(),
                },
                () = tokio::time::sleep_until(wake), if timer.is_some() => {
                    self.session.handle_timeout(Instant::now());
                }
                () = tokio::time::sleep_until(held.unwrap_or(wake)), if held.is_some() => {
                    self.release_frames(Instant::now());
                }
                _ = watch_tick.tick(), if watch && self.session.state() == State::Open => {
                    let stats = self.conn.stats();
                    let now = Instant::now();
                    if watchdog.check(now, stats.udp_rx.datagrams, &self.shared.progress, stats.path.rtt) {
                        self.session.close(
                            now,
                            CloseReason::Timeout,
                            "the connection is stuck after an outage (the peer is heard, \
                             nothing sent is acknowledged): dialling again",
                        );
                    }
                }
                _ = ticker.tick(), if !stats_every.is_zero() => {
                    let transport = reporter.next(&self.shared);
                    if self.session.state() == State::Open {
                        // Refused only if the session is not open.
                        let _ = self.session.send_link_stats(transport);
                    }
                }
                r = recv.read(&mut buf), if control_open && !paused => {
                    let now = Instant::now();
                    match r {
                        Ok(Some(n)) => self.session.handle_control_data(now, &buf[..n]),
                        Ok(None) => {
                            control_open = false;
                            self.session.close(
                                now,
                                CloseReason::ProtocolViolation,
                                "control stream finished before Close",
                            );
                        }
                        Err(e) => {
                            control_open = false;
                            self.lost(format!("control stream: {e}"));
                        }
                    }
                }
                s = self.conn.accept_uni(), if !paused => match s {
                    Ok(stream) => {
                        tokio::spawn(frames::receive(
                            stream,
                            self.config.session.max_frame_payload,
                            self.config.frame_read_timeout,
                            self.shared.frame_bytes.clone(),
                            self.frames_tx.clone(),
                        ));
                    }
                    Err(e) => {
                        if control_open {
                            self.drain_control(&mut recv, &mut buf).await;
                        }
                        self.lost(format!("connection: {e}"));
                    }
                },
                Some(input) = frames_rx.recv(), if !paused => self.on_frame_input(input),
                cmd = commands.recv(), if commands_open => match cmd {
                    Some(Command::SendFrame { header, payload, reply }) => {
                        let r = self.session.send_frame(Instant::now(), header, payload);
                        let _ = reply.send(r);
                    }
                    Some(Command::OfferObject { offer, reply }) => {
                        let _ = reply.send(self.session.offer_object(offer));
                    }
                    Some(Command::Media { msg, reply }) => {
                        let r = match msg {
                            Media::Meta(m) => self.session.send_frame_meta(m),
                            Media::Annotation(a) => self.session.send_annotation(a),
                            Media::Instructions(i) => self.session.send_instructions(i),
                        };
                        let _ = reply.send(r);
                    }
                    Some(Command::SendObjectData { id, offset, data, reply }) => {
                        match self.session.send_object_data(id, offset, &data) {
                            // Answered once written (after the next pump).
                            Ok(()) => self.flushes.push((id, reply)),
                            Err(e) => {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                    None => {
                        commands_open = false;
                        self.session.close(Instant::now(), CloseReason::Normal, "link dropped by host");
                    }
                },
            }
        }
        self.finish(writer).await;
    }

    /// Drains the session until it has nothing more to say.
    fn pump(&mut self) {
        loop {
            let mut progressed = false;
            let now = Instant::now();
            while let Some(t) = self.session.poll_transmit(now) {
                progressed = true;
                match t {
                    Transmit::Control(bytes) => {
                        if self.control_tx.try_send(bytes).is_err() {
                            self.stalled = true;
                        }
                    }
                    Transmit::Frame {
                        seq,
                        deadline,
                        header,
                        payload,
                        ..
                    } => {
                        tokio::spawn(frames::send(
                            self.conn.clone(),
                            self.shared.clone(),
                            seq,
                            deadline,
                            header,
                            payload,
                        ));
                    }
                    Transmit::Object { id, bytes } => {
                        let conn = &self.conn;
                        let shared = &self.shared;
                        let writer = self.objects.entry(id).or_insert_with(|| {
                            let (tx, rx) = mpsc::unbounded_channel();
                            tokio::spawn(frames::send_objects(conn.clone(), shared.clone(), rx));
                            tx
                        });
                        let _ = writer.send(ObjectWrite::Bytes(bytes));
                    }
                }
            }
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                self.on_event(event);
            }
            if !progressed {
                return;
            }
        }
    }

    /// Answers `send_object_data` calls once their object's writer has
    /// written what was queued before (into quinn's send buffer, bounded by
    /// [`DriverConfig::send_window`]): the host's pieces are backpressured
    /// instead of piling up in memory.
    fn flush_objects(&mut self) {
        for (id, reply) in self.flushes.drain(..) {
            let reply = match self.objects.get(&id) {
                Some(writer) => match writer.send(ObjectWrite::Flush(reply)) {
                    Ok(()) => continue,
                    Err(mpsc::error::SendError(ObjectWrite::Flush(reply))) => reply,
                    Err(_) => continue,
                },
                None => reply,
            };
            // No stream for it (not resumed yet, delivered, or the writer
            // ended with the connection): nothing to wait for.
            let _ = reply.send(Ok(()));
        }
    }

    fn peer_info(&self, hello: crate::proto::Hello) -> PeerInfo {
        PeerInfo {
            facility: self.facility.clone(),
            hello,
            remote: self.remote,
            session: self.session_id,
        }
    }

    /// The challenge bound to this TLS connection ([`bind_challenge`]), or
    /// `None` if no keying material can be exported.
    fn bound(&self, challenge: &[u8; CHALLENGE_LEN]) -> Option<[u8; CHALLENGE_LEN]> {
        let mut exporter = [0u8; 32];
        self.conn
            .export_keying_material(&mut exporter, CHALLENGE_EXPORTER_LABEL, challenge)
            .ok()?;
        Some(bind_challenge(challenge, &exporter))
    }

    fn on_event(&mut self, event: Event) {
        let now = Instant::now();
        match event {
            Event::AuthRequest {
                peer,
                challenge,
                tokens,
            } => {
                let decision = match &self.role {
                    Role::Server(_) if peer.site_id != self.facility => AuthDecision::Deny {
                        reason: DenyReason::Other,
                        detail: "site id does not match the facility certificate".into(),
                    },
                    Role::Server(gate) => match self.bound(&challenge) {
                        Some(bound) => gate.authorise(&self.peer_info(peer), &bound, &tokens),
                        None => AuthDecision::Deny {
                            reason: DenyReason::Other,
                            detail: "no TLS channel binding".into(),
                        },
                    },
                    Role::Client(_) => return,
                };
                // Only fails if the session is not awaiting a decision.
                let _ = self.session.authorise(now, decision);
            }
            Event::AuthChallenge { peer, challenge } => {
                let Role::Client(credentials) = &self.role else {
                    return;
                };
                if peer.site_id != self.facility {
                    self.session.close(
                        now,
                        CloseReason::ProtocolViolation,
                        "site id does not match the facility certificate",
                    );
                    return;
                }
                let Some(bound) = self.bound(&challenge) else {
                    self.session
                        .close(now, CloseReason::AuthDenied, "no TLS channel binding");
                    return;
                };
                let tokens = credentials.tokens(&peer, &bound);
                if let Err(e) = self.session.authenticate(now, tokens) {
                    let detail = format!("cannot present tokens: {e}");
                    self.session.close(now, CloseReason::AuthDenied, detail);
                }
            }
            Event::Open { peer } => {
                if let Role::Server(gate) = &self.role {
                    gate.opened(&self.peer_info(peer.clone()), self.control.clone());
                }
                self.deliver(Event::Open { peer });
            }
            Event::ObjectDelivered { id } | Event::ObjectRefused { id }
                if self.objects.contains_key(&id) =>
            {
                // Finishes the object's stream.
                self.objects.remove(&id);
                self.deliver(event);
            }
            Event::Closed { by, why, detail } => {
                self.ended = Some((why, detail.clone()));
                self.deliver(Event::Closed { by, why, detail });
            }
            Event::Frame(f) => {
                // Live data is worthless late: drop it rather than stall;
                // and the frames waiting for the host hold at most the
                // frame buffer budget.
                // Never around events still waiting (they go first).
                let len = f.payload.len();
                if !self.shared.queue_frame(len) {
                    return;
                }
                // The host that takes this frame sees it counted.
                self.shared.set_frames(self.session.stats());
                if !self.pending.is_empty() || self.events.try_send(Event::Frame(f)).is_err() {
                    self.shared.unqueue_frame(len, true);
                }
            }
            e @ (Event::FramesLost { .. } | Event::PeerFramesLost { .. } | Event::FrameMeta(_)) => {
                // Live data is worthless late: drop it rather than stall.
                if self.pending.is_empty() {
                    let _ = self.events.try_send(e);
                }
            }
            Event::PeerStats(s) => {
                self.shared.set_peer(s);
                if self.pending.is_empty() {
                    let _ = self.events.try_send(Event::PeerStats(s));
                }
            }
            other => self.deliver(other),
        }
    }

    /// Events waiting at most before the task stops reading the peer.
    fn pending_max(&self) -> usize {
        self.config.event_capacity.max(1)
    }

    /// Hands the host an event that must not be dropped: at once if there
    /// is room and nothing waits before it, else after the events waiting
    /// (the task's loop hands them over as the host makes room).
    fn deliver(&mut self, event: Event) {
        if self.pending.is_empty() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => self.pending.push_back(event),
                // The host dropped its handle.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        } else {
            self.pending.push_back(event);
        }
    }

    /// Hands over waiting events while there is room.
    fn flush_pending(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            match self.events.try_send(event) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(event)) => {
                    self.pending.push_front(event);
                    return;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    /// The session ended: the events still waiting (its `Closed` last)
    /// get until the close grace for the host to take them; a host that
    /// stopped reading does not hold the end.
    async fn flush_pending_bounded(&mut self) {
        let until = tokio::time::Instant::now() + self.config.close_grace;
        while let Some(event) = self.pending.pop_front() {
            match tokio::time::timeout_at(until, self.events.reserve()).await {
                Ok(Ok(permit)) => permit.send(event),
                _ => {
                    self.pending.clear();
                    return;
                }
            }
        }
    }

    fn close_requested(&mut self) {
        let req = self.close_rx.borrow_and_update().clone();
        if let Some(req) = req {
            self.session.close(Instant::now(), req.reason, req.detail);
        }
    }

    fn on_frame_input(&mut self, input: FrameInput) {
        let now = Instant::now();
        match input {
            FrameInput::Header(h) => {
                self.reorder.set_round_trip(self.conn.rtt());
                self.reorder.header(now, h.channel, h.seq, h.payload_len);
                self.session.handle_message(now, Message::FrameHeader(h))
            }
            FrameInput::Payload {
                channel,
                seq,
                data,
                permit,
            } => {
                self.shared.add_app_bytes(data.len());
                if let Some(payload) = self.reorder.complete(now, channel, seq, (data, permit)) {
                    self.feed_frame(now, channel, seq, payload);
                }
                self.release_frames(now);
            }
            FrameInput::Reset { channel, seq } => {
                self.reorder.ended(channel, seq);
                self.session.handle_frame_reset(now, channel, seq);
                self.release_frames(now);
            }
            FrameInput::Object(d) => {
                self.shared.add_app_bytes(d.data.len());
                self.session.handle_message(now, Message::ObjectData(d))
            }
            FrameInput::Violation(detail) => {
                self.session
                    .close(now, CloseReason::ProtocolViolation, detail)
            }
        }
    }

    /// Hands the session a whole frame payload.
    fn feed_frame(&mut self, now: Instant, channel: u16, seq: u64, payload: Payload) {
        let (data, permit) = payload;
        // The stream is read whole already: Continue/Stop is moot.
        let _ = self.session.handle_frame_payload(now, channel, seq, data);
        // The frame is settled (delivered as an event, or dropped): its
        // reader's share of the budget goes back.
        drop(permit);
    }

    /// Feeds the held frames that need not wait any more.
    fn release_frames(&mut self, now: Instant) {
        for (channel, seq, payload) in self.reorder.release(now) {
            self.feed_frame(now, channel, seq, payload);
        }
    }

    /// Feeds what the control stream still holds after the connection
    /// closed (reads fail at once once it is empty).
    async fn drain_control(&mut self, recv: &mut RecvStream, buf: &mut [u8]) {
        while self.session.state() != State::Closed {
            match recv.read(buf).await {
                Ok(Some(n)) => self.session.handle_control_data(Instant::now(), &buf[..n]),
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// The connection or the control stream is gone.
    fn lost(&mut self, detail: String) {
        self.control.mark_lost(&detail);
        self.session
            .close(Instant::now(), CloseReason::Shutdown, detail);
    }

    /// Lets the last control message out, then closes the connection.
    async fn finish(mut self, writer: JoinHandle<()>) {
        self.objects.clear();
        if self.stalled {
            self.session.close(
                Instant::now(),
                CloseReason::ProtocolViolation,
                "peer is not reading the control stream",
            );
            // Deliver the Closed event; nothing more can be written.
            while let Some(event) = self.session.poll_event() {
                self.on_event(event);
            }
            self.flush_pending_bounded().await;
            writer.abort();
            self.conn.close(
                VarInt::from_u32(codes::CONTROL_STALLED),
                b"control stream stalled",
            );
            (self.keep)(self.session.into_transfers());
            return;
        }
        self.flush_pending_bounded().await;
        let Driver {
            conn,
            session,
            control_tx,
            frames_tx,
            ended,
            config,
            keep,
            ..
        } = self;
        keep(session.into_transfers());
        drop(control_tx);
        drop(frames_tx);
        let grace = config.close_grace + Duration::from_millis(100);
        if tokio::time::timeout(grace, writer).await.is_err() {
            // The writer is stuck on a peer that does not read; closing the
            // connection below ends it.
        }
        let (code, reason) = match &ended {
            Some((why, _)) => codes::for_end(*why),
            None => (codes::NORMAL, "closed"),
        };
        conn.close(VarInt::from_u32(code), reason.as_bytes());
    }
}

/// Writes control messages in order; finishes the stream when the queue
/// closes and waits (bounded) for the peer to acknowledge it.
pub(super) async fn write_control(
    mut send: SendStream,
    mut rx: mpsc::Receiver<Vec<u8>>,
    grace: Duration,
) {
    while let Some(bytes) = rx.recv().await {
        if send.write_all(&bytes).await.is_err() {
            return;
        }
    }
    if send.finish().is_ok() {
        let _ = tokio::time::timeout(grace, send.stopped()).await;
    }
}
