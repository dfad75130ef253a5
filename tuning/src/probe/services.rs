//! Services that fight the tuning: irqbalance moving the data plane's IRQs.

use super::{finding, with, ProbeError};
use crate::host::Host;
use crate::model::{Finding, Severity};

/// The pids whose `/proc/PID/comm` is `name`.
pub fn running(host: &Host, name: &str) -> Result<Vec<u32>, ProbeError> {
    let mut pids = Vec::new();
    for pid in host
        .list("/proc")?
        .iter()
        .filter_map(|p| p.parse::<u32>().ok())
    {
        // A process may exit between the listing and the read: unknown, skipped.
        if host.read(&format!("/proc/{pid}/comm"))?.as_deref() == Some(name) {
            pids.push(pid);
        }
    }
    Ok(pids)
}

const WHY: &str =
    "irqbalance moves interrupts every few seconds to spread load: it undoes each queue's IRQ \
                   affinity to its worker's core, and may put interrupts on isolated cores.";

pub fn findings(host: &Host) -> Result<Vec<Finding>, ProbeError> {
    let pids = running(host, "irqbalance")?;
    if pids.is_empty() {
        let f = finding(
            "services.irqbalance",
            Severity::Ok,
            "irqbalance is not running",
            WHY,
        );
        return Ok(vec![with(
            f,
            vec!["/proc/*/comm: no irqbalance".into()],
            None,
            None,
        )]);
    }
    let evidence = pids
        .iter()
        .map(|p| format!("/proc/{p}/comm: irqbalance"))
        .collect();
    let cmd = "systemctl disable --now irqbalance (or IRQBALANCE_BANNED_CPULIST=<data-plane cores> in /etc/default/irqbalance)";
    let f = finding(
        "services.irqbalance",
        Severity::Warning,
        "irqbalance is running",
        WHY,
    );
    Ok(vec![with(f, evidence, Some(cmd.into()), None)])
}
