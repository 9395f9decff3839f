//! The IVF container.

use std::io::{self, Seek, SeekFrom, Write};

use crate::*;

/// Bytes of the IVF file header.
pub const IVF_HEADER_LEN: usize = 32;
/// Bytes of the header before each IVF frame.
pub const IVF_FRAME_HEADER_LEN: usize = 12;
/// Offset of the frame count in the IVF file header.
const IVF_COUNT_OFFSET: u64 = 24;

/// Writes AV1 packets as IVF: a 32-byte file header (`DKIF`, version 0,
/// header length 32, fourcc `AV01`, width and height as u16, the time base as
/// rate and scale u32 — a frame at `pts` shows at `pts * scale / rate`
/// seconds — the frame count as u32, 4 bytes zero), then per frame its size
/// as u32 and its `pts` as u64 before its bytes; all little-endian.
///
/// The frame count is given up front to [`IvfWriter::new`] (0 when unknown;
/// GStreamer's `ivfparse` ignores it). [`IvfWriter::finish`], for seekable
/// writers, overwrites it with the number of frames written;
/// [`IvfWriter::into_inner`] leaves it as given.
#[derive(Debug)]
pub struct IvfWriter<W: Write> {
    inner: W,
    frames: u32,
    /// Bytes written since the start of the file header.
    written: u64,
}

impl<W: Write> IvfWriter<W> {
    /// Write the file header for `width`×`height` frames at
    /// `frame_rate.0 / frame_rate.1` frames per second (pts count frames).
    pub fn new(
        mut inner: W,
        width: u32,
        height: u32,
        frame_rate: (u32, u32),
        frame_count: u32,
    ) -> Result<Self, Av1Error> {
        let limit = |what, value: u32| Av1Error::IvfLimit {
            what,
            value: u64::from(value),
            max: u64::from(u16::MAX),
        };
        let w = u16::try_from(width).map_err(|_| limit("width", width))?;
        let h = u16::try_from(height).map_err(|_| limit("height", height))?;
        let mut header = [0u8; IVF_HEADER_LEN];
        header[0..4].copy_from_slice(b"DKIF");
        header[4..6].copy_from_slice(&0u16.to_le_bytes());
        header[6..8].copy_from_slice(&(IVF_HEADER_LEN as u16).to_le_bytes());
        header[8..12].copy_from_slice(b"AV01");
        header[12..14].copy_from_slice(&w.to_le_bytes());
        header[14..16].copy_from_slice(&h.to_le_bytes());
        header[16..20].copy_from_slice(&frame_rate.0.to_le_bytes());
        header[20..24].copy_from_slice(&frame_rate.1.to_le_bytes());
        header[24..28].copy_from_slice(&frame_count.to_le_bytes());
        inner.write_all(&header)?;
        Ok(IvfWriter {
            inner,
            frames: 0,
            written: IVF_HEADER_LEN as u64,
        })
    }

    /// Write one frame shown at `pts` (in frames).
    pub fn write_frame(&mut self, data: &[u8], pts: u64) -> Result<(), Av1Error> {
        let size = u32::try_from(data.len()).map_err(|_| Av1Error::IvfLimit {
            what: "frame bytes",
            value: data.len() as u64,
            max: u64::from(u32::MAX),
        })?;
        let frames = self.frames.checked_add(1).ok_or(Av1Error::IvfLimit {
            what: "frame count",
            value: u64::from(u32::MAX) + 1,
            max: u64::from(u32::MAX),
        })?;
        let mut header = [0u8; IVF_FRAME_HEADER_LEN];
        header[0..4].copy_from_slice(&size.to_le_bytes());
        header[4..12].copy_from_slice(&pts.to_le_bytes());
        self.inner.write_all(&header)?;
        self.inner.write_all(data)?;
        self.frames = frames;
        self.written += (IVF_FRAME_HEADER_LEN + data.len()) as u64;
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u32 {
        self.frames
    }

    /// Flush and return the writer; the header keeps the count given to [`IvfWriter::new`].
    pub fn into_inner(mut self) -> Result<W, Av1Error> {
        self.inner.flush()?;
        Ok(self.inner)
    }
}

impl<W: Write + Seek> IvfWriter<W> {
    /// Write the number of frames written into the file header, flush, and
    /// return the writer positioned after the last frame.
    pub fn finish(mut self) -> Result<W, Av1Error> {
        let end = self.inner.stream_position()?;
        let start = end.checked_sub(self.written).ok_or_else(|| {
            io::Error::other("the IVF writer was moved back behind its own header")
        })?;
        self.inner.seek(SeekFrom::Start(start + IVF_COUNT_OFFSET))?;
        self.inner.write_all(&self.frames.to_le_bytes())?;
        self.inner.seek(SeekFrom::Start(end))?;
        self.inner.flush()?;
        Ok(self.inner)
    }
}
