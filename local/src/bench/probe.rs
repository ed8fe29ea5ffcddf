//! What the bench reads about a function process from `/proc`, and the CPU quota it
//! applies through cgroups where the machine allows.
//!
//! CPU is each thread's `schedstat` run time (nanoseconds), summed: the process's
//! `utime + stime` in `/proc/<pid>/stat` counts the same time in clock ticks (10 ms),
//! too coarse for a 1 ms invocation. Both come from the kernel's scheduler accounting.

use std::path::{Path, PathBuf};

/// CPU time the process's threads have run, in nanoseconds (`None` if it is gone).
pub fn cpu_ns(pid: u32) -> Option<u64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    let mut total = 0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|ns| ns.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(total)
}

/// `utime + stime` of the process, in nanoseconds (clock-tick resolution).
pub fn cpu_ticks_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // USER_HZ is 100 on Linux.
    Some((utime + stime) * 10_000_000)
}

/// The process's peak resident memory (`VmHWM`), in KiB.
pub fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// A CPU quota for processes: a cgroup limited to `share` of one core, removed on drop.
#[derive(Debug)]
pub struct CpuQuota {
    dir: PathBuf,
    version: u8,
}

impl CpuQuota {
    /// Creates a cgroup limited to `share` (0 to 1) of one core: cgroup v2's `cpu.max`
    /// where the cpu controller is available, else v1's `cpu.cfs_quota_us`.
    ///
    /// # Errors
    /// Why it could not (not root, no cpu controller, read-only cgroup file system).
    pub fn new(name: &str, share: f64) -> Result<Self, String> {
        let period = 100_000u64;
        let quota = ((share * period as f64).round() as u64).max(1_000);
        let v2 = Path::new("/sys/fs/cgroup");
        let v2_controllers =
            std::fs::read_to_string(v2.join("cgroup.controllers")).unwrap_or_default();
        let (dir, version) = if v2_controllers.split_whitespace().any(|c| c == "cpu") {
            (v2.join(name), 2)
        } else if Path::new("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").exists() {
            (PathBuf::from("/sys/fs/cgroup/cpu").join(name), 1)
        } else {
            return Err("no cgroup cpu controller on this machine".to_owned());
        };
        if version == 2 {
            let _ = std::fs::write(v2.join("cgroup.subtree_control"), "+cpu");
        }
        std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let quota_guard = Self { dir, version };
        let written = if version == 2 {
            std::fs::write(quota_guard.dir.join("cpu.max"), format!("{quota} {period}"))
        } else {
            std::fs::write(
                quota_guard.dir.join("cpu.cfs_period_us"),
                period.to_string(),
            )
            .and_then(|()| {
                std::fs::write(quota_guard.dir.join("cpu.cfs_quota_us"), quota.to_string())
            })
        };
        written.map_err(|e| format!("setting the quota in {}: {e}", quota_guard.dir.display()))?;
        Ok(quota_guard)
    }

    /// Moves a process (all its threads) under the quota.
    ///
    /// # Errors
    /// If the kernel refuses.
    pub fn add(&self, pid: u32) -> Result<(), String> {
        std::fs::write(self.dir.join("cgroup.procs"), pid.to_string())
            .map_err(|e| format!("moving {pid} under the quota: {e}"))
    }

    /// Which cgroup version applied it.
    pub fn version(&self) -> u8 {
        self.version
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        // Processes still inside keep the directory busy; they are stopped first.
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_cpu_time_and_peak_memory() {
        let pid = std::process::id();
        let mut spin = 0u64;
        for i in 0..2_000_000u64 {
            spin = spin.wrapping_add(i * i);
        }
        assert!(spin > 0);
        let ns = cpu_ns(pid).unwrap_or(0);
        assert!(ns > 0);
        assert!(cpu_ticks_ns(pid).is_some());
        assert!(peak_rss_kib(pid).unwrap_or(0) > 100);
        assert!(cpu_ns(u32::MAX).is_none());
    }
}
