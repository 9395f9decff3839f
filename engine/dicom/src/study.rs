//! A specimen's spectral image out of a PACS study, over DICOMweb, into
//! memory: what `med8k view --pacs` shows.
//!
//! A study that `med8k dicom export` wrote holds two VL Whole Slide
//! Microscopy instances in one series: the N-band spectral image (16 bits,
//! MONOCHROME2, N optical paths, tiles × N frames) and its sRGB rendering
//! (8 bits, RGB, one optical path); a site's study may hold reports and
//! other images beside them. [`candidates`] chooses from what QIDO-RS lists,
//! without retrieving anything: the SOP class must be VL Whole Slide
//! Microscopy, and Bits Allocated (16), Number of Optical Paths (N) and
//! Number of Frames (a multiple of N) must fit where the PACS lists them.
//! [`open_spectral`] then retrieves the candidates by WADO-RS, one at a time,
//! and keeps the first that reads as an N-band cube
//! ([`crate::import::image_from_bytes`]). The bytes stay in memory and are
//! dropped once the cube is made; nothing is written to disk.

use dicom_dictionary_std::uids;

use crate::error::{PacsError, StudyError};
use crate::import::{SpectralImage, image_from_bytes, memory_name};
use crate::uid::log_id;
use crate::web::{DicomWeb, InstanceSummary};

/// A spectral image found in a study.
#[derive(Debug)]
#[non_exhaustive]
pub struct FoundImage {
    /// The cube and its pixel spacing.
    pub image: SpectralImage,
    /// The instance, hashed ([`log_id`]), for messages.
    pub instance: String,
    /// Bytes retrieved by WADO-RS (every candidate tried).
    pub bytes: u64,
}

/// The instances of `listed` that may be an `bands`-band spectral image,
/// those whose listing says so outright first. Refuses a study with more
/// than one instance that says so outright ([`StudyError::Ambiguous`]).
pub fn candidates<'a>(
    study: &str,
    listed: &'a [InstanceSummary],
    bands: usize,
) -> Result<Vec<&'a InstanceSummary>, StudyError> {
    let bands32 = u32::try_from(bands).unwrap_or(u32::MAX);
    let fits = |i: &InstanceSummary| {
        i.sop_class.as_deref() == Some(uids::VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE)
            && i.bits_allocated.is_none_or(|b| b == 16)
            && i.optical_paths.is_none_or(|p| p == bands32)
            && i.frames.is_none_or(|f| f > 0 && f % bands32 == 0)
    };
    let mut out: Vec<&InstanceSummary> = listed.iter().filter(|i| fits(i)).collect();
    out.sort_by_key(|i| i.optical_paths.is_none());
    let sure = out.iter().filter(|i| i.optical_paths.is_some()).count();
    if sure > 1 {
        return Err(StudyError::Ambiguous {
            study: log_id(study),
            bands,
            count: sure,
        });
    }
    if out.is_empty() {
        return Err(StudyError::NoSpectralImage {
            study: log_id(study),
            bands,
            found: describe(listed),
        });
    }
    Ok(out)
}

/// What a study holds, in words: instance counts by kind, no UID.
fn describe(listed: &[InstanceSummary]) -> String {
    let mut kinds: Vec<(String, usize)> = Vec::new();
    for i in listed {
        let kind = match i.sop_class.as_deref() {
            Some(uids::VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE) => format!(
                "VL WSI with {} optical path(s), {} bits",
                i.optical_paths
                    .map_or_else(|| "?".to_owned(), |p| p.to_string()),
                i.bits_allocated
                    .map_or_else(|| "?".to_owned(), |b| b.to_string())
            ),
            Some(other) => format!("SOP class {other}"),
            None => "SOP class not listed".to_owned(),
        };
        match kinds.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, n)) => *n += 1,
            None => kinds.push((kind, 1)),
        }
    }
    let parts: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} × {k}")).collect();
    format!("it holds {}", parts.join(", "))
}

/// Restates a PACS error without the URL's UIDs or the PACS's own words
/// (which may quote them).
fn hide(web: &DicomWeb, study: &str, what: &'static str, e: PacsError) -> StudyError {
    let url = web.url().to_owned();
    match e {
        PacsError::Unreachable { reason, .. } => StudyError::Unreachable { url, reason },
        PacsError::Refused { reason, .. } => StudyError::Refused {
            url,
            what,
            study: log_id(study),
            reason: reason.split(':').next().unwrap_or_default().to_owned(),
        },
        PacsError::Protocol { reason, .. } => StudyError::Refused {
            url,
            what,
            study: log_id(study),
            reason: format!(
                "not a DICOMweb answer ({})",
                reason.split(':').next().unwrap_or_default()
            ),
        },
        other => StudyError::Refused {
            url,
            what,
            study: log_id(study),
            reason: other.to_string(),
        },
    }
}

/// Finds the `bands`-band spectral image of `study` in the PACS behind
/// `web` (or reads the instance `pick` names, `(series, instance)`), and
/// reads it into memory.
pub fn open_spectral(
    web: &DicomWeb,
    study: &str,
    pick: Option<(&str, &str)>,
    bands: usize,
) -> Result<FoundImage, StudyError> {
    let listed = web
        .instance_summaries(study)
        .map_err(|e| hide(web, study, "QIDO-RS", e))?;
    if listed.is_empty() {
        return Err(StudyError::UnknownStudy {
            url: web.url().to_owned(),
            study: log_id(study),
        });
    }
    let chosen: Vec<&InstanceSummary> = match pick {
        Some((series, instance)) => {
            let named: Vec<&InstanceSummary> = listed
                .iter()
                .filter(|i| i.series == series && i.instance == instance)
                .collect();
            if named.is_empty() {
                return Err(StudyError::NoSpectralImage {
                    study: log_id(study),
                    bands,
                    found: format!(
                        "no instance {} in series {} of it",
                        log_id(instance),
                        log_id(series)
                    ),
                });
            }
            named
        }
        None => candidates(study, &listed, bands)?,
    };
    let mut bytes = 0u64;
    let mut last = None;
    for c in chosen {
        let part = web
            .retrieve_instance(study, &c.series, &c.instance)
            .map_err(|e| hide(web, study, "WADO-RS", e))?;
        bytes += part.len() as u64;
        let id = log_id(&c.instance);
        let read = image_from_bytes(&memory_name(&format!("instance {id}")), &part);
        drop(part);
        match read {
            Ok(image) if image.cube.band_count() == bands => {
                return Ok(FoundImage {
                    image,
                    instance: id,
                    bytes,
                });
            }
            Ok(image) => {
                last = Some(StudyError::NoSpectralImage {
                    study: log_id(study),
                    bands,
                    found: format!("instance {id} has {} bands", image.cube.band_count()),
                });
            }
            Err(e) => last = Some(StudyError::Import(e)),
        }
    }
    Err(last.unwrap_or(StudyError::NoSpectralImage {
        study: log_id(study),
        bands,
        found: describe(&listed),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(class: &str, bits: u32, paths: Option<u32>, frames: u32) -> InstanceSummary {
        InstanceSummary {
            series: "1.2.3".into(),
            instance: format!("1.2.3.{bits}.{}", paths.unwrap_or(0)),
            sop_class: Some(class.into()),
            frames: Some(frames),
            bits_allocated: Some(bits),
            optical_paths: paths,
        }
    }

    const WSI: &str = uids::VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE;

    #[test]
    fn the_spectral_image_is_chosen_over_its_rendering_and_a_report() {
        let study = [
            listed(uids::COMPREHENSIVE_SR_STORAGE, 0, None, 0),
            listed(WSI, 8, Some(1), 4),
            listed(WSI, 16, Some(7), 28),
        ];
        let c = candidates("9.9", &study, 7).unwrap();
        assert_eq!(c, vec![&study[2]]);
        // A PACS that does not list the optical paths: tried after the sure ones.
        let vague = [listed(WSI, 16, None, 28), listed(WSI, 16, Some(7), 28)];
        assert_eq!(
            candidates("9.9", &vague, 7).unwrap(),
            vec![&vague[1], &vague[0]]
        );
    }

    #[test]
    fn a_study_without_one_or_with_two_is_refused_without_uids() {
        let study = [listed(WSI, 8, Some(1), 4), listed(WSI, 16, Some(3), 12)];
        let e = candidates("1.2.840.99", &study, 7).unwrap_err().to_string();
        assert!(e.contains("no 7-band"), "{e}");
        assert!(
            e.contains("1 × VL WSI with 1 optical path(s), 8 bits"),
            "{e}"
        );
        assert!(!e.contains("1.2.840.99") && !e.contains("1.2.3"), "{e}");
        assert!(e.contains(&log_id("1.2.840.99")), "{e}");
        // Frames that are not a multiple of the bands: not a TILED_FULL N-band image.
        let odd = [listed(WSI, 16, None, 27)];
        assert!(candidates("1", &odd, 7).is_err());
        let two = [listed(WSI, 16, Some(7), 28), listed(WSI, 16, Some(7), 7)];
        let e = candidates("1", &two, 7).unwrap_err().to_string();
        assert!(e.contains("holds 2 7-band"), "{e}");
    }
}
