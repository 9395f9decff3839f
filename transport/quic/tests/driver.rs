//! The quinn driver on loopback: mutual TLS refusals, the gate, live frames,
//! reliable objects, and a receiver that survives hostile peers.
#![allow(clippy::unwrap_used)]

mod driver_support;

use std::net::Ipv6Addr;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use driver_support::certs::Ca;
use driver_support::*;
use med8k_transport::driver::{
    Backoff, CHALLENGE_EXPORTER_LABEL, Client, ConnectError, Dialer, Server, SiteIdentity,
    TrustConfig, bind_challenge, codes,
};
use med8k_transport::proto::{
    self, Annotation, AnnotationTarget, AuthDecision, Capabilities, CloseReason, ClosedBy,
    DenyReason, Ended, Event, Hello, Point, SessionError, Shape, Slice, Token, TokenKind,
};

// -- fixtures ---------------------------------------------------------------

// -- mutual TLS ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_flow_bit_exact_after_the_gate_permits() {
    let p = pki();
    // The server loads its identity and roots from PEM files.
    let dir = tempfile::tempdir().unwrap();
    let (cert, key, ca) = (
        dir.path().join("site.pem"),
        dir.path().join("site.key"),
        dir.path().join("ca.pem"),
    );
    std::fs::write(&cert, &p.server.cert_pem).unwrap();
    std::fs::write(&key, &p.server.key_pem).unwrap();
    std::fs::write(&ca, &p.ca.pem).unwrap();
    let identity = SiteIdentity::from_pem_files(&cert, &key).unwrap();
    let trust = TrustConfig::from_pem_files(&[ca], vec![CLIENT.into()]).unwrap();
    let (gate, mut opened) = gate(true);
    let mut server =
        Server::bind(localhost(), site(identity, trust, SERVER), gate, config()).unwrap();

    let mut client = connect(server.local_addr().unwrap(), p.client.identity(), &p.ca)
        .await
        .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    assert_eq!(client.facility(), SERVER);
    assert_eq!(remote.facility(), CLIENT);
    assert_eq!(open(&mut client).await.site_id, SERVER);
    assert_eq!(open(&mut remote).await.site_id, CLIENT);
    let (peer, _control) = opened.recv().await.unwrap();
    assert_eq!(peer.facility, CLIENT);

    // One at a time, so no frame is overtaken by a newer one.
    for (i, len) in [300_000usize, 1 << 20, 3_000_017, 1]
        .into_iter()
        .enumerate()
    {
        let data = payload(len, i as u64);
        let mut h = header(0);
        if i == 2 {
            // A slice table: the receiver checks each slice's CRC.
            let half = len / 2;
            h.slices = vec![
                Slice {
                    len: half as u32,
                    crc: crc32fast::hash(&data[..half]),
                },
                Slice {
                    len: (len - half) as u32,
                    crc: crc32fast::hash(&data[half..]),
                },
            ];
        }
        let seq = client.send_frame(h, data.clone()).await.unwrap();
        assert_eq!(seq, i as u64);
        let frame = loop {
            match next(&mut remote).await {
                Some(Event::Frame(f)) => break f,
                Some(Event::FramesLost { channel, ranges }) => {
                    panic!("frames lost on loopback: {channel} {ranges:?}")
                }
                Some(_) => {}
                None => panic!("server link ended"),
            }
        };
        assert_eq!(frame.header.seq, seq);
        assert!(frame.payload == data, "frame {seq} differs");
    }

    client.close("done");
    let ((by, why, _), _) = closed(&mut remote).await;
    assert_eq!(
        (by, why),
        (ClosedBy::Peer, Ended::Close(CloseReason::Normal))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_from_an_unknown_ca_is_refused() {
    let p = pki();
    let stranger = Ca::new("Unknown CA").facility(CLIENT);
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    let attempt = connect(server.local_addr().unwrap(), stranger.identity(), &p.ca).await;
    assert_refused(&mut server, attempt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_from_an_unknown_ca_is_refused() {
    let p = pki();
    let stranger = Ca::new("Unknown CA");
    let (gate, _) = gate(true);
    let site = site(
        stranger.facility(SERVER).identity(),
        trust(&p.ca, &[CLIENT]),
        SERVER,
    );
    let mut server = Server::bind(localhost(), site, gate, config()).unwrap();
    let attempt = connect(server.local_addr().unwrap(), p.client.identity(), &p.ca).await;
    match attempt {
        Err(ConnectError::Connection(e)) => eprintln!("client refused: {e}"),
        other => panic!("connected to a server from an unknown CA: {other:?}"),
    }
    assert!(accept(&mut server).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_client_certificate_is_refused() {
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    let expired = p.ca.expired_facility(CLIENT);
    let attempt = connect(server.local_addr().unwrap(), expired.identity(), &p.ca).await;
    assert_refused(&mut server, attempt).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_facility_not_allowed_is_refused() {
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    let addr = server.local_addr().unwrap();

    // A valid certificate for a facility the server does not allow.
    let other = p.ca.facility("jp.clinic-x");
    let site_x = site(other.identity(), trust(&p.ca, &[SERVER]), "jp.clinic-x");
    let attempt = Client::connect(addr, &site_x, SERVER, credentials(), &config()).await;
    assert_refused(&mut server, attempt).await;

    // A server whose certificate names another (allowed) facility than the
    // one the client asked for.
    let site_a = site(
        p.client.identity(),
        trust(&p.ca, &[SERVER, "jp.hospital-c"]),
        CLIENT,
    );
    let attempt = Client::connect(addr, &site_a, "jp.hospital-c", credentials(), &config()).await;
    assert!(
        matches!(attempt, Err(ConnectError::Connection(_))),
        "{attempt:?}"
    );
    assert!(accept(&mut server).await.is_err());

    // A facility the client itself does not allow: refused before any packet.
    let attempt = Client::connect(addr, &site_a, "jp.elsewhere", credentials(), &config()).await;
    assert!(matches!(attempt, Err(ConnectError::NotAllowed(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_facility_is_named_only_by_the_ca_bound_to_it() {
    // The server trusts two institution CAs: its peer's, and another
    // institution's for jp.clinic-c. That other CA issues a certificate
    // naming the peer's facility.
    let p = pki();
    let other = Ca::new("Other Institution CA");
    let bound = TrustConfig::new(
        vec![p.ca.der.clone()],
        vec![CLIENT.into(), "jp.clinic-c".into()],
    )
    .with_facility_roots(CLIENT, vec![p.ca.der.clone()])
    .with_facility_roots("jp.clinic-c", vec![other.der.clone()]);
    let (g, _) = gate(true);
    let mut server = Server::bind(
        localhost(),
        site(p.server.identity(), bound, SERVER),
        g,
        config(),
    )
    .unwrap();
    let addr = server.local_addr().unwrap();
    let forged = other.facility(CLIENT);
    let attempt = connect(addr, forged.identity(), &p.ca).await;
    assert_refused(&mut server, attempt).await;
    // The peer's own certificate still gets through.
    let mut link = connect(addr, p.client.identity(), &p.ca).await.unwrap();
    let _remote = accept(&mut server).await.unwrap();
    open(&mut link).await;

    // With several roots, a facility bound to none is a configuration error.
    let unbound = TrustConfig::new(
        vec![p.ca.der.clone(), other.der.clone()],
        vec![CLIENT.into()],
    );
    let (g, _) = gate(true);
    let err = Server::bind(
        localhost(),
        site(p.server.identity(), unbound, SERVER),
        g,
        config(),
    )
    .unwrap_err();
    assert!(err.to_string().contains(CLIENT), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_facility_certificate_is_refused() {
    let p = pki();
    let (g, _) = gate(true);
    let revoked = trust(&p.ca, &[CLIENT]).with_crls(vec![p.ca.crl(&[&p.client])]);
    let mut server = Server::bind(
        localhost(),
        site(p.server.identity(), revoked, SERVER),
        g,
        config(),
    )
    .unwrap();
    let attempt = connect(server.local_addr().unwrap(), p.client.identity(), &p.ca).await;
    assert_refused(&mut server, attempt).await;
    // A CRL that does not list it: accepted.
    let (g, _) = gate(true);
    let current = trust(&p.ca, &[CLIENT]).with_crls(vec![p.ca.crl(&[])]);
    let mut server = Server::bind(
        localhost(),
        site(p.server.identity(), current, SERVER),
        g,
        config(),
    )
    .unwrap();
    let mut link = connect(server.local_addr().unwrap(), p.client.identity(), &p.ca)
        .await
        .unwrap();
    let _remote = accept(&mut server).await.unwrap();
    open(&mut link).await;
}

// -- the gate -----------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_media_when_the_gate_denies() {
    let p = pki();
    let (gate, mut opened) = gate(false);
    let mut server = server(&p, gate, config());
    let mut client = connect(server.local_addr().unwrap(), p.client.identity(), &p.ca)
        .await
        .unwrap();
    let mut remote = accept(&mut server).await.unwrap();

    let ((by, why, _), before) = closed(&mut client).await;
    assert_eq!(
        (by, why),
        (ClosedBy::Peer, Ended::Denied(DenyReason::NoConsent))
    );
    assert!(!has_media(&before), "{before:?}");
    let ((_, why, _), before) = closed(&mut remote).await;
    assert_eq!(why, Ended::Denied(DenyReason::NoConsent));
    assert!(!has_media(&before), "{before:?}");
    assert!(opened.try_recv().is_err(), "the gate saw an opened session");

    let refused = client.send_frame(header(0), vec![1; 10]).await;
    assert!(refused.is_err(), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gate_revokes_a_live_session() {
    let p = pki();
    let (gate, mut opened) = gate(true);
    let mut server = server(&p, gate, config());
    let mut client = connect(server.local_addr().unwrap(), p.client.identity(), &p.ca)
        .await
        .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;
    let (_, control) = opened.recv().await.unwrap();

    let data = payload(500_000, 7);
    client.send_frame(header(0), data.clone()).await.unwrap();
    loop {
        if let Some(Event::Frame(f)) = next(&mut remote).await {
            assert!(f.payload == data);
            break;
        }
    }

    let revoked = Instant::now();
    control.revoke("consent withdrawn");
    let ((by, why, detail), _) = closed(&mut client).await;
    let took = revoked.elapsed();
    eprintln!("revocation reached the client in {took:?}");
    assert_eq!(
        (by, why),
        (ClosedBy::Peer, Ended::Close(CloseReason::ConsentRevoked))
    );
    assert_eq!(detail, "consent withdrawn");
    let ((by, why, _), _) = closed(&mut remote).await;
    assert_eq!(
        (by, why),
        (ClosedBy::Local, Ended::Close(CloseReason::ConsentRevoked))
    );
    assert!(client.send_frame(header(0), data).await.is_err());
}

// -- hostile peers ------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_the_control_stream_closes_only_that_connection() {
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    let addr = server.local_addr().unwrap();

    // A raw QUIC client with a valid certificate that speaks garbage.
    let (_endpoint, conn) = raw_connection(&p, addr).await;
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    send.write_all(&[0xAB; 4096]).await.unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    let ((_, why, _), before) = closed(&mut remote).await;
    assert_eq!(why, Ended::Close(CloseReason::ProtocolViolation));
    assert!(!has_media(&before));
    assert!(before.iter().any(|e| matches!(e, Event::Error(_))));
    let reason = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    match reason {
        quinn::ConnectionError::ApplicationClosed(c) => {
            assert_eq!(
                c.error_code,
                quinn::VarInt::from_u32(codes::PROTOCOL_VIOLATION)
            )
        }
        other => panic!("closed otherwise: {other}"),
    }

    // The server still serves.
    let mut client = connect(addr, p.client.identity(), &p.ca).await.unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_frame_is_refused_from_its_header() {
    let p = pki();
    let (gate, _) = gate(true);
    let small = config().with_session(
        proto::Config::default()
            .with_frame_deadline(Duration::from_secs(3))
            .with_max_frame_payload(64 * 1024),
    );
    let mut server = server(&p, gate, small);
    let addr = server.local_addr().unwrap();
    let mut client = connect(addr, p.client.identity(), &p.ca).await.unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;

    client
        .send_frame(header(0), payload(1 << 20, 1))
        .await
        .unwrap();
    let ((_, why, _), before) = closed(&mut remote).await;
    assert_eq!(why, Ended::Close(CloseReason::ProtocolViolation));
    assert!(
        before
            .iter()
            .any(|e| matches!(e, Event::Error(SessionError::FrameTooLarge { .. }))),
        "{before:?}"
    );
    assert!(!before.iter().any(|e| matches!(e, Event::Frame(_))));
    let ((by, why, _), _) = closed(&mut client).await;
    assert_eq!(
        (by, why),
        (ClosedBy::Peer, Ended::Close(CloseReason::ProtocolViolation))
    );

    // The server still serves, and frames within the limit flow.
    let mut client = connect(addr, p.client.identity(), &p.ca).await.unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;
    let data = payload(60_000, 2);
    client.send_frame(header(0), data.clone()).await.unwrap();
    loop {
        if let Some(Event::Frame(f)) = next(&mut remote).await {
            assert!(f.payload == data);
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_before_the_gate_permits_closes_the_connection() {
    let p = pki();
    let (gate, mut opened) = gate(true);
    let mut server = server(&p, gate, config());
    let (_endpoint, conn) = raw_connection(&p, server.local_addr().unwrap()).await;
    // Hello on the control stream, then a frame stream without any token.
    let (mut send, _recv) = conn.open_bi().await.unwrap();
    let hello = Hello::new(CLIENT, "Hospital A", Capabilities::SEND_LIVE);
    let hello = proto::encode_to_vec(&proto::Message::Hello(hello)).unwrap();
    send.write_all(&hello).await.unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    let data = payload(1000, 9);
    let mut h = header(0);
    h.payload_len = data.len() as u32;
    let mut frame = proto::encode_to_vec(&proto::Message::FrameHeader(h)).unwrap();
    frame.extend_from_slice(&data);
    let mut uni = conn.open_uni().await.unwrap();
    uni.write_all(&frame).await.unwrap();
    uni.finish().unwrap();

    let ((_, why, _), before) = closed(&mut remote).await;
    assert_eq!(why, Ended::Close(CloseReason::ProtocolViolation));
    assert!(!has_media(&before), "{before:?}");
    assert!(
        before
            .iter()
            .any(|e| matches!(e, Event::Error(SessionError::MediaBeforePermit { .. }))),
        "{before:?}"
    );
    assert!(opened.try_recv().is_err());
    let reason = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    assert!(
        matches!(&reason, quinn::ConnectionError::ApplicationClosed(c)
            if c.error_code == quinn::VarInt::from_u32(codes::PROTOCOL_VIOLATION)),
        "{reason}"
    );
}

// -- IPv6 ---------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback() {
    if std::net::UdpSocket::bind((Ipv6Addr::LOCALHOST, 0)).is_err() {
        eprintln!("SKIPPED: ::1 is not available here");
        return;
    }
    let p = pki();
    let (gate, _) = gate(true);
    let site = site(p.server.identity(), trust(&p.ca, &[CLIENT]), SERVER);
    let mut server = Server::bind((Ipv6Addr::LOCALHOST, 0).into(), site, gate, config()).unwrap();
    let addr = server.local_addr().unwrap();
    assert!(addr.is_ipv6());
    let mut client = connect(addr, p.client.identity(), &p.ca).await.unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    assert!(remote.remote().is_ipv6());
    open(&mut client).await;
    open(&mut remote).await;
    let data = payload(400_000, 3);
    client.send_frame(header(1), data.clone()).await.unwrap();
    loop {
        if let Some(Event::Frame(f)) = next(&mut remote).await {
            assert_eq!(f.header.channel, 1);
            assert!(f.payload == data);
            break;
        }
    }
}

// -- live frame deadlines -----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_missing_its_deadline_is_reset_and_reported_lost() {
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    let addr = server.local_addr().unwrap();
    // The sender gives frames 50 ms: a 48 MB frame cannot make it.
    let hasty = config().with_session(
        proto::Config::default()
            .with_frame_deadline(Duration::from_millis(50))
            .with_handshake_timeout(Duration::from_secs(5)),
    );
    let site = site(p.client.identity(), trust(&p.ca, &[SERVER]), CLIENT);
    let mut client = Client::connect(addr, &site, SERVER, credentials(), &hasty)
        .await
        .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;

    let big = client
        .send_frame(header(0), payload(48 << 20, 5))
        .await
        .unwrap();
    // Newer small frames follow: if the big frame's stream was reset before
    // its header left, the receiver learns of it from the newer ones.
    let mut lost = false;
    for round in 0..20 {
        client
            .send_frame(header(0), payload(1000, round))
            .await
            .unwrap();
        while let Ok(event) =
            tokio::time::timeout(Duration::from_millis(500), remote.next_event()).await
        {
            match event {
                Some(Event::FramesLost { channel, ranges }) => {
                    assert_eq!(channel, 0);
                    if ranges.iter().any(|r| r.first <= big && big <= r.last) {
                        lost = true;
                        break;
                    }
                }
                Some(Event::Frame(f)) => {
                    assert_ne!(
                        f.header.seq, big,
                        "the big frame arrived after its deadline"
                    );
                    assert_eq!(f.payload.len(), 1000);
                }
                Some(_) => {}
                None => panic!("server link ended"),
            }
        }
        if lost {
            break;
        }
    }
    assert!(lost, "the late frame was never reported lost");
    // The sender hears of it.
    loop {
        match next(&mut client).await {
            Some(Event::PeerFramesLost { ranges, .. })
                if ranges.iter().any(|r| r.first <= big && big <= r.last) =>
            {
                break;
            }
            Some(Event::Closed { .. }) | None => panic!("client link ended"),
            Some(_) => {}
        }
    }
}

// -- reliable objects -----------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_arrives_whole_and_bit_exact() {
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    let mut client = connect(server.local_addr().unwrap(), p.client.identity(), &p.ca)
        .await
        .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;

    let data = payload(3_500_001, 11);
    client.offer_object(offer(42, &data)).await.unwrap();
    let from = resume_point(&mut client, 42).await;
    assert_eq!(from, 0);
    send_range(&client, 42, &data, 0, data.len()).await;
    let mut got = Vec::new();
    receive_object(&mut remote, 42, &mut got, data.len()).await;
    object_complete(&mut remote, 42).await;
    assert!(got == data);
    loop {
        match next(&mut client).await {
            Some(Event::ObjectDelivered { id }) => {
                assert_eq!(id, 42);
                break;
            }
            Some(Event::Closed { .. }) | None => panic!("client link ended"),
            Some(_) => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_object_resumes_after_reconnecting() {
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    let addr = server.local_addr().unwrap();
    let site = site(p.client.identity(), trust(&p.ca, &[SERVER]), CLIENT);
    let data = payload(4 << 20, 13);
    let cut = 1_500_000;

    // First link: only part of the object gets through before the server
    // closes the link.
    let mut client = Client::connect(addr, &site, SERVER, credentials(), &config())
        .await
        .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;
    client.offer_object(offer(7, &data)).await.unwrap();
    assert_eq!(resume_point(&mut client, 7).await, 0);
    send_range(&client, 7, &data, 0, cut).await;
    let mut got = Vec::new();
    receive_object(&mut remote, 7, &mut got, cut).await;
    remote.control().close(CloseReason::Shutdown, "maintenance");
    let ((by, _, _), _) = closed(&mut client).await;
    assert_eq!(by, ClosedBy::Peer);
    // The server's session has handed its transfers over once its link ends.
    while next(&mut remote).await.is_some() {}
    let transfers = client.into_transfers().await;
    assert!(transfers.outgoing(7).is_some());

    // Second link: the object resumes where the receiver stopped.
    let mut client = Client::resume(addr, &site, SERVER, credentials(), &config(), transfers)
        .await
        .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;
    let from = resume_point(&mut client, 7).await;
    assert_eq!(from, cut as u64);
    send_range(&client, 7, &data, cut, data.len()).await;
    receive_object(&mut remote, 7, &mut got, data.len()).await;
    object_complete(&mut remote, 7).await;
    assert!(got == data, "the resumed object differs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_stops_reading_the_control_stream_is_disconnected() {
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    // A client with a 1 KB window on its streams that authenticates, then
    // never reads again.
    let mut transport = quinn::TransportConfig::default();
    transport.stream_receive_window(quinn::VarInt::from_u32(1024));
    let (_endpoint, conn) = raw_connection_with(&p, server.local_addr().unwrap(), transport).await;
    let (mut send, mut recv) = conn.open_bi().await.unwrap();
    let hello = Hello::new(CLIENT, "Hospital A", Capabilities::RECEIVE_LIVE);
    send.write_all(&proto::encode_to_vec(&proto::Message::Hello(hello)).unwrap())
        .await
        .unwrap();
    let mut reader = proto::MessageReader::new();
    let challenge = read_until(&mut recv, &mut reader, |m| match m {
        proto::Message::HelloAck(a) => Some(a.challenge),
        _ => None,
    })
    .await;
    // The gate sees the challenge bound to this TLS connection.
    let mut exporter = [0u8; 32];
    conn.export_keying_material(&mut exporter, CHALLENGE_EXPORTER_LABEL, &challenge)
        .unwrap();
    let auth = proto::Message::Auth(proto::Auth {
        tokens: vec![Token {
            kind: TokenKind::Consent,
            bytes: bind_challenge(&challenge, &exporter).to_vec(),
        }],
    });
    send.write_all(&proto::encode_to_vec(&auth).unwrap())
        .await
        .unwrap();
    read_until(&mut recv, &mut reader, |m| match m {
        proto::Message::AuthResult(AuthDecision::Permit) => Some(()),
        _ => None,
    })
    .await;
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut remote).await;

    // The server keeps annotating; its control stream backs up.
    let annotation = Annotation {
        id: 1,
        study_uid: "1.2.392.200036".into(),
        target: AnnotationTarget::Frame { channel: 0, seq: 0 },
        shape: Shape::Polyline,
        points: vec![Point { x: 1.0, y: 2.0 }; 100],
        label: "margin".into(),
        author: "test".into(),
        text: String::new(),
    };
    let mut sent = 0;
    while remote.send_annotation(annotation.clone()).await.is_ok() {
        sent += 1;
        assert!(sent < 100_000, "the server never noticed");
    }
    eprintln!("{sent} annotations before the server gave up");
    let ((by, why, detail), _) = closed(&mut remote).await;
    assert_eq!(by, ClosedBy::Local);
    assert_eq!(why, Ended::Close(CloseReason::ProtocolViolation));
    assert!(detail.contains("not reading"), "{detail}");
    let reason = tokio::time::timeout(WAIT, conn.closed()).await.unwrap();
    assert!(
        matches!(&reason, quinn::ConnectionError::ApplicationClosed(c)
            if c.error_code == quinn::VarInt::from_u32(codes::CONTROL_STALLED)),
        "{reason}"
    );
}

// -- reconnecting ---------------------------------------------------------------

#[test]
fn backoff_grows_to_its_cap_with_jitter_in_the_upper_half() {
    let b = Backoff::default()
        .with_initial(Duration::from_millis(100))
        .with_max(Duration::from_secs(1))
        .with_factor(2);
    assert_eq!(b.delay(0, 0), Duration::from_millis(50));
    assert_eq!(b.delay(0, u32::MAX), Duration::from_millis(100));
    assert_eq!(b.delay(1, u32::MAX), Duration::from_millis(200));
    assert_eq!(b.delay(3, u32::MAX), Duration::from_millis(800));
    assert_eq!(b.delay(4, u32::MAX), Duration::from_secs(1));
    assert_eq!(b.delay(u32::MAX, u32::MAX), Duration::from_secs(1));
    for attempt in 0..10 {
        let lo = b.delay(attempt, 0);
        let hi = b.delay(attempt, u32::MAX);
        let mid = b.delay(attempt, u32::MAX / 2);
        assert!(lo <= mid && mid <= hi && hi <= Duration::from_secs(1));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialer_retries_until_the_site_comes_up() {
    let p = pki();
    // A socket that swallows the first attempt, on the port the site will use.
    let hole = tokio::net::UdpSocket::bind(localhost()).await.unwrap();
    let addr = hole.local_addr().unwrap();
    let (retry_tx, mut retries) = mpsc::unbounded_channel();
    let client_site = site(p.client.identity(), trust(&p.ca, &[SERVER]), CLIENT);
    let quick = config().with_idle_timeout(Duration::from_millis(300));
    let mut dialer = Dialer::new(addr, client_site, SERVER, credentials(), quick)
        .with_backoff(
            Backoff::default()
                .with_initial(Duration::from_millis(50))
                .with_max(Duration::from_millis(200)),
        )
        .on_retry(move |attempt, error, _| {
            let _ = retry_tx.send((attempt, error.to_string()));
        });
    let dialing = tokio::spawn(async move { dialer.connect(Some(50)).await });

    let (attempt, error) = tokio::time::timeout(WAIT, retries.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(attempt, 1);
    eprintln!("attempt 1 failed: {error}");
    drop(hole);
    let (gate, _) = gate(true);
    let server_site = site(p.server.identity(), trust(&p.ca, &[CLIENT]), SERVER);
    let mut server = Server::bind(addr, server_site, gate, config()).unwrap();

    let mut link = tokio::time::timeout(WAIT, dialing)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut link).await;
    open(&mut remote).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dialer_does_not_retry_a_refusal() {
    let p = pki();
    let (gate, _) = gate(true);
    let mut server = server(&p, gate, config());
    let stranger = Ca::new("Unknown CA").facility(CLIENT);
    let client_site = site(stranger.identity(), trust(&p.ca, &[SERVER]), CLIENT);
    let mut dialer = Dialer::new(
        server.local_addr().unwrap(),
        client_site,
        SERVER,
        credentials(),
        config(),
    )
    .on_retry(|attempt, error, _| panic!("retry {attempt} after {error}"));
    match dialer.connect(None).await {
        // The client may finish its handshake before the server refuses it.
        Ok(mut link) => {
            let ((_, _, detail), before) = closed(&mut link).await;
            assert!(!has_media(&before));
            eprintln!("refused after connecting: {detail}");
        }
        Err(e) => assert!(!e.is_transient(), "{e}"),
    }
    assert!(accept(&mut server).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hello_naming_another_site_than_the_certificate_is_denied() {
    let p = pki();
    let (gate, mut opened) = gate(true);
    let mut server = server(&p, gate, config());
    // A valid certificate for CLIENT, a hello claiming to be another site.
    let impostor = site(
        p.client.identity(),
        trust(&p.ca, &[SERVER]),
        "jp.hospital-z",
    );
    let mut client = Client::connect(
        server.local_addr().unwrap(),
        &impostor,
        SERVER,
        credentials(),
        &config(),
    )
    .await
    .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    let ((_, why, detail), before) = closed(&mut client).await;
    assert_eq!(why, Ended::Denied(DenyReason::Other));
    assert!(detail.contains("facility certificate"), "{detail}");
    assert!(!has_media(&before));
    let (_, before) = closed(&mut remote).await;
    assert!(!has_media(&before));
    assert!(opened.try_recv().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_gets_through_while_the_host_does_not_read_events() {
    let p = pki();
    let (gate, mut opened) = gate(true);
    let mut server = server(&p, gate, config().with_event_capacity(2));
    let mut client = connect(server.local_addr().unwrap(), p.client.identity(), &p.ca)
        .await
        .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;
    let (_, control) = opened.recv().await.unwrap();

    // The server's host stops reading; object data piles up at its door.
    let data = payload(8 << 20, 21);
    client.offer_object(offer(3, &data)).await.unwrap();
    assert_eq!(resume_point(&mut client, 3).await, 0);
    send_range(&client, 3, &data, 0, data.len()).await;
    // Wait (bounded) until the server's event queue is full: its task then
    // blocks on the next object event.
    let full = Instant::now();
    while remote.queued_events() < 2 {
        assert!(full.elapsed() < WAIT, "the server's events never piled up");
        tokio::task::yield_now().await;
    }

    control.revoke("consent withdrawn");
    let ((by, why, _), _) = closed(&mut client).await;
    assert_eq!(
        (by, why),
        (ClosedBy::Peer, Ended::Close(CloseReason::ConsentRevoked))
    );
    drop(remote);
}

/// A host busy in a call (here `send_frame`, as `med8k send` between
/// events) is answered even while its event queue is full of events that
/// must not be dropped (annotations from the peer): the session's task
/// never waits on the host. It used to: its task waited for room in the
/// queue, the host waited for the task's answer, and neither moved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_busy_in_a_call_is_answered_while_the_peer_floods_it_with_events() {
    let p = pki();
    let (gate, _opened) = gate(true);
    let mut server = server(&p, gate, config());
    let site = site(p.client.identity(), trust(&p.ca, &[SERVER]), CLIENT);
    let mut client = Client::connect(
        server.local_addr().unwrap(),
        &site,
        SERVER,
        credentials(),
        &config().with_event_capacity(2),
    )
    .await
    .unwrap();
    let mut remote = accept(&mut server).await.unwrap();
    open(&mut client).await;
    open(&mut remote).await;

    let annotations = 200u64;
    for id in 0..annotations {
        let a = Annotation {
            id,
            study_uid: "1.2.392.200036.9116".into(),
            target: AnnotationTarget::Object { object_id: 1 },
            shape: Shape::Polyline,
            points: vec![Point { x: 1.0, y: 2.0 }, Point { x: 3.0, y: 4.0 }],
            label: "cut".into(),
            author: "pathologist".into(),
            text: String::new(),
        };
        remote.send_annotation(a).await.unwrap();
    }
    // The client's host does not read events; it sends frames, each call
    // answered within the wait bound.
    for i in 0..50u64 {
        let data = payload(1000, i);
        let h = proto::FrameHeader {
            payload_len: data.len() as u32,
            ..header(0)
        };
        let seq = tokio::time::timeout(WAIT, client.send_frame(h, data))
            .await
            .unwrap_or_else(|_| panic!("send_frame {i} was not answered"))
            .unwrap();
        assert_eq!(seq, i);
        if i == 10 {
            // By now the queue is full and annotations wait in the task.
            let full = Instant::now();
            while client.queued_events() < 2 {
                assert!(full.elapsed() < WAIT, "the client's events never piled up");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    }
    // Nothing that must arrive was dropped, and in order.
    let mut got = Vec::new();
    while (got.len() as u64) < annotations {
        match next(&mut client).await {
            Some(Event::Annotation(a)) => got.push(a.id),
            Some(Event::Closed { by, why, detail }) => panic!("closed: {by:?} {why:?} {detail}"),
            None => panic!("link ended"),
            Some(_) => {}
        }
    }
    assert_eq!(got, (0..annotations).collect::<Vec<_>>());
}
