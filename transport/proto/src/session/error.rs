//! What goes wrong in a session: the peer's violations and refused calls.

use super::{Side, State};
use crate::error::ProtoError;
use crate::message::MessageType;

/// A protocol violation by the peer; the session closes with
/// [`CloseReason::ProtocolViolation`](crate::CloseReason::ProtocolViolation).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionError {
    /// Bytes on the control stream do not decode.
    #[error("malformed message: {0}")]
    Malformed(#[from] ProtoError),
    /// A media message before the gate permitted the session.
    #[error("{ty} received while {state}: no media before the gate permits")]
    MediaBeforePermit {
        /// The message type.
        ty: MessageType,
        /// The session's state.
        state: State,
    },
    /// A message that has no place in the current state or for this side.
    #[error("{ty} is not expected by the {side:?} in state {state}")]
    Unexpected {
        /// The message type.
        ty: MessageType,
        /// The session's state.
        state: State,
        /// This end.
        side: Side,
    },
    /// The peer speaks another protocol version.
    #[error("peer speaks protocol version {peer}, this end {local}")]
    Version {
        /// The peer's version.
        peer: u16,
        /// Ours.
        local: u16,
    },
    /// A frame header announces more payload than this end accepts.
    #[error("frame {channel}/{seq} announces {len} bytes, more than the {max} accepted")]
    FrameTooLarge {
        /// Channel.
        channel: u16,
        /// Sequence number.
        seq: u64,
        /// Announced payload length.
        len: u32,
        /// Configured maximum.
        max: u32,
    },
    /// More payload arrived than the header announced.
    #[error("frame {channel}/{seq}: {got} payload bytes for a header announcing {expected}")]
    PayloadOverrun {
        /// Channel.
        channel: u16,
        /// Sequence number.
        seq: u64,
        /// Bytes received so far.
        got: u64,
        /// Bytes announced.
        expected: u32,
    },
    /// A frame on a new channel beyond the configured number.
    #[error("frame on channel {channel}: more than {max} live channels")]
    TooManyChannels {
        /// The new channel.
        channel: u16,
        /// Configured maximum.
        max: usize,
    },
    /// Object data for an object never offered.
    #[error("data for object {id}, which was never offered")]
    UnknownObject {
        /// The object.
        id: u64,
    },
    /// Object data beyond the object's size.
    #[error("data for object {id} up to byte {end}, beyond its size {size}")]
    DataBeyondObject {
        /// The object.
        id: u64,
        /// End of the data.
        end: u64,
        /// The object's size.
        size: u64,
    },
    /// An acknowledgement beyond the object's size.
    #[error("acknowledgement of object {id} at {offset}, beyond its size {size}")]
    AckBeyondObject {
        /// The object.
        id: u64,
        /// The acknowledged offset.
        offset: u64,
        /// The object's size.
        size: u64,
    },
    /// An acknowledgement of object bytes this end never sent (as quinn
    /// closes a connection that acknowledges a packet never sent).
    #[error("acknowledgement of object {id} at {offset}, beyond the {sent} bytes sent")]
    AckBeyondSent {
        /// The object.
        id: u64,
        /// The acknowledged offset.
        offset: u64,
        /// Bytes of it sent so far (or known to be held by the peer).
        sent: u64,
    },
    /// An acknowledgement for an object this end never offered.
    #[error("acknowledgement of object {id}, which was never offered")]
    AckUnknownObject {
        /// The object.
        id: u64,
    },
    /// A lost-frames report naming frames this end never sent.
    #[error(
        "frames {first}..={last} of channel {channel} reported lost, but only {sent} were ever numbered there"
    )]
    LostNeverSent {
        /// The channel.
        channel: u16,
        /// First number of the offending range.
        first: u64,
        /// Last number of the offending range.
        last: u64,
        /// Sequence numbers assigned on the channel so far (`0..sent`).
        sent: u64,
    },
}

/// A local call the session refused; the session is unchanged.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallError {
    /// Media may not flow before the gate permits.
    #[error("the session is {state}, not open: no media before the gate permits")]
    NotOpen {
        /// The session's state.
        state: State,
    },
    /// The call does not fit this side or state.
    #[error("{call} is not possible for the {side:?} in state {state}")]
    WrongState {
        /// The call.
        call: &'static str,
        /// This end.
        side: Side,
        /// The session's state.
        state: State,
    },
    /// The message would not pass the peer's decoder.
    #[error(transparent)]
    Invalid(#[from] ProtoError),
    /// The object identifier was offered with other content.
    #[error("object {id} was offered before with another size, kind or digest")]
    ObjectClash {
        /// The object.
        id: u64,
    },
    /// The object is not being sent.
    #[error("object {id} is not on offer")]
    UnknownObject {
        /// The object.
        id: u64,
    },
    /// The receiver has not yet said where to resume.
    #[error("object {id}: wait for Event::ObjectResume before sending data")]
    NotResumed {
        /// The object.
        id: u64,
    },
    /// Bytes beyond the object's size.
    #[error("object {id}: {len} bytes at {offset} run past its size {size}")]
    ObjectRange {
        /// The object.
        id: u64,
        /// Offset of the bytes.
        offset: u64,
        /// Their length.
        len: usize,
        /// The object's size.
        size: u64,
    },
    /// A frame payload whose length disagrees with its slice table.
    #[error("frame payload is {len} bytes but its slices sum to {slices}")]
    PayloadMismatch {
        /// Payload length.
        len: usize,
        /// Sum of the slice lengths.
        slices: u64,
    },
}
