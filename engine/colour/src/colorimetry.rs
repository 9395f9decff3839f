//! Reflectance × illuminant × observer → CIE XYZ, the ASTM E308 way.
//!
//! # Choice of method
//! ASTM E308 defines tristimulus values by summation of reflectance ×
//! illuminant × colour-matching function over 360–780 nm. How coarser data
//! are summed depends on the measurement interval:
//! - **1 and 5 nm**: summation with the 1 nm CIE tables taken at the
//!   measurement wavelengths (for 5 nm, the "omission" of the intermediate
//!   1 nm values: ASTM E308 §7.3, and colour-science's
//!   `sd_to_XYZ(method="ASTM E308")` default `mi_5nm_omission_method=True`);
//! - **10 and 20 nm**: tables of tristimulus weighting factors, computed by the
//!   ASTM E2022 method (Lagrange interpolation of the spectrum between
//!   measurement wavelengths, folded into the weights): [`e2022_weights`].
//!
//! This crate's spectra live on 380–780 nm at 5 nm ([`crate::spectrum`]), so
//! [`Colorimetry`] uses the 5 nm summation. The practice range starts at
//! 360 nm; where the data start later, E308 adds the weights of the missing
//! wavelengths to the first measured one (equivalently, holds the first value
//! constant), so 360–375 nm are folded onto 380 nm. The illuminants are the
//! CIE 5 nm tables (the 1 nm tables of `data/` reproduce them exactly at every
//! 5th nm). The cross-check test compares the result with colour-science.
//!
//! XYZ is scaled so that the perfect reflecting diffuser has Y = 1 (ASTM uses
//! 100).

use std::fmt;
use std::str::FromStr;

use crate::spectrum::{GRID_LEN, GRID_START_NM, GRID_STEP_NM};
use crate::tables::{self, ONE_NM_LEN, ONE_NM_START};

/// A CIE standard colorimetric observer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
pub enum Observer {
    /// CIE 1931 2° standard observer (the default; sRGB and Display P3 assume it).
    #[default]
    Cie1931TwoDegree,
    /// CIE 1964 10° supplementary standard observer.
    Cie1964TenDegree,
}

impl Observer {
    fn first_column(self) -> usize {
        match self {
            Observer::Cie1931TwoDegree => 0,
            Observer::Cie1964TenDegree => 3,
        }
    }

    /// The colour matching functions x̄, ȳ, z̄ at 1 nm, 360–780 nm.
    pub fn cmfs_1nm(self) -> Vec<[f64; 3]> {
        let t = tables::cmfs();
        let c = self.first_column();
        (0..ONE_NM_LEN)
            .map(|i| [t.columns[c][i], t.columns[c + 1][i], t.columns[c + 2][i]])
            .collect()
    }
}

impl fmt::Display for Observer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Observer::Cie1931TwoDegree => "CIE 1931 2°",
            Observer::Cie1964TenDegree => "CIE 1964 10°",
        })
    }
}

/// An illuminant: for viewing (rendering) and for capture (camera simulation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[non_exhaustive]
pub enum Illuminant {
    /// CIE standard illuminant D65 (average daylight; the sRGB/P3 white).
    #[default]
    D65,
    /// CIE illuminant D50 (graphic arts, the ICC PCS white).
    D50,
    /// CIE standard illuminant A (incandescent tungsten, 2856 K).
    A,
    /// CIE FL11, a narrow three-band fluorescent lamp.
    Fl11,
    /// Equal-energy illuminant E (a flat spectrum).
    E,
}

impl Illuminant {
    /// The illuminants the evaluation reports by default.
    pub const EVAL_DEFAULT: [Illuminant; 3] = [Illuminant::D65, Illuminant::D50, Illuminant::A];

    /// The relative spectral power at 1 nm, 360–780 nm.
    pub fn spd_1nm(self) -> Vec<f64> {
        let col = match self {
            Illuminant::D65 => 0,
            Illuminant::D50 => 1,
            Illuminant::A => 2,
            Illuminant::Fl11 => 3,
            Illuminant::E => return vec![100.0; ONE_NM_LEN],
        };
        tables::illuminants().columns[col].clone()
    }

    /// The relative spectral power on the 5 nm working grid.
    pub fn spd(self) -> [f64; GRID_LEN] {
        let s = self.spd_1nm();
        let offset = (GRID_START_NM - ONE_NM_START) as usize;
        std::array::from_fn(|i| s[offset + i * GRID_STEP_NM as usize])
    }

    /// The short name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Illuminant::D65 => "D65",
            Illuminant::D50 => "D50",
            Illuminant::A => "A",
            Illuminant::Fl11 => "FL11",
            Illuminant::E => "E",
        }
    }
}

impl fmt::Display for Illuminant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An illuminant name that is not one of D65, D50, A, FL11, E.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown illuminant {0:?} (known: D65, D50, A, FL11, E)")]
pub struct UnknownIlluminant(pub String);

impl FromStr for Illuminant {
    type Err = UnknownIlluminant;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_uppercase().as_str() {
            "D65" => Ok(Illuminant::D65),
            "D50" => Ok(Illuminant::D50),
            "A" => Ok(Illuminant::A),
            "FL11" | "F11" => Ok(Illuminant::Fl11),
            "E" => Ok(Illuminant::E),
            _ => Err(UnknownIlluminant(s.to_string())),
        }
    }
}

/// Lagrange coefficients of the `nodes` points 0, 1, …, nodes−1 at `r`.
fn lagrange(r: f64, nodes: usize) -> Vec<f64> {
    (0..nodes)
        .map(|j| {
            (0..nodes)
                .filter(|&i| i != j)
                .map(|i| (r - i as f64) / (j as f64 - i as f64))
                .product()
        })
        .collect()
}

/// ASTM E2022 tristimulus weighting factors for `interval` nm over
/// 360–780 nm, from 1 nm illuminant and CMF data, not yet normalised.
/// Row `j` is the weight of wavelength 360 + j·interval. Written with the
/// indices of ASTM E2022 (and colour-science) so the two can be compared.
#[allow(clippy::needless_range_loop)]
fn e2022_raw(s: &[f64], cmf: &[[f64; 3]], interval: usize) -> Vec<[f64; 3]> {
    let w_c = s.len();
    debug_assert!(interval >= 1 && (w_c - 1).is_multiple_of(interval));
    let mut w: Vec<[f64; 3]> = (0..w_c)
        .step_by(interval)
        .map(|k| std::array::from_fn(|c| s[k] * cmf[k][c]))
        .collect();
    if interval == 1 {
        return w;
    }
    let r_c = interval - 1; // 1 nm points inside each interval
    let step = 1.0 / interval as f64;
    // Boundary intervals: cubic through nodes 0,1,2 at r in (0,1).
    let c_bound: Vec<Vec<f64>> = (1..interval)
        .map(|h| lagrange(h as f64 * step, 3))
        .collect();
    // Inner intervals: quartic through nodes 0..3 at r in (1,2).
    let c_inner: Vec<Vec<f64>> = (1..interval)
        .map(|h| lagrange(1.0 + h as f64 * step, 4))
        .collect();
    let i_c = w.len();
    let last = i_c - 1;
    let w_lif = w_c - 1 - r_c; // first 1 nm point inside the last interval
    let sy = |k: usize, c: usize| s[k] * cmf[k][c];
    for c in 0..3 {
        for h in 0..r_c {
            // First interval: points 1..interval-1 weight nodes 0, 1, 2.
            for g in 0..3 {
                w[g][c] += c_bound[h][g] * sy(h + 1, c);
            }
            // Last interval, mirrored: nodes last, last-1, last-2.
            for g in 0..3 {
                w[last - g][c] += c_bound[r_c - h - 1][g] * sy(h + w_lif, c);
            }
        }
        // Inner interval between nodes h+1 and h+2 weights nodes h..h+3.
        for h in 0..i_c - 3 {
            for g in 0..r_c {
                let k = interval * (h + 1) + 1 + g;
                for n in 0..4 {
                    w[h + n][c] += c_inner[g][n] * sy(k, c);
                }
            }
        }
    }
    w
}

/// ASTM E2022 tristimulus weighting factors for measurements every
/// `interval_nm` nm (10 or 20; 1 and 5 also work) from 360 to 780 nm, scaled
/// so the Y weights sum to 1. Row `j` weighs wavelength 360 + j·interval nm.
/// `None` unless `interval_nm` divides 420.
pub fn e2022_weights(
    illuminant: Illuminant,
    observer: Observer,
    interval_nm: usize,
) -> Option<Vec<[f64; 3]>> {
    if interval_nm == 0 || !(ONE_NM_LEN - 1).is_multiple_of(interval_nm) {
        return None;
    }
    let mut w = e2022_raw(&illuminant.spd_1nm(), &observer.cmfs_1nm(), interval_nm);
    let k = 1.0 / w.iter().map(|r| r[1]).sum::<f64>();
    for r in w.iter_mut() {
        for v in r.iter_mut() {
            *v *= k;
        }
    }
    Some(w)
}

/// Weights and white for one illuminant and observer on the working grid.
#[derive(Debug, Clone, PartialEq)]
pub struct Colorimetry {
    illuminant: Illuminant,
    observer: Observer,
    weights: [[f64; 3]; GRID_LEN],
    white: [f64; 3],
}

impl Colorimetry {
    /// ASTM E308 weights for the 5 nm working grid (see the module docs).
    pub fn new(illuminant: Illuminant, observer: Observer) -> Self {
        let s = illuminant.spd_1nm();
        let cmf = observer.cmfs_1nm();
        let step = GRID_STEP_NM as usize;
        let skip = ((GRID_START_NM - ONE_NM_START) / GRID_STEP_NM) as usize;
        let mut weights = [[0.0; 3]; GRID_LEN];
        for (j, k) in (0..ONE_NM_LEN).step_by(step).enumerate() {
            // 360..375 nm fold onto the first grid wavelength, 380 nm.
            let target = j.saturating_sub(skip).min(GRID_LEN - 1);
            for c in 0..3 {
                weights[target][c] += s[k] * cmf[k][c];
            }
        }
        let norm = 1.0 / weights.iter().map(|w| w[1]).sum::<f64>();
        for w in weights.iter_mut() {
            for v in w.iter_mut() {
                *v *= norm;
            }
        }
        let white = std::array::from_fn(|c| weights.iter().map(|w| w[c]).sum());
        Colorimetry {
            illuminant,
            observer,
            weights,
            white,
        }
    }

    /// The illuminant.
    pub fn illuminant(&self) -> Illuminant {
        self.illuminant
    }

    /// The observer.
    pub fn observer(&self) -> Observer {
        self.observer
    }

    /// Tristimulus weights per grid wavelength (Σ of the Y column is 1).
    pub fn weights(&self) -> &[[f64; 3]; GRID_LEN] {
        &self.weights
    }

    /// XYZ of the perfect reflecting diffuser (Y = 1): the reference white.
    pub fn white(&self) -> [f64; 3] {
        self.white
    }

    /// XYZ of a reflectance on the working grid.
    pub fn xyz(&self, reflectance: &[f64; GRID_LEN]) -> [f64; 3] {
        let mut out = [0.0; 3];
        for (w, r) in self.weights.iter().zip(reflectance) {
            for c in 0..3 {
                out[c] += w[c] * r;
            }
        }
        out
    }
}

/// XYZ of a reflectance sampled at 1 nm over 360–780 nm by plain summation
/// (the ASTM E308 definition). Used to check the 5 nm weights.
pub fn xyz_1nm(reflectance_1nm: &[f64], illuminant: Illuminant, observer: Observer) -> [f64; 3] {
    let s = illuminant.spd_1nm();
    let cmf = observer.cmfs_1nm();
    let k = 1.0 / s.iter().zip(&cmf).map(|(s, c)| s * c[1]).sum::<f64>();
    std::array::from_fn(|c| {
        k * reflectance_1nm
            .iter()
            .zip(s.iter().zip(&cmf))
            .map(|(r, (s, m))| r * s * m[c])
            .sum::<f64>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectrum::grid_nm;

    #[test]
    fn white_points_match_the_cie_values() {
        // CIE 15:2004 Table T.3 (2°): D65 (95.04, 100, 108.88), D50 (96.42, 100, 82.51),
        // A (109.85, 100, 35.58); 10°: D65 (94.81, 100, 107.32).
        for (ill, obs, want) in [
            (
                Illuminant::D65,
                Observer::Cie1931TwoDegree,
                [0.9504, 1.0, 1.0888],
            ),
            (
                Illuminant::D50,
                Observer::Cie1931TwoDegree,
                [0.9642, 1.0, 0.8251],
            ),
            (
                Illuminant::A,
                Observer::Cie1931TwoDegree,
                [1.0985, 1.0, 0.3558],
            ),
            (
                Illuminant::D65,
                Observer::Cie1964TenDegree,
                [0.9481, 1.0, 1.0732],
            ),
        ] {
            let w = Colorimetry::new(ill, obs).white();
            for c in 0..3 {
                assert!(
                    (w[c] - want[c]).abs() < 6e-4,
                    "{ill} {obs}: {w:?} vs {want:?}"
                );
            }
        }
    }

    #[test]
    fn five_nm_weights_agree_with_one_nm_summation_on_smooth_spectra() {
        let refl_1nm: Vec<f64> = (0..ONE_NM_LEN)
            .map(|i| {
                let wl = ONE_NM_START + i as f64;
                0.4 + 0.3 * ((wl - 380.0) / 60.0).sin()
            })
            .collect();
        let on_grid: [f64; GRID_LEN] =
            std::array::from_fn(|i| refl_1nm[(grid_nm(i) - ONE_NM_START) as usize]);
        for ill in [Illuminant::D65, Illuminant::A, Illuminant::E] {
            let a = Colorimetry::new(ill, Observer::Cie1931TwoDegree).xyz(&on_grid);
            let b = xyz_1nm(&refl_1nm, ill, Observer::Cie1931TwoDegree);
            for c in 0..3 {
                assert!((a[c] - b[c]).abs() < 2e-4, "{ill}: {a:?} vs {b:?}");
            }
        }
    }

    #[test]
    fn e2022_tables_integrate_smooth_spectra_like_1nm_summation() {
        let f = |wl: f64| 0.4 + 0.3 * ((wl - 380.0) / 60.0).sin();
        let refl_1nm: Vec<f64> = (0..ONE_NM_LEN)
            .map(|i| f(ONE_NM_START + i as f64))
            .collect();
        let exact = xyz_1nm(&refl_1nm, Illuminant::D65, Observer::Cie1931TwoDegree);
        for interval in [1, 5, 10, 20] {
            let w = e2022_weights(Illuminant::D65, Observer::Cie1931TwoDegree, interval).unwrap();
            let xyz: Vec<f64> = (0..3)
                .map(|c| {
                    w.iter()
                        .enumerate()
                        .map(|(j, wj)| wj[c] * f(ONE_NM_START + (j * interval) as f64))
                        .sum()
                })
                .collect();
            for c in 0..3 {
                assert!(
                    (xyz[c] - exact[c]).abs() < 2e-4,
                    "{interval} nm: {xyz:?} vs {exact:?}"
                );
            }
        }
        assert!(e2022_weights(Illuminant::A, Observer::Cie1931TwoDegree, 8).is_none());
    }

    #[test]
    fn lagrange_coefficients_sum_to_one() {
        for r in [0.2, 0.4, 1.6] {
            let s: f64 = lagrange(r, 4).iter().sum();
            assert!((s - 1.0).abs() < 1e-12);
        }
    }

    #[test]
    fn names_parse() {
        assert_eq!("d50".parse::<Illuminant>(), Ok(Illuminant::D50));
        assert!("D55".parse::<Illuminant>().is_err());
    }
}
