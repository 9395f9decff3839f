//! One driven session: the [`Link`] handle the host holds, and the start of
//! the task ([`task`](super::task)) that runs its [`Session`] over a QUIC
//! connection. The task owns the session and the clock; the handle talks to
//! it through bounded queues.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;

use quinn::{Connection, RecvStream, SendStream};
use tokio::sync::{mpsc, oneshot};

use super::budget::Overall;
use super::endpoint::Slot;
use super::gate::{Credentials, Gate, SessionControl};
use super::reorder::Reorder;
use super::stats::{LinkStatsSnapshot, Shared};
use super::{DriverConfig, task};
use crate::proto::{
    Annotation, CallError, CloseReason, Event, FrameHeader, FrameMeta, Instructions, ObjectOffer,
    Session, Transfers,
};

/// Control messages queued for the writer; a peer that leaves this many
/// unread is not reading and is disconnected.
const CONTROL_QUEUE: usize = 256;
/// Host calls queued for the session's task.
const COMMAND_QUEUE: usize = 16;

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
pub(super) enum Media {
    Meta(FrameMeta),
    Annotation(Annotation),
    Instructions(Instructions),
}

pub(super) enum Command {
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
    sender: LinkSender,
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

/// Sends on a [`Link`] from another task; cheap to clone. Every call is
/// answered by the session's task without waiting on the link's events
/// being read; once the session has ended calls fail with
/// [`LinkError::Ended`]. It does not keep the session open: dropping the
/// [`Link`] closes it.
#[derive(Debug, Clone)]
pub struct LinkSender {
    commands: mpsc::Sender<Command>,
}

impl LinkSender {
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

    /// A handle to send on this link from another task (a sender that
    /// streams an object while its loop sends frames and reads events).
    pub fn sender(&self) -> LinkSender {
        self.sender.clone()
    }

    /// Queues a live frame (see [`LinkSender::send_frame`]).
    pub async fn send_frame(
        &self,
        header: FrameHeader,
        payload: Vec<u8>,
    ) -> Result<u64, LinkError> {
        self.sender.send_frame(header, payload).await
    }

    /// Offers a reliable object (see [`LinkSender::offer_object`]).
    pub async fn offer_object(&self, offer: ObjectOffer) -> Result<(), LinkError> {
        self.sender.offer_object(offer).await
    }

    /// Sends object bytes at `offset` (see [`LinkSender::send_object_data`]).
    pub async fn send_object_data(
        &self,
        id: u64,
        offset: u64,
        data: Vec<u8>,
    ) -> Result<(), LinkError> {
        self.sender.send_object_data(id, offset, data).await
    }

    /// Sends detection results for a frame (see [`Session::send_frame_meta`]).
    pub async fn send_frame_meta(&self, meta: FrameMeta) -> Result<(), LinkError> {
        self.sender.send_frame_meta(meta).await
    }

    /// Sends an annotation (see [`Session::send_annotation`]).
    pub async fn send_annotation(&self, annotation: Annotation) -> Result<(), LinkError> {
        self.sender.send_annotation(annotation).await
    }

    /// Sends the signed set of the annotations sent before it (see
    /// [`Session::send_instructions`]).
    pub async fn send_instructions(&self, instructions: Instructions) -> Result<(), LinkError> {
        self.sender.send_instructions(instructions).await
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

impl Drop for Link {
    fn drop(&mut self) {
        // Senders may outlive the link; the session must not.
        self.control
            .close(CloseReason::Normal, "link dropped by host");
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
    /// A server's overall frame budget.
    pub(crate) overall: Option<Arc<Overall>>,
    /// A server link's place, given back when the task ends.
    pub(crate) slot: Option<Slot>,
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
        overall,
        slot,
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
    let writer = tokio::spawn(task::write_control(send, control_rx, config.close_grace));
    let remote = conn.remote_address();
    let shared = Arc::new(Shared::new(
        conn.clone(),
        config.effective_frame_budget(),
        overall,
    ));
    let reorder = Reorder::new(config.frame_reorder_wait, config.session.frame_deadline);
    let driver = task::Driver {
        session_id: task::next_session_id(),
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
        pending: VecDeque::new(),
        _slot: slot,
    };
    tokio::spawn(driver.run(recv, writer, commands_rx, frames_rx));
    Link {
        facility,
        remote,
        sender: LinkSender { commands },
        control,
        events,
        transfers,
        shared,
        _endpoint: endpoint,
    }
}
