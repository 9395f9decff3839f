//! The hash-chained audit log: what it writes, and what `verify` catches.
#![allow(clippy::unwrap_used)] // tests fail loudly

use std::fs;
use std::path::{Path, PathBuf};

use med8k_auth::audit::{
    AuditError, AuditEvent, AuditLog, Checkpoint, EventKind, MAX_DETAIL, MAX_LINE, Outcome,
    Participant, Role, hash_identifier, verify, verify_against,
};
use sha2::{Digest, Sha256};
use tempfile::TempDir;

#[path = "fsize/mod.rs"]
mod fsize;

const SALT: &[u8] = b"test site salt";
const PHYSICIAN_ID: &str = "HPKI-PHYSICIAN-0042";
const PATIENT_ID: &str = "JPKI-PATIENT-9876";

const KINDS: [EventKind; 8] = [
    EventKind::ConsentGranted,
    EventKind::ConsentRevoked,
    EventKind::AccessPermitted,
    EventKind::AccessDenied,
    EventKind::Login,
    EventKind::TransferStarted,
    EventKind::TransferCompleted,
    EventKind::TransferFailed,
];

fn event(i: u64) -> AuditEvent {
    let outcome = [
        Outcome::Success,
        Outcome::MinorFailure,
        Outcome::SeriousFailure,
    ][(i % 3) as usize];
    let mut e = AuditEvent::new(KINDS[(i % 8) as usize], 1_700_000_000_000_000 + i, outcome)
        .with_participant(Participant::new(Role::Physician, SALT, PHYSICIAN_ID))
        .with_participant(Participant::new(Role::Patient, SALT, PATIENT_ID))
        .with_object(format!("1.2.392.200036.9116.2.6.1.{i}"));
    if i.is_multiple_of(2) {
        e = e.with_detail(format!("event number {i}"));
    }
    e
}

/// A log of `n` events in a fresh directory.
fn log_of(n: u64) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    for i in 1..=n {
        assert_eq!(log.append(&event(i)).unwrap(), i);
    }
    (dir, path)
}

fn lines(path: &Path) -> Vec<Vec<u8>> {
    let bytes = fs::read(path).unwrap();
    bytes
        .split_inclusive(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn write_lines(path: &Path, lines: &[Vec<u8>]) {
    fs::write(path, lines.concat()).unwrap();
}

fn line_of(err: &AuditError) -> u64 {
    match *err {
        AuditError::LineTooLong { line }
        | AuditError::Incomplete { line }
        | AuditError::Malformed { line, .. }
        | AuditError::Sequence { line, .. }
        | AuditError::BrokenLink { line, .. }
        | AuditError::HashMismatch { line, .. } => line,
        _ => panic!("no line in {err}"),
    }
}

#[test]
fn hundred_events_verify() {
    let (_dir, path) = log_of(100);
    let report = verify(&path).unwrap();
    assert_eq!(report.entries, 100);
    assert_eq!(report.head.len(), 64);
    assert_eq!(lines(&path).len(), 100);
}

#[test]
fn empty_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let log = AuditLog::open(&path).unwrap();
    assert!(log.is_empty());
    assert_eq!(verify(&path).unwrap().entries, 0);
}

#[test]
fn line_format() {
    let (_dir, path) = log_of(2);
    let all = lines(&path);
    let first: serde_json::Value = serde_json::from_slice(&all[0]).unwrap();
    assert_eq!(first["seq"], 1);
    assert_eq!(first["prev"], "0".repeat(64));
    assert_eq!(first["event"]["event"], "ConsentRevoked");
    assert_eq!(first["event"]["outcome"], "MinorFailure");
    assert_eq!(first["event"]["participants"][0]["role"], "Physician");
    assert_eq!(first["hash"].as_str().unwrap().len(), 64);
    let second: serde_json::Value = serde_json::from_slice(&all[1]).unwrap();
    assert_eq!(second["seq"], 2);
    // prev is the SHA-256 of the first line without its newline.
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&all[0][..all[0].len() - 1]);
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(second["prev"], hex.as_str());
}

#[test]
fn every_flipped_byte_in_a_middle_entry_is_named() {
    let (_dir, path) = log_of(100);
    let original = lines(&path);
    let target = 49; // line 50
    for pos in 0..original[target].len() - 1 {
        let mut altered = original.clone();
        altered[target][pos] ^= 0x01;
        write_lines(&path, &altered);
        let err = verify(&path).unwrap_err();
        assert_eq!(line_of(&err), 50, "byte {pos}: {err}");
        assert!(err.to_string().contains("line 50"), "{err}");
    }
}

#[test]
fn altered_value_is_a_hash_mismatch() {
    let (_dir, path) = log_of(100);
    let text = fs::read_to_string(&path).unwrap();
    let text = text.replacen("\"event number 50\"", "\"event number 51\"", 1);
    fs::write(&path, text).unwrap();
    let err = verify(&path).unwrap_err();
    assert!(
        matches!(err, AuditError::HashMismatch { line: 50, seq: 50 }),
        "{err}"
    );
}

#[test]
fn removed_line_is_found() {
    for removed in [0, 41, 99] {
        let (_dir, path) = log_of(100);
        let mut all = lines(&path);
        all.remove(removed);
        write_lines(&path, &all);
        if removed == 99 {
            // Removing from the end leaves a valid but shorter chain; the
            // report's count and head are what to compare against.
            let report = verify(&path).unwrap();
            assert_eq!(report.entries, 99);
            continue;
        }
        let err = verify(&path).unwrap_err();
        let line = removed as u64 + 1;
        assert!(
            matches!(err, AuditError::Sequence { line: l, expected, found }
                if l == line && expected == line && found == line + 1),
            "{err}"
        );
    }
}

#[test]
fn swapped_lines_are_found() {
    let (_dir, path) = log_of(100);
    let mut all = lines(&path);
    all.swap(29, 30);
    write_lines(&path, &all);
    let err = verify(&path).unwrap_err();
    assert_eq!(line_of(&err), 30, "{err}");
    assert!(err.to_string().contains("reordered"), "{err}");
}

#[test]
fn renumbered_swap_is_still_found() {
    // Swap two lines and fix up their seq fields: the hashes and links break.
    let (_dir, path) = log_of(10);
    let mut all = lines(&path);
    all.swap(4, 5);
    for (i, l) in all.iter_mut().enumerate().skip(4).take(2) {
        let mut v: serde_json::Value = serde_json::from_slice(l).unwrap();
        v["seq"] = serde_json::json!(i + 1);
        let mut s = serde_json::to_vec(&v).unwrap();
        s.push(b'\n');
        *l = s;
    }
    write_lines(&path, &all);
    let err = verify(&path).unwrap_err();
    assert_eq!(line_of(&err), 5, "{err}");
}

#[test]
fn truncated_last_line_is_found() {
    let (_dir, path) = log_of(100);
    let len = fs::metadata(&path).unwrap().len();
    let last = lines(&path)[99].len() as u64;
    let file = fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len - last / 2).unwrap();
    drop(file);
    let err = verify(&path).unwrap_err();
    assert!(matches!(err, AuditError::Incomplete { line: 100 }), "{err}");
    // And no appending after a broken tail.
    let err = AuditLog::open(&path).unwrap_err();
    assert!(matches!(err, AuditError::Incomplete { line: 100 }), "{err}");
}

#[test]
fn garbled_last_line_refuses_append() {
    let (_dir, path) = log_of(5);
    let mut all = lines(&path);
    all[4] = b"{\"seq\":5,\"prev\":\"nope\"}\n".to_vec();
    write_lines(&path, &all);
    let err = AuditLog::open(&path).unwrap_err();
    assert!(
        matches!(err, AuditError::Malformed { line: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("line 5"), "{err}");
}

#[test]
fn altered_last_line_refuses_append() {
    let (_dir, path) = log_of(5);
    let text = fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "1.2.392.200036.9116.2.6.1.5\"",
        "1.2.392.200036.9116.2.6.1.6\"",
        1,
    );
    fs::write(&path, text).unwrap();
    let err = AuditLog::open(&path).unwrap_err();
    assert!(
        matches!(err, AuditError::HashMismatch { line: 5, seq: 5 }),
        "{err}"
    );
}

#[test]
fn garbage_files_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage");
    let cases: Vec<Vec<u8>> = vec![
        b"hello world\n".to_vec(),
        b"\n".to_vec(),
        b"{}\n".to_vec(),
        b"[1,2,3]\n".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80, b'\n'],
        (0..=255u8).cycle().take(10_000).collect(),
        vec![b'x'; MAX_LINE + 10],
        {
            let mut v = vec![b'{'; MAX_LINE * 2];
            v.push(b'\n');
            v
        },
        b"{\"seq\":18446744073709551615,\"prev\":\"\",\"event\":null,\"hash\":\"\"}\n".to_vec(),
    ];
    med8k_auth::audit::log_key(&path).unwrap();
    for (i, bytes) in cases.iter().enumerate() {
        fs::write(&path, bytes).unwrap();
        let err = verify(&path).unwrap_err();
        assert_eq!(line_of(&err), 1, "case {i}: {err}");
        assert!(AuditLog::open(&path).is_err(), "case {i}");
    }
    let err = verify(dir.path().join("missing")).unwrap_err();
    assert!(matches!(err, AuditError::Io { .. }), "{err}");
}

#[test]
fn overlong_line_is_named() {
    let (_dir, path) = log_of(3);
    let mut all = lines(&path);
    let mut long = vec![b'a'; MAX_LINE + 1];
    long.push(b'\n');
    all.insert(1, long);
    write_lines(&path, &all);
    let err = verify(&path).unwrap_err();
    assert!(matches!(err, AuditError::LineTooLong { line: 2 }), "{err}");
}

#[test]
fn reopening_continues_the_chain() {
    let (_dir, path) = log_of(10);
    for round in 0..3u64 {
        let mut log = AuditLog::open(&path).unwrap();
        assert_eq!(log.len(), 10 + round * 5);
        for i in 0..5 {
            let seq = log.append(&event(100 + i)).unwrap();
            assert_eq!(seq, 10 + round * 5 + i + 1);
        }
    }
    assert_eq!(verify(&path).unwrap().entries, 25);
}

#[test]
fn unhashed_participant_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    let mut e = event(1);
    e.participants.push(Participant {
        role: Role::Patient,
        id_hash: PATIENT_ID.to_owned(),
    });
    let err = log.append(&e).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(!err.to_string().contains(PATIENT_ID), "{err}");
    assert_eq!(fs::metadata(&path).unwrap().len(), 0);
    // The log is still usable.
    assert_eq!(log.append(&event(1)).unwrap(), 1);
}

#[test]
fn oversized_entry_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    let e = event(1).with_detail("x".repeat(MAX_LINE));
    assert!(log.append(&e).is_err());
    assert_eq!(log.append(&event(2)).unwrap(), 1);
    assert_eq!(verify(&path).unwrap().entries, 1);
}

#[test]
fn hash_identifier_is_stable_salted_and_hides_the_id() {
    let a = hash_identifier(SALT, PATIENT_ID);
    assert_eq!(a, hash_identifier(SALT, PATIENT_ID));
    assert_ne!(a, hash_identifier(b"another salt", PATIENT_ID));
    assert_ne!(a, hash_identifier(SALT, PHYSICIAN_ID));
    assert_eq!(a.len(), 64);
    assert!(
        a.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
    );
    // Known value: SHA-256("abc").
    assert_eq!(
        hash_identifier(b"a", "bc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );

    let (_dir, path) = log_of(20);
    let text = fs::read_to_string(&path).unwrap();
    assert!(!text.contains(PATIENT_ID));
    assert!(!text.contains(PHYSICIAN_ID));
    assert!(text.contains(&a));
}

#[test]
fn two_writers_on_one_log_keep_one_chain() {
    // A gate serving links and `med8k consent` append to the same log.
    let dir = TempDir::new().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut a = AuditLog::open(&path).unwrap();
    let mut b = AuditLog::open(&path).unwrap();
    for i in 0..10 {
        let w = if i % 3 == 0 { &mut b } else { &mut a };
        assert_eq!(w.append(&event(i)).unwrap(), i + 1);
    }
    assert_eq!(verify(&path).unwrap().entries, 10);
}

/// The hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn an_entry_rewritten_without_the_key_is_refused() {
    // Someone who can write the file rewrites entry 3's outcome and
    // recomputes every hash and link after it as an unkeyed SHA-256 chain
    // would have them: without the log's key, it does not verify.
    let (_dir, path) = log_of(5);
    let mut ls = lines(&path);
    let mut prev = sha256_hex(ls[1].strip_suffix(b"\n").unwrap());
    for (i, line) in ls.iter_mut().enumerate().skip(2) {
        let mut v: serde_json::Value = serde_json::from_slice(line).unwrap();
        if i == 2 {
            v["event"]["outcome"] = "Success".into();
        }
        v["prev"] = prev.clone().into();
        let seq = v["seq"].as_u64().unwrap();
        let mut h = Sha256::new();
        h.update(seq.to_be_bytes());
        h.update(prev.as_bytes());
        h.update(serde_json::to_vec(&v["event"]).unwrap());
        v["hash"] = h
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into();
        let mut out = serde_json::to_vec(&v).unwrap();
        prev = sha256_hex(&out);
        out.push(b'\n');
        *line = out;
    }
    write_lines(&path, &ls);
    let err = verify(&path).unwrap_err();
    assert!(
        matches!(err, AuditError::HashMismatch { line: 3, .. }),
        "{err}"
    );
}

#[test]
fn entries_cut_from_the_end_fail_a_checkpoint_kept_elsewhere() {
    let (_dir, path) = log_of(10);
    let mut log = AuditLog::open(&path).unwrap();
    let checkpoint = log.checkpoint().unwrap();
    assert_eq!(checkpoint.entries, 10);
    // Kept outside the file as one line of text.
    let kept = Checkpoint::parse(&checkpoint.line()).unwrap();
    log.append(&event(11)).unwrap();
    assert_eq!(verify_against(&path, Some(&kept)).unwrap().entries, 11);

    // The last four entries cut off: the chain alone still verifies, the
    // checkpoint does not.
    let ls = lines(&path);
    write_lines(&path, &ls[..7]);
    assert_eq!(verify(&path).unwrap().entries, 7);
    let err = verify_against(&path, Some(&kept)).unwrap_err();
    assert!(
        matches!(&err, AuditError::Checkpoint { entries: 10, .. }),
        "{err}"
    );
    // A checkpoint made up without the key is refused too.
    let forged = Checkpoint {
        mac: "0".repeat(64),
        ..kept
    };
    write_lines(&path, &ls);
    assert!(matches!(
        verify_against(&path, Some(&forged)),
        Err(AuditError::Checkpoint { .. })
    ));
}

#[test]
fn an_event_out_of_bounds_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    let mut log = AuditLog::open(&path).unwrap();
    for bad in [
        event(1).with_detail("x".repeat(MAX_DETAIL + 1)),
        event(1).with_detail("login refused: CN=\u{1}\u{1}\u{1}"),
        event(1).with_object("study\nforged line"),
    ] {
        let err = log.append(&bad).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    }
    assert_eq!(log.append(&event(1)).unwrap(), 1);
    assert_eq!(verify(&path).unwrap().entries, 1);
}

#[test]
fn the_log_and_its_key_are_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let (_dir, path) = log_of(1);
    for p in [path.clone(), path.with_extension("jsonl.key")] {
        let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", p.display());
    }
}

#[test]
fn a_failed_write_does_not_switch_auditing_off() {
    fsize::isolated("a_failed_write_does_not_switch_auditing_off", || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("audit.jsonl");
        let mut log = AuditLog::open(&path).unwrap();
        for i in 1..=3 {
            log.append(&event(i)).unwrap();
        }
        // The disk fills up in the middle of the next entry.
        let len = fs::metadata(&path).unwrap().len();
        fsize::limit_file_size(Some(len + 40));
        assert!(log.append(&event(4)).is_err());
        assert!(log.append(&event(5)).is_err());
        // Room again: auditing carries on, and the chain has no torn line.
        fsize::limit_file_size(None);
        assert_eq!(log.append(&event(6)).unwrap(), 4);
        assert_eq!(verify(&path).unwrap().entries, 4);
    });
}
