//! Received frames to a GStreamer sink: decode the wavelet bitstream and
//! hand the picture over in the engine's frame layout.

use std::time::Duration;

use anyhow::{Context, bail};
use med8k_engine::codec;
use med8k_engine::frame::{PixelFormat, VideoFrame};
use med8k_engine::gst::{GstSink, SinkOptions};
use med8k_engine::picture::{Layout, Picture};

/// A sink opened on the first frame.
#[derive(Debug)]
pub struct Display {
    description: String,
    sink: Option<GstSink>,
    shown: u64,
}

impl Display {
    pub fn new(description: &str) -> Display {
        Display {
            description: description.to_owned(),
            sink: None,
            shown: 0,
        }
    }

    /// Decodes `bitstream` and pushes it.
    pub fn show(&mut self, bitstream: &[u8]) -> anyhow::Result<()> {
        let pic = codec::decode(bitstream).context("decoding a received frame")?;
        let mut frame = to_frame(&pic)?;
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

    /// Frames pushed so far.
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
