//! Rate control: pick the quantiser steps that bring a frame to a target
//! bits per pixel.
//!
//! Steps follow the synthesis gains of the 5/3 wavelet (a subband whose
//! errors spread wider gets a finer step), all scaled by one base step. The
//! controller searches the base step on a sample of slices (cheap), then
//! runs whole-frame trials until one lands within 1% of the target or two
//! bracket it; a bracket is mixed slice by slice (see [`Steps`]) to come
//! within a slice's worth of the target from below. Every decision depends
//! only on block sizes, which both backends compute identically, so both
//! choose the same steps.

use super::entropy::{STEP_MAX, STEP_ONE};
use super::geometry::Geometry;
use super::steps::MAX_TABLES;
use super::{EncodeBackend, EncodeError, Params, Steps, step_count, stream};

/// A whole-frame trial this close to the target is used as it is.
const CLOSE: f64 = 0.01;
/// Two trials that bracket the target this closely are mixed per slice.
const MIX_SPAN: f64 = 0.4;
const SAMPLE_TRIALS: u32 = 10;
const FULL_TRIALS: u32 = 8;
/// log2 of the smallest base step that quantises anything (below it
/// [`steps`] is lossless everywhere).
const MIN_LOG_STEP: f64 = -0.5;
/// log2 of the largest base step, well inside [`STEP_MAX`].
const MAX_LOG_STEP: f64 = 20.0;

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

/// A real step as a fixed-point quantiser (sixteenths).
fn quantiser(x: f64) -> u32 {
    (x * f64::from(STEP_ONE))
        .round()
        .clamp(f64::from(STEP_ONE), f64::from(STEP_MAX)) as u32
}

/// Bits of each slice of the whole frame under one table.
struct Trial {
    log_step: f64,
    slice_bits: Vec<f64>,
    bits: f64,
}

/// Choose steps for `bpp`; returns the steps, the base step and the trials run.
pub fn choose(
    backend: &mut dyn EncodeBackend,
    geom: &Geometry,
    params: &Params,
    bpp: f64,
) -> Result<(Steps, f64, u32), EncodeError> {
    let pixels = f64::from(params.width) * f64::from(params.height);
    let target = bpp * pixels;
    let nsteps = step_count(params.levels);
    // Budget for the larger, two-table header so a mix never overshoots.
    let header = 8.0 * stream::header_len(geom.slices, nsteps, MAX_TABLES) as f64;
    // About 16 slices, and never more than a quarter of the frame, so the
    // search on the sample stays cheap next to a whole-frame trial.
    let every = if geom.slices >= 8 {
        (geom.slices / 16).max(4)
    } else {
        1
    };
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
    // Bits per slice of `slices` under `table`.
    let mut measure = |backend: &mut dyn EncodeBackend, table: &[u32], slices: &[u32]| {
        trials += 1;
        let words = backend.block_words(geom, table, slices)?;
        let mut at = 0;
        let bits = slices
            .iter()
            .map(|&s| {
                let n = geom.slice(s).len();
                let w: u64 = words[at..at + n].iter().map(|&w| u64::from(w)).sum();
                at += n;
                (32 * w + 16 * n.next_multiple_of(2) as u64) as f64
            })
            .collect::<Vec<f64>>();
        Ok::<Vec<f64>, EncodeError>(bits)
    };
    let lossless = vec![STEP_ONE; nsteps];
    let sampled = measure(backend, &lossless, &sample)?.iter().sum::<f64>();
    if sampled * scale + header <= target {
        return Ok((Steps::lossless(nsteps, geom.slices), 1.0, trials));
    }
    let table = |log_step: f64| steps(log_step.exp2(), params.levels);
    // Phase 1: bisection of log2(base) on the sample.
    let (mut lo, mut hi) = (MIN_LOG_STEP, MAX_LOG_STEP);
    for _ in 0..SAMPLE_TRIALS {
        let mid = 0.5 * (lo + hi);
        let bits: f64 = measure(backend, &table(mid), &sample)?.iter().sum();
        if bits * scale + header > target {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    // Phase 2: whole-frame trials, secant on log(bits) against log(step),
    // until one lands close or two bracket the target.
    let mut over: Option<Trial> = None;
    let mut under: Option<Trial> = None;
    let mut x = 0.5 * (lo + hi);
    let mut prev: Option<(f64, f64)> = None;
    for _ in 0..FULL_TRIALS {
        let slice_bits = measure(backend, &table(x), &all)?;
        let bits = slice_bits.iter().sum::<f64>() + header;
        let trial = Trial {
            log_step: x,
            slice_bits,
            bits,
        };
        if (bits / target - 1.0).abs() <= CLOSE {
            return Ok((Steps::uniform(table(x), geom.slices), x.exp2(), trials));
        }
        let lb = bits.log2();
        if bits > target {
            if over.as_ref().is_none_or(|o| bits < o.bits) {
                over = Some(trial);
            }
        } else if under.as_ref().is_none_or(|u| bits > u.bits) {
            under = Some(trial);
        }
        if let (Some(o), Some(u)) = (&over, &under)
            && (o.bits - u.bits) / target <= MIX_SPAN
        {
            break;
        }
        let slope = match prev {
            Some((px, pb)) if (x - px).abs() > 1e-9 && (lb - pb).abs() > 1e-9 => {
                ((lb - pb) / (x - px)).clamp(-4.0, -0.05)
            }
            _ => -0.6,
        };
        prev = Some((x, lb));
        let mut next = (x + (target.log2() - lb) / slope).clamp(MIN_LOG_STEP, MAX_LOG_STEP);
        // Keep inside a known bracket (a plateau can throw the secant out of it).
        if let (Some(o), Some(u)) = (&over, &under)
            && !(o.log_step < next && next < u.log_step)
        {
            next = 0.5 * (o.log_step + u.log_step);
        }
        x = next;
    }
    match (over, under) {
        (Some(o), Some(u)) => {
            let (select, _) = mix(&o.slice_bits, &u.slice_bits, target - header);
            let steps = Steps::mixed(vec![table(o.log_step), table(u.log_step)], select)
                .expect("tables from `steps` have one length and select holds 0 or 1");
            Ok((steps, u.log_step.exp2(), trials))
        }
        (Some(t), None) | (None, Some(t)) => Ok((
            Steps::uniform(table(t.log_step), geom.slices),
            t.log_step.exp2(),
            trials,
        )),
        (None, None) => unreachable!("at least one full trial runs"),
    }
}

/// Pick the slices that take the finer table (`fine` bits each, the others
/// `coarse`) so the total comes as close to `budget` as it can without
/// passing it; the chosen slices are spread over the frame. Returns the
/// table index per slice (0 fine, 1 coarse) and the total.
fn mix(fine: &[f64], coarse: &[f64], budget: f64) -> (Vec<u8>, f64) {
    let mut select = vec![1u8; fine.len()];
    let mut total: f64 = coarse.iter().sum();
    // A low-discrepancy order, so upgrades land all over the picture.
    let mut order: Vec<usize> = (0..fine.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |i: usize| (i as f64 * 0.618_033_988_75).fract();
        key(a).total_cmp(&key(b))
    });
    for i in order {
        let extra = fine[i] - coarse[i];
        if total + extra <= budget {
            select[i] = 0;
            total += extra;
        }
    }
    (select, total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_lossless_at_the_smallest_base_and_grow_with_base() {
        assert!(steps(MIN_LOG_STEP.exp2(), 5).iter().all(|&s| s == STEP_ONE));
        let s = steps(64.0, 2);
        assert_eq!(s.len(), 7);
        // LL finest; level 1 HH coarsest.
        assert!(s[0] < s[1] && s[4] < s[6], "{s:?}");
    }
}
