//! [`Picture`]: the codec's view of an image — planes of u16 samples with a
//! bit depth and a layout that says what the planes mean.
//!
//! Video frames, PNG/PPM files, raw files and spectral cubes all become a
//! `Picture` before they are coded, and come back as one when decoded.

use crate::frame::{PixelFormat, VideoFrame};
use crate::spectral::SpectralCube;

/// What the planes of a [`Picture`] are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum Layout {
    /// One plane of luminance.
    Gray,
    /// Red, green, blue planes (coded through a reversible colour transform).
    Rgb,
    /// Red, green, blue and alpha planes.
    Rgba,
    /// Y, Cb, Cr with chroma half width.
    Yuv422,
    /// Y, Cb, Cr with chroma half width and half height.
    Yuv420,
    /// N spectral bands of equal size (coded through a reversible inter-band transform).
    Bands(u16),
}

impl Layout {
    /// How many planes the layout has.
    pub fn plane_count(self) -> usize {
        match self {
            Layout::Gray => 1,
            Layout::Rgb | Layout::Yuv422 | Layout::Yuv420 => 3,
            Layout::Rgba => 4,
            Layout::Bands(n) => usize::from(n),
        }
    }

    /// Horizontal and vertical subsampling shifts of `plane`.
    pub fn subsampling(self, plane: usize) -> (u32, u32) {
        match (self, plane) {
            (Layout::Yuv422, 1 | 2) => (1, 0),
            (Layout::Yuv420, 1 | 2) => (1, 1),
            _ => (0, 0),
        }
    }

    /// Width and height of `plane` in a `width`×`height` picture.
    pub fn plane_dims(self, plane: usize, width: u32, height: u32) -> (u32, u32) {
        let (sx, sy) = self.subsampling(plane);
        (width.div_ceil(1 << sx), height.div_ceil(1 << sy))
    }
}

impl std::fmt::Display for Layout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Layout::Gray => f.write_str("gray"),
            Layout::Rgb => f.write_str("rgb"),
            Layout::Rgba => f.write_str("rgba"),
            Layout::Yuv422 => f.write_str("yuv422"),
            Layout::Yuv420 => f.write_str("yuv420"),
            Layout::Bands(n) => write!(f, "{n}-band"),
        }
    }
}

/// A picture whose description does not hold together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PictureError {
    /// Width or height is zero.
    #[error("picture is empty ({width}x{height})")]
    Empty {
        /// Width.
        width: u32,
        /// Height.
        height: u32,
    },
    /// Bit depth outside 1..=16.
    #[error("bit depth {0} is outside 1..=16")]
    BitDepth(u8),
    /// A layout with no planes (zero bands).
    #[error("a picture needs at least one plane")]
    NoPlanes,
    /// A plane's sample count does not match its dimensions.
    #[error("plane {plane} has {got} samples, {width}x{height} needs {need}")]
    PlaneSize {
        /// Plane index.
        plane: usize,
        /// Samples present.
        got: usize,
        /// Samples needed.
        need: usize,
        /// Plane width.
        width: u32,
        /// Plane height.
        height: u32,
    },
    /// A sample above the largest value of the bit depth.
    #[error("plane {plane} holds {value}, above the {bit_depth}-bit maximum {max}")]
    SampleRange {
        /// Plane index.
        plane: usize,
        /// The offending sample.
        value: u16,
        /// Declared bit depth.
        bit_depth: u8,
        /// Largest allowed value.
        max: u16,
    },
    /// A video frame format the codec has no layout for.
    #[error("frame format {0} cannot be coded directly; convert it to planar first")]
    Format(PixelFormat),
}

/// Planes of u16 samples, tightly packed, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Picture {
    layout: Layout,
    width: u32,
    height: u32,
    bit_depth: u8,
    planes: Vec<Vec<u16>>,
}

impl Picture {
    /// A picture from its planes; checks their sizes and sample range.
    pub fn new(
        layout: Layout,
        width: u32,
        height: u32,
        bit_depth: u8,
        planes: Vec<Vec<u16>>,
    ) -> Result<Self, PictureError> {
        if width == 0 || height == 0 {
            return Err(PictureError::Empty { width, height });
        }
        if !(1..=16).contains(&bit_depth) {
            return Err(PictureError::BitDepth(bit_depth));
        }
        if layout.plane_count() == 0 {
            return Err(PictureError::NoPlanes);
        }
        let max = max_sample(bit_depth);
        for p in 0..layout.plane_count() {
            let (w, h) = layout.plane_dims(p, width, height);
            let need = w as usize * h as usize;
            let got = planes.get(p).map_or(0, Vec::len);
            if got != need {
                return Err(PictureError::PlaneSize {
                    plane: p,
                    got,
                    need,
                    width: w,
                    height: h,
                });
            }
            if bit_depth < 16
                && let Some(&value) = planes[p].iter().find(|&&v| v > max)
            {
                return Err(PictureError::SampleRange {
                    plane: p,
                    value,
                    bit_depth,
                    max,
                });
            }
        }
        if planes.len() != layout.plane_count() {
            return Err(PictureError::PlaneSize {
                plane: layout.plane_count(),
                got: planes[layout.plane_count()].len(),
                need: 0,
                width: 0,
                height: 0,
            });
        }
        Ok(Picture {
            layout,
            width,
            height,
            bit_depth,
            planes,
        })
    }

    /// An all-zero picture.
    pub fn zeroed(
        layout: Layout,
        width: u32,
        height: u32,
        bit_depth: u8,
    ) -> Result<Self, PictureError> {
        let planes = (0..layout.plane_count())
            .map(|p| {
                let (w, h) = layout.plane_dims(p, width, height);
                vec![0u16; w as usize * h as usize]
            })
            .collect();
        Picture::new(layout, width, height, bit_depth, planes)
    }

    /// What the planes are.
    pub fn layout(&self) -> Layout {
        self.layout
    }
    /// Width in pixels (of the first plane).
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Height in lines (of the first plane).
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Significant bits per sample.
    pub fn bit_depth(&self) -> u8 {
        self.bit_depth
    }
    /// The planes, in layout order.
    pub fn planes(&self) -> &[Vec<u16>] {
        &self.planes
    }
    /// Mutable planes. Writing samples above the bit depth's maximum is the caller's fault.
    pub fn planes_mut(&mut self) -> &mut [Vec<u16>] {
        &mut self.planes
    }
    /// Width and height of plane `p`.
    pub fn plane_dims(&self, p: usize) -> (u32, u32) {
        self.layout.plane_dims(p, self.width, self.height)
    }
    /// Total samples over all planes.
    pub fn samples(&self) -> usize {
        self.planes.iter().map(Vec::len).sum()
    }

    /// The picture of a planar video frame (copies the samples out of the frame's strides).
    pub fn from_frame(frame: &VideoFrame) -> Result<Self, PictureError> {
        let (layout, depth) = match frame.format() {
            PixelFormat::I422_10 => (Layout::Yuv422, 10),
            PixelFormat::I420_10 => (Layout::Yuv420, 10),
            PixelFormat::I420 => (Layout::Yuv420, 8),
            PixelFormat::Rgb8 => (Layout::Rgb, 8),
            PixelFormat::Rgba8 => (Layout::Rgba, 8),
            other => return Err(PictureError::Format(other)),
        };
        let (w, h) = (frame.width(), frame.height());
        let planes = match layout {
            Layout::Rgb | Layout::Rgba => {
                let n = layout.plane_count();
                let mut planes = vec![Vec::with_capacity(w as usize * h as usize); n];
                for row in frame.rows(0) {
                    for px in row[..w as usize * n].chunks_exact(n) {
                        for (plane, &v) in planes.iter_mut().zip(px) {
                            plane.push(u16::from(v));
                        }
                    }
                }
                planes
            }
            _ => (0..3)
                .map(|p| {
                    let (pw, _) = layout.plane_dims(p, w, h);
                    let pw = pw as usize;
                    if depth > 8 {
                        let stride = frame.layout().planes()[p].stride / 2;
                        frame
                            .plane_u16(p)
                            .chunks(stride)
                            .flat_map(|row| row[..pw].iter().copied())
                            .collect()
                    } else {
                        frame
                            .rows(p)
                            .flat_map(|row| row[..pw].iter().map(|&v| u16::from(v)))
                            .collect()
                    }
                })
                .collect(),
        };
        Picture::new(layout, w, h, depth, planes)
    }

    /// The picture of a spectral cube: one plane per band, 16 bits.
    pub fn from_cube(cube: &SpectralCube) -> Result<Self, PictureError> {
        let (b, h, w) = cube.data().dim();
        let bands = u16::try_from(b).map_err(|_| PictureError::NoPlanes)?;
        let planes = cube
            .data()
            .outer_iter()
            .map(|band| band.iter().copied().collect())
            .collect();
        Picture::new(Layout::Bands(bands), w as u32, h as u32, 16, planes)
    }
}

/// The largest sample value of a bit depth.
pub fn max_sample(bit_depth: u8) -> u16 {
    ((1u32 << bit_depth) - 1) as u16
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plane_dims_round_up_for_odd_sizes() {
        assert_eq!(Layout::Yuv420.plane_dims(1, 7, 5), (4, 3));
        assert_eq!(Layout::Yuv422.plane_dims(2, 7, 5), (4, 5));
        assert_eq!(Layout::Rgb.plane_dims(2, 7, 5), (7, 5));
    }

    #[test]
    fn new_rejects_bad_planes_and_samples() {
        assert!(matches!(
            Picture::new(Layout::Gray, 2, 2, 8, vec![vec![0; 3]]),
            Err(PictureError::PlaneSize {
                got: 3,
                need: 4,
                ..
            })
        ));
        assert!(matches!(
            Picture::new(Layout::Gray, 2, 1, 10, vec![vec![0, 1024]]),
            Err(PictureError::SampleRange { value: 1024, .. })
        ));
        assert!(matches!(
            Picture::new(Layout::Gray, 0, 1, 8, vec![vec![]]),
            Err(PictureError::Empty { .. })
        ));
        assert!(Picture::new(Layout::Gray, 2, 1, 16, vec![vec![0, 65535]]).is_ok());
    }
}
