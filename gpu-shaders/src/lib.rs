//! # med8k-shaders
//!
//! The WGSL compute kernels of med8k's GPU codec, one `.wgsl` file each,
//! embedded here and driven through wgpu by the engine; each has a bit-exact
//! Rust twin in `med8k-engine` that is its specification. No kernel exists
//! yet: the codec brings the first ones together with their validation tests.
#![warn(missing_docs)]
