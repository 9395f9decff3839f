//! What the model saw, for a person: a reduced RGB copy of the frame with the
//! detection's boxes outlined in green, a red border when the frame is
//! anomalous and an amber one (inside the red) when the image-quality alarm is
//! raised (the picture cannot be trusted); written as PNG through [`med8k_media::imageio`]. [`draw`] puts the same
//! marks on a full picture in place, for the monitor (`med8k serve --sink`
//! draws the boxes that arrive with the frames).
//!
//! The copy is made through the same area averaging as the model input
//! ([`input::frame_tensor`]), at most `max_width` pixels wide, and converted
//! from limited-range BT.2020 Y'CbCr to 8-bit RGB.

use std::path::{Path, PathBuf};

use super::input::{self, InputError};
use super::model::Detection;
use med8k_media::frame::{PixelFormat, VideoFrame};
use med8k_media::imageio::{self, ImageIoError};
use med8k_media::picture::{Layout, Picture, PictureError};

/// Frames after the one it was made on that a result is still drawn on.
pub const STALE_FRAMES: u64 = 30;

/// Box outline colour.
pub const BOX_RGB: [u16; 3] = [0, 255, 0];
/// Border colour of an anomalous frame.
pub const ANOMALY_RGB: [u16; 3] = [255, 0, 0];
/// Border colour of a frame whose image-quality alarm is raised.
pub const QUALITY_RGB: [u16; 3] = [255, 176, 0];

/// The two alarms of a result, as drawn: a red border for a tissue anomaly,
/// an amber one (inside the red when both) for image quality.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Alarms {
    /// The tissue-anomaly alarm (`Detection::anomalous`).
    pub anomalous: bool,
    /// The image-quality alarm (`Detection::quality_alarm`).
    pub quality: bool,
}

impl Alarms {
    /// A detection's alarms.
    pub fn of(d: &Detection) -> Alarms {
        Alarms {
            anomalous: d.anomalous,
            quality: d.quality_alarm,
        }
    }
}

/// Widest overlay PNG (a preview of an 8K frame at 1/4 scale).
pub const MAX_PREVIEW_WIDTH: u32 = 1920;

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
    preview_of_input(&ycc, (pw, ph), (fw, fh), detection)
}

/// [`preview`] from a model input made already (planar Y', Cb, Cr of
/// `size`, `code / full scale`, as `input::frame_tensor` makes it) of a
/// `frame_size` frame: what the model saw, at its resolution.
pub fn preview_of_input(
    ycc: &[f32],
    size: (u32, u32),
    frame_size: (u32, u32),
    detection: &Detection,
) -> Result<Picture, OverlayError> {
    let (pw, ph) = size;
    let n = (pw * ph) as usize;
    if ycc.len() < 3 * n {
        return Err(OverlayError::Input(InputError::BadSize {
            width: frame_size.0 as usize,
            height: frame_size.1 as usize,
            out_width: pw as usize,
            out_height: ph as usize,
        }));
    }
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
    let (fw, fh) = frame_size;
    draw(
        &mut pic,
        &unit_rects(detection, fw, fh),
        Alarms::of(detection),
    );
    Ok(pic)
}

/// A region as fractions of the frame's width and height, each in `[0, 1]`
/// (the form boxes travel in over the link).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitRect {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
}

/// The boxes of `detection`, made on a `frame_width × frame_height` frame, as [`UnitRect`]s.
pub fn unit_rects(detection: &Detection, frame_width: u32, frame_height: u32) -> Vec<UnitRect> {
    let (fw, fh) = (frame_width.max(1) as f32, frame_height.max(1) as f32);
    detection
        .boxes
        .iter()
        .map(|b| UnitRect {
            x: b.x as f32 / fw,
            y: b.y as f32 / fh,
            w: b.width as f32 / fw,
            h: b.height as f32 / fh,
        })
        .collect()
}

/// The rectangles to outline on a `w × h` image, in pixels, with their colours.
fn marks(w: u32, h: u32, rects: &[UnitRect], alarms: Alarms) -> Vec<(Rect, [u16; 3])> {
    let edge = |v: f32, size: u32, up: bool| {
        let v = f64::from(v.clamp(0.0, 1.0)) * f64::from(size);
        (if up { v.ceil() } else { v.floor() }) as u32
    };
    let border = alarms.anomalous.then_some(((0, 0, w, h), ANOMALY_RGB));
    let inset = if alarms.anomalous { thickness(w) } else { 0 };
    let quality = alarms.quality.then_some((
        (
            inset,
            inset,
            w.saturating_sub(2 * inset).max(1),
            h.saturating_sub(2 * inset).max(1),
        ),
        QUALITY_RGB,
    ));
    let boxes = rects.iter().map(|r| {
        let (x0, y0) = (edge(r.x, w, false), edge(r.y, h, false));
        let (x1, y1) = (edge(r.x + r.w, w, true), edge(r.y + r.h, h, true));
        let rect = (
            x0,
            y0,
            x1.saturating_sub(x0).max(1),
            y1.saturating_sub(y0).max(1),
        );
        (rect, BOX_RGB)
    });
    border.into_iter().chain(quality).chain(boxes).collect()
}

/// Line width for a `width`-pixel image.
fn thickness(width: u32) -> u32 {
    (width / 256).max(1)
}

/// Draw `rects` outlined in [`BOX_RGB`], a border in [`ANOMALY_RGB`] when
/// `alarms.anomalous` and one in [`QUALITY_RGB`] (inside it) when
/// `alarms.quality`, onto `pic` in place: lines `max(1, width / 256)` pixels
/// wide, inside each rectangle.
///
/// Works on what a monitor is given: RGB and RGBA, limited-range BT.2020
/// Y'CbCr 4:2:2 and 4:2:0 (chroma lines on the subsampled grid), and gray, at
/// any bit depth. Spectral band pictures are left as they are.
pub fn draw(pic: &mut Picture, rects: &[UnitRect], alarms: Alarms) {
    let (w, h) = (pic.width(), pic.height());
    for (rect, rgb) in marks(w, h, rects, alarms) {
        draw_rect(pic, rect, rgb, thickness(w));
    }
}

/// [`draw`] on a video frame in place, in its own pixel format (for a
/// monitor after the detector): only the outlines' samples are written.
pub fn draw_frame(
    frame: &mut VideoFrame,
    rects: &[UnitRect],
    alarms: Alarms,
) -> Result<(), OverlayError> {
    let (w, h, format) = (frame.width(), frame.height(), frame.format());
    let (layout, depth) = match format {
        PixelFormat::Rgb8 => (Layout::Rgb, 8),
        PixelFormat::Rgba8 => (Layout::Rgba, 8),
        PixelFormat::I422_10 | PixelFormat::V210 => (Layout::Yuv422, 10),
        PixelFormat::I420 => (Layout::Yuv420, 8),
        PixelFormat::I420_10 => (Layout::Yuv420, 10),
    };
    let strides: Vec<usize> = frame.layout().planes().iter().map(|p| p.stride).collect();
    for (rect, rgb) in marks(w, h, rects, alarms) {
        let Some(values) = colour(layout, depth, rgb) else {
            continue;
        };
        let mut set = |p: usize, x: u32, y: u32, v: u16| {
            let (x, y) = (x as usize, y as usize);
            match format {
                PixelFormat::Rgb8 | PixelFormat::Rgba8 => {
                    let n = if format == PixelFormat::Rgb8 { 3 } else { 4 };
                    if let Some(s) = frame.plane_mut(0).get_mut(y * strides[0] + x * n + p) {
                        *s = v as u8;
                    }
                }
                PixelFormat::I420 => {
                    if let Some(s) = frame.plane_mut(p).get_mut(y * strides[p] + x) {
                        *s = v as u8;
                    }
                }
                PixelFormat::I422_10 | PixelFormat::I420_10 => {
                    if let Some(s) = frame.plane_u16_mut(p).get_mut(y * strides[p] / 2 + x) {
                        *s = v;
                    }
                }
                PixelFormat::V210 => v210_set(frame.plane_mut(0), strides[0], p, x, y, v),
            }
        };
        outline(layout, (w, h), rect, &values, thickness(w), &mut set);
    }
    Ok(())
}

/// Write sample `x` of plane `p` (0 = Y', 1 = Cb, 2 = Cr; chroma indexed on
/// its half-width grid) in row `y` of a v210 frame: 6 pixels in four
/// little-endian words, three 10-bit samples each.
fn v210_set(bytes: &mut [u8], stride: usize, p: usize, x: usize, y: usize, v: u16) {
    let slots = med8k_media::frame::v210::group_slots(p);
    let (word, slot) = slots[x % slots.len()];
    let at = y * stride + (x / slots.len()) * 16 + 4 * word;
    if let Some(b) = bytes.get_mut(at..at + 4) {
        let mut w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        w = (w & !(0x3ff << (10 * slot))) | (u32::from(v & 0x3ff) << (10 * slot));
        b.copy_from_slice(&w.to_le_bytes());
    }
}

/// A rectangle `(x, y, width, height)` in pixels.
type Rect = (u32, u32, u32, u32);

/// Outline `rect` on a `size` image of `layout` whose plane samples `set(plane,
/// x, y, value)` writes: `thickness` pixels inside the rectangle, clipped to
/// the image, chroma lines on the subsampled grid. Touches only the outline.
fn outline(
    layout: Layout,
    size: (u32, u32),
    rect: Rect,
    values: &[u16],
    thickness: u32,
    set: &mut impl FnMut(usize, u32, u32, u16),
) {
    let (w, h) = size;
    let (x0, y0) = (rect.0.min(w), rect.1.min(h));
    let (x1, y1) = (
        rect.0.saturating_add(rect.2).min(w),
        rect.1.saturating_add(rect.3).min(h),
    );
    for (p, &value) in values.iter().enumerate() {
        let (sx, sy) = layout.subsampling(p);
        let (pw, ph) = layout.plane_dims(p, w, h);
        // The plane samples the rectangle touches, and the line widths there.
        let (px0, py0) = (x0 >> sx, y0 >> sy);
        let (px1, py1) = (x1.div_ceil(1 << sx).min(pw), y1.div_ceil(1 << sy).min(ph));
        let (tx, ty) = ((thickness >> sx).max(1), (thickness >> sy).max(1));
        for y in py0..py1 {
            if y < py0 + ty || y + ty >= py1 {
                (px0..px1).for_each(|x| set(p, x, y, value));
            } else {
                let left = px0..(px0 + tx).min(px1);
                let right = px1.saturating_sub(tx).max(left.end)..px1;
                left.chain(right).for_each(|x| set(p, x, y, value));
            }
        }
    }
}

/// `rgb` (8-bit full range) as the sample values of each plane of `layout`
/// at `bit_depth`; `None` for spectral bands.
fn colour(layout: Layout, bit_depth: u8, rgb: [u16; 3]) -> Option<Vec<u16>> {
    let max = f32::from(med8k_media::picture::max_sample(bit_depth));
    let [r, g, b] = rgb.map(|v| f32::from(v.min(255)) / 255.0);
    // BT.2020 non-constant luminance.
    let (kr, kb) = (0.2627, 0.0593);
    let y = kr * r + (1.0 - kr - kb) * g + kb * b;
    let (cb, cr) = ((b - y) / (2.0 * (1.0 - kb)), (r - y) / (2.0 * (1.0 - kr)));
    let scale = max / 255.0;
    let code = |v: f32| (v * scale).round().clamp(0.0, max) as u16;
    Some(match layout {
        Layout::Rgb => vec![code(r * 255.0), code(g * 255.0), code(b * 255.0)],
        Layout::Rgba => vec![
            code(r * 255.0),
            code(g * 255.0),
            code(b * 255.0),
            max as u16,
        ],
        Layout::Gray => vec![code(y * 255.0)],
        Layout::Yuv422 | Layout::Yuv420 => vec![
            code(16.0 + 219.0 * y),
            code(128.0 + 224.0 * cb),
            code(128.0 + 224.0 * cr),
        ],
        Layout::Bands(_) => return None,
    })
}

/// Outline `(x, y, width, height)` (in picture pixels) in `rgb` (8-bit),
/// `thickness` pixels inside the rectangle, clipped to the picture; in any
/// layout [`draw`] handles.
pub fn draw_rect(pic: &mut Picture, rect: Rect, rgb: [u16; 3], thickness: u32) {
    let (layout, size) = (pic.layout(), (pic.width(), pic.height()));
    let Some(values) = colour(layout, pic.bit_depth(), rgb) else {
        return;
    };
    let widths: Vec<u32> = (0..values.len())
        .map(|p| layout.plane_dims(p, size.0, size.1).0)
        .collect();
    let planes = pic.planes_mut();
    let mut set = |p: usize, x: u32, y: u32, v: u16| {
        if let Some(s) = planes
            .get_mut(p)
            .and_then(|pl| pl.get_mut((y * widths[p] + x) as usize))
        {
            *s = v;
        }
    };
    outline(layout, size, rect, &values, thickness, &mut set);
}

/// Write the [`preview`] of `frame` and `detection` to `path` (PNG).
pub fn write_png(
    path: &Path,
    frame: &VideoFrame,
    detection: &Detection,
    max_width: u32,
) -> Result<(), OverlayError> {
    write(path, &preview(frame, detection, max_width)?)
}

/// Write a preview picture to `path` (PNG).
pub fn write(path: &Path, pic: &Picture) -> Result<(), OverlayError> {
    imageio::write_picture(path, pic).map_err(|source| OverlayError::Write {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANOMALOUS: Alarms = Alarms {
        anomalous: true,
        quality: false,
    };
    use crate::model::BoundingBox;
    use med8k_media::frame::PixelFormat;

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
            quality: None,
            quality_alarm: false,
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
    fn marks_land_on_every_plane_of_a_ycbcr_picture() {
        let (w, h) = (64u32, 32u32);
        let mut pic = Picture::zeroed(Layout::Yuv422, w, h, 10).unwrap();
        for p in pic.planes_mut() {
            p.fill(512);
        }
        let rect = UnitRect {
            x: 0.25,
            y: 0.25,
            w: 0.5,
            h: 0.5,
        };
        draw(&mut pic, &[rect], Alarms::default());
        // Green in limited-range BT.2020 at 10 bits: Y' 16 + 219 * 0.678, Cb
        // 128 - 224 * 0.678 / 1.8814, Cr 128 - 224 * 0.678 / 1.4746, times 1023/255.
        let code = |v: f64| (v * 1023.0 / 255.0).round() as u16;
        let green = [
            code(16.0 + 219.0 * 0.678),
            code(128.0 - 224.0 * 0.678 / 1.8814),
            code(128.0 - 224.0 * 0.678 / 1.4746),
        ];
        fn sample(pic: &Picture, p: usize, x: u32, y: u32) -> u16 {
            let (pw, _) = pic.plane_dims(p);
            pic.planes()[p][(y * pw + x) as usize]
        }
        let at = |p, x, y| sample(&pic, p, x, y);
        // The box is (16,8)-(48,24) in luma, (8,8)-(24,24) in 4:2:2 chroma.
        assert_eq!(at(0, 16, 8), green[0]);
        assert_eq!(at(0, 47, 23), green[0]);
        assert_eq!(at(1, 8, 8), green[1]);
        assert_eq!(at(2, 23, 23), green[2]);
        assert_eq!(at(0, 30, 16), 512, "inside the box is untouched");
        assert_eq!(at(1, 15, 16), 512);
        assert_eq!(at(0, 15, 8), 512, "outside the box is untouched");
        // No border unless anomalous; with it, the corners turn red.
        assert_eq!(at(0, 0, 0), 512);
        draw(&mut pic, &[], ANOMALOUS);
        assert_eq!(sample(&pic, 0, 0, 0), code(16.0 + 219.0 * 0.2627));
        assert_eq!(sample(&pic, 2, 31, 31), code(128.0 + 224.0 * 0.5));
    }

    #[test]
    fn the_quality_alarm_is_an_amber_border_inside_the_red() {
        let (w, h) = (512u32, 64u32); // lines 2 px wide
        let rgb = |alarms| {
            let mut pic = Picture::zeroed(Layout::Rgb, w, h, 8).unwrap();
            draw(&mut pic, &[], alarms);
            move |x: u32, y: u32| -> [u16; 3] {
                let i = (y * w + x) as usize;
                [pic.planes()[0][i], pic.planes()[1][i], pic.planes()[2][i]]
            }
        };
        let quality = rgb(Alarms {
            anomalous: false,
            quality: true,
        });
        assert_eq!(quality(0, 0), QUALITY_RGB);
        assert_eq!(quality(w - 1, h - 1), QUALITY_RGB);
        assert_eq!(quality(2, 2), [0, 0, 0], "inside the border is untouched");
        let both = rgb(Alarms {
            anomalous: true,
            quality: true,
        });
        assert_eq!(both(0, 0), ANOMALY_RGB);
        assert_eq!(both(2, 2), QUALITY_RGB);
        assert_eq!(both(w - 3, h - 3), QUALITY_RGB);
        assert_eq!(both(4, 4), [0, 0, 0]);
        assert_ne!(QUALITY_RGB, ANOMALY_RGB);
    }

    #[test]
    fn spectral_bands_and_degenerate_rects_are_left_alone() {
        let mut bands = Picture::zeroed(Layout::Bands(7), 8, 8, 16).unwrap();
        let before = bands.clone();
        draw(
            &mut bands,
            &[UnitRect {
                x: 0.0,
                y: 0.0,
                w: 1.0,
                h: 1.0,
            }],
            ANOMALOUS,
        );
        assert_eq!(bands, before);
        let mut pic = Picture::zeroed(Layout::Rgb, 8, 8, 8).unwrap();
        let odd = UnitRect {
            x: 2.0,
            y: -1.0,
            w: f32::NAN,
            h: 0.0,
        };
        draw(&mut pic, &[odd], Alarms::default());
    }

    #[test]
    fn a_frame_is_marked_in_its_own_format_as_its_picture_would_be() {
        let rects = [
            UnitRect {
                x: 0.1,
                y: 0.2,
                w: 0.3,
                h: 0.5,
            },
            UnitRect {
                x: 0.55,
                y: 0.05,
                w: 0.4,
                h: 0.9,
            },
        ];
        for format in PixelFormat::ALL {
            // Odd offsets so that chroma lines fall between luma pixels.
            let mut frame = VideoFrame::zeroed(606, 301, format).unwrap();
            if format == PixelFormat::V210 {
                // Any 10-bit sample values: mid grey words.
                for w in frame.plane_mut(0).chunks_exact_mut(4) {
                    w.copy_from_slice(&(512u32 | 512 << 10 | 512 << 20).to_le_bytes());
                }
            } else {
                for p in 0..frame.layout().planes().len() {
                    for (i, b) in frame.plane_mut(p).iter_mut().enumerate() {
                        *b = (i % 3) as u8;
                    }
                }
            }
            let picture = |f: &VideoFrame| match f.format() {
                PixelFormat::V210 => {
                    Picture::from_frame(&med8k_media::frame::v210::unpack(f).unwrap())
                }
                _ => Picture::from_frame(f),
            };
            let mut want = picture(&frame).unwrap();
            draw(&mut want, &rects, ANOMALOUS);
            draw_frame(&mut frame, &rects, ANOMALOUS).unwrap();
            assert_eq!(picture(&frame).unwrap(), want, "{format}");
        }
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
