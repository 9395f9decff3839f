//! What a site does with consent: a patient grants or revokes it with the
//! JPKI signing key on their card, and a physician's access is decided and
//! audited. `med8k consent` and the link's consent gate are thin layers over
//! these functions.
//!
//! # Order of writes, and `kill -9`
//!
//! [`grant`] and [`revoke`] take an audit log the caller opened first
//! (refusing a log whose last line is torn), then store the record in the
//! ledger (one SQLite transaction in WAL mode with `synchronous=FULL`: all or
//! nothing), then append the event with its outcome (one `write` of a whole
//! line, then `fsync`). A process killed in between leaves a stored record
//! without its audit event; it never leaves a partial record or an event
//! claiming a record that was not stored.
//!
//! # What the audit log gets
//!
//! Identifiers hashed with the site's salt, the record id, and on failure a
//! fixed category ([`WorkflowError::category`]), never an error's text:
//! certificate errors can carry names.

use std::path::Path;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::audit::{AuditEvent, AuditLog, EventKind, Outcome, Participant, Role as AuditRole};
use crate::cert::{CertError, Purpose, verify_chain};
use crate::civil;
use crate::hex;
use crate::identity::{IdentityError, Module, TokenSession, TokenSigner, sha256};

use super::{
    CmsError, ConsentDecision, ConsentPurpose, ConsentRecord, ConsentRevocation, ConsentState,
    Coverage, DataCategory, Decision, FacilityId, Ledger, LedgerError, PatientId, Period,
    RecordError, RecordId, Scope, SignatureCheck, StopReason, VerifyError, cms,
};

/// Why a workflow failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WorkflowError {
    /// The card (token) refused or lacks a key or certificate.
    #[error(transparent)]
    Card(#[from] IdentityError),
    /// The PKI directory does not name the card, its PIN or its module.
    #[error(transparent)]
    Pki(#[from] crate::pkifile::PkiFileError),
    /// The card holds no JPKI signing certificate the site trusts.
    #[error("the card holds no JPKI signing certificate trusted by this site")]
    NoSigningCertificate,
    /// The record is malformed (an id, a period, an empty list).
    #[error(transparent)]
    Record(#[from] RecordError),
    /// Signing on the card failed.
    #[error("signing with the card: {0}")]
    Sign(#[from] CmsError),
    /// The ledger refused or failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The ledger named does not exist (reading never creates one).
    #[error("consent ledger {0}: no such file")]
    NoLedger(String),
    /// No revocation source for the patient's signing certificate: a
    /// grant or revocation is not taken on a certificate whose status is
    /// unknown.
    #[error("no revocation source (CRL) for the JPKI signing certificate is configured")]
    NoRevocationSource,
    /// The audit log could not be written.
    #[error("audit log: {0}")]
    Audit(#[from] std::io::Error),
}

impl WorkflowError {
    /// A fixed, patient-data-free category for the audit detail.
    pub fn category(&self) -> &'static str {
        match self {
            WorkflowError::Card(IdentityError::PinRefused) => "PIN refused",
            WorkflowError::Card(IdentityError::NotFound(_)) => "token or key not found",
            WorkflowError::Card(_) => "token error",
            WorkflowError::Pki(_) => "token error",
            WorkflowError::NoSigningCertificate => "no signing certificate",
            WorkflowError::Record(_) => "record refused",
            WorkflowError::Sign(_) => "signing failed",
            WorkflowError::Ledger(e) => match e {
                LedgerError::Refused(VerifyError::Signature(_)) => "signature refused",
                LedgerError::Refused(_) => "record refused",
                LedgerError::DuplicateId(_) => "duplicate record id",
                LedgerError::UnknownConsent(_) => "unknown consent",
                LedgerError::AlreadyRevoked(_) => "already revoked",
                LedgerError::OtherPatient { .. } => "other patient",
                LedgerError::NoRevocationSource => "no revocation source",
                LedgerError::OutlivesCertificate { .. } => "period outlives the certificate",
                LedgerError::Tampered { .. } => "ledger row does not verify",
                _ => "ledger error",
            },
            WorkflowError::NoLedger(_) => "no ledger",
            WorkflowError::NoRevocationSource => "no revocation source",
            WorkflowError::Audit(_) => "audit error",
        }
    }
}

/// The patient's card, logged in, with its JPKI signing key.
pub struct PatientCard {
    signer: TokenSigner,
    patient: PatientId,
    login: Option<PatientId>,
    /// notAfter of the signing certificate (unix seconds).
    not_after: i64,
    // The loaded module, kept until the signing is done.
    _module: Arc<Module>,
}

impl std::fmt::Debug for PatientCard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PatientCard")
            .field("patient", &self.patient)
            .field("login", &self.login)
            .finish_non_exhaustive()
    }
}

impl PatientCard {
    /// The card behind `session`: its JPKI signing certificate (the one that
    /// verifies for JPKI signing under `check` at `now`) and, when it holds
    /// one, its JPKI authentication certificate.
    pub fn from_session(
        module: Arc<Module>,
        session: &TokenSession,
        check: &SignatureCheck<'_>,
        now: SystemTime,
    ) -> Result<Self, WorkflowError> {
        let certs = session.certificates()?;
        let holds = |purpose: Purpose| {
            certs.iter().find(move |c| {
                verify_chain(&c.der, &[], check.store, purpose, now)
                    .ok()
                    .is_some_and(|chain| check.profile.check(&chain).is_ok())
            })
        };
        let login = holds(Purpose::JpkiAuth).map(|c| PatientId::of_cert(&c.der));
        let cert = holds(Purpose::JpkiSign).ok_or(WorkflowError::NoSigningCertificate)?;
        let not_after = crate::cert::ParsedCert::from_der(&cert.der)
            .map_err(IdentityError::from)?
            .x509()
            .map_err(IdentityError::from)?
            .validity()
            .not_after
            .timestamp();
        Ok(PatientCard {
            signer: session.signer(&cert.id)?,
            patient: PatientId::from_signing_cert(&cert.der),
            login,
            not_after,
            _module: module,
        })
    }

    /// The patient's pseudonym (of the JPKI signing certificate).
    pub fn patient(&self) -> &PatientId {
        &self.patient
    }

    /// The pseudonym of the card's JPKI authentication certificate, which a
    /// consent binds ([`ConsentRecord::login`]).
    pub fn login(&self) -> Option<&PatientId> {
        self.login.as_ref()
    }
}

/// A consent as the patient chose it, before it is bound to their card.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsentDraft {
    /// The record's id; `None` for a fresh one ([`fresh_id`]).
    pub id: Option<RecordId>,
    /// Actions covered.
    pub scope: Vec<Scope>,
    /// Facilities the consent is given to.
    pub grantees: Vec<FacilityId>,
    /// Purposes covered.
    pub purposes: Vec<ConsentPurpose>,
    /// Data categories covered.
    pub categories: Vec<DataCategory>,
    /// From when to when (unix seconds, end exclusive).
    pub period: Period,
    /// One visit, or all later ones.
    pub coverage: Coverage,
}

impl ConsentDraft {
    /// The record for `patient` (and their card's `login`), made at `now`;
    /// checks every field.
    pub fn record(
        &self,
        patient: PatientId,
        login: Option<PatientId>,
        now: SystemTime,
    ) -> Result<ConsentRecord, WorkflowError> {
        let id = match &self.id {
            Some(id) => id.clone(),
            None => fresh_id("consent", &patient, now)?,
        };
        let mut record = ConsentRecord {
            id,
            patient,
            created: civil::unix(now),
            decision: ConsentDecision::Permit,
            scope: self.scope.clone(),
            grantees: self.grantees.clone(),
            purposes: self.purposes.clone(),
            categories: self.categories.clone(),
            period: self.period,
            coverage: self.coverage.clone(),
            login,
        };
        record.normalize();
        record.validate()?;
        Ok(record)
    }
}

/// Where consent is kept at a site: the ledger, the audit log (opened by
/// the caller before anything else), the site's audit salt, and the JPKI
/// trust a signature is checked against.
#[derive(Debug)]
pub struct Desk<'a> {
    /// The ledger's file (created by a grant when missing).
    pub ledger: &'a Path,
    /// The audit log.
    pub audit: &'a mut AuditLog,
    /// The site's audit salt.
    pub salt: &'a [u8],
    /// JPKI trust and profile.
    pub check: &'a SignatureCheck<'a>,
}

/// The patient signs `draft` on their card and the record is stored; the
/// event (success or the failure's category) is audited either way.
/// `token` names the card in the audit (hashed); `card` opens it.
///
/// The desk's check must have a revocation source (the signing
/// certificate's status is checked before anything is signed); the period
/// ends no later than the signing certificate (what the patient signs is
/// cut to its notAfter).
pub fn grant(
    desk: &mut Desk<'_>,
    token: &str,
    card: impl FnOnce() -> Result<PatientCard, WorkflowError>,
    draft: &ConsentDraft,
    now: SystemTime,
) -> Result<ConsentRecord, WorkflowError> {
    let result = (|| {
        if desk.check.revocation.is_none() {
            return Err(WorkflowError::NoRevocationSource);
        }
        let card = card()?;
        let mut draft = draft.clone();
        draft.period.end = draft.period.end.min(card.not_after.saturating_add(1));
        let record = draft.record(card.patient.clone(), card.login.clone(), now)?;
        let bytes = record.canonical_bytes()?;
        let blob = cms::sign_detached(&bytes, &card.signer, record.created)?;
        drop(card);
        let mut ledger = Ledger::open(desk.ledger)?;
        ledger.grant(&bytes, &blob, desk.check, now)?;
        Ok(record)
    })();
    let mut event = token_event(EventKind::ConsentGranted, now, &result, desk.salt, token);
    if let Ok(record) = &result {
        event = event
            .with_participant(Participant::new(
                AuditRole::Patient,
                desk.salt,
                record.patient.as_str(),
            ))
            .with_object(record.id.as_str());
        for g in &record.grantees {
            event = event.with_participant(Participant::new(
                AuditRole::Facility,
                desk.salt,
                g.as_str(),
            ));
        }
    }
    let appended = desk.audit.append(&event);
    let record = result?;
    appended?;
    Ok(record)
}

/// The patient signs a revocation of consent `revokes` on their card and it
/// is stored; audited either way. `id` is the revocation's own id (`None`:
/// a fresh one).
pub fn revoke(
    desk: &mut Desk<'_>,
    token: &str,
    card: impl FnOnce() -> Result<PatientCard, WorkflowError>,
    revokes: &RecordId,
    id: Option<RecordId>,
    now: SystemTime,
) -> Result<ConsentRevocation, WorkflowError> {
    let result = (|| {
        if desk.check.revocation.is_none() {
            return Err(WorkflowError::NoRevocationSource);
        }
        let mut ledger = open_existing(desk.ledger)?;
        let card = card()?;
        let id = match id {
            Some(id) => id,
            None => fresh_id("revocation", &card.patient, now)?,
        };
        let rev = ConsentRevocation {
            id,
            patient: card.patient.clone(),
            created: civil::unix(now),
            revokes: revokes.clone(),
        };
        let bytes = rev.canonical_bytes()?;
        let blob = cms::sign_detached(&bytes, &card.signer, rev.created)?;
        drop(card);
        ledger.revoke(&bytes, &blob, desk.check, now)?;
        Ok(rev)
    })();
    let mut event = token_event(EventKind::ConsentRevoked, now, &result, desk.salt, token)
        .with_object(revokes.as_str());
    if let Ok(rev) = &result {
        event = event.with_participant(Participant::new(
            AuditRole::Patient,
            desk.salt,
            rev.patient.as_str(),
        ));
    }
    let appended = desk.audit.append(&event);
    let rev = result?;
    appended?;
    Ok(rev)
}

/// The facility stops consent `consent` without the patient's signature
/// (a lost card, a request at the desk, a legal order, an error), by
/// `operator` for `reason`; audited either way (the operator hashed, the
/// consent id, the reason's name).
pub fn stop(
    desk: &mut Desk<'_>,
    operator: &str,
    consent: &RecordId,
    reason: StopReason,
    now: SystemTime,
) -> Result<(), WorkflowError> {
    let result = (|| -> Result<(), WorkflowError> {
        let mut ledger = open_existing(desk.ledger)?;
        ledger.stop(consent, operator, reason, now)?;
        Ok(())
    })();
    let outcome = if result.is_ok() {
        Outcome::Success
    } else {
        Outcome::SeriousFailure
    };
    let detail = match &result {
        Ok(()) => format!("stopped by the facility: {}", reason.name()),
        Err(e) => e.category().to_owned(),
    };
    let event = AuditEvent::new(EventKind::ConsentStopped, civil::micros(now), outcome)
        .with_participant(Participant::new(
            AuditRole::System,
            desk.salt,
            &format!("operator:{operator}"),
        ))
        .with_object(consent.as_str())
        .with_detail(detail);
    let appended = desk.audit.append(&event);
    result?;
    appended?;
    Ok(())
}

/// Opens the ledger at `path`, which must already exist (reading never
/// creates one).
pub fn open_existing(path: &Path) -> Result<Ledger, WorkflowError> {
    if !path.is_file() {
        return Err(WorkflowError::NoLedger(path.display().to_string()));
    }
    Ok(Ledger::open(path)?)
}

/// A fresh record id: `prefix-` and 24 hex digits from the time, the process
/// and the patient (no patient data can be read back from it).
pub fn fresh_id(
    prefix: &str,
    patient: &PatientId,
    now: SystemTime,
) -> Result<RecordId, RecordError> {
    let nanos = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let seed = format!("{nanos}:{}:{patient}", std::process::id());
    let digest = sha256(seed.as_bytes());
    RecordId::new(format!(
        "{prefix}-{}",
        hex(digest.get(..12).unwrap_or(&digest))
    ))
}

/// The audit event of an action on the patient's card (grant, revoke): its
/// outcome, the card as the system participant and, on failure, the
/// failure's category.
fn token_event<T>(
    kind: EventKind,
    now: SystemTime,
    result: &Result<T, WorkflowError>,
    salt: &[u8],
    token: &str,
) -> AuditEvent {
    let outcome = match result {
        Ok(_) => Outcome::Success,
        Err(_) => Outcome::SeriousFailure,
    };
    let event = AuditEvent::new(kind, civil::micros(now), outcome).with_participant(
        Participant::new(AuditRole::System, salt, &format!("token:{token}")),
    );
    match result {
        Ok(_) => event,
        Err(e) => event.with_detail(e.category()),
    }
}

/// A consent's status at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsentStatus {
    /// Within its period and not revoked.
    InForce,
    /// Its period has ended.
    Expired,
    /// Its period has not started.
    NotYetValid,
    /// Revoked.
    Revoked,
}

impl ConsentStatus {
    /// `state`'s status at `now` (unix seconds).
    pub fn of(state: &ConsentState, now: i64) -> Self {
        let r = &state.record;
        if state.revoked_at.is_some_and(|t| t <= now) {
            ConsentStatus::Revoked
        } else if now >= r.period.end {
            ConsentStatus::Expired
        } else if now < r.period.start {
            ConsentStatus::NotYetValid
        } else {
            ConsentStatus::InForce
        }
    }
}

impl std::fmt::Display for ConsentStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConsentStatus::InForce => "in force",
            ConsentStatus::Expired => "expired",
            ConsentStatus::NotYetValid => "not yet valid",
            ConsentStatus::Revoked => "revoked",
        })
    }
}

/// Who asked for what, as the audit log records an access decision.
#[derive(Debug, Clone, Copy)]
pub struct AccessAttempt<'a> {
    /// The physician's id, when their certificate verified.
    pub physician: Option<&'a str>,
    /// The requesting facility.
    pub facility: &'a str,
    /// The patient's pseudonym.
    pub patient: &'a str,
    /// The data asked for.
    pub category: DataCategory,
}

/// The one audit event of an access decision, wherever it is taken (the
/// desk's `consent check`, the link's gate): the physician, facility and
/// patient as hashed participants, the data category as the object, and a
/// fixed detail.
pub fn access_event(
    kind: EventKind,
    now: SystemTime,
    outcome: Outcome,
    salt: &[u8],
    who: &AccessAttempt<'_>,
    detail: &str,
) -> AuditEvent {
    let mut event = AuditEvent::new(kind, civil::micros(now), outcome);
    if let Some(p) = who.physician {
        event = event.with_participant(Participant::new(AuditRole::Physician, salt, p));
    }
    event
        .with_participant(Participant::new(AuditRole::Facility, salt, who.facility))
        .with_participant(Participant::new(AuditRole::Patient, salt, who.patient))
        .with_object(who.category.name())
        .with_detail(detail)
}

/// The audit event of `decision` (or of a physician whose certificate was
/// refused, `Err`).
pub fn decision_event(
    now: SystemTime,
    salt: &[u8],
    who: &AccessAttempt<'_>,
    decision: &Result<Decision, CertError>,
) -> AuditEvent {
    match decision {
        Ok(Decision::Permit { consent_id }) => access_event(
            EventKind::AccessPermitted,
            now,
            Outcome::Success,
            salt,
            who,
            &format!("consent {consent_id}"),
        ),
        Ok(Decision::Deny(reason)) => access_event(
            EventKind::AccessDenied,
            now,
            Outcome::MinorFailure,
            salt,
            who,
            &reason.to_string(),
        ),
        Err(_) => access_event(
            EventKind::AccessDenied,
            now,
            Outcome::MinorFailure,
            salt,
            who,
            "physician certificate refused",
        ),
    }
}
