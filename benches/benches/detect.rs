//! Anomaly detection: making the model input from a frame, and the reference
//! models in tract.
//!
//! `cargo bench -p med8k-benches --bench detect` runs on a 7680×4320 10-bit
//! 4:2:2 endoscope frame from the sample generator (`MED8K_BENCH_SIZE` picks
//! another size).
//!
//! - `detect/input_8k`: the frame area-averaged to the endoscope model's
//!   3×144×256 input (`detect::input::ycbcr_tensor`, rayon over rows).
//! - `detect/endoscope_cae`, `detect/endoscope_gauss`, `detect/rx_tile`: one
//!   run of each reference model (`models/`) on its input, one thread.
//!
//! Analysing 30 frames/s of the 8K stream needs input plus model under
//! 33 ms. The onnxruntime comparison is `med8k eval detect`.

use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use med8k_engine::detect::input::{Plane, YCbCrPlanes, ycbcr_tensor};
use med8k_engine::detect::model::Model;
use med8k_engine::samples::Size;
use med8k_engine::samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};

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
    let planes = YCbCrPlanes {
        width: w,
        height: h,
        bit_depth: 10,
        chroma_shift: (1, 0),
        y: Plane {
            data: &fb.y,
            stride: w,
        },
        cb: Plane {
            data: &fb.cb,
            stride: w / 2,
        },
        cr: Plane {
            data: &fb.cr,
            stride: w / 2,
        },
    };

    let mut g = c.benchmark_group("detect");
    g.sample_size(20).measurement_time(Duration::from_secs(8));
    g.bench_function("input_8k", |b| {
        b.iter(|| black_box(ycbcr_tensor(&planes, 256, 144).expect("tensor")))
    });

    let tensor = ycbcr_tensor(&planes, 256, 144).expect("tensor");
    for (name, file) in [
        ("endoscope_cae", "endoscope-cae/med8k-endoscope-cae.onnx"),
        ("endoscope_gauss", "endoscope/med8k-endoscope-gauss.onnx"),
    ] {
        let model = Model::load(&models().join(file)).expect("a reference endoscope model");
        let mut runner = model.runner().expect("runner");
        g.bench_function(name, |b| {
            b.iter(|| black_box(runner.run_tensor(0, tensor.clone(), (w, h)).expect("run")))
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

criterion_group!(benches, bench);
criterion_main!(benches);
