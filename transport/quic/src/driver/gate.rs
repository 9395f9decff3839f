//! The consent gate's hook, the client's credentials, and the handle that
//! closes a live session.

use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::watch;

use crate::proto::{AuthDecision, CHALLENGE_LEN, CloseReason, Hello, Token};

/// Who is on the other end of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The facility the peer's certificate names (verified in the TLS
    /// handshake).
    pub facility: String,
    /// The peer's hello (its `site_id` equals `facility`: the driver
    /// refuses a session where it does not).
    pub hello: Hello,
    /// The peer's UDP address.
    pub remote: SocketAddr,
    /// This session, unique in this process: what
    /// [`Gate::authorise`] and [`Gate::opened`] of one session share (two
    /// sessions may come from one facility and one address).
    pub session: u64,
}

/// The label of the TLS exporter value a session's challenge is bound to
/// ([`bind_challenge`]).
pub const CHALLENGE_EXPORTER_LABEL: &[u8] = b"EXPORTER-med8k-session-challenge";

/// The challenge the gate and the credentials see: SHA-256 of the
/// session's random challenge and the TLS exporter value of the connection
/// it travels on ([RFC 5705], label [`CHALLENGE_EXPORTER_LABEL`], the
/// challenge as context). Both ends of one TLS connection compute the same
/// value; a facility that relays a challenge to another connection (to have
/// someone there sign it) gets a different one, so a relayed login does not
/// verify.
///
/// [RFC 5705]: https://www.rfc-editor.org/rfc/rfc5705
pub fn bind_challenge(challenge: &[u8; CHALLENGE_LEN], exporter: &[u8; 32]) -> [u8; CHALLENGE_LEN] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(b"med8k session challenge v1\0");
    h.update(challenge);
    h.update(exporter);
    h.finalize().into()
}

/// The server's authorisation hook: no media flows on a session until it
/// permits it.
///
/// Called on the session's task: answer promptly (ask a slow backend
/// elsewhere and deny on timeout).
pub trait Gate: Send + Sync + 'static {
    /// Decides on a session: `tokens` (unverified) were presented by `peer`
    /// and must be bound to `challenge`, which the driver has already bound
    /// to the TLS connection ([`bind_challenge`]).
    fn authorise(
        &self,
        peer: &PeerInfo,
        challenge: &[u8; CHALLENGE_LEN],
        tokens: &[Token],
    ) -> AuthDecision;

    /// The session opened after a permit; keep `control` to revoke it later
    /// ([`SessionControl::revoke`]). The default drops it.
    fn opened(&self, peer: &PeerInfo, control: SessionControl) {
        let _ = (peer, control);
    }
}

/// The client's side of authorisation: tokens signed over the server's
/// challenge.
pub trait Credentials: Send + Sync + 'static {
    /// Tokens for the session with `server` (its hello), bound to
    /// `challenge` (already bound to the TLS connection:
    /// [`bind_challenge`]).
    fn tokens(&self, server: &Hello, challenge: &[u8; CHALLENGE_LEN]) -> Vec<Token>;
}

impl<F> Credentials for F
where
    F: Fn(&Hello, &[u8; CHALLENGE_LEN]) -> Vec<Token> + Send + Sync + 'static,
{
    fn tokens(&self, server: &Hello, challenge: &[u8; CHALLENGE_LEN]) -> Vec<Token> {
        self(server, challenge)
    }
}

/// A request to end a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseRequest {
    pub(crate) reason: CloseReason,
    pub(crate) detail: String,
}

/// Closes a live session from anywhere (the gate on revocation, the host on
/// shutdown). Cheap to clone; never blocks; the session's task acts on it
/// at once (the peer learns within a round trip).
#[derive(Clone)]
pub struct SessionControl {
    tx: watch::Sender<Option<CloseRequest>>,
    /// Why the connection was lost, when it was (not a close by either end).
    lost: Arc<Mutex<Option<String>>>,
}

impl fmt::Debug for SessionControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionControl")
            .field("closing", &self.tx.borrow().is_some())
            .finish()
    }
}

impl SessionControl {
    /// A handle attached to no session, for a host that drives its gate
    /// without a connection (a test of [`Gate::opened`] and revocation):
    /// [`SessionControl::is_closing`] tells whether it was closed.
    pub fn detached() -> SessionControl {
        let (control, rx) = SessionControl::new();
        // Kept open, as a live session's would be.
        std::mem::forget(rx);
        control
    }

    pub(crate) fn new() -> (SessionControl, watch::Receiver<Option<CloseRequest>>) {
        let (tx, rx) = watch::channel(None);
        let lost = Arc::new(Mutex::new(None));
        (SessionControl { tx, lost }, rx)
    }

    /// The connection or its control stream failed under the session.
    pub(crate) fn mark_lost(&self, detail: &str) {
        let mut lost = self.lost.lock().unwrap_or_else(PoisonError::into_inner);
        lost.get_or_insert_with(|| detail.to_owned());
    }

    /// Why the session's connection was lost (an idle timeout, a reset),
    /// when it ended that way rather than by a close from either end.
    pub fn lost(&self) -> Option<String> {
        self.lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Ends the session with `reason`; `detail` goes to the peer (no patient
    /// data). Later calls do nothing.
    pub fn close(&self, reason: CloseReason, detail: impl Into<String>) {
        let detail = detail.into();
        self.tx.send_if_modified(|slot| {
            if slot.is_some() {
                return false;
            }
            *slot = Some(CloseRequest { reason, detail });
            true
        });
    }

    /// Consent was withdrawn: closes with [`CloseReason::ConsentRevoked`].
    pub fn revoke(&self, detail: impl Into<String>) {
        self.close(CloseReason::ConsentRevoked, detail);
    }

    /// Whether a close was requested.
    pub fn is_closing(&self) -> bool {
        self.tx.borrow().is_some()
    }

    /// Whether the session's task has ended (closed by either end, or the
    /// connection lost).
    pub fn is_ended(&self) -> bool {
        self.tx.is_closed()
    }
}
