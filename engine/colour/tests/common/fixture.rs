//! med8k's ENVI fixtures (read by the engine's reader) and their ground
//! truth, for tests and the example.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use med8k_colour::{BandSpec, Reflectances};

/// The repository root (this crate lives in engine/colour).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The fixtures folder.
pub fn fixtures_dir() -> PathBuf {
    repo_root().join("samples/fixtures")
}

/// The fixture names.
pub const FIXTURES: [&str; 3] = ["ihc_colon", "fundus", "he_region"];

/// A cube read from `.hdr` + `.raw` (BSQ, little-endian u16).
#[derive(Debug)]
pub struct Cube {
    pub width: usize,
    pub height: usize,
    pub bands: Vec<BandSpec>,
    pub scale: f64,
    pub data: Vec<u16>,
}

/// Reads fixture `name` (e.g. "he_region") with the engine's ENVI reader.
pub fn read_cube(name: &str) -> Result<Cube, String> {
    let path = fixtures_dir().join(format!("{name}.hdr"));
    let cube = med8k_media::spectral::envi::read(&path).map_err(|e| e.to_string())?;
    Ok(Cube {
        width: cube.width(),
        height: cube.height(),
        bands: cube.bands().iter().map(BandSpec::from).collect(),
        scale: f64::from(
            cube.reflectance_scale
                .ok_or(format!("{name}.hdr: no reflectance scale factor"))?,
        ),
        data: cube.data().iter().copied().collect(),
    })
}

/// One ground-truth pixel: position and XYZ under D65, D50, A (2°).
#[derive(Debug, Clone, Copy)]
pub struct TruthPixel {
    pub row: usize,
    pub col: usize,
    pub d65: [f64; 3],
    pub d50: [f64; 3],
    pub a: [f64; 3],
}

/// Reads `<name>.truth_xyz.csv`.
pub fn read_truth_xyz(name: &str) -> Result<Vec<TruthPixel>, String> {
    let path = fixtures_dir().join(format!("{name}.truth_xyz.csv"));
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<f64> = line
            .split(',')
            .map(|s| s.parse::<f64>().map_err(|e| format!("{line}: {e}")))
            .collect::<Result<_, _>>()?;
        if f.len() != 11 {
            return Err(format!("{}: bad line {line}", path.display()));
        }
        out.push(TruthPixel {
            row: f[0] as usize,
            col: f[1] as usize,
            d65: [f[2], f[3], f[4]],
            d50: [f[5], f[6], f[7]],
            a: [f[8], f[9], f[10]],
        });
    }
    Ok(out)
}

/// Reads `<name>.truth.csv` (the spectra at the same pixels, same order).
pub fn read_truth_spectra(name: &str) -> Result<Reflectances, String> {
    let path = fixtures_dir().join(format!("{name}.truth.csv"));
    Reflectances::from_csv_file(&path).map_err(|e| e.to_string())
}
