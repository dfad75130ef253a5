//! Where archived objects go, through the `object_store` crate: any S3
//! (path-style or virtual-hosted, plain HTTP allowed for a local endpoint)
//! or a local folder (the embedded default). Object keys are deterministic
//! from what is known when a recording starts ([`object_prefix`]), so an
//! upload repeated after a crash overwrites the same object instead of
//! adding one, and the control plane can put the recording's URL
//! ([`Store::url`]) into the CDR at call end.

use bytes::Bytes;
use chrono::{DateTime, Datelike, Utc};
use futures_util::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, PutPayload, RetryConfig};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The object store's settings (`[archive.store]`).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum StoreConfig {
    /// Objects as files under `path`.
    Local { path: PathBuf },
    S3 {
        bucket: String,
        /// `http://127.0.0.1:8333` for a local server; AWS when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        endpoint: Option<String>,
        #[serde(default = "default_region")]
        region: String,
        /// Credentials; the environment's (AWS_ACCESS_KEY_ID, ...) when omitted.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        access_key_id: Option<String>,
        /// Never printed (`check-config` shows the rest).
        #[serde(default, skip_serializing)]
        secret_access_key: Option<String>,
        /// Bucket in the host name (AWS's default) instead of the path.
        #[serde(default)]
        virtual_hosted: bool,
    },
}

fn default_region() -> String {
    "us-east-1".into()
}

impl fmt::Debug for StoreConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreConfig::Local { path } => f.debug_struct("Local").field("path", path).finish(),
            StoreConfig::S3 {
                bucket,
                endpoint,
                region,
                ..
            } => f
                .debug_struct("S3")
                .field("bucket", bucket)
                .field("endpoint", endpoint)
                .field("region", region)
                .finish_non_exhaustive(),
        }
    }
}

impl StoreConfig {
    /// What every object URL in this store starts with.
    pub fn url_base(&self) -> String {
        match self {
            StoreConfig::Local { path } => format!("file://{}/", path.display()),
            StoreConfig::S3 { bucket, .. } => format!("s3://{bucket}/"),
        }
    }

    pub fn validate(&self) -> Vec<String> {
        match self {
            StoreConfig::Local { path } if !path.is_absolute() => {
                vec![format!(
                    "archive.store.path {}: must be absolute",
                    path.display()
                )]
            }
            StoreConfig::S3 { bucket, .. } if bucket.is_empty() => {
                vec!["archive.store.bucket: must not be empty".into()]
            }
            StoreConfig::S3 {
                endpoint: Some(e), ..
            } if !(e.starts_with("http://") || e.starts_with("https://")) => {
                vec![format!(
                    "archive.store.endpoint {e:?}: must start with http:// or https://"
                )]
            }
            StoreConfig::S3 {
                access_key_id,
                secret_access_key,
                ..
            } if access_key_id.is_some() != secret_access_key.is_some() => {
                vec!["archive.store: access_key_id and secret_access_key go together".into()]
            }
            _ => vec![],
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("object store {store}: {detail}")]
pub struct StoreError {
    pub store: String,
    pub detail: String,
    /// The object (or prefix) does not exist.
    pub not_found: bool,
}

/// A connected object store.
#[derive(Clone)]
pub struct Store {
    inner: Arc<dyn ObjectStore>,
    base: String,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.base)
    }
}

impl Store {
    /// Opens the store (a local folder is created); nothing is sent yet.
    pub fn open(cfg: &StoreConfig) -> Result<Store, StoreError> {
        let (inner, base): (Arc<dyn ObjectStore>, String) = match cfg {
            StoreConfig::Local { path } => {
                let err = |detail: String| StoreError {
                    store: path.display().to_string(),
                    detail,
                    not_found: false,
                };
                std::fs::create_dir_all(path).map_err(|e| err(e.to_string()))?;
                let fs = object_store::local::LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| err(e.to_string()))?
                    .with_automatic_cleanup(true);
                (Arc::new(fs), cfg.url_base())
            }
            StoreConfig::S3 {
                bucket,
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                virtual_hosted,
            } => {
                let mut b = object_store::aws::AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    .with_region(region)
                    .with_virtual_hosted_style_request(*virtual_hosted)
                    .with_client_options(
                        ClientOptions::new()
                            .with_connect_timeout(Duration::from_secs(5))
                            .with_timeout(Duration::from_secs(60)),
                    )
                    // The upload queue retries with its own backoff.
                    .with_retry(RetryConfig {
                        max_retries: 1,
                        retry_timeout: Duration::from_secs(10),
                        ..RetryConfig::default()
                    });
                if let Some(e) = endpoint {
                    b = b.with_endpoint(e).with_allow_http(e.starts_with("http://"));
                }
                if let (Some(k), Some(s)) = (access_key_id, secret_access_key) {
                    b = b.with_access_key_id(k).with_secret_access_key(s);
                }
                let s3 = b.build().map_err(|e| StoreError {
                    store: format!("s3://{bucket}"),
                    detail: e.to_string(),
                    not_found: false,
                })?;
                (Arc::new(s3), cfg.url_base())
            }
        };
        Ok(Store { inner, base })
    }

    /// The URL of the object at `key` (what CDRs and rows carry).
    pub fn url(&self, key: &str) -> String {
        format!("{}{key}", self.base)
    }

    fn err(&self, e: object_store::Error) -> StoreError {
        StoreError {
            store: self.base.clone(),
            not_found: matches!(e, object_store::Error::NotFound { .. }),
            detail: e.to_string(),
        }
    }

    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<(), StoreError> {
        self.inner
            .put(&ObjectPath::from(key), PutPayload::from(bytes))
            .await
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The size of the object at `key`, or `None` when there is none.
    pub async fn size(&self, key: &str) -> Result<Option<u64>, StoreError> {
        match self.inner.head(&ObjectPath::from(key)).await {
            Ok(m) => Ok(Some(m.size)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(self.err(e)),
        }
    }

    pub async fn get(&self, key: &str) -> Result<Bytes, StoreError> {
        let got = self
            .inner
            .get(&ObjectPath::from(key))
            .await
            .map_err(|e| self.err(e))?;
        got.bytes().await.map_err(|e| self.err(e))
    }

    /// Every object under `prefix`, with its size.
    pub async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>, StoreError> {
        let p = ObjectPath::from(prefix);
        let found: Vec<_> = self
            .inner
            .list(Some(&p))
            .try_collect()
            .await
            .map_err(|e| self.err(e))?;
        Ok(found
            .into_iter()
            .map(|m| (m.location.to_string(), m.size))
            .collect())
    }

    /// Deletes every object under `prefix`; how many there were.
    pub async fn delete_prefix(&self, prefix: &str) -> Result<usize, StoreError> {
        let objects = self.list(prefix).await?;
        for (key, _) in &objects {
            match self.inner.delete(&ObjectPath::from(key.as_str())).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(self.err(e)),
            }
        }
        Ok(objects.len())
    }
}

/// The key prefix of a recording's objects, from what is known when it
/// starts: `ORG/YYYY/MM/DD/CALL-ID/RECORDING-ID/` (org `_` when none).
/// Characters outside `A-Za-z0-9._@+-` are written `=XX` (hex), so any
/// Call-ID makes a valid key and distinct ids never collide.
pub fn object_prefix(
    org: Option<&str>,
    call_id: &str,
    recording_id: &str,
    started: DateTime<Utc>,
) -> String {
    format!(
        "{}/{:04}/{:02}/{:02}/{}/{}/",
        org.map_or_else(|| "_".to_string(), key_part),
        started.year(),
        started.month(),
        started.day(),
        key_part(call_id),
        key_part(recording_id)
    )
}

/// The URL a recording's WAV will have in the store `cfg` once archived,
/// from what is known when it starts: what the control plane puts in the
/// CDR's `recording_url` at call end.
pub fn recording_url(
    cfg: &StoreConfig,
    org: Option<&str>,
    call_id: &str,
    recording_id: &str,
    started: DateTime<Utc>,
) -> String {
    let key = audio_key(&object_prefix(org, call_id, recording_id, started));
    format!("{}{key}", cfg.url_base())
}

/// The key of a recording's WAV: what rows and CDRs point at.
pub fn audio_key(prefix: &str) -> String {
    format!("{prefix}{AUDIO_OBJECT}")
}

/// Object names under a recording's prefix: the WAV, the description and
/// each capture, every one sealed on its own.
pub const AUDIO_OBJECT: &str = "audio.wav.tge";

fn key_part(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        let plain = b.is_ascii_alphanumeric() || b"_@+-".contains(&b) || (b == b'.' && i > 0);
        if plain {
            out.push(b as char);
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    if out.is_empty() {
        out.push('=');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn keys_are_deterministic_and_safe() {
        let t = Utc.with_ymd_and_hms(2026, 3, 4, 23, 59, 0).unwrap();
        let p = object_prefix(Some("acme"), "a/b c@host", "r-1", t);
        assert_eq!(p, "acme/2026/03/04/a=2Fb=20c@host/r-1/");
        assert_eq!(object_prefix(None, "..", "", t), "_/2026/03/04/=2E./=/");
        assert_eq!(
            ObjectPath::from(p.as_str()).to_string() + "/",
            p,
            "object_store keeps it as is"
        );
        assert_ne!(key_part("a=2F"), key_part("a/"));
    }

    #[tokio::test]
    async fn a_local_folder_stores_lists_and_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&StoreConfig::Local {
            path: dir.path().join("objects"),
        })
        .unwrap();
        store
            .put("o/2026/r/a.tge", Bytes::from_static(b"abc"))
            .await
            .unwrap();
        store
            .put("o/2026/r/b.tge", Bytes::from_static(b"de"))
            .await
            .unwrap();
        assert_eq!(store.size("o/2026/r/a.tge").await.unwrap(), Some(3));
        assert_eq!(store.size("o/2026/r/zz").await.unwrap(), None);
        assert_eq!(&store.get("o/2026/r/b.tge").await.unwrap()[..], b"de");
        assert!(store.get("nope").await.unwrap_err().not_found);
        assert_eq!(store.list("o/2026/r/").await.unwrap().len(), 2);
        assert_eq!(store.delete_prefix("o/2026/r/").await.unwrap(), 2);
        assert_eq!(store.delete_prefix("o/2026/r/").await.unwrap(), 0);
        assert!(store.url("k").starts_with("file:///"));
    }

    #[test]
    fn secrets_never_show() {
        let c = StoreConfig::S3 {
            bucket: "b".into(),
            endpoint: None,
            region: "r".into(),
            access_key_id: Some("AKID".into()),
            secret_access_key: Some("SECRET".into()),
            virtual_hosted: false,
        };
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("SECRET") && !shown.contains("AKID"),
            "{shown}"
        );
    }
}
