//! `med8k codec encode|decode`: pictures, raw frames, recorded clips and
//! cubes in and out of the wavelet codec, or AV1 for thin links.
//!
//! A single picture codes to one bitstream (`M8KW…`). Several frames (a raw
//! file of many frames, a recorded clip) code to a sequence file
//! ([`med8k_codec::sequence`]). `--codec av1` downscales to 4:2:0 (on the GPU
//! with `--backend gpu`, bit-exact with the CPU), codes with rav1e in its
//! low-latency configuration and writes IVF (GStreamer reads it with
//! `ivfparse ! av1parse ! av1dec`).

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use med8k_av1::gpu::GpuDownscaler;
use med8k_av1::{Av1Config, downscale_420, encode_to_ivf};
use med8k_codec::Config;
use med8k_codec::sequence::{self, SequenceWriter};
use med8k_gpu::GpuError;
use med8k_media::imageio::{self, RawSpec};
use med8k_media::picture::Picture;
use med8k_pipeline::encode::Backend;
use med8k_pipeline::input::InputSpec;

use crate::Outcome;

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
    /// Input: .png, .ppm/.pgm, .hdr (ENVI cube), a recorded clip or sample
    /// folder, raw frames with --format, or a GStreamer pipeline.
    #[arg(long = "in")]
    input: String,
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
    /// cpu, gpu (a real GPU or lavapipe) or auto (a hardware GPU, else cpu).
    #[arg(long, default_value_t = Backend::Cpu)]
    backend: Backend,
    /// Raw input layout, WIDTHxHEIGHT:FORMAT (for example 7680x4320:I422_10LE).
    #[arg(long)]
    format: Option<RawSpec>,
    /// Wavelet levels.
    #[arg(long, default_value_t = med8k_codec::DEFAULT_LEVELS)]
    levels: u8,
    /// Lines per slice.
    #[arg(long, default_value_t = med8k_codec::DEFAULT_SLICE_HEIGHT)]
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
    /// cpu, gpu (a real GPU or lavapipe) or auto (a hardware GPU, else cpu).
    #[arg(long, default_value_t = Backend::Cpu)]
    backend: Backend,
}

pub fn encode(args: &EncodeArgs) -> anyhow::Result<Outcome> {
    if args.codec == CodecKind::Av1 {
        return encode_av1(args);
    }
    let mode = match (args.lossless, args.bpp) {
        (_, Some(b)) => med8k_codec::Mode::Bpp(b),
        _ => med8k_codec::Mode::Lossless,
    };
    let config = Config::lossless()
        .with_mode(mode)
        .with_levels(args.levels)
        .with_slice_height(args.slice_height);
    config.validate()?;
    let is_pnm = std::path::Path::new(&args.input)
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| matches!(e.to_ascii_lowercase().as_str(), "ppm" | "pgm" | "pnm"));
    if is_pnm && mode == med8k_codec::Mode::Lossless && args.backend == Backend::Cpu {
        return encode_strips(args, &config);
    }
    let (mut enc, _) = args.backend.encoder(&config)?;
    let mut packets = Vec::new();
    let mut samples = 0usize;
    for pic in pictures(&args.input, args.format, args.frames)? {
        let pic = pic?;
        samples += pic.samples();
        let p = enc.encode(&pic)?;
        tracing::info!(bytes = p.data.len(), bpp = p.bpp, "frame coded");
        packets.push(p);
    }
    if packets.is_empty() {
        bail!("{} holds no frames", args.input);
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

/// A PNM picture coded lossless on the CPU strip by strip
/// ([`med8k_codec::strips`]): the file is read top to bottom a few slices at
/// a time, each batch coded in parallel and written at once, and the header
/// written last in the room left for it. The bytes are those of coding the
/// whole picture; the memory is a few slices'.
fn encode_strips(args: &EncodeArgs, config: &Config) -> anyhow::Result<Outcome> {
    use std::io::{Seek, SeekFrom};
    let path = std::path::Path::new(&args.input);
    let mut rows = imageio::PnmRows::open(path)?;
    let mut enc = med8k_codec::strips::StripEncoder::new(
        config,
        rows.layout(),
        rows.width(),
        rows.height(),
        rows.bit_depth(),
    )?;
    let file = std::fs::File::create(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let mut out = std::io::BufWriter::new(file);
    // One strip per thread is coded while the next batch is read: the file
    // is read on its own thread, so reading and coding overlap, and at most
    // two batches are in memory.
    let batch = std::thread::available_parallelism().map_or(1, |n| n.get()) as u32;
    let (layout, width, height) = (rows.layout(), rows.width(), rows.height());
    let heights: Vec<u32> = (0..enc.strips()).map(|s| enc.strip_height(s)).collect();
    let written = std::thread::scope(|scope| -> anyhow::Result<u64> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<anyhow::Result<Vec<_>>>(0);
        let input = &args.input;
        scope.spawn(move || {
            for chunk in heights.chunks(batch as usize) {
                let strips = chunk
                    .iter()
                    .map(|&h| {
                        rows.next_rows(h)?
                            .with_context(|| format!("{}: ends early", input))
                    })
                    .collect::<anyhow::Result<Vec<_>>>();
                let failed = strips.is_err();
                // A closed channel means the coder stopped: nothing to read for.
                if tx.send(strips).is_err() || failed {
                    return;
                }
            }
        });
        out.write_all(&vec![0u8; enc.header_len()])?;
        let mut bytes = enc.header_len() as u64;
        while enc.coded() < enc.strips() {
            let strips = rx
                .recv()
                .with_context(|| format!("{}: the reader stopped", args.input))??;
            for slice in enc.code(&strips)? {
                out.write_all(&slice)?;
                bytes += slice.len() as u64;
            }
        }
        out.seek(SeekFrom::Start(0))?;
        out.write_all(&enc.header()?)?;
        out.flush()?;
        Ok(bytes)
    });
    let bytes = match written {
        Ok(b) => b,
        Err(e) => {
            // Never leave a file that looks like a bitstream and is not one.
            let _ = std::fs::remove_file(&args.out);
            return Err(e.context(format!("coding {}", args.input)));
        }
    };
    let samples = layout.plane_count() as u64 * u64::from(width) * u64::from(height);
    let bpp = 8.0 * bytes as f64 / (f64::from(width) * f64::from(height));
    println!(
        "1 frame(s) -> {bytes} bytes, {bpp:.3} bits/pixel, {:.2}:1 against 16-bit samples (coded in {} strips)",
        (samples * 2) as f64 / bytes as f64,
        enc.strips()
    );
    Ok(Outcome::Done)
}

pub fn decode(args: &DecodeArgs) -> anyhow::Result<Outcome> {
    let data =
        std::fs::read(&args.input).with_context(|| format!("reading {}", args.input.display()))?;
    let frames = sequence::split(&data).with_context(|| args.input.display().to_string())?;
    let mut decoder = args.backend.decoder().map_err(no_gpu)?;
    let mut decode_one = |bytes: &[u8]| -> anyhow::Result<Picture> {
        Ok(decoder.decode(bytes, med8k_codec::DEFAULT_MAX_SAMPLES)?)
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

/// The frames of `--in`, at most `limit`.
pub fn pictures(
    input: &str,
    format: Option<RawSpec>,
    limit: Option<u64>,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Picture>>> {
    let input = InputSpec::parse(input, format)
        .open("codec")
        .with_context(|| format!("opening {input}"))?;
    Ok(input
        .pictures()
        .take(limit.unwrap_or(u64::MAX) as usize)
        .map(|p| p.map_err(anyhow::Error::from)))
}

/// A missing GPU, with what to install.
pub fn no_gpu(e: GpuError) -> anyhow::Error {
    anyhow::anyhow!("{e} (install mesa-vulkan-drivers for lavapipe)")
}

fn encode_av1(args: &EncodeArgs) -> anyhow::Result<Outcome> {
    let mbps = args.mbps;
    if !(mbps.is_finite() && mbps > 0.0) {
        bail!("--mbps {mbps} must be a positive number of Mbit/s");
    }
    let cfg = Av1Config::new((mbps * 1000.0).round() as u32);
    let mut gpu = match args.backend.gpu().map_err(no_gpu)? {
        Some(ctx) => Some(GpuDownscaler::new(ctx)?),
        None => None,
    };
    let mut failed = None;
    let pictures = pictures(&args.input, args.format, args.frames)?.map_while(|p| {
        let small = p.and_then(|p| {
            Ok(match gpu.as_mut() {
                Some(g) => g.downscale_420(&p, args.scale, 8)?,
                None => downscale_420(&p, args.scale, 8)?,
            })
        });
        small.map_err(|e| failed = Some(e)).ok()
    });
    let stats = encode_to_ivf(pictures, &cfg, &args.out);
    if let Some(e) = failed {
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
