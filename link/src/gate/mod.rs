//! The consent gate of a link: the transport's [`Gate`] backed by HPKI login,
//! the consent ledger and the audit log.
//!
//! A client (the requesting facility) presents, bound to the session's
//! challenge (which the driver binds to the TLS connection) and to the claim:
//! - [`TokenKind::Hpki`]: the physician's [`SessionLogin`], a signature by
//!   their HPKI authentication key over the session challenge and the
//!   claim's hash (the login message of [`med8k_auth::login`], with the
//!   server facility as context);
//! - [`TokenKind::Consent`]: an [`AccessClaim`], which patient's data, what
//!   category, for what purpose, which visit;
//! - optionally [`TokenKind::Jpki`]: the patient's own [`SessionLogin`] with
//!   their JPKI authentication key, when the patient is present at the
//!   requesting side (required with [`GateConfig::require_patient`]).
//!
//! The gate verifies the logins (chain, profile, revocation, role; a
//! challenge is used once, so a replayed token is refused; a login relayed
//! from another connection or moved under another claim does not verify),
//! refuses a claim for other data than the site serves
//! ([`GateConfig::serves`]), asks the ledger (`decide`, which checks the
//! consent's signer again), writes one audit event per decision, and
//! permits or denies. **Nothing is permitted unaudited**: when the audit
//! log cannot be written, the gate denies. A refused peer learns only that
//! it was refused and the audit entry that says why; the reason stays in
//! the local audit log.
//!
//! Every session it permitted is decided again every
//! [`GateConfig::recheck`] ([`ConsentGate::recheck`], run by the thread of
//! [`ConsentGate::watch`]): a consent revoked or stopped, even by another
//! process writing the same ledger, or a login certificate expired or
//! revoked, closes the affected sessions within that time.
//!
//! The client side is [`ConsentCredentials`]; the gate a site's `[gate]`
//! section describes is [`from_site`].

mod config;
mod tokens;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant, SystemTime};

use med8k_transport::driver::{Gate, PeerInfo, SessionControl};
use med8k_transport::proto::{
    AuthDecision, CHALLENGE_LEN, DenyReason as WireDeny, Token, TokenKind,
};

use med8k_auth::audit::{AuditError, AuditEvent, AuditLog, EventKind, Outcome, Participant, Role};
use med8k_auth::cert::{CertError, Profile, Purpose, Revocation, TrustStore};
use med8k_auth::consent::workflow::{AccessAttempt, access_event};
use med8k_auth::consent::{
    AccessRequest, DataCategory, Decision, FacilityId, Ledger, LedgerError, PatientId, Physician,
    Scope, VisitId,
};
use med8k_auth::hex;
use med8k_auth::identity::IdentityError;
use med8k_auth::login::{LoginConfig, LoginError, LoginVerifier, VerifiedIdentity};

pub use config::{CONSENT_RECHECK, from_site};
pub(crate) use config::{profile_config, revocation};
pub use tokens::{AccessClaim, ConsentCredentials, LOGIN_TTL, SessionLogin, claim_binding};

/// Why a token could not be made or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GateError {
    /// A key could not sign.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// The ledger could not be opened.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The audit log could not be opened or written.
    #[error(transparent)]
    Audit(#[from] AuditError),
    /// A token was malformed.
    #[error("malformed {kind} token: {reason}")]
    Token {
        /// Which token.
        kind: &'static str,
        /// What is wrong (never the token's contents).
        reason: String,
    },
}

/// What the gate needs.
pub struct GateConfig {
    /// This (the serving) facility's id: the context logins are bound to.
    pub facility: String,
    /// The consent ledger.
    pub ledger: PathBuf,
    /// The audit log.
    pub audit: PathBuf,
    /// Salt for hashing identifiers in the audit log (secret, per site).
    pub audit_salt: Vec<u8>,
    /// Profile checks (policy OIDs, role names).
    pub profile: Profile,
    /// HPKI trust anchors (physicians).
    pub hpki: TrustStore,
    /// JPKI trust anchors (patients), for patient logins.
    pub jpki: Option<TrustStore>,
    /// Revocation source for logins (checked at login and again while a
    /// session is open) and for the signers of consents.
    pub revocation: Option<Arc<dyn Revocation + Send + Sync>>,
    /// Whether the patient must log in too.
    pub require_patient: bool,
    /// The patient and the data category of what this site serves on its
    /// sessions: a claim for anything else is refused. `None` when the site
    /// serves nothing (it only receives).
    pub serves: Option<(PatientId, DataCategory)>,
    /// How often open sessions are decided again.
    pub recheck: Duration,
    /// The clock.
    pub clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl std::fmt::Debug for GateConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GateConfig")
            .field("facility", &self.facility)
            .field("ledger", &self.ledger)
            .field("audit", &self.audit)
            .field("require_patient", &self.require_patient)
            .field("serves", &self.serves.as_ref().map(|(_, c)| c))
            .field("recheck", &self.recheck)
            .finish_non_exhaustive()
    }
}

/// A permitted session: what it asked for and who logged in.
#[derive(Clone)]
struct Permit {
    request: AccessRequest,
    logins: Vec<VerifiedIdentity>,
}

/// A session the gate permitted and watches.
struct Watched {
    session: u64,
    permit: Permit,
    control: SessionControl,
}

/// How long a permit waits for its session to open.
const PENDING_TTL: Duration = Duration::from_secs(60);

struct Inner {
    facility: String,
    ledger: Mutex<Ledger>,
    /// Physician logins; patient logins. Apart, since both answer the
    /// same session challenge and each challenge is used once.
    physicians: Mutex<LoginVerifier>,
    patients: Mutex<LoginVerifier>,
    audit: Mutex<AuditLog>,
    salt: Vec<u8>,
    revocation: Option<Arc<dyn Revocation + Send + Sync>>,
    require_patient: bool,
    serves: Option<(PatientId, DataCategory)>,
    recheck: Duration,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
    /// Permitted, not opened yet: by session.
    pending: Mutex<HashMap<u64, (Permit, Instant)>>,
    open: Mutex<Vec<Watched>>,
}

/// The transport [`Gate`] over the consent ledger. Cheap to clone.
#[derive(Clone)]
pub struct ConsentGate {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ConsentGate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentGate")
            .field("facility", &self.inner.facility)
            .field("open", &self.open_sessions())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A refusal: what the local audit says (a fixed category, no patient
/// data, nothing the peer wrote), and the request when it got that far.
struct Refusal {
    detail: String,
    request: Option<Box<AccessRequest>>,
}

impl Refusal {
    fn new(detail: impl Into<String>) -> Refusal {
        Refusal {
            detail: detail.into(),
            request: None,
        }
    }

    fn about(mut self, request: &AccessRequest) -> Refusal {
        self.request = Some(Box::new(request.clone()));
        self
    }
}

/// A fixed, patient-data-free category of a refused login.
fn login_category(e: &LoginError) -> &'static str {
    match e {
        LoginError::NotLoginPurpose(_) | LoginError::NoTrustStore(_) => "not accepted here",
        LoginError::DuplicateNonce | LoginError::UnknownChallenge | LoginError::Replayed => {
            "challenge unknown or already used"
        }
        LoginError::Expired { .. } | LoginError::ExpiryTooFar { .. } => "login expiry refused",
        LoginError::Signature(_) => "signature does not verify",
        LoginError::Cert(c) => match c {
            CertError::Expired { .. } | CertError::NotYetValid { .. } => {
                "certificate not valid now"
            }
            CertError::Revoked { .. } => "certificate revoked",
            CertError::RevocationUnknown { .. } => "revocation status unknown",
            CertError::MissingRole { .. } | CertError::RoleNotAllowed { .. } => "role not accepted",
            CertError::Policy { .. } => "certificate policy not accepted",
            CertError::WeakAlgorithm { .. } | CertError::WeakKey { .. } => "weak certificate",
            CertError::UnknownIssuer { .. } | CertError::BadSignature { .. } => {
                "certificate not from a trusted CA"
            }
            _ => "certificate refused",
        },
        _ => "refused",
    }
}

impl ConsentGate {
    /// Opens the ledger and the audit log.
    pub fn new(config: GateConfig) -> Result<ConsentGate, GateError> {
        let mut ledger = Ledger::open(&config.ledger)?;
        if let Some(r) = &config.revocation {
            ledger = ledger.with_revocation(r.clone());
        }
        let audit = AuditLog::open(&config.audit)?;
        let verifier = |store: Option<TrustStore>| {
            let mut v = LoginVerifier::new(
                LoginConfig::new(&config.facility).with_ttl(LOGIN_TTL),
                config.profile.clone(),
            );
            if let Some(store) = store {
                v = v.with_trust(store);
            }
            if let Some(r) = &config.revocation {
                v = v.with_revocation(r.clone());
            }
            v
        };
        let physicians = verifier(Some(config.hpki.clone()));
        let patients = verifier(config.jpki.clone());
        Ok(ConsentGate {
            inner: Arc::new(Inner {
                facility: config.facility,
                ledger: Mutex::new(ledger),
                physicians: Mutex::new(physicians),
                patients: Mutex::new(patients),
                audit: Mutex::new(audit),
                salt: config.audit_salt,
                revocation: config.revocation,
                require_patient: config.require_patient,
                serves: config.serves,
                recheck: config.recheck,
                clock: config.clock,
                pending: Mutex::new(HashMap::new()),
                open: Mutex::new(Vec::new()),
            }),
        })
    }

    /// Sessions permitted, opened and not closed.
    pub fn open_sessions(&self) -> usize {
        self.recheck_ended((self.inner.clock)());
        lock(&self.inner.open).len()
    }

    /// Forgets sessions that ended by themselves; each ends its transfer in
    /// the audit log.
    fn recheck_ended(&self, now: SystemTime) {
        let inner = &self.inner;
        lock(&inner.open).retain(|w| {
            if !w.control.is_ended() {
                return true;
            }
            let (outcome, detail) = if w.control.is_closing() {
                (
                    Outcome::SeriousFailure,
                    "transfer ended: session closed by the gate",
                )
            } else if w.control.lost().is_some() {
                // Not every byte need have arrived: not a completed transfer.
                (Outcome::SeriousFailure, "transfer ended: connection lost")
            } else {
                (Outcome::Success, "transfer ended: session over")
            };
            let kind = if outcome == Outcome::Success {
                EventKind::TransferCompleted
            } else {
                EventKind::TransferFailed
            };
            inner.record(kind, now, outcome, &w.permit.request, detail);
            false
        });
    }

    /// Decides every open session again at `now`: the consent (revoked,
    /// stopped, expired, its signer revoked) and the logins' certificates
    /// (expired, revoked). Closes those no longer permitted; returns how
    /// many it closed.
    pub fn recheck(&self, now: SystemTime) -> usize {
        self.recheck_ended(now);
        let inner = &self.inner;
        // Checked without holding the list of open sessions: a revocation
        // source may take its time.
        let snapshot: Vec<(u64, Permit)> = lock(&inner.open)
            .iter()
            .map(|w| (w.session, w.permit.clone()))
            .collect();
        let mut refused: HashMap<u64, String> = HashMap::new();
        for (session, permit) in snapshot {
            let decision = lock(&inner.ledger).decide(&permit.request, now);
            let why = match decision {
                Ok(Decision::Permit { .. }) => inner.logins_hold(&permit.logins, now).err(),
                Ok(Decision::Deny(r)) => Some(format!("consent: {r:?}")),
                // The ledger unreadable or the signer unknown: fail closed.
                Err(e) => Some(ledger_category(&e).to_owned()),
            };
            if let Some(why) = why {
                refused.insert(session, why);
            }
        }
        let mut closed = 0;
        lock(&inner.open).retain(|w| {
            let Some(why) = refused.get(&w.session) else {
                return true;
            };
            w.control.revoke("access no longer permitted");
            inner.record(
                EventKind::AccessDenied,
                now,
                Outcome::SeriousFailure,
                &w.permit.request,
                &format!("open session closed: {why}"),
            );
            inner.record(
                EventKind::TransferFailed,
                now,
                Outcome::SeriousFailure,
                &w.permit.request,
                "transfer stopped: access no longer permitted",
            );
            closed += 1;
            false
        });
        closed
    }

    /// Starts a thread that calls [`recheck`](Self::recheck) every
    /// [`GateConfig::recheck`] until the gate is dropped.
    pub fn watch(&self) -> std::io::Result<std::thread::JoinHandle<()>> {
        let weak: Weak<Inner> = Arc::downgrade(&self.inner);
        let every = self.inner.recheck.max(Duration::from_millis(10));
        std::thread::Builder::new()
            .name("med8k-consent-watch".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(every);
                    let Some(inner) = weak.upgrade() else { return };
                    let gate = ConsentGate { inner };
                    gate.recheck((gate.inner.clock)());
                }
            })
    }

    fn decide(
        &self,
        peer: &PeerInfo,
        challenge: &[u8; CHALLENGE_LEN],
        tokens: &[Token],
        now: SystemTime,
    ) -> Result<Permit, Refusal> {
        let inner = &self.inner;
        let find = |kind: TokenKind| tokens.iter().find(|t| t.kind == kind);

        let claim_token =
            find(TokenKind::Consent).ok_or_else(|| Refusal::new("no access claim"))?;
        let claim = AccessClaim::parse(&claim_token.bytes)
            .map_err(|_| Refusal::new("malformed access claim"))?;
        let binding = claim_binding(&claim_token.bytes);

        let hpki =
            find(TokenKind::Hpki).ok_or_else(|| Refusal::new("no physician login (HPKI)"))?;
        let physician = self.login(
            Purpose::HpkiAuth,
            "physician",
            &hpki.bytes,
            challenge,
            binding,
            now,
        )?;
        let mut logins = vec![physician.clone()];
        let patient_login = match find(TokenKind::Jpki) {
            Some(t) => {
                let who = self.login(
                    Purpose::JpkiAuth,
                    "patient",
                    &t.bytes,
                    challenge,
                    binding,
                    now,
                )?;
                let id = PatientId::parse(who.pseudonym.clone())
                    .map_err(|_| Refusal::new("patient login pseudonym"))?;
                logins.push(who);
                Some(id)
            }
            None if inner.require_patient => {
                return Err(Refusal::new("the patient's login (JPKI) is required"));
            }
            None => None,
        };

        let bad = |what: &str| Refusal::new(format!("malformed access claim ({what})"));
        let request = AccessRequest {
            physician: Physician {
                id: physician.pseudonym,
                roles: physician.roles,
            },
            facility: FacilityId::new(&peer.facility).map_err(|_| bad("facility id"))?,
            patient: PatientId::parse(&claim.patient).map_err(|_| bad("patient pseudonym"))?,
            category: claim.category,
            purpose: claim.purpose,
            action: Scope::Disclose,
            visit: claim
                .visit
                .as_deref()
                .map(VisitId::new)
                .transpose()
                .map_err(|_| bad("visit id"))?,
            patient_login,
        };
        if let Some((patient, category)) = &inner.serves
            && (request.patient != *patient || request.category != *category)
        {
            return Err(
                Refusal::new("the claim is not for the patient and data this site serves")
                    .about(&request),
            );
        }
        let decision = lock(&inner.ledger).decide(&request, now);
        match decision {
            Ok(Decision::Permit { .. }) => Ok(Permit { request, logins }),
            Ok(Decision::Deny(r)) => Err(Refusal::new(format!("consent: {r:?}")).about(&request)),
            Err(e) => Err(Refusal::new(ledger_category(&e)).about(&request)),
        }
    }

    fn login(
        &self,
        purpose: Purpose,
        who: &'static str,
        bytes: &[u8],
        challenge: &[u8; CHALLENGE_LEN],
        binding: [u8; 32],
        now: SystemTime,
    ) -> Result<VerifiedIdentity, Refusal> {
        let kind = if purpose == Purpose::HpkiAuth {
            "HPKI"
        } else {
            "JPKI"
        };
        let role = if purpose == Purpose::HpkiAuth {
            Role::Physician
        } else {
            Role::Patient
        };
        let (result, id) = match SessionLogin::parse(kind, bytes) {
            Err(_) => (Err("malformed login token"), None),
            Ok((login, mut response)) => {
                response.nonce = *challenge;
                let mut verifier = lock(if purpose == Purpose::HpkiAuth {
                    &self.inner.physicians
                } else {
                    &self.inner.patients
                });
                let result = verifier
                    .accept_challenge(now, purpose, *challenge, login.expires, binding)
                    .and_then(|_| verifier.verify(now, &response))
                    .map_err(|e| login_category(&e));
                let id = hex(&med8k_auth::identity::sha256(&response.certificate));
                (result, Some(id))
            }
        };
        let (outcome, detail) = match &result {
            Ok(_) => (Outcome::Success, format!("{who} login")),
            Err(category) => (
                Outcome::SeriousFailure,
                format!("{who} login refused: {category}"),
            ),
        };
        let mut event = AuditEvent::new(EventKind::Login, med8k_auth::civil::micros(now), outcome)
            .with_detail(detail);
        if let Some(id) = &id {
            event = event.with_participant(Participant::new(role, &self.inner.salt, id));
        }
        if self.inner.append(event).is_none() {
            return Err(Refusal::new("audit log unavailable"));
        }
        result.map_err(|category| Refusal::new(format!("{who} login refused: {category}")))
    }
}

/// A fixed category of a ledger failure (its text can name files).
fn ledger_category(e: &LedgerError) -> &'static str {
    match e {
        LedgerError::Tampered { .. } | LedgerError::Corrupt { .. } => "ledger row does not verify",
        LedgerError::Signer { .. } => "consent signer status unknown",
        _ => "ledger unavailable",
    }
}

impl Inner {
    /// Appends `event`; `None` (and an error in the operator's log) when
    /// the audit log cannot be written: the caller then denies.
    fn append(&self, event: AuditEvent) -> Option<u64> {
        match lock(&self.audit).append(&event) {
            Ok(seq) => Some(seq),
            Err(e) => {
                tracing::error!(error = %e, "audit log append failed: denying");
                None
            }
        }
    }

    fn record(
        &self,
        kind: EventKind,
        now: SystemTime,
        outcome: Outcome,
        request: &AccessRequest,
        detail: &str,
    ) -> Option<u64> {
        let who = AccessAttempt {
            physician: Some(&request.physician.id),
            facility: request.facility.as_str(),
            patient: request.patient.as_str(),
            category: request.category,
        };
        self.append(access_event(kind, now, outcome, &self.salt, &who, detail))
    }

    /// Whether the logins of a session still hold at `now`: their
    /// certificates unexpired and, with a revocation source, not revoked
    /// (an unknown status does not hold).
    fn logins_hold(&self, logins: &[VerifiedIdentity], now: SystemTime) -> Result<(), String> {
        let t = med8k_auth::civil::unix(now);
        for login in logins {
            let who = if login.purpose == Purpose::HpkiAuth {
                "physician"
            } else {
                "patient"
            };
            if login
                .certificates
                .iter()
                .any(|c| c.check_validity(now).is_err())
                || t > login.not_after
            {
                return Err(format!("{who} login certificate expired"));
            }
            if let Some(r) = &self.revocation {
                for pair in login.certificates.windows(2) {
                    if let [cert, issuer] = pair
                        && let Err(e) = r.check(cert, issuer, now)
                    {
                        return Err(format!(
                            "{who} login certificate: {}",
                            login_category(&LoginError::Cert(e))
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

impl Gate for ConsentGate {
    fn authorise(
        &self,
        peer: &PeerInfo,
        challenge: &[u8; CHALLENGE_LEN],
        tokens: &[Token],
    ) -> AuthDecision {
        let now = (self.inner.clock)();
        let refusal = match self.decide(peer, challenge, tokens, now) {
            Ok(permit) => {
                let recorded = self.inner.record(
                    EventKind::AccessPermitted,
                    now,
                    Outcome::Success,
                    &permit.request,
                    "session permitted",
                );
                if recorded.is_some() {
                    let mut pending = lock(&self.inner.pending);
                    pending.retain(|_, (_, at)| at.elapsed() < PENDING_TTL);
                    pending.insert(peer.session, (permit, Instant::now()));
                    return AuthDecision::Permit;
                }
                Refusal::new("audit log unavailable").about(&permit.request)
            }
            Err(refusal) => refusal,
        };
        let entry = match &refusal.request {
            Some(r) => self.inner.record(
                EventKind::AccessDenied,
                now,
                Outcome::SeriousFailure,
                r,
                &refusal.detail,
            ),
            None => self.inner.append(
                AuditEvent::new(
                    EventKind::AccessDenied,
                    med8k_auth::civil::micros(now),
                    Outcome::SeriousFailure,
                )
                .with_participant(Participant::new(
                    Role::Facility,
                    &self.inner.salt,
                    &peer.facility,
                ))
                .with_detail(refusal.detail),
            ),
        };
        // The reason stays here: the peer learns nothing of the patient's
        // consents, only where to ask.
        let detail = match entry {
            Some(seq) => format!(
                "the reason is in audit entry {seq} at {}",
                self.inner.facility
            ),
            None => "the audit log could not be written".to_owned(),
        };
        AuthDecision::Deny {
            reason: WireDeny::Other,
            detail,
        }
    }

    fn opened(&self, peer: &PeerInfo, control: SessionControl) {
        let permit = lock(&self.inner.pending).remove(&peer.session);
        match permit {
            Some((permit, _)) => {
                let recorded = self.inner.record(
                    EventKind::TransferStarted,
                    (self.inner.clock)(),
                    Outcome::Success,
                    &permit.request,
                    "session opened",
                );
                if recorded.is_none() {
                    control.revoke("audit log unavailable");
                    return;
                }
                lock(&self.inner.open).push(Watched {
                    session: peer.session,
                    permit,
                    control,
                });
            }
            // Opened without a permit recorded here: cannot be watched, so
            // it does not stay open.
            None => control.revoke("no permit on record for this session"),
        }
    }
}
