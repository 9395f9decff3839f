//! What can be wrong with bytes on the wire.

use super::message::MessageType;

/// A message that cannot be decoded (or, on the sending side, that this end
/// refuses to encode because the peer would refuse to decode it). Each variant
/// names the offending field, its value and what was allowed; none carries
/// the content of a string or token.
///
/// "Not enough bytes yet" is never an error: [`decode`](super::codec::decode)
/// returns `Ok(None)` for it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtoError {
    /// The frame does not start with the med8k magic bytes.
    #[error("byte {offset} of the frame is {found:#04x}, expected the magic byte {expected:#04x}")]
    BadMagic {
        /// Offset of the wrong byte in the frame header (0 or 1).
        offset: usize,
        /// The byte found.
        found: u8,
        /// The byte expected.
        expected: u8,
    },
    /// The frame's wire version is not one this build decodes.
    #[error("wire version {found} is not supported (this build speaks {supported})")]
    UnsupportedVersion {
        /// The version byte found.
        found: u8,
        /// The version this build speaks.
        supported: u8,
    },
    /// The type byte names no message.
    #[error("unknown message type {found:#04x}")]
    UnknownType {
        /// The type byte found.
        found: u8,
    },
    /// The header announces a body longer than any valid message of its type;
    /// detected before the body is buffered.
    #[error("{ty} body of {len} bytes exceeds the maximum of {max}")]
    TooLong {
        /// The message type.
        ty: MessageType,
        /// The announced length.
        len: u64,
        /// The largest body of this type.
        max: usize,
    },
    /// The body ends inside a field.
    #[error("{ty}: field `{field}` needs {needed} bytes but the body has {left} left")]
    Truncated {
        /// The message type.
        ty: MessageType,
        /// The field being read.
        field: &'static str,
        /// Bytes the field needs.
        needed: u64,
        /// Bytes left in the body.
        left: usize,
    },
    /// The body goes on after its last field.
    #[error("{ty}: {extra} bytes after the last field")]
    TrailingBytes {
        /// The message type.
        ty: MessageType,
        /// How many bytes are left over.
        extra: usize,
    },
    /// A field holds a value outside its allowed range.
    #[error("{ty}: field `{field}` is {value}, allowed: {allowed}")]
    OutOfRange {
        /// The message type.
        ty: MessageType,
        /// The field.
        field: &'static str,
        /// The value found (a number or a length, never text content).
        value: String,
        /// What was allowed.
        allowed: String,
    },
    /// An enumerated field holds a code that names nothing.
    #[error("{ty}: field `{field}` has unknown code {code}")]
    UnknownCode {
        /// The message type.
        ty: MessageType,
        /// The field.
        field: &'static str,
        /// The code found.
        code: u8,
    },
    /// A text field is not UTF-8.
    #[error("{ty}: field `{field}` is not valid UTF-8")]
    NotUtf8 {
        /// The message type.
        ty: MessageType,
        /// The field.
        field: &'static str,
    },
}
