//! The consent ledger: an append-only SQLite file of verified, signed
//! records.
//!
//! Every record is verified ([`super::verify_record`]) before it is stored,
//! with the exact canonical bytes and the signature that were verified, and
//! **verified again whenever it is read**: each row carries a MAC under the
//! ledger's key (`<ledger>.key`, made on first use, owner-only), and its
//! signature is checked again with the signer's public key. A row written by
//! anyone else (an `INSERT` by someone who can write the file but does not
//! hold the key), or altered, makes reading the patient's consents fail:
//! decisions over them deny.
//!
//! **No patient data is stored.** A JPKI signing certificate carries the
//! holder's name, address and birth date, so the stored signature has its
//! certificates removed ([`super::cms::without_certificates`]) and the row
//! keeps only what is needed later of the signer: its public key, issuer
//! and serial, notAfter, CRL distribution points and the issuing CA's
//! certificate; and the holder as a keyed hash of the name, birth date and
//! sex (so a re-issued card of the same person is recognised, and the hash
//! is useless without the key).
//!
//! Rows are never changed: triggers refuse every `UPDATE` and `DELETE`; a
//! revocation (signed by the patient, with the same card or a re-issued one
//! of the same person) and a facility's stop ([`Ledger::stop`]) are new rows
//! naming the consent they end. A revocation takes effect at the earlier of
//! the time its signer wrote (`created`) and the time it was stored.
//!
//! A consent never outlives its signer's certificate: one whose period ends
//! after the certificate's notAfter is refused, and [`Ledger::decide`]
//! checks the signer again (expiry, and revocation with the source given to
//! [`Ledger::with_revocation`]).
//!
//! The file runs in WAL mode with `synchronous=FULL`: a stored record
//! survives a power cut. It is created owner-only (0600), marked with
//! SQLite's `application_id` ([`APPLICATION_ID`]) and `user_version`
//! ([`SCHEMA_VERSION`]); any other SQLite file, or a file that is not
//! SQLite, is refused at open.

mod read;
mod row;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::cms::SignatureCheck;
use super::decide::{AccessRequest, ConsentState, Decision, RolePolicy, decide_with};
use super::record::{
    ConsentPurpose, ConsentRecord, DataCategory, FacilityId, PatientId, RecordError, RecordId,
    SignedBody,
};
use super::{VerifyError, verify_signed};
use crate::cert::{CertError, Revocation};
use row::{StoredSigner, holder, row_mac};

/// `PRAGMA application_id` of a consent ledger: ASCII "m8CL".
pub const APPLICATION_ID: i32 = 0x6d38_434c;
/// `PRAGMA user_version` of the schema written here.
pub const SCHEMA_VERSION: i32 = 2;

const SCHEMA: &str = "
CREATE TABLE consents (
    seq       INTEGER PRIMARY KEY,
    id        TEXT    NOT NULL UNIQUE,
    patient   TEXT    NOT NULL,
    holder    TEXT    NOT NULL,
    created   INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    record    BLOB    NOT NULL,
    cms       BLOB    NOT NULL,
    signer    TEXT    NOT NULL,
    mac       TEXT    NOT NULL
);
CREATE INDEX consents_patient ON consents (patient);
CREATE TABLE revocations (
    seq        INTEGER PRIMARY KEY,
    id         TEXT    NOT NULL UNIQUE,
    consent_id TEXT    NOT NULL UNIQUE REFERENCES consents (id),
    patient    TEXT    NOT NULL,
    created    INTEGER NOT NULL,
    stored_at  INTEGER NOT NULL,
    record     BLOB    NOT NULL,
    cms        BLOB    NOT NULL,
    signer     TEXT    NOT NULL,
    mac        TEXT    NOT NULL
);
CREATE TABLE stops (
    seq        INTEGER PRIMARY KEY,
    consent_id TEXT    NOT NULL UNIQUE REFERENCES consents (id),
    operator   TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    stopped_at INTEGER NOT NULL,
    mac        TEXT    NOT NULL
);
CREATE TRIGGER consents_no_update BEFORE UPDATE ON consents
    BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;
CREATE TRIGGER consents_no_delete BEFORE DELETE ON consents
    BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;
CREATE TRIGGER revocations_no_update BEFORE UPDATE ON revocations
    BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;
CREATE TRIGGER revocations_no_delete BEFORE DELETE ON revocations
    BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;
CREATE TRIGGER stops_no_update BEFORE UPDATE ON stops
    BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;
CREATE TRIGGER stops_no_delete BEFORE DELETE ON stops
    BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;
";

/// Why the ledger refused an operation.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The file cannot be opened (missing folder, permissions).
    #[error("{path}: cannot open ({reason})")]
    Open {
        /// The file.
        path: PathBuf,
        /// SQLite's message.
        reason: String,
    },
    /// The file is not a consent ledger (not SQLite, another application's
    /// database, or another schema).
    #[error("{path}: not a consent ledger ({reason})")]
    NotALedger {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The ledger's key cannot be read or made.
    #[error("ledger key {path}: {source}")]
    Key {
        /// The key file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The record or its signature was refused; nothing was stored.
    #[error("record refused: {0}")]
    Refused(#[from] VerifyError),
    /// The signature check given has no revocation source: a record is not
    /// stored on a signing certificate whose status is unknown.
    #[error("no revocation source (CRL) for the JPKI signing certificate is configured")]
    NoRevocationSource,
    /// The bytes given to [`Ledger::grant`] are a revocation, or the reverse.
    #[error("expected a {expected} record")]
    WrongKind {
        /// What the operation takes.
        expected: &'static str,
    },
    /// The consent's period ends after its signer's certificate expires.
    #[error(
        "consent period ends at {end}, after the signing certificate expires ({not_after}, unix seconds)"
    )]
    OutlivesCertificate {
        /// The period's end.
        end: i64,
        /// The certificate's notAfter.
        not_after: i64,
    },
    /// A record with this id is already stored.
    #[error("record {0} is already in the ledger")]
    DuplicateId(RecordId),
    /// The revocation or stop names a consent the ledger does not hold.
    #[error("consent {0} is not in the ledger")]
    UnknownConsent(RecordId),
    /// The consent was already revoked or stopped.
    #[error("consent {0} is already revoked")]
    AlreadyRevoked(RecordId),
    /// The revocation is signed by another person than the consent.
    #[error("revocation {revocation} is not by the patient of consent {consent}")]
    OtherPatient {
        /// The revocation's id.
        revocation: RecordId,
        /// The consent's id.
        consent: RecordId,
    },
    /// A stored row no longer parses (the file was altered outside this code).
    #[error("stored record {id} is corrupt: {reason}")]
    Corrupt {
        /// The row's id column.
        id: String,
        /// Why it does not parse.
        reason: RecordError,
    },
    /// A stored row's MAC or signature does not verify: it was written or
    /// altered by someone without the ledger's key.
    #[error("stored row {id} does not verify ({reason}): written outside this ledger")]
    Tampered {
        /// The row's id (or consent id) column.
        id: String,
        /// What failed.
        reason: String,
    },
    /// The signer of a stored consent could not be checked again (its
    /// revocation status is unknown): no decision is taken on it.
    #[error("the signer of consent {id} could not be checked: {source}")]
    Signer {
        /// The consent.
        id: String,
        /// Why.
        source: CertError,
    },
    /// SQLite failed (I/O, locking, a refused write).
    #[error("SQLite: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

/// A record as stored, with the bytes that were verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    /// The parsed record.
    pub body: SignedBody,
    /// Its canonical bytes.
    pub record: Vec<u8>,
    /// The detached CMS SignedData over `record`, without certificates.
    pub cms: Vec<u8>,
    /// When it was stored, unix seconds.
    pub stored_at: i64,
}

/// Why a facility stopped a consent ([`Ledger::stop`]): fixed categories,
/// never free text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StopReason {
    /// The patient asked at the desk (without a card that can sign).
    PatientRequest,
    /// The patient's card was lost or stolen.
    CardLost,
    /// A legal or regulatory order.
    Legal,
    /// The consent was recorded in error.
    Error,
}

impl StopReason {
    /// Every reason, with its name.
    pub const ALL: [(StopReason, &'static str); 4] = [
        (StopReason::PatientRequest, "patient-request"),
        (StopReason::CardLost, "card-lost"),
        (StopReason::Legal, "legal"),
        (StopReason::Error, "error"),
    ];

    /// The name (`patient-request`, `card-lost`, `legal`, `error`).
    pub fn name(self) -> &'static str {
        StopReason::ALL
            .iter()
            .find(|(r, _)| *r == self)
            .map_or("", |(_, n)| n)
    }
}

impl std::str::FromStr for StopReason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        StopReason::ALL
            .iter()
            .find(|(_, n)| *n == s)
            .map(|(r, _)| *r)
            .ok_or_else(|| {
                let names: Vec<&str> = StopReason::ALL.iter().map(|(_, n)| *n).collect();
                format!("{s:?} is not a stop reason ({})", names.join(", "))
            })
    }
}

/// A consent row with what decisions need besides the record.
struct Row {
    state: ConsentState,
    signer: StoredSigner,
}

/// The consent ledger file. One process writes it at a time (SQLite locks).
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    key: Vec<u8>,
    roles: RolePolicy,
    revocation: Option<Arc<dyn Revocation + Send + Sync>>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .field("revocation", &self.revocation.is_some())
            .finish_non_exhaustive()
    }
}

impl Ledger {
    /// Opens the ledger at `path`, creating it (owner-only) if the file
    /// does not exist or is empty, with its key `<path>.key`. Any other
    /// file is refused with [`LedgerError::NotALedger`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let path = path.as_ref().to_path_buf();
        let not_ledger = |reason: String| LedgerError::NotALedger {
            path: path.clone(),
            reason,
        };
        if !path.exists() {
            match crate::secret::create_private(&path) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => {
                    return Err(LedgerError::Open {
                        path: path.clone(),
                        reason: e.to_string(),
                    });
                }
            }
        }
        let conn = Connection::open(&path).map_err(|e| LedgerError::Open {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        // The first read of the header tells SQLite from anything else.
        let app_id: i32 = conn
            .query_row("PRAGMA application_id", [], |r| r.get(0))
            .map_err(|e| match sqlite_code(&e) {
                Some(ErrorCode::NotADatabase) => not_ledger("not an SQLite file".to_owned()),
                _ => LedgerError::Sqlite(e),
            })?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get(0))?;
        let fresh = app_id == 0 && tables == 0;
        if !fresh && app_id != APPLICATION_ID {
            return Err(not_ledger(format!(
                "application_id {app_id:#x}, expected {APPLICATION_ID:#x}"
            )));
        }
        let key_path = crate::secret::beside(&path, ".key");
        let key =
            crate::secret::load_or_create(&key_path, 32).map_err(|source| LedgerError::Key {
                path: key_path.clone(),
                source,
            })?;
        let mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(not_ledger(format!("cannot switch to WAL (mode {mode})")));
        }
        conn.execute_batch("PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;")?;
        if fresh {
            let tx = conn.unchecked_transaction()?;
            tx.execute_batch(SCHEMA)?;
            tx.pragma_update(None, "application_id", APPLICATION_ID)?;
            tx.pragma_update(None, "user_version", SCHEMA_VERSION)?;
            tx.commit()?;
        } else {
            let version: i32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
            if version != SCHEMA_VERSION {
                return Err(not_ledger(format!(
                    "schema version {version}, this code reads {SCHEMA_VERSION}"
                )));
            }
        }
        Ok(Ledger {
            conn,
            path,
            key,
            roles: RolePolicy::default(),
            revocation: None,
        })
    }

    /// Uses `roles` instead of the default [`RolePolicy`] in
    /// [`Ledger::decide`].
    pub fn with_role_policy(mut self, roles: RolePolicy) -> Self {
        self.roles = roles;
        self
    }

    /// Checks the signers of stored consents for revocation with `source`
    /// in [`Ledger::decide`] (without one, only their expiry is checked
    /// again: development only).
    pub fn with_revocation(mut self, source: Arc<dyn Revocation + Send + Sync>) -> Self {
        self.revocation = Some(source);
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyed hash of an identifier (an operator's name) as a row keeps it.
    fn hashed(&self, what: &str, raw: &str) -> String {
        crate::hex(&crate::secret::mac(
            &self.key,
            &[what.as_bytes(), raw.as_bytes()],
        ))
    }

    /// Verifies a signed consent at `now` and stores it, in one transaction.
    /// `check` must have a revocation source; the period must end by the
    /// signer certificate's notAfter.
    pub fn grant(
        &mut self,
        record: &[u8],
        cms: &[u8],
        check: &SignatureCheck<'_>,
        now: SystemTime,
    ) -> Result<ConsentRecord, LedgerError> {
        if check.revocation.is_none() {
            return Err(LedgerError::NoRevocationSource);
        }
        let (body, sig) = verify_signed(record, cms, check, now)?;
        let SignedBody::Consent(consent) = body else {
            return Err(LedgerError::WrongKind {
                expected: "consent",
            });
        };
        let signer = StoredSigner::of(&sig).map_err(VerifyError::from)?;
        // The period's end is exclusive, notAfter inclusive.
        if consent.period.end > signer.not_after.saturating_add(1) {
            return Err(LedgerError::OutlivesCertificate {
                end: consent.period.end,
                not_after: signer.not_after,
            });
        }
        let holder = holder(&self.key, &sig.signer).map_err(VerifyError::from)?;
        let stored_cms = super::cms::without_certificates(cms).map_err(VerifyError::Signature)?;
        let signer_json = serde_json::to_string(&signer).unwrap_or_default();
        let stored_at = crate::civil::unix(now);
        let (id, patient) = (consent.id.as_str(), consent.patient.as_str());
        let mac = row_mac(
            &self.key,
            "consents",
            &[
                id.as_bytes(),
                patient.as_bytes(),
                holder.as_bytes(),
                &consent.created.to_be_bytes(),
                &stored_at.to_be_bytes(),
                record,
                &stored_cms,
                signer_json.as_bytes(),
            ],
        );
        let tx = self.conn.transaction()?;
        let exists: Option<i64> = tx
            .query_row("SELECT seq FROM consents WHERE id = ?1", [id], |r| r.get(0))
            .optional()?;
        if exists.is_some() {
            return Err(LedgerError::DuplicateId(consent.id));
        }
        tx.execute(
            "INSERT INTO consents (id, patient, holder, created, stored_at, record, cms, signer, mac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                id,
                patient,
                holder,
                consent.created,
                stored_at,
                record,
                stored_cms,
                signer_json,
                mac
            ],
        )?;
        tx.commit()?;
        Ok(consent)
    }

    /// Verifies a signed revocation at `now` and stores it, in one
    /// transaction: the consent must be in the ledger and in force, and the
    /// revocation signed by its patient: with the same card, or with a
    /// re-issued one of the same person (same name, birth date and sex).
    pub fn revoke(
        &mut self,
        record: &[u8],
        cms: &[u8],
        check: &SignatureCheck<'_>,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        if check.revocation.is_none() {
            return Err(LedgerError::NoRevocationSource);
        }
        let (body, sig) = verify_signed(record, cms, check, now)?;
        let SignedBody::Revocation(rev) = body else {
            return Err(LedgerError::WrongKind {
                expected: "revocation",
            });
        };
        let signer = StoredSigner::of(&sig).map_err(VerifyError::from)?;
        let revoker = holder(&self.key, &sig.signer).map_err(VerifyError::from)?;
        let stored_cms = super::cms::without_certificates(cms).map_err(VerifyError::Signature)?;
        let signer_json = serde_json::to_string(&signer).unwrap_or_default();
        let stored_at = crate::civil::unix(now);
        let tx = self.conn.transaction()?;
        let consent: Option<(String, String)> = tx
            .query_row(
                "SELECT patient, holder FROM consents WHERE id = ?1",
                [rev.revokes.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((consent_patient, consent_holder)) = consent else {
            return Err(LedgerError::UnknownConsent(rev.revokes));
        };
        if consent_patient != rev.patient.as_str()
            && !crate::secret::mac_eq(consent_holder.as_bytes(), revoker.as_bytes())
        {
            return Err(LedgerError::OtherPatient {
                revocation: rev.id,
                consent: rev.revokes,
            });
        }
        let ended: i64 = tx.query_row(
            "SELECT (SELECT count(*) FROM revocations WHERE consent_id = ?1)
                  + (SELECT count(*) FROM stops WHERE consent_id = ?1)",
            [rev.revokes.as_str()],
            |r| r.get(0),
        )?;
        if ended > 0 {
            return Err(LedgerError::AlreadyRevoked(rev.revokes));
        }
        let duplicate: Option<i64> = tx
            .query_row(
                "SELECT seq FROM revocations WHERE id = ?1",
                [rev.id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if duplicate.is_some() {
            return Err(LedgerError::DuplicateId(rev.id));
        }
        let mac = row_mac(
            &self.key,
            "revocations",
            &[
                rev.id.as_str().as_bytes(),
                rev.revokes.as_str().as_bytes(),
                rev.patient.as_str().as_bytes(),
                &rev.created.to_be_bytes(),
                &stored_at.to_be_bytes(),
                record,
                &stored_cms,
                signer_json.as_bytes(),
            ],
        );
        tx.execute(
            "INSERT INTO revocations (id, consent_id, patient, created, stored_at, record, cms, signer, mac)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            params![
                rev.id.as_str(),
                rev.revokes.as_str(),
                rev.patient.as_str(),
                rev.created,
                stored_at,
                record,
                stored_cms,
                signer_json,
                mac
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// The facility stops consent `consent` at `now`, without the patient's
    /// signature (a lost card, a request at the desk, a legal order, an
    /// error): `operator` (kept as a keyed hash) and a fixed `reason`. Audit
    /// it ([`super::workflow::stop`] does). The consent must be in the
    /// ledger and not yet revoked or stopped.
    pub fn stop(
        &mut self,
        consent: &RecordId,
        operator: &str,
        reason: StopReason,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        let at = crate::civil::unix(now);
        let operator = self.hashed("operator", operator);
        let tx = self.conn.transaction()?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT seq FROM consents WHERE id = ?1",
                [consent.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_none() {
            return Err(LedgerError::UnknownConsent(consent.clone()));
        }
        let ended: i64 = tx.query_row(
            "SELECT (SELECT count(*) FROM revocations WHERE consent_id = ?1)
                  + (SELECT count(*) FROM stops WHERE consent_id = ?1)",
            [consent.as_str()],
            |r| r.get(0),
        )?;
        if ended > 0 {
            return Err(LedgerError::AlreadyRevoked(consent.clone()));
        }
        let mac = row_mac(
            &self.key,
            "stops",
            &[
                consent.as_str().as_bytes(),
                operator.as_bytes(),
                reason.name().as_bytes(),
                &at.to_be_bytes(),
            ],
        );
        tx.execute(
            "INSERT INTO stops (consent_id, operator, reason, stopped_at, mac)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![consent.as_str(), operator, reason.name(), at, mac],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every consent of `patient`, oldest first, each verified again (its
    /// row's MAC, its signature, its revocation's and stop's), with the time
    /// it stopped being in force (revoked or stopped), if it did.
    pub fn list(&self, patient: &PatientId) -> Result<Vec<ConsentState>, LedgerError> {
        Ok(self.rows(patient)?.into_iter().map(|r| r.state).collect())
    }

    /// The stored record with `id` (consent or revocation), with the exact
    /// bytes and signature that were verified. (Its row is verified by
    /// [`Ledger::list`], not here.)
    pub fn get(&self, id: &RecordId) -> Result<Option<StoredRecord>, LedgerError> {
        let row: Option<(Vec<u8>, Vec<u8>, i64)> = self
            .conn
            .query_row(
                "SELECT record, cms, stored_at FROM consents WHERE id = ?1
                 UNION ALL
                 SELECT record, cms, stored_at FROM revocations WHERE id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((record, cms, stored_at)) = row else {
            return Ok(None);
        };
        let body = SignedBody::parse(&record).map_err(|reason| LedgerError::Corrupt {
            id: id.to_string(),
            reason,
        })?;
        Ok(Some(StoredRecord {
            body,
            record,
            cms,
            stored_at,
        }))
    }

    /// The consents of `patient` in force at `now` (unix seconds) for
    /// `facility`, `purpose` and `category`: permits and denies, in period,
    /// not revoked. Visits are not considered here.
    pub fn in_force(
        &self,
        patient: &PatientId,
        facility: &FacilityId,
        purpose: ConsentPurpose,
        category: DataCategory,
        now: i64,
    ) -> Result<Vec<ConsentRecord>, LedgerError> {
        Ok(self
            .list(patient)?
            .into_iter()
            .filter(|s| {
                let r = &s.record;
                r.grantees.contains(facility)
                    && r.purposes.contains(&purpose)
                    && r.categories.contains(&category)
                    && r.period.contains(now)
                    && s.revoked_at.is_none_or(|t| t > now)
            })
            .map(|s| s.record)
            .collect())
    }

    /// Decides `request` at `now` from the patient's stored consents
    /// ([`super::decide`]), each row verified again and its signer checked
    /// again: a consent whose signing certificate has expired counts as
    /// expired, one whose certificate is revoked as revoked; a signer whose
    /// status cannot be known fails the decision.
    pub fn decide(
        &self,
        request: &AccessRequest,
        now: SystemTime,
    ) -> Result<Decision, LedgerError> {
        let t = crate::civil::unix(now);
        let mut consents = Vec::new();
        for row in self.rows(&request.patient)? {
            let mut state = row.state;
            let end = row.signer.not_after.saturating_add(1);
            state.record.period.end = state.record.period.end.min(end);
            if let Some(source) = &self.revocation
                && state.revoked_at.is_none_or(|r| r > t)
                && state.record.period.contains(t)
            {
                let id = state.record.id.to_string();
                let signer = |source| LedgerError::Signer {
                    id: id.clone(),
                    source,
                };
                let (cert, issuer) = row
                    .signer
                    .cert_ref("the consent's signer")
                    .map_err(signer)?;
                match source.check_ref(&cert, &issuer, now) {
                    Ok(()) => {}
                    Err(CertError::Revoked { revoked_at, .. }) => {
                        state.revoked_at =
                            Some(state.revoked_at.map_or(revoked_at, |r| r.min(revoked_at)));
                    }
                    Err(e) => return Err(signer(e)),
                }
            }
            consents.push(state);
        }
        Ok(decide_with(&self.roles, request, t, &consents))
    }
}

fn sqlite_code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}
