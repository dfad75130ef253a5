//! What the CDR tests share: a CDR with every field filled, a `[cdr]`
//! config with every sink kind pointed at the real servers, readers that
//! look at what actually landed in each sink (SQL rows, the JSON-lines
//! file, messages on a queue bound to the AMQP exchange, Redis keys) and
//! in the spool, and a way to hold the SQLite sink behind.

use crate::services::{self, Service};
use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use sqlx::Row;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};
use tollgate_cdr::config::CdrConfig;
use tollgate_cdr::model::{Cdr, Record};
use tollgate_cdr::spool::{segment, SpoolConfig};

/// A CDR with every field set, distinct per `call_id`.
pub use tollgate_bench::cdr::sample_cdr as full_cdr;

/// A `[cdr]` section with a spool under `dir` and one sink of each kind,
/// on the shared servers.
pub fn all_sinks_toml(dir: &Path) -> String {
    sinks_toml(
        dir,
        &SinkUrls {
            postgres: services::url(Service::Postgres),
            mysql: services::url(Service::Mariadb),
            amqp: services::url(Service::Rabbitmq),
            redis: services::url(Service::Redis),
        },
    )
}

/// Where the server sinks of [`sinks_toml`] are.
pub struct SinkUrls {
    pub postgres: String,
    pub mysql: String,
    pub amqp: String,
    pub redis: String,
}

/// A `[cdr]` section with a spool under `dir` and one sink of each kind,
/// the servers' at `urls`.
pub fn sinks_toml(dir: &Path, urls: &SinkUrls) -> String {
    format!(
        r#"
[cdr]
spool_dir = "{dir}/spool"
sinks = [
  {{ kind = "sqlite", url = "sqlite://{dir}/cdr.sqlite" }},
  {{ kind = "postgres", url = "{pg}" }},
  {{ kind = "mysql", url = "{my}" }},
  {{ kind = "amqp", url = "{amqp}" }},
  {{ kind = "redis", url = "{redis}", ended_ttl_secs = 600 }},
  {{ kind = "jsonl", path = "{dir}/cdr.jsonl" }},
]
"#,
        dir = dir.display(),
        pg = urls.postgres,
        my = urls.mysql,
        amqp = urls.amqp,
        redis = urls.redis,
    )
}

/// [`all_sinks_toml`], parsed.
pub fn all_sinks(dir: &Path) -> CdrConfig {
    parse(&all_sinks_toml(dir))
}

/// A `[cdr]` section, parsed and validated.
pub fn parse(toml: &str) -> CdrConfig {
    #[derive(serde::Deserialize)]
    struct Section {
        cdr: CdrConfig,
    }
    let cfg = toml::from_str::<Section>(toml)
        .expect("test config parses")
        .cdr;
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

/// Waits until every sink in the spool's status has taken everything.
pub fn wait_drained(status: impl Fn() -> tollgate_cdr::spool::Status, within: Duration) {
    let end = Instant::now() + within;
    loop {
        let st = status();
        if st.last_seq > 0 && st.sinks.iter().all(|s| s.lag == 0) {
            return;
        }
        assert!(
            Instant::now() < end,
            "sinks did not drain within {within:?}: {st:#?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The call ids of the CDRs the spool holds after record `after`, read
/// from its segment files (with the node stopped): what a sink whose
/// cursor is at `after` has still to take.
pub fn spooled_cdrs_after(spool: &SpoolConfig, after: u64) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let dir = std::fs::read_dir(&spool.dir)
        .unwrap_or_else(|e| panic!("read the spool {}: {e}", spool.dir.display()));
    for entry in dir {
        let path = entry.expect("a spool entry").path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let Some(first) = segment::parse_name(&name) else {
            continue;
        };
        let bytes = std::fs::read(&path).expect("read a segment");
        for found in segment::scan(&bytes, first).records {
            if found.seq <= after {
                continue;
            }
            let rec: Record = serde_json::from_slice(found.payload(&bytes))
                .unwrap_or_else(|e| panic!("record {} in {}: {e}", found.seq, path.display()));
            if let Record::Ended(cdr) = rec {
                out.insert(cdr.call_id);
            }
        }
    }
    out
}

/// Holds the write lock of an SQLite sink's database, so that sink can
/// take nothing (its inserts wait, time out and are retried) until
/// [`SqliteHold::release`].
pub struct SqliteHold(sqlx::SqliteConnection);

impl SqliteHold {
    /// Takes the lock, once any insert in progress has committed.
    pub async fn take(url: &str) -> SqliteHold {
        use sqlx::Connection;
        let mut conn = sqlx::SqliteConnection::connect(url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
        sqlx::query("BEGIN IMMEDIATE")
            .execute(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("lock {url}: {e}"));
        SqliteHold(conn)
    }

    pub async fn release(mut self) {
        use sqlx::Connection;
        sqlx::query("ROLLBACK")
            .execute(&mut self.0)
            .await
            .expect("release the SQLite lock");
        self.0.close().await.expect("close the SQLite connection");
    }
}

/// How many call rows and leg rows each call id (starting `prefix`) has in
/// an SQL sink.
pub async fn sql_counts(url: &str, prefix: &str) -> HashMap<String, (i64, i64)> {
    let like = format!("{prefix}%");
    let (calls, legs) = if url.starts_with("mysql") {
        ("cdrs", "cdr_legs")
    } else {
        ("call_logs", "cdr_legs")
    };
    let q_calls = format!(
        "SELECT call_id, COUNT(*) AS n FROM {calls} WHERE call_id LIKE {} GROUP BY call_id",
        ph(url, 1)
    );
    let q_legs = format!(
        "SELECT call_id, COUNT(*) AS n FROM {legs} WHERE call_id LIKE {} GROUP BY call_id",
        ph(url, 1)
    );
    let mut out: HashMap<String, (i64, i64)> = HashMap::new();
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(url)
        .await
        .expect("connect to the sink");
    for (q, second) in [(q_calls, false), (q_legs, true)] {
        for row in sqlx::query(&q)
            .bind(&like)
            .fetch_all(&pool)
            .await
            .expect("count rows")
        {
            let id: String = row.get("call_id");
            let n: i64 = row.get("n");
            let e = out.entry(id).or_default();
            if second {
                e.1 = n;
            } else {
                e.0 = n;
            }
        }
    }
    out
}

/// Placeholder `n` in the URL's dialect.
pub fn ph(url: &str, n: usize) -> String {
    if url.starts_with("postgres") {
        format!("${n}")
    } else {
        "?".into()
    }
}

/// JSON lines of the file, parsed.
pub fn jsonl(path: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("every line is JSON"))
        .collect()
}

/// A queue of our own bound to the `events` exchange: every event published
/// after it was first bound. Durable, so it and its messages outlive a
/// broker restart; the broker removes it two minutes after its last use.
pub struct EventQueue {
    _conn: Connection,
    consumer: lapin::Consumer,
}

/// One message taken from the queue.
#[derive(Debug, Clone)]
pub struct Event {
    pub routing_key: String,
    pub message_id: String,
    pub body: serde_json::Value,
}

impl EventQueue {
    /// Declares (or finds again) the queue `name` and consumes the call
    /// events from it.
    pub async fn bind(url: &str, name: &str) -> EventQueue {
        Self::bind_to(url, name, "call.#").await
    }

    /// The same, for the events whose routing key matches `pattern`.
    pub async fn bind_to(url: &str, name: &str, pattern: &str) -> EventQueue {
        let props = ConnectionProperties::default()
            .with_executor(tokio_executor_trait::Tokio::current())
            .with_reactor(tokio_reactor_trait::Tokio);
        let conn = Connection::connect(url, props).await.expect("AMQP connect");
        let ch = conn.create_channel().await.expect("channel");
        ch.exchange_declare(
            "events",
            lapin::ExchangeKind::Topic,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare the exchange");
        let mut expires = FieldTable::default();
        expires.insert(
            "x-expires".into(),
            lapin::types::AMQPValue::LongInt(120_000),
        );
        let q = ch
            .queue_declare(
                name,
                QueueDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                expires,
            )
            .await
            .expect("declare a queue");
        ch.queue_bind(
            q.name().as_str(),
            "events",
            pattern,
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("bind");
        let consumer = ch
            .basic_consume(
                q.name().as_str(),
                "cdr-test",
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("consume");
        EventQueue {
            _conn: conn,
            consumer,
        }
    }

    /// Every message whose call id starts `prefix`, until none came for
    /// `quiet`.
    pub async fn drain(&mut self, prefix: &str, quiet: Duration) -> Vec<Event> {
        let mut out = Vec::new();
        while let Ok(Some(d)) = tokio::time::timeout(quiet, self.consumer.next()).await {
            let d = d.expect("delivery");
            d.ack(BasicAckOptions::default()).await.expect("ack");
            let body: serde_json::Value = serde_json::from_slice(&d.data).expect("JSON body");
            if body["call_id"]
                .as_str()
                .is_some_and(|c| c.starts_with(prefix))
            {
                out.push(Event {
                    routing_key: d.routing_key.to_string(),
                    message_id: d
                        .properties
                        .message_id()
                        .as_ref()
                        .map(|m| m.to_string())
                        .unwrap_or_default(),
                    body,
                });
            }
        }
        out
    }
}

/// A CDR as read back from an SQL sink's columns.
#[derive(Debug, PartialEq)]
pub struct Landed {
    pub columns: Vec<(String, String)>,
    pub legs: Vec<Vec<(String, String)>>,
    pub record: Cdr,
}

/// Every column of the call's row and of its leg rows, as text (times as
/// UTC milliseconds), read through the engine's own driver.
pub async fn landed<DB>(pool: &sqlx::Pool<DB>, calls: &str, call_id: &str) -> Landed
where
    DB: sqlx::Database,
    for<'q> DB::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'r> Option<String>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<i64>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<f64>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    for<'r> Option<chrono::DateTime<chrono::Utc>>: sqlx::Decode<'r, DB> + sqlx::Type<DB>,
    usize: sqlx::ColumnIndex<DB::Row>,
{
    use sqlx::{Column, TypeInfo};
    let p = if std::any::type_name::<DB>().contains("Postgres") {
        "$1"
    } else {
        "?"
    };
    let text = |row: &DB::Row| -> Vec<(String, String)> {
        row.columns()
            .iter()
            .enumerate()
            .filter(|(_, c)| c.name() != "id")
            .map(|(i, c)| {
                let ty = c.type_info().name().to_ascii_uppercase();
                let v = if c.name().ends_with("_time") {
                    row.get::<Option<chrono::DateTime<chrono::Utc>>, _>(i)
                        .map(|t| t.timestamp_millis().to_string())
                } else if ty.contains("INT") {
                    row.get::<Option<i64>, _>(i).map(|n| n.to_string())
                } else if ty.contains("DOUBLE") || ty.contains("FLOAT") || ty == "REAL" {
                    row.get::<Option<f64>, _>(i).map(|n| n.to_string())
                } else {
                    row.get::<Option<String>, _>(i)
                };
                (c.name().to_string(), v.unwrap_or_else(|| "NULL".into()))
            })
            .collect()
    };
    let call = sqlx::query::<DB>(&format!("SELECT * FROM {calls} WHERE call_id = {p}"))
        .bind(call_id.to_string())
        .fetch_one(pool)
        .await
        .expect("the call row");
    let legs = sqlx::query::<DB>(&format!(
        "SELECT * FROM cdr_legs WHERE call_id = {p} ORDER BY leg"
    ))
    .bind(call_id.to_string())
    .fetch_all(pool)
    .await
    .expect("the leg rows");
    let columns = text(&call);
    let record = columns
        .iter()
        .find(|(n, _)| n == "record")
        .map(|(_, v)| serde_json::from_str(v).expect("record holds the CDR"))
        .expect("a record column");
    Landed {
        columns: columns.into_iter().filter(|(n, _)| n != "record").collect(),
        legs: legs.iter().map(text).collect(),
        record,
    }
}

/// The URL of the config's first sink of `kind`.
pub fn all_sinks_url(cfg: &CdrConfig, kind: &str) -> String {
    cfg.sinks
        .iter()
        .find(|s| s.kind.as_str() == kind)
        .and_then(|s| s.url.clone())
        .unwrap_or_else(|| panic!("no {kind} sink with a url"))
}

/// Every acknowledged call exactly once in every SQL sink and the file,
/// at least once on AMQP, nothing anywhere twice; the calls `in_redis`
/// ended in Redis (a Redis restarted without persistence forgets what it
/// had before).
pub async fn check_sinks(
    dir: &Path,
    cfg: &CdrConfig,
    prefix: &str,
    acked: &BTreeSet<String>,
    in_redis: &[String],
    events: &mut EventQueue,
) {
    for kind in ["postgres", "mysql", "sqlite"] {
        let url = all_sinks_url(cfg, kind);
        let counts = sql_counts(&url, &format!("{prefix}-")).await;
        for id in acked {
            assert_eq!(
                counts.get(id),
                Some(&(1, 2)),
                "{kind}: call {id} (call rows, leg rows)"
            );
        }
        let extra: Vec<_> = counts.iter().filter(|(_, c)| **c != (1, 2)).collect();
        assert!(extra.is_empty(), "{kind}: rows not exactly once: {extra:?}");
    }

    let mut per_call: HashMap<String, usize> = HashMap::new();
    for line in jsonl(&dir.join("cdr.jsonl")) {
        if let Some(id) = line["call_id"].as_str().filter(|c| c.starts_with(prefix)) {
            *per_call.entry(id.to_string()).or_default() += 1;
        }
    }
    for id in acked {
        assert_eq!(per_call.get(id), Some(&1), "JSON lines: call {id}");
    }
    assert!(
        per_call.values().all(|n| *n == 1),
        "JSON lines: a CDR twice"
    );

    let got = events.drain(prefix, Duration::from_secs(3)).await;
    let mut ended: HashMap<String, usize> = HashMap::new();
    for e in got.iter().filter(|e| e.routing_key == "call.ended") {
        assert_eq!(
            e.message_id,
            format!("{}/call.ended", e.body["call_id"].as_str().unwrap())
        );
        *ended
            .entry(e.body["call_id"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for id in acked {
        assert!(ended.contains_key(id), "AMQP: no call.ended for {id}");
    }
    let repeats: usize = ended.values().map(|n| n - 1).sum();
    eprintln!(
        "AMQP: {} call.ended messages, {repeats} of them repeats",
        ended.values().sum::<usize>()
    );
    assert!(
        repeats <= cfg.batch,
        "AMQP repeats {repeats} exceed one batch"
    );

    let redis = redis::Client::open(all_sinks_url(cfg, "redis").as_str()).unwrap();
    let mut conn = redis.get_multiplexed_tokio_connection().await.unwrap();
    for id in in_redis {
        let (active, status): (bool, Option<String>) = redis::pipe()
            .cmd("SISMEMBER")
            .arg("active_calls")
            .arg(id)
            .cmd("HGET")
            .arg(format!("session:{id}"))
            .arg("status")
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(!active, "Redis: {id} still active");
        assert_eq!(status.as_deref(), Some("answered"), "Redis: session:{id}");
    }
}
