//! A PACS, reached either way: DICOMweb or DIMSE. What `med8k serve --pacs`
//! and `med8k dicom store` call.

use std::path::PathBuf;
use std::time::Duration;

use crate::dimse::AeAddress;
use crate::error::PacsError;
use crate::web::DicomWeb;

/// Calling AE title med8k uses for C-STORE.
pub const CALLING_AE: &str = "MED8K";

/// Where objects are stored.
#[derive(Debug, Clone)]
pub enum Pacs {
    /// A DICOMweb root (STOW-RS, WADO-RS).
    Web(DicomWeb),
    /// A Storage SCP (C-STORE).
    Scp(AeAddress),
}

impl Pacs {
    /// `http://...` is DICOMweb, `AE@HOST:PORT` is DIMSE.
    pub fn parse(s: &str, timeout: Duration) -> Result<Self, PacsError> {
        if s.contains("://") {
            Ok(Pacs::Web(DicomWeb::new(s, timeout)?))
        } else {
            Ok(Pacs::Scp(s.parse()?))
        }
    }

    /// Where it is, for messages.
    pub fn url(&self) -> String {
        match self {
            Pacs::Web(w) => w.url().to_string(),
            Pacs::Scp(a) => a.to_string(),
        }
    }

    /// Stores Part 10 files; returns the SOP Instance UIDs stored. On error
    /// nothing is removed anywhere: the caller keeps the files and retries.
    pub fn store_files(&self, files: &[PathBuf]) -> Result<Vec<String>, PacsError> {
        match self {
            Pacs::Web(w) => Ok(w.store_files(files)?.instances),
            Pacs::Scp(a) => crate::dimse::store(a, CALLING_AE, files, Duration::from_secs(600)),
        }
    }
}
