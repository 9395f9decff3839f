//! Throwaway certificates for benchmarks, demos and tests: an institution CA
//! made in memory and facility certificates it signs, named by the facility
//! convention ([`facility_dns_name`]).
//!
//! Never use these for a real link: the keys live in memory, are not
//! protected and the CA is trusted by nothing else.
//!
//! ```
//! use med8k_transport::pki::Ephemeral;
//!
//! let ca = Ephemeral::new("Bench CA").unwrap();
//! let a = ca.facility("jp.hospital-a").unwrap();
//! assert!(a.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
//! let _identity = a.identity();
//! ```

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::driver::tls::facility_dns_name;
use crate::driver::{SiteIdentity, TrustConfig};

/// A certificate could not be generated.
#[derive(Debug, thiserror::Error)]
#[error("cannot generate a certificate: {0}")]
pub struct PkiError(#[from] rcgen::Error);

/// An in-memory institution CA.
pub struct Ephemeral {
    issuer: Issuer<'static, KeyPair>,
    /// Its self-signed certificate.
    pub cert: CertificateDer<'static>,
    /// The same, PEM.
    pub cert_pem: String,
}

impl std::fmt::Debug for Ephemeral {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ephemeral").finish_non_exhaustive()
    }
}

/// A facility certificate and its key.
#[derive(Clone)]
pub struct FacilityCert {
    /// The certificate (DER).
    pub cert: CertificateDer<'static>,
    /// The PKCS#8 key (DER).
    pub key: Vec<u8>,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The key, PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for FacilityCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FacilityCert").finish_non_exhaustive()
    }
}

impl Ephemeral {
    /// A new self-signed CA named `name`.
    pub fn new(name: &str) -> Result<Ephemeral, PkiError> {
        let mut p = CertificateParams::new(Vec::<String>::new())?;
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.distinguished_name.push(DnType::CommonName, name);
        p.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate()?;
        let cert = p.self_signed(&key)?;
        Ok(Ephemeral {
            cert: cert.der().clone(),
            cert_pem: cert.pem(),
            issuer: Issuer::new(p, key),
        })
    }

    /// A certificate for `facility`, valid now, for both TLS ends.
    pub fn facility(&self, facility: &str) -> Result<FacilityCert, PkiError> {
        let mut p = CertificateParams::new(vec![facility_dns_name(facility)])?;
        p.distinguished_name.push(DnType::CommonName, facility);
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate()?;
        let cert = p.signed_by(&key, &self.issuer)?;
        Ok(FacilityCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert: cert.der().clone(),
            key: key.serialize_der(),
        })
    }

    /// Trust in this CA alone, allowing `allowed`.
    pub fn trust(&self, allowed: Vec<String>) -> TrustConfig {
        TrustConfig::new(vec![self.cert.clone()], allowed)
    }
}

impl FacilityCert {
    /// The driver's identity from this certificate.
    pub fn identity(&self) -> SiteIdentity {
        SiteIdentity::new(
            vec![self.cert.clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone())),
        )
    }
}
