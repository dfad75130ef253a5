//! A recording's archive journal, `archive.journal` in its ready directory:
//! one JSON line per step done (sealed, each object stored, cataloged,
//! published), appended and synced before the next step starts. After a
//! crash the queue reads it back and goes on from the first step missing;
//! a torn last line (the crash hit mid-write) is a step not done.

use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

pub const JOURNAL_FILE: &str = "archive.journal";

/// One object of a recording, sealed and staged under `sealed/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SealedObject {
    /// The name under the recording's key prefix (and under `sealed/`).
    pub name: String,
    pub size: u64,
    pub sha256: String,
}

/// A step done.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "step", rename_all = "snake_case")]
pub enum Step {
    /// Found while the queue was above its watermark.
    Flagged,
    /// Rendered and sealed; the audio object comes first.
    Sealed {
        objects: Vec<SealedObject>,
        duration_ms: u64,
        codec: String,
        key_id: String,
        /// When it was sealed: the row's `archived_at`.
        at: chrono::DateTime<chrono::Utc>,
    },
    Stored {
        name: String,
    },
    Cataloged,
    Published,
}

pub struct Journal {
    path: PathBuf,
    steps: Vec<Step>,
}

impl Journal {
    /// Reads the journal in `dir` (none yet: no step done).
    pub fn open(dir: &Path) -> std::io::Result<Journal> {
        let path = dir.join(JOURNAL_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let steps = text
            .lines()
            .map_while(|l| serde_json::from_str(l).ok())
            .collect();
        Ok(Journal { path, steps })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn has(&self, step: &Step) -> bool {
        self.steps.contains(step)
    }

    /// Appends a step and syncs it.
    pub fn record(&mut self, step: Step) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(&step).expect("steps serialise");
        line.push(b'\n');
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)?;
        // A torn line left by a crash is cut off first, so this one parses.
        let good: usize = self
            .steps
            .iter()
            .map(|s| serde_json::to_vec(s).expect("steps serialise").len() + 1)
            .sum();
        if f.metadata()?.len() != good as u64 {
            f.set_len(good as u64)?;
        }
        f.write_all(&line)?;
        f.sync_all()?;
        self.steps.push(step);
        Ok(())
    }

    /// [`Journal::record`] on a blocking thread (it syncs the file), so an
    /// async caller's other work (other recordings' uploads) goes on.
    pub async fn record_apart(mut self, step: Step) -> std::io::Result<Journal> {
        tokio::task::spawn_blocking(move || self.record(step).map(|()| self))
            .await
            .map_err(std::io::Error::other)?
    }

    /// The sealed objects and what the audio is, once sealed.
    pub fn sealed(&self) -> Option<&Step> {
        self.steps.iter().find(|s| matches!(s, Step::Sealed { .. }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_survive_a_reopen_and_a_torn_line_is_not_a_step() {
        let dir = tempfile::tempdir().unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        j.record(Step::Flagged).unwrap();
        j.record(Step::Stored { name: "a".into() }).unwrap();
        let path = dir.path().join(JOURNAL_FILE);
        let mut torn = std::fs::read(&path).unwrap();
        torn.extend_from_slice(b"{\"step\":\"catal");
        std::fs::write(&path, torn).unwrap();
        let mut j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.steps().len(), 2);
        assert!(j.has(&Step::Stored { name: "a".into() }));
        j.record(Step::Cataloged).unwrap();
        let j = Journal::open(dir.path()).unwrap();
        assert_eq!(j.steps().last(), Some(&Step::Cataloged));
        assert_eq!(j.steps().len(), 3);
    }
}
