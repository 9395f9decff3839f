//! A small JPKI-shaped PKI for tests: an ECDSA root made by rcgen, RSA-2048
//! patient keys made by the `rsa` crate (JPKI keys are RSA), certificates
//! with the JPKI policy OIDs, and a [`Signer`] that signs a `DigestInfo`
//! exactly as a card does with `CKM_RSA_PKCS`.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use med8k_auth::cert::{
    JPKI_AUTH_POLICY, JPKI_SIGN_POLICY, Profile, ProfileConfig, StoreKind, TrustStore,
};
use med8k_auth::identity::{IdentityError, Signer, digest_info_sha256};
use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, DistinguishedName,
    DnType, IsCa, Issuer, KeyIdMethod, KeyPair, KeyUsagePurpose, RevokedCertParams, SerialNumber,
    date_time_ymd,
};
use rsa::pkcs8::EncodePrivateKey;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};

// ---- time ----

/// A date as a `SystemTime`.
pub fn at(y: i32, m: u8, d: u8) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(unix(y, m, d) as u64)
}

/// A date as unix seconds.
pub fn unix(y: i32, m: u8, d: u8) -> i64 {
    date_time_ymd(y, m, d).unix_timestamp()
}

/// The tests' "now": 2026-06-01.
pub fn now() -> SystemTime {
    at(2026, 6, 1)
}

// ---- a small RNG over ring for the rsa crate ----

struct RingRng(ring::rand::SystemRandom);

impl rsa::rand_core::RngCore for RingRng {
    fn next_u32(&mut self) -> u32 {
        let mut b = [0u8; 4];
        self.fill_bytes(&mut b);
        u32::from_le_bytes(b)
    }
    fn next_u64(&mut self) -> u64 {
        let mut b = [0u8; 8];
        self.fill_bytes(&mut b);
        u64::from_le_bytes(b)
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        ring::rand::SecureRandom::fill(&self.0, dest).unwrap();
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rsa::rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl rsa::rand_core::CryptoRng for RingRng {}

/// RSA-2048 keys, made once per test binary (key generation is slow).
fn rsa_key(slot: usize) -> RsaPrivateKey {
    static KEYS: [OnceLock<RsaPrivateKey>; 4] = [const { OnceLock::new() }; 4];
    KEYS[slot]
        .get_or_init(|| {
            RsaPrivateKey::new(&mut RingRng(ring::rand::SystemRandom::new()), 2048).unwrap()
        })
        .clone()
}

// ---- the PKI ----

/// A CA that issues test certificates.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    /// Its certificate.
    pub der: Vec<u8>,
}

/// A self-signed root, valid 2020–2035.
pub fn root(cn: &str) -> Ca {
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

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

/// Which JPKI certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// 署名用: nonRepudiation, the signing policy.
    Sign,
    /// 利用者証明用: digitalSignature, the authentication policy.
    Auth,
}

/// A card key: RSA private key and its certificate.
pub struct Card {
    key: RsaPrivateKey,
    cert: Vec<u8>,
}

impl Signer for Card {
    fn certificate(&self) -> &[u8] {
        &self.cert
    }

    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<Vec<u8>, IdentityError> {
        self.key
            .sign(Pkcs1v15Sign::new_unprefixed(), &digest_info_sha256(digest))
            .map_err(|e| IdentityError::UnsupportedKey(e.to_string()))
    }
}

/// Issues a JPKI certificate of `kind` for RSA key `slot` (0..4), valid
/// `from`..`to`.
pub fn card(by: &Ca, slot: usize, kind: Kind, from: (i32, u8, u8), to: (i32, u8, u8)) -> Card {
    let key = rsa_key(slot);
    let pkcs8 = key.to_pkcs8_der().unwrap();
    let key_pair = KeyPair::try_from(pkcs8.as_bytes()).unwrap();
    let mut p = CertificateParams::default();
    p.distinguished_name = dn(&format!("JPKI test {slot} {kind:?}"));
    p.serial_number = Some(SerialNumber::from(serial_of(slot)));
    let (usage, policy) = match kind {
        Kind::Sign => (KeyUsagePurpose::ContentCommitment, JPKI_SIGN_POLICY),
        Kind::Auth => (KeyUsagePurpose::DigitalSignature, JPKI_AUTH_POLICY),
    };
    p.key_usages = vec![usage];
    p.custom_extensions = vec![med8k_auth::issue::policies_ext(&[policy]).unwrap()];
    p.not_before = date_time_ymd(from.0, from.1, from.2);
    p.not_after = date_time_ymd(to.0, to.1, to.2);
    let cert = p.signed_by(&key_pair, &by.issuer).unwrap().der().to_vec();
    Card { key, cert }
}

/// A signing card valid 2025–2030.
pub fn sign_card(by: &Ca, slot: usize) -> Card {
    card(by, slot, Kind::Sign, (2025, 1, 1), (2030, 1, 1))
}

/// The JPKI store holding `root`.
pub fn jpki_store(root: &Ca) -> TrustStore {
    let mut s = TrustStore::new(StoreKind::Jpki);
    s.add_der(&root.der).unwrap();
    s
}

/// The default profile (J-LIS policy OIDs).
pub fn profile() -> Profile {
    Profile::new(ProfileConfig::default())
}

/// The serial number [`card`] gives key `slot`'s certificate.
pub fn serial_of(slot: usize) -> u64 {
    1000 + slot as u64
}

/// A CRL by `by`, in force 2026-05-01 to 2026-07-01, revoking `serials`
/// from 2026-05-15.
pub fn crl(by: &Ca, serials: &[u64]) -> Vec<u8> {
    CertificateRevocationListParams {
        this_update: date_time_ymd(2026, 5, 1),
        next_update: date_time_ymd(2026, 7, 1),
        crl_number: SerialNumber::from(7u64),
        issuing_distribution_point: None,
        revoked_certs: serials
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
