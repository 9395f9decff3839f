//! Capture and output through real GStreamer pipelines: round trips, tiles,
//! every format, and bad input.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::time::Duration;

use med8k_capture::{GstError, GstSink, GstSource, SinkOptions, SourceOptions};
use med8k_media::frame::{PixelFormat, VideoFrame, v210};

/// Frames with pseudo-random samples over the format's whole range.
fn noise_frame(w: u32, h: u32, format: PixelFormat, seq: u64) -> VideoFrame {
    let mut f = VideoFrame::zeroed(w, h, format).unwrap();
    let mut k = seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = || {
        k ^= k << 13;
        k ^= k >> 7;
        k ^= k << 17;
        k
    };
    for p in 0..format.plane_count() {
        if format.bit_depth() > 8 {
            f.plane_u16_mut(p)
                .iter_mut()
                .for_each(|v| *v = (next() & 0x3ff) as u16);
        } else {
            f.plane_mut(p).iter_mut().for_each(|v| *v = next() as u8);
        }
    }
    f.seq = seq;
    f
}

fn capture_all(mut source: GstSource) -> Vec<VideoFrame> {
    let mut frames = Vec::new();
    while let Some(f) = source.next_frame().unwrap() {
        frames.push(f);
    }
    frames
}

#[test]
fn ffv1_matroska_round_trip_is_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mkv");
    let frames: Vec<_> = (0..5)
        .map(|i| noise_frame(320, 180, PixelFormat::I422_10, i))
        .collect();
    let mut sink = SinkOptions::default()
        .framerate(60, 1)
        .open(&format!(
            "avenc_ffv1 ! matroskamux ! filesink location={}",
            clip.display()
        ))
        .unwrap();
    for f in &frames {
        sink.push(noise_frame(320, 180, PixelFormat::I422_10, f.seq))
            .unwrap();
    }
    sink.finish(Duration::from_secs(30)).unwrap();

    let source = GstSource::open_clip(&clip, SourceOptions::default()).unwrap();
    assert!(!source.is_live());
    let back = capture_all(source);
    assert_eq!(back.len(), frames.len());
    for (a, b) in frames.iter().zip(&back) {
        assert!(
            a.same_picture(b),
            "frame {} differs after FFV1/Matroska",
            a.seq
        );
    }
    // Matroska keeps timestamps to the millisecond.
    assert_eq!(back[1].pts, Some(Duration::from_millis(17)));
}

#[test]
fn v210_at_an_awkward_width_survives_raw_output_and_input() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("frames.v210");
    let (w, h) = (1282, 4);
    let planar: Vec<_> = (0..3)
        .map(|i| noise_frame(w, h, PixelFormat::I422_10, i))
        .collect();
    let mut sink = GstSink::open(&format!("filesink location={}", raw.display())).unwrap();
    for f in &planar {
        sink.push(v210::pack(f).unwrap()).unwrap();
    }
    let (pushed, _) = sink.pushed();
    assert_eq!(pushed, 3);
    sink.finish(Duration::from_secs(10)).unwrap();

    let source = GstSource::open(&format!(
        "filesrc location={} ! rawvideoparse format=v210 width={w} height={h} framerate=60/1",
        raw.display()
    ))
    .unwrap();
    let back = capture_all(source);
    assert_eq!(back.len(), 3);
    for (a, b) in planar.iter().zip(&back) {
        assert_eq!(b.format(), PixelFormat::V210);
        assert!(v210::unpack(b).unwrap().same_picture(a));
    }
}

#[test]
fn steady_state_capture_reuses_pooled_buffers() {
    let mut source = GstSource::open(
        "videotestsrc num-buffers=50 ! video/x-raw,format=I422_10LE,width=640,height=360",
    )
    .unwrap();
    let mut n = 0;
    while let Some(frame) = source.next_frame().unwrap() {
        drop(frame); // handed on and released, as the last stage does
        n += 1;
    }
    assert_eq!(n, 50);
    let stats = source.pool_stats().unwrap();
    assert_eq!(stats.allocations, 1, "{stats:?}");
    assert_eq!(stats.reuses, 49, "{stats:?}");
}

#[test]
fn every_supported_format_is_captured() {
    for format in PixelFormat::ALL {
        let source = GstSource::open(&format!(
            "videotestsrc num-buffers=2 ! video/x-raw,format={},width=97,height=31",
            format.gst_name()
        ))
        .unwrap();
        let frames = capture_all(source);
        assert_eq!(frames.len(), 2, "{format}");
        assert_eq!(
            (frames[0].width(), frames[0].height(), frames[0].format()),
            (97, 31, format)
        );
        assert_eq!(frames[1].seq, 1);
    }
}

#[test]
fn a_file_pipeline_that_never_starts_is_an_error_not_a_hang() {
    // `valve drop=true` swallows every buffer: no preroll, no error, no EOS.
    let mut source = SourceOptions::default()
        .start_timeout(Duration::from_millis(500))
        .open("videotestsrc ! video/x-raw,format=I420,width=64,height=64 ! valve drop=true")
        .unwrap();
    let err = source.next_frame().unwrap_err();
    assert!(matches!(err, GstError::NoStart { .. }), "{err:?}");
    assert!(source.next_frame().unwrap().is_none());
}

#[test]
fn a_description_that_does_not_parse_is_a_clear_error() {
    let err = GstSource::open("videotestsrc ! nosuchelement").unwrap_err();
    assert!(matches!(&err, GstError::Parse { .. }), "{err:?}");
    assert!(err.to_string().contains("nosuchelement"), "{err}");
    let err = GstSink::open("videoconvert ! ! fakesink").unwrap_err();
    assert!(matches!(&err, GstError::Parse { .. }), "{err:?}");
}

#[test]
fn caps_the_engine_cannot_handle_are_named() {
    let err =
        GstSource::open("videotestsrc num-buffers=3 ! video/x-raw,format=NV12,width=64,height=64")
            .and_then(|mut s| s.next_frame().map(drop))
            .unwrap_err();
    assert!(matches!(&err, GstError::UnsupportedCaps { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("NV12") && msg.contains("I422_10LE"), "{msg}");
}

#[test]
fn missing_and_corrupt_clips_are_errors_naming_the_file() {
    let err =
        GstSource::open_clip("/no/such/clip.mkv".as_ref(), SourceOptions::default()).unwrap_err();
    assert_eq!(err.to_string(), "/no/such/clip.mkv: no such file");

    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("corrupt.mkv");
    std::fs::write(
        &bad,
        b"\x1a\x45\xdf\xa3 this is not a matroska file at all".repeat(100),
    )
    .unwrap();
    let options = SourceOptions::default().start_timeout(Duration::from_secs(5));
    let result = GstSource::open_clip(&bad, options).and_then(|mut s| {
        s.next_frame()?;
        Ok(())
    });
    let err = result.unwrap_err();
    let GstError::InClip { path, source } = &err else {
        panic!("{err:?}")
    };
    assert_eq!(path, &bad.display().to_string());
    // Usually the demuxer says it found no stream; if it says nothing, the
    // source gives up after its start timeout instead of hanging.
    assert!(
        matches!(
            **source,
            GstError::Element { .. } | GstError::NoStart { .. }
        ),
        "{source:?}"
    );
    assert!(!source.to_string().contains('\n'), "one line: {source}");
}

#[test]
fn tiles_from_several_appsinks_make_one_frame() {
    let caps =
        "videotestsrc num-buffers=3 pattern=smpte ! video/x-raw,format=I420,width=128,height=96";
    let whole = capture_all(GstSource::open(caps).unwrap());
    let mut desc = format!("{caps} ! tee name=t");
    for (name, crop) in [
        ("a", "right=64 bottom=48"),
        ("b", "left=64 bottom=48"),
        ("c", "right=64 top=48"),
        ("d", "left=64 top=48"),
    ] {
        desc.push_str(&format!(
            " t. ! queue ! videocrop {crop} ! appsink name={name}"
        ));
    }
    let tiles = |d: u32| {
        vec![
            ("a".into(), 0, 0),
            ("b".into(), 64, 0),
            ("c".into(), 0, 48),
            ("d".into(), 64, d),
        ]
    };
    let tiled = capture_all(
        SourceOptions::default()
            .tiled(128, 96, tiles(48))
            .open(&desc)
            .unwrap(),
    );
    assert_eq!(tiled.len(), 3);
    for (a, b) in whole.iter().zip(&tiled) {
        assert!(
            a.same_picture(b),
            "frame {} differs when assembled from tiles",
            a.seq
        );
    }
    // A tile that would fall outside the frame is an error, not a panic.
    let err = SourceOptions::default()
        .tiled(128, 96, tiles(49))
        .open(&desc)
        .and_then(|mut s| s.next_frame().map(drop))
        .unwrap_err();
    assert!(err.to_string().contains("does not fit"), "{err}");
}

/// The one 8K test: a full 7680x4320 frame out through GstSink (without a
/// copy: the engine's layout is GStreamer's at this size) and back in.
#[test]
fn an_8k_frame_goes_out_and_comes_back_bit_exact() {
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("8k.raw");
    let frame = noise_frame(7680, 4320, PixelFormat::I422_10, 1);
    let mut sink = GstSink::open(&format!("filesink location={}", raw.display())).unwrap();
    sink.push(noise_frame(7680, 4320, PixelFormat::I422_10, 1))
        .unwrap();
    assert_eq!(sink.pushed(), (1, 1), "pushed without a copy");
    sink.finish(Duration::from_secs(60)).unwrap();
    assert_eq!(std::fs::metadata(&raw).unwrap().len(), 7680 * 4320 * 2 * 2);

    let source = GstSource::open(&format!(
        "filesrc location={} ! rawvideoparse format=i422-10le width=7680 height=4320",
        raw.display()
    ))
    .unwrap();
    let back = capture_all(source);
    assert_eq!(back.len(), 1);
    assert!(back[0].same_picture(&frame));
}
