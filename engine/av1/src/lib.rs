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

use std::io::{self, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rav1e::color::{
    ChromaSamplePosition, ChromaSampling, ColorDescription, ColorPrimaries, MatrixCoefficients,
    PixelRange, TransferCharacteristics,
};
use rav1e::data::{FrameType, Rational};
use rav1e::prelude::{FrameParameters, FrameTypeOverride};
use rav1e::{Config, Context, EncoderConfig, EncoderStatus, Pixel};
use rayon::prelude::*;

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

// ---------------------------------------------------------------------------
// Downscale: the CPU twin of the GPU kernel
// ---------------------------------------------------------------------------

/// Limited-range BT.709 Y, Cb, Cr of one full-range RGB pixel, at 16 bits.
///
/// All arithmetic is integer; this function is part of the specification of
/// [`downscale_420`] (and of its GPU kernel):
///
/// 1. Each component `c` of depth `d` (8..=16, `max = 2^d - 1`) is clamped
///    to `max` and expanded to 16 bits in u32:
///    `c16 = (min(c, max) * 65535 + (max >> 1)) / max` (integer division;
///    the product is below 2^32). For `d = 8` this is `c * 257`, for
///    `d = 16` it is `c`.
/// 2. Luma in u32, coefficients `round(K * 219 * 256 / 65535 * 65536)` with
///    BT.709's `Kr = 0.2126`, `Kg = 0.7152`, `Kb = 0.0722`:
///    `Y = ((11919 * r16 + 40098 * g16 + 4048 * b16 + 32768) >> 16) + 4096`.
///    The sum is below 2^32; `Y` lies in `4096..=60160` (16 and 235 at 8 bits).
/// 3. Chroma in i32 (`>>` is an arithmetic shift, rounding towards minus
///    infinity), each row of coefficients summing to zero so grey is exactly
///    neutral:
///    `Cb = ((-6570 * r16 - 22102 * g16 + 28672 * b16 + 32768) >> 16) + 32768`,
///    `Cr = ((28672 * r16 - 26043 * g16 - 2629 * b16 + 32768) >> 16) + 32768`.
///    Every partial sum stays within ±2^31; `Cb` and `Cr` lie in
///    `4096..=61440` (16 and 240 at 8 bits).
///
/// So white is `[60160, 32768, 32768]` and black `[4096, 32768, 32768]`.
pub fn bt709_limited16(rgb: [u16; 3], bit_depth: u8) -> [u16; 3] {
    let max = (1u32 << bit_depth.clamp(1, 16)) - 1;
    let [r, g, b] = rgb.map(|c| expand16(u32::from(c), max));
    let (y, cb, cr) = ycc16(r, g, b);
    [y as u16, cb as u16, cr as u16]
}

/// Step 1 of [`bt709_limited16`]: `(min(c, max) * 65535 + (max >> 1)) / max`.
fn expand16(c: u32, max: u32) -> u32 {
    (c.min(max) * 65535 + (max >> 1)) / max
}

/// Steps 2 and 3 of [`bt709_limited16`] on 16-bit full-range components.
fn ycc16(r: u32, g: u32, b: u32) -> (u32, u32, u32) {
    (luma16(r, g, b), cb16(r, g, b), cr16(r, g, b))
}

fn luma16(r: u32, g: u32, b: u32) -> u32 {
    ((11919 * r + 40098 * g + 4048 * b + 32768) >> 16) + 4096
}

fn cb16(r: u32, g: u32, b: u32) -> u32 {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    (((-6570 * r - 22102 * g + 28672 * b + 32768) >> 16) + 32768) as u32
}

fn cr16(r: u32, g: u32, b: u32) -> u32 {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    (((28672 * r - 26043 * g - 2629 * b + 32768) >> 16) + 32768) as u32
}

/// A box average `avg` of `from`-bit samples as a `to`-bit sample:
/// `min((avg + (1 << (s - 1))) >> s, 2^to - 1)` with `s = from - to` when
/// `from > to`, `min(avg << (to - from), 2^to - 1)` otherwise. The clamp
/// catches averages that round up past the maximum (1023 at 10 bits becomes
/// 256, clamped to 255, at 8 bits). Part of the specification of
/// [`downscale_420`].
pub fn requantize(avg: u32, from: u8, to: u8) -> u16 {
    let max = (1u32 << to) - 1;
    let v = if from > to {
        let s = u32::from(from - to);
        (avg + (1 << (s - 1))) >> s
    } else {
        avg << u32::from(to - from)
    };
    v.min(max) as u16
}

/// Downscale `src` by `factor` to 4:2:0 at `out_depth` bits: the CPU twin,
/// and the specification, of the GPU downscale kernel. Integer arithmetic
/// only; a kernel that follows the steps below matches it bit for bit.
///
/// **Input**: [`Layout::Yuv422`], [`Layout::Yuv420`] or [`Layout::Rgb`],
/// `w`×`h`, bit depth `d` in 8..=16. `factor` `f` is 1, 2 or 4; `out_depth`
/// 8 or 10.
///
/// **Output**: [`Layout::Yuv420`], `W`×`H` with `W = ceil(w / f)` rounded up
/// to even (`W = ceil(w / f) + (ceil(w / f) & 1)`), likewise `H`; chroma
/// planes `W/2`×`H/2`.
///
/// **Box filter**: every output sample averages a `bw`×`bh` box of a source
/// plane `P` of size `pw`×`ph`. Output sample `(x, y)` reads source samples
/// `P[min(x*bw + i, pw - 1), min(y*bh + j, ph - 1)]` for `0 <= i < bw`,
/// `0 <= j < bh` (edge samples repeat past the right and bottom borders, which
/// covers odd and non-multiple sizes); with `n = bw*bh` and `sum` their u32
/// sum, the average is `(sum + n/2) / n` (`n` is a power of two, so this is a
/// shift). The average is then brought to `out_depth` by [`requantize`] from
/// the source depth (`d` for YCbCr input, 16 for RGB).
///
/// - Luma: `bw = bh = f` over the source luma plane.
/// - Chroma of Yuv422 (source chroma `ceil(w/2)`×`h`): `bw = f`, `bh = 2f`.
/// - Chroma of Yuv420 (source chroma `ceil(w/2)`×`ceil(h/2)`): `bw = bh = f`.
///
/// The output chroma sample thus covers exactly the source area of its 2×2
/// output luma samples. Chroma siting is not moved: for co-sited 4:2:2 input
/// the output is co-sited horizontally and centred vertically.
///
/// **RGB**: each source pixel is first converted by [`bt709_limited16`] to
/// 16-bit limited-range Y, Cb, Cr (4:4:4, computed on the fly); luma then
/// averages `f`×`f` boxes of Y and chroma `2f`×`2f` boxes of Cb and Cr, all
/// over the `w`×`h` pixel grid, and [`requantize`] goes from 16 bits to
/// `out_depth`. Sums stay below `64 * 61440 < 2^22`.
///
/// Samples above the source depth's maximum (which [`Picture`] only lets in
/// through `planes_mut`) do not panic: RGB clamps them, YCbCr averages clamp
/// at the output.
pub fn downscale_420(src: &Picture, factor: u32, out_depth: u8) -> Result<Picture, Av1Error> {
    if !matches!(factor, 1 | 2 | 4) {
        return Err(Av1Error::Factor(factor));
    }
    if !matches!(out_depth, 8 | 10) {
        return Err(Av1Error::OutputDepth(out_depth));
    }
    let depth = src.bit_depth();
    if !(8..=16).contains(&depth) {
        return Err(Av1Error::InputDepth(depth));
    }
    let (w, h) = (src.width(), src.height());
    let even = |v: u32| v + (v & 1);
    let (ow, oh) = (even(w.div_ceil(factor)), even(h.div_ceil(factor)));
    let (cw, ch) = (ow / 2, oh / 2);
    let planes = match src.layout() {
        layout @ (Layout::Yuv422 | Layout::Yuv420) => {
            let p = src.planes();
            let luma = Source {
                w,
                h,
                bw: factor,
                bh: factor,
            };
            let y = luma.average(ow, oh, depth, out_depth, |x, y| {
                u32::from(p[0][(y * w + x) as usize])
            });
            let (sx, sy) = layout.subsampling(1);
            let (pw, ph) = src.plane_dims(1);
            let chroma = Source {
                w: pw,
                h: ph,
                bw: (2 * factor) >> sx,
                bh: (2 * factor) >> sy,
            };
            let cb = chroma.average(cw, ch, depth, out_depth, |x, y| {
                u32::from(p[1][(y * pw + x) as usize])
            });
            let cr = chroma.average(cw, ch, depth, out_depth, |x, y| {
                u32::from(p[2][(y * pw + x) as usize])
            });
            vec![y, cb, cr]
        }
        Layout::Rgb => {
            let p = src.planes();
            let max = (1u32 << depth) - 1;
            // A table of step 1 of `bt709_limited16`: the same values, no
            // division per sample.
            let lut: Vec<u32> = (0..=max).map(|c| expand16(c, max)).collect();
            let rgb = |x: u32, y: u32| {
                let i = (y * w + x) as usize;
                let c = |plane: &Vec<u16>| lut[usize::from(plane[i]).min(max as usize)];
                (c(&p[0]), c(&p[1]), c(&p[2]))
            };
            let luma = Source {
                w,
                h,
                bw: factor,
                bh: factor,
            };
            let chroma = Source {
                w,
                h,
                bw: 2 * factor,
                bh: 2 * factor,
            };
            let y = luma.average(ow, oh, 16, out_depth, |x, y| {
                let (r, g, b) = rgb(x, y);
                luma16(r, g, b)
            });
            let cb = chroma.average(cw, ch, 16, out_depth, |x, y| {
                let (r, g, b) = rgb(x, y);
                cb16(r, g, b)
            });
            let cr = chroma.average(cw, ch, 16, out_depth, |x, y| {
                let (r, g, b) = rgb(x, y);
                cr16(r, g, b)
            });
            vec![y, cb, cr]
        }
        other => return Err(Av1Error::InputLayout(other)),
    };
    Ok(Picture::new(Layout::Yuv420, ow, oh, out_depth, planes)?)
}

/// A source plane of `w`×`h` samples read through `bw`×`bh` boxes.
struct Source {
    w: u32,
    h: u32,
    bw: u32,
    bh: u32,
}

impl Source {
    /// The `ow`×`oh` plane of box averages of `sample(x, y)`, requantised
    /// from `from` to `to` bits.
    fn average(
        &self,
        ow: u32,
        oh: u32,
        from: u8,
        to: u8,
        sample: impl Fn(u32, u32) -> u32 + Sync,
    ) -> Vec<u16> {
        let n = self.bw * self.bh;
        let mut out = vec![0u16; ow as usize * oh as usize];
        out.par_chunks_mut(ow as usize)
            .enumerate()
            .for_each(|(oy, row)| {
                let oy = oy as u32;
                for (ox, v) in (0u32..).zip(row.iter_mut()) {
                    let mut sum = 0u32;
                    for j in 0..self.bh {
                        let y = (oy * self.bh + j).min(self.h - 1);
                        for i in 0..self.bw {
                            let x = (ox * self.bw + i).min(self.w - 1);
                            sum += sample(x, y);
                        }
                    }
                    *v = requantize((sum + n / 2) / n, from, to);
                }
            });
        out
    }
}

// ---------------------------------------------------------------------------
// Configuration
// ---------------------------------------------------------------------------

/// The network links med8k streams over, by capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkClass {
    /// 150 Mbit/s.
    Mbps150,
    /// 40 Mbit/s.
    Mbps40,
    /// 20 Mbit/s.
    Mbps20,
}

impl LinkClass {
    /// Every class, widest first.
    pub const ALL: [LinkClass; 3] = [LinkClass::Mbps150, LinkClass::Mbps40, LinkClass::Mbps20];

    /// The link's capacity in kbit/s.
    pub fn link_kbps(self) -> u32 {
        match self {
            LinkClass::Mbps150 => 150_000,
            LinkClass::Mbps40 => 40_000,
            LinkClass::Mbps20 => 20_000,
        }
    }

    /// The video bit rate for this link: [`VIDEO_SHARE_PERCENT`] of its capacity.
    pub fn video_kbps(self) -> u32 {
        self.link_kbps() / 100 * VIDEO_SHARE_PERCENT
    }
}

/// AV1 encoder settings, built with `with_*` and checked by
/// [`Av1Config::new_encoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Av1Config {
    /// Target bit rate in kbit/s, `1..=MAX_BITRATE_KBPS`.
    pub bitrate_kbps: u32,
    /// rav1e speed preset, 0 (slowest) ..= 10 (fastest).
    pub speed: u8,
    /// Tile columns: a power of two, 1..=64 (rav1e may use more where AV1
    /// requires it for wide pictures, fewer where the picture is small).
    pub tile_cols: u32,
    /// Tile rows: a power of two, 1..=64.
    pub tile_rows: u32,
    /// No frame reordering: each packet holds only the frame just shown.
    pub low_latency: bool,
    /// Most frames between key frames, at least 1.
    pub keyframe_interval: u32,
    /// Bits per sample, 8 or 10.
    pub bit_depth: u8,
    /// Frames per second as numerator and denominator (`60000, 1001` for 59.94).
    pub frame_rate: (u32, u32),
    /// Frames rav1e looks ahead for rate control and temporal RDO,
    /// `1..=MAX_LOOKAHEAD`; `None` keeps the speed preset's (10 at speed
    /// 10). The first packet comes out after about this many frames.
    pub lookahead: Option<u32>,
    /// Encoder threads; 0 uses rayon's global pool.
    pub threads: usize,
}

impl Av1Config {
    /// Settings for `bitrate_kbps` with every other value at its default.
    pub fn new(bitrate_kbps: u32) -> Self {
        Av1Config {
            bitrate_kbps,
            speed: DEFAULT_SPEED,
            tile_cols: DEFAULT_TILE_COLS,
            tile_rows: DEFAULT_TILE_ROWS,
            low_latency: true,
            keyframe_interval: DEFAULT_KEYFRAME_INTERVAL,
            bit_depth: 8,
            frame_rate: DEFAULT_FRAME_RATE,
            lookahead: None,
            threads: 0,
        }
    }

    /// Settings for a link: the bit rate is [`LinkClass::video_kbps`].
    pub fn for_link(link: LinkClass) -> Self {
        Av1Config::new(link.video_kbps())
    }

    /// Set the bit rate in kbit/s.
    pub fn with_bitrate_kbps(mut self, kbps: u32) -> Self {
        self.bitrate_kbps = kbps;
        self
    }
    /// Set the speed preset.
    pub fn with_speed(mut self, speed: u8) -> Self {
        self.speed = speed;
        self
    }
    /// Set tile columns and rows.
    pub fn with_tiles(mut self, cols: u32, rows: u32) -> Self {
        self.tile_cols = cols;
        self.tile_rows = rows;
        self
    }
    /// Allow (false) or forbid (true) frame reordering.
    pub fn with_low_latency(mut self, low_latency: bool) -> Self {
        self.low_latency = low_latency;
        self
    }
    /// Set the most frames between key frames.
    pub fn with_keyframe_interval(mut self, frames: u32) -> Self {
        self.keyframe_interval = frames;
        self
    }
    /// Set the bit depth.
    pub fn with_bit_depth(mut self, bits: u8) -> Self {
        self.bit_depth = bits;
        self
    }
    /// Set the frame rate to `num / den` frames per second.
    pub fn with_frame_rate(mut self, num: u32, den: u32) -> Self {
        self.frame_rate = (num, den);
        self
    }
    /// Set the lookahead (`None`: the preset's).
    pub fn with_lookahead(mut self, frames: Option<u32>) -> Self {
        self.lookahead = frames;
        self
    }
    /// Set the encoder threads (0: rayon's global pool).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Check the settings for a `width`×`height` stream.
    pub fn validate(&self, width: u32, height: u32) -> Result<(), Av1Error> {
        let bad = |field, value: String, allowed: String| {
            Err(Av1Error::Config {
                field,
                value,
                allowed,
            })
        };
        let dims = format!("{MIN_DIMENSION}..={MAX_DIMENSION}");
        if !(MIN_DIMENSION..=MAX_DIMENSION).contains(&width) {
            return bad("width", width.to_string(), dims);
        }
        if !(MIN_DIMENSION..=MAX_DIMENSION).contains(&height) {
            return bad("height", height.to_string(), dims);
        }
        if !(1..=MAX_BITRATE_KBPS).contains(&self.bitrate_kbps) {
            return bad(
                "bitrate_kbps",
                self.bitrate_kbps.to_string(),
                format!("1..={MAX_BITRATE_KBPS} kbit/s"),
            );
        }
        if self.speed > DEFAULT_SPEED {
            return bad("speed", self.speed.to_string(), "0..=10".into());
        }
        let tiles = format!("a power of two in 1..={MAX_TILES_PER_AXIS}");
        if !self.tile_cols.is_power_of_two() || self.tile_cols > MAX_TILES_PER_AXIS {
            return bad("tile_cols", self.tile_cols.to_string(), tiles);
        }
        if !self.tile_rows.is_power_of_two() || self.tile_rows > MAX_TILES_PER_AXIS {
            return bad("tile_rows", self.tile_rows.to_string(), tiles);
        }
        if self.keyframe_interval == 0 {
            return bad("keyframe_interval", "0".into(), "at least 1 frame".into());
        }
        if !matches!(self.bit_depth, 8 | 10) {
            return bad("bit_depth", self.bit_depth.to_string(), "8 or 10".into());
        }
        let (num, den) = self.frame_rate;
        if num == 0 || den == 0 {
            return bad(
                "frame_rate",
                format!("{num}/{den}"),
                "a positive numerator and denominator".into(),
            );
        }
        if let Some(l) = self.lookahead
            && !(1..=MAX_LOOKAHEAD).contains(&l)
        {
            return bad(
                "lookahead",
                l.to_string(),
                format!("1..={MAX_LOOKAHEAD} frames"),
            );
        }
        Ok(())
    }

    /// An encoder for `width`×`height` pictures.
    pub fn new_encoder(&self, width: u32, height: u32) -> Result<Av1Encoder, Av1Error> {
        self.validate(width, height)?;
        let mut enc = EncoderConfig::with_speed_preset(self.speed);
        enc.width = width as usize;
        enc.height = height as usize;
        enc.bit_depth = usize::from(self.bit_depth);
        enc.chroma_sampling = ChromaSampling::Cs420;
        enc.chroma_sample_position = ChromaSamplePosition::Unknown;
        enc.pixel_range = PixelRange::Limited;
        enc.color_description = Some(ColorDescription {
            color_primaries: ColorPrimaries::BT709,
            transfer_characteristics: TransferCharacteristics::BT709,
            matrix_coefficients: MatrixCoefficients::BT709,
        });
        // rav1e's time base is seconds per tick: the inverse frame rate.
        enc.time_base = Rational::new(u64::from(self.frame_rate.1), u64::from(self.frame_rate.0));
        enc.low_latency = self.low_latency;
        enc.bitrate = (self.bitrate_kbps * 1000) as i32;
        let interval = u64::from(self.keyframe_interval);
        enc.set_key_frame_interval(interval.min(12), interval);
        enc.tile_cols = self.tile_cols as usize;
        enc.tile_rows = self.tile_rows as usize;
        enc.tiles = 0;
        if let Some(l) = self.lookahead {
            enc.speed_settings.rdo_lookahead_frames = l as usize;
        }
        let cfg = Config::new()
            .with_encoder_config(enc)
            .with_threads(self.threads);
        let rejected = |e: rav1e::InvalidConfig| Av1Error::Rav1eConfig {
            reason: e.to_string(),
        };
        let ctx = if self.bit_depth == 8 {
            Ctx::Eight(cfg.new_context().map_err(rejected)?)
        } else {
            Ctx::Ten(cfg.new_context().map_err(rejected)?)
        };
        Ok(Av1Encoder {
            config: self.clone(),
            width,
            height,
            ctx,
            keyframe_requested: false,
            finished: false,
            sent: 0,
        })
    }
}

// ---------------------------------------------------------------------------
// Encoder
// ---------------------------------------------------------------------------

/// One coded frame (a temporal unit of OBUs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Packet {
    /// The OBUs.
    pub data: Vec<u8>,
    /// Number of the picture it codes, counting from 0 in sending order.
    pub frame: u64,
    /// True for a key frame (a decoder can start here).
    pub keyframe: bool,
}

enum Ctx {
    Eight(Context<u8>),
    Ten(Context<u16>),
}

/// rav1e encoding one stream of 4:2:0 pictures of one size and depth.
///
/// Call order: [`send_picture`](Self::send_picture) for each picture, each
/// followed by [`receive_packets`](Self::receive_packets) (which returns an
/// empty `Vec` while rav1e fills its lookahead), then
/// [`finish`](Self::finish) once for the remaining packets. Packets come in
/// picture order.
pub struct Av1Encoder {
    config: Av1Config,
    width: u32,
    height: u32,
    ctx: Ctx,
    keyframe_requested: bool,
    finished: bool,
    sent: u64,
}

impl std::fmt::Debug for Av1Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Av1Encoder")
            .field("config", &self.config)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("finished", &self.finished)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Av1Encoder {
    /// The settings.
    pub fn config(&self) -> &Av1Config {
        &self.config
    }
    /// Picture width.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Picture height.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Pictures sent so far.
    pub fn pictures_sent(&self) -> u64 {
        self.sent
    }

    /// Make the next picture sent a key frame (after a receiver lost packets).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// The AV1 sequence header OBU, as Matroska's and MP4's codec
    /// configuration carry it.
    pub fn sequence_header(&self) -> Vec<u8> {
        match &self.ctx {
            Ctx::Eight(c) => c.container_sequence_header(),
            Ctx::Ten(c) => c.container_sequence_header(),
        }
    }

    /// Queue one picture: [`Layout::Yuv420`] of the configured size and depth.
    pub fn send_picture(&mut self, pic: &Picture) -> Result<(), Av1Error> {
        if self.finished {
            return Err(Av1Error::Finished);
        }
        if pic.layout() != Layout::Yuv420 {
            return Err(Av1Error::PictureLayout(pic.layout()));
        }
        if (pic.width(), pic.height()) != (self.width, self.height) {
            return Err(Av1Error::PictureSize {
                width: self.width,
                height: self.height,
                got_width: pic.width(),
                got_height: pic.height(),
            });
        }
        if pic.bit_depth() != self.config.bit_depth {
            return Err(Av1Error::PictureDepth {
                expected: self.config.bit_depth,
                got: pic.bit_depth(),
            });
        }
        let key = std::mem::take(&mut self.keyframe_requested);
        match &mut self.ctx {
            Ctx::Eight(c) => send(c, pic, key),
            Ctx::Ten(c) => send(c, pic, key),
        }
        .map_err(|s| match s {
            EncoderStatus::EnoughData => Av1Error::Finished,
            other => Av1Error::Encoder {
                reason: other.to_string(),
            },
        })?;
        self.sent += 1;
        Ok(())
    }

    /// Encode what can be encoded and return the packets ready, possibly none.
    pub fn receive_packets(&mut self) -> Result<Vec<Av1Packet>, Av1Error> {
        let mut out = Vec::new();
        self.drain(&mut out)?;
        Ok(out)
    }

    /// End the stream: encode every picture still queued and return the
    /// remaining packets. Later calls return nothing; later pictures are
    /// [`Av1Error::Finished`].
    pub fn finish(&mut self) -> Result<Vec<Av1Packet>, Av1Error> {
        if !self.finished {
            let flushed = match &mut self.ctx {
                Ctx::Eight(c) => c.send_frame(None),
                Ctx::Ten(c) => c.send_frame(None),
            };
            flushed.map_err(|s| Av1Error::Encoder {
                reason: s.to_string(),
            })?;
            self.finished = true;
        }
        self.receive_packets()
    }

    fn drain(&mut self, out: &mut Vec<Av1Packet>) -> Result<(), Av1Error> {
        match &mut self.ctx {
            Ctx::Eight(c) => drain(c, out),
            Ctx::Ten(c) => drain(c, out),
        }
    }
}

/// Copy `pic` into a rav1e frame and queue it.
fn send<T: Pixel>(ctx: &mut Context<T>, pic: &Picture, key: bool) -> Result<(), EncoderStatus> {
    let mut frame = ctx.new_frame();
    for (p, (dst, src)) in frame.planes.iter_mut().zip(pic.planes()).enumerate() {
        let (pw, _) = pic.plane_dims(p);
        for (d, s) in dst.rows_iter_mut().zip(src.chunks_exact(pw as usize)) {
            for (d, &s) in d.iter_mut().zip(s) {
                *d = T::cast_from(s);
            }
        }
    }
    let params = FrameParameters {
        frame_type_override: if key {
            FrameTypeOverride::Key
        } else {
            FrameTypeOverride::No
        },
        ..FrameParameters::default()
    };
    ctx.send_frame((frame, params))
}

/// Receive packets until rav1e needs more pictures or has emitted them all.
fn drain<T: Pixel>(ctx: &mut Context<T>, out: &mut Vec<Av1Packet>) -> Result<(), Av1Error> {
    loop {
        match ctx.receive_packet() {
            Ok(p) => out.push(Av1Packet {
                data: p.data,
                frame: p.input_frameno,
                keyframe: p.frame_type == FrameType::KEY,
            }),
            // A frame was coded but not shown yet: go on.
            Err(EncoderStatus::Encoded) => {}
            Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => return Ok(()),
            Err(other) => {
                return Err(Av1Error::Encoder {
                    reason: other.to_string(),
                });
            }
        }
    }
}

// ---------------------------------------------------------------------------
// IVF
// ---------------------------------------------------------------------------

/// Bytes of the IVF file header.
pub const IVF_HEADER_LEN: usize = 32;
/// Bytes of the header before each IVF frame.
pub const IVF_FRAME_HEADER_LEN: usize = 12;
/// Offset of the frame count in the IVF file header.
const IVF_COUNT_OFFSET: u64 = 24;

/// Writes AV1 packets as IVF: a 32-byte file header (`DKIF`, version 0,
/// header length 32, fourcc `AV01`, width and height as u16, the time base as
/// rate and scale u32 — a frame at `pts` shows at `pts * scale / rate`
/// seconds — the frame count as u32, 4 bytes zero), then per frame its size
/// as u32 and its `pts` as u64 before its bytes; all little-endian.
///
/// The frame count is given up front to [`IvfWriter::new`] (0 when unknown;
/// GStreamer's `ivfparse` ignores it). [`IvfWriter::finish`], for seekable
/// writers, overwrites it with the number of frames written;
/// [`IvfWriter::into_inner`] leaves it as given.
#[derive(Debug)]
pub struct IvfWriter<W: Write> {
    inner: W,
    frames: u32,
    /// Bytes written since the start of the file header.
    written: u64,
}

impl<W: Write> IvfWriter<W> {
    /// Write the file header for `width`×`height` frames at
    /// `frame_rate.0 / frame_rate.1` frames per second (pts count frames).
    pub fn new(
        mut inner: W,
        width: u32,
        height: u32,
        frame_rate: (u32, u32),
        frame_count: u32,
    ) -> Result<Self, Av1Error> {
        let limit = |what, value: u32| Av1Error::IvfLimit {
            what,
            value: u64::from(value),
            max: u64::from(u16::MAX),
        };
        let w = u16::try_from(width).map_err(|_| limit("width", width))?;
        let h = u16::try_from(height).map_err(|_| limit("height", height))?;
        let mut header = [0u8; IVF_HEADER_LEN];
        header[0..4].copy_from_slice(b"DKIF");
        header[4..6].copy_from_slice(&0u16.to_le_bytes());
        header[6..8].copy_from_slice(&(IVF_HEADER_LEN as u16).to_le_bytes());
        header[8..12].copy_from_slice(b"AV01");
        header[12..14].copy_from_slice(&w.to_le_bytes());
        header[14..16].copy_from_slice(&h.to_le_bytes());
        header[16..20].copy_from_slice(&frame_rate.0.to_le_bytes());
        header[20..24].copy_from_slice(&frame_rate.1.to_le_bytes());
        header[24..28].copy_from_slice(&frame_count.to_le_bytes());
        inner.write_all(&header)?;
        Ok(IvfWriter {
            inner,
            frames: 0,
            written: IVF_HEADER_LEN as u64,
        })
    }

    /// Write one frame shown at `pts` (in frames).
    pub fn write_frame(&mut self, data: &[u8], pts: u64) -> Result<(), Av1Error> {
        let size = u32::try_from(data.len()).map_err(|_| Av1Error::IvfLimit {
            what: "frame bytes",
            value: data.len() as u64,
            max: u64::from(u32::MAX),
        })?;
        let frames = self.frames.checked_add(1).ok_or(Av1Error::IvfLimit {
            what: "frame count",
            value: u64::from(u32::MAX) + 1,
            max: u64::from(u32::MAX),
        })?;
        let mut header = [0u8; IVF_FRAME_HEADER_LEN];
        header[0..4].copy_from_slice(&size.to_le_bytes());
        header[4..12].copy_from_slice(&pts.to_le_bytes());
        self.inner.write_all(&header)?;
        self.inner.write_all(data)?;
        self.frames = frames;
        self.written += (IVF_FRAME_HEADER_LEN + data.len()) as u64;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Flush and return the writer; the header keeps the count given to [`IvfWriter::new`].
    pub fn into_inner(mut self) -> Result<W, Av1Error> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write + Seek> IvfWriter<W> {
    /// Write the number of frames written into the file header, flush, and
    /// return the writer positioned after the last frame.
    pub fn finish(mut self) -> Result<W, Av1Error> {
        let end = self.inner.stream_position()?;
        let start = end.checked_sub(self.written).ok_or_else(|| {
            io::Error::other("the IVF writer was moved back behind its own header")
        })?;
        self.inner.seek(SeekFrom::Start(start + IVF_COUNT_OFFSET))?;
        self.inner.write_all(&self.frames.to_le_bytes())?;
        self.inner.seek(SeekFrom::Start(end))?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}

// ---------------------------------------------------------------------------
// One call
// ---------------------------------------------------------------------------

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
