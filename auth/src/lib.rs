//! # med8k-auth
//!
//! Who may see what: HPKI physician authentication, JPKI-signed patient
//! consent, and the audit trail. What exists today:
//! - [`pkcs11`]: finding the PKCS#11 modules that reach the cards;
//! - [`cert`]: the two-stage certificate checks for JPKI, HPKI and facility
//!   certificates: the chain to a trust anchor of the purpose's store, then
//!   the profile (policy OIDs, HPKI hcRole), and revocation (CRLs; an OCSP
//!   interface);
//! - [`audit`]: the hash-chained, append-only audit log of ATNA-shaped events
//!   (identifiers hashed, no patient data) and its verifier.
//!
//! Still to come: the identity trait over PKCS#11 and key files, login,
//! the consent record and ledger, and the transport `Gate`.
//!
//! ```no_run
//! for m in med8k_auth::pkcs11::configured_modules() {
//!     println!("{}: {}", m.display(), med8k_auth::pkcs11::probe(&m));
//! }
//! ```
#![warn(missing_docs)]

pub mod audit;
pub mod cert;
pub mod identity;
pub mod pkcs11;
