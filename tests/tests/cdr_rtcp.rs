//! The RTCP columns of `cdr_legs` (migration 0002: remote loss, remote
//! jitter, RTT) on real PostgreSQL, MariaDB and SQLite. A database already
//! at schema 0001 (applied by hand, as an older Tollgate or another tool
//! left it) holding a leg row is migrated by the sink: the old row stays,
//! its new columns NULL; then CDRs with and without RTCP figures land in
//! them, read back from the columns and through `tollgate cdr export`'s
//! CSV. Each engine gets a database of its own, created here on the shared
//! servers (`scripts/data`), so the databases other tests use never see a
//! schema this test applies.

use sqlx::Executor;
use tollgate_cdr::config::SinkKind;
use tollgate_cdr::export::{Format, Writer};
use tollgate_cdr::model::Cdr;
use tollgate_cdr::sink::sql::Db;
use tollgate_tests::cdrs::full_cdr;
use tollgate_tests::netns::unique;
use tollgate_tests::services::{self, Service};
use tollgate_tests::TempDir;

const MIGRATIONS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../cdr/migrations");

/// Runs `sql` on the server of `base` (a URL with a database).
async fn on_server(base: &str, sql: &str) {
    if base.starts_with("postgres") {
        let pool = sqlx::PgPool::connect(base).await.expect("PostgreSQL");
        pool.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    } else {
        let pool = sqlx::MySqlPool::connect(base).await.expect("MariaDB");
        pool.execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}

/// A fresh database on `base`'s server; its URL.
async fn fresh_database(base: &str, name: &str) -> String {
    let (server, _) = base.rsplit_once('/').expect("a database in the URL");
    on_server(base, &format!("CREATE DATABASE {name}")).await;
    format!("{server}/{name}")
}

/// Schema 0001 applied by hand, and one leg row written under it.
async fn at_schema_0001<DB: sqlx::Database>(pool: &sqlx::Pool<DB>, engine: &str)
where
    for<'c> &'c sqlx::Pool<DB>: sqlx::Executor<'c, Database = DB>,
{
    let path = format!("{MIGRATIONS}/{engine}/0001_cdrs.sql");
    let schema = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    sqlx::raw_sql(&schema)
        .execute(pool)
        .await
        .expect("schema 0001");
    let old = "INSERT INTO cdr_legs (call_id, leg, sip_call_id, rx_packets) VALUES ('old-call', 'a', 'old-call', 5)";
    pool.execute(old).await.expect("a row of schema 0001");
}

/// Two CDRs: one whose A leg reported in RTCP (B did not), one with none.
fn cdrs(prefix: &str, t0: i64) -> (Cdr, Cdr) {
    let mut with = full_cdr(&format!("{prefix}-rtcp"), t0);
    with.legs[0].remote_lost = Some(-2);
    with.legs[0].remote_jitter_ms = Some(2.75);
    with.legs[0].rtt_ms = Some(41.5);
    with.legs[1].remote_lost = None;
    with.legs[1].remote_jitter_ms = None;
    with.legs[1].rtt_ms = None;
    let mut without = full_cdr(&format!("{prefix}-none"), t0 + 1);
    for l in &mut without.legs {
        (l.remote_lost, l.remote_jitter_ms, l.rtt_ms) = (None, None, None);
    }
    (with, without)
}

/// Migrates `url` (at schema 0001) through the sink, inserts the CDRs, and
/// checks the rows and the CSV export.
async fn migrate_insert_export(kind: SinkKind, url: &str) -> Vec<Vec<Rtcp>> {
    let prefix = unique("rtcp");
    let t0 = 1_795_400_000_000;
    let (with, without) = cdrs(&prefix, t0);
    let db = Db::connect(kind, url)
        .await
        .expect("the sink migrates 0001 to 0002");
    db.insert(&[&with, &without]).await.expect("insert");
    db.insert(&[&with]).await.expect("a replay is a no-op");
    let mut csv = Vec::new();
    let mut w = Writer::new(&mut csv, Format::Csv).unwrap();
    let since = chrono::DateTime::from_timestamp_millis(t0).unwrap();
    let mut back = Vec::new();
    db.export(since, |c| {
        w.write(&c).unwrap();
        back.push(c);
        Ok(())
    })
    .await
    .expect("export");
    w.finish().unwrap();
    assert_eq!(back, vec![with.clone(), without.clone()], "{kind:?} export");
    let text = String::from_utf8(csv).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].ends_with(
            "a_remote_lost,a_remote_jitter_ms,a_rtt_ms,b_remote_lost,b_remote_jitter_ms,b_rtt_ms"
        ),
        "{text}"
    );
    assert!(
        lines[1].ends_with(",-2,2.75,41.5,,,"),
        "{kind:?} CSV: {text}"
    );
    assert!(lines[2].ends_with(",,,,,,"), "{kind:?} CSV: {text}");
    let mut out = Vec::new();
    for id in [&with.call_id, &without.call_id, "old-call"] {
        out.push(rtcp_rows(kind, url, id).await);
    }
    out
}

/// A call's legs: (leg, remote_lost, remote_jitter_ms, rtt_ms).
type Rtcp = (String, Option<i64>, Option<f64>, Option<f64>);

async fn rtcp_rows(kind: SinkKind, url: &str, call_id: &str) -> Vec<Rtcp> {
    let p = if kind == SinkKind::Postgres {
        "$1"
    } else {
        "?"
    };
    let sql = format!(
        "SELECT leg, remote_lost, remote_jitter_ms, rtt_ms FROM cdr_legs WHERE call_id = {p} ORDER BY leg"
    );
    match kind {
        SinkKind::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::query_as(&sql).bind(call_id).fetch_all(&pool).await
        }
        SinkKind::Mysql => {
            let pool = sqlx::MySqlPool::connect(url).await.unwrap();
            sqlx::query_as(&sql).bind(call_id).fetch_all(&pool).await
        }
        _ => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::query_as(&sql).bind(call_id).fetch_all(&pool).await
        }
    }
    .unwrap_or_else(|e| panic!("{kind:?}: {sql}: {e}"))
}

fn expected() -> Vec<Vec<Rtcp>> {
    let none = |leg: &str| (leg.to_string(), None, None, None);
    vec![
        vec![("a".into(), Some(-2), Some(2.75), Some(41.5)), none("b")],
        vec![none("a"), none("b")],
        vec![none("a")],
    ]
}

/// The test on a database of its own on `service`'s server, dropped after.
async fn on_own_database(service: Service, kind: SinkKind, engine: &str) {
    let name = unique(&format!("tg_rtcp_{engine}")).to_lowercase();
    let base = services::url(service);
    let url = fresh_database(&base, &name).await;
    match kind {
        SinkKind::Postgres => {
            at_schema_0001(&sqlx::PgPool::connect(&url).await.unwrap(), engine).await
        }
        _ => at_schema_0001(&sqlx::MySqlPool::connect(&url).await.unwrap(), engine).await,
    }
    assert_eq!(migrate_insert_export(kind, &url).await, expected());
    on_server(&base, &format!("DROP DATABASE {name}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_migrates_to_the_rtcp_columns_and_stores_them() {
    on_own_database(Service::Postgres, SinkKind::Postgres, "postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_migrates_to_the_rtcp_columns_and_stores_them() {
    on_own_database(Service::Mariadb, SinkKind::Mysql, "mysql").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_migrates_to_the_rtcp_columns_and_stores_them() {
    let dir = TempDir::new("cdr-rtcp-sqlite");
    let url = format!("sqlite://{}/cdr.sqlite?mode=rwc", dir.0.display());
    at_schema_0001(&sqlx::SqlitePool::connect(&url).await.unwrap(), "sqlite").await;
    let got = migrate_insert_export(SinkKind::Sqlite, &url).await;
    assert_eq!(got, expected());
}
