//! A model over a sequence of frames, in order, timed: what `med8k detect`
//! prints and `med8k eval detect` scores.

use std::path::Path;
use std::time::Instant;

use med8k_media::frame::VideoFrame;

use crate::model::{Detection, ModelError, Runner};
use crate::overlay::{self, MAX_PREVIEW_WIDTH, OverlayError};

/// Why a run stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The frames could not be read.
    #[error(transparent)]
    Source(Box<dyn std::error::Error + Send + Sync>),
    /// The model failed on a frame.
    #[error("frame {seq}: {source}")]
    Model {
        /// The frame.
        seq: u64,
        /// Why.
        source: ModelError,
    },
    /// An overlay could not be written.
    #[error(transparent)]
    Overlay(#[from] OverlayError),
}

/// What a run came to.
#[derive(Debug, Clone, Default)]
pub struct FrameRun {
    /// One per frame, in order.
    pub detections: Vec<Detection>,
    /// Each frame's model time in milliseconds, sorted.
    pub latencies_ms: Vec<f64>,
    /// The whole run, reading included.
    pub seconds: f64,
}

impl FrameRun {
    /// Frames analysed per second over the whole run.
    pub fn frames_per_s(&self) -> f64 {
        self.detections.len() as f64 / self.seconds.max(1e-9)
    }

    /// Latency percentile `q` in `0..=1` (nearest rank), milliseconds.
    pub fn latency_ms(&self, q: f64) -> f64 {
        percentile(&self.latencies_ms, q)
    }
}

/// Percentile `q` of sorted values (nearest rank); 0 for none.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let k = ((q * (sorted.len() - 1) as f64).round() as usize).min(sorted.len() - 1);
    sorted[k]
}

/// Every frame through `runner`, in order (a file loses nothing); an
/// overlay PNG in `overlays` for each anomalous frame or frame with boxes;
/// `each` sees every result as it comes.
pub fn run_frames<E>(
    runner: &mut Runner,
    frames: impl IntoIterator<Item = Result<VideoFrame, E>>,
    overlays: Option<&Path>,
    mut each: impl FnMut(&Detection, &VideoFrame),
) -> Result<FrameRun, RunError>
where
    E: std::error::Error + Send + Sync + 'static,
{
    let mut run = FrameRun::default();
    let started = Instant::now();
    for frame in frames {
        let frame = frame.map_err(|e| RunError::Source(Box::new(e)))?;
        let t0 = Instant::now();
        let d = runner
            .detect_frame(&frame)
            .map_err(|source| RunError::Model {
                seq: frame.seq,
                source,
            })?;
        run.latencies_ms.push(t0.elapsed().as_secs_f64() * 1000.0);
        if let Some(dir) = overlays
            && (d.anomalous || !d.boxes.is_empty())
        {
            overlay::write_png(
                &dir.join(format!("frame_{:06}.png", frame.seq)),
                &frame,
                &d,
                MAX_PREVIEW_WIDTH,
            )?;
        }
        each(&d, &frame);
        run.detections.push(d);
    }
    run.seconds = started.elapsed().as_secs_f64();
    run.latencies_ms.sort_by(f64::total_cmp);
    Ok(run)
}
