//! The media NICs: driver and firmware, XDP support, queues and channels,
//! rings, offloads, RSS hashing and indirection, each queue's IRQ and its
//! affinity, NUMA node, link speed and threaded NAPI.

use super::{finding, with, NodeSpec, ProbeError};
use crate::ethtool::{Channels, DriverInfo, Ethtool, Feature, Rings, UdpHash};
use crate::host::{format_cpu_list, Host, HostError};
use crate::model::{Change, CorePlan, Finding, Setting, Severity};

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
        return Err(HostError::Parse {
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
    out.extend(channels(nic, plan.worker_cores.len()));
    out.extend(rings(nic));
    out.extend(offloads(nic));
    out.extend(rss(nic));
    out.extend(irqs(nic, plan));
    out.extend(threaded_napi(nic));
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

const WHY_CHANNELS: &str =
    "Each rx queue is served by one core: with fewer queues than data-plane workers, \
                            some workers get no packets and the others carry every call.";

fn channels(nic: &Nic, workers: usize) -> Option<Finding> {
    let dev = &nic.name;
    let ch = nic.channels?;
    let (current, max, combined) = if ch.combined_max > 0 {
        (ch.combined, ch.combined_max, true)
    } else {
        (ch.rx, ch.rx_max, false)
    };
    let want = workers.max(1).min(max as usize) as u32;
    let mut evidence = vec![format!(
        "ETHTOOL_GCHANNELS {dev}: combined {}/{}, rx {}/{}, tx {}/{} (current/max)",
        ch.combined, ch.combined_max, ch.rx, ch.rx_max, ch.tx, ch.tx_max
    )];
    evidence.push(format!(
        "/sys/class/net/{dev}/queues: {} rx, {} tx",
        nic.rx_queues, nic.tx_queues
    ));
    let id = format!("nic.channels.{dev}");
    if max <= 1 {
        let f = finding(
            id,
            Severity::Warning,
            format!("{dev}: a single queue; every packet lands on one core"),
            WHY_CHANNELS,
        );
        let cmd = "give the device more queues (VM: virtio-net with mq=on and vectors=2*N+2; or another NIC)";
        return Some(with(f, evidence, Some(cmd.to_string()), None));
    }
    if current >= want {
        evidence.push(format!("{workers} data-plane worker(s) planned"));
        let f = finding(
            id,
            Severity::Ok,
            format!("{dev}: {current} queues for {workers} worker(s)"),
            WHY_CHANNELS,
        );
        return Some(with(f, evidence, None, None));
    }
    let (cmd, change) = if combined {
        (
            format!("ethtool -L {dev} combined {want}"),
            Some(Change {
                setting: Setting::Channels {
                    device: dev.clone(),
                },
                value: want.to_string(),
            }),
        )
    } else {
        (format!("ethtool -L {dev} rx {want} tx {want}"), None)
    };
    let title = format!("{dev}: {current} queues for {workers} data-plane workers");
    Some(with(
        finding(id, Severity::Advice, title, WHY_CHANNELS),
        evidence,
        Some(cmd),
        change,
    ))
}

const WHY_RINGS: &str =
    "Calls send on the same 20 ms ticks, so media arrives in bursts; a short ring \
                         overflows in a burst and drops packets the core would have had time for.";

fn rings(nic: &Nic) -> Vec<Finding> {
    let dev = &nic.name;
    let Some(r) = nic.rings else {
        return Vec::new();
    };
    [("rx", r.rx, r.rx_max), ("tx", r.tx, r.tx_max)]
        .into_iter()
        .map(|(ring, cur, max)| {
            let id = format!("nic.ring.{ring}.{dev}");
            let evidence = vec![format!(
                "ETHTOOL_GRINGPARAM {dev}: {ring} {cur} of at most {max}"
            )];
            if cur >= max {
                let f = finding(
                    id,
                    Severity::Ok,
                    format!("{dev}: {ring} ring at its maximum ({max})"),
                    WHY_RINGS,
                );
                return with(f, evidence, None, None);
            }
            let change = Change {
                setting: Setting::Ring {
                    device: dev.clone(),
                    ring: ring.to_string(),
                },
                value: max.to_string(),
            };
            let title = format!("{dev}: {ring} ring {cur} of {max}");
            with(
                finding(id, Severity::Advice, title, WHY_RINGS),
                evidence,
                Some(format!("ethtool -G {dev} {ring} {max}")),
                Some(change),
            )
        })
        .collect()
}

/// An offload that should be in one state for media: the kernel's
/// feature name, the ethtool CLI's, the state wanted, and why.
struct Offload {
    feature: &'static str,
    cli: &'static str,
    want: bool,
    severity: Severity,
    why: &'static str,
    /// What to do when the driver holds it in the wrong state; None: a
    /// device that cannot change it (no checksum offload) is not reported.
    fixed: Option<&'static str>,
}

const OFFLOADS: &[Offload] = &[
    Offload {
        feature: "rx-lro",
        cli: "lro",
        want: false,
        severity: Severity::Warning,
        why: "LRO merges packets in the NIC: a relay must forward them as sent, and native XDP will not attach \
              while it is on.",
        fixed: Some("the driver holds it on: turn LRO/RSC off in the NIC's firmware or driver module options"),
    },
    Offload {
        feature: "rx-gro-hw",
        cli: "rx-gro-hw",
        want: false,
        severity: Severity::Warning,
        why: "Hardware GRO merges packets before XDP sees them; drivers (bnxt_en, mlx5_core, qede, virtio_net) \
              refuse XDP while it is on.",
        fixed: Some("the driver holds it on: on virtio_net give the guest control of its offloads (QEMU: -device virtio-net-pci,ctrl_guest_offloads=on) or turn them off on the host (guest_tso4=off,guest_tso6=off,guest_ecn=off,guest_ufo=off)"),
    },
    Offload {
        feature: "rx-udp-gro-forwarding",
        cli: "rx-udp-gro-forwarding",
        want: false,
        severity: Severity::Advice,
        why: "Merging forwarded UDP into super-packets delays RTP until a batch is full and adds jitter.",
        fixed: None,
    },
    Offload {
        feature: "rx-checksum",
        cli: "rx",
        want: true,
        severity: Severity::Advice,
        why: "Without receive checksum offload the kernel sums every UDP packet on the socket path in software.",
        fixed: None,
    },
    Offload {
        feature: "tx-checksum-ip-generic",
        cli: "tx",
        want: true,
        severity: Severity::Advice,
        why: "Without transmit checksum offload every relayed packet is summed in software on the socket path.",
        fixed: None,
    },
];

const WHY_OFFLOADS: &str =
    "GRO, GSO and TSO do not merge or split RTP (small UDP datagrams); they help the \
                            node's TCP (SIP over TCP/TLS, databases) and are left as they are.";

fn offloads(nic: &Nic) -> Vec<Finding> {
    let dev = &nic.name;
    if nic.features.is_none() {
        let f = finding(
            format!("nic.offloads.{dev}"),
            Severity::Advice,
            format!("{dev}: offloads unknown"),
            WHY_OFFLOADS,
        );
        return vec![with(
            f,
            vec![format!("ETHTOOL_GFEATURES {dev}: not supported")],
            None,
            None,
        )];
    }
    let mut out: Vec<Finding> = OFFLOADS.iter().filter_map(|o| offload(nic, o)).collect();
    let state = |name: &str| {
        nic.feature(name)
            .map_or("unknown", |f| if f.active { "on" } else { "off" })
    };
    let summary = [
        "rx-gro",
        "rx-lro",
        "tx-generic-segmentation",
        "tx-tcp-segmentation",
        "rx-checksum",
        "tx-checksum-ip-generic",
    ]
    .iter()
    .map(|n| format!("{n} {}", state(n)))
    .collect::<Vec<_>>()
    .join(", ");
    let f = finding(
        format!("nic.offloads.{dev}"),
        Severity::Ok,
        format!(
            "{dev}: GRO {}, GSO {}, TSO {}",
            state("rx-gro"),
            state("tx-generic-segmentation"),
            state("tx-tcp-segmentation")
        ),
        WHY_OFFLOADS,
    );
    out.push(with(
        f,
        vec![format!("ETHTOOL_GFEATURES {dev}: {summary}")],
        Some(format!("ethtool -k {dev}")),
        None,
    ));
    out
}

fn offload(nic: &Nic, o: &Offload) -> Option<Finding> {
    let dev = &nic.name;
    let f = nic.feature(o.feature)?;
    if f.active == o.want || (!f.changeable && o.fixed.is_none()) {
        return None;
    }
    let word = |b: bool| if b { "on" } else { "off" };
    let evidence = vec![format!(
        "ETHTOOL_GFEATURES {dev}: {} {}{}",
        o.feature,
        word(f.active),
        if f.changeable { "" } else { " [fixed]" }
    )];
    let change = f.changeable.then(|| Change {
        setting: Setting::Feature {
            device: dev.clone(),
            feature: o.feature.to_string(),
        },
        value: word(o.want).to_string(),
    });
    let command = match o.fixed {
        Some(hint) if !f.changeable => hint.to_string(),
        _ => format!("ethtool -K {dev} {} {}", o.cli, word(o.want)),
    };
    let title = format!(
        "{dev}: {} is {}, should be {}",
        o.feature,
        word(f.active),
        word(o.want)
    );
    Some(with(
        finding(
            format!("nic.feature.{}.{dev}", o.feature),
            o.severity,
            title,
            o.why,
        ),
        evidence,
        Some(command),
        change,
    ))
}

const WHY_RSS_HASH: &str = "RTP between two SBCs or media servers shares the addresses and differs only in \
                            ports: hashed on addresses alone, all those calls land on one queue and one core.";
const WHY_RSS_TABLE: &str =
    "The indirection table decides which queue each hash bucket goes to; queues left out \
                             of it receive nothing and their workers sit idle.";

fn rss(nic: &Nic) -> Vec<Finding> {
    let dev = &nic.name;
    let queues = nic
        .channels
        .map_or(nic.rx_queues as u32, |c| c.combined.max(c.rx));
    if queues <= 1 {
        return Vec::new();
    }
    let hash = match nic.udp4_hash {
        None => with(
            finding(
                format!("nic.rss_hash.{dev}"),
                Severity::Advice,
                format!("{dev}: UDP RSS hash fields unknown"),
                WHY_RSS_HASH,
            ),
            vec![format!("ETHTOOL_GRXFH udp4 {dev}: not supported")],
            Some(format!("ethtool -n {dev} rx-flow-hash udp4")),
            None,
        ),
        Some(h) => {
            let fields: Vec<&str> = [
                (h.ip_src, "src ip"),
                (h.ip_dst, "dst ip"),
                (h.port_src, "src port"),
                (h.port_dst, "dst port"),
            ]
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, n)| *n)
            .collect();
            let evidence = vec![format!("ETHTOOL_GRXFH udp4 {dev}: {}", fields.join(", "))];
            if h.four_tuple() {
                with(
                    finding(
                        format!("nic.rss_hash.{dev}"),
                        Severity::Ok,
                        format!("{dev}: UDP hashed on the 4-tuple"),
                        WHY_RSS_HASH,
                    ),
                    evidence,
                    None,
                    None,
                )
            } else {
                let title = format!(
                    "{dev}: UDP hashed on {} only, not the ports",
                    fields.join(" and ")
                );
                with(
                    finding(
                        format!("nic.rss_hash.{dev}"),
                        Severity::Warning,
                        title,
                        WHY_RSS_HASH,
                    ),
                    evidence,
                    Some(format!("ethtool -N {dev} rx-flow-hash udp4 sdfn")),
                    None,
                )
            }
        }
    };
    vec![hash, rss_table(nic, queues)]
}

fn rss_table(nic: &Nic, queues: u32) -> Finding {
    let dev = &nic.name;
    let id = format!("nic.rss_table.{dev}");
    let Some(table) = &nic.rss_indirection else {
        let f = finding(
            id,
            Severity::Advice,
            format!("{dev}: RSS indirection table unknown"),
            WHY_RSS_TABLE,
        );
        return with(
            f,
            vec![format!("ETHTOOL_GRXFHINDIR {dev}: not supported")],
            Some(format!("ethtool -x {dev}")),
            None,
        );
    };
    let mut used: Vec<u32> = table.clone();
    used.sort_unstable();
    used.dedup();
    let evidence = vec![format!(
        "ETHTOOL_GRXFHINDIR {dev}: {} entries over queues {:?}",
        table.len(),
        used
    )];
    if used.len() as u32 >= queues {
        let f = finding(
            id,
            Severity::Ok,
            format!("{dev}: RSS spreads over all {queues} queues"),
            WHY_RSS_TABLE,
        );
        return with(f, evidence, None, None);
    }
    let title = format!("{dev}: RSS uses {} of {queues} queues", used.len());
    with(
        finding(id, Severity::Warning, title, WHY_RSS_TABLE),
        evidence,
        Some(format!("ethtool -X {dev} equal {queues}")),
        None,
    )
}

const WHY_IRQ: &str = "A queue's interrupt and its NAPI poll should run on the worker core that serves the \
                       queue: elsewhere they steal another core's time and the packets cross caches.";

fn irqs(nic: &Nic, plan: &CorePlan) -> Vec<Finding> {
    let dev = &nic.name;
    if nic.irqs.is_empty() {
        let f = finding(
            format!("nic.irq.{dev}"),
            Severity::Advice,
            format!("{dev}: no queue IRQs found"),
            WHY_IRQ,
        );
        let evidence = vec![format!(
            "/proc/interrupts: no line names {dev}, its device or its bus address"
        )];
        return vec![with(f, evidence, None, None)];
    }
    let mut out = Vec::new();
    let mut fine = Vec::new();
    for q in &nic.irqs {
        let Some(&(_, core)) = plan.irqs.iter().find(|(irq, _)| *irq == q.irq) else {
            continue;
        };
        let now = q
            .affinity
            .as_deref()
            .map_or("unknown".to_string(), format_cpu_list);
        let line = format!(
            "/proc/irq/{}/smp_affinity_list: {now} ({}, queue {})",
            q.irq, q.name, q.queue
        );
        if q.affinity.as_deref() == Some(&[core]) {
            fine.push(line);
            continue;
        }
        let change = Change {
            setting: Setting::IrqAffinity { irq: q.irq },
            value: core.to_string(),
        };
        let title = format!(
            "{dev}: queue {} IRQ {} on CPUs {now}, plan puts it on {core}",
            q.queue, q.irq
        );
        let cmd = format!("echo {core} > /proc/irq/{}/smp_affinity_list", q.irq);
        out.push(with(
            finding(
                format!("nic.irq.{dev}.{}", q.irq),
                Severity::Warning,
                title,
                WHY_IRQ,
            ),
            vec![line],
            Some(cmd),
            Some(change),
        ));
    }
    if out.is_empty() {
        let f = finding(
            format!("nic.irq.{dev}"),
            Severity::Ok,
            format!("{dev}: every queue IRQ on its worker's core"),
            WHY_IRQ,
        );
        out.push(with(f, fine, None, None));
    }
    out
}

const WHY_NAPI: &str = "With threaded NAPI each queue's poll is a kernel thread (napi/DEV-N) that can be pinned \
                        next to its worker; as a softirq it runs on whatever core took the interrupt and can \
                        fall back to ksoftirqd under load, adding latency.";

fn threaded_napi(nic: &Nic) -> Option<Finding> {
    let dev = &nic.name;
    let value = nic.threaded.as_deref()?;
    let id = format!("nic.threaded_napi.{dev}");
    let evidence = vec![format!("/sys/class/net/{dev}/threaded: {value}")];
    if value == "1" {
        return Some(with(
            finding(
                id,
                Severity::Ok,
                format!("{dev}: threaded NAPI on"),
                WHY_NAPI,
            ),
            evidence,
            None,
            None,
        ));
    }
    let change = Change {
        setting: Setting::ThreadedNapi {
            device: dev.clone(),
        },
        value: "1".into(),
    };
    let cmd = format!("echo 1 > /sys/class/net/{dev}/threaded");
    Some(with(
        finding(
            id,
            Severity::Advice,
            format!("{dev}: threaded NAPI off"),
            WHY_NAPI,
        ),
        evidence,
        Some(cmd),
        Some(change),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nic_with(features: &[(&str, bool, bool)]) -> Nic {
        let features = features
            .iter()
            .map(|&(name, active, changeable)| Feature {
                name: name.into(),
                active,
                changeable,
            })
            .collect();
        Nic {
            name: "eth9".into(),
            driver: None,
            sysfs_driver: Some("virtio_net".into()),
            numa_node: None,
            speed_mbps: None,
            rx_queues: 1,
            tx_queues: 1,
            channels: None,
            rings: None,
            features: Some(features),
            udp4_hash: None,
            rss_indirection: None,
            irqs: Vec::new(),
            threaded: None,
        }
    }

    #[test]
    fn a_fixed_offload_gets_a_hint_not_a_change_and_a_missing_one_is_not_reported() {
        let nic = nic_with(&[
            ("rx-gro-hw", true, false),
            ("tx-checksum-ip-generic", false, false),
        ]);
        let f = offloads(&nic);
        let gro = f
            .iter()
            .find(|f| f.id == "nic.feature.rx-gro-hw.eth9")
            .unwrap();
        assert!(gro.change.is_none());
        assert!(
            gro.command
                .as_deref()
                .unwrap()
                .contains("ctrl_guest_offloads=on"),
            "{gro:?}"
        );
        assert!(!f.iter().any(|f| f.id.contains("tx-checksum")), "{f:?}");
        let changeable = offloads(&nic_with(&[("rx-gro-hw", true, true)]));
        assert_eq!(
            changeable[0].command.as_deref(),
            Some("ethtool -K eth9 rx-gro-hw off")
        );
    }

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
