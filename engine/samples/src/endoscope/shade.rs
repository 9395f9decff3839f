//! Per-thread row scratch, shading (light at the scope tip, subsurface
//! scattering, specular glints) and conversion to 10-bit Y'CbCr.

use super::{BLACK_PED, CAM_H, NOISE_C, NOISE_Y0, NOISE_Y1};

/// Round to the nearest integer in `lo..=hi` (both below 1024). Adding 2^23
/// leaves the rounded value in the low mantissa bits: no saturating
/// float-to-int conversion in the hot loop.
#[inline(always)]
fn quant(v: f32, lo: f32, hi: f32) -> u16 {
    let c = if v > lo { v } else { lo };
    let c = if c < hi { c } else { hi };
    ((c + 8_388_608.0).to_bits() & 0x3ff) as u16
}

/// Per-thread scratch: shading inputs and outputs of one row, as separate
/// arrays so that the shading loop vectorises.
#[derive(Debug, Default)]
pub(super) struct RowBuf {
    pub(super) ar: Vec<f32>,
    pub(super) ag: Vec<f32>,
    pub(super) ab: Vec<f32>,
    pub(super) gx: Vec<f32>,
    pub(super) gy: Vec<f32>,
    pub(super) wet: Vec<f32>,
    pub(super) gloss: Vec<f32>,
    pub(super) ex: Vec<f32>,
    pub(super) ey: Vec<f32>,
    pub(super) vl: Vec<f32>,
    pub(super) light: Vec<f32>,
    pub(super) les: Vec<u8>,
    /// Outputs (absolute x): display-referred R', B', Y'.
    pub(super) or: Vec<f32>,
    pub(super) ob: Vec<f32>,
    pub(super) oy: Vec<f32>,
    /// Unit-variance noise: per pixel (luma), per pair (Cb, Cr).
    pub(super) ny: Vec<f32>,
    pub(super) ncb: Vec<f32>,
    pub(super) ncr: Vec<f32>,
}

impl RowBuf {
    pub(super) fn new(w: usize) -> Self {
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
    pub(super) fn quantise(&self, yr: &mut [u16], cbr: &mut [u16], crr: &mut [u16]) {
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
    pub(super) fn clear(&mut self, n: usize) {
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
    pub(super) fn shade(&mut self, x0: usize, n: usize) {
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
