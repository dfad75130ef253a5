//! The durable upload queue: every recording under `<spool>/ready/` is
//! rendered (WAV), sealed (each object in its own envelope) and staged under
//! its `sealed/`, uploaded, given its `recordings` row and announced
//! (`recording.ready`), each step noted in its [`Journal`] before the next.
//! The recording's directory goes only when all are done, so a SIGKILL or a
//! restart loses nothing, and a repeated step repeats the same bytes under
//! the same deterministic key: nothing is stored twice.
//!
//! Up to `concurrency` recordings are sealed and uploaded at once, each in
//! a task of its own (one recording's sealing and syncs, on blocking
//! threads, overlap another's uploads; a recording's objects go up
//! together), oldest first; rows and announcements follow one recording at
//! a time, in that order. Each recording is in one pass at most once, and its own
//! steps stay in order, so the journal's guarantees hold as they are. A
//! transient failure starts no further recording but lets those under way
//! finish their steps before the pass ends.
//!
//! Objects per recording, under [`object_prefix`]: `audio.wav.tge` (what
//! `archive get` fetches and rows point at), `recording.json.tge`, and one
//! `<capture>.tge` per pcap. Separate objects keep `get` to the audio's
//! download, need no container format, and each is authenticated alone.
//!
//! A transient failure (store, database or broker down, disk full) stops
//! the pass and is retried with exponential backoff; a recording that can
//! never be archived (no or bad `recording.json`, a broken capture) is moved
//! to `<spool>/failed/<id>/` with an `error.txt` naming the cause. Above
//! `queue_combined_watermark` recordings waiting, the queue still takes new
//! ones (the recorder keeps writing locally) but flags each, logs loudly and
//! says so in its [`ArchiveStatus`].

use crate::catalog::{Catalog, CatalogError, RecordingRow};
use crate::envelope::Keyring;
use crate::events::Publisher;
use crate::journal::{Journal, SealedObject, Step};
use crate::meta::{Kind, RecordingMeta};
use crate::render::{render, Layout};
use crate::retention::Retention;
use crate::status::{ArchiveStatus, SharedStatus};
use crate::store::{audio_key, object_prefix, Store, AUDIO_OBJECT};
use chrono::{DateTime, Utc};
use futures_util::stream::{self, StreamExt};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use tollgate_cdr::config::SinkKind;

/// How the queue runs.
#[derive(Debug, Clone)]
pub struct QueueSettings {
    pub spool: PathBuf,
    pub layout: Layout,
    pub retention: Retention,
    pub watermark: usize,
    pub retry_min: Duration,
    pub retry_max: Duration,
    /// How often `ready/` is looked at when the queue is idle.
    pub poll: Duration,
    /// Recordings sealed and uploaded at once (at least 1).
    pub concurrency: usize,
}

/// Where rows go: an SQL sink of `[cdr]`.
#[derive(Debug, Clone)]
pub struct CatalogTarget {
    pub kind: SinkKind,
    pub url: String,
}

enum ItemError {
    /// Retried later, with backoff.
    Transient(String),
    /// The recording is moved to `failed/`.
    Permanent(String),
}

impl From<std::io::Error> for ItemError {
    fn from(e: std::io::Error) -> Self {
        ItemError::Transient(format!("spool: {e}"))
    }
}

impl From<CatalogError> for ItemError {
    fn from(e: CatalogError) -> Self {
        ItemError::Transient(e.to_string())
    }
}

pub struct Uploader {
    settings: QueueSettings,
    keyring: Keyring,
    store: Store,
    catalog_target: CatalogTarget,
    catalog: Option<Catalog>,
    publishers: Vec<Publisher>,
    status: SharedStatus,
    seen: HashSet<String>,
    failures: u32,
}

impl Uploader {
    pub fn new(
        settings: QueueSettings,
        keyring: Keyring,
        store: Store,
        catalog: CatalogTarget,
        publishers: Vec<Publisher>,
    ) -> std::io::Result<Uploader> {
        for d in ["ready", "failed", "trash"] {
            std::fs::create_dir_all(settings.spool.join(d))?;
        }
        let status = ArchiveStatus {
            watermark: settings.watermark,
            ..ArchiveStatus::default()
        };
        Ok(Uploader {
            settings,
            keyring,
            store,
            catalog_target: catalog,
            catalog: None,
            publishers,
            status: SharedStatus::new(status.into()),
            seen: HashSet::new(),
            failures: 0,
        })
    }

    /// The status, live, for the HTTP metrics.
    pub fn status(&self) -> SharedStatus {
        self.status.clone()
    }

    /// Runs passes until `stop()` says so.
    pub async fn run(mut self, stop: impl Fn() -> bool) {
        clear_trash(&self.settings.spool.join("trash"));
        while !stop() {
            let wait = self.pass(&stop).await;
            let until = tokio::time::Instant::now() + wait;
            while !stop() && tokio::time::Instant::now() < until {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    /// Archives what is waiting; returns how long to wait before the next
    /// pass (the poll interval, or the backoff after a failure).
    pub async fn pass(&mut self, stop: &impl Fn() -> bool) -> Duration {
        let items = match waiting(&self.settings.spool.join("ready")) {
            Ok(items) => items,
            Err(e) => {
                return self.failed_pass(format!("spool {}: {e}", self.settings.spool.display()))
            }
        };
        self.note_depth(&items);
        let halted = AtomicBool::new(false);
        let uploads = Uploads {
            store: self.store.clone(),
            keyring: self.keyring.clone(),
            layout: self.settings.layout,
        };
        let mut stored = stream::iter(items)
            .take_while(|_| std::future::ready(!stop() && !halted.load(Ordering::Relaxed)))
            .map(|(dir, _)| {
                let task = tokio::spawn(uploads.clone().store(dir.clone()));
                async move {
                    let r = task
                        .await
                        .unwrap_or_else(|e| Err(ItemError::Transient(format!("upload task: {e}"))));
                    (dir, r)
                }
            })
            .buffered(self.settings.concurrency.max(1));
        let mut failure = None;
        while let Some((dir, r)) = stored.next().await {
            let id = dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let done = match r {
                Ok(item) => self.finish(&dir, item).await,
                Err(e) => Err(e),
            };
            match done {
                Ok(row) => self.archived(&row),
                Err(ItemError::Permanent(e)) => self.quarantine(&dir, &id, &e),
                Err(ItemError::Transient(e)) => {
                    halted.store(true, Ordering::Relaxed);
                    failure.get_or_insert(format!("recording {id}: {e}"));
                }
            }
        }
        if let Some(e) = failure {
            return self.failed_pass(e);
        }
        self.failures = 0;
        self.write_status();
        self.settings.poll
    }

    fn failed_pass(&mut self, error: String) -> Duration {
        self.failures = self.failures.saturating_add(1);
        let wait = backoff(
            self.settings.retry_min,
            self.settings.retry_max,
            self.failures,
        );
        tracing::warn!(%error, retry_in_ms = wait.as_millis() as u64, "archive upload failed; will retry");
        {
            let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
            s.last_error = Some(error);
            s.last_error_at = Some(Utc::now());
        }
        self.write_status();
        wait
    }

    fn note_depth(&mut self, items: &[(PathBuf, SystemTime)]) {
        let depth = items.len();
        let over = depth > self.settings.watermark;
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        if over && !s.over_watermark {
            tracing::error!(
                depth,
                watermark = self.settings.watermark,
                "archive queue ABOVE its watermark (queue_combined_watermark): recordings are kept locally and flagged until the store catches up"
            );
        } else if !over && s.over_watermark {
            tracing::info!(
                depth,
                watermark = self.settings.watermark,
                "archive queue back below its watermark"
            );
        }
        s.depth = depth;
        s.oldest = items.first().map(|(_, t)| DateTime::<Utc>::from(*t));
        s.over_watermark = over;
        drop(s);
        for (dir, _) in items {
            let id = dir.to_string_lossy().into_owned();
            if self.seen.insert(id) && over {
                self.flag(dir);
            }
        }
        if self.seen.len() > 4 * depth.max(1024) {
            self.seen = items
                .iter()
                .map(|(d, _)| d.to_string_lossy().into_owned())
                .collect();
        }
    }

    fn flag(&mut self, dir: &Path) {
        let Ok(mut j) = Journal::open(dir) else {
            return;
        };
        if j.has(&Step::Flagged) || j.record(Step::Flagged).is_err() {
            return;
        }
        tracing::warn!(recording = %dir.display(), "recording flagged: it arrived while the archive queue was above its watermark");
        self.status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .flagged += 1;
    }

    fn archived(&mut self, row: &RecordingRow) {
        tracing::info!(recording_id = %row.recording_id, call_id = %row.call_id, url = %row.url, "recording archived");
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.archived += 1;
        s.depth = s.depth.saturating_sub(1);
        s.last_archived_at = Some(Utc::now());
    }

    fn quarantine(&mut self, dir: &Path, id: &str, error: &str) {
        tracing::error!(recording = id, %error, "recording cannot be archived; moved to failed/");
        let to = self.settings.spool.join("failed").join(id);
        let moved = std::fs::write(dir.join("error.txt"), format!("{error}\n"))
            .and_then(|()| std::fs::rename(dir, &to));
        let mut s = self.status.lock().unwrap_or_else(|p| p.into_inner());
        s.last_error = Some(format!("recording {id}: {error}"));
        s.last_error_at = Some(Utc::now());
        match moved {
            Ok(()) => s.failed += 1,
            Err(e) => {
                s.last_error = Some(format!(
                    "recording {id}: {error}; and moving it to failed/: {e}"
                ))
            }
        }
    }

    fn write_status(&self) {
        let s = self
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Err(e) = s.write(&self.settings.spool) {
            tracing::warn!(error = %e, "archive status file not written");
        }
    }

    /// The steps of a stored recording that are not done yet: its row,
    /// its announcement, its directory gone. Its row.
    async fn finish(&mut self, dir: &Path, item: Stored) -> Result<RecordingRow, ItemError> {
        let Stored {
            meta,
            started,
            prefix,
            journal,
            sealed:
                Step::Sealed {
                    objects,
                    duration_ms,
                    codec,
                    key_id,
                    at,
                },
        } = item
        else {
            return Err(ItemError::Transient("journal lost its sealed step".into()));
        };
        let audio = &objects[0];
        let key = audio_key(&prefix);
        let row = RecordingRow {
            recording_id: meta.recording_id.clone(),
            call_id: meta.call_id.clone(),
            org_id: meta.org.clone(),
            kind: kind_name(meta.kind).into(),
            url: self.store.url(&key),
            object_key: key,
            size: audio.size as i64,
            sha256: audio.sha256.clone(),
            codec: Some(codec).filter(|c| !c.is_empty()),
            duration_ms: duration_ms as i64,
            key_id: Some(key_id),
            started_at: started,
            archived_at: at,
            retention_until: self
                .settings
                .retention
                .until(meta.org.as_deref(), meta.kind, started),
        };
        let mut journal = journal;
        if !journal.has(&Step::Cataloged) {
            self.catalog().await?.insert(&row).await?;
            journal = journal.record_apart(Step::Cataloged).await?;
        }
        if !journal.has(&Step::Published) {
            for p in &mut self.publishers {
                p.publish(&row)
                    .await
                    .map_err(|e| ItemError::Transient(e.to_string()))?;
            }
            journal.record_apart(Step::Published).await?;
        }
        let trash = self.settings.spool.join("trash").join(&meta.recording_id);
        std::fs::rename(dir, &trash)?;
        clear_trash(&self.settings.spool.join("trash"));
        Ok(row)
    }

    async fn catalog(&mut self) -> Result<&Catalog, ItemError> {
        let catalog = match self.catalog.take() {
            Some(c) => c,
            None => {
                let t = &self.catalog_target;
                Catalog::connect(t.kind, &t.url).await?
            }
        };
        Ok(self.catalog.insert(catalog))
    }
}

/// A recording whose objects are all in the store, with what its row needs.
struct Stored {
    meta: RecordingMeta,
    started: DateTime<Utc>,
    prefix: String,
    journal: Journal,
    /// Its journal's `Sealed` step.
    sealed: Step,
}

/// What sealing and uploading need, cloned into each recording's task so
/// several run at once beside the queue's own state.
#[derive(Clone)]
struct Uploads {
    store: Store,
    keyring: Keyring,
    layout: Layout,
}

impl Uploads {
    /// Seals (unless done) and uploads (what is not stored yet, all at
    /// once) one recording, journaling each step.
    async fn store(self, dir: PathBuf) -> Result<Stored, ItemError> {
        let dir = dir.as_path();
        let meta = RecordingMeta::read(dir).map_err(|e| ItemError::Permanent(e.to_string()))?;
        let started = parse_time(&meta.started_at).ok_or_else(|| {
            ItemError::Permanent(format!(
                "recording.json: started_at {:?} is not an RFC 3339 time",
                meta.started_at
            ))
        })?;
        let prefix = object_prefix(
            meta.org.as_deref(),
            &meta.call_id,
            &meta.recording_id,
            started,
        );
        let mut journal = Journal::open(dir)?;
        if journal.sealed().is_none() {
            let sealed = seal(dir, &meta, &self.keyring, self.layout).await?;
            journal = journal.record_apart(sealed).await?;
        }
        let sealed = journal
            .sealed()
            .cloned()
            .ok_or_else(|| ItemError::Transient("journal lost its sealed step".into()))?;
        let objects = match &sealed {
            Step::Sealed { objects, .. } => objects.as_slice(),
            _ => &[], // never: `finish` says the journal lost it
        };
        let stored = |o: &SealedObject| Step::Stored {
            name: o.name.clone(),
        };
        let missing: Vec<&SealedObject> = objects
            .iter()
            .filter(|o| !journal.has(&stored(o)))
            .collect();
        let puts = missing.iter().map(|o| self.upload(dir, &prefix, o));
        futures_util::future::try_join_all(puts).await?;
        for o in missing {
            journal = journal.record_apart(stored(o)).await?;
        }
        Ok(Stored {
            meta,
            started,
            prefix,
            journal,
            sealed,
        })
    }

    /// Puts a sealed object unless the store has it already (a crash after
    /// the PUT and before the journal line).
    async fn upload(&self, dir: &Path, prefix: &str, o: &SealedObject) -> Result<(), ItemError> {
        let key = format!("{prefix}{}", o.name);
        let transient = |e: crate::store::StoreError| ItemError::Transient(e.to_string());
        if self.store.size(&key).await.map_err(transient)? == Some(o.size) {
            return Ok(());
        }
        let bytes = tokio::fs::read(dir.join("sealed").join(&o.name)).await?;
        self.store.put(&key, bytes.into()).await.map_err(transient)
    }
}

/// Renders and seals a recording's objects into `dir/sealed/` (each
/// written aside, synced and renamed); the journal step describing them.
async fn seal(
    dir: &Path,
    meta: &RecordingMeta,
    keyring: &Keyring,
    layout: Layout,
) -> Result<Step, ItemError> {
    let (dir, meta, keyring) = (dir.to_path_buf(), meta.clone(), keyring.clone());
    tokio::task::spawn_blocking(move || {
        let rendered =
            render(&dir, &meta, layout).map_err(|e| ItemError::Permanent(e.to_string()))?;
        let sealed = dir.join("sealed");
        std::fs::create_dir_all(&sealed)?;
        let mut objects = vec![stage(&sealed, AUDIO_OBJECT, &keyring.seal(&rendered.wav))?];
        for name in
            std::iter::once(crate::meta::META_FILE).chain(meta.captures.iter().map(String::as_str))
        {
            let plain = std::fs::read(dir.join(name))
                .map_err(|e| ItemError::Permanent(format!("{name}: {e}")))?;
            objects.push(stage(
                &sealed,
                &format!("{name}.tge"),
                &keyring.seal(&plain),
            )?);
        }
        sync_dir(&sealed)?;
        Ok(Step::Sealed {
            objects,
            duration_ms: rendered.duration.as_millis() as u64,
            codec: rendered.codec,
            key_id: keyring.active().to_string(),
            at: Utc::now(),
        })
    })
    .await
    .map_err(|e| ItemError::Transient(format!("sealing task: {e}")))?
}

fn stage(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<SealedObject> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    std::fs::rename(&tmp, dir.join(name))?;
    Ok(SealedObject {
        name: name.to_string(),
        size: bytes.len() as u64,
        sha256: hex::encode(Sha256::digest(bytes)),
    })
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The recordings waiting in `ready`, oldest first.
fn waiting(ready: &Path) -> std::io::Result<Vec<(PathBuf, SystemTime)>> {
    let mut items = Vec::new();
    for entry in std::fs::read_dir(ready)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            items.push((
                entry.path(),
                meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            ));
        }
    }
    items.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0)));
    Ok(items)
}

/// Recordings fully archived, deleted (left over when a crash hit it).
fn clear_trash(trash: &Path) {
    for entry in std::fs::read_dir(trash).into_iter().flatten().flatten() {
        if let Err(e) = std::fs::remove_dir_all(entry.path()) {
            tracing::warn!(path = %entry.path().display(), error = %e, "archived recording not deleted");
        }
    }
}

pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Recording => "recording",
        Kind::Voicemail => "voicemail",
    }
}

/// `min · 2^(failures-1)`, at most `max`.
pub fn backoff(min: Duration, max: Duration, failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(20))
        .unwrap_or(u32::MAX);
    min.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests;
