//! The recording archive in the node: `[archive]` ([`config`]), the
//! uploader task `tollgate run` starts ([`start`]), and `tollgate archive`
//! ([`cli`]). The work itself is the `tollgate-archive` crate's; this
//! module only wires it to the config, the CDR sinks and the runtime.

pub mod cli;
pub mod config;

use anyhow::{Context, Result};
use config::ArchiveConfig;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tollgate_archive::events::Publisher;
use tollgate_archive::queue::{CatalogTarget, QueueSettings, Uploader};
use tollgate_archive::status::SharedStatus;
use tollgate_archive::store::Store;
use tollgate_cdr::config::{CdrConfig, SinkKind};

/// The SQL sink the `recordings` rows go to.
pub fn catalog_target(cfg: &ArchiveConfig, cdr: &CdrConfig) -> Result<CatalogTarget> {
    let sink = cdr
        .sql_sink(cfg.cdr_sink.as_deref())
        .map_err(anyhow::Error::msg)?;
    Ok(CatalogTarget {
        kind: sink.kind,
        url: sink.url.clone().unwrap_or_default(),
    })
}

/// Every AMQP sink of `[cdr]`, told of each archived recording.
fn publishers(cdr: &CdrConfig) -> Vec<Publisher> {
    cdr.sinks
        .iter()
        .filter(|s| s.kind == SinkKind::Amqp)
        .map(|s| {
            let exchange = s.exchange.clone().unwrap_or_else(|| "events".into());
            Publisher::new(s.url.clone().unwrap_or_default(), exchange)
        })
        .collect()
}

pub fn settings(cfg: &ArchiveConfig) -> QueueSettings {
    QueueSettings {
        spool: cfg.spool.clone(),
        layout: cfg.layout,
        retention: cfg.retention.clone(),
        watermark: cfg.queue_combined_watermark,
        retry_min: Duration::from_millis(cfg.retry_min_ms),
        retry_max: Duration::from_millis(cfg.retry_max_ms),
        poll: Duration::from_millis(cfg.poll_ms),
        concurrency: cfg.upload_concurrency,
    }
}

/// Starts the uploader on the current runtime (the key generated first
/// when none is configured); its live status, for the metrics. `None`
/// when `[cdr]` has no SQL sink for the rows: recordings then wait.
pub fn start(
    cfg: &ArchiveConfig,
    cdr: &CdrConfig,
    stop: Arc<AtomicBool>,
) -> Result<Option<(tokio::task::JoinHandle<()>, SharedStatus)>> {
    if cdr.sql_sink(cfg.cdr_sink.as_deref()).is_err() {
        tracing::warn!(spool = %cfg.spool.display(), "archive: no SQL sink in [cdr] for the recordings table; the uploader is not started and recordings wait in the spool");
        return Ok(None);
    }
    let keyring = cfg.encryption.keyring(true).map_err(anyhow::Error::msg)?;
    let store = Store::open(&cfg.store)?;
    let uploader = Uploader::new(
        settings(cfg),
        keyring,
        store,
        catalog_target(cfg, cdr)?,
        publishers(cdr),
    )
    .with_context(|| format!("archive spool {}", cfg.spool.display()))?;
    let status = uploader.status();
    tracing::info!(spool = %cfg.spool.display(), store = ?cfg.store, "archive uploader started");
    let task = tokio::spawn(uploader.run(move || stop.load(Ordering::Relaxed)));
    Ok(Some((task, status)))
}
