//! Login by challenge and signature: a patient with a JPKI authentication
//! key and a physician with an HPKI one, on real SoftHSM2 tokens (key files
//! where the token adds nothing), against certificates issued here.
#![allow(clippy::unwrap_used)]

mod softhsm;

use std::time::{Duration, SystemTime};

use med8k_auth::cert::{CertError, CrlFile, Profile, Purpose, Role, StoreKind, TrustStore};
use med8k_auth::identity::keyfile::{generate_rsa_key, spki_of};
use med8k_auth::identity::{KeyFileSigner, Signer};
use med8k_auth::issue::{DemoPki, LeafKind, RevokedEntry};
use med8k_auth::login::{LoginConfig, LoginError, LoginVerifier, respond};

use softhsm::{softhsm, softhsm_test};

const SO_PIN: &str = "so-pin-1234";
const PIN: &str = "user-pin-1234";
const SITE: &str = "jp.hospital-a";

fn t0() -> SystemTime {
    SystemTime::now()
}

fn nonce(n: u8) -> [u8; 32] {
    [n; 32]
}

struct World {
    pki: DemoPki,
}

impl World {
    fn new() -> Self {
        World {
            pki: DemoPki::new(t0(), 2).unwrap(),
        }
    }

    fn verifier(&self) -> LoginVerifier {
        let mut jpki = TrustStore::new(StoreKind::Jpki);
        jpki.add_der(self.pki.jpki.der()).unwrap();
        let mut hpki = TrustStore::new(StoreKind::Hpki);
        hpki.add_der(self.pki.hpki_root.der()).unwrap();
        LoginVerifier::new(
            LoginConfig::new(SITE),
            Profile::new(DemoPki::profile_config()),
        )
        .with_trust(jpki)
        .with_trust(hpki)
    }

    /// A token labelled `label` with an RSA key generated on it, certified
    /// as `kind`.
    fn token_signer(&self, label: &str, kind: LeafKind, serial: u64) -> Option<impl Signer> {
        let m = softhsm();
        m.init_token(label, SO_PIN, PIN).unwrap();
        let s = m.login(label, PIN).unwrap();
        let spki = s.generate_rsa_key_pair(&[1], "key", 2048).unwrap();
        let der = self.pki.issue(label, serial, kind, &spki).unwrap();
        s.store_certificate(&[1], "cert", &der).unwrap();
        Some(s.signer(&[1]).unwrap())
    }

    fn file_signer(&self, cn: &str, kind: LeafKind, serial: u64) -> KeyFileSigner {
        let key = generate_rsa_key(2048).unwrap();
        let der = self.pki.issue(cn, serial, kind, &spki_of(&key)).unwrap();
        KeyFileSigner::new(key, der).unwrap()
    }

    fn hpki_chain(&self) -> Vec<Vec<u8>> {
        vec![self.pki.hpki_sub.der().to_vec()]
    }
}

softhsm_test! {
    fn patient_logs_in_with_a_jpki_token() {
        let w = World::new();
        let Some(card) = w.token_signer("login-patient", LeafKind::JpkiAuth, 11) else {
            return;
        };
        let mut v = w.verifier();
        let c = v.challenge(t0(), Purpose::JpkiAuth, nonce(1)).unwrap();
        assert_eq!(c.context, SITE);
        let r = respond(&c, &card, &[]).unwrap();
        let who = v.verify(t0(), &r).unwrap();
        assert_eq!(who.purpose, Purpose::JpkiAuth);
        assert!(who.subject.contains("login-patient"), "{}", who.subject);
        assert_eq!(who.pseudonym.len(), 64);
        assert!(who.roles.is_empty());
        assert_eq!(v.outstanding(), 0);
    }
}

softhsm_test! {
    fn physician_logs_in_with_an_hpki_token() {
        let w = World::new();
        let Some(card) = w.token_signer("login-physician", DemoPki::hpki_auth("Medical Doctor"), 12)
        else {
            return;
        };
        let mut v = w.verifier();
        let c = v.challenge(t0(), Purpose::HpkiAuth, nonce(2)).unwrap();
        let r = respond(&c, &card, &w.hpki_chain()).unwrap();
        let who = v.verify(t0(), &r).unwrap();
        assert_eq!(who.purpose, Purpose::HpkiAuth);
        assert_eq!(who.roles, [Role::MedicalDoctor]);
    }
}

#[test]
fn replayed_login_refused() {
    let w = World::new();
    let card = w.file_signer("patient", LeafKind::JpkiAuth, 13);
    let mut v = w.verifier();
    let c = v.challenge(t0(), Purpose::JpkiAuth, nonce(3)).unwrap();
    let r = respond(&c, &card, &[]).unwrap();
    v.verify(t0(), &r).unwrap();
    assert_eq!(v.verify(t0(), &r).unwrap_err(), LoginError::Replayed);
    // The same nonce cannot be issued again either.
    assert_eq!(
        v.challenge(t0(), Purpose::JpkiAuth, nonce(3)).unwrap_err(),
        LoginError::DuplicateNonce
    );
    // A nonce never issued is unknown.
    let mut forged = r.clone();
    forged.nonce = nonce(99);
    assert_eq!(
        v.verify(t0(), &forged).unwrap_err(),
        LoginError::UnknownChallenge
    );
}

#[test]
fn expired_challenge_refused() {
    let w = World::new();
    let card = w.file_signer("patient", LeafKind::JpkiAuth, 14);
    let mut v = w.verifier();
    let c = v.challenge(t0(), Purpose::JpkiAuth, nonce(4)).unwrap();
    let r = respond(&c, &card, &[]).unwrap();
    let late = t0() + Duration::from_secs(61);
    assert!(matches!(
        v.verify(late, &r).unwrap_err(),
        LoginError::Expired { .. }
    ));
    // Used up by the late answer.
    assert_eq!(v.verify(t0(), &r).unwrap_err(), LoginError::Replayed);
}

#[test]
fn jpki_signing_certificate_cannot_log_in() {
    let w = World::new();
    let card = w.file_signer("patient", LeafKind::JpkiSign, 15);
    let mut v = w.verifier();
    let c = v.challenge(t0(), Purpose::JpkiAuth, nonce(5)).unwrap();
    let r = respond(&c, &card, &[]).unwrap();
    let err = v.verify(t0(), &r).unwrap_err();
    assert!(
        matches!(err, LoginError::Cert(CertError::KeyUsage { .. })),
        "{err}"
    );
    // Nor can an HPKI certificate answer a JPKI challenge.
    let doc = w.file_signer("doctor", DemoPki::hpki_auth("Medical Doctor"), 16);
    let c = v.challenge(t0(), Purpose::JpkiAuth, nonce(6)).unwrap();
    let r = respond(&c, &doc, &w.hpki_chain()).unwrap();
    assert!(matches!(
        v.verify(t0(), &r).unwrap_err(),
        LoginError::Cert(CertError::UnknownIssuer { .. })
    ));
    // Signing is not a login purpose.
    assert_eq!(
        v.challenge(t0(), Purpose::JpkiSign, nonce(7)).unwrap_err(),
        LoginError::NotLoginPurpose(Purpose::JpkiSign)
    );
}

softhsm_test! {
    fn pharmacist_refused_where_a_doctor_is_required() {
        let w = World::new();
        let Some(card) = w.token_signer("login-pharmacist", DemoPki::hpki_auth("Pharmacist"), 17)
        else {
            return;
        };
        let mut v = w.verifier();
        let c = v.challenge(t0(), Purpose::HpkiAuth, nonce(8)).unwrap();
        let r = respond(&c, &card, &w.hpki_chain()).unwrap();
        let err = v.verify(t0(), &r).unwrap_err();
        assert!(
            matches!(&err, LoginError::Cert(CertError::RoleNotAllowed { held, .. }) if held == "Pharmacist"),
            "{err}"
        );
    }
}

#[test]
fn revoked_certificate_refused() {
    let w = World::new();
    let good = w.file_signer("patient", LeafKind::JpkiAuth, 20);
    let bad = w.file_signer("revoked patient", LeafKind::JpkiAuth, 21);
    let day = Duration::from_secs(86_400);
    let crl = w
        .pki
        .jpki
        .crl(
            1,
            t0() - day,
            t0() + 7 * day,
            &[RevokedEntry {
                serial: 21,
                at: t0() - day,
            }],
        )
        .unwrap();
    let mut crls = CrlFile::new();
    crls.add_der(&crl).unwrap();
    let mut v = w.verifier().with_revocation(crls);
    let c = v.challenge(t0(), Purpose::JpkiAuth, nonce(9)).unwrap();
    let err = v
        .verify(t0(), &respond(&c, &bad, &[]).unwrap())
        .unwrap_err();
    assert!(
        matches!(err, LoginError::Cert(CertError::Revoked { .. })),
        "{err}"
    );
    let c = v.challenge(t0(), Purpose::JpkiAuth, nonce(10)).unwrap();
    v.verify(t0(), &respond(&c, &good, &[]).unwrap()).unwrap();
}

#[test]
fn a_signature_for_another_site_or_challenge_refused() {
    let w = World::new();
    let card = w.file_signer("patient", LeafKind::JpkiAuth, 22);
    let mut other_site = LoginVerifier::new(
        LoginConfig::new("jp.hospital-b"),
        Profile::new(DemoPki::profile_config()),
    );
    let mut jpki = TrustStore::new(StoreKind::Jpki);
    jpki.add_der(w.pki.jpki.der()).unwrap();
    other_site = other_site.with_trust(jpki);
    let mut v = w.verifier();
    // Both sites issue the same nonce; the answer for B is refused at A.
    let cb = other_site
        .challenge(t0(), Purpose::JpkiAuth, nonce(11))
        .unwrap();
    v.challenge(t0(), Purpose::JpkiAuth, nonce(11)).unwrap();
    let r = respond(&cb, &card, &[]).unwrap();
    assert!(matches!(
        v.verify(t0(), &r).unwrap_err(),
        LoginError::Signature(_)
    ));
    // A tampered signature is refused.
    let c = v.challenge(t0(), Purpose::JpkiAuth, nonce(12)).unwrap();
    let mut r = respond(&c, &card, &[]).unwrap();
    r.signature[10] ^= 1;
    assert!(matches!(
        v.verify(t0(), &r).unwrap_err(),
        LoginError::Signature(_)
    ));
}

#[test]
fn outstanding_challenges_are_bounded() {
    let w = World::new();
    let card = w.file_signer("patient", LeafKind::JpkiAuth, 23);
    let mut jpki = TrustStore::new(StoreKind::Jpki);
    jpki.add_der(w.pki.jpki.der()).unwrap();
    let mut v = LoginVerifier::new(
        LoginConfig::new(SITE).with_capacity(4),
        Profile::new(DemoPki::profile_config()),
    )
    .with_trust(jpki);
    let first = v.challenge(t0(), Purpose::JpkiAuth, nonce(0)).unwrap();
    for i in 1..=10 {
        v.challenge(t0(), Purpose::JpkiAuth, nonce(i)).unwrap();
        assert!(v.outstanding() <= 4);
    }
    // The oldest was forgotten: its answer is refused.
    let r = respond(&first, &card, &[]).unwrap();
    assert_eq!(
        v.verify(t0(), &r).unwrap_err(),
        LoginError::UnknownChallenge
    );
    // Expired challenges are dropped when the next one is issued.
    v.challenge(
        t0() + Duration::from_secs(120),
        Purpose::JpkiAuth,
        nonce(50),
    )
    .unwrap();
    assert_eq!(v.outstanding(), 1);
}
