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
}

/// The server's authorisation hook: no media flows on a session until it
/// permits it.
///
/// Called on the session's task: answer promptly (ask a slow backend
/// elsewhere and deny on timeout).
pub trait Gate: Send + Sync + 'static {
    /// Decides on a session: `tokens` (unverified) were presented by `peer`
    /// and must be bound to `challenge`.
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
    /// `challenge`.
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
