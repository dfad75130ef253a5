//! Taking another node's keyspace over: a keyspace in `[failover]
//! takeover` whose owner in Redis names this node is claimed and read in
//! one step, its calls are restored into this running node as its own
//! (media sessions with their flows into the data plane, answered B2BUA
//! calls with their dialogs), written to this node's journal and keyspace,
//! and removed from the old one. `tollgate ctl takeover K` assigns the
//! keyspace (as an operator's script or keepalived's notify could with
//! `SET tollgate:keyspace:K:owner ME`) and waits for the outcome.

use super::{store, FailoverConfig};
use crate::ngserver::NgServer;
use anyhow::{bail, Context};
use redis::AsyncCommands;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the assignments of the keyspaces to take over are read.
pub const WATCH_EVERY: Duration = Duration::from_millis(200);

/// What a takeover restored.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Restored {
    pub sessions: usize,
    pub sip_calls: usize,
    pub failed: usize,
}

/// Takes over every keyspace of `cfg.takeover` assigned to this node.
pub async fn watch(
    cfg: &FailoverConfig,
    c: &mut redis::aio::MultiplexedConnection,
    ng: &Arc<NgServer>,
) -> redis::RedisResult<()> {
    let me = &cfg.keyspace;
    for k in &cfg.takeover {
        let owner: Option<String> = c.get(store::owner_key(k)).await?;
        if owner.as_ref() != Some(me) {
            continue;
        }
        let flat: Vec<String> = store::take(me, k).invoke_async(c).await?;
        if flat.is_empty() {
            continue;
        }
        let fields: Vec<String> = flat.iter().step_by(2).cloned().collect();
        let entries = parse(k, &flat);
        let node = ng.clone();
        let r = tokio::task::spawn_blocking(move || restore(&node, entries))
            .await
            .unwrap_or_default();
        let restored = (r.sessions + r.sip_calls) as u64;
        ng.observed
            .failover
            .taken
            .fetch_add(restored, std::sync::atomic::Ordering::Relaxed);
        tracing::info!(keyspace = %k, sessions = r.sessions, sip_calls = r.sip_calls,
            failed = r.failed, "failover: keyspace taken over");
        let outcome = json!({"by": me, "sessions": r.sessions, "sip_calls": r.sip_calls,
            "failed": r.failed, "at_ms": tollgate_cdr::model::now_ms()});
        let _: () = c.set(store::taken_key(k), outcome.to_string()).await?;
        let _: () = c.hdel(store::calls_key(k), fields).await?;
    }
    Ok(())
}

/// The entries of a keyspace's hash, as HGETALL lists them; what is not
/// JSON is logged and left out.
fn parse(keyspace: &str, flat: &[String]) -> BTreeMap<String, Value> {
    flat.chunks_exact(2)
        .filter_map(|kv| match serde_json::from_str(&kv[1]) {
            Ok(v) => Some((kv[0].clone(), v)),
            Err(e) => {
                tracing::error!(keyspace, key = %kv[0], error = %e, "failover: a call in Redis is not JSON; not taken over");
                None
            }
        })
        .collect()
}

/// Restores another node's journal `entries` into this running node and
/// makes them its own (its journal and keyspace hold them from now on).
pub fn restore(ng: &NgServer, entries: BTreeMap<String, Value>) -> Restored {
    let Some(journal) = &ng.journal else {
        tracing::error!("failover: no call journal here; nothing taken over");
        return Restored::default();
    };
    let n = entries.len();
    // Held first: what fails below is forgotten again after them.
    let own: Vec<(String, Option<Value>)> = entries
        .iter()
        .map(|(k, v)| (k.clone(), Some(v.clone())))
        .collect();
    journal.hold("", own);
    let (sessions, calls) = ng
        .with_handler_here(|h| {
            let before = h.sessions.active();
            // Another node's calls: their CDRs are not in this node's spool.
            let ended = Default::default();
            let calls = crate::journal::restore_media(
                journal,
                entries,
                &ended,
                &mut h.sessions,
                h.plane.as_mut(),
            );
            ((h.sessions.active() - before, calls), Vec::new())
        })
        .0;
    let sip = calls.len();
    let failed_sip = match ng.observed.b2bua() {
        Some(b2b) => crate::sipserver::restore(ng, b2b, calls),
        None if sip > 0 => {
            tracing::error!(
                calls = sip,
                "failover: SIP calls taken over but [sip] is off here"
            );
            let gone = calls
                .into_iter()
                .map(|c| (c.call_id, None::<Value>))
                .collect();
            journal.hold(crate::journal::SIP, gone);
            journal.flush();
            sip
        }
        None => 0,
    };
    Restored {
        sessions,
        sip_calls: sip - failed_sip,
        failed: n - sessions - sip + failed_sip,
    }
}

/// `tollgate ctl takeover KEYSPACE`: [`assign`], printing the outcome.
pub fn ctl(cfg: &FailoverConfig, keyspace: &str, within: Duration) -> anyhow::Result<()> {
    println!("{}", assign(cfg, keyspace, within)?);
    Ok(())
}

/// Assigns `keyspace` to this node (the one `cfg` configures) and waits
/// (at most `within`) until it has taken the calls; returns the outcome
/// (`{"by", "sessions", "sip_calls", "failed"}`). Blocking.
pub fn assign(cfg: &FailoverConfig, keyspace: &str, within: Duration) -> anyhow::Result<Value> {
    if !cfg.takeover.iter().any(|k| k == keyspace) {
        bail!(
            "keyspace {keyspace:?} is not in this node's failover.takeover {:?}",
            cfg.takeover
        );
    }
    let mut c =
        super::sync_connection(&cfg.url).with_context(|| format!("Redis at {}", cfg.url))?;
    let asked = tollgate_cdr::model::now_ms();
    redis::cmd("SET")
        .arg(store::owner_key(keyspace))
        .arg(&cfg.keyspace)
        .exec(&mut c)?;
    let until = Instant::now() + within;
    loop {
        let taken: Option<String> = redis::cmd("GET")
            .arg(store::taken_key(keyspace))
            .query(&mut c)?;
        let taken: Value = taken
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        if taken["by"] == cfg.keyspace.as_str() && taken["at_ms"].as_i64() >= Some(asked) {
            return Ok(taken);
        }
        let left: u64 = redis::cmd("HLEN")
            .arg(store::calls_key(keyspace))
            .query(&mut c)?;
        if left == 0 && taken["at_ms"].as_i64() < Some(asked) {
            return Ok(json!({"by": cfg.keyspace, "sessions": 0, "sip_calls": 0, "failed": 0}));
        }
        if Instant::now() >= until {
            bail!("keyspace {keyspace:?} assigned to {:?}, but its {left} calls were not taken within {within:?}: is that node running with [failover]?", cfg.keyspace);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
