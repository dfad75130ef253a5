//! `tollgate tune`: the command line of tollgate-tuning on this host.
//! `report` inspects it for the node's media setup (the data-plane cores,
//! media interfaces and port range of `--config`), `apply` makes the
//! report's run-time changes (a dry run unless `--yes`), `revert` undoes an
//! apply from its revert file. `--root` reads a tree laid out like `/`
//! instead (a fixture captured from another host, its ethtool answers in
//! `ROOT/ethtool.json`), for the report and a dry run only.

use crate::config::Config;
use anyhow::{bail, Context, Result};
use clap::Subcommand;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tollgate_tuning::apply::settings::{HostSettings, Settings};
use tollgate_tuning::apply::{self, Step};
use tollgate_tuning::ethtool::{Ethtool, FixtureEthtool, SysEthtool};
use tollgate_tuning::host::Host;
use tollgate_tuning::model::Report;
use tollgate_tuning::probe::NodeSpec;
use tollgate_tuning::revert::{self, RevertFile};

#[derive(Debug, Subcommand)]
pub enum TuneCommand {
    /// Inspect this host for media work: each finding with its severity,
    /// evidence, the command to run and why it matters; then the core plan.
    Report {
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Make the report's run-time changes, all or none, writing a revert
    /// file first. A dry run (prints what would change) unless --yes.
    Apply {
        /// Only these findings (ids as the report prints them).
        #[arg(long, num_args = 1.., value_name = "ID")]
        only: Vec<String>,
        /// Make the changes.
        #[arg(long)]
        yes: bool,
        /// Where to write the revert file (default:
        /// /var/lib/tollgate/tune/revert-TIME.json); it must not exist.
        #[arg(long, value_name = "PATH")]
        revert_file: Option<PathBuf>,
    },
    /// Restore every value a revert file records.
    Revert {
        /// A revert file written by `tollgate tune apply --yes`.
        file: PathBuf,
    },
}

/// Runs `command` on this host, or on the tree at `root`.
pub fn run(cfg: &Config, root: Option<&Path>, command: TuneCommand) -> Result<()> {
    match command {
        TuneCommand::Report { json } => {
            let report = report(cfg, root)?;
            let text = if json {
                tollgate_tuning::report::json(&report).context("writing the report as JSON")?
            } else {
                tollgate_tuning::report::text(&report)
            };
            print!("{text}");
            Ok(())
        }
        TuneCommand::Apply {
            only,
            yes,
            revert_file,
        } => {
            if yes && root.is_some() {
                bail!("--root reads a tree for the report and a dry run; apply --yes changes only this host");
            }
            let revert_file = revert_file.unwrap_or_else(revert::default_file);
            apply(cfg, root, &only, yes, revert_file)
        }
        TuneCommand::Revert { file } => {
            if root.is_some() {
                bail!("--root reads a tree for the report and a dry run; revert changes only this host");
            }
            revert(&file)
        }
    }
}

/// What the node is configured to run, for the probes: its media devices
/// (`[dataplane.xdp] interfaces`, else the devices holding the media
/// addresses), its data-plane cores and its relay port range.
/// A tree at `root` has no addresses of its own: only `[dataplane.xdp]
/// interfaces` name its media devices there.
fn node_spec(cfg: &Config, root: Option<&Path>) -> Result<NodeSpec> {
    let interfaces = if !cfg.dataplane.xdp.interfaces.is_empty() {
        cfg.dataplane.xdp.interfaces.clone()
    } else if root.is_some() {
        Vec::new()
    } else {
        media_devices(&cfg.dataplane.media_addresses)?
    };
    Ok(NodeSpec {
        interfaces,
        worker_cores: cfg.dataplane.cores.clone(),
        media_ports: (cfg.media.port_min, cfg.media.port_max),
    })
}

/// The non-loopback devices holding `media` addresses, each once; empty
/// (the report then looks at every device) when media is on loopback only.
fn media_devices(media: &[IpAddr]) -> Result<Vec<String>> {
    let assigned = tollgate_dataplane::backend::xdp::devices::assigned()
        .context("listing this host's addresses")?;
    let mut devices: Vec<String> = Vec::new();
    for a in assigned
        .iter()
        .filter(|a| !a.loopback && media.contains(&a.address))
    {
        if !devices.contains(&a.device) {
            devices.push(a.device.clone());
        }
    }
    Ok(devices)
}

fn host(root: Option<&Path>) -> Host {
    root.map_or_else(Host::real, Host::at)
}

fn report(cfg: &Config, root: Option<&Path>) -> Result<Report> {
    let host = host(root);
    let ethtool: Box<dyn Ethtool> = match root {
        None => Box::new(SysEthtool::new()?),
        Some(_) => Box::new(FixtureEthtool::load(&host)?),
    };
    let spec = node_spec(cfg, root)?;
    Ok(tollgate_tuning::report::build(&host, &*ethtool, &spec)?)
}

fn settings(root: Option<&Path>) -> Result<Box<dyn Settings>> {
    let host = host(root);
    Ok(match root {
        None => Box::new(HostSettings::new(host, SysEthtool::new()?)),
        Some(_) => {
            let ethtool = FixtureEthtool::load(&host)?;
            Box::new(HostSettings::new(host, ethtool))
        }
    })
}

fn apply(
    cfg: &Config,
    root: Option<&Path>,
    only: &[String],
    yes: bool,
    revert_file: PathBuf,
) -> Result<()> {
    let report = report(cfg, root)?;
    let mut settings = settings(root)?;
    let plan = apply::plan(&report.findings, only, &*settings)?;
    print!("{}", plan.describe(&revert_file, !yes));
    if !yes || plan.steps.is_empty() {
        return Ok(());
    }
    let mut log = |s: &Step| {
        let (old, new) = (apply::shown(&s.old), apply::shown(&s.new));
        tracing::info!(finding = %s.finding, setting = %s.setting, old = %old, new = %new, "tune: changed");
    };
    apply::apply(&plan, &mut *settings, &revert_file, &hostname(), &mut log)?;
    println!(
        "done: {} change(s); `tollgate tune revert {}` undoes them",
        plan.steps.len(),
        revert_file.display()
    );
    Ok(())
}

fn revert(file: &Path) -> Result<()> {
    let rf = RevertFile::load(file).map_err(anyhow::Error::msg)?;
    let host = hostname();
    if rf.host != host {
        eprintln!(
            "tollgate: note: {} was written on {} at {}; this host is {host}",
            file.display(),
            rf.host,
            rf.timestamp
        );
    }
    let outcome = revert::revert(&rf, &mut *settings(None)?);
    print!("{}", outcome.describe());
    if !outcome.failed.is_empty() {
        let names: Vec<String> = outcome
            .failed
            .iter()
            .map(|(s, _)| s.setting.to_string())
            .collect();
        bail!(
            "{} setting(s) not restored: {}",
            names.len(),
            names.join(", ")
        );
    }
    Ok(())
}

/// This host's name, as the revert file records it.
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metal() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../tuning/tests/fixtures/metal")
    }

    #[test]
    fn the_report_checks_the_configured_devices_cores_and_ports() {
        let mut cfg = Config::default();
        cfg.dataplane.xdp.interfaces = vec!["eth1".into()];
        cfg.dataplane.cores = Some(vec![2, 3]);
        (cfg.media.port_min, cfg.media.port_max) = (20000, 29999);
        let spec = node_spec(&cfg, Some(&metal())).unwrap();
        assert_eq!(spec.interfaces, ["eth1"]);
        assert_eq!(
            (spec.worker_cores, spec.media_ports),
            (Some(vec![2, 3]), (20000, 29999))
        );
        // A tree has no addresses: the media addresses name no device there.
        let spec = node_spec(&Config::default(), Some(&metal())).unwrap();
        assert!(spec.interfaces.is_empty());
        let report = report(&cfg, Some(&metal())).unwrap();
        let ports = report
            .findings
            .iter()
            .find(|f| f.id == "sysctl.net.ipv4.ip_local_reserved_ports")
            .unwrap();
        assert!(
            ports
                .evidence
                .iter()
                .any(|e| e.contains("media ports 20000-29999")),
            "{ports:?}"
        );
    }

    #[test]
    fn a_tree_is_for_reports_and_dry_runs_only() {
        let cfg = Config::default();
        let before = std::fs::read_to_string(metal().join("proc/sys/net/core/rmem_max")).unwrap();
        let dry = TuneCommand::Apply {
            only: vec![],
            yes: false,
            revert_file: Some("/nonexistent/r.json".into()),
        };
        run(&cfg, Some(&metal()), dry).unwrap();
        let after = std::fs::read_to_string(metal().join("proc/sys/net/core/rmem_max")).unwrap();
        assert_eq!(before, after);
        let yes = TuneCommand::Apply {
            only: vec![],
            yes: true,
            revert_file: None,
        };
        let e = run(&cfg, Some(&metal()), yes).unwrap_err().to_string();
        assert!(e.contains("apply --yes changes only this host"), "{e}");
        let revert = TuneCommand::Revert {
            file: "/nonexistent".into(),
        };
        let e = run(&cfg, Some(&metal()), revert).unwrap_err().to_string();
        assert!(e.contains("revert changes only this host"), "{e}");
    }
}
