//! The pathologist's desk in a browser (`med8k view`): a small web server on
//! loopback that shows a 7-band specimen held in this process's memory, and
//! takes the pathologist's cut-out instructions.
//!
//! # What the page may reach
//! The server binds to 127.0.0.1 only and answers nothing without the
//! session: the URL it prints carries a random one-time token (`/?t=…`),
//! which the first request exchanges for an `HttpOnly`, `SameSite=Strict`
//! session cookie (no expiry: it lives in the browser's memory) and a
//! redirect to `/view`; the token is then used up. A request whose `Host`
//! is not this loopback address (DNS rebinding) is refused too.
//!
//! # What is kept where
//! Every response carries `Cache-Control: no-store` (a cache must not keep
//! it on disk), a content security policy that allows this origin only
//! (nothing is fetched from the network: the HTML, JS and CSS are compiled
//! into the binary, [`assets`]), `Referrer-Policy: no-referrer` and
//! `X-Content-Type-Options: nosniff`. The page registers no service worker
//! and writes nothing to localStorage, IndexedDB or the Cache API; the marks
//! being drawn are kept by this server, in memory. Ending the session
//! (`POST /api/end`, the page's "End session" button) answers with
//! `Clear-Site-Data: "cache", "cookies", "storage"` and stops the server;
//! so does the idle timeout ([`ViewOptions::idle`]). The images are dropped
//! when the server stops.
//!
//! # Routes (all but `/` need the session cookie)
//! | route | what |
//! | --- | --- |
//! | `GET /?t=TOKEN` | exchanges the token for the session cookie |
//! | `GET /view`, `/assets/*` | the page |
//! | `GET /api/info` | size, bands, levels, tile size, pixel spacing, study UID, whether sending is possible |
//! | `GET /api/tile/{level}/{x}/{y}?view=tc\|band\|fc\|rgb&ill=D65&b=3&r=6&g=3&bl=1` | a PNG tile |
//! | `GET /api/spectrum?x=&y=` | band values and the estimated reflectance curve |
//! | `GET/POST /api/marks`, `PUT/DELETE /api/marks/{id}`, `PUT /api/report` | the instructions being drawn |
//! | `POST /api/send` | signs and sends them ([`Outbox`]) |
//! | `POST /api/end` | ends the session |

mod assets;
pub mod pyramid;
mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

use crate::annotations::{InstructionSet, Mark, Specimen, Target};
pub use pyramid::{Pyramid, View};

/// Marks or sent sets shown read-only over the specimen (the sending site's
/// copy of what came back).
pub type Shown = Vec<Mark>;

/// Sends a finished set: fills in the author and time, signs it with the
/// pathologist's HPKI signing key and sends it over the link.
pub trait Outbox: Send + Sync {
    /// Signs and sends `set`; returns a line saying what was sent.
    fn send(&self, set: InstructionSet) -> Result<String, String>;
}

/// How the viewer runs.
#[derive(Debug, Clone)]
pub struct ViewOptions {
    /// Stop after this long without a request.
    pub idle: Duration,
    /// The specimen's pixel spacing in micrometres, when known (the scale bar).
    pub pixel_spacing_um: Option<f64>,
    /// Port on 127.0.0.1 (0: any free port).
    pub port: u16,
}

impl Default for ViewOptions {
    fn default() -> Self {
        ViewOptions {
            idle: Duration::from_secs(30 * 60),
            pixel_spacing_um: None,
            port: 0,
        }
    }
}

/// A specimen to show and what can be done with it.
pub struct ViewSession {
    pyramid: Pyramid,
    specimen: Specimen,
    target: Target,
    outbox: Option<Box<dyn Outbox>>,
    shown: Shown,
    title: String,
}

impl std::fmt::Debug for ViewSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ViewSession")
            .field("pyramid", &self.pyramid)
            .field("can_send", &self.outbox.is_some())
            .finish_non_exhaustive()
    }
}

impl ViewSession {
    /// A session over `pyramid`, which the link names as `target`; `title`
    /// is shown on the page (never a patient's name).
    pub fn new(pyramid: Pyramid, target: Target, title: impl Into<String>) -> Self {
        let cube = pyramid.cube();
        let specimen = Specimen {
            study_uid: crate::annotations::specimen_uid(cube),
            width: cube.width() as u32,
            height: cube.height() as u32,
        };
        ViewSession {
            pyramid,
            specimen,
            target,
            outbox: None,
            shown: Vec::new(),
            title: title.into(),
        }
    }

    /// Instructions can be sent through `outbox`.
    pub fn with_outbox(mut self, outbox: Box<dyn Outbox>) -> Self {
        self.outbox = Some(outbox);
        self
    }

    /// Shows these marks read-only (instructions received earlier).
    pub fn with_shown(mut self, shown: Shown) -> Self {
        self.shown = shown;
        self
    }

    /// The specimen as instructions name it.
    pub fn specimen(&self) -> &Specimen {
        &self.specimen
    }
}

/// The server's shared state.
pub(crate) struct State {
    session: ViewSession,
    options: ViewOptions,
    token: String,
    cookie: String,
    token_used: std::sync::atomic::AtomicBool,
    host: String,
    last: Mutex<Instant>,
    marks: Mutex<Vec<Mark>>,
    next_id: std::sync::atomic::AtomicU64,
    report: Mutex<String>,
    end: tokio::sync::Notify,
    ended_by: Mutex<Option<&'static str>>,
}

/// How a viewer session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ViewEnd {
    /// `"ended"` (the page), `"idle"` or `"stopped"`.
    pub why: &'static str,
}

/// 32 random bytes as hex.
fn secret() -> anyhow::Result<String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| anyhow::anyhow!("no system randomness for the session token"))?;
    Ok(b.iter().map(|x| format!("{x:02x}")).collect())
}

/// A viewer bound to loopback, not yet serving.
pub struct Viewer {
    listener: tokio::net::TcpListener,
    state: Arc<State>,
    url: String,
}

impl std::fmt::Debug for Viewer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Viewer").finish_non_exhaustive()
    }
}

impl Viewer {
    /// Binds 127.0.0.1 and makes the session's token.
    pub async fn bind(session: ViewSession, options: ViewOptions) -> anyhow::Result<Viewer> {
        let listener =
            tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], options.port)))
                .await
                .context("binding the viewer to 127.0.0.1")?;
        let addr = listener.local_addr()?;
        let token = secret()?;
        let url = format!("http://{addr}/?t={token}");
        let state = Arc::new(State {
            session,
            options,
            token,
            cookie: secret()?,
            token_used: false.into(),
            host: addr.to_string(),
            last: Mutex::new(Instant::now()),
            marks: Mutex::new(Vec::new()),
            next_id: 1.into(),
            report: Mutex::new(String::new()),
            end: tokio::sync::Notify::new(),
            ended_by: Mutex::new(None),
        });
        Ok(Viewer {
            listener,
            state,
            url,
        })
    }

    /// The URL to open (with the one-time token).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Serves until the page ends the session, the idle timeout, or `stop`.
    pub async fn run(
        self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<ViewEnd> {
        let state = self.state.clone();
        let app = routes::router(state.clone());
        let idle = state.options.idle;
        let watcher = {
            let state = state.clone();
            async move {
                let mut tick = tokio::time::interval(Duration::from_millis(500));
                loop {
                    tokio::select! {
                        () = state.end.notified() => break,
                        _ = tick.tick() => {
                            let last = state.last.lock().map(|l| *l).unwrap_or_else(|_| Instant::now());
                            if last.elapsed() > idle {
                                set_end(&state, "idle");
                                break;
                            }
                        }
                    }
                }
            }
        };
        let shutdown = {
            let state = state.clone();
            async move {
                tokio::select! {
                    () = watcher => {}
                    () = stop => set_end(&state, "stopped"),
                }
                // Let the answer to /api/end go out.
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        };
        axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .context("viewer server")?;
        let why = state
            .ended_by
            .lock()
            .ok()
            .and_then(|w| *w)
            .unwrap_or("stopped");
        Ok(ViewEnd { why })
    }
}

pub(crate) fn set_end(state: &State, why: &'static str) {
    if let Ok(mut w) = state.ended_by.lock()
        && w.is_none()
    {
        *w = Some(why);
    }
    state.end.notify_waiters();
    state.end.notify_one();
}

/// Opens `url` in the desktop's browser when there is one (`xdg-open`, with
/// a display); says whether it tried.
pub fn open_browser(url: &str) -> bool {
    let display =
        std::env::var_os("DISPLAY").is_some() || std::env::var_os("WAYLAND_DISPLAY").is_some();
    if !display {
        return false;
    }
    std::process::Command::new("xdg-open")
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}
