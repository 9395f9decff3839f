//! # med8k-shaders
//!
//! The WGSL compute kernels of med8k's GPU codec and of the detector's
//! input, one `.wgsl` file each, embedded here and driven through wgpu by
//! `med8k-codec` (`gpu`), `med8k-av1` (`gpu`) and `med8k-detect`
//! (`gpu_input`). Each has a bit-exact Rust twin beside its driver that is
//! its specification:
//!
//! | kernel | twin |
//! |---|---|
//! | [`COMPONENTS`]: level shift, RCT, inter-band 5/3 | `codec::transform::{forward,inverse}_components` |
//! | [`WAVELET`]: spatial 5/3 per slice, one level per dispatch | `codec::transform::spatial_{forward,inverse}` |
//! | [`ENTROPY_ENCODE`]: one block per invocation | `codec::entropy::encode_block` |
//! | [`ENTROPY_DECODE`]: one block per invocation | `codec::entropy::decode_block` |
//! | [`COMPACT`]: block offsets and gathering into slices | `codec::stream::write_slice` |
//! | [`DOWNSCALE`]: box downscale to 4:2:0, BT.709 for RGB (AV1 path) | `codec::av1::downscale_420` |
//! | [`MODEL_INPUT`]: exact area sums of the detector's input, in two passes | `detect::input::picture_sums` |
//!
//! The entropy kernels share [`ENTROPY_COMMON`]; use [`entropy_encode`] and
//! [`entropy_decode`] for the complete sources.
#![warn(missing_docs)]

/// Level shift, reversible colour transform and the inter-band wavelet.
pub const COMPONENTS: &str = include_str!("wgsl/components.wgsl");
/// The spatial 5/3 lifting, one level of one plane per dispatch.
pub const WAVELET: &str = include_str!("wgsl/wavelet.wgsl");
/// Constants and the adaptive model shared by the block coder's two kernels.
pub const ENTROPY_COMMON: &str = include_str!("wgsl/entropy_common.wgsl");
/// The block encoder (without [`ENTROPY_COMMON`]).
pub const ENTROPY_ENCODE: &str = include_str!("wgsl/entropy_encode.wgsl");
/// The block decoder (without [`ENTROPY_COMMON`]).
pub const ENTROPY_DECODE: &str = include_str!("wgsl/entropy_decode.wgsl");
/// Block offsets (a scan) and gathering blocks into slices.
pub const COMPACT: &str = include_str!("wgsl/compact.wgsl");
/// Box downscale by 1, 2 or 4 to 4:2:0 at 8 or 10 bits, with BT.709
/// limited-range conversion of RGB: the AV1 path's GPU step.
pub const DOWNSCALE: &str = include_str!("wgsl/downscale.wgsl");
/// Exact integer area sums of Y'CbCr planes (the detector's model input
/// before its one division): row sums, then 64-bit column sums.
pub const MODEL_INPUT: &str = include_str!("wgsl/model_input.wgsl");

/// The complete block encoder source.
pub fn entropy_encode() -> String {
    format!("{ENTROPY_COMMON}\n{ENTROPY_ENCODE}")
}

/// The complete block decoder source.
pub fn entropy_decode() -> String {
    format!("{ENTROPY_COMMON}\n{ENTROPY_DECODE}")
}

/// Every complete kernel module, by name.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("components", COMPONENTS.to_owned()),
        ("wavelet", WAVELET.to_owned()),
        ("entropy_encode", entropy_encode()),
        ("entropy_decode", entropy_decode()),
        ("compact", COMPACT.to_owned()),
        ("downscale", DOWNSCALE.to_owned()),
        ("model_input", MODEL_INPUT.to_owned()),
    ]
}
