//! Binary PNM: PGM (gray) and PPM (RGB), 8 or 16 bits.

use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::{
    ImageIoError, check_samples, deinterleave, interleave, io_err, layout_samples, pack_row,
    picture_err, unpack_row, unsupported,
};
use crate::picture::{Layout, Picture, max_sample};

/// A PNM header: what the samples are and where they begin.
struct Header {
    layout: Layout,
    width: u32,
    height: u32,
    maxval: u32,
    /// Byte offset of the first sample.
    data: usize,
}

impl Header {
    fn sample_bytes(&self) -> u64 {
        if self.maxval > 255 { 2 } else { 1 }
    }

    fn depth(&self) -> u8 {
        (16 - (self.maxval as u16).leading_zeros()) as u8
    }
}

fn parse_header(path: &Path, bytes: &[u8]) -> Result<Header, ImageIoError> {
    let malformed = |reason: String| ImageIoError::Malformed {
        path: path.to_path_buf(),
        reason,
    };
    let layout = match bytes.get(..2) {
        Some(b"P5") => Layout::Gray,
        Some(b"P6") => Layout::Rgb,
        Some([b'P', k @ (b'1'..=b'4' | b'7')]) => {
            let what = format!(
                "PNM P{} is not supported, only binary P5 and P6",
                *k as char
            );
            return Err(unsupported(path, what));
        }
        _ => return Err(malformed("not a PNM file (no P5 or P6)".into())),
    };
    let mut pos = 2;
    let mut field = |name: &str| -> Result<u32, String> {
        loop {
            match bytes.get(pos) {
                Some(b) if b.is_ascii_whitespace() => pos += 1,
                Some(b'#') => {
                    while bytes.get(pos).is_some_and(|&b| b != b'\n' && b != b'\r') {
                        pos += 1;
                    }
                }
                _ => break,
            }
        }
        let start = pos;
        while bytes.get(pos).is_some_and(u8::is_ascii_digit) {
            pos += 1;
        }
        std::str::from_utf8(&bytes[start..pos])
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("PNM header: {name} missing or not a number (byte {start})"))
    };
    let width = field("width").map_err(malformed)?;
    let height = field("height").map_err(malformed)?;
    let maxval = field("maxval").map_err(malformed)?;
    let reason = if width == 0 || height == 0 {
        format!("empty picture {width}x{height}")
    } else if !(1..=65535).contains(&maxval) {
        format!("maxval {maxval} is outside 1..=65535")
    } else if !bytes.get(pos).is_some_and(u8::is_ascii_whitespace) {
        "no whitespace after maxval".into()
    } else {
        String::new()
    };
    if !reason.is_empty() {
        return Err(malformed(format!("PNM header: {reason}")));
    }
    check_samples(path, width, height, layout)?;
    Ok(Header {
        layout,
        width,
        height,
        maxval,
        data: pos + 1,
    })
}

/// Interleaved samples (8 or 16-bit big-endian) of `rows` rows as a picture.
fn samples_to_picture(
    path: &Path,
    h: &Header,
    rows: u32,
    data: &[u8],
) -> Result<Picture, ImageIoError> {
    let mut values = Vec::with_capacity(data.len() / h.sample_bytes() as usize);
    unpack_row(
        data,
        if h.maxval > 255 { 16 } else { 8 },
        usize::MAX,
        &mut values,
    );
    let planes = deinterleave(&values, h.layout.plane_count());
    Picture::new(h.layout, h.width, rows, h.depth(), planes)
        .map_err(|source| picture_err(path, source))
}

pub(super) fn read_pnm(path: &Path) -> Result<Picture, ImageIoError> {
    let bytes = std::fs::read(path).map_err(|source| io_err(path, source))?;
    let h = parse_header(path, &bytes)?;
    let data = &bytes[h.data..];
    let need = layout_samples(h.layout, h.width, h.height) * h.sample_bytes();
    if (data.len() as u64) < need {
        return Err(ImageIoError::Truncated {
            path: path.to_path_buf(),
            need,
            got: data.len() as u64,
        });
    }
    samples_to_picture(path, &h, h.height, &data[..need as usize])
}

/// A binary PGM (`P5`) or PPM (`P6`) read a strip of rows at a time, so a
/// large picture need not be in memory whole (see `med8k_codec::strips`).
#[derive(Debug)]
pub struct PnmRows {
    path: PathBuf,
    file: BufReader<File>,
    layout: Layout,
    width: u32,
    height: u32,
    maxval: u32,
    row: u32,
    buf: Vec<u8>,
}

impl PnmRows {
    /// Opens `path` and reads its header.
    pub fn open(path: &Path) -> Result<Self, ImageIoError> {
        let mut file = File::open(path).map_err(|source| io_err(path, source))?;
        // A header with its comments fits in the first 64 KiB.
        let mut head = Vec::with_capacity(65536);
        (&mut file)
            .take(65536)
            .read_to_end(&mut head)
            .map_err(|source| io_err(path, source))?;
        let h = parse_header(path, &head)?;
        file.seek(SeekFrom::Start(h.data as u64))
            .map_err(|source| io_err(path, source))?;
        Ok(PnmRows {
            path: path.to_path_buf(),
            file: BufReader::with_capacity(1 << 20, file),
            layout: h.layout,
            width: h.width,
            height: h.height,
            maxval: h.maxval,
            row: 0,
            buf: Vec::new(),
        })
    }

    /// Gray or RGB.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// Width.
    pub fn width(&self) -> u32 {
        self.width
    }

    /// Height.
    pub fn height(&self) -> u32 {
        self.height
    }

    /// Significant bits per sample.
    pub fn bit_depth(&self) -> u8 {
        self.header().depth()
    }

    fn header(&self) -> Header {
        Header {
            layout: self.layout,
            width: self.width,
            height: self.height,
            maxval: self.maxval,
            data: 0,
        }
    }

    /// The next `rows` rows (fewer at the bottom) as a picture of the
    /// whole width; `None` past the last row.
    pub fn next_rows(&mut self, rows: u32) -> Result<Option<Picture>, ImageIoError> {
        let rows = rows.min(self.height - self.row);
        if rows == 0 {
            return Ok(None);
        }
        let h = self.header();
        let row_bytes = layout_samples(self.layout, self.width, 1) * h.sample_bytes();
        let need = row_bytes * u64::from(rows);
        self.buf.resize(need as usize, 0);
        if let Err(e) = self.file.read_exact(&mut self.buf) {
            return Err(if e.kind() == std::io::ErrorKind::UnexpectedEof {
                ImageIoError::Truncated {
                    path: self.path.clone(),
                    need: layout_samples(self.layout, self.width, self.height) * h.sample_bytes(),
                    got: row_bytes * u64::from(self.row),
                }
            } else {
                io_err(&self.path, e)
            });
        }
        self.row += rows;
        samples_to_picture(&self.path, &h, rows, &self.buf).map(Some)
    }
}

pub(super) fn write_pnm(path: &Path, picture: &Picture, ext: &str) -> Result<(), ImageIoError> {
    let magic = match (picture.layout(), ext) {
        (Layout::Gray, "pgm" | "pnm") => "P5",
        (Layout::Rgb, "ppm" | "pnm") => "P6",
        (layout, _) => {
            return Err(unsupported(
                path,
                format!("a .{ext} file cannot hold a {layout} picture"),
            ));
        }
    };
    let depth = picture.bit_depth();
    let (w, h, maxval) = (picture.width(), picture.height(), max_sample(depth));
    let mut out = format!("{magic}\n{w} {h}\n{maxval}\n").into_bytes();
    pack_row(
        &interleave(picture.planes()),
        if depth > 8 { 16 } else { 8 },
        &mut out,
    );
    std::fs::write(path, out).map_err(|source| io_err(path, source))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::imageio::{read_picture, write_picture};

    fn picture(layout: Layout, w: u32, h: u32, depth: u8) -> Picture {
        let mut pic = Picture::zeroed(layout, w, h, depth).unwrap();
        let max = (1u32 << depth) - 1;
        for (p, plane) in pic.planes_mut().iter_mut().enumerate() {
            for (i, v) in plane.iter_mut().enumerate() {
                *v = ((i as u32 * 31 + p as u32 * 7) % (max + 1)) as u16;
            }
        }
        pic
    }

    #[test]
    fn strips_of_rows_are_the_whole_picture() {
        let dir = tempfile::tempdir().unwrap();
        for (layout, depth, name) in [
            (Layout::Rgb, 8, "a.ppm"),
            (Layout::Gray, 16, "b.pgm"),
            (Layout::Rgb, 12, "c.ppm"),
        ] {
            let path = dir.path().join(name);
            write_picture(&path, &picture(layout, 37, 23, depth)).unwrap();
            let whole = read_picture(&path, None).unwrap();
            let mut rows = PnmRows::open(&path).unwrap();
            assert_eq!((rows.width(), rows.height()), (37, 23));
            assert_eq!((rows.layout(), rows.bit_depth()), (layout, depth));
            let mut planes = vec![Vec::new(); layout.plane_count()];
            while let Some(strip) = rows.next_rows(7).unwrap() {
                assert!(strip.height() == 7 || strip.height() == 23 % 7);
                for (all, p) in planes.iter_mut().zip(strip.planes()) {
                    all.extend_from_slice(p);
                }
            }
            assert_eq!(planes, whole.planes(), "{name}");
        }
    }

    #[test]
    fn a_truncated_file_is_named_at_the_strip_that_runs_out() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.ppm");
        write_picture(&path, &picture(Layout::Rgb, 16, 16, 8)).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
        let mut rows = PnmRows::open(&path).unwrap();
        assert!(rows.next_rows(8).unwrap().is_some());
        let e = rows.next_rows(8).unwrap_err();
        assert!(matches!(e, ImageIoError::Truncated { .. }), "{e}");
        std::fs::write(&path, b"P3\n1 1\n255\n0 0 0\n").unwrap();
        assert!(PnmRows::open(&path).is_err());
    }
}
