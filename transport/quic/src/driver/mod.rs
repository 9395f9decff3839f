//! The quinn driver: sockets, clock and tasks around the sans-IO
//! [`Session`](crate::proto::Session).
//!
//! # Tour
//! - [`tls`]: facility certificates ([`SiteIdentity`]), trust
//!   ([`TrustConfig`]: CA roots and allowed facilities), rustls
//!   configurations with mandatory client certificates on both ends, ALPN
//!   `med8k/1`, and the facility naming convention
//!   ([`facility_dns_name`](tls::facility_dns_name)). A peer with an unknown
//!   CA, an expired certificate or a facility not allowed fails the TLS
//!   handshake: no session, no media.
//! - [`Gate`]: the server's authorisation hook, called on
//!   [`Event::AuthRequest`](crate::proto::Event::AuthRequest); it receives a
//!   [`SessionControl`] when the session opens and may revoke it at any
//!   time. [`Credentials`]: the client's tokens over the server's challenge.
//! - [`Server::bind`] / [`Server::accept`] and [`Client::connect`]: one QUIC
//!   connection per link, one bidirectional control stream (opened by the
//!   client) carrying [`proto`](crate::proto) messages, returning a
//!   [`Link`]: [`Link::send_frame`], [`Link::next_event`],
//!   [`Link::control`].
//! - Live frames: a unidirectional stream per frame, newer frames at higher
//!   priority, reset at the frame's deadline; received streams are read
//!   concurrently (at most [`DriverConfig::max_concurrent_frames`] at once),
//!   oversized headers refused before any payload is read.
//! - Reliable objects: [`Link::offer_object`] / [`Link::send_object_data`],
//!   a unidirectional stream per object below every frame in priority,
//!   acknowledgements on the control stream; [`Link::into_transfers`] and
//!   [`Client::resume`] carry unfinished transfers to the next connection (a
//!   server keeps them per facility itself).
//! - Receiver memory: a frame's reader reserves its payload's length from
//!   a byte budget ([`DriverConfig::frame_buffer_budget`]) before reading
//!   it, so frame readers never hold more than that; optionally a complete
//!   frame waits ([`DriverConfig::frame_reorder_wait`]) for older frames
//!   still arriving instead of making them lost.
//! - Statistics: [`Link::stats`] ([`LinkStatsSnapshot`]: round trip,
//!   packets and bytes from quinn, frame counters from the session, the
//!   peer's last report); each end reports its view to the other every
//!   [`DriverConfig::stats_interval`]
//!   ([`Event::PeerStats`](crate::proto::Event::PeerStats)).
//! - Object data is backpressured: [`Link::send_object_data`] returns once
//!   its bytes are written into quinn's send buffer
//!   ([`DriverConfig::send_window`]).
//! - [`Dialer`]: reconnection with exponential [`Backoff`] on transient
//!   failures, resuming transfers.
//! - [`DriverConfig`]: congestion controller ([`Congestion`]), initial
//!   window, flow-control windows for Gbit/s, keep-alive, idle timeout.
//!
//! ```no_run
//! use std::sync::Arc;
//! use med8k_transport::driver::{Client, DriverConfig, Site, SiteIdentity, TrustConfig};
//! use med8k_transport::proto::{Capabilities, Event, Hello, Token, TokenKind, CHALLENGE_LEN};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let identity = SiteIdentity::from_pem_files("site.pem".as_ref(), "site.key".as_ref())?;
//! let trust = TrustConfig::from_pem_files(&["ca.pem".into()], vec!["jp.hospital-b".into()])?;
//! let hello = Hello::new("jp.hospital-a", "Hospital A", Capabilities::SEND_LIVE);
//! let site = Site { identity, trust, hello };
//! let sign = |_: &Hello, challenge: &[u8; CHALLENGE_LEN]| {
//!     vec![Token { kind: TokenKind::Consent, bytes: challenge.to_vec() }]
//! };
//! let addr = "[2001:db8::1]:4433".parse()?;
//! let mut link =
//!     Client::connect(addr, &site, "jp.hospital-b", Arc::new(sign), &DriverConfig::default())
//!         .await?;
//! while let Some(event) = link.next_event().await {
//!     if let Event::Open { .. } = event {
//!         break;
//!     }
//! }
//! # Ok(()) }
//! ```

mod budget;
mod config;
mod endpoint;
mod frames;
mod gate;
mod link;
mod reconnect;
mod reorder;
pub mod socket;
mod stats;
mod task;
pub mod tls;
mod watchdog;

pub use config::{Congestion, DriverConfig, MAX_UDP_PAYLOAD};
pub use endpoint::{Client, ConnectError, Refused, Server, Site};
pub use gate::{
    CHALLENGE_EXPORTER_LABEL, Credentials, Gate, PeerInfo, SessionControl, bind_challenge,
};
pub use link::{Link, LinkError, LinkSender};
pub use reconnect::{Backoff, Dialer};
pub use stats::LinkStatsSnapshot;
pub use tls::{SiteIdentity, TlsError, TrustConfig};

/// QUIC application error codes (connection close) and stream codes
/// (reset, stop) the driver uses.
pub mod codes {
    use crate::proto::{CloseReason, Ended};

    /// The session ended normally (or the site shut down).
    pub const NORMAL: u32 = 0;
    /// The peer's certificate names no allowed facility.
    pub const FACILITY_REFUSED: u32 = 1;
    /// The peer broke the protocol.
    pub const PROTOCOL_VIOLATION: u32 = 2;
    /// The gate denied the session (or the hello was rejected).
    pub const AUTH_DENIED: u32 = 3;
    /// Consent was revoked during the session.
    pub const CONSENT_REVOKED: u32 = 4;
    /// The handshake did not finish in time, or the connection stuck after
    /// an outage (the client dials again).
    pub const TIMEOUT: u32 = 5;
    /// The peer stopped reading the control stream.
    pub const CONTROL_STALLED: u32 = 6;
    /// The server holds its most links (in all or for the facility).
    pub const BUSY: u32 = 7;
    /// Stream reset: the frame missed its deadline.
    pub const FRAME_EXPIRED: u32 = 0x10;
    /// Stream stop: the receiver does not want the frame.
    pub const FRAME_STOPPED: u32 = 0x11;

    /// The connection close code and reason for a session's end.
    pub fn for_end(ended: Ended) -> (u32, &'static str) {
        match ended {
            Ended::Close(CloseReason::ConsentRevoked) => (CONSENT_REVOKED, "consent revoked"),
            Ended::Close(CloseReason::ProtocolViolation) => {
                (PROTOCOL_VIOLATION, "protocol violation")
            }
            Ended::Close(CloseReason::AuthDenied) | Ended::Rejected(_) | Ended::Denied(_) => {
                (AUTH_DENIED, "not authorised")
            }
            Ended::Close(CloseReason::Timeout) => (TIMEOUT, "timeout"),
            _ => (NORMAL, "closed"),
        }
    }
}
