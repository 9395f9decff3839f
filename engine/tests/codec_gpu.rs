//! The GPU kernels against the CPU twin: same bytes out of the encoder, same
//! picture out of the decoder. Runs on Mesa's lavapipe where there is no GPU.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use med8k_engine::codec::gpu::{GpuContext, GpuDecoder, GpuEncoder};
use med8k_engine::codec::{self, Config};
use med8k_engine::picture::{Layout, Picture};

fn context() -> Option<Arc<GpuContext>> {
    match GpuContext::new() {
        Ok(c) => {
            eprintln!("GPU: {}", c.describe());
            Some(c)
        }
        Err(e) => {
            assert!(
                std::env::var_os("MED8K_REQUIRE_GPU").is_none(),
                "MED8K_REQUIRE_GPU is set but there is no adapter: {e}"
            );
            eprintln!("SKIPPED: no GPU adapter ({e}); install mesa-vulkan-drivers for lavapipe");
            None
        }
    }
}

struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
}

#[derive(Clone, Copy, Debug)]
enum Content {
    Random,
    Extremes,
    Smooth,
}

fn picture(layout: Layout, w: u32, h: u32, depth: u8, content: Content, seed: u64) -> Picture {
    let mut rng = Rng(seed);
    let max = (1u32 << depth) - 1;
    let planes = (0..layout.plane_count())
        .map(|p| {
            let (pw, ph) = layout.plane_dims(p, w, h);
            (0..pw * ph)
                .map(|i| {
                    let (x, y) = (i % pw, i / pw);
                    let v = match content {
                        Content::Random => rng.next() & max,
                        Content::Extremes => {
                            if (x / 3 + y / 2 + p as u32).is_multiple_of(2) {
                                max
                            } else {
                                0
                            }
                        }
                        Content::Smooth => {
                            let base = (x * 7 + y * 5 + p as u32 * 40) % (max + 1);
                            (base + (rng.next() & 3)).min(max)
                        }
                    };
                    v as u16
                })
                .collect()
        })
        .collect();
    Picture::new(layout, w, h, depth, planes).unwrap()
}

fn check(
    ctx: &Arc<GpuContext>,
    enc_gpu: &mut codec::Encoder,
    dec_gpu: &mut GpuDecoder,
    config: &Config,
    pic: &Picture,
    what: &str,
) {
    let cpu = config.new_encoder().unwrap().encode(pic).unwrap();
    let gpu = enc_gpu.encode(pic).unwrap();
    assert!(
        cpu.data == gpu.data,
        "{what}: GPU stream ({} bytes) differs from the CPU twin's ({} bytes) on {}",
        gpu.data.len(),
        cpu.data.len(),
        ctx.describe()
    );
    let from_cpu = codec::decode(&cpu.data).unwrap();
    let from_gpu = dec_gpu.decode(&gpu.data, u64::MAX).unwrap();
    assert!(
        from_cpu == from_gpu,
        "{what}: GPU decode differs from the CPU decode"
    );
    if config.mode == codec::Mode::Lossless {
        assert!(
            &from_gpu == pic,
            "{what}: lossless decode is not the original"
        );
    }
}

#[test]
fn gpu_matches_the_twin_on_every_layout_depth_and_odd_sizes() {
    let Some(ctx) = context() else { return };
    let mut dec = GpuDecoder::new(ctx.clone());
    let mut seed = 1;
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
                    check(&ctx, &mut enc, &mut dec, &config, &pic, &what);
                }
            }
        }
    }
}

#[test]
fn gpu_matches_the_twin_on_a_real_8k_frame() {
    use med8k_engine::samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};
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
}
