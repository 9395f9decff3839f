//! One driven session: the task that runs a [`Session`] over a QUIC
//! connection, and the [`Link`] handle the host holds.
//!
//! The task owns the session and the clock. It feeds the session what
//! arrives (control stream bytes, frame stream headers, payloads and resets,
//! host calls, close requests, the timer), then drains it: control messages
//! go to a writer task through a bounded queue, each live frame to a task of
//! its own on a new unidirectional stream, events to the host through a
//! bounded channel.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use quinn::{Connection, RecvStream, SendStream, VarInt};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;

use super::frames::{self, FrameInput, ObjectWrite};
use super::gate::{
    CHALLENGE_EXPORTER_LABEL, CloseRequest, Credentials, Gate, PeerInfo, SessionControl,
    bind_challenge,
};
use super::reorder::{Payload, Reorder};
use super::stats::{LinkStatsSnapshot, Reporter, Shared};
use super::{DriverConfig, codes};
use crate::proto::{
    Annotation, AuthDecision, CHALLENGE_LEN, CallError, CloseReason, DenyReason, Ended, Event,
    FrameHeader, FrameMeta, Instructions, Message, ObjectOffer, Session, State, Transfers,
    Transmit,
};

/// Session ids of [`PeerInfo::session`].
static SESSIONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Control messages queued for the writer; a peer that leaves this many
/// unread is not reading and is disconnected.
const CONTROL_QUEUE: usize = 256;
/// Host calls queued for the session's task.
const COMMAND_QUEUE: usize = 16;
/// Read size on the control stream.
const CONTROL_READ: usize = 64 * 1024;

/// A refused call on a [`Link`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LinkError {
    /// The session refused the call (not open, payload mismatch…).
    #[error(transparent)]
    Call(#[from] CallError),
    /// The session has ended.
    #[error("the session has ended")]
    Ended,
}

/// Media messages the host sends on the control stream.
enum Media {
    Meta(FrameMeta),
    Annotation(Annotation),
    Instructions(Instructions),
}

enum Command {
    SendFrame {
        header: FrameHeader,
        payload: Vec<u8>,
        reply: oneshot::Sender<Result<u64, CallError>>,
    },
    OfferObject {
        offer: ObjectOffer,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    Media {
        msg: Media,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
    SendObjectData {
        id: u64,
        offset: u64,
        data: Vec<u8>,
        reply: oneshot::Sender<Result<(), CallError>>,
    },
}

/// Which end, with what it needs for authorisation.
pub(crate) enum Role {
    Server(Arc<dyn Gate>),
    Client(Arc<dyn Credentials>),
}

/// A session on a QUIC connection, as the host sees it. Dropping it closes
/// the session ([`CloseReason::Normal`]).
#[derive(Debug)]
pub struct Link {
    facility: String,
    remote: SocketAddr,
    commands: mpsc::Sender<Command>,
    control: SessionControl,
    events: mpsc::Receiver<Event>,
    /// The session's object transfers once its task ends (client links).
    transfers: Option<oneshot::Receiver<Transfers>>,
    shared: Arc<Shared>,
    // Keeps a client's own endpoint alive as long as its link.
    _endpoint: Option<quinn::Endpoint>,
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Command::SendFrame { payload, .. } => f
                .debug_struct("SendFrame")
                .field("payload_len", &payload.len())
                .finish(),
            Command::OfferObject { offer, .. } => f
                .debug_struct("OfferObject")
                .field("id", &offer.id)
                .finish(),
            Command::Media { msg, .. } => f.write_str(match msg {
                Media::Meta(_) => "Media(FrameMeta)",
                Media::Annotation(_) => "Media(Annotation)",
                Media::Instructions(_) => "Media(Instructions)",
            }),
            Command::SendObjectData {
                id, offset, data, ..
            } => f
                .debug_struct("SendObjectData")
                .field("id", id)
                .field("offset", offset)
                .field("len", &data.len())
                .finish(),
        }
    }
}

impl Link {
    /// The facility the peer's certificate names.
    pub fn facility(&self) -> &str {
        &self.facility
    }

    /// The peer's address.
    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The link's figures now: round trip, packets sent and lost, bytes
    /// each way (quinn's, for the whole connection), live frames sent,
    /// delivered, late and lost (the session's), and the peer's last report.
    /// Cheap (a lock and a copy); still valid after the session ended (the
    /// last figures).
    pub fn stats(&self) -> LinkStatsSnapshot {
        self.shared.snapshot()
    }

    /// A handle that closes the session from anywhere.
    pub fn control(&self) -> SessionControl {
        self.control.clone()
    }

    /// Queues a live frame (see [`Session::send_frame`]); returns its
    /// sequence number. It goes out on its own stream, newer frames first,
    /// and is reset if not delivered by the session's frame deadline.
    pub async fn send_frame(
        &self,
        header: FrameHeader,
        payload: Vec<u8>,
    ) -> Result<u64, LinkError> {
        let (reply, answer) = oneshot::channel();
        self.commands
            .send(Command::SendFrame {
                header,
                payload,
                reply,
            })
            .await
            .map_err(|_| LinkError::Ended)?;
        Ok(answer.await.map_err(|_| LinkError::Ended)??)
    }

    /// Offers a reliable object (see [`Session::offer_object`]); send its
    /// bytes from where [`Event::ObjectResume`] says.
    pub async fn offer_object(&self, offer: ObjectOffer) -> Result<(), LinkError> {
        let (reply, answer) = oneshot::channel();
        self.call(Command::OfferObject { offer, reply }).await?;
        Ok(answer.await.map_err(|_| LinkError::Ended)??)
    }

    /// Sends object bytes at `offset` (see [`Session::send_object_data`]).
    /// Returns once they are written into the connection's send buffer
    /// (at most [`DriverConfig::send_window`] unacknowledged): pass an object
    /// in pieces of a few MB, the next when this call returns.
    pub async fn send_object_data(
        &self,
        id: u64,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), LinkError> {
        let (reply, answer) = oneshot::channel();
        let cmd = Command::SendObjectData {
            id,
            offset,
            data,
            reply,
        };
        self.call(cmd).await?;
        Ok(answer.await.map_err(|_| LinkError::Ended)??)
    }

    /// Sends detection results for a frame (see [`Session::send_frame_meta`]).
    pub async fn send_frame_meta(&self, meta: FrameMeta) -> Result<(), LinkError> {
        self.media(Media::Meta(meta)).await
    }

    /// Sends an annotation (see [`Session::send_annotation`]).
    pub async fn send_annotation(&self, annotation: Annotation) -> Result<(), LinkError> {
        self.media(Media::Annotation(annotation)).await
    }

    /// Sends the signed set of the annotations sent before it (see
    /// [`Session::send_instructions`]).
    pub async fn send_instructions(&self, instructions: Instructions) -> Result<(), LinkError> {
        self.media(Media::Instructions(instructions)).await
    }

    async fn media(&self, msg: Media) -> Result<(), LinkError> {
        let (reply, answer) = oneshot::channel();
        self.call(Command::Media { msg, reply }).await?;
        Ok(answer.await.map_err(|_| LinkError::Ended)??)
    }

    async fn call(&self, cmd: Command) -> Result<(), LinkError> {
        self.commands.send(cmd).await.map_err(|_| LinkError::Ended)
    }

    /// Closes the session (if still open) and returns its object transfers
    /// once its task has ended, to resume them on the next connection
    /// ([`Client::resume`](super::Client::resume)). A server keeps its
    /// links' transfers itself, per facility: for a server link this
    /// returns none.
    pub async fn into_transfers(mut self) -> Transfers {
        let rx = self.transfers.take();
        drop(self);
        match rx {
            Some(rx) => rx.await.unwrap_or_default(),
            None => Transfers::new(),
        }
    }

    /// The next event: [`Event::Open`], frames, loss reports, …,
    /// [`Event::Closed`] last; `None` once the session's task has ended.
    /// Frames and loss reports the host leaves unread beyond
    /// [`DriverConfig::event_capacity`] are dropped, and frames beyond
    /// [`DriverConfig::frame_buffer_budget`] bytes
    /// ([`LinkStatsSnapshot::frames_unread`] counts them).
    pub async fn next_event(&mut self) -> Option<Event> {
        let event = self.events.recv().await;
        if let Some(Event::Frame(f)) = &event {
            self.shared.unqueue_frame(f.payload.len(), false);
        }
        event
    }

    /// The next event if one is waiting, without waiting (a sender that
    /// polls for loss reports between frames). `None` also once the
    /// session's task has ended.
    pub fn try_next_event(&mut self) -> Option<Event> {
        let event = self.events.try_recv().ok();
        if let Some(Event::Frame(f)) = &event {
            self.shared.unqueue_frame(f.payload.len(), false);
        }
        event
    }

    /// Events waiting for [`next_event`](Self::next_event) (a host falling
    /// behind sees it grow to [`DriverConfig::event_capacity`]).
    pub fn queued_events(&self) -> usize {
        self.events.len()
    }

    /// Closes the session normally.
    pub fn close(&self, detail: impl Into<String>) {
        self.control.close(CloseReason::Normal, detail);
    }
}

pub(crate) struct Setup {
    pub(crate) conn: Connection,
    pub(crate) send: SendStream,
    pub(crate) recv: RecvStream,
    pub(crate) session: Session,
    pub(crate) facility: String,
    pub(crate) role: Role,
    pub(crate) config: DriverConfig,
    pub(crate) endpoint: Option<quinn::Endpoint>,
    /// Where the session's transfers go when it ends.
    pub(crate) keep: Keep,
}

/// Where a session's object transfers go when it ends.
pub(crate) enum Keep {
    /// To the client's link ([`Link::into_transfers`]).
    Link,
    /// To the server's per-facility store.
    Store(Box<dyn FnOnce(Transfers) + Send>),
}

/// Starts the session's task; returns the host's handle.
pub(crate) fn spawn(setup: Setup) -> Link {
    let Setup {
        conn,
        send,
        recv,
        session,
        facility,
        role,
        config,
        endpoint,
        keep,
    } = setup;
    let (keep, transfers) = match keep {
        Keep::Link => {
            let (tx, rx) = oneshot::channel::<Transfers>();
            let store: Box<dyn FnOnce(Transfers) + Send> = Box::new(move |t| {
                let _ = tx.send(t);
            });
            (store, Some(rx))
        }
        Keep::Store(store) => (store, None),
    };
    let (control, close_rx) = SessionControl::new();
    let (events_tx, events) = mpsc::channel(config.event_capacity.max(1));
    let (commands, commands_rx) = mpsc::channel(COMMAND_QUEUE);
    let (control_tx, control_rx) = mpsc::channel(CONTROL_QUEUE);
    let (frames_tx, frames_rx) =
        mpsc::channel(2 * usize::try_from(config.max_concurrent_frames).unwrap_or(16));
    let writer = tokio::spawn(write_control(send, control_rx, config.close_grace));
    let remote = conn.remote_address();
    let shared = Arc::new(Shared::new(conn.clone(), config.effective_frame_budget()));
    let reorder = Reorder::new(config.frame_reorder_wait, config.session.frame_deadline);
    let driver = Driver {
        session_id: SESSIONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        reorder,
        shared: shared.clone(),
        conn,
        session,
        facility: facility.clone(),
        remote,
        role,
        config,
        control_tx,
        events: events_tx,
        control: control.clone(),
        frames_tx,
        ended: None,
        stalled: false,
        objects: HashMap::new(),
        flushes: Vec::new(),
        keep,
        close_rx,
        host_stalled: false,
    };
    tokio::spawn(driver.run(recv, writer, commands_rx, frames_rx));
    Link {
        facility,
        remote,
        commands,
        control,
        events,
        transfers,
        shared,
        _endpoint: endpoint,
    }
}

struct Driver {
    /// [`PeerInfo::session`].
    session_id: u64,
    conn: Connection,
    /// Complete frames held while older ones arrive.
    reorder: Reorder,
    shared: Arc<Shared>,
    session: Session,
    facility: String,
    remote: SocketAddr,
    role: Role,
    config: DriverConfig,
    control_tx: mpsc::Sender<Vec<u8>>,
    events: mpsc::Sender<Event>,
    control: SessionControl,
    frames_tx: mpsc::Sender<FrameInput>,
    /// How the session ended, for the connection's close code.
    ended: Option<(Ended, String)>,
    /// The peer stopped reading the control stream.
    stalled: bool,
    /// Object id → its stream's writer.
    objects: HashMap<u64, mpsc::UnboundedSender<ObjectWrite>>,
    /// `send_object_data` calls answered once their bytes are written.
    flushes: Vec<(u64, oneshot::Sender<Result<(), CallError>>)>,
    keep: Box<dyn FnOnce(Transfers) + Send>,
    close_rx: watch::Receiver<Option<CloseRequest>>,
    /// A close was requested while the host was not taking events: events
    /// no longer wait for room.
    host_stalled: bool,
}

impl Driver {
    async fn run(
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
        loop {
            self.pump().await;
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
            tokio::select! {
                // Close requests and the timer first (a peer flooding the
                // link must not delay a revocation); then control data
                // before the connection's end (a peer's last message, Close,
                // must be read before its connection close is noticed).
                biased;
                Ok(()) = self.close_rx.changed() => self.close_requested(),
                () = tokio::time::sleep_until(wake), if timer.is_some() => {
                    self.session.handle_timeout(Instant::now());
                }
                () = tokio::time::sleep_until(held.unwrap_or(wake)), if held.is_some() => {
                    self.release_frames(Instant::now());
                }
                _ = ticker.tick(), if !stats_every.is_zero() => {
                    let transport = reporter.next(&self.shared);
                    if self.session.state() == State::Open {
                        // Refused only if the session is not open.
                        let _ = self.session.send_link_stats(transport);
                    }
                }
                r = recv.read(&mut buf), if control_open => {
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
                s = self.conn.accept_uni() => match s {
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
                Some(input) = frames_rx.recv() => self.on_frame_input(input),
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
    async fn pump(&mut self) {
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
                            seq,
                            deadline,
                            header,
                            payload,
                        ));
                    }
                    Transmit::Object { id, bytes } => {
                        let conn = &self.conn;
                        let writer = self.objects.entry(id).or_insert_with(|| {
                            let (tx, rx) = mpsc::unbounded_channel();
                            tokio::spawn(frames::send_objects(conn.clone(), rx));
                            tx
                        });
                        let _ = writer.send(ObjectWrite::Bytes(bytes));
                    }
                }
            }
            while let Some(event) = self.session.poll_event() {
                progressed = true;
                self.on_event(event).await;
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

    async fn on_event(&mut self, event: Event) {
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
                self.deliver(Event::Open { peer }).await;
            }
            Event::ObjectDelivered { id } | Event::ObjectRefused { id }
                if self.objects.contains_key(&id) =>
            {
                // Finishes the object's stream.
                self.objects.remove(&id);
                self.deliver(event).await;
            }
            Event::Closed { by, why, detail } => {
                self.ended = Some((why, detail.clone()));
                self.deliver(Event::Closed { by, why, detail }).await;
            }
            Event::Frame(f) => {
                // Live data is worthless late: drop it rather than stall;
                // and the frames waiting for the host hold at most the
                // frame buffer budget.
                let len = f.payload.len();
                if !self.shared.queue_frame(len) {
                    return;
                }
                if self.events.try_send(Event::Frame(f)).is_err() {
                    self.shared.unqueue_frame(len, true);
                }
            }
            e @ (Event::FramesLost { .. } | Event::PeerFramesLost { .. } | Event::FrameMeta(_)) => {
                // Live data is worthless late: drop it rather than stall.
                let _ = self.events.try_send(e);
            }
            Event::PeerStats(s) => {
                self.shared.set_peer(s);
                let _ = self.events.try_send(Event::PeerStats(s));
            }
            other => {
                self.deliver(other).await;
            }
        }
    }

    /// Hands the host an event that must not be dropped (object data,
    /// open, close…), waiting for room: a slow host slows the link. A close
    /// request still gets through while waiting, and once the session has
    /// ended the wait is bounded by the close grace.
    async fn deliver(&mut self, event: Event) {
        if self.host_stalled {
            let _ = self.events.try_send(event);
            return;
        }
        if self.session.state() == State::Closed {
            // The end must not wait on a host that stopped reading.
            let grace = self.config.close_grace;
            if let Ok(Ok(permit)) = tokio::time::timeout(grace, self.events.reserve()).await {
                permit.send(event);
            }
            return;
        }
        let closing = tokio::select! {
            biased;
            permit = self.events.reserve() => {
                if let Ok(permit) = permit {
                    permit.send(event);
                }
                return;
            }
            Ok(()) = self.close_rx.changed() => true,
        };
        if closing {
            self.host_stalled = true;
            self.close_requested();
            let _ = self.events.try_send(event);
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
                self.on_event(event).await;
            }
            writer.abort();
            self.conn.close(
                VarInt::from_u32(codes::CONTROL_STALLED),
                b"control stream stalled",
            );
            (self.keep)(self.session.into_transfers());
            return;
        }
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
async fn write_control(mut send: SendStream, mut rx: mpsc::Receiver<Vec<u8>>, grace: Duration) {
    while let Some(bytes) = rx.recv().await {
        if send.write_all(&bytes).await.is_err() {
            return;
        }
    }
    if send.finish().is_ok() {
        let _ = tokio::time::timeout(grace, send.stopped()).await;
    }
}
