//! A pathologist's cut-out instructions (切出し位置の指示) on a specimen as a
//! Comprehensive SR (PS3.3 A.35.3) in the specimen's own study, so the
//! sending hospital's PACS keeps them beside the image they are drawn on.
//!
//! The instructions arrive signed (a detached CMS signature over their JSON,
//! made with the physician's HPKI card); the report records who signed and
//! the SHA-256 of the signed document, and is marked VERIFIED by that
//! physician. Coordinates are the specimen's pixels: for a tiled whole-slide
//! image, columns and rows of its Total Pixel Matrix. The content tree:
//!
//! ```text
//! CONTAINER  (99MED8K CUTOUT Cut-out instructions)
//!  ├ HAS OBS CONTEXT CODE  (DCM 121005 Observer Type)   DCM 121006 Person
//!  ├ HAS OBS CONTEXT PNAME (DCM 121008 Person Observer Name)   the signer
//!  ├ HAS OBS CONTEXT TEXT  (DCM 121009 Person Observer's Organization Name)
//!  ├ CONTAINS TEXT  (99MED8K REPORT Pathologist's report)
//!  ├ CONTAINS TEXT  (99MED8K SIGNED Signed instructions SHA-256)
//!  ├ CONTAINS IMAGE (DCM 121112 Source of Measurement)   the specimen
//!  └ CONTAINS TEXT  (99MED8K CUTLINE Cut line | 99MED8K REGION Region)  label
//!     ├ HAS PROPERTIES TEXT (DCM 121106 Comment)   the free text, if any
//!     └ INFERRED FROM SCOORD (DCM 111030 Image Region)  POLYLINE (closed
//!          └ SELECTED FROM IMAGE  the specimen          for a region)
//! ```

use dicom_core::value::PrimitiveValue;
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;

use crate::modules::{code, code_seq, empty, equipment, general_series, item, seq, text};
use crate::report::{content_item, image_item, sr_document};
use crate::{ExportError, Instance, ObjectKind, Site};

/// The outline a mark draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outline {
    /// An open polyline: where to cut.
    CutLine,
    /// A closed polygon: a region.
    Polygon,
    /// An axis-aligned rectangle (four corners): a region.
    Rectangle,
}

/// One mark on the specimen.
#[derive(Debug, Clone, PartialEq)]
pub struct CutMark {
    /// What it draws.
    pub outline: Outline,
    /// Its label (`cut A`).
    pub label: String,
    /// The pathologist's free text on it, or empty.
    pub text: String,
    /// Its points in the specimen's pixels (column, row).
    pub points: Vec<[f32; 2]>,
}

/// A signed set of instructions, as the receiving site verified it.
#[derive(Debug, Clone, PartialEq)]
pub struct CutOut {
    /// The marks.
    pub marks: Vec<CutMark>,
    /// The short report, or empty.
    pub report: String,
    /// The signer: the common name of their HPKI signing certificate (a
    /// name without `^` goes whole into the family-name component).
    pub physician: String,
    /// The facility they sent it from.
    pub facility: String,
    /// Hex SHA-256 of the signed document (the JSON the signature covers).
    pub document_sha256: String,
    /// When it was verified: `YYYYMMDD`, `HHMMSS`, UTC.
    pub verified: (String, String),
}

/// Patient and General Study attributes the report takes from the specimen
/// (type 2 ones are written empty when the specimen lacks them).
const FROM_SPECIMEN: &[(Tag, VR, bool)] = &[
    (tags::PATIENT_NAME, VR::PN, true),
    (tags::PATIENT_ID, VR::LO, true),
    (tags::ISSUER_OF_PATIENT_ID, VR::LO, false),
    (tags::PATIENT_BIRTH_DATE, VR::DA, true),
    (tags::PATIENT_SEX, VR::CS, true),
    (tags::PATIENT_IDENTITY_REMOVED, VR::CS, false),
    (tags::DEIDENTIFICATION_METHOD, VR::LO, false),
    (tags::STUDY_INSTANCE_UID, VR::UI, true),
    (tags::STUDY_DATE, VR::DA, true),
    (tags::STUDY_TIME, VR::TM, true),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN, true),
    (tags::STUDY_ID, VR::SH, true),
    (tags::ACCESSION_NUMBER, VR::SH, true),
    (tags::STUDY_DESCRIPTION, VR::LO, false),
];

fn uid_of(obj: &InMemDicomObject, tag: Tag, what: &'static str) -> Result<String, ExportError> {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_end_matches(['\0', ' ']).to_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| ExportError::Invalid {
            what: "specimen",
            reason: format!("it has no {what}"),
        })
}

fn size_of(obj: &InMemDicomObject) -> Result<(f32, f32), ExportError> {
    let get = |tag, name: &str| {
        obj.element(tag)
            .ok()
            .and_then(|e| e.to_int::<u32>().ok())
            .ok_or_else(|| ExportError::Invalid {
                what: "specimen",
                reason: format!("it has no {name}"),
            })
    };
    Ok((
        get(
            tags::TOTAL_PIXEL_MATRIX_COLUMNS,
            "Total Pixel Matrix Columns",
        )? as f32,
        get(tags::TOTAL_PIXEL_MATRIX_ROWS, "Total Pixel Matrix Rows")? as f32,
    ))
}

fn check(cut: &CutOut, width: f32, height: f32) -> Result<(), ExportError> {
    let bad = |reason: String| ExportError::Invalid {
        what: "instructions",
        reason,
    };
    if cut.physician.trim().is_empty() {
        return Err(bad("no signer".into()));
    }
    for (d, n) in [(&cut.verified.0, 8), (&cut.verified.1, 6)] {
        if d.len() != n || !d.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(format!(
                "verification time {d:?} is not YYYYMMDD HHMMSS"
            )));
        }
    }
    for (i, m) in cut.marks.iter().enumerate() {
        let need = match m.outline {
            Outline::CutLine => 2,
            Outline::Polygon => 3,
            Outline::Rectangle => 4,
        };
        if m.points.len() < need || (m.outline == Outline::Rectangle && m.points.len() != 4) {
            return Err(bad(format!(
                "mark {} has {} points: a {:?} needs {need}",
                i + 1,
                m.points.len(),
                m.outline
            )));
        }
        if let Some(p) = m.points.iter().find(|[x, y]| {
            !(x.is_finite()
                && y.is_finite()
                && (0.0..=width).contains(x)
                && (0.0..=height).contains(y))
        }) {
            return Err(bad(format!(
                "mark {}: point ({}, {}) is outside the {width}x{height} specimen",
                i + 1,
                p[0],
                p[1]
            )));
        }
    }
    Ok(())
}

fn text_item(relationship: &str, concept: InMemDicomObject, value: &str) -> InMemDicomObject {
    let mut els = content_item(relationship, "TEXT", concept);
    els.push(text(tags::TEXT_VALUE, VR::UT, value));
    item(els)
}

/// The instructions `cut` on `specimen` (the 7-band VL Whole Slide
/// Microscopy Image they were drawn on, as read back from its file or the
/// PACS; its Pixel Data is not needed) as a Comprehensive SR in the
/// specimen's study, its own series. UIDs derive from the specimen's and
/// the signed document's, so the same instructions make the same object.
pub fn cut_out_report(
    cut: &CutOut,
    specimen: &InMemDicomObject,
    site: &Site,
) -> Result<Instance, ExportError> {
    let class = uid_of(specimen, tags::SOP_CLASS_UID, "SOP Class UID")?;
    if class != uids::VL_WHOLE_SLIDE_MICROSCOPY_IMAGE_STORAGE {
        return Err(ExportError::Invalid {
            what: "specimen",
            reason: format!("instructions are drawn on whole-slide images, not SOP class {class}"),
        });
    }
    let image = uid_of(specimen, tags::SOP_INSTANCE_UID, "SOP Instance UID")?;
    let image_series = uid_of(specimen, tags::SERIES_INSTANCE_UID, "Series Instance UID")?;
    let study_uid = uid_of(specimen, tags::STUDY_INSTANCE_UID, "Study Instance UID")?;
    let (width, height) = size_of(specimen)?;
    check(cut, width, height)?;
    let physician = if cut.physician.contains('^') {
        cut.physician.clone()
    } else {
        format!("{}^", cut.physician.trim())
    };

    let series = site
        .uid_root
        .uid(&format!("cut-out-instructions\0{study_uid}\0{image}"));
    let instance = site
        .uid_root
        .uid(&format!("cut-out\0{series}\0{}", cut.document_sha256));
    let mut ds = InMemDicomObject::new_empty();
    // Patient and General Study: the specimen's own.
    for &(tag, vr, type2) in FROM_SPECIMEN {
        match specimen.element(tag) {
            Ok(e) => ds.put(e.clone()),
            Err(_) if type2 => ds.put(empty(tag, vr)),
            Err(_) => None,
        };
    }
    // SR Document Series.
    general_series(&mut ds, "SR", &series, 4, "Cut-out instructions");
    ds.put(seq(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        vec![],
    ));
    equipment(&mut ds, site);
    // SR Document General: verified by the physician who signed.
    let (date, time) = &cut.verified;
    ds.put(text(tags::INSTANCE_NUMBER, VR::IS, "1"));
    ds.put(text(tags::COMPLETION_FLAG, VR::CS, "COMPLETE"));
    ds.put(text(tags::VERIFICATION_FLAG, VR::CS, "VERIFIED"));
    ds.put(text(tags::CONTENT_DATE, VR::DA, date));
    ds.put(text(tags::CONTENT_TIME, VR::TM, time));
    ds.put(text(tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000"));
    ds.put(seq(
        tags::VERIFYING_OBSERVER_SEQUENCE,
        vec![item([
            text(tags::VERIFYING_OBSERVER_NAME, VR::PN, &physician),
            seq(
                tags::VERIFYING_OBSERVER_IDENTIFICATION_CODE_SEQUENCE,
                vec![],
            ),
            text(tags::VERIFYING_ORGANIZATION, VR::LO, &cut.facility),
            text(
                tags::VERIFICATION_DATE_TIME,
                VR::DT,
                &format!("{date}{time}+0000"),
            ),
        ])],
    ));
    ds.put(seq(tags::PERFORMED_PROCEDURE_CODE_SEQUENCE, vec![]));
    ds.put(seq(
        tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
        vec![item([
            text(tags::STUDY_INSTANCE_UID, VR::UI, &study_uid),
            seq(
                tags::REFERENCED_SERIES_SEQUENCE,
                vec![item([
                    text(tags::SERIES_INSTANCE_UID, VR::UI, &image_series),
                    seq(
                        tags::REFERENCED_SOP_SEQUENCE,
                        vec![item([
                            text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &class),
                            text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &image),
                        ])],
                    ),
                ])],
            ),
        ])],
    ));
    // SR Document Content.
    let m8 = |v: &str, meaning: &str| code(v, "99MED8K", meaning);
    let mut content = Vec::new();
    let mut observer = content_item(
        "HAS OBS CONTEXT",
        "CODE",
        code("121005", "DCM", "Observer Type"),
    );
    observer.push(code_seq(
        tags::CONCEPT_CODE_SEQUENCE,
        "121006",
        "DCM",
        "Person",
    ));
    content.push(item(observer));
    let mut name = content_item(
        "HAS OBS CONTEXT",
        "PNAME",
        code("121008", "DCM", "Person Observer Name"),
    );
    name.push(text(tags::PERSON_NAME, VR::PN, &physician));
    content.push(item(name));
    if !cut.facility.is_empty() {
        content.push(text_item(
            "HAS OBS CONTEXT",
            code("121009", "DCM", "Person Observer's Organization Name"),
            &cut.facility,
        ));
    }
    if !cut.report.is_empty() {
        content.push(text_item(
            "CONTAINS",
            m8("REPORT", "Pathologist's report"),
            &cut.report,
        ));
    }
    content.push(text_item(
        "CONTAINS",
        m8("SIGNED", "Signed instructions SHA-256"),
        &cut.document_sha256,
    ));
    content.push(image_item(
        "CONTAINS",
        Some(code("121112", "DCM", "Source of Measurement")),
        &class,
        &image,
    ));
    for (i, m) in cut.marks.iter().enumerate() {
        let (concept, closed) = match m.outline {
            Outline::CutLine => (m8("CUTLINE", "Cut line"), false),
            Outline::Polygon | Outline::Rectangle => (m8("REGION", "Region"), true),
        };
        let label = if m.label.trim().is_empty() {
            format!("mark {}", i + 1)
        } else {
            m.label.clone()
        };
        let mut els = content_item("CONTAINS", "TEXT", concept);
        els.push(text(tags::TEXT_VALUE, VR::UT, &label));
        let mut children = Vec::new();
        if !m.text.is_empty() {
            children.push(text_item(
                "HAS PROPERTIES",
                code("121106", "DCM", "Comment"),
                &m.text,
            ));
        }
        let mut data: Vec<f32> = m.points.iter().flat_map(|p| [p[0], p[1]]).collect();
        if closed {
            data.extend_from_slice(&[m.points[0][0], m.points[0][1]]);
        }
        let mut scoord = content_item(
            "INFERRED FROM",
            "SCOORD",
            code("111030", "DCM", "Image Region"),
        );
        scoord.push(text(tags::GRAPHIC_TYPE, VR::CS, "POLYLINE"));
        scoord.push(DataElement::new(
            tags::GRAPHIC_DATA,
            VR::FL,
            PrimitiveValue::F32(data.into_iter().collect()),
        ));
        scoord.push(seq(
            tags::CONTENT_SEQUENCE,
            vec![image_item("SELECTED FROM", None, &class, &image)],
        ));
        children.push(item(scoord));
        els.push(seq(tags::CONTENT_SEQUENCE, children));
        content.push(item(els));
    }
    sr_document(
        &mut ds,
        m8("CUTOUT", "Cut-out instructions"),
        content,
        &instance,
    );
    Ok(Instance {
        kind: ObjectKind::CutOutInstructions,
        dataset: ds,
        pixels: None,
    })
}
