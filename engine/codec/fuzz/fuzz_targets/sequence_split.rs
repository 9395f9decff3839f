//! Any bytes: splitting a sequence file never panics, and the frames it
//! returns are the file's bytes in order.
#![no_main]

use libfuzzer_sys::fuzz_target;
use med8k_codec::sequence;

fuzz_target!(|data: &[u8]| {
    if let Ok(frames) = sequence::split(data) {
        let total: usize = frames.iter().map(|f| f.len()).sum();
        if frames.len() == 1 && frames[0].len() == data.len() {
            return; // a single bitstream
        }
        assert_eq!(5 + 4 * frames.len() + total, data.len());
    }
});
