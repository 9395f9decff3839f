//! What can go wrong on a GPU.

/// A GPU that cannot be had or that refused what it was asked to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GpuError {
    /// wgpu found no adapter (install `mesa-vulkan-drivers` for lavapipe).
    #[error("no GPU adapter: {0}")]
    NoAdapter(String),
    /// The adapter would not open a device.
    #[error("{adapter}: cannot open device: {reason}")]
    Device {
        /// The adapter's name.
        adapter: String,
        /// What wgpu said.
        reason: String,
    },
    /// wgpu reported a validation or out-of-memory error while `what` ran.
    #[error("{what}: {reason}")]
    Refused {
        /// What was being done (compiling a kernel, building a plan, ...).
        what: String,
        /// What wgpu said.
        reason: String,
    },
    /// Waiting for the device, or mapping a buffer for reading, failed.
    #[error("reading back from the GPU: {0}")]
    ReadBack(String),
    /// A driver's own bookkeeping failed (a bug in med8k, reported rather
    /// than panicking).
    #[error("GPU driver state: {0}")]
    Internal(&'static str),
    /// The GPU's output does not add up (a kernel bug or a faulty device).
    #[error("the GPU's output is inconsistent: {0}")]
    Inconsistent(String),
    /// The work does not fit the device, even split into stripes.
    #[error("too large for the GPU: {0}")]
    TooLarge(String),
}
