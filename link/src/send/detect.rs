//! The detector beside a send: the worker thread (latest frame wins), its
//! results stamped with the link's sequence numbers.

use anyhow::bail;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use med8k_detect::contract::InputSource;
use med8k_detect::input::picture_tensor;
use med8k_detect::model::{Model, ModelError};
use med8k_detect::schedule::Mailbox;
use med8k_media::picture::Picture;
use med8k_transport::driver::Link;
use med8k_transport::proto::{BoundingBox, FrameMeta, MAX_BOXES, Quality};
use tokio::sync::mpsc;

/// A detector result, waiting for its frame's link sequence number.
#[derive(Debug, Clone)]
pub(super) struct Analysed {
    /// The frame's capture index.
    pub(super) index: u64,
    pub(super) score: f32,
    pub(super) threshold: f32,
    /// Normalised to the picture, at most [`MAX_BOXES`].
    pub(super) boxes: Vec<BoundingBox>,
    /// The image-quality alarm, when the model has one.
    pub(super) quality: Option<Quality>,
}

/// The detector side of a send: the worker's mailbox and its results.
pub(super) struct Detector {
    pub(super) mailbox: Arc<Mailbox<(u64, ToAnalyse)>>,
    pub(super) results: mpsc::UnboundedReceiver<Analysed>,
    pub(super) worker: std::thread::JoinHandle<u64>,
}

/// What the detector is given: a copy of the picture (it makes the model
/// input), or the input made already next to compression on the GPU.
pub(super) enum ToAnalyse {
    Picture(Picture),
    Input {
        tensor: Vec<f32>,
        /// The picture's width and height.
        size: (usize, usize),
    },
}

/// Frames sent and detection results, matched by capture index.
#[derive(Debug, Default)]
pub(super) struct Stamps {
    /// Whether results may still come (frames sent are remembered).
    pub(super) on: bool,
    /// Capture index -> (channel, link sequence number) of frames sent in
    /// this session.
    pub(super) sent: HashMap<u64, (u16, u64)>,
    /// Results whose frame has not been sent yet.
    pub(super) waiting: BTreeMap<u64, Analysed>,
    /// `FrameMeta` messages sent.
    pub(super) metas: u64,
    /// Results whose frame never went (dropped, stale, or the meta failed).
    pub(super) unsent: u64,
}

impl Stamps {
    /// A frame went as `(channel, seq)`: its result, if already there,
    /// goes now.
    pub(super) async fn frame_sent(&mut self, link: &Link, index: u64, channel: u16, seq: u64) {
        // Results of older frames that never went will not find them.
        let rest = self.waiting.split_off(&index);
        self.unsent += self.waiting.len() as u64;
        self.waiting = rest;
        if let Some(a) = self.waiting.remove(&index) {
            self.send(link, a, channel, seq).await;
        } else if self.on {
            self.sent.insert(index, (channel, seq));
        }
    }

    /// A result is ready: it goes now if its frame went, else waits.
    pub(super) async fn result(&mut self, link: &Link, a: Analysed) {
        // Results come in capture order: older frames get none now.
        self.sent.retain(|&i, _| i >= a.index);
        match self.sent.remove(&a.index) {
            Some((channel, seq)) => self.send(link, a, channel, seq).await,
            None => {
                self.waiting.insert(a.index, a);
            }
        }
    }

    pub(super) async fn send(&mut self, link: &Link, a: Analysed, channel: u16, seq: u64) {
        let meta = FrameMeta {
            channel,
            seq,
            score: a.score,
            threshold: a.threshold,
            boxes: a.boxes,
            quality: a.quality,
        };
        match link.send_frame_meta(meta).await {
            Ok(()) => self.metas += 1,
            Err(e) => {
                self.unsent += 1;
                tracing::warn!(seq, "sending the detection result: {e}");
            }
        }
    }

    /// A new session numbers frames from 0 again: forget the old numbers.
    pub(super) fn reconnected(&mut self) {
        self.unsent += self.sent.len() as u64;
        self.sent.clear();
    }
}

/// Loads `--model`: a frame model, checked against its sidecar.
pub(super) fn load_model(path: &Path) -> anyhow::Result<Model> {
    let model = Model::load(path).map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let source = model.contract().input.source;
    if source != InputSource::FrameYcbcr {
        bail!(
            "--model {}: a {source:?} model, not a frame (frame-ycbcr) model",
            path.display()
        );
    }
    Ok(model)
}

/// Starts the detector thread: it takes the newest offered picture, runs
/// the model and sends the result; it ends when the mailbox is closed and
/// empty, returning how many frames it analysed.
pub(super) fn start_detector(model: &Model) -> anyhow::Result<Detector> {
    let mut runner = model
        .runner()
        .map_err(|e| anyhow::anyhow!("--model: {e}"))?;
    let mailbox: Arc<Mailbox<(u64, ToAnalyse)>> = Arc::new(Mailbox::new());
    let (tx, results) = mpsc::unbounded_channel();
    let worker = {
        let mailbox = mailbox.clone();
        std::thread::Builder::new()
            .name("med8k-send-detect".into())
            .spawn(move || {
                let mut analysed = 0u64;
                let mut failed = 0u64;
                while let Some((index, job)) = mailbox.take() {
                    match analyse(&mut runner, index, job) {
                        Ok(a) => {
                            analysed += 1;
                            // The link loop gone: nobody wants results.
                            let _ = tx.send(a);
                        }
                        Err(e) => {
                            failed += 1;
                            if failed == 1 {
                                tracing::warn!("detection failed on frame {index}: {e}");
                            }
                        }
                    }
                    mailbox.done();
                }
                if failed > 1 {
                    tracing::warn!("detection failed on {failed} frame(s)");
                }
                analysed
            })?
    };
    Ok(Detector {
        mailbox,
        results,
        worker,
    })
}

/// Runs the model on a Y'CbCr picture or its input; boxes normalised to the
/// picture and clipped to [`MAX_BOXES`] (the largest are kept).
pub(super) fn analyse(
    runner: &mut med8k_detect::model::Runner,
    index: u64,
    job: ToAnalyse,
) -> Result<Analysed, ModelError> {
    let contract = runner.model().contract();
    let (iw, ih) = (contract.input.width(), contract.input.height());
    let threshold = contract.threshold.score;
    let (tensor, (w, h)) = match job {
        ToAnalyse::Input { tensor, size } => (tensor, size),
        ToAnalyse::Picture(pic) => {
            let size = (pic.width() as usize, pic.height() as usize);
            (picture_tensor(&pic, iw, ih)?, size)
        }
    };
    let d = runner.run_tensor(index, tensor, (w, h))?;
    let unit = |v: u32, full: usize| (v as f32 / full.max(1) as f32).clamp(0.0, 1.0);
    let boxes = d
        .boxes
        .iter()
        .take(MAX_BOXES)
        .map(|b| BoundingBox {
            x: unit(b.x, w),
            y: unit(b.y, h),
            w: unit(b.width, w),
            h: unit(b.height, h),
            score: if b.peak.is_finite() { b.peak } else { 0.0 },
            class: 0,
        })
        .collect();
    let quality = match (d.quality, runner.model().contract().threshold.quality) {
        (Some(value), Some(threshold)) if value.is_finite() => Some(Quality { value, threshold }),
        _ => None,
    };
    Ok(Analysed {
        index,
        score: d.score,
        threshold,
        boxes,
        quality,
    })
}

/// The next detection result; `None` once the detector ended; pending
/// forever without one.
pub(super) async fn next_result<T>(rx: &mut Option<mpsc::UnboundedReceiver<T>>) -> Option<T> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Closes the detector's mailbox when capture ends (or fails).
pub(super) struct CloseOnDrop(pub(super) Option<Arc<Mailbox<(u64, ToAnalyse)>>>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        if let Some(m) = &self.0 {
            m.close();
        }
    }
}
