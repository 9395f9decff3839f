//! Video frames: geometry, pixel format, planes with strides, and where they came from.

mod format;
mod pool;
pub mod v210;

use std::sync::Arc;
use std::time::{Duration, Instant};

pub use format::{
    BadGeometry, FrameLayout, MAX_DIM, PLANE_ALIGN, PixelFormat, PlaneLayout, UnsupportedFormat,
};
pub use pool::{FrameBuffer, FramePool, PoolStats};

#[cfg(target_endian = "big")]
compile_error!("med8k stores 10-bit samples as little-endian u16 and views them in place");

/// One video frame in memory.
///
/// The planes live in one [`FrameBuffer`] described by a [`FrameLayout`]; the
/// buffer may be on loan from a [`FramePool`] and goes back to it on drop.
#[derive(Debug)]
pub struct VideoFrame {
    layout: Arc<FrameLayout>,
    buf: FrameBuffer,
    /// Position in the source's stream, counted from 0 and never reused (gaps mean drops).
    pub seq: u64,
    /// Presentation time in the source's stream, when the source has one.
    pub pts: Option<Duration>,
    /// When the engine received the frame; latency is measured from here.
    pub captured_at: Instant,
    /// Which source produced it (a pipeline name, a device, a file).
    pub source: Arc<str>,
}

/// A buffer that does not fit the layout it was paired with.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("buffer of {got} bytes is too small for a {width}x{height} {format} frame ({need} bytes)")]
pub struct BufferTooSmall {
    /// Bytes the layout needs.
    pub need: usize,
    /// Bytes the buffer has.
    pub got: usize,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// Frame format.
    pub format: PixelFormat,
}

impl VideoFrame {
    /// Pair a layout with a buffer that holds it.
    pub fn new(
        layout: Arc<FrameLayout>,
        buf: FrameBuffer,
        seq: u64,
        source: Arc<str>,
    ) -> Result<Self, BufferTooSmall> {
        if buf.len() < layout.size() {
            return Err(BufferTooSmall {
                need: layout.size(),
                got: buf.len(),
                width: layout.width,
                height: layout.height,
                format: layout.format,
            });
        }
        Ok(VideoFrame {
            layout,
            buf,
            seq,
            pts: None,
            captured_at: Instant::now(),
            source,
        })
    }

    /// A black-or-zero frame in the engine's packed layout, outside any pool.
    pub fn zeroed(width: u32, height: u32, format: PixelFormat) -> Result<Self, BadGeometry> {
        let layout = Arc::new(FrameLayout::packed(width, height, format)?);
        let buf = FrameBuffer::zeroed(layout.size());
        Ok(VideoFrame {
            layout,
            buf,
            seq: 0,
            pts: None,
            captured_at: Instant::now(),
            source: Arc::from("memory"),
        })
    }

    /// Width in pixels.
    pub fn width(&self) -> u32 {
        self.layout.width
    }

    /// Height in pixels.
    pub fn height(&self) -> u32 {
        self.layout.height
    }

    /// Pixel format.
    pub fn format(&self) -> PixelFormat {
        self.layout.format
    }

    /// Plane layout.
    pub fn layout(&self) -> &Arc<FrameLayout> {
        &self.layout
    }

    /// The whole buffer, padding included.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf
    }

    /// Bytes of plane `p`, padding included (`stride * rows`).
    ///
    /// # Panics
    /// If `p` is not below the format's plane count.
    pub fn plane(&self, p: usize) -> &[u8] {
        let l = self.layout.planes()[p];
        &self.buf[l.offset..l.offset + l.span()]
    }

    /// Mutable bytes of plane `p`, padding included.
    ///
    /// # Panics
    /// If `p` is not below the format's plane count.
    pub fn plane_mut(&mut self, p: usize) -> &mut [u8] {
        let l = self.layout.planes()[p];
        &mut self.buf[l.offset..l.offset + l.span()]
    }

    /// Plane `p` as 16-bit samples (for the 10-bit planar formats).
    pub fn plane_u16(&self, p: usize) -> &[u16] {
        bytemuck::cast_slice(self.plane(p))
    }

    /// Plane `p` as mutable 16-bit samples.
    pub fn plane_u16_mut(&mut self, p: usize) -> &mut [u16] {
        bytemuck::cast_slice_mut(self.plane_mut(p))
    }

    /// Every plane as a disjoint mutable byte slice, padding included.
    pub fn planes_mut(&mut self) -> Vec<&mut [u8]> {
        let mut rest: &mut [u8] = &mut self.buf;
        let mut consumed = 0;
        let mut out = Vec::with_capacity(self.layout.planes().len());
        for l in self.layout.planes() {
            let (_, tail) = rest.split_at_mut(l.offset - consumed);
            let (plane, tail) = tail.split_at_mut(l.span());
            out.push(plane);
            rest = tail;
            consumed = l.offset + l.span();
        }
        out
    }

    /// Every plane as disjoint mutable 16-bit samples (10-bit planar formats).
    pub fn planes_u16_mut(&mut self) -> Vec<&mut [u16]> {
        self.planes_mut()
            .into_iter()
            .map(bytemuck::cast_slice_mut)
            .collect()
    }

    /// Rows of plane `p`, each `row_bytes` long (no padding).
    pub fn rows(&self, p: usize) -> impl Iterator<Item = &[u8]> {
        let l = self.layout.planes()[p];
        self.plane(p)
            .chunks_exact(l.stride)
            .map(move |r| &r[..l.row_bytes])
    }

    /// True when both frames have the same geometry, format and picture bytes
    /// (padding is not compared).
    pub fn same_picture(&self, other: &VideoFrame) -> bool {
        self.width() == other.width()
            && self.height() == other.height()
            && self.format() == other.format()
            && (0..self.format().plane_count()).all(|p| self.rows(p).eq(other.rows(p)))
    }

    /// Give up the frame and keep its buffer.
    pub fn into_buffer(self) -> FrameBuffer {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planes_view_as_u16_and_compare_without_padding() {
        let mut a = VideoFrame::zeroed(6, 2, PixelFormat::I422_10).unwrap();
        let mut b = VideoFrame::zeroed(6, 2, PixelFormat::I422_10).unwrap();
        a.plane_u16_mut(0)[1] = 1023;
        assert!(!a.same_picture(&b));
        b.plane_u16_mut(0)[1] = 1023;
        // Padding differs, picture does not.
        let stride = a.layout().planes()[0].stride / 2;
        a.plane_u16_mut(0)[stride - 1] = 7;
        assert!(a.same_picture(&b));
    }

    #[test]
    fn a_short_buffer_is_refused() {
        let layout = Arc::new(FrameLayout::packed(16, 16, PixelFormat::Rgb8).unwrap());
        let err = VideoFrame::new(layout, FrameBuffer::zeroed(10), 0, Arc::from("t")).unwrap_err();
        assert_eq!(err.got, 10);
    }
}
