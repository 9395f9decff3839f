//! The AV1 path's downscale on the GPU: the `downscale` kernel of
//! `med8k-shaders`, bit-exact with its CPU twin [`av1::downscale_420`].
//!
//! [`GpuDownscaler`] compiles the kernel once and, per picture shape (layout,
//! size, depth, factor, output depth), builds a plan: buffers, parameters and
//! bind groups, reused for every frame of that shape. A picture whose
//! samples do not fit the device's storage bindings (8K 16-bit RGB on
//! lavapipe, which stops at 128 MiB) goes through in horizontal stripes: a
//! stripe is a run of output chroma rows, and only the source rows its boxes
//! cover are uploaded, so the result is the same whatever the stripe height.
//!
//! ```no_run
//! use med8k_av1::gpu::GpuDownscaler;
//! use med8k_gpu::GpuContext;
//! use med8k_media::picture::{Layout, Picture};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut down = GpuDownscaler::new(GpuContext::new()?)?;
//! let frame = Picture::zeroed(Layout::Yuv422, 7680, 4320, 10)?;
//! let small = down.downscale_420(&frame, 2, 8)?; // 3840x2160, 8-bit 4:2:0
//! assert_eq!(small, med8k_av1::downscale_420(&frame, 2, 8)?);
//! # Ok(()) }
//! ```
//!
//! [`av1::downscale_420`]: crate::downscale_420

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::Av1Error;
use med8k_gpu::{
    Bind, GpuContext, GpuError, Kernel, groups, guarded, largest_fitting, read_mapped, spread,
};
use med8k_media::picture::{Layout, Picture};

/// Distance between two dispatches' parameters in the uniform buffer (the
/// largest `min_uniform_buffer_offset_alignment` wgpu allows).
const UNIFORM_STRIDE: u64 = 256;
/// Bytes of one dispatch's parameters (`Params` in the kernel).
const PARAMS_BYTES: u64 = 64;
/// Largest stripe buffer whatever the device allows, so every sample index
/// in the kernel fits a u32.
const MAX_STRIPE_BYTES: u64 = 1 << 31;

/// The kernel's entry points.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// One YCbCr plane.
    Plane = 0,
    /// Luma of RGB.
    RgbLuma = 1,
    /// Cb and Cr of RGB.
    RgbChroma = 2,
}

const ENTRIES: [&str; 3] = ["plane", "rgb_luma", "rgb_chroma"];

/// What a plan is built for: frames with the same shape share it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Shape {
    layout: Layout,
    width: u32,
    height: u32,
    depth: u8,
    factor: u32,
    out_depth: u8,
}

/// One source plane: its size and its vertical subsampling shift.
#[derive(Debug, Clone, Copy)]
struct SrcPlane {
    width: u32,
    height: u32,
    sy: u32,
}

impl Shape {
    /// Output luma width and height (even), as [`downscale_420`](crate::downscale_420).
    fn out_dims(&self) -> (u32, u32) {
        let even = |v: u32| v + (v & 1);
        (
            even(self.width.div_ceil(self.factor)),
            even(self.height.div_ceil(self.factor)),
        )
    }

    fn src_planes(&self) -> [SrcPlane; 3] {
        let layout = self.layout;
        std::array::from_fn(|p| {
            let (width, height) = layout.plane_dims(p, self.width, self.height);
            SrcPlane {
                width,
                height,
                sy: layout.subsampling(p).1,
            }
        })
    }

    /// Source rows of `plane` that output chroma rows `c0..c0 + k` read:
    /// luma rows `2f*c0 .. 2f*(c0 + k)` shifted by the plane's subsampling,
    /// cut at the plane's bottom.
    fn src_rows(&self, plane: SrcPlane, c0: u32, k: u32) -> (u32, u32) {
        let span = 2 * self.factor;
        let first = (span * c0) >> plane.sy;
        let end = ((span * (c0 + k)) >> plane.sy).min(plane.height);
        (first, end - first)
    }

    /// Words of the source buffer for a stripe of `k` chroma rows starting at
    /// row 0 (the largest stripe of that height), and each plane's offset.
    fn src_words(&self, k: u32) -> ([u64; 3], u64) {
        let mut offsets = [0u64; 3];
        let mut at = 0u64;
        for (o, plane) in offsets.iter_mut().zip(self.src_planes()) {
            *o = at;
            let (_, rows) = self.src_rows(plane, 0, k);
            at += (u64::from(plane.width) * u64::from(rows)).div_ceil(2);
        }
        (offsets, at)
    }

    /// Words of the output buffer for `k` chroma rows, and each plane's offset.
    fn dst_words(&self, k: u32) -> ([u64; 3], u64) {
        let (ow, _) = self.out_dims();
        let luma = u64::from(ow) * u64::from(k); // 2k rows of ow samples, two per word
        let chroma = (u64::from(ow / 2) * u64::from(k)).div_ceil(2);
        ([0, luma, luma + chroma], luma + 2 * chroma)
    }

    /// Chroma rows per stripe so both buffers stay within `limit` bytes,
    /// spread evenly over the stripes; `None` when one row does not fit.
    fn stripe_rows(&self, limit: u64) -> Option<u32> {
        let (_, oh) = self.out_dims();
        let ch = oh / 2;
        let fits = |k: u32| 4 * self.src_words(k).1 <= limit && 4 * self.dst_words(k).1 <= limit;
        largest_fitting(ch, fits).map(|most| spread(ch, most))
    }
}

/// One dispatch of a stripe.
struct Dispatch {
    entry: Entry,
    bind: wgpu::BindGroup,
    groups: (u32, u32),
}

/// A dispatch before its bind group exists: its parameters are the
/// `uniform`-th in the uniform buffer.
struct Pending {
    entry: Entry,
    uniform: usize,
    groups: (u32, u32),
}

/// A stripe: the source rows to upload and the output rows it yields.
struct Stripe<D = Dispatch> {
    /// Per source plane: first row and row count.
    src_rows: [(u32, u32); 3],
    /// First output chroma row and count (luma rows are twice these).
    chroma_rows: (u32, u32),
    dispatches: Vec<D>,
}

/// Buffers and dispatches for one [`Shape`].
struct Plan {
    shape: Shape,
    src: wgpu::Buffer,
    src_offsets: [u64; 3],
    dst: wgpu::Buffer,
    dst_offsets: [u64; 3],
    read: wgpu::Buffer,
    stripes: Vec<Stripe>,
    _uniforms: wgpu::Buffer,
}

/// The downscale kernel on one device, and the plan of the last picture shape.
pub struct GpuDownscaler {
    ctx: Arc<GpuContext>,
    kernel: Kernel,
    stripe_limit: Option<u64>,
    plan: Option<Plan>,
}

impl std::fmt::Debug for GpuDownscaler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDownscaler")
            .field("adapter", &self.ctx.info.name)
            .field("shape", &self.plan.as_ref().map(|p| p.shape))
            .field("stripes", &self.stripes())
            .finish_non_exhaustive()
    }
}

impl GpuDownscaler {
    /// Compile the kernel on `ctx`'s device.
    pub fn new(ctx: Arc<GpuContext>) -> Result<Self, Av1Error> {
        let dev = &ctx.device;
        use Bind::{Storage, Uniform};
        let kernel = guarded(dev, "compiling the downscale kernel", || {
            Kernel::new(
                dev,
                "downscale",
                med8k_shaders::DOWNSCALE,
                &[Storage(true), Storage(false), Uniform],
                &ENTRIES,
            )
        })?;
        Ok(GpuDownscaler {
            ctx,
            kernel,
            stripe_limit: None,
            plan: None,
        })
    }

    /// Keep each stripe's source and output buffers within `bytes` (and the
    /// device's limits), so smaller pictures also go through in stripes.
    /// Tests use it to exercise striping on any device.
    pub fn with_max_stripe_bytes(mut self, bytes: u64) -> Self {
        self.stripe_limit = Some(bytes);
        self.plan = None;
        self
    }

    /// The context the kernel runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Stripes the last picture went through in (0 before the first).
    pub fn stripes(&self) -> usize {
        self.plan.as_ref().map_or(0, |p| p.stripes.len())
    }

    /// [`downscale_420`](crate::downscale_420) on the GPU: the same
    /// picture, bit for bit, and the same errors for the same bad arguments.
    pub fn downscale_420(
        &mut self,
        src: &Picture,
        factor: u32,
        out_depth: u8,
    ) -> Result<Picture, Av1Error> {
        // The CPU twin's checks, in its order.
        if !matches!(factor, 1 | 2 | 4) {
            return Err(Av1Error::Factor(factor));
        }
        if !matches!(out_depth, 8 | 10) {
            return Err(Av1Error::OutputDepth(out_depth));
        }
        let depth = src.bit_depth();
        if !(8..=16).contains(&depth) {
            return Err(Av1Error::InputDepth(depth));
        }
        let layout = src.layout();
        if !matches!(layout, Layout::Yuv422 | Layout::Yuv420 | Layout::Rgb) {
            return Err(Av1Error::InputLayout(layout));
        }
        let shape = Shape {
            layout,
            width: src.width(),
            height: src.height(),
            depth,
            factor,
            out_depth,
        };
        if self.plan.as_ref().is_none_or(|p| p.shape != shape) {
            self.plan = None;
            self.plan = Some(self.build_plan(shape)?);
        }
        let plan = self.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
        let (ow, oh) = shape.out_dims();
        let mut planes = vec![
            vec![0u16; ow as usize * oh as usize],
            vec![0u16; (ow / 2) as usize * (oh / 2) as usize],
            vec![0u16; (ow / 2) as usize * (oh / 2) as usize],
        ];
        for stripe in &plan.stripes {
            self.run_stripe(plan, stripe, src, &mut planes)?;
        }
        Ok(Picture::new(Layout::Yuv420, ow, oh, out_depth, planes)?)
    }

    fn build_plan(&self, shape: Shape) -> Result<Plan, Av1Error> {
        let dev = &self.ctx.device;
        let limits = dev.limits();
        let limit = limits
            .max_storage_buffer_binding_size
            .min(limits.max_buffer_size)
            .min(MAX_STRIPE_BYTES)
            .min(self.stripe_limit.unwrap_or(u64::MAX));
        let k = shape.stripe_rows(limit).ok_or_else(|| {
            GpuError::TooLarge(format!(
                "one row of {}x{} at factor {} needs more than the {limit} bytes a buffer may bind",
                shape.width, shape.height, shape.factor
            ))
        })?;
        let (src_offsets, src_words) = shape.src_words(k);
        let (dst_offsets, dst_words) = shape.dst_words(k);
        let (ow, oh) = shape.out_dims();
        let (cw, ch) = (ow / 2, oh / 2);
        let planes = shape.src_planes();
        let f = shape.factor;
        let rgb = shape.layout == Layout::Rgb;
        let (in_bits, maxv) = if rgb {
            (16, (1u32 << shape.depth) - 1)
        } else {
            (u32::from(shape.depth), 0)
        };
        let max_groups = limits.max_compute_workgroups_per_dimension;

        // Per stripe, per dispatch: its parameters (see `Params` in the kernel).
        let mut stripes: Vec<Stripe<Pending>> = Vec::new();
        let mut params: Vec<[u32; 16]> = Vec::new();
        for c0 in (0..ch).step_by(k as usize) {
            let rows = k.min(ch - c0);
            let src_rows = planes.map(|p| shape.src_rows(p, c0, rows));
            let mut push = |entry, plane: usize, bw: u32, bh: u32, out_w: u32, out_rows: u32| {
                let count = out_w * out_rows;
                let p = planes[plane];
                let (src0, src1, src2) = if entry == Entry::Plane {
                    (src_offsets[plane], 0, 0)
                } else {
                    (src_offsets[0], src_offsets[1], src_offsets[2])
                };
                let dst = if entry == Entry::RgbChroma {
                    (dst_offsets[1], dst_offsets[2])
                } else {
                    (dst_offsets[plane], 0)
                };
                params.push([
                    src0 as u32,
                    src1 as u32,
                    src2 as u32,
                    p.width,
                    src_rows[plane].1,
                    bw,
                    bh,
                    (bw * bh).trailing_zeros(),
                    out_w,
                    count,
                    dst.0 as u32,
                    dst.1 as u32,
                    in_bits,
                    u32::from(shape.out_depth),
                    maxv,
                    0,
                ]);
                Pending {
                    entry,
                    uniform: params.len() - 1,
                    groups: groups(u64::from(count).div_ceil(2), max_groups),
                }
            };
            let dispatches = if rgb {
                vec![
                    push(Entry::RgbLuma, 0, f, f, ow, 2 * rows),
                    push(Entry::RgbChroma, 0, 2 * f, 2 * f, cw, rows),
                ]
            } else {
                let chroma = |p: usize| {
                    let (sx, sy) = shape.layout.subsampling(p);
                    ((2 * f) >> sx, (2 * f) >> sy)
                };
                let ((bw1, bh1), (bw2, bh2)) = (chroma(1), chroma(2));
                vec![
                    push(Entry::Plane, 0, f, f, ow, 2 * rows),
                    push(Entry::Plane, 1, bw1, bh1, cw, rows),
                    push(Entry::Plane, 2, bw2, bh2, cw, rows),
                ]
            };
            stripes.push(Stripe {
                src_rows,
                chroma_rows: (c0, rows),
                dispatches,
            });
        }

        guarded(dev, "building the downscale plan", || {
            let storage = |label, words: u64, usage| {
                dev.create_buffer(&wgpu::BufferDescriptor {
                    label: Some(label),
                    size: 4 * words.max(1),
                    usage,
                    mapped_at_creation: false,
                })
            };
            let src = storage(
                "downscale src",
                src_words,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            );
            let dst = storage(
                "downscale dst",
                dst_words,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            );
            let read = storage(
                "downscale read",
                dst_words,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let mut bytes = vec![0u8; params.len() * UNIFORM_STRIDE as usize];
            for (i, u) in params.iter().enumerate() {
                let at = i * UNIFORM_STRIDE as usize;
                bytes[at..at + PARAMS_BYTES as usize].copy_from_slice(bytemuck::cast_slice(u));
            }
            let uniforms = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("downscale params"),
                contents: &bytes,
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let bind = |u: usize| {
                dev.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: None,
                    layout: &self.kernel.layout,
                    entries: &[
                        wgpu::BindGroupEntry {
                            binding: 0,
                            resource: src.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 1,
                            resource: dst.as_entire_binding(),
                        },
                        wgpu::BindGroupEntry {
                            binding: 2,
                            resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                                buffer: &uniforms,
                                offset: u as u64 * UNIFORM_STRIDE,
                                size: wgpu::BufferSize::new(PARAMS_BYTES),
                            }),
                        },
                    ],
                })
            };
            let stripes = stripes
                .into_iter()
                .map(|s| Stripe {
                    src_rows: s.src_rows,
                    chroma_rows: s.chroma_rows,
                    dispatches: s
                        .dispatches
                        .into_iter()
                        .map(|d| Dispatch {
                            entry: d.entry,
                            bind: bind(d.uniform),
                            groups: d.groups,
                        })
                        .collect(),
                })
                .collect();
            Plan {
                shape,
                src,
                src_offsets,
                dst,
                dst_offsets,
                read,
                stripes,
                _uniforms: uniforms,
            }
        })
        .map_err(Av1Error::from)
    }

    /// Upload one stripe's source rows, run its dispatches, and copy its
    /// output rows into `planes`.
    fn run_stripe(
        &self,
        plan: &Plan,
        stripe: &Stripe,
        pic: &Picture,
        planes: &mut [Vec<u16>],
    ) -> Result<(), Av1Error> {
        let (dev, queue) = (&self.ctx.device, &self.ctx.queue);
        guarded(dev, "running the downscale kernel", || {
            for (p, &(first, rows)) in stripe.src_rows.iter().enumerate() {
                let (w, _) = pic.plane_dims(p);
                let (a, b) = (
                    first as usize * w as usize,
                    (first + rows) as usize * w as usize,
                );
                let bytes: &[u8] = bytemuck::cast_slice(&pic.planes()[p][a..b]);
                let at = 4 * plan.src_offsets[p];
                let even = bytes.len() & !3;
                if even > 0 {
                    queue.write_buffer(&plan.src, at, &bytes[..even]);
                }
                if even < bytes.len() {
                    let mut tail = [0u8; 4];
                    tail[..bytes.len() - even].copy_from_slice(&bytes[even..]);
                    queue.write_buffer(&plan.src, at + even as u64, &tail);
                }
            }
            let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("downscale"),
            });
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                for d in &stripe.dispatches {
                    pass.set_pipeline(&self.kernel.pipelines[d.entry as usize].1);
                    pass.set_bind_group(0, &d.bind, &[]);
                    pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
                }
            }
            enc.copy_buffer_to_buffer(&plan.dst, 0, &plan.read, 0, plan.dst.size());
            queue.submit([enc.finish()]);
        })?;

        read_mapped(dev, &plan.read, plan.read.size(), |view| {
            let (ow, _) = plan.shape.out_dims();
            let (c0, rows) = stripe.chroma_rows;
            // Luma: rows 2*c0.. of width ow; chroma: rows c0.. of width ow/2.
            let spans = [
                (ow as usize, 2 * c0 as usize, 2 * rows as usize),
                (ow as usize / 2, c0 as usize, rows as usize),
                (ow as usize / 2, c0 as usize, rows as usize),
            ];
            for ((out, (w, first, rows)), &off) in
                planes.iter_mut().zip(spans).zip(&plan.dst_offsets)
            {
                let out = &mut out[first * w..(first + rows) * w];
                let at = 4 * off as usize;
                let bytes = &view[at..at + 2 * out.len()];
                for (o, b) in out.iter_mut().zip(bytes.chunks_exact(2)) {
                    *o = u16::from_le_bytes([b[0], b[1]]);
                }
            }
        })?;
        Ok(())
    }
}
