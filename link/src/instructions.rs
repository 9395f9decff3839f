//! The sending site's side of cut-out instructions (`med8k serve`): checks
//! each signed set a pathologist sends back over a link against the specimen
//! offered ([`crate::annotations::Inbox`]), stores the ones that verify
//! (the signed JSON, its signature, an overlay PNG of the specimen with the
//! cut lines and, when the specimen is a DICOM object, a structured report
//! in its study for the PACS), audits every set, kept or refused, and says
//! who sent what.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use anyhow::Context;
use dicom_object::InMemDicomObject;
use med8k_auth::audit::{AuditEvent, AuditLog, EventKind, Outcome, Participant, Role as AuditRole};
use med8k_auth::cert::{Profile, Role, StoreKind, TrustStore};
use med8k_colour::{RenderOptions, RgbImage};
use med8k_dicom::instructions::{CutMark, CutOut, Outline, cut_out_report};
use med8k_media::spectral::SpectralCube;
use med8k_transport::proto::Instructions;
use sha2::{Digest, Sha256};

use crate::annotations::{Inbox, InstructionError, Received, Specimen, Verifier, specimen_uid};
use crate::site::{ConsentSettings, SiteConfig};

/// What became of one signed set.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum InstructionOutcome {
    /// Verified and stored.
    Stored {
        /// The peer facility.
        facility: String,
        /// The signer (the physician's certificate subject).
        signer: String,
        /// Marks, and of them cut lines.
        marks: usize,
        /// Cut lines among them.
        cut_lines: usize,
        /// The files written.
        files: crate::annotations::Stored,
    },
    /// Refused; nothing stored.
    Refused {
        /// The peer facility.
        facility: String,
        /// Why.
        reason: String,
    },
}

/// A serving site's instruction desk: what instructions are checked against
/// and where they go.
pub struct InstructionDesk {
    verifier: Verifier,
    specimen: Specimen,
    cube: Arc<SpectralCube>,
    picture: OnceLock<Option<RgbImage>>,
    /// The specimen's DICOM attributes (no pixels), when it is a DICOM object.
    dicom: Option<InMemDicomObject>,
    /// Where the structured report's UIDs and equipment come from.
    dicom_site: med8k_dicom::Site,
    dir: Option<PathBuf>,
    audit: Mutex<AuditLog>,
    salt: Vec<u8>,
}

impl std::fmt::Debug for InstructionDesk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InstructionDesk")
            .field("specimen", &self.specimen)
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl InstructionDesk {
    /// A desk for the cube offered from `source` (an ENVI `.hdr`, or a
    /// 7-band whole-slide DICOM object `.dcm` as `med8k dicom export`
    /// writes it), checked against the consent gate's HPKI roots and signing
    /// policies, stored under `dir/instructions` (nothing is stored without
    /// `dir`: every set is then refused). `None` when the source is neither.
    pub fn for_source(
        config: &SiteConfig,
        settings: &ConsentSettings,
        source: &Path,
        dir: Option<&Path>,
    ) -> anyhow::Result<Option<Self>> {
        let ext = source
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let (cube, dicom) = match ext.as_deref() {
            Some("hdr") => (
                med8k_media::spectral::envi::read(source)
                    .with_context(|| format!("reading {}", source.display()))?,
                None,
            ),
            Some("dcm") => {
                let obj = med8k_dicom::import::open(source)?;
                let cube = med8k_dicom::import::cube_from_object(source, &obj)?;
                let mut attributes = obj.into_inner();
                attributes.remove_element(dicom_dictionary_std::tags::PIXEL_DATA);
                (cube, Some(attributes))
            }
            _ => return Ok(None),
        };
        let specimen = Specimen {
            study_uid: specimen_uid(&cube),
            width: cube.width() as u32,
            height: cube.height() as u32,
        };
        let profile = Profile::new(crate::gate::profile_config(settings)?);
        let store = TrustStore::from_pem_files(StoreKind::Hpki, &settings.hpki_roots)?;
        let revocation = crate::gate::revocation(settings)?;
        Ok(Some(InstructionDesk {
            verifier: Verifier {
                store,
                profile,
                roles: vec![Role::MedicalDoctor],
                revocation,
            },
            specimen,
            cube: Arc::new(cube),
            picture: OnceLock::new(),
            dicom,
            dicom_site: med8k_dicom::Site::new(med8k_dicom::uid::UidRoot::Uuid)
                .with_institution(&config.name),
            dir: dir.map(|d| d.join("instructions")),
            audit: Mutex::new(AuditLog::open(&settings.audit)?),
            salt: med8k_auth::audit::site_salt(&settings.audit_salt_file)?,
        }))
    }

    /// The specimen instructions must name.
    pub fn specimen(&self) -> &Specimen {
        &self.specimen
    }

    fn picture(&self) -> Option<&RgbImage> {
        self.picture
            .get_or_init(|| {
                med8k_colour::CubeRef::from_cube(&self.cube)
                    .and_then(|c| med8k_colour::render(&c, &RenderOptions::default()))
                    .map_err(|e| tracing::warn!("rendering the specimen for the overlay: {e}"))
                    .ok()
            })
            .as_ref()
    }

    fn audit(
        &self,
        kind: EventKind,
        outcome: Outcome,
        facility: &str,
        signer: Option<&str>,
        detail: &str,
    ) {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut event = AuditEvent::new(kind, now, outcome)
            .with_participant(Participant::new(AuditRole::Facility, &self.salt, facility))
            .with_object(format!(
                "cut-out instructions for study {}",
                self.specimen.study_uid
            ))
            .with_detail(detail);
        if let Some(s) = signer {
            event = event.with_participant(Participant::new(AuditRole::Physician, &self.salt, s));
        }
        if let Ok(mut log) = self.audit.lock()
            && let Err(e) = log.append(&event)
        {
            tracing::error!("audit log: {e}");
        }
    }

    /// Checks and stores one signed set that arrived from `facility`
    /// (blocking: signature checks, a render of the specimen, files).
    pub fn receive(
        &self,
        inbox: &mut Inbox,
        facility: &str,
        msg: &Instructions,
    ) -> InstructionOutcome {
        let checked: Result<Received, String> = inbox
            .instructions(msg, &self.specimen, &self.verifier, SystemTime::now())
            .map_err(|e| e.to_string());
        let stored = checked.and_then(|r| match &self.dir {
            None => Err("serve has no --out folder: nothing can be stored".to_owned()),
            Some(dir) => crate::annotations::store(dir, &r, self.picture())
                .map(|mut files| {
                    files.dicom = self.structured_report(&r, &files.json, facility);
                    (r, files)
                })
                .map_err(|e| format!("storing: {e}")),
        });
        match stored {
            Ok((r, files)) => {
                let cut_lines = r
                    .set
                    .marks
                    .iter()
                    .filter(|m| m.shape == crate::annotations::MarkShape::Polyline)
                    .count();
                self.audit(
                    EventKind::TransferCompleted,
                    Outcome::Success,
                    facility,
                    Some(&r.signer),
                    &format!(
                        "{} marks verified ({:?}) and stored",
                        r.set.marks.len(),
                        r.role
                    ),
                );
                InstructionOutcome::Stored {
                    facility: facility.to_owned(),
                    signer: r.signer,
                    marks: r.set.marks.len(),
                    cut_lines,
                    files,
                }
            }
            Err(reason) => {
                self.audit(
                    EventKind::TransferFailed,
                    Outcome::SeriousFailure,
                    facility,
                    None,
                    &reason,
                );
                InstructionOutcome::Refused {
                    facility: facility.to_owned(),
                    reason,
                }
            }
        }
    }

    /// The verified set as a structured report beside its JSON
    /// (`instructions-ID.dcm`), when the specimen is a DICOM object (sent by
    /// the physician at `facility`). The
    /// JSON and its signature are the record: a report that cannot be made
    /// or written is logged and left out.
    fn structured_report(&self, r: &Received, json: &Path, facility: &str) -> Option<PathBuf> {
        let specimen = self.dicom.as_ref()?;
        let (y, mo, d, h, mi, sec) =
            med8k_auth::civil::civil_from_unix(med8k_auth::civil::unix(SystemTime::now()));
        let cut = CutOut {
            marks: r
                .set
                .marks
                .iter()
                .map(|m| CutMark {
                    outline: match m.shape {
                        crate::annotations::MarkShape::Polyline => Outline::CutLine,
                        crate::annotations::MarkShape::Polygon => Outline::Polygon,
                        crate::annotations::MarkShape::Rectangle => Outline::Rectangle,
                    },
                    label: m.label.clone(),
                    text: m.text.clone(),
                    points: m.points.clone(),
                })
                .collect(),
            report: r.set.report.clone(),
            physician: r.signer_name.clone(),
            facility: facility.to_owned(),
            document_sha256: Sha256::digest(&r.document)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect(),
            verified: (
                format!("{y:04}{mo:02}{d:02}"),
                format!("{h:02}{mi:02}{sec:02}"),
            ),
        };
        let path = json.with_extension("dcm");
        let written = cut_out_report(&cut, specimen, &self.dicom_site)
            .map_err(|e| e.to_string())
            .and_then(|sr| {
                sr.write(&path, med8k_dicom::Syntax::ExplicitLittle)
                    .map_err(|e| e.to_string())
            });
        match written {
            Ok(_) => Some(path),
            Err(e) => {
                tracing::warn!("cut-out instructions kept as JSON only: no structured report: {e}");
                None
            }
        }
    }

    /// At a link's end: annotations no signature covered are refused (and audited).
    pub fn finish(&self, inbox: Inbox, facility: &str) -> Option<InstructionOutcome> {
        match inbox.finish() {
            Ok(()) => None,
            Err(e @ InstructionError::Unsigned { .. }) => {
                let reason = e.to_string();
                self.audit(
                    EventKind::TransferFailed,
                    Outcome::SeriousFailure,
                    facility,
                    None,
                    &reason,
                );
                Some(InstructionOutcome::Refused {
                    facility: facility.to_owned(),
                    reason,
                })
            }
            Err(e) => Some(InstructionOutcome::Refused {
                facility: facility.to_owned(),
                reason: e.to_string(),
            }),
        }
    }
}

/// A link's handle on the desk: the desk and where outcomes are reported.
pub(crate) type DeskHandle = (
    Arc<InstructionDesk>,
    tokio::sync::mpsc::UnboundedSender<InstructionOutcome>,
);

/// A link received a signed set: check and store it (on this worker, which
/// may block), report the outcome. Without a desk the set is refused.
pub(crate) fn receive(
    desk: Option<&DeskHandle>,
    inbox: &mut Inbox,
    facility: &str,
    msg: &Instructions,
) {
    match desk {
        Some((desk, out)) => {
            let outcome = tokio::task::block_in_place(|| desk.receive(inbox, facility, msg));
            let _ = out.send(outcome);
        }
        None => {
            *inbox = Inbox::new();
            tracing::warn!(
                facility,
                "cut-out instructions refused: this site offers no cube with a consent gate to check them against"
            );
        }
    }
}

/// A link ended: report annotations that no signature covered.
pub(crate) fn finish(desk: Option<&DeskHandle>, inbox: Inbox, facility: &str) {
    if let Some((desk, out)) = desk
        && let Some(outcome) = desk.finish(inbox, facility)
    {
        let _ = out.send(outcome);
    }
}
