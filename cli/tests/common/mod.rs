//! What the tests of the real `med8k` binary share: running it in a
//! temporary directory and reading what it said.
#![allow(dead_code)] // each test binary uses its own subset

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// `med8k samples generate` into `dir/samples` at `size` (`WxH`) with
/// `frames` frames; the set's directory.
pub fn generate_samples(dir: &Path, size: &str, frames: u32) -> PathBuf {
    let out = dir.join("samples");
    let frames = frames.to_string();
    let o = med8k(
        dir,
        &[
            "samples",
            "generate",
            "--out",
            out.to_str().unwrap(),
            "--size",
            size,
            "--frames",
            &frames,
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    out
}

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

/// Starts `cmd` with its output piped and reads its first line of output.
pub fn spawn_first_line(mut cmd: Command) -> (Child, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    (child, line)
}

/// A running `med8k serve`, killed if the test ends first.
pub struct Serve {
    child: Child,
    /// The address it listens on (its first line of output).
    pub addr: String,
}

impl Serve {
    /// `med8k serve --listen LISTEN --config CONFIG ARGS...` in `dir`.
    pub fn start(dir: &Path, listen: &str, config: &str, args: &[&str]) -> Serve {
        let mut all = vec!["serve", "--listen", listen, "--config", config];
        all.extend_from_slice(args);
        let (child, line) = spawn_first_line(command(dir, &all));
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("first line: {line:?}"))
            .to_owned();
        Serve { child, addr }
    }

    /// Waits for it to exit by itself (at most `limit`).
    pub fn wait(mut self, limit: Duration) -> Output {
        let start = Instant::now();
        while self.child.try_wait().unwrap().is_none() {
            assert!(start.elapsed() < limit, "serve did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
        let child = std::mem::replace(&mut self.child, Command::new("true").spawn().unwrap());
        child.wait_with_output().unwrap()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request with `Connection: close` to a server `med8k` runs
/// (the viewer, the cut-out desk): the answer's head and body. A non-empty
/// `body` goes as JSON.
pub fn http(addr: &str, method: &str, path: &str, cookie: &str, body: &str) -> (String, Vec<u8>) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let json = if body.is_empty() {
        ""
    } else {
        "Content-Type: application/json\r\n"
    };
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nCookie: {cookie}\r\n{json}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n");
    let (head, body) = match split {
        Some(at) => (&raw[..at], &raw[at + 4..]),
        None => (&raw[..], &[][..]),
    };
    (String::from_utf8_lossy(head).into_owned(), body.to_vec())
}

/// [`http`] with a text body.
pub fn http_text(
    addr: &str,
    method: &str,
    path: &str,
    cookie: &str,
    body: &str,
) -> (String, String) {
    let (head, body) = http(addr, method, path, cookie, body);
    (head, String::from_utf8(body).unwrap())
}
