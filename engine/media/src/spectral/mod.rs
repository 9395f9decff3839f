//! Multispectral cubes: N bands of u16, each with its centre wavelength and width.

pub mod envi;

use ndarray::Array3;

/// One spectral band.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Band {
    /// Centre wavelength in nanometres.
    pub center_nm: f32,
    /// Full width at half maximum in nanometres.
    pub fwhm_nm: f32,
}

/// The 7-band set med8k's samples use: 410–650 nm every 40 nm, 40 nm wide.
pub fn default_bands() -> Vec<Band> {
    (0..7)
        .map(|i| Band {
            center_nm: 410.0 + 40.0 * i as f32,
            fwhm_nm: 40.0,
        })
        .collect()
}

/// A cube whose parts do not agree.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum CubeError {
    /// The band list and the data's first axis differ.
    #[error("cube has {data} bands of data but {listed} band descriptions")]
    BandCount {
        /// Bands in the array.
        data: usize,
        /// Band descriptions given.
        listed: usize,
    },
    /// A cube with no bands or no pixels.
    #[error("cube is empty ({bands} bands, {height}x{width})")]
    Empty {
        /// Bands.
        bands: usize,
        /// Lines.
        height: usize,
        /// Samples per line.
        width: usize,
    },
}

/// A multispectral image: `bands × height × width` of u16, band-sequential.
#[derive(Debug, Clone, PartialEq)]
pub struct SpectralCube {
    bands: Vec<Band>,
    data: Array3<u16>,
    /// The value that stands for reflectance 1.0, when the data is reflectance.
    pub reflectance_scale: Option<f32>,
}

impl SpectralCube {
    /// A cube from band descriptions and data shaped `(bands, height, width)`.
    pub fn new(bands: Vec<Band>, data: Array3<u16>) -> Result<Self, CubeError> {
        let (b, h, w) = data.dim();
        if b == 0 || h == 0 || w == 0 {
            return Err(CubeError::Empty {
                bands: b,
                height: h,
                width: w,
            });
        }
        if b != bands.len() {
            return Err(CubeError::BandCount {
                data: b,
                listed: bands.len(),
            });
        }
        Ok(SpectralCube {
            bands,
            data,
            reflectance_scale: None,
        })
    }

    /// Band descriptions, in data order.
    pub fn bands(&self) -> &[Band] {
        &self.bands
    }

    /// Samples, shaped `(bands, height, width)`.
    pub fn data(&self) -> &Array3<u16> {
        &self.data
    }

    /// Mutable samples.
    pub fn data_mut(&mut self) -> &mut Array3<u16> {
        &mut self.data
    }

    /// Pixels per line.
    pub fn width(&self) -> usize {
        self.data.dim().2
    }

    /// Lines.
    pub fn height(&self) -> usize {
        self.data.dim().1
    }

    /// Number of bands.
    pub fn band_count(&self) -> usize {
        self.bands.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seven_bands_by_default() {
        let b = default_bands();
        assert_eq!(b.len(), 7);
        assert_eq!(b[6].center_nm, 650.0);
    }

    #[test]
    fn mismatched_parts_are_refused() {
        let data = Array3::<u16>::zeros((3, 4, 5));
        assert_eq!(
            SpectralCube::new(default_bands(), data.clone()),
            Err(CubeError::BandCount { data: 3, listed: 7 })
        );
        assert!(SpectralCube::new(vec![], Array3::zeros((0, 4, 5))).is_err());
        let c = SpectralCube::new(default_bands()[..3].to_vec(), data).unwrap();
        assert_eq!((c.band_count(), c.height(), c.width()), (3, 4, 5));
    }
}
