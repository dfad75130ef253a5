//! SQL sinks through sqlx: PostgreSQL (`call_logs` + `cdr_legs`, the
//! voip_db shape), MariaDB/MySQL (`cdrs` + `cdr_legs`, the BigDB shape) and
//! SQLite (the embedded default, PostgreSQL's shape). One batch is one
//! transaction of multi-row inserts; unique keys on the call and on
//! (call, leg) turn a replayed batch into a no-op, so a CDR lands once.
//! Each call row also keeps the whole CDR as JSON (`record`), which is what
//! `tollgate cdr export` reads back. Schemas ship in `migrations/` and are
//! applied when the sink connects, or by `tollgate cdr migrate`.

use super::{Sink, SinkError};
use crate::config::SinkKind;
use crate::model::{Cdr, Leg, MediaStats, Record};
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt;
use sqlx::mysql::{MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgArguments, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{Arguments, Database, Encode, Executor, IntoArguments, Pool, Type};
use std::str::FromStr;
use std::time::Duration;

/// A connected database of one of the three kinds.
pub enum Db {
    Postgres(PgPool),
    Mysql(MySqlPool),
    Sqlite(SqlitePool),
}

/// The SQL that differs between the three.
#[derive(Debug, Clone, Copy)]
struct Dialect {
    calls: &'static str,
    mysql: bool,
}

impl Dialect {
    /// `INSERT` suffix that skips rows whose unique `key` exists.
    fn skip_existing(self, key: &[&str]) -> String {
        if self.mysql {
            format!(" ON DUPLICATE KEY UPDATE {0} = {0}", key[0])
        } else {
            format!(" ON CONFLICT ({}) DO NOTHING", key.join(", "))
        }
    }
}

impl Db {
    fn dialect(&self) -> Dialect {
        match self {
            Db::Mysql(_) => Dialect {
                calls: "cdrs",
                mysql: true,
            },
            _ => Dialect {
                calls: "call_logs",
                mysql: false,
            },
        }
    }

    /// Connects and applies the shipped migrations.
    pub async fn connect(kind: SinkKind, url: &str) -> Result<Db, SinkError> {
        let timeout = Duration::from_secs(5);
        let db = match kind {
            SinkKind::Postgres => Db::Postgres(
                PgPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect(url)
                    .await?,
            ),
            SinkKind::Mysql => Db::Mysql(
                MySqlPoolOptions::new()
                    .max_connections(4)
                    .acquire_timeout(timeout)
                    .connect(url)
                    .await?,
            ),
            SinkKind::Sqlite => {
                let opts = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal);
                if let Some(dir) = opts.get_filename().parent() {
                    std::fs::create_dir_all(dir)?;
                }
                Db::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(1)
                        .connect_with(opts)
                        .await?,
                )
            }
            other => return Err(SinkError(format!("{} is not an SQL sink", other.as_str()))),
        };
        db.migrate().await?;
        Ok(db)
    }

    pub async fn migrate(&self) -> Result<(), SinkError> {
        let done = match self {
            Db::Postgres(p) => sqlx::migrate!("migrations/postgres").run(p).await,
            Db::Mysql(p) => sqlx::migrate!("migrations/mysql").run(p).await,
            Db::Sqlite(p) => sqlx::migrate!("migrations/sqlite").run(p).await,
        };
        done.map_err(|e| SinkError(format!("schema migration: {e}")))
    }

    /// Inserts the CDRs (and their legs) that are not there yet.
    /// A batch larger than [`SPLIT_ABOVE`] goes to PostgreSQL and MariaDB
    /// as two transactions on two connections at once, so the server works
    /// on both halves in parallel; the batch is done when both committed
    /// (a retry after one failed re-inserts nothing the other committed).
    pub async fn insert(&self, cdrs: &[&Cdr]) -> Result<(), SinkError> {
        let d = self.dialect();
        let (first, second) = cdrs.split_at(if cdrs.len() > SPLIT_ABOVE {
            cdrs.len() / 2
        } else {
            cdrs.len()
        });
        match self {
            Db::Postgres(p) => {
                futures_util::try_join!(insert_unnest(p, first), insert_unnest(p, second))?;
            }
            Db::Mysql(p) => {
                futures_util::try_join!(insert(p, d, first), insert(p, d, second))?;
            }
            Db::Sqlite(p) => insert(p, d, cdrs).await?,
        }
        Ok(())
    }

    /// CDRs of calls that started at or after `since`, oldest first.
    pub async fn export(
        &self,
        since: DateTime<Utc>,
        mut each: impl FnMut(Cdr) -> Result<(), SinkError> + Send,
    ) -> Result<u64, SinkError> {
        let d = self.dialect();
        let mut visit = |json: String| {
            let cdr: Cdr = serde_json::from_str(&json)
                .map_err(|e| SinkError(format!("a stored CDR does not parse: {e}")))?;
            each(cdr)
        };
        match self {
            Db::Postgres(p) => export(p, d, since, &mut visit).await,
            Db::Mysql(p) => export(p, d, since, &mut visit).await,
            Db::Sqlite(p) => export(p, d, since, &mut visit).await,
        }
    }
}

/// One bound value, so each row's values are listed beside its columns.
enum Val {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
    Time(Option<DateTime<Utc>>),
}

fn time(ms: i64) -> Val {
    Val::Time(DateTime::from_timestamp_millis(ms))
}

fn opt_time(ms: Option<i64>) -> Val {
    Val::Time(ms.and_then(DateTime::from_timestamp_millis))
}

fn text(s: &str) -> Val {
    Val::Text(Some(s.to_string()))
}

fn opt_text(s: &Option<impl ToString>) -> Val {
    Val::Text(s.as_ref().map(ToString::to_string))
}

fn int(n: u64) -> Val {
    Val::Int(Some(n as i64))
}

const CALL_COLUMNS: [&str; 24] = [
    "call_id",
    "from_number",
    "to_number",
    "status",
    "start_time",
    "end_time",
    "duration",
    "recording_url",
    "answer_time",
    "billable_seconds",
    "sip_code",
    "sip_reason",
    "hangup_by",
    "from_uri",
    "to_uri",
    "request_uri",
    "source_ip",
    "destination_ip",
    "transport",
    "trunk",
    "gateway",
    "carrier",
    "org_id",
    "record",
];

fn call_row(c: &Cdr) -> [Val; 24] {
    [
        text(&c.call_id),
        text(&c.from_number),
        text(&c.to_number),
        text(c.disposition().as_str()),
        time(c.start_ms),
        time(c.end_ms),
        Val::Int(Some(c.duration_secs())),
        opt_text(&c.recording_url),
        opt_time(c.answer_ms),
        Val::Int(Some(c.billable_secs())),
        Val::Int(c.sip_code.map(i64::from)),
        opt_text(&c.sip_reason),
        Val::Text(c.hangup_by.map(|h| h.as_str().to_string())),
        opt_text(&c.from_uri),
        opt_text(&c.to_uri),
        opt_text(&c.request_uri),
        opt_text(&c.source_ip),
        opt_text(&c.destination_ip),
        opt_text(&c.transport),
        opt_text(&c.trunk),
        opt_text(&c.gateway),
        opt_text(&c.carrier),
        opt_text(&c.org_id),
        Val::Text(Some(serde_json::to_string(c).expect("CDRs serialise"))),
    ]
}

const LEG_COLUMNS: [&str; LEG_WIDTH] = [
    "call_id",
    "leg",
    "sip_call_id",
    "from_tag",
    "to_tag",
    "from_uri",
    "to_uri",
    "request_uri",
    "signal_ip",
    "media_ip",
    "transport",
    "codec",
    "start_time",
    "answer_time",
    "end_time",
    "sip_code",
    "rx_packets",
    "rx_bytes",
    "rx_lost",
    "rx_jitter_ms",
    "rx_mos",
    "tx_packets",
    "tx_bytes",
    "tx_lost",
    "tx_jitter_ms",
    "tx_mos",
    "remote_lost",
    "remote_jitter_ms",
    "rtt_ms",
];

/// Columns of a `cdr_legs` row.
const LEG_WIDTH: usize = 29;

fn media(m: &MediaStats) -> [Val; 5] {
    [
        int(m.packets),
        int(m.bytes),
        Val::Int(m.lost.map(|l| l as i64)),
        Val::Real(m.jitter_ms),
        Val::Real(m.mos),
    ]
}

fn leg_row(call_id: &str, l: &Leg) -> [Val; LEG_WIDTH] {
    let [rp, rb, rl, rj, rm] = media(&l.received);
    let [tp, tb, tl, tj, tm] = media(&l.sent);
    [
        text(call_id),
        text(&l.leg),
        text(&l.sip_call_id),
        opt_text(&l.from_tag),
        opt_text(&l.to_tag),
        opt_text(&l.from_uri),
        opt_text(&l.to_uri),
        opt_text(&l.request_uri),
        opt_text(&l.signal_ip),
        opt_text(&l.media_ip),
        opt_text(&l.transport),
        opt_text(&l.codec),
        time(l.start_ms),
        opt_time(l.answer_ms),
        time(l.end_ms),
        Val::Int(l.sip_code.map(i64::from)),
        rp,
        rb,
        rl,
        rj,
        rm,
        tp,
        tb,
        tl,
        tj,
        tm,
        Val::Int(l.remote_lost),
        Val::Real(l.remote_jitter_ms),
        Val::Real(l.rtt_ms),
    ]
}

/// A batch's call rows and leg rows.
fn rows(cdrs: &[&Cdr]) -> (Vec<[Val; 24]>, Vec<[Val; LEG_WIDTH]>) {
    let calls = cdrs.iter().map(|c| call_row(c)).collect();
    let legs = cdrs
        .iter()
        .flat_map(|c| c.legs.iter().map(|l| leg_row(&c.call_id, l)))
        .collect();
    (calls, legs)
}

/// Batches above this many CDRs are split over two connections.
const SPLIT_ABOVE: usize = 64;

/// Rows per INSERT statement: under every engine's bound-parameter limit
/// (SQLite's 32766 is the lowest) with 29 columns.
const ROWS_PER_STATEMENT: usize = 500;

async fn insert<DB>(pool: &Pool<DB>, d: Dialect, cdrs: &[&Cdr]) -> Result<(), sqlx::Error>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<i64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<f64>: Encode<'q, DB> + Type<DB>,
    for<'q> Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
{
    if cdrs.is_empty() {
        return Ok(());
    }
    let (calls, legs) = rows(cdrs);
    let mut tx = pool.begin().await?;
    for rows in calls.chunks(ROWS_PER_STATEMENT / 2) {
        let (sql, args) = rows_insert::<DB, 24>(d, d.calls, &CALL_COLUMNS, rows, &["call_id"])?;
        sqlx::query_with(&sql, args).execute(&mut *tx).await?;
    }
    for rows in legs.chunks(ROWS_PER_STATEMENT) {
        let key = ["call_id", "leg"];
        let (sql, args) = rows_insert::<DB, LEG_WIDTH>(d, "cdr_legs", &LEG_COLUMNS, rows, &key)?;
        sqlx::query_with(&sql, args).execute(&mut *tx).await?;
    }
    tx.commit().await
}

/// PostgreSQL: each table's rows as one array per column, expanded by
/// `UNNEST` in a single statement (a few dozen parameters however large
/// the batch, where VALUES lists bind every cell).
async fn insert_unnest(pool: &PgPool, cdrs: &[&Cdr]) -> Result<(), sqlx::Error> {
    if cdrs.is_empty() {
        return Ok(());
    }
    let (calls, legs) = rows(cdrs);
    let mut tx = pool.begin().await?;
    let (sql, args) = unnest("call_logs", &CALL_COLUMNS, calls, "call_id");
    sqlx::query_with(&sql, args).execute(&mut *tx).await?;
    let (sql, args) = unnest("cdr_legs", &LEG_COLUMNS, legs, "call_id, leg");
    sqlx::query_with(&sql, args).execute(&mut *tx).await?;
    tx.commit().await
}

/// The statement and its arguments: one array per column.
fn unnest<const N: usize>(
    table: &str,
    columns: &[&str; N],
    rows: Vec<[Val; N]>,
    key: &str,
) -> (String, PgArguments) {
    let mut arrays: Vec<Vec<Val>> = (0..N).map(|_| Vec::with_capacity(rows.len())).collect();
    for row in rows {
        for (i, v) in row.into_iter().enumerate() {
            arrays[i].push(v);
        }
    }
    let mut args = PgArguments::default();
    let casts: Vec<String> = arrays
        .into_iter()
        .enumerate()
        .map(|(i, column)| format!("${}::{}[]", i + 1, add_array(&mut args, column)))
        .collect();
    let sql = format!(
        "INSERT INTO {table} ({}) SELECT * FROM UNNEST({}) ON CONFLICT ({key}) DO NOTHING",
        columns.join(", "),
        casts.join(", ")
    );
    (sql, args)
}

/// Binds one column's values as a typed array; returns the SQL type.
fn add_array(args: &mut PgArguments, column: Vec<Val>) -> &'static str {
    fn take<T>(column: Vec<Val>, pick: fn(Val) -> Option<T>) -> Vec<Option<T>> {
        column.into_iter().map(pick).collect()
    }
    let (ty, added) = match column.first() {
        Some(Val::Int(_)) => (
            "int8",
            args.add(take(column, |v| if let Val::Int(n) = v { n } else { None })),
        ),
        Some(Val::Real(_)) => (
            "float8",
            args.add(take(
                column,
                |v| if let Val::Real(r) = v { r } else { None },
            )),
        ),
        Some(Val::Time(_)) => (
            "timestamptz",
            args.add(take(
                column,
                |v| if let Val::Time(t) = v { t } else { None },
            )),
        ),
        _ => (
            "text",
            args.add(take(
                column,
                |v| if let Val::Text(t) = v { t } else { None },
            )),
        ),
    };
    added.expect("arrays of plain values encode");
    ty
}

/// `INSERT INTO table (columns) VALUES (...), (...)` skipping rows whose
/// unique `key` exists, each value bound behind the engine's own
/// placeholder (`$n` or `?`).
fn rows_insert<'q, DB, const N: usize>(
    d: Dialect,
    table: &str,
    columns: &[&str; N],
    rows: &[[Val; N]],
    key: &[&str],
) -> Result<(String, DB::Arguments<'q>), sqlx::Error>
where
    DB: Database,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    Option<DateTime<Utc>>: Encode<'q, DB> + Type<DB>,
{
    let mut args = DB::Arguments::default();
    let mut sql = format!("INSERT INTO {table} ({}) VALUES ", columns.join(", "));
    for (i, row) in rows.iter().enumerate() {
        sql.push_str(if i == 0 { "(" } else { ", (" });
        for (j, v) in row.iter().enumerate() {
            if j > 0 {
                sql.push_str(", ");
            }
            match v {
                Val::Text(t) => args.add(t.clone()),
                Val::Int(n) => args.add(*n),
                Val::Real(r) => args.add(*r),
                Val::Time(t) => args.add(*t),
            }
            .map_err(sqlx::Error::Encode)?;
            args.format_placeholder(&mut sql)
                .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
        }
        sql.push(')');
    }
    sql.push_str(&d.skip_existing(key));
    Ok((sql, args))
}

async fn export<DB>(
    pool: &Pool<DB>,
    d: Dialect,
    since: DateTime<Utc>,
    each: &mut (dyn FnMut(String) -> Result<(), SinkError> + Send),
) -> Result<u64, SinkError>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'r> (String,): sqlx::FromRow<'r, DB::Row>,
{
    let mut sql = String::new();
    let mut args = DB::Arguments::default();
    sql += &format!("SELECT record FROM {} WHERE start_time >= ", d.calls);
    args.add(since).map_err(sqlx::Error::Encode)?;
    args.format_placeholder(&mut sql)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sql.push_str(" ORDER BY start_time, call_id");
    let mut rows = sqlx::query_scalar_with::<DB, String, _>(&sql, args).fetch(pool);
    let mut n = 0;
    while let Some(json) = rows.try_next().await? {
        each(json)?;
        n += 1;
    }
    Ok(n)
}

/// The sink: connects on first use, and again after a failure.
pub struct SqlSink {
    kind: SinkKind,
    url: String,
    db: Option<Db>,
}

impl SqlSink {
    pub fn new(kind: SinkKind, url: String) -> Self {
        SqlSink {
            kind,
            url,
            db: None,
        }
    }
}

impl Sink for SqlSink {
    async fn deliver(&mut self, batch: &[(u64, Record)]) -> Result<(), SinkError> {
        let cdrs: Vec<&Cdr> = batch
            .iter()
            .filter_map(|(_, r)| match r {
                Record::Ended(c) => Some(c.as_ref()),
                _ => None,
            })
            .collect();
        if cdrs.is_empty() {
            return Ok(());
        }
        let db = match self.db.take() {
            Some(db) => db,
            None => Db::connect(self.kind, &self.url).await?,
        };
        db.insert(&cdrs).await?;
        self.db = Some(db);
        Ok(())
    }
}
