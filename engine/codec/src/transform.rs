//! The reversible transforms, in integers: level shift, colour (RCT), the
//! inter-band 5/3 wavelet of spectral cubes, and the spatial 5/3 wavelet per
//! slice.
//!
//! The 5/3 lifting is JPEG 2000's reversible filter with whole-sample
//! symmetric extension at both ends of every signal, for any length ≥ 1:
//!
//! ```text
//! d[i] = x[2i+1] - ((x[2i] + x[2i+2]) >> 1)        (x[n] = x[n-2])
//! s[i] = x[2i]   + ((d[i-1] + d[i] + 2) >> 2)      (d[-1] = d[0], d[nh] = d[nh-1])
//! ```
//!
//! Lows go to the first `ceil(n/2)` positions, highs after them. `>>` is an
//! arithmetic shift (floor division), as in WGSL. The inverse transforms wrap
//! on overflow, as WGSL does, so a hostile stream cannot panic the decoder.

use super::geometry::{Geometry, split};
use med8k_media::picture::{Layout, Picture};

/// Turn a picture into coefficients (before the spatial wavelet): level
/// shift to signed, then the RCT for RGB(A) or the inter-band wavelet for cubes.
pub fn forward_components(pic: &Picture, geom: &Geometry) -> Vec<i32> {
    let mut coef = vec![0i32; geom.coefficients];
    let shift = 1i32 << (pic.bit_depth() - 1);
    for (plane, g) in pic.planes().iter().zip(&geom.planes) {
        let dst = &mut coef[g.offset..g.offset + plane.len()];
        for (d, &s) in dst.iter_mut().zip(plane) {
            *d = i32::from(s) - shift;
        }
    }
    let n = pic.planes()[0].len();
    match pic.layout() {
        Layout::Rgb | Layout::Rgba => {
            let (r, rest) = coef.split_at_mut(n);
            let (g, rest) = rest.split_at_mut(n);
            let b = &mut rest[..n];
            for i in 0..n {
                let (rr, gg, bb) = (r[i], g[i], b[i]);
                r[i] = (rr + 2 * gg + bb) >> 2;
                g[i] = bb - gg;
                b[i] = rr - gg;
            }
        }
        Layout::Bands(bands) => spectral_forward(&mut coef, n, usize::from(bands)),
        Layout::Gray | Layout::Yuv422 | Layout::Yuv420 => {}
    }
    coef
}

/// Undo [`forward_components`] into `pic`, clamping to the bit depth's range.
pub fn inverse_components(mut coef: Vec<i32>, pic: &mut Picture, geom: &Geometry) {
    let n = pic.planes()[0].len();
    match pic.layout() {
        Layout::Rgb | Layout::Rgba => {
            let (y, rest) = coef.split_at_mut(n);
            let (cb, rest) = rest.split_at_mut(n);
            let cr = &mut rest[..n];
            for i in 0..n {
                let g = y[i].wrapping_sub(cb[i].wrapping_add(cr[i]) >> 2);
                let (r, b) = (cr[i].wrapping_add(g), cb[i].wrapping_add(g));
                y[i] = r;
                cb[i] = g;
                cr[i] = b;
            }
        }
        Layout::Bands(bands) => spectral_inverse(&mut coef, n, usize::from(bands)),
        Layout::Gray | Layout::Yuv422 | Layout::Yuv420 => {}
    }
    let shift = 1i32 << (pic.bit_depth() - 1);
    let max = (1i32 << pic.bit_depth()) - 1;
    for (plane, g) in pic.planes_mut().iter_mut().zip(&geom.planes) {
        let src = &coef[g.offset..g.offset + plane.len()];
        for (d, &s) in plane.iter_mut().zip(src) {
            *d = s.wrapping_add(shift).clamp(0, max) as u16;
        }
    }
}

/// Dyadic 5/3 along the band axis at every pixel: lows first, then highs
/// of each level, until one low band is left.
fn spectral_forward(coef: &mut [i32], n: usize, bands: usize) {
    let lens = band_levels(bands);
    across_bands(coef, n, bands, |x, out, run| {
        for &len in &lens {
            lift_rows_forward(&x[..len * run], &mut out[..len * run], run);
            x[..len * run].copy_from_slice(&out[..len * run]);
        }
    });
}

fn spectral_inverse(coef: &mut [i32], n: usize, bands: usize) {
    let lens = band_levels(bands);
    across_bands(coef, n, bands, |x, out, run| {
        for &len in lens.iter().rev() {
            lift_rows_inverse(&x[..len * run], &mut out[..len * run], run);
            x[..len * run].copy_from_slice(&out[..len * run]);
        }
    });
}

/// Signal lengths of the band-axis levels: `bands`, its low half, ... down to 2.
fn band_levels(bands: usize) -> Vec<usize> {
    let mut lens = vec![];
    let mut len = bands;
    while len > 1 {
        lens.push(len);
        len = split(len as u32).0 as usize;
    }
    lens
}

/// Run `f(bands, scratch, run)` on runs of pixels of band-sequential `coef`,
/// in parallel: `bands` holds the run's samples band by band (`run` per band),
/// so the band-axis lifting below works on whole rows at a time.
fn across_bands(
    coef: &mut [i32],
    n: usize,
    bands: usize,
    f: impl Fn(&mut [i32], &mut [i32], usize) + Sync,
) {
    use rayon::prelude::*;
    const RUN: usize = 2048;
    if n == 0 {
        return;
    }
    // Group the same run of pixels of every band together.
    let mut runs: Vec<Vec<&mut [i32]>> = (0..n.div_ceil(RUN))
        .map(|_| Vec::with_capacity(bands))
        .collect();
    for plane in coef[..bands * n].chunks_mut(n) {
        for (run, part) in runs.iter_mut().zip(plane.chunks_mut(RUN)) {
            run.push(part);
        }
    }
    runs.into_par_iter().for_each_init(
        || (vec![0i32; bands * RUN], vec![0i32; bands * RUN]),
        |(x, out), mut parts| {
            let run = parts[0].len();
            for (b, p) in parts.iter().enumerate() {
                x[b * run..(b + 1) * run].copy_from_slice(p);
            }
            f(x, out, run);
            for (b, p) in parts.iter_mut().enumerate() {
                p.copy_from_slice(&x[b * run..(b + 1) * run]);
            }
        },
    );
}

/// [`lift_forward`] at every pixel of a run at once: `x` and `out` hold
/// `len` rows of `run` samples, one row per position along the signal.
fn lift_rows_forward(x: &[i32], out: &mut [i32], run: usize) {
    let n = x.len() / run;
    let row = |i: usize| &x[i * run..(i + 1) * run];
    if n == 1 {
        out.copy_from_slice(x);
        return;
    }
    let (nl, nh) = (n.div_ceil(2), n / 2);
    let (lo, hi) = out.split_at_mut(nl * run);
    for i in 0..nh {
        let (a, b) = (row(2 * i), row(2 * i + 1));
        let c = row(if 2 * i + 2 < n { 2 * i + 2 } else { 2 * i });
        for (((h, &a), &b), &c) in hi[i * run..(i + 1) * run].iter_mut().zip(a).zip(b).zip(c) {
            *h = b - ((a + c) >> 1);
        }
    }
    for i in 0..nl {
        let (dl, dr) = (i.saturating_sub(1), i.min(nh - 1));
        let (dl, dr) = (&hi[dl * run..(dl + 1) * run], &hi[dr * run..(dr + 1) * run]);
        for (((l, &a), &d0), &d1) in lo[i * run..(i + 1) * run]
            .iter_mut()
            .zip(row(2 * i))
            .zip(dl)
            .zip(dr)
        {
            *l = a + ((d0 + d1 + 2) >> 2);
        }
    }
}

/// [`lift_inverse`] at every pixel of a run at once (rows as in
/// [`lift_rows_forward`]).
fn lift_rows_inverse(c: &[i32], out: &mut [i32], run: usize) {
    let n = c.len() / run;
    if n == 1 {
        out.copy_from_slice(c);
        return;
    }
    let (nl, nh) = (n.div_ceil(2), n / 2);
    let (lo, hi) = c.split_at(nl * run);
    let hrow = |i: usize| &hi[i * run..(i + 1) * run];
    for i in 0..nl {
        let (dl, dr) = (hrow(i.saturating_sub(1)), hrow(i.min(nh - 1)));
        for (((o, &l), &d0), &d1) in out[2 * i * run..(2 * i + 1) * run]
            .iter_mut()
            .zip(&lo[i * run..(i + 1) * run])
            .zip(dl)
            .zip(dr)
        {
            *o = l.wrapping_sub(d0.wrapping_add(d1).wrapping_add(2) >> 2);
        }
    }
    for i in 0..nh {
        let r = if 2 * i + 2 < n { 2 * i + 2 } else { 2 * i };
        // Row 2i+1 from rows 2i and r (both even, already written).
        let (before, after) = out.split_at_mut((2 * i + 1) * run);
        let left = &before[2 * i * run..(2 * i + 1) * run];
        let (odd, rest) = after.split_at_mut(run);
        let right: &[i32] = if r == 2 * i { left } else { &rest[..run] };
        for (((o, &h), &a), &b) in odd.iter_mut().zip(hrow(i)).zip(left).zip(right) {
            *o = h.wrapping_add(a.wrapping_add(b) >> 1);
        }
    }
}

/// One 5/3 level of `x` into `out` (lows then highs).
pub fn lift_forward(x: &[i32], out: &mut [i32]) {
    let n = x.len();
    if n == 1 {
        out[0] = x[0];
        return;
    }
    let (nl, nh) = (n.div_ceil(2), n / 2);
    let (lo, hi) = out.split_at_mut(nl);
    for i in 0..nh {
        let right = if 2 * i + 2 < n {
            x[2 * i + 2]
        } else {
            x[2 * i]
        };
        hi[i] = x[2 * i + 1] - ((x[2 * i] + right) >> 1);
    }
    for i in 0..nl {
        let dl = hi[i.saturating_sub(1)];
        let dr = hi[i.min(nh - 1)];
        lo[i] = x[2 * i] + ((dl + dr + 2) >> 2);
    }
}

/// Undo [`lift_forward`]: `c` holds lows then highs, `out` gets the signal.
pub fn lift_inverse(c: &[i32], out: &mut [i32]) {
    let n = c.len();
    if n == 1 {
        out[0] = c[0];
        return;
    }
    let (nl, nh) = (n.div_ceil(2), n / 2);
    let (lo, hi) = c.split_at(nl);
    for i in 0..nl {
        let dl = hi[i.saturating_sub(1)];
        let dr = hi[i.min(nh - 1)];
        out[2 * i] = lo[i].wrapping_sub(dl.wrapping_add(dr).wrapping_add(2) >> 2);
    }
    for i in 0..nh {
        let right = if 2 * i + 2 < n {
            out[2 * i + 2]
        } else {
            out[2 * i]
        };
        out[2 * i + 1] = hi[i].wrapping_add(out[2 * i].wrapping_add(right) >> 1);
    }
}

/// The 2-D wavelet of one region (`width`×`height` at `buf[0]`, rows `stride`
/// apart), `levels` deep, in place. `tmp` is scratch.
pub fn spatial_forward(
    buf: &mut [i32],
    stride: usize,
    width: u32,
    height: u32,
    levels: u8,
    tmp: &mut Vec<i32>,
) {
    let (mut w, mut h) = (width as usize, height as usize);
    for _ in 0..levels {
        if w > 1 {
            tmp.resize(w, 0);
            for y in 0..h {
                let row = &mut buf[y * stride..y * stride + w];
                tmp.copy_from_slice(row);
                lift_forward(tmp, row);
            }
        }
        if h > 1 {
            columns_forward(buf, stride, w, h, tmp);
        }
        w = w.div_ceil(2);
        h = h.div_ceil(2);
    }
}

/// Undo [`spatial_forward`].
pub fn spatial_inverse(
    buf: &mut [i32],
    stride: usize,
    width: u32,
    height: u32,
    levels: u8,
    tmp: &mut Vec<i32>,
) {
    let mut dims = vec![(width as usize, height as usize)];
    for _ in 1..levels {
        let (w, h) = dims[dims.len() - 1];
        dims.push((w.div_ceil(2), h.div_ceil(2)));
    }
    for &(w, h) in dims.iter().rev().take(usize::from(levels)) {
        if h > 1 {
            columns_inverse(buf, stride, w, h, tmp);
        }
        if w > 1 {
            tmp.resize(w, 0);
            for y in 0..h {
                let row = &mut buf[y * stride..y * stride + w];
                tmp.copy_from_slice(row);
                lift_inverse(tmp, row);
            }
        }
    }
}

/// Vertical lifting, a whole row at a time (so the inner loops vectorise).
fn columns_forward(buf: &mut [i32], stride: usize, w: usize, h: usize, tmp: &mut Vec<i32>) {
    tmp.resize(w * h, 0);
    for y in 0..h {
        tmp[y * w..(y + 1) * w].copy_from_slice(&buf[y * stride..y * stride + w]);
    }
    let (nl, nh) = (h.div_ceil(2), h / 2);
    let x = |r: usize| &tmp[r * w..(r + 1) * w];
    for i in 0..nh {
        let (a, b, c) = (
            x(2 * i),
            x(2 * i + 1),
            x(if 2 * i + 2 < h { 2 * i + 2 } else { 2 * i }),
        );
        let out = &mut buf[(nl + i) * stride..(nl + i) * stride + w];
        for j in 0..w {
            out[j] = b[j] - ((a[j] + c[j]) >> 1);
        }
    }
    for i in 0..nl {
        let (dl, dr) = (
            (nl + i.saturating_sub(1)) * stride,
            (nl + i.min(nh - 1)) * stride,
        );
        let src = x(2 * i);
        for j in 0..w {
            let v = src[j] + ((buf[dl + j] + buf[dr + j] + 2) >> 2);
            buf[i * stride + j] = v;
        }
    }
}

fn columns_inverse(buf: &mut [i32], stride: usize, w: usize, h: usize, tmp: &mut Vec<i32>) {
    tmp.resize(w * h, 0);
    for y in 0..h {
        tmp[y * w..(y + 1) * w].copy_from_slice(&buf[y * stride..y * stride + w]);
    }
    let (nl, nh) = (h.div_ceil(2), h / 2);
    for i in 0..nl {
        let (dl, dr) = ((nl + i.saturating_sub(1)) * w, (nl + i.min(nh - 1)) * w);
        let out = 2 * i * stride;
        for j in 0..w {
            buf[out + j] = tmp[i * w + j]
                .wrapping_sub(tmp[dl + j].wrapping_add(tmp[dr + j]).wrapping_add(2) >> 2);
        }
    }
    for i in 0..nh {
        let (a, c) = (
            2 * i * stride,
            if 2 * i + 2 < h {
                (2 * i + 2) * stride
            } else {
                2 * i * stride
            },
        );
        let out = (2 * i + 1) * stride;
        let hi = (nl + i) * w;
        for j in 0..w {
            buf[out + j] = tmp[hi + j].wrapping_add(buf[a + j].wrapping_add(buf[c + j]) >> 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> i32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as i32 & 0xffff) - 0x8000
    }

    #[test]
    fn lifting_round_trips_every_length() {
        let mut seed = 1;
        for n in 1..40 {
            let x: Vec<i32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let mut c = vec![0; n];
            let mut y = vec![0; n];
            lift_forward(&x, &mut c);
            lift_inverse(&c, &mut y);
            assert_eq!(x, y, "n = {n}");
        }
    }

    #[test]
    fn lifting_matches_the_filter_on_a_ramp() {
        // A linear ramp has zero highs (the 5/3 predicts lines exactly) away from the end.
        let x: Vec<i32> = (0..16).map(|i| 3 * i).collect();
        let mut c = vec![0; 16];
        lift_forward(&x, &mut c);
        assert!(c[8..15].iter().all(|&d| d == 0), "{c:?}");
        assert_eq!(&c[..3], &[0, 6, 12]);
    }

    #[test]
    fn spatial_round_trips_odd_regions() {
        let mut seed = 7;
        for (w, h, levels) in [(13, 9, 3), (1, 7, 2), (8, 1, 4), (33, 32, 5), (5, 5, 0)] {
            let stride = w as usize + 3;
            let orig: Vec<i32> = (0..stride * h as usize).map(|_| lcg(&mut seed)).collect();
            let mut buf = orig.clone();
            let mut tmp = vec![];
            spatial_forward(&mut buf, stride, w, h, levels, &mut tmp);
            if levels > 0 && w > 2 && h > 2 {
                assert_ne!(buf, orig);
            }
            spatial_inverse(&mut buf, stride, w, h, levels, &mut tmp);
            assert_eq!(buf, orig, "{w}x{h} levels {levels}");
        }
    }

    #[test]
    fn components_round_trip_rgb_and_bands() {
        let mut seed = 3;
        for layout in [Layout::Rgb, Layout::Rgba, Layout::Bands(7), Layout::Yuv420] {
            for depth in [8u8, 10, 12, 16] {
                let (w, h) = (11, 6);
                let planes = (0..layout.plane_count())
                    .map(|p| {
                        let (pw, ph) = layout.plane_dims(p, w, h);
                        (0..pw * ph)
                            .map(|i| match i % 5 {
                                0 => 0,
                                1 => ((1u32 << depth) - 1) as u16,
                                _ => (lcg(&mut seed) as u32 & ((1 << depth) - 1)) as u16,
                            })
                            .collect()
                    })
                    .collect();
                let pic = Picture::new(layout, w, h, depth, planes).unwrap();
                let geom = Geometry::new(layout, w, h, 4, 2);
                let coef = forward_components(&pic, &geom);
                let mut back = Picture::zeroed(layout, w, h, depth).unwrap();
                inverse_components(coef, &mut back, &geom);
                assert_eq!(back, pic, "{layout} {depth}-bit");
            }
        }
    }
}
