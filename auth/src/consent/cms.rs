//! Detached CMS SignedData (RFC 5652), the form a JPKI signature takes.
//!
//! [`sign_detached`] writes exactly this, with any [`Signer`]:
//!
//! ```text
//! ContentInfo { id-signedData, [0] SignedData {
//!   version 1, digestAlgorithms { sha256 }, encapContentInfo { id-data },  -- no eContent
//!   certificates [0] { signer certificate },
//!   signerInfos { SignerInfo {
//!     version 1, sid issuerAndSerialNumber, digestAlgorithm sha256,
//!     signedAttrs [0] { contentType id-data, signingTime, messageDigest },
//!     signatureAlgorithm sha256WithRSAEncryption, signature } } } }
//! ```
//!
//! The signature covers the DER of signedAttrs re-tagged as `SET OF`
//! (RFC 5652 §5.4), hashed with SHA-256 and signed as a PKCS#1 v1.5
//! `DigestInfo`, as a JPKI card does with `CKM_RSA_PKCS`.
//!
//! [`parse`] reads such a blob with a strict, bounds-checked DER reader. It
//! also accepts what other JPKI signing software emits within that shape:
//! extra certificates (taken as intermediates), `rsaEncryption` as the
//! signature algorithm, NULL digest parameters, GeneralizedTime, and extra
//! signed attributes. [`verify_detached`] checks the digest, the signature,
//! the signer's chain for [`Purpose::JpkiSign`] with the profile (so a JPKI
//! authentication certificate is refused), and revocation when given.

use std::fmt;
use std::time::SystemTime;

use super::record::PatientId;
use crate::cert::{
    CertError, ParsedCert, Profile, Purpose, Revocation, TrustStore, VerifiedChain, verify_chain,
};
use crate::der::{self, CONTEXT_0, OCTET_STRING, SEQUENCE, SET, Tlv};
use crate::identity::{IdentityError, SignatureError, Signer, sha256, verify_sha256};

/// The largest CMS blob read, in bytes.
pub const MAX_CMS_BYTES: usize = 256 * 1024;

const ID_SIGNED_DATA: &str = "1.2.840.113549.1.7.2";
const ID_DATA: &str = "1.2.840.113549.1.7.1";
const ID_SHA256: &str = "2.16.840.1.101.3.4.2.1";
const ID_RSA_ENCRYPTION: &str = "1.2.840.113549.1.1.1";
const ID_SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
const ID_CONTENT_TYPE: &str = "1.2.840.113549.1.9.3";
const ID_MESSAGE_DIGEST: &str = "1.2.840.113549.1.9.4";
const ID_SIGNING_TIME: &str = "1.2.840.113549.1.9.5";

/// Why a signature could not be made, read or accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CmsError {
    /// The blob is larger than [`MAX_CMS_BYTES`].
    #[error("CMS blob is {len} bytes, more than the {max} allowed")]
    TooLarge {
        /// Size given.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The DER is broken or not the SignedData shape described above.
    #[error("CMS {part}: {reason}")]
    Malformed {
        /// Which structure was being read.
        part: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Well-formed, but uses something this code does not accept.
    #[error("CMS {part}: unsupported ({what})")]
    Unsupported {
        /// Which structure.
        part: &'static str,
        /// What is not supported.
        what: &'static str,
    },
    /// The messageDigest attribute does not match SHA-256 of the content:
    /// the record or the blob was altered.
    #[error("CMS messageDigest does not match the signed record")]
    DigestMismatch,
    /// No certificate in the blob matches the signer's issuer and serial.
    #[error("CMS signer certificate not included")]
    SignerNotFound,
    /// The signature over the signed attributes does not verify.
    #[error("CMS signature refused: {0}")]
    Signature(#[from] SignatureError),
    /// The signer's certificate was refused (chain, validity, policy,
    /// revocation).
    #[error("CMS signer certificate refused: {0}")]
    Certificate(#[from] CertError),
    /// The key could not sign.
    #[error("signing failed: {0}")]
    Signing(String),
    /// The signing time cannot be written (before year 0 or after 9999).
    #[error("signing time {0} cannot be encoded")]
    BadTime(i64),
}

impl From<IdentityError> for CmsError {
    fn from(e: IdentityError) -> Self {
        CmsError::Signing(e.to_string())
    }
}

fn malformed(part: &'static str) -> impl Fn(&'static str) -> CmsError {
    move |reason| CmsError::Malformed { part, reason }
}

/// Signs `content` (a record's canonical bytes) and returns the detached
/// CMS SignedData (DER) described in the module docs. `signing_time` is
/// unix seconds, given by the caller.
pub fn sign_detached(
    content: &[u8],
    signer: &dyn Signer,
    signing_time: i64,
) -> Result<Vec<u8>, CmsError> {
    sign_detached_with_chain(content, signer, &[], signing_time)
}

/// [`sign_detached`], with `intermediates` (DER) carried after the signer's
/// certificate so that a verifier holding only the root can build the chain
/// (an HPKI signing certificate issued by a sub-CA).
pub fn sign_detached_with_chain(
    content: &[u8],
    signer: &dyn Signer,
    intermediates: &[Vec<u8>],
    signing_time: i64,
) -> Result<Vec<u8>, CmsError> {
    let cert = ParsedCert::from_der(signer.certificate())?;
    let x = cert.x509()?;
    let sid = der::sequence(&[x.issuer().as_raw(), &der::tlv(der::INTEGER, x.raw_serial())]);

    let time = der::time(signing_time).ok_or(CmsError::BadTime(signing_time))?;
    let attr = |oid: &str, value: &[u8]| der::sequence(&[&der::oid(oid), &der::tlv(SET, value)]);
    let attrs = [
        attr(ID_CONTENT_TYPE, &der::oid(ID_DATA)),
        attr(ID_MESSAGE_DIGEST, &der::tlv(OCTET_STRING, &sha256(content))),
        attr(ID_SIGNING_TIME, &time),
    ];
    let attr_refs: Vec<&[u8]> = attrs.iter().map(Vec::as_slice).collect();
    // Signed as SET OF (§5.4), carried as [0] IMPLICIT.
    let signed_set = der::set_of(SET, &attr_refs);
    let signature = signer.sign_sha256(&sha256(&signed_set))?;
    let mut signed_attrs = signed_set;
    if let Some(tag) = signed_attrs.first_mut() {
        *tag = CONTEXT_0;
    }

    let mut certificates = signer.certificate().to_vec();
    for c in intermediates {
        certificates.extend_from_slice(c);
    }
    let digest_alg = der::algorithm(ID_SHA256);
    let signer_info = der::sequence(&[
        &der::small_integer(1),
        &sid,
        &digest_alg,
        &signed_attrs,
        &der::algorithm_null(ID_SHA256_WITH_RSA),
        &der::tlv(OCTET_STRING, &signature),
    ]);
    let signed_data = der::sequence(&[
        &der::small_integer(1),
        &der::set_of(SET, &[&digest_alg]),
        &der::sequence(&[&der::oid(ID_DATA)]),
        &der::tlv(CONTEXT_0, &certificates),
        &der::set_of(SET, &[&signer_info]),
    ]);
    Ok(der::sequence(&[
        &der::oid(ID_SIGNED_DATA),
        &der::tlv(CONTEXT_0, &signed_data),
    ]))
}

/// A SignedData blob that parsed; nothing in it is verified yet.
#[derive(Clone, PartialEq, Eq)]
pub struct ParsedCms {
    /// The signer's certificate, when the blob carries it.
    signer: Option<Vec<u8>>,
    /// The signer's issuer name (DER) and serial (INTEGER contents), from
    /// issuerAndSerialNumber.
    sid_issuer: Vec<u8>,
    sid_serial: Vec<u8>,
    /// The other certificates in the blob, taken as intermediates.
    others: Vec<Vec<u8>>,
    /// signedAttrs re-tagged as SET OF: the bytes the signature covers.
    signed_attrs: Vec<u8>,
    message_digest: [u8; 32],
    signing_time: Option<i64>,
    signature: Vec<u8>,
}

impl fmt::Debug for ParsedCms {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Certificates hold patient data: show only their count.
        f.debug_struct("ParsedCms")
            .field("intermediates", &self.others.len())
            .field("signing_time", &self.signing_time)
            .finish_non_exhaustive()
    }
}

impl ParsedCms {
    /// The signer's certificate (DER), when the blob carries it.
    pub fn signer_certificate(&self) -> Option<&[u8]> {
        self.signer.as_deref()
    }

    /// The signingTime attribute, unix seconds, if present.
    pub fn signing_time(&self) -> Option<i64> {
        self.signing_time
    }

    /// The messageDigest attribute.
    pub fn message_digest(&self) -> &[u8; 32] {
        &self.message_digest
    }
}

/// Reads a detached SignedData blob (see the module docs for what is
/// accepted). Hostile input gives an error, never a panic.
pub fn parse(blob: &[u8]) -> Result<ParsedCms, CmsError> {
    if blob.len() > MAX_CMS_BYTES {
        return Err(CmsError::TooLarge {
            len: blob.len(),
            max: MAX_CMS_BYTES,
        });
    }
    let ci = der::read_single(blob, SEQUENCE).map_err(malformed("ContentInfo"))?;
    let [content_type, content] = der::read_all(ci.value).map_err(malformed("ContentInfo"))?[..]
    else {
        return Err(CmsError::Malformed {
            part: "ContentInfo",
            reason: "expected { contentType, [0] content }",
        });
    };
    if !der::is_oid(&content_type, &der::oid(ID_SIGNED_DATA)) {
        return Err(CmsError::Unsupported {
            part: "ContentInfo",
            what: "content type is not signedData",
        });
    }
    der::expect_tag(&content, CONTEXT_0).map_err(malformed("ContentInfo"))?;
    let sd = der::read_single(content.value, SEQUENCE).map_err(malformed("SignedData"))?;
    parse_signed_data(&sd)
}

fn parse_signed_data(sd: &Tlv<'_>) -> Result<ParsedCms, CmsError> {
    let bad = malformed("SignedData");
    let fields = der::read_all(sd.value).map_err(&bad)?;
    // version, digestAlgorithms, encapContentInfo, [0] certificates,
    // [1] crls (ignored), signerInfos.
    let (version, digest_algs, encap, rest) = match fields.as_slice() {
        [v, d, e, rest @ ..] => (v, d, e, rest),
        _ => return Err(bad("too few fields")),
    };
    let version = der::small_integer_value(version).map_err(&bad)?;
    if version != 1 {
        return Err(CmsError::Unsupported {
            part: "SignedData",
            what: "version other than 1",
        });
    }
    der::expect_tag(digest_algs, SET).map_err(&bad)?;
    for alg in der::read_all(digest_algs.value).map_err(&bad)? {
        let id = der::read_algorithm(&alg).map_err(&bad)?;
        if !der::is_oid(&id, &der::oid(ID_SHA256)) {
            return Err(CmsError::Unsupported {
                part: "SignedData",
                what: "digest algorithm other than SHA-256",
            });
        }
    }
    check_encap(encap)?;

    let (signer_infos, before) = rest.split_last().ok_or(bad("no signerInfos"))?;
    let mut certificates = Vec::new();
    for f in before {
        match f.tag {
            CONTEXT_0 if certificates.is_empty() => {
                for c in der::read_all(f.value).map_err(&bad)? {
                    der::expect_tag(&c, SEQUENCE).map_err(malformed("certificates"))?;
                    certificates.push(c.raw.to_vec());
                }
            }
            // crls [1]: not used; revocation is checked separately.
            0xa1 => {}
            _ => return Err(bad("unexpected field before signerInfos")),
        }
    }
    der::expect_tag(signer_infos, SET).map_err(&bad)?;
    let infos = der::read_all(signer_infos.value).map_err(&bad)?;
    let [info] = infos.as_slice() else {
        return Err(CmsError::Unsupported {
            part: "SignedData",
            what: "exactly one SignerInfo is required",
        });
    };
    parse_signer_info(info, certificates)
}

fn check_encap(encap: &Tlv<'_>) -> Result<(), CmsError> {
    let bad = malformed("encapContentInfo");
    der::expect_tag(encap, SEQUENCE).map_err(&bad)?;
    match der::read_all(encap.value).map_err(&bad)?.as_slice() {
        [ty] if der::is_oid(ty, &der::oid(ID_DATA)) => Ok(()),
        [ty] if ty.tag == der::OID => Err(CmsError::Unsupported {
            part: "encapContentInfo",
            what: "content type is not id-data",
        }),
        [_, _] => Err(CmsError::Unsupported {
            part: "encapContentInfo",
            what: "content is embedded; a detached signature is expected",
        }),
        _ => Err(bad("expected { eContentType }")),
    }
}

fn parse_signer_info(
    info: &Tlv<'_>,
    mut certificates: Vec<Vec<u8>>,
) -> Result<ParsedCms, CmsError> {
    let bad = malformed("SignerInfo");
    der::expect_tag(info, SEQUENCE).map_err(&bad)?;
    let fields = der::read_all(info.value).map_err(&bad)?;
    // No unsignedAttrs [1] are accepted: nothing here would read them.
    let [version, sid, digest_alg, attrs, sig_alg, signature] = fields.as_slice() else {
        return Err(bad("expected 6 fields with signedAttrs, no unsignedAttrs"));
    };
    if der::small_integer_value(version).map_err(&bad)? != 1 {
        return Err(CmsError::Unsupported {
            part: "SignerInfo",
            what: "version other than 1 (issuerAndSerialNumber)",
        });
    }
    let id = der::read_algorithm(digest_alg).map_err(&bad)?;
    if !der::is_oid(&id, &der::oid(ID_SHA256)) {
        return Err(CmsError::Unsupported {
            part: "SignerInfo",
            what: "digest algorithm other than SHA-256",
        });
    }
    let id = der::read_algorithm(sig_alg).map_err(&bad)?;
    if !der::is_oid(&id, &der::oid(ID_SHA256_WITH_RSA))
        && !der::is_oid(&id, &der::oid(ID_RSA_ENCRYPTION))
    {
        return Err(CmsError::Unsupported {
            part: "SignerInfo",
            what: "signature algorithm other than RSA PKCS#1 v1.5",
        });
    }
    der::expect_tag(signature, OCTET_STRING).map_err(&bad)?;
    der::expect_tag(attrs, CONTEXT_0).map_err(&bad)?;
    let (message_digest, signing_time) = parse_signed_attrs(attrs)?;

    let (sid_issuer, sid_serial) = read_sid(sid)?;
    // `find_signer` returns an index of `certificates`.
    let signer =
        find_signer(&sid_issuer, &sid_serial, &certificates).map(|i| certificates.remove(i));
    let mut signed_attrs = attrs.raw.to_vec();
    if let Some(tag) = signed_attrs.first_mut() {
        *tag = SET;
    }
    Ok(ParsedCms {
        signer,
        sid_issuer,
        sid_serial,
        others: certificates,
        signed_attrs,
        message_digest,
        signing_time,
        signature: signature.value.to_vec(),
    })
}

/// contentType must be id-data, messageDigest a 32-byte OCTET STRING,
/// signingTime a time; each at most once. Other attributes are ignored.
fn parse_signed_attrs(attrs: &Tlv<'_>) -> Result<([u8; 32], Option<i64>), CmsError> {
    let bad = malformed("signedAttrs");
    let mut content_type_seen = false;
    let mut digest = None;
    let mut time = None;
    for attr in der::read_all(attrs.value).map_err(&bad)? {
        der::expect_tag(&attr, SEQUENCE).map_err(&bad)?;
        let [ty, values] = der::read_all(attr.value).map_err(&bad)?[..] else {
            return Err(bad("Attribute is not { type, values }"));
        };
        der::expect_tag(&values, SET).map_err(&bad)?;
        let one = || match der::read_all(values.value)?[..] {
            [v] => Ok(v),
            _ => Err("attribute must have exactly one value"),
        };
        if der::is_oid(&ty, &der::oid(ID_CONTENT_TYPE)) {
            let v = one().map_err(&bad)?;
            if content_type_seen {
                return Err(bad("contentType twice"));
            }
            if !der::is_oid(&v, &der::oid(ID_DATA)) {
                return Err(CmsError::Unsupported {
                    part: "signedAttrs",
                    what: "contentType is not id-data",
                });
            }
            content_type_seen = true;
        } else if der::is_oid(&ty, &der::oid(ID_MESSAGE_DIGEST)) {
            let v = one().map_err(&bad)?;
            der::expect_tag(&v, OCTET_STRING).map_err(&bad)?;
            let d: [u8; 32] = v
                .value
                .try_into()
                .map_err(|_| bad("messageDigest is not 32 bytes"))?;
            if digest.replace(d).is_some() {
                return Err(bad("messageDigest twice"));
            }
        } else if der::is_oid(&ty, &der::oid(ID_SIGNING_TIME)) {
            let v = one().map_err(&bad)?;
            let t = der::read_time(&v).map_err(&bad)?;
            if time.replace(t).is_some() {
                return Err(bad("signingTime twice"));
            }
        }
    }
    if !content_type_seen {
        return Err(bad("contentType missing"));
    }
    let digest = digest.ok_or(bad("messageDigest missing"))?;
    Ok((digest, time))
}

/// The issuer name (DER) and serial (INTEGER contents) of
/// issuerAndSerialNumber.
fn read_sid(sid: &Tlv<'_>) -> Result<(Vec<u8>, Vec<u8>), CmsError> {
    let bad = malformed("issuerAndSerialNumber");
    der::expect_tag(sid, SEQUENCE).map_err(&bad)?;
    let [issuer, serial] = der::read_all(sid.value).map_err(&bad)?[..] else {
        return Err(bad("expected { issuer, serialNumber }"));
    };
    der::expect_tag(&issuer, SEQUENCE).map_err(&bad)?;
    der::expect_tag(&serial, der::INTEGER).map_err(&bad)?;
    Ok((issuer.raw.to_vec(), serial.value.to_vec()))
}

/// The certificate whose issuer and serial are these.
fn find_signer(issuer: &[u8], serial: &[u8], certificates: &[Vec<u8>]) -> Option<usize> {
    certificates.iter().position(|der_cert| {
        ParsedCert::from_der(der_cert)
            .ok()
            .and_then(|cert| {
                let x = cert.x509().ok()?;
                Some(x.issuer().as_raw() == issuer && x.raw_serial() == serial)
            })
            .unwrap_or(false)
    })
}

/// The blob without its certificates: the same signature (which covers
/// only the signed attributes), with nothing of the signer's certificate.
/// What the consent ledger stores, since a JPKI signing certificate holds
/// the patient's name, address and birth date.
pub fn without_certificates(blob: &[u8]) -> Result<Vec<u8>, CmsError> {
    parse(blob)?;
    let ci = der::read_single(blob, SEQUENCE).map_err(malformed("ContentInfo"))?;
    let [content_type, content] = der::read_all(ci.value).map_err(malformed("ContentInfo"))?[..]
    else {
        return Err(malformed("ContentInfo")(
            "expected { contentType, [0] content }",
        ));
    };
    let sd = der::read_single(content.value, SEQUENCE).map_err(malformed("SignedData"))?;
    let fields = der::read_all(sd.value).map_err(malformed("SignedData"))?;
    let kept: Vec<&[u8]> = fields
        .iter()
        .filter(|f| f.tag != CONTEXT_0)
        .map(|f| f.raw)
        .collect();
    Ok(der::sequence(&[
        content_type.raw,
        &der::tlv(CONTEXT_0, &der::sequence(&kept)),
    ]))
}

/// What the ledger keeps of a signer to check a stored signature again:
/// the RSA public key (DER `RSAPublicKey`), and the issuer name and serial
/// the signature names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignerKey<'a> {
    /// DER `RSAPublicKey`.
    pub rsa_public_key: &'a [u8],
    /// The issuer's name, DER.
    pub issuer: &'a [u8],
    /// The serial, INTEGER contents.
    pub serial: &'a [u8],
}

/// Verifies a stored detached `blob` (certificates may be absent) over
/// `content` with a signer key kept apart: the digest, the signer named by
/// issuer and serial, and the signature.
pub fn verify_with_key(blob: &[u8], content: &[u8], key: &SignerKey<'_>) -> Result<(), CmsError> {
    let cms = parse(blob)?;
    if sha256(content) != cms.message_digest {
        return Err(CmsError::DigestMismatch);
    }
    if cms.sid_issuer != key.issuer || cms.sid_serial != key.serial {
        return Err(CmsError::SignerNotFound);
    }
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::RSA_PKCS1_2048_8192_SHA256,
        key.rsa_public_key,
    )
    .verify(&cms.signed_attrs, &cms.signature)
    .map_err(|_| CmsError::Signature(SignatureError::Mismatch))
}

/// What a consent signature is checked against: the JPKI trust store, the
/// profile (policy OIDs), and optionally a revocation source.
#[derive(Clone, Copy)]
pub struct SignatureCheck<'a> {
    /// The JPKI trust store (kind [`crate::cert::StoreKind::Jpki`]).
    pub store: &'a TrustStore,
    /// The profile; its JpkiSign policy refuses authentication certificates.
    pub profile: &'a Profile,
    /// CRLs or OCSP; `None` skips revocation (say so in the deployment).
    pub revocation: Option<&'a dyn Revocation>,
}

impl fmt::Debug for SignatureCheck<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignatureCheck")
            .field("store", &self.store.kind())
            .field("revocation", &self.revocation.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> SignatureCheck<'a> {
    /// Checks against `store` and `profile`, without revocation.
    pub fn new(store: &'a TrustStore, profile: &'a Profile) -> Self {
        SignatureCheck {
            store,
            profile,
            revocation: None,
        }
    }

    /// Also checks revocation with `source`.
    pub fn with_revocation(mut self, source: &'a dyn Revocation) -> Self {
        self.revocation = Some(source);
        self
    }
}

/// A signature that verified.
#[derive(Clone, PartialEq, Eq)]
pub struct VerifiedSignature {
    /// The signer's certificate.
    pub signer: ParsedCert,
    /// The certificate that issued it (a CA: no patient data).
    pub issuer: ParsedCert,
    /// The signer's pseudonym ([`PatientId::from_signing_cert`]).
    pub patient: PatientId,
    /// The signingTime attribute, unix seconds, if present.
    pub signing_time: Option<i64>,
}

impl fmt::Debug for VerifiedSignature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The certificate carries the patient's name: show the pseudonym only.
        f.debug_struct("VerifiedSignature")
            .field("patient", &self.patient)
            .field("signing_time", &self.signing_time)
            .finish_non_exhaustive()
    }
}

/// Verifies the detached `blob` over `content` at time `at`: messageDigest
/// equals SHA-256 of `content`, the signature over the signed attributes
/// verifies with the signer's certificate, that certificate chains to
/// `check.store` for [`Purpose::JpkiSign`] at `at`, passes the profile (the
/// JPKI signing policy OID) and, when a source is given, is not revoked.
pub fn verify_detached(
    blob: &[u8],
    content: &[u8],
    check: &SignatureCheck<'_>,
    at: SystemTime,
) -> Result<VerifiedSignature, CmsError> {
    let (chain, signing_time) = verify_detached_for(blob, content, check, Purpose::JpkiSign, at)?;
    let signer = chain.leaf().clone();
    let issuer = chain
        .issuer_of(0)
        .cloned()
        .ok_or_else(|| CertError::parse("certificate", "a chain without an issuer"))?;
    Ok(VerifiedSignature {
        patient: PatientId::from_signing_cert(signer.der()),
        signer,
        issuer,
        signing_time,
    })
}

/// Verifies the detached `blob` over `content` for a signing `purpose`
/// ([`Purpose::JpkiSign`] for a patient's consent, [`Purpose::HpkiSign`] for
/// a professional's signed document): messageDigest equals SHA-256 of
/// `content`, the signature over the signed attributes verifies with the
/// signer's certificate, that certificate chains to `check.store` for
/// `purpose` at `at`, passes the profile (the purpose's policy OIDs) and,
/// when a source is given, is not revoked. Returns the verified chain (its
/// leaf is the signer) and the signingTime attribute, unix seconds.
pub fn verify_detached_for(
    blob: &[u8],
    content: &[u8],
    check: &SignatureCheck<'_>,
    purpose: Purpose,
    at: SystemTime,
) -> Result<(VerifiedChain, Option<i64>), CmsError> {
    let cms = parse(blob)?;
    if sha256(content) != cms.message_digest {
        return Err(CmsError::DigestMismatch);
    }
    let signer_der = cms.signer_certificate().ok_or(CmsError::SignerNotFound)?;
    let signer = ParsedCert::from_der(signer_der)?;
    verify_sha256(&signer, &cms.signed_attrs, &cms.signature)?;
    let intermediates: Vec<&[u8]> = cms.others.iter().map(Vec::as_slice).collect();
    let chain = verify_chain(signer_der, &intermediates, check.store, purpose, at)?;
    check.profile.check(&chain)?;
    if let Some(source) = check.revocation {
        source.check_chain(&chain, at)?;
    }
    Ok((chain, cms.signing_time))
}
