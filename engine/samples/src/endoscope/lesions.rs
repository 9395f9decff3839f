//! Lesions: the pool of sprites (raised reddened patches, pools of blood)
//! built once per scene, and the episodes that place them in the world.

use rayon::prelude::*;

use super::noise::{Rng, fbm, gnoise, mix64};
use super::{EPISODE_BLOCK, EndoscopeScene, LES_BLEED, LES_RAISED, SPRITE_SPAN, SPRITES_PER_KIND};

/// A lesion sprite: `[field, d field / dx, d field / dy, texture]` on a
/// `size x size` grid spanning `SPRITE_SPAN` world units at scale 1. The
/// lesion is where `field > threshold`.
#[derive(Debug, Clone)]
pub(super) struct Sprite {
    pub(super) size: usize,
    data: Vec<[f32; 4]>,
}

impl Sprite {
    #[inline]
    pub(super) fn sample(&self, x: f32, y: f32) -> [f32; 4] {
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

pub(super) fn gen_sprites(seed: u64, size: usize) -> Vec<Sprite> {
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

/// Where a lesion sprite sits in the world during an episode.
#[derive(Debug, Clone, Copy)]
pub(super) struct Placement {
    pub(super) sprite: usize,
    pub(super) pu: f64,
    pub(super) pv: f64,
    pub(super) rot: f64,
    pub(super) scale: f64,
}

/// A run of consecutive frames showing the same lesions.
#[derive(Debug, Clone, Copy)]
pub(super) struct Episode {
    pub(super) start: u32,
    pub(super) len: u32,
    pub(super) kinds: u8,
    pub(super) raised: Placement,
    pub(super) bleed: Placement,
}

impl EndoscopeScene {
    /// The episode of the block containing `index`, if `index` lies in it.
    pub(super) fn episode_at(&self, index: u32) -> Option<Episode> {
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
}
