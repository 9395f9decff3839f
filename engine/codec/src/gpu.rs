//! The GPU backend: the kernels of `med8k-shaders` driven through wgpu.
//!
//! A [`GpuContext`] holds the device and queue; [`GpuCodec`] compiles the
//! kernels once and, per picture shape, builds a [`Plan`]: every buffer and
//! every dispatch with its parameters, recorded again for each frame without
//! allocating. Only compressed bytes (encode) or samples (decode) come back;
//! a frame already on the GPU can be encoded from its buffer
//! ([`GpuEncoder::load_resident`]) without any upload.

use std::sync::Arc;

use wgpu::util::DeviceExt;

use super::geometry::{Block, Geometry};
use super::steps::{GPU_TABLE_STRIDE, MAX_TABLES};
use super::stream::{self, Header};
use super::{Coded, DecodeError, EncodeBackend, EncodeError, Params, Steps};
use med8k_gpu::{
    Bind, GpuContext, GpuError, Kernel, ReadBack, Resident, SampleLayout, WORKGROUP, groups,
    read_mapped, storage_buffer, write_samples,
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

/// An [`EncodeBackend`] on the GPU.
///
/// A picture too large for the device's buffers (8K on lavapipe, whose
/// storage bindings stop at 128 MiB) is coded in stripes of whole slices,
/// one after the other; slices are independent, so the bytes are the same.
#[derive(Debug)]
pub struct GpuEncoder {
    codec: GpuCodec,
    stripes: Vec<Stripe>,
    resident: Option<usize>,
}

/// A run of whole slices coded on its own (the whole picture when it fits).
#[derive(Debug)]
struct Stripe {
    first: u32,
    slices: u32,
    /// `None` when the frame was produced on the GPU.
    pic: Option<Picture>,
}

impl GpuEncoder {
    /// An encoder on `ctx`'s device.
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        GpuEncoder {
            codec: GpuCodec::new(ctx),
            stripes: Vec::new(),
            resident: None,
        }
    }

    /// Prepare for pictures of `params` and return the buffer frames are
    /// read from: planes of u16, two per 32-bit word, each plane starting on
    /// a word. A producer on the GPU writes frames there and calls
    /// [`load_resident`](Self::load_resident) instead of uploading.
    pub fn input_buffer(&mut self, params: &Params) -> Result<&wgpu::Buffer, EncodeError> {
        Ok(&self
            .codec
            .plan_for(params)
            .map_err(EncodeError::from)?
            .samples)
    }

    /// True when the loaded picture was too big for the device's bindings
    /// and is coded in stripes (it cannot be resident then).
    pub fn is_striped(&self) -> bool {
        self.stripes.len() > 1
    }

    /// The loaded picture's samples, still on the GPU in the codec's input
    /// layout, and where its planes lie; `None` before a load and when the
    /// picture is [striped](Self::is_striped).
    ///
    /// The forward transforms read this buffer and write only coefficients,
    /// and coding does not touch it, so it holds the picture from
    /// [`load`](EncodeBackend::load) (or [`load_resident`](Self::load_resident))
    /// until the next one: a detector can make its input from it
    /// (`med8k_detect::gpu_input`) before or after the encode. The buffer
    /// belongs to this encoder's device ([`context`](Self::context)).
    pub fn resident_input(&self) -> Option<(&wgpu::Buffer, SampleLayout)> {
        if self.stripes.len() != 1 || self.resident != Some(0) {
            return None;
        }
        let plan = self.codec.plan.as_ref()?;
        let p = plan.params;
        Some((
            &plan.samples,
            SampleLayout {
                layout: p.layout,
                width: p.width,
                height: p.height,
                bit_depth: p.bit_depth,
            },
        ))
    }

    /// The context the encoder runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        self.codec.context()
    }

    /// Transform the frame already in [`input_buffer`](Self::input_buffer).
    pub fn load_resident(&mut self, params: &Params) -> Result<(), EncodeError> {
        self.codec.plan_for(params).map_err(EncodeError::from)?;
        self.stripes = vec![Stripe {
            first: 0,
            slices: params.height.div_ceil(params.slice_height),
            pic: None,
        }];
        self.resident = Some(0);
        let codec = &self.codec;
        let plan = codec.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
        codec.run(&plan.forward.iter().collect::<Vec<_>>(), |_| {});
        Ok(())
    }

    /// Make stripe `i` the one in the GPU's buffers.
    fn make_resident(&mut self, i: usize, geom: &Geometry) -> Result<(), EncodeError> {
        if self.resident == Some(i) {
            return Ok(());
        }
        let stripe = self
            .stripes
            .get(i)
            .ok_or(GpuError::Internal("no picture loaded"))?;
        let pic = stripe
            .pic
            .as_ref()
            .ok_or(GpuError::Internal("the resident frame was replaced"))?;
        let params = params_of(pic, geom);
        self.codec.plan_for(&params).map_err(EncodeError::from)?;
        let codec = &self.codec;
        let plan = codec.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
        codec.upload(plan, pic);
        codec.run(&plan.forward.iter().collect::<Vec<_>>(), |_| {});
        self.resident = Some(i);
        Ok(())
    }
}

fn params_of(pic: &Picture, geom: &Geometry) -> Params {
    Params {
        layout: pic.layout(),
        width: pic.width(),
        height: pic.height(),
        bit_depth: pic.bit_depth(),
        levels: geom.levels,
        slice_height: geom.slice_height,
        lossless: true,
    }
}

impl EncodeBackend for GpuEncoder {
    fn resident(&self) -> Option<Resident<'_>> {
        let (samples, layout) = self.resident_input()?;
        Some(Resident {
            ctx: self.codec.context(),
            samples,
            layout,
        })
    }

    fn on_gpu(&self) -> bool {
        true
    }

    fn load(&mut self, pic: &Picture, geom: &Geometry) -> Result<(), EncodeError> {
        let params = params_of(pic, geom);
        let limit = self
            .codec
            .ctx
            .device
            .limits()
            .max_storage_buffer_binding_size;
        let parts = stripes(&params, limit);
        self.stripes.clear();
        self.resident = None;
        if parts.len() == 1 {
            // The whole picture fits: upload it straight from the caller's planes.
            self.codec.plan_for(&params).map_err(EncodeError::from)?;
            let codec = &self.codec;
            let plan = codec.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
            codec.upload(plan, pic);
            codec.run(&plan.forward.iter().collect::<Vec<_>>(), |_| {});
            self.stripes.push(Stripe {
                first: 0,
                slices: geom.slices,
                pic: None,
            });
            self.resident = Some(0);
            return Ok(());
        } else {
            for (first, n) in parts {
                let sub = stripe_of(pic, geom.slice_height, first, n).map_err(EncodeError::from)?;
                self.stripes.push(Stripe {
                    first,
                    slices: n,
                    pic: Some(sub),
                });
            }
        }
        self.make_resident(0, geom)
    }

    fn block_words(
        &mut self,
        geom: &Geometry,
        table: &[u32],
        slices: &[u32],
    ) -> Result<Vec<u32>, EncodeError> {
        let mut out = Vec::new();
        for i in 0..self.stripes.len() {
            let (first, n) = (self.stripes[i].first, self.stripes[i].slices);
            let local: Vec<u32> = slices
                .iter()
                .filter(|&&s| s >= first && s < first + n)
                .map(|&s| s - first)
                .collect();
            if local.is_empty() {
                continue;
            }
            self.make_resident(i, geom)?;
            let uniform = Steps::uniform(table.to_vec(), n);
            out.extend(self.stripe_block_words(&uniform, &local)?);
        }
        Ok(out)
    }

    fn encode(&mut self, geom: &Geometry, steps: &Steps) -> Result<Coded, EncodeError> {
        let mut coded = Coded::default();
        for i in 0..self.stripes.len() {
            self.make_resident(i, geom)?;
            let (first, n) = (self.stripes[i].first, self.stripes[i].slices);
            let part = self.stripe_encode(&steps.stripe(first, n))?;
            coded.payload.extend_from_slice(&part.payload);
            coded.slice_lens.extend_from_slice(&part.slice_lens);
        }
        Ok(coded)
    }
}

impl GpuEncoder {
    /// The resident stripe's plan, with `steps` uploaded for its slices.
    fn plan_with_steps(&self, steps: &Steps) -> Result<(&GpuCodec, &Plan), EncodeError> {
        let codec = &self.codec;
        let plan = codec
            .plan
            .as_ref()
            .ok_or(GpuError::Internal("load first"))?;
        codec
            .ctx
            .queue
            .write_buffer(&plan.steps, 0, bytemuck::cast_slice(&steps.gpu_words()));
        Ok((codec, plan))
    }

    /// Block sizes of the resident stripe's `slices` (numbered within the stripe).
    fn stripe_block_words(
        &mut self,
        steps: &Steps,
        slices: &[u32],
    ) -> Result<Vec<u32>, EncodeError> {
        let (codec, plan) = self.plan_with_steps(steps)?;
        let geom = &plan.geom;
        let nb = geom.blocks.len() as u64;
        codec.run(&plan.measure.iter().collect::<Vec<_>>(), |enc| {
            enc.copy_buffer_to_buffer(&plan.lens, 0, &plan.small_read, 0, 4 * nb.max(1));
        });
        let bytes = codec
            .read(&plan.small_read, 4 * nb)
            .map_err(EncodeError::from)?;
        let lens: &[u32] = bytemuck::cast_slice(&bytes);
        Ok(slices
            .iter()
            .flat_map(|&s| {
                let (a, b) = (
                    geom.slice_blocks[s as usize] as usize,
                    geom.slice_blocks[s as usize + 1] as usize,
                );
                lens[a..b].iter().copied()
            })
            .collect())
    }

    /// Code the resident stripe.
    fn stripe_encode(&mut self, steps: &Steps) -> Result<Coded, EncodeError> {
        let (codec, plan) = self.plan_with_steps(steps)?;
        let geom = &plan.geom;
        let nb = geom.blocks.len() as u64;
        let all: Vec<&Dispatch> = plan.write.iter().chain(&plan.gather).collect();
        codec.run(&all, |enc| {
            enc.copy_buffer_to_buffer(&plan.lens, 0, &plan.small_read, 0, 4 * nb.max(1));
            enc.copy_buffer_to_buffer(&plan.offs, 4 * nb, &plan.small_read, 4 * nb, 4);
        });
        let bytes = codec
            .read(&plan.small_read, 4 * nb + 4)
            .map_err(EncodeError::from)?;
        let words: &[u32] = bytemuck::cast_slice(&bytes);
        let (lens, total) = (&words[..nb as usize], u64::from(words[nb as usize]));
        let payload = codec
            .read_back(&plan.out, 0, 4 * total)
            .map_err(EncodeError::from)?;
        let slice_lens = (0..geom.slices)
            .map(|s| {
                let (a, b) = (
                    geom.slice_blocks[s as usize] as usize,
                    geom.slice_blocks[s as usize + 1] as usize,
                );
                let w: u32 = lens[a..b].iter().sum::<u32>() + ((b - a) as u32).div_ceil(2);
                4 * w
            })
            .collect::<Vec<u32>>();
        let sum: u64 = slice_lens.iter().map(|&l| u64::from(l)).sum();
        if sum != 4 * total {
            return Err(GpuError::Inconsistent(format!(
                "gathered {} bytes but the block lengths add up to {sum}",
                4 * total
            ))
            .into());
        }
        Ok(Coded {
            payload,
            slice_lens,
        })
    }
}

/// Decodes bitstreams on the GPU.
#[derive(Debug)]
pub struct GpuDecoder {
    codec: GpuCodec,
}

impl GpuDecoder {
    /// A decoder on `ctx`'s device.
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        GpuDecoder {
            codec: GpuCodec::new(ctx),
        }
    }

    /// Decode one bitstream, refusing pictures above `max_samples`.
    pub fn decode(&mut self, data: &[u8], max_samples: u64) -> Result<Picture, DecodeError> {
        let header = stream::read_header(data, max_samples)?;
        let params = header.params;
        let limit = self
            .codec
            .ctx
            .device
            .limits()
            .max_storage_buffer_binding_size;
        let parts = stripes(&params, limit);
        if parts.len() == 1 {
            return self.decode_whole(data, &header);
        }
        // Too big for the device at once: decode stripes of slices as streams of their own.
        let mut pic = Picture::zeroed(params.layout, params.width, params.height, params.bit_depth)
            .map_err(|e| GpuError::Inconsistent(e.to_string()))?;
        let starts: Vec<usize> = header
            .slices
            .iter()
            .scan(header.len, |at, &(len, _)| {
                let s = *at;
                *at += len as usize;
                Some(s)
            })
            .collect();
        for (first, n) in parts {
            let y0 = first * params.slice_height;
            let rows = (n * params.slice_height).min(params.height - y0);
            let sub = Params {
                height: rows,
                ..params
            };
            let table = &header.slices[first as usize..(first + n) as usize];
            let mut bytes = Vec::new();
            stream::write_header(&sub, &header.steps.stripe(first, n), table, &mut bytes);
            let a = starts[first as usize];
            let b = starts[(first + n - 1) as usize] + table[n as usize - 1].0 as usize;
            bytes.extend_from_slice(&data[a..b]);
            let sub_header = stream::read_header(&bytes, max_samples)?;
            let part = self
                .decode_whole(&bytes, &sub_header)
                .map_err(|e| match e {
                    DecodeError::SliceCrc { slice } => DecodeError::SliceCrc {
                        slice: slice + first,
                    },
                    DecodeError::Slice { slice, reason } => DecodeError::Slice {
                        slice: slice + first,
                        reason,
                    },
                    DecodeError::Block {
                        slice,
                        block,
                        error,
                    } => DecodeError::Block {
                        slice: slice + first,
                        block,
                        error,
                    },
                    other => other,
                })?;
            for p in 0..params.layout.plane_count() {
                let (w, _) = pic.plane_dims(p);
                let (_, sy) = params.layout.subsampling(p);
                let at = (y0 >> sy) as usize * w as usize;
                let src = &part.planes()[p];
                pic.planes_mut()[p][at..at + src.len()].copy_from_slice(src);
            }
        }
        Ok(pic)
    }

    fn decode_whole(&mut self, data: &[u8], header: &Header) -> Result<Picture, DecodeError> {
        let params = header.params;
        self.codec.plan_for(&params).map_err(DecodeError::from)?;
        let plan = self
            .codec
            .plan
            .as_ref()
            .ok_or(GpuError::Internal("no plan"))?;
        let (offs, lens) = block_offsets(data, header, &plan.geom)?;
        let codec = &mut self.codec;
        let dev = codec.ctx.device.clone();
        let queue = codec.ctx.queue.clone();
        let plan = codec.plan.as_mut().ok_or(GpuError::Internal("no plan"))?;
        let nwords = data.len().div_ceil(4) as u64;
        if plan.words.as_ref().is_none_or(|w| w.size() < 4 * nwords) {
            plan.words = Some(storage_buffer(
                &dev,
                "words",
                4 * nwords.next_power_of_two(),
                wgpu::BufferUsages::empty(),
            ));
            plan.decode_blocks = None;
        }
        let words = plan
            .words
            .as_ref()
            .ok_or(GpuError::Internal("no words buffer"))?;
        let aligned = data.len() & !3;
        queue.write_buffer(words, 0, &data[..aligned]);
        if aligned < data.len() {
            let mut tail = [0u8; 4];
            tail[..data.len() - aligned].copy_from_slice(&data[aligned..]);
            queue.write_buffer(words, aligned as u64, &tail);
        }
        queue.write_buffer(&plan.dec_offs, 0, bytemuck::cast_slice(&offs));
        queue.write_buffer(&plan.lens, 0, bytemuck::cast_slice(&lens));
        queue.write_buffer(
            &plan.steps,
            0,
            bytemuck::cast_slice(&header.steps.gpu_words()),
        );
        queue.write_buffer(&plan.errors, 0, bytemuck::cast_slice(&[u32::MAX, 0]));
        if plan.decode_blocks.is_none() {
            let nb = plan.geom.blocks.len() as u32;
            let params_buf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("decode params"),
                contents: bytemuck::cast_slice(&[nb, 0, 0, 0]),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let bufs = [
                words,
                &plan.blocks,
                &plan.steps,
                &plan.dec_offs,
                &plan.lens,
                &plan.coef,
                &plan.errors,
            ];
            let mut entries: Vec<wgpu::BindGroupEntry<'_>> = bufs
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect();
            entries.push(wgpu::BindGroupEntry {
                binding: 7,
                resource: params_buf.as_entire_binding(),
            });
            let bind = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("decode"),
                layout: &codec.kernels.decode.layout,
                entries: &entries,
            });
            plan.decode_blocks = Some(Dispatch {
                kernel: |k| &k.decode,
                entry: "decode",
                bind,
                groups: groups_1d(u64::from(nb)),
            });
        }
        let codec = &self.codec;
        let plan = codec.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
        let mut all: Vec<&Dispatch> = plan.decode_blocks.iter().collect();
        all.extend(plan.inverse.iter());
        codec.run(&all, |_| {});
        let err = codec
            .read_back(&plan.errors, 0, 8)
            .map_err(DecodeError::from)?;
        let err: &[u32] = bytemuck::cast_slice(&err);
        if err[1] > 0 {
            let b = &plan.geom.blocks[err[0] as usize];
            let first = plan.geom.slice_blocks[b.slice as usize];
            return Err(DecodeError::Block {
                slice: b.slice,
                block: err[0] - first,
                error: super::entropy::BlockError::Overrun,
            });
        }
        let total: u64 = plan.plane_words.iter().sum();
        // One copy, from the mapped staging buffer straight into the planes.
        let planes = codec
            .read_back_with(&plan.samples, 0, 4 * total, |bytes| {
                let mut planes = Vec::with_capacity(plan.geom.planes.len());
                let mut at = 0usize;
                for (g, words) in plan.geom.planes.iter().zip(&plan.plane_words) {
                    let n = g.width as usize * g.height as usize;
                    planes.push(
                        bytes[2 * at..2 * (at + n)]
                            .chunks_exact(2)
                            .map(|b| u16::from_le_bytes([b[0], b[1]]))
                            .collect::<Vec<u16>>(),
                    );
                    at += 2 * *words as usize;
                }
                planes
            })
            .map_err(DecodeError::from)?;
        Picture::new(
            params.layout,
            params.width,
            params.height,
            params.bit_depth,
            planes,
        )
        .map_err(|e| GpuError::Inconsistent(format!("decoded picture: {e}")).into())
    }
}

/// Check every slice (CRC, block table) and find each block's first word in
/// the stream and its length.
fn block_offsets(
    data: &[u8],
    header: &Header,
    geom: &Geometry,
) -> Result<(Vec<u32>, Vec<u32>), DecodeError> {
    let mut offs = Vec::with_capacity(geom.blocks.len());
    let mut lens = Vec::with_capacity(geom.blocks.len());
    let mut at = header.len;
    for (s, &(len, crc)) in header.slices.iter().enumerate() {
        let bytes = &data[at..at + len as usize];
        if crc32fast::hash(bytes) != crc {
            return Err(DecodeError::SliceCrc { slice: s as u32 });
        }
        let (l, _) = stream::split_slice(s as u32, bytes, geom)?;
        let mut word = (at + 2 * l.len().next_multiple_of(2)) / 4;
        for n in l {
            offs.push(word as u32);
            lens.push(n);
            word += n as usize;
        }
        at += len as usize;
    }
    Ok((offs, lens))
}

// The kernels read blocks as eight u32s.
const _: () = assert!(std::mem::size_of::<Block>() == 32);
