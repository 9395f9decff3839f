//! Where every coefficient lives: planes, slices, subbands and code blocks.
//!
//! Both backends work on one buffer of i32 coefficients holding every plane
//! one after the other, row-major and tightly packed. A slice is a band of
//! rows of every plane; inside each slice and plane, the wavelet leaves its
//! subbands in the Mallat arrangement (LL top-left, then HL, LH, HH per
//! level). Each subband is cut into code blocks of whole columns; a block is
//! the unit of entropy coding and of GPU parallelism.
//!
//! The block list is computed once per picture shape, here, and handed to the
//! GPU as a table, so both backends walk exactly the same blocks.

use med8k_media::picture::Layout;

/// Most coefficients a code block aims for; blocks of short subbands are wider.
pub const BLOCK_COEFFS: u32 = 1024;
/// Narrowest code block, in columns.
pub const MIN_BLOCK_WIDTH: u32 = 32;

/// One plane's place in the coefficient buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneGeom {
    /// Index of the plane's first coefficient.
    pub offset: usize,
    /// Width (also the row stride).
    pub width: u32,
    /// Height.
    pub height: u32,
    /// Rows of this plane in one slice (the last slice may have fewer).
    pub slice_rows: u32,
}

/// One code block, as the entropy coder and the GPU table see it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct Block {
    /// Index of the block's top-left coefficient in the coefficient buffer.
    pub offset: u32,
    /// Row stride (the plane's width).
    pub stride: u32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Index into the step table (0 = LL, then HL, LH, HH per level from 1).
    pub band: u32,
    /// Slice the block belongs to.
    pub slice: u32,
    /// First word of the block's worst-case scratch area (GPU encoder).
    pub scratch: u32,
    /// Padding to 32 bytes.
    pub _pad: u32,
}

/// A rectangle of one slice's plane region: a subband.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subband {
    /// Column of the top-left coefficient, within the plane.
    pub x: u32,
    /// Row of the top-left coefficient, within the slice.
    pub y: u32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// Step table index.
    pub band: u32,
}

/// Sizes of the low and high halves of a length-`n` signal after one lifting level.
pub fn split(n: u32) -> (u32, u32) {
    (n.div_ceil(2), n / 2)
}

/// The subbands of a `width`×`height` region after `levels` wavelet levels,
/// in coding order: LL, then HL, LH, HH from the coarsest level down.
/// Empty subbands are left out.
pub fn subbands(width: u32, height: u32, levels: u8) -> Vec<Subband> {
    let mut dims = vec![(width, height)];
    for _ in 0..levels {
        let (w, h) = dims[dims.len() - 1];
        dims.push((split(w).0, split(h).0));
    }
    let (lw, lh) = dims[usize::from(levels)];
    let mut out = vec![Subband {
        x: 0,
        y: 0,
        width: lw,
        height: lh,
        band: 0,
    }];
    for level in (1..=u32::from(levels)).rev() {
        let (w, h) = dims[level as usize - 1];
        let (wl, wh) = split(w);
        let (hl, hh) = split(h);
        let base = 1 + 3 * (level - 1);
        for (x, y, bw, bh, o) in [(wl, 0, wh, hl, 0), (0, hl, wl, hh, 1), (wl, hl, wh, hh, 2)] {
            out.push(Subband {
                x,
                y,
                width: bw,
                height: bh,
                band: base + o,
            });
        }
    }
    out.retain(|s| s.width > 0 && s.height > 0);
    out
}

/// Block width for a subband `height` rows tall.
pub fn block_width(height: u32) -> u32 {
    (BLOCK_COEFFS / height.max(1)).max(MIN_BLOCK_WIDTH)
}

/// The coefficient buffer and block table for one picture shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    /// Planes in the buffer.
    pub planes: Vec<PlaneGeom>,
    /// Luma rows per slice.
    pub slice_height: u32,
    /// Number of slices.
    pub slices: u32,
    /// Wavelet levels.
    pub levels: u8,
    /// Every block, slice by slice, plane by plane, subband by subband, left to right.
    pub blocks: Vec<Block>,
    /// `slice_blocks[s]..slice_blocks[s + 1]` are slice `s`'s blocks.
    pub slice_blocks: Vec<u32>,
    /// Total coefficients (the buffer's length).
    pub coefficients: usize,
    /// Words of GPU scratch all blocks need at worst.
    pub scratch_words: usize,
}

impl Geometry {
    /// Lay out a picture. `slice_height` must be even and at least 2.
    pub fn new(layout: Layout, width: u32, height: u32, slice_height: u32, levels: u8) -> Self {
        let slices = height.div_ceil(slice_height);
        let mut offset = 0usize;
        let planes: Vec<PlaneGeom> = (0..layout.plane_count())
            .map(|p| {
                let (w, h) = layout.plane_dims(p, width, height);
                let (_, sy) = layout.subsampling(p);
                let g = PlaneGeom {
                    offset,
                    width: w,
                    height: h,
                    slice_rows: slice_height >> sy,
                };
                offset += w as usize * h as usize;
                g
            })
            .collect();
        let mut blocks = Vec::new();
        let mut slice_blocks = vec![0u32];
        let mut scratch = 0usize;
        for s in 0..slices {
            for plane in &planes {
                let (y0, rows) = plane.slice_rows(s);
                for band in subbands(plane.width, rows, levels) {
                    let bw = block_width(band.height);
                    let mut x = 0;
                    while x < band.width {
                        let w = bw.min(band.width - x);
                        let row = y0 + band.y;
                        blocks.push(Block {
                            offset: (plane.offset
                                + row as usize * plane.width as usize
                                + (band.x + x) as usize) as u32,
                            stride: plane.width,
                            width: w,
                            height: band.height,
                            band: band.band,
                            slice: s,
                            scratch: scratch as u32,
                            _pad: 0,
                        });
                        scratch += max_block_words(w * band.height) as usize;
                        x += w;
                    }
                }
            }
            slice_blocks.push(blocks.len() as u32);
        }
        Geometry {
            planes,
            slice_height,
            slices,
            levels,
            blocks,
            slice_blocks,
            coefficients: offset,
            scratch_words: scratch,
        }
    }

    /// The plane a block belongs to.
    pub fn plane_of(&self, block: &Block) -> usize {
        self.planes
            .iter()
            .rposition(|p| p.offset <= block.offset as usize)
            .unwrap_or(0)
    }

    /// The blocks of slice `s`.
    pub fn slice(&self, s: u32) -> &[Block] {
        let (a, b) = (
            self.slice_blocks[s as usize] as usize,
            self.slice_blocks[s as usize + 1] as usize,
        );
        &self.blocks[a..b]
    }
}

impl PlaneGeom {
    /// First row and row count of slice `s` in this plane.
    pub fn slice_rows(&self, s: u32) -> (u32, u32) {
        let y0 = (s * self.slice_rows).min(self.height);
        (y0, (self.height - y0).min(self.slice_rows))
    }
}

/// Worst-case words of a coded block of `n` coefficients: the raw fallback
/// (a mode bit, a 6-bit width and `n` values of up to 32 bits).
pub fn max_block_words(n: u32) -> u32 {
    (7 + 32 * u64::from(n)).div_ceil(32) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subbands_tile_the_region() {
        for (w, h, l) in [(7, 5, 3), (64, 32, 5), (1, 1, 2), (33, 2, 4), (1920, 32, 5)] {
            let bands = subbands(w, h, l);
            let area: u32 = bands.iter().map(|b| b.width * b.height).sum();
            assert_eq!(area, w * h, "{w}x{h} levels {l}");
            for b in &bands {
                assert!(b.x + b.width <= w && b.y + b.height <= h);
            }
        }
    }

    #[test]
    fn blocks_cover_every_coefficient_once() {
        let g = Geometry::new(Layout::Yuv420, 37, 19, 8, 3);
        let mut seen = vec![0u8; g.coefficients];
        for b in &g.blocks {
            for y in 0..b.height {
                for x in 0..b.width {
                    seen[(b.offset + y * b.stride + x) as usize] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&n| n == 1));
        assert_eq!(g.slices, 3);
        assert_eq!(*g.slice_blocks.last().unwrap() as usize, g.blocks.len());
    }
}
