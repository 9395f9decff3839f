//! `med8k bench codec`: the codec against its peers
//! ([`med8k_benches::codec`]).

use std::path::PathBuf;

use anyhow::Context;
use med8k_benches::codec::{CodecBenchOptions, bench_codec as run, print_table};
use med8k_media::imageio::RawSpec;
use med8k_pipeline::encode::Backend;

use crate::Outcome;

/// `med8k bench codec`.
#[derive(Debug, clap::Args)]
pub struct BenchCodecArgs {
    /// Pictures, clips or cubes; the recorded samples when none are given.
    files: Vec<PathBuf>,
    /// Layout of raw inputs, WIDTHxHEIGHT:FORMAT.
    #[arg(long)]
    format: Option<RawSpec>,
    /// Frames taken from each clip.
    #[arg(long, default_value_t = 2)]
    frames: u64,
    /// Timed runs per measurement (the median is reported).
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Rate-controlled targets in bits per pixel.
    #[arg(long, default_values_t = vec![3.0])]
    bpp: Vec<f64>,
    /// Backends to measure: cpu, gpu (default: cpu, and gpu when an adapter exists).
    #[arg(long)]
    backend: Vec<Backend>,
    /// Leave out OpenJPH and FFmpeg.
    #[arg(long)]
    no_peers: bool,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

pub fn bench_codec(args: &BenchCodecArgs) -> anyhow::Result<Outcome> {
    let options = CodecBenchOptions {
        files: args.files.clone(),
        format: args.format,
        frames: args.frames,
        runs: args.runs,
        bpp: args.bpp.clone(),
        backends: args.backend.clone(),
        no_peers: args.no_peers,
    };
    let rows = run(&options, &mut |line| eprintln!("{line}"))?;
    print_table(&rows);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&rows)?)
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(Outcome::Done)
}
