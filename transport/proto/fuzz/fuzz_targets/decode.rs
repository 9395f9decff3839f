//! Any bytes: `decode` never panics, commits only to whole valid messages
//! (which re-encode to exactly the bytes they came from), asks for more only
//! when the frame is incomplete, and a `MessageReader` fed the same bytes in
//! two pieces agrees with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use med8k_proto::codec::HEADER_LEN;
use med8k_proto::{MessageReader, decode, encode_to_vec};

fuzz_target!(|data: &[u8]| {
    let mut rest = data;
    loop {
        match decode(rest) {
            Ok(Some((msg, used))) => {
                assert!(used > 0 && used <= rest.len());
                let again = encode_to_vec(&msg).expect("a decoded message encodes");
                assert_eq!(again, &rest[..used]);
                rest = &rest[used..];
            }
            Ok(None) => {
                if rest.len() >= HEADER_LEN {
                    let len = u32::from_be_bytes([rest[4], rest[5], rest[6], rest[7]]) as usize;
                    assert!(HEADER_LEN + len > rest.len());
                }
                break;
            }
            Err(_) => break,
        }
    }

    let cut = data.first().map_or(0, |&b| usize::from(b)).min(data.len());
    let mut reader = MessageReader::new();
    reader.push(&data[..cut]);
    let mut got = Vec::new();
    let mut failed = false;
    for piece in [&data[cut..], &[][..]] {
        loop {
            match reader.next_message() {
                Ok(Some(m)) => got.push(m),
                Ok(None) => break,
                Err(_) => {
                    failed = true;
                    break;
                }
            }
        }
        reader.push(piece);
    }
    let mut expected = Vec::new();
    let mut rest = data;
    while let Ok(Some((m, used))) = decode(rest) {
        expected.push(m);
        rest = &rest[used..];
    }
    assert_eq!(got, expected);
    assert_eq!(failed, decode(rest).is_err());
});
