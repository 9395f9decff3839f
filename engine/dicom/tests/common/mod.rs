//! Shared test helpers: the fixtures, a site and study, and the real
//! validators (dciodvfy from dicom3tools, dcmdump from DCMTK).

#![allow(dead_code)]

pub mod orthanc;

use std::path::{Path, PathBuf};
use std::process::Command;

use med8k_dicom::Site;
use med8k_dicom::identity::{Patient, StudyInfo};
use med8k_dicom::uid::UidRoot;
use med8k_media::spectral::{SpectralCube, envi};

/// The repository root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A real-derived 7-band fixture cube.
pub fn fixture(name: &str) -> SpectralCube {
    envi::read(&root().join(format!("samples/fixtures/{name}.hdr"))).expect("fixture cube")
}

/// A site with a configured root.
pub fn site() -> Site {
    Site::new(UidRoot::org("1.2.392.200036.9999.1").expect("root"))
        .with_institution("Site A Hospital")
}

/// A study at the sending site, with identifiers that must not leak.
pub fn study() -> StudyInfo {
    StudyInfo {
        patient: Patient {
            id: "PID-0042".into(),
            name: "YAMADA^HANAKO=山田^花子".into(),
            birth_date: "19610203".into(),
            sex: "F".into(),
        },
        study_id: "ST-7".into(),
        accession: "ACC-991".into(),
        description: "gross specimen".into(),
        date: "20260115".into(),
        time: "093000".into(),
    }
}

/// dciodvfy's verdict on a file: its error and warning lines.
#[derive(Debug)]
pub struct Verdict {
    pub errors: Vec<String>,
    pub warnings: Vec<String>,
    pub output: String,
}

/// Runs dciodvfy (dicom3tools) on `path`.
pub fn dciodvfy(path: &Path) -> Verdict {
    let out = Command::new("dciodvfy")
        .arg(path)
        .output()
        .expect("dciodvfy (Debian dicom3tools; scripts/setup-debian.sh installs it)");
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors = output
        .lines()
        .filter(|l| l.starts_with("Error") || l.contains(" - Error - "))
        .map(str::to_string)
        .collect();
    let warnings = output
        .lines()
        .filter(|l| l.starts_with("Warning") || l.contains(" - Warning - "))
        .map(str::to_string)
        .collect();
    Verdict {
        errors,
        warnings,
        output,
    }
}

/// Runs dcmdump (DCMTK) on `path`; panics unless it reads the whole file.
pub fn dcmdump(path: &Path) -> String {
    let out = Command::new("dcmdump")
        .arg("-q")
        .arg(path)
        .output()
        .expect("dcmdump (Debian dcmtk; scripts/setup-debian.sh installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "dcmdump failed on {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    text
}

/// Runs a DCMTK tool (`dcmconv`, `dcmdjpls`, ...) with `args`; panics with its
/// message unless it succeeds.
pub fn dcmtk(tool: &str, args: &[&Path]) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{tool} (Debian dcmtk): {e}"));
    assert!(
        out.status.success(),
        "{tool} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
