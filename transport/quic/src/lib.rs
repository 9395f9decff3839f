//! # med8k-transport
//!
//! The links between hospitals: one QUIC connection per site pair, mutually
//! authenticated with facility certificates, carrying live video that never
//! waits for a late frame and pathology images that arrive whole or not at
//! all.
//!
//! ## What exists
//! The sans-IO protocol core, the `med8k-proto` crate (re-exported here as
//! [`proto`], so that its fuzz targets and tests link neither quinn nor
//! tokio):
//! - the messages (session hello, the authorisation exchange with opaque
//!   signed tokens for the consent gate, live frame headers with slice tables,
//!   detection metadata, annotations, link statistics, lost-frame reports,
//!   reliable object offers, acknowledgements and data, close) and their
//!   versioned, length-delimited wire format, with decoders that commit only
//!   on success;
//! - the [`Session`](proto::Session) state machine each end runs: hello,
//!   authorisation through a host-held gate (no media before it permits; it
//!   may revoke at any time), live frames tracked by sequence number with
//!   deadlines (late ones reported lost, newest frame wins, bounded memory),
//!   and reliable objects that resume from what was acknowledged after an
//!   outage and are checked with SHA-256.
//!
//! It is tested with two sessions in memory under a simulated clock with
//! latency, loss and outages.
//!
//! A test tool, [`relay`]: a userspace UDP impairment relay for loopback
//! (delay, jitter, random and burst loss, reordering, a bandwidth cap with a
//! drop-tail queue, blackouts; per direction, changeable at runtime, with
//! counters), so real QUIC endpoints can be tested without kernel traffic
//! shaping.
//!
//! ## The driver
//! [`driver`] owns the sockets and the clock: the quinn endpoint with mutual
//! TLS from facility certificates (unknown CA, expired certificate or a
//! facility not allowed: refused in the handshake), a control stream per
//! connection, one unidirectional stream per live frame (newest first, reset
//! at its deadline, oversized headers refused before any payload is read),
//! and the consent [`Gate`](driver::Gate) wired to
//! [`Event::AuthRequest`](proto::Event::AuthRequest), with a
//! [`SessionControl`](driver::SessionControl) to revoke a live session;
//! reliable objects on streams of their own that resume after reconnecting,
//! and a [`Dialer`](driver::Dialer) that reconnects with backoff.
//!
//! ```no_run
//! use std::time::Duration;
//! use med8k_transport::relay::{Impairment, Relay};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // An inter-hospital path in front of a server on port 4433: 20 ms each
//! // way, 1% loss, 150 Mbit/s; clients dial the relay instead.
//! let wan = Impairment::new().delay(Duration::from_millis(20)).loss(0.01).rate_mbps(150.0);
//! let relay = Relay::start("127.0.0.1:0".parse()?, "127.0.0.1:4433".parse()?, wan.clone(), wan)?;
//! println!("dial {}", relay.local_addr());
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod driver;
pub mod pki;
pub use med8k_proto as proto;
pub mod relay;
