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
//!
//! An older frame whose header has not been seen at all (its stream's
//! reader is a little behind, or its first packet is being repaired) is a
//! gap: newer frames wait for it too, but only two round trips and a few
//! milliseconds, since a frame the sender dropped unsent never comes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use super::budget::Reserved;

/// A complete frame's payload and its share of the frame buffer budget.
pub(crate) type Payload = (Vec<u8>, Option<Reserved>);

/// A gap's wait beyond two round trips.
const GAP_SLACK: Duration = Duration::from_millis(5);

/// Sequence numbers remembered above a channel's base at most; beyond, the
/// gap below them is given up (a peer skipping numbers cannot grow this).
const MAX_SEEN: usize = 1024;

#[derive(Debug)]
struct Held {
    payload: Payload,
    release: Instant,
}

/// Which sequence numbers of a channel have shown up. Frames travel on
/// streams of their own, each read by its own task, so a newer frame's
/// header can reach the session's task before an older one's: a number
/// not seen yet below a complete frame is a gap the frame waits for, as it
/// waits for a frame still arriving.
#[derive(Debug, Default)]
struct Seen {
    /// Every number below is accounted for (header seen, or given up).
    base: u64,
    /// Numbers at or above `base` seen so far.
    above: BTreeSet<u64>,
    /// Since when `base` has been missing while a newer number was seen.
    missing_since: Option<Instant>,
}

impl Seen {
    fn starting_at(seq: u64) -> Seen {
        Seen {
            base: seq,
            ..Seen::default()
        }
    }

    fn see(&mut self, now: Instant, seq: u64) {
        if seq < self.base {
            return;
        }
        self.above.insert(seq);
        self.advance();
        if self.gap_below(u64::MAX) && self.missing_since.is_none() {
            self.missing_since = Some(now);
        }
        if self.above.len() > MAX_SEEN {
            self.give_up();
        }
    }

    /// Moves `base` over the numbers seen (a peer's number may be
    /// `u64::MAX`: the base then stays on it).
    fn advance(&mut self) {
        while self.above.contains(&self.base) {
            self.missing_since = None;
            match self.base.checked_add(1) {
                Some(next) => {
                    self.above.remove(&self.base);
                    self.base = next;
                }
                None => break,
            }
        }
    }

    /// Whether a number below `seq` is missing.
    fn gap_below(&self, seq: u64) -> bool {
        self.above.first().is_some_and(|_| self.base < seq)
    }

    /// Gives up the numbers missing below the lowest one seen.
    fn give_up(&mut self) {
        if let Some(&first) = self.above.first() {
            self.base = first;
            self.advance();
        }
    }

    /// Gives up gaps missing for `wait` or longer.
    fn expire(&mut self, now: Instant, wait: Duration) {
        while let Some(since) = self.missing_since
            && now.saturating_duration_since(since) >= wait
        {
            self.give_up();
            // Later gaps were noticed no earlier: they keep the same start
            // only if one remains.
            self.missing_since = self.gap_below(u64::MAX).then_some(since);
        }
    }

    /// When the gap below `seq`, if any, is given up.
    fn gap_deadline(&self, seq: u64, wait: Duration) -> Option<Instant> {
        if !self.gap_below(seq) {
            return None;
        }
        self.missing_since.map(|since| since + wait)
    }
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
    seen: BTreeMap<u16, Seen>,
    /// How long a gap may stay open: a couple of round trips (a header
    /// packet lost and repaired, a reader task a little behind), never
    /// `wait`: a number the sender gave up before sending never shows up,
    /// and every frame after it would wait.
    gap_wait: Duration,
}

impl Reorder {
    pub(crate) fn new(wait: Duration, max_age: Duration) -> Reorder {
        Reorder {
            wait,
            max_age,
            arriving: BTreeMap::new(),
            held: BTreeMap::new(),
            seen: BTreeMap::new(),
            gap_wait: GAP_SLACK.min(wait),
        }
    }

    /// The path's round trip changed: gaps wait two of them plus
    /// [`GAP_SLACK`], at most the reorder wait.
    pub(crate) fn set_round_trip(&mut self, rtt: Duration) {
        self.gap_wait = (rtt * 2 + GAP_SLACK).min(self.wait);
    }

    fn see(&mut self, now: Instant, channel: u16, seq: u64) {
        self.seen
            .entry(channel)
            .or_insert_with(|| Seen::starting_at(seq))
            .see(now, seq);
    }

    /// Frame `channel`/`seq`'s header arrived.
    pub(crate) fn header(&mut self, now: Instant, channel: u16, seq: u64, payload_len: u32) {
        if self.wait.is_zero() {
            return;
        }
        self.expire(now);
        self.see(now, channel, seq);
        if payload_len > 0 {
            self.arriving.insert((channel, seq), now);
        }
    }

    /// Frame `channel`/`seq` will not arrive (reset, timed out).
    pub(crate) fn ended(&mut self, channel: u16, seq: u64) {
        self.arriving.remove(&(channel, seq));
    }

    /// Whether frame `channel`/`seq` must wait, and until when at most.
    fn blocked_until(&self, now: Instant, channel: u16, seq: u64) -> Option<Instant> {
        let arriving = self
            .arriving
            .range((channel, 0)..(channel, seq))
            .map(|(_, at)| *at + self.max_age)
            .min();
        let gap = self
            .seen
            .get(&channel)
            .and_then(|s| s.gap_deadline(seq, self.gap_wait));
        match (arriving, gap) {
            (None, None) => None,
            (a, g) => {
                let until = a.into_iter().chain(g).min().unwrap_or(now);
                Some(until)
            }
        }
    }

    /// Frame `channel`/`seq`'s payload is whole: returned to feed the
    /// session now, or held (`None`) while older frames arrive or a gap
    /// below it may still fill.
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
        self.see(now, channel, seq);
        let Some(until) = self.blocked_until(now, channel, seq) else {
            // Nothing older is arriving or missing: feed it now.
            return Some(payload);
        };
        let release = (now + self.wait).min(until);
        if release <= now {
            return Some(payload);
        }
        self.held.insert((channel, seq), Held { payload, release });
        None
    }

    /// Held frames to feed now, oldest first: those no older frame is
    /// arriving or missing before any more, and those whose wait is over.
    pub(crate) fn release(&mut self, now: Instant) -> Vec<(u16, u64, Payload)> {
        if self.held.is_empty() {
            return Vec::new();
        }
        self.expire(now);
        let mut out = Vec::new();
        let keys: Vec<(u16, u64)> = self.held.keys().copied().collect();
        for (channel, seq) in keys {
            let blocked = self.blocked_until(now, channel, seq).is_some();
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
    /// a reader that ended silently leaves one behind) and gaps past the
    /// wait (a frame the sender never sent).
    fn expire(&mut self, now: Instant) {
        let max_age = self.max_age;
        self.arriving
            .retain(|_, at| now.saturating_duration_since(*at) < max_age);
        for seen in self.seen.values_mut() {
            seen.expire(now, self.gap_wait);
        }
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
    fn a_newer_frame_waits_for_an_older_header_not_seen_yet() {
        let mut r = Reorder::new(WAIT, AGE);
        let t = Instant::now();
        r.header(t, 0, 1, 10);
        assert!(r.complete(t, 0, 1, payload(1)).is_some());
        // Frame 3's stream was read before frame 2's: 2 is a gap.
        r.header(t, 0, 3, 10);
        assert!(r.complete(t, 0, 3, payload(3)).is_none());
        assert_eq!(r.next_release(), Some(t + GAP_SLACK));
        r.header(t, 0, 2, 10);
        assert!(r.release(t).is_empty(), "2 is arriving now");
        assert!(r.complete(t, 0, 2, payload(2)).is_some());
        assert_eq!(seqs(&r.release(t)), vec![3]);
        // No gap left: the next frame goes straight through.
        r.header(t, 0, 4, 10);
        assert!(r.complete(t, 0, 4, payload(4)).is_some());
    }

    #[test]
    fn a_gap_that_never_fills_is_given_up_after_two_round_trips() {
        let mut r = Reorder::new(WAIT, AGE);
        let rtt = Duration::from_millis(20);
        r.set_round_trip(rtt);
        let gap_wait = rtt * 2 + GAP_SLACK;
        let t = Instant::now();
        r.header(t, 0, 1, 10);
        assert!(r.complete(t, 0, 1, payload(1)).is_some());
        // The sender never sent 2 (cancelled in its queue).
        r.header(t, 0, 3, 10);
        assert!(r.complete(t, 0, 3, payload(3)).is_none());
        assert_eq!(r.next_release(), Some(t + gap_wait));
        let later = t + gap_wait / 2;
        r.header(later, 0, 4, 10);
        assert!(r.complete(later, 0, 4, payload(4)).is_none());
        assert!(r.release(later).is_empty());
        // Both go when the gap's wait (counted from when it was first
        // missed) is over, and later frames are not held any more.
        let end = t + gap_wait;
        assert_eq!(seqs(&r.release(end)), vec![3, 4]);
        r.header(end, 0, 5, 10);
        assert!(r.complete(end, 0, 5, payload(5)).is_some());
    }

    #[test]
    fn a_peer_skipping_numbers_cannot_grow_the_bookkeeping() {
        let mut r = Reorder::new(WAIT, AGE);
        let t = Instant::now();
        for i in 0..(3 * MAX_SEEN as u64) {
            r.header(t, 0, i * 2, 0);
        }
        assert!(r.seen.get(&0).is_some_and(|s| s.above.len() <= MAX_SEEN));
    }

    #[test]
    fn the_last_sequence_number_does_not_overflow() {
        // A hostile peer's numbers: the largest first, then around it.
        let mut r = Reorder::new(WAIT, AGE);
        let t = Instant::now();
        for seq in [u64::MAX, u64::MAX - 1, 0, u64::MAX] {
            r.header(t, 0, seq, 10);
            let _ = r.complete(t, 0, seq, payload(1));
        }
        let _ = r.release(t + AGE);
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
