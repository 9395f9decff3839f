//! Model inputs made from real image content: crops of the fixtures in
//! `samples/fixtures/` (an IHC-stained colon, a fundus photograph, an H&E
//! region; see `PROVENANCE.md`), as a camera would deliver them.
//!
//! Each fixture is split by rows: the top 60 % is the [`Region::Fit`] region,
//! the rest the [`Region::Eval`] region, so a detector fitted on crops of one
//! never sees the pixels it is evaluated on. The fit rows are split again in
//! two halves ([`Region::DevFit`], [`Region::DevCheck`]) for design choices:
//! a model fitted on the first half, checked on the second, meets tissue it
//! never saw without anyone looking at the evaluation rows. A crop is a random window
//! (0.6-1.0 times the model's size in fixture pixels, so magnified up to
//! 1.7x, possibly mirrored) resampled bilinearly to the model's size. The
//! seven bands become R'G'B' by a plain band mix (R: 610 and 650 nm, G: 530
//! and 570 nm, B: 450 and 490 nm, reflectance with the sRGB transfer), then
//! the BT.2020 10-bit Y'CbCr tensor the engine makes from a frame.

use med8k_media::spectral::envi;

use crate::anomalies::rgb_to_tensor;
use crate::{FIXTURES, SampleError};

/// Which rows of a fixture a crop may come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Region {
    /// The top 60 % of rows: for fitting.
    Fit,
    /// The bottom 40 %: for evaluation only.
    Eval,
    /// The top 30 % (the first half of the fit rows): a development fit.
    DevFit,
    /// Rows 30-60 % (the second half of the fit rows): checks a development fit.
    DevCheck,
}

impl Region {
    /// The rows it covers in a fixture of `height` rows, `[from, to)`.
    pub fn rows(self, height: usize) -> (usize, usize) {
        let fit = height * 3 / 5;
        match self {
            Region::Fit => (0, fit),
            Region::Eval => (fit, height),
            Region::DevFit => (0, fit / 2),
            Region::DevCheck => (fit / 2, fit),
        }
    }
}

/// One crop.
#[derive(Debug, Clone)]
pub struct RealFrame {
    /// The fixture it comes from.
    pub fixture: &'static str,
    /// `[3, height, width]` Y'CbCr, `code / 1023`.
    pub tensor: Vec<f32>,
}

fn srgb_encode(v: f32) -> f32 {
    let v = v.clamp(0.0, 1.0);
    if v <= 0.003_130_8 {
        12.92 * v
    } else {
        1.055 * v.powf(1.0 / 2.4) - 0.055
    }
}

/// `count` crops of every fixture from `region`, `width × height`, picked
/// from `seed` (the same arguments give the same crops).
pub fn crops(
    region: Region,
    count: usize,
    width: usize,
    height: usize,
    seed: u64,
) -> Result<Vec<RealFrame>, SampleError> {
    let mut out = Vec::new();
    for (f, fixture) in FIXTURES.iter().enumerate() {
        let cube = envi::from_bytes(fixture.name, fixture.header, fixture.raw)?;
        let (fw, fh) = (cube.width(), cube.height());
        let scale = cube
            .reflectance_scale
            .filter(|s| *s > 0.0)
            .unwrap_or(60000.0);
        let data = cube.data();
        let centres: Vec<f32> = cube.bands().iter().map(|b| b.center_nm).collect();
        let near = |nm: f32| {
            centres
                .iter()
                .enumerate()
                .min_by(|a, b| (a.1 - nm).abs().total_cmp(&(b.1 - nm).abs()))
                .map_or(0, |(i, _)| i)
        };
        let mix = [
            [near(610.0), near(650.0)],
            [near(530.0), near(570.0)],
            [near(450.0), near(490.0)],
        ];
        // R'G'B' of the whole fixture.
        let mut rgb = vec![0f32; 3 * fw * fh];
        for y in 0..fh {
            for x in 0..fw {
                for (k, pair) in mix.iter().enumerate() {
                    let r = pair
                        .iter()
                        .map(|&b| f32::from(data[[b, y, x]]))
                        .sum::<f32>()
                        / (2.0 * scale);
                    rgb[k * fw * fh + y * fw + x] = srgb_encode(r);
                }
            }
        }
        let (r0, r1) = region.rows(fh);
        let mut rng =
            seed ^ (f as u64 + 1).wrapping_mul(0x2545_F491_4F6C_DD1D) ^ (region as u64) << 7;
        let mut uniform = || {
            rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = rng;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 40) as f32 / (1u64 << 24) as f32
        };
        for _ in 0..count {
            // Window size in fixture pixels, fitting inside the region.
            let avail_h = (r1 - r0) as f32;
            let s = (0.6 + 0.4 * uniform())
                .min(avail_h / height as f32)
                .min(fw as f32 / width as f32);
            let (cw, ch) = (s * width as f32, s * height as f32);
            let x0 = uniform() * (fw as f32 - cw);
            let y0 = r0 as f32 + uniform() * (avail_h - ch);
            let mirror = uniform() < 0.5;
            let mut crop = vec![0f32; 3 * width * height];
            for y in 0..height {
                let sy = (y0 + (y as f32 + 0.5) * s - 0.5).clamp(0.0, (fh - 1) as f32);
                for x in 0..width {
                    let xx = if mirror { width - 1 - x } else { x };
                    let sx = (x0 + (xx as f32 + 0.5) * s - 0.5).clamp(0.0, (fw - 1) as f32);
                    let (ix, iy) = (sx.floor() as usize, sy.floor() as usize);
                    let (jx, jy) = ((ix + 1).min(fw - 1), (iy + 1).min(fh - 1));
                    let (ax, ay) = (sx - ix as f32, sy - iy as f32);
                    for k in 0..3 {
                        let p = &rgb[k * fw * fh..(k + 1) * fw * fh];
                        let top = p[iy * fw + ix] * (1.0 - ax) + p[iy * fw + jx] * ax;
                        let bottom = p[jy * fw + ix] * (1.0 - ax) + p[jy * fw + jx] * ax;
                        crop[k * width * height + y * width + x] = top * (1.0 - ay) + bottom * ay;
                    }
                }
            }
            out.push(RealFrame {
                fixture: fixture.name,
                tensor: rgb_to_tensor(&crop),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_are_real_content_from_their_region_only() {
        let fit = crops(Region::Fit, 2, 64, 36, 1).unwrap();
        let eval = crops(Region::Eval, 2, 64, 36, 1).unwrap();
        assert_eq!((fit.len(), eval.len()), (6, 6));
        // The development halves partition the fit rows; evaluation rows stay apart.
        assert_eq!(Region::Fit.rows(384), (0, 230));
        assert_eq!(Region::Eval.rows(384), (230, 384));
        assert_eq!(Region::DevFit.rows(384), (0, 115));
        assert_eq!(Region::DevCheck.rows(384), (115, 230));
        let dev = crops(Region::DevCheck, 2, 64, 36, 1).unwrap();
        assert!(dev.iter().zip(&fit).all(|(d, f)| d.tensor != f.tensor));
        assert_eq!(fit[0].tensor.len(), 3 * 64 * 36);
        assert_eq!(
            crops(Region::Fit, 2, 64, 36, 1).unwrap()[3].tensor,
            fit[3].tensor
        );
        for (a, b) in fit.iter().zip(&eval) {
            assert_eq!(a.fixture, b.fixture);
            assert_ne!(a.tensor, b.tensor);
            // Not flat: real content has texture.
            let y = &a.tensor[..64 * 36];
            let mean = y.iter().sum::<f32>() / y.len() as f32;
            let sd = (y.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / y.len() as f32).sqrt();
            assert!(sd > 0.01, "{}: sd {sd}", a.fixture);
        }
    }
}
