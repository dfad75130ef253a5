//! Outages under load (issue 18's must-show): one `tollgate run` node with
//! every sink (PostgreSQL, MariaDB, SQLite, RabbitMQ, Redis, JSON lines)
//! and the recording archive on S3 (SeaweedFS), NG calls with RTP both ways
//! and every eighth call recorded, running throughout while each server is
//! stopped for 60 s; and the CDR spool's own disk (a tmpfs) filled under
//! calls. Nothing acknowledged may be lost or doubled, and the node answers
//! all along.
//!
//! The servers are the test's own (the shared data scripts with their own
//! data root and ports), so stopping them takes nothing from tests running
//! beside. The five outages overlap, each starting 5 s after the one
//! before (PostgreSQL, MariaDB, Redis, RabbitMQ, S3) and each lasting 60 s
//! from the moment its server is down: 80 s for the five instead of 300 s
//! one after another, and at the worst instant all five are down at once.
//!
//! And the restart edge this leaves: a node killed between spooling a
//! call's CDR and journaling its end does not restore the call.
//!
//! Ports: NG 22590-22592, HTTP 9250-9251, relay 36100-36999;
//! the servers below the ephemeral range, where no outgoing connection can
//! hold them: 18330-18335 (RabbitMQ 18333-18335 with its dist port and
//! epmd), S3 18320 and SeaweedFS's own 18460-18463 (and those + 10000).

use std::collections::{BTreeSet, HashMap};
use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tollgate_archive::store::StoreConfig;
use tollgate_ng::Value;
use tollgate_tests::archived::{assert_rows_match_store, cli_json};
use tollgate_tests::cdrs::{self, EventQueue, SinkUrls};
use tollgate_tests::netns::unique;
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::services::{Private, Service};
use tollgate_tests::{wait_until, TempDir};

/// How long each server stays down.
const OUTAGE: Duration = Duration::from_secs(60);
/// Between one server going down and the next.
const STAGGER: Duration = Duration::from_secs(5);
/// Calls up at once, and packets each way in each call (20 ms apart).
const CONCURRENT: usize = 6;
const PACKETS: u16 = 25;
/// Every this many calls one is recorded.
const RECORD_EVERY: usize = 8;

/// What the callers saw, shared with the test.
#[derive(Default)]
struct Seen {
    /// Calls whose delete was answered, in order; the recorded ones.
    acked: Mutex<Vec<String>>,
    recorded: Mutex<Vec<String>>,
    /// NG requests of calls that failed, with the answer.
    failures: Mutex<Vec<String>>,
    sent: AtomicUsize,
    received: AtomicUsize,
}

/// One call up: its parties' sockets and where each sends.
struct Live {
    id: String,
    a: UdpSocket,
    b: UdpSocket,
    a_to: SocketAddr,
    b_to: SocketAddr,
    sent: u16,
}

/// The parties' ports: beside the relay's, never an ephemeral port the
/// relay might want.
const PARTY_PORTS: std::ops::Range<u16> = 36500..36900;

/// A party's socket on the next free port of [`PARTY_PORTS`] after `*next`.
fn party(next: &mut u16) -> UdpSocket {
    for _ in PARTY_PORTS {
        *next = if *next + 1 >= PARTY_PORTS.end {
            PARTY_PORTS.start
        } else {
            *next + 1
        };
        if let Ok(s) = UdpSocket::bind(("127.0.0.1", *next)) {
            s.set_nonblocking(true).expect("non-blocking");
            return s;
        }
    }
    panic!("no free port in {PARTY_PORTS:?} for a party");
}

fn params(id: &str, extra: Vec<(&'static str, Value)>) -> Vec<(&'static str, Value)> {
    let mut p = vec![("call-id", Value::str(id)), ("from-tag", Value::str("A"))];
    p.extend(extra);
    p
}

/// Packets waiting on `s`.
fn drain(s: &UdpSocket) -> usize {
    let mut buf = [0u8; 2048];
    std::iter::from_fn(|| s.recv(&mut buf).ok()).count()
}

/// Calls `prefix-N`, [`CONCURRENT`] at a time, each [`PACKETS`] packets
/// of RTP each way and then deleted, until `stop` (at most `limit`
/// calls). A refused request is noted and the call dropped; calls go on.
fn callers(ng: SocketAddr, prefix: &str, limit: usize, stop: &AtomicBool, seen: &Seen) {
    let mut client = peers::ng_client(None, ng);
    client.timeout = Duration::from_secs(10);
    let mut ok = |cmd: &str, p: Vec<(&'static str, Value)>| match client.command(cmd, p) {
        Ok(v) if v.get("result").and_then(Value::as_str) == Some("ok") => Some(v),
        other => {
            seen.failures
                .lock()
                .unwrap()
                .push(format!("{cmd}: {other:?}"));
            None
        }
    };
    let mut live: Vec<Live> = Vec::new();
    let (mut next, mut port) = (0, PARTY_PORTS.start);
    while !stop.load(Ordering::Relaxed) || !live.is_empty() {
        while live.len() < CONCURRENT && next < limit && !stop.load(Ordering::Relaxed) {
            let id = format!("{prefix}-{next}");
            let record = next % RECORD_EVERY == 0;
            next += 1;
            let (a, b) = (party(&mut port), party(&mut port));
            let mut offer = vec![("sdp", Value::str(&peers::pcmu_sdp(a.local_addr().unwrap())))];
            if record {
                offer.push(("record call", Value::str("yes")));
            }
            let Some(o) = ok("offer", params(&id, offer)) else {
                continue;
            };
            let answer = vec![
                ("sdp", Value::str(&peers::pcmu_sdp(b.local_addr().unwrap()))),
                ("to-tag", Value::str("B")),
            ];
            let Some(r) = ok("answer", params(&id, answer)) else {
                continue;
            };
            if record {
                seen.recorded.lock().unwrap().push(id.clone());
            }
            let (b_to, a_to) = (peers::relay_media(&o), peers::relay_media(&r));
            live.push(Live {
                id,
                a,
                b,
                a_to,
                b_to,
                sent: 0,
            });
        }
        if live.is_empty() && next >= limit {
            return;
        }
        for c in &mut live {
            let (pa, pb) = (
                tollgate_tests::rtp::packet(0xa, c.sent),
                tollgate_tests::rtp::packet(0xb, c.sent),
            );
            let sent = c.a.send_to(&pa, c.a_to).is_ok() as usize
                + c.b.send_to(&pb, c.b_to).is_ok() as usize;
            seen.sent.fetch_add(sent, Ordering::Relaxed);
            c.sent += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
        let (done, going): (Vec<Live>, Vec<Live>) = live.drain(..).partition(|c| c.sent >= PACKETS);
        live = going;
        for c in done {
            std::thread::sleep(Duration::from_millis(20));
            let got = drain(&c.a) + drain(&c.b);
            seen.received.fetch_add(got, Ordering::Relaxed);
            if ok("delete", params(&c.id, vec![])).is_some() {
                seen.acked.lock().unwrap().push(c.id);
            }
        }
    }
}

/// NG `ping` to the node every 250 ms until `stop`: how many were sent,
/// and the ones not answered `pong` within 2 s, described.
fn pinger(ng: SocketAddr, stop: &AtomicBool) -> (usize, Vec<String>) {
    let mut client = peers::ng_client(None, ng);
    client.timeout = Duration::from_secs(2);
    let (mut asked, mut missed) = (0, Vec::new());
    while !stop.load(Ordering::Relaxed) && asked < 4 * 600 {
        asked += 1;
        match client.command("ping", vec![]) {
            Ok(v) if v.get("result").and_then(Value::as_str) == Some("pong") => {}
            other => missed.push(format!("NG ping {asked}: {other:?}")),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    (asked, missed)
}

/// The value of the first `/metrics` sample named `name` with `label`
/// among its labels ("" for none).
fn metric(http: &str, name: &str, label: &str) -> Option<f64> {
    let body = ureq::get(&format!("http://{http}/metrics"))
        .timeout(Duration::from_secs(2))
        .call()
        .ok()?
        .into_string()
        .ok()?;
    body.lines().find_map(|l| {
        let (key, value) = l.rsplit_once(' ')?;
        let (metric, labels) = key.split_once('{').unwrap_or((key, ""));
        (metric == name && labels.contains(label)).then(|| value.parse().ok())?
    })
}

/// The five servers, started side by side.
struct Servers {
    postgres: Private,
    mariadb: Private,
    redis: Private,
    rabbitmq: Private,
    s3: Private,
}

impl Servers {
    fn start(root: &Path) -> Servers {
        std::thread::scope(|s| {
            let db = |svc, port| s.spawn(move || Private::start(svc, root, port));
            let (pg, my, redis, amqp) = (
                db(Service::Postgres, 18330),
                db(Service::Mariadb, 18331),
                db(Service::Redis, 18332),
                db(Service::Rabbitmq, 18333),
            );
            let s3 = s.spawn(move || Private::s3(root, 18320, 18460));
            let up =
                |h: std::thread::ScopedJoinHandle<'_, Private>| h.join().expect("a server starts");
            Servers {
                postgres: up(pg),
                mariadb: up(my),
                redis: up(redis),
                rabbitmq: up(amqp),
                s3: up(s3),
            }
        })
    }

    /// In the order they go down.
    fn each(&self) -> [(&'static str, &Private); 5] {
        [
            ("postgres", &self.postgres),
            ("mysql", &self.mariadb),
            ("redis", &self.redis),
            ("amqp", &self.rabbitmq),
            ("s3", &self.s3),
        ]
    }

    fn sinks(&self) -> SinkUrls {
        SinkUrls {
            postgres: self.postgres.url().into(),
            mysql: self.mariadb.url().into(),
            amqp: self.rabbitmq.url().into(),
            redis: self.redis.url().into(),
        }
    }

    fn store(&self) -> StoreConfig {
        StoreConfig::S3 {
            bucket: "recordings".into(),
            endpoint: Some(self.s3.url().into()),
            region: "us-east-1".into(),
            access_key_id: Some("voipaccess".into()),
            secret_access_key: Some("voipsecret".into()),
            virtual_hosted: false,
        }
    }
}

/// `[archive]` into the S3 server, rows in PostgreSQL, quick retries.
fn archive_toml(dir: &Path, s3: &str) -> String {
    format!(
        "[archive]\nspool = \"{0}/recordings\"\ncdr_sink = \"postgres\"\nretry_min_ms = 200\n\
         retry_max_ms = 2000\npoll_ms = 200\n[archive.store]\nkind = \"s3\"\nbucket = \"recordings\"\n\
         endpoint = \"{s3}\"\naccess_key_id = \"voipaccess\"\nsecret_access_key = \"voipsecret\"\n\
         [archive.encryption]\ngenerated_key_file = \"{0}/archive-key.hex\"\n",
        dir.display()
    )
}

/// What the outages' schedule saw: how long each server was down, and
/// whether /metrics showed each one's lag while it was.
struct Outages {
    down_for: Vec<(&'static str, Duration)>,
    lag_seen: Vec<&'static str>,
    /// Calls acknowledged once Redis was down (Redis keeps no data across
    /// its restart: the calls delivered before are gone from it).
    acked_at_redis_stop: usize,
}

/// Whether /metrics shows `name` (a sink, or `s3`) behind: a sink lagging
/// and failing, the archive's queue holding recordings.
fn lagging(http: &str, name: &str) -> bool {
    if name == "s3" {
        return metric(http, "tollgate_archive_queue_depth", "").is_some_and(|d| d >= 5.0);
    }
    let sink = format!("sink=\"{name}\"");
    metric(http, "tollgate_cdr_sink_lag", &sink).is_some_and(|l| l > 0.0)
        && metric(http, "tollgate_cdr_sink_failing", &sink) == Some(1.0)
}

/// Stops each server [`STAGGER`] after the one before and starts it again
/// [`OUTAGE`] after it was down, each on a thread of its own (a broker's
/// stop or boot takes seconds), watching /metrics meanwhile.
fn outages(servers: &Servers, http: &str, seen: &Seen) -> Outages {
    let each = servers.each();
    let down: Vec<AtomicBool> = each.iter().map(|_| AtomicBool::new(false)).collect();
    let redis_mark = AtomicUsize::new(0);
    let t0 = Instant::now();
    let say = |what: &str| eprintln!("{:>5.1} s: {what}", t0.elapsed().as_secs_f64());
    std::thread::scope(|s| {
        let threads: Vec<_> = each
            .iter()
            .enumerate()
            .map(|(i, (name, server))| {
                let (down, redis_mark, say) = (&down, &redis_mark, &say);
                s.spawn(move || {
                    std::thread::sleep(STAGGER * i as u32);
                    server.stop();
                    // Calls acknowledged from now on reach Redis only after
                    // its restart (those before may have been delivered to it).
                    if *name == "redis" {
                        redis_mark.store(seen.acked.lock().unwrap().len(), Ordering::Relaxed);
                    }
                    let at = Instant::now();
                    down[i].store(true, Ordering::Relaxed);
                    say(&format!("{name} down"));
                    std::thread::sleep(OUTAGE);
                    down[i].store(false, Ordering::Relaxed);
                    let took = at.elapsed();
                    server.resume();
                    say(&format!("{name} back"));
                    (*name, took)
                })
            })
            .collect();
        let mut lag_seen = Vec::new();
        while threads.iter().any(|t| !t.is_finished()) {
            for (i, (name, _)) in each.iter().enumerate() {
                if down[i].load(Ordering::Relaxed)
                    && !lag_seen.contains(name)
                    && lagging(http, name)
                {
                    say(&format!("/metrics shows {name} behind"));
                    lag_seen.push(*name);
                }
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        Outages {
            down_for: threads
                .into_iter()
                .map(|t| t.join().expect("an outage"))
                .collect(),
            lag_seen,
            acked_at_redis_stop: redis_mark.load(Ordering::Relaxed),
        }
    })
}

/// The node stayed up and answered all along: every call's requests, every
/// ping, the RTP relayed; each server was down its full time and /metrics
/// showed it.
fn up_throughout(
    tg: &mut Proc,
    seen: &Seen,
    (asked, missed): (usize, Vec<String>),
    out: &Outages,
    servers: &Servers,
) {
    assert!(
        tg.child.try_wait().expect("the node's status").is_none(),
        "the node stayed up\n{}",
        tg.log_text()
    );
    let failures = seen.failures.lock().unwrap().clone();
    assert!(
        failures.is_empty(),
        "NG requests of calls refused: {failures:#?}"
    );
    assert!(
        missed.is_empty(),
        "{} of {asked} pings not answered: {missed:#?}",
        missed.len()
    );
    for (name, took) in &out.down_for {
        assert!(*took >= OUTAGE, "{name} was down {took:?}");
    }
    for (name, _) in servers.each() {
        assert!(
            out.lag_seen.contains(&name),
            "/metrics never showed {name}'s lag"
        );
    }
    let (sent, received) = (
        seen.sent.load(Ordering::Relaxed),
        seen.received.load(Ordering::Relaxed),
    );
    assert!(
        received * 100 >= sent * 99,
        "RTP relayed throughout: {received} of {sent} packets"
    );
    eprintln!("{received} RTP packets relayed, {asked} pings answered");
}

/// Every recorded call archived once: one row each, three objects per row
/// in the store, each row's SHA-256 the stored object's.
fn archived_once(dir: &Path, recorded: &BTreeSet<String>, store: &StoreConfig, tg: &Proc) {
    let mut rows = Vec::new();
    let done = wait_until(Duration::from_secs(120), || {
        let st = cli_json(dir, &["status", "--json"]);
        rows = cli_json(dir, &["list", "--json"])
            .as_array()
            .cloned()
            .unwrap_or_default();
        st["depth"] == 0 && rows.len() >= recorded.len()
    });
    assert!(
        done,
        "{} of {} recordings archived within 120 s\n{}",
        rows.len(),
        recorded.len(),
        tg.log_text()
    );
    let mut per_call: HashMap<String, usize> = HashMap::new();
    for r in &rows {
        *per_call
            .entry(r["call_id"].as_str().unwrap_or_default().to_string())
            .or_default() += 1;
    }
    for id in recorded {
        assert_eq!(per_call.get(id), Some(&1), "recording of {id}: rows");
    }
    assert_eq!(rows.len(), recorded.len(), "no recording twice or unknown");
    assert_rows_match_store(&rows, store);
}

#[test]
fn each_server_down_60_s_under_calls_loses_no_cdr_and_no_recording() {
    tollgate_tests::require_root();
    let dir = TempDir::new("outages");
    let servers = Servers::start(&dir.0.join("servers"));
    let (ng, http) = ("127.0.0.1:22590", "127.0.0.1:9250");
    let sections = format!(
        "{}{}[http]\nlisten = \"{http}\"\n",
        cdrs::sinks_toml(&dir.0, &servers.sinks()),
        archive_toml(&dir.0, servers.s3.url())
    );
    let cfg = cdrs::parse(&sections);
    let prefix = unique("out");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let events = rt.block_on(EventQueue::bind(servers.rabbitmq.url(), &prefix));
    let (mut tg, _) = peers::tollgate_loopback(
        &dir.0,
        ng,
        (36100, 36499),
        &["--delete-delay", "0"],
        &sections,
    );
    let ng: SocketAddr = ng.parse().unwrap();

    let seen = Arc::new(Seen::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (calls, pings) = {
        let (s, st, p) = (seen.clone(), stop.clone(), prefix.clone());
        let calls = std::thread::spawn(move || callers(ng, &p, 100_000, &st, &s));
        let st = stop.clone();
        let pings = std::thread::spawn(move || pinger(ng, &st));
        (calls, pings)
    };
    let warm = wait_until(Duration::from_secs(60), || {
        seen.acked.lock().unwrap().len() >= 40
    });
    assert!(
        warm,
        "calls are not being set up: {:?}\n{}",
        seen.failures.lock().unwrap(),
        tg.log_text()
    );

    // The test's queue keeps what the broker confirmed across its restart.
    drop(events);
    let out = outages(&servers, http, &seen);
    // A little traffic after the last server is back, then the calls end.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    calls.join().unwrap();
    let pings = pings.join().unwrap();
    up_throughout(&mut tg, &seen, pings, &out, &servers);

    let acked_in_order = seen.acked.lock().unwrap().clone();
    let acked: BTreeSet<String> = acked_in_order.iter().cloned().collect();
    let recorded: BTreeSet<String> = seen
        .recorded
        .lock()
        .unwrap()
        .iter()
        .filter(|id| acked.contains(*id))
        .cloned()
        .collect();
    eprintln!("{} calls, {} recorded", acked.len(), recorded.len());
    drained(&cfg, Duration::from_secs(120));
    rt.block_on(async {
        let mut events = EventQueue::bind(servers.rabbitmq.url(), &prefix).await;
        cdrs::check_sinks(
            &dir.0,
            &cfg,
            &prefix,
            &acked,
            &acked_in_order[out.acked_at_redis_stop..],
            &mut events,
        )
        .await;
    });
    archived_once(&dir.0, &recorded, &servers.store(), &tg);
}

/// Fills the file system holding `path` with one file there.
fn fill(path: &Path) {
    use std::io::Write;
    let mut f = std::fs::File::create(path).expect("the filler");
    let chunk = vec![0u8; 64 << 10];
    for _ in 0..1 << 14 {
        if let Err(e) = f.write_all(&chunk).and_then(|()| f.sync_data()) {
            assert_eq!(
                e.raw_os_error(),
                Some(libc::ENOSPC),
                "filling {}: {e}",
                path.display()
            );
            return;
        }
    }
    panic!("{} never filled", path.display());
}

/// Each of `acked` (and no other call starting `prefix`) exactly once in
/// `dir`'s SQLite and JSON-lines sinks.
fn once_in_sqlite_and_jsonl(dir: &Path, prefix: &str, acked: &[String]) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let counts = rt.block_on(cdrs::sql_counts(
        &format!("sqlite://{}/cdr.sqlite", dir.display()),
        prefix,
    ));
    let lines = jsonl_per_call(dir, prefix);
    for id in acked {
        assert_eq!(
            counts.get(id),
            Some(&(1, 2)),
            "sqlite: call {id} (call rows, leg rows)"
        );
        assert_eq!(lines.get(id), Some(&1), "JSON lines: call {id}");
    }
    assert_eq!(counts.len(), acked.len(), "sqlite: no call unknown");
    assert_eq!(lines.len(), acked.len(), "JSON lines: no call unknown");
}

/// Makes calls until one is refused (at most 5,000): the refusal.
fn until_refused(mut call: impl FnMut() -> Result<(), String>) -> String {
    for _ in 0..5000 {
        if let Err(e) = call() {
            return e;
        }
    }
    panic!("new calls never refused")
}

/// The log of a node whose spool's disk filled: one error for it, naming
/// the spool and ENOSPC, and no CDR dropped.
fn one_error_for_the_full_disk(log: &str, spool: &Path) {
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("held in memory until the spool can write"))
        .collect();
    assert_eq!(errors.len(), 1, "one error for the full disk:\n{log}");
    assert!(
        errors[0].contains(&spool.display().to_string())
            && errors[0].contains("No space left on device"),
        "the error names the spool and the cause: {}",
        errors[0]
    );
    assert!(!log.contains("CDR not spooled"), "no CDR dropped:\n{log}");
}

/// Waits until every sink of `cfg` has every record.
fn drained(cfg: &tollgate_cdr::config::CdrConfig, within: Duration) {
    let (spool, names) = (cfg.spool(), cfg.sink_names());
    cdrs::wait_drained(
        || tollgate_cdr::spool::inspect(&spool, &names).expect("read the spool"),
        within,
    );
}

/// How many lines of `dir/cdr.jsonl` each call starting `prefix` has.
fn jsonl_per_call(dir: &Path, prefix: &str) -> HashMap<String, usize> {
    let mut lines: HashMap<String, usize> = HashMap::new();
    for l in cdrs::jsonl(&dir.join("cdr.jsonl")) {
        if let Some(id) = l["call_id"].as_str().filter(|c| c.starts_with(prefix)) {
            *lines.entry(id.to_string()).or_default() += 1;
        }
    }
    lines
}

/// Offer, answer and (unless `keep`) delete of call `id`, with no media;
/// the first refusal's message.
fn ng_call(client: &mut tollgate_ng::client::NgClient, id: &str, keep: bool) -> Result<(), String> {
    let sdp = |port| Value::str(&peers::pcmu_sdp(SocketAddr::from(([127, 0, 0, 1], port))));
    let steps = [
        ("offer", vec![("sdp", sdp(7000))]),
        (
            "answer",
            vec![("sdp", sdp(7002)), ("to-tag", Value::str("B"))],
        ),
        ("delete", vec![]),
    ];
    for (cmd, extra) in steps.into_iter().take(if keep { 2 } else { 3 }) {
        match client.command(cmd, params(id, extra)) {
            Ok(v) if v.get("result").and_then(Value::as_str) == Some("ok") => {}
            Ok(v) => {
                return Err(format!(
                    "{cmd}: {}",
                    v.get("error-reason").and_then(Value::as_str).unwrap_or("?")
                ))
            }
            Err(e) => return Err(format!("{cmd}: {e:?}")),
        }
    }
    Ok(())
}

#[test]
fn the_spools_disk_filled_under_calls_holds_cdrs_refuses_new_calls_then_writes_them_all() {
    tollgate_tests::require_root();
    let dir = TempDir::new("spoolfull");
    let disk = tollgate_tests::Tmpfs::mount(&dir.0.join("disk"), "4m");
    let spool = disk.0.join("spool");
    let (ng, http) = ("127.0.0.1:22591", "127.0.0.1:9251");
    let sections = format!(
        "[cdr]\nspool_dir = \"{}\"\nhold_mb = 1\nsinks = [\n  {{ kind = \"sqlite\", url = \"sqlite://{1}/cdr.sqlite\" }},\n  \
         {{ kind = \"jsonl\", path = \"{1}/cdr.jsonl\" }},\n]\n[http]\nlisten = \"{http}\"\n",
        spool.display(),
        dir.0.display()
    );
    let cfg = cdrs::parse(&sections);
    let (tg, _) = peers::tollgate_loopback(
        &dir.0,
        ng,
        (36900, 36949),
        &["--delete-delay", "0"],
        &sections,
    );
    let mut client = peers::ng_client(None, ng.parse().unwrap());
    client.timeout = Duration::from_secs(10);
    let prefix = unique("full");
    let mut acked = Vec::new();
    let call = |client: &mut _, acked: &mut Vec<String>| {
        let id = format!("{prefix}-{}", acked.len());
        ng_call(client, &id, false).map(|()| acked.push(id))
    };
    for _ in 0..30 {
        call(&mut client, &mut acked).expect("a call before the disk fills");
    }
    // A call up while the disk fills, ended once the node refuses new ones.
    let early = format!("{prefix}-early");
    ng_call(&mut client, &early, true).expect("the early call up");

    fill(&disk.0.join("filler"));
    let filled_at = acked.len();
    let refused = until_refused(|| call(&mut client, &mut acked));
    assert!(
        refused.starts_with("offer:") && refused.contains("the CDR spool cannot write"),
        "{refused}"
    );
    let held_calls = acked.len() - filled_at;
    assert!(
        held_calls > 20,
        "calls went on while the disk was full: {held_calls}"
    );
    let ping = client.command("ping", vec![]).expect("NG answers");
    assert_eq!(ping.get("result").and_then(Value::as_str), Some("pong"));
    assert!(metric(http, "tollgate_cdr_spool_held_records", "").is_some_and(|n| n > 0.0));
    assert_eq!(
        metric(http, "tollgate_cdr_spool_refusing_calls", ""),
        Some(1.0)
    );
    // The call already up is released normally, its CDR held too.
    let params_early = params(&early, vec![]);
    let deleted = client
        .command("delete", params_early)
        .expect("delete the early call");
    assert_eq!(deleted.get("result").and_then(Value::as_str), Some("ok"));
    acked.push(early);

    one_error_for_the_full_disk(&tg.log_text(), &spool);

    // Space returns: the held records are written and calls come in again.
    std::fs::remove_file(disk.0.join("filler")).expect("free the disk");
    let written = wait_until(Duration::from_secs(10), || {
        metric(http, "tollgate_cdr_spool_held_records", "") == Some(0.0)
            && metric(http, "tollgate_cdr_spool_refusing_calls", "") == Some(0.0)
    });
    assert!(
        written,
        "held records written once freed\n{}",
        tg.log_text()
    );
    call(&mut client, &mut acked).expect("new calls once the disk has room");
    drained(&cfg, Duration::from_secs(60));
    once_in_sqlite_and_jsonl(&dir.0, &prefix, &acked);
    eprintln!(
        "{} calls, {held_calls} of them while the disk was full",
        acked.len()
    );
}

/// The restart edge: the node SIGKILLed after a call's CDR was spooled but
/// before the call-state journal heard of its end (a window one sync
/// long, made here by spooling the CDR with the node down). The restarted
/// node must not restore that call (a repeated delete would write its CDR
/// again) and must restore the call still up.
#[test]
fn a_call_whose_cdr_was_spooled_when_the_node_died_is_not_restored() {
    tollgate_tests::require_root();
    let dir = TempDir::new("cdr-edge");
    let ng = "127.0.0.1:22592";
    let sections = format!(
        "[cdr]\nspool_dir = \"{0}/spool\"\nsinks = [{{ kind = \"jsonl\", path = \"{0}/cdr.jsonl\" }}]\n",
        dir.0.display()
    );
    let cfg = cdrs::parse(&sections);
    let start = || {
        peers::tollgate_loopback(
            &dir.0,
            ng,
            (36950, 36999),
            &["--delete-delay", "0"],
            &sections,
        )
        .0
    };
    let mut tg = start();
    let mut client = peers::ng_client(None, ng.parse().unwrap());
    let prefix = unique("edge");
    let (up, ended) = (format!("{prefix}-up"), format!("{prefix}-ended"));
    for id in [&up, &ended] {
        ng_call(&mut client, id, true).expect("a call up");
    }
    peers::kill(&mut tg);
    drop(tg);
    {
        let (spool, _) = tollgate_cdr::spool::Spool::open(cfg.spool(), &cfg.sink_names())
            .expect("the dead node's spool");
        let cdr = cdrs::full_cdr(&ended, tollgate_cdr::model::now_ms());
        spool
            .append(&tollgate_cdr::model::Record::Ended(Box::new(cdr)))
            .wait()
            .expect("the CDR spooled");
    }

    let tg = start();
    // What NG answers `cmd` for call `id`: "ok" and any warning, or the
    // refusal.
    let ask = |client: &mut tollgate_ng::client::NgClient, cmd: &str, id: &str| match client
        .command(cmd, params(id, vec![]))
    {
        Ok(r) => match r.get("warning").and_then(Value::as_str) {
            Some(w) => format!("ok, warning: {w}"),
            None => r
                .get("result")
                .and_then(Value::as_str)
                .unwrap_or("?")
                .to_string(),
        },
        Err(e) => format!("{e:?}"),
    };
    let log = || tg.log_text();
    assert_eq!(ask(&mut client, "query", &up), "ok", "{}", log());
    assert!(
        ask(&mut client, "query", &ended).contains("Unknown call-id"),
        "{}",
        log()
    );
    assert!(log().contains("journaled call not restored: its CDR is already spooled"));
    // A delete repeated to it (rtpengine's answer to an unknown call).
    assert!(
        ask(&mut client, "delete", &ended).contains("Call-ID not found"),
        "{}",
        log()
    );
    assert_eq!(ask(&mut client, "delete", &up), "ok", "{}", log());
    drained(&cfg, Duration::from_secs(60));
    let lines = jsonl_per_call(&dir.0, &prefix);
    assert_eq!(
        (lines.get(&up), lines.get(&ended)),
        (Some(&1), Some(&1)),
        "one CDR each: {lines:?}"
    );
}
