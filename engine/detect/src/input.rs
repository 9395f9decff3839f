//! Model inputs from frames and cubes: the one preprocessing that training
//! (`med8k samples dataset`) and inference share.
//!
//! - [`frame_tensor`]: a Y'CbCr frame made into a planar `3 × height × width`
//!   tensor (channels Y', Cb, Cr), each value `code / (2^bitdepth − 1)` in
//!   `[0, 1]`, by **area averaging**: output pixel `(ox, oy)` is the mean of
//!   the frame over the rectangle `[ox·W/w, (ox+1)·W/w) × [oy·H/h, (oy+1)·H/h)`
//!   (partial pixels weighted by their covered fraction). Chroma planes are
//!   first upsampled by replication (a Cb sample of 4:2:2 stands for its two
//!   pixels), so each output pixel averages the chroma samples covering its
//!   area. The sidecar's per-channel `(x − mean) / std` is applied later, by
//!   the engine.
//! - [`ycbcr_tensor`]: the same on raw planes ([`YCbCrPlanes`]), for buffers
//!   that are not a [`VideoFrame`] (the sample generator's `FrameBuffers`).
//! - [`picture_tensor`]: the same on the codec's [`Picture`] (4:2:2 or
//!   4:2:0), the planes the GPU twin ([`super::gpu_input`]) reads.
//! - [`cube_tile`]: a `bands × h × w` tile of a spectral cube, `code / 65535`,
//!   edges replicated outside the cube.
//! - [`mask_to_map`]: a lesion mask (non-zero = lesion) area-averaged to the
//!   model's map size: the fraction of lesion cells under each output pixel.
//!
//! Weights are whole overlaps and sums exact integers ([`AreaSums`], made by
//! [`ycbcr_sums`], [`frame_sums`] and [`picture_sums`]), with one division
//! per output value ([`AreaSums::tensor`]), so results do not depend on the
//! thread count or on where the sums were made; work is parallel over output
//! rows.

use rayon::prelude::*;

use med8k_media::frame::{PixelFormat, VideoFrame};
use med8k_media::picture::{Layout, Picture};
use med8k_media::planes::{Plane, Sample, YCbCrPlanes};
use med8k_media::spectral::SpectralCube;

/// Why a model input could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// The frame's pixel format has no Y'CbCr planes (RGB, RGBA).
    #[error(
        "pixel format {0} has no Y'CbCr planes; model inputs need I422_10LE, v210, I420 or I420_10LE"
    )]
    UnsupportedFormat(PixelFormat),
    /// A picture layout a frame model cannot read (spectral bands).
    #[error(
        "picture layout {0} is not a frame; frame models read yuv422, yuv420, rgb, rgba or gray"
    )]
    UnsupportedLayout(Layout),
    /// A zero-sized output or source.
    #[error("cannot make a {out_width}x{out_height} input from a {width}x{height} source")]
    BadSize {
        /// Source width.
        width: usize,
        /// Source height.
        height: usize,
        /// Requested output width.
        out_width: usize,
        /// Requested output height.
        out_height: usize,
    },
    /// A plane slice shorter than its geometry needs.
    #[error("plane {plane} holds {got} samples, its geometry needs {need}")]
    PlaneTooSmall {
        /// Plane index (0 = Y', 1 = Cb, 2 = Cr).
        plane: usize,
        /// Samples needed (`stride * (rows - 1) + cols`).
        need: usize,
        /// Samples given.
        got: usize,
    },
    /// A bit depth outside `1..=16`.
    #[error("bit depth {0} is outside 1..=16")]
    BadBitDepth(u32),
}

/// Area-averaging weights along one axis: for each output index, the source
/// samples it covers and their weights, in units of `1 / pixels` (they sum to
/// `pixels`).
///
/// `pixels` frame pixels map onto `out` outputs; frame pixel `i` reads sample
/// `min(i >> shift, samples - 1)`.
pub(crate) fn taps(
    pixels: usize,
    out: usize,
    shift: u32,
    samples: usize,
) -> Vec<Vec<(usize, u64)>> {
    (0..out)
        .map(|o| {
            // In units of 1/out frame pixels the output covers [o*pixels, (o+1)*pixels)
            // and frame pixel i covers [i*out, (i+1)*out): integer overlaps.
            let (a, b) = (o * pixels, (o + 1) * pixels);
            let first = a / out;
            let last = (b - 1) / out;
            let mut t: Vec<(usize, u64)> = Vec::new();
            for i in first..=last.min(pixels - 1) {
                let overlap = ((i + 1) * out).min(b) - (i * out).max(a);
                if overlap == 0 {
                    continue;
                }
                let s = (i >> shift).min(samples - 1);
                let w = overlap as u64;
                match t.last_mut() {
                    Some((ls, lw)) if *ls == s => *lw += w,
                    _ => t.push((s, w)),
                }
            }
            t
        })
        .collect()
}

/// Exact area sums of a set of planes, before the division that makes them
/// a model input: what the CPU and the GPU both compute, bit for bit.
///
/// `sums[(p * out_h + oy) * out_w + ox]` is `Σ wx · wy · code` over the
/// samples of plane `p` under output `(ox, oy)`, weights in units of
/// `1 / out_w` pixel across and `1 / out_h` pixel down, so the weights of one
/// output add up to `width × height` (see the module docs): a sum is at most
/// `width × height × 65535`, below 2^48 for sides of at most 65536.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AreaSums {
    /// Source width in pixels.
    pub width: usize,
    /// Source height in pixels.
    pub height: usize,
    /// Output width.
    pub out_w: usize,
    /// Output height.
    pub out_h: usize,
    /// The code of full scale (`2^bit_depth − 1`), which the tensor maps to 1.
    pub full_scale: u32,
    /// Planar `planes × out_h × out_w` sums.
    pub sums: Vec<u64>,
}

impl AreaSums {
    /// The model input: each sum divided by `width × height × full_scale`
    /// (in f64, then rounded once to f32).
    pub fn tensor(&self) -> Vec<f32> {
        let denominator =
            self.width as f64 * self.height as f64 * f64::from(self.full_scale.max(1));
        self.sums
            .par_iter()
            .map(|&sum| (sum as f64 / denominator) as f32)
            .collect()
    }
}

/// The [`AreaSums`] of planes given as row readers.
///
/// `dims[p]` is `(cols, rows, shift_x, shift_y)` of plane `p`;
/// `read(p, row, buf, add)` puts row `row` of plane `p` into `buf` (`cols`
/// long) as code values of at most 16 bits, added to what is there when
/// `add` and in its place otherwise.
fn area_sums<F>(
    width: usize,
    height: usize,
    dims: &[(usize, usize, u32, u32)],
    out_w: usize,
    out_h: usize,
    full_scale: u32,
    read: F,
) -> AreaSums
where
    F: Fn(usize, usize, &mut [u32], bool) + Sync,
{
    let plane_taps: Vec<_> = dims
        .iter()
        .map(|&(cols, rows, sx, sy)| (taps(width, out_w, sx, cols), taps(height, out_h, sy, rows)))
        .collect();
    let mut sums = vec![0u64; dims.len() * out_w * out_h];
    for (p, chunk) in sums.chunks_exact_mut(out_w * out_h).enumerate() {
        let (tx, ty) = &plane_taps[p];
        let cols = dims[p].0;
        chunk
            .par_chunks_exact_mut(out_w)
            .zip(ty.par_iter())
            .for_each_init(
                || (vec![0u64; cols], vec![0u32; cols], vec![0u32; cols]),
                |(acc, whole, row), (dst, row_taps)| {
                    // Rows wholly under the output (the common weight) are
                    // added plainly and weighted once at the end; only the
                    // partly covered rows at the edges take a multiply per
                    // sample. At most 65536 rows of 65535: inside a u32.
                    let full = row_taps.iter().map(|t| t.1).max().unwrap_or(0);
                    acc.fill(0);
                    whole.fill(0);
                    for &(sy, wy) in row_taps {
                        if wy == full {
                            read(p, sy, whole, true);
                        } else {
                            read(p, sy, row, false);
                            for (a, &v) in acc.iter_mut().zip(row.iter()) {
                                *a += wy * u64::from(v);
                            }
                        }
                    }
                    for (d, col_taps) in dst.iter_mut().zip(tx) {
                        // At most width · height · 65535: exact for sides up to 2^24.
                        *d = col_taps
                            .iter()
                            .map(|&(sx, wx)| wx * (acc[sx] + full * u64::from(whole[sx])))
                            .sum();
                    }
                },
            );
    }
    AreaSums {
        width,
        height,
        out_w,
        out_h,
        full_scale,
        sums,
    }
}

fn check_plane<T>(
    plane: usize,
    p: &Plane<'_, T>,
    cols: usize,
    rows: usize,
) -> Result<(), InputError> {
    let need = p.stride.max(cols) * (rows - 1) + cols;
    if p.data.len() < need || p.stride < cols {
        return Err(InputError::PlaneTooSmall {
            plane,
            need,
            got: p.data.len(),
        });
    }
    Ok(())
}

fn check_size(width: usize, height: usize, out_w: usize, out_h: usize) -> Result<(), InputError> {
    if width == 0 || height == 0 || out_w == 0 || out_h == 0 {
        return Err(InputError::BadSize {
            width,
            height,
            out_width: out_w,
            out_height: out_h,
        });
    }
    Ok(())
}

/// The model input of raw Y'CbCr planes: planar `3 × out_h × out_w` (Y', Cb,
/// Cr), `code / (2^bit_depth − 1)`, area-averaged (see the module docs).
pub fn ycbcr_tensor<T: Sample>(
    planes: &YCbCrPlanes<'_, T>,
    out_w: usize,
    out_h: usize,
) -> Result<Vec<f32>, InputError> {
    Ok(ycbcr_sums(planes, out_w, out_h)?.tensor())
}

/// The exact sums behind [`ycbcr_tensor`].
pub fn ycbcr_sums<T: Sample>(
    planes: &YCbCrPlanes<'_, T>,
    out_w: usize,
    out_h: usize,
) -> Result<AreaSums, InputError> {
    let (w, h) = (planes.width, planes.height);
    check_size(w, h, out_w, out_h)?;
    if !(1..=16).contains(&planes.bit_depth) {
        return Err(InputError::BadBitDepth(planes.bit_depth));
    }
    let (sx, sy) = planes.chroma_shift;
    let (cw, ch) = (w.div_ceil(1 << sx), h.div_ceil(1 << sy));
    let list = [planes.y, planes.cb, planes.cr];
    check_plane(0, &list[0], w, h)?;
    check_plane(1, &list[1], cw, ch)?;
    check_plane(2, &list[2], cw, ch)?;
    let full_scale = (1u32 << planes.bit_depth) - 1;
    let dims = [(w, h, 0, 0), (cw, ch, sx, sy), (cw, ch, sx, sy)];
    Ok(area_sums(
        w,
        h,
        &dims,
        out_w,
        out_h,
        full_scale,
        |p, row, buf, add| {
            let pl = &list[p];
            let src = &pl.data[row * pl.stride..][..buf.len()];
            if add {
                for (b, &s) in buf.iter_mut().zip(src) {
                    *b += s.code();
                }
            } else {
                for (b, &s) in buf.iter_mut().zip(src) {
                    *b = s.code();
                }
            }
        },
    ))
}

/// The model input of a codec [`Picture`] of layout `yuv422` or `yuv420`:
/// planar `3 × out_h × out_w`, as [`frame_tensor`] (a picture made by
/// [`Picture::from_frame`] gives the frame's tensor). The GPU twin
/// ([`GpuModelInput`](crate::gpu_input)) reads the same layouts; for a
/// still picture of any frame layout, see [`still_tensor`].
pub fn picture_tensor(pic: &Picture, out_w: usize, out_h: usize) -> Result<Vec<f32>, InputError> {
    Ok(picture_sums(pic, out_w, out_h)?.tensor())
}

/// The exact sums behind [`picture_tensor`]; other layouts are an
/// [`InputError::UnsupportedLayout`].
pub fn picture_sums(pic: &Picture, out_w: usize, out_h: usize) -> Result<AreaSums, InputError> {
    let chroma_shift = match pic.layout() {
        Layout::Yuv422 | Layout::Yuv420 => pic.layout().subsampling(1),
        other => return Err(InputError::UnsupportedLayout(other)),
    };
    let plane = |p: usize| Plane {
        data: &pic.planes()[p][..],
        stride: pic.plane_dims(p).0 as usize,
    };
    ycbcr_sums(
        &YCbCrPlanes {
            width: pic.width() as usize,
            height: pic.height() as usize,
            bit_depth: u32::from(pic.bit_depth()),
            chroma_shift,
            y: plane(0),
            cb: plane(1),
            cr: plane(2),
        },
        out_w,
        out_h,
    )
}

/// The model input of a still picture of any frame layout (a PNG or PPM
/// grab of the monitor): `yuv422`/`yuv420` as [`picture_tensor`]; `rgb`,
/// `rgba` and `gray` first converted as a camera's encoder would (BT.709,
/// 10-bit limited range, 4:4:4). Spectral layouts are an
/// [`InputError::UnsupportedLayout`].
pub fn still_tensor(pic: &Picture, out_w: usize, out_h: usize) -> Result<Vec<f32>, InputError> {
    if !matches!(pic.layout(), Layout::Rgb | Layout::Rgba | Layout::Gray) {
        return picture_tensor(pic, out_w, out_h);
    }
    let [y, cb, cr] = bt709_planes(pic);
    let plane = |data| Plane {
        data,
        stride: pic.width() as usize,
    };
    ycbcr_tensor(
        &YCbCrPlanes {
            width: pic.width() as usize,
            height: pic.height() as usize,
            bit_depth: 10,
            chroma_shift: (0, 0),
            y: plane(&y[..]),
            cb: plane(&cb[..]),
            cr: plane(&cr[..]),
        },
        out_w,
        out_h,
    )
}

/// An RGB(A) or grey picture as 10-bit limited-range BT.709 Y'CbCr planes at
/// full resolution (`Y' = 64 + 876·E'y`, `C = 512 + 896·E'c`).
fn bt709_planes(pic: &Picture) -> [Vec<u16>; 3] {
    let n = pic.width() as usize * pic.height() as usize;
    let full = f64::from((1u32 << pic.bit_depth()) - 1);
    let planes = pic.planes();
    let grey = pic.layout() == Layout::Gray;
    let code = |v: f64, lo: f64, span: f64| (lo + span * v).round().clamp(0.0, 1023.0) as u16;
    let mut out = [vec![0u16; n], vec![0u16; n], vec![0u16; n]];
    let [y, cb, cr] = &mut out;
    y.par_iter_mut()
        .zip(cb.par_iter_mut())
        .zip(cr.par_iter_mut())
        .enumerate()
        .for_each(|(i, ((y, cb), cr))| {
            let at = |p: usize| f64::from(planes[p][i]) / full;
            let (r, g, b) = if grey {
                (at(0), at(0), at(0))
            } else {
                (at(0), at(1), at(2))
            };
            let luma = 0.2126 * r + 0.7152 * g + 0.0722 * b;
            *y = code(luma, 64.0, 876.0);
            *cb = code((b - luma) / 1.8556, 512.0, 896.0);
            *cr = code((r - luma) / 1.5748, 512.0, 896.0);
        });
    out
}

/// The model input of a frame: planar `3 × height × width` (Y', Cb, Cr),
/// `code / (2^bitdepth − 1)`, area-averaged (see the module docs).
///
/// Handles `I422_10LE`, `v210`, `I420` and `I420_10LE`; RGB formats are an
/// [`InputError::UnsupportedFormat`].
pub fn frame_tensor(frame: &VideoFrame, width: u32, height: u32) -> Result<Vec<f32>, InputError> {
    Ok(frame_sums(frame, width, height)?.tensor())
}

/// The exact sums behind [`frame_tensor`].
pub fn frame_sums(frame: &VideoFrame, width: u32, height: u32) -> Result<AreaSums, InputError> {
    let (fw, fh) = (frame.width() as usize, frame.height() as usize);
    let (ow, oh) = (width as usize, height as usize);
    let format = frame.format();
    let stride = |p: usize, unit: usize| frame.layout().planes()[p].stride / unit;
    match format {
        PixelFormat::I422_10 | PixelFormat::I420_10 => {
            let shift = if format == PixelFormat::I422_10 {
                (1, 0)
            } else {
                (1, 1)
            };
            let plane = |p| Plane {
                data: frame.plane_u16(p),
                stride: stride(p, 2),
            };
            ycbcr_sums(
                &YCbCrPlanes {
                    width: fw,
                    height: fh,
                    bit_depth: 10,
                    chroma_shift: shift,
                    y: plane(0),
                    cb: plane(1),
                    cr: plane(2),
                },
                ow,
                oh,
            )
        }
        PixelFormat::I420 => {
            let plane = |p| Plane {
                data: frame.plane(p),
                stride: stride(p, 1),
            };
            ycbcr_sums(
                &YCbCrPlanes {
                    width: fw,
                    height: fh,
                    bit_depth: 8,
                    chroma_shift: (1, 1),
                    y: plane(0),
                    cb: plane(1),
                    cr: plane(2),
                },
                ow,
                oh,
            )
        }
        PixelFormat::V210 => {
            check_size(fw, fh, ow, oh)?;
            let cw = fw.div_ceil(2);
            let l = frame.layout().planes()[0];
            let bytes = frame.plane(0);
            let dims = [(fw, fh, 0, 0), (cw, fh, 1, 0), (cw, fh, 1, 0)];
            Ok(area_sums(
                fw,
                fh,
                &dims,
                ow,
                oh,
                1023,
                |p, row, buf, add| {
                    v210_row(&bytes[row * l.stride..][..l.row_bytes], p, buf, add);
                },
            ))
        }
        other => Err(InputError::UnsupportedFormat(other)),
    }
}

/// Decode plane `p` (0 = Y', 1 = Cb, 2 = Cr) of one v210 row into `buf`
/// (10-bit codes), added to what is there when `add`.
fn v210_row(row: &[u8], p: usize, buf: &mut [u32], add: bool) {
    let s = |wd: u32, k: u32| (wd >> (10 * k)) & 0x3ff;
    let slots = med8k_media::frame::v210::group_slots(p);
    for (g, words) in row.chunks_exact(16).enumerate() {
        let base = g * slots.len();
        if base >= buf.len() {
            break;
        }
        let word = |i: usize| {
            u32::from_le_bytes([
                words[4 * i],
                words[4 * i + 1],
                words[4 * i + 2],
                words[4 * i + 3],
            ])
        };
        for (k, &(wi, slot)) in slots.iter().enumerate() {
            if let Some(b) = buf.get_mut(base + k) {
                let v = s(word(wi), slot);
                *b = if add { *b + v } else { v };
            }
        }
    }
}

/// A `bands × h × w` tile of `cube` with its top-left corner at `(x, y)`,
/// each value `code / 65535`; pixels outside the cube repeat the nearest edge
/// pixel.
pub fn cube_tile(
    cube: &SpectralCube,
    x: usize,
    y: usize,
    w: usize,
    h: usize,
) -> Result<Vec<f32>, InputError> {
    let (cw, ch) = (cube.width(), cube.height());
    check_size(cw, ch, w, h)?;
    let data = cube.data();
    let bands = cube.band_count();
    let mut out = vec![0f32; bands * h * w];
    out.par_chunks_exact_mut(w)
        .enumerate()
        .for_each(|(i, dst)| {
            let (b, ty) = (i / h, i % h);
            let sy = (y + ty).min(ch - 1);
            let src = data.index_axis(ndarray::Axis(0), b);
            let src = src.index_axis(ndarray::Axis(0), sy);
            for (tx, d) in dst.iter_mut().enumerate() {
                let sx = (x + tx).min(cw - 1);
                *d = f32::from(src[sx]) / 65535.0;
            }
        });
    Ok(out)
}

/// A lesion mask (`mw × mh` bytes, row-major, non-zero = lesion) as an
/// `out_h × out_w` map: the fraction of lesion cells under each output pixel
/// (area averaging over the mask grid). A mask shorter than `mw × mh` or an
/// empty size gives an all-zero map.
pub fn mask_to_map(mask: &[u8], mw: usize, mh: usize, out_w: usize, out_h: usize) -> Vec<f32> {
    if mw == 0 || mh == 0 || out_w == 0 || out_h == 0 || mask.len() < mw * mh {
        return vec![0.0; out_w * out_h];
    }
    area_sums(
        mw,
        mh,
        &[(mw, mh, 0, 0)],
        out_w,
        out_h,
        1,
        |_, row, buf, add| {
            for (b, &m) in buf.iter_mut().zip(&mask[row * mw..][..mw]) {
                *b = u32::from(m != 0) + if add { *b } else { 0 };
            }
        },
    )
    .tensor()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use med8k_media::spectral::default_bands;
    use ndarray::Array3;

    fn close(a: &[f32], b: &[f32]) {
        assert_eq!(a.len(), b.len());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!((x - y).abs() < 1e-6, "at {i}: {x} vs {y}\n{a:?}\n{b:?}");
        }
    }

    /// A 4x2 I422_10 frame: luma 0..8 * 100, Cb 10/20 per row pair, Cr 1023.
    fn frame_422() -> VideoFrame {
        let mut f = VideoFrame::zeroed(4, 2, PixelFormat::I422_10).unwrap();
        let ys = f.layout().planes()[0].stride / 2;
        let cs = f.layout().planes()[1].stride / 2;
        for r in 0..2 {
            for c in 0..4 {
                f.plane_u16_mut(0)[r * ys + c] = (r * 4 + c) as u16 * 100;
            }
            f.plane_u16_mut(1)[r * cs] = 10;
            f.plane_u16_mut(1)[r * cs + 1] = 20 + r as u16 * 40;
            f.plane_u16_mut(2)[r * cs] = 1023;
            f.plane_u16_mut(2)[r * cs + 1] = 1023;
        }
        f
    }

    #[test]
    fn same_size_is_the_scaled_frame_with_chroma_replicated() {
        let t = frame_tensor(&frame_422(), 4, 2).unwrap();
        let k = 1.0 / 1023.0;
        let y: Vec<f32> = (0..8).map(|v| (v as f32 * 100.0) * k).collect();
        let cb = [10.0, 10.0, 20.0, 20.0, 10.0, 10.0, 60.0, 60.0].map(|v: f32| v * k);
        close(&t[..8], &y);
        close(&t[8..16], &cb);
        close(&t[16..], &[1.0; 8]);
    }

    #[test]
    fn downscale_averages_areas() {
        // 2x1: each output covers a 2x2 block.
        let t = frame_tensor(&frame_422(), 2, 1).unwrap();
        let k = 1.0 / 1023.0;
        close(
            &t,
            &[
                (0.0 + 100.0 + 400.0 + 500.0) / 4.0 * k,
                (200.0 + 300.0 + 600.0 + 700.0) / 4.0 * k,
                10.0 * k,
                (20.0 + 60.0) / 2.0 * k,
                1.0,
                1.0,
            ],
        );
        // 3 outputs over 4 columns: partial pixels weigh by their covered fraction.
        let t = frame_tensor(&frame_422(), 3, 1).unwrap();
        let col = |c: f32| ((c * 100.0) + (c + 4.0) * 100.0) / 2.0;
        let want0 = (col(0.0) + col(1.0) / 3.0) * 0.75 * k;
        assert!((t[0] - want0).abs() < 1e-6, "{} vs {want0}", t[0]);
        // Cb of output 1 covers pixels 4/3..8/3: 2/3 of pixel 1 (Cb 10) and 2/3 of pixel 2 (Cb 20|60).
        let want = (10.0 * (2.0 / 3.0) + 40.0 * (2.0 / 3.0)) * 0.75 * k;
        assert!((t[4] - want).abs() < 1e-6, "{} vs {want}", t[4]);
    }

    #[test]
    fn v210_matches_planar() {
        let src = frame_422();
        let packed = med8k_media::frame::v210::pack(&src).unwrap();
        for (w, h) in [(4, 2), (2, 1), (3, 2), (7, 3)] {
            close(
                &frame_tensor(&packed, w, h).unwrap(),
                &frame_tensor(&src, w, h).unwrap(),
            );
        }
    }

    #[test]
    fn i420_8bit_and_odd_sizes() {
        // 3x3 I420: chroma 2x2, the last chroma column/row covers one pixel.
        let mut f = VideoFrame::zeroed(3, 3, PixelFormat::I420).unwrap();
        let cs = f.layout().planes()[1].stride;
        f.plane_mut(0).fill(255);
        f.plane_mut(1)[0] = 255; // top-left chroma covers pixels (0..2, 0..2)
        f.plane_mut(2)[cs + 1] = 255; // bottom-right covers pixel (2, 2)
        let t = frame_tensor(&f, 1, 1).unwrap();
        close(&t, &[1.0, 4.0 / 9.0, 1.0 / 9.0]);
    }

    #[test]
    fn rgb_is_refused_and_empty_sizes_are_errors() {
        let f = VideoFrame::zeroed(4, 4, PixelFormat::Rgb8).unwrap();
        assert_eq!(
            frame_tensor(&f, 2, 2),
            Err(InputError::UnsupportedFormat(PixelFormat::Rgb8))
        );
        assert!(matches!(
            frame_tensor(&frame_422(), 0, 2),
            Err(InputError::BadSize { .. })
        ));
    }

    #[test]
    fn raw_planes_match_the_frame_path_and_short_planes_are_errors() {
        let f = frame_422();
        let y: Vec<u16> = (0..8).map(|v| v * 100).collect();
        let cb = vec![10, 20, 10, 60];
        let cr = vec![1023; 4];
        let planes = YCbCrPlanes {
            width: 4,
            height: 2,
            bit_depth: 10,
            chroma_shift: (1, 0),
            y: Plane {
                data: &y,
                stride: 4,
            },
            cb: Plane {
                data: &cb,
                stride: 2,
            },
            cr: Plane {
                data: &cr,
                stride: 2,
            },
        };
        close(
            &ycbcr_tensor(&planes, 3, 2).unwrap(),
            &frame_tensor(&f, 3, 2).unwrap(),
        );
        let short = YCbCrPlanes {
            cr: Plane {
                data: &cr[..3],
                stride: 2,
            },
            ..planes
        };
        assert_eq!(
            ycbcr_tensor(&short, 2, 2),
            Err(InputError::PlaneTooSmall {
                plane: 2,
                need: 4,
                got: 3
            })
        );
    }

    /// The sums against their definition, pixel by pixel: every frame pixel
    /// under an output adds its covered area (in units of 1/out_w by
    /// 1/out_h) times its sample. The ratios leave rows and columns partly
    /// covered at different weights, and chroma is subsampled both ways.
    #[test]
    fn sums_are_the_covered_areas_at_awkward_ratios() {
        let (w, h) = (37usize, 23usize);
        let mut seed = 7u32;
        let mut next = || {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (seed >> 16) as u16 & 0x3ff
        };
        let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
        let y: Vec<u16> = (0..w * h).map(|_| next()).collect();
        let cb: Vec<u16> = (0..cw * ch).map(|_| next()).collect();
        let cr: Vec<u16> = (0..cw * ch).map(|_| next()).collect();
        let planes = YCbCrPlanes {
            width: w,
            height: h,
            bit_depth: 10,
            chroma_shift: (1, 1),
            y: Plane {
                data: &y,
                stride: w,
            },
            cb: Plane {
                data: &cb,
                stride: cw,
            },
            cr: Plane {
                data: &cr,
                stride: cw,
            },
        };
        let overlap = |i: usize, o: usize, pixels: usize, out: usize| -> u64 {
            let (a, b) = (o * pixels, (o + 1) * pixels);
            (((i + 1) * out).min(b)).saturating_sub((i * out).max(a)) as u64
        };
        for (ow, oh) in [(5, 4), (7, 3), (36, 22), (2, 9)] {
            let got = ycbcr_sums(&planes, ow, oh).unwrap();
            let mut want = vec![0u64; 3 * ow * oh];
            for (p, data) in [&y, &cb, &cr].into_iter().enumerate() {
                let (shift, stride) = if p == 0 { (0, w) } else { (1, cw) };
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut sum = 0u64;
                        for j in 0..h {
                            for i in 0..w {
                                let a = overlap(i, ox, w, ow) * overlap(j, oy, h, oh);
                                sum += a * u64::from(data[(j >> shift) * stride + (i >> shift)]);
                            }
                        }
                        want[(p * oh + oy) * ow + ox] = sum;
                    }
                }
            }
            assert_eq!(got.sums, want, "{ow}x{oh}");
        }
    }

    #[test]
    fn upscaling_replicates() {
        let t = frame_tensor(&frame_422(), 8, 2).unwrap();
        let k = 1.0 / 1023.0;
        close(&t[..4], &[0.0, 0.0, 100.0 * k, 100.0 * k]);
    }

    #[test]
    fn pictures_match_their_frames_and_sums_give_the_tensor() {
        let mut f420 = VideoFrame::zeroed(5, 3, PixelFormat::I420).unwrap();
        for (i, v) in f420.plane_mut(0).iter_mut().enumerate() {
            *v = (i * 37 % 256) as u8;
        }
        f420.plane_mut(1)[1] = 200;
        for f in [frame_422(), f420] {
            let pic = Picture::from_frame(&f).unwrap();
            for (w, h) in [(4, 2), (3, 1), (7, 5)] {
                let sums = picture_sums(&pic, w, h).unwrap();
                assert_eq!(sums, frame_sums(&f, w as u32, h as u32).unwrap());
                assert_eq!(sums.tensor(), frame_tensor(&f, w as u32, h as u32).unwrap());
                assert_eq!(sums.sums.len(), 3 * w * h);
            }
        }
        let gray = Picture::zeroed(Layout::Gray, 4, 4, 8).unwrap();
        assert_eq!(
            picture_tensor(&gray, 2, 2),
            Err(InputError::UnsupportedLayout(Layout::Gray))
        );
        let bands = Picture::zeroed(Layout::Bands(7), 4, 4, 16).unwrap();
        assert_eq!(
            still_tensor(&bands, 2, 2),
            Err(InputError::UnsupportedLayout(Layout::Bands(7)))
        );
    }

    /// RGB stills meet the model as a BT.709 camera delivers them: the
    /// 100% colour bars' 10-bit codes of SMPTE RP 219 (Y', Cb, Cr).
    #[test]
    fn rgb_pictures_are_read_as_bt709_colour_bars() {
        let bars = [
            ([255, 255, 255], [940, 512, 512]),
            ([0, 0, 0], [64, 512, 512]),
            ([255, 0, 0], [250, 409, 960]),
            ([0, 255, 0], [691, 167, 105]),
            ([0, 0, 255], [127, 960, 471]),
            ([255, 255, 0], [877, 64, 553]),
        ];
        for (rgb, codes) in bars {
            let mut pic = Picture::zeroed(Layout::Rgb, 2, 2, 8).unwrap();
            for (plane, v) in pic.planes_mut().iter_mut().zip(rgb) {
                plane.fill(v);
            }
            let t = still_tensor(&pic, 1, 1).unwrap();
            let got: Vec<i64> = t.iter().map(|v| (v * 1023.0).round() as i64).collect();
            for (g, want) in got.iter().zip(codes) {
                assert!((g - want).abs() <= 1, "{rgb:?}: {got:?} against {codes:?}");
            }
        }
        let mut gray = Picture::zeroed(Layout::Gray, 2, 2, 8).unwrap();
        gray.planes_mut()[0].fill(255);
        let t = still_tensor(&gray, 1, 1).unwrap();
        assert_eq!(t, vec![940.0 / 1023.0, 512.0 / 1023.0, 512.0 / 1023.0]);
    }

    #[test]
    fn cube_tiles_scale_and_replicate_edges() {
        let data = Array3::from_shape_fn((7, 2, 3), |(b, y, x)| (b * 1000 + y * 10 + x) as u16);
        let cube = SpectralCube::new(default_bands(), data).unwrap();
        let t = cube_tile(&cube, 1, 1, 3, 2).unwrap();
        assert_eq!(t.len(), 7 * 2 * 3);
        let k = 1.0 / 65535.0;
        // Band 0: row 1 = [11, 12, 12], row 2 (outside) repeats row 1.
        close(
            &t[..6],
            &[11.0 * k, 12.0 * k, 12.0 * k, 11.0 * k, 12.0 * k, 12.0 * k],
        );
        // Band 6 starts with 6000 + 11.
        assert!((t[36] - 6011.0 * k).abs() < 1e-9);
        assert!(cube_tile(&cube, 0, 0, 0, 2).is_err());
    }

    #[test]
    fn masks_become_lesion_fractions() {
        // 4x2 mask, lesion in the left column pair of row 0.
        let mask = [255, 255, 0, 0, 0, 255, 0, 0];
        close(&mask_to_map(&mask, 4, 2, 2, 1), &[0.75, 0.0]);
        close(
            &mask_to_map(&mask, 4, 2, 4, 2),
            &[1.0, 1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0],
        );
        assert_eq!(mask_to_map(&mask[..3], 4, 2, 2, 1), vec![0.0, 0.0]);
    }
}
