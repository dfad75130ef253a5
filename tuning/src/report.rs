//! The report: every probe's findings and the core plan, gathered in one
//! pass over the host, and printed as text (grouped by area, worst first,
//! each with its evidence, command and why) or as JSON.

use crate::ethtool::Ethtool;
use crate::host::{format_cpu_list, Host};
use crate::model::{Finding, Report, Setting, Severity};
use crate::probe::{cpu, memory, nic, services, sysctl, NodeSpec, ProbeError};
use crate::topology::Topology;
use std::fmt::Write;

/// Areas in the order the report prints them, by finding id prefix.
const AREAS: &[(&str, &str)] = &[
    ("nic", "NICs"),
    ("cpu", "CPUs"),
    ("memory", "Memory"),
    ("sysctl", "Sysctls"),
    ("services", "Services"),
];

/// Runs every probe on `host`.
pub fn build(host: &Host, ethtool: &dyn Ethtool, spec: &NodeSpec) -> Result<Report, ProbeError> {
    let topo = Topology::read(host)?;
    let interfaces = nic::interfaces(host, spec)?;
    let nics = interfaces
        .iter()
        .map(|d| nic::inspect(host, ethtool, d))
        .collect::<Result<Vec<_>, _>>()?;
    let plan = crate::plan::recommend(&topo, &nics);
    let workers = spec
        .worker_cores
        .clone()
        .unwrap_or_else(|| plan.worker_cores.clone());
    let mut nic_nodes: Vec<usize> = nics.iter().filter_map(|n| n.numa_node).collect();
    nic_nodes.sort_unstable();
    nic_nodes.dedup();
    let mut findings: Vec<Finding> = nics.iter().flat_map(|n| nic::findings(n, &plan)).collect();
    findings.extend(cpu::findings(
        host,
        &topo,
        &workers,
        &nic_nodes,
        &plan.worker_cores,
    )?);
    findings.extend(memory::findings(host, &nic_nodes)?);
    findings.extend(sysctl::findings(host, spec, &interfaces)?);
    findings.extend(services::findings(host)?);
    // Stable: within an area and a severity, the probes' order stays.
    findings.sort_by_key(|f| (area_index(&f.id), std::cmp::Reverse(f.severity)));
    Ok(Report { findings, plan })
}

fn area_index(id: &str) -> usize {
    let area = id.split('.').next().unwrap_or("");
    AREAS
        .iter()
        .position(|(a, _)| *a == area)
        .unwrap_or(AREAS.len())
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Ok => "ok",
        Severity::Advice => "advice",
        Severity::Warning => "warning",
        Severity::Critical => "CRITICAL",
    }
}

/// What `apply` would do, in words.
fn apply_line(f: &Finding) -> String {
    if f.needs_reboot {
        return "needs a reboot: printed, never applied".into();
    }
    let Some(c) = &f.change else {
        return "nothing apply can change at run time".into();
    };
    let target = match &c.setting {
        Setting::Sysctl { name } => format!("sysctl {name}"),
        Setting::Feature { device, feature } => format!("{device} feature {feature}"),
        Setting::Ring { device, ring } => format!("{device} {ring} ring"),
        Setting::Channels { device } => format!("{device} combined channels"),
        Setting::ThreadedNapi { device } => format!("{device} threaded NAPI"),
        Setting::IrqAffinity { irq } => format!("IRQ {irq} affinity"),
    };
    format!(
        "sets {target} to {} (tollgate tune apply --only {})",
        c.value, f.id
    )
}

/// The report as text for a terminal.
pub fn text(report: &Report) -> String {
    let mut s = String::new();
    let count = |sev| report.findings.iter().filter(|f| f.severity == sev).count();
    let _ = writeln!(
        s,
        "tollgate tune report: {} critical, {} warning, {} advice, {} ok",
        count(Severity::Critical),
        count(Severity::Warning),
        count(Severity::Advice),
        count(Severity::Ok)
    );
    for (i, (_, title)) in AREAS.iter().enumerate() {
        let group: Vec<&Finding> = report
            .findings
            .iter()
            .filter(|f| area_index(&f.id) == i)
            .collect();
        if group.is_empty() {
            continue;
        }
        let _ = writeln!(s, "\n{title}");
        for f in group {
            finding_text(&mut s, f);
        }
    }
    plan_text(&mut s, report);
    s
}

fn finding_text(s: &mut String, f: &Finding) {
    let _ = writeln!(
        s,
        "  [{}] {}  ({})",
        severity_word(f.severity),
        f.title,
        f.id
    );
    for e in &f.evidence {
        let _ = writeln!(s, "      evidence: {e}");
    }
    if f.severity == Severity::Ok {
        return;
    }
    if let Some(c) = &f.command {
        let _ = writeln!(s, "      run:      {c}");
    }
    let _ = writeln!(s, "      why:      {}", f.why);
    let _ = writeln!(s, "      apply:    {}", apply_line(f));
}

fn plan_text(s: &mut String, report: &Report) {
    let p = &report.plan;
    let _ = writeln!(s, "\nCore plan");
    let _ = writeln!(s, "  workers:       {}", format_cpu_list(&p.worker_cores));
    let _ = writeln!(s, "  control plane: {}", format_cpu_list(&p.other_cores));
    for r in &p.reasons {
        let _ = writeln!(s, "  - {r}");
    }
    let _ = writeln!(s, "  config to paste:");
    for line in p.config_snippet.lines() {
        let _ = writeln!(s, "{}", format!("    {line}").trim_end());
    }
}

/// The report as JSON (the model's serde form).
pub fn json(report: &Report) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(report)
}
