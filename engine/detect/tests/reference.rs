//! The frame models in `models/` in tract against onnxruntime on the same
//! ONNX bytes and input (a runtime this project did not make), and the
//! contract-2 image-quality alarm. Without `python3 -c "import onnxruntime"`
//! the comparison prints SKIPPED; `MED8K_REQUIRE_ORT=1` makes that a failure.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::path::{Path, PathBuf};
use std::process::Command;

use med8k_detect::contract::sha256_hex;
use med8k_detect::model::Model;
use serde_json::Value;

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

const PATCH: &str = "endoscope-patch/med8k-endoscope-patch.onnx";
const CAE: &str = "endoscope-cae/med8k-endoscope-cae.onnx";
const GAUSS: &str = "endoscope/med8k-endoscope-gauss.onnx";

/// A frame-like input `[3, 144, 256]` in the tensor's ranges: a smooth reddish
/// field with texture, a dark disc and a bright bar.
fn input() -> Vec<f32> {
    let (w, h) = (256usize, 144usize);
    let mut t = vec![0f32; 3 * w * h];
    for y in 0..h {
        for x in 0..w {
            let i = y * w + x;
            let tex = ((x * 7919 + y * 104_729) % 61) as f32 / 61.0;
            let (dx, dy) = (x as f32 - 90.0, y as f32 - 70.0);
            let dark = if dx * dx + dy * dy < 300.0 { 0.4 } else { 1.0 };
            let bar = if (170..200).contains(&x) && (30..40).contains(&y) {
                0.25
            } else {
                0.0
            };
            t[i] = ((0.35 + 0.1 * (x as f32 / 40.0).sin() + 0.03 * tex) * dark + bar).min(0.9);
            t[w * h + i] = 0.47 + 0.01 * tex;
            t[2 * w * h + i] = 0.58 - 0.02 * (y as f32 / 30.0).cos();
        }
    }
    t
}

/// onnxruntime's outputs on `input`, by name; `None` (after a loud SKIPPED)
/// when python3 cannot import onnxruntime.
fn onnxruntime(model: &Path, input: &[f32], names: &[&str]) -> Option<Vec<Vec<f32>>> {
    let has_ort = Command::new("python3")
        .args(["-c", "import onnxruntime"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_ort {
        eprintln!(
            "SKIPPED: python3 cannot import onnxruntime (pip install -r models/requirements.txt)"
        );
        assert!(
            std::env::var_os("MED8K_REQUIRE_ORT").is_none(),
            "MED8K_REQUIRE_ORT is set but onnxruntime is missing"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("input.f32");
    let bytes: Vec<u8> = input.iter().flat_map(|v| v.to_le_bytes()).collect();
    std::fs::write(&raw, bytes).unwrap();
    let script = r#"
import json, sys
import numpy as np, onnxruntime as ort
o = ort.SessionOptions(); o.intra_op_num_threads = 1
s = ort.InferenceSession(sys.argv[1], o, providers=["CPUExecutionProvider"])
x = np.fromfile(sys.argv[2], dtype="<f4").reshape(1, 3, 144, 256)
r = s.run(sys.argv[3].split(","), {s.get_inputs()[0].name: x})
print(json.dumps([v.ravel().astype(float).tolist() for v in r]))
"#;
    let o = Command::new("python3")
        .args(["-c", script])
        .arg(model)
        .arg(&raw)
        .arg(names.join(","))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: Vec<Vec<f64>> = serde_json::from_slice(&o.stdout).unwrap();
    Some(
        v.into_iter()
            .map(|o| o.into_iter().map(|x| x as f32).collect())
            .collect(),
    )
}

fn close(a: f32, b: f32, what: &str) {
    let tol = 1e-3 * a.abs().max(b.abs()).max(1.0);
    assert!((a - b).abs() <= tol, "{what}: tract {a} onnxruntime {b}");
}

#[test]
fn tract_matches_onnxruntime_on_the_reference_models() {
    let x = input();
    for (rel, has_quality) in [(PATCH, true), (CAE, false), (GAUSS, false)] {
        let path = models_dir().join(rel);
        let model = Model::load(&path).unwrap();
        let c = model.contract();
        assert_eq!(c.outputs.quality.is_some(), has_quality, "{rel}");
        // The sidecar's mean/std are applied by the engine before the graph.
        let mut normalised = x.clone();
        for (k, plane) in normalised.chunks_exact_mut(144 * 256).enumerate() {
            let m = c.input.mean.as_ref().map_or(0.0, |m| m[k]);
            let s = c.input.std.as_ref().map_or(1.0, |s| s[k]);
            plane.iter_mut().for_each(|v| *v = (*v - m) / s);
        }
        let d = model
            .runner()
            .unwrap()
            .run_tensor(0, x.clone(), (256, 144))
            .unwrap();
        assert!(d.score.is_finite());
        assert_eq!(d.quality.is_some(), has_quality);
        let mut names = vec!["score", "map"];
        if has_quality {
            names.push("quality");
        }
        let Some(ort) = onnxruntime(&path, &normalised, &names) else {
            return;
        };
        close(d.score, ort[0][0], &format!("{rel} score"));
        let map = d.map.as_ref().unwrap();
        assert_eq!(map.len(), ort[1].len(), "{rel} map size");
        for (i, (a, b)) in map.iter().zip(&ort[1]).enumerate() {
            close(*a, *b, &format!("{rel} map[{i}]"));
        }
        if let Some(q) = d.quality {
            close(q, ort[2][0], &format!("{rel} quality"));
        }
    }
}

/// A runner on two threads gives the detection one thread gives, and tract's
/// plans of the reference models have no pooling operator left (the box means
/// are depthwise Convs: tract ran AveragePool several times slower); the
/// profile lists every node of the plan once, under its operator.
#[test]
fn two_threads_give_the_same_detection_and_no_pooling_is_left() {
    let x = input();
    for rel in [PATCH, CAE, GAUSS] {
        let model = Model::load(&models_dir().join(rel)).unwrap();
        let mut one = model.runner().unwrap();
        let mut two = model.runner().unwrap();
        two.set_threads(2);
        let a = one.run_tensor(0, x.clone(), (256, 144)).unwrap();
        let b = two.run_tensor(0, x.clone(), (256, 144)).unwrap();
        close(a.score, b.score, &format!("{rel} score, 1 and 2 threads"));
        for (i, (u, v)) in a.map.unwrap().iter().zip(&b.map.unwrap()).enumerate() {
            close(*u, *v, &format!("{rel} map[{i}], 1 and 2 threads"));
        }
        assert_eq!(a.quality.is_some(), b.quality.is_some());
        if let (Some(u), Some(v)) = (a.quality, b.quality) {
            close(u, v, &format!("{rel} quality, 1 and 2 threads"));
        }
        let p = two.profile(&x, 1).unwrap();
        assert!(p.ms_per_run > 0.0 && !p.nodes.is_empty(), "{rel}");
        assert!(
            p.ops.iter().all(|o| !o.op.contains("Pool")),
            "{rel}: {:?}",
            p.ops
        );
        assert_eq!(
            p.ops.iter().map(|o| o.nodes).sum::<usize>(),
            p.nodes.len(),
            "{rel}"
        );
    }
}

/// A copy of the patch model whose sidecar `edit` changes (SHA-256 kept).
fn patch_copy(dir: &Path, edit: impl FnOnce(&mut Value)) -> PathBuf {
    let src = models_dir().join(PATCH);
    let bytes = std::fs::read(&src).unwrap();
    let model = dir.join("m.onnx");
    std::fs::write(&model, &bytes).unwrap();
    let mut sidecar: Value =
        serde_json::from_slice(&std::fs::read(src.with_extension("json")).unwrap()).unwrap();
    assert_eq!(sidecar["sha256"], Value::String(sha256_hex(&bytes)));
    edit(&mut sidecar);
    std::fs::write(dir.join("m.json"), sidecar.to_string()).unwrap();
    model
}

#[test]
fn the_quality_alarm_follows_its_own_threshold() {
    let dir = tempfile::tempdir().unwrap();
    let x = input();
    let model = Model::load(&patch_copy(dir.path(), |_| {})).unwrap();
    let d = model
        .runner()
        .unwrap()
        .run_tensor(0, x.clone(), (256, 144))
        .unwrap();
    let q = d.quality.unwrap();
    for (threshold, alarm) in [(q - 0.01, true), (q + 0.01, false)] {
        let dir = tempfile::tempdir().unwrap();
        let m = patch_copy(dir.path(), |s| s["threshold"]["quality"] = threshold.into());
        let d2 = Model::load(&m)
            .unwrap()
            .runner()
            .unwrap()
            .run_tensor(0, x.clone(), (256, 144))
            .unwrap();
        assert_eq!(d2.quality, Some(q));
        assert_eq!(d2.quality_alarm, alarm, "threshold {threshold}, value {q}");
        // The tissue alarm does not move with it.
        assert_eq!(d2.anomalous, d.anomalous);
        assert_eq!(d2.alarm(), d.anomalous || alarm);
    }
}

#[test]
fn a_quality_output_needs_contract_2_and_contract_1_still_loads() {
    let dir = tempfile::tempdir().unwrap();
    let m = patch_copy(dir.path(), |s| s["contract"] = 1.into());
    let e = Model::load(&m).unwrap_err().to_string();
    assert!(e.contains("needs contract 2"), "{e}");
    // The same graph as a contract-1 model: the quality output left out.
    let m = patch_copy(dir.path(), |s| {
        s["contract"] = 1.into();
        s["outputs"].as_object_mut().unwrap().remove("quality");
        s["threshold"].as_object_mut().unwrap().remove("quality");
    });
    let d = Model::load(&m)
        .unwrap()
        .runner()
        .unwrap()
        .run_tensor(0, input(), (256, 144))
        .unwrap();
    assert_eq!((d.quality, d.quality_alarm), (None, false));
    // A version from the future is refused with the range this engine reads.
    let m = patch_copy(dir.path(), |s| s["contract"] = 3.into());
    let e = Model::load(&m).unwrap_err().to_string();
    assert!(e.contains("version 3") && e.contains("1 to 2"), "{e}");
}
