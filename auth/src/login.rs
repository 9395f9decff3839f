//! Login by challenge and signature, sans-IO: no clock, no randomness, no
//! sockets here. `now` and the nonce bytes are arguments.
//!
//! Call order, on the verifying side (the server facility):
//! 1. [`LoginVerifier::challenge`]`(now, purpose, nonce)` with 32 fresh
//!    random bytes; send the [`Challenge`] to the client.
//! 2. The client answers with [`respond`]: it signs [`Challenge::message`]
//!    with its [`Signer`] (a patient's JPKI authentication key for
//!    [`Purpose::JpkiAuth`], a physician's HPKI authentication key for
//!    [`Purpose::HpkiAuth`]).
//! 3. [`LoginVerifier::verify`]`(now, &response)` checks that the challenge
//!    is known, unused and unexpired, the signature (with the certificate's
//!    key, over the message rebuilt from what the verifier stored), the
//!    chain and profile for the challenge's purpose, revocation, and for a
//!    physician the role; the challenge is used up by the first answer,
//!    right or wrong, so a replayed login is refused.
//!
//! Outstanding and used challenges are bounded ([`LoginConfig::capacity`]):
//! past it the oldest are forgotten (their answers are then refused).
//!
//! ```no_run
//! use std::time::SystemTime;
//! use med8k_auth::cert::{Profile, ProfileConfig, Purpose, TrustStore};
//! use med8k_auth::identity::Signer;
//! use med8k_auth::login::{LoginConfig, LoginVerifier, respond};
//! # fn demo(jpki: TrustStore, card: &dyn Signer, nonce: [u8; 32]) -> Result<(), Box<dyn std::error::Error>> {
//! let mut verifier = LoginVerifier::new(LoginConfig::new("jp.hospital-a"), Profile::new(ProfileConfig::default()))
//!     .with_trust(jpki);
//! let challenge = verifier.challenge(SystemTime::now(), Purpose::JpkiAuth, nonce)?;
//! let response = respond(&challenge, card, &[])?;
//! let who = verifier.verify(SystemTime::now(), &response)?;
//! println!("logged in: {}", who.pseudonym);
//! # Ok(()) }
//! ```

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, SystemTime};

use crate::cert::{
    CertError, ParsedCert, Profile, Purpose, Revocation, Role, StoreKind, TrustStore, verify_chain,
};
use crate::identity::{IdentityError, SignatureError, Signer, sha256, verify_sha256};

/// Domain separation for the signed message.
const MESSAGE_TAG: &[u8] = b"med8k login challenge v2\0";

/// How the verifier behaves.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct LoginConfig {
    /// What the challenge is bound to: the verifying facility's id (a
    /// signature for one facility is useless at another).
    pub context: String,
    /// How long a challenge may be answered.
    pub ttl: Duration,
    /// Most challenges remembered, outstanding and used each.
    pub capacity: usize,
    /// Roles a physician ([`Purpose::HpkiAuth`]) must hold one of.
    pub physician_roles: Vec<Role>,
}

impl LoginConfig {
    /// Bound to `context`; 60 s to answer; 1024 challenges; physicians must
    /// be Medical Doctors.
    pub fn new(context: &str) -> Self {
        LoginConfig {
            context: context.to_owned(),
            ttl: Duration::from_secs(60),
            capacity: 1024,
            physician_roles: vec![Role::MedicalDoctor],
        }
    }

    /// Sets [`LoginConfig::ttl`].
    pub fn with_ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets [`LoginConfig::capacity`] (at least 1).
    pub fn with_capacity(mut self, capacity: usize) -> Self {
        self.capacity = capacity.max(1);
        self
    }

    /// Sets [`LoginConfig::physician_roles`].
    pub fn with_physician_roles(mut self, roles: Vec<Role>) -> Self {
        self.physician_roles = roles;
        self
    }
}

/// A challenge to sign.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// The nonce.
    pub nonce: [u8; 32],
    /// The certificate purpose the answer must use.
    pub purpose: Purpose,
    /// The verifier's context (facility id).
    pub context: String,
    /// After this the answer is refused (unix seconds).
    pub expires: i64,
    /// What else the signature is bound to, known to both sides: on a link,
    /// a hash of the connection's TLS exporter value and of the access claim
    /// (so a login relayed to another connection, or with another claim,
    /// does not verify). Zeros when there is nothing more.
    pub binding: [u8; 32],
}

impl Challenge {
    /// The bytes the client signs: a tag, the context, the purpose, the
    /// expiry, the nonce and the binding, each length-prefixed.
    pub fn message(&self) -> Vec<u8> {
        let mut m = MESSAGE_TAG.to_vec();
        for part in [
            self.context.as_bytes(),
            self.purpose.name().as_bytes(),
            &self.expires.to_be_bytes(),
            &self.nonce,
            &self.binding,
        ] {
            m.extend_from_slice(&(part.len() as u32).to_be_bytes());
            m.extend_from_slice(part);
        }
        m
    }
}

/// What the client sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginResponse {
    /// The challenge's nonce.
    pub nonce: [u8; 32],
    /// The signer's certificate (DER).
    pub certificate: Vec<u8>,
    /// Intermediate CA certificates (DER), if the verifier may lack them.
    pub intermediates: Vec<Vec<u8>>,
    /// RSASSA-PKCS1-v1_5 SHA-256 signature over [`Challenge::message`].
    pub signature: Vec<u8>,
}

/// The client's side: signs `challenge` with `signer`.
pub fn respond(
    challenge: &Challenge,
    signer: &dyn Signer,
    intermediates: &[Vec<u8>],
) -> Result<LoginResponse, IdentityError> {
    Ok(LoginResponse {
        nonce: challenge.nonce,
        certificate: signer.certificate().to_vec(),
        intermediates: intermediates.to_vec(),
        signature: signer.sign(&challenge.message())?,
    })
}

/// Someone who logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedIdentity {
    /// The purpose checked (JpkiAuth: a patient; HpkiAuth: a professional).
    pub purpose: Purpose,
    /// Subject of the certificate, as text.
    pub subject: String,
    /// Lowercase hex SHA-256 of the certificate DER: the identifier to log
    /// and to key records by.
    pub pseudonym: String,
    /// HPKI roles held (empty for JPKI).
    pub roles: Vec<Role>,
    /// The certificate's notAfter (unix seconds).
    pub not_after: i64,
    /// The verified chain, leaf first, trust anchor last: to check the
    /// login's certificates again later (expiry, revocation).
    pub certificates: Vec<ParsedCert>,
}

/// Why a login was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LoginError {
    /// Login challenges are only for JpkiAuth and HpkiAuth.
    #[error("{0:?} is not a login purpose (JpkiAuth or HpkiAuth)")]
    NotLoginPurpose(Purpose),
    /// No trust store for the purpose was configured.
    #[error("no {0:?} trust store configured")]
    NoTrustStore(StoreKind),
    /// The nonce is already outstanding or used.
    #[error("nonce reused by the caller")]
    DuplicateNonce,
    /// No such challenge (never issued, or forgotten).
    #[error("unknown challenge")]
    UnknownChallenge,
    /// The challenge was already answered: a replay.
    #[error("challenge already used (replay)")]
    Replayed,
    /// The challenge expired before the answer.
    #[error("challenge expired at {expired_at} (unix seconds)")]
    Expired {
        /// Expiry, unix seconds.
        expired_at: i64,
    },
    /// A client-chosen expiry beyond the verifier's time to live.
    #[error("challenge expiry {expires} is past the latest allowed, {latest} (unix seconds)")]
    ExpiryTooFar {
        /// The expiry asked for.
        expires: i64,
        /// The latest allowed.
        latest: i64,
    },
    /// The signature does not verify with the certificate.
    #[error("signature refused: {0}")]
    Signature(#[from] SignatureError),
    /// The certificate was refused (chain, profile, revocation, role).
    #[error(transparent)]
    Cert(#[from] CertError),
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    purpose: Purpose,
    expires: i64,
    binding: [u8; 32],
}

/// Issues and checks login challenges. See the module docs for the order.
pub struct LoginVerifier {
    config: LoginConfig,
    profile: Profile,
    jpki: Option<TrustStore>,
    hpki: Option<TrustStore>,
    revocation: Option<Box<dyn Revocation + Send + Sync>>,
    pending: HashMap<[u8; 32], Pending>,
    pending_order: VecDeque<[u8; 32]>,
    /// Used nonces until their expiry, to name replays.
    used: HashMap<[u8; 32], i64>,
    used_order: VecDeque<[u8; 32]>,
}

impl std::fmt::Debug for LoginVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginVerifier")
            .field("config", &self.config)
            .field("pending", &self.pending.len())
            .field("used", &self.used.len())
            .finish_non_exhaustive()
    }
}

impl LoginVerifier {
    /// A verifier with no trust stores yet (add them with
    /// [`LoginVerifier::with_trust`]) and no revocation source.
    pub fn new(config: LoginConfig, profile: Profile) -> Self {
        LoginVerifier {
            config,
            profile,
            jpki: None,
            hpki: None,
            revocation: None,
            pending: HashMap::new(),
            pending_order: VecDeque::new(),
            used: HashMap::new(),
            used_order: VecDeque::new(),
        }
    }

    /// Adds the JPKI or HPKI store (others are ignored: facilities do not
    /// log in here).
    pub fn with_trust(mut self, store: TrustStore) -> Self {
        match store.kind() {
            StoreKind::Jpki => self.jpki = Some(store),
            StoreKind::Hpki => self.hpki = Some(store),
            StoreKind::Facility => {}
        }
        self
    }

    /// Checks revocation with `source` (without one, revocation is not
    /// checked: development only).
    pub fn with_revocation(mut self, source: impl Revocation + Send + Sync + 'static) -> Self {
        self.revocation = Some(Box::new(source));
        self
    }

    /// Challenges outstanding now.
    pub fn outstanding(&self) -> usize {
        self.pending.len()
    }

    fn prune(&mut self, now: i64) {
        self.pending.retain(|_, p| p.expires >= now);
        self.pending_order.retain(|n| self.pending.contains_key(n));
        self.used.retain(|_, exp| *exp >= now);
        self.used_order.retain(|n| self.used.contains_key(n));
    }

    /// A new challenge for `purpose` (JpkiAuth or HpkiAuth) with `nonce`,
    /// which must be fresh random bytes from the caller.
    pub fn challenge(
        &mut self,
        now: SystemTime,
        purpose: Purpose,
        nonce: [u8; 32],
    ) -> Result<Challenge, LoginError> {
        if !matches!(purpose, Purpose::JpkiAuth | Purpose::HpkiAuth) {
            return Err(LoginError::NotLoginPurpose(purpose));
        }
        if self.store(purpose).is_none() {
            return Err(LoginError::NoTrustStore(purpose.store()));
        }
        let t = crate::civil::unix(now);
        self.prune(t);
        if self.pending.contains_key(&nonce) || self.used.contains_key(&nonce) {
            return Err(LoginError::DuplicateNonce);
        }
        while self.pending.len() >= self.config.capacity {
            match self.pending_order.pop_front() {
                Some(old) => {
                    self.pending.remove(&old);
                }
                None => break,
            }
        }
        let ttl = i64::try_from(self.config.ttl.as_secs()).unwrap_or(i64::MAX);
        let expires = t.saturating_add(ttl);
        self.pending.insert(
            nonce,
            Pending {
                purpose,
                expires,
                binding: [0; 32],
            },
        );
        self.pending_order.push_back(nonce);
        Ok(Challenge {
            nonce,
            purpose,
            context: self.config.context.clone(),
            expires,
            binding: [0; 32],
        })
    }

    /// Registers a challenge made elsewhere: a link session's own random
    /// challenge (sent to the client in the session handshake, fresh for
    /// each session), with an expiry the client chose and signed, and the
    /// `binding` both sides know ([`Challenge::binding`]). The expiry must
    /// lie between `now` and `now + ttl`. Answer it with
    /// [`verify`](Self::verify) as any other; it is used up the same way.
    pub fn accept_challenge(
        &mut self,
        now: SystemTime,
        purpose: Purpose,
        nonce: [u8; 32],
        expires: i64,
        binding: [u8; 32],
    ) -> Result<Challenge, LoginError> {
        let t = crate::civil::unix(now);
        let ttl = i64::try_from(self.config.ttl.as_secs()).unwrap_or(i64::MAX);
        if expires < t {
            return Err(LoginError::Expired {
                expired_at: expires,
            });
        }
        if expires > t.saturating_add(ttl) {
            return Err(LoginError::ExpiryTooFar {
                expires,
                latest: t.saturating_add(ttl),
            });
        }
        let mut challenge = self.challenge(now, purpose, nonce)?;
        if let Some(p) = self.pending.get_mut(&nonce) {
            p.expires = expires;
            p.binding = binding;
        }
        challenge.expires = expires;
        challenge.binding = binding;
        Ok(challenge)
    }

    fn store(&self, purpose: Purpose) -> Option<&TrustStore> {
        match purpose.store() {
            StoreKind::Jpki => self.jpki.as_ref(),
            StoreKind::Hpki => self.hpki.as_ref(),
            StoreKind::Facility => None,
        }
    }

    fn mark_used(&mut self, nonce: [u8; 32], expires: i64) {
        while self.used.len() >= self.config.capacity {
            match self.used_order.pop_front() {
                Some(old) => {
                    self.used.remove(&old);
                }
                None => break,
            }
        }
        self.used.insert(nonce, expires);
        self.used_order.push_back(nonce);
    }

    /// Checks `response` at `now`; the challenge is used up whatever the
    /// outcome.
    pub fn verify(
        &mut self,
        now: SystemTime,
        response: &LoginResponse,
    ) -> Result<VerifiedIdentity, LoginError> {
        let t = crate::civil::unix(now);
        let nonce = response.nonce;
        let Some(pending) = self.pending.remove(&nonce) else {
            return Err(if self.used.contains_key(&nonce) {
                LoginError::Replayed
            } else {
                LoginError::UnknownChallenge
            });
        };
        self.pending_order.retain(|n| *n != nonce);
        self.mark_used(nonce, pending.expires);
        if t > pending.expires {
            return Err(LoginError::Expired {
                expired_at: pending.expires,
            });
        }
        let challenge = Challenge {
            nonce,
            purpose: pending.purpose,
            context: self.config.context.clone(),
            expires: pending.expires,
            binding: pending.binding,
        };
        let cert = ParsedCert::from_der(&response.certificate)?;
        verify_sha256(&cert, &challenge.message(), &response.signature)?;

        let store = self
            .store(pending.purpose)
            .ok_or(LoginError::NoTrustStore(pending.purpose.store()))?;
        let inters: Vec<&[u8]> = response.intermediates.iter().map(Vec::as_slice).collect();
        let chain = verify_chain(&response.certificate, &inters, store, pending.purpose, now)?;
        self.profile.check(&chain)?;
        if let Some(r) = &self.revocation {
            r.check_chain(&chain, now)?;
        }
        let roles = if pending.purpose == Purpose::HpkiAuth {
            self.profile
                .require_role(chain.leaf(), &self.config.physician_roles)?;
            self.profile.roles(chain.leaf())?
        } else {
            Vec::new()
        };
        let leaf = chain.leaf();
        let not_after = leaf.x509()?.validity().not_after.timestamp();
        Ok(VerifiedIdentity {
            purpose: pending.purpose,
            subject: leaf.subject().to_owned(),
            pseudonym: crate::cert::hex(&sha256(leaf.der())),
            roles,
            not_after,
            certificates: chain.certs().to_vec(),
        })
    }
}
