//! ENVI cubes: a text header (`.hdr`) beside raw samples (`.raw`).
//!
//! med8k writes band-sequential little-endian u16 (`data type = 12`,
//! `interleave = bsq`, `byte order = 0`) with `wavelength` and `fwhm` in
//! nanometres, which ENVI, GDAL and spectral-python read. The reader also takes
//! `bil` and `bip` interleaves and big-endian data.
//!
//! The reader checks the header against the size of the data file before it
//! allocates anything, so a hostile header cannot make it allocate without bound.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use ndarray::Array3;

use super::{Band, SpectralCube};

/// Largest dimension the reader accepts for samples or lines.
pub const MAX_DIM: usize = 65_536;
/// Largest band count the reader accepts.
pub const MAX_BANDS: usize = 1024;

/// Why an ENVI cube could not be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EnviError {
    /// The header or data file could not be opened, read or written.
    #[error("{path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// The header is not an ENVI header or a field is malformed or missing.
    #[error("{path}: {reason}")]
    Header {
        /// The header file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The data file is shorter than the header says.
    #[error(
        "{path}: truncated: header says {bands} bands of {lines}x{samples} u16 ({need} bytes after offset {offset}), file has {got} bytes"
    )]
    Truncated {
        /// The data file.
        path: PathBuf,
        /// Bands.
        bands: usize,
        /// Lines.
        lines: usize,
        /// Samples per line.
        samples: usize,
        /// Header offset in bytes.
        offset: u64,
        /// Bytes needed.
        need: u64,
        /// Bytes present.
        got: u64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Interleave {
    Bsq,
    Bil,
    Bip,
}

/// The header and data paths of a cube named by either file or by its stem.
pub fn paths(path: &Path) -> (PathBuf, PathBuf) {
    let stem = match path.extension().and_then(|e| e.to_str()) {
        Some("hdr" | "raw" | "img" | "dat") => path.with_extension(""),
        _ => path.to_path_buf(),
    };
    let hdr = stem.with_extension("hdr");
    let raw = ["raw", "img", "dat"]
        .iter()
        .map(|e| stem.with_extension(e))
        .find(|p| p.exists())
        .unwrap_or_else(|| stem.with_extension("raw"));
    (hdr, raw)
}

/// What an ENVI header says, checked.
#[derive(Debug, Clone, PartialEq)]
struct Header {
    samples: usize,
    lines: usize,
    bands: Vec<Band>,
    offset: u64,
    big_endian: bool,
    interleave: Interleave,
    reflectance_scale: Option<f32>,
}

impl Header {
    fn parse(text: &str) -> Result<Header, String> {
        let fields = parse_header(text)?;
        let int = |key: &str, max: usize| -> Result<usize, String> {
            let v = fields
                .get(key)
                .ok_or_else(|| format!("missing field `{key}`"))?;
            let n: usize = v
                .trim()
                .parse()
                .map_err(|_| format!("field `{key}` = `{v}` is not a number"))?;
            if n == 0 || n > max {
                return Err(format!("field `{key}` = {n} is out of range 1..={max}"));
            }
            Ok(n)
        };
        let samples = int("samples", MAX_DIM)?;
        let lines = int("lines", MAX_DIM)?;
        let bands = int("bands", MAX_BANDS)?;
        let offset: u64 = match fields.get("header offset") {
            Some(v) => v
                .trim()
                .parse()
                .map_err(|_| format!("bad `header offset` `{v}`"))?,
            None => 0,
        };
        match fields.get("data type").map(|s| s.trim()) {
            Some("12") => {}
            Some(t) => {
                return Err(format!(
                    "data type {t} is not supported (med8k reads 12 = unsigned 16-bit)"
                ));
            }
            None => return Err("missing field `data type`".into()),
        }
        let big_endian = match fields.get("byte order").map(|s| s.trim()) {
            None | Some("0") => false,
            Some("1") => true,
            Some(o) => return Err(format!("byte order `{o}` is not 0 or 1")),
        };
        let lower = |key: &str| fields.get(key).map(|s| s.trim().to_ascii_lowercase());
        let interleave = match lower("interleave").as_deref() {
            None | Some("bsq") => Interleave::Bsq,
            Some("bil") => Interleave::Bil,
            Some("bip") => Interleave::Bip,
            Some(o) => return Err(format!("interleave `{o}` is not bsq, bil or bip")),
        };
        let wavelengths = float_list(&fields, "wavelength", bands)?;
        let fwhm = float_list(&fields, "fwhm", bands)?;
        let nm = match lower("wavelength units").as_deref() {
            None | Some("nanometers") | Some("nm") => 1.0,
            Some("micrometers") | Some("um") => 1000.0,
            Some(u) => return Err(format!("wavelength units `{u}` are not nm or µm")),
        };
        let bands = (0..bands)
            .map(|i| Band {
                center_nm: wavelengths.as_ref().map_or(f32::NAN, |w| w[i] * nm),
                fwhm_nm: fwhm.as_ref().map_or(f32::NAN, |w| w[i] * nm),
            })
            .collect();
        let reflectance_scale = fields
            .get("reflectance scale factor")
            .and_then(|v| v.trim().parse().ok());
        Ok(Header {
            samples,
            lines,
            bands,
            offset,
            big_endian,
            interleave,
            reflectance_scale,
        })
    }

    /// Bytes of samples the data file must hold after the offset.
    fn data_bytes(&self) -> u64 {
        (self.samples * self.lines * self.bands.len() * 2) as u64
    }

    /// Build the cube from samples as stored (file order, file byte order).
    fn cube(&self, mut values: Vec<u16>) -> Result<SpectralCube, String> {
        if self.big_endian {
            values.iter_mut().for_each(|v| *v = u16::from_be(*v));
        } else {
            values.iter_mut().for_each(|v| *v = u16::from_le(*v));
        }
        let (b, l, s) = (self.bands.len(), self.lines, self.samples);
        let shape = match self.interleave {
            Interleave::Bsq => (b, l, s),
            Interleave::Bil => (l, b, s),
            Interleave::Bip => (l, s, b),
        };
        let array = Array3::from_shape_vec(shape, values).map_err(|e| e.to_string())?;
        let data = match self.interleave {
            Interleave::Bsq => array,
            Interleave::Bil => array
                .permuted_axes([1, 0, 2])
                .as_standard_layout()
                .into_owned(),
            Interleave::Bip => array
                .permuted_axes([2, 0, 1])
                .as_standard_layout()
                .into_owned(),
        };
        let mut cube = SpectralCube::new(self.bands.clone(), data).map_err(|e| e.to_string())?;
        cube.reflectance_scale = self.reflectance_scale;
        Ok(cube)
    }
}

/// Read the cube whose `.hdr` (or `.raw`) is `path`.
pub fn read(path: &Path) -> Result<SpectralCube, EnviError> {
    let (hdr_path, raw_path) = paths(path);
    let text = std::fs::read(&hdr_path).map_err(|source| io(&hdr_path, source))?;
    let header_err = |reason: String| EnviError::Header {
        path: hdr_path.clone(),
        reason,
    };
    if text.len() > 1 << 20 {
        return Err(header_err(format!(
            "header is {} bytes, more than 1 MiB",
            text.len()
        )));
    }
    let text =
        String::from_utf8(text).map_err(|_| header_err("header is not UTF-8 text".into()))?;
    let header = Header::parse(&text).map_err(header_err)?;

    // Check the data file's size before allocating.
    let mut raw = File::open(&raw_path).map_err(|source| io(&raw_path, source))?;
    let got = raw
        .metadata()
        .map_err(|source| io(&raw_path, source))?
        .len();
    let need = header.data_bytes();
    if got < header.offset.saturating_add(need) {
        return Err(truncated(&header, raw_path, got));
    }
    raw.seek(SeekFrom::Start(header.offset))
        .map_err(|source| io(&raw_path, source))?;
    let mut values = vec![0u16; need as usize / 2];
    raw.read_exact(bytemuck::cast_slice_mut(&mut values))
        .map_err(|source| io(&raw_path, source))?;
    header.cube(values).map_err(header_err)
}

/// Parse a cube from a header's text and the data file's bytes (for cubes
/// embedded in a binary). `name` stands for both files in errors.
pub fn from_bytes(name: &str, header: &str, raw: &[u8]) -> Result<SpectralCube, EnviError> {
    let path = PathBuf::from(name);
    let header = Header::parse(header).map_err(|reason| EnviError::Header {
        path: path.with_extension("hdr"),
        reason,
    })?;
    let start = header.offset.min(raw.len() as u64) as usize;
    let body = &raw[start..];
    if (body.len() as u64) < header.data_bytes() {
        return Err(truncated(
            &header,
            path.with_extension("raw"),
            raw.len() as u64,
        ));
    }
    let values = body[..header.data_bytes() as usize]
        .chunks_exact(2)
        .map(|c| u16::from_ne_bytes([c[0], c[1]]))
        .collect();
    header.cube(values).map_err(|reason| EnviError::Header {
        path: path.with_extension("hdr"),
        reason,
    })
}

fn truncated(header: &Header, path: PathBuf, got: u64) -> EnviError {
    EnviError::Truncated {
        path,
        bands: header.bands.len(),
        lines: header.lines,
        samples: header.samples,
        offset: header.offset,
        need: header.data_bytes(),
        got,
    }
}

/// Write `cube` as `<stem>.hdr` and `<stem>.raw` (BSQ, little-endian u16).
/// `description` goes into the header's `description` field.
pub fn write(cube: &SpectralCube, stem: &Path, description: &str) -> Result<(), EnviError> {
    let hdr_path = stem.with_extension("hdr");
    let raw_path = stem.with_extension("raw");
    let list = |f: &dyn Fn(&Band) -> f32| {
        cube.bands()
            .iter()
            .map(|b| format!("{}", f(b)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut hdr = format!(
        "ENVI\ndescription = {{{}}}\nsamples = {}\nlines = {}\nbands = {}\nheader offset = 0\n\
         file type = ENVI Standard\ndata type = 12\ninterleave = bsq\nbyte order = 0\n\
         wavelength units = Nanometers\nwavelength = {{{}}}\nfwhm = {{{}}}\n",
        description.replace(['{', '}'], ""),
        cube.width(),
        cube.height(),
        cube.band_count(),
        list(&|b| b.center_nm),
        list(&|b| b.fwhm_nm),
    );
    if let Some(s) = cube.reflectance_scale {
        hdr.push_str(&format!("reflectance scale factor = {s}\n"));
    }
    let names: Vec<String> = cube
        .bands()
        .iter()
        .map(|b| format!("B{}", b.center_nm.round() as i64))
        .collect();
    hdr.push_str(&format!("band names = {{{}}}\n", names.join(", ")));
    std::fs::write(&hdr_path, hdr).map_err(|source| io(&hdr_path, source))?;

    let file = File::create(&raw_path).map_err(|source| io(&raw_path, source))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let data = cube.data().as_standard_layout();
    let slice = data.as_slice().unwrap_or_default();
    for chunk in slice.chunks(1 << 19) {
        let le: Vec<u16> = chunk.iter().map(|v| v.to_le()).collect();
        out.write_all(bytemuck::cast_slice(&le))
            .map_err(|source| io(&raw_path, source))?;
    }
    out.flush().map_err(|source| io(&raw_path, source))?;
    Ok(())
}

fn io(path: &Path, source: std::io::Error) -> EnviError {
    EnviError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// `key = value` lines; `{ ... }` values may span lines. Keys are lower-cased.
fn parse_header(text: &str) -> Result<HashMap<String, String>, String> {
    let mut lines = text.lines();
    if lines.next().map(str::trim) != Some("ENVI") {
        return Err("not an ENVI header (first line is not `ENVI`)".into());
    }
    let mut fields = HashMap::new();
    let mut pending: Option<(String, String)> = None;
    for (n, line) in lines.enumerate() {
        if let Some((key, mut value)) = pending.take() {
            value.push(' ');
            value.push_str(line);
            if line.contains('}') {
                fields.insert(key, strip_braces(&value));
            } else {
                pending = Some((key, value));
            }
            continue;
        }
        let line = line.trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(format!(
                "line {}: expected `key = value`, got `{line}`",
                n + 2
            ));
        };
        let key = key.trim().to_ascii_lowercase();
        let value = value.trim().to_string();
        if value.starts_with('{') && !value.contains('}') {
            pending = Some((key, value));
        } else {
            fields.insert(key, strip_braces(&value));
        }
    }
    if let Some((key, _)) = pending {
        return Err(format!("field `{key}` opens `{{` and never closes it"));
    }
    Ok(fields)
}

fn strip_braces(v: &str) -> String {
    v.trim()
        .trim_start_matches('{')
        .trim_end_matches('}')
        .trim()
        .to_string()
}

fn float_list(
    fields: &HashMap<String, String>,
    key: &str,
    bands: usize,
) -> Result<Option<Vec<f32>>, String> {
    let Some(v) = fields.get(key) else {
        return Ok(None);
    };
    let values: Vec<f32> = v
        .split(',')
        .map(|s| {
            s.trim()
                .parse::<f32>()
                .map_err(|_| format!("field `{key}` has a bad number `{s}`"))
        })
        .collect::<Result<_, _>>()?;
    if values.len() != bands {
        return Err(format!(
            "field `{key}` lists {} values for {bands} bands",
            values.len()
        ));
    }
    Ok(Some(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spectral::default_bands;

    fn cube() -> SpectralCube {
        let data = Array3::from_shape_fn((7, 5, 9), |(b, y, x)| (b * 1000 + y * 10 + x) as u16);
        let mut c = SpectralCube::new(default_bands(), data).unwrap();
        c.reflectance_scale = Some(60000.0);
        c
    }

    #[test]
    fn write_then_read_is_identity() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("c");
        write(&cube(), &stem, "test {cube}").unwrap();
        let back = read(&stem.with_extension("hdr")).unwrap();
        assert_eq!(back, cube());
        let hdr = std::fs::read_to_string(stem.with_extension("hdr")).unwrap();
        assert!(
            hdr.contains("wavelength = {410, 450, 490, 530, 570, 610, 650}"),
            "{hdr}"
        );
    }

    #[test]
    fn reads_bip_big_endian() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("bip");
        let c = cube();
        let mut bytes = Vec::new();
        for y in 0..5 {
            for x in 0..9 {
                for b in 0..7 {
                    bytes.extend_from_slice(&c.data()[[b, y, x]].to_be_bytes());
                }
            }
        }
        std::fs::write(stem.with_extension("raw"), bytes).unwrap();
        std::fs::write(
            stem.with_extension("hdr"),
            "ENVI\nsamples = 9\nlines = 5\nbands = 7\ndata type = 12\ninterleave = bip\n\
             byte order = 1\nwavelength = {\n410, 450, 490,\n530, 570, 610, 650}\n",
        )
        .unwrap();
        let back = read(&stem).unwrap();
        assert_eq!(back.data(), c.data());
        assert_eq!(back.bands()[3].center_nm, 530.0);
    }

    #[test]
    fn truncated_data_names_the_file_and_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("t");
        write(&cube(), &stem, "t").unwrap();
        let raw = stem.with_extension("raw");
        let len = std::fs::metadata(&raw).unwrap().len();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&raw)
            .unwrap()
            .set_len(len - 1)
            .unwrap();
        let err = read(&stem).unwrap_err().to_string();
        assert!(err.contains("t.raw") && err.contains("truncated"), "{err}");
    }

    #[test]
    fn hostile_headers_are_refused_before_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let stem = dir.path().join("h");
        std::fs::write(stem.with_extension("raw"), [0u8; 16]).unwrap();
        for (hdr, want) in [
            ("NOT ENVI\n", "not an ENVI header"),
            (
                "ENVI\nsamples = 65536\nlines = 65536\nbands = 1024\ndata type = 12\n",
                "truncated",
            ),
            (
                "ENVI\nsamples = 99999999\nlines = 1\nbands = 1\ndata type = 12\n",
                "out of range",
            ),
            (
                "ENVI\nsamples = 2\nlines = 2\nbands = 1\ndata type = 4\n",
                "data type 4",
            ),
            (
                "ENVI\nsamples = 2\nlines = 2\nbands = 2\ndata type = 12\nwavelength = {1}\n",
                "lists 1",
            ),
            (
                "ENVI\nsamples = 2\nlines = 2\nbands = 1\ndata type = 12\nwavelength = {1\n",
                "never closes",
            ),
            ("ENVI\nsamples = x\n", "not a number"),
        ] {
            std::fs::write(stem.with_extension("hdr"), hdr).unwrap();
            let err = read(&stem).unwrap_err().to_string();
            assert!(err.contains(want), "{hdr:?}: {err}");
        }
    }

    #[test]
    fn a_missing_cube_names_the_header() {
        let err = read(Path::new("/nonexistent/cube.hdr")).unwrap_err();
        assert_eq!(err.to_string(), "/nonexistent/cube.hdr");
        assert!(std::error::Error::source(&err).is_some());
    }
}
