//! `[archive]`: the recording spool the recorder hands closed recordings
//! to, how they are rendered, where they are stored, the keys they are
//! sealed with, how long they are kept, and the queue's watermark and
//! retry. Every option has a one-host default: a local folder archive under
//! `/var/lib/tollgate`, rows in the first SQL sink of `[cdr]`, and, with no
//! key configured, a key generated on first run into `generated_key_file`
//! (mode 0600). Encryption cannot be turned off: a key beside a local
//! archive protects little on that disk, but every object is sealed the
//! same way, so moving to S3 or copying objects off the node never carries
//! audio in clear, and rotating in a key held elsewhere needs no migration.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use tollgate_archive::envelope::{Kek, Keyring};
use tollgate_archive::render::Layout;
use tollgate_archive::retention::Retention;
use tollgate_archive::store::StoreConfig;
use tollgate_cdr::config::CdrConfig;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Run the uploader in `tollgate run` / `controlplane`.
    pub enabled: bool,
    /// The hand-off directory: `open/` (being recorded), `ready/` (closed,
    /// the archive's), `failed/`, and the queue's status file.
    pub spool: PathBuf,
    /// `per_leg` (one channel per leg) or `mixed` (mono).
    pub layout: Layout,
    /// Recordings waiting above which new ones are flagged (rmarchived's
    /// `archived.queue_combined_watermark`).
    pub queue_combined_watermark: usize,
    pub retry_min_ms: u64,
    pub retry_max_ms: u64,
    pub poll_ms: u64,
    /// Recordings sealed and uploaded at once.
    pub upload_concurrency: usize,
    /// The SQL sink of `[cdr]` that gets the `recordings` rows (default:
    /// the first SQL sink).
    pub cdr_sink: Option<String>,
    pub store: StoreConfig,
    pub encryption: EncryptionConfig,
    pub retention: Retention,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            enabled: true,
            spool: "/var/lib/tollgate/recordings".into(),
            layout: Layout::PerLeg,
            queue_combined_watermark: 1500,
            retry_min_ms: 1000,
            retry_max_ms: 60_000,
            poll_ms: 1000,
            upload_concurrency: 4,
            cdr_sink: None,
            store: StoreConfig::Local {
                path: "/var/lib/tollgate/archive".into(),
            },
            encryption: EncryptionConfig::default(),
            retention: Retention::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EncryptionConfig {
    /// The key new objects are sealed with (default: the only key).
    pub active: Option<String>,
    /// Every key that may have sealed an object; old ones stay for reading.
    pub keys: Vec<KeyConfig>,
    /// With no `keys`: the key file made on first run (id `local`).
    pub generated_key_file: PathBuf,
}

impl Default for EncryptionConfig {
    fn default() -> Self {
        EncryptionConfig {
            active: None,
            keys: Vec::new(),
            generated_key_file: "/var/lib/tollgate/archive-key.hex".into(),
        }
    }
}

/// One key-encryption key: 32 bytes as `hex`, `base64`, or in a `file`
/// (hex or base64 text). Inline keys are never printed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    pub id: String,
    #[serde(default, skip_serializing)]
    pub hex: Option<String>,
    #[serde(default, skip_serializing)]
    pub base64: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<PathBuf>,
}

/// The id of the key generated when none is configured.
pub const GENERATED_KEY_ID: &str = "local";

impl ArchiveConfig {
    /// Problems, each naming its key.
    pub fn validate(&self, cdr: &CdrConfig) -> Vec<String> {
        let mut errs = self.store.validate();
        errs.extend(self.retention.validate());
        errs.extend(self.encryption.validate());
        if !self.spool.is_absolute() {
            errs.push(format!(
                "archive.spool {}: must be absolute",
                self.spool.display()
            ));
        }
        if self.retry_min_ms == 0 || self.retry_max_ms < self.retry_min_ms {
            errs.push(
                "archive.retry_max_ms must be at least archive.retry_min_ms, which must be > 0"
                    .into(),
            );
        }
        if self.poll_ms == 0 {
            errs.push("archive.poll_ms: must be > 0".into());
        }
        if !(1..=64).contains(&self.upload_concurrency) {
            errs.push(format!(
                "archive.upload_concurrency: {} is not between 1 and 64",
                self.upload_concurrency
            ));
        }
        if let Some(Err(e)) = self.cdr_sink.as_deref().map(|n| cdr.sql_sink(Some(n))) {
            errs.push(format!(
                "archive.cdr_sink: {e}: the recordings table lives there"
            ));
        }
        errs
    }
}

impl EncryptionConfig {
    fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            let at = format!("archive.encryption.keys[{i}] ({:?})", k.id);
            let sources = [k.hex.is_some(), k.base64.is_some(), k.file.is_some()];
            if sources.iter().filter(|s| **s).count() != 1 {
                errs.push(format!("{at}: give exactly one of hex, base64, file"));
            }
            if let Some(Err(e)) = k.hex.as_deref().or(k.base64.as_deref()).map(Kek::parse) {
                errs.push(format!("{at}: {e}"));
            }
        }
        let ids = self
            .keys
            .iter()
            .map(|k| (k.id.clone(), Kek::new([0; 32])))
            .collect::<Vec<_>>();
        if !ids.is_empty() {
            if let Err(e) = Keyring::new(ids, self.active_id()) {
                errs.push(format!("archive.encryption: {e}"));
            }
        } else if self
            .active
            .as_deref()
            .is_some_and(|a| a != GENERATED_KEY_ID)
        {
            errs.push("archive.encryption.active: names a key, but no keys are configured".into());
        }
        errs
    }

    fn active_id(&self) -> &str {
        match (&self.active, self.keys.as_slice()) {
            (Some(a), _) => a,
            (None, [only]) => &only.id,
            _ => "",
        }
    }

    /// The keyring: keys read (files too); with none configured, the
    /// generated key, made now when `generate` and it does not exist.
    pub fn keyring(&self, generate: bool) -> Result<Keyring, String> {
        if self.keys.is_empty() {
            let path = &self.generated_key_file;
            if generate && !path.exists() {
                write_new_key(path)?;
                tracing::warn!(path = %path.display(), "archive: no key configured; generated one (keep a copy: recordings cannot be read without it)");
            }
            let kek = read_key_file(path)?;
            return Keyring::new(vec![(GENERATED_KEY_ID.into(), kek)], GENERATED_KEY_ID);
        }
        let mut keys = Vec::new();
        for k in &self.keys {
            let kek = match (&k.hex, &k.base64, &k.file) {
                (Some(t), _, _) | (None, Some(t), _) => Kek::parse(t),
                (None, None, Some(f)) => read_key_file(f),
                _ => Err("no key material".into()),
            }
            .map_err(|e| format!("archive.encryption key {:?}: {e}", k.id))?;
            keys.push((k.id.clone(), kek));
        }
        Keyring::new(keys, self.active_id()).map_err(|e| format!("archive.encryption: {e}"))
    }
}

fn read_key_file(path: &Path) -> Result<Kek, String> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("key file {}: {e}", path.display()))?;
    Kek::parse(&text).map_err(|e| format!("key file {}: {e}", path.display()))
}

/// Writes a fresh key aside and links it into place, so two nodes
/// starting at once agree on one key and none reads a half-written file.
fn write_new_key(path: &Path) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |e: std::io::Error| format!("generating the archive key {}: {e}", path.display());
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let tmp = path.with_extension(format!("new.{}", std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    let written = f
        .write_all(format!("{}\n", Kek::generate_hex()).as_bytes())
        .and_then(|()| f.sync_all())
        .and_then(|()| std::fs::hard_link(&tmp, path));
    let _ = std::fs::remove_file(&tmp);
    match written {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(err(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> ArchiveConfig {
        toml::from_str::<ArchiveConfig>(text).unwrap()
    }

    #[test]
    fn defaults_validate_and_a_named_sql_sink_must_exist() {
        let a = ArchiveConfig::default();
        assert!(a.validate(&CdrConfig::default()).is_empty());
        let no_sql = CdrConfig {
            sinks: vec![],
            ..CdrConfig::default()
        };
        assert!(
            a.validate(&no_sql).is_empty(),
            "the uploader waits for an SQL sink"
        );
        let named = ArchiveConfig {
            cdr_sink: Some("pg".into()),
            ..ArchiveConfig::default()
        };
        let errs = named.validate(&CdrConfig::default());
        assert!(
            errs.iter()
                .any(|e| e.contains("archive.cdr_sink") && e.contains("\"pg\"")),
            "{errs:?}"
        );
    }

    #[test]
    fn keys_are_checked_named_and_never_printed() {
        let hex = "ab".repeat(32);
        let a = parse(&format!(
            "[encryption]\nactive = \"new\"\nkeys = [{{ id = \"old\", hex = \"{hex}\" }}, {{ id = \"new\", base64 = \"{}\" }}]",
            "A".repeat(43) + "="
        ));
        assert!(
            a.validate(&CdrConfig::default()).is_empty(),
            "{:?}",
            a.validate(&CdrConfig::default())
        );
        assert_eq!(a.encryption.keyring(false).unwrap().active(), "new");
        assert!(!toml::to_string(&a).unwrap().contains(&hex));

        let bad = parse("[encryption]\nkeys = [{ id = \"k\", hex = \"12\" }, { id = \"j\" }]");
        let errs = bad.validate(&CdrConfig::default()).join("\n");
        assert!(
            errs.contains("keys[0] (\"k\"): neither")
                && errs.contains("keys[1] (\"j\"): give exactly one"),
            "{errs}"
        );
        assert!(
            errs.contains("active key \"\""),
            "two keys and no active one: {errs}"
        );
        assert!(!errs.contains("12\""), "{errs}");
    }

    #[test]
    fn a_key_is_generated_once_when_none_is_configured() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = EncryptionConfig {
            generated_key_file: dir.path().join("keys/archive.hex"),
            ..EncryptionConfig::default()
        };
        assert!(e.keyring(false).unwrap_err().contains("archive.hex"));
        let sealed = e.keyring(true).unwrap().seal(b"audio");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&e.generated_key_file)
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(e.keyring(true).unwrap().open(&sealed).unwrap(), b"audio");
        e.generated_key_file = dir.path().join("other.hex");
        std::fs::write(&e.generated_key_file, "not a key").unwrap();
        assert!(e.keyring(true).unwrap_err().contains("other.hex"));
    }
}
