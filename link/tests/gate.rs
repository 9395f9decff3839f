//! The pilot's use cases end to end: real QUIC links between two facilities
//! (quinn, mutual TLS), the consent gate on the serving side, the patient's
//! and the physician's keys on SoftHSM2 tokens, consent signed on the
//! patient's token and kept in the SQLite ledger, every decision in the
//! audit log.
//!
//! 1. The patient logs in with their JPKI authentication key and signs
//!    consent with their JPKI signing key (register and disclose to
//!    jp.hospital-b for remote consultation, all later visits).
//! 2. A Medical Doctor at jp.hospital-b, HPKI-authenticated, with the
//!    patient's JPKI login at their side, opens the patient's pathology
//!    images over the link: permitted, and data flows.
//! 3. The patient revokes: the open session is closed within a second, and
//!    a new one is refused. A Pharmacist, a replayed login and a missing
//!    patient login are refused before any media, each with the same
//!    generic refusal (the reason only in the serving site's audit log).
#![allow(clippy::unwrap_used)]

#[path = "../../auth/tests/softhsm/mod.rs"]
mod softhsm;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use med8k_auth::audit;
use med8k_auth::cert::{CrlFile, Profile, StoreKind, TrustStore};
use med8k_auth::consent::{
    ConsentDecision, ConsentPurpose, ConsentRecord, ConsentRevocation, Coverage, DataCategory,
    FacilityId, Ledger, PatientId, Period, RecordId, Scope, SignatureCheck, cms,
};
use med8k_auth::identity::Signer;
use med8k_auth::issue::{DemoPki, LeafKind};
use med8k_link::gate::{AccessClaim, ConsentCredentials, ConsentGate, GateConfig};
use med8k_transport::driver::{Client, Credentials, DriverConfig, Link, Server, Site};
use med8k_transport::pki::Ephemeral;
use med8k_transport::proto::{
    self, CHALLENGE_LEN, Capabilities, CloseReason, Codec, DenyReason, Ended, Event, FrameHeader,
    Hello, Layout, PixelFormat, Token,
};
use med8k_transport::relay::{Impairment, Relay};

use softhsm::{softhsm, softhsm_test};

const SERVING: &str = "jp.hospital-a";
const REQUESTING: &str = "jp.hospital-b";
const SO_PIN: &str = "so-pin-1234";
const PIN: &str = "user-pin-1234";
const WAIT: Duration = Duration::from_secs(10);

/// A token `label` holding one key per kind, each certified by `pki`.
fn token(pki: &DemoPki, label: &str, kinds: &[(LeafKind, u64)]) -> Vec<Arc<dyn Signer>> {
    let m = softhsm();
    m.init_token(label, SO_PIN, PIN).unwrap();
    let session = m.login(label, PIN).unwrap();
    kinds
        .iter()
        .enumerate()
        .map(|(i, (kind, serial))| {
            let id = [i as u8 + 1];
            let spki = session
                .generate_rsa_key_pair(&id, &format!("key-{i}"), 2048)
                .unwrap();
            let der = pki.issue(label, *serial, kind.clone(), &spki).unwrap();
            session
                .store_certificate(&id, &format!("cert-{i}"), &der)
                .unwrap();
            Arc::new(session.signer(&id).unwrap()) as Arc<dyn Signer>
        })
        .collect()
}

fn unix_seconds(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs() as i64
}

struct World {
    pki: DemoPki,
    dir: tempfile::TempDir,
    facilities: Ephemeral,
    patient_sign: Arc<dyn Signer>,
    patient_auth: Arc<dyn Signer>,
    /// Another patient's card (JPKI authentication).
    stranger_auth: Arc<dyn Signer>,
    doctor: Arc<dyn Signer>,
    pharmacist: Arc<dyn Signer>,
}

impl World {
    fn new() -> World {
        let pki = DemoPki::new(SystemTime::now(), 2).unwrap();
        let patient = token(
            &pki,
            "gate-patient",
            &[(LeafKind::JpkiSign, 101), (LeafKind::JpkiAuth, 102)],
        );
        let doctor = token(
            &pki,
            "gate-doctor",
            &[(DemoPki::hpki_auth("Medical Doctor"), 201)],
        );
        let pharmacist = token(
            &pki,
            "gate-pharmacist",
            &[(DemoPki::hpki_auth("Pharmacist"), 301)],
        );
        let stranger = token(&pki, "gate-stranger", &[(LeafKind::JpkiAuth, 401)]);
        World {
            dir: tempfile::tempdir().unwrap(),
            facilities: Ephemeral::new("Test Institution CA").unwrap(),
            patient_sign: patient[0].clone(),
            patient_auth: patient[1].clone(),
            stranger_auth: stranger[0].clone(),
            doctor: doctor[0].clone(),
            pharmacist: pharmacist[0].clone(),
            pki,
        }
    }

    fn ledger_path(&self) -> std::path::PathBuf {
        self.dir.path().join("consent.sqlite")
    }

    fn audit_path(&self) -> std::path::PathBuf {
        self.dir.path().join("audit.jsonl")
    }

    fn store(&self, kind: StoreKind) -> TrustStore {
        let mut s = TrustStore::new(kind);
        match kind {
            StoreKind::Jpki => s.add_der(self.pki.jpki.der()).unwrap(),
            StoreKind::Hpki => s.add_der(self.pki.hpki_root.der()).unwrap(),
            StoreKind::Facility => {}
        }
        s
    }

    fn patient(&self) -> PatientId {
        PatientId::from_signing_cert(self.patient_sign.certificate())
    }

    /// Current CRLs of the demo CAs, revoking nothing.
    fn crls(&self) -> CrlFile {
        let day = Duration::from_secs(86_400);
        let now = SystemTime::now();
        let mut crls = CrlFile::new();
        for ca in [&self.pki.jpki, &self.pki.hpki_root, &self.pki.hpki_sub] {
            crls.add_der(&ca.crl(1, now - day, now + day, &[]).unwrap())
                .unwrap();
        }
        crls
    }

    /// Scenario 2: the patient signs consent on their token; the ledger
    /// verifies and keeps it.
    fn grant(&self, id: &str) {
        let now = SystemTime::now();
        let t = unix_seconds(now);
        let record = ConsentRecord {
            id: RecordId::new(id).unwrap(),
            patient: self.patient(),
            created: t,
            decision: ConsentDecision::Permit,
            scope: vec![Scope::Register, Scope::Disclose],
            grantees: vec![FacilityId::new(REQUESTING).unwrap()],
            purposes: vec![ConsentPurpose::RemoteConsultation],
            categories: vec![DataCategory::PathologyImages, DataCategory::VisitHistory],
            period: Period {
                start: t - 3600,
                end: t + 86_400,
            },
            coverage: Coverage::AllLaterVisits,
            // The card whose login stands for the patient.
            login: Some(PatientId::of_cert(self.patient_auth.certificate())),
        };
        let bytes = record.canonical_bytes().unwrap();
        let blob = cms::sign_detached(&bytes, self.patient_sign.as_ref(), t).unwrap();
        let (store, profile, crls) = (
            self.store(StoreKind::Jpki),
            Profile::new(DemoPki::profile_config()),
            self.crls(),
        );
        let check = SignatureCheck::new(&store, &profile).with_revocation(&crls);
        Ledger::open(self.ledger_path())
            .unwrap()
            .grant(&bytes, &blob, &check, now)
            .unwrap();
    }

    fn revoke(&self, id: &str, consent: &str) {
        let now = SystemTime::now();
        let t = unix_seconds(now);
        let rev = ConsentRevocation {
            id: RecordId::new(id).unwrap(),
            patient: self.patient(),
            created: t,
            revokes: RecordId::new(consent).unwrap(),
        };
        let bytes = rev.canonical_bytes().unwrap();
        let blob = cms::sign_detached(&bytes, self.patient_sign.as_ref(), t).unwrap();
        let (store, profile, crls) = (
            self.store(StoreKind::Jpki),
            Profile::new(DemoPki::profile_config()),
            self.crls(),
        );
        let check = SignatureCheck::new(&store, &profile).with_revocation(&crls);
        Ledger::open(self.ledger_path())
            .unwrap()
            .revoke(&bytes, &blob, &check, now)
            .unwrap();
    }

    fn gate(&self, require_patient: bool) -> ConsentGate {
        ConsentGate::new(GateConfig {
            facility: SERVING.into(),
            ledger: self.ledger_path(),
            audit: self.audit_path(),
            audit_salt: b"test site salt".to_vec(),
            profile: Profile::new(DemoPki::profile_config()),
            hpki: self.store(StoreKind::Hpki),
            jpki: Some(self.store(StoreKind::Jpki)),
            revocation: Some(Arc::new(self.crls())),
            require_patient,
            serves: Some((self.patient(), DataCategory::PathologyImages)),
            recheck: Duration::from_millis(100),
            clock: Arc::new(SystemTime::now),
        })
        .unwrap()
    }

    fn site(&self, id: &str, peer: &str, caps: Capabilities) -> Site {
        Site {
            identity: self.facilities.facility(id).unwrap().identity(),
            trust: self.facilities.trust(vec![peer.to_owned()]),
            hello: Hello::new(id, id, caps),
        }
    }

    fn credentials(&self, physician: Arc<dyn Signer>, claim: AccessClaim) -> ConsentCredentials {
        ConsentCredentials::new(physician, claim)
            .with_physician_chain(vec![self.pki.hpki_sub.der().to_vec()])
    }

    /// `physician` asks for `claim` with the holder of `card` logged in beside them.
    fn present(
        &self,
        physician: &Arc<dyn Signer>,
        card: &Arc<dyn Signer>,
        claim: AccessClaim,
    ) -> ConsentCredentials {
        self.credentials(physician.clone(), claim)
            .with_patient(card.clone())
    }

    fn claim(&self) -> AccessClaim {
        AccessClaim {
            patient: self.patient().as_str().to_owned(),
            category: DataCategory::PathologyImages,
            purpose: ConsentPurpose::RemoteConsultation,
            visit: None,
        }
    }
}

fn config() -> DriverConfig {
    DriverConfig::default().with_session(
        proto::Config::default()
            .with_frame_deadline(Duration::from_secs(3))
            .with_handshake_timeout(Duration::from_secs(5)),
    )
}

struct Pair {
    server: Server,
    client: Link,
    remote: Link,
}

async fn connect(w: &World, gate: &ConsentGate, credentials: Arc<dyn Credentials>) -> Pair {
    connect_through(w, gate, credentials, None).await
}

/// A session whose packets pass `relay` (started towards the server when
/// given), so that the test can cut the connection.
async fn connect_through(
    w: &World,
    gate: &ConsentGate,
    credentials: Arc<dyn Credentials>,
    relay: Option<&mut Option<Relay>>,
) -> Pair {
    let server_site = w.site(SERVING, REQUESTING, Capabilities::SEND_LIVE);
    let local: SocketAddr = (Ipv4Addr::LOCALHOST, 0).into();
    let lossy = relay.is_some();
    // Through the relay, a short idle timeout: a cut connection is noticed
    // in a second and a half.
    let config = || match lossy {
        true => config()
            .with_keep_alive(Duration::from_millis(300))
            .with_idle_timeout(Duration::from_millis(1500)),
        false => config(),
    };
    let mut server = Server::bind(local, server_site, Arc::new(gate.clone()), config()).unwrap();
    let client_site = w.site(REQUESTING, SERVING, Capabilities::RECEIVE_LIVE);
    let mut addr = server.local_addr().unwrap();
    if let Some(slot) = relay {
        let r = Relay::start(local, addr, Impairment::new(), Impairment::new()).unwrap();
        addr = r.local_addr();
        *slot = Some(r);
    }
    let client_config = config();
    let (client, accepted) = tokio::join!(
        Client::connect(addr, &client_site, SERVING, credentials, &client_config),
        tokio::time::timeout(WAIT, server.accept())
    );
    let remote = match accepted.unwrap() {
        Some(Ok(link)) => link,
        Some(Err(refused)) => panic!("refused at the transport: {}", refused.error),
        None => panic!("server closed"),
    };
    Pair {
        server,
        client: client.unwrap(),
        remote,
    }
}

async fn next(link: &mut Link) -> Option<Event> {
    tokio::time::timeout(WAIT, link.next_event())
        .await
        .expect("no event within the wait bound")
}

async fn open(link: &mut Link) {
    loop {
        match next(link).await {
            Some(Event::Open { .. }) => return,
            Some(Event::Closed { why, detail, .. }) => {
                panic!("closed before open: {why:?} {detail}")
            }
            Some(_) => {}
            None => panic!("link ended before open"),
        }
    }
}

/// Waits (within the wait bound) until the gate counts `n` open sessions:
/// a session's task ends a little after its Closed event.
async fn settle(gate: &ConsentGate, n: usize) {
    let start = Instant::now();
    while gate.open_sessions() != n {
        assert!(
            start.elapsed() < WAIT,
            "{} sessions open, not {n}",
            gate.open_sessions()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Events until Closed: the reason and whether any media came before it.
async fn closed(link: &mut Link) -> (Ended, String, bool) {
    let mut media = false;
    loop {
        match next(link).await {
            Some(Event::Closed { why, detail, .. }) => return (why, detail, media),
            Some(Event::Frame(_) | Event::FrameMeta(_) | Event::Annotation(_)) => media = true,
            Some(_) => {}
            None => panic!("link ended without Closed"),
        }
    }
}

fn header(len: usize) -> FrameHeader {
    FrameHeader {
        channel: 0,
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
        payload_len: len as u32,
    }
}

/// A refusal as the peer sees it: one generic reason, and where the site
/// keeps the real one; that entry of the site's audit log says `why`.
#[track_caller]
fn assert_refused(w: &World, reason: Ended, detail: &str, why: &str) {
    assert_eq!(reason, Ended::Denied(DenyReason::Other), "{detail}");
    for state in [
        "NoConsent",
        "Revoked",
        "Expired",
        "OtherFacility",
        "LoginNotBound",
    ] {
        assert!(
            !detail.contains(state),
            "the peer learns the consent state: {detail}"
        );
    }
    let entry: usize = detail
        .strip_prefix("the reason is in audit entry ")
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no audit entry named: {detail}"));
    let log = std::fs::read_to_string(w.audit_path()).unwrap();
    let line = log.lines().nth(entry - 1).unwrap();
    assert!(
        line.contains("AccessDenied") && line.contains(why),
        "entry {entry} does not say {why:?}: {line}"
    );
}

/// Records the tokens it presents, so a test can replay them.
struct Recording {
    inner: ConsentCredentials,
    seen: Mutex<Vec<Token>>,
}

impl Credentials for Recording {
    fn tokens(&self, server: &Hello, challenge: &[u8; CHALLENGE_LEN]) -> Vec<Token> {
        let t = self.inner.tokens(server, challenge);
        *self.seen.lock().unwrap() = t.clone();
        t
    }
}

softhsm_test! {
    fn the_pilot_use_cases_over_a_real_link() {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap()
            .block_on(pilot());
    }
}

async fn pilot() {
    let w = World::new();
    w.grant("consent-1");
    let gate = w.gate(true);
    let _watch = gate.watch().unwrap();

    // A Medical Doctor with the patient present: permitted, data flows.
    let recording = Arc::new(Recording {
        inner: w.present(&w.doctor, &w.patient_auth, w.claim()),
        seen: Mutex::new(Vec::new()),
    });
    let mut p = connect(&w, &gate, recording.clone()).await;
    open(&mut p.client).await;
    open(&mut p.remote).await;
    assert_eq!(gate.open_sessions(), 1);
    let image = vec![0x5a; 200_000];
    p.remote
        .send_frame(header(image.len()), image.clone())
        .await
        .unwrap();
    loop {
        match next(&mut p.client).await {
            Some(Event::Frame(f)) => {
                assert!(f.payload == image);
                break;
            }
            Some(Event::Closed { why, detail, .. }) => panic!("closed: {why:?} {detail}"),
            _ => {}
        }
    }

    // A session that ends normally is a completed transfer; one whose
    // connection is lost (cut for longer than the idle timeout) is not.
    let doctor = || Arc::new(w.present(&w.doctor, &w.patient_auth, w.claim()));
    let mut done = connect(&w, &gate, doctor()).await;
    open(&mut done.client).await;
    open(&mut done.remote).await;
    done.client.close("read them all");
    let (why, detail, _) = closed(&mut done.remote).await;
    assert_eq!(why, Ended::Close(CloseReason::Normal), "{detail}");
    let mut relay = None;
    let mut cut = connect_through(&w, &gate, doctor(), Some(&mut relay)).await;
    open(&mut cut.client).await;
    open(&mut cut.remote).await;
    // The normally closed session's task may take its close grace to end.
    settle(&gate, 2).await;
    relay.as_ref().unwrap().blackout(Duration::from_secs(30));
    let (_, detail, _) = closed(&mut cut.remote).await;
    eprintln!("cut session ended: {detail}");
    settle(&gate, 1).await;

    // The same tokens on a new session: the challenge differs, refused.
    let replayed: Vec<Token> = recording.seen.lock().unwrap().clone();
    assert_eq!(replayed.len(), 3);
    let replay = Arc::new(move |_: &Hello, _: &[u8; CHALLENGE_LEN]| replayed.clone());
    let mut r = connect(&w, &gate, replay).await;
    let (why, detail, media) = closed(&mut r.client).await;
    assert_refused(
        &w,
        why,
        &detail,
        "physician login refused: signature does not verify",
    );
    assert!(!media);

    // A Pharmacist where pathology needs a Medical Doctor.
    let pharmacist = Arc::new(w.present(&w.pharmacist, &w.patient_auth, w.claim()));
    let mut ph = connect(&w, &gate, pharmacist).await;
    let (why, detail, media) = closed(&mut ph.client).await;
    assert_refused(
        &w,
        why,
        &detail,
        "physician login refused: role not accepted",
    );
    assert!(!media);

    // Another person's card beside the physician does not stand for the
    // patient: the consent names the patient's own card.
    let stranger = Arc::new(w.present(&w.doctor, &w.stranger_auth, w.claim()));
    let mut s = connect(&w, &gate, stranger).await;
    let (why, detail, media) = closed(&mut s.client).await;
    assert_refused(&w, why, &detail, "consent: LoginNotBound");
    assert!(!media);

    // Without the patient's login, this gate refuses.
    let alone = Arc::new(w.credentials(w.doctor.clone(), w.claim()));
    let mut a = connect(&w, &gate, alone).await;
    let (why, detail, _) = closed(&mut a.client).await;
    assert_refused(&w, why, &detail, "the patient's login (JPKI) is required");

    // Data the consent does not cover (and this site does not serve).
    let mut video = w.claim();
    video.category = DataCategory::EndoscopeVideo;
    let other = Arc::new(w.present(&w.doctor, &w.patient_auth, video));
    let mut o = connect(&w, &gate, other).await;
    let (why, detail, _) = closed(&mut o.client).await;
    assert_refused(
        &w,
        why,
        &detail,
        "not for the patient and data this site serves",
    );

    // The patient revokes: the open session closes within a second.
    let revoked = Instant::now();
    w.revoke("revocation-1", "consent-1");
    let (why, detail, _) = closed(&mut p.client).await;
    let took = revoked.elapsed();
    eprintln!("revocation closed the session in {took:?}");
    assert_eq!(why, Ended::Close(CloseReason::ConsentRevoked), "{detail}");
    assert!(took < Duration::from_secs(1), "took {took:?}");
    assert_eq!(gate.open_sessions(), 0);

    // And a new session is refused.
    let again = doctor();
    let mut n = connect(&w, &gate, again).await;
    let (why, detail, _) = closed(&mut n.client).await;
    assert_refused(&w, why, &detail, "consent: Revoked");

    // Every decision is in the audit trail, which verifies, and no patient
    // pseudonym appears in it in clear.
    let report = audit::verify(w.audit_path()).unwrap();
    assert!(report.entries >= 12, "{report:?}");
    let text = std::fs::read_to_string(w.audit_path()).unwrap();
    assert!(!text.contains(w.patient().as_str()));
    assert!(text.contains("AccessPermitted") && text.contains("AccessDenied"));
    // Transfers: started when a session opened; completed when it ended
    // normally; failed when revoked and when the connection was lost.
    assert!(
        text.contains("TransferStarted") && text.contains("TransferFailed"),
        "{text}"
    );
    let outcomes: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            let kind = ["TransferCompleted", "TransferFailed"]
                .into_iter()
                .find(|k| l.contains(k))?;
            Some((kind, l))
        })
        .collect();
    assert_eq!(
        outcomes
            .iter()
            .filter(|(k, _)| *k == "TransferCompleted")
            .count(),
        1,
        "only the session closed normally completed: {outcomes:?}"
    );
    assert!(
        outcomes
            .iter()
            .any(|(k, l)| *k == "TransferFailed" && l.contains("connection lost")),
        "{outcomes:?}"
    );
    for pair in [p, done, cut, r, ph, s, a, o, n] {
        pair.server.close();
        drop(pair.remote);
    }
}
