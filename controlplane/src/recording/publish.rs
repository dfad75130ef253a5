//! The file work of a recording's life, done by the adapters (the data-plane
//! link when it opens one, the NG/SIP servers when one closes): the
//! directory with room kept for the description, and the hand-off into
//! `ready/` (description synced, directory renamed, parent synced).

use super::Closed;
use std::path::Path;
use tollgate_archive::meta::META_FILE;

/// Room kept for `recording.json` from the start, so a disk that the
/// capture fills still takes the description (rewriting the file frees it).
const META_RESERVE: usize = 64 << 10;

/// Makes a recording's directory, with its description's room reserved.
pub fn prepare(dir: &Path) -> Result<(), String> {
    let err = |e: std::io::Error| format!("recording directory {}: {e}", dir.display());
    std::fs::create_dir_all(dir).map_err(err)?;
    std::fs::write(dir.join(META_FILE), vec![b' '; META_RESERVE]).map_err(err)
}

/// Writes the description and moves the directory into `ready/`, where
/// the archive takes it. On failure it stays in `open/`, logged.
pub fn publish(closed: &Closed) {
    let id = &closed.meta.recording_id;
    match hand_over(closed) {
        Ok(()) => tracing::info!(recording = %id, call_id = %closed.meta.call_id,
            dir = %closed.ready.display(), "recording ready"),
        Err(e) => tracing::error!(recording = %id, call_id = %closed.meta.call_id,
            dir = %closed.open.display(), error = %e,
            "recording not handed to the archive; it stays where it was written"),
    }
}

fn hand_over(c: &Closed) -> Result<(), String> {
    c.meta.write(&c.open).map_err(|e| e.to_string())?;
    let parent = c.ready.parent().ok_or("a ready directory has a parent")?;
    let err = |e: std::io::Error| format!("{}: {e}", c.ready.display());
    std::fs::create_dir_all(parent).map_err(err)?;
    std::fs::rename(&c.open, &c.ready).map_err(err)?;
    std::fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(err)
}
