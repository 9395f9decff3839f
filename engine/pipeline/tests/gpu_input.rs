//! The detector's model input on the GPU against its CPU twin,
//! `detect::input`: the same exact sums and so the same tensor, bit for bit,
//! from uploaded planes and from a frame the GPU encoder holds. Runs on
//! Mesa's lavapipe where there is no GPU.
#![allow(clippy::unwrap_used)]

#[path = "../../gpu/tests/support/mod.rs"]
mod gpu_support;

use gpu_support::{Content, Rng, context, picture};
use med8k_codec::EncodeBackend;
use med8k_codec::gpu::GpuEncoder;
use med8k_detect::gpu_input::{GpuInputError, GpuModelInput, MAX_SIDE};
use med8k_detect::input::{self, InputError};
use med8k_gpu::SampleLayout;
use med8k_media::frame::{PixelFormat, VideoFrame, v210};
use med8k_media::picture::{Layout, Picture};

/// Sums and tensor on both sides, insisting on identical values and naming
/// the first differing one.
fn check(gpu: &mut GpuModelInput, pic: &Picture, out: (usize, usize), what: &str) {
    let cpu = input::picture_sums(pic, out.0, out.1).unwrap();
    let got = gpu.picture_sums(pic, out.0, out.1).unwrap();
    let what = format!(
        "{what}: {} {}x{} {}-bit to {}x{}, {} band(s)",
        pic.layout(),
        pic.width(),
        pic.height(),
        pic.bit_depth(),
        out.0,
        out.1,
        gpu.stripes()
    );
    same_sums(&got, &cpu, &what);
    assert_eq!(
        gpu.picture_tensor(pic, out.0, out.1).unwrap(),
        input::picture_tensor(pic, out.0, out.1).unwrap(),
        "{what}: tensor"
    );
}

fn same_sums(gpu: &input::AreaSums, cpu: &input::AreaSums, what: &str) {
    assert_eq!(gpu.sums.len(), cpu.sums.len(), "{what}: length");
    if let Some(i) = gpu.sums.iter().zip(&cpu.sums).position(|(a, b)| a != b) {
        let n = cpu.out_w * cpu.out_h;
        panic!(
            "{what}: plane {} differs first at ({}, {}): GPU {} CPU {}",
            i / n,
            i % n % cpu.out_w,
            i % n / cpu.out_w,
            gpu.sums[i],
            cpu.sums[i]
        );
    }
    assert_eq!(gpu, cpu, "{what}: sums");
    assert_eq!(gpu.tensor(), cpu.tensor(), "{what}: tensor");
}

/// 4:2:2 10-bit, 4:2:0 8- and 10-bit, 16-bit extremes; odd sizes, fractional
/// taps and upscaling.
#[test]
fn every_format_and_odd_size_matches_the_twin() {
    let Some(ctx) = context() else { return };
    let mut gpu = GpuModelInput::new(ctx).unwrap();
    let formats = [
        (Layout::Yuv422, 10u8),
        (Layout::Yuv420, 8),
        (Layout::Yuv420, 10),
        (Layout::Yuv422, 16),
    ];
    let cases = [
        (1921, 1079, (256, 144)),
        (1000, 600, (77, 33)),
        (33, 17, (5, 3)),
        (1, 1, (1, 1)),
        (7, 5, (16, 11)),
        (3, 2, (7, 9)),
        (64, 36, (64, 36)),
    ];
    let mut seed = 0;
    for (layout, depth) in formats {
        for (w, h, out) in cases {
            for content in [Content::Random, Content::Extremes] {
                seed += 1;
                let pic = picture(layout, w, h, depth, content, seed);
                check(&mut gpu, &pic, out, &format!("{content:?}"));
            }
        }
    }
}

/// The longest sides the kernel takes, all at the 16-bit maximum: each row
/// sum of the wide picture is `65536 × 65535`, 2^16 short of 2^32, and one
/// output has 65536 taps across or down (lavapipe ends loops after about
/// 65500 iterations).
#[test]
fn the_longest_sides_at_full_scale_match_the_twin() {
    let Some(ctx) = context() else { return };
    let mut gpu = GpuModelInput::new(ctx).unwrap();
    let mut pic = Picture::zeroed(Layout::Yuv420, MAX_SIDE, 4, 16).unwrap();
    for plane in pic.planes_mut() {
        plane.fill(u16::MAX);
    }
    for out in [(1, 1), (3, 2), (1000, 1)] {
        check(&mut gpu, &pic, out, "all 65535");
    }
    let mut tall = Picture::zeroed(Layout::Yuv422, 3, MAX_SIDE, 16).unwrap();
    for plane in tall.planes_mut() {
        plane.fill(u16::MAX);
    }
    for out in [(1, 1), (2, 3)] {
        check(&mut gpu, &tall, out, "all 65535");
    }
    for (w, h) in [(MAX_SIDE + 1, 2), (2, MAX_SIDE + 1)] {
        let big = Picture::zeroed(Layout::Yuv420, w, h, 8).unwrap();
        assert!(matches!(
            gpu.picture_sums(&big, 4, 4),
            Err(GpuInputError::TooBig { width, height }) if (width, height) == (w, h)
        ));
    }
}

/// Every frame format `input::frame_tensor` takes, through the GPU.
#[test]
fn frames_match_the_twin() {
    let Some(ctx) = context() else { return };
    let mut gpu = GpuModelInput::new(ctx).unwrap();
    let mut rng = Rng(5);
    for format in [
        PixelFormat::I422_10,
        PixelFormat::I420_10,
        PixelFormat::I420,
    ] {
        for (w, h) in [(97, 31), (64, 48)] {
            let mut f = VideoFrame::zeroed(w, h, format).unwrap();
            if format == PixelFormat::I420 {
                for p in 0..3 {
                    f.plane_mut(p)
                        .iter_mut()
                        .for_each(|v| *v = rng.next() as u8);
                }
            } else {
                for plane in f.planes_u16_mut() {
                    plane
                        .iter_mut()
                        .for_each(|v| *v = (rng.next() & 1023) as u16);
                }
            }
            let packed = (format == PixelFormat::I422_10).then(|| v210::pack(&f).unwrap());
            for f in std::iter::once(&f).chain(&packed) {
                for (ow, oh) in [(32, 9), (97, 31), (200, 100)] {
                    assert_eq!(
                        gpu.frame_tensor(f, ow, oh).unwrap(),
                        input::frame_tensor(f, ow, oh).unwrap(),
                        "{} {w}x{h} to {ow}x{oh}",
                        f.format()
                    );
                }
            }
        }
    }
}

/// Small band buffers force many bands, the last one short: the sums are
/// the same as in one piece.
#[test]
fn banded_pictures_match_the_twin() {
    let Some(ctx) = context() else { return };
    let mut seed = 100;
    for (limit, w, h, out) in [
        (8192, 101, 77, (13, 10)),
        (6000, 64, 131, (64, 131)),
        (600, 31, 9, (4, 4)),
    ] {
        let mut gpu = GpuModelInput::new(ctx.clone())
            .unwrap()
            .with_max_stripe_bytes(limit);
        for layout in [Layout::Yuv422, Layout::Yuv420] {
            seed += 1;
            let pic = picture(layout, w, h, 10, Content::Random, seed);
            check(&mut gpu, &pic, out, "banded");
            assert!(
                gpu.stripes() > 1,
                "{layout} {w}x{h}: one band under a {limit}-byte limit"
            );
        }
    }
}

/// The sums of the picture a GPU encoder holds, read from its input buffer:
/// before and after the encode (the transforms leave the samples alone),
/// with uploads of other shapes in between, and in bands of rows.
#[test]
fn an_encoders_resident_picture_matches_the_twin() {
    let Some(ctx) = context() else { return };
    let mut gpu = GpuModelInput::new(ctx.clone()).unwrap();
    let mut banded = GpuModelInput::new(ctx.clone())
        .unwrap()
        .with_max_stripe_bytes(64 << 10);
    let mut enc = GpuEncoder::new(ctx.clone());
    assert!(enc.resident_input().is_none(), "resident before any load");
    let cases = [
        (Layout::Yuv422, 1000, 600, 10u8, (77, 33)),
        (Layout::Yuv420, 333, 201, 8, (256, 144)),
        (Layout::Yuv422, 1000, 600, 10, (77, 33)),
    ];
    for (i, (layout, w, h, depth, out)) in cases.into_iter().enumerate() {
        let pic = picture(layout, w, h, depth, Content::Random, 500 + i as u64);
        let what = format!("{layout} {w}x{h} {depth}-bit");
        let cpu = input::picture_sums(&pic, out.0, out.1).unwrap();
        let params = med8k_codec::Params {
            layout,
            width: w,
            height: h,
            bit_depth: depth,
            levels: med8k_codec::DEFAULT_LEVELS,
            slice_height: med8k_codec::DEFAULT_SLICE_HEIGHT,
            lossless: true,
        };
        let geom = params.geometry();
        enc.load(&pic, &geom).unwrap();
        let (buf, shape) = enc
            .resident_input()
            .expect("a small picture stays resident");
        assert_eq!(shape, SampleLayout::of(&pic));
        let before = gpu.sums_of_buffer(buf, shape, out.0, out.1).unwrap();
        same_sums(&before, &cpu, &format!("{what}, after load"));

        let steps = med8k_codec::Steps::lossless(med8k_codec::step_count(geom.levels), geom.slices);
        let coded = enc.encode(&geom, &steps).unwrap();
        assert!(!coded.payload.is_empty());
        let (buf, shape) = enc.resident_input().unwrap();
        let after = gpu.sums_of_buffer(buf, shape, out.0, out.1).unwrap();
        same_sums(&after, &cpu, &format!("{what}, after encode"));

        // An upload of another shape, then the resident buffer again.
        check(&mut gpu, &pic, (out.1, out.0), &what);
        let (buf, shape) = enc.resident_input().unwrap();
        let again = gpu.sums_of_buffer(buf, shape, out.0, out.1).unwrap();
        same_sums(&again, &cpu, &format!("{what}, after an upload"));

        // Row sums in bands, the buffer for them too small for all rows.
        let sums = banded.sums_of_buffer(buf, shape, out.0, out.1).unwrap();
        same_sums(&sums, &cpu, &format!("{what}, in bands"));
        assert!(banded.stripes() > 1, "{what}: one band under 64 KiB");
    }
}

#[test]
fn bad_arguments_are_the_twins_errors() {
    let Some(ctx) = context() else { return };
    let mut gpu = GpuModelInput::new(ctx.clone()).unwrap();
    let gray = Picture::zeroed(Layout::Gray, 8, 8, 8).unwrap();
    let rgb = Picture::zeroed(Layout::Rgb, 8, 8, 8).unwrap();
    let yuv = Picture::zeroed(Layout::Yuv422, 8, 8, 10).unwrap();
    for (pic, out) in [
        (&gray, (2, 2)),
        (&rgb, (2, 2)),
        (&yuv, (0, 2)),
        (&yuv, (2, 0)),
    ] {
        let cpu = input::picture_sums(pic, out.0, out.1).unwrap_err();
        match gpu.picture_sums(pic, out.0, out.1) {
            Err(GpuInputError::Input(e)) => assert_eq!(e, cpu),
            other => panic!("{}: {other:?}, CPU {cpu:?}", pic.layout()),
        }
    }
    let frame = VideoFrame::zeroed(8, 8, PixelFormat::Rgb8).unwrap();
    assert!(matches!(
        gpu.frame_tensor(&frame, 2, 2),
        Err(GpuInputError::Input(InputError::UnsupportedFormat(
            PixelFormat::Rgb8
        )))
    ));
    // A buffer shorter than the planes it is said to hold.
    let small = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 64,
        usage: wgpu::BufferUsages::STORAGE,
        mapped_at_creation: false,
    });
    assert!(matches!(
        gpu.sums_of_buffer(&small, SampleLayout::of(&yuv), 2, 2),
        Err(GpuInputError::BufferTooSmall {
            need: 256,
            got: 64,
            ..
        })
    ));
}

/// The size the detector runs on: a 7680×4320 4:2:2 10-bit frame to the
/// endoscope model's 256×144, in one piece where the device binds it, in
/// bands, and from the GPU encoder's input buffer where the encoder keeps the
/// picture whole (it codes 8K in stripes on lavapipe, whose bindings stop at
/// 128 MiB; then there is no resident buffer).
#[test]
fn an_8k_422_10bit_frame_matches_the_twin() {
    let Some(ctx) = context() else { return };
    let pic = picture(Layout::Yuv422, 7680, 4320, 10, Content::Random, 8);
    let out = (256, 144);
    let cpu = input::picture_sums(&pic, out.0, out.1).unwrap();

    let mut gpu = GpuModelInput::new(ctx.clone()).unwrap();
    same_sums(&gpu.picture_sums(&pic, out.0, out.1).unwrap(), &cpu, "8K");
    eprintln!("8K uploaded in {} band(s)", gpu.stripes());
    let mut banded = GpuModelInput::new(ctx.clone())
        .unwrap()
        .with_max_stripe_bytes(32 << 20);
    same_sums(
        &banded.picture_sums(&pic, out.0, out.1).unwrap(),
        &cpu,
        "8K in bands",
    );
    assert!(banded.stripes() > 1, "8K in one band under 32 MiB");

    let mut enc = GpuEncoder::new(ctx.clone());
    let geom = med8k_codec::Params {
        layout: pic.layout(),
        width: pic.width(),
        height: pic.height(),
        bit_depth: pic.bit_depth(),
        levels: med8k_codec::DEFAULT_LEVELS,
        slice_height: med8k_codec::DEFAULT_SLICE_HEIGHT,
        lossless: true,
    }
    .geometry();
    enc.load(&pic, &geom).unwrap();
    match enc.resident_input() {
        Some((buf, shape)) => {
            assert!(!enc.is_striped());
            let sums = gpu.sums_of_buffer(buf, shape, out.0, out.1).unwrap();
            same_sums(&sums, &cpu, "8K from the encoder");
        }
        None => {
            assert!(
                enc.is_striped(),
                "a whole 8K picture without a resident buffer"
            );
            eprintln!(
                "8K from the encoder: striped on {}, no resident buffer",
                ctx.describe()
            );
        }
    }
}

/// The pipeline path: an encode stage on the GPU makes the model input next
/// to compression and the detect stage after it runs the model on that
/// input; every result equals the one the detect stage gets on its own
/// (copying the frame, area averaging on the CPU).
#[test]
fn a_gpu_encode_stage_feeds_the_detector_the_cpu_input() {
    use med8k_detect::model::{Detection, Model};
    use med8k_pipeline::Stage;
    use med8k_pipeline::detect::DetectStage;
    use med8k_pipeline::encode::EncodeStage;

    let Some(ctx) = context() else { return };
    let model = Model::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../models/endoscope-cae/med8k-endoscope-cae.onnx"),
    )
    .unwrap();
    let mut rng = Rng(7);
    let frames: Vec<VideoFrame> = (0..4)
        .map(|seq| {
            let mut f = VideoFrame::zeroed(640, 360, PixelFormat::I422_10).unwrap();
            for p in 0..3 {
                f.plane_u16_mut(p)
                    .iter_mut()
                    .for_each(|v| *v = (rng.next() & 0x3ff) as u16);
            }
            f.seq = seq;
            f
        })
        .collect();
    let idle = |d: &DetectStage| {
        let start = std::time::Instant::now();
        while !d.is_idle() {
            assert!(start.elapsed() < std::time::Duration::from_secs(60));
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    };
    let results = |d: &DetectStage| -> Vec<(u64, u32, Vec<u32>)> {
        d.detections()
            .iter()
            .map(|d: &Detection| {
                let map = d.map.iter().flatten().map(|v| v.to_bits()).collect();
                (d.seq, d.score.to_bits(), map)
            })
            .collect()
    };

    let mut detect = DetectStage::new(&model, None).unwrap();
    let encoder = med8k_codec::Config::lossless()
        .new_encoder_with(Box::new(GpuEncoder::new(ctx)))
        .unwrap();
    let mut encode = EncodeStage::new(encoder, None, false)
        .unwrap()
        .input_tap(detect.input_tap().unwrap());
    for f in &frames {
        // Idle before the encode, so each frame's input is wanted.
        idle(&detect);
        let coded = encode.process(copy(f)).unwrap().unwrap();
        detect.process(coded).unwrap();
    }
    idle(&detect);
    detect.finish().unwrap();
    assert_eq!(encode.figures()["model_inputs_made"], 4.0);
    assert_eq!(detect.figures()["inputs_from_gpu"], 4.0);

    let mut alone = DetectStage::new(&model, None).unwrap();
    for f in &frames {
        idle(&alone);
        alone.process(copy(f)).unwrap();
    }
    alone.finish().unwrap();
    assert_eq!(alone.figures()["inputs_from_gpu"], 0.0);
    assert_eq!(results(&detect).len(), 4);
    assert_eq!(results(&detect), results(&alone));
}

fn copy(f: &VideoFrame) -> VideoFrame {
    med8k_pipeline::detect::copy_frame(f).unwrap()
}
