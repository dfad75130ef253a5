//! `tune apply` and `tune revert` on a veth pair in a network namespace
//! this test makes (names `tgta*`): every value the round trip touches is
//! restored, a write the kernel refuses half-way rolls back what was made,
//! reverting again says the values are already back, and a feature the
//! driver fixes is refused by name. On a copy of the bare-metal fixture,
//! everything the report recommends is applied and reverted. The host's own
//! settings are never written: apply runs on a thread that entered the
//! namespace, with a sysfs mounted there (in a private mount namespace) so
//! /sys/class/net shows the namespace's devices, and /proc/sys/net opened
//! from that thread is the namespace's.

use std::ffi::CString;
use std::path::{Path, PathBuf};
use std::process::Command;
use tollgate_tuning::apply::settings::{HostSettings, Settings};
use tollgate_tuning::apply::{self, ApplyError};
use tollgate_tuning::ethtool::SysEthtool;
use tollgate_tuning::host::Host;
use tollgate_tuning::model::{Change, Finding, Setting, Severity};
use tollgate_tuning::revert::{self, RevertFile};

fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A network namespace holding the veth pair tgta0/tgta1, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        let name = format!("tgta{tag}{}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        let ip = |args: &[&str]| run(&[&["ip", "-n", &ns.name], args].concat());
        ip(&[
            "link", "add", "tgta0", "type", "veth", "peer", "name", "tgta1",
        ]);
        ip(&["link", "set", "tgta0", "up"]);
        ip(&["link", "set", "tgta1", "up"]);
        ns
    }

    /// Runs `f` on a thread inside the namespace, with a root directory
    /// whose `sys` is a sysfs of the namespace and whose `proc` is /proc.
    fn enter<T: Send>(&self, f: impl FnOnce(&Host) -> T + Send) -> T {
        let root = std::env::temp_dir().join(format!("{}-root", self.name));
        let out = std::thread::scope(|s| {
            s.spawn(|| {
                enter_netns(&self.name, &root);
                f(&Host::at(&root))
            })
            .join()
            .expect("the thread in the namespace panicked")
        });
        // The thread's mount namespace, and its sysfs, ended with it; only
        // empty directories and a symlink are left (nothing recursive here).
        std::fs::remove_file(root.join("proc")).unwrap();
        std::fs::remove_dir(root.join("sys")).unwrap();
        std::fs::remove_dir(&root).unwrap();
        out
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

fn check(rc: libc::c_int, what: &str) {
    assert!(rc == 0, "{what}: {}", std::io::Error::last_os_error());
}

/// This thread only: joins namespace `name`, gets a private mount
/// namespace and mounts the namespace's sysfs under `root/sys`.
fn enter_netns(name: &str, root: &Path) {
    let ns = std::fs::File::open(format!("/run/netns/{name}")).unwrap();
    let c = |p: &Path| CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: plain syscalls on this thread with valid fds and C strings.
    unsafe {
        use std::os::fd::AsRawFd;
        check(libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET), "setns");
        check(libc::unshare(libc::CLONE_NEWNS), "unshare(CLONE_NEWNS)");
        let slash = c(Path::new("/"));
        let private = libc::MS_REC | libc::MS_PRIVATE;
        let none = std::ptr::null();
        check(
            libc::mount(none, slash.as_ptr(), none, private, std::ptr::null()),
            "making / private",
        );
        std::fs::create_dir_all(root.join("sys")).unwrap();
        std::os::unix::fs::symlink("/proc", root.join("proc")).unwrap();
        let sysfs = CString::new("sysfs").unwrap();
        let target = c(&root.join("sys"));
        check(
            libc::mount(
                sysfs.as_ptr(),
                target.as_ptr(),
                sysfs.as_ptr(),
                0,
                std::ptr::null(),
            ),
            "mounting sysfs",
        );
    }
}

fn finding(id: &str, setting: Setting, value: &str) -> Finding {
    Finding {
        id: id.into(),
        severity: Severity::Advice,
        title: id.into(),
        evidence: vec![],
        command: None,
        why: String::new(),
        change: Some(Change {
            setting,
            value: value.into(),
        }),
        needs_reboot: false,
    }
}

fn gro() -> Setting {
    Setting::Feature {
        device: "tgta0".into(),
        feature: "rx-gro".into(),
    }
}
fn threaded() -> Setting {
    Setting::ThreadedNapi {
        device: "tgta0".into(),
    }
}
fn somaxconn() -> Setting {
    Setting::Sysctl {
        name: "net.core.somaxconn".into(),
    }
}
fn rp_filter() -> Setting {
    Setting::Sysctl {
        name: "net.ipv4.conf.tgta0.rp_filter".into(),
    }
}

fn read_all(s: &dyn Settings, settings: &[Setting]) -> Vec<String> {
    settings.iter().map(|x| s.read(x).unwrap()).collect()
}

fn host_somaxconn() -> String {
    std::fs::read_to_string("/proc/sys/net/core/somaxconn").unwrap()
}

fn revert_path(ns: &Netns) -> PathBuf {
    let p = std::env::temp_dir().join(format!("{}-revert.json", ns.name));
    let _ = std::fs::remove_file(&p);
    p
}

#[test]
fn apply_then_revert_restores_every_value_and_a_second_revert_finds_them_back() {
    let ns = Netns::new("rt");
    let file = revert_path(&ns);
    let host_before = host_somaxconn();
    // GRO first: veth has NAPI (and so threaded NAPI) only with GRO on.
    let findings = vec![
        finding("nic.gro.tgta0", gro(), "on"),
        finding("nic.threaded_napi.tgta0", threaded(), "1"),
        finding("sysctl.net.core.somaxconn", somaxconn(), "8192"),
        finding("sysctl.rp_filter.tgta0", rp_filter(), "2"),
    ];
    let all: Vec<Setting> = findings
        .iter()
        .map(|f| f.change.clone().unwrap().setting)
        .collect();
    let (before, applied, outcome, again, after) = ns.enter(|host| {
        let mut s = HostSettings::new(host.clone(), SysEthtool::new().unwrap());
        let before = read_all(&s, &all);
        let plan = apply::plan(&findings, &[], &s).unwrap();
        assert_eq!(plan.steps.len(), 4, "{plan:?}");
        let mut logged = 0;
        apply::apply(&plan, &mut s, &file, "test", &mut |_| logged += 1).unwrap();
        assert_eq!(logged, 4);
        let applied = read_all(&s, &all);
        let rf = RevertFile::load(&file).unwrap();
        let outcome = revert::revert(&rf, &mut s);
        let again = revert::revert(&rf, &mut s);
        (before, applied, outcome, again, read_all(&s, &all))
    });
    assert_eq!(before, ["off", "0", "4096", "0"]);
    assert_eq!(applied, ["on", "1", "8192", "2"]);
    assert!(outcome.failed.is_empty(), "{}", outcome.describe());
    assert_eq!(outcome.restored.len(), 4, "{}", outcome.describe());
    assert_eq!(after, before);
    assert_eq!((again.already.len(), again.restored.len()), (4, 0));
    let text = again.describe();
    for want in [
        "already back: sysctl net.core.somaxconn is 4096",
        "already back: tgta0 feature rx-gro is off",
    ] {
        assert!(text.contains(want), "{want:?} missing from:\n{text}");
    }
    assert_eq!(
        host_somaxconn(),
        host_before,
        "the host's own somaxconn changed"
    );
    std::fs::remove_file(&file).unwrap();
}

#[test]
fn a_write_the_kernel_refuses_half_way_rolls_back_what_was_made() {
    let ns = Netns::new("rb");
    let file = revert_path(&ns);
    // veth has rx/tx channels but no combined ones: the kernel refuses 2.
    let channels = Setting::Channels {
        device: "tgta0".into(),
    };
    let findings = vec![
        finding("nic.gro.tgta0", gro(), "on"),
        finding("sysctl.net.core.somaxconn", somaxconn(), "8192"),
        finding("nic.channels.tgta0", channels, "2"),
        finding("sysctl.rp_filter.tgta0", rp_filter(), "2"),
    ];
    let all: Vec<Setting> = findings
        .iter()
        .map(|f| f.change.clone().unwrap().setting)
        .collect();
    let (before, err, after) = ns.enter(|host| {
        let mut s = HostSettings::new(host.clone(), SysEthtool::new().unwrap());
        let before = read_all(&s, &all);
        let plan = apply::plan(&findings, &[], &s).unwrap();
        let err = apply::apply(&plan, &mut s, &file, "test", &mut |_| {}).unwrap_err();
        (before, err, read_all(&s, &all))
    });
    assert_eq!(after, before, "not everything was rolled back");
    let ApplyError::Write(w) = &err else {
        panic!("{err}")
    };
    assert_eq!(w.restored, [somaxconn(), gro()], "{err}");
    assert!(w.unrestored.is_empty(), "{err}");
    let text = err.to_string();
    assert!(
        text.starts_with(
            "could not set tgta0 combined channels to \"2\" (for nic.channels.tgta0): "
        ) && text.contains("ETHTOOL_SCHANNELS on tgta0: Invalid argument"),
        "{text}"
    );
    assert_eq!(RevertFile::load(&file).unwrap().changes.len(), 4);
    std::fs::remove_file(&file).unwrap();
}

/// The bare-metal fixture, copied so that apply may write its files.
fn metal_copy() -> PathBuf {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/metal");
    let to = std::env::temp_dir().join(format!("tgta-metal-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&to);
    run(&["cp", "-a", from.to_str().unwrap(), to.to_str().unwrap()]);
    to
}

#[test]
fn on_a_fixture_host_apply_settles_what_the_report_asks_and_revert_brings_back_the_same_report() {
    use tollgate_tuning::ethtool::FixtureEthtool;
    use tollgate_tuning::probe::NodeSpec;
    use tollgate_tuning::report;
    let root = metal_copy();
    let host = Host::at(&root);
    let spec = NodeSpec {
        interfaces: vec!["eth1".into()],
        worker_cores: None,
        media_ports: (30000, 40000),
    };
    let mut s = HostSettings::new(host.clone(), FixtureEthtool::load(&host).unwrap());
    let text = |s: &HostSettings<FixtureEthtool>| {
        report::text(&report::build(&host, s.ethtool(), &spec).unwrap())
    };
    let before = report::build(&host, s.ethtool(), &spec).unwrap();
    let plan = apply::plan(&before.findings, &[], &s).unwrap();
    assert!(plan.steps.len() >= 10, "{plan:?}");
    let file = root.join("revert.json");
    apply::apply(&plan, &mut s, &file, "metal", &mut |_| {}).unwrap();
    let after = report::build(&host, s.ethtool(), &spec).unwrap();
    let again = apply::plan(&after.findings, &[], &s).unwrap();
    assert!(
        again.steps.is_empty(),
        "the report still asks for {:?}",
        again.steps
    );
    let outcome = revert::revert(&RevertFile::load(&file).unwrap(), &mut s);
    assert!(outcome.failed.is_empty(), "{}", outcome.describe());
    assert_eq!(outcome.restored.len(), plan.steps.len());
    assert_eq!(text(&s), report::text(&before));
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn a_feature_the_driver_fixes_is_refused_by_name_and_left_as_it_was() {
    let ns = Netns::new("fx");
    let lo = Setting::Feature {
        device: "tgta0".into(),
        feature: "loopback".into(),
    };
    let (err, after) = ns.enter(|host| {
        let mut s = HostSettings::new(host.clone(), SysEthtool::new().unwrap());
        let err = s.write(&lo, "on").unwrap_err();
        (err, s.read(&lo).unwrap())
    });
    assert_eq!(err, "tgta0: loopback is fixed by the driver");
    assert_eq!(after, "off");
}
