//! The sample generator: same seed, same bytes; the clip read back through
//! GStreamer equals the frames the scene renders; labels agree with masks.
#![allow(clippy::unwrap_used)] // test helpers fail loudly

use med8k_capture::SourceOptions;
use med8k_media::frame::{PixelFormat, VideoFrame};
use med8k_media::spectral::envi;
use med8k_samples::endoscope::{EndoscopeScene, FrameBuffers, SceneConfig};
use med8k_samples::{GenerateOptions, Size};

const SIZE: Size = Size {
    width: 256,
    height: 144,
};
const FRAMES: u32 = 40;

fn generate(dir: &std::path::Path, seed: u64) -> med8k_samples::SampleSet {
    let opts = GenerateOptions::new()
        .out(dir)
        .frames(FRAMES)
        .size(SIZE)
        .seed(seed);
    med8k_samples::generate(&opts, &mut |_| {}).unwrap()
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    let first = generate(a.path(), 7);
    let again = generate(b.path(), 7);
    assert_eq!(first.manifest.sha256, again.manifest.sha256);
    // The manifests themselves are byte-identical too.
    assert_eq!(
        std::fs::read(a.path().join(med8k_samples::MANIFEST)).unwrap(),
        std::fs::read(b.path().join(med8k_samples::MANIFEST)).unwrap()
    );
    let other = generate(c.path(), 8);
    assert_ne!(
        first.manifest.sha256[med8k_samples::CLIP],
        other.manifest.sha256[med8k_samples::CLIP]
    );
    // Every file listed is there and hashes as listed (spot-check the clip).
    assert_eq!(
        first.manifest.sha256.len(),
        // clip, labels, 3 cubes x (header, data, anomaly mask), frame masks.
        2 + 9
            + first
                .labels()
                .unwrap()
                .frames
                .iter()
                .filter(|f| f.anomalous)
                .count()
    );
}

#[test]
fn the_clip_read_back_equals_the_rendered_frames_and_labels_match() {
    let dir = tempfile::tempdir().unwrap();
    let set = generate(dir.path(), 3);
    let labels = set.labels().unwrap();
    assert_eq!(labels.frames.len(), FRAMES as usize);
    assert!(
        labels.frames.iter().any(|f| f.anomalous),
        "no anomalous frame in {FRAMES}"
    );
    assert!(
        labels.frames.iter().any(|f| !f.anomalous),
        "no normal frame in {FRAMES}"
    );

    let scene = EndoscopeScene::new(SceneConfig {
        width: SIZE.width,
        height: SIZE.height,
        frames: FRAMES,
        seed: 3,
    })
    .unwrap();
    let mut source = set.open_clip(SourceOptions::default()).unwrap();
    let mut index = 0u32;
    while let Some(captured) = source.next_frame().unwrap() {
        assert_eq!(captured.format(), PixelFormat::I422_10);
        let mut buffers = FrameBuffers::new(&scene);
        let truth = scene.render(index, &mut buffers.planes()).unwrap();
        let mut expected =
            VideoFrame::zeroed(SIZE.width, SIZE.height, PixelFormat::I422_10).unwrap();
        for (p, plane) in [&buffers.y, &buffers.cb, &buffers.cr]
            .into_iter()
            .enumerate()
        {
            let w = SIZE.width as usize / if p == 0 { 1 } else { 2 };
            let stride = expected.layout().planes()[p].stride / 2;
            for (row, src) in plane.chunks_exact(w).enumerate() {
                expected.plane_u16_mut(p)[row * stride..row * stride + w].copy_from_slice(src);
            }
        }
        assert!(
            captured.same_picture(&expected),
            "frame {index} differs from the render"
        );

        let label = &labels.frames[index as usize];
        assert_eq!(label.anomalous, truth.anomalous, "frame {index}");
        assert_eq!(label.mask_pixels, truth.mask_pixels, "frame {index}");
        if let Some(mask) = &label.mask {
            let decoder = png::Decoder::new(std::io::BufReader::new(
                std::fs::File::open(set.dir.join(mask)).unwrap(),
            ));
            let mut reader = decoder.read_info().unwrap();
            let mut img = vec![0; reader.output_buffer_size().unwrap()];
            reader.next_frame(&mut img).unwrap();
            assert_eq!(img, buffers.mask, "mask of frame {index}");
            assert_eq!(
                img.iter().filter(|&&v| v == 255).count() as u64,
                truth.mask_pixels
            );
        }
        index += 1;
    }
    assert_eq!(index, FRAMES);
}

#[test]
fn cubes_are_seven_band_envi_at_the_clip_size() {
    let dir = tempfile::tempdir().unwrap();
    let set = generate(dir.path(), 1);
    assert_eq!(set.cubes().len(), 3);
    for path in set.cubes() {
        let cube = envi::read(&path).unwrap();
        assert_eq!(
            (cube.band_count(), cube.width(), cube.height()),
            (7, 256, 144)
        );
        assert_eq!(cube.bands()[0].center_nm, 410.0);
        assert_eq!(cube.reflectance_scale, Some(60000.0));
    }
}

#[test]
fn opening_a_directory_without_samples_says_how_to_make_them() {
    let dir = tempfile::tempdir().unwrap();
    let err = med8k_samples::open(dir.path()).unwrap_err().to_string();
    assert!(
        err.contains("manifest.json") && err.contains("med8k samples generate"),
        "{err}"
    );
}
