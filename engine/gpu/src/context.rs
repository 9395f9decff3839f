//! The device, its queue, and which adapters this machine has.
//!
//! On machines without a GPU, Mesa's lavapipe (software Vulkan, Debian's
//! `mesa-vulkan-drivers`) is an adapter too, so kernels are always testable.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::GpuError;

/// A device and queue, shared by encoders, decoders, tests and benches.
pub struct GpuContext {
    /// The device.
    pub device: wgpu::Device,
    /// Its queue.
    pub queue: wgpu::Queue,
    /// What the adapter is.
    pub info: wgpu::AdapterInfo,
    cache: Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl std::fmt::Debug for GpuContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuContext")
            .field("adapter", &self.info.name)
            .field("backend", &self.info.backend)
            .finish_non_exhaustive()
    }
}

impl GpuContext {
    /// The best adapter wgpu finds (a discrete GPU before a software one),
    /// with the adapter's own limits so 8K buffers fit.
    pub fn new() -> Result<Arc<Self>, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions {
            power_preference: wgpu::PowerPreference::HighPerformance,
            ..Default::default()
        }))
        .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        // What med8k uses where the adapter has it: timestamps for per-stage
        // timings, subgroup operations for the scans.
        let wanted = wgpu::Features::TIMESTAMP_QUERY | wgpu::Features::SUBGROUP;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("med8k"),
            required_limits: adapter.limits(),
            required_features: adapter.features() & wanted,
            ..Default::default()
        }))
        .map_err(|e| GpuError::Device {
            adapter: info.name.clone(),
            reason: e.to_string(),
        })?;
        Ok(Arc::new(GpuContext {
            device,
            queue,
            info,
            cache: Mutex::new(HashMap::new()),
        }))
    }

    /// Adapter name and backend, for reports.
    pub fn describe(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }

    /// Whether the device takes timestamp queries (per-stage GPU timings);
    /// without them, timings are wall-clock phases on the CPU.
    pub fn has_timestamps(&self) -> bool {
        self.device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Whether the device runs subgroup operations (wgpu's `SUBGROUP`).
    pub fn has_subgroups(&self) -> bool {
        self.device.features().contains(wgpu::Features::SUBGROUP)
    }

    /// Whether the adapter is a software rasteriser (lavapipe): correct, but
    /// slower than the CPU twins, so `auto` backends pass it over.
    pub fn is_software(&self) -> bool {
        self.info.device_type == wgpu::DeviceType::Cpu
    }

    /// The value of type `T` kept on this device, made by `make` on first
    /// use: how kernel drivers compile their kernels once per device
    /// however many encoders and decoders they open.
    pub fn cached<T: Any + Send + Sync>(&self, make: impl FnOnce(&wgpu::Device) -> T) -> Arc<T> {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(v) = cache
            .get(&TypeId::of::<T>())
            .and_then(|v| v.clone().downcast::<T>().ok())
        {
            return v;
        }
        let v = Arc::new(make(&self.device));
        cache.insert(TypeId::of::<T>(), v.clone());
        v
    }
}

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
