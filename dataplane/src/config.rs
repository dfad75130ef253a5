//! The `[dataplane]` section of tollgate.toml: which backend, which cores,
//! where the control socket lives, idle detection, and per-backend settings.
//! Every option has a default that works on one host; [`DataplaneConfig::validate`]
//! names the key and what is wrong.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DataplaneConfig {
    /// `auto` (XDP on `xdp.interfaces`, or else on the devices holding the
    /// media addresses, when the kernel accepts it; else socket), `xdp`,
    /// `socket`, or `dpdk` (the ports of `[dataplane.dpdk]`; never chosen by
    /// `auto`).
    pub backend: BackendChoice,
    /// Cores for the packet workers; default: every core but 0 (core 0 on a
    /// one-core host).
    pub cores: Option<Vec<usize>>,
    /// Unix socket for `tollgate ctl` and the control plane.
    pub control_socket: PathBuf,
    /// Users (uids) besides root and the data plane's own user whose
    /// connections to the control socket are served; everyone else's are
    /// closed at once (the socket file is also mode 0660).
    pub control_uids: Vec<u32>,
    /// A flow with no packet for this long is reported idle.
    pub idle_timeout_secs: u64,
    pub xdp: XdpConfig,
    pub socket: SocketConfig,
    pub dpdk: DpdkConfig,
    /// The addresses of the node's media interfaces (`[media]`, or rtpengine's
    /// `--interface`). Not a key of this section: the node's config loader
    /// fills it in. `auto` without `xdp.interfaces` puts XDP on the devices
    /// holding them.
    #[serde(skip)]
    pub media_addresses: Vec<IpAddr>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    Auto,
    Xdp,
    Socket,
    /// DPDK on the ports of `[dataplane.dpdk]` (a build with the `dpdk` feature).
    Dpdk,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct XdpConfig {
    /// Interfaces the program is attached to; media arrives and leaves here.
    /// Empty (the default): with `backend = "auto"`, the devices holding the
    /// media addresses.
    pub interfaces: Vec<String>,
    /// `native` (driver hook) or `generic` (skb hook, slower, works everywhere).
    pub mode: XdpAttachMode,
    /// bpffs directory for pinned maps and links; mounted if it is not a bpffs.
    /// Under `ip netns exec` /sys is private to the process: use a bpffs
    /// mounted elsewhere beforehand for pins to outlive a restart.
    pub pin_dir: PathBuf,
    /// Turn on IP forwarding on the attached interfaces (the kernel's FIB
    /// lookup from XDP requires it).
    pub set_forwarding: bool,
    /// The AF_XDP workers that run the media pipeline for flows with stages.
    pub afxdp: AfXdpConfig,
}

/// `[dataplane.xdp.afxdp]`: one AF_XDP socket per (interface, rx queue),
/// on workers pinned to `dataplane.cores`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct AfXdpConfig {
    /// Start the workers (flows with stages are refused without them).
    pub enabled: bool,
    /// `auto`: zero-copy where the driver supports it, else copy mode
    /// (veth); `off`: copy mode always.
    pub zero_copy: ZeroCopyChoice,
    /// Busy polling on the sockets (SO_PREFER_BUSY_POLL): lower latency,
    /// the worker core spins in the driver's poll.
    pub busy_poll: bool,
    pub busy_poll_usecs: u32,
    pub busy_poll_budget: u32,
    /// Bytes per UMEM frame: 2048 or 4096.
    pub frame_size: u32,
    /// Frames per socket's UMEM (a power of two, 64-65536).
    pub frames: u32,
    /// Entries per ring (a power of two, 64 up to `frames`).
    pub ring_size: u32,
    /// Most frames a worker takes from one socket at a time (1-256).
    pub burst: u32,
    /// Microseconds an idle worker keeps polling before it sleeps, when
    /// packets come at least that close together (0-1000; 0: sleep at once).
    pub spin_us: u32,
    /// Software interrupt coalescing: a worker that just had work and finds
    /// no more sleeps this long before it looks again, rather than waiting
    /// to be woken by the next frame, so one wakeup and one transmit kick
    /// serve every frame that came meanwhile. Adds at most this much
    /// latency (0-1000 µs; 0: woken per frame).
    pub coalesce_us: u32,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopyChoice {
    Auto,
    Off,
}

impl Default for AfXdpConfig {
    fn default() -> Self {
        AfXdpConfig {
            enabled: true,
            zero_copy: ZeroCopyChoice::Auto,
            busy_poll: false,
            busy_poll_usecs: 20,
            busy_poll_budget: 64,
            frame_size: 2048,
            frames: 4096,
            ring_size: 2048,
            burst: 64,
            spin_us: 0,
            coalesce_us: 200,
        }
    }
}

impl AfXdpConfig {
    fn validate(&self, errs: &mut Vec<String>) {
        let k = "dataplane.xdp.afxdp";
        if self.frame_size != 2048 && self.frame_size != 4096 {
            errs.push(format!(
                "{k}.frame_size: {} must be 2048 or 4096",
                self.frame_size
            ));
        }
        if !(64..=65536).contains(&self.frames) || !self.frames.is_power_of_two() {
            errs.push(format!(
                "{k}.frames: {} must be a power of two from 64 to 65536",
                self.frames
            ));
        }
        if self.ring_size < 64 || self.ring_size > self.frames || !self.ring_size.is_power_of_two()
        {
            errs.push(format!(
                "{k}.ring_size: {} must be a power of two from 64 up to frames ({})",
                self.ring_size, self.frames
            ));
        }
        if !(1..=256).contains(&self.burst) {
            errs.push(format!("{k}.burst: {} is outside 1-256", self.burst));
        }
        if self.spin_us > 1000 {
            errs.push(format!("{k}.spin_us: {} is above 1000", self.spin_us));
        }
        if self.coalesce_us > 1000 {
            errs.push(format!(
                "{k}.coalesce_us: {} is above 1000",
                self.coalesce_us
            ));
        }
        if self.busy_poll && !(1..=1000).contains(&self.busy_poll_usecs) {
            errs.push(format!(
                "{k}.busy_poll_usecs: {} is outside 1-1000",
                self.busy_poll_usecs
            ));
        }
        if self.busy_poll && !(1..=1024).contains(&self.busy_poll_budget) {
            errs.push(format!(
                "{k}.busy_poll_budget: {} is outside 1-1024",
                self.busy_poll_budget
            ));
        }
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XdpAttachMode {
    Native,
    Generic,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct SocketConfig {
    /// Most completions a worker handles before it submits its sends.
    pub burst: u32,
    /// Receive buffers per worker (a power of two, 64-32768).
    pub buffers: u32,
    /// Size of each receive buffer in bytes (largest datagram plus 64).
    pub buffer_size: u32,
}

/// `[dataplane.dpdk]`: the EAL's options and the ports given to DPDK. DPDK
/// takes a port from the kernel, so each port lists the addresses the node
/// owns on it (it answers ARP and neighbour solicitations for them) and an
/// optional gateway per family for destinations off its prefixes.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct DpdkConfig {
    /// Run without hugepages (`--no-huge`), in ordinary memory: for tests and
    /// hosts with no hugepages reserved. Implies no files in /var/run/dpdk.
    pub no_huge: bool,
    /// Keep no shared files in hugetlbfs or /var/run/dpdk (`--in-memory`),
    /// so several DPDK processes can run side by side.
    pub in_memory: bool,
    /// Memory for the EAL in MiB (`-m`); 0: DPDK's default.
    pub memory_mb: u32,
    /// EAL lcore list (`-l`) for its main thread; default: the first worker core.
    pub lcores: Option<String>,
    /// Further EAL arguments, passed as given (`--log-level=debug`, `-a 0000:01:00.0`).
    pub eal_args: Vec<String>,
    /// Packets per receive burst (1-256).
    pub burst: u16,
    /// Receive and transmit descriptors per queue (a power of two, 64-4096).
    pub descriptors: u16,
    /// Mbufs in the pool (per port and worker).
    pub mbufs: u32,
    /// How long an idle worker sleeps at most between polls, in
    /// microseconds (it starts spinning again as soon as packets come).
    pub max_sleep_us: u32,
    pub ports: Vec<DpdkPort>,
}

/// One port given to DPDK. Its addresses belong to DPDK alone: a NIC bound
/// to vfio-pci has no kernel side, but a kernel interface used through
/// net_af_packet or net_af_xdp must not keep them too (its kernel would
/// answer ARP and neighbour solicitations beside DPDK). The port's receive
/// queue is polled by one worker (ports are dealt round robin); each worker
/// has a transmit queue on every port, so a vdev needs as many queues as
/// there are workers (net_af_packet: `qpairs=N`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct DpdkPort {
    /// A name for logs and for flows' `egress`.
    pub name: String,
    /// A virtual device to create (`--vdev`), e.g. `net_af_packet0,iface=eth1`;
    /// the port is then the device this creates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vdev: Option<String>,
    /// Or a device DPDK probes on its own: its PCI address or DPDK name
    /// (the port `rte_eth_dev_get_port_by_name` finds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The node's addresses on this port with their prefix, `10.0.1.1/24`.
    pub addresses: Vec<String>,
    /// Next hops for destinations outside the prefixes, at most one per family.
    #[serde(default)]
    pub gateways: Vec<IpAddr>,
}

impl Default for DpdkConfig {
    fn default() -> Self {
        DpdkConfig {
            no_huge: false,
            in_memory: false,
            memory_mb: 0,
            lcores: None,
            eal_args: Vec::new(),
            burst: 32,
            descriptors: 1024,
            mbufs: 8191,
            max_sleep_us: 1000,
            ports: Vec::new(),
        }
    }
}

/// Parses `a.b.c.d/n` or `x::y/n`.
pub fn parse_prefix(s: &str) -> Result<(IpAddr, u8), String> {
    let (a, n) = s
        .split_once('/')
        .ok_or_else(|| format!("{s:?} has no prefix length (`10.0.1.1/24`)"))?;
    let ip: IpAddr = a
        .parse()
        .map_err(|_| format!("{a:?} is not an IP address"))?;
    let max = if ip.is_ipv4() { 32 } else { 128 };
    match n.parse::<u8>() {
        Ok(n) if n <= max => Ok((ip, n)),
        _ => Err(format!("prefix length {n:?} is not 0-{max}")),
    }
}

impl DpdkConfig {
    /// Problems with `[dataplane.dpdk]`, each naming its key.
    pub fn validate(&self, errs: &mut Vec<String>) {
        let k = "dataplane.dpdk";
        if !(1..=256).contains(&self.burst) {
            errs.push(format!("{k}.burst: {} is outside 1-256", self.burst));
        }
        if !(64..=4096).contains(&self.descriptors) || !self.descriptors.is_power_of_two() {
            errs.push(format!(
                "{k}.descriptors: {} must be a power of two from 64 to 4096",
                self.descriptors
            ));
        }
        if self.mbufs < 1024 {
            errs.push(format!("{k}.mbufs: {} is below 1024", self.mbufs));
        }
        if self.ports.is_empty() {
            errs.push(format!(
                "{k}.ports: backend \"dpdk\" needs at least one port ([[dataplane.dpdk.ports]])"
            ));
        }
        let mut owned: Vec<IpAddr> = Vec::new();
        for (i, p) in self.ports.iter().enumerate() {
            let pk = format!("{k}.ports[{i}]");
            if p.name.is_empty() || self.ports[..i].iter().any(|q| q.name == p.name) {
                errs.push(format!("{pk}.name: {:?} is empty or used twice", p.name));
            }
            if p.vdev.is_some() == p.device.is_some() {
                errs.push(format!("{pk}: set exactly one of `vdev` and `device`"));
            }
            if p.addresses.is_empty() {
                errs.push(format!("{pk}.addresses: the port needs an address"));
            }
            for (j, a) in p.addresses.iter().enumerate() {
                match parse_prefix(a) {
                    Ok((ip, _)) if owned.contains(&ip) => {
                        errs.push(format!("{pk}.addresses[{j}]: {ip} is listed twice"))
                    }
                    Ok((ip, _)) => owned.push(ip),
                    Err(e) => errs.push(format!("{pk}.addresses[{j}]: {e}")),
                }
            }
            for fam in [true, false] {
                if p.gateways.iter().filter(|g| g.is_ipv4() == fam).count() > 1 {
                    errs.push(format!("{pk}.gateways: at most one gateway per family"));
                }
            }
        }
    }

    /// The EAL's command line (after the program name): memory options,
    /// lcores, one `--vdev` per virtual port and the extra arguments.
    pub fn eal_args(&self, first_core: usize) -> Vec<String> {
        let mut a = Vec::new();
        if self.no_huge {
            // DPDK 22.11 refuses --in-memory with --no-huge; --no-shconf
            // is what it would add (no shared files).
            a.extend(["--no-huge".to_string(), "--no-shconf".to_string()]);
        } else if self.in_memory {
            a.push("--in-memory".into());
        }
        if self.memory_mb > 0 {
            a.extend(["-m".to_string(), self.memory_mb.to_string()]);
        }
        let lcores = self
            .lcores
            .clone()
            .unwrap_or_else(|| first_core.to_string());
        a.extend(["-l".to_string(), lcores]);
        if self.ports.iter().all(|p| p.device.is_none()) {
            a.push("--no-pci".into());
        }
        a.push("--no-telemetry".into());
        for p in &self.ports {
            if let Some(v) = &p.vdev {
                a.push(format!("--vdev={v}"));
            }
        }
        a.extend(self.eal_args.iter().cloned());
        a
    }
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            backend: BackendChoice::Auto,
            cores: None,
            control_socket: PathBuf::from("/run/tollgate/dataplane.sock"),
            control_uids: Vec::new(),
            idle_timeout_secs: 60,
            xdp: XdpConfig::default(),
            socket: SocketConfig::default(),
            dpdk: DpdkConfig::default(),
            media_addresses: Vec::new(),
        }
    }
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            interfaces: Vec::new(),
            mode: XdpAttachMode::Native,
            pin_dir: PathBuf::from("/sys/fs/bpf/tollgate"),
            set_forwarding: true,
            afxdp: AfXdpConfig::default(),
        }
    }
}

impl Default for SocketConfig {
    fn default() -> Self {
        SocketConfig {
            burst: 64,
            buffers: 4096,
            buffer_size: 2048,
        }
    }
}

impl DataplaneConfig {
    /// Problems with this section, each naming its key; empty when valid.
    /// `host_cores` is the number of cores on this host.
    pub fn validate(&self, host_cores: usize) -> Vec<String> {
        let mut errs = Vec::new();
        if let Some(cores) = &self.cores {
            if cores.is_empty() {
                errs.push("dataplane.cores: the list is empty; omit it for the default".into());
            }
            for (i, c) in cores.iter().enumerate() {
                if *c >= host_cores {
                    errs.push(format!(
                        "dataplane.cores[{i}]: core {c} does not exist (this host has cores 0-{})",
                        host_cores.saturating_sub(1)
                    ));
                }
                if cores[..i].contains(c) {
                    errs.push(format!("dataplane.cores[{i}]: core {c} is listed twice"));
                }
            }
        }
        if self.idle_timeout_secs == 0 {
            errs.push("dataplane.idle_timeout_secs: must be at least 1".into());
        }
        if self.backend == BackendChoice::Xdp && self.xdp.interfaces.is_empty() {
            errs.push(
                "dataplane.backend = \"xdp\" needs dataplane.xdp.interfaces (the interfaces media uses)".into(),
            );
        }
        for (i, name) in self.xdp.interfaces.iter().enumerate() {
            if name.is_empty()
                || name.len() > 15
                || name.contains('/')
                || name.contains(char::is_whitespace)
            {
                errs.push(format!(
                    "dataplane.xdp.interfaces[{i}]: {name:?} is not a valid interface name (1-15 characters, no '/' or spaces)"
                ));
            }
        }
        if !self.xdp.pin_dir.is_absolute() {
            errs.push(format!(
                "dataplane.xdp.pin_dir: {:?} must be an absolute path",
                self.xdp.pin_dir
            ));
        }
        self.xdp.afxdp.validate(&mut errs);
        let s = &self.socket;
        if !(1..=1024).contains(&s.burst) {
            errs.push(format!(
                "dataplane.socket.burst: {} is outside 1-1024",
                s.burst
            ));
        }
        if !(64..=32768).contains(&s.buffers) || !s.buffers.is_power_of_two() {
            errs.push(format!(
                "dataplane.socket.buffers: {} must be a power of two from 64 to 32768",
                s.buffers
            ));
        }
        if !(256..=65536).contains(&s.buffer_size) {
            errs.push(format!(
                "dataplane.socket.buffer_size: {} is outside 256-65536 bytes",
                s.buffer_size
            ));
        }
        if self.backend == BackendChoice::Dpdk {
            self.dpdk.validate(&mut errs);
            // Flows are matched on media addresses: each must be a port's
            // (loopback, the default media interface, never can be; it is
            // left to fail per flow).
            let owned: Vec<IpAddr> = self
                .dpdk
                .ports
                .iter()
                .flat_map(|p| p.addresses.iter())
                .filter_map(|a| parse_prefix(a).ok().map(|(ip, _)| ip))
                .collect();
            for m in &self.media_addresses {
                if !m.is_unspecified() && !m.is_loopback() && !owned.contains(m) {
                    errs.push(format!(
                        "dataplane.dpdk.ports: media address {m} is on no DPDK port; \
                         add it to a port's `addresses`"
                    ));
                }
            }
        }
        errs
    }

    /// The cores packet workers run on.
    pub fn worker_cores(&self, host_cores: usize) -> Vec<usize> {
        match &self.cores {
            Some(c) => c.clone(),
            None if host_cores <= 1 => vec![0],
            None => (1..host_cores).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_spare_core_zero() {
        let c = DataplaneConfig::default();
        assert!(c.validate(2).is_empty());
        assert_eq!(c.worker_cores(2), vec![1]);
        assert_eq!(c.worker_cores(1), vec![0]);
        assert_eq!(c.worker_cores(4), vec![1, 2, 3]);
    }

    #[test]
    fn errors_name_keys() {
        let c = DataplaneConfig {
            backend: BackendChoice::Xdp,
            cores: Some(vec![1, 7, 1]),
            socket: SocketConfig {
                buffers: 100,
                ..Default::default()
            },
            ..Default::default()
        };
        let e = c.validate(2).join("\n");
        assert!(
            e.contains("dataplane.cores[1]: core 7 does not exist"),
            "{e}"
        );
        assert!(
            e.contains("dataplane.cores[2]: core 1 is listed twice"),
            "{e}"
        );
        assert!(e.contains("dataplane.xdp.interfaces"), "{e}");
        assert!(e.contains("dataplane.socket.buffers: 100"), "{e}");
    }

    #[test]
    fn afxdp_settings_are_checked() {
        let mut c = DataplaneConfig::default();
        c.xdp.afxdp.frame_size = 3000;
        c.xdp.afxdp.ring_size = 8192;
        c.xdp.afxdp.coalesce_us = 5000;
        let e = c.validate(2).join("\n");
        assert!(e.contains("dataplane.xdp.afxdp.coalesce_us: 5000"), "{e}");
        assert!(e.contains("dataplane.xdp.afxdp.frame_size: 3000"), "{e}");
        assert!(e.contains("dataplane.xdp.afxdp.ring_size: 8192"), "{e}");
        let parsed: DataplaneConfig =
            serde_json::from_str(r#"{"xdp": {"afxdp": {"zero_copy": "off", "busy_poll": true}}}"#)
                .unwrap();
        assert_eq!(parsed.xdp.afxdp.zero_copy, ZeroCopyChoice::Off);
        assert!(parsed.xdp.afxdp.busy_poll && parsed.validate(2).is_empty());
    }

    #[test]
    fn dpdk_section_parses_validates_and_builds_eal_args() {
        let text = r#"
            backend = "dpdk"
            [dpdk]
            no_huge = true
            in_memory = true
            memory_mb = 256
            [[dpdk.ports]]
            name = "ra"
            vdev = "net_af_packet0,iface=ra"
            addresses = ["10.201.1.1/24", "fd00:201:1::1/64"]
            gateways = ["10.201.1.254"]
        "#;
        let c: DataplaneConfig = toml::from_str(text).expect("parses");
        assert!(c.validate(2).is_empty(), "{:?}", c.validate(2));
        assert_eq!(
            c.dpdk.eal_args(1).join(" "),
            "--no-huge --no-shconf -m 256 -l 1 --no-pci --no-telemetry --vdev=net_af_packet0,iface=ra"
        );
        assert_eq!(
            parse_prefix("fd00::1/64"),
            Ok(("fd00::1".parse().unwrap(), 64))
        );

        let mut bad = c.clone();
        bad.dpdk.ports[0].addresses = vec!["10.0.0.1".into(), "10.0.0.2/33".into()];
        bad.dpdk.ports[0].device = Some("0000:01:00.0".into());
        bad.dpdk.ports[0].gateways.push("10.0.0.9".parse().unwrap());
        let e = bad.validate(2).join("\n");
        assert!(
            e.contains("ports[0].addresses[0]: \"10.0.0.1\" has no prefix"),
            "{e}"
        );
        assert!(
            e.contains("ports[0].addresses[1]: prefix length \"33\""),
            "{e}"
        );
        assert!(e.contains("exactly one of `vdev` and `device`"), "{e}");
        assert!(e.contains("at most one gateway per family"), "{e}");
        bad.dpdk.ports.clear();
        assert!(bad.validate(2).join("\n").contains("at least one port"));

        let mut media = c.clone();
        media.media_addresses = ["10.201.1.1", "192.0.2.7", "127.0.0.1"]
            .map(|a| a.parse().unwrap())
            .to_vec();
        let e = media.validate(2).join("\n");
        assert!(
            e.contains("media address 192.0.2.7 is on no DPDK port"),
            "{e}"
        );
        assert!(!e.contains("10.201.1.1") && !e.contains("127.0.0.1"), "{e}");
    }
}
