//! A contract-checked ONNX model run with tract: loaded and optimised once,
//! the plan shared (`Arc`) by every worker, each worker with its own state.
//!
//! This is the one module that touches tract's API (it moves between minor
//! versions).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;
use tract_linalg::multithread::{Executor, multithread_tract_scope};
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;
use tract_onnx::tract_hir::internal::DimLike;

use super::contract::{Contract, ContractError, InputSource};
use super::input::{self, InputError};
use med8k_media::frame::VideoFrame;
use med8k_media::spectral::SpectralCube;

type Plan = Arc<TypedRunnableModel>;

/// A model that cannot be loaded or run.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ModelError {
    /// The model file could not be read.
    #[error("cannot read model {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The sidecar is missing, malformed or for other bytes.
    #[error(transparent)]
    Contract(#[from] ContractError),
    /// The bytes are not an ONNX model tract can parse.
    #[error("{path}: not a readable ONNX model: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// tract's message, on one line.
        message: String,
    },
    /// The graph does not match its contract (names, shapes, counts).
    #[error("{path}: graph does not match its contract: {message}")]
    Mismatch {
        /// The file.
        path: PathBuf,
        /// What differs.
        message: String,
    },
    /// tract cannot type or optimise the graph (an operator it does not know, say).
    #[error("{path}: tract cannot run this graph: {message}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// tract's message, on one line.
        message: String,
    },
    /// The input could not be made from the frame or cube.
    #[error("model input: {0}")]
    Input(#[from] InputError),
    /// A tensor of the wrong length was given to [`Model::run_tensor`].
    #[error("input tensor has {got} values, the model takes {need}")]
    InputLength {
        /// Values given.
        got: usize,
        /// `C × H × W`.
        need: usize,
    },
    /// A frame given to a cube model or the other way round.
    #[error("a {model_source:?} model cannot take {given}")]
    WrongSource {
        /// What the model takes.
        model_source: InputSource,
        /// What it was given.
        given: &'static str,
    },
    /// Running the plan failed.
    #[error("inference failed: {0}")]
    Run(String),
}

/// One line of tract's error chain, for messages that stay on one line.
pub(crate) fn one_line(e: &TractError) -> String {
    format!("{e:#}").replace('\n', " ")
}

/// A rectangle of anomalous map cells, in frame (or cube) pixels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct BoundingBox {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Map cells in the component.
    pub cells: u32,
    /// Highest map value in it.
    pub peak: f32,
}

/// What a model said about one frame or tile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Detection {
    /// The frame's sequence number (or tile index).
    pub seq: u64,
    /// The score; higher = more anomalous.
    pub score: f32,
    /// `score > threshold.score`.
    pub anomalous: bool,
    /// The anomaly map, row-major `map_height × map_width`, when the model has one.
    #[serde(skip)]
    pub map: Option<Vec<f32>>,
    /// Map width (0 without a map).
    pub map_width: usize,
    /// Map height (0 without a map).
    pub map_height: usize,
    /// Connected components (4-neighbour) of map cells above `threshold.map`.
    pub boxes: Vec<BoundingBox>,
    /// The image-quality value (contract 2 models with a `quality` output):
    /// higher = the picture is less trustworthy.
    pub quality: Option<f32>,
    /// `quality > threshold.quality`: the frame cannot be trusted (defocus,
    /// blur, smoke, glare, exposure); false without a quality output.
    pub quality_alarm: bool,
}

impl Detection {
    /// Either alarm: tissue anomaly or image quality.
    pub fn alarm(&self) -> bool {
        self.anomalous || self.quality_alarm
    }
}

/// A whole cube, tile by tile.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CubeDetection {
    /// One detection per tile, `seq` = tile index in row-major order;
    /// boxes are in cube pixels.
    pub tiles: Vec<TileDetection>,
    /// The tiles' maps stitched at cube resolution (`height × width`), when the model has a map.
    #[serde(skip)]
    pub map: Option<Vec<f32>>,
    /// Cube width.
    pub width: usize,
    /// Cube height.
    pub height: usize,
}

/// One tile of a cube.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TileDetection {
    /// Left edge in the cube.
    pub x: usize,
    /// Top edge in the cube.
    pub y: usize,
    /// The tile's detection.
    pub detection: Detection,
}

#[derive(Debug)]
struct Inner {
    contract: Contract,
    path: PathBuf,
    plan: Plan,
    has_map: bool,
    /// Index of the quality output among the plan's outputs.
    quality_output: Option<usize>,
}

/// A loaded model; cheap to clone (the plan is shared).
#[derive(Debug, Clone)]
pub struct Model {
    inner: Arc<Inner>,
}

impl Model {
    /// Read `path` and its sidecar, check the graph against the contract and
    /// optimise it for the contract's input shape.
    pub fn load(path: &Path) -> Result<Model, ModelError> {
        let bytes = std::fs::read(path).map_err(|source| ModelError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let contract = Contract::for_model(path, &bytes)?;
        Self::from_bytes(&bytes, contract, path)
    }

    /// A model from bytes and an already checked contract; `path` is used in messages.
    pub fn from_bytes(bytes: &[u8], contract: Contract, path: &Path) -> Result<Model, ModelError> {
        let path_buf = path.to_path_buf();
        let mismatch = |message: String| ModelError::Mismatch {
            path: path_buf.clone(),
            message,
        };
        let unsupported = |e: TractError| ModelError::Unsupported {
            path: path_buf.clone(),
            message: one_line(&e),
        };
        let mut model = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])
            .map_err(|e| ModelError::Parse {
                path: path_buf.clone(),
                message: one_line(&e),
            })?;

        // The input: one, named as the contract says, with a compatible declared shape.
        let inputs = model.input_outlets().map_err(unsupported)?.to_vec();
        let names: Vec<String> = inputs
            .iter()
            .map(|o| model.node(o.node).name.clone())
            .collect();
        if names.len() != 1 || names[0] != contract.input.name {
            return Err(mismatch(format!(
                "inputs are {names:?}, the contract wants exactly [{:?}]",
                contract.input.name
            )));
        }
        let declared = model.input_fact(0).map_err(unsupported)?.shape.clone();
        let dims: Vec<Option<usize>> = declared
            .dims()
            .map(|d| d.concretize().and_then(|d| d.to_usize().ok()))
            .collect();
        let want = &contract.input.shape;
        let fits = !declared.is_open() || dims.len() <= want.len();
        let fits = fits
            && (declared.is_open() || dims.len() == want.len())
            && dims
                .iter()
                .zip(want)
                .all(|(d, w)| d.is_none_or(|d| d == *w));
        if !fits {
            return Err(mismatch(format!(
                "input `{}` is declared {} in the graph, the contract says {want:?}",
                contract.input.name,
                show_dims(&dims)
            )));
        }

        // The outputs, found by name, in the order score, map.
        let mut outlets = Vec::new();
        let mut wanted = vec![&contract.outputs.score];
        wanted.extend(contract.outputs.map.as_ref());
        let quality_output = contract.outputs.quality.as_ref().map(|_| wanted.len());
        wanted.extend(contract.outputs.quality.as_ref());
        for spec in &wanted {
            let outlet = model
                .find_outlet_label(&spec.name)
                .ok_or_else(|| mismatch(format!("no tensor named `{}` in the graph", spec.name)))?;
            outlets.push(outlet);
        }
        model.select_output_outlets(&outlets).map_err(unsupported)?;
        let fact =
            InferenceFact::dt_shape(f32::datum_type(), want.iter().copied().collect::<TVec<_>>());
        let typed = model
            .with_input_fact(0, fact)
            .map_err(unsupported)?
            .into_optimized()
            .map_err(unsupported)?;
        for (i, spec) in wanted.iter().enumerate() {
            let fact = typed.output_fact(i).map_err(unsupported)?;
            let shape = fact.shape.as_concrete().map(|s| s.to_vec());
            if fact.datum_type != f32::datum_type() || shape.as_deref() != Some(&spec.shape[..]) {
                return Err(mismatch(format!(
                    "output `{}` is {:?} {:?}, the contract says f32 {:?}",
                    spec.name, fact.datum_type, fact.shape, spec.shape
                )));
            }
        }
        let plan = typed.into_runnable().map_err(unsupported)?;
        Ok(Model {
            inner: Arc::new(Inner {
                has_map: contract.outputs.map.is_some(),
                quality_output,
                contract,
                path: path.to_path_buf(),
                plan,
            }),
        })
    }

    /// The checked contract.
    pub fn contract(&self) -> &Contract {
        &self.inner.contract
    }

    /// The model file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// A worker: its own tract state over the shared plan.
    pub fn runner(&self) -> Result<Runner, ModelError> {
        let state = self
            .inner
            .plan
            .spawn()
            .map_err(|e| ModelError::Run(one_line(&e)))?;
        Ok(Runner {
            model: self.clone(),
            state,
            executor: Executor::SingleThread,
        })
    }
}

/// One worker's handle on a [`Model`]: not shared, reused frame after frame.
#[derive(Debug)]
pub struct Runner {
    model: Model,
    pub(crate) state: TypedSimpleState,
    executor: Executor,
}

impl Runner {
    /// The model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// Run each inference on `threads` threads (tract's matrix products and
    /// element-wise kernels split between them; 0 or 1: on the calling
    /// thread, the default). Frames in parallel are the other way to use
    /// cores: one runner per worker.
    pub fn set_threads(&mut self, threads: usize) {
        self.executor = if threads > 1 {
            Executor::multithread_with_name(threads, "med8k-tract")
        } else {
            Executor::SingleThread
        };
    }

    /// `f` with tract's kernels on this runner's threads.
    pub(crate) fn on_threads<R>(&mut self, f: impl FnOnce(&mut TypedSimpleState) -> R) -> R {
        let state = &mut self.state;
        multithread_tract_scope(self.executor.clone(), || f(state))
    }

    /// Run on a frame (a `frame-ycbcr` model): the frame is area-averaged to
    /// the input size and normalised; boxes come back in frame pixels.
    pub fn detect_frame(&mut self, frame: &VideoFrame) -> Result<Detection, ModelError> {
        let c = &self.model.inner.contract;
        if c.input.source != InputSource::FrameYcbcr {
            return Err(ModelError::WrongSource {
                model_source: c.input.source,
                given: "a video frame",
            });
        }
        let (w, h) = (c.input.width(), c.input.height());
        let tensor = input::frame_tensor(frame, w as u32, h as u32)?;
        self.run_tensor(
            frame.seq,
            tensor,
            (frame.width() as usize, frame.height() as usize),
        )
    }

    /// Run a whole cube (a `cube-bands` model) tile by tile at full
    /// resolution; the last row and column of tiles repeat the edge pixels.
    pub fn detect_cube(&mut self, cube: &SpectralCube) -> Result<CubeDetection, ModelError> {
        let c = &self.model.inner.contract;
        if c.input.source != InputSource::CubeBands {
            return Err(ModelError::WrongSource {
                model_source: c.input.source,
                given: "a spectral cube",
            });
        }
        let centres: Vec<f32> = cube.bands().iter().map(|b| b.center_nm).collect();
        c.check_bands(&centres)?;
        let (tw, th) = (c.input.width(), c.input.height());
        let (cw, ch) = (cube.width(), cube.height());
        let mut stitched = self.model.inner.has_map.then(|| vec![0f32; cw * ch]);
        let mut tiles = Vec::new();
        for y in (0..ch).step_by(th) {
            for x in (0..cw).step_by(tw) {
                let tensor = input::cube_tile(cube, x, y, tw, th)?;
                let mut d = self.run_tensor(tiles.len() as u64, tensor, (tw, th))?;
                for b in &mut d.boxes {
                    b.x += x as u32;
                    b.y += y as u32;
                    // Clip to the cube.
                    b.width = b.width.min(cw as u32 - b.x.min(cw as u32));
                    b.height = b.height.min(ch as u32 - b.y.min(ch as u32));
                }
                if let (Some(out), Some(map)) = (stitched.as_mut(), d.map.as_ref()) {
                    let (mw, mh) = (d.map_width, d.map_height);
                    for ty in 0..th.min(ch - y) {
                        let my = ty * mh / th;
                        for tx in 0..tw.min(cw - x) {
                            out[(y + ty) * cw + x + tx] = map[my * mw + tx * mw / tw];
                        }
                    }
                }
                tiles.push(TileDetection { x, y, detection: d });
            }
        }
        Ok(CubeDetection {
            tiles,
            map: stitched,
            width: cw,
            height: ch,
        })
    }

    /// Run on a prepared `C × H × W` tensor (before the sidecar's
    /// mean/std, which this applies); boxes are scaled to a `frame` of
    /// `(width, height)` pixels.
    pub fn run_tensor(
        &mut self,
        seq: u64,
        mut tensor: Vec<f32>,
        frame: (usize, usize),
    ) -> Result<Detection, ModelError> {
        let inner = &self.model.inner;
        let c = &inner.contract;
        let (ch, h, w) = (c.input.channels(), c.input.height(), c.input.width());
        if tensor.len() != ch * h * w {
            return Err(ModelError::InputLength {
                got: tensor.len(),
                need: ch * h * w,
            });
        }
        if c.input.mean.is_some() || c.input.std.is_some() {
            for (k, plane) in tensor.chunks_exact_mut(h * w).enumerate() {
                let m = c.input.mean.as_ref().and_then(|m| m.get(k)).copied();
                let s = c.input.std.as_ref().and_then(|s| s.get(k)).copied();
                let (m, s) = (m.unwrap_or(0.0), s.unwrap_or(1.0));
                plane.iter_mut().for_each(|v| *v = (*v - m) / s);
            }
        }
        let input = Tensor::from_shape(&[1, ch, h, w], &tensor)
            .map_err(|e| ModelError::Run(one_line(&e)))?;
        let state = &mut self.state;
        let outputs =
            multithread_tract_scope(self.executor.clone(), || state.run(tvec!(input.into())))
                .map_err(|e| ModelError::Run(one_line(&e)))?;
        let view = |i: usize| -> Result<Vec<f32>, ModelError> {
            let t = outputs
                .get(i)
                .ok_or_else(|| ModelError::Run(format!("output {i} missing")))?;
            Ok(t.to_plain_array_view::<f32>()
                .map_err(|e| ModelError::Run(one_line(&e)))?
                .iter()
                .copied()
                .collect())
        };
        let score = view(0)?
            .first()
            .copied()
            .ok_or_else(|| ModelError::Run("empty score".into()))?;
        let (map, map_width, map_height, boxes) = match &c.outputs.map {
            Some(spec) => {
                let map = view(1)?;
                let (mw, mh) = (spec.shape[3], spec.shape[2]);
                let threshold = c.threshold.map.unwrap_or(f32::INFINITY);
                let boxes = components(&map, mw, mh, threshold, frame);
                (Some(map), mw, mh, boxes)
            }
            None => (None, 0, 0, Vec::new()),
        };
        let quality = match inner.quality_output {
            Some(i) => Some(
                view(i)?
                    .first()
                    .copied()
                    .ok_or_else(|| ModelError::Run("empty quality".into()))?,
            ),
            None => None,
        };
        let quality_alarm = match (quality, c.threshold.quality) {
            (Some(q), Some(t)) => q > t,
            _ => false,
        };
        Ok(Detection {
            seq,
            score,
            anomalous: score > c.threshold.score,
            map,
            map_width,
            map_height,
            boxes,
            quality,
            quality_alarm,
        })
    }
}

fn show_dims(dims: &[Option<usize>]) -> String {
    let parts: Vec<String> = dims
        .iter()
        .map(|d| d.map_or("?".into(), |d| d.to_string()))
        .collect();
    format!("[{}]", parts.join(", "))
}

/// Connected components (4-neighbour) of `map` cells above `threshold`,
/// as boxes in a `frame` of `(width, height)` pixels, largest first.
pub fn components(
    map: &[f32],
    mw: usize,
    mh: usize,
    threshold: f32,
    frame: (usize, usize),
) -> Vec<BoundingBox> {
    if map.len() < mw * mh {
        return Vec::new();
    }
    let (fw, fh) = frame;
    let mut seen = vec![false; mw * mh];
    let mut boxes = Vec::new();
    let mut stack = Vec::new();
    for start in 0..mw * mh {
        if seen[start] || map[start] <= threshold || map[start].is_nan() {
            continue;
        }
        seen[start] = true;
        stack.push(start);
        let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
        let (mut cells, mut peak) = (0u32, f32::NEG_INFINITY);
        while let Some(i) = stack.pop() {
            let (x, y) = (i % mw, i / mw);
            (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            cells += 1;
            peak = peak.max(map[i]);
            let mut visit = |j: usize| {
                if !seen[j] && map[j] > threshold {
                    seen[j] = true;
                    stack.push(j);
                }
            };
            if x > 0 {
                visit(i - 1);
            }
            if x + 1 < mw {
                visit(i + 1);
            }
            if y > 0 {
                visit(i - mw);
            }
            if y + 1 < mh {
                visit(i + mw);
            }
        }
        // Map cell x covers frame pixels [x·fw/mw, (x+1)·fw/mw).
        let left = x0 * fw / mw;
        let right = ((x1 + 1) * fw).div_ceil(mw);
        let top = y0 * fh / mh;
        let bottom = ((y1 + 1) * fh).div_ceil(mh);
        boxes.push(BoundingBox {
            x: left as u32,
            y: top as u32,
            width: (right - left) as u32,
            height: (bottom - top) as u32,
            cells,
            peak,
        });
    }
    boxes.sort_by(|a, b| {
        b.cells
            .cmp(&a.cells)
            .then(a.y.cmp(&b.y))
            .then(a.x.cmp(&b.x))
    });
    boxes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_are_four_connected_and_scaled_to_the_frame() {
        // 4x3 map, two components: an L of 3 cells and a single diagonal cell.
        #[rustfmt::skip]
        let map = [
            0.9, 0.8, 0.0, 0.0,
            0.0, 0.7, 0.0, 0.0,
            0.0, 0.0, 0.6, 0.0,
        ];
        let b = components(&map, 4, 3, 0.5, (40, 30));
        assert_eq!(
            b,
            vec![
                BoundingBox {
                    x: 0,
                    y: 0,
                    width: 20,
                    height: 20,
                    cells: 3,
                    peak: 0.9
                },
                BoundingBox {
                    x: 20,
                    y: 20,
                    width: 10,
                    height: 10,
                    cells: 1,
                    peak: 0.6
                },
            ]
        );
        // Uneven scale: 3 cells over 10 pixels.
        let b = components(&[0.0, 1.0, 0.0], 3, 1, 0.5, (10, 1));
        assert_eq!((b[0].x, b[0].width), (3, 4));
        assert!(components(&map, 4, 3, 1.0, (40, 30)).is_empty());
    }
}
