//! Samples to the GPU and bytes back.

use std::sync::Mutex;

use med8k_media::picture::{Layout, Picture};

use crate::GpuError;

/// Where a picture's planes lie in a GPU sample buffer, the layout every
/// med8k kernel reads: u16 samples two per 32-bit word (low half first),
/// planes one after the other, each plane starting on a word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleLayout {
    /// What the planes are.
    pub layout: Layout,
    /// Width in pixels.
    pub width: u32,
    /// Height in lines.
    pub height: u32,
    /// Significant bits per sample.
    pub bit_depth: u8,
}

impl SampleLayout {
    /// The layout of `pic`'s planes.
    pub fn of(pic: &Picture) -> Self {
        SampleLayout {
            layout: pic.layout(),
            width: pic.width(),
            height: pic.height(),
            bit_depth: pic.bit_depth(),
        }
    }

    /// The first word of each plane, and the words of all of them.
    pub fn plane_words(&self) -> (Vec<u64>, u64) {
        let mut at = 0u64;
        let firsts = (0..self.layout.plane_count())
            .map(|p| {
                let (w, h) = self.layout.plane_dims(p, self.width, self.height);
                let first = at;
                at += (u64::from(w) * u64::from(h)).div_ceil(2);
                first
            })
            .collect();
        (firsts, at)
    }
}

/// Write `samples` into `buf` from byte `at` (a word boundary), the odd last
/// sample in a word of its own.
pub fn write_samples(queue: &wgpu::Queue, buf: &wgpu::Buffer, at: u64, samples: &[u16]) {
    let bytes: &[u8] = bytemuck::cast_slice(samples);
    let even = bytes.len() & !3;
    if even > 0 {
        queue.write_buffer(buf, at, &bytes[..even]);
    }
    if even < bytes.len() {
        let mut tail = [0u8; 4];
        tail[..bytes.len() - even].copy_from_slice(&bytes[even..]);
        queue.write_buffer(buf, at + even as u64, &tail);
    }
}

/// Map the first `bytes` of `buf` (a `MAP_READ` buffer whose copies were
/// submitted), wait for the device, hand them to `f`, unmap (on every path,
/// so the buffer can be mapped again).
pub fn read_mapped<T>(
    dev: &wgpu::Device,
    buf: &wgpu::Buffer,
    bytes: u64,
    f: impl FnOnce(&[u8]) -> T,
) -> Result<T, GpuError> {
    let slice = buf.slice(0..bytes.max(4).next_multiple_of(4));
    let (tx, rx) = std::sync::mpsc::channel();
    slice.map_async(wgpu::MapMode::Read, move |r| {
        let _ = tx.send(r);
    });
    dev.poll(wgpu::PollType::wait_indefinitely())
        .map_err(|e| GpuError::ReadBack(format!("device poll: {e}")))?;
    rx.recv()
        .map_err(|_| GpuError::ReadBack("map callback lost".to_owned()))?
        .map_err(|e| GpuError::ReadBack(format!("map: {e}")))?;
    let out = slice
        .get_mapped_range()
        .map_err(|e| GpuError::ReadBack(format!("mapped range: {e}")))
        .map(|data| f(&data[..bytes as usize]));
    buf.unmap();
    out
}

/// A host-visible buffer for read-backs, kept between calls: allocating
/// (and first touching) tens of MB of mappable memory per frame costs more
/// than the copy itself.
#[derive(Debug, Default)]
pub struct ReadBack {
    staging: Mutex<Option<wgpu::Buffer>>,
}

impl ReadBack {
    /// An empty one; the buffer is made on first use, and grown as needed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Copy `bytes` of `src` from `offset` into the staging buffer and hand
    /// them to `f` while mapped.
    pub fn read<T>(
        &self,
        dev: &wgpu::Device,
        queue: &wgpu::Queue,
        src: &wgpu::Buffer,
        offset: u64,
        bytes: u64,
        f: impl FnOnce(&[u8]) -> T,
    ) -> Result<T, GpuError> {
        let size = bytes.max(4).next_multiple_of(4);
        let mut staging = self
            .staging
            .lock()
            .map_err(|_| GpuError::ReadBack("staging buffer lock poisoned".to_owned()))?;
        let buf = match staging.as_ref() {
            Some(b) if b.size() >= size => b,
            _ => staging.insert(dev.create_buffer(&wgpu::BufferDescriptor {
                label: Some("read_back"),
                size: size.next_power_of_two(),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })),
        };
        let mut enc = dev.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: None });
        enc.copy_buffer_to_buffer(src, offset, buf, 0, size);
        queue.submit([enc.finish()]);
        read_mapped(dev, buf, bytes, f)
    }
}

/// A picture held on a GPU in the [`SampleLayout`], as an encoder loaded it:
/// other kernels on the same device can read it without another upload.
#[derive(Debug, Clone, Copy)]
pub struct Resident<'a> {
    /// The device it lies on.
    pub ctx: &'a std::sync::Arc<crate::GpuContext>,
    /// The sample buffer.
    pub samples: &'a wgpu::Buffer,
    /// Where its planes lie.
    pub layout: SampleLayout,
}
