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

/// Which rows a query selects.
enum Filter<'a> {
    Call(&'a str),
    ExpiredAt(DateTime<Utc>),
    All,
}

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
    pub async fn insert(&self, row: &RecordingRow) -> Result<(), CatalogError> {
        match &self.db {
            Db::Postgres(p) => insert(p, row, " ON CONFLICT (recording_id) DO NOTHING").await,
            Db::Sqlite(p) => insert(p, row, " ON CONFLICT (recording_id) DO NOTHING").await,
            Db::Mysql(p) => {
                insert(
                    p,
                    row,
                    " ON DUPLICATE KEY UPDATE recording_id = recording_id",
                )
                .await
            }
        }
    }

    /// A call's recordings, oldest first.
    pub async fn by_call(&self, call_id: &str) -> Result<Vec<RecordingRow>, CatalogError> {
        self.select(Filter::Call(call_id)).await
    }

    /// Every recording, oldest first.
    pub async fn all(&self) -> Result<Vec<RecordingRow>, CatalogError> {
        self.select(Filter::All).await
    }

    /// Recordings whose retention ended before `now`, oldest first.
    pub async fn expired(&self, now: DateTime<Utc>) -> Result<Vec<RecordingRow>, CatalogError> {
        self.select(Filter::ExpiredAt(now)).await
    }

    async fn select(&self, f: Filter<'_>) -> Result<Vec<RecordingRow>, CatalogError> {
        match &self.db {
            Db::Postgres(p) => select(p, f).await,
            Db::Mysql(p) => select(p, f).await,
            Db::Sqlite(p) => select(p, f).await,
        }
    }

    /// Removes a recording's row (nothing when it is gone already).
    pub async fn delete(&self, recording_id: &str) -> Result<(), CatalogError> {
        match &self.db {
            Db::Postgres(p) => delete(p, recording_id).await,
            Db::Mysql(p) => delete(p, recording_id).await,
            Db::Sqlite(p) => delete(p, recording_id).await,
        }
    }
}

fn placeholder<'q, DB: Database>(
    sql: &mut String,
    args: &mut DB::Arguments<'q>,
    v: impl Encode<'q, DB> + Type<DB> + 'q,
) -> Result<(), sqlx::Error> {
    args.add(v).map_err(sqlx::Error::Encode)?;
    args.format_placeholder(sql)
        .map_err(|e| sqlx::Error::Encode(Box::new(e)))
}

async fn insert<DB>(pool: &Pool<DB>, r: &RecordingRow, skip: &str) -> Result<(), CatalogError>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> Option<String>: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
{
    let mut sql = format!("INSERT INTO recordings ({COLUMNS}) VALUES (");
    let mut a = DB::Arguments::default();
    let texts = [&r.recording_id, &r.call_id];
    for (i, t) in texts.into_iter().enumerate() {
        if i > 0 {
            sql.push_str(", ");
        }
        placeholder::<DB>(&mut sql, &mut a, t.clone())?;
    }
    sql.push_str(", ");
    placeholder::<DB>(&mut sql, &mut a, r.org_id.clone())?;
    for t in [&r.kind, &r.object_key, &r.url] {
        sql.push_str(", ");
        placeholder::<DB>(&mut sql, &mut a, t.clone())?;
    }
    sql.push_str(", ");
    placeholder::<DB>(&mut sql, &mut a, r.size)?;
    sql.push_str(", ");
    placeholder::<DB>(&mut sql, &mut a, r.sha256.clone())?;
    sql.push_str(", ");
    placeholder::<DB>(&mut sql, &mut a, r.codec.clone())?;
    sql.push_str(", ");
    placeholder::<DB>(&mut sql, &mut a, r.duration_ms)?;
    sql.push_str(", ");
    placeholder::<DB>(&mut sql, &mut a, r.key_id.clone())?;
    for t in [r.started_at, r.archived_at, r.retention_until] {
        sql.push_str(", ");
        placeholder::<DB>(&mut sql, &mut a, t)?;
    }
    sql.push(')');
    sql.push_str(skip);
    sqlx::query_with(&sql, a).execute(pool).await?;
    Ok(())
}

async fn select<DB>(pool: &Pool<DB>, f: Filter<'_>) -> Result<Vec<RecordingRow>, CatalogError>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
    for<'q> DateTime<Utc>: Encode<'q, DB> + Type<DB>,
    for<'r> RecordingRow: sqlx::FromRow<'r, DB::Row>,
{
    let mut sql = format!("SELECT {COLUMNS} FROM recordings");
    let mut a = DB::Arguments::default();
    match f {
        Filter::Call(c) => {
            sql.push_str(" WHERE call_id = ");
            placeholder::<DB>(&mut sql, &mut a, c.to_string())?;
        }
        Filter::ExpiredAt(t) => {
            sql.push_str(" WHERE retention_until < ");
            placeholder::<DB>(&mut sql, &mut a, t)?;
        }
        Filter::All => {}
    }
    sql.push_str(" ORDER BY started_at, recording_id");
    Ok(sqlx::query_as_with::<DB, RecordingRow, _>(&sql, a)
        .fetch_all(pool)
        .await?)
}

async fn delete<DB>(pool: &Pool<DB>, recording_id: &str) -> Result<(), CatalogError>
where
    DB: Database,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> String: Encode<'q, DB> + Type<DB>,
{
    let mut sql = "DELETE FROM recordings WHERE recording_id = ".to_string();
    let mut a = DB::Arguments::default();
    placeholder::<DB>(&mut sql, &mut a, recording_id.to_string())?;
    sqlx::query_with(&sql, a).execute(pool).await?;
    Ok(())
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
