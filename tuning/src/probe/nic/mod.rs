//! The media NICs: driver and firmware, XDP support, queues and channels,
//! rings, offloads, RSS hashing and indirection, each queue's IRQ and its
//! affinity, NUMA node, link speed and threaded NAPI. This module reads
//! the device and reports driver, XDP, NUMA and link; `queues` and
//! `offloads` report the rest.

mod offloads;
mod queues;

use super::{finding, with, NodeSpec, ProbeError};
use crate::ethtool::{Channels, DriverInfo, Ethtool, Feature, Rings, UdpHash};
use crate::host::{Host, HostError};
use crate::model::{CorePlan, Finding, Severity};

/// Drivers with a native XDP hook (the rest get generic XDP, in the skb
/// path after allocation, several times slower).
pub const NATIVE_XDP_DRIVERS: &[&str] = &[
    "atlantic",
    "bnxt_en",
    "cpsw",
    "dpaa2-eth",
    "ena",
    "enetc",
    "fec",
    "gve",
    "hv_netvsc",
    "i40e",
    "ice",
    "idpf",
    "igb",
    "igc",
    "ixgbe",
    "ixgbevf",
    "mlx4_en",
    "mlx5_core",
    "mvneta",
    "mvpp2",
    "nfp",
    "nicvf",
    "qede",
    "sfc",
    "stmmac",
    "tun",
    "veth",
    "virtio_net",
];

/// One queue's interrupt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueIrq {
    pub irq: u32,
    /// The action name in /proc/interrupts (`eth1-TxRx-3`).
    pub name: String,
    pub queue: usize,
    /// /proc/irq/N/smp_affinity_list; None when unreadable.
    pub affinity: Option<Vec<usize>>,
}

/// What was read about one device.
#[derive(Debug, Clone, PartialEq)]
pub struct Nic {
    pub name: String,
    pub driver: Option<DriverInfo>,
    /// The driver the device is bound to in sysfs, when ethtool does not say.
    pub sysfs_driver: Option<String>,
    pub numa_node: Option<usize>,
    pub speed_mbps: Option<i64>,
    pub rx_queues: usize,
    pub tx_queues: usize,
    pub channels: Option<Channels>,
    pub rings: Option<Rings>,
    pub features: Option<Vec<Feature>>,
    pub udp4_hash: Option<UdpHash>,
    pub rss_indirection: Option<Vec<u32>>,
    pub irqs: Vec<QueueIrq>,
    /// `/sys/class/net/DEV/threaded` ("0" or "1").
    pub threaded: Option<String>,
}

impl Nic {
    pub fn driver_name(&self) -> Option<&str> {
        self.driver
            .as_ref()
            .map(|d| d.driver.as_str())
            .or(self.sysfs_driver.as_deref())
    }

    fn feature(&self, name: &str) -> Option<&Feature> {
        self.features.as_ref()?.iter().find(|f| f.name == name)
    }
}

/// The devices to inspect: the spec's, or every device backed by a NIC
/// (one with a `device` link: not lo, bridges, veths or tunnels).
pub fn interfaces(host: &Host, spec: &NodeSpec) -> Result<Vec<String>, HostError> {
    if !spec.interfaces.is_empty() {
        return Ok(spec.interfaces.clone());
    }
    Ok(host
        .list("/sys/class/net")?
        .into_iter()
        .filter(|n| host.exists(&format!("/sys/class/net/{n}/device")))
        .collect())
}

/// Reads one device.
pub fn inspect(host: &Host, ethtool: &dyn Ethtool, dev: &str) -> Result<Nic, ProbeError> {
    let sys = format!("/sys/class/net/{dev}");
    if !host.exists(&sys) {
        let what = "no such network interface".to_string();
        return Err(HostError::Invalid {
            path: host.path(&sys),
            what,
        }
        .into());
    }
    let queues = host.list(&format!("{sys}/queues"))?;
    let driver = ethtool.driver_info(dev)?;
    let device_link = host.link_name(&format!("{sys}/device"))?;
    let bus = driver
        .as_ref()
        .map(|d| d.bus_info.clone())
        .unwrap_or_default();
    let mut irqs = Vec::new();
    for (irq, name) in interrupts(host)? {
        if let Some(queue) = queue_of(&name, dev, device_link.as_deref(), &bus) {
            let affinity = host.read_cpu_list(&format!("/proc/irq/{irq}/smp_affinity_list"))?;
            irqs.push(QueueIrq {
                irq,
                name,
                queue,
                affinity,
            });
        }
    }
    Ok(Nic {
        name: dev.to_string(),
        sysfs_driver: host.link_name(&format!("{sys}/device/driver"))?,
        driver,
        numa_node: host
            .read_i64(&format!("{sys}/device/numa_node"))?
            .map(|n| n as usize),
        speed_mbps: host.read_i64(&format!("{sys}/speed"))?,
        rx_queues: queues.iter().filter(|q| q.starts_with("rx-")).count(),
        tx_queues: queues.iter().filter(|q| q.starts_with("tx-")).count(),
        channels: ethtool.channels(dev)?,
        rings: ethtool.rings(dev)?,
        features: ethtool.features(dev)?,
        udp4_hash: ethtool.udp4_hash(dev)?,
        rss_indirection: ethtool.rss_indirection(dev)?,
        irqs,
        threaded: host.read(&format!("{sys}/threaded"))?,
    })
}

/// The numbered lines of /proc/interrupts: IRQ and action name.
pub fn interrupts(host: &Host) -> Result<Vec<(u32, String)>, HostError> {
    let text = host.read("/proc/interrupts")?.unwrap_or_default();
    Ok(text
        .lines()
        .filter_map(|line| {
            let irq = line.trim_start().split_once(':')?.0.parse().ok()?;
            Some((irq, line.split_whitespace().last()?.to_string()))
        })
        .collect())
}

/// The queue an IRQ serves, when its action name says it belongs to `dev`:
/// `eth1-TxRx-3` (ixgbe, i40e), `virtio0-input.3` (virtio, by the
/// device's sysfs name), `mlx5_comp3@pci:0000:3b:00.0` (by bus address).
fn queue_of(name: &str, dev: &str, device_link: Option<&str>, bus: &str) -> Option<usize> {
    let (base, at) = name.split_once('@').unwrap_or((name, ""));
    let ours = base.split('-').any(|t| t == dev)
        || device_link.is_some_and(|d| base.starts_with(&format!("{d}-")))
        || (!bus.is_empty() && at.ends_with(bus));
    let control = ["config", "misc", "async", "ctrl"]
        .iter()
        .any(|w| base.contains(w));
    if !ours || control || base == dev {
        return None;
    }
    let digits = base.len() - base.trim_end_matches(|c: char| c.is_ascii_digit()).len();
    base[base.len() - digits..].parse().ok()
}

/// Every finding about one device; IRQs are checked against the plan.
pub fn findings(nic: &Nic, plan: &CorePlan) -> Vec<Finding> {
    let mut out = vec![driver(nic), xdp(nic), numa_and_link(nic)];
    out.extend(queues::channels(nic, plan.worker_cores.len()));
    out.extend(queues::rings(nic));
    out.extend(offloads::findings(nic));
    out.extend(queues::rss(nic));
    out.extend(queues::irqs(nic, plan));
    out.extend(queues::threaded_napi(nic));
    out
}

const WHY_DRIVER: &str =
    "XDP support, queue counts and known bugs depend on the driver and firmware version; \
                          keep them in the report of every media node.";

fn driver(nic: &Nic) -> Finding {
    let dev = &nic.name;
    let f = finding(
        format!("nic.driver.{dev}"),
        Severity::Ok,
        format!("{dev}: driver {}", nic.driver_name().unwrap_or("unknown")),
        WHY_DRIVER,
    );
    let evidence = match &nic.driver {
        Some(d) => vec![format!(
            "ETHTOOL_GDRVINFO {dev}: driver {}, version {}, firmware {}, bus {}",
            d.driver,
            or_unknown(&d.version),
            or_unknown(&d.firmware),
            or_unknown(&d.bus_info)
        )],
        None => vec![format!("ETHTOOL_GDRVINFO {dev}: not supported")],
    };
    with(f, evidence, Some(format!("ethtool -i {dev}")), None)
}

fn or_unknown(s: &str) -> &str {
    if s.is_empty() || s == "N/A" {
        "unknown"
    } else {
        s
    }
}

const WHY_XDP: &str =
    "Native XDP forwards RTP in the driver before any socket buffer is allocated; generic \
                       XDP runs after allocation and costs several times the CPU per packet.";

fn xdp(nic: &Nic) -> Finding {
    let dev = &nic.name;
    let driver = nic.driver_name().unwrap_or("unknown");
    let native = NATIVE_XDP_DRIVERS.contains(&driver);
    let (severity, title) = if native {
        (Severity::Ok, format!("{dev}: native XDP ({driver})"))
    } else {
        (
            Severity::Warning,
            format!("{dev}: generic XDP only ({driver} has no native XDP hook)"),
        )
    };
    let evidence = vec![format!(
        "driver {driver} {} the native XDP drivers",
        if native { "is among" } else { "is not among" }
    )];
    let command = (!native).then(|| {
        "[dataplane.xdp] mode = \"generic\", or a NIC whose driver has native XDP".to_string()
    });
    with(
        finding(format!("nic.xdp.{dev}"), severity, title, WHY_XDP),
        evidence,
        command,
        None,
    )
}

const WHY_NUMA: &str = "Packets are DMAed into the NIC's NUMA node; a worker on the other node pays a \
                        cross-socket access per packet. A slow link caps the calls the node can carry.";

fn numa_and_link(nic: &Nic) -> Finding {
    let dev = &nic.name;
    let node = nic
        .numa_node
        .map_or("unknown (no NUMA information)".to_string(), |n| {
            format!("node {n}")
        });
    let speed = nic
        .speed_mbps
        .map_or("unknown".to_string(), |s| format!("{s} Mb/s"));
    let slow = nic.speed_mbps.is_some_and(|s| s < 1000);
    let severity = if slow { Severity::Advice } else { Severity::Ok };
    let evidence = vec![
        format!("/sys/class/net/{dev}/device/numa_node: {node}"),
        format!("/sys/class/net/{dev}/speed: {speed}"),
    ];
    let title = format!("{dev}: NUMA {node}, link {speed}");
    with(
        finding(format!("nic.numa.{dev}"), severity, title, WHY_NUMA),
        evidence,
        None,
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::queue_of;

    #[test]
    fn irq_names_map_to_queues_of_their_device_only() {
        assert_eq!(queue_of("eth1-TxRx-3", "eth1", None, ""), Some(3));
        assert_eq!(queue_of("eth10-TxRx-3", "eth1", None, ""), None);
        assert_eq!(queue_of("eth1", "eth1", None, ""), None);
        assert_eq!(
            queue_of("virtio0-input.2", "eth0", Some("virtio0"), ""),
            Some(2)
        );
        assert_eq!(
            queue_of("virtio0-config", "eth0", Some("virtio0"), ""),
            None
        );
        assert_eq!(
            queue_of("mlx5_comp5@pci:0000:3b:00.0", "ens1", None, "0000:3b:00.0"),
            Some(5)
        );
        assert_eq!(
            queue_of("mlx5_async0@pci:0000:3b:00.0", "ens1", None, "0000:3b:00.0"),
            None
        );
    }
}
