//! # med8k-gpu
//!
//! What every GPU kernel driver of med8k shares: the device, compiled
//! kernels, buffers, transfers and a typed error. The kernels themselves are
//! WGSL files in `med8k-shaders`; their drivers live with the concern they
//! serve (the codec in `med8k-codec`, the model input in `med8k-detect`, the
//! 4:2:0 downscale in `med8k-av1`), each beside the CPU twin that is its
//! specification.
//!
//! A guided tour:
//! - [`GpuContext`]: one device and queue, shared by encoders, decoders,
//!   tests and benches, with a per-driver cache of compiled kernels
//!   ([`GpuContext::cached`]); [`adapters`] lists what this machine has
//!   (Mesa's lavapipe is an adapter too, so kernels are always testable).
//! - [`Kernel`] and [`Bind`]: a WGSL module with one bind group and a
//!   pipeline per entry point; [`guarded`] turns wgpu's validation and
//!   out-of-memory reports into a [`GpuError`]; [`groups`] sizes a dispatch.
//! - Transfers: [`SampleLayout`] (where a picture's planes lie in a sample
//!   buffer), [`write_samples`], [`read_mapped`] and [`ReadBack`] (a kept
//!   staging buffer); for frame pipelines, [`UploadSlot`] and [`ReadSlot`],
//!   host-visible buffers kept mapped from frame to frame in a ring.
//! - [`StageClock`] and [`StageTimes`]: per-stage timings from GPU
//!   timestamps, or from the CPU's clock where the device has none.
//! - [`largest_fitting`] and [`spread`]: how many rows, slices or bands go in
//!   one stripe when a picture is too large for the device's buffers.
//!
//! ```no_run
//! use med8k_gpu::{Bind, GpuContext, Kernel, guarded};
//! # fn main() -> Result<(), med8k_gpu::GpuError> {
//! let ctx = GpuContext::new()?;
//! println!("running on {}", ctx.describe());
//! let wgsl = "@group(0) @binding(0) var<storage, read_write> v: array<u32>;
//!             @compute @workgroup_size(64) fn main() {}";
//! let kernel = guarded(&ctx.device, "compiling", || {
//!     Kernel::new(&ctx.device, "demo", wgsl, &[Bind::Storage(false)], &["main"])
//! })?;
//! # let _ = kernel;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]

mod context;
mod error;
mod kernel;
mod ring;
mod stripe;
mod timing;
mod transfer;

pub use context::{AdapterSummary, GpuContext, adapters};
pub use error::GpuError;
pub use kernel::{Bind, Kernel, WORKGROUP, groups, guarded, storage_buffer};
pub use ring::{ReadSlot, UploadSlot};
pub use stripe::{largest_fitting, spread};
pub use timing::{StageClock, StageTimes, TimeSource};
pub use transfer::{ReadBack, Resident, SampleLayout, read_mapped, write_samples};
