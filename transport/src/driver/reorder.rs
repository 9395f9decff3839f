//! Holding a complete live frame back, for a bounded time, while older
//! frames of its channel are still arriving
//! ([`DriverConfig::frame_reorder_wait`](super::DriverConfig::frame_reorder_wait)).
//!
//! The session delivers the newest complete frame at once and gives up on
//! older ones still arriving. Under random loss with a round trip longer
//! than the frame interval, that loses most frames that needed a
//! retransmission: the next frame, sent one interval later, completes
//! before the repair arrives. Holding the newer frame until the older ones
//! complete (or are reset, or their wait is over) delivers both, in order;
//! no frame is held past the oldest older frame's deadline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use tokio::sync::OwnedSemaphorePermit;

/// A complete frame's payload and its share of the frame buffer budget.
pub(crate) type Payload = (Vec<u8>, Option<OwnedSemaphorePermit>);

#[derive(Debug)]
struct Held {
    payload: Payload,
    release: Instant,
}

/// Frames arriving and frames held, per channel and sequence number.
#[derive(Debug)]
pub(crate) struct Reorder {
    wait: Duration,
    /// How long a frame may arrive (the session's frame deadline).
    max_age: Duration,
    /// Header arrival of each frame whose payload is still arriving.
    arriving: BTreeMap<(u16, u64), Instant>,
    held: BTreeMap<(u16, u64), Held>,
}

impl Reorder {
    pub(crate) fn new(wait: Duration, max_age: Duration) -> Reorder {
        Reorder {
            wait,
            max_age,
            arriving: BTreeMap::new(),
            held: BTreeMap::new(),
        }
    }

    /// Frame `channel`/`seq`'s header arrived.
    pub(crate) fn header(&mut self, now: Instant, channel: u16, seq: u64, payload_len: u32) {
        if self.wait.is_zero() || payload_len == 0 {
            return;
        }
        self.expire(now);
        self.arriving.insert((channel, seq), now);
    }

    /// Frame `channel`/`seq` will not arrive (reset, timed out).
    pub(crate) fn ended(&mut self, channel: u16, seq: u64) {
        self.arriving.remove(&(channel, seq));
    }

    /// Frame `channel`/`seq`'s payload is whole: returned to feed the
    /// session now, or held (`None`) while older frames arrive.
    pub(crate) fn complete(
        &mut self,
        now: Instant,
        channel: u16,
        seq: u64,
        payload: Payload,
    ) -> Option<Payload> {
        self.arriving.remove(&(channel, seq));
        if self.wait.is_zero() {
            return Some(payload);
        }
        self.expire(now);
        let oldest = self
            .arriving
            .range((channel, 0)..(channel, seq))
            .map(|(_, at)| *at)
            .min();
        let Some(oldest) = oldest else {
            // Nothing older is arriving: feed it now.
            return Some(payload);
        };
        let release = (now + self.wait).min(oldest + self.max_age);
        self.held.insert((channel, seq), Held { payload, release });
        None
    }

    /// Held frames to feed now, oldest first: those no older frame is
    /// arriving before any more, and those whose wait is over.
    pub(crate) fn release(&mut self, now: Instant) -> Vec<(u16, u64, Payload)> {
        if self.held.is_empty() {
            return Vec::new();
        }
        self.expire(now);
        let mut out = Vec::new();
        let keys: Vec<(u16, u64)> = self.held.keys().copied().collect();
        for (channel, seq) in keys {
            let blocked = self
                .arriving
                .range((channel, 0)..(channel, seq))
                .next()
                .is_some();
            let due = self
                .held
                .get(&(channel, seq))
                .is_some_and(|h| h.release <= now);
            if (!blocked || due)
                && let Some(h) = self.held.remove(&(channel, seq))
            {
                out.push((channel, seq, h.payload));
            }
        }
        out
    }

    /// When the next held frame's wait is over.
    pub(crate) fn next_release(&self) -> Option<Instant> {
        self.held.values().map(|h| h.release).min()
    }

    /// Forgets frames past their deadline (the session declares them lost;
    /// a reader that ended silently leaves one behind).
    fn expire(&mut self, now: Instant) {
        let max_age = self.max_age;
        self.arriving
            .retain(|_, at| now.saturating_duration_since(*at) < max_age);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payload(n: u8) -> Payload {
        (vec![n], None)
    }

    fn seqs(out: &[(u16, u64, Payload)]) -> Vec<u64> {
        out.iter().map(|(_, s, _)| *s).collect()
    }

    const WAIT: Duration = Duration::from_millis(100);
    const AGE: Duration = Duration::from_millis(250);

    #[test]
    fn without_a_wait_frames_go_straight_through() {
        let mut r = Reorder::new(Duration::ZERO, AGE);
        let t = Instant::now();
        r.header(t, 0, 1, 10);
        r.header(t, 0, 2, 10);
        assert!(r.complete(t, 0, 2, payload(2)).is_some());
        assert!(r.next_release().is_none());
    }

    #[test]
    fn a_newer_frame_waits_for_an_older_one_then_both_go_in_order() {
        let mut r = Reorder::new(WAIT, AGE);
        let t = Instant::now();
        r.header(t, 0, 1, 10);
        r.header(t, 0, 2, 10);
        r.header(t, 1, 0, 10);
        // Another channel does not wait for channel 0.
        assert!(r.complete(t, 1, 0, payload(0)).is_some());
        assert!(r.complete(t, 0, 2, payload(2)).is_none());
        assert_eq!(r.next_release(), Some(t + WAIT));
        assert!(r.release(t).is_empty());
        // The older frame completes: it goes now, the held one after it.
        assert!(r.complete(t, 0, 1, payload(1)).is_some());
        assert_eq!(seqs(&r.release(t)), vec![2]);
        assert!(r.next_release().is_none());
    }

    #[test]
    fn a_reset_or_the_end_of_the_wait_releases_a_held_frame() {
        let mut r = Reorder::new(WAIT, AGE);
        let t = Instant::now();
        for seq in 1..=4 {
            r.header(t, 0, seq, 10);
        }
        assert!(r.complete(t, 0, 2, payload(2)).is_none());
        r.ended(0, 1);
        assert_eq!(seqs(&r.release(t)), vec![2]);
        assert!(r.complete(t, 0, 4, payload(4)).is_none());
        assert!(r.release(t + WAIT / 2).is_empty());
        assert_eq!(seqs(&r.release(t + WAIT)), vec![4]);
    }

    #[test]
    fn no_frame_is_held_past_the_older_frames_deadline() {
        let mut r = Reorder::new(Duration::from_secs(10), AGE);
        let t = Instant::now();
        r.header(t, 0, 1, 10);
        let later = t + Duration::from_millis(200);
        r.header(later, 0, 2, 10);
        assert!(r.complete(later, 0, 2, payload(2)).is_none());
        assert_eq!(r.next_release(), Some(t + AGE));
        // Past its deadline the older frame no longer blocks anything.
        assert_eq!(seqs(&r.release(t + AGE)), vec![2]);
        r.header(t + AGE, 0, 3, 10);
        assert!(r.complete(t + AGE, 0, 3, payload(3)).is_some());
    }
}
