//! Failover between nodes through Redis, as rtpengine does with its
//! keyspaces: each node writes its calls (the call-state journal's
//! entries: answered B2BUA calls and NG media sessions) into a keyspace it
//! owns, and a standby node takes another node's keyspace over, on
//! command (`tollgate ctl takeover K`) or when the keyspace is assigned to
//! it in Redis, restoring those calls as its own.
//!
//! The writer is a task fed by the journal's tee: the SIP thread and the
//! NG tasks only queue what the journal writes anyway, and the task
//! writes everything queued in one atomic script call as soon as the
//! last one is done (so writes batch themselves under load).
//! Redis down never blocks a call: the failure is counted and logged once,
//! the changes are kept (coalesced per call), and the whole keyspace is
//! written again once Redis is back.
//!
//! Fencing: every write checks, in the same script, that this node still
//! owns its keyspace; a takeover claims it and reads its calls in one
//! step. A node whose keyspace was taken over therefore writes nothing
//! more into it, and at start it asks Redis before restoring its journal:
//! when another node holds its keyspace, its journaled calls are the other
//! node's now, and they are forgotten (not restored, no CDR written for
//! them here), and the keyspace is claimed back, empty, for new calls.
//! When Redis cannot be asked at start (within `fence_wait_secs`) the
//! journal is restored: no node can have taken calls over from a Redis it
//! could not reach either.
//!
//! Hand-written over the `redis` crate: no crate replicates an
//! application's state into Redis keyspaces.

pub mod mirror;
mod store;
pub mod takeover;

use crate::journal::{Change, Shared};
use mirror::Mirror;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// `[failover]`: this node's keyspace in Redis and the ones it may take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailoverConfig {
    /// Redis, e.g. `redis://10.0.0.5:6379/0`.
    pub url: String,
    /// The keyspace this node owns and writes its calls into.
    pub keyspace: String,
    /// Keyspaces of other nodes this one may take over.
    #[serde(default)]
    pub takeover: Vec<String>,
    /// How long the start waits for Redis to say who owns this node's
    /// keyspace before it restores the journal anyway.
    #[serde(default = "default_fence_wait_secs")]
    pub fence_wait_secs: u64,
}

fn default_fence_wait_secs() -> u64 {
    5
}

impl FailoverConfig {
    pub fn validate(&self, journal: &crate::journal::JournalConfig) -> Vec<String> {
        let mut problems = Vec::new();
        if let Err(e) = redis::Client::open(self.url.as_str()) {
            problems.push(format!("failover.url {:?}: {e}", self.url));
        }
        let bad = |k: &String| k.is_empty() || k.contains([':', '*', ' ']);
        for k in std::iter::once(&self.keyspace).chain(&self.takeover) {
            if bad(k) {
                problems.push(format!(
                    "failover keyspace {k:?}: must be a non-empty name without ':', '*' or spaces"
                ));
            }
        }
        if self.takeover.contains(&self.keyspace) {
            problems.push(format!(
                "failover.takeover lists {:?}, this node's own keyspace",
                self.keyspace
            ));
        }
        if journal.disabled {
            problems
                .push("[failover] needs the call journal: journal.disabled must be false".into());
        }
        problems
    }
}

/// What the failover task counts, for `/metrics`.
#[derive(Debug, Default)]
pub struct FailoverMeters {
    /// `[failover]` is configured and its task runs.
    pub running: AtomicBool,
    pub redis_up: AtomicBool,
    /// Writes to Redis (and dials) that failed.
    pub write_errors: AtomicU64,
    /// This node's keyspace was taken over: its writes are fenced off.
    pub fenced: AtomicBool,
    /// Calls (journal entries) restored from keyspaces taken over.
    pub taken: AtomicU64,
    /// The running task's config (for the HTTP API's takeover).
    pub config: std::sync::OnceLock<FailoverConfig>,
}

/// The failover task, ready to run once the node's runtime is up.
pub struct Standby {
    cfg: FailoverConfig,
    changes: mpsc::UnboundedReceiver<Vec<Change>>,
    mirror: Mirror,
}

/// What Redis said at start about this node's own keyspace.
enum Start {
    Own,
    TakenBy(String),
    Unknown(redis::RedisError),
}

/// Checks the fence before the journal's `entries` are restored: returns
/// the entries to restore (none when another node took this keyspace over)
/// and the failover task, which gets every later journal write.
pub fn prepare(
    cfg: &FailoverConfig,
    journal: &Shared,
    entries: BTreeMap<String, Value>,
) -> (Standby, BTreeMap<String, Value>) {
    let me = &cfg.keyspace;
    let entries = match fence_at_start(cfg) {
        Start::Own => entries,
        Start::Unknown(e) => {
            tracing::warn!(keyspace = %me, error = %e, calls = entries.len(),
                "failover: Redis did not say who owns this keyspace; restoring the journal");
            entries
        }
        Start::TakenBy(by) => {
            tracing::warn!(keyspace = %me, by = %by, calls = entries.len(),
                "failover: this keyspace was taken over; the journal's calls are the other node's and are not restored here");
            let forget: Vec<(String, Option<Value>)> =
                entries.into_keys().map(|k| (k, None)).collect();
            journal.hold("", forget);
            journal.flush();
            if let Err(e) = reclaim(cfg) {
                tracing::error!(keyspace = %me, error = %e, "failover: keyspace not claimed back");
            }
            BTreeMap::new()
        }
    };
    let (tx, changes) = mpsc::unbounded_channel();
    journal.tee(Box::new(move |batch| {
        let _ = tx.send(batch);
    }));
    let mirror = Mirror::new(entries.iter().map(|(k, v)| (k.clone(), v.to_string())));
    let standby = Standby {
        cfg: cfg.clone(),
        changes,
        mirror,
    };
    (standby, entries)
}

fn sync_connection(url: &str) -> redis::RedisResult<redis::Connection> {
    let conn = redis::Client::open(url)?.get_connection_with_timeout(store::TIMEOUT)?;
    conn.set_read_timeout(Some(store::TIMEOUT))?;
    conn.set_write_timeout(Some(store::TIMEOUT))?;
    Ok(conn)
}

fn fence_at_start(cfg: &FailoverConfig) -> Start {
    let until = Instant::now() + Duration::from_secs(cfg.fence_wait_secs);
    loop {
        let owner = sync_connection(&cfg.url)
            .and_then(|mut c| store::claim_if_free(&cfg.keyspace).invoke::<String>(&mut c));
        match owner {
            Ok(o) if o == cfg.keyspace => return Start::Own,
            Ok(o) => return Start::TakenBy(o),
            Err(e) if Instant::now() >= until => return Start::Unknown(e),
            Err(_) => std::thread::sleep(Duration::from_millis(500)),
        }
    }
}

/// Takes this node's keyspace back (empty: its calls went to the node
/// that took it over) for the calls it will now carry.
fn reclaim(cfg: &FailoverConfig) -> redis::RedisResult<()> {
    let mut c = sync_connection(&cfg.url)?;
    redis::cmd("SET")
        .arg(store::owner_key(&cfg.keyspace))
        .arg(&cfg.keyspace)
        .exec(&mut c)
}

/// A Redis outage as the writer sees it: logged once, counted.
#[derive(Default)]
struct Outage {
    since: Option<Instant>,
    failed: u64,
}

impl Outage {
    fn failed(&mut self, keyspace: &str, e: &redis::RedisError, m: &FailoverMeters) {
        self.failed += 1;
        m.write_errors.fetch_add(1, Ordering::Relaxed);
        m.redis_up.store(false, Ordering::Relaxed);
        if self.since.is_none() {
            self.since = Some(Instant::now());
            tracing::error!(keyspace, error = %e,
                "failover: Redis unavailable; calls go on, their changes are kept and written when it is back");
        }
    }

    fn ok(&mut self, keyspace: &str, live: usize, m: &FailoverMeters) {
        m.redis_up.store(true, Ordering::Relaxed);
        if let Some(since) = self.since.take() {
            tracing::info!(
                keyspace,
                failed_writes = self.failed,
                secs = since.elapsed().as_secs(),
                calls = live,
                "failover: Redis back; keyspace written again"
            );
        }
    }
}

impl Standby {
    /// Writes this node's calls and watches the keyspaces it may take,
    /// until `stop`. A write goes out as soon as changes arrive and takes
    /// everything queued by then: under load, while one write is on its
    /// way, the next batch gathers.
    pub async fn run(mut self, ng: Arc<crate::ngserver::NgServer>, stop: Arc<AtomicBool>) {
        let m = &ng.observed.failover;
        m.running.store(true, Ordering::Relaxed);
        let _ = m.config.set(self.cfg.clone());
        let mut link = Link::default();
        let mut retry = tokio::time::interval(RETRY_EVERY);
        let mut watch = tokio::time::interval(takeover::WATCH_EVERY);
        while !stop.load(Ordering::Relaxed) {
            tokio::select! {
                batch = self.changes.recv() => {
                    let Some(b) = batch else { return };
                    self.mirror.apply(b);
                    while let Ok(b) = self.changes.try_recv() {
                        self.mirror.apply(b);
                    }
                    self.push(&mut link, m).await;
                }
                _ = retry.tick() => self.push(&mut link, m).await,
                _ = watch.tick(), if !self.cfg.takeover.is_empty() => {
                    let Ok(Some(c)) = link.connect(&self.cfg.url).await else {
                        continue;
                    };
                    if let Err(e) = takeover::watch(&self.cfg, c, &ng).await {
                        tracing::warn!(error = %e, "failover: watching the keyspaces to take over failed");
                        // A new connection may meet a Redis that lost its data.
                        self.mirror.failed();
                        link.conn = None;
                    }
                }
            }
        }
    }

    /// Writes what is pending, unless this node is fenced or Redis away.
    async fn push(&mut self, link: &mut Link, m: &FailoverMeters) {
        if link.fenced {
            return;
        }
        let me = self.cfg.keyspace.clone();
        let me = me.as_str();
        let c = match link.connect(&self.cfg.url).await {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => return link.outage.failed(me, &e, m),
        };
        match self.write(c).await {
            Ok(true) => link.outage.ok(me, self.mirror.live(), m),
            Ok(false) => {
                link.fenced = true;
                m.fenced.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                link.outage.failed(me, &e, m);
                link.conn = None;
            }
        }
    }

    /// Writes the next batch; false once this node is fenced out of its
    /// keyspace.
    async fn write(
        &mut self,
        c: &mut redis::aio::MultiplexedConnection,
    ) -> redis::RedisResult<bool> {
        let Some(batch) = self.mirror.batch() else {
            return Ok(true);
        };
        let me = &self.cfg.keyspace;
        let inv = store::write(me, me, batch);
        let owner = match tokio::time::timeout(store::TIMEOUT, inv.invoke_async::<String>(c)).await
        {
            Ok(r) => r,
            Err(_) => Err(timed_out()),
        };
        match owner {
            Ok(o) if &o == me => Ok(true),
            Ok(o) => {
                tracing::error!(keyspace = %me, by = %o,
                    "failover: this keyspace was taken over; this node's call changes are no longer written to Redis (fenced)");
                Ok(false)
            }
            Err(e) => {
                self.mirror.failed();
                Err(e)
            }
        }
    }
}

/// How often a write that failed is tried again (and Redis dialled).
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// The writer's connection to Redis and what it knows of it.
struct Link {
    conn: Option<redis::aio::MultiplexedConnection>,
    /// No dial before this.
    redial: Instant,
    outage: Outage,
    fenced: bool,
}

impl Default for Link {
    fn default() -> Link {
        Link {
            conn: None,
            redial: Instant::now(),
            outage: Outage::default(),
            fenced: false,
        }
    }
}

impl Link {
    /// The connection, dialled when there is none (at most once per
    /// [`RETRY_EVERY`]; `None` while waiting to dial again).
    async fn connect(
        &mut self,
        url: &str,
    ) -> redis::RedisResult<Option<&mut redis::aio::MultiplexedConnection>> {
        if self.conn.is_none() {
            if Instant::now() < self.redial {
                return Ok(None);
            }
            self.redial = Instant::now() + RETRY_EVERY;
            let dial = async {
                redis::Client::open(url)?
                    .get_multiplexed_async_connection()
                    .await
            };
            let c = tokio::time::timeout(store::TIMEOUT, dial)
                .await
                .unwrap_or_else(|_| Err(timed_out()))?;
            self.conn = Some(c);
        }
        Ok(self.conn.as_mut())
    }
}

fn timed_out() -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::IoError, "Redis request timed out"))
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    fn problems(section: &str) -> String {
        match Config::parse(section, "t.toml") {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn a_failover_section_is_checked_against_itself_and_the_journal() {
        let ok = "[failover]\nurl = \"redis://127.0.0.1:6379/0\"\nkeyspace = \"a\"\ntakeover = [\"b\"]\n";
        assert_eq!(problems(ok), "");
        let own =
            "[failover]\nurl = \"redis://h/0\"\nkeyspace = \"a\"\ntakeover = [\"a\", \"x:y\"]\n";
        let p = problems(own);
        assert!(p.contains("\"a\", this node's own keyspace"), "{p}");
        assert!(p.contains("keyspace \"x:y\": must be"), "{p}");
        let p = problems(&format!("{ok}[journal]\ndisabled = true\n"));
        assert!(p.contains("needs the call journal"), "{p}");
        let p = problems("[failover]\nurl = \"http://h\"\nkeyspace = \"a\"\n");
        assert!(p.contains("failover.url \"http://h\""), "{p}");
    }
}
