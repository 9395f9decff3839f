//! Revocation, pluggable: CRLs from files ([`CrlFile`]) or fetched from the
//! certificates' distribution points ([`CrlFetcher`]), OCSP as an interface
//! ([`Ocsp`]). A source that cannot answer refuses the certificate.
//!
//! A check needs only what identifies a certificate on a CRL ([`CertRef`]:
//! issuer name, serial, whether it is a CA, its CRL distribution points),
//! so a certificate that is no longer kept (the consent ledger keeps no
//! patient certificate) can still be checked again.

mod crl;
mod fetch;

use std::time::SystemTime;

use super::{CertError, ParsedCert, VerifiedChain};

pub use crl::CrlFile;
pub use fetch::CrlFetcher;

/// What a revocation source needs to know of a certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertRef {
    /// How errors name it (a subject, or a pseudonym).
    pub label: String,
    /// The issuer's name, DER as in the certificate.
    pub issuer: Vec<u8>,
    /// The serial number, the INTEGER's contents as encoded.
    pub serial: Vec<u8>,
    /// Whether it is a CA certificate (for CRLs that hold only CAs or only
    /// end entities).
    pub is_ca: bool,
    /// The URIs of its CRL distribution points (for partitioned CRLs).
    pub crl_points: Vec<String>,
}

impl CertRef {
    /// The reference of `cert`, labelled with its subject.
    pub fn of(cert: &ParsedCert) -> Result<CertRef, CertError> {
        let x = cert.x509()?;
        let is_ca = x
            .basic_constraints()
            .map_err(|e| CertError::parse("basicConstraints", e))?
            .is_some_and(|bc| bc.value.ca);
        Ok(CertRef {
            label: cert.subject().to_owned(),
            issuer: x.issuer().as_raw().to_vec(),
            serial: cert.serial().to_vec(),
            is_ca,
            crl_points: crl_urls(cert)?,
        })
    }

    /// The same reference under another label (no patient data in errors).
    #[must_use]
    pub fn labelled(mut self, label: impl Into<String>) -> CertRef {
        self.label = label.into();
        self
    }

    /// The serial as lowercase hex.
    pub fn serial_hex(&self) -> String {
        crate::hex(&self.serial)
    }
}

/// Answers whether a certificate, issued by `issuer`, is revoked at `at`.
pub trait Revocation {
    /// `Ok(())` only when the source positively knows the certificate is not
    /// revoked at `at`; [`CertError::Revoked`] when it is;
    /// [`CertError::RevocationUnknown`] when it cannot tell.
    fn check_ref(
        &self,
        cert: &CertRef,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError>;

    /// [`Revocation::check_ref`] of a whole certificate.
    fn check(
        &self,
        cert: &ParsedCert,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError> {
        self.check_ref(&CertRef::of(cert)?, issuer, at)
    }

    /// Checks every certificate of `chain` except the trust anchor.
    fn check_chain(&self, chain: &VerifiedChain, at: SystemTime) -> Result<(), CertError> {
        let certs = chain.certs();
        for pair in certs.windows(2) {
            if let [cert, issuer] = pair {
                self.check(cert, issuer, at)?;
            }
        }
        Ok(())
    }
}

impl<R: Revocation + ?Sized> Revocation for std::sync::Arc<R> {
    fn check_ref(
        &self,
        cert: &CertRef,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError> {
        (**self).check_ref(cert, issuer, at)
    }
}

/// The HTTP(S)/LDAP URIs of the certificate's CRL distribution points, for a
/// fetcher that downloads them and hands the bytes to [`CrlFile::add_der`].
pub fn crl_urls(cert: &ParsedCert) -> Result<Vec<String>, CertError> {
    use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
    let x = cert.x509()?;
    let mut out = Vec::new();
    for ext in x.extensions() {
        if let ParsedExtension::CRLDistributionPoints(points) = ext.parsed_extension() {
            for p in points.iter() {
                if let Some(DistributionPointName::FullName(names)) = &p.distribution_point {
                    for n in names {
                        if let GeneralName::URI(u) = n {
                            out.push((*u).to_owned());
                        }
                    }
                }
            }
        }
    }
    Ok(out)
}

/// What an OCSP responder says about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OcspStatus {
    /// Not revoked.
    Good,
    /// Revoked at this time (unix seconds).
    Revoked(i64),
    /// The responder does not know the certificate.
    Unknown,
}

/// The interface an OCSP client implements (none ships yet). The
/// implementation builds the request (CertID from `cert` and `issuer`), checks
/// the response's signature, its responder authorization and freshness at
/// `at`, and returns the status; transport errors are
/// [`CertError::RevocationUnknown`]. Wrap it in [`OcspRevocation`] to use it
/// as a [`Revocation`].
pub trait Ocsp {
    /// Status of `cert` at `at`.
    fn status(
        &self,
        cert: &CertRef,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<OcspStatus, CertError>;
}

/// Adapts an [`Ocsp`] client to [`Revocation`]; `Unknown` refuses.
#[derive(Debug, Clone)]
pub struct OcspRevocation<O>(pub O);

impl<O: Ocsp> Revocation for OcspRevocation<O> {
    fn check_ref(
        &self,
        cert: &CertRef,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError> {
        match self.0.status(cert, issuer, at)? {
            OcspStatus::Good => Ok(()),
            OcspStatus::Revoked(revoked_at) => Err(CertError::Revoked {
                subject: cert.label.clone(),
                serial: cert.serial_hex(),
                revoked_at,
            }),
            OcspStatus::Unknown => Err(CertError::RevocationUnknown {
                subject: cert.label.clone(),
                reason: "OCSP responder answered unknown".to_owned(),
            }),
        }
    }
}
