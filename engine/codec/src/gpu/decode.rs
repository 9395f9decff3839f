//! [`GpuDecoder`]: a bitstream in, the picture out.

use std::sync::Arc;

use med8k_gpu::{GpuContext, GpuError, storage_buffer};
use med8k_media::picture::Picture;
use wgpu::util::DeviceExt;

use super::*;
use crate::geometry::{Block, Geometry};
use crate::stream::{self, Header};
use crate::{DecodeError, Params};

/// Decodes bitstreams on the GPU.
#[derive(Debug)]
pub struct GpuDecoder {
    codec: GpuCodec,
}

impl GpuDecoder {
    /// A decoder on `ctx`'s device.
    pub fn new(ctx: Arc<GpuContext>) -> Self {
        GpuDecoder {
            codec: GpuCodec::new(ctx),
        }
    }

    /// Decode one bitstream, refusing pictures above `max_samples`.
    pub fn decode(&mut self, data: &[u8], max_samples: u64) -> Result<Picture, DecodeError> {
        let header = stream::read_header(data, max_samples)?;
        let params = header.params;
        let limit = self
            .codec
            .ctx
            .device
            .limits()
            .max_storage_buffer_binding_size;
        let parts = stripes(&params, limit);
        if parts.len() == 1 {
            return self.decode_whole(data, &header);
        }
        // Too big for the device at once: decode stripes of slices as streams of their own.
        let mut pic = Picture::zeroed(params.layout, params.width, params.height, params.bit_depth)
            .map_err(|e| GpuError::Inconsistent(e.to_string()))?;
        let starts: Vec<usize> = header
            .slices
            .iter()
            .scan(header.len, |at, &(len, _)| {
                let s = *at;
                *at += len as usize;
                Some(s)
            })
            .collect();
        for (first, n) in parts {
            let y0 = first * params.slice_height;
            let rows = (n * params.slice_height).min(params.height - y0);
            let sub = Params {
                height: rows,
                ..params
            };
            let table = &header.slices[first as usize..(first + n) as usize];
            let mut bytes = Vec::new();
            stream::write_header(&sub, &header.steps.stripe(first, n), table, &mut bytes);
            let a = starts[first as usize];
            let b = starts[(first + n - 1) as usize] + table[n as usize - 1].0 as usize;
            bytes.extend_from_slice(&data[a..b]);
            let sub_header = stream::read_header(&bytes, max_samples)?;
            let part = self
                .decode_whole(&bytes, &sub_header)
                .map_err(|e| match e {
                    DecodeError::SliceCrc { slice } => DecodeError::SliceCrc {
                        slice: slice + first,
                    },
                    DecodeError::Slice { slice, reason } => DecodeError::Slice {
                        slice: slice + first,
                        reason,
                    },
                    DecodeError::Block {
                        slice,
                        block,
                        error,
                    } => DecodeError::Block {
                        slice: slice + first,
                        block,
                        error,
                    },
                    other => other,
                })?;
            for p in 0..params.layout.plane_count() {
                let (w, _) = pic.plane_dims(p);
                let (_, sy) = params.layout.subsampling(p);
                let at = (y0 >> sy) as usize * w as usize;
                let src = &part.planes()[p];
                pic.planes_mut()[p][at..at + src.len()].copy_from_slice(src);
            }
        }
        Ok(pic)
    }

    fn decode_whole(&mut self, data: &[u8], header: &Header) -> Result<Picture, DecodeError> {
        let params = header.params;
        self.codec.plan_for(&params).map_err(DecodeError::from)?;
        let plan = self
            .codec
            .plan
            .as_ref()
            .ok_or(GpuError::Internal("no plan"))?;
        let (offs, lens) = block_offsets(data, header, &plan.geom)?;
        let codec = &mut self.codec;
        let dev = codec.ctx.device.clone();
        let queue = codec.ctx.queue.clone();
        let plan = codec.plan.as_mut().ok_or(GpuError::Internal("no plan"))?;
        let nwords = data.len().div_ceil(4) as u64;
        if plan.words.as_ref().is_none_or(|w| w.size() < 4 * nwords) {
            plan.words = Some(storage_buffer(
                &dev,
                "words",
                4 * nwords.next_power_of_two(),
                wgpu::BufferUsages::empty(),
            ));
            plan.decode_blocks = None;
        }
        let words = plan
            .words
            .as_ref()
            .ok_or(GpuError::Internal("no words buffer"))?;
        let aligned = data.len() & !3;
        queue.write_buffer(words, 0, &data[..aligned]);
        if aligned < data.len() {
            let mut tail = [0u8; 4];
            tail[..data.len() - aligned].copy_from_slice(&data[aligned..]);
            queue.write_buffer(words, aligned as u64, &tail);
        }
        queue.write_buffer(&plan.dec_offs, 0, bytemuck::cast_slice(&offs));
        queue.write_buffer(&plan.lens, 0, bytemuck::cast_slice(&lens));
        queue.write_buffer(
            &plan.steps,
            0,
            bytemuck::cast_slice(&header.steps.gpu_words()),
        );
        queue.write_buffer(&plan.errors, 0, bytemuck::cast_slice(&[u32::MAX, 0]));
        if plan.decode_blocks.is_none() {
            let nb = plan.geom.blocks.len() as u32;
            let params_buf = dev.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("decode params"),
                contents: bytemuck::cast_slice(&[nb, 0, 0, 0]),
                usage: wgpu::BufferUsages::UNIFORM,
            });
            let bufs = [
                words,
                &plan.blocks,
                &plan.steps,
                &plan.dec_offs,
                &plan.lens,
                &plan.coef,
                &plan.errors,
            ];
            let mut entries: Vec<wgpu::BindGroupEntry<'_>> = bufs
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect();
            entries.push(wgpu::BindGroupEntry {
                binding: 7,
                resource: params_buf.as_entire_binding(),
            });
            let bind = dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("decode"),
                layout: &codec.kernels.decode.layout,
                entries: &entries,
            });
            plan.decode_blocks = Some(Dispatch {
                kernel: |k| &k.decode,
                entry: "decode",
                bind,
                groups: groups_1d(u64::from(nb)),
            });
        }
        let codec = &self.codec;
        let plan = codec.plan.as_ref().ok_or(GpuError::Internal("no plan"))?;
        let mut all: Vec<&Dispatch> = plan.decode_blocks.iter().collect();
        all.extend(plan.inverse.iter());
        codec.run(&all, |_| {});
        let err = codec
            .read_back(&plan.errors, 0, 8)
            .map_err(DecodeError::from)?;
        let err: &[u32] = bytemuck::cast_slice(&err);
        if err[1] > 0 {
            let b = &plan.geom.blocks[err[0] as usize];
            let first = plan.geom.slice_blocks[b.slice as usize];
            return Err(DecodeError::Block {
                slice: b.slice,
                block: err[0] - first,
                error: crate::entropy::BlockError::Overrun,
            });
        }
        let total: u64 = plan.plane_words.iter().sum();
        // One copy, from the mapped staging buffer straight into the planes.
        let planes = codec
            .read_back_with(&plan.samples, 0, 4 * total, |bytes| {
                let mut planes = Vec::with_capacity(plan.geom.planes.len());
                let mut at = 0usize;
                for (g, words) in plan.geom.planes.iter().zip(&plan.plane_words) {
                    let n = g.width as usize * g.height as usize;
                    planes.push(
                        bytes[2 * at..2 * (at + n)]
                            .chunks_exact(2)
                            .map(|b| u16::from_le_bytes([b[0], b[1]]))
                            .collect::<Vec<u16>>(),
                    );
                    at += 2 * *words as usize;
                }
                planes
            })
            .map_err(DecodeError::from)?;
        Picture::new(
            params.layout,
            params.width,
            params.height,
            params.bit_depth,
            planes,
        )
        .map_err(|e| GpuError::Inconsistent(format!("decoded picture: {e}")).into())
    }
}

/// Check every slice (CRC, block table) and find each block's first word in
/// the stream and its length.
fn block_offsets(
    data: &[u8],
    header: &Header,
    geom: &Geometry,
) -> Result<(Vec<u32>, Vec<u32>), DecodeError> {
    let mut offs = Vec::with_capacity(geom.blocks.len());
    let mut lens = Vec::with_capacity(geom.blocks.len());
    let mut at = header.len;
    for (s, &(len, crc)) in header.slices.iter().enumerate() {
        let bytes = &data[at..at + len as usize];
        if crc32fast::hash(bytes) != crc {
            return Err(DecodeError::SliceCrc { slice: s as u32 });
        }
        let (l, _) = stream::split_slice(s as u32, bytes, geom)?;
        let mut word = (at + 2 * l.len().next_multiple_of(2)) / 4;
        for n in l {
            offs.push(word as u32);
            lens.push(n);
            word += n as usize;
        }
        at += len as usize;
    }
    Ok((offs, lens))
}

// The kernels read blocks as eight u32s.
const _: () = assert!(std::mem::size_of::<Block>() == 32);
