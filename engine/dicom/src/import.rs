//! Reading objects back: [`open`] (any DICOM file, errors on one line naming
//! the file), [`read_cube`] (a med8k spectral image back to the cube,
//! bit-exact), [`read_image`] and [`image_from_bytes`] (the cube with its
//! pixel spacing, from a file or from memory) and [`pixel_spacing_mm`].
//!
//! Everything read is untrusted: sizes are checked against each other and
//! against the data before anything large is allocated, and a value med8k
//! cannot use names its tag.

use std::path::{Path, PathBuf};

use dicom_core::Tag;
use dicom_core::value::Value;
use dicom_dictionary_std::{tags, uids};
use dicom_encoding::Codec;
use dicom_encoding::adapters::PixelDataReader;
use dicom_object::{DefaultDicomObject, InMemDicomObject, OpenFileOptions};
use dicom_transfer_syntax_registry::entries::JPEG_LS_LOSSLESS_IMAGE_COMPRESSION;
use med8k_media::spectral::{Band, SpectralCube};
use ndarray::Array3;

use crate::error::{ImportError, one_line};
use crate::instance::OneFrame;
use crate::wsi::{PRIVATE_FWHM, PRIVATE_REFLECTANCE_SCALE};

/// Largest Total Pixel Matrix edge accepted (pixels).
pub const MAX_EDGE: u32 = 65_536;
/// Most optical paths (bands) accepted.
pub const MAX_PATHS: u32 = 256;

/// Opens a DICOM Part 10 file. A truncated, garbled or non-DICOM file is an
/// [`ImportError::Parse`] naming it.
pub fn open(path: &Path) -> Result<DefaultDicomObject, ImportError> {
    OpenFileOptions::new()
        .open_file(path)
        .map_err(|e| ImportError::Parse {
            path: path.to_path_buf(),
            reason: one_line(&e),
        })
}

/// Parses a DICOM Part 10 file held in memory (with or without the
/// 128-byte preamble); `name` is what errors call it.
pub fn from_bytes(name: &Path, bytes: &[u8]) -> Result<DefaultDicomObject, ImportError> {
    let body = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        &bytes[128..]
    } else {
        bytes
    };
    OpenFileOptions::new()
        .read_preamble(dicom_object::file::ReadPreamble::Never)
        .from_reader(body)
        .map_err(|e| ImportError::Parse {
            path: name.to_path_buf(),
            reason: one_line(&e),
        })
}

/// What reading one object needs: its path for messages.
struct Reader<'a> {
    path: &'a Path,
    obj: &'a InMemDicomObject,
}

impl Reader<'_> {
    fn missing(&self, tag: Tag, name: &'static str) -> ImportError {
        ImportError::Missing {
            path: self.path.to_path_buf(),
            tag,
            name,
        }
    }

    fn bad(&self, tag: Tag, name: &'static str, reason: impl Into<String>) -> ImportError {
        ImportError::Unsupported {
            path: self.path.to_path_buf(),
            tag,
            name,
            reason: reason.into(),
        }
    }

    fn string(&self, tag: Tag, name: &'static str) -> Result<String, ImportError> {
        let e = self.obj.get(tag).ok_or_else(|| self.missing(tag, name))?;
        Ok(e.to_str()
            .map_err(|e| self.bad(tag, name, one_line(&e)))?
            .trim_end_matches(['\0', ' '])
            .to_string())
    }

    fn uint(&self, tag: Tag, name: &'static str) -> Result<u32, ImportError> {
        let e = self.obj.get(tag).ok_or_else(|| self.missing(tag, name))?;
        e.to_int::<u32>()
            .map_err(|e| self.bad(tag, name, one_line(&e)))
    }

    fn expect(&self, tag: Tag, name: &'static str, want: u32) -> Result<(), ImportError> {
        let got = self.uint(tag, name)?;
        if got != want {
            return Err(self.bad(tag, name, format!("{got}, med8k reads {want}")));
        }
        Ok(())
    }
}

/// The SOP Class UID of an object.
pub fn sop_class(obj: &DefaultDicomObject) -> String {
    obj.meta()
        .media_storage_sop_class_uid()
        .trim_end_matches(['\0', ' '])
        .to_string()
}

/// Reads a med8k spectral image (VL Whole Slide Microscopy, MONOCHROME2, 16
/// bits, TILED_FULL, one optical path per band) back into a cube.
pub fn read_cube(path: &Path) -> Result<SpectralCube, ImportError> {
    read_image(path).map(|i| i.cube)
}

/// A spectral image read back: the cube and what the object says of its
/// geometry.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SpectralImage {
    /// The cube, bit-exact.
    pub cube: SpectralCube,
    /// The horizontal distance between pixel centres on the specimen, in mm,
    /// when the object gives it ([`pixel_spacing_mm`]).
    pub pixel_spacing_mm: Option<f64>,
}

/// [`read_cube`], with the object's pixel spacing.
pub fn read_image(path: &Path) -> Result<SpectralImage, ImportError> {
    let obj = open(path)?;
    check_complete(path, &obj, || file_tail(path))?;
    Ok(SpectralImage {
        cube: cube_from_object(path, &obj)?,
        pixel_spacing_mm: pixel_spacing_mm(&obj),
    })
}

/// [`read_image`] on a Part 10 file held in memory (a WADO-RS answer): it
/// is parsed where it lies and never written anywhere; `name` is what
/// errors call it.
pub fn image_from_bytes(name: &Path, bytes: &[u8]) -> Result<SpectralImage, ImportError> {
    let obj = from_bytes(name, bytes)?;
    check_complete(name, &obj, || {
        let mut tail = [0u8; 8];
        if bytes.len() >= 8 {
            tail.copy_from_slice(&bytes[bytes.len() - 8..]);
        }
        Ok(tail)
    })?;
    Ok(SpectralImage {
        cube: cube_from_object(name, &obj)?,
        pixel_spacing_mm: pixel_spacing_mm(&obj),
    })
}

/// The horizontal pixel spacing of an image in mm: the column spacing (the
/// second value) of Pixel Spacing (0028,0030) in the Pixel Measures
/// Sequence of the Shared Functional Groups (where a WSI image keeps it, and
/// where `med8k dicom export` writes [`crate::WsiOptions::pixel_spacing_mm`]),
/// else of the first frame's Per-Frame Functional Groups, else at the top
/// level (single-frame IODs). `None` when none is there or the value is not
/// a positive number: no scale is better than a wrong one.
pub fn pixel_spacing_mm(obj: &InMemDicomObject) -> Option<f64> {
    let measures = |group: Tag| {
        obj.get(group)?
            .items()?
            .first()?
            .get(tags::PIXEL_MEASURES_SEQUENCE)?
            .items()?
            .first()?
            .get(tags::PIXEL_SPACING)?
            .to_multi_float64()
            .ok()
    };
    let top = || obj.get(tags::PIXEL_SPACING)?.to_multi_float64().ok();
    let values = measures(tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE)
        .or_else(|| measures(tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE))
        .or_else(top)?;
    // Row spacing \ column spacing (PS3.3 10.7.1.3); a lone value is both.
    let column = *values.get(1).or(values.first())?;
    (column.is_finite() && column > 0.0).then_some(column)
}

/// The last 8 bytes of a file.
fn file_tail(path: &Path) -> Result<[u8; 8], ImportError> {
    use std::io::{Read, Seek, SeekFrom};
    let io = |e: std::io::Error| ImportError::Parse {
        path: path.to_path_buf(),
        reason: e.to_string(),
    };
    let mut f = std::fs::File::open(path).map_err(io)?;
    let mut tail = [0u8; 8];
    f.seek(SeekFrom::End(-8)).map_err(io)?;
    f.read_exact(&mut tail).map_err(io)?;
    Ok(tail)
}

/// dicom-rs accepts encapsulated Pixel Data whose closing Sequence
/// Delimitation Item was cut off; when Pixel Data is the data set's last
/// element, the object's last 8 bytes (from `tail`) must be that item, or it
/// was truncated.
fn check_complete(
    path: &Path,
    obj: &DefaultDicomObject,
    tail: impl FnOnce() -> Result<[u8; 8], ImportError>,
) -> Result<(), ImportError> {
    let encapsulated = obj
        .get(tags::PIXEL_DATA)
        .is_some_and(|e| matches!(e.value(), Value::PixelSequence(_)));
    let last = obj.tags().last();
    if !encapsulated || last != Some(tags::PIXEL_DATA) {
        return Ok(());
    }
    if tail()? != [0xfe, 0xff, 0xdd, 0xe0, 0, 0, 0, 0] {
        return Err(ImportError::Parse {
            path: path.to_path_buf(),
            reason: "truncated: encapsulated Pixel Data (7FE0,0010) does not end with its sequence delimiter".into(),
        });
    }
    Ok(())
}

/// [`read_cube`] on an object already open.
pub fn cube_from_object(
    path: &Path,
    obj: &DefaultDicomObject,
) -> Result<SpectralCube, ImportError> {
    let r = Reader { path, obj };
    let class = r.string(tags::SOP_CLASS_UID, "SOPClassUID")?;
    if class != uids::VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE {
        return Err(ImportError::WrongIod {
            path: path.to_path_buf(),
            found: class,
            expected: "VL Whole Slide Microscopy Image Storage (1.2.840.10008.5.1.4.1.1.77.1.6)",
        });
    }
    let pmi = r.string(
        tags::PHOTOMETRIC_INTERPRETATION,
        "PhotometricInterpretation",
    )?;
    if pmi != "MONOCHROME2" {
        return Err(r.bad(
            tags::PHOTOMETRIC_INTERPRETATION,
            "PhotometricInterpretation",
            format!("{pmi}: a spectral image is MONOCHROME2 (is this the colour rendering?)"),
        ));
    }
    r.expect(tags::SAMPLES_PER_PIXEL, "SamplesPerPixel", 1)?;
    r.expect(tags::BITS_ALLOCATED, "BitsAllocated", 16)?;
    r.expect(tags::PIXEL_REPRESENTATION, "PixelRepresentation", 0)?;
    let organisation = r.string(
        tags::DIMENSION_ORGANIZATION_TYPE,
        "DimensionOrganizationType",
    )?;
    if organisation != "TILED_FULL" {
        return Err(r.bad(
            tags::DIMENSION_ORGANIZATION_TYPE,
            "DimensionOrganizationType",
            format!("{organisation}: med8k reads TILED_FULL"),
        ));
    }
    if let Some(e) = obj.get(tags::TOTAL_PIXEL_MATRIX_FOCAL_PLANES) {
        let planes = e.to_int::<u32>().unwrap_or(0);
        if planes != 1 {
            return Err(r.bad(
                tags::TOTAL_PIXEL_MATRIX_FOCAL_PLANES,
                "TotalPixelMatrixFocalPlanes",
                format!("{planes}: med8k reads one focal plane"),
            ));
        }
    }
    let w = r.uint(tags::TOTAL_PIXEL_MATRIX_COLUMNS, "TotalPixelMatrixColumns")?;
    let h = r.uint(tags::TOTAL_PIXEL_MATRIX_ROWS, "TotalPixelMatrixRows")?;
    for (v, tag, name) in [
        (
            w,
            tags::TOTAL_PIXEL_MATRIX_COLUMNS,
            "TotalPixelMatrixColumns",
        ),
        (h, tags::TOTAL_PIXEL_MATRIX_ROWS, "TotalPixelMatrixRows"),
    ] {
        if v == 0 || v > MAX_EDGE {
            return Err(r.bad(tag, name, format!("{v}: 1 to {MAX_EDGE}")));
        }
    }
    let tw = r.uint(tags::COLUMNS, "Columns")?;
    let th = r.uint(tags::ROWS, "Rows")?;
    if tw == 0 || th == 0 {
        return Err(r.bad(tags::ROWS, "Rows", format!("tile {tw}x{th}")));
    }
    let bands = bands(&r)?;
    let (nx, ny) = (w.div_ceil(tw), h.div_ceil(th));
    let frames = r.uint(tags::NUMBER_OF_FRAMES, "NumberOfFrames")?;
    let want = nx as u64 * ny as u64 * bands.len() as u64;
    if frames as u64 != want {
        return Err(r.bad(
            tags::NUMBER_OF_FRAMES,
            "NumberOfFrames",
            format!(
                "{frames}, but {nx}x{ny} tiles of {tw}x{th} times {} optical paths is {want}",
                bands.len()
            ),
        ));
    }
    let frame_bytes = tw as usize * th as usize * 2;
    let ts = obj
        .meta()
        .transfer_syntax()
        .trim_end_matches(['\0', ' '])
        .to_string();
    let pixel = obj
        .get(tags::PIXEL_DATA)
        .ok_or_else(|| r.missing(tags::PIXEL_DATA, "PixelData"))?;
    let mut data = Array3::<u16>::zeros((bands.len(), h as usize, w as usize));
    let per_plane = (nx * ny) as usize;
    let mut put = |f: usize, bytes: &[u8]| -> Result<(), ImportError> {
        if bytes.len() < frame_bytes {
            return Err(ImportError::Frame {
                path: path.to_path_buf(),
                frame: f,
                reason: format!(
                    "{} bytes, a {tw}x{th} 16-bit tile is {frame_bytes}",
                    bytes.len()
                ),
            });
        }
        let (b, t) = (f / per_plane, f % per_plane);
        let (x0, y0) = (
            (t % nx as usize) * tw as usize,
            (t / nx as usize) * th as usize,
        );
        let mut plane = data.index_axis_mut(ndarray::Axis(0), b);
        for y in 0..th as usize {
            if y0 + y >= h as usize {
                break;
            }
            let n = (tw as usize).min(w as usize - x0);
            let row = &bytes[y * tw as usize * 2..][..n * 2];
            for (x, s) in row.chunks_exact(2).enumerate() {
                plane[[y0 + y, x0 + x]] = u16::from_le_bytes([s[0], s[1]]);
            }
        }
        Ok(())
    };
    match pixel.value() {
        Value::Primitive(p) => {
            if ts == uids::JPEGLS_LOSSLESS || ts == uids::JPEGLS_NEAR_LOSSLESS {
                return Err(r.bad(
                    tags::PIXEL_DATA,
                    "PixelData",
                    "native data in a JPEG-LS file",
                ));
            }
            let bytes = p.to_bytes();
            let need = frame_bytes as u64 * frames as u64;
            if (bytes.len() as u64) < need {
                return Err(r.bad(
                    tags::PIXEL_DATA,
                    "PixelData",
                    format!("{} bytes, {frames} frames need {need}", bytes.len()),
                ));
            }
            for f in 0..frames as usize {
                put(f, &bytes[f * frame_bytes..][..frame_bytes])?;
            }
        }
        Value::PixelSequence(seq) => {
            if ts != uids::JPEGLS_LOSSLESS {
                return Err(r.bad(
                    tags::PIXEL_DATA,
                    "PixelData",
                    format!("encapsulated in transfer syntax {ts}: med8k reads JPEG-LS Lossless"),
                ));
            }
            let fragments = seq.fragments();
            if fragments.len() != frames as usize {
                return Err(r.bad(
                    tags::PIXEL_DATA,
                    "PixelData",
                    format!("{} fragments for {frames} frames", fragments.len()),
                ));
            }
            let Codec::EncapsulatedPixelData(Some(reader), _) =
                JPEG_LS_LOSSLESS_IMAGE_COMPRESSION.codec()
            else {
                return Err(r.bad(
                    tags::PIXEL_DATA,
                    "PixelData",
                    "no JPEG-LS decoder in this build",
                ));
            };
            for (f, fragment) in fragments.iter().enumerate() {
                let src = OneFrame {
                    ts: uids::JPEGLS_LOSSLESS,
                    rows: th as u16,
                    columns: tw as u16,
                    samples: 1,
                    bits: 16,
                    photometric: "MONOCHROME2",
                    data: fragment,
                    encapsulated: true,
                };
                let mut out = Vec::with_capacity(frame_bytes);
                reader
                    .decode_frame(&src, 0, &mut out)
                    .map_err(|e| ImportError::Frame {
                        path: path.to_path_buf(),
                        frame: f,
                        reason: one_line(&e),
                    })?;
                if out.len() != frame_bytes {
                    return Err(ImportError::Frame {
                        path: path.to_path_buf(),
                        frame: f,
                        reason: format!("decoded {} bytes, expected {frame_bytes}", out.len()),
                    });
                }
                put(f, &out)?;
            }
        }
        Value::Sequence(_) => {
            return Err(r.bad(tags::PIXEL_DATA, "PixelData", "a sequence, not pixel data"));
        }
    }
    let mut cube = SpectralCube::new(bands, data).map_err(|e| ImportError::Frame {
        path: path.to_path_buf(),
        frame: 0,
        reason: e.to_string(),
    })?;
    cube.reflectance_scale = obj
        .get(PRIVATE_REFLECTANCE_SCALE)
        .filter(|_| is_med8k_private(obj))
        .and_then(|e| e.to_float32().ok());
    Ok(cube)
}

fn is_med8k_private(obj: &InMemDicomObject) -> bool {
    obj.get(Tag(crate::identity::PRIVATE_GROUP, 0x0010))
        .and_then(|e| e.to_str().ok())
        .is_some_and(|c| c.trim_end_matches(['\0', ' ']) == crate::identity::PRIVATE_CREATOR)
}

/// The bands from the Optical Path Sequence (centre from Illumination Wave
/// Length; width from med8k's private block, else from the pass band), in
/// the order of TILED_FULL's optical-path dimension.
fn bands(r: &Reader<'_>) -> Result<Vec<Band>, ImportError> {
    let n = r.uint(tags::NUMBER_OF_OPTICAL_PATHS, "NumberOfOpticalPaths")?;
    if n == 0 || n > MAX_PATHS {
        return Err(r.bad(
            tags::NUMBER_OF_OPTICAL_PATHS,
            "NumberOfOpticalPaths",
            format!("{n}: 1 to {MAX_PATHS}"),
        ));
    }
    let seq = r
        .obj
        .get(tags::OPTICAL_PATH_SEQUENCE)
        .ok_or_else(|| r.missing(tags::OPTICAL_PATH_SEQUENCE, "OpticalPathSequence"))?;
    let items = seq.items().ok_or_else(|| {
        r.bad(
            tags::OPTICAL_PATH_SEQUENCE,
            "OpticalPathSequence",
            "not a sequence",
        )
    })?;
    if items.len() != n as usize {
        return Err(r.bad(
            tags::OPTICAL_PATH_SEQUENCE,
            "OpticalPathSequence",
            format!("{} items, NumberOfOpticalPaths is {n}", items.len()),
        ));
    }
    let fwhm: Option<Vec<f32>> = r
        .obj
        .get(PRIVATE_FWHM)
        .filter(|_| is_med8k_private(r.obj))
        .and_then(|e| e.to_multi_float32().ok())
        .filter(|v| v.len() == items.len());
    let mut out = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        let centre = it
            .get(tags::ILLUMINATION_WAVE_LENGTH)
            .ok_or_else(|| r.missing(tags::ILLUMINATION_WAVE_LENGTH, "IlluminationWaveLength"))?
            .to_float32()
            .map_err(|e| {
                r.bad(
                    tags::ILLUMINATION_WAVE_LENGTH,
                    "IlluminationWaveLength",
                    one_line(&e),
                )
            })?;
        if !(centre.is_finite() && centre > 0.0) {
            return Err(r.bad(
                tags::ILLUMINATION_WAVE_LENGTH,
                "IlluminationWaveLength",
                format!("optical path {}: {centre} nm", i + 1),
            ));
        }
        let width = match &fwhm {
            Some(v) => v[i],
            None => it
                .get(tags::LIGHT_PATH_FILTER_PASS_BAND)
                .and_then(|e| e.to_multi_int::<u16>().ok())
                .filter(|v| v.len() == 2 && v[1] >= v[0])
                .map_or(0.0, |v| f32::from(v[1] - v[0])),
        };
        out.push(Band {
            center_nm: centre,
            fwhm_nm: width,
        });
    }
    Ok(out)
}

/// The path a message names for an object read from memory.
pub fn memory_name(what: &str) -> PathBuf {
    PathBuf::from(format!("<{what}>"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::StudyInfo;
    use crate::modules::{item, seq, text, texts};
    use crate::uid::UidRoot;
    use crate::{Site, SpecimenSeries, Syntax, WsiOptions};
    use dicom_core::VR;

    fn cube() -> SpectralCube {
        let bands = (0..7)
            .map(|i| Band {
                center_nm: 410.0 + 40.0 * i as f32,
                fwhm_nm: 40.0,
            })
            .collect();
        let data = Array3::from_shape_fn((7, 20, 30), |(b, y, x)| (b * 1000 + y * 30 + x) as u16);
        SpectralCube::new(bands, data).unwrap()
    }

    fn study() -> StudyInfo {
        StudyInfo {
            date: "20260115".into(),
            time: "093000".into(),
            ..Default::default()
        }
    }

    #[test]
    fn the_pixel_spacing_export_writes_is_read_back_from_memory() {
        let cube = cube();
        let site = Site::new(UidRoot::Uuid);
        let options = WsiOptions::default()
            .with_tile(16)
            .with_pixel_spacing_mm(0.0025);
        let study = study();
        let series = SpecimenSeries::new(&site, &study, &cube, options).unwrap();
        for syntax in [Syntax::ExplicitLittle, Syntax::JpegLsLossless] {
            let bytes = series
                .spectral_image(&cube)
                .unwrap()
                .to_bytes(syntax)
                .unwrap();
            let image = image_from_bytes(&memory_name("test"), &bytes).unwrap();
            assert_eq!(image.pixel_spacing_mm, Some(0.0025));
            assert_eq!(image.cube.data(), cube.data());
            // Cut short: refused, as a truncated file is.
            if syntax == Syntax::JpegLsLossless {
                let e = image_from_bytes(&memory_name("cut"), &bytes[..bytes.len() - 8])
                    .unwrap_err()
                    .to_string();
                assert!(e.contains("<cut>") && e.contains("truncated"), "{e}");
            }
        }
        // The rendering carries the same spacing.
        let colour = series
            .colour_image(&cube)
            .unwrap()
            .to_bytes(Syntax::ExplicitLittle);
        let obj = from_bytes(&memory_name("colour"), &colour.unwrap()).unwrap();
        assert_eq!(pixel_spacing_mm(&obj), Some(0.0025));
    }

    fn measures(group: Tag, spacing: &[&str]) -> InMemDicomObject {
        InMemDicomObject::from_element_iter([seq(
            group,
            vec![item([seq(
                tags::PIXEL_MEASURES_SEQUENCE,
                vec![item([texts(tags::PIXEL_SPACING, VR::DS, spacing)])],
            )])],
        )])
    }

    #[test]
    fn pixel_spacing_is_the_column_spacing_wherever_the_iod_keeps_it() {
        let shared = tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE;
        let per_frame = tags::PER_FRAME_FUNCTIONAL_GROUPS_SEQUENCE;
        // Row spacing \ column spacing: the scale bar is horizontal.
        assert_eq!(
            pixel_spacing_mm(&measures(shared, &["0.004", "0.002"])),
            Some(0.002)
        );
        assert_eq!(pixel_spacing_mm(&measures(shared, &["0.003"])), Some(0.003));
        assert_eq!(
            pixel_spacing_mm(&measures(per_frame, &["0.01", "0.01"])),
            Some(0.01)
        );
        let top = InMemDicomObject::from_element_iter([texts(
            tags::PIXEL_SPACING,
            VR::DS,
            &["0.5", "0.25"],
        )]);
        assert_eq!(pixel_spacing_mm(&top), Some(0.25));
        // Shared groups win over a top-level value.
        let mut both = measures(shared, &["0.02", "0.02"]);
        both.put(texts(tags::PIXEL_SPACING, VR::DS, &["9", "9"]));
        assert_eq!(pixel_spacing_mm(&both), Some(0.02));
        // Nothing, zero, negative or garbage: no scale.
        assert_eq!(pixel_spacing_mm(&InMemDicomObject::new_empty()), None);
        for bad in [["0", "0"], ["-0.1", "-0.1"], ["abc", "def"]] {
            assert_eq!(pixel_spacing_mm(&measures(shared, &bad)), None, "{bad:?}");
        }
        let empty = InMemDicomObject::from_element_iter([seq(
            shared,
            vec![item([text(tags::SLICE_THICKNESS, VR::DS, "1")])],
        )]);
        assert_eq!(pixel_spacing_mm(&empty), None);
    }
}
