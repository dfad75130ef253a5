//! The spool's single writer thread: group commit into the active segment.
//!
//! It waits for an append someone awaits (or a lazy one grown old, see
//! [`super::queue`]), takes every append queued (up to [`MAX_GROUP`]),
//! writes them in one `write`, syncs per the policy (under `always`, a
//! group holding only lazy appends is not synced on its own: the next
//! awaited group, or `lazy_sync` later, syncs it), publishes the new last
//! sequence number to readers, then acknowledges each append. A failed write is cut back off the segment and every
//! append of the group gets the error, so no record is half-acknowledged.
//! Every file operation goes through the [`Storage`] it was given.

use super::hold::Hold;
use super::queue::{Queue, Taken};
use super::storage::{SegmentFile, Storage};
use super::{io_err, lock, segment, Fsync, Shared, SpoolError};
use std::sync::Arc;
use std::time::Instant;
use tokio::sync::oneshot;

/// Most appends committed by one write and sync.
const MAX_GROUP: usize = 4096;

#[derive(Debug)]
pub(super) struct Append {
    pub payload: Vec<u8>,
    /// Who waits for the record (the policy's sync precedes the answer);
    /// None for a lazy append, whose failure the writer logs itself.
    pub done: Option<oneshot::Sender<Result<u64, SpoolError>>>,
}

impl Append {
    pub fn awaited(&self) -> bool {
        self.done.is_some()
    }

    /// Tells the waiter, or logs a lazy append's failure with the record.
    pub fn answer(self, result: Result<u64, SpoolError>) {
        match (self.done, result) {
            (Some(done), result) => {
                let _ = done.send(result);
            }
            (None, Err(e)) => tracing::error!(error = %e,
                record = %String::from_utf8_lossy(&self.payload), "call event not spooled"),
            (None, Ok(_)) => {}
        }
    }
}

/// The segment being appended to.
pub(super) struct Active<F> {
    first: u64,
    file: F,
    len: u64,
    next_seq: u64,
}

impl<F: SegmentFile> Active<F> {
    /// Continues the newest segment while it is under the size limit, else
    /// starts one at `next_seq`.
    pub(super) fn open<S: Storage<File = F>>(
        shared: &Shared,
        storage: &mut S,
        next_seq: u64,
    ) -> Result<Self, SpoolError> {
        let newest = lock(&shared.segments)
            .iter()
            .next_back()
            .map(|(f, l)| (*f, *l));
        match newest {
            Some((first, len)) if len < shared.cfg.segment_bytes => {
                let path = shared.segment_path(first);
                let file = storage.open_append(&path).map_err(io_err(&path))?;
                Ok(Active {
                    first,
                    file,
                    len,
                    next_seq,
                })
            }
            _ => Active::create(shared, storage, next_seq),
        }
    }

    fn create<S: Storage<File = F>>(
        shared: &Shared,
        storage: &mut S,
        first: u64,
    ) -> Result<Self, SpoolError> {
        let path = shared.segment_path(first);
        let mut file = storage.create(&path).map_err(io_err(&path))?;
        file.write_all(segment::MAGIC).map_err(io_err(&path))?;
        if shared.cfg.fsync != Fsync::Never {
            file.sync_all().map_err(io_err(&path))?;
            storage
                .sync_dir(&shared.cfg.dir)
                .map_err(io_err(&shared.cfg.dir))?;
        }
        let len = segment::MAGIC.len() as u64;
        lock(&shared.segments).insert(first, len);
        Ok(Active {
            first,
            file,
            len,
            next_seq: first,
        })
    }
}

/// What the writer keeps between groups.
struct Writer<S: Storage> {
    shared: Arc<Shared>,
    storage: S,
    active: Active<S::File>,
    buf: Vec<u8>,
    /// When the oldest written but unsynced record was written.
    unsynced: Option<Instant>,
    /// How long a written record may stay unsynced (None: left to the kernel).
    bound: Option<std::time::Duration>,
    hold: Hold,
    /// Why records are held: the last write error.
    cause: String,
    /// The hold overflowed in this episode (logged once).
    overflowed: bool,
}

pub(super) fn run<S: Storage>(
    shared: Arc<Shared>,
    queue: Arc<Queue>,
    storage: S,
    active: Active<S::File>,
) {
    let bound = match shared.cfg.fsync {
        Fsync::Interval(every) => Some(every),
        Fsync::Always => Some(shared.cfg.lazy_sync),
        Fsync::Never => None,
    };
    let mut w = Writer {
        shared,
        storage,
        active,
        buf: Vec::with_capacity(1 << 20),
        unsynced: None,
        bound,
        hold: Hold::default(),
        cause: String::new(),
        overflowed: false,
    };
    let mut alarmed = false;
    let mut group = Vec::new();
    loop {
        let sync_at = w.bound.zip(w.unsynced).map(|(every, since)| since + every);
        let until = [sync_at, w.hold.retry_at()].into_iter().flatten().min();
        let lazy = w.shared.cfg.lazy_sync.min(super::LAZY_WRITE);
        match queue.take(&mut group, MAX_GROUP, lazy, until) {
            Taken::Group => {}
            Taken::TimedOut => {
                if w.hold.due() {
                    w.retry_held();
                } else {
                    sync(&w.shared, &mut w.active);
                    w.unsynced = None;
                }
                continue;
            }
            Taken::Closed => break,
        }
        if w.hold.due() {
            w.retry_held();
        }
        if w.hold.is_empty() {
            w.write(std::mem::take(&mut group), false);
        } else {
            // Newer records wait behind the held ones, in order.
            w.keep(group.drain(..));
        }
        alarmed = alarm(&w.shared, alarmed);
    }
    if !w.hold.is_empty() {
        w.retry_held();
    }
    for a in w.hold.take_all() {
        a.answer(Err(SpoolError::WriteFailed(
            "the spool closed while the record was held in memory".into(),
        )));
    }
    if w.shared.cfg.fsync != Fsync::Never {
        sync(&w.shared, &mut w.active);
    }
}

impl<S: Storage> Writer<S> {
    /// Commits `appends`; on a write failure holds them (the first time,
    /// with one error naming the path and the cause).
    fn write(&mut self, appends: Vec<Append>, held: bool) {
        let c = commit(
            &self.shared,
            &mut self.storage,
            &mut self.active,
            appends,
            &mut self.buf,
            held,
        );
        match c {
            Ok(Committed::Synced) => self.unsynced = None,
            Ok(Committed::Written) => {
                let since = *self.unsynced.get_or_insert_with(Instant::now);
                if self.bound.is_some_and(|every| since.elapsed() >= every) {
                    sync(&self.shared, &mut self.active);
                    self.unsynced = None;
                }
            }
            Ok(Committed::Nothing) => {}
            Err((failed, e)) if held => {
                tracing::debug!(error = %e, "CDR spool still cannot write its held records");
                self.cause = e.to_string();
                self.hold.put_back(failed, &self.shared.held);
            }
            Err((failed, e)) => {
                if self.hold.is_empty() {
                    tracing::error!(error = %e, hold_bytes = self.shared.cfg.hold_bytes,
                        "{e}: CDRs and call events are held in memory until the spool can \
                         write again (a crash meanwhile loses them); new calls are refused \
                         once half the hold is used");
                }
                self.cause = e.to_string();
                self.keep(failed.into_iter());
            }
        }
    }

    /// Holds each append, or fails it when the hold is full.
    fn keep(&mut self, appends: impl Iterator<Item = Append>) {
        let max = self.shared.cfg.hold_bytes;
        for a in appends {
            if let Err(a) = self.hold.keep(a, max, &self.shared.held, &self.cause) {
                if !self.overflowed {
                    tracing::error!(
                        max,
                        "CDR spool's memory hold is full: records that cannot be written \
                         are now refused, each logged whole"
                    );
                    self.overflowed = true;
                }
                a.answer(Err(SpoolError::WriteFailed(format!(
                    "{}, and the memory hold is full",
                    self.cause
                ))));
            }
        }
    }

    /// Tries the held records again, oldest first.
    fn retry_held(&mut self) {
        let held = self.hold.take_all();
        let n = held.len();
        self.write(held, true);
        if self.hold.is_empty() {
            self.hold.publish(&self.shared.held);
            self.overflowed = false;
            tracing::warn!(
                records = n,
                "CDR spool writes again: every held record written"
            );
        }
    }
}

fn sync(shared: &Shared, active: &mut Active<impl SegmentFile>) {
    if let Err(e) = active.file.sync_data() {
        tracing::error!(segment = %shared.segment_path(active.first).display(), error = %e,
            "CDR spool sync failed");
    }
}

/// Logs once when the spool crosses its alarm threshold, and once when it
/// drops back under it.
fn alarm(shared: &Shared, was: bool) -> bool {
    let (used, max) = (shared.bytes(), shared.cfg.max_bytes);
    let now = used * 100 >= max * shared.cfg.alarm_percent as u64;
    if now && !was {
        tracing::error!(
            used,
            max,
            "CDR spool at {}% of its bound: sinks are not taking records; \
             appends will be refused at the bound",
            used * 100 / max.max(1)
        );
    } else if was && !now {
        tracing::warn!(used, max, "CDR spool back under its alarm threshold");
    }
    now
}

/// What [`commit`] left on disk.
enum Committed {
    /// Nothing was written (every append refused at the bound).
    Nothing,
    /// Written, and synced before it was acknowledged.
    Synced,
    /// Written but not yet synced.
    Written,
}

/// Writes the appends that fit under the bound (refusing the others) and
/// acknowledges them; on a write failure gives them back unanswered.
/// `force_sync` syncs even a group nobody waits on (held records).
fn commit<S: Storage>(
    shared: &Shared,
    storage: &mut S,
    active: &mut Active<S::File>,
    group: Vec<Append>,
    buf: &mut Vec<u8>,
    force_sync: bool,
) -> Result<Committed, (Vec<Append>, SpoolError)> {
    let used = shared.bytes();
    let max = shared.cfg.max_bytes;
    let mut add = 0u64;
    let mut take = Vec::with_capacity(group.len());
    for a in group {
        let size = (segment::HEADER + a.payload.len()) as u64;
        if used + add + size > max {
            a.answer(Err(SpoolError::Full {
                used: used + add,
                max,
            }));
        } else {
            add += size;
            take.push(a);
        }
    }
    if take.is_empty() {
        return Ok(Committed::Nothing);
    }
    if active.len >= shared.cfg.segment_bytes {
        if shared.cfg.fsync != Fsync::Never {
            sync(shared, active);
        }
        match Active::create(shared, storage, active.next_seq) {
            Ok(next) => *active = next,
            Err(e) => return Err((take, e)),
        }
    }
    let synced =
        shared.cfg.fsync == Fsync::Always && (force_sync || take.iter().any(Append::awaited));
    buf.clear();
    for (i, a) in take.iter().enumerate() {
        segment::encode(active.next_seq + i as u64, &a.payload, buf);
    }
    let path = shared.segment_path(active.first);
    let written = active.file.write_all(buf).and_then(|()| {
        if synced {
            active.file.sync_data()
        } else {
            Ok(())
        }
    });
    if let Err(e) = written {
        // Cut the group back off so no reader or restart sees part of it.
        let _ = active.file.set_len(active.len);
        return Err((take, io_err(&path)(e)));
    }
    active.len += buf.len() as u64;
    let first_seq = active.next_seq;
    active.next_seq += take.len() as u64;
    lock(&shared.segments).insert(active.first, active.len);
    shared.written.send_replace(active.next_seq - 1);
    for (i, a) in take.into_iter().enumerate() {
        a.answer(Ok(first_seq + i as u64));
    }
    Ok(if synced {
        Committed::Synced
    } else {
        Committed::Written
    })
}
