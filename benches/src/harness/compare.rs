//! `--compare OLD.json`: each figure's change against an older report.

use serde::{Deserialize, Serialize};

use super::{Better, Report};

/// Changes smaller than this (percent) are noise, neither gain nor regression.
pub const THRESHOLD_PERCENT: f64 = 5.0;

/// How a figure moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Better by more than [`THRESHOLD_PERCENT`].
    Gain,
    /// Worse by more than [`THRESHOLD_PERCENT`].
    Regression,
    /// Within the threshold, or a figure with no better direction.
    Same,
}

/// One figure in both reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Change {
    /// Scenario name.
    pub scenario: String,
    /// Figure name.
    pub figure: String,
    /// The old value.
    pub old: f64,
    /// The new value.
    pub new: f64,
    /// (new − old) / |old| in percent; `None` when old is zero.
    pub percent: Option<f64>,
    /// Gain, regression or same.
    pub verdict: Verdict,
}

/// Every figure present in both reports, in the new report's order.
pub fn compare(old: &Report, new: &Report) -> Vec<Change> {
    let mut out = Vec::new();
    for scenario in &new.scenarios {
        let Some(before) = old.scenarios.iter().find(|s| s.name == scenario.name) else {
            continue;
        };
        for f in &scenario.figures {
            let Some(o) = before.figures.iter().find(|o| o.name == f.name) else {
                continue;
            };
            let delta = f.value - o.value;
            let percent = (o.value != 0.0).then(|| delta / o.value.abs() * 100.0);
            // From zero, any move in the good direction is a gain and vice versa.
            let moved = percent.map_or(delta != 0.0, |p| p.abs() > THRESHOLD_PERCENT);
            let verdict = match (f.better, moved) {
                (Better::None, _) | (_, false) => Verdict::Same,
                (Better::Higher, true) if delta > 0.0 => Verdict::Gain,
                (Better::Lower, true) if delta < 0.0 => Verdict::Gain,
                _ => Verdict::Regression,
            };
            out.push(Change {
                scenario: scenario.name.clone(),
                figure: f.name.clone(),
                old: o.value,
                new: f.value,
                percent,
                verdict,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::{Figure, Inputs, Machine, REPORT_VERSION, Scenario};
    use super::*;

    fn report(figures: Vec<Figure>) -> Report {
        Report {
            version: REPORT_VERSION,
            med8k: "test".into(),
            quick: true,
            started_unix: 0,
            seconds: 1.0,
            machine: Machine {
                cpu: "cpu".into(),
                cores: 1,
                memory_gib: 1.0,
                kernel: "k".into(),
                gpus: Vec::new(),
                gstreamer: "g".into(),
            },
            inputs: Inputs {
                clip: "c".into(),
                cubes: Vec::new(),
                clip_sha256: None,
            },
            stopped: None,
            scenarios: vec![Scenario {
                figures,
                ..Scenario::new("surgeon", "x")
            }],
        }
    }

    #[test]
    fn latency_up_is_a_regression_rate_up_a_gain_and_small_moves_are_noise() {
        let old = report(vec![
            Figure::new("p99", 10.0, "ms", Better::Lower),
            Figure::new("rate", 50.0, "fps", Better::Higher),
            Figure::new("ratio", 2.0, "", Better::Higher),
            Figure::new("frames", 60.0, "", Better::None),
            Figure::new("late", 0.0, "", Better::Lower),
        ]);
        let new = report(vec![
            Figure::new("p99", 12.0, "ms", Better::Lower),
            Figure::new("rate", 60.0, "fps", Better::Higher),
            Figure::new("ratio", 2.02, "", Better::Higher),
            Figure::new("frames", 30.0, "", Better::None),
            Figure::new("late", 3.0, "", Better::Lower),
            Figure::new("only new", 1.0, "", Better::Lower),
        ]);
        let changes = compare(&old, &new);
        let verdicts: Vec<(&str, Verdict)> = changes
            .iter()
            .map(|c| (c.figure.as_str(), c.verdict))
            .collect();
        assert_eq!(
            verdicts,
            [
                ("p99", Verdict::Regression),
                ("rate", Verdict::Gain),
                ("ratio", Verdict::Same),
                ("frames", Verdict::Same),
                ("late", Verdict::Regression),
            ]
        );
        assert!((changes[0].percent.unwrap() - 20.0).abs() < 1e-9);
        assert_eq!(changes[4].percent, None);
    }
}
