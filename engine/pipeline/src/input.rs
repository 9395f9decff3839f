//! One way to open an input: a recorded clip, a sample folder, a picture or
//! raw file, or a GStreamer pipeline.
//!
//! Every command that reads frames (`codec encode`, `detect`, `send`,
//! `serve --source`, `run`) names its input the same way and gets the same
//! rules ([`InputSpec::parse`]):
//!
//! | the name | opens as |
//! | --- | --- |
//! | `default` | the recorded samples in [`med8k_samples::default_dir`] |
//! | a folder with `manifest.json`, or its `endoscope.mkv` | the sample set's clip, four quadrant tracks assembled |
//! | another `.mkv`, `.mp4`, `.mov`, `.webm`, `.avi` | a clip through GStreamer's `decodebin` |
//! | a file with a [`RawSpec`] (`--format 7680x4320:v210`) | raw frames, one after the other |
//! | another file (`.png`, `.ppm`, `.pgm`, `.hdr`, ...) | one picture |
//! | anything else | a GStreamer pipeline description ending in an `appsink` (or with one appended) |
//!
//! A pipeline whose source does not preroll (a capture card, a camera) is
//! live: [`Input::is_live`] says so, and consumers drop stale frames rather
//! than wait.
//!
//! ```no_run
//! use med8k_pipeline::input::InputSpec;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let input = InputSpec::parse("endoscope.mkv", None).open("capture")?;
//! for picture in input.pictures().take(10) {
//!     let picture = picture?;
//!     println!("{}x{} {}", picture.width(), picture.height(), picture.layout());
//! }
//! # Ok(()) }
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use med8k_capture::{GstError, GstSource, SourceOptions};
use med8k_media::imageio::{self, FileKind, ImageIoError, RawFrames, RawSpec};
use med8k_media::picture::{Picture, PictureError};
use med8k_samples::SampleError;

/// File extensions opened as clips through GStreamer.
const CLIP_EXTENSIONS: [&str; 6] = ["mkv", "mp4", "mov", "webm", "avi", "ts"];

/// What an input name stands for (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InputSpec {
    /// A sample set's folder: its clip, in quadrant tracks.
    Samples(PathBuf),
    /// A recorded clip, decoded by GStreamer.
    Clip(PathBuf),
    /// Raw frames of one format.
    Raw(PathBuf, RawSpec),
    /// One picture file.
    Picture(PathBuf),
    /// A GStreamer pipeline description.
    Pipeline(String),
}

/// Why an input could not be opened or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum InputError {
    /// GStreamer refused the clip or pipeline, or failed while reading it.
    #[error("{input}: {source}")]
    Gst {
        /// The input.
        input: String,
        /// What GStreamer said.
        source: GstError,
    },
    /// The sample set is missing or damaged.
    #[error(transparent)]
    Samples(#[from] SampleError),
    /// A picture or raw file could not be read.
    #[error(transparent)]
    Image(#[from] ImageIoError),
    /// A frame that does not make a picture.
    #[error("{input}: {source}")]
    Picture {
        /// The input.
        input: String,
        /// Why.
        source: PictureError,
    },
    /// A frame-by-frame consumer was given a file of pictures.
    #[error("{0} is a picture file, not a stream of frames")]
    NotAStream(String),
}

impl InputSpec {
    /// What `name` stands for; `raw` is the format of a raw file (the
    /// command line's `--format`). Only the file system is looked at.
    pub fn parse(name: &str, raw: Option<RawSpec>) -> Self {
        if name == "default" {
            return InputSpec::Samples(med8k_samples::default_dir());
        }
        let path = Path::new(name);
        if path.is_dir() {
            return InputSpec::Samples(path.to_path_buf());
        }
        if !path.is_file() {
            return InputSpec::Pipeline(name.to_owned());
        }
        InputSpec::file(path, raw)
    }

    /// What the existing file `path` stands for.
    pub fn file(path: &Path, raw: Option<RawSpec>) -> Self {
        if let Some(dir) = sample_set_of(path) {
            return InputSpec::Samples(dir);
        }
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        if ext.as_deref().is_some_and(|e| CLIP_EXTENSIONS.contains(&e)) {
            return InputSpec::Clip(path.to_path_buf());
        }
        if let Some(spec) = raw
            && matches!(imageio::kind_for(path, Some(spec)), Ok(FileKind::Raw(_)))
        {
            return InputSpec::Raw(path.to_path_buf(), spec);
        }
        InputSpec::Picture(path.to_path_buf())
    }

    /// Open it; `id` names the source in reports and frames.
    pub fn open(&self, id: &str) -> Result<Input, InputError> {
        self.open_with(SourceOptions::default().id(id))
    }

    /// Open it with GStreamer source options (queue depth, id).
    pub fn open_with(&self, options: SourceOptions) -> Result<Input, InputError> {
        let gst = |source| InputError::Gst {
            input: self.to_string(),
            source,
        };
        let opened = match self {
            InputSpec::Samples(dir) => {
                Opened::Stream(med8k_samples::open(dir)?.open_clip(options).map_err(gst)?)
            }
            InputSpec::Clip(path) => {
                Opened::Stream(GstSource::open_clip(path, options).map_err(gst)?)
            }
            InputSpec::Pipeline(desc) => Opened::Stream(options.open(desc).map_err(gst)?),
            InputSpec::Raw(path, spec) => Opened::Raw(RawFrames::open(path, *spec)?),
            InputSpec::Picture(path) => Opened::Picture(Some(imageio::read_picture(path, None)?)),
        };
        Ok(Input {
            name: self.to_string(),
            opened,
        })
    }
}

impl fmt::Display for InputSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputSpec::Samples(p) | InputSpec::Clip(p) | InputSpec::Raw(p, _) => {
                write!(f, "{}", p.display())
            }
            InputSpec::Picture(p) => write!(f, "{}", p.display()),
            InputSpec::Pipeline(d) => write!(f, "pipeline {d:?}"),
        }
    }
}

/// The sample set `path` is the clip of, if it is one.
pub(crate) fn sample_set_of(path: &Path) -> Option<PathBuf> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty())?;
    let set = med8k_samples::open(dir).ok()?;
    (set.clip() == dir.join(path.file_name()?)).then(|| dir.to_path_buf())
}

/// An open input.
#[derive(Debug)]
pub struct Input {
    name: String,
    opened: Opened,
}

#[derive(Debug)]
enum Opened {
    Stream(GstSource),
    Raw(RawFrames),
    Picture(Option<Picture>),
}

impl Input {
    /// Whether frames arrive in real time and must not be waited for (a
    /// capture card or camera); files and samples are read at their own pace.
    pub fn is_live(&self) -> bool {
        match &self.opened {
            Opened::Stream(s) => s.is_live(),
            Opened::Raw(_) | Opened::Picture(_) => false,
        }
    }

    /// The GStreamer source, for consumers of [`VideoFrame`]s
    /// (`med8k_media::frame::VideoFrame`); picture and raw files are not
    /// streams.
    ///
    /// [`VideoFrame`]: med8k_media::frame::VideoFrame
    pub fn into_source(self) -> Result<GstSource, InputError> {
        match self.opened {
            Opened::Stream(s) => Ok(s),
            Opened::Raw(_) | Opened::Picture(_) => Err(InputError::NotAStream(self.name)),
        }
    }

    /// Every frame as a [`Picture`], in order.
    pub fn pictures(self) -> Pictures {
        Pictures {
            name: self.name,
            opened: self.opened,
        }
    }
}

/// The pictures of an [`Input`]; ends after the last frame or the first error.
#[derive(Debug)]
pub struct Pictures {
    name: String,
    opened: Opened,
}

impl Iterator for Pictures {
    type Item = Result<Picture, InputError>;

    fn next(&mut self) -> Option<Self::Item> {
        let gst = |source| InputError::Gst {
            input: self.name.clone(),
            source,
        };
        let item = match &mut self.opened {
            Opened::Stream(s) => match s.next_frame() {
                Ok(Some(frame)) => {
                    Some(
                        Picture::from_frame(&frame).map_err(|source| InputError::Picture {
                            input: self.name.clone(),
                            source,
                        }),
                    )
                }
                Ok(None) => None,
                Err(e) => Some(Err(gst(e))),
            },
            Opened::Raw(raw) => raw.next_picture().map_err(InputError::from).transpose(),
            Opened::Picture(p) => p.take().map(Ok),
        };
        if matches!(item, Some(Err(_))) {
            self.opened = Opened::Picture(None);
        }
        item
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_by_what_they_are() {
        let dir = tempfile::tempdir().unwrap();
        let png = dir.path().join("a.png");
        std::fs::write(&png, b"not really").unwrap();
        let raw = dir.path().join("a.yuv");
        std::fs::write(&raw, [0u8; 16]).unwrap();
        let clip = dir.path().join("b.mkv");
        std::fs::write(&clip, b"").unwrap();
        let spec: RawSpec = "4x2:I422_10LE".parse().unwrap();
        let s = |p: &Path| p.to_str().unwrap().to_owned();
        assert_eq!(
            InputSpec::parse(&s(&png), None),
            InputSpec::Picture(png.clone())
        );
        assert_eq!(
            InputSpec::parse(&s(&raw), Some(spec)),
            InputSpec::Raw(raw.clone(), spec)
        );
        assert_eq!(InputSpec::parse(&s(&clip), None), InputSpec::Clip(clip));
        assert_eq!(
            InputSpec::parse(&s(dir.path()), None),
            InputSpec::Samples(dir.path().to_path_buf())
        );
        assert_eq!(
            InputSpec::parse("videotestsrc ! appsink", None),
            InputSpec::Pipeline("videotestsrc ! appsink".into())
        );
    }

    #[test]
    fn a_picture_file_is_one_picture_and_not_a_stream() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.pgm");
        let pic = Picture::new(
            med8k_media::picture::Layout::Gray,
            3,
            2,
            8,
            vec![vec![1, 2, 3, 4, 5, 6]],
        )
        .unwrap();
        imageio::write_picture(&path, &pic).unwrap();
        let spec = InputSpec::parse(path.to_str().unwrap(), None);
        let got: Vec<_> = spec.open("t").unwrap().pictures().collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].as_ref().unwrap(), &pic);
        assert!(matches!(
            spec.open("t").unwrap().into_source(),
            Err(InputError::NotAStream(_))
        ));
    }
}
