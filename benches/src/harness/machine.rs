//! The machine a report was measured on.

use serde::{Deserialize, Serialize};

/// CPU, memory, GPU and the software that matters to the figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Machine {
    /// CPU model name (`/proc/cpuinfo`).
    pub cpu: String,
    /// Cores this process may use.
    pub cores: usize,
    /// Physical memory, GiB.
    pub memory_gib: f64,
    /// Kernel (`/proc/sys/kernel/osrelease`).
    pub kernel: String,
    /// Every adapter wgpu found, `name (backend, type; driver)`; empty when none.
    pub gpus: Vec<String>,
    /// GStreamer's version string.
    pub gstreamer: String,
}

/// Describe this machine; what cannot be read says `unknown`.
pub fn describe() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let cpu = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let memory_gib = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kib| kib / (1024.0 * 1024.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
    let gpus = med8k_gpu::adapters()
        .into_iter()
        .map(|a| {
            format!(
                "{} ({}, {}; {})",
                a.name, a.backend, a.device_type, a.driver
            )
        })
        .collect();
    let gstreamer = match gstreamer::init() {
        Ok(()) => gstreamer::version_string().to_string(),
        Err(e) => format!("unavailable: {e}"),
    };
    Machine {
        cpu,
        cores: std::thread::available_parallelism().map_or(1, usize::from),
        memory_gib,
        kernel,
        gpus,
        gstreamer,
    }
}
