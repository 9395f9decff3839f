//! # med8k-shaders
//!
//! The WGSL compute kernels of med8k's GPU codec and of the detector's
//! input, one `.wgsl` file each, embedded here and driven through wgpu by
//! the crates they serve (`med8k_codec::gpu`, `med8k_av1::gpu`,
//! `med8k_detect::gpu_input`). Each has a bit-exact Rust twin, in the crate
//! named first in the twin's path, that is its specification:
//!
//! | kernel | twin |
//! |---|---|
//! | [`COMPONENTS`]: level shift, RCT, inter-band 5/3 | `codec::transform::{forward,inverse}_components` |
//! | [`WAVELET`]: spatial 5/3 per slice, both lifting steps of a level per dispatch | `codec::transform::spatial_{forward,inverse}` |
//! | [`ENTROPY_ENCODE`]: one block per invocation | `codec::entropy::encode_block` |
//! | [`ENTROPY_DECODE`]: one block per invocation | `codec::entropy::decode_block` |
//! | [`COMPACT`]: block offsets, the size head and gathering into slices | `codec::stream::write_slice` |
//! | [`BLOCK_TABLE`]: a stream's block offsets, checked | `codec::stream::split_slice` |
//! | [`V210`]: packed 10-bit 4:2:2 in (to planes) and out (from coefficients) | `media::frame::v210::{unpack,pack}` |
//! | [`DOWNSCALE`]: box downscale to 4:2:0, BT.709 for RGB (AV1 path) | `av1::downscale::downscale_420` |
//! | [`MODEL_INPUT`]: exact area sums of the detector's input, in two passes | `detect::input::picture_sums` |
//!
//! The entropy kernels share [`ENTROPY_COMMON`]; use [`entropy_encode`] and
//! [`entropy_decode`] for the complete sources. [`COMPACT`] and
//! [`BLOCK_TABLE`] scan across a workgroup, with subgroup operations where
//! the device has wgpu's `SUBGROUP` feature ([`SCAN_SUBGROUP`]) and in
//! workgroup memory where it has not ([`SCAN_PORTABLE`]): use [`compact`]
//! and [`block_table`] for the complete sources of either.
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
/// Block offsets (a scan), the head of sizes and gathering blocks into
/// slices (without a scan; see [`compact`]).
pub const COMPACT: &str = include_str!("wgsl/compact.wgsl");
/// A stream's block offsets and lengths, checked, one workgroup per slice
/// (without a scan; see [`block_table`]).
pub const BLOCK_TABLE: &str = include_str!("wgsl/block_table.wgsl");
/// The workgroup scan in workgroup memory, for devices without subgroups.
pub const SCAN_PORTABLE: &str = include_str!("wgsl/scan_portable.wgsl");
/// The workgroup scan with subgroup operations.
pub const SCAN_SUBGROUP: &str = include_str!("wgsl/scan_subgroup.wgsl");
/// v210 to planar samples (the encoder's first kernel) and coefficients to
/// v210 (the decoder's last).
pub const V210: &str = include_str!("wgsl/v210.wgsl");
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

/// `kernel` with the workgroup scan it needs, with subgroup operations or
/// without. (naga 30 rejects `enable subgroups;`: it allows subgroup
/// operations where the device's capabilities do.)
fn with_scan(kernel: &str, subgroups: bool) -> String {
    let scan = if subgroups {
        SCAN_SUBGROUP
    } else {
        SCAN_PORTABLE
    };
    format!("{scan}\n{kernel}")
}

/// The complete compaction source, with or without subgroup operations.
pub fn compact(subgroups: bool) -> String {
    with_scan(COMPACT, subgroups)
}

/// The complete block-table source, with or without subgroup operations.
pub fn block_table(subgroups: bool) -> String {
    with_scan(BLOCK_TABLE, subgroups)
}

/// Every complete kernel module, by name; the names of those that need
/// subgroup operations end in `_subgroups`.
pub fn all() -> Vec<(&'static str, String)> {
    vec![
        ("components", COMPONENTS.to_owned()),
        ("wavelet", WAVELET.to_owned()),
        ("entropy_encode", entropy_encode()),
        ("entropy_decode", entropy_decode()),
        ("compact", compact(false)),
        ("compact_subgroups", compact(true)),
        ("block_table", block_table(false)),
        ("block_table_subgroups", block_table(true)),
        ("v210", V210.to_owned()),
        ("downscale", DOWNSCALE.to_owned()),
        ("model_input", MODEL_INPUT.to_owned()),
    ]
}
