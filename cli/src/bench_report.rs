//! `med8k bench`: every scenario on recorded samples, one report
//! ([`med8k_benches::harness`]): a table on the terminal, `--json`, `--html`
//! and `--compare`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use med8k_benches::harness::compare::{Change, Verdict, compare};
use med8k_benches::harness::{HarnessOptions, Hooks, Report, html, run_with};
use med8k_media::imageio::RawSpec;

use crate::{Outcome, on_ctrl_c};

/// `med8k bench` without a subcommand.
#[derive(Debug, Default, clap::Args)]
pub struct BenchArgs {
    /// Small samples (generated at 384x216) and few frames: under two minutes on two cores.
    #[arg(long)]
    quick: bool,
    /// Recorded samples (`med8k samples generate`); the default sample directory otherwise.
    #[arg(long)]
    samples: Option<PathBuf>,
    /// Your own clip instead of the samples' clip.
    #[arg(long)]
    clip: Option<PathBuf>,
    /// The clip is raw frames of this layout, WIDTHxHEIGHT:FORMAT (`7680x4320:v210`:
    /// as an SDI card delivers them, replayed packed to the surgeon's pipeline).
    #[arg(long, requires = "clip")]
    format: Option<RawSpec>,
    /// Your own 7-band cube(s) (ENVI .hdr) instead of the samples' cubes.
    #[arg(long)]
    cube: Vec<PathBuf>,
    /// The detector model (ONNX, contract JSON beside it).
    #[arg(long)]
    model: Option<PathBuf>,
    /// Scenarios to run: surgeon, remote-monitor, pathology, detection (all by default).
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Frames the surgeon's camera delivers.
    #[arg(long)]
    camera_frames: Option<u64>,
    /// Leave out the peers (OpenJPH, FFmpeg, onnxruntime).
    #[arg(long)]
    no_peers: bool,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the self-contained HTML report here.
    #[arg(long)]
    html: Option<PathBuf>,
    /// An older `--json` report: mark each figure's change in percent.
    #[arg(long)]
    compare: Option<PathBuf>,
}

fn print_table(report: &Report, changes: &[Change]) {
    let m = &report.machine;
    println!(
        "machine: {} ({} cores), {:.1} GiB, GPU: {}, {}",
        m.cpu,
        m.cores,
        m.memory_gib,
        if m.gpus.is_empty() {
            "none".to_owned()
        } else {
            m.gpus.join("; ")
        },
        m.gstreamer
    );
    if let Some(why) = &report.stopped {
        println!("PARTIAL REPORT: {why}");
    }
    for s in &report.scenarios {
        println!("\n== {} ==  {}", s.name, s.what);
        for f in &s.figures {
            let change = changes
                .iter()
                .find(|c| c.scenario == s.name && c.figure == f.name)
                .map(|c| {
                    let pct = c
                        .percent
                        .map_or_else(|| "from 0".to_owned(), |p| format!("{p:+.1}%"));
                    match c.verdict {
                        Verdict::Gain => format!("  {pct} gain"),
                        Verdict::Regression => format!("  {pct} REGRESSION"),
                        Verdict::Same => format!("  {pct}"),
                    }
                })
                .unwrap_or_default();
            println!("  {:<52} {:>12.3} {:<5}{change}", f.name, f.value, f.unit);
        }
        if !s.stages.is_empty() {
            println!(
                "  {:<36} {:>8} {:>9} {:>9} {:>9} {:>8}",
                "stage", "fps", "p50 ms", "p99 ms", "max ms", "dropped"
            );
            for st in &s.stages {
                println!(
                    "  {:<36} {:>8.2} {:>9.2} {:>9.2} {:>9.2} {:>8}",
                    st.name, st.fps, st.p50_ms, st.p99_ms, st.max_ms, st.dropped
                );
            }
        }
        for n in &s.notes {
            println!("  note: {n}");
        }
    }
    if !changes.is_empty() {
        let count = |v| changes.iter().filter(|c| c.verdict == v).count();
        println!(
            "\nagainst the older report: {} gains, {} regressions",
            count(Verdict::Gain),
            count(Verdict::Regression)
        );
    }
    println!("\n{:.1} s", report.seconds);
}

/// `med8k bench`.
pub fn bench(args: &BenchArgs) -> anyhow::Result<Outcome> {
    // Read the older report first: a bad path fails before minutes of work.
    let old = args.compare.as_deref().map(Report::load).transpose()?;
    let mut options = if args.quick {
        HarnessOptions::quick()
    } else {
        HarnessOptions::full()
    };
    if args.samples.is_some() {
        options.samples = args.samples.clone();
    }
    options.clip = args.clip.clone();
    options.raw = args.format;
    options.cubes = args.cube.clone();
    options.model = args.model.clone();
    options.only = args.only.clone();
    options.no_peers = args.no_peers;
    if let Some(n) = args.camera_frames {
        anyhow::ensure!(n > 0, "--camera-frames must be at least 1");
        options.surgeon_frames = n;
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    // Ctrl-C stops before the next scenario; the report keeps what ran.
    let shutdown = med8k_pipeline::Shutdown::new();
    on_ctrl_c(&shutdown)?;
    let mut written: anyhow::Result<()> = Ok(());
    let report = run_with(
        &options,
        Hooks {
            progress: &mut |line| {
                // Without a terminal the bar draws nothing: the steps go to stderr as lines.
                if bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    bar.println(line);
                    bar.set_message(line.trim().to_owned());
                }
            },
            // After each scenario the outputs hold the figures so far.
            scenario_done: &mut |partial| {
                if written.is_ok() {
                    written = write_outputs(args, partial, old.as_ref());
                }
            },
            stop: &|| shutdown.is_requested(),
        },
    );
    bar.finish_and_clear();
    let report = report?;
    written?;
    let changes = old
        .as_ref()
        .map(|o| compare(o, &report))
        .unwrap_or_default();
    print_table(&report, &changes);
    write_outputs(args, &report, old.as_ref())?;
    Ok(match &report.stopped {
        Some(why) => {
            eprintln!("med8k: {why}; the report holds the scenarios that ran");
            Outcome::Interrupted
        }
        None => Outcome::Done,
    })
}

/// `--json` and `--html` for `report` (compared with `old` when given).
fn write_outputs(args: &BenchArgs, report: &Report, old: Option<&Report>) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(report)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.html {
        let changes = old.map(|o| compare(o, report));
        let page = html::render(report, changes.as_deref())?;
        std::fs::write(path, page).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
