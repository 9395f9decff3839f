//! `med8k samples generate`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use med8k_engine::samples::{self, GenerateOptions, Progress, SampleSet, Size};

use crate::Outcome;

/// Options of `med8k samples generate`.
#[derive(Debug, Clone, clap::Args)]
pub struct GenerateArgs {
    /// Output directory [default: $MED8K_SAMPLES, or the user's cache: ~/.cache/med8k/samples].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Frames in the endoscope clip (60 per second).
    #[arg(long, default_value_t = samples::DEFAULT_FRAMES)]
    pub frames: u32,
    /// Frame and cube size: 8k, 4k, 1080p or WIDTHxHEIGHT.
    #[arg(long, default_value = "8k")]
    pub size: Size,
    /// Seed: the same seed gives the same bytes.
    #[arg(long, default_value_t = samples::DEFAULT_SEED)]
    pub seed: u64,
}

impl GenerateArgs {
    pub fn options(&self) -> GenerateOptions {
        GenerateOptions::new()
            .out(self.out.clone().unwrap_or_else(samples::default_dir))
            .frames(self.frames)
            .size(self.size)
            .seed(self.seed)
    }
}

pub fn generate(args: &GenerateArgs) -> anyhow::Result<Outcome> {
    let set = generate_with_progress(&args.options())?;
    println!("samples in {}", set.dir.display());
    Ok(Outcome::Done)
}

/// Generate with progress bars on stderr (hidden when it is not a terminal).
pub fn generate_with_progress(opts: &GenerateOptions) -> anyhow::Result<SampleSet> {
    let started = Instant::now();
    tracing::info!(
        dir = %opts.out.display(),
        width = opts.size.width,
        height = opts.size.height,
        frames = opts.frames,
        seed = opts.seed,
        "generating samples"
    );
    let style = ProgressStyle::with_template("{msg:>10} [{bar:40}] {pos}/{len} {elapsed}<{eta}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let mut bar: Option<(String, ProgressBar)> = None;
    let mut on_progress = |p: Progress<'_>| {
        if bar.as_ref().is_none_or(|(task, _)| task != p.task) {
            if let Some((_, b)) = bar.take() {
                b.finish();
            }
            let b = ProgressBar::new(p.total)
                .with_style(style.clone())
                .with_message(p.task.to_owned());
            bar = Some((p.task.to_owned(), b));
        }
        if let Some((_, b)) = &bar {
            b.set_position(p.done);
        }
    };
    let set = samples::generate(opts, &mut on_progress)
        .with_context(|| format!("generating samples in {}", opts.out.display()))?;
    if let Some((_, b)) = bar.take() {
        b.finish();
    }
    tracing::info!(seconds = started.elapsed().as_secs_f64(), "samples ready");
    Ok(set)
}
