//! Capture from a recorded 8K clip, the frame pool's per-frame cost, and the
//! copy of one 8K frame in memory as the ceiling for both.
//!
//! `cargo bench -p med8k-benches --bench capture`. The clip (8K, 10-bit 4:2:2,
//! FFV1 in Matroska, from the sample generator) and a raw `v210` file of the
//! same frames are made once under `target/med8k-bench/`.
//!
//! - `capture_8k/ffv1_clip`: `GstSource` over the FFV1 clip, decode included.
//! - `capture_8k/raw_v210`: `GstSource` over raw `v210` frames (`rawvideoparse`,
//!   one read per frame), the capture path without a decoder, as from an SDI card.
//! - `capture_8k/memcpy_ceiling_{i422_10,v210}`: one copy of an 8K frame of
//!   each format in memory: what `ffv1_clip` and `raw_v210` can reach at best.
//! - `pool/acquire_release_8k` against `pool/fresh_alloc_8k`: the pool's
//!   per-frame overhead and what it saves.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use med8k_capture::{GstSink, GstSource, SourceOptions};
use med8k_media::frame::{FrameBuffer, FrameLayout, FramePool, PixelFormat, v210};
use med8k_samples::{GenerateOptions, Size};

const FRAMES: u32 = 6;

fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("med8k-bench").join("8k")
}

/// The 8K clip and its raw v210 twin, made once.
fn inputs() -> (PathBuf, PathBuf) {
    let dir = bench_dir();
    let (clip, raw) = (dir.join(med8k_samples::CLIP), dir.join("frames.v210"));
    if !clip.exists() || !raw.exists() {
        let opts = GenerateOptions::new()
            .out(&dir)
            .frames(FRAMES)
            .size(Size::UHD_8K)
            .seed(1);
        med8k_samples::generate_clip(&opts, &mut |_| {}).expect("generate the 8K clip");
        let mut source = med8k_samples::open_clip(&clip, Size::UHD_8K, SourceOptions::default())
            .expect("open clip");
        let mut sink =
            GstSink::open(&format!("filesink location={}", raw.display())).expect("raw sink");
        while let Some(f) = source.next_frame().expect("capture") {
            sink.push(v210::pack(&f).expect("pack")).expect("push");
        }
        sink.finish(Duration::from_secs(120)).expect("finish raw");
    }
    (clip, raw)
}

fn capture_all(mut source: GstSource) -> u64 {
    let mut n = 0;
    while let Some(f) = source.next_frame().expect("capture") {
        black_box(&f);
        n += 1;
    }
    n
}

fn capture(c: &mut Criterion) {
    let (clip, raw) = inputs();
    let (w, h) = (Size::UHD_8K.width, Size::UHD_8K.height);
    let mut g = c.benchmark_group("capture_8k");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.throughput(Throughput::Elements(u64::from(FRAMES)));
    g.bench_function("ffv1_clip", |b| {
        b.iter(|| {
            let n = capture_all(
                med8k_samples::open_clip(&clip, Size::UHD_8K, SourceOptions::default())
                    .expect("open"),
            );
            assert_eq!(n, u64::from(FRAMES));
        })
    });
    // One read per frame, as a capture card hands over whole frames.
    let v210 = FrameLayout::packed(w, h, PixelFormat::V210).expect("layout");
    let raw_desc = format!(
        "filesrc location={} blocksize={} ! rawvideoparse format=v210 width={w} height={h} framerate=60/1",
        raw.display(),
        v210.payload_bytes()
    );
    g.bench_function("raw_v210", |b| {
        b.iter(|| {
            let n = capture_all(GstSource::open(&raw_desc).expect("open"));
            assert_eq!(n, u64::from(FRAMES));
        })
    });
    g.throughput(Throughput::Elements(1));
    for (name, format) in [
        ("memcpy_ceiling_i422_10", PixelFormat::I422_10),
        ("memcpy_ceiling_v210", PixelFormat::V210),
    ] {
        let layout = FrameLayout::packed(w, h, format).expect("layout");
        let src = vec![0x5au8; layout.size()];
        let mut dst = FrameBuffer::zeroed(layout.size());
        g.bench_function(name, |b| b.iter(|| dst.copy_from_slice(black_box(&src))));
    }
    g.finish();
}

fn pool(c: &mut Criterion) {
    let layout = FrameLayout::packed(
        Size::UHD_8K.width,
        Size::UHD_8K.height,
        PixelFormat::I422_10,
    )
    .expect("layout");
    let pool = FramePool::new(layout.size(), 4);
    drop(pool.acquire());
    let mut g = c.benchmark_group("pool");
    g.throughput(Throughput::Elements(1));
    g.bench_function("acquire_release_8k", |b| {
        b.iter(|| black_box(pool.acquire()))
    });
    g.sample_size(20);
    g.bench_function("fresh_alloc_8k", |b| {
        b.iter(|| {
            // What a pool-less capture pays: allocate and touch every page once.
            let mut buf = FrameBuffer::zeroed(layout.size());
            buf.iter_mut().step_by(4096).for_each(|v| *v = 1);
            black_box(buf)
        })
    });
    g.finish();
}

criterion_group!(benches, capture, pool);
criterion_main!(benches);
