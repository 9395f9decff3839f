//! Key files for development: an RSA PKCS#8 PEM key and its certificate
//! PEM. Signs exactly as a card does (RSASSA-PKCS1-v1_5 over the SHA-256
//! `DigestInfo`), so a signature is byte-identical to a token's for the same
//! key.

use std::path::Path;

use rsa::pkcs8::{DecodePrivateKey, EncodePrivateKey, LineEnding};
use rsa::traits::PublicKeyParts;
use rsa::{Pkcs1v15Sign, RsaPrivateKey};

use super::RsaSpki;
use super::{IdentityError, Signer, digest_info_sha256};
use crate::cert::{ParsedCert, pem_blocks};

/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// A key file and its certificate.
pub struct KeyFileSigner {
    key: RsaPrivateKey,
    cert: Vec<u8>,
}

impl std::fmt::Debug for KeyFileSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFileSigner").finish_non_exhaustive()
    }
}

fn key_err(path: &str, reason: impl std::fmt::Display) -> IdentityError {
    IdentityError::KeyFile {
        path: path.to_owned(),
        reason: reason.to_string(),
    }
}

impl KeyFileSigner {
    /// Reads a PKCS#8 PEM RSA key from `key_path` and the first certificate
    /// of the PEM file `cert_path`.
    pub fn open(key_path: &Path, cert_path: &Path) -> Result<Self, IdentityError> {
        let kp = key_path.display().to_string();
        let key_pem = std::fs::read_to_string(key_path).map_err(|e| key_err(&kp, e))?;
        let key = RsaPrivateKey::from_pkcs8_pem(&key_pem)
            .map_err(|e| key_err(&kp, format!("not a PKCS#8 RSA key: {e}")))?;
        let cp = cert_path.display().to_string();
        let cert_pem = std::fs::read(cert_path).map_err(|e| key_err(&cp, e))?;
        let cert = pem_blocks(&cert_pem, "CERTIFICATE")?
            .into_iter()
            .next()
            .ok_or_else(|| key_err(&cp, "no CERTIFICATE block"))?;
        Self::new(key, cert)
    }

    /// A signer from a key and its DER certificate; refuses keys under
    /// [`MIN_RSA_BITS`] and a certificate for another key.
    pub fn new(key: RsaPrivateKey, cert_der: Vec<u8>) -> Result<Self, IdentityError> {
        let bits = key.size() * 8;
        if bits < MIN_RSA_BITS {
            return Err(IdentityError::UnsupportedKey(format!(
                "RSA-{bits}, need at least {MIN_RSA_BITS} bits"
            )));
        }
        let cert = ParsedCert::from_der(&cert_der)?;
        let x = cert.x509()?;
        let cert_spki = RsaSpki::from_spki_der(x.public_key().raw)
            .map_err(|e| IdentityError::UnsupportedKey(e.to_string()))?;
        if cert_spki != spki_of(&key) {
            return Err(IdentityError::UnsupportedKey(format!(
                "the key does not match the certificate of {}",
                cert.subject()
            )));
        }
        Ok(KeyFileSigner {
            key,
            cert: cert_der,
        })
    }
}

impl Signer for KeyFileSigner {
    fn certificate(&self) -> &[u8] {
        &self.cert
    }

    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<Vec<u8>, IdentityError> {
        // Unprefixed: the DigestInfo is built here, as a host does for a card.
        self.key
            .sign(Pkcs1v15Sign::new_unprefixed(), &digest_info_sha256(digest))
            .map_err(|e| IdentityError::UnsupportedKey(format!("RSA signing failed: {e}")))
    }
}

/// A new RSA key of `bits` bits from the operating system's generator.
pub fn generate_rsa_key(bits: usize) -> Result<RsaPrivateKey, IdentityError> {
    if bits < MIN_RSA_BITS {
        return Err(IdentityError::UnsupportedKey(format!(
            "RSA-{bits}, need at least {MIN_RSA_BITS} bits"
        )));
    }
    RsaPrivateKey::new(&mut rsa::rand_core::OsRng, bits)
        .map_err(|e| IdentityError::UnsupportedKey(format!("RSA key generation failed: {e}")))
}

/// The PKCS#8 PEM of `key` (unencrypted: development only).
pub fn rsa_key_pem(key: &RsaPrivateKey) -> Result<String, IdentityError> {
    key.to_pkcs8_pem(LineEnding::LF)
        .map(|p| p.to_string())
        .map_err(|e| key_err("(memory)", format!("cannot encode PKCS#8: {e}")))
}

/// The public half of `key`, to issue a certificate for.
pub fn spki_of(key: &RsaPrivateKey) -> RsaSpki {
    RsaSpki::from_modulus_exponent(&key.n().to_bytes_be(), &key.e().to_bytes_be())
}
