//! `tollgate`: the single binary of a Tollgate node. Subcommands exist only
//! once they work: `dataplane`, `ctl`, `check-config`.

mod config;
mod ctl;
mod media;
mod ng;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use config::Config;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

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
    /// Control a running data plane.
    Ctl {
        /// Control socket (default: from --config, else the built-in default).
        #[arg(long)]
        socket: Option<PathBuf>,
        #[arg(long, short)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: ctl::CtlCommand,
    },
    /// Validate a configuration file and print the effective configuration.
    CheckConfig { file: PathBuf },
}

fn load(config: Option<&Path>) -> Result<Config> {
    match config {
        Some(p) => Ok(Config::load(p)?),
        None => Ok(Config::default()),
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TOLLGATE_LOG")
                .unwrap_or_else(|_| "info".into()),
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
            let stop = Arc::new(AtomicBool::new(false));
            for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
                signal_hook::flag::register(sig, stop.clone())
                    .context("installing signal handlers")?;
            }
            tollgate_dataplane::run(&cfg.dataplane, stop)?;
            Ok(())
        }
        Command::Ctl {
            socket,
            config,
            command,
        } => {
            let socket = match socket {
                Some(s) => s,
                None => load(config.as_deref())?.dataplane.control_socket,
            };
            ctl::run(&socket, command)
        }
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
