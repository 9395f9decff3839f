//! Reconnecting with exponential backoff, carrying object transfers from
//! one link to the next.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use super::endpoint::{Client, ConnectError, Site};
use super::gate::Credentials;
use super::link::Link;
use super::{DriverConfig, tls};
use crate::proto::Transfers;

/// Exponential backoff with jitter: attempt `n` (from 0) waits
/// `min(max, initial × factorⁿ)`, of which the upper half is random.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct Backoff {
    /// Delay after the first failure.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
    /// Growth per attempt (at least 1).
    pub factor: u32,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(200),
            max: Duration::from_secs(10),
            factor: 2,
        }
    }
}

impl Backoff {
    /// Sets [`initial`](Self::initial).
    pub fn with_initial(mut self, v: Duration) -> Backoff {
        self.initial = v;
        self
    }
    /// Sets [`max`](Self::max).
    pub fn with_max(mut self, v: Duration) -> Backoff {
        self.max = v;
        self
    }
    /// Sets [`factor`](Self::factor) (at least 1).
    pub fn with_factor(mut self, v: u32) -> Backoff {
        self.factor = v.max(1);
        self
    }

    /// The delay before retry `attempt` (0 after the first failure);
    /// `random` is any random number (the upper half of the delay scales
    /// with it).
    pub fn delay(&self, attempt: u32, random: u32) -> Duration {
        let mut d = self.initial.min(self.max);
        for _ in 0..attempt {
            d = d.saturating_mul(self.factor.max(1)).min(self.max);
            if d == self.max {
                break;
            }
        }
        let half = d / 2;
        let jitter = half.mul_f64(f64::from(random) / f64::from(u32::MAX));
        half + jitter
    }
}

impl ConnectError {
    /// Whether trying again later may succeed: the peer did not answer, the
    /// connection was reset or timed out. Certificate and facility
    /// refusals, configuration errors and protocol failures are not.
    pub fn is_transient(&self) -> bool {
        match self {
            ConnectError::Connection(e) => matches!(
                e,
                quinn::ConnectionError::TimedOut | quinn::ConnectionError::Reset
            ),
            ConnectError::Timeout | ConnectError::Bind(_) => true,
            _ => false,
        }
    }
}

type RetryHook = Box<dyn Fn(u32, &ConnectError, Duration) + Send + Sync>;

/// Connects to one site again and again: retries transient failures with
/// [`Backoff`], and resumes the object transfers of the last link on the
/// next.
pub struct Dialer {
    addr: SocketAddr,
    site: Site,
    facility: String,
    credentials: Arc<dyn Credentials>,
    config: DriverConfig,
    backoff: Backoff,
    transfers: Transfers,
    on_retry: Option<RetryHook>,
}

impl fmt::Debug for Dialer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Dialer")
            .field("addr", &self.addr)
            .field("facility", &self.facility)
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

impl Dialer {
    /// A dialer for the site at `addr` whose certificate names `facility`.
    pub fn new(
        addr: SocketAddr,
        site: Site,
        facility: impl Into<String>,
        credentials: Arc<dyn Credentials>,
        config: DriverConfig,
    ) -> Dialer {
        Dialer {
            addr,
            site,
            facility: facility.into(),
            credentials,
            config,
            backoff: Backoff::default(),
            transfers: Transfers::new(),
            on_retry: None,
        }
    }

    /// Sets the backoff.
    pub fn with_backoff(mut self, backoff: Backoff) -> Dialer {
        self.backoff = backoff;
        self
    }

    /// Calls `hook(attempt, error, delay)` before each retry (to log it).
    pub fn on_retry(
        mut self,
        hook: impl Fn(u32, &ConnectError, Duration) + Send + Sync + 'static,
    ) -> Dialer {
        self.on_retry = Some(Box::new(hook));
        self
    }

    /// Connects, retrying transient failures up to `max_attempts` attempts
    /// in all (`None`: until it succeeds or fails for good). Objects not
    /// delivered on the last link are offered again.
    pub async fn connect(&mut self, max_attempts: Option<u32>) -> Result<Link, ConnectError> {
        let mut attempt = 0u32;
        loop {
            let transfers = self.transfers.clone();
            let result = Client::resume(
                self.addr,
                &self.site,
                &self.facility,
                self.credentials.clone(),
                &self.config,
                transfers,
            )
            .await;
            let error = match result {
                Ok(link) => {
                    // The link owns them now; they come back through
                    // `link_ended`.
                    self.transfers = Transfers::new();
                    return Ok(link);
                }
                Err(e) => e,
            };
            attempt = attempt.saturating_add(1);
            if !error.is_transient() || max_attempts.is_some_and(|m| attempt >= m) {
                return Err(error);
            }
            let mut random = [0u8; 4];
            // Without randomness the delay is the lower half: still a backoff.
            let _ = tls::random_bytes(&mut random);
            let delay = self.backoff.delay(attempt - 1, u32::from_le_bytes(random));
            if let Some(hook) = &self.on_retry {
                hook(attempt, &error, delay);
            }
            tokio::time::sleep(delay).await;
        }
    }

    /// Takes an ended (or ending) link back: its session is closed if still
    /// open, and its object transfers resume on the next
    /// [`connect`](Self::connect).
    pub async fn link_ended(&mut self, link: Link) {
        self.transfers = link.into_transfers().await;
    }
}
