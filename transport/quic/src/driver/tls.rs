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
//!
//! # Which CA may name which facility
//! A facility is named only by the CAs bound to it
//! ([`TrustConfig::with_facility_roots`]): a second institution CA in the
//! roots cannot issue a certificate for another institution's facility.
//! With one root, that root names every allowed facility; with several,
//! every allowed facility must be bound ([`TlsError::Unbound`]). The chain
//! itself, name constraints and path lengths included, is checked by
//! rustls-webpki, and so are the facility CAs' CRLs
//! ([`TrustConfig::with_crls`]): with CRLs given, every certificate of a
//! peer's chain must be covered by a current CRL, or the peer is refused.

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
use rustls_pki_types::{
    CertificateDer, CertificateRevocationListDer, PrivateKeyDer, ServerName, UnixTime,
};

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
    /// Several CA roots, and a facility not bound to the ones that may name
    /// it.
    #[error(
        "facility {0:?}: with several CA roots, each allowed facility must name the CA(s) that may issue its certificate"
    )]
    Unbound(String),
    /// A CRL file could not be read.
    #[error("cannot read CRLs from {path}: {source}")]
    Crl {
        /// The file.
        path: PathBuf,
        /// Why.
        source: pki_types::pem::Error,
    },
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

/// Whom this site trusts: institution CA roots, the facilities it will
/// talk to, which CA may name which facility, and the CAs' CRLs.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// Facility CA certificates.
    pub roots: Vec<CertificateDer<'static>>,
    /// Facility ids (as in [`Hello::site_id`](crate::proto::Hello::site_id))
    /// a peer certificate must name one of.
    pub allowed_facilities: Vec<String>,
    /// Per facility, the CA certificates that may name it.
    facility_roots: Vec<(String, Vec<CertificateDer<'static>>)>,
    /// CRLs of the facility CAs.
    crls: Vec<CertificateRevocationListDer<'static>>,
}

impl TrustConfig {
    /// From DER roots and facility ids.
    pub fn new(roots: Vec<CertificateDer<'static>>, allowed_facilities: Vec<String>) -> Self {
        TrustConfig {
            roots,
            allowed_facilities,
            facility_roots: Vec::new(),
            crls: Vec::new(),
        }
    }

    /// Only `roots` may name `facility` (they are trusted as roots too).
    #[must_use]
    pub fn with_facility_roots(
        mut self,
        facility: &str,
        roots: Vec<CertificateDer<'static>>,
    ) -> Self {
        for r in &roots {
            if !self.roots.contains(r) {
                self.roots.push(r.clone());
            }
        }
        self.facility_roots.retain(|(f, _)| f != facility);
        self.facility_roots.push((facility.to_owned(), roots));
        self
    }

    /// Checks peers' chains against these CRLs (DER).
    #[must_use]
    pub fn with_crls(mut self, crls: Vec<CertificateRevocationListDer<'static>>) -> Self {
        self.crls = crls;
        self
    }

    /// From PEM files of CA certificates (each may hold several).
    pub fn from_pem_files(
        roots: &[PathBuf],
        allowed_facilities: Vec<String>,
    ) -> Result<TrustConfig, TlsError> {
        Ok(TrustConfig::new(read_roots(roots)?, allowed_facilities))
    }

    /// The roots that may name `facility`.
    fn roots_for(&self, facility: &str) -> Result<&[CertificateDer<'static>], TlsError> {
        match self.facility_roots.iter().find(|(f, _)| f == facility) {
            Some((_, roots)) => Ok(roots),
            None if self.roots.len() == 1 => Ok(&self.roots),
            None => Err(TlsError::Unbound(facility.to_owned())),
        }
    }

    fn root_store(roots: &[CertificateDer<'static>]) -> Result<Arc<RootCertStore>, TlsError> {
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let mut store = RootCertStore::empty();
        for root in roots {
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

/// Every certificate of the PEM files `paths`.
pub fn read_roots(paths: &[PathBuf]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let mut all = Vec::new();
    for path in paths {
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
    Ok(all)
}

/// Every CRL of the PEM files `paths`.
pub fn read_crls(
    paths: &[PathBuf],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut all = Vec::new();
    for path in paths {
        let crls = CertificateRevocationListDer::pem_file_iter(path)
            .and_then(|it| it.collect::<Result<Vec<_>, _>>())
            .map_err(|source| TlsError::Crl {
                path: path.clone(),
                source,
            })?;
        if crls.is_empty() {
            return Err(TlsError::NoCertificate { path: path.clone() });
        }
        all.extend(crls);
    }
    Ok(all)
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

/// The allowed facility DNS names `cert` carries.
fn named_facilities(
    cert: &CertificateDer<'_>,
    allowed: &[(String, String)],
) -> Result<Vec<usize>, rustls::Error> {
    let ee = webpki::EndEntityCert::try_from(cert)
        .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let names: Vec<&str> = ee.valid_dns_names().collect();
    let found: Vec<usize> = allowed
        .iter()
        .enumerate()
        .filter(|(_, (_, dns))| names.iter().any(|n| n.eq_ignore_ascii_case(dns)))
        .map(|(i, _)| i)
        .collect();
    if found.is_empty() {
        return Err(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ));
    }
    Ok(found)
}

/// (facility id, its DNS name) of every allowed facility.
fn facility_names(trust: &TrustConfig) -> Result<Vec<(String, String)>, TlsError> {
    Ok(trust
        .allowed_facilities
        .iter()
        .cloned()
        .zip(trust.allowed_names()?.iter().cloned())
        .collect())
}

/// Per allowed facility, webpki's chain check against the roots that may
/// name it (with the CRLs); a peer certificate must pass it for every
/// allowed facility it names.
#[derive(Debug)]
struct FacilityClientVerifier {
    /// All roots: root hints and handshake signatures.
    any: Arc<dyn ClientCertVerifier>,
    facilities: Vec<(String, String)>,
    /// One verifier per entry of `facilities`.
    per_facility: Vec<Arc<dyn ClientCertVerifier>>,
}

impl ClientCertVerifier for FacilityClientVerifier {
    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.any.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let mut verified = None;
        for i in named_facilities(end_entity, &self.facilities)? {
            verified =
                Some(self.per_facility[i].verify_client_cert(end_entity, intermediates, now)?);
        }
        verified.ok_or(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.any.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.any.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.any.supported_verify_schemes()
    }
}

#[derive(Debug)]
struct FacilityServerVerifier {
    any: Arc<WebPkiServerVerifier>,
    facilities: Vec<(String, String)>,
    per_facility: Vec<Arc<WebPkiServerVerifier>>,
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
        let mut verified = None;
        for i in named_facilities(end_entity, &self.facilities)? {
            verified = Some(self.per_facility[i].verify_server_cert(
                end_entity,
                intermediates,
                server_name,
                ocsp_response,
                now,
            )?);
        }
        verified.ok_or(rustls::Error::InvalidCertificate(
            CertificateError::ApplicationVerificationFailure,
        ))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.any.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.any.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.any.supported_verify_schemes()
    }
}

fn client_verifier(
    roots: &[CertificateDer<'static>],
    crls: &[CertificateRevocationListDer<'static>],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<dyn ClientCertVerifier>, TlsError> {
    let mut b = WebPkiClientVerifier::builder_with_provider(
        TrustConfig::root_store(roots)?,
        provider.clone(),
    );
    if !crls.is_empty() {
        b = b
            .with_crls(crls.iter().cloned())
            .enforce_revocation_expiration();
    }
    b.build().map_err(|e| TlsError::Config(e.to_string()))
}

fn server_verifier(
    roots: &[CertificateDer<'static>],
    crls: &[CertificateRevocationListDer<'static>],
    provider: &Arc<CryptoProvider>,
) -> Result<Arc<WebPkiServerVerifier>, TlsError> {
    let mut b = WebPkiServerVerifier::builder_with_provider(
        TrustConfig::root_store(roots)?,
        provider.clone(),
    );
    if !crls.is_empty() {
        b = b
            .with_crls(crls.iter().cloned())
            .enforce_revocation_expiration();
    }
    b.build().map_err(|e| TlsError::Config(e.to_string()))
}

/// The rustls server configuration: TLS 1.3, ALPN `med8k/1`, mandatory
/// client certificates naming an allowed facility and chained to a root
/// that may name it (not revoked, with CRLs).
pub fn server_config(
    identity: &SiteIdentity,
    trust: &TrustConfig,
) -> Result<rustls::ServerConfig, TlsError> {
    let provider = provider();
    let facilities = facility_names(trust)?;
    let per_facility = facilities
        .iter()
        .map(|(id, _)| client_verifier(trust.roots_for(id)?, &trust.crls, &provider))
        .collect::<Result<_, _>>()?;
    let verifier = Arc::new(FacilityClientVerifier {
        any: client_verifier(&trust.roots, &trust.crls, &provider)?,
        facilities,
        per_facility,
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
    let facilities = facility_names(trust)?;
    let per_facility = facilities
        .iter()
        .map(|(id, _)| server_verifier(trust.roots_for(id)?, &trust.crls, &provider))
        .collect::<Result<_, _>>()?;
    let verifier = Arc::new(FacilityServerVerifier {
        any: server_verifier(&trust.roots, &trust.crls, &provider)?,
        facilities,
        per_facility,
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
