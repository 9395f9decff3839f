//! The file sent on the reliable channel: its offer (kind from its name,
//! id from its SHA-256) and its pieces.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use anyhow::{Context, bail};
use med8k_transport::driver::Link;
use med8k_transport::proto::{ObjectKind, ObjectOffer};
use sha2::{Digest, Sha256};

use super::OBJECT_PIECE;

/// The object being sent.
pub(super) struct Outgoing {
    pub(super) id: u64,
    pub(super) kind: ObjectKind,
    pub(super) file: std::fs::File,
    pub(super) size: u64,
    pub(super) sha: [u8; 32],
    pub(super) next: Option<u64>,
    pub(super) delivered: bool,
}

/// What the receiver is told the object is, from its name: DICOM Part 10
/// (`.dcm`), a spectral cube (ENVI `.hdr`/`.raw`/`.img`), a
/// still image, or other.
pub(super) fn object_kind(path: &Path) -> ObjectKind {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    match ext.as_deref() {
        Some("dcm" | "dicom") => ObjectKind::Dicom,
        Some("hdr" | "raw" | "img") => ObjectKind::SpectralCube,
        Some("png" | "tif" | "tiff" | "pgm" | "ppm" | "jpg" | "jpeg") => ObjectKind::Image,
        _ => ObjectKind::Other,
    }
}

pub(super) fn open_object(path: &Path) -> anyhow::Result<Outgoing> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; OBJECT_PIECE];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("reading {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    if size == 0 {
        bail!("{} is empty", path.display());
    }
    let sha: [u8; 32] = hasher.finalize().into();
    let id = u64::from_be_bytes(sha[..8].try_into()?);
    Ok(Outgoing {
        id,
        kind: object_kind(path),
        file,
        size,
        sha,
        next: None,
        delivered: false,
    })
}

impl Outgoing {
    pub(super) fn offer(&self) -> ObjectOffer {
        ObjectOffer {
            id: self.id,
            kind: self.kind,
            size: self.size,
            sha256: self.sha,
        }
    }

    pub(super) async fn send_piece(&mut self, link: &Link) -> anyhow::Result<()> {
        let Some(offset) = self.next else {
            return Ok(());
        };
        let len = (self.size - offset).min(OBJECT_PIECE as u64) as usize;
        let mut data = vec![0u8; len];
        self.file.seek(SeekFrom::Start(offset))?;
        self.file.read_exact(&mut data)?;
        link.send_object_data(self.id, offset, data).await?;
        let next = offset + len as u64;
        self.next = (next < self.size).then_some(next);
        Ok(())
    }
}
