//! What the GPU-against-twin tests share: the adapter (or a loud skip) and
//! generated pictures.

use std::sync::Arc;

use med8k_gpu::GpuContext;
use med8k_media::picture::{Layout, Picture};

/// The GPU, or `None` with `SKIPPED` on stderr; with `MED8K_REQUIRE_GPU`
/// set, a missing adapter fails the test instead.
pub fn context() -> Option<Arc<GpuContext>> {
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

/// A small deterministic generator (an LCG), enough for test pictures.
pub struct Rng(pub u64);

impl Rng {
    /// The next 32 bits.
    pub fn next(&mut self) -> u32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 32) as u32
    }
}

/// What a generated picture holds.
#[derive(Clone, Copy, Debug)]
#[allow(dead_code)] // each test binary uses its own subset
pub enum Content {
    /// Uniform noise over the bit depth.
    Random,
    /// Only 0 and the depth's maximum, in small patches.
    Extremes,
    /// Ramps with a little noise (what a wavelet codes well).
    Smooth,
}

/// A `w`×`h` picture of `layout` at `depth` bits, the same for the same seed.
pub fn picture(layout: Layout, w: u32, h: u32, depth: u8, content: Content, seed: u64) -> Picture {
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
                            if (x / 3 + y / 2 + p as u32 + rng.next() % 4 / 3).is_multiple_of(2) {
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
    Picture::new(layout, w, h, depth, planes).expect("generated planes fit their layout")
}
