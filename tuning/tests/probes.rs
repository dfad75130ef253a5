//! Every probe on the two fixture trees: `metal` (ixgbe eth1 with 8
//! queues on node 0 of two NUMA nodes, isolcpus, hugepages on node 0,
//! irqbalance running) and `vm` (virtio_net eth0 with one queue pair, no
//! NUMA information). See tests/fixtures/README.md.

use std::path::Path;
use tollgate_tuning::ethtool::FixtureEthtool;
use tollgate_tuning::host::Host;
use tollgate_tuning::model::{Change, CorePlan, Finding, Report, Setting, Severity};
use tollgate_tuning::probe::nic::{self, Nic};
use tollgate_tuning::probe::{cpu, memory, services, sysctl, NodeSpec};
use tollgate_tuning::topology::Topology;
use tollgate_tuning::{plan, report};

fn fixture(name: &str) -> (Host, FixtureEthtool) {
    let host = Host::at(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures")
            .join(name),
    );
    let ethtool = FixtureEthtool::load(&host).unwrap();
    (host, ethtool)
}

fn spec(dev: &str) -> NodeSpec {
    NodeSpec {
        interfaces: vec![dev.into()],
        worker_cores: None,
        media_ports: (30000, 40000),
    }
}

/// The fixture's NIC, topology and plan.
fn setup(name: &str, dev: &str) -> (Host, Nic, Topology, CorePlan) {
    let (host, ethtool) = fixture(name);
    let nic = nic::inspect(&host, &ethtool, dev).unwrap();
    let topo = Topology::read(&host).unwrap();
    let plan = plan::recommend(&topo, std::slice::from_ref(&nic));
    (host, nic, topo, plan)
}

fn get<'a>(findings: &'a [Finding], id: &str) -> &'a Finding {
    findings.iter().find(|f| f.id == id).unwrap_or_else(|| {
        let ids: Vec<&str> = findings.iter().map(|f| f.id.as_str()).collect();
        panic!("no finding {id}; have {ids:?}")
    })
}

fn sysctl_change(name: &str, value: &str) -> Option<Change> {
    Some(Change {
        setting: Setting::Sysctl { name: name.into() },
        value: value.into(),
    })
}

#[test]
fn topology_of_both_fixtures() {
    let (_, _, metal, _) = setup("metal", "eth1");
    assert_eq!(metal.cpus.len(), 16);
    assert_eq!(metal.nodes(), vec![0, 1]);
    assert_eq!(metal.cpu(12).unwrap().node, Some(1));
    assert!(metal.are_siblings(3, 11) && !metal.are_siblings(3, 4));
    assert_eq!(metal.isolcpus, Some(vec![1, 2, 3, 9, 10, 11]));
    assert_eq!(metal.rcu_nocbs, None);
    let (_, _, vm, _) = setup("vm", "eth0");
    assert_eq!(
        vm.cpus.iter().map(|c| (c.id, c.node)).collect::<Vec<_>>(),
        vec![(0, None), (1, None)]
    );
    assert!(vm.nodes().is_empty() && vm.isolcpus.is_none());
}

#[test]
fn nic_inspect_metal_reads_driver_queues_irqs_and_numa() {
    let (host, nic, _, _) = setup("metal", "eth1");
    assert_eq!(nic.driver_name(), Some("ixgbe"));
    assert_eq!(nic.sysfs_driver.as_deref(), Some("ixgbe"));
    assert_eq!(
        nic.driver.as_ref().unwrap().firmware,
        "0x800003df, 1.2074.0"
    );
    assert_eq!(
        (nic.numa_node, nic.speed_mbps, nic.rx_queues, nic.tx_queues),
        (Some(0), Some(10000), 8, 8)
    );
    // IRQ 44 is the link interrupt ("eth1"), not a queue.
    let irqs: Vec<(u32, usize)> = nic.irqs.iter().map(|q| (q.irq, q.queue)).collect();
    assert_eq!(irqs, (0..8).map(|q| (45 + q as u32, q)).collect::<Vec<_>>());
    assert_eq!(nic.irqs[0].affinity, Some(vec![1]));
    assert_eq!(nic.irqs[1].affinity, Some((0..16).collect()));
    assert_eq!(
        nic::interfaces(&host, &NodeSpec::default()).unwrap(),
        vec!["eth1"]
    );
}

#[test]
fn nic_findings_metal() {
    let (_, nic, _, plan) = setup("metal", "eth1");
    let f = nic::findings(&nic, &plan);
    let lro = get(&f, "nic.feature.rx-lro.eth1");
    assert_eq!(lro.severity, Severity::Warning);
    assert_eq!(lro.command.as_deref(), Some("ethtool -K eth1 lro off"));
    let want = Setting::Feature {
        device: "eth1".into(),
        feature: "rx-lro".into(),
    };
    assert_eq!(
        lro.change,
        Some(Change {
            setting: want,
            value: "off".into()
        })
    );
    let hash = get(&f, "nic.rss_hash.eth1");
    assert_eq!(
        (hash.severity, hash.change.is_none()),
        (Severity::Warning, true)
    );
    assert_eq!(
        hash.command.as_deref(),
        Some("ethtool -N eth1 rx-flow-hash udp4 sdfn")
    );
    assert_eq!(get(&f, "nic.rss_table.eth1").severity, Severity::Ok);
    let ring = get(&f, "nic.ring.rx.eth1");
    assert_eq!(ring.change.as_ref().unwrap().value, "4096");
    assert_eq!(get(&f, "nic.xdp.eth1").severity, Severity::Ok);
    assert_eq!(get(&f, "nic.channels.eth1").severity, Severity::Ok);
    let napi = get(&f, "nic.threaded_napi.eth1");
    assert_eq!(
        napi.change,
        Some(Change {
            setting: Setting::ThreadedNapi {
                device: "eth1".into()
            },
            value: "1".into()
        })
    );
    // Queue 0's IRQ is already on its worker (core 1); queue 1's goes to core 2.
    assert!(!f.iter().any(|f| f.id == "nic.irq.eth1.45"));
    let irq = get(&f, "nic.irq.eth1.46");
    assert_eq!(
        irq.change,
        Some(Change {
            setting: Setting::IrqAffinity { irq: 46 },
            value: "2".into()
        })
    );
    assert!(
        irq.evidence[0].contains("/proc/irq/46/smp_affinity_list: 0-15"),
        "{:?}",
        irq.evidence
    );
    // Nothing asks for what the fixture already has.
    assert!(!f
        .iter()
        .any(|f| f.id.contains("rx-checksum") || f.id.contains("rx-gro-hw")));
}

#[test]
fn nic_inspect_and_findings_vm() {
    let (host, nic, _, plan) = setup("vm", "eth0");
    assert_eq!(nic.driver_name(), Some("virtio_net"));
    assert_eq!(
        nic::interfaces(&host, &NodeSpec::default()).unwrap(),
        vec!["eth0"]
    );
    // Found through the device link (virtio0) and its driver link.
    assert_eq!(nic.sysfs_driver.as_deref(), Some("virtio_net"));
    assert_eq!(
        (nic.numa_node, nic.speed_mbps, nic.rx_queues),
        (None, None, 1)
    );
    // virtio0-config and virtio1's disk queue are not eth0's queues.
    let irqs: Vec<(u32, usize)> = nic.irqs.iter().map(|q| (q.irq, q.queue)).collect();
    assert_eq!(irqs, vec![(25, 0), (26, 0)]);
    let f = nic::findings(&nic, &plan);
    let ch = get(&f, "nic.channels.eth0");
    assert_eq!(
        (ch.severity, ch.change.is_none()),
        (Severity::Warning, true)
    );
    let gro_hw = get(&f, "nic.feature.rx-gro-hw.eth0");
    assert_eq!(gro_hw.change.as_ref().unwrap().value, "off");
    assert_eq!(get(&f, "nic.xdp.eth0").severity, Severity::Ok);
    assert!(get(&f, "nic.numa.eth0").title.contains("NUMA unknown"));
    // One queue: RSS does not apply. Rings are at their maximum.
    assert!(!f.iter().any(|f| f.id.starts_with("nic.rss")));
    assert_eq!(get(&f, "nic.ring.rx.eth0").severity, Severity::Ok);
    assert_eq!(
        get(&f, "nic.irq.eth0.25").change.as_ref().unwrap().value,
        "1"
    );
    assert!(!f.iter().any(|f| f.id == "nic.irq.eth0.26"));
}

#[test]
fn plan_metal_keeps_workers_on_the_nic_node_off_core0_and_apart() {
    let (_, _, _, plan) = setup("metal", "eth1");
    assert_eq!(plan.worker_cores, vec![1, 2, 3]);
    assert_eq!(
        plan.other_cores,
        [0].into_iter().chain(4..16).collect::<Vec<_>>()
    );
    let cores: Vec<usize> = plan.irqs.iter().map(|(_, c)| *c).collect();
    assert_eq!(cores, vec![1, 2, 3, 1, 2, 3, 1, 2]);
    assert!(
        plan.config_snippet
            .contains("[dataplane]\ncores = [1, 2, 3]\n"),
        "{}",
        plan.config_snippet
    );
    assert!(plan.config_snippet.contains("interfaces = [\"eth1\"]"));
}

#[test]
fn plan_vm_uses_the_one_core_besides_core0() {
    let (_, _, _, plan) = setup("vm", "eth0");
    assert_eq!(
        (plan.worker_cores.clone(), plan.other_cores.clone()),
        (vec![1], vec![0])
    );
    assert_eq!(plan.irqs, vec![(25, 1), (26, 1)]);
}

#[test]
fn cpu_findings_metal_for_the_plan_and_for_bad_cores() {
    let (host, _, topo, plan) = setup("metal", "eth1");
    let f = cpu::findings(&host, &topo, &plan.worker_cores, &[0], &plan.worker_cores).unwrap();
    for id in ["cpu.isolcpus", "cpu.nohz_full", "cpu.smt", "cpu.numa"] {
        assert_eq!(get(&f, id).severity, Severity::Ok, "{id}");
    }
    let rcu = get(&f, "cpu.rcu_nocbs");
    assert!(rcu.needs_reboot && rcu.change.is_none());
    assert!(rcu.command.as_deref().unwrap().contains("rcu_nocbs=1-3"));
    assert_eq!(
        get(&f, "cpu.governor").command.as_deref(),
        Some("cpupower -c 1-3 frequency-set -g performance")
    );
    assert!(get(&f, "cpu.cstates").evidence[0].contains("C6 exit latency 133"));
    assert!(!f.iter().any(|f| f.id == "cpu.core0"));

    let bad = cpu::findings(&host, &topo, &[0, 4, 12], &[0], &plan.worker_cores).unwrap();
    assert_eq!(
        get(&bad, "cpu.smt").title,
        "data-plane cores share physical cores: 4+12"
    );
    assert_eq!(
        get(&bad, "cpu.numa").title,
        "data-plane cores 4,12 are not on the media NICs' node"
    );
    assert_eq!(get(&bad, "cpu.isolcpus").severity, Severity::Warning);
    assert!(get(&bad, "cpu.isolcpus").needs_reboot);
    assert_eq!(get(&bad, "cpu.core0").severity, Severity::Advice);
    for id in ["cpu.smt", "cpu.numa", "cpu.core0"] {
        assert_eq!(
            get(&bad, id).command.as_deref(),
            Some("[dataplane] cores = [1, 2, 3]"),
            "{id}"
        );
    }
}

#[test]
fn cpu_findings_vm() {
    let (host, _, topo, _) = setup("vm", "eth0");
    let f = cpu::findings(&host, &topo, &[1], &[], &[1]).unwrap();
    let iso = get(&f, "cpu.isolcpus");
    assert_eq!((iso.severity, iso.needs_reboot), (Severity::Warning, true));
    assert!(iso
        .command
        .as_deref()
        .unwrap()
        .contains("isolcpus=managed_irq,domain,1"));
    for id in ["cpu.governor", "cpu.cstates", "cpu.smt", "cpu.numa"] {
        assert_eq!(get(&f, id).severity, Severity::Ok, "{id}");
    }
}

#[test]
fn memory_findings_both_fixtures() {
    let (metal, _) = fixture("metal");
    let pools = memory::pools(&metal).unwrap();
    let node0: u64 = pools
        .iter()
        .filter(|p| p.node == Some(0))
        .map(|p| p.total)
        .sum();
    assert_eq!(node0, 1024);
    let f = memory::findings(&metal, &[0]).unwrap();
    assert_eq!(get(&f, "memory.hugepages.node0").severity, Severity::Ok);
    assert_eq!(get(&f, "memory.hugepages.node1").severity, Severity::Ok);
    // A NIC on node 1 needs pages there: a per-node write, not a sysctl.
    let f = memory::findings(&metal, &[1]).unwrap();
    let n1 = get(&f, "memory.hugepages.node1");
    assert_eq!((n1.severity, n1.change.is_none()), (Severity::Advice, true));
    assert!(n1
        .command
        .as_deref()
        .unwrap()
        .contains("node1/hugepages/hugepages-2048kB/nr_hugepages"));

    let (vm, _) = fixture("vm");
    let f = memory::findings(&vm, &[]).unwrap();
    assert_eq!(f.len(), 1);
    assert_eq!(f[0].change, sysctl_change("vm.nr_hugepages", "1024"));
}

#[test]
fn sysctl_findings_both_fixtures() {
    let (metal, _) = fixture("metal");
    let f = sysctl::findings(&metal, &spec("eth1"), &["eth1".into()]).unwrap();
    assert_eq!(
        get(&f, "sysctl.net.core.rmem_max").change,
        sysctl_change("net.core.rmem_max", "16777216")
    );
    assert_eq!(
        get(&f, "sysctl.net.core.busy_poll").severity,
        Severity::Advice
    );
    assert_eq!(
        get(&f, "sysctl.net.core.bpf_jit_enable").severity,
        Severity::Ok
    );
    let ports = "net.ipv4.ip_local_reserved_ports";
    assert_eq!(
        get(&f, &format!("sysctl.{ports}")).change,
        sysctl_change(ports, "30000-40000")
    );
    let rp = "net.ipv4.conf.eth1.rp_filter";
    assert_eq!(
        get(&f, &format!("sysctl.{rp}")).change,
        sysctl_change(rp, "2")
    );
    let fwd = "net.ipv4.conf.eth1.forwarding";
    assert_eq!(
        get(&f, &format!("sysctl.{fwd}")).severity,
        Severity::Warning
    );
    assert_eq!(
        get(&f, &format!("sysctl.{fwd}")).change,
        sysctl_change(fwd, "1")
    );

    let (vm, _) = fixture("vm");
    let f = sysctl::findings(&vm, &spec("eth0"), &["eth0".into()]).unwrap();
    let jit = get(&f, "sysctl.net.core.bpf_jit_enable");
    assert_eq!(
        (jit.severity, jit.change.clone()),
        (
            Severity::Critical,
            sysctl_change("net.core.bpf_jit_enable", "1")
        )
    );
    for id in [
        "sysctl.net.ipv4.ip_local_reserved_ports",
        "sysctl.net.ipv4.conf.eth0.rp_filter",
        "sysctl.net.ipv4.conf.eth0.forwarding",
    ] {
        assert_eq!(get(&f, id).severity, Severity::Ok, "{id}");
    }
    // A media range reaching past the reserved one is not covered.
    let wide = NodeSpec {
        media_ports: (30000, 40001),
        ..spec("eth0")
    };
    let f = sysctl::findings(&vm, &wide, &[]).unwrap();
    let r = get(&f, "sysctl.net.ipv4.ip_local_reserved_ports");
    assert_eq!(
        r.change,
        sysctl_change(
            "net.ipv4.ip_local_reserved_ports",
            "30000-40000,30000-40001"
        )
    );
}

#[test]
fn services_findings_both_fixtures() {
    let (metal, _) = fixture("metal");
    let f = services::findings(&metal).unwrap();
    assert_eq!(get(&f, "services.irqbalance").severity, Severity::Warning);
    assert_eq!(
        get(&f, "services.irqbalance").evidence,
        vec!["/proc/812/comm: irqbalance"]
    );
    let (vm, _) = fixture("vm");
    assert_eq!(
        get(&services::findings(&vm).unwrap(), "services.irqbalance").severity,
        Severity::Ok
    );
}

#[test]
fn report_is_worst_first_per_area_and_round_trips_as_json() {
    for (name, dev) in [("metal", "eth1"), ("vm", "eth0")] {
        let (host, ethtool) = fixture(name);
        let r = report::build(&host, &ethtool, &spec(dev)).unwrap();
        let areas: Vec<&str> = r
            .findings
            .iter()
            .map(|f| f.id.split('.').next().unwrap())
            .collect();
        let mut seen: Vec<&str> = areas.clone();
        seen.dedup();
        assert_eq!(
            seen,
            vec!["nic", "cpu", "memory", "sysctl", "services"],
            "{name}: areas grouped in order"
        );
        for pair in r.findings.windows(2) {
            let same_area = pair[0].id.split('.').next() == pair[1].id.split('.').next();
            assert!(
                !same_area || pair[0].severity >= pair[1].severity,
                "{name}: {} before {}",
                pair[0].id,
                pair[1].id
            );
        }
        let back: Report = serde_json::from_str(&report::json(&r).unwrap()).unwrap();
        assert_eq!(back, r, "{name}");
    }
}

#[test]
fn a_missing_interface_is_an_error_naming_it() {
    let (host, ethtool) = fixture("vm");
    let e = report::build(&host, &ethtool, &spec("eth9"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("sys/class/net/eth9") && e.contains("no such network interface"),
        "{e}"
    );
}
