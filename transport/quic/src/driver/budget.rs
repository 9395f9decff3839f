//! Bytes of live frames a link may hold, and what a server's links hold
//! together.
//!
//! A frame's reader reserves the frame's whole length before reading its
//! payload: first from its link's budget
//! ([`DriverConfig::frame_buffer_budget`](super::DriverConfig::frame_buffer_budget)),
//! then, on a server, from the overall budget all its links share
//! ([`DriverConfig::total_frame_budget`](super::DriverConfig::total_frame_budget)).
//! Always in that order, and whole frames only: no two readers can each
//! hold part of what the other waits for. A link can therefore never hold
//! more than its own budget of the overall one, whatever its peer sends:
//! the other links keep the rest. Frames delivered and waiting for the
//! host are counted the same way (per link, and against the overall
//! budget), and dropped beyond either.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// What every link of one server holds together.
#[derive(Debug)]
pub(crate) struct Overall {
    readers: Arc<Semaphore>,
    queued: AtomicUsize,
    total: usize,
}

impl Overall {
    /// An overall budget of `total` bytes for readers, and as much again
    /// for frames waiting for the hosts.
    pub(crate) fn new(total: usize) -> Arc<Overall> {
        Arc::new(Overall {
            readers: Arc::new(Semaphore::new(total)),
            queued: AtomicUsize::new(0),
            total,
        })
    }

    /// Bytes held by frame readers of every link now.
    pub(crate) fn reading(&self) -> usize {
        self.total.saturating_sub(self.readers.available_permits())
    }

    fn queue(&self, len: usize) -> bool {
        self.queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                q.checked_add(len).filter(|n| *n <= self.total)
            })
            .is_ok()
    }

    fn unqueue(&self, len: usize) {
        let _ = self
            .queued
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |q| {
                Some(q.saturating_sub(len))
            });
    }
}

/// A link's frame budget, and the server's overall one if any.
#[derive(Debug, Clone)]
pub(crate) struct Budget {
    link: Arc<Semaphore>,
    overall: Option<Arc<Overall>>,
}

/// Bytes reserved for one frame; given back when dropped.
#[derive(Debug)]
pub(crate) struct Reserved {
    _link: OwnedSemaphorePermit,
    _overall: Option<OwnedSemaphorePermit>,
}

impl Budget {
    pub(crate) fn new(link_bytes: usize, overall: Option<Arc<Overall>>) -> Budget {
        Budget {
            link: Arc::new(Semaphore::new(link_bytes)),
            overall,
        }
    }

    /// Reserves `len` bytes: the link's share, then the overall one.
    /// `None` if a semaphore was closed (never, here).
    pub(crate) async fn reserve(&self, len: u32) -> Option<Reserved> {
        let link = self.link.clone().acquire_many_owned(len).await.ok()?;
        let overall = match &self.overall {
            Some(o) => Some(o.readers.clone().acquire_many_owned(len).await.ok()?),
            None => None,
        };
        Some(Reserved {
            _link: link,
            _overall: overall,
        })
    }

    /// Bytes of the link's budget free now.
    pub(crate) fn available(&self) -> usize {
        self.link.available_permits()
    }

    /// Counts `len` bytes of delivered frames against the overall budget;
    /// false if over it.
    pub(crate) fn queue_overall(&self, len: usize) -> bool {
        self.overall.as_ref().is_none_or(|o| o.queue(len))
    }

    /// Gives back what [`queue_overall`](Self::queue_overall) counted.
    pub(crate) fn unqueue_overall(&self, len: usize) {
        if let Some(o) = &self.overall {
            o.unqueue(len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_link_holds_at_most_its_share_of_the_overall_budget() {
        let overall = Overall::new(100);
        let greedy = Budget::new(40, Some(overall.clone()));
        let honest = Budget::new(40, Some(overall.clone()));
        let a = greedy.reserve(30).await.unwrap();
        let b = greedy.reserve(10).await.unwrap();
        // The greedy link's own budget is spent: its next frame waits …
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), greedy.reserve(1));
        assert!(waiting.await.is_err());
        // … while another link still gets the rest of the overall budget.
        let c = honest.reserve(40).await.unwrap();
        assert_eq!(overall.reading(), 80);
        drop((a, b, c));
        assert_eq!(overall.reading(), 0);
        // Frames waiting for the hosts are counted overall too.
        assert!(honest.queue_overall(60));
        assert!(!greedy.queue_overall(50));
        honest.unqueue_overall(60);
        assert!(greedy.queue_overall(50));
    }
}
