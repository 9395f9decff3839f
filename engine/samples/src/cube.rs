//! Large 7-band specimen cubes grown from the small fixtures in `samples/fixtures/`.
//!
//! A fixture is a few hundred pixels of real content (see its `PROVENANCE.md`);
//! a sample cube is that content scaled to cover the requested size with
//! Catmull-Rom interpolation, given fine tissue texture that the fixture
//! cannot hold (two octaves of value noise, stronger in the absorbing blue
//! bands), and a little sensor noise. Every random value comes from a hash of
//! (seed, band, pixel), so the result does not depend on the thread count.
//!
//! [`add_anomalies`] then paints a few small spectral-anomaly patches: an
//! irregular blob whose pixels are multiplied by the transmission of a
//! foreign absorber (a Gaussian absorption band, 15–27 % deep at its peak,
//! 22–32 nm wide, centred somewhere in 450–610 nm), so the patch keeps the
//! tissue's brightness and texture and differs only in spectral shape — what
//! an RX detector is for.

use ndarray::{Array3, Axis};
use rayon::prelude::*;

use med8k_media::spectral::SpectralCube;

/// Grow `fixture` to `width`×`height`, deterministically from `seed`.
pub fn grow(fixture: &SpectralCube, width: usize, height: usize, seed: u64) -> SpectralCube {
    let (fw, fh) = (fixture.width() as f64, fixture.height() as f64);
    // Cover the output, keeping the aspect ratio, centred.
    let scale = (width as f64 / fw).max(height as f64 / fh);
    let (ox, oy) = (
        (fw * scale - width as f64) / 2.0,
        (fh * scale - height as f64) / 2.0,
    );
    let taps = |n: usize, offset: f64, limit: usize| -> Vec<([usize; 4], [f32; 4])> {
        (0..n)
            .map(|i| {
                let src = (i as f64 + 0.5 + offset) / scale - 0.5;
                let base = src.floor();
                let t = (src - base) as f32;
                let idx = std::array::from_fn(|k| {
                    (base as i64 - 1 + k as i64).clamp(0, limit as i64 - 1) as usize
                });
                (idx, catmull_rom(t))
            })
            .collect()
    };
    let xt = taps(width, ox, fixture.width());
    let yt = taps(height, oy, fixture.height());
    let bands = fixture.band_count();
    let src = fixture.data();
    let mut out = Array3::<u16>::zeros((bands, height, width));

    out.axis_iter_mut(Axis(1))
        .into_par_iter()
        .enumerate()
        .for_each(|(y, mut row)| {
            let (yi, yw) = yt[y];
            let mut texture = vec![0f32; width];
            for (x, t) in texture.iter_mut().enumerate() {
                *t = 0.65 * value_noise(seed, x as u32, y as u32, 3)
                    + 0.35 * value_noise(seed ^ 0x5bd1_e995, x as u32, y as u32, 11);
            }
            let mut line = vec![0f32; fixture.width()];
            for b in 0..bands {
                // Vertical pass for this band, then horizontal.
                for (fx, v) in line.iter_mut().enumerate() {
                    *v = (0..4).map(|k| yw[k] * f32::from(src[[b, yi[k], fx]])).sum();
                }
                // Short wavelengths are absorbed most by stained tissue and show its texture.
                let strength = 0.06 - 0.006 * b as f32;
                let mut dst = row.index_axis_mut(Axis(0), b);
                for (x, d) in dst.iter_mut().enumerate() {
                    let (xi, xw) = xt[x];
                    let v: f32 = (0..4).map(|k| xw[k] * line[xi[k]]).sum();
                    let noise = (hash(seed, b as u32, x as u32, y as u32) >> 40) as f32
                        / (1u64 << 24) as f32
                        - 0.5;
                    let v = v * (1.0 + strength * (texture[x] - 0.5) * 2.0) + noise * 24.0;
                    *d = v.round().clamp(0.0, 65535.0) as u16;
                }
            }
        });

    let mut cube = SpectralCube::new(fixture.bands().to_vec(), out)
        .unwrap_or_else(|_| unreachable!("band count and size come from a valid fixture"));
    cube.reflectance_scale = fixture.reflectance_scale;
    cube
}

/// Anomaly patches per cube: `MIN_PATCHES..=MAX_PATCHES`.
const MIN_PATCHES: u64 = 3;
const MAX_PATCHES: u64 = 5;
/// Mean code value a patch's centre and rim must reach: about 12 % reflectance.
const MIN_TISSUE: f32 = 7800.0;

/// Paint up to 3–5 spectral-anomaly patches (on tissue only) into `cube`, deterministically from
/// `seed`, and return their mask: `width × height` bytes, row-major, 255
/// where a patch covers at least half of the pixel, else 0.
///
/// Patch radii are 1.5–3.5 % of the cube's smaller side (about 3–8 px at
/// 256×144, 65–150 px at 8K), so they scale with the content.
pub fn add_anomalies(cube: &mut SpectralCube, seed: u64) -> Vec<u8> {
    let (w, h) = (cube.width(), cube.height());
    let centres: Vec<f32> = cube.bands().iter().map(|b| b.center_nm).collect();
    let unit = |k: u32| (hash(seed, 0xA70A, k, 0) >> 40) as f32 / (1u64 << 24) as f32;
    let count = MIN_PATCHES + hash(seed, 0xA70A, 0xFFFF, 1) % (MAX_PATCHES - MIN_PATCHES + 1);
    let side = w.min(h) as f32;
    let data = cube.data();
    let bands = data.dim().0;
    // Mean code value over the bands at a point (clamped into the cube).
    let level = |x: f32, y: f32| {
        let (x, y) = (
            (x.max(0.0) as usize).min(w - 1),
            (y.max(0.0) as usize).min(h - 1),
        );
        (0..bands).map(|b| f32::from(data[[b, y, x]])).sum::<f32>() / bands as f32
    };
    let patches: Vec<Patch> = (0..count as u32)
        .filter_map(|i| {
            let u = |j: u32| unit(i * 64 + j);
            let radius = (0.015 + 0.02 * u(2)) * side;
            // A centre on tissue: the centre and four points on the rim are
            // at least MIN_TISSUE bright (no patches in a fundus' black surround).
            let (cx, cy) = (0..24).find_map(|k| {
                let cx = (0.1 + 0.8 * u(16 + 2 * k)) * w as f32;
                let cy = (0.1 + 0.8 * u(17 + 2 * k)) * h as f32;
                let on_tissue = [(0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 1.0), (0.0, -1.0)]
                    .iter()
                    .all(|(dx, dy)| level(cx + dx * radius, cy + dy * radius) >= MIN_TISSUE);
                on_tissue.then_some((cx, cy))
            })?;
            let peak = 450.0 + 160.0 * u(4);
            let width = 22.0 + 10.0 * u(5);
            let depth = 0.15 + 0.12 * u(6);
            Some(Patch {
                cx,
                cy,
                radius,
                phase: [u(3) * std::f32::consts::TAU, u(7) * std::f32::consts::TAU],
                lobes: 3.0 + (u(8) * 3.0).floor(),
                absorb: centres
                    .iter()
                    .map(|&c| depth * (-0.5 * ((c - peak) / width).powi(2)).exp())
                    .collect(),
            })
        })
        .collect();
    let mut mask = vec![0u8; w * h];
    let data = cube.data_mut();
    for p in &patches {
        let reach = p.radius * 1.5 + 2.0;
        let x0 = (p.cx - reach).floor().max(0.0) as usize;
        let x1 = ((p.cx + reach).ceil().max(0.0) as usize).min(w);
        let y0 = (p.cy - reach).floor().max(0.0) as usize;
        let y1 = ((p.cy + reach).ceil().max(0.0) as usize).min(h);
        for y in y0..y1 {
            for x in x0..x1 {
                let alpha = p.coverage(x as f32 + 0.5, y as f32 + 0.5);
                if alpha <= 0.0 {
                    continue;
                }
                if alpha >= 0.5 {
                    mask[y * w + x] = 255;
                }
                for b in 0..bands {
                    let v = &mut data[[b, y, x]];
                    *v = (f32::from(*v) * (1.0 - alpha * p.absorb[b])).round() as u16;
                }
            }
        }
    }
    mask
}

/// One anomaly patch: an irregular blob and its absorption per band.
struct Patch {
    cx: f32,
    cy: f32,
    radius: f32,
    phase: [f32; 2],
    lobes: f32,
    /// Fraction of light absorbed in each band at full coverage.
    absorb: Vec<f32>,
}

impl Patch {
    /// How much of the patch covers the point: 1 inside, 0 outside, a soft
    /// edge a few pixels wide between.
    fn coverage(&self, x: f32, y: f32) -> f32 {
        let (dx, dy) = (x - self.cx, y - self.cy);
        let theta = dy.atan2(dx);
        let r = self.radius
            * (1.0
                + 0.22 * (self.lobes * theta + self.phase[0]).sin()
                + 0.12 * (2.0 * self.lobes * theta + self.phase[1]).sin());
        let edge = (0.2 * self.radius).max(1.0);
        ((r - (dx * dx + dy * dy).sqrt()) / edge + 0.5).clamp(0.0, 1.0)
    }
}

/// Write a `width × height` 8-bit grey mask as PNG.
pub(super) fn write_mask_png(
    path: &std::path::Path,
    width: usize,
    height: usize,
    mask: &[u8],
) -> std::io::Result<()> {
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut enc = png::Encoder::new(file, width as u32, height as u32);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(std::io::Error::other)?;
    writer
        .write_image_data(mask)
        .map_err(std::io::Error::other)?;
    writer.finish().map_err(std::io::Error::other)
}

fn catmull_rom(t: f32) -> [f32; 4] {
    let (t2, t3) = (t * t, t * t * t);
    [
        0.5 * (-t3 + 2.0 * t2 - t),
        0.5 * (3.0 * t3 - 5.0 * t2 + 2.0),
        0.5 * (-3.0 * t3 + 4.0 * t2 + t),
        0.5 * (t3 - t2),
    ]
}

/// SplitMix64 of the packed coordinates: a counter-based random number.
fn hash(seed: u64, a: u32, b: u32, c: u32) -> u64 {
    let mut z = seed
        ^ (u64::from(a) << 48)
        ^ (u64::from(b) << 24).rotate_left(7)
        ^ u64::from(c).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Smooth value noise in `0..1` with lattice cells `cell` pixels wide.
fn value_noise(seed: u64, x: u32, y: u32, cell: u32) -> f32 {
    let (cx, cy) = (x / cell, y / cell);
    let (fx, fy) = (
        (x % cell) as f32 / cell as f32,
        (y % cell) as f32 / cell as f32,
    );
    let corner =
        |i: u32, j: u32| (hash(seed, 0xFFFF, cx + i, cy + j) >> 40) as f32 / (1u64 << 24) as f32;
    let s = |t: f32| t * t * (3.0 - 2.0 * t);
    let (sx, sy) = (s(fx), s(fy));
    let top = corner(0, 0) + (corner(1, 0) - corner(0, 0)) * sx;
    let bottom = corner(0, 1) + (corner(1, 1) - corner(0, 1)) * sx;
    top + (bottom - top) * sy
}

#[cfg(test)]
mod tests {
    use super::*;
    use med8k_media::spectral::default_bands;

    fn fixture() -> SpectralCube {
        let data = Array3::from_shape_fn((7, 20, 30), |(b, y, x)| {
            (10_000 + b * 3000 + ((x / 10 + y / 10) % 2) * 20_000) as u16
        });
        let mut c = SpectralCube::new(default_bands(), data).unwrap();
        c.reflectance_scale = Some(60000.0);
        c
    }

    #[test]
    fn grows_to_size_keeping_bands_and_content() {
        let c = grow(&fixture(), 300, 200, 1);
        assert_eq!((c.band_count(), c.height(), c.width()), (7, 200, 300));
        assert_eq!(c.reflectance_scale, Some(60000.0));
        // Band means stay near the fixture's (texture and noise average out).
        for b in 0..7 {
            let mean = c
                .data()
                .index_axis(Axis(0), b)
                .iter()
                .map(|&v| f64::from(v))
                .sum::<f64>()
                / 60_000.0;
            let want = 10_000.0 + b as f64 * 3000.0 + 10_000.0;
            assert!(
                (mean - want).abs() < want * 0.05,
                "band {b}: {mean} vs {want}"
            );
        }
    }

    #[test]
    fn anomalies_change_spectral_shape_only_inside_the_mask() {
        let clean = grow(&fixture(), 400, 300, 3);
        let mut cube = clean.clone();
        let mask = add_anomalies(&mut cube, 3);
        assert_eq!(mask, add_anomalies(&mut clean.clone(), 3));
        let lesion = mask.iter().filter(|&&m| m == 255).count();
        // 3-5 patches of radius 4.5-10.5 px.
        assert!((150..=2500).contains(&lesion), "{lesion} lesion pixels");
        let (mut max_ratio_dev, mut outside_changed) = (0f32, 0);
        for y in 0..300 {
            for x in 0..400 {
                let ratio: Vec<f32> = (0..7)
                    .map(|b| f32::from(cube.data()[[b, y, x]]) / f32::from(clean.data()[[b, y, x]]))
                    .collect();
                if mask[y * 400 + x] == 255 {
                    let dip = ratio.iter().fold(1f32, |a, &r| a.min(r));
                    max_ratio_dev = max_ratio_dev.max(1.0 - dip);
                    // Absorption, never gain, and at most 27 % in any band.
                    assert!(ratio.iter().all(|&r| (0.72..=1.0001).contains(&r)));
                } else if ratio.iter().any(|&r| r != 1.0) {
                    outside_changed += 1;
                }
            }
        }
        assert!(max_ratio_dev > 0.05, "{max_ratio_dev}");
        // Only the soft edges outside the mask are touched.
        assert!(outside_changed < lesion, "{outside_changed}");
    }

    #[test]
    fn same_seed_same_cube_other_seed_other_cube() {
        let a = grow(&fixture(), 64, 48, 7);
        assert_eq!(a, grow(&fixture(), 64, 48, 7));
        assert_ne!(a, grow(&fixture(), 64, 48, 8));
    }
}
