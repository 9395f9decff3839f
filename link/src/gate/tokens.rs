//! What a requesting site presents on a session: the physician's (and the
//! patient's) login signed over the session's challenge and the claim, and
//! the access claim itself; and the client's side that makes them
//! ([`ConsentCredentials`]).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use med8k_auth::cert::Purpose;
use med8k_auth::consent::{ConsentPurpose, DataCategory};
use med8k_auth::hex;
use med8k_auth::identity::{IdentityError, Signer, sha256};
use med8k_auth::login::{Challenge, LoginResponse};
use med8k_transport::driver::Credentials;
use med8k_transport::proto::{CHALLENGE_LEN, Hello, Token, TokenKind};
use serde::{Deserialize, Serialize};

use super::GateError;

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
    /// The patient's pseudonym ([`med8k_auth::consent::PatientId`]).
    pub patient: String,
    /// The data asked for.
    pub category: DataCategory,
    /// Why.
    pub purpose: ConsentPurpose,
    /// The visit, for per-visit consent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub visit: Option<String>,
}

pub(crate) fn unhex(kind: &'static str, s: &str) -> Result<Vec<u8>, GateError> {
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

/// What a session login's signature covers besides the session's challenge
/// (which the driver has bound to the TLS connection): the access claim's
/// bytes as sent, hashed. A login moved under another claim does not verify.
pub fn claim_binding(claim_token: &[u8]) -> [u8; 32] {
    let mut m = b"med8k access claim v1\0".to_vec();
    m.extend_from_slice(claim_token);
    sha256(&m)
}

pub(crate) fn challenge_for(
    context: &str,
    purpose: Purpose,
    nonce: &[u8; CHALLENGE_LEN],
    expires: i64,
    binding: [u8; 32],
) -> Challenge {
    Challenge {
        nonce: *nonce,
        purpose,
        context: context.to_owned(),
        expires,
        binding,
    }
}

impl SessionLogin {
    /// Signs the session `challenge` of the server `facility` for `purpose`
    /// (HpkiAuth for a physician, JpkiAuth for a patient), valid until
    /// `expires` (unix seconds, at most [`LOGIN_TTL`] ahead), bound to the
    /// claim it is presented with ([`claim_binding`]).
    pub fn sign(
        signer: &dyn Signer,
        intermediates: &[Vec<u8>],
        facility: &str,
        purpose: Purpose,
        challenge: &[u8; CHALLENGE_LEN],
        expires: i64,
        binding: [u8; 32],
    ) -> Result<SessionLogin, IdentityError> {
        let message = challenge_for(facility, purpose, challenge, expires, binding).message();
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

    /// The login and the response the verifier checks (its nonce is set by
    /// the gate). Errors name the token, never echo its contents.
    pub(crate) fn parse(
        kind: &'static str,
        bytes: &[u8],
    ) -> Result<(SessionLogin, LoginResponse), GateError> {
        let login: SessionLogin = serde_json::from_slice(bytes).map_err(|_| GateError::Token {
            kind,
            reason: "not a session login".to_owned(),
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

    pub(crate) fn parse(bytes: &[u8]) -> Result<AccessClaim, GateError> {
        serde_json::from_slice(bytes).map_err(|_| GateError::Token {
            kind: "consent",
            reason: "not an access claim".to_owned(),
        })
    }
}

/// The client's side: signs the physician's (and the patient's, if
/// present) login over each session's challenge and the claim, and states
/// the claim.
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
        let claim = self.claim.to_token();
        let binding = claim_binding(&claim.bytes);
        let mut tokens = Vec::new();
        // A signing failure (a card pulled, a PIN locked) leaves the token
        // out; the gate then denies.
        match SessionLogin::sign(
            self.physician.as_ref(),
            &self.physician_chain,
            facility,
            Purpose::HpkiAuth,
            challenge,
            expires,
            binding,
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
                binding,
            ) {
                Ok(l) => tokens.push(l.to_token(TokenKind::Jpki)),
                Err(e) => tracing::warn!(error = %e, "the patient's login could not be signed"),
            }
        }
        tokens.push(claim);
        tokens
    }
}
