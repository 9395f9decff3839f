//! # med8k-transport
//!
//! The links between hospitals: one QUIC connection per site pair, mutually
//! authenticated with facility certificates, carrying live video that never
//! waits for a late frame and pathology images that arrive whole or not at
//! all.
//!
//! ## What exists
//! The sans-IO protocol core, [`proto`]:
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
//! ## What the driver will add
//! A quinn driver (not written yet) that owns the sockets and the clock:
//! the QUIC endpoint with mutual TLS from facility certificates, a control
//! stream per connection, one unidirectional stream per live frame (newest
//! first, reset at its deadline), a reliable stream for object data, and the
//! wiring of the consent gate from `med8k-auth` to
//! [`Event::AuthRequest`](proto::Event::AuthRequest).
#![warn(missing_docs)]

pub mod proto;
