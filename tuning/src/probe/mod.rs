//! The probes, one module per area of the host. Each reads through
//! [`Host`](crate::host::Host) (and [`Ethtool`](crate::ethtool::Ethtool)
//! for NICs) and returns [`Finding`]s: what it saw, what to run, why it
//! matters for media, and the [`Change`] `apply` may make when one is safe
//! at run time.

pub mod cpu;
pub mod memory;
pub mod nic;
pub mod services;
pub mod sysctl;

use crate::ethtool::EthtoolError;
use crate::host::HostError;
use crate::model::{Change, Finding, Severity};

/// A probe could not read what it needs.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Ethtool(#[from] EthtoolError),
}

/// What the node is meant to run, as the probes need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeSpec {
    /// The media interfaces (XDP and relay traffic); empty: every device
    /// in /sys/class/net backed by a NIC (one with a `device` link).
    pub interfaces: Vec<String>,
    /// The data plane's worker cores as configured; None: the plan's.
    pub worker_cores: Option<Vec<usize>>,
    /// The relay's UDP port range, inclusive.
    pub media_ports: (u16, u16),
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            interfaces: Vec::new(),
            worker_cores: None,
            media_ports: (30000, 40000),
        }
    }
}

/// A finding with no evidence, command or change yet.
pub(crate) fn finding(
    id: impl Into<String>,
    severity: Severity,
    title: impl Into<String>,
    why: &str,
) -> Finding {
    Finding {
        id: id.into(),
        severity,
        title: title.into(),
        evidence: Vec::new(),
        command: None,
        why: why.to_string(),
        change: None,
        needs_reboot: false,
    }
}

/// Sets evidence, command and change of a finding in one go.
pub(crate) fn with(
    mut f: Finding,
    evidence: Vec<String>,
    command: Option<String>,
    change: Option<Change>,
) -> Finding {
    f.evidence = evidence;
    f.command = command;
    f.change = change;
    f
}
