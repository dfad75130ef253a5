//! The `recordings` table in the CDR database (schema in
//! `cdr/migrations/*/0003_recordings.sql`, applied with the CDR schemas):
//! one row per archived recording, through the CDR crate's own connection
//! to PostgreSQL, MariaDB/MySQL or SQLite. Inserting a row twice is a no-op
//! (unique recording_id), so a replayed step after a crash adds nothing.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{Arguments, Database, Encode, Executor, IntoArguments, Pool, Type};
use tollgate_cdr::config::SinkKind;
use tollgate_cdr::sink::sql::Db;

/// One archived recording.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow)]
pub struct RecordingRow {
    pub recording_id: String,
    pub call_id: String,
    pub org_id: Option<String>,
    /// `recording` or `voicemail`.
    pub kind: String,
    /// The WAV object's key; the recording's other objects share its prefix.
    pub object_key: String,
    pub url: String,
    /// Size and SHA-256 (hex) of the stored, encrypted WAV object.
    pub size: i64,
    pub sha256: String,
    pub codec: Option<String>,
    pub duration_ms: i64,
    /// The KEK its data key is wrapped with (none when stored in clear).
    pub key_id: Option<String>,
    pub started_at: DateTime<Utc>,
    pub archived_at: DateTime<Utc>,
    pub retention_until: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
#[error("recordings table: {0}")]
pub struct CatalogError(pub String);

impl From<sqlx::Error> for CatalogError {
    fn from(e: sqlx::Error) -> Self {
        CatalogError(e.to_string())
    }
}

const COLUMNS: &str = "recording_id, call_id, org_id, kind, object_key, url, size, sha256, \
                       codec, duration_ms, key_id, started_at, archived_at, retention_until";

pub struct Catalog {
    db: Db,
}

impl Catalog {
    /// Connects to an SQL sink's database and brings its schema up to date.
    pub async fn connect(kind: SinkKind, url: &str) -> Result<Catalog, CatalogError> {
        let db = Db::connect(kind, url)
            .await
            .map_err(|e| CatalogError(e.to_string()))?;
        Ok(Catalog { db })
    }

    /// Adds the row unless one with its recording_id is there.
    pub async fn insert(&self, r: &RecordingRow) -> Result<(), CatalogError> {
        let mut st = Statement::new(&format!("INSERT INTO recordings ({COLUMNS}) VALUES ("));
        let vals = [
            Val::Text(Some(r.recording_id.clone())),
            Val::Text(Some(r.call_id.clone())),
            Val::Text(r.org_id.clone()),
            Val::Text(Some(r.kind.clone())),
            Val::Text(Some(r.object_key.clone())),
            Val::Text(Some(r.url.clone())),
            Val::Int(r.size),
            Val::Text(Some(r.sha256.clone())),
            Val::Text(r.codec.clone()),
            Val::Int(r.duration_ms),
            Val::Text(r.key_id.clone()),
            Val::Time(r.started_at),
            Val::Time(r.archived_at),
            Val::Time(r.retention_until),
        ];
        for (i, v) in vals.into_iter().enumerate() {
            st = st.then(if i == 0 { "" } else { ", " }, v);
        }
        st.close(match self.db {
            Db::Mysql(_) => ") ON DUPLICATE KEY UPDATE recording_id = recording_id",
            _ => ") ON CONFLICT (recording_id) DO NOTHING",
        });
        self.run(st).await.map(drop)
    }

    /// A call's recordings, oldest first.
    pub async fn by_call(&self, call_id: &str) -> Result<Vec<RecordingRow>, CatalogError> {
        self.select(" WHERE call_id = ", Some(Val::Text(Some(call_id.into()))))
            .await
    }

    /// Every recording, oldest first.
    pub async fn all(&self) -> Result<Vec<RecordingRow>, CatalogError> {
        self.select("", None).await
    }

    /// Recordings whose retention ended before `now`, oldest first.
    pub async fn expired(&self, now: DateTime<Utc>) -> Result<Vec<RecordingRow>, CatalogError> {
        self.select(" WHERE retention_until < ", Some(Val::Time(now)))
            .await
    }

    async fn select(
        &self,
        filter: &str,
        val: Option<Val>,
    ) -> Result<Vec<RecordingRow>, CatalogError> {
        let mut st = Statement::new(&format!("SELECT {COLUMNS} FROM recordings"));
        if let Some(v) = val {
            st = st.then(filter, v);
        }
        st.close(" ORDER BY started_at, recording_id");
        self.run(st).await
    }

    /// Removes a recording's row (nothing when it is gone already).
    pub async fn delete(&self, recording_id: &str) -> Result<(), CatalogError> {
        let mut st = Statement::new("DELETE FROM recordings WHERE recording_id = ")
            .then("", Val::Text(Some(recording_id.into())));
        st.close("");
        self.run(st).await.map(drop)
    }

    async fn run(&self, st: Statement) -> Result<Vec<RecordingRow>, CatalogError> {
        match &self.db {
            Db::Postgres(p) => run(p, st).await,
            Db::Mysql(p) => run(p, st).await,
            Db::Sqlite(p) => run(p, st).await,
        }
    }
}

/// One bound value.
enum Val {
    Text(Option<String>),
    Int(i64),
    Time(DateTime<Utc>),
}

/// SQL text with a value after each piece but the last, bound behind each
/// engine's own placeholder (`$n` or `?`) when run.
struct Statement {
    pieces: Vec<String>,
    vals: Vec<Val>,
}

impl Statement {
    fn new(sql: &str) -> Statement {
        Statement {
            pieces: vec![sql.to_string()],
            vals: Vec::new(),
        }
    }

    /// Appends `sql`, then a placeholder for `v`.
    fn then(mut self, sql: &str, v: Val) -> Statement {
        self.pieces.last_mut().expect("never empty").push_str(sql);
        self.vals.push(v);
        self.pieces.push(String::new());
        self
    }

    fn close(&mut self, sql: &str) {
        self.pieces.last_mut().expect("never empty").push_str(sql);
    }
}

/// Runs a statement; the rows it returns (none for INSERT and DELETE).
async fn run<DB>(pool: &Pool<DB>, st: Statement) -> Result<Vec<RecordingRow>, CatalogError>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'r> RecordingRow: sqlx::FromRow<'r, DB::Row>,
{
    let mut sql = String::new();
    let mut args = DB::Arguments::default();
    for (piece, v) in st.pieces.iter().zip(st.vals) {
        sql.push_str(piece);
        match v {
            Val::Text(t) => args.add(t),
            Val::Int(n) => args.add(n),
            Val::Time(t) => args.add(t),
        }
        .map_err(sqlx::Error::Encode)?;
        args.format_placeholder(&mut sql)
            .map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    }
    sql.push_str(st.pieces.last().expect("never empty"));
    Ok(sqlx::query_as_with::<DB, RecordingRow, _>(&sql, args)
        .fetch_all(pool)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn row(id: &str, call: &str, until_day: u32) -> RecordingRow {
        let t = |d| Utc.with_ymd_and_hms(2026, 12, d, 12, 0, 0).unwrap();
        RecordingRow {
            recording_id: id.into(),
            call_id: call.into(),
            org_id: Some("acme".into()),
            kind: "recording".into(),
            object_key: format!("acme/2026/12/01/{call}/{id}/audio.wav.tge"),
            url: format!("file:///x/{id}"),
            size: 1234,
            sha256: "ab".repeat(32),
            codec: Some("PCMU".into()),
            duration_ms: 3000,
            key_id: Some("k1".into()),
            started_at: t(1),
            archived_at: t(1),
            retention_until: t(until_day),
        }
    }

    #[tokio::test]
    async fn rows_round_trip_in_sqlite_and_replays_add_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("cdr.sqlite").display());
        let c = Catalog::connect(SinkKind::Sqlite, &url).await.unwrap();
        let (a, b) = (row("r1", "c1", 5), row("r2", "c2", 20));
        c.insert(&a).await.unwrap();
        c.insert(&a).await.unwrap();
        c.insert(&b).await.unwrap();
        assert_eq!(c.by_call("c1").await.unwrap(), vec![a.clone()]);
        assert_eq!(c.all().await.unwrap().len(), 2);
        let now = Utc.with_ymd_and_hms(2026, 12, 10, 0, 0, 0).unwrap();
        assert_eq!(c.expired(now).await.unwrap(), vec![a]);
        c.delete("r1").await.unwrap();
        c.delete("r1").await.unwrap();
        assert!(c.expired(now).await.unwrap().is_empty());
    }
}
