//! A connection stuck after an outage, told apart from a slow one.
//!
//! During a blackout a sender's packets go unacknowledged: QUIC's probe
//! timeout doubles with each probe that goes unanswered (RFC 9002 §6.2.1,
//! uncapped in quinn), and the congestion window stays full of packets
//! that will never be acknowledged, so nothing new may be sent until the
//! next probe. After a 3 s outage that probe can come 3 s after the path
//! is back (measured in the soak test: a live channel back after 3.8 s).
//!
//! The watchdog sees the outage end from the other side: the peer's
//! packets arrive again (its keep-alives keep coming while it waits, its
//! own window being nearly empty) after a silence of at least
//! [`SILENCE`], yet nothing this end sent is acknowledged for
//! [`RECOVER`] after that (no frame acknowledged whole, no object bytes
//! taken), while something waits to be sent. The connection is then
//! stuck, not slow: the client closes the session so that its dialer
//! connects afresh (a new connection starts with an empty window, and the
//! path is known to be back). A server cannot dial: it only watches.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A receive silence at least this long is an outage (or an idle peer:
/// the keep-alive interval is well below it).
pub(crate) const SILENCE: Duration = Duration::from_millis(500);
/// How long after the peer is heard again this end's data may stay
/// unacknowledged before the connection counts as stuck (plus two round
/// trips).
pub(crate) const RECOVER: Duration = Duration::from_millis(200);
/// How often the watchdog looks.
pub(crate) const PERIOD: Duration = Duration::from_millis(50);

/// Progress counters the frame and object writers keep.
#[derive(Debug, Default)]
pub(crate) struct Progress {
    /// Frames acknowledged whole, object pieces taken by the connection.
    acked: AtomicU64,
    /// Frame and object writes under way.
    writing: AtomicU64,
}

impl Progress {
    /// A write began; the guard marks its end.
    pub(crate) fn start(&self) -> Writing<'_> {
        self.writing.fetch_add(1, Ordering::AcqRel);
        Writing(self)
    }

    /// Something this end sent was acknowledged (or taken).
    pub(crate) fn acked(&self) {
        self.acked.fetch_add(1, Ordering::AcqRel);
    }
}

/// A write under way; ends when dropped.
#[derive(Debug)]
pub(crate) struct Writing<'a>(&'a Progress);

impl Drop for Writing<'_> {
    fn drop(&mut self) {
        self.0.writing.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The watchdog's view.
#[derive(Debug)]
pub(crate) struct Watchdog {
    received: u64,
    received_at: Instant,
    /// When the peer was heard again after a silence.
    heard_again: Option<Instant>,
    acked: u64,
    acked_at: Instant,
}

impl Watchdog {
    pub(crate) fn new(now: Instant) -> Watchdog {
        Watchdog {
            received: 0,
            received_at: now,
            heard_again: None,
            acked: 0,
            acked_at: now,
        }
    }

    /// Looks at the datagrams received so far and the writers' progress;
    /// true if the connection is stuck.
    pub(crate) fn check(
        &mut self,
        now: Instant,
        datagrams_received: u64,
        progress: &Progress,
        rtt: Duration,
    ) -> bool {
        if datagrams_received != self.received {
            let silence = now.saturating_duration_since(self.received_at);
            if silence >= SILENCE.max(rtt * 3) {
                self.heard_again = Some(now);
            }
            self.received = datagrams_received;
            self.received_at = now;
        }
        let acked = progress.acked.load(Ordering::Acquire);
        if acked != self.acked {
            self.acked = acked;
            self.acked_at = now;
            self.heard_again = None;
        }
        let waiting = progress.writing.load(Ordering::Acquire) > 0;
        match self.heard_again {
            Some(back) if waiting && self.acked_at < back => {
                now.saturating_duration_since(back) >= RECOVER + rtt * 2
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stuck_only_when_the_peer_is_back_and_nothing_of_ours_is_acknowledged() {
        let t = Instant::now();
        let rtt = Duration::from_millis(20);
        let p = Progress::default();
        let _w = p.start();
        let mut w = Watchdog::new(t);
        assert!(!w.check(t, 1, &p, rtt));
        // An outage: nothing for a second.
        let back = t + Duration::from_secs(1);
        assert!(!w.check(back, 2, &p, rtt), "heard again, not yet stuck");
        assert!(!w.check(back + RECOVER, 3, &p, rtt));
        assert!(w.check(back + RECOVER + rtt * 2, 4, &p, rtt), "stuck");

        // The same outage, but our data is acknowledged soon after.
        let mut w = Watchdog::new(t);
        assert!(!w.check(t, 1, &p, rtt));
        assert!(!w.check(back, 2, &p, rtt));
        p.acked();
        assert!(!w.check(back + Duration::from_millis(10), 3, &p, rtt));
        assert!(!w.check(back + Duration::from_secs(1), 4, &p, rtt));
    }

    #[test]
    fn an_idle_link_or_a_short_gap_is_never_stuck() {
        let t = Instant::now();
        let rtt = Duration::from_millis(20);
        let p = Progress::default();
        // Nothing being written: an outage ends and nothing is stuck.
        let mut w = Watchdog::new(t);
        assert!(!w.check(t + Duration::from_secs(2), 1, &p, rtt));
        assert!(!w.check(t + Duration::from_secs(3), 1, &p, rtt));
        // Packets every 100 ms: no outage.
        let _w = p.start();
        let mut w = Watchdog::new(t);
        for i in 0..50u32 {
            let now = t + Duration::from_millis(100) * i;
            assert!(!w.check(now, u64::from(i), &p, rtt));
        }
    }
}
