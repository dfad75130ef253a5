//! `tollgate`: the single binary of a Tollgate node, its command line only;
//! what the commands run lives in the library ([`tollgate`]). Subcommands
//! exist only once they work: `run`, `dataplane`, `controlplane`, `ctl`,
//! `cdr`, `archive`, `bench`, `tune`, `check-config`.

use anyhow::{Context, Result};
use clap::{Args, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use tollgate::config::Config;
use tollgate::{cdrs, ctl, supervisor, tune};

#[derive(Debug, Parser)]
#[command(
    name = "tollgate",
    version,
    about = "Bare-metal session border controller and media node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a whole node: the data plane (child process, restarted if it dies)
    /// and the control plane with its rtpengine-compatible NG server.
    Run {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Run the control plane alone (NG server, media sessions) against a
    /// data plane already running.
    Controlplane {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Run the media data plane (flows, XDP or io_uring forwarding, control socket).
    Dataplane {
        /// Configuration file (TOML); built-in defaults when omitted.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Detach the XDP program and remove its pinned state, then exit.
        /// Forwarding of established calls stops.
        #[arg(long)]
        detach: bool,
    },
    /// Inspect and control a running node: flows (data plane), calls (NG).
    Ctl {
        /// Data-plane control socket (default: from --config, else the built-in default).
        #[arg(long)]
        socket: Option<PathBuf>,
        /// NG address for `calls` / `call` (default: from --config, else 127.0.0.1:22222).
        #[arg(long)]
        ng: Option<SocketAddr>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: ctl::CtlCommand,
    },
    /// CDRs: schema migrations, spool and sink status, export.
    Cdr {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: cdrs::CdrCommand,
    },
    /// Recording archive: queue status, archived recordings, fetch one as
    /// WAV, retention purge.
    Archive {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: tollgate::archive::cli::ArchiveCommand,
    },
    /// The IVR's menus as the node reads them; a walk through them.
    Ivr {
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: tollgate::ivr::cli::IvrCommand,
    },
    /// Benchmarks of the relay, the same way for Tollgate and its peers.
    Bench {
        #[command(subcommand)]
        what: BenchCommand,
    },
    /// Tune this host for media: report (NICs, IRQs, NUMA, cores,
    /// hugepages, offloads, sysctls), apply the safe changes, revert them.
    Tune {
        /// The node's config: its data-plane cores, media interfaces and
        /// port range are what the report checks.
        #[arg(long, short)]
        config: Option<PathBuf>,
        /// Read this tree, laid out like / (a fixture captured from another
        /// host), instead of this host: for `report` and dry runs.
        #[arg(long, value_name = "DIR")]
        root: Option<PathBuf>,
        #[command(subcommand)]
        command: tune::TuneCommand,
    },
    /// Validate a configuration file and print the effective configuration.
    CheckConfig { file: PathBuf },
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// Call capacity and CPU per packet of a media relay: Tollgate (XDP or
    /// socket backend) and rtpengine, in network namespaces it builds.
    Media(tollgate_bench::media::MediaArgs),
    /// CDR spool appends and batched sink throughput into PostgreSQL,
    /// against unbatched inserts measured in the same run.
    Cdr(tollgate_bench::cdr::CdrBenchArgs),
    /// Recordings archived into S3 (rendered, sealed, uploaded, cataloged)
    /// in MB/s, against the store's raw PUT rate in the same run.
    Archive(tollgate_bench::archive::ArchiveBenchArgs),
    /// Call setup through the SIP B2BUA with SIPp: achieved CPS, failures,
    /// setup latency and CPU per call; `--peer kamailio` measures Kamailio
    /// with rtpengine the same way.
    Sip(tollgate_bench::sip::SipArgs),
}

/// rtpengine's command-line spelling for the common settings, overriding
/// the config file, so operators can switch without relearning.
#[derive(Debug, Args)]
struct Overrides {
    /// Media interface NAME/ADDRESS[!ADVERTISED] or ADDRESS (repeatable; replaces [media] interfaces).
    #[arg(long = "interface", value_name = "NAME/ADDRESS")]
    interfaces: Vec<String>,
    /// NG listen address (UDP and TCP).
    #[arg(long, value_name = "IP:PORT")]
    listen_ng: Option<SocketAddr>,
    #[arg(long)]
    port_min: Option<u16>,
    #[arg(long)]
    port_max: Option<u16>,
    /// Seconds without media before a call is deleted.
    #[arg(long)]
    timeout: Option<u64>,
    /// Seconds after which a call is deleted regardless.
    #[arg(long)]
    final_timeout: Option<u64>,
    /// Seconds a deleted call keeps relaying.
    #[arg(long)]
    delete_delay: Option<u64>,
}

impl Overrides {
    fn apply(&self, mut cfg: Config) -> Result<Config> {
        if !self.interfaces.is_empty() {
            cfg.media.interfaces = self
                .interfaces
                .iter()
                .map(|s| tollgate::media::config::MediaConfig::parse_interface(s))
                .collect::<Result<_, _>>()
                .map_err(anyhow::Error::msg)?;
        }
        let m = &mut cfg.media;
        m.port_min = self.port_min.unwrap_or(m.port_min);
        m.port_max = self.port_max.unwrap_or(m.port_max);
        m.timeout_secs = self.timeout.unwrap_or(m.timeout_secs);
        m.final_timeout_secs = self.final_timeout.unwrap_or(m.final_timeout_secs);
        m.delete_delay_secs = self.delete_delay.unwrap_or(m.delete_delay_secs);
        cfg.ng.listen = self.listen_ng.unwrap_or(cfg.ng.listen);
        Ok(cfg.validate("command line")?)
    }
}

fn stop_on_signals() -> Result<Arc<AtomicBool>> {
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    Ok(stop)
}

fn load(config: Option<&Path>) -> Result<Config> {
    match config {
        Some(p) => Ok(Config::load(p)?),
        None => Ok(Config::default()),
    }
}

/// A panic in any thread ends the whole process. A serving thread that died
/// alone would leave a half-alive node (NG answering while SIP is silent);
/// an exit lets the supervisor (systemd, or `tollgate run` for its data
/// plane) restart it, handling calls and CDRs as on any restart.
fn exit_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("tollgate: a thread panicked; exiting so that the node restarts whole");
        std::process::abort();
    }));
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("tollgate: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Dataplane { config, detach } => {
            exit_on_panic();
            let cfg = load(config.as_deref())?;
            if detach {
                tollgate_dataplane::backend::xdp::detach(&cfg.dataplane.xdp)
                    .with_context(|| format!("removing {}", cfg.dataplane.xdp.pin_dir.display()))?;
                println!(
                    "XDP state under {} removed",
                    cfg.dataplane.xdp.pin_dir.display()
                );
                return Ok(());
            }
            tollgate_dataplane::run(&cfg.dataplane, stop_on_signals()?)?;
            Ok(())
        }
        Command::Run { config, overrides } => {
            exit_on_panic();
            let cfg = overrides.apply(load(config.as_deref())?)?;
            supervisor::run(cfg, config, stop_on_signals()?)
        }
        Command::Controlplane { config, overrides } => {
            exit_on_panic();
            let cfg = overrides.apply(load(config.as_deref())?)?;
            tollgate::controlplane(cfg, config, stop_on_signals()?)
        }
        Command::Ctl {
            socket,
            ng,
            config,
            command,
        } => {
            let cfg = if config.is_some() {
                load(config.as_deref())?
            } else {
                Config::default()
            };
            if let ctl::CtlCommand::Takeover { keyspace, wait } = &command {
                let f = cfg
                    .failover
                    .as_ref()
                    .context("ctl takeover needs --config with [failover]")?;
                return tollgate::failover::takeover::ctl(
                    f,
                    keyspace,
                    std::time::Duration::from_secs(*wait),
                );
            }
            ctl::run(
                &socket.unwrap_or(cfg.dataplane.control_socket),
                ng.unwrap_or(cfg.ng.listen),
                command,
            )
        }
        Command::Cdr { config, command } => cdrs::run(&load(config.as_deref())?.cdr, command),
        Command::Archive { config, command } => {
            let cfg = load(config.as_deref())?;
            tollgate::archive::cli::run(&cfg.archive, &cfg.cdr, command)
        }
        Command::Ivr { config, command } => {
            tollgate::ivr::cli::run(&load(config.as_deref())?.ivr, command)
        }
        Command::Bench {
            what: BenchCommand::Cdr(args),
        } => tollgate_bench::cdr::main(&args, tollgate_bench::stamp::stamp()),
        Command::Bench {
            what: BenchCommand::Sip(args),
        } => tollgate_bench::sip::main(&args),
        Command::Bench {
            what: BenchCommand::Archive(args),
        } => tollgate_bench::archive::main(&args, tollgate_bench::stamp::stamp()),
        Command::Bench {
            what: BenchCommand::Media(args),
        } => {
            let command = std::env::args().collect::<Vec<_>>().join(" ");
            tollgate_bench::media::main(&args, command, stop_on_signals()?)?;
            Ok(())
        }
        Command::Tune {
            config,
            root,
            command,
        } => tune::run(&load(config.as_deref())?, root.as_deref(), command),
        Command::CheckConfig { file } => {
            let cfg = Config::load(&file)?;
            println!("{}: valid", file.display());
            print!(
                "{}",
                toml::to_string_pretty(&cfg).context("printing the configuration")?
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_takes_several_ids_and_the_revert_file() {
        let cli = Cli::try_parse_from([
            "tollgate",
            "tune",
            "--config",
            "n.toml",
            "apply",
            "--only",
            "a",
            "b",
            "--yes",
            "--revert-file",
            "/x.json",
        ])
        .unwrap();
        let Command::Tune {
            config,
            command:
                tune::TuneCommand::Apply {
                    only,
                    yes,
                    revert_file,
                },
            ..
        } = cli.command
        else {
            panic!("{:?}", cli.command)
        };
        assert_eq!(config, Some(PathBuf::from("n.toml")));
        assert_eq!(
            (only, yes, revert_file),
            (vec!["a".into(), "b".into()], true, Some("/x.json".into()))
        );
    }
}
