//! A site's configuration file: who it is, its certificate, whom it trusts,
//! and how its links behave.
//!
//! ```toml
//! [site]
//! id = "jp.hospital-a"           # the facility its certificate names
//! name = "Hospital A"
//!
//! [tls]                          # paths relative to this file
//! cert = "a.pem"                 # certificate chain, leaf first
//! key = "a.key"                  # PKCS#8, PKCS#1 or SEC1 private key
//! roots = ["ca.pem"]             # institution CAs trusted for peers
//! allowed = ["jp.hospital-b"]    # facilities this site talks to
//!
//! [link]                         # optional, every key optional
//! congestion = "cubic"           # cubic | bbr | newreno
//! deadline_ms = 100              # a live frame later than this is lost
//! max_frame_mb = 64              # largest frame accepted
//! max_concurrent_frames = 16     # frame streams in flight
//! idle_timeout_ms = 10000
//!
//! [gate]                         # optional
//! kind = "allow-authenticated"   # the only kind until consent tokens land
//! ```
//!
//! # The gate
//! `allow-authenticated` is a **development gate**: a server permits every
//! session whose peer passed mutual TLS (its certificate chains to `roots`
//! and names a facility in `allowed`) and checks **no consent token**. It is
//! the only kind until the consent ledger is wired in; the file must say so
//! explicitly or leave `[gate]` out (the default), so that no configuration
//! suggests consent is being checked.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::driver::{Congestion, DriverConfig, Site, SiteIdentity, TlsError, TrustConfig};
use crate::proto::{self, Capabilities, Hello};

/// A site configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// The file cannot be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has an unknown or mistyped key.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the error.
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// A value is out of range or inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the key.
        message: String,
    },
    /// A certificate, key or root file cannot be used.
    #[error("{path}: {source}")]
    Tls {
        /// The configuration file.
        path: PathBuf,
        /// Why.
        source: TlsError,
    },
}

/// How a server decides on sessions ([`crate::driver::Gate`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum GateKind {
    /// Development only: permit every peer that passed mutual TLS; no
    /// consent token is checked. See the module docs.
    #[default]
    AllowAuthenticated,
}

/// `[link]`: transport settings.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct LinkSettings {
    /// Congestion controller.
    pub congestion: Option<CongestionName>,
    /// Live frame deadline, milliseconds.
    pub deadline_ms: Option<u64>,
    /// Largest frame payload accepted, MiB.
    pub max_frame_mb: Option<u32>,
    /// Frame streams in flight at once.
    pub max_concurrent_frames: Option<u32>,
    /// Idle timeout, milliseconds.
    pub idle_timeout_ms: Option<u64>,
}

/// A congestion controller by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CongestionName {
    /// CUBIC.
    Cubic,
    /// BBR.
    Bbr,
    /// NewReno.
    Newreno,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteFile {
    site: SiteSection,
    tls: TlsSection,
    #[serde(default)]
    link: LinkSettings,
    #[serde(default)]
    gate: GateSection,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SiteSection {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TlsSection {
    cert: PathBuf,
    key: PathBuf,
    roots: Vec<PathBuf>,
    allowed: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateSection {
    kind: GateKind,
}

/// A parsed site configuration, its paths resolved against the file's
/// folder. [`site`](Self::site) loads the certificates.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SiteConfig {
    /// The file it came from.
    pub path: PathBuf,
    /// The facility identifier (`[site] id`).
    pub id: String,
    /// The human-readable name (`[site] name`).
    pub name: String,
    /// Certificate chain file.
    pub cert: PathBuf,
    /// Private key file.
    pub key: PathBuf,
    /// Trusted CA files.
    pub roots: Vec<PathBuf>,
    /// Facilities this site talks to.
    pub allowed: Vec<String>,
    /// `[link]`.
    pub link: LinkSettings,
    /// `[gate] kind`.
    pub gate: GateKind,
}

impl SiteConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<SiteConfig, SiteError> {
        let text = std::fs::read_to_string(path).map_err(|source| SiteError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        SiteConfig::parse(&text, path)
    }

    /// Parses TOML `text`; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<SiteConfig, SiteError> {
        let file: SiteFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map_or(1, |s| {
                text[..s.start.min(text.len())].matches('\n').count() + 1
            });
            SiteError::Parse {
                path: path.to_path_buf(),
                line,
                message: e.message().replace('\n', " "),
            }
        })?;
        let invalid = |message: String| SiteError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let hello = Hello::new(
            file.site.id.clone(),
            file.site.name.clone(),
            Capabilities(0),
        );
        proto::Message::Hello(hello)
            .validate()
            .map_err(|e| invalid(format!("[site]: {e}")))?;
        if file.tls.roots.is_empty() {
            return Err(invalid("[tls] roots: name at least one CA file".into()));
        }
        if file.tls.allowed.is_empty() {
            return Err(invalid("[tls] allowed: name at least one facility".into()));
        }
        let link = &file.link;
        if link.deadline_ms == Some(0) {
            return Err(invalid("[link] deadline_ms: must be at least 1".into()));
        }
        if let Some(mb) = link.max_frame_mb
            && !(1..=1024).contains(&mb)
        {
            return Err(invalid(format!(
                "[link] max_frame_mb: {mb} is outside 1..=1024"
            )));
        }
        if link.max_concurrent_frames == Some(0) {
            return Err(invalid(
                "[link] max_concurrent_frames: must be at least 1".into(),
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        Ok(SiteConfig {
            path: path.to_path_buf(),
            id: file.site.id,
            name: file.site.name,
            cert: dir.join(file.tls.cert),
            key: dir.join(file.tls.key),
            roots: file.tls.roots.iter().map(|r| dir.join(r)).collect(),
            allowed: file.tls.allowed,
            link: file.link,
            gate: file.gate.kind,
        })
    }

    /// Loads the certificate, key and roots, and builds the driver's
    /// [`Site`] announcing `capabilities`.
    pub fn site(&self, capabilities: Capabilities) -> Result<Site, SiteError> {
        let tls = |source| SiteError::Tls {
            path: self.path.clone(),
            source,
        };
        let identity = SiteIdentity::from_pem_files(&self.cert, &self.key).map_err(tls)?;
        let trust = TrustConfig::from_pem_files(&self.roots, self.allowed.clone()).map_err(tls)?;
        Ok(Site {
            identity,
            trust,
            hello: Hello::new(self.id.clone(), self.name.clone(), capabilities),
        })
    }

    /// The driver settings: the defaults with `[link]` applied.
    pub fn driver_config(&self) -> DriverConfig {
        let link = &self.link;
        let mut config = DriverConfig::default();
        let mut session = config.session.clone();
        if let Some(mb) = link.max_frame_mb {
            session = session.with_max_frame_payload(mb << 20);
        }
        config = config.with_session(session);
        if let Some(ms) = link.deadline_ms {
            // A frame waiting for a retransmission may be waited for as
            // long as it can still make its deadline.
            let deadline = Duration::from_millis(ms);
            let session = config.session.clone().with_frame_deadline(deadline);
            config = config
                .with_session(session)
                .with_frame_reorder_wait(deadline);
        }
        if let Some(c) = link.congestion {
            config = config.with_congestion(match c {
                CongestionName::Cubic => Congestion::Cubic,
                CongestionName::Bbr => Congestion::Bbr,
                CongestionName::Newreno => Congestion::NewReno,
            });
        }
        if let Some(n) = link.max_concurrent_frames {
            config = config.with_max_concurrent_frames(n);
        }
        if let Some(ms) = link.idle_timeout_ms {
            config = config.with_idle_timeout(Duration::from_millis(ms));
        }
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[site]
id = "jp.hospital-a"
name = "Hospital A"

[tls]
cert = "a.pem"
key = "a.key"
roots = ["ca.pem"]
allowed = ["jp.hospital-b"]

[link]
congestion = "bbr"
deadline_ms = 250
"#;

    #[test]
    fn parses_and_resolves_paths() {
        let c = SiteConfig::parse(GOOD, Path::new("/etc/med8k/site.toml")).unwrap();
        assert_eq!(c.id, "jp.hospital-a");
        assert_eq!(c.cert, Path::new("/etc/med8k/a.pem"));
        assert_eq!(c.roots, vec![PathBuf::from("/etc/med8k/ca.pem")]);
        assert_eq!(c.gate, GateKind::AllowAuthenticated);
        let d = c.driver_config();
        assert_eq!(d.congestion, Congestion::Bbr);
        assert_eq!(d.session.frame_deadline, Duration::from_millis(250));
        assert_eq!(d.frame_reorder_wait, Duration::from_millis(250));
    }

    #[test]
    fn unknown_key_names_file_and_line() {
        let text = GOOD.replace("deadline_ms", "deadline");
        let e = SiteConfig::parse(&text, Path::new("s.toml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.starts_with("s.toml:14:"), "{msg}");
        assert!(msg.contains("deadline"), "{msg}");
    }

    #[test]
    fn only_the_development_gate_exists() {
        let ok = format!("{GOOD}\n[gate]\nkind = \"allow-authenticated\"\n");
        assert!(SiteConfig::parse(&ok, Path::new("s.toml")).is_ok());
        let bad = format!("{GOOD}\n[gate]\nkind = \"consent\"\n");
        let e = SiteConfig::parse(&bad, Path::new("s.toml")).unwrap_err();
        assert!(e.to_string().contains("allow-authenticated"), "{e}");
    }

    #[test]
    fn bad_site_id_is_refused() {
        let text = GOOD.replace("jp.hospital-a", "jp hospital a");
        let e = SiteConfig::parse(&text, Path::new("s.toml")).unwrap_err();
        assert!(e.to_string().contains("[site]"), "{e}");
    }
}
