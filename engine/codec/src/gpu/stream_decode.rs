//! [`GpuStreamDecoder`]: packets in, pictures or v210 frames out, with
//! several frames in flight.

use std::sync::Arc;

use med8k_gpu::{GpuContext, GpuError, ReadSlot, StageClock, UploadSlot};
use med8k_media::frame::{PixelFormat, VideoFrame};
use med8k_media::picture::{Layout, Picture};

use super::plan::{Plan, v210_row_words};
use super::{Finished, Kernels, StreamStats, host, stripe_params, stripes};
use crate::stream::{self, Header};
use crate::{DecodeError, Params};

/// Where a [`GpuStreamDecoder`] puts a picture: planes, or packed v210
/// (10-bit 4:2:2 streams only), made or remade to the stream's shape.
#[derive(Debug)]
pub enum Decoded {
    /// Planes of u16 samples.
    Picture(Picture),
    /// Packed 10-bit 4:2:2 as SDI output cards take it, packed by the GPU's
    /// last kernel.
    V210(VideoFrame),
}

impl Decoded {
    /// An empty picture, to be sized by the first frame decoded into it.
    pub fn picture() -> Self {
        Decoded::Picture(
            Picture::zeroed(Layout::Gray, 1, 1, 8)
                .unwrap_or_else(|_| unreachable!("a 1x1 8-bit gray picture is valid")),
        )
    }

    /// An empty v210 frame, to be sized by the first frame decoded into it.
    pub fn v210() -> Self {
        Decoded::V210(
            VideoFrame::zeroed(6, 1, PixelFormat::V210)
                .unwrap_or_else(|_| unreachable!("a 6x1 v210 frame is valid")),
        )
    }
}

/// One slot of the ring.
struct Slot {
    upload: UploadSlot,
    read: ReadSlot,
    clock: Option<StageClock>,
    seq: u64,
    params: Params,
    /// Per stripe: where its errors and picture lie in `read`.
    regions: Vec<u64>,
    clock_at: u64,
}

/// The plans of one stream shape.
struct Shape {
    params: Params,
    parts: Vec<(u32, u32)>,
    plans: Vec<Plan>,
    plan_of: Vec<usize>,
}

/// A decoder of a stream of packets on the GPU; see the module docs of
/// [`crate::gpu`].
///
/// Each [`send_packet`](Self::send_packet) checks the header, copies the
/// slices into the mapped upload buffer of the next slot of a ring of
/// `depth` (3 by default) while checking their CRCs, and makes one
/// submission: the copy in, the block tables (checked on the GPU), the
/// blocks, the inverse transforms, and the copy out of the picture, planar
/// or packed to v210 by the last kernel. When `depth` frames are in flight
/// it then waits for the oldest and writes its picture into the caller's.
/// Every picture is the CPU twin's; a bad stream is an error, found on the
/// host (header, CRCs, slice sizes) or on the GPU (block tables, codes).
pub struct GpuStreamDecoder {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    v210: bool,
    depth: usize,
    timings: bool,
    max_samples: u64,
    shape: Option<Shape>,
    slots: Vec<Slot>,
    next: usize,
    count: usize,
    seq: u64,
    meta: Vec<u32>,
    ranges: Vec<(usize, usize)>,
    crcs: Vec<u32>,
    stripe_bytes: Vec<u64>,
    stats: StreamStats,
}

impl std::fmt::Debug for GpuStreamDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuStreamDecoder")
            .field("v210", &self.v210)
            .field("depth", &self.depth)
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl GpuStreamDecoder {
    /// A decoder on `ctx`'s device writing pictures, or v210 frames when
    /// `v210`.
    pub fn new(ctx: Arc<GpuContext>, v210: bool) -> Self {
        let kernels = Kernels::on(&ctx, true);
        GpuStreamDecoder {
            ctx,
            kernels,
            v210,
            depth: 3,
            timings: false,
            max_samples: crate::DEFAULT_MAX_SAMPLES,
            shape: None,
            slots: Vec::new(),
            next: 0,
            count: 0,
            seq: 0,
            meta: Vec::new(),
            ranges: Vec::new(),
            crcs: Vec::new(),
            stripe_bytes: Vec::new(),
            stats: StreamStats::default(),
        }
    }

    /// Frames in flight (1 to 8; 3 by default), before the first packet.
    pub fn with_depth(mut self, depth: usize) -> Self {
        if self.slots.is_empty() {
            self.depth = depth.clamp(1, 8);
        }
        self
    }

    /// Per-stage timings with every picture, before the first packet.
    pub fn with_timings(mut self, on: bool) -> Self {
        if self.slots.is_empty() {
            self.timings = on;
        }
        self
    }

    /// Refuse pictures above `samples` samples
    /// ([`DEFAULT_MAX_SAMPLES`](crate::DEFAULT_MAX_SAMPLES) unless told).
    pub fn with_max_samples(mut self, samples: u64) -> Self {
        self.max_samples = samples;
        self
    }

    /// Refuse pictures above `samples` samples from the next packet on.
    pub fn set_max_samples(&mut self, samples: u64) {
        self.max_samples = samples;
    }

    /// The context the decoder runs on.
    pub fn context(&self) -> &Arc<GpuContext> {
        &self.ctx
    }

    /// Use the kernels without subgroup operations even where the device
    /// has them, before the first packet.
    pub fn without_subgroups(mut self) -> Self {
        if self.shape.is_none() {
            self.kernels = Kernels::on(&self.ctx, false);
        }
        self
    }

    /// What the decoder has done so far.
    pub fn stats(&self) -> StreamStats {
        let mut s = self.stats;
        for slot in &self.slots {
            s.waits += slot.upload.waits() + slot.read.waits();
            if let Some(c) = &slot.clock {
                s.submits += c.submits();
            }
        }
        s
    }

    /// Stripes the current shape is decoded in.
    pub fn stripes(&self) -> usize {
        self.shape.as_ref().map_or(0, |s| s.parts.len())
    }

    /// Packets sent and not yet received.
    pub fn in_flight(&self) -> usize {
        self.count
    }

    /// Queue the packet `data`; when `depth` frames are then in flight, wait
    /// for the oldest and write its picture into `out`.
    pub fn send_packet(
        &mut self,
        data: &[u8],
        out: &mut Decoded,
    ) -> Result<Option<Finished>, DecodeError> {
        let header = stream::read_header(data, self.max_samples)?;
        self.ensure_shape(&header.params)?;
        if self.count == self.depth {
            return Err(GpuError::Internal("a full ring (receive first)").into());
        }
        if self.slots.is_empty() {
            for i in 0..self.depth {
                let clock = self.timings.then(|| {
                    let stripes = self.shape.as_ref().map_or(1, |s| s.parts.len());
                    StageClock::new(&self.ctx, 8 * stripes as u32)
                });
                self.slots.push(Slot {
                    upload: UploadSlot::new(&self.ctx.device, &format!("packet upload {i}"), 4),
                    read: ReadSlot::new(&self.ctx.device, &format!("picture read {i}"), 4),
                    clock,
                    seq: 0,
                    params: header.params,
                    regions: Vec::new(),
                    clock_at: 0,
                });
                self.stats.buffers_made += 2;
            }
        }
        let s = self.next;
        self.fill(s, data, &header)?;
        self.submit(s, &header)?;
        self.slots[s].seq = self.seq;
        self.seq += 1;
        self.next = (s + 1) % self.depth;
        self.count += 1;
        if self.count == self.depth {
            return self.receive_frame(out);
        }
        Ok(None)
    }

    /// The oldest frame's picture into `out`, waiting for the GPU; `None`
    /// when no frame is in flight.
    pub fn receive_frame(&mut self, out: &mut Decoded) -> Result<Option<Finished>, DecodeError> {
        if self.count == 0 {
            return Ok(None);
        }
        let s = (self.next + self.depth - self.count) % self.depth;
        self.count -= 1;
        let done = self.finish(s, out);
        self.slots[s].upload.release();
        done.map(Some)
    }

    /// The oldest frame's picture into `out` if the GPU is done with it,
    /// without waiting.
    pub fn poll_frame(&mut self, out: &mut Decoded) -> Result<Option<Finished>, DecodeError> {
        if self.count == 0 {
            return Ok(None);
        }
        let s = (self.next + self.depth - self.count) % self.depth;
        if !self.slots[s].read.is_ready(&self.ctx.device) {
            return Ok(None);
        }
        self.receive_frame(out)
    }

    /// Plans for packets of `params` (the same as the last ones'
    /// unless the stream changed shape).
    fn ensure_shape(&mut self, params: &Params) -> Result<(), DecodeError> {
        let key = Params {
            lossless: false,
            ..*params
        };
        if let Some(s) = &self.shape
            && (Params {
                lossless: false,
                ..s.params
            }) == key
        {
            return Ok(());
        }
        if self.count > 0 {
            return Err(GpuError::Internal(
                "a packet of another shape with frames in flight (receive them first)",
            )
            .into());
        }
        if self.v210 && (params.layout != Layout::Yuv422 || params.bit_depth != 10) {
            return Err(GpuError::Refused {
                what: "decoding to v210".to_owned(),
                reason: format!(
                    "v210 carries 10-bit 4:2:2, the stream is {}-bit {}",
                    params.bit_depth, params.layout
                ),
            }
            .into());
        }
        self.shape = None;
        let limit = self.ctx.device.limits().max_storage_buffer_binding_size;
        let parts = stripes(params, limit);
        let mut plans: Vec<Plan> = Vec::new();
        let mut plan_of = Vec::with_capacity(parts.len());
        for &(first, n) in &parts {
            let sp = stripe_params(params, first, n);
            let at = match plans.iter().position(|p| p.params == sp) {
                Some(at) => at,
                None => {
                    let mut plan = Plan::new(&self.ctx, &self.kernels, &sp, plans.first())?;
                    if self.v210 {
                        let reuse = plans
                            .first()
                            .and_then(|p| p.v210.as_ref())
                            .map(|v| v.raw.clone());
                        plan.ensure_v210(&self.ctx, &self.kernels, reuse.as_ref())?;
                    }
                    self.stats.buffers_made += 1;
                    plans.push(plan);
                    plans.len() - 1
                }
            };
            plan_of.push(at);
        }
        self.shape = Some(Shape {
            params: *params,
            parts,
            plans,
            plan_of,
        });
        Ok(())
    }

    /// Check the slices' sizes, then copy the per-stripe tables and the
    /// slices into slot `s`'s upload buffer, checking the CRCs on the way.
    fn fill(&mut self, s: usize, data: &[u8], header: &Header) -> Result<(), DecodeError> {
        let shape = self.shape.as_mut().ok_or(GpuError::Internal("no shape"))?;
        // Slice byte ranges, checked so that every slice starts on a word.
        self.ranges.clear();
        self.crcs.clear();
        let mut at = header.len;
        for &(len, crc) in &header.slices {
            self.ranges.push((at, at + len as usize));
            self.crcs.push(crc);
            at += len as usize;
        }
        // Per stripe: its step words and its slices' starts and body bytes.
        self.meta.clear();
        let stripe_bytes = &mut self.stripe_bytes;
        stripe_bytes.clear();
        for (k, &(first, n)) in shape.parts.iter().enumerate() {
            let plan = &shape.plans[shape.plan_of[k]];
            header.steps.gpu_words_into(first, n, &mut self.meta);
            let base = self.ranges[first as usize].0;
            for i in 0..n {
                let slice = first + i;
                let (a, b) = self.ranges[slice as usize];
                let blocks = plan.geom.slice(i).len();
                let table = 2 * blocks.next_multiple_of(2);
                if (b - a) < table || !(b - a).is_multiple_of(4) {
                    // The CPU's own check says what is wrong.
                    let geom = header.params.geometry();
                    stream::split_slice(slice, &data[a..b], &geom)?;
                    return Err(DecodeError::Slice {
                        slice,
                        reason: format!("{} bytes is not a whole number of words", b - a),
                    });
                }
                self.meta.push(((a - base) / 4) as u32);
                self.meta.push((b - a - table) as u32);
            }
            let end = self.ranges[(first + n - 1) as usize].1;
            stripe_bytes.push((end - base) as u64);
        }
        let meta_bytes = 4 * self.meta.len() as u64;
        let payload = (at - header.len) as u64;
        let need = meta_bytes + payload;
        for (k, &bytes) in stripe_bytes.iter().enumerate() {
            let reuse = shape.plans[0].words.as_ref().map(|w| w.buf.clone());
            let i = shape.plan_of[k];
            let before = shape.plans[i].words.as_ref().map(|w| w.buf.size());
            shape.plans[i].ensure_words(
                &self.ctx,
                &self.kernels,
                bytes + bytes / 4,
                reuse.as_ref(),
            )?;
            if before != shape.plans[i].words.as_ref().map(|w| w.buf.size()) {
                self.stats.buffers_made += 1;
            }
        }
        let slot = &mut self.slots[s];
        if slot.upload.size() < need {
            slot.upload = UploadSlot::new(&self.ctx.device, "packet upload", need + need / 4);
            self.stats.buffers_made += 1;
        }
        let meta: &[u8] = bytemuck::cast_slice(&self.meta);
        let ranges = &self.ranges;
        let crcs = &self.crcs;
        let bad = slot.upload.fill(&self.ctx.device, need, |mut dst| {
            let (head, body) = host::Dst::new(&mut dst).split_at(meta.len());
            head.write(meta);
            let (body, _pad) = body.split_at(payload as usize);
            host::copy_checked(body, data, ranges, crcs)
        })?;
        if let Some(slice) = bad {
            return Err(DecodeError::SliceCrc {
                slice: slice as u32,
            });
        }
        self.stats.bytes_to_gpu += need.next_multiple_of(4);
        Ok(())
    }

    /// Record and submit slot `s`'s frame.
    fn submit(&mut self, s: usize, header: &Header) -> Result<(), DecodeError> {
        let ctx = &self.ctx;
        let shape = self.shape.as_ref().ok_or(GpuError::Internal("no shape"))?;
        let slot = &mut self.slots[s];
        slot.params = header.params;
        slot.regions.clear();
        let mut at = 0u64;
        for &i in &shape.plan_of {
            slot.regions.push(at);
            at += 16 + out_bytes(&shape.plans[i], self.v210);
        }
        slot.clock_at = at;
        let read_len = at + slot.clock.as_ref().map_or(0, StageClock::bytes);
        if slot.read.size() < read_len {
            slot.read = ReadSlot::new(&ctx.device, "picture read", read_len);
            self.stats.buffers_made += 1;
        }
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        if let Some(c) = &mut slot.clock {
            c.begin(ctx, &mut enc);
        }
        let mark = |c: &mut Option<StageClock>, enc: &mut wgpu::CommandEncoder, name| {
            if let Some(c) = c {
                c.mark(ctx, enc, name);
            }
        };
        let up = slot.upload.buffer();
        let mut meta_at = 0u64;
        let meta_bytes = 4 * self.meta.len() as u64;
        let payload_at = |byte: usize| meta_bytes + (byte - header.len) as u64;
        for (k, &(first, n)) in shape.parts.iter().enumerate() {
            let plan = &shape.plans[shape.plan_of[k]];
            let words = plan
                .words
                .as_ref()
                .ok_or(GpuError::Internal("no words buffer"))?;
            let steps_bytes = 4
                * (crate::steps::MAX_TABLES * crate::steps::GPU_TABLE_STRIDE) as u64
                + 4 * u64::from(n);
            enc.copy_buffer_to_buffer(up, meta_at, &plan.steps, 0, steps_bytes);
            meta_at += steps_bytes;
            enc.copy_buffer_to_buffer(up, meta_at, &plan.starts, 0, 8 * u64::from(n));
            meta_at += 8 * u64::from(n);
            let a = self.ranges[first as usize].0;
            let b = self.ranges[(first + n - 1) as usize].1;
            enc.copy_buffer_to_buffer(up, payload_at(a), &words.buf, 0, (b - a) as u64);
            enc.clear_buffer(&plan.coef, 0, None);
            enc.clear_buffer(&plan.errors, 0, None);
            mark(&mut slot.clock, &mut enc, "copy_in");
            self.kernels.pass(&mut enc, [&words.table]);
            mark(&mut slot.clock, &mut enc, "block_table");
            self.kernels.pass(&mut enc, [&words.decode]);
            mark(&mut slot.clock, &mut enc, "entropy");
            let last: &[super::Dispatch] = match (&plan.v210, self.v210) {
                (Some(v), true) => std::slice::from_ref(&v.pack),
                _ => &plan.to_samples,
            };
            self.kernels.pass(&mut enc, plan.inverse.iter().chain(last));
            mark(&mut slot.clock, &mut enc, "transforms");
            let region = slot.regions[k];
            let rb = slot.read.buffer();
            enc.copy_buffer_to_buffer(&plan.errors, 0, rb, region, 16);
            let (src, bytes) = match (&plan.v210, self.v210) {
                (Some(v), true) => (&v.raw, out_bytes(plan, true)),
                _ => (&plan.samples, out_bytes(plan, false)),
            };
            enc.copy_buffer_to_buffer(src, 0, rb, region + 16, bytes);
            mark(&mut slot.clock, &mut enc, "copy_out");
        }
        if let Some(c) = &slot.clock {
            c.resolve(&mut enc, slot.read.buffer(), slot.clock_at);
        }
        let index = ctx.queue.submit([enc.finish()]);
        slot.upload.used_by(index.clone());
        slot.read.used_by(index, read_len);
        self.stats.submits += 1;
        self.stats.bytes_from_gpu += read_len;
        Ok(())
    }

    /// Slot `s`'s picture into `out`, or the error the GPU found.
    fn finish(&mut self, s: usize, out: &mut Decoded) -> Result<Finished, DecodeError> {
        let shape = self.shape.as_ref().ok_or(GpuError::Internal("no shape"))?;
        let slot = &mut self.slots[s];
        let p = slot.params;
        reshape(out, &p, self.v210)?;
        let v210 = self.v210;
        let clock = &slot.clock;
        let clock_at = slot.clock_at as usize;
        let regions = &slot.regions;
        let seq = slot.seq;
        let done = slot.read.read(&self.ctx.device, |bytes| -> Result<Finished, DecodeError> {
            for (k, &(first, n)) in shape.parts.iter().enumerate() {
                let plan = &shape.plans[shape.plan_of[k]];
                let at = regions[k] as usize;
                let e: &[u8] = &bytes[at..at + 16];
                let word = |i: usize| u32::from_le_bytes([e[4 * i], e[4 * i + 1], e[4 * i + 2], e[4 * i + 3]]);
                // The first bad slice, as a decoder going slice by slice
                // meets it: its table, else its first bad block.
                let table = (word(2) > 0).then(|| first + n - word(2).min(n));
                let block = (word(0) > 0).then(|| {
                    let nb = plan.geom.blocks.len() as u32;
                    let b = nb - word(0).min(nb);
                    let slice = plan.geom.blocks[b as usize].slice;
                    (first + slice, b - plan.geom.slice_blocks[slice as usize])
                });
                match (table, block) {
                    (Some(slice), b) if b.is_none_or(|b| slice <= b.0) => {
                        return Err(DecodeError::Slice {
                            slice,
                            reason: "its block lengths do not add up to its size, or a block is empty (found on the GPU)".into(),
                        });
                    }
                    (_, Some((slice, block))) => {
                        return Err(DecodeError::Block {
                            slice,
                            block,
                            error: crate::entropy::BlockError::Overrun,
                        });
                    }
                    _ => {}
                }
            }
            let mut total = 0usize;
            for (k, &(first, _)) in shape.parts.iter().enumerate() {
                let plan = &shape.plans[shape.plan_of[k]];
                let at = regions[k] as usize + 16;
                let len = out_bytes(plan, v210) as usize;
                let y0 = first * p.slice_height;
                match out {
                    Decoded::V210(f) => {
                        let row_bytes = 4 * v210_row_words(p.width) as usize;
                        host::v210_into(f, &bytes[at..at + len], row_bytes, y0, plan.params.height);
                    }
                    Decoded::Picture(pic) => {
                        host::samples_into(pic, &bytes[at..at + len], &plan.plane_words, y0, plan.params.height);
                    }
                }
                total += len;
            }
            let timings = clock.as_ref().map(|c| c.times(&bytes[clock_at.min(bytes.len())..]));
            Ok(Finished {
                seq,
                bytes: total,
                timings,
            })
        })??;
        self.stats.frames += 1;
        Ok(done)
    }
}

/// Bytes of one stripe's picture as it comes back.
fn out_bytes(plan: &Plan, v210: bool) -> u64 {
    match (&plan.v210, v210) {
        (Some(v), true) => 4 * u64::from(v.row_words) * u64::from(plan.params.height),
        _ => 4 * plan.plane_words.iter().sum::<u64>(),
    }
}

/// Make `out` a picture of `p`'s shape (v210 or planes) unless it is one.
fn reshape(out: &mut Decoded, p: &Params, v210: bool) -> Result<(), DecodeError> {
    let fits = match out {
        Decoded::V210(f) => v210 && f.width() == p.width && f.height() == p.height,
        Decoded::Picture(pic) => {
            !v210
                && pic.layout() == p.layout
                && pic.width() == p.width
                && pic.height() == p.height
                && pic.bit_depth() == p.bit_depth
        }
    };
    if !fits {
        *out = if v210 {
            Decoded::V210(
                VideoFrame::zeroed(p.width, p.height, PixelFormat::V210)
                    .map_err(|e| GpuError::Inconsistent(e.to_string()))?,
            )
        } else {
            Decoded::Picture(
                Picture::zeroed(p.layout, p.width, p.height, p.bit_depth)
                    .map_err(|e| GpuError::Inconsistent(e.to_string()))?,
            )
        };
    }
    Ok(())
}
