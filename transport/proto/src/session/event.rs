//! What a session hands its host: events, bytes to transmit, counters.

use std::fmt;
use std::time::{Duration, Instant};

use crate::message::*;

use super::SessionError;

/// Which end ended the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClosedBy {
    /// This end (a call, a timeout, or a violation by the peer).
    Local,
    /// The peer.
    Peer,
}

/// Why the session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Ended {
    /// A [`Close`] (sent or received).
    Close(CloseReason),
    /// The server refused the [`Hello`].
    Rejected(RejectReason),
    /// The gate denied the session.
    Denied(DenyReason),
}

/// A live frame delivered whole, its slices' CRCs checked.
#[derive(Clone, PartialEq, Eq)]
pub struct ReceivedFrame {
    /// Its header.
    pub header: FrameHeader,
    /// Its payload, `header.payload_len` bytes.
    pub payload: Vec<u8>,
}

impl fmt::Debug for ReceivedFrame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReceivedFrame")
            .field("channel", &self.header.channel)
            .field("seq", &self.header.seq)
            .field("payload_len", &self.payload.len())
            .finish()
    }
}

/// Something the host must know or act on.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// Client: the server answered; sign tokens over `challenge` and call
    /// [`Session::authenticate`](super::Session::authenticate).
    AuthChallenge {
        /// The server's hello.
        peer: Hello,
        /// The bytes to sign.
        challenge: [u8; CHALLENGE_LEN],
    },
    /// Server: the client presented tokens; ask the gate and call
    /// [`Session::authorise`](super::Session::authorise). Tokens must be bound
    /// to `challenge`.
    AuthRequest {
        /// The client's hello.
        peer: Hello,
        /// The challenge this session sent.
        challenge: [u8; CHALLENGE_LEN],
        /// The tokens, unverified.
        tokens: Vec<Token>,
    },
    /// The gate permitted: media may flow.
    Open {
        /// The peer's hello.
        peer: Hello,
    },
    /// The peer broke the protocol; [`Event::Closed`] follows.
    Error(SessionError),
    /// The session ended; no event but object and frame bookkeeping already
    /// queued follows.
    Closed {
        /// Which end ended it.
        by: ClosedBy,
        /// Why.
        why: Ended,
        /// Free text from the end that closed (no patient data).
        detail: String,
    },
    /// A live frame, whole and checked, newer than every frame delivered
    /// before on its channel.
    Frame(ReceivedFrame),
    /// Live frames this end will not deliver (lost, late, overtaken); the
    /// peer is told too.
    FramesLost {
        /// Channel.
        channel: u16,
        /// Ascending, disjoint ranges.
        ranges: Vec<SeqRange>,
    },
    /// The peer reports frames this end sent as lost.
    PeerFramesLost {
        /// Channel.
        channel: u16,
        /// Ascending, disjoint ranges, each within the numbers this end
        /// assigned on the channel (a report beyond them closes the session
        /// with [`SessionError::LostNeverSent`]). The same frame may be
        /// named again in a later report: count with saturating sums.
        ranges: Vec<SeqRange>,
    },
    /// Detection results for a frame.
    FrameMeta(FrameMeta),
    /// An annotation from the peer.
    Annotation(Annotation),
    /// The peer's signed set of the annotations it sent before.
    Instructions(Instructions),
    /// The peer's view of the link.
    PeerStats(LinkStats),
    /// Receiver: an object is on offer; bytes will follow from `resume_from`
    /// (the host already holds everything before it).
    ObjectOffered {
        /// The offer.
        offer: ObjectOffer,
        /// Where the data resumes.
        resume_from: u64,
    },
    /// Receiver: the next bytes of an object, in order, each byte once.
    ObjectData(ObjectData),
    /// Receiver: the object is whole and its SHA-256 matches.
    ObjectComplete {
        /// The object.
        id: u64,
    },
    /// Receiver: the object's SHA-256 did not match; discard every byte of
    /// it; it will be sent again from 0.
    ObjectCorrupt {
        /// The object.
        id: u64,
    },
    /// Sender: send the object from `from` on with
    /// [`Session::send_object_data`](super::Session::send_object_data).
    ObjectResume {
        /// The object.
        id: u64,
        /// First byte to send.
        from: u64,
    },
    /// Sender: the receiver holds the whole object, SHA-256 checked.
    ObjectDelivered {
        /// The object.
        id: u64,
    },
    /// Sender: the receiver refused the object.
    ObjectRefused {
        /// The object.
        id: u64,
    },
}

/// Bytes for the driver to write.
#[derive(Clone, PartialEq, Eq)]
pub enum Transmit {
    /// One encoded message for the control stream.
    Control(Vec<u8>),
    /// One live frame for a new unidirectional stream: `header` (an encoded
    /// [`FrameHeader`] message) then `payload`. Reset the stream if it is not
    /// fully sent by `deadline`.
    Frame {
        /// Channel.
        channel: u16,
        /// Sequence number.
        seq: u64,
        /// When the frame becomes worthless.
        deadline: Instant,
        /// The encoded header message.
        header: Vec<u8>,
        /// The payload.
        payload: Vec<u8>,
    },
    /// One encoded [`ObjectData`] message for the object stream.
    Object {
        /// The object.
        id: u64,
        /// The encoded message.
        bytes: Vec<u8>,
    },
}

impl fmt::Debug for Transmit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Transmit::Control(b) => f.debug_tuple("Control").field(&b.len()).finish(),
            Transmit::Frame {
                channel,
                seq,
                payload,
                ..
            } => f
                .debug_struct("Frame")
                .field("channel", channel)
                .field("seq", seq)
                .field("payload_len", &payload.len())
                .finish(),
            Transmit::Object { id, bytes } => f
                .debug_struct("Object")
                .field("id", id)
                .field("len", &bytes.len())
                .finish(),
        }
    }
}

/// What the driver should do with a live frame's stream after feeding it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameStream {
    /// Keep reading.
    Continue,
    /// Stop reading (the frame is complete, stale, lost, or unknown); ask the
    /// peer to stop sending if bytes remain.
    Stop,
}

/// Counters of a session's live frames, both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct SessionStats {
    /// Frames handed to the driver.
    pub frames_sent: u64,
    /// Frames dropped before the driver took them (deadline, queue full, close).
    pub frames_cancelled: u64,
    /// Frames the peer reported lost.
    pub frames_reported_lost: u64,
    /// Frames delivered to the host.
    pub frames_delivered: u64,
    /// Frames declared lost by this end.
    pub frames_lost: u64,
    /// Frame headers that arrived after their frame was settled.
    pub frames_late: u64,
    /// Repeated frame headers.
    pub frames_duplicate: u64,
    /// Frames whose slice CRCs did not match (also counted lost).
    pub frames_corrupt: u64,
}

/// Transport figures the driver measures, for
/// [`Session::send_link_stats`](super::Session::send_link_stats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TransportStats {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Packet loss, parts per million.
    pub loss_ppm: u32,
    /// Application goodput, bits per second.
    pub goodput_bps: u64,
}
