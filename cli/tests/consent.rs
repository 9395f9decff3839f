//! `med8k consent` on a real SoftHSM2 demo PKI (`med8k pki demo-init`):
//! grant, list, check (permit and each kind of deny), revoke, the audit log,
//! refused input, and `kill -9` during grant.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Output, Stdio};
use std::time::{Duration, SystemTime};

use common::{assert_one_line_error, command, med8k, stderr, stdout};
use med8k_auth::consent::{Ledger, PatientId};

fn softhsm_installed() -> bool {
    // SoftHSM2 stands in for the cards: scripts/setup-debian.sh installs
    // it, and these tests must not pass without it.
    assert!(
        Path::new(med8k_auth::identity::pkcs11::SOFTHSM2_MODULE).exists(),
        "SoftHSM2 is not installed: run scripts/setup-debian.sh"
    );
    true
}

/// A temporary directory with a demo PKI in `demo/`.
fn demo() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let o = med8k(dir.path(), &["pki", "demo-init", "--out", "demo"]);
    assert!(o.status.success(), "{}", stderr(&o));
    dir
}

const GRANT: [&str; 17] = [
    "consent",
    "grant",
    "--pki",
    "demo",
    "--ledger",
    "consent.db",
    "--audit",
    "audit.jsonl",
    "--patient-token",
    "med8k-patient",
    "--grantee",
    "jp.hospital-b",
    "--purpose",
    "treatment",
    "--category",
    "endoscope-video",
    "--scope",
];

/// `consent grant` of endoscope video for treatment to jp.hospital-b, with
/// `extra` arguments.
fn grant(dir: &Path, extra: &[&str]) -> Output {
    let mut args = GRANT.to_vec();
    args.push("register,disclose");
    args.extend_from_slice(extra);
    med8k(dir, &args)
}

/// The patient pseudonym `grant` printed.
fn patient_of(o: &Output) -> String {
    let text = stdout(o);
    let line = text
        .lines()
        .find_map(|l| l.trim().strip_prefix("patient: "))
        .unwrap_or_else(|| panic!("no patient in {text}"));
    assert_eq!(line.len(), 64, "{line}");
    line.to_owned()
}

/// `consent check` by the holder of `cert` at `facility`, with `extra`.
fn check(dir: &Path, patient: &str, cert: &str, facility: &str, extra: &[&str]) -> Output {
    let mut args = vec![
        "consent",
        "check",
        "--pki",
        "demo",
        "--ledger",
        "consent.db",
        "--audit",
        "audit.jsonl",
        "--physician-cert",
        cert,
        "--facility",
        facility,
        "--patient",
        patient,
        "--category",
        "endoscope-video",
        "--purpose",
        "treatment",
    ];
    args.extend_from_slice(extra);
    med8k(dir, &args)
}

/// Unix seconds as RFC 3339 UTC.
fn rfc3339(t: u64) -> String {
    med8k_auth::civil::rfc3339(t as i64)
}

const DOCTOR: &str = "demo/certs/med8k-physician-auth.pem";
const PHARMACIST: &str = "demo/certs/med8k-pharmacist-auth.pem";

fn assert_permit(o: &Output, id: &str) {
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(o), stderr(o));
    assert_eq!(stdout(o).trim(), format!("permit (consent {id})"));
}

fn assert_deny(o: &Output, reason: &str) {
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(o), stderr(o));
    let text = stdout(o);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(text.starts_with("deny: "), "{text}");
    assert!(text.contains(reason), "`{reason}` not in `{text}`");
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

fn audit_verifies(dir: &Path) -> String {
    let o = med8k(dir, &["audit", "verify", "--log", "audit.jsonl"]);
    assert!(o.status.success(), "{}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

fn list_json(dir: &Path, patient: &str) -> serde_json::Value {
    list_json_at(dir, patient, &[])
}

/// `consent list --json` with `extra` arguments (`--at`).
fn list_json_at(dir: &Path, patient: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "consent",
        "list",
        "--ledger",
        "consent.db",
        "--patient",
        patient,
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = med8k(dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_str(&stdout(&o)).unwrap()
}

/// Every file under `dir` (two levels: SoftHSM2's token directories).
fn snapshot(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    for token in std::fs::read_dir(dir).unwrap() {
        let token = token.unwrap().path();
        for f in std::fs::read_dir(&token).unwrap() {
            let f = f.unwrap().path();
            if f.is_file() {
                let bytes = std::fs::read(&f).unwrap();
                files.push((f, bytes));
            }
        }
    }
    files
}

/// Writes `files` back; whether any `token.object` had been altered.
fn restore(files: &[(std::path::PathBuf, Vec<u8>)]) -> bool {
    let mut damaged = false;
    for (path, bytes) in files {
        let now = std::fs::read(path).unwrap_or_default();
        if &now != bytes {
            damaged |= path.ends_with("token.object");
            std::fs::write(path, bytes).unwrap();
        }
    }
    damaged
}

#[test]
fn grant_list_check_revoke() {
    if !softhsm_installed() {
        return;
    }
    let tmp = demo();
    let dir = tmp.path();
    let o = grant(
        dir,
        &[
            "--from",
            "2020-01-01T00:00:00Z",
            "--until",
            "2099-01-01T00:00:00Z",
            "--id",
            "consent-1",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("consent-1"), "{}", stdout(&o));
    // The period asked for runs to 2099; what is signed ends with the
    // card's signing certificate (five years in the demo).
    assert!(!stdout(&o).contains("2099"), "{}", stdout(&o));
    let patient = patient_of(&o);
    // The PIN never shows.
    assert!(!stdout(&o).contains("1111") && !stderr(&o).contains("1111"));

    // list shows it, in force.
    let list = list_json(dir, &patient);
    let rows = list["consents"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["id"], "consent-1");
    assert_eq!(rows[0]["status"], "in force");
    // Bound to the card on the patient's token: its JPKI authentication
    // certificate, whose login alone stands for the patient at a gate.
    let auth = std::fs::read(dir.join("demo/certs/med8k-patient-auth.pem")).unwrap();
    let card = PatientId::of_cert(&med8k_auth::cert::pem_blocks(&auth, "CERTIFICATE").unwrap()[0]);
    assert_eq!(rows[0]["card"], card.as_str(), "{list}");
    let o = med8k(
        dir,
        &[
            "consent",
            "list",
            "--ledger",
            "consent.db",
            "--patient",
            &patient,
        ],
    );
    assert!(stdout(&o).contains("consent-1  in force"), "{}", stdout(&o));

    // Permit for the Medical Doctor at jp.hospital-b.
    assert_permit(
        &check(dir, &patient, DOCTOR, "jp.hospital-b", &[]),
        "consent-1",
    );
    // The pharmacist may not see endoscope video.
    assert_deny(
        &check(dir, &patient, PHARMACIST, "jp.hospital-b", &[]),
        "role not allowed",
    );
    // A JPKI (patient) certificate is no physician's.
    assert_deny(
        &check(
            dir,
            &patient,
            "demo/certs/med8k-patient-auth.pem",
            "jp.hospital-b",
            &[],
        ),
        "physician certificate refused",
    );
    // Another facility.
    assert_deny(
        &check(dir, &patient, DOCTOR, "jp.hospital-c", &[]),
        "other facilities",
    );
    // Another purpose.
    let mut args = vec![
        "consent",
        "check",
        "--pki",
        "demo",
        "--ledger",
        "consent.db",
        "--audit",
        "audit.jsonl",
        "--physician-cert",
        DOCTOR,
        "--facility",
        "jp.hospital-b",
        "--patient",
        &patient,
        "--category",
        "endoscope-video",
    ];
    args.extend(["--purpose", "research"]);
    assert_deny(&med8k(dir, &args), "other purposes");

    // A one-day consent from now, checked two days later: expired.
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let later = rfc3339(now + 2 * 86_400);
    let o = grant(
        dir,
        &[
            "--days",
            "1",
            "--id",
            "consent-short",
            "--grantee",
            "jp.hospital-a",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_deny(
        &check(dir, &patient, DOCTOR, "jp.hospital-a", &["--at", &later]),
        "expired",
    );
    let list = list_json_at(dir, &patient, &["--at", &later]);
    assert_eq!(list["consents"][1]["status"], "expired", "{list}");
    let list = list_json(dir, &patient);
    assert_eq!(list["consents"][1]["status"], "in force", "{list}");

    // Revoke: then denied, and listed as revoked.
    let revoke = |id: &str| {
        med8k(
            dir,
            &[
                "consent",
                "revoke",
                "--pki",
                "demo",
                "--ledger",
                "consent.db",
                "--audit",
                "audit.jsonl",
                "--patient-token",
                "med8k-patient",
                "--id",
                id,
            ],
        )
    };
    let o = revoke("consent-1");
    assert!(o.status.success(), "{}", stderr(&o));
    // (consent-short, which also names jp.hospital-b, is expired by then.)
    assert_deny(
        &check(dir, &patient, DOCTOR, "jp.hospital-b", &["--at", &later]),
        "revoked",
    );
    let list = list_json(dir, &patient);
    assert_eq!(list["consents"][0]["status"], "revoked", "{list}");
    // Twice, or an unknown consent: refused.
    assert_one_line_error(&revoke("consent-1"), &["already revoked"]);
    assert_one_line_error(&revoke("consent-none"), &["not in the ledger"]);

    // The facility stops the other consent (the patient lost their card).
    let o = med8k(
        dir,
        &[
            "consent",
            "stop",
            "--pki",
            "demo",
            "--ledger",
            "consent.db",
            "--audit",
            "audit.jsonl",
            "--id",
            "consent-short",
            "--operator",
            "clerk-7",
            "--reason",
            "card-lost",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("stopped consent consent-short (card-lost)"));
    let list = list_json(dir, &patient);
    assert_eq!(list["consents"][1]["status"], "revoked", "{list}");

    // Every grant, revoke, stop and check is in the log, and the chain holds.
    let report = audit_verifies(dir);
    assert!(report.starts_with("13 entries"), "{report}");
    let log = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    for word in [
        "ConsentGranted",
        "ConsentRevoked",
        "AccessPermitted",
        "AccessDenied",
        "ConsentStopped",
    ] {
        assert!(log.contains(word), "{word} not in the log");
    }
    assert!(!log.contains("clerk-7"));
    // No patient pseudonym, token label or PIN in the log: hashes only.
    assert!(!log.contains(&patient));
    assert!(!log.contains("med8k-patient"));
    assert!(!log.contains("jp.hospital-b"));
}

#[test]
fn refused_input_changes_nothing() {
    if !softhsm_installed() {
        return;
    }
    let tmp = demo();
    let dir = tmp.path();
    let o = grant(dir, &["--days", "30", "--id", "consent-ok"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let patient = patient_of(&o);
    let ledger = std::fs::read(dir.join("consent.db")).unwrap();

    // Bad PIN, unknown token, bad dates, a duplicate id: one line each.
    let mut args = GRANT.to_vec();
    args.extend(["disclose", "--days", "3", "--pin-env", "MED8K_TEST_PIN"]);
    let o = command(dir, &args)
        .env("MED8K_TEST_PIN", "9999")
        .output()
        .unwrap();
    assert_one_line_error(&o, &["PIN refused"]);
    assert!(!stderr(&o).contains("9999"));
    let mut args = GRANT.to_vec();
    args.extend(["disclose", "--days", "3"]);
    let at = args.iter().position(|a| *a == "med8k-patient").unwrap();
    args[at] = "med8k-nobody";
    assert_one_line_error(&med8k(dir, &args), &["unknown token"]);
    assert_one_line_error(
        &grant(dir, &["--from", "2030-02-30", "--until", "2031-01-01"]),
        &["RFC 3339"],
    );
    assert_one_line_error(
        &grant(dir, &["--from", "2031-01-01", "--until", "2030-01-01"]),
        &["before it starts"],
    );
    assert_one_line_error(
        &grant(dir, &["--days", "3", "--id", "consent-ok"]),
        &["already in the ledger"],
    );
    assert_eq!(std::fs::read(dir.join("consent.db")).unwrap(), ledger);
    assert_eq!(
        list_json(dir, &patient)["consents"]
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A garbage ledger: one line, file unchanged, for every command.
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 13) as u8).collect();
    std::fs::write(dir.join("garbage.db"), &garbage).unwrap();
    let mut args = GRANT.to_vec();
    args.extend(["disclose", "--days", "3"]);
    let at = args.iter().position(|a| *a == "consent.db").unwrap();
    args[at] = "garbage.db";
    assert_one_line_error(&med8k(dir, &args), &["not a consent ledger"]);
    assert_one_line_error(
        &med8k(
            dir,
            &[
                "consent",
                "list",
                "--ledger",
                "garbage.db",
                "--patient",
                &patient,
            ],
        ),
        &["not a consent ledger"],
    );
    let mut args = vec![
        "consent",
        "check",
        "--pki",
        "demo",
        "--ledger",
        "garbage.db",
        "--audit",
        "audit.jsonl",
        "--physician-cert",
        DOCTOR,
        "--facility",
        "jp.hospital-b",
        "--patient",
        &patient,
    ];
    args.extend(["--category", "endoscope-video", "--purpose", "treatment"]);
    assert_one_line_error(&med8k(dir, &args), &["not a consent ledger"]);
    assert_eq!(std::fs::read(dir.join("garbage.db")).unwrap(), garbage);

    // A missing ledger is not created by list.
    assert_one_line_error(
        &med8k(
            dir,
            &[
                "consent",
                "list",
                "--ledger",
                "missing.db",
                "--patient",
                &patient,
            ],
        ),
        &["no such file"],
    );
    assert!(!dir.join("missing.db").exists());
    audit_verifies(dir);
}

/// SIGKILL `med8k consent grant` at varying moments: the ledger still
/// opens, every listed record is whole and verifiable (it was verified to be
/// stored, and `check` decides over it), and the audit log verifies.
#[test]
fn kill_9_during_grant() {
    if !softhsm_installed() {
        return;
    }
    let tmp = demo();
    let dir = tmp.path();
    // Delays from 0 to 300 ms, most of them short: a grant takes some tens
    // of milliseconds, so the kills land in every phase (start-up, token
    // login and signing, the ledger transaction, the audit append) and some
    // after it ended.
    //
    // SoftHSM2 rewrites the token's `token.object` in place (truncate, then
    // write) on every C_Login, so a kill in that window empties it and the
    // token is gone ("no token labelled ..."), which a real card would not
    // suffer. The token files are restored from a snapshot after each run,
    // and the damage counted, so the runs after it test the ledger and log.
    let tokens = snapshot(&dir.join("demo/tokens"));
    let runs = 24u64;
    let mut killed = 0;
    let mut tokens_damaged = 0;
    for i in 0..runs {
        let id = format!("consent-k{i}");
        let mut args = GRANT.to_vec();
        args.extend(["disclose", "--days", "30", "--id", &id]);
        let mut child = command(dir, &args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(i * i * 300 / (runs * runs)));
        let _ = child.kill(); // SIGKILL; an error means it had already ended
        let out = child.wait_with_output().unwrap();
        if out.status.signal() == Some(9) {
            killed += 1;
            if restore(&tokens) {
                tokens_damaged += 1;
            }
        } else {
            assert!(out.status.success(), "run {i}: {}", stderr(&out));
        }
    }
    eprintln!(
        "{killed} of {runs} grants were killed by SIGKILL; \
         {tokens_damaged} kills left the SoftHSM2 token damaged (restored)"
    );

    // A clean grant afterwards works, then check permits it.
    let o = grant(dir, &["--days", "30", "--id", "consent-final"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let patient = patient_of(&o);
    let list = list_json(dir, &patient);
    let rows = list["consents"].as_array().unwrap();
    assert!(rows.iter().any(|r| r["id"] == "consent-final"), "{list}");
    for r in rows {
        assert_eq!(r["status"], "in force", "{r}");
        assert_eq!(r["grantees"], serde_json::json!(["jp.hospital-b"]), "{r}");
    }
    let o = check(dir, &patient, DOCTOR, "jp.hospital-b", &[]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).starts_with("permit (consent consent-"),
        "{}",
        stdout(&o)
    );

    // Every stored record is whole: reading the ledger checks each row's
    // MAC and signature again.
    let ledger = Ledger::open(dir.join("consent.db")).unwrap();
    let patient_id = PatientId::parse(patient.clone()).unwrap();
    let states = ledger.list(&patient_id).unwrap();
    assert_eq!(states.len(), rows.len());
    for s in &states {
        let stored = ledger.get(&s.record.id).unwrap().unwrap();
        assert_eq!(stored.body.id(), &s.record.id);
    }
    drop(ledger);
    // The audit log verifies. A grant killed after its ledger commit and
    // before its audit append leaves a record without an event (the order
    // is ledger, then audit), so the log holds at most one success per
    // record.
    let report = audit_verifies(dir);
    let log = std::fs::read_to_string(dir.join("audit.jsonl")).unwrap();
    let events = log
        .lines()
        .filter(|l| l.contains("ConsentGranted") && l.contains("\"Success\""))
        .count();
    eprintln!(
        "audit: {}; {} records, {events} grant events",
        report.trim(),
        states.len()
    );
    assert!(events <= states.len());
    assert!(events >= 1);
}

/// A per-visit consent covers its visit only; the PIN can come from the
/// environment.
#[test]
fn per_visit_consent() {
    if !softhsm_installed() {
        return;
    }
    let tmp = demo();
    let dir = tmp.path();
    let mut args = GRANT.to_vec();
    args.extend([
        "disclose",
        "--days",
        "7",
        "--visit",
        "visit-1",
        "--id",
        "consent-v1",
        "--pin-env",
        "MED8K_TEST_PIN",
    ]);
    let o = command(dir, &args)
        .env("MED8K_TEST_PIN", "1111")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let patient = patient_of(&o);
    assert_permit(
        &check(
            dir,
            &patient,
            DOCTOR,
            "jp.hospital-b",
            &["--visit", "visit-1"],
        ),
        "consent-v1",
    );
    assert_deny(
        &check(
            dir,
            &patient,
            DOCTOR,
            "jp.hospital-b",
            &["--visit", "visit-2"],
        ),
        "another visit",
    );
    assert_deny(
        &check(dir, &patient, DOCTOR, "jp.hospital-b", &[]),
        "another visit",
    );
    // Register-only consents do not let anyone see the data.
    let mut args = GRANT.to_vec();
    args.extend(["register", "--days", "7", "--id", "consent-reg"]);
    let at = args.iter().position(|a| *a == "jp.hospital-b").unwrap();
    args[at] = "jp.hospital-a";
    let o = med8k(dir, &args);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_deny(
        &check(dir, &patient, DOCTOR, "jp.hospital-a", &[]),
        "other facilities",
    );
    let o = med8k(
        dir,
        &[
            "consent",
            "list",
            "--ledger",
            "consent.db",
            "--patient",
            &patient,
        ],
    );
    let text = stdout(&o);
    assert!(text.contains("consent-v1  in force"), "{text}");
    assert!(text.contains("visit visit-1"), "{text}");
    assert!(text.contains("scope register "), "{text}");
    audit_verifies(dir);
}
