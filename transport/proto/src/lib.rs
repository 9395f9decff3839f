//! The med8k protocol core, without I/O: messages, their wire format, and
//! the session state machine each end runs.
//!
//! Nothing here touches a socket, reads a clock or draws a random number:
//! bytes, `now` and the server's challenge are arguments, and what comes out
//! are values ([`Transmit`], [`Event`]). The quinn driver maps them onto QUIC
//! streams; the tests run two sessions in memory under a simulated clock.
//!
//! # Tour
//! - [`message`]: the messages ([`Message`]) and their bounds
//!   ([`MAX_SLICES`], [`MAX_TOKEN_LEN`], …).
//! - [`codec`]: the framing (magic, version, type, u32 length, body), every
//!   body's layout, [`encode`] and [`decode`] (commit only on success; "need
//!   more bytes" is `Ok(None)`), and [`MessageReader`] for streams.
//! - [`session`]: [`Session`], states Hello → Authorising → Open → Closed,
//!   the consent gate's hook ([`Event::AuthRequest`] / [`Session::authorise`]),
//!   live frame bookkeeping (deadlines, gaps, latest frame wins, bounded) and
//!   reliable object bookkeeping (acknowledged offsets, resume after an
//!   outage, SHA-256 on completion).
//!
//! ```no_run
//! use std::time::Instant;
//! use med8k_proto::{AuthDecision, Capabilities, Config, Event, Hello, Session};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Instant::now();
//! let hello = Hello::new("jp.hospital-b", "Hospital B", Capabilities::RECEIVE_LIVE);
//! let challenge = [7; 32]; // fresh random bytes from the host
//! let mut server = Session::server(now, Config::default(), hello, challenge)?;
//! # let bytes_from_control_stream: &[u8] = &[];
//! server.handle_control_data(now, bytes_from_control_stream);
//! while let Some(event) = server.poll_event() {
//!     if let Event::AuthRequest { tokens, .. } = event {
//!         // ask the consent gate about `tokens`, then:
//!         server.authorise(now, AuthDecision::Permit)?;
//!     }
//! }
//! while let Some(transmit) = server.poll_transmit(now) {
//!     // write it to its QUIC stream
//!     # let _ = transmit;
//! }
//! # Ok(()) }
//! ```

pub mod codec;
pub mod error;
pub mod message;
pub mod session;

#[cfg(test)]
mod tests;

pub use codec::{MessageReader, decode, encode, encode_to_vec};
pub use error::ProtoError;
pub use message::*;
pub use session::{
    CallError, ClosedBy, Config, Ended, Event, FrameStream, ReceivedFrame, Session, SessionError,
    SessionStats, Side, State, Transfers, Transmit, TransportStats,
};
