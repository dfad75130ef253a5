//! A NIC's queues: channels against the planned workers, ring sizes, RSS
//! hashing and indirection, each queue's IRQ affinity, threaded NAPI.

use super::Nic;
use crate::host::format_cpu_list;
use crate::model::{Change, CorePlan, Finding, Setting, Severity};
use crate::probe::{finding, with};

const WHY_CHANNELS: &str =
    "Each rx queue is served by one core: with fewer queues than data-plane workers, \
                            some workers get no packets and the others carry every call.";

pub(super) fn channels(nic: &Nic, workers: usize) -> Option<Finding> {
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

pub(super) fn rings(nic: &Nic) -> Vec<Finding> {
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

const WHY_RSS_HASH: &str = "RTP between two SBCs or media servers shares the addresses and differs only in \
                            ports: hashed on addresses alone, all those calls land on one queue and one core.";
const WHY_RSS_TABLE: &str =
    "The indirection table decides which queue each hash bucket goes to; queues left out \
                             of it receive nothing and their workers sit idle.";

pub(super) fn rss(nic: &Nic) -> Vec<Finding> {
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

pub(super) fn irqs(nic: &Nic, plan: &CorePlan) -> Vec<Finding> {
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

pub(super) fn threaded_napi(nic: &Nic) -> Option<Finding> {
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
