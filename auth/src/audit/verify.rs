//! Checking a log: the chain entry by entry ([`verify`]), and against a
//! checkpoint kept elsewhere ([`verify_against`]).

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use super::{AuditError, Entry, GENESIS, MAX_LINE, entry_hash, is_sha256_hex, line_digest};
use crate::hex;

/// The state of a log at one moment, MACed with its key: keep it outside
/// the log file (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// Entries the log held.
    pub entries: u64,
    /// The hex SHA-256 of its last line.
    pub head: String,
    /// HMAC-SHA256 (hex) of the two under the log's key.
    pub mac: String,
}

const CHECKPOINT_TAG: &str = "med8k-audit-checkpoint-v1";

impl Checkpoint {
    pub(super) fn new(key: &[u8], entries: u64, head: String) -> Checkpoint {
        let mac = hex(&crate::secret::mac(
            key,
            &[
                CHECKPOINT_TAG.as_bytes(),
                &entries.to_be_bytes(),
                head.as_bytes(),
            ],
        ));
        Checkpoint { entries, head, mac }
    }

    /// One line of text: `med8k-audit-checkpoint-v1 ENTRIES HEAD MAC`.
    pub fn line(&self) -> String {
        format!(
            "{CHECKPOINT_TAG} {} {} {}",
            self.entries, self.head, self.mac
        )
    }

    /// Reads [`Checkpoint::line`]'s form.
    pub fn parse(text: &str) -> Option<Checkpoint> {
        let mut words = text.split_whitespace();
        if words.next()? != CHECKPOINT_TAG {
            return None;
        }
        let entries = words.next()?.parse().ok()?;
        let head = words.next()?.to_owned();
        let mac = words.next()?.to_owned();
        (words.next().is_none() && is_sha256_hex(&head) && is_sha256_hex(&mac))
            .then_some(Checkpoint { entries, head, mac })
    }
}

/// What [`verify`] found in an intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifyReport {
    /// How many entries the log holds.
    pub entries: u64,
    /// The hex SHA-256 of the last line (64 zeros for an empty log): the
    /// `prev` of the next entry. Keep it elsewhere to detect entries
    /// removed from the end.
    pub head: String,
}

/// Parses one line (without `\n`) and checks it against its own hash and
/// the expected position. Returns the entry's `seq`.
pub(super) fn check_line(
    key: &[u8],
    line_no: u64,
    bytes: &[u8],
    expected_prev: Option<&str>,
) -> Result<u64, AuditError> {
    let entry: Entry = serde_json::from_slice(bytes).map_err(|e| AuditError::Malformed {
        line: line_no,
        reason: describe(&e),
    })?;
    if entry.seq != line_no {
        return Err(AuditError::Sequence {
            line: line_no,
            expected: line_no,
            found: entry.seq,
        });
    }
    let link_ok = match expected_prev {
        Some(prev) => entry.prev == prev,
        None => is_sha256_hex(&entry.prev) && (line_no != 1 || entry.prev == GENESIS),
    };
    if !link_ok {
        return Err(AuditError::BrokenLink {
            line: line_no,
            seq: entry.seq,
        });
    }
    if !crate::secret::mac_eq(
        entry.hash.as_bytes(),
        entry_hash(key, entry.seq, &entry.prev, &entry.event).as_bytes(),
    ) {
        return Err(AuditError::HashMismatch {
            line: line_no,
            seq: entry.seq,
        });
    }
    Ok(entry.seq)
}

/// A serde_json error without the offending text (which could be anything).
fn describe(e: &serde_json::Error) -> String {
    let what = match e.classify() {
        serde_json::error::Category::Io => "read error",
        serde_json::error::Category::Syntax => "bad JSON",
        serde_json::error::Category::Data => "unexpected field or value",
        serde_json::error::Category::Eof => "ends early",
    };
    format!("{what} at column {}", e.column())
}

/// Reads the next line into `buf` (without `\n`). `Ok(false)` at the end of
/// the file.
fn next_line(
    reader: &mut impl BufRead,
    buf: &mut Vec<u8>,
    line_no: u64,
    path: &Path,
) -> Result<bool, AuditError> {
    buf.clear();
    let limit = u64::try_from(MAX_LINE + 1).unwrap_or(u64::MAX);
    let n = reader
        .by_ref()
        .take(limit)
        .read_until(b'\n', buf)
        .map_err(|source| AuditError::Io {
            path: path.to_owned(),
            source,
        })?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        Ok(true)
    } else if buf.len() > MAX_LINE {
        Err(AuditError::LineTooLong { line: line_no })
    } else {
        Err(AuditError::Incomplete { line: line_no })
    }
}

/// Checks the whole chain of the log at `path` with its key (`<path>.key`),
/// naming the first line that is altered, out of place, missing its
/// predecessor, or garbled.
pub fn verify(path: impl AsRef<Path>) -> Result<VerifyReport, AuditError> {
    verify_against(path, None)
}

/// [`verify`], and the log still holds what `checkpoint` saw.
pub fn verify_against(
    path: impl AsRef<Path>,
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport, AuditError> {
    let path = path.as_ref();
    // A missing log is named before its key.
    File::open(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })?;
    let key_path = crate::secret::beside(path, ".key");
    let key = std::fs::read(&key_path).map_err(|error| AuditError::Key {
        path: key_path,
        error,
    })?;
    verify_with_key(path, &key, checkpoint)
}

/// [`verify_against`] with the key given.
pub fn verify_with_key(
    path: &Path,
    key: &[u8],
    checkpoint: Option<&Checkpoint>,
) -> Result<VerifyReport, AuditError> {
    let file = File::open(path).map_err(|source| AuditError::Io {
        path: path.to_owned(),
        source,
    })?;
    if let Some(c) = checkpoint
        && !crate::secret::mac_eq(
            Checkpoint::new(key, c.entries, c.head.clone())
                .mac
                .as_bytes(),
            c.mac.as_bytes(),
        )
    {
        return Err(AuditError::Checkpoint {
            entries: c.entries,
            reason: "its MAC does not verify with this log's key".to_owned(),
        });
    }
    let mut reader = BufReader::new(file);
    let mut buf = Vec::new();
    let mut head = GENESIS.to_owned();
    let mut entries = 0u64;
    let mut seen = checkpoint.is_none_or(|c| c.entries == 0 && c.head == GENESIS);
    while next_line(&mut reader, &mut buf, entries + 1, path)? {
        entries += 1;
        check_line(key, entries, &buf, Some(&head))?;
        head = line_digest(&buf);
        if let Some(c) = checkpoint
            && c.entries == entries
        {
            if c.head != head {
                return Err(AuditError::Checkpoint {
                    entries: c.entries,
                    reason: format!("entry {entries} is not the one the checkpoint saw"),
                });
            }
            seen = true;
        }
    }
    if !seen {
        return Err(AuditError::Checkpoint {
            entries: checkpoint.map_or(0, |c| c.entries),
            reason: format!("the log holds only {entries} entries: entries were cut from the end"),
        });
    }
    Ok(VerifyReport { entries, head })
}
