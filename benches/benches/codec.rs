//! The wavelet codec, stage by stage and whole, on the CPU twin and the GPU.
//!
//! `cargo bench -p med8k-benches --bench codec` runs on a 1920×1080 10-bit
//! 4:2:2 endoscope frame from the sample generator; `MED8K_BENCH_SIZE=8k`
//! (or `4k`, `WxH`) picks another size. Throughput is in pixels (elements/s).
//!
//! - `codec_cpu/colour_forward`, `wavelet_forward`: the reversible transforms.
//! - `codec_cpu/entropy_lossless`, `entropy_3bpp_steps`: block coding and
//!   slice packing of the transformed frame, lossless and with the steps rate
//!   control picked for 3 bpp (so no search inside the measurement).
//! - `codec_cpu/encode_lossless`, `encode_3bpp`: whole encodes, the second
//!   with its rate-control search.
//! - `codec_cpu/wavelet_inverse`, `colour_inverse`, `decode_lossless`: the
//!   decoder's transforms and a whole decode (entropy decoding is the
//!   difference).
//! - `codec_gpu/encode_lossless`: upload, transforms, coding, read-back of
//!   the bytes. `transform_resident`: the transforms of a frame already on
//!   the GPU. `entropy_and_readback`: coding and read-back after them.
//!   `decode_lossless`: upload of the bytes, decode, read-back of the picture.
//! - `codec_gpu/stream_encode_v210`, `stream_decode_v210`: the stream
//!   encoder and decoder with three frames in flight (v210 in and out, one
//!   submission per frame, time per frame in steady state). Before them the
//!   bench prints each stage's GPU time (timestamps; wall clock on a device
//!   without them), the bytes each way and the submissions and waits per
//!   frame.
//!
//! Without a GPU adapter the GPU group prints `SKIPPED`. On CI's lavapipe the
//! GPU figures are a software rasteriser's, not a GPU's.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use med8k_codec::gpu::{
    Decoded, Frame, GpuDecoder, GpuEncoder, GpuStreamDecoder, GpuStreamEncoder,
};
use med8k_codec::{Config, EncodeBackend, Params, Steps, cpu::CpuEncoder, rate, transform};
use med8k_gpu::{GpuContext, SampleLayout, StageTimes};
use med8k_media::frame::{PixelFormat, VideoFrame, v210};
use med8k_media::picture::Picture;
use med8k_samples::Size;
use med8k_samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};

fn frame() -> Picture {
    let size: Size = std::env::var("MED8K_BENCH_SIZE")
        .unwrap_or_else(|_| "1080p".into())
        .parse()
        .expect("MED8K_BENCH_SIZE: 8k, 4k, 1080p or WIDTHxHEIGHT");
    let scene = EndoscopeScene::new(SceneConfig {
        width: size.width,
        height: size.height,
        frames: 8,
        seed: 11,
    })
    .expect("scene");
    let mut fb = FrameBuffers::new(&scene);
    scene.render(5, &mut fb.planes()).expect("render");
    fb.into_picture().expect("picture")
}

/// `pic` (10-bit 4:2:2) packed as v210 by the CPU twin.
fn v210_of(pic: &Picture) -> VideoFrame {
    let mut f = VideoFrame::zeroed(pic.width(), pic.height(), PixelFormat::I422_10).expect("frame");
    for p in 0..3 {
        let (w, _) = pic.plane_dims(p);
        let stride = f.layout().planes()[p].stride / 2;
        for (row, dst) in pic.planes()[p]
            .chunks(w as usize)
            .zip(f.plane_u16_mut(p).chunks_mut(stride))
        {
            dst[..w as usize].copy_from_slice(row);
        }
    }
    v210::pack(&f).expect("v210")
}

/// Each stage's time summed over `times` (stripes together), divided by their number.
fn mean_stages(times: &[StageTimes]) -> String {
    let Some(first) = times.first() else {
        return "none".into();
    };
    let n = times.len() as f64;
    let stages: Vec<String> = first
        .merged()
        .stages
        .iter()
        .map(|&(name, _)| {
            let ms: f64 = times.iter().map(|t| t.ms(name)).sum::<f64>() / n;
            format!("{name} {ms:.3} ms")
        })
        .collect();
    format!("{} ({:?})", stages.join(", "), first.source)
}

fn params(pic: &Picture) -> Params {
    Params {
        layout: pic.layout(),
        width: pic.width(),
        height: pic.height(),
        bit_depth: pic.bit_depth(),
        levels: med8k_codec::DEFAULT_LEVELS,
        slice_height: med8k_codec::DEFAULT_SLICE_HEIGHT,
        lossless: true,
    }
}

fn cpu(c: &mut Criterion) {
    let pic = frame();
    let geom = params(&pic).geometry();
    let name = format!("{}x{}", pic.width(), pic.height());
    let mut g = c.benchmark_group("codec_cpu");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(u64::from(pic.width() * pic.height())));

    g.bench_function(BenchmarkId::new("colour_forward", &name), |b| {
        b.iter(|| black_box(transform::forward_components(&pic, &geom)))
    });
    let components = transform::forward_components(&pic, &geom);
    g.bench_function(BenchmarkId::new("wavelet_forward", &name), |b| {
        b.iter_batched_ref(
            || components.clone(),
            |coef| med8k_codec::cpu::spatial(coef, &geom, false),
            criterion::BatchSize::LargeInput,
        )
    });

    let mut be = CpuEncoder::new();
    be.load(&pic, &geom).expect("load");
    let lossless = Steps::lossless(med8k_codec::step_count(geom.levels), geom.slices);
    let (at_3bpp, _, _) = rate::choose(&mut be, &geom, &params(&pic), 3.0).expect("rate control");
    for (what, steps) in [
        ("entropy_lossless", &lossless),
        ("entropy_3bpp_steps", &at_3bpp),
    ] {
        g.bench_function(BenchmarkId::new(what, &name), |b| {
            b.iter(|| black_box(be.encode(&geom, steps).expect("encode")))
        });
    }

    let mut enc = Config::lossless().new_encoder().expect("encoder");
    g.bench_function(BenchmarkId::new("encode_lossless", &name), |b| {
        b.iter(|| black_box(enc.encode(&pic).expect("encode")))
    });
    let mut enc3 = Config::bpp(3.0).new_encoder().expect("encoder");
    g.bench_function(BenchmarkId::new("encode_3bpp", &name), |b| {
        b.iter(|| black_box(enc3.encode(&pic).expect("encode")))
    });

    let mut coef = components.clone();
    med8k_codec::cpu::spatial(&mut coef, &geom, false);
    g.bench_function(BenchmarkId::new("wavelet_inverse", &name), |b| {
        b.iter_batched_ref(
            || coef.clone(),
            |c| med8k_codec::cpu::spatial(c, &geom, true),
            criterion::BatchSize::LargeInput,
        )
    });
    g.bench_function(BenchmarkId::new("colour_inverse", &name), |b| {
        b.iter_batched(
            || {
                let out = Picture::zeroed(pic.layout(), pic.width(), pic.height(), pic.bit_depth())
                    .expect("picture");
                (components.clone(), out)
            },
            |(c, mut out)| {
                transform::inverse_components(c, &mut out, &geom);
                out
            },
            criterion::BatchSize::LargeInput,
        )
    });
    let data = enc.encode(&pic).expect("encode").data;
    assert!(
        med8k_codec::decode(&data).expect("decode") == pic,
        "lossless"
    );
    g.bench_function(BenchmarkId::new("decode_lossless", &name), |b| {
        b.iter(|| black_box(med8k_codec::decode(&data).expect("decode")))
    });
    g.finish();
}

fn gpu(c: &mut Criterion) {
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("SKIPPED codec_gpu: no GPU adapter ({e})");
            return;
        }
    };
    eprintln!("codec_gpu on {}", ctx.describe());
    let pic = frame();
    let p = params(&pic);
    let geom = p.geometry();
    let name = format!("{}x{}", pic.width(), pic.height());
    let mut g = c.benchmark_group("codec_gpu");
    g.sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .throughput(Throughput::Elements(u64::from(pic.width() * pic.height())));

    let mut enc = Config::lossless()
        .new_encoder_with(Box::new(GpuEncoder::new(ctx.clone())))
        .expect("encoder");
    let data = enc.encode(&pic).expect("encode").data;
    assert!(
        data == Config::lossless()
            .new_encoder()
            .expect("cpu")
            .encode(&pic)
            .expect("cpu")
            .data,
        "GPU bytes differ from the CPU twin"
    );
    g.bench_function(BenchmarkId::new("encode_lossless", &name), |b| {
        b.iter(|| black_box(enc.encode(&pic).expect("encode")))
    });

    let mut be = GpuEncoder::new(ctx.clone());
    be.load(&pic, &geom).expect("load");
    let wait = || {
        ctx.device
            .poll(wgpu::PollType::wait_indefinitely())
            .expect("poll");
    };
    // Striped pictures (too big for the device's bindings) cannot stay resident.
    if !be.is_striped() {
        be.input_buffer(&p).expect("input buffer");
        g.bench_function(BenchmarkId::new("transform_resident", &name), |b| {
            b.iter(|| {
                be.load_resident(&p).expect("transform");
                wait();
            })
        });
    }
    be.load(&pic, &geom).expect("load");
    let steps = Steps::lossless(med8k_codec::step_count(geom.levels), geom.slices);
    g.bench_function(BenchmarkId::new("entropy_and_readback", &name), |b| {
        b.iter(|| black_box(be.encode(&geom, &steps).expect("encode")))
    });

    let mut dec = GpuDecoder::new(ctx.clone());
    assert!(
        dec.decode(&data, u64::MAX).expect("decode") == pic,
        "GPU decode"
    );
    g.bench_function(BenchmarkId::new("decode_lossless", &name), |b| {
        b.iter(|| black_box(dec.decode(&data, u64::MAX).expect("decode")))
    });

    // The stream encoder and decoder, three frames in flight, v210 at both
    // ends (4:2:2 10-bit frames only).
    if pic.layout() == med8k_media::picture::Layout::Yuv422 && pic.bit_depth() == 10 {
        let frame = v210_of(&pic);
        let shape = SampleLayout::of(&pic);
        let mut timed = GpuStreamEncoder::new(ctx.clone(), &Config::lossless(), shape, true)
            .expect("stream encoder")
            .with_timings(true);
        let mut out = Vec::new();
        let mut times = Vec::new();
        for _ in 0..8 {
            if let Some(d) = timed
                .send_frame(Frame::V210(&frame), &mut out)
                .expect("encode")
            {
                assert!(out == data, "GPU stream bytes differ from the CPU twin");
                times.extend(d.timings);
            }
        }
        let before = timed.stats();
        for _ in 0..4 {
            timed
                .send_frame(Frame::V210(&frame), &mut out)
                .expect("encode");
        }
        eprintln!(
            "codec_gpu/stream_encode_v210 {name}: stages {}; per frame {}",
            mean_stages(&times),
            timed.stats().since(&before).per_frame()
        );
        let mut enc = GpuStreamEncoder::new(ctx.clone(), &Config::lossless(), shape, true)
            .expect("stream encoder");
        g.bench_function(BenchmarkId::new("stream_encode_v210", &name), |b| {
            b.iter(|| {
                black_box(
                    enc.send_frame(Frame::V210(&frame), &mut out)
                        .expect("encode"),
                )
            })
        });

        let mut timed = GpuStreamDecoder::new(ctx.clone(), true).with_timings(true);
        let mut back = Decoded::v210();
        let mut times = Vec::new();
        for _ in 0..8 {
            if let Some(d) = timed.send_packet(&data, &mut back).expect("decode") {
                assert!(
                    matches!(&back, Decoded::V210(f) if f.same_picture(&frame)),
                    "GPU stream decode differs"
                );
                times.extend(d.timings);
            }
        }
        let before = timed.stats();
        for _ in 0..4 {
            timed.send_packet(&data, &mut back).expect("decode");
        }
        eprintln!(
            "codec_gpu/stream_decode_v210 {name}: stages {}; per frame {}",
            mean_stages(&times),
            timed.stats().since(&before).per_frame()
        );
        let mut dec = GpuStreamDecoder::new(ctx.clone(), true);
        g.bench_function(BenchmarkId::new("stream_decode_v210", &name), |b| {
            b.iter(|| black_box(dec.send_packet(&data, &mut back).expect("decode")))
        });
    }
    g.finish();
}

criterion_group!(benches, cpu, gpu);
criterion_main!(benches);
