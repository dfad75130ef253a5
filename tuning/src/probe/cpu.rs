//! The data plane's cores: isolation on the kernel command line
//! (`isolcpus`, `nohz_full`, `rcu_nocbs`), frequency governor, idle-state
//! exit latencies, SMT siblings, core 0, and whether the cores are on the
//! media NICs' NUMA node.

use super::{finding, with, ProbeError};
use crate::host::{format_cpu_list, Host};
use crate::model::{Finding, Severity};
use crate::topology::Topology;

/// Idle states slower to leave than this (µs) delay the first packet of a burst.
const MAX_EXIT_LATENCY_US: i64 = 10;

/// Findings about `workers`, the data plane's cores; `nic_nodes` are the
/// NUMA nodes of the media NICs (empty when unknown); `planned` are the
/// plan's worker cores, which the commands suggest instead.
pub fn findings(
    host: &Host,
    topo: &Topology,
    workers: &[usize],
    nic_nodes: &[usize],
    planned: &[usize],
) -> Result<Vec<Finding>, ProbeError> {
    let list = format_cpu_list(workers);
    let use_plan = format!("[dataplane] cores = {planned:?}");
    let mut out: Vec<Finding> = [
        ("isolcpus", &topo.isolcpus, Severity::Warning, WHY_ISOLCPUS),
        ("nohz_full", &topo.nohz_full, Severity::Advice, WHY_NOHZ),
        ("rcu_nocbs", &topo.rcu_nocbs, Severity::Advice, WHY_RCU),
    ]
    .into_iter()
    .map(|(key, set, severity, why)| cmdline(key, set.as_deref(), workers, severity, why))
    .collect();
    out.push(governor(host, workers, &list)?);
    out.push(cstates(host, workers, &list)?);
    for mut f in [smt(topo, workers), numa(topo, workers, nic_nodes)] {
        if f.severity != Severity::Ok {
            f.command = Some(use_plan.clone());
        }
        out.push(f);
    }
    if workers.contains(&0) {
        let f = finding(
            "cpu.core0",
            Severity::Advice,
            "core 0 is a data-plane core",
            WHY_CORE0,
        );
        out.push(with(
            f,
            vec![format!("data-plane cores: {list}")],
            Some(use_plan),
            None,
        ));
    }
    Ok(out)
}

const WHY_ISOLCPUS: &str =
    "An isolated core runs only what is pinned to it: no other task preempts a worker in \
                            the middle of a burst.";
const WHY_NOHZ: &str =
    "nohz_full stops the scheduler tick on a core running one task, removing a periodic \
                        interruption of the worker.";
const WHY_RCU: &str =
    "rcu_nocbs moves RCU callbacks off the core, another source of jitter on a worker.";
const WHY_CORE0: &str =
    "Core 0 takes timers, housekeeping and interrupts that cannot move; a worker there is \
                         interrupted more than anywhere else.";

fn cmdline(
    key: &str,
    set: Option<&[usize]>,
    workers: &[usize],
    severity: Severity,
    why: &str,
) -> Finding {
    let id = format!("cpu.{key}");
    let have = set.map_or("not set".to_string(), format_cpu_list);
    let missing: Vec<usize> = workers
        .iter()
        .copied()
        .filter(|c| !set.is_some_and(|s| s.contains(c)))
        .collect();
    let evidence = vec![format!(
        "/proc/cmdline: {key} {have}; data-plane cores {}",
        format_cpu_list(workers)
    )];
    if missing.is_empty() {
        return with(
            finding(
                id,
                Severity::Ok,
                format!("{key} covers the data-plane cores"),
                why,
            ),
            evidence,
            None,
            None,
        );
    }
    let mut wanted = set.map(<[usize]>::to_vec).unwrap_or_default();
    wanted.extend(&missing);
    let value = if key == "isolcpus" {
        format!("managed_irq,domain,{}", format_cpu_list(&wanted))
    } else {
        format_cpu_list(&wanted)
    };
    let cmd = format!(
        "add {key}={value} to GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub (grub2-mkconfig on RHEL) and reboot"
    );
    let title = format!(
        "{key} does not cover data-plane cores {}",
        format_cpu_list(&missing)
    );
    let mut f = with(finding(id, severity, title, why), evidence, Some(cmd), None);
    f.needs_reboot = true;
    f
}

const WHY_GOVERNOR: &str =
    "A power-saving governor lowers the clock between bursts and ramps it up too late: \
                            the first packets of every 20 ms tick are processed slowly.";

fn governor(host: &Host, workers: &[usize], list: &str) -> Result<Finding, ProbeError> {
    let mut evidence = Vec::new();
    let mut slow = Vec::new();
    for &cpu in workers {
        let path = format!("/sys/devices/system/cpu/cpu{cpu}/cpufreq/scaling_governor");
        if let Some(g) = host.read(&path)? {
            if g != "performance" {
                slow.push(cpu);
            }
            evidence.push(format!("{path}: {g}"));
        }
    }
    if evidence.is_empty() {
        let f = finding(
            "cpu.governor",
            Severity::Ok,
            "no frequency scaling exposed (VM, or left to the firmware)",
            WHY_GOVERNOR,
        );
        return Ok(with(
            f,
            vec!["/sys/devices/system/cpu/cpuN/cpufreq: absent".into()],
            None,
            None,
        ));
    }
    if slow.is_empty() {
        return Ok(with(
            finding(
                "cpu.governor",
                Severity::Ok,
                "data-plane cores run the performance governor",
                WHY_GOVERNOR,
            ),
            evidence,
            None,
            None,
        ));
    }
    let title = format!(
        "data-plane cores {} are not on the performance governor",
        format_cpu_list(&slow)
    );
    let cmd = format!("cpupower -c {list} frequency-set -g performance");
    Ok(with(
        finding("cpu.governor", Severity::Warning, title, WHY_GOVERNOR),
        evidence,
        Some(cmd),
        None,
    ))
}

const WHY_CSTATES: &str =
    "A worker idle between bursts falls into deep C-states; waking from them takes tens \
                           to hundreds of microseconds, added to the first packet of each burst.";

fn cstates(host: &Host, workers: &[usize], list: &str) -> Result<Finding, ProbeError> {
    let mut evidence = Vec::new();
    let mut deep = Vec::new();
    for &cpu in workers {
        let dir = format!("/sys/devices/system/cpu/cpu{cpu}/cpuidle");
        for state in host.list(&dir)? {
            let at = |f: &str| format!("{dir}/{state}/{f}");
            let latency = host.read_i64(&at("latency"))?.unwrap_or(0);
            let disabled = host.read(&at("disable"))?.as_deref() == Some("1");
            if latency > MAX_EXIT_LATENCY_US && !disabled {
                let name = host.read(&at("name"))?.unwrap_or_else(|| state.clone());
                deep.push(cpu);
                evidence.push(format!(
                    "{}: {name} exit latency {latency} µs, enabled",
                    at("latency")
                ));
            }
        }
    }
    if let Some(max) = host.read("/sys/module/intel_idle/parameters/max_cstate")? {
        evidence.push(format!(
            "/sys/module/intel_idle/parameters/max_cstate: {max}"
        ));
    }
    deep.dedup();
    if deep.is_empty() {
        let title = format!(
            "no idle state slower than {MAX_EXIT_LATENCY_US} µs is enabled on the data-plane cores"
        );
        return Ok(with(
            finding("cpu.cstates", Severity::Ok, title, WHY_CSTATES),
            evidence,
            None,
            None,
        ));
    }
    let title = format!(
        "deep C-states enabled on data-plane cores {}",
        format_cpu_list(&deep)
    );
    let cmd = format!("cpupower -c {list} idle-set -D {MAX_EXIT_LATENCY_US}");
    Ok(with(
        finding("cpu.cstates", Severity::Advice, title, WHY_CSTATES),
        evidence,
        Some(cmd),
        None,
    ))
}

const WHY_SMT: &str =
    "Two workers on the threads of one physical core share its execution units and caches: \
                       each gets roughly half the packet rate of a core of its own.";

fn smt(topo: &Topology, workers: &[usize]) -> Finding {
    let mut pairs = Vec::new();
    for (i, &a) in workers.iter().enumerate() {
        for &b in &workers[i + 1..] {
            if topo.are_siblings(a, b) {
                pairs.push(format!("{a}+{b}"));
            }
        }
    }
    let evidence = workers
        .iter()
        .filter_map(|&c| topo.cpu(c))
        .map(|c| {
            format!(
                "/sys/devices/system/cpu/cpu{}/topology/thread_siblings_list: {}",
                c.id,
                format_cpu_list(&c.siblings)
            )
        })
        .collect();
    if pairs.is_empty() {
        return with(
            finding(
                "cpu.smt",
                Severity::Ok,
                "no two data-plane cores are SMT siblings",
                WHY_SMT,
            ),
            evidence,
            None,
            None,
        );
    }
    let title = format!(
        "data-plane cores share physical cores: {}",
        pairs.join(", ")
    );
    with(
        finding("cpu.smt", Severity::Warning, title, WHY_SMT),
        evidence,
        None,
        None,
    )
}

const WHY_NUMA: &str =
    "Packets are DMAed into the NIC's node: a worker on another node reads every packet \
                        across the interconnect.";

fn numa(topo: &Topology, workers: &[usize], nic_nodes: &[usize]) -> Finding {
    if nic_nodes.is_empty() || topo.nodes().len() <= 1 {
        let f = finding(
            "cpu.numa",
            Severity::Ok,
            "one NUMA node, or none reported: nothing to match",
            WHY_NUMA,
        );
        return with(
            f,
            vec![format!(
                "NUMA nodes with CPUs: {:?}; media NIC nodes: {nic_nodes:?}",
                topo.nodes()
            )],
            None,
            None,
        );
    }
    let far: Vec<usize> = workers
        .iter()
        .copied()
        .filter(|&c| {
            !topo
                .cpu(c)
                .and_then(|c| c.node)
                .is_some_and(|n| nic_nodes.contains(&n))
        })
        .collect();
    let evidence = workers
        .iter()
        .map(|&c| {
            format!(
                "cpu{c}: node {}",
                topo.cpu(c)
                    .and_then(|c| c.node)
                    .map_or("unknown".into(), |n| n.to_string())
            )
        })
        .chain(std::iter::once(format!(
            "media NICs on node(s) {nic_nodes:?}"
        )))
        .collect();
    if far.is_empty() {
        return with(
            finding(
                "cpu.numa",
                Severity::Ok,
                "data-plane cores are on the media NICs' node",
                WHY_NUMA,
            ),
            evidence,
            None,
            None,
        );
    }
    let title = format!(
        "data-plane cores {} are not on the media NICs' node",
        format_cpu_list(&far)
    );
    with(
        finding("cpu.numa", Severity::Warning, title, WHY_NUMA),
        evidence,
        None,
        None,
    )
}
