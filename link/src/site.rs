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
//! crl = ["ca.crl.pem"]           # optional: the CAs' CRLs (then required
//!                                # and current for every peer certificate)
//!
//! [tls.issuers]                  # which CA may name which facility; needed
//! "jp.hospital-b" = ["b-ca.pem"] # for every allowed facility when `roots`
//!                                # holds more than one CA
//!
//! [link]                         # optional, every key optional
//! congestion = "cubic"           # cubic | bbr | newreno
//! deadline_ms = 100              # a live frame later than this is lost
//! max_frame_mb = 64              # largest frame accepted
//! max_concurrent_frames = 16     # frame streams in flight
//! idle_timeout_ms = 10000
//! max_links = 32                 # serve: links at once
//! max_links_per_facility = 8     # serve: links of one facility at once
//! frame_budget_mb = 128          # live frames one link holds at most
//! total_frame_budget_mb = 512    # serve: live frames all links hold
//!
//! [gate]                         # optional; see below
//! kind = "allow-authenticated"   # or "consent"
//! ```
//!
//! # The gate
//! `allow-authenticated` (the default when `[gate]` is left out) is a
//! **development gate**: a server permits every session whose peer passed
//! mutual TLS (its certificate chains to `roots` and names a facility in
//! `allowed`) and checks **no consent token**.
//!
//! `consent` checks, for every session, the requesting physician's HPKI
//! login, the patient's JPKI login (when `require_patient`) and the consent
//! ledger, and writes every decision to the audit log:
//!
//! ```toml
//! [gate]
//! kind = "consent"
//! ledger = "consent.sqlite"      # the consent ledger (SQLite)
//! audit = "audit.jsonl"          # the audit log (JSON Lines, hash-chained)
//! hpki_roots = ["hpki.pem"]      # HPKI trust anchors (physicians)
//! hpki_policies = ["1.2.3.4"]    # accepted HPKI policy OIDs: no default
//! hpki_sign_policies = ["1.2.3.5"] # optional: HPKI signing policy OIDs accepted on
//!                                # a pathologist's signed cut-out instructions (none: refused)
//! jpki_roots = ["jpki.pem"]      # JPKI trust anchors (patients)
//! require_patient = true         # the patient must log in too (default true)
//! audit_salt_file = "audit.salt" # default: the audit log's path + ".salt"
//! crl = ["hpki.crl.pem"]         # optional: CRLs (PEM or DER) for logins
//! crl_fetch = false              # or: fetch CRLs from each certificate's http:// CRL points
//! hpki_role_schemes = ["1.2.392.100495.1.6.1.1"]   # optional: hcRole coding schemes
//!                                # taken (default: national qualifications; add
//!                                # 1.2.392.100495.1.6.1.2 for directors)
//!
//! # optional: the hcRole names accepted (codeDataValue or codeDataFreeText)
//! # and the role each stands for; replaces the built-in English and Japanese
//! # names. Roles: medical-doctor, dentist, pharmacist, nurse.
//! [gate.roles]
//! "Medical Doctor" = "medical-doctor"
//! "医師" = "medical-doctor"
//! ```
//!
//! This crate only reads these settings ([`ConsentSettings`]); the gate
//! itself is built by the command that serves (it needs the auth crate).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use med8k_pipeline::config::{TomlError, parse_toml, read_file};
use med8k_transport::driver::tls::{read_crls, read_roots};
use med8k_transport::driver::{
    Congestion, DriverConfig, Site, SiteIdentity, TlsError, TrustConfig,
};
use med8k_transport::proto::{self, Capabilities, Hello};

/// A site configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SiteError {
    /// The file cannot be read or is not valid TOML (an unknown or
    /// mistyped key, named with its line).
    #[error(transparent)]
    Toml(#[from] TomlError),
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
    /// HPKI and JPKI logins and the consent ledger decide every session
    /// ([`ConsentSettings`]).
    Consent,
}

/// `[gate]` settings of [`GateKind::Consent`], paths resolved against the
/// configuration file's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ConsentSettings {
    /// The consent ledger (SQLite).
    pub ledger: PathBuf,
    /// The audit log.
    pub audit: PathBuf,
    /// HPKI trust anchor files (PEM).
    pub hpki_roots: Vec<PathBuf>,
    /// Accepted HPKI policy OIDs (at least one).
    pub hpki_policies: Vec<String>,
    /// Accepted HPKI signing policy OIDs, for signed annotations (empty: no
    /// signed annotation is accepted).
    pub hpki_sign_policies: Vec<String>,
    /// JPKI trust anchor files (PEM).
    pub jpki_roots: Vec<PathBuf>,
    /// Whether the patient must log in too.
    pub require_patient: bool,
    /// The file holding the audit log's secret salt (made on first use).
    pub audit_salt_file: PathBuf,
    /// CRL files (PEM or DER) checked for logins.
    pub crl: Vec<PathBuf>,
    /// Fetch CRLs from each certificate's `http://` CRL distribution points
    /// instead.
    pub crl_fetch: bool,
    /// hcRole names and the role each stands for (its configuration name,
    /// checked by the auth crate); empty: the built-in names.
    pub roles: Vec<(String, String)>,
    /// The hcRole coding schemes whose codes are taken; empty: the default
    /// (national qualifications).
    pub hpki_role_schemes: Vec<String>,
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
    /// Server: links held at once.
    pub max_links: Option<usize>,
    /// Server: links of one facility held at once.
    pub max_links_per_facility: Option<usize>,
    /// Live frame bytes one link holds at most, MiB.
    pub frame_budget_mb: Option<u64>,
    /// Server: live frame bytes all links hold together, MiB.
    pub total_frame_budget_mb: Option<u64>,
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
    #[serde(default)]
    crl: Vec<PathBuf>,
    #[serde(default)]
    issuers: std::collections::BTreeMap<String, Vec<PathBuf>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct GateSection {
    #[serde(default)]
    kind: GateKind,
    ledger: Option<PathBuf>,
    audit: Option<PathBuf>,
    #[serde(default)]
    hpki_roots: Vec<PathBuf>,
    #[serde(default)]
    hpki_policies: Vec<String>,
    #[serde(default)]
    hpki_sign_policies: Vec<String>,
    #[serde(default)]
    jpki_roots: Vec<PathBuf>,
    require_patient: Option<bool>,
    audit_salt_file: Option<PathBuf>,
    #[serde(default)]
    crl: Vec<PathBuf>,
    crl_fetch: Option<bool>,
    #[serde(default)]
    roles: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    hpki_role_schemes: Vec<String>,
}

impl GateSection {
    /// Whether any key of the consent gate is set.
    fn has_consent_keys(&self) -> bool {
        self.ledger.is_some()
            || self.audit.is_some()
            || !self.hpki_roots.is_empty()
            || !self.hpki_policies.is_empty()
            || !self.hpki_sign_policies.is_empty()
            || !self.jpki_roots.is_empty()
            || self.require_patient.is_some()
            || self.audit_salt_file.is_some()
            || !self.crl.is_empty()
            || self.crl_fetch.is_some()
            || !self.roles.is_empty()
            || !self.hpki_role_schemes.is_empty()
    }

    /// The consent settings, checked, paths resolved against `dir`.
    fn consent(self, dir: &Path) -> Result<ConsentSettings, String> {
        let ledger = self
            .ledger
            .ok_or("[gate] ledger: the consent gate needs the consent ledger")?;
        let audit = self
            .audit
            .ok_or("[gate] audit: the consent gate needs an audit log")?;
        if self.hpki_roots.is_empty() {
            return Err("[gate] hpki_roots: name at least one HPKI CA file".into());
        }
        if self.hpki_policies.is_empty() {
            return Err(
                "[gate] hpki_policies: name the accepted HPKI policy OIDs (they differ per CA; \
                 there is no default)"
                    .into(),
            );
        }
        if let Some(bad) = self.hpki_policies.iter().find(|o| !is_oid(o)) {
            return Err(format!("[gate] hpki_policies: {bad:?} is not an OID"));
        }
        if let Some(bad) = self.hpki_sign_policies.iter().find(|o| !is_oid(o)) {
            return Err(format!("[gate] hpki_sign_policies: {bad:?} is not an OID"));
        }
        if let Some(bad) = self.hpki_role_schemes.iter().find(|o| !is_oid(o)) {
            return Err(format!("[gate] hpki_role_schemes: {bad:?} is not an OID"));
        }
        let require_patient = self.require_patient.unwrap_or(true);
        if require_patient && self.jpki_roots.is_empty() {
            return Err(
                "[gate] jpki_roots: require_patient needs the JPKI CA files to check the \
                 patient's login"
                    .into(),
            );
        }
        let crl_fetch = self.crl_fetch.unwrap_or(false);
        if crl_fetch && !self.crl.is_empty() {
            return Err("[gate] crl and crl_fetch: give CRL files or fetch them, not both".into());
        }
        let audit = dir.join(audit);
        let audit_salt_file = match self.audit_salt_file {
            Some(p) => dir.join(p),
            None => {
                let mut name = audit.clone().into_os_string();
                name.push(".salt");
                PathBuf::from(name)
            }
        };
        let all = |v: Vec<PathBuf>| v.into_iter().map(|p| dir.join(p)).collect();
        Ok(ConsentSettings {
            ledger: dir.join(ledger),
            audit,
            hpki_roots: all(self.hpki_roots),
            hpki_policies: self.hpki_policies,
            hpki_sign_policies: self.hpki_sign_policies,
            jpki_roots: all(self.jpki_roots),
            require_patient,
            audit_salt_file,
            crl: all(self.crl),
            crl_fetch,
            roles: self.roles.into_iter().collect(),
            hpki_role_schemes: self.hpki_role_schemes,
        })
    }
}

/// Dotted decimal, at least two arcs.
fn is_oid(s: &str) -> bool {
    let arcs: Vec<&str> = s.split('.').collect();
    arcs.len() >= 2
        && arcs
            .iter()
            .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
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
    /// CRL files of the facility CAs (`[tls] crl`).
    pub crl: Vec<PathBuf>,
    /// The CA files that may name each facility (`[tls.issuers]`).
    pub issuers: Vec<(String, Vec<PathBuf>)>,
    /// `[link]`.
    pub link: LinkSettings,
    /// `[gate] kind`.
    pub gate: GateKind,
    /// `[gate]` settings when `kind = "consent"`.
    pub consent: Option<ConsentSettings>,
}

impl SiteConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<SiteConfig, SiteError> {
        SiteConfig::parse(&read_file(path)?, path)
    }

    /// Parses TOML `text`; `path` names it in errors and anchors relative paths.
    pub fn parse(text: &str, path: &Path) -> Result<SiteConfig, SiteError> {
        let file: SiteFile = parse_toml(text, path)?;
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
        if let Some(f) = file
            .tls
            .issuers
            .keys()
            .find(|f| !file.tls.allowed.contains(f))
        {
            return Err(invalid(format!(
                "[tls.issuers] {f:?}: not in [tls] allowed"
            )));
        }
        if file.tls.roots.len() > 1
            && let Some(f) = file
                .tls
                .allowed
                .iter()
                .find(|f| !file.tls.issuers.contains_key(*f))
        {
            return Err(invalid(format!(
                "[tls.issuers]: with several CA files in roots, name the CA that may issue \
                 {f:?}'s certificate"
            )));
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
        for (key, v) in [
            ("max_links", link.max_links.map(|n| n as u64)),
            (
                "max_links_per_facility",
                link.max_links_per_facility.map(|n| n as u64),
            ),
            ("frame_budget_mb", link.frame_budget_mb),
            ("total_frame_budget_mb", link.total_frame_budget_mb),
        ] {
            if let Some(v) = v
                && !(1..=1 << 20).contains(&v)
            {
                return Err(invalid(format!("[link] {key}: {v} is outside 1..=1048576")));
            }
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let gate = file.gate.kind;
        let consent = match gate {
            GateKind::Consent => Some(file.gate.consent(dir).map_err(invalid)?),
            GateKind::AllowAuthenticated => {
                if file.gate.has_consent_keys() {
                    return Err(invalid(
                        "[gate]: ledger, audit, roots and policies belong to kind = \"consent\"; \
                         the allow-authenticated gate checks no consent"
                            .into(),
                    ));
                }
                None
            }
        };
        Ok(SiteConfig {
            path: path.to_path_buf(),
            id: file.site.id,
            name: file.site.name,
            cert: dir.join(file.tls.cert),
            key: dir.join(file.tls.key),
            roots: file.tls.roots.iter().map(|r| dir.join(r)).collect(),
            allowed: file.tls.allowed,
            crl: file.tls.crl.iter().map(|c| dir.join(c)).collect(),
            issuers: file
                .tls
                .issuers
                .into_iter()
                .map(|(f, cas)| (f, cas.iter().map(|c| dir.join(c)).collect()))
                .collect(),
            link: file.link,
            gate,
            consent,
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
        let mut trust =
            TrustConfig::from_pem_files(&self.roots, self.allowed.clone()).map_err(tls)?;
        for (facility, cas) in &self.issuers {
            trust = trust.with_facility_roots(facility, read_roots(cas).map_err(tls)?);
        }
        if !self.crl.is_empty() {
            trust = trust.with_crls(read_crls(&self.crl).map_err(tls)?);
        }
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
        if let Some(n) = link.max_links {
            config = config.with_max_links(n);
        }
        if let Some(n) = link.max_links_per_facility {
            config = config.with_max_links_per_facility(n);
        }
        if let Some(mb) = link.frame_budget_mb {
            config = config.with_frame_buffer_budget(mb << 20);
        }
        if let Some(mb) = link.total_frame_budget_mb {
            config = config.with_total_frame_budget(mb << 20);
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
    fn the_gate_kinds() {
        let ok = format!("{GOOD}\n[gate]\nkind = \"allow-authenticated\"\n");
        let c = SiteConfig::parse(&ok, Path::new("s.toml")).unwrap();
        assert_eq!((c.gate, c.consent), (GateKind::AllowAuthenticated, None));
        let bad = format!("{GOOD}\n[gate]\nkind = \"everyone\"\n");
        let e = SiteConfig::parse(&bad, Path::new("s.toml")).unwrap_err();
        assert!(e.to_string().contains("allow-authenticated"), "{e}");
        // Consent keys under the development gate would suggest a check
        // that does not happen.
        let mixed = format!("{ok}ledger = \"l.sqlite\"\n");
        let e = SiteConfig::parse(&mixed, Path::new("s.toml")).unwrap_err();
        assert!(e.to_string().contains("consent"), "{e}");
    }

    const CONSENT: &str = r#"
[gate]
kind = "consent"
ledger = "consent.sqlite"
audit = "log/audit.jsonl"
hpki_roots = ["hpki.pem"]
hpki_policies = ["1.2.392.100495.1.5.1.1"]
jpki_roots = ["jpki.pem"]
crl = ["hpki.crl.pem"]
"#;

    #[test]
    fn the_consent_gate_resolves_paths() {
        let text = format!("{GOOD}{CONSENT}");
        let c = SiteConfig::parse(&text, Path::new("/etc/med8k/a.toml")).unwrap();
        assert_eq!(c.gate, GateKind::Consent);
        let g = c.consent.unwrap();
        assert_eq!(g.ledger, Path::new("/etc/med8k/consent.sqlite"));
        assert_eq!(g.audit, Path::new("/etc/med8k/log/audit.jsonl"));
        assert_eq!(
            g.audit_salt_file,
            Path::new("/etc/med8k/log/audit.jsonl.salt")
        );
        assert_eq!(g.hpki_roots, vec![PathBuf::from("/etc/med8k/hpki.pem")]);
        assert_eq!(g.jpki_roots, vec![PathBuf::from("/etc/med8k/jpki.pem")]);
        assert_eq!(g.crl, vec![PathBuf::from("/etc/med8k/hpki.crl.pem")]);
        assert!(g.require_patient);
        assert!(g.roles.is_empty(), "the built-in names unless configured");
        let roles = format!(
            "{GOOD}{CONSENT}\n[gate.roles]\n\"Medical Doctor\" = \"medical-doctor\"\n\"医師\" = \"medical-doctor\"\n"
        );
        let g = SiteConfig::parse(&roles, Path::new("a.toml"))
            .unwrap()
            .consent
            .unwrap();
        assert_eq!(
            g.roles,
            vec![
                ("Medical Doctor".to_owned(), "medical-doctor".to_owned()),
                ("医師".to_owned(), "medical-doctor".to_owned()),
            ]
        );
    }

    #[test]
    fn the_consent_gate_needs_its_keys() {
        for (drop, word) in [
            ("hpki_policies", "hpki_policies"),
            ("ledger", "ledger"),
            ("audit =", "audit"),
            ("hpki_roots", "hpki_roots"),
            ("jpki_roots", "jpki_roots"),
        ] {
            let gate: String = CONSENT
                .lines()
                .filter(|l| !l.starts_with(drop))
                .map(|l| format!("{l}\n"))
                .collect();
            let e = SiteConfig::parse(&format!("{GOOD}{gate}"), Path::new("s.toml")).unwrap_err();
            assert!(e.to_string().contains(word), "{drop}: {e}");
        }
        let no_patient = format!("{GOOD}{CONSENT}require_patient = false\n")
            .replace("jpki_roots = [\"jpki.pem\"]\n", "");
        let c = SiteConfig::parse(&no_patient, Path::new("s.toml")).unwrap();
        assert!(!c.consent.unwrap().require_patient);
        let bad_oid = format!("{GOOD}{CONSENT}").replace("1.2.392.100495.1.5.1.1", "policy");
        let e = SiteConfig::parse(&bad_oid, Path::new("s.toml")).unwrap_err();
        assert!(e.to_string().contains("not an OID"), "{e}");
        // CRLs from files or fetched from the certificates' points, not both.
        let fetch =
            format!("{GOOD}{CONSENT}crl_fetch = true\n").replace("crl = [\"hpki.crl.pem\"]\n", "");
        let c = SiteConfig::parse(&fetch, Path::new("s.toml")).unwrap();
        assert!(c.consent.unwrap().crl_fetch);
        let both = format!("{GOOD}{CONSENT}crl_fetch = true\n");
        let e = SiteConfig::parse(&both, Path::new("s.toml")).unwrap_err();
        assert!(e.to_string().contains("crl_fetch"), "{e}");
    }

    #[test]
    fn bad_site_id_is_refused() {
        let text = GOOD.replace("jp.hospital-a", "jp hospital a");
        let e = SiteConfig::parse(&text, Path::new("s.toml")).unwrap_err();
        assert!(e.to_string().contains("[site]"), "{e}");
    }
}
