//! The AV1 path for thin links: the downscale that specifies the GPU kernel
//! (hand-computed values, odd sizes, rounding, BT.709), the rav1e encoder's
//! checks and streaming, IVF, and a real decode of the IVF by GStreamer.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use med8k_av1::{
    Av1Config, Av1Error, Av1Packet, IVF_FRAME_HEADER_LEN, IVF_HEADER_LEN, IvfWriter, LinkClass,
};
use med8k_capture::{GstSource, SourceOptions};
use med8k_media::picture::{Layout, Picture};
use med8k_samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};

/// A picture whose planes hold `f(plane, x, y)`.
fn picture(
    layout: Layout,
    w: u32,
    h: u32,
    depth: u8,
    f: impl Fn(usize, u32, u32) -> u16,
) -> Picture {
    let planes = (0..layout.plane_count())
        .map(|p| {
            let (pw, ph) = layout.plane_dims(p, w, h);
            (0..ph)
                .flat_map(|y| (0..pw).map(move |x| (x, y)))
                .map(|(x, y)| f(p, x, y))
                .collect()
        })
        .collect();
    Picture::new(layout, w, h, depth, planes).unwrap()
}

/// The Yuv420 8-bit output of a 1x1 RGB pixel (factor 1 gives 2x2 of it).
fn rgb_pixel(rgb: [u16; 3], depth: u8, out_depth: u8) -> [u16; 3] {
    let pic = picture(Layout::Rgb, 1, 1, depth, |p, _, _| rgb[p]);
    let out = med8k_av1::downscale_420(&pic, 1, out_depth).unwrap();
    assert_eq!((out.width(), out.height()), (2, 2));
    assert!(out.planes()[0].iter().all(|&v| v == out.planes()[0][0]));
    [out.planes()[0][0], out.planes()[1][0], out.planes()[2][0]]
}

// --- downscale -------------------------------------------------------------

#[test]
fn constant_pictures_stay_constant_at_every_factor_and_size() {
    for layout in [Layout::Yuv422, Layout::Yuv420] {
        for (w, h) in [(64, 32), (37, 23), (1, 1), (6, 10)] {
            let pic = picture(layout, w, h, 10, |p, _, _| [512, 300, 701][p]);
            for factor in [1, 2, 4] {
                let out8 = med8k_av1::downscale_420(&pic, factor, 8).unwrap();
                let out10 = med8k_av1::downscale_420(&pic, factor, 10).unwrap();
                let ow = w.div_ceil(factor).next_multiple_of(2);
                let oh = h.div_ceil(factor).next_multiple_of(2);
                for out in [&out8, &out10] {
                    assert_eq!(out.layout(), Layout::Yuv420);
                    assert_eq!(
                        (out.width(), out.height()),
                        (ow, oh),
                        "{layout} {w}x{h}/{factor}"
                    );
                }
                // (512 + 2) >> 2 = 128, (300 + 2) >> 2 = 75, (701 + 2) >> 2 = 175.
                for (p, want) in [128, 75, 175].into_iter().enumerate() {
                    assert!(out8.planes()[p].iter().all(|&v| v == want), "plane {p}");
                }
                for (p, want) in [512, 300, 701].into_iter().enumerate() {
                    assert!(out10.planes()[p].iter().all(|&v| v == want), "plane {p}");
                }
            }
        }
    }
}

#[test]
fn factor_two_of_a_4x4_pattern_gives_the_hand_computed_averages() {
    // Luma 1..=16 row by row; 4:2:0 chroma 2x2.
    let chroma = [[10, 20], [30, 41]];
    let pic = picture(Layout::Yuv420, 4, 4, 8, |p, x, y| match p {
        0 => (y * 4 + x + 1) as u16,
        1 => chroma[y as usize][x as usize],
        _ => 200 - chroma[y as usize][x as usize],
    });
    let out = med8k_av1::downscale_420(&pic, 2, 8).unwrap();
    assert_eq!((out.width(), out.height()), (2, 2));
    // (1+2+5+6+2)/4 = 4, (3+4+7+8+2)/4 = 6, (9+10+13+14+2)/4 = 12, (11+12+15+16+2)/4 = 14.
    assert_eq!(out.planes()[0], [4, 6, 12, 14]);
    // (10+20+30+41+2)/4 = 25; (190+180+170+159+2)/4 = 175.
    assert_eq!(out.planes()[1], [25]);
    assert_eq!(out.planes()[2], [175]);

    // 4:2:2: the chroma box is 2 wide and 4 high (n = 8).
    let pic = picture(Layout::Yuv422, 4, 4, 8, |p, x, y| match p {
        0 => (y * 4 + x + 1) as u16,
        _ => (y * 2 + x) as u16 * 3, // 0,3 / 6,9 / 12,15 / 18,21: sum 84
    });
    let out = med8k_av1::downscale_420(&pic, 2, 8).unwrap();
    assert_eq!(out.planes()[0], [4, 6, 12, 14]);
    // (84 + 4) / 8 = 11.
    assert_eq!(out.planes()[1], [11]);
}

#[test]
fn odd_sizes_repeat_the_last_column_and_row() {
    // 5x3 luma holding 10y + x; 4:2:0 chroma 3x2 holding 10y + x.
    let pic = picture(Layout::Yuv420, 5, 3, 8, |_, x, y| (10 * y + x) as u16);
    let out = med8k_av1::downscale_420(&pic, 2, 8).unwrap();
    // ceil(5/2) = 3 -> 4 wide, ceil(3/2) = 2 high.
    assert_eq!((out.width(), out.height()), (4, 2));
    #[rustfmt::skip]
    let want = [
        (1 + 10 + 11 + 2) / 4, (2 + 3 + 12 + 13 + 2) / 4, (4 + 4 + 14 + 14 + 2) / 4, (4 + 4 + 14 + 14 + 2) / 4,
        (20 + 21 + 20 + 21 + 2) / 4, (22 + 23 + 22 + 23 + 2) / 4, (24 * 4 + 2) / 4, (24 * 4 + 2) / 4,
    ];
    assert_eq!(out.planes()[0], want);
    // Chroma 2x1 from 3x2 with 2x2 boxes; column 3 repeats column 2.
    assert_eq!(
        out.planes()[1],
        [(1 + 10 + 11 + 2) / 4, (2 + 2 + 12 + 12 + 2) / 4]
    );

    for (w, h, factor, ow, oh) in [
        (7, 5, 4, 2, 2),
        (9, 9, 4, 4, 4),
        (1, 3, 2, 2, 2),
        (3, 1, 1, 4, 2),
    ] {
        for layout in [Layout::Yuv422, Layout::Yuv420, Layout::Rgb] {
            let pic = picture(layout, w, h, 8, |p, x, y| {
                (p as u32 * 7 + x * 3 + y * 5) as u16
            });
            let out = med8k_av1::downscale_420(&pic, factor, 10).unwrap();
            assert_eq!(
                (out.width(), out.height()),
                (ow, oh),
                "{layout} {w}x{h}/{factor}"
            );
            assert_eq!(out.plane_dims(1), (ow / 2, oh / 2));
        }
    }
}

#[test]
fn bit_depth_conversion_rounds_half_up_and_clamps() {
    assert_eq!(med8k_av1::requantize(1, 10, 8), 0);
    assert_eq!(med8k_av1::requantize(2, 10, 8), 1);
    assert_eq!(med8k_av1::requantize(513, 10, 8), 128);
    assert_eq!(med8k_av1::requantize(514, 10, 8), 129);
    assert_eq!(med8k_av1::requantize(1021, 10, 8), 255);
    assert_eq!(med8k_av1::requantize(1023, 10, 8), 255, "256 clamps to 255");
    assert_eq!(med8k_av1::requantize(65535, 16, 10), 1023);
    assert_eq!(med8k_av1::requantize(255, 8, 10), 1020);
    assert_eq!(med8k_av1::requantize(700, 10, 10), 700);

    // Through the downscale: 10-bit samples straight to 8 bits.
    let values = [0u16, 1, 2, 513, 514, 1022, 1023, 400];
    let pic = picture(Layout::Yuv420, 8, 2, 10, |p, x, _| match p {
        0 => values[x as usize],
        _ => 512,
    });
    let out = med8k_av1::downscale_420(&pic, 1, 8).unwrap();
    assert_eq!(&out.planes()[0][..8], [0, 0, 1, 128, 129, 255, 255, 100]);
    // 12- and 16-bit input.
    let pic = picture(Layout::Yuv422, 2, 2, 16, |_, _, _| 65535);
    let out = med8k_av1::downscale_420(&pic, 1, 10).unwrap();
    assert!(out.planes().iter().flatten().all(|&v| v == 1023));
    let pic = picture(Layout::Yuv420, 2, 2, 12, |_, _, _| 2048);
    let out = med8k_av1::downscale_420(&pic, 2, 8).unwrap();
    assert!(out.planes().iter().flatten().all(|&v| v == 128));
}

#[test]
fn rgb_becomes_limited_range_bt709() {
    assert_eq!(
        med8k_av1::bt709_limited16([255; 3], 8),
        [60160, 32768, 32768]
    );
    assert_eq!(med8k_av1::bt709_limited16([0; 3], 8), [4096, 32768, 32768]);
    assert_eq!(
        med8k_av1::bt709_limited16([65535; 3], 16),
        [60160, 32768, 32768]
    );
    assert_eq!(
        med8k_av1::bt709_limited16([1023; 3], 10),
        [60160, 32768, 32768]
    );

    assert_eq!(rgb_pixel([255, 255, 255], 8, 8), [235, 128, 128]);
    assert_eq!(rgb_pixel([0, 0, 0], 8, 8), [16, 128, 128]);
    assert_eq!(rgb_pixel([128, 128, 128], 8, 8), [126, 128, 128]);
    // The textbook BT.709 values of the primaries.
    assert_eq!(rgb_pixel([255, 0, 0], 8, 8), [63, 102, 240]);
    assert_eq!(rgb_pixel([0, 255, 0], 8, 8), [173, 42, 26]);
    assert_eq!(rgb_pixel([0, 0, 255], 8, 8), [32, 240, 118]);
    // 10-bit output and deeper input.
    assert_eq!(rgb_pixel([255, 255, 255], 8, 10), [940, 512, 512]);
    assert_eq!(rgb_pixel([0, 0, 0], 8, 10), [64, 512, 512]);
    assert_eq!(rgb_pixel([4095, 4095, 4095], 12, 8), [235, 128, 128]);
    // Every grey is neutral.
    for v in (0..=255).step_by(17) {
        let [_, cb, cr] = rgb_pixel([v; 3], 8, 8);
        assert_eq!((cb, cr), (128, 128), "grey {v}");
    }

    // Chroma averages 2f x 2f boxes: left half red, right half blue.
    let pic = picture(Layout::Rgb, 4, 2, 8, |p, x, _| {
        let rgb = if x < 2 { [255, 0, 0] } else { [0, 0, 255] };
        rgb[p]
    });
    let out = med8k_av1::downscale_420(&pic, 1, 8).unwrap();
    assert_eq!(&out.planes()[0][..4], [63, 63, 32, 32]);
    assert_eq!(out.planes()[1], [102, 240]);
    assert_eq!(out.planes()[2], [240, 118]);
}

#[test]
fn downscale_rejects_what_it_does_not_convert() {
    let pic = picture(Layout::Yuv420, 4, 4, 8, |_, _, _| 0);
    assert!(matches!(
        med8k_av1::downscale_420(&pic, 3, 8),
        Err(Av1Error::Factor(3))
    ));
    assert!(matches!(
        med8k_av1::downscale_420(&pic, 0, 8),
        Err(Av1Error::Factor(0))
    ));
    assert!(matches!(
        med8k_av1::downscale_420(&pic, 2, 12),
        Err(Av1Error::OutputDepth(12))
    ));
    let gray = picture(Layout::Gray, 4, 4, 8, |_, _, _| 0);
    assert!(matches!(
        med8k_av1::downscale_420(&gray, 2, 8),
        Err(Av1Error::InputLayout(Layout::Gray))
    ));
    let shallow = picture(Layout::Yuv422, 4, 4, 6, |_, _, _| 0);
    assert!(matches!(
        med8k_av1::downscale_420(&shallow, 2, 8),
        Err(Av1Error::InputDepth(6))
    ));
    // Samples above the depth (possible through planes_mut) do not panic.
    let mut rgb = picture(Layout::Rgb, 4, 4, 8, |_, _, _| 0);
    rgb.planes_mut()[0][0] = u16::MAX;
    let mut yuv = picture(Layout::Yuv422, 4, 4, 10, |_, _, _| 0);
    yuv.planes_mut()[0].fill(u16::MAX);
    assert_eq!(
        med8k_av1::downscale_420(&rgb, 1, 8).unwrap().planes()[0][0],
        63
    );
    assert!(
        med8k_av1::downscale_420(&yuv, 4, 8).unwrap().planes()[0]
            .iter()
            .all(|&v| v == 255)
    );
}

// --- configuration and encoder ----------------------------------------------

fn config_field(r: Result<med8k_av1::Av1Encoder, Av1Error>) -> &'static str {
    match r {
        Err(Av1Error::Config { field, .. }) => field,
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn bad_settings_name_the_field_and_range() {
    let cfg = Av1Config::new(1000);
    let err = cfg
        .clone()
        .with_bitrate_kbps(0)
        .new_encoder(64, 64)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "bitrate_kbps = 0 is not allowed: expected 1..=2000000 kbit/s"
    );
    let cases = [
        (cfg.clone().with_bitrate_kbps(3_000_000), "bitrate_kbps"),
        (cfg.clone().with_speed(11), "speed"),
        (cfg.clone().with_tiles(3, 1), "tile_cols"),
        (cfg.clone().with_tiles(1, 0), "tile_rows"),
        (cfg.clone().with_tiles(128, 1), "tile_cols"),
        (cfg.clone().with_keyframe_interval(0), "keyframe_interval"),
        (cfg.clone().with_bit_depth(12), "bit_depth"),
        (cfg.clone().with_frame_rate(0, 1), "frame_rate"),
        (cfg.clone().with_frame_rate(60, 0), "frame_rate"),
        (cfg.clone().with_lookahead(Some(0)), "lookahead"),
    ];
    for (c, field) in cases {
        assert_eq!(config_field(c.new_encoder(64, 64)), field);
    }
    assert_eq!(config_field(cfg.new_encoder(8, 64)), "width");
    assert_eq!(config_field(cfg.new_encoder(64, 70_000)), "height");

    assert_eq!(LinkClass::Mbps150.link_kbps(), 150_000);
    assert_eq!(LinkClass::Mbps20.video_kbps(), 16_000);
    assert_eq!(Av1Config::for_link(LinkClass::Mbps40).bitrate_kbps, 32_000);
}

#[test]
fn encoder_can_move_to_a_pipeline_thread() {
    fn send<T: Send>() {}
    send::<med8k_av1::Av1Encoder>();
    send::<IvfWriter<std::fs::File>>();
}

#[test]
fn send_picture_refuses_the_wrong_layout_size_and_depth() {
    let mut enc = Av1Config::new(500).new_encoder(64, 48).unwrap();
    let yuv422 = picture(Layout::Yuv422, 64, 48, 8, |_, _, _| 128);
    assert!(matches!(
        enc.send_picture(&yuv422),
        Err(Av1Error::PictureLayout(Layout::Yuv422))
    ));
    let small = picture(Layout::Yuv420, 32, 48, 8, |_, _, _| 128);
    let err = enc.send_picture(&small).unwrap_err();
    assert!(matches!(err, Av1Error::PictureSize { got_width: 32, .. }));
    assert_eq!(
        err.to_string(),
        "picture is 32x48, the encoder was set up for 64x48"
    );
    let deep = picture(Layout::Yuv420, 64, 48, 10, |_, _, _| 512);
    assert!(matches!(
        enc.send_picture(&deep),
        Err(Av1Error::PictureDepth {
            expected: 8,
            got: 10
        })
    ));
    assert_eq!(enc.pictures_sent(), 0);
    assert!(enc.finish().unwrap().is_empty());
    let good = picture(Layout::Yuv420, 64, 48, 8, |_, _, _| 128);
    assert!(matches!(enc.send_picture(&good), Err(Av1Error::Finished)));
}

/// A moving diagonal gradient.
fn gradient(w: u32, h: u32, depth: u8, t: u32) -> Picture {
    let (levels, mid) = (1u32 << depth, 1u32 << (depth - 1));
    picture(Layout::Yuv420, w, h, depth, move |p, x, y| {
        let v = match p {
            0 => (x * 3 + y * 2 + t * 5) % levels,
            1 => mid + (x % 8),
            _ => mid - (y % 8),
        };
        v as u16
    })
}

#[test]
fn streaming_gives_every_frame_in_order_and_honours_keyframe_requests() {
    for depth in [8, 10] {
        let cfg = Av1Config::new(800)
            .with_bit_depth(depth)
            .with_tiles(1, 1)
            .with_lookahead(Some(2));
        let mut enc = cfg.new_encoder(96, 64).unwrap();
        let mut packets: Vec<Av1Packet> = Vec::new();
        for t in 0..8 {
            if t == 5 {
                enc.request_keyframe();
            }
            enc.send_picture(&gradient(96, 64, depth, t)).unwrap();
            // Never an error while rav1e waits for its lookahead.
            packets.extend(enc.receive_packets().unwrap());
        }
        assert!(packets.len() < 8, "the lookahead holds pictures back");
        packets.extend(enc.finish().unwrap());
        assert!(enc.finish().unwrap().is_empty());
        let frames: Vec<u64> = packets.iter().map(|p| p.frame).collect();
        assert_eq!(frames, (0..8).collect::<Vec<_>>());
        assert!(packets[0].keyframe);
        assert!(packets[5].keyframe, "requested key frame");
        assert!(!packets[1].keyframe);
        assert!(packets.iter().all(|p| !p.data.is_empty()));
        assert!(!enc.sequence_header().is_empty());
    }
}

// --- IVF ----------------------------------------------------------------------

#[test]
fn ivf_headers_are_laid_out_as_libvpx_writes_them() {
    let mut ivf = IvfWriter::new(Cursor::new(Vec::new()), 640, 360, (60000, 1001), 0).unwrap();
    ivf.write_frame(&[1, 2, 3], 0).unwrap();
    ivf.write_frame(&[4; 5], 1).unwrap();
    assert_eq!(ivf.frames(), 2);
    let bytes = ivf.finish().unwrap().into_inner();
    assert_eq!(bytes.len(), IVF_HEADER_LEN + 2 * IVF_FRAME_HEADER_LEN + 8);
    assert_eq!(&bytes[0..4], b"DKIF");
    assert_eq!(&bytes[4..8], [0, 0, 32, 0]);
    assert_eq!(&bytes[8..12], b"AV01");
    assert_eq!(&bytes[12..16], [128, 2, 104, 1]); // 640, 360
    assert_eq!(&bytes[16..24], [0x60, 0xea, 0, 0, 0xe9, 3, 0, 0]); // 60000, 1001
    assert_eq!(&bytes[24..32], [2, 0, 0, 0, 0, 0, 0, 0]); // count patched
    assert_eq!(
        &bytes[32..47],
        [3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3]
    );
    assert_eq!(&bytes[47..59], [5, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);

    // Without seeking the count stays as declared.
    let mut ivf = IvfWriter::new(Vec::new(), 16, 16, (30, 1), 7).unwrap();
    ivf.write_frame(&[9], 0).unwrap();
    let bytes = ivf.into_inner().unwrap();
    assert_eq!(&bytes[24..28], [7, 0, 0, 0]);

    // A header after other bytes is patched where it is.
    let mut cur = Cursor::new(vec![0xAA; 5]);
    cur.set_position(5);
    let mut ivf = IvfWriter::new(cur, 16, 16, (30, 1), 0).unwrap();
    ivf.write_frame(&[9], 0).unwrap();
    let bytes = ivf.finish().unwrap().into_inner();
    assert_eq!(&bytes[5 + 24..5 + 28], [1, 0, 0, 0]);

    assert!(matches!(
        IvfWriter::new(Vec::new(), 70_000, 16, (30, 1), 0),
        Err(Av1Error::IvfLimit { what: "width", .. })
    ));
    let dir = tempfile::tempdir().unwrap();
    assert!(matches!(
        med8k_av1::encode_to_ivf(
            std::iter::empty(),
            &Av1Config::new(100),
            &dir.path().join("x.ivf")
        ),
        Err(Av1Error::NoPictures)
    ));
    let missing = dir.path().join("no/such/dir/x.ivf");
    let err = med8k_av1::encode_to_ivf([gradient(64, 64, 8, 0)], &Av1Config::new(100), &missing)
        .unwrap_err();
    assert!(matches!(err, Av1Error::File { .. }));
    assert!(err.to_string().contains("x.ivf"), "{err}");
}

// --- a real round trip through GStreamer -------------------------------------

/// Decode an IVF file with GStreamer's `av1dec` into pictures.
fn decode_ivf(path: &Path, format: &str) -> Vec<Picture> {
    let mut source = GstSource::open_file(
        path,
        |loc| {
            format!(
                "filesrc location={loc} ! ivfparse ! av1parse ! av1dec ! videoconvert ! \
                 video/x-raw,format={format} ! appsink"
            )
        },
        SourceOptions::default(),
    )
    .unwrap();
    let mut out = Vec::new();
    while let Some(frame) = source.next_frame().unwrap() {
        out.push(Picture::from_frame(&frame).unwrap());
    }
    out
}

/// Mean luma PSNR in dB of `decoded` against `original`.
fn mean_luma_psnr(original: &[Picture], decoded: &[Picture]) -> f64 {
    let psnr: Vec<f64> = original
        .iter()
        .zip(decoded)
        .map(|(a, b)| {
            assert_eq!((a.width(), a.height()), (b.width(), b.height()));
            let peak = f64::from((1u32 << a.bit_depth()) - 1);
            let (ya, yb) = (&a.planes()[0], &b.planes()[0]);
            let mse = ya
                .iter()
                .zip(yb)
                .map(|(&p, &q)| (f64::from(p) - f64::from(q)).powi(2))
                .sum::<f64>()
                / ya.len() as f64;
            10.0 * (peak * peak / mse.max(1e-10)).log10()
        })
        .collect();
    psnr.iter().sum::<f64>() / psnr.len() as f64
}

/// Endoscope frames, 10-bit 4:2:2, as pictures.
fn endoscope(width: u32, height: u32, frames: u32) -> Vec<Picture> {
    let scene = EndoscopeScene::new(SceneConfig {
        width,
        height,
        frames,
        seed: 7,
    })
    .unwrap();
    let mut fb = FrameBuffers::new(&scene);
    (0..frames)
        .map(|i| {
            scene.render(i, &mut fb.planes()).unwrap();
            fb.clone().into_picture().unwrap()
        })
        .collect()
}

fn round_trip(
    source: &[Picture],
    out_depth: u8,
    kbps: u32,
    gst_format: &str,
) -> (med8k_av1::Av1Stats, f64) {
    let small: Vec<Picture> = source
        .iter()
        .map(|p| med8k_av1::downscale_420(p, 2, out_depth).unwrap())
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("clip.ivf");
    let cfg = Av1Config::new(kbps)
        .with_bit_depth(out_depth)
        .with_frame_rate(60, 1);
    let stats = med8k_av1::encode_to_ivf(small.iter().cloned(), &cfg, &path).unwrap();
    assert_eq!(stats.frames, small.len() as u64);
    assert_eq!(stats.keyframes, 1);
    let file_len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(
        file_len,
        (IVF_HEADER_LEN + small.len() * IVF_FRAME_HEADER_LEN) as u64 + stats.bytes
    );

    let decoded = decode_ivf(&path, gst_format);
    assert_eq!(decoded.len(), small.len(), "GStreamer decoded every frame");
    assert!(decoded.iter().all(|d| d.bit_depth() == out_depth));
    let psnr = mean_luma_psnr(&small, &decoded);
    eprintln!(
        "AV1 {}x{} {out_depth}-bit: {} frames, {} bytes, {:.0} kbit/s (target {kbps}), \
         {:.1} frames/s encoded, luma PSNR {psnr:.2} dB",
        small[0].width(),
        small[0].height(),
        stats.frames,
        stats.bytes,
        stats.kbps,
        stats.fps(),
    );
    (stats, psnr)
}

#[test]
fn endoscope_720p_downscaled_encodes_and_decodes_in_gstreamer() {
    let source = endoscope(1280, 720, 10);
    let (stats, psnr) = round_trip(&source, 8, 3000, "I420");
    assert!(psnr > 36.0, "PSNR {psnr:.2} dB");
    // Ten frames are mostly the key frame, so the rate is loose; it must
    // still be in the neighbourhood of the target.
    assert!(
        stats.kbps > 300.0 && stats.kbps < 12_000.0,
        "{:.0} kbit/s",
        stats.kbps
    );
}

#[test]
fn ten_bit_output_decodes_in_gstreamer() {
    let source = endoscope(640, 360, 4);
    let (_, psnr) = round_trip(&source, 10, 1500, "I420_10LE");
    assert!(psnr > 40.0, "PSNR {psnr:.2} dB");
}

/// Encoder throughput at the downscaled sizes of 8K (factor 4 and 2); run
/// with `cargo test --release -p med8k-av1 --test av1 -- --ignored --nocapture`.
#[test]
#[ignore = "throughput measurement, minutes on a small machine"]
fn throughput_at_1080p_and_2160p() {
    for (w, h, link) in [
        (1920, 1080, LinkClass::Mbps20),
        (3840, 2160, LinkClass::Mbps40),
    ] {
        let frames = 30;
        let source = endoscope(w, h, frames);
        let pictures: Vec<Picture> = source
            .iter()
            .map(|p| med8k_av1::downscale_420(p, 1, 8).unwrap())
            .collect();
        let dir = tempfile::tempdir().unwrap();
        let cfg = Av1Config::for_link(link);
        let t = Instant::now();
        let stats = med8k_av1::encode_to_ivf(pictures, &cfg, &dir.path().join("t.ivf")).unwrap();
        eprintln!(
            "{w}x{h} at {} kbit/s: {:.1} frames/s, {:.0} kbit/s achieved, {:?}",
            cfg.bitrate_kbps,
            stats.fps(),
            stats.kbps,
            t.elapsed()
        );
    }
}
