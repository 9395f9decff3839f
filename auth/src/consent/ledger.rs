//! The consent ledger: an append-only SQLite file of verified, signed
//! records.
//!
//! Every record is verified ([`super::verify_record`]) before it is stored,
//! and stored with the exact canonical bytes and CMS blob that were verified,
//! so anyone can verify it again later. Rows are never changed: triggers
//! refuse every `UPDATE` and `DELETE`, a revocation is a new signed row that
//! names the consent it ends. A grant and a revocation are each one
//! transaction; a refused input leaves the file as it was.
//!
//! The file runs in WAL mode with `synchronous=FULL`: a stored record
//! survives a power cut. It is marked with SQLite's `application_id`
//! ([`APPLICATION_ID`]) and `user_version` ([`SCHEMA_VERSION`]); any other
//! SQLite file, or a file that is not SQLite, is refused at open.
//!
//! Rows carry the patient pseudonym and record ids, never patient data.
//! The triggers guard against mistakes in code, not against someone who can
//! write the file: they can drop the triggers. Re-verify the stored
//! signatures ([`StoredRecord::cms`]) where that matters.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use rusqlite::{Connection, ErrorCode, OptionalExtension, params};

use super::cms::SignatureCheck;
use super::decide::{AccessRequest, ConsentState, Decision, RolePolicy, decide_with};
use super::record::{
    ConsentPurpose, ConsentRecord, DataCategory, FacilityId, PatientId, RecordError, RecordId,
    SignedBody,
};
use super::{VerifyError, verify_record};

/// `PRAGMA application_id` of a consent ledger: ASCII "m8CL".
pub const APPLICATION_ID: i32 = 0x6d38_434c;
/// `PRAGMA user_version` of the schema written here.
pub const SCHEMA_VERSION: i32 = 1;

const SCHEMA: &str = "
CREATE TABLE consents (
    seq       INTEGER PRIMARY KEY,
    id        TEXT    NOT NULL UNIQUE,
    patient   TEXT    NOT NULL,
    created   INTEGER NOT NULL,
    stored_at INTEGER NOT NULL,
    record    BLOB    NOT NULL,
    cms       BLOB    NOT NULL
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
    cms        BLOB    NOT NULL
);
CREATE TRIGGER consents_no_update BEFORE UPDATE ON consents
    BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;
CREATE TRIGGER consents_no_delete BEFORE DELETE ON consents
    BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;
CREATE TRIGGER revocations_no_update BEFORE UPDATE ON revocations
    BEGIN SELECT RAISE(ABORT, 'consent ledger is append-only'); END;
CREATE TRIGGER revocations_no_delete BEFORE DELETE ON revocations
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
    /// database, or a newer schema).
    #[error("{path}: not a consent ledger ({reason})")]
    NotALedger {
        /// The file.
        path: PathBuf,
        /// What was found.
        reason: String,
    },
    /// The record or its signature was refused; nothing was stored.
    #[error("record refused: {0}")]
    Refused(#[from] VerifyError),
    /// The bytes given to [`Ledger::grant`] are a revocation, or the reverse.
    #[error("expected a {expected} record")]
    WrongKind {
        /// What the operation takes.
        expected: &'static str,
    },
    /// A record with this id is already stored.
    #[error("record {0} is already in the ledger")]
    DuplicateId(RecordId),
    /// The revocation names a consent the ledger does not hold.
    #[error("consent {0} is not in the ledger")]
    UnknownConsent(RecordId),
    /// The consent was already revoked.
    #[error("consent {0} is already revoked")]
    AlreadyRevoked(RecordId),
    /// The revocation is signed by another patient than the consent.
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
    /// The detached CMS SignedData over `record`.
    pub cms: Vec<u8>,
    /// When it was stored, unix seconds.
    pub stored_at: i64,
}

/// The consent ledger file. One process writes it at a time (SQLite locks).
#[derive(Debug)]
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    roles: RolePolicy,
}

impl Ledger {
    /// Opens the ledger at `path`, creating it if the file does not exist or
    /// is empty. Any other file is refused with [`LedgerError::NotALedger`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, LedgerError> {
        let path = path.as_ref().to_path_buf();
        let not_ledger = |reason: String| LedgerError::NotALedger {
            path: path.clone(),
            reason,
        };
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
            roles: RolePolicy::default(),
        })
    }

    /// Uses `roles` instead of the default [`RolePolicy`] in
    /// [`Ledger::decide`].
    pub fn with_role_policy(mut self, roles: RolePolicy) -> Self {
        self.roles = roles;
        self
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Verifies a signed consent at `now` and stores it, in one transaction.
    pub fn grant(
        &mut self,
        record: &[u8],
        cms: &[u8],
        check: &SignatureCheck<'_>,
        now: SystemTime,
    ) -> Result<ConsentRecord, LedgerError> {
        let SignedBody::Consent(consent) = verify_record(record, cms, check, now)? else {
            return Err(LedgerError::WrongKind {
                expected: "consent",
            });
        };
        let tx = self.conn.transaction()?;
        let exists: Option<i64> = tx
            .query_row(
                "SELECT seq FROM consents WHERE id = ?1",
                [consent.id.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if exists.is_some() {
            return Err(LedgerError::DuplicateId(consent.id));
        }
        tx.execute(
            "INSERT INTO consents (id, patient, created, stored_at, record, cms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![
                consent.id.as_str(),
                consent.patient.as_str(),
                consent.created,
                crate::civil::unix(now),
                record,
                cms
            ],
        )?;
        tx.commit()?;
        Ok(consent)
    }

    /// Verifies a signed revocation at `now` and stores it, in one
    /// transaction: the consent must be in the ledger, not yet revoked, and
    /// of the same patient.
    pub fn revoke(
        &mut self,
        record: &[u8],
        cms: &[u8],
        check: &SignatureCheck<'_>,
        now: SystemTime,
    ) -> Result<(), LedgerError> {
        let SignedBody::Revocation(rev) = verify_record(record, cms, check, now)? else {
            return Err(LedgerError::WrongKind {
                expected: "revocation",
            });
        };
        let tx = self.conn.transaction()?;
        let consent_patient: Option<String> = tx
            .query_row(
                "SELECT patient FROM consents WHERE id = ?1",
                [rev.revokes.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        let Some(consent_patient) = consent_patient else {
            return Err(LedgerError::UnknownConsent(rev.revokes));
        };
        if consent_patient != rev.patient.as_str() {
            return Err(LedgerError::OtherPatient {
                revocation: rev.id,
                consent: rev.revokes,
            });
        }
        let revoked: Option<i64> = tx
            .query_row(
                "SELECT seq FROM revocations WHERE consent_id = ?1",
                [rev.revokes.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        if revoked.is_some() {
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
        tx.execute(
            "INSERT INTO revocations (id, consent_id, patient, created, stored_at, record, cms)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                rev.id.as_str(),
                rev.revokes.as_str(),
                rev.patient.as_str(),
                rev.created,
                crate::civil::unix(now),
                record,
                cms
            ],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Every consent of `patient`, oldest first, with its revocation time.
    pub fn list(&self, patient: &PatientId) -> Result<Vec<ConsentState>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT c.id, c.record, r.created FROM consents c
             LEFT JOIN revocations r ON r.consent_id = c.id
             WHERE c.patient = ?1 ORDER BY c.seq",
        )?;
        let rows = stmt.query_map([patient.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Vec<u8>>(1)?,
                r.get::<_, Option<i64>>(2)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, bytes, revoked_at) = row?;
            let record = match SignedBody::parse(&bytes) {
                Ok(SignedBody::Consent(c)) => c,
                Ok(SignedBody::Revocation(_)) => {
                    return Err(LedgerError::Corrupt {
                        id,
                        reason: RecordError::UnknownType("revocation".to_owned()),
                    });
                }
                Err(reason) => return Err(LedgerError::Corrupt { id, reason }),
            };
            out.push(ConsentState { record, revoked_at });
        }
        Ok(out)
    }

    /// The stored record with `id` (consent or revocation), with the exact
    /// bytes and signature that were verified.
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
    /// ([`super::decide`]).
    pub fn decide(
        &self,
        request: &AccessRequest,
        now: SystemTime,
    ) -> Result<Decision, LedgerError> {
        let consents = self.list(&request.patient)?;
        Ok(decide_with(
            &self.roles,
            request,
            crate::civil::unix(now),
            &consents,
        ))
    }
}

fn sqlite_code(e: &rusqlite::Error) -> Option<ErrorCode> {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => Some(f.code),
        _ => None,
    }
}
