//! # med8k-media
//!
//! What an image is in med8k, at the bottom of every other crate: no
//! GStreamer, no GPU, no network.
//!
//! A guided tour:
//! - [`frame`]: [`frame::VideoFrame`] (planes with strides, capture time,
//!   sequence number, source), the pixel formats (RGB, 10-bit 4:2:2 planar
//!   and `v210`, 4:2:0 at 8 and 10 bits) and the [`frame::FramePool`] that
//!   makes steady-state capture allocation-free.
//! - [`picture`]: [`picture::Picture`], the codec's view of any image: u16
//!   planes with a layout (gray, RGB(A), 4:2:2, 4:2:0, N spectral bands) and a
//!   bit depth.
//! - [`planes`]: borrowed Y'CbCr planes of any storage, for code that reads
//!   frames without owning them.
//! - [`spectral`]: [`spectral::SpectralCube`], N bands of u16 with their
//!   wavelengths, and ENVI files.
//! - [`imageio`]: pictures as files (PNG, PNM, raw frames, ENVI), chosen by
//!   extension, every header checked before anything is allocated.
//!
//! ```no_run
//! use std::path::Path;
//! use med8k_media::imageio::{read_picture, write_picture};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let cube = read_picture(Path::new("specimen.hdr"), None)?; // 7 bands
//! println!("{}x{} {} at {} bits", cube.width(), cube.height(), cube.layout(), cube.bit_depth());
//! write_picture(Path::new("band-copy.hdr"), &cube)?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

pub mod frame;
pub mod imageio;
pub mod picture;
pub mod planes;
pub mod spectral;
