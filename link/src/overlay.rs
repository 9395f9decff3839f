//! Drawing cut-out instructions over a rendering of the specimen.

use med8k_colour::{RgbData, RgbImage};

use crate::annotations::{Mark, MarkShape};

/// Cut lines.
const CUT: [u8; 3] = [255, 32, 32];
/// Regions.
const REGION: [u8; 3] = [0, 200, 255];

/// A copy of `image` (8 bits; a 16-bit image is reduced) with each mark's
/// outline drawn: cut lines red, regions cyan, lines about 1/800 of the
/// image's width thick (at least 2 pixels).
pub fn draw(image: &RgbImage, marks: &[Mark]) -> RgbImage {
    let (w, h) = (image.width, image.height);
    let mut px: Vec<u8> = match &image.data {
        RgbData::Eight(d) => d.clone(),
        RgbData::Sixteen(d) => d.iter().map(|&v| (v >> 8) as u8).collect(),
    };
    let half = (w / 1600).max(1) as i64;
    for m in marks {
        let colour = if m.shape == MarkShape::Polyline {
            CUT
        } else {
            REGION
        };
        let closed = m.shape != MarkShape::Polyline;
        let n = m.points.len();
        let segments = if closed { n } else { n.saturating_sub(1) };
        for i in 0..segments {
            let a = m.points[i];
            let b = m.points[(i + 1) % n];
            line(&mut px, w, h, a, b, half, colour);
        }
    }
    RgbImage {
        width: w,
        height: h,
        space: image.space,
        data: RgbData::Eight(px),
    }
}

/// A thick line: squares of side `2·half+1` stamped along the segment.
fn line(px: &mut [u8], w: usize, h: usize, a: [f32; 2], b: [f32; 2], half: i64, colour: [u8; 3]) {
    let (dx, dy) = (b[0] - a[0], b[1] - a[1]);
    let steps = dx.abs().max(dy.abs()).ceil().max(1.0) as i64;
    for s in 0..=steps {
        let t = s as f32 / steps as f32;
        let cx = (a[0] + dx * t).round() as i64;
        let cy = (a[1] + dy * t).round() as i64;
        for y in (cy - half)..=(cy + half) {
            if y < 0 || y >= h as i64 {
                continue;
            }
            for x in (cx - half)..=(cx + half) {
                if x < 0 || x >= w as i64 {
                    continue;
                }
                let i = (y as usize * w + x as usize) * 3;
                px[i..i + 3].copy_from_slice(&colour);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use med8k_colour::OutputSpace;

    #[test]
    fn a_cut_line_is_drawn_where_it_was_put() {
        let img = RgbImage {
            width: 40,
            height: 20,
            space: OutputSpace::Srgb,
            data: RgbData::Eight(vec![0; 40 * 20 * 3]),
        };
        let marks = [Mark {
            id: 1,
            shape: MarkShape::Polyline,
            points: vec![[5.0, 10.0], [35.0, 10.0]],
            label: "cut 1".into(),
            text: String::new(),
        }];
        let out = draw(&img, &marks);
        assert_eq!(out.pixel8(20, 10), Some(CUT));
        assert_eq!(out.pixel8(20, 2), Some([0, 0, 0]));
        assert_eq!(out.pixel8(2, 10), Some([0, 0, 0]));
    }
}
