//! CRLs fetched over HTTP from the certificates' distribution points.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::{CertRef, CrlFile, Revocation};
use crate::cert::{CertError, ParsedCert};

/// CRLs fetched from the `http://` URLs in each certificate's CRL
/// distribution points (RFC 5280 §4.2.1.13; CRLs are served over plain HTTP
/// by convention, being signed), kept until their nextUpdate, then checked
/// as [`CrlFile`] checks them.
///
/// Blocking, but bounded: one check gives up at its deadline (connect,
/// name resolution, every read and all the points of the certificate
/// together), and no lock is held while fetching, so a slow CRL host delays
/// only the checks that need its CRL. A CRL that cannot be fetched leaves
/// the status unknown, and the certificate is refused. `https://` and
/// `ldap://` points are skipped.
#[derive(Debug)]
pub struct CrlFetcher {
    timeout: Duration,
    deadline: Duration,
    max_bytes: usize,
    /// (URL, DER, nextUpdate) of fetched CRLs.
    cache: Mutex<Vec<(String, Vec<u8>, i64)>>,
}

impl Default for CrlFetcher {
    fn default() -> Self {
        CrlFetcher {
            timeout: Duration::from_secs(5),
            deadline: Duration::from_secs(10),
            max_bytes: 16 << 20,
            cache: Mutex::new(Vec::new()),
        }
    }
}

impl CrlFetcher {
    /// A fetcher with a 5 s connect and read timeout, a 10 s deadline per
    /// check and a 16 MiB limit per CRL.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the connect and read timeout.
    #[must_use]
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the deadline of one check: everything it fetches, together.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The CRL at `url`: from the cache while current at `t`, else fetched
    /// (by `end`) with the cache unlocked.
    fn crl(&self, url: &str, t: i64, end: Instant) -> Result<Vec<u8>, String> {
        {
            let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, der, _)) = cache.iter().find(|(u, _, next)| u == url && t <= *next) {
                return Ok(der.clone());
            }
        }
        let der = http_get(url, self.timeout, end, self.max_bytes)?;
        let (_, crl) = CertificateRevocationList::from_der(&der)
            .map_err(|e| format!("{url}: not a CRL: {e}"))?;
        let next = crl.next_update().map_or(i64::MIN, |n| n.timestamp());
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache.retain(|(u, _, _)| u != url);
        cache.push((url.to_owned(), der.clone(), next));
        Ok(der)
    }
}

impl Revocation for CrlFetcher {
    fn check_ref(
        &self,
        cert: &CertRef,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError> {
        let t = crate::civil::unix(at);
        let end = Instant::now() + self.deadline;
        let mut crls = CrlFile::new();
        let mut failures = Vec::new();
        for url in &cert.crl_points {
            match self
                .crl(url, t, end)
                .and_then(|der| crls.add_der(&der).map_err(|e| format!("{url}: {e}")))
            {
                Ok(()) => {}
                Err(e) => failures.push(e),
            }
        }
        if crls.is_empty() {
            return Err(CertError::RevocationUnknown {
                subject: cert.label.clone(),
                reason: if failures.is_empty() {
                    "no http:// CRL distribution point".to_owned()
                } else {
                    failures.join("; ")
                },
            });
        }
        crls.check_ref(cert, issuer, at)
    }
}

/// Time left until `end`, or an error naming `url`.
fn left(url: &str, end: Instant) -> Result<Duration, String> {
    let left = end.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err(format!("{url}: deadline passed"))
    } else {
        Ok(left)
    }
}

/// Resolves `host_port` on a thread of its own, waiting at most until `end`
/// (the system resolver has no timeout).
fn resolve(url: &str, host_port: String, end: Instant) -> Result<SocketAddr, String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("med8k-crl-resolve".into())
        .spawn(move || {
            let _ = tx.send(host_port.to_socket_addrs().map(|mut a| a.next()));
        })
        .map_err(|e| format!("{url}: {e}"))?;
    match rx.recv_timeout(left(url, end)?) {
        Ok(Ok(Some(addr))) => Ok(addr),
        Ok(Ok(None)) => Err(format!("{url}: no address")),
        Ok(Err(e)) => Err(format!("{url}: {e}")),
        Err(_) => Err(format!("{url}: deadline passed resolving the host")),
    }
}

/// `GET url` over HTTP/1.1 (`http://host[:port]/path` only): the body of a
/// 200 answer, at most `max_bytes`, all of it by `end`.
fn http_get(
    url: &str,
    timeout: Duration,
    end: Instant,
    max_bytes: usize,
) -> Result<Vec<u8>, String> {
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
    let addr = resolve(url, host_port, end)?;
    let io = |e: std::io::Error| format!("{url}: {e}");
    let mut stream = TcpStream::connect_timeout(&addr, timeout.min(left(url, end)?)).map_err(io)?;
    stream
        .set_write_timeout(Some(timeout.min(left(url, end)?)))
        .map_err(io)?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nAccept: application/pkix-crl\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let limit = max_bytes + 64 * 1024;
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        stream
            .set_read_timeout(Some(timeout.min(left(url, end)?)))
            .map_err(io)?;
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.len() > limit {
                    return Err(format!("{url}: CRL over {max_bytes} bytes"));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            // A read timeout: the deadline, or a host that went quiet.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                left(url, end)?;
                return Err(format!("{url}: nothing received for {timeout:?}"));
            }
            Err(e) => return Err(io(e)),
        }
    }
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
