//! PostgreSQL's own limit for the rows the sink writes, measured without
//! any of Tollgate's insert code: the rows of calls whose ids start with
//! one prefix are exported with `COPY ... TO STDOUT` (their call ids
//! rewritten to another prefix by the server), then loaded again with
//! `COPY ... FROM STDIN`, both tables in one transaction per part, the
//! parts (calls split by a hash of their id) on as many connections at
//! once. Only the loads and their commits are timed.

use futures_util::TryStreamExt;
use sqlx::postgres::{PgPool, PgPoolCopyExt};
use std::time::Instant;

/// The tables a CDR lands in: its call row, its leg rows.
const TABLES: [&str; 2] = ["call_logs", "cdr_legs"];

#[derive(Debug, thiserror::Error)]
pub enum FloorError {
    #[error("call id prefix {0:?}: only letters, digits and '-' are inlined into COPY")]
    Prefix(String),
    #[error("{table}: {source}")]
    Sql {
        table: &'static str,
        source: sqlx::Error,
    },
}

/// `table`'s columns but its generated `id`, in order.
async fn columns(pool: &PgPool, table: &'static str) -> Result<Vec<String>, FloorError> {
    let sql = |source| FloorError::Sql { table, source };
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT column_name::text FROM information_schema.columns \
         WHERE table_schema = current_schema() AND table_name = $1 AND column_name <> 'id' \
         ORDER BY ordinal_position",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .map_err(sql)?;
    Ok(rows.into_iter().map(|(c,)| c).collect())
}

/// One table's rows of calls `from*` in part `part` of `parts`, as COPY
/// text with ids renamed `to*`, and the statement that loads them.
async fn export(
    pool: &PgPool,
    table: &'static str,
    (from, to): (&str, &str),
    (part, parts): (usize, usize),
) -> Result<(String, Vec<u8>), FloorError> {
    let sql = |source| FloorError::Sql { table, source };
    let cols = columns(pool, table).await?;
    let select: Vec<String> = cols
        .iter()
        .map(|c| match c.as_str() {
            "call_id" => format!("'{to}' || substr(call_id, {})", from.len() + 1),
            _ => c.clone(),
        })
        .collect();
    let out = format!(
        "COPY (SELECT {} FROM {table} WHERE call_id LIKE '{from}%' \
         AND abs(hashtext(call_id)::int8) % {parts} = {part}) TO STDOUT",
        select.join(", ")
    );
    let mut stream = pool.copy_out_raw(&out).await.map_err(sql)?;
    let mut data = Vec::new();
    while let Some(chunk) = stream.try_next().await.map_err(sql)? {
        data.extend_from_slice(&chunk);
    }
    let load = format!("COPY {table} ({}) FROM STDIN", cols.join(", "));
    Ok((load, data))
}

/// What the load took.
pub struct Loaded {
    /// Rows loaded per table, in [`TABLES`] order.
    pub rows: [u64; 2],
    pub seconds: f64,
}

/// Loads one part's tables in one transaction; returns the rows per table.
async fn load(pool: &PgPool, loads: Vec<(String, Vec<u8>)>) -> Result<[u64; 2], FloorError> {
    let sql = |table| move |source| FloorError::Sql { table, source };
    let mut tx = pool.begin().await.map_err(sql(TABLES[0]))?;
    let mut rows = [0; 2];
    for (i, (statement, data)) in loads.into_iter().enumerate() {
        let mut copy = tx.copy_in_raw(&statement).await.map_err(sql(TABLES[i]))?;
        copy.send(data).await.map_err(sql(TABLES[i]))?;
        rows[i] = copy.finish().await.map_err(sql(TABLES[i]))?;
    }
    tx.commit().await.map_err(sql(TABLES[1]))?;
    Ok(rows)
}

/// Loads the rows of calls `from*` again as calls `to*`, in `parts`
/// transactions on as many connections at once.
pub async fn copy_again(
    pool: &PgPool,
    from: &str,
    to: &str,
    parts: usize,
) -> Result<Loaded, FloorError> {
    for p in [from, to] {
        if !p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(FloorError::Prefix(p.into()));
        }
    }
    let mut work = Vec::new();
    for part in 0..parts {
        let mut loads = Vec::new();
        for table in TABLES {
            loads.push(export(pool, table, (from, to), (part, parts)).await?);
        }
        work.push(loads);
    }
    let t0 = Instant::now();
    let done = futures_util::future::try_join_all(work.into_iter().map(|w| load(pool, w))).await?;
    let seconds = t0.elapsed().as_secs_f64();
    let rows = done
        .iter()
        .fold([0, 0], |sum, r| [sum[0] + r[0], sum[1] + r[1]]);
    Ok(Loaded { rows, seconds })
}
