//! A physician's desk (`med8k fetch`): asks the hospital holding a
//! patient's data for it, and receives what its consent gate lets through.
//!
//! The model is pull: the holding hospital runs `med8k serve` with
//! `[gate] kind = "consent"` and `--source`; this command connects with the
//! physician's HPKI login (signed on their token over the session's
//! challenge, with the HPKI sub-CA certificate so the chain verifies), the
//! patient's JPKI login when `--patient-token` is given (the patient present
//! at this side), and the access claim (patient, category, purpose, visit).
//!
//! Reports [`FetchEvent::Permitted`] once the gate opened the session, then
//! returns what arrived ([`FetchReport`]); with an output folder the frames
//! are stored as an M8KS sequence `DIR/<facility>.m8ks` (what `med8k codec
//! decode` reads). A refusal is an error, `refused by FACILITY: REASON
//! (DETAIL)`; so is a session closed because consent was revoked.
//!
//! # Tokens and PINs
//! `--pki DIR` is a directory made by `med8k pki demo-init`: its `pki.toml`
//! names the PKCS#11 module, the SoftHSM2 configuration and, per token, its
//! keys and their certificate files. The authentication key of a token is
//! its key labelled `… auth`; the certificate file's further PEM blocks are
//! the intermediates sent along. A PIN comes from the environment variable
//! named by `--pin-env` (physician) or `--patient-pin-env` (patient), else
//! from `pki.toml` (demo only). PINs are never printed, nor is the patient's
//! pseudonym.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, anyhow, bail};
use med8k_auth::cert::pem_blocks;
use med8k_auth::consent::{ConsentPurpose, DataCategory, PatientId, VisitId};
use med8k_auth::identity::pkcs11::TokenSession;
use med8k_auth::identity::{Module, Signer};
use med8k_auth::pkifile::PkiFile;
use med8k_codec::sequence::SequenceWriter;
use med8k_transport::driver::{Dialer, Link};
use med8k_transport::proto::{Capabilities, CloseReason, DenyReason, Ended, Event};

use crate::count_lost;
use crate::gate::{AccessClaim, ConsentCredentials};
use crate::site::SiteConfig;

/// Attempts to reach the holding site before giving up.
const CONNECT_ATTEMPTS: u32 = 4;

/// What [`fetch`] asks for, and where from.
#[derive(Debug, Clone)]
pub struct FetchOptions {
    /// The holding site's address.
    pub from: SocketAddr,
    /// This (the requesting) site's configuration (TOML).
    pub config: PathBuf,
    /// The facility the holding site's certificate must name (default: the
    /// one allowed facility of the configuration).
    pub facility: Option<String>,
    /// The PKI directory (`pki.toml`: tokens, trust anchors).
    pub pki: PathBuf,
    /// The physician's HPKI token (label).
    pub physician_token: String,
    /// The patient's JPKI token (label), when the patient is present.
    pub patient_token: Option<String>,
    /// Environment variable holding the physician token's PIN (default: the
    /// demo PIN in pki.toml).
    pub pin_env: Option<String>,
    /// Environment variable holding the patient token's PIN (default: the
    /// demo PIN in pki.toml).
    pub patient_pin_env: Option<String>,
    /// The patient's pseudonym (64 hex digits).
    pub patient: String,
    /// The data asked for.
    pub category: DataCategory,
    /// Why.
    pub purpose: ConsentPurpose,
    /// The visit, for per-visit consent.
    pub visit: Option<String>,
    /// Store the frames received as DIR/<facility>.m8ks.
    pub out: Option<PathBuf>,
    /// Stop after this many frames.
    pub frames: Option<u64>,
}

/// What [`fetch`] reports as it runs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FetchEvent {
    /// The holding site's gate opened the session.
    Permitted,
}

/// What arrived.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct FetchReport {
    /// The holding facility.
    pub facility: String,
    /// Frames received.
    pub frames: u64,
    /// Their bytes.
    pub bytes: u64,
    /// Frames reported lost.
    pub lost: u64,
    /// From the session's opening to the last frame.
    pub seconds: f64,
    /// Where the frames were stored.
    pub stored: Option<PathBuf>,
    /// Why the holding site ended the session early, when it did (consent
    /// revoked, or refused on a re-check): an error to the caller, after
    /// what arrived before it.
    pub stopped: Option<String>,
}

/// A signing key and the intermediates of its certificate (DER).
pub(crate) type KeyAndChain = (Arc<dyn Signer>, Vec<Vec<u8>>);

/// Logs in to the token `label` and finds its authentication key.
fn open_auth_key(
    module: &Arc<Module>,
    pki: &PkiFile,
    label: &str,
    (flag, pin_env): (&str, Option<&str>),
) -> anyhow::Result<KeyAndChain> {
    let pin = pki.pin(label, flag, pin_env)?;
    let session = module
        .login(label, &pin)
        .with_context(|| format!("token {label:?}"))?;
    drop(pin);
    token_key(&session, pki, label, true)
}

/// The authentication (`auth`) or signing key of the token `label` on an
/// open session, and the intermediates of its certificate.
pub(crate) fn token_key(
    session: &TokenSession,
    pki: &PkiFile,
    label: &str,
    auth: bool,
) -> anyhow::Result<KeyAndChain> {
    let token = pki.token(label)?;
    let what = if auth { "authentication" } else { "signing" };
    let key = token
        .key
        .iter()
        .find(|k| k.is_auth() == auth)
        .with_context(|| format!("token {label:?}: pki.toml lists no {what} key"))?;
    let id = key.id_bytes().with_context(|| format!("token {label:?}"))?;
    let signer = session
        .signer(&id)
        .with_context(|| format!("token {label:?}"))?;
    let path = pki.path(&key.certificate);
    let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
    let blocks = pem_blocks(&pem, "CERTIFICATE").with_context(|| path.display().to_string())?;
    Ok((Arc::new(signer), blocks.into_iter().skip(1).collect()))
}

/// The facility to connect to: the one named (`--facility`), or the
/// configuration's one allowed facility.
pub(crate) fn holding_facility(
    named: Option<&String>,
    config: &SiteConfig,
) -> anyhow::Result<String> {
    match (named, config.allowed.as_slice()) {
        (Some(f), _) => Ok(f.clone()),
        (None, [only]) => Ok(only.clone()),
        (None, many) => bail!(
            "name the holding facility with --facility (allowed: {})",
            many.join(", ")
        ),
    }
}

/// The wire's deny reason in words.
fn deny_text(reason: DenyReason) -> &'static str {
    match reason {
        DenyReason::InvalidToken => "invalid token",
        DenyReason::Expired => "expired",
        DenyReason::NoConsent => "no consent",
        DenyReason::NotQualified => "not qualified",
        _ => "refused",
    }
}

/// One line of text from a peer's detail (it goes into a one-line error).
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Connects to the holding site with the physician's (and the patient's)
/// logins and the claim, and receives what the gate lets through.
pub fn fetch(
    args: &FetchOptions,
    on: &mut (dyn FnMut(FetchEvent) + Send),
) -> anyhow::Result<FetchReport> {
    let config = SiteConfig::load(&args.config)?;
    let site = config.site(Capabilities::RECEIVE_LIVE)?;
    let driver = config.driver_config();
    let facility = holding_facility(args.facility.as_ref(), &config)?;
    let patient = PatientId::parse(args.patient.as_str())
        .map_err(|_| anyhow!("--patient: a pseudonym is 64 lowercase hex digits"))?;
    if let Some(v) = &args.visit {
        VisitId::new(v.as_str()).map_err(|e| anyhow!("--visit: {e}"))?;
    }
    let claim = AccessClaim {
        patient: patient.as_str().to_owned(),
        category: args.category,
        purpose: args.purpose,
        visit: args.visit.clone(),
    };
    if args.frames == Some(0) {
        bail!("--frames must be at least 1");
    }

    let pki = PkiFile::load(&args.pki)?;
    let module = pki.module()?;
    let (physician, chain) = open_auth_key(
        &module,
        &pki,
        &args.physician_token,
        ("--pin-env", args.pin_env.as_deref()),
    )?;
    let mut credentials = ConsentCredentials::new(physician, claim).with_physician_chain(chain);
    if let Some(label) = &args.patient_token {
        let (patient, _) = open_auth_key(
            &module,
            &pki,
            label,
            ("--patient-pin-env", args.patient_pin_env.as_deref()),
        )?;
        credentials = credentials.with_patient(patient);
    }

    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let rt = crate::runtime()?;
    let result = rt.block_on(async {
        let mut dialer = Dialer::new(
            args.from,
            site,
            facility.clone(),
            Arc::new(credentials),
            driver,
        )
        .on_retry(|attempt, error, delay| {
            tracing::warn!(attempt, %error, ?delay, "connecting failed, trying again");
        });
        let mut link = dialer
            .connect(Some(CONNECT_ATTEMPTS))
            .await
            .with_context(|| format!("connecting to {facility} at {}", args.from))?;
        receive(&mut link, &facility, args, on).await
    });
    drop(module);
    result
}

async fn receive(
    link: &mut Link,
    facility: &str,
    args: &FetchOptions,
    on: &mut (dyn FnMut(FetchEvent) + Send),
) -> anyhow::Result<FetchReport> {
    // The gate's decision comes first.
    loop {
        match link.next_event().await {
            Some(Event::Open { .. }) => break,
            Some(Event::Closed { why, detail, .. }) => {
                let reason = match why {
                    Ended::Denied(r) => deny_text(r).to_owned(),
                    other => format!("{other:?}"),
                };
                bail!("refused by {facility}: {reason} ({})", one_line(&detail));
            }
            Some(_) => {}
            None => bail!("{facility}: the link ended before the gate decided"),
        }
    }
    on(FetchEvent::Permitted);

    let path = args
        .out
        .as_ref()
        .map(|d| d.join(format!("{facility}.m8ks")));
    let mut seq: Option<SequenceWriter<BufWriter<File>>> = None;
    let mut got = FetchReport {
        facility: facility.to_owned(),
        ..FetchReport::default()
    };
    let start = Instant::now();
    let mut last = start;
    let mut ended = None;
    while let Some(event) = link.next_event().await {
        match event {
            Event::Frame(f) => {
                got.frames += 1;
                got.bytes += f.payload.len() as u64;
                last = Instant::now();
                if let Some(p) = &path {
                    if seq.is_none() {
                        let file =
                            File::create(p).with_context(|| format!("creating {}", p.display()))?;
                        seq = Some(SequenceWriter::new(BufWriter::new(file))?);
                    }
                    if let Some(w) = seq.as_mut() {
                        w.write_frame(&f.payload)
                            .with_context(|| format!("writing {}", p.display()))?;
                    }
                }
                if args.frames.is_some_and(|n| got.frames >= n) {
                    link.close("enough frames");
                }
            }
            Event::FramesLost { ranges, .. } => got.lost += count_lost(&ranges),
            Event::Closed { why, detail, .. } => {
                ended = Some((why, detail));
            }
            _ => {}
        }
    }
    if let Some(w) = seq {
        w.finish()?.flush()?;
    }
    got.seconds = (last - start).as_secs_f64();
    got.stored = path.filter(|_| got.frames > 0);
    got.stopped = match ended {
        Some((Ended::Close(CloseReason::ConsentRevoked), detail)) => Some(format!(
            "closed by {facility}: consent revoked ({})",
            one_line(&detail)
        )),
        Some((Ended::Denied(r), detail)) => Some(format!(
            "refused by {facility}: {} ({})",
            deny_text(r),
            one_line(&detail)
        )),
        _ => None,
    };
    Ok(got)
}
