//! An RSA public key as a certificate carries it.

use crate::der;

/// A public key that is not RSA, or not a SubjectPublicKeyInfo at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an RSA public key: {0}")]
pub struct NotRsa(pub String);

/// The public key of an RSA key pair, wherever the private half lives (a
/// token, a key file): what a certificate is issued for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsaSpki {
    /// DER `RSAPublicKey { modulus, publicExponent }`.
    pub(crate) rsa_public_key: Vec<u8>,
}

/// rsaEncryption.
const RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";

impl RsaSpki {
    /// From the big-endian modulus and public exponent (`CKA_MODULUS`,
    /// `CKA_PUBLIC_EXPONENT`).
    pub fn from_modulus_exponent(modulus: &[u8], exponent: &[u8]) -> Self {
        RsaSpki {
            rsa_public_key: der::sequence(&[&der::uint(modulus), &der::uint(exponent)]),
        }
    }

    /// From a DER SubjectPublicKeyInfo whose algorithm is rsaEncryption.
    pub fn from_spki_der(spki: &[u8]) -> Result<Self, NotRsa> {
        use x509_parser::prelude::FromDer;
        use x509_parser::x509::SubjectPublicKeyInfo;
        let (rest, info) = SubjectPublicKeyInfo::from_der(spki)
            .map_err(|e| NotRsa(format!("cannot parse: {e}")))?;
        if !rest.is_empty() {
            return Err(NotRsa("trailing bytes".to_owned()));
        }
        let alg = info.algorithm.algorithm.to_id_string();
        if alg != RSA_ENCRYPTION {
            return Err(NotRsa(format!("algorithm {alg}")));
        }
        Ok(RsaSpki {
            rsa_public_key: info.subject_public_key.data.to_vec(),
        })
    }

    /// The DER SubjectPublicKeyInfo.
    pub fn spki_der(&self) -> Vec<u8> {
        let mut bits = vec![0u8];
        bits.extend_from_slice(&self.rsa_public_key);
        // rsaEncryption with NULL parameters.
        let alg = [
            0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05,
            0x00,
        ];
        der::sequence(&[&alg, &der::tlv(0x03, &bits)])
    }
}
