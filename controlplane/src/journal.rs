//! The call-state journal on disk: the latest state of every call the
//! cores keep (answered B2BUA calls, media sessions), so a control plane
//! killed and started again takes its calls back.
//!
//! One file, in the CDR spool's segment format (checksummed, numbered
//! records: `tollgate_cdr::spool::segment`), each record a JSON
//! `{"key": ..., "value": ...}` where a null value forgets the key. Reading
//! keeps the last value per key and stops at the first damaged record (a
//! torn last write), which is cut off. When the file has grown to several
//! times what is live, it is rewritten with the live entries only (to a
//! temporary file, synced, renamed over).
//!
//! The file is the owner's only (mode 0600): the media sessions of
//! transcrypted calls carry their SDES keys.
//!
//! Entries are written with one `write` per step of the cores and not
//! synced each time: a process killed mid-call loses nothing the kernel
//! has (SIGKILL, a panic), and the file is synced once a second against a
//! host crash, which then loses at most that second's changes.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use tollgate_cdr::spool::segment;

/// Rewrites happen past this many bytes and this many times the live size.
const COMPACT_MIN: u64 = 1 << 20;
const COMPACT_RATIO: u64 = 4;
const SYNC_EVERY: Duration = Duration::from_secs(1);

/// `[journal]`: where the call-state journal lives.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct JournalConfig {
    /// Off: a control-plane restart loses the calls' state (their media
    /// goes on in the data plane, but BYEs then get 481).
    pub disabled: bool,
    /// The journal file; default `calls.journal` in the CDR spool's
    /// directory (durable state kept together).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
}

impl JournalConfig {
    pub fn path(&self, spool_dir: &Path) -> PathBuf {
        self.path
            .clone()
            .unwrap_or_else(|| spool_dir.join("calls.journal"))
    }
}

/// Keys of the two cores' entries.
pub const SIP: &str = "sip/";
pub const MEDIA: &str = "media/";

/// A journal shared by the adapters (the SIP thread and the NG tasks).
/// Entries are held until [`Shared::flush`], which the adapters call once
/// the CDRs of the same step are durable: a call's entry goes only after
/// its CDR is on disk, so a crash in between cannot leave a call whose CDR
/// is lost and whose state is forgotten. (It can, in that instant, leave a
/// call journaled whose CDR is out: [`restore_media`] does not restore the
/// calls whose CDRs are in the spool's newest segments, so a BYE repeated
/// to it gets 481 rather than writing a second CDR.)
/// Each flushed batch is also handed to the tee, when one is set (the
/// failover writer's copy for Redis: `failover`). The bool: the last write
/// failed (its error is logged once per run of failures, not per call
/// step: a full disk would flood the log).
pub struct Shared(Mutex<(Journal, Vec<Change>, bool)>, OnceLock<Tee>);

/// Who else receives each flushed batch; it must not block.
pub type Tee = Box<dyn Fn(Vec<Change>) + Send + Sync>;

/// One key's new value, or `None` to forget it.
pub type Change = (String, Option<Value>);

/// A journal opened: it, its live entries, and a note on repaired damage.
pub type Opened = (Journal, BTreeMap<String, Value>, Option<String>);

impl Shared {
    pub fn new(j: Journal) -> Shared {
        Shared(Mutex::new((j, Vec::new(), false)), OnceLock::new())
    }

    /// Sets the tee every later flush hands its batch to (once).
    pub fn tee(&self, tee: Tee) {
        let _ = self.1.set(tee);
    }

    /// Holds one core's entries under `prefix`, to be written by the next
    /// [`Shared::flush`].
    pub fn hold<T: Serialize>(&self, prefix: &str, entries: Vec<(String, Option<T>)>) {
        if entries.is_empty() {
            return;
        }
        let entries = entries.into_iter().filter_map(|(id, v)| {
            let v = match v.map(serde_json::to_value).transpose() {
                Ok(v) => v,
                Err(e) => {
                    tracing::error!(call_id = id, error = %e, "call state not journaled");
                    return None;
                }
            };
            Some((format!("{prefix}{id}"), v))
        });
        crate::sync::lock(&self.0).1.extend(entries);
    }

    /// Writes what is held, in one write; a failure is logged (the calls go
    /// on; their survival of a restart is what is lost).
    pub fn flush(&self) {
        let mut g = crate::sync::lock(&self.0);
        let (journal, held, failing) = &mut *g;
        if held.is_empty() {
            return;
        }
        if let Some(tee) = self.1.get() {
            tee(held.clone());
        }
        let ok = journal.append(held.drain(..));
        match &ok {
            Err(e) if !*failing => tracing::error!(path = %journal.path.display(), error = %e,
                "call journal write failed; calls changed now will not survive a restart"),
            Ok(()) if *failing => {
                tracing::warn!(path = %journal.path.display(), "call journal writes again")
            }
            _ => {}
        }
        *failing = ok.is_err();
    }
}

#[derive(Serialize, Deserialize)]
struct Entry {
    key: String,
    value: Value,
}

pub struct Journal {
    path: PathBuf,
    file: File,
    /// The latest value of every live key, as encoded in the file.
    live: BTreeMap<String, Vec<u8>>,
    live_bytes: u64,
    next_seq: u64,
    len: u64,
    synced: Instant,
}

/// What reading the journal found wrong: the file could not be used.
#[derive(Debug, thiserror::Error)]
#[error("call journal {path}: {cause}")]
pub struct JournalError {
    path: String,
    cause: io::Error,
}

impl Journal {
    /// Opens the journal at `path` (made if missing) and returns it with
    /// every live entry, and a note on any damage cut off its end.
    pub fn open(path: &Path) -> Result<Opened, JournalError> {
        let err = |cause| JournalError {
            path: path.display().to_string(),
            cause,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(err(e)),
        };
        let (live, entries, note) = read(&bytes);
        let mut j = Journal {
            path: path.to_path_buf(),
            file: File::open("/dev/null").map_err(err)?,
            live_bytes: live.values().map(|v| v.len() as u64).sum(),
            live,
            next_seq: 1,
            len: 0,
            synced: Instant::now(),
        };
        // Start from a clean file holding only what is live: the damage
        // and the history go.
        j.rewrite().map_err(err)?;
        Ok((j, entries, note))
    }

    /// Appends `entries` (a `None` value forgets its key) in one write.
    pub fn append(
        &mut self,
        entries: impl IntoIterator<Item = (String, Option<Value>)>,
    ) -> io::Result<()> {
        let mut out = Vec::new();
        for (key, value) in entries {
            let gone = value.is_none();
            let entry = Entry {
                key,
                value: value.unwrap_or(Value::Null),
            };
            let payload = serde_json::to_vec(&entry).expect("JSON values always serialise");
            segment::encode(self.next_seq, &payload, &mut out);
            self.next_seq += 1;
            self.remember(entry.key, payload, gone);
        }
        if out.is_empty() {
            return Ok(());
        }
        if let Err(e) = self.file.write_all(&out) {
            // A part written (a full disk) would end the journal for the
            // next start: cut it off. The entries stay live in memory and
            // reach the file with the next rewrite.
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += out.len() as u64;
        if self.len > COMPACT_MIN && self.len > COMPACT_RATIO * self.live_bytes {
            self.rewrite()?;
        } else if self.synced.elapsed() >= SYNC_EVERY {
            self.file.sync_data()?;
            self.synced = Instant::now();
        }
        Ok(())
    }

    fn remember(&mut self, key: String, payload: Vec<u8>, gone: bool) {
        let old = if gone {
            self.live.remove(&key)
        } else {
            self.live_bytes += payload.len() as u64;
            self.live.insert(key, payload)
        };
        if let Some(old) = old {
            self.live_bytes -= old.len() as u64;
        }
    }

    /// Writes the live entries to a fresh file and puts it in place.
    fn rewrite(&mut self) -> io::Result<()> {
        let tmp = self.path.with_extension("journal.tmp");
        let mut out = segment::MAGIC.to_vec();
        for (seq, payload) in (1u64..).zip(self.live.values()) {
            segment::encode(seq, payload, &mut out);
        }
        // Owner only: a transcrypted session's SDES keys are in it.
        let mut f = {
            use std::os::unix::fs::OpenOptionsExt;
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?
        };
        f.write_all(&out)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            File::open(dir)?.sync_all()?;
        }
        self.file = OpenOptions::new().append(true).open(&self.path)?;
        self.next_seq = self.live.len() as u64 + 1;
        self.len = out.len() as u64;
        self.synced = Instant::now();
        Ok(())
    }
}

/// Takes the journaled calls back at start: the media sessions into
/// `sessions` (their flows installed through `plane`, a no-op where the data
/// plane kept them), and returns the B2BUA's calls for the SIP adapter.
/// What cannot be restored is logged and forgotten, and so are calls in
/// `ended` (their CDR is already spooled: the process died before the
/// journal heard of their end).
pub fn restore_media(
    journal: &Shared,
    entries: BTreeMap<String, Value>,
    ended: &std::collections::BTreeSet<String>,
    sessions: &mut crate::media::Sessions,
    plane: &mut dyn crate::media::MediaPlane,
) -> Vec<crate::b2bua::journal::CallSnapshot> {
    let (mut flows, mut calls, mut forget) = (Vec::new(), Vec::new(), Vec::new());
    for (key, value) in entries {
        let id = key.strip_prefix(MEDIA).or_else(|| key.strip_prefix(SIP));
        if id.is_some_and(|id| ended.contains(id)) {
            tracing::info!(
                key,
                "journaled call not restored: its CDR is already spooled"
            );
            forget.push((key, None::<Value>));
            continue;
        }
        let restored = if let Some(id) = key.strip_prefix(MEDIA) {
            sessions.restore(id, value).map(|f| {
                flows.extend(f);
                keep_recording(sessions, plane, id);
            })
        } else if key.starts_with(SIP) {
            serde_json::from_value(value)
                .map(|s| calls.push(s))
                .map_err(|e| format!("{key}: not a call the journal wrote: {e}"))
        } else {
            Err(format!("{key}: not a key of this journal"))
        };
        if let Err(e) = restored {
            tracing::error!(error = %e, "journaled call not restored");
            forget.push((key, None::<Value>));
        }
    }
    let failed = plane
        .apply(&flows, &[])
        .puts
        .into_iter()
        .filter(Result::is_err)
        .count();
    tracing::info!(
        sessions = sessions.active(),
        sip_calls = calls.len(),
        flows = flows.len(),
        failed,
        "calls restored from the journal"
    );
    journal.hold("", forget);
    journal.flush();
    calls
}

/// A restored call's open recording, taken on by the data-plane link
/// before its flows (whose taps name it) go in.
fn keep_recording(
    sessions: &crate::media::Sessions,
    plane: &mut dyn crate::media::MediaPlane,
    call_id: &str,
) {
    if let Some((n, dir)) = sessions.recording_of(call_id) {
        if let Err(e) = plane.keep_recording(n, &dir) {
            tracing::error!(call_id, recording = n, error = %e, "restored call's recording not reopened; its taps record nothing");
        }
    }
}

type Read = (
    BTreeMap<String, Vec<u8>>,
    BTreeMap<String, Value>,
    Option<String>,
);

/// The live entries of a journal file's bytes (sans-IO, so damage is
/// tested on crafted bytes), and what damage ended the reading.
fn read(bytes: &[u8]) -> Read {
    let (mut raw, mut values) = (BTreeMap::new(), BTreeMap::new());
    if bytes.is_empty() {
        return (raw, values, None);
    }
    let scan = segment::scan(bytes, 1);
    let mut note = scan
        .damage
        .as_ref()
        .map(|(at, d)| format!("damage at byte {at} ({d}); what follows is dropped"));
    for found in &scan.records {
        let payload = found.payload(bytes);
        match serde_json::from_slice::<Entry>(payload) {
            Ok(e) if e.value.is_null() => {
                raw.remove(&e.key);
                values.remove(&e.key);
            }
            Ok(e) => {
                raw.insert(e.key.clone(), payload.to_vec());
                values.insert(e.key, e.value);
            }
            Err(e) => {
                note = Some(format!(
                    "record {} is not an entry ({e}); skipped",
                    found.seq
                ));
            }
        }
    }
    (raw, values, note)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tg-journal-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir.join("calls.journal")
    }

    #[test]
    fn the_last_value_of_each_key_survives_a_reopen_and_forgotten_keys_do_not() {
        let path = temp("reopen");
        let (mut j, found, note) = Journal::open(&path).unwrap();
        assert!(found.is_empty() && note.is_none());
        j.append([("a".into(), Some(json!(1))), ("b".into(), Some(json!(2)))])
            .unwrap();
        j.append([("a".into(), Some(json!({"x": 3}))), ("b".into(), None)])
            .unwrap();
        drop(j);
        let (_, found, note) = Journal::open(&path).unwrap();
        assert_eq!(note, None);
        assert_eq!(found, BTreeMap::from([("a".to_string(), json!({"x": 3}))]));
        // A second open reads the rewritten file the same.
        let (_, again, _) = Journal::open(&path).unwrap();
        assert_eq!(again, found);
    }

    #[test]
    fn a_torn_last_write_is_cut_off_and_the_rest_kept() {
        let path = temp("torn");
        let (mut j, _, _) = Journal::open(&path).unwrap();
        j.append([("a".into(), Some(json!("kept")))]).unwrap();
        j.append([("b".into(), Some(json!("torn")))]).unwrap();
        drop(j);
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.set_len(len - 3).unwrap();
        let (_, found, note) = Journal::open(&path).unwrap();
        assert_eq!(found, BTreeMap::from([("a".to_string(), json!("kept"))]));
        assert!(note.unwrap().contains("dropped"));
    }

    #[test]
    fn a_long_history_is_compacted_to_what_is_live() {
        let path = temp("compact");
        let (mut j, _, _) = Journal::open(&path).unwrap();
        let big = "x".repeat(1000);
        for i in 0..5000u32 {
            let key = format!("call-{}", i % 10);
            j.append([(key, Some(json!({"i": i, "pad": big})))])
                .unwrap();
        }
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(len < 2 * COMPACT_MIN, "{len} bytes: never compacted");
        drop(j);
        let (_, found, _) = Journal::open(&path).unwrap();
        assert_eq!(found.len(), 10);
        assert_eq!(found["call-9"]["i"], 4999);
    }
}
