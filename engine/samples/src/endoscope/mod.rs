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

mod camera;
mod lesions;
mod noise;
mod render;
mod shade;
mod vessels;
mod world;

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

use std::fmt;

use med8k_media::planes::{Plane, YCbCrPlanes};
use rayon::prelude::*;

use lesions::{Sprite, gen_sprites};
use noise::{Rng, mix64};
use render::BandOut;
use shade::RowBuf;
use vessels::{gen_vessels, occupancy, raster_vessels};
use world::{BaseTexel, Grid, gen_base, gen_tile};

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

    /// The rendered planes as the detector's input reads them
    /// ([`ycbcr_tensor`](med8k_detect::input::ycbcr_tensor)): 10-bit 4:2:2.
    pub fn ycbcr(&self) -> YCbCrPlanes<'_, u16> {
        let w = self.width as usize;
        YCbCrPlanes {
            width: w,
            height: self.height as usize,
            bit_depth: 10,
            chroma_shift: (1, 0),
            y: Plane {
                data: &self.y,
                stride: w,
            },
            cb: Plane {
                data: &self.cb,
                stride: w / 2,
            },
            cr: Plane {
                data: &self.cr,
                stride: w / 2,
            },
        }
    }

    /// The rendered frame as a 10-bit 4:2:2 [`Picture`](med8k_media::picture::Picture)
    /// (the mask stays behind).
    pub fn into_picture(
        self,
    ) -> Result<med8k_media::picture::Picture, med8k_media::picture::PictureError> {
        med8k_media::picture::Picture::new(
            med8k_media::picture::Layout::Yuv422,
            self.width,
            self.height,
            10,
            vec![self.y, self.cb, self.cr],
        )
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
