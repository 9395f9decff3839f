//! The modules every med8k IOD shares (PS3.3 C.7, C.12), one function each,
//! and small helpers to build elements, items and codes.
//!
//! An IOD builder ([`crate::wsi`], [`crate::endoscopy`], [`crate::report`])
//! calls these in the order PS3.3 lists its modules, so its body reads as the
//! IOD's module table.

use dicom_core::value::{DataSetSequence, PrimitiveValue};
use dicom_core::{DataElement, Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;
use dicom_object::mem::InMemElement;

use crate::identity::StudyInfo;
use crate::{ExportError, Site};

/// An element of a string VR.
pub(crate) fn text(tag: Tag, vr: VR, value: &str) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::from(value))
}

/// An element with several string values (`A\B\C`).
pub(crate) fn texts(tag: Tag, vr: VR, values: &[&str]) -> InMemElement {
    DataElement::new(
        tag,
        vr,
        PrimitiveValue::Strs(values.iter().map(|s| s.to_string()).collect()),
    )
}

/// An element of any primitive value.
pub(crate) fn value(tag: Tag, vr: VR, value: impl Into<PrimitiveValue>) -> InMemElement {
    DataElement::new(tag, vr, value.into())
}

/// An empty (type 2) element.
pub(crate) fn empty(tag: Tag, vr: VR) -> InMemElement {
    DataElement::new(tag, vr, PrimitiveValue::Empty)
}

/// A sequence of items.
pub(crate) fn seq(tag: Tag, items: Vec<InMemDicomObject>) -> InMemElement {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// An item made of elements.
pub(crate) fn item(elements: impl IntoIterator<Item = InMemElement>) -> InMemDicomObject {
    InMemDicomObject::from_element_iter(elements)
}

/// A code sequence item (PS3.3 Table 8.8-1): value, scheme, meaning.
pub(crate) fn code(value: &str, scheme: &str, meaning: &str) -> InMemDicomObject {
    item([
        text(tags::CODE_VALUE, VR::SH, value),
        text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, scheme),
        text(tags::CODE_MEANING, VR::LO, meaning),
    ])
}

/// A one-item code sequence.
pub(crate) fn code_seq(tag: Tag, value: &str, scheme: &str, meaning: &str) -> InMemElement {
    seq(tag, vec![code(value, scheme, meaning)])
}

/// Checks a date (`YYYYMMDD`) and a time (`HHMMSS`).
pub(crate) fn check_date_time(date: &str, time: &str) -> Result<(), ExportError> {
    let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(date, 8) {
        return Err(ExportError::Invalid {
            what: "date",
            reason: format!("{date:?} is not YYYYMMDD"),
        });
    }
    if !digits(time, 6) {
        return Err(ExportError::Invalid {
            what: "time",
            reason: format!("{time:?} is not HHMMSS"),
        });
    }
    Ok(())
}

/// Patient module (C.7.1.1): the sending site's own identifiers.
pub(crate) fn patient(obj: &mut InMemDicomObject, study: &StudyInfo) {
    let p = &study.patient;
    obj.put(text(tags::PATIENT_NAME, VR::PN, &p.name));
    obj.put(text(tags::PATIENT_ID, VR::LO, &p.id));
    obj.put(text(tags::PATIENT_BIRTH_DATE, VR::DA, &p.birth_date));
    obj.put(text(tags::PATIENT_SEX, VR::CS, &p.sex));
}

/// General Study module (C.7.2.1).
pub(crate) fn general_study(obj: &mut InMemDicomObject, study: &StudyInfo, study_uid: &str) {
    obj.put(text(tags::STUDY_INSTANCE_UID, VR::UI, study_uid));
    obj.put(text(tags::STUDY_DATE, VR::DA, &study.date));
    obj.put(text(tags::STUDY_TIME, VR::TM, &study.time));
    obj.put(empty(tags::REFERRING_PHYSICIAN_NAME, VR::PN));
    obj.put(text(tags::STUDY_ID, VR::SH, &study.study_id));
    obj.put(text(tags::ACCESSION_NUMBER, VR::SH, &study.accession));
    if !study.description.is_empty() {
        obj.put(text(tags::STUDY_DESCRIPTION, VR::LO, &study.description));
    }
}

/// General Series module (C.7.3.1) with the modality of the IOD's series
/// module (SM, ES, SR).
pub(crate) fn general_series(
    obj: &mut InMemDicomObject,
    modality: &str,
    series_uid: &str,
    number: u32,
    description: &str,
) {
    obj.put(text(tags::MODALITY, VR::CS, modality));
    obj.put(text(tags::SERIES_INSTANCE_UID, VR::UI, series_uid));
    obj.put(text(tags::SERIES_NUMBER, VR::IS, &number.to_string()));
    obj.put(text(tags::SERIES_DESCRIPTION, VR::LO, description));
}

/// Frame of Reference module (C.7.4.1).
pub(crate) fn frame_of_reference(obj: &mut InMemDicomObject, uid: &str) {
    obj.put(text(tags::FRAME_OF_REFERENCE_UID, VR::UI, uid));
    obj.put(empty(tags::POSITION_REFERENCE_INDICATOR, VR::LO));
}

/// General Equipment (C.7.5.1) and Enhanced General Equipment (C.7.5.2).
pub(crate) fn equipment(obj: &mut InMemDicomObject, site: &Site) {
    obj.put(text(tags::MANUFACTURER, VR::LO, &site.manufacturer));
    obj.put(text(tags::INSTITUTION_NAME, VR::LO, &site.institution));
    obj.put(text(tags::MANUFACTURER_MODEL_NAME, VR::LO, &site.model));
    obj.put(text(
        tags::DEVICE_SERIAL_NUMBER,
        VR::LO,
        &site.device_serial,
    ));
    obj.put(text(
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        crate::SOFTWARE_VERSION,
    ));
}

/// General Image (C.7.6.1) and the content date/time of an image.
pub(crate) fn general_image(obj: &mut InMemDicomObject, number: u32, study: &StudyInfo) {
    obj.put(text(tags::INSTANCE_NUMBER, VR::IS, &number.to_string()));
    // Type 2C: no patient-relative orientation for a specimen or a scope.
    obj.put(empty(tags::PATIENT_ORIENTATION, VR::CS));
    obj.put(text(tags::CONTENT_DATE, VR::DA, &study.date));
    obj.put(text(tags::CONTENT_TIME, VR::TM, &study.time));
}

/// Acquisition Context module (C.7.6.14): nothing to say, so empty.
pub(crate) fn acquisition_context(obj: &mut InMemDicomObject) {
    obj.put(seq(tags::ACQUISITION_CONTEXT_SEQUENCE, vec![]));
}

/// Image Pixel module (C.7.6.3) without Pixel Data, which the writer adds in
/// the transfer syntax it is asked for.
pub(crate) fn image_pixel(obj: &mut InMemDicomObject, px: &crate::Pixels) {
    obj.put(value(tags::SAMPLES_PER_PIXEL, VR::US, px.samples_per_pixel));
    obj.put(text(
        tags::PHOTOMETRIC_INTERPRETATION,
        VR::CS,
        px.photometric.name(),
    ));
    obj.put(value(tags::ROWS, VR::US, px.rows));
    obj.put(value(tags::COLUMNS, VR::US, px.columns));
    obj.put(value(tags::BITS_ALLOCATED, VR::US, px.bits));
    obj.put(value(tags::BITS_STORED, VR::US, px.bits));
    obj.put(value(tags::HIGH_BIT, VR::US, px.bits - 1));
    obj.put(value(tags::PIXEL_REPRESENTATION, VR::US, 0u16));
    if px.samples_per_pixel > 1 {
        obj.put(value(tags::PLANAR_CONFIGURATION, VR::US, 0u16));
    }
}

/// SOP Common module (C.12.1): class, instance, UTF-8.
pub(crate) fn sop_common(obj: &mut InMemDicomObject, class_uid: &str, instance_uid: &str) {
    obj.put(text(tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192"));
    obj.put(text(tags::SOP_CLASS_UID, VR::UI, class_uid));
    obj.put(text(tags::SOP_INSTANCE_UID, VR::UI, instance_uid));
}
