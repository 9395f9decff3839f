//! A pool of frame buffers, so that steady-state capture allocates nothing per frame.
//!
//! A [`FrameBuffer`] taken from a [`FramePool`] goes back to the pool when it is
//! dropped, wherever that happens (a later pipeline stage, a GStreamer sink that
//! wrapped it without copying). Buffers are `u64`-backed so every plane can be
//! viewed as `&[u16]` without an alignment check failing.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

/// Bytes of picture memory, owned, or on loan from a [`FramePool`].
pub struct FrameBuffer {
    words: Box<[u64]>,
    len: usize,
    home: Option<Weak<PoolInner>>,
}

impl FrameBuffer {
    /// A zeroed buffer of `len` bytes that belongs to no pool.
    pub fn zeroed(len: usize) -> Self {
        FrameBuffer {
            words: vec![0u64; len.div_ceil(8)].into_boxed_slice(),
            len,
            home: None,
        }
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True for a zero-length buffer.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl Deref for FrameBuffer {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &bytemuck::cast_slice(&self.words)[..self.len]
    }
}

impl DerefMut for FrameBuffer {
    fn deref_mut(&mut self) -> &mut [u8] {
        &mut bytemuck::cast_slice_mut(&mut self.words)[..self.len]
    }
}

impl AsRef<[u8]> for FrameBuffer {
    fn as_ref(&self) -> &[u8] {
        self
    }
}

impl AsMut<[u8]> for FrameBuffer {
    fn as_mut(&mut self) -> &mut [u8] {
        self
    }
}

impl fmt::Debug for FrameBuffer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FrameBuffer")
            .field("len", &self.len)
            .field("pooled", &self.home.is_some())
            .finish()
    }
}

impl Drop for FrameBuffer {
    fn drop(&mut self) {
        let Some(pool) = self.home.take().and_then(|w| w.upgrade()) else {
            return;
        };
        let words = std::mem::take(&mut self.words);
        pool.give_back(words);
    }
}

struct PoolInner {
    buffer_len: usize,
    keep: usize,
    free: Mutex<Vec<Box<[u64]>>>,
    allocations: AtomicU64,
    reuses: AtomicU64,
}

impl PoolInner {
    fn give_back(&self, words: Box<[u64]>) {
        // A poisoned lock only means another thread panicked while pushing; the
        // free list itself is still a valid Vec.
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        if free.len() < self.keep {
            free.push(words);
        }
    }
}

/// Counters of a pool, for benches and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolStats {
    /// Buffers allocated fresh.
    pub allocations: u64,
    /// Buffers handed out again after being returned.
    pub reuses: u64,
}

/// Buffers of one size, recycled.
#[derive(Clone)]
pub struct FramePool {
    inner: Arc<PoolInner>,
}

impl fmt::Debug for FramePool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FramePool")
            .field("buffer_len", &self.inner.buffer_len)
            .field("stats", &self.stats())
            .finish()
    }
}

impl FramePool {
    /// A pool of `buffer_len`-byte buffers that keeps at most `keep` idle ones.
    pub fn new(buffer_len: usize, keep: usize) -> Self {
        FramePool {
            inner: Arc::new(PoolInner {
                buffer_len,
                keep,
                free: Mutex::new(Vec::with_capacity(keep)),
                allocations: AtomicU64::new(0),
                reuses: AtomicU64::new(0),
            }),
        }
    }

    /// Size of the buffers this pool hands out.
    pub fn buffer_len(&self) -> usize {
        self.inner.buffer_len
    }

    /// A buffer from the free list, or a new one when none is idle.
    /// A reused buffer holds whatever its last user wrote.
    pub fn acquire(&self) -> FrameBuffer {
        let reused = self
            .inner
            .free
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let words = match reused {
            Some(w) => {
                self.inner.reuses.fetch_add(1, Ordering::Relaxed);
                w
            }
            None => {
                self.inner.allocations.fetch_add(1, Ordering::Relaxed);
                vec![0u64; self.inner.buffer_len.div_ceil(8)].into_boxed_slice()
            }
        };
        FrameBuffer {
            words,
            len: self.inner.buffer_len,
            home: Some(Arc::downgrade(&self.inner)),
        }
    }

    /// Allocation and reuse counts so far.
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            allocations: self.inner.allocations.load(Ordering::Relaxed),
            reuses: self.inner.reuses.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steady_state_allocates_nothing() {
        let pool = FramePool::new(1000, 4);
        // Warm up with the pipeline depth in flight, then cycle many frames.
        let warm: Vec<_> = (0..3).map(|_| pool.acquire()).collect();
        drop(warm);
        let after_warm_up = pool.stats().allocations;
        for _ in 0..100 {
            let a = pool.acquire();
            let b = pool.acquire();
            drop((a, b));
        }
        assert_eq!(pool.stats().allocations, after_warm_up);
        assert_eq!(pool.stats().reuses, 200);
    }

    #[test]
    fn buffers_outliving_the_pool_are_freed() {
        let pool = FramePool::new(16, 2);
        let buf = pool.acquire();
        drop(pool);
        assert_eq!(buf.len(), 16);
        drop(buf);
    }

    #[test]
    fn keeps_at_most_keep_idle() {
        let pool = FramePool::new(8, 1);
        let (a, b) = (pool.acquire(), pool.acquire());
        drop((a, b));
        let _c = pool.acquire();
        let _d = pool.acquire();
        assert_eq!(
            pool.stats(),
            PoolStats {
                allocations: 3,
                reuses: 1
            }
        );
    }
}
