//! Any bytes as a consent blob or record, or as a link session's tokens:
//! the CMS reader, the canonical record parser and the token readers return
//! values or errors, never panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use med8k_auth::consent::{SignedBody, cms};
use med8k_auth::gate::{AccessClaim, SessionLogin};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = cms::parse(data) {
        let _ = p.signer_certificate();
        let _ = p.signing_time();
        let _ = p.message_digest();
    }
    let _ = SignedBody::parse(data);
    let _ = serde_json::from_slice::<SessionLogin>(data);
    let _ = serde_json::from_slice::<AccessClaim>(data);
});
