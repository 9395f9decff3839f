//! The consent gate of a link: the transport's [`Gate`] backed by HPKI login,
//! the consent ledger and the audit log.
//!
//! A client (the requesting facility) presents, bound to the session's
//! challenge:
//! - [`TokenKind::Hpki`]: the physician's [`SessionLogin`], a signature by
//!   their HPKI authentication key over the session challenge (the login
//!   message of [`med8k_auth::login`], with the server facility as context);
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

use anyhow::Context;
use med8k_transport::driver::{Credentials, Gate, PeerInfo, SessionControl};
use med8k_transport::proto::{
    AuthDecision, CHALLENGE_LEN, DenyReason as WireDeny, Hello, Token, TokenKind,
};
use serde::{Deserialize, Serialize};

use med8k_auth::audit::{AuditError, AuditEvent, AuditLog, EventKind, Outcome, Participant, Role};
use med8k_auth::cert::{
    CertError, CrlFile, PolicyRule, Profile, ProfileConfig, Purpose, Revocation, StoreKind,
    TrustStore,
};
use med8k_auth::consent::workflow::{AccessAttempt, access_event};
use med8k_auth::consent::{
    AccessRequest, ConsentPurpose, DataCategory, Decision, FacilityId, Ledger, LedgerError,
    PatientId, Physician, Scope, VisitId,
};
use med8k_auth::hex;
use med8k_auth::identity::{IdentityError, Signer};
use med8k_auth::login::{Challenge, LoginConfig, LoginError, LoginResponse, LoginVerifier};

use crate::site::{ConsentSettings, SiteConfig};

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
        let expires = med8k_auth::civil::unix((self.clock)() + LOGIN_TTL / 2);
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

fn consent_refusal(reason: med8k_auth::consent::DenyReason) -> Refusal {
    use med8k_auth::consent::DenyReason as D;
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
    ) -> Result<med8k_auth::login::VerifiedIdentity, Refusal> {
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
        let id = hex(&med8k_auth::identity::sha256(&response.certificate));
        let detail = match &result {
            Ok(_) => format!("{who} login"),
            Err(e) => format!("{who} login refused: {e}"),
        };
        self.inner.append(
            AuditEvent::new(EventKind::Login, med8k_auth::civil::micros(now), outcome)
                .with_participant(Participant::new(role, &self.inner.salt, &id))
                .with_detail(detail),
        );
        result.map_err(|e| login_refusal(who, &e))
    }
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
        let who = AccessAttempt {
            physician: Some(&request.physician.id),
            facility: request.facility.as_str(),
            patient: request.patient.as_str(),
            category: request.category,
        };
        self.append(access_event(kind, now, outcome, &self.salt, &who, detail));
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
                            med8k_auth::civil::micros(now),
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

/// How often the consent gate decides open sessions again.
pub const CONSENT_RECHECK: Duration = Duration::from_millis(500);

/// The certificate profile of `[gate]`: its HPKI policies and, when given,
/// its hcRole names.
pub(crate) fn profile_config(settings: &ConsentSettings) -> anyhow::Result<ProfileConfig> {
    let mut profile = ProfileConfig::default();
    profile.policies.insert(
        Purpose::HpkiAuth,
        PolicyRule::AnyOf(settings.hpki_policies.clone()),
    );
    profile.policies.insert(
        Purpose::HpkiSign,
        PolicyRule::AnyOf(settings.hpki_sign_policies.clone()),
    );
    if !settings.roles.is_empty() {
        profile.role_names = settings
            .roles
            .iter()
            .map(|(name, role)| {
                let role: med8k_auth::cert::Role = role
                    .parse()
                    .map_err(|e| anyhow::anyhow!("[gate] roles, {name:?}: {e}"))?;
                Ok((name.clone(), role))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    Ok(profile)
}

/// The consent gate a site configuration's `[gate]` describes.
pub fn from_site(config: &SiteConfig, settings: &ConsentSettings) -> anyhow::Result<ConsentGate> {
    let store = TrustStore::from_pem_files;
    let profile = profile_config(settings)?;
    let jpki = if settings.jpki_roots.is_empty() {
        None
    } else {
        Some(store(StoreKind::Jpki, &settings.jpki_roots)?)
    };
    let revocation: Option<Arc<dyn med8k_auth::cert::Revocation + Send + Sync>> =
        if settings.crl_fetch {
            Some(Arc::new(med8k_auth::cert::CrlFetcher::new()))
        } else if settings.crl.is_empty() {
            None
        } else {
            let mut crls = CrlFile::new();
            for c in &settings.crl {
                crls.add_file(c)
                    .with_context(|| format!("CRL {}", c.display()))?;
            }
            Some(Arc::new(crls))
        };
    for p in [&settings.ledger, &settings.audit] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let gate = ConsentGate::new(GateConfig {
        facility: config.id.clone(),
        ledger: settings.ledger.clone(),
        audit: settings.audit.clone(),
        audit_salt: med8k_auth::audit::site_salt(&settings.audit_salt_file)
            .with_context(|| format!("audit salt {}", settings.audit_salt_file.display()))?,
        profile: Profile::new(profile),
        hpki: store(StoreKind::Hpki, &settings.hpki_roots)?,
        jpki,
        revocation,
        require_patient: settings.require_patient,
        recheck: CONSENT_RECHECK,
        clock: Arc::new(SystemTime::now),
    })?;
    Ok(gate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings(roles: &[(&str, &str)]) -> ConsentSettings {
        let mut text = String::from(
            "[site]\nid = \"jp.hospital-a\"\nname = \"A\"\n[tls]\ncert = \"a.pem\"\n\
             key = \"a.key\"\nroots = [\"ca.pem\"]\nallowed = [\"jp.hospital-b\"]\n\
             [gate]\nkind = \"consent\"\nledger = \"c.sqlite\"\naudit = \"a.jsonl\"\n\
             hpki_roots = [\"h.pem\"]\nhpki_policies = [\"1.2.3\"]\njpki_roots = [\"j.pem\"]\n\
             [gate.roles]\n",
        );
        for (name, role) in roles {
            text.push_str(&format!("{name:?} = {role:?}\n"));
        }
        SiteConfig::parse(&text, Path::new("a.toml"))
            .unwrap()
            .consent
            .unwrap()
    }

    #[test]
    fn the_role_map_comes_from_the_site_config() {
        let default = profile_config(&settings(&[])).unwrap();
        assert_eq!(default.role_names, ProfileConfig::default().role_names);
        let own = profile_config(&settings(&[("Doctor of Medicine", "medical-doctor")])).unwrap();
        assert_eq!(
            own.role_names,
            vec![(
                "Doctor of Medicine".to_owned(),
                med8k_auth::cert::Role::MedicalDoctor
            )]
        );
        let e = profile_config(&settings(&[("Surgeon", "surgeon")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[gate] roles") && e.contains("\"surgeon\" is not a role"),
            "{e}"
        );
    }
}
