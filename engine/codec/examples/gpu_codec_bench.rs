//! GPU codec throughput on a real 8K 4:2:2 10-bit endoscope frame, against
//! the CPU twin in the same run. Built here, run where the GPU is:
//! `cargo build --release -p med8k-codec --example gpu_codec_bench`
//! then `target/release/examples/gpu_codec_bench [frames]`.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use med8k_codec::gpu::{GpuDecoder, GpuEncoder};
use med8k_codec::{Config, EncodeBackend};
use med8k_gpu::GpuContext;
use med8k_samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let runs: usize = std::env::args().nth(1).map_or(30, |s| s.parse().unwrap());
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
    let mpx = f64::from(w * h) / 1e6;
    let ctx = GpuContext::new().unwrap();
    println!("adapter: {}", ctx.describe());

    let t = Instant::now();
    let cpu = Config::lossless()
        .new_encoder()
        .unwrap()
        .encode(&pic)
        .unwrap();
    let cpu_enc = t.elapsed();
    let t = Instant::now();
    let back = med8k_codec::decode(&cpu.data).unwrap();
    let cpu_dec = t.elapsed();
    assert!(back == pic);
    println!(
        "cpu twin ({} threads): encode {:.1} ms, decode {:.1} ms, {} bytes, ratio {:.3} vs 10-bit packed",
        rayon::current_num_threads(),
        cpu_enc.as_secs_f64() * 1e3,
        cpu_dec.as_secs_f64() * 1e3,
        cpu.data.len(),
        pic.samples() as f64 * 1.25 / cpu.data.len() as f64
    );

    let config = Config::lossless();
    let mut enc = config
        .new_encoder_with(Box::new(GpuEncoder::new(ctx.clone())))
        .unwrap();
    let mut dec = GpuDecoder::new(ctx.clone());
    let first = enc.encode(&pic).unwrap();
    assert!(first.data == cpu.data, "GPU bytes differ from the CPU twin");
    assert!(
        dec.decode(&first.data, u64::MAX).unwrap() == pic,
        "GPU decode differs"
    );
    println!("GPU stream identical to the CPU twin; GPU decode identical to the original");

    let mut e = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let p = enc.encode(&pic).unwrap();
        e.push(t.elapsed());
        assert_eq!(p.data.len(), cpu.data.len());
    }
    let mut d = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let _ = dec.decode(&first.data, u64::MAX).unwrap();
        d.push(t.elapsed());
    }
    // Resident: the frame is already on the GPU; transforms + coding + read-back of bytes only.
    let mut be = GpuEncoder::new(ctx.clone());
    let geom = med8k_codec::Params {
        layout: pic.layout(),
        width: w,
        height: h,
        bit_depth: 10,
        levels: config.levels,
        slice_height: config.slice_height,
        lossless: true,
    }
    .geometry();
    be.load(&pic, &geom).unwrap();
    let steps = med8k_codec::Steps::lossless(med8k_codec::step_count(config.levels), geom.slices);
    let params = med8k_codec::Params {
        layout: pic.layout(),
        width: w,
        height: h,
        bit_depth: 10,
        levels: config.levels,
        slice_height: config.slice_height,
        lossless: true,
    };
    let mut r = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        be.load_resident(&params).unwrap();
        let c = be.encode(&geom, &steps).unwrap();
        r.push(t.elapsed());
        assert_eq!(
            c.payload.len()
                + med8k_codec::stream::header_len(geom.slices, steps.tables()[0].len(), 1),
            cpu.data.len()
        );
    }
    for (name, v) in [
        ("encode (upload + code + read-back)", e),
        ("decode (upload + decode + read-back)", d),
        ("encode, frame resident on GPU", r),
    ] {
        let m = median(v);
        println!(
            "gpu {name}: median {:.2} ms = {:.1} frames/s = {:.2} Gpx/s",
            m.as_secs_f64() * 1e3,
            1.0 / m.as_secs_f64(),
            mpx / m.as_secs_f64() / 1e3
        );
    }
    // Rate-controlled.
    for bpp in [3.0, 1.0] {
        let mut enc = Config::bpp(bpp)
            .new_encoder_with(Box::new(GpuEncoder::new(ctx.clone())))
            .unwrap();
        let t = Instant::now();
        let p = enc.encode(&pic).unwrap();
        let el = t.elapsed();
        let back = dec.decode(&p.data, u64::MAX).unwrap();
        println!(
            "gpu {bpp} bpp: got {:.3} bpp in {} trials, {:.1} ms, PSNR {:.2} dB, SSIM {:.4}",
            p.bpp,
            p.trials,
            el.as_secs_f64() * 1e3,
            med8k_codec::metrics::psnr(&pic, &back),
            med8k_codec::metrics::ssim(&pic, &back)
        );
    }
}
