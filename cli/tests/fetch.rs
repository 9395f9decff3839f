//! `med8k serve` with the consent gate and `med8k fetch`: the real binary,
//! the demo PKI of `med8k pki demo-init` on SoftHSM2 tokens, consent signed
//! on the patient's token and kept in the ledger the gate reads (scenario 3
//! of the pilot: a physician at hospital B opens a patient's images held by
//! hospital A, the patient present at B).
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;
#[path = "../../auth/tests/softhsm/mod.rs"]
mod softhsm;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use common::{Serve, assert_one_line_error, command, med8k, spawn_first_line, stderr, stdout};
use med8k_auth::cert::{CrlFile, Profile, StoreKind, TrustStore, pem_blocks};
use med8k_auth::consent::{
    ConsentDecision, ConsentPurpose, ConsentRecord, ConsentRevocation, Coverage, DataCategory,
    FacilityId, Ledger, PatientId, Period, RecordId, Scope, SignatureCheck, cms,
};
use med8k_auth::identity::pkcs11::SOFTHSM2_MODULE;
use med8k_auth::identity::{Module, Signer};
use med8k_auth::issue::{DEMO_HPKI_AUTH_POLICY, DemoPki};

const A: &str = "jp.hospital-a";
const B: &str = "jp.hospital-b";
/// The demo PINs `pki demo-init` writes (they must never be printed).
const PINS: [&str; 3] = ["1111", "2222", "3333"];

fn softhsm_installed() -> bool {
    // SoftHSM2 stands in for the cards: scripts/setup-debian.sh installs
    // it, and these tests must not pass without it.
    assert!(
        Path::new(SOFTHSM2_MODULE).exists(),
        "SoftHSM2 is not installed: run scripts/setup-debian.sh"
    );
    true
}

/// The holding site A (consent gate) and the requesting site B, with the
/// demo PKI's facility certificates.
fn sites(dir: &Path) {
    let a = format!(
        "[site]\nid = \"{A}\"\nname = \"Hospital A\"\n\n[tls]\n\
         cert = \"pki/facility/{A}.crt.pem\"\nkey = \"pki/facility/{A}.key.pem\"\n\
         roots = [\"pki/ca/facility.pem\"]\nallowed = [\"{B}\"]\n\
         crl = [\"pki/crl/facility.crl.pem\"]\n\n\
         [link]\ndeadline_ms = 1000\n\n\
         [gate]\nkind = \"consent\"\nledger = \"a/consent.sqlite\"\naudit = \"a/audit.jsonl\"\n\
         hpki_roots = [\"pki/ca/hpki.pem\"]\nhpki_policies = [\"{DEMO_HPKI_AUTH_POLICY}\"]\n\
         jpki_roots = [\"pki/ca/jpki.pem\"]\nrequire_patient = true\n\
         crl = [\"pki/crl/hpki.crl.pem\", \"pki/crl/jpki.crl.pem\"]\n"
    );
    std::fs::write(dir.join("site-a.toml"), a).unwrap();
    let b = format!(
        "[site]\nid = \"{B}\"\nname = \"Hospital B\"\n\n[tls]\n\
         cert = \"pki/facility/{B}.crt.pem\"\nkey = \"pki/facility/{B}.key.pem\"\n\
         roots = [\"pki/ca/facility.pem\"]\nallowed = [\"{A}\"]\n\
         crl = [\"pki/crl/facility.crl.pem\"]\n\n[link]\ndeadline_ms = 1000\n"
    );
    std::fs::write(dir.join("site-b.toml"), b).unwrap();
}

/// The patient's pseudonym: the hash of their JPKI signing certificate.
fn patient(dir: &Path) -> PatientId {
    let pem = std::fs::read(dir.join("pki/certs/med8k-patient-sign.pem")).unwrap();
    PatientId::from_signing_cert(&pem_blocks(&pem, "CERTIFICATE").unwrap()[0])
}

/// The patient's card as the consent names it: the pseudonym of their JPKI
/// authentication certificate.
fn login(dir: &Path) -> PatientId {
    let pem = std::fs::read(dir.join("pki/certs/med8k-patient-auth.pem")).unwrap();
    PatientId::of_cert(&pem_blocks(&pem, "CERTIFICATE").unwrap()[0])
}

/// The patient's card: the JPKI signing key on their token (and the module
/// it needs loaded).
struct Card {
    _module: Arc<Module>,
    signer: Arc<dyn Signer>,
}

/// (In the test's own process, whose SoftHSM2 configuration is the demo
/// PKI's: see [`softhsm::isolated_in`].)
fn card() -> Card {
    let module = Module::open(Path::new(SOFTHSM2_MODULE)).unwrap();
    let session = module.login("med8k-patient", "1111").unwrap();
    let signer: Arc<dyn Signer> = Arc::new(session.signer(&[1]).unwrap());
    Card {
        _module: module,
        signer,
    }
}

fn unix_now() -> (SystemTime, i64) {
    let now = SystemTime::now();
    let t = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    (now, t)
}

fn check_with<T>(dir: &Path, f: impl FnOnce(&SignatureCheck<'_>) -> T) -> T {
    let mut store = TrustStore::new(StoreKind::Jpki);
    store
        .add_pem(&std::fs::read(dir.join("pki/ca/jpki.pem")).unwrap())
        .unwrap();
    let profile = Profile::new(DemoPki::profile_config());
    let mut crls = CrlFile::new();
    crls.add_file(&dir.join("pki/crl/jpki.crl.pem")).unwrap();
    f(&SignatureCheck::new(&store, &profile).with_revocation(&crls))
}

/// The patient revokes the consent of [`grant`] on their token.
fn revoke(dir: &Path, card: &Card) {
    let (now, t) = unix_now();
    let rev = ConsentRevocation {
        id: RecordId::new("revocation-fetch-1").unwrap(),
        patient: patient(dir),
        created: t,
        revokes: RecordId::new("consent-fetch-1").unwrap(),
    };
    let bytes = rev.canonical_bytes().unwrap();
    let blob = cms::sign_detached(&bytes, card.signer.as_ref(), t).unwrap();
    check_with(dir, |check| {
        Ledger::open(dir.join("a/consent.sqlite"))
            .unwrap()
            .revoke(&bytes, &blob, check, now)
            .unwrap();
    });
}

/// The patient signs consent on their token: disclose pathology images to
/// hospital B for remote consultation.
fn grant(dir: &Path, card: &Card) {
    let signer = &card.signer;
    let now = SystemTime::now();
    let t = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let record = ConsentRecord {
        id: RecordId::new("consent-fetch-1").unwrap(),
        patient: patient(dir),
        created: t,
        decision: ConsentDecision::Permit,
        scope: vec![Scope::Register, Scope::Disclose],
        grantees: vec![FacilityId::new(B).unwrap()],
        purposes: vec![ConsentPurpose::RemoteConsultation],
        categories: vec![DataCategory::PathologyImages],
        period: Period {
            start: t - 3600,
            end: t + 86_400,
        },
        coverage: Coverage::AllLaterVisits,
        login: Some(login(dir)),
    };
    let bytes = record.canonical_bytes().unwrap();
    let blob = cms::sign_detached(&bytes, signer.as_ref(), t).unwrap();
    check_with(dir, |check| {
        Ledger::open(dir.join("a/consent.sqlite"))
            .unwrap()
            .grant(&bytes, &blob, check, now)
            .unwrap();
    });
}

fn fetch(dir: &Path, addr: &str, physician: &str, patient: &PatientId, out: &str) -> Output {
    fetch_command(dir, addr, physician, patient, out)
        .output()
        .unwrap()
}

fn fetch_command(
    dir: &Path,
    addr: &str,
    physician: &str,
    patient: &PatientId,
    out: &str,
) -> Command {
    command(
        dir,
        &[
            "fetch",
            "--from",
            addr,
            "--config",
            "site-b.toml",
            "--pki",
            "pki",
            "--physician-token",
            physician,
            "--patient-token",
            "med8k-patient",
            "--patient",
            patient.as_str(),
            "--category",
            "pathology-images",
            "--purpose",
            "remote-consultation",
            "--out",
            out,
        ],
    )
}

/// Nothing a run printed holds a PIN or the patient's pseudonym.
fn assert_nothing_secret(o: &Output, patient: &PatientId) {
    let all = format!("{}{}", stdout(o), stderr(o));
    assert!(!all.contains(patient.as_str()), "{all}");
    for pin in PINS {
        assert!(!all.contains(&format!("pin {pin}")), "{all}");
        assert!(!all.contains(&format!("\"{pin}\"")), "{all}");
    }
}

#[test]
fn fetch_through_the_consent_gate() {
    if !softhsm_installed() {
        return;
    }
    softhsm::isolated_in(
        "fetch_through_the_consent_gate",
        "pki/softhsm2.conf",
        fetch_through_the_consent_gate_in,
    );
}

fn fetch_through_the_consent_gate_in(dir: &Path) {
    let o = med8k(dir, &["pki", "demo-init", "--out", "pki"]);
    assert!(o.status.success(), "{}", stderr(&o));
    sites(dir);
    common::generate_samples(dir, "256x144", 6);
    let patient = patient(dir);

    let card = card();
    let serve = Serve::start(
        dir,
        "127.0.0.1:0",
        "site-a.toml",
        &[
            "--source",
            "samples",
            "--source-patient",
            patient.as_str(),
            "--source-category",
            "pathology-images",
            "--fps",
            "60",
            "--links",
            "3",
        ],
    );

    // No consent yet: refused before any media, and told nothing more than
    // where the reason is kept.
    let o = fetch(dir, &serve.addr, "med8k-physician", &patient, "none");
    assert_one_line_error(&o, &["refused by jp.hospital-a", "audit entry"]);
    assert!(!stderr(&o).contains("consent"), "{}", stderr(&o));
    assert!(!stdout(&o).contains("permitted"), "{}", stdout(&o));
    assert!(!dir.join("none").join(format!("{A}.m8ks")).exists());
    assert_nothing_secret(&o, &patient);

    // The patient consents; the Medical Doctor, with the patient present,
    // receives the images.
    grant(dir, &card);
    let o = fetch(dir, &serve.addr, "med8k-physician", &patient, "recv");
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.starts_with("permitted\n"), "{text}");
    assert!(text.contains("6 frame(s)"), "{text}");
    assert!(text.contains("0 lost"), "{text}");
    let received = dir.join("recv").join(format!("{A}.m8ks"));
    let o = med8k(
        dir,
        &[
            "codec",
            "decode",
            "--in",
            received.to_str().unwrap(),
            "--out",
            "recv/frames.raw",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_nothing_secret(&o, &patient);

    // A Pharmacist may not open pathology images.
    let o = fetch(dir, &serve.addr, "med8k-pharmacist", &patient, "pharmacist");
    assert_one_line_error(&o, &["refused by jp.hospital-a", "audit entry"]);
    assert!(!stdout(&o).contains("permitted"));
    assert_nothing_secret(&o, &patient);

    let served = serve.wait(Duration::from_secs(20));
    let text = stdout(&served);
    assert!(served.status.success(), "{text}{}", stderr(&served));
    assert!(text.contains("6 frame(s), "), "{text}");
    assert!(text.contains("sent from the source"), "{text}");
    assert_eq!(text.matches("Denied(Other)").count(), 2, "{text}");
    assert_nothing_secret(&served, &patient);

    // Every decision is in A's audit log, which verifies, without the
    // patient's pseudonym in clear; the salt file was made.
    let audit = dir.join("a/audit.jsonl");
    let o = med8k(dir, &["audit", "verify", "--log", audit.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let log = std::fs::read_to_string(&audit).unwrap();
    assert!(!log.contains(patient.as_str()));
    assert!(log.contains("AccessPermitted") && log.contains("AccessDenied"));
    // The reasons are here, not at the peer.
    assert!(log.contains("consent: NoConsent"), "{log}");
    assert!(
        log.contains("physician login refused: role not accepted"),
        "{log}"
    );
    assert!(dir.join("a/audit.jsonl.salt").is_file());

    a_revoked_consent_closes_the_session(dir, &card, &patient);

    // PINs from the environment: an unset variable and a wrong PIN are one
    // line each, and the PIN is not echoed.
    let mut c = fetch_command(dir, "127.0.0.1:9", "med8k-physician", &patient, "x");
    let o = c
        .args(["--pin-env", "MED8K_TEST_NO_SUCH_PIN"])
        .output()
        .unwrap();
    assert_one_line_error(&o, &["--pin-env MED8K_TEST_NO_SUCH_PIN", "not set"]);
    let mut c = fetch_command(dir, "127.0.0.1:9", "med8k-physician", &patient, "x");
    let o = c
        .args(["--pin-env", "MED8K_TEST_PIN"])
        .env("MED8K_TEST_PIN", "987654")
        .output()
        .unwrap();
    assert_one_line_error(&o, &["med8k-physician"]);
    assert!(!stderr(&o).contains("987654"), "{}", stderr(&o));
}

/// The patient revokes during a session: it closes, and fetch says why.
/// (Part of the one test: the process loads one SoftHSM2 configuration.)
fn a_revoked_consent_closes_the_session(dir: &Path, card: &Card, patient: &PatientId) {
    // Six frames at 2 per second: a session of three seconds.
    let serve = Serve::start(
        dir,
        "127.0.0.1:0",
        "site-a.toml",
        &[
            "--source",
            "samples",
            "--source-patient",
            patient.as_str(),
            "--source-category",
            "pathology-images",
            "--fps",
            "2",
            "--links",
            "1",
        ],
    );

    let (child, line) = spawn_first_line(fetch_command(
        dir,
        &serve.addr,
        "med8k-physician",
        patient,
        "recv2",
    ));
    assert_eq!(line, "permitted\n");
    // Revoke once a frame has been stored (a coded frame is larger than the
    // sequence's buffer, so it reaches the file), not after a fixed wait.
    let stored = dir.join("recv2/jp.hospital-a.m8ks");
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::fs::metadata(&stored).map_or(0, |m| m.len()) <= 5 {
        assert!(Instant::now() < deadline, "no frame stored in 20 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let revoked = Instant::now();
    revoke(dir, card);
    let o = child.wait_with_output().unwrap();
    let took = revoked.elapsed();
    assert_one_line_error(&o, &["closed by jp.hospital-a", "consent revoked"]);
    assert!(took < Duration::from_secs(3), "took {took:?}");
    let text = stdout(&o);
    let frames: u64 = text
        .split(" frame(s)")
        .next()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| panic!("{text}"));
    assert!(frames > 0 && frames < 6, "{text}");
    assert_nothing_secret(&o, patient);

    let served = serve.wait(Duration::from_secs(20));
    let text = stdout(&served);
    assert!(text.contains("ConsentRevoked"), "{text}");
    assert!(
        stderr(&served).contains("consent revoked"),
        "{}",
        stderr(&served)
    );
}
