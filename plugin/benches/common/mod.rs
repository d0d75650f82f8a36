// SPDX-License-Identifier: MIT OR Apache-2.0
//! What the benches read of their own process.
#![allow(dead_code)]

/// A `/proc/self/status` field's number (`VmRSS:`, `VmHWM:` in KiB; `Threads:`), 0 when absent.
pub fn status(field: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Resident memory in MiB.
pub fn rss_mib() -> f64 {
    status("VmRSS:") / 1024.0
}

/// Open file descriptors.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map(|d| d.count()).unwrap_or(0)
}
