//! Reliable objects: resume after an outage, SHA-256 check, refusals.

use std::time::Duration;

use super::util::{Pair, Rng, sha256};
use crate::message::*;
use crate::session::{CallError, Config, Event};

#[test]
fn an_object_resumes_after_an_outage_and_is_checked() {
    let config = Config::default().with_ack_interval(256 << 10);
    let mut pair = Pair::permitting(config);
    pair.object_rate = 10_000_000;
    pair.connect();
    let mut rng = Rng::new(21);
    let cube = rng.bytes(3 * 1024 * 1024 + 12_345);
    let offer = ObjectOffer {
        id: 0xc0be,
        kind: ObjectKind::SpectralCube,
        size: cube.len() as u64,
        sha256: sha256(&cube),
    };
    pair.client.objects_to_send.insert(offer.id, cube.clone());
    pair.client.session.offer_object(offer).expect("offer");

    // Run until about a third has arrived, then cut the link.
    for _ in 0..100_000 {
        while pair.step() {}
        let got = pair
            .server
            .session
            .transfers()
            .incoming(offer.id)
            .map_or(0, |p| p.received);
        if got >= 1 << 20 {
            break;
        }
        pair.time += Duration::from_millis(1);
    }
    let before = pair
        .server
        .session
        .transfers()
        .incoming(offer.id)
        .expect("known");
    assert!(
        before.received >= 1 << 20 && before.received < offer.size,
        "{before:?}"
    );
    let acked = pair
        .client
        .session
        .transfers()
        .outgoing(offer.id)
        .expect("not delivered")
        .acknowledged;
    assert!(acked <= before.received);
    pair.cut();
    pair.run_for(Duration::from_secs(1));
    pair.reconnect();
    pair.connect();
    pair.drive();

    // The receiver told the sender to resume from what it held, not from 0.
    assert!(pair.server.events.iter().any(|e| matches!(
        e,
        Event::ObjectOffered { resume_from, .. } if *resume_from == before.received
    )));
    assert!(pair.client.events.iter().any(|e| matches!(
        e,
        Event::ObjectResume { from, .. } if *from == before.received
    )));
    assert!(
        pair.server
            .events
            .contains(&Event::ObjectComplete { id: offer.id })
    );
    assert!(
        pair.client
            .events
            .contains(&Event::ObjectDelivered { id: offer.id })
    );
    assert_eq!(pair.server.objects_received.get(&offer.id), Some(&cube));
    assert_eq!(pair.client.session.transfers().pending_outgoing(), 0);

    // Offering it again (say the sender missed the final ack) is answered
    // "complete" without sending a byte.
    pair.client
        .session
        .offer_object(offer)
        .expect("offer again");
    pair.drive();
    assert_eq!(
        pair.client
            .events
            .iter()
            .filter(|e| **e == Event::ObjectDelivered { id: offer.id })
            .count(),
        2
    );
}

#[test]
fn a_corrupted_object_is_discarded_and_sent_again() {
    let mut pair = Pair::permitting(Config::default());
    pair.connect();
    let mut rng = Rng::new(5);
    let image = rng.bytes(600_000);
    let offer = ObjectOffer {
        id: 1,
        kind: ObjectKind::Dicom,
        size: image.len() as u64,
        sha256: sha256(&image),
    };
    pair.server.objects_to_send.insert(1, image.clone());
    pair.server.corrupt_next_object_send = true;
    pair.server.session.offer_object(offer).expect("offer");
    pair.drive();
    assert!(pair.client.events.contains(&Event::ObjectCorrupt { id: 1 }));
    assert!(
        pair.server
            .events
            .contains(&Event::ObjectResume { id: 1, from: 0 })
    );
    assert!(
        pair.client
            .events
            .contains(&Event::ObjectComplete { id: 1 })
    );
    assert_eq!(pair.client.objects_received.get(&1), Some(&image));

    // Offers the receiver will not take.
    let huge = ObjectOffer {
        id: 2,
        kind: ObjectKind::Other,
        size: MAX_OBJECT_SIZE,
        sha256: [0; 32],
    };
    pair.server.session.offer_object(huge).expect("offer");
    pair.drive();
    assert!(pair.server.events.contains(&Event::ObjectRefused { id: 2 }));
    // The same identifier with other content is refused locally.
    let reuse = ObjectOffer { size: 5, ..offer };
    pair.server
        .session
        .offer_object(reuse)
        .expect("1 was delivered, so its id is free");
    assert_eq!(
        pair.server
            .session
            .offer_object(ObjectOffer { size: 6, ..offer }),
        Err(CallError::ObjectClash { id: 1 })
    );
}
