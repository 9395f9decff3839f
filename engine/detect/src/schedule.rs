//! "Latest frame wins": one worker thread analyses the newest frame it can.
//!
//! ```text
//! offer(f5) ─► [ slot: f5 ] ─► worker (busy with f2)
//! offer(f6) ─► [ slot: f6 ]    f5 counted as skipped, never queued
//! ```
//!
//! [`Mailbox`] is the single slot: [`Mailbox::offer`] never blocks; an item
//! offered while another waits replaces it and the replaced one is counted as
//! skipped. [`Scheduler`] is a worker thread that takes the newest [`Job`],
//! analyses it, and sends the result on a channel, with counts and latency
//! percentiles (from the frame's capture time to the end of analysis). A job
//! is a frame, whose model input the worker makes, or a model input made
//! already (on the GPU next to compression, see `detect::gpu_input`).

use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, unbounded};
use hdrhistogram::Histogram;
use serde::Serialize;

use super::model::{Detection, ModelError};
use med8k_media::frame::VideoFrame;

/// A model input made before the worker takes it, with the stamps of its frame.
#[derive(Debug, Clone)]
pub struct PreparedInput {
    /// The frame's sequence number.
    pub seq: u64,
    /// When the frame was captured.
    pub captured_at: Instant,
    /// The frame's width and height (boxes come back in its pixels).
    pub frame_size: (u32, u32),
    /// The input, `C × H × W`, before the sidecar's mean/std.
    pub tensor: Vec<f32>,
}

/// What the worker analyses.
#[derive(Debug)]
pub enum Job {
    /// A frame: the worker makes its model input.
    Frame(VideoFrame),
    /// A model input made already.
    Input(PreparedInput),
}

impl Job {
    /// The frame's sequence number.
    pub fn seq(&self) -> u64 {
        match self {
            Job::Frame(f) => f.seq,
            Job::Input(i) => i.seq,
        }
    }

    /// When the frame was captured.
    pub fn captured_at(&self) -> Instant {
        match self {
            Job::Frame(f) => f.captured_at,
            Job::Input(i) => i.captured_at,
        }
    }
}

#[derive(Debug)]
struct Slot<T> {
    waiting: Option<T>,
    /// A worker holds an item it took and has not reported done.
    busy: bool,
    closed: bool,
    offered: u64,
    skipped: u64,
}

/// A single-slot mailbox: the newest item wins, older waiting ones are skipped.
#[derive(Debug)]
pub struct Mailbox<T> {
    slot: Mutex<Slot<T>>,
    ready: Condvar,
}

impl<T> Default for Mailbox<T> {
    fn default() -> Self {
        Mailbox {
            slot: Mutex::new(Slot {
                waiting: None,
                busy: false,
                closed: false,
                offered: 0,
                skipped: 0,
            }),
            ready: Condvar::new(),
        }
    }
}

impl<T> Mailbox<T> {
    /// An empty, open mailbox.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        // A worker that panicked leaves a consistent slot behind: keep going.
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Put `item` in the slot, replacing (and counting as skipped) any
    /// waiting one; after [`close`](Self::close) the item is skipped. Never blocks.
    pub fn offer(&self, item: T) {
        let mut slot = self.lock();
        slot.offered += 1;
        if slot.closed {
            slot.skipped += 1;
            return;
        }
        if slot.waiting.replace(item).is_some() {
            slot.skipped += 1;
        }
        drop(slot);
        self.ready.notify_one();
    }

    /// Wait for an item; `None` once closed and empty.
    pub fn take(&self) -> Option<T> {
        let mut slot = self.lock();
        loop {
            if let Some(item) = slot.waiting.take() {
                slot.busy = true;
                return Some(item);
            }
            if slot.closed {
                return None;
            }
            slot = self
                .ready
                .wait(slot)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The worker finished the item it took.
    pub fn done(&self) {
        self.lock().busy = false;
    }

    /// Whether an item offered now would be taken at once: nothing waits
    /// and no worker is busy. A producer whose items are costly to make (a
    /// copy of an 8K frame) asks first and [`pass`](Self::pass)es otherwise.
    pub fn wants(&self) -> bool {
        let slot = self.lock();
        !slot.busy && slot.waiting.is_none() && !slot.closed
    }

    /// Counts an item not offered because the worker was busy: offered and
    /// skipped, as if it had been replaced.
    pub fn pass(&self) {
        let mut slot = self.lock();
        slot.offered += 1;
        slot.skipped += 1;
    }

    /// No more offers; a waiting item is still taken.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Items offered so far.
    pub fn offered(&self) -> u64 {
        self.lock().offered
    }

    /// Items replaced before a worker took them (or offered after closing).
    pub fn skipped(&self) -> u64 {
        self.lock().skipped
    }
}

/// Counts and timings of a [`Scheduler`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScheduleReport {
    /// Frames offered.
    pub offered: u64,
    /// Frames analysed.
    pub analysed: u64,
    /// Frames replaced by newer ones before analysis.
    pub skipped: u64,
    /// Frames analysed per second of the worker's life.
    pub analysed_per_s: f64,
    /// Median latency, capture to result, in milliseconds.
    pub latency_p50_ms: f64,
    /// 99th percentile latency in milliseconds.
    pub latency_p99_ms: f64,
    /// Mean time in the model per frame, in milliseconds.
    pub inference_ms_mean: f64,
}

#[derive(Debug)]
struct Timings {
    latency_us: Histogram<u64>,
    busy: Duration,
    analysed: u64,
}

impl Timings {
    fn new() -> Result<Self, ModelError> {
        // 1 µs to 1 h at 3 significant digits.
        let latency_us = Histogram::new_with_bounds(1, 3_600_000_000, 3)
            .map_err(|e| ModelError::Run(format!("latency histogram: {e}")))?;
        Ok(Timings {
            latency_us,
            busy: Duration::ZERO,
            analysed: 0,
        })
    }
}

/// A worker thread analysing the newest offered frame; see the module docs.
#[derive(Debug)]
pub struct Scheduler {
    mailbox: Arc<Mailbox<Job>>,
    results: Receiver<Detection>,
    worker: Option<JoinHandle<Result<Timings, ModelError>>>,
    started: Instant,
}

impl Scheduler {
    /// A worker running `analyse` on each job it takes
    /// (`detect::stage::scheduler` runs a model).
    pub fn spawn_with<F>(mut analyse: F) -> Scheduler
    where
        F: FnMut(Job) -> Result<Detection, ModelError> + Send + 'static,
    {
        let mailbox: Arc<Mailbox<Job>> = Arc::new(Mailbox::new());
        let (tx, results): (Sender<Detection>, _) = unbounded();
        let inbox = Arc::clone(&mailbox);
        let worker = std::thread::Builder::new()
            .name("med8k-detect".into())
            .spawn(move || {
                let mut t = Timings::new()?;
                while let Some(job) = inbox.take() {
                    let captured = job.captured_at();
                    let began = Instant::now();
                    let result = analyse(job);
                    let done = Instant::now();
                    let detection = match result {
                        Ok(d) => d,
                        Err(e) => {
                            inbox.done();
                            inbox.close();
                            return Err(e);
                        }
                    };
                    t.busy += done - began;
                    t.analysed += 1;
                    let us = (done - captured).as_micros().clamp(1, 3_600_000_000) as u64;
                    let _ = t.latency_us.record(us);
                    // The result is out before the worker says it is idle:
                    // whoever sees it idle can drain this result. A receiver
                    // that is gone only means nobody reads results.
                    let _ = tx.send(detection);
                    inbox.done();
                }
                Ok(t)
            });
        let worker = match worker {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::error!(%e, "cannot start the detection thread");
                mailbox.close();
                None
            }
        };
        Scheduler {
            mailbox,
            results,
            worker,
            started: Instant::now(),
        }
    }

    /// The worker's mailbox, for whoever hands it jobs made elsewhere
    /// (the pipeline's input tap, fed by a GPU encoder).
    pub fn mailbox(&self) -> &Arc<Mailbox<Job>> {
        &self.mailbox
    }

    /// Offer a frame; never blocks (see [`Mailbox::offer`]).
    pub fn offer(&self, frame: VideoFrame) {
        self.mailbox.offer(Job::Frame(frame));
    }

    /// Offer a model input made already; never blocks.
    pub fn offer_input(&self, input: PreparedInput) {
        self.mailbox.offer(Job::Input(input));
    }

    /// Whether the worker would take a frame offered now (see
    /// [`Mailbox::wants`]).
    pub fn wants_frame(&self) -> bool {
        self.mailbox.wants()
    }

    /// Counts a frame not offered because the worker was busy.
    pub fn pass(&self) {
        self.mailbox.pass();
    }

    /// Results ready so far, in order.
    pub fn drain(&self) -> Vec<Detection> {
        self.results.try_iter().collect()
    }

    /// Close, let the worker analyse a waiting frame, join it; the results
    /// not yet drained and the report.
    pub fn finish(mut self) -> Result<(Vec<Detection>, ScheduleReport), ModelError> {
        self.mailbox.close();
        let timings = match self.worker.take() {
            Some(w) => w
                .join()
                .map_err(|_| ModelError::Run("the detection thread panicked".into()))??,
            None => return Err(ModelError::Run("the detection thread did not start".into())),
        };
        let elapsed = self.started.elapsed().as_secs_f64();
        let h = &timings.latency_us;
        let ms = |q: f64| {
            if timings.analysed == 0 {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        let report = ScheduleReport {
            offered: self.mailbox.offered(),
            analysed: timings.analysed,
            skipped: self.mailbox.skipped(),
            analysed_per_s: if elapsed > 0.0 {
                timings.analysed as f64 / elapsed
            } else {
                0.0
            },
            latency_p50_ms: ms(0.5),
            latency_p99_ms: ms(0.99),
            inference_ms_mean: if timings.analysed == 0 {
                0.0
            } else {
                1000.0 * timings.busy.as_secs_f64() / timings.analysed as f64
            },
        };
        Ok((self.results.try_iter().collect(), report))
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        self.mailbox.close();
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use med8k_media::frame::PixelFormat;

    fn frame(seq: u64) -> VideoFrame {
        let mut f = VideoFrame::zeroed(16, 8, PixelFormat::I420).unwrap();
        f.seq = seq;
        f
    }

    fn detection(seq: u64) -> Detection {
        Detection {
            seq,
            score: seq as f32,
            anomalous: false,
            map: None,
            map_width: 0,
            map_height: 0,
            boxes: Vec::new(),
            quality: None,
            quality_alarm: false,
        }
    }

    #[test]
    fn the_mailbox_keeps_only_the_newest() {
        let m = Mailbox::new();
        m.offer(1);
        m.offer(2);
        m.offer(3);
        assert_eq!((m.offered(), m.skipped()), (3, 2));
        assert_eq!(m.take(), Some(3));
        m.close();
        m.offer(4);
        assert_eq!(m.take(), None);
        assert_eq!((m.offered(), m.skipped()), (4, 3));
    }

    #[test]
    fn the_mailbox_wants_an_item_only_when_idle() {
        let m = Mailbox::new();
        assert!(m.wants());
        m.offer(1);
        assert!(!m.wants(), "one is waiting");
        assert_eq!(m.take(), Some(1));
        assert!(!m.wants(), "the worker is busy");
        m.pass();
        m.pass();
        m.done();
        assert!(m.wants());
        assert_eq!((m.offered(), m.skipped()), (3, 2));
        m.close();
        assert!(!m.wants());
    }

    #[test]
    fn frames_arriving_while_busy_replace_the_waiting_one() {
        // The worker announces each frame it starts and waits for a go.
        let (started_tx, started) = unbounded();
        let (go, go_rx) = unbounded::<()>();
        let s = Scheduler::spawn_with(move |job: Job| {
            started_tx.send(job.seq()).unwrap();
            go_rx.recv().unwrap();
            Ok(detection(job.seq()))
        });
        s.offer(frame(0));
        assert_eq!(started.recv().unwrap(), 0);
        for seq in 1..=3 {
            s.offer(frame(seq)); // worker busy: 1 and 2 are replaced
        }
        go.send(()).unwrap();
        assert_eq!(started.recv().unwrap(), 3);
        s.offer_input(PreparedInput {
            seq: 4,
            captured_at: Instant::now(),
            frame_size: (16, 8),
            tensor: Vec::new(),
        }); // waits while 3 runs
        go.send(()).unwrap();
        assert_eq!(started.recv().unwrap(), 4);
        go.send(()).unwrap();
        let (results, report) = s.finish().unwrap();
        let seqs: Vec<u64> = results.iter().map(|d| d.seq).collect();
        assert_eq!(seqs, vec![0, 3, 4]);
        assert_eq!((report.offered, report.analysed, report.skipped), (5, 3, 2));
        assert!(report.latency_p99_ms >= report.latency_p50_ms);
    }

    #[test]
    fn an_analysis_error_ends_the_worker_and_is_returned() {
        let s = Scheduler::spawn_with(|_job: Job| Err(ModelError::Run("boom".into())));
        s.offer(frame(0));
        let e = s.finish().unwrap_err().to_string();
        assert_eq!(e, "inference failed: boom");
    }
}
