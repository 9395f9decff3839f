//! GPU access through wgpu: which adapters this machine has.
//!
//! On machines without a GPU, Mesa's lavapipe (software Vulkan, Debian's
//! `mesa-vulkan-drivers`) is an adapter too, so kernels are always testable.

use serde::Serialize;

/// One adapter wgpu found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdapterSummary {
    /// Adapter name, such as `NVIDIA H100 80GB HBM3` or `llvmpipe (LLVM 15.0.6, 256 bits)`.
    pub name: String,
    /// Backend: Vulkan, Metal, Dx12, Gl.
    pub backend: String,
    /// Discrete, integrated, virtual, CPU (software) or other.
    pub device_type: String,
    /// Driver name and version information.
    pub driver: String,
}

/// Every adapter on every backend wgpu was built with (`WGPU_BACKEND` narrows it).
pub fn adapters() -> Vec<AdapterSummary> {
    let instance =
        wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| {
            let info = a.get_info();
            AdapterSummary {
                name: info.name,
                backend: format!("{:?}", info.backend),
                device_type: format!("{:?}", info.device_type),
                driver: format!("{} {}", info.driver, info.driver_info)
                    .trim()
                    .to_owned(),
            }
        })
        .collect()
}
