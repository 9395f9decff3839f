//! The bitstream: a versioned header, a slice table with a length and a
//! CRC-32 per slice, then the slices.
//!
//! ```text
//! "M8KW"  version:u8  layout:u8  bands:u16  width:u32  height:u32
//! bit_depth:u8  levels:u8  slice_height:u16  flags:u8  steps:u8  tables:u8  reserved:u8
//! step[tables][steps]:u32               quantiser per subband in sixteenths (0 = LL, then HL, LH, HH per level)
//! slices:u32  { length:u32  crc32:u32 }[slices]
//! table:u8[slices], padded to 4 bytes   only when tables > 1: the step table of each slice
//! header_crc32:u32                      over everything above
//! slice[slices]                         block lengths (u16 words, padded to 4 bytes), block words
//! ```
//! Everything is little-endian. The parser checks every field against its
//! allowed range and the data it has before allocating anything.

use super::entropy::{STEP_MAX, STEP_ONE};
use super::geometry::{Geometry, subbands};
use super::steps::{MAX_TABLES, Steps};
use super::{DecodeError, Params};
use med8k_media::picture::Layout;

/// First bytes of every med8k wavelet bitstream.
pub const MAGIC: &[u8; 4] = b"M8KW";
/// The bitstream version this build writes and reads (2: steps in
/// sixteenths; version 1 had whole steps and was never deployed).
pub const VERSION: u8 = 2;
const FLAG_LOSSLESS: u8 = 1;
const FIXED: usize = 24;

/// What the header says, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Coding parameters and picture shape.
    pub params: Params,
    /// Quantiser per subband and slice.
    pub steps: Steps,
    /// Byte length and CRC-32 of each slice.
    pub slices: Vec<(u32, u32)>,
    /// Bytes the header takes (where slice 0 begins).
    pub len: usize,
}

fn layout_code(l: Layout) -> (u8, u16) {
    match l {
        Layout::Gray => (0, 1),
        Layout::Rgb => (1, 3),
        Layout::Rgba => (2, 4),
        Layout::Yuv422 => (3, 3),
        Layout::Yuv420 => (4, 3),
        Layout::Bands(n) => (5, n),
    }
}

/// Bytes of the header for `slices` slices and `tables` tables of `steps` steps.
pub fn header_len(slices: u32, steps: usize, tables: usize) -> usize {
    let select = if tables > 1 {
        (slices as usize).next_multiple_of(4)
    } else {
        0
    };
    FIXED + 4 * steps * tables + 4 + 8 * slices as usize + select + 4
}

/// Write the header for `slices` (length and CRC each).
pub fn write_header(p: &Params, steps: &Steps, slices: &[(u32, u32)], out: &mut Vec<u8>) {
    let start = out.len();
    let (code, bands) = layout_code(p.layout);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.push(code);
    out.extend_from_slice(&bands.to_le_bytes());
    out.extend_from_slice(&p.width.to_le_bytes());
    out.extend_from_slice(&p.height.to_le_bytes());
    out.push(p.bit_depth);
    out.push(p.levels);
    out.extend_from_slice(&(p.slice_height as u16).to_le_bytes());
    out.push(if p.lossless { FLAG_LOSSLESS } else { 0 });
    let tables = steps.tables();
    out.push(tables[0].len() as u8);
    out.push(tables.len() as u8);
    out.push(0);
    for s in tables.iter().flatten() {
        out.extend_from_slice(&s.to_le_bytes());
    }
    out.extend_from_slice(&(slices.len() as u32).to_le_bytes());
    for (len, crc) in slices {
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&crc.to_le_bytes());
    }
    if tables.len() > 1 {
        let select = steps.select();
        out.extend_from_slice(select);
        out.resize(
            out.len() + select.len().next_multiple_of(4) - select.len(),
            0,
        );
    }
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_le_bytes());
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn take<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let end = self.pos + N;
        let bytes = self.data.get(self.pos..end).ok_or(DecodeError::Truncated {
            what,
            need: end,
            got: self.data.len(),
        })?;
        self.pos = end;
        let mut a = [0; N];
        a.copy_from_slice(bytes);
        Ok(a)
    }
    fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        Ok(self.take::<1>(what)?[0])
    }
    fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        Ok(u16::from_le_bytes(self.take(what)?))
    }
    fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(what)?))
    }
}

fn check(field: &'static str, value: u64, lo: u64, hi: u64) -> Result<(), DecodeError> {
    if (lo..=hi).contains(&value) {
        Ok(())
    } else {
        Err(DecodeError::Field {
            field,
            value,
            allowed: format!("{lo}..={hi}"),
        })
    }
}

/// Parse and check the header of `data`; `max_samples` bounds what it may ask to allocate.
pub fn read_header(data: &[u8], max_samples: u64) -> Result<Header, DecodeError> {
    let mut c = Cursor { data, pos: 0 };
    let magic = c.take::<4>("magic")?;
    if &magic != MAGIC {
        return Err(DecodeError::Magic(magic));
    }
    let version = c.u8("version")?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let code = c.u8("layout")?;
    let bands = c.u16("bands")?;
    let layout = match code {
        0 => Layout::Gray,
        1 => Layout::Rgb,
        2 => Layout::Rgba,
        3 => Layout::Yuv422,
        4 => Layout::Yuv420,
        5 => {
            check("bands", u64::from(bands), 1, u64::from(super::MAX_BANDS))?;
            Layout::Bands(bands)
        }
        _ => {
            return Err(DecodeError::Field {
                field: "layout",
                value: u64::from(code),
                allowed: "0..=5".into(),
            });
        }
    };
    let width = c.u32("width")?;
    let height = c.u32("height")?;
    check(
        "width",
        u64::from(width),
        1,
        u64::from(super::MAX_DIMENSION),
    )?;
    check(
        "height",
        u64::from(height),
        1,
        u64::from(super::MAX_DIMENSION),
    )?;
    let bit_depth = c.u8("bit depth")?;
    check("bit depth", u64::from(bit_depth), 1, 16)?;
    let levels = c.u8("levels")?;
    check("levels", u64::from(levels), 0, u64::from(super::MAX_LEVELS))?;
    let slice_height = u32::from(c.u16("slice height")?);
    check(
        "slice height",
        u64::from(slice_height),
        u64::from(super::MIN_SLICE_HEIGHT),
        u64::from(super::MAX_SLICE_HEIGHT),
    )?;
    if !slice_height.is_multiple_of(2) {
        return Err(DecodeError::Field {
            field: "slice height",
            value: u64::from(slice_height),
            allowed: "even values".into(),
        });
    }
    let flags = c.u8("flags")?;
    check("flags", u64::from(flags), 0, u64::from(FLAG_LOSSLESS))?;
    let nsteps = c.u8("step count")?;
    let want = subbands(u32::MAX / 2, u32::MAX / 2, levels).len();
    check("step count", u64::from(nsteps), want as u64, want as u64)?;
    let ntables = c.u8("table count")?;
    check("table count", u64::from(ntables), 1, MAX_TABLES as u64)?;
    c.u8("reserved")?;
    let samples = (0..layout.plane_count())
        .map(|p| {
            let (w, h) = layout.plane_dims(p, width, height);
            u64::from(w) * u64::from(h)
        })
        .sum::<u64>();
    if samples > max_samples {
        return Err(DecodeError::TooLarge {
            samples,
            limit: max_samples,
        });
    }
    let mut tables = Vec::with_capacity(usize::from(ntables));
    for _ in 0..ntables {
        let mut table = Vec::with_capacity(usize::from(nsteps));
        for _ in 0..nsteps {
            let s = c.u32("step")?;
            check(
                "step",
                u64::from(s),
                u64::from(STEP_ONE),
                u64::from(STEP_MAX),
            )?;
            table.push(s);
        }
        tables.push(table);
    }
    let lossless = flags & FLAG_LOSSLESS != 0;
    if lossless && (ntables > 1 || tables[0].iter().any(|&s| s != STEP_ONE)) {
        return Err(DecodeError::Field {
            field: "step",
            value: u64::from(tables.iter().flatten().copied().max().unwrap_or(STEP_ONE)),
            allowed: format!("{STEP_ONE} in a lossless stream, in one table"),
        });
    }
    let nslices = c.u32("slice count")?;
    let expect = height.div_ceil(slice_height);
    check(
        "slice count",
        u64::from(nslices),
        u64::from(expect),
        u64::from(expect),
    )?;
    let select_len = if ntables > 1 {
        (nslices as usize).next_multiple_of(4)
    } else {
        0
    };
    let table_end = c.pos + 8 * nslices as usize + select_len + 4;
    if table_end > data.len() {
        return Err(DecodeError::Truncated {
            what: "slice table",
            need: table_end,
            got: data.len(),
        });
    }
    let mut slices = Vec::with_capacity(nslices as usize);
    for _ in 0..nslices {
        slices.push((c.u32("slice length")?, c.u32("slice crc")?));
    }
    let select = if ntables > 1 {
        let bytes = &data[c.pos..c.pos + nslices as usize];
        c.pos += select_len;
        if let Some(&bad) = bytes.iter().find(|&&t| t >= ntables) {
            return Err(DecodeError::Field {
                field: "slice step table",
                value: u64::from(bad),
                allowed: format!("0..{ntables}"),
            });
        }
        bytes.to_vec()
    } else {
        vec![0; nslices as usize]
    };
    let steps = Steps::mixed(tables, select).ok_or(DecodeError::Field {
        field: "step count",
        value: u64::from(nsteps),
        allowed: "tables of equal length".into(),
    })?;
    let crc = crc32fast::hash(&data[..c.pos]);
    let stored = c.u32("header crc")?;
    if crc != stored {
        return Err(DecodeError::HeaderCrc);
    }
    let len = c.pos;
    let total: u64 = slices.iter().map(|s| u64::from(s.0)).sum();
    if (len as u64 + total) > data.len() as u64 {
        return Err(DecodeError::Truncated {
            what: "slices",
            need: (len as u64 + total) as usize,
            got: data.len(),
        });
    }
    Ok(Header {
        params: Params {
            layout,
            width,
            height,
            bit_depth,
            levels,
            slice_height,
            lossless,
        },
        steps,
        slices,
        len,
    })
}

/// The parts of one slice's bytes: block word counts and the words.
pub fn split_slice<'a>(
    slice: u32,
    bytes: &'a [u8],
    geom: &Geometry,
) -> Result<(Vec<u32>, &'a [u8]), DecodeError> {
    let n = geom.slice(slice).len();
    let table = 2 * n.next_multiple_of(2);
    if bytes.len() < table {
        return Err(DecodeError::Slice {
            slice,
            reason: format!("{} bytes cannot hold its {n} block lengths", bytes.len()),
        });
    }
    let lens: Vec<u32> = bytes[..2 * n]
        .chunks_exact(2)
        .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
        .collect();
    let words: usize = lens.iter().map(|&l| l as usize).sum();
    let body = &bytes[table..];
    if body.len() != 4 * words {
        return Err(DecodeError::Slice {
            slice,
            reason: format!(
                "block lengths add up to {} bytes but the slice has {}",
                4 * words,
                body.len()
            ),
        });
    }
    if let Some(b) = lens.iter().position(|&l| l == 0) {
        return Err(DecodeError::Slice {
            slice,
            reason: format!("block {b} is empty"),
        });
    }
    Ok((lens, body))
}

/// Append one slice's bytes: the block lengths, then the words.
pub fn write_slice(lens: &[u32], words: &[u32], out: &mut Vec<u8>) {
    for &l in lens {
        out.extend_from_slice(&(l as u16).to_le_bytes());
    }
    if lens.len() % 2 == 1 {
        out.extend_from_slice(&[0, 0]);
    }
    out.extend_from_slice(bytemuck::cast_slice(words));
}
