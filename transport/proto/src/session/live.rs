//! Live frame bookkeeping: the sender's queue (newest first, deadlines) and
//! the receiver's tracking (sequence numbers, deadlines, gaps, latest frame
//! wins), both in bounded memory.
//!
//! # The receiver's rules, per channel
//! - Every sequence number at or below `floor` is settled: delivered, or
//!   declared lost. A header for one is stale: ignored and counted late.
//! - A frame whose header arrived is *partial* until its payload is complete;
//!   it has until `arrival + frame_deadline`, then it is lost.
//! - A header that skips sequence numbers opens a *gap*; the skipped numbers
//!   have until `now + frame_deadline` to show up (frames travel on
//!   independent streams, so they overtake each other), then they are lost.
//! - When a frame completes it is delivered at once and becomes the floor:
//!   everything older still pending is lost (a surgeon sees the newest
//!   picture; an older one arriving later would only be stale).
//! - Above `highest`, nothing is known. Between `floor` and `highest`, a
//!   number that is neither partial nor in a gap was declared lost already.
//! - At most `max_tracked` partial frames and `max_tracked` gaps per channel;
//!   beyond that the oldest is declared lost.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::time::Instant;

use super::{Config, FrameStream, ReceivedFrame, SessionError, Transmit};
use crate::message::{FrameHeader, SeqRange};

// ---------------------------------------------------------------------------
// Receiving

/// Most bytes reserved for a frame's payload before its bytes arrive.
const INITIAL_PAYLOAD_RESERVE: usize = 4 << 20;

/// A frame whose header arrived and whose payload is arriving.
#[derive(Debug)]
struct Partial {
    header: FrameHeader,
    payload: Vec<u8>,
    deadline: Instant,
}

/// Sequence numbers skipped by a newer header, `first..=last`.
#[derive(Debug, Clone, Copy)]
struct Gap {
    last: u64,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct ChannelRx {
    floor: Option<u64>,
    highest: Option<u64>,
    partial: BTreeMap<u64, Partial>,
    /// Keyed by the first skipped number.
    gaps: BTreeMap<u64, Gap>,
    /// Declared lost and not yet reported, in the order declared.
    lost: Vec<SeqRange>,
}

/// Counters of the receiving side.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RxCounters {
    pub delivered: u64,
    pub lost: u64,
    pub late: u64,
    pub duplicate: u64,
    pub corrupt: u64,
}

/// The receiving side of every live channel.
#[derive(Debug, Default)]
pub(crate) struct LiveRx {
    channels: BTreeMap<u16, ChannelRx>,
    pub counters: RxCounters,
}

impl LiveRx {
    /// A header arrived. Returns the frame if it is already complete (an
    /// empty payload).
    pub fn handle_header(
        &mut self,
        now: Instant,
        header: FrameHeader,
        config: &Config,
    ) -> Result<Option<ReceivedFrame>, SessionError> {
        if header.payload_len > config.max_frame_payload {
            return Err(SessionError::FrameTooLarge {
                channel: header.channel,
                seq: header.seq,
                len: header.payload_len,
                max: config.max_frame_payload,
            });
        }
        if !self.channels.contains_key(&header.channel)
            && self.channels.len() >= config.max_channels
        {
            return Err(SessionError::TooManyChannels {
                channel: header.channel,
                max: config.max_channels,
            });
        }
        let ch = self.channels.entry(header.channel).or_default();
        let seq = header.seq;
        let deadline = now + config.frame_deadline;
        if ch.floor.is_some_and(|f| seq <= f) {
            self.counters.late += 1;
            return Ok(None);
        }
        match ch.highest {
            Some(h) if seq <= h => {
                if ch.partial.contains_key(&seq) {
                    self.counters.duplicate += 1;
                    return Ok(None);
                }
                if !ch.fill_gap(seq) {
                    // Already declared lost.
                    self.counters.late += 1;
                    return Ok(None);
                }
            }
            _ => {
                // seq is above everything seen; `h < seq` so `h + 1` cannot overflow.
                let next = ch.highest.map_or(0, |h| h + 1);
                if seq > next {
                    ch.gaps.insert(
                        next,
                        Gap {
                            last: seq - 1,
                            deadline,
                        },
                    );
                }
                ch.highest = Some(seq);
            }
        }
        let complete = header.payload_len == 0;
        ch.partial.insert(
            seq,
            Partial {
                header,
                payload: Vec::new(),
                deadline,
            },
        );
        ch.enforce_caps(config.max_tracked_frames);
        if complete {
            return Ok(ch.complete(seq, &mut self.counters));
        }
        Ok(None)
    }

    /// Payload bytes of frame `channel`/`seq` arrived, in stream order.
    pub fn handle_payload(
        &mut self,
        channel: u16,
        seq: u64,
        data: Cow<'_, [u8]>,
    ) -> Result<(FrameStream, Option<ReceivedFrame>), SessionError> {
        let Some(ch) = self.channels.get_mut(&channel) else {
            return Ok((FrameStream::Stop, None));
        };
        let Some(p) = ch.partial.get_mut(&seq) else {
            return Ok((FrameStream::Stop, None));
        };
        let expected = p.header.payload_len as usize;
        let got = p.payload.len().saturating_add(data.len());
        if got > expected {
            return Err(SessionError::PayloadOverrun {
                channel,
                seq,
                got: got as u64,
                expected: p.header.payload_len,
            });
        }
        if p.payload.is_empty() && got == expected {
            // The whole payload in one piece: kept as it is (no copy when
            // the caller hands over its buffer).
            p.payload = data.into_owned();
        } else {
            if p.payload.capacity() == 0 {
                // Reserve a bounded first piece, not the announced length:
                // memory follows the bytes that actually arrive (which QUIC
                // flow control limits), not what a header claims.
                p.payload
                    .reserve_exact(expected.min(INITIAL_PAYLOAD_RESERVE));
            }
            p.payload.extend_from_slice(&data);
        }
        if got < expected {
            return Ok((FrameStream::Continue, None));
        }
        Ok((FrameStream::Stop, ch.complete(seq, &mut self.counters)))
    }

    /// The sender reset frame `channel`/`seq`'s stream: it will not come.
    pub fn handle_reset(&mut self, channel: u16, seq: u64) {
        if let Some(ch) = self.channels.get_mut(&channel)
            && ch.partial.remove(&seq).is_some()
        {
            ch.declare_lost(SeqRange::single(seq));
        }
    }

    /// Declares lost everything whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        for ch in self.channels.values_mut() {
            let expired: Vec<u64> = ch
                .partial
                .iter()
                .filter(|(_, p)| p.deadline <= now)
                .map(|(&s, _)| s)
                .collect();
            for s in expired {
                ch.partial.remove(&s);
                ch.declare_lost(SeqRange::single(s));
            }
            let expired: Vec<(u64, Gap)> = ch
                .gaps
                .iter()
                .filter(|(_, g)| g.deadline <= now)
                .map(|(&f, &g)| (f, g))
                .collect();
            for (first, g) in expired {
                ch.gaps.remove(&first);
                ch.declare_lost(SeqRange {
                    first,
                    last: g.last,
                });
            }
        }
    }

    /// The earliest deadline of anything pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.channels
            .values()
            .flat_map(|ch| {
                ch.partial
                    .values()
                    .map(|p| p.deadline)
                    .chain(ch.gaps.values().map(|g| g.deadline))
            })
            .min()
    }

    /// Takes the losses declared since the last call: per channel, ranges
    /// sorted and merged. Counts them.
    pub fn take_lost(&mut self) -> Vec<(u16, Vec<SeqRange>)> {
        let mut out = Vec::new();
        for (&channel, ch) in &mut self.channels {
            if ch.lost.is_empty() {
                continue;
            }
            let mut ranges = std::mem::take(&mut ch.lost);
            ranges.sort_unstable();
            let mut merged: Vec<SeqRange> = Vec::with_capacity(ranges.len());
            for r in ranges {
                match merged.last_mut() {
                    Some(m) if r.first <= m.last.saturating_add(1) => m.last = m.last.max(r.last),
                    _ => merged.push(r),
                }
            }
            for r in &merged {
                self.counters.lost = self.counters.lost.saturating_add(r.count());
            }
            out.push((channel, merged));
        }
        out
    }

    /// Frames being received or awaited (for tests and stats).
    #[cfg(test)]
    pub fn tracked(&self) -> usize {
        self.channels
            .values()
            .map(|c| c.partial.len() + c.gaps.len())
            .sum()
    }
}

impl ChannelRx {
    fn declare_lost(&mut self, r: SeqRange) {
        self.lost.push(r);
    }

    /// Takes `seq` out of the gap holding it; false if no gap holds it.
    fn fill_gap(&mut self, seq: u64) -> bool {
        let Some((&first, &gap)) = self.gaps.range(..=seq).next_back() else {
            return false;
        };
        if seq > gap.last {
            return false;
        }
        self.gaps.remove(&first);
        if first < seq {
            self.gaps.insert(
                first,
                Gap {
                    last: seq - 1,
                    deadline: gap.deadline,
                },
            );
        }
        if seq < gap.last {
            self.gaps.insert(seq + 1, gap);
        }
        true
    }

    fn enforce_caps(&mut self, max: usize) {
        while self.partial.len() > max {
            if let Some((seq, _)) = self.partial.pop_first() {
                self.declare_lost(SeqRange::single(seq));
            }
        }
        while self.gaps.len() > max {
            if let Some((first, g)) = self.gaps.pop_first() {
                self.declare_lost(SeqRange {
                    first,
                    last: g.last,
                });
            }
        }
    }

    /// Frame `seq` is whole: check it, deliver it, settle everything older.
    fn complete(&mut self, seq: u64, counters: &mut RxCounters) -> Option<ReceivedFrame> {
        let p = self.partial.remove(&seq)?;
        let mut offset = 0usize;
        for s in &p.header.slices {
            let end = offset + s.len as usize;
            // The slice lengths sum to payload_len (checked when decoding).
            let bytes = p.payload.get(offset..end).unwrap_or_default();
            if crc32fast::hash(bytes) != s.crc {
                counters.corrupt += 1;
                self.declare_lost(SeqRange::single(seq));
                return None;
            }
            offset = end;
        }
        let older: Vec<u64> = self.partial.range(..seq).map(|(&s, _)| s).collect();
        for s in older {
            self.partial.remove(&s);
            self.declare_lost(SeqRange::single(s));
        }
        while let Some(entry) = self.gaps.first_entry() {
            if *entry.key() > seq {
                break;
            }
            let (first, g) = entry.remove_entry();
            self.declare_lost(SeqRange {
                first,
                last: g.last,
            });
        }
        self.floor = Some(seq);
        counters.delivered += 1;
        Some(ReceivedFrame {
            header: p.header,
            payload: p.payload,
        })
    }
}

// ---------------------------------------------------------------------------
// Sending

/// A frame waiting for the driver.
#[derive(Debug)]
struct Queued {
    channel: u16,
    seq: u64,
    deadline: Instant,
    header: Vec<u8>,
    payload: Vec<u8>,
}

/// Counters of the sending side.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct TxCounters {
    pub sent: u64,
    pub cancelled: u64,
}

/// The sending side of every live channel.
#[derive(Debug, Default)]
pub(crate) struct LiveTx {
    next_seq: BTreeMap<u16, u64>,
    /// In the order queued; the newest is last.
    queue: Vec<Queued>,
    pub counters: TxCounters,
}

impl LiveTx {
    /// The sequence number the next frame on `channel` gets.
    pub fn next_seq(&self, channel: u16) -> u64 {
        self.next_seq.get(&channel).copied().unwrap_or(0)
    }

    /// Checks the peer's report of lost frames against the numbers this end
    /// assigned: a range reaching a number never assigned (or a channel
    /// never used) is a violation, as an acknowledgement of a packet never
    /// sent is in QUIC. Returns how many frames the report names.
    pub fn check_reported(&self, channel: u16, ranges: &[SeqRange]) -> Result<u64, SessionError> {
        let sent = self.next_seq(channel);
        let mut n = 0u64;
        for r in ranges {
            // The decoder guarantees first <= last; a peer-built value may not.
            if r.first > r.last || r.last >= sent {
                return Err(SessionError::LostNeverSent {
                    channel,
                    first: r.first,
                    last: r.last,
                    sent,
                });
            }
            n = n.saturating_add(r.count());
        }
        Ok(n)
    }

    /// Queues an encoded header and its payload; drops the oldest frame of
    /// the channel if more than `max_queued` wait.
    pub fn queue(
        &mut self,
        channel: u16,
        seq: u64,
        deadline: Instant,
        header: Vec<u8>,
        payload: Vec<u8>,
        max_queued: usize,
    ) {
        self.next_seq.insert(channel, seq.saturating_add(1));
        self.queue.push(Queued {
            channel,
            seq,
            deadline,
            header,
            payload,
        });
        while self.queue.iter().filter(|q| q.channel == channel).count() > max_queued {
            if let Some(oldest) = self.queue.iter().position(|q| q.channel == channel) {
                self.queue.remove(oldest);
                self.counters.cancelled += 1;
            }
        }
    }

    /// The newest frame still within its deadline; expired ones are cancelled.
    pub fn poll(&mut self, now: Instant) -> Option<Transmit> {
        while let Some(q) = self.queue.pop() {
            if q.deadline <= now {
                self.counters.cancelled += 1;
                continue;
            }
            self.counters.sent += 1;
            return Some(Transmit::Frame {
                channel: q.channel,
                seq: q.seq,
                deadline: q.deadline,
                header: q.header,
                payload: q.payload,
            });
        }
        None
    }

    /// Cancels the frames whose deadline has passed.
    pub fn handle_timeout(&mut self, now: Instant) {
        let before = self.queue.len();
        self.queue.retain(|q| q.deadline > now);
        self.counters.cancelled += (before - self.queue.len()) as u64;
    }

    /// The earliest deadline of a queued frame.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.iter().map(|q| q.deadline).min()
    }

    /// Drops everything queued (the session closed); counts it cancelled.
    pub fn clear(&mut self) {
        self.counters.cancelled += self.queue.len() as u64;
        self.queue.clear();
    }
}
