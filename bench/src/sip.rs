//! `tollgate bench sip`: call setup through a SIP node, driven by SIPp on
//! loopback the same way for each system. SIPp's UAC offers `--cps` calls a
//! second for `--duration` seconds (INVITE, 200, ACK, BYE at once) through
//! the system to a SIPp UAS. Measured per run, and every run kept: calls
//! completed and failed, retransmissions, achieved calls per second, setup
//! latency percentiles in microseconds from the packets themselves
//! ([`capture`]: the UAC's INVITE to the 200 reaching it, kernel
//! timestamps on `lo`), and the system's CPU time per call (every thread of
//! every process it runs) from before the first INVITE until the node is
//! idle again, so its trailing work (deleting sessions, draining CDRs)
//! counts. Systems: Tollgate's B2BUA (`tollgate run` with `[sip]`, media
//! anchored through its session manager, CDRs spooled with `fsync =
//! always` into SQLite) and, with `--peer kamailio`, Kamailio as a stateful
//! proxy calling rtpengine over NG, which is what Tollgate replaces.

mod capacity;
mod capture;
mod idle;
mod results;
mod sipp;

pub use capacity::{Capacity, CapacityReport, Probe};
pub use results::{SipReport, SipResult, SystemRuns};
pub use sipp::{sipp_stat, sipp_uac_load, SippStat, SIPP_LOAD};

use crate::cpu;
use crate::peers;
use anyhow::{bail, ensure, Context, Result};
use hdrhistogram::Histogram;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tollgate_ng::client::NgClient;

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
    /// Runs per system, interleaved between the systems (so a slow spell
    /// of the host hits both): every run is reported, with the median and
    /// the spread.
    #[arg(long, default_value_t = 1)]
    pub runs: u32,
    /// Search each system's capacity instead: probes of `--duration`
    /// seconds from `--cps` up (doubling, then bisecting), each passing
    /// with 0 failed calls, setup p99 under 20 ms and the offered rate
    /// achieved; reports the highest passing rate.
    #[arg(long)]
    pub capacity: bool,
    /// The highest rate `--capacity` probes.
    #[arg(long, default_value_t = 4000)]
    pub max_cps: u32,
    /// A `--capacity` probe fails with its setup p99 at or over this.
    #[arg(long, default_value_t = 20)]
    pub p99_limit_ms: u32,
    /// Write the results as JSON here.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// SIP port of the system under test on 127.0.0.1; SIPp's UAC uses
    /// this port +10 and its UAS +30 (their media ports +50 and +40).
    #[arg(long, default_value_t = 5060)]
    pub sip_port: u16,
    /// NG port on 127.0.0.1 of the media relay (Tollgate's own, or rtpengine's).
    #[arg(long, default_value_t = 22230)]
    pub ng_port: u16,
    /// Relay ports of the system under test, MIN-MAX.
    #[arg(long, default_value = "30000-60000", value_parser = port_range)]
    pub relay_ports: (u16, u16),
    /// Seconds the node may take after the load to go idle (no session
    /// left, CDRs drained, CPU quiet) before the run is refused.
    #[arg(long, default_value_t = 60)]
    pub idle_timeout: u32,
}

fn port_range(s: &str) -> Result<(u16, u16), String> {
    let (min, max) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?}: expected MIN-MAX, e.g. 30000-60000"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .map_err(|e| format!("{s:?}: {p:?} is not a port: {e}"))
    };
    let (min, max) = (port(min)?, port(max)?);
    if min < 1024 || min + 3 > max {
        return Err(format!(
            "{s:?}: the range must start above 1023 and hold at least two RTP/RTCP pairs"
        ));
    }
    Ok((min, max))
}

/// Where everything listens, all on 127.0.0.1.
#[derive(Debug, Clone, Copy)]
struct Ports {
    sut: SocketAddr,
    uac: u16,
    uac_media: u16,
    uas: SocketAddr,
    uas_media: u16,
    ng: SocketAddr,
    relay: (u16, u16),
}

impl Ports {
    fn of(a: &SipArgs) -> Result<Ports> {
        ensure!(
            (1024..=65000).contains(&a.sip_port),
            "--sip-port {}: must be 1024-65000 (SIPp uses the ports up to +53)",
            a.sip_port
        );
        let at = |port: u16| SocketAddr::from(([127, 0, 0, 1], port));
        Ok(Ports {
            sut: at(a.sip_port),
            uac: a.sip_port + 10,
            uac_media: a.sip_port + 50,
            uas: at(a.sip_port + 30),
            uas_media: a.sip_port + 40,
            ng: at(a.ng_port),
            relay: a.relay_ports,
        })
    }
}

/// The processes of a system under test, terminated on drop.
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
        cpu::tree(&self.children.iter().map(Child::id).collect::<Vec<_>>())
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

/// `tollgate run` with the B2BUA routing every call to the UAS; sessions
/// are deleted at once after BYE, as rtpengine is run (`--delete-delay=0`).
fn tollgate(dir: &Path, p: &Ports) -> Result<Running> {
    let cfg = dir.join("tollgate.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"[dataplane]
backend = "socket"
control_socket = "{d}/dp.sock"
[media]
port_min = {min}
port_max = {max}
delete_delay_secs = 0
[ng]
listen = "{ng}"
[sip]
listen = "{sut}"
max_cps = 100000
max_calls = 100000
# SIPp is one source at the whole offered rate: no per-source limit.
[sip.flood]
max_requests_per_sec = 0
[[sip.routes]]
match = "*"
target = "sip:{{user}}@{uas}"
[cdr]
spool_dir = "{d}/spool"
sinks = [{{ kind = "sqlite", url = "sqlite://{d}/cdr.sqlite" }}]
[http]
listen = "127.0.0.1:0"
"#,
            d = dir.display(),
            min = p.relay.0,
            max = p.relay.1,
            ng = p.ng,
            sut = p.sut,
            uas = p.uas,
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

/// Whether an NG relay answers `ping` at `ng` within `within`.
fn ng_answers(ng: SocketAddr, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(mut c) = NgClient::new(ng) {
            c.timeout = Duration::from_millis(200);
            c.attempts = 1;
            if c.command("ping", []).is_ok() {
                return true;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn kamailio(dir: &Path, p: &Ports) -> Result<Running> {
    let rtpe = spawn(peers::rtpengine(dir, p.ng, p.relay), dir, "rtpengine")?;
    let mut r = Running {
        children: vec![rtpe],
    };
    ensure!(
        ng_answers(p.ng, Duration::from_secs(20)),
        "rtpengine did not answer NG ping at {}; see {}",
        p.ng,
        dir.join("rtpengine.log").display()
    );
    let kam = peers::kamailio(
        None,
        dir,
        p.sut,
        p.uas,
        p.ng,
        "replace-origin replace-session-connection",
    );
    r.children.push(spawn(kam, dir, "kamailio")?);
    Ok(r)
}

fn sipp_uas(dir: &Path, p: &Ports) -> Result<Running> {
    let mut cmd = Command::new("sipp");
    cmd.args(["-sf", peers::UAS_NO180, "-i", "127.0.0.1"])
        .args(["-p", &p.uas.port().to_string()])
        .args(["-mi", "127.0.0.1", "-mp", &p.uas_media.to_string()])
        .args(["-bind_local", "-nostdin"])
        .args(SIPP_LOAD);
    Ok(Running {
        children: vec![spawn(cmd, dir, "sipp-uas")?],
    })
}

/// Percentile `q` of the setup times, in microseconds.
fn setup_us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// One run: SIPp's totals, the captured setup times, and the CPU window.
struct Measured {
    offered: u64,
    setups: capture::Setups,
    cpu_ns: u64,
    trailing_ns: u64,
    idle_after: Duration,
}

/// Checks what the figures rest on and turns them into a result.
fn result(system: &str, run: u32, a: &SipArgs, stat: SippStat, m: Measured) -> Result<SipResult> {
    let s = &m.setups;
    let measured = s.setup_ns.len() as u64;
    ensure!(
        s.kernel_drops != u64::MAX,
        "could not read the capture's drop counter: setup latency unverified"
    );
    ensure!(
        measured >= stat.ok,
        "the capture of the {system} run matched INVITE and 200 of {measured} calls, SIPp completed {} \
         ({} INVITEs seen, {} datagrams unusable, {} dropped by the kernel): setup latency \
         would rest on part of the calls",
        stat.ok,
        s.invites,
        s.unusable,
        s.kernel_drops
    );
    let mut h = Histogram::<u64>::new(3)?;
    for ns in &s.setup_ns {
        h.record(*ns)?;
    }
    let per_call = |ns: u64| ns as f64 / 1e6 / stat.ok as f64;
    Ok(SipResult {
        system: system.into(),
        run,
        cps_offered: a.cps,
        offered: m.offered,
        ok: stat.ok,
        failed: stat.failed,
        retransmissions: stat.retransmissions,
        elapsed_s: stat.elapsed_s,
        cps_achieved: if stat.elapsed_s > 0.0 {
            stat.ok as f64 / stat.elapsed_s
        } else {
            0.0
        },
        setup_measured: measured,
        setup_us_p50: setup_us(&h, 0.5),
        setup_us_p90: setup_us(&h, 0.9),
        setup_us_p99: setup_us(&h, 0.99),
        setup_us_max: h.max() as f64 / 1000.0,
        capture_unusable: s.unusable,
        capture_drops: s.kernel_drops,
        cpu_ms: m.cpu_ns as f64 / 1e6,
        cpu_ms_per_call: per_call(m.cpu_ns),
        trailing_cpu_ms: m.trailing_ns as f64 / 1e6,
        idle_after_s: m.idle_after.as_secs_f64(),
    })
}

fn run_once(system: &str, run: u32, a: &SipArgs, p: &Ports) -> Result<SipResult> {
    let dir = std::env::temp_dir().join(format!("tg-bench-sip-{system}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let _uas = sipp_uas(&dir, p)?;
    let sut = match system {
        "tollgate" => tollgate(&dir, p)?,
        "kamailio" => kamailio(&dir, p)?,
        other => bail!("unknown system {other:?} (kamailio)"),
    };
    if !peers::answers_options(p.sut, Duration::from_secs(20)) {
        bail!(
            "{system} did not answer OPTIONS on {}; see {}",
            p.sut,
            dir.display()
        );
    }
    let offered = u64::from(a.cps) * u64::from(a.duration);
    let limit = a.duration * 2 + 30;
    let capture = capture::Capture::start(p.uac)?;
    let before = sut.cpu_ns();
    let status = sipp_uac_load(
        &p.sut.to_string(),
        "6000",
        (p.uac, p.uac_media),
        (a.cps, offered),
        limit,
    )
    .current_dir(&dir)
    .status()
    .context("running sipp")?;
    let sipp_done = sut.cpu_ns();
    let idle_after = idle::wait_idle(
        system,
        || sut.cpu_ns(),
        (p.ng, &dir),
        Duration::from_secs(a.idle_timeout.into()),
    )?;
    let after = sut.cpu_ns();
    let setups = capture.stop();
    drop(sut);
    let stat = sipp_stat(&dir)?;
    eprintln!(
        "  {system}: {} ok, {} failed in {:.1} s (sipp exit {}), idle {:.1} s later",
        stat.ok,
        stat.failed,
        stat.elapsed_s,
        status.code().unwrap_or(-1),
        idle_after.as_secs_f64()
    );
    ensure!(
        stat.ok > 0,
        "SIPp completed none of the {offered} calls offered to {system} ({} failed); \
         its logs and the system's are in {}",
        stat.failed,
        dir.display()
    );
    let measured = Measured {
        offered,
        setups,
        cpu_ns: after.saturating_sub(before),
        trailing_ns: after.saturating_sub(sipp_done),
        idle_after,
    };
    let r = result(system, run, a, stat, measured)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(r)
}

pub fn main(a: &SipArgs) -> Result<()> {
    let mut systems = vec!["tollgate"];
    match a.peer.as_deref() {
        None => {}
        Some("kamailio") => systems.push("kamailio"),
        Some(p) => bail!("--peer {p:?}: the peer measured is `kamailio`"),
    }
    let ports = Ports::of(a)?;
    let stamp = crate::stamp::stamp()
        .pinned("none: SIPp, the system under test and the capture share every core");
    let json = if a.capacity {
        let report = capacities(&systems, a, &ports, stamp)?;
        report.print();
        serde_json::to_string_pretty(&report)?
    } else {
        let report = fixed_rate(&systems, a, &ports, stamp)?;
        report.print();
        serde_json::to_string_pretty(&report)?
    };
    if let Some(path) = &a.out {
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// `--runs` runs of each system at `--cps`, interleaved.
fn fixed_rate(
    systems: &[&str],
    a: &SipArgs,
    ports: &Ports,
    stamp: crate::stamp::Stamp,
) -> Result<SipReport> {
    let runs = a.runs.max(1);
    let mut done: Vec<Vec<SipResult>> = vec![Vec::new(); systems.len()];
    for i in 1..=runs {
        for (s, runs_of) in systems.iter().zip(&mut done) {
            eprintln!(
                "{s}: run {i} of {runs} at {} cps for {} s",
                a.cps, a.duration
            );
            runs_of.push(run_once(s, i, a, ports)?);
        }
    }
    Ok(SipReport {
        stamp,
        cps: a.cps,
        duration_s: a.duration,
        runs_per_system: runs,
        setup_latency: results::SETUP_LATENCY.into(),
        systems: systems
            .iter()
            .zip(done)
            .map(|(s, runs)| SystemRuns::of(s, runs))
            .collect(),
    })
}

/// `--capacity`: each system's search in turn.
fn capacities(
    systems: &[&str],
    a: &SipArgs,
    ports: &Ports,
    stamp: crate::stamp::Stamp,
) -> Result<CapacityReport> {
    let mut out = Vec::new();
    for s in systems {
        let mut search = capacity::Search::new(a.cps, a.max_cps);
        let mut probes = Vec::new();
        while let Some(cps) = search.next() {
            eprintln!("{s}: capacity probe at {cps} cps for {} s", a.duration);
            let at = SipArgs { cps, ..a.clone() };
            let probe = match run_once(s, probes.len() as u32 + 1, &at, ports) {
                Ok(run) => Probe::judge(run, f64::from(a.p99_limit_ms) * 1000.0),
                // The first probe is the least load: a refusal there is the
                // set-up's, not the system's limit.
                Err(e) if probes.is_empty() => return Err(e),
                Err(e) => {
                    eprintln!("  {s}: probe at {cps} cps refused: {e:#}");
                    Probe::refused(cps, &e)
                }
            };
            search.record(cps, probe.passed);
            probes.push(probe);
        }
        out.push(Capacity {
            system: s.to_string(),
            cps: search.found(),
            probes,
        });
    }
    Ok(CapacityReport {
        stamp,
        duration_s: a.duration,
        max_cps: a.max_cps,
        criteria: CapacityReport::criteria(a.p99_limit_ms),
        capacity: out,
    })
}
