//! Certificate checks in two stages.
//!
//! 1. [`verify_chain`]: the chain from a leaf to an anchor of the purpose's
//!    [`TrustStore`] (JPKI, HPKI and facility CAs live in separate stores),
//!    every signature (SHA-2 only; no RSA key under 2048 bits), issuer/subject
//!    chaining, validity of every certificate at the given time, CA basic
//!    constraints on issuers (pathLenConstraint counting every CA below),
//!    critical extensions only where enforced (a CA with nameConstraints is
//!    refused), and the key usage the [`Purpose`] needs on the leaf.
//! 2. [`Profile`]: what the leaf is *for* — the purpose's certificate policy
//!    OID, on the leaf and on every CA of the path (so a JPKI authentication
//!    certificate cannot sign consent, and a pharmacists' CA cannot vouch for
//!    a doctors' policy) and, for HPKI, the hcRole held under a configured
//!    coding scheme (a Pharmacist is refused where a Medical Doctor is
//!    required). OIDs, schemes and role names come from [`ProfileConfig`].
//!
//! Revocation is a separate, pluggable step ([`Revocation`] over a
//! [`CertRef`]; [`CrlFile`] for CRLs per RFC 5280 §6.3.3, [`CrlFetcher`] for
//! CRLs fetched from distribution points, [`Ocsp`] as the interface an OCSP
//! client will implement).
//!
//! These paths are checked here rather than by rustls-webpki (which checks
//! the facility links in `med8k-transport`): webpki refuses certificates
//! whose certificatePolicies extension is critical, processes no policies
//! and knows nothing of hcRole or the JPKI/HPKI key usages.
//!
//! The clock is always an argument (`at`), never read here.
//!
//! ```no_run
//! use med8k_auth::cert::{Profile, ProfileConfig, Purpose, Role, StoreKind, TrustStore, verify_chain};
//! # fn demo(anchor_pem: &[u8], leaf_der: &[u8], now: std::time::SystemTime) -> Result<(), med8k_auth::cert::CertError> {
//! let mut hpki = TrustStore::new(StoreKind::Hpki);
//! hpki.add_pem(anchor_pem)?;
//! let chain = verify_chain(leaf_der, &[], &hpki, Purpose::HpkiAuth, now)?;
//! let profile = Profile::new(ProfileConfig::default());
//! profile.check(&chain)?;
//! profile.require_role(chain.leaf(), &[Role::MedicalDoctor])?;
//! # Ok(()) }
//! ```

mod chain;
mod profile;
mod revocation;

use std::time::SystemTime;

use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer;

pub use chain::{StoreKind, TrustFileError, TrustStore, VerifiedChain, verify_chain};
pub use profile::{
    ANY_POLICY, HC_ROLE_ISO17090, HPKI_DIRECTOR_SCHEME, HPKI_ROLE_SCHEME, HcCode, JPKI_AUTH_POLICY,
    JPKI_SIGN_POLICY, PolicyRule, Profile, ProfileConfig, Role, hc_role_codes, hc_roles,
};
pub use revocation::{
    CertRef, CrlFetcher, CrlFile, Ocsp, OcspRevocation, OcspStatus, Revocation, crl_urls,
};

/// What a certificate is being used for; decides the trust store, the key
/// usage and the policy OID it must carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Purpose {
    /// JPKI signing certificate (署名用電子証明書): the patient signs consent.
    JpkiSign,
    /// JPKI user authentication certificate (利用者証明用電子証明書).
    JpkiAuth,
    /// HPKI signing certificate: a professional's signature.
    HpkiSign,
    /// HPKI authentication certificate: a professional logs in.
    HpkiAuth,
    /// A facility's certificate, issued by a facility CA.
    Facility,
}

impl Purpose {
    /// The trust store this purpose is checked against.
    pub fn store(self) -> StoreKind {
        match self {
            Purpose::JpkiSign | Purpose::JpkiAuth => StoreKind::Jpki,
            Purpose::HpkiSign | Purpose::HpkiAuth => StoreKind::Hpki,
            Purpose::Facility => StoreKind::Facility,
        }
    }

    /// The purpose's name: `jpki-sign`, `jpki-auth`, `hpki-sign`,
    /// `hpki-auth` or `facility` (on the command line, and signed into login
    /// challenges).
    pub fn name(self) -> &'static str {
        match self {
            Purpose::JpkiSign => "jpki-sign",
            Purpose::JpkiAuth => "jpki-auth",
            Purpose::HpkiSign => "hpki-sign",
            Purpose::HpkiAuth => "hpki-auth",
            Purpose::Facility => "facility",
        }
    }

    /// Signing purposes accept digitalSignature or nonRepudiation; the others
    /// need digitalSignature.
    pub fn is_signing(self) -> bool {
        matches!(self, Purpose::JpkiSign | Purpose::HpkiSign)
    }
}

/// Why a certificate was refused. Each variant names the certificate (its
/// subject, as text) and what failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    /// The bytes are not a certificate (or CRL) we can read.
    #[error("cannot parse {what}: {reason}")]
    Parse {
        /// What was being read ("certificate", "CRL", "PEM", an extension).
        what: String,
        /// The parser's message.
        reason: String,
    },
    /// `at` is after notAfter.
    #[error("certificate {subject}: expired at {not_after} (unix seconds)")]
    Expired {
        /// Subject of the certificate.
        subject: String,
        /// notAfter, unix seconds.
        not_after: i64,
    },
    /// `at` is before notBefore.
    #[error("certificate {subject}: not yet valid until {not_before} (unix seconds)")]
    NotYetValid {
        /// Subject of the certificate.
        subject: String,
        /// notBefore, unix seconds.
        not_before: i64,
    },
    /// No anchor or intermediate has the issuer's name.
    #[error("certificate {subject}: unknown issuer {issuer}")]
    UnknownIssuer {
        /// Subject of the certificate.
        subject: String,
        /// Its issuer name.
        issuer: String,
    },
    /// An issuer with the right name exists, but the signature does not verify.
    #[error("certificate {subject}: bad signature by {issuer}")]
    BadSignature {
        /// Subject of the certificate.
        subject: String,
        /// Issuer name tried.
        issuer: String,
    },
    /// An issuer lacks basicConstraints CA, keyCertSign, or its path length.
    #[error("certificate {subject}: not a CA ({reason})")]
    NotCa {
        /// Subject of the issuing certificate.
        subject: String,
        /// Which constraint failed.
        reason: String,
    },
    /// The leaf lacks the key usage the purpose needs.
    #[error("certificate {subject}: key usage missing ({needed})")]
    KeyUsage {
        /// Subject of the leaf.
        subject: String,
        /// What was needed.
        needed: String,
    },
    /// A critical extension this code does not understand (RFC 5280 §4.2).
    #[error("certificate {subject}: unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// Subject of the certificate.
        subject: String,
        /// The extension's OID.
        oid: String,
    },
    /// A critical extension this code recognises but does not enforce
    /// (policyConstraints, policyMappings, inhibitAnyPolicy, an extended
    /// key usage), or nameConstraints on a CA (never enforced here: such a
    /// CA is refused), or an extension that does not parse.
    #[error("certificate {subject}: extension {oid} not accepted ({reason})")]
    ExtensionNotEnforced {
        /// Subject of the certificate.
        subject: String,
        /// The extension's OID.
        oid: String,
        /// Why.
        reason: String,
    },
    /// A signature algorithm that is refused (SHA-1, MD5, DSA, or unknown).
    #[error("certificate {subject}: signature algorithm {algorithm} refused")]
    WeakAlgorithm {
        /// Subject of the certificate.
        subject: String,
        /// The algorithm's OID.
        algorithm: String,
    },
    /// An RSA key shorter than 2048 bits.
    #[error("certificate {subject}: RSA key of {bits} bits refused (2048 at least)")]
    WeakKey {
        /// Subject of the certificate.
        subject: String,
        /// The modulus length.
        bits: usize,
    },
    /// The chain is longer than allowed (or loops).
    #[error("certificate {subject}: chain longer than {max}")]
    ChainTooLong {
        /// Subject where the walk stopped.
        subject: String,
        /// The limit.
        max: usize,
    },
    /// The store handed in is not the one for the purpose.
    #[error("{purpose:?} needs the {needed:?} trust store, got {got:?}")]
    WrongStore {
        /// Requested purpose.
        purpose: Purpose,
        /// Store it needs.
        needed: StoreKind,
        /// Store given.
        got: StoreKind,
    },
    /// The certificate policies do not include the purpose's OID.
    #[error("certificate {subject}: policy {needed} for {purpose:?} missing")]
    Policy {
        /// Subject of the leaf.
        subject: String,
        /// Purpose checked.
        purpose: Purpose,
        /// Accepted OIDs.
        needed: String,
    },
    /// The HPKI certificate carries no hcRole under a configured coding
    /// scheme.
    #[error("certificate {subject}: no hcRole under a configured coding scheme")]
    MissingRole {
        /// Subject of the leaf.
        subject: String,
    },
    /// The hcRole held does not allow the action.
    #[error("certificate {subject}: role {held} not allowed, need one of {needed}")]
    RoleNotAllowed {
        /// Subject of the leaf.
        subject: String,
        /// Role names found.
        held: String,
        /// Roles accepted.
        needed: String,
    },
    /// The certificate is revoked.
    #[error("certificate {subject}: revoked (serial {serial}) at {revoked_at} (unix seconds)")]
    Revoked {
        /// Subject of the certificate.
        subject: String,
        /// Serial, hex.
        serial: String,
        /// Revocation date, unix seconds.
        revoked_at: i64,
    },
    /// The revocation source could not answer (wrong issuer, stale CRL, bad
    /// CRL signature, no OCSP answer): the certificate is refused.
    #[error("revocation status of {subject} unknown: {reason}")]
    RevocationUnknown {
        /// Subject of the certificate.
        subject: String,
        /// Why.
        reason: String,
    },
}

impl CertError {
    pub(crate) fn parse(what: &str, reason: impl std::fmt::Display) -> Self {
        CertError::Parse {
            what: what.to_owned(),
            reason: reason.to_string(),
        }
    }
}

/// A certificate that parsed completely, owning its DER. The parsed view is
/// rebuilt on demand by [`ParsedCert::x509`] (cheap, zero-copy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedCert {
    der: Vec<u8>,
    subject: String,
    issuer: String,
    serial: Vec<u8>,
    not_before: i64,
    not_after: i64,
}

impl ParsedCert {
    /// Parses one DER certificate; trailing bytes are refused.
    pub fn from_der(der: &[u8]) -> Result<Self, CertError> {
        let (rest, x) =
            X509Certificate::from_der(der).map_err(|e| CertError::parse("certificate", e))?;
        if !rest.is_empty() {
            return Err(CertError::parse(
                "certificate",
                "trailing bytes after certificate",
            ));
        }
        check_outer_der(der).map_err(|e| CertError::parse("certificate", e))?;
        Ok(ParsedCert {
            subject: x.subject().to_string(),
            issuer: x.issuer().to_string(),
            serial: x.raw_serial().to_vec(),
            not_before: x.validity().not_before.timestamp(),
            not_after: x.validity().not_after.timestamp(),
            der: der.to_vec(),
        })
    }

    /// The parsed view, borrowing this certificate's DER.
    pub fn x509(&self) -> Result<X509Certificate<'_>, CertError> {
        X509Certificate::from_der(&self.der)
            .map(|(_, x)| x)
            .map_err(|e| CertError::parse("certificate", e))
    }

    /// The DER bytes.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Subject distinguished name, as text.
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// Issuer distinguished name, as text.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// Serial number, raw big-endian bytes as encoded.
    pub fn serial(&self) -> &[u8] {
        &self.serial
    }

    /// Serial number as lowercase hex.
    pub fn serial_hex(&self) -> String {
        hex(&self.serial)
    }

    /// Refuses the certificate unless `not_before <= at <= not_after`.
    pub fn check_validity(&self, at: SystemTime) -> Result<(), CertError> {
        let t = crate::civil::unix(at);
        if t < self.not_before {
            return Err(CertError::NotYetValid {
                subject: self.subject.clone(),
                not_before: self.not_before,
            });
        }
        if t > self.not_after {
            return Err(CertError::Expired {
                subject: self.subject.clone(),
                not_after: self.not_after,
            });
        }
        Ok(())
    }
}

/// Decodes every `-----BEGIN <label>-----` block in `pem` with the given label.
pub fn pem_blocks(pem: &[u8], label: &str) -> Result<Vec<Vec<u8>>, CertError> {
    let mut out = Vec::new();
    for block in x509_parser::pem::Pem::iter_from_buffer(pem) {
        let block = block.map_err(|e| CertError::parse("PEM", e))?;
        if block.label == label {
            out.push(block.contents);
        }
    }
    Ok(out)
}

/// Seconds since the Unix epoch; times before it are negative.
/// The unsigned outer layer of a certificate, `SEQUENCE { tbsCertificate
/// SEQUENCE, signatureAlgorithm SEQUENCE, signatureValue BIT STRING }`, in
/// strict DER. x509-parser tolerates some wrong tags there, and the issuer's
/// signature covers only the TBS: without this a certificate could be
/// re-wrapped into different bytes (and so a different pseudonym, which is
/// the SHA-256 of the DER) that still verify.
fn check_outer_der(der: &[u8]) -> Result<(), &'static str> {
    use crate::der::{SEQUENCE, read_all, read_single};
    let outer = read_single(der, SEQUENCE)?;
    let [tbs, alg, sig] = read_all(outer.value)?[..] else {
        return Err("not a Certificate { tbs, signatureAlgorithm, signatureValue }");
    };
    if tbs.tag != SEQUENCE || alg.tag != SEQUENCE || sig.tag != 0x03 {
        return Err("not a Certificate { tbs, signatureAlgorithm, signatureValue }");
    }
    // RFC 5280 §4.1.1.2: the same bytes as the TBS's own signature field
    // (after the optional [0] version and the serial number).
    let fields = read_all(tbs.value)?;
    let skip = usize::from(fields.first().is_some_and(|f| f.tag == 0xa0)) + 1;
    if fields.get(skip).map(|f| f.raw) != Some(alg.raw) {
        return Err("signatureAlgorithm differs from the TBS's signature field");
    }
    // A signature is whole octets: no unused bits.
    if sig.value.first() != Some(&0) {
        return Err("signatureValue has unused bits");
    }
    Ok(())
}

pub(crate) use crate::hex;
