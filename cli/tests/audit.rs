//! `med8k audit verify` on logs written through the auth crate.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::Path;
use std::process::Output;

use common::{med8k, stderr, stdout};
use med8k_auth::audit::{AuditEvent, AuditLog, EventKind, Outcome, Participant, Role};

fn write_log(path: &Path, n: u64) {
    let mut log = AuditLog::open(path).unwrap();
    for i in 1..=n {
        let event = AuditEvent::new(
            EventKind::TransferCompleted,
            1_700_000_000_000_000 + i,
            Outcome::Success,
        )
        .with_participant(Participant::new(Role::Facility, b"salt", "hospital-a"))
        .with_object(format!("1.2.392.200036.9116.2.6.1.{i}"));
        log.append(&event).unwrap();
    }
}

/// The command failed with exit code 1 and exactly one `med8k:` error line
/// containing every one of `words`.
fn assert_one_line_error(o: &Output, words: &[&str]) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("med8k: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for w in words {
        assert!(lines[0].contains(w), "`{w}` not in `{}`", lines[0]);
    }
}

#[test]
fn audit_verify_intact_log() {
    let dir = tempfile::tempdir().unwrap();
    write_log(&dir.path().join("audit.jsonl"), 12);
    let o = med8k(dir.path(), &["audit", "verify", "--log", "audit.jsonl"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        "12 entries, chain intact"
    );
}

#[test]
fn audit_verify_names_the_altered_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 12);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen("2.6.1.7\"", "2.6.1.8\"", 1);
    std::fs::write(&path, text).unwrap();
    let o = med8k(dir.path(), &["audit", "verify", "--log", "audit.jsonl"]);
    assert_one_line_error(&o, &["audit.jsonl", "line 7", "altered"]);
}

#[test]
fn audit_verify_names_a_removed_entry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.jsonl");
    write_log(&path, 12);
    let text = std::fs::read_to_string(&path).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(_, l)| l)
        .collect();
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    let o = med8k(dir.path(), &["audit", "verify", "--log", "audit.jsonl"]);
    assert_one_line_error(&o, &["line 4", "removed"]);
}

#[test]
fn audit_verify_missing_or_garbage_file() {
    let dir = tempfile::tempdir().unwrap();
    let o = med8k(dir.path(), &["audit", "verify", "--log", "nope.jsonl"]);
    assert_one_line_error(&o, &["nope.jsonl"]);
    std::fs::write(dir.path().join("junk"), b"\x00\xffnot json").unwrap();
    // Without its key a log cannot be checked.
    let o = med8k(dir.path(), &["audit", "verify", "--log", "junk"]);
    assert_one_line_error(&o, &["junk.key"]);
    med8k_auth::audit::log_key(&dir.path().join("junk")).unwrap();
    let o = med8k(dir.path(), &["audit", "verify", "--log", "junk"]);
    assert_one_line_error(&o, &["junk", "line 1"]);
}

#[test]
fn audit_checkpoint_catches_entries_cut_from_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("audit.jsonl");
    write_log(&log, 6);
    let o = med8k(dir.path(), &["audit", "checkpoint", "--log", "audit.jsonl"]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(dir.path().join("head.txt"), stdout(&o)).unwrap();
    let verify = [
        "audit",
        "verify",
        "--log",
        "audit.jsonl",
        "--checkpoint",
        "head.txt",
    ];
    let o = med8k(dir.path(), &verify);
    assert!(o.status.success(), "{}", stderr(&o));
    // The last two entries cut off.
    let text = std::fs::read_to_string(&log).unwrap();
    let kept: Vec<&str> = text.lines().take(4).collect();
    std::fs::write(&log, format!("{}\n", kept.join("\n"))).unwrap();
    assert!(
        med8k(dir.path(), &["audit", "verify", "--log", "audit.jsonl"])
            .status
            .success()
    );
    assert_one_line_error(&med8k(dir.path(), &verify), &["cut from the end"]);
}
