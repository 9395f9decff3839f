//! [`GpuStreamEncoder`]: frames of one shape in, lossless packets out, with
//! several frames in flight.

use std::sync::Arc;

use med8k_gpu::{GpuContext, GpuError, ReadSlot, SampleLayout, StageClock, UploadSlot};
use med8k_media::frame::{PixelFormat, VideoFrame};
use med8k_media::picture::Picture;

use super::plan::{Plan, v210_row_words};
use super::{Finished, Kernels, StreamStats, host, stripe_params, stripes};
use crate::{Config, EncodeError, Params, Steps, step_count, stream};

/// A frame for a [`GpuStreamEncoder`].
#[derive(Debug, Clone, Copy)]
pub enum Frame<'a> {
    /// Planes of u16 samples.
    Picture(&'a Picture),
    /// Packed 10-bit 4:2:2 as SDI capture cards deliver it; unpacked by the
    /// GPU's first kernel.
    V210(&'a VideoFrame),
}

/// One slot of the ring: a frame's upload and read-back buffers.
struct Slot {
    upload: UploadSlot,
    read: ReadSlot,
    clock: Option<StageClock>,
    seq: u64,
    /// Per stripe: where its head lies in `read` (bytes) and the payload
    /// words copied after it.
    regions: Vec<(u64, u64)>,
    /// Where the timestamps lie in `read`.
    clock_at: u64,
}

/// A lossless encoder of a stream of frames of one shape on the GPU; see the
/// module docs of [`crate::gpu`].
///
/// Each [`send_frame`](Self::send_frame) writes the frame into the mapped
/// upload buffer of the next slot of a ring of `depth` (3 by default) and
/// makes one submission: the copy in, the transforms, the coding, and the
/// copy out of the head (sizes) and of about as many coded bytes as recent
/// frames had. When `depth` frames are in flight it then waits for the
/// oldest (submission N-2 of a ring of three) and puts its packet into the
/// caller's buffer. A frame larger than the bytes copied is copied again
/// (it counts in [`StreamStats::reruns`]).
///
/// Packets are byte for byte those of the CPU twin with
/// [`Config::lossless`]'s levels and slice height.
pub struct GpuStreamEncoder {
    ctx: Arc<GpuContext>,
    kernels: Arc<Kernels>,
    params: Params,
    v210: bool,
    depth: usize,
    timings: bool,
    parts: Vec<(u32, u32)>,
    plans: Vec<Plan>,
    plan_of: Vec<usize>,
    slots: Vec<Slot>,
    next: usize,
    count: usize,
    seq: u64,
    budgets: Vec<u64>,
    worst: Vec<u64>,
    steps: Steps,
    table: Vec<(u32, u32)>,
    header: Vec<u8>,
    lens: Vec<u32>,
    totals: Vec<u64>,
    stats: StreamStats,
}

impl std::fmt::Debug for GpuStreamEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuStreamEncoder")
            .field("params", &self.params)
            .field("v210", &self.v210)
            .field("depth", &self.depth)
            .field("stripes", &self.parts.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl GpuStreamEncoder {
    /// An encoder of frames of `shape` with `config` (lossless only), read
    /// from v210 frames when `v210` (10-bit 4:2:2 only) and from pictures
    /// otherwise.
    pub fn new(
        ctx: Arc<GpuContext>,
        config: &Config,
        shape: SampleLayout,
        v210: bool,
    ) -> Result<Self, EncodeError> {
        let params = crate::lossless_params(
            config,
            shape.layout,
            shape.width,
            shape.height,
            shape.bit_depth,
            "the stream encoder codes lossless only",
        )?;
        if v210 && (shape.layout != med8k_media::picture::Layout::Yuv422 || shape.bit_depth != 10) {
            return Err(EncodeError::Mismatch {
                expected: "10-bit yuv422 for v210 input".into(),
                got: format!("{}-bit {}", shape.bit_depth, shape.layout),
            });
        }
        let limit = ctx.device.limits().max_storage_buffer_binding_size;
        let parts = stripes(&params, limit);
        let kernels = super::Kernels::on(&ctx, true);
        let geom = params.geometry();
        let steps = Steps::lossless(step_count(params.levels), geom.slices);
        Ok(GpuStreamEncoder {
            ctx,
            kernels,
            params,
            v210,
            depth: 3,
            timings: false,
            budgets: Vec::new(),
            worst: Vec::new(),
            table: vec![(0, 0); geom.slices as usize],
            lens: Vec::with_capacity(geom.slices as usize),
            totals: Vec::new(),
            header: Vec::new(),
            steps,
            parts,
            plans: Vec::new(),
            plan_of: Vec::new(),
            slots: Vec::new(),
            next: 0,
            count: 0,
            seq: 0,
            stats: StreamStats::default(),
        })
    }

    /// Frames in flight (1 to 8; 3 by default), before the first frame.
    pub fn with_depth(mut self, depth: usize) -> Self {
        if self.slots.is_empty() {
            self.depth = depth.clamp(1, 8);
        }
        self
    }

    /// Per-stage timings with every packet, before the first frame.
    pub fn with_timings(mut self, on: bool) -> Self {
        if self.slots.is_empty() {
            self.timings = on;
        }
        self
    }

    /// Use the kernels without subgroup operations even where the device
    /// has them (the path of devices without them), before the first frame.
    pub fn without_subgroups(mut self) -> Self {
        if self.plans.is_empty() {
            self.kernels = super::Kernels::on(&self.ctx, false);
        }
        self
    }

    /// What the encoder has done so far.
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

    /// Stripes a frame is coded in (more than one where the device's
    /// buffers cannot hold a whole frame, as on lavapipe at 8K).
    pub fn stripes(&self) -> usize {
        self.parts.len()
    }

    /// Frames sent and not yet received.
    pub fn in_flight(&self) -> usize {
        self.count
    }

    /// Queue `frame`; when `depth` frames are then in flight, wait for the
    /// oldest and put its packet into `out` (its previous contents are
    /// replaced; its allocation is kept).
    pub fn send_frame(
        &mut self,
        frame: Frame<'_>,
        out: &mut Vec<u8>,
    ) -> Result<Option<Finished>, EncodeError> {
        self.check(frame)?;
        if self.slots.is_empty() {
            self.prepare()?;
        }
        if self.count == self.depth {
            return Err(GpuError::Internal("a full ring (receive first)").into());
        }
        let s = self.next;
        self.fill(s, frame)?;
        self.submit(s)?;
        self.slots[s].seq = self.seq;
        self.seq += 1;
        self.next = (s + 1) % self.depth;
        self.count += 1;
        if self.count == self.depth {
            return self.receive_packet(out);
        }
        Ok(None)
    }

    /// The oldest frame's packet into `out`, waiting for the GPU; `None`
    /// when no frame is in flight.
    pub fn receive_packet(&mut self, out: &mut Vec<u8>) -> Result<Option<Finished>, EncodeError> {
        if self.count == 0 {
            return Ok(None);
        }
        let s = (self.next + self.depth - self.count) % self.depth;
        self.count -= 1;
        let done = self.finish(s, out);
        self.slots[s].upload.release();
        done.map(Some)
    }

    /// The oldest frame's packet into `out` if the GPU is done with it,
    /// without waiting.
    pub fn poll_packet(&mut self, out: &mut Vec<u8>) -> Result<Option<Finished>, EncodeError> {
        if self.count == 0 {
            return Ok(None);
        }
        let s = (self.next + self.depth - self.count) % self.depth;
        if !self.slots[s].read.is_ready(&self.ctx.device) {
            return Ok(None);
        }
        self.receive_packet(out)
    }

    fn check(&self, frame: Frame<'_>) -> Result<(), EncodeError> {
        let p = &self.params;
        let (v210, got) = match frame {
            Frame::Picture(pic) => (
                false,
                (pic.layout(), pic.width(), pic.height(), pic.bit_depth()),
            ),
            Frame::V210(f) => {
                if f.format() != PixelFormat::V210 {
                    return Err(EncodeError::Mismatch {
                        expected: "a v210 frame".into(),
                        got: format!("a {} frame", f.format()),
                    });
                }
                (true, (p.layout, f.width(), f.height(), 10))
            }
        };
        let want = (p.layout, p.width, p.height, p.bit_depth);
        if v210 != self.v210 || got != want {
            let what = |v: bool, s: (med8k_media::picture::Layout, u32, u32, u8)| {
                format!(
                    "{} {}x{} {}-bit {}",
                    if v { "v210" } else { "planes" },
                    s.1,
                    s.2,
                    s.3,
                    s.0
                )
            };
            return Err(EncodeError::Mismatch {
                expected: what(self.v210, want),
                got: what(v210, got),
            });
        }
        Ok(())
    }

    /// Plans, ring and budgets, on the first frame.
    fn prepare(&mut self) -> Result<(), EncodeError> {
        let ctx = &self.ctx;
        for &(first, n) in &self.parts {
            let sp = stripe_params(&self.params, first, n);
            let found = self.plans.iter().position(|p| p.params == sp);
            let at = match found {
                Some(at) => at,
                None => {
                    let mut plan = Plan::new(ctx, &self.kernels, &sp, self.plans.first())?;
                    if self.v210 {
                        let reuse = self
                            .plans
                            .first()
                            .and_then(|p| p.v210.as_ref())
                            .map(|v| &v.raw);
                        let reuse = reuse.cloned();
                        plan.ensure_v210(ctx, &self.kernels, reuse.as_ref())?;
                    }
                    let words = Steps::lossless(step_count(sp.levels), n).gpu_words();
                    ctx.queue
                        .write_buffer(&plan.steps, 0, bytemuck::cast_slice(&words));
                    self.stats.buffers_made += 1;
                    self.plans.push(plan);
                    self.plans.len() - 1
                }
            };
            self.plan_of.push(at);
            let plan = &self.plans[at];
            let worst = plan.out.size() / 4 - u64::from(plan.head_words);
            self.worst.push(worst);
            // Half the samples' bits to begin with; later frames set it.
            let samples: u64 = plan.plane_words.iter().sum::<u64>() * 2;
            let guess = samples * u64::from(sp.bit_depth) / 64;
            self.budgets.push(guess.max(1024).min(worst));
        }
        let upload = self.upload_bytes();
        for i in 0..self.depth {
            let upload = UploadSlot::new(&ctx.device, &format!("frame upload {i}"), upload);
            let read = ReadSlot::new(&ctx.device, &format!("packet read {i}"), 4);
            let clock = self
                .timings
                .then(|| StageClock::new(ctx, 8 * self.parts.len() as u32));
            self.slots.push(Slot {
                upload,
                read,
                clock,
                seq: 0,
                regions: Vec::with_capacity(self.parts.len()),
                clock_at: 0,
            });
            self.stats.buffers_made += 2;
        }
        Ok(())
    }

    /// Bytes of one frame in an upload slot.
    fn upload_bytes(&self) -> u64 {
        let p = &self.params;
        if self.v210 {
            4 * u64::from(v210_row_words(p.width)) * u64::from(p.height)
        } else {
            SampleLayout {
                layout: p.layout,
                width: p.width,
                height: p.height,
                bit_depth: p.bit_depth,
            }
            .plane_words()
            .1 * 4
        }
    }

    /// The frame into slot `s`'s upload buffer, on every core.
    fn fill(&mut self, s: usize, frame: Frame<'_>) -> Result<(), EncodeError> {
        let len = self.upload_bytes();
        let dev = &self.ctx.device;
        let slot = &mut self.slots[s];
        match frame {
            Frame::V210(f) => {
                let row_bytes = 4 * v210_row_words(f.width()) as usize;
                let stride = f.layout().planes()[0].stride;
                slot.upload.fill(dev, len, |mut dst| {
                    host::copy_rows_into(host::Dst::new(&mut dst), f.plane(0), stride, row_bytes)
                })?;
            }
            Frame::Picture(pic) => {
                slot.upload.fill(dev, len, |mut dst| {
                    let mut rest = host::Dst::new(&mut dst);
                    for plane in pic.planes() {
                        let bytes: &[u8] = bytemuck::cast_slice(plane);
                        let (part, tail) = rest.split_at(bytes.len().next_multiple_of(4));
                        let (part, _pad) = part.split_at(bytes.len());
                        host::copy_into(part, bytes);
                        rest = tail;
                    }
                })?;
            }
        }
        self.stats.bytes_to_gpu += len;
        Ok(())
    }

    /// Record and submit slot `s`'s frame with the current budgets.
    fn submit(&mut self, s: usize) -> Result<(), EncodeError> {
        // Where each stripe's head and payload go in the read slot.
        let mut at = 0u64;
        let slot = &mut self.slots[s];
        slot.regions.clear();
        for (k, &budget) in self.budgets.iter().enumerate() {
            let head = u64::from(self.plans[self.plan_of[k]].head_words);
            slot.regions.push((at, budget));
            at += 4 * (head + budget);
        }
        slot.clock_at = at;
        let read_len = at + slot.clock.as_ref().map_or(0, StageClock::bytes);
        if slot.read.size() < read_len {
            slot.read = ReadSlot::new(&self.ctx.device, "packet read", read_len);
            self.stats.buffers_made += 1;
        }
        let ctx = &self.ctx;
        let mut enc = ctx
            .device
            .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        let slot = &mut self.slots[s];
        if let Some(c) = &mut slot.clock {
            c.begin(ctx, &mut enc);
        }
        let row_bytes = 4 * u64::from(v210_row_words(self.params.width));
        for (k, &(first, _)) in self.parts.iter().enumerate() {
            let plan = &self.plans[self.plan_of[k]];
            let y0 = first * self.params.slice_height;
            let mark = |c: &mut Option<StageClock>, enc: &mut wgpu::CommandEncoder, name| {
                if let Some(c) = c {
                    c.mark(ctx, enc, name);
                }
            };
            let up = slot.upload.buffer();
            match &plan.v210 {
                Some(v) if self.v210 => {
                    let bytes = row_bytes * u64::from(plan.params.height);
                    enc.copy_buffer_to_buffer(up, row_bytes * u64::from(y0), &v.raw, 0, bytes);
                    mark(&mut slot.clock, &mut enc, "copy_in");
                    self.kernels.pass(&mut enc, [&v.unpack]);
                    mark(&mut slot.clock, &mut enc, "unpack");
                }
                _ => {
                    let p = &self.params;
                    let mut src = 0u64;
                    let mut dst = 0u64;
                    for (i, words) in plan.plane_words.iter().enumerate() {
                        let (w, h) = p.layout.plane_dims(i, p.width, p.height);
                        let (_, sy) = p.layout.subsampling(i);
                        let from = src + 2 * u64::from(y0 >> sy) * u64::from(w);
                        enc.copy_buffer_to_buffer(up, from, &plan.samples, dst, 4 * words);
                        src += 4 * (u64::from(w) * u64::from(h)).div_ceil(2);
                        dst += 4 * words;
                    }
                    mark(&mut slot.clock, &mut enc, "copy_in");
                }
            }
            self.kernels.pass(&mut enc, &plan.forward);
            mark(&mut slot.clock, &mut enc, "transforms");
            self.kernels.pass(&mut enc, [&plan.write]);
            mark(&mut slot.clock, &mut enc, "entropy");
            self.kernels.pass(&mut enc, &plan.gather);
            mark(&mut slot.clock, &mut enc, "scan_gather");
            let (region, budget) = slot.regions[k];
            let bytes = 4 * (u64::from(plan.head_words) + budget);
            enc.copy_buffer_to_buffer(&plan.out, 0, slot.read.buffer(), region, bytes);
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

    /// Read slot `s`'s packet into `out`, copying again what the budget cut off.
    fn finish(&mut self, s: usize, out: &mut Vec<u8>) -> Result<Finished, EncodeError> {
        for attempt in 0..2 {
            let done = self.read_packet(s, out)?;
            let totals = &self.totals;
            match done {
                Some(done) => {
                    // Later frames copy a quarter more than this one coded to.
                    for (k, &t) in totals.iter().enumerate() {
                        self.budgets[k] = (t + t / 4 + 1024).min(self.worst[k]);
                    }
                    self.stats.frames += 1;
                    return Ok(done);
                }
                None if attempt == 0 => {
                    // Some stripe coded to more than was copied: copy again
                    // with room for all of it (the upload is still intact).
                    for (k, &t) in totals.iter().enumerate() {
                        self.budgets[k] = self.budgets[k].max(t).min(self.worst[k]);
                    }
                    self.stats.reruns += 1;
                    self.submit(s)?;
                }
                None => break,
            }
        }
        Err(
            GpuError::Inconsistent("a packet still larger than its copy after a rerun".into())
                .into(),
        )
    }

    /// Slot `s`'s payload words per stripe (into `totals`) and, when all of
    /// it was copied, its packet in `out`.
    fn read_packet(
        &mut self,
        s: usize,
        out: &mut Vec<u8>,
    ) -> Result<Option<Finished>, EncodeError> {
        let slot = &mut self.slots[s];
        let dev = &self.ctx.device;
        let plans = &self.plans;
        let plan_of = &self.plan_of;
        let parts = &self.parts;
        let params = &self.params;
        let steps = &self.steps;
        let (table, header, lens) = (&mut self.table, &mut self.header, &mut self.lens);
        let totals = &mut self.totals;
        let regions = &slot.regions;
        let clock = &slot.clock;
        let clock_at = slot.clock_at as usize;
        let seq = slot.seq;
        slot.read.read(dev, |bytes| -> Result<_, EncodeError> {
            let word = |at: u64| -> u32 {
                let at = at as usize;
                u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
            };
            // The heads: payload words and each slice's, per stripe.
            totals.clear();
            let mut short = false;
            lens.clear();
            for (k, &(first, n)) in parts.iter().enumerate() {
                let (region, budget) = regions[k];
                let total = u64::from(word(region));
                let mut sum = 0u64;
                for i in 0..n {
                    let w = word(region + 4 * (1 + u64::from(i)));
                    sum += u64::from(w);
                    lens.push(4 * w);
                }
                if sum != total {
                    return Err(GpuError::Inconsistent(format!(
                        "stripe from slice {first}: the slices add up to {sum} words, the payload has {total}"
                    ))
                    .into());
                }
                short |= total > budget;
                totals.push(total);
            }
            if short {
                return Ok(None);
            }
            let payload: u64 = totals.iter().map(|t| 4 * t).sum();
            let slices = params.height.div_ceil(params.slice_height);
            let hlen = stream::header_len(slices, steps.tables()[0].len(), 1);
            out.resize(hlen + payload as usize, 0);
            let (head_bytes, mut body) = out.split_at_mut(hlen);
            let mut first_slice = 0usize;
            for (k, &(_, n)) in parts.iter().enumerate() {
                let (region, _) = regions[k];
                let head = 4 * u64::from(plans[plan_of[k]].head_words);
                let from = (region + head) as usize;
                let len = 4 * totals[k] as usize;
                let (dst, rest) = body.split_at_mut(len);
                body = rest;
                let range = first_slice..first_slice + n as usize;
                host::copy_slices_with_crcs(
                    dst,
                    &bytes[from..from + len],
                    &lens[range.clone()],
                    &mut table[range],
                );
                first_slice += n as usize;
            }
            header.clear();
            stream::write_header(params, steps, table, header);
            head_bytes.copy_from_slice(header);
            let timings = clock
                .as_ref()
                .map(|c| c.times(&bytes[clock_at.min(bytes.len())..]));
            let done = Finished {
                seq,
                bytes: out.len(),
                timings,
            };
            Ok(Some(done))
        })?
    }
}
