//! Test topologies: caller, relay and callee namespaces joined by two veth
//! pairs, with IPv4 and IPv6 addresses, and a way to run code inside one.
//!
//! ```text
//!  caller [ca] 10.201.1.2 ---- 10.201.1.1 [ra] relay [rb] 10.201.2.1 ---- 10.201.2.2 [eb] callee
//!              fd00:201:1::2   fd00:201:1::1        fd00:201:2::1    fd00:201:2::2
//! ```
//! TX checksum offload is off on every veth (a veth sender would otherwise
//! leave UDP checksums incomplete) and GRO is on at the ends, which lets
//! native XDP redirect into the relay's veths.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct Addrs {
    pub caller: IpAddr,
    pub relay_a: IpAddr,
    pub relay_b: IpAddr,
    pub callee: IpAddr,
}

pub fn v4() -> Addrs {
    Addrs {
        caller: "10.201.1.2".parse().unwrap(),
        relay_a: "10.201.1.1".parse().unwrap(),
        relay_b: "10.201.2.1".parse().unwrap(),
        callee: "10.201.2.2".parse().unwrap(),
    }
}

pub fn v6() -> Addrs {
    Addrs {
        caller: "fd00:201:1::2".parse().unwrap(),
        relay_a: "fd00:201:1::1".parse().unwrap(),
        relay_b: "fd00:201:2::1".parse().unwrap(),
        callee: "fd00:201:2::2".parse().unwrap(),
    }
}

pub struct Topology {
    pub caller: String,
    pub relay: String,
    pub callee: String,
    /// Interface names: caller's, relay's caller side, relay's callee side, callee's.
    pub ca: String,
    pub ra: String,
    pub rb: String,
    pub eb: String,
}

/// A name unique in this process and across concurrent processes.
pub fn unique(prefix: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "{prefix}{}x{}",
        std::process::id() % 100_000,
        N.fetch_add(1, Ordering::Relaxed)
    )
}

pub fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Topology {
    pub fn new() -> Self {
        Self::with_prefix("")
    }

    /// A topology whose interfaces are named `{prefix}ca`, `{prefix}ra`, ...
    pub fn with_prefix(prefix: &str) -> Self {
        Self::named("tg", prefix)
    }

    /// A topology whose namespaces' names start with `ns_prefix`, so a
    /// suite can tell its own apart; interfaces keep their plain names.
    pub fn in_namespaces(ns_prefix: &str) -> Self {
        Self::named(ns_prefix, "")
    }

    fn named(ns_prefix: &str, prefix: &str) -> Self {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "network namespaces need root"
        );
        let base = unique(ns_prefix);
        let t = Topology {
            caller: format!("{base}c"),
            relay: format!("{base}r"),
            callee: format!("{base}e"),
            ca: format!("{prefix}ca"),
            ra: format!("{prefix}ra"),
            rb: format!("{prefix}rb"),
            eb: format!("{prefix}eb"),
        };
        for ns in [&t.caller, &t.relay, &t.callee] {
            sh(&["ip", "netns", "add", ns]);
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        }
        sh(&[
            "ip", "link", "add", &t.ca, "netns", &t.caller, "type", "veth", "peer", "name", &t.ra,
            "netns", &t.relay,
        ]);
        sh(&[
            "ip", "link", "add", &t.rb, "netns", &t.relay, "type", "veth", "peer", "name", &t.eb,
            "netns", &t.callee,
        ]);
        let plan = [
            (&t.caller, &t.ca, "10.201.1.2/24", "fd00:201:1::2/64"),
            (&t.relay, &t.ra, "10.201.1.1/24", "fd00:201:1::1/64"),
            (&t.relay, &t.rb, "10.201.2.1/24", "fd00:201:2::1/64"),
            (&t.callee, &t.eb, "10.201.2.2/24", "fd00:201:2::2/64"),
        ];
        for (ns, ifname, a4, a6) in plan {
            // No duplicate address detection: a just-created link's tentative
            // link-local address would otherwise hold up neighbour discovery.
            sh(&[
                "ip",
                "netns",
                "exec",
                ns,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{ifname}.accept_dad=0"),
            ]);
            sh(&["ip", "-n", ns, "addr", "add", a4, "dev", ifname]);
            sh(&["ip", "-n", ns, "addr", "add", a6, "dev", ifname, "nodad"]);
            sh(&["ip", "-n", ns, "link", "set", ifname, "up"]);
            sh(&[
                "ip", "netns", "exec", ns, "ethtool", "-K", ifname, "tx", "off",
            ]);
        }
        sh(&[
            "ip", "netns", "exec", &t.caller, "ethtool", "-K", &t.ca, "gro", "on",
        ]);
        sh(&[
            "ip", "netns", "exec", &t.callee, "ethtool", "-K", &t.eb, "gro", "on",
        ]);
        // The end hosts resolve the relay now, so that their own first
        // packets are not queued or dropped by their kernels during ARP/ND.
        for (ns, ifname, relay) in [
            (&t.caller, &t.ca, ["10.201.1.1", "fd00:201:1::1"]),
            (&t.callee, &t.eb, ["10.201.2.1", "fd00:201:2::1"]),
        ] {
            for addr in relay {
                wait_neighbour(ns, ifname, addr);
            }
        }
        t
    }

    /// Hands the relay's veths to a user-space network stack (DPDK over
    /// net_af_packet): the kernel's addresses come off them (IPv6 off too),
    /// so ARP and neighbour discovery can only be answered by that stack,
    /// and the end hosts forget the relay's MAC addresses to ask it again.
    pub fn give_relay_links_away(&self) {
        for ifname in [&self.ra, &self.rb] {
            sh(&["ip", "-n", &self.relay, "addr", "flush", "dev", ifname]);
            sh(&[
                "ip",
                "netns",
                "exec",
                &self.relay,
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{ifname}.disable_ipv6=1"),
            ]);
        }
        for (ns, ifname) in [(&self.caller, &self.ca), (&self.callee, &self.eb)] {
            sh(&["ip", "-n", ns, "neigh", "flush", "dev", ifname]);
        }
    }

    /// Runs `f` on a thread inside namespace `ns` (sockets it creates stay there).
    pub fn run_in<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{ns}");
        std::thread::spawn(move || {
            let f_ns = File::open(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            // SAFETY: setns on this thread only, with a namespace fd we hold.
            let r = unsafe { libc::setns(f_ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(
                r,
                0,
                "setns into {path}: {}",
                std::io::Error::last_os_error()
            );
            f()
        })
        .join()
        .expect("thread in namespace panicked")
    }

    /// MAC address of `ifname` in `ns`.
    pub fn mac(ns: &str, ifname: &str) -> [u8; 6] {
        let out = Command::new("ip")
            .args(["-n", ns, "-o", "link", "show", ifname])
            .output()
            .expect("ip link");
        let text = String::from_utf8_lossy(&out.stdout);
        let mac = text
            .split("link/ether ")
            .nth(1)
            .and_then(|s| s.split_whitespace().next())
            .expect("a MAC");
        let mut b = [0u8; 6];
        for (i, h) in mac.split(':').enumerate() {
            b[i] = u8::from_str_radix(h, 16).expect("hex");
        }
        b
    }
}

/// Packets `ifname` in `ns` has received, from the kernel's counters.
pub fn rx_packets(ns: &str, ifname: &str) -> Option<u64> {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "-s", "link", "show", "dev", ifname])
        .output()
        .ok()?;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
    v.get(0)?
        .get("stats64")?
        .get("rx")?
        .get("packets")?
        .as_u64()
}

/// Asks `ns`'s kernel to resolve `addr` on `ifname` and waits (at most 3 s)
/// until it has.
fn wait_neighbour(ns: &str, ifname: &str, addr: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        sh(&[
            "ip", "-n", ns, "neigh", "replace", addr, "dev", ifname, "use",
        ]);
        let out = Command::new("ip")
            .args(["-n", ns, "neigh", "show", addr, "dev", ifname])
            .output()
            .expect("ip neigh");
        let state = String::from_utf8_lossy(&out.stdout).into_owned();
        if state.contains("REACHABLE") {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{ns}: {addr} on {ifname} did not resolve: {state}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

impl Default for Topology {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for ns in [&self.caller, &self.relay, &self.callee] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// A bpffs mounted in this process's mount namespace, so pins outlive the
/// `ip netns exec` mount namespace of a data-plane process; unmounted and
/// removed on drop.
pub struct Bpffs {
    pub dir: std::path::PathBuf,
}

impl Bpffs {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(unique("tgbpf"));
        std::fs::create_dir_all(&dir).expect("create a bpffs mount point");
        sh(&[
            "mount",
            "-t",
            "bpf",
            "bpf",
            dir.to_str().expect("utf-8 path"),
        ]);
        Bpffs { dir }
    }
}

impl Default for Bpffs {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Bpffs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.dir).status();
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// `[dataplane.dpdk]` for a topology's relay veths `ra` and `rb` (their
/// names), over net_af_packet without hugepages, with `workers` queue pairs
/// per port and the topology's relay addresses.
pub fn dpdk_section(ra: &str, rb: &str, workers: usize) -> String {
    let mut s = String::from(
        "[dataplane.dpdk]\nno_huge = true\nin_memory = true\nmemory_mb = 128\nmbufs = 4095\nmax_sleep_us = 500\n",
    );
    // The callee side routes everything off its prefixes through the
    // callee's host (a gateway that only the capture sees forward); the
    // caller side has no gateway.
    for (i, (name, a4, a6, gateways)) in [
        (ra, "10.201.1.1/24", "fd00:201:1::1/64", ""),
        (
            rb,
            "10.201.2.1/24",
            "fd00:201:2::1/64",
            "gateways = [\"10.201.2.2\", \"fd00:201:2::2\"]\n",
        ),
    ]
    .into_iter()
    .enumerate()
    {
        s.push_str(&format!(
            "[[dataplane.dpdk.ports]]\nname = \"{name}\"\nvdev = \"net_af_packet{i},iface={name},qpairs={workers}\"\naddresses = [\"{a4}\", \"{a6}\"]\n{gateways}"
        ));
    }
    s
}
