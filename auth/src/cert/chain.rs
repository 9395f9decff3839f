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
/// signature is checked with its issuer's key; every certificate, the anchor
/// included, must be valid at `at`; every issuer must be a CA (basicConstraints
/// CA, keyCertSign when key usage is present, path length respected); the leaf
/// must carry the key usage of `purpose`. Names chain by exact DER equality.
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
    check_critical_extensions(&leaf)?;
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
        // CAs between this child and the leaf, for pathLenConstraint.
        let below = certs.len().saturating_sub(2);
        let (issuer, is_anchor) = find_issuer(child, &inters, store)?;
        check_ca(&issuer, below)?;
        issuer.check_validity(at)?;
        check_critical_extensions(&issuer)?;
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

/// Refuses critical extensions x509-parser does not decode; subjectDirectoryAttributes
/// is understood here (hcRole) even though x509-parser leaves it opaque.
fn check_critical_extensions(cert: &ParsedCert) -> Result<(), CertError> {
    let x = cert.x509()?;
    for ext in x.extensions() {
        if ext.critical
            && ext.parsed_extension().unsupported()
            && ext.oid.to_id_string() != "2.5.29.9"
        {
            return Err(CertError::UnknownCriticalExtension {
                subject: cert.subject.clone(),
                oid: ext.oid.to_id_string(),
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
