//! # med8k-engine
//!
//! The core of med8k: what a frame is, how it gets in and out through
//! GStreamer, how stages are chained, and the recorded samples everything is
//! tested and benchmarked on.
//!
//! A guided tour:
//! - [`frame`]: [`frame::VideoFrame`] (planes with strides, capture time,
//!   sequence number, source), the pixel formats (RGB, 10-bit 4:2:2 planar and
//!   `v210`, 4:2:0 at 8 and 10 bits) and the [`frame::FramePool`] that makes
//!   steady-state capture allocation-free.
//! - [`spectral`]: [`spectral::SpectralCube`], N bands of u16 with their
//!   wavelengths, and ENVI files.
//! - [`gst`]: [`gst::GstSource`] (any pipeline ending in an `appsink`) and
//!   [`gst::GstSink`] (an `appsrc` before any sink).
//! - [`pipeline`]: a source and stages on threads joined by bounded channels,
//!   with frames/s, latency percentiles and drops per stage.
//! - [`samples`]: the deterministic 8K endoscope clip and 7-band cubes.
//! - [`config`]: `med8k run` pipelines in TOML.
//! - [`gpu`]: the GPU adapters wgpu finds.
//!
//! ```no_run
//! use med8k_engine::gst::{GstSource, SourceOptions};
//! use med8k_engine::pipeline::{Pipeline, Shutdown};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let clip = std::path::Path::new("endoscope.mkv");
//! let source = GstSource::open_clip(clip, SourceOptions::default())?;
//! let report = Pipeline::new(source).run(&Shutdown::new())?;
//! println!("captured {} frames at {:.1} frames/s", report.source.frames_out, report.source.fps);
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod codec;
pub mod config;
pub mod detect;
pub mod frame;
pub mod gpu;
pub mod gst;
pub mod imageio;
pub mod picture;
pub mod pipeline;
pub mod samples;
pub mod spectral;
