//! How the bench's reports read on a terminal.

use std::fmt;

use super::{BenchLinkReport, ClassesReport};

impl fmt::Display for BenchLinkReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let r = self;
        let path = match r.rate_mbps {
            _ if r.path == "loopback" => "loopback, no relay".to_owned(),
            Some(rate) => format!(
                "relay: loss {}%, delay {} ms each way, cap {rate} Mbit/s",
                r.loss_percent, r.delay_ms
            ),
            None => format!(
                "relay: loss {}%, delay {} ms each way",
                r.loss_percent, r.delay_ms
            ),
        };
        writeln!(f, "path: {path}; congestion {}", r.congestion)?;
        writeln!(
            f,
            "datagrams (path MTU discovery up to {} bytes): ceiling {}, live {} bytes",
            r.max_udp_payload, r.ceiling_udp_payload, r.live_udp_payload
        )?;
        match &r.ceiling_error {
            None => writeln!(
                f,
                "ceiling (plain quinn, one stream): {:.1} Mbit/s",
                r.ceiling_mbps
            )?,
            Some(e) => writeln!(f, "ceiling (plain quinn, one stream): failed: {e}")?,
        }
        let pacing = match r.fps {
            Some(f) => format!("at {f} fps"),
            None => format!("as fast as the link takes them, {} in flight", r.window),
        };
        writeln!(
            f,
            "live frames of {} KB {pacing}: goodput {:.1} Mbit/s",
            r.frame_bytes / 1000,
            r.goodput_mbps
        )?;
        if let Some(e) = &r.live_error {
            writeln!(f, "live phase stopped: {e}")?;
        }
        if r.ceiling_error.is_none() {
            writeln!(f, "ratio to ceiling: {:.1}%", r.ratio_to_ceiling * 100.0)?;
        }
        if let Some(c) = r.ratio_to_cap {
            writeln!(f, "ratio to relay cap: {:.1}%", c * 100.0)?;
        }
        writeln!(
            f,
            "frames: {} sent, {} received, {} late (> {} ms), {} lost",
            r.frames_sent, r.frames_received, r.frames_late, r.deadline_ms, r.frames_lost
        )?;
        write!(
            f,
            "frame latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            r.latency_ms.p50, r.latency_ms.p99, r.latency_ms.max
        )
    }
}

impl fmt::Display for ClassesReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<26} {:<28} {:>9} {:<26} {:>8} {:>5} {:>5} {:>7} {:>7}",
            "link class",
            "path (each way)",
            "measured",
            "stream chosen",
            "frames/s",
            "late",
            "lost",
            "p50 ms",
            "p99 ms"
        )?;
        for c in &self.classes {
            let path = format!(
                "cap {} Mbit/s, {} ms, {}%",
                c.cap_mbps, c.delay_ms, c.loss_percent
            );
            writeln!(
                f,
                "{:<26} {:<28} {:>9} {:<26} {:>8.1} {:>5} {:>5} {:>7.1} {:>7.1}",
                c.class,
                path,
                format!("{:.0} Mb/s", c.measured_mbps),
                c.stream_name,
                c.fps,
                c.frames_late,
                c.frames_lost,
                c.latency_ms.p50,
                c.latency_ms.p99
            )?;
            if let Some(e) = &c.error {
                writeln!(f, "  {}: {e}", c.class)?;
            }
        }
        write!(
            f,
            "60 frames/s sent for {:.0} s per class after a probe; deadline {} ms; congestion {}",
            self.classes.first().map_or(0.0, |c| c.seconds),
            self.deadline_ms,
            self.congestion
        )
    }
}
