//! Received frames to a GStreamer sink: decode the wavelet bitstream, draw
//! the newest detection that came with the frames (boxes in green, a red
//! border on an anomalous frame; see `detect::overlay`), and hand the picture
//! over in the engine's frame layout.
//!
//! Detection runs behind the video (latest frame wins on the sending side),
//! so a result is drawn on the frames after the one it was made on, for as
//! long as it is at most [`STALE_FRAMES`] frames old: the surgeon sees boxes
//! follow the picture with the detector's latency, and never boxes left over
//! from a scene long gone.

use std::time::Duration;

use anyhow::{Context, bail};

use med8k_capture::{GstSink, SinkOptions};
use med8k_codec::gpu::{Decoded, GpuStreamDecoder};
use med8k_detect::overlay::{self, Alarms, STALE_FRAMES, UnitRect};
use med8k_media::frame::{PixelFormat, VideoFrame};
use med8k_media::picture::{Layout, Picture};
use med8k_transport::proto::FrameMeta;

/// The marks of one detection, as drawn.
#[derive(Debug, Clone)]
struct Marks {
    seq: u64,
    rects: Vec<UnitRect>,
    alarms: Alarms,
}

/// A sink opened on the first frame.
#[derive(Debug)]
pub struct Display {
    description: String,
    sink: Option<GstSink>,
    shown: u64,
    marks: Option<Marks>,
    /// The GPU's decoder (one frame in flight: the monitor wants the newest
    /// frame now, not throughput) and its picture; the CPU twin without one.
    gpu: Option<(GpuStreamDecoder, Decoded)>,
}

impl Display {
    /// A display on the GStreamer sink `description`, decoding on
    /// `backend` (`auto`: a hardware GPU when there is one).
    pub fn new(description: &str, backend: med8k_pipeline::encode::Backend) -> Display {
        let gpu = match backend.gpu() {
            Ok(Some(ctx)) => {
                tracing::info!(gpu = %ctx.describe(), "the sink's frames are decoded on the GPU");
                Some((
                    GpuStreamDecoder::new(ctx, false).with_depth(1),
                    Decoded::picture(),
                ))
            }
            Ok(None) => None,
            Err(e) => {
                tracing::warn!("no GPU for decoding ({e}); the CPU twin decodes");
                None
            }
        };
        Display {
            description: description.to_owned(),
            sink: None,
            shown: 0,
            marks: None,
            gpu,
        }
    }

    /// Whether frames are decoded on a GPU.
    #[cfg(test)]
    pub fn on_gpu(&self) -> bool {
        self.gpu.is_some()
    }

    /// A detection arrived: it replaces the one drawn so far when it is newer.
    pub fn detected(&mut self, meta: &FrameMeta) {
        if self.marks.as_ref().is_some_and(|m| m.seq > meta.seq) {
            return;
        }
        self.marks = Some(Marks {
            seq: meta.seq,
            rects: meta
                .boxes
                .iter()
                .map(|b| UnitRect {
                    x: b.x,
                    y: b.y,
                    w: b.w,
                    h: b.h,
                })
                .collect(),
            alarms: Alarms {
                anomalous: meta.score > meta.threshold,
                quality: meta.quality.is_some_and(|q| q.value > q.threshold),
            },
        });
    }

    /// Decodes `bitstream` (the frame numbered `link_seq` on the link),
    /// draws the current detection on it, and pushes it.
    pub fn show(&mut self, link_seq: u64, bitstream: &[u8]) -> anyhow::Result<()> {
        let mut frame = to_frame(&self.marked(link_seq, bitstream)?)?;
        frame.seq = self.shown;
        if self.sink.is_none() {
            self.sink = Some(
                SinkOptions::default()
                    .open(&self.description)
                    .with_context(|| format!("opening sink {:?}", self.description))?,
            );
        }
        if let Some(sink) = self.sink.as_mut() {
            sink.push(frame)?;
        }
        self.shown += 1;
        Ok(())
    }

    /// The decoded picture with the current detection drawn on it.
    fn marked(&mut self, link_seq: u64, bitstream: &[u8]) -> anyhow::Result<Picture> {
        let mut pic = match self.decode_on_gpu(bitstream) {
            Some(p) => p.clone(),
            None => med8k_codec::decode(bitstream).context("decoding a received frame")?,
        };
        if let Some(m) = self
            .marks
            .as_ref()
            .filter(|m| m.seq.abs_diff(link_seq) <= STALE_FRAMES)
        {
            overlay::draw(&mut pic, &m.rects, m.alarms);
        }
        Ok(pic)
    }

    /// The frame decoded on the GPU; `None` without one, or when it failed
    /// (then the CPU twin decodes this frame and the ones after: a stream it
    /// cannot decode, such as a rate-controlled one, is the twin's).
    fn decode_on_gpu(&mut self, bitstream: &[u8]) -> Option<&mut Picture> {
        let (decoder, out) = self.gpu.as_mut()?;
        let ok = match decoder.send_packet(bitstream, out) {
            Ok(Some(_)) => true,
            Ok(None) => matches!(decoder.receive_frame(out), Ok(Some(_))),
            Err(e) => {
                tracing::warn!("GPU decode: {e}; the CPU twin decodes from now on");
                false
            }
        };
        if !ok {
            self.gpu = None;
            return None;
        }
        match self.gpu.as_mut() {
            Some((_, Decoded::Picture(p))) => Some(p),
            _ => None,
        }
    }

    pub fn shown(&self) -> u64 {
        self.shown
    }

    /// Ends the stream and waits for the sink.
    pub fn finish(self) -> anyhow::Result<u64> {
        if let Some(sink) = self.sink {
            sink.finish(Duration::from_secs(5))?;
        }
        Ok(self.shown)
    }
}

/// A decoded picture as a video frame (the inverse of `Picture::from_frame`).
fn to_frame(pic: &Picture) -> anyhow::Result<VideoFrame> {
    let format = match (pic.layout(), pic.bit_depth()) {
        (Layout::Yuv422, 10) => PixelFormat::I422_10,
        (Layout::Yuv420, 10) => PixelFormat::I420_10,
        (Layout::Yuv420, 8) => PixelFormat::I420,
        (Layout::Rgb, 8) => PixelFormat::Rgb8,
        (Layout::Rgba, 8) => PixelFormat::Rgba8,
        (layout, depth) => bail!("cannot display {layout:?} at {depth} bits"),
    };
    let (w, h) = (pic.width(), pic.height());
    let mut frame = VideoFrame::zeroed(w, h, format)?;
    let strides: Vec<usize> = frame.layout().planes().iter().map(|p| p.stride).collect();
    match format {
        PixelFormat::Rgb8 | PixelFormat::Rgba8 => {
            let n = pic.planes().len();
            let stride = strides[0];
            let dst = frame.plane_mut(0);
            for y in 0..h as usize {
                let row = &mut dst[y * stride..][..w as usize * n];
                for (x, px) in row.chunks_exact_mut(n).enumerate() {
                    for (c, v) in px.iter_mut().enumerate() {
                        *v = pic.planes()[c][y * w as usize + x] as u8;
                    }
                }
            }
        }
        PixelFormat::I420 => {
            for (p, stride) in strides.iter().enumerate().take(3) {
                let (pw, ph) = pic.plane_dims(p);
                let src = &pic.planes()[p];
                let dst = frame.plane_mut(p);
                for y in 0..ph as usize {
                    for x in 0..pw as usize {
                        dst[y * stride + x] = src[y * pw as usize + x] as u8;
                    }
                }
            }
        }
        _ => {
            for (p, stride) in strides.iter().enumerate().take(3) {
                let (pw, ph) = pic.plane_dims(p);
                let (pw, stride) = (pw as usize, stride / 2);
                let src = &pic.planes()[p];
                let dst = frame.plane_u16_mut(p);
                for y in 0..ph as usize {
                    dst[y * stride..][..pw].copy_from_slice(&src[y * pw..][..pw]);
                }
            }
        }
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;
    use med8k_pipeline::encode::Backend;
    use med8k_transport::proto::BoundingBox;

    fn meta(seq: u64, score: f32) -> FrameMeta {
        FrameMeta {
            channel: 0,
            seq,
            score,
            threshold: 1.0,
            boxes: vec![BoundingBox {
                x: 0.5,
                y: 0.5,
                w: 0.25,
                h: 0.25,
                score,
                class: 0,
            }],
            quality: None,
        }
    }

    /// On a GPU (lavapipe here) the sink's frames are decoded there, the
    /// same pictures as the twin's, to a real GStreamer sink; a stream the
    /// GPU refuses falls back to the twin.
    #[test]
    fn frames_decoded_on_the_gpu_are_the_twins() {
        let mut display = Display::new("fakesink", Backend::Gpu);
        assert!(display.on_gpu(), "lavapipe is a GPU to wgpu");
        let mut encoder = med8k_codec::Config::lossless().new_encoder().unwrap();
        for seq in 0..4u64 {
            let mut pic = Picture::zeroed(Layout::Yuv422, 96, 32, 10).unwrap();
            for (p, plane) in pic.planes_mut().iter_mut().enumerate() {
                for (i, v) in plane.iter_mut().enumerate() {
                    *v = ((i as u64 * 13 + seq * 29 + p as u64) % 1024) as u16;
                }
            }
            let bits = encoder.encode(&pic).unwrap().data;
            assert_eq!(display.marked(seq, &bits).unwrap(), pic, "frame {seq}");
            display.show(seq, &bits).unwrap();
        }
        assert!(display.on_gpu());
        // A rate-controlled frame: whichever decodes it, the twin's picture.
        let mut lossy = med8k_codec::Config::bpp(2.0).new_encoder().unwrap();
        let pic = Picture::zeroed(Layout::Yuv422, 96, 32, 10).unwrap();
        let bits = lossy.encode(&pic).unwrap().data;
        assert_eq!(
            display.marked(9, &bits).unwrap(),
            med8k_codec::decode(&bits).unwrap()
        );
        assert_eq!(display.finish().unwrap(), 4);
    }

    #[test]
    fn the_newest_fresh_detection_is_drawn_and_a_stale_one_is_not() {
        let mut flat = Picture::zeroed(Layout::Yuv422, 64, 32, 10).unwrap();
        for p in flat.planes_mut() {
            p.fill(512);
        }
        let bits = med8k_codec::Config::lossless()
            .new_encoder()
            .unwrap()
            .encode(&flat)
            .unwrap()
            .data;
        let mut display = Display::new("fakesink", Backend::Cpu);
        assert!(!display.on_gpu());
        assert_eq!(
            display.marked(0, &bits).unwrap(),
            flat,
            "nothing detected yet"
        );

        display.detected(&meta(10, 0.5));
        let marked = display.marked(12, &bits).unwrap();
        // The box's top-left corner (32, 16) is outlined, its inside is not.
        assert_ne!(marked.planes()[0][16 * 64 + 32], 512);
        assert_eq!(marked.planes()[0][20 * 64 + 40], 512);
        assert_eq!(marked.planes()[0][0], 512, "no border below the threshold");

        // An older result arriving late does not replace a newer one.
        display.detected(&FrameMeta {
            boxes: Vec::new(),
            ..meta(5, 0.5)
        });
        assert_eq!(display.marked(12, &bits).unwrap(), marked);

        display.detected(&meta(20, 2.0));
        assert_ne!(display.marked(20, &bits).unwrap().planes()[0][0], 512);
        let late = 20 + STALE_FRAMES + 1;
        assert_eq!(display.marked(late, &bits).unwrap(), flat, "stale marks");
    }
}
