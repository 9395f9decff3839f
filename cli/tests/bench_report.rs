//! `med8k bench --quick`: the real binary runs every scenario on small
//! generated samples and writes a report whose structure is checked here
//! (not its speed); `--compare` against itself marks no change; bad input
//! is a one-line error.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use common::{assert_one_line_error, med8k, stderr, stdout};
use serde_json::Value;

fn figure<'a>(scenario: &'a Value, name: &str) -> &'a Value {
    scenario["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == name)
        .unwrap_or_else(|| panic!("no figure {name:?} in {}", scenario["name"]))
}

#[test]
fn quick_bench_writes_a_whole_report_and_compares_with_itself() {
    let dir = tempfile::tempdir().unwrap();
    let o = med8k(
        dir.path(),
        &[
            "bench",
            "--quick",
            "--json",
            "r.json",
            "--html",
            "r.html",
            "--no-peers",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    for s in ["== surgeon ==", "== remote-monitor ==", "== pathology =="] {
        assert!(table.contains(s), "{s} missing from\n{table}");
    }

    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
    assert_eq!(report["version"], 1);
    assert_eq!(report["quick"], true);
    assert!(report["stopped"].is_null(), "a whole run");
    let machine = &report["machine"];
    assert!(machine["cores"].as_u64().unwrap() >= 1);
    assert!(machine["memory_gib"].as_f64().unwrap() > 0.0);
    assert!(
        machine["gstreamer"]
            .as_str()
            .unwrap()
            .starts_with("GStreamer")
    );
    let scenarios = report["scenarios"].as_array().unwrap();
    let names: Vec<&str> = scenarios
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["surgeon", "remote-monitor", "pathology", "detection"]
    );

    // Surgeon: every camera frame that reached the glass carried a readable
    // stamp, latencies are positive and ordered, and the series matches.
    let surgeon = &scenarios[0];
    let at_glass = figure(surgeon, "frames at the glass")["value"]
        .as_f64()
        .unwrap();
    assert!(at_glass >= 1.0, "no frame reached the glass");
    assert_eq!(
        figure(surgeon, "stamps unreadable at the glass")["value"],
        0.0
    );
    let p50 = figure(surgeon, "capture→glass p50")["value"]
        .as_f64()
        .unwrap();
    let p99 = figure(surgeon, "capture→glass p99")["value"]
        .as_f64()
        .unwrap();
    let max = figure(surgeon, "capture→glass max")["value"]
        .as_f64()
        .unwrap();
    assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{p50} {p99} {max}");
    let series = surgeon["series"].as_array().unwrap();
    assert_eq!(series.len() as f64, at_glass);
    let stages: Vec<&str> = surgeon["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        stages.contains(&"detect") && stages.contains(&"output"),
        "{stages:?}"
    );
    assert!(
        figure(surgeon, "CPU time per frame")["value"]
            .as_f64()
            .unwrap()
            > 0.0
    );

    // Remote monitor: the in-hospital class is lossy, with a PSNR and SSIM.
    let remote = &scenarios[1];
    let psnr = figure(remote, "in-hospital 5 Gbit/s: PSNR")["value"]
        .as_f64()
        .unwrap();
    assert!(psnr > 20.0, "PSNR {psnr}");
    let ssim = figure(remote, "in-hospital 5 Gbit/s: SSIM")["value"]
        .as_f64()
        .unwrap();
    assert!(0.0 < ssim && ssim <= 1.0, "SSIM {ssim}");
    // The thin links' AV1, judged by FFmpeg: each class has a PSNR and a rate,
    // and a narrower class does not get a better picture than a wider one.
    let av1: Vec<f64> = ["150", "40", "20"]
        .iter()
        .map(|c| {
            figure(remote, &format!("{c} Mbit/s AV1: PSNR"))["value"]
                .as_f64()
                .unwrap()
        })
        .collect();
    assert!(av1.iter().all(|p| *p > 20.0 && p.is_finite()), "{av1:?}");
    assert!(av1[0] >= av1[2], "{av1:?}");

    // Over the link: every class's frames crossed the QUIC link through the
    // relay and were decoded at the far end; the lossless run came back
    // bit-exact, the lossy ones have a PSNR; the wire carried at least the
    // coded bytes; latency since capture grows from coded to delivered.
    let value = |name: &str| figure(remote, name)["value"].as_f64().unwrap();
    for class in [
        "in-hospital 5 Gbit/s lossless",
        "in-hospital 5 Gbit/s",
        "inter-hospital 150 Mbit/s",
        "fall-back 40 Mbit/s",
        "fall-back 20 Mbit/s",
    ] {
        let c = format!("{class} over the link");
        let delivered = value(&format!("{c}: frames delivered"));
        assert!(delivered >= 1.0, "{c}: nothing delivered");
        assert!(value(&format!("{c}: frames decoded")) >= 1.0, "{c}");
        assert!(value(&format!("{c}: delivered rate")) > 0.0, "{c}");
        // Every camera frame is accounted for: sent, dropped before the
        // link or still in the encoder; every frame sent delivered or lost.
        let frames = |f: &str| value(&format!("{c}: frames {f}"));
        assert_eq!(
            value(&format!("{c}: camera frames")),
            frames("sent")
                + frames("dropped before the link")
                + frames("still in the encoder at the end"),
            "{c}"
        );
        assert_eq!(frames("sent"), delivered + frames("lost"), "{c}");
        assert!(frames("late") <= delivered, "{c}");
        let coded = value(&format!("{c}: coded bytes"));
        assert!(coded > 0.0 && value(&format!("{c}: bytes on the wire")) >= coded);
        let at = |stage: &str, q: &str| value(&format!("{c}: capture→{stage} {q}"));
        for stage in ["coded", "delivered"] {
            let (p50, p99, max) = (at(stage, "p50"), at(stage, "p99"), at(stage, "max"));
            assert!(0.0 < p50 && p50 <= p99 && p99 <= max, "{c} {stage}");
        }
        assert!(at("delivered", "max") >= at("coded", "p50"), "{c}");
        if class.ends_with("lossless") {
            assert_eq!(
                value(&format!("{c}: decoded frames bit-exact")),
                value(&format!("{c}: frames decoded")),
                "{c}"
            );
            assert_eq!(value(&format!("{c}: decoded frames not bit-exact")), 0.0);
        } else {
            let psnr = value(&format!("{c}: PSNR"));
            assert!(psnr > 25.0 && psnr.is_finite(), "{c}: PSNR {psnr}");
            // Colour fidelity (CIE ΔE2000) of the lossy paths.
            let mean = value(&format!("{c}: ΔE2000 mean"));
            let p95 = value(&format!("{c}: ΔE2000 p95"));
            assert!(
                0.0 < mean && mean <= p95 && p95 < 20.0,
                "{c}: ΔE {mean} {p95}"
            );
        }
    }
    // Plain quinn's ceiling on each class's path, and the live link beside
    // it, with the command that repeats it; a cap bounds both.
    let notes = remote["notes"].as_array().unwrap();
    for (class, cap) in [
        ("in-hospital 5 Gbit/s", 5000.0),
        ("inter-hospital 150 Mbit/s", 150.0),
        ("fall-back 40 Mbit/s", 40.0),
        ("fall-back 20 Mbit/s", 20.0),
    ] {
        let c = format!("{class} link");
        let ceiling = value(&format!("{c}: plain quinn ceiling"));
        let live = value(&format!("{c}: med8k live goodput"));
        assert!(
            0.0 < ceiling && ceiling <= cap * 1.05,
            "{c}: ceiling {ceiling}"
        );
        assert!(0.0 < live && live <= cap * 1.05, "{c}: live {live}");
        let ratio = value(&format!("{c}: live over ceiling"));
        assert!((ratio - live / ceiling).abs() < 1e-6, "{c}: {ratio}");
        assert!(
            notes
                .iter()
                .any(|n| n.as_str().unwrap().starts_with(&format!(
                    "peer: plain quinn, {class}: med8k bench link --rate"
                ))),
            "{c}: no command in {notes:?}"
        );
    }
    // The wavelet classes decode as frames arrive: a decoded stage too.
    let stages: Vec<&str> = remote["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    for st in [
        "5G lossless decoded",
        "5G delivered",
        "150M delivered",
        "20M coded",
    ] {
        assert!(stages.contains(&st), "{st} missing from {stages:?}");
    }

    // Pathology: every cube came back bit-exact, through the codec alone and
    // across the link; stored into the PACS and read back bit-exact (or the
    // report says why there was no PACS); the first screen comes before the
    // whole image.
    let pathology = &scenarios[2];
    assert_eq!(figure(pathology, "cubes not bit-exact")["value"], 0.0);
    let value = |name: &str| figure(pathology, name)["value"].as_f64().unwrap();
    assert!(value("cubes bit-exact after the link") >= 1.0);
    assert_eq!(value("cubes not bit-exact after the link"), 0.0);
    let has = |name: &str| {
        pathology["figures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"] == name)
    };
    if has("cubes bit-exact in the PACS") {
        assert_eq!(
            value("cubes bit-exact in the PACS"),
            value("cubes bit-exact after the link")
        );
        assert_eq!(value("cubes not bit-exact in the PACS"), 0.0);
    } else {
        let notes = pathology["notes"].to_string();
        assert!(
            notes.contains("No PACS"),
            "neither PACS figures nor why: {notes}"
        );
    }
    let first = value("pathologist's wait for the first screen (mean)");
    let whole = value("pathologist's wait for the whole image (mean)");
    assert!(0.0 < first && first <= whole, "{first} {whole}");
    assert!(
        figure(pathology, "bit-exact cubes")["value"]
            .as_f64()
            .unwrap()
            >= 1.0
    );

    // Detection: AUROC is a probability, on the clip and per anomaly kind;
    // false alarms per minute over the clip's normal frames and over normal
    // generator video.
    let detection = &scenarios[3];
    let auroc = figure(detection, "image AUROC")["value"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&auroc), "{auroc}");
    let kinds: Vec<f64> = detection["figures"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["name"].as_str().unwrap().starts_with("image AUROC, "))
        .map(|f| f["value"].as_f64().unwrap())
        .collect();
    assert!(kinds.len() >= 2, "no AUROC per kind");
    assert!(kinds.iter().all(|a| (0.0..=1.0).contains(a)), "{kinds:?}");
    figure(detection, "image AUROC, generator lesions");
    assert!(
        figure(detection, "normal frames in the clip")["value"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    for name in [
        "false alarms per minute (clip's normal frames)",
        "false alarm episodes per minute (clip's normal frames)",
    ] {
        let v = figure(detection, name)["value"].as_f64().unwrap();
        assert!(v >= 0.0 && v.is_finite(), "{name}: {v}");
    }
    assert!(
        detection["figures"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["name"]
                .as_str()
                .unwrap()
                .starts_with("false alarms per minute (normal video")),
        "no false alarms over normal video"
    );

    // The HTML page stands alone: inline SVG charts, nothing fetched.
    let page = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"));
    assert!(page.matches("<svg").count() >= 8, "too few charts");
    assert!(page.contains("capture → glass latency per frame"));
    assert!(page.contains("compression ratio against encode speed"));
    assert!(page.contains("detection AUROC"));
    assert!(page.contains("colour fidelity of the lossy paths"));
    for remote_ref in ["src=\"http", "href=\"http", "<script", "@import", "url("] {
        assert!(
            !page.contains(remote_ref),
            "the page refers out: {remote_ref}"
        );
    }

    // Compared with itself (surgeon only, fast): every figure is there, no
    // regression is invented for a figure that did not move.
    let o = med8k(
        dir.path(),
        &[
            "bench",
            "--quick",
            "--only",
            "pathology",
            "--no-peers",
            "--compare",
            "r.json",
            "--html",
            "c.html",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("against the older report"), "{out}");
    assert!(
        out.lines()
            .filter(|l| l.contains("cubes not bit-exact"))
            .all(|l| !l.contains("REGRESSION")),
        "{out}"
    );
    let page = std::fs::read_to_string(dir.path().join("c.html")).unwrap();
    assert!(page.contains("Against the older report"));
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old.json"), "{not json").unwrap();
    let o = med8k(dir.path(), &["bench", "--quick", "--compare", "old.json"]);
    assert_one_line_error(&o, &["old.json", "not a med8k bench report"]);
    let o = med8k(dir.path(), &["bench", "--quick", "--only", "juggling"]);
    assert_one_line_error(&o, &["unknown scenario", "juggling"]);
    let o = med8k(
        dir.path(),
        &["bench", "--samples", "nowhere", "--only", "surgeon"],
    );
    assert_one_line_error(&o, &["no recorded samples", "nowhere"]);
}

/// The report is written after each scenario, so a run stopped with Ctrl-C
/// (or killed) keeps the figures of the scenarios that ran; Ctrl-C stops
/// before the next scenario and says so in the report, exit code 130.
#[test]
fn a_stopped_bench_keeps_the_scenarios_that_ran() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::command(
        dir.path(),
        &[
            "bench",
            "--quick",
            "--no-peers",
            "--only",
            "surgeon,remote-monitor,pathology",
            "--json",
            "r.json",
            "--html",
            "r.html",
        ],
    )
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .spawn()
    .unwrap();
    let json = dir.path().join("r.json");
    let start = std::time::Instant::now();
    // The first scenario's report, then Ctrl-C.
    while !json.exists() {
        assert!(
            start.elapsed() < std::time::Duration::from_secs(300),
            "no report after the first scenario"
        );
        assert!(child.try_wait().unwrap().is_none(), "bench ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let partial: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(partial["scenarios"].as_array().unwrap().len(), 1);
    assert_eq!(partial["scenarios"][0]["name"], "surgeon");
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let ran = report["scenarios"].as_array().unwrap().len();
    assert!((1..3).contains(&ran), "{report}");
    assert!(
        report["stopped"]
            .as_str()
            .unwrap()
            .starts_with("stopped (Ctrl-C) before"),
        "{report}"
    );
    assert!(stdout(&o).contains("PARTIAL REPORT"), "{}", stdout(&o));
    let page = std::fs::read_to_string(dir.path().join("r.html")).unwrap();
    assert!(page.contains("Partial report"));
}

#[test]
fn raw_v210_as_an_sdi_card_delivers_it_reaches_the_glass() {
    // FFmpeg, not med8k, packs the frames: its v210 encoder pads rows to
    // 128 bytes as SDI cards do.
    let dir = tempfile::tempdir().unwrap();
    let made = std::process::Command::new("ffmpeg")
        .current_dir(dir.path())
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=384x216:rate=60",
            "-frames:v",
            "6",
            "-pix_fmt",
            "yuv422p10le",
            "-c:v",
            "v210",
            "-f",
            "rawvideo",
            "sdi.v210",
        ])
        .status()
        .expect("ffmpeg (scripts/setup-debian.sh installs it)");
    assert!(made.success());
    let o = med8k(
        dir.path(),
        &[
            "bench",
            "--only",
            "surgeon",
            "--clip",
            "sdi.v210",
            "--format",
            "384x216:v210",
            "--camera-frames",
            "30",
            "--no-peers",
            "--json",
            "r.json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("r.json")).unwrap()).unwrap();
    let surgeon = &report["scenarios"][0];
    assert_eq!(surgeon["name"], "surgeon");
    assert!(surgeon["what"].as_str().unwrap().contains("v210"));
    assert!(
        figure(surgeon, "frames at the glass")["value"]
            .as_f64()
            .unwrap()
            >= 1.0
    );
    assert_eq!(
        figure(surgeon, "stamps unreadable at the glass")["value"],
        0.0
    );
    let stages: Vec<&str> = surgeon["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(stages.first(), Some(&"v210-unpack"), "{stages:?}");

    // A file shorter than one frame is a one-line error.
    std::fs::write(dir.path().join("short.v210"), [0u8; 100]).unwrap();
    let o = med8k(
        dir.path(),
        &[
            "bench",
            "--only",
            "surgeon",
            "--clip",
            "short.v210",
            "--format",
            "384x216:v210",
        ],
    );
    assert_one_line_error(&o, &["short.v210", "no whole 384x216 v210 frame"]);
}
