//! Binary PNM: PGM (gray) and PPM (RGB), 8 or 16 bits.

use std::path::Path;

use super::{
    ImageIoError, check_samples, deinterleave, interleave, io_err, layout_samples, pack_row,
    picture_err, unpack_row, unsupported,
};
use crate::picture::{Layout, Picture, max_sample};

pub(super) fn read_pnm(path: &Path) -> Result<Picture, ImageIoError> {
    let bytes = std::fs::read(path).map_err(|source| io_err(path, source))?;
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
    let data = &bytes[pos + 1..];
    let sample_bytes = if maxval > 255 { 2 } else { 1 };
    let need = layout_samples(layout, width, height) * sample_bytes;
    if (data.len() as u64) < need {
        return Err(ImageIoError::Truncated {
            path: path.to_path_buf(),
            need,
            got: data.len() as u64,
        });
    }
    let depth = (16 - (maxval as u16).leading_zeros()) as u8;
    let mut values = Vec::with_capacity(need as usize / sample_bytes as usize);
    unpack_row(
        &data[..need as usize],
        if maxval > 255 { 16 } else { 8 },
        usize::MAX,
        &mut values,
    );
    let planes = deinterleave(&values, layout.plane_count());
    Picture::new(layout, width, height, depth, planes).map_err(|source| picture_err(path, source))
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
