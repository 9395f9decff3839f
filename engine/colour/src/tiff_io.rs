//! TIFF output: baseline RGB (TIFF 6.0), 8 or 16 bits per channel,
//! uncompressed, one strip per 64 rows, little-endian, with the output
//! space's ICC profile in tag 34675 (`InterColorProfile`), as pathology and
//! print tools read it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::icc;
use crate::render::{RgbData, RgbImage};

/// Rows per strip.
const ROWS_PER_STRIP: usize = 64;

/// Why a TIFF could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TiffError {
    /// The file could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// A classic TIFF holds at most 4 GiB, and the data must match the size.
    #[error("image {width}x{height} cannot be written as a classic TIFF")]
    Size {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
    },
}

/// One IFD entry: tag, type (3 SHORT, 4 LONG, 5 RATIONAL, 7 UNDEFINED),
/// count and the value or its offset.
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    value: u32,
}

/// Encodes `image` as a TIFF into `w`.
pub fn write_tiff<W: Write>(mut w: W, image: &RgbImage) -> Result<(), std::io::Error> {
    let (bits, data): (u16, Vec<u8>) = match &image.data {
        RgbData::Eight(d) => (8, d.clone()),
        RgbData::Sixteen(d) => (16, d.iter().flat_map(|v| v.to_le_bytes()).collect()),
    };
    let profile = icc::profile(image.space);
    let row_bytes = image.width * 3 * usize::from(bits / 8);
    let strips: Vec<(usize, usize)> = (0..image.height)
        .step_by(ROWS_PER_STRIP)
        .map(|y| {
            let rows = ROWS_PER_STRIP.min(image.height - y);
            (y * row_bytes, rows * row_bytes)
        })
        .collect();
    let n_strips = strips.len() as u32;

    // Layout: header (8), IFD, then its out-of-line values, then pixels.
    const N_ENTRIES: usize = 14;
    let ifd_at = 8u32;
    let ifd_len = 2 + 12 * N_ENTRIES as u32 + 4;
    let mut extra: Vec<u8> = Vec::new();
    let extra_at = ifd_at + ifd_len;
    let mut put = |bytes: &[u8]| -> u32 {
        let at = extra_at + extra.len() as u32;
        extra.extend_from_slice(bytes);
        if extra.len() % 2 == 1 {
            extra.push(0);
        }
        at
    };
    let bits_at = put(&[bits, bits, bits].map(u16::to_le_bytes).concat());
    let xres_at = put(&[72u32, 1].map(u32::to_le_bytes).concat());
    let yres_at = put(&[72u32, 1].map(u32::to_le_bytes).concat());
    let icc_at = put(&profile);
    let offsets_at = put(&vec![0u8; 4 * strips.len()]);
    let counts: Vec<u8> = strips
        .iter()
        .flat_map(|&(_, len)| (len as u32).to_le_bytes())
        .collect();
    let counts_at = put(&counts);
    let pixels_at = extra_at + extra.len() as u32;
    // The strip offsets, now that the pixels' place is known.
    let offsets: Vec<u8> = strips
        .iter()
        .flat_map(|&(at, _)| (pixels_at + at as u32).to_le_bytes())
        .collect();
    let o = (offsets_at - extra_at) as usize;
    extra[o..o + offsets.len()].copy_from_slice(&offsets);
    // A single strip's offset and count are stored in the entry itself.
    let (offsets_value, counts_value) = if strips.len() == 1 {
        (pixels_at, strips[0].1 as u32)
    } else {
        (offsets_at, counts_at)
    };

    let entries = [
        Entry {
            tag: 256,
            kind: 4,
            count: 1,
            value: image.width as u32,
        },
        Entry {
            tag: 257,
            kind: 4,
            count: 1,
            value: image.height as u32,
        },
        Entry {
            tag: 258,
            kind: 3,
            count: 3,
            value: bits_at,
        },
        Entry {
            tag: 259,
            kind: 3,
            count: 1,
            value: 1,
        },
        Entry {
            tag: 262,
            kind: 3,
            count: 1,
            value: 2,
        },
        Entry {
            tag: 273,
            kind: 4,
            count: n_strips,
            value: offsets_value,
        },
        Entry {
            tag: 277,
            kind: 3,
            count: 1,
            value: 3,
        },
        Entry {
            tag: 278,
            kind: 4,
            count: 1,
            value: ROWS_PER_STRIP as u32,
        },
        Entry {
            tag: 279,
            kind: 4,
            count: n_strips,
            value: counts_value,
        },
        Entry {
            tag: 282,
            kind: 5,
            count: 1,
            value: xres_at,
        },
        Entry {
            tag: 283,
            kind: 5,
            count: 1,
            value: yres_at,
        },
        Entry {
            tag: 284,
            kind: 3,
            count: 1,
            value: 1,
        },
        Entry {
            tag: 296,
            kind: 3,
            count: 1,
            value: 2,
        },
        Entry {
            tag: 34675,
            kind: 7,
            count: profile.len() as u32,
            value: icc_at,
        },
    ];
    debug_assert_eq!(entries.len(), N_ENTRIES);
    let mut head = Vec::with_capacity(extra_at as usize);
    head.extend_from_slice(b"II");
    head.extend_from_slice(&42u16.to_le_bytes());
    head.extend_from_slice(&ifd_at.to_le_bytes());
    head.extend_from_slice(&(N_ENTRIES as u16).to_le_bytes());
    for e in &entries {
        head.extend_from_slice(&e.tag.to_le_bytes());
        head.extend_from_slice(&e.kind.to_le_bytes());
        head.extend_from_slice(&e.count.to_le_bytes());
        // A SHORT value fits in the low half of the field.
        if e.kind == 3 && e.count == 1 {
            head.extend_from_slice(&(e.value as u16).to_le_bytes());
            head.extend_from_slice(&[0, 0]);
        } else {
            head.extend_from_slice(&e.value.to_le_bytes());
        }
    }
    head.extend_from_slice(&0u32.to_le_bytes());
    w.write_all(&head)?;
    w.write_all(&extra)?;
    w.write_all(&data)?;
    w.flush()
}

/// Writes `image` to a TIFF file at `path`.
pub fn write_tiff_file(path: &Path, image: &RgbImage) -> Result<(), TiffError> {
    let samples = image
        .width
        .checked_mul(image.height)
        .and_then(|n| n.checked_mul(3));
    let bytes = samples.map(|n| match image.data {
        RgbData::Eight(_) => n,
        RgbData::Sixteen(_) => 2 * n,
    });
    let len_ok = match (&image.data, samples) {
        (RgbData::Eight(d), Some(n)) => d.len() == n,
        (RgbData::Sixteen(d), Some(n)) => d.len() == n,
        _ => false,
    };
    if !len_ok || image.width == 0 || bytes.is_none_or(|b| b > (u32::MAX as usize) - (1 << 20)) {
        return Err(TiffError::Size {
            width: image.width,
            height: image.height,
        });
    }
    let io = |source| TiffError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    write_tiff(std::io::BufWriter::new(file), image).map_err(io)
}
