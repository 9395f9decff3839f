//! The stage clock on a real device: GPU timestamps where the device has
//! them, wall-clock phases on the CPU either way.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)] // the helpers other GPU tests use
mod support;

use med8k_gpu::{ReadSlot, StageClock, TimeSource, storage_buffer};

#[test]
fn stage_clocks_time_every_stage() {
    let Some(ctx) = support::context() else {
        return;
    };
    let dev = &ctx.device;
    let a = storage_buffer(dev, "a", 1 << 20, wgpu::BufferUsages::empty());
    let b = storage_buffer(dev, "b", 1 << 20, wgpu::BufferUsages::empty());
    let gpu = StageClock::new(&ctx, 4);
    assert_eq!(gpu.is_gpu(), ctx.has_timestamps());
    for mut clock in [gpu, StageClock::wall_clock(4)] {
        let mut read = ReadSlot::new(dev, "timestamps", clock.bytes().max(8));
        let mut enc = dev.create_command_encoder(&Default::default());
        clock.begin(&ctx, &mut enc);
        enc.copy_buffer_to_buffer(&a, 0, &b, 0, 1 << 20);
        clock.mark(&ctx, &mut enc, "there");
        enc.copy_buffer_to_buffer(&b, 0, &a, 0, 1 << 20);
        clock.mark(&ctx, &mut enc, "back");
        clock.resolve(&mut enc, read.buffer(), 0);
        let i = ctx.queue.submit([enc.finish()]);
        read.used_by(i, clock.bytes().max(8));
        let times = read.read(dev, |bytes| clock.times(bytes)).unwrap();
        let want = if clock.is_gpu() {
            TimeSource::GpuTimestamps
        } else {
            // A submission and a wait at the start and at each mark.
            assert_eq!(clock.submits(), 3);
            TimeSource::CpuWall
        };
        assert_eq!(times.source, want);
        let names: Vec<&str> = times.stages.iter().map(|s| s.0).collect();
        assert_eq!(names, ["there", "back"]);
        assert!(times.stages.iter().all(|s| s.1.is_finite() && s.1 >= 0.0));
        assert!(times.total_ms() >= times.ms("there"));
        eprintln!("{times}");
    }
}
