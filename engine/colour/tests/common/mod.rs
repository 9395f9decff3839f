//! Shared test helpers: fixtures, temporary files, and running pinned Python.

#![allow(dead_code)]

pub mod fixture;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The requirements file CI installs for the Python cross-checks.
pub const REQUIREMENTS: &str = "engine/colour/data/requirements.txt";

/// A fresh temporary directory for one test (removed by the caller or left
/// in the system temp dir; names are unique per process and test).
pub fn temp_dir(test: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("med8k-colour-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

/// Runs `python3` (or `$MED8K_PYTHON`) on `script` with `stdin`, after
/// checking that the pinned packages `modules` import. Missing packages fail
/// the test with a message naming the requirements file: these checks never
/// skip silently.
pub fn run_python(script: &str, stdin: &str, modules: &[&str]) -> String {
    let python = std::env::var("MED8K_PYTHON").unwrap_or_else(|_| "python3".to_string());
    let probe = format!(
        "import warnings; warnings.filterwarnings('ignore')\n{}",
        modules
            .iter()
            .map(|m| format!("import {m}\n"))
            .collect::<String>()
    );
    let ok = Command::new(&python)
        .args(["-c", &probe])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output();
    match ok {
        Ok(out) if out.status.success() => {}
        Ok(out) => panic!(
            "{python} cannot import {modules:?}: {}\nInstall the pinned packages: pip install -r {REQUIREMENTS}",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => {
            panic!("cannot run {python}: {e}\nInstall Python 3 and: pip install -r {REQUIREMENTS}")
        }
    }
    let mut child = Command::new(&python)
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn python");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write to python");
    let out = child.wait_with_output().expect("python output");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 output")
}
