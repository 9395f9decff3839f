//! The UDP sockets under the quinn endpoints: kernel buffers sized for
//! Gbit/s bursts.
//!
//! A socket's default receive buffer (Linux: 208 KiB) holds under 2 ms at
//! 1 Gbit/s. quinn sends in GSO batches and a router (or the impairment
//! relay) forwards queued datagrams back to back, so a default buffer
//! overflows and the kernel drops datagrams the path delivered: losses that
//! the congestion controller and the stream reassembly then pay for (on
//! loopback, tens of thousands of drops in a 10 s `bench link` before these
//! sockets had larger buffers; `/proc/net/snmp` `Udp: RcvbufErrors`). The
//! sizes asked for are capped by the kernel (`net.core.rmem_max`,
//! `wmem_max`); what the kernel granted is logged at debug level.

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;

use quinn::{Endpoint, ServerConfig};
use socket2::{Domain, Protocol, Socket, Type};

use super::DriverConfig;

/// A UDP socket bound to `addr` with receive and send buffers of `buffer`
/// bytes asked for (best effort). An IPv6 address gives a dual-stack socket
/// where the system allows it.
pub fn bind_udp(addr: SocketAddr, buffer: usize) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        // Dual stack is a convenience; a system that refuses it still works.
        let _ = socket.set_only_v6(false);
    }
    if buffer > 0 {
        // Best effort: a smaller buffer still works, with more drops.
        let _ = socket.set_recv_buffer_size(buffer);
        let _ = socket.set_send_buffer_size(buffer);
        let granted = socket.recv_buffer_size().unwrap_or(0);
        if granted < buffer {
            tracing::debug!(
                asked = buffer,
                granted,
                "UDP receive buffer capped by the kernel (net.core.rmem_max)"
            );
        }
    }
    socket.bind(&addr.into())?;
    Ok(socket.into())
}

/// A quinn endpoint on a socket from [`bind_udp`] with `config`'s socket
/// buffer and endpoint settings ([`DriverConfig::endpoint`]): a server when
/// `server` is given, else a client. Must be called within a tokio runtime.
pub fn endpoint(
    addr: SocketAddr,
    server: Option<ServerConfig>,
    config: &DriverConfig,
) -> io::Result<Endpoint> {
    let socket = bind_udp(addr, config.socket_buffer)?;
    let runtime = Arc::new(quinn::TokioRuntime);
    Endpoint::new(config.endpoint(), server, socket, runtime)
}
