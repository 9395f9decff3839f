//! Rendering band images to display RGB.
//!
//! Per pixel the chain is: u16 band values ÷ reflectance scale → spectral
//! estimate → XYZ under the viewing illuminant and observer → Bradford
//! adaptation to the output space's white → linear RGB → clip to [0, 1] → the
//! sRGB transfer function → 8 or 16 bits. Every step before the clip is linear
//! (or affine), so [`Renderer::new`] folds them into one 3×N matrix plus an
//! offset; a pixel then costs 3·N multiply-adds, a clip and three table
//! look-ups. The image is cut into strips of rows ([`RenderOptions::tile_rows`])
//! that rayon renders in parallel.
//!
//! Out-of-gamut colours are clipped per channel (no gamut mapping).

use ndarray::ArrayView3;
use rayon::prelude::*;

use crate::camera::{CameraError, CameraModel};
use crate::colorimetry::{Colorimetry, Illuminant, Observer};
use crate::estimator::{AffineMap, Estimator, EstimatorError};
use med8k_media::spectral::{Band, SpectralCube};

use crate::noise::{BadSnr, SensorNoise};
use crate::reflectance::{ReflectanceSet, Reflectances};
use crate::rgb::{EncodeLut, OutputSpace, bradford};

/// One band of a cube: centre wavelength and full width at half maximum, nm.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct BandSpec {
    /// Centre wavelength, nm.
    pub centre_nm: f64,
    /// Full width at half maximum, nm.
    pub fwhm_nm: f64,
}

impl From<&Band> for BandSpec {
    fn from(b: &Band) -> Self {
        BandSpec {
            centre_nm: f64::from(b.center_nm),
            fwhm_nm: f64::from(b.fwhm_nm),
        }
    }
}

impl BandSpec {
    /// The 7 bands of med8k's cubes: 410–650 nm every 40 nm, 40 nm wide.
    pub fn med8k_seven() -> Vec<BandSpec> {
        (0..7)
            .map(|i| BandSpec {
                centre_nm: 410.0 + 40.0 * i as f64,
                fwhm_nm: 40.0,
            })
            .collect()
    }
}

/// Bits per output channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub enum BitDepth {
    /// 8 bits per channel.
    #[default]
    Eight,
    /// 16 bits per channel.
    Sixteen,
}

/// Which spectral estimator the renderer uses.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum EstimatorChoice {
    /// Wiener estimation trained on `training`, with the noise term of a
    /// sensor at `snr_db` (at white).
    Wiener {
        /// Training reflectances.
        training: Reflectances,
        /// SNR at white, dB.
        snr_db: f64,
    },
    /// The smoothness-regularised pseudo-inverse with weight `lambda`.
    PseudoInverse {
        /// Smoothness weight.
        lambda: f64,
    },
}

impl Default for EstimatorChoice {
    /// Wiener, trained on the CIE 2017 colour-fidelity samples, 40 dB.
    fn default() -> Self {
        EstimatorChoice::Wiener {
            training: Reflectances::builtin(ReflectanceSet::Cie2017Tcs99),
            snr_db: 40.0,
        }
    }
}

/// Options for rendering a cube. Build with `RenderOptions::default()` and
/// the `with_*` setters.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct RenderOptions {
    /// The viewing illuminant the colours are rendered under (default D65).
    pub illuminant: Illuminant,
    /// The observer (default CIE 1931 2°).
    pub observer: Observer,
    /// The output space (default sRGB).
    pub space: OutputSpace,
    /// Output bits per channel (default 8).
    pub depth: BitDepth,
    /// The spectral estimator (default Wiener on CIE 2017, 40 dB).
    pub estimator: EstimatorChoice,
    /// The illuminant of the capture's flat-field (default E, equal energy).
    pub capture: Illuminant,
    /// The camera's passband in nm (default 400–700, as med8k's fixtures).
    pub passband_nm: (f64, f64),
    /// Rows per parallel strip (default 32).
    pub tile_rows: usize,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            illuminant: Illuminant::D65,
            observer: Observer::Cie1931TwoDegree,
            space: OutputSpace::Srgb,
            depth: BitDepth::Eight,
            estimator: EstimatorChoice::default(),
            capture: Illuminant::E,
            passband_nm: (400.0, 700.0),
            tile_rows: 32,
        }
    }
}

impl RenderOptions {
    /// Sets the viewing illuminant.
    pub fn with_illuminant(mut self, illuminant: Illuminant) -> Self {
        self.illuminant = illuminant;
        self
    }
    /// Sets the observer.
    pub fn with_observer(mut self, observer: Observer) -> Self {
        self.observer = observer;
        self
    }
    /// Sets the output space.
    pub fn with_space(mut self, space: OutputSpace) -> Self {
        self.space = space;
        self
    }
    /// Sets the output bit depth.
    pub fn with_depth(mut self, depth: BitDepth) -> Self {
        self.depth = depth;
        self
    }
    /// Sets the spectral estimator.
    pub fn with_estimator(mut self, estimator: EstimatorChoice) -> Self {
        self.estimator = estimator;
        self
    }
    /// Sets the capture (flat-field) illuminant.
    pub fn with_capture_illuminant(mut self, capture: Illuminant) -> Self {
        self.capture = capture;
        self
    }
    /// Sets the camera passband, nm.
    pub fn with_passband(mut self, lo_nm: f64, hi_nm: f64) -> Self {
        self.passband_nm = (lo_nm, hi_nm);
        self
    }
    /// Sets the rows per parallel strip.
    pub fn with_tile_rows(mut self, rows: usize) -> Self {
        self.tile_rows = rows;
        self
    }
}

/// Why a cube could not be rendered.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// The band descriptions do not make a camera.
    #[error("bands: {0}")]
    Camera(#[from] CameraError),
    /// The estimator could not be fitted.
    #[error("estimator: {0}")]
    Estimator(#[from] EstimatorError),
    /// The SNR of the estimator's noise term is out of range.
    #[error("estimator noise: {0}")]
    Snr(#[from] BadSnr),
    /// Width or height is zero, or their product overflows.
    #[error("image size {width}x{height} is not renderable")]
    Size {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
    },
    /// Plane count differs from the band count.
    #[error("{planes} band planes for {bands} bands")]
    PlaneCount {
        /// Planes given.
        planes: usize,
        /// Bands described.
        bands: usize,
    },
    /// A plane's length is not width × height.
    #[error("band {band}: plane has {len} samples, {width}x{height} needs {need}")]
    PlaneLength {
        /// 0-based band.
        band: usize,
        /// Samples given.
        len: usize,
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Samples needed.
        need: usize,
    },
    /// A band-sequential buffer of the wrong length.
    #[error("BSQ buffer has {len} samples, {bands} bands of {width}x{height} need {need}")]
    BsqLength {
        /// Samples given.
        len: usize,
        /// Bands.
        bands: usize,
        /// Width.
        width: usize,
        /// Height.
        height: usize,
        /// Samples needed.
        need: usize,
    },
    /// An array whose band planes are not contiguous in memory.
    #[error("cube array is not in standard (band, row, column) layout")]
    Layout,
    /// The reflectance scale is not a positive finite number.
    #[error("reflectance scale factor {0} must be positive and finite")]
    Scale(f64),
    /// The cube's bands differ from those the renderer was built for.
    #[error("cube has bands {cube:?}, the renderer was built for {renderer:?}")]
    BandMismatch {
        /// The cube's bands.
        cube: Vec<BandSpec>,
        /// The renderer's bands.
        renderer: Vec<BandSpec>,
    },
    /// Zero rows per strip.
    #[error("tile_rows must be at least 1")]
    TileRows,
}

/// A borrowed cube: one u16 plane per band, row-major, plus its description.
#[derive(Debug, Clone)]
pub struct CubeRef<'a> {
    /// One plane per band, each `width × height` samples, row-major.
    pub planes: Vec<&'a [u16]>,
    /// Samples per line.
    pub width: usize,
    /// Lines.
    pub height: usize,
    /// Band descriptions, in plane order.
    pub bands: Vec<BandSpec>,
    /// The sample value that stands for reflectance 1.0 (med8k: 60000).
    pub reflectance_scale: f64,
}

impl<'a> CubeRef<'a> {
    /// A cube from a band-sequential buffer (`bands × height × width`).
    pub fn from_bsq(
        data: &'a [u16],
        width: usize,
        height: usize,
        bands: Vec<BandSpec>,
        reflectance_scale: f64,
    ) -> Result<Self, RenderError> {
        let plane = checked_area(width, height)?;
        let need = plane
            .checked_mul(bands.len())
            .ok_or(RenderError::Size { width, height })?;
        if data.len() != need || bands.is_empty() {
            return Err(RenderError::BsqLength {
                len: data.len(),
                bands: bands.len(),
                width,
                height,
                need,
            });
        }
        Ok(CubeRef {
            planes: data.chunks_exact(plane).collect(),
            width,
            height,
            bands,
            reflectance_scale,
        })
    }

    /// A [`SpectralCube`] with its bands; its reflectance scale, or full
    /// scale (65535) when the file gives none.
    pub fn from_cube(cube: &'a SpectralCube) -> Result<Self, RenderError> {
        CubeRef::from_array(
            cube.data().view(),
            cube.bands().iter().map(BandSpec::from).collect(),
            cube.reflectance_scale.map_or(65535.0, f64::from),
        )
    }

    /// A cube from an ndarray view shaped `(bands, height, width)` in standard layout
    /// (as [`SpectralCube::data`] holds it).
    pub fn from_array(
        view: ArrayView3<'a, u16>,
        bands: Vec<BandSpec>,
        reflectance_scale: f64,
    ) -> Result<Self, RenderError> {
        let (_, height, width) = view.dim();
        let planes = view
            .into_outer_iter()
            .map(|p| p.to_slice().ok_or(RenderError::Layout))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CubeRef {
            planes,
            width,
            height,
            bands,
            reflectance_scale,
        })
    }

    fn validate(&self) -> Result<(), RenderError> {
        let need = checked_area(self.width, self.height)?;
        if self.planes.len() != self.bands.len() {
            return Err(RenderError::PlaneCount {
                planes: self.planes.len(),
                bands: self.bands.len(),
            });
        }
        for (band, p) in self.planes.iter().enumerate() {
            if p.len() != need {
                return Err(RenderError::PlaneLength {
                    band,
                    len: p.len(),
                    width: self.width,
                    height: self.height,
                    need,
                });
            }
        }
        if !(self.reflectance_scale > 0.0 && self.reflectance_scale.is_finite()) {
            return Err(RenderError::Scale(self.reflectance_scale));
        }
        Ok(())
    }
}

fn checked_area(width: usize, height: usize) -> Result<usize, RenderError> {
    match width.checked_mul(height) {
        Some(n) if n > 0 => Ok(n),
        _ => Err(RenderError::Size { width, height }),
    }
}

/// Interleaved RGB samples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RgbData {
    /// 8 bits per channel.
    Eight(Vec<u8>),
    /// 16 bits per channel.
    Sixteen(Vec<u16>),
}

/// A rendered image: interleaved RGB, row-major, in `space`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Pixels per row.
    pub width: usize,
    /// Rows.
    pub height: usize,
    /// The colour space the values are encoded in.
    pub space: OutputSpace,
    /// The samples.
    pub data: RgbData,
}

impl RgbImage {
    /// Bits per channel.
    pub fn depth(&self) -> BitDepth {
        match self.data {
            RgbData::Eight(_) => BitDepth::Eight,
            RgbData::Sixteen(_) => BitDepth::Sixteen,
        }
    }

    /// Pixel `(x, y)` as 8-bit values (16-bit data is rounded to 8 bits);
    /// `None` outside the image or past the end of the data.
    pub fn pixel8(&self, x: usize, y: usize) -> Option<[u8; 3]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let i = y.checked_mul(self.width)?.checked_add(x)?.checked_mul(3)?;
        let to8 = |v: u16| ((u32::from(v) * 255 + 32_767) / 65_535) as u8;
        match &self.data {
            RgbData::Eight(d) => d.get(i..i + 3).map(|p| [p[0], p[1], p[2]]),
            RgbData::Sixteen(d) => d.get(i..i + 3).map(|p| [to8(p[0]), to8(p[1]), to8(p[2])]),
        }
    }
}

/// A renderer for one band set and one set of options: the estimator is
/// fitted and the per-pixel matrix built once, in [`Renderer::new`].
#[derive(Debug, Clone)]
pub struct Renderer {
    options: RenderOptions,
    bands: Vec<BandSpec>,
    to_xyz: AffineMap,
    to_rgb: AffineMap,
    lut: EncodeLut,
}

impl Renderer {
    /// Fits the estimator for `bands` and folds the chain into one matrix.
    pub fn new(bands: &[BandSpec], options: &RenderOptions) -> Result<Self, RenderError> {
        if options.tile_rows == 0 {
            return Err(RenderError::TileRows);
        }
        let centres: Vec<f64> = bands.iter().map(|b| b.centre_nm).collect();
        let widths: Vec<f64> = bands.iter().map(|b| b.fwhm_nm).collect();
        let (lo, hi) = options.passband_nm;
        let camera = CameraModel::gaussian_bands(&centres, &widths)?
            .with_passband(lo, hi)?
            .with_capture_illuminant(options.capture);
        let estimator = match &options.estimator {
            EstimatorChoice::Wiener { training, snr_db } => {
                Estimator::wiener(&camera, training, SensorNoise::from_snr_db(*snr_db)?)?
            }
            EstimatorChoice::PseudoInverse { lambda } => {
                Estimator::pseudo_inverse(&camera, *lambda)?
            }
        };
        let colorimetry = Colorimetry::new(options.illuminant, options.observer);
        let to_xyz = estimator.band_to_xyz(&colorimetry);
        let adapt = bradford(colorimetry.white(), options.space.white_xyz());
        let to_rgb = to_xyz.then(&adapt).then(&options.space.xyz_to_rgb());
        Ok(Renderer {
            options: options.clone(),
            bands: bands.to_vec(),
            to_xyz,
            to_rgb,
            lut: EncodeLut::new(),
        })
    }

    /// The options this renderer was built with.
    pub fn options(&self) -> &RenderOptions {
        &self.options
    }

    /// Band reflectances (1 = white) → XYZ under the viewing illuminant (Y of white = 1).
    pub fn band_to_xyz(&self) -> &AffineMap {
        &self.to_xyz
    }

    /// Band reflectances → linear output RGB (adapted to the output white).
    pub fn band_to_linear_rgb(&self) -> &AffineMap {
        &self.to_rgb
    }

    /// The reference white XYZ of the viewing illuminant and observer.
    pub fn white(&self) -> [f64; 3] {
        Colorimetry::new(self.options.illuminant, self.options.observer).white()
    }

    fn check_cube(&self, cube: &CubeRef<'_>) -> Result<(), RenderError> {
        cube.validate()?;
        if cube.bands != self.bands {
            return Err(RenderError::BandMismatch {
                cube: cube.bands.clone(),
                renderer: self.bands.clone(),
            });
        }
        Ok(())
    }

    /// Renders a cube to RGB in the options' space and bit depth.
    pub fn render(&self, cube: &CubeRef<'_>) -> Result<RgbImage, RenderError> {
        self.check_cube(cube)?;
        let map = scaled_f32(&self.to_rgb, cube.reflectance_scale);
        let (w, h) = (cube.width, cube.height);
        let strip = self.options.tile_rows.saturating_mul(w * 3);
        let lut = &self.lut;
        let data = match self.options.depth {
            BitDepth::Eight => {
                let mut out = vec![0u8; w * h * 3];
                out.par_chunks_mut(strip)
                    .enumerate()
                    .for_each(|(s, chunk)| {
                        let y0 = s * self.options.tile_rows;
                        render_strip(cube, &map, y0, chunk.len() / (3 * w), |i, rgb| {
                            for c in 0..3 {
                                chunk[3 * i + c] = (lut.encode(rgb[c]) * 255.0 + 0.5) as u8;
                            }
                        });
                    });
                RgbData::Eight(out)
            }
            BitDepth::Sixteen => {
                let mut out = vec![0u16; w * h * 3];
                out.par_chunks_mut(strip)
                    .enumerate()
                    .for_each(|(s, chunk)| {
                        let y0 = s * self.options.tile_rows;
                        render_strip(cube, &map, y0, chunk.len() / (3 * w), |i, rgb| {
                            for c in 0..3 {
                                chunk[3 * i + c] = (lut.encode(rgb[c]) * 65535.0 + 0.5) as u16;
                            }
                        });
                    });
                RgbData::Sixteen(out)
            }
        };
        Ok(RgbImage {
            width: w,
            height: h,
            space: self.options.space,
            data,
        })
    }

    /// Renders band planes (one `width × height` row-major u16 plane per band,
    /// in the order of the bands this renderer was built for).
    pub fn render_bands(
        &self,
        planes: &[&[u16]],
        width: usize,
        height: usize,
        reflectance_scale: f64,
    ) -> Result<RgbImage, RenderError> {
        self.render(&CubeRef {
            planes: planes.to_vec(),
            width,
            height,
            bands: self.bands.clone(),
            reflectance_scale,
        })
    }

    /// XYZ per pixel under the viewing illuminant (no adaptation, Y of white = 1).
    pub fn render_xyz(&self, cube: &CubeRef<'_>) -> Result<Vec<[f32; 3]>, RenderError> {
        self.check_cube(cube)?;
        let map = scaled_f32(&self.to_xyz, cube.reflectance_scale);
        let (w, h) = (cube.width, cube.height);
        let rows = self.options.tile_rows;
        let mut out = vec![[0f32; 3]; w * h];
        out.par_chunks_mut(rows.saturating_mul(w))
            .enumerate()
            .for_each(|(s, chunk)| {
                render_strip(cube, &map, s * rows, chunk.len() / w, |i, xyz| {
                    chunk[i] = xyz;
                });
            });
        Ok(out)
    }
}

/// The affine map in f32 with the reflectance scale folded into the columns.
struct MapF32 {
    columns: Vec<[f32; 3]>,
    offset: [f32; 3],
}

fn scaled_f32(map: &AffineMap, scale: f64) -> MapF32 {
    MapF32 {
        columns: map
            .columns
            .iter()
            .map(|c| c.map(|v| (v / scale) as f32))
            .collect(),
        offset: map.offset.map(|v| v as f32),
    }
}

/// Applies `map` to rows `y0..y0+rows` of `cube`; `emit(i, value)` receives
/// each pixel's three outputs, `i` counted from the strip's first pixel.
fn render_strip(
    cube: &CubeRef<'_>,
    map: &MapF32,
    y0: usize,
    rows: usize,
    mut emit: impl FnMut(usize, [f32; 3]),
) {
    let w = cube.width;
    let mut acc = [vec![0f32; w], vec![0f32; w], vec![0f32; w]];
    for r in 0..rows {
        let start = (y0 + r) * w;
        for (c, a) in acc.iter_mut().enumerate() {
            a.fill(map.offset[c]);
        }
        for (plane, col) in cube.planes.iter().zip(&map.columns) {
            let src = &plane[start..start + w];
            for (c, a) in acc.iter_mut().enumerate() {
                let k = col[c];
                for (o, &v) in a.iter_mut().zip(src) {
                    *o += k * f32::from(v);
                }
            }
        }
        let [a0, a1, a2] = &acc;
        for (x, ((&v0, &v1), &v2)) in a0.iter().zip(a1).zip(a2).enumerate() {
            emit(r * w + x, [v0, v1, v2]);
        }
    }
}

/// Renders a cube in one call: fits the estimator, builds the matrix, renders.
pub fn render(cube: &CubeRef<'_>, options: &RenderOptions) -> Result<RgbImage, RenderError> {
    Renderer::new(&cube.bands, options)?.render(cube)
}
