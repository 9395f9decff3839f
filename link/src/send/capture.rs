//! The capture thread of a send: pictures from the source, coded, into the
//! link's queue (a live source drops when the queue is full, a file waits),
//! and the newest picture to an idle detector.

use std::time::{Duration, Instant};

use med8k_detect::schedule::Mailbox;
use med8k_media::picture::Layout;
use med8k_pipeline::Shutdown;
use med8k_pipeline::encode::{Backend, ResidentInputs};
use med8k_pipeline::input::Pictures;
use med8k_transport::proto::FrameHeader;
use tokio::sync::mpsc;

use super::detect::ToAnalyse;
use crate::frame_header;

/// A coded frame for the link.
pub(super) struct Coded {
    /// The frame's index in capture order (results name frames by it).
    pub(super) index: u64,
    pub(super) header: FrameHeader,
    pub(super) payload: Vec<u8>,
}

/// What the capture thread came to.
#[derive(Debug, Default)]
pub(super) struct Captured {
    pub(super) frames: u64,
    pub(super) dropped: u64,
    pub(super) encoder: String,
    /// Frames not offered to the detector because their layout is not Y'CbCr.
    pub(super) unsupported: u64,
    /// Model inputs made on the GPU next to compression.
    pub(super) inputs_on_gpu: u64,
}

/// Where captured frames go: coded to the link's queue, and (a copy, when
/// the detector is idle) to the detector.
pub(super) struct FrameSink<'a> {
    pub(super) tx: &'a mpsc::Sender<Coded>,
    pub(super) detector: Option<&'a Mailbox<(u64, ToAnalyse)>>,
    /// The model's input width and height.
    pub(super) input_size: (u32, u32),
}

pub(super) fn capture(
    (pictures, live, limit): (Pictures, bool, usize),
    config: &med8k_codec::Config,
    lossless: bool,
    period: Duration,
    epoch: Instant,
    sink: &FrameSink<'_>,
    stop: &Shutdown,
) -> anyhow::Result<Captured> {
    let tx = sink.tx;
    let (mut encoder, name) = Backend::Auto.encoder(config)?;
    let mut out = Captured {
        encoder: name,
        ..Captured::default()
    };
    let mut next = Instant::now();
    let mut inputs = ResidentInputs::default();
    for pic in pictures.take(limit) {
        if stop.is_requested() {
            break;
        }
        if !live {
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
            next = next.max(Instant::now() - period) + period;
        }
        let pic = pic?;
        let capture_us = epoch.elapsed().as_micros() as u64;
        let index = out.frames;
        // Latest frame wins: only an idle detector gets a frame. On the GPU
        // its input is made after coding, from the picture already there;
        // otherwise the detector gets a copy now and works while this codes.
        let mut offer_input = None;
        if let Some(mailbox) = sink.detector {
            if !matches!(pic.layout(), Layout::Yuv422 | Layout::Yuv420) {
                if out.unsupported == 0 {
                    tracing::warn!(
                        "the source's pictures are {}, not Y'CbCr: no detection",
                        pic.layout()
                    );
                }
                out.unsupported += 1;
            } else if !mailbox.wants() {
                mailbox.pass();
            } else if ResidentInputs::possible(&encoder) {
                offer_input = Some(mailbox);
            } else {
                mailbox.offer((index, ToAnalyse::Picture(pic.clone())));
            }
        }
        let packet = encoder.encode(&pic)?;
        if let Some(mailbox) = offer_input {
            let (iw, ih) = sink.input_size;
            let size = (pic.width() as usize, pic.height() as usize);
            let job = match inputs.make(&encoder, iw, ih) {
                Some(Ok(tensor)) => {
                    out.inputs_on_gpu += 1;
                    ToAnalyse::Input { tensor, size }
                }
                Some(Err(e)) => {
                    tracing::warn!("model input on the GPU: {e}; the detector makes it");
                    ToAnalyse::Picture(pic.clone())
                }
                None => ToAnalyse::Picture(pic.clone()),
            };
            mailbox.offer((index, job));
        }
        out.frames += 1;
        let header = frame_header(&pic, lossless, &packet.data, capture_us);
        let coded = Coded {
            index,
            header,
            payload: packet.data,
        };
        if live {
            match tx.try_send(coded) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => out.dropped += 1,
                Err(mpsc::error::TrySendError::Closed(_)) => break,
            }
        } else if tx.blocking_send(coded).is_err() {
            break;
        }
    }
    Ok(out)
}
