//! Capture: frames out of an `appsink`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::{GstError, parse_pipeline, pending_error, pixel_format};
use crate::frame::{FrameLayout, FramePool, VideoFrame};

/// Name given to the appsink med8k appends when a description has none.
const APPSINK_NAME: &str = "med8k_appsink";
/// How long one pull waits before checking the bus and the caller's stop flag.
const PULL_TIMEOUT: Duration = Duration::from_millis(100);

/// How to open a [`GstSource`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SourceOptions {
    /// Identifier stamped on every frame.
    pub id: Arc<str>,
    /// Frames the appsink may hold before it drops (live) or blocks (file).
    pub queue: u32,
    /// Idle buffers the frame pool keeps.
    pub pool_keep: usize,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            id: Arc::from("source"),
            queue: 2,
            pool_keep: 8,
        }
    }
}

impl SourceOptions {
    /// Set the identifier stamped on frames.
    pub fn id(mut self, id: &str) -> Self {
        self.id = Arc::from(id);
        self
    }

    /// Set the appsink's queue depth (at least 1).
    pub fn queue(mut self, frames: u32) -> Self {
        self.queue = frames.max(1);
        self
    }

    /// Open `description` with these options.
    pub fn open(self, description: &str) -> Result<GstSource, GstError> {
        GstSource::open_with(description, self)
    }
}

/// Frames from a GStreamer pipeline description that ends in an `appsink`
/// (one is appended when the description has none).
///
/// Caps are negotiated to the formats in [`crate::frame::PixelFormat::ALL`]; anything
/// else is [`GstError::UnsupportedCaps`]. A live source (one that does not
/// preroll: a capture card, a camera) has its appsink drop the oldest frame
/// when the engine falls behind, and the drops are counted; a file source
/// blocks instead, so nothing is lost.
///
/// Each frame is copied once, out of the GstBuffer into a pooled buffer.
#[derive(Debug)]
pub struct GstSource {
    description: String,
    pipeline: gst::Pipeline,
    appsink: gst_app::AppSink,
    bus: gst::Bus,
    live: bool,
    options: SourceOptions,
    pool: Option<(Arc<FrameLayout>, FramePool)>,
    arrived: Arc<AtomicU64>,
    pulled: u64,
    done: bool,
    /// The recorded clip being read, named in errors.
    clip: Option<String>,
}

impl GstSource {
    /// Open `description` with default options.
    pub fn open(description: &str) -> Result<Self, GstError> {
        Self::open_with(description, SourceOptions::default())
    }

    /// Open a recorded clip (any container and codec GStreamer can decode).
    pub fn open_clip(path: &Path, options: SourceOptions) -> Result<Self, GstError> {
        if !path.is_file() {
            return Err(GstError::MissingFile {
                path: path.display().to_string(),
            });
        }
        let location = path
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"");
        let clip = path.display().to_string();
        let in_clip = |e| GstError::InClip {
            path: clip.clone(),
            source: Box::new(e),
        };
        let mut source = Self::open_with(
            &format!("filesrc location=\"{location}\" ! decodebin"),
            options,
        )
        .map_err(in_clip)?;
        source.clip = Some(clip);
        Ok(source)
    }

    fn open_with(description: &str, options: SourceOptions) -> Result<Self, GstError> {
        let (pipeline, appsink) = parse_source(description)?;
        appsink.set_caps(Some(&super::supported_caps()));
        appsink.set_sync(false);
        appsink.set_max_buffers(options.queue);

        let arrived = Arc::new(AtomicU64::new(0));
        let counter = arrived.clone();
        if let Some(pad) = appsink.static_pad("sink") {
            pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
                counter.fetch_add(1, Ordering::Relaxed);
                gst::PadProbeReturn::Ok
            });
        }
        let bus = pipeline.bus().ok_or_else(|| GstError::StateChange {
            description: description.to_owned(),
        })?;
        let mut source = GstSource {
            description: description.to_owned(),
            pipeline,
            appsink,
            bus,
            live: false,
            options,
            pool: None,
            arrived,
            pulled: 0,
            done: false,
            clip: None,
        };
        source.start()?;
        Ok(source)
    }

    fn start(&mut self) -> Result<(), GstError> {
        let refused = || GstError::StateChange {
            description: self.description.clone(),
        };
        match self.pipeline.set_state(gst::State::Paused) {
            Ok(gst::StateChangeSuccess::NoPreroll) => self.live = true,
            Ok(_) => {}
            Err(_) => return Err(self.bus_error().unwrap_or_else(refused)),
        }
        // A live source must never back up into the device: drop the oldest.
        self.appsink.set_drop(self.live);
        if self.pipeline.set_state(gst::State::Playing).is_err() {
            return Err(self.bus_error().unwrap_or_else(refused));
        }
        Ok(())
    }

    /// True for a live source (drops when behind), false for a file (blocks).
    pub fn is_live(&self) -> bool {
        self.live
    }

    /// Frames GStreamer's appsink discarded because the engine was behind.
    /// Exact once the source has ended; while running it may count frames
    /// still queued in the appsink.
    pub fn dropped(&self) -> u64 {
        let queued = if self.done {
            0
        } else {
            u64::from(self.options.queue)
        };
        self.arrived
            .load(Ordering::Relaxed)
            .saturating_sub(self.pulled + queued)
    }

    /// Allocation counters of the frame pool, once the first frame has arrived.
    pub fn pool_stats(&self) -> Option<crate::frame::PoolStats> {
        self.pool.as_ref().map(|(_, p)| p.stats())
    }

    /// Frames delivered so far.
    pub fn delivered(&self) -> u64 {
        self.pulled
    }

    /// The next frame, or `None` at end of stream. Waits at most ~100 ms, then
    /// returns `Ok(None)` with [`GstSource::is_done`] false, so a caller can check a stop flag.
    pub fn poll_frame(&mut self) -> Result<Option<VideoFrame>, GstError> {
        if self.done {
            return Ok(None);
        }
        if let Some(sample) = self
            .appsink
            .try_pull_sample(gst::ClockTime::from_nseconds(PULL_TIMEOUT.as_nanos() as u64))
        {
            let frame = self.frame_from_sample(&sample)?;
            self.pulled += 1;
            return Ok(Some(frame));
        }
        if let Some(err) = self.bus_error() {
            self.done = true;
            return Err(err);
        }
        if self.appsink.is_eos() {
            self.done = true;
        }
        Ok(None)
    }

    /// The next frame, waiting as long as it takes; `None` at end of stream.
    pub fn next_frame(&mut self) -> Result<Option<VideoFrame>, GstError> {
        loop {
            if let Some(f) = self.poll_frame()? {
                return Ok(Some(f));
            }
            if self.done {
                return Ok(None);
            }
        }
    }

    /// True once the stream has ended (end of stream or an error).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Stop the pipeline; later polls return `None`.
    pub fn stop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
        self.done = true;
    }

    fn bus_error(&self) -> Option<GstError> {
        let err = self.element_error()?;
        Some(match &self.clip {
            Some(path) => GstError::InClip {
                path: path.clone(),
                source: Box::new(err),
            },
            None => err,
        })
    }

    fn element_error(&self) -> Option<GstError> {
        let err = pending_error(&self.bus)?;
        let GstError::Element {
            element, detail, ..
        } = &err
        else {
            return Some(err);
        };
        if detail.contains("not-negotiated") {
            let caps = self
                .appsink
                .static_pad("sink")
                .and_then(|p| p.peer())
                .map(|peer| peer.query_caps(None).to_string())
                .unwrap_or_else(|| "unknown caps".into());
            return Some(GstError::UnsupportedCaps {
                element: element.clone(),
                caps,
            });
        }
        Some(err)
    }

    fn frame_from_sample(&mut self, sample: &gst::Sample) -> Result<VideoFrame, GstError> {
        let element = self.appsink.path_string().to_string();
        let bad = |message: String| GstError::Buffer {
            element: element.clone(),
            message,
        };
        let caps = sample
            .caps()
            .ok_or_else(|| bad("sample without caps".into()))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| bad(e.to_string()))?;
        let format = pixel_format(info.format()).ok_or_else(|| GstError::UnsupportedCaps {
            element: element.clone(),
            caps: caps.to_string(),
        })?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| bad("sample without buffer".into()))?;
        let vframe = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, &info)
            .map_err(|e| bad(e.to_string()))?;

        let (layout, pool) = match &self.pool {
            Some((l, p))
                if l.width == info.width() && l.height == info.height() && l.format == format =>
            {
                (l.clone(), p.clone())
            }
            _ => {
                let layout = Arc::new(
                    FrameLayout::packed(info.width(), info.height(), format)
                        .map_err(|e| bad(e.to_string()))?,
                );
                let pool = FramePool::new(layout.size(), self.options.pool_keep);
                self.pool = Some((layout.clone(), pool.clone()));
                (layout, pool)
            }
        };
        let mut buf = pool.acquire();
        for (p, pl) in layout.planes().iter().enumerate() {
            let src = vframe
                .plane_data(p as u32)
                .map_err(|e| bad(e.to_string()))?;
            let src_stride = vframe.plane_stride()[p] as usize;
            if src_stride == pl.stride && src.len() >= pl.span() {
                buf[pl.offset..pl.offset + pl.span()].copy_from_slice(&src[..pl.span()]);
                continue;
            }
            for row in 0..pl.rows {
                let s = src
                    .get(row * src_stride..row * src_stride + pl.row_bytes)
                    .ok_or_else(|| bad(format!("plane {p} is shorter than its caps say")))?;
                let d = pl.offset + row * pl.stride;
                buf[d..d + pl.row_bytes].copy_from_slice(s);
            }
        }
        let mut frame = VideoFrame::new(layout, buf, self.pulled, self.options.id.clone())
            .map_err(|e| bad(e.to_string()))?;
        frame.pts = buffer.pts().map(|t| Duration::from_nanos(t.nseconds()));
        frame.captured_at = Instant::now();
        Ok(frame)
    }
}

/// Parse a source description; use its appsink if it has one, else append ours.
pub(super) fn parse_source(
    description: &str,
) -> Result<(gst::Pipeline, gst_app::AppSink), GstError> {
    let find_appsink = |p: &gst::Pipeline| {
        p.iterate_recurse()
            .into_iter()
            .flatten()
            .find_map(|e| e.downcast::<gst_app::AppSink>().ok())
    };
    let pipeline = match parse_pipeline(description, description) {
        Ok(p) if find_appsink(&p).is_some() => p,
        _ => parse_pipeline(
            &format!("{description} ! appsink name={APPSINK_NAME}"),
            description,
        )?,
    };
    let appsink = find_appsink(&pipeline).ok_or_else(|| GstError::Parse {
        description: description.to_owned(),
        message: "the description has no appsink".into(),
    })?;
    Ok((pipeline, appsink))
}

impl Drop for GstSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
