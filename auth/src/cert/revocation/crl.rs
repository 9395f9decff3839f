//! CRLs from files or bytes (RFC 5280 §6.3.3), checked without I/O.

use std::time::SystemTime;

use x509_parser::extensions::{DistributionPointName, GeneralName, ParsedExtension};
use x509_parser::num_bigint::BigUint;
use x509_parser::prelude::FromDer;
use x509_parser::revocation_list::CertificateRevocationList;

use super::{CertRef, Revocation};
use crate::cert::chain::ACCEPTED_SIGNATURES;
use crate::cert::{CertError, ParsedCert, pem_blocks};

/// CRL extensions this code interprets when critical.
const ISSUING_DISTRIBUTION_POINT: &str = "2.5.29.28";
/// A delta CRL: not read (load the complete CRL).
const DELTA_CRL_INDICATOR: &str = "2.5.29.27";

/// CRLs loaded from files or bytes fetched from a CRL distribution point URL
/// (fetching is the caller's: this type does no I/O).
///
/// For a certificate, the CRLs **in scope** are those whose issuer name is
/// the certificate's issuer, whose signature verifies with the issuer's key
/// under an accepted algorithm, whose issuer may sign CRLs (cRLSign when it
/// has a key usage), whose `thisUpdate` is not after `at`, and whose
/// issuingDistributionPoint covers the certificate (only CA or only end
/// entity certificates, the certificate's own distribution point; a CRL of
/// only some reasons does not cover it alone). Of those, the one with the
/// highest cRLNumber (then the latest thisUpdate) decides, and it must be
/// current at `at` (`at <= nextUpdate`): otherwise the status is unknown and
/// the certificate refused. A CRL this code cannot interpret (a delta CRL,
/// an indirect CRL, an unknown critical extension on the CRL or an entry)
/// is refused when loaded, and makes the status unknown when met in a check.
#[derive(Debug, Clone, Default)]
pub struct CrlFile {
    crls: Vec<Vec<u8>>,
}

impl CrlFile {
    /// No CRLs yet.
    pub fn new() -> Self {
        CrlFile::default()
    }

    /// Adds one DER CRL, parsed and interpreted now, so bad bytes, delta
    /// CRLs and CRLs with unknown critical extensions are refused up front.
    pub fn add_der(&mut self, der: &[u8]) -> Result<(), CertError> {
        let (rest, crl) =
            CertificateRevocationList::from_der(der).map_err(|e| CertError::parse("CRL", e))?;
        if !rest.is_empty() {
            return Err(CertError::parse("CRL", "trailing bytes after CRL"));
        }
        interpret(&crl).map_err(|e| CertError::parse("CRL", e))?;
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

    /// How many CRLs are held.
    pub fn len(&self) -> usize {
        self.crls.len()
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.crls.is_empty()
    }
}

/// What a CRL's extensions say, once understood.
struct Interpreted<'a> {
    number: Option<BigUint>,
    scope: Option<x509_parser::extensions::IssuingDistributionPoint<'a>>,
}

/// Reads the extensions of `crl` and its entries; refuses what this code
/// does not process.
fn interpret<'a>(crl: &'a CertificateRevocationList<'_>) -> Result<Interpreted<'a>, String> {
    let mut scope = None;
    for ext in crl.extensions() {
        let oid = ext.oid.to_id_string();
        if oid == DELTA_CRL_INDICATOR {
            return Err("a delta CRL: not read here (give the complete CRL)".to_owned());
        }
        if ext.parsed_extension().error().is_some() {
            return Err(format!("CRL extension {oid} does not parse"));
        }
        match ext.parsed_extension() {
            ParsedExtension::IssuingDistributionPoint(idp) => {
                if idp.indirect_crl {
                    return Err("an indirect CRL: not read here".to_owned());
                }
                scope = Some(idp.clone());
            }
            _ if ext.critical && oid != ISSUING_DISTRIBUTION_POINT => {
                return Err(format!("unknown critical CRL extension {oid}"));
            }
            _ => {}
        }
    }
    for entry in crl.iter_revoked_certificates() {
        if let Some(ext) = entry.extensions().iter().find(|e| e.critical) {
            return Err(format!(
                "unknown critical CRL entry extension {}",
                ext.oid.to_id_string()
            ));
        }
    }
    Ok(Interpreted {
        number: crl.crl_number().cloned(),
        scope,
    })
}

/// Why a CRL that is the issuer's does not cover `cert`, if it does not.
fn out_of_scope(
    cert: &CertRef,
    idp: &x509_parser::extensions::IssuingDistributionPoint<'_>,
) -> Option<&'static str> {
    if idp.only_contains_attribute_certs {
        return Some("the issuer's CRL holds only attribute certificates");
    }
    if idp.only_contains_ca_certs && !cert.is_ca {
        return Some("the issuer's CRL holds only CA certificates");
    }
    if idp.only_contains_user_certs && cert.is_ca {
        return Some("the issuer's CRL holds only end-entity certificates");
    }
    if idp.only_some_reasons.is_some() {
        return Some("the issuer's CRL covers only some reasons");
    }
    match &idp.distribution_point {
        None => None,
        Some(DistributionPointName::FullName(names)) => {
            let covers = names.iter().any(|n| match n {
                GeneralName::URI(u) => cert.crl_points.iter().any(|p| p == u),
                _ => false,
            });
            (!covers).then_some("the issuer's CRL is for another distribution point")
        }
        Some(DistributionPointName::NameRelativeToCRLIssuer(_)) => {
            Some("the issuer's CRL names its distribution point relative to the issuer")
        }
    }
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

impl Revocation for CrlFile {
    fn check_ref(
        &self,
        cert: &CertRef,
        issuer: &ParsedCert,
        at: SystemTime,
    ) -> Result<(), CertError> {
        let t = crate::civil::unix(at);
        let ix = issuer.x509()?;
        let unknown = |reason: &str| CertError::RevocationUnknown {
            subject: cert.label.clone(),
            reason: reason.to_owned(),
        };
        if ix.subject().as_raw() != cert.issuer.as_slice() {
            return Err(unknown("the issuer given did not issue the certificate"));
        }
        // A CRL signed with a key too short to trust says nothing.
        if crate::cert::chain::check_key(issuer).is_err() {
            return Err(unknown("the issuer's key is too short to sign a CRL"));
        }
        let ku = ix
            .key_usage()
            .map_err(|e| CertError::parse("keyUsage", e))?;
        if ku.is_some_and(|k| !k.value.crl_sign()) {
            return Err(unknown("the issuer's key usage lacks cRLSign"));
        }
        let mut reason = "no CRL from this issuer";
        // (cRLNumber, thisUpdate, CRL) of the newest CRL in scope so far.
        let mut best: Option<(Option<BigUint>, i64, CertificateRevocationList<'_>)> = None;
        for der in &self.crls {
            let (_, crl) =
                CertificateRevocationList::from_der(der).map_err(|e| CertError::parse("CRL", e))?;
            if crl.issuer().as_raw() != cert.issuer.as_slice() {
                continue;
            }
            let alg = crl.signature_algorithm.algorithm.to_id_string();
            if !ACCEPTED_SIGNATURES.contains(&alg.as_str()) {
                reason = "the issuer's CRL is signed with a refused algorithm";
                continue;
            }
            if crl.verify_signature(ix.public_key()).is_err() {
                reason = "CRL signature does not verify with the issuer's key";
                continue;
            }
            let interpreted = interpret(&crl).map_err(|why| {
                unknown(&format!("a CRL of the issuer cannot be interpreted: {why}"))
            })?;
            if let Some(why) = interpreted
                .scope
                .as_ref()
                .and_then(|s| out_of_scope(cert, s))
            {
                reason = why;
                continue;
            }
            let this_update = crl.last_update().timestamp();
            if this_update > t {
                reason = "CRL not current at the given time";
                continue;
            }
            let number = interpreted.number;
            let newer = best
                .as_ref()
                .is_none_or(|(n, u, _)| (number.as_ref(), this_update) > (n.as_ref(), *u));
            if newer {
                best = Some((number, this_update, crl));
            }
        }
        let Some((_, _, crl)) = best else {
            return Err(unknown(reason));
        };
        if crl.next_update().is_none_or(|n| t > n.timestamp()) {
            return Err(unknown(
                "the newest CRL in scope is not current at the given time",
            ));
        }
        let serial = strip_sign(&cert.serial);
        // A revocation dated after `at` did not hold yet at `at` (a check
        // of a past time against a CRL current then).
        if let Some(r) = crl
            .iter_revoked_certificates()
            .find(|r| strip_sign(r.raw_serial()) == serial)
            && r.revocation_date.timestamp() <= t
        {
            return Err(CertError::Revoked {
                subject: cert.label.clone(),
                serial: cert.serial_hex(),
                revoked_at: r.revocation_date.timestamp(),
            });
        }
        Ok(())
    }
}
