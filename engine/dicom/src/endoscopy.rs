//! An 8K endoscope frame the detector flagged, as a VL Endoscopic Image
//! (PS3.3 A.32.1): single frame, RGB, 8 bits.
//!
//! # What is kept of 8K video, and why
//! No DICOM transfer syntax carries 8K video: the MPEG-4 AVC and HEVC
//! transfer syntaxes stop at level 5.1/5.2 (4096×2160 at most), and the
//! Video Endoscopic Image IOD needs one of them. What a PACS can keep of an
//! 8K procedure is therefore frames: med8k stores the frames the detector
//! flagged, each as a VL Endoscopic Image at full 7680×4320, beside a
//! Comprehensive SR with the detector's result on it ([`crate::report`]).
//! The VL Image module allows only 8 bits per sample, so a 10-bit 4:2:2
//! frame is kept as the 8-bit RGB picture the detector and the overlay were
//! made from; the full-precision stream stays in med8k's own recording
//! (wavelet-coded M8KS, lossless if asked), outside the PACS.

use dicom_core::VR;
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use med8k_media::picture::{Layout, Picture};
use sha2::{Digest, Sha256};

use crate::identity::StudyInfo;
use crate::modules::{
    acquisition_context, check_date_time, equipment, general_image, general_series, general_study,
    image_pixel, patient, sop_common, text, texts,
};
use crate::wsi::study_uid;
use crate::{ExportError, Instance, ObjectKind, Photometric, Pixels, Site};

/// An 8-bit RGB frame, interleaved, row-major.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbFrame {
    /// Pixels per row.
    pub width: u16,
    /// Rows.
    pub height: u16,
    /// `width × height × 3` bytes.
    pub data: Vec<u8>,
}

impl RgbFrame {
    /// An RGB, RGBA or grey picture at any bit depth, reduced to 8 bits by
    /// dropping low bits (the alpha plane is left out).
    pub fn from_picture(p: &Picture) -> Result<Self, ExportError> {
        let (w, h) = (p.width(), p.height());
        let (width, height) = (
            u16::try_from(w).map_err(|_| too_big(w, h))?,
            u16::try_from(h).map_err(|_| too_big(w, h))?,
        );
        let shift = p.bit_depth().saturating_sub(8);
        let planes = p.planes();
        let pick: [usize; 3] = match p.layout() {
            Layout::Rgb | Layout::Rgba => [0, 1, 2],
            Layout::Gray => [0, 0, 0],
            other => {
                return Err(ExportError::Invalid {
                    what: "frame",
                    reason: format!(
                        "{other:?} pictures are not supported: give an RGB or grey picture"
                    ),
                });
            }
        };
        let n = w as usize * h as usize;
        let [r, g, b] = pick.map(|c| &planes[c][..n]);
        let mut data = Vec::with_capacity(n * 3);
        for ((r, g), b) in r.iter().zip(g).zip(b) {
            for v in [r, g, b] {
                data.push((v >> shift).min(255) as u8);
            }
        }
        Ok(RgbFrame {
            width,
            height,
            data,
        })
    }
}

fn too_big(w: u32, h: u32) -> ExportError {
    ExportError::Invalid {
        what: "frame",
        reason: format!("{w}x{h}: DICOM rows and columns stop at 65535"),
    }
}

/// Where an endoscope frame sits: the procedure's series, and the frame's
/// number in it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndoscopyOptions {
    /// Names the procedure (a clip or session); frames with the same key go
    /// into one series.
    pub series_key: String,
    /// The frame's number in the recording (Instance Number is this + 1).
    pub frame_number: u64,
}

impl EndoscopyOptions {
    /// A frame of the procedure named `series_key`.
    pub fn new(series_key: &str, frame_number: u64) -> Self {
        EndoscopyOptions {
            series_key: series_key.to_string(),
            frame_number,
        }
    }
}

/// The series UID of a procedure's endoscope frames.
pub fn series_uid(site: &Site, study: &StudyInfo, key: &str) -> String {
    site.uid_root.uid(&format!(
        "endoscopy-series\0{}\0{key}",
        study_uid(site, study)
    ))
}

/// The frame as a VL Endoscopic Image. Modules, in PS3.3 A.32.1's order:
/// Patient, General Study, General Series (ES), General Equipment, General
/// Image, Image Pixel, Acquisition Context, VL Image, SOP Common.
pub fn endoscopic_image(
    frame: &RgbFrame,
    site: &Site,
    study: &StudyInfo,
    options: &EndoscopyOptions,
) -> Result<Instance, ExportError> {
    check_date_time(&study.date, &study.time)?;
    let need = frame.width as usize * frame.height as usize * 3;
    if frame.width == 0 || frame.height == 0 || frame.data.len() != need {
        return Err(ExportError::Invalid {
            what: "frame",
            reason: format!(
                "{}x{} RGB needs {need} bytes, got {}",
                frame.width,
                frame.height,
                frame.data.len()
            ),
        });
    }
    let series = series_uid(site, study, &options.series_key);
    let digest = format!("{:x}", Sha256::digest(&frame.data));
    let instance = site.uid_root.uid(&format!(
        "endoscopic-image\0{series}\0{}\0{digest}",
        options.frame_number
    ));
    let px = Pixels {
        rows: frame.height,
        columns: frame.width,
        samples_per_pixel: 3,
        bits: 8,
        photometric: Photometric::Rgb,
        frames: vec![frame.data.clone()],
    };
    let mut ds = InMemDicomObject::new_empty();
    patient(&mut ds, study);
    general_study(&mut ds, study, &study_uid(site, study));
    general_series(
        &mut ds,
        "ES",
        &series,
        2,
        "8K endoscopy: frames the detector flagged",
    );
    // Type 2C (paired body parts): which side an endoscope saw is not known
    // here, so empty.
    ds.put(crate::modules::empty(tags::LATERALITY, VR::CS));
    equipment(&mut ds, site);
    let number = u32::try_from(options.frame_number.saturating_add(1)).unwrap_or(u32::MAX);
    general_image(&mut ds, number, study);
    image_pixel(&mut ds, &px);
    acquisition_context(&mut ds);
    // VL Image module.
    ds.put(texts(tags::IMAGE_TYPE, VR::CS, &["ORIGINAL", "PRIMARY"]));
    ds.put(text(tags::LOSSY_IMAGE_COMPRESSION, VR::CS, "00"));
    sop_common(&mut ds, uids::VL_ENDOSCOPIC_IMAGE_STORAGE, &instance);
    Ok(Instance {
        kind: ObjectKind::EndoscopicImage,
        dataset: ds,
        pixels: Some(px),
    })
}
