//! `med8k probe`: what this machine offers the engine.

use std::io::Write;

use med8k_auth::pkcs11;
use med8k_capture as gst;
use med8k_gpu as gpu;
use serde::Serialize;

use crate::Outcome;

#[derive(Debug, Serialize)]
struct Module {
    path: String,
    status: String,
}

#[derive(Debug, Serialize)]
struct Probe {
    gstreamer: String,
    plugins_registered: usize,
    plugins: Vec<gst::PluginStatus>,
    gpu_adapters: Vec<gpu::AdapterSummary>,
    pkcs11_modules: Vec<Module>,
}

pub fn probe(json: bool) -> anyhow::Result<Outcome> {
    let (plugins, registered) = gst::plugins()?;
    let probe = Probe {
        gstreamer: gst::version(),
        plugins_registered: registered,
        plugins,
        gpu_adapters: gpu::adapters(),
        pkcs11_modules: pkcs11::configured_modules()
            .iter()
            .map(|p| Module {
                path: p.display().to_string(),
                status: pkcs11::probe(p).to_string(),
            })
            .collect(),
    };
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &probe)?;
        writeln!(out)?;
        return Ok(Outcome::Done);
    }
    writeln!(
        out,
        "{} ({} plugins registered)",
        probe.gstreamer, probe.plugins_registered
    )?;
    for p in &probe.plugins {
        let state = p
            .version
            .as_deref()
            .map_or("missing".to_owned(), |v| format!("ok {v}"));
        writeln!(out, "  {:<18} {:<12} {}", p.name, state, p.purpose)?;
    }
    writeln!(out, "GPU adapters (wgpu):")?;
    if probe.gpu_adapters.is_empty() {
        writeln!(
            out,
            "  none (install mesa-vulkan-drivers for lavapipe, or a GPU driver)"
        )?;
    }
    for a in &probe.gpu_adapters {
        writeln!(
            out,
            "  {} [{} {}] {}",
            a.name, a.backend, a.device_type, a.driver
        )?;
    }
    writeln!(
        out,
        "PKCS#11 modules ({} and well-known paths):",
        pkcs11::ENV
    )?;
    if probe.pkcs11_modules.is_empty() {
        writeln!(out, "  none")?;
    }
    for m in &probe.pkcs11_modules {
        writeln!(out, "  {}: {}", m.path, m.status)?;
    }
    Ok(Outcome::Done)
}
