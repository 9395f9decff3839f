//! The thin links' stream, as the sender makes it: the clip downscaled to
//! 4:2:0 (by 2) and coded with med8k's AV1 (rav1e, low latency) at each
//! inter-hospital class's video rate, against x265, SVT-AV1 and rav1e run
//! by FFmpeg at the same rate on the same downscaled frames. FFmpeg's
//! `psnr` filter judges every one of them, ours included, against those
//! frames, so the comparison does not rest on our own metric.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use med8k_av1::{Av1Config, LinkClass, downscale_420, encode_to_ivf};
use med8k_media::imageio::RawSpec;
use med8k_media::picture::Picture;
use med8k_pipeline::input::InputSpec;

/// One coding of the downscaled frames at one class's rate (its bits per
/// pixel at 8K60, applied at the frames' size).
#[derive(Debug, Clone)]
pub struct ThinRow {
    /// The link class (`150 Mbit/s`).
    pub class: String,
    /// `med8k-av1 (rav1e)` or the FFmpeg encoder's name.
    pub codec: String,
    /// The rate asked for, kbit/s.
    pub target_kbps: u32,
    /// The rate reached over the frames coded, kbit/s at 60 frames/s.
    pub kbps: f64,
    /// FFmpeg's PSNR (average over Y, U, V), dB.
    pub psnr_db: f64,
    /// Wall-clock encode time per frame, ms (a peer's includes FFmpeg's start).
    pub encode_ms: f64,
}

/// The FFmpeg peers: encoder, its low-latency settings.
const PEERS: [(&str, &[&str]); 3] = [
    (
        "libx265",
        &[
            "-preset",
            "ultrafast",
            "-tune",
            "zerolatency",
            "-x265-params",
            "log-level=error",
        ],
    ),
    ("libsvtav1", &["-preset", "12"]),
    ("librav1e", &["-speed", "10"]),
];

/// The commands the peers ran (for the report's notes).
pub fn peer_commands() -> Vec<String> {
    PEERS
        .iter()
        .map(|(enc, args)| {
            format!(
                "ffmpeg -f rawvideo -pix_fmt yuv420p -s WxH -r 60 -i frames.yuv -c:v {enc} {} -b:v RATEk out.{}",
                args.join(" "),
                if *enc == "libx265" { "hevc" } else { "ivf" }
            )
        })
        .collect()
}

fn ffmpeg_has(encoder: &str) -> bool {
    Command::new("ffmpeg")
        .args(["-hide_banner", "-encoders"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains(encoder))
}

/// The first `frames` frames of `clip`, downscaled by 2 to 8-bit 4:2:0.
fn downscaled(clip: &Path, raw: Option<RawSpec>, frames: u64) -> anyhow::Result<Vec<Picture>> {
    // `file` knows a sample set's clip (four quadrant tracks make one frame).
    let input = InputSpec::file(clip, raw)
        .open("thin")
        .with_context(|| format!("opening {}", clip.display()))?;
    input
        .pictures()
        .take(frames as usize)
        .map(|p| Ok(downscale_420(&p?, 2, 8)?))
        .collect()
}

/// FFmpeg's PSNR of `coded` against the raw frames.
fn psnr(coded: &Path, raw: &Path, w: u32, h: u32) -> anyhow::Result<f64> {
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-i"])
        .arg(coded)
        .args([
            "-f",
            "rawvideo",
            "-pix_fmt",
            "yuv420p",
            "-s",
            &format!("{w}x{h}"),
        ])
        .args(["-r", "60", "-i"])
        .arg(raw)
        .args(["-lavfi", "[0:v][1:v]psnr", "-f", "null", "-"])
        .output()
        .context("running ffmpeg")?;
    let text = String::from_utf8_lossy(&o.stderr);
    text.lines()
        .filter_map(|l| l.split_once(" average:"))
        .filter_map(|(_, rest)| rest.split_whitespace().next())
        .filter_map(|v| v.parse::<f64>().ok())
        .next_back()
        .with_context(|| {
            format!(
                "ffmpeg gave no PSNR for {}: {}",
                coded.display(),
                text.trim()
            )
        })
}

/// Every class, ours and (without `no_peers`) the peers FFmpeg has.
pub fn thin_links(
    clip: &Path,
    raw: Option<RawSpec>,
    frames: u64,
    no_peers: bool,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Vec<ThinRow>> {
    let pictures = downscaled(clip, raw, frames)?;
    let first = pictures.first().context("the clip has no frames")?;
    let (w, h) = (first.width(), first.height());
    let n = pictures.len() as f64;
    let dir = tempfile::tempdir()?;
    let raw = dir.path().join("frames.yuv");
    let mut bytes = Vec::new();
    for p in &pictures {
        for plane in p.planes() {
            bytes.extend(plane.iter().map(|&v| v as u8));
        }
    }
    std::fs::write(&raw, &bytes)?;
    let peers: Vec<_> = if no_peers {
        Vec::new()
    } else {
        PEERS.iter().filter(|(enc, _)| ffmpeg_has(enc)).collect()
    };
    let mut rows = Vec::new();
    for class in LinkClass::ALL {
        let name = format!("{} Mbit/s", class.link_kbps() / 1000);
        // The class's bits per pixel of 8K60 (3840x2160 after the
        // downscale), applied at these frames' size.
        let share = (f64::from(w) * f64::from(h) / (3840.0 * 2160.0)).min(1.0);
        let kbps = ((f64::from(class.video_kbps()) * share).round() as u32).max(1);
        progress(&format!(
            "  thin link {name}: AV1 at {kbps} kbit/s, {w}x{h} 4:2:0"
        ));
        let ivf = dir.path().join(format!("med8k-{kbps}.ivf"));
        let config = Av1Config::for_link(class).with_bitrate_kbps(kbps);
        let stats = encode_to_ivf(pictures.iter().cloned(), &config, &ivf)?;
        rows.push(ThinRow {
            class: name.clone(),
            codec: "med8k-av1 (rav1e)".into(),
            target_kbps: kbps,
            kbps: stats.kbps,
            psnr_db: psnr(&ivf, &raw, w, h)?,
            encode_ms: stats.elapsed.as_secs_f64() * 1e3 / n,
        });
        for (enc, args) in &peers {
            if *enc == "libsvtav1" && (w < 64 || h < 64 || kbps > 100_000) {
                progress(&format!(
                    "  {enc}: left out (it codes pictures of 64x64 and up, at most 100000 kbit/s)"
                ));
                continue;
            }
            // Bare streams: HEVC Annex B, AV1 in IVF (32 bytes, then 12 per frame).
            let (ext, overhead) = if *enc == "libx265" {
                ("hevc", 0.0)
            } else {
                ("ivf", 32.0 + 12.0 * n)
            };
            let out = dir.path().join(format!("{enc}-{kbps}.{ext}"));
            let started = Instant::now();
            let o = Command::new("ffmpeg")
                .args(["-y", "-v", "error", "-f", "rawvideo", "-pix_fmt", "yuv420p"])
                .args(["-s", &format!("{w}x{h}"), "-r", "60", "-i"])
                .arg(&raw)
                .args(["-c:v", enc])
                .args(*args)
                .args(["-b:v", &format!("{kbps}k")])
                .arg(&out)
                .output()?;
            let elapsed = started.elapsed();
            if !o.status.success() {
                let why = String::from_utf8_lossy(&o.stderr);
                let why = why
                    .lines()
                    .rfind(|l| l.to_ascii_lowercase().contains("error"))
                    .unwrap_or("no message");
                progress(&format!("  {enc} failed: {}", why.trim()));
                continue;
            }
            let size = std::fs::metadata(&out)?.len() as f64 - overhead;
            rows.push(ThinRow {
                class: name.clone(),
                codec: (*enc).to_owned(),
                target_kbps: kbps,
                kbps: size * 8.0 / n * 60.0 / 1000.0,
                psnr_db: psnr(&out, &raw, w, h)?,
                encode_ms: elapsed.as_secs_f64() * 1e3 / n,
            });
        }
    }
    Ok(rows)
}
