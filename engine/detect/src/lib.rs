//! # med8k-detect
//!
//! Anomaly detection on frames and cubes: a hospital's ONNX model behind a
//! checked contract, run with tract. The pipeline stage that runs it
//! (`kind = "detect"`) is `med8k_pipeline::detect`.
//!
//! - [`input`]: a frame or cube made into the model's input tensor (the one
//!   preprocessing that training and inference share).
//! - `gpu_input` (feature `gpu`, on by default): the same input made on the GPU, bit-exact, from a frame
//!   already there for compression or from uploaded planes.
//! - [`contract`]: the sidecar `NAME.json` beside `NAME.onnx`, parsed and
//!   checked (version, SHA-256 of the model bytes, shapes, names, thresholds).
//! - [`model`]: the model loaded once with tract, checked against its
//!   contract, its plan shared by workers that each run their own
//!   [`model::Runner`]; results are [`model::Detection`]s with boxes.
//! - [`profile`]: tract's time per operator and per node of the optimised
//!   plan, to see where a model spends its time.
//! - [`schedule`]: "latest frame wins": a worker analyses the newest frame,
//!   frames arriving while it is busy replace the waiting one and are counted
//!   as skipped.
//! - [`overlay`]: boxes drawn onto a copy of the frame, written as PNG.
//! - [`metrics`]: AUROC, exact with ties.
//!
//! ```no_run
//! use med8k_detect::model::Model;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let frame = med8k_media::frame::VideoFrame::zeroed(64, 64, med8k_media::frame::PixelFormat::I420)?;
//! let model = Model::load(std::path::Path::new("models/endoscope-cae/med8k-endoscope-cae.onnx"))?;
//! let mut runner = model.runner()?;
//! let d = runner.detect_frame(&frame)?;
//! println!("score {:.3}, anomalous {}, {} boxes", d.score, d.anomalous, d.boxes.len());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod contract;
#[cfg(feature = "gpu")]
pub mod gpu_input;
pub mod input;
pub mod metrics;
pub mod model;
pub mod overlay;
pub mod profile;
pub mod run;
pub mod schedule;
