//! Lossless coding of a picture that arrives a strip of rows at a time (a
//! file read top to bottom, a line-based source), with only the strips being
//! coded in memory.
//!
//! A slice is coded from its own rows alone (its own wavelet, its own
//! blocks), so a strip of `slice_height` rows coded as a picture of that
//! height is exactly that slice of the whole picture. [`StripEncoder`] codes
//! strips in parallel and keeps only each slice's length and CRC; the header
//! that lists them comes last, to go in front of the slices. The bitstream
//! is byte for byte [`crate::Encoder::encode`]'s on the whole picture.
//!
//! ```no_run
//! # use med8k_codec::{Config, strips::StripEncoder};
//! # use med8k_media::picture::{Layout, Picture};
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut enc = StripEncoder::new(&Config::lossless(), Layout::Rgb, 7680, 4320, 8)?;
//! let mut slices = Vec::new();
//! for s in 0..enc.strips() {
//!     let strip = Picture::zeroed(Layout::Rgb, 7680, enc.strip_height(s), 8)?;
//!     slices.extend(enc.code(&[strip])?);
//! }
//! let mut stream = enc.header()?;
//! stream.extend(slices.concat());
//! # Ok(())
//! # }
//! ```

use rayon::prelude::*;

use crate::cpu::CpuEncoder;
use crate::{Config, EncodeBackend, EncodeError, Params, Steps, step_count, stream};
use med8k_media::picture::{Layout, Picture};

/// Codes a picture strip by strip; see the module docs.
#[derive(Debug)]
pub struct StripEncoder {
    params: Params,
    slices: u32,
    table: Vec<(u32, u32)>,
}

impl StripEncoder {
    /// An encoder of a `width × height` picture of `layout` at `bit_depth`
    /// bits with `config` (lossless only: a rate target needs the whole
    /// picture).
    pub fn new(
        config: &Config,
        layout: Layout,
        width: u32,
        height: u32,
        bit_depth: u8,
    ) -> Result<Self, EncodeError> {
        let params = crate::lossless_params(
            config,
            layout,
            width,
            height,
            bit_depth,
            "strips are coded without the whole picture",
        )?;
        Ok(StripEncoder {
            slices: height.div_ceil(config.slice_height),
            params,
            table: Vec::new(),
        })
    }

    /// Strips in the picture (its slices).
    pub fn strips(&self) -> u32 {
        self.slices
    }

    /// Rows of strip `s` (the slice height; the last may have fewer).
    pub fn strip_height(&self, s: u32) -> u32 {
        let h = self.params.slice_height;
        h.min(self.params.height.saturating_sub(s * h))
    }

    /// Strips coded so far.
    pub fn coded(&self) -> u32 {
        self.table.len() as u32
    }

    /// Bytes the header takes (the slices follow it).
    pub fn header_len(&self) -> usize {
        stream::header_len(self.slices, step_count(self.params.levels), 1)
    }

    /// Codes the next strips, in parallel: each a picture of the whole
    /// width, [`strip_height`](Self::strip_height) rows, the picture's
    /// layout and depth. Gives their coded slices, in order.
    pub fn code(&mut self, strips: &[Picture]) -> Result<Vec<Vec<u8>>, EncodeError> {
        let first = self.coded();
        if first + strips.len() as u32 > self.slices {
            return Err(EncodeError::Mismatch {
                expected: format!("{} strips", self.slices),
                got: format!("{}", first + strips.len() as u32),
            });
        }
        for (i, pic) in strips.iter().enumerate() {
            let rows = self.strip_height(first + i as u32);
            let p = &self.params;
            if (pic.layout(), pic.width(), pic.height(), pic.bit_depth())
                != (p.layout, p.width, rows, p.bit_depth)
            {
                return Err(EncodeError::Mismatch {
                    expected: format!(
                        "strip {}: {}x{rows} {} at {} bits",
                        first + i as u32,
                        p.width,
                        p.layout,
                        p.bit_depth
                    ),
                    got: format!(
                        "{}x{} {} at {} bits",
                        pic.width(),
                        pic.height(),
                        pic.layout(),
                        pic.bit_depth()
                    ),
                });
            }
        }
        let params = self.params;
        let coded: Vec<Vec<u8>> = strips
            .par_iter()
            .map(|pic| {
                let strip = Params {
                    height: pic.height(),
                    ..params
                };
                let geom = strip.geometry();
                let mut cpu = CpuEncoder::new();
                cpu.load(pic, &geom)?;
                let steps = Steps::lossless(step_count(params.levels), 1);
                Ok(cpu.encode(&geom, &steps)?.payload)
            })
            .collect::<Result<_, EncodeError>>()?;
        self.table.extend(
            coded
                .par_iter()
                .map(|s| (s.len() as u32, crc32fast::hash(s)))
                .collect::<Vec<_>>(),
        );
        Ok(coded)
    }

    /// The header, once every strip is coded.
    pub fn header(&self) -> Result<Vec<u8>, EncodeError> {
        if self.coded() != self.slices {
            return Err(EncodeError::Mismatch {
                expected: format!("{} strips coded", self.slices),
                got: format!("{}", self.coded()),
            });
        }
        let steps = Steps::lossless(step_count(self.params.levels), self.slices);
        let mut out = Vec::with_capacity(self.header_len());
        stream::write_header(&self.params, &steps, &self.table, &mut out);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(layout: Layout, w: u32, h: u32, depth: u8) -> Picture {
        let mut pic = Picture::zeroed(layout, w, h, depth).unwrap();
        let max = (1u32 << depth) - 1;
        for (p, plane) in pic.planes_mut().iter_mut().enumerate() {
            for (i, v) in plane.iter_mut().enumerate() {
                let (x, y) = (i as u32 % w, i as u32 / w);
                *v = ((x * 7 + y * y * 3 + p as u32 * 91 + (x ^ y)) % (max + 1)) as u16;
            }
        }
        pic
    }

    /// The rows `y0..y0 + rows` of `pic` as a picture.
    fn rows(pic: &Picture, y0: u32, rows: u32) -> Picture {
        let mut out = Picture::zeroed(pic.layout(), pic.width(), rows, pic.bit_depth()).unwrap();
        for p in 0..pic.planes().len() {
            let (pw, ph) = pic.plane_dims(p);
            let scale = pic.height() / ph;
            let (a, n) = ((y0 / scale) as usize, out.plane_dims(p).1 as usize);
            let src = &pic.planes()[p][a * pw as usize..(a + n) * pw as usize];
            out.planes_mut()[p].copy_from_slice(src);
        }
        out
    }

    #[test]
    fn strips_make_the_whole_pictures_bytes() {
        for (layout, w, h, depth, config) in [
            (Layout::Rgb, 200, 150, 8, Config::lossless()),
            (Layout::Yuv422, 96, 130, 10, Config::lossless()),
            (
                Layout::Yuv420,
                64,
                100,
                10,
                Config::lossless().with_slice_height(32),
            ),
            (Layout::Bands(7), 40, 70, 16, Config::lossless()),
            (Layout::Gray, 33, 17, 12, Config::lossless().with_levels(2)),
        ] {
            let pic = picture(layout, w, h, depth);
            let want = config.new_encoder().unwrap().encode(&pic).unwrap().data;
            let mut enc = StripEncoder::new(&config, layout, w, h, depth).unwrap();
            let mut slices = Vec::new();
            let mut s = 0;
            // Two strips at a time, then the rest.
            while s < enc.strips() {
                let n = 2.min(enc.strips() - s);
                let batch: Vec<Picture> = (s..s + n)
                    .map(|k| rows(&pic, k * config.slice_height, enc.strip_height(k)))
                    .collect();
                slices.extend(enc.code(&batch).unwrap());
                s += n;
            }
            let mut got = enc.header().unwrap();
            assert_eq!(got.len(), enc.header_len());
            got.extend(slices.concat());
            assert!(got == want, "{layout} {w}x{h}: the strips' bytes differ");
        }
    }

    #[test]
    fn wrong_strips_and_rate_targets_are_refused() {
        let config = Config::lossless();
        assert!(StripEncoder::new(&Config::bpp(2.0), Layout::Rgb, 64, 64, 8).is_err());
        let mut enc = StripEncoder::new(&config, Layout::Rgb, 64, 100, 8).unwrap();
        assert!(enc.header().is_err(), "nothing coded yet");
        let e = enc
            .code(&[picture(Layout::Rgb, 64, 63, 8)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("strip 0"), "{e}");
        enc.code(&[picture(Layout::Rgb, 64, 64, 8)]).unwrap();
        assert!(enc.code(&[picture(Layout::Gray, 64, 36, 8)]).is_err());
        enc.code(&[picture(Layout::Rgb, 64, 36, 8)]).unwrap();
        assert!(
            enc.code(&[picture(Layout::Rgb, 64, 36, 8)]).is_err(),
            "past the end"
        );
        assert!(enc.header().is_ok());
    }
}
