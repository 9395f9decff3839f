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
use med8k_media::frame::{FrameLayout, FramePool, PixelFormat, VideoFrame};

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
    /// Assemble each frame from several appsinks (see [`SourceOptions::tiled`]).
    pub tiles: Option<Tiling>,
    /// How long a file source may take to start (preroll) before it is an
    /// error; a live source may wait for its device as long as it likes.
    pub start_timeout: Duration,
}

/// A frame assembled from tiles, each arriving on its own appsink, as 8K
/// arrives over four SDI links or is stored as four quadrant tracks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tiling {
    /// Width of the assembled frame.
    pub width: u32,
    /// Height of the assembled frame.
    pub height: u32,
    /// `(appsink name, x, y)` of every tile; tiles must cover the frame.
    pub tiles: Vec<(String, u32, u32)>,
}

impl Default for SourceOptions {
    fn default() -> Self {
        SourceOptions {
            id: Arc::from("source"),
            queue: 2,
            pool_keep: 8,
            tiles: None,
            start_timeout: Duration::from_secs(20),
        }
    }
}

impl SourceOptions {
    /// Set the identifier stamped on frames.
    pub fn id(mut self, id: &str) -> Self {
        self.id = Arc::from(id);
        self
    }

    /// How long a file source may take to deliver its first frame.
    pub fn start_timeout(mut self, t: Duration) -> Self {
        self.start_timeout = t;
        self
    }

    /// Set the appsink's queue depth (at least 1).
    pub fn queue(mut self, frames: u32) -> Self {
        self.queue = frames.max(1);
        self
    }

    /// Assemble `width`×`height` frames from the appsinks named in `tiles`,
    /// each placed at its `(x, y)`. Planar and RGB formats only; `x` and `y`
    /// even for subsampled formats.
    pub fn tiled(mut self, width: u32, height: u32, tiles: Vec<(String, u32, u32)>) -> Self {
        self.tiles = Some(Tiling {
            width,
            height,
            tiles,
        });
        self
    }

    /// Open `description` with these options.
    pub fn open(self, description: &str) -> Result<GstSource, GstError> {
        GstSource::open_with(description, self)
    }
}

/// One appsink and where its pictures go in the frame.
#[derive(Debug)]
struct Tile {
    sink: gst_app::AppSink,
    x: u32,
    y: u32,
    pending: Option<gst::Sample>,
}

/// Frames from a GStreamer pipeline description that ends in an `appsink`
/// (one is appended when the description has none).
///
/// Caps are negotiated to the formats in [`med8k_media::frame::PixelFormat::ALL`]; anything
/// else is [`GstError::UnsupportedCaps`]. A live source (one that does not
/// preroll: a capture card, a camera) has its appsink drop the oldest frame
/// when the engine falls behind, and the drops are counted; a file source
/// blocks instead, so nothing is lost.
///
/// Each frame is copied once, out of the GstBuffer(s) into a pooled buffer.
#[derive(Debug)]
pub struct GstSource {
    description: String,
    pipeline: gst::Pipeline,
    bus: gst::Bus,
    tiles: Vec<Tile>,
    live: bool,
    options: SourceOptions,
    pool: Option<(Arc<FrameLayout>, FramePool)>,
    arrived: Arc<AtomicU64>,
    pulled: u64,
    done: bool,
    started: Instant,
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
        Self::open_file(
            path,
            |location| format!("filesrc location={location} ! decodebin"),
            options,
        )
    }

    /// Open a pipeline that reads the file at `path`; `description` builds it
    /// from the quoted location. A missing file is [`GstError::MissingFile`],
    /// and every later error is [`GstError::InClip`], naming the file.
    pub fn open_file(
        path: &Path,
        description: impl FnOnce(&str) -> String,
        options: SourceOptions,
    ) -> Result<Self, GstError> {
        if !path.is_file() {
            return Err(GstError::MissingFile {
                path: path.display().to_string(),
            });
        }
        let clip = path.display().to_string();
        let mut source = Self::open_with(&description(&super::quote_location(path)), options)
            .map_err(|e| GstError::InClip {
                path: clip.clone(),
                source: Box::new(e),
            })?;
        source.clip = Some(clip);
        Ok(source)
    }

    fn open_with(description: &str, options: SourceOptions) -> Result<Self, GstError> {
        let (pipeline, appsink) = parse_source(description)?;
        let tiles = match &options.tiles {
            None => vec![Tile {
                sink: appsink,
                x: 0,
                y: 0,
                pending: None,
            }],
            Some(tiling) => tiling
                .tiles
                .iter()
                .map(|(name, x, y)| {
                    let sink = pipeline
                        .by_name(name)
                        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
                        .ok_or_else(|| GstError::Parse {
                            description: description.to_owned(),
                            message: format!("no appsink named `{name}` for a tile"),
                        })?;
                    Ok(Tile {
                        sink,
                        x: *x,
                        y: *y,
                        pending: None,
                    })
                })
                .collect::<Result<_, GstError>>()?,
        };
        for t in &tiles {
            t.sink.set_caps(Some(&super::supported_caps()));
            t.sink.set_sync(false);
            t.sink.set_max_buffers(options.queue);
        }
        // Frames reaching the (first) appsink, to count what it drops.
        let arrived = Arc::new(AtomicU64::new(0));
        let counter = arrived.clone();
        if let Some(pad) = tiles.first().and_then(|t| t.sink.static_pad("sink")) {
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
            bus,
            tiles,
            live: false,
            options,
            pool: None,
            arrived,
            pulled: 0,
            done: false,
            started: Instant::now(),
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
        for t in &self.tiles {
            t.sink.set_drop(self.live);
        }
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
    pub fn pool_stats(&self) -> Option<med8k_media::frame::PoolStats> {
        self.pool.as_ref().map(|(_, p)| p.stats())
    }

    /// The next frame, or `None` at end of stream. Waits at most ~100 ms per
    /// tile, then returns `Ok(None)` with [`GstSource::is_done`] false, so a
    /// caller can check a stop flag. Errors from a clip name the clip.
    pub fn poll_frame(&mut self) -> Result<Option<VideoFrame>, GstError> {
        self.poll_inner().map_err(|e| match &self.clip {
            Some(path) => GstError::InClip {
                path: path.clone(),
                source: Box::new(e),
            },
            None => e,
        })
    }

    fn poll_inner(&mut self) -> Result<Option<VideoFrame>, GstError> {
        if self.done {
            return Ok(None);
        }
        let timeout = gst::ClockTime::from_nseconds(PULL_TIMEOUT.as_nanos() as u64);
        let mut complete = true;
        for t in &mut self.tiles {
            if t.pending.is_none() {
                t.pending = t.sink.try_pull_sample(timeout);
            }
            complete &= t.pending.is_some();
        }
        if complete {
            let frame = self.assemble()?;
            self.pulled += 1;
            return Ok(Some(frame));
        }
        if let Some(err) = self.bus_error() {
            self.done = true;
            return Err(err);
        }
        if self
            .tiles
            .iter()
            .any(|t| t.pending.is_none() && t.sink.is_eos())
        {
            self.done = true;
        } else if !self.live && self.pulled == 0 {
            // A file pipeline that fails or never prerolls must not hang its
            // caller: decodebin can swallow a demuxer's "no streams" error.
            let (result, state, _) = self.pipeline.state(gst::ClockTime::ZERO);
            let timed_out = self.started.elapsed() > self.options.start_timeout;
            if result.is_err() || (timed_out && state != gst::State::Playing) {
                self.done = true;
                return Err(GstError::NoStart {
                    description: self.description.clone(),
                    waited: self.started.elapsed(),
                });
            }
        }
        Ok(None)
    }

    /// The frames, one after the other, as an iterator ([`next_frame`](Self::next_frame)).
    pub fn frames(&mut self) -> impl Iterator<Item = Result<VideoFrame, GstError>> + '_ {
        std::iter::from_fn(move || self.next_frame().transpose())
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
        let err = pending_error(&self.bus)?;
        let GstError::Element {
            element, detail, ..
        } = &err
        else {
            return Some(err);
        };
        if detail.contains("not-negotiated") {
            let caps = self.tiles[0]
                .sink
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

    /// Copy the pending sample of every tile into one pooled frame.
    fn assemble(&mut self) -> Result<VideoFrame, GstError> {
        let element = self.tiles[0].sink.path_string().to_string();
        let bad = |message: String| GstError::Buffer {
            element: element.clone(),
            message,
        };
        let samples: Vec<gst::Sample> = self
            .tiles
            .iter_mut()
            .filter_map(|t| t.pending.take())
            .collect();
        let mut infos = Vec::with_capacity(samples.len());
        for sample in &samples {
            let caps = sample
                .caps()
                .ok_or_else(|| bad("sample without caps".into()))?;
            let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| bad(e.to_string()))?;
            pixel_format(info.format()).ok_or_else(|| GstError::UnsupportedCaps {
                element: element.clone(),
                caps: caps.to_string(),
            })?;
            infos.push(info);
        }
        let format = pixel_format(infos[0].format()).unwrap_or(PixelFormat::I422_10);
        let (width, height) = match &self.options.tiles {
            Some(t) => (t.width, t.height),
            None => (infos[0].width(), infos[0].height()),
        };
        let layout = self.layout_for(width, height, format).map_err(&bad)?;
        let pool = self
            .pool
            .as_ref()
            .map(|(_, p)| p.clone())
            .ok_or_else(|| bad("no pool".into()))?;
        let mut buf = pool.acquire();
        for ((tile, sample), info) in self.tiles.iter().zip(&samples).zip(&infos) {
            if pixel_format(info.format()) != Some(format) {
                return Err(bad(format!(
                    "tiles disagree on format: {} and {format}",
                    info.format()
                )));
            }
            let buffer = sample
                .buffer()
                .ok_or_else(|| bad("sample without buffer".into()))?;
            let vframe = gst_video::VideoFrameRef::from_buffer_ref_readable(buffer, info)
                .map_err(|e| bad(e.to_string()))?;
            copy_tile(&vframe, &layout, tile.x, tile.y, &mut buf).map_err(&bad)?;
        }
        let mut frame = VideoFrame::new(layout, buf, self.pulled, self.options.id.clone())
            .map_err(|e| bad(e.to_string()))?;
        frame.pts = samples[0]
            .buffer()
            .and_then(|b| b.pts())
            .map(|t| Duration::from_nanos(t.nseconds()));
        frame.captured_at = Instant::now();
        Ok(frame)
    }

    /// The layout for frames of this size and format, with a pool of buffers for it.
    fn layout_for(
        &mut self,
        width: u32,
        height: u32,
        format: PixelFormat,
    ) -> Result<Arc<FrameLayout>, String> {
        if let Some((l, _)) = &self.pool
            && l.width == width
            && l.height == height
            && l.format == format
        {
            return Ok(l.clone());
        }
        let layout =
            Arc::new(FrameLayout::packed(width, height, format).map_err(|e| e.to_string())?);
        self.pool = Some((
            layout.clone(),
            FramePool::new(layout.size(), self.options.pool_keep),
        ));
        Ok(layout)
    }
}

/// Copy one GStreamer picture into `buf` (laid out as `layout`) at `(x, y)`.
fn copy_tile(
    src: &gst_video::VideoFrameRef<&gst::BufferRef>,
    layout: &FrameLayout,
    x: u32,
    y: u32,
    buf: &mut [u8],
) -> Result<(), String> {
    let (w, h) = (src.width(), src.height());
    let format = layout.format;
    let aligned = match format {
        PixelFormat::V210 => x.is_multiple_of(48),
        PixelFormat::Rgb8 | PixelFormat::Rgba8 => true,
        _ => x.is_multiple_of(2) && y.is_multiple_of(2),
    };
    if !aligned || x + w > layout.width || y + h > layout.height {
        return Err(format!(
            "a {w}x{h} tile at ({x}, {y}) does not fit a {}x{} {format} frame",
            layout.width, layout.height
        ));
    }
    for (p, pl) in layout.planes().iter().enumerate() {
        let data = src.plane_data(p as u32).map_err(|e| e.to_string())?;
        let src_stride = src.plane_stride()[p] as usize;
        let row_bytes = format.row_bytes(p, w);
        let x_bytes = if x == 0 { 0 } else { format.row_bytes(p, x) };
        let y_rows = format.plane_dims(p, 1, y).1 as usize;
        let rows = format.plane_dims(p, w, h).1 as usize;
        // The whole frame in one piece: one copy.
        if x == 0
            && y == 0
            && row_bytes == pl.row_bytes
            && src_stride == pl.stride
            && data.len() >= pl.span()
        {
            buf[pl.offset..pl.offset + pl.span()].copy_from_slice(&data[..pl.span()]);
            continue;
        }
        for row in 0..rows {
            let s = data
                .get(row * src_stride..row * src_stride + row_bytes)
                .ok_or_else(|| format!("plane {p} is shorter than its caps say"))?;
            let d = pl.offset + (y_rows + row) * pl.stride + x_bytes;
            buf[d..d + row_bytes].copy_from_slice(s);
        }
    }
    Ok(())
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
