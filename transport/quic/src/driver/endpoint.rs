//! QUIC endpoints: the server that accepts sites, the client that connects
//! to one.

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, VarInt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::budget::Overall;
use super::gate::{Credentials, Gate};
use super::link::{self, Keep, Link, Role, Setup};
use super::tls::{self, SiteIdentity, TlsError, TrustConfig};
use super::{DriverConfig, codes};
use crate::proto::{CHALLENGE_LEN, Hello, ProtoError, Session, Transfers};

/// Links accepted but not yet taken by [`Server::accept`]; beyond it new
/// sites are turned away.
const ACCEPT_QUEUE: usize = 16;

/// This site: its certificate, whom it trusts, and its hello.
#[derive(Debug, Clone)]
pub struct Site {
    /// The facility certificate and key.
    pub identity: SiteIdentity,
    /// Roots and allowed facilities.
    pub trust: TrustConfig,
    /// What it says of itself (its `site_id` must be the facility its
    /// certificate names).
    pub hello: Hello,
}

/// Why a connection did not become a [`Link`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The TLS configuration could not be built.
    #[error(transparent)]
    Tls(#[from] TlsError),
    /// The UDP socket could not be bound.
    #[error("cannot bind a UDP socket: {0}")]
    Bind(io::Error),
    /// quinn refused to start the connection.
    #[error("cannot connect: {0}")]
    Connect(#[from] quinn::ConnectError),
    /// The QUIC/TLS handshake failed (an unknown CA, an expired
    /// certificate, a facility not allowed, no ALPN in common…) or the
    /// connection ended before the control stream opened.
    #[error("connection failed: {0}")]
    Connection(#[from] quinn::ConnectionError),
    /// The peer's certificate names no allowed facility.
    #[error("the peer's certificate names no allowed facility")]
    Facility,
    /// The expected facility is not among the allowed ones.
    #[error("facility {0:?} is not allowed by this site's trust configuration")]
    NotAllowed(String),
    /// No control stream within the handshake timeout.
    #[error("no control stream within the handshake timeout")]
    Timeout,
    /// The session could not be created (an invalid hello).
    #[error("invalid session: {0}")]
    Session(#[from] ProtoError),
    /// No random challenge could be drawn.
    #[error("no random bytes: {0}")]
    Random(rustls::Error),
    /// The server holds its most links (in all, or for this facility).
    #[error("server busy: {0}")]
    Busy(String),
}

/// A connection the server turned away before it became a link.
#[derive(Debug)]
pub struct Refused {
    /// The peer's address.
    pub remote: SocketAddr,
    /// Why.
    pub error: ConnectError,
}

/// Accepts sites: mutual TLS, then a session per connection whose
/// authorisation goes through the gate.
#[derive(Debug)]
pub struct Server {
    endpoint: Endpoint,
    accepted: mpsc::Receiver<Result<Link, Refused>>,
    task: JoinHandle<()>,
    overall: Arc<Overall>,
    occupancy: Arc<Mutex<Occupancy>>,
}

impl Server {
    /// Binds `addr` (IPv4 or IPv6) and starts accepting. Must be called
    /// within a tokio runtime.
    pub fn bind(
        addr: SocketAddr,
        site: Site,
        gate: Arc<dyn Gate>,
        config: DriverConfig,
    ) -> Result<Server, ConnectError> {
        validate_hello(&site.hello)?;
        let crypto = tls::server_config(&site.identity, &site.trust)?;
        let crypto =
            QuicServerConfig::try_from(crypto).map_err(|e| TlsError::Config(e.to_string()))?;
        let mut server_config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
        server_config.transport_config(config.transport());
        let endpoint = super::socket::endpoint(addr, Some(server_config), &config)
            .map_err(ConnectError::Bind)?;
        let (tx, accepted) = mpsc::channel(ACCEPT_QUEUE);
        let overall = Overall::new(config.effective_total_budget());
        let shared = Arc::new(Shared {
            site,
            gate,
            config,
            transfers: Mutex::new(HashMap::new()),
            occupancy: Arc::new(Mutex::new(Occupancy::default())),
            overall,
        });
        let overall = shared.overall.clone();
        let occupancy = shared.occupancy.clone();
        let task = tokio::spawn(accept_loop(endpoint.clone(), shared, tx));
        Ok(Server {
            endpoint,
            accepted,
            task,
            overall,
            occupancy,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.endpoint.local_addr()
    }

    /// The next connection: a link (its session still authorising) or a
    /// refusal. `None` once the server is closed.
    pub async fn accept(&mut self) -> Option<Result<Link, Refused>> {
        self.accepted.recv().await
    }

    /// Bytes of live frames all this server's links hold now, being read
    /// (at most [`DriverConfig::total_frame_budget`]).
    pub fn frame_bytes_reading(&self) -> usize {
        self.overall.reading()
    }

    /// Links held now.
    pub fn links(&self) -> usize {
        self.occupancy
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .all
    }

    /// Stops accepting and closes every connection.
    pub fn close(&self) {
        self.task.abort();
        self.endpoint
            .close(VarInt::from_u32(codes::NORMAL), b"server shutting down");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.close();
    }
}

struct Shared {
    site: Site,
    gate: Arc<dyn Gate>,
    config: DriverConfig,
    /// Object transfers of ended sessions, per facility (bounded by the
    /// allowed facilities), resumed by the facility's next session.
    transfers: Mutex<HashMap<String, Transfers>>,
    /// Links held now.
    occupancy: Arc<Mutex<Occupancy>>,
    /// The frame bytes all links hold together.
    overall: Arc<Overall>,
}

/// The links a server holds now, in all and per facility.
#[derive(Debug, Default)]
struct Occupancy {
    all: usize,
    per: HashMap<String, usize>,
}

/// One link's place on a server; given back when its session's task ends.
#[derive(Debug)]
pub(crate) struct Slot {
    occupancy: Arc<Mutex<Occupancy>>,
    facility: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut o = self
            .occupancy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        o.all = o.all.saturating_sub(1);
        if let Some(n) = o.per.get_mut(&self.facility) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                o.per.remove(&self.facility);
            }
        }
    }
}

impl Shared {
    fn take_transfers(&self, facility: &str) -> Transfers {
        let mut map = self
            .transfers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.remove(facility).unwrap_or_default()
    }

    /// A place for a link of `facility`, if the limits allow one.
    fn take_slot(&self, facility: &str) -> Result<Slot, ConnectError> {
        let mut o = self
            .occupancy
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let mine = o.per.get(facility).copied().unwrap_or(0);
        if o.all >= self.config.max_links {
            return Err(ConnectError::Busy(format!(
                "{} links held, the most",
                self.config.max_links
            )));
        }
        if mine >= self.config.max_links_per_facility {
            return Err(ConnectError::Busy(format!(
                "{mine} links of {facility} held, the most for one facility"
            )));
        }
        o.all += 1;
        *o.per.entry(facility.to_owned()).or_insert(0) += 1;
        Ok(Slot {
            occupancy: self.occupancy.clone(),
            facility: facility.to_owned(),
        })
    }

    fn keep_transfers(&self, facility: String, transfers: Transfers) {
        let mut map = self
            .transfers
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.insert(facility, transfers);
    }
}

async fn accept_loop(
    endpoint: Endpoint,
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<Link, Refused>>,
) {
    while let Some(incoming) = endpoint.accept().await {
        let shared = shared.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let remote = incoming.remote_address();
            let result = match incoming.await {
                Ok(conn) => server_session(conn, shared).await,
                Err(e) => Err(ConnectError::Connection(e)),
            }
            .map_err(|error| Refused { remote, error });
            if let Err(mpsc::error::TrySendError::Full(Ok(link))) = tx.try_send(result) {
                link.control()
                    .close(crate::proto::CloseReason::Shutdown, "server busy");
            }
        });
    }
}

async fn server_session(conn: Connection, shared: Arc<Shared>) -> Result<Link, ConnectError> {
    let config = &shared.config;
    let facility = checked_facility(&conn, &shared.site.trust)?;
    let slot = match shared.take_slot(&facility) {
        Ok(slot) => slot,
        Err(e) => {
            conn.close(VarInt::from_u32(codes::BUSY), b"server busy");
            return Err(e);
        }
    };
    let accept = tokio::time::timeout(config.session.handshake_timeout, conn.accept_bi()).await;
    let (send, recv) = match accept {
        Ok(r) => r?,
        Err(_) => {
            conn.close(VarInt::from_u32(codes::TIMEOUT), b"no control stream");
            return Err(ConnectError::Timeout);
        }
    };
    let mut challenge = [0u8; CHALLENGE_LEN];
    tls::random_bytes(&mut challenge).map_err(ConnectError::Random)?;
    let session = Session::server(
        Instant::now(),
        config.session.clone(),
        shared.site.hello.clone(),
        challenge,
    )?
    .with_transfers(shared.take_transfers(&facility));
    let store = shared.clone();
    let owner = facility.clone();
    Ok(link::spawn(Setup {
        conn,
        send,
        recv,
        session,
        facility,
        role: Role::Server(shared.gate.clone()),
        config: config.clone(),
        endpoint: None,
        keep: Keep::Store(Box::new(move |t| store.keep_transfers(owner, t))),
        overall: Some(shared.overall.clone()),
        slot: Some(slot),
    }))
}

/// The facility the peer's certificate names; closes the connection if
/// none (the TLS verifiers already refuse such peers: this is a second
/// line).
fn checked_facility(conn: &Connection, trust: &TrustConfig) -> Result<String, ConnectError> {
    match tls::peer_facility(conn, &trust.allowed_facilities) {
        Some(f) => Ok(f),
        None => {
            conn.close(
                VarInt::from_u32(codes::FACILITY_REFUSED),
                b"certificate names no allowed facility",
            );
            Err(ConnectError::Facility)
        }
    }
}

/// Connects to sites.
#[derive(Debug)]
pub struct Client;

impl Client {
    /// Connects to the site at `addr` whose certificate must name
    /// `facility`, from a fresh UDP socket of the same address family, and
    /// opens the control stream. The returned link's session is still
    /// authorising: wait for [`Event::Open`](crate::proto::Event::Open).
    pub async fn connect(
        addr: SocketAddr,
        site: &Site,
        facility: &str,
        credentials: Arc<dyn Credentials>,
        config: &DriverConfig,
    ) -> Result<Link, ConnectError> {
        Client::resume(addr, site, facility, credentials, config, Transfers::new()).await
    }

    /// As [`connect`](Self::connect), carrying over the object transfers of
    /// an earlier link to the same site ([`Link::into_transfers`]): objects
    /// not yet delivered are offered again when the session opens and
    /// resume from what the receiver acknowledged.
    pub async fn resume(
        addr: SocketAddr,
        site: &Site,
        facility: &str,
        credentials: Arc<dyn Credentials>,
        config: &DriverConfig,
        transfers: Transfers,
    ) -> Result<Link, ConnectError> {
        if !site.trust.allowed_facilities.iter().any(|f| f == facility) {
            return Err(ConnectError::NotAllowed(facility.to_owned()));
        }
        let session = Session::client(Instant::now(), config.session.clone(), site.hello.clone())?
            .with_transfers(transfers);
        let crypto = tls::client_config(&site.identity, &site.trust)?;
        let crypto =
            QuicClientConfig::try_from(crypto).map_err(|e| TlsError::Config(e.to_string()))?;
        let mut client_config = quinn::ClientConfig::new(Arc::new(crypto));
        client_config.transport_config(config.transport());
        let local: SocketAddr = if addr.is_ipv6() {
            (Ipv6Addr::UNSPECIFIED, 0).into()
        } else {
            (Ipv4Addr::UNSPECIFIED, 0).into()
        };
        let endpoint = super::socket::endpoint(local, None, config).map_err(ConnectError::Bind)?;
        let server_name = tls::facility_dns_name(facility);
        let conn = endpoint
            .connect_with(client_config, addr, &server_name)?
            .await?;
        let facility = checked_facility(&conn, &site.trust)?;
        let (send, recv) = conn.open_bi().await?;
        Ok(link::spawn(Setup {
            conn,
            send,
            recv,
            session,
            facility,
            role: Role::Client(credentials),
            config: config.clone(),
            endpoint: Some(endpoint),
            keep: Keep::Link,
            overall: None,
            slot: None,
        }))
    }
}

/// Checks a site's hello before binding.
fn validate_hello(hello: &Hello) -> Result<(), ProtoError> {
    crate::proto::Message::Hello(hello.clone()).validate()
}
