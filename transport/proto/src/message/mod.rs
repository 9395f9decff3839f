//! The messages two med8k sites exchange, their bounds and their validation.
//!
//! Every message is a plain value. [`Message::validate`] checks the same
//! bounds the decoder enforces, and [`encode`](super::codec::encode) calls it,
//! so a message this end would refuse to decode is never sent. The byte layout
//! of each body is in the [`codec`](super::codec) module docs.
//!
//! Nothing here names a patient: sites, studies (DICOM UIDs), objects and
//! frames are identifiers, tokens are opaque bytes the gate checks.

use std::fmt;

use crate::error::ProtoError;

mod handshake;
mod media;

pub use handshake::*;
pub use media::*;

/// The protocol version this build speaks (carried in [`Hello`]).
pub const PROTOCOL_VERSION: u16 = 1;
/// Longest site identifier, in bytes (ASCII letters, digits, `.`, `-`, `_`).
pub const MAX_SITE_ID_LEN: usize = 64;
/// Longest facility name, in bytes of UTF-8.
pub const MAX_NAME_LEN: usize = 256;
/// Longest free-text detail in a rejection, denial or close, in bytes of UTF-8.
pub const MAX_DETAIL_LEN: usize = 512;
/// Most tokens in one [`Auth`].
pub const MAX_TOKENS: usize = 4;
/// Longest single authorisation token, in bytes.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;
/// Length of the server's authorisation challenge, in bytes.
pub const CHALLENGE_LEN: usize = 32;
/// Largest picture width or height.
pub const MAX_DIMENSION: u32 = 32_768;
/// Most spectral bands in a [`Layout::Bands`] frame.
pub const MAX_BANDS: u16 = 64;
/// Most entries in a frame's slice table.
pub const MAX_SLICES: usize = 4096;
/// Largest frame payload a header may announce, in bytes (1 GiB).
pub const MAX_FRAME_PAYLOAD: u32 = 1 << 30;
/// Most boxes in one [`FrameMeta`].
pub const MAX_BOXES: usize = 256;
/// Most ranges in one [`FramesLost`].
pub const MAX_LOST_RANGES: usize = 256;
/// Longest study identifier (a DICOM UID: digits and dots).
pub const MAX_UID_LEN: usize = 64;
/// Most points in one [`Annotation`].
pub const MAX_POINTS: usize = 8192;
/// Largest annotation coordinate, in pixels of the annotated image.
pub const MAX_COORDINATE: f32 = 65_536.0;
/// Longest annotation label, in bytes of UTF-8.
pub const MAX_LABEL_LEN: usize = 256;
/// Longest annotation author identifier, in bytes of UTF-8.
pub const MAX_AUTHOR_LEN: usize = 128;
/// Longest annotation free text, in bytes of UTF-8.
pub const MAX_TEXT_LEN: usize = 4096;
/// Largest signed [`Instructions`] document (1 MiB).
pub const MAX_DOCUMENT_LEN: usize = 1 << 20;
/// Largest [`Instructions`] signature (CMS SignedData with its certificates).
pub const MAX_SIGNATURE_LEN: usize = 64 * 1024;
/// Largest reliable object (1 TiB).
pub const MAX_OBJECT_SIZE: u64 = 1 << 40;
/// Most object bytes in one [`ObjectData`] (256 KiB).
pub const MAX_CHUNK_LEN: usize = 256 * 1024;

/// One message of the med8k protocol.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Message {
    /// Client → server: who is calling.
    Hello(Hello),
    /// Server → client: who answers, and the challenge tokens must sign.
    HelloAck(HelloAck),
    /// Server → client: the call is refused before authorisation.
    HelloReject(HelloReject),
    /// Client → server: tokens for the consent gate.
    Auth(Auth),
    /// Server → client: the gate's decision.
    AuthResult(AuthDecision),
    /// Sender → receiver: the header of one live frame (its payload follows on the same stream).
    FrameHeader(FrameHeader),
    /// Sender → receiver: anomaly detection results for one frame.
    FrameMeta(FrameMeta),
    /// Receiver → sender: live frames that will never be shown.
    FramesLost(FramesLost),
    /// Either way: a drawing on an image or frame (for example where to cut).
    Annotation(Annotation),
    /// Either way: the signed set of the annotations sent before it.
    Instructions(Instructions),
    /// Either way: how the link is doing, as seen by the end that sends it.
    LinkStats(LinkStats),
    /// Sender → receiver: a reliable object is (again) on offer.
    ObjectOffer(ObjectOffer),
    /// Receiver → sender: how much of an object has arrived, and what to do next.
    ObjectAck(ObjectAck),
    /// Sender → receiver: bytes of a reliable object.
    ObjectData(ObjectData),
    /// Either way: the session ends.
    Close(Close),
}

/// The type byte of each message on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum MessageType {
    /// [`Hello`].
    Hello = 0x01,
    /// [`HelloAck`].
    HelloAck = 0x02,
    /// [`HelloReject`].
    HelloReject = 0x03,
    /// [`Auth`].
    Auth = 0x10,
    /// [`AuthDecision`].
    AuthResult = 0x11,
    /// [`FrameHeader`].
    FrameHeader = 0x20,
    /// [`FrameMeta`].
    FrameMeta = 0x21,
    /// [`FramesLost`].
    FramesLost = 0x22,
    /// [`Annotation`].
    Annotation = 0x30,
    /// [`Instructions`].
    Instructions = 0x31,
    /// [`LinkStats`].
    LinkStats = 0x40,
    /// [`ObjectOffer`].
    ObjectOffer = 0x50,
    /// [`ObjectAck`].
    ObjectAck = 0x51,
    /// [`ObjectData`].
    ObjectData = 0x52,
    /// [`Close`].
    Close = 0x7f,
}

impl MessageType {
    /// Every message type, in type-byte order.
    pub const ALL: [MessageType; 15] = [
        MessageType::Hello,
        MessageType::HelloAck,
        MessageType::HelloReject,
        MessageType::Auth,
        MessageType::AuthResult,
        MessageType::FrameHeader,
        MessageType::FrameMeta,
        MessageType::FramesLost,
        MessageType::Annotation,
        MessageType::Instructions,
        MessageType::LinkStats,
        MessageType::ObjectOffer,
        MessageType::ObjectAck,
        MessageType::ObjectData,
        MessageType::Close,
    ];

    /// The type for a type byte, if it names one.
    pub fn from_byte(byte: u8) -> Option<MessageType> {
        MessageType::ALL.into_iter().find(|t| *t as u8 == byte)
    }

    /// The largest body a message of this type can have; a header announcing
    /// more is refused before its body is buffered.
    pub const fn max_body_len(self) -> usize {
        const STR: usize = 2; // u16 length prefix
        const HELLO: usize = 2 + STR + MAX_SITE_ID_LEN + STR + MAX_NAME_LEN + 4;
        match self {
            MessageType::Hello => HELLO,
            MessageType::HelloAck => HELLO + CHALLENGE_LEN,
            MessageType::HelloReject => 1 + 2 + STR + MAX_DETAIL_LEN,
            MessageType::Auth => 1 + MAX_TOKENS * (1 + 4 + MAX_TOKEN_LEN),
            MessageType::AuthResult => 1 + 1 + STR + MAX_DETAIL_LEN,
            MessageType::FrameHeader => FRAME_HEADER_FIXED + MAX_SLICES * 8,
            MessageType::FrameMeta => 2 + 8 + 4 + 4 + 2 + MAX_BOXES * BOX_LEN + 8,
            MessageType::FramesLost => 2 + 2 + MAX_LOST_RANGES * 16,
            MessageType::Annotation => {
                8 + STR
                    + MAX_UID_LEN
                    + 1
                    + 10
                    + 1
                    + 2
                    + MAX_POINTS * 8
                    + STR
                    + MAX_LABEL_LEN
                    + STR
                    + MAX_AUTHOR_LEN
                    + STR
                    + MAX_TEXT_LEN
            }
            MessageType::Instructions => {
                STR + MAX_UID_LEN + 4 + MAX_DOCUMENT_LEN + 4 + MAX_SIGNATURE_LEN
            }
            MessageType::LinkStats => LINK_STATS_LEN,
            MessageType::ObjectOffer => 8 + 1 + 8 + 32,
            MessageType::ObjectAck => 8 + 8 + 1,
            MessageType::ObjectData => 8 + 8 + 4 + MAX_CHUNK_LEN,
            MessageType::Close => 1 + STR + MAX_DETAIL_LEN,
        }
    }

    /// The name used in errors and logs.
    pub const fn name(self) -> &'static str {
        match self {
            MessageType::Hello => "Hello",
            MessageType::HelloAck => "HelloAck",
            MessageType::HelloReject => "HelloReject",
            MessageType::Auth => "Auth",
            MessageType::AuthResult => "AuthResult",
            MessageType::FrameHeader => "FrameHeader",
            MessageType::FrameMeta => "FrameMeta",
            MessageType::FramesLost => "FramesLost",
            MessageType::Annotation => "Annotation",
            MessageType::Instructions => "Instructions",
            MessageType::LinkStats => "LinkStats",
            MessageType::ObjectOffer => "ObjectOffer",
            MessageType::ObjectAck => "ObjectAck",
            MessageType::ObjectData => "ObjectData",
            MessageType::Close => "Close",
        }
    }

    /// Whether the message carries or concerns patient media, and so may only
    /// flow once the consent gate has permitted the session.
    pub const fn is_media(self) -> bool {
        matches!(
            self,
            MessageType::FrameHeader
                | MessageType::FrameMeta
                | MessageType::FramesLost
                | MessageType::Annotation
                | MessageType::Instructions
                | MessageType::ObjectOffer
                | MessageType::ObjectAck
                | MessageType::ObjectData
        )
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Fixed part of a [`FrameHeader`] body (everything but the slice table).
pub(crate) const FRAME_HEADER_FIXED: usize = 2 + 8 + 8 + 1 + 4 + 4 + 1 + 2 + 1 + 4 + 2;
/// One [`BoundingBox`] on the wire.
pub(crate) const BOX_LEN: usize = 5 * 4 + 2;
/// A [`LinkStats`] body.
pub(crate) const LINK_STATS_LEN: usize = 4 + 4 + 8 + 8 + 8 + 8;

impl Message {
    /// The message's type byte.
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::HelloAck(_) => MessageType::HelloAck,
            Message::HelloReject(_) => MessageType::HelloReject,
            Message::Auth(_) => MessageType::Auth,
            Message::AuthResult(_) => MessageType::AuthResult,
            Message::FrameHeader(_) => MessageType::FrameHeader,
            Message::FrameMeta(_) => MessageType::FrameMeta,
            Message::FramesLost(_) => MessageType::FramesLost,
            Message::Annotation(_) => MessageType::Annotation,
            Message::Instructions(_) => MessageType::Instructions,
            Message::LinkStats(_) => MessageType::LinkStats,
            Message::ObjectOffer(_) => MessageType::ObjectOffer,
            Message::ObjectAck(_) => MessageType::ObjectAck,
            Message::ObjectData(_) => MessageType::ObjectData,
            Message::Close(_) => MessageType::Close,
        }
    }

    /// Checks every bound and invariant the decoder checks.
    pub fn validate(&self) -> Result<(), ProtoError> {
        match self {
            Message::Hello(m) => m.validate(MessageType::Hello),
            Message::HelloAck(m) => m.site.validate(MessageType::HelloAck),
            Message::HelloReject(m) => check_str(
                MessageType::HelloReject,
                "detail",
                &m.detail,
                MAX_DETAIL_LEN,
            ),
            Message::Auth(m) => m.validate(),
            Message::AuthResult(AuthDecision::Permit) => Ok(()),
            Message::AuthResult(AuthDecision::Deny { detail, .. }) => {
                check_str(MessageType::AuthResult, "detail", detail, MAX_DETAIL_LEN)
            }
            Message::FrameHeader(m) => m.validate(),
            Message::FrameMeta(m) => m.validate(),
            Message::FramesLost(m) => m.validate(),
            Message::Annotation(m) => m.validate(),
            Message::Instructions(m) => m.validate(),
            Message::LinkStats(m) => m.validate(),
            Message::ObjectOffer(m) => m.validate(),
            Message::ObjectAck(m) => {
                check_max(MessageType::ObjectAck, "offset", m.offset, MAX_OBJECT_SIZE)
            }
            Message::ObjectData(m) => m.validate(),
            Message::Close(m) => check_str(MessageType::Close, "detail", &m.detail, MAX_DETAIL_LEN),
        }
    }
}

// ---------------------------------------------------------------------------
// Enum codes: 1-based, so an all-zero body never decodes to a valid value.

macro_rules! wire_enum {
    ($ty:ident { $($variant:ident = $code:expr),+ $(,)? }) => {
        impl $ty {
            pub(crate) fn code(self) -> u8 {
                match self { $($ty::$variant => $code),+ }
            }
            pub(crate) fn from_code(code: u8) -> Option<$ty> {
                match code { $($code => Some($ty::$variant),)+ _ => None }
            }
        }
    };
}

wire_enum!(RejectReason { UnsupportedVersion = 1, UnknownSite = 2, NotAccepting = 3 });
wire_enum!(TokenKind { Hpki = 1, Jpki = 2, Consent = 3 });
wire_enum!(DenyReason { InvalidToken = 1, Expired = 2, NoConsent = 3, NotQualified = 4, Other = 5 });
wire_enum!(Codec { WaveletLossless = 1, WaveletLossy = 2, Av1 = 3, Raw = 4 });
wire_enum!(Shape { Polyline = 1, Polygon = 2, Rectangle = 3 });
wire_enum!(ObjectKind { Dicom = 1, SpectralCube = 2, Image = 3, Other = 4 });
wire_enum!(AckState { Progress = 1, ResumeFrom = 2, Complete = 3, Corrupt = 4, Refused = 5 });
wire_enum!(CloseReason {
    Normal = 1,
    ConsentRevoked = 2,
    AuthDenied = 3,
    ProtocolViolation = 4,
    Timeout = 5,
    Shutdown = 6,
});

impl Layout {
    /// Wire code and band count.
    pub(crate) fn code(self) -> (u8, u16) {
        match self {
            Layout::Gray => (1, 0),
            Layout::Rgb => (2, 0),
            Layout::Rgba => (3, 0),
            Layout::Yuv422 => (4, 0),
            Layout::Yuv420 => (5, 0),
            Layout::Bands(n) => (6, n),
        }
    }
}

// ---------------------------------------------------------------------------
// Checks shared by validation and decoding

pub(crate) fn check_str(
    ty: MessageType,
    field: &'static str,
    s: &str,
    max: usize,
) -> Result<(), ProtoError> {
    if s.len() > max {
        return Err(ProtoError::OutOfRange {
            ty,
            field,
            value: format!("{} bytes", s.len()),
            allowed: format!("at most {max} bytes"),
        });
    }
    Ok(())
}

fn check_site_id(ty: MessageType, id: &str) -> Result<(), ProtoError> {
    check_count(ty, "site_id length", id.len(), 1, MAX_SITE_ID_LEN)?;
    if let Some(pos) = id
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_')))
    {
        return Err(ProtoError::OutOfRange {
            ty,
            field: "site_id",
            value: format!("a byte at position {pos}"),
            allowed: "ASCII letters, digits, '.', '-', '_'".to_owned(),
        });
    }
    Ok(())
}

pub(crate) fn check_count(
    ty: MessageType,
    field: &'static str,
    n: usize,
    min: usize,
    max: usize,
) -> Result<(), ProtoError> {
    if n < min || n > max {
        return Err(ProtoError::OutOfRange {
            ty,
            field,
            value: n.to_string(),
            allowed: format!("{min}..={max}"),
        });
    }
    Ok(())
}

fn check_between(
    ty: MessageType,
    field: &'static str,
    v: u64,
    min: u64,
    max: u64,
) -> Result<(), ProtoError> {
    if v < min || v > max {
        return Err(ProtoError::OutOfRange {
            ty,
            field,
            value: v.to_string(),
            allowed: format!("{min}..={max}"),
        });
    }
    Ok(())
}

fn check_max(ty: MessageType, field: &'static str, v: u64, max: u64) -> Result<(), ProtoError> {
    check_between(ty, field, v, 0, max)
}

fn check_finite(ty: MessageType, field: &'static str, v: f32) -> Result<(), ProtoError> {
    if !v.is_finite() {
        return Err(ProtoError::OutOfRange {
            ty,
            field,
            value: v.to_string(),
            allowed: "a finite number".to_owned(),
        });
    }
    Ok(())
}

fn check_unit(ty: MessageType, field: &'static str, v: f32) -> Result<(), ProtoError> {
    if !(0.0..=1.0).contains(&v) {
        return Err(ProtoError::OutOfRange {
            ty,
            field,
            value: v.to_string(),
            allowed: "0..=1".to_owned(),
        });
    }
    Ok(())
}

fn check_coordinate(ty: MessageType, field: &'static str, v: f32) -> Result<(), ProtoError> {
    if !(0.0..=MAX_COORDINATE).contains(&v) {
        return Err(ProtoError::OutOfRange {
            ty,
            field,
            value: v.to_string(),
            allowed: format!("0..={MAX_COORDINATE}"),
        });
    }
    Ok(())
}
