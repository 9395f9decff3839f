//! Compiled kernels, their one bind group, dispatch sizes and buffers.

use crate::GpuError;

/// Threads per workgroup of every med8k kernel (`@workgroup_size(64)`).
pub const WORKGROUP: u32 = 64;

/// Run `f`, turning the validation and out-of-memory errors wgpu reports
/// meanwhile (on this thread) into [`GpuError::Refused`] naming `what`.
pub fn guarded<T>(dev: &wgpu::Device, what: &str, f: impl FnOnce() -> T) -> Result<T, GpuError> {
    let oom = dev.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
    let invalid = dev.push_error_scope(wgpu::ErrorFilter::Validation);
    let out = f();
    let invalid = pollster::block_on(invalid.pop());
    let oom = pollster::block_on(oom.pop());
    match invalid.or(oom) {
        Some(e) => Err(GpuError::Refused {
            what: what.to_owned(),
            reason: e.to_string(),
        }),
        None => Ok(out),
    }
}

/// Workgroups of [`WORKGROUP`] threads for `threads` threads: `(x, y)` with
/// `x` at most `max_x` (the device's per-dimension limit), at least one.
pub fn groups(threads: u64, max_x: u32) -> (u32, u32) {
    let g = threads.div_ceil(u64::from(WORKGROUP)).max(1);
    let x = g.min(u64::from(max_x.max(1))) as u32;
    (x, g.div_ceil(u64::from(x)) as u32)
}

/// A storage buffer of at least `bytes` (rounded up to a word), which can
/// also be copied to and from; `extra` adds usages.
pub fn storage_buffer(
    dev: &wgpu::Device,
    label: &str,
    bytes: u64,
    extra: wgpu::BufferUsages,
) -> wgpu::Buffer {
    dev.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size: bytes.max(4).next_multiple_of(4),
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC
            | extra,
        mapped_at_creation: false,
    })
}

/// A binding of a kernel's one bind group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bind {
    /// A storage buffer, read-only (`true`) or not.
    Storage(bool),
    /// A uniform buffer.
    Uniform,
}

/// A compiled WGSL module: its bind group layout and a pipeline per entry
/// point, in the order given.
#[derive(Debug)]
pub struct Kernel {
    /// The layout of bind group 0.
    pub layout: wgpu::BindGroupLayout,
    /// The entry points and their pipelines, in the order given.
    pub pipelines: Vec<(&'static str, wgpu::ComputePipeline)>,
}

impl Kernel {
    /// Compile `src` with one bind group of `binds` (binding `i` is
    /// `binds[i]`) and a pipeline for each of `entries`. Run it inside
    /// [`guarded`] to get wgpu's complaints as an error.
    pub fn new(
        dev: &wgpu::Device,
        name: &str,
        src: &str,
        binds: &[Bind],
        entries: &[&'static str],
    ) -> Self {
        let module = dev.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(src.into()),
        });
        let layout_entries: Vec<_> = binds
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupLayoutEntry {
                binding: i as u32,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Buffer {
                    ty: match b {
                        Bind::Storage(read_only) => wgpu::BufferBindingType::Storage {
                            read_only: *read_only,
                        },
                        Bind::Uniform => wgpu::BufferBindingType::Uniform,
                    },
                    has_dynamic_offset: false,
                    min_binding_size: None,
                },
                count: None,
            })
            .collect();
        let layout = dev.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some(name),
            entries: &layout_entries,
        });
        let pl = dev.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(name),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let pipelines = entries
            .iter()
            .map(|&e| {
                (
                    e,
                    dev.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                        label: Some(e),
                        layout: Some(&pl),
                        module: &module,
                        entry_point: Some(e),
                        compilation_options: Default::default(),
                        cache: None,
                    }),
                )
            })
            .collect();
        Kernel { layout, pipelines }
    }

    /// The pipeline of `entry` (the first one when `entry` is not among
    /// them: entry names are constants of the driver that compiled it).
    pub fn pipeline(&self, entry: &str) -> &wgpu::ComputePipeline {
        &self
            .pipelines
            .iter()
            .find(|(e, _)| *e == entry)
            .unwrap_or(&self.pipelines[0])
            .1
    }

    /// A bind group of `buffers` in binding order.
    pub fn bind(
        &self,
        dev: &wgpu::Device,
        label: &str,
        buffers: &[&wgpu::Buffer],
    ) -> wgpu::BindGroup {
        let entries: Vec<_> = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        dev.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &self.layout,
            entries: &entries,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_cover_every_thread() {
        for (threads, max) in [
            (0, 65535),
            (1, 65535),
            (64, 65535),
            (65, 65535),
            (10_000_000, 1000),
        ] {
            let (x, y) = groups(threads, max);
            assert!(x >= 1 && x <= max && y >= 1);
            assert!(u64::from(x) * u64::from(y) * u64::from(WORKGROUP) >= threads);
        }
    }
}
