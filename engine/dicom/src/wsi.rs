//! The 7-band specimen image and its true-colour rendering, both VL Whole
//! Slide Microscopy Image (PS3.3 A.32.8) instances in one series.
//!
//! # Why VL Whole Slide Microscopy, for a gross specimen
//! med8k's pathology camera photographs a gross specimen in 7 bands (410–650
//! nm, 40 nm wide). Three IODs could carry it:
//!
//! - **VL Photographic Image** (A.32.4, modality XC) is what gross-specimen
//!   photographs usually are. It is single-frame with 1 or 3 samples, and has
//!   no attribute for a channel's wavelength: 7 bands would be 7 instances
//!   whose band is known only from free text (Image Comments, Series
//!   Description), which no viewer or PACS groups back into one image. A
//!   bit-exact 7-band round trip would rest on a naming convention.
//! - **One instance per band** in any single-channel IOD has the same flaw,
//!   and loses the statement that the 7 planes are one acquisition on one
//!   pixel grid.
//! - **VL Whole Slide Microscopy Image** (A.32.8, C.8.12) is the one standard
//!   IOD that carries N channels with their wavelengths: the Optical Path
//!   module has one item per band with Illumination Wave Length (FL, nm) and
//!   the filter's pass-through wavelength and pass band; TILED_FULL
//!   (C.7.6.17.3) orders the frames tile by tile, then focal plane, then
//!   optical path, so one instance holds the whole cube on one Total Pixel
//!   Matrix, MONOCHROME2, 16 bits stored. Microscopy viewers (Slim) blend
//!   optical paths with a colour each.
//!
//! The price: the IOD was made for slides. Its slide coordinate system,
//! Imaged Volume and Specimen module (container and specimen identifiers)
//! describe a glass slide; here they describe the specimen container and the
//! camera's field, with the pixel spacing of the camera
//! ([`WsiOptions::pixel_spacing_mm`]) and an imaged depth of 1 mm (a surface,
//! not a section). Illumination is coded as reflection (DCM 111742), not
//! transmission. A PACS stores it like any WSI; a radiology viewer that only
//! knows single frames will not display it, which is why the series also
//! carries the true-colour rendering (RGB, 8 bits, with its sRGB ICC profile
//! in its optical path), an instance every WSI viewer shows in colour.
//!
//! What the standard has no place for goes into one private block
//! ([`crate::identity::PRIVATE_CREATOR`], group 0009): each band's exact FWHM
//! (the pass band is in whole nanometres) and the cube's reflectance scale,
//! so that `import` gives back the ENVI header as well as the samples.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use med8k_colour::{CubeRef, RenderOptions, RgbData, render};
use med8k_media::spectral::SpectralCube;
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::identity::{PRIVATE_CREATOR, PRIVATE_GROUP, StudyInfo};
use crate::modules::{
    acquisition_context, check_date_time, code_seq, equipment, frame_of_reference, general_image,
    general_series, general_study, image_pixel, item, patient, seq, sop_common, text, texts, value,
};
use crate::{ExportError, Instance, ObjectKind, Photometric, Pixels, Site};

/// Private element: the bands' FWHM in nm (FL, one value per band).
pub const PRIVATE_FWHM: Tag = Tag(PRIVATE_GROUP, 0x1001);
/// Private element: the value that stands for reflectance 1.0 (FL).
pub const PRIVATE_REFLECTANCE_SCALE: Tag = Tag(PRIVATE_GROUP, 0x1002);

/// How the specimen images are laid out and described.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct WsiOptions {
    /// Tile edge in pixels (frames are tiles; edge tiles are padded with 0).
    pub tile: u16,
    /// The camera's pixel spacing on the specimen, in mm.
    pub pixel_spacing_mm: f64,
    /// The specimen container's identifier at the site (Container Identifier).
    pub container_id: String,
    /// The specimen's identifier at the site (Specimen Identifier).
    pub specimen_id: String,
    /// A short description of the specimen, or empty.
    pub specimen_description: String,
}

impl Default for WsiOptions {
    fn default() -> Self {
        WsiOptions {
            tile: 512,
            pixel_spacing_mm: 0.05,
            container_id: String::new(),
            specimen_id: String::new(),
            specimen_description: String::new(),
        }
    }
}

impl WsiOptions {
    /// Sets the tile edge.
    pub fn with_tile(mut self, tile: u16) -> Self {
        self.tile = tile;
        self
    }
    /// Sets the pixel spacing in mm.
    pub fn with_pixel_spacing_mm(mut self, mm: f64) -> Self {
        self.pixel_spacing_mm = mm;
        self
    }
    /// Sets the container and specimen identifiers.
    pub fn with_specimen(mut self, container_id: &str, specimen_id: &str) -> Self {
        self.container_id = container_id.to_string();
        self.specimen_id = specimen_id.to_string();
        self
    }
}

/// The UIDs and identifiers one specimen's series shares: both images sit in
/// one study, series and frame of reference, and name the same specimen.
#[derive(Debug, Clone)]
pub struct SpecimenSeries<'a> {
    site: &'a Site,
    study: &'a StudyInfo,
    options: WsiOptions,
    content: String,
    study_uid: String,
    series_uid: String,
    frame_of_reference_uid: String,
    specimen_uid: String,
    dimension_uid: String,
}

/// SHA-256 of a cube's bands and samples: the name its UIDs derive from.
pub fn cube_digest(cube: &SpectralCube) -> String {
    let mut h = Sha256::new();
    for b in cube.bands() {
        h.update(b.center_nm.to_le_bytes());
        h.update(b.fwhm_nm.to_le_bytes());
    }
    h.update((cube.width() as u64).to_le_bytes());
    h.update((cube.height() as u64).to_le_bytes());
    match cube.data().as_slice() {
        Some(s) => h.update(bytemuck_u16(s)),
        None => cube.data().iter().for_each(|v| h.update(v.to_le_bytes())),
    }
    format!("{:x}", h.finalize())
}

fn bytemuck_u16(s: &[u16]) -> Vec<u8> {
    s.iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// The Study Instance UID the site gives a study: from the patient, study
/// and accession identifiers, so every object of the study agrees.
pub fn study_uid(site: &Site, study: &StudyInfo) -> String {
    site.uid_root.uid(&format!(
        "study\0{}\0{}\0{}",
        study.patient.id, study.study_id, study.accession
    ))
}

impl<'a> SpecimenSeries<'a> {
    /// The series for `cube` in `study` at `site`.
    pub fn new(
        site: &'a Site,
        study: &'a StudyInfo,
        cube: &SpectralCube,
        options: WsiOptions,
    ) -> Result<Self, ExportError> {
        check_date_time(&study.date, &study.time)?;
        if options.tile < 16 {
            return Err(ExportError::Invalid {
                what: "tile",
                reason: format!("{} pixels: at least 16", options.tile),
            });
        }
        if !(options.pixel_spacing_mm.is_finite() && options.pixel_spacing_mm > 0.0) {
            return Err(ExportError::Invalid {
                what: "pixel spacing",
                reason: format!("{} mm: a positive number", options.pixel_spacing_mm),
            });
        }
        let content = cube_digest(cube);
        let mut options = options;
        // Type 1: when the site gives no identifiers, the content names them.
        if options.container_id.is_empty() {
            options.container_id = format!("C{}", &content[..15]);
        }
        if options.specimen_id.is_empty() {
            options.specimen_id = format!("S{}", &content[..15]);
        }
        let study_uid = study_uid(site, study);
        let r = &site.uid_root;
        let key = |kind: &str| format!("{kind}\0{study_uid}\0{content}");
        Ok(SpecimenSeries {
            series_uid: r.uid(&key("specimen-series")),
            frame_of_reference_uid: r.uid(&key("frame-of-reference")),
            specimen_uid: r.uid(&key("specimen")),
            dimension_uid: r.uid(&key("dimension-organization")),
            site,
            study,
            options,
            content,
            study_uid,
        })
    }

    /// The series' UID.
    pub fn series_uid(&self) -> &str {
        &self.series_uid
    }

    fn common(&self, ds: &mut InMemDicomObject, kind: &str, number: u32, image_type: &[&str]) {
        // Patient, General Study, General Series + WSM Series, Frame of
        // Reference, General and Enhanced General Equipment, General Image,
        // Acquisition Context, SOP Common.
        let class = uids::VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE;
        let instance = self
            .site
            .uid_root
            .uid(&format!("{kind}\0{}\0{}", self.series_uid, self.content));
        patient(ds, self.study);
        general_study(ds, self.study, &self.study_uid);
        general_series(ds, "SM", &self.series_uid, 1, "Multispectral specimen");
        frame_of_reference(ds, &self.frame_of_reference_uid);
        equipment(ds, self.site);
        general_image(ds, number, self.study);
        ds.put(texts(tags::IMAGE_TYPE, VR::CS, image_type));
        acquisition_context(ds);
        sop_common(ds, class, &instance);
        // Common Instance Reference: nothing referenced outside the series.
    }

    /// The cube as one VL Whole Slide Microscopy Image: one optical path per
    /// band, TILED_FULL, MONOCHROME2, 16 bits.
    pub fn spectral_image(&self, cube: &SpectralCube) -> Result<Instance, ExportError> {
        let (w, h) = (cube.width(), cube.height());
        let planes: Vec<&[u16]> = (0..cube.band_count())
            .map(|b| {
                cube.data()
                    .index_axis(ndarray::Axis(0), b)
                    .to_slice()
                    .ok_or_else(|| ExportError::Invalid {
                        what: "cube",
                        reason: "samples are not in standard layout".into(),
                    })
            })
            .collect::<Result<_, _>>()?;
        let px = tiles_u16(&planes, w, h, self.options.tile)?;
        let mut ds = InMemDicomObject::new_empty();
        self.common(
            &mut ds,
            "spectral-image",
            1,
            &["ORIGINAL", "PRIMARY", "VOLUME", "NONE"],
        );
        image_pixel(&mut ds, &px);
        self.wsi_image(&mut ds, &px, w, h, cube.band_count());
        ds.put(value(
            tags::PRESENTATION_LUT_SHAPE,
            VR::CS,
            PrimitiveValue::from("IDENTITY"),
        ));
        ds.put(text(tags::RESCALE_INTERCEPT, VR::DS, "0"));
        ds.put(text(tags::RESCALE_SLOPE, VR::DS, "1"));
        let paths = cube
            .bands()
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let lo = (b.center_nm - b.fwhm_nm / 2.0).round().max(0.0) as u16;
                let hi = (b.center_nm + b.fwhm_nm / 2.0).round().max(0.0) as u16;
                item([
                    text(tags::OPTICAL_PATH_IDENTIFIER, VR::SH, &(i + 1).to_string()),
                    text(
                        tags::OPTICAL_PATH_DESCRIPTION,
                        VR::ST,
                        &format!("band {} nm, FWHM {} nm", b.center_nm, b.fwhm_nm),
                    ),
                    code_seq(
                        tags::ILLUMINATION_TYPE_CODE_SEQUENCE,
                        "111742",
                        "DCM",
                        "Reflection illumination",
                    ),
                    value(tags::ILLUMINATION_WAVE_LENGTH, VR::FL, b.center_nm),
                    value(
                        tags::LIGHT_PATH_FILTER_PASS_THROUGH_WAVELENGTH,
                        VR::US,
                        b.center_nm.round().max(0.0) as u16,
                    ),
                    DataElement::new(
                        tags::LIGHT_PATH_FILTER_PASS_BAND,
                        VR::US,
                        PrimitiveValue::U16([lo, hi].into_iter().collect()),
                    ),
                ])
            })
            .collect();
        self.optical_paths(&mut ds, paths);
        // The private block: exact FWHM and the reflectance scale.
        ds.put(text(Tag(PRIVATE_GROUP, 0x0010), VR::LO, PRIVATE_CREATOR));
        ds.put(DataElement::new(
            PRIVATE_FWHM,
            VR::FL,
            PrimitiveValue::F32(cube.bands().iter().map(|b| b.fwhm_nm).collect()),
        ));
        if let Some(scale) = cube.reflectance_scale {
            ds.put(value(PRIVATE_REFLECTANCE_SCALE, VR::FL, scale));
        }
        Ok(Instance {
            kind: ObjectKind::SpectralImage,
            dataset: ds,
            pixels: Some(px),
        })
    }

    /// The true-colour rendering of `cube` (sRGB under D65, 8 bits, through
    /// `med8k-colour`) as a second instance in the series, with the sRGB ICC
    /// profile in its optical path.
    pub fn colour_image(&self, cube: &SpectralCube) -> Result<Instance, ExportError> {
        let view = CubeRef::from_cube(cube).map_err(|e| ExportError::Invalid {
            what: "cube",
            reason: e.to_string(),
        })?;
        let image = render(&view, &RenderOptions::default()).map_err(|e| ExportError::Invalid {
            what: "colour rendering",
            reason: e.to_string(),
        })?;
        let RgbData::Eight(rgb) = &image.data else {
            return Err(ExportError::Invalid {
                what: "colour rendering",
                reason: "expected 8-bit output".into(),
            });
        };
        let px = tiles_rgb8(rgb, image.width, image.height, self.options.tile)?;
        let mut ds = InMemDicomObject::new_empty();
        self.common(
            &mut ds,
            "colour-image",
            2,
            &["DERIVED", "PRIMARY", "VOLUME", "NONE"],
        );
        image_pixel(&mut ds, &px);
        self.wsi_image(&mut ds, &px, image.width, image.height, 1);
        let path = item([
            text(tags::OPTICAL_PATH_IDENTIFIER, VR::SH, "RGB"),
            text(
                tags::OPTICAL_PATH_DESCRIPTION,
                VR::ST,
                "true colour rendered from the bands (sRGB, D65, CIE 1931 2 degree)",
            ),
            code_seq(
                tags::ILLUMINATION_TYPE_CODE_SEQUENCE,
                "111742",
                "DCM",
                "Reflection illumination",
            ),
            code_seq(
                tags::ILLUMINATION_COLOR_CODE_SEQUENCE,
                "414298005",
                "SCT",
                "Full Spectrum",
            ),
            DataElement::new(
                tags::ICC_PROFILE,
                VR::OB,
                PrimitiveValue::from(even(med8k_colour::icc::srgb_profile())),
            ),
            text(tags::COLOR_SPACE, VR::CS, "SRGB"),
        ]);
        self.optical_paths(&mut ds, vec![path]);
        Ok(Instance {
            kind: ObjectKind::ColourImage,
            dataset: ds,
            pixels: Some(px),
        })
    }

    /// Multi-frame Functional Groups, Multi-frame Dimension, Specimen and
    /// Whole Slide Microscopy Image modules.
    fn wsi_image(&self, ds: &mut InMemDicomObject, px: &Pixels, w: usize, h: usize, paths: usize) {
        let mm = self.options.pixel_spacing_mm;
        let spacing = format!("{mm}");
        ds.put(text(
            tags::NUMBER_OF_FRAMES,
            VR::IS,
            &px.frames.len().to_string(),
        ));
        let frame_type = if px.photometric == Photometric::Rgb {
            ["DERIVED", "PRIMARY", "VOLUME", "NONE"]
        } else {
            ["ORIGINAL", "PRIMARY", "VOLUME", "NONE"]
        };
        let mut shared = vec![
            seq(
                tags::PIXEL_MEASURES_SEQUENCE,
                vec![item([
                    texts(tags::PIXEL_SPACING, VR::DS, &[&spacing, &spacing]),
                    text(tags::SLICE_THICKNESS, VR::DS, "1"),
                ])],
            ),
            seq(
                tags::WHOLE_SLIDE_MICROSCOPY_IMAGE_FRAME_TYPE_SEQUENCE,
                vec![item([texts(tags::FRAME_TYPE, VR::CS, &frame_type)])],
            ),
        ];
        if paths == 1 {
            let id = if px.photometric == Photometric::Rgb {
                "RGB"
            } else {
                "1"
            };
            shared.push(seq(
                tags::OPTICAL_PATH_IDENTIFICATION_SEQUENCE,
                vec![item([text(tags::OPTICAL_PATH_IDENTIFIER, VR::SH, id)])],
            ));
        }
        ds.put(seq(
            tags::SHARED_FUNCTIONAL_GROUPS_SEQUENCE,
            vec![item(shared)],
        ));
        // Multi-frame Dimension.
        let dim = |pointer: Tag, group: Tag| {
            item([
                text(
                    tags::DIMENSION_ORGANIZATION_UID,
                    VR::UI,
                    &self.dimension_uid,
                ),
                value(tags::DIMENSION_INDEX_POINTER, VR::AT, pointer),
                value(tags::FUNCTIONAL_GROUP_POINTER, VR::AT, group),
            ])
        };
        let mut index = vec![
            dim(
                tags::COLUMN_POSITION_IN_TOTAL_IMAGE_PIXEL_MATRIX,
                tags::PLANE_POSITION_SLIDE_SEQUENCE,
            ),
            dim(
                tags::ROW_POSITION_IN_TOTAL_IMAGE_PIXEL_MATRIX,
                tags::PLANE_POSITION_SLIDE_SEQUENCE,
            ),
        ];
        if paths > 1 {
            index.push(dim(
                tags::OPTICAL_PATH_IDENTIFIER,
                tags::OPTICAL_PATH_IDENTIFICATION_SEQUENCE,
            ));
        }
        ds.put(seq(
            tags::DIMENSION_ORGANIZATION_SEQUENCE,
            vec![item([text(
                tags::DIMENSION_ORGANIZATION_UID,
                VR::UI,
                &self.dimension_uid,
            )])],
        ));
        ds.put(text(
            tags::DIMENSION_ORGANIZATION_TYPE,
            VR::CS,
            "TILED_FULL",
        ));
        ds.put(seq(tags::DIMENSION_INDEX_SEQUENCE, index));
        // Specimen.
        let o = &self.options;
        ds.put(text(tags::CONTAINER_IDENTIFIER, VR::LO, &o.container_id));
        ds.put(seq(
            tags::ISSUER_OF_THE_CONTAINER_IDENTIFIER_SEQUENCE,
            vec![],
        ));
        ds.put(code_seq(
            tags::CONTAINER_TYPE_CODE_SEQUENCE,
            "434711009",
            "SCT",
            "Specimen container",
        ));
        let mut specimen = vec![
            text(tags::SPECIMEN_IDENTIFIER, VR::LO, &o.specimen_id),
            seq(tags::ISSUER_OF_THE_SPECIMEN_IDENTIFIER_SEQUENCE, vec![]),
            text(tags::SPECIMEN_UID, VR::UI, &self.specimen_uid),
            seq(tags::SPECIMEN_PREPARATION_SEQUENCE, vec![]),
        ];
        if !o.specimen_description.is_empty() {
            specimen.push(text(
                tags::SPECIMEN_SHORT_DESCRIPTION,
                VR::LO,
                &o.specimen_description,
            ));
        }
        ds.put(seq(
            tags::SPECIMEN_DESCRIPTION_SEQUENCE,
            vec![item(specimen)],
        ));
        // Whole Slide Microscopy Image.
        ds.put(value(
            tags::IMAGED_VOLUME_WIDTH,
            VR::FL,
            (w as f64 * mm) as f32,
        ));
        ds.put(value(
            tags::IMAGED_VOLUME_HEIGHT,
            VR::FL,
            (h as f64 * mm) as f32,
        ));
        ds.put(value(tags::IMAGED_VOLUME_DEPTH, VR::FL, 1000.0f32));
        ds.put(value(tags::TOTAL_PIXEL_MATRIX_COLUMNS, VR::UL, w as u32));
        ds.put(value(tags::TOTAL_PIXEL_MATRIX_ROWS, VR::UL, h as u32));
        ds.put(value(tags::TOTAL_PIXEL_MATRIX_FOCAL_PLANES, VR::UL, 1u32));
        ds.put(seq(
            tags::TOTAL_PIXEL_MATRIX_ORIGIN_SEQUENCE,
            vec![item([
                text(tags::X_OFFSET_IN_SLIDE_COORDINATE_SYSTEM, VR::DS, "0"),
                text(tags::Y_OFFSET_IN_SLIDE_COORDINATE_SYSTEM, VR::DS, "0"),
            ])],
        ));
        ds.put(texts(
            tags::IMAGE_ORIENTATION_SLIDE,
            VR::DS,
            &["0", "-1", "0", "-1", "0", "0"],
        ));
        let when = format!("{}{}", self.study.date, self.study.time);
        ds.put(text(tags::ACQUISITION_DATE_TIME, VR::DT, &when));
        ds.put(value(tags::ACQUISITION_DURATION, VR::FD, 0.0f64));
        ds.put(text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
        ds.put(text(tags::VOLUMETRIC_PROPERTIES, VR::CS, "VOLUME"));
        ds.put(text(tags::SPECIMEN_LABEL_IN_IMAGE, VR::CS, "NO"));
        ds.put(text(tags::BURNED_IN_ANNOTATION, VR::CS, "NO"));
        ds.put(text(tags::FOCUS_METHOD, VR::CS, "AUTO"));
        ds.put(text(tags::EXTENDED_DEPTH_OF_FIELD, VR::CS, "NO"));
    }

    fn optical_paths(&self, ds: &mut InMemDicomObject, paths: Vec<InMemDicomObject>) {
        ds.put(value(
            tags::NUMBER_OF_OPTICAL_PATHS,
            VR::UL,
            paths.len() as u32,
        ));
        ds.put(seq(tags::OPTICAL_PATH_SEQUENCE, paths));
    }
}

fn even(mut v: Vec<u8>) -> Vec<u8> {
    if v.len() % 2 == 1 {
        v.push(0);
    }
    v
}

fn tile_grid(w: usize, h: usize, tile: u16) -> Result<(usize, usize, u16, u16), ExportError> {
    if w == 0 || h == 0 || w > u32::MAX as usize || h > u32::MAX as usize {
        return Err(ExportError::Invalid {
            what: "image",
            reason: format!("{w}x{h}"),
        });
    }
    let tw = (tile as usize).min(w) as u16;
    let th = (tile as usize).min(h) as u16;
    Ok((w.div_ceil(tw as usize), h.div_ceil(th as usize), tw, th))
}

/// Band planes (`h × w` u16 each) as TILED_FULL frames: tiles left to right,
/// top to bottom, band after band; edge tiles padded with 0.
pub(crate) fn tiles_u16(
    planes: &[&[u16]],
    w: usize,
    h: usize,
    tile: u16,
) -> Result<Pixels, ExportError> {
    let (nx, ny, tw, th) = tile_grid(w, h, tile)?;
    let per_plane = nx * ny;
    let frames = (0..planes.len() * per_plane)
        .into_par_iter()
        .map(|f| {
            let plane = planes[f / per_plane];
            let t = f % per_plane;
            let (x0, y0) = ((t % nx) * tw as usize, (t / nx) * th as usize);
            let mut out = vec![0u8; tw as usize * th as usize * 2];
            for y in 0..th as usize {
                if y0 + y >= h {
                    break;
                }
                let n = (tw as usize).min(w - x0);
                let src = &plane[(y0 + y) * w + x0..][..n];
                let dst = &mut out[y * tw as usize * 2..][..n * 2];
                for (d, s) in dst.chunks_exact_mut(2).zip(src) {
                    d.copy_from_slice(&s.to_le_bytes());
                }
            }
            out
        })
        .collect();
    Ok(Pixels {
        rows: th,
        columns: tw,
        samples_per_pixel: 1,
        bits: 16,
        photometric: Photometric::Monochrome2,
        frames,
    })
}

/// Interleaved 8-bit RGB (`h × w × 3`) as TILED_FULL frames.
pub(crate) fn tiles_rgb8(rgb: &[u8], w: usize, h: usize, tile: u16) -> Result<Pixels, ExportError> {
    let (nx, ny, tw, th) = tile_grid(w, h, tile)?;
    let frames = (0..nx * ny)
        .into_par_iter()
        .map(|t| {
            let (x0, y0) = ((t % nx) * tw as usize, (t / nx) * th as usize);
            let mut out = vec![0u8; tw as usize * th as usize * 3];
            for y in 0..th as usize {
                if y0 + y >= h {
                    break;
                }
                let n = (tw as usize).min(w - x0) * 3;
                out[y * tw as usize * 3..][..n]
                    .copy_from_slice(&rgb[((y0 + y) * w + x0) * 3..][..n]);
            }
            out
        })
        .collect();
    Ok(Pixels {
        rows: th,
        columns: tw,
        samples_per_pixel: 3,
        bits: 8,
        photometric: Photometric::Rgb,
        frames,
    })
}
