//! Reading rows back: each one verified (its MAC under the ledger's key,
//! its signature with the signer's kept key, its columns against the
//! signed record) before anything is decided on it.

use rusqlite::OptionalExtension;

use super::row::{StoredSigner, row_mac_ok};
use super::{Ledger, LedgerError, Row};
use crate::consent::decide::ConsentState;
use crate::consent::record::{PatientId, RecordError, RecordId, SignedBody};

/// A revocations row: id, consent id, patient, created, stored_at,
/// record, CMS, signer, MAC.
type RevocationRow = (
    String,
    String,
    String,
    i64,
    i64,
    Vec<u8>,
    Vec<u8>,
    String,
    String,
);

impl Ledger {
    pub(super) fn rows(&self, patient: &PatientId) -> Result<Vec<Row>, LedgerError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, patient, holder, created, stored_at, record, cms, signer, mac
             FROM consents WHERE patient = ?1 ORDER BY seq",
        )?;
        let rows = stmt.query_map([patient.as_str()], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                r.get::<_, i64>(4)?,
                r.get::<_, Vec<u8>>(5)?,
                r.get::<_, Vec<u8>>(6)?,
                r.get::<_, String>(7)?,
                r.get::<_, String>(8)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, row_patient, holder, created, stored_at, bytes, cms, signer_json, mac) = row?;
            let tampered = |reason: &str| LedgerError::Tampered {
                id: id.clone(),
                reason: reason.to_owned(),
            };
            let fields: [&[u8]; 8] = [
                id.as_bytes(),
                row_patient.as_bytes(),
                holder.as_bytes(),
                &created.to_be_bytes(),
                &stored_at.to_be_bytes(),
                &bytes,
                &cms,
                signer_json.as_bytes(),
            ];
            if !row_mac_ok(&self.key, "consents", &fields, &mac) {
                return Err(tampered("MAC"));
            }
            let signer: StoredSigner =
                serde_json::from_str(&signer_json).map_err(|_| tampered("signer"))?;
            signer
                .verify(&bytes, &cms)
                .map_err(|e| tampered(&format!("signature: {e}")))?;
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
            if record.id.as_str() != id || record.patient.as_str() != row_patient {
                return Err(tampered("columns differ from the signed record"));
            }
            let revoked_at = self.ended_at(&record.id)?;
            out.push(Row {
                state: ConsentState { record, revoked_at },
                signer,
            });
        }
        Ok(out)
    }

    /// When consent `id` stopped being in force, each row verified: the
    /// earlier of its revocation's `created` and storing time, and its stop.
    fn ended_at(&self, id: &RecordId) -> Result<Option<i64>, LedgerError> {
        let revocation: Option<RevocationRow> = self
            .conn
            .query_row(
                "SELECT id, consent_id, patient, created, stored_at, record, cms, signer, mac
                     FROM revocations WHERE consent_id = ?1",
                [id.as_str()],
                |r| {
                    Ok((
                        r.get(0)?,
                        r.get(1)?,
                        r.get(2)?,
                        r.get(3)?,
                        r.get(4)?,
                        r.get(5)?,
                        r.get(6)?,
                        r.get(7)?,
                        r.get(8)?,
                    ))
                },
            )
            .optional()?;
        let mut ended: Option<i64> = None;
        if let Some((rid, consent_id, patient, created, stored_at, bytes, cms, signer_json, mac)) =
            revocation
        {
            let tampered = |reason: &str| LedgerError::Tampered {
                id: rid.clone(),
                reason: reason.to_owned(),
            };
            let fields: [&[u8]; 8] = [
                rid.as_bytes(),
                consent_id.as_bytes(),
                patient.as_bytes(),
                &created.to_be_bytes(),
                &stored_at.to_be_bytes(),
                &bytes,
                &cms,
                signer_json.as_bytes(),
            ];
            if !row_mac_ok(&self.key, "revocations", &fields, &mac) {
                return Err(tampered("MAC"));
            }
            let signer: StoredSigner =
                serde_json::from_str(&signer_json).map_err(|_| tampered("signer"))?;
            signer
                .verify(&bytes, &cms)
                .map_err(|e| tampered(&format!("signature: {e}")))?;
            match SignedBody::parse(&bytes) {
                Ok(SignedBody::Revocation(r))
                    if r.revokes == *id && r.id.as_str() == rid && r.created == created => {}
                _ => return Err(tampered("columns differ from the signed record")),
            }
            ended = Some(created.min(stored_at));
        }
        let stop: Option<(String, String, i64, String)> = self
            .conn
            .query_row(
                "SELECT operator, reason, stopped_at, mac FROM stops WHERE consent_id = ?1",
                [id.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        if let Some((operator, reason, stopped_at, mac)) = stop {
            let fields: [&[u8]; 4] = [
                id.as_str().as_bytes(),
                operator.as_bytes(),
                reason.as_bytes(),
                &stopped_at.to_be_bytes(),
            ];
            if !row_mac_ok(&self.key, "stops", &fields, &mac) {
                return Err(LedgerError::Tampered {
                    id: id.to_string(),
                    reason: "stop MAC".to_owned(),
                });
            }
            ended = Some(ended.map_or(stopped_at, |t| t.min(stopped_at)));
        }
        Ok(ended)
    }
}
