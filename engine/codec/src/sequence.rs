//! Sequence files: many coded frames in one file.
//!
//! ```text
//! "M8KS"  version:u8
//! { length:u32  bitstream[length] }*     one per frame, little-endian lengths
//! ```
//! A file that does not start with `M8KS` is a single bitstream.

use std::io::{self, Write};

/// First bytes of a sequence file.
pub const MAGIC: &[u8; 4] = b"M8KS";
/// The version this build writes and reads.
pub const VERSION: u8 = 1;

/// A sequence file that cannot be split.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SequenceError {
    /// Written by a newer build.
    #[error("sequence version {0} is not supported (this build reads {VERSION})")]
    Version(u8),
    /// The file ends inside a frame or its length.
    #[error("sequence truncated in frame {frame}: {need} bytes announced, {got} present")]
    Truncated {
        /// The frame (from 0).
        frame: usize,
        /// Bytes the frame needs, its length field included.
        need: usize,
        /// Bytes left in the file.
        got: usize,
    },
}

/// The frames of a sequence file, or the whole of `data` when it is a single
/// bitstream. Borrows, never copies.
pub fn split(data: &[u8]) -> Result<Vec<&[u8]>, SequenceError> {
    if data.len() < 5 || &data[..4] != MAGIC {
        return Ok(vec![data]);
    }
    if data[4] != VERSION {
        return Err(SequenceError::Version(data[4]));
    }
    let mut frames = Vec::new();
    let mut rest = &data[5..];
    while !rest.is_empty() {
        let truncated = |need: usize| SequenceError::Truncated {
            frame: frames.len(),
            need,
            got: rest.len(),
        };
        let len = rest
            .get(..4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
            .ok_or_else(|| truncated(4))?;
        let frame = rest.get(4..4 + len).ok_or_else(|| truncated(4 + len))?;
        frames.push(frame);
        rest = &rest[4 + len..];
    }
    Ok(frames)
}

/// Writes a sequence file frame by frame.
#[derive(Debug)]
pub struct SequenceWriter<W: Write> {
    out: W,
    frames: u64,
    bytes: u64,
}

impl<W: Write> SequenceWriter<W> {
    /// Start a sequence: writes the magic and version.
    pub fn new(mut out: W) -> io::Result<Self> {
        out.write_all(MAGIC)?;
        out.write_all(&[VERSION])?;
        Ok(SequenceWriter {
            out,
            frames: 0,
            bytes: 5,
        })
    }

    /// Append one coded frame.
    pub fn write_frame(&mut self, bitstream: &[u8]) -> io::Result<()> {
        let len = u32::try_from(bitstream.len())
            .map_err(|_| io::Error::other("a coded frame over 4 GiB cannot go in a sequence"))?;
        self.out.write_all(&len.to_le_bytes())?;
        self.out.write_all(bitstream)?;
        self.frames += 1;
        self.bytes += 4 + u64::from(len);
        Ok(())
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Flush and hand back the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_and_truncation_is_named() {
        let mut w = SequenceWriter::new(Vec::new()).unwrap();
        w.write_frame(b"M8KWone").unwrap();
        w.write_frame(b"").unwrap();
        w.write_frame(b"three").unwrap();
        assert_eq!(w.frames(), 3);
        let data = w.finish().unwrap();
        assert_eq!(split(&data).unwrap(), vec![&b"M8KWone"[..], b"", b"three"]);
        // Cuts at a frame boundary are shorter sequences; any other cut is an error.
        for cut in 5..data.len() {
            match (cut, split(&data[..cut])) {
                (5, Ok(f)) => assert!(f.is_empty()),
                (16, Ok(f)) => assert_eq!(f.len(), 1),
                (20, Ok(f)) => assert_eq!(f.len(), 2),
                (_, Err(SequenceError::Truncated { .. })) => {}
                (cut, other) => panic!("cut at {cut}: {other:?}"),
            }
        }
        assert_eq!(split(b"M8KWxyz").unwrap(), vec![&b"M8KWxyz"[..]]);
        let mut newer = data.clone();
        newer[4] = 9;
        assert_eq!(split(&newer), Err(SequenceError::Version(9)));
    }
}
