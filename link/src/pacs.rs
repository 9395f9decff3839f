//! The PACS side of a link: objects that arrive are stored into the site's
//! PACS, and DICOM objects leave only as the consent discloses them.
//!
//! - [`Forwarder`]: `med8k serve --pacs URL` hands it every DICOM object a
//!   link delivered (whole and SHA-256 checked, already in `--out`); a
//!   thread stores each into the PACS ([`med8k_dicom::pacs::Pacs`]: STOW-RS
//!   or C-STORE), retries with backoff when the PACS refuses or is down, and
//!   writes one audit event per object (stored or not) when the site has an
//!   audit log. The file stays in `--out` either way: nothing is lost, and
//!   `med8k dicom store` can store it again later.
//! - [`prepare_outgoing`]: what `med8k send` sends for a DICOM object (a
//!   file, or an instance or a study fetched from a PACS): de-identified to
//!   the consent's pseudonym, or as is when the consent discloses identity.
//!   A study travels as one object: a `multipart/related` bundle of its
//!   instances, which the receiving side stores instance by instance.

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use dicom_dictionary_std::tags;
use med8k_auth::audit::{AuditEvent, AuditLog, EventKind, Outcome, Participant, Role};
use med8k_dicom::identity::{
    Disclosure, PRIVATE_CREATOR, PRIVATE_GROUP, ProfileOptions, deidentify,
};
use med8k_dicom::import::{from_bytes, memory_name};
use med8k_dicom::pacs::Pacs;
use med8k_dicom::uid::log_id;
use med8k_dicom::web::{DicomWeb, split_multipart};

use crate::site::SiteConfig;

/// How often an object is tried before the forwarder gives up on it (it
/// stays in `--out`).
pub const ATTEMPTS: u32 = 4;
/// Boundary of a study bundle.
pub const BUNDLE_BOUNDARY: &str = "med8k-study-bundle-5d1c";
const BUNDLE_TYPE: &str =
    "multipart/related; type=\"application/dicom\"; boundary=med8k-study-bundle-5d1c";

/// Where audit events go: the site's audit log and its salt.
#[derive(Debug, Clone)]
pub struct Audit {
    log: PathBuf,
    salt: Vec<u8>,
}

impl Audit {
    /// The audit log of a site with a consent gate (`[gate] audit`); none
    /// for a development site.
    pub fn of_site(config: &Path) -> anyhow::Result<Option<Audit>> {
        let site = SiteConfig::load(config)?;
        let Some(c) = site.consent else {
            return Ok(None);
        };
        let salt = med8k_auth::audit::site_salt(&c.audit_salt_file)
            .with_context(|| format!("reading {}", c.audit_salt_file.display()))?;
        Ok(Some(Audit { log: c.audit, salt }))
    }

    fn record(
        &self,
        kind: EventKind,
        outcome: Outcome,
        facility: &str,
        object: &str,
        detail: &str,
    ) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        let event = AuditEvent::new(kind, now, outcome)
            .with_participant(Participant::new(Role::Facility, &self.salt, facility))
            .with_object(object)
            .with_detail(detail);
        match AuditLog::open(&self.log) {
            Ok(mut log) => {
                if let Err(e) = log.append(&event) {
                    tracing::error!(error = %e, "audit log append failed");
                }
            }
            Err(e) => tracing::error!(error = %e, "audit log open failed"),
        }
    }
}

/// What the forwarder did.
#[derive(Debug, Default)]
pub struct ForwardReport {
    /// Files stored, with the SOP Instance UIDs the PACS took.
    pub stored: Vec<(PathBuf, usize)>,
    /// Files not stored after [`ATTEMPTS`] tries, with the last error.
    pub failed: Vec<(PathBuf, String)>,
}

/// Stores arriving DICOM objects into a PACS on its own thread.
#[derive(Debug)]
pub struct Forwarder {
    tx: mpsc::Sender<(PathBuf, String)>,
    thread: JoinHandle<ForwardReport>,
}

impl Forwarder {
    /// Starts the thread for `pacs`; `audit` records each object.
    pub fn start(pacs: Pacs, audit: Option<Audit>) -> Forwarder {
        let (tx, rx) = mpsc::channel::<(PathBuf, String)>();
        let thread = std::thread::Builder::new()
            .name("med8k-pacs".into())
            .spawn(move || {
                let mut report = ForwardReport::default();
                for (path, facility) in rx {
                    let mut last = String::new();
                    let mut done = None;
                    for attempt in 0..ATTEMPTS {
                        if attempt > 0 {
                            std::thread::sleep(Duration::from_secs(1 << attempt.min(4)));
                        }
                        match store_object(&pacs, &path) {
                            Ok(uids) => {
                                done = Some(uids);
                                break;
                            }
                            Err(e) => {
                                last = format!("{e:#}");
                                tracing::warn!(attempt = attempt + 1, error = %last, "PACS store failed; will retry");
                            }
                        }
                    }
                    let object = format!("dicom:{}", path.file_name().map_or(String::new(), |n| n.to_string_lossy().into()));
                    match done {
                        Some(uids) => {
                            let ids: Vec<String> = uids.iter().map(|u| log_id(u)).collect();
                            if let Some(a) = &audit {
                                a.record(
                                    EventKind::TransferCompleted,
                                    Outcome::Success,
                                    &facility,
                                    &object,
                                    &format!("stored into PACS {}: instances {}", pacs.url(), ids.join(",")),
                                );
                            }
                            report.stored.push((path, uids.len()));
                        }
                        None => {
                            if let Some(a) = &audit {
                                a.record(EventKind::TransferFailed, Outcome::SeriousFailure, &facility, &object, &last);
                            }
                            report.failed.push((path, last));
                        }
                    }
                }
                report
            })
            .expect("spawning the PACS thread");
        Forwarder { tx, thread }
    }

    /// Queues an object that arrived from `facility`; other files are left alone.
    pub fn submit(&self, path: &Path, facility: &str) {
        if path.extension().is_some_and(|e| e == "dcm") {
            let _ = self.tx.send((path.to_path_buf(), facility.to_string()));
        }
    }

    /// Waits until every queued object is stored or given up.
    pub fn finish(self) -> ForwardReport {
        drop(self.tx);
        self.thread.join().unwrap_or_default()
    }
}

/// Stores one arrived object: a Part 10 file, or a study bundle (each
/// instance checked to be DICOM before anything is sent).
pub fn store_object(pacs: &Pacs, path: &Path) -> anyhow::Result<Vec<String>> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    if bytes.starts_with(format!("--{BUNDLE_BOUNDARY}").as_bytes()) {
        let parts = split_multipart(BUNDLE_TYPE, &bytes)
            .map_err(|e| anyhow::anyhow!("{}: study bundle: {e}", path.display()))?;
        let dir = tempfile::tempdir()?;
        let mut files = Vec::new();
        for (i, p) in parts.iter().enumerate() {
            let name = dir.path().join(format!(
                "{}-{i}.dcm",
                path.file_stem().unwrap_or_default().to_string_lossy()
            ));
            std::fs::write(&name, p)?;
            files.push(name);
        }
        return Ok(pacs.store_files(&files)?);
    }
    Ok(pacs.store_files(&[path.to_path_buf()])?)
}

/// Where a DICOM object to send comes from.
#[derive(Debug, Clone)]
pub enum DicomSource {
    /// A Part 10 file.
    File(PathBuf),
    /// A study in a PACS (DICOMweb root, Study Instance UID).
    Study(String, String),
    /// An instance in a PACS (root, study, series, instance UIDs).
    Instance(String, String, String, String),
}

fn disclose_bytes(name: &Path, bytes: &[u8], disclosure: &Disclosure) -> anyhow::Result<Vec<u8>> {
    let mut obj = from_bytes(name, bytes)?;
    let identified = obj
        .get(tags::PATIENT_IDENTITY_REMOVED)
        .and_then(|e| e.to_str().ok())
        .is_none_or(|v| v.trim() != "YES");
    match disclosure {
        Disclosure::Identified => {}
        Disclosure::Pseudonym(p) => {
            let ours = obj
                .get(dicom_core::Tag(PRIVATE_GROUP, 0x0010))
                .and_then(|e| e.to_str().ok())
                .is_some_and(|c| c.trim_end_matches(['\0', ' ']) == PRIVATE_CREATOR);
            let options = if ours {
                ProfileOptions::med8k_object()
            } else {
                ProfileOptions::default()
            };
            if identified || !ours {
                deidentify(&mut obj, p, options);
                let sop = obj
                    .get(tags::SOP_INSTANCE_UID)
                    .and_then(|e| e.to_str().ok())
                    .map(|s| s.trim_end_matches(['\0', ' ']).to_string())
                    .unwrap_or_default();
                obj.update_meta(|m| m.media_storage_sop_instance_uid = sop);
            }
        }
    }
    let mut out = Vec::with_capacity(bytes.len());
    obj.write_all(&mut out)
        .map_err(|e| anyhow::anyhow!("{}: writing the disclosed copy: {e}", name.display()))?;
    Ok(out)
}

/// The file `med8k send` sends for a DICOM object, written under `work`:
/// fetched from the PACS when it is there, and disclosed as `disclosure`
/// says. A study becomes one bundle.
pub fn prepare_outgoing(
    source: &DicomSource,
    disclosure: &Disclosure,
    work: &Path,
) -> anyhow::Result<PathBuf> {
    let timeout = Duration::from_secs(600);
    let parts: Vec<(PathBuf, Vec<u8>)> = match source {
        DicomSource::File(p) => {
            let b = std::fs::read(p).with_context(|| format!("reading {}", p.display()))?;
            vec![(p.clone(), b)]
        }
        DicomSource::Instance(url, study, series, instance) => {
            let b = DicomWeb::new(url, timeout)?.retrieve_instance(study, series, instance)?;
            vec![(memory_name("instance from the PACS"), b)]
        }
        DicomSource::Study(url, study) => {
            let all = DicomWeb::new(url, timeout)?.retrieve_study(study)?;
            if all.is_empty() {
                bail!("{url}: study {} has no instances", log_id(study));
            }
            all.into_iter()
                .map(|b| (memory_name("instance from the PACS"), b))
                .collect()
        }
    };
    let disclosed = parts
        .iter()
        .map(|(n, b)| disclose_bytes(n, b, disclosure))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let out = work.join(match source {
        DicomSource::Study(..) => "study-bundle.dcm",
        _ => "instance.dcm",
    });
    let body = if let DicomSource::Study(..) = source {
        let mut body = Vec::new();
        for b in &disclosed {
            body.extend_from_slice(
                format!("--{BUNDLE_BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n")
                    .as_bytes(),
            );
            body.extend_from_slice(b);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{BUNDLE_BOUNDARY}--\r\n").as_bytes());
        body
    } else {
        disclosed.into_iter().next().unwrap_or_default()
    };
    std::fs::write(&out, body).with_context(|| format!("writing {}", out.display()))?;
    Ok(out)
}
