//! Revocation, pluggable: CRLs now ([`CrlFile`]), OCSP as an interface
//! ([`Ocsp`]). A source that cannot answer refuses the certificate.

use std::time::SystemTime;

use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::{CertError, ParsedCert, VerifiedChain, pem_blocks};

/// Answers whether `cert`, issued by `issuer`, is revoked at `at`.
pub trait Revocation {
    /// `Ok(())` only when the source positively knows the certificate is not
    /// revoked at `at`; [`CertError::Revoked`] when it is;
    /// [`CertError::RevocationUnknown`] when it cannot tell.
    fn check(
        &self,
        cert: &ParsedCert,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError>;

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
    fn check(
        &self,
        cert: &ParsedCert,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError> {
        (**self).check(cert, issuer, at)
    }
}

/// CRLs fetched from the `http://` URLs in each certificate's CRL
/// distribution points (RFC 5280 §4.2.1.13; CRLs are served over plain HTTP
/// by convention, being signed), kept until their nextUpdate, then checked
/// as [`CrlFile`] checks them.
///
/// Blocking, with a connect and read timeout and a size limit; a CRL that
/// cannot be fetched leaves the status unknown, and the certificate is
/// refused. `https://` and `ldap://` points are skipped.
#[derive(Debug)]
pub struct CrlFetcher {
    timeout: std::time::Duration,
    max_bytes: usize,
    cache: std::sync::Mutex<Vec<(String, Vec<u8>, i64)>>,
}

impl Default for CrlFetcher {
    fn default() -> Self {
        CrlFetcher {
            timeout: std::time::Duration::from_secs(5),
            max_bytes: 16 << 20,
            cache: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl CrlFetcher {
    /// A fetcher with a 5 s timeout and a 16 MiB limit per CRL.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the connect and read timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The CRL at `url`: from the cache while current at `t`, else fetched.
    fn crl(&self, url: &str, t: i64) -> Result<Vec<u8>, String> {
        let mut cache = self
            .cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, der, _)) = cache.iter().find(|(u, _, next)| u == url && t <= *next) {
            return Ok(der.clone());
        }
        let der = http_get(url, self.timeout, self.max_bytes)?;
        let (_, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| format!("{url}: not a CRL: {e}"))?;
        let next = crl.next_update().map_or(i64::MIN, |n| n.timestamp());
        cache.retain(|(u, _, _)| u != url);
        cache.push((url.to_owned(), der.clone(), next));
        Ok(der)
    }
}

impl Revocation for CrlFetcher {
    fn check(
        &self,
        cert: &ParsedCert,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError> {
        let t = crate::civil::unix(at);
        let mut crls = CrlFile::new();
        let mut failures = Vec::new();
        for url in crl_urls(cert)? {
            match self.crl(&url, t) {
                Ok(der) => crls.add_der(&der)?,
                Err(e) => failures.push(e),
            }
        }
        if crls.crls.is_empty() {
            return Err(CertError::RevocationUnknown {
                subject: cert.subject().to_owned(),
                reason: if failures.is_empty() {
                    "no http:// CRL distribution point".to_owned()
                } else {
                    failures.join("; ")
                },
            });
        }
        crls.check(cert, issuer, at)
    }
}

/// `GET url` over HTTP/1.1 (`http://host[:port]/path` only): the body of a
/// 200 answer, at most `max_bytes`.
fn http_get(url: &str, timeout: std::time::Duration, max_bytes: usize) -> Result<Vec<u8>, String> {
    use std::io::{Read, Write};
    use std::net::{TcpStream, ToSocketAddrs};

    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// CRL points are fetched"))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host_port = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !authority.ends_with(']')
    {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    let addr = host_port
        .to_socket_addrs()
        .map_err(|e| format!("{url}: {e}"))?
        .next()
        .ok_or_else(|| format!("{url}: no address"))?;
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|e| format!("{url}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(|e| format!("{url}: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/pkix-crl\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|e| format!("{url}: {e}"))?;
    let mut answer = Vec::new();
    stream
        .take(max_bytes as u64 + 64 * 1024)
        .read_to_end(&mut answer)
        .map_err(|e| format!("{url}: {e}"))?;
    let split = answer
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{url}: no HTTP header"))?;
    let head = String::from_utf8_lossy(&answer[..split]).to_string();
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        return Err(format!("{url}: {status}"));
    }
    if head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("transfer-encoding:"))
    {
        return Err(format!("{url}: chunked answers are not read"));
    }
    let body = answer[split + 4..].to_vec();
    if body.len() > max_bytes {
        return Err(format!("{url}: CRL over {max_bytes} bytes"));
    }
    Ok(body)
}

/// CRLs loaded from files or bytes fetched from a CRL distribution point URL
/// (fetching is the caller's: this type does no I/O).
///
/// A CRL is used for a certificate when its issuer name equals the
/// certificate's issuer, its signature verifies with the issuer's key, and
/// `thisUpdate <= at <= nextUpdate`. Without such a CRL the status is unknown
/// and the certificate refused.
#[derive(Debug, Clone, Default)]
pub struct CrlFile {
    crls: Vec<Vec<u8>>,
}

impl CrlFile {
    /// No CRLs yet.
    pub fn new() -> Self {
        CrlFile::default()
    }

    /// Adds one DER CRL (parsed now, so bad bytes are refused up front).
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), CertError> {
        let (rest, _) =
            CertificateRevocationList::from_der(der).map_err(|e| CertError::parse("CRL", e))?;
        if !rest.is_empty() {
            return Err(CertError::parse("CRL", "trailing bytes after CRL"));
        }
        self.crls.push(der.to_vec());
        Ok(())
    }

    /// Adds every `X509 CRL` block of a PEM file; returns how many.
    pub fn add_pem(&mut self, pem: &[u8]) -> Result<usize, CertError> {
        let blocks = pem_blocks(pem, "X509 CRL")?;
        for der in &blocks {
            self.add_der(der)?;
        }
        Ok(blocks.len())
    }

    /// Reads a CRL file, PEM or DER.
    pub fn add_file(&mut self, path: &std::path::Path) -> Result<usize, CertError> {
        let bytes =
            std::fs::read(path).map_err(|e| CertError::parse(&path.display().to_string(), e))?;
        if bytes.starts_with(b"-----BEGIN") {
            self.add_pem(&bytes)
        } else {
            self.add_der(&bytes).map(|()| 1)
        }
    }
}

impl Revocation for CrlFile {
    fn check(
        &self,
        cert: &ParsedCert,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError> {
        let t = crate::civil::unix(at);
        let cx = cert.x509()?;
        let ix = issuer.x509()?;
        let unknown = |reason: &str| CertError::RevocationUnknown {
            subject: cert.subject().to_owned(),
            reason: reason.to_owned(),
        };
        let mut reason = "no CRL from this issuer";
        for der in &self.crls {
            let (_, crl) =
                CertificateRevocationList::from_der(der).map_err(|e| CertError::parse("CRL", e))?;
            if crl.issuer().as_raw() != cx.issuer().as_raw() {
                continue;
            }
            if crl.verify_signature(ix.public_key()).is_err() {
                reason = "CRL signature does not verify with the issuer's key";
                continue;
            }
            let fresh = crl.last_update().timestamp() <= t
                && crl.next_update().is_some_and(|n| t <= n.timestamp());
            if !fresh {
                reason = "CRL not current at the given time";
                continue;
            }
            let serial = strip_sign(cert.serial());
            if let Some(r) = crl
                .iter_revoked_certificates()
                .find(|r| strip_sign(r.raw_serial()) == serial)
            {
                let revoked_at = r.revocation_date.timestamp();
                if revoked_at <= t {
                    return Err(CertError::Revoked {
                        subject: cert.subject().to_owned(),
                        serial: cert.serial_hex(),
                        revoked_at,
                    });
                }
            }
            return Ok(());
        }
        Err(unknown(reason))
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

/// Leading zero octets of a positive INTEGER encoding do not change its value.
fn strip_sign(serial: &[u8]) -> &[u8] {
    let mut s = serial;
    while let [0, rest @ ..] = s
        && !rest.is_empty()
    {
        s = rest;
    }
    s
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
        cert: &ParsedCert,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<OcspStatus, CertError>;
}

/// Adapts an [`Ocsp`] client to [`Revocation`]; `Unknown` refuses.
#[derive(Debug, Clone)]
pub struct OcspRevocation<O>(pub O);

impl<O: Ocsp> Revocation for OcspRevocation<O> {
    fn check(
        &self,
        cert: &ParsedCert,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError> {
        match self.0.status(cert, issuer, at)? {
            OcspStatus::Good => Ok(()),
            OcspStatus::Revoked(revoked_at) => Err(CertError::Revoked {
                subject: cert.subject().to_owned(),
                serial: cert.serial_hex(),
                revoked_at,
            }),
            OcspStatus::Unknown => Err(CertError::RevocationUnknown {
                subject: cert.subject().to_owned(),
                reason: "OCSP responder answered unknown".to_owned(),
            }),
        }
    }
}
