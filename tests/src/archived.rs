//! What the archive tests share: `tollgate archive` run against a node's
//! config, and the object store read back (every object and its SHA-256)
//! against the `recordings` rows.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use tollgate_archive::store::{Store, StoreConfig};

/// `tollgate archive ARGS` with the node's config; (success, stdout, stderr).
pub fn cli(dir: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(crate::process::tollgate_bin())
        .arg("archive")
        .arg("--config")
        .arg(dir.join("tollgate.toml"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run tollgate archive");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

pub fn cli_json(dir: &Path, args: &[&str]) -> Value {
    let (ok, out, err) = cli(dir, args);
    assert!(ok, "tollgate archive {args:?}: {err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: {e}: {out}"))
}

/// A runtime for a test's async steps.
pub fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Every object in the store with its SHA-256 (on a runtime of its own:
/// call it outside one).
pub fn objects(store: &StoreConfig) -> Vec<(String, String)> {
    rt().block_on(async {
        let s = Store::open(store).unwrap();
        let mut out = Vec::new();
        for (key, _) in s.list("").await.unwrap() {
            let bytes = s.get(&key).await.unwrap();
            out.push((key, hex::encode(Sha256::digest(&bytes))));
        }
        out.sort();
        out
    })
}

/// Each row's audio object is in the store with the row's SHA-256, and the
/// store holds exactly three objects per row.
pub fn assert_rows_match_store(rows: &[Value], store: &StoreConfig) {
    let stored = objects(store);
    assert_eq!(
        stored.len(),
        3 * rows.len(),
        "WAV, description and capture per recording: {stored:#?}"
    );
    for r in rows {
        let key = r["object_key"].as_str().unwrap();
        let found = stored.iter().find(|(k, _)| k == key);
        assert_eq!(
            found.map(|(_, h)| h.as_str()),
            r["sha256"].as_str(),
            "{key}"
        );
    }
}
