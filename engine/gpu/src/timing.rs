//! Stage-by-stage timings of GPU work: timestamp queries where the device
//! has them (`TIMESTAMP_QUERY`), wall-clock phases on the CPU where it has
//! not.
//!
//! A [`StageClock`] marks the boundaries between stages while commands are
//! recorded. On a device with timestamps each mark is an empty compute pass
//! that writes a timestamp when it ends, that is once everything recorded
//! before it has finished; the timestamps are resolved into a buffer that
//! travels back with the frame's other bytes, so timing adds no round trip.
//! Without timestamps each mark submits what was recorded so far and waits
//! for it: the figures are then the CPU's, and the work is serialised.

use std::time::Instant;

use serde::Serialize;

use crate::GpuContext;

/// Where a [`StageTimes`] comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum TimeSource {
    /// GPU timestamps between stages, in one submission.
    GpuTimestamps,
    /// Wall-clock time on the CPU, a submission and a wait per stage.
    CpuWall,
}

/// How long each stage of one piece of GPU work took, in the order they
/// ran (a stage of a picture coded in stripes appears once per stripe).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StageTimes {
    /// How the figures were taken.
    pub source: TimeSource,
    /// Stage names and milliseconds.
    pub stages: Vec<(&'static str, f64)>,
}

impl StageTimes {
    /// Milliseconds of every stage together.
    pub fn total_ms(&self) -> f64 {
        self.stages.iter().map(|s| s.1).sum()
    }

    /// Milliseconds of `stage`, summed over its appearances (stripes).
    pub fn ms(&self, stage: &str) -> f64 {
        self.stages
            .iter()
            .filter(|s| s.0 == stage)
            .map(|s| s.1)
            .sum()
    }

    /// One entry per stage name (summed over stripes), in first-seen order.
    pub fn merged(&self) -> StageTimes {
        let mut stages: Vec<(&'static str, f64)> = Vec::new();
        for &(name, ms) in &self.stages {
            match stages.iter_mut().find(|s| s.0 == name) {
                Some(s) => s.1 += ms,
                None => stages.push((name, ms)),
            }
        }
        StageTimes {
            source: self.source,
            stages,
        }
    }
}

impl std::fmt::Display for StageTimes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, (name, ms)) in self.stages.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name} {ms:.3} ms")?;
        }
        let how = match self.source {
            TimeSource::GpuTimestamps => "GPU timestamps",
            TimeSource::CpuWall => "CPU wall clock",
        };
        write!(f, " ({how})")
    }
}

struct Queries {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    capacity: u32,
    period_ns: f64,
}

/// Marks the boundaries between stages while commands are recorded; see the
/// module docs.
pub struct StageClock {
    gpu: Option<Queries>,
    names: Vec<&'static str>,
    marks: u32,
    cpu: Vec<(&'static str, f64)>,
    last: Option<Instant>,
    submits: u64,
}

impl std::fmt::Debug for StageClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StageClock")
            .field("gpu", &self.gpu.is_some())
            .field("marks", &self.marks)
            .finish_non_exhaustive()
    }
}

impl StageClock {
    /// A clock for up to `max_stages` stages per piece of work, with
    /// timestamps where `ctx`'s device has them.
    pub fn new(ctx: &GpuContext, max_stages: u32) -> Self {
        let capacity = (max_stages + 1).min(wgpu::QUERY_SET_MAX_QUERIES);
        let gpu = ctx.has_timestamps().then(|| Queries {
            set: ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("stage clock"),
                ty: wgpu::QueryType::Timestamp,
                count: capacity,
            }),
            resolve: ctx.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("stage clock resolve"),
                size: 8 * u64::from(capacity),
                usage: wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: false,
            }),
            capacity,
            period_ns: f64::from(ctx.queue.get_timestamp_period()),
        });
        StageClock {
            gpu,
            names: Vec::with_capacity(capacity as usize),
            marks: 0,
            cpu: Vec::with_capacity(capacity as usize),
            last: None,
            submits: 0,
        }
    }

    /// A clock of wall-clock phases on the CPU even where the device has
    /// timestamps (to compare the two, or to time the host's share too).
    pub fn wall_clock(max_stages: u32) -> Self {
        let capacity = max_stages + 1;
        StageClock {
            gpu: None,
            names: Vec::with_capacity(capacity as usize),
            marks: 0,
            cpu: Vec::with_capacity(capacity as usize),
            last: None,
            submits: 0,
        }
    }

    /// Whether the figures come from GPU timestamps.
    pub fn is_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// Bytes [`resolve`](Self::resolve) copies (0 without timestamps).
    pub fn bytes(&self) -> u64 {
        self.gpu.as_ref().map_or(0, |q| 8 * u64::from(q.capacity))
    }

    /// Submissions made by marks without timestamps, since the clock was made.
    pub fn submits(&self) -> u64 {
        self.submits
    }

    /// Start timing: the first boundary.
    pub fn begin(&mut self, ctx: &GpuContext, enc: &mut wgpu::CommandEncoder) {
        self.names.clear();
        self.cpu.clear();
        self.marks = 0;
        match &self.gpu {
            Some(_) => self.write(enc),
            None => {
                self.flush(ctx, enc);
                self.last = Some(Instant::now());
            }
        }
    }

    /// End the stage `name` (everything recorded since the last mark).
    pub fn mark(&mut self, ctx: &GpuContext, enc: &mut wgpu::CommandEncoder, name: &'static str) {
        match &self.gpu {
            Some(q) => {
                if self.marks < q.capacity {
                    self.names.push(name);
                    self.write(enc);
                }
            }
            None => {
                self.flush(ctx, enc);
                let now = Instant::now();
                let since = self.last.replace(now).unwrap_or(now);
                self.cpu
                    .push((name, now.duration_since(since).as_secs_f64() * 1e3));
            }
        }
    }

    /// Copy the timestamps into `dst` at `offset` ([`bytes`](Self::bytes)
    /// of them), to be read with the frame; nothing without timestamps.
    pub fn resolve(&self, enc: &mut wgpu::CommandEncoder, dst: &wgpu::Buffer, offset: u64) {
        if let Some(q) = &self.gpu
            && self.marks > 0
        {
            enc.resolve_query_set(&q.set, 0..self.marks, &q.resolve, 0);
            enc.copy_buffer_to_buffer(&q.resolve, 0, dst, offset, 8 * u64::from(self.marks));
        }
    }

    /// The stages, from the bytes [`resolve`](Self::resolve) copied (ignored
    /// without timestamps).
    pub fn times(&self, resolved: &[u8]) -> StageTimes {
        match &self.gpu {
            Some(q) => {
                let ticks: Vec<u64> = resolved
                    .chunks_exact(8)
                    .take(self.marks as usize)
                    .map(|b| u64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
                    .collect();
                let stages = self
                    .names
                    .iter()
                    .zip(ticks.windows(2))
                    .map(|(&name, t)| (name, t[1].saturating_sub(t[0]) as f64 * q.period_ns / 1e6))
                    .collect();
                StageTimes {
                    source: TimeSource::GpuTimestamps,
                    stages,
                }
            }
            None => StageTimes {
                source: TimeSource::CpuWall,
                stages: self.cpu.clone(),
            },
        }
    }

    fn write(&mut self, enc: &mut wgpu::CommandEncoder) {
        if let Some(q) = &self.gpu
            && self.marks < q.capacity
        {
            let pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("stage mark"),
                timestamp_writes: Some(wgpu::ComputePassTimestampWrites {
                    query_set: &q.set,
                    beginning_of_pass_write_index: None,
                    end_of_pass_write_index: Some(self.marks),
                }),
            });
            drop(pass);
            self.marks += 1;
        }
    }

    /// Submit what `enc` holds and wait for it (the CPU clock's marks).
    fn flush(&mut self, ctx: &GpuContext, enc: &mut wgpu::CommandEncoder) {
        let done = std::mem::replace(
            enc,
            ctx.device
                .create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None }),
        );
        ctx.queue.submit([done.finish()]);
        self.submits += 1;
        let _ = ctx.device.poll(wgpu::PollType::wait_indefinitely());
    }
}
