//! SoftHSM2 for the token tests, with a token directory of each test's own.
//!
//! SoftHSM2 stands in for the JPKI and HPKI cards; `scripts/setup-debian.sh`
//! installs it, and these tests must not pass without it, so a missing
//! module fails them. SoftHSM2 reads its configuration from the environment
//! (`SOFTHSM2_CONF`) when the module is loaded, and a test harness runs
//! tests on many threads, where setting the environment is unsound. So each
//! token test runs in a child process of its own test binary, started with
//! the variable set ([`softhsm_test!`]); the parent only checks that the
//! child ran the test and passed.
#![allow(clippy::unwrap_used, dead_code, unused_macros, unused_imports)]

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, OnceLock};

use med8k_auth::identity::Module;
use med8k_auth::identity::pkcs11::{SOFTHSM2_CONF_ENV, SOFTHSM2_MODULE, write_softhsm2_conf};

/// Set in the child that runs a token test's body: its directory.
const CHILD: &str = "MED8K_SOFTHSM_TEST_DIR";

/// A `#[test]` whose body runs with SoftHSM2 configured (see the module docs).
macro_rules! softhsm_test {
    ($(#[$meta:meta])* fn $name:ident() $body:block) => {
        $(#[$meta])*
        #[test]
        fn $name() {
            softhsm::isolated(stringify!($name), || $body);
        }
    };
}
pub(crate) use softhsm_test;

/// Runs `body` in a child process of this test binary, with SoftHSM2
/// keeping its tokens in a fresh temporary directory; `test` is the test's
/// name (its path in the binary, for `--exact`).
pub fn isolated(test: &str, body: impl FnOnce()) {
    isolated_in(test, "softhsm2.conf", |dir| {
        write_softhsm2_conf(dir).unwrap();
        body();
    });
}

/// Runs `body(dir)` in a child process of this test binary whose SoftHSM2
/// configuration is `dir/conf`, `dir` a fresh temporary directory (removed
/// after); `body` may write that file itself (`med8k pki demo-init` does)
/// as long as it does so before it loads the module.
pub fn isolated_in(test: &str, conf: &str, body: impl FnOnce(&Path)) {
    if let Some(dir) = std::env::var_os(CHILD) {
        body(Path::new(&dir));
        return;
    }
    assert!(
        Path::new(SOFTHSM2_MODULE).exists(),
        "SoftHSM2 is not installed at {SOFTHSM2_MODULE}: run scripts/setup-debian.sh"
    );
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--include-ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(SOFTHSM2_CONF_ENV, dir.path().join(conf))
        .env(CHILD, dir.path())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    print!("{stdout}");
    eprint!("{stderr}");
    assert!(
        out.status.success(),
        "{test} failed in its SoftHSM2 process"
    );
    // A name that matched nothing runs no test and still exits 0.
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in its SoftHSM2 process"
    );
}

/// The loaded SoftHSM2 module, inside [`isolated`] only.
pub fn softhsm() -> Arc<Module> {
    static MODULE: OnceLock<Arc<Module>> = OnceLock::new();
    assert!(
        std::env::var_os(CHILD).is_some(),
        "softhsm() outside softhsm_test!: SOFTHSM2_CONF is not set for this process"
    );
    MODULE
        .get_or_init(|| Module::open(Path::new(SOFTHSM2_MODULE)).unwrap())
        .clone()
}
