//! Pixel formats and the memory layout of a frame's planes.

use std::fmt;
use std::str::FromStr;

/// Planes start on this many bytes, so that any plane can be viewed as `&[u16]`
/// and SIMD loads are aligned.
pub const PLANE_ALIGN: usize = 64;

/// The pixel formats the engine handles.
///
/// Names follow GStreamer's (`gst_name`), which is also what configs and the
/// command line accept. Exhaustive on purpose: every crate that draws on,
/// converts or codes a frame matches on it, and a new format must reach each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PixelFormat {
    /// Packed 8-bit RGB, 3 bytes per pixel.
    Rgb8,
    /// Packed 8-bit RGBA, 4 bytes per pixel.
    Rgba8,
    /// Planar YCbCr 4:2:2, 10 bits in the low bits of little-endian u16 (`I422_10LE`).
    I422_10,
    /// Packed YCbCr 4:2:2 10-bit as SDI capture cards deliver it: 6 pixels in
    /// 16 bytes, rows padded to 128 bytes (`v210`).
    V210,
    /// Planar YCbCr 4:2:0, 8-bit (`I420`).
    I420,
    /// Planar YCbCr 4:2:0, 10 bits in little-endian u16 (`I420_10LE`).
    I420_10,
}

impl PixelFormat {
    /// Every supported format, in the order caps are offered to GStreamer.
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::I422_10,
        PixelFormat::V210,
        PixelFormat::I420_10,
        PixelFormat::I420,
        PixelFormat::Rgb8,
        PixelFormat::Rgba8,
    ];

    /// The GStreamer format name (`video/x-raw,format=...`).
    pub fn gst_name(self) -> &'static str {
        match self {
            PixelFormat::Rgb8 => "RGB",
            PixelFormat::Rgba8 => "RGBA",
            PixelFormat::I422_10 => "I422_10LE",
            PixelFormat::V210 => "v210",
            PixelFormat::I420 => "I420",
            PixelFormat::I420_10 => "I420_10LE",
        }
    }

    /// Bits per sample.
    pub fn bit_depth(self) -> u32 {
        match self {
            PixelFormat::Rgb8 | PixelFormat::Rgba8 | PixelFormat::I420 => 8,
            PixelFormat::I422_10 | PixelFormat::V210 | PixelFormat::I420_10 => 10,
        }
    }

    /// Number of planes in memory.
    pub fn plane_count(self) -> usize {
        match self {
            PixelFormat::Rgb8 | PixelFormat::Rgba8 | PixelFormat::V210 => 1,
            PixelFormat::I422_10 | PixelFormat::I420 | PixelFormat::I420_10 => 3,
        }
    }

    /// Bytes per stored sample in a planar format (1 or 2); for packed formats, bytes per pixel.
    fn unit_bytes(self) -> usize {
        match self {
            PixelFormat::Rgb8 => 3,
            PixelFormat::Rgba8 => 4,
            PixelFormat::I420 => 1,
            PixelFormat::I422_10 | PixelFormat::I420_10 => 2,
            PixelFormat::V210 => 16, // per 6 pixels; handled in row_bytes
        }
    }

    /// Width and height in samples of `plane` for a `width`×`height` frame.
    pub fn plane_dims(self, plane: usize, width: u32, height: u32) -> (u32, u32) {
        let half = |v: u32| v.div_ceil(2);
        match (self, plane) {
            (PixelFormat::I422_10, 1 | 2) => (half(width), height),
            (PixelFormat::I420 | PixelFormat::I420_10, 1 | 2) => (half(width), half(height)),
            _ => (width, height),
        }
    }

    /// Bytes of meaningful data in one row of `plane`.
    pub fn row_bytes(self, plane: usize, width: u32) -> usize {
        match self {
            // GStreamer's v210 stride: whole 48-pixel groups of 128 bytes.
            PixelFormat::V210 => (width as usize).div_ceil(48) * 128,
            _ => self.plane_dims(plane, width, 1).0 as usize * self.unit_bytes(),
        }
    }
}

impl fmt::Display for PixelFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.gst_name())
    }
}

/// A format name that is not one of [`PixelFormat::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unsupported pixel format `{0}` (supported: I422_10LE, v210, I420_10LE, I420, RGB, RGBA)")]
pub struct UnsupportedFormat(pub String);

impl FromStr for PixelFormat {
    type Err = UnsupportedFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PixelFormat::ALL
            .into_iter()
            .find(|f| f.gst_name().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnsupportedFormat(s.to_owned()))
    }
}

/// Where one plane lives inside a frame buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneLayout {
    /// Byte offset of the first row.
    pub offset: usize,
    /// Bytes from one row to the next.
    pub stride: usize,
    /// Bytes of meaningful data per row (`<= stride`).
    pub row_bytes: usize,
    /// Number of rows.
    pub rows: usize,
}

impl PlaneLayout {
    /// Bytes the plane spans in the buffer.
    pub fn span(&self) -> usize {
        self.stride * self.rows
    }
}

/// Geometry and format of a frame, and the layout of its planes in one buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameLayout {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Pixel format.
    pub format: PixelFormat,
    planes: Vec<PlaneLayout>,
    size: usize,
}

/// A frame geometry the engine refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frame size {width}x{height} is out of range (1..={MAX_DIM} in each dimension)")]
pub struct BadGeometry {
    /// Requested width.
    pub width: u32,
    /// Requested height.
    pub height: u32,
}

/// Largest frame dimension accepted (16K).
pub const MAX_DIM: u32 = 16384;

impl FrameLayout {
    /// The engine's own tightly packed layout: rows padded to 64 bytes except v210's
    /// 128-byte groups, every plane starting on [`PLANE_ALIGN`].
    pub fn packed(width: u32, height: u32, format: PixelFormat) -> Result<Self, BadGeometry> {
        if width == 0 || height == 0 || width > MAX_DIM || height > MAX_DIM {
            return Err(BadGeometry { width, height });
        }
        let mut planes = Vec::with_capacity(format.plane_count());
        let mut offset = 0;
        for p in 0..format.plane_count() {
            let (_, rows) = format.plane_dims(p, width, height);
            let row_bytes = format.row_bytes(p, width);
            let stride = row_bytes.next_multiple_of(PLANE_ALIGN);
            let plane = PlaneLayout {
                offset,
                stride,
                row_bytes,
                rows: rows as usize,
            };
            offset = (offset + plane.span()).next_multiple_of(PLANE_ALIGN);
            planes.push(plane);
        }
        Ok(FrameLayout {
            width,
            height,
            format,
            planes,
            size: offset,
        })
    }

    /// Plane layouts, one per plane.
    pub fn planes(&self) -> &[PlaneLayout] {
        &self.planes
    }

    /// Total bytes of the buffer that holds the frame.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Bytes of picture data, without padding.
    pub fn payload_bytes(&self) -> usize {
        self.planes.iter().map(|p| p.row_bytes * p.rows).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for f in PixelFormat::ALL {
            assert_eq!(f.gst_name().parse::<PixelFormat>(), Ok(f));
        }
        assert!("NV12".parse::<PixelFormat>().is_err());
    }

    #[test]
    fn layout_of_8k_422_10() {
        let l = FrameLayout::packed(7680, 4320, PixelFormat::I422_10).unwrap();
        assert_eq!(l.planes().len(), 3);
        assert_eq!(l.planes()[0].row_bytes, 7680 * 2);
        assert_eq!(l.planes()[1].row_bytes, 3840 * 2);
        assert_eq!(l.planes()[2].rows, 4320);
        assert_eq!(l.payload_bytes(), 7680 * 4320 * 2 * 2);
        for p in l.planes() {
            assert_eq!(p.offset % PLANE_ALIGN, 0);
        }
    }

    #[test]
    fn v210_rows_are_128_byte_groups() {
        let l = FrameLayout::packed(1920, 2, PixelFormat::V210).unwrap();
        assert_eq!(l.planes()[0].row_bytes, 5120);
        let l = FrameLayout::packed(1280, 2, PixelFormat::V210).unwrap();
        assert_eq!(l.planes()[0].row_bytes, 27 * 128);
    }

    #[test]
    fn odd_sizes_round_chroma_up() {
        let l = FrameLayout::packed(33, 17, PixelFormat::I420).unwrap();
        assert_eq!(l.planes()[1].row_bytes, 17);
        assert_eq!(l.planes()[1].rows, 9);
    }

    #[test]
    fn zero_and_huge_sizes_are_refused() {
        assert!(FrameLayout::packed(0, 10, PixelFormat::Rgb8).is_err());
        assert!(FrameLayout::packed(10, MAX_DIM + 1, PixelFormat::Rgb8).is_err());
    }
}
