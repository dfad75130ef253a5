//! The host the probes read: a root directory standing for `/` (the real
//! host, or a fixture tree in tests) and small readers for sysfs and procfs
//! files. A file that does not exist, or that the kernel will not give a
//! value for (a down link's `speed`), is "unknown" (`None`), not an error;
//! any other failure names the path.

use std::io;
use std::path::{Path, PathBuf};

/// A file or directory of the host could not be read or understood.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    /// What is there (or is missing where it is required) is not what it
    /// should be.
    #[error("{path}: {what}")]
    Invalid { path: PathBuf, what: String },
}

/// The machine being inspected, seen from `root`.
#[derive(Debug, Clone)]
pub struct Host {
    pub root: PathBuf,
}

impl Host {
    /// This machine.
    pub fn real() -> Host {
        Host {
            root: PathBuf::from("/"),
        }
    }

    /// A tree laid out like `/` (fixtures).
    pub fn at(root: impl Into<PathBuf>) -> Host {
        Host { root: root.into() }
    }

    /// Where the host's absolute `path` (`/proc/cmdline`) is under the root.
    pub fn path(&self, path: &str) -> PathBuf {
        self.root.join(path.trim_start_matches('/'))
    }

    /// The file's contents, trimmed; None when it is missing or the kernel
    /// has no value for it.
    pub fn read(&self, path: &str) -> Result<Option<String>, HostError> {
        let full = self.path(path);
        match std::fs::read_to_string(&full) {
            Ok(s) => Ok(Some(s.trim().to_string())),
            Err(e) if unknown(&e) => Ok(None),
            Err(source) => Err(HostError::Read { path: full, source }),
        }
    }

    /// The file's contents as a number (`-1` is read as unknown, as sysfs
    /// writes it for "no NUMA node" and "no link").
    pub fn read_i64(&self, path: &str) -> Result<Option<i64>, HostError> {
        let Some(s) = self.read(path)? else {
            return Ok(None);
        };
        let n: i64 = s.parse().map_err(|_| HostError::Invalid {
            path: self.path(path),
            what: format!("{s:?} is not a number"),
        })?;
        Ok((n >= 0).then_some(n))
    }

    /// A CPU list file (`0-3,8`), None when missing.
    pub fn read_cpu_list(&self, path: &str) -> Result<Option<Vec<usize>>, HostError> {
        let Some(s) = self.read(path)? else {
            return Ok(None);
        };
        parse_cpu_list(&s)
            .map(Some)
            .map_err(|what| HostError::Invalid {
                path: self.path(path),
                what,
            })
    }

    /// The names in a directory, sorted; empty when it is missing.
    pub fn list(&self, path: &str) -> Result<Vec<String>, HostError> {
        let full = self.path(path);
        let entries = match std::fs::read_dir(&full) {
            Ok(e) => e,
            Err(e) if unknown(&e) => return Ok(Vec::new()),
            Err(source) => return Err(HostError::Read { path: full, source }),
        };
        let mut names = Vec::new();
        for entry in entries {
            let entry = entry.map_err(|source| HostError::Read {
                path: full.clone(),
                source,
            })?;
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
        names.sort_by_key(|n| natural(n));
        Ok(names)
    }

    /// The last component of a symlink's target (`device/driver` -> `i40e`).
    pub fn link_name(&self, path: &str) -> Result<Option<String>, HostError> {
        let full = self.path(path);
        match std::fs::read_link(&full) {
            Ok(t) => Ok(t.file_name().map(|n| n.to_string_lossy().into_owned())),
            Err(e) if unknown(&e) => Ok(None),
            Err(source) => Err(HostError::Read { path: full, source }),
        }
    }

    /// Whether the path exists under the root.
    pub fn exists(&self, path: &str) -> bool {
        Path::new(&self.path(path)).exists()
    }
}

fn unknown(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(
            e.raw_os_error(),
            Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENODEV)
        )
}

/// Sort key putting `cpu10` after `cpu2`.
fn natural(name: &str) -> (String, u64) {
    let digits = name.len() - name.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    let (stem, num) = name.split_at(name.len() - digits);
    (stem.to_string(), num.parse().unwrap_or(0))
}

/// Parses a kernel CPU list (`0-3,8,10-11`; empty is no CPU).
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("{part:?} in the CPU list {s:?} is not a CPU or a range");
        let (lo, hi) = match part.split_once('-') {
            Some((lo, hi)) => (
                lo.parse().map_err(|_| bad())?,
                hi.parse().map_err(|_| bad())?,
            ),
            None => {
                let c: usize = part.parse().map_err(|_| bad())?;
                (c, c)
            }
        };
        if hi < lo || hi - lo > 4096 {
            return Err(bad());
        }
        cpus.extend(lo..=hi);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Ok(cpus)
}

/// Writes CPUs as a kernel CPU list (`[0,1,2,5]` -> `0-2,5`).
pub fn format_cpu_list(cpus: &[usize]) -> String {
    let mut sorted = cpus.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let start = sorted[i];
        while i + 1 < sorted.len() && sorted[i + 1] == sorted[i] + 1 {
            i += 1;
        }
        parts.push(if sorted[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", sorted[i])
        });
        i += 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_lists_parse_and_format_both_ways() {
        assert_eq!(
            parse_cpu_list("0-3,8,10-11").unwrap(),
            vec![0, 1, 2, 3, 8, 10, 11]
        );
        assert_eq!(parse_cpu_list("").unwrap(), Vec::<usize>::new());
        assert_eq!(format_cpu_list(&[8, 0, 1, 2, 3, 10, 11]), "0-3,8,10-11");
        let e = parse_cpu_list("2-x").unwrap_err();
        assert!(e.contains("\"2-x\""), "{e}");
    }

    #[test]
    fn missing_files_are_unknown_and_bad_numbers_name_the_path() {
        let dir = std::env::temp_dir().join(format!("tgtu-host-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("sys")).unwrap();
        std::fs::write(dir.join("sys/n"), "abc\n").unwrap();
        std::fs::write(dir.join("sys/m"), "-1\n").unwrap();
        let host = Host::at(&dir);
        assert_eq!(host.read("/sys/missing").unwrap(), None);
        assert_eq!(host.read_i64("/sys/m").unwrap(), None);
        let e = host.read_i64("/sys/n").unwrap_err().to_string();
        assert!(
            e.contains("sys/n") && e.contains("\"abc\" is not a number"),
            "{e}"
        );
        assert!(host.list("/nothing").unwrap().is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
