//! The real host: a veth pair in a network namespace this test makes,
//! read through the kernel's ethtool ioctls and the real /sys and /proc.

use std::process::Command;
use tollgate_tuning::ethtool::{Ethtool, SysEthtool};

/// A namespace with a veth pair in it, removed on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn with_veth(tag: &str) -> Netns {
        let name = format!("tgtu{tag}{}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        ns.ip(&[
            "link", "add", "tgtua", "type", "veth", "peer", "name", "tgtub",
        ]);
        ns.ip(&["link", "set", "tgtua", "up"]);
        ns.ip(&["link", "set", "tgtub", "up"]);
        ns
    }

    fn ip(&self, args: &[&str]) {
        let mut full = vec!["ip", "-n", &self.name];
        full.extend_from_slice(args);
        run(&full);
    }

    fn exec(&self, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", &self.name];
        full.extend_from_slice(args);
        run(&full);
    }

    /// Runs `f` on a thread that has entered the namespace.
    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::scope(|s| {
            s.spawn(|| {
                let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
                use std::os::fd::AsRawFd;
                // SAFETY: setns on this thread only, with an open netns fd.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns {path}: {}", std::io::Error::last_os_error());
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .expect(args[0]);
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn sys_ethtool_reads_a_veth_as_the_kernel_reports_it() {
    let ns = Netns::with_veth("e");
    ns.exec(&["ethtool", "-K", "tgtua", "gro", "on"]);
    ns.exec(&["ethtool", "-K", "tgtub", "gro", "off"]);
    let (drv, a, b, channels) = ns.enter(|| {
        let e = SysEthtool::new().unwrap();
        (
            e.driver_info("tgtua").unwrap(),
            e.features("tgtua").unwrap().unwrap(),
            e.features("tgtub").unwrap().unwrap(),
            e.channels("tgtua").unwrap(),
        )
    });
    assert_eq!(drv.unwrap().driver, "veth");
    let gro = |fs: &[tollgate_tuning::ethtool::Feature]| {
        fs.iter()
            .find(|f| f.name == "rx-gro")
            .map(|f| (f.active, f.changeable))
    };
    assert_eq!(gro(&a), Some((true, true)));
    assert_eq!(gro(&b), Some((false, true)));
    let ch = channels.expect("veth reports its channels");
    assert_eq!((ch.rx, ch.tx), (1, 1), "{ch:?}");
}
