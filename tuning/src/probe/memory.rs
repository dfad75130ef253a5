//! Hugepages per NUMA node, for DPDK's memory and AF_XDP's UMEM.

use super::{finding, with, ProbeError};
use crate::host::Host;
use crate::model::{Change, Finding, Setting, Severity};

/// Hugepages of one size on one node (None: the host has no NUMA nodes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hugepages {
    pub node: Option<usize>,
    /// The sysfs directory name, `hugepages-2048kB`.
    pub size: String,
    pub total: u64,
    pub free: u64,
}

const NODES: &str = "/sys/devices/system/node";
const GLOBAL: &str = "/sys/kernel/mm/hugepages";
/// 2 MiB pages a node should have for the data plane's buffers (2 GiB).
const WANTED_2M_PAGES: u64 = 1024;

/// Every hugepage pool, per node when the host has nodes.
pub fn pools(host: &Host) -> Result<Vec<Hugepages>, ProbeError> {
    let nodes: Vec<usize> = host
        .list(NODES)?
        .iter()
        .filter_map(|n| n.strip_prefix("node")?.parse().ok())
        .collect();
    let dirs: Vec<(Option<usize>, String)> = if nodes.is_empty() {
        vec![(None, GLOBAL.to_string())]
    } else {
        nodes
            .iter()
            .map(|n| (Some(*n), format!("{NODES}/node{n}/hugepages")))
            .collect()
    };
    let mut pools = Vec::new();
    for (node, dir) in dirs {
        for size in host.list(&dir)? {
            let read = |f: &str| host.read_i64(&format!("{dir}/{size}/{f}"));
            let total = read("nr_hugepages")?.unwrap_or(0) as u64;
            let free = read("free_hugepages")?.unwrap_or(0) as u64;
            pools.push(Hugepages {
                node,
                size,
                total,
                free,
            });
        }
    }
    Ok(pools)
}

const WHY: &str = "DPDK needs hugepages for its packet buffers and AF_XDP's UMEM is faster on them (fewer \
                   TLB misses per packet); they must be on the NIC's node or every packet crosses sockets.";

/// One finding per node (or one for the host without nodes); the media
/// NICs' nodes (`nic_nodes`) must have pages.
pub fn findings(host: &Host, nic_nodes: &[usize]) -> Result<Vec<Finding>, ProbeError> {
    let pools = pools(host)?;
    let mut nodes: Vec<Option<usize>> = pools.iter().map(|p| p.node).collect();
    nodes.dedup();
    if nodes.is_empty() {
        nodes.push(None);
    }
    Ok(nodes
        .into_iter()
        .map(|node| node_finding(&pools, node, nic_nodes))
        .collect())
}

fn node_finding(pools: &[Hugepages], node: Option<usize>, nic_nodes: &[usize]) -> Finding {
    let (id, name, dir) = match node {
        Some(n) => (
            format!("memory.hugepages.node{n}"),
            format!("node {n}"),
            format!("{NODES}/node{n}/hugepages"),
        ),
        None => (
            "memory.hugepages".to_string(),
            "the host".to_string(),
            GLOBAL.to_string(),
        ),
    };
    let mine: Vec<&Hugepages> = pools.iter().filter(|p| p.node == node).collect();
    let evidence: Vec<String> = mine
        .iter()
        .map(|p| format!("{dir}/{}: {} pages, {} free", p.size, p.total, p.free))
        .collect();
    let total: u64 = mine.iter().map(|p| p.total).sum();
    let needed = node.is_none_or(|n| nic_nodes.is_empty() || nic_nodes.contains(&n));
    if total > 0 || !needed {
        let what = if total > 0 {
            "has hugepages"
        } else {
            "has no hugepages (no media NIC there)"
        };
        return with(
            finding(id, Severity::Ok, format!("{name} {what}"), WHY),
            evidence,
            None,
            None,
        );
    }
    let title = if nic_nodes.is_empty() {
        format!("{name} has no hugepages (the media NICs' node is unknown)")
    } else {
        format!("{name} has no hugepages and a media NIC uses it")
    };
    let f = finding(id, Severity::Advice, title, WHY);
    match node {
        Some(_) => {
            let cmd = format!("echo {WANTED_2M_PAGES} > {dir}/hugepages-2048kB/nr_hugepages");
            with(f, evidence, Some(cmd), None)
        }
        None => {
            let change = Change {
                setting: Setting::Sysctl {
                    name: "vm.nr_hugepages".into(),
                },
                value: WANTED_2M_PAGES.to_string(),
            };
            with(
                f,
                evidence,
                Some(format!("sysctl -w vm.nr_hugepages={WANTED_2M_PAGES}")),
                Some(change),
            )
        }
    }
}
