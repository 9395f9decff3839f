//! # med8k-capture
//!
//! GStreamer at the edges: [`GstSource`] pulls frames out of any pipeline that
//! ends in an `appsink`; [`GstSink`] pushes frames through an `appsrc` into any
//! sink description.
//!
//! A guided tour:
//! - [`GstSource`]: an SDI card, a camera, a file or several appsinks whose
//!   tiles (quad-link "square division") it assembles into one frame; caps
//!   are negotiated to a format the engine handles ([`PixelFormat`]) or
//!   refused by name; a live source drops its oldest frame and counts it
//!   rather than fall behind, a file waits ([`SourceOptions`]).
//! - [`GstSink`]: an `appsrc` before any sink (a monitor, SDI playout, a
//!   file), zero-copy when the layouts agree ([`SinkOptions`]).
//! - [`check_descriptions`], [`plugins`], [`version`]: what this machine's
//!   GStreamer can do, for configs and `med8k probe`.
//!
//! Which input name opens which source (a clip, a sample folder, a
//! pipeline) is decided one level up, by `med8k_pipeline::input`.
//!
//! ```no_run
//! use med8k_capture::{GstSource, SinkOptions};
//! # fn main() -> Result<(), med8k_capture::GstError> {
//! let mut source = GstSource::open("videotestsrc num-buffers=60 ! video/x-raw,format=I420")?;
//! let mut sink = SinkOptions::default().open("videoconvert ! fakesink")?;
//! while let Some(frame) = source.next_frame()? {
//!     sink.push(frame)?;
//! }
//! sink.finish(std::time::Duration::from_secs(5))?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod sink;
mod source;

use std::sync::OnceLock;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_video as gst_video;

pub use sink::{GstSink, SinkOptions};
pub use source::{GstSource, SourceOptions};

use med8k_media::frame::PixelFormat;

/// Why a GStreamer source or sink failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GstError {
    /// GStreamer itself could not start.
    #[error("GStreamer could not be initialised: {0}")]
    Init(String),
    /// The pipeline description does not parse or names a missing element.
    #[error("pipeline `{description}` does not parse: {message}")]
    Parse {
        /// The description as given.
        description: String,
        /// GStreamer's reason.
        message: String,
    },
    /// A file the pipeline reads does not exist.
    #[error("{path}: no such file")]
    MissingFile {
        /// The path.
        path: String,
    },
    /// An element posted an error (a corrupt file, a device that went away, ...).
    #[error("{element}: {message}{}", if .detail.is_empty() { String::new() } else { format!(" ({})", .detail) })]
    Element {
        /// Path of the element that failed, such as `/GstPipeline:pipeline0/GstFileSrc:filesrc0`.
        element: String,
        /// GStreamer's message.
        message: String,
        /// GStreamer's debug detail, on one line.
        detail: String,
    },
    /// Upstream offers only caps the engine cannot take.
    #[error(
        "caps the engine cannot handle from `{element}`: {caps} (supported formats: {})",
        supported_formats()
    )]
    UnsupportedCaps {
        /// The element whose output could not be taken.
        element: String,
        /// What it offered.
        caps: String,
    },
    /// Something went wrong reading a recorded clip.
    #[error("{path}")]
    InClip {
        /// The clip.
        path: String,
        /// What went wrong.
        #[source]
        source: Box<GstError>,
    },
    /// A file pipeline produced nothing and never started (no video stream?).
    #[error(
        "pipeline `{description}` produced no frame and did not start within {waited:?} (no video stream?)"
    )]
    NoStart {
        /// The description.
        description: String,
        /// How long it was given.
        waited: std::time::Duration,
    },
    /// The pipeline would not change state and posted no error saying why.
    #[error("pipeline `{description}` refused to start")]
    StateChange {
        /// The description.
        description: String,
    },
    /// A frame buffer did not match its caps.
    #[error("bad buffer from `{element}`: {message}")]
    Buffer {
        /// The element.
        element: String,
        /// What was wrong.
        message: String,
    },
}

fn supported_formats() -> String {
    PixelFormat::ALL
        .iter()
        .map(|f| f.gst_name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `path` as a quoted value for a pipeline description (`location="..."`).
pub fn quote_location(path: &std::path::Path) -> String {
    format!(
        "\"{}\"",
        path.display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    )
}

/// Initialise GStreamer once per process.
pub fn init() -> Result<(), GstError> {
    static INIT: OnceLock<Result<(), String>> = OnceLock::new();
    INIT.get_or_init(|| gst::init().map_err(|e| e.to_string()))
        .clone()
        .map_err(GstError::Init)
}

/// GStreamer's version string, such as `GStreamer 1.22.0`.
pub fn version() -> String {
    gst::version_string().to_string()
}

/// The video format GStreamer uses for a [`PixelFormat`].
pub fn video_format(f: PixelFormat) -> gst_video::VideoFormat {
    match f {
        PixelFormat::Rgb8 => gst_video::VideoFormat::Rgb,
        PixelFormat::Rgba8 => gst_video::VideoFormat::Rgba,
        PixelFormat::I422_10 => gst_video::VideoFormat::I42210le,
        PixelFormat::V210 => gst_video::VideoFormat::V210,
        PixelFormat::I420 => gst_video::VideoFormat::I420,
        PixelFormat::I420_10 => gst_video::VideoFormat::I42010le,
    }
}

/// The [`PixelFormat`] for a GStreamer video format, if the engine supports it.
pub fn pixel_format(f: gst_video::VideoFormat) -> Option<PixelFormat> {
    PixelFormat::ALL.into_iter().find(|&p| video_format(p) == f)
}

/// `video/x-raw` caps listing every supported format, any size and rate.
pub fn supported_caps() -> gst::Caps {
    gst_video::VideoCapsBuilder::new()
        .format_list(PixelFormat::ALL.iter().map(|&f| video_format(f)))
        .build()
}

/// Check that a source description and a sink description parse and name
/// installed elements, without starting anything (no device is opened).
pub fn check_descriptions(source: Option<&str>, sink: Option<&str>) -> Result<(), GstError> {
    if let Some(d) = source {
        source::parse_source(d)?;
    }
    if let Some(d) = sink {
        parse_pipeline(&format!("appsrc ! {d}"), d)?;
    }
    Ok(())
}

/// Parse `full` into a pipeline (a single element is wrapped in one); errors
/// quote `description`, the part the user wrote.
fn parse_pipeline(full: &str, description: &str) -> Result<gst::Pipeline, GstError> {
    init()?;
    let parse_err = |message: String| GstError::Parse {
        description: description.to_owned(),
        message,
    };
    let mut ctx = gst::ParseContext::new();
    let element = gst::parse::launch_full(full, Some(&mut ctx), gst::ParseFlags::FATAL_ERRORS)
        .map_err(|e| {
            let missing = ctx.missing_elements();
            if missing.is_empty() {
                parse_err(e.message().to_owned())
            } else {
                parse_err(format!("no GStreamer element named {}", missing.join(", ")))
            }
        })?;
    match element.downcast::<gst::Pipeline>() {
        Ok(p) => Ok(p),
        Err(single) => {
            let p = gst::Pipeline::new();
            p.add(&single).map_err(|e| parse_err(e.to_string()))?;
            Ok(p)
        }
    }
}

/// The first error on `bus`, if one is waiting, as a [`GstError`].
fn pending_error(bus: &gst::Bus) -> Option<GstError> {
    let msg = bus.pop_filtered(&[gst::MessageType::Error])?;
    error_from_message(&msg)
}

fn error_from_message(msg: &gst::Message) -> Option<GstError> {
    let gst::MessageView::Error(err) = msg.view() else {
        return None;
    };
    let element = err
        .src()
        .map(|s| s.path_string().to_string())
        .unwrap_or_else(|| "pipeline".to_owned());
    let detail = err.debug().map(|d| one_line(&d)).unwrap_or_default();
    Some(GstError::Element {
        element,
        message: err.error().message().to_owned(),
        detail,
    })
}

/// GStreamer's debug text on one line, without its `file.c(123): function (): /element:` lines.
fn one_line(s: &str) -> String {
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.contains("(): "))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The GStreamer plugins med8k uses, with what each is for.
pub const PLUGINS: [(&str, &str); 12] = [
    ("coreelements", "files, queues, fakesink"),
    ("app", "appsrc and appsink: frames in and out of the engine"),
    ("playback", "decodebin: recorded clips of any format"),
    ("typefindfunctions", "recognising clip formats"),
    ("matroska", "the recorded clip's container"),
    ("libav", "FFV1: the recorded clip's lossless codec"),
    ("videoconvertscale", "format conversion for devices"),
    ("rawparse", "raw frames from files"),
    ("videotestsrc", "test patterns"),
    ("video4linux2", "V4L2 capture devices"),
    ("decklink", "Blackmagic DeckLink SDI capture and playout"),
    ("opengl", "glimagesink: a monitor output"),
];

/// One plugin from [`PLUGINS`] and whether it is installed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct PluginStatus {
    /// Plugin name.
    pub name: &'static str,
    /// What med8k uses it for.
    pub purpose: &'static str,
    /// Its version, when installed.
    pub version: Option<String>,
}

/// Which of [`PLUGINS`] are installed, and how many plugins the registry holds.
pub fn plugins() -> Result<(Vec<PluginStatus>, usize), GstError> {
    init()?;
    let registry = gst::Registry::get();
    let found = PLUGINS
        .iter()
        .map(|&(name, purpose)| PluginStatus {
            name,
            purpose,
            version: registry.find_plugin(name).map(|p| p.version().to_string()),
        })
        .collect();
    Ok((found, registry.plugins().len()))
}
