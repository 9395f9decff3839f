//! Certificate checks, with every certificate generated here by rcgen.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use med8k_auth::cert::{
    CertError, CrlFetcher, CrlFile, HC_ROLE_ISO17090, JPKI_AUTH_POLICY, JPKI_SIGN_POLICY,
    ParsedCert, PolicyRule, Profile, ProfileConfig, Purpose, Revocation, Role, StoreKind,
    TrustStore, crl_urls, hc_roles, verify_chain,
};
use med8k_auth::issue;
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose,
    RevokedCertParams, SerialNumber, date_time_ymd,
};

// ---- the extensions rcgen does not build, from med8k_auth::issue ----

fn arcs(dotted: &str) -> Vec<u64> {
    issue::oid_arcs(dotted).unwrap()
}

fn policies_ext(oids: &[&str]) -> CustomExtension {
    issue::policies_ext(oids).unwrap()
}

/// hcRole HCActor with codedData [0] EXPLICIT CodedData { [0] scheme,
/// [1] codeDataValue, [2] codeDataFreeText }.
fn hc_actor(value: Option<&str>, free_text: Option<&str>) -> Vec<u8> {
    issue::hc_actor(value, free_text).unwrap()
}

fn sda_content(actors: &[Vec<u8>]) -> Vec<u8> {
    issue::sda_content(actors).unwrap()
}

fn sda_ext(actors: &[Vec<u8>]) -> CustomExtension {
    issue::sda_ext(actors).unwrap()
}

// ---- a small PKI ----

const HPKI_SIGN_POLICY: &str = issue::DEMO_HPKI_SIGN_POLICY;
const HPKI_AUTH_POLICY: &str = issue::DEMO_HPKI_AUTH_POLICY;

fn at(y: i32, m: u8, d: u8) -> SystemTime {
    let t = date_time_ymd(y, m, d).unix_timestamp();
    UNIX_EPOCH + Duration::from_secs(t as u64)
}

fn now() -> SystemTime {
    at(2026, 6, 1)
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
}

fn ca(cn: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    p.not_before = date_time_ymd(2020, 1, 1);
    p.not_after = date_time_ymd(2035, 1, 1);
    let cert = p.self_signed(&key).unwrap();
    Ca {
        der: cert.der().to_vec(),
        issuer: Issuer::new(p, key),
    }
}

fn intermediate(cn: &str, parent: &Ca) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(cn);
    p.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    // The HPKI policies hold on every CA of the path.
    p.custom_extensions = vec![policies_ext(&[HPKI_SIGN_POLICY, HPKI_AUTH_POLICY])];
    p.not_before = date_time_ymd(2021, 1, 1);
    p.not_after = date_time_ymd(2034, 1, 1);
    let cert = p.signed_by(&key, &parent.issuer).unwrap();
    Ca {
        der: cert.der().to_vec(),
        issuer: Issuer::new(p, key),
    }
}

struct Leaf {
    cn: &'static str,
    serial: u64,
    usages: Vec<KeyUsagePurpose>,
    exts: Vec<CustomExtension>,
    from: (i32, u8, u8),
    to: (i32, u8, u8),
}

impl Leaf {
    fn new(cn: &'static str, usages: Vec<KeyUsagePurpose>, exts: Vec<CustomExtension>) -> Self {
        Leaf {
            cn,
            serial: 1000,
            usages,
            exts,
            from: (2025, 1, 1),
            to: (2030, 1, 1),
        }
    }

    fn issue(self, by: &Ca) -> Vec<u8> {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(self.cn);
        p.serial_number = Some(SerialNumber::from(self.serial));
        p.key_usages = self.usages;
        p.custom_extensions = self.exts;
        p.not_before = date_time_ymd(self.from.0, self.from.1, self.from.2);
        p.not_after = date_time_ymd(self.to.0, self.to.1, self.to.2);
        p.signed_by(&key, &by.issuer).unwrap().der().to_vec()
    }
}

fn sign_usage() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::ContentCommitment]
}

fn auth_usage() -> Vec<KeyUsagePurpose> {
    vec![KeyUsagePurpose::DigitalSignature]
}

fn store(kind: StoreKind, anchor: &Ca) -> TrustStore {
    let mut s = TrustStore::new(kind);
    s.add_der(&anchor.der).unwrap();
    s
}

fn profile() -> Profile {
    let mut c = ProfileConfig::default();
    c.policies.insert(
        Purpose::HpkiSign,
        PolicyRule::AnyOf(vec![HPKI_SIGN_POLICY.into()]),
    );
    c.policies.insert(
        Purpose::HpkiAuth,
        PolicyRule::AnyOf(vec![HPKI_AUTH_POLICY.into()]),
    );
    Profile::new(c)
}

fn jpki_sign_leaf(root: &Ca) -> Vec<u8> {
    Leaf::new(
        "JPKI sign",
        sign_usage(),
        vec![policies_ext(&[JPKI_SIGN_POLICY])],
    )
    .issue(root)
}

fn jpki_auth_leaf(root: &Ca) -> Vec<u8> {
    Leaf::new(
        "JPKI auth",
        auth_usage(),
        vec![policies_ext(&[JPKI_AUTH_POLICY])],
    )
    .issue(root)
}

fn hpki_leaf(by: &Ca, policy: &str, actors: &[Vec<u8>]) -> Vec<u8> {
    let mut exts = vec![policies_ext(&[policy])];
    if !actors.is_empty() {
        exts.push(sda_ext(actors));
    }
    Leaf::new(
        "HPKI doctor",
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ],
        exts,
    )
    .issue(by)
}

fn doctor() -> Vec<u8> {
    hc_actor(Some("Medical Doctor"), None)
}

// ---- accepted ----

#[test]
fn good_chain_every_purpose() {
    let p = profile();
    let jroot = ca("J-LIS test root");
    let jstore = store(StoreKind::Jpki, &jroot);
    for (leaf, purpose) in [
        (jpki_sign_leaf(&jroot), Purpose::JpkiSign),
        (jpki_auth_leaf(&jroot), Purpose::JpkiAuth),
    ] {
        let chain = verify_chain(&leaf, &[], &jstore, purpose, now()).unwrap();
        assert_eq!(chain.certs().len(), 2);
        p.check(&chain).unwrap();
    }

    let hroot = ca("HPKI test root");
    let hsub = intermediate("HPKI test sub CA", &hroot);
    let hstore = store(StoreKind::Hpki, &hroot);
    for (policy, purpose) in [
        (HPKI_SIGN_POLICY, Purpose::HpkiSign),
        (HPKI_AUTH_POLICY, Purpose::HpkiAuth),
    ] {
        let leaf = hpki_leaf(&hsub, policy, &[doctor()]);
        let chain = verify_chain(&leaf, &[&hsub.der], &hstore, purpose, now()).unwrap();
        assert_eq!(chain.certs().len(), 3);
        p.check(&chain).unwrap();
        assert_eq!(
            p.require_role(chain.leaf(), &[Role::MedicalDoctor])
                .unwrap(),
            Role::MedicalDoctor
        );
    }

    let froot = ca("Facility CA");
    let fstore = store(StoreKind::Facility, &froot);
    let leaf = Leaf::new("viewer-01", auth_usage(), vec![]).issue(&froot);
    let chain = verify_chain(&leaf, &[], &fstore, Purpose::Facility, now()).unwrap();
    p.check(&chain).unwrap();
}

#[test]
fn anchors_load_from_pem() {
    let root = ca("PEM root");
    let pem = issue::pem("CERTIFICATE", &root.der);
    let mut s = TrustStore::new(StoreKind::Jpki);
    assert_eq!(s.add_pem(pem.as_bytes()).unwrap(), 1);
    verify_chain(&jpki_sign_leaf(&root), &[], &s, Purpose::JpkiSign, now()).unwrap();
}

#[test]
fn role_from_free_text_accepted() {
    let root = ca("HPKI root");
    let leaf = hpki_leaf(
        &root,
        HPKI_AUTH_POLICY,
        &[hc_actor(None, Some("Medical Doctor"))],
    );
    let chain = verify_chain(
        &leaf,
        &[],
        &store(StoreKind::Hpki, &root),
        Purpose::HpkiAuth,
        now(),
    )
    .unwrap();
    assert_eq!(
        hc_roles(chain.leaf(), HC_ROLE_ISO17090).unwrap(),
        ["Medical Doctor"]
    );
    profile()
        .require_role(chain.leaf(), &[Role::MedicalDoctor])
        .unwrap();
}

// ---- refused: stage one ----

#[test]
fn expired_refused() {
    let root = ca("J-LIS root");
    let mut l = Leaf::new("old", sign_usage(), vec![policies_ext(&[JPKI_SIGN_POLICY])]);
    l.from = (2020, 1, 1);
    l.to = (2025, 1, 1);
    let err = verify_chain(
        &l.issue(&root),
        &[],
        &store(StoreKind::Jpki, &root),
        Purpose::JpkiSign,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CertError::Expired { subject, .. } if subject.contains("old")),
        "{err}"
    );
}

#[test]
fn not_yet_valid_refused() {
    let root = ca("J-LIS root");
    let mut l = Leaf::new(
        "future",
        sign_usage(),
        vec![policies_ext(&[JPKI_SIGN_POLICY])],
    );
    l.from = (2027, 1, 1);
    let err = verify_chain(
        &l.issue(&root),
        &[],
        &store(StoreKind::Jpki, &root),
        Purpose::JpkiSign,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, CertError::NotYetValid { .. }), "{err}");
    // The anchor's own validity counts too.
    let err = verify_chain(
        &jpki_sign_leaf(&root),
        &[],
        &store(StoreKind::Jpki, &root),
        Purpose::JpkiSign,
        at(2036, 1, 1),
    )
    .unwrap_err();
    assert!(matches!(err, CertError::Expired { .. }), "{err}");
}

#[test]
fn unknown_ca_refused() {
    let trusted = ca("J-LIS root");
    let rogue = ca("Rogue root");
    let err = verify_chain(
        &jpki_sign_leaf(&rogue),
        &[],
        &store(StoreKind::Jpki, &trusted),
        Purpose::JpkiSign,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CertError::UnknownIssuer { issuer, .. } if issuer.contains("Rogue")),
        "{err}"
    );
}

#[test]
fn same_name_different_key_is_bad_signature() {
    let trusted = ca("J-LIS root");
    let impostor = ca("J-LIS root");
    let err = verify_chain(
        &jpki_sign_leaf(&impostor),
        &[],
        &store(StoreKind::Jpki, &trusted),
        Purpose::JpkiSign,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, CertError::BadSignature { .. }), "{err}");
}

#[test]
fn tampered_signature_refused() {
    let root = ca("J-LIS root");
    let mut leaf = jpki_sign_leaf(&root);
    let last = leaf.len() - 1;
    leaf[last] ^= 0x01;
    let err = verify_chain(
        &leaf,
        &[],
        &store(StoreKind::Jpki, &root),
        Purpose::JpkiSign,
        now(),
    )
    .unwrap_err();
    assert!(matches!(err, CertError::BadSignature { .. }), "{err}");
}

#[test]
fn leaf_as_issuer_is_not_a_ca() {
    let root = ca("Facility CA");
    let fake_ca_key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn("not a CA");
    p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    p.is_ca = IsCa::ExplicitNoCa;
    let der = p
        .signed_by(&fake_ca_key, &root.issuer)
        .unwrap()
        .der()
        .to_vec();
    let fake = Ca {
        der,
        issuer: Issuer::new(p, fake_ca_key),
    };
    let leaf = Leaf::new("victim", auth_usage(), vec![]).issue(&fake);
    let err = verify_chain(
        &leaf,
        &[&fake.der],
        &store(StoreKind::Facility, &root),
        Purpose::Facility,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CertError::NotCa { subject, .. } if subject.contains("not a CA")),
        "{err}"
    );
}

#[test]
fn key_usage_and_store_mismatch_refused() {
    let root = ca("J-LIS root");
    let s = store(StoreKind::Jpki, &root);
    // Signing usage only: not an authentication certificate.
    let leaf = Leaf::new(
        "sign only",
        sign_usage(),
        vec![policies_ext(&[JPKI_AUTH_POLICY])],
    )
    .issue(&root);
    let err = verify_chain(&leaf, &[], &s, Purpose::JpkiAuth, now()).unwrap_err();
    assert!(matches!(err, CertError::KeyUsage { .. }), "{err}");
    // A JPKI store cannot vouch for an HPKI purpose.
    let err = verify_chain(&jpki_auth_leaf(&root), &[], &s, Purpose::HpkiAuth, now()).unwrap_err();
    assert!(matches!(err, CertError::WrongStore { .. }), "{err}");
}

// ---- refused: revocation ----

fn crl(by: &Ca, revoked: &[u64]) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: date_time_ymd(2026, 5, 1),
        next_update: date_time_ymd(2026, 7, 1),
        crl_number: SerialNumber::from(7u64),
        issuing_distribution_point: None,
        revoked_certs: revoked
            .iter()
            .map(|&s| RevokedCertParams {
                serial_number: SerialNumber::from(s),
                revocation_time: date_time_ymd(2026, 5, 15),
                reason_code: None,
                invalidity_date: None,
            })
            .collect(),
        key_identifier_method: KeyIdMethod::Sha256,
    }
    .signed_by(&by.issuer)
    .unwrap()
    .der()
    .to_vec()
}

#[test]
fn revoked_by_crl_refused() {
    let root = ca("J-LIS root");
    let s = store(StoreKind::Jpki, &root);
    let mut bad = Leaf::new(
        "revoked",
        sign_usage(),
        vec![policies_ext(&[JPKI_SIGN_POLICY])],
    );
    bad.serial = 666;
    let bad = verify_chain(&bad.issue(&root), &[], &s, Purpose::JpkiSign, now()).unwrap();
    let good = verify_chain(&jpki_sign_leaf(&root), &[], &s, Purpose::JpkiSign, now()).unwrap();

    let mut crls = CrlFile::new();
    crls.add_der(&crl(&root, &[666, 12345])).unwrap();
    let err = crls.check_chain(&bad, now()).unwrap_err();
    assert!(
        matches!(&err, CertError::Revoked { subject, .. } if subject.contains("revoked")),
        "{err}"
    );
    crls.check_chain(&good, now()).unwrap();
    // Before the revocation date the certificate was still good.
    crls.check_chain(&bad, at(2026, 5, 10)).unwrap();
    // A stale CRL does not answer.
    let err = crls.check_chain(&good, at(2026, 8, 1)).unwrap_err();
    assert!(matches!(err, CertError::RevocationUnknown { .. }), "{err}");
}

#[test]
fn crl_signed_by_impostor_does_not_answer() {
    let root = ca("J-LIS root");
    let impostor = ca("J-LIS root");
    let chain = verify_chain(
        &jpki_sign_leaf(&root),
        &[],
        &store(StoreKind::Jpki, &root),
        Purpose::JpkiSign,
        now(),
    )
    .unwrap();
    let mut crls = CrlFile::new();
    crls.add_der(&crl(&impostor, &[])).unwrap();
    let err = crls.check_chain(&chain, now()).unwrap_err();
    assert!(matches!(err, CertError::RevocationUnknown { .. }), "{err}");
    assert!(CrlFile::new().check_chain(&chain, now()).is_err());
}

// ---- refused: stage two ----

#[test]
fn missing_hc_role_refused() {
    let root = ca("HPKI root");
    let leaf = hpki_leaf(&root, HPKI_AUTH_POLICY, &[]);
    let chain = verify_chain(
        &leaf,
        &[],
        &store(StoreKind::Hpki, &root),
        Purpose::HpkiAuth,
        now(),
    )
    .unwrap();
    let p = profile();
    assert!(matches!(
        p.check(&chain),
        Err(CertError::MissingRole { .. })
    ));
    assert!(matches!(
        p.require_role(chain.leaf(), &[Role::MedicalDoctor]),
        Err(CertError::MissingRole { .. })
    ));
}

#[test]
fn pharmacist_where_doctor_required_refused() {
    let root = ca("HPKI root");
    let leaf = hpki_leaf(
        &root,
        HPKI_AUTH_POLICY,
        &[hc_actor(Some("Pharmacist"), Some("薬剤師"))],
    );
    let chain = verify_chain(
        &leaf,
        &[],
        &store(StoreKind::Hpki, &root),
        Purpose::HpkiAuth,
        now(),
    )
    .unwrap();
    let p = profile();
    p.check(&chain).unwrap();
    assert_eq!(p.roles(chain.leaf()).unwrap(), [Role::Pharmacist]);
    let err = p
        .require_role(chain.leaf(), &[Role::MedicalDoctor])
        .unwrap_err();
    assert!(
        matches!(&err, CertError::RoleNotAllowed { held, .. } if held.contains("Pharmacist")),
        "{err}"
    );
    assert_eq!(
        p.require_role(chain.leaf(), &[Role::Pharmacist, Role::MedicalDoctor])
            .unwrap(),
        Role::Pharmacist
    );
}

#[test]
fn jpki_auth_certificate_cannot_sign_consent() {
    let root = ca("J-LIS root");
    // Give the auth certificate nonRepudiation too, so only the policy tells.
    let leaf = Leaf::new(
        "JPKI auth",
        vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::ContentCommitment,
        ],
        vec![policies_ext(&[JPKI_AUTH_POLICY])],
    )
    .issue(&root);
    let chain = verify_chain(
        &leaf,
        &[],
        &store(StoreKind::Jpki, &root),
        Purpose::JpkiSign,
        now(),
    )
    .unwrap();
    let err = profile().check(&chain).unwrap_err();
    assert!(
        matches!(&err, CertError::Policy { purpose: Purpose::JpkiSign, needed, .. } if needed == JPKI_SIGN_POLICY),
        "{err}"
    );
}

#[test]
fn hpki_without_configured_policy_fails_closed() {
    let root = ca("HPKI root");
    let leaf = hpki_leaf(&root, HPKI_AUTH_POLICY, &[doctor()]);
    let chain = verify_chain(
        &leaf,
        &[],
        &store(StoreKind::Hpki, &root),
        Purpose::HpkiAuth,
        now(),
    )
    .unwrap();
    let p = Profile::new(ProfileConfig::default());
    assert!(matches!(p.check(&chain), Err(CertError::Policy { .. })));
}

// ---- hostile input ----

#[test]
fn hostile_der_errors_never_panic() {
    let root = ca("HPKI root");
    let s = store(StoreKind::Hpki, &root);
    let leaf = hpki_leaf(&root, HPKI_AUTH_POLICY, &[doctor()]);

    // Random bytes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for len in [0usize, 1, 2, 17, 300, 2000] {
        let junk: Vec<u8> = (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert!(verify_chain(&junk, &[], &s, Purpose::HpkiAuth, now()).is_err());
        assert!(ParsedCert::from_der(&junk).is_err());
        assert!(TrustStore::new(StoreKind::Hpki).add_der(&junk).is_err());
        assert!(CrlFile::new().add_der(&junk).is_err());
    }

    // Every truncation and every single-byte flip: errors or (for bytes the
    // signature does not cover meaningfully) some answer, never a panic.
    let p = profile();
    let mut parsed_mutants = 0;
    for cut in 0..leaf.len() {
        assert!(verify_chain(&leaf[..cut], &[], &s, Purpose::HpkiAuth, now()).is_err());
    }
    for i in 0..leaf.len() {
        let mut m = leaf.clone();
        m[i] ^= 0xff;
        let _ = verify_chain(&m, &[], &s, Purpose::HpkiAuth, now());
        if let Ok(c) = ParsedCert::from_der(&m) {
            parsed_mutants += 1;
            let _ = hc_roles(&c, HC_ROLE_ISO17090);
            let _ = p.require_role(&c, &[Role::MedicalDoctor]);
        }
    }
    // The mutants reach the profile decoders, not only the parser.
    assert!(parsed_mutants > leaf.len() / 4, "{parsed_mutants}");
}

#[test]
fn truncated_hc_role_extension_is_an_error() {
    let root = ca("HPKI root");
    let full = sda_content(&[doctor()]);
    let mut checked = 0;
    for cut in [1, 5, full.len() / 2, full.len() - 1] {
        let mut bad = full[..cut].to_vec();
        // Keep the outer length claiming the full size.
        if bad.len() > 1 {
            bad[1] = (full.len() - 2) as u8;
        }
        let ext = CustomExtension::from_oid_content(&arcs("2.5.29.9"), bad);
        let leaf = Leaf::new(
            "broken",
            auth_usage(),
            vec![policies_ext(&[HPKI_AUTH_POLICY]), ext],
        )
        .issue(&root);
        let Ok(c) = ParsedCert::from_der(&leaf) else {
            continue;
        };
        assert!(
            matches!(hc_roles(&c, HC_ROLE_ISO17090), Err(CertError::Parse { .. })),
            "cut {cut}"
        );
        assert!(profile().require_role(&c, &[Role::MedicalDoctor]).is_err());
        checked += 1;
    }
    assert!(checked > 0, "x509-parser refused every truncated extension");
}

#[test]
fn crl_urls_listed_for_a_fetcher() {
    let root = ca("J-LIS root");
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn("with CRL DP");
    p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec!["http://crl.example.invalid/jpki.crl".into()],
    }];
    let der = p.signed_by(&key, &root.issuer).unwrap().der().to_vec();
    let c = ParsedCert::from_der(&der).unwrap();
    assert_eq!(
        crl_urls(&c).unwrap(),
        ["http://crl.example.invalid/jpki.crl"]
    );
    let none = ParsedCert::from_der(&jpki_sign_leaf(&root)).unwrap();
    assert!(crl_urls(&none).unwrap().is_empty());
}

#[test]
fn unknown_critical_extension_refused() {
    let root = ca("Facility CA");
    let mut ext = CustomExtension::from_oid_content(&arcs("1.3.6.1.4.1.99999.1"), vec![0x05, 0x00]);
    ext.set_criticality(true);
    let leaf = Leaf::new("odd", auth_usage(), vec![ext]).issue(&root);
    let err = verify_chain(
        &leaf,
        &[],
        &store(StoreKind::Facility, &root),
        Purpose::Facility,
        now(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, CertError::UnknownCriticalExtension { oid, .. } if oid == "1.3.6.1.4.1.99999.1"),
        "{err}"
    );
}

#[test]
fn a_certificate_rewrapped_outside_its_signature_is_refused() {
    // The issuer's signature covers only the TBS; the outer layer must be
    // DER too, or the same signed certificate would have other bytes (and
    // another pseudonym).
    let root = ca("JPKI Root");
    let der = jpki_sign_leaf(&root);
    assert!(ParsedCert::from_der(&der).is_ok());
    // Outer SEQUENCE header, then the TBS, then signatureAlgorithm.
    let header = |at: usize| -> (usize, usize) {
        let first = der[at + 1] as usize;
        if first < 0x80 {
            (2, first)
        } else {
            let n = first & 0x7f;
            let len = der[at + 2..at + 2 + n]
                .iter()
                .fold(0usize, |a, &b| (a << 8) | b as usize);
            (2 + n, len)
        }
    };
    let (outer, _) = header(0);
    let (tbs_header, tbs_len) = header(outer);
    let alg = outer + tbs_header + tbs_len;
    assert_eq!(der[alg], 0x30);
    for tag in [0xb0u8, 0x31, 0x10] {
        let mut bad = der.clone();
        bad[alg] = tag;
        assert!(
            matches!(ParsedCert::from_der(&bad), Err(CertError::Parse { .. })),
            "tag {tag:#x} accepted"
        );
    }
    // The signature BIT STRING's unused-bits octet, and every bit of the
    // outer algorithm: none is covered by the signature, none may change.
    let (alg_header, alg_len) = header(alg);
    let sig = alg + alg_header + alg_len;
    assert_eq!(der[sig], 0x03);
    let (sig_header, _) = header(sig);
    for (at, bit) in (alg..sig)
        .flat_map(|i| (0..8).map(move |b| (i, b)))
        .chain((0..8).map(|b| (sig + sig_header, b)))
    {
        let mut bad = der.clone();
        bad[at] ^= 1 << bit;
        assert!(
            ParsedCert::from_der(&bad).is_err(),
            "bit {bit} of byte {at} flipped and still accepted"
        );
    }
}

/// Serves `answers` (status line and body) to one request each on
/// loopback; returns the base URL and how many requests came.
fn crl_server(answers: Vec<(&'static str, Vec<u8>)>) -> (String, std::thread::JoinHandle<usize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = std::thread::spawn(move || {
        let mut n = 0;
        for (status, body) in answers {
            let (mut s, _) = listener.accept().unwrap();
            let mut req = [0u8; 1024];
            let got = s.read(&mut req).unwrap();
            assert!(req[..got].starts_with(b"GET /j.crl HTTP/1.1\r\n"));
            let head = format!(
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(&body).unwrap();
            n += 1;
        }
        n
    });
    (base, served)
}

fn leaf_with_crl_point(root: &Ca, serial: u64, url: &str) -> Vec<u8> {
    let key = KeyPair::generate().unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn("with a CRL point");
    p.serial_number = Some(SerialNumber::from(serial));
    p.key_usages = sign_usage();
    p.custom_extensions = vec![policies_ext(&[JPKI_SIGN_POLICY])];
    p.not_before = date_time_ymd(2025, 1, 1);
    p.not_after = date_time_ymd(2030, 1, 1);
    p.crl_distribution_points = vec![rcgen::CrlDistributionPoint {
        uris: vec![url.to_owned()],
    }];
    p.signed_by(&key, &root.issuer).unwrap().der().to_vec()
}

#[test]
fn crls_are_fetched_from_the_certificates_crl_point() {
    let root = ca("J-LIS root");
    let s = store(StoreKind::Jpki, &root);
    // One fetch serves both checks: the CRL is kept until its nextUpdate.
    let (base, served) = crl_server(vec![("200 OK", crl(&root, &[666]))]);
    let url = format!("{base}/j.crl");
    let fetcher = CrlFetcher::new();
    let bad = verify_chain(
        &leaf_with_crl_point(&root, 666, &url),
        &[],
        &s,
        Purpose::JpkiSign,
        now(),
    )
    .unwrap();
    let good = verify_chain(
        &leaf_with_crl_point(&root, 7, &url),
        &[],
        &s,
        Purpose::JpkiSign,
        now(),
    )
    .unwrap();
    let err = fetcher.check_chain(&bad, now()).unwrap_err();
    assert!(matches!(err, CertError::Revoked { .. }), "{err}");
    fetcher.check_chain(&good, now()).unwrap();
    assert_eq!(served.join().unwrap(), 1);

    // A point that answers 404, and one where nothing listens: unknown, refused.
    let (base, served) = crl_server(vec![("404 Not Found", Vec::new())]);
    let missing = verify_chain(
        &leaf_with_crl_point(&root, 8, &format!("{base}/j.crl")),
        &[],
        &s,
        Purpose::JpkiSign,
        now(),
    )
    .unwrap();
    let err = CrlFetcher::new().check_chain(&missing, now()).unwrap_err();
    assert!(
        matches!(&err, CertError::RevocationUnknown { reason, .. } if reason.contains("404")),
        "{err}"
    );
    served.join().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/j.crl", closed.local_addr().unwrap());
    drop(closed);
    let nobody = verify_chain(
        &leaf_with_crl_point(&root, 9, &dead),
        &[],
        &s,
        Purpose::JpkiSign,
        now(),
    )
    .unwrap();
    let err = CrlFetcher::new()
        .with_timeout(Duration::from_secs(2))
        .check_chain(&nobody, now())
        .unwrap_err();
    assert!(matches!(err, CertError::RevocationUnknown { .. }), "{err}");
}
