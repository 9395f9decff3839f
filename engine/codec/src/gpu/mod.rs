//! The GPU backend: the kernels of `med8k-shaders` driven through wgpu.
//!
//! A [`GpuContext`] holds the device and queue; [`GpuCodec`] compiles the
//! kernels once and, per picture shape, builds a [`Plan`]: every buffer and
//! every dispatch with its parameters, recorded again for each frame without
//! allocating. Only compressed bytes (encode) or samples (decode) come back;
//! a frame already on the GPU can be encoded from its buffer
//! ([`GpuEncoder::load_resident`]) without any upload.

mod decode;
mod encode;

use std::sync::Arc;

use wgpu::util::DeviceExt;

use crate::Params;
use crate::geometry::Geometry;
use crate::steps::{GPU_TABLE_STRIDE, MAX_TABLES};
use med8k_gpu::{
    Bind, GpuContext, GpuError, Kernel, ReadBack, WORKGROUP, groups, read_mapped, storage_buffer,
    write_samples,
};
use med8k_media::picture::{Layout, Picture, PictureError};

const MAX_GROUPS: u32 = 65535;
const UNIFORM_STRIDE: u64 = 256;
/// Most bands the GPU's inter-band transform takes.
pub const GPU_MAX_BANDS: u16 = 64;

/// The compiled kernels.
#[derive(Debug)]
struct Kernels {
    components: Kernel,
    wavelet: Kernel,
    encode: Kernel,
    decode: Kernel,
    compact: Kernel,
}

/// A dispatch before its bind group exists: kernel, entry, uniform slot,
/// buffers, workgroups, stage (0 forward, 1 inverse).
type Pending<'a> = (
    fn(&Kernels) -> &Kernel,
    &'static str,
    usize,
    Vec<&'a wgpu::Buffer>,
    (u32, u32),
    u8,
);

/// One dispatch of a plan.
struct Dispatch {
    kernel: fn(&Kernels) -> &Kernel,
    entry: &'static str,
    bind: wgpu::BindGroup,
    groups: (u32, u32),
}

/// Buffers and dispatches for one picture shape.
pub struct Plan {
    params: Params,
    geom: Geometry,
    samples: wgpu::Buffer,
    plane_words: Vec<u64>,
    coef: wgpu::Buffer,
    _tmp: wgpu::Buffer,
    blocks: wgpu::Buffer,
    steps: wgpu::Buffer,
    lens: wgpu::Buffer,
    offs: wgpu::Buffer,
    out: wgpu::Buffer,
    small_read: wgpu::Buffer,
    words: Option<wgpu::Buffer>,
    dec_offs: wgpu::Buffer,
    errors: wgpu::Buffer,
    forward: Vec<Dispatch>,
    measure: Vec<Dispatch>,
    write: Vec<Dispatch>,
    gather: Vec<Dispatch>,
    inverse: Vec<Dispatch>,
    decode_blocks: Option<Dispatch>,
    _uniforms: wgpu::Buffer,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("params", &self.params)
            .field("blocks", &self.geom.blocks.len())
            .finish()
    }
}

/// The largest buffer `geom` needs when it is above `limit` bytes.
fn oversize(geom: &Geometry, limit: u64) -> Option<u64> {
    let table: u64 = (0..geom.slices)
        .map(|s| (geom.slice(s).len() as u64).div_ceil(2))
        .sum();
    let biggest = (4 * geom.coefficients as u64).max(4 * (geom.scratch_words as u64 + table));
    (biggest > limit).then_some(biggest)
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
        if oversize(&sub.geometry(), limit).is_none() {
            break;
        }
        per = per.div_ceil(2);
    }
    (0..total)
        .step_by(per as usize)
        .map(|s| (s, per.min(total - s)))
        .collect()
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

/// Workgroups for `n` threads within the dispatch limit.
fn groups_1d(n: u64) -> (u32, u32) {
    groups(n, MAX_GROUPS)
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
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        let kernels = ctx.cached(Kernels::compile);
        GpuCodec {
            ctx,
            kernels,
            plan: None,
            read_back: ReadBack::new(),
        }
    }
}

impl Kernels {
    fn compile(dev: &wgpu::Device) -> Self {
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
                &[
                    "fwd_rows_hi",
                    "fwd_rows_lo",
                    "fwd_cols_hi",
                    "fwd_cols_lo",
                    "inv_cols_lo",
                    "inv_cols_hi",
                    "inv_rows_lo",
                    "inv_rows_hi",
                ],
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
                    Uniform,
                ],
                &["decode"],
            ),
            compact: Kernel::new(
                dev,
                "compact",
                med8k_shaders::COMPACT,
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
        }
    }
}

impl GpuCodec {
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
            self.plan = Some(self.build_plan(params)?);
        }
        self.plan.as_mut().ok_or(GpuError::Internal("no plan"))
    }

    fn build_plan(&self, params: &Params) -> Result<Plan, GpuError> {
        if let Layout::Bands(n) = params.layout
            && n > GPU_MAX_BANDS
        {
            return Err(GpuError::TooLarge(format!(
                "the GPU codes at most {GPU_MAX_BANDS} bands, this cube has {n}"
            )));
        }
        let dev = &self.ctx.device;
        let geom = params.geometry();
        let max = dev.limits().max_storage_buffer_binding_size;
        if let Some(bytes) = oversize(&geom, max) {
            return Err(GpuError::TooLarge(format!(
                "{bytes} bytes of buffers needed, above the adapter's storage binding limit of {max}"
            )));
        }
        let coef_bytes = 4 * geom.coefficients as u64;
        let scratch_bytes = 4 * geom.scratch_words as u64;
        let nb = geom.blocks.len() as u64;
        let plane_words: Vec<u64> = geom
            .planes
            .iter()
            .map(|p| (u64::from(p.width) * u64::from(p.height)).div_ceil(2))
            .collect();
        let sample_words: u64 = plane_words.iter().sum();
        let table_words: u64 = (0..geom.slices)
            .map(|s| (geom.slice(s).len() as u64).div_ceil(2))
            .sum();
        let map_read = wgpu::BufferUsages::empty();
        let samples = storage_buffer(dev, "samples", 4 * sample_words, map_read);
        let coef = storage_buffer(dev, "coef", coef_bytes, map_read);
        let tmp = storage_buffer(dev, "tmp", coef_bytes, map_read);
        let blocks = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("blocks"),
            contents: bytemuck::cast_slice(&geom.blocks),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let slice_first = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("slice_first"),
            contents: bytemuck::cast_slice(&geom.slice_blocks),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let steps = storage_buffer(
            dev,
            "steps",
            4 * (MAX_TABLES * GPU_TABLE_STRIDE) as u64 + 4 * u64::from(geom.slices),
            map_read,
        );
        let scratch = storage_buffer(dev, "scratch", scratch_bytes, map_read);
        let lens = storage_buffer(dev, "lens", 4 * nb, map_read);
        let offs = storage_buffer(dev, "offs", 4 * (nb + 1), map_read);
        let out = storage_buffer(
            dev,
            "out",
            4 * (geom.scratch_words as u64 + table_words),
            map_read,
        );
        let dec_offs = storage_buffer(dev, "dec_offs", 4 * nb, map_read);
        let errors = storage_buffer(dev, "errors", 8, map_read);
        let small_read = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("small_read"),
            size: (8 * (nb + 1)).max(8),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        // Every dispatch's parameters, 256 bytes apart in one uniform buffer.
        let mut uniforms: Vec<[u32; 8]> = Vec::new();
        let mut pending: Vec<Pending<'_>> = Vec::new();
        let shift = 1u32 << (params.bit_depth - 1);
        let maxv = (1u32 << params.bit_depth) - 1;
        let comp: fn(&Kernels) -> &Kernel = |k| &k.components;
        let wav: fn(&Kernels) -> &Kernel = |k| &k.wavelet;
        // Component kernels bind the samples and the coefficients, wavelet
        // kernels the coefficients and the scratch plane. Stage 0 is forward, 1 inverse.
        let (components, wavelet) = (false, true);
        let mut push = |kernel, entry, u: [u32; 8], on_tmp: bool, groups, stage| {
            uniforms.push(u);
            let bufs = if on_tmp {
                vec![&coef, &tmp]
            } else {
                vec![&samples, &coef]
            };
            pending.push((kernel, entry, uniforms.len() - 1, bufs, groups, stage));
        };
        // Per plane: its first sample in `samples` (planes start on a word) and its size.
        let mut plane_src = Vec::with_capacity(geom.planes.len());
        let mut words = 0u64;
        for w in &plane_words {
            plane_src.push(2 * words);
            words += w;
        }
        let plane_u = |p: usize| {
            let g = &geom.planes[p];
            let count = u64::from(g.width) * u64::from(g.height);
            let u = [
                count as u32,
                plane_src[p] as u32,
                g.offset as u32,
                shift,
                maxv,
                0,
                0,
                0,
            ];
            (u, count)
        };
        let n0 = u64::from(geom.planes[0].width) * u64::from(geom.planes[0].height);
        let colour = match params.layout {
            Layout::Rgb | Layout::Rgba => Some(("forward_rct", "inverse_rct", 0)),
            Layout::Bands(n) => Some(("forward_bands", "inverse_bands", u32::from(n))),
            _ => None,
        };
        let colour_u = |bands| [n0 as u32, 0, 0, shift, maxv, bands, 0, 0];
        // One level of one plane: parameters and workgroups for rows and for columns.
        let level = |g: &super::geometry::PlaneGeom, l: u8| {
            let mut w = g.width;
            for _ in 0..l {
                w = w.div_ceil(2);
            }
            let u = [
                g.offset as u32,
                g.width,
                w,
                g.slice_rows,
                g.height,
                u32::from(l),
                0,
                0,
            ];
            let rows = (w.div_ceil(2).div_ceil(WORKGROUP).max(1), g.height);
            let cols = (w.div_ceil(WORKGROUP).max(1), g.height);
            (u, rows, cols)
        };

        // Forward: planes in, colour, then the wavelet level by level.
        for p in 0..geom.planes.len() {
            let (u, count) = plane_u(p);
            push(comp, "forward_plane", u, components, groups_1d(count), 0);
        }
        if let Some((entry, _, bands)) = colour {
            push(comp, entry, colour_u(bands), components, groups_1d(n0), 0);
        }
        for g in &geom.planes {
            for l in 0..params.levels {
                let (u, rows, cols) = level(g, l);
                for (entry, dims) in [
                    ("fwd_rows_hi", rows),
                    ("fwd_rows_lo", rows),
                    ("fwd_cols_hi", cols),
                    ("fwd_cols_lo", cols),
                ] {
                    push(wav, entry, u, wavelet, dims, 0);
                }
            }
        }
        // Inverse: the wavelet from the coarsest level, colour, planes out.
        for g in &geom.planes {
            for l in (0..params.levels).rev() {
                let (u, rows, cols) = level(g, l);
                for (entry, dims) in [
                    ("inv_cols_lo", cols),
                    ("inv_cols_hi", cols),
                    ("inv_rows_lo", rows),
                    ("inv_rows_hi", rows),
                ] {
                    push(wav, entry, u, wavelet, dims, 1);
                }
            }
        }
        if let Some((_, entry, bands)) = colour {
            push(comp, entry, colour_u(bands), components, groups_1d(n0), 1);
        }
        for p in 0..geom.planes.len() {
            let (u, count) = plane_u(p);
            push(
                comp,
                "inverse_plane",
                u,
                components,
                groups_1d(count.div_ceil(2)),
                1,
            );
        }
        // Entropy and compaction parameters.
        let measure_u = uniforms.len();
        uniforms.push([nb as u32, 0, 0, 0, 0, 0, 0, 0]);
        let write_u = uniforms.len();
        uniforms.push([nb as u32, 1, 0, 0, 0, 0, 0, 0]);
        let compact_u = uniforms.len();
        uniforms.push([nb as u32, geom.slices, 0, 0, 0, 0, 0, 0]);

        let mut bytes = vec![0u8; uniforms.len() * UNIFORM_STRIDE as usize];
        for (i, u) in uniforms.iter().enumerate() {
            let at = i * UNIFORM_STRIDE as usize;
            bytes[at..at + 32].copy_from_slice(bytemuck::cast_slice(u));
        }
        let ubuf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("params"),
            contents: &bytes,
            usage: wgpu::BufferUsages::UNIFORM,
        });
        let bind = |kernel: &Kernel, bufs: &[&wgpu::Buffer], u: usize| -> wgpu::BindGroup {
            let mut entries: Vec<wgpu::BindGroupEntry<'_>> = bufs
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect();
            entries.push(wgpu::BindGroupEntry {
                binding: bufs.len() as u32,
                resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                    buffer: &ubuf,
                    offset: u as u64 * UNIFORM_STRIDE,
                    size: wgpu::BufferSize::new(32),
                }),
            });
            dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: None,
                layout: &kernel.layout,
                entries: &entries,
            })
        };
        let mut forward = Vec::new();
        let mut inverse = Vec::new();
        for (kernel, entry, u, bufs, groups, stage) in pending {
            let d = Dispatch {
                kernel,
                entry,
                bind: bind(kernel(&self.kernels), &bufs, u),
                groups,
            };
            if stage == 0 {
                forward.push(d);
            } else {
                inverse.push(d);
            }
        }
        let block_groups = groups_1d(nb);
        let enc: fn(&Kernels) -> &Kernel = |k| &k.encode;
        let cmp: fn(&Kernels) -> &Kernel = |k| &k.compact;
        let entropy = |u: usize| Dispatch {
            kernel: enc,
            entry: "encode",
            bind: bind(
                &self.kernels.encode,
                &[&coef, &blocks, &steps, &scratch, &lens],
                u,
            ),
            groups: block_groups,
        };
        let measure = vec![entropy(measure_u)];
        let write = vec![entropy(write_u)];
        let compact_bufs = [&blocks, &lens, &slice_first, &offs, &scratch, &out];
        let per_block = {
            let x = nb.clamp(1, u64::from(MAX_GROUPS)) as u32;
            (x, nb.max(1).div_ceil(u64::from(x)) as u32)
        };
        let gather = vec![
            Dispatch {
                kernel: cmp,
                entry: "scan",
                bind: bind(&self.kernels.compact, &compact_bufs, compact_u),
                groups: (1, 1),
            },
            Dispatch {
                kernel: cmp,
                entry: "gather",
                bind: bind(&self.kernels.compact, &compact_bufs, compact_u),
                groups: per_block,
            },
        ];
        Ok(Plan {
            params: *params,
            geom,
            samples,
            plane_words,
            coef,
            _tmp: tmp,
            blocks,
            steps,
            lens,
            offs,
            out,
            small_read,
            words: None,
            dec_offs,
            errors,
            forward,
            measure,
            write,
            gather,
            inverse,
            decode_blocks: None,
            _uniforms: ubuf,
        })
    }

    fn run(&self, dispatches: &[&Dispatch], copies: impl FnOnce(&mut wgpu::CommandEncoder)) {
        let mut enc = self
            .ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            for d in dispatches {
                pass.set_pipeline((d.kernel)(&self.kernels).pipeline(d.entry));
                pass.set_bind_group(0, &d.bind, &[]);
                pass.dispatch_workgroups(d.groups.0, d.groups.1, 1);
            }
        }
        copies(&mut enc);
        self.ctx.queue.submit([enc.finish()]);
    }

    fn read(&self, buf: &wgpu::Buffer, bytes: u64) -> Result<Vec<u8>, GpuError> {
        read_mapped(&self.ctx.device, buf, bytes, <[u8]>::to_vec)
    }

    fn read_back(&self, src: &wgpu::Buffer, offset: u64, bytes: u64) -> Result<Vec<u8>, GpuError> {
        self.read_back_with(src, offset, bytes, <[u8]>::to_vec)
    }

    /// Copy `bytes` of `src` from `offset` into the kept staging buffer and
    /// hand them to `f` while mapped.
    fn read_back_with<T>(
        &self,
        src: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, GpuError> {
        self.read_back
            .read(&self.ctx.device, &self.ctx.queue, src, offset, bytes, f)
    }

    fn upload(&self, plan: &Plan, pic: &Picture) {
        let mut at = 0u64;
        for (plane, words) in pic.planes().iter().zip(&plan.plane_words) {
            write_samples(&self.ctx.queue, &plan.samples, at, plane);
            at += 4 * words;
        }
    }
}

pub use decode::GpuDecoder;
pub use encode::GpuEncoder;
