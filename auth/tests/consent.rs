//! Consent: canonical records, detached CMS signatures by RSA "cards", the
//! ledger and the decision. Every certificate and key is made here.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Card, Kind, card, crl, jpki_store, now, profile, root, serial_of, sign_card, unix};
use med8k_auth::cert::{CertError, CrlFile, Purpose, Role};
use med8k_auth::consent::{
    AccessRequest, CmsError, ConsentDecision, ConsentPurpose, ConsentRecord, ConsentRevocation,
    ConsentState, Coverage, DataCategory, Decision, DenyReason, FacilityId, Ledger, LedgerError,
    PatientId, Period, Physician, RecordError, RecordId, Scope, SignatureCheck, SignedBody,
    VerifyError, VisitId, cms, decide, verify_record,
};
use med8k_auth::identity::{SignatureError, Signer};

// ---- builders ----

fn facility(s: &str) -> FacilityId {
    FacilityId::new(s).unwrap()
}

fn consent_for(patient: &PatientId, id: &str) -> ConsentRecord {
    let mut r = ConsentRecord {
        id: RecordId::new(id).unwrap(),
        patient: patient.clone(),
        created: unix(2026, 1, 1),
        decision: ConsentDecision::Permit,
        scope: vec![Scope::Disclose, Scope::Register],
        grantees: vec![facility("jp.hospital-b"), facility("jp.clinic-c")],
        purposes: vec![
            ConsentPurpose::RemoteConsultation,
            ConsentPurpose::Treatment,
        ],
        categories: vec![DataCategory::PathologyImages, DataCategory::EndoscopeVideo],
        period: Period {
            start: unix(2026, 1, 1),
            end: unix(2027, 1, 1),
        },
        coverage: Coverage::AllLaterVisits,
        login: None,
    };
    r.normalize();
    r
}

fn signed(card: &Card, record: &ConsentRecord) -> (Vec<u8>, Vec<u8>) {
    let bytes = record.canonical_bytes().unwrap();
    let blob = cms::sign_detached(&bytes, card, record.created).unwrap();
    (bytes, blob)
}

fn revocation(card: &Card, id: &str, of: &str, created: i64) -> (Vec<u8>, Vec<u8>) {
    let r = ConsentRevocation {
        id: RecordId::new(id).unwrap(),
        patient: patient_of(card),
        created,
        revokes: RecordId::new(of).unwrap(),
    };
    let bytes = r.canonical_bytes().unwrap();
    let blob = cms::sign_detached(&bytes, card, created).unwrap();
    (bytes, blob)
}

fn patient_of(card: &Card) -> PatientId {
    PatientId::from_signing_cert(card.certificate())
}

fn doctor() -> Physician {
    Physician {
        id: "HPKI doctor".into(),
        roles: vec![Role::MedicalDoctor],
    }
}

fn request(patient: &PatientId) -> AccessRequest {
    AccessRequest {
        physician: doctor(),
        facility: facility("jp.hospital-b"),
        patient: patient.clone(),
        category: DataCategory::EndoscopeVideo,
        purpose: ConsentPurpose::RemoteConsultation,
        action: Scope::Disclose,
        visit: None,
        patient_login: None,
    }
}

struct World {
    root: common::Ca,
    store: med8k_auth::cert::TrustStore,
    profile: med8k_auth::cert::Profile,
    /// The root's current CRL, revoking nothing.
    crl: CrlFile,
}

impl World {
    fn new() -> Self {
        let root = root("J-LIS test root");
        let mut crls = CrlFile::new();
        crls.add_der(&crl(&root, &[])).unwrap();
        World {
            store: jpki_store(&root),
            profile: profile(),
            crl: crls,
            root,
        }
    }

    fn check(&self) -> SignatureCheck<'_> {
        SignatureCheck::new(&self.store, &self.profile).with_revocation(&self.crl)
    }
}

// ---- canonical form ----

#[test]
fn canonical_round_trip() {
    let p = PatientId::parse("ab".repeat(32)).unwrap();
    let r = consent_for(&p, "c-1");
    let bytes = r.canonical_bytes().unwrap();
    let text = std::str::from_utf8(&bytes).unwrap();
    assert!(
        text.starts_with(r#"{"categories":["endoscope-video","pathology-images"],"coverage":{"mode":"all-later-visits"},"created":1767225600,"decision":"permit","grantees":["jp.clinic-c","jp.hospital-b"],"id":"c-1","#),
        "{text}"
    );
    assert!(text.ends_with(r#""type":"consent"}"#), "{text}");
    assert_eq!(
        SignedBody::parse(&bytes).unwrap(),
        SignedBody::Consent(r.clone())
    );
    // The same record always gives the same bytes.
    assert_eq!(r.clone().canonical_bytes().unwrap(), bytes);

    let mut v = r.clone();
    v.coverage = Coverage::PerVisit(VisitId::new("visit-2026-0001").unwrap());
    let vb = v.canonical_bytes().unwrap();
    assert!(
        std::str::from_utf8(&vb)
            .unwrap()
            .contains(r#""coverage":{"mode":"per-visit","visit":"visit-2026-0001"}"#)
    );
    assert_eq!(SignedBody::parse(&vb).unwrap(), SignedBody::Consent(v));

    // The bound card is a member in its sorted place; absent when unbound.
    assert!(!text.contains("login"), "{text}");
    let mut l = r.clone();
    l.login = Some(PatientId::parse("cd".repeat(32)).unwrap());
    let lb = l.canonical_bytes().unwrap();
    let lt = std::str::from_utf8(&lb).unwrap();
    assert!(
        lt.contains(&format!(
            r#""id":"c-1","login":"{}","patient""#,
            "cd".repeat(32)
        )),
        "{lt}"
    );
    assert_eq!(SignedBody::parse(&lb).unwrap(), SignedBody::Consent(l));

    let rev = ConsentRevocation {
        id: RecordId::new("r-1").unwrap(),
        patient: p,
        created: 5,
        revokes: RecordId::new("c-1").unwrap(),
    };
    let rb = rev.canonical_bytes().unwrap();
    assert_eq!(SignedBody::parse(&rb).unwrap(), SignedBody::Revocation(rev));
}

#[test]
fn non_canonical_refused() {
    let p = PatientId::parse("cd".repeat(32)).unwrap();
    let bytes = consent_for(&p, "c-1").canonical_bytes().unwrap();
    let text = String::from_utf8(bytes.clone()).unwrap();
    let variants = [
        format!("{text}\n"),
        format!(" {text}"),
        text.replacen(":[", ": [", 1),
        // Keys out of order.
        text.replacen(r#"{"categories""#, r#"{"zz":1,"categories""#, 1),
        // A duplicate key.
        text.replacen(r#""id":"c-1""#, r#""id":"c-1","id":"c-1""#, 1),
        // A float.
        text.replacen(r#""created":1767225600"#, r#""created":1767225600.0"#, 1),
        text.replacen(r#""created":1767225600"#, r#""created":1.7672256e9"#, 1),
        // An escape that is not needed.
        text.replacen(r#""id":"c-1""#, r#""id":"\u0063-1""#, 1),
    ];
    for v in &variants {
        assert_ne!(v.as_bytes(), bytes.as_slice());
        assert!(SignedBody::parse(v.as_bytes()).is_err(), "accepted {v}");
    }
    // Canonical JSON, but not a valid record.
    let unsorted = text.replacen(
        r#"["jp.clinic-c","jp.hospital-b"]"#,
        r#"["jp.hospital-b","jp.clinic-c"]"#,
        1,
    );
    assert!(matches!(
        SignedBody::parse(unsorted.as_bytes()),
        Err(RecordError::Invalid {
            field: "grantees",
            ..
        })
    ));
    let unknown = text.replacen(r#""type":"consent""#, r#""type":"consent","x":1"#, 1);
    assert!(matches!(
        SignedBody::parse(unknown.as_bytes()),
        Err(RecordError::Malformed(_))
    ));
    let other_type = text.replacen(r#""type":"consent""#, r#""type":"contract""#, 1);
    assert!(matches!(
        SignedBody::parse(other_type.as_bytes()),
        Err(RecordError::UnknownType(_))
    ));
    assert!(SignedBody::parse(b"").is_err());
    assert!(SignedBody::parse(b"[]").is_err());
    assert!(SignedBody::parse(&vec![b' '; 70_000]).is_err());

    let mut empty_period = consent_for(&p, "c-1");
    empty_period.period.end = empty_period.period.start;
    assert!(empty_period.canonical_bytes().is_err());
    assert!(RecordId::new("bad id with spaces").is_err());
    assert!(PatientId::parse("AB".repeat(32)).is_err());
}

// ---- signatures ----

#[test]
fn sign_then_verify() {
    let w = World::new();
    let alice = sign_card(&w.root, 0);
    let r = consent_for(&patient_of(&alice), "c-1");
    let (bytes, blob) = signed(&alice, &r);
    let body = verify_record(&bytes, &blob, &w.check(), now()).unwrap();
    assert_eq!(body, SignedBody::Consent(r.clone()));

    let sig = cms::verify_detached(&blob, &bytes, &w.check(), now()).unwrap();
    assert_eq!(sig.patient, patient_of(&alice));
    assert_eq!(sig.signing_time, Some(r.created));
    let parsed = cms::parse(&blob).unwrap();
    assert_eq!(parsed.signer_certificate(), Some(alice.certificate()));
    // Debug output never shows the certificate.
    assert!(!format!("{parsed:?}{sig:?}").contains("JPKI test"));
}

#[test]
fn tampered_record_refused() {
    let w = World::new();
    let alice = sign_card(&w.root, 0);
    let r = consent_for(&patient_of(&alice), "c-1");
    let (_, blob) = signed(&alice, &r);
    let mut longer = r.clone();
    longer.period.end = unix(2036, 1, 1);
    let tampered = longer.canonical_bytes().unwrap();
    assert_eq!(
        verify_record(&tampered, &blob, &w.check(), now()),
        Err(VerifyError::Signature(CmsError::DigestMismatch))
    );
}

#[test]
fn tampered_cms_refused() {
    let w = World::new();
    let alice = sign_card(&w.root, 0);
    let r = consent_for(&patient_of(&alice), "c-1");
    let (bytes, blob) = signed(&alice, &r);
    // Last byte: inside the signature value.
    let mut bad = blob.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(
        verify_record(&bytes, &bad, &w.check(), now()),
        Err(VerifyError::Signature(CmsError::Signature(
            SignatureError::Mismatch
        )))
    );
    // The messageDigest changed to another record's: the signature breaks.
    let digest = med8k_auth::identity::sha256(&bytes);
    let pos = blob.windows(32).position(|w| w == digest).unwrap();
    let mut other = consent_for(&patient_of(&alice), "c-2");
    other.created += 1;
    let other_bytes = other.canonical_bytes().unwrap();
    let mut swapped = blob.clone();
    swapped[pos..pos + 32].copy_from_slice(&med8k_auth::identity::sha256(&other_bytes));
    assert!(matches!(
        verify_record(&other_bytes, &swapped, &w.check(), now()),
        Err(VerifyError::Signature(CmsError::Signature(_)))
    ));
}

#[test]
fn jpki_auth_certificate_cannot_sign_consent() {
    let w = World::new();
    let auth = card(&w.root, 1, Kind::Auth, (2025, 1, 1), (2030, 1, 1));
    let r = consent_for(&patient_of(&auth), "c-1");
    let (bytes, blob) = signed(&auth, &r);
    match verify_record(&bytes, &blob, &w.check(), now()) {
        Err(VerifyError::Signature(CmsError::Certificate(CertError::Policy {
            purpose: Purpose::JpkiSign,
            needed,
            ..
        }))) => assert_eq!(needed, med8k_auth::cert::JPKI_SIGN_POLICY),
        other => panic!("expected a policy refusal, got {other:?}"),
    }
}

#[test]
fn expired_signer_refused() {
    let w = World::new();
    let old = card(&w.root, 0, Kind::Sign, (2020, 6, 1), (2025, 12, 31));
    let r = consent_for(&patient_of(&old), "c-1");
    let (bytes, blob) = signed(&old, &r);
    assert!(matches!(
        verify_record(&bytes, &blob, &w.check(), now()),
        Err(VerifyError::Signature(CmsError::Certificate(
            CertError::Expired { .. }
        )))
    ));
}

#[test]
fn unknown_ca_and_other_patient_refused() {
    let w = World::new();
    let stranger_root = root("not J-LIS");
    let mallory = sign_card(&stranger_root, 2);
    let r = consent_for(&patient_of(&mallory), "c-1");
    let (bytes, blob) = signed(&mallory, &r);
    assert!(matches!(
        verify_record(&bytes, &blob, &w.check(), now()),
        Err(VerifyError::Signature(CmsError::Certificate(
            CertError::UnknownIssuer { .. }
        )))
    ));

    // Alice signs a record naming Bob.
    let alice = sign_card(&w.root, 0);
    let bob = sign_card(&w.root, 2);
    let r = consent_for(&patient_of(&bob), "c-1");
    let (bytes, blob) = signed(&alice, &r);
    assert!(matches!(
        verify_record(&bytes, &blob, &w.check(), now()),
        Err(VerifyError::OtherPatient { .. })
    ));
}

#[test]
fn revoked_signer_certificate_refused() {
    let w = World::new();
    let alice = sign_card(&w.root, 0);
    let bob = sign_card(&w.root, 2);
    let mut crls = CrlFile::new();
    crls.add_der(&crl(&w.root, &[serial_of(2)])).unwrap();
    let check = w.check().with_revocation(&crls);

    let (bytes, blob) = signed(&alice, &consent_for(&patient_of(&alice), "c-1"));
    assert!(verify_record(&bytes, &blob, &check, now()).is_ok());
    let (bytes, blob) = signed(&bob, &consent_for(&patient_of(&bob), "c-2"));
    assert!(matches!(
        verify_record(&bytes, &blob, &check, now()),
        Err(VerifyError::Signature(CmsError::Certificate(
            CertError::Revoked { .. }
        )))
    ));
    // Without a CRL in force, the status is unknown and the signer refused.
    assert!(matches!(
        verify_record(&bytes, &blob, &check, common::at(2026, 8, 1)),
        Err(VerifyError::Signature(CmsError::Certificate(
            CertError::RevocationUnknown { .. }
        )))
    ));
}

/// `openssl cms -verify` of a detached signature; `None` without openssl.
fn openssl_verify(
    dir: &std::path::Path,
    root_der: &[u8],
    content: &[u8],
    sig: &[u8],
) -> Option<bool> {
    let write = |name: &str, data: &[u8]| {
        let p = dir.join(name);
        std::fs::write(&p, data).unwrap();
        p.display().to_string()
    };
    let (root, content, sig) = (
        write("root.der", root_der),
        write("record.json", content),
        write("record.p7s", sig),
    );
    let root_pem = dir.join("root.pem").display().to_string();
    let out = dir.join("out").display().to_string();
    let run = |args: &[&str]| std::process::Command::new("openssl").args(args).output();
    let conv = run(&["x509", "-inform", "DER", "-in", &root, "-out", &root_pem]).ok()?;
    assert!(conv.status.success(), "{conv:?}");
    // -purpose any: the leaf has nonRepudiation only, as a JPKI signing
    // certificate does.
    let attime = unix(2026, 6, 1).to_string();
    let verified = run(&[
        "cms", "-verify", "-binary", "-inform", "DER", "-in", &sig, "-content", &content,
        "-CAfile", &root_pem, "-purpose", "any", "-attime", &attime, "-out", &out,
    ])
    .ok()?;
    Some(verified.status.success())
}

/// OpenSSL, an independent CMS implementation, verifies what we sign, and
/// refuses it over other bytes.
#[test]
fn openssl_verifies_our_signature() {
    let w = World::new();
    let alice = sign_card(&w.root, 0);
    let (bytes, blob) = signed(&alice, &consent_for(&patient_of(&alice), "c-1"));
    let dir = tempfile::tempdir().unwrap();
    let Some(ok) = openssl_verify(dir.path(), &w.root.der, &bytes, &blob) else {
        eprintln!("SKIPPED: openssl not found, CMS interoperability not checked");
        return;
    };
    assert!(ok, "openssl refused our signature");
    let mut other = bytes.clone();
    other[2] ^= 1;
    assert_eq!(
        openssl_verify(dir.path(), &w.root.der, &other, &blob),
        Some(false)
    );
}

/// Deterministic xorshift for the fuzz loop.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn hostile_cms_blobs_never_panic() {
    let w = World::new();
    let alice = sign_card(&w.root, 0);
    let r = consent_for(&patient_of(&alice), "c-1");
    let (bytes, blob) = signed(&alice, &r);
    let mut tried = 0;
    // Every truncation.
    for n in 0..blob.len() {
        assert!(cms::verify_detached(&blob[..n], &bytes, &w.check(), now()).is_err());
        tried += 1;
    }
    // Bit flips: every byte of the first 200 (the structure), then random.
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for i in 0..600 {
        let pos = if i < 200 {
            i
        } else {
            (xorshift(&mut seed) % blob.len() as u64) as usize
        };
        let mut bad = blob.clone();
        bad[pos] ^= 1 << (xorshift(&mut seed) % 8);
        assert!(
            cms::verify_detached(&bad, &bytes, &w.check(), now()).is_err(),
            "flip at {pos} accepted"
        );
        tried += 1;
    }
    // Random garbage and hostile lengths.
    for len in [0usize, 1, 2, 5, 64, 1000] {
        let junk: Vec<u8> = (0..len).map(|_| xorshift(&mut seed) as u8).collect();
        assert!(cms::parse(&junk).is_err());
    }
    for hostile in [
        &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff][..],
        &[0x30, 0x80, 0x00, 0x00],
        &[0x30, 0x81, 0x05, 0x06, 0x00],
        &[0x3f, 0x01, 0x00],
    ] {
        assert!(cms::parse(hostile).is_err());
    }
    assert!(matches!(
        cms::parse(&vec![0u8; cms::MAX_CMS_BYTES + 1]),
        Err(CmsError::TooLarge { .. })
    ));
    assert!(tried > 300, "only {tried} hostile blobs");
}

// ---- the decision (pure) ----

fn state(record: ConsentRecord, revoked_at: Option<i64>) -> ConsentState {
    ConsentState { record, revoked_at }
}

#[test]
fn decide_each_reason() {
    let p = PatientId::parse("12".repeat(32)).unwrap();
    let c = consent_for(&p, "c-1");
    let t = unix(2026, 6, 1);
    let permit = Decision::Permit {
        consent_id: RecordId::new("c-1").unwrap(),
    };
    let consents = [state(c.clone(), None)];
    assert_eq!(decide(&request(&p), t, &consents), permit);

    let mut req = request(&p);
    req.facility = facility("jp.hospital-x");
    assert_eq!(
        decide(&req, t, &consents),
        Decision::Deny(DenyReason::OtherFacility)
    );
    let mut req = request(&p);
    req.purpose = ConsentPurpose::Research;
    assert_eq!(
        decide(&req, t, &consents),
        Decision::Deny(DenyReason::OtherPurpose)
    );
    let mut req = request(&p);
    req.category = DataCategory::VisitHistory;
    assert_eq!(
        decide(&req, t, &consents),
        Decision::Deny(DenyReason::CategoryNotCovered)
    );
    assert_eq!(
        decide(&request(&p), unix(2027, 1, 1), &consents),
        Decision::Deny(DenyReason::Expired)
    );
    assert_eq!(
        decide(&request(&p), unix(2025, 12, 31), &consents),
        Decision::Deny(DenyReason::NotYetValid)
    );
    let revoked = [state(c.clone(), Some(unix(2026, 3, 1)))];
    assert_eq!(
        decide(&request(&p), t, &revoked),
        Decision::Deny(DenyReason::Revoked)
    );
    // Before the revocation it still permitted.
    assert_eq!(decide(&request(&p), unix(2026, 2, 1), &revoked), permit);

    let mut req = request(&p);
    req.physician.roles = vec![Role::Pharmacist];
    assert_eq!(
        decide(&req, t, &consents),
        Decision::Deny(DenyReason::RoleNotAllowed)
    );
    req.physician.roles = vec![Role::Pharmacist, Role::Dentist];
    assert_eq!(decide(&req, t, &consents), permit);

    let other = PatientId::parse("34".repeat(32)).unwrap();
    assert_eq!(
        decide(&request(&other), t, &consents),
        Decision::Deny(DenyReason::NoConsent)
    );
    assert_eq!(
        decide(&request(&p), t, &[]),
        Decision::Deny(DenyReason::NoConsent)
    );

    // Per visit.
    let mut v = c.clone();
    v.coverage = Coverage::PerVisit(VisitId::new("v-7").unwrap());
    let per_visit = [state(v, None)];
    assert_eq!(
        decide(&request(&p), t, &per_visit),
        Decision::Deny(DenyReason::VisitMismatch)
    );
    let mut req = request(&p);
    req.visit = Some(VisitId::new("v-7").unwrap());
    assert_eq!(decide(&req, t, &per_visit), permit);
    req.visit = Some(VisitId::new("v-8").unwrap());
    assert_eq!(
        decide(&req, t, &per_visit),
        Decision::Deny(DenyReason::VisitMismatch)
    );

    // A matching deny wins over the permit.
    let mut d = consent_for(&p, "d-1");
    d.decision = ConsentDecision::Deny;
    let with_deny = [state(c.clone(), None), state(d, None)];
    assert_eq!(
        decide(&request(&p), t, &with_deny),
        Decision::Deny(DenyReason::DecisionDeny)
    );

    // Register-only consent does not cover disclosure.
    let mut reg = c.clone();
    reg.scope = vec![Scope::Register];
    assert_eq!(
        decide(&request(&p), t, &[state(reg, None)]),
        Decision::Deny(DenyReason::NoConsent)
    );

    // With the patient logged in beside the physician, only a consent that
    // names that card matches.
    let card = PatientId::parse("ab".repeat(32)).unwrap();
    let other_card = PatientId::parse("cd".repeat(32)).unwrap();
    let mut bound = c.clone();
    bound.login = Some(card.clone());
    let bound = [state(bound, None)];
    let mut req = request(&p);
    req.patient_login = Some(card.clone());
    assert_eq!(decide(&req, t, &bound), permit);
    req.patient_login = Some(other_card);
    assert_eq!(
        decide(&req, t, &bound),
        Decision::Deny(DenyReason::LoginNotBound)
    );
    req.patient_login = Some(card);
    assert_eq!(
        decide(&req, t, &consents),
        Decision::Deny(DenyReason::LoginNotBound),
        "a consent naming no card does not stand for a logged-in patient"
    );
    assert_eq!(decide(&request(&p), t, &bound), permit, "no login asked");

    // The newest matching permit is named.
    let mut newer = consent_for(&p, "c-2");
    newer.created += 10;
    assert_eq!(
        decide(&request(&p), t, &[state(c, None), state(newer, None)]),
        Decision::Permit {
            consent_id: RecordId::new("c-2").unwrap()
        }
    );
}

// ---- the ledger ----

#[test]
fn ledger_grant_list_revoke_decide() {
    let w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("consent.db");
    let alice = sign_card(&w.root, 0);
    let p = patient_of(&alice);
    let mut ledger = Ledger::open(&path).unwrap();

    let (bytes, blob) = signed(&alice, &consent_for(&p, "c-1"));
    ledger.grant(&bytes, &blob, &w.check(), now()).unwrap();
    assert_eq!(ledger.list(&p).unwrap().len(), 1);
    let stored = ledger.get(&RecordId::new("c-1").unwrap()).unwrap().unwrap();
    // Stored without the certificate (it holds the patient's name).
    assert_eq!(
        (stored.record, stored.cms),
        (bytes.clone(), cms::without_certificates(&blob).unwrap())
    );

    let t = unix(2026, 6, 1);
    let b = facility("jp.hospital-b");
    let in_force = |l: &Ledger, f: &FacilityId, purpose, at| {
        l.in_force(&p, f, purpose, DataCategory::EndoscopeVideo, at)
            .unwrap()
            .len()
    };
    assert_eq!(in_force(&ledger, &b, ConsentPurpose::Treatment, t), 1);
    assert_eq!(in_force(&ledger, &b, ConsentPurpose::Research, t), 0);
    assert_eq!(
        in_force(&ledger, &facility("jp.x"), ConsentPurpose::Treatment, t),
        0
    );
    assert_eq!(
        in_force(&ledger, &b, ConsentPurpose::Treatment, unix(2027, 2, 1)),
        0
    );

    let permit = Decision::Permit {
        consent_id: RecordId::new("c-1").unwrap(),
    };
    assert_eq!(ledger.decide(&request(&p), now()).unwrap(), permit);
    let mut req = request(&p);
    req.facility = facility("jp.hospital-x");
    assert_eq!(
        ledger.decide(&req, now()).unwrap(),
        Decision::Deny(DenyReason::OtherFacility)
    );
    let mut req = request(&p);
    req.purpose = ConsentPurpose::Research;
    assert_eq!(
        ledger.decide(&req, now()).unwrap(),
        Decision::Deny(DenyReason::OtherPurpose)
    );
    let mut req = request(&p);
    req.physician.roles = vec![Role::Pharmacist];
    assert_eq!(
        ledger.decide(&req, now()).unwrap(),
        Decision::Deny(DenyReason::RoleNotAllowed)
    );
    assert_eq!(
        ledger.decide(&request(&p), common::at(2027, 3, 1)).unwrap(),
        Decision::Deny(DenyReason::Expired)
    );

    // Revoke, then reopen: the data and the revocation are kept.
    let (rb, rs) = revocation(&alice, "r-1", "c-1", unix(2026, 5, 1));
    ledger.revoke(&rb, &rs, &w.check(), now()).unwrap();
    assert_eq!(
        ledger.decide(&request(&p), now()).unwrap(),
        Decision::Deny(DenyReason::Revoked)
    );
    assert_eq!(in_force(&ledger, &b, ConsentPurpose::Treatment, t), 0);
    drop(ledger);

    let mut ledger = Ledger::open(&path).unwrap();
    let list = ledger.list(&p).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].revoked_at, Some(unix(2026, 5, 1)));
    assert_eq!(
        ledger.decide(&request(&p), now()).unwrap(),
        Decision::Deny(DenyReason::Revoked)
    );
    assert!(matches!(
        ledger.revoke(&rb, &rs, &w.check(), now()),
        Err(LedgerError::AlreadyRevoked(_))
    ));
}

#[test]
fn ledger_refuses_bad_input_and_keeps_data() {
    let w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let alice = sign_card(&w.root, 0);
    let bob = sign_card(&w.root, 2);
    let p = patient_of(&alice);
    let mut ledger = Ledger::open(dir.path().join("l.db")).unwrap();
    let (bytes, blob) = signed(&alice, &consent_for(&p, "c-1"));
    ledger.grant(&bytes, &blob, &w.check(), now()).unwrap();

    // Tampered, duplicate, wrong kind, auth certificate: nothing stored.
    let mut bad = blob.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert!(matches!(
        ledger.grant(&bytes, &bad, &w.check(), now()),
        Err(LedgerError::Refused(_))
    ));
    assert!(matches!(
        ledger.grant(&bytes, &blob, &w.check(), now()),
        Err(LedgerError::DuplicateId(_))
    ));
    let (rb, rs) = revocation(&alice, "r-1", "c-1", unix(2026, 5, 1));
    assert!(matches!(
        ledger.grant(&rb, &rs, &w.check(), now()),
        Err(LedgerError::WrongKind { .. })
    ));
    let auth = card(&w.root, 1, Kind::Auth, (2025, 1, 1), (2030, 1, 1));
    let (ab, asig) = signed(&auth, &consent_for(&patient_of(&auth), "c-9"));
    assert!(matches!(
        ledger.grant(&ab, &asig, &w.check(), now()),
        Err(LedgerError::Refused(_))
    ));
    assert!(ledger.list(&patient_of(&auth)).unwrap().is_empty());
    for n in [0, 10, blob.len() / 2] {
        assert!(ledger.grant(&bytes, &blob[..n], &w.check(), now()).is_err());
    }

    // Revocations: of an unknown consent, by another patient.
    let (ub, us) = revocation(&alice, "r-2", "c-404", unix(2026, 5, 1));
    assert!(matches!(
        ledger.revoke(&ub, &us, &w.check(), now()),
        Err(LedgerError::UnknownConsent(_))
    ));
    let (bb, bs) = revocation(&bob, "r-3", "c-1", unix(2026, 5, 1));
    assert!(matches!(
        ledger.revoke(&bb, &bs, &w.check(), now()),
        Err(LedgerError::OtherPatient { .. })
    ));

    let list = ledger.list(&p).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].revoked_at, None);
}

#[test]
fn ledger_is_append_only() {
    let w = World::new();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("l.db");
    let alice = sign_card(&w.root, 0);
    let p = patient_of(&alice);
    {
        let mut ledger = Ledger::open(&path).unwrap();
        let (bytes, blob) = signed(&alice, &consent_for(&p, "c-1"));
        ledger.grant(&bytes, &blob, &w.check(), now()).unwrap();
        let (rb, rs) = revocation(&alice, "r-1", "c-1", unix(2026, 5, 1));
        ledger.revoke(&rb, &rs, &w.check(), now()).unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    for sql in [
        "UPDATE consents SET patient = 'x'",
        "DELETE FROM consents",
        "UPDATE revocations SET created = 0",
        "DELETE FROM revocations",
    ] {
        let err = conn.execute(sql, []).unwrap_err();
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    drop(conn);
    let ledger = Ledger::open(&path).unwrap();
    let list = ledger.list(&p).unwrap();
    assert_eq!(list.len(), 1);
    assert!(list[0].revoked_at.is_some());
}

#[test]
fn not_a_ledger_refused() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    let junk: Vec<u8> = (0..8192u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&garbage, &junk).unwrap();
    let err = Ledger::open(&garbage).unwrap_err();
    assert!(matches!(err, LedgerError::NotALedger { .. }), "{err}");
    assert!(err.to_string().contains("not a consent ledger"), "{err}");
    // The file was not touched.
    assert_eq!(std::fs::read(&garbage).unwrap(), junk);

    let other = dir.path().join("other.db");
    let conn = rusqlite::Connection::open(&other).unwrap();
    conn.execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    drop(conn);
    assert!(matches!(
        Ledger::open(&other),
        Err(LedgerError::NotALedger { .. })
    ));

    // An empty file becomes a ledger.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").unwrap();
    assert!(Ledger::open(&empty).is_ok());
}
