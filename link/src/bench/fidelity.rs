//! Colour fidelity of a decoded Y'CbCr picture against its original: CIE
//! ΔE2000 ([`med8k_colour::delta_e_2000`]) per sampled pixel, the pictures
//! read as a BT.2020 display would show them (limited-range Y'CbCr with
//! the BT.2020 matrix, the BT.1886 2.4 power to linear light, BT.2020
//! primaries and D65 white to CIE XYZ, CIELAB against that white).

use med8k_colour::rgb::{D65_XY, rgb_to_xyz_matrix, xy_to_xyz};
use med8k_colour::{delta_e_2000, xyz_to_lab};
use med8k_media::picture::{Layout, Picture};

/// BT.2020 primaries (ITU-R BT.2020, Table 3).
const BT2020_PRIMARIES: [[f64; 2]; 3] = [[0.708, 0.292], [0.170, 0.797], [0.131, 0.046]];
/// BT.2020 luma coefficients of red and blue.
const KR: f64 = 0.2627;
const KB: f64 = 0.0593;
/// Pixels sampled at most per picture (an even grid over it).
const MAX_SAMPLES: usize = 1 << 16;

/// ΔE2000 over a grid of pixels: (mean, 95th percentile). `None` when the
/// pictures are not Y'CbCr of the same size and layout.
pub fn delta_e(original: &Picture, decoded: &Picture) -> Option<(f64, f64)> {
    if !matches!(original.layout(), Layout::Yuv422 | Layout::Yuv420)
        || (original.layout(), original.width(), original.height())
            != (decoded.layout(), decoded.width(), decoded.height())
    {
        return None;
    }
    let (w, h) = (original.width() as usize, original.height() as usize);
    let step = ((w * h) as f64 / MAX_SAMPLES as f64).sqrt().ceil().max(1.0) as usize;
    let to_xyz = rgb_to_xyz_matrix(BT2020_PRIMARIES, D65_XY);
    let white = xy_to_xyz(D65_XY);
    let lab = |pic: &Picture, x: usize, y: usize| {
        let rgb = rgb_at(pic, x, y);
        let lin = rgb.map(|v| v.clamp(0.0, 1.0).powf(2.4));
        let xyz: [f64; 3] =
            std::array::from_fn(|r| (0..3).map(|c| to_xyz[r][c] * lin[c]).sum::<f64>());
        xyz_to_lab(xyz, white)
    };
    let mut all = Vec::new();
    for y in (0..h).step_by(step) {
        for x in (0..w).step_by(step) {
            all.push(delta_e_2000(lab(original, x, y), lab(decoded, x, y)));
        }
    }
    if all.is_empty() {
        return None;
    }
    let mean = all.iter().sum::<f64>() / all.len() as f64;
    all.sort_by(f64::total_cmp);
    let p95 = all[((all.len() - 1) as f64 * 0.95).round() as usize];
    Some((mean, p95))
}

/// R'G'B' in [0, 1] (unclipped) of the pixel at (x, y); chroma from the
/// co-sited sample.
fn rgb_at(pic: &Picture, x: usize, y: usize) -> [f64; 3] {
    let depth = i32::from(pic.bit_depth());
    let scale = f64::from(1u32 << (depth - 8));
    let planes = pic.planes();
    let sample = |p: usize| {
        let (sx, sy) = pic.layout().subsampling(p);
        let (pw, _) = pic.plane_dims(p);
        f64::from(planes[p][(y >> sy) * pw as usize + (x >> sx)])
    };
    let luma = (sample(0) / scale - 16.0) / 219.0;
    let cb = (sample(1) / scale - 128.0) / 224.0;
    let cr = (sample(2) / scale - 128.0) / 224.0;
    let r = luma + 2.0 * (1.0 - KR) * cr;
    let b = luma + 2.0 * (1.0 - KB) * cb;
    let g = (luma - KR * r - KB * b) / (1.0 - KR - KB);
    [r, g, b]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(layout: Layout, fill: [u16; 3]) -> Picture {
        let (w, h) = (64, 32);
        let planes = (0..3)
            .map(|p| {
                let (pw, ph) = layout.plane_dims(p, w, h);
                vec![fill[p]; (pw * ph) as usize]
            })
            .collect();
        Picture::new(layout, w, h, 10, planes).expect("a valid picture")
    }

    #[test]
    fn identical_pictures_differ_by_nothing_and_a_shift_is_seen() {
        let grey = picture(Layout::Yuv422, [502, 512, 512]);
        assert_eq!(delta_e(&grey, &grey), Some((0.0, 0.0)));
        // Mid grey a few codes redder: a small, visible difference.
        let red = picture(Layout::Yuv422, [502, 512, 540]);
        let (mean, p95) = delta_e(&grey, &red).expect("same layout");
        assert!(mean > 1.0 && mean < 20.0, "{mean}");
        assert!((p95 - mean).abs() < 1e-9, "a flat picture: {p95} {mean}");
        // White and black are far apart.
        let white = picture(Layout::Yuv422, [940, 512, 512]);
        let black = picture(Layout::Yuv422, [64, 512, 512]);
        assert!(delta_e(&white, &black).expect("same layout").0 > 90.0);
        // Not comparable: another layout.
        assert_eq!(
            delta_e(&grey, &picture(Layout::Yuv420, [502, 512, 512])),
            None
        );
    }
}
