//! `med8k serve`, `med8k send`, `med8k fetch` and `med8k bench link`: QUIC
//! links between sites, wired from the transport crate.
//!
//! The server's gate comes from the site configuration:
//! - [`med8k_transport::site::GateKind::Consent`]: the consent gate of
//!   [`med8k_auth::gate`]; `med8k fetch` presents the physician's HPKI
//!   login, the patient's JPKI login and the access claim
//!   ([`fetch`]);
//! - [`med8k_transport::site::GateKind::AllowAuthenticated`], the
//!   development gate: mutual TLS decides who may connect, and **no consent
//!   token is checked** (`med8k send` sends a placeholder token that says
//!   so). Every permit is logged as such.

pub mod bench;
mod display;
pub mod fetch;
pub mod send;
pub mod serve;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use med8k_engine::picture::{Layout, Picture};
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

/// Counts lost sequence numbers in loss reports.
pub fn count_lost(ranges: &[proto::SeqRange]) -> u64 {
    ranges.iter().map(|r| r.last - r.first + 1).sum()
}

/// Megabits per second.
pub fn mbps(bytes: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        bytes as f64 * 8.0 / seconds / 1e6
    } else {
        0.0
    }
}
