//! The GPU downscale against its CPU twin, `med8k_av1::downscale_420`: the same
//! picture bit for bit, and the same errors. Runs on Mesa's lavapipe where
//! there is no GPU.
#![allow(clippy::unwrap_used)]

#[path = "../../gpu/tests/support/mod.rs"]
mod gpu_support;

use gpu_support::{Content, Rng, context, picture};
use med8k_av1::Av1Error;
use med8k_av1::gpu::GpuDownscaler;
use med8k_media::picture::{Layout, Picture};

/// Downscale on both and insist on identical pictures, naming the first
/// differing sample.
fn check(down: &mut GpuDownscaler, pic: &Picture, factor: u32, out_depth: u8, what: &str) {
    let cpu = med8k_av1::downscale_420(pic, factor, out_depth).unwrap();
    let gpu = down.downscale_420(pic, factor, out_depth).unwrap();
    let what = format!(
        "{what}: {} {}x{} {}-bit, factor {factor}, {out_depth}-bit out, {} stripe(s)",
        pic.layout(),
        pic.width(),
        pic.height(),
        pic.bit_depth(),
        down.stripes()
    );
    assert_eq!(
        (gpu.layout(), gpu.width(), gpu.height(), gpu.bit_depth()),
        (cpu.layout(), cpu.width(), cpu.height(), cpu.bit_depth()),
        "{what}: shape"
    );
    for (p, (g, c)) in gpu.planes().iter().zip(cpu.planes()).enumerate() {
        if let Some(i) = g.iter().zip(c).position(|(a, b)| a != b) {
            let (w, _) = cpu.plane_dims(p);
            panic!(
                "{what}: plane {p} differs first at ({}, {}): GPU {} CPU {}",
                i as u32 % w,
                i as u32 / w,
                g[i],
                c[i]
            );
        }
    }
}

const LAYOUTS: [Layout; 3] = [Layout::Yuv422, Layout::Yuv420, Layout::Rgb];

#[test]
fn every_layout_depth_factor_and_odd_size_matches_the_twin() {
    let Some(ctx) = context() else { return };
    let mut down = GpuDownscaler::new(ctx).unwrap();
    let mut seed = 0;
    let sizes = [
        (33, 17, Content::Random),
        (1, 1, Content::Random),
        (70, 37, Content::Extremes),
    ];
    for layout in LAYOUTS {
        for depth in [8u8, 10, 12, 16] {
            for (w, h, content) in sizes {
                seed += 1;
                let pic = picture(layout, w, h, depth, content, seed);
                for factor in [1, 2, 4] {
                    for out_depth in [8, 10] {
                        check(&mut down, &pic, factor, out_depth, &format!("{content:?}"));
                    }
                }
            }
        }
    }
}

#[test]
fn every_in_between_depth_matches_the_twin() {
    let Some(ctx) = context() else { return };
    let mut down = GpuDownscaler::new(ctx).unwrap();
    for layout in LAYOUTS {
        for depth in 8u8..=16 {
            let pic = picture(layout, 23, 11, depth, Content::Random, u64::from(depth));
            check(&mut down, &pic, 2, 10, "random");
            check(&mut down, &pic, 1, 8, "random");
        }
    }
}

#[test]
fn flat_extremes_match_the_twin() {
    let Some(ctx) = context() else { return };
    let mut down = GpuDownscaler::new(ctx).unwrap();
    for layout in LAYOUTS {
        for depth in [8u8, 10, 12, 16] {
            let max = ((1u32 << depth) - 1) as u16;
            for v in [0, max] {
                let mut pic = Picture::zeroed(layout, 9, 7, depth).unwrap();
                for plane in pic.planes_mut() {
                    plane.fill(v);
                }
                for factor in [1, 2, 4] {
                    for out_depth in [8, 10] {
                        check(&mut down, &pic, factor, out_depth, &format!("all {v}"));
                    }
                }
            }
        }
    }
}

/// Samples above the depth's maximum (possible through `planes_mut`) clamp
/// the same way on both.
#[test]
fn samples_above_the_depth_match_the_twin() {
    let Some(ctx) = context() else { return };
    let mut down = GpuDownscaler::new(ctx).unwrap();
    for layout in LAYOUTS {
        for depth in [8u8, 10, 12] {
            let mut pic = picture(layout, 19, 13, depth, Content::Random, 7);
            let mut rng = Rng(99);
            for plane in pic.planes_mut() {
                for v in plane.iter_mut() {
                    if rng.next().is_multiple_of(3) {
                        *v = (rng.next() as u16) | 0x8000;
                    }
                }
            }
            for factor in [1, 2, 4] {
                for out_depth in [8, 10] {
                    check(&mut down, &pic, factor, out_depth, "above range");
                }
            }
        }
    }
}

/// Small stripe buffers force many stripes, the last one short and reaching
/// past the bottom edge: the output is the same as in one piece.
#[test]
fn striped_pictures_match_the_twin() {
    let Some(ctx) = context() else { return };
    let mut seed = 100;
    for (limit, w, h) in [(8192, 101, 77), (6000, 64, 130), (1600, 31, 9)] {
        let mut down = GpuDownscaler::new(ctx.clone())
            .unwrap()
            .with_max_stripe_bytes(limit);
        for layout in LAYOUTS {
            for depth in [10u8, 16] {
                seed += 1;
                let pic = picture(layout, w, h, depth, Content::Random, seed);
                for factor in [1, 2, 4] {
                    check(&mut down, &pic, factor, 8, "striped");
                    let bytes = 2 * pic.samples() as u64;
                    assert!(
                        down.stripes() > 1 || bytes <= limit,
                        "{layout} {w}x{h} factor {factor}: {bytes} bytes in one stripe, limit {limit}"
                    );
                }
            }
        }
    }
}

/// The plan is kept across frames of one shape and rebuilt when the shape
/// changes; no frame sees another's samples.
#[test]
fn consecutive_frames_and_shape_changes_match_the_twin() {
    let Some(ctx) = context() else { return };
    let mut down = GpuDownscaler::new(ctx).unwrap().with_max_stripe_bytes(2048);
    let shapes = [
        (Layout::Yuv422, 45, 29, 10u8),
        (Layout::Yuv422, 45, 29, 10),
        (Layout::Rgb, 45, 29, 8),
        (Layout::Yuv420, 16, 16, 12),
        (Layout::Yuv420, 16, 16, 12),
        (Layout::Yuv422, 45, 29, 10),
    ];
    for (i, (layout, w, h, depth)) in shapes.into_iter().enumerate() {
        let pic = picture(layout, w, h, depth, Content::Random, 1000 + i as u64);
        check(&mut down, &pic, 2, 8, &format!("frame {i}"));
    }
}

#[test]
fn bad_arguments_give_the_twins_errors() {
    let Some(ctx) = context() else { return };
    let mut down = GpuDownscaler::new(ctx).unwrap();
    let yuv = Picture::zeroed(Layout::Yuv422, 8, 8, 10).unwrap();
    let cases = [
        (yuv.clone(), 3, 8),
        (yuv.clone(), 0, 8),
        (yuv.clone(), 2, 12),
        (yuv, 8, 9),
        (Picture::zeroed(Layout::Yuv420, 8, 8, 7).unwrap(), 2, 8),
        (Picture::zeroed(Layout::Gray, 8, 8, 8).unwrap(), 2, 8),
        (Picture::zeroed(Layout::Rgba, 8, 8, 8).unwrap(), 2, 8),
        (Picture::zeroed(Layout::Bands(3), 8, 8, 16).unwrap(), 2, 8),
        (Picture::zeroed(Layout::Rgba, 8, 8, 4).unwrap(), 2, 8),
    ];
    for (pic, factor, out_depth) in cases {
        let cpu = med8k_av1::downscale_420(&pic, factor, out_depth).unwrap_err();
        let gpu = down.downscale_420(&pic, factor, out_depth).unwrap_err();
        assert!(
            !matches!(gpu, Av1Error::Gpu(_)),
            "{}: GPU error {gpu}",
            pic.layout()
        );
        assert_eq!(gpu.to_string(), cpu.to_string());
    }
}

/// The size the AV1 path exists for: an 8K 4:2:2 10-bit frame to 4K and
/// to 1080p.
#[test]
fn an_8k_422_10bit_frame_matches_the_twin() {
    let Some(ctx) = context() else { return };
    let mut down = GpuDownscaler::new(ctx).unwrap();
    let pic = picture(Layout::Yuv422, 7680, 4320, 10, Content::Random, 8);
    check(&mut down, &pic, 2, 8, "8K");
    check(&mut down, &pic, 4, 10, "8K");
}

/// The largest input there is: 8K 16-bit RGB, about 199 MB of samples, more
/// than lavapipe's 128 MiB storage bindings, so it goes through in stripes
/// there (and in one piece where bindings are larger).
#[test]
fn an_8k_16bit_rgb_frame_fits_the_device_and_matches_the_twin() {
    let Some(ctx) = context() else { return };
    let limit = ctx.device.limits().max_storage_buffer_binding_size;
    let mut down = GpuDownscaler::new(ctx).unwrap();
    let pic = picture(Layout::Rgb, 7680, 4320, 16, Content::Random, 9);
    check(&mut down, &pic, 4, 8, "8K RGB");
    let bytes = 2 * pic.samples() as u64;
    assert!(
        down.stripes() > 1 || bytes <= limit,
        "{bytes} bytes went in one stripe past a {limit}-byte binding limit"
    );
}
