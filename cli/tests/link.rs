//! `med8k serve`, `med8k send` and `med8k bench link`: the real binary, two
//! sites on loopback with a PKI made for the test.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Serve, assert_one_line_error, command, med8k, stderr, stdout};
use med8k_transport::pki::Ephemeral;
use tempfile::TempDir;

const A: &str = "jp.hospital-a";
const B: &str = "jp.hospital-b";

/// Two sites' certificates under one CA, a stranger CA, and a site
/// configuration for each end.
fn pki(dir: &Path) {
    let ca = Ephemeral::new("Test CA").unwrap();
    let other = Ephemeral::new("Stranger CA").unwrap();
    std::fs::write(dir.join("ca.pem"), &ca.cert_pem).unwrap();
    std::fs::write(dir.join("other-ca.pem"), &other.cert_pem).unwrap();
    for (id, file) in [(A, "a"), (B, "b")] {
        let leaf = ca.facility(id).unwrap();
        std::fs::write(dir.join(format!("{file}.pem")), &leaf.cert_pem).unwrap();
        std::fs::write(dir.join(format!("{file}.key")), &leaf.key_pem).unwrap();
    }
    site_toml(dir, "site-a.toml", A, "a", B, "ca.pem");
    site_toml(dir, "site-b.toml", B, "b", A, "ca.pem");
    site_toml(dir, "site-a-stranger.toml", A, "a", B, "other-ca.pem");
}

fn site_toml(dir: &Path, name: &str, id: &str, file: &str, peer: &str, roots: &str) {
    let text = format!(
        "[site]\nid = \"{id}\"\nname = \"Site {file}\"\n\n[tls]\ncert = \"{file}.pem\"\n\
         key = \"{file}.key\"\nroots = [\"{roots}\"]\nallowed = [\"{peer}\"]\n\n\
         [link]\ndeadline_ms = 1000\n\n[gate]\nkind = \"allow-authenticated\"\n"
    );
    std::fs::write(dir.join(name), text).unwrap();
}

fn samples(dir: &Path) -> PathBuf {
    common::generate_samples(dir, "256x144", 6)
}

#[test]
fn send_reaches_serve_frames_and_object_intact() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    pki(dir);
    let clip = samples(dir).join("endoscope.mkv");
    let object: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 253) as u8).collect();
    std::fs::write(dir.join("cube.raw"), &object).unwrap();

    let serve = Serve::start(
        dir,
        "127.0.0.1:0",
        "site-b.toml",
        &["--out", "recv", "--sink", "fakesink", "--links", "1"],
    );
    let sent = med8k(
        dir,
        &[
            "send",
            "--to",
            &serve.addr,
            "--config",
            "site-a.toml",
            "--source",
            clip.to_str().unwrap(),
            "--lossless",
            "--object",
            "cube.raw",
        ],
    );
    assert!(sent.status.success(), "{}", stderr(&sent));
    let out = stdout(&sent);
    assert!(out.contains("6 frame(s) captured"), "{out}");
    assert!(out.contains("0 lost or late"), "{out}");
    assert!(out.contains("delivered"), "{out}");

    let served = serve.wait(Duration::from_secs(20));
    assert!(served.status.success(), "{}", stderr(&served));
    let report = stdout(&served);
    assert!(report.contains(&format!("link {A}")), "{report}");
    assert!(report.contains("6 frame(s)"), "{report}");
    assert!(
        report.contains("6 frame(s) decoded to the sink"),
        "{report}"
    );

    // The frames decode, all six.
    let seq = dir.join("recv").join(format!("{A}-1.m8ks"));
    assert!(seq.exists(), "{report}");
    let o = med8k(
        dir,
        &[
            "codec",
            "decode",
            "--in",
            seq.to_str().unwrap(),
            "--out",
            "frames.raw",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).starts_with("6 frames"), "{}", stdout(&o));

    // The object arrived bit-exact.
    let objects: Vec<PathBuf> = std::fs::read_dir(dir.join("recv"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("object-")
        })
        .collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    assert!(std::fs::read(&objects[0]).unwrap() == object);
}

#[test]
fn send_with_a_model_stamps_results_that_serve_stores() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    pki(dir);
    let clip = samples(dir).join("endoscope.mkv");
    let model = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/endoscope/med8k-endoscope-gauss.onnx")
        .canonicalize()
        .unwrap();
    let model = model.to_str().unwrap();

    // A model that is not there: one line, before anything is sent.
    let bad = med8k(
        dir,
        &[
            "send",
            "--to",
            "127.0.0.1:9",
            "--config",
            "site-a.toml",
            "--source",
            clip.to_str().unwrap(),
            "--model",
            "no-such-model.onnx",
        ],
    );
    assert_one_line_error(&bad, &["--model", "no-such-model.onnx"]);
    // A cube model is refused: it cannot take frames.
    let cube_model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/rx/med8k-rx-7band.onnx");
    let bad = med8k(
        dir,
        &[
            "send",
            "--to",
            "127.0.0.1:9",
            "--config",
            "site-a.toml",
            "--source",
            clip.to_str().unwrap(),
            "--model",
            cube_model.to_str().unwrap(),
        ],
    );
    assert_one_line_error(&bad, &["--model", "not a frame"]);

    let serve = Serve::start(
        dir,
        "127.0.0.1:0",
        "site-b.toml",
        &["--out", "recv", "--links", "1"],
    );
    let sent = med8k(
        dir,
        &[
            "send",
            "--to",
            &serve.addr,
            "--config",
            "site-a.toml",
            "--source",
            clip.to_str().unwrap(),
            "--lossless",
            "--model",
            model,
        ],
    );
    assert!(sent.status.success(), "{}", stderr(&sent));
    let out = stdout(&sent);
    assert!(out.contains("6 frame(s) captured"), "{out}");
    let analysed: u64 = out
        .split("detection: ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or_else(|| panic!("no detection line: {out}"))
        .parse()
        .unwrap();
    assert!(analysed >= 1, "{out}");
    assert!(!out.contains(" 0 metadata message(s) sent"), "{out}");

    let served = serve.wait(Duration::from_secs(20));
    assert!(served.status.success(), "{}", stderr(&served));
    let report = stdout(&served);
    let results: u64 = report
        .split(" detection result(s)")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("no detection results: {report}"));
    assert!(results >= 1, "{report}");

    let jsonl = dir.join("recv").join(format!("{A}-1.detections.jsonl"));
    let text = std::fs::read_to_string(&jsonl).unwrap_or_else(|e| panic!("{e}: {report}"));
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() as u64, results, "{text}");
    for l in &lines {
        assert!(l["seq"].as_u64().unwrap() < 6, "{l}");
        assert!(l["score"].as_f64().unwrap().is_finite(), "{l}");
        assert!(l["threshold"].as_f64().is_some(), "{l}");
        assert!(l["boxes"].is_array(), "{l}");
    }
}

#[test]
fn send_reconnects_when_the_receiver_restarts() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    pki(dir);
    // The sender notices a silent peer after a second.
    let a = std::fs::read_to_string(dir.join("site-a.toml")).unwrap();
    std::fs::write(
        dir.join("site-a-fast.toml"),
        a.replace("[link]\n", "[link]\nidle_timeout_ms = 1000\n"),
    )
    .unwrap();

    let first = Serve::start(dir, "127.0.0.1:0", "site-b.toml", &[]);
    let addr = first.addr.clone();
    let mut send = command(
        dir,
        &[
            "send",
            "--to",
            &addr,
            "--config",
            "site-a-fast.toml",
            "--source",
            "videotestsrc num-buffers=120 ! video/x-raw,format=I420,width=64,height=64,framerate=20/1",
            "--lossless",
            "--fps",
            "20",
        ],
    )
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .unwrap();
    // Its output, line by line, as it comes (the capture runs while it
    // connects, so a fixed wait raced a slow connection on a loaded machine).
    let lines = lines_of(send.stdout.take().unwrap());
    let mut out = String::new();
    let connected = Instant::now() + Duration::from_secs(30);
    while !out.contains("connected to") {
        let left = connected.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => out.push_str(&line),
            Err(_) => {
                let _ = send.kill();
                let sent = send.wait_with_output().unwrap();
                panic!("send never connected: {out}{}", stderr(&sent));
            }
        }
    }
    // The receiver goes away without a word, and comes back on the same port.
    drop(first);
    let second = Serve::start(dir, &addr, "site-b.toml", &["--links", "1"]);

    let start = Instant::now();
    while send.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(60), "send hangs");
        std::thread::sleep(Duration::from_millis(100));
    }
    let sent = send.wait_with_output().unwrap();
    out.extend(lines.iter());
    assert!(sent.status.success(), "{}", stderr(&sent));
    assert!(out.contains("reconnected to"), "{out}");
    assert!(out.contains("120 frame(s) captured"), "{out}");
    assert!(out.contains("1 reconnect(s)"), "{out}");

    let served = second.wait(Duration::from_secs(20));
    assert!(served.status.success(), "{}", stderr(&served));
    let report = stdout(&served);
    let frames: u64 = report
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .find(|w| w[1] == "frame(s)")
        .and_then(|w| w[0].parse().ok())
        .unwrap_or_else(|| panic!("no frame count in: {report}"));
    assert!(
        frames > 10,
        "the restarted receiver got {frames} frames: {report}"
    );
}

/// The lines `from` writes, each with its newline, as they come; the
/// channel closes at its end.
fn lines_of(from: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut from = BufReader::new(from);
        loop {
            let mut line = String::new();
            match from.read_line(&mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            }
        }
    });
    rx
}

#[test]
fn a_peer_under_an_unknown_ca_is_refused() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    pki(dir);
    let mut pgm = b"P5\n16 16\n255\n".to_vec();
    pgm.extend((0..256u32).map(|i| i as u8));
    std::fs::write(dir.join("still.pgm"), pgm).unwrap();
    let serve = Serve::start(dir, "127.0.0.1:0", "site-b.toml", &[]);
    let o = med8k(
        dir,
        &[
            "send",
            "--to",
            &serve.addr,
            "--config",
            "site-a-stranger.toml",
            "--source",
            "still.pgm",
        ],
    );
    assert_one_line_error(&o, &["connecting to", B, "connection failed"]);
}

#[test]
fn a_source_under_the_development_gate_needs_the_operator_to_ask() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    pki(dir);
    let mut pgm = b"P5\n16 16\n255\n".to_vec();
    pgm.extend((0..256u32).map(|i| i as u8));
    std::fs::write(dir.join("still.pgm"), pgm).unwrap();
    let args = [
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--config",
        "site-b.toml",
        "--source",
        "still.pgm",
    ];
    let o = med8k(dir, &args);
    assert_one_line_error(&o, &["development gate", "--development-gate"]);
    // Asked for: it serves, and says so loudly.
    let serve = Serve::start(
        dir,
        "127.0.0.1:0",
        "site-b.toml",
        &["--source", "still.pgm", "--development-gate"],
    );
    drop(serve);
}

#[test]
fn a_bad_site_config_names_file_and_line() {
    let tmp = TempDir::new().unwrap();
    let dir = tmp.path();
    pki(dir);
    let text = std::fs::read_to_string(dir.join("site-b.toml")).unwrap();
    std::fs::write(dir.join("bad.toml"), text.replace("allowed", "permitted")).unwrap();
    let o = med8k(
        dir,
        &["serve", "--listen", "127.0.0.1:0", "--config", "bad.toml"],
    );
    assert_one_line_error(&o, &["bad.toml:9:", "permitted"]);

    let missing = text.replace("b.pem", "missing.pem");
    std::fs::write(dir.join("missing.toml"), missing).unwrap();
    let o = med8k(
        dir,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "missing.toml",
        ],
    );
    assert_one_line_error(&o, &["missing.toml", "missing.pem"]);
}

#[test]
fn bench_link_on_loopback_reports_the_ratio() {
    let tmp = TempDir::new().unwrap();
    let o = med8k(
        tmp.path(),
        &["bench", "link", "--seconds", "2", "--json", "link.json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for w in ["ceiling", "goodput", "ratio to ceiling", "p99"] {
        assert!(out.contains(w), "`{w}` not in {out}");
    }
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("link.json")).unwrap()).unwrap();
    assert_eq!(json["path"], "loopback");
    assert!(json["ceiling_mbps"].as_f64().unwrap() > 0.0, "{json}");
    assert!(json["frames_received"].as_u64().unwrap() > 0, "{json}");
}

#[test]
fn bench_link_through_the_relay() {
    let tmp = TempDir::new().unwrap();
    let args = [
        "bench",
        "link",
        "--loss",
        "0.01",
        "--delay",
        "20",
        "--rate",
        "200",
        "--seconds",
        "3",
    ];
    let o = med8k(tmp.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("path: relay"), "{out}");
    assert!(out.contains("ratio to relay cap"), "{out}");
}

#[test]
fn bench_link_refuses_bad_arguments() {
    let tmp = TempDir::new().unwrap();
    let o = med8k(tmp.path(), &["bench", "link", "--loss", "150"]);
    assert_one_line_error(&o, &["loss"]);
    let o = med8k(tmp.path(), &["bench", "link", "--seconds", "0"]);
    assert_one_line_error(&o, &["--seconds"]);
    let o = med8k(tmp.path(), &["bench", "link", "--max-udp-payload", "9000"]);
    assert_one_line_error(&o, &["--max-udp-payload 9000"]);
    let o = med8k(tmp.path(), &["bench", "link", "--rate", "fast"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}

#[test]
fn the_example_site_configs_parse() {
    let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs/sites");
    for (file, id, peer) in [("site-a.toml", A, B), ("site-b.toml", B, A)] {
        let c = med8k_link::site::SiteConfig::load(&configs.join(file)).unwrap();
        assert_eq!(c.id, id);
        assert_eq!(c.allowed, vec![peer.to_owned()]);
        assert!(c.cert.starts_with(&configs), "{:?}", c.cert);
    }
}
