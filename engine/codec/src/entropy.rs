//! The block coder: context-adaptive Golomb–Rice codes with a run mode, one
//! independent state per code block.
//!
//! Coefficients are quantised on the fly (`q = sign(c)·⌊16|c| / step⌋`, steps
//! in sixteenths, [`STEP_ONE`] is lossless) and scanned row by row. Each coefficient's context is the
//! activity `t = 2a + 2b + c + d` of its already-coded neighbours (left,
//! above, above-left, above-right, outside the block = 0, magnitudes capped
//! at 65535):
//!
//! - `t > 0`: regular mode. Context `min(bitlen(t), 16) - 1` keeps a running
//!   sum `A` and count `N` of the zigzag values `u` it coded (halved every 16);
//!   `k` is the least with `N << k >= A` (at most 24), and `u` goes out as a
//!   Rice code: `u >> k` zeros, a one, then `k` low bits. A quotient of 23 or
//!   more is an escape: 23 zeros, then `u` in 32 bits.
//! - `t == 0`: run mode, as JPEG-LS: the run of zeros to the end of the row
//!   or the next non-zero goes out in segments of `2^J[ri]` (a one each,
//!   `ri` grows); an interrupted run sends a zero, the remainder in `J[ri]`
//!   bits, then the interrupting value as `u - 1` in context 16, and `ri` shrinks.
//!
//! A block whose code would be longer than its values written plainly is
//! written plainly instead. Blocks start with a mode bit (0 coded, 1 plain);
//! a plain block has a 6-bit width `wb` and then every `u` in `wb` bits.
//! Bits fill 32-bit words from the most significant end; a block ends on a
//! word boundary.

use super::geometry::Block;

const CONTEXTS: usize = 17;
const RUN_CONTEXT: usize = 16;
const ESCAPE: u32 = 23;
const RESET: u32 = 16;
const MAX_K: u32 = 24;
const MAG_CAP: u32 = 0xffff;
const A_CAP: u32 = 1 << 24;
const J: [u32; 32] = [
    0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 9, 10, 11, 12, 13,
    14, 15,
];

/// Why a block could not be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BlockError {
    /// The code ran past the block's words.
    #[error("code runs past the end of the block")]
    Overrun,
    /// A decoded value that no encoder produces.
    #[error("value out of range")]
    Range,
    /// A plain block declaring a width above 32 bits.
    #[error("plain block width {0} is above 32")]
    Width(u32),
}

/// Bits, most significant first, into 32-bit words.
#[derive(Debug, Default)]
pub struct BitWriter {
    words: Vec<u32>,
    acc: u64,
    bits: u32,
}

impl BitWriter {
    /// Append the low `n` (≤ 32) bits of `v`.
    #[inline(always)]
    pub fn put(&mut self, v: u32, n: u32) {
        debug_assert!(n <= 32 && (n == 32 || v >> n == 0));
        self.acc = (self.acc << n) | u64::from(v);
        self.bits += n;
        if self.bits >= 32 {
            // Bits above the `bits` still to go are stale; every read of
            // `acc` truncates them away.
            self.bits -= 32;
            self.words.push((self.acc >> self.bits) as u32);
        }
    }

    /// Bits written so far.
    pub fn len_bits(&self) -> u64 {
        self.words.len() as u64 * 32 + u64::from(self.bits)
    }

    /// Pad to a word boundary and return the words.
    pub fn finish(&mut self) -> &[u32] {
        if self.bits > 0 {
            self.words.push((self.acc << (32 - self.bits)) as u32);
            self.acc = 0;
            self.bits = 0;
        }
        &self.words
    }

    /// Forget everything written.
    pub fn clear(&mut self) {
        self.words.clear();
        self.acc = 0;
        self.bits = 0;
    }
}

/// Reads what a [`BitWriter`] wrote; past the end is an error.
#[derive(Debug)]
pub struct BitReader<'a> {
    words: &'a [u32],
    pos: u64,
}

impl<'a> BitReader<'a> {
    /// A reader at the first bit of `words`.
    pub fn new(words: &'a [u32]) -> Self {
        BitReader { words, pos: 0 }
    }

    /// The next 32 bits, zero-filled past the end.
    #[inline]
    fn peek32(&self) -> u32 {
        let w = (self.pos / 32) as usize;
        let s = (self.pos % 32) as u32;
        let hi = u64::from(self.words.get(w).copied().unwrap_or(0));
        let lo = u64::from(self.words.get(w + 1).copied().unwrap_or(0));
        (((hi << 32) | lo) << s >> 32) as u32
    }

    /// Read `n` (≤ 32) bits.
    #[inline]
    pub fn get(&mut self, n: u32) -> Result<u32, BlockError> {
        if n == 0 {
            return Ok(0);
        }
        let v = self.peek32() >> (32 - n);
        self.advance(n)?;
        Ok(v)
    }

    #[inline]
    fn advance(&mut self, n: u32) -> Result<(), BlockError> {
        self.pos += u64::from(n);
        if self.pos > self.words.len() as u64 * 32 {
            return Err(BlockError::Overrun);
        }
        Ok(())
    }

    /// Count zeros before the next one, up to `ESCAPE`; consumes the one if found.
    #[inline]
    fn unary(&mut self) -> Result<u32, BlockError> {
        let z = self.peek32().leading_zeros().min(ESCAPE);
        if z < ESCAPE {
            self.advance(z + 1)?;
        } else {
            self.advance(ESCAPE)?;
        }
        Ok(z)
    }
}

/// Per-block adaptive state.
struct Model {
    a: [u32; CONTEXTS],
    n: [u32; CONTEXTS],
    ri: usize,
}

impl Model {
    fn new() -> Self {
        let mut a = [2u32; CONTEXTS];
        for (i, v) in a.iter_mut().enumerate().take(RUN_CONTEXT) {
            *v = (1u32 << i) / 3 + 1;
        }
        Model {
            a,
            n: [1; CONTEXTS],
            ri: 0,
        }
    }

    #[inline]
    fn k(&self, cx: usize) -> u32 {
        let (a, n) = (self.a[cx], self.n[cx]);
        let k = bitlen(a).saturating_sub(bitlen(n));
        let k = if (n << k) < a { k + 1 } else { k };
        k.min(MAX_K)
    }

    #[inline]
    fn update(&mut self, cx: usize, u: u32) {
        self.a[cx] += u.min(A_CAP);
        self.n[cx] += 1;
        if self.n[cx] == RESET {
            self.a[cx] >>= 1;
            self.n[cx] >>= 1;
        }
    }
}

#[inline]
fn bitlen(v: u32) -> u32 {
    32 - v.leading_zeros()
}

#[inline]
fn zigzag(q: i32) -> u32 {
    ((q << 1) ^ (q >> 31)) as u32
}

#[inline]
fn unzigzag(u: u32) -> i32 {
    (u >> 1) as i32 ^ -((u & 1) as i32)
}

/// Quantiser steps are fixed point with this many fractional bits, so the
/// rate controller can move a step by 1/16 rather than by a whole unit
/// (a whole unit at step 2 is a 10% jump in frame size).
pub const STEP_FRAC_BITS: u32 = 4;
/// The step that leaves coefficients as they are (lossless).
pub const STEP_ONE: u32 = 1 << STEP_FRAC_BITS;
/// The largest step a stream may carry; it keeps `(|c| mod step) << 4`
/// inside 32 bits.
pub const STEP_MAX: u32 = 1 << 26;

/// Dead-zone quantisation `sign(c)·⌊16|c| / step⌋`, computed without
/// overflow for any `|c| < 2^32` and `step <= STEP_MAX`.
#[inline]
fn quantise(c: i32, step: u32) -> i32 {
    if step == STEP_ONE {
        c
    } else {
        let a = c.unsigned_abs();
        let m = ((a / step) << STEP_FRAC_BITS) + (((a % step) << STEP_FRAC_BITS) / step);
        let m = m as i32;
        if c < 0 { m.wrapping_neg() } else { m }
    }
}

/// Reconstruction of a quantised value: the middle of its interval.
#[inline]
pub fn dequantise(q: i32, step: u32) -> i32 {
    if step == STEP_ONE || q == 0 {
        q
    } else {
        // Wrapping, as on the GPU: a hostile stream must not panic the decoder.
        let m =
            (q.unsigned_abs().wrapping_mul(step).wrapping_add(step / 2) >> STEP_FRAC_BITS) as i32;
        if q < 0 { m.wrapping_neg() } else { m }
    }
}

/// `2a + 2b + c + d` of the coded magnitudes left, above, above-left and
/// above-right of column `x` (`rows[cur..]` this row, `rows[prev..]` the row
/// above, which exists when `above`); outside the block counts as 0.
#[inline]
fn activity(rows: &[u32], prev: usize, cur: usize, x: usize, above: bool, w: usize) -> u32 {
    let a = if x > 0 { rows[cur + x - 1] } else { 0 };
    if !above {
        return 2 * a;
    }
    let b = rows[prev + x];
    let c = if x > 0 { rows[prev + x - 1] } else { 0 };
    let d = if x + 1 < w { rows[prev + x + 1] } else { 0 };
    2 * a + 2 * b + c + d
}

#[inline]
fn context(t: u32) -> usize {
    (bitlen(t).min(16) - 1) as usize
}

#[inline(always)]
fn put_rice(out: &mut BitWriter, u: u32, k: u32) {
    let q = u >> k;
    if q < ESCAPE && q + 1 + k <= 32 {
        // The zeros, the one and the low bits in one go.
        out.put((1 << k) | (u & ((1u32 << k) - 1)), q + 1 + k);
    } else if q < ESCAPE {
        out.put(1, q + 1);
        out.put(u & ((1u32 << k) - 1), k);
    } else {
        out.put(0, ESCAPE);
        out.put(u, 32);
    }
}

#[inline]
fn get_rice(r: &mut BitReader<'_>, k: u32) -> Result<u32, BlockError> {
    let q = r.unary()?;
    if q < ESCAPE {
        Ok((q << k) | r.get(k)?)
    } else {
        r.get(32)
    }
}

/// Encode one block of `coef` with quantiser `step` into `out` (which must be
/// empty); `rows` is scratch. Returns the number of words.
pub fn encode_block(
    coef: &[i32],
    block: &Block,
    step: u32,
    out: &mut BitWriter,
    rows: &mut Vec<u32>,
) -> usize {
    // Lossless gets its own copy of the loop, without the quantiser.
    let widest = if step == STEP_ONE {
        code_block::<true>(coef, block, step, out, rows)
    } else {
        code_block::<false>(coef, block, step, out, rows)
    };
    let (w, h) = (block.width as usize, block.height as usize);
    let wb = bitlen(widest);
    let plain = 7 + (w * h) as u64 * u64::from(wb);
    if out.len_bits() > plain {
        out.clear();
        out.put(1, 1);
        out.put(wb, 6);
        for y in 0..h {
            for &c in block_row(coef, block, y) {
                out.put(zigzag(quantise(c, step)), wb);
            }
        }
    }
    out.finish().len()
}

/// Row `y` of `block` in `coef`.
#[inline]
fn block_row<'a>(coef: &'a [i32], block: &Block, y: usize) -> &'a [i32] {
    let start = block.offset as usize + y * block.stride as usize;
    &coef[start..start + block.width as usize]
}

/// The coded form of a block (mode bit 0 onwards) into `out`; gives the
/// widest zigzag value, for the choice of the plain form.
///
/// The two rows of magnitudes carry a zero on each side, so the neighbours
/// of the first and last columns need no test; the row above the first is
/// all zeros, which is what "outside the block" means.
#[inline(always)]
fn code_block<const LOSSLESS: bool>(
    coef: &[i32],
    block: &Block,
    step: u32,
    out: &mut BitWriter,
    rows: &mut Vec<u32>,
) -> u32 {
    let (w, h) = (block.width as usize, block.height as usize);
    let quant = |c: i32| if LOSSLESS { c } else { quantise(c, step) };
    rows.clear();
    rows.resize(2 * (w + 2), 0);
    let (mut above, mut here) = rows.split_at_mut(w + 2);
    let mut m = Model::new();
    let mut widest = 0u32;
    out.put(0, 1);
    for y in 0..h {
        let src = block_row(coef, block, y);
        let mut x = 0;
        while x < w {
            // Column x sits at x + 1 in the padded rows.
            let t = 2 * here[x] + 2 * above[x + 1] + above[x] + above[x + 2];
            if t > 0 {
                let q = quant(src[x]);
                let u = zigzag(q);
                widest = widest.max(u);
                let cx = context(t);
                put_rice(out, u, m.k(cx));
                m.update(cx, u);
                here[x + 1] = q.unsigned_abs().min(MAG_CAP);
                x += 1;
                continue;
            }
            let mut run = 0;
            let mut q = 0;
            while x + run < w {
                q = quant(src[x + run]);
                if q != 0 {
                    break;
                }
                here[x + run + 1] = 0;
                run += 1;
            }
            let mut rest = run as u32;
            while rest >= 1 << J[m.ri] {
                out.put(1, 1);
                rest -= 1 << J[m.ri];
                m.ri = (m.ri + 1).min(31);
            }
            x += run;
            if x == w {
                if rest > 0 {
                    out.put(1, 1);
                }
                break;
            }
            // The interruption: a zero, the remainder in J[ri] bits (none
            // when J[ri] is 0, and then `rest` is 0 too).
            out.put(rest, J[m.ri] + 1);
            m.ri = m.ri.saturating_sub(1);
            let u = zigzag(q);
            widest = widest.max(u);
            put_rice(out, u - 1, m.k(RUN_CONTEXT));
            m.update(RUN_CONTEXT, u - 1);
            here[x + 1] = q.unsigned_abs().min(MAG_CAP);
            x += 1;
        }
        std::mem::swap(&mut above, &mut here);
    }
    widest
}

/// Decode one block from `words` into `coef` (dequantised with `step`).
pub fn decode_block(
    words: &[u32],
    coef: &mut [i32],
    block: &Block,
    step: u32,
    rows: &mut Vec<u32>,
) -> Result<(), BlockError> {
    let (w, h) = (block.width as usize, block.height as usize);
    let (off, stride) = (block.offset as usize, block.stride as usize);
    let mut r = BitReader::new(words);
    let mut set = |x: usize, y: usize, q: i32| coef[off + y * stride + x] = dequantise(q, step);
    if r.get(1)? == 1 {
        let wb = r.get(6)?;
        if wb > 32 {
            return Err(BlockError::Width(wb));
        }
        for y in 0..h {
            for x in 0..w {
                set(x, y, unzigzag(r.get(wb)?));
            }
        }
        return Ok(());
    }
    rows.clear();
    rows.resize(2 * w + 1, 0);
    let (mut prev, mut cur) = (0usize, w);
    let mut m = Model::new();
    for y in 0..h {
        let mut x = 0;
        while x < w {
            let t = activity(rows, prev, cur, x, y > 0, w);
            if t > 0 {
                let cx = context(t);
                let u = get_rice(&mut r, m.k(cx))?;
                m.update(cx, u);
                let q = unzigzag(u);
                set(x, y, q);
                rows[cur + x] = q.unsigned_abs().min(MAG_CAP);
                x += 1;
                continue;
            }
            // Run mode.
            loop {
                if r.get(1)? == 1 {
                    let seg = 1usize << J[m.ri];
                    let n = seg.min(w - x);
                    for i in 0..n {
                        set(x + i, y, 0);
                        rows[cur + x + i] = 0;
                    }
                    x += n;
                    if n == seg {
                        m.ri = (m.ri + 1).min(31);
                    }
                    if x == w {
                        break;
                    }
                } else {
                    let rest = r.get(J[m.ri])? as usize;
                    if rest >= w - x {
                        return Err(BlockError::Range);
                    }
                    for i in 0..rest {
                        set(x + i, y, 0);
                        rows[cur + x + i] = 0;
                    }
                    x += rest;
                    m.ri = m.ri.saturating_sub(1);
                    let u = get_rice(&mut r, m.k(RUN_CONTEXT))?;
                    m.update(RUN_CONTEXT, u);
                    let q = unzigzag(u.checked_add(1).ok_or(BlockError::Range)?);
                    set(x, y, q);
                    rows[cur + x] = q.unsigned_abs().min(MAG_CAP);
                    x += 1;
                    break;
                }
            }
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(w: u32, h: u32) -> Block {
        Block {
            offset: 0,
            stride: w,
            width: w,
            height: h,
            band: 0,
            slice: 0,
            scratch: 0,
            _pad: 0,
        }
    }

    fn round_trip(coef: &[i32], w: u32, h: u32, step: u32) -> (Vec<i32>, usize) {
        let b = block(w, h);
        let mut out = BitWriter::default();
        let mut rows = vec![];
        let n = encode_block(coef, &b, step, &mut out, &mut rows);
        let words = out.finish().to_vec();
        assert_eq!(words.len(), n);
        assert!(n as u32 <= super::super::geometry::max_block_words(w * h));
        let mut back = vec![0; coef.len()];
        decode_block(&words, &mut back, &b, step, &mut rows).unwrap();
        (back, n)
    }

    #[test]
    fn lossless_blocks_round_trip() {
        let mut s = 5u64;
        let mut rnd = |scale: i32| {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1);
            ((s >> 40) as i32 % (2 * scale + 1)) - scale
        };
        for (w, h) in [(1, 1), (7, 3), (64, 16), (1024, 1), (33, 5)] {
            let n = (w * h) as usize;
            let cases: Vec<Vec<i32>> = vec![
                vec![0; n],
                (0..n).map(|_| rnd(3)).collect(),
                (0..n)
                    .map(|i| if i % 17 == 0 { rnd(1000) } else { 0 })
                    .collect(),
                (0..n).map(|_| rnd(1 << 24)).collect(),
                (0..n)
                    .map(|i| if i % 2 == 0 { -(1 << 25) } else { 1 << 25 })
                    .collect(),
            ];
            for c in cases {
                let (back, _) = round_trip(&c, w, h, STEP_ONE);
                assert_eq!(back, c, "{w}x{h}");
            }
        }
    }

    #[test]
    fn zeros_cost_almost_nothing_and_noise_falls_back_to_plain() {
        let (_, words) = round_trip(&vec![0; 1024], 64, 16, STEP_ONE);
        assert_eq!(words, 1);
        let noise: Vec<i32> = (0..1024).map(|i| (i * 7919 % 65536) - 32768).collect();
        let (back, words) = round_trip(&noise, 64, 16, STEP_ONE);
        assert_eq!(back, noise);
        assert!(words <= (7 + 1024 * 17usize).div_ceil(32));
    }

    #[test]
    fn quantised_blocks_reconstruct_within_a_step() {
        let c: Vec<i32> = (0..512).map(|i| ((i * 37) % 201) - 100).collect();
        // Whole steps (10) and fractional ones (1 1/16, 2 1/2).
        for step in [160, 17, 40] {
            let (back, _) = round_trip(&c, 32, 16, step);
            let bound = step.div_ceil(STEP_ONE) as i32;
            for (a, b) in c.iter().zip(&back) {
                assert!((a - b).abs() <= bound, "step {step}: {a} vs {b}");
            }
        }
    }

    #[test]
    fn quantise_is_the_exact_fixed_point_quotient() {
        let steps = [17, 23, 31, 40, 160, 4099, STEP_MAX];
        let values = [
            0i32,
            1,
            -1,
            15,
            16,
            17,
            1000,
            -65_535,
            1 << 26,
            -(1 << 30),
            i32::MAX,
            i32::MIN,
        ];
        for &s in &steps {
            for &c in &values {
                let want = (u64::from(c.unsigned_abs()) << STEP_FRAC_BITS) / u64::from(s);
                let q = quantise(c, s);
                assert_eq!(u64::from(q.unsigned_abs()), want, "{c} / {s}");
                assert_eq!(q < 0, c < 0 && want > 0, "{c} / {s}");
            }
        }
        assert_eq!(quantise(-5, STEP_ONE), -5);
        assert_eq!(dequantise(3, 40), 8); // (3 + 1/2) * 2.5 = 8.75
    }

    #[test]
    fn truncated_blocks_are_errors() {
        let c: Vec<i32> = (0..256).map(|i| (i % 13) - 6).collect();
        let b = block(16, 16);
        let mut out = BitWriter::default();
        encode_block(&c, &b, STEP_ONE, &mut out, &mut vec![]);
        let words = out.finish().to_vec();
        let mut back = vec![0; 256];
        for cut in 0..words.len() {
            assert!(decode_block(&words[..cut], &mut back, &b, STEP_ONE, &mut vec![]).is_err());
        }
    }
}
