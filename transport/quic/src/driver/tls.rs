//! Mutual TLS between facilities.
//!
//! Every site holds a facility certificate issued by an institution CA
//! ([`SiteIdentity`]) and trusts a set of CAs and a list of facilities
//! ([`TrustConfig`]). Both ends verify the other's chain against the roots
//! (validity dates included) and check that the end-entity certificate names
//! an allowed facility, inside the TLS handshake: a peer that fails either
//! check never gets a connection, let alone a session.
//!
//! # Facility names in certificates
//! A facility `<id>` (the same string as [`Hello::site_id`](crate::proto::Hello::site_id),
//! e.g. `jp.hospital-b`) is named by a subjectAltName **DNS name**
//! `<id>.facility.med8k.invalid` ([`facility_dns_name`]). Only exact names
//! count: wildcards never name a facility. The subject CN and other SANs
//! are ignored. The client also connects with that DNS name as the TLS server
//! name, so rustls's own name check applies too.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore};
use rustls::{SignatureScheme, pki_types};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

/// The ALPN protocol both ends must offer.
pub const ALPN: &[u8] = b"med8k/1";

/// The DNS suffix under which facility certificates name their facility.
pub const FACILITY_DNS_SUFFIX: &str = "facility.med8k.invalid";

/// The subjectAltName DNS name that names facility `id` in a certificate.
pub fn facility_dns_name(id: &str) -> String {
    format!("{id}.{FACILITY_DNS_SUFFIX}")
}

/// Errors loading certificates or building TLS configurations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or parsed.
    #[error("cannot read {what} from {path}: {source}")]
    Pem {
        /// What was expected ("certificate chain", "private key", "CA roots").
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        source: pki_types::pem::Error,
    },
    /// A PEM file held no certificate.
    #[error("{path} holds no certificate")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// A root certificate was refused.
    #[error("CA root refused: {0}")]
    Root(rustls::Error),
    /// A facility id that cannot be a DNS name (or holds a wildcard).
    #[error("facility id {0:?} is not a valid DNS label sequence")]
    FacilityId(String),
    /// No CA root was configured.
    #[error("no CA root configured")]
    NoRoots,
    /// rustls refused the configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// This site's facility certificate chain and private key.
pub struct SiteIdentity {
    /// End-entity certificate first, then intermediates.
    pub cert_chain: Vec<CertificateDer<'static>>,
    /// The certificate's private key.
    pub key: PrivateKeyDer<'static>,
}

impl fmt::Debug for SiteIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteIdentity")
            .field("certificates", &self.cert_chain.len())
            .finish_non_exhaustive()
    }
}

impl Clone for SiteIdentity {
    fn clone(&self) -> SiteIdentity {
        SiteIdentity {
            cert_chain: self.cert_chain.clone(),
            key: self.key.clone_key(),
        }
    }
}

impl SiteIdentity {
    /// From DER values in memory.
    pub fn new(cert_chain: Vec<CertificateDer<'static>>, key: PrivateKeyDer<'static>) -> Self {
        SiteIdentity { cert_chain, key }
    }

    /// From PEM text: the chain (end-entity first) and the key (PKCS#8,
    /// PKCS#1 or SEC1).
    pub fn from_pem(chain_pem: &[u8], key_pem: &[u8]) -> Result<SiteIdentity, TlsError> {
        let here = PathBuf::from("<memory>");
        let cert_chain = CertificateDer::pem_slice_iter(chain_pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| TlsError::Pem {
                what: "certificate chain",
                path: here.clone(),
                source,
            })?;
        if cert_chain.is_empty() {
            return Err(TlsError::NoCertificate { path: here });
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| TlsError::Pem {
            what: "private key",
            path: here,
            source,
        })?;
        Ok(SiteIdentity { cert_chain, key })
    }

    /// From PEM files.
    pub fn from_pem_files(chain: &Path, key: &Path) -> Result<SiteIdentity, TlsError> {
        let cert_chain = CertificateDer::pem_file_iter(chain)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsError::Pem {
                what: "certificate chain",
                path: chain.to_owned(),
                source,
            })?;
        if cert_chain.is_empty() {
            return Err(TlsError::NoCertificate {
                path: chain.to_owned(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|source| TlsError::Pem {
            what: "private key",
            path: key.to_owned(),
            source,
        })?;
        Ok(SiteIdentity { cert_chain, key })
    }
}

/// Whom this site trusts: institution CA roots, and the facilities it will
/// talk to.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// Facility CA certificates.
    pub roots: Vec<CertificateDer<'static>>,
    /// Facility ids (as in [`Hello::site_id`](crate::proto::Hello::site_id))
    /// a peer certificate must name one of.
    pub allowed_facilities: Vec<String>,
}

impl TrustConfig {
    /// From DER roots and facility ids.
    pub fn new(roots: Vec<CertificateDer<'static>>, allowed_facilities: Vec<String>) -> Self {
        TrustConfig {
            roots,
            allowed_facilities,
        }
    }

    /// From PEM files of CA certificates (each may hold several).
    pub fn from_pem_files(
        roots: &[PathBuf],
        allowed_facilities: Vec<String>,
    ) -> Result<TrustConfig, TlsError> {
        let mut all = Vec::new();
        for path in roots {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|it| it.collect::<Result<Vec<_>, _>>())
                .map_err(|source| TlsError::Pem {
                    what: "CA roots",
                    path: path.clone(),
                    source,
                })?;
            if certs.is_empty() {
                return Err(TlsError::NoCertificate { path: path.clone() });
            }
            all.extend(certs);
        }
        Ok(TrustConfig::new(all, allowed_facilities))
    }

    fn root_store(&self) -> Result<Arc<RootCertStore>, TlsError> {
        if self.roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let mut store = RootCertStore::empty();
        for root in &self.roots {
            store.add(root.clone()).map_err(TlsError::Root)?;
        }
        Ok(Arc::new(store))
    }

    fn allowed_names(&self) -> Result<Arc<[String]>, TlsError> {
        self.allowed_facilities
            .iter()
            .map(|id| {
                let name = facility_dns_name(id);
                if id.is_empty() || id.contains('*') || ServerName::try_from(name.as_str()).is_err()
                {
                    return Err(TlsError::FacilityId(id.clone()));
                }
                Ok(name)
            })
            .collect()
    }
}

/// The facility an end-entity certificate names, if it names exactly one of
/// `allowed` (facility ids).
pub fn certificate_facility(cert: &CertificateDer<'_>, allowed: &[String]) -> Option<String> {
    let ee = webpki::EndEntityCert::try_from(cert).ok()?;
    let names: Vec<&str> = ee.valid_dns_names().collect();
    allowed
        .iter()
        .find(|id| {
            let want = facility_dns_name(id);
            names.iter().any(|n| n.eq_ignore_ascii_case(&want))
        })
        .cloned()
}

fn names_allowed(cert: &CertificateDer<'_>, allowed: &[String]) -> Result<(), rustls::Error> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let ok = ee
        .valid_dns_names()
        .any(|n| allowed.iter().any(|a| a.eq_ignore_ascii_case(n)));
    if ok {
        Ok(())
    } else {
        Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Fresh random bytes from the TLS provider's generator.
pub(crate) fn random_bytes(out: &mut [u8]) -> Result<(), rustls::Error> {
    provider()
        .secure_random
        .fill(out)
        .map_err(|_| rustls::Error::FailedToGetRandomBytes)
}

/// Chain check by webpki, then the facility check.
#[derive(Debug)]
struct FacilityClientVerifier {
    inner: Arc<dyn ClientCertVerifier>,
    /// Allowed facility DNS names.
    allowed: Arc<[String]>,
}

impl ClientCertVerifier for FacilityClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self
            .inner
            .verify_client_cert(end_entity, intermediates, now)?;
        names_allowed(end_entity, &self.allowed)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

#[derive(Debug)]
struct FacilityServerVerifier {
    inner: Arc<WebPkiServerVerifier>,
    allowed: Arc<[String]>,
}

impl ServerCertVerifier for FacilityServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let verified = self.inner.verify_server_cert(
            end_entity,
            intermediates,
            server_name,
            ocsp_response,
            now,
        )?;
        names_allowed(end_entity, &self.allowed)?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The rustls server configuration: TLS 1.3, ALPN `med8k/1`, mandatory
/// client certificates chained to `trust.roots` and naming an allowed
/// facility.
pub fn server_config(
    identity: &SiteIdentity,
    trust: &TrustConfig,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let inner = WebPkiClientVerifier::builder_with_provider(trust.root_store()?, provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = Arc::new(FacilityClientVerifier {
        inner,
        allowed: trust.allowed_names()?,
    });
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(identity.cert_chain.clone(), identity.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The rustls client configuration: TLS 1.3, ALPN `med8k/1`, the server's
/// chain checked against `trust.roots` and its facility against
/// `trust.allowed_facilities`, this site's certificate presented.
pub fn client_config(
    identity: &SiteIdentity,
    trust: &TrustConfig,
) -> Result<rustls::ClientConfig, TlsError> {
    let provider = provider();
    let inner = WebPkiServerVerifier::builder_with_provider(trust.root_store()?, provider.clone())
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let verifier = Arc::new(FacilityServerVerifier {
        inner,
        allowed: trust.allowed_names()?,
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_client_auth_cert(identity.cert_chain.clone(), identity.key.clone_key())
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![ALPN.to_vec()];
    Ok(config)
}

/// The facility a QUIC connection's peer certificate names (among
/// `allowed`), after the handshake.
pub fn peer_facility(conn: &quinn::Connection, allowed: &[String]) -> Option<String> {
    let identity = conn.peer_identity()?;
    let chain = identity.downcast::<Vec<CertificateDer<'static>>>().ok()?;
    certificate_facility(chain.first()?, allowed)
}
