//! PNG: gray, RGB or RGBA at 1 to 16 bits.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use super::{
    ImageIoError, check_samples, deinterleave, interleave, io_err, pack_row, picture_err,
    unpack_row, unsupported,
};
use crate::picture::{Layout, Picture};

pub(super) fn read_png(path: &Path) -> Result<Picture, ImageIoError> {
    use png::ColorType;
    let png_err = |source| ImageIoError::Png {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(|source| io_err(path, source))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    let info = decoder.read_header_info().map_err(png_err)?;
    let (width, height, color) = (info.width, info.height, info.color_type);
    let widest = match color {
        ColorType::Grayscale => Layout::Gray,
        ColorType::Rgb => Layout::Rgb,
        ColorType::Rgba | ColorType::Indexed => Layout::Rgba,
        ColorType::GrayscaleAlpha => {
            let what = "gray+alpha PNGs are not supported; use gray or RGBA";
            return Err(unsupported(path, what.into()));
        }
    };
    check_samples(path, width, height, widest)?;
    // Palettes become RGB (RGBA with tRNS); a gray or RGB tRNS colour key is ignored.
    decoder.set_transformations(if color == ColorType::Indexed {
        png::Transformations::EXPAND
    } else {
        png::Transformations::IDENTITY
    });
    let mut reader = decoder.read_info().map_err(png_err)?;
    let (out_color, out_depth) = reader.output_color_type();
    let layout = match out_color {
        ColorType::Grayscale => Layout::Gray,
        ColorType::Rgb => Layout::Rgb,
        ColorType::Rgba => Layout::Rgba,
        other => return Err(unsupported(path, format!("PNG output {other:?}"))),
    };
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| unsupported(path, "PNG frame does not fit in memory".into()))?;
    let mut buf = vec![0u8; size];
    let out = reader.next_frame(&mut buf).map_err(png_err)?;
    let depth = out_depth as u8;
    let row_len = width as usize * layout.plane_count();
    let mut values = Vec::with_capacity(row_len * height as usize);
    for row in buf.chunks_exact(out.line_size).take(height as usize) {
        unpack_row(row, depth, row_len, &mut values);
    }
    let planes = deinterleave(&values, layout.plane_count());
    Picture::new(layout, width, height, depth, planes).map_err(|source| picture_err(path, source))
}

pub(super) fn write_png(path: &Path, picture: &Picture) -> Result<(), ImageIoError> {
    let color = match picture.layout() {
        Layout::Gray => png::ColorType::Grayscale,
        Layout::Rgb => png::ColorType::Rgb,
        Layout::Rgba => png::ColorType::Rgba,
        other => {
            return Err(unsupported(
                path,
                format!("PNG cannot hold a {other} picture"),
            ));
        }
    };
    let depth = match (picture.layout(), picture.bit_depth()) {
        (Layout::Gray, d @ (1 | 2 | 4)) => d,
        (_, ..=8) => 8,
        _ => 16,
    };
    let png_depth = match depth {
        1 => png::BitDepth::One,
        2 => png::BitDepth::Two,
        4 => png::BitDepth::Four,
        8 => png::BitDepth::Eight,
        _ => png::BitDepth::Sixteen,
    };
    let row_len = picture.width() as usize * picture.layout().plane_count();
    let mut data = Vec::new();
    for row in interleave(picture.planes()).chunks(row_len) {
        pack_row(row, depth, &mut data);
    }
    // Encoding into memory fails only on parameters a valid Picture cannot have.
    let enc_err = |e: png::EncodingError| unsupported(path, format!("PNG encoder: {e}"));
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, picture.width(), picture.height());
    encoder.set_color(color);
    encoder.set_depth(png_depth);
    let mut writer = encoder.write_header().map_err(enc_err)?;
    writer.write_image_data(&data).map_err(enc_err)?;
    writer.finish().map_err(enc_err)?;
    std::fs::write(path, out).map_err(|source| io_err(path, source))
}
