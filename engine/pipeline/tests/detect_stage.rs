//! The detector as a pipeline stage, on the detect crate's tiny fixture
//! models: every frame passes on, the newest is analysed, results drawn.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::path::{Path, PathBuf};

use med8k_detect::model::{BoundingBox, Model};
use med8k_media::frame::{PixelFormat, VideoFrame};
use med8k_pipeline::Stage;
use med8k_pipeline::detect::DetectStage;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../detect/tests/fixtures/detect")
        .join(name)
}

#[test]
fn the_stage_passes_every_frame_on_and_analyses_the_newest_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let overlays = dir.path().join("overlays");
    let model = Model::load(&fixture("tiny-frame.onnx")).unwrap();
    let mut stage = DetectStage::new(&model, Some(&overlays)).unwrap();
    for seq in 0..20 {
        let mut f = VideoFrame::zeroed(32, 16, PixelFormat::I420).unwrap();
        // Only the last frame is white in every plane: normalised to 1, map 1.
        let v = if seq == 19 { 255 } else { 128 };
        for p in 0..3 {
            f.plane_mut(p).fill(v);
        }
        f.seq = seq;
        if seq == 19 {
            // Frames that come while the detector is busy pass unanalysed;
            // let it finish so the last one is taken.
            let start = std::time::Instant::now();
            while !stage.is_idle() {
                assert!(start.elapsed() < std::time::Duration::from_secs(10));
                std::thread::sleep(std::time::Duration::from_millis(1));
            }
        }
        let out = stage.process(f).unwrap().unwrap();
        assert_eq!(out.seq, seq);
    }
    stage.finish().unwrap();
    let figures = stage.figures();
    assert_eq!(figures["analysed"] + figures["skipped"], 20.0);
    assert!(figures["analysed"] >= 1.0);
    let last = stage.detections().last().unwrap();
    assert_eq!(last.seq, 19);
    let seqs: Vec<u64> = stage.detections().iter().map(|d| d.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert!(last.anomalous && last.score == 1.0);
    assert!(
        stage.detections()[..stage.detections().len() - 1]
            .iter()
            .all(|d| !d.anomalous && d.boxes.is_empty())
    );
    // One overlay: the last frame's, with its box over the whole frame.
    let written: Vec<String> = std::fs::read_dir(&overlays)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(written, vec!["frame_000019.png".to_owned()]);
    assert_eq!(
        last.boxes,
        vec![BoundingBox {
            x: 0,
            y: 0,
            width: 32,
            height: 16,
            cells: 128,
            peak: 1.0
        }]
    );
}

#[test]
fn with_draw_the_stage_marks_passing_frames_with_the_newest_result() {
    let model = Model::load(&fixture("tiny-frame.onnx")).unwrap();
    let frame = |seq: u64, v: u8| {
        let mut f = VideoFrame::zeroed(32, 16, PixelFormat::I420).unwrap();
        for p in 0..3 {
            f.plane_mut(p).fill(v);
        }
        f.seq = seq;
        f
    };
    let wait_idle = |stage: &DetectStage| {
        let start = std::time::Instant::now();
        while !stage.is_idle() {
            assert!(start.elapsed() < std::time::Duration::from_secs(10));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    for draw in [false, true] {
        let mut stage = DetectStage::new(&model, None).unwrap().draw(draw);
        // A white frame is anomalous with a box over the whole frame.
        let first = stage.process(frame(0, 255)).unwrap().unwrap();
        assert!(first.same_picture(&frame(0, 255)), "no result yet");
        wait_idle(&stage);
        let next = stage.process(frame(1, 128)).unwrap().unwrap();
        stage.finish().unwrap();
        assert!(stage.detections()[0].anomalous);
        if draw {
            // The box (the whole frame) drawn over the red border, in green:
            // limited-range BT.2020 Y' 16 + 219 * 0.678.
            assert_eq!(next.plane(0)[0], 164);
            assert_eq!(next.plane(0)[16 * 8 + 8], 128, "inside is untouched");
        } else {
            assert!(next.same_picture(&frame(1, 128)));
        }
    }
}
