//! CPU time of the relay, read from the kernel: the processes of the system
//! under test and the NAPI kernel threads of the relay's interfaces (with
//! threaded NAPI on, the relay's receive processing and its XDP program run
//! there), each from its process CPU clock, which counts every thread the
//! process ever had, those that exited during the run included; and, to
//! cross-check them, the relay cores' busy time from `/proc/stat`.

use serde::Serialize;
use std::fs;

/// Nanoseconds on CPU of every thread process `pid` has had, exited ones
/// included (the kernel's `CPUCLOCK_SCHED` of the thread group); None if
/// the process is gone.
pub fn process_clock_ns(pid: u32) -> Option<u64> {
    let mut clock: libc::clockid_t = 0;
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: out-pointers to locals; the clock id is the kernel's for `pid`.
    let ok = unsafe {
        libc::clock_getcpuclockid(pid as libc::pid_t, &mut clock) == 0
            && libc::clock_gettime(clock, &mut ts) == 0
    };
    ok.then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

/// `roots` and every process descending from them.
pub fn tree(roots: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    let mut todo = roots.to_vec();
    while let Some(p) = todo.pop() {
        out.push(p);
        for t in fs::read_dir(format!("/proc/{p}/task"))
            .into_iter()
            .flatten()
            .flatten()
        {
            let kids = fs::read_to_string(t.path().join("children")).unwrap_or_default();
            todo.extend(
                kids.split_whitespace()
                    .filter_map(|k| k.parse::<u32>().ok()),
            );
        }
    }
    out
}

/// [`process_clock_ns`], 0 for a process that is gone.
pub fn process_ns(pid: u32) -> u64 {
    process_clock_ns(pid).unwrap_or(0)
}

/// Busy nanoseconds of `cores` so far from `/proc/stat` (user, nice,
/// system, irq, softirq and steal), whatever ran there; the kernel samples
/// it at its tick. None if a core is missing.
pub fn cores_busy_ns(cores: &[usize]) -> Option<u64> {
    let stat = fs::read_to_string("/proc/stat").ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    cores.iter().try_fold(0u64, |sum, c| {
        let name = format!("cpu{c}");
        let line = stat
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))?;
        let f: Vec<u64> = line
            .split_whitespace()
            .skip(1)
            .map(|v| v.parse().ok())
            .collect::<Option<_>>()?;
        // user nice system idle iowait irq softirq steal ...
        let ticks = f[..3].iter().sum::<u64>() + f.get(5..8)?.iter().sum::<u64>();
        Some(sum + ticks * (1_000_000_000 / hz))
    })
}

/// The sampling period of `/proc/stat`'s counters at their coarsest: one
/// USER_HZ tick (no kernel ticks slower).
pub fn stat_tick_ns() -> u64 {
    // SAFETY: sysconf has no preconditions.
    1_000_000_000 / unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64
}

/// A counted task: a process or a kernel thread, with the cores it may run on.
#[derive(Debug, Clone, Serialize)]
pub struct Task {
    pub pid: u32,
    pub name: String,
    /// Its allowed cores as the kernel reports them after pinning
    /// (`Cpus_allowed_list`).
    pub cores: String,
}

impl Task {
    /// Task `pid` as it is now; None if it is gone.
    pub fn read(pid: u32) -> Option<Task> {
        let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let field = |k: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(k))
                .map(|v| v.trim().to_string())
        };
        Some(Task {
            pid,
            name: fs::read_to_string(format!("/proc/{pid}/comm"))
                .ok()?
                .trim()
                .to_string(),
            cores: field("Cpus_allowed_list:")?,
        })
    }
}

/// The tasks whose CPU time is the relay's.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counted {
    /// Whole processes: every thread, exited ones included.
    pub processes: Vec<Task>,
    /// The relay interfaces' threaded-NAPI kernel threads.
    pub napi_threads: Vec<Task>,
}

/// CPU so far of a [`Counted`] set.
#[derive(Debug, Clone, Copy)]
pub struct Sample {
    pub processes_ns: u64,
    pub napi_ns: u64,
}

/// A counted task that is gone: its CPU time can no longer be read.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{name} (pid {pid})")]
pub struct Gone {
    pub pid: u32,
    pub name: String,
}

impl Counted {
    /// Reads every task's CPU clock; fails naming the first that is gone.
    pub fn sample(&self) -> Result<Sample, Gone> {
        let sum = |tasks: &[Task]| {
            tasks.iter().try_fold(0u64, |s, t| {
                process_clock_ns(t.pid)
                    .map(|ns| s + ns)
                    .ok_or_else(|| Gone {
                        pid: t.pid,
                        name: t.name.clone(),
                    })
            })
        };
        Ok(Sample {
            processes_ns: sum(&self.processes)?,
            napi_ns: sum(&self.napi_threads)?,
        })
    }
}

/// Kernel threads named `napi/<dev>-<n>` for the given devices.
pub fn napi_threads(devices: &[&str]) -> Vec<Task> {
    let Ok(proc_dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    proc_dir
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(Task::read)
        .filter(|t| {
            t.name.strip_prefix("napi/").is_some_and(|r| {
                devices
                    .iter()
                    .any(|d| r.strip_prefix(d).is_some_and(|n| n.starts_with('-')))
            })
        })
        .collect()
}

/// Pins the NAPI threads of `devices` to `cores`; returns them as read
/// back afterwards.
pub fn pin_napi_threads(devices: &[&str], cores: &[usize]) -> std::io::Result<Vec<Task>> {
    napi_threads(devices)
        .into_iter()
        .map(|t| {
            pin(t.pid, cores)?;
            Task::read(t.pid).ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("{} vanished while being pinned", t.name),
                )
            })
        })
        .collect()
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

/// Gives task `pid` the lowest real-time priority (SCHED_FIFO 1), so that it
/// runs as soon as it wakes, ahead of every ordinary task on its core.
pub fn realtime(pid: u32) -> std::io::Result<()> {
    let param = libc::sched_param { sched_priority: 1 };
    // SAFETY: sched_setscheduler reads one sched_param.
    if unsafe { libc::sched_setscheduler(pid as i32, libc::SCHED_FIFO, &param) } != 0 {
        return Err(std::io::Error::last_os_error());
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

    /// This thread's own CPU clock.
    fn thread_ns() -> u64 {
        tollgate_dataplane::backend::clock_ns(libc::CLOCK_THREAD_CPUTIME_ID)
    }

    /// Spins until this thread has had `ms` of CPU (within 10 s of wall
    /// time, however busy the machine); returns the CPU time it had.
    fn spin(ms: u64) -> u64 {
        let (t0, end) = (
            thread_ns(),
            std::time::Instant::now() + std::time::Duration::from_secs(10),
        );
        let mut x = 0u64;
        while thread_ns() - t0 < ms * 1_000_000 && std::time::Instant::now() < end {
            for _ in 0..10_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
            }
        }
        thread_ns() - t0
    }

    #[test]
    fn a_thread_that_exits_keeps_its_cpu_time() {
        let me = std::process::id();
        let before = process_clock_ns(me).expect("own clock");
        let spent = std::thread::spawn(|| spin(40))
            .join()
            .expect("spinning thread");
        assert!(spent >= 40_000_000, "the thread ran ({spent} ns)");
        // The thread is gone: a sum over live threads would have lost it.
        let after = process_clock_ns(me).expect("own clock");
        assert!(
            after - before >= spent,
            "{} ns counted, the exited thread alone spent {spent}",
            after - before
        );
    }

    #[test]
    fn a_gone_process_is_named_not_zero() {
        let mut child = std::process::Command::new("true").spawn().expect("true");
        let pid = child.id();
        child.wait().expect("wait");
        let counted = Counted {
            processes: vec![Task {
                pid,
                name: "true".into(),
                cores: String::new(),
            }],
            napi_threads: Vec::new(),
        };
        let gone = counted.sample().expect_err("a reaped process has no clock");
        assert_eq!(gone.pid, pid);
    }

    #[test]
    fn busy_time_of_a_core_grows_with_work_pinned_there() {
        let core = 0;
        let before = std::thread::spawn(move || {
            pin(0, &[core]).expect("pin to core 0");
            let b = cores_busy_ns(&[core]).expect("/proc/stat");
            spin(200);
            b
        })
        .join()
        .expect("pinned thread");
        let after = cores_busy_ns(&[core]).expect("/proc/stat");
        // 200 ms of CPU there, sampled at the tick; allow a generous margin.
        assert!(
            after - before >= 100_000_000,
            "core {core} busy {} ns over 200 ms of spinning there",
            after - before
        );
    }
}
