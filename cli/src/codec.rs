//! `med8k codec encode|decode`: pictures, raw frames, recorded clips and
//! cubes in and out of the wavelet codec.
//!
//! A single picture codes to one bitstream (`M8KW…`). Several frames (a raw
//! file of many frames, a recorded clip) code to a sequence file
//! ([`med8k_engine::codec::sequence`]).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use med8k_engine::codec::gpu::{GpuContext, GpuDecoder};
use med8k_engine::codec::sequence::{self, SequenceWriter};
use med8k_engine::codec::stage;
use med8k_engine::codec::{self, Config, Encoder};
use med8k_engine::gst::SourceOptions;
use med8k_engine::imageio::{self, RawFrames, RawSpec};
use med8k_engine::picture::Picture;

use crate::Outcome;

/// Where the codec runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// The Rust twin, on every core.
    Cpu,
    /// WGSL kernels through wgpu (a real GPU, or lavapipe).
    Gpu,
}

/// Which codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum CodecKind {
    /// med8k's wavelet intra codec (lossless or rate-controlled).
    Wavelet,
    /// AV1 (rav1e) after a downscale to 4:2:0, for thin links.
    Av1,
}

#[derive(Debug, clap::Args)]
pub struct EncodeArgs {
    /// Input: .png, .ppm/.pgm, .hdr (ENVI cube), .mkv (recorded clip), or raw with --format.
    #[arg(long = "in")]
    input: PathBuf,
    /// Output bitstream (.m8k), or .ivf with --codec av1.
    #[arg(long)]
    out: PathBuf,
    /// Every sample comes back exactly (the default).
    #[arg(long, conflicts_with = "bpp")]
    lossless: bool,
    /// Target bits per pixel per frame (each frame within 5%).
    #[arg(long)]
    bpp: Option<f64>,
    /// wavelet or av1.
    #[arg(long, value_enum, default_value_t = CodecKind::Wavelet)]
    codec: CodecKind,
    /// cpu or gpu.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Raw input layout, WIDTHxHEIGHT:FORMAT (for example 7680x4320:I422_10LE).
    #[arg(long)]
    format: Option<RawSpec>,
    /// Wavelet levels.
    #[arg(long, default_value_t = codec::DEFAULT_LEVELS)]
    levels: u8,
    /// Lines per slice.
    #[arg(long, default_value_t = codec::DEFAULT_SLICE_HEIGHT)]
    slice_height: u32,
    /// AV1: target bit rate in Mbit/s (the brief's link classes are 150, 40 and 20).
    #[arg(long, default_value_t = 40.0)]
    mbps: f64,
    /// AV1: downscale factor before coding (1, 2 or 4).
    #[arg(long, default_value_t = 2)]
    scale: u32,
    /// Most frames to take from a clip or raw file.
    #[arg(long)]
    frames: Option<u64>,
}

#[derive(Debug, clap::Args)]
pub struct DecodeArgs {
    /// A .m8k bitstream or sequence.
    #[arg(long = "in")]
    input: PathBuf,
    /// Output: .png, .ppm/.pgm, .hdr, or anything else for raw (sequences are always raw).
    #[arg(long)]
    out: PathBuf,
    /// cpu or gpu.
    #[arg(long, value_enum, default_value_t = Backend::Cpu)]
    backend: Backend,
}

/// An encoder on the chosen backend.
pub fn encoder(config: &Config, backend: Backend) -> anyhow::Result<Encoder> {
    let backend = match backend {
        Backend::Cpu => stage::Backend::Cpu,
        Backend::Gpu => stage::Backend::Gpu,
    };
    Ok(backend.encoder(config)?.0)
}

/// The GPU context, or an error saying why there is none.
pub fn gpu() -> anyhow::Result<Arc<GpuContext>> {
    GpuContext::new().map_err(|e| anyhow::anyhow!("{e} (install mesa-vulkan-drivers for lavapipe)"))
}

/// Frames of an input file, one at a time.
pub fn frames(
    input: &Path,
    format: Option<RawSpec>,
    limit: Option<u64>,
) -> anyhow::Result<Box<dyn Iterator<Item = anyhow::Result<Picture>>>> {
    let ext = input
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase);
    let limit = limit.unwrap_or(u64::MAX) as usize;
    if ext.as_deref() == Some("mkv") {
        let mut source = match input.parent().map(|d| d.join("manifest.json")) {
            Some(m) if m.exists() => {
                let dir = input.parent().context("clip has no folder")?;
                med8k_engine::samples::open(dir)?.open_clip(SourceOptions::default())?
            }
            _ => med8k_engine::gst::GstSource::open_clip(input, SourceOptions::default())?,
        };
        let it = std::iter::from_fn(move || match source.next_frame() {
            Ok(Some(f)) => Some(Picture::from_frame(&f).map_err(anyhow::Error::from)),
            Ok(None) => None,
            Err(e) => Some(Err(e.into())),
        });
        return Ok(Box::new(it.take(limit)));
    }
    if let Some(spec) = format
        && matches!(
            imageio::kind_for(input, Some(spec))?,
            imageio::FileKind::Raw(_)
        )
    {
        let mut raw = RawFrames::open(input, spec)?;
        let it =
            std::iter::from_fn(move || raw.next_picture().map_err(anyhow::Error::from).transpose());
        return Ok(Box::new(it.take(limit)));
    }
    let pic = imageio::read_picture(input, format)
        .with_context(|| format!("reading {}", input.display()))?;
    Ok(Box::new(std::iter::once(Ok(pic))))
}

pub fn encode(args: &EncodeArgs) -> anyhow::Result<Outcome> {
    if args.codec == CodecKind::Av1 {
        return crate::av1::encode(
            &args.input,
            &args.out,
            args.format,
            args.frames,
            args.mbps,
            args.scale,
            args.backend,
        );
    }
    let mode = match (args.lossless, args.bpp) {
        (_, Some(b)) => codec::Mode::Bpp(b),
        _ => codec::Mode::Lossless,
    };
    let config = Config::lossless()
        .with_mode(mode)
        .with_levels(args.levels)
        .with_slice_height(args.slice_height);
    config.validate()?;
    let mut enc = encoder(&config, args.backend)?;
    let mut packets = Vec::new();
    let mut samples = 0usize;
    for pic in frames(&args.input, args.format, args.frames)? {
        let pic = pic?;
        samples += pic.samples();
        let p = enc.encode(&pic)?;
        tracing::info!(bytes = p.data.len(), bpp = p.bpp, "frame coded");
        packets.push(p);
    }
    if packets.is_empty() {
        bail!("{} holds no frames", args.input.display());
    }
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?,
    );
    let bytes: usize = packets.iter().map(|p| p.data.len()).sum();
    if packets.len() == 1 {
        out.write_all(&packets[0].data)?;
        out.flush()?;
    } else {
        let mut seq = SequenceWriter::new(out)?;
        for p in &packets {
            seq.write_frame(&p.data)?;
        }
        seq.finish()?;
    }
    let mean_bpp = packets.iter().map(|p| p.bpp).sum::<f64>() / packets.len() as f64;
    println!(
        "{} frame(s) -> {} bytes, {:.3} bits/pixel, {:.2}:1 against 16-bit samples",
        packets.len(),
        bytes,
        mean_bpp,
        (samples * 2) as f64 / bytes as f64
    );
    Ok(Outcome::Done)
}

pub fn decode(args: &DecodeArgs) -> anyhow::Result<Outcome> {
    let data =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let frames = sequence::split(&data).with_context(|| args.input.display().to_string())?;
    let mut gpu_dec = match args.backend {
        Backend::Gpu => Some(GpuDecoder::new(gpu()?)),
        Backend::Cpu => None,
    };
    let mut decode_one = |bytes: &[u8]| -> anyhow::Result<Picture> {
        Ok(match gpu_dec.as_mut() {
            Some(d) => d.decode(bytes, codec::DEFAULT_MAX_SAMPLES)?,
            None => codec::decode(bytes)?,
        })
    };
    let name = args.input.display().to_string();
    if frames.len() == 1 {
        let pic = decode_one(frames[0]).with_context(|| format!("decoding {name}"))?;
        imageio::write_picture(&args.out, &pic)?;
        let spec = imageio::raw_spec_for(&pic)
            .map(|s| s.to_string())
            .unwrap_or_default();
        println!(
            "{}x{} {} {}-bit -> {} {spec}",
            pic.width(),
            pic.height(),
            pic.layout(),
            pic.bit_depth(),
            args.out.display()
        );
        return Ok(Outcome::Done);
    }
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(&args.out)
            .with_context(|| format!("creating {}", args.out.display()))?,
    );
    let mut spec = String::new();
    for (i, f) in frames.iter().enumerate() {
        let pic = decode_one(f).with_context(|| format!("decoding frame {i} of {name}"))?;
        imageio::append_raw(&mut out, &pic)?;
        spec = imageio::raw_spec_for(&pic)?.to_string();
    }
    out.flush()?;
    println!(
        "{} frames -> {} (raw {spec})",
        frames.len(),
        args.out.display()
    );
    Ok(Outcome::Done)
}
