//! [`GpuDecoder`]: a bitstream in, the picture out, one at a time.

use std::sync::Arc;

use med8k_gpu::{GpuContext, GpuError, StageTimes};
use med8k_media::picture::Picture;

use super::{Decoded, GpuStreamDecoder, StreamStats};
use crate::DecodeError;
use crate::entropy::decode_block;
use crate::geometry::Block;
use crate::stream;

/// Decodes bitstreams on the GPU, one at a time: a
/// [`GpuStreamDecoder`] with one frame in flight, whose errors are
/// restated as the CPU twin's (the GPU tells which block or slice is bad;
/// the twin says what is wrong with it).
#[derive(Debug)]
pub struct GpuDecoder {
    inner: GpuStreamDecoder,
    timings: bool,
    last: Option<StageTimes>,
}

impl GpuDecoder {
    /// A decoder on `ctx`'s device.
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        GpuDecoder {
            inner: GpuStreamDecoder::new(ctx, false).with_depth(1),
            timings: false,
            last: None,
        }
    }

    /// Time every decode stage by stage ([`last_timings`](Self::last_timings)),
    /// before the first decode.
    pub fn with_timings(mut self, on: bool) -> Self {
        self.inner = self.inner.with_timings(on);
        self.timings = on;
        self
    }

    /// The stages of the last decode, when timing.
    pub fn last_timings(&self) -> Option<&StageTimes> {
        self.last.as_ref()
    }

    /// What the decoder has done so far.
    pub fn stats(&self) -> StreamStats {
        self.inner.stats()
    }

    /// Decode one bitstream, refusing pictures above `max_samples`.
    pub fn decode(&mut self, data: &[u8], max_samples: u64) -> Result<Picture, DecodeError> {
        let mut out = Decoded::picture();
        self.inner.set_max_samples(max_samples);
        let done = match self.inner.send_packet(data, &mut out) {
            Ok(Some(done)) => Ok(done),
            Ok(None) => self
                .inner
                .receive_frame(&mut out)
                .and_then(|d| d.ok_or_else(|| GpuError::Internal("no frame came back").into())),
            Err(e) => Err(e),
        };
        let done = done.map_err(|e| restate(data, max_samples, e))?;
        self.last = done.timings;
        match out {
            Decoded::Picture(pic) => Ok(pic),
            Decoded::V210(_) => {
                Err(GpuError::Internal("a v210 frame from a planar decoder").into())
            }
        }
    }
}

/// The CPU twin's error for what the GPU found wrong in `data`.
fn restate(data: &[u8], max_samples: u64, e: DecodeError) -> DecodeError {
    let gpu_only = |what: String| -> DecodeError {
        GpuError::Inconsistent(format!("{what}, which the CPU twin decodes")).into()
    };
    match e {
        DecodeError::Slice { slice, reason } => {
            let Ok(header) = stream::read_header(data, max_samples) else {
                return DecodeError::Slice { slice, reason };
            };
            let geom = header.params.geometry();
            let Some(bytes) = slice_bytes(data, &header, slice) else {
                return DecodeError::Slice { slice, reason };
            };
            match stream::split_slice(slice, bytes, &geom) {
                Err(e) => e,
                Ok(_) => gpu_only(format!("the GPU found slice {slice} wrong ({reason})")),
            }
        }
        DecodeError::Block { slice, block, .. } => {
            let Ok(header) = stream::read_header(data, max_samples) else {
                return e;
            };
            let geom = header.params.geometry();
            let Some(bytes) = slice_bytes(data, &header, slice) else {
                return e;
            };
            let (lens, body) = match stream::split_slice(slice, bytes, &geom) {
                Ok(x) => x,
                Err(e) => return e,
            };
            let at: usize = lens[..block as usize].iter().map(|&l| l as usize).sum();
            let n = lens[block as usize] as usize;
            let words: Vec<u32> = body[4 * at..4 * (at + n)]
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let b = geom.slice(slice)[block as usize];
            let local = Block {
                offset: 0,
                stride: b.width,
                ..b
            };
            let mut coef = vec![0i32; (b.width * b.height) as usize];
            let step = header.steps.step(slice, b.band);
            match decode_block(&words, &mut coef, &local, step, &mut Vec::new()) {
                Err(error) => DecodeError::Block {
                    slice,
                    block,
                    error,
                },
                Ok(()) => gpu_only(format!(
                    "the GPU found block {block} of slice {slice} wrong"
                )),
            }
        }
        other => other,
    }
}

/// The bytes of slice `slice` of `data`.
fn slice_bytes<'a>(data: &'a [u8], header: &stream::Header, slice: u32) -> Option<&'a [u8]> {
    let start = header.len
        + header.slices[..slice as usize]
            .iter()
            .map(|s| s.0 as usize)
            .sum::<usize>();
    let len = header.slices.get(slice as usize)?.0 as usize;
    data.get(start..start + len)
}
