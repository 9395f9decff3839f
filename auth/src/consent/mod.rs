//! Patient consent, signed with the JPKI signing certificate (scenario 2).
//!
//! A tour, in the order data flows:
//!
//! - [`record`]: the [`ConsentRecord`] (modelled on FHIR Consent) and the
//!   [`ConsentRevocation`], their canonical JSON bytes and the strict
//!   parser, and the patient pseudonym [`PatientId`];
//! - [`cms`]: the detached CMS SignedData a JPKI signature takes:
//!   [`cms::sign_detached`] with any [`crate::identity::Signer`],
//!   [`cms::verify_detached`] against the JPKI trust store and profile;
//! - [`verify_record`]: both together, plus the rule that the record's
//!   patient is the signer;
//! - [`Ledger`]: the append-only SQLite file of verified records;
//! - [`decide()`]: the pure access decision over a patient's consents.
//!
//! ```no_run
//! use std::time::SystemTime;
//! use med8k_auth::cert::{Profile, ProfileConfig, StoreKind, TrustStore};
//! use med8k_auth::consent::{cms, ConsentRecord, Ledger, SignatureCheck};
//! use med8k_auth::identity::Signer;
//!
//! # fn demo(card: &dyn Signer, record: ConsentRecord, jlis_root_pem: &[u8])
//! #     -> Result<(), Box<dyn std::error::Error>> {
//! let now = SystemTime::now();
//! let bytes = record.canonical_bytes()?;
//! let blob = cms::sign_detached(&bytes, card, record.created)?;
//!
//! let mut jpki = TrustStore::new(StoreKind::Jpki);
//! jpki.add_pem(jlis_root_pem)?;
//! let profile = Profile::new(ProfileConfig::default());
//! let mut ledger = Ledger::open("consent.db")?;
//! ledger.grant(&bytes, &blob, &SignatureCheck::new(&jpki, &profile), now)?;
//! # Ok(()) }
//! ```

pub mod cms;
mod decide;
mod ledger;
pub mod record;
pub mod workflow;

use std::time::SystemTime;

pub use cms::{CmsError, SignatureCheck, VerifiedSignature};
pub use decide::{
    AccessRequest, ConsentState, Decision, DenyReason, Physician, RolePolicy, decide, decide_with,
};
pub use ledger::{APPLICATION_ID, Ledger, LedgerError, SCHEMA_VERSION, StopReason, StoredRecord};
pub use record::{
    ConsentDecision, ConsentPurpose, ConsentRecord, ConsentRevocation, Coverage, DataCategory,
    FacilityId, PatientId, Period, RecordError, RecordId, Scope, SignedBody, VisitId,
};

/// Why a signed record was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The record bytes are not a canonical, valid record.
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The signature is not valid over these bytes.
    #[error(transparent)]
    Signature(#[from] CmsError),
    /// The record names another patient than the signing certificate's
    /// holder (both pseudonyms given).
    #[error("record names patient {record}, but was signed by {signer}")]
    OtherPatient {
        /// The record's pseudonym.
        record: PatientId,
        /// The signer's pseudonym.
        signer: PatientId,
    },
}

impl From<crate::cert::CertError> for VerifyError {
    fn from(e: crate::cert::CertError) -> Self {
        VerifyError::Signature(CmsError::Certificate(e))
    }
}

/// Verifies a signed record: `record` parses as canonical bytes, `cms` is a
/// valid detached signature over exactly those bytes at `at`
/// ([`cms::verify_detached`]), and the record's patient is the signer's
/// pseudonym.
pub fn verify_record(
    record: &[u8],
    cms_blob: &[u8],
    check: &SignatureCheck<'_>,
    at: SystemTime,
) -> Result<SignedBody, VerifyError> {
    verify_signed(record, cms_blob, check, at).map(|(body, _)| body)
}

/// [`verify_record`], with the signature that verified.
pub fn verify_signed(
    record: &[u8],
    cms_blob: &[u8],
    check: &SignatureCheck<'_>,
    at: SystemTime,
) -> Result<(SignedBody, VerifiedSignature), VerifyError> {
    let body = SignedBody::parse(record)?;
    let signature = cms::verify_detached(cms_blob, record, check, at)?;
    if body.patient() != &signature.patient {
        return Err(VerifyError::OtherPatient {
            record: body.patient().clone(),
            signer: signature.patient,
        });
    }
    Ok((body, signature))
}
