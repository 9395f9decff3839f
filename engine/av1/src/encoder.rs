//! The AV1 encoder: rav1e in its low-latency configuration.

use rav1e::data::FrameType;
use rav1e::prelude::{FrameParameters, FrameTypeOverride};
use rav1e::{Context, EncoderStatus, Pixel};

use med8k_media::picture::{Layout, Picture};

use crate::*;

/// One coded frame (a temporal unit of OBUs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Av1Packet {
    /// The OBUs.
    pub data: Vec<u8>,
    /// Number of the picture it codes, counting from 0 in sending order.
    pub frame: u64,
    /// True for a key frame (a decoder can start here).
    pub keyframe: bool,
}

pub(crate) enum Ctx {
    Eight(Context<u8>),
    Ten(Context<u16>),
}

/// rav1e encoding one stream of 4:2:0 pictures of one size and depth.
///
/// Call order: [`send_picture`](Self::send_picture) for each picture, each
/// followed by [`receive_packets`](Self::receive_packets) (which returns an
/// empty `Vec` while rav1e fills its lookahead), then
/// [`finish`](Self::finish) once for the remaining packets. Packets come in
/// picture order.
pub struct Av1Encoder {
    pub(crate) config: Av1Config,
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) ctx: Ctx,
    pub(crate) keyframe_requested: bool,
    pub(crate) finished: bool,
    pub(crate) sent: u64,
}

impl std::fmt::Debug for Av1Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Av1Encoder")
            .field("config", &self.config)
            .field("width", &self.width)
            .field("height", &self.height)
            .field("finished", &self.finished)
            .field("sent", &self.sent)
            .finish_non_exhaustive()
    }
}

impl Av1Encoder {
    /// The settings.
    pub fn config(&self) -> &Av1Config {
        &self.config
    }
    /// Picture width.
    pub fn width(&self) -> u32 {
        self.width
    }
    /// Picture height.
    pub fn height(&self) -> u32 {
        self.height
    }
    /// Pictures sent so far.
    pub fn pictures_sent(&self) -> u64 {
        self.sent
    }

    /// Make the next picture sent a key frame (after a receiver lost packets).
    pub fn request_keyframe(&mut self) {
        self.keyframe_requested = true;
    }

    /// The AV1 sequence header OBU, as Matroska's and MP4's codec
    /// configuration carry it.
    pub fn sequence_header(&self) -> Vec<u8> {
        match &self.ctx {
            Ctx::Eight(c) => c.container_sequence_header(),
            Ctx::Ten(c) => c.container_sequence_header(),
        }
    }

    /// Queue one picture: [`Layout::Yuv420`] of the configured size and depth.
    pub fn send_picture(&mut self, pic: &Picture) -> Result<(), Av1Error> {
        if self.finished {
            return Err(Av1Error::Finished);
        }
        if pic.layout() != Layout::Yuv420 {
            return Err(Av1Error::PictureLayout(pic.layout()));
        }
        if (pic.width(), pic.height()) != (self.width, self.height) {
            return Err(Av1Error::PictureSize {
                width: self.width,
                height: self.height,
                got_width: pic.width(),
                got_height: pic.height(),
            });
        }
        if pic.bit_depth() != self.config.bit_depth {
            return Err(Av1Error::PictureDepth {
                expected: self.config.bit_depth,
                got: pic.bit_depth(),
            });
        }
        let key = std::mem::take(&mut self.keyframe_requested);
        match &mut self.ctx {
            Ctx::Eight(c) => send(c, pic, key),
            Ctx::Ten(c) => send(c, pic, key),
        }
        .map_err(|s| match s {
            EncoderStatus::EnoughData => Av1Error::Finished,
            other => Av1Error::Encoder {
                reason: other.to_string(),
            },
        })?;
        self.sent += 1;
        Ok(())
    }

    /// Encode what can be encoded and return the packets ready, possibly none.
    pub fn receive_packets(&mut self) -> Result<Vec<Av1Packet>, Av1Error> {
        let mut out = Vec::new();
        self.drain(&mut out)?;
        Ok(out)
    }

    /// End the stream: encode every picture still queued and return the
    /// remaining packets. Later calls return nothing; later pictures are
    /// [`Av1Error::Finished`].
    pub fn finish(&mut self) -> Result<Vec<Av1Packet>, Av1Error> {
        if !self.finished {
            let flushed = match &mut self.ctx {
                Ctx::Eight(c) => c.send_frame(None),
                Ctx::Ten(c) => c.send_frame(None),
            };
            flushed.map_err(|s| Av1Error::Encoder {
                reason: s.to_string(),
            })?;
            self.finished = true;
        }
        self.receive_packets()
    }

    fn drain(&mut self, out: &mut Vec<Av1Packet>) -> Result<(), Av1Error> {
        match &mut self.ctx {
            Ctx::Eight(c) => drain(c, out),
            Ctx::Ten(c) => drain(c, out),
        }
    }
}

/// Copy `pic` into a rav1e frame and queue it.
fn send<T: Pixel>(ctx: &mut Context<T>, pic: &Picture, key: bool) -> Result<(), EncoderStatus> {
    let mut frame = ctx.new_frame();
    for (p, (dst, src)) in frame.planes.iter_mut().zip(pic.planes()).enumerate() {
        let (pw, _) = pic.plane_dims(p);
        for (d, s) in dst.rows_iter_mut().zip(src.chunks_exact(pw as usize)) {
            for (d, &s) in d.iter_mut().zip(s) {
                *d = T::cast_from(s);
            }
        }
    }
    let params = FrameParameters {
        frame_type_override: if key {
            FrameTypeOverride::Key
        } else {
            FrameTypeOverride::No
        },
        ..FrameParameters::default()
    };
    ctx.send_frame((frame, params))
}

/// Receive packets until rav1e needs more pictures or has emitted them all.
fn drain<T: Pixel>(ctx: &mut Context<T>, out: &mut Vec<Av1Packet>) -> Result<(), Av1Error> {
    loop {
        match ctx.receive_packet() {
            Ok(p) => out.push(Av1Packet {
                data: p.data,
                frame: p.input_frameno,
                keyframe: p.frame_type == FrameType::KEY,
            }),
            // A frame was coded but not shown yet: go on.
            Err(EncoderStatus::Encoded) => {}
            Err(EncoderStatus::NeedMoreData | EncoderStatus::LimitReached) => return Ok(()),
            Err(other) => {
                return Err(Av1Error::Encoder {
                    reason: other.to_string(),
                });
            }
        }
    }
}
