//! Link statistics: what [`Link::stats`](super::Link::stats) returns, the
//! figures the session's task shares with the host's handle, and the
//! transport figures sent to the peer every
//! [`DriverConfig::stats_interval`](super::DriverConfig::stats_interval).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::budget::{Budget, Overall};
use quinn::Connection;

use super::watchdog::Progress;
use crate::proto::{LinkStats, SessionStats, TransportStats};

/// A link's figures at one moment ([`Link::stats`](super::Link::stats)).
///
/// Transport figures come from quinn (the whole connection, both
/// directions); frame figures from the session (live frames this end sent
/// and received); `peer` is the last report the peer sent (its own view:
/// what it received from this end).
#[derive(Debug, Clone, Copy, PartialEq, Default)]
#[non_exhaustive]
pub struct LinkStatsSnapshot {
    /// Smoothed round-trip time.
    pub rtt: Duration,
    /// Smallest round-trip time seen.
    pub min_rtt: Duration,
    /// Current congestion window, bytes.
    pub congestion_window: u64,
    /// QUIC packets sent.
    pub packets_sent: u64,
    /// QUIC packets declared lost (and resent where reliable).
    pub packets_lost: u64,
    /// UDP bytes sent.
    pub bytes_sent: u64,
    /// UDP bytes received.
    pub bytes_received: u64,
    /// Application bytes received: live frame payloads and object data.
    pub app_bytes_received: u64,
    /// Live frame counters of the session (sent, delivered, late, lost…).
    pub frames: SessionStats,
    /// Bytes of incoming frame payloads held by readers right now (at most
    /// [`DriverConfig::frame_buffer_budget`](super::DriverConfig::frame_buffer_budget)).
    pub frame_bytes_buffered: u64,
    /// The peer's last report of the link, if any came.
    pub peer: Option<LinkStats>,
    /// Bytes of delivered frames waiting for the host
    /// ([`Link::next_event`](super::Link::next_event)), at most
    /// [`DriverConfig::frame_buffer_budget`](super::DriverConfig::frame_buffer_budget).
    pub frame_bytes_queued: u64,
    /// Frames delivered by the session but dropped because the host left
    /// too many unread (counted delivered in `frames` too).
    pub frames_unread: u64,
    /// The largest UDP payload the connection sends now, bytes (1200 at
    /// first, then what path MTU discovery found, at most
    /// [`DriverConfig::max_udp_payload`](super::DriverConfig::max_udp_payload)).
    pub udp_payload: u16,
}

impl LinkStatsSnapshot {
    /// Packet loss so far, parts per million of packets sent.
    pub fn loss_ppm(&self) -> u32 {
        ppm(self.packets_lost, self.packets_sent)
    }
}

fn ppm(part: u64, whole: u64) -> u32 {
    if whole == 0 {
        return 0;
    }
    let v = u128::from(part) * 1_000_000 / u128::from(whole);
    u32::try_from(v.min(1_000_000)).unwrap_or(1_000_000)
}

/// What the session's task updates and the [`Link`](super::Link) reads.
#[derive(Debug, Default)]
struct Figures {
    frames: SessionStats,
    peer: Option<LinkStats>,
    app_bytes_received: u64,
    frame_bytes_queued: usize,
    frames_unread: u64,
}

/// Shared between the session's task, its frame readers and the host's
/// handle.
#[derive(Debug)]
pub(crate) struct Shared {
    conn: Connection,
    figures: Mutex<Figures>,
    /// Bytes of frame payload readers may hold (this link's, and the
    /// server's overall budget).
    pub(crate) frame_bytes: Budget,
    budget: usize,
    /// What the frame and object writers got acknowledged (the watchdog's
    /// measure).
    pub(crate) progress: Progress,
}

impl Shared {
    pub(crate) fn new(conn: Connection, budget: usize, overall: Option<Arc<Overall>>) -> Shared {
        Shared {
            conn,
            figures: Mutex::new(Figures::default()),
            frame_bytes: Budget::new(budget, overall),
            budget,
            progress: Progress::default(),
        }
    }

    fn figures(&self) -> std::sync::MutexGuard<'_, Figures> {
        self.figures.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_frames(&self, frames: SessionStats) {
        self.figures().frames = frames;
    }

    pub(crate) fn set_peer(&self, peer: LinkStats) {
        self.figures().peer = Some(peer);
    }

    pub(crate) fn add_app_bytes(&self, n: usize) {
        let mut f = self.figures();
        f.app_bytes_received = f.app_bytes_received.saturating_add(n as u64);
    }

    /// Counts a frame event of `len` bytes queued for the host; `false`
    /// (and counted unread) if it would exceed the budget.
    pub(crate) fn queue_frame(&self, len: usize) -> bool {
        let mut f = self.figures();
        if f.frame_bytes_queued.saturating_add(len) > self.budget
            || !self.frame_bytes.queue_overall(len)
        {
            f.frames_unread += 1;
            return false;
        }
        f.frame_bytes_queued += len;
        true
    }

    /// A queued frame event of `len` bytes left the queue: taken by the
    /// host, or (`dropped`) not queued after all.
    pub(crate) fn unqueue_frame(&self, len: usize, dropped: bool) {
        let mut f = self.figures();
        f.frame_bytes_queued = f.frame_bytes_queued.saturating_sub(len);
        self.frame_bytes.unqueue_overall(len);
        if dropped {
            f.frames_unread += 1;
        }
    }

    pub(crate) fn snapshot(&self) -> LinkStatsSnapshot {
        let s = self.conn.stats();
        let f = self.figures();
        let buffered = self.budget.saturating_sub(self.frame_bytes.available());
        LinkStatsSnapshot {
            rtt: s.path.rtt,
            min_rtt: s.path.min_rtt,
            congestion_window: s.path.cwnd,
            packets_sent: s.path.sent_packets,
            packets_lost: s.path.lost_packets,
            bytes_sent: s.udp_tx.bytes,
            bytes_received: s.udp_rx.bytes,
            app_bytes_received: f.app_bytes_received,
            frames: f.frames,
            frame_bytes_buffered: buffered as u64,
            peer: f.peer,
            frame_bytes_queued: f.frame_bytes_queued as u64,
            frames_unread: f.frames_unread,
            udp_payload: s.path.current_mtu,
        }
    }
}

/// Turns successive snapshots into the figures of the last interval, for
/// the peer's report.
#[derive(Debug)]
pub(crate) struct Reporter {
    at: Instant,
    last: LinkStatsSnapshot,
}

impl Reporter {
    pub(crate) fn new(shared: &Shared) -> Reporter {
        Reporter {
            at: Instant::now(),
            last: shared.snapshot(),
        }
    }

    /// The transport figures since the last call.
    pub(crate) fn next(&mut self, shared: &Shared) -> TransportStats {
        let now = Instant::now();
        let s = shared.snapshot();
        let secs = now.duration_since(self.at).as_secs_f64();
        let bytes = s
            .app_bytes_received
            .saturating_sub(self.last.app_bytes_received);
        let goodput_bps = if secs > 0.0 {
            (bytes as f64 * 8.0 / secs) as u64
        } else {
            0
        };
        let loss_ppm = ppm(
            s.packets_lost.saturating_sub(self.last.packets_lost),
            s.packets_sent.saturating_sub(self.last.packets_sent),
        );
        self.at = now;
        self.last = s;
        TransportStats {
            rtt: s.rtt,
            loss_ppm,
            goodput_bps,
        }
    }
}
