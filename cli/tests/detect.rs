//! `med8k detect` and `med8k eval detect` on the engine's tiny fixture models.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

mod common;

use std::path::{Path, PathBuf};

use common::{assert_one_line_error, med8k, stderr, stdout};
use med8k_detect::contract::sha256_hex;
use med8k_media::spectral::{Band, SpectralCube, envi};
use ndarray::Array3;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../engine/detect/tests/fixtures/detect")
        .join(name)
}

/// A 6x5 two-band cube (410, 450 nm) with one bright pixel at (5, 4).
fn write_cube(dir: &Path) -> PathBuf {
    let bands = [410.0, 450.0]
        .iter()
        .map(|&c| Band {
            center_nm: c,
            fwhm_nm: 40.0,
        })
        .collect();
    let mut data = Array3::<u16>::zeros((2, 5, 6));
    data[[0, 4, 5]] = 65535;
    data[[1, 4, 5]] = 65535;
    let cube = SpectralCube::new(bands, data).unwrap();
    envi::write(&cube, &dir.join("c"), "test").unwrap();
    dir.join("c.hdr")
}

/// The frame fixture copied into `dir` with `bytes` as the model and a
/// sidecar whose sha256 is `sha` (the bytes' own when `None`).
fn model_copy(dir: &Path, bytes: &[u8], sha: Option<&str>) -> PathBuf {
    let path = dir.join("m.onnx");
    std::fs::write(&path, bytes).unwrap();
    let mut sidecar: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture("tiny-frame.json")).unwrap()).unwrap();
    sidecar["sha256"] = sha.map_or_else(|| sha256_hex(bytes), str::to_owned).into();
    std::fs::write(dir.join("m.json"), sidecar.to_string()).unwrap();
    path
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn a_cube_model_finds_the_bright_pixel() {
    let tmp = tempfile::tempdir().unwrap();
    let cube = write_cube(tmp.path());
    let model = fixture("tiny-cube.onnx");
    let o = med8k(
        tmp.path(),
        &["detect", "--model", s(&model), "--in", s(&cube), "--json"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["model"], "tiny-cube");
    assert_eq!(v["analysed"], 4);
    assert_eq!(v["anomalous"], 1);
    let scores: Vec<f64> = v["detections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["score"].as_f64().unwrap())
        .collect();
    assert_eq!(scores, vec![0.0, 0.0, 0.0, 1.0]);
    let b = &v["detections"][3]["boxes"][0];
    assert_eq!((b["x"].as_u64(), b["y"].as_u64()), (Some(5), Some(4)));
    assert_eq!(
        (b["width"].as_u64(), b["height"].as_u64()),
        (Some(1), Some(1))
    );

    // Text output: a line per tile and a summary.
    let o = med8k(
        tmp.path(),
        &["detect", "--model", s(&model), "--in", s(&cube)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("score 1.0000 ANOMALOUS boxes 1x1+5+4"),
        "{out}"
    );
    assert!(out.contains("4 analysed, 1 anomalous"), "{out}");
}

#[test]
fn a_frame_model_refuses_a_cube_and_the_other_way_round() {
    let tmp = tempfile::tempdir().unwrap();
    let cube = write_cube(tmp.path());
    let o = med8k(
        tmp.path(),
        &[
            "detect",
            "--model",
            s(&fixture("tiny-frame.onnx")),
            "--in",
            s(&cube),
        ],
    );
    assert_one_line_error(&o, &["frame model", "c.hdr"]);
    let o = med8k(
        tmp.path(),
        &[
            "detect",
            "--model",
            s(&fixture("tiny-cube.onnx")),
            "--in",
            "clip.mkv",
        ],
    );
    assert_one_line_error(&o, &["cube model", "clip.mkv"]);
}

#[test]
fn bad_models_are_one_line_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let cube = write_cube(tmp.path());
    let good = std::fs::read(fixture("tiny-frame.onnx")).unwrap();
    let run = |model: &Path| {
        med8k(
            tmp.path(),
            &["detect", "--model", s(model), "--in", s(&cube)],
        )
    };

    let o = run(&tmp.path().join("absent.onnx"));
    assert_one_line_error(&o, &["absent.onnx", "No such file"]);

    let m = model_copy(tmp.path(), &good, Some(&"ab".repeat(32)));
    assert_one_line_error(&run(&m), &["SHA-256", &"ab".repeat(32)]);

    let m = model_copy(tmp.path(), b"not a model at all", None);
    assert_one_line_error(&run(&m), &["not a readable ONNX model"]);

    std::fs::remove_file(tmp.path().join("m.json")).unwrap();
    assert_one_line_error(&run(&m), &["no sidecar", "m.json"]);

    assert_one_line_error(&run(&fixture("unsupported-op.onnx")), &["Frobnicate"]);
}

#[test]
fn eval_scores_a_small_sample_set() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::generate_samples(tmp.path(), "128x72", 6);
    let report = tmp.path().join("eval.json");
    let o = med8k(
        tmp.path(),
        &[
            "eval",
            "detect",
            "--model",
            s(&fixture("tiny-frame.onnx")),
            "--samples",
            s(&out),
            "--json",
            s(&report),
            "--bench-iters",
            "3",
            "--threads",
            "2",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("AUROC image") && text.contains("tract's slowest nodes"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["items"], 6);
    assert_eq!(v["model"], "tiny-frame");
    let labels: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("labels.json")).unwrap()).unwrap();
    let anomalous = labels["frames"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["anomalous"] == true)
        .count();
    assert_eq!(v["anomalous_labels"], anomalous);
    // Defined exactly when both classes are present.
    assert_eq!(
        v["image_auroc"].is_f64(),
        anomalous > 0 && anomalous < 6,
        "{v}"
    );
    let ort = &v["onnxruntime"];
    assert!(ort["tract_frames_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(ort["threads"], 2);
    let nodes = ort["tract_nodes"].as_array().unwrap();
    assert!(
        !nodes.is_empty() && nodes.iter().all(|n| n["name"].is_string()),
        "{ort}"
    );
    // No thread count is no comparison.
    let o = med8k(
        tmp.path(),
        &[
            "eval",
            "detect",
            "--model",
            s(&fixture("tiny-frame.onnx")),
            "--samples",
            s(&out),
            "--threads",
            "0",
        ],
    );
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--threads"), "{}", stderr(&o));
    let status = ort["status"].as_str().unwrap();
    assert!(
        status == "done" || status.starts_with("skipped: "),
        "{status}"
    );
    if status == "done" {
        assert!(ort["tract_over_ort"].as_f64().unwrap() > 0.0);
    }
}

#[test]
fn eval_refuses_a_cube_model_for_other_bands() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::generate_samples(tmp.path(), "64x64", 2);
    let o = med8k(
        tmp.path(),
        &[
            "eval",
            "detect",
            "--model",
            s(&fixture("tiny-cube.onnx")),
            "--samples",
            s(&out),
        ],
    );
    // The fixture has 2 bands, the sample cubes 7.
    assert_one_line_error(&o, &["bands_nm", "410", "650"]);
}

#[test]
fn a_run_config_with_a_detect_stage_reports_its_figures() {
    let tmp = tempfile::tempdir().unwrap();
    let out = common::generate_samples(tmp.path(), "128x72", 6);
    let config = tmp.path().join("run.toml");
    std::fs::write(
        &config,
        format!(
            "[source]\nsamples = \"{}\"\n\n[[stage]]\nkind = \"detect\"\nmodel = \"{}\"\noverlay = \"ov\"\n",
            s(&out),
            s(&fixture("tiny-frame.onnx"))
        ),
    )
    .unwrap();
    let report = tmp.path().join("report.json");
    let o = med8k(
        tmp.path(),
        &["run", "--config", s(&config), "--json", s(&report)],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let stage = &v["stages"][0];
    assert_eq!(stage["name"], "detect");
    assert_eq!(stage["frames_out"], 6);
    let f = &stage["figures"];
    let (analysed, skipped) = (
        f["analysed"].as_f64().unwrap(),
        f["skipped"].as_f64().unwrap(),
    );
    // Latest frame wins: every frame is either analysed or skipped, the last always analysed.
    assert_eq!(analysed + skipped, 6.0);
    assert!(analysed >= 1.0);
    assert!(tmp.path().join("ov").is_dir());
}

fn patch_model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../models/endoscope-patch/med8k-endoscope-patch.onnx")
}

/// The held-out evaluation on one seed, two kinds (a held-out tissue kind and
/// a held-out quality kind) and a second of normal video, with the contract-2
/// reference model: every figure the report promises is there and in range.
#[test]
fn eval_heldout_reports_each_kind_and_false_alarms() {
    let tmp = tempfile::tempdir().unwrap();
    let report = tmp.path().join("heldout.json");
    let o = med8k(
        tmp.path(),
        &[
            "eval",
            "detect",
            "--model",
            s(&patch_model()),
            "--heldout",
            "--seeds",
            "5000..5001",
            "--kinds",
            "clip,smoke",
            "--real",
            "2",
            "--video-seconds",
            "1",
            "--json",
            s(&report),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("held-out kinds") && text.contains("false alarms"),
        "{text}"
    );
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(v["negatives_real"], 6, "2 crops of each of the 3 fixtures");
    let kinds = v["kinds"].as_array().unwrap();
    let names: Vec<&str> = kinds.iter().map(|k| k["kind"].as_str().unwrap()).collect();
    assert_eq!(names, ["clip", "smoke"]);
    for k in kinds {
        assert_eq!(k["held_out"], true, "{k}");
        for f in ["tissue_auroc", "quality_auroc", "either_auroc"] {
            let a = k[f].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&a), "{f} {a}");
        }
    }
    assert_eq!(kinds[1]["alarm"], "quality");
    let fa = &v["false_alarms"];
    assert!(fa["normal_frames"].as_u64().unwrap() > 0, "{fa}");
    assert!(fa["either_frames"].as_u64().unwrap() <= fa["normal_frames"].as_u64().unwrap());
}

#[test]
fn eval_heldout_refuses_a_cube_model_and_unknown_kinds() {
    let tmp = tempfile::tempdir().unwrap();
    let o = med8k(
        tmp.path(),
        &[
            "eval",
            "detect",
            "--model",
            s(&fixture("tiny-cube.onnx")),
            "--heldout",
        ],
    );
    assert_one_line_error(&o, &["--heldout", "frame-ycbcr"]);
    let o = med8k(
        tmp.path(),
        &[
            "eval",
            "detect",
            "--model",
            s(&patch_model()),
            "--heldout",
            "--kinds",
            "scalpel",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown anomaly kind `scalpel`"),
        "{}",
        stderr(&o)
    );
}
