//! # med8k-pipeline
//!
//! The pipeline core: a source and a chain of stages, each on its own thread,
//! joined by bounded channels; the stages med8k ships, the `med8k run`
//! configuration, and [`input::InputSpec`], the one way an input name (a
//! clip, a sample folder, a picture or raw file, a GStreamer pipeline)
//! becomes frames.
//!
//! ```text
//! Source ──[bounded]──► Stage 1 ──[bounded]──► Stage 2 ──► ... ──► (frames end here)
//! ```
//!
//! - A **live** source never waits for the engine: when the first channel is
//!   full, the oldest queued frame is dropped and counted, so a surgeon's
//!   monitor always gets the newest picture. A **file** source blocks instead
//!   and loses nothing.
//! - Each stage is a [`Stage`]: it takes a frame and passes one on, or not
//!   (a sink, a filter). Attaching the codec, the link, the consent gate or the
//!   detector is `pipeline.stage(...)`.
//! - The run ends at end of stream, on the first error (which names the stage
//!   and the frame), or when a [`Shutdown`] is requested (Ctrl-C); every stage
//!   drains what it holds and runs its `finish`.
//!
//! ```no_run
//! use med8k_capture::GstSource;
//! use med8k_pipeline::{Pipeline, Shutdown};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let source = GstSource::open("videotestsrc num-buffers=60 ! video/x-raw,format=I420")?;
//! let report = Pipeline::new(source).run(&Shutdown::new())?;
//! println!("{} frames/s", report.source.fps);
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod config;
pub mod detect;
pub mod encode;
pub mod input;
mod stages;
mod stats;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{
    Receiver, RecvTimeoutError, SendTimeoutError, Sender, TrySendError, bounded,
};
use serde::Serialize;

pub use stages::{SinkStage, V210Pack, V210Unpack};
use stats::StageMeter;
pub use stats::{Latency, Percentiles, StageReport};

use med8k_capture::GstSource;
use med8k_media::frame::VideoFrame;

/// Any error a stage reports.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Where frames come from.
pub trait Source: Send {
    /// A name for reports and errors.
    fn name(&self) -> &str;
    /// True if the source runs on its own clock and must not be blocked.
    fn is_live(&self) -> bool;
    /// The next frame, [`Poll::Idle`] if none came within a short wait (about
    /// 100 ms, so the pipeline can check for shutdown), or [`Poll::End`].
    fn poll(&mut self) -> Result<Poll, BoxError>;
    /// Stop producing; called on shutdown.
    fn stop(&mut self) {}
    /// Frames the source itself discarded (for example inside GStreamer).
    fn dropped(&self) -> u64 {
        0
    }
}

/// What [`Source::poll`] found.
#[derive(Debug)]
pub enum Poll {
    /// A frame.
    Frame(VideoFrame),
    /// Nothing yet.
    Idle,
    /// End of stream.
    End,
}

/// One step of processing.
pub trait Stage: Send {
    /// A name for reports and errors.
    fn name(&self) -> &str;
    /// Handle one frame; return it (or another) to pass it on, `None` to consume it.
    fn process(&mut self, frame: VideoFrame) -> Result<Option<VideoFrame>, BoxError>;
    /// Called once after the last frame (flush an encoder, close a file).
    fn finish(&mut self) -> Result<(), BoxError> {
        Ok(())
    }
    /// Figures of the stage's own for the report (a codec's ratio, say),
    /// read after [`finish`](Self::finish).
    fn figures(&self) -> Figures {
        Figures::new()
    }
}

/// Named figures a stage adds to its report.
pub type Figures = std::collections::BTreeMap<&'static str, f64>;

/// A request to stop, shared with a Ctrl-C handler.
#[derive(Debug, Clone, Default)]
pub struct Shutdown(Arc<AtomicBool>);

impl Shutdown {
    /// Not requested yet.
    pub fn new() -> Self {
        Self::default()
    }
    /// Ask the pipeline to stop; it drains and returns its report.
    pub fn request(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// True once requested.
    pub fn is_requested(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Why a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ending {
    /// The source reached its end and every frame went through.
    EndOfStream,
    /// A shutdown was requested.
    Shutdown,
}

/// A failed run: which stage, on which frame, and why.
#[derive(Debug, thiserror::Error)]
#[error("stage `{stage}` failed{}", .seq.map(|s| format!(" on frame {s}")).unwrap_or_default())]
pub struct PipelineError {
    /// The stage (or source) that failed.
    pub stage: String,
    /// The frame it was handling, if any.
    pub seq: Option<u64>,
    /// What went wrong.
    #[source]
    pub source: BoxError,
}

/// What a run did.
#[derive(Debug, Clone, Serialize)]
pub struct PipelineReport {
    /// Why it ended.
    pub ending: Ending,
    /// Wall time of the run.
    pub seconds: f64,
    /// The source: frames produced, drops (stale frames of a live source), fps.
    pub source: StageReport,
    /// Each stage in order.
    pub stages: Vec<StageReport>,
}

/// A source and its stages, ready to run.
pub struct Pipeline {
    source: Box<dyn Source>,
    stages: Vec<Box<dyn Stage>>,
    queue: usize,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("source", &self.source.name())
            .field(
                "stages",
                &self
                    .stages
                    .iter()
                    .map(|s| s.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .field("queue", &self.queue)
            .finish()
    }
}

impl Pipeline {
    /// A pipeline reading from `source`, with channels two frames deep.
    pub fn new(source: impl Source + 'static) -> Self {
        Pipeline {
            source: Box::new(source),
            stages: Vec::new(),
            queue: 2,
        }
    }

    /// Frames each channel holds (at least 1).
    pub fn queue(mut self, frames: usize) -> Self {
        self.queue = frames.max(1);
        self
    }

    /// Append a stage.
    pub fn stage(mut self, stage: impl Stage + 'static) -> Self {
        self.stages.push(Box::new(stage));
        self
    }

    /// Append a boxed stage.
    pub fn boxed_stage(mut self, stage: Box<dyn Stage>) -> Self {
        self.stages.push(stage);
        self
    }

    /// Run to the end of the stream, the first error, or `shutdown`.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<PipelineReport, PipelineError> {
        if self.stages.is_empty() {
            self.stages.push(Box::new(Discard));
        }
        let started = Instant::now();
        let abort = Shutdown::new();
        let (tx, mut rx) = bounded::<VideoFrame>(self.queue);
        let source_thread = {
            // Only a live source holds a receiver of its own, to discard the oldest frame.
            let oldest = self.source.is_live().then(|| rx.clone());
            let (shutdown, abort) = (shutdown.clone(), abort.clone());
            let source = self.source;
            spawn_named("med8k-source", move || {
                run_source(source, tx, oldest, &shutdown, &abort)
            })
        };
        let mut stage_threads = Vec::new();
        for stage in self.stages {
            let (next_tx, next_rx) = bounded::<VideoFrame>(self.queue);
            let input = std::mem::replace(&mut rx, next_rx);
            let abort = abort.clone();
            let name = format!("med8k-{}", stage.name());
            stage_threads.push(spawn_named(&name, move || {
                run_stage(stage, input, next_tx, &abort)
            }));
        }
        // Frames leaving the last stage end here.
        drop(rx);

        let mut first_error: Option<PipelineError> = None;
        let mut keep = |r: Result<StageReport, PipelineError>| match r {
            Ok(rep) => Some(rep),
            Err(e) => {
                first_error.get_or_insert(e);
                None
            }
        };
        let source = keep(join(source_thread, "source"));
        let stages: Vec<_> = stage_threads
            .into_iter()
            .filter_map(|t| keep(join(t, "stage")))
            .collect();
        if let Some(e) = first_error {
            return Err(e);
        }
        let source = source.ok_or_else(|| PipelineError {
            stage: "source".into(),
            seq: None,
            source: "source thread ended without a report".into(),
        })?;
        Ok(PipelineReport {
            ending: if shutdown.is_requested() {
                Ending::Shutdown
            } else {
                Ending::EndOfStream
            },
            seconds: started.elapsed().as_secs_f64(),
            source,
            stages,
        })
    }
}

fn spawn_named<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<thread::JoinHandle<T>, std::io::Error> {
    thread::Builder::new().name(name.to_owned()).spawn(f)
}

fn join(
    handle: Result<thread::JoinHandle<Result<StageReport, PipelineError>>, std::io::Error>,
    what: &str,
) -> Result<StageReport, PipelineError> {
    let failed = |msg: String| PipelineError {
        stage: what.to_owned(),
        seq: None,
        source: msg.into(),
    };
    handle
        .map_err(|e| failed(format!("could not start a thread: {e}")))?
        .join()
        .map_err(|_| failed("thread panicked".into()))?
}

fn run_source(
    mut source: Box<dyn Source>,
    tx: Sender<VideoFrame>,
    oldest: Option<Receiver<VideoFrame>>,
    shutdown: &Shutdown,
    abort: &Shutdown,
) -> Result<StageReport, PipelineError> {
    let mut meter = StageMeter::new(source.name());
    let result = loop {
        if shutdown.is_requested() || abort.is_requested() {
            source.stop();
            break Ok(());
        }
        let start = Instant::now();
        let frame = match source.poll() {
            Ok(Poll::Frame(f)) => f,
            Ok(Poll::Idle) => continue,
            Ok(Poll::End) => break Ok(()),
            Err(e) => break Err(e),
        };
        meter.record(start, frame.captured_at, true);
        let mut frame = frame;
        let sent = loop {
            match (tx.try_send(frame), &oldest) {
                (Ok(()), _) => break true,
                (Err(TrySendError::Disconnected(_)), _) => break false,
                // Live: newest wins, make room by discarding the oldest queued frame.
                (Err(TrySendError::Full(f)), Some(oldest)) => {
                    if oldest.try_recv().is_ok() {
                        meter.dropped += 1;
                    }
                    frame = f;
                }
                // File: wait for room (backpressure), but not past an abort.
                (Err(TrySendError::Full(f)), None) => {
                    match tx.send_timeout(f, Duration::from_millis(100)) {
                        Ok(()) => break true,
                        Err(SendTimeoutError::Disconnected(_)) => break false,
                        Err(SendTimeoutError::Timeout(f)) if abort.is_requested() => {
                            drop(f);
                            break false;
                        }
                        Err(SendTimeoutError::Timeout(f)) => frame = f,
                    }
                }
            }
        };
        if !sent {
            // Downstream is gone (it failed and reports why); stop reading.
            source.stop();
            break Ok(());
        }
    };
    meter.dropped += source.dropped();
    match result {
        Ok(()) => Ok(meter.report()),
        Err(source_err) => {
            abort.request();
            Err(PipelineError {
                stage: meter.name,
                seq: None,
                source: source_err,
            })
        }
    }
}

fn run_stage(
    mut stage: Box<dyn Stage>,
    input: Receiver<VideoFrame>,
    output: Sender<VideoFrame>,
    abort: &Shutdown,
) -> Result<StageReport, PipelineError> {
    let mut meter = StageMeter::new(stage.name());
    let fail = |meter: &StageMeter, seq: Option<u64>, e: BoxError| {
        abort.request();
        PipelineError {
            stage: meter.name.clone(),
            seq,
            source: e,
        }
    };
    loop {
        let frame = match input.recv_timeout(Duration::from_millis(100)) {
            Ok(f) => f,
            Err(RecvTimeoutError::Timeout) if abort.is_requested() => break,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let (seq, captured, start) = (frame.seq, frame.captured_at, Instant::now());
        match stage.process(frame) {
            Ok(Some(out)) => {
                meter.record(start, captured, true);
                // A closed output means the next stage failed; its error is reported.
                let _ = output.send(out);
            }
            Ok(None) => meter.record(start, captured, false),
            Err(e) => return Err(fail(&meter, Some(seq), e)),
        }
    }
    stage.finish().map_err(|e| fail(&meter, None, e))?;
    let mut report = meter.report();
    report.figures = stage.figures();
    Ok(report)
}

impl Source for GstSource {
    fn name(&self) -> &str {
        "capture"
    }

    fn is_live(&self) -> bool {
        GstSource::is_live(self)
    }

    fn poll(&mut self) -> Result<Poll, BoxError> {
        match self.poll_frame()? {
            Some(f) => Ok(Poll::Frame(f)),
            None if self.is_done() => Ok(Poll::End),
            None => Ok(Poll::Idle),
        }
    }

    fn stop(&mut self) {
        GstSource::stop(self);
    }

    fn dropped(&self) -> u64 {
        GstSource::dropped(self)
    }
}

/// Consumes every frame; the stage of a pipeline that was given none.
#[derive(Debug)]
struct Discard;

impl Stage for Discard {
    fn name(&self) -> &str {
        "discard"
    }

    fn process(&mut self, _: VideoFrame) -> Result<Option<VideoFrame>, BoxError> {
        Ok(None)
    }
}
