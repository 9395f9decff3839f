//! # med8k-av1
//!
//! AV1 for thin network links: an 8K source is box-downscaled to 4:2:0,
//! coded by [rav1e] at a fixed bit rate and written as IVF, which GStreamer
//! reads with `ivfparse ! av1parse ! av1dec`.
//!
//! A guided tour:
//! - [`downscale_420`]: Yuv422, Yuv420 or RGB at 8..=16 bits to Yuv420 at
//!   8 or 10 bits and 1/1, 1/2 or 1/4 size. Pure integer arithmetic; its
//!   documentation is the specification of the GPU kernel that must match it
//!   bit for bit; [`gpu::GpuDownscaler`] (feature `gpu`, on by default) is
//!   that kernel.
//! - [`Av1Config`]: bit rate (see [`LinkClass`]), speed, tiles, key frames,
//!   frame rate; [`Av1Config::new_encoder`] checks them and names the bad value.
//! - [`Av1Encoder`]: [`send_picture`](Av1Encoder::send_picture), then
//!   [`receive_packets`](Av1Encoder::receive_packets) (an empty `Vec` while
//!   rav1e fills its lookahead), [`finish`](Av1Encoder::finish) at the end.
//! - [`IvfWriter`]: the IVF container; [`encode_to_ivf`] does it all for a
//!   sequence of pictures.
//!
//! ```no_run
//! use med8k_av1::{Av1Config, LinkClass};
//! use med8k_media::picture::{Layout, Picture};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let frame = Picture::zeroed(Layout::Yuv422, 7680, 4320, 10)?;
//! let small = med8k_av1::downscale_420(&frame, 2, 8)?; // 3840x2160, 8-bit 4:2:0
//! let cfg = Av1Config::for_link(LinkClass::Mbps40);
//! let stats = med8k_av1::encode_to_ivf([small], &cfg, std::path::Path::new("out.ivf"))?;
//! println!("{} frames, {:.0} kbit/s", stats.frames, stats.kbps);
//! # Ok(()) }
//! ```

use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use med8k_media::picture::{Layout, Picture, PictureError};

#[cfg(feature = "gpu")]
pub mod gpu;

/// The fastest rav1e speed preset, and the default.
pub const DEFAULT_SPEED: u8 = 10;
/// Default tile columns (tiles are rav1e's unit of parallelism).
pub const DEFAULT_TILE_COLS: u32 = 4;
/// Default tile rows.
pub const DEFAULT_TILE_ROWS: u32 = 2;
/// Most tile columns or rows (AV1's limit); counts must be powers of two.
pub const MAX_TILES_PER_AXIS: u32 = 64;
/// Default distance between key frames, in frames (2 s at 60 frames/s).
pub const DEFAULT_KEYFRAME_INTERVAL: u32 = 120;
/// Default frame rate, numerator and denominator (frames per second).
pub const DEFAULT_FRAME_RATE: (u32, u32) = (60, 1);
/// Highest bit rate in kbit/s (rav1e counts bits/s in an `i32`).
pub const MAX_BITRATE_KBPS: u32 = 2_000_000;
/// Smallest width or height rav1e codes.
pub const MIN_DIMENSION: u32 = 16;
/// Largest width or height AV1 (and IVF) can carry.
pub const MAX_DIMENSION: u32 = 65535;
/// Longest rav1e lookahead [`Av1Config::with_lookahead`] accepts.
pub const MAX_LOOKAHEAD: u32 = 250;
/// Share of a link's capacity [`Av1Config::for_link`] gives the video, in
/// percent; the rest is headroom for transport overhead and rate overshoot.
pub const VIDEO_SHARE_PERCENT: u32 = 80;

/// Why downscaling, encoding or writing AV1 failed. Each variant carries the
/// offending value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Av1Error {
    /// An [`Av1Config`] setting (or the encoder size) is out of range.
    #[error("{field} = {value} is not allowed: expected {allowed}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What it was set to.
        value: String,
        /// What it may be.
        allowed: String,
    },
    /// rav1e refused a configuration that passed med8k's checks.
    #[error("rav1e rejected the configuration: {reason}")]
    Rav1eConfig {
        /// rav1e's message.
        reason: String,
    },
    /// [`downscale_420`] was asked for a factor other than 1, 2 or 4.
    #[error("downscale factor {0} is not supported: expected 1, 2 or 4")]
    Factor(u32),
    /// [`downscale_420`] was asked for an output depth other than 8 or 10.
    #[error("output bit depth {0} is not supported: expected 8 or 10")]
    OutputDepth(u8),
    /// [`downscale_420`] got a layout it does not convert.
    #[error("cannot downscale a {0} picture: expected yuv422, yuv420 or rgb")]
    InputLayout(Layout),
    /// [`downscale_420`] got a bit depth outside 8..=16.
    #[error("cannot downscale a {0}-bit picture: expected 8..=16 bits")]
    InputDepth(u8),
    /// The GPU downscaler ([`gpu`]) failed: no room on the device, a
    /// lost device, a failed read-back.
    #[cfg(feature = "gpu")]
    #[error("GPU downscale: {0}")]
    Gpu(#[from] med8k_gpu::GpuError),
    /// A picture sent to the encoder is not 4:2:0.
    #[error("the AV1 encoder takes yuv420 pictures, got {0}")]
    PictureLayout(Layout),
    /// A picture sent to the encoder has another size than configured.
    #[error("picture is {got_width}x{got_height}, the encoder was set up for {width}x{height}")]
    PictureSize {
        /// Configured width.
        width: u32,
        /// Configured height.
        height: u32,
        /// The picture's width.
        got_width: u32,
        /// The picture's height.
        got_height: u32,
    },
    /// A picture sent to the encoder has another bit depth than configured.
    #[error("picture is {got}-bit, the encoder was set up for {expected}-bit")]
    PictureDepth {
        /// Configured depth.
        expected: u8,
        /// The picture's depth.
        got: u8,
    },
    /// A picture was sent after [`Av1Encoder::finish`].
    #[error("the encoder is finished and takes no more pictures")]
    Finished,
    /// rav1e failed while encoding.
    #[error("rav1e failed: {reason}")]
    Encoder {
        /// rav1e's status.
        reason: String,
    },
    /// A value does not fit its IVF field.
    #[error("IVF cannot hold {what} = {value} (at most {max})")]
    IvfLimit {
        /// The field.
        what: &'static str,
        /// The value.
        value: u64,
        /// Its largest value.
        max: u64,
    },
    /// [`encode_to_ivf`] got no pictures, so it knows no size.
    #[error("no pictures to encode")]
    NoPictures,
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: io::Error,
    },
    /// Writing to an [`IvfWriter`]'s writer failed.
    #[error("I/O: {0}")]
    Io(#[from] io::Error),
    /// A picture could not be built.
    #[error(transparent)]
    Picture(#[from] PictureError),
}

mod config;
mod downscale;
mod encoder;
mod ivf;

pub use config::*;
pub use downscale::*;
pub use encoder::*;
pub use ivf::*;

/// What [`encode_to_ivf`] wrote.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Av1Stats {
    /// AV1 bytes (without IVF headers).
    pub bytes: u64,
    /// Frames coded.
    pub frames: u64,
    /// Key frames among them.
    pub keyframes: u64,
    /// Bit rate achieved in kbit/s, at the configured frame rate.
    pub kbps: f64,
    /// Time spent sending, encoding and writing.
    pub elapsed: Duration,
}

impl Av1Stats {
    /// Frames encoded per second of wall-clock time.
    pub fn fps(&self) -> f64 {
        self.frames as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// Encode `pictures` (4:2:0 at `cfg.bit_depth`, all of the first one's size)
/// into an IVF file at `path`.
pub fn encode_to_ivf(
    pictures: impl IntoIterator<Item = Picture>,
    cfg: &Av1Config,
    path: &Path,
) -> Result<Av1Stats, Av1Error> {
    let started = Instant::now();
    let mut pictures = pictures.into_iter().peekable();
    let (width, height) = match pictures.peek() {
        Some(p) => (p.width(), p.height()),
        None => return Err(Av1Error::NoPictures),
    };
    let mut encoder = cfg.new_encoder(width, height)?;
    let in_file = |e: Av1Error| match e {
        Av1Error::Io(source) => Av1Error::File {
            path: path.to_owned(),
            source,
        },
        other => other,
    };
    let file = std::fs::File::create(path).map_err(|source| Av1Error::File {
        path: path.to_owned(),
        source,
    })?;
    let mut ivf = IvfWriter::new(io::BufWriter::new(file), width, height, cfg.frame_rate, 0)
        .map_err(in_file)?;
    let mut stats = Av1Stats {
        bytes: 0,
        frames: 0,
        keyframes: 0,
        kbps: 0.0,
        elapsed: Duration::ZERO,
    };
    let mut write = |packets: Vec<Av1Packet>| -> Result<(), Av1Error> {
        for p in packets {
            ivf.write_frame(&p.data, p.frame).map_err(in_file)?;
            stats.bytes += p.data.len() as u64;
            stats.frames += 1;
            stats.keyframes += u64::from(p.keyframe);
        }
        Ok(())
    };
    for pic in pictures {
        encoder.send_picture(&pic)?;
        write(encoder.receive_packets()?)?;
    }
    write(encoder.finish()?)?;
    ivf.finish().map_err(in_file)?;
    let (num, den) = cfg.frame_rate;
    let seconds = stats.frames as f64 * f64::from(den) / f64::from(num);
    stats.kbps = if seconds > 0.0 {
        stats.bytes as f64 * 8.0 / seconds / 1000.0
    } else {
        0.0
    };
    stats.elapsed = started.elapsed();
    Ok(stats)
}
