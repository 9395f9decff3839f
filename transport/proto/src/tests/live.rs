//! Live frames: deadlines, gaps, newest first, bounded tracking, and a
//! seeded lossy link.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use super::util::{CHALLENGE, Pair, Rng, frame_header, hello};
use crate::message::*;
use crate::session::{Config, Event, FrameStream, Session, SessionError, State, Transmit};

#[test]
fn late_frames_are_reported_lost_and_never_block_newer_ones() {
    let config = Config::default().with_frame_deadline(Duration::from_millis(50));
    let mut pair = Pair::permitting(config);
    pair.connect();
    let mut rng = Rng::new(11);
    // Frame 1 is held up on the link for 200 ms.
    for i in 0..4u64 {
        pair.frame_delay_prob = if i == 1 { 1.0 } else { 0.0 };
        let p = rng.bytes(2000);
        pair.client
            .session
            .send_frame(pair.time, frame_header(0, &p, 2), p)
            .expect("send");
        while pair.step() {}
        pair.run_for(Duration::from_micros(16_667));
    }
    pair.frame_delay_prob = 0.0;
    pair.drive();
    pair.run_for(Duration::from_millis(100));
    let delivered: Vec<u64> = pair.server.frames.iter().map(|f| f.header.seq).collect();
    assert_eq!(delivered, [0, 2, 3], "frame 2 did not wait for frame 1");
    assert_eq!(pair.server.lost_seqs(0), [1]);
    let stats = pair.server.session.stats();
    assert_eq!(stats.frames_lost, 1);
    assert_eq!(
        stats.frames_late, 1,
        "frame 1 arrived after it was given up"
    );
    assert!(pair.client.events.iter().any(|e| matches!(
        e,
        Event::PeerFramesLost { channel: 0, ranges } if ranges == &[SeqRange::single(1)]
    )));
    assert_eq!(pair.client.session.stats().frames_reported_lost, 1);
}

#[test]
fn a_frame_that_misses_its_deadline_is_lost_even_if_nothing_follows() {
    let config = Config::default().with_frame_deadline(Duration::from_millis(50));
    let now = Instant::now();
    let mut rx = open_receiver(now, config);
    let p = vec![7u8; 1000];
    let mut h = frame_header(0, &p, 1);
    h.seq = 0;
    rx.handle_message(now, Message::FrameHeader(h));
    assert_eq!(
        rx.handle_frame_payload(now, 0, 0, &p[..500]),
        FrameStream::Continue
    );
    assert_eq!(rx.poll_timeout(), Some(now + Duration::from_millis(50)));
    rx.handle_timeout(now + Duration::from_millis(50));
    let events: Vec<Event> = std::iter::from_fn(|| rx.poll_event()).collect();
    assert!(events.contains(&Event::FramesLost {
        channel: 0,
        ranges: vec![SeqRange::single(0)]
    }));
    // The rest of its payload is refused: stop reading the stream.
    assert_eq!(
        rx.handle_frame_payload(now, 0, 0, &p[500..]),
        FrameStream::Stop
    );
    assert_eq!(rx.poll_timeout(), None);
}

/// A server session opened by hand, for driving the receiver directly.
fn open_receiver(now: Instant, config: Config) -> Session {
    let mut s = Session::server(now, config, hello("b"), CHALLENGE).expect("server");
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
    s.authorise(now, AuthDecision::Permit).expect("permit");
    while s.poll_event().is_some() {}
    while s.poll_transmit(now).is_some() {}
    assert_eq!(s.state(), State::Open);
    s
}

fn header_for(seq: u64, payload: &[u8]) -> Message {
    let mut h = frame_header(0, payload, 2);
    h.seq = seq;
    Message::FrameHeader(h)
}

#[test]
fn gaps_duplicates_and_stale_frames() {
    let now = Instant::now();
    let mut rx = open_receiver(now, Config::default());
    let p = vec![1u8; 64];
    let deliver = |rx: &mut Session, seq: u64| {
        rx.handle_message(now, header_for(seq, &p));
        rx.handle_frame_payload(now, 0, seq, &p)
    };
    assert_eq!(deliver(&mut rx, 0), FrameStream::Stop);
    // 3 overtakes 1 and 2: delivered at once, 1 and 2 lost.
    rx.handle_message(now, header_for(1, &p));
    assert_eq!(
        rx.handle_frame_payload(now, 0, 1, &p[..10]),
        FrameStream::Continue
    );
    deliver(&mut rx, 3);
    // 2's header, then 1's payload, arrive after: stale.
    rx.handle_message(now, header_for(2, &p));
    assert_eq!(
        rx.handle_frame_payload(now, 0, 1, &p[10..]),
        FrameStream::Stop
    );
    // 3 again, and an older one: ignored.
    rx.handle_message(now, header_for(3, &p));
    rx.handle_message(now, header_for(0, &p));
    // 5 completes before 4 shows up: 4 is stale when it comes.
    deliver(&mut rx, 5);
    deliver(&mut rx, 4);
    // 8's header, then 6's: 6 fills part of the gap; 6 completes, 7 waits.
    rx.handle_message(now, header_for(8, &p));
    deliver(&mut rx, 6);
    let events: Vec<Event> = std::iter::from_fn(|| rx.poll_event()).collect();
    let delivered: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            Event::Frame(f) => Some(f.header.seq),
            _ => None,
        })
        .collect();
    assert_eq!(delivered, [0, 3, 5, 6]);
    let lost: Vec<SeqRange> = events
        .iter()
        .filter_map(|e| match e {
            Event::FramesLost { ranges, .. } => Some(ranges.clone()),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(lost, [SeqRange { first: 1, last: 2 }, SeqRange::single(4)]);
    let stats = rx.stats();
    assert_eq!(stats.frames_late, 4, "2, 0, 4 and 3 once delivered");
    assert_eq!(stats.frames_duplicate, 0);
    // 7 is still awaited, 8 still partial.
    rx.handle_message(now, header_for(8, &p));
    assert_eq!(rx.stats().frames_duplicate, 1);
    assert_eq!(rx.tracked_frames(), 2);
}

#[test]
fn corrupt_slices_lose_the_frame() {
    let now = Instant::now();
    let mut rx = open_receiver(now, Config::default());
    let p = vec![9u8; 100];
    rx.handle_message(now, header_for(0, &p));
    let mut bad = p.clone();
    bad[99] ^= 1;
    rx.handle_frame_payload(now, 0, 0, &bad);
    let events: Vec<Event> = std::iter::from_fn(|| rx.poll_event()).collect();
    assert!(!events.iter().any(|e| matches!(e, Event::Frame(_))));
    assert_eq!(rx.stats().frames_corrupt, 1);
    assert_eq!(rx.stats().frames_lost, 1);
}

#[test]
fn tracking_memory_is_bounded() {
    let config = Config::default()
        .with_max_tracked_frames(4)
        .with_max_channels(2);
    let now = Instant::now();
    let mut rx = open_receiver(now, config);
    let p = vec![0u8; 1 << 10];
    // Headers only, every other number skipped, far more than the cap.
    for i in 0..1000u64 {
        rx.handle_message(now, header_for(i * 2 + 1, &p));
        rx.handle_frame_payload(now, 0, i * 2 + 1, &p[..512]);
        assert!(rx.tracked_frames() <= 8, "{} tracked", rx.tracked_frames());
    }
    assert_eq!(rx.state(), State::Open);
    // A jump to the end of the sequence space is one gap, not 2^64 entries.
    rx.handle_message(now, header_for(u64::MAX, &p));
    rx.handle_frame_payload(now, 0, u64::MAX, &p);
    assert!(rx.tracked_frames() <= 8);
    let events: Vec<Event> = std::iter::from_fn(|| rx.poll_event()).collect();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Frame(f) if f.header.seq == u64::MAX))
    );
    // Everything below was settled; the total is counted without overflow.
    assert_eq!(rx.stats().frames_lost, u64::MAX);
    assert_eq!(rx.tracked_frames(), 0);
    // A third channel is beyond the configured two.
    let mut h = frame_header(1, &p, 1);
    h.seq = 0;
    rx.handle_message(now, Message::FrameHeader(h.clone()));
    assert_eq!(rx.state(), State::Open);
    h.channel = 2;
    rx.handle_message(now, Message::FrameHeader(h));
    assert_eq!(rx.state(), State::Closed);
    let events: Vec<Event> = std::iter::from_fn(|| rx.poll_event()).collect();
    assert!(
        events.contains(&Event::Error(SessionError::TooManyChannels {
            channel: 2,
            max: 2
        }))
    );
}

#[test]
fn payload_beyond_the_header_is_a_violation() {
    let now = Instant::now();
    let mut rx = open_receiver(now, Config::default().with_max_frame_payload(1000));
    let p = vec![0u8; 10];
    rx.handle_message(now, header_for(0, &p));
    assert_eq!(
        rx.handle_frame_payload(now, 0, 0, &[0; 11]),
        FrameStream::Stop
    );
    assert_eq!(rx.state(), State::Closed);

    let mut rx = open_receiver(now, Config::default().with_max_frame_payload(1000));
    rx.handle_message(now, header_for(0, &[0u8; 1001]));
    assert_eq!(rx.state(), State::Closed);
    let events: Vec<Event> = std::iter::from_fn(|| rx.poll_event()).collect();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::Error(SessionError::FrameTooLarge {
            len: 1001,
            max: 1000,
            ..
        })
    )));
}

#[test]
fn the_sender_cancels_frames_past_their_deadline_and_sends_newest_first() {
    let config = Config::default()
        .with_frame_deadline(Duration::from_millis(30))
        .with_max_tracked_frames(3);
    let now = Instant::now();
    let mut tx = open_receiver(now, config);
    let p = vec![0u8; 8];
    for _ in 0..5 {
        tx.send_frame(now, frame_header(0, &p, 1), p.clone())
            .expect("send");
    }
    // Only the 3 newest were kept; the driver gets the newest first.
    let first = tx.poll_transmit(now).expect("a frame");
    assert!(
        matches!(first, Transmit::Frame { seq: 4, deadline, .. } if deadline == now + Duration::from_millis(30))
    );
    assert_eq!(tx.poll_timeout(), Some(now + Duration::from_millis(30)));
    let later = now + Duration::from_millis(30);
    tx.handle_timeout(later);
    assert!(tx.poll_transmit(later).is_none());
    assert_eq!(tx.stats().frames_cancelled, 4);
    assert_eq!(tx.stats().frames_sent, 1);
}

/// Many frames over a link with jitter, delays and resets: every frame
/// number up to the newest seen is settled exactly once, delivered or lost,
/// and deliveries only go forward.
#[test]
fn random_lossy_link_settles_every_frame_once() {
    for seed in 0..8 {
        let config = Config::default().with_frame_deadline(Duration::from_millis(40));
        let mut pair = Pair::permitting(config);
        pair.rng = Rng::new(seed);
        pair.stream_loss = 0.05;
        pair.frame_delay_prob = 0.1;
        pair.frame_delay = Duration::from_millis(25 + seed * 5);
        pair.frame_reset_prob = 0.05;
        pair.connect();
        let mut rng = Rng::new(seed + 100);
        for _ in 0..300 {
            let burst = 1 + rng.usize_below(2);
            for _ in 0..burst {
                let len = 1 + rng.usize_below(3000);
                let p = rng.bytes(len);
                let slices = 1 + rng.usize_below(4);
                pair.server
                    .session
                    .send_frame(pair.time, frame_header(0, &p, slices), p)
                    .expect("send");
            }
            pair.run_for(Duration::from_micros(16_667));
        }
        pair.run_for(Duration::from_secs(1));

        let delivered: Vec<u64> = pair.client.frames.iter().map(|f| f.header.seq).collect();
        assert!(
            delivered.windows(2).all(|w| w[0] < w[1]),
            "seed {seed}: deliveries go forward"
        );
        let lost = pair.client.lost_seqs(0);
        let mut settled = BTreeSet::new();
        for s in delivered.iter().chain(lost.iter()) {
            assert!(settled.insert(*s), "seed {seed}: frame {s} settled twice");
        }
        let newest = *settled.last().expect("something arrived");
        assert_eq!(
            settled.len() as u64,
            newest + 1,
            "seed {seed}: every frame up to {newest} settled"
        );
        let stats = pair.client.session.stats();
        assert_eq!(stats.frames_delivered, delivered.len() as u64);
        assert_eq!(stats.frames_lost, lost.len() as u64);
        assert!(
            !delivered.is_empty() && !lost.is_empty(),
            "seed {seed}: the link is lossy, not dead"
        );
        // The sender heard about exactly those losses.
        assert_eq!(
            pair.server.session.stats().frames_reported_lost,
            lost.len() as u64
        );
        assert_eq!(pair.client.session.tracked_frames(), 0);
    }
}
