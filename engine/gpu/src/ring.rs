//! Host-visible buffers kept from frame to frame, the slots of an upload or
//! read-back ring.
//!
//! `queue.write_buffer` makes a staging buffer and copies into it on every
//! call; a frame pipeline instead keeps two or three [`UploadSlot`]s, writes
//! each frame straight into one while it is mapped, and has the GPU copy
//! from it. Each slot is mapped again when the submission that read it is
//! done, so with a ring of three the CPU fills frame N while the GPU works
//! on N-1 and N-2. [`ReadSlot`]s do the same the other way.

use std::sync::{Arc, Mutex};

use crate::GpuError;

type Signal = Arc<Mutex<Option<Result<(), wgpu::BufferAsyncError>>>>;

fn signal() -> Signal {
    Arc::new(Mutex::new(None))
}

/// `sig`, cleared, and a callback that settles it (no allocation but the
/// callback's own box).
fn rearm(sig: &Signal) -> impl FnOnce(Result<(), wgpu::BufferAsyncError>) + Send + 'static {
    *sig.lock().unwrap_or_else(|p| p.into_inner()) = None;
    let s = sig.clone();
    move |r| *s.lock().unwrap_or_else(|p| p.into_inner()) = Some(r)
}

fn settled(sig: &Signal) -> Option<Result<(), wgpu::BufferAsyncError>> {
    sig.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// Wait until `sig` is settled: for `index` (when given), then for
/// everything; each blocking poll counts in `waits`.
fn wait_for(
    dev: &wgpu::Device,
    sig: &Signal,
    index: Option<&wgpu::SubmissionIndex>,
    waits: &mut u64,
) -> Result<(), GpuError> {
    for all in [false, true] {
        if let Some(r) = settled(sig) {
            return r.map_err(|e| GpuError::ReadBack(format!("map: {e}")));
        }
        let poll = match (all, index) {
            (false, Some(i)) => wgpu::PollType::Wait {
                submission_index: Some(i.clone()),
                timeout: None,
            },
            _ => wgpu::PollType::wait_indefinitely(),
        };
        *waits += 1;
        dev.poll(poll)
            .map_err(|e| GpuError::ReadBack(format!("device poll: {e}")))?;
    }
    settled(sig)
        .ok_or_else(|| GpuError::ReadBack("a mapping never completed".to_owned()))?
        .map_err(|e| GpuError::ReadBack(format!("map: {e}")))
}

#[derive(Debug)]
enum Upload {
    /// Mapped: the CPU may write.
    Mapped,
    /// Unmapped, read by submission `.0` (or not yet submitted).
    InUse(Option<wgpu::SubmissionIndex>),
    /// Being mapped again once submission `.0` is done.
    Mapping(Option<wgpu::SubmissionIndex>),
}

/// One slot of an upload ring: a `MAP_WRITE | COPY_SRC` buffer the CPU fills
/// while mapped and the GPU copies from.
#[derive(Debug)]
pub struct UploadSlot {
    buf: wgpu::Buffer,
    state: Upload,
    sig: Signal,
    waits: u64,
}

impl UploadSlot {
    /// A slot of `size` bytes (rounded up to a word), mapped and ready.
    pub fn new(dev: &wgpu::Device, label: &str, size: u64) -> Self {
        UploadSlot {
            buf: dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size.max(4).next_multiple_of(4),
                usage: wgpu::BufferUsages::MAP_WRITE | wgpu::BufferUsages::COPY_SRC,
                mapped_at_creation: true,
            }),
            state: Upload::Mapped,
            sig: signal(),
            waits: 0,
        }
    }

    /// The buffer, to copy from.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buf
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.buf.size()
    }

    /// Blocking waits so far (for a mapping that was not ready).
    pub fn waits(&self) -> u64 {
        self.waits
    }

    /// Hand `f` the first `len` bytes (rounded up to a word) to write, once
    /// the slot is mapped, then unmap it for the GPU. What `f` leaves
    /// unwritten keeps the slot's earlier bytes.
    pub fn fill<T>(
        &mut self,
        dev: &wgpu::Device,
        len: u64,
        f: impl FnOnce(wgpu::WriteOnly<'_, [u8]>) -> T,
    ) -> Result<T, GpuError> {
        let len = len.max(4).next_multiple_of(4);
        if len > self.buf.size() {
            return Err(GpuError::TooLarge(format!(
                "{len} bytes into an upload slot of {}",
                self.buf.size()
            )));
        }
        if let Upload::InUse(_) = self.state {
            self.release();
        }
        if let Upload::Mapping(index) = &self.state {
            wait_for(dev, &self.sig, index.as_ref(), &mut self.waits)?;
            self.state = Upload::Mapped;
        }
        let out = {
            let mut view = self
                .buf
                .slice(..len)
                .get_mapped_range_mut()
                .map_err(|e| GpuError::ReadBack(format!("upload slot: {e}")))?;
            f(view.slice(..))
        };
        self.buf.unmap();
        self.state = Upload::InUse(None);
        Ok(out)
    }

    /// The submission that copies from the slot.
    pub fn used_by(&mut self, index: wgpu::SubmissionIndex) {
        self.state = Upload::InUse(Some(index));
    }

    /// Map the slot again for the next [`fill`](Self::fill) once the
    /// submission that used it is done (call when its bytes are no longer
    /// needed: they may be copied again until then).
    pub fn release(&mut self) {
        if let Upload::InUse(index) = &self.state {
            let index = index.clone();
            self.buf
                .map_async(wgpu::MapMode::Write, .., rearm(&self.sig));
            self.state = Upload::Mapping(index);
        }
    }
}

/// One slot of a read-back ring: a `MAP_READ | COPY_DST` buffer the GPU
/// copies into and the CPU reads while mapped.
#[derive(Debug)]
pub struct ReadSlot {
    buf: wgpu::Buffer,
    pending: Option<(wgpu::SubmissionIndex, u64)>,
    sig: Signal,
    waits: u64,
}

impl ReadSlot {
    /// A slot of `size` bytes (rounded up to a word).
    pub fn new(dev: &wgpu::Device, label: &str, size: u64) -> Self {
        ReadSlot {
            buf: dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some(label),
                size: size.max(4).next_multiple_of(4),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            }),
            pending: None,
            sig: signal(),
            waits: 0,
        }
    }

    /// The buffer, to copy into.
    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buf
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.buf.size()
    }

    /// Blocking waits so far.
    pub fn waits(&self) -> u64 {
        self.waits
    }

    /// Submission `index` copies into the first `len` bytes: map them as
    /// soon as it is done.
    pub fn used_by(&mut self, index: wgpu::SubmissionIndex, len: u64) {
        let len = len.max(4).next_multiple_of(4).min(self.buf.size());
        self.buf
            .map_async(wgpu::MapMode::Read, ..len, rearm(&self.sig));
        self.pending = Some((index, len));
    }

    /// Whether the bytes can be read without waiting (polls the device
    /// once, without blocking).
    pub fn is_ready(&self, dev: &wgpu::Device) -> bool {
        if self.pending.is_none() {
            return false;
        }
        if settled(&self.sig).is_none() {
            let _ = dev.poll(wgpu::PollType::Poll);
        }
        settled(&self.sig).is_some()
    }

    /// Wait for the copies, hand `f` the bytes, unmap.
    pub fn read<T>(
        &mut self,
        dev: &wgpu::Device,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, GpuError> {
        let (index, len) = self
            .pending
            .take()
            .ok_or(GpuError::Internal("read slot read before a copy into it"))?;
        wait_for(dev, &self.sig, Some(&index), &mut self.waits)?;
        let out = {
            let view = self
                .buf
                .slice(..len)
                .get_mapped_range()
                .map_err(|e| GpuError::ReadBack(format!("read slot: {e}")))?;
            f(&view)
        };
        self.buf.unmap();
        Ok(out)
    }

    /// Forget a pending copy after an error (unmapping what was mapped).
    pub fn abandon(&mut self) {
        if self.pending.take().is_some() {
            self.buf.unmap();
        }
    }
}
