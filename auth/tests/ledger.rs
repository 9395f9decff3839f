//! The consent ledger against cards and CRLs made outside med8k (Python's
//! `cryptography`: JPKI-shaped signing certificates with the holder's name,
//! birth date, sex and address in subjectAltName), signatures made by
//! OpenSSL where the record itself is hostile, and rows written into the
//! file with SQLite directly.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use med8k_auth::audit::AuditLog;
use med8k_auth::cert::{CrlFile, Profile, ProfileConfig, Revocation, Role, StoreKind, TrustStore};
use med8k_auth::consent::workflow::{self, Desk};
use med8k_auth::consent::{
    AccessRequest, ConsentDecision, ConsentPurpose, ConsentRecord, ConsentRevocation, Coverage,
    DataCategory, Decision, DenyReason, FacilityId, Ledger, LedgerError, PatientId, Period,
    Physician, RecordId, Scope, SignatureCheck, StopReason, cms,
};
use med8k_auth::identity::KeyFileSigner;
use rsa::pkcs8::DecodePrivateKey;

fn fixtures() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("ledger-pki-{}", std::process::id()));
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile_pki.py");
        let out = std::process::Command::new("python3")
            .arg(&script)
            .arg(&dir)
            .output()
            .expect("python3 is needed: run scripts/setup-debian.sh");
        assert!(
            out.status.success(),
            "{} failed (is `cryptography` installed? run scripts/setup-debian.sh): {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        dir
    })
}

fn der(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(format!("{name}.der"))).unwrap()
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// 2026-06-01, inside the cards' validity (to 2026-12-31) and the CRLs'.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_780_272_000)
}

/// A card: `old`, `renewed` (the same person after a move) or `other`.
fn card(tag: &str) -> KeyFileSigner {
    let key = rsa::RsaPrivateKey::from_pkcs8_der(&der(&format!("card_{tag}.key"))).unwrap();
    KeyFileSigner::new(key, der(&format!("card_{tag}"))).unwrap()
}

fn patient(tag: &str) -> PatientId {
    PatientId::from_signing_cert(&der(&format!("card_{tag}")))
}

fn crl(name: &str) -> Arc<CrlFile> {
    let mut c = CrlFile::new();
    c.add_der(&der(name)).unwrap();
    Arc::new(c)
}

struct Trust {
    store: TrustStore,
    profile: Profile,
    crl: Arc<CrlFile>,
}

impl Trust {
    fn new(crl_name: &str) -> Trust {
        let mut store = TrustStore::new(StoreKind::Jpki);
        store.add_der(&der("jpki_root")).unwrap();
        Trust {
            store,
            profile: Profile::new(ProfileConfig::default()),
            crl: crl(crl_name),
        }
    }

    fn check(&self) -> SignatureCheck<'_> {
        SignatureCheck::new(&self.store, &self.profile).with_revocation(self.crl.as_ref())
    }
}

fn consent(patient: &PatientId, id: &str, end: i64) -> ConsentRecord {
    let t = unix(now());
    ConsentRecord {
        id: RecordId::new(id).unwrap(),
        patient: patient.clone(),
        created: t,
        decision: ConsentDecision::Permit,
        scope: vec![Scope::Disclose],
        grantees: vec![FacilityId::new("jp.hospital-b").unwrap()],
        purposes: vec![ConsentPurpose::RemoteConsultation],
        categories: vec![DataCategory::PathologyImages],
        period: Period {
            start: t - 3600,
            end,
        },
        coverage: Coverage::AllLaterVisits,
        login: None,
    }
}

/// Until the cards expire (2026-12-31T23:59:59Z, exclusive end).
const CARD_END: i64 = 1_798_761_600;

fn signed_by(card: &KeyFileSigner, bytes: &[u8]) -> Vec<u8> {
    cms::sign_detached(bytes, card, unix(now())).unwrap()
}

fn request(patient: &PatientId) -> AccessRequest {
    AccessRequest {
        physician: Physician {
            id: "HPKI doctor".into(),
            roles: vec![Role::MedicalDoctor],
        },
        facility: FacilityId::new("jp.hospital-b").unwrap(),
        patient: patient.clone(),
        category: DataCategory::PathologyImages,
        purpose: ConsentPurpose::RemoteConsultation,
        action: Scope::Disclose,
        visit: None,
        patient_login: None,
    }
}

/// A ledger in a fresh directory holding consent `c1` by the old card.
fn granted(trust: &Trust) -> (tempfile::TempDir, Ledger) {
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path().join("consent.sqlite")).unwrap();
    let record = consent(&patient("old"), "c1", CARD_END);
    let bytes = record.canonical_bytes().unwrap();
    ledger
        .grant(
            &bytes,
            &signed_by(&card("old"), &bytes),
            &trust.check(),
            now(),
        )
        .unwrap();
    (dir, ledger)
}

fn revocation(by: &str, id: &str, revokes: &str, created: i64) -> (Vec<u8>, Vec<u8>) {
    let rev = ConsentRevocation {
        id: RecordId::new(id).unwrap(),
        patient: patient(by),
        created,
        revokes: RecordId::new(revokes).unwrap(),
    };
    let bytes = rev.canonical_bytes().unwrap();
    let blob = signed_by(&card(by), &bytes);
    (bytes, blob)
}

#[test]
fn grant_and_revoke_need_the_signers_revocation_status() {
    let trust = Trust::new("jpki_crl_none");
    let dir = tempfile::tempdir().unwrap();
    let mut ledger = Ledger::open(dir.path().join("consent.sqlite")).unwrap();
    let record = consent(&patient("old"), "c1", CARD_END);
    let bytes = record.canonical_bytes().unwrap();
    let blob = signed_by(&card("old"), &bytes);
    // No revocation source: refused.
    let unchecked = SignatureCheck::new(&trust.store, &trust.profile);
    let err = ledger.grant(&bytes, &blob, &unchecked, now()).unwrap_err();
    assert!(matches!(err, LedgerError::NoRevocationSource), "{err}");
    // The card's certificate revoked: refused.
    let revoked = Trust::new("jpki_crl_old_revoked");
    let err = ledger
        .grant(&bytes, &blob, &revoked.check(), now())
        .unwrap_err();
    assert!(err.to_string().contains("revoked"), "{err}");
    ledger.grant(&bytes, &blob, &trust.check(), now()).unwrap();
    let (rb, rc) = revocation("old", "r1", "c1", unix(now()));
    let err = ledger.revoke(&rb, &rc, &unchecked, now()).unwrap_err();
    assert!(matches!(err, LedgerError::NoRevocationSource), "{err}");
    // The workflow refuses before it opens the card.
    let mut audit = AuditLog::open(dir.path().join("audit.jsonl")).unwrap();
    let mut desk = Desk {
        ledger: &dir.path().join("consent.sqlite"),
        audit: &mut audit,
        salt: b"site salt",
        check: &unchecked,
    };
    let err = workflow::revoke(
        &mut desk,
        "card",
        || panic!("the card was opened"),
        &RecordId::new("c1").unwrap(),
        None,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(err, workflow::WorkflowError::NoRevocationSource),
        "{err}"
    );
}

#[test]
fn a_consent_never_outlives_its_signing_certificate() {
    // A record (its canonical JSON written by hand) whose period runs a
    // year past the card's notAfter, signed by OpenSSL with the card's key.
    let trust = Trust::new("jpki_crl_none");
    let dir = tempfile::tempdir().unwrap();
    let p = patient("old");
    let end = CARD_END + 365 * 86_400;
    let t = unix(now());
    let json = format!(
        "{{\"categories\":[\"pathology-images\"],\"coverage\":{{\"mode\":\"all-later-visits\"}},\
         \"created\":{t},\"decision\":\"permit\",\"grantees\":[\"jp.hospital-b\"],\"id\":\"c-long\",\
         \"patient\":\"{p}\",\"period\":{{\"end\":{end},\"start\":{}}},\
         \"purposes\":[\"remote-consultation\"],\"scope\":[\"disclose\"],\"type\":\"consent\"}}",
        t - 3600
    );
    let record = dir.path().join("record.json");
    std::fs::write(&record, &json).unwrap();
    let pem = |label: &str, der: &[u8]| med8k_auth::issue::pem(label, der);
    std::fs::write(
        dir.path().join("card.pem"),
        pem("CERTIFICATE", &der("card_old")),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("card.key"),
        pem("PRIVATE KEY", &der("card_old.key")),
    )
    .unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "cms",
            "-sign",
            "-binary",
            "-in",
            "record.json",
            "-signer",
            "card.pem",
            "-inkey",
            "card.key",
            "-md",
            "sha256",
            "-outform",
            "DER",
            "-out",
            "record.p7s",
        ])
        .output()
        .expect("openssl is needed: run scripts/setup-debian.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let blob = std::fs::read(dir.path().join("record.p7s")).unwrap();
    let mut ledger = Ledger::open(dir.path().join("consent.sqlite")).unwrap();
    let err = ledger
        .grant(json.as_bytes(), &blob, &trust.check(), now())
        .unwrap_err();
    assert!(
        matches!(err, LedgerError::OutlivesCertificate { end: e, .. } if e == end),
        "{err}"
    );
    // The same, ending with the card: stored, and OpenSSL's signature
    // verifies again when read.
    let json = json.replace(&end.to_string(), &CARD_END.to_string());
    std::fs::write(&record, &json).unwrap();
    let out = std::process::Command::new("openssl")
        .current_dir(dir.path())
        .args([
            "cms",
            "-sign",
            "-binary",
            "-in",
            "record.json",
            "-signer",
            "card.pem",
            "-inkey",
            "card.key",
            "-md",
            "sha256",
            "-outform",
            "DER",
            "-out",
            "record.p7s",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let blob = std::fs::read(dir.path().join("record.p7s")).unwrap();
    ledger
        .grant(json.as_bytes(), &blob, &trust.check(), now())
        .unwrap();
    assert_eq!(ledger.list(&p).unwrap().len(), 1);
}

#[test]
fn decide_checks_the_signer_again() {
    let trust = Trust::new("jpki_crl_none");
    let (_dir, ledger) = granted(&trust);
    let p = patient("old");
    let ledger = ledger.with_revocation(crl("jpki_crl_none"));
    assert!(matches!(
        ledger.decide(&request(&p), now()).unwrap(),
        Decision::Permit { .. }
    ));
    // The card's certificate is revoked after the grant.
    let ledger = ledger.with_revocation(crl("jpki_crl_old_revoked"));
    assert_eq!(
        ledger.decide(&request(&p), now()).unwrap(),
        Decision::Deny(DenyReason::Revoked)
    );
    // No current CRL: no decision.
    let late = UNIX_EPOCH + Duration::from_secs(1_790_000_000);
    assert!(matches!(
        ledger.decide(&request(&p), late),
        Err(LedgerError::Signer { .. })
    ));
    // After the certificate expired, the consent has too.
    let ledger =
        ledger.with_revocation(Arc::new(CrlFile::new()) as Arc<dyn Revocation + Send + Sync>);
    let after = UNIX_EPOCH + Duration::from_secs(CARD_END as u64 + 60);
    assert_eq!(
        ledger.decide(&request(&p), after).unwrap(),
        Decision::Deny(DenyReason::Expired)
    );
}

#[test]
fn a_renewed_card_revokes_the_old_cards_consents() {
    let trust = Trust::new("jpki_crl_none");
    let (_dir, mut ledger) = granted(&trust);
    // Another person's card cannot.
    let (rb, rc) = revocation("other", "r-other", "c1", unix(now()));
    let err = ledger.revoke(&rb, &rc, &trust.check(), now()).unwrap_err();
    assert!(matches!(err, LedgerError::OtherPatient { .. }), "{err}");
    // The same person's re-issued card (new key, new address) can.
    let (rb, rc) = revocation("renewed", "r-renewed", "c1", unix(now()));
    ledger.revoke(&rb, &rc, &trust.check(), now()).unwrap();
    assert_eq!(
        ledger.decide(&request(&patient("old")), now()).unwrap(),
        Decision::Deny(DenyReason::Revoked)
    );
}

#[test]
fn a_revocation_takes_effect_when_stored_if_dated_later() {
    let trust = Trust::new("jpki_crl_none");
    let (_dir, mut ledger) = granted(&trust);
    // Its signer dated it ten days ahead; it is stored now.
    let (rb, rc) = revocation("old", "r1", "c1", unix(now()) + 10 * 86_400);
    ledger.revoke(&rb, &rc, &trust.check(), now()).unwrap();
    let soon = now() + Duration::from_secs(3600);
    assert_eq!(
        ledger.decide(&request(&patient("old")), soon).unwrap(),
        Decision::Deny(DenyReason::Revoked)
    );
}

#[test]
fn the_facility_stops_a_consent_and_audits_it() {
    let trust = Trust::new("jpki_crl_none");
    let (dir, ledger) = granted(&trust);
    drop(ledger);
    let path = dir.path().join("consent.sqlite");
    let audit_path = dir.path().join("audit.jsonl");
    let mut audit = AuditLog::open(&audit_path).unwrap();
    let check = trust.check();
    let mut desk = Desk {
        ledger: &path,
        audit: &mut audit,
        salt: b"site salt",
        check: &check,
    };
    let c1 = RecordId::new("c1").unwrap();
    workflow::stop(&mut desk, "desk clerk 7", &c1, StopReason::CardLost, now()).unwrap();
    // Twice is refused, and audited as refused.
    assert!(workflow::stop(&mut desk, "desk clerk 7", &c1, StopReason::CardLost, now()).is_err());
    let ledger = Ledger::open(&path).unwrap();
    assert_eq!(
        ledger.decide(&request(&patient("old")), now()).unwrap(),
        Decision::Deny(DenyReason::Revoked)
    );
    let log = std::fs::read_to_string(&audit_path).unwrap();
    assert_eq!(log.matches("ConsentStopped").count(), 2, "{log}");
    assert!(log.contains("card-lost"), "{log}");
    assert!(!log.contains("desk clerk"), "{log}");
    assert_eq!(med8k_auth::audit::verify(&audit_path).unwrap().entries, 2);
}

#[test]
fn rows_written_outside_the_ledger_are_refused() {
    let trust = Trust::new("jpki_crl_none");
    let (dir, ledger) = granted(&trust);
    let p = patient("old");
    drop(ledger);
    // Someone who can write the file copies the consent's row with another
    // grantee and period: no key, no valid MAC.
    let path = dir.path().join("consent.sqlite");
    let conn = rusqlite::Connection::open(&path).unwrap();
    let (record, cms_blob, signer): (Vec<u8>, Vec<u8>, String) = conn
        .query_row("SELECT record, cms, signer FROM consents", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    let forged = String::from_utf8(record)
        .unwrap()
        .replace("\"c1\"", "\"c2\"")
        .replace("jp.hospital-b", "jp.hospital-x");
    conn.execute(
        "INSERT INTO consents (id, patient, holder, created, stored_at, record, cms, signer, mac)
         VALUES ('c2', ?1, 'x', 0, 0, ?2, ?3, ?4, ?5)",
        rusqlite::params![
            p.as_str(),
            forged.as_bytes(),
            cms_blob,
            signer,
            "0".repeat(64)
        ],
    )
    .unwrap();
    drop(conn);
    let ledger = Ledger::open(&path).unwrap();
    let err = ledger.list(&p).unwrap_err();
    assert!(matches!(err, LedgerError::Tampered { .. }), "{err}");
    let mut req = request(&p);
    req.facility = FacilityId::new("jp.hospital-x").unwrap();
    assert!(ledger.decide(&req, now()).is_err());
}

#[test]
fn no_patient_data_in_the_ledger_and_it_is_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let trust = Trust::new("jpki_crl_none");
    let (dir, ledger) = granted(&trust);
    let p = patient("old");
    assert_eq!(ledger.list(&p).unwrap().len(), 1);
    drop(ledger);
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.to_string_lossy().contains("consent.sqlite") {
            bytes.extend(std::fs::read(&path).unwrap());
            if !path.to_string_lossy().ends_with("-shm") {
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
            }
        }
    }
    for personal in ["山田 太郎", "東京都千代田区千代田1-1", "19800101"] {
        let needle = personal.as_bytes();
        assert!(
            !bytes.windows(needle.len()).any(|w| w == needle),
            "{personal} is in the ledger"
        );
    }
}
