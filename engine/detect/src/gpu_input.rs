//! The detector's model input on the GPU: the `model_input` kernel of
//! `med8k-shaders`, bit-exact with its CPU twin [`input::picture_sums`].
//!
//! [`GpuModelInput`] computes the exact integer [`AreaSums`] of a 4:2:2 or
//! 4:2:0 picture on the GPU and reads back only those (3 × 144 × 256 values
//! of 8 bytes for the endoscope model); [`AreaSums::tensor`], shared with the
//! CPU path, divides them into the model input. So the tensors are equal bit
//! for bit, whichever side made the sums.
//!
//! Two ways in:
//! - [`sums_of_buffer`](GpuModelInput::sums_of_buffer): planes already on the
//!   GPU in the [`SampleLayout`] every med8k kernel reads, such as the
//!   picture the codec's GPU encoder compresses (a [`med8k_gpu::Resident`]):
//!   no upload at all.
//! - [`picture_tensor`](GpuModelInput::picture_tensor) and
//!   [`frame_tensor`](GpuModelInput::frame_tensor): the fallback that uploads
//!   the planes itself, in bands of rows when they do not fit the device's
//!   storage bindings (lavapipe stops at 128 MiB). Sums add over bands of
//!   rows, so the result does not depend on the band height.
//!
//! The kernel runs two passes per band and plane: per source row and output
//! column, the row's weighted sum (exact in u32: the weights of one output
//! add up to the source width, at most [`MAX_SIDE`], times codes below
//! 2^16); then per output value, the column's weighted sum of those, in 64
//! bits kept as two u32 words, added to the earlier bands'. The taps (source
//! index, weight) are the twin's own, uploaded once per shape.
//!
//! ```no_run
//! use med8k_gpu::GpuContext;
//! use med8k_detect::{gpu_input::GpuModelInput, input};
//! use med8k_media::picture::{Layout, Picture};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut gpu = GpuModelInput::new(GpuContext::new()?)?;
//! let frame = Picture::zeroed(Layout::Yuv422, 7680, 4320, 10)?;
//! let tensor = gpu.picture_tensor(&frame, 256, 144)?;
//! assert_eq!(tensor, input::picture_tensor(&frame, 256, 144)?);
//! # Ok(()) }
//! ```

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::input::{self, AreaSums, InputError};
use med8k_gpu::{
    Bind, GpuContext, GpuError, Kernel, SampleLayout, groups, guarded, largest_fitting,
    read_mapped, spread, write_samples,
};
use med8k_media::frame::{PixelFormat, VideoFrame, v210};
use med8k_media::picture::{Layout, Picture, PictureError};

/// Largest source side the kernel takes (the codec's own limit): a row sum
/// is at most `width × 65535`, which must fit 32 bits, and an output's taps
/// (at most one per source row or column) must stay within lavapipe's loop
/// limit of about 65500 iterations at two taps per iteration.
pub const MAX_SIDE: u32 = 1 << 16;
/// Threads per workgroup (the kernel's `@workgroup_size`).
/// Distance between two dispatches' parameters in the uniform buffer.
const UNIFORM_STRIDE: u64 = 256;
/// Words of one dispatch's parameters (`Params` in the kernel).
const PARAMS_WORDS: usize = 12;
/// Largest buffer whatever the device allows, so every index fits a u32.
const MAX_STRIPE_BYTES: u64 = 1 << 31;
const ENTRIES: [&str; 2] = ["horizontal", "vertical"];

/// Why the GPU could not make a model input.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GpuInputError {
    /// What the CPU path refuses too: formats, layouts, sizes, bit depths.
    #[error(transparent)]
    Input(#[from] InputError),
    /// A frame that does not make a picture.
    #[error("frame to picture: {0}")]
    Picture(#[from] PictureError),
    /// A `v210` frame that does not unpack.
    #[error("v210 to planar: {0}")]
    Unpack(#[from] v210::ConvertError),
    /// A source with a side above [`MAX_SIDE`].
    #[error("a {width}x{height} source has a side above the GPU model input's {MAX_SIDE}")]
    TooBig {
        /// Source width.
        width: u32,
        /// Source height.
        height: u32,
    },
    /// A buffer the shape needs is larger than the device binds.
    #[error("{what} needs {bytes} bytes of GPU buffer, above the {limit} bytes a binding may hold")]
    TooLarge {
        /// Which buffer.
        what: &'static str,
        /// Bytes it needs.
        bytes: u64,
        /// The device's (or the configured) limit.
        limit: u64,
    },
    /// A sample buffer smaller than the planes it is said to hold.
    #[error("the sample buffer holds {got} bytes, {layout} {width}x{height} needs {need}")]
    BufferTooSmall {
        /// The layout given.
        layout: Layout,
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
        /// Bytes the planes need.
        need: u64,
        /// Bytes the buffer has.
        got: u64,
    },
    /// wgpu reported an error (validation, out of memory, mapping).
    #[error("GPU: {0}")]
    Gpu(#[from] GpuError),
}

/// What a plan is built for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    layout: Layout,
    width: u32,
    height: u32,
    out_w: u32,
    out_h: u32,
    /// The driver uploads the planes (else they are in a caller's buffer).
    upload: bool,
}

impl Shape {
    /// Each plane's `(width, height, vertical shift)`.
    fn planes(&self) -> [(u32, u32, u32); 3] {
        std::array::from_fn(|p| {
            let (w, h) = self.layout.plane_dims(p, self.width, self.height);
            (w, h, self.layout.subsampling(p).1)
        })
    }

    /// Rows of each plane in a band of `k` luma rows from row `y0`: `(first, count)`.
    fn band(&self, y0: u32, k: u32) -> [(u32, u32); 3] {
        let y1 = (y0 + k).min(self.height);
        self.planes().map(|(_, h, sy)| {
            let r0 = y0 >> sy;
            let r1 = y1.div_ceil(1 << sy).min(h);
            (r0, r1 - r0)
        })
    }

    /// Bytes of the row sums and of the uploaded samples of the first band
    /// of `k` luma rows (the largest band of that height).
    fn band_bytes(&self, k: u32) -> (u64, u64) {
        let rows = self.band(0, k);
        let sums: u64 = rows
            .iter()
            .map(|&(_, n)| 4 * u64::from(n) * u64::from(self.out_w))
            .sum();
        let samples: u64 = rows
            .iter()
            .zip(self.planes())
            .map(|(&(_, n), (w, _, _))| 4 * (u64::from(n) * u64::from(w)).div_ceil(2))
            .sum();
        (sums, if self.upload { samples } else { 0 })
    }

    /// Luma rows per band so the band's buffers stay within `limit` bytes,
    /// a multiple of the chroma's vertical subsampling and spread evenly over
    /// the bands; `None` when the smallest band does not fit.
    fn band_rows(&self, limit: u64) -> Option<u32> {
        let align = 1u32 << self.planes().iter().map(|p| p.2).max().unwrap_or(0);
        let units = self.height.div_ceil(align);
        let fits = |u: u32| {
            let (a, b) = self.band_bytes((u * align).min(self.height));
            a <= limit && b <= limit
        };
        largest_fitting(units, fits).map(|most| spread(units, most) * align)
    }
}

/// One band of source rows: per plane, its first row and row count.
#[derive(Debug, Clone, Copy)]
struct Band {
    rows: [(u32, u32); 3],
}

/// Buffers and parameters for one [`Shape`].
struct Plan {
    shape: Shape,
    bands: Vec<Band>,
    /// Word offset of each plane in `src` (upload) or in the caller's buffer.
    src_words: [u64; 3],
    /// The band's planes, uploaded (`None` when the caller's buffer is read).
    src: Option<wgpu::Buffer>,
    taps: wgpu::Buffer,
    h: wgpu::Buffer,
    sums: wgpu::Buffer,
    read: wgpu::Buffer,
    uniforms: wgpu::Buffer,
    /// Bind groups of the upload path, per band and plane.
    binds: Vec<wgpu::BindGroup>,
}

/// The model-input kernel on one device, and the plan of the last shape.
pub struct GpuModelInput {
    ctx: Arc<GpuContext>,
    kernel: Kernel,
    stripe_limit: Option<u64>,
    plan: Option<Plan>,
}

impl std::fmt::Debug for GpuModelInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuModelInput")
            .field("adapter", &self.ctx.info.name)
            .field("shape", &self.plan.as_ref().map(|p| p.shape))
            .field("stripes", &self.stripes())
            .finish_non_exhaustive()
    }
}

/// Append a tap table (see the kernel) to `words`; returns its first word.
fn push_taps(words: &mut Vec<u32>, taps: &[Vec<(usize, u64)>]) -> u32 {
    let start = words.len();
    words.resize(start + taps.len() + 1, 0);
    for (o, t) in taps.iter().enumerate() {
        words[start + o] = words.len() as u32;
        for &(i, w) in t {
            // Indices are below a plane side and weights at most the
            // source side, both checked to fit.
            words.extend([i as u32, w as u32]);
        }
    }
    words[start + taps.len()] = words.len() as u32;
    start as u32
}

impl GpuModelInput {
    /// Compile the kernel on `ctx`'s device.
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, GpuInputError> {
        let dev = &ctx.device;
        use Bind::{Storage, Uniform};
        let kernel = guarded(dev, "compiling the model input kernel", || {
            Kernel::new(
                dev,
                "model_input",
                med8k_shaders::MODEL_INPUT,
                &[
                    Storage(true),
                    Storage(true),
                    Storage(false),
                    Storage(false),
                    Uniform,
                ],
                &ENTRIES,
            )
        })?;
        Ok(GpuModelInput {
            ctx,
            kernel,
            stripe_limit: None,
            plan: None,
        })
    }

    /// Keep each band's buffers within `bytes` (and the device's limits), so
    /// smaller pictures also go through in bands. Tests use it to exercise
    /// banding on any device.
    pub fn with_max_stripe_bytes(mut self, bytes: u64) -> Self {
        self.stripe_limit = Some(bytes);
        self.plan = None;
        self
    }

    /// The context the kernel runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Bands of rows the last picture went through in (0 before the first).
    pub fn stripes(&self) -> usize {
        self.plan.as_ref().map_or(0, |p| p.bands.len())
    }

    /// The sums of a picture whose planes are in `samples` (on this
    /// device) as `shape` says, such as a [`med8k_gpu::Resident`] picture an
    /// encoder holds. Only the sums are read back.
    pub fn sums_of_buffer(
        &mut self,
        samples: &wgpu::Buffer,
        shape: SampleLayout,
        out_w: usize,
        out_h: usize,
    ) -> Result<AreaSums, GpuInputError> {
        let shape_key = self.check(shape, out_w, out_h, false)?;
        let (_, words) = shape.plane_words();
        let need = 4 * words;
        if samples.size() < need {
            return Err(GpuInputError::BufferTooSmall {
                layout: shape.layout,
                width: shape.width,
                height: shape.height,
                need,
                got: samples.size(),
            });
        }
        // Below 2^32 bytes, so every sample index fits a u32.
        let limit = (self.ctx.device.limits())
            .max_storage_buffer_binding_size
            .min(u64::from(u32::MAX));
        if need > limit {
            return Err(GpuInputError::TooLarge {
                what: "the sample buffer",
                bytes: need,
                limit,
            });
        }
        self.prepare(shape_key)?;
        let plan = self.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
        let binding = wgpu::BufferBinding {
            buffer: samples,
            offset: 0,
            size: wgpu::BufferSize::new(need),
        };
        let binds = guarded(&self.ctx.device, "binding the sample buffer", || {
            self.bind_groups(plan, binding)
        })?;
        self.run(plan, &binds, None, shape.bit_depth)
    }

    /// [`input::picture_sums`] on the GPU, uploading the planes.
    pub fn picture_sums(
        &mut self,
        pic: &Picture,
        out_w: usize,
        out_h: usize,
    ) -> Result<AreaSums, GpuInputError> {
        let shape = self.check(SampleLayout::of(pic), out_w, out_h, true)?;
        self.prepare(shape)?;
        let plan = self.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
        self.run(plan, &plan.binds, Some(pic), pic.bit_depth())
    }

    /// [`input::picture_tensor`] on the GPU: the same values, bit for bit.
    pub fn picture_tensor(
        &mut self,
        pic: &Picture,
        out_w: usize,
        out_h: usize,
    ) -> Result<Vec<f32>, GpuInputError> {
        Ok(self.picture_sums(pic, out_w, out_h)?.tensor())
    }

    /// [`input::frame_tensor`] on the GPU: the same values, bit for bit, and
    /// the same formats (`v210` is unpacked on the CPU first).
    pub fn frame_tensor(
        &mut self,
        frame: &VideoFrame,
        width: u32,
        height: u32,
    ) -> Result<Vec<f32>, GpuInputError> {
        let (fw, fh) = (frame.width(), frame.height());
        if fw == 0 || fh == 0 || width == 0 || height == 0 {
            return Err(InputError::BadSize {
                width: fw as usize,
                height: fh as usize,
                out_width: width as usize,
                out_height: height as usize,
            }
            .into());
        }
        let pic = match frame.format() {
            PixelFormat::I422_10 | PixelFormat::I420_10 | PixelFormat::I420 => {
                Picture::from_frame(frame)?
            }
            PixelFormat::V210 => Picture::from_frame(&v210::unpack(frame)?)?,
            other => return Err(InputError::UnsupportedFormat(other).into()),
        };
        self.picture_tensor(&pic, width as usize, height as usize)
    }

    /// The twin's checks, then the kernel's own bounds; the plan's key.
    fn check(
        &self,
        s: SampleLayout,
        out_w: usize,
        out_h: usize,
        upload: bool,
    ) -> Result<Shape, GpuInputError> {
        if !matches!(s.layout, Layout::Yuv422 | Layout::Yuv420) {
            return Err(InputError::UnsupportedLayout(s.layout).into());
        }
        let bad_size = InputError::BadSize {
            width: s.width as usize,
            height: s.height as usize,
            out_width: out_w,
            out_height: out_h,
        };
        let (Ok(ow), Ok(oh)) = (u32::try_from(out_w), u32::try_from(out_h)) else {
            return Err(bad_size.into());
        };
        if s.width == 0 || s.height == 0 || ow == 0 || oh == 0 {
            return Err(bad_size.into());
        }
        if !(1..=16).contains(&s.bit_depth) {
            return Err(InputError::BadBitDepth(u32::from(s.bit_depth)).into());
        }
        if s.width > MAX_SIDE || s.height > MAX_SIDE {
            return Err(GpuInputError::TooBig {
                width: s.width,
                height: s.height,
            });
        }
        Ok(Shape {
            layout: s.layout,
            width: s.width,
            height: s.height,
            out_w: ow,
            out_h: oh,
            upload,
        })
    }

    /// Make the plan for `shape` the current one.
    fn prepare(&mut self, shape: Shape) -> Result<(), GpuInputError> {
        if self.plan.as_ref().is_none_or(|p| p.shape != shape) {
            self.plan = None;
            self.plan = Some(self.build_plan(shape)?);
        }
        Ok(())
    }

    fn build_plan(&self, shape: Shape) -> Result<Plan, GpuInputError> {
        let dev = &self.ctx.device;
        let limits = dev.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            .min(MAX_STRIPE_BYTES);
        let sums_bytes = 3 * 8 * u64::from(shape.out_w) * u64::from(shape.out_h);
        if sums_bytes > limit {
            return Err(GpuInputError::TooLarge {
                what: "the output sums",
                bytes: sums_bytes,
                limit,
            });
        }
        let limit = limit.min(self.stripe_limit.unwrap_or(u64::MAX));
        let k = shape.band_rows(limit).ok_or_else(|| {
            let (a, b) = shape.band_bytes(1);
            GpuInputError::TooLarge {
                what: "one band of rows",
                bytes: a.max(b),
                limit,
            }
        })?;
        let bands: Vec<Band> = (0..shape.height)
            .step_by(k as usize)
            .map(|y0| Band {
                rows: shape.band(y0, k),
            })
            .collect();
        let planes = shape.planes();
        let (h_bytes, src_bytes) = shape.band_bytes(k);
        let (w, h) = (shape.width as usize, shape.height as usize);
        let (ow, oh) = (shape.out_w as usize, shape.out_h as usize);

        // Each plane's place in the source: packed band rows when uploading,
        // the codec's layout otherwise.
        let src_words: [u64; 3] = if shape.upload {
            let first = bands[0].rows;
            let mut at = 0u64;
            std::array::from_fn(|p| {
                let o = at;
                at += (u64::from(planes[p].0) * u64::from(first[p].1)).div_ceil(2);
                o
            })
        } else {
            let (firsts, _) = SampleLayout {
                layout: shape.layout,
                width: shape.width,
                height: shape.height,
                bit_depth: 16,
            }
            .plane_words();
            std::array::from_fn(|p| firsts[p])
        };

        // The twin's taps, per plane: columns then rows.
        let mut tap_words = Vec::new();
        let tables: Vec<(u32, u32)> = (0..3)
            .map(|p| {
                let (pw, ph, sy) = planes[p];
                let sx = shape.layout.subsampling(p).0;
                let cols = input::taps(w, ow, sx, pw as usize);
                let rows = input::taps(h, oh, sy, ph as usize);
                (
                    push_taps(&mut tap_words, &cols),
                    push_taps(&mut tap_words, &rows),
                )
            })
            .collect();

        // Parameters per band and plane (see `Params` in the kernel).
        let mut h0 = [0u32; 3];
        let mut at = 0u32;
        for (p, &(_, rows)) in bands[0].rows.iter().enumerate() {
            h0[p] = at;
            at += rows * shape.out_w;
        }
        let mut params: Vec<[u32; PARAMS_WORDS]> = Vec::new();
        for band in &bands {
            for p in 0..3 {
                let (r0, rows) = band.rows[p];
                let pw = planes[p].0;
                let src0 = if shape.upload {
                    2 * src_words[p]
                } else {
                    2 * src_words[p] + u64::from(r0) * u64::from(pw)
                };
                params.push([
                    src0 as u32,
                    pw,
                    r0,
                    rows,
                    shape.out_w,
                    shape.out_h,
                    tables[p].0,
                    tables[p].1,
                    h0[p],
                    (p as u32) * shape.out_w * shape.out_h,
                    0,
                    0,
                ]);
            }
        }

        let plan = guarded(dev, "building the model input plan", || {
            let storage = |label, bytes: u64, usage| {
                dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: bytes.max(4).next_multiple_of(4),
                    usage,
                    mapped_at_creation: false,
                })
            };
            let src = shape.upload.then(|| {
                storage(
                    "model input src",
                    src_bytes,
                    wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
                )
            });
            let taps = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("model input taps"),
                contents: bytemuck::cast_slice(&tap_words),
                usage: wgpu::BufferUsages::STORAGE,
            });
            let h = storage("model input rows", h_bytes, wgpu::BufferUsages::STORAGE);
            let sums = storage(
                "model input sums",
                sums_bytes,
                wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
            );
            let read = storage(
                "model input read",
                sums_bytes,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let mut bytes = vec![0u8; params.len() * UNIFORM_STRIDE as usize];
            for (i, u) in params.iter().enumerate() {
                let at = i * UNIFORM_STRIDE as usize;
                bytes[at..at + 4 * PARAMS_WORDS].copy_from_slice(bytemuck::cast_slice(u));
            }
            let uniforms = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("model input params"),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let mut plan = Plan {
                shape,
                bands,
                src_words,
                src,
                taps,
                h,
                sums,
                read,
                uniforms,
                binds: Vec::new(),
            };
            if let Some(src) = &plan.src {
                plan.binds = self.bind_groups(&plan, src.as_entire_buffer_binding());
            }
            plan
        })?;
        Ok(plan)
    }

    /// A bind group per band and plane, reading samples from `src`.
    fn bind_groups(&self, plan: &Plan, src: wgpu::BufferBinding<'_>) -> Vec<wgpu::BindGroup> {
        (0..plan.bands.len() * 3)
            .map(|u| {
                self.ctx
                    .device
                    .create_bind_group(&wgpu::BindGroupDescriptor {
                        label: None,
                        layout: &self.kernel.layout,
                        entries: &[
                            wgpu::BindGroupEntry {
                                binding: 0,
                                resource: wgpu::BindingResource::Buffer(src.clone()),
                            },
                            wgpu::BindGroupEntry {
                                binding: 1,
                                resource: plan.taps.as_entire_binding(),
                            },
                            wgpu::BindGroupEntry {
                                binding: 2,
                                resource: plan.h.as_entire_binding(),
                            },
                            wgpu::BindGroupEntry {
                                binding: 3,
                                resource: plan.sums.as_entire_binding(),
                            },
                            wgpu::BindGroupEntry {
                                binding: 4,
                                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                    buffer: &plan.uniforms,
                                    offset: u as u64 * UNIFORM_STRIDE,
                                    size: wgpu::BufferSize::new(4 * PARAMS_WORDS as u64),
                                }),
                            },
                        ],
                    })
            })
            .collect()
    }

    /// Every band: upload its rows of `pic` (when given), both passes per
    /// plane; then read the sums back.
    fn run(
        &self,
        plan: &Plan,
        binds: &[wgpu::BindGroup],
        pic: Option<&Picture>,
        bit_depth: u8,
    ) -> Result<AreaSums, GpuInputError> {
        let (dev, queue) = (&self.ctx.device, &self.ctx.queue);
        let shape = plan.shape;
        let max_groups = dev.limits().max_compute_workgroups_per_dimension;
        let outputs = u64::from(shape.out_w) * u64::from(shape.out_h);
        guarded(dev, "running the model input kernel", || {
            for (b, band) in plan.bands.iter().enumerate() {
                if let (Some(pic), Some(src)) = (pic, &plan.src) {
                    for (p, &(r0, rows)) in band.rows.iter().enumerate() {
                        let w = pic.plane_dims(p).0 as usize;
                        let (a, e) = (r0 as usize * w, (r0 + rows) as usize * w);
                        write_samples(queue, src, 4 * plan.src_words[p], &pic.planes()[p][a..e]);
                    }
                }
                let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                    label: Some("model input"),
                });
                if b == 0 {
                    enc.clear_buffer(&plan.sums, 0, None);
                }
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                    for (p, &(_, rows)) in band.rows.iter().enumerate() {
                        pass.set_bind_group(0, &binds[3 * b + p], &[]);
                        let threads = [u64::from(rows) * u64::from(shape.out_w), outputs];
                        for ((_, pipeline), n) in self.kernel.pipelines.iter().zip(threads) {
                            let (x, y) = groups(n, max_groups);
                            pass.set_pipeline(pipeline);
                            pass.dispatch_workgroups(x, y, 1);
                        }
                    }
                }
                if b + 1 == plan.bands.len() {
                    enc.copy_buffer_to_buffer(&plan.sums, 0, &plan.read, 0, plan.sums.size());
                }
                queue.submit([enc.finish()]);
            }
        })?;

        let sums = read_mapped(dev, &plan.read, 3 * 8 * outputs, |view| {
            view.chunks_exact(8)
                .map(bytemuck::pod_read_unaligned::<u64>)
                .collect::<Vec<u64>>()
        })?;
        Ok(AreaSums {
            width: shape.width as usize,
            height: shape.height as usize,
            out_w: shape.out_w as usize,
            out_h: shape.out_h as usize,
            full_scale: (1u32 << bit_depth) - 1,
            sums,
        })
    }
}
