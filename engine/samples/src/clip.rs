//! The endoscope clip on disk: 8K split into four quadrant tracks.
//!
//! 8K leaves a camera over quad-link 12G-SDI as four 4K quadrants ("square
//! division"); the clip keeps that shape. Each quadrant is its own FFV1 track in
//! one Matroska file, which also keeps every coded frame under the ~15 MiB that
//! GStreamer's Matroska demuxer reads in one block (a whole lossless 8K frame
//! with sensor noise is 20-25 MB). Reading decodes each track into its own
//! appsink and [`GstSource`] copies the four quadrants into one frame.

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::endoscope::{EndoscopeScene, FramePlanes, LesionKind, SceneConfig};
use super::{
    CLIP, CREATION_TIME, FPS, FrameLabel, GenerateOptions, Labels, Progress, SampleError, Size,
};
use med8k_capture::{GstError, GstSource, SinkOptions, SourceOptions, quote_location};
use med8k_media::frame::{FrameLayout, FramePool, PixelFormat, VideoFrame};

/// Quadrants in track order: (left, top) in units of half the frame.
const QUADRANTS: [(u32, u32); 4] = [(0, 0), (1, 0), (0, 1), (1, 1)];

/// Intra-only FFV1 version 3 with 16 CRC-protected slices: lossless,
/// seekable at every frame, encoded and decoded in parallel slices. Slice
/// threads only: libav's frame threading keeps input frames in flight after
/// GStreamer releases them, and the generator recycles frame buffers.
const FFV1: &str = "avenc_ffv1 slices=16 slicecrc=true threads=0 thread-type=slice gop-size=1";

/// The sink description that splits frames into quadrant tracks.
fn writer_description(path: &Path, size: Size) -> String {
    let (hw, hh) = (size.width / 2, size.height / 2);
    let mut d = String::from("tee name=quad ");
    for (i, (qx, qy)) in QUADRANTS.iter().enumerate() {
        let (left, right) = if *qx == 0 { (0, hw) } else { (hw, 0) };
        let (top, bottom) = if *qy == 0 { (0, hh) } else { (hh, 0) };
        d.push_str(&format!(
            "quad. ! queue ! videocrop left={left} right={right} top={top} bottom={bottom} ! {FFV1} ! mux.video_{i} "
        ));
    }
    d.push_str(&format!(
        "matroskamux name=mux ! filesink location={}",
        quote_location(path)
    ));
    d
}

/// The source description that decodes each quadrant track into its own appsink.
fn reader_description(location: &str) -> String {
    let mut d = format!("filesrc location={location} ! matroskademux name=demux");
    for i in 0..QUADRANTS.len() {
        d.push_str(&format!(
            " demux.video_{i} ! queue ! avdec_ffv1 ! appsink name=quadrant{i}"
        ));
    }
    d
}

/// Open a clip written by [`write`], frames `size`; [`GstSource`] puts the
/// quadrants back together as it copies them out.
pub(super) fn open(path: &Path, size: Size, options: SourceOptions) -> Result<GstSource, GstError> {
    let (hw, hh) = (size.width / 2, size.height / 2);
    let tiles = QUADRANTS
        .iter()
        .enumerate()
        .map(|(i, (qx, qy))| (format!("quadrant{i}"), qx * hw, qy * hh))
        .collect();
    GstSource::open_file(
        path,
        reader_description,
        options.tiled(size.width, size.height, tiles),
    )
}

/// Held while GLib's global generator is seeded and the writer opened.
///
/// `matroskamux` draws each TrackUID from GLib's global generator
/// (`g_random_int`) when its pads are requested, as the writer is parsed, and
/// writes it in as few bytes as the value needs: about one track in 256 gets
/// a 7-byte UID, so a clip of four tracks came out one byte shorter in about
/// one run in 64, with every frame the same ([`stamp_uids`] rewrites the
/// values in place but cannot change their length). Seeding the generator
/// from the sample seed makes the draws, and so the file's layout, a function
/// of the seed; the lock keeps two writers in one process from interleaving
/// their draws.
static UID_DRAWS: Mutex<()> = Mutex::new(());

/// The GLib seed for sample seed `seed`.
fn glib_seed(seed: u64) -> u32 {
    let d = Sha256::digest(format!("med8k matroska glib seed {seed}"));
    u32::from_le_bytes([d[0], d[1], d[2], d[3]])
}

/// Render the scene frame by frame into the clip and mask PNGs.
pub(super) fn write(
    opts: &GenerateOptions,
    progress: &mut dyn FnMut(Progress<'_>),
) -> Result<Labels, SampleError> {
    let scene = EndoscopeScene::new(SceneConfig {
        width: opts.size.width,
        height: opts.size.height,
        frames: opts.frames,
        seed: opts.seed,
    })?;
    let clip = opts.out.join(CLIP);
    let mut sink = {
        // See `UID_DRAWS`: the muxer's TrackUIDs come from this seed.
        let _draws = UID_DRAWS.lock().unwrap_or_else(|p| p.into_inner());
        gstreamer::glib::random_set_seed(glib_seed(opts.seed));
        SinkOptions::default()
            .framerate(FPS as i32, 1)
            .creation_time(CREATION_TIME)
            .colorimetry("bt2020")
            .open(&writer_description(&clip, opts.size))?
    };
    let layout = Arc::new(
        FrameLayout::packed(opts.size.width, opts.size.height, PixelFormat::I422_10)
            .map_err(|e| SampleError::BadSize(e.to_string()))?,
    );
    // Frames go to GStreamer without a copy and come back to the pool when encoded.
    let pool = FramePool::new(layout.size(), 4);
    let source: Arc<str> = Arc::from("endoscope-scene");
    let (mw, mh) = (scene.mask_width(), scene.mask_height());
    let mut mask = vec![0u8; mw as usize * mh as usize];
    let mut frames = Vec::with_capacity(opts.frames as usize);
    for index in 0..opts.frames {
        progress(Progress {
            task: "clip",
            done: u64::from(index),
            total: u64::from(opts.frames),
        });
        // The renderer writes every sample, so a recycled buffer needs no clearing.
        let mut frame = VideoFrame::new(
            layout.clone(),
            pool.acquire(),
            u64::from(index),
            source.clone(),
        )
        .map_err(|e| SampleError::BadSize(e.to_string()))?;
        let strides: Vec<usize> = frame
            .layout()
            .planes()
            .iter()
            .map(|p| p.stride / 2)
            .collect();
        let truth = {
            let mut planes = frame.planes_u16_mut().into_iter();
            let (Some(y), Some(cb), Some(cr)) = (planes.next(), planes.next(), planes.next())
            else {
                unreachable!("I422_10 has three planes")
            };
            let mut out = FramePlanes {
                y,
                y_stride: strides[0],
                cb,
                cr,
                c_stride: strides[1],
                mask: &mut mask,
            };
            scene.render(index, &mut out)?
        };
        sink.push(frame)?;
        let mut label = FrameLabel {
            index,
            anomalous: truth.anomalous,
            lesions: truth
                .lesions
                .iter()
                .map(|l| lesion_name(*l).to_owned())
                .collect(),
            mask: None,
            mask_pixels: truth.mask_pixels,
        };
        if truth.anomalous {
            let name = format!("masks/frame_{index:05}.png");
            write_mask(&opts.out.join(&name), mw, mh, &mask)?;
            label.mask = Some(name);
        }
        frames.push(label);
    }
    progress(Progress {
        task: "clip",
        done: u64::from(opts.frames),
        total: u64::from(opts.frames),
    });
    sink.finish(Duration::from_secs(600))?;
    stamp_uids(&clip, opts.seed)?;
    Ok(Labels {
        clip: CLIP.to_owned(),
        size: opts.size,
        mask_scale: EndoscopeScene::MASK_SCALE,
        frames,
        cubes: Vec::new(),
    })
}

fn lesion_name(l: LesionKind) -> &'static str {
    match l {
        LesionKind::RaisedRedPatch => "raised_red_patch",
        LesionKind::Bleeding => "bleeding",
    }
}

fn write_mask(path: &Path, w: u32, h: u32, mask: &[u8]) -> Result<(), SampleError> {
    let err = |e: &dyn std::fmt::Display| SampleError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(e.to_string()),
    };
    let file = File::create(path).map_err(|source| SampleError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let mut enc = png::Encoder::new(BufWriter::new(file), w, h);
    enc.set_color(png::ColorType::Grayscale);
    enc.set_depth(png::BitDepth::Eight);
    let mut writer = enc.write_header().map_err(|e| err(&e))?;
    writer.write_image_data(mask).map_err(|e| err(&e))?;
    writer.finish().map_err(|e| err(&e))
}

/// `matroskamux` draws the SegmentUID and each TrackUID at random; make them a
/// function of the seed so that the same options give the same bytes. Walks
/// the EBML tree (Segment > Info > SegmentUID, Segment > Tracks > TrackEntry >
/// TrackUID) in the file's first 64 KiB and overwrites the values in place.
fn stamp_uids(path: &Path, seed: u64) -> Result<(), SampleError> {
    let io = |source| SampleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(io)?;
    let mut head = vec![0u8; 64 * 1024];
    let n = file.read(&mut head).map_err(io)?;
    let mut uids = Vec::new();
    find_uids(&head[..n], 0, &mut uids);
    if !uids.iter().any(|(id, _, _)| *id == SEGMENT_UID)
        || !uids.iter().any(|(id, _, _)| *id == TRACK_UID)
    {
        return Err(SampleError::Io {
            path: path.to_path_buf(),
            source: std::io::Error::other("Matroska header without SegmentUID or TrackUID"),
        });
    }
    for (k, (id, pos, len)) in uids.into_iter().enumerate() {
        let digest = Sha256::digest(format!("med8k matroska uid {id:x} {k} {seed}"));
        let mut bytes = digest[..len].to_vec();
        bytes[0] |= 1; // a UID must not be zero
        file.seek(SeekFrom::Start(pos as u64)).map_err(io)?;
        file.write_all(&bytes).map_err(io)?;
    }
    Ok(())
}

const SEGMENT_UID: u32 = 0x73A4;
const TRACK_UID: u32 = 0x73C5;

/// Collect (id, offset, length) of UID values under the master elements that hold them.
fn find_uids(buf: &[u8], base: usize, out: &mut Vec<(u32, usize, usize)>) {
    const MASTERS: [u32; 4] = [0x1853_8067, 0x1549_A966, 0x1654_AE6B, 0xAE];
    let mut pos = 0;
    while let Some((id, id_len)) = vint(&buf[pos..], true) {
        let Some((size, size_len)) = vint(&buf[pos + id_len..], false) else {
            return;
        };
        let start = pos + id_len + size_len;
        let id = id as u32;
        // An unknown or oversized size means "to the end of what we hold".
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| start.checked_add(s))
            .map_or(buf.len(), |e| e.min(buf.len()));
        if MASTERS.contains(&id) {
            find_uids(&buf[start..end], base + start, out);
        } else if (id == SEGMENT_UID || id == TRACK_UID) && (1..=16).contains(&(end - start)) {
            out.push((id, base + start, end - start));
        }
        if end <= pos {
            return;
        }
        pos = end;
    }
}

/// An EBML variable-length integer: (value, length). IDs keep their marker bit.
fn vint(buf: &[u8], keep_marker: bool) -> Option<(u64, usize)> {
    let first = *buf.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || buf.len() < len {
        return None;
    }
    let mut v = if keep_marker {
        u64::from(first)
    } else {
        u64::from(first) & (0xFF >> len)
    };
    for b in &buf[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    Some((v, len))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The length of each TrackUID value in a clip's header.
    fn track_uid_lengths(path: &Path) -> Vec<usize> {
        let head = std::fs::read(path).unwrap_or_default();
        let mut uids = Vec::new();
        find_uids(&head[..head.len().min(64 * 1024)], 0, &mut uids);
        uids.into_iter()
            .filter(|(id, _, _)| *id == TRACK_UID)
            .map(|(_, _, len)| len)
            .collect()
    }

    /// A sample seed whose seeded draws give the muxer a 7-byte TrackUID
    /// (a UID's high 32 bits come from the first of its two draws).
    fn seed_with_a_short_uid() -> u64 {
        (0..100_000u64)
            .find(|&s| {
                let _draws = UID_DRAWS.lock().unwrap_or_else(|p| p.into_inner());
                gstreamer::glib::random_set_seed(glib_seed(s));
                (0..QUADRANTS.len()).any(|_| {
                    let high = gstreamer::glib::random_int();
                    let _low = gstreamer::glib::random_int();
                    high >> 24 == 0
                })
            })
            .unwrap_or_else(|| unreachable!("one seed in ~64 has a short UID"))
    }

    /// The four encoder branches run on their own threads at any size; at
    /// 8K a run came out a byte short now and then. Where a random UID
    /// would be short, two runs with the same seed must still agree byte
    /// for byte, and the short UID must be there (the draws followed the seed).
    #[test]
    #[allow(clippy::unwrap_used)] // a test fails loudly
    fn same_seed_same_clip_bytes_even_where_a_track_uid_is_short() {
        let seed = seed_with_a_short_uid();
        let size = Size {
            width: 128,
            height: 72,
        };
        let mut clips = Vec::new();
        for _ in 0..2 {
            let dir = tempfile::tempdir().unwrap();
            let opts = GenerateOptions::new()
                .out(dir.path())
                .size(size)
                .frames(3)
                .seed(seed);
            crate::generate_clip(&opts, &mut |_| {}).unwrap();
            let path = dir.path().join(CLIP);
            assert!(
                track_uid_lengths(&path).contains(&7),
                "seed {seed}: {:?}",
                track_uid_lengths(&path)
            );
            clips.push(std::fs::read(path).unwrap());
        }
        assert!(clips[0] == clips[1], "seed {seed}: the clips differ");
    }
}
