//! CDRs as JSON lines in a file, for shipping into other systems: one line
//! per finished call, `{"seq": N, "event": "call.ended", ...the CDR}`,
//! appended and synced per batch. On open the file's last complete line
//! gives the last sequence number written, and a partial line left by a
//! crash is cut off, so a replayed batch adds nothing twice.

use super::{Sink, SinkError};
use crate::model::Record;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

#[derive(serde::Serialize)]
struct Line<'a> {
    seq: u64,
    #[serde(flatten)]
    record: &'a Record,
}

pub struct JsonlSink {
    path: PathBuf,
    /// The open file and the last sequence number in it.
    file: Option<(File, u64)>,
}

/// How far back from the end a complete line is looked for.
const TAIL: u64 = 4 << 20;

/// Opens `path` for appending: cuts a partial last line and returns the
/// sequence number of the last complete one (0 for none).
fn open(path: &Path) -> Result<(File, u64), SinkError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    let len = f.metadata()?.len();
    let from = len.saturating_sub(TAIL);
    f.seek(SeekFrom::Start(from))?;
    let mut tail = Vec::new();
    f.read_to_end(&mut tail)?;
    let complete = tail.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
    if complete < tail.len() {
        tracing::warn!(file = %path.display(), bytes = tail.len() - complete,
            "cutting a partial last line left by a crash");
        f.set_len(from + complete as u64)?;
    }
    let last = tail[..complete]
        .split(|&b| b == b'\n')
        .rfind(|l| !l.is_empty())
        .map(|l| {
            serde_json::from_slice::<serde_json::Value>(l)
                .ok()
                .and_then(|v| v.get("seq")?.as_u64())
                .ok_or_else(|| {
                    SinkError(format!(
                        "{}: the last line has no \"seq\"; is this a Tollgate CDR file?",
                        path.display()
                    ))
                })
        })
        .transpose()?
        .unwrap_or(0);
    f.seek(SeekFrom::End(0))?;
    Ok((f, last))
}

impl JsonlSink {
    pub fn new(path: PathBuf) -> Self {
        JsonlSink { path, file: None }
    }
}

impl Sink for JsonlSink {
    async fn deliver(&mut self, batch: &[(u64, Record)]) -> Result<(), SinkError> {
        let (mut f, last) = match self.file.take() {
            Some(open) => open,
            None => open(&self.path)?,
        };
        let mut text = Vec::new();
        let mut newest = last;
        for (seq, record) in batch {
            if *seq > last && matches!(record, Record::Ended(_)) {
                serde_json::to_writer(&mut text, &Line { seq: *seq, record })
                    .expect("records serialise");
                text.push(b'\n');
                newest = *seq;
            }
        }
        if text.is_empty() {
            self.file = Some((f, last));
            return Ok(());
        }
        let (f, done) = tokio::task::spawn_blocking(move || {
            let done = f.write_all(&text).and_then(|()| f.sync_data());
            (f, done)
        })
        .await
        .map_err(|e| SinkError(format!("JSON-lines writer: {e}")))?;
        done.map_err(|e| SinkError(format!("{}: {e}", self.path.display())))?;
        self.file = Some((f, newest));
        Ok(())
    }
}
