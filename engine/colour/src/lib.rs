//! Colour a pathologist can trust: spectral rendering of multispectral cubes,
//! colorimetry, CIEDE2000, ICC profiles, and a measured comparison of a 7-band
//! camera with an RGB camera.
//!
//! # A guided tour
//! - [`spectrum`]: the working grid (380–780 nm, 5 nm), resampling, the
//!   spectral CSV format.
//! - [`colorimetry`]: [`Illuminant`] (D65, D50, A, FL11, E), [`Observer`]
//!   (CIE 1931 2°, CIE 1964 10°) and [`Colorimetry`], which integrates a
//!   reflectance to XYZ with ASTM E308 / E2022 weights.
//! - [`camera`]: [`CameraModel`], Gaussian bands from centre and FWHM or a
//!   measured table (Nikon D5100, Sigma SD Merrill, Canon 5D Mark II), a
//!   passband, and the capture illuminant.
//! - [`estimator`]: [`Estimator::wiener`] (learnt covariance + noise term) and
//!   [`Estimator::pseudo_inverse`] (smoothness-regularised); both map band
//!   values to a reflectance over the whole 380–780 nm grid.
//! - [`rgb`] and [`difference`]: output spaces ([`OutputSpace::Srgb`],
//!   [`OutputSpace::DisplayP3`]), Bradford adaptation, the sRGB transfer
//!   function, CIELAB and [`delta_e_2000`].
//! - [`mod@render`]: [`Renderer`] folds estimator, illuminant, observer,
//!   adaptation and output matrix into one 3×N matrix and renders a cube of
//!   u16 band planes to 8- or 16-bit RGB, in parallel strips; [`render()`]
//!   does it in one call.
//! - [`icc`] and [`png_io`]: ICC v4 display profiles and PNG output that embeds
//!   them.
//! - [`eval`]: [`compare_cameras`] simulates both cameras with seeded sensor
//!   noise on measured reflectance sets and reports ΔE2000 statistics.
//!
//! Data tables are embedded; `data/PROVENANCE.md` says where each comes from.
//!
//! # Example
//! ```no_run
//! use med8k_colour::{
//!     BandSpec, BitDepth, CubeRef, Illuminant, OutputSpace, RenderOptions, compare_cameras,
//!     eval::EvalOptions, png_io::write_png_file, render,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A 7-band cube, band-sequential u16, reflectance 1.0 = 60000.
//! let (width, height) = (350, 384);
//! let data: Vec<u16> = std::fs::read("samples/fixtures/he_region.raw")?
//!     .chunks_exact(2)
//!     .map(|b| u16::from_le_bytes([b[0], b[1]]))
//!     .collect();
//! let cube = CubeRef::from_bsq(&data, width, height, BandSpec::med8k_seven(), 60000.0)?;
//! let options = RenderOptions::default()
//!     .with_illuminant(Illuminant::D50)
//!     .with_space(OutputSpace::DisplayP3)
//!     .with_depth(BitDepth::Sixteen);
//! let image = render(&cube, &options)?;
//! write_png_file("he_region.png".as_ref(), &image)?;
//!
//! // 7-band vs RGB on measured spectra the estimator was not trained on.
//! let report = compare_cameras(&EvalOptions::default())?;
//! println!("{report}");
//! # Ok(())
//! # }
//! ```

#![warn(missing_docs)]

pub mod camera;
pub mod colorimetry;
pub mod difference;
pub mod estimator;
pub mod eval;
pub mod icc;
mod linalg;
pub mod noise;
pub mod png_io;
pub mod reflectance;
pub mod render;
pub mod rgb;
pub mod spectrum;
mod tables;
pub mod tiff_io;

pub use camera::{CameraError, CameraModel, MeasuredCamera};
pub use colorimetry::{Colorimetry, Illuminant, Observer};
pub use difference::{Lab, delta_e_2000, lab_to_xyz, xyz_to_lab};
pub use estimator::{AffineMap, Estimator, EstimatorError, EstimatorKind};
pub use eval::{EvalError, EvalOptions, EvalReport, compare_cameras};
pub use linalg::Singular;
pub use noise::SensorNoise;
pub use reflectance::{ReflectanceSet, Reflectances};
pub use render::{
    BandSpec, BitDepth, CubeRef, EstimatorChoice, RenderError, RenderOptions, Renderer, RgbData,
    RgbImage, render,
};
pub use rgb::OutputSpace;
pub use spectrum::SpectraError;
