//! Deterministic synthetic endoscope scene: 10-bit YCbCr 4:2:2 frames of the
//! inside of a body, with ground-truth lesion masks.
//!
//! The scene is a flat-ish sheet of mucosa seen through a wide-angle scope:
//!
//! - **World** (built once in [`EndoscopeScene::new`]): a low-frequency base
//!   texture (pink-red albedo with colour variation, fold height field and its
//!   slopes, distance/illumination, wetness), a full-resolution map of
//!   branching blood vessels (superficial red capillaries, deeper purple
//!   veins), a periodic fine-detail tile (micro-relief, crypt pattern,
//!   capillary mesh) sampled at two unrelated scales so no repetition
//!   shows, and a small pool of lesion "sprites" (raised reddened patches,
//!   pools of blood).
//! - **Camera** (a function of the frame index): slow Lissajous drift, gentle
//!   zoom ("breathing") and slight roll. The light sits at the scope tip, so
//!   shading and specular glints come from the height-field normals against
//!   the view direction and move as the camera moves.
//! - **Optics**: a circular image (radius `0.52 * min(width, height)`, so it
//!   clips slightly at the top and bottom of a landscape frame) with a soft
//!   edge, black outside, illumination falling off toward the rim.
//! - **Sensor**: about 1.3-2 LSB of luma noise from a counter-based hash of
//!   (seed, frame, pixel): the output does not depend on thread count.
//! - **Lesions**: in episodes of 9-18 consecutive frames (about a third of the
//!   frames), chosen from the seed; they live in world coordinates and move
//!   with the tissue. Bleeding grows during the first half of its episode.
//!
//! Output is BT.2020 non-constant-luminance Y'CbCr, limited range, 10 bits in
//! the low bits of `u16` (`I422_10LE`): Y in `64..=940`, Cb/Cr in
//! `64..=960`, one Cb/Cr per horizontal pixel pair (the pair's average). The
//! transfer curve is a plain square root (close to the BT.2020 OETF).
//!
//! Cost at 7680x4320 (2-core x86-64, release): `new` about 3 CPU-seconds
//! (world textures, about 280 MB), `render` about 1 CPU-second per frame,
//! parallel over bands of rows; the caller's planes are the only per-frame
//! memory besides a row scratch per rayon job.
//!
//! The mask is `ceil(w / 4) x ceil(h / 4)`: a mask cell is 255 when any pixel
//! of its 4x4 block shows a lesion inside the circular field of view (radius
//! where the soft edge is half way), else 0. [`FrameTruth`] is derived from
//! that mask, so the label is always true to the mask.

use rayon::prelude::*;
use std::fmt;

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/// Scene parameters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SceneConfig {
    /// Frame width in pixels: even, `64..=16384`.
    pub width: u32,
    /// Frame height in pixels: `64..=16384`.
    pub height: u32,
    /// Number of frames in the clip, at least 1; frame indices are `0..frames`.
    pub frames: u32,
    /// Seed: picks the tissue, vessels, camera path, lesion episodes and noise.
    pub seed: u64,
}

/// What is wrong with a scene config, or with the planes handed to
/// [`EndoscopeScene::render`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneError(pub String);

impl fmt::Display for SceneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "endoscope scene: {}", self.0)
    }
}

impl std::error::Error for SceneError {}

/// Kind of anomaly drawn into a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LesionKind {
    /// A slightly raised, reddened, darker patch of mucosa with an irregular
    /// boundary.
    RaisedRedPatch,
    /// Dark red pooled blood, glossy, irregular, with run-off streaks.
    Bleeding,
}

/// Ground truth for one frame.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FrameTruth {
    /// True when at least one lesion pixel is visible (`mask_pixels > 0`).
    pub anomalous: bool,
    /// Kinds of the lesions visible in this frame (each at most once,
    /// `RaisedRedPatch` before `Bleeding`); empty when not anomalous.
    pub lesions: Vec<LesionKind>,
    /// Number of mask cells set to 255.
    pub mask_pixels: u64,
}

/// Output planes of one frame (`I422_10LE` layout: 10-bit values in the low
/// bits of `u16`).
#[derive(Debug)]
pub struct FramePlanes<'a> {
    /// Luma: `height` rows of `width` samples, rows `y_stride` samples apart.
    pub y: &'a mut [u16],
    /// Distance between luma rows, in samples (at least `width`).
    pub y_stride: usize,
    /// Cb: `height` rows of `width / 2` samples, rows `c_stride` apart.
    pub cb: &'a mut [u16],
    /// Cr: same layout as `cb`.
    pub cr: &'a mut [u16],
    /// Distance between chroma rows, in samples (at least `width / 2`).
    pub c_stride: usize,
    /// Lesion mask, `mask_width() * mask_height()` bytes, row-major,
    /// 255 = lesion, 0 = not.
    pub mask: &'a mut [u8],
}

/// Owned, tightly packed buffers for one frame of a scene (a convenience for
/// callers that do not bring their own planes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameBuffers {
    /// Frame width in pixels.
    pub width: u32,
    /// Frame height in pixels.
    pub height: u32,
    /// Luma, `width * height` samples.
    pub y: Vec<u16>,
    /// Cb, `width / 2 * height` samples.
    pub cb: Vec<u16>,
    /// Cr, `width / 2 * height` samples.
    pub cr: Vec<u16>,
    /// Mask, `mask_width * mask_height` bytes.
    pub mask: Vec<u8>,
}

impl FrameBuffers {
    /// Zeroed buffers sized for `scene`.
    pub fn new(scene: &EndoscopeScene) -> Self {
        let w = scene.cfg.width as usize;
        let h = scene.cfg.height as usize;
        let m = scene.mask_width() as usize * scene.mask_height() as usize;
        Self {
            width: scene.cfg.width,
            height: scene.cfg.height,
            y: vec![0; w * h],
            cb: vec![0; w / 2 * h],
            cr: vec![0; w / 2 * h],
            mask: vec![0; m],
        }
    }

    /// Borrow the buffers as [`FramePlanes`] for [`EndoscopeScene::render`].
    pub fn planes(&mut self) -> FramePlanes<'_> {
        let w = self.width as usize;
        FramePlanes {
            y: &mut self.y,
            y_stride: w,
            cb: &mut self.cb,
            cr: &mut self.cr,
            c_stride: w / 2,
            mask: &mut self.mask,
        }
    }
}

/// A scene, built once (world textures are precomputed in [`Self::new`]),
/// then rendered frame by frame; `Sync`, so frames may be rendered from
/// several threads at once.
pub struct EndoscopeScene {
    cfg: SceneConfig,
    /// Image-circle radius in pixels.
    radius_px: f64,
    base: Grid<BaseTexel>,
    base_density: f64,
    vessels: Grid<[u8; 2]>,
    /// One byte per `OCC x OCC` block of the vessel map: 0 when a bilinear
    /// sample anywhere in the block reads only empty texels.
    vessel_occ: Grid<u8>,
    vessel_density: f64,
    tile: Grid<[i16; 4]>,
    /// Dequantisation factors of the tile channels.
    tile_scale: [f32; 4],
    tile_mask: i32,
    tile_density: f64,
    sprites: Vec<Sprite>,
    cam_phase: [f64; 8],
}

impl fmt::Debug for EndoscopeScene {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EndoscopeScene")
            .field("cfg", &self.cfg)
            .field("radius_px", &self.radius_px)
            .field("base", &(self.base.w, self.base.h))
            .field("vessels", &(self.vessels.w, self.vessels.h))
            .field("vessel_occ", &(self.vessel_occ.w, self.vessel_occ.h))
            .field("tile", &(self.tile.w, self.tile.h))
            .field("sprites", &self.sprites.len())
            .finish_non_exhaustive()
    }
}

impl EndoscopeScene {
    /// Mask downscale factor: the mask is `ceil(w / 4) x ceil(h / 4)`.
    pub const MASK_SCALE: u32 = 4;

    /// Smallest accepted width and height.
    pub const MIN_DIM: u32 = 64;

    /// Largest accepted width and height.
    pub const MAX_DIM: u32 = 16384;

    /// Validate `cfg` and build the world (takes a few seconds at 8K).
    ///
    /// Accepted: `width` even and in `64..=16384`, `height` in `64..=16384`,
    /// `frames >= 1`, any seed.
    pub fn new(cfg: SceneConfig) -> Result<Self, SceneError> {
        let SceneConfig {
            width,
            height,
            frames,
            ..
        } = cfg;
        if !(Self::MIN_DIM..=Self::MAX_DIM).contains(&width) {
            return Err(SceneError(format!(
                "width {width} outside {}..={}",
                Self::MIN_DIM,
                Self::MAX_DIM
            )));
        }
        if width % 2 != 0 {
            return Err(SceneError(format!("width {width} must be even (4:2:2)")));
        }
        if !(Self::MIN_DIM..=Self::MAX_DIM).contains(&height) {
            return Err(SceneError(format!(
                "height {height} outside {}..={}",
                Self::MIN_DIM,
                Self::MAX_DIM
            )));
        }
        if frames == 0 {
            return Err(SceneError("frames must be at least 1".into()));
        }

        let radius_px = f64::from(FOV_FRAC) * f64::from(width.min(height));
        let span = 2.0 * WORLD_HALF;
        // Vessel map: about one texel per output pixel, capped at 8192^2.
        let vessel_density = radius_px.clamp(16.0, 8190.0 / span);
        let vessel_side = (span * vessel_density).ceil() as usize + 2;
        // Base texture: a quarter of that.
        let base_density = vessel_density / 4.0;
        let base_side = (span * base_density).ceil() as usize + 2;
        // Detail tile: power of two, about one texel per pixel.
        let tile_side = ((f64::from(TILE_PERIOD) * radius_px).ceil() as usize)
            .next_power_of_two()
            .clamp(64, 2048);
        let tile_density = tile_side as f64 / f64::from(TILE_PERIOD);
        // Lesion sprites: about half the pixel density.
        let sprite_side =
            ((f64::from(SPRITE_SPAN) * radius_px * 0.5).round() as usize).clamp(48, 768);

        let s = cfg.seed;
        let seed_base = (mix64(s ^ 0xba5e_0001) >> 32) as u32;
        let seed_tile = (mix64(s ^ 0x711e_0002) >> 32) as u32;
        let seed_sprite = mix64(s ^ 0x5b71_0003);
        let seed_vessel = mix64(s ^ 0x7e55_0004);
        let mut cam_phase = [0.0; 8];
        let mut rng = Rng(mix64(s ^ 0xca3e_0005));
        for p in &mut cam_phase {
            *p = rng.range(0.0, std::f64::consts::TAU);
        }

        let ((base, vessels), (tile, sprites)) = rayon::join(
            || {
                rayon::join(
                    || gen_base(seed_base, base_side, base_density),
                    || {
                        let segs = gen_vessels(seed_vessel);
                        raster_vessels(&segs, vessel_side, vessel_density)
                    },
                )
            },
            || {
                rayon::join(
                    || gen_tile(seed_tile, tile_side),
                    || gen_sprites(seed_sprite, sprite_side),
                )
            },
        );

        Ok(Self {
            cfg,
            radius_px,
            base,
            base_density,
            vessel_occ: occupancy(&vessels),
            vessels,
            vessel_density,
            tile: tile.0,
            tile_scale: tile.1,
            tile_mask: tile_side as i32 - 1,
            tile_density,
            sprites,
            cam_phase,
        })
    }

    /// The configuration this scene was built from.
    pub fn config(&self) -> SceneConfig {
        self.cfg
    }

    /// Mask width: `ceil(width / MASK_SCALE)`.
    pub fn mask_width(&self) -> u32 {
        self.cfg.width.div_ceil(Self::MASK_SCALE)
    }

    /// Mask height: `ceil(height / MASK_SCALE)`.
    pub fn mask_height(&self) -> u32 {
        self.cfg.height.div_ceil(Self::MASK_SCALE)
    }

    /// Render frame `index` into `out` and return its ground truth.
    ///
    /// A pure function of (config, index): the same planes and mask whatever
    /// the rayon thread count. Errors when `index >= frames`, when a stride
    /// is smaller than its row, or when a plane slice is too short.
    pub fn render(&self, index: u32, out: &mut FramePlanes<'_>) -> Result<FrameTruth, SceneError> {
        if index >= self.cfg.frames {
            return Err(SceneError(format!(
                "frame index {index} out of range (clip has {} frames)",
                self.cfg.frames
            )));
        }
        let w = self.cfg.width as usize;
        let h = self.cfg.height as usize;
        let cw = w / 2;
        let y_need = plane_len("y", out.y_stride, w, h, out.y.len())?;
        let c_need = plane_len("cb", out.c_stride, cw, h, out.cb.len())?;
        plane_len("cr", out.c_stride, cw, h, out.cr.len())?;
        let mw = self.mask_width() as usize;
        let mh = self.mask_height() as usize;
        let m_need = mw * mh;
        if out.mask.len() < m_need {
            return Err(SceneError(format!(
                "mask plane has {} bytes, needs {m_need}",
                out.mask.len()
            )));
        }

        let fc = self.frame_ctx(index);
        let ys = out.y_stride;
        let cs = out.c_stride;
        let band = Self::MASK_SCALE as usize;
        let (count, bits) = out.y[..y_need]
            .par_chunks_mut(band * ys)
            .zip(out.cb[..c_need].par_chunks_mut(band * cs))
            .zip(out.cr[..c_need].par_chunks_mut(band * cs))
            .zip(out.mask[..m_need].par_chunks_mut(mw))
            .enumerate()
            .map_init(
                || RowBuf::new(w),
                |buf, (b, (((yb, cbb), crb), mb))| {
                    self.render_band(
                        &fc,
                        buf,
                        BandOut {
                            first_row: b * band,
                            y: yb,
                            cb: cbb,
                            cr: crb,
                            mask: mb,
                            y_stride: ys,
                            c_stride: cs,
                        },
                    )
                },
            )
            .reduce(|| (0u64, 0u8), |a, b| (a.0 + b.0, a.1 | b.1));

        let mut lesions = Vec::new();
        if bits & LES_RAISED != 0 {
            lesions.push(LesionKind::RaisedRedPatch);
        }
        if bits & LES_BLEED != 0 {
            lesions.push(LesionKind::Bleeding);
        }
        Ok(FrameTruth {
            anomalous: count > 0,
            lesions,
            mask_pixels: count,
        })
    }

    /// Lesion kinds scheduled for frame `index` (placed in the world for that
    /// frame), without rendering. Placement keeps them in view, so this
    /// normally equals [`FrameTruth::lesions`]; the rendered mask is the
    /// authority. Empty for indices outside the clip.
    pub fn scheduled_lesions(&self, index: u32) -> Vec<LesionKind> {
        let mut v = Vec::new();
        if index >= self.cfg.frames {
            return v;
        }
        if let Some(ep) = self.episode_at(index) {
            if ep.kinds & LES_RAISED != 0 {
                v.push(LesionKind::RaisedRedPatch);
            }
            if ep.kinds & LES_BLEED != 0 {
                v.push(LesionKind::Bleeding);
            }
        }
        v
    }
}

/// Required length of a plane, or why the given one does not fit.
fn plane_len(
    name: &str,
    stride: usize,
    row: usize,
    rows: usize,
    have: usize,
) -> Result<usize, SceneError> {
    if stride < row {
        return Err(SceneError(format!(
            "{name} stride {stride} smaller than row of {row} samples"
        )));
    }
    let need = stride
        .checked_mul(rows - 1)
        .and_then(|v| v.checked_add(row))
        .ok_or_else(|| SceneError(format!("{name} stride {stride} overflows")))?;
    if have < need {
        return Err(SceneError(format!(
            "{name} plane has {have} samples, needs {need}"
        )));
    }
    Ok(need)
}

// ---------------------------------------------------------------------------
// Constants
// ---------------------------------------------------------------------------

/// Image-circle radius as a fraction of `min(width, height)`.
const FOV_FRAC: f32 = 0.52;
/// Half-width of the soft circle edge, in circle radii.
const EDGE: f32 = 0.012;
const R_OUT: f32 = 1.0 + EDGE;
/// The world spans `[-WORLD_HALF, WORLD_HALF]^2` (1 unit = circle radius at zoom 1).
const WORLD_HALF: f64 = 1.6;
/// Scope-tip height over the tissue, in circle radii (a wide-angle lens).
const CAM_H: f32 = 0.6;
/// Camera drift amplitude in world units.
const DRIFT: f64 = 0.33;
/// Period of the fine-detail tile, in world units.
const TILE_PERIOD: f32 = 0.4;
/// Second detail layer: period ratio and rotation.
const TILE2_RATIO: f64 = 2.63;
const TILE2_ANGLE: f64 = 0.0;
/// Added to tile coordinates so they are positive (a multiple of any tile size).
const TILE_SHIFT: f32 = 16384.0;
/// World span of a lesion sprite at scale 1.
const SPRITE_SPAN: f32 = 0.8;
/// Number of sprites of each kind.
const SPRITES_PER_KIND: usize = 3;
/// Episodes: one per block of frames (most blocks).
const EPISODE_BLOCK: u32 = 36;

const LES_RAISED: u8 = 1;
const LES_BLEED: u8 = 2;

/// Fine-relief slope gains of the two detail layers.
const DETAIL1: f32 = 0.55;
const DETAIL2: f32 = 0.45;
/// Raised patch: height and softness of its profile (field units).
const RAISED_H: f32 = 0.014;
const RAISED_T0: f32 = 0.12;
/// Blood: meniscus height, softness, thickness scale.
const BLOOD_H: f32 = 0.02;
const BLOOD_T0: f32 = 0.3;
const BLOOD_THICK: f32 = 2.5;
/// Overall exposure.
const EXPOSURE: f32 = 1.0;
/// Sensor noise (10-bit LSB, triangular-ish): luma sigma at black and the
/// extra at white; chroma sigma.
const NOISE_Y0: f32 = 1.3;
const NOISE_Y1: f32 = 0.7;
const NOISE_C: f32 = 0.9;
/// Black pedestal in 10-bit LSB above code 64 (keeps the noise symmetric).
const BLACK_PED: f32 = 1.0;

// ---------------------------------------------------------------------------
// Hashing and noise
// ---------------------------------------------------------------------------

#[inline]
fn hash32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

#[inline]
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[inline]
fn lattice(ix: i32, iy: i32, seed: u32) -> u32 {
    hash32(
        (ix as u32)
            .wrapping_mul(0x9e37_79b1)
            .wrapping_add((iy as u32).wrapping_mul(0x85eb_ca77))
            .wrapping_add(seed.wrapping_mul(0xc2b2_ae3d)),
    )
}

const S2: f32 = std::f32::consts::FRAC_1_SQRT_2;

/// 16 unit gradient directions.
const GRADS: [(f32, f32); 16] = [
    (1.0, 0.0),
    (0.92388, 0.38268),
    (S2, S2),
    (0.38268, 0.92388),
    (0.0, 1.0),
    (-0.38268, 0.92388),
    (-S2, S2),
    (-0.92388, 0.38268),
    (-1.0, 0.0),
    (-0.92388, -0.38268),
    (-S2, -S2),
    (-0.38268, -0.92388),
    (0.0, -1.0),
    (0.38268, -0.92388),
    (S2, -S2),
    (0.92388, -0.38268),
];

#[inline]
fn gdot(h: u32, x: f32, y: f32) -> f32 {
    let g = GRADS[(h >> 28) as usize];
    g.0 * x + g.1 * y
}

/// Floor as an integer (no libm call), for `|x| < 2^30`.
#[inline]
fn ifloor(x: f32) -> i32 {
    let i = x as i32;
    if (i as f32) > x { i - 1 } else { i }
}

#[inline]
fn fade(t: f32) -> f32 {
    t * t * t * (t * (t * 6.0 - 15.0) + 10.0)
}

/// Gradient noise, roughly in `[-1, 1]`.
#[inline]
fn gnoise(x: f32, y: f32, seed: u32) -> f32 {
    let ix = ifloor(x);
    let iy = ifloor(y);
    let fx = x - ix as f32;
    let fy = y - iy as f32;
    let ix1 = ix.wrapping_add(1);
    let iy1 = iy.wrapping_add(1);
    gnoise_corners(
        [
            lattice(ix, iy, seed),
            lattice(ix1, iy, seed),
            lattice(ix, iy1, seed),
            lattice(ix1, iy1, seed),
        ],
        fx,
        fy,
    )
}

/// Gradient noise with period `p` lattice cells in x and y.
#[inline]
fn gnoise_p(x: f32, y: f32, p: i32, seed: u32) -> f32 {
    let xf = ifloor(x);
    let yf = ifloor(y);
    let ix = xf.rem_euclid(p);
    let iy = yf.rem_euclid(p);
    let fx = x - xf as f32;
    let fy = y - yf as f32;
    let ix1 = (ix + 1) % p;
    let iy1 = (iy + 1) % p;
    gnoise_corners(
        [
            lattice(ix, iy, seed),
            lattice(ix1, iy, seed),
            lattice(ix, iy1, seed),
            lattice(ix1, iy1, seed),
        ],
        fx,
        fy,
    )
}

#[inline]
fn gnoise_corners(h: [u32; 4], fx: f32, fy: f32) -> f32 {
    let n00 = gdot(h[0], fx, fy);
    let n10 = gdot(h[1], fx - 1.0, fy);
    let n01 = gdot(h[2], fx, fy - 1.0);
    let n11 = gdot(h[3], fx - 1.0, fy - 1.0);
    let ux = fade(fx);
    let uy = fade(fy);
    let a = n00 + ux * (n10 - n00);
    let b = n01 + ux * (n11 - n01);
    (a + uy * (b - a)) * 1.41
}

/// Fractal sum of `oct` octaves of gradient noise (rotated between octaves),
/// normalised to roughly `[-1, 1]` (standard deviation about 0.3).
fn fbm(mut x: f32, mut y: f32, oct: u32, seed: u32) -> f32 {
    let mut sum = 0.0;
    let mut amp = 1.0;
    let mut norm = 0.0;
    for i in 0..oct {
        sum += amp * gnoise(x, y, seed.wrapping_add(i.wrapping_mul(1013)));
        norm += amp;
        let nx = 1.6 * x - 1.2 * y + 17.3;
        let ny = 1.2 * x + 1.6 * y - 9.1;
        x = nx;
        y = ny;
        amp *= 0.5;
    }
    sum / norm
}

/// Periodic cellular noise: distances to the nearest and second nearest
/// feature points, in cell units, for a tile of `n x n` cells.
fn worley_p(x: f32, y: f32, n: i32, seed: u32) -> (f32, f32) {
    let ix = ifloor(x);
    let iy = ifloor(y);
    let mut f1 = 9.0f32;
    let mut f2 = 9.0f32;
    for dy in -1..=1 {
        for dx in -1..=1 {
            let cx = ix + dx;
            let cy = iy + dy;
            let h = lattice(cx.rem_euclid(n), cy.rem_euclid(n), seed);
            let px = cx as f32 + 0.1 + 0.8 * ((h & 0xffff) as f32 / 65536.0);
            let py = cy as f32 + 0.1 + 0.8 * ((h >> 16) as f32 / 65536.0);
            let d = ((px - x) * (px - x) + (py - y) * (py - y)).sqrt();
            if d < f1 {
                f2 = f1;
                f1 = d;
            } else if d < f2 {
                f2 = d;
            }
        }
    }
    (f1, f2)
}

#[inline]
fn smoothstep(e0: f32, e1: f32, x: f32) -> f32 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

#[inline]
fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

/// Sequential generator for building the world (never used per pixel).
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.0)
    }
    /// Uniform in `[0, 1)`.
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / 9_007_199_254_740_992.0)
    }
    fn range(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.unit()
    }
    /// Roughly normal (sum of three uniforms), unit variance.
    fn normal(&mut self) -> f64 {
        (self.unit() + self.unit() + self.unit() - 1.5) * 2.0
    }
}

// ---------------------------------------------------------------------------
// World textures
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Grid<T> {
    w: usize,
    h: usize,
    data: Vec<T>,
}

#[derive(Debug, Clone, Copy, Default)]
struct BaseTexel {
    r: f32,
    g: f32,
    b: f32,
    gx: f32,
    gy: f32,
    ill: f32,
    wet: f32,
    h: f32,
}

/// Base texture: albedo, fold slopes, illumination (distance), wetness.
fn gen_base(seed: u32, side: usize, density: f64) -> Grid<BaseTexel> {
    let mut data = vec![BaseTexel::default(); side * side];
    data.par_chunks_mut(side).enumerate().for_each(|(j, row)| {
        let v = ((j as f64 + 0.5) / density - WORLD_HALF) as f32;
        for (i, t) in row.iter_mut().enumerate() {
            let u = ((i as f64 + 0.5) / density - WORLD_HALF) as f32;
            *t = base_fields(u, v, seed);
        }
    });
    // Slopes of the height field (world units).
    let hs: Vec<f32> = data.iter().map(|t| t.h).collect();
    let k = (density * 0.5) as f32;
    data.par_chunks_mut(side).enumerate().for_each(|(j, row)| {
        let jm = j.saturating_sub(1);
        let jp = (j + 1).min(side - 1);
        let dj = (jp - jm).max(1) as f32;
        for (i, t) in row.iter_mut().enumerate() {
            let im = i.saturating_sub(1);
            let ip = (i + 1).min(side - 1);
            let di = (ip - im).max(1) as f32;
            t.gx = (hs[j * side + ip] - hs[j * side + im]) * k * 2.0 / di;
            t.gy = (hs[jp * side + i] - hs[jm * side + i]) * k * 2.0 / dj;
        }
    });
    Grid {
        w: side,
        h: side,
        data,
    }
}

fn base_fields(u: f32, v: f32, seed: u32) -> BaseTexel {
    // Domain warp for organic, meandering folds.
    let wx = fbm(u * 0.9, v * 0.9, 3, seed.wrapping_add(1));
    let wy = fbm(u * 0.9 + 5.2, v * 0.9 + 1.3, 3, seed.wrapping_add(2));
    let qx = u + 0.32 * wx;
    let qy = v + 0.32 * wy;
    // Ridged noise, stretched: rugae-like folds running mostly along x.
    let n1 = gnoise(qx * 1.5, qy * 3.0, seed.wrapping_add(3));
    let r1 = smoothstep(0.0, 1.0, 1.0 - n1.abs() / 0.8);
    let n2 = gnoise(qx * 3.3 + 3.1, qy * 5.6, seed.wrapping_add(4));
    let r2 = smoothstep(0.0, 1.0, 1.0 - n2.abs() / 0.7);
    let und = fbm(u * 1.3, v * 1.3, 3, seed.wrapping_add(5));
    let h = 0.06 * r1 + 0.02 * r2 + 0.04 * und;

    // Far-away regions (towards a lumen) are darker.
    let dn = fbm(u * 0.55 + 11.0, v * 0.55 - 7.0, 2, seed.wrapping_add(6));
    let depth = 0.9 * smoothstep(0.1, 0.5, dn);
    let dist = (CAM_H + depth - 1.3 * h).max(0.25);
    let ill = (CAM_H / dist).powi(2).clamp(0.15, 2.2);

    // Colour: pale pink <-> deep red, with a little yellowish variation.
    let red = (0.5 + 0.9 * fbm(u * 2.2 + 3.3, v * 2.2, 3, seed.wrapping_add(7))).clamp(0.0, 1.0);
    let yel = fbm(u * 4.0, v * 4.0 + 8.8, 2, seed.wrapping_add(8));
    let crev = 1.0 - 0.6 * (r1 - 0.3).max(0.0); // valleys a little redder
    let mut r = lerp(0.82, 0.68, red);
    let mut g = lerp(0.30, 0.14, red) * (1.0 + 0.12 * yel);
    let mut b = lerp(0.25, 0.12, red) * (1.0 - 0.10 * yel);
    g *= lerp(0.85, 1.0, crev);
    b *= lerp(0.85, 1.0, crev);
    r *= 0.96 + 0.04 * crev;
    let wet = (0.75 + 0.5 * fbm(u * 2.7 - 4.0, v * 2.7, 2, seed.wrapping_add(9))).clamp(0.3, 1.0);
    BaseTexel {
        r,
        g,
        b,
        gx: 0.0,
        gy: 0.0,
        ill,
        wet,
        h,
    }
}

/// Periodic fine-detail tile: `[slope x, slope y, brightness, capillary]`,
/// quantised to `i16` (half the memory traffic of `f32` in the render loop),
/// with the per-channel dequantisation factors.
fn gen_tile(seed: u32, t: usize) -> (Grid<[i16; 4]>, [f32; 4]) {
    let tf = t as f32;
    let mut hs = vec![0.0f32; t * t];
    let mut data = vec![[0.0f32; 4]; t * t];
    hs.par_chunks_mut(t)
        .zip(data.par_chunks_mut(t))
        .enumerate()
        .for_each(|(j, (hrow, drow))| {
            let y = (j as f32 + 0.5) / tf;
            for (i, (hv, d)) in hrow.iter_mut().zip(drow.iter_mut()).enumerate() {
                let x = (i as f32 + 0.5) / tf;
                // Micro-relief: octaves of periodic noise, only those the
                // tile resolution can carry.
                let mut h = 0.0;
                let mut f = 8;
                let mut k = 0u32;
                while f <= 256 && (f as usize) * 4 <= t {
                    let ff = f as f32;
                    h += 0.055 / ff * gnoise_p(x * ff, y * ff, f, seed.wrapping_add(k));
                    f *= 2;
                    k += 1;
                }
                // Crypt / areae pattern: small domes between a capillary mesh.
                let n = 28;
                let nf = n as f32;
                // Warp the cell lattice so the crypts are irregular.
                let wx = 0.35 * gnoise_p(x * 56.0, y * 56.0, 56, seed.wrapping_add(40));
                let wy = 0.35 * gnoise_p(x * 56.0 + 0.5, y * 56.0, 56, seed.wrapping_add(41));
                let (f1, f2) = worley_p(x * nf + wx, y * nf + wy, n, seed.wrapping_add(50));
                let dome = (1.0 - f1 * 1.4).max(0.0);
                h += 0.0035 * dome * dome;
                let patchy = smoothstep(
                    -0.45,
                    0.6,
                    gnoise_p(x * 4.0, y * 4.0, 4, seed.wrapping_add(60)),
                );
                let lw = 0.05
                    + 0.05 * (0.5 + 0.5 * gnoise_p(x * 24.0, y * 24.0, 24, seed.wrapping_add(61)));
                let cap = (1.0 - smoothstep(0.0, lw, f2 - f1)) * (0.15 + 0.6 * patchy);
                let bright = 0.6 * gnoise_p(x * 16.0, y * 16.0, 16, seed.wrapping_add(70))
                    + 0.4 * gnoise_p(x * 48.0, y * 48.0, 48, seed.wrapping_add(71))
                    - 0.5 * dome * dome
                    + 0.25;
                *hv = h;
                d[2] = bright;
                d[3] = cap;
            }
        });
    let mask = t - 1;
    data.par_chunks_mut(t).enumerate().for_each(|(j, row)| {
        let jm = (j + mask) & mask;
        let jp = (j + 1) & mask;
        for (i, d) in row.iter_mut().enumerate() {
            let im = (i + mask) & mask;
            let ip = (i + 1) & mask;
            d[0] = (hs[j * t + ip] - hs[j * t + im]) * tf * 0.5;
            d[1] = (hs[jp * t + i] - hs[jm * t + i]) * tf * 0.5;
        }
    });
    let mut peak = [1e-6f32; 4];
    for d in &data {
        for (p, v) in peak.iter_mut().zip(d.iter()) {
            *p = p.max(v.abs());
        }
    }
    let q = peak.map(|p| 32000.0 / p);
    let qdata = data
        .par_iter()
        .map(|d| {
            [
                (d[0] * q[0]).round() as i16,
                (d[1] * q[1]).round() as i16,
                (d[2] * q[2]).round() as i16,
                (d[3] * q[3]).round() as i16,
            ]
        })
        .collect();
    (
        Grid {
            w: t,
            h: t,
            data: qdata,
        },
        peak.map(|p| p / 32000.0),
    )
}

/// A vessel piece: a capsule with linearly varying half-width (world units).
#[derive(Debug, Clone, Copy)]
struct Seg {
    ax: f32,
    ay: f32,
    bx: f32,
    by: f32,
    wa: f32,
    wb: f32,
    deep: f32,
    strength: f32,
}

const VESSEL_HW_MIN: f64 = 0.0007;
const VESSEL_MAX_SEGS: usize = 250_000;

/// Branching vessel trees: random walks whose width tapers, with side
/// branches and end bifurcations of decreasing width.
fn gen_vessels(seed: u64) -> Vec<Seg> {
    struct Branch {
        x: f64,
        y: f64,
        dir: f64,
        hw: f64,
        strength: f64,
    }
    let mut rng = Rng(seed);
    let mut stack = Vec::new();
    let roots = 22;
    for _ in 0..roots {
        stack.push(Branch {
            x: rng.range(-WORLD_HALF, WORLD_HALF),
            y: rng.range(-WORLD_HALF, WORLD_HALF),
            dir: rng.range(0.0, std::f64::consts::TAU),
            hw: rng.range(0.005, 0.014),
            strength: rng.range(0.7, 1.0),
        });
    }
    // A few isolated superficial capillary trees.
    for _ in 0..70 {
        stack.push(Branch {
            x: rng.range(-WORLD_HALF, WORLD_HALF),
            y: rng.range(-WORLD_HALF, WORLD_HALF),
            dir: rng.range(0.0, std::f64::consts::TAU),
            hw: rng.range(0.0012, 0.0025),
            strength: rng.range(0.6, 1.0),
        });
    }
    let mut segs = Vec::new();
    let lim = WORLD_HALF + 0.1;
    while let Some(b) = stack.pop() {
        if segs.len() >= VESSEL_MAX_SEGS {
            break;
        }
        let len_total = b.hw * rng.range(70.0, 120.0);
        let step = (b.hw * 2.2).clamp(0.0018, 0.016);
        let nsteps = ((len_total / step).ceil() as usize).clamp(2, 2000);
        let taper = 0.7f64.powf(1.0 / nsteps as f64);
        // Vessels that do not split at their end fade out over their last part.
        let bifurcate = b.hw * 0.7 * 0.72 >= VESSEL_HW_MIN && rng.unit() < 0.55;
        let fade_from = if bifurcate { nsteps } else { nsteps * 3 / 4 };
        let dir0 = b.dir;
        let (mut x, mut y, mut dir, mut hw) = (b.x, b.y, b.dir, b.hw);
        let mut turn = 0.0;
        let wiggle = 0.06 * (step / 0.006).sqrt().min(1.5);
        let deep = |hw: f64| smoothstep(0.0012, 0.005, hw as f32);
        let fseed = (seed >> 32) as u32;
        for k in 0..nsteps {
            turn = 0.6 * turn + wiggle * rng.normal();
            dir += turn + 0.04 * (dir0 - dir);
            let nx = x + step * dir.cos();
            let ny = y + step * dir.sin();
            let mut nhw = hw * taper;
            let mut fade = 1.0;
            if k >= fade_from {
                let t = (nsteps - k) as f64 / (nsteps - fade_from).max(1) as f64;
                fade = t;
                nhw *= 0.93;
            }
            // Vessels dip in and out of the mucosa.
            let dip = 0.8 + 0.3 * gnoise(x as f32 * 7.0, y as f32 * 7.0, fseed);
            segs.push(Seg {
                ax: x as f32,
                ay: y as f32,
                bx: nx as f32,
                by: ny as f32,
                wa: hw as f32,
                wb: nhw as f32,
                deep: deep(hw),
                strength: (b.strength * fade) as f32 * dip.clamp(0.2, 1.0),
            });
            if rng.unit() < step / (b.hw * 42.0) {
                let chw = hw * rng.range(0.45, 0.7);
                if chw >= VESSEL_HW_MIN {
                    let side = if rng.unit() < 0.5 { -1.0 } else { 1.0 };
                    stack.push(Branch {
                        x: nx,
                        y: ny,
                        dir: dir + side * rng.range(0.5, 1.3),
                        hw: chw,
                        strength: (b.strength * rng.range(0.85, 1.05)).min(1.0),
                    });
                }
            }
            x = nx;
            y = ny;
            hw = nhw;
            if x.abs() > lim || y.abs() > lim {
                break;
            }
        }
        if bifurcate && x.abs() < lim && y.abs() < lim {
            for side in [-1.0, 1.0] {
                stack.push(Branch {
                    x,
                    y,
                    dir: dir + side * rng.range(0.25, 0.6),
                    hw: hw * rng.range(0.6, 0.8),
                    strength: b.strength,
                });
            }
        }
    }
    segs
}

/// Draw vessel segments into a `side x side` map of `[superficial, deep]`
/// densities (max-blended, so the result does not depend on order).
fn raster_vessels(segs: &[Seg], side: usize, density: f64) -> Grid<[u8; 2]> {
    const BAND: usize = 32;
    let nb = side.div_ceil(BAND);
    let off = (WORLD_HALF * density - 0.5) as f32;
    let d = density as f32;
    let mut bins: Vec<Vec<u32>> = vec![Vec::new(); nb];
    for (k, s) in segs.iter().enumerate() {
        let m = s.wa.max(s.wb) * d * 1.6 + 2.5;
        let y0 = s.ay.min(s.by) * d + off - m;
        let y1 = s.ay.max(s.by) * d + off + m;
        if y1 < 0.0 || y0 > side as f32 {
            continue;
        }
        let b0 = (y0.max(0.0) as usize / BAND).min(nb - 1);
        let b1 = (y1.max(0.0) as usize / BAND).min(nb - 1);
        for bin in &mut bins[b0..=b1] {
            bin.push(k as u32);
        }
    }
    let mut data = vec![[0u8; 2]; side * side];
    data.par_chunks_mut(BAND * side)
        .zip(bins.par_iter())
        .enumerate()
        .for_each(|(b, (chunk, bin))| {
            let row0 = b * BAND;
            let rows = chunk.len() / side;
            for &k in bin {
                if let Some(s) = segs.get(k as usize) {
                    draw_seg(s, chunk, side, row0, rows, d, off);
                }
            }
        });
    Grid {
        w: side,
        h: side,
        data,
    }
}

/// Log2 of the vessel occupancy block size.
const OCC_SHIFT: usize = 4;

/// Block occupancy of the vessel map, dilated by one block towards `-x` and
/// `-y` (a bilinear sample at texel `(i, j)` also reads `(i + 1, j + 1)`).
fn occupancy(v: &Grid<[u8; 2]>) -> Grid<u8> {
    let b = 1usize << OCC_SHIFT;
    let ow = v.w.div_ceil(b);
    let oh = v.h.div_ceil(b);
    let mut raw = vec![0u8; ow * oh];
    raw.par_chunks_mut(ow).enumerate().for_each(|(by, orow)| {
        for y in by * b..((by + 1) * b).min(v.h) {
            let Some(row) = v.data.get(y * v.w..(y + 1) * v.w) else {
                continue;
            };
            for (bx, chunk) in row.chunks(b).enumerate() {
                if chunk.iter().any(|t| (t[0] | t[1]) != 0)
                    && let Some(o) = orow.get_mut(bx)
                {
                    *o = 1;
                }
            }
        }
    });
    let get = |x: usize, y: usize| raw.get(y * ow + x).copied().unwrap_or(0);
    let mut data = vec![0u8; ow * oh];
    for y in 0..oh {
        for x in 0..ow {
            data[y * ow + x] = get(x, y) | get(x + 1, y) | get(x, y + 1) | get(x + 1, y + 1);
        }
    }
    Grid { w: ow, h: oh, data }
}

fn draw_seg(
    s: &Seg,
    chunk: &mut [[u8; 2]],
    side: usize,
    row0: usize,
    rows: usize,
    d: f32,
    off: f32,
) {
    let ax = s.ax * d + off;
    let ay = s.ay * d + off;
    let bx = s.bx * d + off;
    let by = s.by * d + off;
    let wa = s.wa * d;
    let wb = s.wb * d;
    let wmax = wa.max(wb);
    // Deep vessels are blurred by the overlying mucosa.
    let blur = 0.6 + s.deep * 1.1 * wmax;
    let m = wmax + blur + 1.0;
    let x0 = (ax.min(bx) - m).floor().max(0.0) as usize;
    let x1 = ((ax.max(bx) + m).ceil().max(0.0) as usize).min(side - 1);
    let ylo = ((ay.min(by) - m).floor().max(0.0) as usize).max(row0);
    let yhi = ((ay.max(by) + m).ceil().max(0.0) as usize).min(row0 + rows - 1);
    if x0 > x1 || ylo > yhi {
        return;
    }
    let ex = bx - ax;
    let ey = by - ay;
    let l2 = (ex * ex + ey * ey).max(1e-12);
    let strength = s.strength * (1.0 - 0.1 * s.deep);
    for j in ylo..=yhi {
        let py = j as f32 - ay;
        let base = (j - row0) * side;
        for i in x0..=x1 {
            let px = i as f32 - ax;
            let t = ((px * ex + py * ey) / l2).clamp(0.0, 1.0);
            let dx = px - t * ex;
            let dy = py - t * ey;
            let dist = (dx * dx + dy * dy).sqrt();
            let hw = wa + (wb - wa) * t;
            let c = ((hw + blur - dist) / (2.0 * blur)).clamp(0.0, 1.0);
            if c <= 0.0 {
                continue;
            }
            let c = c * c * (3.0 - 2.0 * c);
            let rr = dist / (hw + blur);
            let core = 1.0 - 0.3 * rr * rr;
            let thin = (0.2 + 1.6 * hw).min(1.0);
            let val = (c * core * thin * strength).clamp(0.0, 1.0);
            let sup = (val * (1.0 - s.deep) * 255.0 + 0.5) as u8;
            let dp = (val * s.deep * 255.0 + 0.5) as u8;
            if let Some(px) = chunk.get_mut(base + i) {
                px[0] = px[0].max(sup);
                px[1] = px[1].max(dp);
            }
        }
    }
}

/// A lesion sprite: `[field, d field / dx, d field / dy, texture]` on a
/// `size x size` grid spanning `SPRITE_SPAN` world units at scale 1. The
/// lesion is where `field > threshold`.
#[derive(Debug, Clone)]
struct Sprite {
    size: usize,
    data: Vec<[f32; 4]>,
}

impl Sprite {
    #[inline]
    fn sample(&self, x: f32, y: f32) -> [f32; 4] {
        let ix = x as usize;
        let iy = y as usize;
        let fx = x - ix as f32;
        let fy = y - iy as f32;
        let i = iy * self.size + ix;
        let n = self.size;
        match (
            self.data.get(i),
            self.data.get(i + 1),
            self.data.get(i + n),
            self.data.get(i + n + 1),
        ) {
            (Some(a), Some(b), Some(c), Some(d)) => bilerp4(a, b, c, d, fx, fy),
            _ => [-1.0, 0.0, 0.0, 0.0],
        }
    }
}

/// Integer texel and fraction of clamped texture coordinates `(x, y)` on a
/// `w x h` grid (`w, h >= 2`), such that texel `(ix + 1, iy + 1)` exists.
#[inline(always)]
fn texel(x: f32, y: f32, w: usize, h: usize) -> (usize, usize, f32, f32) {
    // `!(x > 0)` also catches NaN.
    let x = if x > 0.0 { x } else { 0.0 };
    let y = if y > 0.0 { y } else { 0.0 };
    let xm = w as f32 - 1.001;
    let ym = h as f32 - 1.001;
    let x = if x < xm { x } else { xm };
    let y = if y < ym { y } else { ym };
    let ix = x as i32;
    let iy = y as i32;
    (ix as usize, iy as usize, x - ix as f32, y - iy as f32)
}

#[inline]
fn bilerp4(a: &[f32; 4], b: &[f32; 4], c: &[f32; 4], d: &[f32; 4], fx: f32, fy: f32) -> [f32; 4] {
    let w00 = (1.0 - fx) * (1.0 - fy);
    let w10 = fx * (1.0 - fy);
    let w01 = (1.0 - fx) * fy;
    let w11 = fx * fy;
    [
        a[0] * w00 + b[0] * w10 + c[0] * w01 + d[0] * w11,
        a[1] * w00 + b[1] * w10 + c[1] * w01 + d[1] * w11,
        a[2] * w00 + b[2] * w10 + c[2] * w01 + d[2] * w11,
        a[3] * w00 + b[3] * w10 + c[3] * w01 + d[3] * w11,
    ]
}

fn gen_sprites(seed: u64, size: usize) -> Vec<Sprite> {
    (0..2 * SPRITES_PER_KIND)
        .into_par_iter()
        .map(|k| {
            let s = mix64(seed ^ (k as u64).wrapping_mul(0x9e37_79b9));
            if k < SPRITES_PER_KIND {
                gen_sprite(size, s, raised_field)
            } else {
                gen_sprite(size, s, bleed_field)
            }
        })
        .collect()
}

fn gen_sprite(size: usize, seed: u64, field: fn(f32, f32, &SpriteParams) -> (f32, f32)) -> Sprite {
    let mut rng = Rng(seed);
    let p = SpriteParams {
        seed: (seed >> 32) as u32,
        aniso: rng.range(1.0, 1.45) as f32,
        aniso_dir: rng.range(0.0, std::f64::consts::PI) as f32,
        streak_dir: rng.range(0.0, std::f64::consts::TAU) as f32,
        streak_len: rng.range(0.16, 0.3) as f32,
        streak2: rng.unit() < 0.6,
        streak2_dir: rng.range(-1.2, 1.2) as f32,
        phase: rng.range(0.0, 6.0) as f32,
    };
    let sf = size as f32;
    let mut data = vec![[0.0f32; 4]; size * size];
    data.par_chunks_mut(size).enumerate().for_each(|(j, row)| {
        let qy = ((j as f32 + 0.5) / sf - 0.5) * SPRITE_SPAN;
        for (i, t) in row.iter_mut().enumerate() {
            let qx = ((i as f32 + 0.5) / sf - 0.5) * SPRITE_SPAN;
            let (f, tex) = field(qx, qy, &p);
            // Force the field negative near the sprite border.
            let border = (0.5 * SPRITE_SPAN - qx.abs().max(qy.abs())) * 12.0 - 0.25;
            t[0] = f.min(border);
            t[3] = tex;
        }
    });
    let fs: Vec<f32> = data.iter().map(|t| t[0]).collect();
    let k = sf / SPRITE_SPAN * 0.5;
    data.par_chunks_mut(size).enumerate().for_each(|(j, row)| {
        let jm = j.saturating_sub(1);
        let jp = (j + 1).min(size - 1);
        for (i, t) in row.iter_mut().enumerate() {
            let im = i.saturating_sub(1);
            let ip = (i + 1).min(size - 1);
            t[1] = (fs[j * size + ip] - fs[j * size + im]) * k;
            t[2] = (fs[jp * size + i] - fs[jm * size + i]) * k;
        }
    });
    Sprite { size, data }
}

#[derive(Debug)]
struct SpriteParams {
    seed: u32,
    aniso: f32,
    aniso_dir: f32,
    streak_dir: f32,
    streak_len: f32,
    streak2: bool,
    streak2_dir: f32,
    phase: f32,
}

/// Raised patch: an irregular blob (noisy radius and noisy field).
fn raised_field(qx: f32, qy: f32, p: &SpriteParams) -> (f32, f32) {
    let (c, s) = (p.aniso_dir.cos(), p.aniso_dir.sin());
    let ax = c * qx + s * qy;
    let ay = (-s * qx + c * qy) * p.aniso;
    let rho = (ax * ax + ay * ay).sqrt();
    let inv = 1.0 / rho.max(1e-6);
    let an = fbm(ax * inv * 1.3 + 4.0, ay * inv * 1.3 - 2.0, 3, p.seed);
    let r0 = 0.17 * (1.0 + 0.45 * an);
    let f = 1.0 - rho / r0
        + 0.30 * fbm(qx * 9.0, qy * 9.0, 3, p.seed.wrapping_add(1))
        + 0.10 * gnoise(qx * 34.0, qy * 34.0, p.seed.wrapping_add(2));
    let tex = 0.5 + 0.8 * fbm(qx * 22.0, qy * 22.0, 3, p.seed.wrapping_add(3));
    (f, tex.clamp(0.0, 1.0))
}

/// Bleeding: an irregular pool with one or two run-off streaks.
fn bleed_field(qx: f32, qy: f32, p: &SpriteParams) -> (f32, f32) {
    let (c, s) = (p.aniso_dir.cos(), p.aniso_dir.sin());
    let ax = c * qx + s * qy;
    let ay = (-s * qx + c * qy) * p.aniso;
    let rho = (ax * ax + ay * ay).sqrt();
    let pool = 1.0 - rho / 0.13
        + 0.45 * fbm(qx * 7.0, qy * 7.0, 3, p.seed)
        + 0.12 * gnoise(qx * 28.0, qy * 28.0, p.seed.wrapping_add(1));
    let mut f = pool;
    let mut dirs = vec![p.streak_dir];
    if p.streak2 {
        dirs.push(p.streak_dir + p.streak2_dir);
    }
    for (n, d) in dirs.iter().enumerate() {
        let (dc, ds) = (d.cos(), d.sin());
        let t = dc * qx + ds * qy;
        let len = p.streak_len * if n == 0 { 1.0 } else { 0.6 };
        if t > 0.0 && t < len {
            let wig = 0.018 * (t * 22.0 + p.phase + n as f32).sin()
                + 0.02 * gnoise(t * 9.0, n as f32 * 7.0, p.seed.wrapping_add(5));
            let perp = (-ds * qx + dc * qy - wig).abs();
            let u = t / len;
            let w = 0.03 * (1.0 - 0.7 * u) + 0.004;
            // Below the initial threshold: run-off appears once the pool has grown.
            let fs = 0.55 * (1.0 - perp / w) * (1.0 - u).sqrt()
                + 0.10 * gnoise(qx * 30.0, qy * 30.0, p.seed.wrapping_add(6));
            f = f.max(fs);
        }
    }
    let tex = 0.5 + 0.8 * fbm(qx * 16.0, qy * 16.0, 3, p.seed.wrapping_add(3));
    (f, tex.clamp(0.0, 1.0))
}

// ---------------------------------------------------------------------------
// Camera, episodes, per-frame context
// ---------------------------------------------------------------------------

/// 2-D affine map: `X = a x + b y + c`, `Y = d x + e y + f`.
#[derive(Debug, Clone, Copy)]
struct Aff {
    a: f64,
    b: f64,
    c: f64,
    d: f64,
    e: f64,
    f: f64,
}

impl Aff {
    fn scale_offset(s: f64, ox: f64, oy: f64) -> Self {
        Self {
            a: s,
            b: 0.0,
            c: ox,
            d: 0.0,
            e: s,
            f: oy,
        }
    }
    /// Rotation by `t`, then scale `s`, then offset.
    fn rot_scale(t: f64, s: f64, ox: f64, oy: f64) -> Self {
        let (sn, cs) = t.sin_cos();
        Self {
            a: cs * s,
            b: -sn * s,
            c: ox,
            d: sn * s,
            e: cs * s,
            f: oy,
        }
    }
    /// `self` after `inner`.
    fn after(&self, i: &Aff) -> Aff {
        Aff {
            a: self.a * i.a + self.b * i.d,
            b: self.a * i.b + self.b * i.e,
            c: self.a * i.c + self.b * i.f + self.c,
            d: self.d * i.a + self.e * i.d,
            e: self.d * i.b + self.e * i.e,
            f: self.d * i.c + self.e * i.f + self.f,
        }
    }
    fn row(&self, y: f64) -> Lin {
        Lin {
            x0: (self.b * y + self.c) as f32,
            dx: self.a as f32,
            y0: (self.e * y + self.f) as f32,
            dy: self.d as f32,
        }
    }
}

/// An affine map restricted to one row: `(x0 + x dx, y0 + x dy)`.
#[derive(Debug, Clone, Copy, Default)]
struct Lin {
    x0: f32,
    dx: f32,
    y0: f32,
    dy: f32,
}

impl Lin {
    #[inline(always)]
    fn at(&self, x: f32) -> (f32, f32) {
        (self.x0 + x * self.dx, self.y0 + x * self.dy)
    }
}

#[derive(Debug, Clone, Copy)]
struct Camera {
    cu: f64,
    cv: f64,
    zoom: f64,
    rot: f64,
}

#[derive(Debug, Clone, Copy)]
struct Placement {
    sprite: usize,
    pu: f64,
    pv: f64,
    rot: f64,
    scale: f64,
}

#[derive(Debug, Clone, Copy)]
struct Episode {
    start: u32,
    len: u32,
    kinds: u8,
    raised: Placement,
    bleed: Placement,
}

#[derive(Debug, Clone, Copy)]
struct LesionInst {
    kind: u8,
    sprite: usize,
    map: Aff,
    /// Field threshold (bleeding grows by lowering it).
    thr: f32,
    /// Rotation taking sprite-space slopes to world slopes.
    cos: f32,
    sin: f32,
}

#[derive(Debug, Clone)]
struct FrameCtx {
    eye: Aff,
    base: Aff,
    ves: Aff,
    t1: Aff,
    t2: Aff,
    /// Rotation of layer-2 tile slopes into world axes.
    t2_cos: f32,
    t2_sin: f32,
    lesions: [Option<LesionInst>; 2],
    noise_key: u64,
}

#[derive(Debug, Clone, Copy, Default)]
struct RowCtx {
    eye: Lin,
    base: Lin,
    ves: Lin,
    t1: Lin,
    t2: Lin,
    les: [Lin; 2],
}

impl EndoscopeScene {
    fn camera(&self, index: u32) -> Camera {
        use std::f64::consts::TAU;
        let t = f64::from(index);
        let p = &self.cam_phase;
        let cu =
            DRIFT * (0.7 * (TAU * t / 400.0 + p[0]).sin() + 0.3 * (TAU * t / 150.0 + p[1]).sin());
        let cv =
            DRIFT * (0.7 * (TAU * t / 350.0 + p[2]).sin() + 0.3 * (TAU * t / 130.0 + p[3]).cos());
        let zoom =
            1.0 + 0.06 * (TAU * t / 96.0 + p[4]).sin() + 0.035 * (TAU * t / 710.0 + p[5]).sin();
        let rot = 0.14 * (TAU * t / 480.0 + p[6]).sin() + 0.035 * (TAU * t / 151.0 + p[7]).sin();
        Camera { cu, cv, zoom, rot }
    }

    /// The episode of the block containing `index`, if `index` lies in it.
    fn episode_at(&self, index: u32) -> Option<Episode> {
        let block = index / EPISODE_BLOCK;
        let ep = self.episode(block)?;
        (index >= ep.start && index < ep.start.saturating_add(ep.len)).then_some(ep)
    }

    fn episode(&self, block: u32) -> Option<Episode> {
        let mut rng = Rng(mix64(
            self.cfg.seed ^ mix64(u64::from(block) ^ 0x0e91_50de_0000_0000),
        ));
        let first = block == 0;
        if !first && rng.unit() >= 0.88 {
            return None;
        }
        let len = if first {
            8 + (rng.next_u64() % 9) as u32
        } else {
            9 + (rng.next_u64() % 10) as u32
        };
        let off = if first {
            2 + (rng.next_u64() % u64::from(29 - len)) as u32 // ends by frame 30
        } else {
            2 + (rng.next_u64() % u64::from(EPISODE_BLOCK - 3 - len)) as u32
        };
        let start = block.saturating_mul(EPISODE_BLOCK).saturating_add(off);
        let roll = rng.unit();
        let kinds = if roll < 0.45 {
            LES_RAISED
        } else if roll < 0.86 {
            LES_BLEED
        } else {
            LES_RAISED | LES_BLEED
        };
        let cam = self.camera(start.saturating_add(len / 2));
        let ang = rng.range(0.0, std::f64::consts::TAU);
        let rad = rng.range(0.0, 0.38) / cam.zoom;
        let pu = cam.cu + rad * ang.cos();
        let pv = cam.cv + rad * ang.sin();
        let raised = Placement {
            sprite: (rng.next_u64() % SPRITES_PER_KIND as u64) as usize,
            pu,
            pv,
            rot: rng.range(0.0, std::f64::consts::TAU),
            scale: rng.range(0.75, 1.25),
        };
        let mut bleed = Placement {
            sprite: SPRITES_PER_KIND + (rng.next_u64() % SPRITES_PER_KIND as u64) as usize,
            pu,
            pv,
            rot: rng.range(0.0, std::f64::consts::TAU),
            scale: rng.range(1.0, 1.5),
        };
        if kinds == LES_RAISED | LES_BLEED {
            // Bleeding from the edge of the patch.
            let a2 = rng.range(0.0, std::f64::consts::TAU);
            bleed.pu += 0.13 * raised.scale * a2.cos();
            bleed.pv += 0.13 * raised.scale * a2.sin();
            bleed.scale *= 0.75;
        }
        Some(Episode {
            start,
            len,
            kinds,
            raised,
            bleed,
        })
    }

    fn frame_ctx(&self, index: u32) -> FrameCtx {
        let cam = self.camera(index);
        let w = f64::from(self.cfg.width);
        let h = f64::from(self.cfg.height);
        let r = self.radius_px;
        // Pixel index -> normalised screen coordinates (circle radius 1).
        let screen = Aff::scale_offset(1.0 / r, (0.5 - w / 2.0) / r, (0.5 - h / 2.0) / r);
        // Screen -> eye offsets in world axes (camera roll).
        let eye = Aff::rot_scale(cam.rot, 1.0, 0.0, 0.0).after(&screen);
        // Eye -> world: zoom and drift.
        let world = Aff::scale_offset(1.0 / cam.zoom, cam.cu, cam.cv).after(&eye);
        let bd = self.base_density;
        let base =
            Aff::scale_offset(bd, WORLD_HALF * bd - 0.5, WORLD_HALF * bd - 0.5).after(&world);
        let vd = self.vessel_density;
        let ves = Aff::scale_offset(vd, WORLD_HALF * vd - 0.5, WORLD_HALF * vd - 0.5).after(&world);
        let td = self.tile_density;
        let t1 = Aff::scale_offset(td, 0.0, 0.0).after(&world);
        let t2 = Aff::rot_scale(TILE2_ANGLE, td / TILE2_RATIO, 371.0, 113.0).after(&world);
        // Tile slopes in layer-2 axes -> world axes: the transpose rotation.
        let (s2, c2) = TILE2_ANGLE.sin_cos();

        let mut lesions = [None, None];
        if let Some(ep) = self.episode_at(index) {
            let progress = (f64::from(index - ep.start) + 0.5) / f64::from(ep.len);
            let mut n = 0;
            for (bit, pl) in [(LES_RAISED, ep.raised), (LES_BLEED, ep.bleed)] {
                if ep.kinds & bit == 0 {
                    continue;
                }
                let Some(sp) = self.sprites.get(pl.sprite) else {
                    continue;
                };
                let ds = sp.size as f64 / f64::from(SPRITE_SPAN);
                let half = sp.size as f64 / 2.0 - 0.5;
                // World -> sprite texels: rotate by -rot, scale, centre.
                let to_sprite = Aff::rot_scale(-pl.rot, ds / pl.scale, 0.0, 0.0);
                let shift = Aff::scale_offset(1.0, -pl.pu, -pl.pv);
                let centre = Aff::scale_offset(1.0, half, half);
                let map = centre.after(&to_sprite.after(&shift.after(&world)));
                let thr = if bit == LES_BLEED {
                    0.6 * (1.0 - f64::from(smoothstep(0.0, 0.5, progress as f32)))
                } else {
                    0.0
                };
                let (sn, cs) = pl.rot.sin_cos();
                if let Some(slot) = lesions.get_mut(n) {
                    *slot = Some(LesionInst {
                        kind: bit,
                        sprite: pl.sprite,
                        map,
                        thr: thr as f32,
                        cos: cs as f32,
                        sin: sn as f32,
                    });
                    n += 1;
                }
            }
        }
        FrameCtx {
            eye,
            base,
            ves,
            t1,
            t2,
            t2_cos: c2 as f32,
            t2_sin: s2 as f32,
            lesions,
            noise_key: mix64(
                self.cfg.seed ^ mix64(u64::from(index).wrapping_add(0x6e01_5e00_0000)),
            ),
        }
    }
}

// ---------------------------------------------------------------------------
// Rendering
// ---------------------------------------------------------------------------

/// One band of `MASK_SCALE` rows of the output.
struct BandOut<'a> {
    first_row: usize,
    y: &'a mut [u16],
    cb: &'a mut [u16],
    cr: &'a mut [u16],
    mask: &'a mut [u8],
    y_stride: usize,
    c_stride: usize,
}

/// Triangular noise from two bytes, unit standard deviation.
#[inline(always)]
fn tri(h: u64, shift: u32) -> f32 {
    let a = ((h >> shift) & 0xff) as f32;
    let b = ((h >> (shift + 8)) & 0xff) as f32;
    (a + b - 255.0) * (1.0 / 104.2)
}

/// Round to the nearest integer in `lo..=hi` (both below 1024). Adding 2^23
/// leaves the rounded value in the low mantissa bits: no saturating
/// float-to-int conversion in the hot loop.
#[inline(always)]
fn quant(v: f32, lo: f32, hi: f32) -> u16 {
    let c = if v > lo { v } else { lo };
    let c = if c < hi { c } else { hi };
    ((c + 8_388_608.0).to_bits() & 0x3ff) as u16
}

impl EndoscopeScene {
    fn render_band(&self, fc: &FrameCtx, buf: &mut RowBuf, out: BandOut<'_>) -> (u64, u8) {
        let BandOut {
            first_row,
            y,
            cb,
            cr,
            mask,
            y_stride,
            c_stride,
        } = out;
        mask.fill(0);
        let w = self.cfg.width as usize;
        let h = self.cfg.height as usize;
        let cw = w / 2;
        let mut bits = 0u8;
        for r in 0..(Self::MASK_SCALE as usize) {
            let row = first_row + r;
            if row >= h {
                break;
            }
            let (Some(yr), Some(cbr), Some(crr)) = (
                y.get_mut(r * y_stride..r * y_stride + w),
                cb.get_mut(r * c_stride..r * c_stride + cw),
                cr.get_mut(r * c_stride..r * c_stride + cw),
            ) else {
                break;
            };
            bits |= self.render_row(fc, buf, row, yr, cbr, crr, mask);
        }
        let count = mask.iter().filter(|&&m| m != 0).count() as u64;
        (count, bits)
    }

    #[allow(clippy::too_many_arguments)]
    fn render_row(
        &self,
        fc: &FrameCtx,
        buf: &mut RowBuf,
        row: usize,
        yr: &mut [u16],
        cbr: &mut [u16],
        crr: &mut [u16],
        mask: &mut [u8],
    ) -> u8 {
        let w = self.cfg.width as usize;
        let npairs = w / 2;
        let rpx = self.radius_px as f32;
        let cx = w as f32 / 2.0;
        let sy = (row as f32 + 0.5 - self.cfg.height as f32 / 2.0) / rpx;
        // Pairs that may touch the image circle.
        let (plo, phi) = if sy.abs() >= R_OUT {
            (0, 0)
        } else {
            let half = (R_OUT * R_OUT - sy * sy).sqrt() * rpx;
            let xlo = (cx - half - 1.0).max(0.0) as usize;
            let xhi = ((cx + half + 2.0).max(0.0) as usize).min(w);
            (xlo / 2, xhi.div_ceil(2).min(npairs).max(xlo / 2))
        };
        let n = 2 * (phi - plo);
        if n > 0 {
            let yf = row as f64;
            let mut rc = RowCtx {
                eye: fc.eye.row(yf),
                base: fc.base.row(yf),
                ves: fc.ves.row(yf),
                t1: fc.t1.row(yf),
                t2: fc.t2.row(yf),
                les: [Lin::default(); 2],
            };
            for (l, li) in rc.les.iter_mut().zip(fc.lesions.iter()) {
                if let Some(li) = li {
                    *l = li.map.row(yf);
                }
            }
            buf.clear(n);
            self.fill_inputs(fc, &rc, 2 * plo, n, buf);
            buf.shade(2 * plo, n);
        }
        // Black outside the shaded span.
        let (xlo, xhi) = (2 * plo, 2 * phi);
        for v in [&mut buf.oy, &mut buf.or, &mut buf.ob] {
            if let Some(s) = v.get_mut(..xlo) {
                s.fill(0.0);
            }
            if let Some(s) = v.get_mut(xhi..) {
                s.fill(0.0);
            }
        }
        // Lesion bits and mask cells.
        let mut bits = 0u8;
        if let Some(les) = buf.les.get(..n) {
            for (k, &l) in les.iter().enumerate() {
                if l != 0 {
                    bits |= l;
                    if let Some(m) = mask.get_mut((xlo + k) / Self::MASK_SCALE as usize) {
                        *m = 255;
                    }
                }
            }
        }
        // Sensor noise: one 64-bit hash of (seed, frame, row, pair) per pixel
        // pair gives two luma and two chroma samples.
        let row_key = fc.noise_key ^ ((row as u64) << 24);
        for (xp, (ny, (ncb, ncr))) in buf
            .ny
            .chunks_exact_mut(2)
            .zip(buf.ncb.iter_mut().zip(buf.ncr.iter_mut()))
            .enumerate()
        {
            let h = mix64(row_key ^ xp as u64);
            ny[0] = tri(h, 0);
            ny[1] = tri(h, 16);
            *ncb = tri(h, 32);
            *ncr = tri(h, 48);
        }
        buf.quantise(yr, cbr, crr);
        bits
    }

    #[inline(always)]
    fn sample_base(&self, x: f32, y: f32) -> BaseTexel {
        let g = &self.base;
        let w = g.w;
        let (ix, iy, fx, fy) = texel(x, y, w, g.h);
        let i = iy * w + ix;
        let Some(s) = g.data.get(i..i + w + 2) else {
            return BaseTexel::default();
        };
        let (a, b, c, d) = (&s[0], &s[1], &s[w], &s[w + 1]);
        let w00 = (1.0 - fx) * (1.0 - fy);
        let w10 = fx * (1.0 - fy);
        let w01 = (1.0 - fx) * fy;
        let w11 = fx * fy;
        BaseTexel {
            r: a.r * w00 + b.r * w10 + c.r * w01 + d.r * w11,
            g: a.g * w00 + b.g * w10 + c.g * w01 + d.g * w11,
            b: a.b * w00 + b.b * w10 + c.b * w01 + d.b * w11,
            gx: a.gx * w00 + b.gx * w10 + c.gx * w01 + d.gx * w11,
            gy: a.gy * w00 + b.gy * w10 + c.gy * w01 + d.gy * w11,
            ill: a.ill * w00 + b.ill * w10 + c.ill * w01 + d.ill * w11,
            wet: a.wet * w00 + b.wet * w10 + c.wet * w01 + d.wet * w11,
            h: 0.0,
        }
    }

    #[inline(always)]
    fn sample_vessel(&self, x: f32, y: f32) -> (f32, f32) {
        let g = &self.vessels;
        let w = g.w;
        let (ix, iy, fx, fy) = texel(x, y, w, g.h);
        let o = &self.vessel_occ;
        if o.data.get((iy >> OCC_SHIFT) * o.w + (ix >> OCC_SHIFT)) != Some(&1) {
            return (0.0, 0.0);
        }
        let i = iy * w + ix;
        let Some(s) = g.data.get(i..i + w + 2) else {
            return (0.0, 0.0);
        };
        let (a, b, c, d) = (s[0], s[1], s[w], s[w + 1]);
        if (a[0] | b[0] | c[0] | d[0] | a[1] | b[1] | c[1] | d[1]) == 0 {
            return (0.0, 0.0);
        }
        let k = 1.0 / 255.0;
        let w00 = (1.0 - fx) * (1.0 - fy) * k;
        let w10 = fx * (1.0 - fy) * k;
        let w01 = (1.0 - fx) * fy * k;
        let w11 = fx * fy * k;
        let m = |ch: usize| {
            f32::from(a[ch]) * w00
                + f32::from(b[ch]) * w10
                + f32::from(c[ch]) * w01
                + f32::from(d[ch]) * w11
        };
        (m(0), m(1))
    }

    #[inline(always)]
    fn sample_tile(&self, x: f32, y: f32) -> [f32; 4] {
        let g = &self.tile;
        let m = self.tile_mask;
        // Shift to positive coordinates (a multiple of the period) so that
        // truncation is floor.
        let x = (x + TILE_SHIFT).max(0.0);
        let y = (y + TILE_SHIFT).max(0.0);
        let xi = x as i32;
        let yi = y as i32;
        let fx = x - xi as f32;
        let fy = y - yi as f32;
        let ix = (xi & m) as usize;
        let iy = (yi & m) as usize;
        let ix1 = ((xi + 1) & m) as usize;
        let iy1 = ((yi + 1) & m) as usize;
        let w = g.w;
        match (
            g.data.get(iy * w + ix),
            g.data.get(iy * w + ix1),
            g.data.get(iy1 * w + ix),
            g.data.get(iy1 * w + ix1),
        ) {
            (Some(a), Some(b), Some(c), Some(d)) => {
                let w00 = (1.0 - fx) * (1.0 - fy);
                let w10 = fx * (1.0 - fy);
                let w01 = (1.0 - fx) * fy;
                let w11 = fx * fy;
                let s = &self.tile_scale;
                let m = |k: usize| {
                    (f32::from(a[k]) * w00
                        + f32::from(b[k]) * w10
                        + f32::from(c[k]) * w01
                        + f32::from(d[k]) * w11)
                        * s[k]
                };
                [m(0), m(1), m(2), m(3)]
            }
            _ => [0.0; 4],
        }
    }

    /// Fill the shading inputs of pixels `x0 .. x0 + n` (`n` even) of the
    /// row described by `rc`. Low-frequency terms (base texture, coarse
    /// detail layer, view vector, falloff) are evaluated once per pixel pair,
    /// fine terms per pixel.
    fn fill_inputs(&self, fc: &FrameCtx, rc: &RowCtx, x0: usize, n: usize, b: &mut RowBuf) {
        for k in 0..n / 2 {
            let xa = (x0 + 2 * k) as f32;
            let xb = xa + 1.0;
            let (e0x, e0y) = rc.eye.at(xa);
            let (e1x, e1y) = rc.eye.at(xb);
            let r2a = e0x * e0x + e0y * e0y;
            let r2b = e1x * e1x + e1y * e1y;
            if r2a >= R_OUT * R_OUT && r2b >= R_OUT * R_OUT {
                continue; // cleared inputs shade to black
            }
            let xc = xa + 0.5;
            let ex = 0.5 * (e0x + e1x);
            let ey = 0.5 * (e0y + e1y);
            let r2c = ex * ex + ey * ey;
            let (bx, by) = rc.base.at(xc);
            let bt = self.sample_base(bx, by);
            let (t2x, t2y) = rc.t2.at(xc);
            let d2 = self.sample_tile(t2x, t2y);
            let pc = PairCommon {
                bt,
                d2gx: DETAIL2 * (fc.t2_cos * d2[0] + fc.t2_sin * d2[1]),
                d2gy: DETAIL2 * (-fc.t2_sin * d2[0] + fc.t2_cos * d2[1]),
                bright2: 0.10 * d2[2],
                cap2: 0.5 * d2[3],
                ex,
                ey,
                vl: 1.0 / (r2c + CAM_H * CAM_H).sqrt(),
                light: EXPOSURE * bt.ill / (1.0 + 0.9 * r2c),
            };
            self.fill_px(fc, rc, &pc, xa, r2a, 2 * k, b);
            self.fill_px(fc, rc, &pc, xb, r2b, 2 * k + 1, b);
        }
    }

    #[allow(clippy::too_many_arguments)]
    #[inline(always)]
    fn fill_px(
        &self,
        fc: &FrameCtx,
        rc: &RowCtx,
        pc: &PairCommon,
        xf: f32,
        r2: f32,
        i: usize,
        out: &mut RowBuf,
    ) {
        if r2 >= R_OUT * R_OUT {
            return;
        }
        const R_IN: f32 = 1.0 - EDGE;
        let vig = if r2 <= R_IN * R_IN {
            1.0
        } else {
            let t = (R_OUT - r2.sqrt()) * (0.5 / EDGE);
            t * t * (3.0 - 2.0 * t)
        };
        let in_view = r2 <= 1.0;
        let bt = &pc.bt;

        let (vx, vy) = rc.ves.at(xf);
        let (vs, vd) = self.sample_vessel(vx, vy);
        let (t1x, t1y) = rc.t1.at(xf);
        let d1 = self.sample_tile(t1x, t1y);

        // Albedo: base colour, fine mottling, capillary mesh, vessels.
        let bright = 1.0 + 0.14 * d1[2] + pc.bright2;
        let cap = (d1[3] + pc.cap2).min(1.0);
        let mut ar = bt.r * bright * (1.0 - 0.25 * vs - 0.36 * vd - 0.05 * cap);
        let mut ag = bt.g * bright * (1.0 - 0.72 * vs - 0.34 * vd - 0.30 * cap);
        let mut ab = bt.b * bright * (1.0 - 0.60 * vs - 0.16 * vd - 0.25 * cap);

        // Slopes: folds, fine relief (two layers), lesions.
        let fgx = bt.gx;
        let fgy = bt.gy;
        let mut dgx = DETAIL1 * d1[0] + pc.d2gx;
        let mut dgy = DETAIL1 * d1[1] + pc.d2gy;
        let mut lgx = 0.0;
        let mut lgy = 0.0;
        let mut wet = bt.wet;
        let mut gloss = 0.0f32;
        let mut les = 0u8;
        for (li, lin) in fc.lesions.iter().zip(rc.les.iter()) {
            let Some(li) = li else { continue };
            let Some(sp) = self.sprites.get(li.sprite) else {
                continue;
            };
            let (sx, sy) = lin.at(xf);
            let lim = sp.size as f32 - 1.001;
            if !(sx >= 0.0 && sy >= 0.0 && sx < lim && sy < lim) {
                continue;
            }
            let s = sp.sample(sx, sy);
            let tau = s[0] - li.thr;
            if tau <= -0.03 {
                continue;
            }
            // Field slope in world axes.
            let wgx = li.cos * s[1] - li.sin * s[2];
            let wgy = li.sin * s[1] + li.cos * s[2];
            if li.kind == LES_RAISED {
                let w = smoothstep(-0.01, 0.10, tau) * (0.7 + 0.45 * s[3]);
                ar *= 1.0 - w * 0.24;
                ag *= 1.0 - w * 0.62;
                ab *= 1.0 - w * 0.52;
                wet += 0.3 * w;
                dgx *= 1.0 + 0.6 * w;
                dgy *= 1.0 + 0.6 * w;
                if tau > 0.0 {
                    les |= LES_RAISED;
                    let k = RAISED_H * RAISED_T0 / ((tau + RAISED_T0) * (tau + RAISED_T0));
                    lgx += k * wgx;
                    lgy += k * wgy;
                }
            } else {
                let w = smoothstep(-0.006, 0.01, tau);
                let tp = tau.max(0.0);
                let th = tp * tp * (0.6 + 0.8 * s[3]) * BLOOD_THICK;
                ar *= lerp(1.0, 0.68 / (1.0 + 2.5 * th), w);
                ag *= lerp(1.0, 0.30 / (1.0 + 40.0 * th), w);
                ab *= lerp(1.0, 0.35 / (1.0 + 30.0 * th), w);
                dgx *= 1.0 - 0.8 * w;
                dgy *= 1.0 - 0.8 * w;
                wet *= 1.0 - 0.8 * w;
                gloss = gloss.max(w);
                if tau > 0.0 {
                    les |= LES_BLEED;
                    let k = BLOOD_H * BLOOD_T0 / ((tau + BLOOD_T0) * (tau + BLOOD_T0));
                    lgx += k * wgx;
                    lgy += k * wgy;
                }
            }
        }

        let pick = |v: &mut Vec<f32>, x: f32| {
            if let Some(p) = v.get_mut(i) {
                *p = x;
            }
        };
        pick(&mut out.ar, ar);
        pick(&mut out.ag, ag);
        pick(&mut out.ab, ab);
        pick(&mut out.gx, fgx + dgx + lgx);
        pick(&mut out.gy, fgy + dgy + lgy);
        pick(&mut out.wet, wet);
        pick(&mut out.gloss, gloss);
        pick(&mut out.ex, pc.ex);
        pick(&mut out.ey, pc.ey);
        pick(&mut out.vl, pc.vl);
        pick(&mut out.light, pc.light * vig);
        if let Some(p) = out.les.get_mut(i) {
            *p = if in_view { les } else { 0 };
        }
    }
}

/// Per-thread scratch: shading inputs and outputs of one row, as separate
/// arrays so that the shading loop vectorises.
#[derive(Debug, Default)]
struct RowBuf {
    ar: Vec<f32>,
    ag: Vec<f32>,
    ab: Vec<f32>,
    gx: Vec<f32>,
    gy: Vec<f32>,
    wet: Vec<f32>,
    gloss: Vec<f32>,
    ex: Vec<f32>,
    ey: Vec<f32>,
    vl: Vec<f32>,
    light: Vec<f32>,
    les: Vec<u8>,
    /// Outputs (absolute x): display-referred R', B', Y'.
    or: Vec<f32>,
    ob: Vec<f32>,
    oy: Vec<f32>,
    /// Unit-variance noise: per pixel (luma), per pair (Cb, Cr).
    ny: Vec<f32>,
    ncb: Vec<f32>,
    ncr: Vec<f32>,
}

impl RowBuf {
    fn new(w: usize) -> Self {
        let v = || vec![0.0f32; w];
        Self {
            ar: v(),
            ag: v(),
            ab: v(),
            gx: v(),
            gy: v(),
            wet: v(),
            gloss: v(),
            ex: v(),
            ey: v(),
            vl: v(),
            light: v(),
            les: vec![0; w],
            or: v(),
            ob: v(),
            oy: v(),
            ny: v(),
            ncb: vec![0.0; w / 2],
            ncr: vec![0.0; w / 2],
        }
    }

    /// Convert the row's R'B'Y' and noise to 10-bit limited-range Y'CbCr
    /// (chroma: average of each pixel pair).
    fn quantise(&self, yr: &mut [u16], cbr: &mut [u16], crr: &mut [u16]) {
        let base = 64.0 + BLACK_PED;
        for ((o, &y), &n) in yr.iter_mut().zip(self.oy.iter()).zip(self.ny.iter()) {
            *o = quant(
                base + 876.0 * y + n * (NOISE_Y0 + NOISE_Y1 * y),
                64.0,
                940.0,
            );
        }
        let pairs = self
            .oy
            .chunks_exact(2)
            .zip(self.or.chunks_exact(2))
            .zip(self.ob.chunks_exact(2));
        for ((((cb, cr), ((y, r), b)), &ncb), &ncr) in cbr
            .iter_mut()
            .zip(crr.iter_mut())
            .zip(pairs)
            .zip(self.ncb.iter())
            .zip(self.ncr.iter())
        {
            let ym = 0.5 * (y[0] + y[1]);
            let cbv = (0.5 * (b[0] + b[1]) - ym) * (1.0 / 1.8814);
            let crv = (0.5 * (r[0] + r[1]) - ym) * (1.0 / 1.4746);
            *cb = quant(512.0 + 896.0 * cbv + ncb * NOISE_C, 64.0, 960.0);
            *cr = quant(512.0 + 896.0 * crv + ncr * NOISE_C, 64.0, 960.0);
        }
    }

    /// Reset the first `n` inputs to "black" (no light).
    fn clear(&mut self, n: usize) {
        for v in [
            &mut self.light,
            &mut self.gx,
            &mut self.gy,
            &mut self.gloss,
            &mut self.wet,
        ] {
            if let Some(s) = v.get_mut(..n) {
                s.fill(0.0);
            }
        }
        if let Some(s) = self.les.get_mut(..n) {
            s.fill(0);
        }
    }

    /// Shade inputs `0..n` into outputs `x0..x0 + n`: light at the scope tip,
    /// so N.L = N.V and the Blinn half vector is V. Writes display-referred
    /// R', B' and Y'.
    #[allow(clippy::needless_range_loop)]
    fn shade(&mut self, x0: usize, n: usize) {
        let n = n.min(self.ar.len()).min(self.or.len().saturating_sub(x0));
        let (ar, ag, ab) = (&self.ar[..n], &self.ag[..n], &self.ab[..n]);
        let (gxs, gys) = (&self.gx[..n], &self.gy[..n]);
        let (wets, glosses) = (&self.wet[..n], &self.gloss[..n]);
        let (exs, eys, vls, lights) = (
            &self.ex[..n],
            &self.ey[..n],
            &self.vl[..n],
            &self.light[..n],
        );
        let or = &mut self.or[x0..x0 + n];
        let ob = &mut self.ob[x0..x0 + n];
        let oy = &mut self.oy[x0..x0 + n];
        for i in 0..n {
            let gx = gxs[i];
            let gy = gys[i];
            let nz = 1.0 / (1.0 + gx * gx + gy * gy).sqrt();
            let ndv = ((gx * exs[i] + gy * eys[i] + CAM_H) * nz * vls[i]).max(0.0);
            // Subsurface scattering: red light wraps further into shadow.
            let dr = 0.30 + 0.70 * ndv;
            let dg = 0.10 + 0.90 * ndv;
            let db = 0.09 + 0.91 * ndv;
            // Powers by squaring; the floors keep every term out of the
            // (very slow) subnormal range.
            let nd = ndv.max(0.1);
            let p2 = nd * nd;
            let p4 = p2 * p2;
            let p8 = p4 * p4;
            let p16 = p8 * p8;
            let p32 = p16 * p16;
            let p32 = if nd > 0.72 { p32 } else { 0.0 };
            let p64 = p32 * p32;
            let p128 = p64 * p64;
            let p256 = p128 * p128;
            let spec = wets[i] * (1.1 * p128 + 0.04 * p16) + glosses[i] * (4.0 * p256 + 0.08 * p64);
            let e = lights[i];
            let r = (e * (ar[i] * dr + spec)).clamp(0.0, 1.0).sqrt();
            let g = (e * (ag[i] * dg + spec)).clamp(0.0, 1.0).sqrt();
            let b = (e * (ab[i] * db + spec)).clamp(0.0, 1.0).sqrt();
            or[i] = r;
            ob[i] = b;
            oy[i] = 0.2627 * r + 0.6780 * g + 0.0593 * b;
        }
    }
}

/// Per-pair terms shared by both pixels of a pair.
#[derive(Debug, Clone, Copy)]
struct PairCommon {
    bt: BaseTexel,
    d2gx: f32,
    d2gy: f32,
    bright2: f32,
    cap2: f32,
    ex: f32,
    ey: f32,
    vl: f32,
    light: f32,
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn cfg(seed: u64) -> SceneConfig {
        SceneConfig {
            width: 256,
            height: 144,
            frames: 30,
            seed,
        }
    }

    fn hash(b: &FrameBuffers) -> u64 {
        let mut h = 0xcbf2_9ce4_8422_2325u64;
        let mut eat = |v: u64| {
            h ^= v;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        };
        b.y.iter().for_each(|&v| eat(u64::from(v)));
        b.cb.iter().for_each(|&v| eat(u64::from(v) << 16));
        b.cr.iter().for_each(|&v| eat(u64::from(v) << 32));
        b.mask.iter().for_each(|&v| eat(u64::from(v) << 48));
        h
    }

    fn render(scene: &EndoscopeScene, i: u32) -> (FrameBuffers, FrameTruth) {
        let mut b = FrameBuffers::new(scene);
        let t = scene.render(i, &mut b.planes()).unwrap();
        (b, t)
    }

    #[test]
    fn scene_is_send_sync() {
        fn check<T: Send + Sync>() {}
        check::<EndoscopeScene>();
    }

    #[test]
    fn deterministic_across_thread_counts() {
        let scene = EndoscopeScene::new(cfg(7)).unwrap();
        let mut hashes = Vec::new();
        for threads in [1, 2, 3] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let hs: Vec<u64> = pool.install(|| {
                (0..30)
                    .step_by(7)
                    .map(|i| hash(&render(&scene, i).0))
                    .collect()
            });
            hashes.push(hs);
        }
        assert_eq!(hashes[0], hashes[1]);
        assert_eq!(hashes[0], hashes[2]);
        // A second scene from the same config renders the same frames.
        let again = EndoscopeScene::new(cfg(7)).unwrap();
        assert_eq!(hash(&render(&again, 7).0), hashes[0][1]);
        // Different frames and seeds differ.
        assert_ne!(hashes[0][0], hashes[0][1]);
        let other = EndoscopeScene::new(cfg(8)).unwrap();
        assert_ne!(hash(&render(&other, 0).0), hashes[0][0]);
    }

    #[test]
    fn values_in_legal_range() {
        let scene = EndoscopeScene::new(cfg(3)).unwrap();
        for i in [0, 5, 10, 17, 29] {
            let (b, _) = render(&scene, i);
            assert!(b.y.iter().all(|&v| (64..=940).contains(&v)));
            assert!(b.cb.iter().all(|&v| (64..=960).contains(&v)));
            assert!(b.cr.iter().all(|&v| (64..=960).contains(&v)));
            assert!(b.mask.iter().all(|&v| v == 0 || v == 255));
            // Bright tissue in the middle, black in the corner.
            let w = b.width as usize;
            let h = b.height as usize;
            assert!(b.y[h / 2 * w + w / 2] > 200, "centre too dark");
            assert!(b.y[0] < 72, "corner not black");
        }
    }

    #[test]
    fn truth_matches_mask_and_clip_has_both() {
        for seed in [0, 1, 2, 42, 0xdead_beef] {
            let scene = EndoscopeScene::new(cfg(seed)).unwrap();
            let (mut anomalous, mut normal) = (0, 0);
            for i in 0..30 {
                let (b, t) = render(&scene, i);
                let count = b.mask.iter().filter(|&&m| m == 255).count() as u64;
                assert_eq!(t.mask_pixels, count);
                assert_eq!(t.anomalous, count > 0);
                assert_eq!(t.anomalous, !t.lesions.is_empty());
                if t.anomalous {
                    anomalous += 1;
                } else {
                    normal += 1;
                }
            }
            assert!(
                anomalous >= 1 && normal >= 1,
                "seed {seed}: {anomalous} anomalous, {normal} normal"
            );
        }
    }

    #[test]
    fn both_lesion_kinds_occur() {
        let mut seen = (false, false);
        let c = SceneConfig {
            width: 128,
            height: 72,
            frames: 400,
            seed: 11,
        };
        let scene = EndoscopeScene::new(c).unwrap();
        let mut anomalous = 0;
        for i in 0..c.frames {
            let (_, t) = render(&scene, i);
            anomalous += u32::from(t.anomalous);
            seen.0 |= t.lesions.contains(&LesionKind::RaisedRedPatch);
            seen.1 |= t.lesions.contains(&LesionKind::Bleeding);
            if !scene.scheduled_lesions(i).is_empty() {
                assert!(t.anomalous, "frame {i}: scheduled lesion not visible");
            }
        }
        assert!(seen.0 && seen.1);
        let frac = f64::from(anomalous) / f64::from(c.frames);
        assert!((0.2..0.45).contains(&frac), "anomalous fraction {frac}");
    }

    #[test]
    fn bad_configs_rejected() {
        let ok = cfg(1);
        let bad = [
            SceneConfig { width: 255, ..ok },
            SceneConfig { width: 62, ..ok },
            SceneConfig { width: 0, ..ok },
            SceneConfig { height: 63, ..ok },
            SceneConfig { frames: 0, ..ok },
            SceneConfig { width: 16386, ..ok },
            SceneConfig {
                height: 16385,
                ..ok
            },
        ];
        for c in bad {
            assert!(EndoscopeScene::new(c).is_err(), "{c:?} accepted");
        }
        assert!(
            EndoscopeScene::new(SceneConfig {
                width: 64,
                height: 64,
                ..ok
            })
            .is_ok()
        );
    }

    #[test]
    fn small_planes_and_bad_index_rejected() {
        let scene = EndoscopeScene::new(cfg(1)).unwrap();
        let mut b = FrameBuffers::new(&scene);
        assert!(scene.render(30, &mut b.planes()).is_err());
        let w = b.width as usize;
        {
            let mut p = b.planes();
            p.y_stride = w - 2;
            assert!(scene.render(0, &mut p).is_err());
        }
        {
            let mut p = b.planes();
            p.c_stride = w / 2 - 1;
            assert!(scene.render(0, &mut p).is_err());
        }
        let FrameBuffers {
            y, cb, cr, mask, ..
        } = &mut b;
        let n = y.len();
        let cn = cb.len();
        let mut p = FramePlanes {
            y: &mut y[..n - 1],
            y_stride: w,
            cb: &mut cb[..],
            cr: &mut cr[..],
            c_stride: w / 2,
            mask: &mut mask[..],
        };
        assert!(scene.render(0, &mut p).is_err());
        let mut p = FramePlanes {
            y: &mut y[..],
            y_stride: w,
            cb: &mut cb[..cn - 1],
            cr: &mut cr[..],
            c_stride: w / 2,
            mask: &mut mask[..],
        };
        assert!(scene.render(0, &mut p).is_err());
        let mut short = vec![0u8; 10];
        let mut p = FramePlanes {
            y: &mut y[..],
            y_stride: w,
            cb: &mut cb[..],
            cr: &mut cr[..],
            c_stride: w / 2,
            mask: &mut short,
        };
        assert!(scene.render(0, &mut p).is_err());
        // The full-size planes still work.
        assert!(scene.render(0, &mut b.planes()).is_ok());
    }

    #[test]
    fn odd_sizes_and_extreme_indices_render() {
        for (w, h, frames, i) in [
            (64, 64, 1, 0),
            (66, 200, 3, 2),
            (1000, 64, 10, 9),
            (64, 64, u32::MAX, u32::MAX - 1),
            (96, 80, u32::MAX, 4_000_000_000),
        ] {
            let scene = EndoscopeScene::new(SceneConfig {
                width: w,
                height: h,
                frames,
                seed: u64::MAX,
            })
            .unwrap();
            let (b, t) = render(&scene, i);
            let count = b.mask.iter().filter(|&&m| m == 255).count() as u64;
            assert_eq!(t.mask_pixels, count);
            assert!(b.y.iter().all(|&v| (64..=940).contains(&v)));
            assert!(
                scene
                    .render(frames - 1, &mut FrameBuffers::new(&scene).planes())
                    .is_ok()
            );
        }
    }

    #[test]
    fn strided_planes_match_packed() {
        let c = SceneConfig {
            width: 130,
            height: 67,
            frames: 20,
            seed: 5,
        };
        let scene = EndoscopeScene::new(c).unwrap();
        let (w, h) = (130usize, 67usize);
        for i in [0, 9] {
            let (packed, t0) = render(&scene, i);
            let (ys, cs) = (w + 6, w / 2 + 3);
            let mut y = vec![0u16; ys * (h - 1) + w];
            let mut cb = vec![0u16; cs * (h - 1) + w / 2];
            let mut cr = cb.clone();
            let mut mask = vec![0u8; packed.mask.len()];
            let t1 = scene
                .render(
                    i,
                    &mut FramePlanes {
                        y: &mut y,
                        y_stride: ys,
                        cb: &mut cb,
                        cr: &mut cr,
                        c_stride: cs,
                        mask: &mut mask,
                    },
                )
                .unwrap();
            assert_eq!(t0, t1);
            assert_eq!(mask, packed.mask);
            for r in 0..h {
                assert_eq!(&y[r * ys..r * ys + w], &packed.y[r * w..(r + 1) * w]);
                assert_eq!(
                    &cb[r * cs..r * cs + w / 2],
                    &packed.cb[r * w / 2..(r + 1) * w / 2]
                );
                assert_eq!(
                    &cr[r * cs..r * cs + w / 2],
                    &packed.cr[r * w / 2..(r + 1) * w / 2]
                );
            }
        }
    }
}
