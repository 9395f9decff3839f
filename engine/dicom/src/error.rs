//! One error type per family of operations: making and writing objects,
//! reading them back, talking to a PACS. Each names the file, tag or URL;
//! none carries a patient attribute's value.

use std::path::PathBuf;

use dicom_core::Tag;

/// Making or writing an object failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExportError {
    /// An input value is out of range or malformed.
    #[error("{what}: {reason}")]
    Invalid {
        /// Which input.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The pixel codec refused a frame.
    #[error("encoding frame {frame} as {syntax}: {reason}")]
    Encode {
        /// Frame index (0-based).
        frame: usize,
        /// The transfer syntax.
        syntax: &'static str,
        /// The codec's message.
        reason: String,
    },
    /// dicom-rs could not build or serialise the object.
    #[error("building the DICOM object: {reason}")]
    Build {
        /// dicom-rs's message.
        reason: String,
    },
    /// The file could not be written.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// Reading an object back failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// Not a readable DICOM Part 10 file (truncated, garbled, not DICOM).
    #[error("{path}: not a readable DICOM file: {reason}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// dicom-rs's message, on one line.
        reason: String,
    },
    /// A DICOM file of another IOD than the one asked for.
    #[error("{path}: SOP class {found} is not {expected}")]
    WrongIod {
        /// The file.
        path: PathBuf,
        /// The SOP Class UID found.
        found: String,
        /// What was expected.
        expected: &'static str,
    },
    /// A required attribute is missing.
    #[error("{path}: missing {name} {tag}")]
    Missing {
        /// The file.
        path: PathBuf,
        /// The attribute's tag.
        tag: Tag,
        /// Its keyword.
        name: &'static str,
    },
    /// An attribute has a value med8k cannot use.
    #[error("{path}: {name} {tag}: {reason}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// The attribute's tag.
        tag: Tag,
        /// Its keyword.
        name: &'static str,
        /// Why.
        reason: String,
    },
    /// A frame could not be decoded or is the wrong size.
    #[error("{path}: frame {frame}: {reason}")]
    Frame {
        /// The file.
        path: PathBuf,
        /// Frame index (0-based).
        frame: usize,
        /// Why.
        reason: String,
    },
}

/// Storing into or fetching from a PACS failed. The object stays where it
/// was; the caller may retry.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PacsError {
    /// The PACS could not be reached (refused, timed out, reset).
    #[error("{url}: unreachable: {reason}")]
    Unreachable {
        /// The PACS URL or DICOM address.
        url: String,
        /// What the network said.
        reason: String,
    },
    /// The PACS answered but refused (HTTP status or DIMSE status).
    #[error("{url}: refused{}: {reason}", file.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Refused {
        /// The PACS URL or DICOM address.
        url: String,
        /// The file refused, when one was.
        file: Option<PathBuf>,
        /// Status and the PACS's words.
        reason: String,
    },
    /// The PACS's answer was not what the protocol says.
    #[error("{url}: {reason}")]
    Protocol {
        /// The PACS URL or DICOM address.
        url: String,
        /// What was wrong.
        reason: String,
    },
    /// A local file to store could not be read or is not DICOM.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// A URL or address that cannot be used.
    #[error("{url}: {reason}")]
    Address {
        /// As given.
        url: String,
        /// Why.
        reason: String,
    },
}

/// Finding and reading a specimen's spectral image in a PACS study failed.
/// Studies and instances are named by a hash of their UID
/// ([`crate::uid::log_id`]), the PACS by its DICOMweb root: no UID, no
/// patient attribute and nothing the PACS said about the patient appears.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StudyError {
    /// The PACS could not be reached (down, refused, timed out).
    #[error("PACS {url} is unreachable: {reason}")]
    Unreachable {
        /// The DICOMweb root.
        url: String,
        /// What the network said.
        reason: String,
    },
    /// The PACS answered a query or retrieval with an error.
    #[error("PACS {url} refused {what} of study {study}: {reason}")]
    Refused {
        /// The DICOMweb root.
        url: String,
        /// `"QIDO-RS"` or `"WADO-RS"`.
        what: &'static str,
        /// The study, hashed.
        study: String,
        /// The HTTP status.
        reason: String,
    },
    /// The PACS holds no instance of the study.
    #[error("PACS {url} holds no study {study} (UIDs are named by a hash here)")]
    UnknownStudy {
        /// The DICOMweb root.
        url: String,
        /// The study, hashed.
        study: String,
    },
    /// The study (or the instance named) holds no image of the kind asked for.
    #[error("study {study}: no {bands}-band VL Whole Slide Microscopy spectral image ({found})")]
    NoSpectralImage {
        /// The study, hashed.
        study: String,
        /// The band count asked for.
        bands: usize,
        /// What the study holds instead.
        found: String,
    },
    /// More than one instance fits; the caller must name one.
    #[error(
        "study {study} holds {count} {bands}-band spectral images: name one with its series and instance UIDs"
    )]
    Ambiguous {
        /// The study, hashed.
        study: String,
        /// The band count asked for.
        bands: usize,
        /// How many fit.
        count: usize,
    },
    /// The instance was retrieved but cannot be read as a spectral image.
    #[error(transparent)]
    Import(#[from] ImportError),
}

/// dicom-rs errors span lines and may quote values; keep the first line.
pub(crate) fn one_line(e: &dyn std::fmt::Display) -> String {
    let s = e.to_string();
    s.lines().next().unwrap_or("").to_string()
}
