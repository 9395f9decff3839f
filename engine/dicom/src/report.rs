//! The detector's result on a frame as a Comprehensive SR (PS3.3 A.35.3)
//! that references the frame's VL Endoscopic Image.
//!
//! A structured report is what every PACS keeps and every SR viewer shows;
//! a Segmentation would need a mask at the image's 8K resolution for what is
//! a handful of boxes. The content tree:
//!
//! ```text
//! CONTAINER  (DCM 126000 Imaging Measurement Report)
//!  ├ CONTAINS TEXT   (DCM 111001 Algorithm Name)      model name
//!  ├ CONTAINS TEXT   (DCM 111003 Algorithm Version)   model version
//!  ├ CONTAINS NUM    (99MED8K SCORE Anomaly score)    score, UCUM "1"
//!  ├ CONTAINS NUM    (99MED8K THRESHOLD Anomaly threshold)
//!  ├ CONTAINS CODE   (99MED8K FLAGGED Flagged by detector)  SCT Yes/No
//!  ├ CONTAINS IMAGE  (DCM 121112 Source of Measurement)  the frame
//!  └ CONTAINS SCOORD (DCM 111030 Image Region)  POLYLINE, closed box,
//!       └ SELECTED FROM IMAGE  the frame          one per box
//! ```
//!
//! The concepts DICOM has no code for are under the private coding scheme
//! `99MED8K`, declared in the Coding Scheme Identification Sequence.

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use crate::identity::StudyInfo;
use crate::modules::{
    check_date_time, code, code_seq, equipment, general_series, general_study, item, patient, seq,
    sop_common, text,
};
use crate::wsi::study_uid;
use crate::{ExportError, Instance, ObjectKind, Site};

/// A rectangle in image pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Region {
    /// Left edge.
    pub x: u32,
    /// Top edge.
    pub y: u32,
    /// Width.
    pub width: u32,
    /// Height.
    pub height: u32,
}

/// What a model said about a frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// The model's name.
    pub model: String,
    /// The model's version.
    pub version: String,
    /// The score (higher is more anomalous).
    pub score: f32,
    /// The score above which the frame is flagged.
    pub threshold: f32,
    /// Whether the frame was flagged.
    pub flagged: bool,
    /// Regions of the anomaly map above its threshold.
    pub regions: Vec<Region>,
}

pub(crate) fn content_item(
    relationship: &str,
    value_type: &str,
    concept: InMemDicomObject,
) -> Vec<DataElement<InMemDicomObject>> {
    vec![
        text(tags::RELATIONSHIP_TYPE, VR::CS, relationship),
        text(tags::VALUE_TYPE, VR::CS, value_type),
        seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![concept]),
    ]
}

fn image_ref(
    relationship: &str,
    concept: Option<InMemDicomObject>,
    image: &Instance,
) -> InMemDicomObject {
    image_item(
        relationship,
        concept,
        &image.sop_class_uid(),
        &image.sop_instance_uid(),
    )
}

/// An IMAGE content item referencing the instance `class`/`instance`.
pub(crate) fn image_item(
    relationship: &str,
    concept: Option<InMemDicomObject>,
    class: &str,
    instance: &str,
) -> InMemDicomObject {
    let mut els = vec![
        text(tags::RELATIONSHIP_TYPE, VR::CS, relationship),
        text(tags::VALUE_TYPE, VR::CS, "IMAGE"),
    ];
    if let Some(c) = concept {
        els.push(seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![c]));
    }
    els.push(seq(
        tags::REFERENCED_SOP_SEQUENCE,
        vec![item([
            text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, class),
            text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, instance),
        ])],
    ));
    item(els)
}

fn num(concept: InMemDicomObject, v: f32) -> InMemDicomObject {
    let mut els = content_item("CONTAINS", "NUM", concept);
    els.push(seq(
        tags::MEASURED_VALUE_SEQUENCE,
        vec![item([
            code_seq(
                tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
                "1",
                "UCUM",
                "no units",
            ),
            text(tags::NUMERIC_VALUE, VR::DS, &format_ds(v)),
        ])],
    ));
    item(els)
}

/// A DS value (at most 16 characters).
fn format_ds(v: f32) -> String {
    let s = format!("{v}");
    if s.len() <= 16 { s } else { format!("{v:.6e}") }
}

/// The root of a Comprehensive SR's content (its title and `content`),
/// its SOP Common module and the declaration of med8k's private coding
/// scheme `99MED8K` for the concepts DICOM has no code for.
pub(crate) fn sr_document(
    ds: &mut InMemDicomObject,
    title: InMemDicomObject,
    content: Vec<InMemDicomObject>,
    instance: &str,
) {
    ds.put(text(tags::VALUE_TYPE, VR::CS, "CONTAINER"));
    ds.put(seq(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![title]));
    ds.put(text(tags::CONTINUITY_OF_CONTENT, VR::CS, "SEPARATE"));
    ds.put(seq(tags::CONTENT_SEQUENCE, content));
    sop_common(ds, uids::COMPREHENSIVE_SR_STORAGE, instance);
    ds.put(seq(
        tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
        vec![item([
            text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, "99MED8K"),
            text(tags::CODING_SCHEME_NAME, VR::ST, "med8k concepts"),
            text(
                tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
                VR::ST,
                "med8k",
            ),
        ])],
    ));
}

/// The report on `image` (a VL Endoscopic Image from
/// [`crate::endoscopy::endoscopic_image`]) in its own SR series of the same
/// study. Modules, in A.35.3's order: Patient, General Study, SR Document
/// Series, General Equipment, SR Document General, SR Document Content, SOP
/// Common.
pub fn detection_report(
    finding: &Finding,
    image: &Instance,
    site: &Site,
    study: &StudyInfo,
) -> Result<Instance, ExportError> {
    check_date_time(&study.date, &study.time)?;
    if image.kind() != ObjectKind::EndoscopicImage {
        return Err(ExportError::Invalid {
            what: "report",
            reason: format!(
                "reports are made on endoscopic images, not {}",
                image.kind().name()
            ),
        });
    }
    let (w, h) = image
        .pixels()
        .map(|p| (u32::from(p.columns), u32::from(p.rows)))
        .unwrap_or((0, 0));
    for r in &finding.regions {
        if r.width == 0 || r.height == 0 || r.x + r.width > w || r.y + r.height > h {
            return Err(ExportError::Invalid {
                what: "region",
                reason: format!(
                    "{}x{} at ({}, {}) is not inside the {w}x{h} image",
                    r.width, r.height, r.x, r.y
                ),
            });
        }
    }
    let study_uid = study_uid(site, study);
    let series = site.uid_root.uid(&format!(
        "detection-reports\0{}\0{}",
        study_uid,
        image.series_uid()
    ));
    let instance = site.uid_root.uid(&format!(
        "detection-report\0{series}\0{}\0{}\0{}\0{}",
        image.sop_instance_uid(),
        finding.model,
        finding.version,
        finding.score
    ));
    let mut ds = InMemDicomObject::new_empty();
    patient(&mut ds, study);
    general_study(&mut ds, study, &study_uid);
    // SR Document Series.
    general_series(&mut ds, "SR", &series, 3, "Anomaly detector results");
    ds.put(seq(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    ));
    equipment(&mut ds, site);
    // SR Document General.
    ds.put(text(tags::INSTANCE_NUMBER, VR::IS, "1"));
    ds.put(text(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"));
    ds.put(text(tags::VERIFICATION_FLAG, VR::CS, "UNVERIFIED"));
    ds.put(text(tags::CONTENT_DATE, VR::DA, &study.date));
    ds.put(text(tags::CONTENT_TIME, VR::TM, &study.time));
    ds.put(seq(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]));
    ds.put(seq(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![item([
            text(tags::STUDY_INSTANCE_UID, VR::UI, &image.study_uid()),
            seq(
                tags::REFERENCED_SERIES_SEQUENCE,
                vec![item([
                    text(tags::SERIES_INSTANCE_UID, VR::UI, &image.series_uid()),
                    seq(
                        tags::REFERENCED_SOP_SEQUENCE,
                        vec![item([
                            text(
                                tags::REFERENCED_SOP_CLASS_UID,
                                VR::UI,
                                &image.sop_class_uid(),
                            ),
                            text(
                                tags::REFERENCED_SOP_INSTANCE_UID,
                                VR::UI,
                                &image.sop_instance_uid(),
                            ),
                        ])],
                    ),
                ])],
            ),
        ])],
    ));
    // SR Document Content.
    let m8 = |v: &str, meaning: &str| code(v, "99MED8K", meaning);
    let mut content = Vec::new();
    for (concept, value) in [
        (code("111001", "DCM", "Algorithm Name"), &finding.model),
        (code("111003", "DCM", "Algorithm Version"), &finding.version),
    ] {
        let mut els = content_item("CONTAINS", "TEXT", concept);
        els.push(text(tags::TEXT_VALUE, VR::UT, value));
        content.push(item(els));
    }
    content.push(num(m8("SCORE", "Anomaly score"), finding.score));
    content.push(num(m8("THRESHOLD", "Anomaly threshold"), finding.threshold));
    let mut flagged = content_item("CONTAINS", "CODE", m8("FLAGGED", "Flagged by detector"));
    flagged.push(if finding.flagged {
        code_seq(tags::CONCEPT_CODE_SEQUENCE, "373066001", "SCT", "Yes")
    } else {
        code_seq(tags::CONCEPT_CODE_SEQUENCE, "373067005", "SCT", "No")
    });
    content.push(item(flagged));
    content.push(image_ref(
        "CONTAINS",
        Some(code("121112", "DCM", "Source of Measurement")),
        image,
    ));
    for r in &finding.regions {
        let (x0, y0) = (r.x as f32, r.y as f32);
        let (x1, y1) = ((r.x + r.width) as f32, (r.y + r.height) as f32);
        let mut els = content_item("CONTAINS", "SCOORD", code("111030", "DCM", "Image Region"));
        els.push(text(tags::GRAPHIC_TYPE, VR::CS, "POLYLINE"));
        els.push(DataElement::new(
            tags::GRAPHIC_DATA,
            VR::FL,
            PrimitiveValue::F32(
                [x0, y0, x1, y0, x1, y1, x0, y1, x0, y0]
                    .into_iter()
                    .collect(),
            ),
        ));
        els.push(seq(
            tags::CONTENT_SEQUENCE,
            vec![image_ref("SELECTED FROM", None, image)],
        ));
        content.push(item(els));
    }
    sr_document(
        &mut ds,
        code("126000", "DCM", "Imaging Measurement Report"),
        content,
        &instance,
    );
    Ok(Instance {
        kind: ObjectKind::DetectionReport,
        dataset: ds,
        pixels: None,
    })
}
