//! Cut-out instructions (切出し位置の指示): what a pathologist draws on a
//! specimen and sends back to the hospital that photographed it.
//!
//! An [`InstructionSet`] holds the marks (cut lines as polylines, regions as
//! polygons or rectangles, each with a label and free text) in the
//! specimen's pixel coordinates, and a short report. It travels over the
//! consented link as one [`Annotation`] message per mark followed by an
//! [`Instructions`] message: the set's canonical JSON ([`InstructionSet::to_document`])
//! and a detached CMS SignedData over those bytes, made with the
//! pathologist's HPKI signing key ([`sign`]: the card's non-repudiation key,
//! through PKCS#11, with the sub-CA certificate carried along).
//!
//! The receiving site keeps nothing until the whole set checks out
//! ([`Inbox`]): the signature verifies over the document, the signing
//! certificate chains to its HPKI roots for [`Purpose::HpkiSign`] with an
//! accepted policy and a physician's hcRole, the document is canonical,
//! names this specimen (study UID and size), every point is inside the
//! image, the set is within [`MAX_MARKS`] marks and [`MAX_TOTAL_POINTS`]
//! points, and each mark arrived as an `Annotation` message equal to what was
//! signed. Annotations never covered by a signature are refused
//! ([`Inbox::finish`]). [`store`] then writes the document, its signature and
//! an overlay PNG of the specimen with the marks drawn.
//!
//! The study UID of a specimen that has no DICOM identity is derived from
//! its samples ([`specimen_uid`]), so both ends name the same pixels.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use med8k_auth::cert::Purpose;
use med8k_auth::cert::{CertError, Profile, Revocation, Role, TrustStore};
use med8k_auth::consent::SignatureCheck;
use med8k_auth::consent::cms::{self, CmsError};
use med8k_auth::identity::Signer;
use med8k_media::spectral::SpectralCube;
use med8k_transport::proto::{
    Annotation, AnnotationTarget, Instructions, MAX_AUTHOR_LEN, MAX_LABEL_LEN, MAX_POINTS,
    MAX_TEXT_LEN, Point, Shape,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// The document format this code writes and accepts.
pub const FORMAT: &str = "med8k-cut-instructions/1";
/// Most marks in one set.
pub const MAX_MARKS: usize = 256;
/// Most points over all marks of one set.
pub const MAX_TOTAL_POINTS: usize = 65_536;
/// Longest report, in bytes of UTF-8.
pub const MAX_REPORT_LEN: usize = 8192;

/// The kind of a mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MarkShape {
    /// A cut line: an open polyline, at least 2 points.
    Polyline,
    /// A region: a closed polygon, at least 3 points.
    Polygon,
    /// A region: an axis-aligned rectangle, its 4 corners.
    Rectangle,
}

impl MarkShape {
    fn wire(self) -> Shape {
        match self {
            MarkShape::Polyline => Shape::Polyline,
            MarkShape::Polygon => Shape::Polygon,
            MarkShape::Rectangle => Shape::Rectangle,
        }
    }

    /// Points allowed.
    fn points(self) -> (usize, usize) {
        match self {
            MarkShape::Polyline => (2, MAX_POINTS),
            MarkShape::Polygon => (3, MAX_POINTS),
            MarkShape::Rectangle => (4, 4),
        }
    }
}

/// One mark: a cut line or a region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Mark {
    /// Identifier, unique in the set.
    pub id: u64,
    /// Line or region.
    pub shape: MarkShape,
    /// Points `[x, y]` in pixels of the specimen (0 ≤ x ≤ width, 0 ≤ y ≤ height).
    pub points: Vec<[f32; 2]>,
    /// Short label ("cut 1").
    pub label: String,
    /// What to do there.
    pub text: String,
}

/// What the marks are drawn on, as the link names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Target {
    /// A live frame (channel, sequence number).
    Frame {
        /// Channel.
        channel: u16,
        /// Sequence number.
        seq: u64,
    },
    /// A reliable object.
    Object {
        /// Its identifier.
        id: u64,
    },
}

impl Target {
    fn wire(self) -> AnnotationTarget {
        match self {
            Target::Frame { channel, seq } => AnnotationTarget::Frame { channel, seq },
            Target::Object { id } => AnnotationTarget::Object { object_id: id },
        }
    }
}

/// A pathologist's cut-out instructions for one specimen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstructionSet {
    /// [`FORMAT`].
    pub format: String,
    /// The specimen's study UID ([`specimen_uid`] or its DICOM Study Instance UID).
    pub study_uid: String,
    /// What it was sent as.
    pub target: Target,
    /// The specimen's width in pixels.
    pub width: u32,
    /// The specimen's height in pixels.
    pub height: u32,
    /// Who drew it: the signing certificate's subject common name.
    pub author: String,
    /// When it was signed, unix seconds.
    pub created: i64,
    /// The report.
    pub report: String,
    /// The marks.
    pub marks: Vec<Mark>,
}

/// Why a set of instructions was refused (nothing of it is stored).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum InstructionError {
    /// The set has no mark.
    #[error("the instructions hold no mark")]
    Empty,
    /// More marks than [`MAX_MARKS`].
    #[error("{count} marks in one set (at most {MAX_MARKS})")]
    TooManyMarks {
        /// Marks given.
        count: usize,
    },
    /// More points than [`MAX_TOTAL_POINTS`] over the set, or than a mark may have.
    #[error("mark {id}: {count} points; a {shape:?} takes {min}..={max}")]
    Points {
        /// The mark.
        id: u64,
        /// Its shape.
        shape: MarkShape,
        /// Points given.
        count: usize,
        /// Fewest allowed.
        min: usize,
        /// Most allowed.
        max: usize,
    },
    /// The set's points add up past [`MAX_TOTAL_POINTS`].
    #[error("{count} points in one set (at most {MAX_TOTAL_POINTS})")]
    TooManyPoints {
        /// Points given.
        count: usize,
    },
    /// Two marks share an identifier.
    #[error("mark {0} appears twice")]
    DuplicateId(u64),
    /// A point lies outside the image (or is not a number).
    #[error("mark {id}: point ({x}, {y}) is outside the {width}x{height} image")]
    OutsideImage {
        /// The mark.
        id: u64,
        /// Column.
        x: f32,
        /// Row.
        y: f32,
        /// Image width.
        width: u32,
        /// Image height.
        height: u32,
    },
    /// A rectangle whose corners are not axis-aligned.
    #[error("mark {0}: a rectangle's corners must be axis-aligned")]
    NotARectangle(u64),
    /// A text field is too long.
    #[error("{field} is {len} bytes (at most {max})")]
    TooLong {
        /// Which field.
        field: &'static str,
        /// Its length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// The document is not what this code reads.
    #[error("the instructions document cannot be read: {0}")]
    Document(String),
    /// The document parsed but is not in canonical form.
    #[error("the instructions document is not in canonical form")]
    NotCanonical,
    /// The set names another specimen.
    #[error("the instructions are for another specimen ({what})")]
    OtherSpecimen {
        /// What differs.
        what: String,
    },
    /// The signature or the signing certificate was refused.
    #[error("the signature was refused: {0}")]
    Signature(#[from] CmsError),
    /// The signer holds no accepted role.
    #[error("the signer is not a physician: {0}")]
    Role(#[from] CertError),
    /// Annotations arrived that no signature covers.
    #[error("{count} annotation(s) arrived without a signature: refused, nothing stored")]
    Unsigned {
        /// How many.
        count: usize,
    },
    /// A signed mark never arrived as an annotation, or arrived changed.
    #[error("mark {id} {what}")]
    Mismatch {
        /// The mark.
        id: u64,
        /// What is wrong with it.
        what: &'static str,
    },
    /// Signing failed (the card refused, the PIN was wrong...).
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The study UID of a specimen without a DICOM identity: `2.25.` and the
/// first 128 bits of the SHA-256 of its samples (band by band, little
/// endian), as a decimal integer (a UUID-derived UID, PS3.5 B.2).
pub fn specimen_uid(cube: &SpectralCube) -> String {
    let mut h = Sha256::new();
    h.update((cube.width() as u64).to_le_bytes());
    h.update((cube.height() as u64).to_le_bytes());
    for v in cube.data().iter() {
        h.update(v.to_le_bytes());
    }
    let d = h.finalize();
    let mut n = [0u8; 16];
    n.copy_from_slice(&d[..16]);
    format!("2.25.{}", u128::from_be_bytes(n))
}

impl InstructionSet {
    /// The canonical bytes: compact JSON, fields in declaration order.
    pub fn to_document(&self) -> Result<Vec<u8>, InstructionError> {
        serde_json::to_vec(self).map_err(|e| InstructionError::Document(e.to_string()))
    }

    /// Reads a document and checks it is canonical.
    pub fn from_document(bytes: &[u8]) -> Result<Self, InstructionError> {
        let set: InstructionSet =
            serde_json::from_slice(bytes).map_err(|e| InstructionError::Document(e.to_string()))?;
        if set.format != FORMAT {
            return Err(InstructionError::Document(format!(
                "format {:?}, expected {FORMAT:?}",
                set.format
            )));
        }
        if set.to_document()? != bytes {
            return Err(InstructionError::NotCanonical);
        }
        Ok(set)
    }

    /// Checks counts, lengths and that every point lies inside the image.
    pub fn check(&self) -> Result<(), InstructionError> {
        if self.marks.is_empty() {
            return Err(InstructionError::Empty);
        }
        if self.marks.len() > MAX_MARKS {
            return Err(InstructionError::TooManyMarks {
                count: self.marks.len(),
            });
        }
        long("report", &self.report, MAX_REPORT_LEN)?;
        long("author", &self.author, MAX_AUTHOR_LEN)?;
        let mut ids = std::collections::BTreeSet::new();
        let mut total = 0usize;
        for m in &self.marks {
            if !ids.insert(m.id) {
                return Err(InstructionError::DuplicateId(m.id));
            }
            let (min, max) = m.shape.points();
            if m.points.len() < min || m.points.len() > max {
                return Err(InstructionError::Points {
                    id: m.id,
                    shape: m.shape,
                    count: m.points.len(),
                    min,
                    max,
                });
            }
            total += m.points.len();
            if total > MAX_TOTAL_POINTS {
                return Err(InstructionError::TooManyPoints { count: total });
            }
            long("label", &m.label, MAX_LABEL_LEN)?;
            long("text", &m.text, MAX_TEXT_LEN)?;
            for &[x, y] in &m.points {
                let inside = x.is_finite()
                    && y.is_finite()
                    && (0.0..=self.width as f32).contains(&x)
                    && (0.0..=self.height as f32).contains(&y);
                if !inside {
                    return Err(InstructionError::OutsideImage {
                        id: m.id,
                        x,
                        y,
                        width: self.width,
                        height: self.height,
                    });
                }
            }
            if m.shape == MarkShape::Rectangle && !axis_aligned(&m.points) {
                return Err(InstructionError::NotARectangle(m.id));
            }
        }
        Ok(())
    }

    /// The marks as the link's `Annotation` messages.
    pub fn annotations(&self) -> Vec<Annotation> {
        self.marks
            .iter()
            .map(|m| Annotation {
                id: m.id,
                study_uid: self.study_uid.clone(),
                target: self.target.wire(),
                shape: m.shape.wire(),
                points: m.points.iter().map(|&[x, y]| Point { x, y }).collect(),
                label: m.label.clone(),
                author: self.author.clone(),
                text: m.text.clone(),
            })
            .collect()
    }
}

fn long(field: &'static str, s: &str, max: usize) -> Result<(), InstructionError> {
    if s.len() > max {
        return Err(InstructionError::TooLong {
            field,
            len: s.len(),
            max,
        });
    }
    Ok(())
}

fn axis_aligned(p: &[[f32; 2]]) -> bool {
    (0..4).all(|i| {
        let (a, b) = (p[i], p[(i + 1) % 4]);
        a[0] == b[0] || a[1] == b[1]
    })
}

/// The subject common name of a certificate (the author of a set).
pub fn common_name(cert_der: &[u8]) -> String {
    let Ok(cert) = med8k_auth::cert::ParsedCert::from_der(cert_der) else {
        return String::from("(unreadable certificate)");
    };
    let subject = cert.subject();
    let cn = subject
        .split(',')
        .map(str::trim)
        .find_map(|part| part.strip_prefix("CN="))
        .unwrap_or(subject);
    let mut cn = cn.to_owned();
    while cn.len() > MAX_AUTHOR_LEN {
        cn.pop();
    }
    cn
}

/// Checks `set`, signs its document with `signer` (the HPKI signing key),
/// carrying `intermediates`, and returns the messages to send: one
/// `Annotation` per mark, then the `Instructions`.
pub fn sign(
    set: &InstructionSet,
    signer: &dyn Signer,
    intermediates: &[Vec<u8>],
) -> Result<(Vec<Annotation>, Instructions), InstructionError> {
    set.check()?;
    let document = set.to_document()?;
    let signature = cms::sign_detached_with_chain(&document, signer, intermediates, set.created)
        .map_err(|e| InstructionError::Signing(e.to_string()))?;
    Ok((
        set.annotations(),
        Instructions {
            study_uid: set.study_uid.clone(),
            document,
            signature,
        },
    ))
}

/// What a receiving site checks a set against.
pub struct Verifier {
    /// HPKI trust anchors.
    pub store: TrustStore,
    /// Policies (HPKI signing) and role names.
    pub profile: Profile,
    /// Roles allowed to send instructions (default: medical doctor).
    pub roles: Vec<Role>,
    /// CRLs or OCSP, when configured.
    pub revocation: Option<std::sync::Arc<dyn Revocation + Send + Sync>>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("roles", &self.roles)
            .field("revocation", &self.revocation.is_some())
            .finish_non_exhaustive()
    }
}

/// The specimen a site holds, as instructions must name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Specimen {
    /// Its study UID.
    pub study_uid: String,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
}

/// A set that verified.
#[derive(Debug, Clone)]
pub struct Received {
    /// The set.
    pub set: InstructionSet,
    /// The document's bytes, as signed.
    pub document: Vec<u8>,
    /// The detached signature.
    pub signature: Vec<u8>,
    /// The signer's subject (the physician, not a patient).
    pub signer: String,
    /// The common name in the signer's certificate.
    pub signer_name: String,
    /// The role that allowed it.
    pub role: Role,
}

/// Collects one session's annotations until a signed set covers them.
#[derive(Debug, Default)]
pub struct Inbox {
    pending: std::collections::BTreeMap<u64, Annotation>,
    points: usize,
    overflow: usize,
}

impl Inbox {
    /// An empty inbox.
    pub fn new() -> Self {
        Inbox::default()
    }

    /// Keeps an annotation until a signature covers it (bounded: past
    /// [`MAX_MARKS`] marks or [`MAX_TOTAL_POINTS`] points they are counted,
    /// not kept, and the set that follows is refused).
    pub fn annotation(&mut self, a: Annotation) {
        if self.pending.len() >= MAX_MARKS || self.points + a.points.len() > MAX_TOTAL_POINTS {
            self.overflow += 1;
            return;
        }
        self.points += a.points.len();
        if self.pending.insert(a.id, a).is_some() {
            self.overflow += 1;
        }
    }

    /// Checks a signed set against what arrived, the specimen and the
    /// verifier at time `at`. Success or failure, the annotations received so
    /// far are consumed.
    pub fn instructions(
        &mut self,
        msg: &Instructions,
        specimen: &Specimen,
        verifier: &Verifier,
        at: SystemTime,
    ) -> Result<Received, InstructionError> {
        let pending = std::mem::take(&mut self.pending);
        let overflow = std::mem::take(&mut self.overflow);
        self.points = 0;
        let mut check = SignatureCheck::new(&verifier.store, &verifier.profile);
        if let Some(r) = &verifier.revocation {
            check = check.with_revocation(r.as_ref());
        }
        let (chain, _) =
            cms::verify_detached_for(&msg.signature, &msg.document, &check, Purpose::HpkiSign, at)?;
        let role = verifier
            .profile
            .require_role(chain.leaf(), &verifier.roles)?;
        let set = InstructionSet::from_document(&msg.document)?;
        if set.study_uid != specimen.study_uid || msg.study_uid != specimen.study_uid {
            return Err(InstructionError::OtherSpecimen {
                what: "study UID".into(),
            });
        }
        if (set.width, set.height) != (specimen.width, specimen.height) {
            return Err(InstructionError::OtherSpecimen {
                what: format!(
                    "{}x{} signed, {}x{} held",
                    set.width, set.height, specimen.width, specimen.height
                ),
            });
        }
        set.check()?;
        if overflow > 0 {
            return Err(InstructionError::TooManyMarks {
                count: MAX_MARKS + overflow,
            });
        }
        let expected = set.annotations();
        for e in &expected {
            match pending.get(&e.id) {
                None => {
                    return Err(InstructionError::Mismatch {
                        id: e.id,
                        what: "is signed but never arrived",
                    });
                }
                Some(got) if got != e => {
                    return Err(InstructionError::Mismatch {
                        id: e.id,
                        what: "arrived different from what was signed",
                    });
                }
                Some(_) => {}
            }
        }
        if pending.len() != expected.len() {
            return Err(InstructionError::Unsigned {
                count: pending.len() - expected.len(),
            });
        }
        Ok(Received {
            signer: chain.leaf().subject().to_owned(),
            signer_name: common_name(chain.leaf().der()),
            set,
            document: msg.document.clone(),
            signature: msg.signature.clone(),
            role,
        })
    }

    /// At the session's end: annotations no signature covered are an error.
    pub fn finish(self) -> Result<(), InstructionError> {
        let count = self.pending.len() + self.overflow;
        if count > 0 {
            return Err(InstructionError::Unsigned { count });
        }
        Ok(())
    }
}

/// Files [`store`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The signed document (JSON).
    pub json: PathBuf,
    /// Its detached CMS signature (DER; `openssl cms -verify -inform DER
    /// -binary -content FILE.json` reads it).
    pub signature: PathBuf,
    /// The specimen with the marks drawn, when a picture was given.
    pub overlay: Option<PathBuf>,
    /// The instructions as a DICOM structured report in the specimen's
    /// study, when the specimen is a DICOM object.
    pub dicom: Option<PathBuf>,
}

/// Writes a verified set under `dir` as `instructions-<id>.json` and `.p7s`
/// (id: the first 8 bytes of the document's SHA-256), and, given the
/// specimen's rendering (8-bit RGB, the specimen's size), the overlay PNG.
pub fn store(
    dir: &Path,
    received: &Received,
    picture: Option<&med8k_colour::RgbImage>,
) -> std::io::Result<Stored> {
    std::fs::create_dir_all(dir)?;
    let digest = Sha256::digest(&received.document);
    let id: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
    let json = dir.join(format!("instructions-{id}.json"));
    let signature = dir.join(format!("instructions-{id}.p7s"));
    std::fs::write(&json, &received.document)?;
    std::fs::write(&signature, &received.signature)?;
    let overlay = match picture {
        Some(p) => {
            let path = dir.join(format!("instructions-{id}.overlay.png"));
            let drawn = crate::overlay::draw(p, &received.set.marks);
            med8k_colour::png_io::write_png_file(&path, &drawn)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            Some(path)
        }
        None => None,
    };
    Ok(Stored {
        json,
        signature,
        overlay,
        dicom: None,
    })
}
