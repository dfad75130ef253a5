//! `tollgate ctl`: inspects and controls a running node. Flow commands talk
//! to the data plane over its control socket; `calls` and `call` ask the
//! control plane over NG (`list` and `query`), exactly as any NG client can.

mod workers;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::Value as Json;
use std::net::SocketAddr;
use std::path::Path;
use tollgate_cdr::quality;
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::{Reply, Request};
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_dataplane::table::FlowReport;
use tollgate_ng::client::NgClient;
use tollgate_ng::Value;

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
    /// Packet workers: flows, packets per second, busy %, drops by reason.
    Workers {
        /// Print the raw cumulative report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Events media pipeline stages reported since the last time asked.
    Events,
    /// Load a WAV file into the data plane's prompt cache as prompt `id`,
    /// for `prompt` stages (`--stage '{"kind":"prompt","prompt":ID}'`).
    PromptLoad { id: u32, path: std::path::PathBuf },
    /// Backend and protocol version of the running data plane.
    Status,
    /// Calls the control plane relays (NG `list` + `query`).
    Calls,
    /// One call's participants, media, endpoints and counters (NG `query`).
    Call { call_id: String },
    /// Assign another node's failover keyspace to this node (`[failover]`
    /// of --config) and wait until this node has taken its calls over.
    Takeover {
        keyspace: String,
        /// How long to wait for the node, in seconds.
        #[arg(long, default_value_t = 10)]
        wait: u64,
    },
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
    /// A media pipeline stage, repeatable, in order: a name (`null`,
    /// `rtcp_demux`, `silence`, `dtmf_detect`) or a JSON object
    /// (`{"kind":"drop_every","n":5}`, `{"kind":"tone","tone":"ringback"}`).
    #[arg(long, value_parser = parse_stage)]
    stage: Vec<StageSpec>,
}

fn parse_stage(s: &str) -> Result<StageSpec, String> {
    let json = if s.trim_start().starts_with('{') {
        s.to_string()
    } else {
        format!("{{\"kind\":{}}}", Json::from(s))
    };
    serde_json::from_str(&json).map_err(|e| format!("stage {s:?}: {e}"))
}

pub fn run(socket: &Path, ng: SocketAddr, cmd: CtlCommand) -> Result<()> {
    match cmd {
        CtlCommand::Calls => return calls(ng),
        CtlCommand::Call { call_id } => {
            let mut n = NgClient::new(ng)?;
            let q = n
                .command("query", [("call-id", Value::str(&call_id))])
                .context("is the control plane running?")?;
            println!(
                "{}",
                serde_json::to_string_pretty(&tollgate_ng::json::to_json(&q))?
            );
            return Ok(());
        }
        _ => {}
    }
    let mut c = ControlClient::connect(socket).context("is the data plane running?")?;
    let table = matches!(cmd, CtlCommand::Flows { json: false });
    let req = match cmd {
        CtlCommand::Flows { .. } => Request::FlowList,
        CtlCommand::Flow { local } => Request::FlowGet { local },
        CtlCommand::Add(a) => Request::FlowPut { flow: flow(*a) },
        CtlCommand::Del { local } => Request::FlowDel { local },
        CtlCommand::Idle => Request::Idle,
        CtlCommand::Counters => Request::Counters,
        CtlCommand::Workers { json } => return workers::run(&mut c, json),
        CtlCommand::Events => Request::Events,
        // The data plane reads the file: give it a path that does not
        // depend on this shell's directory.
        CtlCommand::PromptLoad { id, path } => Request::PromptLoad {
            id,
            path: std::fs::canonicalize(&path)
                .with_context(|| format!("prompt file {}", path.display()))?,
        },
        CtlCommand::Status => Request::Hello,
        CtlCommand::Calls | CtlCommand::Call { .. } => unreachable!("answered over NG above"),
        CtlCommand::Takeover { .. } => unreachable!("answered through Redis by main"),
    };
    match (c.request_typed(&req)??, &req) {
        (Reply::Flows(list), _) if table => print_table(&list),
        (Reply::Installed, Request::FlowPut { flow }) => println!("flow {} installed", flow.local),
        (reply, _) => println!("{}", serde_json::to_string_pretty(&reply)?),
    }
    Ok(())
}

fn flow(a: FlowArgs) -> Flow {
    Flow {
        local: a.local,
        source: a.source,
        destination: a.destination,
        expect: a.expect,
        egress: a.egress,
        learn: a.learn,
        strict: a.strict,
        follow: a.follow,
        clock_rate: a.clock_rate,
        stages: a.stage,
    }
}

fn print_table(list: &[FlowReport]) {
    println!(
        "{:<24} {:<24} {:<24} {:>10} {:>12} {:>8} {:>10} {:>8} {:>5} {:<5}",
        "LOCAL",
        "DESTINATION",
        "LEARNED",
        "PACKETS",
        "BYTES",
        "LOST",
        "JITTER ms",
        "RTT ms",
        "MOS",
        "IDLE"
    );
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for r in list {
        let q = quality(r);
        println!(
            "{:<24} {:<24} {:<24} {:>10} {:>12} {:>8} {:>10} {:>8} {:>5} {:<5}",
            r.flow.local.to_string(),
            r.flow.destination.to_string(),
            or_dash(r.counters.learned.map(|a| a.to_string())),
            r.counters.packets,
            r.counters.bytes,
            or_dash(r.counters.rtp.map(|q| q.lost.to_string())),
            or_dash(q.map(|m| format!("{:.1}", m.jitter_ms))),
            or_dash(q.and_then(|m| m.rtt_ms).map(|v| format!("{v:.1}"))),
            or_dash(q.map(|m| format!("{:.2}", quality::mos(&m)))),
            if r.idle { "yes" } else { "no" },
        );
    }
}

/// What the E-model needs of a flow's report, once RTP arrived on it.
fn quality(r: &FlowReport) -> Option<quality::Impairments> {
    let q = r.counters.rtp?;
    Some(quality::Impairments {
        loss_ratio: q.lost as f64 / q.expected.max(1) as f64,
        jitter_ms: q.jitter_us(r.flow.clock_rate) as f64 / 1000.0,
        rtt_ms: r
            .counters
            .remote
            .and_then(|x| x.rtt_us)
            .map(|us| us as f64 / 1000.0),
    })
}

fn calls(ng: SocketAddr) -> Result<()> {
    let mut n = NgClient::new(ng)?;
    let list = n
        .command("list", [("limit", Value::Int(100_000))])
        .context("is the control plane running?")?;
    println!(
        "{:<40} {:>6} {:>10} {:>10} {:>8}",
        "CALL-ID", "TAGS", "RTP PKTS", "RTCP PKTS", "AGE (s)"
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    for id in list.get("calls").and_then(Value::as_list).unwrap_or(&[]) {
        let Some(id) = id.as_str() else { continue };
        let Ok(q) = n.command("query", [("call-id", Value::str(id))]) else {
            continue;
        };
        let pk = |k: &str| {
            q.get("totals")
                .and_then(|t| t.get(k))
                .and_then(|t| t.get("packets"))
                .and_then(Value::as_int)
                .unwrap_or(0)
        };
        let tags = q
            .get("tags")
            .and_then(Value::as_dict)
            .map_or(0, |d| d.len());
        let age = now - q.get("created").and_then(Value::as_int).unwrap_or(now);
        println!(
            "{:<40} {:>6} {:>10} {:>10} {:>8}",
            id,
            tags,
            pk("RTP"),
            pk("RTCP"),
            age
        );
    }
    Ok(())
}
