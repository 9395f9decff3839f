//! The GPU kernels against the CPU twin: same bytes out of the encoder, same
//! picture out of the decoder, one at a time and streamed with several
//! frames in flight, from planes or v210 and back. Runs on Mesa's lavapipe
//! where there is no GPU.
#![allow(clippy::unwrap_used)]

#[path = "../../gpu/tests/support/mod.rs"]
mod gpu_support;

use std::sync::Arc;

use gpu_support::{Content, context, picture};
use med8k_codec::gpu::{
    Decoded, Frame, GpuDecoder, GpuEncoder, GpuStreamDecoder, GpuStreamEncoder,
};
use med8k_codec::{Config, DecodeError};
use med8k_gpu::{GpuContext, SampleLayout, TimeSource};
use med8k_media::frame::{PixelFormat, VideoFrame, v210};
use med8k_media::picture::{Layout, Picture};

/// `pic` (10-bit 4:2:2) packed as a v210 frame by the CPU twin.
fn v210_of(pic: &Picture) -> VideoFrame {
    let mut f = VideoFrame::zeroed(pic.width(), pic.height(), PixelFormat::I422_10).unwrap();
    for p in 0..3 {
        let (w, _) = pic.plane_dims(p);
        let stride = f.layout().planes()[p].stride / 2;
        let src = &pic.planes()[p];
        for (row, dst) in src
            .chunks(w as usize)
            .zip(f.plane_u16_mut(p).chunks_mut(stride))
        {
            dst[..w as usize].copy_from_slice(row);
        }
    }
    v210::pack(&f).unwrap()
}

fn check(
    ctx: &Arc<GpuContext>,
    enc_gpu: &mut med8k_codec::Encoder,
    dec_gpu: &mut GpuDecoder,
    config: &Config,
    pic: &Picture,
    what: &str,
) -> med8k_codec::Packet {
    let cpu = config.new_encoder().unwrap().encode(pic).unwrap();
    let gpu = enc_gpu.encode(pic).unwrap();
    assert!(
        cpu.data == gpu.data,
        "{what}: GPU stream ({} bytes) differs from the CPU twin's ({} bytes) on {}",
        gpu.data.len(),
        cpu.data.len(),
        ctx.describe()
    );
    let from_cpu = med8k_codec::decode(&cpu.data).unwrap();
    let from_gpu = dec_gpu.decode(&gpu.data, u64::MAX).unwrap();
    assert!(
        from_cpu == from_gpu,
        "{what}: GPU decode differs from the CPU decode"
    );
    if config.mode == med8k_codec::Mode::Lossless {
        assert!(
            &from_gpu == pic,
            "{what}: lossless decode is not the original"
        );
    }
    cpu
}

#[test]
fn gpu_matches_the_twin_on_every_layout_depth_and_odd_sizes() {
    let Some(ctx) = context() else { return };
    let mut dec = GpuDecoder::new(ctx.clone());
    let mut seed = 1;
    let mut two_tables = 0;
    let cases: &[(Layout, u32, u32)] = &[
        (Layout::Gray, 67, 45),
        (Layout::Rgb, 130, 37),
        (Layout::Rgba, 33, 17),
        (Layout::Yuv422, 98, 70),
        (Layout::Yuv420, 51, 33),
        (Layout::Bands(7), 40, 24),
    ];
    for &(layout, w, h) in cases {
        for depth in [8u8, 10, 12, 16] {
            for content in [Content::Random, Content::Extremes, Content::Smooth] {
                seed += 1;
                let pic = picture(layout, w, h, depth, content, seed);
                for config in [
                    Config::lossless().with_slice_height(16).with_levels(3),
                    Config::bpp(2.0).with_slice_height(16).with_levels(3),
                ] {
                    let mut enc = config
                        .new_encoder_with(Box::new(GpuEncoder::new(ctx.clone())))
                        .unwrap();
                    let what =
                        format!("{layout} {w}x{h} {depth}-bit {content:?} {:?}", config.mode);
                    let packet = check(&ctx, &mut enc, &mut dec, &config, &pic, &what);
                    two_tables += usize::from(
                        med8k_codec::probe(&packet.data)
                            .unwrap()
                            .steps
                            .tables()
                            .len()
                            == 2,
                    );
                }
            }
        }
    }
    // Rate control mixes two step tables per slice on most frames: make sure
    // the GPU's per-slice table lookup was exercised.
    assert!(
        two_tables >= 10,
        "only {two_tables} streams used two step tables"
    );
}

#[test]
fn gpu_matches_the_twin_on_a_real_8k_frame() {
    use med8k_samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};
    let Some(ctx) = context() else { return };
    let (w, h) = (7680, 4320);
    let scene = EndoscopeScene::new(SceneConfig {
        width: w,
        height: h,
        frames: 8,
        seed: 11,
    })
    .unwrap();
    let mut fb = FrameBuffers::new(&scene);
    scene.render(5, &mut fb.planes()).unwrap();
    let pic = fb.into_picture().unwrap();
    let config = Config::lossless();
    let cpu = config.new_encoder().unwrap().encode(&pic).unwrap().data;
    // v210 in, as the capture delivers it (in stripes where the device's
    // bindings cannot hold 8K, as on lavapipe).
    let frame = v210_of(&pic);
    let mut enc = GpuStreamEncoder::new(ctx.clone(), &config, SampleLayout::of(&pic), true)
        .unwrap()
        .with_depth(1);
    let mut data = Vec::new();
    enc.send_frame(Frame::V210(&frame), &mut data)
        .unwrap()
        .unwrap();
    assert!(
        data == cpu,
        "8K v210 stream packet ({} bytes) differs from the twin's ({} bytes) on {}",
        data.len(),
        cpu.len(),
        ctx.describe()
    );
    eprintln!(
        "8K v210 encode in {} stripe(s): {:?}",
        enc.stripes(),
        enc.stats()
    );
    // Planes out, then v210 out.
    let mut dec = GpuDecoder::new(ctx.clone());
    assert!(
        dec.decode(&data, u64::MAX).unwrap() == pic,
        "8K GPU decode is not the original"
    );
    let mut dec = GpuStreamDecoder::new(ctx.clone(), true).with_depth(1);
    let mut out = Decoded::v210();
    dec.send_packet(&data, &mut out).unwrap().unwrap();
    assert!(
        matches!(&out, Decoded::V210(f) if f.same_picture(&frame)),
        "8K v210 decode differs from the twin's packing"
    );
    // Quantised, with two step tables mixed over the slices (explicit steps:
    // a rate-controlled search would run a dozen trials on a software GPU).
    use med8k_codec::EncodeBackend;
    let geom = med8k_codec::Params {
        layout: pic.layout(),
        width: w,
        height: h,
        bit_depth: pic.bit_depth(),
        levels: med8k_codec::DEFAULT_LEVELS,
        slice_height: med8k_codec::DEFAULT_SLICE_HEIGHT,
        lossless: false,
    }
    .geometry();
    let tables = vec![
        med8k_codec::rate::steps(2.0, 5),
        med8k_codec::rate::steps(3.0, 5),
    ];
    let select = (0..geom.slices).map(|s| (s % 3 == 0) as u8).collect();
    let steps = med8k_codec::Steps::mixed(tables, select).unwrap();
    let mut cpu = med8k_codec::cpu::CpuEncoder::new();
    cpu.load(&pic, &geom).unwrap();
    let mut gpu = GpuEncoder::new(ctx.clone());
    gpu.load(&pic, &geom).unwrap();
    let (a, b) = (
        cpu.encode(&geom, &steps).unwrap(),
        gpu.encode(&geom, &steps).unwrap(),
    );
    assert_eq!(a.slice_lens, b.slice_lens, "8K two-table slice lengths");
    assert!(a.payload == b.payload, "8K two-table payload differs");
}

/// The stream encoder and decoder with frames in flight: v210 and planes in,
/// v210 and planes out, each frame the twin's, with and without subgroup
/// operations, with per-stage timings; odd sizes (a partial v210 group, odd
/// chroma width, a short last slice).
#[test]
fn streams_match_the_twin_with_frames_in_flight() {
    let Some(ctx) = context() else { return };
    let (w, h) = (190, 70);
    let config = Config::lossless().with_slice_height(16).with_levels(3);
    let contents = [
        Content::Smooth,
        Content::Random,
        Content::Extremes,
        Content::Smooth,
        Content::Random,
    ];
    let pics: Vec<Picture> = contents
        .iter()
        .enumerate()
        .map(|(i, &c)| picture(Layout::Yuv422, w, h, 10, c, 40 + i as u64))
        .collect();
    let frames: Vec<VideoFrame> = pics.iter().map(v210_of).collect();
    let cpu: Vec<Vec<u8>> = pics
        .iter()
        .map(|p| config.new_encoder().unwrap().encode(p).unwrap().data)
        .collect();
    let shape = SampleLayout::of(&pics[0]);

    // v210 in, three in flight, timed.
    let mut enc = GpuStreamEncoder::new(ctx.clone(), &config, shape, true)
        .unwrap()
        .with_timings(true);
    let mut packets = vec![Vec::new(); pics.len()];
    let mut out = Vec::new();
    let mut got = Vec::new();
    for f in &frames {
        if let Some(done) = enc.send_frame(Frame::V210(f), &mut out).unwrap() {
            got.push((done, out.clone()));
        }
        assert!(enc.in_flight() <= 3);
    }
    // The next one without blocking once the GPU is done with it, the rest waiting.
    let started = std::time::Instant::now();
    loop {
        if let Some(done) = enc.poll_packet(&mut out).unwrap() {
            got.push((done, out.clone()));
            break;
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "poll_packet never had the packet"
        );
        std::thread::yield_now();
    }
    while let Some(done) = enc.receive_packet(&mut out).unwrap() {
        got.push((done, out.clone()));
    }
    assert_eq!(got.len(), pics.len(), "every frame came back");
    for (i, (done, data)) in got.into_iter().enumerate() {
        assert_eq!(done.seq, i as u64);
        assert_eq!(done.bytes, data.len());
        assert!(
            data == cpu[i],
            "frame {i}: v210 stream packet ({} bytes) differs from the twin's ({} bytes) on {}",
            data.len(),
            cpu[i].len(),
            ctx.describe()
        );
        let t = done.timings.expect("timings were asked for");
        let want = if ctx.has_timestamps() {
            TimeSource::GpuTimestamps
        } else {
            TimeSource::CpuWall
        };
        assert_eq!(t.source, want);
        let names: Vec<&str> = t.merged().stages.iter().map(|s| s.0).collect();
        assert_eq!(
            names,
            [
                "copy_in",
                "unpack",
                "transforms",
                "entropy",
                "scan_gather",
                "copy_out"
            ]
        );
        assert!(t.stages.iter().all(|s| s.1.is_finite() && s.1 >= 0.0));
        packets[i] = data;
    }
    let stats = enc.stats();
    assert_eq!(stats.frames, 5);
    assert_eq!(stats.submits, 5 + stats.reruns, "one submission per frame");
    // A noisy frame after smooth ones codes to more than was copied back:
    // the rerun path ran, and its packets are the twin's too.
    assert!(stats.reruns >= 1, "{stats:?}");
    let v210_bytes = 4 * u64::from(w.div_ceil(48) * 32) * u64::from(h);
    assert_eq!(
        stats.bytes_to_gpu,
        5 * v210_bytes,
        "v210 crosses the bus, not planes"
    );
    eprintln!("v210 stream encoder: {stats:?}");

    // Planes in, two in flight, the scans without subgroup operations.
    let mut enc = GpuStreamEncoder::new(ctx.clone(), &config, shape, false)
        .unwrap()
        .with_depth(2)
        .without_subgroups();
    let mut n = 0;
    for p in &pics {
        if enc
            .send_frame(Frame::Picture(p), &mut out)
            .unwrap()
            .is_some()
        {
            assert!(out == packets[n], "planar stream packet {n}");
            n += 1;
        }
    }
    while enc.receive_packet(&mut out).unwrap().is_some() {
        assert!(out == packets[n], "planar stream packet {n}");
        n += 1;
    }
    assert_eq!(n, 5);

    // v210 out, three in flight; planes out, two in flight, portable scans.
    let mut dec = GpuStreamDecoder::new(ctx.clone(), true).with_timings(true);
    let mut frame = Decoded::v210();
    let mut n = 0;
    let check_v210 = |frame: &Decoded, n: usize| match frame {
        Decoded::V210(f) => assert!(f.same_picture(&frames[n]), "v210 decode {n}"),
        other => panic!("{other:?}"),
    };
    for data in &packets {
        if let Some(done) = dec.send_packet(data, &mut frame).unwrap() {
            assert_eq!(done.seq, n as u64);
            assert!(done.timings.is_some_and(|t| !t.stages.is_empty()));
            check_v210(&frame, n);
            n += 1;
        }
    }
    let started = std::time::Instant::now();
    while dec.in_flight() > 1 {
        if dec.poll_frame(&mut frame).unwrap().is_some() {
            check_v210(&frame, n);
            n += 1;
        }
        assert!(
            started.elapsed().as_secs() < 120,
            "poll_frame never had the picture"
        );
        std::thread::yield_now();
    }
    while dec.receive_frame(&mut frame).unwrap().is_some() {
        check_v210(&frame, n);
        n += 1;
    }
    assert_eq!(n, 5);
    assert_eq!(dec.stats().submits, 5);
    let mut dec = GpuStreamDecoder::new(ctx.clone(), false)
        .with_depth(2)
        .without_subgroups();
    let mut pic = Decoded::picture();
    let mut n = 0;
    for data in &packets {
        if dec.send_packet(data, &mut pic).unwrap().is_some() {
            assert!(
                matches!(&pic, Decoded::Picture(p) if *p == pics[n]),
                "planar decode {n}"
            );
            n += 1;
        }
    }
    while dec.receive_frame(&mut pic).unwrap().is_some() {
        assert!(
            matches!(&pic, Decoded::Picture(p) if *p == pics[n]),
            "planar decode {n}"
        );
        n += 1;
    }
    assert_eq!(n, 5);
}

/// The stream encoder from planes of every layout and bit depth, and what
/// it refuses: frames of another shape, v210 of a shape v210 cannot carry,
/// a rate-controlled configuration.
#[test]
fn stream_encoder_takes_every_layout_and_depth() {
    let Some(ctx) = context() else { return };
    let config = Config::lossless().with_slice_height(8).with_levels(2);
    let mut dec = GpuStreamDecoder::new(ctx.clone(), false).with_depth(1);
    let mut back = Decoded::picture();
    let mut seed = 900;
    for layout in [
        Layout::Gray,
        Layout::Rgb,
        Layout::Rgba,
        Layout::Yuv422,
        Layout::Yuv420,
        Layout::Bands(5),
    ] {
        for depth in [8u8, 12, 16] {
            seed += 1;
            let pic = picture(layout, 45, 27, depth, Content::Random, seed);
            let cpu = config.new_encoder().unwrap().encode(&pic).unwrap().data;
            let mut enc =
                GpuStreamEncoder::new(ctx.clone(), &config, SampleLayout::of(&pic), false)
                    .unwrap()
                    .with_depth(1);
            let mut out = Vec::new();
            enc.send_frame(Frame::Picture(&pic), &mut out)
                .unwrap()
                .unwrap();
            assert!(out == cpu, "{layout} {depth}-bit stream packet");
            dec.send_packet(&out, &mut back).unwrap().unwrap();
            assert!(
                matches!(&back, Decoded::Picture(p) if *p == pic),
                "{layout} {depth}-bit"
            );
            // Another shape is refused, and the encoder goes on.
            let other = picture(layout, 46, 27, depth, Content::Random, seed);
            assert!(matches!(
                enc.send_frame(Frame::Picture(&other), &mut out),
                Err(med8k_codec::EncodeError::Mismatch { .. })
            ));
        }
    }
    // Tiny pictures, and v210 rows of one partial group or of an odd width.
    for (layout, w, h) in [(Layout::Gray, 1, 1), (Layout::Yuv420, 3, 2)] {
        let pic = picture(layout, w, h, 10, Content::Random, 3);
        let cpu = config.new_encoder().unwrap().encode(&pic).unwrap().data;
        let mut enc = GpuStreamEncoder::new(ctx.clone(), &config, SampleLayout::of(&pic), false)
            .unwrap()
            .with_depth(1);
        let mut out = Vec::new();
        enc.send_frame(Frame::Picture(&pic), &mut out)
            .unwrap()
            .unwrap();
        assert!(out == cpu, "{layout} {w}x{h}");
    }
    let mut v210_dec = GpuStreamDecoder::new(ctx.clone(), true).with_depth(1);
    let mut v210_out = Decoded::v210();
    for (w, h) in [(2, 9), (47, 17)] {
        let pic = picture(Layout::Yuv422, w, h, 10, Content::Extremes, 4);
        let cpu = config.new_encoder().unwrap().encode(&pic).unwrap().data;
        let frame = v210_of(&pic);
        let mut enc = GpuStreamEncoder::new(ctx.clone(), &config, SampleLayout::of(&pic), true)
            .unwrap()
            .with_depth(1);
        let mut out = Vec::new();
        enc.send_frame(Frame::V210(&frame), &mut out)
            .unwrap()
            .unwrap();
        assert!(out == cpu, "v210 {w}x{h}");
        v210_dec.send_packet(&out, &mut v210_out).unwrap().unwrap();
        assert!(
            matches!(&v210_out, Decoded::V210(f) if f.same_picture(&frame)),
            "v210 {w}x{h} decode"
        );
    }
    let gray = SampleLayout::of(&picture(Layout::Gray, 8, 8, 10, Content::Random, 1));
    assert!(GpuStreamEncoder::new(ctx.clone(), &config, gray, true).is_err());
    let pic = picture(Layout::Yuv422, 64, 16, 10, Content::Random, 2);
    assert!(matches!(
        GpuStreamEncoder::new(
            ctx.clone(),
            &Config::bpp(2.0),
            SampleLayout::of(&pic),
            false
        ),
        Err(med8k_codec::EncodeError::Config(_))
    ));
    let mut enc =
        GpuStreamEncoder::new(ctx.clone(), &config, SampleLayout::of(&pic), false).unwrap();
    let f = v210_of(&pic);
    assert!(matches!(
        enc.send_frame(Frame::V210(&f), &mut Vec::new()),
        Err(med8k_codec::EncodeError::Mismatch { .. })
    ));
}

/// Corrupt streams with their CRCs made right again, so that they reach the
/// block tables and the codes on the GPU: the GPU decoder fails exactly where
/// the twin fails (and says the same), and never hangs or panics.
#[test]
fn hostile_streams_are_the_twins_errors() {
    let Some(ctx) = context() else { return };
    let pic = picture(Layout::Yuv422, 96, 64, 10, Content::Smooth, 77);
    let data = Config::lossless()
        .with_slice_height(16)
        .new_encoder()
        .unwrap()
        .encode(&pic)
        .unwrap()
        .data;
    let header = med8k_codec::probe(&data).unwrap();
    let mut dec = GpuDecoder::new(ctx.clone());
    let mut seed = 0x2545_F491_4F6C_DD1Du64;
    let mut rnd = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let (mut same_ok, mut same_err) = (0, 0);
    for i in 0..60 {
        let mut m = data.clone();
        // Mostly the slices (block tables and codes), sometimes the header.
        let from = if i % 6 == 0 { 0 } else { header.len };
        for _ in 0..1 + rnd() % 3 {
            let at = from + (rnd() as usize % (m.len() - from));
            m[at] ^= 1 << (rnd() % 8);
        }
        fix_crcs(&mut m);
        // Small pictures only: a header made to ask for a large one is
        // refused alike by both.
        let cpu = med8k_codec::decode_with_limit(&m, 1 << 20);
        let gpu = dec.decode(&m, 1 << 20);
        match (&cpu, &gpu) {
            (Ok(a), Ok(b)) => {
                assert!(a == b, "mutation {i}: the pictures differ");
                same_ok += 1;
            }
            (Err(a), Err(b)) => {
                // Where several slices are bad, the twin (in parallel)
                // names any of them, the GPU the first: the same error
                // whenever they name the same slice.
                let slice = |e: &DecodeError| match e {
                    DecodeError::Block { slice, .. }
                    | DecodeError::Slice { slice, .. }
                    | DecodeError::SliceCrc { slice } => Some(*slice),
                    _ => None,
                };
                if slice(a) == slice(b) {
                    assert_eq!(a.to_string(), b.to_string(), "mutation {i}");
                }
                same_err += 1;
            }
            _ => panic!("mutation {i}: CPU {cpu:?} but GPU {gpu:?}"),
        }
    }
    assert!(same_err > 10, "only {same_err} mutations were errors");
    eprintln!("hostile streams: {same_ok} decoded alike, {same_err} failed alike");
    // The decoder still works after all that.
    assert!(dec.decode(&data, u64::MAX).unwrap() == pic);
}

/// Recompute every slice CRC and the header CRC of `data`.
fn fix_crcs(data: &mut [u8]) {
    let Ok(h) = med8k_codec::probe(data) else {
        return;
    };
    let mut at = h.len;
    let table = h.len - 4 - 8 * h.slices.len();
    for (i, &(len, _)) in h.slices.iter().enumerate() {
        let end = (at + len as usize).min(data.len());
        let crc = crc32fast::hash(&data[at..end]);
        data[table + 8 * i + 4..table + 8 * i + 8].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    let crc = crc32fast::hash(&data[..h.len - 4]);
    data[h.len - 4..h.len].copy_from_slice(&crc.to_le_bytes());
}
