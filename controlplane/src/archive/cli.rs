//! `tollgate archive`: the queue's status (read from the spool, so it works
//! beside a running node or without one), the archived recordings, fetching
//! one back as WAV, and the retention purge (a dry run unless `--apply`).

use super::config::ArchiveConfig;
use anyhow::{bail, Context, Result};
use chrono::Utc;
use clap::Subcommand;
use std::io::Write;
use std::path::{Path, PathBuf};
use tollgate_archive::catalog::{Catalog, RecordingRow};
use tollgate_archive::retention;
use tollgate_archive::retrieve::fetch_audio;
use tollgate_archive::status::ArchiveStatus;
use tollgate_archive::store::Store;
use tollgate_cdr::config::CdrConfig;

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Queue depth, oldest recording waiting, watermark, last error.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Archived recordings (all, or one call's), oldest first.
    List {
        #[arg(long)]
        call: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Download a call's recording, decrypt and check it, write the WAV.
    Get {
        call_id: String,
        /// Where to write it (default: RECORDING-ID.wav here).
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// Which of the call's recordings (default: the latest).
        #[arg(long)]
        recording: Option<String>,
    },
    /// Delete recordings past retention: objects, then rows. Lists them
    /// only, unless --apply.
    Purge {
        #[arg(long)]
        apply: bool,
    },
}

pub fn run(cfg: &ArchiveConfig, cdr: &CdrConfig, cmd: ArchiveCommand) -> Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting a runtime")?;
    let catalog = || async {
        let target = super::catalog_target(cfg, cdr)?;
        anyhow::Ok(Catalog::connect(target.kind, &target.url).await?)
    };
    rt.block_on(async {
        match cmd {
            ArchiveCommand::Status { json } => status(cfg, json),
            ArchiveCommand::List { call, json } => {
                let catalog = catalog().await?;
                let rows = match call {
                    Some(c) => catalog.by_call(&c).await?,
                    None => catalog.all().await?,
                };
                list(&rows, json)
            }
            ArchiveCommand::Get {
                call_id,
                output,
                recording,
            } => {
                get(
                    cfg,
                    &catalog().await?,
                    &call_id,
                    recording.as_deref(),
                    output,
                )
                .await
            }
            ArchiveCommand::Purge { apply } => purge(cfg, &catalog().await?, apply).await,
        }
    })
}

fn status(cfg: &ArchiveConfig, json: bool) -> Result<()> {
    let spool = &cfg.spool;
    let mut st = ArchiveStatus::read(spool)
        .with_context(|| format!("archive status in {}", spool.display()))?;
    let waiting = dirs(&spool.join("ready"))?;
    st.depth = waiting.len();
    st.oldest = waiting.iter().map(|(_, t)| *t).min().map(Into::into);
    st.failed = dirs(&spool.join("failed"))?.len();
    st.watermark = cfg.queue_combined_watermark;
    st.over_watermark = st.depth > st.watermark;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, &st)?;
        writeln!(out)?;
        return Ok(());
    }
    let time = |t: Option<chrono::DateTime<Utc>>| t.map_or("-".into(), |t| t.to_rfc3339());
    writeln!(
        out,
        "spool {}: {} waiting (watermark {}{}), oldest {}, {} failed, {} archived since start",
        spool.display(),
        st.depth,
        st.watermark,
        if st.over_watermark {
            ", ABOVE: recordings are flagged"
        } else {
            ""
        },
        time(st.oldest),
        st.failed,
        st.archived
    )?;
    writeln!(out, "last archived {}", time(st.last_archived_at))?;
    match &st.last_error {
        Some(e) => writeln!(out, "last error {}: {e}", time(st.last_error_at))?,
        None => writeln!(out, "last error -")?,
    }
    Ok(())
}

/// Subdirectories of `dir` with their times (none when it does not exist).
fn dirs(dir: &Path) -> Result<Vec<(PathBuf, std::time::SystemTime)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
        Err(e) => return Err(e).with_context(|| dir.display().to_string()),
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let m = e.metadata()?;
        if m.is_dir() {
            out.push((e.path(), m.modified()?));
        }
    }
    Ok(out)
}

fn list(rows: &[RecordingRow], json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, rows)?;
        writeln!(out)?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<24} {:<28} {:>8} {:>10}  {:<20}  url",
        "started", "call_id", "secs", "bytes", "retention_until"
    )?;
    for r in rows {
        writeln!(
            out,
            "{:<24} {:<28} {:>8.1} {:>10}  {:<20}  {}",
            r.started_at.format("%Y-%m-%dT%H:%M:%SZ"),
            r.call_id,
            r.duration_ms as f64 / 1000.0,
            r.size,
            r.retention_until.format("%Y-%m-%d"),
            r.url
        )?;
    }
    Ok(())
}

async fn get(
    cfg: &ArchiveConfig,
    catalog: &Catalog,
    call_id: &str,
    recording: Option<&str>,
    output: Option<PathBuf>,
) -> Result<()> {
    let rows = catalog.by_call(call_id).await?;
    let row = match recording {
        Some(id) => rows.iter().find(|r| r.recording_id == id),
        None => rows.last(),
    };
    let Some(row) = row else {
        bail!(
            "no archived recording of call {call_id:?}{}",
            recording.map_or(String::new(), |r| format!(" with id {r:?}"))
        );
    };
    let keyring = cfg.encryption.keyring(false).map_err(anyhow::Error::msg)?;
    let store = Store::open(&cfg.store)?;
    let wav = fetch_audio(&store, &keyring, row)
        .await
        .with_context(|| format!("recording {} of call {call_id}", row.recording_id))?;
    let path = output.unwrap_or_else(|| PathBuf::from(format!("{}.wav", row.recording_id)));
    write_whole(&path, &wav)?;
    eprintln!(
        "{}: {} bytes, {:.1} s ({})",
        path.display(),
        wav.len(),
        row.duration_ms as f64 / 1000.0,
        row.url
    );
    Ok(())
}

/// Writes beside `path` and renames, so no partial file is ever left.
fn write_whole(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.partial"));
    let written = std::fs::write(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written.with_context(|| format!("writing {}", path.display()))
}

async fn purge(cfg: &ArchiveConfig, catalog: &Catalog, apply: bool) -> Result<()> {
    let store = Store::open(&cfg.store)?;
    let report = retention::purge(catalog, &store, Utc::now(), apply).await?;
    let mut out = std::io::stdout().lock();
    for r in &report.expired {
        writeln!(
            out,
            "{} {} {} (retention until {})",
            if apply { "purged" } else { "would purge" },
            r.call_id,
            r.url,
            r.retention_until.to_rfc3339()
        )?;
    }
    if apply {
        writeln!(
            out,
            "{} recording(s) purged, {} object(s) deleted",
            report.rows_deleted, report.objects_deleted
        )?;
    } else {
        writeln!(
            out,
            "dry run: {} recording(s) past retention; --apply deletes them",
            report.expired.len()
        )?;
    }
    Ok(())
}
