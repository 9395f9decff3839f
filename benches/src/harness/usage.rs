//! CPU time and peak memory of this process, from `/proc` (Linux).

/// What a scenario cost the process.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Usage {
    /// User + system CPU time, all threads, ms.
    pub cpu_ms: f64,
    /// Peak resident memory since the scenario began, MiB (`None` where
    /// `/proc` does not say).
    pub peak_mib: Option<f64>,
}

/// A running measurement: [`Meter::start`] resets the peak, [`Meter::stop`] reads.
#[derive(Debug)]
pub struct Meter {
    cpu_ms: f64,
}

impl Meter {
    /// Start measuring: note the CPU time so far and reset the kernel's
    /// peak-RSS mark (`/proc/self/clear_refs`, value 5).
    pub fn start() -> Self {
        // Best effort: without it the peak is the process's since it began.
        let _ = std::fs::write("/proc/self/clear_refs", "5");
        Meter { cpu_ms: cpu_ms() }
    }

    /// What the process used since [`start`](Self::start).
    pub fn stop(self) -> Usage {
        Usage {
            cpu_ms: (cpu_ms() - self.cpu_ms).max(0.0),
            peak_mib: peak_mib(),
        }
    }
}

/// utime + stime of the whole process in ms (fields 14 and 15 of
/// `/proc/self/stat`, in clock ticks of 1/100 s on Linux).
fn cpu_ms() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0.0;
    };
    // The command name (field 2) may hold spaces; fields restart after ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // After ')': state is index 0, so utime (field 14) is index 11.
    (ticks(11) + ticks(12)) * 10.0
}

/// VmHWM from `/proc/self/status`, MiB.
fn peak_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_grows_with_work_and_peak_memory_sees_an_allocation() {
        let meter = Meter::start();
        let mut v = vec![1u8; 64 << 20];
        let mut x = 0u64;
        for round in 0..20u8 {
            for b in v.iter_mut() {
                *b = b.wrapping_add(round);
                x = x.wrapping_add(u64::from(*b));
            }
        }
        std::hint::black_box(x);
        let usage = meter.stop();
        assert!(usage.cpu_ms > 0.0, "{usage:?}");
        assert!(usage.peak_mib.is_some_and(|p| p >= 64.0), "{usage:?}");
        drop(v);
    }
}
