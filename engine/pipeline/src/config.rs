//! `med8k run` pipelines, written in TOML.
//!
//! ```toml
//! [source]
//! # Exactly one of:
//! pipeline = "decklinkvideosrc device-number=0 mode=8kp60 video-format=10bit-yuv"  # any GStreamer source
//! # clip = "/path/to/recording.mkv"   # a recorded clip with one video track
//! # samples = "default"               # the sample clip (or a sample directory)
//! id = "or3-endoscope"   # stamped on every frame (default "capture")
//! queue = 2              # frames the appsink may hold
//!
//! [pipeline]
//! queue = 2              # frames between stages
//!
//! [[stage]]
//! kind = "v210-pack"     # v210-pack | v210-unpack | encode | detect
//!
//! [[stage]]
//! kind = "encode"        # the wavelet codec; see `codec::stage` for its keys
//! bpp = 3.0              # leave out for lossless
//! out = "or3.m8ks"
//!
//! [sink]                 # optional: without it frames end after the last stage
//! pipeline = "fakesink"  # any GStreamer sink description, after an appsrc
//! framerate = 60
//! ```
//!
//! Unknown keys are errors that name the key and the line.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use med8k_capture::{GstError, SinkOptions, SourceOptions};
use med8k_codec::Mode;
use serde::de::DeserializeOwned;

use crate::detect::{DetectStage, InputTap};
use crate::encode::{Backend, EncodeStage, OpenError};
use crate::input::{Input, InputError, InputSpec, sample_set_of};
use crate::{Pipeline, SinkStage, Stage, V210Pack, V210Unpack};

/// A `med8k run` configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where frames come from.
    pub source: SourceConfig,
    /// Pipeline-wide settings.
    #[serde(default)]
    pub pipeline: PipelineConfig,
    /// Stages in order.
    #[serde(default, rename = "stage")]
    pub stages: Vec<StageConfig>,
    /// Where frames go.
    pub sink: Option<SinkConfig>,
}

/// `[source]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// A GStreamer description, ending in an appsink or not.
    pub pipeline: Option<String>,
    /// A recorded clip; relative paths are relative to the config file.
    pub clip: Option<PathBuf>,
    /// The clip of a sample set: `default` for the one `med8k samples generate`
    /// writes by default, or its directory.
    pub samples: Option<PathBuf>,
    /// Identifier stamped on frames.
    pub id: Option<String>,
    /// Frames the appsink may hold.
    pub queue: Option<u32>,
}

/// `[pipeline]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    /// Frames each channel between stages holds.
    #[serde(default = "default_queue")]
    pub queue: usize,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        PipelineConfig {
            queue: default_queue(),
        }
    }
}

fn default_queue() -> usize {
    2
}

/// One `[[stage]]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
#[non_exhaustive]
pub enum StageConfig {
    /// Planar 10-bit 4:2:2 to `v210`.
    V210Pack,
    /// `v210` to planar 10-bit 4:2:2.
    V210Unpack,
    /// The wavelet codec (see [`crate::encode`]).
    Encode {
        /// Target bits per pixel; lossless when absent.
        bpp: Option<f64>,
        /// Where it runs.
        #[serde(default)]
        backend: Backend,
        /// A sequence file for the coded frames, relative to the config.
        out: Option<PathBuf>,
        /// Decode every frame again and check it.
        #[serde(default)]
        verify: bool,
        /// Wavelet levels.
        levels: Option<u8>,
        /// Lines per slice.
        slice_height: Option<u32>,
        /// Code one frame in this many.
        every: Option<u64>,
    },
    /// Anomaly detection with an ONNX model (see [`med8k_detect`]).
    Detect {
        /// The `.onnx` model (its sidecar `.json` beside it), relative to the config.
        model: PathBuf,
        /// A directory for overlay PNGs of anomalous frames, relative to the config.
        overlay: Option<PathBuf>,
        /// Mark the passing frames with the newest result, for the monitor.
        #[serde(default)]
        draw: bool,
    },
}

/// `[sink]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// A GStreamer sink description (placed after an appsrc).
    pub pipeline: String,
    /// Frame rate announced in the caps.
    #[serde(default = "default_framerate")]
    pub framerate: i32,
}

fn default_framerate() -> i32 {
    60
}

/// A configuration that cannot be read or built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read, or its TOML is malformed, has an unknown
    /// key or a bad value.
    #[error(transparent)]
    Toml(#[from] TomlError),
    /// The parts do not fit together.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A codec stage could not be opened.
    #[error("{path}")]
    Codec {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: OpenError,
    },
    /// The source could not be opened.
    #[error("{path}")]
    Input {
        /// The config file.
        path: PathBuf,
        /// Why.
        #[source]
        source: InputError,
    },
    /// A GStreamer sink could not be opened.
    #[error("{path}")]
    Gst {
        /// The config file.
        path: PathBuf,
        /// GStreamer's complaint.
        #[source]
        source: GstError,
    },
}

impl Config {
    /// Read and parse `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        Self::parse(&read_file(path)?, path)
    }

    /// Parse TOML text; `path` is used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let config: Config = parse_toml(text, path)?;
        let invalid = |message: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            message: message.to_owned(),
        };
        let inputs = [
            config.source.pipeline.is_some(),
            config.source.clip.is_some(),
            config.source.samples.is_some(),
        ];
        match inputs.iter().filter(|&&given| given).count() {
            0 => {
                return Err(invalid(
                    "[source] needs one of `pipeline`, `clip` or `samples`",
                ));
            }
            1 => {}
            _ => {
                return Err(invalid(
                    "[source] takes only one of `pipeline`, `clip` and `samples`",
                ));
            }
        }
        if config.pipeline.queue == 0 {
            return Err(invalid("[pipeline] queue must be at least 1"));
        }
        if config.sink.as_ref().is_some_and(|s| s.framerate <= 0) {
            return Err(invalid("[sink] framerate must be positive"));
        }
        Ok(config)
    }

    /// What `[source]` names; `base` (the config file) resolves relative paths.
    pub fn input_spec(&self, base: &Path) -> Result<InputSpec, ConfigError> {
        let dir = base.parent().unwrap_or(Path::new("."));
        Ok(
            match (
                &self.source.pipeline,
                &self.source.clip,
                &self.source.samples,
            ) {
                (Some(desc), _, _) => InputSpec::Pipeline(desc.clone()),
                // A sample set's clip (four quadrant tracks to one frame) is read as the set.
                (None, Some(clip), _) => match sample_set_of(&dir.join(clip)) {
                    Some(set) => InputSpec::Samples(set),
                    None => InputSpec::Clip(dir.join(clip)),
                },
                (None, None, Some(samples)) if samples.as_os_str() == "default" => {
                    InputSpec::Samples(med8k_samples::default_dir())
                }
                (None, None, Some(samples)) => InputSpec::Samples(dir.join(samples)),
                (None, None, None) => {
                    return Err(ConfigError::Invalid {
                        path: base.to_path_buf(),
                        message: "[source] needs one of `pipeline`, `clip` or `samples`".into(),
                    });
                }
            },
        )
    }

    /// Open the source and sink and chain the stages. `base` resolves relative clip paths.
    pub fn build(&self, base: &Path) -> Result<Pipeline, ConfigError> {
        let gst_err = |source| ConfigError::Gst {
            path: base.to_path_buf(),
            source,
        };
        let mut options =
            SourceOptions::default().id(self.source.id.as_deref().unwrap_or("capture"));
        if let Some(q) = self.source.queue {
            options = options.queue(q);
        }
        let dir = base.parent().unwrap_or(Path::new("."));
        let spec = self.input_spec(base)?;
        let input_err = |source| ConfigError::Input {
            path: base.to_path_buf(),
            source,
        };
        let source = spec
            .open_with(options)
            .and_then(Input::into_source)
            .map_err(input_err)?;
        // Detect stages first: an encode stage before one makes its model
        // input on the GPU through the stage's tap (see `detect::stage`).
        let mut detects: Vec<Option<DetectStage>> = Vec::new();
        let mut taps: Vec<Option<Arc<InputTap>>> = vec![None; self.stages.len()];
        for (i, stage) in self.stages.iter().enumerate() {
            let StageConfig::Detect {
                model,
                overlay,
                draw,
            } = stage
            else {
                detects.push(None);
                continue;
            };
            let detect_err = |e: &dyn std::fmt::Display| ConfigError::Invalid {
                path: base.to_path_buf(),
                message: format!("detect stage: {e}"),
            };
            let model =
                med8k_detect::model::Model::load(&dir.join(model)).map_err(|e| detect_err(&e))?;
            let overlay = overlay.as_ref().map(|o| dir.join(o));
            let detect = DetectStage::new(&model, overlay.as_deref())
                .map_err(|e| detect_err(&e))?
                .draw(*draw);
            let encode_before = self.stages[..i]
                .iter()
                .rposition(|s| matches!(s, StageConfig::Encode { .. }));
            if let Some(e) = encode_before {
                taps[e] = detect.input_tap();
            }
            detects.push(Some(detect));
        }
        let mut pipeline = Pipeline::new(source).queue(self.pipeline.queue);
        for (i, stage) in self.stages.iter().enumerate() {
            let s: Box<dyn Stage> = match stage {
                StageConfig::V210Pack => Box::new(V210Pack),
                StageConfig::V210Unpack => Box::new(V210Unpack),
                StageConfig::Encode {
                    bpp,
                    backend,
                    out,
                    verify,
                    levels,
                    slice_height,
                    every,
                } => {
                    let mut config = med8k_codec::Config::lossless()
                        .with_mode(bpp.map_or(Mode::Lossless, Mode::Bpp));
                    if let Some(l) = levels {
                        config = config.with_levels(*l);
                    }
                    if let Some(h) = slice_height {
                        config = config.with_slice_height(*h);
                    }
                    let codec_err = |source| ConfigError::Codec {
                        path: base.to_path_buf(),
                        source,
                    };
                    let gpu = backend
                        .gpu()
                        .map_err(|e| codec_err(crate::encode::OpenError::NoGpu(e)))?;
                    let (encoder, place) =
                        Backend::encoder_on(gpu.clone(), &config).map_err(codec_err)?;
                    let out = out.as_ref().map(|o| dir.join(o));
                    let mut encode = EncodeStage::new(encoder, out.as_deref(), *verify)
                        .map_err(codec_err)?
                        .every(every.unwrap_or(1));
                    // Lossless on a GPU: the stream encoder, unless a detect
                    // stage after this one takes its input from the GPU
                    // encoder's resident picture.
                    match (taps[i].take(), gpu) {
                        (Some(tap), _) => encode = encode.input_tap(tap),
                        (None, Some(ctx)) if config.mode == Mode::Lossless => {
                            encode = encode.streaming(ctx);
                        }
                        _ => {}
                    }
                    tracing::info!(%place, streaming = encode.is_streaming(), "encode stage");
                    Box::new(encode)
                }
                StageConfig::Detect { .. } => match detects[i].take() {
                    Some(d) => Box::new(d),
                    None => unreachable!("built above"),
                },
            };
            pipeline = pipeline.boxed_stage(s);
        }
        if let Some(sink) = &self.sink {
            let out = SinkOptions::default()
                .framerate(sink.framerate, 1)
                .open(&sink.pipeline)
                .map_err(gst_err)?;
            pipeline = pipeline.stage(SinkStage::new(out, Duration::from_secs(60)));
        }
        Ok(pipeline)
    }
}

/// A TOML file that could not be read or parsed. How every med8k
/// configuration (`med8k run` pipelines, link sites) reports its file
/// errors: unknown keys, bad values and malformed TOML name the file and the
/// 1-based line.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TomlError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key or a bad value.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// The text of `path`.
pub fn read_file(path: &Path) -> Result<String, TomlError> {
    std::fs::read_to_string(path).map_err(|source| TomlError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// `text` (the contents of `path`) as a `T`, errors pointing at their line.
pub fn parse_toml<T: DeserializeOwned>(text: &str, path: &Path) -> Result<T, TomlError> {
    toml::from_str(text).map_err(|e| {
        let line = e.span().map_or(1, |s| {
            text[..s.start.min(text.len())].matches('\n').count() + 1
        });
        TomlError::Parse {
            path: path.to_path_buf(),
            line,
            message: e.message().replace('\n', " "),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    /// A sample set's clip is four quadrant tracks: `clip = ` naming it
    /// reads the set (one whole frame), any other clip is read as a clip.
    #[test]
    fn a_sample_sets_clip_is_read_as_the_set() {
        let dir = tempfile::tempdir().unwrap();
        let set = dir.path().join("s");
        let opts = med8k_samples::GenerateOptions::new()
            .out(&set)
            .size(med8k_samples::Size {
                width: 128,
                height: 64,
            })
            .frames(2)
            .seed(3);
        med8k_samples::generate(&opts, &mut |_| {}).unwrap();
        let base = dir.path().join("run.toml");
        let config = parse("[source]\nclip = \"s/endoscope.mkv\"\n").unwrap();
        assert!(
            matches!(config.input_spec(&base).unwrap(), InputSpec::Samples(p) if p == set),
            "the set"
        );
        std::fs::copy(set.join("endoscope.mkv"), dir.path().join("other.mkv")).unwrap();
        let config = parse("[source]\nclip = \"other.mkv\"\n").unwrap();
        assert!(matches!(
            config.input_spec(&base).unwrap(),
            InputSpec::Clip(_)
        ));
    }

    #[test]
    fn a_full_config_parses() {
        let c = parse(
            "[source]\npipeline = \"videotestsrc\"\nid = \"or3\"\n\n[pipeline]\nqueue = 4\n\n\
             [[stage]]\nkind = \"v210-pack\"\n\n[[stage]]\nkind = \"v210-unpack\"\n\n\
             [sink]\npipeline = \"fakesink\"\n",
        )
        .unwrap();
        assert_eq!(
            c.stages,
            vec![StageConfig::V210Pack, StageConfig::V210Unpack]
        );
        assert_eq!(c.pipeline.queue, 4);
        assert_eq!(c.sink.unwrap().framerate, 60);
    }

    #[test]
    fn an_unknown_key_is_named_with_its_line() {
        let err =
            parse("[source]\nclip = \"a.mkv\"\n\n[sink]\npipeline = \"fakesink\"\nfps = 30\n")
                .unwrap_err()
                .to_string();
        assert!(err.starts_with("test.toml:6: unknown field `fps`"), "{err}");
        assert!(!err.contains('\n'));
    }

    #[test]
    fn an_unknown_stage_kind_is_named() {
        let err = parse("[source]\nclip = \"a.mkv\"\n[[stage]]\nkind = \"teleport\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("teleport"), "{err}");
    }

    #[test]
    fn an_encode_stage_parses_with_defaults_and_refuses_unknown_keys() {
        let c =
            parse("[source]\nclip = \"a.mkv\"\n[[stage]]\nkind = \"encode\"\nbpp = 3.0\n").unwrap();
        assert_eq!(
            c.stages,
            vec![StageConfig::Encode {
                bpp: Some(3.0),
                backend: Backend::Auto,
                out: None,
                verify: false,
                levels: None,
                slice_height: None,
                every: None,
            }]
        );
        let err =
            parse("[source]\nclip = \"a.mkv\"\n[[stage]]\nkind = \"encode\"\nbackend = \"fpga\"\n")
                .unwrap_err()
                .to_string();
        // Inside a tagged stage serde reports the stage's own line.
        assert!(
            err.contains("fpga") && err.starts_with("test.toml:3"),
            "{err}"
        );
    }

    #[test]
    fn a_detect_stage_parses() {
        let c =
            parse("[source]\nclip = \"a.mkv\"\n[[stage]]\nkind = \"detect\"\nmodel = \"m.onnx\"\n")
                .unwrap();
        assert_eq!(
            c.stages,
            vec![StageConfig::Detect {
                model: PathBuf::from("m.onnx"),
                overlay: None,
                draw: false,
            }]
        );
        let drawn =
            parse("[source]\nclip = \"a.mkv\"\n[[stage]]\nkind = \"detect\"\nmodel = \"m.onnx\"\ndraw = true\n")
                .unwrap();
        assert!(matches!(
            drawn.stages[..],
            [StageConfig::Detect { draw: true, .. }]
        ));
        assert!(parse("[source]\nclip = \"a.mkv\"\n[[stage]]\nkind = \"detect\"\n").is_err());
    }

    #[test]
    fn source_needs_exactly_one_input() {
        assert!(
            parse("[source]\n")
                .unwrap_err()
                .to_string()
                .contains("needs one of")
        );
        assert!(parse("[source]\nclip = \"a\"\npipeline = \"b\"\n").is_err());
        assert!(parse("[source]\nsamples = \"default\"\nclip = \"b\"\n").is_err());
        assert!(parse("[source]\nsamples = \"default\"\n").is_ok());
    }
}
