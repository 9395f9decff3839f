//! The specimen in memory: a band pyramid (each level half the size of the
//! one below, 2×2 means of the bands), tiles rendered on demand for a view
//! and kept in a bounded memory cache, and the spectrum at a pixel.
//!
//! Views: true colour from the bands through `med8k-colour` (Wiener
//! estimation, ASTM E308 under the chosen illuminant, sRGB), one band alone
//! (its reflectance, sRGB-encoded grey), false colour from any three bands,
//! and the simulated RGB camera (a Nikon D5100's measured sensitivities
//! photographing the spectrum the bands estimate, its 3×3 fitted on the
//! ColorChecker under the same illuminant).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use med8k_colour::eval::fit_3x3;
use med8k_colour::rgb::{bradford, srgb_encode};
use med8k_colour::spectrum::GRID_LEN;
use med8k_colour::{
    AffineMap, BandSpec, CameraModel, Colorimetry, Estimator, Illuminant, MeasuredCamera, Observer,
    OutputSpace, ReflectanceSet, Reflectances, RenderOptions, Renderer, SensorNoise,
};
use med8k_media::spectral::SpectralCube;

/// Tile side in pixels.
pub const TILE: usize = 256;
/// Bytes of PNG tiles kept in memory before the cache is emptied.
const CACHE_BYTES: usize = 256 << 20;

/// What a tile shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum View {
    /// True colour under an illuminant.
    TrueColour(Illuminant),
    /// One band, as grey.
    Band(usize),
    /// Three bands as red, green, blue.
    FalseColour([usize; 3]),
    /// The simulated RGB camera under an illuminant.
    RgbCamera(Illuminant),
}

/// Why a request could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PyramidError {
    /// A tile or band outside the pyramid.
    #[error("{0}")]
    OutOfRange(String),
    /// The colour pipeline refused.
    #[error("colour: {0}")]
    Colour(String),
}

struct Level {
    width: usize,
    height: usize,
    /// One plane per band; level 0 is the cube itself.
    planes: Vec<Vec<u16>>,
}

/// The pyramid and the renderers of one specimen.
pub struct Pyramid {
    cube: SpectralCube,
    levels: Vec<Level>,
    bands: Vec<BandSpec>,
    scale: f64,
    estimator: Estimator,
    renderers: Mutex<HashMap<Illuminant, Arc<(Renderer, AffineMap)>>>,
    cache: Mutex<TileCache>,
}

/// A rendered tile: view, level, column, row.
type TileKey = (View, usize, usize, usize);

/// Rendered tiles (PNG) and their bytes in all.
type TileCache = (usize, HashMap<TileKey, Arc<Vec<u8>>>);

impl std::fmt::Debug for Pyramid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pyramid")
            .field("width", &self.cube.width())
            .field("height", &self.cube.height())
            .field("levels", &(self.levels.len() + 1))
            .finish_non_exhaustive()
    }
}

impl Pyramid {
    /// Builds the pyramid of `cube` (its reflectance scale, else full scale).
    pub fn new(cube: SpectralCube) -> Result<Self, PyramidError> {
        let bands: Vec<BandSpec> = cube.bands().iter().map(BandSpec::from).collect();
        let scale = cube.reflectance_scale.map_or(65535.0, f64::from);
        let estimator = estimator(&bands)?;
        let mut levels: Vec<Level> = Vec::new();
        let (mut w, mut h) = (cube.width(), cube.height());
        while w.max(h) > TILE {
            let (nw, nh) = (w.div_ceil(2), h.div_ceil(2));
            let planes = (0..bands.len())
                .map(|b| {
                    let src: &[u16] = match levels.last() {
                        Some(l) => &l.planes[b],
                        None => plane(&cube, b),
                    };
                    halve(src, w, h)
                })
                .collect();
            levels.push(Level {
                width: nw,
                height: nh,
                planes,
            });
            (w, h) = (nw, nh);
        }
        Ok(Pyramid {
            cube,
            levels,
            bands,
            scale,
            estimator,
            renderers: Mutex::new(HashMap::new()),
            cache: Mutex::new((0, HashMap::new())),
        })
    }

    /// The specimen.
    pub fn cube(&self) -> &SpectralCube {
        &self.cube
    }

    /// Levels, the full size included.
    pub fn level_count(&self) -> usize {
        self.levels.len() + 1
    }

    /// Band descriptions.
    pub fn bands(&self) -> &[BandSpec] {
        &self.bands
    }

    fn level(&self, level: usize) -> Result<(usize, usize, Vec<&[u16]>), PyramidError> {
        if level == 0 {
            let planes = (0..self.bands.len())
                .map(|b| plane(&self.cube, b))
                .collect();
            return Ok((self.cube.width(), self.cube.height(), planes));
        }
        let l = self
            .levels
            .get(level - 1)
            .ok_or_else(|| PyramidError::OutOfRange(format!("no level {level}")))?;
        Ok((
            l.width,
            l.height,
            l.planes.iter().map(Vec::as_slice).collect(),
        ))
    }

    fn renderer(&self, ill: Illuminant) -> Result<Arc<(Renderer, AffineMap)>, PyramidError> {
        let mut map = self
            .renderers
            .lock()
            .map_err(|_| PyramidError::Colour("renderer lock poisoned".into()))?;
        if let Some(r) = map.get(&ill) {
            return Ok(r.clone());
        }
        let options = RenderOptions::default().with_illuminant(ill);
        let renderer = Renderer::new(&self.bands, &options)
            .map_err(|e| PyramidError::Colour(e.to_string()))?;
        let camera = rgb_camera_map(&self.estimator, self.bands.len(), ill)?;
        let r = Arc::new((renderer, camera));
        map.insert(ill, r.clone());
        Ok(r)
    }

    /// The PNG of tile (`tx`, `ty`) of `level` in `view`.
    pub fn tile(
        &self,
        view: View,
        level: usize,
        tx: usize,
        ty: usize,
    ) -> Result<Arc<Vec<u8>>, PyramidError> {
        let key = (view, level, tx, ty);
        if let Ok(cache) = self.cache.lock()
            && let Some(t) = cache.1.get(&key)
        {
            return Ok(t.clone());
        }
        let png = Arc::new(self.render_tile(view, level, tx, ty)?);
        if let Ok(mut cache) = self.cache.lock() {
            if cache.0 + png.len() > CACHE_BYTES {
                cache.1.clear();
                cache.0 = 0;
            }
            cache.0 += png.len();
            cache.1.insert(key, png.clone());
        }
        Ok(png)
    }

    fn render_tile(
        &self,
        view: View,
        level: usize,
        tx: usize,
        ty: usize,
    ) -> Result<Vec<u8>, PyramidError> {
        let (w, h, planes) = self.level(level)?;
        let (x0, y0) = (tx * TILE, ty * TILE);
        if x0 >= w || y0 >= h {
            return Err(PyramidError::OutOfRange(format!(
                "tile {tx},{ty} is outside level {level} ({w}x{h})"
            )));
        }
        let (tw, th) = (TILE.min(w - x0), TILE.min(h - y0));
        let nb = self.bands.len();
        let check = |b: usize| {
            if b < nb {
                Ok(b)
            } else {
                Err(PyramidError::OutOfRange(format!(
                    "band {b} (the specimen has {nb})"
                )))
            }
        };
        let cut = |b: usize| -> Vec<u16> {
            let mut out = Vec::with_capacity(tw * th);
            for y in y0..y0 + th {
                out.extend_from_slice(&planes[b][y * w + x0..y * w + x0 + tw]);
            }
            out
        };
        let mut rgb = vec![0u8; tw * th * 3];
        let enc = |v: f64| (srgb_encode(v.clamp(0.0, 1.0)) * 255.0 + 0.5) as u8;
        match view {
            View::TrueColour(ill) => {
                let r = self.renderer(ill)?;
                let tile: Vec<Vec<u16>> = (0..nb).map(&cut).collect();
                let refs: Vec<&[u16]> = tile.iter().map(Vec::as_slice).collect();
                let img =
                    r.0.render_bands(&refs, tw, th, self.scale)
                        .map_err(|e| PyramidError::Colour(e.to_string()))?;
                for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
                    if let Some(p) = img.pixel8(i % tw, i / tw) {
                        px.copy_from_slice(&p);
                    }
                }
            }
            View::RgbCamera(ill) => {
                let r = self.renderer(ill)?;
                let tile: Vec<Vec<u16>> = (0..nb).map(&cut).collect();
                let mut v = vec![0f64; nb];
                for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
                    for (b, t) in tile.iter().enumerate() {
                        v[b] = f64::from(t[i]) / self.scale;
                    }
                    let lin = r.1.apply(&v);
                    for c in 0..3 {
                        px[c] = enc(lin[c]);
                    }
                }
            }
            View::Band(b) => {
                let p = cut(check(b)?);
                for (px, &s) in rgb.chunks_exact_mut(3).zip(&p) {
                    px.fill(enc(f64::from(s) / self.scale));
                }
            }
            View::FalseColour(bs) => {
                let p: Vec<Vec<u16>> = bs
                    .iter()
                    .map(|&b| check(b).map(&cut))
                    .collect::<Result<_, _>>()?;
                for (i, px) in rgb.chunks_exact_mut(3).enumerate() {
                    for c in 0..3 {
                        px[c] = enc(f64::from(p[c][i]) / self.scale);
                    }
                }
            }
        }
        png_rgb8(&rgb, tw, th)
    }

    /// The band values at pixel (`x`, `y`) of the full image, and the
    /// reflectance the estimator makes of them (380–780 nm, 5 nm).
    pub fn spectrum(&self, x: usize, y: usize) -> Result<Spectrum, PyramidError> {
        let (w, h) = (self.cube.width(), self.cube.height());
        if x >= w || y >= h {
            return Err(PyramidError::OutOfRange(format!(
                "pixel ({x}, {y}) is outside the {w}x{h} image"
            )));
        }
        let raw: Vec<u16> = (0..self.bands.len())
            .map(|b| plane(&self.cube, b)[y * w + x])
            .collect();
        let reflectance: Vec<f64> = raw.iter().map(|&v| f64::from(v) / self.scale).collect();
        let curve = self
            .estimator
            .estimate(&reflectance)
            .map_err(|e| PyramidError::Colour(e.to_string()))?;
        Ok(Spectrum {
            raw,
            reflectance,
            curve,
        })
    }
}

/// The spectrum at a pixel.
#[derive(Debug, Clone, PartialEq)]
pub struct Spectrum {
    /// The band samples.
    pub raw: Vec<u16>,
    /// The band values as reflectance (sample ÷ the cube's scale).
    pub reflectance: Vec<f64>,
    /// The estimated reflectance, 380–780 nm every 5 nm.
    pub curve: [f64; GRID_LEN],
}

fn plane(cube: &SpectralCube, b: usize) -> &[u16] {
    let n = cube.width() * cube.height();
    // The cube is held in standard layout (ENVI reader, decoder).
    match cube.data().as_slice() {
        Some(all) => &all[b * n..(b + 1) * n],
        None => &[],
    }
}

/// 2×2 means (edges repeat the last row or column).
fn halve(src: &[u16], w: usize, h: usize) -> Vec<u16> {
    let (nw, nh) = (w.div_ceil(2), h.div_ceil(2));
    let mut out = vec![0u16; nw * nh];
    for y in 0..nh {
        let (r0, r1) = (2 * y, (2 * y + 1).min(h - 1));
        for x in 0..nw {
            let (c0, c1) = (2 * x, (2 * x + 1).min(w - 1));
            let s = u32::from(src[r0 * w + c0])
                + u32::from(src[r0 * w + c1])
                + u32::from(src[r1 * w + c0])
                + u32::from(src[r1 * w + c1]);
            out[y * nw + x] = ((s + 2) / 4) as u16;
        }
    }
    out
}

/// The renderer's estimator (the same camera model and prior as
/// [`Renderer::new`] with default options).
fn estimator(bands: &[BandSpec]) -> Result<Estimator, PyramidError> {
    let o = RenderOptions::default();
    let centres: Vec<f64> = bands.iter().map(|b| b.centre_nm).collect();
    let widths: Vec<f64> = bands.iter().map(|b| b.fwhm_nm).collect();
    let colour = |e: &dyn std::fmt::Display| PyramidError::Colour(e.to_string());
    let camera = CameraModel::gaussian_bands(&centres, &widths)
        .and_then(|c| c.with_passband(o.passband_nm.0, o.passband_nm.1))
        .map_err(|e| colour(&e))?
        .with_capture_illuminant(o.capture);
    let training = Reflectances::builtin(ReflectanceSet::Cie2017Tcs99);
    let noise = SensorNoise::from_snr_db(40.0).map_err(|e| colour(&e))?;
    Estimator::wiener(&camera, &training, noise).map_err(|e| colour(&e))
}

/// Band reflectances → linear sRGB through the simulated RGB camera: the
/// estimated spectrum, the camera's response, its ColorChecker 3×3 to XYZ
/// under `ill`, Bradford to D65, sRGB. Affine, so built from the images of
/// the unit vectors.
fn rgb_camera_map(
    estimator: &Estimator,
    bands: usize,
    ill: Illuminant,
) -> Result<AffineMap, PyramidError> {
    let col = Colorimetry::new(ill, Observer::Cie1931TwoDegree);
    let cam = CameraModel::measured(MeasuredCamera::NikonD5100);
    let chart = Reflectances::builtin(ReflectanceSet::ColorCheckerOhta);
    let chart_rgb: Vec<Vec<f64>> = chart.spectra().iter().map(|s| cam.respond(s)).collect();
    let chart_xyz: Vec<[f64; 3]> = chart.spectra().iter().map(|s| col.xyz(s)).collect();
    let m = fit_3x3(&chart_rgb, &chart_xyz).map_err(|e| PyramidError::Colour(e.to_string()))?;
    let adapt = bradford(col.white(), OutputSpace::Srgb.white_xyz());
    let to_rgb = OutputSpace::Srgb.xyz_to_rgb();
    let white_y = col.white()[1];
    let path = |v: &[f64]| -> Result<[f64; 3], PyramidError> {
        let s = estimator
            .estimate(v)
            .map_err(|e| PyramidError::Colour(e.to_string()))?;
        let c = cam.respond(&s);
        let xyz: [f64; 3] = std::array::from_fn(|r| (0..3).map(|k| m[r][k] * c[k]).sum());
        let a: [f64; 3] = std::array::from_fn(|r| (0..3).map(|k| adapt[r][k] * xyz[k]).sum());
        Ok(std::array::from_fn(|r| {
            (0..3).map(|k| to_rgb[r][k] * a[k]).sum::<f64>() / white_y
        }))
    };
    let zero = vec![0.0; bands];
    let offset = path(&zero)?;
    let mut columns = Vec::with_capacity(bands);
    for b in 0..bands {
        let mut e = zero.clone();
        e[b] = 1.0;
        let x = path(&e)?;
        columns.push(std::array::from_fn(|c| x[c] - offset[c]));
    }
    Ok(AffineMap { columns, offset })
}

/// An 8-bit RGB PNG, fast compression (tiles are made per request).
pub fn png_rgb8(rgb: &[u8], w: usize, h: usize) -> Result<Vec<u8>, PyramidError> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, w as u32, h as u32);
        enc.set_color(png::ColorType::Rgb);
        enc.set_depth(png::BitDepth::Eight);
        enc.set_compression(png::Compression::Fast);
        let mut wr = enc
            .write_header()
            .map_err(|e| PyramidError::Colour(format!("PNG: {e}")))?;
        wr.write_image_data(rgb)
            .map_err(|e| PyramidError::Colour(format!("PNG: {e}")))?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use med8k_media::spectral::default_bands;
    use ndarray::Array3;

    fn cube(w: usize, h: usize) -> SpectralCube {
        let data = Array3::from_shape_fn((7, h, w), |(b, y, x)| {
            (1000 + b * 5000 + (x * 7 + y * 3) % 1000) as u16
        });
        let mut c = SpectralCube::new(default_bands(), data).unwrap();
        c.reflectance_scale = Some(60000.0);
        c
    }

    #[test]
    fn levels_halve_down_to_one_tile() {
        let p = Pyramid::new(cube(1000, 300)).unwrap();
        // 1000 → 500 → 250.
        assert_eq!(p.level_count(), 3);
        let t = p.tile(View::Band(3), 2, 0, 0).unwrap();
        assert_eq!(&t[1..4], b"PNG");
        assert!(p.tile(View::Band(3), 2, 1, 0).is_err());
        assert!(p.tile(View::Band(7), 0, 0, 0).is_err());
        assert!(p.tile(View::TrueColour(Illuminant::D65), 0, 3, 1).is_ok());
        assert!(p.tile(View::RgbCamera(Illuminant::A), 1, 1, 0).is_ok());
    }

    #[test]
    fn the_spectrum_reads_the_pixel() {
        let p = Pyramid::new(cube(300, 20)).unwrap();
        let s = p.spectrum(10, 5).unwrap();
        assert_eq!(s.raw[0], (1000 + (10 * 7 + 5 * 3)) as u16);
        assert_eq!(s.raw.len(), 7);
        assert!(s.curve.iter().all(|v| v.is_finite()));
        assert!(p.spectrum(300, 0).is_err());
    }

    #[test]
    fn halving_averages() {
        assert_eq!(halve(&[0, 4, 8, 12], 2, 2), vec![6]);
        assert_eq!(halve(&[1, 3, 5], 3, 1), vec![2, 5]);
    }
}
