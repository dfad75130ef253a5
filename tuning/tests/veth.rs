//! The real host: a veth pair in a network namespace this test makes,
//! read through the kernel's ethtool ioctls and the real /sys and /proc.

use std::process::Command;
use tollgate_tuning::ethtool::{Ethtool, SysEthtool};
use tollgate_tuning::host::Host;
use tollgate_tuning::model::{Change, Setting, Severity};
use tollgate_tuning::probe::{nic, NodeSpec};
use tollgate_tuning::report;

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

/// A root for [`Host`] seen from inside the namespace: `sys` is a sysfs
/// mounted from the namespace (so /sys/class/net lists its devices) in a
/// mount namespace private to the calling thread, `proc` links to /proc
/// (whose /proc/sys/net follows the thread's network namespace).
fn namespace_root(tag: &str) -> std::path::PathBuf {
    let root = std::env::temp_dir().join(format!("tgtu-root-{tag}-{}", std::process::id()));
    std::fs::create_dir_all(root.join("sys")).unwrap();
    let _ = std::fs::remove_file(root.join("proc"));
    std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
    // SAFETY: unshare and mount on this thread's own, new mount namespace.
    unsafe {
        assert_eq!(
            libc::unshare(libc::CLONE_NEWNS),
            0,
            "unshare: {}",
            std::io::Error::last_os_error()
        );
        let none = std::ptr::null();
        let rc = libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        );
        assert_eq!(rc, 0, "make / private: {}", std::io::Error::last_os_error());
        let sys =
            std::ffi::CString::new(root.join("sys").into_os_string().into_encoded_bytes()).unwrap();
        let rc = libc::mount(
            c"sysfs".as_ptr(),
            sys.as_ptr(),
            c"sysfs".as_ptr(),
            0,
            std::ptr::null(),
        );
        assert_eq!(rc, 0, "mount sysfs: {}", std::io::Error::last_os_error());
    }
    root
}

#[test]
fn report_on_the_real_host_reads_a_veth_in_a_namespace() {
    let ns = Netns::with_veth("r");
    ns.exec(&["ethtool", "-K", "tgtua", "rx-udp-gro-forwarding", "on"]);
    ns.exec(&["sysctl", "-qw", "net.ipv4.conf.tgtua.rp_filter=1"]);
    ns.exec(&["sysctl", "-qw", "net.ipv4.conf.all.rp_filter=0"]);
    let (nic, report) = ns.enter(|| {
        let root = namespace_root("r");
        let host = Host::at(&root);
        let e = SysEthtool::new().unwrap();
        let spec = NodeSpec {
            interfaces: vec!["tgtua".into()],
            worker_cores: None,
            media_ports: (30000, 40000),
        };
        let nic = nic::inspect(&host, &e, "tgtua").unwrap();
        let report = report::build(&host, &e, &spec);
        // SAFETY: unmounting what namespace_root mounted, on this thread.
        let sys =
            std::ffi::CString::new(root.join("sys").into_os_string().into_encoded_bytes()).unwrap();
        unsafe { libc::umount2(sys.as_ptr(), libc::MNT_DETACH) };
        let _ = std::fs::remove_file(root.join("proc"));
        let _ = std::fs::remove_dir_all(&root);
        (nic, report.unwrap())
    });
    assert_eq!(nic.driver_name(), Some("veth"));
    assert_eq!((nic.rx_queues, nic.tx_queues, nic.numa_node), (1, 1, None));
    assert!(nic.irqs.is_empty(), "a veth has no IRQs: {:?}", nic.irqs);
    let find = |id: &str| {
        report
            .findings
            .iter()
            .find(|f| f.id == id)
            .unwrap_or_else(|| panic!("no {id} in {:#?}", report.findings))
    };
    assert_eq!(find("nic.xdp.tgtua").severity, Severity::Ok);
    let gro = find("nic.feature.rx-udp-gro-forwarding.tgtua");
    let want = Setting::Feature {
        device: "tgtua".into(),
        feature: "rx-udp-gro-forwarding".into(),
    };
    assert_eq!(
        gro.change,
        Some(Change {
            setting: want,
            value: "off".into()
        })
    );
    // /proc/sys/net was read in the namespace: the sysctls set there show.
    let rp = find("sysctl.net.ipv4.conf.tgtua.rp_filter");
    assert_eq!(rp.severity, Severity::Advice, "{rp:?}");
    assert_eq!(
        find("sysctl.net.ipv4.conf.tgtua.forwarding").severity,
        Severity::Warning
    );
    assert_eq!(find("nic.irq.tgtua").title, "tgtua: no queue IRQs found");
}
