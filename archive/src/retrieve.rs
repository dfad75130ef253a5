//! Fetching an archived recording's WAV back: the object named by its row
//! is downloaded, checked against the row's SHA-256, opened with the
//! keyring, and must be a WAV. Any failure is an error saying which and
//! why; no audio is returned that did not pass every check.

use crate::catalog::RecordingRow;
use crate::envelope::{EnvelopeError, Keyring};
use crate::store::{Store, StoreError};
use sha2::{Digest, Sha256};

#[derive(Debug, thiserror::Error)]
pub enum RetrieveError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{key}: its SHA-256 is {got}, the recordings row says {want}: the object was tampered with, cut short or replaced")]
    Digest {
        key: String,
        got: String,
        want: String,
    },
    #[error("{key}: {source}")]
    Envelope { key: String, source: EnvelopeError },
    #[error("{key}: opened, but what it holds is not a WAV")]
    NotWav { key: String },
}

/// The WAV of the recording `row` describes.
pub async fn fetch_audio(
    store: &Store,
    keyring: &Keyring,
    row: &RecordingRow,
) -> Result<Vec<u8>, RetrieveError> {
    let key = row.object_key.clone();
    let object = store.get(&key).await?;
    let got = hex::encode(Sha256::digest(&object));
    if !got.eq_ignore_ascii_case(&row.sha256) {
        return Err(RetrieveError::Digest {
            key,
            got,
            want: row.sha256.clone(),
        });
    }
    open_audio(keyring, &key, &object)
}

/// Opens a sealed WAV object (also without a row: `key` only names it).
pub fn open_audio(keyring: &Keyring, key: &str, object: &[u8]) -> Result<Vec<u8>, RetrieveError> {
    let wav = keyring
        .open(object)
        .map_err(|source| RetrieveError::Envelope {
            key: key.into(),
            source,
        })?;
    if wav.len() < 12 || &wav[..4] != b"RIFF" || &wav[8..12] != b"WAVE" {
        return Err(RetrieveError::NotWav { key: key.into() });
    }
    Ok(wav)
}
