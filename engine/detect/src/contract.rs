//! The sidecar `NAME.json` beside `NAME.onnx`: what the model expects and
//! returns, checked before tract sees a byte of the graph.
//!
//! ```json
//! {"contract": 2, "name": "med8k-endoscope-gauss", "version": "1.0.0", "sha256": "<hex>",
//!  "input": {"name": "input", "shape": [1,3,144,256], "layout": "NCHW",
//!            "source": "frame-ycbcr", "mean": [0.5,0.5,0.5], "std": [0.25,0.25,0.25]},
//!  "outputs": {"score": {"name": "score", "shape": [1]},
//!              "map": {"name": "map", "shape": [1,1,144,256]},
//!              "quality": {"name": "quality", "shape": [1]}},
//!  "threshold": {"score": 0.5, "map": 0.5, "quality": 4.0},
//!  "bands_nm": null, "description": "...", "card": "MODEL_CARD.md"}
//! ```
//!
//! A sidecar that is missing, malformed, for other bytes (SHA-256) or
//! inconsistent is refused with a [`ContractError`] that says why.
//!
//! Versions: contract 2 adds the image-quality alarm (an optional `quality`
//! output, one value, higher = the picture is less trustworthy, with its own
//! `threshold.quality`). This engine reads contract 1 sidecars unchanged (a
//! model without a quality alarm); a contract 1 sidecar that names a quality
//! output is refused, as is any version above 2.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The contract version this engine writes and reads.
pub const CONTRACT_VERSION: u32 = 2;
/// The oldest contract version this engine still reads (no quality alarm).
pub const OLDEST_CONTRACT_VERSION: u32 = 1;

/// Where the model's input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum InputSource {
    /// `[1,3,H,W]` Y'CbCr in `[0,1]` from a video frame (`input::frame_tensor`),
    /// then `(x - mean) / std` per channel.
    FrameYcbcr,
    /// `[1,B,H,W]` tiles of a spectral cube at full resolution (`input::cube_tile`).
    CubeBands,
}

/// `input` of the sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    /// Input tensor name in the graph.
    pub name: String,
    /// `[1, C, H, W]`.
    pub shape: Vec<usize>,
    /// Always `NCHW`.
    pub layout: String,
    /// What feeds it.
    pub source: InputSource,
    /// Per-channel mean subtracted before the model (C values); none means 0.
    #[serde(default)]
    pub mean: Option<Vec<f32>>,
    /// Per-channel divisor (C values, positive); none means 1.
    #[serde(default)]
    pub std: Option<Vec<f32>>,
}

impl InputSpec {
    /// Channels (`C`).
    pub fn channels(&self) -> usize {
        self.shape.get(1).copied().unwrap_or(0)
    }
    /// Height (`H`).
    pub fn height(&self) -> usize {
        self.shape.get(2).copied().unwrap_or(0)
    }
    /// Width (`W`).
    pub fn width(&self) -> usize {
        self.shape.get(3).copied().unwrap_or(0)
    }
}

/// One output tensor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TensorSpec {
    /// Name in the graph.
    pub name: String,
    /// Concrete shape.
    pub shape: Vec<usize>,
}

/// `outputs` of the sidecar.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputsSpec {
    /// One value, higher = more anomalous (required).
    pub score: TensorSpec,
    /// `[1,1,h,w]` anomaly map, higher = more anomalous (optional).
    #[serde(default)]
    pub map: Option<TensorSpec>,
    /// One value: the image-quality alarm, higher = the picture is less
    /// trustworthy (defocus, blur, smoke, glare, exposure); contract 2, optional.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<TensorSpec>,
}

/// `threshold` of the sidecar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Thresholds {
    /// A score above this is anomalous.
    pub score: f32,
    /// Map cells above this make boxes (required when the model has a map).
    #[serde(default)]
    pub map: Option<f32>,
    /// A quality value above this raises the image-quality alarm (required
    /// when the model has a quality output).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<f32>,
}

/// A parsed and checked sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Contract {
    /// [`CONTRACT_VERSION`].
    pub contract: u32,
    /// Model name.
    pub name: String,
    /// Model version.
    pub version: String,
    /// Hex SHA-256 of the `.onnx` bytes.
    pub sha256: String,
    /// The input.
    pub input: InputSpec,
    /// The outputs.
    pub outputs: OutputsSpec,
    /// Decision thresholds.
    pub threshold: Thresholds,
    /// Band centres in nm for `cube-bands` models (one per channel), else null.
    #[serde(default)]
    pub bands_nm: Option<Vec<f32>>,
    /// Free text.
    #[serde(default)]
    pub description: String,
    /// The model card, relative to the sidecar.
    #[serde(default)]
    pub card: Option<String>,
}

/// A sidecar that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContractError {
    /// No `NAME.json` beside the model.
    #[error("no sidecar {path} beside the model (every model needs its contract JSON)")]
    MissingSidecar {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The JSON is malformed or has unknown or missing keys.
    #[error("{path}: {message}")]
    Json {
        /// The sidecar.
        path: PathBuf,
        /// serde's message, with line and column.
        message: String,
    },
    /// A contract version this engine does not read.
    #[error(
        "contract version {found} is not supported (this engine reads {OLDEST_CONTRACT_VERSION} to {CONTRACT_VERSION})"
    )]
    Version {
        /// The version in the sidecar.
        found: u32,
    },
    /// The model bytes are not the ones the sidecar describes.
    #[error("model SHA-256 is {actual} but the sidecar says {expected}")]
    Sha256 {
        /// From the sidecar.
        expected: String,
        /// Of the bytes.
        actual: String,
    },
    /// A field has a value the contract does not allow.
    #[error("sidecar field `{field}`: {message}")]
    Invalid {
        /// The field, dotted (`input.shape`).
        field: &'static str,
        /// What is wrong, with the value.
        message: String,
    },
}

fn invalid(field: &'static str, message: impl Into<String>) -> ContractError {
    ContractError::Invalid {
        field,
        message: message.into(),
    }
}

/// The sidecar path of a model: `NAME.onnx` → `NAME.json`.
pub fn sidecar_path(model: &Path) -> PathBuf {
    model.with_extension("json")
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Contract {
    /// Parse sidecar text and check it on its own (no model bytes); `path` is
    /// used in messages.
    pub fn parse(text: &str, path: &Path) -> Result<Contract, ContractError> {
        let c: Contract = serde_json::from_str(text).map_err(|e| ContractError::Json {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        c.validate()?;
        Ok(c)
    }

    /// Read the sidecar of `model` and check it against the model's bytes.
    pub fn for_model(model: &Path, model_bytes: &[u8]) -> Result<Contract, ContractError> {
        let path = sidecar_path(model);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ContractError::MissingSidecar { path });
            }
            Err(source) => return Err(ContractError::Io { path, source }),
        };
        let c = Contract::parse(&text, &path)?;
        c.check_bytes(model_bytes)?;
        Ok(c)
    }

    /// Check that `bytes` hash to [`sha256`](Self::sha256).
    pub fn check_bytes(&self, bytes: &[u8]) -> Result<(), ContractError> {
        let actual = sha256_hex(bytes);
        if !actual.eq_ignore_ascii_case(&self.sha256) {
            return Err(ContractError::Sha256 {
                expected: self.sha256.clone(),
                actual,
            });
        }
        Ok(())
    }

    /// Check every rule of the contract that needs no model bytes.
    pub fn validate(&self) -> Result<(), ContractError> {
        if !(OLDEST_CONTRACT_VERSION..=CONTRACT_VERSION).contains(&self.contract) {
            return Err(ContractError::Version {
                found: self.contract,
            });
        }
        if self.name.trim().is_empty() {
            return Err(invalid("name", "empty"));
        }
        if self.sha256.len() != 64 || !self.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(invalid(
                "sha256",
                format!("`{}` is not 64 hex digits", self.sha256),
            ));
        }
        let input = &self.input;
        if input.name.is_empty() {
            return Err(invalid("input.name", "empty"));
        }
        if input.layout != "NCHW" {
            return Err(invalid(
                "input.layout",
                format!("`{}` (only NCHW)", input.layout),
            ));
        }
        if input.shape.len() != 4 || input.shape[0] != 1 || input.shape.contains(&0) {
            return Err(invalid(
                "input.shape",
                format!("{:?} is not [1, C, H, W] with positive sizes", input.shape),
            ));
        }
        let channels = input.channels();
        match input.source {
            InputSource::FrameYcbcr => {
                if channels != 3 {
                    return Err(invalid(
                        "input.shape",
                        format!(
                            "{:?}: a frame-ycbcr model takes 3 channels, not {channels}",
                            input.shape
                        ),
                    ));
                }
                if self.bands_nm.is_some() {
                    return Err(invalid("bands_nm", "must be null for a frame-ycbcr model"));
                }
            }
            InputSource::CubeBands => {
                let bands = self.bands_nm.as_ref().ok_or_else(|| {
                    invalid("bands_nm", "a cube-bands model lists its band centres")
                })?;
                if bands.len() != channels {
                    return Err(invalid(
                        "bands_nm",
                        format!("{} bands for an input of {channels} channels", bands.len()),
                    ));
                }
                if bands.iter().any(|b| !b.is_finite() || *b <= 0.0) {
                    return Err(invalid("bands_nm", format!("{bands:?} has a bad value")));
                }
            }
        }
        for (field, values, positive) in [
            ("input.mean", &input.mean, false),
            ("input.std", &input.std, true),
        ] {
            if let Some(v) = values {
                if v.len() != channels {
                    return Err(invalid(
                        field,
                        format!("{} values for {channels} channels", v.len()),
                    ));
                }
                if v.iter().any(|x| !x.is_finite() || (positive && *x <= 0.0)) {
                    return Err(invalid(
                        field,
                        format!(
                            "{v:?} must be finite{}",
                            if positive { " and positive" } else { "" }
                        ),
                    ));
                }
            }
        }
        let score = &self.outputs.score;
        if score.name.is_empty() {
            return Err(invalid("outputs.score.name", "empty"));
        }
        if score.shape.iter().product::<usize>() != 1 {
            return Err(invalid(
                "outputs.score.shape",
                format!("{:?} is not a single value", score.shape),
            ));
        }
        if score.name == input.name {
            return Err(invalid("outputs.score.name", "same as the input's"));
        }
        if let Some(map) = &self.outputs.map {
            if map.name.is_empty() || map.name == score.name || map.name == input.name {
                return Err(invalid(
                    "outputs.map.name",
                    format!("`{}` is empty or taken", map.name),
                ));
            }
            if map.shape.len() != 4
                || map.shape[0] != 1
                || map.shape[1] != 1
                || map.shape.contains(&0)
            {
                return Err(invalid(
                    "outputs.map.shape",
                    format!("{:?} is not [1, 1, h, w]", map.shape),
                ));
            }
            match self.threshold.map {
                None => return Err(invalid("threshold.map", "required with a map output")),
                Some(t) if !t.is_finite() => {
                    return Err(invalid("threshold.map", format!("{t} is not finite")));
                }
                Some(_) => {}
            }
        }
        match (&self.outputs.quality, self.threshold.quality) {
            (Some(_), _) | (None, Some(_)) if self.contract < 2 => {
                return Err(invalid(
                    "outputs.quality",
                    format!(
                        "the image-quality alarm needs contract 2, this sidecar says contract {}",
                        self.contract
                    ),
                ));
            }
            (Some(q), t) => {
                let taken = [&input.name, &score.name];
                if q.name.is_empty()
                    || taken.contains(&&q.name)
                    || self.outputs.map.as_ref().is_some_and(|m| m.name == q.name)
                {
                    return Err(invalid(
                        "outputs.quality.name",
                        format!("`{}` is empty or taken", q.name),
                    ));
                }
                if q.shape.iter().product::<usize>() != 1 {
                    return Err(invalid(
                        "outputs.quality.shape",
                        format!("{:?} is not a single value", q.shape),
                    ));
                }
                match t {
                    None => {
                        return Err(invalid(
                            "threshold.quality",
                            "required with a quality output",
                        ));
                    }
                    Some(t) if !t.is_finite() => {
                        return Err(invalid("threshold.quality", format!("{t} is not finite")));
                    }
                    Some(_) => {}
                }
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "threshold.quality",
                    "given, but the model has no quality output",
                ));
            }
            (None, None) => {}
        }
        if !self.threshold.score.is_finite() {
            return Err(invalid(
                "threshold.score",
                format!("{} is not finite", self.threshold.score),
            ));
        }
        Ok(())
    }

    /// Map size `(w, h)`, when the model has a map.
    pub fn map_dims(&self) -> Option<(usize, usize)> {
        self.outputs.map.as_ref().map(|m| (m.shape[3], m.shape[2]))
    }

    /// Check the model's bands against a cube's centres (within 1 nm each).
    pub fn check_bands(&self, cube_nm: &[f32]) -> Result<(), ContractError> {
        let want = self.bands_nm.as_deref().unwrap_or_default();
        let ok = want.len() == cube_nm.len()
            && want.iter().zip(cube_nm).all(|(a, b)| (a - b).abs() <= 1.0);
        if ok {
            Ok(())
        } else {
            Err(invalid(
                "bands_nm",
                format!("model bands {want:?} nm do not match the cube's {cube_nm:?} nm"),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(sha: &str) -> String {
        format!(
            r#"{{"contract": 1, "name": "t", "version": "1.0.0", "sha256": "{sha}",
            "input": {{"name": "input", "shape": [1,3,8,16], "layout": "NCHW", "source": "frame-ycbcr",
                      "mean": [0.5,0.5,0.5], "std": [0.25,0.25,0.25]}},
            "outputs": {{"score": {{"name": "score", "shape": [1]}}, "map": {{"name": "map", "shape": [1,1,8,16]}}}},
            "threshold": {{"score": 0.5, "map": 0.25}}, "bands_nm": null, "description": "", "card": null}}"#
        )
    }

    fn parse(text: &str) -> Result<Contract, ContractError> {
        Contract::parse(text, Path::new("m.json"))
    }

    #[test]
    fn a_good_sidecar_parses_and_checks_bytes() {
        let sha = sha256_hex(b"abc");
        assert_eq!(
            sha,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let c = parse(&sample(&sha)).unwrap();
        assert_eq!(c.input.source, InputSource::FrameYcbcr);
        assert_eq!(c.map_dims(), Some((16, 8)));
        assert_eq!(
            (c.input.channels(), c.input.height(), c.input.width()),
            (3, 8, 16)
        );
        c.check_bytes(b"abc").unwrap();
        let e = c.check_bytes(b"abd").unwrap_err().to_string();
        assert!(e.contains("SHA-256") && e.contains(&sha), "{e}");
    }

    #[test]
    fn each_rule_names_its_field() {
        let good = sample(&sha256_hex(b""));
        let cases = [
            ("\"contract\": 1", "\"contract\": 3", "version 3"),
            ("\"contract\": 1", "\"contract\": 0", "version 0"),
            ("[1,3,8,16]", "[1,4,8,16]", "input.shape"),
            ("[1,3,8,16]", "[2,3,8,16]", "input.shape"),
            ("\"NCHW\"", "\"NHWC\"", "input.layout"),
            ("[0.25,0.25,0.25]", "[0.25,0.0,0.25]", "input.std"),
            ("\"mean\": [0.5,0.5,0.5]", "\"mean\": [0.5]", "input.mean"),
            ("\"shape\": [1]}", "\"shape\": [2]}", "outputs.score.shape"),
            ("[1,1,8,16]", "[1,2,8,16]", "outputs.map.shape"),
            ("\"map\": 0.25", "\"map\": null", "threshold.map"),
            ("\"bands_nm\": null", "\"bands_nm\": [410.0]", "bands_nm"),
            ("\"frame-ycbcr\"", "\"frame-rgb\"", "frame-rgb"),
            ("\"card\": null", "\"card\": null, \"extra\": 1", "extra"),
        ];
        for (from, to, want) in cases {
            let text = good.replacen(from, to, 1);
            assert_ne!(text, good, "{from}");
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{to}: {e}");
        }
        let e = parse(&good.replace(&sha256_hex(b""), "xyz"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("64 hex digits"), "{e}");
        let e = parse("{").unwrap_err().to_string();
        assert!(e.starts_with("m.json: EOF"), "{e}");
    }

    #[test]
    fn contract_2_adds_a_quality_alarm_and_contract_1_still_reads() {
        let v1 = sample(&sha256_hex(b""));
        let c = parse(&v1).unwrap();
        assert_eq!((c.contract, c.outputs.quality.clone()), (1, None));
        let v2 = v1
            .replacen("\"contract\": 1", "\"contract\": 2", 1)
            .replace(
                "\"shape\": [1,1,8,16]}}",
                "\"shape\": [1,1,8,16]}, \"quality\": {\"name\": \"quality\", \"shape\": [1,1]}}",
            )
            .replace("\"map\": 0.25}", "\"map\": 0.25, \"quality\": 3.5}");
        let c = parse(&v2).unwrap();
        assert_eq!(
            c.outputs.quality.as_ref().map(|q| q.name.as_str()),
            Some("quality")
        );
        assert_eq!(c.threshold.quality, Some(3.5));
        // Written back, it reads the same.
        assert_eq!(parse(&serde_json::to_string(&c).unwrap()).unwrap(), c);
        let cases = [
            // A quality alarm under contract 1 is refused, saying why.
            ("\"contract\": 2", "\"contract\": 1", "needs contract 2"),
            (", \"quality\": 3.5", "", "threshold.quality"),
            ("\"quality\": 3.5", "\"quality\": NaN", "m.json"),
            ("[1,1]}", "[2]}", "outputs.quality.shape"),
            (
                "\"name\": \"quality\"",
                "\"name\": \"score\"",
                "outputs.quality.name",
            ),
            (
                "\"name\": \"quality\"",
                "\"name\": \"map\"",
                "outputs.quality.name",
            ),
        ];
        for (from, to, want) in cases {
            let text = v2.replacen(from, to, 1);
            assert_ne!(text, v2, "{from}");
            let e = parse(&text).unwrap_err().to_string();
            assert!(e.contains(want), "{to}: {e}");
        }
        // A threshold without the output.
        let e = parse(
            &v1.replacen("\"contract\": 1", "\"contract\": 2", 1)
                .replace("\"map\": 0.25}", "\"map\": 0.25, \"quality\": 1}"),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("no quality output"), "{e}");
    }

    #[test]
    fn a_non_finite_threshold_is_refused() {
        let mut c = parse(&sample(&sha256_hex(b""))).unwrap();
        c.threshold.score = f32::NAN;
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("threshold.score") && e.contains("NaN"), "{e}");
    }

    #[test]
    fn cube_models_list_bands_and_match_the_cube_within_a_nanometre() {
        let text = sample(&sha256_hex(b""))
            .replace("\"frame-ycbcr\"", "\"cube-bands\"")
            .replace("[1,3,8,16]", "[1,2,8,16]")
            .replace(
                "\"mean\": [0.5,0.5,0.5], \"std\": [0.25,0.25,0.25]",
                "\"mean\": null",
            )
            .replace("\"bands_nm\": null", "\"bands_nm\": [410, 450]");
        let c = parse(&text).unwrap();
        c.check_bands(&[410.5, 449.2]).unwrap();
        let e = c.check_bands(&[410.0, 452.0]).unwrap_err().to_string();
        assert!(e.contains("452"), "{e}");
        assert!(c.check_bands(&[410.0]).is_err());
        let e = parse(&text.replace("[410, 450]", "null"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bands_nm"), "{e}");
    }

    #[test]
    fn a_missing_sidecar_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.onnx");
        let e = Contract::for_model(&model, b"").unwrap_err().to_string();
        assert!(e.contains("no sidecar") && e.contains("m.json"), "{e}");
    }
}
