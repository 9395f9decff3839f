//! The host's share of a frame, in parallel and without allocating: bytes
//! into mapped upload buffers, compressed slices out of mapped read-back
//! buffers with their CRCs, pictures out of them.

use std::marker::PhantomData;
use std::ptr::NonNull;

use med8k_media::frame::VideoFrame;
use med8k_media::picture::Picture;

/// Below this many bytes a piece of work is not split further.
const GRAIN: usize = 1 << 20;

/// Bytes of a mapped buffer that only this handle writes: a
/// `wgpu::WriteOnly<[u8]>` that can be split and sent to other threads
/// (wgpu's own is `Send` only for sized contents).
pub(super) struct Dst<'a> {
    ptr: NonNull<u8>,
    len: usize,
    _mapped: PhantomData<&'a mut [u8]>,
}

// SAFETY: a `Dst` is the only handle to its bytes (made from a `WriteOnly`,
// which is exclusive, and split into disjoint parts), so sending one to
// another thread is like sending a `&mut [u8]`.
unsafe impl Send for Dst<'_> {}

impl<'a> Dst<'a> {
    /// The bytes of `w`, for as long as it is borrowed.
    pub fn new(w: &'a mut wgpu::WriteOnly<'_, [u8]>) -> Self {
        Dst {
            len: w.len(),
            ptr: w.as_raw_element_ptr(),
            _mapped: PhantomData,
        }
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// The first `mid` bytes and the rest.
    pub fn split_at(self, mid: usize) -> (Dst<'a>, Dst<'a>) {
        assert!(mid <= self.len, "split at {mid} of {} bytes", self.len);
        // SAFETY: `mid <= len`, so the second part starts inside (or at the
        // end of) the bytes this handle owns.
        let rest = unsafe { self.ptr.add(mid) };
        (
            Dst {
                ptr: self.ptr,
                len: mid,
                _mapped: PhantomData,
            },
            Dst {
                ptr: rest,
                len: self.len - mid,
                _mapped: PhantomData,
            },
        )
    }

    /// Write `src` (exactly as long) into the bytes.
    pub fn write(self, src: &[u8]) {
        assert_eq!(src.len(), self.len, "bytes written into a part");
        // SAFETY: the handle's bytes are `len` writable bytes nobody else
        // touches while it lives, and `src` is another allocation (a mapped
        // range is never a Rust slice), so the two do not overlap.
        unsafe { std::ptr::copy_nonoverlapping(src.as_ptr(), self.ptr.as_ptr(), self.len) }
    }
}

/// Copy `src` into `dst` (the same length) on every core.
pub(super) fn copy_into(dst: Dst<'_>, src: &[u8]) {
    if src.len() <= GRAIN {
        dst.write(src);
        return;
    }
    let mid = src.len() / 2;
    let (a, b) = dst.split_at(mid);
    rayon::join(|| copy_into(a, &src[..mid]), || copy_into(b, &src[mid..]));
}

/// Copy rows of `row_bytes` from `src` (rows `stride` apart) into `dst`,
/// packed, on every core.
pub(super) fn copy_rows_into(dst: Dst<'_>, src: &[u8], stride: usize, row_bytes: usize) {
    let rows = dst.len() / row_bytes.max(1);
    if rows <= 1 || rows * row_bytes <= GRAIN {
        let mut rest = dst;
        for r in 0..rows {
            let (row, tail) = rest.split_at(row_bytes);
            row.write(&src[r * stride..r * stride + row_bytes]);
            rest = tail;
        }
        return;
    }
    let mid = rows / 2;
    let (a, b) = dst.split_at(mid * row_bytes);
    rayon::join(
        || copy_rows_into(a, src, stride, row_bytes),
        || copy_rows_into(b, &src[mid * stride..], stride, row_bytes),
    );
}

/// Copy `src` into `dst` (the same length) on every core.
pub(super) fn copy_slice(dst: &mut [u8], src: &[u8]) {
    if src.len() <= GRAIN {
        dst.copy_from_slice(src);
        return;
    }
    let mid = src.len() / 2;
    let (a, b) = dst.split_at_mut(mid);
    rayon::join(|| copy_slice(a, &src[..mid]), || copy_slice(b, &src[mid..]));
}

/// Copy the slices of `src` (lengths `lens`) into `dst` and put each one's
/// length and CRC-32 into `table`, slice by slice on every core.
pub(super) fn copy_slices_with_crcs(
    dst: &mut [u8],
    src: &[u8],
    lens: &[u32],
    table: &mut [(u32, u32)],
) {
    if lens.len() == 1 {
        dst.copy_from_slice(src);
        table[0] = (lens[0], crc32fast::hash(dst));
        return;
    }
    if lens.is_empty() {
        return;
    }
    let mid = lens.len() / 2;
    let bytes: usize = lens[..mid].iter().map(|&l| l as usize).sum();
    let (d0, d1) = dst.split_at_mut(bytes);
    let (t0, t1) = table.split_at_mut(mid);
    rayon::join(
        || copy_slices_with_crcs(d0, &src[..bytes], &lens[..mid], t0),
        || copy_slices_with_crcs(d1, &src[bytes..], &lens[mid..], t1),
    );
}

/// Copy the slices `ranges` of `src` one after the other into `dst` and
/// check each one's CRC against `crcs`: the first slice (index into
/// `ranges`) whose CRC is wrong, if any.
pub(super) fn copy_checked(
    dst: Dst<'_>,
    src: &[u8],
    ranges: &[(usize, usize)],
    crcs: &[u32],
) -> Option<usize> {
    match ranges.len() {
        0 => None,
        1 => {
            let (a, b) = ranges[0];
            let part = &src[a..b];
            dst.write(part);
            (crc32fast::hash(part) != crcs[0]).then_some(0)
        }
        n => {
            let mid = n / 2;
            let bytes: usize = ranges[..mid].iter().map(|(a, b)| b - a).sum();
            let (d0, d1) = dst.split_at(bytes);
            let (x, y) = rayon::join(
                || copy_checked(d0, src, &ranges[..mid], &crcs[..mid]),
                || copy_checked(d1, src, &ranges[mid..], &crcs[mid..]),
            );
            x.or(y.map(|i| i + mid))
        }
    }
}

/// Planar u16 samples of `rows` rows (`bytes`, each plane from a word,
/// `words` per plane) into rows `y0..` of `pic`'s planes.
pub(super) fn samples_into(pic: &mut Picture, bytes: &[u8], words: &[u64], y0: u32, rows: u32) {
    let layout = pic.layout();
    let width = pic.width();
    let mut at = 0usize;
    for (p, plane) in pic.planes_mut().iter_mut().enumerate() {
        let (w, h) = layout.plane_dims(p, width, rows);
        let (_, sy) = layout.subsampling(p);
        let start = (y0 >> sy) as usize * w as usize;
        let n = w as usize * h as usize;
        let src = &bytes[2 * at..2 * (at + n)];
        let dst: &mut [u8] = bytemuck::cast_slice_mut(&mut plane[start..start + n]);
        copy_slice(dst, src);
        at += 2 * words[p] as usize;
    }
}

/// The rows of `rows` v210 rows (`row_bytes` each, packed) into rows `y0..`
/// of `frame`.
pub(super) fn v210_into(
    frame: &mut VideoFrame,
    bytes: &[u8],
    row_bytes: usize,
    y0: u32,
    rows: u32,
) {
    let stride = frame.layout().planes()[0].stride;
    let plane = frame.plane_mut(0);
    let start = y0 as usize * stride;
    let dst = &mut plane[start..start + rows as usize * stride];
    if stride == row_bytes {
        copy_slice(dst, &bytes[..rows as usize * row_bytes]);
    } else {
        use rayon::prelude::*;
        dst.par_chunks_mut(stride)
            .zip(bytes.par_chunks(row_bytes))
            .for_each(|(d, s)| d[..row_bytes].copy_from_slice(s));
    }
}
