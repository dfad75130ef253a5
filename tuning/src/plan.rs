//! The recommended core plan: data-plane workers on the media NICs' NUMA
//! node, isolated cores first, never two threads of one physical core nor
//! core 0's; each queue's IRQ on the core of the worker serving it; every
//! other core for the control plane and databases. Also written as the
//! config snippet to paste.

use crate::host::format_cpu_list;
use crate::model::CorePlan;
use crate::probe::nic::Nic;
use crate::topology::Topology;

/// How many rx queues the device runs.
fn queues(nic: &Nic) -> usize {
    let from_channels = nic
        .channels
        .map(|c| c.combined.max(c.rx) as usize)
        .unwrap_or(0);
    let from_irqs = nic.irqs.iter().map(|q| q.queue + 1).max().unwrap_or(0);
    from_channels.max(nic.rx_queues).max(from_irqs).max(1)
}

pub fn recommend(topo: &Topology, nics: &[Nic]) -> CorePlan {
    let node = nics.iter().find_map(|n| n.numa_node);
    let wanted = nics.iter().map(queues).max().unwrap_or(1);
    let mut reasons = Vec::new();
    let housekeeping: Vec<usize> = topo.cpu(0).map_or(vec![0], |c| c.siblings.clone());
    let mut candidates: Vec<usize> = topo
        .cpus
        .iter()
        .filter(|c| node.is_none() || c.node.is_none() || c.node == node)
        .map(|c| c.id)
        .filter(|c| !housekeeping.contains(c) && *c != 0)
        .collect();
    // Isolated cores first, each group in id order.
    candidates.sort_by_key(|&c| (!topo.is_isolated(c), c));
    let mut workers: Vec<usize> = Vec::new();
    for c in candidates {
        if workers.len() == wanted {
            break;
        }
        if !workers.iter().any(|&w| topo.are_siblings(w, c)) {
            workers.push(c);
        }
    }
    match node {
        Some(n) => reasons.push(format!(
            "the media NICs are on NUMA node {n}: workers only there"
        )),
        None => reasons.push("no NUMA information: any core may take a worker".into()),
    }
    reasons.push(format!(
        "{wanted} rx queue(s) on the busiest media NIC: up to one worker each"
    ));
    reasons.push(format!(
        "core 0 and its SMT siblings ({}) stay for housekeeping",
        format_cpu_list(&housekeeping)
    ));
    if workers.is_empty() {
        workers.push(0);
        reasons.push("no other core: the one worker shares core 0".into());
    }
    let isolated = workers.iter().filter(|&&c| topo.is_isolated(c)).count();
    reasons.push(format!(
        "{isolated} of {} worker core(s) isolated on the kernel command line",
        workers.len()
    ));
    if workers.len() < wanted {
        reasons.push(format!(
            "{} worker(s) for {wanted} queues (no more cores without sharing a physical core): queues share workers",
            workers.len()
        ));
    }
    let other_cores: Vec<usize> = topo
        .cpus
        .iter()
        .map(|c| c.id)
        .filter(|c| !workers.contains(c))
        .collect();
    let irqs: Vec<(u32, usize)> = nics
        .iter()
        .flat_map(|n| n.irqs.iter())
        .map(|q| (q.irq, workers[q.queue % workers.len()]))
        .collect();
    let config_snippet = snippet(&workers, &other_cores, nics, &irqs);
    CorePlan {
        worker_cores: workers,
        other_cores,
        irqs,
        config_snippet,
        reasons,
    }
}

fn snippet(workers: &[usize], others: &[usize], nics: &[Nic], irqs: &[(u32, usize)]) -> String {
    let list = |v: &[usize]| {
        v.iter()
            .map(|c| c.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let names: Vec<String> = nics.iter().map(|n| format!("{:?}", n.name)).collect();
    let mut s = format!("[dataplane]\ncores = [{}]\n", list(workers));
    if !names.is_empty() {
        s.push_str(&format!(
            "\n[dataplane.xdp]\ninterfaces = [{}]\n",
            names.join(", ")
        ));
    }
    if !irqs.is_empty() {
        let pairs: Vec<String> = irqs
            .iter()
            .map(|(irq, core)| format!("{irq}->{core}"))
            .collect();
        s.push_str(&format!(
            "\n# queue IRQs (tollgate tune apply sets them): {}\n",
            pairs.join(" ")
        ));
    }
    if !others.is_empty() {
        s.push_str(&format!(
            "# control plane and databases: CPUAffinity={} in their systemd units\n",
            format_cpu_list(others)
        ));
    }
    s
}
