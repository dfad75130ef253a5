//! What a probe finds and what tuning may change: the shared vocabulary of
//! the report (`probe`, `report`, `plan`) and of `apply`/`revert`.

use serde::{Deserialize, Serialize};

/// How much a finding matters for media.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fine as it is; reported so the operator sees it was checked.
    Ok,
    /// Worth changing on a busy node.
    Advice,
    /// Costs calls or quality under load.
    Warning,
    /// Breaks media (drops, or a backend that cannot work).
    Critical,
}

/// One thing the report says about the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Stable id, `area.what[.object]`, e.g. `nic.gro.eth1`,
    /// `sysctl.net.core.rmem_max`; `apply --only` takes these.
    pub id: String,
    pub severity: Severity,
    /// One line: what was found.
    pub title: String,
    /// What was read, and where (`/sys/class/net/eth1/queues: 1 rx queue`).
    pub evidence: Vec<String>,
    /// The exact command an operator would run, when there is one.
    pub command: Option<String>,
    /// Why it matters for media.
    pub why: String,
    /// What `apply` would change for this finding; None when nothing is
    /// safe to change at run time (kernel command line, BIOS, firmware).
    pub change: Option<Change>,
    /// Needs a reboot to take effect (printed, never applied).
    pub needs_reboot: bool,
}

/// One setting `apply` may write, with the value it wants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub setting: Setting,
    pub value: String,
}

/// A setting of the host, addressed so it can be read, written and restored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Setting {
    /// A file under /proc/sys, by its dotted name (`net.core.rmem_max`).
    Sysctl { name: String },
    /// An ethtool feature of a device (`rx-gro-hw`, `generic-receive-offload`),
    /// value "on" or "off".
    Feature { device: String, feature: String },
    /// An ethtool ring size (`rx`/`tx`), value a number.
    Ring { device: String, ring: String },
    /// Combined channels of a device, value a number.
    Channels { device: String },
    /// A device's threaded NAPI (`/sys/class/net/DEV/threaded`), "0" or "1".
    ThreadedNapi { device: String },
    /// The CPU list an IRQ may run on (`/proc/irq/N/smp_affinity_list`).
    IrqAffinity { irq: u32 },
}

/// The report: every finding, and the recommended core plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub plan: CorePlan,
}

/// Where the node's threads and interrupts should run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorePlan {
    /// Data-plane worker cores, on the NICs' NUMA node.
    pub worker_cores: Vec<usize>,
    /// Cores for the control plane, databases and the rest.
    pub other_cores: Vec<usize>,
    /// Each media NIC queue's IRQ and the worker core it should be on.
    pub irqs: Vec<(u32, usize)>,
    /// The same as a config snippet to paste (`[dataplane] cores = ...`).
    pub config_snippet: String,
    /// Why this plan (NUMA node, isolated cores, SMT siblings kept apart).
    pub reasons: Vec<String>,
}
