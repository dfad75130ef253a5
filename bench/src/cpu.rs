//! CPU time of the relay, read from the kernel: every thread of the system
//! under test plus the NAPI threads of the relay's interfaces (with threaded
//! NAPI on, the relay's receive processing and its XDP program run there),
//! in nanoseconds from `/proc/<pid>/task/<tid>/schedstat`.

use std::fs;

/// Nanoseconds on CPU of every thread of `pid` (0 if it is gone).
pub fn process_ns(pid: u32) -> u64 {
    let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    dir.flatten()
        .map(|t| schedstat_ns(&t.path().join("schedstat")))
        .sum()
}

/// Nanoseconds on CPU of one task.
pub fn task_ns(pid: u32) -> u64 {
    schedstat_ns(std::path::Path::new(&format!("/proc/{pid}/schedstat")))
}

fn schedstat_ns(path: &std::path::Path) -> u64 {
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Kernel threads named `napi/<dev>-<n>` for the given devices.
pub fn napi_threads(devices: &[&str]) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return out;
    };
    for e in proc_dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(comm) = fs::read_to_string(e.path().join("comm")) else {
            continue;
        };
        let comm = comm.trim();
        if devices.iter().any(|d| {
            comm.strip_prefix("napi/")
                .is_some_and(|r| r.starts_with(&format!("{d}-")))
        }) {
            out.push(pid);
        }
    }
    out
}

/// Pins task `pid` to `cores`.
pub fn pin(pid: u32, cores: &[usize]) -> std::io::Result<()> {
    // SAFETY: a zeroed cpu_set_t filled with CPU_SET, passed with its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for c in cores {
            libc::CPU_SET(*c, &mut set);
        }
        if libc::sched_setaffinity(pid as i32, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Pins every thread of process `pid` to `cores`.
pub fn pin_process(pid: u32, cores: &[usize]) {
    if let Ok(dir) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            if let Some(tid) = t.file_name().to_str().and_then(|n| n.parse().ok()) {
                let _ = pin(tid, cores);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cpu_time_grows() {
        let me = std::process::id();
        let a = process_ns(me);
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(
            process_ns(me) > a,
            "schedstat counts this process's CPU time"
        );
        assert!(task_ns(me) > 0);
    }
}
