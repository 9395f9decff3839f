//! Who an object is about, and what of it crosses a link.
//!
//! The sending site writes its own identifiers ([`Patient`], [`StudyInfo`]).
//! What leaves the site follows the consent's disclosure ([`Disclosure`]): by
//! default the patient's pseudonym only (the consent ledger's pseudonym, the
//! SHA-256 of the JPKI certificate), with what DICOM PS3.15's Basic
//! Application Level Confidentiality Profile (Annex E, Table E.1-1) removes
//! taken out by [`deidentify`]. The receiving site stores what it received.
//!
//! The table here is the profile's rows for every attribute med8k writes and
//! for the identifying attributes commonly found in objects from other
//! systems (names, addresses, dates, device and institution identifiers,
//! free text, UIDs); private attributes go unless known safe. Objects that
//! med8k made also claim the Retain Safe Private and Clean Structured Content
//! options: their only private attributes are band widths and a reflectance
//! scale, and their report's content is generated (model, version, score,
//! coordinates), never typed.

use dicom_core::value::{DataSetSequence, PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

use crate::modules::{code, seq, text};
use crate::uid::UidRoot;

/// The patient as the sending site knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patient {
    /// The site's patient ID.
    pub id: String,
    /// Name in DICOM PN form (`FAMILY^GIVEN`, `=` groups for ideographic and
    /// phonetic forms).
    pub name: String,
    /// `YYYYMMDD`, or empty when unknown.
    pub birth_date: String,
    /// `M`, `F`, `O`, or empty.
    pub sex: String,
}

/// The study an export belongs to, with the site's own identifiers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StudyInfo {
    /// The patient.
    pub patient: Patient,
    /// The site's study ID (SH, up to 16 characters).
    pub study_id: String,
    /// The accession number (SH), or empty.
    pub accession: String,
    /// A description, or empty.
    pub description: String,
    /// Study and content date, `YYYYMMDD`.
    pub date: String,
    /// Study and content time, `HHMMSS`.
    pub time: String,
}

/// What the consent lets cross a link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disclosure {
    /// The default: the pseudonym stands for the patient (as Patient ID and
    /// Patient Name), everything else PS3.15's basic profile removes is
    /// removed, and UIDs are replaced by UIDs derived from the pseudonym and
    /// the original (the same object always gets the same new UIDs).
    Pseudonym(String),
    /// The consent discloses the patient's identity: the object goes as the
    /// site wrote it.
    Identified,
}

/// Options of PS3.15 Table E.1-1 the de-identification claims.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProfileOptions {
    /// Keep med8k's own private block (band widths, reflectance scale).
    pub retain_safe_private: bool,
    /// Keep SR content (it is generated, not typed).
    pub clean_structured_content: bool,
}

impl ProfileOptions {
    /// The options for an object med8k made itself.
    pub fn med8k_object() -> Self {
        ProfileOptions {
            retain_safe_private: true,
            clean_structured_content: true,
        }
    }
}

#[derive(Clone, Copy)]
enum Action {
    /// Remove.
    X,
    /// Replace with a zero-length value.
    Z,
    /// Replace with the pseudonym.
    D,
    /// Replace the UID with one derived from the pseudonym.
    U,
    /// Type 1 somewhere med8k writes it: a dummy value of the VR (dates and
    /// times a fixed dummy, identifiers derived from the pseudonym and the
    /// original, so the same object gets the same dummy).
    Dummy,
}

/// The profile's rows (tag, action): Table E.1-1, Basic Profile column.
const PROFILE: &[(Tag, Action)] = {
    use Action::*;
    &[
        (tags::PATIENT_NAME, D),
        (tags::PATIENT_ID, D),
        (tags::PATIENT_BIRTH_DATE, Z),
        (tags::PATIENT_SEX, Z),
        (tags::PATIENT_BIRTH_TIME, X),
        (tags::PATIENT_AGE, X),
        (tags::PATIENT_SIZE, X),
        (tags::PATIENT_WEIGHT, X),
        (tags::PATIENT_ADDRESS, X),
        (tags::PATIENT_TELEPHONE_NUMBERS, X),
        (tags::PATIENT_MOTHER_BIRTH_NAME, X),
        (tags::PATIENT_BIRTH_NAME, X),
        (tags::PATIENT_COMMENTS, X),
        (tags::PATIENT_RELIGIOUS_PREFERENCE, X),
        (tags::ISSUER_OF_PATIENT_ID, X),
        (tags::OTHER_PATIENT_I_DS_SEQUENCE, X),
        (tags::OTHER_PATIENT_NAMES, X),
        (Tag(0x0010, 0x1090), X),
        (Tag(0x0010, 0x2160), X),
        (tags::OCCUPATION, X),
        (tags::ADDITIONAL_PATIENT_HISTORY, X),
        (tags::MILITARY_RANK, X),
        (tags::BRANCH_OF_SERVICE, X),
        (tags::COUNTRY_OF_RESIDENCE, X),
        (tags::REGION_OF_RESIDENCE, X),
        (tags::MEDICAL_ALERTS, X),
        (tags::ALLERGIES, X),
        (tags::PREGNANCY_STATUS, X),
        (tags::RESPONSIBLE_PERSON, X),
        (tags::ACCESSION_NUMBER, Z),
        (tags::STUDY_ID, Z),
        (tags::STUDY_DATE, Z),
        (tags::STUDY_TIME, Z),
        (tags::SERIES_DATE, X),
        (tags::SERIES_TIME, X),
        (tags::ACQUISITION_DATE, X),
        (tags::ACQUISITION_TIME, X),
        (tags::ACQUISITION_DATE_TIME, Dummy),
        (tags::CONTENT_DATE, Dummy),
        (tags::CONTENT_TIME, Dummy),
        (tags::INSTANCE_CREATION_DATE, X),
        (tags::INSTANCE_CREATION_TIME, X),
        (tags::REFERRING_PHYSICIAN_NAME, Z),
        (tags::REFERRING_PHYSICIAN_ADDRESS, X),
        (tags::REFERRING_PHYSICIAN_TELEPHONE_NUMBERS, X),
        (tags::PHYSICIANS_OF_RECORD, X),
        (tags::PERFORMING_PHYSICIAN_NAME, X),
        (tags::NAME_OF_PHYSICIANS_READING_STUDY, X),
        (tags::OPERATORS_NAME, X),
        (tags::REQUESTING_PHYSICIAN, X),
        (tags::INSTITUTION_NAME, X),
        (tags::INSTITUTION_ADDRESS, X),
        (tags::INSTITUTIONAL_DEPARTMENT_NAME, X),
        (tags::STATION_NAME, X),
        (tags::DEVICE_SERIAL_NUMBER, Dummy),
        (tags::STUDY_DESCRIPTION, X),
        (tags::SERIES_DESCRIPTION, X),
        (tags::IMAGE_COMMENTS, X),
        (tags::ADMITTING_DIAGNOSES_DESCRIPTION, X),
        (tags::REQUEST_ATTRIBUTES_SEQUENCE, X),
        (tags::CONTAINER_IDENTIFIER, Dummy),
        (tags::CONTAINER_DESCRIPTION, X),
        (tags::SPECIMEN_IDENTIFIER, Dummy),
        (tags::SPECIMEN_DETAILED_DESCRIPTION, X),
        (tags::SPECIMEN_SHORT_DESCRIPTION, X),
        (tags::PERSON_NAME, D),
        (tags::CONTENT_CREATOR_NAME, Z),
        (tags::VERIFYING_OBSERVER_NAME, D),
        // X in the table, but type 1 in the Verifying Observer Sequence of a
        // verified SR (cut-out instructions).
        (tags::VERIFYING_ORGANIZATION, Dummy),
        (tags::STUDY_INSTANCE_UID, U),
        (tags::SERIES_INSTANCE_UID, U),
        (tags::SOP_INSTANCE_UID, U),
        (tags::REFERENCED_SOP_INSTANCE_UID, U),
        (tags::FRAME_OF_REFERENCE_UID, U),
        (tags::DIMENSION_ORGANIZATION_UID, U),
        (tags::SPECIMEN_UID, U),
        (tags::CONCATENATION_UID, U),
        (tags::SYNCHRONIZATION_FRAME_OF_REFERENCE_UID, U),
        (tags::IRRADIATION_EVENT_UID, U),
        (tags::UID, U),
        (tags::ACQUISITION_UID, U),
        (tags::REFERENCED_FRAME_OF_REFERENCE_UID, U),
    ]
};

/// The private creator of med8k's block, the only private data it writes.
pub const PRIVATE_CREATOR: &str = "MED8K 1";
/// The private group of med8k's block.
pub const PRIVATE_GROUP: u16 = 0x0009;

/// Applies the basic profile to `obj` for `pseudonym`, in place, in every
/// sequence item, and records what was done (Patient Identity Removed,
/// De-identification Method and its code sequence).
pub fn deidentify(obj: &mut InMemDicomObject, pseudonym: &str, options: ProfileOptions) {
    walk(obj, pseudonym, options);
    obj.put(text(tags::PATIENT_IDENTITY_REMOVED, VR::CS, "YES"));
    let mut method = String::from("PS3.15 E.1 Basic");
    let mut codes = vec![code(
        "113100",
        "DCM",
        "Basic Application Confidentiality Profile",
    )];
    if options.retain_safe_private {
        method.push_str(", Safe Private");
        codes.push(code("113111", "DCM", "Retain Safe Private Option"));
    }
    if options.clean_structured_content {
        method.push_str(", Clean Structured Content");
        codes.push(code("113104", "DCM", "Clean Structured Content Option"));
    }
    obj.put(text(tags::DEIDENTIFICATION_METHOD, VR::LO, &method));
    obj.put(seq(tags::DEIDENTIFICATION_METHOD_CODE_SEQUENCE, codes));
}

/// The UID that replaces `uid` for `pseudonym`.
pub fn replacement_uid(pseudonym: &str, uid: &str) -> String {
    UidRoot::Uuid.uid(&format!("deidentified:{pseudonym}:{uid}"))
}

fn walk(obj: &mut InMemDicomObject, pseudonym: &str, options: ProfileOptions) {
    let tags_present: Vec<Tag> = obj.tags().collect();
    for tag in tags_present {
        if tag.group() % 2 == 1 {
            let ours = options.retain_safe_private
                && tag.group() == PRIVATE_GROUP
                && (tag.element() == 0x0010 || (tag.element() >> 8) == 0x10)
                && obj
                    .get(Tag(PRIVATE_GROUP, 0x0010))
                    .and_then(|e| e.to_str().ok())
                    .is_some_and(|c| c.trim() == PRIVATE_CREATOR);
            if !ours {
                obj.remove_element(tag);
            }
            continue;
        }
        if tag == tags::CONTENT_SEQUENCE && !options.clean_structured_content {
            obj.remove_element(tag);
            continue;
        }
        if let Some(&(_, action)) = PROFILE.iter().find(|(t, _)| *t == tag) {
            let Some(vr) = obj.get(tag).map(|e| e.vr()) else {
                continue;
            };
            match action {
                Action::X => {
                    obj.remove_element(tag);
                }
                Action::Z => {
                    obj.put(dicom_core::DataElement::new(tag, vr, PrimitiveValue::Empty));
                }
                Action::D => {
                    // A PN with no component delimiter is the retired form.
                    let v = if vr == VR::PN {
                        format!("{pseudonym}^")
                    } else {
                        pseudonym.to_string()
                    };
                    obj.put(text(tag, vr, &v));
                }
                Action::Dummy => {
                    let old = obj
                        .get(tag)
                        .and_then(|e| e.to_str().ok())
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    let dummy = match vr {
                        VR::DA => "19000101".to_string(),
                        VR::TM => "000000".to_string(),
                        VR::DT => "19000101000000".to_string(),
                        _ => {
                            let uid = replacement_uid(pseudonym, &format!("{tag}:{old}"));
                            format!("X{}", &uid[uid.len() - 15..])
                        }
                    };
                    obj.put(text(tag, vr, &dummy));
                }
                Action::U => {
                    let old = obj
                        .get(tag)
                        .and_then(|e| e.to_str().ok())
                        .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
                        .unwrap_or_default();
                    if !old.is_empty() {
                        obj.put(text(tag, vr, &replacement_uid(pseudonym, &old)));
                    }
                }
            }
            continue;
        }
        // Recurse into sequences.
        let Some(elem) = obj.get(tag) else { continue };
        if let Value::Sequence(s) = elem.value() {
            let mut items: Vec<InMemDicomObject> = s.items().to_vec();
            for it in &mut items {
                walk(it, pseudonym, options);
            }
            obj.put(dicom_core::DataElement::new(
                tag,
                VR::SQ,
                DataSetSequence::from(items),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modules::{item, seq, text};

    fn sample() -> InMemDicomObject {
        item([
            text(tags::PATIENT_NAME, VR::PN, "YAMADA^TARO"),
            text(tags::PATIENT_ID, VR::LO, "PID-1"),
            text(tags::PATIENT_BIRTH_DATE, VR::DA, "19500101"),
            text(tags::PATIENT_ADDRESS, VR::LO, "Tokyo"),
            text(tags::STUDY_INSTANCE_UID, VR::UI, "1.2.3.4"),
            text(tags::CONTENT_DATE, VR::DA, "20260101"),
            text(Tag(0x0011, 0x0010), VR::LO, "OTHER VENDOR"),
            text(Tag(0x0011, 0x1001), VR::LO, "secret"),
            text(Tag(PRIVATE_GROUP, 0x0010), VR::LO, PRIVATE_CREATOR),
            text(Tag(PRIVATE_GROUP, 0x1001), VR::LO, "40"),
            seq(
                tags::CONTENT_SEQUENCE,
                vec![item([text(tags::PERSON_NAME, VR::PN, "SATO^JIRO")])],
            ),
            seq(
                tags::REFERENCED_SERIES_SEQUENCE,
                vec![item([
                    text(tags::SERIES_INSTANCE_UID, VR::UI, "1.2.3.5"),
                    text(tags::OPERATORS_NAME, VR::PN, "TECH^A"),
                ])],
            ),
        ])
    }

    fn s(o: &InMemDicomObject, t: Tag) -> Option<String> {
        o.get(t)
            .and_then(|e| e.to_str().ok())
            .map(|v| v.trim_end().to_string())
    }

    #[test]
    fn the_basic_profile_removes_replaces_and_recurses() {
        let mut o = sample();
        deidentify(&mut o, "p1", ProfileOptions::default());
        assert_eq!(s(&o, tags::PATIENT_ID).as_deref(), Some("p1"));
        assert_eq!(s(&o, tags::PATIENT_NAME).as_deref(), Some("p1^"));
        assert_eq!(s(&o, tags::PATIENT_BIRTH_DATE).as_deref(), Some(""));
        assert!(o.get(tags::PATIENT_ADDRESS).is_none());
        assert_eq!(
            s(&o, tags::STUDY_INSTANCE_UID),
            Some(replacement_uid("p1", "1.2.3.4"))
        );
        assert_eq!(s(&o, tags::CONTENT_DATE).as_deref(), Some("19000101"));
        assert!(
            o.get(Tag(0x0011, 0x1001)).is_none(),
            "foreign private data goes"
        );
        assert!(
            o.get(Tag(PRIVATE_GROUP, 0x1001)).is_none(),
            "without the option, ours too"
        );
        assert!(o.get(tags::CONTENT_SEQUENCE).is_none(), "free content goes");
        let series = o
            .get(tags::REFERENCED_SERIES_SEQUENCE)
            .unwrap()
            .items()
            .unwrap()[0]
            .clone();
        assert_eq!(
            s(&series, tags::SERIES_INSTANCE_UID),
            Some(replacement_uid("p1", "1.2.3.5"))
        );
        assert!(
            series.get(tags::OPERATORS_NAME).is_none(),
            "inside sequences too"
        );
        assert_eq!(
            s(&o, tags::PATIENT_IDENTITY_REMOVED).as_deref(),
            Some("YES")
        );
    }

    #[test]
    fn med8k_objects_keep_their_safe_private_block_and_generated_content() {
        let mut o = sample();
        deidentify(&mut o, "p1", ProfileOptions::med8k_object());
        assert!(o.get(Tag(PRIVATE_GROUP, 0x1001)).is_some());
        assert!(o.get(Tag(0x0011, 0x1001)).is_none());
        let content = o.get(tags::CONTENT_SEQUENCE).unwrap().items().unwrap()[0].clone();
        assert_eq!(s(&content, tags::PERSON_NAME).as_deref(), Some("p1^"));
    }
}
