//! # med8k-auth
//!
//! Who may see what: HPKI physician authentication, JPKI-signed patient
//! consent, and the audit trail. What exists today:
//! - [`pkcs11`]: finding the PKCS#11 modules that reach the cards;
//! - [`cert`]: the two-stage certificate checks for JPKI, HPKI and facility
//!   certificates: the chain to a trust anchor of the purpose's store, then
//!   the profile (policy OIDs, HPKI hcRole), and revocation (CRLs; an OCSP
//!   interface);
//! - [`identity`]: the [`identity::Signer`] trait and its backends, PKCS#11
//!   tokens and cards ([`identity::pkcs11`]) and key files
//!   ([`identity::keyfile`]);
//! - [`login`]: sans-IO challenge/response login for patients (JPKI) and
//!   physicians (HPKI, with role);
//! - `issue` (feature `demo-pki`, on by default): demo and test CAs,
//!   JPKI/HPKI/facility-shaped certificates and CRLs;
//! - [`pkifile`]: `pki.toml`, a PKI directory's tokens, trust anchors and
//!   CRLs, as `med8k pki demo-init` writes it;
//! - [`consent`]: FHIR-like consent records in a canonical form, signed as
//!   detached CMS SignedData with the patient's JPKI signing key, the
//!   append-only SQLite ledger (rows MACed and verified on read, no patient
//!   data), the pure `decide`, and the workflows a site runs over them
//!   ([`consent::workflow`]: grant, revoke, stop, check);
//! - [`audit`]: the keyed, hash-chained, append-only audit log of ATNA-shaped
//!   events (identifiers hashed, no patient data), its verifier and its
//!   checkpoints.
//!
//! ```no_run
//! for m in med8k_auth::pkcs11::configured_modules() {
//!     println!("{}: {}", m.display(), med8k_auth::pkcs11::probe(&m));
//! }
//! ```
#![warn(missing_docs)]

pub mod audit;
pub mod cert;
pub mod civil;
pub mod consent;
mod der;
pub mod identity;
#[cfg(feature = "demo-pki")]
pub mod issue;
pub mod login;
pub mod pkcs11;
pub mod pkifile;
mod secret;

/// Lowercase hex of `bytes`: how digests, pseudonyms and key ids are written.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
