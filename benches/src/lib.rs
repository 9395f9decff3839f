//! # med8k-benches
//!
//! How fast, how small and how faithful med8k is, measured on recorded
//! samples against peers on the same machine in the same run.
//!
//! - [`codec`]: the wavelet codec on each backend against OpenJPH (HTJ2K),
//!   FFV1 and JPEG-LS (`med8k bench codec`).
//! - [`detect`]: a model against the sample set's labels (AUROC) and its
//!   speed, with tract against onnxruntime (`med8k eval detect`).
//! - [`harness`]: `med8k bench`, every scenario on one page (terminal,
//!   JSON, self-contained HTML, comparison with an older run).
//! - [`heldout`]: anomaly kinds no model was fitted on, on generator frames
//!   and real image content, and false alarms per minute
//!   (`med8k eval detect --heldout`).
//! - `benches/`: criterion benches of capture, codec and detection stage by
//!   stage (`cargo bench -p med8k-benches`).
//!
//! ```no_run
//! use med8k_benches::codec::{CodecBenchOptions, bench_codec, print_table};
//! # fn main() -> anyhow::Result<()> {
//! let options = CodecBenchOptions {
//!     files: vec!["frame.png".into()],
//!     format: None,
//!     frames: 1,
//!     runs: 3,
//!     bpp: vec![3.0],
//!     backends: Vec::new(),
//!     no_peers: false,
//! };
//! print_table(&bench_codec(&options, &mut |line| eprintln!("{line}"))?);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod codec;
pub mod detect;
pub mod harness;
pub mod heldout;
