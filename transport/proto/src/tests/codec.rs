//! The wire format: round trips, prefixes, bounds, hostile bytes.

use std::collections::HashSet;

use super::samples::{maximal_messages, sample_messages};
use super::util::Rng;
use crate::codec::{HEADER_LEN, MAGIC, MAX_MESSAGE_LEN, MessageReader, WIRE_VERSION};
use crate::message::*;
use crate::{ProtoError, decode, encode, encode_to_vec};

fn frame(ty: MessageType, body: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(WIRE_VERSION);
    out.push(ty as u8);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn every_message_round_trips() {
    let mut seen = HashSet::new();
    for msg in sample_messages().into_iter().chain(maximal_messages()) {
        let bytes = encode_to_vec(&msg).expect("encodes");
        let (back, used) = decode(&bytes).expect("decodes").expect("whole");
        assert_eq!(used, bytes.len(), "{:?}", msg.message_type());
        assert_eq!(back, msg);
        // Encoding is canonical: the decoded message encodes to the same bytes.
        assert_eq!(encode_to_vec(&back).expect("re-encodes"), bytes);
        seen.insert(msg.message_type());
    }
    for ty in MessageType::ALL {
        assert!(seen.contains(&ty), "no sample of {ty}");
    }
}

#[test]
fn every_prefix_asks_for_more_bytes() {
    for msg in sample_messages() {
        let bytes = encode_to_vec(&msg).expect("encodes");
        for end in 0..bytes.len() {
            assert_eq!(
                decode(&bytes[..end]),
                Ok(None),
                "{} prefix of {} bytes",
                msg.message_type(),
                end
            );
        }
    }
    // The large ones: every header prefix, then a few body prefixes.
    for msg in maximal_messages() {
        let bytes = encode_to_vec(&msg).expect("encodes");
        for end in (0..=HEADER_LEN).chain([HEADER_LEN + 1, bytes.len() / 2, bytes.len() - 1]) {
            assert_eq!(decode(&bytes[..end]), Ok(None), "{}", msg.message_type());
        }
    }
}

#[test]
fn maximal_messages_fill_their_bound_exactly() {
    for msg in maximal_messages() {
        let ty = msg.message_type();
        let bytes = encode_to_vec(&msg).expect("encodes");
        assert_eq!(bytes.len() - HEADER_LEN, ty.max_body_len(), "{ty}");
        assert!(bytes.len() <= MAX_MESSAGE_LEN);
    }
}

#[test]
fn a_stream_fed_byte_by_byte_yields_every_message_in_order() {
    let msgs = sample_messages();
    let mut stream = Vec::new();
    for m in &msgs {
        encode(m, &mut stream).expect("encodes");
    }
    let mut reader = MessageReader::new();
    let mut out = Vec::new();
    for b in &stream {
        reader.push(std::slice::from_ref(b));
        while let Some(m) = reader.next_message().expect("decodes") {
            out.push(m);
        }
    }
    assert_eq!(out, msgs);
    assert_eq!(reader.buffered(), 0);

    // And in random chunks.
    let mut rng = Rng::new(7);
    let mut reader = MessageReader::new();
    let mut out = Vec::new();
    let mut rest = &stream[..];
    while !rest.is_empty() {
        let n = (rng.usize_below(64) + 1).min(rest.len());
        reader.push(&rest[..n]);
        rest = &rest[n..];
        while let Some(m) = reader.next_message().expect("decodes") {
            out.push(m);
        }
    }
    assert_eq!(out, msgs);
}

#[test]
fn header_errors_come_as_soon_as_the_byte_arrives() {
    assert_eq!(
        decode(b"X"),
        Err(ProtoError::BadMagic {
            offset: 0,
            found: b'X',
            expected: b'M'
        })
    );
    assert!(matches!(
        decode(b"MX"),
        Err(ProtoError::BadMagic { offset: 1, .. })
    ));
    assert_eq!(
        decode(&[b'M', b'8', 9]),
        Err(ProtoError::UnsupportedVersion {
            found: 9,
            supported: WIRE_VERSION
        })
    );
    assert_eq!(
        decode(&[b'M', b'8', WIRE_VERSION, 0x99]),
        Err(ProtoError::UnknownType { found: 0x99 })
    );
    // An oversized length is refused with only the 8 header bytes present.
    for ty in MessageType::ALL {
        let max = ty.max_body_len();
        let mut h = MAGIC.to_vec();
        h.extend([WIRE_VERSION, ty as u8]);
        h.extend_from_slice(&(max as u32 + 1).to_be_bytes());
        assert_eq!(
            decode(&h),
            Err(ProtoError::TooLong {
                ty,
                len: max as u64 + 1,
                max
            })
        );
        h[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(matches!(decode(&h), Err(ProtoError::TooLong { .. })));
        // The maximum itself just needs its body.
        h[4..8].copy_from_slice(&(max as u32).to_be_bytes());
        assert_eq!(decode(&h), Ok(None));
    }
}

#[test]
fn body_errors_name_the_field() {
    // A body shorter than its fields, within its declared length.
    let stats = encode_to_vec(&Message::LinkStats(LinkStats::default())).expect("encodes");
    let short = frame(MessageType::LinkStats, &stats[HEADER_LEN..stats.len() - 1]);
    assert!(matches!(
        decode(&short),
        Err(ProtoError::Truncated {
            ty: MessageType::LinkStats,
            field: "frames_lost",
            ..
        })
    ));
    // A fixed-size body announced longer is refused from its header alone.
    let mut long = stats[HEADER_LEN..].to_vec();
    long.push(0);
    assert!(matches!(
        decode(&frame(MessageType::LinkStats, &long)[..HEADER_LEN]),
        Err(ProtoError::TooLong {
            ty: MessageType::LinkStats,
            len: 41,
            max: 40
        })
    ));
    // Bytes after the last field.
    let close = encode_to_vec(&Message::Close(Close {
        reason: CloseReason::Normal,
        detail: "bye".into(),
    }))
    .expect("encodes");
    let mut long = close[HEADER_LEN..].to_vec();
    long.push(0);
    assert_eq!(
        decode(&frame(MessageType::Close, &long)),
        Err(ProtoError::TrailingBytes {
            ty: MessageType::Close,
            extra: 1
        })
    );
    // An unknown enumeration code.
    let ack = [&7u64.to_be_bytes()[..], &0u64.to_be_bytes(), &[0]].concat();
    assert_eq!(
        decode(&frame(MessageType::ObjectAck, &ack)),
        Err(ProtoError::UnknownCode {
            ty: MessageType::ObjectAck,
            field: "state",
            code: 0
        })
    );
    // Text that is not UTF-8.
    let close = [&[1u8][..], &2u16.to_be_bytes(), &[0xff, 0xfe]].concat();
    assert_eq!(
        decode(&frame(MessageType::Close, &close)),
        Err(ProtoError::NotUtf8 {
            ty: MessageType::Close,
            field: "detail"
        })
    );
    // A count larger than the bytes left is refused before allocating.
    let mut hdr = encode_to_vec(&sample_messages()[8]).expect("encodes");
    let count_at = hdr.len() - 2; // empty slice table: the count is last
    hdr[count_at..].copy_from_slice(&4096u16.to_be_bytes());
    assert!(matches!(
        decode(&hdr),
        Err(ProtoError::Truncated {
            field: "slices",
            needed: 32768,
            left: 0,
            ..
        })
    ));
    // A count beyond its bound.
    hdr[count_at..].copy_from_slice(&4097u16.to_be_bytes());
    assert!(matches!(
        decode(&hdr),
        Err(ProtoError::OutOfRange {
            field: "slices",
            ..
        })
    ));
}

#[test]
fn semantic_errors_name_field_value_and_range() {
    let Message::FrameHeader(mut h) = sample_messages()[7].clone() else {
        panic!("sample 7 is a frame header");
    };
    h.width = 0;
    let e = encode_to_vec(&Message::FrameHeader(h.clone())).expect_err("width 0");
    assert_eq!(
        e.to_string(),
        "FrameHeader: field `width` is 0, allowed: 1..=32768"
    );
    h.width = 8;
    h.payload_len += 1;
    let e = encode_to_vec(&Message::FrameHeader(h)).expect_err("slices do not sum");
    assert!(
        matches!(
            e,
            ProtoError::OutOfRange {
                field: "payload_len",
                ..
            }
        ),
        "{e}"
    );

    let nan = Message::FrameMeta(FrameMeta {
        channel: 0,
        seq: 0,
        score: f32::NAN,
        threshold: 0.5,
        boxes: vec![],
        quality: None,
    });
    assert!(matches!(
        encode_to_vec(&nan),
        Err(ProtoError::OutOfRange { field: "score", .. })
    ));

    let bad_site = Message::Hello(Hello::new("has space", "x", Capabilities::empty()));
    let mut out = vec![1, 2, 3];
    assert!(matches!(
        encode(&bad_site, &mut out),
        Err(ProtoError::OutOfRange {
            field: "site_id",
            ..
        })
    ));
    assert_eq!(
        out,
        [1, 2, 3],
        "a refused message leaves the buffer as it was"
    );

    let line = Message::Annotation(Annotation {
        id: 0,
        study_uid: "1.2".into(),
        target: AnnotationTarget::Object { object_id: 0 },
        shape: Shape::Polyline,
        points: vec![Point { x: 0.0, y: 0.0 }],
        label: String::new(),
        author: String::new(),
        text: String::new(),
    });
    let e = encode_to_vec(&line).expect_err("a line needs two points");
    assert_eq!(
        e.to_string(),
        "Annotation: field `points` is 1, allowed: 2..=8192"
    );

    let lost = Message::FramesLost(FramesLost {
        channel: 0,
        ranges: vec![
            SeqRange { first: 5, last: 9 },
            SeqRange { first: 9, last: 12 },
        ],
    });
    assert!(matches!(
        encode_to_vec(&lost),
        Err(ProtoError::OutOfRange {
            field: "range.first",
            ..
        })
    ));

    // The decoder applies the same checks: patch a valid encoding.
    let mut bytes = encode_to_vec(&sample_messages()[7]).expect("encodes");
    let width_at = HEADER_LEN + 2 + 8 + 8 + 1;
    bytes[width_at..width_at + 4].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        decode(&bytes),
        Err(ProtoError::OutOfRange { field: "width", .. })
    ));
}

#[test]
fn tokens_never_show_in_debug_output() {
    let t = Token {
        kind: TokenKind::Jpki,
        bytes: b"CN=Yamada Taro".to_vec(),
    };
    let shown = format!("{t:?}");
    assert!(
        !shown.contains("Yamada") && !shown.contains("89"),
        "{shown}"
    );
}

/// Decodes `buf` and checks the decoder's contract whatever the bytes.
fn check_contract(buf: &[u8]) {
    match decode(buf) {
        Ok(Some((msg, used))) => {
            assert!(used <= buf.len());
            assert_eq!(
                encode_to_vec(&msg).expect("a decoded message encodes"),
                &buf[..used]
            );
        }
        Ok(None) => {
            // Only a short buffer may ask for more.
            if buf.len() >= HEADER_LEN {
                let len = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]) as usize;
                assert!(HEADER_LEN + len > buf.len(), "Ok(None) on a complete frame");
            }
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng::new(0x6d38);
    for i in 0..30_000 {
        let len = rng.usize_below(200);
        let mut buf = rng.bytes(len);
        // Most get a valid header so the body parsers are reached.
        if i % 4 != 0 && buf.len() >= HEADER_LEN {
            let ty = MessageType::ALL[rng.usize_below(MessageType::ALL.len())];
            buf[..2].copy_from_slice(&MAGIC);
            buf[2] = WIRE_VERSION;
            buf[3] = ty as u8;
            let body = (buf.len() - HEADER_LEN) as u32;
            let announced = if rng.chance(0.8) {
                body
            } else {
                rng.below(u64::from(body) + 16) as u32
            };
            buf[4..8].copy_from_slice(&announced.to_be_bytes());
        }
        check_contract(&buf);
    }
}

#[test]
fn mutated_messages_never_panic() {
    let mut rng = Rng::new(0x5eed);
    let samples: Vec<Vec<u8>> = sample_messages()
        .iter()
        .map(|m| encode_to_vec(m).expect("encodes"))
        .collect();
    for _ in 0..40_000 {
        let mut buf = samples[rng.usize_below(samples.len())].clone();
        for _ in 0..=rng.below(3) {
            let at = rng.usize_below(buf.len().max(1));
            match rng.below(6) {
                0 if !buf.is_empty() => buf[at] ^= 1 << rng.below(8),
                1 if !buf.is_empty() => buf[at] = rng.next_u64() as u8,
                2 => buf.truncate(at),
                3 => buf.insert(at.min(buf.len()), rng.next_u64() as u8),
                4 if !buf.is_empty() => {
                    buf.remove(at);
                }
                _ if buf.len() >= HEADER_LEN => {
                    // Keep the length field consistent with the body, so the
                    // body parsers see the mutation.
                    let body = (buf.len() - HEADER_LEN) as u32;
                    buf[4..8].copy_from_slice(&body.to_be_bytes());
                }
                _ => {}
            }
        }
        check_contract(&buf);
        // A reader fed the same bytes in pieces agrees with decode.
        let mut reader = MessageReader::new();
        let cut = rng.usize_below(buf.len() + 1);
        reader.push(&buf[..cut]);
        let first = reader.next_message();
        reader.push(&buf[cut..]);
        let second = reader.next_message();
        match decode(&buf) {
            Ok(Some((m, _))) => assert!(first == Ok(Some(m.clone())) || second == Ok(Some(m))),
            Ok(None) => assert!(matches!(second, Ok(None))),
            Err(e) => assert!(first == Err(e.clone()) || second == Err(e)),
        }
    }
}
