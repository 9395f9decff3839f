//! `med8k codec encode --codec av1`: downscale to 4:2:0 (on the GPU with
//! `--backend gpu`, bit-exact with the CPU), code with rav1e in its
//! low-latency configuration, write IVF (GStreamer reads it with
//! `ivfparse ! av1parse ! av1dec`).

use std::cell::RefCell;
use std::path::Path;

use med8k_engine::codec::av1::{Av1Config, Av1Error, downscale_420, encode_to_ivf};
use med8k_engine::codec::av1_gpu::GpuDownscaler;
use med8k_engine::imageio::RawSpec;
use med8k_engine::picture::Picture;

use crate::Outcome;
use crate::codec::Backend;

/// Where the downscale runs.
enum Downscaler {
    Cpu,
    Gpu(Box<GpuDownscaler>),
}

impl Downscaler {
    fn new(backend: Backend) -> anyhow::Result<Self> {
        Ok(match backend {
            Backend::Cpu => Downscaler::Cpu,
            Backend::Gpu => Downscaler::Gpu(Box::new(GpuDownscaler::new(crate::codec::gpu()?)?)),
        })
    }

    fn run(&mut self, pic: &Picture, factor: u32) -> Result<Picture, Av1Error> {
        match self {
            Downscaler::Cpu => downscale_420(pic, factor, 8),
            Downscaler::Gpu(g) => g.downscale_420(pic, factor, 8),
        }
    }
}

pub fn encode(
    input: &Path,
    out: &Path,
    format: Option<RawSpec>,
    frames: Option<u64>,
    mbps: f64,
    scale: u32,
    backend: Backend,
) -> anyhow::Result<Outcome> {
    if !(mbps.is_finite() && mbps > 0.0) {
        anyhow::bail!("--mbps {mbps} must be a positive number of Mbit/s");
    }
    let cfg = Av1Config::new((mbps * 1000.0).round() as u32);
    let mut downscaler = Downscaler::new(backend)?;
    let failed: RefCell<Option<anyhow::Error>> = RefCell::new(None);
    let pictures = crate::codec::frames(input, format, frames)?.map_while(|p| {
        match p.and_then(|p| Ok(downscaler.run(&p, scale)?)) {
            Ok(p) => Some(p),
            Err(e) => {
                *failed.borrow_mut() = Some(e);
                None
            }
        }
    });
    let stats = encode_to_ivf(pictures, &cfg, out);
    if let Some(e) = failed.into_inner() {
        return Err(e);
    }
    let stats = stats?;
    println!(
        "{} frames ({} key) -> {} bytes of AV1, {:.1} Mbit/s at the configured frame rate, {:.1} frames/s",
        stats.frames,
        stats.keyframes,
        stats.bytes,
        stats.kbps / 1000.0,
        stats.frames as f64 / stats.elapsed.as_secs_f64()
    );
    Ok(Outcome::Done)
}
