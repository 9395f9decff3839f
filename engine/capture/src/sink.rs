//! Output: frames into an `appsrc` in front of any sink description.

use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use gstreamer_video::prelude::*;

use super::{GstError, error_from_message, parse_pipeline, pending_error, video_format};
use med8k_media::frame::{FrameLayout, VideoFrame};

const APPSRC_NAME: &str = "med8k_appsrc";

/// How to open a [`GstSink`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SinkOptions {
    /// Frame rate announced in the caps, as a fraction.
    pub framerate: (i32, i32),
    /// Frames the appsrc queues before `push` blocks.
    pub queue: u32,
    /// Set `creation-time` on a `matroskamux` in the description to this
    /// (seconds since the Unix epoch), so that written files are reproducible.
    pub creation_time: Option<i64>,
    /// Transfer characteristics and primaries to announce (GStreamer colorimetry
    /// string such as `bt2020` or `bt709`); the format's default when `None`.
    pub colorimetry: Option<String>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        SinkOptions {
            framerate: (60, 1),
            queue: 2,
            creation_time: None,
            colorimetry: None,
        }
    }
}

impl SinkOptions {
    /// Set the frame rate.
    pub fn framerate(mut self, num: i32, den: i32) -> Self {
        self.framerate = (num, den.max(1));
        self
    }

    /// Make a `matroskamux` write this creation time instead of now.
    pub fn creation_time(mut self, unix_seconds: i64) -> Self {
        self.creation_time = Some(unix_seconds);
        self
    }

    /// Announce this colorimetry in the caps.
    pub fn colorimetry(mut self, c: &str) -> Self {
        self.colorimetry = Some(c.to_owned());
        self
    }

    /// Open `description` with these options.
    pub fn open(self, description: &str) -> Result<GstSink, GstError> {
        GstSink::open_with(description, self)
    }
}

/// Frames pushed through `appsrc ! <description>`.
///
/// Caps follow the frames: the first frame sets them, a frame of another size
/// or format renegotiates. When the engine's plane layout is GStreamer's own
/// (true for the common 8K, 4K and 1080p sizes) the buffer is handed over
/// without a copy and returns to its pool when GStreamer is done with it.
#[derive(Debug)]
pub struct GstSink {
    description: String,
    pipeline: gst::Pipeline,
    appsrc: gst_app::AppSrc,
    bus: gst::Bus,
    options: SinkOptions,
    current: Option<(FrameLayout, gst_video::VideoInfo)>,
    pushed: u64,
    zero_copy: u64,
}

impl GstSink {
    /// Open `description` with default options.
    pub fn open(description: &str) -> Result<Self, GstError> {
        Self::open_with(description, SinkOptions::default())
    }

    fn open_with(description: &str, options: SinkOptions) -> Result<Self, GstError> {
        let full = format!("appsrc name={APPSRC_NAME} ! {description}");
        let pipeline = parse_pipeline(&full, description)?;
        let appsrc = pipeline
            .by_name(APPSRC_NAME)
            .and_then(|e| e.downcast::<gst_app::AppSrc>().ok())
            .ok_or_else(|| GstError::Parse {
                description: description.to_owned(),
                message: "appsrc could not be created".into(),
            })?;
        appsrc.set_format(gst::Format::Time);
        appsrc.set_block(true);
        appsrc.set_property("max-buffers", u64::from(options.queue.max(1)));
        if let Some(t) = options.creation_time {
            let when = gst::glib::DateTime::from_unix_utc(t).map_err(|e| GstError::Parse {
                description: description.to_owned(),
                message: format!("bad creation time {t}: {e}"),
            })?;
            for e in pipeline.iterate_recurse().into_iter().flatten() {
                if e.factory().is_some_and(|f| f.name() == "matroskamux") {
                    e.set_property("creation-time", &when);
                }
            }
        }
        let bus = pipeline.bus().ok_or_else(|| GstError::StateChange {
            description: description.to_owned(),
        })?;
        if pipeline.set_state(gst::State::Playing).is_err() {
            return Err(pending_error(&bus).unwrap_or(GstError::StateChange {
                description: description.to_owned(),
            }));
        }
        Ok(GstSink {
            description: description.to_owned(),
            pipeline,
            appsrc,
            bus,
            options,
            current: None,
            pushed: 0,
            zero_copy: 0,
        })
    }

    /// The element named `name` in the sink's pipeline, to attach a probe or
    /// an `appsink` callback (a benchmark reading frames back at the glass).
    pub fn element(&self, name: &str) -> Option<gst::Element> {
        self.pipeline.by_name(name)
    }

    /// Frames pushed so far, and how many of them went without a copy.
    pub fn pushed(&self) -> (u64, u64) {
        (self.pushed, self.zero_copy)
    }

    /// Push one frame; blocks while the sink is behind (backpressure).
    pub fn push(&mut self, frame: VideoFrame) -> Result<(), GstError> {
        if let Some(err) = pending_error(&self.bus) {
            return Err(err);
        }
        let info = self.info_for(&frame)?;
        let (num, den) = self.options.framerate;
        let frame_ns = 1_000_000_000u64 * den as u64 / num.max(1) as u64;
        let pts = frame
            .pts
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(frame.seq * frame_ns);
        let layout = frame.layout().clone();
        let same_layout =
            layout.planes().iter().enumerate().all(|(p, l)| {
                info.offset()[p] == l.offset && info.stride()[p] as usize == l.stride
            });
        let mut buffer = if same_layout && frame.as_bytes().len() >= info.size() {
            self.zero_copy += 1;
            let mut b = gst::Buffer::from_mut_slice(frame.into_buffer());
            if let Some(b) = b.get_mut() {
                b.set_size(info.size());
            }
            b
        } else {
            let mut b = gst::Buffer::with_size(info.size()).map_err(|e| self.buffer_err(e))?;
            {
                let bm = b
                    .get_mut()
                    .ok_or_else(|| self.buffer_err("new buffer not writable"))?;
                let mut vf = gst_video::VideoFrameRef::from_buffer_ref_writable(bm, &info)
                    .map_err(|e| self.buffer_err(e))?;
                for (p, l) in layout.planes().iter().enumerate() {
                    let stride = vf.plane_stride()[p] as usize;
                    let dst = vf
                        .plane_data_mut(p as u32)
                        .map_err(|e| self.buffer_err(e))?;
                    for (row, src) in frame.rows(p).enumerate() {
                        dst[row * stride..row * stride + l.row_bytes].copy_from_slice(src);
                    }
                }
            }
            b
        };
        if let Some(b) = buffer.get_mut() {
            b.set_pts(gst::ClockTime::from_nseconds(pts));
            b.set_duration(gst::ClockTime::from_nseconds(frame_ns));
        }
        self.appsrc.push_buffer(buffer).map_err(|flow| {
            pending_error(&self.bus).unwrap_or_else(|| self.buffer_err(format!("{flow:?}")))
        })?;
        self.pushed += 1;
        Ok(())
    }

    /// Signal end of stream and wait until the sink has written everything.
    pub fn finish(mut self, timeout: Duration) -> Result<(), GstError> {
        let _ = self.appsrc.end_of_stream();
        let deadline = gst::ClockTime::from_nseconds(timeout.as_nanos() as u64);
        let msg = self
            .bus
            .timed_pop_filtered(deadline, &[gst::MessageType::Eos, gst::MessageType::Error]);
        let result = match msg {
            Some(m) => error_from_message(&m).map_or(Ok(()), Err),
            None => Err(GstError::Element {
                element: self.description.clone(),
                message: format!("no end of stream within {timeout:?}"),
                detail: String::new(),
            }),
        };
        let _ = self.pipeline.set_state(gst::State::Null);
        self.current = None;
        result
    }

    fn info_for(&mut self, frame: &VideoFrame) -> Result<gst_video::VideoInfo, GstError> {
        if let Some((l, info)) = &self.current
            && **frame.layout() == *l
        {
            return Ok(info.clone());
        }
        let (num, den) = self.options.framerate;
        let mut b = gst_video::VideoInfo::builder(
            video_format(frame.format()),
            frame.width(),
            frame.height(),
        )
        .fps(gst::Fraction::new(num, den));
        let colorimetry = match &self.options.colorimetry {
            Some(c) => Some(
                c.parse::<gst_video::VideoColorimetry>()
                    .map_err(|e| self.buffer_err(e))?,
            ),
            None => None,
        };
        if let Some(c) = &colorimetry {
            b = b.colorimetry(c);
        }
        let info = b.build().map_err(|e| self.buffer_err(e))?;
        let caps = info.to_caps().map_err(|e| self.buffer_err(e))?;
        self.appsrc.set_caps(Some(&caps));
        self.current = Some(((**frame.layout()).clone(), info.clone()));
        Ok(info)
    }

    fn buffer_err(&self, e: impl std::fmt::Display) -> GstError {
        GstError::Buffer {
            element: APPSRC_NAME.to_owned(),
            message: e.to_string(),
        }
    }
}

impl Drop for GstSink {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
