//! Which 8K stream a sender puts on a path it has measured: the
//! rate-controlled wavelet stream where the path carries enough bits per
//! pixel for it, else AV1 of a downscaled picture (rav1e's job on thin
//! links).
//!
//! The budget is [`VIDEO_SHARE_PERCENT`] of the measured goodput (the rest
//! is headroom for retransmissions, detection results and control). At 8K
//! and 60 frames/s a pixel gets `budget / 1.99 Gpx/s` bits:
//! - at least [`WAVELET_MIN_BPP`]: the wavelet codec's rate-controlled
//!   mode at that rate (at most [`WAVELET_MAX_BPP`], what an in-hospital
//!   link carries: 2–3 bits per pixel), one constant-size frame each
//!   sixtieth of a second;
//! - below it: AV1 at the budget, of the picture downscaled by 2 (4K) or,
//!   under [`AV1_4K_MIN_MBPS`], by 4 (1080p), with a key frame every
//!   [`DEFAULT_KEYFRAME_INTERVAL`] frames.
//!
//! ```
//! use med8k_link::plan::{StreamPlan, choose};
//! let plan = choose(150.0);
//! assert!(matches!(plan, StreamPlan::Av1 { width: 3840, .. }));
//! let plan = choose(5000.0);
//! assert!(matches!(plan, StreamPlan::Wavelet { .. }));
//! ```

use med8k_av1::{DEFAULT_KEYFRAME_INTERVAL, VIDEO_SHARE_PERCENT};
use serde::Serialize;

/// Pixels of an 8K picture.
pub const PIXELS_8K: f64 = 7680.0 * 4320.0;
/// Frames per second of the 8K endoscope.
pub const FPS: f64 = 60.0;
/// Fewest bits per pixel the wavelet stream is sent at; below, AV1.
pub const WAVELET_MIN_BPP: f64 = 1.0;
/// Most bits per pixel the wavelet stream is sent at.
pub const WAVELET_MAX_BPP: f64 = 3.0;
/// Below this budget AV1 is sent at 1080p rather than 4K, Mbit/s.
pub const AV1_4K_MIN_MBPS: f64 = 24.0;
/// How much larger than an inter frame an AV1 key frame is (a rate
/// controller's typical share).
pub const AV1_KEY_FRAME_FACTOR: f64 = 6.0;

/// The stream chosen for a path.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "codec", rename_all = "snake_case")]
#[non_exhaustive]
pub enum StreamPlan {
    /// The wavelet codec, rate-controlled, at 8K.
    Wavelet {
        /// Bits per pixel.
        bpp: f64,
        /// Bytes of every frame.
        frame_bytes: usize,
    },
    /// AV1 of a downscaled picture.
    Av1 {
        /// Picture width.
        width: u32,
        /// Picture height.
        height: u32,
        /// Bit rate, kbit/s.
        kbps: u32,
        /// Bytes of an inter frame.
        inter_bytes: usize,
        /// Bytes of a key frame.
        key_bytes: usize,
        /// Frames from one key frame to the next.
        key_interval: u32,
    },
}

impl StreamPlan {
    /// Bytes of frame `i` (from 0) of the stream.
    pub fn frame_bytes(&self, i: u64) -> usize {
        match *self {
            StreamPlan::Wavelet { frame_bytes, .. } => frame_bytes,
            StreamPlan::Av1 {
                inter_bytes,
                key_bytes,
                key_interval,
                ..
            } => {
                if i.is_multiple_of(u64::from(key_interval.max(1))) {
                    key_bytes
                } else {
                    inter_bytes
                }
            }
        }
    }

    /// The mean bit rate, Mbit/s.
    pub fn mbps(&self) -> f64 {
        match *self {
            StreamPlan::Wavelet { frame_bytes, .. } => frame_bytes as f64 * 8.0 * FPS / 1e6,
            StreamPlan::Av1 { kbps, .. } => f64::from(kbps) / 1e3,
        }
    }

    /// A short description: `wavelet 2.00 bpp` or `AV1 3840x2160 120 Mbit/s`.
    pub fn describe(&self) -> String {
        match *self {
            StreamPlan::Wavelet { bpp, .. } => format!("wavelet 8K {bpp:.2} bpp"),
            StreamPlan::Av1 {
                width,
                height,
                kbps,
                ..
            } => format!("AV1 {width}x{height} {:.0} Mbit/s", f64::from(kbps) / 1e3),
        }
    }
}

/// The stream for a path measured at `goodput_mbps`.
pub fn choose(goodput_mbps: f64) -> StreamPlan {
    let budget_mbps = goodput_mbps.max(0.1) * f64::from(VIDEO_SHARE_PERCENT) / 100.0;
    let bpp = budget_mbps * 1e6 / (PIXELS_8K * FPS);
    if bpp >= WAVELET_MIN_BPP {
        let bpp = bpp.min(WAVELET_MAX_BPP);
        return StreamPlan::Wavelet {
            bpp,
            frame_bytes: (bpp * PIXELS_8K / 8.0) as usize,
        };
    }
    let (width, height) = if budget_mbps >= AV1_4K_MIN_MBPS {
        (3840, 2160)
    } else {
        (1920, 1080)
    };
    let key_interval = DEFAULT_KEYFRAME_INTERVAL;
    let per_gop = budget_mbps * 1e6 / 8.0 / FPS * f64::from(key_interval);
    let inter = per_gop / (f64::from(key_interval) - 1.0 + AV1_KEY_FRAME_FACTOR);
    StreamPlan::Av1 {
        width,
        height,
        kbps: (budget_mbps * 1e3) as u32,
        inter_bytes: inter.max(1.0) as usize,
        key_bytes: (inter * AV1_KEY_FRAME_FACTOR).max(1.0) as usize,
        key_interval,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_classes_get_their_streams() {
        // In-hospital: the wavelet stream at 2 bits per pixel (80% of
        // 5 Gbit/s over 1.99 Gpx/s), at most 3.
        match choose(5000.0) {
            StreamPlan::Wavelet { bpp, frame_bytes } => {
                assert!((bpp - 4000e6 / (PIXELS_8K * FPS)).abs() < 1e-9, "{bpp}");
                assert_eq!(frame_bytes, (bpp * PIXELS_8K / 8.0) as usize);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            choose(100_000.0),
            StreamPlan::Wavelet { bpp, .. } if bpp == WAVELET_MAX_BPP
        ));
        // 150, 40: AV1 at 4K; 20: AV1 at 1080p.
        for (mbps, width) in [(150.0, 3840), (40.0, 3840), (20.0, 1920)] {
            let plan = choose(mbps);
            let StreamPlan::Av1 {
                width: w,
                kbps,
                key_bytes,
                inter_bytes,
                key_interval,
                ..
            } = plan
            else {
                panic!("{plan:?}");
            };
            assert_eq!(w, width, "{mbps}");
            assert_eq!(kbps, (mbps * 800.0) as u32);
            // One group of pictures carries the budget.
            let gop = key_bytes + inter_bytes * (key_interval as usize - 1);
            let want = mbps * 0.8e6 / 8.0 * f64::from(key_interval) / FPS;
            assert!((gop as f64 - want).abs() / want < 0.01, "{gop} vs {want}");
            assert_eq!(plan.frame_bytes(0), key_bytes);
            assert_eq!(plan.frame_bytes(1), inter_bytes);
        }
        // Just enough for the wavelet stream at its lowest rate.
        let edge = WAVELET_MIN_BPP * PIXELS_8K * FPS / 1e6 / 0.8;
        assert!(matches!(choose(edge * 1.01), StreamPlan::Wavelet { .. }));
        assert!(matches!(choose(edge * 0.99), StreamPlan::Av1 { .. }));
    }
}
