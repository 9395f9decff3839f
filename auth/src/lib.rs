//! # med8k-auth
//!
//! Who may see what: HPKI physician authentication, JPKI-signed patient
//! consent, and the audit trail (the consent and identity work fills this
//! crate). What exists today is the first piece every later one needs:
//! finding the PKCS#11 modules that reach the cards ([`pkcs11`]).
//!
//! ```no_run
//! for m in med8k_auth::pkcs11::configured_modules() {
//!     println!("{}: {}", m.display(), med8k_auth::pkcs11::probe(&m));
//! }
//! ```
#![warn(missing_docs)]

pub mod pkcs11;
