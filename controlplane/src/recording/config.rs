//! Where the recorder writes: the archive's spool (`[archive] spool`, owned
//! and validated by `archive::config`), seen as the two halves of the
//! hand-off directory (`tollgate_archive`'s module doc).

use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub struct RecordingConfig {
    /// The hand-off directory: `<spool>/open/<id>/` while a recording is
    /// written, `<spool>/ready/<id>/` once it is closed.
    pub spool: PathBuf,
    /// The archive's store: where a recording's URL (in the CDR) points.
    pub store: tollgate_archive::store::StoreConfig,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig::of(&crate::archive::config::ArchiveConfig::default())
    }
}

impl RecordingConfig {
    pub fn of(archive: &crate::archive::config::ArchiveConfig) -> Self {
        RecordingConfig {
            spool: archive.spool.clone(),
            store: archive.store.clone(),
        }
    }

    /// The URL the archived WAV of recording `id` of `call_id` (of `org`)
    /// will have.
    pub fn url(
        &self,
        org: Option<&str>,
        call_id: &str,
        id: &str,
        started: std::time::SystemTime,
    ) -> String {
        tollgate_archive::store::recording_url(&self.store, org, call_id, id, started.into())
    }

    /// Where a recording is written.
    pub fn open_dir(&self, id: &str) -> PathBuf {
        self.spool.join("open").join(id)
    }

    /// Where a closed recording is handed over.
    pub fn ready_dir(&self, id: &str) -> PathBuf {
        self.spool.join("ready").join(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spool_defaults_under_the_data_directory() {
        let c = RecordingConfig::default();
        assert_eq!(
            c.open_dir("r1"),
            PathBuf::from("/var/lib/tollgate/recordings/open/r1")
        );
        assert_eq!(
            c.ready_dir("r1"),
            PathBuf::from("/var/lib/tollgate/recordings/ready/r1")
        );
    }
}
