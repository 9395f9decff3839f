//! The CPU twin: every stage in plain Rust, parallel over slices with rayon.
//! It is the specification the GPU kernels are tested against.

use rayon::prelude::*;

use super::entropy::{BitWriter, decode_block, encode_block};
use super::geometry::{Block, Geometry};
use super::transform::{forward_components, inverse_components, spatial_forward, spatial_inverse};
use super::{Coded, DecodeError, EncodeBackend, Steps};
use med8k_media::picture::Picture;

/// Encoder state for one picture on the CPU.
#[derive(Debug, Default)]
pub struct CpuEncoder {
    coef: Vec<i32>,
}

/// Split the coefficient buffer into one mutable region per slice and plane.
fn slice_regions<'a>(coef: &'a mut [i32], geom: &Geometry) -> Vec<(usize, u32, &'a mut [i32])> {
    // Cut every plane into its slices, then group by slice.
    let mut rest = coef;
    let mut out = Vec::new();
    for (p, plane) in geom.planes.iter().enumerate() {
        let (mine, tail) = rest.split_at_mut(plane.width as usize * plane.height as usize);
        rest = tail;
        let mut mine = mine;
        for s in 0..geom.slices {
            let (_, rows) = plane.slice_rows(s);
            let (part, tail) = mine.split_at_mut(rows as usize * plane.width as usize);
            mine = tail;
            out.push((s as usize * geom.planes.len() + p, rows, part));
        }
    }
    out.sort_by_key(|r| r.0);
    out
}

/// The spatial wavelet of every slice of every plane, forward or inverse.
pub fn spatial(coef: &mut [i32], geom: &Geometry, inverse: bool) {
    let nplanes = geom.planes.len();
    slice_regions(coef, geom).into_par_iter().for_each_init(
        Vec::new,
        |tmp, (key, rows, region)| {
            let plane = &geom.planes[key % nplanes];
            let f = if inverse {
                spatial_inverse
            } else {
                spatial_forward
            };
            f(
                region,
                plane.width as usize,
                plane.width,
                rows,
                geom.levels,
                tmp,
            );
        },
    );
}

impl CpuEncoder {
    /// A new encoder; buffers are reused from picture to picture.
    pub fn new() -> Self {
        Self::default()
    }
}

impl EncodeBackend for CpuEncoder {
    fn load(&mut self, pic: &Picture, geom: &Geometry) -> Result<(), super::EncodeError> {
        self.coef = forward_components(pic, geom);
        spatial(&mut self.coef, geom, false);
        Ok(())
    }

    fn block_words(
        &mut self,
        geom: &Geometry,
        table: &[u32],
        slices: &[u32],
    ) -> Result<Vec<u32>, super::EncodeError> {
        let coef = &self.coef;
        Ok(slices
            .par_iter()
            .flat_map_iter(|&s| {
                let mut w = BitWriter::default();
                let mut rows = Vec::new();
                geom.slice(s)
                    .iter()
                    .map(|b| {
                        w.clear();
                        encode_block(coef, b, table[b.band as usize], &mut w, &mut rows) as u32
                    })
                    .collect::<Vec<_>>()
            })
            .collect())
    }

    fn encode(&mut self, geom: &Geometry, steps: &Steps) -> Result<Coded, super::EncodeError> {
        let coef = &self.coef;
        let slices: Vec<Vec<u8>> = (0..geom.slices)
            .into_par_iter()
            .map(|s| {
                let mut w = BitWriter::default();
                let mut rows = Vec::new();
                let blocks = geom.slice(s);
                let mut lens = Vec::with_capacity(blocks.len());
                let mut words = Vec::new();
                for b in blocks {
                    w.clear();
                    let n = encode_block(coef, b, steps.step(s, b.band), &mut w, &mut rows);
                    lens.push(n as u32);
                    words.extend_from_slice(w.finish());
                }
                let mut out = Vec::with_capacity(2 * blocks.len() + 4 * words.len() + 4);
                super::stream::write_slice(&lens, &words, &mut out);
                out
            })
            .collect();
        Ok(Coded::from_slices(slices))
    }
}

/// Decode every slice's blocks into coefficients, then invert the transforms into `pic`.
pub fn decode(
    data: &[u8],
    header: &super::stream::Header,
    geom: &Geometry,
    pic: &mut Picture,
) -> Result<(), DecodeError> {
    let mut coef = vec![0i32; geom.coefficients];
    let starts: Vec<usize> = header
        .slices
        .iter()
        .scan(header.len, |pos, &(len, _)| {
            let start = *pos;
            *pos += len as usize;
            Some(start)
        })
        .collect();
    let nplanes = geom.planes.len();
    let mut per_slice: Vec<Vec<&mut [i32]>> = (0..geom.slices).map(|_| Vec::new()).collect();
    for (key, _, region) in slice_regions(&mut coef, geom) {
        per_slice[key / nplanes].push(region);
    }
    per_slice.into_par_iter().enumerate().try_for_each_init(
        Vec::new,
        |rows, (s, mut regions)| {
            let s = s as u32;
            let (len, crc) = header.slices[s as usize];
            let bytes = &data[starts[s as usize]..starts[s as usize] + len as usize];
            if crc32fast::hash(bytes) != crc {
                return Err(DecodeError::SliceCrc { slice: s });
            }
            let (lens, body) = super::stream::split_slice(s, bytes, geom)?;
            let words: Vec<u32> = body
                .chunks_exact(4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
                .collect();
            let mut at = 0usize;
            for (i, (b, &n)) in geom.slice(s).iter().zip(&lens).enumerate() {
                let p = geom.plane_of(b);
                let plane = &geom.planes[p];
                let base = plane.offset + (plane.slice_rows(s).0 * plane.width) as usize;
                let local = Block {
                    offset: b.offset - base as u32,
                    ..*b
                };
                decode_block(
                    &words[at..at + n as usize],
                    regions[p],
                    &local,
                    header.steps.step(s, b.band),
                    rows,
                )
                .map_err(|e| DecodeError::Block {
                    slice: s,
                    block: i as u32,
                    error: e,
                })?;
                at += n as usize;
            }
            Ok(())
        },
    )?;
    spatial(&mut coef, geom, true);
    inverse_components(coef, pic, geom);
    Ok(())
}
