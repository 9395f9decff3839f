//! Limits and timings of a session.

use std::time::Duration;

use crate::message::{MAX_FRAME_PAYLOAD, MAX_OBJECT_SIZE};

/// Limits and timings of a session. Defaults suit an 8K link; every limit
/// is local (the peer learns of it only by refusals).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Time from creation to [`Event::Open`](super::Event::Open) before the session closes with
    /// [`CloseReason::Timeout`](crate::CloseReason::Timeout) (includes the gate's decision).
    pub handshake_timeout: Duration,
    /// How long a live frame may take: a queued frame not handed to the
    /// driver by then is cancelled; a frame being received, or a skipped
    /// sequence number, not complete by then is lost.
    pub frame_deadline: Duration,
    /// Most partial frames, and most gaps, tracked per channel; also the most
    /// frames queued per channel on the sending side.
    pub max_tracked_frames: usize,
    /// Most live channels a peer may use.
    pub max_channels: usize,
    /// Largest frame payload accepted, in bytes.
    pub max_frame_payload: u32,
    /// Largest object accepted, in bytes.
    pub max_object_size: u64,
    /// Most incoming objects tracked (completed ones are forgotten first).
    pub max_objects: usize,
    /// Receiver acknowledges progress every this many bytes.
    pub ack_interval: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            handshake_timeout: Duration::from_secs(10),
            frame_deadline: Duration::from_millis(100),
            max_tracked_frames: 8,
            max_channels: 8,
            max_frame_payload: 256 << 20,
            max_object_size: 16 << 30,
            max_objects: 64,
            ack_interval: 4 << 20,
        }
    }
}

impl Config {
    /// Sets [`handshake_timeout`](Self::handshake_timeout).
    pub fn with_handshake_timeout(mut self, v: Duration) -> Config {
        self.handshake_timeout = v;
        self
    }
    /// Sets [`frame_deadline`](Self::frame_deadline).
    pub fn with_frame_deadline(mut self, v: Duration) -> Config {
        self.frame_deadline = v;
        self
    }
    /// Sets [`max_tracked_frames`](Self::max_tracked_frames) (at least 1).
    pub fn with_max_tracked_frames(mut self, v: usize) -> Config {
        self.max_tracked_frames = v.max(1);
        self
    }
    /// Sets [`max_channels`](Self::max_channels).
    pub fn with_max_channels(mut self, v: usize) -> Config {
        self.max_channels = v;
        self
    }
    /// Sets [`max_frame_payload`](Self::max_frame_payload) (at most [`MAX_FRAME_PAYLOAD`]).
    pub fn with_max_frame_payload(mut self, v: u32) -> Config {
        self.max_frame_payload = v.min(MAX_FRAME_PAYLOAD);
        self
    }
    /// Sets [`max_object_size`](Self::max_object_size) (at most [`MAX_OBJECT_SIZE`]).
    pub fn with_max_object_size(mut self, v: u64) -> Config {
        self.max_object_size = v.min(MAX_OBJECT_SIZE);
        self
    }
    /// Sets [`max_objects`](Self::max_objects).
    pub fn with_max_objects(mut self, v: usize) -> Config {
        self.max_objects = v;
        self
    }
    /// Sets [`ack_interval`](Self::ack_interval) (at least 1).
    pub fn with_ack_interval(mut self, v: u64) -> Config {
        self.ack_interval = v.max(1);
        self
    }
}
