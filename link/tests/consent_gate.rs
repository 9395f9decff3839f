//! The consent gate against a hostile peer: a facility that relays a
//! physician's login from another connection or changes the claim under
//! it, two sessions from one address, a claim for other data than the site
//! serves, a refused peer probing the consent state, a certificate subject
//! made to flood the audit log, a full disk, and login certificates that
//! lapse while a session is open. Keys are in memory (key files); the relay
//! runs over real QUIC.
#![allow(clippy::unwrap_used)]

#[path = "../../auth/tests/fsize/mod.rs"]
mod fsize;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime};

use med8k_auth::cert::{CrlFile, Profile, StoreKind, TrustStore};
use med8k_auth::consent::{
    ConsentDecision, ConsentPurpose, ConsentRecord, ConsentRevocation, Coverage, DataCategory,
    FacilityId, Ledger, PatientId, Period, RecordId, Scope, SignatureCheck, cms,
};
use med8k_auth::identity::keyfile::{generate_rsa_key, spki_of};
use med8k_auth::identity::{KeyFileSigner, Signer};
use med8k_auth::issue::{DemoPki, LeafKind, LeafSpec, RevokedEntry, Validity};
use med8k_link::gate::{AccessClaim, ConsentCredentials, ConsentGate, GateConfig};
use med8k_transport::driver::{
    Client, Credentials, DriverConfig, Gate, PeerInfo, Server, SessionControl, Site, tls,
};
use med8k_transport::pki::Ephemeral;
use med8k_transport::proto::{
    self, AuthDecision, CHALLENGE_LEN, Capabilities, DenyReason, Ended, Event, Hello, Token,
    TokenKind, Transmit,
};

const A: &str = "jp.hospital-a";
const B: &str = "jp.hospital-b";
const DAY: Duration = Duration::from_secs(86_400);
const WAIT: Duration = Duration::from_secs(10);

fn unix(t: SystemTime) -> i64 {
    med8k_auth::civil::unix(t)
}

/// A key-file card: a fresh RSA-2048 key certified as `kind`.
fn signer(
    pki: &DemoPki,
    serial: u64,
    kind: LeafKind,
    validity: Option<Validity>,
) -> Arc<KeyFileSigner> {
    let key = generate_rsa_key(2048).unwrap();
    let der = match validity {
        None => pki.issue("test", serial, kind, &spki_of(&key)).unwrap(),
        Some(v) => pki
            .hpki_sub
            .issue(&LeafSpec::new("test", serial, kind, v), &spki_of(&key))
            .unwrap(),
    };
    Arc::new(KeyFileSigner::new(key, der).unwrap())
}

struct World {
    pki: DemoPki,
    dir: tempfile::TempDir,
    doctor: Arc<KeyFileSigner>,
    /// Patients X and Y (JPKI signing keys).
    x: Arc<KeyFileSigner>,
    y: Arc<KeyFileSigner>,
    now: SystemTime,
}

impl World {
    fn new() -> World {
        let now = SystemTime::now();
        let pki = DemoPki::new(now, 2).unwrap();
        World {
            doctor: signer(&pki, 201, DemoPki::hpki_auth("Medical Doctor"), None),
            x: signer(&pki, 301, LeafKind::JpkiSign, None),
            y: signer(&pki, 302, LeafKind::JpkiSign, None),
            dir: tempfile::tempdir().unwrap(),
            pki,
            now,
        }
    }

    fn store(&self, kind: StoreKind) -> TrustStore {
        let mut s = TrustStore::new(kind);
        let ca = if kind == StoreKind::Jpki {
            &self.pki.jpki
        } else {
            &self.pki.hpki_root
        };
        s.add_der(ca.der()).unwrap();
        s
    }

    /// Current CRLs of the demo CAs; the HPKI sub-CA's lists `revoked`.
    fn crls(&self, revoked: &[RevokedEntry]) -> CrlFile {
        let mut crls = CrlFile::new();
        for (ca, r) in [
            (&self.pki.jpki, &[][..]),
            (&self.pki.hpki_root, &[][..]),
            (&self.pki.hpki_sub, revoked),
        ] {
            crls.add_der(&ca.crl(1, self.now - DAY, self.now + DAY, r).unwrap())
                .unwrap();
        }
        crls
    }

    fn ledger(&self) -> std::path::PathBuf {
        self.dir.path().join("consent.sqlite")
    }

    fn audit(&self) -> std::path::PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    fn patient(card: &KeyFileSigner) -> PatientId {
        PatientId::from_signing_cert(card.certificate())
    }

    /// `card`'s holder consents to B seeing their pathology images.
    fn grant(&self, card: &KeyFileSigner, id: &str) {
        let t = unix(self.now);
        let record = ConsentRecord {
            id: RecordId::new(id).unwrap(),
            patient: World::patient(card),
            created: t,
            decision: ConsentDecision::Permit,
            scope: vec![Scope::Disclose],
            grantees: vec![FacilityId::new(B).unwrap()],
            purposes: vec![ConsentPurpose::RemoteConsultation],
            categories: vec![DataCategory::PathologyImages],
            period: Period {
                start: t - 3600,
                end: t + 30 * 86_400,
            },
            coverage: Coverage::AllLaterVisits,
            login: None,
        };
        let bytes = record.canonical_bytes().unwrap();
        let blob = cms::sign_detached(&bytes, card, t).unwrap();
        let (store, profile, crls) = (
            self.store(StoreKind::Jpki),
            Profile::new(DemoPki::profile_config()),
            self.crls(&[]),
        );
        Ledger::open(self.ledger())
            .unwrap()
            .grant(
                &bytes,
                &blob,
                &SignatureCheck::new(&store, &profile).with_revocation(&crls),
                self.now,
            )
            .unwrap();
    }

    fn revoke(&self, card: &KeyFileSigner, id: &str, consent: &str) {
        let t = unix(self.now);
        let rev = ConsentRevocation {
            id: RecordId::new(id).unwrap(),
            patient: World::patient(card),
            created: t,
            revokes: RecordId::new(consent).unwrap(),
        };
        let bytes = rev.canonical_bytes().unwrap();
        let blob = cms::sign_detached(&bytes, card, t).unwrap();
        let (store, profile, crls) = (
            self.store(StoreKind::Jpki),
            Profile::new(DemoPki::profile_config()),
            self.crls(&[]),
        );
        Ledger::open(self.ledger())
            .unwrap()
            .revoke(
                &bytes,
                &blob,
                &SignatureCheck::new(&store, &profile).with_revocation(&crls),
                self.now,
            )
            .unwrap();
    }

    fn gate_with(&self, serves: Option<(PatientId, DataCategory)>, crls: CrlFile) -> ConsentGate {
        let now = self.now;
        ConsentGate::new(GateConfig {
            facility: A.into(),
            ledger: self.ledger(),
            audit: self.audit(),
            audit_salt: b"test site salt".to_vec(),
            profile: Profile::new(DemoPki::profile_config()),
            hpki: self.store(StoreKind::Hpki),
            jpki: Some(self.store(StoreKind::Jpki)),
            revocation: Some(Arc::new(crls)),
            require_patient: false,
            serves,
            recheck: Duration::from_millis(100),
            clock: Arc::new(move || now),
        })
        .unwrap()
    }

    fn gate(&self) -> ConsentGate {
        self.gate_with(None, self.crls(&[]))
    }

    fn claim(card: &KeyFileSigner) -> AccessClaim {
        AccessClaim {
            patient: World::patient(card).as_str().to_owned(),
            category: DataCategory::PathologyImages,
            purpose: ConsentPurpose::RemoteConsultation,
            visit: None,
        }
    }

    fn credentials(&self, doctor: &Arc<KeyFileSigner>, claim: AccessClaim) -> ConsentCredentials {
        ConsentCredentials::new(doctor.clone(), claim)
            .with_physician_chain(vec![self.pki.hpki_sub.der().to_vec()])
            .with_clock(Arc::new(SystemTime::now))
    }

    /// The tokens the doctor presents for `claim` on a session with
    /// `challenge`.
    fn tokens(&self, claim: AccessClaim, challenge: &[u8; CHALLENGE_LEN]) -> Vec<Token> {
        self.credentials(&self.doctor, claim)
            .tokens(&Hello::new(A, A, Capabilities::SEND_LIVE), challenge)
    }
}

/// Session `session` of facility B, all from one address.
fn peer(session: u64) -> PeerInfo {
    PeerInfo {
        facility: B.into(),
        hello: Hello::new(B, B, Capabilities::RECEIVE_LIVE),
        remote: (Ipv4Addr::LOCALHOST, 4433).into(),
        session,
    }
}

fn permitted(d: &AuthDecision) -> bool {
    matches!(d, AuthDecision::Permit)
}

fn audit_text(w: &World) -> String {
    std::fs::read_to_string(w.audit()).unwrap()
}

#[test]
fn a_changed_claim_does_not_verify() {
    // The relaying facility keeps the physician's login for patient Y and
    // puts patient X's claim under it (X consented to B).
    let w = World::new();
    w.grant(&w.x, "consent-x");
    let gate = w.gate();
    let challenge = [7u8; CHALLENGE_LEN];
    let mut tokens = w.tokens(World::claim(&w.y), &challenge);
    for t in &mut tokens {
        if t.kind == TokenKind::Consent {
            *t = World::claim(&w.x).to_token();
        }
    }
    assert!(!permitted(&gate.authorise(&peer(1), &challenge, &tokens)));
    assert!(audit_text(&w).contains("physician login refused: signature does not verify"));
    // The same claim as signed: permitted.
    let challenge = [8u8; CHALLENGE_LEN];
    let tokens = w.tokens(World::claim(&w.x), &challenge);
    assert!(permitted(&gate.authorise(&peer(2), &challenge, &tokens)));
}

#[test]
fn permits_are_kept_per_session() {
    // Two sessions from one facility and one address: X's and Y's.
    let w = World::new();
    w.grant(&w.x, "consent-x");
    w.grant(&w.y, "consent-y");
    let gate = w.gate();
    let (cx, cy) = ([1u8; CHALLENGE_LEN], [2u8; CHALLENGE_LEN]);
    assert!(permitted(&gate.authorise(
        &peer(1),
        &cx,
        &w.tokens(World::claim(&w.x), &cx)
    )));
    assert!(permitted(&gate.authorise(
        &peer(2),
        &cy,
        &w.tokens(World::claim(&w.y), &cy)
    )));
    let (session_x, session_y) = (SessionControl::detached(), SessionControl::detached());
    gate.opened(&peer(1), session_x.clone());
    gate.opened(&peer(2), session_y.clone());
    assert!(!session_x.is_closing() && !session_y.is_closing());
    assert_eq!(gate.open_sessions(), 2);
    // X revokes: X's session closes, Y's stays.
    w.revoke(&w.x, "revocation-x", "consent-x");
    assert_eq!(gate.recheck(w.now), 1);
    assert!(session_x.is_closing(), "X's session still open");
    assert!(!session_y.is_closing(), "Y's session closed");
}

#[test]
fn only_claims_for_the_data_served_are_permitted_and_refusals_say_nothing() {
    // The site serves X's pathology images; the physician holds Y's genuine
    // consent and asks for Y.
    let w = World::new();
    w.grant(&w.y, "consent-y");
    let serves = Some((World::patient(&w.x), DataCategory::PathologyImages));
    let gate = w.gate_with(serves, w.crls(&[]));
    let c = [3u8; CHALLENGE_LEN];
    let AuthDecision::Deny { reason, detail } =
        gate.authorise(&peer(1), &c, &w.tokens(World::claim(&w.y), &c))
    else {
        panic!("Y's claim permitted on a site serving X");
    };
    assert_eq!(reason, DenyReason::Other);
    assert!(audit_text(&w).contains("not for the patient and data this site serves"));
    // X has no consent: the peer hears the same as for Y.
    let c = [4u8; CHALLENGE_LEN];
    let AuthDecision::Deny {
        reason: r2,
        detail: d2,
    } = gate.authorise(&peer(2), &c, &w.tokens(World::claim(&w.x), &c))
    else {
        panic!("X's claim permitted without consent");
    };
    assert_eq!(r2, DenyReason::Other);
    for d in [&detail, &d2] {
        assert!(d.starts_with("the reason is in audit entry "), "{d}");
        assert!(!d.contains("consent") && !d.contains("Consent"), "{d}");
    }
    assert!(audit_text(&w).contains("consent: NoConsent"));
}

#[test]
fn a_hostile_certificate_subject_stays_out_of_the_audit_log() {
    // An HPKI certificate from a CA the site does not trust, its subject a
    // name and 20 000 control characters: refused, audited as a category.
    let w = World::new();
    let rogue = DemoPki::new(w.now, 1).unwrap();
    let key = generate_rsa_key(2048).unwrap();
    let subject = format!("Dr. Hostile Name{}", "\u{1}".repeat(20_000));
    let der = rogue
        .issue(
            &subject,
            666,
            DemoPki::hpki_auth("Medical Doctor"),
            &spki_of(&key),
        )
        .unwrap();
    let stranger = Arc::new(KeyFileSigner::new(key, der).unwrap());
    w.grant(&w.x, "consent-x");
    let gate = w.gate();
    let c = [5u8; CHALLENGE_LEN];
    let tokens = ConsentCredentials::new(stranger, World::claim(&w.x))
        .with_physician_chain(vec![rogue.hpki_sub.der().to_vec()])
        .tokens(&Hello::new(A, A, Capabilities::SEND_LIVE), &c);
    assert!(!permitted(&gate.authorise(&peer(1), &c, &tokens)));
    let log = audit_text(&w);
    assert!(!log.contains("Hostile"), "{log}");
    assert!(
        log.contains("physician login refused: certificate not from a trusted CA"),
        "{log}"
    );
    assert!(log.lines().all(|l| l.len() < 2048));
    assert_eq!(med8k_auth::audit::verify(w.audit()).unwrap().entries, 2);
}

#[test]
fn the_gate_denies_when_the_audit_log_cannot_be_written() {
    fsize::isolated(
        "the_gate_denies_when_the_audit_log_cannot_be_written",
        || {
            let w = World::new();
            w.grant(&w.x, "consent-x");
            let gate = w.gate();
            let c = [1u8; CHALLENGE_LEN];
            assert!(permitted(&gate.authorise(
                &peer(1),
                &c,
                &w.tokens(World::claim(&w.x), &c)
            )));
            // The disk is full: no decision can be recorded, so none is taken.
            let len = std::fs::metadata(w.audit()).unwrap().len();
            fsize::limit_file_size(Some(len));
            let c = [2u8; CHALLENGE_LEN];
            assert!(!permitted(&gate.authorise(
                &peer(2),
                &c,
                &w.tokens(World::claim(&w.x), &c)
            )));
            // Room again: permitted, and the log is whole.
            fsize::limit_file_size(None);
            let c = [3u8; CHALLENGE_LEN];
            assert!(permitted(&gate.authorise(
                &peer(3),
                &c,
                &w.tokens(World::claim(&w.x), &c)
            )));
            med8k_auth::audit::verify(w.audit()).unwrap();
        },
    );
}

#[test]
fn login_certificates_are_checked_again_while_a_session_is_open() {
    // A physician whose certificate expires in two hours, and one that the
    // HPKI CA revokes in an hour (a CRL already issued, dated then).
    let w = World::new();
    w.grant(&w.x, "consent-x");
    let short = Validity {
        not_before: w.now - DAY,
        not_after: w.now + Duration::from_secs(2 * 3600),
    };
    let expiring = signer(
        &w.pki,
        210,
        DemoPki::hpki_auth("Medical Doctor"),
        Some(short),
    );
    let revoked = signer(&w.pki, 211, DemoPki::hpki_auth("Medical Doctor"), None);
    let mut crls = w.crls(&[]);
    let later = w.now + Duration::from_secs(3600);
    crls.add_der(
        &w.pki
            .hpki_sub
            .crl(
                2,
                later,
                w.now + DAY,
                &[RevokedEntry {
                    serial: 211,
                    at: later,
                }],
            )
            .unwrap(),
    )
    .unwrap();
    let gate = w.gate_with(None, crls);
    let mut sessions = Vec::new();
    for (n, doctor) in [(1u64, &expiring), (2, &revoked)] {
        let c = [n as u8; CHALLENGE_LEN];
        let tokens = w
            .credentials(doctor, World::claim(&w.x))
            .tokens(&Hello::new(A, A, Capabilities::SEND_LIVE), &c);
        assert!(
            permitted(&gate.authorise(&peer(n), &c, &tokens)),
            "session {n}"
        );
        let control = SessionControl::detached();
        gate.opened(&peer(n), control.clone());
        sessions.push(control);
    }
    assert_eq!(gate.recheck(w.now), 0);
    assert_eq!(gate.recheck(w.now + Duration::from_secs(90 * 60)), 1);
    assert!(sessions[1].is_closing() && !sessions[0].is_closing());
    assert_eq!(gate.recheck(w.now + Duration::from_secs(3 * 3600)), 1);
    assert!(sessions[0].is_closing());
    let log = audit_text(&w);
    assert!(
        log.contains("physician login certificate: certificate revoked"),
        "{log}"
    );
    assert!(log.contains("physician login certificate expired"), "{log}");
}

// ---- a relaying facility, over real QUIC ----

fn driver_config() -> DriverConfig {
    DriverConfig::default().with_session(
        proto::Config::default()
            .with_frame_deadline(Duration::from_secs(3))
            .with_handshake_timeout(Duration::from_secs(5)),
    )
}

/// A server that speaks med8k's session by hand (quinn and the sans-IO
/// session) with a challenge it chose: the relay's face towards the
/// physician. Hands over the tokens it is given.
async fn fake_server(
    endpoint: quinn::Endpoint,
    challenge: tokio::sync::oneshot::Receiver<[u8; CHALLENGE_LEN]>,
    tokens: mpsc::Sender<Vec<Token>>,
) {
    let conn = endpoint.accept().await.unwrap().await.unwrap();
    let (mut send, mut recv) = conn.accept_bi().await.unwrap();
    let challenge = challenge.await.unwrap();
    let hello = Hello::new(A, "not hospital A", Capabilities::SEND_LIVE);
    let mut session =
        proto::Session::server(Instant::now(), proto::Config::default(), hello, challenge).unwrap();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        while let Some(t) = session.poll_transmit(Instant::now()) {
            if let Transmit::Control(bytes) = t {
                send.write_all(&bytes).await.unwrap();
            }
        }
        while let Some(event) = session.poll_event() {
            if let Event::AuthRequest { tokens: t, .. } = event {
                tokens.send(t).unwrap();
                return;
            }
        }
        let n = tokio::time::timeout(WAIT, recv.read(&mut buf))
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        session.handle_control_data(Instant::now(), &buf[..n]);
    }
}

#[test]
fn a_login_relayed_from_another_connection_is_refused() {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(relay());
}

async fn relay() {
    let w = World::new();
    w.grant(&w.x, "consent-x");
    let gate = w.gate();
    // One institution CA whose key the relaying facility M has got hold of:
    // M holds certificates naming A (towards B) and B (towards A).
    let ca = Ephemeral::new("Institution CA").unwrap();
    let local: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
    let site = |id: &str, peer: &str, caps| Site {
        identity: ca.facility(id).unwrap().identity(),
        trust: ca.trust(vec![peer.to_owned()]),
        hello: Hello::new(id, id, caps),
    };
    let mut a = Server::bind(
        local,
        site(A, B, Capabilities::SEND_LIVE),
        Arc::new(gate.clone()),
        driver_config(),
    )
    .unwrap();
    let a_addr = a.local_addr().unwrap();

    // M's face towards the physician: "hospital A" on its own socket.
    let fake_a = site(A, B, Capabilities::SEND_LIVE);
    let crypto = tls::server_config(&fake_a.identity, &fake_a.trust).unwrap();
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(crypto).unwrap();
    let endpoint =
        quinn::Endpoint::server(quinn::ServerConfig::with_crypto(Arc::new(crypto)), local).unwrap();
    let m_addr = endpoint.local_addr().unwrap();
    let (challenge_tx, challenge_rx) = tokio::sync::oneshot::channel();
    let (tokens_tx, tokens_rx) = mpsc::channel();
    let fake = tokio::spawn(fake_server(endpoint, challenge_rx, tokens_tx));

    // M's side towards A, as "hospital B": whatever challenge A's session
    // gives it goes to the physician, whose tokens come back to A.
    let challenge_tx = Mutex::new(Some(challenge_tx));
    let tokens_rx = Mutex::new(tokens_rx);
    let relayed = move |_: &Hello, challenge: &[u8; CHALLENGE_LEN]| -> Vec<Token> {
        if let Some(tx) = challenge_tx.lock().unwrap().take() {
            let _ = tx.send(*challenge);
        }
        tokio::task::block_in_place(|| {
            tokens_rx
                .lock()
                .unwrap()
                .recv_timeout(WAIT)
                .unwrap_or_default()
        })
    };
    let m_as_b = site(B, A, Capabilities::RECEIVE_LIVE);
    let m_to_a = tokio::spawn(async move {
        Client::connect(
            a_addr,
            &m_as_b,
            A,
            Arc::new(relayed) as Arc<dyn Credentials>,
            &driver_config(),
        )
        .await
    });
    // The physician at B connects to what it takes for hospital A.
    let b = site(B, A, Capabilities::RECEIVE_LIVE);
    let credentials = Arc::new(w.credentials(&w.doctor, World::claim(&w.x)));
    let _physician = Client::connect(m_addr, &b, A, credentials, &driver_config()).await;
    fake.await.unwrap();

    let mut link = m_to_a.await.unwrap().unwrap();
    let _remote = tokio::time::timeout(WAIT, a.accept()).await.unwrap();
    let outcome = loop {
        match tokio::time::timeout(WAIT, link.next_event()).await.unwrap() {
            Some(Event::Open { .. }) => break "opened".to_owned(),
            Some(Event::Closed { why, .. }) => break format!("{why:?}"),
            Some(_) => {}
            None => break "ended".to_owned(),
        }
    };
    assert_eq!(outcome, format!("{:?}", Ended::Denied(DenyReason::Other)));
    assert!(audit_text(&w).contains("physician login refused: signature does not verify"));
}
