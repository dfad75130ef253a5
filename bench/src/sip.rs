//! `tollgate bench sip`: call setup through a SIP node, driven by SIPp on
//! loopback the same way for each system. SIPp's UAC offers `--cps` calls a
//! second for `--duration` seconds (INVITE, 200, ACK, BYE at once) through
//! the system to a SIPp UAS. Measured: calls completed and failed,
//! retransmissions, achieved calls per second, setup latency (INVITE to
//! 200, SIPp's response-time trace, which has millisecond resolution)
//! percentiles, and the system's CPU time
//! per call (every thread of every process it runs). Systems: Tollgate's
//! B2BUA (`tollgate run` with `[sip]`, media anchored through its session
//! manager, CDRs spooled with `fsync = always`) and, with `--peer
//! kamailio`, Kamailio as a stateful proxy calling rtpengine over NG, which
//! is what Tollgate replaces.

use crate::cpu;
use crate::peers;
use anyhow::{bail, Context, Result};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct SipArgs {
    /// Calls per second offered.
    #[arg(long, default_value_t = 200)]
    pub cps: u32,
    /// Seconds of offered load per run.
    #[arg(long, default_value_t = 10)]
    pub duration: u32,
    /// Also measure this peer the same way: `kamailio` (stateful proxy with rtpengine).
    #[arg(long)]
    pub peer: Option<String>,
    /// Runs per system; the median run (by CPU per call) is reported.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Write the results as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SipResult {
    pub system: String,
    pub cps_offered: u32,
    pub calls: u64,
    pub ok: u64,
    pub failed: u64,
    pub retransmissions: u64,
    pub elapsed_s: f64,
    pub cps_achieved: f64,
    pub setup_ms_p50: f64,
    pub setup_ms_p90: f64,
    pub setup_ms_p99: f64,
    pub cpu_ms_per_call: f64,
}

const SUT: &str = "127.0.0.1:5060";
const UAS: &str = "127.0.0.1:5090";
const UAC: &str = "127.0.0.1:5070";
const NG: &str = "127.0.0.1:22230";
/// SIPp under load: 4 MiB socket buffers (the default drops bursts at
/// 1000 cps) and more receive/schedule work per loop.
pub const SIPP_LOAD: [&str; 6] = [
    "-buff_size",
    "4194304",
    "-max_recv_loops",
    "10000",
    "-max_sched_loops",
    "10000",
];

struct Running {
    children: Vec<Child>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for c in &mut self.children {
            crate::sut::terminate(c, Duration::from_secs(3));
        }
    }
}

impl Running {
    /// Every process of the system: its roots and their descendants.
    fn pids(&self) -> Vec<u32> {
        let mut out = Vec::new();
        let mut todo: Vec<u32> = self.children.iter().map(Child::id).collect();
        while let Some(p) = todo.pop() {
            out.push(p);
            for t in std::fs::read_dir(format!("/proc/{p}/task"))
                .into_iter()
                .flatten()
                .flatten()
            {
                let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                todo.extend(
                    kids.split_whitespace()
                        .filter_map(|k| k.parse::<u32>().ok()),
                );
            }
        }
        out
    }

    fn cpu_ns(&self) -> u64 {
        self.pids().into_iter().map(cpu::process_ns).sum()
    }
}

fn spawn(mut cmd: Command, dir: &Path, name: &str) -> Result<Child> {
    let log = std::fs::File::create(dir.join(format!("{name}.log")))?;
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .with_context(|| format!("starting {name} (scripts/setup.sh installs the peers)"))
}

fn tollgate(dir: &Path) -> Result<Running> {
    let cfg = dir.join("tollgate.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[dataplane]
backend = "socket"
control_socket = "{d}/dp.sock"
[media]
port_min = 30000
port_max = 60000
[ng]
listen = "{NG}"
[sip]
listen = "{SUT}"
max_cps = 100000
max_calls = 100000
[[sip.routes]]
match = "*"
target = "sip:{{user}}@{UAS}"
[cdr]
spool_dir = "{d}/spool"
sinks = [{{ kind = "sqlite", url = "sqlite://{d}/cdr.sqlite" }}]
"#,
            d = dir.display()
        ),
    )?;
    let exe = std::env::current_exe().context("finding the tollgate binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("run")
        .arg("--config")
        .arg(&cfg)
        .env("TOLLGATE_LOG", "warn");
    Ok(Running {
        children: vec![spawn(cmd, dir, "tollgate")?],
    })
}

fn kamailio(dir: &Path) -> Result<Running> {
    let ng: SocketAddr = NG.parse()?;
    let rtpe = spawn(peers::rtpengine(dir, ng, (30000, 60000)), dir, "rtpengine")?;
    let mut r = Running {
        children: vec![rtpe],
    };
    std::thread::sleep(Duration::from_millis(500));
    let kam = peers::kamailio(
        None,
        dir,
        SUT.parse()?,
        UAS.parse()?,
        ng,
        "replace-origin replace-session-connection",
    );
    r.children.push(spawn(kam, dir, "kamailio")?);
    Ok(r)
}

fn sipp_uas(dir: &Path) -> Result<Running> {
    let mut cmd = Command::new("sipp");
    cmd.args(["-sf", peers::UAS_NO180, "-i", "127.0.0.1", "-p", "5090"])
        .args(["-mi", "127.0.0.1", "-mp", "6000", "-bind_local", "-nostdin"])
        .args(SIPP_LOAD);
    Ok(Running {
        children: vec![spawn(cmd, dir, "sipp-uas")?],
    })
}

/// The totals of a SIPp UAC run, from the last line of its `-trace_stat`
/// file (`uac_stat.csv` in its directory).
#[derive(Debug, Clone, Copy)]
pub struct SippStat {
    pub ok: u64,
    pub failed: u64,
    pub retransmissions: u64,
    pub elapsed_s: f64,
}

/// Reads `dir/uac_stat.csv`.
pub fn sipp_stat(dir: &Path) -> Result<SippStat> {
    let stat =
        std::fs::read_to_string(dir.join("uac_stat.csv")).context("SIPp wrote no statistics")?;
    let mut lines = stat.lines();
    let head: Vec<&str> = lines.next().unwrap_or_default().split(';').collect();
    let last: Vec<&str> = lines.last().unwrap_or_default().split(';').collect();
    let col = |name: &str| -> Result<&str> {
        let i = head
            .iter()
            .position(|h| *h == name)
            .with_context(|| format!("no {name} column in SIPp's statistics"))?;
        Ok(last.get(i).copied().unwrap_or_default())
    };
    let num = |name: &str| -> Result<u64> { Ok(col(name)?.trim().parse().unwrap_or(0)) };
    // "DATE<tab>TIME<tab>EPOCH": the epoch seconds have microseconds,
    // ElapsedTime only whole seconds.
    let epoch = |name: &str| -> Result<f64> {
        Ok(col(name)?
            .rsplit('\t')
            .next()
            .and_then(|e| e.trim().parse().ok())
            .unwrap_or(0.0))
    };
    Ok(SippStat {
        ok: num("SuccessfulCall(C)")?,
        failed: num("FailedCall(C)")?,
        retransmissions: num("Retransmissions(C)")?,
        elapsed_s: (epoch("CurrentTime")? - epoch("StartTime")?).max(0.0),
    })
}

/// SIPp's built-in `uac` offering `calls` calls to `number` at `cps` a
/// second through `target` from 127.0.0.1:`local_port` (media on
/// `media_port`), bounded to `limit_s` seconds, with its statistics and
/// response times written into its working directory.
pub fn sipp_uac_load(
    target: &str,
    number: &str,
    (local_port, media_port): (u16, u16),
    (cps, calls): (u32, u64),
    limit_s: u32,
) -> Command {
    let mut cmd = Command::new("timeout");
    cmd.args(["-s", "INT", "-k", "10", &limit_s.to_string()])
        .args(["sipp", "-sn", "uac", target, "-s", number])
        .args(["-i", "127.0.0.1", "-p", &local_port.to_string()])
        .args(["-bind_local", "-nostdin"])
        .args(["-mi", "127.0.0.1", "-mp", &media_port.to_string()])
        .args(["-r", &cps.to_string(), "-m", &calls.to_string()])
        .args(["-timeout", &format!("{}s", limit_s.saturating_sub(10))])
        .args(["-trace_stat", "-stf", "uac_stat.csv"])
        .args(["-trace_rtt", "-rtt_freq", "1"])
        .args(SIPP_LOAD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}

/// Reads SIPp's statistics and its setup times.
fn results(dir: &Path, system: &str, a: &SipArgs, cpu_ns: u64) -> Result<SipResult> {
    let SippStat {
        ok,
        failed,
        retransmissions,
        elapsed_s: elapsed,
    } = sipp_stat(dir)?;
    let mut h = Histogram::<u64>::new(3)?;
    for f in std::fs::read_dir(dir)?.flatten() {
        let name = f.file_name().to_string_lossy().into_owned();
        if !name.ends_with("_rtt.csv") {
            continue;
        }
        for l in std::fs::read_to_string(f.path())?.lines().skip(1) {
            if let Some(ms) = l
                .split(';')
                .nth(1)
                .and_then(|v| v.trim().parse::<f64>().ok())
            {
                h.record((ms * 1000.0) as u64)?;
            }
        }
    }
    let q = |p: f64| h.value_at_quantile(p) as f64 / 1000.0;
    Ok(SipResult {
        system: system.into(),
        cps_offered: a.cps,
        calls: ok + failed,
        ok,
        failed,
        retransmissions,
        elapsed_s: elapsed,
        cps_achieved: if elapsed > 0.0 {
            ok as f64 / elapsed
        } else {
            0.0
        },
        setup_ms_p50: q(0.5),
        setup_ms_p90: q(0.9),
        setup_ms_p99: q(0.99),
        cpu_ms_per_call: if ok > 0 {
            cpu_ns as f64 / 1e6 / ok as f64
        } else {
            0.0
        },
    })
}

fn run_once(system: &str, a: &SipArgs) -> Result<SipResult> {
    let dir = std::env::temp_dir().join(format!("tg-bench-sip-{system}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let _uas = sipp_uas(&dir)?;
    let sut = match system {
        "tollgate" => tollgate(&dir)?,
        "kamailio" => kamailio(&dir)?,
        other => bail!("unknown system {other:?} (kamailio)"),
    };
    if !peers::answers_options(SUT.parse()?, Duration::from_secs(20)) {
        bail!(
            "{system} did not answer OPTIONS on {SUT}; see {}",
            dir.display()
        );
    }
    let calls = u64::from(a.cps) * u64::from(a.duration);
    let limit = a.duration * 2 + 30;
    let before = sut.cpu_ns();
    let t0 = Instant::now();
    let status = sipp_uac_load(
        SUT,
        "6000",
        (UAC[10..].parse()?, 7000),
        (a.cps, calls),
        limit,
    )
    .current_dir(&dir)
    .status()
    .context("running sipp")?;
    let cpu_ns = sut.cpu_ns().saturating_sub(before);
    drop(sut);
    let r = results(&dir, system, a, cpu_ns)?;
    eprintln!(
        "  {system}: {} ok, {} failed in {:.1} s (sipp exit {}, wall {:.1} s)",
        r.ok,
        r.failed,
        r.elapsed_s,
        status.code().unwrap_or(-1),
        t0.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(r)
}

pub fn main(a: &SipArgs) -> Result<Vec<SipResult>> {
    let mut systems = vec!["tollgate"];
    match a.peer.as_deref() {
        None => {}
        Some("kamailio") => systems.push("kamailio"),
        Some(p) => bail!("--peer {p:?}: the peer measured is `kamailio`"),
    }
    let mut out = Vec::new();
    for s in systems {
        let mut runs = Vec::new();
        for i in 0..a.runs.max(1) {
            eprintln!(
                "{s}: run {} of {} at {} cps for {} s",
                i + 1,
                a.runs.max(1),
                a.cps,
                a.duration
            );
            runs.push(run_once(s, a)?);
        }
        runs.sort_by(|x, y| x.cpu_ms_per_call.total_cmp(&y.cpu_ms_per_call));
        out.push(runs[runs.len() / 2].clone());
    }
    println!(
        "{:<10} {:>7} {:>8} {:>7} {:>7} {:>9} {:>8} {:>8} {:>8} {:>10}",
        "system",
        "offered",
        "achieved",
        "ok",
        "failed",
        "retrans",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "cpu ms/call"
    );
    for r in &out {
        println!(
            "{:<10} {:>7} {:>8.1} {:>7} {:>7} {:>9} {:>8.2} {:>8.2} {:>8.2} {:>10.3}",
            r.system,
            r.cps_offered,
            r.cps_achieved,
            r.ok,
            r.failed,
            r.retransmissions,
            r.setup_ms_p50,
            r.setup_ms_p90,
            r.setup_ms_p99,
            r.cpu_ms_per_call
        );
    }
    if let [t, k] = out.as_slice() {
        if t.cpu_ms_per_call > 0.0 {
            println!(
                "kamailio+rtpengine / tollgate CPU per call: {:.2}x",
                k.cpu_ms_per_call / t.cpu_ms_per_call
            );
        }
    }
    if let Some(p) = &a.out {
        std::fs::write(p, serde_json::to_string_pretty(&out)?)?;
    }
    Ok(out)
}
