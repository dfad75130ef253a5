//! `tollgate ctl`: talks to a running data plane over its control socket to
//! install, change, remove and inspect flows and read counters.

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::Path;
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::Request;
use tollgate_dataplane::flow::Flow;

#[derive(Debug, Subcommand)]
pub enum CtlCommand {
    /// List flows with their counters.
    Flows {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one flow with its counters and RTP quality.
    Flow { local: SocketAddr },
    /// Install or update a flow.
    Add(Box<FlowArgs>),
    /// Remove a flow; prints its final counters.
    Del { local: SocketAddr },
    /// Flows with no packets for the idle timeout.
    Idle,
    /// Global counters: totals and drops by reason.
    Counters,
    /// Backend and protocol version of the running data plane.
    Status,
}

#[derive(Debug, Args)]
pub struct FlowArgs {
    /// Relay address:port the peer sends to.
    #[arg(long)]
    local: SocketAddr,
    /// Relay address:port packets leave from.
    #[arg(long)]
    source: SocketAddr,
    /// Peer address:port packets go to.
    #[arg(long)]
    destination: SocketAddr,
    /// The only source accepted with --strict.
    #[arg(long)]
    expect: Option<SocketAddr>,
    /// Egress interface (default: by route).
    #[arg(long)]
    egress: Option<String>,
    /// Learn the peer's real source from the first packet.
    #[arg(long)]
    learn: bool,
    /// Drop packets from other sources.
    #[arg(long)]
    strict: bool,
    /// Send to the source learned by the flow on this local address.
    #[arg(long)]
    follow: Option<SocketAddr>,
    #[arg(long, default_value_t = 8000)]
    clock_rate: u32,
}

pub fn run(socket: &Path, cmd: CtlCommand) -> Result<()> {
    let mut c = ControlClient::connect(socket).context("is the data plane running?")?;
    let out = match cmd {
        CtlCommand::Flows { json: false } => {
            print_table(&c.request(&Request::FlowList)?);
            return Ok(());
        }
        CtlCommand::Flows { json: true } => c.request(&Request::FlowList)?,
        CtlCommand::Flow { local } => c.request(&Request::FlowGet { local })?,
        CtlCommand::Add(a) => {
            let flow = Flow {
                local: a.local,
                source: a.source,
                destination: a.destination,
                expect: a.expect,
                egress: a.egress,
                learn: a.learn,
                strict: a.strict,
                follow: a.follow,
                clock_rate: a.clock_rate,
            };
            c.request(&Request::FlowPut { flow })?;
            println!("flow {} installed", a.local);
            return Ok(());
        }
        CtlCommand::Del { local } => c.request(&Request::FlowDel { local })?,
        CtlCommand::Idle => c.request(&Request::Idle)?,
        CtlCommand::Counters => c.request(&Request::Counters)?,
        CtlCommand::Status => c.request(&Request::Hello)?,
    };
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}

fn print_table(list: &Value) {
    println!(
        "{:<24} {:<24} {:<24} {:>10} {:>12} {:>8} {:<5}",
        "LOCAL", "DESTINATION", "LEARNED", "PACKETS", "BYTES", "LOST", "IDLE"
    );
    for r in list.as_array().into_iter().flatten() {
        let s = |v: &Value| v.as_str().unwrap_or("-").to_string();
        let n = |v: &Value| {
            v.as_u64()
                .map(|x| x.to_string())
                .unwrap_or_else(|| "-".into())
        };
        println!(
            "{:<24} {:<24} {:<24} {:>10} {:>12} {:>8} {:<5}",
            s(&r["flow"]["local"]),
            s(&r["flow"]["destination"]),
            s(&r["counters"]["learned"]),
            n(&r["counters"]["packets"]),
            n(&r["counters"]["bytes"]),
            n(&r["counters"]["rtp"]["lost"]),
            if r["idle"].as_bool() == Some(true) {
                "yes"
            } else {
                "no"
            },
        );
    }
}
