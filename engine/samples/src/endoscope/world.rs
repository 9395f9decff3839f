//! World textures built once per scene: the low-frequency base texture
//! (albedo, fold slopes, illumination, wetness) and the periodic fine-detail
//! tile, with their bilinear samplers.

use rayon::prelude::*;

use super::noise::{fbm, gnoise, gnoise_p, lerp, smoothstep, worley_p};
use super::{CAM_H, EndoscopeScene, TILE_SHIFT, WORLD_HALF};

/// A row-major `w x h` grid of texels.
#[derive(Debug, Clone)]
pub(super) struct Grid<T> {
    pub(super) w: usize,
    pub(super) h: usize,
    pub(super) data: Vec<T>,
}

/// One texel of the base texture (`h`, the fold height, is only used while
/// building it).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct BaseTexel {
    pub(super) r: f32,
    pub(super) g: f32,
    pub(super) b: f32,
    pub(super) gx: f32,
    pub(super) gy: f32,
    pub(super) ill: f32,
    pub(super) wet: f32,
    pub(super) h: f32,
}

/// Base texture: albedo, fold slopes, illumination (distance), wetness.
pub(super) fn gen_base(seed: u32, side: usize, density: f64) -> Grid<BaseTexel> {
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
pub(super) fn gen_tile(seed: u32, t: usize) -> (Grid<[i16; 4]>, [f32; 4]) {
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

/// Integer texel and fraction of clamped texture coordinates `(x, y)` on a
/// `w x h` grid (`w, h >= 2`), such that texel `(ix + 1, iy + 1)` exists.
#[inline(always)]
pub(super) fn texel(x: f32, y: f32, w: usize, h: usize) -> (usize, usize, f32, f32) {
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

impl EndoscopeScene {
    #[inline(always)]
    pub(super) fn sample_base(&self, x: f32, y: f32) -> BaseTexel {
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
    pub(super) fn sample_tile(&self, x: f32, y: f32) -> [f32; 4] {
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
}
