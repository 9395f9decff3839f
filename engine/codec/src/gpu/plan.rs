//! A plan: every buffer and every dispatch of one picture shape, built once
//! and recorded again for each frame.

use wgpu::util::DeviceExt;

use super::{
    Dispatch, ENTROPY_LANES, GPU_MAX_BANDS, Kernels, UNIFORM_STRIDE, groups_1d, groups_of,
    one_group_each,
};
use crate::Params;
use crate::geometry::{Geometry, PlaneGeom};
use crate::steps::{GPU_TABLE_STRIDE, MAX_TABLES};
use med8k_gpu::{GpuContext, GpuError, Kernel, WORKGROUP, storage_buffer};
use med8k_media::picture::Layout;

/// The v210 side of a plan (4:2:2 10-bit only): the packed rows and the
/// kernels to and from them.
pub(super) struct V210 {
    /// Packed rows, `row_words` each.
    pub raw: wgpu::Buffer,
    /// Words per packed row.
    pub row_words: u32,
    /// Packed rows to the planar samples.
    pub unpack: Dispatch,
    /// Decoded coefficients to packed rows.
    pub pack: Dispatch,
    _uniform: wgpu::Buffer,
}

/// The decoder's side of a plan: the stream's words and the kernels that
/// read them.
pub(super) struct Words {
    /// The coded slices of a stripe, as they are in the stream.
    pub buf: wgpu::Buffer,
    /// Block offsets and lengths from the slices' tables.
    pub table: Dispatch,
    /// The blocks.
    pub decode: Dispatch,
    _uniform: wgpu::Buffer,
}

/// Buffers and dispatches for one picture shape.
pub(super) struct Plan {
    pub params: Params,
    pub geom: Geometry,
    /// Planar samples, u16 two per word, each plane from a word.
    pub samples: wgpu::Buffer,
    pub plane_words: Vec<u64>,
    pub coef: wgpu::Buffer,
    pub steps: wgpu::Buffer,
    pub lens: wgpu::Buffer,
    pub offs: wgpu::Buffer,
    /// The head (payload words, then each slice's) and the coded slices.
    pub out: wgpu::Buffer,
    /// Words of the head of `out`.
    pub head_words: u32,
    /// Decode errors: see entropy_decode.wgsl.
    pub errors: wgpu::Buffer,
    /// Per slice: first word in the stream buffer and bytes after the table.
    pub starts: wgpu::Buffer,
    pub small_read: wgpu::Buffer,
    /// Planes in, colour, the wavelet.
    pub forward: Vec<Dispatch>,
    pub measure: Dispatch,
    pub write: Dispatch,
    /// The scan (with the head) and the gathering.
    pub gather: Vec<Dispatch>,
    /// The inverse wavelet and colour.
    pub inverse: Vec<Dispatch>,
    /// Coefficients to planar samples.
    pub to_samples: Vec<Dispatch>,
    pub v210: Option<V210>,
    pub words: Option<Words>,
    tmp: wgpu::Buffer,
    blocks: wgpu::Buffer,
    order: wgpu::Buffer,
    slice_first: wgpu::Buffer,
    scratch: wgpu::Buffer,
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
pub(super) fn oversize(geom: &Geometry, limit: u64) -> Option<u64> {
    let table: u64 = (0..geom.slices)
        .map(|s| (geom.slice(s).len() as u64).div_ceil(2))
        .sum();
    let head = u64::from(head_words(geom.slices));
    let biggest =
        (4 * geom.coefficients as u64).max(4 * (geom.scratch_words as u64 + table + head));
    (biggest > limit).then_some(biggest)
}

/// Words of the head of `out`: the payload's words and each slice's,
/// rounded up to 16 bytes.
pub(super) fn head_words(slices: u32) -> u32 {
    (1 + slices).next_multiple_of(4)
}

/// A buffer of `bytes`, or `reuse`'s own when that is big enough (the
/// stripes of one picture share their buffers).
fn buffer(
    dev: &wgpu::Device,
    reuse: Option<&wgpu::Buffer>,
    label: &str,
    bytes: u64,
) -> wgpu::Buffer {
    match reuse {
        Some(b) if b.size() >= bytes.max(4) => b.clone(),
        _ => storage_buffer(dev, label, bytes, wgpu::BufferUsages::empty()),
    }
}

/// A dispatch before its bind group exists: kernel, entry, uniform slot,
/// buffers, workgroups.
type Pending<'a> = (
    fn(&Kernels) -> &Kernel,
    &'static str,
    usize,
    [&'a wgpu::Buffer; 2],
    (u32, u32),
);

fn bind_with_uniform(
    dev: &wgpu::Device,
    kernel: &Kernel,
    bufs: &[&wgpu::Buffer],
    uniform: &wgpu::Buffer,
    slot: usize,
) -> wgpu::BindGroup {
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
            buffer: uniform,
            offset: slot as u64 * UNIFORM_STRIDE,
            size: wgpu::BufferSize::new(32),
        }),
    });
    dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: None,
        layout: &kernel.layout,
        entries: &entries,
    })
}

fn uniform_buffer(dev: &wgpu::Device, label: &str, slots: &[[u32; 8]]) -> wgpu::Buffer {
    let mut bytes = vec![0u8; slots.len().max(1) * UNIFORM_STRIDE as usize];
    for (i, u) in slots.iter().enumerate() {
        let at = i * UNIFORM_STRIDE as usize;
        bytes[at..at + 32].copy_from_slice(bytemuck::cast_slice(u));
    }
    dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: &bytes,
        usage: wgpu::BufferUsages::UNIFORM,
    })
}

impl Plan {
    /// Every buffer and dispatch for `params`, sharing `reuse`'s buffers
    /// where they are big enough.
    pub fn new(
        ctx: &GpuContext,
        kernels: &Kernels,
        params: &Params,
        reuse: Option<&Plan>,
    ) -> Result<Plan, GpuError> {
        if let Layout::Bands(n) = params.layout
            && n > GPU_MAX_BANDS
        {
            return Err(GpuError::TooLarge(format!(
                "the GPU codes at most {GPU_MAX_BANDS} bands, this cube has {n}"
            )));
        }
        let dev = &ctx.device;
        let geom = params.geometry();
        let max = dev.limits().max_storage_buffer_binding_size;
        if let Some(bytes) = oversize(&geom, max) {
            return Err(GpuError::TooLarge(format!(
                "{bytes} bytes of buffers needed, above the adapter's storage binding limit of {max}"
            )));
        }
        med8k_gpu::guarded(dev, "building a codec plan", || {
            Self::build(ctx, kernels, params, geom, reuse)
        })
    }

    fn build(
        ctx: &GpuContext,
        kernels: &Kernels,
        params: &Params,
        geom: Geometry,
        reuse: Option<&Plan>,
    ) -> Plan {
        let dev = &ctx.device;
        let coef_bytes = 4 * geom.coefficients as u64;
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
        let head = head_words(geom.slices);
        let r = |f: fn(&Plan) -> &wgpu::Buffer| reuse.map(f);
        let samples = buffer(dev, r(|p| &p.samples), "samples", 4 * sample_words);
        let coef = buffer(dev, r(|p| &p.coef), "coef", coef_bytes);
        let tmp = buffer(dev, r(|p| &p.tmp), "tmp", coef_bytes);
        let scratch = buffer(
            dev,
            r(|p| &p.scratch),
            "scratch",
            4 * geom.scratch_words as u64,
        );
        let lens = buffer(dev, r(|p| &p.lens), "lens", 4 * nb);
        let offs = buffer(dev, r(|p| &p.offs), "offs", 4 * (nb + 1));
        let out = buffer(
            dev,
            r(|p| &p.out),
            "out",
            4 * (u64::from(head) + geom.scratch_words as u64 + table_words),
        );
        let steps = storage_buffer(
            dev,
            "steps",
            4 * (MAX_TABLES * GPU_TABLE_STRIDE) as u64 + 4 * u64::from(geom.slices),
            wgpu::BufferUsages::empty(),
        );
        let errors = storage_buffer(dev, "errors", 16, wgpu::BufferUsages::empty());
        let starts = storage_buffer(
            dev,
            "starts",
            8 * u64::from(geom.slices),
            wgpu::BufferUsages::empty(),
        );
        let blocks = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("blocks"),
            contents: bytemuck::cast_slice(&geom.blocks),
            usage: wgpu::BufferUsages::STORAGE,
        });
        // Blocks of one shape side by side, widest first, so that the lanes
        // of a subgroup run the same loops (and the narrow blocks, whose
        // rows live in workgroup memory, come together).
        let mut order: Vec<u32> = (0..nb as u32).collect();
        order.sort_by_key(|&b| {
            let blk = &geom.blocks[b as usize];
            (std::cmp::Reverse(blk.width), std::cmp::Reverse(blk.height))
        });
        let order = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("order"),
            contents: bytemuck::cast_slice(&order),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let slice_first = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("slice_first"),
            contents: bytemuck::cast_slice(&geom.slice_blocks),
            usage: wgpu::BufferUsages::STORAGE,
        });
        let small_read = dev.create_buffer(&wgpu::BufferDescriptor {
            label: Some("small_read"),
            size: (8 * (nb + 1)).max(4 * u64::from(head)).max(8),
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });

        // Every dispatch's parameters, 256 bytes apart in one uniform buffer.
        let mut uniforms: Vec<[u32; 8]> = Vec::new();
        let mut forward: Vec<Pending<'_>> = Vec::new();
        let mut inverse: Vec<Pending<'_>> = Vec::new();
        let mut to_samples: Vec<Pending<'_>> = Vec::new();
        let shift = 1u32 << (params.bit_depth - 1);
        let maxv = (1u32 << params.bit_depth) - 1;
        let comp: fn(&Kernels) -> &Kernel = |k| &k.components;
        let wav: fn(&Kernels) -> &Kernel = |k| &k.wavelet;
        // Component kernels bind the samples and the coefficients, wavelet
        // kernels the coefficients and the scratch plane.
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
        // One level of one plane: parameters and workgroups for rows (one
        // invocation per low coefficient) and for columns.
        let level = |g: &PlaneGeom, l: u8| {
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
        let sc = [&samples, &coef];
        let ct = [&coef, &tmp];
        let mut slot = |u: [u32; 8]| {
            uniforms.push(u);
            uniforms.len() - 1
        };
        for p in 0..geom.planes.len() {
            let (u, count) = plane_u(p);
            forward.push((comp, "forward_plane", slot(u), sc, groups_1d(count)));
        }
        if let Some((entry, _, bands)) = colour {
            forward.push((comp, entry, slot(colour_u(bands)), sc, groups_1d(n0)));
        }
        for g in &geom.planes {
            for l in 0..params.levels {
                let (u, rows, cols) = level(g, l);
                let s = slot(u);
                forward.push((wav, "fwd_rows", s, ct, rows));
                forward.push((wav, "fwd_cols", s, ct, cols));
            }
        }
        for g in &geom.planes {
            for l in (0..params.levels).rev() {
                let (u, rows, cols) = level(g, l);
                let s = slot(u);
                inverse.push((wav, "inv_cols", s, ct, cols));
                inverse.push((wav, "inv_rows", s, ct, rows));
            }
        }
        if let Some((_, entry, bands)) = colour {
            inverse.push((comp, entry, slot(colour_u(bands)), sc, groups_1d(n0)));
        }
        for p in 0..geom.planes.len() {
            let (u, count) = plane_u(p);
            let g = groups_1d(count.div_ceil(2));
            to_samples.push((comp, "inverse_plane", slot(u), sc, g));
        }
        let measure_u = slot([nb as u32, 0, 0, 0, 0, 0, 0, 0]);
        let write_u = slot([nb as u32, 1, 0, 0, 0, 0, 0, 0]);
        let compact_u = slot([nb as u32, geom.slices, head, 0, 0, 0, 0, 0]);
        let ubuf = uniform_buffer(dev, "params", &uniforms);
        let made = |list: Vec<Pending<'_>>| -> Vec<Dispatch> {
            list.into_iter()
                .map(|(kernel, entry, u, bufs, groups)| Dispatch {
                    kernel,
                    entry,
                    bind: bind_with_uniform(dev, kernel(kernels), &bufs, &ubuf, u),
                    groups,
                })
                .collect()
        };
        let forward = made(forward);
        let inverse = made(inverse);
        let to_samples = made(to_samples);
        let enc: fn(&Kernels) -> &Kernel = |k| &k.encode;
        let entropy = |u: usize| Dispatch {
            kernel: enc,
            entry: "encode",
            bind: bind_with_uniform(
                dev,
                &kernels.encode,
                &[&coef, &blocks, &steps, &scratch, &lens, &order],
                &ubuf,
                u,
            ),
            groups: groups_of(nb, ENTROPY_LANES),
        };
        let cmp: fn(&Kernels) -> &Kernel = |k| &k.compact;
        let compact_bufs = [&blocks, &lens, &slice_first, &offs, &scratch, &out];
        let gather = vec![
            Dispatch {
                kernel: cmp,
                entry: "scan",
                bind: bind_with_uniform(dev, &kernels.compact, &compact_bufs, &ubuf, compact_u),
                groups: (1, 1),
            },
            Dispatch {
                kernel: cmp,
                entry: "gather",
                bind: bind_with_uniform(dev, &kernels.compact, &compact_bufs, &ubuf, compact_u),
                groups: one_group_each(nb),
            },
        ];
        let measure = entropy(measure_u);
        let write = entropy(write_u);
        Plan {
            params: *params,
            samples,
            plane_words,
            coef,
            steps,
            lens,
            offs,
            out,
            head_words: head,
            errors,
            starts,
            small_read,
            measure,
            write,
            forward,
            gather,
            inverse,
            to_samples,
            v210: None,
            words: None,
            tmp,
            blocks,
            order,
            slice_first,
            scratch,
            _uniforms: ubuf,
            geom,
        }
    }

    /// The v210 buffer and kernels, made on first use (4:2:2 10-bit only),
    /// sharing `reuse`'s buffer when it is big enough.
    pub fn ensure_v210(
        &mut self,
        ctx: &GpuContext,
        kernels: &Kernels,
        reuse: Option<&wgpu::Buffer>,
    ) -> Result<&V210, GpuError> {
        let p = self.params;
        if p.layout != Layout::Yuv422 || p.bit_depth != 10 {
            return Err(GpuError::Refused {
                what: "v210".to_owned(),
                reason: format!(
                    "v210 carries 10-bit 4:2:2, not {}-bit {}",
                    p.bit_depth, p.layout
                ),
            });
        }
        if self.v210.is_none() {
            let dev = &ctx.device;
            let row_words = v210_row_words(p.width);
            let rows = u64::from(p.height);
            let words = u64::from(row_words) * rows;
            let made = med8k_gpu::guarded(dev, "building the v210 kernels", || {
                let raw = buffer(dev, reuse, "v210", 4 * words);
                let y_words = self.plane_words[0] as u32;
                let c_words = self.plane_words[1] as u32;
                let u = [
                    p.width,
                    p.height,
                    row_words,
                    1 << 9,
                    1023,
                    y_words,
                    c_words,
                    self.geom.planes[1].offset as u32,
                ];
                let ubuf = uniform_buffer(dev, "v210 params", &[u]);
                let bufs = [&raw, &self.samples, &self.coef];
                let kernel: fn(&Kernels) -> &Kernel = |k| &k.v210;
                let unpack = Dispatch {
                    kernel,
                    entry: "unpack",
                    bind: bind_with_uniform(dev, &kernels.v210, &bufs, &ubuf, 0),
                    groups: groups_1d(u64::from(y_words) + 2 * u64::from(c_words)),
                };
                let pack = Dispatch {
                    kernel,
                    entry: "pack",
                    bind: bind_with_uniform(dev, &kernels.v210, &bufs, &ubuf, 0),
                    groups: groups_1d(words),
                };
                V210 {
                    raw,
                    row_words,
                    unpack,
                    pack,
                    _uniform: ubuf,
                }
            })?;
            self.v210 = Some(made);
        }
        self.v210
            .as_ref()
            .ok_or(GpuError::Internal("no v210 buffer"))
    }

    /// The stream buffer of at least `bytes` and the decode kernels bound to
    /// it, made or grown on demand (sharing `reuse`'s when big enough).
    pub fn ensure_words(
        &mut self,
        ctx: &GpuContext,
        kernels: &Kernels,
        bytes: u64,
        reuse: Option<&wgpu::Buffer>,
    ) -> Result<&Words, GpuError> {
        let need = bytes.max(4).next_multiple_of(4);
        if self.words.as_ref().is_none_or(|w| w.buf.size() < need) {
            self.words = None;
            let dev = &ctx.device;
            let nb = self.geom.blocks.len() as u64;
            let made = med8k_gpu::guarded(dev, "building the decode kernels", || {
                let buf = match reuse {
                    Some(b) if b.size() >= need => b.clone(),
                    _ => storage_buffer(
                        dev,
                        "words",
                        need.next_power_of_two(),
                        wgpu::BufferUsages::empty(),
                    ),
                };
                let ubuf = uniform_buffer(
                    dev,
                    "decode params",
                    &[
                        [self.geom.slices, nb as u32, 0, 0, 0, 0, 0, 0],
                        [nb as u32, 0, 0, 0, 0, 0, 0, 0],
                    ],
                );
                let table = Dispatch {
                    kernel: |k| &k.table,
                    entry: "table",
                    bind: bind_with_uniform(
                        dev,
                        &kernels.table,
                        &[
                            &buf,
                            &self.slice_first,
                            &self.starts,
                            &self.offs,
                            &self.lens,
                            &self.errors,
                        ],
                        &ubuf,
                        0,
                    ),
                    groups: one_group_each(u64::from(self.geom.slices)),
                };
                let decode = Dispatch {
                    kernel: |k| &k.decode,
                    entry: "decode",
                    bind: bind_with_uniform(
                        dev,
                        &kernels.decode,
                        &[
                            &buf,
                            &self.blocks,
                            &self.steps,
                            &self.offs,
                            &self.lens,
                            &self.coef,
                            &self.errors,
                            &self.order,
                        ],
                        &ubuf,
                        1,
                    ),
                    groups: groups_of(nb, ENTROPY_LANES),
                };
                Words {
                    buf,
                    table,
                    decode,
                    _uniform: ubuf,
                }
            })?;
            self.words = Some(made);
        }
        self.words
            .as_ref()
            .ok_or(GpuError::Internal("no words buffer"))
    }
}

/// Words of one v210 row of `width` pixels (whole 48-pixel groups).
pub(super) fn v210_row_words(width: u32) -> u32 {
    width.div_ceil(48) * 32
}
