//! `tollgate ctl workers`: what each packet worker does. The data plane
//! reports cumulative counters; this samples them twice, a second apart, and
//! prints rates (packets per second, busy %) beside the totals.

use anyhow::Result;
use serde_json::Value as Json;
use std::time::{Duration, Instant};
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::Request;

/// How long between the two samples.
const SAMPLE: Duration = Duration::from_secs(1);

pub fn run(c: &mut ControlClient, json: bool) -> Result<()> {
    let first = c.request(&Request::Workers)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&first)?);
        return Ok(());
    }
    let t0 = Instant::now();
    std::thread::sleep(SAMPLE);
    let second = c.request(&Request::Workers)?;
    let secs = t0.elapsed().as_secs_f64();
    let (a, b) = (list(&first), list(&second));
    if b.is_empty() {
        println!(
            "no packet workers: the backend forwards in the kernel (XDP) and no flow has stages"
        );
        return Ok(());
    }
    println!(
        "{:>6} {:>5} {:>7} {:>10} {:>10} {:>6} {:>12} {:>10}  DROPS",
        "WORKER", "CORE", "FLOWS", "RX PPS", "TX PPS", "BUSY%", "RX TOTAL", "PIPELINE"
    );
    for w in b {
        let before = a.iter().find(|x| x["worker"] == w["worker"]);
        let delta = |k: &str| {
            let now = w[k].as_u64().unwrap_or(0);
            now.saturating_sub(before.and_then(|x| x[k].as_u64()).unwrap_or(now))
        };
        let busy = delta("busy_ns") as f64 / delta("uptime_ns").max(1) as f64 * 100.0;
        println!(
            "{:>6} {:>5} {:>7} {:>10.0} {:>10.0} {:>6.1} {:>12} {:>10}  {}",
            w["worker"],
            w["core"],
            w["flows"],
            delta("rx_packets") as f64 / secs,
            delta("tx_packets") as f64 / secs,
            busy,
            w["rx_packets"],
            w["pipeline"]["processed"],
            drops(w),
        );
    }
    Ok(())
}

fn list(v: &Json) -> &[Json] {
    v.as_array().map_or(&[], Vec::as_slice)
}

/// Non-zero drop counters, the worker's and its pipeline's, as `name=n`.
fn drops(w: &Json) -> String {
    let mut out: Vec<String> = Vec::new();
    let named = w["drops"].as_object().into_iter().flatten();
    let pipeline = w["pipeline"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(k, _)| k.starts_with("dropped") || *k == "consumed" || *k == "events_lost");
    for (k, v) in named.chain(pipeline) {
        if v.as_u64().unwrap_or(0) > 0 {
            out.push(format!("{k}={v}"));
        }
    }
    if out.is_empty() {
        "-".into()
    } else {
        out.join(" ")
    }
}
