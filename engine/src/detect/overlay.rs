//! What the model saw, for a person: a reduced RGB copy of the frame with the
//! detection's boxes outlined in green and, when the frame is anomalous, a red
//! border; written as PNG through [`crate::imageio`].
//!
//! The copy is made through the same area averaging as the model input
//! ([`input::frame_tensor`]), at most `max_width` pixels wide, and converted
//! from limited-range BT.2020 Y'CbCr to 8-bit RGB.

use std::path::{Path, PathBuf};

use super::input::{self, InputError};
use super::model::Detection;
use crate::frame::VideoFrame;
use crate::imageio::{self, ImageIoError};
use crate::picture::{Layout, Picture, PictureError};

/// Box outline colour.
pub const BOX_RGB: [u16; 3] = [0, 255, 0];
/// Border colour of an anomalous frame.
pub const ANOMALY_RGB: [u16; 3] = [255, 0, 0];

/// An overlay that cannot be made or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OverlayError {
    /// The frame cannot be reduced.
    #[error("overlay: {0}")]
    Input(#[from] InputError),
    /// The picture cannot be built.
    #[error("overlay: {0}")]
    Picture(#[from] PictureError),
    /// The PNG cannot be written.
    #[error("overlay {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: ImageIoError,
    },
}

/// An RGB copy of `frame`, at most `max_width` wide, with `detection` drawn on it.
pub fn preview(
    frame: &VideoFrame,
    detection: &Detection,
    max_width: u32,
) -> Result<Picture, OverlayError> {
    let (fw, fh) = (frame.width().max(1), frame.height().max(1));
    let pw = fw.min(max_width.max(1));
    let ph = ((u64::from(fh) * u64::from(pw)).div_ceil(u64::from(fw)) as u32).max(1);
    let ycc = input::frame_tensor(frame, pw, ph)?;
    let n = (pw * ph) as usize;
    let mut planes = vec![vec![0u16; n]; 3];
    for i in 0..n {
        let y = (ycc[i] - 16.0 / 255.0) * (255.0 / 219.0);
        let cb = (ycc[n + i] - 128.0 / 255.0) * (255.0 / 224.0);
        let cr = (ycc[2 * n + i] - 128.0 / 255.0) * (255.0 / 224.0);
        let rgb = [
            y + 1.4746 * cr,
            y - 0.164_55 * cb - 0.571_35 * cr,
            y + 1.8814 * cb,
        ];
        for (p, v) in rgb.into_iter().enumerate() {
            planes[p][i] = (v * 255.0).round().clamp(0.0, 255.0) as u16;
        }
    }
    let mut pic = Picture::new(Layout::Rgb, pw, ph, 8, planes)?;
    let thickness = (pw / 256).max(1);
    if detection.anomalous {
        draw_rect(&mut pic, (0, 0, pw, ph), ANOMALY_RGB, thickness);
    }
    for b in &detection.boxes {
        let scale =
            |v: u32, from: u32, to: u32| (u64::from(v) * u64::from(to) / u64::from(from)) as u32;
        let x = scale(b.x, fw, pw);
        let y = scale(b.y, fh, ph);
        let x1 = (u64::from(b.x + b.width) * u64::from(pw)).div_ceil(u64::from(fw)) as u32;
        let y1 = (u64::from(b.y + b.height) * u64::from(ph)).div_ceil(u64::from(fh)) as u32;
        draw_rect(
            &mut pic,
            (
                x,
                y,
                x1.saturating_sub(x).max(1),
                y1.saturating_sub(y).max(1),
            ),
            BOX_RGB,
            thickness,
        );
    }
    Ok(pic)
}

/// Outline `(x, y, width, height)` in an RGB picture, `thickness` pixels
/// inside the rectangle, clipped to the picture.
pub fn draw_rect(pic: &mut Picture, rect: (u32, u32, u32, u32), rgb: [u16; 3], thickness: u32) {
    let (w, h) = (pic.width(), pic.height());
    let (x0, y0) = (rect.0.min(w), rect.1.min(h));
    let (x1, y1) = ((rect.0 + rect.2).min(w), (rect.1 + rect.3).min(h));
    let t = thickness.max(1);
    let planes = pic.planes_mut();
    for y in y0..y1 {
        for x in x0..x1 {
            let edge = x < x0 + t || x + t >= x1 || y < y0 + t || y + t >= y1;
            if edge {
                let i = (y * w + x) as usize;
                for (p, &c) in rgb.iter().enumerate() {
                    if let Some(v) = planes.get_mut(p).and_then(|pl| pl.get_mut(i)) {
                        *v = c;
                    }
                }
            }
        }
    }
}

/// Write the [`preview`] of `frame` and `detection` to `path` (PNG).
pub fn write_png(
    path: &Path,
    frame: &VideoFrame,
    detection: &Detection,
    max_width: u32,
) -> Result<(), OverlayError> {
    let pic = preview(frame, detection, max_width)?;
    imageio::write_picture(path, &pic).map_err(|source| OverlayError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::model::BoundingBox;
    use crate::frame::PixelFormat;

    fn grey_frame() -> VideoFrame {
        let mut f = VideoFrame::zeroed(64, 32, PixelFormat::I420).unwrap();
        f.plane_mut(0).fill(126); // mid grey: (126-16)*255/219 = 128.08
        f.plane_mut(1).fill(128);
        f.plane_mut(2).fill(128);
        f
    }

    fn detection(anomalous: bool) -> Detection {
        Detection {
            seq: 0,
            score: 1.0,
            anomalous,
            map: None,
            map_width: 0,
            map_height: 0,
            boxes: vec![BoundingBox {
                x: 16,
                y: 8,
                width: 16,
                height: 8,
                cells: 1,
                peak: 1.0,
            }],
        }
    }

    fn rgb(p: &Picture, x: u32, y: u32) -> [u16; 3] {
        let i = (y * p.width() + x) as usize;
        [p.planes()[0][i], p.planes()[1][i], p.planes()[2][i]]
    }

    #[test]
    fn boxes_and_border_are_drawn_at_preview_scale() {
        let p = preview(&grey_frame(), &detection(true), 32).unwrap();
        assert_eq!((p.width(), p.height()), (32, 16));
        // The box (16,8)-(32,16) in the frame is (8,4)-(16,8) in the preview.
        assert_eq!(rgb(&p, 8, 4), BOX_RGB);
        assert_eq!(rgb(&p, 15, 7), BOX_RGB);
        assert_eq!(rgb(&p, 10, 4), BOX_RGB);
        assert_eq!(rgb(&p, 10, 5), [128, 128, 128]);
        assert_eq!(rgb(&p, 0, 0), ANOMALY_RGB);
        assert_eq!(rgb(&p, 31, 15), ANOMALY_RGB);
        let calm = preview(&grey_frame(), &detection(false), 32).unwrap();
        assert_eq!(rgb(&calm, 0, 0), [128, 128, 128]);
    }

    #[test]
    fn a_png_is_written_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("o.png");
        write_png(&path, &grey_frame(), &detection(true), 1000).unwrap();
        let back = imageio::read_picture(&path, None).unwrap();
        assert_eq!((back.width(), back.height()), (64, 32));
        assert_eq!(rgb(&back, 16, 8), BOX_RGB);
        assert_eq!(
            back,
            preview(&grey_frame(), &detection(true), 1000).unwrap()
        );
    }
}
