//! Printing pipeline reports.

use med8k_pipeline::{PipelineReport, StageReport};

/// A table of the source and each stage: frames, fps, latencies, drops;
/// then each stage's own figures.
pub fn print(report: &PipelineReport) {
    println!(
        "{:<14} {:>7} {:>7} {:>8} {:>10} {:>10} {:>10} {:>12}",
        "stage", "frames", "dropped", "fps", "p50 ms", "p99 ms", "max ms", "capture→ms"
    );
    let row = |s: &StageReport| {
        let ms = |us: u64| us as f64 / 1000.0;
        println!(
            "{:<14} {:>7} {:>7} {:>8.2} {:>10.2} {:>10.2} {:>10.2} {:>12.2}",
            s.name,
            s.frames_in,
            s.dropped,
            s.fps,
            ms(s.process.p50_us),
            ms(s.process.p99_us),
            ms(s.process.max_us),
            ms(s.since_capture.p99_us),
        );
    };
    row(&report.source);
    report.stages.iter().for_each(row);
    for s in report.stages.iter().filter(|s| !s.figures.is_empty()) {
        let figures: Vec<String> = s
            .figures
            .iter()
            .map(|(k, v)| format!("{k} {v:.3}"))
            .collect();
        println!("{:<14} {}", s.name, figures.join(", "));
    }
    println!("{:?} after {:.2} s", report.ending, report.seconds);
}
