//! The durable CDR spool: every call event and CDR is appended here, and
//! synced to disk, before anyone is told it was taken; it is removed only
//! once every configured sink has confirmed it.
//!
//! One writer thread owns the active segment and commits in groups: it
//! takes every append waiting in its queue, writes them with one `write`,
//! syncs once (per the [`Fsync`] policy) and then acknowledges each. Sinks
//! read with their own [`Reader`] from their own cursor and move it with
//! [`Spool::commit`]. Opening the spool checks every segment: a torn or
//! corrupt tail is reported, moved aside into a `.damaged` file and cut
//! off, and the records before it are kept. No existing crate offers this
//! (a single-writer, multi-cursor, checksummed journal with group commit
//! and per-sink retention), so it is written here on `std::fs`; the
//! writer reaches it through [`storage::Storage`], which tests replace with
//! a simulated disk that loses what was not synced.

pub mod cursor;
mod hold;
mod queue;
pub mod recent;
pub mod segment;
pub mod storage;
mod writer;

use crate::model::Record;
use cursor::Cursor;
use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// When the writer forces appended records to stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before acknowledging each group: survives power loss.
    Always,
    /// At most this long after writing; acknowledged once written, so a
    /// crashed process loses nothing, a power cut up to the interval.
    Interval(Duration),
    /// Left to the kernel (tests and benchmarks of the sinks alone).
    Never,
}

#[derive(Debug, Clone)]
pub struct SpoolConfig {
    pub dir: PathBuf,
    pub fsync: Fsync,
    /// A new segment starts once the active one is this large.
    pub segment_bytes: u64,
    /// Appends are refused beyond this many bytes on disk.
    pub max_bytes: u64,
    /// A loud alarm once the spool holds this share of `max_bytes`.
    pub alarm_percent: u8,
    /// Under [`Fsync::Always`], the longest a lazy append
    /// ([`Spool::append_lazy`]) stays unsynced when no awaited append
    /// comes to sync it.
    pub lazy_sync: Duration,
    /// Records the disk refused are held in memory up to this many bytes
    /// (see [`hold`]); new calls are refused once half of it is used.
    pub hold_bytes: u64,
}

/// The longest a lazy append waits in memory for the writer to take it.
pub const LAZY_WRITE: Duration = Duration::from_millis(10);

impl SpoolConfig {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        SpoolConfig {
            dir: dir.into(),
            fsync: Fsync::Always,
            segment_bytes: 64 << 20,
            max_bytes: 4 << 30,
            alarm_percent: 80,
            lazy_sync: Duration::from_millis(100),
            hold_bytes: 64 << 20,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("CDR spool {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "CDR spool is full: {used} of its {max} bytes hold records a sink has not taken; \
         record refused (is a sink down? see `tollgate cdr status`)"
    )]
    Full { used: u64, max: u64 },
    #[error("CDR spool {path}: {what}")]
    Damaged { path: PathBuf, what: String },
    #[error("CDR spool {path} is {what}")]
    Locked { path: PathBuf, what: String },
    #[error("record not written: {0}")]
    WriteFailed(String),
    #[error("record held in memory, not yet on disk: {0}")]
    Held(String),
    #[error("the CDR spool writer has stopped")]
    Closed,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SpoolError + '_ {
    move |source| SpoolError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// State shared by the writer, the readers and committers.
struct Shared {
    cfg: SpoolConfig,
    /// Segments on disk: first sequence number -> bytes.
    segments: Mutex<BTreeMap<u64, u64>>,
    /// The last sequence number written; readers read up to it.
    written: watch::Sender<u64>,
    /// The configured sinks' cursors.
    cursors: Mutex<BTreeMap<String, Cursor>>,
    /// What the writer holds in memory.
    held: hold::HoldGauge,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    fn segment_path(&self, first: u64) -> PathBuf {
        self.cfg.dir.join(segment::file_name(first))
    }

    fn bytes(&self) -> u64 {
        lock(&self.segments).values().sum()
    }
}

/// An append on its way to disk.
pub struct Pending(oneshot::Receiver<Result<u64, SpoolError>>);

impl Pending {
    /// The record's sequence number once it is durable (per the policy).
    pub async fn durable(self) -> Result<u64, SpoolError> {
        self.0.await.unwrap_or(Err(SpoolError::Closed))
    }

    /// [`Pending::durable`] for a thread outside any async runtime.
    pub fn wait(self) -> Result<u64, SpoolError> {
        self.0.blocking_recv().unwrap_or(Err(SpoolError::Closed))
    }
}

pub struct Spool {
    shared: Arc<Shared>,
    appends: Arc<queue::Queue>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// Held (flock) while the spool is open.
    _lock: File,
}

/// What the spool holds and how far each sink is.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub dir: PathBuf,
    pub bytes: u64,
    pub max_bytes: u64,
    pub alarm: bool,
    pub segments: usize,
    /// The newest record's sequence number (0: none ever).
    pub last_seq: u64,
    /// Records some sink still has to take.
    pub depth: u64,
    /// Records held in memory because the disk refused them, and their
    /// bytes (0 when read from disk by [`inspect`]).
    pub held_records: u64,
    pub held_bytes: u64,
    /// The hold is half full: new calls are refused.
    pub refusing_calls: bool,
    pub sinks: Vec<SinkStatus>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct SinkStatus {
    pub name: String,
    pub delivered_seq: u64,
    pub lag: u64,
    pub delivered: u64,
    pub last_error: Option<String>,
    pub failing_since_ms: Option<i64>,
}

fn status_of(
    cfg: &SpoolConfig,
    segments: &BTreeMap<u64, u64>,
    last_seq: u64,
    cursors: &BTreeMap<String, Cursor>,
) -> Status {
    let bytes: u64 = segments.values().sum();
    let sinks: Vec<SinkStatus> = cursors
        .iter()
        .map(|(name, c)| SinkStatus {
            name: name.clone(),
            delivered_seq: c.delivered_seq,
            lag: last_seq.saturating_sub(c.delivered_seq),
            delivered: c.delivered,
            last_error: c.last_error.clone(),
            failing_since_ms: c.failing_since_ms,
        })
        .collect();
    Status {
        dir: cfg.dir.clone(),
        bytes,
        max_bytes: cfg.max_bytes,
        alarm: bytes * 100 >= cfg.max_bytes * cfg.alarm_percent as u64,
        segments: segments.len(),
        last_seq,
        depth: sinks.iter().map(|s| s.lag).max().unwrap_or(0),
        held_records: 0,
        held_bytes: 0,
        refusing_calls: false,
        sinks,
    }
}

/// Segment files in `dir`, by first sequence number.
fn list_segments(dir: &Path) -> Result<BTreeMap<u64, PathBuf>, SpoolError> {
    let mut out = BTreeMap::new();
    for e in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let e = e.map_err(io_err(dir))?;
        if let Some(first) = segment::parse_name(&e.file_name().to_string_lossy()) {
            out.insert(first, e.path());
        }
    }
    Ok(out)
}

/// The spool as it is on disk, read without changing anything: for
/// `tollgate cdr status` beside (or without) a running node.
pub fn inspect(cfg: &SpoolConfig, sinks: &[String]) -> Result<Status, SpoolError> {
    let files = list_segments(&cfg.dir)?;
    let mut segments = BTreeMap::new();
    let mut last_seq = 0;
    for (first, path) in &files {
        let bytes = std::fs::read(path).map_err(io_err(path))?;
        segments.insert(*first, bytes.len() as u64);
        if let Some(l) = segment::scan(&bytes, *first).last_seq() {
            last_seq = l;
        }
    }
    let mut cursors = BTreeMap::new();
    for name in sinks {
        let c = cursor::load(&cfg.dir, name).map_err(io_err(&cfg.dir))?;
        cursors.insert(name.clone(), c.unwrap_or_default());
    }
    Ok(status_of(cfg, &segments, last_seq, &cursors))
}

impl Spool {
    /// Opens (or creates) the spool for these sinks, repairing damage.
    /// Returns what was repaired, one sentence each (also logged).
    pub fn open(cfg: SpoolConfig, sinks: &[String]) -> Result<(Spool, Vec<String>), SpoolError> {
        Spool::open_on(storage::Disk, cfg, sinks)
    }

    /// [`Spool::open`], with the writer's segment files on `storage`.
    pub fn open_on<S: storage::Storage>(
        mut storage: S,
        cfg: SpoolConfig,
        sinks: &[String],
    ) -> Result<(Spool, Vec<String>), SpoolError> {
        let dir = cfg.dir.clone();
        std::fs::create_dir_all(cursor::dir(&dir)).map_err(io_err(&dir))?;
        // One process per spool: a second writer would interleave records.
        let lock_path = dir.join("lock");
        let lock = File::create(&lock_path).map_err(io_err(&lock_path))?;
        lock.try_lock().map_err(|e| SpoolError::Locked {
            path: dir.clone(),
            what: format!("in use by another process ({e}); each node needs its own spool_dir"),
        })?;
        let mut repairs = Vec::new();
        let mut segments = BTreeMap::new();
        let mut last_seq = 0u64;
        let files = list_segments(&dir)?;
        let newest = files.keys().next_back().copied();
        for (first, path) in files {
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            let scan = segment::scan(&bytes, first);
            if last_seq != 0 && first != last_seq + 1 {
                repairs.push(format!(
                    "{}: records {}..{} are missing before it (lost to earlier damage)",
                    path.display(),
                    last_seq + 1,
                    first - 1
                ));
            }
            if let Some((offset, damage)) = &scan.damage {
                let aside = path.with_extension(format!("seg.damaged-{offset}"));
                std::fs::write(&aside, &bytes[scan.good_len..]).map_err(io_err(&aside))?;
                let kept = match (scan.records.first(), scan.last_seq()) {
                    (Some(a), Some(b)) => format!("kept records {}..={}", a.seq, b),
                    _ => "no records before it".to_string(),
                };
                repairs.push(format!(
                    "{}: {damage} at byte {offset}; {kept}; moved the {} bytes from there to {}",
                    path.display(),
                    bytes.len() - scan.good_len,
                    aside.display()
                ));
                if scan.good_len == 0 {
                    std::fs::remove_file(&path).map_err(io_err(&path))?;
                    continue;
                }
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(io_err(&path))?;
                f.set_len(scan.good_len as u64).map_err(io_err(&path))?;
                f.sync_all().map_err(io_err(&path))?;
            }
            if scan.records.is_empty() && Some(first) != newest {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
                continue;
            }
            last_seq = scan.last_seq().unwrap_or(last_seq);
            segments.insert(first, scan.good_len as u64);
        }

        let mut cursors = BTreeMap::new();
        for name in sinks {
            let c = cursor::load(&dir, name).map_err(io_err(&dir))?;
            cursors.insert(name.clone(), c);
        }
        // Never hand out a sequence number a sink already counts as taken.
        let highest_cursor = cursors
            .values()
            .flatten()
            .map(|c| c.delivered_seq)
            .max()
            .unwrap_or(0);
        let next_seq = last_seq.max(highest_cursor) + 1;
        let oldest = segments.keys().next().copied().unwrap_or(next_seq);
        let mut ready = BTreeMap::new();
        for (name, c) in cursors {
            let mut c = c.unwrap_or(Cursor {
                delivered_seq: oldest.saturating_sub(1),
                ..Cursor::default()
            });
            if c.delivered_seq + 1 < oldest {
                repairs.push(format!(
                    "sink {name:?} was at record {} but the spool starts at {oldest}: \
                     records {}..{} are gone",
                    c.delivered_seq,
                    c.delivered_seq + 1,
                    oldest - 1
                ));
                c.delivered_seq = oldest - 1;
            }
            cursor::store(&dir, &name, &c, true).map_err(io_err(&dir))?;
            ready.insert(name, c);
        }
        for r in &repairs {
            tracing::error!(spool = %dir.display(), "CDR spool repaired: {r}");
        }

        let (written, _) = watch::channel(next_seq - 1);
        let shared = Arc::new(Shared {
            cfg,
            segments: Mutex::new(segments),
            written,
            cursors: Mutex::new(ready),
            held: hold::HoldGauge::default(),
        });
        let appends = Arc::new(queue::Queue::default());
        let active = writer::Active::open(&shared, &mut storage, next_seq)?;
        let (w, q) = (shared.clone(), appends.clone());
        let handle = std::thread::Builder::new()
            .name("cdr-spool".into())
            .spawn(move || writer::run(w, q, storage, active))
            .map_err(io_err(&dir))?;
        Ok((
            Spool {
                shared,
                appends,
                writer: Some(handle),
                _lock: lock,
            },
            repairs,
        ))
    }

    /// Queues a record; await [`Pending::durable`] before acknowledging it.
    pub fn append(&self, rec: &Record) -> Pending {
        let (done, rx) = oneshot::channel();
        self.queue(rec, Some(done));
        Pending(rx)
    }

    /// Queues a record nothing is acknowledged on (a call's start or
    /// answer event), without waking the writer: it is written with the
    /// next awaited append, or at most [`LAZY_WRITE`] later, and synced
    /// with the next synced group or at most [`SpoolConfig::lazy_sync`]
    /// later. Records stay in order, so a durable CDR implies its call's
    /// earlier events are too. Nobody waits for it: the writer logs a
    /// failure with the record.
    pub fn append_lazy(&self, rec: &Record) {
        self.queue(rec, None);
    }

    fn queue(&self, rec: &Record, done: Option<oneshot::Sender<Result<u64, SpoolError>>>) {
        let payload = serde_json::to_vec(rec).expect("records serialise");
        if let Err(refused) = self.appends.push(writer::Append { payload, done }) {
            refused.answer(Err(SpoolError::Closed));
        }
    }

    /// A reader for `sink`, from the record after its cursor.
    pub fn reader(&self, sink: &str) -> Reader {
        let from = lock(&self.shared.cursors)
            .get(sink)
            .map(|c| c.delivered_seq)
            .unwrap_or(0)
            + 1;
        Reader {
            shared: self.shared.clone(),
            next: from,
            file: None,
            written: self.shared.written.subscribe(),
        }
    }

    /// Records that `sink` holds every record up to `seq`, and removes the
    /// segments every sink is past.
    pub fn commit(&self, sink: &str, seq: u64, count: u64) -> Result<(), SpoolError> {
        let sync = self.shared.cfg.fsync != Fsync::Never;
        let min = {
            let mut cursors = lock(&self.shared.cursors);
            let c = cursors.entry(sink.to_string()).or_default();
            c.delivered_seq = seq;
            c.delivered += count;
            c.last_error = None;
            c.failing_since_ms = None;
            cursor::store(&self.shared.cfg.dir, sink, c, sync)
                .map_err(io_err(&self.shared.cfg.dir))?;
            cursors.values().map(|c| c.delivered_seq).min().unwrap_or(0)
        };
        self.remove_taken(min)
    }

    /// Records a failed delivery for `sink` (kept until the next success).
    pub fn note_error(&self, sink: &str, error: &str) {
        let mut cursors = lock(&self.shared.cursors);
        let c = cursors.entry(sink.to_string()).or_default();
        c.last_error = Some(error.to_string());
        c.failing_since_ms.get_or_insert_with(crate::model::now_ms);
        if let Err(e) = cursor::store(&self.shared.cfg.dir, sink, c, false) {
            tracing::warn!(sink, error = %e, "could not record the sink's error");
        }
    }

    /// Deletes segments whose every record is at or below `min`.
    fn remove_taken(&self, min: u64) -> Result<(), SpoolError> {
        let mut segments = lock(&self.shared.segments);
        let firsts: Vec<u64> = segments.keys().copied().collect();
        for pair in firsts.windows(2) {
            let (first, next) = (pair[0], pair[1]);
            if next - 1 > min {
                break;
            }
            let path = self.shared.segment_path(first);
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
            segments.remove(&first);
        }
        Ok(())
    }

    pub fn status(&self) -> Status {
        let segments = lock(&self.shared.segments).clone();
        let cursors = lock(&self.shared.cursors).clone();
        let mut st = status_of(
            &self.shared.cfg,
            &segments,
            *self.shared.written.borrow(),
            &cursors,
        );
        let held = &self.shared.held;
        st.held_records = held.records.load(std::sync::atomic::Ordering::Relaxed);
        st.held_bytes = held.bytes.load(std::sync::atomic::Ordering::Relaxed);
        st.refusing_calls = self.refusing_calls();
        st
    }

    /// True while the records held in memory fill half the hold: the node
    /// takes no new calls until the spool can write again.
    pub fn refusing_calls(&self) -> bool {
        self.shared.held.refusing(self.shared.cfg.hold_bytes)
    }

    /// The last sequence number written.
    pub fn last_seq(&self) -> u64 {
        *self.shared.written.borrow()
    }
}

impl Drop for Spool {
    /// Stops taking appends and lets the writer finish what it has.
    fn drop(&mut self) {
        self.appends.close();
        if let Some(h) = self.writer.take() {
            let _ = h.join();
        }
    }
}

/// One sink's sequential view of the spool.
pub struct Reader {
    shared: Arc<Shared>,
    /// The sequence number to read next.
    next: u64,
    /// The open segment: its first sequence number and a reader placed at
    /// the record `next`.
    file: Option<(u64, BufReader<File>)>,
    written: watch::Receiver<u64>,
}

impl Reader {
    /// Up to `max` records from the cursor on, waiting until there is one;
    /// then, if fewer than `max` are written, waiting `linger` for more, so
    /// a sink at a steady call rate takes one batch per `linger` (one
    /// transaction, one cursor sync, one wakeup) instead of one per record.
    pub async fn next_batch(
        &mut self,
        max: usize,
        linger: Duration,
    ) -> Result<Vec<(u64, Record)>, SpoolError> {
        let mut upto = loop {
            let upto = *self.written.borrow_and_update();
            if self.next <= upto {
                break upto;
            }
            if self.written.changed().await.is_err() {
                return Err(SpoolError::Closed);
            }
        };
        if upto + 1 - self.next < max as u64 {
            // One timer, not a wakeup per record written meanwhile: a
            // batch that fills up early waits out the linger, and the
            // backlog beyond `max` is taken at once by the next call.
            tokio::time::sleep(linger).await;
            upto = *self.written.borrow_and_update();
        }
        self.read(upto, max)
    }

    /// Records `next..=upto` (at most `max`), which are all on disk.
    fn read(&mut self, upto: u64, max: usize) -> Result<Vec<(u64, Record)>, SpoolError> {
        let mut out = Vec::new();
        let mut frame = Vec::new();
        while self.next <= upto && out.len() < max {
            if self.file.is_none() {
                self.open_at()?;
            }
            let (first, file) = self.file.as_mut().expect("a segment is open");
            let first = *first;
            frame.resize(segment::HEADER, 0);
            match file.read_exact(&mut frame) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    // This segment is done; the record lives in the next one.
                    self.file = None;
                    continue;
                }
                Err(e) => return Err(io_err(&self.shared.segment_path(first))(e)),
            }
            let len = u32::from_le_bytes(frame[..4].try_into().expect("4 bytes")) as usize;
            frame.resize(segment::HEADER + len.min(segment::MAX_PAYLOAD), 0);
            let path = self.shared.segment_path(first);
            file.read_exact(&mut frame[segment::HEADER..])
                .map_err(io_err(&path))?;
            let found = segment::decode_at(&frame, 0, Some(self.next)).map_err(|d| {
                SpoolError::Damaged {
                    path: path.clone(),
                    what: d.to_string(),
                }
            })?;
            match serde_json::from_slice::<Record>(found.payload(&frame)) {
                Ok(rec) => out.push((found.seq, rec)),
                Err(e) => tracing::error!(
                    seq = found.seq,
                    spool = %path.display(),
                    "CDR spool record is not a record this version reads ({e}); skipped"
                ),
            }
            self.next += 1;
        }
        Ok(out)
    }

    /// Opens the segment holding `next` and skips to it.
    fn open_at(&mut self) -> Result<(), SpoolError> {
        let first = lock(&self.shared.segments)
            .range(..=self.next)
            .next_back()
            .map(|(f, _)| *f)
            .ok_or_else(|| SpoolError::Damaged {
                path: self.shared.cfg.dir.clone(),
                what: format!("no segment holds record {}", self.next),
            })?;
        let path = self.shared.segment_path(first);
        let mut f = BufReader::new(File::open(&path).map_err(io_err(&path))?);
        f.seek(SeekFrom::Start(segment::MAGIC.len() as u64))
            .map_err(io_err(&path))?;
        let mut header = [0u8; segment::HEADER];
        for _ in first..self.next {
            f.read_exact(&mut header).map_err(io_err(&path))?;
            let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes"));
            f.seek_relative(len as i64).map_err(io_err(&path))?;
        }
        self.file = Some((first, f));
        Ok(())
    }
}
