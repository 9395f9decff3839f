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

mod png_file;
mod pnm;

pub use pnm::PnmRows;
mod raw;

use std::path::{Path, PathBuf};

use ndarray::Array3;

use png_file::{read_png, write_png};
use pnm::{read_pnm, write_pnm};
use raw::encode_raw;
pub use raw::{
    RawFormat, RawFrames, RawSpec, RawSpecError, append_raw, append_raw_as, raw_spec_for,
};

use crate::frame::v210::ConvertError;
use crate::picture::{Layout, Picture, PictureError};
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

/// Planes of equal size to pixel-interleaved samples.
pub(crate) fn interleave(planes: &[Vec<u16>]) -> Vec<u16> {
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
pub(crate) fn deinterleave(values: &[u16], n: usize) -> Vec<Vec<u16>> {
    if n == 1 {
        return vec![values.to_vec()];
    }
    (0..n)
        .map(|c| values.iter().skip(c).step_by(n).copied().collect())
        .collect()
}

/// Samples over all planes of a `width`×`height` picture of `layout`.
pub(crate) fn layout_samples(layout: Layout, width: u32, height: u32) -> u64 {
    (0..layout.plane_count())
        .map(|p| {
            let (w, h) = layout.plane_dims(p, width, height);
            u64::from(w) * u64::from(h)
        })
        .sum()
}

pub(crate) fn check_samples(
    path: &Path,
    width: u32,
    height: u32,
    layout: Layout,
) -> Result<(), ImageIoError> {
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

pub(crate) fn extension(path: &Path) -> Option<String> {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
}

pub(crate) fn io_err(path: &Path, source: std::io::Error) -> ImageIoError {
    ImageIoError::Io {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn picture_err(path: &Path, source: PictureError) -> ImageIoError {
    ImageIoError::Picture {
        path: path.to_path_buf(),
        source,
    }
}

pub(crate) fn unsupported(path: &Path, what: String) -> ImageIoError {
    ImageIoError::Unsupported {
        path: path.to_path_buf(),
        what,
    }
}

/// Samples of one row at `depth` bits (1, 2, 4 packed MSB first; 8; 16 big-endian).
pub(crate) fn unpack_row(row: &[u8], depth: u8, count: usize, out: &mut Vec<u16>) {
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
pub(crate) fn pack_row(row: &[u16], depth: u8, out: &mut Vec<u8>) {
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
