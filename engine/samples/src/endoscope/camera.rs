//! Camera path and per-frame context: the affine maps from output pixels to
//! world, texture and lesion-sprite coordinates for one frame.

use super::noise::{mix64, smoothstep};
use super::{
    DRIFT, EndoscopeScene, LES_BLEED, LES_RAISED, SPRITE_SPAN, TILE2_ANGLE, TILE2_RATIO, WORLD_HALF,
};

/// 2-D affine map: `X = a x + b y + c`, `Y = d x + e y + f`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Aff {
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
    pub(super) fn row(&self, y: f64) -> Lin {
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
pub(super) struct Lin {
    x0: f32,
    dx: f32,
    y0: f32,
    dy: f32,
}

impl Lin {
    #[inline(always)]
    pub(super) fn at(&self, x: f32) -> (f32, f32) {
        (self.x0 + x * self.dx, self.y0 + x * self.dy)
    }
}

/// Camera of one frame: world position of the view centre, zoom and roll.
#[derive(Debug, Clone, Copy)]
pub(super) struct Camera {
    pub(super) cu: f64,
    pub(super) cv: f64,
    pub(super) zoom: f64,
    pub(super) rot: f64,
}

/// A lesion placed in one frame: its sprite and the map from pixels to
/// sprite texels.
#[derive(Debug, Clone, Copy)]
pub(super) struct LesionInst {
    pub(super) kind: u8,
    pub(super) sprite: usize,
    pub(super) map: Aff,
    /// Field threshold (bleeding grows by lowering it).
    pub(super) thr: f32,
    /// Rotation taking sprite-space slopes to world slopes.
    pub(super) cos: f32,
    pub(super) sin: f32,
}

/// Everything a frame needs per row: the maps from pixel coordinates to eye,
/// texture and sprite space, the visible lesions and the noise key.
#[derive(Debug, Clone)]
pub(super) struct FrameCtx {
    pub(super) eye: Aff,
    pub(super) base: Aff,
    pub(super) ves: Aff,
    pub(super) t1: Aff,
    pub(super) t2: Aff,
    /// Rotation of layer-2 tile slopes into world axes.
    pub(super) t2_cos: f32,
    pub(super) t2_sin: f32,
    pub(super) lesions: [Option<LesionInst>; 2],
    pub(super) noise_key: u64,
}

impl EndoscopeScene {
    pub(super) fn camera(&self, index: u32) -> Camera {
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

    pub(super) fn frame_ctx(&self, index: u32) -> FrameCtx {
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
