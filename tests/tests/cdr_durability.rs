//! CDRs are never lost and never doubled: `tollgate run` relaying calls set
//! up over NG writes each call's CDR to six sinks (PostgreSQL, MariaDB,
//! SQLite, RabbitMQ, Redis, JSON lines) on real servers, while the node is
//! killed with SIGKILL mid-run, or while sinks are down.
//!
//! A call counts as acknowledged when its NG `delete` was answered: the CDR
//! was on disk in the spool then. Each acknowledged call must be in every
//! SQL sink and the JSON-lines file exactly once, in Redis as ended, and on
//! AMQP at least once (delivery there is at-least-once by design; repeats
//! carry the same message id and are bounded by one batch). The kill finds
//! a sink behind on purpose (its database locked), so the replay is seen
//! to run and to deliver exactly what was behind.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_cdr::config::CdrConfig;
use tollgate_ng::Value;
use tollgate_tests::cdrs::{self, all_sinks, all_sinks_toml, EventQueue};
use tollgate_tests::netns::unique;
use tollgate_tests::peers::{self, kill, Proc};
use tollgate_tests::services::{self, Service};
use tollgate_tests::TempDir;

/// The outage test stops shared servers: the tests here take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn start(dir: &Path, ng: &str, ports: (u16, u16)) -> Proc {
    peers::tollgate_loopback(
        dir,
        ng,
        ports,
        &["--delete-delay", "0"],
        &all_sinks_toml(dir),
    )
    .0
}

fn sdp(port: u16) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
}

/// Sets up and tears down calls `prefix-0`, `prefix-1`... over NG until
/// `stop`, or `limit` calls, or the relay stops answering. Returns the ids
/// whose `delete` was answered.
fn drive(
    ng: SocketAddr,
    prefix: &str,
    limit: usize,
    stop: &AtomicBool,
    acked: &Mutex<Vec<String>>,
) {
    let mut client = peers::ng_client(None, ng);
    // A busy 2-core machine (a broker booting beside us) can hold a reply
    // past the client's default second; only a dead relay should end this.
    client.timeout = Duration::from_secs(10);
    for i in 0..limit {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let id = format!("{prefix}-{i}");
        let call = |extra: Vec<(&'static str, Value)>| {
            let mut p = vec![
                ("call-id", Value::str(&id)),
                ("from-tag", Value::str("caller")),
                (
                    "received from",
                    Value::List(vec![Value::str("IP4"), Value::str("127.0.0.1")]),
                ),
            ];
            p.extend(extra);
            p
        };
        let ok = |r: Result<Value, _>| match r {
            Ok(v) if v.get("result").and_then(Value::as_str) == Some("ok") => true,
            other => {
                if !stop.load(Ordering::Relaxed) {
                    eprintln!("call {i}: the relay answered {other:?}; stopping");
                }
                false
            }
        };
        if !ok(client.command("offer", call(vec![("sdp", Value::str(&sdp(7000)))])))
            || !ok(client.command(
                "answer",
                call(vec![
                    ("sdp", Value::str(&sdp(6000))),
                    ("to-tag", Value::str("callee")),
                ]),
            ))
            || !ok(client.command("delete", call(vec![])))
        {
            return;
        }
        acked.lock().unwrap().push(id);
    }
}

/// Waits until every sink has taken every spooled record.
fn drained(cfg: &CdrConfig, within: Duration) {
    let spool = cfg.spool();
    let names = cfg.sink_names();
    cdrs::wait_drained(
        || tollgate_cdr::spool::inspect(&spool, &names).expect("read the spool"),
        within,
    );
}

/// Where every sink's cursor was, read from the spool on disk.
fn cursors(cfg: &CdrConfig) -> tollgate_cdr::spool::Status {
    tollgate_cdr::spool::inspect(&cfg.spool(), &cfg.sink_names()).expect("read the spool")
}

fn sink<'a>(
    st: &'a tollgate_cdr::spool::Status,
    name: &str,
) -> &'a tollgate_cdr::spool::SinkStatus {
    st.sinks
        .iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| panic!("no sink {name} in {st:#?}"))
}

/// Waits until `acked` holds `n` calls, while the driver runs.
async fn wait_acked(acked: &Mutex<Vec<String>>, n: usize, driver: &std::thread::JoinHandle<()>) {
    let t0 = Instant::now();
    while acked.lock().unwrap().len() < n {
        assert!(
            !driver.is_finished() && t0.elapsed() < Duration::from_secs(60),
            "calls are not being set up (the driver says why above)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the kill left: the SQLite sink (held since its cursor was at
/// `held_at`) behind, by its cursor and in its database. Every
/// acknowledged call is either in the database or in the spool after the
/// cursor, never both. Returns the cursors at the kill and the CDRs the
/// held sink was behind by.
async fn held_sink_behind(
    cfg: &CdrConfig,
    prefix: &str,
    acked: &BTreeSet<String>,
    held_at: u64,
    hold: cdrs::SqliteHold,
) -> (tollgate_cdr::spool::Status, BTreeSet<String>) {
    let sqlite_url = cdrs::all_sinks_url(cfg, "sqlite");
    let at_kill = cursors(cfg);
    let held = sink(&at_kill, "sqlite").clone();
    for s in &at_kill.sinks {
        eprintln!("at the kill: {} was {} records behind", s.name, s.lag);
    }
    assert!(
        held.delivered_seq <= held_at + cfg.batch as u64,
        "the held sink took at most the batch it was committing: {held:?}"
    );
    assert!(held.lag > 0, "the held sink is behind: {at_kill:#?}");
    let behind = cdrs::spooled_cdrs_after(&cfg.spool(), held.delivered_seq);
    hold.release().await;
    let landed: BTreeSet<String> = cdrs::sql_counts(&sqlite_url, &format!("{prefix}-"))
        .await
        .into_keys()
        .collect();
    assert!(
        !behind.is_empty() && behind.iter().any(|id| acked.contains(id)),
        "no acknowledged CDR was waiting for the held sink: {behind:?}"
    );
    let both: Vec<_> = behind.intersection(&landed).collect();
    assert!(
        both.is_empty(),
        "behind its cursor yet in the sink: {both:?}"
    );
    let nowhere: Vec<_> = acked
        .iter()
        .filter(|id| !behind.contains(*id) && !landed.contains(*id))
        .collect();
    assert!(
        nowhere.is_empty(),
        "neither in the sink nor spooled: {nowhere:?}"
    );

    (at_kill, behind)
}

/// After the restart: every sink took exactly the records after its
/// cursor at the kill, and the held one exactly the CDRs it was behind by.
async fn replayed_exactly(
    cfg: &CdrConfig,
    prefix: &str,
    at_kill: &tollgate_cdr::spool::Status,
    behind: &BTreeSet<String>,
) {
    let sqlite_url = cdrs::all_sinks_url(cfg, "sqlite");
    let after = cursors(cfg);
    for s in &at_kill.sinks {
        let now = sink(&after, &s.name);
        assert_eq!(
            now.delivered - s.delivered,
            after.last_seq - s.delivered_seq,
            "{}: replayed exactly the records after its cursor at the kill",
            s.name
        );
    }
    let replayed = cdrs::sql_counts(&sqlite_url, &format!("{prefix}-")).await;
    let missing: Vec<_> = behind
        .iter()
        .filter(|id| !replayed.contains_key(*id))
        .collect();
    assert!(missing.is_empty(), "sqlite: not replayed: {missing:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_and_doubles_nothing() {
    tollgate_tests::require_root();
    let _turn = SERIAL.lock().await;
    let dir = TempDir::new("cdr-kill");
    let cfg = all_sinks(&dir.0);
    let prefix = unique("kill");
    let ng: SocketAddr = "127.0.0.1:22922".parse().unwrap();
    let ports = (41000, 41999);
    let amqp = cdrs::all_sinks_url(&cfg, "amqp");
    let mut events = EventQueue::bind(&amqp, &prefix).await;

    let mut tg = start(&dir.0, "127.0.0.1:22922", ports);
    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (acked, stop, prefix) = (acked.clone(), stop.clone(), prefix.clone());
        std::thread::spawn(move || drive(ng, &prefix, 20_000, &stop, &acked))
    };
    // Once calls flow, the SQLite sink is held behind (its database
    // locked), so the kill finds at least one sink with records to replay.
    wait_acked(&acked, 300, &driver).await;
    let sqlite_url = cdrs::all_sinks_url(&cfg, "sqlite");
    let hold = cdrs::SqliteHold::take(&sqlite_url).await;
    let held_at = sink(&cursors(&cfg), "sqlite").delivered_seq;
    wait_acked(&acked, 1500, &driver).await;
    let t0 = Instant::now();
    while cursors(&cfg).last_seq < held_at + 3 * cfg.batch as u64 {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "{} more records not spooled within 60 s",
            3 * cfg.batch
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    kill(&mut tg);
    stop.store(true, Ordering::Relaxed);
    driver.join().unwrap();
    let in_order = acked.lock().unwrap().clone();
    let acked: BTreeSet<String> = in_order.iter().cloned().collect();
    eprintln!("{} calls acknowledged before SIGKILL", acked.len());

    let (at_kill, behind) = held_sink_behind(&cfg, &prefix, &acked, held_at, hold).await;

    // The restarted node replays its spool into every sink: each takes
    // exactly the records it was behind by, and the held one exactly the
    // CDRs that were waiting for it.
    drop(tg);
    let _tg = start(&dir.0, "127.0.0.1:22922", ports);
    drained(&cfg, Duration::from_secs(60));
    replayed_exactly(&cfg, &prefix, &at_kill, &behind).await;
    cdrs::check_sinks(&dir.0, &cfg, &prefix, &acked, &in_order, &mut events).await;
    cli_sees(&dir.0, &prefix, &acked);
}

/// `tollgate cdr status` shows every sink caught up, and `tollgate cdr
/// export` reads each acknowledged call back once, as CSV and JSON.
fn cli_sees(dir: &Path, prefix: &str, acked: &BTreeSet<String>) {
    let config = dir.join("tollgate.toml");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(tollgate_tests::process::tollgate_bin())
            .arg("cdr")
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .expect("run tollgate cdr");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let status = run(&["status"]);
    for sink in ["sqlite", "postgres", "mysql", "amqp", "redis", "jsonl"] {
        let row = status
            .lines()
            .find(|l| l.starts_with(sink))
            .unwrap_or_else(|| panic!("no {sink} row in:\n{status}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            (cols[2], cols[3]),
            ("0", "-"),
            "{sink} caught up, no error: {row}"
        );
    }
    for (format, sink) in [("csv", "postgres"), ("json", "mysql"), ("csv", "sqlite")] {
        let out = run(&[
            "export",
            "--since",
            "2000-01-01",
            "--format",
            format,
            "--sink",
            sink,
        ]);
        let ids: Vec<&str> = out
            .lines()
            .filter_map(|l| {
                let id = if format == "csv" {
                    l.split(',').next()?
                } else {
                    l.split("\"call_id\":\"").nth(1)?.split('"').next()?
                };
                id.starts_with(prefix).then_some(id)
            })
            .collect();
        let count = ids.len();
        let ids: BTreeSet<&str> = ids.into_iter().collect();
        assert_eq!(ids.len(), count, "{sink} export as {format}: a call twice");
        let missing: Vec<_> = acked.iter().filter(|a| !ids.contains(a.as_str())).collect();
        assert!(
            missing.is_empty(),
            "{sink} export as {format} lacks {missing:?}"
        );
        // Only the call whose delete was in flight at the kill may be extra.
        assert!(
            ids.len() <= acked.len() + 1,
            "{sink} export as {format}: unknown calls"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_down_under_load_get_every_cdr_once_when_back() {
    tollgate_tests::require_root();
    let _turn = SERIAL.lock().await;
    let dir = TempDir::new("cdr-outage");
    let cfg = all_sinks(&dir.0);
    let prefix = unique("outage");
    let ng: SocketAddr = "127.0.0.1:23022".parse().unwrap();
    let amqp = cdrs::all_sinks_url(&cfg, "amqp");
    let events = EventQueue::bind(&amqp, &prefix).await;
    let _tg = start(&dir.0, "127.0.0.1:23022", (42000, 42999));

    let acked = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (acked, stop, prefix) = (acked.clone(), stop.clone(), prefix.clone());
        std::thread::spawn(move || drive(ng, &prefix, 4_000, &stop, &acked))
    };
    let t0 = Instant::now();
    while acked.lock().unwrap().len() < 300 {
        assert!(
            !driver.is_finished() && t0.elapsed() < Duration::from_secs(60),
            "calls are not being set up (the driver says why above)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The database, the Redis server and the broker go away; calls must go
    // on. The test's queue is durable: it keeps what the broker confirmed.
    drop(events);
    services::stop(Service::Postgres);
    services::stop(Service::Redis);
    services::stop(Service::Rabbitmq);
    let during = acked.lock().unwrap().len();
    let outage_from = cursors(&cfg).last_seq;
    // They stay down until both have reported failing and 500 more calls
    // have been set up and torn down (at most 30 s).
    let names = |st: &tollgate_cdr::spool::Status,
                 f: fn(&tollgate_cdr::spool::SinkStatus) -> bool| {
        st.sinks
            .iter()
            .filter(|s| f(s))
            .map(|s| s.name.clone())
            .collect::<Vec<_>>()
    };
    let t0 = Instant::now();
    let (st, lagging, failing) = loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let st = tollgate_cdr::spool::inspect(&cfg.spool(), &cfg.sink_names()).unwrap();
        let failing = names(&st, |s| s.last_error.is_some());
        let lagging = names(&st, |s| s.lag > 0);
        let both = ["postgres", "redis", "amqp"]
            .iter()
            .all(|n| failing.iter().any(|f| f == n));
        let more = acked.lock().unwrap().len() >= during + 500;
        if both && more || t0.elapsed() > Duration::from_secs(30) {
            break (st, lagging, failing);
        }
    };
    let (lagging, failing): (Vec<&str>, Vec<&str>) = (
        lagging.iter().map(String::as_str).collect(),
        failing.iter().map(String::as_str).collect(),
    );
    let after = acked.lock().unwrap().len();
    services::start(Service::Postgres);
    services::start(Service::Redis);
    services::start(Service::Rabbitmq);
    assert!(
        after >= during + 500,
        "calls stalled while sinks were down: {during} -> {after}"
    );
    for down in ["postgres", "redis", "amqp"] {
        assert!(lagging.contains(&down), "{down} cannot be current: {st:#?}");
        assert!(
            failing.contains(&down),
            "{down} must report its error: {st:#?}"
        );
    }
    // The others went on taking records spooled during the outage (they
    // may be a batch behind at any instant: calls keep coming).
    for up in ["mysql", "sqlite", "jsonl"] {
        let s = sink(&st, up);
        assert!(
            s.delivered_seq > outage_from && s.last_error.is_none(),
            "{up} kept taking records after {outage_from}: {st:#?}"
        );
    }

    stop.store(true, Ordering::Relaxed);
    driver.join().unwrap();
    let in_order = acked.lock().unwrap().clone();
    let acked: BTreeSet<String> = in_order.iter().cloned().collect();
    drained(&cfg, Duration::from_secs(120));
    let mut events = EventQueue::bind(&amqp, &prefix).await;
    let st = tollgate_cdr::spool::inspect(&cfg.spool(), &cfg.sink_names()).unwrap();
    assert!(
        st.sinks.iter().all(|s| s.last_error.is_none()),
        "errors clear on success: {st:#?}"
    );
    cdrs::check_sinks(
        &dir.0,
        &cfg,
        &prefix,
        &acked,
        &in_order[during..],
        &mut events,
    )
    .await;
}
