//! The audit trail: every consent decision and every transfer, as an event
//! shaped like an IHE ATNA audit message, appended to a hash-chained log.
//!
//! # Events
//!
//! An [`AuditEvent`] says what happened ([`EventKind`], ATNA's EventID), when
//! (`time`, given by the caller: this module never reads the clock), who took
//! part ([`Participant`]s, ATNA's ActiveParticipant), on what (`object`, such
//! as a study UID) and how it ended ([`Outcome`]).
//!
//! **No patient data goes into the log.** People and facilities appear only
//! as [`hash_identifier`]`(salt, raw_id)`: the hex SHA-256 of a site salt
//! followed by the identifier. The raw identifier never reaches the file, and
//! [`AuditLog::append`] refuses a participant whose `id_hash` is not such a
//! hash. `object` carries identifiers of things (study, series, transfer
//! UIDs), never names or birth dates; `detail` is free text and callers must
//! not put patient data in it either.
//!
//! # The file
//!
//! JSON Lines, one entry per line, each line ended by `\n`:
//!
//! ```text
//! {"seq":1,"prev":"000…000","event":{…},"hash":"9f2c…"}
//! ```
//!
//! - `seq` counts entries from 1, so entry `n` is line `n`;
//! - `prev` is the hex SHA-256 of the previous line's bytes (without its
//!   `\n`), or 64 zeros for the first entry;
//! - `hash` is the hex HMAC-SHA256, under the log's **key**, of `seq`,
//!   `prev` and the event serialized as compact JSON with its fields in
//!   declaration order and absent options as `null` (each part
//!   length-prefixed).
//!
//! The key is a secret of the site (`<log>.key`, 32 random bytes made on
//! first use, owner-only; the log itself is created owner-only too).
//! Without it nobody can write an entry that verifies: an altered, inserted
//! or re-chained entry fails its `hash`.
//!
//! [`verify`] walks the file and names the first line that does not fit:
//! an altered entry fails its `hash` (or breaks the next `prev`), a removed
//! or reordered one breaks `seq` and `prev`, a truncated or garbled line does
//! not parse. Lines are bounded by [`MAX_LINE`], and what an event may hold
//! is bounded too ([`MAX_DETAIL`], [`MAX_OBJECT`], [`MAX_PARTICIPANTS`], no
//! control characters): an event that does not fit is refused whole, never
//! cut. Hostile files give errors, never panics.
//!
//! # Anchoring the head
//!
//! Removing entries from the *end* leaves a valid, shorter chain. A
//! [`Checkpoint`] (the number of entries and the digest of the last line,
//! MACed with the key; [`AuditLog::checkpoint`], `med8k audit checkpoint`)
//! kept **outside the file** (printed by `med8k serve` when it stops, sent
//! to a log host, handed to the peer site, written down) catches that:
//! [`verify_against`] fails when the log no longer holds the checkpoint's
//! entries. A checkpoint kept where the log's writer can replace it with an
//! older one proves nothing.
//!
//! A failed write (a full disk) leaves no partial line behind: the next
//! append cuts it off and carries on, so a full disk stops auditing only
//! while it is full; callers that must not act unaudited (the consent gate)
//! deny when an append fails.
//! One [`AuditLog`] writes a file at a time per process; several processes
//! share one chain (a file lock per append).
//!
//! ```no_run
//! use med8k_auth::audit::{
//!     hash_identifier, AuditEvent, AuditLog, EventKind, Outcome, Participant, Role,
//! };
//!
//! let mut log = AuditLog::open("audit.jsonl")?;
//! let now_us = 1_700_000_000_000_000;
//! let event = AuditEvent::new(EventKind::AccessPermitted, now_us, Outcome::Success)
//!     .with_participant(Participant::new(Role::Physician, b"site salt", "HPKI-123"))
//!     .with_object("1.2.392.200036.9116.2.6.1.48");
//! log.append(&event)?;
//! let report = med8k_auth::audit::verify("audit.jsonl")?;
//! println!("{} entries, chain intact", report.entries);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::hex;

mod verify;

use verify::check_line;
pub use verify::{Checkpoint, VerifyReport, verify, verify_against, verify_with_key};

/// The longest line, `\n` excluded, that the log writes or reads (64 KiB).
pub const MAX_LINE: usize = 64 * 1024;
/// The longest `detail` of an event, in bytes.
pub const MAX_DETAIL: usize = 256;
/// The longest `object` of an event, in bytes.
pub const MAX_OBJECT: usize = 128;
/// The most participants of an event.
pub const MAX_PARTICIPANTS: usize = 8;

/// `prev` of the first entry.
const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// What happened (ATNA EventID).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    /// A patient granted consent.
    ConsentGranted,
    /// A patient revoked consent.
    ConsentRevoked,
    /// The facility stopped a consent (without the patient's signature).
    ConsentStopped,
    /// An access request was allowed.
    AccessPermitted,
    /// An access request was refused.
    AccessDenied,
    /// A user authenticated (or failed to).
    Login,
    /// A transfer to or from another site began.
    TransferStarted,
    /// A transfer finished with everything delivered.
    TransferCompleted,
    /// A transfer stopped before finishing.
    TransferFailed,
}

/// The part a participant played (ATNA ActiveParticipant role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Role {
    /// A physician (identified by an HPKI certificate).
    Physician,
    /// A patient (identified by a JPKI certificate).
    Patient,
    /// A facility (hospital, site).
    Facility,
    /// med8k itself or another process.
    System,
}

/// How the event ended (ATNA EventOutcomeIndicator).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Outcome {
    /// It succeeded.
    Success,
    /// It failed, but recoverably.
    MinorFailure,
    /// It failed and the action was not carried out.
    SeriousFailure,
}

/// Someone or something that took part in an event.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participant {
    /// The part played.
    pub role: Role,
    /// [`hash_identifier`] of the identifier: 64 lowercase hex digits,
    /// never the identifier itself.
    pub id_hash: String,
}

impl Participant {
    /// A participant identified by `raw_id`, which is hashed with `salt`
    /// here and never stored.
    pub fn new(role: Role, salt: &[u8], raw_id: &str) -> Self {
        Self {
            role,
            id_hash: hash_identifier(salt, raw_id),
        }
    }
}

/// One audit event, shaped like an IHE ATNA message. Holds no patient data:
/// see the [module docs](self).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditEvent {
    /// What happened.
    pub event: EventKind,
    /// When, in microseconds since the Unix epoch (UTC), from the caller's
    /// clock.
    pub time: u64,
    /// Who took part, identifiers hashed.
    pub participants: Vec<Participant>,
    /// What it was about, e.g. a study UID; never patient data.
    pub object: Option<String>,
    /// How it ended.
    pub outcome: Outcome,
    /// Free text for people reading the log (a reason, a peer address).
    /// Callers must not put patient data here.
    pub detail: Option<String>,
}

impl AuditEvent {
    /// An event with no participants, object or detail yet.
    pub fn new(event: EventKind, time: u64, outcome: Outcome) -> Self {
        Self {
            event,
            time,
            participants: Vec::new(),
            object: None,
            outcome,
            detail: None,
        }
    }

    /// Adds a participant.
    #[must_use]
    pub fn with_participant(mut self, participant: Participant) -> Self {
        self.participants.push(participant);
        self
    }

    /// Sets the object (a study or transfer UID; no patient data).
    #[must_use]
    pub fn with_object(mut self, object: impl Into<String>) -> Self {
        self.object = Some(object.into());
        self
    }

    /// Sets the detail text (no patient data).
    #[must_use]
    pub fn with_detail(mut self, detail: impl Into<String>) -> Self {
        self.detail = Some(detail.into());
        self
    }
}

/// A site's secret salt for [`hash_identifier`]: read from `path`, or 32
/// random bytes written there (owner-only) on first use. Never log it.
pub fn site_salt(path: &Path) -> io::Result<Vec<u8>> {
    crate::secret::load_or_create(path, 32)
}

/// The key of the log at `log`: `<log>.key`, read, or made (32 random
/// bytes, owner-only) on first use. Never log it.
pub fn log_key(log: &Path) -> io::Result<Vec<u8>> {
    crate::secret::load_or_create(&crate::secret::beside(log, ".key"), 32)
}

/// The hex SHA-256 of `salt` followed by `raw_id`: how people and facilities
/// appear in the log. The same salt and identifier always give the same
/// hash, so entries about one person can be matched without naming them;
/// keep the salt secret and per site so hashes cannot be reversed by
/// trying known identifiers.
pub fn hash_identifier(salt: &[u8], raw_id: &str) -> String {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(raw_id.as_bytes());
    hex(&h.finalize())
}

/// One line of the file.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    seq: u64,
    prev: String,
    event: AuditEvent,
    hash: String,
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn line_digest(line: &[u8]) -> String {
    hex(&Sha256::digest(line))
}

fn entry_hash(key: &[u8], seq: u64, prev: &str, event: &AuditEvent) -> String {
    // Serializing plain structs, enums, strings and integers cannot fail.
    let json = serde_json::to_vec(event).unwrap_or_default();
    hex(&crate::secret::mac(
        key,
        &[
            b"med8k audit entry v2",
            &seq.to_be_bytes(),
            prev.as_bytes(),
            &json,
        ],
    ))
}

/// Refuses an event that does not fit the bounds of the module docs.
fn check_bounds(event: &AuditEvent) -> io::Result<()> {
    let refuse = |what: String| Err(io::Error::new(io::ErrorKind::InvalidInput, what));
    let text_ok = |s: &str, max: usize| s.len() <= max && !s.chars().any(char::is_control);
    if event.participants.len() > MAX_PARTICIPANTS {
        return refuse(format!(
            "{} participants, more than {MAX_PARTICIPANTS}",
            event.participants.len()
        ));
    }
    if let Some(i) = event
        .participants
        .iter()
        .position(|p| !is_sha256_hex(&p.id_hash))
    {
        return refuse(format!(
            "participant {i}: id_hash is not a hash_identifier() value"
        ));
    }
    if event
        .detail
        .as_deref()
        .is_some_and(|d| !text_ok(d, MAX_DETAIL))
    {
        return refuse(format!(
            "detail longer than {MAX_DETAIL} bytes or with control characters"
        ));
    }
    if event
        .object
        .as_deref()
        .is_some_and(|o| !text_ok(o, MAX_OBJECT))
    {
        return refuse(format!(
            "object longer than {MAX_OBJECT} bytes or with control characters"
        ));
    }
    Ok(())
}

/// Why a log failed verification or could not be opened for appending.
/// Lines count from 1; entry `n` belongs on line `n`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuditError {
    /// The file could not be opened or read.
    #[error("reading {path}: {source}", path = path.display())]
    Io {
        /// The log file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A line is longer than [`MAX_LINE`].
    #[error("line {line}: longer than {MAX_LINE} bytes")]
    LineTooLong {
        /// The line.
        line: u64,
    },
    /// The file ends without `\n`: the last line was cut short.
    #[error("line {line}: incomplete (no newline at the end; truncated?)")]
    Incomplete {
        /// The line.
        line: u64,
    },
    /// A line is not a well-formed entry (garbled, truncated, not JSON).
    #[error("line {line}: not a valid entry ({reason})")]
    Malformed {
        /// The line.
        line: u64,
        /// What is wrong, without echoing the line's contents.
        reason: String,
    },
    /// An entry's `seq` is not the next number: an entry before it was
    /// removed, or entries were reordered.
    #[error(
        "line {line}: entry {found} where entry {expected} belongs (entry removed or reordered)"
    )]
    Sequence {
        /// The line.
        line: u64,
        /// The `seq` that belongs on this line.
        expected: u64,
        /// The `seq` found.
        found: u64,
    },
    /// An entry's `prev` is not the digest of the line before it: that line
    /// was altered, or the entries around it were removed or reordered.
    #[error(
        "line {line} (entry {seq}): does not follow the line before it (altered, removed or reordered entry)"
    )]
    BrokenLink {
        /// The line.
        line: u64,
        /// Its `seq`.
        seq: u64,
    },
    /// An entry's `hash` does not match its contents: it was altered, or
    /// written without the log's key.
    #[error("line {line} (entry {seq}): hash does not match its contents (entry altered)")]
    HashMismatch {
        /// The line.
        line: u64,
        /// Its `seq`.
        seq: u64,
    },
    /// The log's key cannot be read.
    #[error("audit key {path}: {error}", path = path.display())]
    Key {
        /// The key file.
        path: PathBuf,
        /// What the system said.
        error: io::Error,
    },
    /// The log does not hold what a checkpoint taken earlier saw: entries
    /// were cut from the end (or replaced), or the checkpoint is not this
    /// log's.
    #[error("checkpoint of {entries} entries: {reason}")]
    Checkpoint {
        /// Entries the checkpoint counts.
        entries: u64,
        /// What does not match.
        reason: String,
    },
}

/// An append-only, hash-chained audit log file. See the [module docs](self)
/// for the format.
pub struct AuditLog {
    file: File,
    path: PathBuf,
    key: Vec<u8>,
    /// `seq` of the last entry (0 when empty).
    last_seq: u64,
    /// Digest of the last line (genesis when empty).
    head: String,
    /// File length after the last entry this handle read or wrote: another
    /// process appended when the file is longer.
    file_len: u64,
    /// A write failed part-way; the file may end in a partial line.
    poisoned: bool,
}

impl std::fmt::Debug for AuditLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditLog")
            .field("path", &self.path)
            .field("last_seq", &self.last_seq)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl AuditLog {
    /// Opens (creating if needed, owner-only) the log at `path` to append
    /// to it, with its key `<path>.key` (made on first use).
    ///
    /// Reads the last line to continue the chain; it must be a complete,
    /// self-consistent entry in its place, or this fails naming it (run
    /// [`verify`] for the whole file). Earlier lines are not checked here.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, AuditError> {
        let path = path.as_ref();
        let key = log_key(path).map_err(|error| AuditError::Key {
            path: crate::secret::beside(path, ".key"),
            error,
        })?;
        Self::open_with_key(path, key)
    }

    /// [`AuditLog::open`] with a key kept elsewhere.
    pub fn open_with_key(path: impl AsRef<Path>, key: Vec<u8>) -> Result<Self, AuditError> {
        let path = path.as_ref().to_owned();
        let io_err = |source| AuditError::Io {
            path: path.clone(),
            source,
        };
        let mut options = OpenOptions::new();
        options.read(true).append(true).create(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(&path).map_err(io_err)?;
        file.lock().map_err(io_err)?;
        let tail = read_tail(&mut file, &path, &key);
        file.unlock().map_err(io_err)?;
        let tail = tail?;
        Ok(Self {
            file,
            path,
            key,
            last_seq: tail.seq,
            head: tail.head,
            file_len: tail.len,
            poisoned: false,
        })
    }

    /// The file this log writes.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many entries the log holds.
    pub fn len(&self) -> u64 {
        self.last_seq
    }

    /// Whether the log holds no entries.
    pub fn is_empty(&self) -> bool {
        self.last_seq == 0
    }

    /// Appends `event` and waits until it is on disk (`sync_data`). Returns
    /// its `seq`.
    ///
    /// Fails with `InvalidInput` for an event out of bounds (a participant
    /// whose `id_hash` is not a [`hash_identifier`], a detail or object too
    /// long or with control characters, too many participants) or an entry
    /// longer than [`MAX_LINE`]; nothing is written then. A write that fails
    /// part-way (a full disk) is undone by the next append, which carries on
    /// the chain.
    pub fn append(&mut self, event: &AuditEvent) -> io::Result<u64> {
        check_bounds(event)?;
        // Other processes may append to the same log (a gate serving links,
        // `med8k consent` on the same machine): each append holds the file
        // lock and continues the chain from what is on disk.
        self.file.lock()?;
        let result = self.recover().and_then(|()| self.append_locked(event));
        let unlocked = self.file.unlock();
        let seq = result?;
        unlocked?;
        Ok(seq)
    }

    /// After a failed write: cuts off the partial line it may have left
    /// (bytes past the last entry this handle wrote, with no newline).
    fn recover(&mut self) -> io::Result<()> {
        if !self.poisoned {
            return Ok(());
        }
        let on_disk = self.file.metadata()?.len();
        if on_disk > self.file_len {
            let mut extra = Vec::new();
            self.file.seek(SeekFrom::Start(self.file_len))?;
            (&mut self.file)
                .take(on_disk - self.file_len)
                .read_to_end(&mut extra)?;
            if extra.contains(&b'\n') {
                return Err(io::Error::other(
                    "after a failed append, the log holds more than a partial line: reopen it",
                ));
            }
            self.file.set_len(self.file_len)?;
            self.file.sync_data()?;
        }
        self.poisoned = false;
        Ok(())
    }

    /// A checkpoint of the log as it is on disk now.
    pub fn checkpoint(&mut self) -> Result<Checkpoint, AuditError> {
        let io_err = |source| AuditError::Io {
            path: self.path.clone(),
            source,
        };
        self.file.lock().map_err(io_err)?;
        let tail = read_tail(&mut self.file, &self.path, &self.key);
        self.file.unlock().map_err(io_err)?;
        let tail = tail?;
        Ok(Checkpoint::new(&self.key, tail.seq, tail.head))
    }

    fn append_locked(&mut self, event: &AuditEvent) -> io::Result<u64> {
        let on_disk = self.file.metadata()?.len();
        if on_disk != self.file_len {
            let tail =
                read_tail(&mut self.file, &self.path, &self.key).map_err(io::Error::other)?;
            self.last_seq = tail.seq;
            self.head = tail.head;
            self.file_len = tail.len;
        }
        let seq = self.last_seq + 1;
        let hash = entry_hash(&self.key, seq, &self.head, event);
        let entry = Entry {
            seq,
            prev: self.head.clone(),
            event: event.clone(),
            hash,
        };
        let mut line = serde_json::to_vec(&entry)?;
        if line.len() > MAX_LINE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("audit entry of {} bytes exceeds {MAX_LINE}", line.len()),
            ));
        }
        let head = line_digest(&line);
        line.push(b'\n');
        if let Err(e) = self
            .file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
        {
            self.poisoned = true;
            return Err(e);
        }
        self.last_seq = seq;
        self.head = head;
        self.file_len += line.len() as u64;
        Ok(seq)
    }
}

/// The last entry of a log file, as [`AuditLog`] continues from it.
struct Tail {
    seq: u64,
    head: String,
    len: u64,
}

/// Reads the last line of `file`: it must be a complete, self-consistent
/// entry in its place.
fn read_tail(file: &mut File, path: &Path, key: &[u8]) -> Result<Tail, AuditError> {
    let io_err = |source| AuditError::Io {
        path: path.to_owned(),
        source,
    };
    // Count lines and find where the last one starts.
    let mut lines = 0u64;
    let mut last_nl: Option<u64> = None;
    let mut before_last_nl: Option<u64> = None;
    let mut pos = 0u64;
    let mut ends_with_nl = true;
    let mut chunk = vec![0u8; 64 * 1024];
    file.seek(SeekFrom::Start(0)).map_err(io_err)?;
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io_err(e)),
        };
        for (i, &b) in chunk[..n].iter().enumerate() {
            if b == b'\n' {
                lines += 1;
                before_last_nl = last_nl;
                last_nl = Some(pos + i as u64);
            }
        }
        ends_with_nl = chunk[n - 1] == b'\n';
        pos += n as u64;
    }
    if !ends_with_nl {
        return Err(AuditError::Incomplete { line: lines + 1 });
    }
    let Some(last_nl) = last_nl else {
        // Empty file.
        return Ok(Tail {
            seq: 0,
            head: GENESIS.to_owned(),
            len: 0,
        });
    };
    let start = before_last_nl.map_or(0, |p| p + 1);
    let len = last_nl - start;
    if len > MAX_LINE as u64 {
        return Err(AuditError::LineTooLong { line: lines });
    }
    let mut line = vec![0u8; len as usize];
    file.seek(SeekFrom::Start(start)).map_err(io_err)?;
    file.read_exact(&mut line).map_err(io_err)?;
    let seq = check_line(key, lines, &line, None)?;
    Ok(Tail {
        seq,
        head: line_digest(&line),
        len: pos,
    })
}
