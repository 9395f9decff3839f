//! The 4:2:0 downscale: the CPU twin (the specification) of the GPU kernel.

use rayon::prelude::*;

use med8k_media::picture::{Layout, Picture};

use crate::*;

/// Limited-range BT.709 Y, Cb, Cr of one full-range RGB pixel, at 16 bits.
///
/// All arithmetic is integer; this function is part of the specification of
/// [`downscale_420`] (and of its GPU kernel):
///
/// 1. Each component `c` of depth `d` (8..=16, `max = 2^d - 1`) is clamped
///    to `max` and expanded to 16 bits in u32:
///    `c16 = (min(c, max) * 65535 + (max >> 1)) / max` (integer division;
///    the product is below 2^32). For `d = 8` this is `c * 257`, for
///    `d = 16` it is `c`.
/// 2. Luma in u32, coefficients `round(K * 219 * 256 / 65535 * 65536)` with
///    BT.709's `Kr = 0.2126`, `Kg = 0.7152`, `Kb = 0.0722`:
///    `Y = ((11919 * r16 + 40098 * g16 + 4048 * b16 + 32768) >> 16) + 4096`.
///    The sum is below 2^32; `Y` lies in `4096..=60160` (16 and 235 at 8 bits).
/// 3. Chroma in i32 (`>>` is an arithmetic shift, rounding towards minus
///    infinity), each row of coefficients summing to zero so grey is exactly
///    neutral:
///    `Cb = ((-6570 * r16 - 22102 * g16 + 28672 * b16 + 32768) >> 16) + 32768`,
///    `Cr = ((28672 * r16 - 26043 * g16 - 2629 * b16 + 32768) >> 16) + 32768`.
///    Every partial sum stays within ±2^31; `Cb` and `Cr` lie in
///    `4096..=61440` (16 and 240 at 8 bits).
///
/// So white is `[60160, 32768, 32768]` and black `[4096, 32768, 32768]`.
pub fn bt709_limited16(rgb: [u16; 3], bit_depth: u8) -> [u16; 3] {
    let max = (1u32 << bit_depth.clamp(1, 16)) - 1;
    let [r, g, b] = rgb.map(|c| expand16(u32::from(c), max));
    let (y, cb, cr) = ycc16(r, g, b);
    [y as u16, cb as u16, cr as u16]
}

/// Step 1 of [`bt709_limited16`]: `(min(c, max) * 65535 + (max >> 1)) / max`.
fn expand16(c: u32, max: u32) -> u32 {
    (c.min(max) * 65535 + (max >> 1)) / max
}

/// Steps 2 and 3 of [`bt709_limited16`] on 16-bit full-range components.
fn ycc16(r: u32, g: u32, b: u32) -> (u32, u32, u32) {
    (luma16(r, g, b), cb16(r, g, b), cr16(r, g, b))
}

fn luma16(r: u32, g: u32, b: u32) -> u32 {
    ((11919 * r + 40098 * g + 4048 * b + 32768) >> 16) + 4096
}

fn cb16(r: u32, g: u32, b: u32) -> u32 {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    (((-6570 * r - 22102 * g + 28672 * b + 32768) >> 16) + 32768) as u32
}

fn cr16(r: u32, g: u32, b: u32) -> u32 {
    let (r, g, b) = (r as i32, g as i32, b as i32);
    (((28672 * r - 26043 * g - 2629 * b + 32768) >> 16) + 32768) as u32
}

/// A box average `avg` of `from`-bit samples as a `to`-bit sample:
/// `min((avg + (1 << (s - 1))) >> s, 2^to - 1)` with `s = from - to` when
/// `from > to`, `min(avg << (to - from), 2^to - 1)` otherwise. The clamp
/// catches averages that round up past the maximum (1023 at 10 bits becomes
/// 256, clamped to 255, at 8 bits). Part of the specification of
/// [`downscale_420`].
pub fn requantize(avg: u32, from: u8, to: u8) -> u16 {
    let max = (1u32 << to) - 1;
    let v = if from > to {
        let s = u32::from(from - to);
        (avg + (1 << (s - 1))) >> s
    } else {
        avg << u32::from(to - from)
    };
    v.min(max) as u16
}

/// Downscale `src` by `factor` to 4:2:0 at `out_depth` bits: the CPU twin,
/// and the specification, of the GPU downscale kernel. Integer arithmetic
/// only; a kernel that follows the steps below matches it bit for bit.
///
/// **Input**: [`Layout::Yuv422`], [`Layout::Yuv420`] or [`Layout::Rgb`],
/// `w`×`h`, bit depth `d` in 8..=16. `factor` `f` is 1, 2 or 4; `out_depth`
/// 8 or 10.
///
/// **Output**: [`Layout::Yuv420`], `W`×`H` with `W = ceil(w / f)` rounded up
/// to even (`W = ceil(w / f) + (ceil(w / f) & 1)`), likewise `H`; chroma
/// planes `W/2`×`H/2`.
///
/// **Box filter**: every output sample averages a `bw`×`bh` box of a source
/// plane `P` of size `pw`×`ph`. Output sample `(x, y)` reads source samples
/// `P[min(x*bw + i, pw - 1), min(y*bh + j, ph - 1)]` for `0 <= i < bw`,
/// `0 <= j < bh` (edge samples repeat past the right and bottom borders, which
/// covers odd and non-multiple sizes); with `n = bw*bh` and `sum` their u32
/// sum, the average is `(sum + n/2) / n` (`n` is a power of two, so this is a
/// shift). The average is then brought to `out_depth` by [`requantize`] from
/// the source depth (`d` for YCbCr input, 16 for RGB).
///
/// - Luma: `bw = bh = f` over the source luma plane.
/// - Chroma of Yuv422 (source chroma `ceil(w/2)`×`h`): `bw = f`, `bh = 2f`.
/// - Chroma of Yuv420 (source chroma `ceil(w/2)`×`ceil(h/2)`): `bw = bh = f`.
///
/// The output chroma sample thus covers exactly the source area of its 2×2
/// output luma samples. Chroma siting is not moved: for co-sited 4:2:2 input
/// the output is co-sited horizontally and centred vertically.
///
/// **RGB**: each source pixel is first converted by [`bt709_limited16`] to
/// 16-bit limited-range Y, Cb, Cr (4:4:4, computed on the fly); luma then
/// averages `f`×`f` boxes of Y and chroma `2f`×`2f` boxes of Cb and Cr, all
/// over the `w`×`h` pixel grid, and [`requantize`] goes from 16 bits to
/// `out_depth`. Sums stay below `64 * 61440 < 2^22`.
///
/// Samples above the source depth's maximum (which [`Picture`] only lets in
/// through `planes_mut`) do not panic: RGB clamps them, YCbCr averages clamp
/// at the output.
pub fn downscale_420(src: &Picture, factor: u32, out_depth: u8) -> Result<Picture, Av1Error> {
    if !matches!(factor, 1 | 2 | 4) {
        return Err(Av1Error::Factor(factor));
    }
    if !matches!(out_depth, 8 | 10) {
        return Err(Av1Error::OutputDepth(out_depth));
    }
    let depth = src.bit_depth();
    if !(8..=16).contains(&depth) {
        return Err(Av1Error::InputDepth(depth));
    }
    let (w, h) = (src.width(), src.height());
    let even = |v: u32| v + (v & 1);
    let (ow, oh) = (even(w.div_ceil(factor)), even(h.div_ceil(factor)));
    let (cw, ch) = (ow / 2, oh / 2);
    let planes = match src.layout() {
        layout @ (Layout::Yuv422 | Layout::Yuv420) => {
            let p = src.planes();
            let luma = Source {
                w,
                h,
                bw: factor,
                bh: factor,
            };
            let y = luma.average(ow, oh, depth, out_depth, |x, y| {
                u32::from(p[0][(y * w + x) as usize])
            });
            let (sx, sy) = layout.subsampling(1);
            let (pw, ph) = src.plane_dims(1);
            let chroma = Source {
                w: pw,
                h: ph,
                bw: (2 * factor) >> sx,
                bh: (2 * factor) >> sy,
            };
            let cb = chroma.average(cw, ch, depth, out_depth, |x, y| {
                u32::from(p[1][(y * pw + x) as usize])
            });
            let cr = chroma.average(cw, ch, depth, out_depth, |x, y| {
                u32::from(p[2][(y * pw + x) as usize])
            });
            vec![y, cb, cr]
        }
        Layout::Rgb => {
            let p = src.planes();
            let max = (1u32 << depth) - 1;
            // A table of step 1 of `bt709_limited16`: the same values, no
            // division per sample.
            let lut: Vec<u32> = (0..=max).map(|c| expand16(c, max)).collect();
            let rgb = |x: u32, y: u32| {
                let i = (y * w + x) as usize;
                let c = |plane: &Vec<u16>| lut[usize::from(plane[i]).min(max as usize)];
                (c(&p[0]), c(&p[1]), c(&p[2]))
            };
            let luma = Source {
                w,
                h,
                bw: factor,
                bh: factor,
            };
            let chroma = Source {
                w,
                h,
                bw: 2 * factor,
                bh: 2 * factor,
            };
            let y = luma.average(ow, oh, 16, out_depth, |x, y| {
                let (r, g, b) = rgb(x, y);
                luma16(r, g, b)
            });
            let cb = chroma.average(cw, ch, 16, out_depth, |x, y| {
                let (r, g, b) = rgb(x, y);
                cb16(r, g, b)
            });
            let cr = chroma.average(cw, ch, 16, out_depth, |x, y| {
                let (r, g, b) = rgb(x, y);
                cr16(r, g, b)
            });
            vec![y, cb, cr]
        }
        other => return Err(Av1Error::InputLayout(other)),
    };
    Ok(Picture::new(Layout::Yuv420, ow, oh, out_depth, planes)?)
}

/// A source plane of `w`×`h` samples read through `bw`×`bh` boxes.
struct Source {
    w: u32,
    h: u32,
    bw: u32,
    bh: u32,
}

impl Source {
    /// The `ow`×`oh` plane of box averages of `sample(x, y)`, requantised
    /// from `from` to `to` bits.
    fn average(
        &self,
        ow: u32,
        oh: u32,
        from: u8,
        to: u8,
        sample: impl Fn(u32, u32) -> u32 + Sync,
    ) -> Vec<u16> {
        let n = self.bw * self.bh;
        let mut out = vec![0u16; ow as usize * oh as usize];
        out.par_chunks_mut(ow as usize)
            .enumerate()
            .for_each(|(oy, row)| {
                let oy = oy as u32;
                for (ox, v) in (0u32..).zip(row.iter_mut()) {
                    let mut sum = 0u32;
                    for j in 0..self.bh {
                        let y = (oy * self.bh + j).min(self.h - 1);
                        for i in 0..self.bw {
                            let x = (ox * self.bw + i).min(self.w - 1);
                            sum += sample(x, y);
                        }
                    }
                    *v = requantize((sum + n / 2) / n, from, to);
                }
            });
        out
    }
}
