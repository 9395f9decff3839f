//! What a relay does to the datagrams of one direction, and its validation.

use std::fmt;
use std::time::Duration;

/// The longest delay, jitter or extra reordering delay accepted: one hour.
pub const MAX_DELAY: Duration = Duration::from_secs(3600);

/// The lowest bandwidth cap accepted, in Mbit/s (1 kbit/s).
pub const MIN_RATE_MBPS: f64 = 0.001;

/// The highest bandwidth cap accepted, in Mbit/s (1 Tbit/s).
pub const MAX_RATE_MBPS: f64 = 1_000_000.0;

/// The seed used when [`Impairment::seed`] is not called.
pub const DEFAULT_SEED: u64 = 0x6d65_6438_6b5e_ed00;

/// How one direction of a [`Relay`](super::Relay) mistreats its datagrams.
///
/// The default, [`Impairment::new`], forwards everything at once. Each
/// datagram goes through these stages, in this order:
///
/// 1. **blackout** (set on the relay, not here): dropped while one is on;
/// 2. **burst loss** (Gilbert–Elliott): before each datagram the channel moves
///    from *good* to *bad* with probability `p_enter`, and from *bad* back to
///    *good* with `p_exit`; every datagram met in the bad state is dropped, so
///    losses come in runs of mean length `1 / p_exit`;
/// 3. **random loss**: dropped independently with probability `loss`;
/// 4. **bandwidth cap**: the datagram waits for the link to be free, then
///    occupies it for `len * 8 / rate` (payload bytes only); if more than
///    `queue_limit_bytes` would then be waiting, it is dropped (drop-tail);
/// 5. **delay**: it is held `delay` plus a uniform draw in `[0, jitter]`
///    (so `delay` is a floor, and jitter lets later datagrams overtake), plus
///    `extra_delay` with the reordering probability.
///
/// All random draws come from a PRNG seeded with [`seed`](Self::seed), so a
/// run with the same datagrams in the same order makes the same decisions.
///
/// Setters never fail; [`validate`](Self::validate) (called by
/// [`Relay::start`](super::Relay::start) and
/// [`Relay::set_impairment`](super::Relay::set_impairment)) checks the values.
///
/// ```
/// use std::time::Duration;
/// use med8k_transport::relay::Impairment;
///
/// let wan = Impairment::new()
///     .delay(Duration::from_millis(40))
///     .jitter(Duration::from_millis(5))
///     .loss(0.01)
///     .rate_mbps(100.0)
///     .queue_limit_bytes(256 * 1024)
///     .seed(7);
/// assert!(wan.validate().is_ok());
/// assert!(Impairment::new().loss(1.5).validate().is_err());
/// ```
#[derive(Clone, PartialEq)]
pub struct Impairment {
    pub(crate) delay: Duration,
    pub(crate) jitter: Duration,
    pub(crate) loss: f64,
    pub(crate) burst: Option<(f64, f64)>,
    pub(crate) reorder: Option<(f64, Duration)>,
    pub(crate) rate_mbps: Option<f64>,
    pub(crate) queue_limit_bytes: Option<usize>,
    pub(crate) seed: u64,
}

impl Impairment {
    /// No impairment: every datagram is forwarded at once.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            delay: Duration::ZERO,
            jitter: Duration::ZERO,
            loss: 0.0,
            burst: None,
            reorder: None,
            rate_mbps: None,
            queue_limit_bytes: None,
            seed: DEFAULT_SEED,
        }
    }

    /// Fixed one-way delay (at most [`MAX_DELAY`]).
    #[must_use]
    pub const fn delay(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }

    /// Extra delay drawn uniformly from `[0, jitter]` per datagram (at most
    /// [`MAX_DELAY`]).
    #[must_use]
    pub const fn jitter(mut self, jitter: Duration) -> Self {
        self.jitter = jitter;
        self
    }

    /// Independent random loss probability, in `0..=1`.
    #[must_use]
    pub const fn loss(mut self, probability: f64) -> Self {
        self.loss = probability;
        self
    }

    /// Gilbert–Elliott burst loss: probability of entering the lossy state
    /// before a datagram (`0..=1`), and of leaving it (`0 < p_exit <= 1`).
    #[must_use]
    pub const fn burst_loss(mut self, p_enter: f64, p_exit: f64) -> Self {
        self.burst = Some((p_enter, p_exit));
        self
    }

    /// With `probability` (`0..=1`), hold a datagram `extra_delay` longer so
    /// that those behind it overtake it.
    #[must_use]
    pub const fn reorder(mut self, probability: f64, extra_delay: Duration) -> Self {
        self.reorder = Some((probability, extra_delay));
        self
    }

    /// Bandwidth cap in Mbit/s (10^6 bit/s), from [`MIN_RATE_MBPS`] to
    /// [`MAX_RATE_MBPS`]. Without it the link is infinitely fast.
    #[must_use]
    pub const fn rate_mbps(mut self, mbps: f64) -> Self {
        self.rate_mbps = Some(mbps);
        self
    }

    /// Most payload bytes allowed to wait for the capped link; a datagram that
    /// would exceed it is dropped. Needs [`rate_mbps`](Self::rate_mbps);
    /// without this call the queue is unbounded.
    #[must_use]
    pub const fn queue_limit_bytes(mut self, bytes: usize) -> Self {
        self.queue_limit_bytes = Some(bytes);
        self
    }

    /// Seed for this direction's random draws.
    #[must_use]
    pub const fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks every value, returning the first that is out of range.
    pub fn validate(&self) -> Result<(), InvalidImpairment> {
        check_duration("delay", self.delay)?;
        check_duration("jitter", self.jitter)?;
        check_probability("loss", self.loss, "0 ..= 1")?;
        if let Some((enter, exit)) = self.burst {
            check_probability("burst_loss.p_enter", enter, "0 ..= 1")?;
            if !(exit > 0.0 && exit <= 1.0) {
                return Err(InvalidImpairment::new(
                    "burst_loss.p_exit",
                    exit.to_string(),
                    "0 < p_exit <= 1",
                ));
            }
        }
        if let Some((probability, extra)) = self.reorder {
            check_probability("reorder.probability", probability, "0 ..= 1")?;
            check_duration("reorder.extra_delay", extra)?;
        }
        if let Some(mbps) = self.rate_mbps
            && !(MIN_RATE_MBPS..=MAX_RATE_MBPS).contains(&mbps)
        {
            return Err(InvalidImpairment::new(
                "rate_mbps",
                mbps.to_string(),
                "0.001 ..= 1000000 Mbit/s",
            ));
        }
        if let Some(limit) = self.queue_limit_bytes {
            if limit == 0 {
                return Err(InvalidImpairment::new(
                    "queue_limit_bytes",
                    "0".to_owned(),
                    "at least 1 byte",
                ));
            }
            if self.rate_mbps.is_none() {
                return Err(InvalidImpairment::new(
                    "queue_limit_bytes",
                    limit.to_string(),
                    "only together with rate_mbps",
                ));
            }
        }
        Ok(())
    }
}

impl Default for Impairment {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Impairment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Impairment")
            .field("delay", &self.delay)
            .field("jitter", &self.jitter)
            .field("loss", &self.loss)
            .field("burst", &self.burst)
            .field("reorder", &self.reorder)
            .field("rate_mbps", &self.rate_mbps)
            .field("queue_limit_bytes", &self.queue_limit_bytes)
            .field("seed", &self.seed)
            .finish()
    }
}

fn check_probability(
    field: &'static str,
    p: f64,
    allowed: &'static str,
) -> Result<(), InvalidImpairment> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(InvalidImpairment::new(field, p.to_string(), allowed))
    }
}

fn check_duration(field: &'static str, d: Duration) -> Result<(), InvalidImpairment> {
    if d <= MAX_DELAY {
        Ok(())
    } else {
        Err(InvalidImpairment::new(
            field,
            format!("{d:?}"),
            "at most 1 hour",
        ))
    }
}

/// An [`Impairment`] value out of its allowed range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
#[error("invalid impairment: {field} = {value}, allowed: {allowed}")]
pub struct InvalidImpairment {
    /// The setter's name, e.g. `"loss"` or `"burst_loss.p_exit"`.
    pub field: &'static str,
    /// The rejected value, as written by `Display` (or `Debug` for durations).
    pub value: String,
    /// The allowed range.
    pub allowed: &'static str,
}

impl InvalidImpairment {
    fn new(field: &'static str, value: String, allowed: &'static str) -> Self {
        Self {
            field,
            value,
            allowed,
        }
    }
}
