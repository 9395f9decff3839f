//! Stage one: the chain to a trust anchor, validity, CA constraints, key usage.

use std::path::PathBuf;
use std::time::SystemTime;

use x509_parser::certificate::X509Certificate;

use super::{CertError, ParsedCert, Purpose, pem_blocks};

/// Longest chain walked, anchors included; stops loops too.
const MAX_CHAIN: usize = 8;

/// Which PKI a [`TrustStore`] holds anchors for. The stores are kept apart so a
/// facility CA can never vouch for a JPKI or HPKI identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreKind {
    /// J-LIS root(s) for the individual number card (JPKI).
    Jpki,
    /// HPKI roots (MEDIS-DC, JMA, ...).
    Hpki,
    /// Facility CAs configured by the deployment.
    Facility,
}

/// Trust anchors of one kind.
#[derive(Debug, Clone)]
pub struct TrustStore {
    kind: StoreKind,
    anchors: Vec<ParsedCert>,
}

impl TrustStore {
    /// An empty store for `kind`.
    pub fn new(kind: StoreKind) -> Self {
        TrustStore {
            kind,
            anchors: Vec::new(),
        }
    }

    /// The kind of anchors held.
    pub fn kind(&self) -> StoreKind {
        self.kind
    }

    /// Adds one DER anchor.
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), CertError> {
        self.anchors.push(ParsedCert::from_der(der)?);
        Ok(())
    }

    /// Adds every `CERTIFICATE` block of a PEM bundle; returns how many.
    pub fn add_pem(&mut self, pem: &[u8]) -> Result<usize, CertError> {
        let blocks = pem_blocks(pem, "CERTIFICATE")?;
        for der in &blocks {
            self.add_der(der)?;
        }
        Ok(blocks.len())
    }

    /// The anchors.
    pub fn anchors(&self) -> &[ParsedCert] {
        &self.anchors
    }

    /// A store of `kind` holding every `CERTIFICATE` block of `files` (PEM);
    /// a file that cannot be read, a block that is not a usable CA
    /// certificate and a file without a block are each an error naming it.
    pub fn from_pem_files(kind: StoreKind, files: &[PathBuf]) -> Result<Self, TrustFileError> {
        let mut store = TrustStore::new(kind);
        for path in files {
            let pem = std::fs::read(path).map_err(|source| TrustFileError::Read {
                path: path.clone(),
                source,
            })?;
            let n = store
                .add_pem(&pem)
                .map_err(|source| TrustFileError::Certificate {
                    path: path.clone(),
                    source,
                })?;
            if n == 0 {
                return Err(TrustFileError::Empty(path.clone()));
            }
        }
        Ok(store)
    }
}

/// A trust anchor file that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TrustFileError {
    /// The file cannot be read.
    #[error("trust anchors {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// A block is not a certificate a store takes.
    #[error("trust anchors {path}: {source}")]
    Certificate {
        /// The file.
        path: PathBuf,
        /// Why.
        source: CertError,
    },
    /// The file holds no `CERTIFICATE` block.
    #[error("{0} holds no CERTIFICATE block")]
    Empty(PathBuf),
}

/// A chain that passed stage one.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    purpose: Purpose,
    /// Leaf first, anchor last.
    certs: Vec<ParsedCert>,
}

impl VerifiedChain {
    /// The purpose it was verified for.
    pub fn purpose(&self) -> Purpose {
        self.purpose
    }

    /// The end-entity certificate.
    pub fn leaf(&self) -> &ParsedCert {
        // `certs` always holds at least the leaf and the anchor.
        &self.certs[0]
    }

    /// Leaf first, trust anchor last.
    pub fn certs(&self) -> &[ParsedCert] {
        &self.certs
    }

    /// The certificate that issued `certs()[i]`, if any.
    pub fn issuer_of(&self, i: usize) -> Option<&ParsedCert> {
        self.certs.get(i + 1)
    }
}

/// Verifies `leaf_der` up to an anchor of `store` at time `at` for `purpose`.
///
/// `intermediates` may come in any order and may hold extras. Every link's
/// signature is checked with its issuer's key, and must use an accepted
/// algorithm (no SHA-1); no RSA key in the path is under 2048 bits; every
/// certificate, the anchor included, must be valid at `at`; every issuer
/// must be a CA (basicConstraints CA, keyCertSign when key usage is
/// present, pathLenConstraint counting the CAs below it); a critical
/// extension this code does not enforce refuses the certificate, and so do
/// nameConstraints on a CA; the leaf must carry the key usage of `purpose`.
/// Names chain by exact DER equality. Policies along the path are the
/// profile's ([`super::Profile::check`]).
pub fn verify_chain(
    leaf_der: &[u8],
    intermediates: &[&[u8]],
    store: &TrustStore,
    purpose: Purpose,
    at: SystemTime,
) -> Result<VerifiedChain, CertError> {
    if store.kind != purpose.store() {
        return Err(CertError::WrongStore {
            purpose,
            needed: purpose.store(),
            got: store.kind,
        });
    }
    let leaf = ParsedCert::from_der(leaf_der)?;
    let inters = intermediates
        .iter()
        .map(|d| ParsedCert::from_der(d))
        .collect::<Result<Vec<_>, _>>()?;

    leaf.check_validity(at)?;
    check_extensions(&leaf, false)?;
    check_key(&leaf)?;
    check_leaf_key_usage(&leaf, purpose)?;

    let mut certs = vec![leaf];
    loop {
        if certs.len() >= MAX_CHAIN {
            let subject = certs.last().map(|c| c.subject.clone()).unwrap_or_default();
            return Err(CertError::ChainTooLong {
                subject,
                max: MAX_CHAIN,
            });
        }
        let Some(child) = certs.last() else {
            return Err(CertError::parse("certificate", "empty chain"));
        };
        // CAs between the issuer sought and the leaf, for its
        // pathLenConstraint: every certificate walked so far but the leaf.
        let below = certs.len() - 1;
        check_algorithm(child)?;
        let (issuer, is_anchor) = find_issuer(child, &inters, store)?;
        check_ca(&issuer, below)?;
        issuer.check_validity(at)?;
        check_extensions(&issuer, true)?;
        check_key(&issuer)?;
        certs.push(issuer);
        if is_anchor {
            return Ok(VerifiedChain { purpose, certs });
        }
    }
}

/// Anchors first, then intermediates, whose subject equals the child's issuer
/// and whose key verifies the child's signature.
fn find_issuer(
    child: &ParsedCert,
    inters: &[ParsedCert],
    store: &TrustStore,
) -> Result<(ParsedCert, bool), CertError> {
    let cx = child.x509()?;
    let want = cx.issuer().as_raw();
    let mut name_matched = false;
    let candidates = store
        .anchors
        .iter()
        .map(|c| (c, true))
        .chain(inters.iter().map(|c| (c, false)));
    for (cand, is_anchor) in candidates {
        let ix = cand.x509()?;
        if ix.subject().as_raw() != want {
            continue;
        }
        name_matched = true;
        if cx.verify_signature(Some(ix.public_key())).is_ok() {
            return Ok((cand.clone(), is_anchor));
        }
    }
    if name_matched {
        Err(CertError::BadSignature {
            subject: child.subject.clone(),
            issuer: child.issuer.clone(),
        })
    } else {
        Err(CertError::UnknownIssuer {
            subject: child.subject.clone(),
            issuer: child.issuer.clone(),
        })
    }
}

/// Extensions whose criticality this code honours: it enforces them
/// (keyUsage, basicConstraints, certificatePolicies through the profile,
/// subjectDirectoryAttributes' hcRole) or they only name the subject
/// (subjectAltName). Any other critical extension refuses the certificate
/// (RFC 5280 §4.2): among them policyConstraints, policyMappings,
/// inhibitAnyPolicy and extendedKeyUsage, which are recognised but not
/// enforced here.
const ENFORCED_CRITICAL: [&str; 5] = [
    "2.5.29.15", // keyUsage
    "2.5.29.19", // basicConstraints
    "2.5.29.32", // certificatePolicies
    "2.5.29.17", // subjectAltName
    "2.5.29.9",  // subjectDirectoryAttributes
];

/// nameConstraints: never enforced on JPKI/HPKI/facility paths checked
/// here, so a CA carrying it is refused (facility links, which rustls-webpki
/// checks, do enforce it).
const NAME_CONSTRAINTS: &str = "2.5.29.30";

/// Refuses a certificate with a critical extension this code does not
/// enforce, a CA with nameConstraints, an extension that does not parse,
/// or the same extension twice.
fn check_extensions(cert: &ParsedCert, is_ca: bool) -> Result<(), CertError> {
    let x = cert.x509()?;
    let refuse = |oid: String, reason: &str| CertError::ExtensionNotEnforced {
        subject: cert.subject.clone(),
        oid,
        reason: reason.to_owned(),
    };
    let mut seen = Vec::new();
    for ext in x.extensions() {
        let oid = ext.oid.to_id_string();
        if seen.contains(&oid) {
            return Err(refuse(oid, "the extension appears twice"));
        }
        if ext.parsed_extension().error().is_some() {
            return Err(refuse(oid, "the extension does not parse"));
        }
        if is_ca && oid == NAME_CONSTRAINTS {
            return Err(refuse(
                oid,
                "a CA with name constraints: they are not enforced on this path",
            ));
        }
        if ext.critical && !ENFORCED_CRITICAL.contains(&oid.as_str()) {
            return Err(if ext.parsed_extension().unsupported() {
                CertError::UnknownCriticalExtension {
                    subject: cert.subject.clone(),
                    oid,
                }
            } else {
                refuse(oid, "critical, and not enforced here")
            });
        }
        seen.push(oid);
    }
    Ok(())
}

/// Signature algorithms accepted on certificates and CRLs: RSA PKCS#1
/// v1.5 and PSS with SHA-2, ECDSA with SHA-256/384, Ed25519. SHA-1, MD5 and
/// DSA are refused.
pub(crate) const ACCEPTED_SIGNATURES: [&str; 7] = [
    "1.2.840.113549.1.1.11", // sha256WithRSAEncryption
    "1.2.840.113549.1.1.12", // sha384WithRSAEncryption
    "1.2.840.113549.1.1.13", // sha512WithRSAEncryption
    "1.2.840.113549.1.1.10", // RSASSA-PSS (SHA-2 parameters only, by the verifier)
    "1.2.840.10045.4.3.2",   // ecdsa-with-SHA256
    "1.2.840.10045.4.3.3",   // ecdsa-with-SHA384
    "1.3.101.112",           // Ed25519
];

/// Refuses a certificate signed with an algorithm not in
/// [`ACCEPTED_SIGNATURES`].
fn check_algorithm(cert: &ParsedCert) -> Result<(), CertError> {
    let x = cert.x509()?;
    let alg = x.signature_algorithm.algorithm.to_id_string();
    if ACCEPTED_SIGNATURES.contains(&alg.as_str()) {
        Ok(())
    } else {
        Err(CertError::WeakAlgorithm {
            subject: cert.subject.clone(),
            algorithm: alg,
        })
    }
}

/// The smallest RSA modulus accepted anywhere in a path.
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// Bits of a big-endian unsigned magnitude.
pub(crate) fn bit_length(magnitude: &[u8]) -> usize {
    let m = &magnitude[magnitude.iter().take_while(|b| **b == 0).count()..];
    match m.first() {
        Some(top) => m.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// Refuses an RSA key under [`MIN_RSA_BITS`].
pub(crate) fn check_key(cert: &ParsedCert) -> Result<(), CertError> {
    use x509_parser::public_key::PublicKey;
    let x = cert.x509()?;
    if let Ok(PublicKey::RSA(rsa)) = x.public_key().parsed() {
        let bits = bit_length(rsa.modulus);
        if bits < MIN_RSA_BITS {
            return Err(CertError::WeakKey {
                subject: cert.subject.clone(),
                bits,
            });
        }
    }
    Ok(())
}

fn check_ca(issuer: &ParsedCert, cas_below: usize) -> Result<(), CertError> {
    let x = issuer.x509()?;
    let not_ca = |reason: &str| CertError::NotCa {
        subject: issuer.subject.clone(),
        reason: reason.to_owned(),
    };
    let bc = x
        .basic_constraints()
        .map_err(|e| CertError::parse("basicConstraints", e))?
        .ok_or_else(|| not_ca("no basicConstraints"))?;
    if !bc.value.ca {
        return Err(not_ca("basicConstraints CA is false"));
    }
    if let Some(max) = bc.value.path_len_constraint
        && usize::try_from(max).is_ok_and(|m| cas_below > m)
    {
        return Err(not_ca(&format!(
            "pathLenConstraint {max} exceeded by {cas_below} intermediate CA(s)"
        )));
    }
    if let Some(ku) = key_usage(&x)?
        && !ku.key_cert_sign()
    {
        return Err(not_ca("key usage lacks keyCertSign"));
    }
    Ok(())
}

fn check_leaf_key_usage(leaf: &ParsedCert, purpose: Purpose) -> Result<(), CertError> {
    let x = leaf.x509()?;
    let needed = if purpose.is_signing() {
        "digitalSignature or nonRepudiation"
    } else {
        "digitalSignature"
    };
    let ok = match key_usage(&x)? {
        Some(ku) if purpose.is_signing() => ku.digital_signature() || ku.non_repudiation(),
        Some(ku) => ku.digital_signature(),
        None => false,
    };
    if ok {
        Ok(())
    } else {
        Err(CertError::KeyUsage {
            subject: leaf.subject.clone(),
            needed: needed.to_owned(),
        })
    }
}

fn key_usage(
    x: &X509Certificate<'_>,
) -> Result<Option<x509_parser::extensions::KeyUsage>, CertError> {
    Ok(x.key_usage()
        .map_err(|e| CertError::parse("keyUsage", e))?
        .map(|k| *k.value))
}
