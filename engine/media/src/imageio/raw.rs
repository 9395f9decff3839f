//! Raw video frames: a layout named on the command line (`WxH:FORMAT`), no header.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use super::{
    ImageIoError, MAX_SAMPLES, check_samples, deinterleave, interleave, io_err, layout_samples,
    picture_err,
};
use crate::frame::v210::{self};
use crate::frame::{self, PixelFormat, VideoFrame};
use crate::picture::{Layout, Picture};

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
    pub(super) fn names() -> String {
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

pub(super) fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
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

pub(super) fn decode_raw(
    path: &Path,
    bytes: &[u8],
    spec: RawSpec,
) -> Result<Picture, ImageIoError> {
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

pub(super) fn encode_raw(picture: &Picture, format: RawFormat) -> Result<Vec<u8>, ImageIoError> {
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
