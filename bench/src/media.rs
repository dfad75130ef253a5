//! `tollgate bench media`: how many concurrent calls a media relay carries
//! per core, and at what CPU per packet, for Tollgate (XDP or socket
//! backend) and rtpengine, measured the same way in one run.
//!
//! Each run builds a fresh caller/relay/callee topology (threaded NAPI on the
//! relay's veths, pinned with the relay to the relay cores), starts the
//! system under test there, sets the calls up over NG with real SDP, sends
//! G.711 both ways for every call from a pinned generator core, and reads
//! the relay's CPU time and its cores' busy time around the measured
//! interval. A run whose accounting preconditions fail ([`crate::guard`])
//! is kept in the report with its reasons and no figure, and the command
//! fails.

use crate::ceiling::Ceiling;
use crate::cpu::{self, Counted};
use crate::guard::{self, Evidence, FloorCounts, Reading, Refusal, Usage};
use crate::measure::TrafficResult;
use crate::report::{
    self, Capacity, CountedRecord, CrossCheck, Report, RunRecord, Spread, Summary,
};
use crate::sut::{Sut, System, NG};
use crate::topology::{sh, unique, Bpffs, Topology};
use crate::traffic::{self, CallTarget};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_ng::client::NgClient;
use tollgate_ng::Value;
use tollgate_sip::sdp::Sdp;

#[derive(Debug, clap::Args)]
pub struct MediaArgs {
    /// Tollgate backend to measure: xdp, afxdp (XDP with a null pipeline
    /// stage on every flow, so media runs through the AF_XDP workers), dpdk
    /// (a `tollgate` built with `--features dpdk`) or socket.
    #[arg(long, default_value = "xdp")]
    pub backend: String,
    /// Measure this peer instead of Tollgate (rtpengine).
    #[arg(long)]
    pub peer: Option<String>,
    /// Concurrent calls (each: 50 pps each way of 172-byte G.711 RTP).
    #[arg(long, default_value_t = 100)]
    pub calls: usize,
    /// Find the most calls held within --max-loss-pct and --max-p99-ms.
    #[arg(long)]
    pub ramp: bool,
    /// Seconds of media per run.
    #[arg(long, default_value_t = 10)]
    pub duration: u64,
    /// Codec of the generated media (G.711 µ-law only).
    #[arg(long, default_value = "pcmu")]
    pub codec: String,
    /// Cores for the relay (the last ones); the generator gets the rest.
    #[arg(long, default_value_t = 1)]
    pub relay_cores: usize,
    /// Systems to run in turn, interleaved over --rounds: e.g. xdp,socket,rtpengine.
    #[arg(long)]
    pub compare: Option<String>,
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[arg(long, default_value_t = 0.1)]
    pub max_loss_pct: f64,
    #[arg(long, default_value_t = 1.0)]
    pub max_p99_ms: f64,
    /// Upper bound for --ramp (at most 20000: the relay port range).
    #[arg(long, default_value_t = 20_000)]
    pub max_calls: usize,
    /// Where the report (JSON, SVG, PNG) goes.
    #[arg(long, default_value = "bench-out")]
    pub out: PathBuf,
    /// Test only: leave threaded NAPI off on the relay's veths, a broken
    /// setup the benchmark must refuse (its tests check that it does).
    #[arg(long, hide = true)]
    pub break_threaded_napi: bool,
    /// Test only: load the redirect-only floor passing every packet to the
    /// kernel, a floor the benchmark must refuse.
    #[arg(long, hide = true)]
    pub break_floor: bool,
}

/// The relay's cores and the generator's, disjoint.
pub struct Cores {
    pub relay: Vec<usize>,
    pub generator: Vec<usize>,
}

fn cores(relay: usize) -> Result<Cores> {
    let n = tollgate_dataplane::host_cores();
    if relay == 0 || relay >= n {
        bail!("--relay-cores {relay}: this host has {n} cores and the generator needs at least one of them");
    }
    Ok(Cores {
        relay: (n - relay..n).collect(),
        generator: (0..n - relay).collect(),
    })
}

/// Sets up `n` calls over NG; returns where each call's media goes.
fn setup_calls(ng: &mut NgClient, n: usize, bar: &ProgressBar) -> Result<Vec<CallTarget>> {
    let sdp = |ip: &str| {
        format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=bench\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
    };
    let direction = Value::List(vec![Value::str("caller"), Value::str("callee")]);
    let port = |reply: &Value| -> Result<u16> {
        let s = reply
            .get("sdp")
            .and_then(Value::as_str)
            .context("reply without SDP")?;
        Ok(Sdp::parse(s)?
            .media
            .first()
            .context("reply SDP without media")?
            .port())
    };
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("bench-{i}");
        let offer = ng
            .command(
                "offer",
                [
                    ("call-id", Value::str(&id)),
                    ("from-tag", Value::str(&format!("a{i}"))),
                    ("sdp", Value::str(&sdp("10.201.1.2"))),
                    ("direction", direction.clone()),
                    (
                        "replace",
                        Value::List(vec![Value::str("origin"), Value::str("session-connection")]),
                    ),
                ],
            )
            .with_context(|| format!("NG offer for call {i}"))?;
        let answer = ng
            .command(
                "answer",
                [
                    ("call-id", Value::str(&id)),
                    ("from-tag", Value::str(&format!("a{i}"))),
                    ("to-tag", Value::str(&format!("b{i}"))),
                    ("sdp", Value::str(&sdp("10.201.2.2"))),
                ],
            )
            .with_context(|| format!("NG answer for call {i}"))?;
        out.push(CallTarget {
            to_relay_a: SocketAddr::from(([10, 201, 1, 1], port(&answer)?)),
            to_relay_b: SocketAddr::from(([10, 201, 2, 1], port(&offer)?)),
        });
        bar.inc(1);
    }
    Ok(out)
}

fn bar(len: u64, what: &str) -> ProgressBar {
    let b = ProgressBar::new(len);
    b.set_style(
        ProgressStyle::with_template("{spinner} {msg:<34} [{bar:30}] {pos}/{len} {elapsed}")
            .expect("template")
            .progress_chars("=> "),
    );
    b.set_message(what.to_string());
    b
}

/// What runs in the relay namespace: a process driven over NG, or the
/// redirect-only floor.
enum Relay {
    Process(Sut),
    Floor(Ceiling),
}

impl Relay {
    fn counted(&self) -> &Counted {
        match self {
            Relay::Process(s) => &s.counted,
            Relay::Floor(f) => &f.counted,
        }
    }
}

/// Threaded NAPI (it needs GRO or XDP first) on `ifname` in `ns`.
fn thread_napi(ns: &str, ifname: &str) {
    sh(&[
        "ip", "netns", "exec", ns, "ethtool", "-K", ifname, "gro", "on",
    ]);
    let enable = format!("echo 1 > /sys/class/net/{ifname}/threaded");
    sh(&["ip", "netns", "exec", ns, "sh", "-c", &enable]);
}

/// Threaded NAPI on the end hosts' veths, pinned to the generator's cores:
/// their receive work is the end hosts', not the relay's. Without it, a
/// packet the relay sends into a veth is received there in softirq on the
/// relay's core, charged to whichever relay task sent it. They run at the
/// lowest real-time priority: the generator keeps its core busy, and a
/// receive thread waiting behind it for its time slice would add
/// milliseconds to every latency measured.
fn thread_end_hosts(topo: &Topology, c: &Cores) -> Result<Vec<cpu::Task>> {
    thread_napi(&topo.caller, &topo.ca);
    thread_napi(&topo.callee, &topo.eb);
    let found = cpu::pin_napi_threads(&[&topo.ca, &topo.eb], &c.generator)?;
    for t in &found {
        cpu::realtime(t.pid)
            .with_context(|| format!("real-time priority for {} (pid {})", t.name, t.pid))?;
    }
    if found.len() < 2 {
        bail!(
            "threaded NAPI on the end hosts' veths {} and {}: found only {found:?}",
            topo.ca,
            topo.eb
        );
    }
    Ok(found)
}

/// Starts `system` in `topo` and sets `calls` up; returns where the media goes.
fn start(
    system: System,
    calls: usize,
    topo: &Topology,
    dir: &Path,
    bpf: Option<&Bpffs>,
    a: &MediaArgs,
    c: &Cores,
) -> Result<(Relay, Option<NgClient>, Vec<CallTarget>)> {
    if system == System::Ceiling {
        // No calls to set up: packets go to the relay's addresses unchanged.
        let targets = (0..calls as u16)
            .map(|i| CallTarget {
                to_relay_a: SocketAddr::from(([10, 201, 1, 1], 20000 + 2 * i)),
                to_relay_b: SocketAddr::from(([10, 201, 2, 1], 20000 + 2 * i)),
            })
            .collect();
        let floor = Ceiling::attach(topo, &c.relay, a.break_floor)?;
        return Ok((Relay::Floor(floor), None, targets));
    }
    let sut = Sut::start(system, topo, &c.relay, dir, bpf.map(|b| b.dir.as_path()))?;
    let ng_addr: SocketAddr = NG.parse().expect("literal");
    let mut ng = Topology::run_in(&topo.relay, move || NgClient::new(ng_addr))?;
    let b = bar(calls as u64, &format!("{}: NG call setup", system.name()));
    let targets = setup_calls(&mut ng, calls, &b)?;
    b.finish_and_clear();
    Ok((Relay::Process(sut), Some(ng), targets))
}

/// What a run measured, and what its figures rest on.
struct Measured {
    traffic: TrafficResult,
    wall: Duration,
    usage: Result<Usage, Refusal>,
    floor: Option<Result<FloorCounts, Refusal>>,
    /// The relay's processes counted, and those there at the end.
    processes: Option<(Vec<u32>, Vec<u32>)>,
}

/// Sends the media for `targets` from the generator cores and reads the
/// relay's counters around it.
fn measure(
    relay: &Relay,
    topo: &Topology,
    targets: &[CallTarget],
    name: String,
    duration: Duration,
    c: &Cores,
    stop: &AtomicBool,
) -> Result<Measured> {
    let caller = Topology::run_in(&topo.caller, || UdpSocket::bind("10.201.1.2:40000"))?;
    let callee = Topology::run_in(&topo.callee, || UdpSocket::bind("10.201.2.2:40000"))?;
    traffic::prepare(&caller)?;
    traffic::prepare(&callee)?;
    let total = (duration.as_millis() / 20) as u64 * targets.len() as u64 * 2;
    let progress = Arc::new(AtomicU64::new(0));
    let b = bar(total, &name);
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (p, b, d) = (progress.clone(), b.clone(), done.clone());
        std::thread::spawn(move || {
            while !d.load(Ordering::Relaxed) {
                b.set_position(p.load(Ordering::Relaxed));
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let floor_counts = || match relay {
        Relay::Floor(f) => f.counts().map(Some),
        Relay::Process(_) => Ok(None),
    };
    let floor0 = floor_counts()?;
    let start = Reading::take(relay.counted(), &c.relay);
    let t0 = Instant::now();
    let traffic = std::thread::scope(|s| {
        s.spawn(|| -> Result<TrafficResult> {
            cpu::pin(0, &c.generator).context("pinning the generator")?;
            Ok(traffic::run(
                &caller, &callee, targets, duration, stop, &progress,
            ))
        })
        .join()
        .expect("generator thread")
    });
    let end = Reading::take(relay.counted(), &c.relay);
    let wall = t0.elapsed();
    done.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    b.finish_and_clear();
    let (traffic, floor1) = (traffic?, floor_counts()?);
    Ok(Measured {
        traffic,
        wall,
        usage: start.and_then(|s| s.until(&end?)),
        floor: floor0.zip(floor1).map(|(a, b)| a.until(&b)),
        processes: match relay {
            Relay::Process(s) => Some((
                relay.counted().processes.iter().map(|t| t.pid).collect(),
                s.processes(),
            )),
            Relay::Floor(_) => None,
        },
    })
}

/// Tears the calls down over NG as a real proxy would; stops at Ctrl-C or
/// at the first failure (the relay is about to be stopped anyway).
fn teardown(ng: &mut NgClient, calls: usize, stop: &AtomicBool) {
    for i in 0..calls {
        let id = format!("bench-{i}");
        if stop.load(Ordering::Relaxed)
            || ng
                .command("delete", [("call-id", Value::str(&id))])
                .is_err()
        {
            break;
        }
    }
}

/// One run of `system` with `calls` for `a.duration`.
pub fn run_once(
    system: System,
    calls: usize,
    a: &MediaArgs,
    c: &Cores,
    stop: &AtomicBool,
) -> Result<RunRecord> {
    // Interface names unique to this run: the NAPI threads are found by them.
    let topo = Topology::with_prefix(&unique("b"));
    // Threaded NAPI on the relay's veths, so the relay's receive work runs
    // in threads that can be pinned and counted.
    if !a.break_threaded_napi {
        thread_napi(&topo.relay, &topo.ra);
        thread_napi(&topo.relay, &topo.rb);
    }
    let end_hosts = thread_end_hosts(&topo, c)?;
    let bpf = system.uses_xdp().then(Bpffs::new);
    let dir = std::env::temp_dir().join(unique("tgbench"));
    std::fs::create_dir_all(&dir)?;
    let (relay, mut ng, targets) = start(system, calls, &topo, &dir, bpf.as_ref(), a, c)?;
    let name = format!("{}: {} calls", system.name(), calls);
    let duration = Duration::from_secs(a.duration);
    let m = measure(&relay, &topo, &targets, name, duration, c, stop)?;
    if let Some(ng) = ng.as_mut() {
        teardown(ng, calls, stop);
    }
    let counted = relay.counted().clone();
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(record(system, calls, c, &topo, counted, end_hosts, m))
}

/// The run's record: its raw counts, and its figures unless a precondition
/// failed; with the tasks counted and the end hosts' NAPI threads.
fn record(
    system: System,
    calls: usize,
    c: &Cores,
    topo: &Topology,
    counted: Counted,
    end_hosts: Vec<cpu::Task>,
    m: Measured,
) -> RunRecord {
    let offered_pps = calls as u64 * 100;
    let floor = m.floor.as_ref().and_then(|f| f.as_ref().ok().copied());
    // The floor's packets are forwarded but, unchanged, not delivered.
    let relayed = match floor {
        Some(f) => f.redirected,
        None => m.traffic.received,
    };
    let refused = guard::check(&Evidence {
        devices: [&topo.ra, &topo.rb],
        counted: &counted,
        offered_pps,
        traffic: &m.traffic,
        usage: m.usage.clone(),
        wall_ns: m.wall.as_nanos() as u64,
        relay_cores: &c.relay,
        processes: m.processes,
        relayed,
        floor: m.floor,
    });
    let core_ns = m.wall.as_nanos() as f64 * c.relay.len() as f64;
    let usage = m.usage.ok();
    let stands = refused.is_empty();
    let counted_ns = usage.map(|u| u.counted_ns());
    RunRecord {
        system: system.name(),
        calls,
        duration_s: m.wall.as_secs_f64(),
        offered_pps,
        loss_pct: if m.traffic.sent == 0 {
            0.0
        } else {
            m.traffic.lost as f64 * 100.0 / m.traffic.sent as f64
        },
        refused: refused.iter().map(ToString::to_string).collect(),
        relay_process_cpu_ns: usage.map(|u| u.processes_ns),
        relay_napi_cpu_ns: usage.map(|u| u.napi_ns),
        cpu_ns_per_packet: counted_ns
            .filter(|_| stands)
            .map(|n| n as f64 / relayed as f64),
        relay_cpu_pct: counted_ns
            .filter(|_| stands)
            .map(|n| n as f64 * 100.0 / core_ns),
        cross_check: usage.map(|u| CrossCheck {
            cores_busy_ns: u.cores_busy_ns,
            counted_ns: u.counted_ns(),
            uncounted_ns: u.cores_busy_ns as i64 - u.counted_ns() as i64,
            cores_busy_pct: u.cores_busy_ns as f64 * 100.0 / core_ns,
            uncounted_pct: (u.cores_busy_ns as f64 - u.counted_ns() as f64) * 100.0 / core_ns,
            tolerance_ns: guard::tick_tolerance_ns(
                m.wall.as_nanos() as u64,
                c.relay.len(),
                u.cores_busy_ns,
            ),
        }),
        floor,
        relay_cores: c.relay.clone(),
        generator_cores: c.generator.clone(),
        end_host_napi_threads: end_hosts,
        counted: CountedRecord {
            what: if system == System::Ceiling {
                "the relay veths' threaded-NAPI kthreads running the redirect-only program, per packet it redirected (its own count; its packets keep their addresses and reach no socket, so the generator receives none)".into()
            } else {
                "every thread (exited ones included) of the relay's processes plus the relay veths' threaded-NAPI kthreads (receive path and XDP), from their CPU clocks, per packet delivered; not counted: the end hosts' receive work (their veths' threaded NAPI, on the generator cores); whatever else ran on the relay cores is the cross-check's uncounted time".into()
            },
            tasks: counted,
        },
        traffic: m.traffic,
    }
}

fn within(r: &RunRecord, a: &MediaArgs) -> bool {
    r.loss_pct < a.max_loss_pct && (r.traffic.latency_us.p99 as f64) < a.max_p99_ms * 1000.0
}

/// Largest call count held within the bounds: doubling, then bisection.
/// A refused run ends the search: what it found so far is a lower bound.
fn ramp(
    system: System,
    a: &MediaArgs,
    c: &Cores,
    stop: &AtomicBool,
    runs: &mut Vec<RunRecord>,
) -> Result<Capacity> {
    let (mut good, mut bad) = (0usize, None::<usize>);
    let mut stopped = Vec::new();
    let mut step = |n: usize, runs: &mut Vec<RunRecord>| -> Result<Option<bool>> {
        let r = run_once(system, n, a, c, stop)?;
        report::print_table(std::slice::from_ref(&r));
        let verdict = r.refused.is_empty().then(|| within(&r, a));
        if verdict.is_none() {
            stopped = r.refused.clone();
        }
        runs.push(r);
        Ok(verdict)
    };
    let mut n = a.calls.max(10);
    while bad.is_none()
        && n <= a.max_calls.min(crate::sut::MAX_CALLS)
        && !stop.load(Ordering::Relaxed)
    {
        match step(n, runs)? {
            None => break,
            Some(true) => {
                good = n;
                n *= 2;
            }
            Some(false) => bad = Some(n),
        }
    }
    if let Some(mut hi) = bad {
        let mut lo = good;
        while hi - lo > (hi / 20).max(5) && !stop.load(Ordering::Relaxed) {
            let mid = (lo + hi) / 2;
            match step(mid, runs)? {
                None => break,
                Some(true) => lo = mid,
                Some(false) => hi = mid,
            }
        }
        good = lo;
    }
    Ok(Capacity {
        system: system.name().into(),
        calls: good,
        stopped,
    })
}

/// Per system: the spread of its figures over the runs that stand.
fn summarise(systems: &[System], runs: &[RunRecord]) -> Vec<Summary> {
    let mut out: Vec<Summary> = Vec::new();
    let mut base = None;
    for (i, s) in systems.iter().enumerate() {
        let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.system == s.name()).collect();
        let stand: Vec<&RunRecord> = mine
            .iter()
            .copied()
            .filter(|r| r.refused.is_empty())
            .collect();
        let spread = |f: fn(&RunRecord) -> Option<f64>| {
            Spread::of(stand.iter().filter_map(|r| f(r)).collect())
        };
        let (Some(cpu), Some(p99), Some(loss)) = (
            spread(|r| r.cpu_ns_per_packet),
            spread(|r| Some(r.traffic.latency_us.p99 as f64)),
            spread(|r| Some(r.loss_pct)),
        ) else {
            continue;
        };
        if i == 0 {
            base = Some(cpu.median);
        }
        out.push(Summary {
            system: s.name().into(),
            runs: stand.len(),
            refused_runs: mine.len() - stand.len(),
            cpu_ns_per_packet: cpu,
            p99_us: p99,
            loss_pct: loss,
            cpu_per_packet_ratio: base.filter(|b| *b > 0.0).map(|b| cpu.median / b),
            calls_per_core_at_this_cost: if cpu.median > 0.0 {
                1e9 / cpu.median / 100.0
            } else {
                0.0
            },
        });
    }
    out
}

fn print_summary(summary: &[Summary], rounds: usize, base: System) {
    println!(
        "\nmedians (min-max) over {rounds} round(s), refused runs left out; ratios against {}:",
        base.name()
    );
    for s in summary {
        let (c, p, l) = (s.cpu_ns_per_packet, s.p99_us, s.loss_pct);
        println!(
            "  {:<16} CPU/packet {:>6.0} ns ({:.0}-{:.0})  ratio {}  p99 {:.0} µs ({:.0}-{:.0})  loss {:.3} % ({:.3}-{:.3})  (~{:.0} calls per core at this cost){}",
            s.system,
            c.median,
            c.min,
            c.max,
            s.cpu_per_packet_ratio
                .map_or("  n/a".into(), |r| format!("{r:>5.2}")),
            p.median,
            p.min,
            p.max,
            l.median,
            l.min,
            l.max,
            s.calls_per_core_at_this_cost,
            if s.refused_runs > 0 {
                format!("  [{} refused]", s.refused_runs)
            } else {
                String::new()
            }
        );
    }
}

fn systems(a: &MediaArgs) -> Result<Vec<System>> {
    Ok(match (&a.compare, &a.peer) {
        (Some(list), _) => list
            .split(',')
            .map(|s| System::parse(s.trim()))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?,
        (None, Some(p)) if p == "rtpengine" => vec![System::Rtpengine],
        (None, Some(p)) => bail!("--peer {p}: only rtpengine is supported"),
        (None, None) => vec![System::parse(&a.backend).map_err(anyhow::Error::msg)?],
    })
}

/// `--ramp`: the capacity search for each system in turn.
fn ramps(
    systems: &[System],
    a: &MediaArgs,
    c: &Cores,
    stop: &AtomicBool,
    runs: &mut Vec<RunRecord>,
) -> Result<Vec<Capacity>> {
    if systems.contains(&System::Ceiling) {
        bail!("the ceiling delivers no packets, so it has no capacity to search: use it with --compare or at fixed --calls");
    }
    let mut out = Vec::new();
    for s in systems {
        let found = ramp(*s, a, c, stop, runs)?;
        if found.stopped.is_empty() {
            println!(
                "{}: {} calls held (< {}% loss, p99 < {} ms)",
                s.name(),
                found.calls,
                a.max_loss_pct,
                a.max_p99_ms
            );
        } else {
            println!(
                "{}: search stopped by a refused run; {} calls held before it (a lower bound)",
                s.name(),
                found.calls
            );
        }
        out.push(found);
    }
    Ok(out)
}

/// Fixed `--calls`: every system in turn, interleaved over the rounds.
fn rounds(
    systems: &[System],
    a: &MediaArgs,
    c: &Cores,
    stop: &AtomicBool,
) -> Result<Vec<RunRecord>> {
    let rounds = if a.compare.is_some() {
        a.rounds.max(1)
    } else {
        1
    };
    let mut runs = Vec::new();
    for _ in 0..rounds {
        for s in systems {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            let r = run_once(*s, a.calls, a, c, stop)?;
            if systems.len() == 1 {
                report::print_table(std::slice::from_ref(&r));
            }
            runs.push(r);
        }
    }
    Ok(runs)
}

/// What the reader of the figures should know, and Tollgate's cost as a
/// ratio of the floor when both stand.
fn notes(runs: &[RunRecord], summary: &[Summary]) -> Vec<String> {
    let mut notes =
        vec!["machine shared and noisy: compare medians and ratios, not single runs".to_string()];
    if runs.iter().any(|r| r.traffic.late_sends > 0) {
        notes.push("the generator fell behind its schedule at times in some runs (late_sends > 0), though it achieved the offered rate overall".into());
    }
    if runs.iter().any(|r| {
        r.refused.is_empty()
            && r.cross_check
                .as_ref()
                .is_some_and(|x| x.uncounted_pct > CONTENDED_PCT)
    }) {
        notes.push(format!("in some runs over {CONTENDED_PCT} % of the relay cores' time went to work not counted (UNCNT %: other processes, ksoftirqd, interrupts): the relay competed for its cores, which inflates its cost"));
    }
    if runs.iter().any(|r| {
        r.cross_check
            .as_ref()
            .is_some_and(|x| x.uncounted_ns < -(x.tolerance_ns as i64))
    }) {
        notes.push("in some runs the counted CPU exceeds the relay cores' busy time in /proc/stat (negative UNCNT %) by more than even tick sampling explains: /proc/stat samples busy time at the tick, and a tickless core woken for every packet is mostly idle at the tick, so it under-counts; the task clocks counted are exact, and the tasks' pinning to the relay cores is checked".into());
    }
    if runs.iter().any(|r| r.system == "tollgate-xdp") {
        notes.push("on veth, native XDP still pays an skb-to-xdp_buff conversion and the redirect into the peer veth; real NICs gain more".into());
    }
    let ratios = [
        (
            System::Xdp,
            System::Ceiling,
            "the host's redirect-only XDP floor",
        ),
        (
            System::Afxdp,
            System::Socket,
            "the socket backend, relaying through the pipeline with a null stage",
        ),
        (System::Afxdp, System::Rtpengine, "rtpengine"),
        (System::Dpdk, System::Socket, "the socket backend"),
        (System::Dpdk, System::Rtpengine, "rtpengine"),
    ];
    for (system, base, what) in ratios {
        let find = |s: System| summary.iter().find(|x| x.system == s.name());
        if let (Some(x), Some(b)) = (find(system), find(base)) {
            let (x, b) = (x.cpu_ns_per_packet.median, b.cpu_ns_per_packet.median);
            let line = format!(
                "{} costs {:.2}x {what} ({x:.0} vs {b:.0} ns per packet)",
                system.name(),
                x / b.max(1.0),
            );
            println!("{line}");
            notes.push(line);
        }
    }
    notes
}

/// Above this share of the relay cores' time spent uncounted, a run's
/// relay competed for its cores.
const CONTENDED_PCT: f64 = 25.0;

/// Entry point of `tollgate bench media`; `stop` is set on Ctrl-C. Fails,
/// after writing the report, when any run was refused.
pub fn main(a: &MediaArgs, command: String, stop: Arc<AtomicBool>) -> Result<Report> {
    if a.codec != "pcmu" {
        bail!(
            "--codec {}: only pcmu (G.711 µ-law, 20 ms) is generated",
            a.codec
        );
    }
    let c = cores(a.relay_cores)?;
    let systems = systems(a)?;
    let stamp = crate::stamp::stamp().pinned(format!(
        "relay cores {:?} (the system under test and its interfaces' NAPI threads), generator cores {:?} (the generator and the end hosts' NAPI threads)",
        c.relay, c.generator
    ));
    println!("{stamp}");
    let mut runs = Vec::new();
    let capacity = if a.ramp {
        ramps(&systems, a, &c, &stop, &mut runs)?
    } else {
        runs = rounds(&systems, a, &c, &stop)?;
        Vec::new()
    };
    let summary = summarise(&systems, &runs);
    if systems.len() > 1 {
        report::print_table(&runs);
    }
    if !a.ramp && runs.len() > 1 {
        print_summary(&summary, a.rounds, systems[0]);
    }
    report::print_counted(&runs);
    let notes = notes(&runs, &summary);
    let refused: Vec<String> = runs
        .iter()
        .filter(|r| !r.refused.is_empty())
        .map(|r| {
            format!(
                "{} at {} calls: {}",
                r.system,
                r.calls,
                r.refused.join("; ")
            )
        })
        .collect();
    let report = Report {
        command,
        stamp,
        load_average: report::load_average(),
        runs,
        summary,
        capacity,
        notes,
    };
    report::write(&report, &a.out)?;
    println!("report: {}", a.out.join("report.json").display());
    if !refused.is_empty() {
        bail!(
            "refused {} run(s), whose figures are left out of the report:\n  {}",
            refused.len(),
            refused.join("\n  ")
        );
    }
    Ok(report)
}
