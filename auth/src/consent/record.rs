//! The consent record and its revocation, and their canonical bytes.
//!
//! # Canonical form
//!
//! A record is signed as its canonical JSON, a subset of RFC 8785 (JCS) that
//! needs no number formatting rules:
//!
//! - UTF-8, no byte-order mark, no whitespace outside strings;
//! - object members sorted by key, byte-wise (keys are ASCII here, so this
//!   is also JCS's UTF-16 order); no duplicate keys;
//! - numbers are integers only (`-?[1-9][0-9]*|0`), within `i64`;
//! - strings escape `"` and `\` as `\"` and `\\`, the controls U+0008,
//!   U+0009, U+000A, U+000C, U+000D as `\b \t \n \f \r`, other controls as
//!   `\u00xx` (lowercase hex), and nothing else;
//! - absent optional fields are left out (never `null`);
//! - lists that are sets (scope, grantees, purposes, categories) are sorted
//!   and free of duplicates.
//!
//! [`ConsentRecord::canonical_bytes`] writes that form; [`SignedBody::parse`]
//! accepts only bytes equal to the canonical form of what they parse to, so
//! one record has exactly one encoding, and a signature over it cannot be
//! carried over to a re-encoded twin.
//!
//! # Patient pseudonym
//!
//! The patient is named by [`PatientId`]: the lowercase hex SHA-256 of the
//! DER of the patient's **JPKI signing certificate**. The record never holds
//! the name, birth date or address that certificate carries. Because the
//! pseudonym is bound to one certificate, a renewed card (new certificate)
//! gives a new pseudonym; consents signed with the old one stay valid under
//! the old pseudonym until they expire.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::sha256;

/// The largest canonical record accepted, in bytes.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;

/// Longest identifier (record, facility, visit id), in bytes.
const MAX_ID: usize = 128;

/// Why record bytes were refused, or a record is not well formed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// More than [`MAX_RECORD_BYTES`].
    #[error("record is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Size given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// Not JSON, or JSON of the wrong shape (the parser's message; it names
    /// positions and fields, not values).
    #[error("record is not a valid consent record: {0}")]
    Malformed(String),
    /// Valid JSON that is not in canonical form (whitespace, key order,
    /// escapes, duplicate keys, floats).
    #[error("record is not in canonical form ({0})")]
    NotCanonical(&'static str),
    /// The `type` member is missing or unknown.
    #[error("record type {0:?} is unknown (expected \"consent\" or \"revocation\")")]
    UnknownType(String),
    /// A field breaks a rule of the record.
    #[error("record field {field}: {reason}")]
    Invalid {
        /// The field.
        field: &'static str,
        /// The rule broken.
        reason: &'static str,
    },
}

fn invalid(field: &'static str, reason: &'static str) -> RecordError {
    RecordError::Invalid { field, reason }
}

/// Checks an identifier: 1 to 128 bytes of `[A-Za-z0-9._:-]`.
fn check_id(field: &'static str, s: &str) -> Result<(), RecordError> {
    if s.is_empty() || s.len() > MAX_ID {
        return Err(invalid(field, "must be 1 to 128 bytes"));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
    {
        return Err(invalid(field, "may hold only A-Z a-z 0-9 . _ : -"));
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps an identifier: 1 to 128 bytes of
            /// `[A-Za-z0-9._:-]`.
            pub fn new(s: impl Into<String>) -> Result<Self, RecordError> {
                let s = s.into();
                check_id($field, &s)?;
                Ok($name(s))
            }

            /// The identifier.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = RecordError;
            fn try_from(s: String) -> Result<Self, RecordError> {
                $name::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A record's identifier, unique in a ledger (a UUID or any opaque id;
    /// never patient data).
    RecordId,
    "id"
);
id_type!(
    /// A facility, such as `jp.hospital-b`; the deployment maps facility
    /// certificates to these ids.
    FacilityId,
    "grantee"
);
id_type!(
    /// A visit (受診) identifier, for per-visit consent.
    VisitId,
    "visit"
);

/// The patient's pseudonym: lowercase hex SHA-256 of the DER of their JPKI
/// signing certificate (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PatientId(String);

impl PatientId {
    /// The pseudonym of the holder of `signing_cert_der`.
    pub fn from_signing_cert(signing_cert_der: &[u8]) -> Self {
        Self::of_cert(signing_cert_der)
    }

    /// The SHA-256 pseudonym of any certificate: of the JPKI authentication
    /// certificate for [`ConsentRecord::login`], the same form a login's
    /// pseudonym takes.
    pub fn of_cert(cert_der: &[u8]) -> Self {
        PatientId(crate::cert::hex(&sha256(cert_der)))
    }

    /// Checks and wraps a pseudonym: 64 lowercase hex digits.
    pub fn parse(s: impl Into<String>) -> Result<Self, RecordError> {
        let s = s.into();
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(PatientId(s))
        } else {
            Err(invalid("patient", "must be 64 lowercase hex digits"))
        }
    }

    /// The pseudonym, 64 hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for PatientId {
    type Error = RecordError;
    fn try_from(s: String) -> Result<Self, RecordError> {
        PatientId::parse(s)
    }
}

impl From<PatientId> for String {
    fn from(id: PatientId) -> String {
        id.0
    }
}

impl fmt::Display for PatientId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// FHIR Consent.decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentDecision {
    /// The patient allows what the record describes.
    Permit,
    /// The patient refuses it; a matching deny overrides any permit.
    Deny,
}

/// What may be done with the data (FHIR provision.action).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    /// Register the visit's images and records at the facility.
    Register,
    /// Disclose them to the grantee facilities.
    Disclose,
}

/// Why the data is used (FHIR provision.purpose).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConsentPurpose {
    /// Treatment at the grantee.
    Treatment,
    /// A remote consultation (遠隔診療 / 遠隔コンサルテーション).
    RemoteConsultation,
    /// Research.
    Research,
}

/// Which data (FHIR provision.data / securityLabel classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DataCategory {
    /// 8K endoscope video.
    EndoscopeVideo,
    /// Pathology (whole-slide, spectral) images.
    PathologyImages,
    /// The visit history.
    VisitHistory,
}

impl DataCategory {
    /// The name records, claims and the command line use (`pathology-images`).
    pub fn name(self) -> &'static str {
        match self {
            DataCategory::EndoscopeVideo => "endoscope-video",
            DataCategory::PathologyImages => "pathology-images",
            DataCategory::VisitHistory => "visit-history",
        }
    }
}

/// When the record is in force: `start <= t < end`, unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Period {
    /// First second in force.
    pub start: i64,
    /// First second no longer in force.
    pub end: i64,
}

impl Period {
    /// Whether `now` (unix seconds) lies in the period.
    pub fn contains(&self, now: i64) -> bool {
        self.start <= now && now < self.end
    }
}

/// Which visits the record covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "mode", content = "visit", rename_all = "kebab-case")]
pub enum Coverage {
    /// Given once for this and all later visits (初回のみの同意).
    AllLaterVisits,
    /// Given for one visit only.
    PerVisit(VisitId),
}

/// A patient's consent, modelled on FHIR Consent: who (patient, grantees),
/// what (scope, categories), why (purposes), when (period, coverage), and
/// whether (decision).
///
/// Build one with the fields, call [`ConsentRecord::canonical_bytes`] and
/// sign those bytes ([`super::cms::sign_detached`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRecord {
    /// This record's id.
    pub id: RecordId,
    /// The patient's pseudonym; must be that of the signing certificate.
    pub patient: PatientId,
    /// When the patient made the record, unix seconds.
    pub created: i64,
    /// Permit or deny.
    pub decision: ConsentDecision,
    /// Actions covered; a set (sorted, no duplicates).
    pub scope: Vec<Scope>,
    /// Facilities the consent is given to; a set.
    pub grantees: Vec<FacilityId>,
    /// Purposes covered; a set.
    pub purposes: Vec<ConsentPurpose>,
    /// Data covered; a set.
    pub categories: Vec<DataCategory>,
    /// When it is in force.
    pub period: Period,
    /// Once for all later visits, or one visit.
    pub coverage: Coverage,
    /// The card whose login stands for the patient at access time: the
    /// pseudonym ([`PatientId::of_cert`]) of the patient's **JPKI
    /// authentication certificate**, on the same card as the signing key.
    /// The signature binds it to `patient`; a gate that has the patient log
    /// in accepts only this card's login.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub login: Option<PatientId>,
}

/// The patient withdraws an earlier consent record. Signed like a consent,
/// by the same patient.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentRevocation {
    /// This record's id.
    pub id: RecordId,
    /// The patient's pseudonym; must equal the revoked consent's.
    pub patient: PatientId,
    /// When the patient revoked, unix seconds; the consent stops at this time.
    pub created: i64,
    /// The consent record withdrawn.
    pub revokes: RecordId,
}

/// Either kind of signed record, as told by the `type` member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedBody {
    /// `"type":"consent"`.
    Consent(ConsentRecord),
    /// `"type":"revocation"`.
    Revocation(ConsentRevocation),
}

const TYPE_CONSENT: &str = "consent";
const TYPE_REVOCATION: &str = "revocation";

/// Strictly increasing: sorted and without duplicates.
fn is_set<T: Ord>(items: &[T]) -> bool {
    items.windows(2).all(|w| matches!(w, [a, b] if a < b))
}

impl ConsentRecord {
    /// Sorts and de-duplicates the set fields, so a record built in any
    /// order becomes canonical.
    pub fn normalize(&mut self) {
        fn norm<T: Ord>(v: &mut Vec<T>) {
            v.sort();
            v.dedup();
        }
        norm(&mut self.scope);
        norm(&mut self.grantees);
        norm(&mut self.purposes);
        norm(&mut self.categories);
    }

    /// Checks the rules JSON cannot express: non-empty sets in canonical
    /// order, `start < end`, non-negative times.
    pub fn validate(&self) -> Result<(), RecordError> {
        fn set_field<T: Ord>(field: &'static str, v: &[T]) -> Result<(), RecordError> {
            if v.is_empty() {
                return Err(invalid(field, "must not be empty"));
            }
            if !is_set(v) {
                return Err(invalid(field, "must be sorted and without duplicates"));
            }
            Ok(())
        }
        set_field("scope", &self.scope)?;
        set_field("grantees", &self.grantees)?;
        set_field("purposes", &self.purposes)?;
        set_field("categories", &self.categories)?;
        if self.created < 0 {
            return Err(invalid("created", "must not be before 1970"));
        }
        if self.period.start >= self.period.end {
            return Err(invalid("period", "start must be before end"));
        }
        Ok(())
    }

    /// The canonical bytes (module docs) that the patient signs. Refuses a
    /// record that does not [`validate`](ConsentRecord::validate).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, RecordError> {
        self.validate()?;
        canonical_with_type(self, TYPE_CONSENT)
    }
}

impl ConsentRevocation {
    /// Checks the record: non-negative time.
    pub fn validate(&self) -> Result<(), RecordError> {
        if self.created < 0 {
            return Err(invalid("created", "must not be before 1970"));
        }
        Ok(())
    }

    /// The canonical bytes that the patient signs.
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, RecordError> {
        self.validate()?;
        canonical_with_type(self, TYPE_REVOCATION)
    }
}

impl SignedBody {
    /// Parses canonical bytes; anything not in canonical form, not valid, or
    /// larger than [`MAX_RECORD_BYTES`] is refused.
    pub fn parse(bytes: &[u8]) -> Result<Self, RecordError> {
        if bytes.len() > MAX_RECORD_BYTES {
            return Err(RecordError::TooLarge {
                len: bytes.len(),
                max: MAX_RECORD_BYTES,
            });
        }
        let value: Value =
            serde_json::from_slice(bytes).map_err(|e| RecordError::Malformed(e.to_string()))?;
        if canonical_json(&value)? != bytes {
            return Err(RecordError::NotCanonical(
                "bytes differ from the canonical encoding",
            ));
        }
        let Value::Object(mut map) = value else {
            return Err(RecordError::Malformed("not a JSON object".to_owned()));
        };
        let kind = match map.remove("type") {
            Some(Value::String(s)) => s,
            _ => String::new(),
        };
        let rest = Value::Object(map);
        let malformed = |e: serde_json::Error| RecordError::Malformed(e.to_string());
        match kind.as_str() {
            TYPE_CONSENT => {
                let r: ConsentRecord = serde_json::from_value(rest).map_err(malformed)?;
                r.validate()?;
                Ok(SignedBody::Consent(r))
            }
            TYPE_REVOCATION => {
                let r: ConsentRevocation = serde_json::from_value(rest).map_err(malformed)?;
                r.validate()?;
                Ok(SignedBody::Revocation(r))
            }
            _ => Err(RecordError::UnknownType(kind)),
        }
    }

    /// The record's id.
    pub fn id(&self) -> &RecordId {
        match self {
            SignedBody::Consent(r) => &r.id,
            SignedBody::Revocation(r) => &r.id,
        }
    }

    /// The patient who signed it.
    pub fn patient(&self) -> &PatientId {
        match self {
            SignedBody::Consent(r) => &r.patient,
            SignedBody::Revocation(r) => &r.patient,
        }
    }
}

fn canonical_with_type<T: Serialize>(record: &T, kind: &str) -> Result<Vec<u8>, RecordError> {
    let mut value =
        serde_json::to_value(record).map_err(|e| RecordError::Malformed(e.to_string()))?;
    if let Value::Object(map) = &mut value {
        map.insert("type".to_owned(), Value::String(kind.to_owned()));
    }
    canonical_json(&value)
}

/// Writes `value` in the canonical form of the module docs.
pub fn canonical_json(value: &Value) -> Result<Vec<u8>, RecordError> {
    let mut out = Vec::new();
    write_value(value, &mut out)?;
    Ok(out)
}

fn write_value(value: &Value, out: &mut Vec<u8>) -> Result<(), RecordError> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Number(n) => match n.as_i64() {
            Some(i) => out.extend_from_slice(i.to_string().as_bytes()),
            None => return Err(RecordError::NotCanonical("numbers must be integers in i64")),
        },
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_string(k, out);
                out.push(b':');
                write_value(v, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn write_string(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\u{8}' => out.extend_from_slice(b"\\b"),
            '\t' => out.extend_from_slice(b"\\t"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\u{c}' => out.extend_from_slice(b"\\f"),
            '\r' => out.extend_from_slice(b"\\r"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
    }
    out.push(b'"');
}
