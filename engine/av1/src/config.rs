//! Link classes and the encoder configuration.

use rav1e::color::{
    ChromaSamplePosition, ChromaSampling, ColorDescription, ColorPrimaries, MatrixCoefficients,
    PixelRange, TransferCharacteristics,
};
use rav1e::data::Rational;
use rav1e::{Config, EncoderConfig};

use crate::encoder::Ctx;
use crate::*;

/// The network links med8k streams over, by capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkClass {
    /// 150 Mbit/s.
    Mbps150,
    /// 40 Mbit/s.
    Mbps40,
    /// 20 Mbit/s.
    Mbps20,
}

impl LinkClass {
    /// Every class, widest first.
    pub const ALL: [LinkClass; 3] = [LinkClass::Mbps150, LinkClass::Mbps40, LinkClass::Mbps20];

    /// The link's capacity in kbit/s.
    pub fn link_kbps(self) -> u32 {
        match self {
            LinkClass::Mbps150 => 150_000,
            LinkClass::Mbps40 => 40_000,
            LinkClass::Mbps20 => 20_000,
        }
    }

    /// The video bit rate for this link: [`VIDEO_SHARE_PERCENT`] of its capacity.
    pub fn video_kbps(self) -> u32 {
        self.link_kbps() / 100 * VIDEO_SHARE_PERCENT
    }
}

/// AV1 encoder settings, built with `with_*` and checked by
/// [`Av1Config::new_encoder`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Av1Config {
    /// Target bit rate in kbit/s, `1..=MAX_BITRATE_KBPS`.
    pub bitrate_kbps: u32,
    /// rav1e speed preset, 0 (slowest) ..= 10 (fastest).
    pub speed: u8,
    /// Tile columns: a power of two, 1..=64 (rav1e may use more where AV1
    /// requires it for wide pictures, fewer where the picture is small).
    pub tile_cols: u32,
    /// Tile rows: a power of two, 1..=64.
    pub tile_rows: u32,
    /// No frame reordering: each packet holds only the frame just shown.
    pub low_latency: bool,
    /// Most frames between key frames, at least 1.
    pub keyframe_interval: u32,
    /// Bits per sample, 8 or 10.
    pub bit_depth: u8,
    /// Frames per second as numerator and denominator (`60000, 1001` for 59.94).
    pub frame_rate: (u32, u32),
    /// Frames rav1e looks ahead for rate control and temporal RDO,
    /// `1..=MAX_LOOKAHEAD`; `None` keeps the speed preset's (10 at speed
    /// 10). The first packet comes out after about this many frames.
    pub lookahead: Option<u32>,
    /// Encoder threads; 0 uses rayon's global pool.
    pub threads: usize,
}

impl Av1Config {
    /// Settings for `bitrate_kbps` with every other value at its default.
    pub fn new(bitrate_kbps: u32) -> Self {
        Av1Config {
            bitrate_kbps,
            speed: DEFAULT_SPEED,
            tile_cols: DEFAULT_TILE_COLS,
            tile_rows: DEFAULT_TILE_ROWS,
            low_latency: true,
            keyframe_interval: DEFAULT_KEYFRAME_INTERVAL,
            bit_depth: 8,
            frame_rate: DEFAULT_FRAME_RATE,
            lookahead: None,
            threads: 0,
        }
    }

    /// Settings for a link: the bit rate is [`LinkClass::video_kbps`].
    pub fn for_link(link: LinkClass) -> Self {
        Av1Config::new(link.video_kbps())
    }

    /// Set the bit rate in kbit/s.
    pub fn with_bitrate_kbps(mut self, kbps: u32) -> Self {
        self.bitrate_kbps = kbps;
        self
    }
    /// Set the speed preset.
    pub fn with_speed(mut self, speed: u8) -> Self {
        self.speed = speed;
        self
    }
    /// Set tile columns and rows.
    pub fn with_tiles(mut self, cols: u32, rows: u32) -> Self {
        self.tile_cols = cols;
        self.tile_rows = rows;
        self
    }
    /// Allow (false) or forbid (true) frame reordering.
    pub fn with_low_latency(mut self, low_latency: bool) -> Self {
        self.low_latency = low_latency;
        self
    }
    /// Set the most frames between key frames.
    pub fn with_keyframe_interval(mut self, frames: u32) -> Self {
        self.keyframe_interval = frames;
        self
    }
    /// Set the bit depth.
    pub fn with_bit_depth(mut self, bits: u8) -> Self {
        self.bit_depth = bits;
        self
    }
    /// Set the frame rate to `num / den` frames per second.
    pub fn with_frame_rate(mut self, num: u32, den: u32) -> Self {
        self.frame_rate = (num, den);
        self
    }
    /// Set the lookahead (`None`: the preset's).
    pub fn with_lookahead(mut self, frames: Option<u32>) -> Self {
        self.lookahead = frames;
        self
    }
    /// Set the encoder threads (0: rayon's global pool).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Check the settings for a `width`×`height` stream.
    pub fn validate(&self, width: u32, height: u32) -> Result<(), Av1Error> {
        let bad = |field, value: String, allowed: String| {
            Err(Av1Error::Config {
                field,
                value,
                allowed,
            })
        };
        let dims = format!("{MIN_DIMENSION}..={MAX_DIMENSION}");
        if !(MIN_DIMENSION..=MAX_DIMENSION).contains(&width) {
            return bad("width", width.to_string(), dims);
        }
        if !(MIN_DIMENSION..=MAX_DIMENSION).contains(&height) {
            return bad("height", height.to_string(), dims);
        }
        if !(1..=MAX_BITRATE_KBPS).contains(&self.bitrate_kbps) {
            return bad(
                "bitrate_kbps",
                self.bitrate_kbps.to_string(),
                format!("1..={MAX_BITRATE_KBPS} kbit/s"),
            );
        }
        if self.speed > DEFAULT_SPEED {
            return bad("speed", self.speed.to_string(), "0..=10".into());
        }
        let tiles = format!("a power of two in 1..={MAX_TILES_PER_AXIS}");
        if !self.tile_cols.is_power_of_two() || self.tile_cols > MAX_TILES_PER_AXIS {
            return bad("tile_cols", self.tile_cols.to_string(), tiles);
        }
        if !self.tile_rows.is_power_of_two() || self.tile_rows > MAX_TILES_PER_AXIS {
            return bad("tile_rows", self.tile_rows.to_string(), tiles);
        }
        if self.keyframe_interval == 0 {
            return bad("keyframe_interval", "0".into(), "at least 1 frame".into());
        }
        if !matches!(self.bit_depth, 8 | 10) {
            return bad("bit_depth", self.bit_depth.to_string(), "8 or 10".into());
        }
        let (num, den) = self.frame_rate;
        if num == 0 || den == 0 {
            return bad(
                "frame_rate",
                format!("{num}/{den}"),
                "a positive numerator and denominator".into(),
            );
        }
        if let Some(l) = self.lookahead
            && !(1..=MAX_LOOKAHEAD).contains(&l)
        {
            return bad(
                "lookahead",
                l.to_string(),
                format!("1..={MAX_LOOKAHEAD} frames"),
            );
        }
        Ok(())
    }

    /// An encoder for `width`×`height` pictures.
    pub fn new_encoder(&self, width: u32, height: u32) -> Result<Av1Encoder, Av1Error> {
        self.validate(width, height)?;
        let mut enc = EncoderConfig::with_speed_preset(self.speed);
        enc.width = width as usize;
        enc.height = height as usize;
        enc.bit_depth = usize::from(self.bit_depth);
        enc.chroma_sampling = ChromaSampling::Cs420;
        enc.chroma_sample_position = ChromaSamplePosition::Unknown;
        enc.pixel_range = PixelRange::Limited;
        enc.color_description = Some(ColorDescription {
            color_primaries: ColorPrimaries::BT709,
            transfer_characteristics: TransferCharacteristics::BT709,
            matrix_coefficients: MatrixCoefficients::BT709,
        });
        // rav1e's time base is seconds per tick: the inverse frame rate.
        enc.time_base = Rational::new(u64::from(self.frame_rate.1), u64::from(self.frame_rate.0));
        enc.low_latency = self.low_latency;
        enc.bitrate = (self.bitrate_kbps * 1000) as i32;
        let interval = u64::from(self.keyframe_interval);
        enc.set_key_frame_interval(interval.min(12), interval);
        enc.tile_cols = self.tile_cols as usize;
        enc.tile_rows = self.tile_rows as usize;
        enc.tiles = 0;
        if let Some(l) = self.lookahead {
            enc.speed_settings.rdo_lookahead_frames = l as usize;
        }
        let cfg = Config::new()
            .with_encoder_config(enc)
            .with_threads(self.threads);
        let rejected = |e: rav1e::InvalidConfig| Av1Error::Rav1eConfig {
            reason: e.to_string(),
        };
        let ctx = if self.bit_depth == 8 {
            Ctx::Eight(cfg.new_context().map_err(rejected)?)
        } else {
            Ctx::Ten(cfg.new_context().map_err(rejected)?)
        };
        Ok(Av1Encoder {
            config: self.clone(),
            width,
            height,
            ctx,
            keyframe_requested: false,
            finished: false,
            sent: 0,
        })
    }
}
