//! `tollgate bench media`: how many concurrent calls a media relay carries
//! per core, and at what CPU per packet, for Tollgate (XDP or socket
//! backend) and rtpengine, measured the same way in one run.
//!
//! Each run builds a fresh caller/relay/callee topology (threaded NAPI on the
//! relay's veths, pinned with the relay to the relay cores), starts the
//! system under test there, sets the calls up over NG with real SDP, sends
//! G.711 both ways for every call from a pinned generator core, and reads
//! the relay's CPU time around the measured interval.

use crate::ceiling::Ceiling;
use crate::cpu;
use crate::measure::TrafficResult;
use crate::report::{self, Machine, Report, RunRecord, Summary};
use crate::sut::{Sut, System, NG};
use crate::topology::{sh, Bpffs, Topology};
use crate::traffic::{self, CallTarget};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tollgate_ng::client::NgClient;
use tollgate_ng::Value;
use tollgate_sip::sdp::Sdp;

#[derive(Debug, clap::Args)]
pub struct MediaArgs {
    /// Tollgate backend to measure: xdp or socket.
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
    fn cpu_ns(&self) -> (u64, u64) {
        match self {
            Relay::Process(s) => s.cpu_ns(),
            Relay::Floor(f) => f.cpu_ns(),
        }
    }
}

/// One run of `system` with `calls` for `duration`.
pub fn run_once(
    system: System,
    calls: usize,
    duration: Duration,
    c: &Cores,
    stop: &AtomicBool,
) -> Result<RunRecord> {
    let topo = Topology::with_prefix("bm");
    // Threaded NAPI on the relay's veths (it needs GRO or XDP first), so the
    // relay's receive work runs in threads we can pin and account.
    for ifname in [&topo.ra, &topo.rb] {
        sh(&[
            "ip",
            "netns",
            "exec",
            &topo.relay,
            "ethtool",
            "-K",
            ifname,
            "gro",
            "on",
        ]);
        sh(&[
            "ip",
            "netns",
            "exec",
            &topo.relay,
            "sh",
            "-c",
            &format!("echo 1 > /sys/class/net/{ifname}/threaded"),
        ]);
    }
    let bpf = (system == System::Xdp).then(Bpffs::new);
    let dir = std::env::temp_dir().join(crate::topology::unique("tgbench"));
    std::fs::create_dir_all(&dir)?;
    let (relay, mut ng, targets) = if system == System::Ceiling {
        // No calls to set up: packets go to the relay's addresses unchanged.
        let targets = (0..calls as u16)
            .map(|i| CallTarget {
                to_relay_a: SocketAddr::from(([10, 201, 1, 1], 20000 + 2 * i)),
                to_relay_b: SocketAddr::from(([10, 201, 2, 1], 20000 + 2 * i)),
            })
            .collect();
        (
            Relay::Floor(Ceiling::attach(&topo, &c.relay)?),
            None,
            targets,
        )
    } else {
        let sut = Sut::start(
            system,
            &topo,
            &c.relay,
            &dir,
            bpf.as_ref().map(|b| b.dir.as_path()),
        )?;
        let ng_addr: SocketAddr = NG.parse().expect("literal");
        let mut ng = Topology::run_in(&topo.relay, move || NgClient::new(ng_addr))?;
        let b = bar(calls as u64, &format!("{}: NG call setup", system.name()));
        let targets = setup_calls(&mut ng, calls, &b)?;
        b.finish_and_clear();
        (Relay::Process(sut), Some(ng), targets)
    };

    let caller = Topology::run_in(&topo.caller, || UdpSocket::bind("10.201.1.2:40000"))?;
    let callee = Topology::run_in(&topo.callee, || UdpSocket::bind("10.201.2.2:40000"))?;
    traffic::prepare(&caller)?;
    traffic::prepare(&callee)?;

    let total = (duration.as_millis() / 20) as u64 * calls as u64 * 2;
    let progress = Arc::new(AtomicU64::new(0));
    let b = bar(total, &format!("{}: {} calls", system.name(), calls));
    let watcher = {
        let (p, b) = (progress.clone(), b.clone());
        let done = Arc::new(AtomicBool::new(false));
        let d = done.clone();
        (
            std::thread::spawn(move || {
                while !d.load(Ordering::Relaxed) {
                    b.set_position(p.load(Ordering::Relaxed));
                    std::thread::sleep(Duration::from_millis(200));
                }
            }),
            done,
        )
    };
    let gen = c.generator.clone();
    let (cpu0, t0) = (relay.cpu_ns(), Instant::now());
    let result: TrafficResult = std::thread::scope(|s| {
        s.spawn(|| {
            let _ = cpu::pin(0, &gen);
            traffic::run(&caller, &callee, &targets, duration, stop, &progress)
        })
        .join()
        .expect("generator thread")
    });
    let (cpu1, wall) = (relay.cpu_ns(), t0.elapsed());
    watcher.1.store(true, Ordering::Relaxed);
    let _ = watcher.0.join();
    b.finish_and_clear();
    // Tear the calls down over NG as a real proxy would; stop at Ctrl-C or
    // at the first failure (the relay is about to be stopped anyway).
    if let Some(ng) = ng.as_mut() {
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
    drop(relay);
    let _ = std::fs::remove_dir_all(&dir);

    let (procs, napi) = (cpu1.0 - cpu0.0, cpu1.1 - cpu0.1);
    // The floor's packets are forwarded but, unchanged, not delivered.
    let relayed = if system == System::Ceiling {
        result.sent
    } else {
        result.received
    }
    .max(1);
    Ok(RunRecord {
        system: system.name(),
        calls,
        duration_s: wall.as_secs_f64(),
        offered_pps: calls as u64 * 100,
        loss_pct: if result.sent == 0 {
            0.0
        } else {
            result.lost as f64 * 100.0 / result.sent as f64
        },
        relay_process_cpu_ns: procs,
        relay_napi_cpu_ns: napi,
        cpu_ns_per_packet: (procs + napi) as f64 / relayed as f64,
        relay_cpu_pct: (procs + napi) as f64 * 100.0
            / (wall.as_nanos() as f64 * c.relay.len() as f64),
        relay_cores: c.relay.clone(),
        generator_cores: c.generator.clone(),
        counted: if system == System::Ceiling {
            "the relay veths' threaded-NAPI kthreads running the redirect-only program, per packet sent (its packets are forwarded unchanged and not delivered, so loss is 100 % by design)".into()
        } else {
            "all threads of the relay's processes plus the relay veths' threaded-NAPI kthreads (receive path and XDP), from schedstat; not counted: the peers' veth work of delivering into the end hosts".into()
        },
        traffic: result,
    })
}

fn within(r: &RunRecord, a: &MediaArgs) -> bool {
    r.loss_pct < a.max_loss_pct && (r.traffic.latency_us.p99 as f64) < a.max_p99_ms * 1000.0
}

/// Largest call count held within the bounds: doubling, then bisection.
fn ramp(
    system: System,
    a: &MediaArgs,
    c: &Cores,
    stop: &AtomicBool,
    runs: &mut Vec<RunRecord>,
) -> Result<usize> {
    let duration = Duration::from_secs(a.duration);
    let (mut good, mut bad) = (0usize, None::<usize>);
    let mut n = a.calls.max(10);
    while bad.is_none()
        && n <= a.max_calls.min(crate::sut::MAX_CALLS)
        && !stop.load(Ordering::Relaxed)
    {
        let r = run_once(system, n, duration, c, stop)?;
        let ok = within(&r, a);
        report::print_table(std::slice::from_ref(&r));
        runs.push(r);
        if ok {
            good = n;
            n *= 2;
        } else {
            bad = Some(n);
        }
    }
    if let Some(mut hi) = bad {
        let mut lo = good;
        while hi - lo > (hi / 20).max(5) && !stop.load(Ordering::Relaxed) {
            let mid = (lo + hi) / 2;
            let r = run_once(system, mid, duration, c, stop)?;
            let ok = within(&r, a);
            report::print_table(std::slice::from_ref(&r));
            runs.push(r);
            if ok {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        good = lo;
    }
    Ok(good)
}

fn summarise(systems: &[System], runs: &[RunRecord]) -> Vec<Summary> {
    let mut out: Vec<Summary> = Vec::new();
    for s in systems {
        let mine: Vec<&RunRecord> = runs.iter().filter(|r| r.system == s.name()).collect();
        if mine.is_empty() {
            continue;
        }
        let cpu = report::median(mine.iter().map(|r| r.cpu_ns_per_packet).collect());
        let base = out
            .first()
            .map(|f: &Summary| f.median_cpu_ns_per_packet)
            .unwrap_or(cpu);
        out.push(Summary {
            system: s.name().into(),
            runs: mine.len(),
            median_cpu_ns_per_packet: cpu,
            median_p99_us: report::median(
                mine.iter()
                    .map(|r| r.traffic.latency_us.p99 as f64)
                    .collect(),
            ) as u64,
            median_loss_pct: report::median(mine.iter().map(|r| r.loss_pct).collect()),
            cpu_per_packet_ratio: if base > 0.0 { cpu / base } else { 0.0 },
            calls_per_core_at_this_cost: if cpu > 0.0 { 1e9 / cpu / 100.0 } else { 0.0 },
        });
    }
    out
}

/// Entry point of `tollgate bench media`; `stop` is set on Ctrl-C.
pub fn main(a: &MediaArgs, command: String, stop: Arc<AtomicBool>) -> Result<Report> {
    if a.codec != "pcmu" {
        bail!(
            "--codec {}: only pcmu (G.711 µ-law, 20 ms) is generated",
            a.codec
        );
    }
    let c = cores(a.relay_cores)?;
    let systems: Vec<System> = match (&a.compare, &a.peer) {
        (Some(list), _) => list
            .split(',')
            .map(|s| System::parse(s.trim()))
            .collect::<Result<_, _>>()
            .map_err(anyhow::Error::msg)?,
        (None, Some(p)) if p == "rtpengine" => vec![System::Rtpengine],
        (None, Some(p)) => bail!("--peer {p}: only rtpengine is supported"),
        (None, None) => vec![System::parse(&a.backend).map_err(anyhow::Error::msg)?],
    };
    let mut runs = Vec::new();
    let mut capacity = Vec::new();
    let mut notes = vec![format!(
        "relay cores {:?}, generator cores {:?}; machine shared and noisy: compare medians and ratios, not single runs",
        c.relay, c.generator
    )];
    if a.ramp {
        if systems.contains(&System::Ceiling) {
            bail!("the ceiling delivers no packets, so it has no capacity to search: use it with --compare or at fixed --calls");
        }
        for s in &systems {
            let best = ramp(*s, a, &c, &stop, &mut runs)?;
            println!(
                "{}: {} calls held (< {}% loss, p99 < {} ms)",
                s.name(),
                best,
                a.max_loss_pct,
                a.max_p99_ms
            );
            capacity.push((s.name().to_string(), best));
        }
    } else {
        let rounds = if a.compare.is_some() {
            a.rounds.max(1)
        } else {
            1
        };
        for round in 0..rounds {
            for s in &systems {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let r = run_once(*s, a.calls, Duration::from_secs(a.duration), &c, &stop)?;
                if round == 0 && systems.len() == 1 {
                    report::print_table(std::slice::from_ref(&r));
                }
                runs.push(r);
            }
        }
    }
    if runs.iter().any(|r| r.traffic.late_sends > 0) {
        notes.push("the generator fell behind its schedule in some runs (late_sends > 0): those runs measure the generator as much as the relay".into());
    }
    if runs.iter().any(|r| r.system == "tollgate-xdp") {
        notes.push("on veth, native XDP still pays an skb-to-xdp_buff conversion and the redirect into the peer veth; real NICs gain more".into());
    }
    let summary = summarise(&systems, &runs);
    if systems.len() > 1 {
        report::print_table(&runs);
        println!(
            "\nmedians over {} round(s); ratios against {}:",
            a.rounds,
            systems[0].name()
        );
        for s in &summary {
            println!(
                "  {:<16} CPU/packet {:>8.0} ns  ratio {:>5.2}  p99 {:>6} µs  loss {:.3} %  (~{:.0} calls per core at this cost)",
                s.system, s.median_cpu_ns_per_packet, s.cpu_per_packet_ratio, s.median_p99_us, s.median_loss_pct, s.calls_per_core_at_this_cost
            );
        }
    }
    if let (Some(x), Some(f)) = (
        summary.iter().find(|s| s.system == System::Xdp.name()),
        summary.iter().find(|s| s.system == System::Ceiling.name()),
    ) {
        let line = format!(
            "tollgate-xdp costs {:.2}x the host's redirect-only XDP floor ({:.0} vs {:.0} ns per packet)",
            x.median_cpu_ns_per_packet / f.median_cpu_ns_per_packet.max(1.0),
            x.median_cpu_ns_per_packet,
            f.median_cpu_ns_per_packet
        );
        println!("{line}");
        notes.push(line);
    }
    let report = Report {
        command,
        machine: Machine::probe(),
        runs,
        summary,
        capacity,
        notes,
    };
    report::write(&report, &a.out)?;
    println!("report: {}", a.out.join("report.json").display());
    Ok(report)
}
