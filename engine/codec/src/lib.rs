//! The med8k wavelet codec: a low-latency intra codec for 8K video and
//! spectral cubes, lossless or rate-controlled, with two implementations
//! (this CPU twin and WGSL kernels in `med8k-shaders`) that produce the same
//! bytes.
//!
//! # The pipeline
//! 1. **Components** ([`transform`]): samples are level-shifted to signed;
//!    RGB goes through JPEG 2000's reversible colour transform, spectral cubes
//!    through a reversible dyadic 5/3 wavelet along the band axis (an integer
//!    transform that, unlike band-to-band prediction, does not let
//!    quantisation error drift from band to band). YCbCr planes are coded as
//!    they are, chroma at its own size.
//! 2. **Slices**: the picture is cut into horizontal slices of
//!    `slice_height` lines (64 by default). Everything below happens per slice,
//!    so a slice can be coded as soon as its lines arrive, a damaged slice
//!    (each has a CRC-32) harms only itself, and slices are the unit of CPU
//!    parallelism.
//! 3. **Spatial wavelet**: the reversible integer 5/3 lifting, `levels`
//!    deep, on each slice of each plane, with symmetric extension at slice
//!    edges.
//! 4. **Quantisation**: a dead-zone quantiser per subband, steps in
//!    sixteenths (16 = lossless). Steps follow the 5/3 synthesis gains so
//!    every subband contributes alike to the error; the rate controller
//!    ([`rate`]) scales them per frame and, where one table cannot land on
//!    the target bits per pixel, mixes two neighbouring tables slice by
//!    slice ([`Steps`]).
//! 5. **Entropy coding** ([`entropy`]): context-adaptive Golomb–Rice with a
//!    JPEG-LS run mode, in independent code blocks of about 1024 coefficients.
//!
//! # Why this entropy coder
//! The three GPU-friendly families were weighed:
//! - **JPEG XS** codes, per group of 4 coefficients, the count of significant
//!   bit planes (predicted from the line above) and then the raw bits. Every
//!   group is independent given its prediction, so it parallelises without
//!   limit, but the raw bit planes carry no adaptation: lossless ratios are
//!   well below JPEG 2000's.
//! - **HTJ2K** keeps JPEG 2000's code blocks and replaces the bit-plane
//!   arithmetic coder by a single "cleanup" pass of quads with MEL (adaptive
//!   run), VLC and MagSgn streams. Parallelism comes from code blocks
//!   (thousands per 8K frame); inside a block it is sequential. Ratios are
//!   within a few percent of JPEG 2000.
//! - **GPU rANS** coders interleave many streams with per-subband frequency
//!   tables. They compress best, but need a histogram pass, table
//!   normalisation and table transmission per subband, and the interleaving
//!   couples threads, which makes a bit-exact CPU twin slow.
//!
//! med8k takes HTJ2K's organisation — independent code blocks, one pass,
//! adaptive runs for zero areas — with the modelling of JPEG-LS (LOCO-I): the
//! Rice parameter of each coefficient comes from running statistics of a
//! context formed by its coded neighbours. An 8K 4:2:2 frame has about 65,000
//! blocks of ~1024 coefficients, enough to fill a GPU with one thread per
//! block; each thread keeps 17 pairs of counters and two rows of magnitudes
//! (in workgroup memory on the GPU) and no tables, and the CPU twin runs the
//! same loop at a few ns per coefficient. Blocks end on a word boundary and the slice stores each
//! block's word count, so a decoder (or a GPU thread per block) finds every
//! block without decoding the ones before it. A block that would code larger
//! than its raw values (noise) is stored raw, which bounds every block's size.
//!
//! # Use
//! ```no_run
//! use med8k_codec::{Config};
//! use med8k_media::picture::{Layout, Picture};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let pic = Picture::zeroed(Layout::Yuv422, 7680, 4320, 10)?;
//! let mut encoder = Config::lossless().new_encoder()?;
//! let packet = encoder.encode(&pic)?;
//! assert_eq!(med8k_codec::decode(&packet.data)?, pic);
//! # Ok(()) }
//! ```

#[cfg(target_endian = "big")]
compile_error!("the med8k bitstream code assumes a little-endian machine");

pub mod cpu;
pub mod entropy;
pub mod geometry;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod metrics;
pub mod rate;
pub mod sequence;
pub mod steps;
pub mod stream;
pub mod strips;
pub mod transform;

use geometry::Geometry;
pub use steps::Steps;

use med8k_media::picture::{Layout, Picture, PictureError};

/// Most wavelet levels.
pub const MAX_LEVELS: u8 = 8;
/// Fewest lines per slice.
pub const MIN_SLICE_HEIGHT: u32 = 8;
/// Most lines per slice.
pub const MAX_SLICE_HEIGHT: u32 = 1024;
/// Largest width or height.
pub const MAX_DIMENSION: u32 = 1 << 16;
/// Most bands in a cube.
pub const MAX_BANDS: u16 = 256;
/// Most samples a decoder allocates unless told otherwise (8K 7-band cubes fit 4 times).
pub const DEFAULT_MAX_SAMPLES: u64 = 1 << 30;

/// Default wavelet levels.
pub const DEFAULT_LEVELS: u8 = 5;
/// Default lines per slice.
pub const DEFAULT_SLICE_HEIGHT: u32 = 64;

/// How hard to compress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Mode {
    /// Every sample comes back exactly.
    Lossless,
    /// Each frame lands within 5% of this many bits per pixel.
    Bpp(f64),
}

/// A codec setting outside what the codec supports.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field} = {value} is not allowed: expected {allowed}")]
pub struct InvalidConfig {
    /// The setting.
    pub field: &'static str,
    /// What it was set to.
    pub value: String,
    /// What it may be.
    pub allowed: String,
}

/// Encoder settings, built with `with_*` and checked by [`Config::new_encoder`].
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Config {
    /// Lossless or a bit rate.
    pub mode: Mode,
    /// Wavelet levels, 0..=8.
    pub levels: u8,
    /// Lines per slice: even, 8..=1024.
    pub slice_height: u32,
}

impl Default for Config {
    fn default() -> Self {
        Config::lossless()
    }
}

impl Config {
    /// Lossless coding with the default levels and slice height.
    pub fn lossless() -> Self {
        Config {
            mode: Mode::Lossless,
            levels: DEFAULT_LEVELS,
            slice_height: DEFAULT_SLICE_HEIGHT,
        }
    }
    /// Rate-controlled coding at `bpp` bits per pixel.
    pub fn bpp(bpp: f64) -> Self {
        Config {
            mode: Mode::Bpp(bpp),
            ..Config::lossless()
        }
    }
    /// Set the mode.
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }
    /// Set the wavelet levels.
    pub fn with_levels(mut self, levels: u8) -> Self {
        self.levels = levels;
        self
    }
    /// Set the lines per slice.
    pub fn with_slice_height(mut self, lines: u32) -> Self {
        self.slice_height = lines;
        self
    }

    /// Check the settings.
    pub fn validate(&self) -> Result<(), InvalidConfig> {
        if self.levels > MAX_LEVELS {
            return Err(InvalidConfig {
                field: "levels",
                value: self.levels.to_string(),
                allowed: format!("0..={MAX_LEVELS}"),
            });
        }
        if !(MIN_SLICE_HEIGHT..=MAX_SLICE_HEIGHT).contains(&self.slice_height)
            || !self.slice_height.is_multiple_of(2)
        {
            return Err(InvalidConfig {
                field: "slice_height",
                value: self.slice_height.to_string(),
                allowed: format!("an even number in {MIN_SLICE_HEIGHT}..={MAX_SLICE_HEIGHT}"),
            });
        }
        if let Mode::Bpp(b) = self.mode
            && !(b.is_finite() && (0.01..=64.0).contains(&b))
        {
            return Err(InvalidConfig {
                field: "bpp",
                value: b.to_string(),
                allowed: "0.01..=64 bits per pixel".into(),
            });
        }
        Ok(())
    }

    /// An encoder running on the CPU.
    pub fn new_encoder(&self) -> Result<Encoder, InvalidConfig> {
        self.new_encoder_with(Box::new(cpu::CpuEncoder::new()))
    }

    /// An encoder running on `backend` (the CPU twin or a GPU).
    pub fn new_encoder_with(
        &self,
        backend: Box<dyn EncodeBackend>,
    ) -> Result<Encoder, InvalidConfig> {
        self.validate()?;
        Ok(Encoder {
            config: self.clone(),
            backend,
        })
    }
}

/// The picture shape and coding parameters a bitstream carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Params {
    /// Plane layout.
    pub layout: Layout,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Bits per sample.
    pub bit_depth: u8,
    /// Wavelet levels.
    pub levels: u8,
    /// Lines per slice.
    pub slice_height: u32,
    /// True when every step is 1.
    pub lossless: bool,
}

impl Params {
    /// The coefficient layout of these parameters.
    pub fn geometry(&self) -> Geometry {
        Geometry::new(
            self.layout,
            self.width,
            self.height,
            self.slice_height,
            self.levels,
        )
    }
}

/// Why encoding failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// The picture does not fit the codec's limits.
    #[error(
        "picture {width}x{height} with {planes} planes is outside the codec's limits (at most {MAX_DIMENSION} per side, {MAX_BANDS} planes)"
    )]
    Size {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
        /// Planes.
        planes: usize,
    },
    /// The GPU failed.
    #[cfg(feature = "gpu")]
    #[error("GPU: {0}")]
    Gpu(#[from] med8k_gpu::GpuError),
    /// The picture is inconsistent.
    #[error(transparent)]
    Picture(#[from] PictureError),
    /// A setting the encoder does not take.
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    /// A frame that is not of the shape or format the encoder was made for.
    #[error("frame is {got}, the encoder takes {expected}")]
    Mismatch {
        /// What the encoder takes.
        expected: String,
        /// What it was given.
        got: String,
    },
}

/// Why a bitstream could not be decoded. Each variant names what is wrong.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The first four bytes are not `M8KW`.
    #[error("not a med8k wavelet stream (starts with {0:02x?}, expected \"M8KW\")")]
    Magic([u8; 4]),
    /// A version this build does not read.
    #[error("bitstream version {0} is not supported (this build reads version {v})", v = stream::VERSION)]
    Version(u8),
    /// The data ends early.
    #[error("bitstream truncated in the {what}: needs {need} bytes, has {got}")]
    Truncated {
        /// Which part.
        what: &'static str,
        /// Bytes needed.
        need: usize,
        /// Bytes present.
        got: usize,
    },
    /// A header field out of range.
    #[error("header field {field} = {value} is out of range (allowed {allowed})")]
    Field {
        /// The field.
        field: &'static str,
        /// Its value.
        value: u64,
        /// What is allowed.
        allowed: String,
    },
    /// The header would need more memory than allowed.
    #[error("picture of {samples} samples exceeds the decoder's limit of {limit}")]
    TooLarge {
        /// Samples the header asks for.
        samples: u64,
        /// The limit.
        limit: u64,
    },
    /// The header's CRC does not match.
    #[error("header CRC mismatch: the header is corrupt")]
    HeaderCrc,
    /// A slice's CRC does not match.
    #[error("slice {slice} is corrupt (CRC mismatch)")]
    SliceCrc {
        /// Slice index.
        slice: u32,
    },
    /// A slice's structure is wrong.
    #[error("slice {slice}: {reason}")]
    Slice {
        /// Slice index.
        slice: u32,
        /// What is wrong.
        reason: String,
    },
    /// A block's code is wrong.
    #[error("slice {slice}, block {block}: {error}")]
    Block {
        /// Slice index.
        slice: u32,
        /// Block index within the slice.
        block: u32,
        /// What is wrong.
        error: entropy::BlockError,
    },
    /// The GPU failed.
    #[cfg(feature = "gpu")]
    #[error("GPU: {0}")]
    Gpu(#[from] med8k_gpu::GpuError),
}

/// Compressed slices as a backend returns them.
#[derive(Debug, Default)]
pub struct Coded {
    /// The slices, one after the other.
    pub payload: Vec<u8>,
    /// Byte length of each slice.
    pub slice_lens: Vec<u32>,
}

impl Coded {
    /// Join separately coded slices.
    pub fn from_slices(slices: Vec<Vec<u8>>) -> Self {
        let slice_lens = slices.iter().map(|s| s.len() as u32).collect();
        Coded {
            payload: slices.concat(),
            slice_lens,
        }
    }
}

/// What an encoder backend does; the shared driver ([`Encoder`]) does the rest.
///
/// Call order per picture: [`load`](Self::load), then any number of
/// [`block_words`](Self::block_words) (rate control), then [`encode`](Self::encode).
pub trait EncodeBackend: Send + std::fmt::Debug {
    /// Take the picture and run the reversible transforms.
    fn load(&mut self, pic: &Picture, geom: &Geometry) -> Result<(), EncodeError>;
    /// Coded size in words of every block of `slices` (in order) with one
    /// step table for all of them.
    fn block_words(
        &mut self,
        geom: &Geometry,
        table: &[u32],
        slices: &[u32],
    ) -> Result<Vec<u32>, EncodeError>;
    /// Code every slice under `steps`.
    fn encode(&mut self, geom: &Geometry, steps: &Steps) -> Result<Coded, EncodeError>;

    /// The loaded picture where it lies on the GPU, for other kernels to
    /// read (a detector's input, a downscale) without another upload;
    /// `None` for the CPU twin and for a picture coded in stripes.
    #[cfg(feature = "gpu")]
    fn resident(&self) -> Option<med8k_gpu::Resident<'_>> {
        None
    }

    /// Whether this backend runs on a GPU.
    #[cfg(feature = "gpu")]
    fn on_gpu(&self) -> bool {
        false
    }
}

/// One coded picture.
#[derive(Debug, Clone)]
pub struct Packet {
    /// The bitstream.
    pub data: Vec<u8>,
    /// Bits per pixel it came to.
    pub bpp: f64,
    /// The rate controller's base step (1 when lossless).
    pub base_step: f64,
    /// Trial codings the rate controller ran.
    pub trials: u32,
}

/// Encodes pictures with one [`Config`] on one backend.
#[derive(Debug)]
pub struct Encoder {
    config: Config,
    backend: Box<dyn EncodeBackend>,
}

impl Encoder {
    /// The settings.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Encode one picture.
    pub fn encode(&mut self, pic: &Picture) -> Result<Packet, EncodeError> {
        let params = Params {
            layout: pic.layout(),
            width: pic.width(),
            height: pic.height(),
            bit_depth: pic.bit_depth(),
            levels: self.config.levels,
            slice_height: self.config.slice_height,
            lossless: self.config.mode == Mode::Lossless,
        };
        if pic.width() > MAX_DIMENSION
            || pic.height() > MAX_DIMENSION
            || pic.layout().plane_count() > usize::from(MAX_BANDS)
        {
            return Err(EncodeError::Size {
                width: pic.width(),
                height: pic.height(),
                planes: pic.layout().plane_count(),
            });
        }
        let geom = params.geometry();
        self.backend.load(pic, &geom)?;
        let (steps, base_step, trials) = match self.config.mode {
            Mode::Lossless => (
                Steps::lossless(step_count(params.levels), geom.slices),
                1.0,
                0,
            ),
            Mode::Bpp(bpp) => rate::choose(self.backend.as_mut(), &geom, &params, bpp)?,
        };
        let params = Params {
            lossless: steps.is_lossless(),
            ..params
        };
        let coded = self.backend.encode(&geom, &steps)?;
        let data = assemble(&params, &steps, &coded);
        let bpp = data.len() as f64 * 8.0 / (f64::from(pic.width()) * f64::from(pic.height()));
        Ok(Packet {
            data,
            bpp,
            base_step,
            trials,
        })
    }

    /// The picture last encoded, where it lies on the GPU (see
    /// [`EncodeBackend::resident`]).
    #[cfg(feature = "gpu")]
    pub fn resident(&self) -> Option<med8k_gpu::Resident<'_>> {
        self.backend.resident()
    }

    /// Whether the backend runs on a GPU, so that [`resident`](Self::resident)
    /// can give the picture (it does not for pictures coded in stripes).
    #[cfg(feature = "gpu")]
    pub fn on_gpu(&self) -> bool {
        self.backend.on_gpu()
    }
}

/// The codec's size limits: a picture of `layout` that is empty, wider or
/// taller than [`MAX_DIMENSION`] or of more than [`MAX_BANDS`] planes is an
/// [`EncodeError::Size`].
pub(crate) fn check_size(layout: Layout, width: u32, height: u32) -> Result<(), EncodeError> {
    if width == 0
        || height == 0
        || width > MAX_DIMENSION
        || height > MAX_DIMENSION
        || layout.plane_count() > usize::from(MAX_BANDS)
    {
        return Err(EncodeError::Size {
            width,
            height,
            planes: layout.plane_count(),
        });
    }
    Ok(())
}

/// The parameters of a lossless coder that never holds the whole picture
/// (strips, the GPU stream encoder): `config` valid and lossless (`why` says
/// why not otherwise), the size and the depth (1 to 16 bits) in range.
pub(crate) fn lossless_params(
    config: &Config,
    layout: Layout,
    width: u32,
    height: u32,
    bit_depth: u8,
    why: &str,
) -> Result<Params, EncodeError> {
    config.validate()?;
    if config.mode != Mode::Lossless {
        return Err(InvalidConfig {
            field: "mode",
            value: format!("{:?}", config.mode),
            allowed: format!("Lossless ({why})"),
        }
        .into());
    }
    check_size(layout, width, height)?;
    if !(1..=16).contains(&bit_depth) {
        return Err(EncodeError::Mismatch {
            expected: "1 to 16 bits".into(),
            got: format!("{bit_depth} bits"),
        });
    }
    Ok(Params {
        layout,
        width,
        height,
        bit_depth,
        levels: config.levels,
        slice_height: config.slice_height,
        lossless: true,
    })
}

/// Steps per picture for `levels` wavelet levels.
pub fn step_count(levels: u8) -> usize {
    1 + 3 * usize::from(levels)
}

/// Header, slice table with CRCs, slices.
fn assemble(params: &Params, steps: &Steps, coded: &Coded) -> Vec<u8> {
    use rayon::prelude::*;
    let mut ranges = Vec::with_capacity(coded.slice_lens.len());
    let mut at = 0usize;
    for &l in &coded.slice_lens {
        ranges.push(at..at + l as usize);
        at += l as usize;
    }
    let table: Vec<(u32, u32)> = ranges
        .into_par_iter()
        .map(|r| (r.len() as u32, crc32fast::hash(&coded.payload[r])))
        .collect();
    let mut out = Vec::with_capacity(
        stream::header_len(
            table.len() as u32,
            steps.tables()[0].len(),
            steps.tables().len(),
        ) + coded.payload.len(),
    );
    stream::write_header(params, steps, &table, &mut out);
    out.extend_from_slice(&coded.payload);
    out
}

/// Read a bitstream's header without decoding it.
pub fn probe(data: &[u8]) -> Result<stream::Header, DecodeError> {
    stream::read_header(data, u64::MAX)
}

/// Decode a bitstream on the CPU, allocating at most [`DEFAULT_MAX_SAMPLES`] samples.
pub fn decode(data: &[u8]) -> Result<Picture, DecodeError> {
    decode_with_limit(data, DEFAULT_MAX_SAMPLES)
}

/// Decode a bitstream on the CPU, refusing pictures above `max_samples`.
pub fn decode_with_limit(data: &[u8], max_samples: u64) -> Result<Picture, DecodeError> {
    let header = stream::read_header(data, max_samples)?;
    let p = header.params;
    let geom = p.geometry();
    let mut pic = Picture::zeroed(p.layout, p.width, p.height, p.bit_depth).map_err(|e| {
        DecodeError::Field {
            field: "picture",
            value: 0,
            allowed: e.to_string(),
        }
    })?;
    cpu::decode(data, &header, &geom, &mut pic)?;
    Ok(pic)
}
