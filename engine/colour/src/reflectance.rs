//! Sets of reflectance spectra: read from CSV, or the measured sets shipped
//! with the crate.

use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::spectrum::{Extrapolation, GRID_LEN, REQUIRED_RANGE_NM, SpectraError, Table};
use crate::tables;

/// Largest reflectance accepted (fluorescent samples exceed 1; the RAW to ACES
/// set reaches 1.44). Values above this are almost surely percent.
pub const MAX_REFLECTANCE: f64 = 2.0;
/// Smallest reflectance accepted (measurement noise can dip slightly below 0).
pub const MIN_REFLECTANCE: f64 = -0.05;

/// The measured reflectance sets shipped with the crate (from colour-science 0.4.7).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[non_exhaustive]
pub enum ReflectanceSet {
    /// ColorChecker Classic, 24 patches measured by N. Ohta (1997), 5 nm.
    ColorCheckerOhta,
    /// ColorChecker Classic, BabelColor average of 30 charts (2012), 10 nm, 380–730 nm.
    ColorCheckerBabel,
    /// CIE 224:2017 colour-fidelity test samples (99), 5 nm.
    Cie2017Tcs99,
    /// RAW to ACES v1 camera training set (190 patches), 5 nm.
    RawToAces190,
}

impl ReflectanceSet {
    /// All shipped sets.
    pub const ALL: [ReflectanceSet; 4] = [
        ReflectanceSet::ColorCheckerOhta,
        ReflectanceSet::ColorCheckerBabel,
        ReflectanceSet::Cie2017Tcs99,
        ReflectanceSet::RawToAces190,
    ];

    /// The short name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            ReflectanceSet::ColorCheckerOhta => "colorchecker",
            ReflectanceSet::ColorCheckerBabel => "colorchecker-babel",
            ReflectanceSet::Cie2017Tcs99 => "cie2017",
            ReflectanceSet::RawToAces190 => "rawtoaces190",
        }
    }

    fn text(self) -> &'static str {
        match self {
            ReflectanceSet::ColorCheckerOhta => tables::REFL_COLORCHECKER_OHTA,
            ReflectanceSet::ColorCheckerBabel => tables::REFL_BABELCOLOR,
            ReflectanceSet::Cie2017Tcs99 => tables::REFL_CIE2017,
            ReflectanceSet::RawToAces190 => tables::REFL_RAWTOACES190,
        }
    }
}

impl fmt::Display for ReflectanceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not one of the shipped sets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown reflectance set {0:?} (known: colorchecker, colorchecker-babel, cie2017, rawtoaces190)"
)]
pub struct UnknownSet(pub String);

impl FromStr for ReflectanceSet {
    type Err = UnknownSet;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ReflectanceSet::ALL
            .into_iter()
            .find(|set| set.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownSet(s.to_string()))
    }
}

/// Why a reflectance file could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: std::path::PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The contents are not usable reflectance data.
    #[error(transparent)]
    Spectra(#[from] SpectraError),
}

/// A named set of reflectance spectra on the working grid (380–780 nm, 5 nm).
#[derive(Debug, Clone, PartialEq)]
pub struct Reflectances {
    name: String,
    labels: Vec<String>,
    spectra: Vec<[f64; GRID_LEN]>,
}

impl Reflectances {
    /// Reads reflectances from CSV text: first column wavelength in nm, one
    /// column per sample, values 0–1, any strictly increasing wavelength grid
    /// that covers 400–700 nm. Samples are resampled onto the working grid
    /// (linear inside the data, the end values held outside it).
    pub fn from_csv(name: &str, text: &str) -> Result<Self, SpectraError> {
        let table = Table::parse(text, name)?;
        table.check_covers(name, REQUIRED_RANGE_NM.0, REQUIRED_RANGE_NM.1)?;
        for (label, column) in table.labels.iter().zip(&table.columns) {
            for (&wl, &v) in table.wavelengths.iter().zip(column) {
                if !(MIN_REFLECTANCE..=MAX_REFLECTANCE).contains(&v) {
                    return Err(SpectraError::OutOfRange {
                        source_name: name.to_string(),
                        label: label.clone(),
                        wavelength_nm: wl,
                        value: v,
                        max: MAX_REFLECTANCE,
                    });
                }
            }
        }
        let spectra = (0..table.columns.len())
            .map(|j| table.column_on_grid(j, Extrapolation::Hold))
            .collect();
        Ok(Reflectances {
            name: name.to_string(),
            labels: table.labels,
            spectra,
        })
    }

    /// Reads a reflectance CSV file (see [`Reflectances::from_csv`]).
    pub fn from_csv_file(path: &Path) -> Result<Self, LoadError> {
        let text = std::fs::read_to_string(path).map_err(|source| LoadError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| path.display().to_string());
        Ok(Reflectances::from_csv(&name, &text)?)
    }

    /// One of the shipped measured sets.
    pub fn builtin(set: ReflectanceSet) -> Self {
        match Reflectances::from_csv(set.name(), set.text()) {
            Ok(r) => r,
            Err(e) => unreachable!("embedded set {set} is valid (tested): {e}"),
        }
    }

    /// Spectra given directly on the working grid.
    pub fn from_grid(name: &str, labels: Vec<String>, spectra: Vec<[f64; GRID_LEN]>) -> Self {
        Reflectances {
            name: name.to_string(),
            labels,
            spectra,
        }
    }

    /// Several sets as one (for a larger training set).
    pub fn union(name: &str, sets: &[Reflectances]) -> Self {
        Reflectances {
            name: name.to_string(),
            labels: sets.iter().flat_map(|s| s.labels.clone()).collect(),
            spectra: sets.iter().flat_map(|s| s.spectra.clone()).collect(),
        }
    }

    /// The set's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Sample names.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The spectra on the working grid.
    pub fn spectra(&self) -> &[[f64; GRID_LEN]] {
        &self.spectra
    }

    /// Number of samples.
    pub fn len(&self) -> usize {
        self.spectra.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.spectra.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_sets_load_with_their_sizes() {
        let sizes: Vec<usize> = ReflectanceSet::ALL
            .iter()
            .map(|&s| Reflectances::builtin(s).len())
            .collect();
        assert_eq!(sizes, vec![24, 24, 99, 190]);
        assert_eq!(
            "CIE2017".parse::<ReflectanceSet>(),
            Ok(ReflectanceSet::Cie2017Tcs99)
        );
    }

    #[test]
    fn csv_errors_name_the_problem() {
        let short = "wavelength,a\n410,0.5\n700,0.5\n";
        let e = Reflectances::from_csv("short.csv", short).unwrap_err();
        assert!(
            matches!(e, SpectraError::Coverage { first: 410.0, .. }),
            "{e}"
        );
        let percent = "wavelength,a\n400,50\n700,50\n";
        let e = Reflectances::from_csv("pct.csv", percent).unwrap_err();
        assert!(e.to_string().contains("percent"), "{e}");
        let missing = "wavelength,a,b\n400,0.5,0.5\n550,,0.5\n700,0.5,0.5\n";
        let e = Reflectances::from_csv("m.csv", missing).unwrap_err();
        assert!(matches!(e, SpectraError::NotANumber { line: 3, .. }), "{e}");
        let e = Reflectances::from_csv_file(Path::new("/nonexistent/x.csv")).unwrap_err();
        assert!(e.to_string().contains("/nonexistent/x.csv"));
    }

    #[test]
    fn coarse_grids_are_resampled() {
        let csv = "nm,grey\n400,0.5\n500,0.6\n600,0.7\n700,0.8\n";
        let r = Reflectances::from_csv("c", csv).unwrap();
        let s = &r.spectra()[0];
        assert_eq!(s[0], 0.5); // 380 held
        assert!((s[14] - 0.55).abs() < 1e-12); // 450
        assert_eq!(s[80], 0.8); // 780 held
    }
}
