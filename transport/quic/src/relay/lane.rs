//! The per-direction decisions, without I/O: given when a datagram arrived
//! and how long it is, drop it or say when it leaves.

use std::time::{Duration, Instant};

use super::impairment::Impairment;

/// Why a lane dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dropped {
    Burst,
    Loss,
    Queue,
}

/// One direction's impairment state: PRNG, Gilbert–Elliott state and the
/// capped link's virtual departure clock.
#[derive(Debug)]
pub(crate) struct Lane {
    impairment: Impairment,
    salt: u64,
    rng: SplitMix64,
    bad: bool,
    /// When the capped link finishes sending what it has accepted.
    link_free_at: Option<Instant>,
}

impl Lane {
    /// `salt` tells the directions apart so that one seed gives each its own
    /// sequence of draws.
    pub(crate) fn new(impairment: Impairment, salt: u64) -> Self {
        Self {
            rng: SplitMix64::new(impairment.seed ^ salt),
            impairment,
            salt,
            bad: false,
            link_free_at: None,
        }
    }

    /// Replaces the impairment and reseeds; the link's backlog is kept.
    pub(crate) fn set(&mut self, impairment: Impairment) {
        self.rng = SplitMix64::new(impairment.seed ^ self.salt);
        if impairment.burst.is_none() {
            self.bad = false;
        }
        self.impairment = impairment;
    }

    /// Decides the fate of a datagram of `len` bytes that arrived `at`:
    /// `Ok(due)` to send it at `due`, or why it is dropped.
    pub(crate) fn admit(&mut self, at: Instant, len: usize) -> Result<Instant, Dropped> {
        let imp = &self.impairment;
        if let Some((enter, exit)) = imp.burst {
            let u = self.rng.next_f64();
            self.bad = if self.bad { u >= exit } else { u < enter };
            if self.bad {
                return Err(Dropped::Burst);
            }
        }
        if imp.loss > 0.0 && self.rng.next_f64() < imp.loss {
            return Err(Dropped::Loss);
        }
        let mut leaves = at;
        if let Some(mbps) = imp.rate_mbps {
            let bytes_per_s = mbps * 1e6 / 8.0;
            let start = self.link_free_at.map_or(at, |free| free.max(at));
            if let Some(limit) = imp.queue_limit_bytes {
                let backlog = start.saturating_duration_since(at).as_secs_f64() * bytes_per_s;
                if backlog + len as f64 > limit as f64 {
                    return Err(Dropped::Queue);
                }
            }
            let busy = Duration::from_secs_f64(len as f64 / bytes_per_s);
            leaves = start.checked_add(busy).ok_or(Dropped::Queue)?;
            self.link_free_at = Some(leaves);
        }
        let mut hold = imp.delay;
        if !imp.jitter.is_zero() {
            hold += imp.jitter.mul_f64(self.rng.next_f64());
        }
        if let Some((probability, extra)) = imp.reorder
            && probability > 0.0
            && self.rng.next_f64() < probability
        {
            hold += extra;
        }
        leaves.checked_add(hold).ok_or(Dropped::Queue)
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast, and good enough for
/// loss decisions.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn new(seed: u64) -> Self {
        Self(seed)
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)`.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_impairment_leaves_at_arrival() {
        let mut lane = Lane::new(Impairment::new(), 1);
        let t = Instant::now();
        assert_eq!(lane.admit(t, 1200), Ok(t));
    }

    #[test]
    fn rate_cap_spaces_departures_and_drops_tail() {
        // 8 Mbit/s = 1 byte per microsecond.
        let imp = Impairment::new().rate_mbps(8.0).queue_limit_bytes(3000);
        let mut lane = Lane::new(imp, 1);
        let t = Instant::now();
        let first = lane.admit(t, 1000).expect("empty queue");
        let second = lane.admit(t, 1000).expect("1000 queued");
        let third = lane.admit(t, 1000).expect("2000 queued");
        assert!(first >= t + Duration::from_micros(999));
        assert!(second >= t + Duration::from_micros(1999));
        assert!(third >= t + Duration::from_micros(2999));
        assert_eq!(lane.admit(t, 1000), Err(Dropped::Queue));
        // Once the link drained, it accepts again.
        assert!(lane.admit(t + Duration::from_millis(10), 1000).is_ok());
    }

    #[test]
    fn same_seed_same_decisions() {
        let imp = Impairment::new()
            .loss(0.3)
            .burst_loss(0.1, 0.5)
            .jitter(Duration::from_millis(5));
        let t = Instant::now();
        let run = |salt| {
            let mut lane = Lane::new(imp.clone(), salt);
            (0..1000).map(|_| lane.admit(t, 100)).collect::<Vec<_>>()
        };
        assert_eq!(run(1), run(1));
        assert_ne!(run(1), run(2));
    }

    #[test]
    fn splitmix_is_uniform_enough() {
        let mut rng = SplitMix64::new(42);
        let n = 100_000;
        let below = (0..n).filter(|_| rng.next_f64() < 0.25).count();
        assert!((24_000..26_000).contains(&below), "{below}");
    }
}
