//! Sinks, and the loop that feeds each one from the spool.
//!
//! A sink takes a batch of records and returns only once they are safely
//! in it (a committed transaction, broker confirms, a synced file). The
//! runner then moves the sink's cursor. A failure leaves the cursor where
//! it was: the error is recorded for `tollgate cdr status`, the runner
//! backs off and offers the same batch again, and calls go on being
//! spooled meanwhile. Replays after a crash offer a batch twice, so every
//! sink either ignores what it already has (SQL unique keys, the JSON-lines
//! file's sequence numbers) or is documented as at-least-once with a stable
//! message id (AMQP, Redis PUBLISH).

pub mod amqp;
pub mod jsonl;
pub mod redis;
pub mod sql;

use crate::config::{CdrConfig, SinkConfig, SinkKind};
use crate::model::Record;
use crate::spool::{Spool, SpoolError};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// Why a delivery failed, said for an operator.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SinkError(pub String);

impl From<sqlx::Error> for SinkError {
    fn from(e: sqlx::Error) -> Self {
        SinkError(format!("database: {e}"))
    }
}

impl From<std::io::Error> for SinkError {
    fn from(e: std::io::Error) -> Self {
        SinkError(e.to_string())
    }
}

pub trait Sink: Send + 'static {
    /// Puts every record of the batch into the sink, or fails as a whole
    /// (a retry offers the same batch).
    fn deliver(
        &mut self,
        batch: &[(u64, Record)],
    ) -> impl Future<Output = Result<(), SinkError>> + Send;
}

/// How deliveries are cut: at most `max` records each, gathered for up to
/// `linger` after the first one is written.
#[derive(Debug, Clone, Copy)]
pub struct Batching {
    pub max: usize,
    pub linger: Duration,
}

/// First and longest wait between failed deliveries.
const BACKOFF_MIN: Duration = Duration::from_millis(200);
const BACKOFF_MAX: Duration = Duration::from_secs(10);

/// Feeds `sink` from the spool forever. Reading (and decoding) the next
/// batch runs as its own task, so it overlaps the sink's delivery of the
/// current one.
pub async fn run<S: Sink>(spool: Arc<Spool>, name: String, mut sink: S, batch: Batching) {
    let (tx, mut batches) = tokio::sync::mpsc::channel::<Vec<(u64, Record)>>(2);
    tokio::spawn(read_ahead(spool.clone(), name.clone(), batch, tx));
    let mut backoff = BACKOFF_MIN;
    let mut cursor_failing = false;
    while let Some(records) = batches.recv().await {
        let Some(&(last, _)) = records.last() else {
            continue;
        };
        loop {
            match sink.deliver(&records).await {
                Ok(()) => {
                    backoff = BACKOFF_MIN;
                    break;
                }
                Err(e) => {
                    tracing::warn!(sink = name, error = %e, retry_in = ?backoff,
                        "CDR sink failed; records stay spooled");
                    spool.note_error(&name, &e.to_string());
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        // Logged once per run of failures (a full disk fails every batch);
        // a cursor left behind only replays records the sink ignores.
        match spool.commit(&name, last, records.len() as u64) {
            Err(e) if !cursor_failing => {
                tracing::error!(sink = name, error = %e, "could not move the sink's cursor");
                cursor_failing = true;
            }
            Err(_) => {}
            Ok(()) if cursor_failing => {
                tracing::warn!(sink = name, "the sink's cursor moves again");
                cursor_failing = false;
            }
            Ok(()) => {}
        }
    }
}

/// Reads batches from the sink's cursor on, until the runner is gone.
async fn read_ahead(
    spool: Arc<Spool>,
    name: String,
    batch: Batching,
    tx: tokio::sync::mpsc::Sender<Vec<(u64, Record)>>,
) {
    let mut reader = spool.reader(&name);
    loop {
        match reader.next_batch(batch.max, batch.linger).await {
            Ok(records) => {
                if tx.send(records).await.is_err() {
                    return;
                }
            }
            Err(SpoolError::Closed) => return,
            Err(e) => {
                spool.note_error(&name, &e.to_string());
                tracing::error!(sink = name, error = %e, "cannot read the CDR spool");
                tokio::time::sleep(BACKOFF_MAX).await;
            }
        }
    }
}

/// Starts a runner per configured sink on the current tokio runtime.
pub fn spawn_all(spool: &Arc<Spool>, cfg: &CdrConfig) -> Vec<tokio::task::JoinHandle<()>> {
    cfg.sinks
        .iter()
        .map(|s| spawn(spool.clone(), s, cfg.batching()))
        .collect()
}

fn spawn(spool: Arc<Spool>, s: &SinkConfig, batch: Batching) -> tokio::task::JoinHandle<()> {
    let name = s.name();
    let url = s.url.clone().unwrap_or_default();
    match s.kind {
        SinkKind::Sqlite | SinkKind::Postgres | SinkKind::Mysql => {
            tokio::spawn(run(spool, name, sql::SqlSink::new(s.kind, url), batch))
        }
        SinkKind::Amqp => {
            let exchange = s.exchange.clone().unwrap_or_else(|| "events".into());
            tokio::spawn(run(spool, name, amqp::AmqpSink::new(url, exchange), batch))
        }
        SinkKind::Redis => {
            let sink = redis::RedisSink::new(
                url,
                s.session_ttl_secs.unwrap_or(86_400),
                s.ended_ttl_secs.unwrap_or(60),
            );
            tokio::spawn(run(spool, name, sink, batch))
        }
        SinkKind::Jsonl => {
            let path = s.path.clone().unwrap_or_default();
            tokio::spawn(run(spool, name, jsonl::JsonlSink::new(path), batch))
        }
    }
}
