//! The far end of an AV1 class in [`super::frames`]: med8k has no AV1
//! decoder of its own, so the frames delivered are written, in order, to
//! an IVF file and decoded by FFmpeg after the run.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, bail};
use med8k_av1::{IvfWriter, downscale_420};
use med8k_codec::metrics::psnr;
use med8k_media::picture::{Layout, Picture};

use super::fidelity::delta_e;
use super::frames::{Arrived, Camera, Decoded};

/// `pic` cut to `width`×`height` (at most one line and column less: the
/// downscale of an odd size).
pub(super) fn crop_even(pic: Picture, width: u32, height: u32) -> anyhow::Result<Picture> {
    if (pic.width(), pic.height()) == (width, height) {
        return Ok(pic);
    }
    let planes = (0..pic.planes().len())
        .map(|p| {
            let (w, _) = pic.plane_dims(p);
            let (cw, ch) = pic.layout().plane_dims(p, width, height);
            (0..ch as usize)
                .flat_map(|y| {
                    pic.planes()[p][y * w as usize..][..cw as usize]
                        .iter()
                        .copied()
                })
                .collect()
        })
        .collect();
    Ok(Picture::new(
        pic.layout(),
        width,
        height,
        pic.bit_depth(),
        planes,
    )?)
}

/// The AV1 frames delivered, in order, decoded by FFmpeg, each compared
/// with the downscaled picture the encoder was given.
pub(super) fn decode_av1(
    frames: &[Arrived],
    camera: &Camera,
    pictures: &[Picture],
    factor: u32,
    index_of: &dyn Fn(u64) -> usize,
) -> anyhow::Result<Decoded> {
    if frames.is_empty() {
        return Ok(Decoded::default());
    }
    let mut frames: Vec<&Arrived> = frames.iter().collect();
    frames.sort_by_key(|f| f.seq);
    let (w, h) = (camera.width, camera.height);
    let dir = tempfile::tempdir()?;
    let ivf = dir.path().join("delivered.ivf");
    let file = std::io::BufWriter::new(std::fs::File::create(&ivf)?);
    let mut writer = IvfWriter::new(file, w, h, (60, 1), frames.len() as u32)?;
    for (i, f) in frames.iter().enumerate() {
        writer.write_frame(&f.payload, i as u64)?;
    }
    writer.finish()?;
    let raw = ffmpeg_decode(&ivf)?;
    let size = (w * h + 2 * (w / 2) * (h / 2)) as usize;
    let decoded = raw.len() / size;
    let mut out = Decoded::default();
    for (f, bytes) in frames.iter().zip(raw.chunks_exact(size)) {
        let original = &pictures[index_of(f.capture_us) % pictures.len()];
        let want = crop_even(downscale_420(original, factor, 8)?, w, h)?;
        let (y, rest) = bytes.split_at((w * h) as usize);
        let (u, v) = rest.split_at(((w / 2) * (h / 2)) as usize);
        let planes = [y, u, v]
            .iter()
            .map(|p| p.iter().map(|&b| u16::from(b)).collect())
            .collect();
        let got = Picture::new(Layout::Yuv420, w, h, 8, planes)?;
        out.psnr.push(psnr(&want, &got));
        out.delta_e.extend(delta_e(&want, &got));
    }
    out.decoded = decoded as u64;
    Ok(out)
}

/// FFmpeg's decode of an IVF file to 8-bit 4:2:0 (FFmpeg's default AV1
/// decoder, libdav1d where built with it).
fn ffmpeg_decode(ivf: &Path) -> anyhow::Result<Vec<u8>> {
    let o = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(ivf)
        .args(["-f", "rawvideo", "-pix_fmt", "yuv420p", "-"])
        .output()
        .context("running ffmpeg to decode the AV1 frames delivered (is FFmpeg installed?)")?;
    if !o.status.success() {
        let why = String::from_utf8_lossy(&o.stderr);
        bail!(
            "ffmpeg could not decode the AV1 frames delivered: {}",
            why.lines().next_back().unwrap_or("no message").trim()
        );
    }
    Ok(o.stdout)
}
