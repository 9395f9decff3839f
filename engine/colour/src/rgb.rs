//! Output RGB spaces, their transfer function, and chromatic adaptation.
//!
//! The RGB↔XYZ matrices are derived here from each space's primaries and white
//! chromaticities (SMPTE RP 177), not copied as rounded constants.
//!
//! Chromatic adaptation uses the **Bradford** transform (the linearised form
//! used by ICC.1 Annex E): a von Kries scaling in the Bradford cone space.

use std::fmt;
use std::str::FromStr;

use crate::linalg::{inv3, mul3, mul33};

/// A 3×3 matrix as rows.
pub type Mat3 = [[f64; 3]; 3];

/// Where rendered colour goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[non_exhaustive]
pub enum OutputSpace {
    /// IEC 61966-2-1 sRGB: BT.709 primaries, D65 white, the sRGB transfer function.
    #[default]
    Srgb,
    /// Display P3: DCI-P3 primaries, D65 white, the sRGB transfer function.
    DisplayP3,
}

/// An output-space name that is neither `srgb` nor `p3`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown output space {0:?} (known: srgb, p3)")]
pub struct UnknownSpace(pub String);

impl FromStr for OutputSpace {
    type Err = UnknownSpace;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "srgb" => Ok(OutputSpace::Srgb),
            "p3" | "display-p3" | "displayp3" | "display p3" => Ok(OutputSpace::DisplayP3),
            _ => Err(UnknownSpace(s.to_string())),
        }
    }
}

impl fmt::Display for OutputSpace {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The D65 white chromaticity both spaces use (IEC 61966-2-1, SMPTE EG 432-1).
pub const D65_XY: [f64; 2] = [0.3127, 0.3290];
/// The ICC profile connection space white (D50), as ICC.1 encodes it.
pub const PCS_D50_XYZ: [f64; 3] = [0.9642, 1.0, 0.8249];

impl OutputSpace {
    /// A short name.
    pub fn name(self) -> &'static str {
        match self {
            OutputSpace::Srgb => "sRGB",
            OutputSpace::DisplayP3 => "Display P3",
        }
    }

    /// Chromaticities of the red, green and blue primaries.
    pub fn primaries_xy(self) -> [[f64; 2]; 3] {
        match self {
            OutputSpace::Srgb => [[0.64, 0.33], [0.30, 0.60], [0.15, 0.06]],
            OutputSpace::DisplayP3 => [[0.680, 0.320], [0.265, 0.690], [0.150, 0.060]],
        }
    }

    /// The white chromaticity.
    pub fn white_xy(self) -> [f64; 2] {
        D65_XY
    }

    /// XYZ of the white (Y = 1).
    pub fn white_xyz(self) -> [f64; 3] {
        xy_to_xyz(self.white_xy())
    }

    /// Linear RGB → XYZ (white RGB = 1 maps to the white with Y = 1).
    pub fn rgb_to_xyz(self) -> Mat3 {
        rgb_to_xyz_matrix(self.primaries_xy(), self.white_xy())
    }

    /// XYZ → linear RGB.
    pub fn xyz_to_rgb(self) -> Mat3 {
        // The primaries of both spaces are independent, so this cannot fail.
        inv3(&self.rgb_to_xyz()).unwrap_or([[0.0; 3]; 3])
    }
}

/// XYZ with Y = 1 for chromaticity `xy`.
pub fn xy_to_xyz(xy: [f64; 2]) -> [f64; 3] {
    [xy[0] / xy[1], 1.0, (1.0 - xy[0] - xy[1]) / xy[1]]
}

/// The RGB→XYZ matrix of a space with the given primaries and white
/// (SMPTE RP 177-1993, §3.3).
pub fn rgb_to_xyz_matrix(primaries: [[f64; 2]; 3], white: [f64; 2]) -> Mat3 {
    let cols: [[f64; 3]; 3] = primaries.map(xy_to_xyz);
    let p: Mat3 = std::array::from_fn(|r| std::array::from_fn(|c| cols[c][r]));
    let s = match inv3(&p) {
        Ok(pi) => mul3(&pi, xy_to_xyz(white)),
        Err(_) => [0.0; 3],
    };
    std::array::from_fn(|r| std::array::from_fn(|c| p[r][c] * s[c]))
}

/// The Bradford cone-response matrix (Lam 1985; ICC.1:2022 Annex E).
pub const BRADFORD: Mat3 = [
    [0.8951, 0.2664, -0.1614],
    [-0.7502, 1.7135, 0.0367],
    [0.0389, -0.0685, 1.0296],
];

/// The Bradford chromatic adaptation matrix taking colours seen under
/// `src_white` to corresponding colours under `dst_white` (XYZ whites).
pub fn bradford(src_white: [f64; 3], dst_white: [f64; 3]) -> Mat3 {
    let s = mul3(&BRADFORD, src_white);
    let d = mul3(&BRADFORD, dst_white);
    let scale: Mat3 =
        std::array::from_fn(|r| std::array::from_fn(|c| if r == c { d[r] / s[r] } else { 0.0 }));
    let inv = inv3(&BRADFORD).unwrap_or([[0.0; 3]; 3]);
    mul33(&inv, &mul33(&scale, &BRADFORD))
}

/// The sRGB transfer function (IEC 61966-2-1 inverse EOTF): linear → encoded.
pub fn srgb_encode(linear: f64) -> f64 {
    if linear <= 0.0031308 {
        12.92 * linear
    } else {
        1.055 * linear.powf(1.0 / 2.4) - 0.055
    }
}

/// The sRGB EOTF: encoded → linear.
pub fn srgb_decode(encoded: f64) -> f64 {
    if encoded <= 0.04045 {
        encoded / 12.92
    } else {
        ((encoded + 0.055) / 1.055).powf(2.4)
    }
}

/// Linear [0, 1] → encoded, by linear interpolation in a 65 537-entry table of
/// [`srgb_encode`], in `f32`. The worst error is below 5e-7 (mostly `f32`
/// rounding), i.e. under 0.04 of a 16-bit code.
#[derive(Clone)]
pub struct EncodeLut {
    table: Vec<f32>,
}

impl fmt::Debug for EncodeLut {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncodeLut({} entries)", self.table.len())
    }
}

const LUT_STEPS: usize = 65_536;

impl Default for EncodeLut {
    fn default() -> Self {
        Self::new()
    }
}

impl EncodeLut {
    /// The sRGB transfer function (used by both output spaces).
    pub fn new() -> Self {
        EncodeLut {
            table: (0..=LUT_STEPS)
                .map(|i| srgb_encode(i as f64 / LUT_STEPS as f64) as f32)
                .collect(),
        }
    }

    /// Encodes a linear value, clipping it to [0, 1] first.
    #[inline]
    pub fn encode(&self, linear: f32) -> f32 {
        let x = if linear.is_nan() {
            0.0
        } else {
            linear.clamp(0.0, 1.0)
        } * LUT_STEPS as f32;
        let i = (x as usize).min(LUT_STEPS - 1);
        let f = x - i as f32;
        let a = self.table[i];
        let b = self.table[i + 1];
        a + f * (b - a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn srgb_matrix_matches_iec_61966_2_1() {
        // IEC 61966-2-1 gives the matrix to 4 decimals.
        let m = OutputSpace::Srgb.rgb_to_xyz();
        let iec = [
            [0.4124, 0.3576, 0.1805],
            [0.2126, 0.7152, 0.0722],
            [0.0193, 0.1192, 0.9505],
        ];
        for r in 0..3 {
            for c in 0..3 {
                assert!((m[r][c] - iec[r][c]).abs() < 1e-4, "{m:?}");
            }
        }
        let p3 = OutputSpace::DisplayP3.rgb_to_xyz();
        assert!((p3[0][0] - 0.4866).abs() < 1e-4 && (p3[1][1] - 0.6917).abs() < 1e-4);
    }

    #[test]
    fn bradford_maps_white_to_white() {
        let d65 = xy_to_xyz(D65_XY);
        let m = bradford(d65, PCS_D50_XYZ);
        let w = mul3(&m, d65);
        for c in 0..3 {
            assert!((w[c] - PCS_D50_XYZ[c]).abs() < 1e-12);
        }
        // The ICC's published D65→D50 Bradford matrix (ICC.1 Annex E example).
        assert!((m[0][0] - 1.0479).abs() < 2e-4 && (m[2][2] - 0.7518).abs() < 2e-4);
    }

    #[test]
    fn transfer_function_and_lut() {
        for i in 0..=1000 {
            let v = i as f64 / 1000.0;
            assert!((srgb_decode(srgb_encode(v)) - v).abs() < 1e-12);
        }
        let lut = EncodeLut::new();
        let mut worst = 0.0_f64;
        for i in 0..=200_000 {
            let v = i as f64 / 200_000.0;
            worst = worst.max((lut.encode(v as f32) as f64 - srgb_encode(v)).abs());
        }
        assert!(worst < 5e-7, "worst LUT error {worst}");
        assert_eq!(lut.encode(-1.0), 0.0);
        assert_eq!(lut.encode(f32::NAN), 0.0);
        assert!((lut.encode(7.0) - 1.0).abs() < 1e-7);
    }
}
