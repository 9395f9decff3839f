//! Training and evaluation arrays for the reference detectors in `models/`
//! (`med8k samples dataset`), made with the engine's own input code
//! (`med8k_detect::input`), so that a model sees in training exactly what it
//! sees at inference.
//!
//! [`write`] writes into [`DatasetOptions::out`]:
//!
//! ```text
//! endoscope_inputs.npy  f32 [N, 3, H, W]  Y', Cb, Cr in [0, 1], area-averaged frames
//! endoscope_maps.npy    f32 [N, 1, H, W]  fraction of lesion mask cells per pixel
//! cube_tiles.npy        f32 [T, B, S, S]  cube tiles, code / 65535   (with --cubes)
//! cube_masks.npy        f32 [T, 1, S, S]  1 = anomalous pixel        (with --cubes)
//! real_inputs.npy       f32 [R, 3, H, W]  crops of the real fixtures (with --real N)
//! altered_inputs.npy    f32 [A, 3, H, W]  normal frames and crops with an anomaly kind
//!                                         painted in (with --kinds; crate::anomalies)
//! dataset.json          seeds, frame indices, labels, tile positions
//! ```
//!
//! Frames are rendered by the endoscope scene directly (no clip is encoded);
//! cubes and their masks are the ones `med8k samples generate` writes for the
//! same seed and size.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

use med8k_detect::input::{self, InputError};
use serde::Serialize;

use crate::anomalies::{self, Alarm, Kind};
use crate::endoscope::{EndoscopeScene, FrameBuffers, LesionKind, SceneConfig, SceneError};
use crate::real::Region;
use crate::{SampleError, Size};

/// Why a dataset could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DatasetError {
    /// A file could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// An option out of range.
    #[error("{0}")]
    Options(&'static str),
    /// The endoscope scene refused its settings.
    #[error(transparent)]
    Scene(#[from] SceneError),
    /// A sample cube could not be made.
    #[error(transparent)]
    Sample(#[from] SampleError),
    /// A frame or tile did not make a model input.
    #[error(transparent)]
    Input(#[from] InputError),
    /// An array's row count does not match its header (a bug).
    #[error("{path}: wrote {written} values, the header says {expect}")]
    Count {
        /// The file.
        path: PathBuf,
        /// Values written.
        written: usize,
        /// Values the header promises.
        expect: usize,
    },
}

fn io_at(path: &Path) -> impl FnOnce(std::io::Error) -> DatasetError + '_ {
    move |source| DatasetError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Model input size of the endoscope contract.
const MODEL_W: usize = 256;
const MODEL_H: usize = 144;

/// A range of seeds: `A..B` (B excluded) or `A..=B`.
#[derive(Debug, Clone)]
pub struct Seeds(pub Range<u64>);

impl FromStr for Seeds {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("bad seed range `{s}`: expected A..B or A..=B");
        let (a, b, inclusive) = if let Some((a, b)) = s.split_once("..=") {
            (a, b, true)
        } else if let Some((a, b)) = s.split_once("..") {
            (a, b, false)
        } else {
            return Err(bad());
        };
        let a: u64 = a.trim().parse().map_err(|_| bad())?;
        let b: u64 = b.trim().parse().map_err(|_| bad())?;
        let end = if inclusive { b.saturating_add(1) } else { b };
        if end <= a {
            return Err(format!("seed range `{s}` is empty"));
        }
        Ok(Seeds(a..end))
    }
}

/// What [`write`] makes.
#[derive(Debug, Clone)]
pub struct DatasetOptions {
    /// Output directory (created if missing).
    pub out: PathBuf,
    /// Seeds.
    pub seeds: Seeds,
    /// Frames per seed.
    pub frames: u32,
    /// Take every `step`-th frame of the seed's clip (frames 0, step, 2·step, ...).
    pub step: u32,
    /// Rendered frame size (and cube size); frames are then area-averaged
    /// to the model's 256x144.
    pub size: Size,
    /// Also write cube tiles and masks of the sample cubes of each seed.
    pub cubes: bool,
    /// Cube tile side, in pixels.
    pub tile: usize,
    /// Skip the endoscope frames (cubes only).
    pub no_frames: bool,
    /// Crops of each real fixture to write (`real_inputs.npy`), 0 for none.
    pub real: usize,
    /// Which rows of the fixtures the crops come from.
    pub real_region: Region,
    /// Anomaly kinds painted into every normal frame and every crop
    /// (`altered_inputs.npy`), one altered copy per kind.
    pub kinds: Vec<Kind>,
}

/// What [`write`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetSummary {
    /// Endoscope frames.
    pub frames: usize,
    /// Cube tiles.
    pub tiles: usize,
}

/// One frame in `dataset.json`.
#[derive(Debug, Serialize)]
struct FrameItem {
    seed: u64,
    index: u32,
    anomalous: bool,
    lesions: Vec<String>,
    mask_cells: u64,
}

/// One cube tile in `dataset.json`.
#[derive(Debug, Serialize)]
struct TileItem {
    seed: u64,
    cube: String,
    x: usize,
    y: usize,
    anomalous_pixels: u64,
}

/// One real crop in `dataset.json`.
#[derive(Debug, Serialize)]
struct RealItem {
    fixture: &'static str,
    region: Region,
}

/// One altered input in `dataset.json`: `base` is `frame` (an index into
/// `frames`) or `real` (an index into `real`).
#[derive(Debug, Serialize)]
struct AlteredItem {
    base: &'static str,
    item: usize,
    kind: &'static str,
    alarm: Alarm,
    held_out: bool,
}

/// `dataset.json`.
#[derive(Debug, Serialize)]
struct Index {
    generator: u32,
    size: Size,
    model_width: usize,
    model_height: usize,
    frames: Vec<FrameItem>,
    tile: usize,
    bands_nm: Vec<f32>,
    tiles: Vec<TileItem>,
    real: Vec<RealItem>,
    altered: Vec<AlteredItem>,
}

/// An `.npy` file of little-endian f32 written row by row; the shape is fixed
/// up front and checked on `finish`.
struct NpyWriter {
    path: PathBuf,
    out: BufWriter<File>,
    expect: usize,
    written: usize,
}

impl NpyWriter {
    fn create(path: &Path, shape: &[usize]) -> Result<Self, DatasetError> {
        let file = File::create(path).map_err(io_at(path))?;
        let mut out = BufWriter::with_capacity(1 << 20, file);
        let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
        let dims = if dims.len() == 1 {
            format!("{},", dims[0])
        } else {
            dims.join(", ")
        };
        let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({dims}), }}");
        // Magic (6) + version (2) + length (2) + header + '\n', padded to 64 bytes.
        let total = (10 + header.len() + 1).next_multiple_of(64);
        header.push_str(&" ".repeat(total - 10 - header.len() - 1));
        header.push('\n');
        out.write_all(b"\x93NUMPY\x01\x00")
            .and_then(|()| out.write_all(&(header.len() as u16).to_le_bytes()))
            .and_then(|()| out.write_all(header.as_bytes()))
            .map_err(io_at(path))?;
        Ok(NpyWriter {
            path: path.to_path_buf(),
            out,
            expect: shape.iter().product(),
            written: 0,
        })
    }

    fn write(&mut self, values: &[f32]) -> Result<(), DatasetError> {
        for v in values {
            self.out
                .write_all(&v.to_le_bytes())
                .map_err(io_at(&self.path))?;
        }
        self.written += values.len();
        Ok(())
    }

    fn finish(mut self) -> Result<(), DatasetError> {
        if self.written != self.expect {
            return Err(DatasetError::Count {
                path: self.path,
                written: self.written,
                expect: self.expect,
            });
        }
        self.out.flush().map_err(io_at(&self.path))
    }
}

/// Write the dataset `args` describes; `progress` hears one line per seed.
pub fn write(
    args: &DatasetOptions,
    progress: &mut dyn FnMut(&str),
) -> Result<DatasetSummary, DatasetError> {
    let started = Instant::now();
    std::fs::create_dir_all(&args.out).map_err(io_at(&args.out))?;
    let seeds = args.seeds.0.clone();
    let n_seeds = (seeds.end - seeds.start) as usize;
    let mut index = Index {
        generator: crate::GENERATOR_VERSION,
        size: args.size,
        model_width: MODEL_W,
        model_height: MODEL_H,
        frames: Vec::new(),
        tile: args.tile,
        bands_nm: Vec::new(),
        tiles: Vec::new(),
        real: Vec::new(),
        altered: Vec::new(),
    };
    // Normal inputs that get the anomaly kinds painted in: (base, item, tensor).
    let mut normals: Vec<(&'static str, usize, Vec<f32>)> = Vec::new();

    if !args.no_frames {
        if args.frames == 0 || args.step == 0 {
            return Err(DatasetError::Options("frames and step must be at least 1"));
        }
        let n = n_seeds * args.frames as usize;
        let mut inputs = NpyWriter::create(
            &args.out.join("endoscope_inputs.npy"),
            &[n, 3, MODEL_H, MODEL_W],
        )?;
        let mut maps = NpyWriter::create(
            &args.out.join("endoscope_maps.npy"),
            &[n, 1, MODEL_H, MODEL_W],
        )?;
        for seed in seeds.clone() {
            let scene = EndoscopeScene::new(SceneConfig {
                width: args.size.width,
                height: args.size.height,
                frames: args.frames * args.step,
                seed,
            })?;
            let mut buf = FrameBuffers::new(&scene);
            let (mw, mh) = (scene.mask_width() as usize, scene.mask_height() as usize);
            for k in 0..args.frames {
                let i = k * args.step;
                let truth = scene.render(i, &mut buf.planes())?;
                let tensor = input::ycbcr_tensor(&buf.ycbcr(), MODEL_W, MODEL_H)?;
                inputs.write(&tensor)?;
                if !truth.anomalous && !args.kinds.is_empty() {
                    normals.push(("frame", index.frames.len(), tensor));
                }
                maps.write(&input::mask_to_map(&buf.mask, mw, mh, MODEL_W, MODEL_H))?;
                index.frames.push(FrameItem {
                    seed,
                    index: i,
                    anomalous: truth.anomalous,
                    lesions: truth
                        .lesions
                        .iter()
                        .map(|l| match l {
                            LesionKind::RaisedRedPatch => "raised_red_patch".to_owned(),
                            LesionKind::Bleeding => "bleeding".to_owned(),
                        })
                        .collect(),
                    mask_cells: truth.mask_pixels,
                });
            }
            progress(&format!(
                "seed {seed}: {} frames ({:.1} s)",
                args.frames,
                started.elapsed().as_secs_f64()
            ));
        }
        inputs.finish()?;
        maps.finish()?;
    }

    if args.cubes {
        let t = args.tile;
        if t == 0 {
            return Err(DatasetError::Options("the tile side must be at least 1"));
        }
        let (w, h) = (args.size.width as usize, args.size.height as usize);
        let (nx, ny) = (w.div_ceil(t), h.div_ceil(t));
        let n_cubes = crate::cube_names().count();
        let n = n_seeds * n_cubes * nx * ny;
        let mut bands = 0;
        let mut tiles_out: Option<NpyWriter> = None;
        let mut masks_out = NpyWriter::create(&args.out.join("cube_masks.npy"), &[n, 1, t, t])?;
        for seed in seeds {
            for c in 0..n_cubes {
                let Some(sample) = crate::sample_cube(c, args.size, seed)? else {
                    break;
                };
                if tiles_out.is_none() {
                    bands = sample.cube.band_count();
                    index.bands_nm = sample.cube.bands().iter().map(|b| b.center_nm).collect();
                    tiles_out = Some(NpyWriter::create(
                        &args.out.join("cube_tiles.npy"),
                        &[n, bands, t, t],
                    )?);
                }
                let Some(tiles) = tiles_out.as_mut() else {
                    return Err(DatasetError::Options("no cube bands"));
                };
                for ty in 0..ny {
                    for tx in 0..nx {
                        let (x, y) = (tx * t, ty * t);
                        tiles.write(&input::cube_tile(&sample.cube, x, y, t, t)?)?;
                        // The mask tiled like the cube: edges replicated.
                        let mut m = vec![0f32; t * t];
                        let mut count = 0;
                        for (r, row) in m.chunks_exact_mut(t).enumerate() {
                            let sy = (y + r).min(h - 1);
                            for (col, v) in row.iter_mut().enumerate() {
                                let sx = (x + col).min(w - 1);
                                if sample.mask[sy * w + sx] != 0 {
                                    *v = 1.0;
                                    if y + r < h && x + col < w {
                                        count += 1;
                                    }
                                }
                            }
                        }
                        masks_out.write(&m)?;
                        index.tiles.push(TileItem {
                            seed,
                            cube: sample.name.to_owned(),
                            x,
                            y,
                            anomalous_pixels: count,
                        });
                    }
                }
            }
            progress(&format!(
                "seed {seed}: cubes ({:.1} s)",
                started.elapsed().as_secs_f64()
            ));
        }
        if bands == 0 {
            return Err(DatasetError::Options("no sample cubes"));
        }
        if let Some(tiles) = tiles_out {
            tiles.finish()?;
        }
        masks_out.finish()?;
    }

    if args.real > 0 {
        let seed = args.seeds.0.start;
        let crops = crate::real::crops(args.real_region, args.real, MODEL_W, MODEL_H, seed)?;
        let mut out = NpyWriter::create(
            &args.out.join("real_inputs.npy"),
            &[crops.len(), 3, MODEL_H, MODEL_W],
        )?;
        for c in crops {
            out.write(&c.tensor)?;
            if !args.kinds.is_empty() {
                normals.push(("real", index.real.len(), c.tensor));
            }
            index.real.push(RealItem {
                fixture: c.fixture,
                region: args.real_region,
            });
        }
        out.finish()?;
    }

    if !args.kinds.is_empty() {
        let n = normals.len() * args.kinds.len();
        let mut out = NpyWriter::create(
            &args.out.join("altered_inputs.npy"),
            &[n, 3, MODEL_H, MODEL_W],
        )?;
        for (k, (base, item, tensor)) in normals.iter().enumerate() {
            for &kind in &args.kinds {
                let mut t = tensor.clone();
                anomalies::apply(kind, &mut t, MODEL_W, MODEL_H, 0xA17E_0000 + k as u64);
                out.write(&t)?;
                index.altered.push(AlteredItem {
                    base,
                    item: *item,
                    kind: kind.name(),
                    alarm: kind.alarm(),
                    held_out: kind.held_out(),
                });
            }
        }
        out.finish()?;
        progress(&format!(
            "{n} altered inputs ({:.1} s)",
            started.elapsed().as_secs_f64()
        ));
    }

    let path = args.out.join("dataset.json");
    let json = serde_json::to_vec_pretty(&index).map_err(|e| DatasetError::Io {
        path: path.clone(),
        source: e.into(),
    })?;
    std::fs::write(&path, json).map_err(io_at(&path))?;
    Ok(DatasetSummary {
        frames: index.frames.len(),
        tiles: index.tiles.len(),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn seed_ranges_parse() {
        assert_eq!("3..7".parse::<Seeds>().unwrap().0, 3..7);
        assert_eq!("3..=7".parse::<Seeds>().unwrap().0, 3..8);
        assert!("7..3".parse::<Seeds>().is_err());
        assert!("5".parse::<Seeds>().is_err());
    }

    #[test]
    fn npy_header_is_aligned_and_numpy_shaped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let mut w = NpyWriter::create(&path, &[2, 3]).unwrap();
        w.write(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]).unwrap();
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert_eq!(bytes.len(), 10 + hlen + 24);
        assert_eq!(&bytes[10 + hlen..10 + hlen + 4], &1f32.to_le_bytes());
    }
}
