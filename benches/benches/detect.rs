//! Anomaly detection: making the model input from a frame, and the reference
//! models in tract.
//!
//! `cargo bench -p med8k-benches --bench detect` runs on a 7680×4320 10-bit
//! 4:2:2 endoscope frame from the sample generator (`MED8K_BENCH_SIZE` picks
//! another size).
//!
//! - `detect/input_8k`: the frame area-averaged to the endoscope model's
//!   3×144×256 input (`detect::input::ycbcr_tensor`, rayon over rows).
//! - `detect/input_8k_gpu_upload`: the same on the GPU
//!   (`detect::gpu_input::GpuModelInput::picture_tensor`): upload of the
//!   planes, kernel, read-back of the sums, division on the CPU.
//! - `detect/input_8k_gpu_resident`: the same from planes already on the GPU
//!   in the codec's input layout (`sums_of_buffer`, as beside the GPU
//!   encoder): kernel and read-back only. Without a GPU adapter both print
//!   `SKIPPED`; on lavapipe the figures are a software rasteriser's.
//! - `detect/endoscope_patch`, `detect/endoscope_cae`, `detect/endoscope_gauss`,
//!   `detect/rx_tile`: one run of each reference model (`models/`) on its
//!   input, one thread.
//! - `detect/analyse_8k/<model>`: a frame's whole analysis, its input from the
//!   8K planes and then the model: what keeps pace with the camera or not.
//!
//! Analysing 30 frames/s of the 8K stream needs input plus model under
//! 33 ms. The onnxruntime comparison is `med8k eval detect`.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{
    BenchmarkGroup, Criterion, criterion_group, criterion_main, measurement::WallTime,
};
use med8k_detect::gpu_input::GpuModelInput;
use med8k_detect::input::ycbcr_tensor;
use med8k_detect::model::Model;
use med8k_gpu::GpuContext;
use med8k_gpu::SampleLayout;
use med8k_media::picture::{Layout, Picture};
use med8k_samples::Size;
use med8k_samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};

fn models() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../models"))
}

fn bench(c: &mut Criterion) {
    let size: Size = std::env::var("MED8K_BENCH_SIZE")
        .unwrap_or_else(|_| "8k".into())
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
    let (w, h) = (fb.width as usize, fb.height as usize);
    let planes = fb.ycbcr();

    let mut g = c.benchmark_group("detect");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("input_8k", |b| {
        b.iter(|| black_box(ycbcr_tensor(&planes, 256, 144).expect("tensor")))
    });

    let tensor = ycbcr_tensor(&planes, 256, 144).expect("tensor");
    let pic = Picture::new(
        Layout::Yuv422,
        fb.width,
        fb.height,
        10,
        vec![fb.y.clone(), fb.cb.clone(), fb.cr.clone()],
    )
    .expect("picture");
    gpu_input(&mut g, &pic, &tensor);

    for (name, file) in [
        (
            "endoscope_patch",
            "endoscope-patch/med8k-endoscope-patch.onnx",
        ),
        ("endoscope_cae", "endoscope-cae/med8k-endoscope-cae.onnx"),
        ("endoscope_gauss", "endoscope/med8k-endoscope-gauss.onnx"),
    ] {
        let model = Model::load(&models().join(file)).expect("a reference endoscope model");
        let mut runner = model.runner().expect("runner");
        g.bench_function(name, |b| {
            b.iter(|| black_box(runner.run_tensor(0, tensor.clone(), (w, h)).expect("run")))
        });
        // The whole analysis of one frame: its input from the 8K planes, then the model.
        g.bench_function(format!("analyse_8k/{name}"), |b| {
            b.iter(|| {
                let t = ycbcr_tensor(&planes, 256, 144).expect("tensor");
                black_box(runner.run_tensor(0, t, (w, h)).expect("run"))
            })
        });
    }

    let rx = Model::load(&models().join("rx/med8k-rx-7band.onnx")).expect("the RX model");
    let tile = vec![0.3f32; 7 * 256 * 256];
    let mut runner = rx.runner().expect("runner");
    g.bench_function("rx_tile", |b| {
        b.iter(|| black_box(runner.run_tensor(0, tile.clone(), (256, 256)).expect("run")))
    });
    g.finish();
}

/// The model input on the GPU, from uploaded planes and from a buffer
/// already on the device; checked against the CPU's `tensor` first.
fn gpu_input(g: &mut BenchmarkGroup<'_, WallTime>, pic: &Picture, tensor: &[f32]) {
    let ctx = match GpuContext::new() {
        Ok(ctx) => ctx,
        Err(e) => {
            eprintln!("SKIPPED detect/input_8k_gpu_*: no GPU adapter ({e})");
            return;
        }
    };
    eprintln!("detect/input_8k_gpu_* on {}", ctx.describe());
    let mut gpu = GpuModelInput::new(ctx.clone()).expect("kernel");
    let got = gpu.picture_tensor(pic, 256, 144).expect("GPU tensor");
    assert!(got == tensor, "GPU model input differs from the CPU's");
    g.bench_function("input_8k_gpu_upload", |b| {
        b.iter(|| black_box(gpu.picture_tensor(pic, 256, 144).expect("GPU tensor")))
    });

    // The planes in the codec's input layout, as a GPU encoder holds them.
    let shape = SampleLayout::of(pic);
    let (firsts, words) = shape.plane_words();
    let buf = ctx.device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("bench samples"),
        size: 4 * words,
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
        mapped_at_creation: false,
    });
    for (plane, first) in pic.planes().iter().zip(firsts) {
        let mut bytes: Vec<u8> = plane.iter().flat_map(|v| v.to_le_bytes()).collect();
        bytes.resize(bytes.len().next_multiple_of(4), 0);
        ctx.queue.write_buffer(&buf, 4 * first, &bytes);
    }
    let sums = gpu.sums_of_buffer(&buf, shape, 256, 144).expect("GPU sums");
    assert!(
        sums.tensor() == tensor,
        "GPU model input differs from the CPU's"
    );
    g.bench_function("input_8k_gpu_resident", |b| {
        b.iter(|| black_box(gpu.sums_of_buffer(&buf, shape, 256, 144).expect("GPU sums")))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
