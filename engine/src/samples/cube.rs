//! Large 7-band specimen cubes grown from the small fixtures in `samples/fixtures/`.
//!
//! A fixture is a few hundred pixels of real content (see its `PROVENANCE.md`);
//! a sample cube is that content scaled to cover the requested size with
//! Catmull-Rom interpolation, given fine tissue texture that the fixture
//! cannot hold (two octaves of value noise, stronger in the absorbing blue
//! bands), and a little sensor noise. Every random value comes from a hash of
//! (seed, band, pixel), so the result does not depend on the thread count.

use ndarray::{Array3, Axis};
use rayon::prelude::*;

use crate::spectral::SpectralCube;

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
    use crate::spectral::default_bands;

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
    fn same_seed_same_cube_other_seed_other_cube() {
        let a = grow(&fixture(), 64, 48, 7);
        assert_eq!(a, grow(&fixture(), 64, 48, 7));
        assert_ne!(a, grow(&fixture(), 64, 48, 8));
    }
}
