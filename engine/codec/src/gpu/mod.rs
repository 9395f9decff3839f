//! The GPU backend: the kernels of `med8k-shaders` driven through wgpu.
//!
//! A [`GpuContext`] holds the device and queue; the kernels are compiled
//! once per device and, per picture shape, a plan holds every buffer and
//! every dispatch with its parameters, recorded again for each frame
//! without allocating.
//!
//! Two ways in:
//! - [`GpuEncoder`] and [`GpuDecoder`]: one picture at a time. The encoder
//!   is an [`EncodeBackend`](crate::EncodeBackend), so rate control runs on
//!   it; a frame already on the GPU can be encoded from its buffer
//!   ([`GpuEncoder::load_resident`]) without any upload.
//! - [`GpuStreamEncoder`] and [`GpuStreamDecoder`]: a stream of frames of one
//!   shape, lossless, several frames in flight. Each frame is one submission:
//!   the copy in from a mapped upload buffer of a ring (v210 or planes), the
//!   transforms, the coding and the copy out of only the coded bytes (or of
//!   the v210 or planar picture), with the previous frames' results read
//!   meanwhile. [`StageTimes`](med8k_gpu::StageTimes) per frame on request.

mod decode;
mod encode;
mod host;
mod plan;
mod stream_decode;
mod stream_encode;

use std::sync::Arc;

use med8k_gpu::{Bind, GpuContext, GpuError, Kernel, ReadBack, groups, read_mapped, write_samples};
use med8k_media::picture::{Picture, PictureError};

use crate::Params;
use plan::Plan;

pub use decode::GpuDecoder;
pub use encode::GpuEncoder;
pub use stream_decode::{Decoded, GpuStreamDecoder};
pub use stream_encode::{Frame, GpuStreamEncoder};

/// One frame through a [`GpuStreamEncoder`] or [`GpuStreamDecoder`].
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// Its place in the stream, from 0.
    pub seq: u64,
    /// Bytes written for it: the packet (encoder) or the picture (decoder).
    pub bytes: usize,
    /// Per-stage times, when asked for.
    pub timings: Option<med8k_gpu::StageTimes>,
}

/// What a [`GpuStreamEncoder`] or [`GpuStreamDecoder`] has done: the
/// figures that say whether the host side keeps up.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamStats {
    /// Frames finished.
    pub frames: u64,
    /// Queue submissions (one per frame, plus reruns, plus one per stage
    /// when timing without timestamps).
    pub submits: u64,
    /// Times the CPU blocked on the GPU.
    pub waits: u64,
    /// Bytes copied to the GPU.
    pub bytes_to_gpu: u64,
    /// Bytes copied back from the GPU.
    pub bytes_from_gpu: u64,
    /// GPU buffers (or plans of them) made, warm-up included.
    pub buffers_made: u64,
    /// Frames copied back again because they coded to more than the bytes
    /// copied (encoder).
    pub reruns: u64,
}

impl StreamStats {
    /// What happened between `earlier` and these figures.
    pub fn since(&self, earlier: &StreamStats) -> StreamStats {
        StreamStats {
            frames: self.frames - earlier.frames,
            submits: self.submits - earlier.submits,
            waits: self.waits - earlier.waits,
            bytes_to_gpu: self.bytes_to_gpu - earlier.bytes_to_gpu,
            bytes_from_gpu: self.bytes_from_gpu - earlier.bytes_from_gpu,
            buffers_made: self.buffers_made - earlier.buffers_made,
            reruns: self.reruns - earlier.reruns,
        }
    }

    /// The figures per frame, for reports.
    pub fn per_frame(&self) -> String {
        let n = self.frames.max(1) as f64;
        format!(
            "submits {:.2}, waits {:.2}, to GPU {:.3} MB, from GPU {:.3} MB, GPU buffers made {:.2}, reruns {:.2}",
            self.submits as f64 / n,
            self.waits as f64 / n,
            self.bytes_to_gpu as f64 / n / 1e6,
            self.bytes_from_gpu as f64 / n / 1e6,
            self.buffers_made as f64 / n,
            self.reruns as f64 / n,
        )
    }
}

const MAX_GROUPS: u32 = 65535;
const UNIFORM_STRIDE: u64 = 256;
/// Most bands the GPU's inter-band transform takes.
pub const GPU_MAX_BANDS: u16 = 64;
/// Blocks per workgroup of the entropy kernels (`LANES` in entropy_common.wgsl).
const ENTROPY_LANES: u32 = 32;

/// The compiled kernels.
#[derive(Debug)]
struct Kernels {
    components: Kernel,
    wavelet: Kernel,
    encode: Kernel,
    decode: Kernel,
    compact: Kernel,
    table: Kernel,
    v210: Kernel,
}

/// The kernels with the scans in workgroup memory.
struct PortableKernels(Arc<Kernels>);
/// The kernels with the scans in subgroup operations.
struct SubgroupKernels(Arc<Kernels>);

/// One dispatch of a plan.
struct Dispatch {
    kernel: fn(&Kernels) -> &Kernel,
    entry: &'static str,
    bind: wgpu::BindGroup,
    groups: (u32, u32),
}

/// Workgroups of 64 for `n` threads within the dispatch limit.
fn groups_1d(n: u64) -> (u32, u32) {
    groups(n, MAX_GROUPS)
}

/// Workgroups of `lanes` for `n` threads within the dispatch limit.
fn groups_of(n: u64, lanes: u32) -> (u32, u32) {
    let g = n.div_ceil(u64::from(lanes)).max(1);
    let x = g.min(u64::from(MAX_GROUPS)) as u32;
    (x, g.div_ceil(u64::from(x)) as u32)
}

/// One workgroup per item: `n` workgroups within the dispatch limit.
fn one_group_each(n: u64) -> (u32, u32) {
    let x = n.clamp(1, u64::from(MAX_GROUPS)) as u32;
    (x, n.max(1).div_ceil(u64::from(x)) as u32)
}

impl Kernels {
    fn compile(dev: &wgpu::Device, subgroups: bool) -> Self {
        use Bind::{Storage, Uniform};
        Kernels {
            components: Kernel::new(
                dev,
                "components",
                med8k_shaders::COMPONENTS,
                &[Storage(false), Storage(false), Uniform],
                &[
                    "forward_plane",
                    "forward_rct",
                    "forward_bands",
                    "inverse_rct",
                    "inverse_bands",
                    "inverse_plane",
                ],
            ),
            wavelet: Kernel::new(
                dev,
                "wavelet",
                med8k_shaders::WAVELET,
                &[Storage(false), Storage(false), Uniform],
                &["fwd_rows", "fwd_cols", "inv_cols", "inv_rows"],
            ),
            encode: Kernel::new(
                dev,
                "entropy_encode",
                &med8k_shaders::entropy_encode(),
                &[
                    Storage(true),
                    Storage(true),
                    Storage(true),
                    Storage(false),
                    Storage(false),
                    Storage(true),
                    Uniform,
                ],
                &["encode"],
            ),
            decode: Kernel::new(
                dev,
                "entropy_decode",
                &med8k_shaders::entropy_decode(),
                &[
                    Storage(true),
                    Storage(true),
                    Storage(true),
                    Storage(true),
                    Storage(true),
                    Storage(false),
                    Storage(false),
                    Storage(true),
                    Uniform,
                ],
                &["decode"],
            ),
            compact: Kernel::new(
                dev,
                "compact",
                &med8k_shaders::compact(subgroups),
                &[
                    Storage(true),
                    Storage(true),
                    Storage(true),
                    Storage(false),
                    Storage(true),
                    Storage(false),
                    Uniform,
                ],
                &["scan", "gather"],
            ),
            table: Kernel::new(
                dev,
                "block_table",
                &med8k_shaders::block_table(subgroups),
                &[
                    Storage(true),
                    Storage(true),
                    Storage(true),
                    Storage(false),
                    Storage(false),
                    Storage(false),
                    Uniform,
                ],
                &["table"],
            ),
            v210: Kernel::new(
                dev,
                "v210",
                med8k_shaders::V210,
                &[Storage(false), Storage(false), Storage(false), Uniform],
                &["unpack", "pack"],
            ),
        }
    }

    /// The kernels on `ctx`'s device, compiled on first use; with subgroup
    /// operations when `subgroups` and the device has them.
    fn on(ctx: &GpuContext, subgroups: bool) -> Arc<Kernels> {
        if subgroups && ctx.has_subgroups() {
            ctx.cached(|d| SubgroupKernels(Arc::new(Kernels::compile(d, true))))
                .0
                .clone()
        } else {
            ctx.cached(|d| PortableKernels(Arc::new(Kernels::compile(d, false))))
                .0
                .clone()
        }
    }

    /// Record `dispatches` in one compute pass.
    fn pass<'a>(
        &self,
        enc: &mut wgpu::CommandEncoder,
        dispatches: impl IntoIterator<Item = &'a Dispatch>,
    ) {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        for d in dispatches {
            pass.set_pipeline((d.kernel)(self).pipeline(d.entry));
            pass.set_bind_group(0, &d.bind, &[]);
            pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
        }
    }
}

/// Split `params` into stripes of whole slices that each fit the device:
/// `(first slice, slice count)`.
fn stripes(params: &Params, limit: u64) -> Vec<(u32, u32)> {
    let total = params.height.div_ceil(params.slice_height);
    let mut per = total;
    while per > 1 {
        let rows = (per * params.slice_height).min(params.height);
        let sub = Params {
            height: rows,
            ..*params
        };
        if plan::oversize(&sub.geometry(), limit).is_none() {
            break;
        }
        per = per.div_ceil(2);
    }
    (0..total)
        .step_by(per as usize)
        .map(|s| (s, per.min(total - s)))
        .collect()
}

/// The parameters of the stripe of `slices` slices from `first`.
fn stripe_params(params: &Params, first: u32, slices: u32) -> Params {
    let y0 = first * params.slice_height;
    Params {
        height: (slices * params.slice_height).min(params.height - y0),
        ..*params
    }
}

/// Rows `first_slice..first_slice + slices` of `pic` as a picture of their own.
fn stripe_of(
    pic: &Picture,
    slice_height: u32,
    first: u32,
    slices: u32,
) -> Result<Picture, PictureError> {
    let layout = pic.layout();
    let y0 = first * slice_height;
    let rows = (slices * slice_height).min(pic.height() - y0);
    let planes = (0..layout.plane_count())
        .map(|p| {
            let (w, _) = pic.plane_dims(p);
            let (_, sy) = layout.subsampling(p);
            let (_, h) = layout.plane_dims(p, pic.width(), y0 + rows);
            let a = (y0 >> sy) as usize * w as usize;
            pic.planes()[p][a..h as usize * w as usize].to_vec()
        })
        .collect();
    Picture::new(layout, pic.width(), rows, pic.bit_depth(), planes)
}

/// The compiled kernels on one device, and the plan of the last picture shape.
pub struct GpuCodec {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    plan: Option<Plan>,
    /// Read-backs through a kept staging buffer.
    read_back: ReadBack,
}

impl std::fmt::Debug for GpuCodec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuCodec")
            .field("adapter", &self.ctx.info.name)
            .field("plan", &self.plan)
            .finish()
    }
}

impl GpuCodec {
    /// The kernels on `ctx`'s device, compiled on first use.
    fn new(ctx: Arc<GpuContext>) -> Self {
        let kernels = Kernels::on(&ctx, true);
        GpuCodec {
            ctx,
            kernels,
            plan: None,
            read_back: ReadBack::new(),
        }
    }

    /// The context the kernels run on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    fn plan_for(&mut self, params: &Params) -> Result<&mut Plan, GpuError> {
        let same = self.plan.as_ref().is_some_and(|p| {
            Params {
                lossless: params.lossless,
                ..p.params
            } == *params
        });
        if !same {
            self.plan = None;
            self.plan = Some(Plan::new(&self.ctx, &self.kernels, params, None)?);
        }
        self.plan.as_mut().ok_or(GpuError::Internal("no plan"))
    }

    fn run<'a>(
        &self,
        dispatches: impl IntoIterator<Item = &'a Dispatch>,
        copies: impl FnOnce(&mut wgpu::CommandEncoder),
    ) {
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        self.kernels.pass(&mut enc, dispatches);
        copies(&mut enc);
        self.ctx.queue.submit([enc.finish()]);
    }

    fn read(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, GpuError> {
        read_mapped(&self.ctx.device, buf, bytes, <[u8]>::to_vec)
    }

    /// Copy `bytes` of `src` from `offset` into the kept staging buffer.
    fn read_back(&self, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>, GpuError> {
        self.read_back.read(
            &self.ctx.device,
            &self.ctx.queue,
            src,
            offset,
            bytes,
            <[u8]>::to_vec,
        )
    }

    fn upload(&self, plan: &Plan, pic: &Picture) {
        let mut at = 0u64;
        for (plane, words) in pic.planes().iter().zip(&plan.plane_words) {
            write_samples(&self.ctx.queue, &plan.samples, at, plane);
            at += 4 * words;
        }
    }
}
