//! What the tests of the real `med8k` binary share: running it in a
//! temporary directory and reading what it said.
#![allow(dead_code)] // each test binary uses its own subset

use std::path::Path;
use std::process::{Command, Output};

/// `med8k args` in `dir`, with its own cache and no sample directory from
/// the environment.
pub fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_med8k"));
    c.args(args)
        .current_dir(dir)
        .env_remove("MED8K_SAMPLES")
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("RUST_LOG", "warn");
    c
}

/// Run [`command`] to the end.
pub fn med8k(dir: &Path, args: &[&str]) -> Output {
    command(dir, args).output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The command failed with exit code 1 and exactly one `med8k:` error line
/// containing every one of `words`.
pub fn assert_one_line_error(o: &Output, words: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "stderr: {err}");
    assert!(!err.contains("panicked"), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("med8k: ")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    for w in words {
        assert!(lines[0].contains(w), "`{w}` not in `{}`", lines[0]);
    }
}
