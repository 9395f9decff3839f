//! `pki.toml`, the description of a PKI directory that `med8k pki
//! demo-init` writes: the PKCS#11 module, trust anchors, tokens with their
//! keys, facility certificates and CRLs. `med8k consent` and `med8k fetch`
//! read it. Paths in it are relative to its directory.
//!
//! SoftHSM2 (the demo's cards) reads its configuration from the environment
//! when the module loads; a process must set [`SOFTHSM2_CONF_ENV`] to
//! [`PkiFile::softhsm2_conf`] once, before it starts any thread (`med8k`
//! does it first thing in `main`). [`PkiFile::module`] refuses to load the
//! module when the variable says otherwise, rather than set it late.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cert::{
    PolicyRule, Profile, ProfileConfig, Purpose, StoreKind, TrustFileError, TrustStore,
};
use crate::identity::pkcs11::SOFTHSM2_CONF_ENV;
use crate::identity::{IdentityError, Module};

/// Why a PKI directory cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiFileError {
    /// `pki.toml` cannot be read.
    #[error("reading {path} (made by `med8k pki demo-init`): {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
    /// `pki.toml` is not what `demo-init` writes.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A token the command names is not listed.
    #[error("unknown token {0:?}: it is not listed in {FILE}")]
    UnknownToken(String),
    /// No PIN for a token.
    #[error("token {label:?}: no PIN in {FILE} (give it with {flag})")]
    NoPin {
        /// The token.
        label: String,
        /// The option that gives one.
        flag: String,
    },
    /// The PIN's environment variable is not set.
    #[error("{flag} {var}: the variable is not set (or not UTF-8)")]
    PinVariable {
        /// The option that named it.
        flag: String,
        /// The variable.
        var: String,
    },
    /// A key id is not hex.
    #[error("key id {0:?} is not hex")]
    KeyId(String),
    /// The process was started without the SoftHSM2 configuration of this
    /// directory.
    #[error(
        "{SOFTHSM2_CONF_ENV} must be {want} when the process starts (it is {got}); \
         med8k sets it from --pki before it starts any thread"
    )]
    Environment {
        /// What it must be.
        want: String,
        /// What it is.
        got: String,
    },
    /// The PKCS#11 module cannot be loaded.
    #[error("PKCS#11 module {path}: {source}")]
    Module {
        /// The module.
        path: PathBuf,
        /// Why.
        source: IdentityError,
    },
    /// A trust anchor file cannot be used.
    #[error(transparent)]
    Trust(#[from] TrustFileError),
    /// A CRL file cannot be used.
    #[error("CRL {path}: {source}")]
    Crl {
        /// The file.
        path: PathBuf,
        /// Why.
        source: crate::cert::CertError,
    },
}

/// File name inside a PKI directory.
pub const FILE: &str = "pki.toml";

/// `[pkcs11]`.
#[derive(Debug, Deserialize)]
pub struct Pkcs11Section {
    /// The module's path.
    pub module: PathBuf,
    /// SoftHSM2's configuration, when the tokens are SoftHSM2's.
    pub softhsm2_conf: Option<PathBuf>,
}

/// `[trust]`: anchor files per store and the HPKI policy OIDs.
#[derive(Debug, Deserialize)]
pub struct TrustSection {
    /// JPKI CA certificates (PEM).
    pub jpki: PathBuf,
    /// HPKI root certificates (PEM).
    pub hpki: PathBuf,
    /// Facility CA certificates (PEM).
    pub facility: PathBuf,
    /// HPKI signing certificate policy.
    pub hpki_sign_policy: Option<String>,
    /// HPKI authentication certificate policy.
    pub hpki_auth_policy: Option<String>,
}

/// `[[token]]`.
#[derive(Debug, Deserialize)]
pub struct TokenEntry {
    /// The token's label.
    pub label: String,
    /// Its user PIN (demo tokens only).
    pub pin: Option<String>,
    /// Its keys.
    #[serde(default)]
    pub key: Vec<KeyEntry>,
}

/// `[[token.key]]`.
#[derive(Debug, Deserialize)]
pub struct KeyEntry {
    /// `CKA_ID`, hex.
    pub id: String,
    /// `CKA_LABEL`: `JPKI sign`, `JPKI auth`, `HPKI sign`, `HPKI auth`.
    pub label: String,
    /// Its certificate and chain (PEM).
    pub certificate: PathBuf,
}

impl KeyEntry {
    /// `CKA_ID` as bytes.
    pub fn id_bytes(&self) -> Result<Vec<u8>, PkiFileError> {
        let s = &self.id;
        let bad = || PkiFileError::KeyId(s.clone());
        if !s.len().is_multiple_of(2) {
            return Err(bad());
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
                    .ok_or_else(bad)
            })
            .collect()
    }

    /// Whether this is an authentication key.
    pub fn is_auth(&self) -> bool {
        self.label.ends_with("auth")
    }
}

/// `[crl]`: a CRL file (PEM) per store.
#[derive(Debug, Default, Deserialize)]
pub struct CrlSection {
    /// HPKI CRLs.
    pub hpki: Option<PathBuf>,
    /// JPKI CRLs (the signing certificates' status at grant and revoke).
    pub jpki: Option<PathBuf>,
    /// Facility CA CRLs.
    pub facility: Option<PathBuf>,
}

/// Whether this process was started with SoftHSM2 configured by `conf`
/// (the same file, however the paths are written).
pub fn check_softhsm2_env(conf: &Path) -> Result<(), PkiFileError> {
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => std::path::absolute(a).ok() == std::path::absolute(b).ok(),
    };
    match std::env::var_os(SOFTHSM2_CONF_ENV) {
        Some(got) if same(Path::new(&got), conf) => Ok(()),
        got => Err(PkiFileError::Environment {
            want: conf.display().to_string(),
            got: got.map_or("unset".into(), |g| g.to_string_lossy().into_owned()),
        }),
    }
}

/// A parsed `pki.toml`.
#[derive(Debug, Deserialize)]
pub struct PkiFile {
    /// The directory it is in (paths are relative to it).
    #[serde(skip)]
    pub dir: PathBuf,
    /// `[pkcs11]`.
    pub pkcs11: Pkcs11Section,
    /// `[trust]`.
    pub trust: TrustSection,
    /// `[[token]]`.
    #[serde(default)]
    pub token: Vec<TokenEntry>,
    /// `[crl]`.
    #[serde(default)]
    pub crl: CrlSection,
}

impl PkiFile {
    /// Reads `dir/pki.toml`.
    pub fn load(dir: &Path) -> Result<PkiFile, PkiFileError> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).map_err(|source| PkiFileError::Read {
            path: path.clone(),
            source,
        })?;
        let mut file: PkiFile = toml::from_str(&text).map_err(|e| PkiFileError::Parse {
            path: path.clone(),
            message: e.message().replace('\n', " "),
        })?;
        file.dir = dir.to_path_buf();
        Ok(file)
    }

    /// The SoftHSM2 configuration the tokens need, resolved, when they are
    /// SoftHSM2's.
    pub fn softhsm2_conf(&self) -> Option<PathBuf> {
        self.pkcs11.softhsm2_conf.as_deref().map(|c| self.path(c))
    }

    /// A path from the file, resolved against its directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        self.dir.join(p)
    }

    /// The token labelled `label`.
    pub fn token(&self, label: &str) -> Result<&TokenEntry, PkiFileError> {
        self.token
            .iter()
            .find(|t| t.label == label)
            .ok_or_else(|| PkiFileError::UnknownToken(label.to_owned()))
    }

    /// The PIN for `label`: from the environment variable `pin_env` (named
    /// by `flag`) when given, else the demo PIN in the file.
    pub fn pin(
        &self,
        label: &str,
        flag: &str,
        pin_env: Option<&str>,
    ) -> Result<String, PkiFileError> {
        match pin_env {
            Some(var) => std::env::var(var).map_err(|_| PkiFileError::PinVariable {
                flag: flag.to_owned(),
                var: var.to_owned(),
            }),
            None => self
                .token(label)?
                .pin
                .clone()
                .ok_or_else(|| PkiFileError::NoPin {
                    label: label.to_owned(),
                    flag: flag.to_owned(),
                }),
        }
    }

    /// Loads the PKCS#11 module; for SoftHSM2 tokens, only when the process
    /// was started with their configuration (see the module docs).
    pub fn module(&self) -> Result<std::sync::Arc<Module>, PkiFileError> {
        if let Some(want) = self.softhsm2_conf() {
            check_softhsm2_env(&want)?;
        }
        let path = self.path(&self.pkcs11.module);
        Module::open(&path).map_err(|source| PkiFileError::Module { path, source })
    }

    /// The profile: the default JPKI policies plus the HPKI policies given.
    pub fn profile(&self) -> Profile {
        let mut config = ProfileConfig::default();
        for (purpose, oid) in [
            (Purpose::HpkiSign, &self.trust.hpki_sign_policy),
            (Purpose::HpkiAuth, &self.trust.hpki_auth_policy),
        ] {
            if let Some(oid) = oid {
                config
                    .policies
                    .insert(purpose, PolicyRule::AnyOf(vec![oid.clone()]));
            }
        }
        Profile::new(config)
    }

    /// The CRLs `[crl]` names for the store `kind`, if it names any.
    pub fn crls(&self, kind: StoreKind) -> Result<Option<crate::cert::CrlFile>, PkiFileError> {
        let file = match kind {
            StoreKind::Jpki => &self.crl.jpki,
            StoreKind::Hpki => &self.crl.hpki,
            StoreKind::Facility => &self.crl.facility,
        };
        let Some(file) = file else {
            return Ok(None);
        };
        let path = self.path(file);
        let mut crls = crate::cert::CrlFile::new();
        crls.add_file(&path)
            .map_err(|source| PkiFileError::Crl { path, source })?;
        Ok(Some(crls))
    }

    /// The trust store of `kind`.
    pub fn store(&self, kind: StoreKind) -> Result<TrustStore, PkiFileError> {
        let file = match kind {
            StoreKind::Jpki => &self.trust.jpki,
            StoreKind::Hpki => &self.trust.hpki,
            StoreKind::Facility => &self.trust.facility,
        };
        Ok(TrustStore::from_pem_files(kind, &[self.path(file)])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_what_demo_init_writes() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(
            dir.path().join(FILE),
            "# demo\n[pkcs11]\nmodule = \"/usr/lib/softhsm/libsofthsm2.so\"\nsofthsm2_conf = \"softhsm2.conf\"\n\n\
             [trust]\njpki = \"ca/jpki.pem\"\nhpki = \"ca/hpki.pem\"\nfacility = \"ca/facility.pem\"\n\
             hpki_sign_policy = \"1.2.3\"\nhpki_auth_policy = \"1.2.4\"\n\n\
             [[token]]\nlabel = \"med8k-doctor\"\npin = \"1234\"\nrole = \"Medical Doctor\"\n\n\
             [[token.key]]\nid = \"02\"\nlabel = \"HPKI auth\"\ncertificate = \"certs/d-auth.pem\"\n\n\
             [[facility]]\nid = \"jp.hospital-a\"\ncertificate = \"f.pem\"\nkey = \"f.key\"\n\n\
             [crl]\nhpki = \"crl/hpki.crl.pem\"\n",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let f = PkiFile::load(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        let t = f.token("med8k-doctor").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.key[0].id_bytes().unwrap_or_default(), vec![2]);
        assert!(t.key[0].is_auth());
        assert_eq!(
            f.pin("med8k-doctor", "--pin-env", None).ok().as_deref(),
            Some("1234")
        );
        assert!(f.token("nobody").is_err());
        assert_eq!(f.crl.hpki.as_deref(), Some(Path::new("crl/hpki.crl.pem")));
    }
}
