//! Blood vessels: branching random-walk trees, rasterised once into a
//! full-resolution map of superficial and deep vessel densities, with a
//! block occupancy map that lets the sampler skip empty tissue.

use rayon::prelude::*;

use super::noise::{Rng, gnoise, smoothstep};
use super::world::{Grid, texel};
use super::{EndoscopeScene, WORLD_HALF};

/// A vessel piece: a capsule with linearly varying half-width (world units).
#[derive(Debug, Clone, Copy)]
pub(super) struct Seg {
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
pub(super) fn gen_vessels(seed: u64) -> Vec<Seg> {
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
pub(super) fn raster_vessels(segs: &[Seg], side: usize, density: f64) -> Grid<[u8; 2]> {
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
pub(super) fn occupancy(v: &Grid<[u8; 2]>) -> Grid<u8> {
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

impl EndoscopeScene {
    #[inline(always)]
    pub(super) fn sample_vessel(&self, x: f32, y: f32) -> (f32, f32) {
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
}
