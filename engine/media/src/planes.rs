//! Borrowed views of planar Y'CbCr samples, whatever holds them (a
//! [`VideoFrame`](crate::frame::VideoFrame), a generator's buffers, a
//! decoded picture).

/// One plane of samples: `rows` rows of `cols` samples, `stride` samples apart.
#[derive(Debug, Clone, Copy)]
pub struct Plane<'a, T> {
    /// Samples, row-major.
    pub data: &'a [T],
    /// Distance between rows, in samples (at least `cols`).
    pub stride: usize,
}

/// Three Y'CbCr planes of one frame, borrowed.
#[derive(Debug, Clone, Copy)]
pub struct YCbCrPlanes<'a, T> {
    /// Frame width in pixels.
    pub width: usize,
    /// Frame height in pixels.
    pub height: usize,
    /// Bits per sample: code values run `0..=2^bit_depth - 1`.
    pub bit_depth: u32,
    /// log2 of the chroma subsampling: `(1, 0)` for 4:2:2, `(1, 1)` for 4:2:0.
    pub chroma_shift: (u32, u32),
    /// Luma, `width × height`.
    pub y: Plane<'a, T>,
    /// Cb, `ceil(width / 2^sx) × ceil(height / 2^sy)`.
    pub cb: Plane<'a, T>,
    /// Cr, same geometry as `cb`.
    pub cr: Plane<'a, T>,
}

/// A sample type of a plane (8-bit or 16-bit storage).
pub trait Sample: Copy + Send + Sync {
    /// The code value.
    fn code(self) -> u32;
}

impl Sample for u8 {
    fn code(self) -> u32 {
        u32::from(self)
    }
}

impl Sample for u16 {
    fn code(self) -> u32 {
        u32::from(self)
    }
}
