//! Pictures through files: round trips through every format, and hostile input.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};

use med8k_media::imageio::{
    FileKind, ImageIoError, RawFormat, RawFrames, RawSpec, RawSpecError, append_raw, append_raw_as,
    kind_for, raw_spec_for, read_picture, write_cube, write_picture,
};
use med8k_media::picture::{Layout, Picture, max_sample};
use med8k_media::spectral::{default_bands, envi};

/// A picture of deterministic noise covering the full range of `depth`, extremes included.
fn noise(layout: Layout, width: u32, height: u32, depth: u8, seed: u32) -> Picture {
    let max = u32::from(max_sample(depth));
    let mut k = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    let planes = (0..layout.plane_count())
        .map(|p| {
            let (w, h) = layout.plane_dims(p, width, height);
            (0..w * h)
                .map(|i| {
                    k = k.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                    match i {
                        0 => 0,
                        1 => max as u16,
                        _ => ((k >> 8) % (max + 1)) as u16,
                    }
                })
                .collect()
        })
        .collect();
    Picture::new(layout, width, height, depth, planes).unwrap()
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn spec(s: &str) -> RawSpec {
    s.parse().unwrap()
}

#[test]
fn png_round_trips_gray_rgb_rgba_at_every_png_depth() {
    let dir = tmp();
    let cases = [
        (Layout::Gray, 1),
        (Layout::Gray, 2),
        (Layout::Gray, 4),
        (Layout::Gray, 8),
        (Layout::Gray, 16),
        (Layout::Rgb, 8),
        (Layout::Rgb, 16),
        (Layout::Rgba, 8),
        (Layout::Rgba, 16),
    ];
    for (i, (layout, depth)) in cases.into_iter().enumerate() {
        let pic = noise(layout, 13, 7, depth, i as u32);
        let path = dir.path().join(format!("p{i}.png"));
        write_picture(&path, &pic).unwrap();
        assert_eq!(
            read_picture(&path, None).unwrap(),
            pic,
            "{layout} {depth}-bit"
        );
    }
}

#[test]
fn png_holds_10_bit_values_unscaled_in_16_bits_big_endian() {
    let dir = tmp();
    let path = dir.path().join("ten.png");
    let pic = noise(Layout::Rgb, 5, 3, 10, 7);
    write_picture(&path, &pic).unwrap();

    // What any PNG reader sees: 16-bit RGB with the same values.
    let file = std::io::BufReader::new(std::fs::File::open(&path).unwrap());
    let mut reader = png::Decoder::new(file).read_info().unwrap();
    assert_eq!(reader.info().bit_depth, png::BitDepth::Sixteen);
    assert_eq!(reader.info().color_type, png::ColorType::Rgb);
    let mut buf = vec![0; reader.output_buffer_size().unwrap()];
    reader.next_frame(&mut buf).unwrap();
    let g1 = u16::from_be_bytes([buf[8], buf[9]]); // pixel 1, green
    assert_eq!(g1, pic.planes()[1][1]);

    let back = read_picture(&path, None).unwrap();
    assert_eq!(back.bit_depth(), 16);
    assert_eq!(back.planes(), pic.planes());
}

#[test]
fn png_palette_is_expanded_to_rgb() {
    let dir = tmp();
    let path = dir.path().join("pal.png");
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, 3, 2);
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(png::BitDepth::Eight);
    enc.set_palette(vec![10, 20, 30, 200, 100, 0, 1, 2, 255]);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&[0, 1, 2, 2, 1, 0]).unwrap();
    w.finish().unwrap();
    std::fs::write(&path, out).unwrap();

    let pic = read_picture(&path, None).unwrap();
    assert_eq!((pic.layout(), pic.bit_depth()), (Layout::Rgb, 8));
    assert_eq!(pic.planes()[0], [10, 200, 1, 1, 200, 10]);
    assert_eq!(pic.planes()[1], [20, 100, 2, 2, 100, 20]);
    assert_eq!(pic.planes()[2], [30, 0, 255, 255, 0, 30]);
}

#[test]
fn png_gray_alpha_and_truncated_files_are_errors() {
    let dir = tmp();
    let ga = dir.path().join("ga.png");
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, 2, 1);
    enc.set_color(png::ColorType::GrayscaleAlpha);
    let mut w = enc.write_header().unwrap();
    w.write_image_data(&[1, 2, 3, 4]).unwrap();
    w.finish().unwrap();
    std::fs::write(&ga, out).unwrap();
    let err = read_picture(&ga, None).unwrap_err();
    assert!(matches!(err, ImageIoError::Unsupported { .. }), "{err}");
    assert!(err.to_string().contains("gray+alpha"), "{err}");

    let good = dir.path().join("good.png");
    write_picture(&good, &noise(Layout::Rgb, 64, 64, 8, 1)).unwrap();
    let bytes = std::fs::read(&good).unwrap();
    for cut in [0, 7, 20, 40, bytes.len() / 2, bytes.len() - 13] {
        let path = dir.path().join(format!("cut{cut}.png"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let err = read_picture(&path, None).unwrap_err();
        assert!(err.to_string().contains(&format!("cut{cut}.png")), "{err}");
    }
}

#[test]
fn png_claiming_more_than_2_30_samples_is_refused_before_decoding() {
    let dir = tmp();
    let path = dir.path().join("huge.png");
    write_picture(&path, &noise(Layout::Rgba, 4, 4, 8, 2)).unwrap();
    let mut bytes = std::fs::read(&path).unwrap();
    // IHDR: length at 8, type at 12, width at 16, height at 20, CRC over type and data at 29.
    bytes[16..20].copy_from_slice(&40_000u32.to_be_bytes());
    bytes[20..24].copy_from_slice(&40_000u32.to_be_bytes());
    let crc = crc32fast::hash(&bytes[12..29]);
    bytes[29..33].copy_from_slice(&crc.to_be_bytes());
    std::fs::write(&path, bytes).unwrap();
    let err = read_picture(&path, None).unwrap_err();
    assert!(
        matches!(
            err,
            ImageIoError::TooLarge {
                width: 40_000,
                samples: 6_400_000_000,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn png_refuses_layouts_it_cannot_hold() {
    let dir = tmp();
    let pic = noise(Layout::Yuv420, 4, 4, 8, 1);
    let err = write_picture(&dir.path().join("x.png"), &pic).unwrap_err();
    assert!(err.to_string().contains("yuv420"), "{err}");
}

#[test]
fn pnm_round_trips_at_8_10_and_16_bits() {
    let dir = tmp();
    for (layout, ext, magic) in [(Layout::Gray, "pgm", "P5"), (Layout::Rgb, "ppm", "P6")] {
        for depth in [8, 10, 16] {
            let pic = noise(layout, 11, 5, depth, u32::from(depth));
            let path = dir.path().join(format!("p{depth}.{ext}"));
            write_picture(&path, &pic).unwrap();
            let bytes = std::fs::read(&path).unwrap();
            let header = format!("{magic}\n11 5\n{}\n", max_sample(depth));
            assert!(bytes.starts_with(header.as_bytes()));
            let bps = if depth > 8 { 2 } else { 1 };
            assert_eq!(bytes.len(), header.len() + 55 * layout.plane_count() * bps);
            if depth > 8 {
                // Big-endian: the first sample of the second pixel, red or gray.
                let at = header.len() + layout.plane_count() * 2;
                let v = u16::from_be_bytes([bytes[at], bytes[at + 1]]);
                assert_eq!(v, pic.planes()[0][1]);
            }
            assert_eq!(read_picture(&path, None).unwrap(), pic, "{ext} {depth}");
        }
    }
}

#[test]
fn pnm_header_comments_and_maxval_bit_depth() {
    let dir = tmp();
    let path = dir.path().join("c.pgm");
    let mut bytes = b"P5 # a comment\n# another\n2 # w then h\n2\n1000\n".to_vec();
    for v in [0u16, 1000, 513, 7] {
        bytes.extend(v.to_be_bytes());
    }
    std::fs::write(&path, bytes).unwrap();
    let pic = read_picture(&path, None).unwrap();
    assert_eq!(
        (pic.layout(), pic.width(), pic.height()),
        (Layout::Gray, 2, 2)
    );
    assert_eq!(pic.bit_depth(), 10);
    assert_eq!(pic.planes()[0], [0, 1000, 513, 7]);

    let one = dir.path().join("one.pgm");
    std::fs::write(&one, b"P5\n3 1\n1\n\x00\x01\x01").unwrap();
    let pic = read_picture(&one, None).unwrap();
    assert_eq!(
        (pic.bit_depth(), pic.planes()[0].as_slice()),
        (1, &[0, 1, 1][..])
    );
}

#[test]
fn hostile_pnm_files_are_errors() {
    let dir = tmp();
    let cases: [(&str, &[u8], &str); 10] = [
        ("lying.ppm", b"P6\n100 100\n255\n\x01\x02\x03", "truncated"),
        (
            "short16.pgm",
            b"P5\n2 2\n65535\n\x00\x01\x00\x02\x00\x03",
            "truncated",
        ),
        ("plain.pgm", b"P2\n2 1\n255\n1 2\n", "P2 is not supported"),
        ("bits.pnm", b"P4\n8 1\n\xff", "P4 is not supported"),
        ("pam.pnm", b"P7\nWIDTH 1\n", "P7 is not supported"),
        ("maxval.pgm", b"P5\n1 1\n70000\n\x00\x00", "maxval 70000"),
        ("zero.pgm", b"P5\n0 4\n255\n", "empty"),
        ("junk.ppm", b"GIF89a", "not a PNM"),
        ("huge.pgm", b"P5\n100000 100000\n255\n\x00", "more than"),
        ("nodata.pgm", b"P5\n4 4\n255", "no whitespace"),
    ];
    for (name, bytes, want) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let err = read_picture(&path, None).unwrap_err().to_string();
        assert!(err.contains(want) && err.contains(name), "{name}: {err}");
    }
    // A sample above maxval's bit depth.
    let path = dir.path().join("range.pgm");
    std::fs::write(&path, b"P5\n1 1\n100\n\xc8").unwrap();
    assert!(matches!(
        read_picture(&path, None),
        Err(ImageIoError::Picture { .. })
    ));
    // Layout and extension must agree.
    let err = write_picture(&dir.path().join("g.ppm"), &noise(Layout::Gray, 2, 2, 8, 0));
    assert!(matches!(err, Err(ImageIoError::Unsupported { .. })));
}

#[test]
fn raw_round_trips_every_format_at_even_and_odd_sizes() {
    let dir = tmp();
    for format in RawFormat::ALL {
        for (w, h) in [(14, 6), (13, 5), (50, 3)] {
            let pic = noise(format.layout(), w, h, format.bit_depth(), w + h);
            let spec = RawSpec::new(w, h, format).unwrap();
            let mut bytes = Vec::new();
            append_raw_as(&mut bytes, &pic, format).unwrap();
            assert_eq!(bytes.len() as u64, spec.frame_bytes(), "{spec}");
            let path = dir.path().join(format!("f.{format}"));
            std::fs::write(&path, &bytes).unwrap();
            let back = read_picture(&path, Some(spec)).unwrap();
            assert_eq!(back, pic, "{spec}");
        }
    }
}

#[test]
fn raw_byte_layouts_match_their_names() {
    let pic = noise(Layout::Yuv422, 14, 2, 10, 3);
    let mut i422 = Vec::new();
    append_raw_as(&mut i422, &pic, RawFormat::I422_10).unwrap();
    let le = |b: &[u8], i: usize| u16::from_le_bytes([b[2 * i], b[2 * i + 1]]);
    assert_eq!(le(&i422, 1), pic.planes()[0][1]);
    assert_eq!(le(&i422, 28), pic.planes()[1][0]); // Cb follows 14x2 Y
    assert_eq!(le(&i422, 28 + 14), pic.planes()[2][0]); // Cr follows 7x2 Cb

    let mut v210 = Vec::new();
    append_raw_as(&mut v210, &pic, RawFormat::V210).unwrap();
    assert_eq!(v210.len(), 2 * 128);
    let word0 = u32::from_le_bytes(v210[..4].try_into().unwrap());
    let [y, cb, cr] = [0, 1, 2].map(|p| u32::from(pic.planes()[p][0]));
    assert_eq!(word0, cb | y << 10 | cr << 20);

    let rgb = noise(Layout::Rgb, 3, 1, 16, 4);
    let mut bytes = Vec::new();
    append_raw(&mut bytes, &rgb).unwrap();
    assert_eq!(le(&bytes, 1), rgb.planes()[1][0]); // R0 G0 B0 R1 ...
    assert_eq!(le(&bytes, 3), rgb.planes()[0][1]);
}

#[test]
fn raw_spec_for_names_the_natural_format_and_write_picture_uses_it() {
    let dir = tmp();
    let cases = [
        (Layout::Gray, 8, "GRAY8"),
        (Layout::Gray, 10, "GRAY10_LE"),
        (Layout::Gray, 12, "GRAY16_LE"),
        (Layout::Rgb, 8, "RGB"),
        (Layout::Rgb, 16, "RGB48_LE"),
        (Layout::Rgba, 8, "RGBA"),
        (Layout::Rgba, 16, "RGBA64_LE"),
        (Layout::Yuv420, 8, "I420"),
        (Layout::Yuv420, 10, "I420_10LE"),
        (Layout::Yuv422, 10, "I422_10LE"),
    ];
    for (layout, depth, name) in cases {
        let pic = noise(layout, 9, 4, depth, 11);
        let spec = raw_spec_for(&pic).unwrap();
        assert_eq!(spec.to_string(), format!("9x4:{name}"));
        let path = dir.path().join(format!("{name}.yuv"));
        write_picture(&path, &pic).unwrap();
        let back = read_picture(&path, Some(spec.to_string().parse().unwrap())).unwrap();
        assert_eq!(back.planes(), pic.planes(), "{name}");
    }
    for pic in [
        noise(Layout::Yuv422, 4, 2, 12, 0),
        noise(Layout::Bands(3), 4, 2, 16, 0),
    ] {
        assert!(matches!(
            raw_spec_for(&pic),
            Err(ImageIoError::NoRawFormat { .. })
        ));
        assert!(write_picture(&dir.path().join("x.yuv"), &pic).is_err());
    }
    let deep = noise(Layout::Gray, 2, 2, 12, 0);
    let err = append_raw_as(&mut Vec::new(), &deep, RawFormat::Gray10).unwrap_err();
    assert!(matches!(err, ImageIoError::RawMismatch { .. }), "{err}");
}

#[test]
fn raw_frames_reads_every_frame_then_names_a_partial_tail() {
    let dir = tmp();
    let path = dir.path().join("clip.yuv");
    let spec = spec("14x6:I420_10LE");
    let frames: Vec<Picture> = (0..3)
        .map(|i| noise(Layout::Yuv420, 14, 6, 10, i))
        .collect();
    let mut bytes = Vec::new();
    for f in &frames {
        append_raw(&mut bytes, f).unwrap();
    }
    std::fs::write(&path, &bytes).unwrap();
    let all: Vec<Picture> = RawFrames::open(&path, spec)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(all, frames);

    bytes.extend([1u8; 10]);
    std::fs::write(&path, &bytes).unwrap();
    let mut reader = RawFrames::open(&path, spec).unwrap();
    for f in &frames {
        assert_eq!(reader.next_picture().unwrap().as_ref(), Some(f));
    }
    let err = reader.next_picture().unwrap_err();
    assert!(
        matches!(
            err,
            ImageIoError::PartialFrame {
                frame: 3,
                got: 10,
                need: 252,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("clip.yuv"), "{err}");
    assert!(reader.next_picture().unwrap().is_none());
}

#[test]
fn raw_files_shorter_than_a_frame_are_errors() {
    let dir = tmp();
    let path = dir.path().join("short.raw");
    std::fs::write(&path, [0u8; 100]).unwrap();
    let err = read_picture(&path, Some(spec("14x6:RGB"))).unwrap_err();
    assert!(
        matches!(
            err,
            ImageIoError::PartialFrame {
                got: 100,
                need: 252,
                ..
            }
        ),
        "{err}"
    );
    std::fs::write(&path, []).unwrap();
    let err = read_picture(&path, Some(spec("14x6:RGB"))).unwrap_err();
    assert!(
        matches!(err, ImageIoError::Truncated { got: 0, .. }),
        "{err}"
    );
    // 10-bit containers holding more than 10 bits.
    std::fs::write(&path, [0xff; 4]).unwrap();
    let err = read_picture(&path, Some(spec("2x1:GRAY10LE"))).unwrap_err();
    assert!(matches!(err, ImageIoError::Picture { .. }), "{err}");
}

#[test]
fn raw_spec_strings_parse_case_insensitively_and_refuse_nonsense() {
    let s = spec("7680x4320:I422_10LE");
    assert_eq!(
        (s.width, s.height, s.format),
        (7680, 4320, RawFormat::I422_10)
    );
    assert_eq!(s.frame_bytes(), 7680 * 4320 * 4);
    assert_eq!(spec(" 8X2:i420_10le ").format, RawFormat::I420_10);
    assert_eq!(spec("8x2:gray16le").format, RawFormat::Gray16);
    assert_eq!(spec("8x2:GRAY10LE").format, RawFormat::Gray10);
    assert_eq!(spec("8x2:rgb48le").format, RawFormat::Rgb16);
    assert_eq!(spec("8x2:yuv422p10le").format, RawFormat::I422_10);
    assert_eq!(spec("8x2:V210").format, RawFormat::V210);
    assert_eq!(spec("1920x2:v210").frame_bytes(), 2 * 5120);
    for f in RawFormat::ALL {
        let s = RawSpec::new(3, 2, f).unwrap();
        assert_eq!(s.to_string().parse::<RawSpec>(), Ok(s));
        assert_eq!(
            (f.layout().plane_count() > 0, f.bit_depth() >= 8),
            (true, true)
        );
    }

    let bad = |s: &str| s.parse::<RawSpec>().unwrap_err();
    let err = bad("7680x4320:NV12");
    assert_eq!(err, RawSpecError::Format("NV12".into()));
    let msg = err.to_string();
    assert!(msg.contains("`NV12`") && msg.contains("I422_10LE") && msg.contains("v210"));
    assert!(matches!(bad("7680x4320"), RawSpecError::Syntax(_)));
    assert!(matches!(bad("7680:RGB"), RawSpecError::Syntax(_)));
    assert!(bad("axb:RGB").to_string().contains("width `a`"));
    assert!(bad("8x-1:RGB").to_string().contains("height `-1`"));
    assert!(bad("0x8:RGB").to_string().contains("empty"));
    assert!(bad("65536x65536:RGBA").to_string().contains("more than"));
    assert!(bad("20000x2:v210").to_string().contains("v210"));
}

#[test]
fn kind_for_goes_by_extension_and_asks_for_a_raw_format() {
    let dir = tmp();
    let p = |name: &str| dir.path().join(name);
    assert_eq!(kind_for(&p("a.PNG"), None).unwrap(), FileKind::Png);
    for name in ["a.ppm", "a.pgm", "a.pnm"] {
        assert_eq!(kind_for(&p(name), None).unwrap(), FileKind::Pnm);
    }
    assert_eq!(kind_for(&p("c.hdr"), None).unwrap(), FileKind::Envi);
    let s = spec("4x4:I420");
    assert_eq!(kind_for(&p("v.yuv"), Some(s)).unwrap(), FileKind::Raw(s));
    let err = kind_for(&p("v.yuv"), None).unwrap_err().to_string();
    assert!(
        err.contains("--format WxH:FORMAT") && err.contains("v.yuv"),
        "{err}"
    );
    assert!(kind_for(&p("a.png"), Some(s)).is_err());

    // A .raw is ENVI when its header is beside it, raw when a format is given.
    std::fs::write(p("c.raw"), [0u8; 4]).unwrap();
    assert!(kind_for(&p("c.raw"), None).is_err());
    std::fs::write(p("c.hdr"), "ENVI\n").unwrap();
    assert_eq!(kind_for(&p("c.raw"), None).unwrap(), FileKind::Envi);
    assert_eq!(kind_for(&p("c.raw"), Some(s)).unwrap(), FileKind::Raw(s));
}

#[test]
fn envi_round_trips_a_7_band_cube() {
    let dir = tmp();
    let pic = noise(Layout::Bands(7), 9, 5, 16, 5);
    let hdr = dir.path().join("cube.hdr");
    write_picture(&hdr, &pic).unwrap();
    assert_eq!(read_picture(&hdr, None).unwrap(), pic);
    assert_eq!(
        read_picture(&dir.path().join("cube.raw"), None).unwrap(),
        pic
    );
    let text = std::fs::read_to_string(&hdr).unwrap();
    assert!(
        text.contains("bands = 7") && !text.contains("wavelength"),
        "{text}"
    );

    let named: PathBuf = dir.path().join("named.hdr");
    write_cube(&named, &pic, Some(&default_bands())).unwrap();
    let cube = envi::read(&named).unwrap();
    assert_eq!(cube.bands(), default_bands().as_slice());
    assert_eq!(cube.data()[[6, 4, 8]], pic.planes()[6][4 * 9 + 8]);

    let err = write_cube(&named, &pic, Some(&default_bands()[..3])).unwrap_err();
    assert!(matches!(err, ImageIoError::Cube { .. }), "{err}");
    let err = write_picture(&named, &noise(Layout::Rgb, 2, 2, 8, 0)).unwrap_err();
    assert!(err.to_string().contains("spectral bands"), "{err}");
}

#[test]
fn missing_files_name_the_path() {
    let path = Path::new("/nonexistent/med8k/x.png");
    let err = read_picture(path, None).unwrap_err();
    assert!(matches!(err, ImageIoError::Io { .. }));
    assert_eq!(err.to_string(), "/nonexistent/med8k/x.png");
    assert!(std::error::Error::source(&err).is_some());
}
