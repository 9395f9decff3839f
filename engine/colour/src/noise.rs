//! The sensor noise model and a small seeded random number generator.
//!
//! Noise is Gaussian, added to the white-normalised channel value `v` (1 =
//! white), with a shot-noise part proportional to the signal and a read-noise
//! floor:
//!
//! ```text
//! σ²(v) = σ_w² · ((1 − ρ) · max(v, 0) + ρ),   σ_w = 10^(−SNR_dB / 20),  ρ = 0.01
//! ```
//!
//! so the SNR at white is exactly the stated one and the read-noise variance is
//! 1 % of the variance at white. Every channel of every camera gets the same
//! model at the same SNR: a narrow band is *not* penalised for collecting less
//! light than a broad RGB filter (its exposure is assumed set for it).

/// Read-noise share of the variance at white.
pub const READ_NOISE_SHARE: f64 = 0.01;

/// Sensor noise at a given SNR at white.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
pub struct SensorNoise {
    snr_db: Option<f64>,
}

/// An SNR that is not a finite number of dB in 0–120.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("SNR {0} dB is outside 0–120 dB")]
pub struct BadSnr(pub f64);

impl SensorNoise {
    /// No noise at all.
    pub fn none() -> Self {
        SensorNoise { snr_db: None }
    }

    /// Noise with the given SNR at white, in dB (40 dB = 100:1).
    pub fn from_snr_db(snr_db: f64) -> Result<Self, BadSnr> {
        if (0.0..=120.0).contains(&snr_db) {
            Ok(SensorNoise {
                snr_db: Some(snr_db),
            })
        } else {
            Err(BadSnr(snr_db))
        }
    }

    /// The SNR at white in dB, or `None` for no noise.
    pub fn snr_db(&self) -> Option<f64> {
        self.snr_db
    }

    /// The noise variance at channel value `v`.
    pub fn variance(&self, v: f64) -> f64 {
        match self.snr_db {
            None => 0.0,
            Some(db) => {
                let sw2 = 10f64.powf(-db / 10.0);
                sw2 * ((1.0 - READ_NOISE_SHARE) * v.max(0.0) + READ_NOISE_SHARE)
            }
        }
    }

    /// Adds one draw of noise to every value.
    pub fn apply(&self, values: &mut [f64], rng: &mut Rng) {
        if self.snr_db.is_none() {
            return;
        }
        for v in values.iter_mut() {
            *v += self.variance(*v).sqrt() * rng.normal();
        }
    }
}

/// xoshiro256** (Blackman & Vigna 2018) seeded through SplitMix64, with
/// Box–Muller normal deviates. Deterministic for a given seed on every platform.
#[derive(Debug, Clone)]
pub struct Rng {
    s: [u64; 4],
    spare: Option<f64>,
}

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        let mut x = seed;
        let mut split = || {
            x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = x;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        };
        Rng {
            s: [split(), split(), split(), split()],
            spare: None,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let result = self.s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = self.s[1] << 17;
        self.s[2] ^= self.s[0];
        self.s[3] ^= self.s[1];
        self.s[1] ^= self.s[2];
        self.s[0] ^= self.s[3];
        self.s[2] ^= t;
        self.s[3] = self.s[3].rotate_left(45);
        result
    }

    /// Uniform in (0, 1).
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A standard normal deviate.
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        let u1 = self.uniform();
        let u2 = self.uniform();
        let r = (-2.0 * u1.ln()).sqrt();
        let t = std::f64::consts::TAU * u2;
        self.spare = Some(r * t.sin());
        r * t.cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_deviates_have_unit_variance_and_repeat() {
        let mut rng = Rng::new(7);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| rng.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.01 && (var - 1.0).abs() < 0.01,
            "{mean} {var}"
        );
        let mut again = Rng::new(7);
        assert_eq!(again.normal(), xs[0]);
    }

    #[test]
    fn snr_at_white_is_as_stated() {
        let n = SensorNoise::from_snr_db(40.0).unwrap();
        assert!((n.variance(1.0).sqrt() - 0.01).abs() < 1e-15);
        assert!(n.variance(0.0) > 0.0);
        assert_eq!(SensorNoise::none().variance(1.0), 0.0);
        assert_eq!(SensorNoise::from_snr_db(-3.0), Err(BadSnr(-3.0)));
        assert!(SensorNoise::from_snr_db(f64::NAN).is_err());
    }
}
