//! Any bytes: the wavelet decoder returns a picture or an error, never
//! panics, never allocates past its sample limit, and what it accepts
//! agrees with its own header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use med8k_codec as codec;

/// Small enough that a hostile header cannot make the fuzzer run out of memory.
const LIMIT: u64 = 1 << 22;

fuzz_target!(|data: &[u8]| {
    let header = codec::stream::read_header(data, LIMIT);
    match codec::decode_with_limit(data, LIMIT) {
        Ok(pic) => {
            let h = header.expect("a decodable stream has a readable header");
            assert_eq!((pic.width(), pic.height()), (h.params.width, h.params.height));
            assert_eq!(pic.layout(), h.params.layout);
            assert_eq!(pic.bit_depth(), h.params.bit_depth);
        }
        Err(e) => {
            // Errors render without panicking.
            let _ = e.to_string();
        }
    }
});
