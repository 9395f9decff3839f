//! The process's SoftHSM2 for the token tests: configured once, with a
//! private token directory. SoftHSM2 stands in for the JPKI and HPKI cards;
//! `scripts/setup-debian.sh` installs it, and these tests must not pass
//! without it, so a missing module panics.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use med8k_auth::identity::Module;
use med8k_auth::identity::pkcs11::{SOFTHSM2_CONF_ENV, SOFTHSM2_MODULE, write_softhsm2_conf};

/// The loaded SoftHSM2 module.
pub fn softhsm() -> Arc<Module> {
    static FIXTURE: OnceLock<(tempfile::TempDir, Arc<Module>)> = OnceLock::new();
    let (_, module) = FIXTURE.get_or_init(|| {
        assert!(
            Path::new(SOFTHSM2_MODULE).exists(),
            "SoftHSM2 is not installed at {SOFTHSM2_MODULE}: run scripts/setup-debian.sh"
        );
        let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
        let conf = write_softhsm2_conf(dir.path()).unwrap();
        // SAFETY: set once, inside this OnceLock, before the module is
        // loaded and before any other thread of the test binary reads it.
        unsafe { std::env::set_var(SOFTHSM2_CONF_ENV, &conf) };
        (dir, Module::open(Path::new(SOFTHSM2_MODULE)).unwrap())
    });
    module.clone()
}
