//! SIPp as the benchmark drives it (and the churn tests, the same way):
//! its load arguments, the built-in UAC offering a fixed number of calls,
//! and the totals of its statistics file.

use anyhow::{Context, Result};
use std::path::Path;
use std::process::{Command, Stdio};

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
/// `media_port`), bounded to `limit_s` seconds, with its statistics
/// written into its working directory.
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
        .args(SIPP_LOAD)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd
}
