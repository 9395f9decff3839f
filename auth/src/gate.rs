//! The consent gate of a link: the transport's [`Gate`] backed by HPKI login,
//! the consent ledger and the audit log.
//!
//! A client (the requesting facility) presents, bound to the session's
//! challenge:
//! - [`TokenKind::Hpki`]: the physician's [`SessionLogin`], a signature by
//!   their HPKI authentication key over the session challenge (the login
//!   message of [`crate::login`], with the server facility as context);
//! - [`TokenKind::Consent`]: an [`AccessClaim`], which patient's data, what
//!   category, for what purpose, which visit;
//! - optionally [`TokenKind::Jpki`]: the patient's own [`SessionLogin`] with
//!   their JPKI authentication key, when the patient is present at the
//!   requesting side (required with [`GateConfig::require_patient`]).
//!
//! The gate verifies the logins (chain, profile, revocation, role; a
//! challenge is used once, so a replayed token is refused), asks the ledger
//! (`decide`), writes one audit event per decision, and permits or denies.
//! Every session it permitted is decided again every
//! [`GateConfig::recheck`] ([`ConsentGate::recheck`], run by the thread of
//! [`ConsentGate::watch`]): a consent revoked, even by another process
//! writing the same ledger, closes the affected sessions within that time.
//!
//! The client side is [`ConsentCredentials`].

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, SystemTime};

use med8k_transport::driver::{Credentials, Gate, PeerInfo, SessionControl};
use med8k_transport::proto::{
    AuthDecision, CHALLENGE_LEN, DenyReason as WireDeny, Hello, Token, TokenKind,
};
use serde::{Deserialize, Serialize};

use crate::audit::{AuditError, AuditEvent, AuditLog, EventKind, Outcome, Participant, Role};
use crate::cert::{CertError, Profile, Purpose, Revocation, TrustStore, unix_seconds};
use crate::consent::{
    AccessRequest, ConsentPurpose, DataCategory, Decision, FacilityId, Ledger, LedgerError,
    PatientId, Physician, Scope, VisitId,
};
use crate::hex;
use crate::identity::{IdentityError, Signer};
use crate::login::{Challenge, LoginConfig, LoginError, LoginResponse, LoginVerifier};

/// How long a session login's signature may be used: the client signs an
/// expiry this far ahead.
pub const LOGIN_TTL: Duration = Duration::from_secs(120);

/// A login signed over a link session's challenge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionLogin {
    /// Expiry the client chose and signed (unix seconds).
    pub expires: i64,
    /// The signer's certificate, DER as hex.
    pub certificate: String,
    /// Intermediate CA certificates, DER as hex.
    #[serde(default)]
    pub intermediates: Vec<String>,
    /// The signature over [`Challenge::message`], hex.
    pub signature: String,
}

/// What the requesting side asks for on a session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessClaim {
    /// The patient's pseudonym ([`PatientId`]).
    pub patient: String,
    /// The data asked for.
    pub category: DataCategory,
    /// Why.
    pub purpose: ConsentPurpose,
    /// The visit, for per-visit consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit: Option<String>,
}

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
        /// What is wrong.
        reason: String,
    },
}

fn unhex(kind: &'static str, s: &str) -> Result<Vec<u8>, GateError> {
    let bad = |reason: &str| GateError::Token {
        kind,
        reason: reason.to_owned(),
    };
    if !s.len().is_multiple_of(2) {
        return Err(bad("odd hex length"));
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| bad("not hex"))
        })
        .collect()
}

fn challenge_for(
    context: &str,
    purpose: Purpose,
    nonce: &[u8; CHALLENGE_LEN],
    expires: i64,
) -> Challenge {
    Challenge {
        nonce: *nonce,
        purpose,
        context: context.to_owned(),
        expires,
    }
}

impl SessionLogin {
    /// Signs the session `challenge` of the server `facility` for `purpose`
    /// (HpkiAuth for a physician, JpkiAuth for a patient), valid until
    /// `expires` (unix seconds, at most [`LOGIN_TTL`] ahead).
    pub fn sign(
        signer: &dyn Signer,
        intermediates: &[Vec<u8>],
        facility: &str,
        purpose: Purpose,
        challenge: &[u8; CHALLENGE_LEN],
        expires: i64,
    ) -> Result<SessionLogin, IdentityError> {
        let message = challenge_for(facility, purpose, challenge, expires).message();
        Ok(SessionLogin {
            expires,
            certificate: hex(signer.certificate()),
            intermediates: intermediates.iter().map(|c| hex(c)).collect(),
            signature: hex(&signer.sign(&message)?),
        })
    }

    /// The token bytes.
    pub fn to_token(&self, kind: TokenKind) -> Token {
        Token {
            kind,
            bytes: serde_json::to_vec(self).unwrap_or_default(),
        }
    }

    fn parse(kind: &'static str, bytes: &[u8]) -> Result<(SessionLogin, LoginResponse), GateError> {
        let login: SessionLogin = serde_json::from_slice(bytes).map_err(|e| GateError::Token {
            kind,
            reason: e.to_string(),
        })?;
        let response = LoginResponse {
            nonce: [0; 32],
            certificate: unhex(kind, &login.certificate)?,
            intermediates: login
                .intermediates
                .iter()
                .map(|h| unhex(kind, h))
                .collect::<Result<_, _>>()?,
            signature: unhex(kind, &login.signature)?,
        };
        Ok((login, response))
    }
}

impl AccessClaim {
    /// The token bytes.
    pub fn to_token(&self) -> Token {
        Token {
            kind: TokenKind::Consent,
            bytes: serde_json::to_vec(self).unwrap_or_default(),
        }
    }

    fn parse(bytes: &[u8]) -> Result<AccessClaim, GateError> {
        serde_json::from_slice(bytes).map_err(|e| GateError::Token {
            kind: "consent",
            reason: e.to_string(),
        })
    }
}

/// The client's side: signs the physician's (and the patient's, if
/// present) login over each session's challenge and states the claim.
pub struct ConsentCredentials {
    physician: Arc<dyn Signer>,
    physician_chain: Vec<Vec<u8>>,
    patient: Option<Arc<dyn Signer>>,
    claim: AccessClaim,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
}

impl std::fmt::Debug for ConsentCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsentCredentials")
            .field("patient_present", &self.patient.is_some())
            .finish_non_exhaustive()
    }
}

impl ConsentCredentials {
    /// Credentials of a physician asking for `claim`.
    pub fn new(physician: Arc<dyn Signer>, claim: AccessClaim) -> Self {
        ConsentCredentials {
            physician,
            physician_chain: Vec::new(),
            patient: None,
            claim,
            clock: Arc::new(SystemTime::now),
        }
    }

    /// Intermediate CA certificates (DER) of the physician's certificate,
    /// sent along (an HPKI leaf is issued by a sub-CA under the root the
    /// server trusts).
    #[must_use]
    pub fn with_physician_chain(mut self, intermediates: Vec<Vec<u8>>) -> Self {
        self.physician_chain = intermediates;
        self
    }

    /// The patient is present and logs in too.
    #[must_use]
    pub fn with_patient(mut self, patient: Arc<dyn Signer>) -> Self {
        self.patient = Some(patient);
        self
    }

    /// A clock other than the system's (tests).
    #[must_use]
    pub fn with_clock(mut self, clock: Arc<dyn Fn() -> SystemTime + Send + Sync>) -> Self {
        self.clock = clock;
        self
    }
}

impl Credentials for ConsentCredentials {
    fn tokens(&self, server: &Hello, challenge: &[u8; CHALLENGE_LEN]) -> Vec<Token> {
        let expires = unix_seconds((self.clock)() + LOGIN_TTL / 2);
        let facility = &server.site_id;
        let mut tokens = Vec::new();
        // A signing failure (a card pulled, a PIN locked) leaves the token
        // out; the gate then denies with a reason the operator sees.
        match SessionLogin::sign(
            self.physician.as_ref(),
            &self.physician_chain,
            facility,
            Purpose::HpkiAuth,
            challenge,
            expires,
        ) {
            Ok(l) => tokens.push(l.to_token(TokenKind::Hpki)),
            Err(e) => tracing::warn!(error = %e, "the physician's login could not be signed"),
        }
        if let Some(patient) = &self.patient {
            match SessionLogin::sign(
                patient.as_ref(),
                &[],
                facility,
                Purpose::JpkiAuth,
                challenge,
                expires,
            ) {
                Ok(l) => tokens.push(l.to_token(TokenKind::Jpki)),
                Err(e) => tracing::warn!(error = %e, "the patient's login could not be signed"),
            }
        }
        tokens.push(self.claim.to_token());
        tokens
    }
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
    /// Revocation source for logins.
    pub revocation: Option<Arc<dyn Revocation + Send + Sync>>,
    /// Whether the patient must log in too.
    pub require_patient: bool,
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
            .field("recheck", &self.recheck)
            .finish_non_exhaustive()
    }
}

/// A session the gate permitted and watches.
struct Watched {
    request: AccessRequest,
    control: SessionControl,
}

struct Inner {
    facility: String,
    ledger: Mutex<Ledger>,
    /// Physician logins; patient logins. Apart, since both answer the
    /// same session challenge and each challenge is used once.
    physicians: Mutex<LoginVerifier>,
    patients: Mutex<LoginVerifier>,
    audit: Mutex<AuditLog>,
    salt: Vec<u8>,
    require_patient: bool,
    recheck: Duration,
    clock: Arc<dyn Fn() -> SystemTime + Send + Sync>,
    /// Permitted, not opened yet: by peer facility and address.
    pending: Mutex<HashMap<(String, SocketAddr), AccessRequest>>,
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

/// A refusal: the reason for the peer, the detail for the operator.
struct Refusal {
    reason: WireDeny,
    detail: String,
}

impl Refusal {
    fn new(reason: WireDeny, detail: impl Into<String>) -> Refusal {
        Refusal {
            reason,
            detail: detail.into(),
        }
    }
}

/// A refusal, with the request when it got that far (for the audit).
type Denied = Box<(Refusal, Option<AccessRequest>)>;

fn login_refusal(who: &str, e: &LoginError) -> Refusal {
    let reason = match e {
        LoginError::Cert(CertError::MissingRole { .. } | CertError::RoleNotAllowed { .. }) => {
            WireDeny::NotQualified
        }
        LoginError::Cert(CertError::Expired { .. }) | LoginError::Expired { .. } => {
            WireDeny::Expired
        }
        _ => WireDeny::InvalidToken,
    };
    Refusal::new(reason, format!("{who} login refused: {e}"))
}

fn consent_refusal(reason: crate::consent::DenyReason) -> Refusal {
    use crate::consent::DenyReason as D;
    let wire = match reason {
        D::RoleNotAllowed => WireDeny::NotQualified,
        D::Expired => WireDeny::Expired,
        _ => WireDeny::NoConsent,
    };
    Refusal::new(wire, format!("consent: {reason:?}"))
}

impl ConsentGate {
    /// Opens the ledger and the audit log.
    pub fn new(config: GateConfig) -> Result<ConsentGate, GateError> {
        let ledger = Ledger::open(&config.ledger)?;
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
                require_patient: config.require_patient,
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
                    "transfer ended: session closed by the gate".to_owned(),
                )
            } else if let Some(why) = w.control.lost() {
                // Not every byte need have arrived: not a completed transfer.
                (
                    Outcome::SeriousFailure,
                    format!("transfer ended: connection lost ({why})"),
                )
            } else {
                (Outcome::Success, "transfer ended: session over".to_owned())
            };
            let kind = if outcome == Outcome::Success {
                EventKind::TransferCompleted
            } else {
                EventKind::TransferFailed
            };
            inner.record(kind, now, outcome, &w.request, &detail);
            false
        });
    }

    /// Decides every open session again at `now`; closes those no longer
    /// permitted (consent revoked or expired). Returns how many it closed.
    pub fn recheck(&self, now: SystemTime) -> usize {
        self.recheck_ended(now);
        let inner = &self.inner;
        let mut open = lock(&inner.open);
        let mut closed = 0;
        let ledger = lock(&inner.ledger);
        open.retain(|w| {
            let refusal = match ledger.decide(&w.request, now) {
                Ok(Decision::Permit { .. }) => return true,
                Ok(Decision::Deny(r)) => consent_refusal(r),
                // The ledger unreadable: fail closed.
                Err(e) => Refusal::new(WireDeny::Other, format!("ledger: {e}")),
            };
            w.control.revoke(refusal.detail.clone());
            inner.record(
                EventKind::AccessDenied,
                now,
                Outcome::SeriousFailure,
                &w.request,
                &format!("open session closed: {}", refusal.detail),
            );
            inner.record(
                EventKind::TransferFailed,
                now,
                Outcome::SeriousFailure,
                &w.request,
                "transfer stopped: consent no longer permits it",
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
    ) -> Result<AccessRequest, Denied> {
        let inner = &self.inner;
        let find = |kind: TokenKind| tokens.iter().find(|t| t.kind == kind);
        let refuse = |r: Refusal| Box::new((r, None));

        let claim_token = find(TokenKind::Consent)
            .ok_or_else(|| refuse(Refusal::new(WireDeny::NoConsent, "no access claim")))?;
        let claim = AccessClaim::parse(&claim_token.bytes)
            .map_err(|e| refuse(Refusal::new(WireDeny::InvalidToken, e.to_string())))?;

        let hpki = find(TokenKind::Hpki).ok_or_else(|| {
            refuse(Refusal::new(
                WireDeny::InvalidToken,
                "no physician login (HPKI)",
            ))
        })?;
        let physician = self
            .login(Purpose::HpkiAuth, "physician", &hpki.bytes, challenge, now)
            .map_err(refuse)?;
        let patient_login = match find(TokenKind::Jpki) {
            Some(t) => {
                let who = self
                    .login(Purpose::JpkiAuth, "patient", &t.bytes, challenge, now)
                    .map_err(refuse)?;
                Some(PatientId::parse(who.pseudonym).map_err(|_| {
                    refuse(Refusal::new(
                        WireDeny::InvalidToken,
                        "patient login pseudonym",
                    ))
                })?)
            }
            None if inner.require_patient => {
                return Err(refuse(Refusal::new(
                    WireDeny::InvalidToken,
                    "the patient's login (JPKI) is required",
                )));
            }
            None => None,
        };

        let bad = |what: &str| refuse(Refusal::new(WireDeny::InvalidToken, what.to_owned()));
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
        let decision = lock(&inner.ledger).decide(&request, now);
        match decision {
            Ok(Decision::Permit { .. }) => Ok(request),
            Ok(Decision::Deny(r)) => Err(Box::new((consent_refusal(r), Some(request)))),
            Err(e) => Err(Box::new((
                Refusal::new(WireDeny::Other, format!("ledger: {e}")),
                Some(request),
            ))),
        }
    }

    fn login(
        &self,
        purpose: Purpose,
        who: &'static str,
        bytes: &[u8],
        challenge: &[u8; CHALLENGE_LEN],
        now: SystemTime,
    ) -> Result<crate::login::VerifiedIdentity, Refusal> {
        let kind = if purpose == Purpose::HpkiAuth {
            "HPKI"
        } else {
            "JPKI"
        };
        let (login, mut response) = SessionLogin::parse(kind, bytes)
            .map_err(|e| Refusal::new(WireDeny::InvalidToken, e.to_string()))?;
        response.nonce = *challenge;
        let mut verifier = lock(if purpose == Purpose::HpkiAuth {
            &self.inner.physicians
        } else {
            &self.inner.patients
        });
        let result = verifier
            .accept_challenge(now, purpose, *challenge, login.expires)
            .and_then(|_| verifier.verify(now, &response));
        drop(verifier);
        let outcome = if result.is_ok() {
            Outcome::Success
        } else {
            Outcome::SeriousFailure
        };
        let role = if purpose == Purpose::HpkiAuth {
            Role::Physician
        } else {
            Role::Patient
        };
        let id = hex(&crate::identity::sha256(&response.certificate));
        let detail = match &result {
            Ok(_) => format!("{who} login"),
            Err(e) => format!("{who} login refused: {e}"),
        };
        self.inner.append(
            AuditEvent::new(EventKind::Login, micros(now), outcome)
                .with_participant(Participant::new(role, &self.inner.salt, &id))
                .with_detail(detail),
        );
        result.map_err(|e| login_refusal(who, &e))
    }
}

fn micros(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

impl Inner {
    fn append(&self, event: AuditEvent) {
        if let Err(e) = lock(&self.audit).append(&event) {
            // The decision stands; the operator must see that the trail
            // has a hole.
            tracing::error!(error = %e, "audit log append failed");
        }
    }

    fn record(
        &self,
        kind: EventKind,
        now: SystemTime,
        outcome: Outcome,
        request: &AccessRequest,
        detail: &str,
    ) {
        let salt = &self.salt;
        let category = serde_json::to_value(request.category)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        self.append(
            AuditEvent::new(kind, micros(now), outcome)
                .with_participant(Participant::new(
                    Role::Physician,
                    salt,
                    &request.physician.id,
                ))
                .with_participant(Participant::new(
                    Role::Facility,
                    salt,
                    request.facility.as_str(),
                ))
                .with_participant(Participant::new(
                    Role::Patient,
                    salt,
                    request.patient.as_str(),
                ))
                .with_object(category)
                .with_detail(detail),
        );
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
        match self.decide(peer, challenge, tokens, now) {
            Ok(request) => {
                self.inner.record(
                    EventKind::AccessPermitted,
                    now,
                    Outcome::Success,
                    &request,
                    "session permitted",
                );
                lock(&self.inner.pending).insert((peer.facility.clone(), peer.remote), request);
                AuthDecision::Permit
            }
            Err(denied) => {
                let (refusal, request) = *denied;
                match &request {
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
                            micros(now),
                            Outcome::SeriousFailure,
                        )
                        .with_participant(Participant::new(
                            Role::Facility,
                            &self.inner.salt,
                            &peer.facility,
                        ))
                        .with_detail(refusal.detail.clone()),
                    ),
                }
                AuthDecision::Deny {
                    reason: refusal.reason,
                    detail: refusal.detail,
                }
            }
        }
    }

    fn opened(&self, peer: &PeerInfo, control: SessionControl) {
        let request = lock(&self.inner.pending).remove(&(peer.facility.clone(), peer.remote));
        match request {
            Some(request) => {
                self.inner.record(
                    EventKind::TransferStarted,
                    (self.inner.clock)(),
                    Outcome::Success,
                    &request,
                    "session opened",
                );
                lock(&self.inner.open).push(Watched { request, control });
            }
            // Opened without a permit recorded here: cannot be watched, so
            // it does not stay open.
            None => control.revoke("no permit on record for this session"),
        }
    }
}
