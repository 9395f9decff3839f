//! PKCS#11 modules: which are configured, and whether they load.
//!
//! Cards are reached through PKCS#11 modules: OpenSC's for JPKI (My Number)
//! cards, a vendor's for HPKI cards, SoftHSM2 in tests and demos. The modules
//! med8k uses are those listed in `MED8K_PKCS11_MODULES` (separated by `:`),
//! followed by the well-known Debian locations that exist on this machine.

use std::fmt;
use std::path::{Path, PathBuf};

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};

/// Environment variable listing PKCS#11 modules, separated by `:`.
pub const ENV: &str = "MED8K_PKCS11_MODULES";

/// Where Debian's packages install the modules med8k knows.
pub const WELL_KNOWN: [&str; 3] = [
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so",
    "/usr/lib/aarch64-linux-gnu/opensc-pkcs11.so",
];

/// The configured modules: `MED8K_PKCS11_MODULES` first, then the
/// [`WELL_KNOWN`] paths that exist, without repeats.
pub fn configured_modules() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::env::var_os(ENV)
        .map(|v| {
            std::env::split_paths(&v)
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        })
        .unwrap_or_default();
    for p in WELL_KNOWN.iter().map(PathBuf::from) {
        if p.exists() && !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

/// What loading a module found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ModuleStatus {
    /// The module loaded and initialised.
    Loaded {
        /// `manufacturerID` from `C_GetInfo`.
        manufacturer: String,
        /// `libraryDescription` from `C_GetInfo`.
        description: String,
        /// Library version.
        version: String,
        /// Slots that hold a token (a card in a reader, a SoftHSM2 token).
        tokens: usize,
    },
    /// No file at the path.
    Missing,
    /// The file is there but did not load or initialise.
    Failed(String),
}

impl fmt::Display for ModuleStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ModuleStatus::Loaded {
                manufacturer,
                description,
                version,
                tokens,
            } => write!(
                f,
                "{description} {version} ({manufacturer}), {tokens} token{}",
                if *tokens == 1 { "" } else { "s" }
            ),
            ModuleStatus::Missing => f.write_str("missing"),
            ModuleStatus::Failed(why) => write!(f, "failed: {why}"),
        }
    }
}

/// Load `path`, ask it who it is and how many tokens it sees, and unload it.
pub fn probe(path: &Path) -> ModuleStatus {
    if !path.exists() {
        return ModuleStatus::Missing;
    }
    // A module this process already uses for identities is asked through
    // that context, and left initialised; none is opened meanwhile.
    crate::identity::pkcs11::Module::with_opened(path, |opened| match opened {
        Some(m) => status_of(m.context()),
        None => probe_alone(path),
    })
}

fn probe_alone(path: &Path) -> ModuleStatus {
    let ctx = match Pkcs11::new(path) {
        Ok(c) => c,
        Err(e) => return ModuleStatus::Failed(e.to_string()),
    };
    if let Err(e) = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        return ModuleStatus::Failed(format!("C_Initialize: {e}"));
    }
    let status = status_of(&ctx);
    let _ = ctx.finalize();
    status
}

fn status_of(ctx: &Pkcs11) -> ModuleStatus {
    match (ctx.get_library_info(), ctx.get_slots_with_token()) {
        (Ok(info), Ok(slots)) => {
            let v = info.library_version();
            ModuleStatus::Loaded {
                manufacturer: info.manufacturer_id().trim().to_owned(),
                description: info.library_description().trim().to_owned(),
                version: format!("{}.{}", v.major(), v.minor()),
                tokens: slots.len(),
            }
        }
        (Err(e), _) | (_, Err(e)) => ModuleStatus::Failed(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_module_is_reported_as_missing() {
        assert_eq!(
            probe(Path::new("/nonexistent/libnothing.so")),
            ModuleStatus::Missing
        );
    }

    #[test]
    fn a_file_that_is_not_a_module_fails_to_load() {
        let status = probe(Path::new("/etc/hostname"));
        assert!(matches!(status, ModuleStatus::Failed(_)), "{status:?}");
    }

    #[test]
    fn softhsm2_loads_when_installed() {
        let path = Path::new(WELL_KNOWN[0]);
        if !path.exists() {
            eprintln!("SKIPPED: SoftHSM2 is not installed at {}", path.display());
            return;
        }
        match probe(path) {
            ModuleStatus::Loaded { manufacturer, .. } => {
                assert!(manufacturer.contains("SoftHSM"), "{manufacturer}")
            }
            other => panic!("SoftHSM2 did not load: {other}"),
        }
    }
}
