//! The consent gate a site configuration's `[gate]` describes.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use med8k_auth::cert::{
    CrlFetcher, CrlFile, PolicyRule, Profile, ProfileConfig, Purpose, Revocation, StoreKind,
    TrustStore,
};
use med8k_auth::consent::{DataCategory, PatientId};

use super::{ConsentGate, GateConfig};
use crate::site::{ConsentSettings, SiteConfig};

/// How often the consent gate decides open sessions again.
pub const CONSENT_RECHECK: Duration = Duration::from_millis(500);

/// The certificate profile of `[gate]`: its HPKI policies and, when given,
/// its hcRole names.
pub(crate) fn profile_config(settings: &ConsentSettings) -> anyhow::Result<ProfileConfig> {
    let mut profile = ProfileConfig::default();
    profile.policies.insert(
        Purpose::HpkiAuth,
        PolicyRule::AnyOf(settings.hpki_policies.clone()),
    );
    profile.policies.insert(
        Purpose::HpkiSign,
        PolicyRule::AnyOf(settings.hpki_sign_policies.clone()),
    );
    if !settings.hpki_role_schemes.is_empty() {
        profile.role_schemes = settings.hpki_role_schemes.clone();
    }
    if !settings.roles.is_empty() {
        profile.role_names = settings
            .roles
            .iter()
            .map(|(name, role)| {
                let role: med8k_auth::cert::Role = role
                    .parse()
                    .map_err(|e| anyhow::anyhow!("[gate] roles, {name:?}: {e}"))?;
                Ok((name.clone(), role))
            })
            .collect::<anyhow::Result<_>>()?;
    }
    Ok(profile)
}

/// Where `[gate]` says revocation is looked up: fetched from each
/// certificate's distribution points (`crl_fetch`), the CRL files listed
/// (`crl`), or nowhere.
pub(crate) fn revocation(
    settings: &ConsentSettings,
) -> anyhow::Result<Option<Arc<dyn Revocation + Send + Sync>>> {
    if settings.crl_fetch {
        return Ok(Some(Arc::new(CrlFetcher::new())));
    }
    if settings.crl.is_empty() {
        return Ok(None);
    }
    let mut crls = CrlFile::new();
    for c in &settings.crl {
        crls.add_file(c)
            .with_context(|| format!("CRL {}", c.display()))?;
    }
    Ok(Some(Arc::new(crls)))
}

/// The consent gate a site configuration's `[gate]` describes, for a site
/// that serves `serves` (the patient and data category of its source) or
/// nothing.
pub fn from_site(
    config: &SiteConfig,
    settings: &ConsentSettings,
    serves: Option<(PatientId, DataCategory)>,
) -> anyhow::Result<ConsentGate> {
    let store = TrustStore::from_pem_files;
    let profile = profile_config(settings)?;
    let jpki = if settings.jpki_roots.is_empty() {
        None
    } else {
        Some(store(StoreKind::Jpki, &settings.jpki_roots)?)
    };
    let revocation = revocation(settings)?;
    for p in [&settings.ledger, &settings.audit] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
    }
    let gate = ConsentGate::new(GateConfig {
        facility: config.id.clone(),
        ledger: settings.ledger.clone(),
        audit: settings.audit.clone(),
        audit_salt: med8k_auth::audit::site_salt(&settings.audit_salt_file)
            .with_context(|| format!("audit salt {}", settings.audit_salt_file.display()))?,
        profile: Profile::new(profile),
        hpki: store(StoreKind::Hpki, &settings.hpki_roots)?,
        jpki,
        revocation,
        require_patient: settings.require_patient,
        serves,
        recheck: CONSENT_RECHECK,
        clock: Arc::new(SystemTime::now),
    })?;
    Ok(gate)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn settings(roles: &[(&str, &str)]) -> ConsentSettings {
        let mut text = String::from(
            "[site]\nid = \"jp.hospital-a\"\nname = \"A\"\n[tls]\ncert = \"a.pem\"\n\
             key = \"a.key\"\nroots = [\"ca.pem\"]\nallowed = [\"jp.hospital-b\"]\n\
             [gate]\nkind = \"consent\"\nledger = \"c.sqlite\"\naudit = \"a.jsonl\"\n\
             hpki_roots = [\"h.pem\"]\nhpki_policies = [\"1.2.3\"]\njpki_roots = [\"j.pem\"]\n\
             [gate.roles]\n",
        );
        for (name, role) in roles {
            text.push_str(&format!("{name:?} = {role:?}\n"));
        }
        SiteConfig::parse(&text, Path::new("a.toml"))
            .unwrap()
            .consent
            .unwrap()
    }

    #[test]
    fn the_role_map_comes_from_the_site_config() {
        let default = profile_config(&settings(&[])).unwrap();
        assert_eq!(default.role_names, ProfileConfig::default().role_names);
        let own = profile_config(&settings(&[("Doctor of Medicine", "medical-doctor")])).unwrap();
        assert_eq!(
            own.role_names,
            vec![(
                "Doctor of Medicine".to_owned(),
                med8k_auth::cert::Role::MedicalDoctor
            )]
        );
        let e = profile_config(&settings(&[("Surgeon", "surgeon")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("[gate] roles") && e.contains("\"surgeon\" is not a role"),
            "{e}"
        );
    }
}
