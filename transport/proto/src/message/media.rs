//! The messages that carry or concern media: live frame headers, detection
//! metadata, lost-frame reports, annotations, link statistics, reliable
//! objects.

use std::fmt;

use super::*;

/// How a frame's payload is coded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Codec {
    /// The med8k wavelet codec, lossless.
    WaveletLossless,
    /// The med8k wavelet codec, rate-controlled (visually lossless).
    WaveletLossy,
    /// AV1 (rav1e), usually a downscaled stream for thin links.
    Av1,
    /// Uncompressed samples.
    Raw,
}

/// How a picture's samples are arranged (mirrors the engine's layouts).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Layout {
    /// One plane of luminance.
    Gray,
    /// Red, green, blue.
    Rgb,
    /// Red, green, blue, alpha.
    Rgba,
    /// Y, Cb, Cr, chroma at half width.
    Yuv422,
    /// Y, Cb, Cr, chroma at half width and height.
    Yuv420,
    /// N spectral bands of equal size (1–[`MAX_BANDS`]).
    Bands(u16),
}

/// A picture's layout and sample depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PixelFormat {
    /// Planes and subsampling.
    pub layout: Layout,
    /// Significant bits per sample, 1–16.
    pub bit_depth: u8,
}

/// One entry of a frame's slice table: the slice's length in the payload and
/// its CRC-32 (IEEE, as `crc32fast::hash`), so a receiver checks each slice
/// and a decoder finds every slice without parsing the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Slice {
    /// Bytes of payload.
    pub len: u32,
    /// CRC-32 of those bytes.
    pub crc: u32,
}

/// The header of one live frame. It opens the frame's own unidirectional
/// stream; `payload_len` bytes of payload follow it there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrameHeader {
    /// Which live channel (for example 0 = the 8K picture, 1 = an AV1 preview).
    pub channel: u16,
    /// Sequence number on the channel, from 0, one per frame sent; assigned
    /// by the sending session.
    pub seq: u64,
    /// Capture time in microseconds since the sender's session epoch, as the
    /// capture stage gave it (the receiver does not compare it to its clock).
    pub capture_us: u64,
    /// How the payload is coded.
    pub codec: Codec,
    /// Picture width in pixels, 1–[`MAX_DIMENSION`].
    pub width: u32,
    /// Picture height in pixels, 1–[`MAX_DIMENSION`].
    pub height: u32,
    /// Layout and depth.
    pub format: PixelFormat,
    /// Slices of the payload in order; empty, or lengths summing to `payload_len`.
    pub slices: Vec<Slice>,
    /// Bytes of payload that follow, at most [`MAX_FRAME_PAYLOAD`].
    pub payload_len: u32,
}

impl FrameHeader {
    pub(super) fn validate(&self) -> Result<(), ProtoError> {
        let ty = MessageType::FrameHeader;
        check_between(ty, "width", self.width.into(), 1, MAX_DIMENSION.into())?;
        check_between(ty, "height", self.height.into(), 1, MAX_DIMENSION.into())?;
        check_between(ty, "bit_depth", self.format.bit_depth.into(), 1, 16)?;
        if let Layout::Bands(n) = self.format.layout {
            check_between(ty, "bands", n.into(), 1, MAX_BANDS.into())?;
        }
        check_max(
            ty,
            "payload_len",
            self.payload_len.into(),
            MAX_FRAME_PAYLOAD.into(),
        )?;
        check_count(ty, "slices", self.slices.len(), 0, MAX_SLICES)?;
        if !self.slices.is_empty() {
            let sum: u64 = self.slices.iter().map(|s| u64::from(s.len)).sum();
            if sum != u64::from(self.payload_len) {
                return Err(ProtoError::OutOfRange {
                    ty,
                    field: "payload_len",
                    value: self.payload_len.to_string(),
                    allowed: format!("the sum of the slice lengths ({sum})"),
                });
            }
        }
        Ok(())
    }
}

/// One detected region, in coordinates normalised to the picture (0–1).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BoundingBox {
    /// Left edge.
    pub x: f32,
    /// Top edge.
    pub y: f32,
    /// Width.
    pub w: f32,
    /// Height.
    pub h: f32,
    /// The detector's score for this region (finite).
    pub score: f32,
    /// The model's class index.
    pub class: u16,
}

/// Anomaly detection results for one frame (which may be lost while its
/// metadata arrives; the receiver pairs them by channel and sequence).
#[derive(Debug, Clone, PartialEq)]
pub struct FrameMeta {
    /// Channel of the frame.
    pub channel: u16,
    /// Sequence number of the frame.
    pub seq: u64,
    /// Frame-level anomaly score (finite).
    pub score: f32,
    /// The threshold above which the frame counts as anomalous (finite).
    pub threshold: f32,
    /// Detected regions, at most [`MAX_BOXES`].
    pub boxes: Vec<BoundingBox>,
    /// The image-quality alarm's value and threshold, when the model has one.
    /// On the wire only to a peer that announced [`Capabilities::QUALITY`]
    /// (the session drops it for older peers, which would refuse the bytes).
    ///
    /// [`Capabilities::QUALITY`]: super::Capabilities::QUALITY
    pub quality: Option<Quality>,
}

/// The image-quality alarm of a frame: higher = the picture is less trustworthy
/// (defocus, blur, smoke, glare, exposure).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Quality {
    /// The model's quality value (finite).
    pub value: f32,
    /// Above it the frame cannot be trusted (finite).
    pub threshold: f32,
}

impl FrameMeta {
    pub(super) fn validate(&self) -> Result<(), ProtoError> {
        let ty = MessageType::FrameMeta;
        check_finite(ty, "score", self.score)?;
        check_finite(ty, "threshold", self.threshold)?;
        if let Some(q) = self.quality {
            check_finite(ty, "quality.value", q.value)?;
            check_finite(ty, "quality.threshold", q.threshold)?;
        }
        check_count(ty, "boxes", self.boxes.len(), 0, MAX_BOXES)?;
        for b in &self.boxes {
            for (field, v) in [
                ("box.x", b.x),
                ("box.y", b.y),
                ("box.w", b.w),
                ("box.h", b.h),
            ] {
                check_unit(ty, field, v)?;
            }
            check_finite(ty, "box.score", b.score)?;
        }
        Ok(())
    }
}

/// An inclusive range of sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SeqRange {
    /// First sequence number.
    pub first: u64,
    /// Last sequence number (≥ `first`).
    pub last: u64,
}

impl SeqRange {
    /// One sequence number.
    pub const fn single(seq: u64) -> SeqRange {
        SeqRange {
            first: seq,
            last: seq,
        }
    }

    /// How many sequence numbers the range holds (saturating).
    pub const fn count(self) -> u64 {
        self.last.saturating_sub(self.first).saturating_add(1)
    }
}

/// Live frames the receiver will never show: lost on the link, late past
/// their deadline, or overtaken by a newer frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FramesLost {
    /// Channel of the frames.
    pub channel: u16,
    /// 1–[`MAX_LOST_RANGES`] ranges, ascending and disjoint.
    pub ranges: Vec<SeqRange>,
}

impl FramesLost {
    pub(super) fn validate(&self) -> Result<(), ProtoError> {
        let ty = MessageType::FramesLost;
        check_count(ty, "ranges", self.ranges.len(), 1, MAX_LOST_RANGES)?;
        let mut floor: Option<u64> = None;
        for r in &self.ranges {
            if r.first > r.last {
                return Err(ProtoError::OutOfRange {
                    ty,
                    field: "range.last",
                    value: r.last.to_string(),
                    allowed: format!("{}..", r.first),
                });
            }
            if let Some(f) = floor
                && r.first <= f
            {
                return Err(ProtoError::OutOfRange {
                    ty,
                    field: "range.first",
                    value: r.first.to_string(),
                    allowed: format!("above {f} (ranges ascending and disjoint)"),
                });
            }
            floor = Some(r.last);
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Annotations

/// What an annotation is drawn on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnotationTarget {
    /// A live frame.
    Frame {
        /// Its channel.
        channel: u16,
        /// Its sequence number.
        seq: u64,
    },
    /// A reliable object (a pathology image).
    Object {
        /// Its object identifier.
        object_id: u64,
    },
}

/// The kind of drawing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Shape {
    /// An open line through the points (at least 2), such as a cut line.
    Polyline,
    /// A closed region (at least 3 points).
    Polygon,
    /// An axis-aligned rectangle: its 4 corners, in drawing order.
    Rectangle,
}

/// A point in pixels of the annotated image (finite, 0–[`MAX_COORDINATE`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Column.
    pub x: f32,
    /// Row.
    pub y: f32,
}

/// A drawing sent back by a pathologist: where to cut, or a region of note.
#[derive(Debug, Clone, PartialEq)]
pub struct Annotation {
    /// Identifier chosen by the author's site, unique per session.
    pub id: u64,
    /// The study (a DICOM Study Instance UID: digits and dots, 1–[`MAX_UID_LEN`] bytes).
    pub study_uid: String,
    /// What it is drawn on.
    pub target: AnnotationTarget,
    /// Line or region.
    pub shape: Shape,
    /// The points, at most [`MAX_POINTS`].
    pub points: Vec<Point>,
    /// What it means (UTF-8, at most [`MAX_LABEL_LEN`] bytes), for example "cut 1".
    pub label: String,
    /// Who drew it: a practitioner identifier of the author's site (at most
    /// [`MAX_AUTHOR_LEN`] bytes), never a patient's.
    pub author: String,
    /// Free text: what to do there (UTF-8, at most [`MAX_TEXT_LEN`] bytes).
    pub text: String,
}

impl Annotation {
    pub(super) fn validate(&self) -> Result<(), ProtoError> {
        let ty = MessageType::Annotation;
        check_count(ty, "study_uid length", self.study_uid.len(), 1, MAX_UID_LEN)?;
        if let Some(pos) = self
            .study_uid
            .bytes()
            .position(|b| !(b.is_ascii_digit() || b == b'.'))
        {
            return Err(ProtoError::OutOfRange {
                ty,
                field: "study_uid",
                value: format!("a byte at position {pos}"),
                allowed: "digits and '.'".to_owned(),
            });
        }
        let (min_points, max_points) = match self.shape {
            Shape::Polyline => (2, MAX_POINTS),
            Shape::Polygon => (3, MAX_POINTS),
            Shape::Rectangle => (4, 4),
        };
        check_count(ty, "points", self.points.len(), min_points, max_points)?;
        for p in &self.points {
            check_coordinate(ty, "point.x", p.x)?;
            check_coordinate(ty, "point.y", p.y)?;
        }
        check_str(ty, "label", &self.label, MAX_LABEL_LEN)?;
        check_str(ty, "author", &self.author, MAX_AUTHOR_LEN)?;
        check_str(ty, "text", &self.text, MAX_TEXT_LEN)
    }
}

/// A signed set of annotations (a pathologist's cut-out instructions): the
/// document that lists them with the report, and a detached CMS SignedData
/// over the document's bytes, made with the author's signing key. Sent after
/// the [`Annotation`]s it lists; the receiver checks that each listed
/// annotation arrived as sent and verifies the signature before it keeps any
/// of them.
#[derive(Clone, PartialEq, Eq)]
pub struct Instructions {
    /// The study (as in [`Annotation::study_uid`]).
    pub study_uid: String,
    /// The signed document (canonical JSON, 1–[`MAX_DOCUMENT_LEN`] bytes).
    pub document: Vec<u8>,
    /// Detached CMS SignedData over `document` (DER, 1–[`MAX_SIGNATURE_LEN`] bytes).
    pub signature: Vec<u8>,
}

impl fmt::Debug for Instructions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Instructions")
            .field("study_uid", &self.study_uid)
            .field("document_len", &self.document.len())
            .field("signature_len", &self.signature.len())
            .finish()
    }
}

impl Instructions {
    pub(super) fn validate(&self) -> Result<(), ProtoError> {
        let ty = MessageType::Instructions;
        check_count(ty, "study_uid length", self.study_uid.len(), 1, MAX_UID_LEN)?;
        check_count(
            ty,
            "document length",
            self.document.len(),
            1,
            MAX_DOCUMENT_LEN,
        )?;
        check_count(
            ty,
            "signature length",
            self.signature.len(),
            1,
            MAX_SIGNATURE_LEN,
        )
    }
}

// ---------------------------------------------------------------------------
// Link statistics

/// How the link is doing, as measured by the end that sends it: transport
/// figures from the QUIC driver, frame counts from the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LinkStats {
    /// Smoothed round-trip time, microseconds.
    pub rtt_us: u32,
    /// Packet loss, parts per million (0–1,000,000).
    pub loss_ppm: u32,
    /// Application bytes delivered per second, in bits per second.
    pub goodput_bps: u64,
    /// Live frames delivered to the host so far.
    pub frames_delivered: u64,
    /// Live frames that arrived after they had been given up (stale).
    pub frames_late: u64,
    /// Live frames declared lost so far.
    pub frames_lost: u64,
}

impl LinkStats {
    pub(super) fn validate(&self) -> Result<(), ProtoError> {
        check_max(
            MessageType::LinkStats,
            "loss_ppm",
            self.loss_ppm.into(),
            1_000_000,
        )
    }
}

// ---------------------------------------------------------------------------
// Reliable objects

/// What a reliable object holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ObjectKind {
    /// A DICOM Part 10 file.
    Dicom,
    /// A multispectral cube (ENVI or med8k container).
    SpectralCube,
    /// A still image (lossless).
    Image,
    /// Anything else.
    Other,
}

/// A reliable object on offer: sent when the sender has it, and again on
/// every new session until the receiver acknowledges it complete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectOffer {
    /// Identifier chosen by the sender, stable across sessions.
    pub id: u64,
    /// What it holds.
    pub kind: ObjectKind,
    /// Total size in bytes, 1–[`MAX_OBJECT_SIZE`].
    pub size: u64,
    /// SHA-256 of the whole object; the receiver checks it on completion.
    pub sha256: [u8; 32],
}

impl ObjectOffer {
    pub(super) fn validate(&self) -> Result<(), ProtoError> {
        check_between(
            MessageType::ObjectOffer,
            "size",
            self.size,
            1,
            MAX_OBJECT_SIZE,
        )
    }
}

/// The receiver's state for an object, carried in [`ObjectAck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AckState {
    /// Progress: the first `offset` bytes have arrived.
    Progress,
    /// Send from `offset` on (the answer to an offer, or after a gap).
    ResumeFrom,
    /// All bytes arrived and the SHA-256 matched.
    Complete,
    /// All bytes arrived and the SHA-256 did not match; everything is
    /// discarded, send again from 0.
    Corrupt,
    /// The receiver will not take this object (too large, identifier clash, full).
    Refused,
}

/// The receiver's acknowledgement of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ObjectAck {
    /// The object.
    pub id: u64,
    /// Bytes received and handed to the host, from the start.
    pub offset: u64,
    /// What the sender should do.
    pub state: AckState,
}

/// Bytes of a reliable object, at `offset` from its start.
#[derive(Clone, PartialEq, Eq)]
pub struct ObjectData {
    /// The object.
    pub id: u64,
    /// Where the bytes start.
    pub offset: u64,
    /// 1–[`MAX_CHUNK_LEN`] bytes.
    pub data: Vec<u8>,
}

impl fmt::Debug for ObjectData {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObjectData")
            .field("id", &self.id)
            .field("offset", &self.offset)
            .field("len", &self.data.len())
            .finish()
    }
}

impl ObjectData {
    pub(super) fn validate(&self) -> Result<(), ProtoError> {
        let ty = MessageType::ObjectData;
        check_count(ty, "data length", self.data.len(), 1, MAX_CHUNK_LEN)?;
        let end = self.offset.saturating_add(self.data.len() as u64);
        if end > MAX_OBJECT_SIZE {
            return Err(ProtoError::OutOfRange {
                ty,
                field: "offset",
                value: self.offset.to_string(),
                allowed: format!("offset + length ≤ {MAX_OBJECT_SIZE}"),
            });
        }
        Ok(())
    }
}
