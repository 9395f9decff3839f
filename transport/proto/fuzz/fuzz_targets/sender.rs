//! Any bytes on the control stream of an open *sending* session (a client
//! that has sent live frames and offered an object): loss reports and
//! acknowledgements name whatever the input says. The session never panics
//! or loops over a range the peer chose; a report or acknowledgement of
//! something never sent closes it, after which it sends nothing but its
//! Close.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use med8k_proto::{
    AckState, AuthDecision, Capabilities, Codec, Config, FrameHeader, Hello, HelloAck, Layout,
    Message, ObjectAck, ObjectKind, ObjectOffer, PixelFormat, Session, State, Transmit,
};

fuzz_target!(|data: &[u8]| {
    let Some((&frames, data)) = data.split_first() else {
        return;
    };
    let now = Instant::now();
    let hello = |site: &str| Hello::new(site, "fuzz", Capabilities::SEND_LIVE);
    let Ok(mut s) = Session::client(now, Config::default(), hello("a")) else {
        return;
    };
    s.handle_message(
        now,
        Message::HelloAck(HelloAck {
            site: hello("b"),
            challenge: [1; 32],
        }),
    );
    if s.authenticate(now, Vec::new()).is_err() {
        return;
    }
    s.handle_message(now, Message::AuthResult(AuthDecision::Permit));
    if s.state() != State::Open {
        return;
    }
    let header = FrameHeader {
        channel: 0,
        seq: 0,
        capture_us: 0,
        codec: Codec::Raw,
        width: 4,
        height: 4,
        format: PixelFormat {
            layout: Layout::Gray,
            bit_depth: 8,
        },
        slices: Vec::new(),
        payload_len: 16,
    };
    for _ in 0..frames % 32 {
        let _ = s.send_frame(now, header.clone(), vec![0; 16]);
    }
    let offer = ObjectOffer {
        id: 7,
        kind: ObjectKind::Other,
        size: 100,
        sha256: [0; 32],
    };
    let _ = s.offer_object(offer);
    s.handle_message(
        now,
        Message::ObjectAck(ObjectAck {
            id: 7,
            offset: 0,
            state: AckState::ResumeFrom,
        }),
    );
    let _ = s.send_object_data(7, 0, &[0; 40]);
    while s.poll_transmit(now).is_some() {}
    while s.poll_event().is_some() {}

    let mut t = now;
    for chunk in data.chunks(61) {
        t += Duration::from_millis(7);
        s.handle_control_data(t, chunk);
        s.handle_timeout(t);
        while s.poll_event().is_some() {}
    }
    let closed = s.state() == State::Closed;
    while let Some(tx) = s.poll_transmit(t) {
        if closed {
            assert!(matches!(tx, Transmit::Control(_)));
        }
    }
});
