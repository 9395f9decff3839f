//! `bench codec` on a GPU (lavapipe here) reports the GPU's own time per
//! frame beside the wall-clock speed; the CPU rows have none.

use med8k_benches::codec::{CodecBenchOptions, bench_codec};
use med8k_gpu::GpuContext;
use med8k_media::picture::{Layout, Picture};
use med8k_pipeline::encode::Backend;

#[test]
fn gpu_rows_carry_the_gpus_time_per_frame() {
    if let Err(e) = GpuContext::new() {
        assert!(
            std::env::var_os("MED8K_REQUIRE_GPU").is_none(),
            "MED8K_REQUIRE_GPU is set but there is no adapter: {e}"
        );
        eprintln!("SKIPPED: no GPU adapter ({e})");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (w, h) = (48u32, 32u32);
    let plane = |k: u32| -> Vec<u16> {
        (0..w * h)
            .map(|i| ((i % w) * 5 + (i / w) * 3 + k * 40) as u16 % 256)
            .collect()
    };
    let pic = Picture::new(Layout::Rgb, w, h, 8, vec![plane(0), plane(1), plane(2)]).unwrap();
    let path = dir.path().join("still.ppm");
    med8k_media::imageio::write_picture(&path, &pic).unwrap();
    let rows = bench_codec(
        &CodecBenchOptions {
            files: vec![path],
            format: None,
            frames: 1,
            runs: 2,
            bpp: vec![2.0],
            backends: vec![Backend::Cpu, Backend::Gpu],
            no_peers: true,
        },
        &mut |_| {},
    )
    .unwrap();
    let row = |codec: &str, mode: &str| {
        rows.iter()
            .find(|r| r.codec == codec && r.mode == mode)
            .unwrap_or_else(|| panic!("no {codec} {mode} row in {rows:?}"))
    };
    let lossless = row("med8k-wavelet/gpu", "lossless");
    assert!(lossless.exact);
    let t = lossless
        .gpu_ms
        .expect("a GPU time for the GPU's lossless row");
    assert!(
        t.encode_ms.is_some_and(|ms| ms > 0.0 && ms.is_finite()),
        "{t:?}"
    );
    assert!(t.decode_ms > 0.0 && t.decode_ms.is_finite(), "{t:?}");
    // A rate-controlled frame: the decoder's time only (the stream encoder
    // codes lossless).
    let t = row("med8k-wavelet/gpu", "2 bpp")
        .gpu_ms
        .expect("a GPU time");
    assert!(t.encode_ms.is_none() && t.decode_ms > 0.0, "{t:?}");
    for mode in ["lossless", "2 bpp"] {
        assert!(row("med8k-wavelet/cpu", mode).gpu_ms.is_none());
    }
}
