//! `pki.toml`, the description of a PKI directory that `med8k pki
//! demo-init` writes: the PKCS#11 module, trust anchors, tokens with their
//! keys, facility certificates and CRLs. `med8k consent` and `med8k fetch`
//! read it. Paths in it are relative to its directory.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use med8k_auth::cert::{PolicyRule, Profile, ProfileConfig, Purpose, StoreKind, TrustStore};
use med8k_auth::identity::Module;
use med8k_auth::identity::pkcs11::SOFTHSM2_CONF_ENV;
use serde::Deserialize;

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
    pub fn id_bytes(&self) -> anyhow::Result<Vec<u8>> {
        let s = &self.id;
        if !s.len().is_multiple_of(2) {
            bail!("key id {s:?} is not hex");
        }
        (0..s.len())
            .step_by(2)
            .map(|i| {
                s.get(i..i + 2)
                    .and_then(|b| u8::from_str_radix(b, 16).ok())
                    .with_context(|| format!("key id {s:?} is not hex"))
            })
            .collect()
    }

    /// Whether this is an authentication key.
    pub fn is_auth(&self) -> bool {
        self.label.ends_with("auth")
    }
}

/// `[crl]` (the other stores' CRLs are not read here).
#[derive(Debug, Default, Deserialize)]
pub struct CrlSection {
    /// HPKI CRLs.
    pub hpki: Option<PathBuf>,
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
    pub fn load(dir: &Path) -> anyhow::Result<PkiFile> {
        let path = dir.join(FILE);
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!("reading {} (made by `med8k pki demo-init`)", path.display())
        })?;
        let mut file: PkiFile =
            toml::from_str(&text).with_context(|| format!("{}", path.display()))?;
        file.dir = dir.to_path_buf();
        Ok(file)
    }

    /// A path from the file, resolved against its directory.
    pub fn path(&self, p: &Path) -> PathBuf {
        self.dir.join(p)
    }

    /// The token labelled `label`.
    pub fn token(&self, label: &str) -> anyhow::Result<&TokenEntry> {
        self.token
            .iter()
            .find(|t| t.label == label)
            .with_context(|| format!("token {label:?} is not listed in {FILE}"))
    }

    /// The PIN for `label`: from the environment variable `pin_env` (named
    /// by `flag`) when given, else the demo PIN in the file.
    pub fn pin(&self, label: &str, flag: &str, pin_env: Option<&str>) -> anyhow::Result<String> {
        match pin_env {
            Some(var) => std::env::var(var).map_err(|_| {
                anyhow::anyhow!("{flag} {var}: the variable is not set (or not UTF-8)")
            }),
            None => self.token(label)?.pin.clone().with_context(|| {
                format!("token {label:?}: no PIN in {FILE} (give it with {flag})")
            }),
        }
    }

    /// Loads the PKCS#11 module (SoftHSM2's configuration first, if named).
    pub fn module(&self) -> anyhow::Result<std::sync::Arc<Module>> {
        if let Some(conf) = &self.pkcs11.softhsm2_conf {
            // SAFETY: set before the module is loaded, while this process
            // runs no other thread (argument parsing and logging set-up
            // spawn none; `med8k demo` runs this before it starts any).
            unsafe { std::env::set_var(SOFTHSM2_CONF_ENV, self.path(conf)) };
        }
        let path = self.path(&self.pkcs11.module);
        Module::open(&path).with_context(|| format!("PKCS#11 module {}", path.display()))
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

    /// The trust store of `kind`.
    pub fn store(&self, kind: StoreKind) -> anyhow::Result<TrustStore> {
        let file = match kind {
            StoreKind::Jpki => &self.trust.jpki,
            StoreKind::Hpki => &self.trust.hpki,
            StoreKind::Facility => &self.trust.facility,
        };
        let path = self.path(file);
        let pem = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let mut store = TrustStore::new(kind);
        let n = store
            .add_pem(&pem)
            .with_context(|| format!("trust anchors {}", path.display()))?;
        if n == 0 {
            bail!("{} holds no CERTIFICATE block", path.display());
        }
        Ok(store)
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
        let f = PkiFile::load(dir.path()).unwrap_or_else(|e| panic!("{e:#}"));
        let t = f.token("med8k-doctor").unwrap_or_else(|e| panic!("{e:#}"));
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
