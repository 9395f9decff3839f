//! DICOMweb (PS3.18) over a small blocking HTTP/1.1 client (ureq, plain
//! HTTP, no TLS stack and no async runtime of its own): STOW-RS to store,
//! WADO-RS to retrieve, QIDO-RS to list a study's instances.
//!
//! A PACS URL is the DICOMweb root, e.g. `http://127.0.0.1:8042/dicom-web`.
//! Plain HTTP only: a PACS across a network is reached through the site's
//! own TLS terminator or over a med8k link, so med8k carries one TLS stack
//! (rustls, in the transport) and not two.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::PacsError;

/// Largest response body read (a WADO-RS study), bytes.
pub const MAX_RESPONSE: u64 = 16 << 30;

/// A DICOMweb service.
#[derive(Debug, Clone)]
pub struct DicomWeb {
    base: String,
    agent: ureq::Agent,
}

/// What a store did: the instances the PACS took.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stored {
    /// SOP Instance UIDs the PACS reported stored.
    pub instances: Vec<String>,
}

impl DicomWeb {
    /// A client for the DICOMweb root `base` (`http://HOST:PORT/PATH`), with
    /// a connect timeout of 10 s and an overall one of `timeout` per request.
    pub fn new(base: &str, timeout: Duration) -> Result<Self, PacsError> {
        let rest = base
            .strip_prefix("http://")
            .ok_or_else(|| PacsError::Address {
                url: base.to_string(),
                reason:
                    "a DICOMweb root starting http:// (https is left to the site's TLS terminator)"
                        .into(),
            })?;
        if rest.is_empty() || rest.starts_with('/') {
            return Err(PacsError::Address {
                url: base.to_string(),
                reason: "no host".into(),
            });
        }
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_global(Some(timeout))
            .build()
            .into();
        Ok(DicomWeb {
            base: base.trim_end_matches('/').to_string(),
            agent,
        })
    }

    /// The DICOMweb root.
    pub fn url(&self) -> &str {
        &self.base
    }

    fn unreachable(&self, url: &str, e: ureq::Error) -> PacsError {
        PacsError::Unreachable {
            url: url.to_string(),
            reason: crate::error::one_line(&e),
        }
    }

    /// STOW-RS: stores Part 10 files (`name` is what errors call each) in one
    /// request. Any instance the PACS refuses makes the whole call an error
    /// naming it; what it did store stays stored (storing again is harmless:
    /// UIDs are stable).
    pub fn store(&self, files: &[(PathBuf, Vec<u8>)]) -> Result<Stored, PacsError> {
        let url = format!("{}/studies", self.base);
        let boundary = "med8k-stow-7f3a9c2e51d04b6a";
        let total: usize = files.iter().map(|(_, b)| b.len() + 128).sum();
        let mut body = Vec::with_capacity(total + 64);
        for (_, bytes) in files {
            body.extend_from_slice(
                format!("--{boundary}\r\nContent-Type: application/dicom\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let mut resp = self
            .agent
            .post(&url)
            .header(
                "Content-Type",
                format!("multipart/related; type=\"application/dicom\"; boundary={boundary}"),
            )
            .header("Accept", "application/dicom+json")
            .send(&body[..])
            .map_err(|e| self.unreachable(&url, e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .unwrap_or_default();
        let json: serde_json::Value =
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null);
        let uids = |seq: &str, tag: &str| -> Vec<String> {
            json[seq]["Value"]
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .filter_map(|it| it[tag]["Value"][0].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        // Referenced SOP Sequence (0008,1199) and Failed SOP Sequence (0008,1198).
        let stored = uids("00081199", "00081155");
        let failed = uids("00081198", "00081155");
        if !(200..300).contains(&status) || !failed.is_empty() || status == 202 {
            let which = files
                .iter()
                .find(|(_, b)| failed.iter().any(|u| contains(b, u.as_bytes())))
                .map(|(p, _)| p.clone());
            return Err(PacsError::Refused {
                url,
                file: which,
                reason: format!(
                    "HTTP {status}, {} refused, {} stored{}",
                    failed.len(),
                    stored.len(),
                    short(&text)
                ),
            });
        }
        if stored.len() < files.len() {
            return Err(PacsError::Protocol {
                url,
                reason: format!(
                    "{} files sent, the PACS reported {} stored",
                    files.len(),
                    stored.len()
                ),
            });
        }
        Ok(Stored { instances: stored })
    }

    /// STOW-RS of files on disk; a file that cannot be read names itself.
    pub fn store_files(&self, paths: &[PathBuf]) -> Result<Stored, PacsError> {
        let files = paths
            .iter()
            .map(|p| read_part10(p).map(|b| (p.clone(), b)))
            .collect::<Result<Vec<_>, _>>()?;
        self.store(&files)
    }

    fn get_multipart(&self, url: &str) -> Result<Vec<Vec<u8>>, PacsError> {
        let mut resp = self
            .agent
            .get(url)
            .header(
                "Accept",
                "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
            )
            .call()
            .map_err(|e| self.unreachable(url, e))?;
        let status = resp.status().as_u16();
        if status != 200 {
            let text = resp.body_mut().read_to_string().unwrap_or_default();
            return Err(PacsError::Refused {
                url: url.to_string(),
                file: None,
                reason: format!("HTTP {status}{}", short(&text)),
            });
        }
        let ctype = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = resp
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE)
            .read_to_vec()
            .map_err(|e| self.unreachable(url, e))?;
        split_multipart(&ctype, &body).map_err(|reason| PacsError::Protocol {
            url: url.to_string(),
            reason,
        })
    }

    /// WADO-RS: one instance as a Part 10 file, as the PACS holds it.
    pub fn retrieve_instance(
        &self,
        study: &str,
        series: &str,
        instance: &str,
    ) -> Result<Vec<u8>, PacsError> {
        let url = format!(
            "{}/studies/{study}/series/{series}/instances/{instance}",
            self.base
        );
        let mut parts = self.get_multipart(&url)?;
        if parts.len() != 1 {
            return Err(PacsError::Protocol {
                url,
                reason: format!("{} parts for one instance", parts.len()),
            });
        }
        Ok(parts.remove(0))
    }

    /// WADO-RS: every instance of a study.
    pub fn retrieve_study(&self, study: &str) -> Result<Vec<Vec<u8>>, PacsError> {
        self.get_multipart(&format!("{}/studies/{study}", self.base))
    }

    /// QIDO-RS: the (series, instance) UIDs of a study.
    pub fn instances(&self, study: &str) -> Result<Vec<(String, String)>, PacsError> {
        Ok(self
            .instance_summaries(study)?
            .into_iter()
            .map(|i| (i.series, i.instance))
            .collect())
    }

    /// QIDO-RS: what the PACS says of each instance of a study (PS3.18's
    /// default instance attributes, and Number of Optical Paths asked for
    /// with `includefield`); enough to choose one without retrieving it. A
    /// study the PACS does not hold lists no instance.
    pub fn instance_summaries(&self, study: &str) -> Result<Vec<InstanceSummary>, PacsError> {
        let url = format!("{}/studies/{study}/instances", self.base);
        let mut resp = self
            .agent
            .get(&url)
            .query("includefield", "00480302")
            .header("Accept", "application/dicom+json")
            .call()
            .map_err(|e| self.unreachable(&url, e))?;
        let status = resp.status().as_u16();
        let text = resp
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        if status == 204 {
            return Ok(Vec::new());
        }
        if status != 200 {
            return Err(PacsError::Refused {
                url,
                file: None,
                reason: format!("HTTP {status}{}", short(&text)),
            });
        }
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| PacsError::Protocol {
                url: url.clone(),
                reason: format!("QIDO-RS answer is not JSON: {e}"),
            })?;
        Ok(json
            .as_array()
            .map(|a| a.iter().filter_map(InstanceSummary::from_json).collect())
            .unwrap_or_default())
    }
}

/// One instance as QIDO-RS lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct InstanceSummary {
    /// Series Instance UID.
    pub series: String,
    /// SOP Instance UID.
    pub instance: String,
    /// SOP Class UID, when listed.
    pub sop_class: Option<String>,
    /// Number of Frames, when listed.
    pub frames: Option<u32>,
    /// Bits Allocated, when listed.
    pub bits_allocated: Option<u32>,
    /// Number of Optical Paths, when listed (a PACS may ignore `includefield`).
    pub optical_paths: Option<u32>,
}

impl InstanceSummary {
    /// From one DICOM JSON object (PS3.18 F.2); `None` without the UIDs.
    fn from_json(i: &serde_json::Value) -> Option<InstanceSummary> {
        let string = |tag: &str| i[tag]["Value"][0].as_str().map(str::to_string);
        // IS and US values come as numbers, some PACS send IS as strings.
        let number = |tag: &str| {
            let v = &i[tag]["Value"][0];
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|n| u32::try_from(n).ok())
        };
        Some(InstanceSummary {
            series: string("0020000E")?,
            instance: string("00080018")?,
            sop_class: string("00080016"),
            frames: number("00280008"),
            bits_allocated: number("00280100"),
            optical_paths: number("00480302"),
        })
    }
}

/// Reads a file that must be DICOM Part 10 (preamble and `DICM`).
pub fn read_part10(path: &Path) -> Result<Vec<u8>, PacsError> {
    let bytes = std::fs::read(path).map_err(|e| PacsError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    if bytes.len() < 132 || &bytes[128..132] != b"DICM" {
        return Err(PacsError::File {
            path: path.to_path_buf(),
            reason: "not a DICOM Part 10 file (no DICM prefix)".into(),
        });
    }
    Ok(bytes)
}

fn short(text: &str) -> String {
    let t: String = text.chars().filter(|c| !c.is_control()).take(160).collect();
    if t.is_empty() {
        String::new()
    } else {
        format!(": {t}")
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle, 0).is_some()
}

fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() || hay.len() < needle.len() {
        return None;
    }
    let first = needle[0];
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let j = hay[i..=hay.len() - needle.len()]
            .iter()
            .position(|&b| b == first)?
            + i;
        if &hay[j..j + needle.len()] == needle {
            return Some(j);
        }
        i = j + 1;
    }
    None
}

/// The parts of a `multipart/related` body (RFC 2387), given its
/// Content-Type header.
pub fn split_multipart(content_type: &str, body: &[u8]) -> Result<Vec<Vec<u8>>, String> {
    let boundary = content_type
        .split(';')
        .filter_map(|p| p.trim().strip_prefix("boundary="))
        .next()
        .map(|b| b.trim_matches('"').to_string())
        .ok_or_else(|| format!("no boundary in Content-Type {content_type:?}"))?;
    let delim = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut at = find(body, delim.as_bytes(), 0).ok_or("no first boundary")?;
    loop {
        let after = at + delim.len();
        if body.get(after..after + 2) == Some(b"--") {
            break;
        }
        let head_end = find(body, b"\r\n\r\n", after).ok_or("part without headers end")? + 4;
        let next = find(body, format!("\r\n{delim}").as_bytes(), head_end)
            .ok_or("part without closing boundary")?;
        parts.push(body[head_end..next].to_vec());
        at = next + 2;
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multipart_splits_and_refuses_garbage() {
        let body = b"--b1\r\nContent-Type: application/dicom\r\n\r\nAB\r\n--b1\r\nContent-Type: application/dicom\r\n\r\nC\r\nD\r\n--b1--\r\n";
        let ct = "multipart/related; type=\"application/dicom\"; boundary=\"b1\"";
        let parts = split_multipart(ct, body).unwrap();
        assert_eq!(parts, vec![b"AB".to_vec(), b"C\r\nD".to_vec()]);
        assert!(split_multipart("multipart/related", body).is_err());
        assert!(split_multipart("multipart/related; boundary=zz", body).is_err());
        assert!(split_multipart("multipart/related; boundary=b1", b"--b1\r\nno end").is_err());
    }

    #[test]
    fn only_http_roots() {
        for bad in [
            "https://pacs/dicom-web",
            "ftp://x",
            "http://",
            "http:///x",
            "pacs:8042",
        ] {
            assert!(DicomWeb::new(bad, Duration::from_secs(1)).is_err(), "{bad}");
        }
        assert!(DicomWeb::new("http://127.0.0.1:8042/dicom-web/", Duration::from_secs(1)).is_ok());
    }
}
