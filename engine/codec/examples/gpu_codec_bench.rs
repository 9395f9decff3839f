//! GPU codec throughput and latency on endoscope frames (8K 4:2:2 10-bit
//! by default), stage by stage, against the CPU twin in the same run. Built
//! here, run where the GPU is:
//! `cargo build --release -p med8k-codec --example gpu_codec_bench`
//! then `target/release/examples/gpu_codec_bench [frames] [size] [streams]`
//! (`size`: 8k, 4k, 1080p or WxH; 300 frames for a report; `streams`
//! measures only the stream encoder's and decoder's throughput).
//!
//! It prints, for the stream encoder (v210 in) and decoder (v210 out) with
//! three frames in flight: throughput over `frames` frames, single-frame
//! latency on an idle GPU, per-stage GPU timestamps (median per stage),
//! bytes each way, submissions, blocking waits, GPU buffers made and heap
//! allocations per frame (this process's, wgpu's included) in steady state;
//! a raw-copy bandwidth baseline (the same bytes through the same mapped
//! buffers); the one-at-a-time `GpuEncoder`/`GpuDecoder` for comparison.
//! Every packet and picture is byte-compared with the CPU twin's. On a
//! software adapter (lavapipe) the times are a CPU's, not a GPU's.
#![allow(clippy::unwrap_used)]

use std::alloc::{GlobalAlloc, Layout as AllocLayout, System};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use med8k_codec::Config;
use med8k_codec::gpu::{
    Decoded, Frame, GpuDecoder, GpuEncoder, GpuStreamDecoder, GpuStreamEncoder,
};
use med8k_gpu::{GpuContext, ReadSlot, SampleLayout, StageTimes, UploadSlot};
use med8k_media::frame::{PixelFormat, VideoFrame, v210};
use med8k_media::picture::Picture;
use med8k_samples::Size;
use med8k_samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};

/// Counts heap allocations, to show what a frame costs in steady state.
struct Counting;

static ALLOCS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is passed on to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: AllocLayout) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller upholds `alloc`'s contract, which is System's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: AllocLayout) {
        // SAFETY: `ptr` came from `alloc` above, that is from System.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: AllocLayout, new: usize) -> *mut u8 {
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: as for `dealloc` and `alloc`.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut v = v.to_vec();
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// `pic` (10-bit 4:2:2) packed as v210 by the CPU twin.
fn v210_of(pic: &Picture) -> VideoFrame {
    let mut f = VideoFrame::zeroed(pic.width(), pic.height(), PixelFormat::I422_10).unwrap();
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
    v210::pack(&f).unwrap()
}

/// Median per stage over `times` (stripes summed within a frame).
fn stage_medians(times: &[StageTimes]) -> String {
    let Some(first) = times.first() else {
        return "no timings".into();
    };
    let names: Vec<&str> = first.merged().stages.iter().map(|s| s.0).collect();
    let mut out = String::new();
    let mut sum = 0.0;
    for name in names {
        let v: Vec<Duration> = times
            .iter()
            .map(|t| Duration::from_secs_f64(t.ms(name) / 1e3))
            .collect();
        let m = ms(percentile(&v, 0.5));
        sum += m;
        out += &format!("{name} {m:.3}, ");
    }
    format!("{out}sum {sum:.3} ms ({:?})", first.source)
}

fn report(what: &str, frames: u64, wall: Duration, mpx: f64) {
    let per = wall.as_secs_f64() / frames as f64;
    println!(
        "{what}: {frames} frames in {:.1} ms = {:.2} ms/frame = {:.1} frames/s = {:.2} Gpx/s",
        ms(wall),
        per * 1e3,
        1.0 / per,
        mpx / per / 1e3
    );
}

fn main() {
    let frames: u64 = std::env::args().nth(1).map_or(30, |s| s.parse().unwrap());
    let size: Size = std::env::args()
        .nth(2)
        .unwrap_or_else(|| "8k".into())
        .parse()
        .unwrap();
    let streams_only = std::env::args().nth(3).is_some_and(|a| a == "streams");
    let (w, h) = (size.width, size.height);
    let scene = EndoscopeScene::new(SceneConfig {
        width: w,
        height: h,
        frames: 8,
        seed: 11,
    })
    .unwrap();
    let pics: Vec<Picture> = [2, 5, 7]
        .iter()
        .map(|&i| {
            let mut fb = FrameBuffers::new(&scene);
            scene.render(i, &mut fb.planes()).unwrap();
            fb.into_picture().unwrap()
        })
        .collect();
    let v210s: Vec<VideoFrame> = pics.iter().map(v210_of).collect();
    let mpx = f64::from(w * h) / 1e6;
    let ctx = GpuContext::new().unwrap();
    println!("adapter: {}", ctx.describe());
    for a in med8k_gpu::adapters() {
        println!(
            "  seen: {} ({}, {}) driver {}",
            a.name, a.backend, a.device_type, a.driver
        );
    }
    println!(
        "timestamps: {}, subgroups: {}",
        ctx.has_timestamps(),
        ctx.has_subgroups()
    );

    let config = Config::lossless();
    let t = Instant::now();
    let cpu: Vec<Vec<u8>> = pics
        .iter()
        .map(|p| config.new_encoder().unwrap().encode(p).unwrap().data)
        .collect();
    let cpu_enc = t.elapsed() / pics.len() as u32;
    let t = Instant::now();
    assert!(med8k_codec::decode(&cpu[0]).unwrap() == pics[0]);
    let cpu_dec = t.elapsed();
    let v210_bytes = v210s[0].plane(0).len();
    println!(
        "{w}x{h}: cpu twin ({} threads) encode {:.1} ms, decode {:.1} ms; {} bytes, {:.3} bpp, v210 frame {} bytes, planes {} bytes",
        rayon::current_num_threads(),
        ms(cpu_enc),
        ms(cpu_dec),
        cpu[0].len(),
        cpu[0].len() as f64 * 8.0 / (f64::from(w) * f64::from(h)),
        v210_bytes,
        pics[0].samples() * 2
    );
    let shape = SampleLayout::of(&pics[0]);

    // Raw copies of the same bytes through the same kind of buffers.
    {
        let dev = &ctx.device;
        let mut up = UploadSlot::new(dev, "raw up", v210_bytes as u64);
        let gpu =
            med8k_gpu::storage_buffer(dev, "raw", v210_bytes as u64, wgpu::BufferUsages::empty());
        let mut down = ReadSlot::new(dev, "raw down", v210_bytes as u64);
        let (mut ups, mut downs) = (Vec::new(), Vec::new());
        for _ in 0..5 {
            let t = Instant::now();
            up.fill(dev, v210_bytes as u64, |_| ()).unwrap();
            let mut enc = dev.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(up.buffer(), 0, &gpu, 0, v210_bytes as u64);
            let i = ctx.queue.submit([enc.finish()]);
            up.used_by(i.clone());
            up.release();
            let _ = dev.poll(wgpu::PollType::Wait {
                submission_index: Some(i),
                timeout: None,
            });
            ups.push(t.elapsed());
            let t = Instant::now();
            let mut enc = dev.create_command_encoder(&Default::default());
            enc.copy_buffer_to_buffer(&gpu, 0, down.buffer(), 0, v210_bytes as u64);
            let i = ctx.queue.submit([enc.finish()]);
            down.used_by(i, v210_bytes as u64);
            down.read(dev, |b| b.len()).unwrap();
            downs.push(t.elapsed());
        }
        let gbs = |d: Duration| v210_bytes as f64 / d.as_secs_f64() / 1e9;
        println!(
            "raw copy baseline, {v210_bytes} bytes: to GPU median {:.2} ms ({:.1} GB/s), back median {:.2} ms ({:.1} GB/s)",
            ms(percentile(&ups, 0.5)),
            gbs(percentile(&ups, 0.5)),
            ms(percentile(&downs, 0.5)),
            gbs(percentile(&downs, 0.5))
        );
    }

    // The stream encoder: v210 in, three frames in flight.
    let mut enc = GpuStreamEncoder::new(ctx.clone(), &config, shape, true)
        .unwrap()
        .with_timings(true);
    let mut out = Vec::new();
    let mut sent = 0u64;
    let check = |seq: u64, out: &[u8]| {
        assert!(
            out == cpu[(seq % 3) as usize],
            "frame {seq}: GPU bytes differ from the twin's"
        );
    };
    // Warm-up: plans, ring, budgets.
    for _ in 0..3 {
        if let Some(d) = enc
            .send_frame(Frame::V210(&v210s[(sent % 3) as usize]), &mut out)
            .unwrap()
        {
            check(d.seq, &out);
        }
        sent += 1;
    }
    let (before, allocs) = (enc.stats(), ALLOCS.load(Ordering::Relaxed));
    let mut times = Vec::new();
    let t = Instant::now();
    for _ in 0..frames {
        if let Some(d) = enc
            .send_frame(Frame::V210(&v210s[(sent % 3) as usize]), &mut out)
            .unwrap()
        {
            check(d.seq, &out);
            times.extend(d.timings);
        }
        sent += 1;
    }
    let wall = t.elapsed();
    let (after, allocs) = (enc.stats(), ALLOCS.load(Ordering::Relaxed) - allocs);
    while let Some(d) = enc.receive_packet(&mut out).unwrap() {
        check(d.seq, &out);
    }
    report(
        "gpu stream encode (v210 in, 3 in flight)",
        frames,
        wall,
        mpx,
    );
    println!("  stages (median): {}", stage_medians(&times));
    println!(
        "  per frame: {}, heap allocations {:.1}",
        after.since(&before).per_frame(),
        allocs as f64 / frames as f64
    );
    println!(
        "  stripes: {}; all {sent} packets identical to the CPU twin's",
        enc.stripes()
    );

    // Single-frame latency on an idle GPU.
    if !streams_only {
        latency(&ctx, &config, shape, &v210s, &cpu, frames);
    }

    // The stream decoder: v210 out, three in flight.
    let mut dec = GpuStreamDecoder::new(ctx.clone(), true).with_timings(true);
    let mut frame = Decoded::v210();
    let mut got = 0u64;
    let check_frame = |frame: &Decoded, seq: u64| match frame {
        Decoded::V210(f) => assert!(
            f.same_picture(&v210s[(seq % 3) as usize]),
            "decoded frame {seq} differs"
        ),
        Decoded::Picture(_) => panic!("planes from a v210 decoder"),
    };
    for i in 0..3u64 {
        if let Some(d) = dec.send_packet(&cpu[(i % 3) as usize], &mut frame).unwrap() {
            check_frame(&frame, d.seq);
        }
        got += 1;
    }
    let (before, allocs) = (dec.stats(), ALLOCS.load(Ordering::Relaxed));
    let mut times = Vec::new();
    let t = Instant::now();
    for _ in 0..frames {
        if let Some(d) = dec
            .send_packet(&cpu[(got % 3) as usize], &mut frame)
            .unwrap()
        {
            check_frame(&frame, d.seq);
            times.extend(d.timings);
        }
        got += 1;
    }
    let wall = t.elapsed();
    let (after, allocs) = (dec.stats(), ALLOCS.load(Ordering::Relaxed) - allocs);
    while let Some(d) = dec.receive_frame(&mut frame).unwrap() {
        check_frame(&frame, d.seq);
    }
    report(
        "gpu stream decode (v210 out, 3 in flight)",
        frames,
        wall,
        mpx,
    );
    println!("  stages (median): {}", stage_medians(&times));
    println!(
        "  per frame: {}, heap allocations {:.1}",
        after.since(&before).per_frame(),
        allocs as f64 / frames as f64
    );

    if streams_only {
        return;
    }
    // One at a time, as before the stream types.
    let mut enc = config
        .new_encoder_with(Box::new(GpuEncoder::new(ctx.clone())))
        .unwrap();
    let mut dec = GpuDecoder::new(ctx.clone());
    let runs = frames.clamp(3, 30);
    let mut e = Vec::new();
    let mut d = Vec::new();
    for i in 0..runs {
        let t = Instant::now();
        let p = enc.encode(&pics[(i % 3) as usize]).unwrap();
        e.push(t.elapsed());
        assert!(p.data == cpu[(i % 3) as usize]);
        let t = Instant::now();
        let back = dec.decode(&p.data, u64::MAX).unwrap();
        d.push(t.elapsed());
        assert!(back == pics[(i % 3) as usize]);
    }
    println!(
        "one at a time (planes, 132.7 MB at 8K): GpuEncoder median {:.2} ms, GpuDecoder median {:.2} ms",
        ms(percentile(&e, 0.5)),
        ms(percentile(&d, 0.5))
    );
}

/// Single-frame latency of the stream encoder on an idle GPU.
fn latency(
    ctx: &std::sync::Arc<GpuContext>,
    config: &Config,
    shape: SampleLayout,
    v210s: &[VideoFrame],
    cpu: &[Vec<u8>],
    frames: u64,
) {
    let mut out = Vec::new();
    let mut one = GpuStreamEncoder::new(ctx.clone(), config, shape, true)
        .unwrap()
        .with_depth(1);
    let mut lat = Vec::new();
    for i in 0..frames.clamp(3, 30) {
        let t = Instant::now();
        let d = one
            .send_frame(Frame::V210(&v210s[(i % 3) as usize]), &mut out)
            .unwrap()
            .unwrap();
        lat.push(t.elapsed());
        assert!(out == cpu[(d.seq % 3) as usize]);
    }
    println!(
        "gpu stream encode latency (1 in flight): p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(percentile(&lat, 0.5)),
        ms(percentile(&lat, 0.99)),
        ms(percentile(&lat, 1.0))
    );
}
