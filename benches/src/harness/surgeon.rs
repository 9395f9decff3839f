//! The surgeon's scenario: capture → detector → overlay → monitor sink, and
//! the latency from capture to the glass.
//!
//! The clip is read into memory and replayed as a live camera at 60 fps
//! ([`Replay`]): each camera slot copies the next frame, writes its sequence
//! number into the top rows of the luma plane ([`stamp`]) and hands it to the
//! pipeline, which drops the oldest queued frame when the engine is behind.
//! The monitor sink is a GStreamer pipeline ending in an `appsink`; its
//! callback reads the code back from the converted picture ([`read_stamp`])
//! and records `now − captured_at` on the same `Instant` clock as every
//! stage's own latency. The code is pixels, so it survives any element in
//! between (conversion, overlays, an output card's packing).

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use med8k_capture::SourceOptions;
use med8k_codec::Config;
use med8k_detect::model::Model;
use med8k_media::frame::{PixelFormat, VideoFrame, v210};
use med8k_media::imageio::{RawFormat, RawSpec};
use med8k_pipeline::detect::{DetectStage, copy_frame};
use med8k_pipeline::encode::{Backend, EncodeStage};
use med8k_pipeline::input::InputSpec;
use med8k_pipeline::{BoxError, Pipeline, Poll, Shutdown, SinkStage, Source, V210Unpack};

use super::usage::Meter;
use super::{Better, HarnessOptions, Scenario, StageFigures};

/// Bits in the stamp: 24 of sequence number, 8 of check.
pub const STAMP_BITS: u32 = 32;
/// Side of one stamp cell in pixels.
pub const CELL: u32 = 8;
/// The camera's rate.
pub const FPS: f64 = 60.0;

/// Where the stamp starts (x = y): inside the detector's anomaly border,
/// which is `width / 256` pixels thick, with a cell of margin.
fn origin(width: u32) -> usize {
    ((width / 256).max(1) * 2 + CELL) as usize
}

/// The check byte that makes a misread stamp unlikely to pass.
fn check(seq: u32) -> u32 {
    (seq ^ (seq >> 8) ^ (seq >> 16) ^ 0xA5) & 0xFF
}

/// The stamp's bits for `seq`, most significant first.
fn code(seq: u64) -> u32 {
    let s = (seq & 0xFF_FFFF) as u32;
    (s << 8) | check(s)
}

/// Write `seq` into [`CELL`] rows of the luma plane near the top-left corner
/// (inside the overlay's border): [`STAMP_BITS`] cells of [`CELL`]×[`CELL`]
/// pixels, white for 1 and black for 0.
pub fn stamp(frame: &mut VideoFrame, seq: u64) -> Result<(), BoxError> {
    let width = frame.width();
    let o = origin(width);
    if (width as usize) < o + (STAMP_BITS * CELL) as usize
        || (frame.height() as usize) < o + CELL as usize
    {
        return Err(format!(
            "a {}x{} frame is too small for the latency stamp (at least {}x{})",
            width,
            frame.height(),
            o + (STAMP_BITS * CELL) as usize,
            o + CELL as usize
        )
        .into());
    }
    let bits = code(seq);
    let format = frame.format();
    let stride = frame.layout().planes()[0].stride;
    let cell = CELL as usize;
    match format {
        PixelFormat::I422_10 | PixelFormat::I420_10 => {
            let plane = frame.plane_u16_mut(0);
            for row in 0..cell {
                let line = &mut plane[(o + row) * stride / 2 + o..];
                for b in 0..STAMP_BITS as usize {
                    let on = bits >> (STAMP_BITS as usize - 1 - b) & 1 == 1;
                    line[b * cell..(b + 1) * cell].fill(if on { 940 } else { 64 });
                }
            }
        }
        PixelFormat::I420 => {
            let plane = frame.plane_mut(0);
            for row in 0..cell {
                let line = &mut plane[(o + row) * stride + o..];
                for b in 0..STAMP_BITS as usize {
                    let on = bits >> (STAMP_BITS as usize - 1 - b) & 1 == 1;
                    line[b * cell..(b + 1) * cell].fill(if on { 235 } else { 16 });
                }
            }
        }
        PixelFormat::V210 => {
            // Packed as an SDI card delivers it: each luma sample in its
            // 32-bit word (see `v210::group_slots`).
            let plane = frame.plane_mut(0);
            for row in 0..cell {
                let line = &mut plane[(o + row) * stride..];
                for b in 0..STAMP_BITS as usize {
                    let on = bits >> (STAMP_BITS as usize - 1 - b) & 1 == 1;
                    for x in o + b * cell..o + (b + 1) * cell {
                        let (word, slot) = v210::group_slots(0)[x % 6];
                        let at = (x / 6 * 4 + word) * 4;
                        let mut w = u32::from_le_bytes([
                            line[at],
                            line[at + 1],
                            line[at + 2],
                            line[at + 3],
                        ]);
                        w &= !(0x3ff << (slot * 10));
                        w |= (if on { 940 } else { 64 }) << (slot * 10);
                        line[at..at + 4].copy_from_slice(&w.to_le_bytes());
                    }
                }
            }
        }
        other => {
            return Err(format!("the latency stamp needs planar YUV or v210, not {other}").into());
        }
    }
    Ok(())
}

/// Read a stamp from an 8-bit luma (`GRAY8`) picture's rows; `None` when the
/// check byte does not match. Returns the low 24 bits of the sequence number.
pub fn read_stamp(luma: &[u8], stride: usize, width: usize) -> Option<u64> {
    let cell = CELL as usize;
    let o = origin(u32::try_from(width).ok()?);
    if width < o + STAMP_BITS as usize * cell || luma.len() < stride * (o + cell) {
        return None;
    }
    // Each bit is the majority of its cell's pixels, so a thin overlay line
    // (a detector's box edge) across the stamp does not flip it.
    let mut bits = 0u32;
    for b in 0..STAMP_BITS as usize {
        let bright: usize = (0..cell)
            .map(|r| {
                let start = stride * (o + r) + o + b * cell;
                luma[start..start + cell]
                    .iter()
                    .filter(|&&v| v >= 128)
                    .count()
            })
            .sum();
        bits = (bits << 1) | u32::from(bright * 2 > cell * cell);
    }
    let seq = bits >> 8;
    (check(seq) == bits & 0xFF).then_some(u64::from(seq))
}

/// The clip replayed as a live camera (see the module docs).
struct Replay {
    frames: Vec<VideoFrame>,
    total: u64,
    next: u64,
    start: Option<Instant>,
    period: Duration,
    missed: Arc<AtomicU64>,
    captured: Arc<Mutex<HashMap<u64, Instant>>>,
}

impl Source for Replay {
    fn name(&self) -> &str {
        "camera"
    }

    fn is_live(&self) -> bool {
        true
    }

    fn poll(&mut self) -> Result<Poll, BoxError> {
        if self.next >= self.total || self.frames.is_empty() {
            return Ok(Poll::End);
        }
        let start = *self.start.get_or_insert_with(Instant::now);
        let due = start + self.period.mul_f64(self.next as f64);
        let now = Instant::now();
        if now < due {
            std::thread::sleep((due - now).min(Duration::from_millis(100)));
            if Instant::now() < due {
                return Ok(Poll::Idle);
            }
        }
        // A camera does not wait: slots that passed while we were busy are lost.
        let slot = ((Instant::now() - start).as_secs_f64() / self.period.as_secs_f64()) as u64;
        if slot > self.next {
            let skip = (slot - self.next).min(self.total - self.next - 1);
            self.missed.fetch_add(skip, Ordering::Relaxed);
            self.next += skip;
        }
        let seq = self.next;
        self.next += 1;
        let original = &self.frames[(seq % self.frames.len() as u64) as usize];
        let mut frame = copy_frame(original)?;
        stamp(&mut frame, seq)?;
        frame.seq = seq;
        frame.captured_at = Instant::now();
        self.captured
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(seq & 0xFF_FFFF, frame.captured_at);
        Ok(Poll::Frame(frame))
    }
}

/// Frames read back at the glass.
#[derive(Default)]
struct Glass {
    /// (seq, ms since capture) in arrival order.
    seen: Vec<(u64, f64)>,
    unreadable: u64,
}

/// The first `n` frames of a raw v210 file, packed as an SDI card delivers
/// them (rows padded to 128 bytes).
fn preload_v210(clip: &Path, spec: RawSpec, n: usize) -> anyhow::Result<Vec<VideoFrame>> {
    use std::io::Read;
    anyhow::ensure!(
        spec.format == RawFormat::V210,
        "--format {}: the surgeon's camera replays a clip or raw v210 (as an SDI card delivers it)",
        spec.format.name()
    );
    let mut file =
        std::fs::File::open(clip).with_context(|| format!("opening {}", clip.display()))?;
    let mut frames = Vec::new();
    let row = PixelFormat::V210.row_bytes(0, spec.width);
    let mut bytes = vec![0u8; row * spec.height as usize];
    while frames.len() < n {
        match file.read_exact(&mut bytes) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
            Err(e) => return Err(e).with_context(|| format!("reading {}", clip.display())),
        }
        let mut frame = VideoFrame::zeroed(spec.width, spec.height, PixelFormat::V210)?;
        let stride = frame.layout().planes()[0].stride;
        let plane = frame.plane_mut(0);
        for (y, src) in bytes.chunks_exact(row).enumerate() {
            plane[y * stride..][..row].copy_from_slice(src);
        }
        frames.push(frame);
    }
    anyhow::ensure!(
        !frames.is_empty(),
        "{} holds no whole {}x{} v210 frame ({} bytes each)",
        clip.display(),
        spec.width,
        spec.height,
        bytes.len()
    );
    Ok(frames)
}

/// The first `n` frames of `clip`, copied out of GStreamer's pool.
fn preload(clip: &Path, n: usize) -> anyhow::Result<Vec<VideoFrame>> {
    // A sample set's clip is four quadrant tracks; InputSpec assembles them.
    let mut source = InputSpec::file(clip, None)
        .open_with(SourceOptions::default().id("bench"))
        .and_then(|i| i.into_source())
        .with_context(|| format!("opening {}", clip.display()))?;
    let mut frames = Vec::new();
    for frame in source.frames().take(n) {
        frames.push(copy_frame(&frame?)?);
    }
    anyhow::ensure!(!frames.is_empty(), "{} has no frames", clip.display());
    Ok(frames)
}

fn ms(us: u64) -> f64 {
    us as f64 / 1e3
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// One pass: the replayed camera through `stages` into the glass.
struct Pass {
    glass: Glass,
    stages: Vec<StageFigures>,
    dropped: u64,
    missed: u64,
    camera_frames: u64,
    seconds: f64,
}

fn pass(
    frames: &[VideoFrame],
    total: u64,
    detect: Option<DetectStage>,
    record: Option<EncodeStage>,
) -> anyhow::Result<Pass> {
    let captured = Arc::new(Mutex::new(HashMap::new()));
    let missed = Arc::new(AtomicU64::new(0));
    let replay = Replay {
        frames: frames.iter().map(copy_frame).collect::<Result<_, _>>()?,
        total,
        next: 0,
        start: None,
        period: Duration::from_secs_f64(1.0 / FPS),
        missed: Arc::clone(&missed),
        captured: Arc::clone(&captured),
    };
    let sink = med8k_capture::SinkOptions::default()
        .framerate(FPS as i32, 1)
        .open("videoconvert ! video/x-raw,format=GRAY8 ! appsink name=glass sync=false")?;
    let appsink = sink
        .element("glass")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .context("the monitor sink has no appsink")?;
    let glass = Arc::new(Mutex::new(Glass::default()));
    {
        let (glass, captured) = (Arc::clone(&glass), Arc::clone(&captured));
        appsink.set_callbacks(
            gst_app::AppSinkCallbacks::builder()
                .new_sample(move |sink| {
                    let now = Instant::now();
                    let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                    let read = || -> Option<u64> {
                        let caps = sample.caps()?;
                        let s = caps.structure(0)?;
                        let width = s.get::<i32>("width").ok()? as usize;
                        let buffer = sample.buffer()?;
                        let map = buffer.map_readable().ok()?;
                        // GRAY8 rows are padded to 4 bytes.
                        let stride = width.div_ceil(4) * 4;
                        read_stamp(map.as_slice(), stride, width)
                    };
                    let mut g = glass.lock().unwrap_or_else(|p| p.into_inner());
                    match read().and_then(|seq| {
                        let at = *captured
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .get(&seq)?;
                        Some((seq, at))
                    }) {
                        Some((seq, at)) => g.seen.push((seq, (now - at).as_secs_f64() * 1e3)),
                        None => g.unreadable += 1,
                    }
                    Ok(gst::FlowSuccess::Ok)
                })
                .build(),
        );
    }
    let mut pipeline = Pipeline::new(replay).queue(2);
    if frames
        .first()
        .is_some_and(|f| f.format() == PixelFormat::V210)
    {
        // What the engine does first with an SDI card's frames.
        pipeline = pipeline.stage(V210Unpack);
    }
    if let Some(d) = detect {
        pipeline = pipeline.stage(d.draw(true));
    }
    if let Some(r) = record {
        pipeline = pipeline.stage(r);
    }
    let pipeline = pipeline.stage(SinkStage::new(sink, Duration::from_secs(60)));
    let report = pipeline
        .run(&Shutdown::new())
        .map_err(|e| anyhow::anyhow!("surgeon pipeline: {e}: {}", e.source))?;
    let stages = report
        .stages
        .iter()
        .map(|s| StageFigures {
            name: s.name.clone(),
            fps: s.fps,
            p50_ms: ms(s.since_capture.p50_us),
            p99_ms: ms(s.since_capture.p99_us),
            max_ms: ms(s.since_capture.max_us),
            dropped: s.dropped,
        })
        .collect();
    let glass = std::mem::take(&mut *glass.lock().unwrap_or_else(|p| p.into_inner()));
    Ok(Pass {
        glass,
        stages,
        dropped: report.source.dropped,
        missed: missed.load(Ordering::Relaxed),
        camera_frames: report.source.frames_out,
        seconds: report.seconds,
    })
}

fn figures(s: &mut Scenario, prefix: &str, p: &Pass) {
    let mut lat: Vec<f64> = p.glass.seen.iter().map(|(_, ms)| *ms).collect();
    lat.sort_by(f64::total_cmp);
    let period_ms = 1e3 / FPS;
    let f = |n: &str| format!("{prefix}{n}");
    s.figure(f("camera frames"), p.camera_frames as f64, "", Better::None);
    s.figure(f("frames at the glass"), lat.len() as f64, "", Better::None);
    s.figure(
        f("glass rate"),
        lat.len() as f64 / p.seconds.max(1e-9),
        "fps",
        Better::Higher,
    );
    s.figure(
        f("capture→glass p50"),
        percentile(&lat, 0.5),
        "ms",
        Better::Lower,
    );
    s.figure(
        f("capture→glass p99"),
        percentile(&lat, 0.99),
        "ms",
        Better::Lower,
    );
    s.figure(
        f("capture→glass max"),
        lat.last().copied().unwrap_or(0.0),
        "ms",
        Better::Lower,
    );
    s.figure(
        f("late frames (over one frame, 16.7 ms)"),
        lat.iter().filter(|&&v| v > period_ms).count() as f64,
        "",
        Better::Lower,
    );
    s.figure(
        f("frames dropped (stale)"),
        p.dropped as f64,
        "",
        Better::Lower,
    );
    s.figure(
        f("camera slots missed by the replay"),
        p.missed as f64,
        "",
        Better::Lower,
    );
    s.figure(
        f("stamps unreadable at the glass"),
        p.glass.unreadable as f64,
        "",
        Better::Lower,
    );
}

/// Run the surgeon's scenario on `clip` with `model` (when given).
/// `sample_frames`: the clip's frame count when it is a sample set's
/// (four quadrant tracks), for GStreamer's own decode as the peer.
pub fn run(
    clip: &Path,
    sample_frames: Option<u64>,
    model: Option<&Path>,
    options: &HarnessOptions,
    progress: &mut dyn FnMut(&str),
) -> anyhow::Result<Scenario> {
    let read_started = Instant::now();
    let n = if options.quick { 24 } else { 8 };
    let frames = match options.raw {
        Some(spec) => preload_v210(clip, spec, n)?,
        None => preload(clip, n)?,
    };
    let read_fps = frames.len() as f64 / read_started.elapsed().as_secs_f64().max(1e-9);
    let (w, h) = (frames[0].width(), frames[0].height());
    let model = model
        .map(Model::load)
        .transpose()
        .context("loading the detector")?;
    let mut s = Scenario::new(
        "surgeon",
        format!(
            "{w}x{h} {} replayed at {FPS} fps → {}overlay → videoconvert → appsink (read back)",
            frames[0].format(),
            if model.is_some() {
                "detector (latest frame wins) → "
            } else {
                ""
            }
        ),
    );
    progress("  monitor: camera → detector → overlay → sink");
    let meter = Meter::start();
    let detect = model
        .as_ref()
        .map(|m| DetectStage::new(m, None))
        .transpose()
        .map_err(|e| anyhow::anyhow!("detector: {e}"))?;
    let monitor = pass(&frames, options.surgeon_frames, detect, None)?;
    let usage = meter.stop();
    figures(&mut s, "", &monitor);
    s.usage(&usage, monitor.camera_frames);
    s.series = monitor.glass.seen.clone();
    s.stages = monitor.stages.clone();

    // The same with the encoder recording alongside (GPU when there is one).
    let (encoder, where_) = Backend::Auto
        .encoder(&Config::lossless())
        .map_err(|e| anyhow::anyhow!("encoder: {e}"))?;
    progress(&format!("  monitor + recording: encoder on {where_}"));
    let detect = model
        .as_ref()
        .map(|m| DetectStage::new(m, None))
        .transpose()
        .map_err(|e| anyhow::anyhow!("detector: {e}"))?;
    let record =
        EncodeStage::new(encoder, None, false).map_err(|e| anyhow::anyhow!("encoder: {e}"))?;
    let recording = pass(&frames, options.surgeon_frames, detect, Some(record))?;
    figures(&mut s, "with recording: ", &recording);
    s.stages
        .extend(recording.stages.iter().map(|st| StageFigures {
            name: format!("{} (with recording)", st.name),
            ..st.clone()
        }));
    s.notes.push(format!(
        "Recording encoder: wavelet lossless on {where_}. The replay copies each frame from memory \
         (a capture card would DMA it); capture time is taken after the copy."
    ));
    s.figure(
        "clip read and decode (med8k capture)",
        read_fps,
        "fps",
        Better::Higher,
    );
    if let Some(n) = sample_frames {
        match super::scenarios::gstreamer_decode(clip, n) {
            Some((fps, command)) => {
                s.figure(
                    "clip decode, GStreamer alone (gst-launch)",
                    fps,
                    "fps",
                    Better::Higher,
                );
                s.notes.push(format!("peer: {command}"));
            }
            None => s
                .notes
                .push("gst-launch-1.0 could not decode the clip".into()),
        }
    }
    if options.raw.is_some() {
        s.notes.push(
            "Raw v210 input: the camera replays the file's frames packed as an SDI card \
             delivers them (the stamp written into the packed luma), and the engine's first \
             stage unpacks them to planar 4:2:2."
                .into(),
        );
    }
    s.notes
        .push("Not measured here: GPU time per frame.".into());
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_from_eight_bit_luma_and_a_damaged_one_does_not() {
        let (w, h) = (STAMP_BITS * CELL + 16, 24);
        for seq in [0u64, 1, 0xAB_CDEF, (1 << 24) + 5] {
            let mut frame = VideoFrame::zeroed(w, h, PixelFormat::I422_10).unwrap();
            stamp(&mut frame, seq).unwrap();
            // What videoconvert makes of it: 10-bit to 8-bit luma.
            let stride = frame.layout().planes()[0].stride / 2;
            let luma: Vec<u8> = frame.plane_u16_mut(0)[..stride * h as usize]
                .iter()
                .map(|&v| (v >> 2) as u8)
                .collect();
            assert_eq!(read_stamp(&luma, stride, w as usize), Some(seq & 0xFF_FFFF));
            let o = origin(w);
            let cell = CELL as usize;
            // A one-pixel line down the stamp (a box edge) changes nothing.
            let mut lined = luma.clone();
            for r in 0..h as usize {
                lined[r * stride + o + 3 * cell + 2] = 255;
            }
            assert_eq!(
                read_stamp(&lined, stride, w as usize),
                Some(seq & 0xFF_FFFF)
            );
            // A whole data cell flipped: the check byte no longer matches.
            let mut damaged = luma.clone();
            for r in 0..cell {
                for x in 0..cell {
                    let at = stride * (o + r) + o + 3 * cell + x;
                    damaged[at] = 255 - damaged[at];
                }
            }
            assert_eq!(read_stamp(&damaged, stride, w as usize), None);
        }
    }

    #[test]
    fn a_stamp_in_packed_v210_reads_back_after_unpacking_and_leaves_chroma_alone() {
        // Odd widths: the stamp crosses 6-pixel groups at every offset.
        for w in [STAMP_BITS * CELL + 16, STAMP_BITS * CELL + 29] {
            let h = 24;
            let mut planar = VideoFrame::zeroed(w, h, PixelFormat::I422_10).unwrap();
            for (p, plane) in planar.planes_u16_mut().into_iter().enumerate() {
                for (i, v) in plane.iter_mut().enumerate() {
                    *v = (64 + (i * 7 + p * 101) % 800) as u16;
                }
            }
            // What packing and unpacking alone give (row padding aside).
            let plain = v210::unpack(&v210::pack(&planar).unwrap()).unwrap();
            for seq in [0u64, 0x12_3456, 0xFF_FFFF] {
                let mut packed = v210::pack(&planar).unwrap();
                stamp(&mut packed, seq).unwrap();
                let unpacked = v210::unpack(&packed).unwrap();
                let stride = unpacked.layout().planes()[0].stride / 2;
                let luma: Vec<u8> = unpacked.plane_u16(0)[..stride * h as usize]
                    .iter()
                    .map(|&v| (v >> 2) as u8)
                    .collect();
                assert_eq!(read_stamp(&luma, stride, w as usize), Some(seq));
                assert_eq!(unpacked.plane_u16(1), plain.plane_u16(1), "Cb changed");
                assert_eq!(unpacked.plane_u16(2), plain.plane_u16(2), "Cr changed");
                // Luma changed only inside the stamp's cells.
                let o = origin(w);
                let cells = (o..o + CELL as usize, o..o + (STAMP_BITS * CELL) as usize);
                for (i, (a, b)) in unpacked
                    .plane_u16(0)
                    .iter()
                    .zip(plain.plane_u16(0))
                    .enumerate()
                {
                    let (y, x) = (i / stride, i % stride);
                    if !(cells.0.contains(&y) && cells.1.contains(&x)) {
                        assert_eq!(a, b, "luma changed at {x},{y}");
                    }
                }
            }
        }
    }

    #[test]
    fn a_frame_too_narrow_for_the_stamp_is_an_error() {
        let mut frame = VideoFrame::zeroed(64, 16, PixelFormat::I422_10).unwrap();
        let err = stamp(&mut frame, 1).unwrap_err().to_string();
        assert!(err.contains("too small"), "{err}");
    }
}
