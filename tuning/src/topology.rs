//! The host's CPUs as the probes and the core plan see them: which CPUs
//! are online, their NUMA node, their SMT siblings, and which the kernel
//! command line isolates (`isolcpus`, `nohz_full`, `rcu_nocbs`).

use crate::host::{parse_cpu_list, Host, HostError};

/// One logical CPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cpu {
    pub id: usize,
    /// None on hosts without NUMA information (most VMs).
    pub node: Option<usize>,
    /// Logical CPUs on the same physical core, itself included.
    pub siblings: Vec<usize>,
}

/// The CPUs, and the kernel command line's isolation parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub cpus: Vec<Cpu>,
    /// `/proc/cmdline`, as read.
    pub cmdline: String,
    pub isolcpus: Option<Vec<usize>>,
    pub nohz_full: Option<Vec<usize>>,
    pub rcu_nocbs: Option<Vec<usize>>,
}

const CPU: &str = "/sys/devices/system/cpu";
const NODE: &str = "/sys/devices/system/node";

impl Topology {
    pub fn read(host: &Host) -> Result<Topology, HostError> {
        let online = match host.read_cpu_list(&format!("{CPU}/online"))? {
            Some(cpus) => cpus,
            None => cpu_dirs(host)?,
        };
        let mut node_of = Vec::new();
        for node in host.list(NODE)?.iter().filter_map(|n| numbered(n, "node")) {
            for cpu in host
                .read_cpu_list(&format!("{NODE}/node{node}/cpulist"))?
                .unwrap_or_default()
            {
                node_of.push((cpu, node));
            }
        }
        let mut cpus = Vec::new();
        for id in online {
            let siblings = host
                .read_cpu_list(&format!("{CPU}/cpu{id}/topology/thread_siblings_list"))?
                .unwrap_or_else(|| vec![id]);
            let node = node_of.iter().find(|(c, _)| *c == id).map(|(_, n)| *n);
            cpus.push(Cpu { id, node, siblings });
        }
        let cmdline = host.read("/proc/cmdline")?.unwrap_or_default();
        let path = host.path("/proc/cmdline");
        let param = |key: &str| {
            cmdline_cpus(&cmdline, key).map_err(|what| HostError::Invalid {
                path: path.clone(),
                what,
            })
        };
        Ok(Topology {
            isolcpus: param("isolcpus")?,
            nohz_full: param("nohz_full")?,
            rcu_nocbs: param("rcu_nocbs")?,
            cpus,
            cmdline,
        })
    }

    pub fn cpu(&self, id: usize) -> Option<&Cpu> {
        self.cpus.iter().find(|c| c.id == id)
    }

    /// The NUMA nodes that have CPUs, in order.
    pub fn nodes(&self) -> Vec<usize> {
        let mut nodes: Vec<usize> = self.cpus.iter().filter_map(|c| c.node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    /// Whether `a` and `b` are different threads of one physical core.
    pub fn are_siblings(&self, a: usize, b: usize) -> bool {
        a != b && self.cpu(a).is_some_and(|c| c.siblings.contains(&b))
    }

    pub fn is_isolated(&self, cpu: usize) -> bool {
        self.isolcpus.as_ref().is_some_and(|s| s.contains(&cpu))
    }
}

fn cpu_dirs(host: &Host) -> Result<Vec<usize>, HostError> {
    Ok(host
        .list(CPU)?
        .iter()
        .filter_map(|n| numbered(n, "cpu"))
        .collect())
}

/// `cpu12` -> 12 for prefix `cpu`.
fn numbered(name: &str, prefix: &str) -> Option<usize> {
    name.strip_prefix(prefix)?.parse().ok()
}

/// The CPUs of a command-line parameter such as
/// `isolcpus=managed_irq,domain,2-7` (flags before the list are skipped).
fn cmdline_cpus(cmdline: &str, key: &str) -> Result<Option<Vec<usize>>, String> {
    let Some(value) = cmdline
        .split_whitespace()
        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
    else {
        return Ok(None);
    };
    let list: Vec<&str> = value
        .split(',')
        .filter(|p| !p.starts_with(|c: char| c.is_ascii_alphabetic()))
        .collect();
    parse_cpu_list(&list.join(","))
        .map(Some)
        .map_err(|e| format!("{key}={value}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn isolcpus_flags_are_skipped_and_absent_parameters_are_none() {
        let line = "ro quiet isolcpus=managed_irq,domain,1-3,9 nohz_full=1-3";
        assert_eq!(
            cmdline_cpus(line, "isolcpus").unwrap(),
            Some(vec![1, 2, 3, 9])
        );
        assert_eq!(
            cmdline_cpus(line, "nohz_full").unwrap(),
            Some(vec![1, 2, 3])
        );
        assert_eq!(cmdline_cpus(line, "rcu_nocbs").unwrap(), None);
        assert!(cmdline_cpus("isolcpus=1-x", "isolcpus")
            .unwrap_err()
            .contains("isolcpus=1-x"));
    }
}
