//! Stripe planning: a picture too large for the device's buffers (8K on
//! lavapipe, whose storage bindings stop at 128 MiB) goes through in stripes
//! of rows, slices or bands, one after the other.

/// The largest `k` in `1..=units` with `fits(k)`, for a `fits` that stays
/// true below any `k` it holds for (buffer sizes grow with the stripe);
/// `None` when not even one unit fits.
pub fn largest_fitting(units: u32, fits: impl Fn(u32) -> bool) -> Option<u32> {
    if units == 0 || !fits(1) {
        return None;
    }
    let (mut lo, mut hi) = (1u32, units);
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        if fits(mid) {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Some(lo)
}

/// Units per stripe when `units` are cut into stripes of at most `most`,
/// spread evenly (8 units at most 5 a stripe: two stripes of 4, not 5 and 3).
pub fn spread(units: u32, most: u32) -> u32 {
    let most = most.clamp(1, units.max(1));
    let stripes = units.div_ceil(most).max(1);
    units.div_ceil(stripes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn largest_fitting_finds_the_edge() {
        for edge in 1..40 {
            assert_eq!(largest_fitting(40, |k| k <= edge), Some(edge));
        }
        assert_eq!(largest_fitting(40, |k| k <= 100), Some(40));
        assert_eq!(largest_fitting(40, |_| false), None);
        assert_eq!(largest_fitting(0, |_| true), None);
    }

    #[test]
    fn spread_evens_out_stripes() {
        assert_eq!(spread(8, 5), 4);
        assert_eq!(spread(8, 8), 8);
        assert_eq!(spread(9, 4), 3);
        assert_eq!(spread(7, 100), 7);
        assert_eq!(spread(7, 0), 1);
    }
}
