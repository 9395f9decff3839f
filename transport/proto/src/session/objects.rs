//! Reliable object bookkeeping: what was offered, what was acknowledged,
//! where to resume after a broken link, and the SHA-256 check on completion.
//!
//! The state lives in [`Transfers`], which outlives a session: take it from a
//! closed session with [`Session::into_transfers`](super::Session::into_transfers)
//! and give it to the next with
//! [`Session::with_transfers`](super::Session::with_transfers). When the new
//! session opens, every object not yet delivered is offered again; the
//! receiver answers with the offset it holds, and the sender resumes there.
//!
//! The core holds no object bytes. The sending host passes bytes through
//! [`Session::send_object_data`](super::Session::send_object_data) when told to
//! resume; the receiving host gets them in order, each byte once, in
//! [`Event::ObjectData`], and keeps them. The receiver acknowledges (and will
//! resume from) exactly what it has handed over.

use std::collections::{BTreeMap, VecDeque};

use sha2::{Digest, Sha256};

use super::{Config, Event, Outbox, SessionError};
use crate::message::{AckState, Message, ObjectAck, ObjectData, ObjectOffer};

/// Where a receiving object stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IncomingProgress {
    /// Bytes received and handed to the host.
    pub received: u64,
    /// Total size.
    pub size: u64,
    /// Whether all bytes arrived and the SHA-256 matched.
    pub complete: bool,
}

/// Where a sending object stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutgoingProgress {
    /// Bytes the receiver acknowledged.
    pub acknowledged: u64,
    /// Total size.
    pub size: u64,
}

#[derive(Debug, Clone)]
struct Incoming {
    offer: ObjectOffer,
    received: u64,
    /// Over `received` bytes.
    hasher: Sha256,
    /// Offset of the last acknowledgement sent.
    acked: u64,
    complete: bool,
    /// A resume request for the current gap was sent already.
    gap_reported: bool,
    /// Order of completion, to evict the oldest completed first.
    completed_at: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutState {
    /// To be offered when a session opens.
    NeedsOffer,
    /// Offered, waiting for the receiver's answer.
    Offered,
    /// The receiver said where to resume; the host sends.
    Sending,
}

#[derive(Debug, Clone)]
struct Outgoing {
    offer: ObjectOffer,
    acknowledged: u64,
    /// End of the bytes sent so far (or that the receiver said it holds):
    /// an acknowledgement beyond it is a violation.
    sent_end: u64,
    state: OutState,
}

/// Objects delivered or refused, remembered so that a late duplicate
/// acknowledgement is told apart from one for an object never offered.
const FINISHED_REMEMBERED: usize = 256;

/// Reliable-object state of one link, in both directions, kept across
/// sessions so that transfers resume after an outage.
#[derive(Debug, Clone, Default)]
pub struct Transfers {
    incoming: BTreeMap<u64, Incoming>,
    outgoing: BTreeMap<u64, Outgoing>,
    /// Outgoing objects delivered or refused, oldest first (bounded).
    finished: VecDeque<u64>,
    completions: u64,
}

impl Transfers {
    /// No transfer.
    pub fn new() -> Transfers {
        Transfers::default()
    }

    /// Progress of an object being received.
    pub fn incoming(&self, id: u64) -> Option<IncomingProgress> {
        self.incoming.get(&id).map(|i| IncomingProgress {
            received: i.received,
            size: i.offer.size,
            complete: i.complete,
        })
    }

    /// Progress of an object being sent (absent once delivered or refused).
    pub fn outgoing(&self, id: u64) -> Option<OutgoingProgress> {
        self.outgoing.get(&id).map(|o| OutgoingProgress {
            acknowledged: o.acknowledged,
            size: o.offer.size,
        })
    }

    /// Objects still to be delivered to the peer.
    pub fn pending_outgoing(&self) -> usize {
        self.outgoing.len()
    }

    // -- sending side -------------------------------------------------------

    /// Records an offer. Returns whether to send it now (`open`), or an error
    /// if the identifier is taken by different content.
    pub(crate) fn offer(&mut self, offer: ObjectOffer, open: bool) -> Result<bool, ObjectClash> {
        let state = if open {
            OutState::Offered
        } else {
            OutState::NeedsOffer
        };
        match self.outgoing.get_mut(&offer.id) {
            Some(o) if o.offer != offer => Err(ObjectClash),
            Some(o) => {
                o.state = state;
                Ok(open)
            }
            None => {
                self.outgoing.insert(
                    offer.id,
                    Outgoing {
                        offer,
                        acknowledged: 0,
                        sent_end: 0,
                        state,
                    },
                );
                Ok(open)
            }
        }
    }

    /// The session opened: every object not delivered is offered again.
    pub(crate) fn reoffer_all(&mut self, out: &mut Outbox) {
        for o in self.outgoing.values_mut() {
            o.state = OutState::Offered;
            out.control.push_back(Message::ObjectOffer(o.offer));
        }
    }

    /// The session closed: offers and resumes must be redone on the next.
    pub(crate) fn session_closed(&mut self) {
        for o in self.outgoing.values_mut() {
            o.state = OutState::NeedsOffer;
        }
    }

    /// Checks that the host may send `len` bytes of `id` at `offset`.
    pub(crate) fn check_send(&self, id: u64, offset: u64, len: usize) -> Result<(), SendCheck> {
        let o = self.outgoing.get(&id).ok_or(SendCheck::Unknown)?;
        if o.state != OutState::Sending {
            return Err(SendCheck::NotResumed);
        }
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|e| e > o.offer.size) {
            return Err(SendCheck::Range { size: o.offer.size });
        }
        Ok(())
    }

    /// The host queued bytes of `id` up to `end` (after [`check_send`](Self::check_send)).
    pub(crate) fn sent(&mut self, id: u64, end: u64) {
        if let Some(o) = self.outgoing.get_mut(&id) {
            o.sent_end = o.sent_end.max(end);
        }
    }

    fn finish(&mut self, id: u64) {
        self.outgoing.remove(&id);
        if self.finished.len() >= FINISHED_REMEMBERED {
            self.finished.pop_front();
        }
        self.finished.push_back(id);
    }

    /// The receiver acknowledged.
    pub(crate) fn handle_ack(
        &mut self,
        ack: ObjectAck,
        out: &mut Outbox,
    ) -> Result<(), SessionError> {
        let Some(o) = self.outgoing.get_mut(&ack.id) else {
            if self.finished.contains(&ack.id) {
                // Delivered or refused already: a late duplicate.
                return Ok(());
            }
            return Err(SessionError::AckUnknownObject { id: ack.id });
        };
        if ack.offset > o.offer.size {
            return Err(SessionError::AckBeyondObject {
                id: ack.id,
                offset: ack.offset,
                size: o.offer.size,
            });
        }
        // Progress names bytes received, Complete and Corrupt all of them:
        // none may go beyond what was sent. (ResumeFrom names what the
        // receiver holds, perhaps from an earlier sender: it only has to
        // fit the object.)
        let claimed = match ack.state {
            AckState::Progress => Some(ack.offset),
            AckState::Complete | AckState::Corrupt if o.state != OutState::Offered => {
                Some(o.offer.size)
            }
            _ => None,
        };
        if let Some(offset) = claimed
            && offset > o.sent_end
        {
            return Err(SessionError::AckBeyondSent {
                id: ack.id,
                offset,
                sent: o.sent_end,
            });
        }
        match ack.state {
            AckState::Progress => o.acknowledged = o.acknowledged.max(ack.offset),
            AckState::ResumeFrom | AckState::Corrupt => {
                o.sent_end = o.sent_end.max(ack.offset);
                let from = if ack.state == AckState::Corrupt {
                    0
                } else {
                    ack.offset
                };
                o.acknowledged = from;
                o.state = OutState::Sending;
                out.events
                    .push_back(Event::ObjectResume { id: ack.id, from });
            }
            AckState::Complete => {
                self.finish(ack.id);
                out.events.push_back(Event::ObjectDelivered { id: ack.id });
            }
            AckState::Refused => {
                self.finish(ack.id);
                out.events.push_back(Event::ObjectRefused { id: ack.id });
            }
        }
        Ok(())
    }

    // -- receiving side -----------------------------------------------------

    /// The sender offers an object (new, or again after an outage).
    pub(crate) fn handle_offer(&mut self, offer: ObjectOffer, config: &Config, out: &mut Outbox) {
        let ack = |offset, state| {
            Message::ObjectAck(ObjectAck {
                id: offer.id,
                offset,
                state,
            })
        };
        if let Some(inc) = self.incoming.get_mut(&offer.id) {
            if inc.offer != offer {
                out.control.push_back(ack(0, AckState::Refused));
            } else if inc.complete {
                out.control.push_back(ack(offer.size, AckState::Complete));
            } else {
                inc.acked = inc.received;
                inc.gap_reported = false;
                out.control
                    .push_back(ack(inc.received, AckState::ResumeFrom));
                out.events.push_back(Event::ObjectOffered {
                    offer,
                    resume_from: inc.received,
                });
            }
            return;
        }
        if offer.size > config.max_object_size || !self.make_room(config.max_objects) {
            out.control.push_back(ack(0, AckState::Refused));
            return;
        }
        self.incoming.insert(
            offer.id,
            Incoming {
                offer,
                received: 0,
                hasher: Sha256::new(),
                acked: 0,
                complete: false,
                gap_reported: false,
                completed_at: 0,
            },
        );
        out.control.push_back(ack(0, AckState::ResumeFrom));
        out.events.push_back(Event::ObjectOffered {
            offer,
            resume_from: 0,
        });
    }

    /// Frees a slot for a new incoming object, evicting the object completed
    /// longest ago if needed; false if every slot holds an unfinished object.
    fn make_room(&mut self, max: usize) -> bool {
        if self.incoming.len() < max {
            return true;
        }
        let oldest = self
            .incoming
            .iter()
            .filter(|(_, i)| i.complete)
            .min_by_key(|(_, i)| i.completed_at)
            .map(|(&id, _)| id);
        match oldest {
            Some(id) => {
                self.incoming.remove(&id);
                true
            }
            None => false,
        }
    }

    /// Object bytes arrived.
    pub(crate) fn handle_data(
        &mut self,
        data: ObjectData,
        config: &Config,
        out: &mut Outbox,
    ) -> Result<(), SessionError> {
        let id = data.id;
        let inc = self
            .incoming
            .get_mut(&id)
            .ok_or(SessionError::UnknownObject { id })?;
        let size = inc.offer.size;
        let end = data.offset.saturating_add(data.data.len() as u64);
        if end > size {
            return Err(SessionError::DataBeyondObject { id, end, size });
        }
        if inc.complete || end <= inc.received {
            return Ok(()); // a duplicate
        }
        if data.offset > inc.received {
            // A gap: bytes are missing (sent before an outage, or resent from
            // an older acknowledgement). Ask once for the missing part.
            if !inc.gap_reported {
                inc.gap_reported = true;
                out.control.push_back(Message::ObjectAck(ObjectAck {
                    id,
                    offset: inc.received,
                    state: AckState::ResumeFrom,
                }));
            }
            return Ok(());
        }
        // offset ≤ received < end: keep the new tail.
        let skip = (inc.received - data.offset) as usize;
        let mut bytes = data.data;
        if skip > 0 {
            bytes.drain(..skip);
        }
        inc.hasher.update(&bytes);
        let offset = inc.received;
        inc.received = end;
        inc.gap_reported = false;
        out.events.push_back(Event::ObjectData(ObjectData {
            id,
            offset,
            data: bytes,
        }));
        if end == size {
            let digest: [u8; 32] = inc.hasher.finalize_reset().into();
            if digest == inc.offer.sha256 {
                inc.complete = true;
                self.completions += 1;
                inc.completed_at = self.completions;
                inc.acked = size;
                out.control.push_back(Message::ObjectAck(ObjectAck {
                    id,
                    offset: size,
                    state: AckState::Complete,
                }));
                out.events.push_back(Event::ObjectComplete { id });
            } else {
                inc.received = 0;
                inc.acked = 0;
                out.control.push_back(Message::ObjectAck(ObjectAck {
                    id,
                    offset: 0,
                    state: AckState::Corrupt,
                }));
                out.events.push_back(Event::ObjectCorrupt { id });
            }
        } else if end - inc.acked >= config.ack_interval {
            inc.acked = end;
            out.control.push_back(Message::ObjectAck(ObjectAck {
                id,
                offset: end,
                state: AckState::Progress,
            }));
        }
        Ok(())
    }
}

/// An offer reuses an identifier with different content.
#[derive(Debug)]
pub(crate) struct ObjectClash;

/// Why the host may not send object bytes.
#[derive(Debug)]
pub(crate) enum SendCheck {
    Unknown,
    NotResumed,
    Range { size: u64 },
}
