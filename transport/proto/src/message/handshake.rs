//! The messages that set a session up and end it: hello, the authorisation
//! exchange, close.

use std::fmt;

use super::*;

/// What a site can do on a link; unknown bits are kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Capabilities(pub u32);

impl Capabilities {
    /// Sends live frames.
    pub const SEND_LIVE: Capabilities = Capabilities(1 << 0);
    /// Receives live frames.
    pub const RECEIVE_LIVE: Capabilities = Capabilities(1 << 1);
    /// Sends reliable objects (pathology images, cubes, DICOM instances).
    pub const SEND_OBJECTS: Capabilities = Capabilities(1 << 2);
    /// Receives reliable objects.
    pub const RECEIVE_OBJECTS: Capabilities = Capabilities(1 << 3);
    /// Sends annotations (a pathologist's cut lines).
    pub const ANNOTATE: Capabilities = Capabilities(1 << 4);
    /// Sends anomaly detection results with its frames.
    pub const DETECT: Capabilities = Capabilities(1 << 5);
    /// Reads the image-quality extension of `FrameMeta` (8 bytes after the boxes).
    pub const QUALITY: Capabilities = Capabilities(1 << 6);

    /// No capability.
    pub const fn empty() -> Capabilities {
        Capabilities(0)
    }

    /// Whether every bit of `other` is set here.
    pub const fn contains(self, other: Capabilities) -> bool {
        self.0 & other.0 == other.0
    }
}

impl std::ops::BitOr for Capabilities {
    type Output = Capabilities;
    fn bitor(self, rhs: Capabilities) -> Capabilities {
        Capabilities(self.0 | rhs.0)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const NAMES: [(Capabilities, &str); 7] = [
            (Capabilities::SEND_LIVE, "SEND_LIVE"),
            (Capabilities::RECEIVE_LIVE, "RECEIVE_LIVE"),
            (Capabilities::SEND_OBJECTS, "SEND_OBJECTS"),
            (Capabilities::RECEIVE_OBJECTS, "RECEIVE_OBJECTS"),
            (Capabilities::ANNOTATE, "ANNOTATE"),
            (Capabilities::DETECT, "DETECT"),
            (Capabilities::QUALITY, "QUALITY"),
        ];
        let mut rest = self.0;
        let mut first = true;
        f.write_str("Capabilities(")?;
        for (cap, name) in NAMES {
            if self.contains(cap) {
                if !first {
                    f.write_str(" | ")?;
                }
                f.write_str(name)?;
                first = false;
                rest &= !cap.0;
            }
        }
        if rest != 0 || first {
            if !first {
                f.write_str(" | ")?;
            }
            write!(f, "{rest:#x}")?;
        }
        f.write_str(")")
    }
}

/// A site introducing itself: the first message of a session (and, inside
/// [`HelloAck`], the answer). The site identifier must match the facility
/// certificate the QUIC handshake authenticated; the driver checks that.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version the sender speaks.
    pub version: u16,
    /// Stable identifier of the site, 1–[`MAX_SITE_ID_LEN`] bytes of
    /// ASCII letters, digits, `.`, `-` and `_` (for example `jp.hospital-a.or`).
    pub site_id: String,
    /// Human-readable facility name (UTF-8, at most [`MAX_NAME_LEN`] bytes).
    pub facility_name: String,
    /// What the site can do on this link.
    pub capabilities: Capabilities,
}

impl Hello {
    /// A hello at this build's [`PROTOCOL_VERSION`].
    pub fn new(
        site_id: impl Into<String>,
        facility_name: impl Into<String>,
        capabilities: Capabilities,
    ) -> Hello {
        Hello {
            version: PROTOCOL_VERSION,
            site_id: site_id.into(),
            facility_name: facility_name.into(),
            capabilities,
        }
    }

    pub(super) fn validate(&self, ty: MessageType) -> Result<(), ProtoError> {
        check_site_id(ty, &self.site_id)?;
        check_str(ty, "facility_name", &self.facility_name, MAX_NAME_LEN)
    }
}

/// The server's answer to [`Hello`]: its own identity, and a challenge that
/// the client's tokens must sign so that they cannot be replayed on another
/// session. The challenge comes from the host (the core has no randomness).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloAck {
    /// The answering site.
    pub site: Hello,
    /// Fresh random bytes chosen by the server's host for this session.
    pub challenge: [u8; CHALLENGE_LEN],
}

/// Why a [`Hello`] was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RejectReason {
    /// The client's protocol version is not one the server speaks.
    UnsupportedVersion,
    /// The site is not one this server links with.
    UnknownSite,
    /// The server takes no session now.
    NotAccepting,
}

/// The server refuses the session before any authorisation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelloReject {
    /// Why.
    pub reason: RejectReason,
    /// The protocol version the server speaks.
    pub supported_version: u16,
    /// Free text for the operator (no patient data).
    pub detail: String,
}

/// What a token is; the core carries tokens, the gate reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TokenKind {
    /// A physician's HPKI authentication signature over the challenge.
    Hpki,
    /// A patient's JPKI authentication signature over the challenge.
    Jpki,
    /// A reference to (or copy of) a signed consent record.
    Consent,
}

/// One opaque, signed authorisation token.
#[derive(Clone, PartialEq, Eq)]
pub struct Token {
    /// What the bytes are.
    pub kind: TokenKind,
    /// The token, 1–[`MAX_TOKEN_LEN`] bytes, opaque to the protocol.
    pub bytes: Vec<u8>,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Tokens can hold certificates with names in them: show only the size.
        f.debug_struct("Token")
            .field("kind", &self.kind)
            .field("len", &self.bytes.len())
            .finish()
    }
}

/// The client asks the consent gate to open the session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// 1–[`MAX_TOKENS`] tokens, for example a physician's HPKI signature and
    /// the patient's consent.
    pub tokens: Vec<Token>,
}

impl Auth {
    pub(super) fn validate(&self) -> Result<(), ProtoError> {
        let ty = MessageType::Auth;
        check_count(ty, "tokens", self.tokens.len(), 1, MAX_TOKENS)?;
        for t in &self.tokens {
            check_count(ty, "token length", t.bytes.len(), 1, MAX_TOKEN_LEN)?;
        }
        Ok(())
    }
}

/// Why the gate denied a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DenyReason {
    /// A token did not verify (bad signature, wrong challenge, unknown issuer).
    InvalidToken,
    /// A certificate or consent has expired.
    Expired,
    /// No consent covers this facility, purpose or time.
    NoConsent,
    /// The holder lacks the qualification required (HPKI role).
    NotQualified,
    /// Another reason, in the detail.
    Other,
}

/// The consent gate's decision, sent to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    /// Media may flow.
    Permit,
    /// Media may not flow; the session ends.
    Deny {
        /// Why.
        reason: DenyReason,
        /// Free text for the operator (no patient data).
        detail: String,
    },
}

// ---------------------------------------------------------------------------
// Closing

/// Why a session ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CloseReason {
    /// Finished as planned.
    Normal,
    /// The patient's consent was revoked (or expired) during the session.
    ConsentRevoked,
    /// The gate denied the session.
    AuthDenied,
    /// The peer broke the protocol.
    ProtocolViolation,
    /// The handshake did not finish in time.
    Timeout,
    /// The site is shutting down.
    Shutdown,
}

/// The session ends; no message follows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Close {
    /// Why.
    pub reason: CloseReason,
    /// Free text for the operator (no patient data).
    pub detail: String,
}
