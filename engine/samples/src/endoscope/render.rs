//! Rendering of one frame: bands of rows in parallel, the visible span of
//! each row, per-pixel shading inputs (textures, vessels, lesions), mask
//! cells and sensor noise.

use super::camera::{FrameCtx, Lin};
use super::noise::{lerp, mix64, smoothstep};
use super::shade::RowBuf;
use super::world::BaseTexel;
use super::{
    BLOOD_H, BLOOD_T0, BLOOD_THICK, CAM_H, DETAIL1, DETAIL2, EDGE, EXPOSURE, EndoscopeScene,
    LES_BLEED, LES_RAISED, R_OUT, RAISED_H, RAISED_T0,
};

/// One band of `MASK_SCALE` rows of the output.
pub(super) struct BandOut<'a> {
    pub(super) first_row: usize,
    pub(super) y: &'a mut [u16],
    pub(super) cb: &'a mut [u16],
    pub(super) cr: &'a mut [u16],
    pub(super) mask: &'a mut [u8],
    pub(super) y_stride: usize,
    pub(super) c_stride: usize,
}

/// Triangular noise from two bytes, unit standard deviation.
#[inline(always)]
fn tri(h: u64, shift: u32) -> f32 {
    let a = ((h >> shift) & 0xff) as f32;
    let b = ((h >> (shift + 8)) & 0xff) as f32;
    (a + b - 255.0) * (1.0 / 104.2)
}

/// The frame's maps restricted to one row.
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
    pub(super) fn render_band(
        &self,
        fc: &FrameCtx,
        buf: &mut RowBuf,
        out: BandOut<'_>,
    ) -> (u64, u8) {
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
