//! The recorder's key of the `[archive]` section: `spool`, the directory
//! recordings are written in (`open/`) and handed to the archive in
//! (`ready/`). The archive's own keys live with the archive.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Where recordings go when the config does not say: beside the CDR
/// spool, under the node's data directory.
pub const DEFAULT_SPOOL: &str = "/var/lib/tollgate/recordings";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordingConfig {
    /// The hand-off directory: `<spool>/open/<id>/` while a recording is
    /// written, `<spool>/ready/<id>/` once it is closed.
    pub spool: PathBuf,
}

impl Default for RecordingConfig {
    fn default() -> Self {
        RecordingConfig {
            spool: PathBuf::from(DEFAULT_SPOOL),
        }
    }
}

impl RecordingConfig {
    pub fn validate(&self) -> Vec<String> {
        if self.spool.is_absolute() {
            Vec::new()
        } else {
            vec![format!(
                "archive.spool: {} must be an absolute path (the data plane writes there too)",
                self.spool.display()
            )]
        }
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
    fn spool_defaults_under_the_data_directory_and_must_be_absolute() {
        let c: RecordingConfig = toml::from_str("").unwrap();
        assert_eq!(
            c.open_dir("r1"),
            PathBuf::from("/var/lib/tollgate/recordings/open/r1")
        );
        assert!(c.validate().is_empty());
        let rel: RecordingConfig = toml::from_str(r#"spool = "rec""#).unwrap();
        assert!(rel.validate()[0].contains("archive.spool: rec"));
    }
}
