//! What the archive queue is doing, for `tollgate archive status` and the
//! HTTP metrics: queue depth, the oldest recording waiting, whether the
//! queue is above its watermark, the last error. The uploader keeps it in
//! memory ([`SharedStatus`]) and writes it to `<spool>/status.json` when it
//! changes, so the CLI can read it beside a running node.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::sync::{Arc, Mutex};

pub const STATUS_FILE: &str = "status.json";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ArchiveStatus {
    /// Recordings under `ready/` not archived yet.
    pub depth: usize,
    /// When the oldest of them closed (its directory's time).
    pub oldest: Option<DateTime<Utc>>,
    /// `queue_combined_watermark`.
    pub watermark: usize,
    /// Depth above the watermark: recordings are kept locally and flagged.
    pub over_watermark: bool,
    /// Recordings flagged because they arrived above the watermark.
    pub flagged: u64,
    /// Recordings archived since the uploader started.
    pub archived: u64,
    /// Recordings that cannot be archived (moved to `failed/`).
    pub failed: usize,
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
    pub last_archived_at: Option<DateTime<Utc>>,
}

/// The uploader's status, shared with whoever reports it.
pub type SharedStatus = Arc<Mutex<ArchiveStatus>>;

impl ArchiveStatus {
    /// The status file of `spool`, or the default when there is none.
    pub fn read(spool: &Path) -> std::io::Result<ArchiveStatus> {
        match std::fs::read(spool.join(STATUS_FILE)) {
            Ok(b) => serde_json::from_slice(&b).map_err(std::io::Error::other),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ArchiveStatus::default()),
            Err(e) => Err(e),
        }
    }

    /// Replaces the status file (written aside, then renamed).
    pub fn write(&self, spool: &Path) -> std::io::Result<()> {
        let tmp = spool.join(format!("{STATUS_FILE}.tmp"));
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(self).expect("status serialises"),
        )?;
        std::fs::rename(tmp, spool.join(STATUS_FILE))
    }
}
