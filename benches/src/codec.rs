//! The codec bench (`med8k bench codec`): compression ratio and speed of the
//! wavelet codec on each backend, and of OpenJPH (HTJ2K), FFV1 and JPEG-LS
//! (FFmpeg) on the same pictures in the same run, when those tools are
//! installed.
//!
//! Ratios are against the packed samples (samples × bit depth). med8k's
//! times are in-process medians; the peers' are wall-clock medians of their
//! command-line tools, file I/O and process start included.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use med8k_codec::{Config, metrics};
use med8k_media::imageio::RawSpec;
use med8k_media::picture::{Layout, Picture};
use med8k_pipeline::encode::Backend;
use med8k_pipeline::input::InputSpec;
use serde::Serialize;

/// What the codec bench measures.
#[derive(Debug, Clone)]
pub struct CodecBenchOptions {
    /// Pictures, clips or cubes; the recorded samples when none are given.
    pub files: Vec<PathBuf>,
    /// Layout of raw inputs.
    pub format: Option<RawSpec>,
    /// Frames taken from each clip.
    pub frames: u64,
    /// Timed runs per measurement (the median is reported).
    pub runs: usize,
    /// Rate-controlled targets in bits per pixel.
    pub bpp: Vec<f64>,
    /// Backends to measure (default: cpu, and gpu when an adapter exists).
    pub backends: Vec<Backend>,
    /// Leave out OpenJPH and FFmpeg.
    pub no_peers: bool,
}

/// One measured row: a picture, a codec and a mode.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// The input and frame (`endoscope.mkv#0`).
    pub input: String,
    /// Size, layout and depth.
    pub picture: String,
    /// `med8k-wavelet/cpu`, `openjph`, ...
    pub codec: String,
    /// `lossless` or `3 bpp`.
    pub mode: String,
    /// Coded bytes.
    pub bytes: u64,
    /// Packed samples (samples × bit depth) over coded bits.
    pub ratio: f64,
    /// Bits per pixel.
    pub bpp: f64,
    /// Median encode speed.
    pub encode_mpx_s: f64,
    /// Median decode speed.
    pub decode_mpx_s: Option<f64>,
    /// PSNR when lossy.
    pub psnr_db: Option<f64>,
    /// SSIM (8×8 windows) when lossy.
    pub ssim: Option<f64>,
    /// Whether it decoded to the input exactly.
    pub exact: bool,
    /// med8k on a GPU: the GPU's time per frame, encode then decode, in ms
    /// (the stages' sum; the encode from the stream encoder, lossless only).
    pub gpu_ms: Option<GpuTime>,
}

/// A frame's time on the GPU, stage by stage summed.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct GpuTime {
    /// Encode, ms (median over the runs); `None` for a rate-controlled mode.
    pub encode_ms: Option<f64>,
    /// Decode, ms (median over the runs).
    pub decode_ms: f64,
    /// `GpuTimestamps` (the device's own clock between stages) or `CpuWall`
    /// (a submission and a wait per stage, where the device has no timestamps).
    pub source: med8k_gpu::TimeSource,
}

/// The GPU's time per frame for `pic` coded as `packet` with `lossless`,
/// median of `runs`: the stream encoder and the decoder with per-stage timings.
fn gpu_time(
    ctx: &std::sync::Arc<med8k_gpu::GpuContext>,
    pic: &Picture,
    packet: &[u8],
    lossless: bool,
    runs: usize,
) -> anyhow::Result<GpuTime> {
    use med8k_codec::gpu::{Frame, GpuDecoder, GpuStreamEncoder};
    let mid = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let mut source = med8k_gpu::TimeSource::CpuWall;
    let encode_ms = if lossless {
        let shape = med8k_gpu::SampleLayout::of(pic);
        let mut enc = GpuStreamEncoder::new(ctx.clone(), &Config::lossless(), shape, false)?
            .with_depth(1)
            .with_timings(true);
        let mut out = Vec::new();
        let mut times = Vec::new();
        for _ in 0..runs.max(1) {
            let done = match enc.send_frame(Frame::Picture(pic), &mut out)? {
                Some(d) => d,
                None => enc
                    .receive_packet(&mut out)?
                    .context("the GPU stream encoder gave no packet")?,
            };
            let t = done
                .timings
                .context("no timings from the GPU stream encoder")?;
            source = t.source;
            times.push(t.total_ms());
        }
        Some(mid(times))
    } else {
        None
    };
    let mut dec = GpuDecoder::new(ctx.clone()).with_timings(true);
    let mut times = Vec::new();
    for _ in 0..runs.max(1) {
        dec.decode(packet, u64::MAX)?;
        let t = dec
            .last_timings()
            .context("no timings from the GPU decoder")?;
        source = t.source;
        times.push(t.total_ms());
    }
    Ok(GpuTime {
        encode_ms,
        decode_ms: mid(times),
        source,
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn timed<T>(
    runs: usize,
    mut f: impl FnMut() -> anyhow::Result<T>,
) -> anyhow::Result<(T, Duration)> {
    let mut times = Vec::with_capacity(runs);
    let mut last = None;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        last = Some(f()?);
        times.push(t.elapsed());
    }
    Ok((last.context("no run")?, median(times)))
}

fn inputs(args: &CodecBenchOptions) -> anyhow::Result<Vec<(String, Picture)>> {
    let files = if args.files.is_empty() {
        let dir = med8k_samples::default_dir();
        let set = med8k_samples::open(&dir).with_context(|| {
            format!(
                "no recorded samples in {} (run `med8k samples generate`, or name files)",
                dir.display()
            )
        })?;
        let mut f = vec![set.clip()];
        f.extend(set.cubes());
        f
    } else {
        args.files.clone()
    };
    let mut out = Vec::new();
    for file in files {
        let name = file.file_name().map_or_else(
            || file.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        let input = InputSpec::file(&file, args.format)
            .open("bench")
            .with_context(|| format!("opening {}", file.display()))?;
        for (i, pic) in input.pictures().take(args.frames as usize).enumerate() {
            out.push((format!("{name}#{i}"), pic?));
        }
    }
    Ok(out)
}

/// Measures every input on every backend and mode, and the peers; the
/// rows in order. `progress` hears each input's name.
pub fn bench_codec(
    args: &CodecBenchOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<Row>> {
    let backends = if args.backends.is_empty() {
        match Backend::Gpu.gpu() {
            Ok(_) => vec![Backend::Cpu, Backend::Gpu],
            Err(_) => vec![Backend::Cpu],
        }
    } else {
        args.backends.clone()
    };
    let mut rows = Vec::new();
    let scratch = tempfile::tempdir()?;
    for (name, pic) in inputs(args)? {
        let mpx = f64::from(pic.width()) * f64::from(pic.height()) / 1e6;
        let raw_bits = pic.samples() as f64 * f64::from(pic.bit_depth());
        let desc = format!(
            "{}x{} {} {}-bit",
            pic.width(),
            pic.height(),
            pic.layout(),
            pic.bit_depth()
        );
        progress(&format!("{name}: {desc}"));
        for &backend in &backends {
            let tag = format!(
                "med8k-wavelet/{}",
                if backend == Backend::Cpu {
                    "cpu"
                } else {
                    "gpu"
                }
            );
            let gpu = backend.gpu()?;
            let mut decoder = backend.decoder()?;
            let mut dec =
                |data: &[u8]| -> anyhow::Result<Picture> { Ok(decoder.decode(data, u64::MAX)?) };
            let mut modes = vec![("lossless".to_owned(), Config::lossless())];
            modes.extend(
                args.bpp
                    .iter()
                    .map(|&b| (format!("{b} bpp"), Config::bpp(b))),
            );
            for (mode, config) in modes {
                let (mut enc, _) = backend.encoder(&config)?;
                let (packet, te) = timed(args.runs, || Ok(enc.encode(&pic)?))?;
                let (back, td) = timed(args.runs, || dec(&packet.data))?;
                let exact = back == pic;
                if config.mode == med8k_codec::Mode::Lossless && !exact {
                    bail!("{name}: {tag} lossless decode differs from the input");
                }
                let lossy = config.mode != med8k_codec::Mode::Lossless;
                let gpu_ms = match &gpu {
                    Some(ctx) => Some(gpu_time(ctx, &pic, &packet.data, !lossy, args.runs)?),
                    None => None,
                };
                rows.push(Row {
                    input: name.clone(),
                    picture: desc.clone(),
                    codec: tag.clone(),
                    mode,
                    bytes: packet.data.len() as u64,
                    ratio: raw_bits / (packet.data.len() as f64 * 8.0),
                    bpp: packet.bpp,
                    encode_mpx_s: mpx / te.as_secs_f64(),
                    decode_mpx_s: Some(mpx / td.as_secs_f64()),
                    psnr_db: lossy.then(|| metrics::psnr(&pic, &back)),
                    ssim: lossy.then(|| metrics::ssim(&pic, &back)),
                    exact,
                    gpu_ms,
                });
            }
        }
        if !args.no_peers {
            rows.extend(peers(&name, &desc, &pic, scratch.path(), args.runs)?);
        }
    }
    Ok(rows)
}

/// The rows as the terminal table `med8k bench codec` prints.
pub fn print_table(rows: &[Row]) {
    println!(
        "{:<24} {:<22} {:<20} {:<9} {:>7} {:>7} {:>10} {:>10} {:>7} {:>7}",
        "input",
        "picture",
        "codec",
        "mode",
        "ratio",
        "bpp",
        "enc Mpx/s",
        "dec Mpx/s",
        "PSNR",
        "SSIM"
    );
    for r in rows {
        let opt = |v: Option<f64>, p: usize| v.map_or("-".to_owned(), |v| format!("{v:.p$}"));
        println!(
            "{:<24} {:<22} {:<20} {:<9} {:>7.3} {:>7.3} {:>10.1} {:>10} {:>7} {:>7}",
            r.input,
            r.picture,
            r.codec,
            r.mode,
            r.ratio,
            r.bpp,
            r.encode_mpx_s,
            opt(r.decode_mpx_s, 1),
            opt(r.psnr_db, 2),
            opt(r.ssim, 4)
        );
    }
}

fn have(tool: &str) -> bool {
    Command::new(tool).arg("-h").output().is_ok()
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd.output().with_context(|| format!("starting {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Planes one after the other, little-endian u16 above 8 bits.
fn planar_bytes(pic: &Picture) -> Vec<u8> {
    let wide = pic.bit_depth() > 8;
    let mut out = Vec::with_capacity(pic.samples() * if wide { 2 } else { 1 });
    for p in pic.planes() {
        if wide {
            out.extend(p.iter().flat_map(|v| v.to_le_bytes()));
        } else {
            out.extend(p.iter().map(|&v| v as u8));
        }
    }
    out
}

#[allow(clippy::too_many_arguments)] // one row's fields, all needed
fn peer_row(
    name: &str,
    desc: &str,
    pic: &Picture,
    codec: &str,
    bytes: u64,
    te: Duration,
    td: Option<Duration>,
    exact: bool,
) -> Row {
    let mpx = f64::from(pic.width()) * f64::from(pic.height()) / 1e6;
    Row {
        input: name.to_owned(),
        picture: desc.to_owned(),
        codec: codec.to_owned(),
        mode: "lossless".to_owned(),
        bytes,
        ratio: pic.samples() as f64 * f64::from(pic.bit_depth()) / (bytes as f64 * 8.0),
        bpp: bytes as f64 * 8.0 / (mpx * 1e6),
        encode_mpx_s: mpx / te.as_secs_f64(),
        decode_mpx_s: td.map(|t| mpx / t.as_secs_f64()),
        psnr_db: None,
        ssim: None,
        exact,
        gpu_ms: None,
    }
}

fn peers(
    name: &str,
    desc: &str,
    pic: &Picture,
    dir: &Path,
    runs: usize,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    let (w, h, d) = (pic.width(), pic.height(), pic.bit_depth());
    let n = pic.layout().plane_count();
    let raw = dir.join("in.yuv");
    let planar = planar_bytes(pic);
    std::fs::write(&raw, &planar)?;
    if have("ojph_compress") {
        // ojph_compress reads 1 or 3 components from a .yuv; cubes go band by band.
        let parts: Vec<(Vec<usize>, u32, u32)> = if n == 1 || n == 3 {
            vec![((0..n).collect(), w, h)]
        } else {
            (0..n).map(|p| (vec![p], w, h)).collect()
        };
        let (mut bytes, mut te, mut td, mut exact) = (0u64, Duration::ZERO, Duration::ZERO, true);
        for (i, (planes, pw, ph)) in parts.iter().enumerate() {
            let k = planes.len();
            let src = dir.join(format!("ojph{i}.yuv"));
            let j2c = dir.join(format!("ojph{i}.j2c"));
            let back = dir.join(format!("ojph{i}.out.yuv"));
            let mut data = Vec::new();
            for &p in planes {
                for &v in &pic.planes()[p] {
                    if d > 8 {
                        data.extend(v.to_le_bytes());
                    } else {
                        data.push(v as u8);
                    }
                }
            }
            std::fs::write(&src, &data)?;
            let downsamp = planes
                .iter()
                .map(|&p| {
                    let (sx, sy) = pic.layout().subsampling(p);
                    format!("{{{},{}}}", 1 << sx, 1 << sy)
                })
                .collect::<Vec<_>>()
                .join(",");
            let list = |v: &str| vec![v; k].join(",");
            let (_, t) = timed(runs, || {
                run(Command::new("ojph_compress")
                    .arg("-i")
                    .arg(&src)
                    .arg("-o")
                    .arg(&j2c)
                    .args(["-num_decomps", "5", "-reversible", "true"])
                    .arg("-dims")
                    .arg(format!("{{{pw},{ph}}}"))
                    .args([
                        "-num_comps",
                        &k.to_string(),
                        "-signed",
                        &list("false"),
                        "-bit_depth",
                        &list(&d.to_string()),
                    ])
                    .args(["-downsamp", &downsamp]))
            })?;
            te += t;
            let (_, t) = timed(runs, || {
                run(Command::new("ojph_expand")
                    .arg("-i")
                    .arg(&j2c)
                    .arg("-o")
                    .arg(&back))
            })?;
            td += t;
            exact &= std::fs::read(&back)? == data;
            bytes += std::fs::metadata(&j2c)?.len();
        }
        rows.push(peer_row(
            name,
            desc,
            pic,
            "OpenJPH (HTJ2K)",
            bytes,
            te,
            Some(td),
            exact,
        ));
    }
    if have("ffmpeg") {
        let fmt = match (pic.layout(), d) {
            (Layout::Yuv422, 9..=10) => Some("yuv422p10le"),
            (Layout::Yuv420, 9..=10) => Some("yuv420p10le"),
            (Layout::Yuv420, 1..=8) => Some("yuv420p"),
            (Layout::Gray, 1..=8) => Some("gray"),
            (Layout::Gray, _) => Some("gray16le"),
            (Layout::Rgb, 1..=8) => Some("gbrp"),
            _ => None,
        };
        let ffmpeg = || {
            let mut c = Command::new("ffmpeg");
            c.args(["-hide_banner", "-loglevel", "error", "-y"]);
            c
        };
        // FFV1 on the whole picture (planes reordered for gbrp: G, B, R).
        if let Some(fmt) = fmt {
            let src = if fmt == "gbrp" {
                let p = pic.planes();
                let mut v = Vec::new();
                for plane in [&p[1], &p[2], &p[0]] {
                    v.extend(plane.iter().map(|&x| x as u8));
                }
                let path = dir.join("in.gbrp");
                std::fs::write(&path, v)?;
                path
            } else {
                raw.clone()
            };
            let mkv = dir.join("out.mkv");
            let back = dir.join("back.raw");
            let (_, te) = timed(runs, || {
                run(ffmpeg()
                    .args(["-f", "rawvideo", "-pix_fmt", fmt, "-s", &format!("{w}x{h}")])
                    .arg("-i")
                    .arg(&src)
                    .args([
                        "-c:v",
                        "ffv1",
                        "-level",
                        "3",
                        "-slices",
                        "16",
                        "-slicecrc",
                        "1",
                        "-g",
                        "1",
                    ])
                    .arg(&mkv))
            })?;
            let (_, td) = timed(runs, || {
                run(ffmpeg()
                    .arg("-i")
                    .arg(&mkv)
                    .args(["-f", "rawvideo", "-pix_fmt", fmt])
                    .arg(&back))
            })?;
            let exact = std::fs::read(&back)? == std::fs::read(&src)?;
            rows.push(peer_row(
                name,
                desc,
                pic,
                "FFV1 (ffmpeg)",
                std::fs::metadata(&mkv)?.len(),
                te,
                Some(td),
                exact,
            ));
        }
        // JPEG-LS plane by plane (FFmpeg's encoder takes gray and gray16 only).
        let mut bytes = 0u64;
        let t = Instant::now();
        for (p, plane) in pic.planes().iter().enumerate() {
            let (pw, ph) = pic.plane_dims(p);
            let (fmt, data): (&str, Vec<u8>) = if d > 8 {
                (
                    "gray16le",
                    plane.iter().flat_map(|v| v.to_le_bytes()).collect(),
                )
            } else {
                ("gray", plane.iter().map(|&v| v as u8).collect())
            };
            let src = dir.join(format!("plane{p}.raw"));
            std::fs::write(&src, data)?;
            let out = dir.join(format!("plane{p}.jls"));
            run(ffmpeg()
                .args([
                    "-f",
                    "rawvideo",
                    "-pix_fmt",
                    fmt,
                    "-s",
                    &format!("{pw}x{ph}"),
                ])
                .arg("-i")
                .arg(&src)
                .args(["-c:v", "jpegls", "-frames:v", "1", "-f", "image2"])
                .arg(&out))?;
            bytes += std::fs::metadata(&out)?.len();
        }
        rows.push(peer_row(
            name,
            desc,
            pic,
            "JPEG-LS (ffmpeg)",
            bytes,
            t.elapsed(),
            None,
            true,
        ));
    }
    Ok(rows)
}
