//! Pictures as files: PNG, binary PNM, raw video frames and ENVI cubes.
//!
//! [`read_picture`] and [`write_picture`] choose the format by extension
//! ([`kind_for`]). Raw files have no header, so reading one needs a
//! [`RawSpec`] such as `7680x4320:I422_10LE` (the command line's `--format`);
//! [`RawFrames`] reads every frame of one and [`append_raw`] writes them.
//!
//! Samples are never rescaled: a 10-bit picture goes into a 16-bit PNG or a
//! `maxval 1023` PGM with its values 0..=1023 as they are. Every reader checks
//! what a header claims against [`MAX_SAMPLES`] and the file's length before
//! it allocates, and bad input is an [`ImageIoError`], never a panic.
//!
//! ```no_run
//! use std::path::Path;
//! use med8k_media::imageio::{RawSpec, raw_spec_for, read_picture, write_picture};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let spec: RawSpec = "7680x4320:I422_10LE".parse()?;
//! let picture = read_picture(Path::new("frame.yuv"), Some(spec))?;
//! write_picture(Path::new("copy.yuv"), &picture)?;
//! assert_eq!(raw_spec_for(&picture)?, spec);
//! # Ok(()) }
//! ```

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use ndarray::Array3;

use crate::frame::v210::{self, ConvertError};
use crate::frame::{self, PixelFormat, VideoFrame};
use crate::picture::{Layout, Picture, PictureError, max_sample};
use crate::spectral::envi::{self, EnviError};
use crate::spectral::{Band, CubeError, SpectralCube};

/// The most samples, over all planes, a picture read from a file may have (2^30).
pub const MAX_SAMPLES: u64 = 1 << 30;

/// Why a picture could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImageIoError {
    /// The file could not be opened, read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// [`append_raw`] could not write to its writer.
    #[error("cannot write a raw frame")]
    Write(#[source] std::io::Error),
    /// The extension names no format and no raw format was given.
    #[error(
        "{path}: cannot tell the format from the extension (.png, .ppm, .pgm, .pnm, .hdr); \
         for raw frames pass --format WxH:FORMAT, FORMAT one of {}",
        RawFormat::names()
    )]
    UnknownKind {
        /// The file.
        path: PathBuf,
    },
    /// The PNG decoder refused the file (truncated, corrupt, bad checksum).
    #[error("{path}: not a readable PNG")]
    Png {
        /// The file.
        path: PathBuf,
        /// What the decoder said.
        #[source]
        source: png::DecodingError,
    },
    /// A header is not what its format says it must be.
    #[error("{path}: {reason}")]
    Malformed {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A valid file or a picture that this module does not handle.
    #[error("{path}: {what}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is not supported.
        what: String,
    },
    /// A header claims more than [`MAX_SAMPLES`] samples.
    #[error("{path}: {width}x{height} is {samples} samples, more than the {MAX_SAMPLES} allowed")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Claimed width.
        width: u32,
        /// Claimed height.
        height: u32,
        /// Samples over all planes.
        samples: u64,
    },
    /// The file holds fewer bytes than its header (or raw format) needs.
    #[error("{path}: truncated: {need} bytes of samples needed, {got} present")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Bytes needed.
        need: u64,
        /// Bytes present.
        got: u64,
    },
    /// A raw file ends inside a frame.
    #[error("{path}: frame {frame} is partial: {got} bytes where a {spec} frame has {need}")]
    PartialFrame {
        /// The file.
        path: PathBuf,
        /// Index of the partial frame, from 0.
        frame: u64,
        /// The raw format.
        spec: RawSpec,
        /// Bytes present.
        got: u64,
        /// Bytes a frame has.
        need: u64,
    },
    /// The samples read do not form a valid picture (for example above the bit depth).
    #[error("{path}: invalid picture")]
    Picture {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: PictureError,
    },
    /// Reading or writing an ENVI cube failed.
    #[error(transparent)]
    Envi(#[from] EnviError),
    /// The picture and band descriptions do not make a cube.
    #[error("{path}: cannot make a cube")]
    Cube {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        #[source]
        source: CubeError,
    },
    /// No raw format holds this layout at this bit depth.
    #[error("a {bit_depth}-bit {layout} picture has no raw format")]
    NoRawFormat {
        /// The picture's layout.
        layout: Layout,
        /// The picture's bit depth.
        bit_depth: u8,
    },
    /// The picture does not fit the raw format it was to be written in.
    #[error("a {bit_depth}-bit {layout} picture cannot be written as {format}")]
    RawMismatch {
        /// The requested raw format.
        format: RawFormat,
        /// The picture's layout.
        layout: Layout,
        /// The picture's bit depth.
        bit_depth: u8,
    },
    /// A v210 conversion refused the frame (its size).
    #[error(transparent)]
    V210(#[from] ConvertError),
}

/// What a file holds, as [`kind_for`] decides from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileKind {
    /// PNG: gray, RGB or RGBA at 1 to 16 bits; palettes are expanded to RGB or RGBA.
    Png,
    /// Binary PGM (`P5`) or PPM (`P6`) with a maxval up to 65535.
    Pnm,
    /// Headerless frames of one format, one after another.
    Raw(RawSpec),
    /// An ENVI cube: a `.hdr` text header beside its `.raw` samples.
    Envi,
}

/// The kind of the file at `path`, for reading.
///
/// `.png` is PNG; `.ppm`, `.pgm` and `.pnm` are PNM; `.hdr` is ENVI, and so is
/// a `.raw` with a `.hdr` beside it when `raw` is `None`. Any other file needs
/// `raw`; giving `raw` for a PNG, PNM or `.hdr` file is an error.
pub fn kind_for(path: &Path, raw: Option<RawSpec>) -> Result<FileKind, ImageIoError> {
    let ext = extension(path);
    let (kind, name) = match ext.as_deref() {
        Some("png") => (FileKind::Png, "PNG"),
        Some("ppm" | "pgm" | "pnm") => (FileKind::Pnm, "PNM"),
        Some("hdr") => (FileKind::Envi, "ENVI header"),
        other => {
            return match raw {
                Some(spec) => Ok(FileKind::Raw(spec)),
                None if other == Some("raw") && path.with_extension("hdr").is_file() => {
                    Ok(FileKind::Envi)
                }
                None => Err(ImageIoError::UnknownKind {
                    path: path.to_path_buf(),
                }),
            };
        }
    };
    match raw {
        None => Ok(kind),
        Some(spec) => Err(ImageIoError::Unsupported {
            path: path.to_path_buf(),
            what: format!("raw format {spec} given for a file whose extension makes it {name}"),
        }),
    }
}

/// The layout of a raw frame: planes or packed pixels, tightly packed, no row
/// padding (as ffmpeg's `rawvideo` writes them), except v210's 128-byte rows.
///
/// Names follow GStreamer's, matched ignoring case and `_`; ffmpeg's
/// `pix_fmt` names are accepted too (`yuv422p10le`, `rgb48le`, `gray16le`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RawFormat {
    /// `GRAY8`: one byte per sample.
    Gray8,
    /// `GRAY10_LE`: 10 bits in the low bits of a little-endian u16.
    Gray10,
    /// `GRAY16_LE`: little-endian u16.
    Gray16,
    /// `RGB`: packed 8-bit R, G, B.
    Rgb8,
    /// `RGBA`: packed 8-bit R, G, B, A.
    Rgba8,
    /// `RGB48_LE`: packed little-endian u16 R, G, B.
    Rgb16,
    /// `RGBA64_LE`: packed little-endian u16 R, G, B, A.
    Rgba16,
    /// `I420`: 8-bit Y, Cb, Cr planes, chroma half width and half height.
    I420,
    /// `I420_10LE`: as `I420` with 10 bits in little-endian u16.
    I420_10,
    /// `I422_10LE`: 10-bit Y, Cb, Cr planes in little-endian u16, chroma half width.
    I422_10,
    /// `v210`: packed 10-bit 4:2:2, six pixels in 16 bytes, rows padded to 128 bytes.
    V210,
}

impl RawFormat {
    /// Every raw format.
    pub const ALL: [RawFormat; 11] = [
        RawFormat::Gray8,
        RawFormat::Gray10,
        RawFormat::Gray16,
        RawFormat::Rgb8,
        RawFormat::Rgba8,
        RawFormat::Rgb16,
        RawFormat::Rgba16,
        RawFormat::I420,
        RawFormat::I420_10,
        RawFormat::I422_10,
        RawFormat::V210,
    ];

    /// Name, layout, bit depth and other accepted names (lower case, no `_`).
    fn info(self) -> (&'static str, Layout, u8, &'static [&'static str]) {
        use Layout::{Gray, Rgb, Rgba, Yuv420, Yuv422};
        match self {
            RawFormat::Gray8 => ("GRAY8", Gray, 8, &["gray"]),
            RawFormat::Gray10 => ("GRAY10_LE", Gray, 10, &["gray10le16"]),
            RawFormat::Gray16 => ("GRAY16_LE", Gray, 16, &[]),
            RawFormat::Rgb8 => ("RGB", Rgb, 8, &["rgb24"]),
            RawFormat::Rgba8 => ("RGBA", Rgba, 8, &[]),
            RawFormat::Rgb16 => ("RGB48_LE", Rgb, 16, &[]),
            RawFormat::Rgba16 => ("RGBA64_LE", Rgba, 16, &[]),
            RawFormat::I420 => ("I420", Yuv420, 8, &["yuv420p"]),
            RawFormat::I420_10 => ("I420_10LE", Yuv420, 10, &["yuv420p10le"]),
            RawFormat::I422_10 => ("I422_10LE", Yuv422, 10, &["yuv422p10le"]),
            RawFormat::V210 => ("v210", Yuv422, 10, &[]),
        }
    }

    /// The canonical name, which [`FromStr`] reads back.
    pub fn name(self) -> &'static str {
        self.info().0
    }

    /// What the planes of a picture in this format are.
    pub fn layout(self) -> Layout {
        self.info().1
    }

    /// Significant bits per sample.
    pub fn bit_depth(self) -> u8 {
        self.info().2
    }

    /// The canonical names, comma-separated (for error messages).
    fn names() -> String {
        RawFormat::ALL.map(RawFormat::name).join(", ")
    }

    /// Bytes per stored sample (v210 aside).
    fn sample_bytes(self) -> usize {
        if self.bit_depth() > 8 { 2 } else { 1 }
    }

    /// Whether the samples of a pixel are stored together (RGB, RGBA).
    fn packed(self) -> bool {
        matches!(self.layout(), Layout::Rgb | Layout::Rgba)
    }

    /// Bytes of one `width`×`height` frame.
    pub fn frame_bytes(self, width: u32, height: u32) -> u64 {
        if self == RawFormat::V210 {
            return PixelFormat::V210.row_bytes(0, width) as u64 * u64::from(height);
        }
        layout_samples(self.layout(), width, height) * self.sample_bytes() as u64
    }
}

impl fmt::Display for RawFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for RawFormat {
    type Err = RawSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = |n: &str| n.trim().to_ascii_lowercase().replace('_', "");
        let want = norm(s);
        RawFormat::ALL
            .into_iter()
            .find(|f| norm(f.name()) == want || f.info().3.contains(&want.as_str()))
            .ok_or_else(|| RawSpecError::Format(s.trim().to_owned()))
    }
}

/// A raw format string that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RawSpecError {
    /// Not of the form `WIDTHxHEIGHT:FORMAT`.
    #[error("raw format `{0}` is not WIDTHxHEIGHT:FORMAT (for example 7680x4320:I422_10LE)")]
    Syntax(String),
    /// A width or height that is not a number or is out of range.
    #[error("raw format `{spec}`: {reason}")]
    Size {
        /// The whole format string.
        spec: String,
        /// What is wrong with the size.
        reason: String,
    },
    /// An unknown pixel format name.
    #[error("unknown raw pixel format `{0}` (allowed: {names})", names = RawFormat::names())]
    Format(String),
}

/// Size and pixel format of the frames of a raw file, written `WIDTHxHEIGHT:FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RawSpec {
    /// Width in pixels.
    pub width: u32,
    /// Height in lines.
    pub height: u32,
    /// Pixel format.
    pub format: RawFormat,
}

impl RawSpec {
    /// A spec, checked: no zero size, at most [`MAX_SAMPLES`] samples a frame,
    /// v210 no larger than [`frame::MAX_DIM`].
    pub fn new(width: u32, height: u32, format: RawFormat) -> Result<Self, RawSpecError> {
        let spec = RawSpec {
            width,
            height,
            format,
        };
        let samples = layout_samples(format.layout(), width, height);
        let reason = if width == 0 || height == 0 {
            "a frame cannot be empty".to_owned()
        } else if samples > MAX_SAMPLES {
            format!("{samples} samples a frame, more than the {MAX_SAMPLES} allowed")
        } else if format == RawFormat::V210 && width.max(height) > frame::MAX_DIM {
            format!("v210 frames are at most {0}x{0}", frame::MAX_DIM)
        } else {
            return Ok(spec);
        };
        Err(RawSpecError::Size {
            spec: spec.to_string(),
            reason,
        })
    }

    /// Bytes of one frame.
    pub fn frame_bytes(&self) -> u64 {
        self.format.frame_bytes(self.width, self.height)
    }
}

impl fmt::Display for RawSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}:{}", self.width, self.height, self.format)
    }
}

impl FromStr for RawSpec {
    type Err = RawSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let syntax = || RawSpecError::Syntax(s.to_owned());
        let (size, name) = s.trim().split_once(':').ok_or_else(syntax)?;
        let (w, h) = size.split_once(['x', 'X']).ok_or_else(syntax)?;
        let format: RawFormat = name.parse()?;
        let dim = |part: &str, what: &str| {
            part.trim().parse::<u32>().map_err(|_| RawSpecError::Size {
                spec: s.to_owned(),
                reason: format!("{what} `{part}` is not a number"),
            })
        };
        RawSpec::new(dim(w, "width")?, dim(h, "height")?, format)
    }
}

/// Read one picture: PNG, PNM, ENVI, or the first frame of a raw file
/// (which needs `raw`; see [`kind_for`]).
///
/// The bit depth is the file's: 16 for a 16-bit PNG (`sBIT` is ignored), the
/// bits `maxval` needs for PNM (1023 gives 10), 16 for ENVI, the format's for raw.
pub fn read_picture(path: &Path, raw: Option<RawSpec>) -> Result<Picture, ImageIoError> {
    match kind_for(path, raw)? {
        FileKind::Png => read_png(path),
        FileKind::Pnm => read_pnm(path),
        FileKind::Envi => {
            let cube = envi::read(path)?;
            Picture::from_cube(&cube).map_err(|source| picture_err(path, source))
        }
        FileKind::Raw(spec) => match RawFrames::open(path, spec)?.next_picture()? {
            Some(picture) => Ok(picture),
            None => Err(ImageIoError::Truncated {
                path: path.to_path_buf(),
                need: spec.frame_bytes(),
                got: 0,
            }),
        },
    }
}

/// Write one picture, choosing the format by extension.
///
/// - `.png`: gray, RGB or RGBA; 1, 2 and 4-bit gray as such, other depths up
///   to 8 as 8-bit, deeper as 16-bit, values unscaled (no `sBIT` chunk: it
///   would tell readers the values are scaled up).
/// - `.pgm`, `.ppm`, `.pnm`: gray as `P5`, RGB as `P6`, maxval `2^depth - 1`.
/// - `.hdr`: a spectral picture as an ENVI cube without wavelengths ([`write_cube`]).
/// - anything else: raw, in the format [`raw_spec_for`] names.
pub fn write_picture(path: &Path, picture: &Picture) -> Result<(), ImageIoError> {
    match extension(path).as_deref() {
        Some("png") => write_png(path, picture),
        Some(ext @ ("pgm" | "ppm" | "pnm")) => write_pnm(path, picture, ext),
        Some("hdr") => write_cube(path, picture, None),
        _ => {
            let spec = raw_spec_for(picture).map_err(|e| unsupported(path, e.to_string()))?;
            let bytes = encode_raw(picture, spec.format)?;
            std::fs::write(path, bytes).map_err(|source| io_err(path, source))
        }
    }
}

/// Write a spectral picture as an ENVI cube: `path` with its extension
/// replaced by `.hdr` and `.raw`. Without `bands` the header lists no
/// wavelengths. The samples are stored as u16 whatever the bit depth.
pub fn write_cube(
    path: &Path,
    picture: &Picture,
    bands: Option<&[Band]>,
) -> Result<(), ImageIoError> {
    let Layout::Bands(n) = picture.layout() else {
        return Err(unsupported(
            path,
            format!(
                "ENVI holds spectral bands, not a {} picture",
                picture.layout()
            ),
        ));
    };
    let (w, h) = (picture.width() as usize, picture.height() as usize);
    let data = Array3::from_shape_vec((usize::from(n), h, w), picture.planes().concat())
        .map_err(|e| unsupported(path, e.to_string()))?;
    let unknown = Band {
        center_nm: f32::NAN,
        fwhm_nm: f32::NAN,
    };
    let listed = bands.map_or_else(|| vec![unknown; usize::from(n)], <[Band]>::to_vec);
    let cube = SpectralCube::new(listed, data).map_err(|source| ImageIoError::Cube {
        path: path.to_path_buf(),
        source,
    })?;
    envi::write(&cube, path, "med8k picture")?;
    if bands.is_none() {
        // envi::write always lists wavelengths; unknown ones are better absent than NaN.
        let hdr = path.with_extension("hdr");
        let text = std::fs::read_to_string(&hdr).map_err(|source| io_err(&hdr, source))?;
        let kept: String = text
            .lines()
            .filter(|line| {
                let key = line.split('=').next().unwrap_or_default().trim();
                !["wavelength units", "wavelength", "fwhm", "band names"].contains(&key)
            })
            .map(|line| format!("{line}\n"))
            .collect();
        std::fs::write(&hdr, kept).map_err(|source| io_err(&hdr, source))?;
    }
    Ok(())
}

/// The raw format a picture is written in by [`write_picture`] and [`append_raw`]:
/// `GRAY8`/`GRAY10_LE`/`GRAY16_LE`, `RGB`/`RGB48_LE`, `RGBA`/`RGBA64_LE`,
/// `I420`/`I420_10LE` and `I422_10LE`, by bit depth. Spectral pictures have none.
pub fn raw_spec_for(picture: &Picture) -> Result<RawSpec, ImageIoError> {
    let (layout, depth) = (picture.layout(), picture.bit_depth());
    let format = match (layout, depth) {
        (Layout::Gray, ..=8) => RawFormat::Gray8,
        (Layout::Gray, 9..=10) => RawFormat::Gray10,
        (Layout::Gray, _) => RawFormat::Gray16,
        (Layout::Rgb, ..=8) => RawFormat::Rgb8,
        (Layout::Rgb, _) => RawFormat::Rgb16,
        (Layout::Rgba, ..=8) => RawFormat::Rgba8,
        (Layout::Rgba, _) => RawFormat::Rgba16,
        (Layout::Yuv420, ..=8) => RawFormat::I420,
        (Layout::Yuv420, 9..=10) => RawFormat::I420_10,
        (Layout::Yuv422, ..=10) => RawFormat::I422_10,
        _ => {
            return Err(ImageIoError::NoRawFormat {
                layout,
                bit_depth: depth,
            });
        }
    };
    Ok(RawSpec {
        width: picture.width(),
        height: picture.height(),
        format,
    })
}

/// Append one frame to a raw stream in the format [`raw_spec_for`] names.
pub fn append_raw(writer: &mut impl Write, picture: &Picture) -> Result<(), ImageIoError> {
    append_raw_as(writer, picture, raw_spec_for(picture)?.format)
}

/// Append one frame to a raw stream in `format`, whose layout must be the
/// picture's and whose bit depth must be at least the picture's.
pub fn append_raw_as(
    writer: &mut impl Write,
    picture: &Picture,
    format: RawFormat,
) -> Result<(), ImageIoError> {
    let bytes = encode_raw(picture, format)?;
    writer.write_all(&bytes).map_err(ImageIoError::Write)
}

/// The frames of a raw file, read one at a time into a reused buffer.
#[derive(Debug)]
pub struct RawFrames {
    path: PathBuf,
    spec: RawSpec,
    reader: BufReader<File>,
    /// Bytes left in a regular file (unknown for pipes).
    left: Option<u64>,
    frame: u64,
    buf: Vec<u8>,
    done: bool,
}

impl RawFrames {
    /// Open `path`, whose frames are `spec`.
    pub fn open(path: &Path, spec: RawSpec) -> Result<Self, ImageIoError> {
        check_samples(path, spec.width, spec.height, spec.format.layout())?;
        let file = File::open(path).map_err(|source| io_err(path, source))?;
        let meta = file.metadata().map_err(|source| io_err(path, source))?;
        Ok(RawFrames {
            path: path.to_path_buf(),
            spec,
            reader: BufReader::with_capacity(1 << 20, file),
            left: meta.is_file().then_some(meta.len()),
            frame: 0,
            buf: Vec::new(),
            done: false,
        })
    }

    /// The format of the frames.
    pub fn spec(&self) -> RawSpec {
        self.spec
    }

    /// The next frame, `None` at the end of the file; a file ending inside
    /// a frame is an error naming that frame's size.
    pub fn next_picture(&mut self) -> Result<Option<Picture>, ImageIoError> {
        if self.done {
            return Ok(None);
        }
        let need = self.spec.frame_bytes();
        let partial = |this: &mut Self, got: u64| {
            this.done = true;
            ImageIoError::PartialFrame {
                path: this.path.clone(),
                frame: this.frame,
                spec: this.spec,
                got,
                need,
            }
        };
        match self.left {
            Some(0) => {
                self.done = true;
                return Ok(None);
            }
            Some(left) if left < need => return Err(partial(self, left)),
            _ => {}
        }
        // `open` checked the sample count, so a frame fits in memory.
        let size = need as usize;
        self.buf.resize(size, 0);
        let got = read_full(&mut self.reader, &mut self.buf).map_err(|source| {
            self.done = true;
            io_err(&self.path, source)
        })?;
        if got == 0 {
            self.done = true;
            return Ok(None);
        }
        if got < size {
            return Err(partial(self, got as u64));
        }
        self.left = self.left.map(|left| left - need);
        self.frame += 1;
        decode_raw(&self.path, &self.buf, self.spec).map(Some)
    }
}

impl Iterator for RawFrames {
    type Item = Result<Picture, ImageIoError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_picture().transpose()
    }
}

fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match reader.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

fn decode_raw(path: &Path, bytes: &[u8], spec: RawSpec) -> Result<Picture, ImageIoError> {
    let RawSpec {
        width,
        height,
        format,
    } = spec;
    let layout = format.layout();
    if format == RawFormat::V210 {
        let mut frame = VideoFrame::zeroed(width, height, PixelFormat::V210)
            .map_err(|e| ImageIoError::V210(e.into()))?;
        let l = frame.layout().planes()[0];
        let rows = bytes.chunks_exact(l.row_bytes);
        for (dst, src) in frame.plane_mut(0).chunks_exact_mut(l.stride).zip(rows) {
            dst[..l.row_bytes].copy_from_slice(src);
        }
        let planar = v210::unpack(&frame)?;
        return Picture::from_frame(&planar).map_err(|source| picture_err(path, source));
    }
    let values: Vec<u16> = if format.sample_bytes() == 1 {
        bytes.iter().map(|&b| u16::from(b)).collect()
    } else {
        let pairs = bytes.chunks_exact(2);
        pairs.map(|c| u16::from_le_bytes([c[0], c[1]])).collect()
    };
    let planes = if format.packed() {
        deinterleave(&values, layout.plane_count())
    } else {
        let mut rest = values.as_slice();
        let mut planes = Vec::with_capacity(layout.plane_count());
        for p in 0..layout.plane_count() {
            let (pw, ph) = layout.plane_dims(p, width, height);
            let (plane, tail) = rest
                .split_at_checked(pw as usize * ph as usize)
                .unwrap_or((rest, &[]));
            planes.push(plane.to_vec());
            rest = tail;
        }
        planes
    };
    Picture::new(layout, width, height, format.bit_depth(), planes)
        .map_err(|source| picture_err(path, source))
}

fn encode_raw(picture: &Picture, format: RawFormat) -> Result<Vec<u8>, ImageIoError> {
    if picture.layout() != format.layout() || picture.bit_depth() > format.bit_depth() {
        return Err(ImageIoError::RawMismatch {
            format,
            layout: picture.layout(),
            bit_depth: picture.bit_depth(),
        });
    }
    if format == RawFormat::V210 {
        let mut frame = VideoFrame::zeroed(picture.width(), picture.height(), PixelFormat::I422_10)
            .map_err(|e| ImageIoError::V210(e.into()))?;
        for (p, plane) in picture.planes().iter().enumerate() {
            let pw = picture.plane_dims(p).0 as usize;
            let stride = frame.layout().planes()[p].stride / 2;
            let dst = frame.plane_u16_mut(p).chunks_exact_mut(stride);
            for (dst, src) in dst.zip(plane.chunks_exact(pw)) {
                dst[..pw].copy_from_slice(src);
            }
        }
        let packed = v210::pack(&frame)?;
        return Ok(packed.rows(0).flatten().copied().collect());
    }
    let values = if format.packed() {
        interleave(picture.planes())
    } else {
        picture.planes().concat()
    };
    Ok(if format.sample_bytes() == 1 {
        values.iter().map(|&v| v as u8).collect()
    } else {
        values.iter().flat_map(|v| v.to_le_bytes()).collect()
    })
}

fn read_png(path: &Path) -> Result<Picture, ImageIoError> {
    use png::ColorType;
    let png_err = |source| ImageIoError::Png {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| io_err(path, source))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    let info = decoder.read_header_info().map_err(png_err)?;
    let (width, height, color) = (info.width, info.height, info.color_type);
    let widest = match color {
        ColorType::Grayscale => Layout::Gray,
        ColorType::Rgb => Layout::Rgb,
        ColorType::Rgba | ColorType::Indexed => Layout::Rgba,
        ColorType::GrayscaleAlpha => {
            let what = "gray+alpha PNGs are not supported; use gray or RGBA";
            return Err(unsupported(path, what.into()));
        }
    };
    check_samples(path, width, height, widest)?;
    // Palettes become RGB (RGBA with tRNS); a gray or RGB tRNS colour key is ignored.
    decoder.set_transformations(if color == ColorType::Indexed {
        png::Transformations::EXPAND
    } else {
        png::Transformations::IDENTITY
    });
    let mut reader = decoder.read_info().map_err(png_err)?;
    let (out_color, out_depth) = reader.output_color_type();
    let layout = match out_color {
        ColorType::Grayscale => Layout::Gray,
        ColorType::Rgb => Layout::Rgb,
        ColorType::Rgba => Layout::Rgba,
        other => return Err(unsupported(path, format!("PNG output {other:?}"))),
    };
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| unsupported(path, "PNG frame does not fit in memory".into()))?;
    let mut buf = vec![0u8; size];
    let out = reader.next_frame(&mut buf).map_err(png_err)?;
    let depth = out_depth as u8;
    let row_len = width as usize * layout.plane_count();
    let mut values = Vec::with_capacity(row_len * height as usize);
    for row in buf.chunks_exact(out.line_size).take(height as usize) {
        unpack_row(row, depth, row_len, &mut values);
    }
    let planes = deinterleave(&values, layout.plane_count());
    Picture::new(layout, width, height, depth, planes).map_err(|source| picture_err(path, source))
}

fn write_png(path: &Path, picture: &Picture) -> Result<(), ImageIoError> {
    let color = match picture.layout() {
        Layout::Gray => png::ColorType::Grayscale,
        Layout::Rgb => png::ColorType::Rgb,
        Layout::Rgba => png::ColorType::Rgba,
        other => {
            return Err(unsupported(
                path,
                format!("PNG cannot hold a {other} picture"),
            ));
        }
    };
    let depth = match (picture.layout(), picture.bit_depth()) {
        (Layout::Gray, d @ (1 | 2 | 4)) => d,
        (_, ..=8) => 8,
        _ => 16,
    };
    let png_depth = match depth {
        1 => png::BitDepth::One,
        2 => png::BitDepth::Two,
        4 => png::BitDepth::Four,
        8 => png::BitDepth::Eight,
        _ => png::BitDepth::Sixteen,
    };
    let row_len = picture.width() as usize * picture.layout().plane_count();
    let mut data = Vec::new();
    for row in interleave(picture.planes()).chunks(row_len) {
        pack_row(row, depth, &mut data);
    }
    // Encoding into memory fails only on parameters a valid Picture cannot have.
    let enc_err = |e: png::EncodingError| unsupported(path, format!("PNG encoder: {e}"));
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, picture.width(), picture.height());
    encoder.set_color(color);
    encoder.set_depth(png_depth);
    let mut writer = encoder.write_header().map_err(enc_err)?;
    writer.write_image_data(&data).map_err(enc_err)?;
    writer.finish().map_err(enc_err)?;
    std::fs::write(path, out).map_err(|source| io_err(path, source))
}

/// Samples of one row at `depth` bits (1, 2, 4 packed MSB first; 8; 16 big-endian).
fn unpack_row(row: &[u8], depth: u8, count: usize, out: &mut Vec<u16>) {
    match depth {
        16 => out.extend(
            row.chunks_exact(2)
                .take(count)
                .map(|c| u16::from_be_bytes([c[0], c[1]])),
        ),
        8 => out.extend(row.iter().take(count).map(|&b| u16::from(b))),
        _ => {
            let (d, mask) = (usize::from(depth), (1u16 << depth) - 1);
            out.extend((0..count).map(|i| {
                let bit = i * d;
                let byte = row.get(bit / 8).copied().unwrap_or(0);
                (u16::from(byte) >> (8 - d - bit % 8)) & mask
            }));
        }
    }
}

/// The inverse of [`unpack_row`]; sub-byte rows are padded to a whole byte.
fn pack_row(row: &[u16], depth: u8, out: &mut Vec<u8>) {
    match depth {
        16 => out.extend(row.iter().flat_map(|v| v.to_be_bytes())),
        8 => out.extend(row.iter().map(|&v| v as u8)),
        _ => {
            let per_byte = 8 / usize::from(depth);
            out.extend(row.chunks(per_byte).map(|chunk| {
                chunk.iter().enumerate().fold(0u8, |acc, (i, &v)| {
                    acc | ((v as u8) << (8 - usize::from(depth) * (i + 1)))
                })
            }));
        }
    }
}

fn read_pnm(path: &Path) -> Result<Picture, ImageIoError> {
    let bytes = std::fs::read(path).map_err(|source| io_err(path, source))?;
    let malformed = |reason: String| ImageIoError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let layout = match bytes.get(..2) {
        Some(b"P5") => Layout::Gray,
        Some(b"P6") => Layout::Rgb,
        Some([b'P', k @ (b'1'..=b'4' | b'7')]) => {
            let what = format!(
                "PNM P{} is not supported, only binary P5 and P6",
                *k as char
            );
            return Err(unsupported(path, what));
        }
        _ => return Err(malformed("not a PNM file (no P5 or P6)".into())),
    };
    let mut pos = 2;
    let mut field = |name: &str| -> Result<u32, String> {
        loop {
            match bytes.get(pos) {
                Some(b) if b.is_ascii_whitespace() => pos += 1,
                Some(b'#') => {
                    while bytes.get(pos).is_some_and(|&b| b != b'\n' && b != b'\r') {
                        pos += 1;
                    }
                }
                _ => break,
            }
        }
        let start = pos;
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        std::str::from_utf8(&bytes[start..pos])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("PNM header: {name} missing or not a number (byte {start})"))
    };
    let width = field("width").map_err(malformed)?;
    let height = field("height").map_err(malformed)?;
    let maxval = field("maxval").map_err(malformed)?;
    let reason = if width == 0 || height == 0 {
        format!("empty picture {width}x{height}")
    } else if !(1..=65535).contains(&maxval) {
        format!("maxval {maxval} is outside 1..=65535")
    } else if !bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
        "no whitespace after maxval".into()
    } else {
        String::new()
    };
    if !reason.is_empty() {
        return Err(malformed(format!("PNM header: {reason}")));
    }
    check_samples(path, width, height, layout)?;
    let data = &bytes[pos + 1..];
    let sample_bytes = if maxval > 255 { 2 } else { 1 };
    let need = layout_samples(layout, width, height) * sample_bytes;
    if (data.len() as u64) < need {
        return Err(ImageIoError::Truncated {
            path: path.to_path_buf(),
            need,
            got: data.len() as u64,
        });
    }
    let depth = (16 - (maxval as u16).leading_zeros()) as u8;
    let mut values = Vec::with_capacity(need as usize / sample_bytes as usize);
    unpack_row(
        &data[..need as usize],
        if maxval > 255 { 16 } else { 8 },
        usize::MAX,
        &mut values,
    );
    let planes = deinterleave(&values, layout.plane_count());
    Picture::new(layout, width, height, depth, planes).map_err(|source| picture_err(path, source))
}

fn write_pnm(path: &Path, picture: &Picture, ext: &str) -> Result<(), ImageIoError> {
    let magic = match (picture.layout(), ext) {
        (Layout::Gray, "pgm" | "pnm") => "P5",
        (Layout::Rgb, "ppm" | "pnm") => "P6",
        (layout, _) => {
            return Err(unsupported(
                path,
                format!("a .{ext} file cannot hold a {layout} picture"),
            ));
        }
    };
    let depth = picture.bit_depth();
    let (w, h, maxval) = (picture.width(), picture.height(), max_sample(depth));
    let mut out = format!("{magic}\n{w} {h}\n{maxval}\n").into_bytes();
    pack_row(
        &interleave(picture.planes()),
        if depth > 8 { 16 } else { 8 },
        &mut out,
    );
    std::fs::write(path, out).map_err(|source| io_err(path, source))
}

/// Planes of equal size to pixel-interleaved samples.
fn interleave(planes: &[Vec<u16>]) -> Vec<u16> {
    match planes {
        [one] => one.clone(),
        _ => {
            let len = planes.first().map_or(0, Vec::len);
            (0..len)
                .flat_map(|i| planes.iter().map(move |p| p[i]))
                .collect()
        }
    }
}

/// Pixel-interleaved samples of `n` channels to planes.
fn deinterleave(values: &[u16], n: usize) -> Vec<Vec<u16>> {
    if n == 1 {
        return vec![values.to_vec()];
    }
    (0..n)
        .map(|c| values.iter().skip(c).step_by(n).copied().collect())
        .collect()
}

/// Samples over all planes of a `width`×`height` picture of `layout`.
fn layout_samples(layout: Layout, width: u32, height: u32) -> u64 {
    (0..layout.plane_count())
        .map(|p| {
            let (w, h) = layout.plane_dims(p, width, height);
            u64::from(w) * u64::from(h)
        })
        .sum()
}

fn check_samples(path: &Path, width: u32, height: u32, layout: Layout) -> Result<(), ImageIoError> {
    let samples = layout_samples(layout, width, height);
    if samples > MAX_SAMPLES {
        return Err(ImageIoError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            samples,
        });
    }
    Ok(())
}

fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

fn io_err(path: &Path, source: std::io::Error) -> ImageIoError {
    ImageIoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn picture_err(path: &Path, source: PictureError) -> ImageIoError {
    ImageIoError::Picture {
        path: path.to_path_buf(),
        source,
    }
}

fn unsupported(path: &Path, what: String) -> ImageIoError {
    ImageIoError::Unsupported {
        path: path.to_path_buf(),
        what,
    }
}
