//! Detection with tract on tiny fixture models (`tests/fixtures/detect`,
//! made by `make_fixtures.py` there): contract checks, results, bad models.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::path::{Path, PathBuf};

use med8k_detect::contract::sha256_hex;
use med8k_detect::model::{BoundingBox, Model, ModelError};
use med8k_media::frame::{PixelFormat, VideoFrame};
use med8k_media::spectral::{Band, SpectralCube};
use ndarray::Array3;
use serde_json::Value;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/detect")
        .join(name)
}

/// Copy fixture `stem` into `dir`, passing its sidecar through `edit`
/// (after which the sidecar's sha256 is recomputed unless `edit` set one),
/// and return the model path.
fn copy_with(
    dir: &Path,
    stem: &str,
    bytes: Option<&[u8]>,
    edit: impl FnOnce(&mut Value),
) -> PathBuf {
    let model = dir.join(format!("{stem}.onnx"));
    let data = match bytes {
        Some(b) => b.to_vec(),
        None => std::fs::read(fixture(&format!("{stem}.onnx"))).unwrap(),
    };
    std::fs::write(&model, &data).unwrap();
    let mut sidecar: Value =
        serde_json::from_slice(&std::fs::read(fixture(&format!("{stem}.json"))).unwrap()).unwrap();
    sidecar["sha256"] = Value::String(sha256_hex(&data));
    edit(&mut sidecar);
    std::fs::write(dir.join(format!("{stem}.json")), sidecar.to_string()).unwrap();
    model
}

fn load_err(model: &Path) -> String {
    let e = Model::load(model).unwrap_err();
    let s = e.to_string();
    assert!(!s.contains('\n'), "one line: {s}");
    s
}

/// `[3, 8, 16]` of 0.5 (normalised to 0) with a block of 1.0 (normalised to 1)
/// over rows 2..4, columns 4..8.
fn block_tensor() -> Vec<f32> {
    let mut t = vec![0.5f32; 3 * 8 * 16];
    for c in 0..3 {
        for y in 2..4 {
            for x in 4..8 {
                t[c * 128 + y * 16 + x] = 1.0;
            }
        }
    }
    t
}

#[test]
fn the_frame_fixture_loads_and_finds_the_block() {
    let model = Model::load(&fixture("tiny-frame.onnx")).unwrap();
    assert_eq!(model.contract().name, "tiny-frame");
    let mut runner = model.runner().unwrap();
    let d = runner.run_tensor(7, block_tensor(), (160, 80)).unwrap();
    assert_eq!(d.seq, 7);
    assert_eq!(d.score, 1.0);
    assert!(d.anomalous);
    assert_eq!((d.map_width, d.map_height), (16, 8));
    let map = d.map.as_ref().unwrap();
    assert_eq!(map.iter().filter(|&&v| v == 1.0).count(), 8);
    assert_eq!(map.iter().filter(|&&v| v == 0.0).count(), 120);
    assert_eq!(
        d.boxes,
        vec![BoundingBox {
            x: 40,
            y: 20,
            width: 40,
            height: 20,
            cells: 8,
            peak: 1.0
        }]
    );

    // Nothing but the mean: score 0, no boxes; the runner is reused.
    let d = runner.run_tensor(8, vec![0.5; 384], (160, 80)).unwrap();
    assert_eq!(d.score, 0.0);
    assert!(!d.anomalous && d.boxes.is_empty());

    let e = runner.run_tensor(9, vec![0.5; 10], (1, 1)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "input tensor has 10 values, the model takes 384"
    );
}

#[test]
fn a_frame_goes_through_the_shared_preprocessing() {
    let model = Model::load(&fixture("tiny-frame.onnx")).unwrap();
    let mut f = VideoFrame::zeroed(32, 16, PixelFormat::I420).unwrap();
    f.plane_mut(0).fill(255);
    f.plane_mut(1).fill(128);
    f.plane_mut(2).fill(128);
    f.seq = 3;
    let d = model.runner().unwrap().detect_frame(&f).unwrap();
    // Y' = 1 -> 1 after (x - 0.5) / 0.5; Cb = Cr = 128/255 -> 1/255.
    let want = (1.0 + 2.0 / 255.0) / 3.0;
    assert!((d.score - want).abs() < 1e-5, "{}", d.score);
    assert_eq!(d.seq, 3);
    assert!(!d.anomalous);

    // RGB has no Y'CbCr planes: an error, not a panic.
    let rgb = VideoFrame::zeroed(32, 16, PixelFormat::Rgb8).unwrap();
    let e = model.runner().unwrap().detect_frame(&rgb).unwrap_err();
    assert!(matches!(e, ModelError::Input(_)), "{e}");
}

#[test]
fn one_plan_serves_several_threads() {
    let model = Model::load(&fixture("tiny-frame.onnx")).unwrap();
    let scores: Vec<f32> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let m = model.clone();
                s.spawn(move || {
                    let mut r = m.runner().unwrap();
                    (0..5)
                        .map(|i| r.run_tensor(i, block_tensor(), (16, 8)).unwrap().score)
                        .sum::<f32>()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(scores, vec![5.0, 5.0, 5.0]);
}

fn cube(width: usize, height: usize, bands_nm: [f32; 2]) -> SpectralCube {
    let bands = bands_nm
        .iter()
        .map(|&c| Band {
            center_nm: c,
            fwhm_nm: 40.0,
        })
        .collect();
    SpectralCube::new(bands, Array3::zeros((2, height, width))).unwrap()
}

#[test]
fn a_cube_is_tiled_and_boxes_are_clipped_to_it() {
    let model = Model::load(&fixture("tiny-cube.onnx")).unwrap();
    let mut c = cube(6, 5, [410.3, 449.5]);
    c.data_mut()[[0, 4, 5]] = 65535;
    c.data_mut()[[1, 4, 5]] = 65535;
    let d = model.runner().unwrap().detect_cube(&c).unwrap();
    let at: Vec<(usize, usize)> = d.tiles.iter().map(|t| (t.x, t.y)).collect();
    assert_eq!(at, vec![(0, 0), (4, 0), (0, 4), (4, 4)]);
    let scores: Vec<f32> = d.tiles.iter().map(|t| t.detection.score).collect();
    assert_eq!(scores, vec![0.0, 0.0, 0.0, 1.0]);
    let last = &d.tiles[3].detection;
    assert!(last.anomalous);
    // The edge pixel is replicated over the tile's 3x4 overhang; the box is
    // clipped to the cube.
    assert_eq!(
        last.boxes,
        vec![BoundingBox {
            x: 5,
            y: 4,
            width: 1,
            height: 1,
            cells: 12,
            peak: 1.0
        }]
    );
    let map = d.map.unwrap();
    assert_eq!(map.len(), 30);
    assert_eq!(map[4 * 6 + 5], 1.0);
    assert_eq!(map.iter().sum::<f32>(), 1.0);

    // Bands more than 1 nm away are refused.
    let e = model
        .runner()
        .unwrap()
        .detect_cube(&cube(6, 5, [410.0, 452.0]))
        .unwrap_err()
        .to_string();
    assert!(e.contains("bands_nm") && e.contains("452"), "{e}");
}

#[test]
fn sources_are_not_mixed_up() {
    let frame_model = Model::load(&fixture("tiny-frame.onnx")).unwrap();
    let e = frame_model
        .runner()
        .unwrap()
        .detect_cube(&cube(4, 4, [410.0, 450.0]))
        .unwrap_err()
        .to_string();
    assert_eq!(e, "a FrameYcbcr model cannot take a spectral cube");
    let cube_model = Model::load(&fixture("tiny-cube.onnx")).unwrap();
    let f = VideoFrame::zeroed(8, 8, PixelFormat::I420).unwrap();
    let e = cube_model.runner().unwrap().detect_frame(&f).unwrap_err();
    assert!(matches!(e, ModelError::WrongSource { .. }), "{e}");
}

#[test]
fn a_missing_sidecar_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("lonely.onnx");
    std::fs::copy(fixture("tiny-frame.onnx"), &model).unwrap();
    let e = load_err(&model);
    assert!(e.contains("no sidecar") && e.contains("lonely.json"), "{e}");
}

#[test]
fn a_sha_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_with(dir.path(), "tiny-frame", None, |v| {
        v["sha256"] = Value::String("0".repeat(64));
    });
    let e = load_err(&model);
    assert!(
        e.starts_with("model SHA-256 is ") && e.contains(&"0".repeat(64)),
        "{e}"
    );
}

#[test]
fn corrupt_bytes_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_with(
        dir.path(),
        "tiny-frame",
        Some(b"\x08\x07garbage\xff\xff"),
        |_| {},
    );
    let e = load_err(&model);
    assert!(e.contains("not a readable ONNX model"), "{e}");
    // Truncated real bytes too.
    let good = std::fs::read(fixture("tiny-frame.onnx")).unwrap();
    let model = copy_with(
        dir.path(),
        "tiny-frame",
        Some(&good[..good.len() / 2]),
        |_| {},
    );
    let e = load_err(&model);
    assert!(e.contains("not a readable ONNX model"), "{e}");
}

#[test]
fn a_wrong_input_shape_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_with(dir.path(), "tiny-frame", None, |v| {
        v["input"]["shape"] = serde_json::json!([1, 3, 8, 8]);
        v["outputs"]["map"]["shape"] = serde_json::json!([1, 1, 8, 8]);
    });
    let e = load_err(&model);
    assert!(
        e.contains("graph does not match its contract")
            && e.contains("[1, 3, 8, 16]")
            && e.contains("[1, 3, 8, 8]"),
        "{e}"
    );
}

#[test]
fn a_wrong_output_shape_or_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let model = copy_with(dir.path(), "tiny-frame", None, |v| {
        v["outputs"]["map"]["shape"] = serde_json::json!([1, 1, 4, 8]);
    });
    let e = load_err(&model);
    assert!(
        e.contains("output `map`") && e.contains("[1, 1, 4, 8]"),
        "{e}"
    );
    let model = copy_with(dir.path(), "tiny-frame", None, |v| {
        v["outputs"]["score"]["name"] = Value::String("logits".into());
    });
    let e = load_err(&model);
    assert!(e.contains("no tensor named `logits`"), "{e}");
    let model = copy_with(dir.path(), "tiny-frame", None, |v| {
        v["input"]["name"] = Value::String("pixels".into());
    });
    let e = load_err(&model);
    assert!(e.contains("\"pixels\"") && e.contains("\"input\""), "{e}");
}

#[test]
fn an_unsupported_operator_is_refused() {
    let e = load_err(&fixture("unsupported-op.onnx"));
    assert!(e.contains("Frobnicate"), "{e}");
}
