//! Each sink's place in the spool, kept in `cursors/<sink>.json`: the last
//! sequence number the sink confirmed, how many records it took, and its
//! last error. Replaced atomically (write, sync, rename), so a crash leaves
//! either the old cursor or the new one; `tollgate cdr status` reads these
//! files whether or not the node is running.

use super::segment::MAX_SEQ;
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Every record up to this sequence number is in the sink (0: none).
    pub delivered_seq: u64,
    /// Records delivered since the cursor was created.
    pub delivered: u64,
    /// The last delivery error, cleared by the next success.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    /// When the sink started failing (UTC ms), while it is failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failing_since_ms: Option<i64>,
}

pub fn dir(spool: &Path) -> PathBuf {
    spool.join("cursors")
}

fn path(spool: &Path, sink: &str) -> PathBuf {
    dir(spool).join(format!("{sink}.json"))
}

/// The sink's cursor, or None when it has none yet.
pub fn load(spool: &Path, sink: &str) -> std::io::Result<Option<Cursor>> {
    let p = path(spool, sink);
    let invalid = |what: String| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{}: {what}", p.display()),
        )
    };
    match std::fs::read(&p) {
        Ok(bytes) => {
            let c: Cursor = serde_json::from_slice(&bytes).map_err(|e| invalid(e.to_string()))?;
            if c.delivered_seq > MAX_SEQ {
                return Err(invalid(format!(
                    "delivered_seq {} is beyond the limit {MAX_SEQ}",
                    c.delivered_seq
                )));
            }
            Ok(Some(c))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the sink's cursor; `sync` makes it survive power loss, not
/// just a crash of the process.
pub fn store(spool: &Path, sink: &str, c: &Cursor, sync: bool) -> std::io::Result<()> {
    let p = path(spool, sink);
    let tmp = p.with_extension("json.tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&serde_json::to_vec(c).expect("cursor serialises"))?;
    if sync {
        f.sync_data()?;
    }
    std::fs::rename(&tmp, &p)
}

/// Names of the sinks that have a cursor file.
pub fn list(spool: &Path) -> std::io::Result<Vec<String>> {
    let mut out = Vec::new();
    match std::fs::read_dir(dir(spool)) {
        Ok(entries) => {
            for e in entries {
                let name = e?.file_name().to_string_lossy().into_owned();
                if let Some(sink) = name.strip_suffix(".json") {
                    out.push(sink.to_string());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    out.sort();
    Ok(out)
}
