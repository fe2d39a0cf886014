//! Resident memory from `/proc/<pid>/status`, for the benchmarks.

/// `VmHWM` (peak) and `VmRSS` (now) of process `pid` (`"self"` for this
/// one), MiB.
pub fn rss(pid: &str) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kb| kb.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    (field("VmHWM:"), field("VmRSS:"))
}
