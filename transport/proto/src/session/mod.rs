//! One end of a med8k session, as a state machine without I/O.
//!
//! # States
//! ```text
//!  Hello ──(Hello/HelloAck)──► Authorising ──(gate permits)──► Open ──► Closed
//!    │                              │                            │
//!    └── reject, timeout ───────────┴── deny, timeout ───────────┴── close, revoke,
//!                                                                    protocol violation
//! ```
//! - The **client** sends [`Hello`]; the server answers [`HelloAck`] with a
//!   challenge its host chose. The client's host signs tokens over the
//!   challenge ([`Event::AuthChallenge`] → [`Session::authenticate`]).
//! - The **server**'s host holds the consent [gate](Event::AuthRequest) and
//!   answers with [`Session::authorise`]. Only a permit opens the session.
//! - Until [`Event::Open`], no media moves in either direction: local sends
//!   are refused with [`CallError::NotOpen`], and a media message from the
//!   peer is a protocol violation that closes the session.
//! - Either end may close at any time; [`Session::revoke`] is the gate
//!   withdrawing consent. Closing drops every frame, object byte and media
//!   message not yet handed to the driver; only the closing message goes out.
//!
//! # Driving it (as quinn-proto)
//! The host owns the clock and the sockets. After creating a session, and
//! after any call that feeds it:
//! 1. feed what arrived: [`handle_control_data`](Session::handle_control_data)
//!    (or [`handle_message`](Session::handle_message) for decoded messages),
//!    [`handle_frame_payload`](Session::handle_frame_payload) /
//!    [`handle_frame_reset`](Session::handle_frame_reset) for live frame
//!    streams, and [`handle_timeout`](Session::handle_timeout) when the timer
//!    fires;
//! 2. drain [`poll_transmit`](Session::poll_transmit) until `None` and write
//!    each [`Transmit`] to its stream;
//! 3. drain [`poll_event`](Session::poll_event) until `None`;
//! 4. arm the timer at [`poll_timeout`](Session::poll_timeout).
//!
//! `now` is always an argument: tests run two sessions under a simulated
//! clock (see `proto/tests`).
//!
//! # Streams the driver maps transmits onto
//! - [`Transmit::Control`]: one ordered reliable stream per session.
//! - [`Transmit::Frame`]: a new unidirectional stream per frame (header
//!   message, then payload), reset if its deadline passes before it is sent.
//! - [`Transmit::Object`]: an ordered reliable stream for object data.

mod config;
mod error;
mod event;
mod live;
mod objects;

use std::borrow::Cow;
use std::collections::VecDeque;
use std::fmt;
use std::time::Instant;

pub use config::Config;
pub use error::{CallError, SessionError};
pub use event::{
    ClosedBy, Ended, Event, FrameStream, ReceivedFrame, SessionStats, Transmit, TransportStats,
};
pub use objects::{IncomingProgress, OutgoingProgress, Transfers};

use super::codec::{self, MessageReader};
use super::error::ProtoError;
use super::message::*;
use live::{LiveRx, LiveTx};
/// Which end of the session this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// Opened the connection; presents tokens.
    Client,
    /// Accepted the connection; holds the consent gate.
    Server,
}

/// Where the session stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum State {
    /// Exchanging [`Hello`] and [`HelloAck`].
    Hello,
    /// Waiting for tokens, the gate's decision, or its result.
    Authorising,
    /// The gate permitted: media flows.
    Open,
    /// Ended; nothing more is accepted or sent.
    Closed,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::Hello => "Hello",
            State::Authorising => "Authorising",
            State::Open => "Open",
            State::Closed => "Closed",
        })
    }
}

/// What the session has to say: events for the host, messages for the
/// control and object streams.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    events: VecDeque<Event>,
    control: VecDeque<Message>,
    objects: VecDeque<(u64, Message)>,
}

/// One end of a session. See the [module documentation](self) for the
/// states and the call order.
#[derive(Debug)]
pub struct Session {
    side: Side,
    config: Config,
    state: State,
    local: Hello,
    peer: Option<Hello>,
    challenge: Option<[u8; CHALLENGE_LEN]>,
    handshake_deadline: Instant,
    /// Client: tokens sent. Server: tokens received.
    auth_seen: bool,
    /// Server: the gate's decision is awaited.
    auth_pending: bool,
    reader: MessageReader,
    out: Outbox,
    live_rx: LiveRx,
    live_tx: LiveTx,
    transfers: Transfers,
    reported_lost: u64,
}

impl Session {
    /// A client session; its [`Hello`] is queued at once.
    pub fn client(now: Instant, config: Config, local: Hello) -> Result<Session, ProtoError> {
        let mut s = Session::new(Side::Client, now, config, local)?;
        s.out.control.push_back(Message::Hello(s.local.clone()));
        Ok(s)
    }

    /// A server session. `challenge` must be fresh random bytes (the core
    /// has no randomness); tokens are signed over it.
    pub fn server(
        now: Instant,
        config: Config,
        local: Hello,
        challenge: [u8; CHALLENGE_LEN],
    ) -> Result<Session, ProtoError> {
        let mut s = Session::new(Side::Server, now, config, local)?;
        s.challenge = Some(challenge);
        Ok(s)
    }

    fn new(side: Side, now: Instant, config: Config, local: Hello) -> Result<Session, ProtoError> {
        Message::Hello(local.clone()).validate()?;
        Ok(Session {
            side,
            handshake_deadline: now + config.handshake_timeout,
            config,
            state: State::Hello,
            local,
            peer: None,
            challenge: None,
            auth_seen: false,
            auth_pending: false,
            reader: MessageReader::new(),
            out: Outbox::default(),
            live_rx: LiveRx::default(),
            live_tx: LiveTx::default(),
            transfers: Transfers::new(),
            reported_lost: 0,
        })
    }

    /// Carries object transfers over from an earlier session on the same
    /// link; they are offered again when this one opens.
    pub fn with_transfers(mut self, transfers: Transfers) -> Session {
        self.transfers = transfers;
        self
    }

    /// The object transfers, to hand to the next session after this one ends.
    pub fn into_transfers(mut self) -> Transfers {
        self.transfers.session_closed();
        self.transfers
    }

    /// Object transfers in progress.
    pub fn transfers(&self) -> &Transfers {
        &self.transfers
    }

    /// This end.
    pub fn side(&self) -> Side {
        self.side
    }

    /// Where the session stands.
    pub fn state(&self) -> State {
        self.state
    }

    /// The peer's hello, once received.
    pub fn peer(&self) -> Option<&Hello> {
        self.peer.as_ref()
    }

    /// Frame counters.
    pub fn stats(&self) -> SessionStats {
        let rx = self.live_rx.counters;
        let tx = self.live_tx.counters;
        SessionStats {
            frames_sent: tx.sent,
            frames_cancelled: tx.cancelled,
            frames_reported_lost: self.reported_lost,
            frames_delivered: rx.delivered,
            frames_lost: rx.lost,
            frames_late: rx.late,
            frames_duplicate: rx.duplicate,
            frames_corrupt: rx.corrupt,
        }
    }

    /// Frames and gaps the receiving side tracks (memory bound checks).
    #[cfg(test)]
    pub(crate) fn tracked_frames(&self) -> usize {
        self.live_rx.tracked()
    }

    // -- feeding ------------------------------------------------------------

    /// Bytes from the control stream (or an object stream): decoded and
    /// handled message by message. Bytes that do not decode close the
    /// session.
    pub fn handle_control_data(&mut self, now: Instant, data: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        self.reader.push(data);
        loop {
            match self.reader.next_message() {
                Ok(Some(msg)) => {
                    self.handle_message(now, msg);
                    if self.state == State::Closed {
                        return;
                    }
                }
                Ok(None) => return,
                Err(e) => return self.violation(SessionError::Malformed(e)),
            }
        }
    }

    /// A decoded message from the peer.
    pub fn handle_message(&mut self, now: Instant, msg: Message) {
        if self.state == State::Closed {
            return;
        }
        let ty = msg.message_type();
        if let Message::Close(c) = msg {
            return self.closed(ClosedBy::Peer, Ended::Close(c.reason), c.detail);
        }
        if self.state != State::Open && (ty.is_media() || ty == MessageType::LinkStats) {
            return self.violation(SessionError::MediaBeforePermit {
                ty,
                state: self.state,
            });
        }
        match (self.state, self.side, msg) {
            (State::Hello, Side::Server, Message::Hello(h)) => self.on_hello(h),
            (State::Hello, Side::Client, Message::HelloAck(a)) => self.on_hello_ack(a),
            (State::Hello, Side::Client, Message::HelloReject(r)) => {
                self.closed(ClosedBy::Peer, Ended::Rejected(r.reason), r.detail)
            }
            (State::Authorising, Side::Server, Message::Auth(a)) if !self.auth_seen => {
                self.auth_seen = true;
                self.auth_pending = true;
                self.out.events.push_back(Event::AuthRequest {
                    peer: self.peer.clone().unwrap_or_else(|| self.local.clone()),
                    challenge: self.challenge.unwrap_or_default(),
                    tokens: a.tokens,
                });
            }
            (State::Authorising, Side::Client, Message::AuthResult(d)) if self.auth_seen => match d
            {
                AuthDecision::Permit => self.open(),
                AuthDecision::Deny { reason, detail } => {
                    self.closed(ClosedBy::Peer, Ended::Denied(reason), detail)
                }
            },
            (State::Open, _, msg) => self.on_open_message(now, msg),
            (state, side, _) => self.violation(SessionError::Unexpected { ty, state, side }),
        }
        self.flush_lost();
    }

    fn on_hello(&mut self, h: Hello) {
        if h.version != PROTOCOL_VERSION {
            self.out
                .control
                .push_back(Message::HelloReject(HelloReject {
                    reason: RejectReason::UnsupportedVersion,
                    supported_version: PROTOCOL_VERSION,
                    detail: format!("this site speaks protocol version {PROTOCOL_VERSION}"),
                }));
            let detail = format!("peer speaks protocol version {}", h.version);
            return self.closed(
                ClosedBy::Local,
                Ended::Rejected(RejectReason::UnsupportedVersion),
                detail,
            );
        }
        self.out.control.push_back(Message::HelloAck(HelloAck {
            site: self.local.clone(),
            challenge: self.challenge.unwrap_or_default(),
        }));
        self.peer = Some(h);
        self.state = State::Authorising;
    }

    fn on_hello_ack(&mut self, a: HelloAck) {
        if a.site.version != PROTOCOL_VERSION {
            return self.violation(SessionError::Version {
                peer: a.site.version,
                local: PROTOCOL_VERSION,
            });
        }
        self.challenge = Some(a.challenge);
        self.out.events.push_back(Event::AuthChallenge {
            peer: a.site.clone(),
            challenge: a.challenge,
        });
        self.peer = Some(a.site);
        self.state = State::Authorising;
    }

    fn on_open_message(&mut self, now: Instant, msg: Message) {
        let result = match msg {
            Message::FrameHeader(h) => match self.live_rx.handle_header(now, h, &self.config) {
                Ok(Some(frame)) => {
                    self.out.events.push_back(Event::Frame(frame));
                    Ok(())
                }
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            },
            Message::FrameMeta(m) => {
                self.out.events.push_back(Event::FrameMeta(m));
                Ok(())
            }
            Message::FramesLost(l) => match self.live_tx.check_reported(l.channel, &l.ranges) {
                Ok(n) => {
                    self.reported_lost = self.reported_lost.saturating_add(n);
                    self.out.events.push_back(Event::PeerFramesLost {
                        channel: l.channel,
                        ranges: l.ranges,
                    });
                    Ok(())
                }
                Err(e) => Err(e),
            },
            Message::Annotation(a) => {
                self.out.events.push_back(Event::Annotation(a));
                Ok(())
            }
            Message::Instructions(i) => {
                self.out.events.push_back(Event::Instructions(i));
                Ok(())
            }
            Message::LinkStats(s) => {
                self.out.events.push_back(Event::PeerStats(s));
                Ok(())
            }
            Message::ObjectOffer(o) => {
                self.transfers.handle_offer(o, &self.config, &mut self.out);
                Ok(())
            }
            Message::ObjectAck(a) => self.transfers.handle_ack(a, &mut self.out),
            Message::ObjectData(d) => self.transfers.handle_data(d, &self.config, &mut self.out),
            other => Err(SessionError::Unexpected {
                ty: other.message_type(),
                state: self.state,
                side: self.side,
            }),
        };
        if let Err(e) = result {
            self.violation(e);
        }
    }

    /// Payload bytes of live frame `channel`/`seq`, in stream order, after
    /// its header went through [`handle_message`](Self::handle_message).
    pub fn handle_frame_payload<'a>(
        &mut self,
        _now: Instant,
        channel: u16,
        seq: u64,
        data: impl Into<Cow<'a, [u8]>>,
    ) -> FrameStream {
        if self.state != State::Open {
            return FrameStream::Stop;
        }
        let status = match self.live_rx.handle_payload(channel, seq, data.into()) {
            Ok((status, frame)) => {
                if let Some(frame) = frame {
                    self.out.events.push_back(Event::Frame(frame));
                }
                status
            }
            Err(e) => {
                self.violation(e);
                FrameStream::Stop
            }
        };
        self.flush_lost();
        status
    }

    /// The peer reset live frame `channel`/`seq`'s stream (it missed its
    /// deadline there): the frame is lost.
    pub fn handle_frame_reset(&mut self, _now: Instant, channel: u16, seq: u64) {
        if self.state != State::Open {
            return;
        }
        self.live_rx.handle_reset(channel, seq);
        self.flush_lost();
    }

    /// The timer set from [`poll_timeout`](Self::poll_timeout) fired (calling
    /// it early or late is harmless).
    pub fn handle_timeout(&mut self, now: Instant) {
        match self.state {
            State::Hello | State::Authorising if now >= self.handshake_deadline => {
                self.close_with(
                    Ended::Close(CloseReason::Timeout),
                    format!(
                        "not authorised within {} ms",
                        self.config.handshake_timeout.as_millis()
                    ),
                );
            }
            State::Open => {
                self.live_rx.handle_timeout(now);
                self.live_tx.handle_timeout(now);
                self.flush_lost();
            }
            _ => {}
        }
    }

    // -- draining -----------------------------------------------------------

    /// The next bytes to write: control messages first, then live frames
    /// newest first (expired ones are cancelled), then object data.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        while let Some(msg) = self.out.control.pop_front() {
            match codec::encode_to_vec(&msg) {
                Ok(bytes) => return Some(Transmit::Control(bytes)),
                // Every queued message was validated or built valid.
                Err(e) => debug_assert!(false, "queued an invalid message: {e}"),
            }
        }
        if let Some(t) = self.live_tx.poll(now) {
            return Some(t);
        }
        while let Some((id, msg)) = self.out.objects.pop_front() {
            match codec::encode_to_vec(&msg) {
                Ok(bytes) => return Some(Transmit::Object { id, bytes }),
                Err(e) => debug_assert!(false, "queued an invalid message: {e}"),
            }
        }
        None
    }

    /// The next event for the host.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.out.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            State::Hello | State::Authorising => Some(self.handshake_deadline),
            State::Open => [self.live_rx.next_deadline(), self.live_tx.next_deadline()]
                .into_iter()
                .flatten()
                .min(),
            State::Closed => None,
        }
    }

    // -- calls --------------------------------------------------------------

    /// Client: presents tokens signed over the challenge of
    /// [`Event::AuthChallenge`].
    pub fn authenticate(&mut self, _now: Instant, tokens: Vec<Token>) -> Result<(), CallError> {
        if self.side != Side::Client || self.state != State::Authorising || self.auth_seen {
            return Err(self.wrong_state("authenticate"));
        }
        let msg = Message::Auth(Auth { tokens });
        msg.validate()?;
        self.auth_seen = true;
        self.out.control.push_back(msg);
        Ok(())
    }

    /// Server: the gate's answer to [`Event::AuthRequest`]. A permit opens
    /// the session; a denial ends it.
    pub fn authorise(&mut self, _now: Instant, decision: AuthDecision) -> Result<(), CallError> {
        if self.side != Side::Server || self.state != State::Authorising || !self.auth_pending {
            return Err(self.wrong_state("authorise"));
        }
        let decision = match decision {
            AuthDecision::Deny { reason, detail } => AuthDecision::Deny {
                reason,
                detail: bounded_detail(detail),
            },
            permit => permit,
        };
        self.auth_pending = false;
        self.out
            .control
            .push_back(Message::AuthResult(decision.clone()));
        match decision {
            AuthDecision::Permit => self.open(),
            AuthDecision::Deny { reason, detail } => {
                self.closed(ClosedBy::Local, Ended::Denied(reason), detail)
            }
        }
        Ok(())
    }

    /// Queues a live frame. The session fills in `header.seq` (the channel's
    /// next number, returned) and `header.payload_len`; the payload must
    /// match the slice table if there is one. Frames still queued at their
    /// deadline are cancelled; beyond
    /// [`max_tracked_frames`](Config::max_tracked_frames) queued on the
    /// channel, the oldest is.
    pub fn send_frame(
        &mut self,
        now: Instant,
        mut header: FrameHeader,
        payload: Vec<u8>,
    ) -> Result<u64, CallError> {
        self.require_open()?;
        let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        if !header.slices.is_empty() {
            let slices: u64 = header.slices.iter().map(|s| u64::from(s.len)).sum();
            if slices != payload.len() as u64 {
                return Err(CallError::PayloadMismatch {
                    len: payload.len(),
                    slices,
                });
            }
        }
        header.seq = self.live_tx.next_seq(header.channel);
        header.payload_len = len;
        let seq = header.seq;
        let channel = header.channel;
        let bytes = codec::encode_to_vec(&Message::FrameHeader(header))?;
        self.live_tx.queue(
            channel,
            seq,
            now + self.config.frame_deadline,
            bytes,
            payload,
            self.config.max_tracked_frames,
        );
        Ok(seq)
    }

    /// Sends detection results for a frame. The quality extension goes only
    /// to a peer that announced [`Capabilities::QUALITY`]; it is dropped for
    /// older peers, whose decoders would refuse the extra bytes.
    pub fn send_frame_meta(&mut self, mut meta: FrameMeta) -> Result<(), CallError> {
        let reads_quality = self
            .peer
            .as_ref()
            .is_some_and(|p| p.capabilities.contains(Capabilities::QUALITY));
        if !reads_quality {
            meta.quality = None;
        }
        self.send_media(Message::FrameMeta(meta))
    }

    /// Sends an annotation.
    pub fn send_annotation(&mut self, annotation: Annotation) -> Result<(), CallError> {
        self.send_media(Message::Annotation(annotation))
    }

    /// Sends the signed set of the annotations sent before it.
    pub fn send_instructions(&mut self, instructions: Instructions) -> Result<(), CallError> {
        self.send_media(Message::Instructions(instructions))
    }

    /// Sends link statistics: the driver's transport figures with this end's
    /// frame counters.
    pub fn send_link_stats(&mut self, transport: TransportStats) -> Result<(), CallError> {
        self.require_open()?;
        let rx = self.live_rx.counters;
        let msg = Message::LinkStats(LinkStats {
            rtt_us: u32::try_from(transport.rtt.as_micros()).unwrap_or(u32::MAX),
            loss_ppm: transport.loss_ppm.min(1_000_000),
            goodput_bps: transport.goodput_bps,
            frames_delivered: rx.delivered,
            frames_late: rx.late,
            frames_lost: rx.lost,
        });
        self.out.control.push_back(msg);
        Ok(())
    }

    /// Offers a reliable object. Before the session opens the offer is kept
    /// and made on opening; [`Event::ObjectResume`] says when to send what.
    /// Offering again the same object (same id, kind, size, digest) is
    /// allowed.
    pub fn offer_object(&mut self, offer: ObjectOffer) -> Result<(), CallError> {
        if self.state == State::Closed {
            return Err(CallError::NotOpen { state: self.state });
        }
        Message::ObjectOffer(offer).validate()?;
        let open = self.state == State::Open;
        match self.transfers.offer(offer, open) {
            Ok(true) => self.out.control.push_back(Message::ObjectOffer(offer)),
            Ok(false) => {}
            Err(objects::ObjectClash) => return Err(CallError::ObjectClash { id: offer.id }),
        }
        Ok(())
    }

    /// Queues object bytes at `offset` (cut into [`MAX_CHUNK_LEN`] messages),
    /// after [`Event::ObjectResume`] said where to start.
    pub fn send_object_data(&mut self, id: u64, offset: u64, data: &[u8]) -> Result<(), CallError> {
        self.require_open()?;
        if let Err(e) = self.transfers.check_send(id, offset, data.len()) {
            return Err(match e {
                objects::SendCheck::Unknown => CallError::UnknownObject { id },
                objects::SendCheck::NotResumed => CallError::NotResumed { id },
                objects::SendCheck::Range { size } => CallError::ObjectRange {
                    id,
                    offset,
                    len: data.len(),
                    size,
                },
            });
        }
        let mut at = offset;
        for chunk in data.chunks(MAX_CHUNK_LEN) {
            self.out.objects.push_back((
                id,
                Message::ObjectData(ObjectData {
                    id,
                    offset: at,
                    data: chunk.to_vec(),
                }),
            ));
            at += chunk.len() as u64;
        }
        self.transfers.sent(id, at);
        Ok(())
    }

    /// Ends the session: everything not yet handed to the driver is dropped
    /// and a [`Close`] goes out. Closing a closed session does nothing.
    pub fn close(&mut self, _now: Instant, reason: CloseReason, detail: impl Into<String>) {
        if self.state != State::Closed {
            self.close_with(Ended::Close(reason), detail.into());
        }
    }

    /// The gate withdraws consent: closes with [`CloseReason::ConsentRevoked`].
    pub fn revoke(&mut self, now: Instant, detail: impl Into<String>) {
        self.close(now, CloseReason::ConsentRevoked, detail);
    }

    // -- internals ----------------------------------------------------------

    fn require_open(&self) -> Result<(), CallError> {
        if self.state == State::Open {
            Ok(())
        } else {
            Err(CallError::NotOpen { state: self.state })
        }
    }

    fn wrong_state(&self, call: &'static str) -> CallError {
        CallError::WrongState {
            call,
            side: self.side,
            state: self.state,
        }
    }

    fn send_media(&mut self, msg: Message) -> Result<(), CallError> {
        self.require_open()?;
        msg.validate()?;
        self.out.control.push_back(msg);
        Ok(())
    }

    fn open(&mut self) {
        self.state = State::Open;
        self.out.events.push_back(Event::Open {
            peer: self.peer.clone().unwrap_or_else(|| self.local.clone()),
        });
        self.transfers.reoffer_all(&mut self.out);
    }

    /// Reports losses to the host and the peer.
    fn flush_lost(&mut self) {
        for (channel, ranges) in self.live_rx.take_lost() {
            if self.state == State::Open {
                for part in ranges.chunks(MAX_LOST_RANGES) {
                    self.out.control.push_back(Message::FramesLost(FramesLost {
                        channel,
                        ranges: part.to_vec(),
                    }));
                }
            }
            self.out
                .events
                .push_back(Event::FramesLost { channel, ranges });
        }
    }

    fn violation(&mut self, e: SessionError) {
        let detail = e.to_string();
        self.out.events.push_back(Event::Error(e));
        self.close_with(Ended::Close(CloseReason::ProtocolViolation), detail);
    }

    /// Closes from this end, sending a [`Close`].
    fn close_with(&mut self, why: Ended, detail: String) {
        let detail = bounded_detail(detail);
        let reason = match why {
            Ended::Close(r) => r,
            Ended::Rejected(_) | Ended::Denied(_) => CloseReason::AuthDenied,
        };
        // Nothing queued may leave after a close: media must not outlive
        // consent, and the peer ignores everything after Close anyway.
        self.out.control.clear();
        self.out.control.push_back(Message::Close(Close {
            reason,
            detail: detail.clone(),
        }));
        self.closed(ClosedBy::Local, why, detail);
    }

    /// Enters `Closed`; keeps only control messages already queued (the
    /// closing message, a rejection or a denial).
    fn closed(&mut self, by: ClosedBy, why: Ended, detail: String) {
        self.state = State::Closed;
        self.live_tx.clear();
        self.out.objects.clear();
        self.out.control.retain(|m| !m.message_type().is_media());
        self.transfers.session_closed();
        self.flush_lost();
        self.out.events.push_back(Event::Closed { by, why, detail });
    }
}

/// Cuts free text to [`MAX_DETAIL_LEN`] bytes at a character boundary.
fn bounded_detail(mut s: String) -> String {
    if s.len() > MAX_DETAIL_LEN {
        let mut end = MAX_DETAIL_LEN;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}
