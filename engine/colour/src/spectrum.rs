//! The working spectral grid, resampling onto it, and the spectral CSV format.
//!
//! Everything spectral in this crate lives on one grid: **380–780 nm every
//! 5 nm** (81 samples, [`GRID_LEN`]). That is the ASTM E308 5 nm measurement
//! interval, and the range over which the CIE observers carry all but a
//! negligible part of their weight.
//!
//! Data on other grids is resampled by [`resample`]: linear interpolation
//! between measured samples, and outside the measured range the nearest
//! measured value is held (the extrapolation CIE 15:2004 §7.2.2 recommends for
//! reflectance). Measured camera sensitivities are instead taken as zero outside
//! their measured range ([`Extrapolation::Zero`]).

/// First wavelength of the working grid, nm.
pub const GRID_START_NM: f64 = 380.0;
/// Spacing of the working grid, nm.
pub const GRID_STEP_NM: f64 = 5.0;
/// Samples on the working grid (380, 385, …, 780 nm).
pub const GRID_LEN: usize = 81;
/// The range a reflectance file must cover, nm.
pub const REQUIRED_RANGE_NM: (f64, f64) = (400.0, 700.0);

/// Wavelength of grid sample `i`, nm.
pub fn grid_nm(i: usize) -> f64 {
    GRID_START_NM + GRID_STEP_NM * i as f64
}

/// The working grid's wavelengths, nm.
pub fn grid() -> [f64; GRID_LEN] {
    std::array::from_fn(grid_nm)
}

/// Why spectral data could not be read or placed on the grid.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SpectraError {
    /// The text has no header line or no data rows.
    #[error("{source_name}: no {what}")]
    Empty {
        /// The file or table.
        source_name: String,
        /// "header" or "data rows".
        what: &'static str,
    },
    /// A data row has a different number of fields than the header.
    #[error("{source_name}: line {line} has {got} fields, the header has {want}")]
    FieldCount {
        /// The file or table.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// Fields on that line.
        got: usize,
        /// Fields in the header.
        want: usize,
    },
    /// A field is empty or not a finite number.
    #[error("{source_name}: line {line}, column {column} ({label}): {value:?} is not a number")]
    NotANumber {
        /// The file or table.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// 1-based column number.
        column: usize,
        /// The column's header.
        label: String,
        /// The text found.
        value: String,
    },
    /// Wavelengths are not strictly increasing.
    #[error("{source_name}: wavelength {value} nm on line {line} does not increase")]
    NotIncreasing {
        /// The file or table.
        source_name: String,
        /// 1-based line number.
        line: usize,
        /// The wavelength.
        value: f64,
    },
    /// The wavelengths do not cover the range needed.
    #[error(
        "{source_name}: wavelengths {first}–{last} nm do not cover the required {need_from}–{need_to} nm"
    )]
    Coverage {
        /// The file or table.
        source_name: String,
        /// First wavelength present.
        first: f64,
        /// Last wavelength present.
        last: f64,
        /// Start of the required range.
        need_from: f64,
        /// End of the required range.
        need_to: f64,
    },
    /// A reflectance value outside the plausible range (percent data, or garbage).
    #[error(
        "{source_name}: sample {label} at {wavelength_nm} nm is {value}; reflectance must be a fraction (0–1, up to {max} for fluorescent samples), not percent"
    )]
    OutOfRange {
        /// The file or table.
        source_name: String,
        /// The sample's column header.
        label: String,
        /// Where.
        wavelength_nm: f64,
        /// The value.
        value: f64,
        /// Largest value accepted.
        max: f64,
    },
}

/// What a resampled function does outside its measured range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Extrapolation {
    /// Hold the nearest measured value (reflectances, illuminants).
    Hold,
    /// Zero (measured sensitivities: no data means no response).
    Zero,
}

/// Resamples `(wavelengths, values)` onto the working grid by linear
/// interpolation. `wavelengths` must be strictly increasing and as long as
/// `values` (callers check; [`Table::parse`] does).
pub fn resample(wavelengths: &[f64], values: &[f64], extra: Extrapolation) -> [f64; GRID_LEN] {
    let n = wavelengths.len().min(values.len());
    std::array::from_fn(|i| {
        let wl = grid_nm(i);
        if n == 0 {
            return 0.0;
        }
        if wl < wavelengths[0] || wl > wavelengths[n - 1] {
            return match extra {
                Extrapolation::Zero => 0.0,
                Extrapolation::Hold if wl < wavelengths[0] => values[0],
                Extrapolation::Hold => values[n - 1],
            };
        }
        // First sample at or above wl.
        let hi = wavelengths[..n].partition_point(|&w| w < wl);
        if hi >= n || wavelengths[hi] == wl {
            return values[hi.min(n - 1)];
        }
        let lo = hi - 1;
        let t = (wl - wavelengths[lo]) / (wavelengths[hi] - wavelengths[lo]);
        values[lo] + t * (values[hi] - values[lo])
    })
}

/// A parsed spectral CSV: first column wavelength (nm), then one column per
/// function or sample, with a header line naming the columns.
#[derive(Debug, Clone, PartialEq)]
pub struct Table {
    /// Column headers after the wavelength column.
    pub labels: Vec<String>,
    /// Wavelengths, nm, strictly increasing.
    pub wavelengths: Vec<f64>,
    /// One vector per column, each as long as `wavelengths`.
    pub columns: Vec<Vec<f64>>,
}

impl Table {
    /// Parses CSV text. Fields are separated by commas (or semicolons or tabs
    /// when the header has no comma); blank lines and lines starting with `#`
    /// are skipped; quotes around a header name are removed. `source_name`
    /// names the text in errors.
    pub fn parse(text: &str, source_name: &str) -> Result<Table, SpectraError> {
        let err_name = || source_name.to_string();
        let mut lines = text
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim()))
            .filter(|(_, l)| !l.is_empty() && !l.starts_with('#'));
        let (_, header) = lines.next().ok_or_else(|| SpectraError::Empty {
            source_name: err_name(),
            what: "header",
        })?;
        let sep = [',', ';', '\t']
            .into_iter()
            .find(|c| header.contains(*c))
            .unwrap_or(',');
        let labels: Vec<String> = header
            .split(sep)
            .skip(1)
            .map(|s| s.trim().trim_matches('"').to_string())
            .collect();
        if labels.is_empty() {
            return Err(SpectraError::Empty {
                source_name: err_name(),
                what: "sample columns",
            });
        }
        let want = labels.len() + 1;
        let mut wavelengths = Vec::new();
        let mut columns = vec![Vec::new(); labels.len()];
        for (line, text) in lines {
            let fields: Vec<&str> = text.split(sep).map(str::trim).collect();
            if fields.len() != want {
                return Err(SpectraError::FieldCount {
                    source_name: err_name(),
                    line,
                    got: fields.len(),
                    want,
                });
            }
            let number = |column: usize| -> Result<f64, SpectraError> {
                let raw = fields[column];
                match raw.parse::<f64>() {
                    Ok(v) if v.is_finite() => Ok(v),
                    _ => Err(SpectraError::NotANumber {
                        source_name: err_name(),
                        line,
                        column: column + 1,
                        label: if column == 0 {
                            "wavelength".into()
                        } else {
                            labels[column - 1].clone()
                        },
                        value: raw.to_string(),
                    }),
                }
            };
            let wl = number(0)?;
            if wavelengths.last().is_some_and(|&last| wl <= last) {
                return Err(SpectraError::NotIncreasing {
                    source_name: err_name(),
                    line,
                    value: wl,
                });
            }
            wavelengths.push(wl);
            for (c, col) in columns.iter_mut().enumerate() {
                col.push(number(c + 1)?);
            }
        }
        if wavelengths.is_empty() {
            return Err(SpectraError::Empty {
                source_name: err_name(),
                what: "data rows",
            });
        }
        Ok(Table {
            labels,
            wavelengths,
            columns,
        })
    }

    /// Errors unless the wavelengths cover `from..=to` nm.
    pub fn check_covers(&self, source_name: &str, from: f64, to: f64) -> Result<(), SpectraError> {
        let first = self.wavelengths.first().copied().unwrap_or(f64::NAN);
        let last = self.wavelengths.last().copied().unwrap_or(f64::NAN);
        if first <= from && last >= to {
            Ok(())
        } else {
            Err(SpectraError::Coverage {
                source_name: source_name.to_string(),
                first,
                last,
                need_from: from,
                need_to: to,
            })
        }
    }

    /// Column `label` resampled onto the working grid.
    pub fn column_on_grid(&self, index: usize, extra: Extrapolation) -> [f64; GRID_LEN] {
        resample(&self.wavelengths, &self.columns[index], extra)
    }

    /// The value of column `index` at exactly `wl` nm, if sampled there.
    pub fn value_at(&self, index: usize, wl: f64) -> Option<f64> {
        let i = self
            .wavelengths
            .iter()
            .position(|&w| (w - wl).abs() < 1e-9)?;
        Some(self.columns[index][i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_is_380_to_780_every_5nm() {
        let g = grid();
        assert_eq!(g[0], 380.0);
        assert_eq!(g[GRID_LEN - 1], 780.0);
        assert_eq!(g[4], 400.0);
    }

    #[test]
    fn resampling_interpolates_and_extrapolates() {
        let wl = [400.0, 410.0, 700.0];
        let v = [0.2, 0.4, 1.0];
        let r = resample(&wl, &v, Extrapolation::Hold);
        assert_eq!(r[0], 0.2); // 380 held
        assert!((r[5] - 0.3).abs() < 1e-12); // 405
        assert_eq!(r[6], 0.4); // 410 exact
        assert_eq!(r[GRID_LEN - 1], 1.0); // 780 held
        let z = resample(&wl, &v, Extrapolation::Zero);
        assert_eq!(z[0], 0.0);
        assert_eq!(z[GRID_LEN - 1], 0.0);
        assert_eq!(z[64], 1.0); // 700
    }

    #[test]
    fn parse_names_the_bad_field() {
        let t = Table::parse("wavelength,a,b\n400,0.1,0.2\n700,0.3,0.4\n", "t").unwrap();
        assert_eq!(t.labels, vec!["a", "b"]);
        assert_eq!(t.columns[1], vec![0.2, 0.4]);
        match Table::parse("wl,a\n400,0.1\n500,\n", "f.csv") {
            Err(SpectraError::NotANumber {
                line,
                column,
                label,
                ..
            }) => assert_eq!((line, column, label.as_str()), (3, 2, "a")),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Table::parse("wl,a\n400,0.1,9\n", "f"),
            Err(SpectraError::FieldCount { got: 3, .. })
        ));
        assert!(matches!(
            Table::parse("wl,a\n500,0.1\n400,0.1\n", "f"),
            Err(SpectraError::NotIncreasing { .. })
        ));
        assert!(matches!(
            Table::parse("wl,a\n", "f"),
            Err(SpectraError::Empty { .. })
        ));
        assert!(matches!(
            Table::parse("", "f"),
            Err(SpectraError::Empty { .. })
        ));
        let t = Table::parse("wl;a\n410;0.1\n690;0.2\n", "f").unwrap();
        let e = t.check_covers("f", 400.0, 700.0).unwrap_err();
        assert!(e.to_string().contains("410–690"), "{e}");
    }
}
