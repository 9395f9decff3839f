//! Any bytes as a certificate: parsing, the hcRole decoder, the CRL
//! distribution points and a chain check return values or errors, never
//! panic.
#![no_main]

use std::time::SystemTime;

use libfuzzer_sys::fuzz_target;
use med8k_auth::cert::{self, ParsedCert, Purpose, StoreKind, TrustStore};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = ParsedCert::from_der(data) {
        let _ = cert::hc_roles(&c, cert::HC_ROLE_ISO17090);
        let _ = cert::crl_urls(&c);
    }
    let store = TrustStore::new(StoreKind::Hpki);
    let _ = cert::verify_chain(data, &[], &store, Purpose::HpkiAuth, SystemTime::UNIX_EPOCH);
});
