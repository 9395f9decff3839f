//! PNG output (8 or 16 bits per channel) with the output space's ICC profile
//! in an `iCCP` chunk.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::icc;
use crate::render::{RgbData, RgbImage};

/// Why a PNG could not be written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PngError {
    /// The file could not be created or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The encoder refused the image.
    #[error("PNG encoding: {0}")]
    Encode(#[from] png::EncodingError),
    /// The image is larger than PNG allows (2³¹−1 per side) or its data is short.
    #[error("image {width}x{height} cannot be written as PNG")]
    Size {
        /// Width.
        width: usize,
        /// Height.
        height: usize,
    },
}

/// Encodes `image` as PNG into `w`, with the ICC profile of its space.
pub fn write_png<W: Write>(w: W, image: &RgbImage) -> Result<(), PngError> {
    let size_err = || PngError::Size {
        width: image.width,
        height: image.height,
    };
    let width = u32::try_from(image.width).map_err(|_| size_err())?;
    let height = u32::try_from(image.height).map_err(|_| size_err())?;
    if width == 0 || height == 0 || width > i32::MAX as u32 || height > i32::MAX as u32 {
        return Err(size_err());
    }
    let samples = image
        .width
        .checked_mul(image.height)
        .and_then(|n| n.checked_mul(3))
        .ok_or_else(size_err)?;
    let mut info = png::Info::with_size(width, height);
    info.color_type = png::ColorType::Rgb;
    info.icc_profile = Some(icc::profile(image.space).into());
    let (depth, bytes): (png::BitDepth, std::borrow::Cow<'_, [u8]>) = match &image.data {
        RgbData::Eight(d) if d.len() == samples => (png::BitDepth::Eight, d.as_slice().into()),
        RgbData::Sixteen(d) if d.len() == samples => (
            png::BitDepth::Sixteen,
            d.iter()
                .flat_map(|v| v.to_be_bytes())
                .collect::<Vec<u8>>()
                .into(),
        ),
        _ => return Err(size_err()),
    };
    info.bit_depth = depth;
    let mut encoder = png::Encoder::with_info(w, info)?;
    encoder.set_compression(png::Compression::Fast);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&bytes)?;
    writer.finish()?;
    Ok(())
}

/// Writes `image` to a PNG file at `path`.
pub fn write_png_file(path: &Path, image: &RgbImage) -> Result<(), PngError> {
    let io = |source| PngError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut buf = std::io::BufWriter::new(file);
    write_png(&mut buf, image)?;
    buf.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rgb::OutputSpace;

    #[test]
    fn round_trips_through_the_png_decoder_with_its_profile() {
        for data in [
            RgbData::Eight((0..2 * 3 * 3).map(|i| (i * 13) as u8).collect()),
            RgbData::Sixteen((0..2 * 3 * 3).map(|i| (i * 3001) as u16).collect()),
        ] {
            let img = RgbImage {
                width: 3,
                height: 2,
                space: OutputSpace::DisplayP3,
                data: data.clone(),
            };
            let mut bytes = Vec::new();
            write_png(&mut bytes, &img).unwrap();
            let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
            let mut reader = decoder.read_info().unwrap();
            let icc = reader.info().icc_profile.clone().unwrap();
            assert_eq!(
                icc.as_ref(),
                icc::profile(OutputSpace::DisplayP3).as_slice()
            );
            let mut buf = vec![0; reader.output_buffer_size().unwrap()];
            let frame = reader.next_frame(&mut buf).unwrap();
            let got = &buf[..frame.buffer_size()];
            match data {
                RgbData::Eight(d) => assert_eq!(got, d.as_slice()),
                RgbData::Sixteen(d) => {
                    let be: Vec<u8> = d.iter().flat_map(|v| v.to_be_bytes()).collect();
                    assert_eq!(got, be.as_slice());
                }
            }
        }
    }

    #[test]
    fn short_data_is_an_error() {
        let img = RgbImage {
            width: 3,
            height: 2,
            space: OutputSpace::Srgb,
            data: RgbData::Eight(vec![0; 5]),
        };
        assert!(matches!(
            write_png(Vec::new(), &img),
            Err(PngError::Size { .. })
        ));
    }
}
