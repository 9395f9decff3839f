//! Camera models: spectral sensitivities, a passband, and the capture illuminant.
//!
//! A camera channel's response to a reflectance r(λ) under the capture
//! illuminant E(λ) is normalised by its response to the perfect white, as a
//! flat-field (white-reference) calibration does:
//!
//! ```text
//! v_j = Σ_λ s_j(λ) E(λ) r(λ) / Σ_λ s_j(λ) E(λ)      (λ on the 5 nm grid)
//! ```
//!
//! so `v_j` is a band reflectance (1 for white), which is what med8k's cubes
//! store (scaled by the header's `reflectance scale factor`).

use crate::colorimetry::Illuminant;
use crate::linalg::Matrix;
use crate::spectrum::{Extrapolation, GRID_LEN, Table, grid_nm};
use crate::tables;

/// Why a camera model could not be built.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CameraError {
    /// No bands were given.
    #[error("a camera needs at least one band")]
    NoBands,
    /// Centre and width lists differ in length.
    #[error("{centres} band centres but {widths} band widths")]
    LengthMismatch {
        /// Centres given.
        centres: usize,
        /// Widths given.
        widths: usize,
    },
    /// A band centre outside 300–900 nm or not finite.
    #[error("band {index}: centre {centre_nm} nm is outside 300–900 nm")]
    BadCentre {
        /// 0-based band index.
        index: usize,
        /// The centre.
        centre_nm: f64,
    },
    /// A band width that is not a positive number up to 400 nm.
    #[error("band {index}: FWHM {fwhm_nm} nm is not in (0, 400] nm")]
    BadWidth {
        /// 0-based band index.
        index: usize,
        /// The width.
        fwhm_nm: f64,
    },
    /// A band that sees no light (a response to white below 1e-6 of a peak-1
    /// sensitivity) on the grid within the passband.
    #[error("band {index} has no response to white within the passband {lo_nm}–{hi_nm} nm")]
    DeadBand {
        /// 0-based band index.
        index: usize,
        /// Passband start.
        lo_nm: f64,
        /// Passband end.
        hi_nm: f64,
    },
    /// A passband that is empty or inverted.
    #[error("passband {lo_nm}–{hi_nm} nm is empty")]
    BadPassband {
        /// Start.
        lo_nm: f64,
        /// End.
        hi_nm: f64,
    },
    /// A sensitivity table that could not be used.
    #[error("sensitivity table: {0}")]
    Table(#[from] crate::spectrum::SpectraError),
}

/// Measured RGB camera sensitivities shipped with the crate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[non_exhaustive]
pub enum MeasuredCamera {
    /// Nikon D5100, measured by NPL (Darrodi et al. 2015), 380–780 nm.
    #[default]
    NikonD5100,
    /// Sigma SD Merrill (Foveon), measured by NPL, 400–680 nm.
    SigmaSdMerrill,
    /// Canon EOS 5D Mark II, from the RAW to ACES data set, 380–780 nm.
    Canon5dMarkII,
}

impl MeasuredCamera {
    /// All shipped cameras.
    pub const ALL: [MeasuredCamera; 3] = [
        MeasuredCamera::NikonD5100,
        MeasuredCamera::SigmaSdMerrill,
        MeasuredCamera::Canon5dMarkII,
    ];

    /// A display name.
    pub fn name(self) -> &'static str {
        match self {
            MeasuredCamera::NikonD5100 => "Nikon D5100 (NPL)",
            MeasuredCamera::SigmaSdMerrill => "Sigma SD Merrill (NPL)",
            MeasuredCamera::Canon5dMarkII => "Canon EOS 5D Mark II (RAW to ACES)",
        }
    }

    fn table(self) -> (&'static str, &'static str) {
        match self {
            MeasuredCamera::NikonD5100 => {
                (tables::CAMERA_NIKON_D5100, "camera_nikon_d5100_npl.csv")
            }
            MeasuredCamera::SigmaSdMerrill => (
                tables::CAMERA_SIGMA_SD_MERRILL,
                "camera_sigma_sd_merrill_npl.csv",
            ),
            MeasuredCamera::Canon5dMarkII => (
                tables::CAMERA_CANON_5D_MARK_II,
                "camera_canon_5d_mark_ii_rawtoaces.csv",
            ),
        }
    }
}

/// A camera: per-channel sensitivities on the working grid, an optional
/// passband (UV/IR-cut filter) and the capture illuminant.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraModel {
    name: String,
    sensitivities: Vec<[f64; GRID_LEN]>,
    passband_nm: (f64, f64),
    capture: Illuminant,
}

/// σ of a Gaussian with the given full width at half maximum.
pub fn fwhm_to_sigma(fwhm: f64) -> f64 {
    fwhm / (2.0 * (2.0 * std::f64::consts::LN_2).sqrt())
}

impl CameraModel {
    /// Gaussian bands from centres and FWHMs (nm). Starts with no passband
    /// limit (the whole 380–780 nm grid) and an equal-energy capture
    /// illuminant; see [`CameraModel::with_passband`] and
    /// [`CameraModel::with_capture_illuminant`].
    pub fn gaussian_bands(centres_nm: &[f64], fwhms_nm: &[f64]) -> Result<Self, CameraError> {
        if centres_nm.is_empty() {
            return Err(CameraError::NoBands);
        }
        if centres_nm.len() != fwhms_nm.len() {
            return Err(CameraError::LengthMismatch {
                centres: centres_nm.len(),
                widths: fwhms_nm.len(),
            });
        }
        let mut sensitivities = Vec::with_capacity(centres_nm.len());
        for (index, (&c, &w)) in centres_nm.iter().zip(fwhms_nm).enumerate() {
            if !(300.0..=900.0).contains(&c) {
                return Err(CameraError::BadCentre {
                    index,
                    centre_nm: c,
                });
            }
            if !(w > 0.0 && w <= 400.0) {
                return Err(CameraError::BadWidth { index, fwhm_nm: w });
            }
            let sigma = fwhm_to_sigma(w);
            sensitivities.push(std::array::from_fn(|i| {
                (-0.5 * ((grid_nm(i) - c) / sigma).powi(2)).exp()
            }));
        }
        let name = format!("{}-band Gaussian", centres_nm.len());
        CameraModel::checked(name, sensitivities, (380.0, 780.0), Illuminant::E)
    }

    /// The 7-band camera of med8k's cubes: 410–650 nm every 40 nm, FWHM 40 nm,
    /// behind a 400–700 nm passband, flat-fielded under an equal-energy light.
    /// This is the forward model `samples/fixtures/derive.py` used.
    pub fn med8k_seven_band() -> Self {
        let centres: Vec<f64> = (0..7).map(|i| 410.0 + 40.0 * i as f64).collect();
        let widths = vec![40.0; 7];
        // Fixed, valid arguments: neither call can fail.
        match CameraModel::gaussian_bands(&centres, &widths)
            .and_then(|c| c.with_passband(400.0, 700.0))
        {
            Ok(c) => c,
            Err(e) => unreachable!("the med8k band set is valid: {e}"),
        }
    }

    /// Sensitivities from a table: first column wavelength, one column per
    /// channel, any grid; zero outside the measured range.
    pub fn from_table(name: &str, csv_text: &str) -> Result<Self, CameraError> {
        let t = Table::parse(csv_text, name)?;
        let sens = (0..t.columns.len())
            .map(|j| t.column_on_grid(j, Extrapolation::Zero))
            .collect();
        CameraModel::checked(name.to_string(), sens, (380.0, 780.0), Illuminant::E)
    }

    /// One of the shipped measured RGB cameras.
    pub fn measured(camera: MeasuredCamera) -> Self {
        let (text, file) = camera.table();
        match CameraModel::from_table(file, text) {
            Ok(mut c) => {
                c.name = camera.name().to_string();
                c
            }
            Err(e) => unreachable!("embedded camera table {file} is valid (tested): {e}"),
        }
    }

    /// Limits the sensitivities to `lo..=hi` nm (an ideal UV/IR-cut filter).
    pub fn with_passband(mut self, lo_nm: f64, hi_nm: f64) -> Result<Self, CameraError> {
        if !lo_nm.is_finite() || !hi_nm.is_finite() || lo_nm >= hi_nm {
            return Err(CameraError::BadPassband { lo_nm, hi_nm });
        }
        self.passband_nm = (lo_nm, hi_nm);
        CameraModel::checked(
            self.name,
            self.sensitivities,
            self.passband_nm,
            self.capture,
        )
    }

    /// Sets the illuminant of the capture (and of its white reference).
    pub fn with_capture_illuminant(mut self, capture: Illuminant) -> Self {
        self.capture = capture;
        self
    }

    fn checked(
        name: String,
        sensitivities: Vec<[f64; GRID_LEN]>,
        passband_nm: (f64, f64),
        capture: Illuminant,
    ) -> Result<Self, CameraError> {
        if sensitivities.is_empty() {
            return Err(CameraError::NoBands);
        }
        let cam = CameraModel {
            name,
            sensitivities,
            passband_nm,
            capture,
        };
        for (index, row) in cam.effective().iter().enumerate() {
            let s: f64 = row.iter().sum();
            // Sensitivities are relative (peak about 1): a band whose summed
            // response to white is this small sees no light at all.
            if s.is_nan() || s <= 1e-6 {
                return Err(CameraError::DeadBand {
                    index,
                    lo_nm: passband_nm.0,
                    hi_nm: passband_nm.1,
                });
            }
        }
        Ok(cam)
    }

    /// Sensitivity × passband (no illuminant), per channel.
    fn effective(&self) -> Vec<[f64; GRID_LEN]> {
        let (lo, hi) = self.passband_nm;
        self.sensitivities
            .iter()
            .map(|s| {
                std::array::from_fn(|i| {
                    let wl = grid_nm(i);
                    if wl >= lo - 1e-9 && wl <= hi + 1e-9 {
                        s[i]
                    } else {
                        0.0
                    }
                })
            })
            .collect()
    }

    /// The camera's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Number of channels (bands).
    pub fn channels(&self) -> usize {
        self.sensitivities.len()
    }

    /// The capture illuminant.
    pub fn capture_illuminant(&self) -> Illuminant {
        self.capture
    }

    /// The passband, nm.
    pub fn passband_nm(&self) -> (f64, f64) {
        self.passband_nm
    }

    /// The forward matrix H (channels × grid): `v = H r` for a reflectance
    /// `r` on the working grid; each row sums to 1 (white gives 1).
    pub(crate) fn response_matrix(&self) -> Matrix {
        let e = self.capture.spd();
        let rows: Vec<Vec<f64>> = self
            .effective()
            .iter()
            .map(|s| {
                let raw: Vec<f64> = s.iter().zip(&e).map(|(s, e)| s * e).collect();
                let total: f64 = raw.iter().sum();
                raw.iter().map(|v| v / total).collect()
            })
            .collect();
        // Non-empty rows of equal length by construction.
        Matrix::from_rows(&rows).unwrap_or_else(|| Matrix::zeros(0, GRID_LEN))
    }

    /// The noise-free response to one reflectance on the working grid.
    pub fn respond(&self, reflectance: &[f64; GRID_LEN]) -> Vec<f64> {
        self.response_matrix().mul_vec(reflectance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn white_gives_one_in_every_channel() {
        let white = [1.0; GRID_LEN];
        for cam in [
            CameraModel::med8k_seven_band(),
            CameraModel::measured(MeasuredCamera::NikonD5100)
                .with_capture_illuminant(Illuminant::A),
            CameraModel::measured(MeasuredCamera::SigmaSdMerrill),
            CameraModel::measured(MeasuredCamera::Canon5dMarkII),
        ] {
            for v in cam.respond(&white) {
                assert!((v - 1.0).abs() < 1e-12, "{}", cam.name());
            }
        }
    }

    #[test]
    fn bad_bands_name_the_value() {
        assert_eq!(
            CameraModel::gaussian_bands(&[410.0, 9999.0], &[40.0, 40.0]),
            Err(CameraError::BadCentre {
                index: 1,
                centre_nm: 9999.0
            })
        );
        assert!(matches!(
            CameraModel::gaussian_bands(&[410.0], &[f64::NAN]),
            Err(CameraError::BadWidth { index: 0, .. })
        ));
        assert!(matches!(
            CameraModel::gaussian_bands(&[410.0], &[]),
            Err(CameraError::LengthMismatch { .. })
        ));
        // A 5 nm band at 850 nm sees nothing on the 380-780 nm grid.
        assert!(matches!(
            CameraModel::gaussian_bands(&[850.0], &[5.0]),
            Err(CameraError::DeadBand { index: 0, .. })
        ));
        let c = CameraModel::gaussian_bands(&[500.0], &[40.0]).unwrap();
        assert!(matches!(
            c.with_passband(700.0, 400.0),
            Err(CameraError::BadPassband { .. })
        ));
    }

    #[test]
    fn narrow_band_reads_the_reflectance_at_its_centre() {
        let cam = CameraModel::gaussian_bands(&[550.0], &[2.0]).unwrap();
        let r: [f64; GRID_LEN] = std::array::from_fn(|i| grid_nm(i) / 1000.0);
        assert!((cam.respond(&r)[0] - 0.55).abs() < 1e-6);
    }
}
