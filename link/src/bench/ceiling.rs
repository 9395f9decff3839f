//! Phase 1: the plain quinn ceiling. One connection with the link's TLS,
//! transport settings and sockets, one unidirectional stream written as
//! fast as it goes; goodput is counted at the receiver for the phase's
//! seconds from the first byte.
//!
//! Bounded: the connection has [`CONNECT_TIMEOUT`] to come up (a path that
//! delivers nothing fails here, saying so), the counting stops after the
//! seconds, and the whole phase is cut at seconds + [`CONNECT_TIMEOUT`] +
//! [`GRACE`] whatever quinn does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow};
use med8k_transport::driver::socket;
use med8k_transport::driver::tls::{self, facility_dns_name};
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};

use super::{CONNECT_TIMEOUT, GRACE, RECEIVER, Setup};
use crate::mbps;

/// Bytes per write.
const BULK_WRITE: usize = 1 << 20;

/// What the ceiling came to.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ceiling {
    /// Goodput at the receiver.
    pub mbps: f64,
    /// The UDP payload the sender's connection had reached at the end.
    pub udp_payload: u16,
}

/// Plain quinn on the setup's path, or what went wrong.
pub(super) async fn run(setup: &Setup, seconds: Duration) -> Result<Ceiling, String> {
    let limit = seconds + CONNECT_TIMEOUT + GRACE;
    match tokio::time::timeout(limit, bulk(setup, seconds)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(_) => Err(format!("did not end within {:.0} s", limit.as_secs_f64())),
    }
}

/// Aborts a task when dropped (a phase cut short leaves nothing running).
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn bulk(setup: &Setup, seconds: Duration) -> anyhow::Result<Ceiling> {
    let transport = setup.config.transport();
    let server_crypto =
        QuicServerConfig::try_from(tls::server_config(&setup.rx.identity, &setup.rx.trust)?)?;
    let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(server_crypto));
    server_config.transport_config(transport.clone());
    let server = socket::endpoint("127.0.0.1:0".parse()?, Some(server_config), &setup.config)?;
    let (to, _relay) = setup.path(server.local_addr()?)?;

    let receiver = AbortOnDrop(tokio::spawn({
        let server = server.clone();
        async move {
            let incoming = tokio::time::timeout(CONNECT_TIMEOUT, server.accept())
                .await
                .map_err(|_| no_connection())?
                .context("the server closed")?;
            let conn = incoming.await?;
            let mut stream = conn.accept_uni().await?;
            // Counts for `seconds` from the first byte, then ends the
            // connection (what the sender buffered beyond does not count).
            let mut bytes = 0u64;
            let mut first: Option<Instant> = None;
            let mut last = Instant::now();
            while let Some(chunk) = stream.read_chunk(usize::MAX, true).await? {
                let now = Instant::now();
                let start = *first.get_or_insert(now);
                last = now;
                bytes += chunk.bytes.len() as u64;
                if now - start >= seconds {
                    break;
                }
            }
            conn.close(0u32.into(), b"done");
            let secs = first.map_or(0.0, |f| (last - f).as_secs_f64());
            anyhow::Ok(mbps(bytes, secs))
        }
    }));

    let client_crypto =
        QuicClientConfig::try_from(tls::client_config(&setup.tx.identity, &setup.tx.trust)?)?;
    let mut client_config = quinn::ClientConfig::new(Arc::new(client_crypto));
    client_config.transport_config(transport);
    let client = socket::endpoint("127.0.0.1:0".parse()?, None, &setup.config)?;
    let connecting = client.connect_with(client_config, to, &facility_dns_name(RECEIVER))?;
    let conn = tokio::time::timeout(CONNECT_TIMEOUT, connecting)
        .await
        .map_err(|_| no_connection())??;
    let mut stream = conn.open_uni().await?;
    let buf = vec![0x5au8; BULK_WRITE];
    // Writes until the receiver has counted enough and closes (a write then
    // fails), at most until the phase's seconds and the grace are over.
    let stop = tokio::time::Instant::now() + seconds + GRACE;
    while let Ok(Ok(())) = tokio::time::timeout_at(stop, stream.write_all(&buf)).await {}
    let mut receiver = receiver;
    let counted = tokio::time::timeout(GRACE, &mut receiver.0)
        .await
        .map_err(|_| anyhow!("the receiver did not finish within {GRACE:?}"))?
        .context("the receiver task")?;
    let udp_payload = conn.stats().path.current_mtu;
    conn.close(0u32.into(), b"done");
    let _ = tokio::time::timeout(Duration::from_secs(1), client.wait_idle()).await;
    server.close(0u32.into(), b"done");
    Ok(Ceiling {
        mbps: counted?,
        udp_payload,
    })
}

fn no_connection() -> anyhow::Error {
    anyhow!(
        "no connection within {} s: the path delivered nothing",
        CONNECT_TIMEOUT.as_secs()
    )
}
