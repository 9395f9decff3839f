//! Sample messages: one of every type with varied fields, and the largest
//! of every type.

use super::util::{frame_header, hello, sha256};
use crate::message::*;

/// At least one message of every type, with varied field values.
pub fn sample_messages() -> Vec<Message> {
    let payload = b"slice one|slice two|three";
    let mut header = frame_header(3, payload, 3);
    header.seq = u64::MAX - 1;
    header.capture_us = 123_456_789;
    vec![
        Message::Hello(hello("jp.hospital-a.or")),
        Message::Hello(Hello {
            version: 7,
            site_id: "x".into(),
            facility_name: "病院 B".into(),
            capabilities: Capabilities(0xdead_0000 | 0b11),
        }),
        Message::HelloAck(HelloAck {
            site: hello("jp.hospital-b.or"),
            challenge: [0xa5; CHALLENGE_LEN],
        }),
        Message::HelloReject(HelloReject {
            reason: RejectReason::UnsupportedVersion,
            supported_version: PROTOCOL_VERSION,
            detail: "speak version 1".into(),
        }),
        Message::Auth(Auth {
            tokens: vec![
                Token {
                    kind: TokenKind::Hpki,
                    bytes: vec![1, 2, 3],
                },
                Token {
                    kind: TokenKind::Consent,
                    bytes: vec![0; 300],
                },
            ],
        }),
        Message::AuthResult(AuthDecision::Permit),
        Message::AuthResult(AuthDecision::Deny {
            reason: DenyReason::NoConsent,
            detail: "no consent for this purpose".into(),
        }),
        Message::FrameHeader(header),
        Message::FrameHeader(FrameHeader {
            channel: 1,
            seq: 0,
            capture_us: 0,
            codec: Codec::Raw,
            width: 1,
            height: MAX_DIMENSION,
            format: PixelFormat {
                layout: Layout::Bands(7),
                bit_depth: 16,
            },
            slices: vec![],
            payload_len: 0,
        }),
        Message::FrameMeta(FrameMeta {
            channel: 0,
            seq: 42,
            score: 0.83,
            threshold: 0.5,
            boxes: vec![
                BoundingBox {
                    x: 0.1,
                    y: 0.2,
                    w: 0.3,
                    h: 0.25,
                    score: 0.9,
                    class: 2,
                },
                BoundingBox {
                    x: 0.0,
                    y: 1.0,
                    w: 0.0,
                    h: 0.0,
                    score: -1.5,
                    class: u16::MAX,
                },
            ],
            quality: None,
        }),
        Message::FrameMeta(FrameMeta {
            channel: 9,
            seq: 0,
            score: -0.0,
            threshold: 1e30,
            boxes: vec![],
            quality: None,
        }),
        Message::FrameMeta(FrameMeta {
            channel: 2,
            seq: 11,
            score: 0.25,
            threshold: 0.5,
            boxes: vec![],
            quality: Some(Quality {
                value: 7.5,
                threshold: -1.0,
            }),
        }),
        Message::FramesLost(FramesLost {
            channel: 0,
            ranges: vec![
                SeqRange::single(3),
                SeqRange { first: 5, last: 9 },
                SeqRange {
                    first: 11,
                    last: u64::MAX,
                },
            ],
        }),
        Message::Annotation(Annotation {
            id: 1,
            study_uid: "1.2.392.200036.9116.2.5.1".into(),
            target: AnnotationTarget::Object { object_id: 77 },
            shape: Shape::Polyline,
            points: vec![
                Point { x: 10.5, y: 20.0 },
                Point {
                    x: 7679.0,
                    y: 4319.5,
                },
            ],
            label: "切出し 1".into(),
            author: "dr-0042".into(),
            text: "断端から 5 mm".into(),
        }),
        Message::Annotation(Annotation {
            id: u64::MAX,
            study_uid: "1".into(),
            target: AnnotationTarget::Frame {
                channel: 2,
                seq: 99,
            },
            shape: Shape::Polygon,
            points: vec![
                Point { x: 0.0, y: 0.0 },
                Point { x: 1.0, y: 0.0 },
                Point { x: 1.0, y: 1.0 },
            ],
            label: String::new(),
            author: String::new(),
            text: String::new(),
        }),
        Message::Instructions(Instructions {
            study_uid: "2.25.1".into(),
            document: b"{}".to_vec(),
            signature: vec![0x30],
        }),
        Message::LinkStats(LinkStats {
            rtt_us: 12_000,
            loss_ppm: 1_000_000,
            goodput_bps: 150_000_000,
            frames_delivered: 1000,
            frames_late: 3,
            frames_lost: 5,
        }),
        Message::ObjectOffer(ObjectOffer {
            id: 9,
            kind: ObjectKind::SpectralCube,
            size: 464_000_000,
            sha256: sha256(b"cube"),
        }),
        Message::ObjectAck(ObjectAck {
            id: 9,
            offset: 4 << 20,
            state: AckState::Progress,
        }),
        Message::ObjectAck(ObjectAck {
            id: 9,
            offset: 0,
            state: AckState::Corrupt,
        }),
        Message::ObjectData(ObjectData {
            id: 9,
            offset: 1 << 20,
            data: vec![0xee; 1000],
        }),
        Message::Close(Close {
            reason: CloseReason::ConsentRevoked,
            detail: "consent withdrawn".into(),
        }),
    ]
}

/// For every type, a message as large as the type allows.
pub fn maximal_messages() -> Vec<Message> {
    let s = |n: usize| "a".repeat(n);
    let site = Hello {
        version: u16::MAX,
        site_id: s(MAX_SITE_ID_LEN),
        facility_name: s(MAX_NAME_LEN),
        capabilities: Capabilities(u32::MAX),
    };
    let slices = vec![Slice { len: 1, crc: 0 }; MAX_SLICES];
    vec![
        Message::Hello(site.clone()),
        Message::HelloAck(HelloAck {
            site,
            challenge: [0xff; CHALLENGE_LEN],
        }),
        Message::HelloReject(HelloReject {
            reason: RejectReason::NotAccepting,
            supported_version: 1,
            detail: s(MAX_DETAIL_LEN),
        }),
        Message::Auth(Auth {
            tokens: vec![
                Token {
                    kind: TokenKind::Jpki,
                    bytes: vec![0x5a; MAX_TOKEN_LEN],
                };
                MAX_TOKENS
            ],
        }),
        Message::AuthResult(AuthDecision::Deny {
            reason: DenyReason::Other,
            detail: s(MAX_DETAIL_LEN),
        }),
        Message::FrameHeader(FrameHeader {
            channel: u16::MAX,
            seq: u64::MAX,
            capture_us: u64::MAX,
            codec: Codec::Av1,
            width: MAX_DIMENSION,
            height: MAX_DIMENSION,
            format: PixelFormat {
                layout: Layout::Bands(MAX_BANDS),
                bit_depth: 16,
            },
            payload_len: MAX_SLICES as u32,
            slices,
        }),
        Message::FrameMeta(FrameMeta {
            channel: 1,
            seq: 2,
            score: f32::MAX,
            threshold: f32::MIN,
            boxes: vec![
                BoundingBox {
                    x: 1.0,
                    y: 1.0,
                    w: 1.0,
                    h: 1.0,
                    score: 0.0,
                    class: 0,
                };
                MAX_BOXES
            ],
            quality: Some(Quality {
                value: f32::MAX,
                threshold: f32::MIN,
            }),
        }),
        Message::FramesLost(FramesLost {
            channel: 0,
            ranges: (0..MAX_LOST_RANGES as u64)
                .map(|i| SeqRange {
                    first: 2 * i,
                    last: 2 * i,
                })
                .collect(),
        }),
        Message::Annotation(Annotation {
            id: 0,
            study_uid: "1".repeat(MAX_UID_LEN),
            target: AnnotationTarget::Frame { channel: 0, seq: 0 },
            shape: Shape::Polygon,
            points: vec![
                Point {
                    x: MAX_COORDINATE,
                    y: 0.0
                };
                MAX_POINTS
            ],
            label: s(MAX_LABEL_LEN),
            author: s(MAX_AUTHOR_LEN),
            text: s(MAX_TEXT_LEN),
        }),
        Message::Instructions(Instructions {
            study_uid: "1".repeat(MAX_UID_LEN),
            document: vec![b'x'; MAX_DOCUMENT_LEN],
            signature: vec![0xff; MAX_SIGNATURE_LEN],
        }),
        Message::LinkStats(LinkStats::default()),
        Message::ObjectOffer(ObjectOffer {
            id: u64::MAX,
            kind: ObjectKind::Other,
            size: MAX_OBJECT_SIZE,
            sha256: [0; 32],
        }),
        Message::ObjectAck(ObjectAck {
            id: 0,
            offset: MAX_OBJECT_SIZE,
            state: AckState::Refused,
        }),
        Message::ObjectData(ObjectData {
            id: 0,
            offset: MAX_OBJECT_SIZE - MAX_CHUNK_LEN as u64,
            data: vec![1; MAX_CHUNK_LEN],
        }),
        Message::Close(Close {
            reason: CloseReason::Shutdown,
            detail: s(MAX_DETAIL_LEN),
        }),
    ]
}
