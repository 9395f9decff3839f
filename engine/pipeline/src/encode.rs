//! The codec as a pipeline stage: every frame is coded (on the GPU or the
//! CPU twin), optionally written to a sequence file and checked by decoding
//! it again, and passed on unchanged for the local monitor.
//!
//! ```toml
//! [[stage]]
//! kind = "encode"
//! bpp = 3.0             # leave out for lossless
//! backend = "auto"      # auto | cpu | gpu
//! out = "or3.m8ks"      # optional sequence file, relative to the config
//! verify = true         # decode every frame: bit-exact when lossless, PSNR otherwise
//! every = 1             # code one frame in N (a CPU that cannot keep up, a demo)
//! ```
//!
//! Lossless on a GPU, the stage codes through [`GpuStreamEncoder`]: several
//! frames in flight, v210 frames unpacked by the GPU's first kernel (no
//! `v210-unpack` stage needed), one submission per frame; a frame is passed
//! on at once and its packet is written (and verified) when the GPU hands it
//! back, in order. Packets are byte for byte the CPU twin's.

use std::collections::VecDeque;
use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use serde::Deserialize;

use med8k_codec::gpu::{Frame, GpuDecoder, GpuEncoder, GpuStreamEncoder};
use med8k_codec::sequence::SequenceWriter;
use med8k_codec::{Config, DecodeError, Encoder, InvalidConfig, Mode, metrics};
use med8k_detect::gpu_input::{GpuInputError, GpuModelInput};
use med8k_detect::schedule::PreparedInput;
use med8k_gpu::{GpuContext, GpuError, SampleLayout};
use med8k_media::frame::{PixelFormat, VideoFrame, v210};
use med8k_media::picture::Picture;

use crate::detect::InputTap;
use crate::{BoxError, Figures, Stage};

/// Where a codec runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// A hardware GPU when wgpu finds one, else the CPU twin (a software
    /// GPU such as lavapipe is slower than the twin).
    #[default]
    Auto,
    /// The Rust twin on every core.
    Cpu,
    /// The WGSL kernels on whatever adapter wgpu finds, lavapipe included.
    Gpu,
}

/// An encoder that cannot be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The codec settings are out of range.
    #[error(transparent)]
    Config(#[from] InvalidConfig),
    /// `backend = "gpu"` and no adapter.
    #[error("no GPU for the codec: {0} (install mesa-vulkan-drivers for lavapipe)")]
    NoGpu(#[from] GpuError),
    /// The output file cannot be created.
    #[error("cannot create {path}: {source}")]
    Output {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: std::io::Error,
    },
}

impl std::str::FromStr for Backend {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Backend::Auto),
            "cpu" => Ok(Backend::Cpu),
            "gpu" => Ok(Backend::Gpu),
            other => Err(format!("backend {other:?}: expected auto, cpu or gpu")),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Backend::Auto => "auto",
            Backend::Cpu => "cpu",
            Backend::Gpu => "gpu",
        })
    }
}

impl Backend {
    /// The GPU this backend runs on: `None` for the CPU twin (and for
    /// `auto` on a machine with no hardware GPU); an error for `gpu` without
    /// an adapter.
    pub fn gpu(self) -> Result<Option<Arc<GpuContext>>, GpuError> {
        Ok(match self {
            Backend::Cpu => None,
            Backend::Gpu => Some(GpuContext::new()?),
            Backend::Auto => GpuContext::new().ok().filter(|c| !c.is_software()),
        })
    }

    /// A wavelet decoder on this backend.
    pub fn decoder(self) -> Result<Decoder, GpuError> {
        Ok(match self.gpu()? {
            Some(ctx) => Decoder::Gpu(Box::new(GpuDecoder::new(ctx))),
            None => Decoder::Cpu,
        })
    }

    /// An encoder for `config` on this backend, and a description of where it runs.
    pub fn encoder(self, config: &Config) -> Result<(Encoder, String), OpenError> {
        Self::encoder_on(self.gpu()?, config)
    }

    /// An encoder for `config` on `gpu` (the CPU twin without one), and a
    /// description of where it runs.
    pub fn encoder_on(
        gpu: Option<Arc<GpuContext>>,
        config: &Config,
    ) -> Result<(Encoder, String), OpenError> {
        config.validate()?;
        Ok(match gpu {
            Some(ctx) => {
                let name = format!("gpu: {}", ctx.describe());
                (
                    config.new_encoder_with(Box::new(GpuEncoder::new(ctx)))?,
                    name,
                )
            }
            None => (
                config.new_encoder()?,
                format!("cpu: {} threads", rayon::current_num_threads()),
            ),
        })
    }
}

/// A wavelet decoder on the CPU twin or a GPU ([`Backend::decoder`]).
#[derive(Debug)]
pub enum Decoder {
    /// The CPU twin.
    Cpu,
    /// The WGSL kernels.
    Gpu(Box<GpuDecoder>),
}

impl Decoder {
    /// Decode one bitstream, refusing pictures above `max_samples`.
    pub fn decode(&mut self, data: &[u8], max_samples: u64) -> Result<Picture, DecodeError> {
        match self {
            Decoder::Cpu => med8k_codec::decode_with_limit(data, max_samples),
            Decoder::Gpu(d) => d.decode(data, max_samples),
        }
    }
}

/// Codes every frame; see the module docs.
#[derive(Debug)]
pub struct EncodeStage {
    encoder: Encoder,
    out: Option<SequenceWriter<BufWriter<File>>>,
    verify: bool,
    every: u64,
    seen: u64,
    frames: u64,
    raw_bits: f64,
    coded_bytes: u64,
    bpp: (f64, f64),
    psnr_min: f64,
    encode_seconds: f64,
    tap: Option<Arc<InputTap>>,
    inputs: ResidentInputs,
    inputs_made: u64,
    stream: Option<Streaming>,
}

/// The stream encoder of a stage (lossless on a GPU), made at the first
/// frame, when the shape is known, and made again when it changes.
#[derive(Debug)]
struct Streaming {
    ctx: Arc<GpuContext>,
    encoder: Option<(GpuStreamEncoder, SampleLayout, bool)>,
    /// Per frame in flight: when it was sent, its samples, and its picture
    /// when verifying.
    waiting: VecDeque<(Instant, usize, Option<Picture>)>,
    packet: Vec<u8>,
}

impl EncodeStage {
    /// A stage coding with `encoder`, writing a sequence to `out` when given,
    /// decoding every frame again when `verify`.
    pub fn new(encoder: Encoder, out: Option<&Path>, verify: bool) -> Result<Self, OpenError> {
        let out = out
            .map(|path| {
                File::create(path)
                    .and_then(|f| SequenceWriter::new(BufWriter::new(f)))
                    .map_err(|source| OpenError::Output {
                        path: path.to_path_buf(),
                        source,
                    })
            })
            .transpose()?;
        Ok(EncodeStage {
            encoder,
            out,
            verify,
            every: 1,
            seen: 0,
            frames: 0,
            raw_bits: 0.0,
            coded_bytes: 0,
            bpp: (f64::INFINITY, 0.0),
            psnr_min: f64::INFINITY,
            encode_seconds: 0.0,
            tap: None,
            inputs: ResidentInputs::default(),
            inputs_made: 0,
            stream: None,
        })
    }

    /// Code through a [`GpuStreamEncoder`] on `ctx` (lossless only; see the
    /// module docs). The model-input tap is not served from it: a detect
    /// stage after this one makes its own input.
    pub fn streaming(mut self, ctx: Arc<GpuContext>) -> Self {
        if self.encoder.config().mode == Mode::Lossless {
            self.stream = Some(Streaming {
                ctx,
                encoder: None,
                waiting: VecDeque::new(),
                packet: Vec::new(),
            });
            self.tap = None;
        }
        self
    }

    /// Whether the stage codes through a [`GpuStreamEncoder`].
    pub fn is_streaming(&self) -> bool {
        self.stream.is_some()
    }

    /// One packet the stream encoder handed back: written, counted, verified.
    fn take_packet(&mut self, layout: SampleLayout) -> Result<(), BoxError> {
        let Some(st) = self.stream.as_mut() else {
            return Ok(());
        };
        let (sent, samples, original) = st
            .waiting
            .pop_front()
            .ok_or("the stream encoder gave back a packet it was not sent")?;
        self.encode_seconds += sent.elapsed().as_secs_f64();
        let data = std::mem::take(&mut st.packet);
        if let Some(pic) = original {
            self.check(&pic, &data)?;
        }
        if let Some(out) = &mut self.out {
            out.write_frame(&data)?;
        }
        let samples = samples as f64;
        let bpp = 8.0 * data.len() as f64 / (f64::from(layout.width) * f64::from(layout.height));
        self.frames += 1;
        self.raw_bits += samples * f64::from(layout.bit_depth);
        self.coded_bytes += data.len() as u64;
        self.bpp = (self.bpp.0.min(bpp), self.bpp.1.max(bpp));
        if let Some(st) = self.stream.as_mut() {
            st.packet = data;
        }
        Ok(())
    }

    /// Every frame in flight out of the stream encoder, in order.
    fn drain(&mut self) -> Result<(), BoxError> {
        loop {
            let Some(st) = self.stream.as_mut() else {
                return Ok(());
            };
            let Some((enc, layout, _)) = st.encoder.as_mut() else {
                return Ok(());
            };
            let layout = *layout;
            if enc.receive_packet(&mut st.packet)?.is_none() {
                return Ok(());
            }
            self.take_packet(layout)?;
        }
    }

    /// Sends `frame` to the stream encoder; takes the packets that are ready.
    fn process_streaming(&mut self, frame: &VideoFrame) -> Result<(), BoxError> {
        let is_v210 = frame.format() == PixelFormat::V210;
        let pic = if is_v210 {
            None
        } else {
            Some(Picture::from_frame(frame)?)
        };
        let layout = match &pic {
            Some(p) => SampleLayout::of(p),
            None => SampleLayout {
                layout: med8k_media::picture::Layout::Yuv422,
                width: frame.width(),
                height: frame.height(),
                bit_depth: 10,
            },
        };
        let changed = self
            .stream
            .as_ref()
            .and_then(|st| st.encoder.as_ref())
            .is_some_and(|(_, l, v)| *l != layout || *v != is_v210);
        if changed {
            self.drain()?;
        }
        let config = self.encoder.config().clone();
        let verify = self.verify;
        let st = self.stream.as_mut().ok_or("not streaming")?;
        if changed || st.encoder.is_none() {
            let enc = GpuStreamEncoder::new(Arc::clone(&st.ctx), &config, layout, is_v210)?;
            st.encoder = Some((enc, layout, is_v210));
        }
        let samples = pic.as_ref().map_or(
            2 * frame.width() as usize * frame.height() as usize,
            Picture::samples,
        );
        let original = match (verify, &pic) {
            (false, _) => None,
            (true, Some(p)) => Some(p.clone()),
            (true, None) => Some(Picture::from_frame(&v210::unpack(frame)?)?),
        };
        let (enc, _, _) = st.encoder.as_mut().ok_or("no stream encoder")?;
        let input = match &pic {
            Some(p) => Frame::Picture(p),
            None => Frame::V210(frame),
        };
        st.waiting.push_back((Instant::now(), samples, original));
        let got = enc.send_frame(input, &mut st.packet)?;
        if got.is_some() {
            self.take_packet(layout)?;
        }
        loop {
            let st = self.stream.as_mut().ok_or("not streaming")?;
            let (enc, _, _) = st.encoder.as_mut().ok_or("no stream encoder")?;
            if enc.poll_packet(&mut st.packet)?.is_none() {
                return Ok(());
            }
            self.take_packet(layout)?;
        }
    }

    /// Make the model input of a detect stage after this one next to
    /// compression, when the backend can (the GPU); see `detect::stage`.
    pub fn input_tap(mut self, tap: Arc<InputTap>) -> Self {
        self.tap = Some(tap);
        self
    }

    /// Put the model input of the frame just coded into the tap, when wanted.
    fn make_input(&mut self, frame: &VideoFrame) {
        let Some(tap) = self.tap.as_ref().filter(|t| t.wanted()) else {
            return;
        };
        let (w, h) = tap.size();
        match self.inputs.make(&self.encoder, w, h) {
            Some(Ok(tensor)) => {
                tap.put(PreparedInput {
                    seq: frame.seq,
                    captured_at: frame.captured_at,
                    frame_size: (frame.width(), frame.height()),
                    tensor,
                });
                self.inputs_made += 1;
            }
            Some(Err(e)) => {
                // The detector makes its own from now on.
                tracing::warn!(%e, "model input on the GPU failed; the detector makes it on the CPU");
                self.tap = None;
            }
            None => {}
        }
    }

    /// Code one frame in `n` (at least 1) and pass the others on uncoded.
    pub fn every(mut self, n: u64) -> Self {
        self.every = n.max(1);
        self
    }

    fn check(&mut self, pic: &Picture, data: &[u8]) -> Result<(), BoxError> {
        let back = med8k_codec::decode(data)?;
        if self.encoder.config().mode == Mode::Lossless {
            if &back != pic {
                return Err("lossless frame did not decode to the original".into());
            }
        } else {
            self.psnr_min = self.psnr_min.min(metrics::psnr(pic, &back));
        }
        Ok(())
    }
}

impl Stage for EncodeStage {
    fn name(&self) -> &str {
        "encode"
    }

    fn process(&mut self, frame: VideoFrame) -> Result<Option<VideoFrame>, BoxError> {
        self.seen += 1;
        if !(self.seen - 1).is_multiple_of(self.every) {
            return Ok(Some(frame));
        }
        if self.stream.is_some() {
            self.process_streaming(&frame)?;
            return Ok(Some(frame));
        }
        let pic = Picture::from_frame(&frame)?;
        let started = Instant::now();
        let packet = self.encoder.encode(&pic)?;
        self.encode_seconds += started.elapsed().as_secs_f64();
        self.make_input(&frame);
        if self.verify {
            self.check(&pic, &packet.data)?;
        }
        if let Some(out) = &mut self.out {
            out.write_frame(&packet.data)?;
        }
        self.frames += 1;
        self.raw_bits += pic.samples() as f64 * f64::from(pic.bit_depth());
        self.coded_bytes += packet.data.len() as u64;
        self.bpp = (self.bpp.0.min(packet.bpp), self.bpp.1.max(packet.bpp));
        Ok(Some(frame))
    }

    fn finish(&mut self) -> Result<(), BoxError> {
        self.drain()?;
        if let Some(out) = self.out.take() {
            out.finish()?;
        }
        Ok(())
    }

    fn figures(&self) -> Figures {
        let mut f = Figures::new();
        if self.frames == 0 {
            return f;
        }
        f.insert("coded_frames", self.frames as f64);
        f.insert("ratio", self.raw_bits / (8.0 * self.coded_bytes as f64));
        f.insert("bpp_min", self.bpp.0);
        f.insert("bpp_max", self.bpp.1);
        f.insert(
            "encode_ms_mean",
            1000.0 * self.encode_seconds / self.frames as f64,
        );
        if self.verify {
            f.insert("verified_frames", self.frames as f64);
        }
        if self.tap.is_some() || self.inputs_made > 0 {
            f.insert("model_inputs_made", self.inputs_made as f64);
        }
        if self.psnr_min.is_finite() {
            f.insert("psnr_min_db", self.psnr_min);
        }
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use med8k_media::frame::PixelFormat;

    fn frame(seq: u64) -> VideoFrame {
        let mut f = VideoFrame::zeroed(96, 64, PixelFormat::Rgb8).unwrap();
        for (i, b) in f.plane_mut(0).iter_mut().enumerate() {
            *b = ((i as u64 * 7 + seq * 13) % 251) as u8;
        }
        f.seq = seq;
        f
    }

    #[test]
    fn frames_are_coded_written_verified_and_passed_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.m8ks");
        let (encoder, _) = Backend::Cpu.encoder(&Config::lossless()).unwrap();
        let mut stage = EncodeStage::new(encoder, Some(&path), true).unwrap();
        let originals: Vec<Picture> = (0..3)
            .map(|i| Picture::from_frame(&frame(i)).unwrap())
            .collect();
        for i in 0..3 {
            let out = stage.process(frame(i)).unwrap().unwrap();
            assert_eq!(out.seq, i);
        }
        stage.finish().unwrap();
        let figures = stage.figures();
        assert_eq!(figures["verified_frames"], 3.0);
        assert!(figures["ratio"] > 0.0);
        let data = std::fs::read(&path).unwrap();
        let frames = med8k_codec::sequence::split(&data).unwrap();
        assert_eq!(frames.len(), 3);
        for (f, want) in frames.iter().zip(&originals) {
            assert_eq!(&med8k_codec::decode(f).unwrap(), want);
        }
    }

    #[test]
    fn an_unsupported_frame_format_is_an_error() {
        let (encoder, _) = Backend::Cpu.encoder(&Config::lossless()).unwrap();
        let mut stage = EncodeStage::new(encoder, None, false).unwrap();
        let f = VideoFrame::zeroed(64, 32, PixelFormat::V210).unwrap();
        assert!(stage.process(f).is_err());
    }

    #[test]
    fn every_nth_frame_is_coded_and_all_pass_on() {
        let (encoder, _) = Backend::Cpu.encoder(&Config::lossless()).unwrap();
        let mut stage = EncodeStage::new(encoder, None, false).unwrap().every(3);
        for i in 0..7 {
            assert_eq!(stage.process(frame(i)).unwrap().unwrap().seq, i);
        }
        assert_eq!(stage.figures()["coded_frames"], 3.0);
    }

    /// An I422_10 frame with a moving pattern, and its v210 packing.
    fn yuv_frames(seq: u64) -> (VideoFrame, VideoFrame) {
        let mut f = VideoFrame::zeroed(96, 32, PixelFormat::I422_10).unwrap();
        for p in 0..3 {
            for (i, b) in f.plane_mut(p).chunks_exact_mut(2).enumerate() {
                let v = ((i as u64 * 37 + seq * 101 + p as u64 * 7) % 1024) as u16;
                b.copy_from_slice(&v.to_le_bytes());
            }
        }
        f.seq = seq;
        let mut packed = v210::pack(&f).unwrap();
        packed.seq = seq;
        (f, packed)
    }

    /// Lossless on a GPU (lavapipe here) the stage streams: v210 frames and
    /// pictures, more frames than the ring holds, a change of shape midway;
    /// every packet is verified, written in order and byte for byte the CPU
    /// twin's.
    #[test]
    fn the_stream_encoder_writes_the_twins_packets_in_order() {
        let Ok(ctx) = GpuContext::new() else {
            panic!("no GPU adapter (install mesa-vulkan-drivers for lavapipe)");
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.m8ks");
        let config = Config::lossless();
        let (encoder, _) = Backend::encoder_on(Some(Arc::clone(&ctx)), &config).unwrap();
        let mut stage = EncodeStage::new(encoder, Some(&path), true)
            .unwrap()
            .streaming(ctx);
        assert!(stage.is_streaming());
        let mut twin = config.new_encoder().unwrap();
        let mut want = Vec::new();
        for i in 0..5 {
            let (planar, packed) = yuv_frames(i);
            want.push(
                twin.encode(&Picture::from_frame(&planar).unwrap())
                    .unwrap()
                    .data,
            );
            assert_eq!(stage.process(packed).unwrap().unwrap().seq, i);
        }
        for i in 5..7 {
            let f = frame(i);
            want.push(twin.encode(&Picture::from_frame(&f).unwrap()).unwrap().data);
            assert_eq!(stage.process(f).unwrap().unwrap().seq, i);
        }
        stage.finish().unwrap();
        let figures = stage.figures();
        assert_eq!(figures["verified_frames"], 7.0);
        let data = std::fs::read(&path).unwrap();
        let got = med8k_codec::sequence::split(&data).unwrap();
        assert_eq!(got.len(), 7);
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                g == w,
                "frame {i}: the stream's packet differs from the twin's"
            );
        }
    }

    #[test]
    fn a_bad_config_names_the_field() {
        let e = Backend::Cpu
            .encoder(&Config::bpp(-1.0))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bpp"), "{e}");
    }
}

/// Where the codec meets the detector: the model input of the picture an
/// encoder on the GPU has just coded, made there from its sample buffer
/// (`med8k_detect::gpu_input`), so only a few hundred KB come back and the
/// frame is neither copied nor averaged on the CPU.
#[derive(Debug, Default)]
pub struct ResidentInputs {
    kernel: Option<GpuModelInput>,
}

impl ResidentInputs {
    /// Whether `encoder` can give inputs at all (it runs on a GPU; it still
    /// gives none for a picture it had to code in stripes).
    pub fn possible(encoder: &Encoder) -> bool {
        encoder.on_gpu()
    }

    /// The `out_w × out_h` model input of the picture `encoder` coded last;
    /// `None` when the picture is not on a GPU (the CPU twin, stripes).
    pub fn make(
        &mut self,
        encoder: &Encoder,
        out_w: u32,
        out_h: u32,
    ) -> Option<Result<Vec<f32>, GpuInputError>> {
        let resident = encoder.resident()?;
        let kernel = match &mut self.kernel {
            Some(k) if Arc::ptr_eq(k.context(), resident.ctx) => k,
            slot => match GpuModelInput::new(Arc::clone(resident.ctx)) {
                Ok(k) => slot.insert(k),
                Err(e) => return Some(Err(e)),
            },
        };
        Some(
            kernel
                .sums_of_buffer(
                    resident.samples,
                    resident.layout,
                    out_w as usize,
                    out_h as usize,
                )
                .map(|sums| sums.tensor()),
        )
    }
}
