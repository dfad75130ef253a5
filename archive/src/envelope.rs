//! Encryption at rest: every archived object is an AES-256-GCM envelope.
//! A fresh random data key encrypts the object; the data key is wrapped
//! (AES-256-GCM too) by a key-encryption key (KEK) from the [`Keyring`],
//! whose id is written in the object's header, so KEKs rotate: one is
//! active for writing, all configured ones open what they wrapped.
//!
//! The body is authenticated in chunks with the STREAM construction
//! (RustCrypto `aead::stream`, big-endian 32-bit counter and a last-chunk
//! flag in the nonce; every chunk also authenticates the whole header), so a
//! flipped byte anywhere, reordered chunks, a swapped header or an object cut
//! short (even at a chunk boundary) fail to open with a clear error; nothing
//! is returned unless every chunk authenticated.
//!
//! Layout: `TGAE` · version 1 · key-id length (1) · key id · wrap nonce (12)
//! · wrapped data key (32 + 16 tag) · chunk size (u32 BE) · stream nonce
//! prefix (7) · chunks of `chunk size + 16` bytes, the last one shorter.

use aes_gcm::aead::stream::{NewStream, StreamBE32, StreamPrimitive};
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Key, Nonce};
use rand::RngCore;
use std::fmt;

const MAGIC: &[u8; 4] = b"TGAE";
const VERSION: u8 = 1;
const TAG: usize = 16;
const WRAPPED_KEY: usize = 32 + TAG;
/// Plaintext bytes per authenticated chunk.
pub const CHUNK: usize = 64 * 1024;

/// A 256-bit key-encryption key. Its `Debug` never shows the bytes.
#[derive(Clone)]
pub struct Kek([u8; 32]);

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Kek(..)")
    }
}

impl Kek {
    pub fn new(bytes: [u8; 32]) -> Kek {
        Kek(bytes)
    }

    /// A key from hex (64 digits) or base64 (of 32 bytes) text, surrounding
    /// whitespace ignored; the error never repeats the text.
    pub fn parse(text: &str) -> Result<Kek, String> {
        use base64::Engine;
        let t = text.trim();
        let bytes = if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(t).map_err(|e| e.to_string())?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(t)
                .map_err(|_| "neither 64 hex digits nor base64".to_string())?
        };
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| format!("{} bytes, a key is 32", b.len()))?;
        Ok(Kek(key))
    }

    /// A fresh random key, as hex (for a key file).
    pub fn generate_hex() -> String {
        let mut k = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut k);
        hex::encode(k)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(&self.0))
    }
}

/// The configured KEKs by id, and the one new objects are sealed with.
#[derive(Debug, Clone)]
pub struct Keyring {
    keys: Vec<(String, Kek)>,
    active: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvelopeError {
    #[error("not an encrypted archive object (no TGAE header)")]
    NotEnvelope,
    #[error("encrypted object version {0} is not supported (this node reads 1)")]
    Version(u8),
    #[error("encrypted object is truncated: its header is incomplete")]
    TruncatedHeader,
    #[error("encrypted object was sealed with key {id:?}, which is not configured (configured: {configured})")]
    UnknownKey { id: String, configured: String },
    #[error("key {id:?} does not open this object's data key: a wrong key under that id, or a tampered header")]
    WrongKey { id: String },
    #[error("encrypted object fails authentication at chunk {chunk}: tampered")]
    Tampered { chunk: usize },
    #[error("encrypted object is truncated: it ends after chunk {chunks} without its final chunk")]
    Truncated { chunks: usize },
}

impl Keyring {
    /// `keys` by id; `active` must be one of them.
    pub fn new(keys: Vec<(String, Kek)>, active: &str) -> Result<Keyring, String> {
        for (i, (id, _)) in keys.iter().enumerate() {
            if id.is_empty() || id.len() > 255 {
                return Err(format!("key id {id:?} must be 1-255 bytes"));
            }
            if keys[..i].iter().any(|(other, _)| other == id) {
                return Err(format!("key id {id:?} is configured twice"));
            }
        }
        if !keys.iter().any(|(id, _)| id == active) {
            return Err(format!(
                "the active key {active:?} is not among the configured keys"
            ));
        }
        Ok(Keyring {
            keys,
            active: active.to_string(),
        })
    }

    pub fn active(&self) -> &str {
        &self.active
    }

    fn key(&self, id: &str) -> Result<&Kek, EnvelopeError> {
        self.keys
            .iter()
            .find(|(k, _)| k == id)
            .map(|(_, kek)| kek)
            .ok_or_else(|| EnvelopeError::UnknownKey {
                id: id.into(),
                configured: self
                    .keys
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Encrypts `plain` under a fresh data key wrapped by the active KEK.
    pub fn seal(&self, plain: &[u8]) -> Vec<u8> {
        self.seal_chunked(plain, CHUNK)
    }

    fn seal_chunked(&self, plain: &[u8], chunk: usize) -> Vec<u8> {
        let mut data_key = [0u8; 32];
        let mut wrap_nonce = [0u8; 12];
        let mut prefix = [0u8; 7];
        rand::rngs::OsRng.fill_bytes(&mut data_key);
        rand::rngs::OsRng.fill_bytes(&mut wrap_nonce);
        rand::rngs::OsRng.fill_bytes(&mut prefix);
        let mut out = Vec::with_capacity(plain.len() + plain.len() / chunk * TAG + 256);
        out.extend_from_slice(MAGIC);
        out.push(VERSION);
        out.push(self.active.len() as u8);
        out.extend_from_slice(self.active.as_bytes());
        let wrapped = self
            .key(&self.active)
            .expect("the active key is configured")
            .cipher()
            .encrypt(
                Nonce::from_slice(&wrap_nonce),
                Payload {
                    msg: &data_key,
                    aad: &out,
                },
            )
            .expect("AES-GCM seals any 32 bytes");
        out.extend_from_slice(&wrap_nonce);
        out.extend_from_slice(&wrapped);
        out.extend_from_slice(&(chunk as u32).to_be_bytes());
        out.extend_from_slice(&prefix);
        let header = out.clone();
        let stream = stream(&data_key, &prefix);
        let chunks: Vec<&[u8]> = if plain.is_empty() {
            vec![&[]]
        } else {
            plain.chunks(chunk).collect()
        };
        for (i, c) in chunks.iter().enumerate() {
            let sealed = stream
                .encrypt(
                    i as u32,
                    i + 1 == chunks.len(),
                    Payload {
                        msg: c,
                        aad: &header,
                    },
                )
                .expect("AES-GCM seals a chunk");
            out.extend_from_slice(&sealed);
        }
        out
    }

    /// Decrypts an object sealed by [`Keyring::seal`] with any configured
    /// KEK; returns the plaintext only when every chunk authenticated.
    pub fn open(&self, object: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let header = Header::parse(object)?;
        let kek = self.key(&header.key_id)?;
        let data_key = kek
            .cipher()
            .decrypt(
                Nonce::from_slice(header.wrap_nonce),
                Payload {
                    msg: header.wrapped,
                    aad: &object[..header.wrap_at],
                },
            )
            .map_err(|_| EnvelopeError::WrongKey {
                id: header.key_id.clone(),
            })?;
        let stream = stream(&data_key, header.prefix);
        let aad = &object[..header.len];
        let body = &object[header.len..];
        if body.is_empty() {
            return Err(EnvelopeError::Truncated { chunks: 0 });
        }
        let chunks: Vec<&[u8]> = body.chunks(header.chunk + TAG).collect();
        let mut plain = Vec::with_capacity(body.len());
        for (i, c) in chunks.iter().enumerate() {
            let last = i + 1 == chunks.len();
            match stream.decrypt(i as u32, last, Payload { msg: c, aad }) {
                Ok(p) => plain.extend_from_slice(&p),
                // A whole chunk that opens as a middle one: the rest is gone.
                Err(_)
                    if last
                        && stream
                            .decrypt(i as u32, false, Payload { msg: c, aad })
                            .is_ok() =>
                {
                    return Err(EnvelopeError::Truncated { chunks: i + 1 })
                }
                Err(_) => return Err(EnvelopeError::Tampered { chunk: i }),
            }
        }
        Ok(plain)
    }
}

/// The id of the KEK an object was sealed with (without opening it).
pub fn key_id(object: &[u8]) -> Result<String, EnvelopeError> {
    Header::parse(object).map(|h| h.key_id)
}

fn stream(data_key: &[u8], prefix: &[u8]) -> StreamBE32<Aes256Gcm> {
    let cipher = Aes256Gcm::new(Key::<Aes256Gcm>::from_slice(data_key));
    StreamBE32::from_aead(cipher, prefix.into())
}

struct Header<'a> {
    key_id: String,
    /// Where the wrap nonce starts (what the wrapped key authenticates).
    wrap_at: usize,
    wrap_nonce: &'a [u8],
    wrapped: &'a [u8],
    chunk: usize,
    prefix: &'a [u8],
    len: usize,
}

impl<'a> Header<'a> {
    fn parse(b: &'a [u8]) -> Result<Header<'a>, EnvelopeError> {
        if b.len() < 6 || &b[..4] != MAGIC {
            return Err(if b.len() < 6 && MAGIC.starts_with(b) {
                EnvelopeError::TruncatedHeader
            } else {
                EnvelopeError::NotEnvelope
            });
        }
        if b[4] != VERSION {
            return Err(EnvelopeError::Version(b[4]));
        }
        let wrap_at = 6 + b[5] as usize;
        let len = wrap_at + 12 + WRAPPED_KEY + 4 + 7;
        if b.len() < len {
            return Err(EnvelopeError::TruncatedHeader);
        }
        let key_id = String::from_utf8_lossy(&b[6..wrap_at]).into_owned();
        let at = wrap_at + 12 + WRAPPED_KEY;
        let chunk = u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes")) as usize;
        if chunk == 0 {
            return Err(EnvelopeError::Tampered { chunk: 0 });
        }
        Ok(Header {
            key_id,
            wrap_at,
            wrap_nonce: &b[wrap_at..wrap_at + 12],
            wrapped: &b[wrap_at + 12..at],
            chunk,
            prefix: &b[at + 4..len],
            len,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(ids: &[(&str, u8)], active: &str) -> Keyring {
        let keys = ids
            .iter()
            .map(|(id, b)| (id.to_string(), Kek([*b; 32])))
            .collect();
        Keyring::new(keys, active).unwrap()
    }

    fn audio(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn round_trips_any_length() {
        let r = ring(&[("k1", 1)], "k1");
        for n in [0, 1, 100, 999, 1000, 1001, 5000] {
            let plain = audio(n);
            let sealed = r.seal_chunked(&plain, 1000);
            assert_eq!(r.open(&sealed).unwrap(), plain, "{n} bytes");
            assert_eq!(key_id(&sealed).unwrap(), "k1");
        }
        let big = audio(3 * CHUNK + 5);
        assert_eq!(r.open(&r.seal(&big)).unwrap(), big);
        assert_ne!(
            r.seal(&big),
            r.seal(&big),
            "a fresh data key and nonces per object"
        );
    }

    #[test]
    fn a_wrong_key_under_the_same_id_is_refused() {
        let sealed = ring(&[("k1", 1)], "k1").seal(&audio(100));
        let e = ring(&[("k1", 2)], "k1").open(&sealed).unwrap_err();
        assert_eq!(e, EnvelopeError::WrongKey { id: "k1".into() });
        let e = ring(&[("k9", 1)], "k9").open(&sealed).unwrap_err();
        assert!(
            e.to_string()
                .contains("\"k1\", which is not configured (configured: k9)"),
            "{e}"
        );
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let r = ring(&[("k1", 1)], "k1");
        let sealed = r.seal_chunked(&audio(2500), 1000);
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(r.open(&bad).is_err(), "byte {i} flipped and still opened");
        }
        let mut bad = sealed.clone();
        let at = sealed.len() - 10;
        bad[at] ^= 0x80;
        assert_eq!(
            r.open(&bad).unwrap_err(),
            EnvelopeError::Tampered { chunk: 2 }
        );
    }

    #[test]
    fn truncation_anywhere_is_detected_even_at_a_chunk_boundary() {
        let r = ring(&[("k1", 1)], "k1");
        let sealed = r.seal_chunked(&audio(2500), 1000);
        let header = sealed.len() - 2500 - 3 * TAG;
        for cut in 0..sealed.len() {
            assert!(r.open(&sealed[..cut]).is_err(), "cut at {cut} still opened");
        }
        let boundary = header + 2 * (1000 + TAG);
        assert_eq!(
            r.open(&sealed[..boundary]).unwrap_err(),
            EnvelopeError::Truncated { chunks: 2 }
        );
        assert_eq!(
            r.open(&sealed[..header]).unwrap_err(),
            EnvelopeError::Truncated { chunks: 0 }
        );
        assert_eq!(
            r.open(&sealed[..header - 1]).unwrap_err(),
            EnvelopeError::TruncatedHeader
        );
        assert_eq!(
            r.open(b"RIFF....WAVE").unwrap_err(),
            EnvelopeError::NotEnvelope
        );
    }

    #[test]
    fn rotation_writes_with_the_active_key_and_reads_with_all() {
        let old = ring(&[("2025", 1)], "2025");
        let before = old.seal(&audio(300));
        let rotated = ring(&[("2025", 1), ("2026", 2)], "2026");
        let after = rotated.seal(&audio(300));
        assert_eq!(key_id(&after).unwrap(), "2026");
        assert_eq!(rotated.open(&before).unwrap(), audio(300));
        assert_eq!(rotated.open(&after).unwrap(), audio(300));
        assert!(matches!(
            old.open(&after),
            Err(EnvelopeError::UnknownKey { .. })
        ));
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_never_show() {
        let hex = "00".repeat(31) + "ff";
        assert_eq!(Kek::parse(&format!(" {hex}\n")).unwrap().0[31], 0xff);
        let b64 = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAP8=";
        assert_eq!(Kek::parse(b64).unwrap().0[31], 0xff);
        let e = Kek::parse("c2VjcmV0").unwrap_err();
        assert!(e.contains("6 bytes") && !e.contains("c2VjcmV0"), "{e}");
        assert_eq!(
            format!("{:?}", ring(&[("k1", 7)], "k1"))
                .matches("Kek(..)")
                .count(),
            1
        );
        assert_eq!(Kek::parse(&Kek::generate_hex()).map(|_| ()), Ok(()));
        assert!(Keyring::new(vec![("a".into(), Kek([0; 32]))], "b").is_err());
    }
}
