//! The remote pathologist's desk (`med8k view --from`): the consented pull of
//! [`crate::fetch`], but the specimen stays in memory and is shown in the
//! browser viewer ([`crate::view`]); the link stays open, and the cut-out
//! instructions the pathologist draws go back over it, signed with the HPKI
//! signing key of the same card ([`crate::annotations`]), each sending
//! audited at this end.
//!
//! The frame's header carries no band table: a 16-bit picture of 7 bands is
//! taken as med8k's camera (410–650 nm every 40 nm, 40 nm wide, reflectance
//! 1.0 = 60000), and any other band count is refused.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use anyhow::{Context, anyhow, bail};
use med8k_auth::audit::{AuditEvent, AuditLog, EventKind, Outcome, Participant, Role as AuditRole};
use med8k_auth::consent::{ConsentPurpose, DataCategory, PatientId};
use med8k_auth::identity::Signer;
use med8k_auth::pkifile::PkiFile;
use med8k_media::picture::Layout;
use med8k_media::spectral::{SpectralCube, default_bands};
use med8k_transport::driver::Dialer;
use med8k_transport::proto::{Annotation, Capabilities, Ended, Event, Instructions};
use ndarray::Array3;
use tokio::sync::{mpsc, oneshot};

use crate::annotations::{self, InstructionSet, Target};
use crate::fetch::{holding_facility, token_key};
use crate::gate::{AccessClaim, ConsentCredentials};
use crate::site::SiteConfig;
use crate::view::{Outbox, Pyramid, ViewOptions, ViewSession, Viewer};

/// Reflectance 1.0 in med8k's cubes.
const MED8K_REFLECTANCE_SCALE: f32 = 60000.0;
/// How long to wait for the specimen once the gate permitted.
const FIRST_FRAME: Duration = Duration::from_secs(120);

/// What `med8k view --from` asks for.
#[derive(Debug, Clone)]
pub struct DeskOptions {
    /// The holding site.
    pub from: SocketAddr,
    /// This site's configuration.
    pub config: PathBuf,
    /// The holding facility (default: the one allowed).
    pub facility: Option<String>,
    /// The PKI directory (`pki.toml`).
    pub pki: PathBuf,
    /// The physician's HPKI token: its auth key logs in, its sign key signs.
    pub physician_token: String,
    /// The patient's JPKI token, when present.
    pub patient_token: Option<String>,
    /// PIN environment variables (physician, patient).
    pub pin_env: (Option<String>, Option<String>),
    /// The patient's pseudonym.
    pub patient: String,
    /// The data asked for.
    pub category: DataCategory,
    /// Why.
    pub purpose: ConsentPurpose,
    /// This end's audit log (each sending is recorded).
    pub audit: PathBuf,
    /// The viewer.
    pub view: ViewOptions,
}

/// What the desk reports as it runs.
#[derive(Debug)]
#[non_exhaustive]
pub enum DeskEvent {
    /// The gate permitted; the specimen is on its way.
    Permitted,
    /// The viewer is up at this URL (with its one-time token).
    Url(String),
    /// Instructions went out.
    Sent(String),
}

type Outgoing = (
    Vec<Annotation>,
    Instructions,
    oneshot::Sender<Result<(), String>>,
);

struct LinkOutbox {
    signer: Arc<dyn Signer>,
    intermediates: Vec<Vec<u8>>,
    tx: mpsc::Sender<Outgoing>,
    audit: Mutex<AuditLog>,
    salt: Vec<u8>,
    facility: String,
    on: Arc<Mutex<OnEvent>>,
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl LinkOutbox {
    fn audit(&self, kind: EventKind, outcome: Outcome, object: &str, detail: &str) {
        let physician = annotations::common_name(self.signer.certificate());
        let event = AuditEvent::new(kind, unix_now().max(0) as u64, outcome)
            .with_participant(Participant::new(
                AuditRole::Physician,
                &self.salt,
                &physician,
            ))
            .with_participant(Participant::new(
                AuditRole::Facility,
                &self.salt,
                &self.facility,
            ))
            .with_object(object)
            .with_detail(detail);
        if let Ok(mut log) = self.audit.lock()
            && let Err(e) = log.append(&event)
        {
            tracing::error!("audit log: {e}");
        }
    }
}

impl Outbox for LinkOutbox {
    fn send(&self, mut set: InstructionSet) -> Result<String, String> {
        set.author = annotations::common_name(self.signer.certificate());
        set.created = unix_now();
        let (marks, msg) = annotations::sign(&set, self.signer.as_ref(), &self.intermediates)
            .map_err(|e| e.to_string())?;
        let digest = med8k_auth::identity::sha256(&msg.document);
        let object: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let object = format!("cut-out instructions {object}");
        let n = marks.len();
        self.audit(
            EventKind::TransferStarted,
            Outcome::Success,
            &object,
            &format!("{n} marks, signed"),
        );
        let (reply, answer) = oneshot::channel();
        let result = self
            .tx
            .blocking_send((marks, msg, reply))
            .map_err(|_| format!("the link to {} has closed", self.facility))
            .and_then(|()| {
                answer
                    .blocking_recv()
                    .map_err(|_| format!("the link to {} has closed", self.facility))?
            });
        match result {
            Ok(()) => {
                self.audit(
                    EventKind::TransferCompleted,
                    Outcome::Success,
                    &object,
                    &format!("{n} marks"),
                );
                let line = format!("sent {n} signed mark(s) to {} ({object})", self.facility);
                if let Ok(mut on) = self.on.lock() {
                    on(DeskEvent::Sent(line.clone()));
                }
                Ok(line)
            }
            Err(e) => {
                self.audit(
                    EventKind::TransferFailed,
                    Outcome::SeriousFailure,
                    &object,
                    &e,
                );
                Err(e)
            }
        }
    }
}

/// What the desk tells its caller.
type OnEvent = Box<dyn FnMut(DeskEvent) + Send>;

/// A decoded 7-band picture as a cube.
fn cube_of(pic: med8k_media::picture::Picture) -> anyhow::Result<SpectralCube> {
    let Layout::Bands(n) = pic.layout() else {
        bail!(
            "the specimen is a {} picture, not a spectral cube",
            pic.layout()
        );
    };
    if n != 7 || pic.bit_depth() != 16 {
        bail!(
            "the specimen has {n} bands at {} bits; the viewer reads med8k's 7-band 16-bit cubes",
            pic.bit_depth()
        );
    }
    let (w, h) = (pic.width() as usize, pic.height() as usize);
    let mut data = Vec::with_capacity(7 * w * h);
    for p in pic.planes() {
        data.extend_from_slice(p);
    }
    let array = Array3::from_shape_vec((7, h, w), data).map_err(|e| anyhow!("specimen: {e}"))?;
    let mut cube = SpectralCube::new(default_bands(), array)?;
    cube.reflectance_scale = Some(MED8K_REFLECTANCE_SCALE);
    Ok(cube)
}

/// Connects through the holding site's gate, receives the specimen into
/// memory, serves it to the browser and sends back what the pathologist
/// signs, until the page ends the session, the idle timeout or the link
/// closes.
pub fn desk(
    args: &DeskOptions,
    on: Box<dyn FnMut(DeskEvent) + Send>,
) -> anyhow::Result<crate::view::ViewEnd> {
    let on = Arc::new(Mutex::new(on));
    let emit = |e: DeskEvent| {
        if let Ok(mut f) = on.lock() {
            f(e);
        }
    };
    let config = SiteConfig::load(&args.config)?;
    let site = config.site(Capabilities::RECEIVE_LIVE | Capabilities::ANNOTATE)?;
    let driver = config.driver_config();
    let facility = holding_facility(args.facility.as_ref(), &config)?;
    let patient = PatientId::parse(args.patient.as_str())
        .map_err(|_| anyhow!("--patient: a pseudonym is 64 lowercase hex digits"))?;
    let claim = AccessClaim {
        patient: patient.as_str().to_owned(),
        category: args.category,
        purpose: args.purpose,
        visit: None,
    };
    if let Some(d) = args.audit.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    let audit = AuditLog::open(&args.audit)
        .with_context(|| format!("audit log {}", args.audit.display()))?;
    let mut salt_path = args.audit.clone().into_os_string();
    salt_path.push(".salt");
    let salt =
        med8k_auth::audit::site_salt(PathBuf::from(salt_path).as_path()).context("audit salt")?;

    let pki = PkiFile::load(&args.pki)?;
    let module = pki.module()?;
    let label = &args.physician_token;
    let pin = pki.pin(label, "--pin-env", args.pin_env.0.as_deref())?;
    let session = module
        .login(label, &pin)
        .with_context(|| format!("token {label:?}"))?;
    drop(pin);
    let (auth, auth_chain) = token_key(&session, &pki, label, true)?;
    let (sign, sign_chain) = token_key(&session, &pki, label, false)?;
    let mut credentials = ConsentCredentials::new(auth, claim).with_physician_chain(auth_chain);
    let _patient_session = match &args.patient_token {
        Some(p) => {
            let pin = pki.pin(p, "--patient-pin-env", args.pin_env.1.as_deref())?;
            let s = module
                .login(p, &pin)
                .with_context(|| format!("token {p:?}"))?;
            let (signer, _) = token_key(&s, &pki, p, true)?;
            credentials = credentials.with_patient(signer);
            Some(s)
        }
        None => None,
    };

    let rt = crate::runtime()?;
    let result = rt.block_on(async {
        let mut dialer = Dialer::new(
            args.from,
            site,
            facility.clone(),
            Arc::new(credentials),
            driver,
        );
        let mut link = dialer
            .connect(Some(4))
            .await
            .with_context(|| format!("connecting to {facility} at {}", args.from))?;
        loop {
            match link.next_event().await {
                Some(Event::Open { .. }) => break,
                Some(Event::Closed { why, detail, .. }) => {
                    let reason = match why {
                        Ended::Denied(r) => format!("{r:?}"),
                        other => format!("{other:?}"),
                    };
                    bail!(
                        "refused by {facility}: {reason} ({})",
                        detail.split_whitespace().collect::<Vec<_>>().join(" ")
                    );
                }
                Some(_) => {}
                None => bail!("{facility}: the link ended before the gate decided"),
            }
        }
        emit(DeskEvent::Permitted);
        let frame = loop {
            match tokio::time::timeout(FIRST_FRAME, link.next_event()).await {
                Ok(Some(Event::Frame(f))) => break f,
                Ok(Some(Event::Closed { why, detail, .. })) => bail!(
                    "{facility} closed the session before the specimen arrived: {why:?} ({detail})"
                ),
                Ok(Some(_)) => {}
                Ok(None) => bail!("{facility}: the link ended before the specimen arrived"),
                Err(_) => bail!("{facility}: no specimen within {} s", FIRST_FRAME.as_secs()),
            }
        };
        let target = Target::Frame {
            channel: frame.header.channel,
            seq: frame.header.seq,
        };
        let payload = frame.payload;
        let pyramid = tokio::task::spawn_blocking(move || -> anyhow::Result<Pyramid> {
            let pic = med8k_codec::decode(&payload).context("decoding the specimen")?;
            Ok(Pyramid::new(cube_of(pic)?)?)
        })
        .await??;
        let (tx, mut rx) = mpsc::channel::<Outgoing>(1);
        let outbox = LinkOutbox {
            signer: sign,
            intermediates: sign_chain,
            tx,
            audit: Mutex::new(audit),
            salt,
            facility: facility.clone(),
            on: on.clone(),
        };
        let session = ViewSession::new(pyramid, target, format!("specimen from {facility}"))
            .with_outbox(Box::new(outbox));
        let viewer = Viewer::bind(session, args.view.clone()).await?;
        emit(DeskEvent::Url(viewer.url().to_owned()));
        let (closed_tx, closed_rx) = oneshot::channel::<()>();
        let link_task = tokio::spawn(async move {
            let mut closed = Some(closed_tx);
            let mut viewer_open = true;
            loop {
                tokio::select! {
                    event = link.next_event() => match event {
                        Some(Event::Closed { why, .. }) => {
                            tracing::warn!(?why, "the link closed");
                        }
                        Some(_) => {}
                        None => break,
                    },
                    out = rx.recv(), if viewer_open => match out {
                        Some((marks, msg, reply)) => {
                            let mut r = Ok(());
                            for a in marks {
                                if let Err(e) = link.send_annotation(a).await {
                                    r = Err(format!("sending: {e}"));
                                    break;
                                }
                            }
                            if r.is_ok()
                                && let Err(e) = link.send_instructions(msg).await
                            {
                                r = Err(format!("sending: {e}"));
                            }
                            let _ = reply.send(r);
                        }
                        None => {
                            viewer_open = false;
                            link.close("viewer ended");
                        }
                    },
                }
            }
            if let Some(c) = closed.take() {
                let _ = c.send(());
            }
        });
        let end = viewer
            .run(async move {
                let _ = closed_rx.await;
            })
            .await?;
        let _ = tokio::time::timeout(Duration::from_secs(3), link_task).await;
        Ok(end)
    });
    drop(module);
    result
}
