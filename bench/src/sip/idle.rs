//! When a system under test is done with a run: no call left at its media
//! relay (NG `list`), no CDR left in Tollgate's spool (`tollgate cdr
//! status`), and its CPU quiet, so the CPU window can close on it with its
//! trailing work inside.

use anyhow::{ensure, Context, Result};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_ng::client::NgClient;
use tollgate_ng::Value;

/// The system is idle when, for [`QUIET_STEPS`] samples [`QUIET_STEP`]
/// apart, nothing is pending and its CPU grew less than [`QUIET_NS`]
/// (2 % of one core) per sample.
const QUIET_STEP: Duration = Duration::from_millis(250);
const QUIET_NS: u64 = 5_000_000;
const QUIET_STEPS: u32 = 2;

/// Calls the relay at `ng` still lists (up to NG `list`'s default limit).
fn ng_calls(ng: SocketAddr) -> Result<usize> {
    let mut c = NgClient::new(ng).with_context(|| format!("NG client for {ng}"))?;
    let r = c
        .command("list", [])
        .with_context(|| format!("NG list at {ng}"))?;
    Ok(r.get("calls")
        .and_then(Value::as_list)
        .map_or(0, <[Value]>::len))
}

/// Records still in Tollgate's CDR spool for its sink, from `tollgate cdr
/// status` on the node's configuration.
fn spool_depth(dir: &Path) -> Result<u64> {
    let exe = std::env::current_exe().context("finding the tollgate binary")?;
    let out = Command::new(exe)
        .arg("cdr")
        .arg("--config")
        .arg(dir.join("tollgate.toml"))
        .args(["status", "--json"])
        .output()
        .context("running tollgate cdr status")?;
    ensure!(
        out.status.success(),
        "tollgate cdr status: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let st: serde_json::Value =
        serde_json::from_slice(&out.stdout).context("tollgate cdr status --json")?;
    st["depth"]
        .as_u64()
        .context("no depth in tollgate cdr status --json")
}

/// Waits until the system whose CPU `cpu_ns` reads is idle (see
/// [`QUIET_STEPS`]): no call left at the relay at `ng`, no CDR left in the
/// spool of the node configured in `dir` (Tollgate), CPU quiet. Returns
/// how long it took; refuses the run if it is not idle within `limit`.
pub(super) fn wait_idle(
    system: &str,
    cpu_ns: impl Fn() -> u64,
    (ng, dir): (SocketAddr, &Path),
    limit: Duration,
) -> Result<Duration> {
    let t0 = Instant::now();
    let mut last = cpu_ns();
    let mut quiet = 0;
    loop {
        std::thread::sleep(QUIET_STEP);
        let now = cpu_ns();
        let grew = now.saturating_sub(last);
        last = now;
        let calls = ng_calls(ng)?;
        let cdrs = if system == "tollgate" {
            spool_depth(dir)?
        } else {
            0
        };
        quiet = if calls == 0 && cdrs == 0 && grew < QUIET_NS {
            quiet + 1
        } else {
            0
        };
        if quiet >= QUIET_STEPS {
            return Ok(t0.elapsed());
        }
        ensure!(
            t0.elapsed() < limit,
            "{system} was not idle {} s after SIPp finished ({calls} calls listed over NG, \
             {cdrs} CDRs in the spool, {:.1} ms of CPU in the last {} ms): its CPU per call \
             would leave work out",
            limit.as_secs(),
            grew as f64 / 1e6,
            QUIET_STEP.as_millis()
        );
    }
}
