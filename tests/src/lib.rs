//! Harness for Tollgate's end-to-end tests: network namespaces joined by veth
//! pairs, the real `tollgate` binary started inside them, RTP senders and
//! receivers bound in the namespaces, and a raw capture that checks what
//! actually went over the wire.
//!
//! Traffic only ever goes to loopback or to addresses inside namespaces the
//! test created. Every loop is bounded in count and time. The tests need
//! root (namespaces, XDP); they fail with a clear message without it.

/// The namespace topology, shared with the benchmarks.
pub use tollgate_bench::topology as netns;

pub mod archived;
pub mod browser;
pub mod capture;
pub mod cdrs;
pub mod libsrtp;
pub mod peers;
pub mod process;
pub mod relay;
pub mod rtp;
pub mod services;
pub mod tls;
pub mod tone;

use std::path::PathBuf;

/// Fails the test clearly when not root.
pub fn require_root() {
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "these tests create network namespaces and attach XDP: run them as root"
    );
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(prefix: &str) -> Self {
        let p = std::env::temp_dir().join(netns::unique(prefix));
        std::fs::create_dir_all(&p).expect("create a temporary directory");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A small tmpfs mounted at a directory (made if missing), for a disk
/// that fills; unmounted on drop.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`mount -o size=`: "400k", "4m") at `at`.
    pub fn mount(at: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(at).expect("a mount point");
        let st = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .expect("run mount");
        assert!(st.success(), "mount a tmpfs at {} (as root)", at.display());
        Tmpfs(at.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

/// Polls `cond` every 50 ms until it holds or `within` has passed; returns
/// whether it held. The caller asserts, with what it knows of the failure.
pub fn wait_until(within: std::time::Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
