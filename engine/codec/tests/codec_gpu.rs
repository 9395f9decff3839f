//! The GPU kernels against the CPU twin: same bytes out of the encoder, same
//! picture out of the decoder. Runs on Mesa's lavapipe where there is no GPU.
#![allow(clippy::unwrap_used)]

#[path = "../../gpu/tests/support/mod.rs"]
mod gpu_support;

use std::sync::Arc;

use gpu_support::{Content, context, picture};
use med8k_codec::Config;
use med8k_codec::gpu::{GpuDecoder, GpuEncoder};
use med8k_gpu::GpuContext;
use med8k_media::picture::{Layout, Picture};

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
    let mut enc = config
        .new_encoder_with(Box::new(GpuEncoder::new(ctx.clone())))
        .unwrap();
    let mut dec = GpuDecoder::new(ctx.clone());
    check(
        &ctx,
        &mut enc,
        &mut dec,
        &config,
        &pic,
        "8K 4:2:2 10-bit endoscope frame",
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
