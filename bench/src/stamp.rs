//! What a benchmark figure was measured with: the commit and whether the
//! binary's sources differed from it (recorded at build time by
//! `build.rs`), the build profile, the kernel, the CPU model, the cores
//! this process may run on, and the pinning the benchmark chose. Every
//! report carries one, in its JSON and on its first line.

use serde::Serialize;
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stamp {
    /// `git rev-parse HEAD` of the tree the binary was built from.
    pub commit: String,
    /// Whether the binary's crates had uncommitted changes at build time
    /// (`None` when git could not tell).
    pub dirty: Option<bool>,
    /// Cargo profile and optimisation level, e.g. `release (opt-level 3)`.
    pub profile: String,
    /// `/proc/sys/kernel/osrelease`.
    pub kernel: String,
    /// The first `model name` of `/proc/cpuinfo`.
    pub cpu_model: String,
    /// Online cores.
    pub cores: usize,
    /// The cores this process may run on (its affinity mask).
    pub affinity: Vec<usize>,
    /// What the benchmark pinned where, in words (`none` by default).
    pub pinning: String,
}

/// The stamp of this binary on this machine, with no pinning recorded.
pub fn stamp() -> Stamp {
    let read = |p: &str| std::fs::read_to_string(p).unwrap_or_default();
    Stamp {
        commit: env!("TOLLGATE_BUILD_COMMIT").to_string(),
        dirty: env!("TOLLGATE_BUILD_DIRTY").parse().ok(),
        profile: env!("TOLLGATE_BUILD_PROFILE").to_string(),
        kernel: read("/proc/sys/kernel/osrelease").trim().to_string(),
        cpu_model: read("/proc/cpuinfo")
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .map(|r| r.trim_start_matches([' ', '\t', ':']).to_string())
            })
            .unwrap_or_else(|| "unknown".into()),
        cores: tollgate_dataplane::host_cores(),
        affinity: affinity(),
        pinning: "none".into(),
    }
}

impl Stamp {
    /// The same stamp with the benchmark's pinning described.
    pub fn pinned(mut self, pinning: impl Into<String>) -> Stamp {
        self.pinning = pinning.into();
        self
    }
}

/// The cores in this process's affinity mask.
fn affinity() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; the kernel fills it.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::cpu_set_t>();
    // SAFETY: `set` is a live cpu_set_t of `size` bytes.
    if unsafe { libc::sched_getaffinity(0, size, &mut set) } != 0 {
        return Vec::new();
    }
    (0..libc::CPU_SETSIZE as usize)
        // SAFETY: `i` is below CPU_SETSIZE.
        .filter(|&i| unsafe { libc::CPU_ISSET(i, &set) })
        .collect()
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = self.commit.get(..12).unwrap_or(&self.commit);
        let dirty = match self.dirty {
            Some(true) => " (dirty)",
            Some(false) => "",
            None => " (dirty: unknown)",
        };
        write!(
            f,
            "commit {short}{dirty}, {} build, Linux {}, {} ({} cores, may run on {:?}), pinning: {}",
            self.profile, self.kernel, self.cpu_model, self.cores, self.affinity, self.pinning
        )
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stamp_names_commit_profile_kernel_and_cpu() {
        let s = super::stamp();
        assert!(
            s.commit.len() == 40 || s.commit == "unknown",
            "{}",
            s.commit
        );
        assert!(s.profile.contains("opt-level"), "{}", s.profile);
        assert!(!s.kernel.is_empty() && !s.cpu_model.is_empty());
        assert!(s.cores > 0 && !s.affinity.is_empty());
        let line = s.clone().pinned("node on core 1").to_string();
        assert!(
            line.contains(&s.kernel) && line.ends_with("pinning: node on core 1"),
            "{line}"
        );
    }
}
