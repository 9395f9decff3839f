//! Rate control: pick the quantiser steps that bring a frame to a target
//! bits per pixel.
//!
//! Steps follow the synthesis gains of the 5/3 wavelet (a subband whose
//! errors spread wider gets a finer step), all scaled by one base step. The
//! controller searches the base step on a sample of slices (cheap), then
//! corrects it with whole-frame trials until the frame is within
//! [`TOLERANCE`] of the target. Every decision depends only on block sizes,
//! which both backends compute identically, so both choose the same steps.

use super::geometry::Geometry;
use super::{EncodeBackend, EncodeError, Params, step_count, stream};

/// How close to the target a whole-frame trial must come to stop searching
/// (the contract is 5%; the margin absorbs the final header rounding).
pub const TOLERANCE: f64 = 0.03;
const SAMPLE_TRIALS: u32 = 14;
const FULL_TRIALS: u32 = 8;
const MAX_LOG_STEP: f64 = 24.0;

/// Steps for base step `base`: LL finest, then per level `1.5^(level-1)`
/// coarser for HL/LH and coarser still for HH.
pub fn steps(base: f64, levels: u8) -> Vec<u32> {
    let mut out = Vec::with_capacity(step_count(levels));
    let mut gain = 1.0;
    for _ in 0..levels {
        gain *= 1.5;
    }
    out.push(quantiser(base / gain));
    let mut g = 1.0;
    for _ in 1..=levels {
        out.push(quantiser(base / (g * 1.04)));
        out.push(quantiser(base / (g * 1.04)));
        out.push(quantiser(base / (g * 0.72)));
        g *= 1.5;
    }
    out
}

fn quantiser(x: f64) -> u32 {
    x.round().clamp(1.0, f64::from(1u32 << 30)) as u32
}

fn table_bits(geom: &Geometry, slices: &[u32]) -> u64 {
    slices
        .iter()
        .map(|&s| 16 * geom.slice(s).len().next_multiple_of(2) as u64)
        .sum()
}

/// Choose steps for `bpp`; returns the steps, the base step and the trials run.
pub fn choose(
    backend: &mut dyn EncodeBackend,
    geom: &Geometry,
    params: &Params,
    bpp: f64,
) -> Result<(Vec<u32>, f64, u32), EncodeError> {
    let pixels = f64::from(params.width) * f64::from(params.height);
    let target = bpp * pixels;
    let header = 8.0 * stream::header_len(geom.slices, step_count(params.levels)) as f64;
    let every = (geom.slices / 16).max(1);
    let sample: Vec<u32> = (0..geom.slices).step_by(every as usize).collect();
    let all: Vec<u32> = (0..geom.slices).collect();
    let coefs = |slices: &[u32]| -> u64 {
        slices
            .iter()
            .flat_map(|&s| geom.slice(s))
            .map(|b| u64::from(b.width * b.height))
            .sum()
    };
    let scale = geom.coefficients as f64 / coefs(&sample) as f64;
    let mut trials = 0;
    let mut measure = |backend: &mut dyn EncodeBackend, log_step: f64, slices: &[u32]| {
        trials += 1;
        let st = steps(log_step.exp2(), params.levels);
        let words: u64 = backend
            .block_words(geom, &st, slices)?
            .iter()
            .map(|&w| u64::from(w))
            .sum();
        Ok::<f64, EncodeError>((32 * words + table_bits(geom, slices)) as f64)
    };
    // Phase 1: bisection of log2(base) on the sample.
    let (mut lo, mut hi) = (0.0f64, MAX_LOG_STEP);
    if measure(backend, lo, &sample)? * scale + header <= target {
        return Ok((steps(1.0, params.levels), 1.0, trials));
    }
    for _ in 0..SAMPLE_TRIALS {
        let mid = 0.5 * (lo + hi);
        if measure(backend, mid, &sample)? * scale + header > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Phase 2: whole-frame trials, secant on log(bits) against log(step).
    let mut x = 0.5 * (lo + hi);
    let mut best = (f64::INFINITY, x);
    let mut prev: Option<(f64, f64)> = None;
    for _ in 0..FULL_TRIALS {
        let bits = measure(backend, x, &all)? + header;
        let err = bits / target - 1.0;
        if err.abs() < best.0.abs() {
            best = (err, x);
        }
        if err.abs() <= TOLERANCE {
            break;
        }
        let lb = bits.log2();
        let slope = match prev {
            Some((px, pb)) if (x - px).abs() > 1e-9 && (lb - pb).abs() > 1e-9 => {
                ((lb - pb) / (x - px)).clamp(-4.0, -0.05)
            }
            _ => -0.6,
        };
        prev = Some((x, lb));
        x = (x + (target.log2() - lb) / slope).clamp(0.0, MAX_LOG_STEP);
    }
    let base = best.1.exp2();
    Ok((steps(base, params.levels), base, trials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_one_at_base_one_and_grow_with_base() {
        assert!(steps(1.0, 5).iter().all(|&s| s == 1));
        let s = steps(64.0, 2);
        assert_eq!(s.len(), 7);
        // LL finest; level 1 HH coarsest.
        assert!(s[0] < s[1] && s[4] < s[6], "{s:?}");
    }
}
