//! # med8k-link
//!
//! The application layer between hospitals: what a sending site, a
//! receiving site and a physician's desk do over a QUIC link, on top of the
//! transport (`med8k-transport`), the engine (capture, codec, detection) and
//! consent (`med8k-auth`). `med8k send`, `serve`, `fetch` and `bench link`
//! are thin commands over these flows, which the tests also run in-process.
//!
//! A guided tour:
//! - [`site`]: a site's TOML configuration: identity, facility TLS, link
//!   settings and the gate.
//! - [`gate`]: the consent gate on the transport's `Gate` hook (HPKI login,
//!   JPKI login, the consent ledger, the audit log; sessions decided again
//!   while open), and the client's [`gate::ConsentCredentials`].
//! - [`send`]: capture, code and send live frames (with detection results
//!   stamped to them) and a reliable object; reconnects after an outage.
//! - [`serve`]: accept links, store frames, objects and results, show
//!   frames on a monitor, and offer a source to permitted sessions.
//! - [`fetch`]: a physician's pull of a patient's data through the gate.
//! - [`bench`]: goodput and frame latency on loopback against a plain quinn
//!   ceiling, through the impairment relay; what arrives on each link class.
//! - [`plan`]: the 8K stream a sender chooses for a measured path (the
//!   rate-controlled wavelet stream, or AV1 of a downscaled picture).
//!
//! The server's gate comes from the site configuration:
//! - [`site::GateKind::Consent`]: the consent gate; [`fetch`] presents the
//!   physician's HPKI login, the patient's JPKI login and the access claim;
//! - [`site::GateKind::AllowAuthenticated`], the development gate: mutual
//!   TLS decides who may connect, and **no consent token is checked**
//!   ([`send`] sends a placeholder token that says so). Every permit is
//!   logged as such, and [`serve`] refuses to offer a source under it
//!   unless asked explicitly ([`serve::ServeOptions::development_gate`]).
//!
//! ```no_run
//! use med8k_link::serve::{ServeEvent, ServeOptions, serve};
//! use med8k_pipeline::Shutdown;
//! # fn main() -> anyhow::Result<()> {
//! let options = ServeOptions::new("[::]:4433".parse()?, "configs/sites/site-b.toml");
//! let summary = serve(&options, &Shutdown::new(), &mut |event| {
//!     if let ServeEvent::Listening(addr) = event {
//!         println!("listening on {addr}");
//!     }
//! })?;
//! println!("{} frames on {} links", summary.frames, summary.links);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod annotations;
pub mod bench;
pub mod desk;
mod display;
pub mod fetch;
pub mod gate;
pub mod instructions;
mod overlay;
pub mod pacs;
pub mod plan;
pub mod send;
pub mod serve;
pub mod site;
pub mod view;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use med8k_media::picture::{Layout, Picture};
use med8k_transport::driver::{Credentials, Gate, PeerInfo};
use med8k_transport::proto::{
    self, AuthDecision, CHALLENGE_LEN, Codec, FrameHeader, Hello, PixelFormat, Slice, Token,
    TokenKind,
};

/// What the client's placeholder token says (the development gate does not
/// read it).
const NO_CONSENT_TOKEN: &[u8] = b"med8k development link: no consent token";

/// A tokio runtime for one command: a couple of workers is plenty for a
/// link and leaves the cores to the codec.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("med8k-link")
        .build()?)
}

/// The development gate: permits every peer that passed mutual TLS and says
/// in the log that consent was not checked.
#[derive(Debug, Default)]
pub struct DevelopmentGate {
    quiet: AtomicBool,
}

impl DevelopmentGate {
    /// A gate that logs nothing (the benchmark, which is its own peer).
    pub fn quiet() -> DevelopmentGate {
        DevelopmentGate {
            quiet: AtomicBool::new(true),
        }
    }
}

impl Gate for DevelopmentGate {
    fn authorise(
        &self,
        peer: &PeerInfo,
        _challenge: &[u8; CHALLENGE_LEN],
        tokens: &[Token],
    ) -> AuthDecision {
        if !self.quiet.load(Ordering::Relaxed) {
            tracing::warn!(
                facility = %peer.facility,
                remote = %peer.remote,
                tokens = tokens.len(),
                "development gate: permitted on mutual TLS alone; consent NOT checked"
            );
        }
        AuthDecision::Permit
    }
}

/// The client's side of the development gate: one placeholder token.
pub fn development_credentials() -> Arc<dyn Credentials> {
    Arc::new(|_: &Hello, _: &[u8; CHALLENGE_LEN]| {
        vec![Token {
            kind: TokenKind::Consent,
            bytes: NO_CONSENT_TOKEN.to_vec(),
        }]
    })
}

/// The header of a coded picture: one slice covering the payload, with its
/// CRC.
pub fn frame_header(pic: &Picture, lossless: bool, payload: &[u8], capture_us: u64) -> FrameHeader {
    let layout = match pic.layout() {
        Layout::Gray => proto::Layout::Gray,
        Layout::Rgb => proto::Layout::Rgb,
        Layout::Rgba => proto::Layout::Rgba,
        Layout::Yuv422 => proto::Layout::Yuv422,
        Layout::Yuv420 => proto::Layout::Yuv420,
        Layout::Bands(n) => proto::Layout::Bands(n),
    };
    FrameHeader {
        channel: 0,
        seq: 0,
        capture_us,
        codec: if lossless {
            Codec::WaveletLossless
        } else {
            Codec::WaveletLossy
        },
        width: pic.width(),
        height: pic.height(),
        format: PixelFormat {
            layout,
            bit_depth: pic.bit_depth(),
        },
        slices: vec![Slice {
            len: payload.len() as u32,
            crc: crc32fast::hash(payload),
        }],
        payload_len: payload.len() as u32,
    }
}

/// Counts lost sequence numbers in loss reports (saturating: a report is
/// the peer's word, and the session only checks it against what was sent).
pub fn count_lost(ranges: &[proto::SeqRange]) -> u64 {
    ranges
        .iter()
        .map(|r| r.count())
        .fold(0u64, u64::saturating_add)
}

/// Megabits per second.
pub fn mbps(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds / 1e6
    } else {
        0.0
    }
}
