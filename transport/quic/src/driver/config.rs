//! Transport settings of the driver.

use std::sync::Arc;
use std::time::Duration;

use quinn::{EndpointConfig, IdleTimeout, MtuDiscoveryConfig, TransportConfig, VarInt, congestion};

use crate::proto;

/// The congestion controller of a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Congestion {
    /// CUBIC (RFC 9438): quinn's default, fair to TCP on shared links.
    #[default]
    Cubic,
    /// BBR (experimental in quinn): keeps queues short on dedicated links.
    Bbr,
    /// NewReno (RFC 9002).
    NewReno,
}

/// Settings of a driven connection. Defaults suit a link of hundreds of
/// Mbit/s to a few Gbit/s with tens of milliseconds of round trip.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// The session's limits and timings (frame deadline, largest frame…).
    pub session: proto::Config,
    /// Congestion controller.
    pub congestion: Congestion,
    /// Initial congestion window, bytes.
    pub initial_window: u64,
    /// Bytes a peer may send on one stream ahead of the reader (one frame's
    /// worth; bounds what one frame stream buffers).
    pub stream_receive_window: u64,
    /// Bytes a peer may send on all streams ahead of the reader.
    pub receive_window: u64,
    /// Bytes this end buffers unacknowledged across all streams.
    pub send_window: u64,
    /// Live frame streams a peer may have open at once.
    pub max_concurrent_frames: u32,
    /// Bytes of incoming frame payloads held at once across every frame
    /// being read (a frame's reader reserves its whole announced length
    /// before reading its payload, and waits while the budget is spent);
    /// also the most bytes of delivered frames queued for the host (beyond
    /// it they are dropped). So live frames cost a receiver at most twice
    /// this, plus one frame being handed over. Never less than the
    /// session's largest frame.
    pub frame_buffer_budget: u64,
    /// How long a complete live frame may be held back while older frames
    /// of its channel are still arriving, so that a frame waiting for a
    /// retransmission is not given up the moment a newer one completes
    /// (never past the older frame's deadline). Zero: the newest complete
    /// frame is delivered at once and older ones arriving are lost. Under
    /// random loss with a round trip longer than the frame interval, a wait
    /// of one or two round trips keeps nearly every frame; the default,
    /// 100 ms, is proto's default frame deadline.
    pub frame_reorder_wait: Duration,
    /// How often each end sends the peer its view of the link
    /// ([`Event::PeerStats`](crate::proto::Event::PeerStats) there); zero:
    /// never.
    pub stats_interval: Duration,
    /// Keep-alive interval.
    pub keep_alive: Duration,
    /// The connection ends after this long without a packet.
    pub idle_timeout: Duration,
    /// Events queued for the host; beyond it frames (and loss reports) are
    /// dropped rather than stall the link.
    pub event_capacity: usize,
    /// How long a frame stream may take to arrive once opened, before the
    /// receiver stops it and counts the frame lost.
    pub frame_read_timeout: Duration,
    /// How long a closing session waits for its last control message to be
    /// acknowledged before closing the connection.
    pub close_grace: Duration,
    /// Server: links held at once; a connection beyond is closed at once
    /// ([`codes::BUSY`](super::codes::BUSY)).
    pub max_links: usize,
    /// Server: links one facility may hold at once (so that one site, or
    /// one stolen certificate, cannot take every place).
    pub max_links_per_facility: usize,
    /// Server: bytes of live frames all its links hold together, being read
    /// and (as much again) waiting for the hosts; each link holds at most
    /// its [`frame_buffer_budget`](Self::frame_buffer_budget) of it, so one
    /// link never takes what the others need. Never less than one link's
    /// budget.
    pub total_frame_budget: u64,
    /// Kernel receive and send buffer asked for on the endpoint's UDP
    /// socket, bytes (capped by `net.core.rmem_max`/`wmem_max`; see
    /// [`socket`](super::socket)).
    pub socket_buffer: usize,
    /// The largest UDP payload, bytes: what this end accepts (quinn's
    /// `max_udp_payload_size`, told to the peer) and the upper bound of
    /// path MTU discovery. Connections start at 1200 bytes and discovery
    /// climbs to what the path carries (on an Ethernet path 1452, as quinn
    /// does by default; on loopback this bound). Capped at
    /// [`MAX_UDP_PAYLOAD`]; at most 1200 turns discovery off.
    pub max_udp_payload: u16,
}

/// The largest [`DriverConfig::max_udp_payload`]: quinn hands the kernel at
/// most 10 datagrams per segmentation-offload (GSO) send, and the kernel
/// takes at most 64 KiB per send, so ten datagrams of 6500 bytes with their
/// headers are the most one batch carries. Above it a whole batch is
/// refused: with 9000 bytes on loopback half the datagrams of a `bench
/// link` run were lost and quinn fell back to 1200 bytes.
pub const MAX_UDP_PAYLOAD: u16 = 6500;

impl Default for DriverConfig {
    fn default() -> DriverConfig {
        DriverConfig {
            // 64 MiB: a compressed 8K frame with room to spare (an 8K
            // frame at 1 bit per pixel is 4 MB); proto's own default is
            // the largest the format allows.
            session: proto::Config::default().with_max_frame_payload(64 << 20),
            // BBR: CUBIC's window collapses to a few packets at 1% random
            // loss (tests/impaired.rs), and a VPN across a city loses at random.
            congestion: Congestion::Bbr,
            // 1 MB: ~8 ms at 1 Gbit/s, instead of quinn's ~14 KB.
            initial_window: 1 << 20,
            // 8 MiB per stream: quinn's receiver gives up a stream (and the
            // connection, "too many gaps in stream buffer") once more than
            // 1024 separate pieces wait for retransmissions; a 64 MiB window
            // let one stream at 1% loss over 40 ms reach that (`bench link`'s
            // ceiling at --loss 1 --delay 20 --rate 1000). 8 MiB is 1.6
            // Gbit/s per stream at 40 ms, and a live frame is a stream of
            // its own.
            stream_receive_window: 8 << 20,
            // Every stream together: the most a peer may have in flight
            // towards this end's buffers (a memory bound per link).
            receive_window: 64 << 20,
            // Unacknowledged bytes this end holds: a few round trips at
            // 1 Gbit/s and 40 ms. More only lets the sender burst past what
            // the path takes (quinn's BBR) and grow the stream gaps above.
            send_window: 16 << 20,
            max_concurrent_frames: 16,
            frame_buffer_budget: 128 << 20,
            stats_interval: Duration::from_secs(1),
            // Up to the frame deadline (proto's default 100 ms): a frame
            // waiting for a retransmission is not given up the moment a
            // newer one completes.
            frame_reorder_wait: Duration::from_millis(100),
            // Often enough that, after an outage, the peer is heard again
            // within a quarter second (what the client's watchdog waits
            // for: see `driver::watchdog`); a keep-alive only goes out
            // when nothing else has arrived for this long.
            keep_alive: Duration::from_millis(250),
            idle_timeout: Duration::from_secs(10),
            event_capacity: 64,
            frame_read_timeout: Duration::from_secs(1),
            close_grace: Duration::from_millis(500),
            max_links: 32,
            max_links_per_facility: 8,
            total_frame_budget: 512 << 20,
            socket_buffer: 8 << 20,
            // Fewer, larger datagrams where the path carries them: the
            // relay, the kernel and both quinn ends pay per datagram. At 1%
            // loss, 40 ms and a 1000 Mbit/s cap through the relay on
            // loopback (`bench link`, 2 shared cores), the live link's
            // median was 61% of the cap with 1452-byte datagrams and 86%
            // with 6500, at about half the CPU per bit.
            max_udp_payload: MAX_UDP_PAYLOAD,
        }
    }
}

impl DriverConfig {
    /// Sets [`session`](Self::session).
    pub fn with_session(mut self, v: proto::Config) -> DriverConfig {
        self.session = v;
        self
    }
    /// Sets [`congestion`](Self::congestion).
    pub fn with_congestion(mut self, v: Congestion) -> DriverConfig {
        self.congestion = v;
        self
    }
    /// Sets [`initial_window`](Self::initial_window).
    pub fn with_initial_window(mut self, v: u64) -> DriverConfig {
        self.initial_window = v;
        self
    }
    /// Sets [`stream_receive_window`](Self::stream_receive_window).
    pub fn with_stream_receive_window(mut self, v: u64) -> DriverConfig {
        self.stream_receive_window = v;
        self
    }
    /// Sets [`receive_window`](Self::receive_window).
    pub fn with_receive_window(mut self, v: u64) -> DriverConfig {
        self.receive_window = v;
        self
    }
    /// Sets [`send_window`](Self::send_window).
    pub fn with_send_window(mut self, v: u64) -> DriverConfig {
        self.send_window = v;
        self
    }
    /// Sets [`max_concurrent_frames`](Self::max_concurrent_frames) (at least 1).
    pub fn with_max_concurrent_frames(mut self, v: u32) -> DriverConfig {
        self.max_concurrent_frames = v.max(1);
        self
    }
    /// Sets [`frame_buffer_budget`](Self::frame_buffer_budget).
    pub fn with_frame_buffer_budget(mut self, v: u64) -> DriverConfig {
        self.frame_buffer_budget = v;
        self
    }
    /// Sets [`stats_interval`](Self::stats_interval).
    pub fn with_stats_interval(mut self, v: Duration) -> DriverConfig {
        self.stats_interval = v;
        self
    }
    /// Sets [`frame_reorder_wait`](Self::frame_reorder_wait).
    pub fn with_frame_reorder_wait(mut self, v: Duration) -> DriverConfig {
        self.frame_reorder_wait = v;
        self
    }
    /// Sets [`keep_alive`](Self::keep_alive).
    pub fn with_keep_alive(mut self, v: Duration) -> DriverConfig {
        self.keep_alive = v;
        self
    }
    /// Sets [`idle_timeout`](Self::idle_timeout).
    pub fn with_idle_timeout(mut self, v: Duration) -> DriverConfig {
        self.idle_timeout = v;
        self
    }
    /// Sets [`event_capacity`](Self::event_capacity) (at least 1).
    pub fn with_event_capacity(mut self, v: usize) -> DriverConfig {
        self.event_capacity = v.max(1);
        self
    }
    /// Sets [`frame_read_timeout`](Self::frame_read_timeout).
    pub fn with_frame_read_timeout(mut self, v: Duration) -> DriverConfig {
        self.frame_read_timeout = v;
        self
    }
    /// Sets [`close_grace`](Self::close_grace).
    pub fn with_close_grace(mut self, v: Duration) -> DriverConfig {
        self.close_grace = v;
        self
    }

    /// Sets [`max_links`](Self::max_links) (at least 1).
    pub fn with_max_links(mut self, v: usize) -> DriverConfig {
        self.max_links = v.max(1);
        self
    }
    /// Sets [`max_links_per_facility`](Self::max_links_per_facility) (at least 1).
    pub fn with_max_links_per_facility(mut self, v: usize) -> DriverConfig {
        self.max_links_per_facility = v.max(1);
        self
    }
    /// Sets [`total_frame_budget`](Self::total_frame_budget).
    pub fn with_total_frame_budget(mut self, v: u64) -> DriverConfig {
        self.total_frame_budget = v;
        self
    }

    /// The overall frame budget in effect: at least one link's.
    pub(crate) fn effective_total_budget(&self) -> usize {
        let v = usize::try_from(self.total_frame_budget).unwrap_or(usize::MAX);
        v.max(self.effective_frame_budget()).min(usize::MAX >> 3)
    }

    /// Sets [`socket_buffer`](Self::socket_buffer).
    pub fn with_socket_buffer(mut self, v: usize) -> DriverConfig {
        self.socket_buffer = v;
        self
    }

    /// Sets [`max_udp_payload`](Self::max_udp_payload) (at most
    /// [`MAX_UDP_PAYLOAD`]).
    pub fn with_max_udp_payload(mut self, v: u16) -> DriverConfig {
        self.max_udp_payload = v.min(MAX_UDP_PAYLOAD);
        self
    }

    /// The frame buffer budget in effect: at least one largest frame.
    pub(crate) fn effective_frame_budget(&self) -> usize {
        let v = self
            .frame_buffer_budget
            .max(u64::from(self.session.max_frame_payload));
        // Tokio's semaphore holds at most `usize::MAX >> 3` permits.
        usize::try_from(v)
            .unwrap_or(usize::MAX)
            .min(usize::MAX >> 3)
    }

    /// The quinn transport configuration.
    pub fn transport(&self) -> Arc<TransportConfig> {
        let var = |v: u64| VarInt::from_u64(v).unwrap_or(VarInt::MAX);
        let mut t = TransportConfig::default();
        t.max_concurrent_bidi_streams(VarInt::from_u32(1))
            .max_concurrent_uni_streams(VarInt::from_u32(self.max_concurrent_frames.max(1)))
            .stream_receive_window(var(self.stream_receive_window))
            .receive_window(var(self.receive_window))
            .send_window(self.send_window)
            .keep_alive_interval(Some(self.keep_alive))
            .max_idle_timeout(IdleTimeout::try_from(self.idle_timeout).ok());
        let payload = self.max_udp_payload.min(MAX_UDP_PAYLOAD);
        if payload > 1200 {
            let mut mtu = MtuDiscoveryConfig::default();
            mtu.upper_bound(payload);
            t.mtu_discovery_config(Some(mtu));
        } else {
            t.mtu_discovery_config(None);
        }
        let w = self.initial_window;
        match self.congestion {
            Congestion::Cubic => {
                let mut c = congestion::CubicConfig::default();
                c.initial_window(w);
                t.congestion_controller_factory(Arc::new(c));
            }
            Congestion::Bbr => {
                let mut c = congestion::BbrConfig::default();
                c.initial_window(w);
                t.congestion_controller_factory(Arc::new(c));
            }
            Congestion::NewReno => {
                let mut c = congestion::NewRenoConfig::default();
                c.initial_window(w);
                t.congestion_controller_factory(Arc::new(c));
            }
        }
        Arc::new(t)
    }

    /// The quinn endpoint configuration: the largest UDP payload this end
    /// accepts ([`max_udp_payload`](Self::max_udp_payload)).
    pub fn endpoint(&self) -> EndpointConfig {
        let mut e = EndpointConfig::default();
        let payload = self.max_udp_payload.clamp(1200, MAX_UDP_PAYLOAD);
        // 1200..=65527 is what quinn accepts, and the clamp keeps it there.
        let _ = e.max_udp_payload_size(payload);
        e
    }
}
