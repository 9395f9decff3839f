//! Any bytes on the control stream of an open server session, and as frame
//! payload: the session never panics, and after a violation it is closed and
//! sends nothing but its Close.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use med8k_proto::{
    Auth, AuthDecision, Capabilities, Config, Hello, Message, Session, State, Token, TokenKind,
    Transmit,
};

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let config = Config::default()
        .with_max_frame_payload(1 << 16)
        .with_max_object_size(1 << 20);
    let hello = |site: &str| Hello::new(site, "fuzz", Capabilities::RECEIVE_LIVE);
    let Ok(mut s) = Session::server(now, config, hello("b"), [1; 32]) else {
        return;
    };
    s.handle_message(now, Message::Hello(hello("a")));
    s.handle_message(
        now,
        Message::Auth(Auth {
            tokens: vec![Token {
                kind: TokenKind::Hpki,
                bytes: vec![1],
            }],
        }),
    );
    if s.authorise(now, AuthDecision::Permit).is_err() {
        return;
    }
    while s.poll_transmit(now).is_some() {}
    while s.poll_event().is_some() {}

    // Split the input: control bytes, then payload for channel 0's frames.
    let split = data.len() / 2;
    let (control, payload) = data.split_at(split);
    let mut t = now;
    for chunk in control.chunks(97) {
        t += Duration::from_millis(3);
        s.handle_control_data(t, chunk);
        for seq in 0..4 {
            s.handle_frame_payload(t, 0, seq, &payload[..payload.len().min(chunk.len())]);
        }
        s.handle_timeout(t);
        while s.poll_event().is_some() {}
    }
    let closed = s.state() == State::Closed;
    let mut out = Vec::new();
    while let Some(tx) = s.poll_transmit(t) {
        out.push(tx);
    }
    if closed {
        assert!(out.iter().all(|tx| matches!(tx, Transmit::Control(_))));
    }
});
