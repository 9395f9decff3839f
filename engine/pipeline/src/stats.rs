//! Per-stage counters: frames/s, a latency histogram and drops.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percentiles {
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Largest seen.
    pub max_us: u64,
    /// Samples recorded.
    pub count: u64,
}

/// A latency histogram from 1 µs to one hour at 3 significant figures.
#[derive(Debug, Clone)]
pub struct Latency(Histogram<u64>);

impl Default for Latency {
    fn default() -> Self {
        // Bounds are constants that hdrhistogram accepts, so this cannot fail;
        // fall back to an auto-resizing histogram rather than panic.
        Latency(
            Histogram::new_with_bounds(1, 3_600_000_000, 3)
                .or_else(|_| Histogram::new(3))
                .unwrap_or_else(|_| unreachable!("3 significant figures is valid")),
        )
    }
}

impl Latency {
    /// Record one duration (saturating at the histogram's bounds).
    pub fn record(&mut self, d: Duration) {
        self.0.saturating_record((d.as_micros() as u64).max(1));
    }

    /// p50, p99 and max.
    pub fn percentiles(&self) -> Percentiles {
        if self.0.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50_us: self.0.value_at_quantile(0.5),
            p99_us: self.0.value_at_quantile(0.99),
            max_us: self.0.max(),
            count: self.0.len(),
        }
    }
}

/// What one stage did during a run.
#[derive(Debug, Clone, Serialize)]
pub struct StageReport {
    /// Stage name.
    pub name: String,
    /// Frames that came in.
    pub frames_in: u64,
    /// Frames passed on.
    pub frames_out: u64,
    /// Frames dropped (a live source's stale frames; frames a stage chose to drop).
    pub dropped: u64,
    /// Frames handled per second, from the first frame in to the last one done.
    pub fps: f64,
    /// Time spent in the stage per frame.
    pub process: Percentiles,
    /// Time from capture to this stage being done with the frame.
    pub since_capture: Percentiles,
    /// The stage's own figures (see [`super::Stage::figures`]).
    #[serde(skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub figures: super::Figures,
}

/// Accumulates a [`StageReport`].
#[derive(Debug)]
pub(crate) struct StageMeter {
    pub name: String,
    pub frames_in: u64,
    pub frames_out: u64,
    pub dropped: u64,
    first: Option<Instant>,
    last: Option<Instant>,
    process: Latency,
    since_capture: Latency,
}

impl StageMeter {
    pub fn new(name: &str) -> Self {
        StageMeter {
            name: name.to_owned(),
            frames_in: 0,
            frames_out: 0,
            dropped: 0,
            first: None,
            last: None,
            process: Latency::default(),
            since_capture: Latency::default(),
        }
    }

    /// A frame captured at `captured` arrived at `start` and is done now;
    /// `passed_on` if it went to the next stage.
    pub fn record(&mut self, start: Instant, captured: Instant, passed_on: bool) {
        let now = Instant::now();
        self.frames_in += 1;
        self.frames_out += u64::from(passed_on);
        self.first.get_or_insert(start);
        self.last = Some(now);
        self.process.record(now - start);
        self.since_capture
            .record(now.saturating_duration_since(captured));
    }

    pub fn report(&self) -> StageReport {
        let span = match (self.first, self.last) {
            (Some(a), Some(b)) => (b - a).as_secs_f64(),
            _ => 0.0,
        };
        StageReport {
            name: self.name.clone(),
            frames_in: self.frames_in,
            frames_out: self.frames_out,
            dropped: self.dropped,
            fps: if span > 0.0 {
                self.frames_in as f64 / span
            } else {
                0.0
            },
            process: self.process.percentiles(),
            since_capture: self.since_capture.percentiles(),
            figures: super::Figures::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_known_values() {
        let mut l = Latency::default();
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        let p = l.percentiles();
        assert_eq!(p.count, 100);
        assert!((49_900..=50_100).contains(&p.p50_us), "{p:?}");
        assert!((98_900..=99_100).contains(&p.p99_us), "{p:?}");
        assert!((99_900..=100_100).contains(&p.max_us), "{p:?}");
    }

    #[test]
    fn empty_histogram_reports_zeros() {
        assert_eq!(Latency::default().percentiles(), Percentiles::default());
    }
}
