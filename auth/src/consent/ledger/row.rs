//! What a ledger row holds besides the record: what is kept of the signer
//! (no patient data), the holder's keyed hash, and the row's MAC.

use serde::{Deserialize, Serialize};

use crate::cert::{CertError, CertRef, ParsedCert};
use crate::consent::cms::{SignerKey, VerifiedSignature};
use crate::hex;

/// The JPKI signing certificate's subjectAltName otherNames that stay the
/// same when a card is re-issued after a move (J-LIS profile): the name
/// (`…8.5.5.1`), the birth date (`…8.5.5.3`) and the sex (`…8.5.5.4`). The
/// address (`…8.5.5.5`, with `…8.5.5.6`) changes and is left out.
pub(crate) const JPKI_HOLDER_ATTRIBUTES: [&str; 3] = [
    "1.2.392.200149.8.5.5.1",
    "1.2.392.200149.8.5.5.3",
    "1.2.392.200149.8.5.5.4",
];

/// What the ledger keeps of the certificate that signed a record: enough to
/// verify the stored signature again, to find the certificate on a CRL and
/// to know when it expires; nothing of its subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct StoredSigner {
    /// DER `RSAPublicKey`, hex.
    pub(crate) key: String,
    /// The issuer's name, DER hex.
    pub(crate) issuer: String,
    /// The serial (INTEGER contents), hex.
    pub(crate) serial: String,
    /// notAfter, unix seconds.
    pub(crate) not_after: i64,
    /// The URIs of its CRL distribution points.
    pub(crate) crl_points: Vec<String>,
    /// The issuing CA's certificate, DER hex (a CA: no patient data).
    pub(crate) issuer_cert: String,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| s.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect()
}

impl StoredSigner {
    /// What is kept of the signer of `sig`.
    pub(crate) fn of(sig: &VerifiedSignature) -> Result<StoredSigner, CertError> {
        let x = sig.signer.x509()?;
        let r = CertRef::of(&sig.signer)?;
        Ok(StoredSigner {
            key: hex(&x.public_key().subject_public_key.data),
            issuer: hex(&r.issuer),
            serial: hex(&r.serial),
            not_after: x.validity().not_after.timestamp(),
            crl_points: r.crl_points,
            issuer_cert: hex(sig.issuer.der()),
        })
    }

    /// Checks the stored signature `cms` over `record` with the kept key.
    pub(crate) fn verify(&self, record: &[u8], cms: &[u8]) -> Result<(), String> {
        let (key, issuer, serial) =
            match (unhex(&self.key), unhex(&self.issuer), unhex(&self.serial)) {
                (Some(k), Some(i), Some(s)) => (k, i, s),
                _ => return Err("signer is not hex".to_owned()),
            };
        crate::consent::cms::verify_with_key(
            cms,
            record,
            &SignerKey {
                rsa_public_key: &key,
                issuer: &issuer,
                serial: &serial,
            },
        )
        .map_err(|e| e.to_string())
    }

    /// The signer as a revocation source sees it, labelled `label`, and
    /// the certificate of its issuer.
    pub(crate) fn cert_ref(&self, label: &str) -> Result<(CertRef, ParsedCert), CertError> {
        let bad = || CertError::parse("stored signer", "not hex");
        let issuer_cert = ParsedCert::from_der(&unhex(&self.issuer_cert).ok_or_else(bad)?)?;
        Ok((
            CertRef {
                label: label.to_owned(),
                issuer: unhex(&self.issuer).ok_or_else(bad)?,
                serial: unhex(&self.serial).ok_or_else(bad)?,
                is_ca: false,
                crl_points: self.crl_points.clone(),
            },
            issuer_cert,
        ))
    }
}

/// The holder of a JPKI signing certificate as a keyed hash (hex) of
/// [`JPKI_HOLDER_ATTRIBUTES`]: the same for a re-issued card of the same
/// person, useless without the ledger's key. A certificate without them
/// (a demo card) is its own holder: the hash of its pseudonym.
pub(crate) fn holder(key: &[u8], cert: &ParsedCert) -> Result<String, CertError> {
    use x509_parser::extensions::{GeneralName, ParsedExtension};
    let x = cert.x509()?;
    let mut found: Vec<(String, Vec<u8>)> = Vec::new();
    for ext in x.extensions() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
            for name in &san.general_names {
                if let GeneralName::OtherName(oid, value) = name {
                    let oid = oid.to_id_string();
                    if JPKI_HOLDER_ATTRIBUTES.contains(&oid.as_str()) {
                        found.push((oid, value.to_vec()));
                    }
                }
            }
        }
    }
    found.sort();
    let mut parts: Vec<&[u8]> = vec![b"med8k jpki holder v1"];
    let pseudonym;
    if found.is_empty() {
        pseudonym = crate::consent::PatientId::of_cert(cert.der());
        parts.push(b"pseudonym");
        parts.push(pseudonym.as_str().as_bytes());
    } else {
        for (oid, value) in &found {
            parts.push(oid.as_bytes());
            parts.push(value);
        }
    }
    Ok(hex(&crate::secret::mac(key, &parts)))
}

/// The MAC (hex) of a row of `table` over its `fields`.
pub(crate) fn row_mac(key: &[u8], table: &str, fields: &[&[u8]]) -> String {
    let mut parts: Vec<&[u8]> = vec![b"med8k ledger row v2", table.as_bytes()];
    parts.extend_from_slice(fields);
    hex(&crate::secret::mac(key, &parts))
}

/// Whether `mac` (hex) is the MAC of the row.
pub(crate) fn row_mac_ok(key: &[u8], table: &str, fields: &[&[u8]], mac: &str) -> bool {
    crate::secret::mac_eq(row_mac(key, table, fields).as_bytes(), mac.as_bytes())
}
