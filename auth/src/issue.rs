//! Issuing certificates for demos and tests: CAs shaped like the JPKI, HPKI
//! and facility PKIs, leaf certificates with their profiles (policy OIDs,
//! key usage, HPKI hcRole), certificates for keys held on a token (only the
//! public key is needed), and CRLs.
//!
//! Nothing here is a real CA: keys are made in memory, and the HPKI policy
//! OIDs ([`DEMO_HPKI_SIGN_POLICY`], [`DEMO_HPKI_AUTH_POLICY`]) are invented.
//! The JPKI policy OIDs are J-LIS's real ones so the profile checks of
//! [`crate::cert`] run unchanged.
//!
//! ```no_run
//! use med8k_auth::issue::{Ca, LeafKind, LeafSpec, Validity};
//! # fn demo(spki: &med8k_auth::identity::RsaSpki) -> Result<(), med8k_auth::issue::IssueError> {
//! let validity = Validity::years_from(std::time::SystemTime::now(), 5);
//! let jpki = Ca::root("Demo JPKI CA", validity)?;
//! let leaf = jpki.issue(&LeafSpec::new("Patient 0001", 1001, LeafKind::JpkiAuth, validity), spki)?;
//! # let _ = leaf; Ok(()) }
//! ```

use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, CertificateRevocationListParams, CustomExtension,
    DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyIdMethod, KeyPair,
    KeyUsagePurpose, PublicKeyData, RevokedCertParams, SanType, SerialNumber, SignatureAlgorithm,
};

use crate::cert::{
    HC_ROLE_ISO17090, JPKI_AUTH_POLICY, JPKI_SIGN_POLICY, PolicyRule, ProfileConfig, Purpose,
};
use crate::der;
use crate::identity::RsaSpki;

/// Invented HPKI signing policy OID used by the demo and tests.
pub const DEMO_HPKI_SIGN_POLICY: &str = "1.2.392.100495.9.9.1";
/// Invented HPKI authentication policy OID used by the demo and tests.
pub const DEMO_HPKI_AUTH_POLICY: &str = "1.2.392.100495.9.9.2";
pub use crate::cert::HPKI_ROLE_SCHEME;

/// The DNS suffix under which facility certificates name their facility;
/// the same convention as `med8k_transport::driver::tls::FACILITY_DNS_SUFFIX`
/// (auth does not depend on transport, the CLI tests check they agree).
pub const FACILITY_DNS_SUFFIX: &str = "facility.med8k.invalid";

/// The subjectAltName DNS name that names facility `id`.
pub fn facility_dns_name(id: &str) -> String {
    format!("{id}.{FACILITY_DNS_SUFFIX}")
}

/// A certificate or CRL could not be issued.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IssueError {
    /// rcgen refused the parameters or could not sign.
    #[error("cannot issue {what}: {source}")]
    Rcgen {
        /// What was being issued (a subject or "CRL").
        what: String,
        /// rcgen's error.
        source: rcgen::Error,
    },
    /// A dotted OID string is malformed.
    #[error("malformed OID {0:?}")]
    BadOid(String),
}

fn rcgen_err(what: &str) -> impl FnOnce(rcgen::Error) -> IssueError + '_ {
    move |source| IssueError::Rcgen {
        what: what.to_owned(),
        source,
    }
}

/// The arcs of a dotted OID, for rcgen's custom extensions.
pub fn oid_arcs(dotted: &str) -> Result<Vec<u64>, IssueError> {
    der::arcs(dotted).ok_or_else(|| IssueError::BadOid(dotted.to_owned()))
}

/// SEQUENCE of owned parts.
fn seq(parts: &[Vec<u8>]) -> Vec<u8> {
    der::sequence(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>())
}

/// OBJECT IDENTIFIER, refusing what is not an OID.
fn checked_oid(dotted: &str) -> Result<Vec<u8>, IssueError> {
    oid_arcs(dotted)?;
    Ok(der::oid(dotted))
}

/// A certificatePolicies extension listing `oids` (no qualifiers).
pub fn policies_ext(oids: &[&str]) -> Result<CustomExtension, IssueError> {
    let infos = oids
        .iter()
        .map(|o| checked_oid(o).map(|o| der::sequence(&[&o])))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CustomExtension::from_oid_content(
        &oid_arcs("2.5.29.32")?,
        seq(&infos),
    ))
}

/// One ISO 17090 HCActor as HPKI CAs write it: `codedData [0] EXPLICIT
/// CodedData SET { [0] codingSchemeReference (the Japanese HPKI scheme),
/// [1] codeDataValue PrintableString, [2] codeDataFreeText UTF8String }`
/// (a value that is not printable is written as a UTF8String).
pub fn hc_actor(value: Option<&str>, free_text: Option<&str>) -> Result<Vec<u8>, IssueError> {
    let mut fields = vec![der::tlv(0xa0, &checked_oid(HPKI_ROLE_SCHEME)?)];
    if let Some(v) = value {
        let printable = v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b));
        let text = if printable {
            der::tlv(0x13, v.as_bytes())
        } else {
            der::utf8(v)
        };
        fields.push(der::tlv(0xa1, &text));
    }
    if let Some(t) = free_text {
        fields.push(der::tlv(0xa2, &der::utf8(t)));
    }
    Ok(seq(&[der::tlv(0xa0, &der::set(&fields))]))
}

/// subjectDirectoryAttributes content: one hcRole attribute holding the
/// HCActorData SET of `actors`.
pub fn sda_content(actors: &[Vec<u8>]) -> Result<Vec<u8>, IssueError> {
    let hc_actor_data = der::set(actors);
    Ok(seq(&[seq(&[
        checked_oid(HC_ROLE_ISO17090)?,
        der::set(&[hc_actor_data]),
    ])]))
}

/// The subjectDirectoryAttributes extension with hcRole `actors`.
pub fn sda_ext(actors: &[Vec<u8>]) -> Result<CustomExtension, IssueError> {
    Ok(CustomExtension::from_oid_content(
        &oid_arcs("2.5.29.9")?,
        sda_content(actors)?,
    ))
}

impl PublicKeyData for RsaSpki {
    fn der_bytes(&self) -> &[u8] {
        &self.rsa_public_key
    }

    fn algorithm(&self) -> &'static SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

/// From when to when a certificate is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// notBefore.
    pub not_before: SystemTime,
    /// notAfter.
    pub not_after: SystemTime,
}

impl Validity {
    /// From a day before `now` to `years` (of 365 days) after it.
    pub fn years_from(now: SystemTime, years: u32) -> Self {
        const DAY: u64 = 86_400;
        Validity {
            not_before: now
                .checked_sub(Duration::from_secs(DAY))
                .unwrap_or(SystemTime::UNIX_EPOCH),
            not_after: now + Duration::from_secs(DAY * 365 * u64::from(years)),
        }
    }

    fn apply(&self, p: &mut CertificateParams) {
        p.not_before = self.not_before.into();
        p.not_after = self.not_after.into();
    }
}

/// An ISO 17090 role as written into hcRole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HcRole {
    /// codeDataValue, e.g. "Medical Doctor".
    pub value: Option<String>,
    /// codeDataFreeText, e.g. "医師".
    pub free_text: Option<String>,
}

impl HcRole {
    /// A role with only codeDataValue.
    pub fn named(value: &str) -> Self {
        HcRole {
            value: Some(value.to_owned()),
            free_text: None,
        }
    }
}

/// Which profile a leaf certificate gets.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeafKind {
    /// JPKI signing: policy `1.2.392.200149.8.5.1.1`, nonRepudiation.
    JpkiSign,
    /// JPKI authentication: policy `1.2.392.200149.8.5.1.3`, digitalSignature.
    JpkiAuth,
    /// HPKI signing: `policy`, nonRepudiation, hcRole `roles`.
    HpkiSign {
        /// Certificate policy OID.
        policy: String,
        /// hcRole actors.
        roles: Vec<HcRole>,
    },
    /// HPKI authentication: `policy`, digitalSignature, hcRole `roles`.
    HpkiAuth {
        /// Certificate policy OID.
        policy: String,
        /// hcRole actors.
        roles: Vec<HcRole>,
    },
    /// A facility: DNS SAN [`facility_dns_name`]`(id)`, digitalSignature,
    /// serverAuth and clientAuth (usable at both ends of med8k's QUIC mTLS).
    Facility {
        /// The facility id, e.g. `jp.hospital-a`.
        id: String,
    },
}

impl LeafKind {
    /// The purpose a certificate of this kind is verified for.
    pub fn purpose(&self) -> Purpose {
        match self {
            LeafKind::JpkiSign => Purpose::JpkiSign,
            LeafKind::JpkiAuth => Purpose::JpkiAuth,
            LeafKind::HpkiSign { .. } => Purpose::HpkiSign,
            LeafKind::HpkiAuth { .. } => Purpose::HpkiAuth,
            LeafKind::Facility { .. } => Purpose::Facility,
        }
    }
}

/// What to put in a leaf certificate.
#[derive(Debug, Clone)]
pub struct LeafSpec {
    /// Subject commonName (never patient data in demos: a pseudonym).
    pub common_name: String,
    /// Serial number (what a CRL names).
    pub serial: u64,
    /// The profile.
    pub kind: LeafKind,
    /// Validity period.
    pub validity: Validity,
}

impl LeafSpec {
    /// A leaf named `common_name`.
    pub fn new(common_name: &str, serial: u64, kind: LeafKind, validity: Validity) -> Self {
        LeafSpec {
            common_name: common_name.to_owned(),
            serial,
            kind,
            validity,
        }
    }

    fn params(&self) -> Result<CertificateParams, IssueError> {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(&self.common_name);
        p.serial_number = Some(SerialNumber::from(self.serial));
        self.validity.apply(&mut p);
        let hpki = |policy: &str, roles: &[HcRole]| -> Result<Vec<CustomExtension>, IssueError> {
            let mut exts = vec![policies_ext(&[policy])?];
            if !roles.is_empty() {
                let actors = roles
                    .iter()
                    .map(|r| hc_actor(r.value.as_deref(), r.free_text.as_deref()))
                    .collect::<Result<Vec<_>, _>>()?;
                exts.push(sda_ext(&actors)?);
            }
            Ok(exts)
        };
        match &self.kind {
            LeafKind::JpkiSign => {
                p.key_usages = vec![KeyUsagePurpose::ContentCommitment];
                p.custom_extensions = vec![policies_ext(&[JPKI_SIGN_POLICY])?];
            }
            LeafKind::JpkiAuth => {
                p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                p.custom_extensions = vec![policies_ext(&[JPKI_AUTH_POLICY])?];
            }
            LeafKind::HpkiSign { policy, roles } => {
                p.key_usages = vec![KeyUsagePurpose::ContentCommitment];
                p.custom_extensions = hpki(policy, roles)?;
            }
            LeafKind::HpkiAuth { policy, roles } => {
                p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                p.custom_extensions = hpki(policy, roles)?;
            }
            LeafKind::Facility { id } => {
                let name = facility_dns_name(id);
                let dns = name
                    .clone()
                    .try_into()
                    .map_err(|e: rcgen::Error| IssueError::Rcgen {
                        what: name.clone(),
                        source: e,
                    })?;
                p.subject_alt_names = vec![SanType::DnsName(dns)];
                p.key_usages = vec![KeyUsagePurpose::DigitalSignature];
                p.extended_key_usages = vec![
                    ExtendedKeyUsagePurpose::ServerAuth,
                    ExtendedKeyUsagePurpose::ClientAuth,
                ];
            }
        }
        Ok(p)
    }
}

fn dn(cn: &str) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    d
}

/// A CA (root or intermediate) whose key is in memory.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    der: Vec<u8>,
    pem: String,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca").finish_non_exhaustive()
    }
}

/// A revoked certificate for [`Ca::crl`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RevokedEntry {
    /// Its serial number.
    pub serial: u64,
    /// When it was revoked.
    pub at: SystemTime,
}

impl Ca {
    /// A self-signed root CA (ECDSA P-256) named `cn`.
    pub fn root(cn: &str, validity: Validity) -> Result<Ca, IssueError> {
        let key = KeyPair::generate().map_err(rcgen_err(cn))?;
        let p = Self::ca_params(cn, validity, BasicConstraints::Unconstrained);
        let cert = p.self_signed(&key).map_err(rcgen_err(cn))?;
        Ok(Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        })
    }

    /// An intermediate CA under `parent`, allowed no further CAs below it.
    pub fn intermediate(cn: &str, parent: &Ca, validity: Validity) -> Result<Ca, IssueError> {
        Self::intermediate_for(cn, parent, validity, &[])
    }

    /// An intermediate CA under `parent` that vouches for the certificate
    /// policies `policies` (as a CA must for every policy its leaves carry:
    /// [`crate::cert::Profile::check`]), allowed no further CAs below it.
    pub fn intermediate_for(
        cn: &str,
        parent: &Ca,
        validity: Validity,
        policies: &[&str],
    ) -> Result<Ca, IssueError> {
        let key = KeyPair::generate().map_err(rcgen_err(cn))?;
        let mut p = Self::ca_params(cn, validity, BasicConstraints::Constrained(0));
        if !policies.is_empty() {
            p.custom_extensions = vec![policies_ext(policies)?];
        }
        let cert = p.signed_by(&key, &parent.issuer).map_err(rcgen_err(cn))?;
        Ok(Ca {
            der: cert.der().to_vec(),
            pem: cert.pem(),
            issuer: Issuer::new(p, key),
        })
    }

    fn ca_params(cn: &str, validity: Validity, bc: BasicConstraints) -> CertificateParams {
        let mut p = CertificateParams::default();
        p.distinguished_name = dn(cn);
        p.is_ca = IsCa::Ca(bc);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        validity.apply(&mut p);
        p
    }

    /// The CA certificate, DER.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// rcgen's issuer, for certificates this module does not shape.
    pub fn issuer(&self) -> &Issuer<'static, KeyPair> {
        &self.issuer
    }

    /// Issues the leaf `spec` for `public_key` (a token's key, a key file's,
    /// or an rcgen [`KeyPair`]); returns its DER.
    pub fn issue(
        &self,
        spec: &LeafSpec,
        public_key: &impl PublicKeyData,
    ) -> Result<Vec<u8>, IssueError> {
        let p = spec.params()?;
        let cert = p
            .signed_by(public_key, &self.issuer)
            .map_err(rcgen_err(&spec.common_name))?;
        Ok(cert.der().to_vec())
    }

    /// A CRL listing `revoked`, current from `this_update` to `next_update`.
    pub fn crl(
        &self,
        number: u64,
        this_update: SystemTime,
        next_update: SystemTime,
        revoked: &[RevokedEntry],
    ) -> Result<Vec<u8>, IssueError> {
        let params = CertificateRevocationListParams {
            this_update: this_update.into(),
            next_update: next_update.into(),
            crl_number: SerialNumber::from(number),
            issuing_distribution_point: None,
            revoked_certs: revoked
                .iter()
                .map(|r| RevokedCertParams {
                    serial_number: SerialNumber::from(r.serial),
                    revocation_time: r.at.into(),
                    reason_code: None,
                    invalidity_date: None,
                })
                .collect(),
            key_identifier_method: KeyIdMethod::Sha256,
        };
        let crl = params.signed_by(&self.issuer).map_err(rcgen_err("CRL"))?;
        Ok(crl.der().to_vec())
    }
}

/// A facility certificate with its (ECDSA P-256, PKCS#8) key, as med8k's
/// QUIC mTLS loads them.
#[derive(Clone)]
pub struct FacilityCert {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The PKCS#8 key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for FacilityCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacilityCert").finish_non_exhaustive()
    }
}

/// The three stores' CAs of a demo: JPKI root, HPKI root with a sub-CA that
/// issues the leaves, facility CA.
#[derive(Debug)]
pub struct DemoPki {
    /// JPKI root (also issues JPKI leaves).
    pub jpki: Ca,
    /// HPKI root.
    pub hpki_root: Ca,
    /// HPKI sub-CA (issues HPKI leaves).
    pub hpki_sub: Ca,
    /// Facility CA.
    pub facility: Ca,
    /// Validity of everything issued.
    pub validity: Validity,
}

impl DemoPki {
    /// New CAs, valid for `years` from `now`.
    pub fn new(now: SystemTime, years: u32) -> Result<Self, IssueError> {
        let validity = Validity::years_from(now, years);
        let hpki_root = Ca::root("med8k demo HPKI root CA", validity)?;
        Ok(DemoPki {
            jpki: Ca::root("med8k demo JPKI CA", validity)?,
            hpki_sub: Ca::intermediate_for(
                "med8k demo HPKI sub CA",
                &hpki_root,
                validity,
                &[DEMO_HPKI_SIGN_POLICY, DEMO_HPKI_AUTH_POLICY],
            )?,
            hpki_root,
            facility: Ca::root("med8k demo facility CA", validity)?,
            validity,
        })
    }

    /// The profile configuration that accepts this demo's certificates: the
    /// defaults plus the demo HPKI policy OIDs.
    pub fn profile_config() -> ProfileConfig {
        let mut c = ProfileConfig::default();
        c.policies.insert(
            Purpose::HpkiSign,
            PolicyRule::AnyOf(vec![DEMO_HPKI_SIGN_POLICY.to_owned()]),
        );
        c.policies.insert(
            Purpose::HpkiAuth,
            PolicyRule::AnyOf(vec![DEMO_HPKI_AUTH_POLICY.to_owned()]),
        );
        c
    }

    /// A leaf of `kind` for `public_key`, issued by the CA of its store
    /// (HPKI leaves by the sub-CA).
    pub fn issue(
        &self,
        common_name: &str,
        serial: u64,
        kind: LeafKind,
        public_key: &impl PublicKeyData,
    ) -> Result<Vec<u8>, IssueError> {
        let ca = match kind.purpose() {
            Purpose::JpkiSign | Purpose::JpkiAuth => &self.jpki,
            Purpose::HpkiSign | Purpose::HpkiAuth => &self.hpki_sub,
            Purpose::Facility => &self.facility,
        };
        ca.issue(
            &LeafSpec::new(common_name, serial, kind, self.validity),
            public_key,
        )
    }

    /// HPKI signing profile with the demo policy and role `role`.
    pub fn hpki_sign(role: &str) -> LeafKind {
        LeafKind::HpkiSign {
            policy: DEMO_HPKI_SIGN_POLICY.to_owned(),
            roles: vec![HcRole::named(role)],
        }
    }

    /// HPKI authentication profile with the demo policy and role `role`.
    pub fn hpki_auth(role: &str) -> LeafKind {
        LeafKind::HpkiAuth {
            policy: DEMO_HPKI_AUTH_POLICY.to_owned(),
            roles: vec![HcRole::named(role)],
        }
    }

    /// A facility certificate and a fresh key for facility `id`.
    pub fn facility_cert(&self, id: &str, serial: u64) -> Result<FacilityCert, IssueError> {
        let key = KeyPair::generate().map_err(rcgen_err(id))?;
        let der = self.issue(id, serial, LeafKind::Facility { id: id.to_owned() }, &key)?;
        Ok(FacilityCert {
            cert_pem: pem("CERTIFICATE", &der),
            cert_der: der,
            key_pem: key.serialize_pem(),
        })
    }
}

/// PEM-armours `der` with `label` (64-column base64).
pub fn pem(label: &str, der: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::with_capacity(der.len().div_ceil(3) * 4);
    for c in der.chunks(3) {
        let b = |i: usize| u32::from(c.get(i).copied().unwrap_or(0));
        let n = (b(0) << 16) | (b(1) << 8) | b(2);
        for i in 0..4 {
            if i <= c.len() {
                b64.push(char::from(T[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    let bytes = b64.as_bytes();
    for line in bytes.chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn der_lengths_and_integers() {
        assert_eq!(der::tlv(4, &[0; 3]), [4, 3, 0, 0, 0]);
        assert_eq!(&der::tlv(4, &[0; 200])[..3], [4, 0x81, 200]);
        assert_eq!(&der::tlv(4, &[0; 300])[..4], [4, 0x82, 1, 44]);
        assert_eq!(der::uint(&[0x80]), [2, 2, 0, 0x80]);
        assert_eq!(der::uint(&[0, 0, 1]), [2, 1, 1]);
        assert_eq!(der::uint(&[]), [2, 1, 0]);
        assert!(checked_oid("1.2.x").is_err());
        assert!(checked_oid("1.40.1").is_err());
        assert_eq!(
            checked_oid("2.5.29.9").ok(),
            Some(vec![6, 3, 0x55, 0x1d, 0x09])
        );
    }

    #[test]
    fn pem_round_trips() {
        let der: Vec<u8> = (0..=255u8).collect();
        let text = pem("CERTIFICATE", &der);
        let blocks = crate::cert::pem_blocks(text.as_bytes(), "CERTIFICATE").ok();
        assert_eq!(blocks, Some(vec![der]));
    }
}
