//! `v210`, the packed 10-bit 4:2:2 layout of SDI capture cards, to and from planar `I422_10LE`.
//!
//! Six pixels (6 Y, 3 Cb, 3 Cr) fill four little-endian 32-bit words, three
//! 10-bit samples per word in bits 0–9, 10–19 and 20–29:
//!
//! ```text
//! word 0: Cb0 Y0  Cr0      word 2: Cr1 Y3  Cb2
//! word 1: Y1  Cb1 Y2       word 3: Y4  Cr2 Y5
//! ```
//!
//! A row is padded to a whole number of 48-pixel (128-byte) groups. When the
//! width is not a multiple of 6 the last group repeats nothing: missing samples
//! are written as zero and ignored on unpacking.

use rayon::prelude::*;

use super::{BadGeometry, PixelFormat, VideoFrame};

/// Where the samples of plane `p` (0 = Y', 1 = Cb, 2 = Cr) of one 6-pixel
/// group lie: `(word, slot)` each, in sample order (the table in the module
/// docs), for code that reads or writes single samples.
pub fn group_slots(p: usize) -> &'static [(usize, u32)] {
    const Y: [(usize, u32); 6] = [(0, 1), (1, 0), (1, 2), (2, 1), (3, 0), (3, 2)];
    const CB: [(usize, u32); 3] = [(0, 0), (1, 1), (2, 2)];
    const CR: [(usize, u32); 3] = [(0, 2), (2, 0), (3, 1)];
    match p {
        0 => &Y,
        1 => &CB,
        _ => &CR,
    }
}

/// The frames handed to a conversion do not have the formats or sizes it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConvertError {
    /// The input frame is not in the format the conversion reads.
    #[error("expected a {expected} frame, got {got}")]
    WrongFormat {
        /// Format the conversion reads.
        expected: PixelFormat,
        /// Format it was given.
        got: PixelFormat,
    },
    /// The output frame could not be made.
    #[error(transparent)]
    Geometry(#[from] BadGeometry),
}

const MASK: u32 = 0x3ff;

/// Planar `I422_10LE` to packed `v210`. Samples above 10 bits are masked.
pub fn pack(src: &VideoFrame) -> Result<VideoFrame, ConvertError> {
    check(src, PixelFormat::I422_10)?;
    let mut dst = VideoFrame::zeroed(src.width(), src.height(), PixelFormat::V210)?;
    let w = src.width() as usize;
    let l = src.layout().planes().to_vec();
    let dl = dst.layout().planes()[0];
    let (y, cb, cr) = (src.plane_u16(0), src.plane_u16(1), src.plane_u16(2));
    dst.plane_mut(0)
        .par_chunks_exact_mut(dl.stride)
        .enumerate()
        .for_each(|(row, out)| {
            let y = &y[row * l[0].stride / 2..][..w];
            let cb = &cb[row * l[1].stride / 2..][..w.div_ceil(2)];
            let cr = &cr[row * l[2].stride / 2..][..w.div_ceil(2)];
            for (g, words) in out[..dl.row_bytes].chunks_exact_mut(16).enumerate() {
                let x = g * 6;
                if x >= w {
                    break;
                }
                let ys = |i: usize| y.get(x + i).map_or(0, |&v| u32::from(v) & MASK);
                let cbs = |i: usize| cb.get(x / 2 + i).map_or(0, |&v| u32::from(v) & MASK);
                let crs = |i: usize| cr.get(x / 2 + i).map_or(0, |&v| u32::from(v) & MASK);
                let packed = [
                    cbs(0) | ys(0) << 10 | crs(0) << 20,
                    ys(1) | cbs(1) << 10 | ys(2) << 20,
                    crs(1) | ys(3) << 10 | cbs(2) << 20,
                    ys(4) | crs(2) << 10 | ys(5) << 20,
                ];
                for (dst, word) in words.chunks_exact_mut(4).zip(packed) {
                    dst.copy_from_slice(&word.to_le_bytes());
                }
            }
        });
    stamp(&mut dst, src);
    Ok(dst)
}

/// Packed `v210` to planar `I422_10LE`.
pub fn unpack(src: &VideoFrame) -> Result<VideoFrame, ConvertError> {
    check(src, PixelFormat::V210)?;
    let mut dst = VideoFrame::zeroed(src.width(), src.height(), PixelFormat::I422_10)?;
    let w = src.width() as usize;
    let cw = w.div_ceil(2);
    let sl = src.layout().planes()[0];
    let dl = dst.layout().planes().to_vec();
    let rows: Vec<&[u8]> = src.rows(0).collect();
    let Ok::<[_; 3], _>([y_plane, cb_plane, cr_plane]) = dst.planes_u16_mut().try_into() else {
        unreachable!("I422_10 has three planes")
    };
    y_plane
        .par_chunks_exact_mut(dl[0].stride / 2)
        .zip(cb_plane.par_chunks_exact_mut(dl[1].stride / 2))
        .zip(cr_plane.par_chunks_exact_mut(dl[2].stride / 2))
        .zip(rows.par_iter())
        .for_each(|(((y, cb), cr), row)| {
            for (g, words) in row[..sl.row_bytes].chunks_exact(16).enumerate() {
                let x = g * 6;
                if x >= w {
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
                let s = |wd: u32, k: u32| ((wd >> (10 * k)) & MASK) as u16;
                let (w0, w1, w2, w3) = (word(0), word(1), word(2), word(3));
                let ys = [s(w0, 1), s(w1, 0), s(w1, 2), s(w2, 1), s(w3, 0), s(w3, 2)];
                let cbs = [s(w0, 0), s(w1, 1), s(w2, 2)];
                let crs = [s(w0, 2), s(w2, 0), s(w3, 1)];
                for (i, v) in ys.into_iter().enumerate().take(w - x) {
                    y[x + i] = v;
                }
                for i in 0..3.min(cw - x / 2) {
                    cb[x / 2 + i] = cbs[i];
                    cr[x / 2 + i] = crs[i];
                }
            }
        });
    stamp(&mut dst, src);
    Ok(dst)
}

fn check(f: &VideoFrame, expected: PixelFormat) -> Result<(), ConvertError> {
    if f.format() == expected {
        Ok(())
    } else {
        Err(ConvertError::WrongFormat {
            expected,
            got: f.format(),
        })
    }
}

fn stamp(dst: &mut VideoFrame, src: &VideoFrame) {
    dst.seq = src.seq;
    dst.pts = src.pts;
    dst.captured_at = src.captured_at;
    dst.source = src.source.clone();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(w: u32, h: u32) -> VideoFrame {
        let mut f = VideoFrame::zeroed(w, h, PixelFormat::I422_10).unwrap();
        for p in 0..3 {
            let mut k = p as u32 * 7919;
            for v in f.plane_u16_mut(p) {
                k = k.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                *v = (k >> 16) as u16 & 0x3ff;
            }
        }
        f
    }

    #[test]
    fn round_trip_at_awkward_widths() {
        for w in [2, 6, 8, 46, 48, 50, 1920, 1282] {
            let f = ramp(w, 3);
            let back = unpack(&pack(&f).unwrap()).unwrap();
            assert!(back.same_picture(&f), "width {w}");
        }
    }

    #[test]
    fn first_group_matches_the_spec_layout() {
        let mut f = VideoFrame::zeroed(6, 1, PixelFormat::I422_10).unwrap();
        f.plane_u16_mut(0)[..6].copy_from_slice(&[1, 2, 3, 4, 5, 6]);
        f.plane_u16_mut(1)[..3].copy_from_slice(&[10, 11, 12]);
        f.plane_u16_mut(2)[..3].copy_from_slice(&[20, 21, 22]);
        let v = pack(&f).unwrap();
        let word = |i: usize| u32::from_le_bytes(v.plane(0)[4 * i..4 * i + 4].try_into().unwrap());
        assert_eq!(word(0), 10 | 1 << 10 | 20 << 20);
        assert_eq!(word(1), 2 | 11 << 10 | 3 << 20);
        assert_eq!(word(2), 21 | 4 << 10 | 12 << 20);
        assert_eq!(word(3), 5 | 22 << 10 | 6 << 20);
    }

    #[test]
    fn wrong_input_format_is_an_error() {
        let f = VideoFrame::zeroed(8, 8, PixelFormat::Rgb8).unwrap();
        assert!(matches!(pack(&f), Err(ConvertError::WrongFormat { .. })));
        assert!(matches!(unpack(&f), Err(ConvertError::WrongFormat { .. })));
    }
}
