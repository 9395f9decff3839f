//! Two sessions in memory: hello, the consent gate, closing, violations.

use std::time::{Duration, Instant};

use super::util::{CHALLENGE, Pair, Rng, frame_header, hello, sha256};
use crate::codec::{decode, encode_to_vec};
use crate::message::*;
use crate::session::{
    CallError, ClosedBy, Config, Ended, Event, Session, SessionError, State, Transmit,
    TransportStats,
};

fn closed_event(events: &[Event]) -> Option<(ClosedBy, Ended)> {
    events.iter().find_map(|e| match e {
        Event::Closed { by, why, .. } => Some((*by, *why)),
        _ => None,
    })
}

#[test]
fn hello_auth_frames_meta_annotation_stats_close() {
    let mut pair = Pair::permitting(Config::default());
    pair.connect();

    // The gate saw the tokens and the challenge it handed out.
    let req = pair
        .server
        .events
        .iter()
        .find_map(|e| match e {
            Event::AuthRequest {
                peer,
                challenge,
                tokens,
            } => Some((peer.clone(), *challenge, tokens.clone())),
            _ => None,
        })
        .expect("the gate was asked");
    assert_eq!(req.0.site_id, "jp.hospital-a");
    assert_eq!(req.1, CHALLENGE);
    assert_eq!(req.2, pair.client.tokens);
    assert!(pair.client.events.iter().any(|e| matches!(
        e,
        Event::AuthChallenge { peer, challenge } if peer.site_id == "jp.hospital-b" && *challenge == CHALLENGE
    )));
    assert!(
        pair.client
            .events
            .iter()
            .any(|e| matches!(e, Event::Open { .. }))
    );

    // Five frames from the server to the client, one every 16.7 ms.
    let mut rng = Rng::new(3);
    let mut sent = Vec::new();
    for i in 0..5 {
        let p = rng.bytes(10_000 + i * 1000);
        let seq = pair
            .server
            .session
            .send_frame(pair.time, frame_header(0, &p, 4), p.clone())
            .expect("open session sends");
        assert_eq!(seq, i as u64);
        sent.push(p);
        pair.drive();
        pair.run_for(Duration::from_micros(16_667));
    }
    assert_eq!(pair.client.frames.len(), 5);
    for (i, f) in pair.client.frames.iter().enumerate() {
        assert_eq!(f.header.seq, i as u64);
        assert_eq!(f.payload, sent[i]);
        assert_eq!(f.header.payload_len as usize, sent[i].len());
    }
    assert!(pair.client.lost_seqs(0).is_empty());

    // Detection results with the frames; a cut line back from the client.
    let meta = FrameMeta {
        channel: 0,
        seq: 4,
        score: 0.9,
        threshold: 0.5,
        boxes: vec![],
        quality: None,
    };
    pair.server
        .session
        .send_frame_meta(meta.clone())
        .expect("meta");
    let cut = Annotation {
        id: 1,
        study_uid: "1.2.3".into(),
        target: AnnotationTarget::Frame { channel: 0, seq: 4 },
        shape: Shape::Polyline,
        points: vec![Point { x: 100.0, y: 200.0 }, Point { x: 300.0, y: 200.0 }],
        label: "cut here".into(),
        author: "pathologist-7".into(),
        text: "through the margin".into(),
    };
    pair.client
        .session
        .send_annotation(cut.clone())
        .expect("annotation");
    pair.client
        .session
        .send_link_stats(TransportStats {
            rtt: Duration::from_millis(20),
            loss_ppm: 100,
            goodput_bps: 150_000_000,
        })
        .expect("stats");
    pair.drive();
    assert!(pair.client.events.contains(&Event::FrameMeta(meta)));
    assert!(pair.server.events.contains(&Event::Annotation(cut)));
    assert!(pair.server.events.iter().any(|e| matches!(
        e,
        Event::PeerStats(s) if s.rtt_us == 20_000 && s.frames_delivered == 5 && s.frames_lost == 0
    )));

    pair.client
        .session
        .close(pair.time, CloseReason::Normal, "done");
    pair.drive();
    assert_eq!(pair.client.session.state(), State::Closed);
    assert_eq!(pair.server.session.state(), State::Closed);
    assert_eq!(
        closed_event(&pair.client.events),
        Some((ClosedBy::Local, Ended::Close(CloseReason::Normal)))
    );
    assert_eq!(
        closed_event(&pair.server.events),
        Some((ClosedBy::Peer, Ended::Close(CloseReason::Normal)))
    );
    assert_eq!(pair.server.session.stats().frames_sent, 5);
    assert_eq!(pair.client.session.stats().frames_delivered, 5);
}

#[test]
fn no_media_is_sent_before_the_gate_permits() {
    let mut pair = Pair::new(Config::default());
    pair.client.tokens = vec![Token {
        kind: TokenKind::Hpki,
        bytes: vec![1],
    }];
    pair.drive(); // hello, challenge, tokens; the gate has not answered
    assert_eq!(pair.server.session.state(), State::Authorising);
    assert_eq!(pair.client.session.state(), State::Authorising);
    let p = vec![0u8; 100];
    for end in [&mut pair.client, &mut pair.server] {
        let now = pair.time;
        assert_eq!(
            end.session
                .send_frame(now, frame_header(0, &p, 1), p.clone()),
            Err(CallError::NotOpen {
                state: State::Authorising
            })
        );
        assert!(matches!(
            end.session.send_annotation(Annotation {
                id: 0,
                study_uid: "1".into(),
                target: AnnotationTarget::Object { object_id: 0 },
                shape: Shape::Polyline,
                points: vec![Point { x: 0.0, y: 0.0 }; 2],
                label: String::new(),
                author: String::new(),
                text: String::new(),
            }),
            Err(CallError::NotOpen { .. })
        ));
        assert!(matches!(
            end.session.send_object_data(1, 0, &[1]),
            Err(CallError::NotOpen { .. })
        ));
    }
    // An offer made now is kept, and made only once the session opens.
    let data = b"a pathology image".to_vec();
    let offer = ObjectOffer {
        id: 5,
        kind: ObjectKind::Image,
        size: data.len() as u64,
        sha256: sha256(&data),
    };
    pair.server.session.offer_object(offer).expect("offer kept");
    pair.server.objects_to_send.insert(5, data.clone());
    assert!(
        pair.server.session.poll_transmit(pair.time).is_none(),
        "nothing leaves before the permit"
    );

    let now = pair.time;
    pair.server
        .session
        .authorise(now, AuthDecision::Permit)
        .expect("decision pending");
    pair.drive();
    assert_eq!(pair.client.session.state(), State::Open);
    assert_eq!(pair.client.objects_received.get(&5), Some(&data));
    assert!(
        pair.server
            .events
            .contains(&Event::ObjectDelivered { id: 5 })
    );
}

#[test]
fn media_from_the_peer_before_the_permit_closes_the_session() {
    // The server has answered the hello but not authorised: a frame header
    // from a (broken or hostile) client is refused and the session closes.
    let now = Instant::now();
    let mut server =
        Session::server(now, Config::default(), hello("b"), CHALLENGE).expect("server");
    server.handle_message(now, Message::Hello(hello("a")));
    assert_eq!(server.state(), State::Authorising);
    let p = [0u8; 4];
    server.handle_message(now, Message::FrameHeader(frame_header(0, &p, 1)));
    assert_eq!(server.state(), State::Closed);
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(
        events.contains(&Event::Error(SessionError::MediaBeforePermit {
            ty: MessageType::FrameHeader,
            state: State::Authorising
        }))
    );
    assert_eq!(
        closed_event(&events),
        Some((
            ClosedBy::Local,
            Ended::Close(CloseReason::ProtocolViolation)
        ))
    );
    // What goes out: the Close alone (the unsent HelloAck is dropped too).
    let sent: Vec<Message> = std::iter::from_fn(|| server.poll_transmit(now))
        .map(|t| match t {
            Transmit::Control(b) => decode(&b).expect("decodes").expect("whole").0,
            other => panic!("unexpected {other:?}"),
        })
        .collect();
    assert!(
        matches!(sent.as_slice(), [Message::Close(c)] if c.reason == CloseReason::ProtocolViolation),
        "{sent:?}"
    );

    // Same for object data on a client still waiting for the result.
    let mut client = Session::client(now, Config::default(), hello("a")).expect("client");
    client.handle_message(
        now,
        Message::HelloAck(HelloAck {
            site: hello("b"),
            challenge: CHALLENGE,
        }),
    );
    client.handle_message(
        now,
        Message::ObjectData(ObjectData {
            id: 1,
            offset: 0,
            data: vec![1],
        }),
    );
    assert_eq!(client.state(), State::Closed);
    // And after closing, nothing is accepted any more.
    client.handle_message(now, Message::AuthResult(AuthDecision::Permit));
    assert_eq!(client.state(), State::Closed);
}

#[test]
fn a_denial_ends_the_session() {
    let mut pair = Pair::permitting(Config::default());
    pair.server.gate = Some(AuthDecision::Deny {
        reason: DenyReason::NoConsent,
        detail: "no consent for disclosure to this facility".into(),
    });
    pair.drive();
    assert_eq!(pair.client.session.state(), State::Closed);
    assert_eq!(pair.server.session.state(), State::Closed);
    assert_eq!(
        closed_event(&pair.client.events),
        Some((ClosedBy::Peer, Ended::Denied(DenyReason::NoConsent)))
    );
    assert!(
        !pair
            .client
            .events
            .iter()
            .any(|e| matches!(e, Event::Open { .. }))
    );
}

#[test]
fn revoking_consent_stops_media_at_once() {
    let mut pair = Pair::permitting(Config::default());
    pair.connect();
    let mut rng = Rng::new(9);
    for _ in 0..3 {
        let p = rng.bytes(5000);
        pair.server
            .session
            .send_frame(pair.time, frame_header(0, &p, 2), p)
            .expect("send");
    }
    pair.drive();
    assert_eq!(
        pair.client.frames.len(),
        1,
        "newest first: only frame 2 is not stale"
    );
    assert_eq!(pair.client.frames[0].header.seq, 2);

    // Frames queued, then the gate revokes before the driver takes them.
    for _ in 0..3 {
        let p = rng.bytes(5000);
        pair.server
            .session
            .send_frame(pair.time, frame_header(0, &p, 2), p)
            .expect("send");
    }
    pair.server
        .session
        .send_frame_meta(FrameMeta {
            channel: 0,
            seq: 5,
            score: 0.1,
            threshold: 0.5,
            boxes: vec![],
            quality: None,
        })
        .expect("meta");
    let now = pair.time;
    pair.server.session.revoke(now, "patient withdrew consent");
    let out: Vec<Transmit> =
        std::iter::from_fn(|| pair.server.session.poll_transmit(now)).collect();
    assert_eq!(out.len(), 1, "only the Close leaves: {out:?}");
    let Transmit::Control(bytes) = &out[0] else {
        panic!("a control message")
    };
    let (msg, _) = decode(bytes).expect("decodes").expect("whole");
    assert!(matches!(
        msg,
        Message::Close(Close {
            reason: CloseReason::ConsentRevoked,
            ..
        })
    ));
    pair.client.session.handle_control_data(now, bytes);
    pair.client.react(now);
    assert_eq!(pair.client.session.state(), State::Closed);
    assert_eq!(
        closed_event(&pair.client.events),
        Some((ClosedBy::Peer, Ended::Close(CloseReason::ConsentRevoked)))
    );
    assert_eq!(pair.server.session.stats().frames_cancelled, 3);
    let p = vec![0u8; 10];
    assert!(matches!(
        pair.server
            .session
            .send_frame(now, frame_header(0, &p, 1), p.clone()),
        Err(CallError::NotOpen {
            state: State::Closed
        })
    ));
    assert!(matches!(
        pair.client
            .session
            .send_frame(now, frame_header(0, &p, 1), p),
        Err(CallError::NotOpen {
            state: State::Closed
        })
    ));
}

#[test]
fn handshake_times_out_when_the_gate_never_answers() {
    let mut pair = Pair::new(Config::default().with_handshake_timeout(Duration::from_secs(5)));
    pair.client.tokens = vec![Token {
        kind: TokenKind::Consent,
        bytes: vec![1],
    }];
    pair.run_for(Duration::from_secs(6));
    assert_eq!(pair.server.session.state(), State::Closed);
    assert_eq!(pair.client.session.state(), State::Closed);
    assert_eq!(
        closed_event(&pair.server.events),
        Some((ClosedBy::Local, Ended::Close(CloseReason::Timeout)))
    );
    assert!(
        pair.server
            .session
            .authorise(pair.time, AuthDecision::Permit)
            .is_err()
    );
}

#[test]
fn an_unknown_version_is_rejected() {
    let now = Instant::now();
    let mut server =
        Session::server(now, Config::default(), hello("b"), CHALLENGE).expect("server");
    let mut h = hello("a");
    h.version = 99;
    server.handle_message(now, Message::Hello(h));
    let Some(Transmit::Control(bytes)) = server.poll_transmit(now) else {
        panic!("a rejection")
    };
    let mut client = Session::client(now, Config::default(), hello("a")).expect("client");
    client.handle_control_data(now, &bytes);
    let events: Vec<Event> = std::iter::from_fn(|| client.poll_event()).collect();
    assert_eq!(
        closed_event(&events),
        Some((
            ClosedBy::Peer,
            Ended::Rejected(RejectReason::UnsupportedVersion)
        ))
    );
}

#[test]
fn garbage_on_the_control_stream_closes_the_session() {
    let now = Instant::now();
    let mut server =
        Session::server(now, Config::default(), hello("b"), CHALLENGE).expect("server");
    let mut bytes = encode_to_vec(&Message::Hello(hello("a"))).expect("encodes");
    bytes.extend_from_slice(b"GET / HTTP/1.1\r\n");
    server.handle_control_data(now, &bytes);
    assert_eq!(server.state(), State::Closed);
    let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Error(SessionError::Malformed(_))))
    );
    // Wrong-direction handshake messages are violations too.
    let mut client = Session::client(now, Config::default(), hello("a")).expect("client");
    client.handle_message(now, Message::Hello(hello("b")));
    assert_eq!(client.state(), State::Closed);
}

/// The image-quality extension of FrameMeta reaches a peer that announced
/// `Capabilities::QUALITY`, and is dropped for one that did not (an older
/// peer's decoder would refuse the extra bytes).
#[test]
fn frame_meta_quality_goes_only_to_peers_that_read_it() {
    let meta = FrameMeta {
        channel: 0,
        seq: 7,
        score: 0.2,
        threshold: 0.5,
        boxes: vec![],
        quality: Some(Quality {
            value: 3.5,
            threshold: 1.6,
        }),
    };
    for reads in [false, true] {
        let extra = if reads {
            Capabilities::QUALITY
        } else {
            Capabilities::empty()
        };
        let mut pair = Pair::permitting_with(Config::default(), extra);
        pair.connect();
        pair.server
            .session
            .send_frame_meta(meta.clone())
            .expect("meta");
        pair.drive();
        let got = pair
            .client
            .events
            .iter()
            .find_map(|e| match e {
                Event::FrameMeta(m) => Some(m.clone()),
                _ => None,
            })
            .expect("the meta arrived");
        let want = FrameMeta {
            quality: if reads { meta.quality } else { None },
            ..meta.clone()
        };
        assert_eq!(got, want, "peer reads quality: {reads}");
    }
}
