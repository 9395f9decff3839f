//! The detector as a pipeline stage: every frame passes on unchanged at once;
//! a copy goes to a [`Scheduler`] whose worker analyses the newest one it can
//! ("latest frame wins", see [`med8k_detect::schedule`]).
//!
//! A frame is copied (about 66 MB for 8K 10-bit 4:2:2, on this stage's own
//! thread) only when the worker is idle and takes it at once; frames that
//! arrive while it is busy pass uncopied and count as skipped. The model
//! never holds up the frames that pass on.
//!
//! When an `encode` stage on the GPU comes before this one, the model input
//! is made there instead, next to compression, from the frame the codec
//! already holds on the GPU (`detect::gpu_input`: a few hundred KB come back
//! instead of a 66 MB copy and the area averaging on the CPU). The two stages
//! meet at an [`InputTap`]: the encode stage makes an input only when the
//! worker is idle and no input is waiting, and this stage hands the input
//! of the frame it holds to the worker, or falls back to the copy.
//!
//! ```toml
//! [[stage]]
//! kind = "detect"
//! model = "models/endoscope-cae/med8k-endoscope-cae.onnx"  # its sidecar .json beside it
//! overlay = "overlays"   # optional: a PNG per frame with boxes or anomalous, relative to the config
//! draw = true             # optional: mark the passing frames for the monitor (the [sink])
//! ```
//!
//! With `draw`, each passing frame gets the newest result's boxes, a red
//! border when anomalous and an amber one when the image-quality alarm is
//! raised (contract 2 models) ([`overlay::draw_frame`], only the outline
//! samples are written) for as long as that result is at most
//! [`overlay::STALE_FRAMES`] frames old. The detector runs behind the video,
//! so marks follow the picture with its latency. Put `encode` before
//! `detect` to keep the marks out of the coded stream.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::{BoxError, Figures, Stage};
use med8k_detect::contract::InputSource;
use med8k_detect::model::{Detection, Model, ModelError};
use med8k_detect::overlay::{self, UnitRect};
use med8k_detect::schedule::{Job, Mailbox, PreparedInput, ScheduleReport, Scheduler};
use med8k_media::frame::{BufferTooSmall, FrameBuffer, VideoFrame};

/// A deep copy of `frame` outside any pool (same layout, sequence number,
/// times and source).
pub fn copy_frame(frame: &VideoFrame) -> Result<VideoFrame, BufferTooSmall> {
    let layout = Arc::clone(frame.layout());
    let mut buf = FrameBuffer::zeroed(layout.size());
    let n = layout.size().min(frame.as_bytes().len());
    buf[..n].copy_from_slice(&frame.as_bytes()[..n]);
    let mut copy = VideoFrame::new(layout, buf, frame.seq, Arc::clone(&frame.source))?;
    copy.pts = frame.pts;
    copy.captured_at = frame.captured_at;
    Ok(copy)
}

/// A scheduler whose worker runs `model` on each job it takes and, when
/// `overlays` is given, writes `frame_NNNNNN.png` there for frames that are
/// anomalous or have boxes (drawn on the frame, or on the model input when
/// that was made already).
pub fn scheduler(model: &Model, overlays: Option<PathBuf>) -> Result<Scheduler, ModelError> {
    let mut runner = model.runner()?;
    let input_size = (
        runner.model().contract().input.width() as u32,
        runner.model().contract().input.height() as u32,
    );
    Ok(Scheduler::spawn_with(move |job: Job| {
        let seq = job.seq();
        let (d, preview) = match job {
            Job::Frame(frame) => {
                let d = runner.detect_frame(&frame)?;
                let want = overlays.is_some() && (d.alarm() || !d.boxes.is_empty());
                let preview =
                    want.then(|| overlay::preview(&frame, &d, overlay::MAX_PREVIEW_WIDTH));
                (d, preview)
            }
            Job::Input(i) => {
                let want = overlays.is_some();
                let ycc = want.then(|| i.tensor.clone());
                let frame_size = i.frame_size;
                let size = (frame_size.0 as usize, frame_size.1 as usize);
                let d = runner.run_tensor(i.seq, i.tensor, size)?;
                let preview = ycc
                    .filter(|_| d.alarm() || !d.boxes.is_empty())
                    .map(|ycc| overlay::preview_of_input(&ycc, input_size, frame_size, &d));
                (d, preview)
            }
        };
        if let (Some(dir), Some(preview)) = (&overlays, preview) {
            let path = dir.join(format!("frame_{seq:06}.png"));
            if let Err(e) = preview.and_then(|pic| overlay::write(&path, &pic)) {
                tracing::warn!(%e, "overlay not written");
            }
        }
        Ok(d)
    }))
}

/// Model inputs made upstream (by the encode stage, on the GPU) for the
/// detect stage after it; see the module docs.
#[derive(Debug)]
pub struct InputTap {
    size: (u32, u32),
    worker: Arc<Mailbox<Job>>,
    waiting: Mutex<Option<PreparedInput>>,
    /// Inputs handed to the worker.
    used: AtomicU64,
}

impl InputTap {
    /// Width and height of the model input.
    pub fn size(&self) -> (u32, u32) {
        self.size
    }

    /// Whether an input made now would be used: the worker is idle and no
    /// input is waiting for its frame to reach the detect stage.
    pub fn wanted(&self) -> bool {
        self.worker.wants() && lock(&self.waiting).is_none()
    }

    /// An input for a frame on its way to the detect stage.
    pub fn put(&self, input: PreparedInput) {
        *lock(&self.waiting) = Some(input);
    }

    /// The input made for frame `seq`, if any; an input for an earlier frame
    /// is dropped (that frame passed the detect stage without it).
    fn take(&self, seq: u64) -> Option<PreparedInput> {
        let mut waiting = lock(&self.waiting);
        match waiting.as_ref().map(|i| i.seq) {
            Some(s) if s == seq => waiting.take(),
            Some(s) if s < seq => {
                *waiting = None;
                None
            }
            _ => None,
        }
    }

    /// How many inputs made upstream the worker was given.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The `detect` stage; see the module docs.
#[derive(Debug)]
pub struct DetectStage {
    scheduler: Option<Scheduler>,
    detections: Vec<Detection>,
    report: Option<ScheduleReport>,
    draw: bool,
    /// The newest result's sequence number, boxes and verdict.
    marks: Option<(u64, Vec<UnitRect>, overlay::Alarms)>,
    tap: Option<Arc<InputTap>>,
}

impl DetectStage {
    /// A stage running `model`, with overlays in `overlays` when given
    /// (the directory is created).
    pub fn new(model: &Model, overlays: Option<&Path>) -> Result<Self, BoxError> {
        if let Some(dir) = overlays {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
        let scheduler = scheduler(model, overlays.map(Path::to_path_buf))?;
        let input = &model.contract().input;
        let tap = (input.source == InputSource::FrameYcbcr).then(|| {
            Arc::new(InputTap {
                size: (input.width() as u32, input.height() as u32),
                worker: Arc::clone(scheduler.mailbox()),
                waiting: Mutex::new(None),
                used: AtomicU64::new(0),
            })
        });
        Ok(DetectStage {
            scheduler: Some(scheduler),
            detections: Vec::new(),
            report: None,
            draw: false,
            marks: None,
            tap,
        })
    }

    /// Where an encode stage before this one puts model inputs it made on
    /// the GPU; `None` for a model that does not take frames.
    pub fn input_tap(&self) -> Option<Arc<InputTap>> {
        self.tap.clone()
    }

    /// Mark passing frames with the newest result (see the module docs).
    pub fn draw(mut self, on: bool) -> Self {
        self.draw = on;
        self
    }

    /// Every detection made so far (all of them after `finish`).
    pub fn detections(&self) -> &[Detection] {
        &self.detections
    }

    /// Whether the detector would take the next frame (it is idle).
    pub fn is_idle(&self) -> bool {
        self.scheduler.as_ref().is_some_and(Scheduler::wants_frame)
    }

    /// The scheduler's report, after `finish`.
    pub fn report(&self) -> Option<&ScheduleReport> {
        self.report.as_ref()
    }
}

impl Stage for DetectStage {
    fn name(&self) -> &str {
        "detect"
    }

    fn process(&mut self, mut frame: VideoFrame) -> Result<Option<VideoFrame>, BoxError> {
        if let Some(s) = &self.scheduler {
            // Copied only when the worker takes it at once: while it is
            // busy, frames pass uncopied and count as skipped, and the first
            // frame after it frees up (the newest) is the one analysed.
            let prepared = self.tap.as_ref().and_then(|t| t.take(frame.seq));
            if s.wants_frame() {
                match prepared {
                    Some(input) => {
                        s.offer_input(input);
                        if let Some(t) = &self.tap {
                            t.used.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    None => s.offer(copy_frame(&frame)?),
                }
            } else {
                s.pass();
            }
            let fresh = s.drain();
            if let Some(d) = fresh.iter().max_by_key(|d| d.seq) {
                let (w, h) = (frame.width(), frame.height());
                self.marks = Some((d.seq, overlay::unit_rects(d, w, h), overlay::Alarms::of(d)));
            }
            self.detections.extend(fresh);
        }
        if self.draw
            && let Some((seq, rects, alarms)) = &self.marks
            && seq.abs_diff(frame.seq) <= overlay::STALE_FRAMES
        {
            overlay::draw_frame(&mut frame, rects, *alarms)?;
        }
        Ok(Some(frame))
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        if let Some(s) = self.scheduler.take() {
            let (rest, report) = s.finish()?;
            self.detections.extend(rest);
            self.report = Some(report);
        }
        Ok(())
    }

    fn figures(&self) -> Figures {
        let mut f = Figures::new();
        let Some(r) = &self.report else {
            return f;
        };
        f.insert("analysed", r.analysed as f64);
        f.insert("skipped", r.skipped as f64);
        f.insert("analysed_per_s", r.analysed_per_s);
        f.insert("latency_p50_ms", r.latency_p50_ms);
        f.insert("latency_p99_ms", r.latency_p99_ms);
        f.insert("inference_ms_mean", r.inference_ms_mean);
        if let Some(t) = &self.tap {
            f.insert("inputs_from_gpu", t.used() as f64);
        }
        f.insert(
            "anomalous",
            self.detections.iter().filter(|d| d.anomalous).count() as f64,
        );
        f.insert(
            "quality_alarms",
            self.detections.iter().filter(|d| d.quality_alarm).count() as f64,
        );
        if let Some(max) = self.detections.iter().map(|d| d.score).reduce(f32::max) {
            f.insert("score_max", f64::from(max));
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use med8k_media::frame::PixelFormat;

    #[test]
    fn a_copy_has_the_same_picture_and_stamps() {
        let mut f = VideoFrame::zeroed(16, 8, PixelFormat::I420).unwrap();
        f.plane_mut(0)[5] = 77;
        f.seq = 9;
        let c = copy_frame(&f).unwrap();
        assert!(c.same_picture(&f));
        assert_eq!((c.seq, c.captured_at), (9, f.captured_at));
    }
}
