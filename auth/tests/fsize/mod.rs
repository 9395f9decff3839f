//! A full disk, for real: a test body runs in a child process of its test
//! binary (a resource limit is per process, and a test harness runs tests
//! on threads), where [`limit_file_size`] makes writes past a size fail
//! with `EFBIG`, as a full file system makes them fail with `ENOSPC`.
#![allow(clippy::unwrap_used, dead_code)]

use std::process::Command;

/// Set in the child that runs the body.
const CHILD: &str = "MED8K_FSIZE_TEST_CHILD";

/// Runs `body` in a child process of this test binary; `test` is the
/// test's name (for `--exact`).
pub fn isolated(test: &str, body: impl FnOnce()) {
    if std::env::var_os(CHILD).is_some() {
        // SAFETY: setting a signal's disposition to "ignore" before any
        // thread of the body starts; SIGXFSZ would otherwise kill the
        // process at the first write past the limit.
        unsafe {
            libc::signal(libc::SIGXFSZ, libc::SIG_IGN);
        }
        body();
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--nocapture", "--test-threads", "1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{test} failed in its child process");
    assert!(
        stdout.contains("1 passed"),
        "{test} did not run in its child"
    );
}

/// Files of this process may grow to `bytes` (`None`: no limit).
pub fn limit_file_size(bytes: Option<u64>) {
    let limit = bytes.unwrap_or(libc::RLIM_INFINITY);
    let r = libc::rlimit {
        rlim_cur: limit,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `r` is a valid rlimit for the duration of the call.
    let rc = unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &r) };
    assert_eq!(rc, 0, "setrlimit(RLIMIT_FSIZE) failed");
}
