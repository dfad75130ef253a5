//! `tollgate ctl workers`: what each packet worker does. The data plane
//! reports cumulative counters; this samples them twice, a second apart, and
//! prints rates (packets per second, received megabits per second, busy %)
//! beside the totals.

use anyhow::{bail, Result};
use std::time::{Duration, Instant};
use tollgate_dataplane::backend::WorkerReport;
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::{Reply, Request};
use tollgate_dataplane::pipeline::PipelineCounters;

/// How long between the two samples.
const SAMPLE: Duration = Duration::from_secs(1);

pub fn run(c: &mut ControlClient, json: bool) -> Result<()> {
    let first = sample(c)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&first)?);
        return Ok(());
    }
    let t0 = Instant::now();
    std::thread::sleep(SAMPLE);
    let second = sample(c)?;
    let secs = t0.elapsed().as_secs_f64();
    if second.is_empty() {
        println!(
            "no packet workers: the backend forwards in the kernel (XDP) and no flow has stages"
        );
        return Ok(());
    }
    println!(
        "{:>6} {:>5} {:>7} {:>10} {:>10} {:>9} {:>6} {:>12} {:>10}  DROPS",
        "WORKER", "CORE", "FLOWS", "RX PPS", "TX PPS", "RX MBIT/S", "BUSY%", "RX TOTAL", "PIPELINE"
    );
    for w in &second {
        let before = first.iter().find(|x| x.worker == w.worker);
        let delta = |k: fn(&WorkerReport) -> u64| k(w).saturating_sub(before.map_or(k(w), k));
        let busy = delta(|x| x.busy_ns) as f64 / delta(|x| x.uptime_ns).max(1) as f64 * 100.0;
        println!(
            "{:>6} {:>5} {:>7} {:>10.0} {:>10.0} {:>9.2} {:>6.1} {:>12} {:>10}  {}",
            w.worker,
            w.core,
            w.flows,
            delta(|x| x.rx_packets) as f64 / secs,
            delta(|x| x.tx_packets) as f64 / secs,
            delta(|x| x.rx_bytes) as f64 * 8.0 / 1e6 / secs,
            busy,
            w.rx_packets,
            w.pipeline.processed,
            drops(w),
        );
    }
    Ok(())
}

fn sample(c: &mut ControlClient) -> Result<Vec<WorkerReport>> {
    match c.request_typed(&Request::Workers)?? {
        Reply::Workers(w) => Ok(w),
        other => bail!("unexpected reply to `workers`: {other:?}"),
    }
}

/// Non-zero drop counters, the worker's and its pipeline's, as `name=n`.
fn drops(w: &WorkerReport) -> String {
    let named = w.drops.iter().map(|(k, v)| (k.as_ref(), *v));
    let out: Vec<String> = named
        .chain(pipeline_drops(&w.pipeline))
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    if out.is_empty() {
        "-".into()
    } else {
        out.join(" ")
    }
}

/// The pipeline's counters of packets it did not forward, by name.
fn pipeline_drops(p: &PipelineCounters) -> [(&'static str, u64); 4] {
    [
        ("consumed", p.consumed),
        ("dropped_no_flow", p.dropped_no_flow),
        ("dropped_stage", p.dropped_stage),
        ("events_lost", p.events_lost),
    ]
}
