//! The real `med8k` binary, run in temporary directories.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{assert_one_line_error, med8k, stderr};
use tempfile::TempDir;

/// A small sample set, shared by the tests of one process.
fn small_samples() -> &'static Path {
    static DIR: std::sync::OnceLock<(TempDir, PathBuf)> = std::sync::OnceLock::new();
    &DIR.get_or_init(|| {
        let tmp = tempfile::tempdir().unwrap();
        let out = common::generate_samples(tmp.path(), "256x144", 8);
        (tmp, out)
    })
    .1
}

#[test]
fn demo_runs_from_nothing_and_writes_its_report() {
    let tmp = tempfile::tempdir().unwrap();
    let args = [
        "demo",
        "--size",
        "256x144",
        "--frames",
        "12",
        "--report",
        "report.json",
    ];
    let o = med8k(tmp.path(), &args);
    assert!(o.status.success(), "{}", stderr(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains("v210-pack") && stdout.contains("cube he_region"),
        "{stdout}"
    );

    // Samples went to the cache, where the next run finds them.
    let manifest = tmp.path().join("cache/med8k/samples/manifest.json");
    let written = std::fs::metadata(&manifest).unwrap().modified().unwrap();
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("report.json")).unwrap()).unwrap();
    assert_eq!(report["pipeline"]["source"]["frames_out"], 12);
    assert_eq!(report["pipeline"]["source"]["dropped"], 0);
    assert_eq!(report["pipeline"]["ending"], "end_of_stream");
    assert_eq!(report["cubes"].as_array().unwrap().len(), 3);
    // 12 frames: the codec codes and checks every one (one in 12 / 10).
    let encode = &report["pipeline"]["stages"][0];
    assert_eq!(encode["name"], "encode");
    assert_eq!(encode["figures"]["verified_frames"], 12.0, "{encode}");
    assert!(
        report["pipeline"]["stages"][0]["process"]["p99_us"]
            .as_u64()
            .unwrap()
            > 0
    );
    // The detector saw every frame: analysed or skipped while busy.
    let detect = &report["pipeline"]["stages"][1];
    assert_eq!(detect["name"], "detect");
    let f = &detect["figures"];
    assert_eq!(
        f["analysed"].as_f64().unwrap() + f["skipped"].as_f64().unwrap(),
        12.0,
        "{detect}"
    );
    assert!(f["analysed"].as_f64().unwrap() >= 1.0, "{detect}");
    // The consent round on the demo PKI's SoftHSM2 tokens.
    let consent = &report["consent"];
    assert_eq!(consent["doctor_permitted"], true, "{consent}");
    assert_eq!(consent["pharmacist_refused"], true, "{consent}");
    assert!(consent["audit_entries"].as_u64().unwrap() >= 3, "{consent}");
    assert!(
        stdout.contains("permit (consent") && stdout.contains("deny:"),
        "{stdout}"
    );
    // The remote pathologist's loop: the cut line came back signed and was stored.
    let desk = &report["desk"];
    assert_eq!(desk["stored"], true, "{desk}");
    assert!(
        desk["outcome"].as_str().unwrap().contains("(verified)"),
        "{desk}"
    );

    let again = med8k(tmp.path(), &args);
    assert!(again.status.success(), "{}", stderr(&again));
    assert_eq!(
        std::fs::metadata(&manifest).unwrap().modified().unwrap(),
        written
    );
}

#[test]
fn run_takes_a_toml_pipeline_from_clip_to_file() {
    let samples = small_samples();
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("out.v210");
    std::fs::write(
        tmp.path().join("p.toml"),
        format!(
            "[source]\nsamples = \"{}\"\n\n[[stage]]\nkind = \"encode\"\nbackend = \"cpu\"\nout = \"clip.m8ks\"\nverify = true\n\n[[stage]]\nkind = \"v210-pack\"\n\n[sink]\npipeline = \"filesink location={}\"\n",
            samples.display(),
            out.display()
        ),
    )
    .unwrap();
    let o = med8k(
        tmp.path(),
        &["run", "--config", "p.toml", "--json", "r.json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // 8 frames of 256x144 v210: rows of 6 groups of 128 bytes.
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 8 * 144 * 768);
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["stages"][2]["name"], "output");
    assert_eq!(report["stages"][2]["frames_in"], 8);
    // The codec stage coded, checked and wrote every frame.
    let encode = &report["stages"][0];
    assert_eq!(encode["name"], "encode");
    assert_eq!(encode["figures"]["verified_frames"], 8.0);
    assert!(
        encode["figures"]["ratio"].as_f64().unwrap() > 1.5,
        "{encode}"
    );
    let o = med8k(
        tmp.path(),
        &["codec", "decode", "--in", "clip.m8ks", "--out", "clip.raw"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // 8 frames of 256x144 10-bit 4:2:2 in 16-bit samples.
    assert_eq!(
        std::fs::metadata(tmp.path().join("clip.raw"))
            .unwrap()
            .len(),
        8 * 256 * 144 * 2 * 2
    );
}

#[test]
fn bad_configs_and_pipelines_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cases: [(&str, &[&str]); 5] = [
        (
            "[source]\nclip = \"x.mkv\"\nspeed = 2\n",
            &["bad.toml:3", "unknown field `speed`"],
        ),
        (
            "[source]\npipeline = \"videotestsrc ! nosuchelement\"\n",
            &["does not parse", "nosuchelement"],
        ),
        (
            "[source]\nclip = \"missing.mkv\"\n",
            &["missing.mkv: no such file"],
        ),
        ("[source]\nclip = \"corrupt.mkv\"\n", &["corrupt.mkv"]),
        (
            "[source]\npipeline = \"videotestsrc num-buffers=2 ! video/x-raw,format=NV12\"\n",
            &["caps the engine cannot handle", "NV12"],
        ),
    ];
    std::fs::write(tmp.path().join("corrupt.mkv"), vec![0x42u8; 4096]).unwrap();
    for (toml, words) in cases {
        std::fs::write(tmp.path().join("bad.toml"), toml).unwrap();
        let o = med8k(tmp.path(), &["run", "--config", "bad.toml"]);
        assert_one_line_error(&o, words);
    }
    let o = med8k(tmp.path(), &["run", "--config", "nowhere.toml"]);
    assert_one_line_error(&o, &["nowhere.toml"]);
}

#[test]
fn a_truncated_cube_stops_the_demo_with_its_name_and_keeps_the_samples() {
    let src = small_samples();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("s");
    std::fs::create_dir_all(dir.join("cubes")).unwrap();
    for entry in walk(src) {
        let rel = entry.strip_prefix(src).unwrap();
        std::fs::create_dir_all(dir.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(&entry, dir.join(rel)).unwrap();
    }
    let raw = dir.join("cubes/fundus.raw");
    let len = std::fs::metadata(&raw).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&raw)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    let o = med8k(
        tmp.path(),
        &["demo", "--out", dir.to_str().unwrap(), "--report", "r.json"],
    );
    assert_one_line_error(&o, &["fundus.raw", "truncated"]);
    // Nothing was deleted or regenerated.
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), len / 2);
    assert!(dir.join("manifest.json").exists());
}

#[test]
fn bad_arguments_are_usage_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let o = med8k(tmp.path(), &["samples", "generate", "--size", "33x33"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("33x33"));
}

#[test]
fn probe_reports_gstreamer_as_json() {
    let tmp = tempfile::tempdir().unwrap();
    let o = med8k(tmp.path(), &["probe", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["gstreamer"].as_str().unwrap().starts_with("GStreamer 1."));
    let plugins = v["plugins"].as_array().unwrap();
    let app = plugins.iter().find(|p| p["name"] == "app").unwrap();
    assert!(
        app["version"].is_string(),
        "appsink/appsrc plugin missing: {v}"
    );
    assert!(v["gpu_adapters"].is_array() && v["pkcs11_modules"].is_array());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p))
        } else {
            out.push(p)
        }
    }
    out
}

#[test]
fn ctrl_c_stops_a_live_run_cleanly_with_exit_130() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("live.toml"),
        "[source]\npipeline = \"videotestsrc is-live=true ! video/x-raw,format=I420,width=64,height=64,framerate=30/1\"\n",
    )
    .unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_med8k"))
        .args(["run", "--config", "live.toml", "--json", "r.json"])
        .current_dir(tmp.path())
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until frames flow, then send SIGINT as a terminal's Ctrl-C would.
    std::thread::sleep(std::time::Duration::from_millis(1500));
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tmp.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["ending"], "shutdown");
    assert!(
        report["source"]["frames_out"].as_u64().unwrap() > 0,
        "{report}"
    );
}

#[test]
fn codec_round_trips_a_16_bit_pgm_and_rejects_a_corrupt_stream() {
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (37u32, 21u32);
    let mut pgm = format!("P5\n{w} {h}\n65535\n").into_bytes();
    for i in 0..w * h {
        let v = (i.wrapping_mul(2654435761) >> 7) as u16 ^ (i as u16).wrapping_mul(31);
        pgm.extend_from_slice(&v.to_be_bytes());
    }
    std::fs::write(dir.path().join("in.pgm"), &pgm).unwrap();
    let out = med8k(
        dir.path(),
        &[
            "codec",
            "encode",
            "--in",
            "in.pgm",
            "--out",
            "x.m8k",
            "--lossless",
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = med8k(
        dir.path(),
        &["codec", "decode", "--in", "x.m8k", "--out", "back.pgm"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read(dir.path().join("back.pgm")).unwrap(), pgm);

    let mut stream = std::fs::read(dir.path().join("x.m8k")).unwrap();
    let n = stream.len();
    stream[n - 3] ^= 0x10;
    std::fs::write(dir.path().join("bad.m8k"), &stream).unwrap();
    let out = med8k(
        dir.path(),
        &["codec", "decode", "--in", "bad.m8k", "--out", "bad.pgm"],
    );
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("slice") && err.contains("corrupt"), "{err}");
    assert!(!dir.path().join("bad.pgm").exists());
}

/// A PPM is coded strip by strip (only a few slices in memory) into the
/// bytes the whole picture codes to: FFmpeg draws the same test picture as
/// PPM and PNG (the PNG goes through the whole-picture path); both give one
/// bitstream, which decodes to FFmpeg's PPM exactly. A truncated PPM is a
/// one-line error and leaves no output file.
#[test]
fn codec_codes_a_ppm_in_strips_to_the_whole_pictures_bytes() {
    let dir = tempfile::tempdir().unwrap();
    for name in ["pic.ppm", "pic.png"] {
        let o = Command::new("ffmpeg")
            .current_dir(dir.path())
            .args(["-v", "error", "-f", "lavfi", "-i", "testsrc2=size=700x450"])
            .args(["-frames:v", "1", "-pix_fmt", "rgb24", name])
            .output()
            .expect("ffmpeg (scripts/setup-debian.sh installs it)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let code = |input: &str, out: &str| {
        let o = med8k(
            dir.path(),
            &["codec", "encode", "--in", input, "--out", out],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    let said = code("pic.ppm", "strips.m8k");
    assert!(said.contains("coded in 8 strips"), "{said}");
    code("pic.png", "whole.m8k");
    let strips = std::fs::read(dir.path().join("strips.m8k")).unwrap();
    assert!(strips == std::fs::read(dir.path().join("whole.m8k")).unwrap());
    let o = med8k(
        dir.path(),
        &["codec", "decode", "--in", "strips.m8k", "--out", "back.ppm"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        std::fs::read(dir.path().join("back.ppm")).unwrap()
            == std::fs::read(dir.path().join("pic.ppm")).unwrap()
    );

    let ppm = std::fs::read(dir.path().join("pic.ppm")).unwrap();
    std::fs::write(dir.path().join("cut.ppm"), &ppm[..ppm.len() / 2]).unwrap();
    let o = med8k(
        dir.path(),
        &["codec", "encode", "--in", "cut.ppm", "--out", "cut.m8k"],
    );
    assert_one_line_error(&o, &["cut.ppm", "truncated"]);
    assert!(!dir.path().join("cut.m8k").exists());
}
