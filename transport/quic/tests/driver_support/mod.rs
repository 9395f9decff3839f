//! Fixtures for the driver tests: a test PKI, sites, a test gate, frame
//! and object helpers, raw QUIC peers.
#![allow(dead_code)]

pub mod certs;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use certs::{Ca, Leaf};
use med8k_transport::driver::{
    Client, ConnectError, Credentials, DriverConfig, Gate, Link, PeerInfo, Refused, Server,
    SessionControl, Site, SiteIdentity, TrustConfig, tls,
};
use med8k_transport::proto::{
    self, AuthDecision, CHALLENGE_LEN, Capabilities, ClosedBy, Codec, DenyReason, Ended, Event,
    FrameHeader, Hello, Layout, ObjectKind, ObjectOffer, PixelFormat, Token, TokenKind,
};
use tokio::sync::mpsc;

pub const SERVER: &str = "jp.hospital-b";
pub const CLIENT: &str = "jp.hospital-a";
/// Failure bound for anything that should happen "soon" on loopback.
pub const WAIT: Duration = Duration::from_secs(10);

pub struct Pki {
    pub ca: Ca,
    pub server: Leaf,
    pub client: Leaf,
}

pub fn pki() -> Pki {
    let ca = Ca::new("Test Institution CA");
    Pki {
        server: ca.facility(SERVER),
        client: ca.facility(CLIENT),
        ca,
    }
}

pub fn trust(ca: &Ca, allowed: &[&str]) -> TrustConfig {
    TrustConfig::new(
        vec![ca.der.clone()],
        allowed.iter().map(|s| s.to_string()).collect(),
    )
}

pub fn site(identity: SiteIdentity, trust: TrustConfig, id: &str) -> Site {
    Site {
        identity,
        trust,
        hello: Hello::new(id, format!("Facility {id}"), Capabilities::SEND_LIVE),
    }
}

pub fn config() -> DriverConfig {
    // Generous deadlines: the build machine is small and shared.
    DriverConfig::default().with_session(
        proto::Config::default()
            .with_frame_deadline(Duration::from_secs(3))
            .with_handshake_timeout(Duration::from_secs(5)),
    )
}

/// Signs nothing: presents the challenge itself as a consent token.
pub fn credentials() -> Arc<dyn Credentials> {
    Arc::new(|_: &Hello, challenge: &[u8; CHALLENGE_LEN]| {
        vec![Token {
            kind: TokenKind::Consent,
            bytes: challenge.to_vec(),
        }]
    })
}

/// Permits sessions whose token is the challenge (or denies all); hands
/// every opened session's control to the test.
pub struct TestGate {
    permit: bool,
    opened: Mutex<mpsc::UnboundedSender<(PeerInfo, SessionControl)>>,
}

impl Gate for TestGate {
    fn authorise(
        &self,
        _peer: &PeerInfo,
        challenge: &[u8; CHALLENGE_LEN],
        tokens: &[Token],
    ) -> AuthDecision {
        let bound = tokens.first().is_some_and(|t| t.bytes == challenge);
        if self.permit && bound {
            AuthDecision::Permit
        } else {
            AuthDecision::Deny {
                reason: DenyReason::NoConsent,
                detail: "test gate says no".into(),
            }
        }
    }

    fn opened(&self, peer: &PeerInfo, control: SessionControl) {
        let _ = self.opened.lock().unwrap().send((peer.clone(), control));
    }
}

pub fn gate(
    permit: bool,
) -> (
    Arc<TestGate>,
    mpsc::UnboundedReceiver<(PeerInfo, SessionControl)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let g = TestGate {
        permit,
        opened: Mutex::new(tx),
    };
    (Arc::new(g), rx)
}

pub fn localhost() -> SocketAddr {
    (Ipv4Addr::LOCALHOST, 0).into()
}

pub fn server(p: &Pki, gate: Arc<TestGate>, config: DriverConfig) -> Server {
    let site = site(p.server.identity(), trust(&p.ca, &[CLIENT]), SERVER);
    Server::bind(localhost(), site, gate, config).unwrap()
}

pub async fn connect(
    addr: SocketAddr,
    identity: SiteIdentity,
    ca: &Ca,
) -> Result<Link, ConnectError> {
    let site = site(identity, trust(ca, &[SERVER]), CLIENT);
    Client::connect(addr, &site, SERVER, credentials(), &config()).await
}

pub fn header(channel: u16) -> FrameHeader {
    FrameHeader {
        channel,
        seq: 0,
        capture_us: 0,
        codec: Codec::Raw,
        width: 64,
        height: 64,
        format: PixelFormat {
            layout: Layout::Gray,
            bit_depth: 8,
        },
        slices: Vec::new(),
        payload_len: 0,
    }
}

/// Deterministic, seq-dependent bytes.
pub fn payload(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

pub async fn next(link: &mut Link) -> Option<Event> {
    tokio::time::timeout(WAIT, link.next_event())
        .await
        .expect("no event within the wait bound")
}

/// Events until `Open` (returned as the peer's hello); panics on anything
/// else that ends the session.
pub async fn open(link: &mut Link) -> Hello {
    loop {
        match next(link).await {
            Some(Event::Open { peer }) => return peer,
            Some(Event::Closed { by, why, detail }) => {
                panic!("closed before open: {by:?} {why:?} {detail}")
            }
            Some(_) => {}
            None => panic!("link ended before open"),
        }
    }
}

/// Events until `Closed`, returning it and the events before it.
pub async fn closed(link: &mut Link) -> ((ClosedBy, Ended, String), Vec<Event>) {
    let mut before = Vec::new();
    loop {
        match next(link).await {
            Some(Event::Closed { by, why, detail }) => return ((by, why, detail), before),
            Some(e) => before.push(e),
            None => panic!("link ended without Closed; events: {before:?}"),
        }
    }
}

pub fn has_media(events: &[Event]) -> bool {
    events
        .iter()
        .any(|e| matches!(e, Event::Open { .. } | Event::Frame(_)))
}

/// The server's next accepted connection.
pub async fn accept(server: &mut Server) -> Result<Link, Refused> {
    tokio::time::timeout(WAIT, server.accept())
        .await
        .expect("no connection within the wait bound")
        .expect("server closed")
}

/// A connection attempt that must fail: either `connect` errs or the link
/// closes without opening (a client finishes its TLS handshake before the
/// server has checked its certificate). The server must refuse it.
pub async fn assert_refused(server: &mut Server, attempt: Result<Link, ConnectError>) {
    match attempt {
        Err(e) => eprintln!("client refused: {e}"),
        Ok(mut link) => {
            let ((_, why, detail), before) = closed(&mut link).await;
            assert!(!has_media(&before), "media on a refused link: {before:?}");
            eprintln!("client link closed: {why:?} {detail}");
        }
    }
    match accept(server).await {
        Err(refused) => eprintln!("server refused: {}", refused.error),
        Ok(mut link) => panic!(
            "server accepted a refused peer: {:?}",
            link.next_event().await
        ),
    }
}

/// A raw QUIC connection to `addr` with a valid client certificate.
pub async fn raw_connection(p: &Pki, addr: SocketAddr) -> (quinn::Endpoint, quinn::Connection) {
    raw_connection_with(p, addr, quinn::TransportConfig::default()).await
}

pub async fn raw_connection_with(
    p: &Pki,
    addr: SocketAddr,
    transport: quinn::TransportConfig,
) -> (quinn::Endpoint, quinn::Connection) {
    let crypto = tls::client_config(&p.client.identity(), &trust(&p.ca, &[SERVER])).unwrap();
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(crypto).unwrap();
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(transport));
    let endpoint = quinn::Endpoint::client(localhost()).unwrap();
    let conn = endpoint
        .connect_with(config, addr, &tls::facility_dns_name(SERVER))
        .unwrap()
        .await
        .unwrap();
    (endpoint, conn)
}

/// Reads control messages until one matches.
pub async fn read_until<T>(
    recv: &mut quinn::RecvStream,
    reader: &mut proto::MessageReader,
    mut want: impl FnMut(proto::Message) -> Option<T>,
) -> T {
    let mut buf = [0u8; 4096];
    loop {
        while let Some(m) = reader.next_message().unwrap() {
            if let Some(t) = want(m) {
                return t;
            }
        }
        let n = tokio::time::timeout(WAIT, recv.read(&mut buf))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        reader.push(&buf[..n]);
    }
}

pub fn offer(id: u64, data: &[u8]) -> ObjectOffer {
    use sha2::Digest;
    ObjectOffer {
        id,
        kind: ObjectKind::SpectralCube,
        size: data.len() as u64,
        sha256: sha2::Sha256::digest(data).into(),
    }
}

/// Waits for the sender's `ObjectResume` of `id`; returns where from.
pub async fn resume_point(link: &mut Link, id: u64) -> u64 {
    loop {
        match next(link).await {
            Some(Event::ObjectResume { id: i, from }) if i == id => return from,
            Some(Event::Closed { by, why, detail }) => panic!("closed: {by:?} {why:?} {detail}"),
            None => panic!("link ended"),
            Some(_) => {}
        }
    }
}

/// Sends `data[from..to]` in 1 MB pieces.
pub async fn send_range(link: &Link, id: u64, data: &[u8], from: usize, to: usize) {
    let mut at = from;
    while at < to {
        let end = (at + (1 << 20)).min(to);
        link.send_object_data(id, at as u64, data[at..end].to_vec())
            .await
            .unwrap();
        at = end;
    }
}

/// Receives object data into `buf` until it holds `until` bytes.
pub async fn receive_object(link: &mut Link, id: u64, buf: &mut Vec<u8>, until: usize) {
    while buf.len() < until {
        match next(link).await {
            Some(Event::ObjectOffered { offer, resume_from }) => {
                assert_eq!(offer.id, id);
                assert_eq!(resume_from, buf.len() as u64, "resumes from what it holds");
            }
            Some(Event::ObjectData(d)) => {
                assert_eq!(d.id, id);
                assert_eq!(d.offset, buf.len() as u64, "in order, each byte once");
                buf.extend_from_slice(&d.data);
            }
            Some(Event::ObjectCorrupt { .. }) => panic!("object corrupt"),
            Some(Event::Closed { by, why, detail }) => panic!("closed: {by:?} {why:?} {detail}"),
            None => panic!("link ended"),
            Some(_) => {}
        }
    }
    assert_eq!(buf.len(), until);
}

/// Waits for the receiver's `ObjectComplete` (SHA-256 checked) of `id`.
pub async fn object_complete(link: &mut Link, id: u64) {
    loop {
        match next(link).await {
            Some(Event::ObjectComplete { id: i }) if i == id => return,
            Some(Event::ObjectData(d)) => panic!("more data than expected at {}", d.offset),
            Some(Event::ObjectCorrupt { .. }) => panic!("object corrupt"),
            Some(Event::Closed { by, why, detail }) => panic!("closed: {by:?} {why:?} {detail}"),
            None => panic!("link ended"),
            Some(_) => {}
        }
    }
}
