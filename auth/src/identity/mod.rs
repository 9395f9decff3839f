//! Who holds a key: cards and tokens (PKCS#11) and key files, behind one
//! trait.
//!
//! JPKI cards sign with `CKM_RSA_PKCS` only: the host hashes, wraps the
//! digest in a DER `DigestInfo` and the card pads and signs that. Every
//! backend here signs exactly that way ([`Signer::sign_sha256`]), and
//! [`verify_sha256`] checks such a signature against a certificate's key.

pub mod keyfile;
pub mod pkcs11;
mod spki;

pub use keyfile::KeyFileSigner;
pub use pkcs11::{Module, TokenCert, TokenSession, TokenSigner};
pub use spki::{NotRsa, RsaSpki};

use ring::signature::{RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
use sha2::{Digest, Sha256};

use crate::cert::{CertError, ParsedCert};

/// `DigestInfo` prefix for SHA-256 (RFC 8017 §9.2, note 1).
pub const SHA256_DIGEST_INFO_PREFIX: [u8; 19] = [
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];

/// The DER `DigestInfo` that `CKM_RSA_PKCS` signs for a SHA-256 digest.
pub fn digest_info_sha256(digest: &[u8; 32]) -> [u8; 51] {
    let mut out = [0u8; 51];
    out[..19].copy_from_slice(&SHA256_DIGEST_INFO_PREFIX);
    out[19..].copy_from_slice(digest);
    out
}

/// SHA-256 of `message`.
pub fn sha256(message: &[u8]) -> [u8; 32] {
    Sha256::digest(message).into()
}

/// Why a key could not be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum IdentityError {
    /// The PKCS#11 module failed.
    #[error("PKCS#11: {0}")]
    Pkcs11(String),
    /// No token or certificate matched.
    #[error("not found: {0}")]
    NotFound(String),
    /// The PIN was refused (the token counts failures and may lock).
    #[error("PIN refused")]
    PinRefused,
    /// A key file could not be read or used.
    #[error("key file {path}: {reason}")]
    KeyFile {
        /// The file.
        path: String,
        /// What is wrong.
        reason: String,
    },
    /// The key is not an RSA key of 2048 bits or more.
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// A certificate could not be parsed.
    #[error(transparent)]
    Cert(#[from] CertError),
}

/// A private key with its certificate: a card's signing or authentication
/// key, a token object pair, a key file.
pub trait Signer: Send + Sync {
    /// The certificate (DER) of this key.
    fn certificate(&self) -> &[u8];

    /// Signs a SHA-256 digest as RSASSA-PKCS1-v1_5: the `DigestInfo` of
    /// `digest` ([`digest_info_sha256`]) with `CKM_RSA_PKCS`.
    fn sign_sha256(&self, digest: &[u8; 32]) -> Result<Vec<u8>, IdentityError>;

    /// Signs `message`: SHA-256 here, then [`Signer::sign_sha256`].
    fn sign(&self, message: &[u8]) -> Result<Vec<u8>, IdentityError> {
        self.sign_sha256(&sha256(message))
    }
}

/// A signature does not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The certificate's key is not RSA.
    #[error("the certificate's key is not RSA")]
    NotRsa,
    /// The certificate could not be read.
    #[error("the certificate cannot be read")]
    BadCertificate,
    /// The signature does not match the message and key.
    #[error("the signature does not verify")]
    Mismatch,
}

/// rsaEncryption.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

/// Checks an RSASSA-PKCS1-v1_5 SHA-256 signature over `message` with the
/// public key of `cert` (2048 to 8192 bits).
pub fn verify_sha256(
    cert: &ParsedCert,
    message: &[u8],
    signature: &[u8],
) -> Result<(), SignatureError> {
    let x509 = cert.x509().map_err(|_| SignatureError::BadCertificate)?;
    let spki = x509.public_key();
    if spki.algorithm.algorithm.to_id_string() != RSA_ENCRYPTION {
        return Err(SignatureError::NotRsa);
    }
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &spki.subject_public_key.data)
        .verify(message, signature)
        .map_err(|_| SignatureError::Mismatch)
}
