//! SRTP and SRTCP (RFC 3711; AEAD AES-GCM, RFC 7714) for the media
//! pipeline's transcrypt stages: the suites SDES (RFC 4568) negotiates, keys
//! and their parameters as a flow names them, and [`Context`], one
//! direction's crypto state (session keys, per-SSRC rollover counters and
//! replay windows, the key's remaining lifetime).
//!
//! The crypto is our own thin layer over RustCrypto's `aes` (AES-NI when the
//! CPU has it), `ctr`, `hmac` + `sha1` and `aes-gcm`, picked by
//! `benches/srtp.rs` against libsrtp 2.5 as Debian ships it (built on NSS),
//! at G.711's 160-byte payloads (figures in docs/benchmarks.md): ours
//! protects and unprotects several times as many packets per second in
//! every suite, needs no C library on the node, and works in place in the
//! backend's frame without allocating. webrtc-rs's `webrtc-srtp`/`rtc-srtp`
//! were not taken: their encrypt and decrypt return a freshly allocated
//! buffer per packet, which the packet path may not do. RustCrypto has no
//! SRTP layer (key derivation, the packet index, replay), which is why that
//! part is here; it is checked against libsrtp packet for packet in
//! tests/tests/srtp.rs and against RFC 3711's vectors below.
//!
//! Key material never prints: [`MasterKey`]'s `Debug` is redacted, so flows,
//! stage specs and control requests can be logged as they are.

mod cipher;
mod context;
mod replay;

pub use context::Context;

use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An SDES crypto suite (RFC 4568 names, RFC 7714 for AEAD).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Suite {
    #[serde(rename = "AES_CM_128_HMAC_SHA1_80")]
    AesCm128HmacSha1_80,
    #[serde(rename = "AES_CM_128_HMAC_SHA1_32")]
    AesCm128HmacSha1_32,
    #[serde(rename = "AES_256_CM_HMAC_SHA1_80")]
    Aes256CmHmacSha1_80,
    #[serde(rename = "AES_256_CM_HMAC_SHA1_32")]
    Aes256CmHmacSha1_32,
    #[serde(rename = "AEAD_AES_128_GCM")]
    AeadAes128Gcm,
    #[serde(rename = "AEAD_AES_256_GCM")]
    AeadAes256Gcm,
}

impl Suite {
    pub const ALL: [Suite; 6] = [
        Suite::AesCm128HmacSha1_80,
        Suite::AesCm128HmacSha1_32,
        Suite::Aes256CmHmacSha1_80,
        Suite::Aes256CmHmacSha1_32,
        Suite::AeadAes128Gcm,
        Suite::AeadAes256Gcm,
    ];

    /// The name SDP's `a=crypto` uses.
    pub fn name(self) -> &'static str {
        match self {
            Suite::AesCm128HmacSha1_80 => "AES_CM_128_HMAC_SHA1_80",
            Suite::AesCm128HmacSha1_32 => "AES_CM_128_HMAC_SHA1_32",
            Suite::Aes256CmHmacSha1_80 => "AES_256_CM_HMAC_SHA1_80",
            Suite::Aes256CmHmacSha1_32 => "AES_256_CM_HMAC_SHA1_32",
            Suite::AeadAes128Gcm => "AEAD_AES_128_GCM",
            Suite::AeadAes256Gcm => "AEAD_AES_256_GCM",
        }
    }

    pub fn from_name(name: &str) -> Option<Suite> {
        Suite::ALL
            .into_iter()
            .find(|s| s.name().eq_ignore_ascii_case(name))
    }

    /// Master key length in bytes.
    pub fn key_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_80 | Suite::AesCm128HmacSha1_32 | Suite::AeadAes128Gcm => 16,
            _ => 32,
        }
    }

    /// Master salt length in bytes (RFC 7714: 96 bits for AEAD).
    pub fn salt_len(self) -> usize {
        if self.is_aead() {
            12
        } else {
            14
        }
    }

    pub fn is_aead(self) -> bool {
        matches!(self, Suite::AeadAes128Gcm | Suite::AeadAes256Gcm)
    }

    /// Authentication tag bytes on SRTP packets.
    pub fn rtp_tag_len(self) -> usize {
        match self {
            Suite::AesCm128HmacSha1_32 | Suite::Aes256CmHmacSha1_32 => 4,
            Suite::AeadAes128Gcm | Suite::AeadAes256Gcm => 16,
            _ => 10,
        }
    }

    /// Authentication tag bytes on SRTCP packets (80 bits for the _32
    /// suites too: RFC 4568 section 6.2).
    pub fn rtcp_tag_len(self) -> usize {
        if self.is_aead() {
            16
        } else {
            10
        }
    }
}

/// Longest master key plus salt (AES-256 with a 112-bit salt).
const KEY_SALT_MAX: usize = 46;

/// A master key and salt, concatenated as SDES's inline key carries them.
/// Fixed-size so a stage spec holding it stays `Copy`; reads and writes as
/// the base64 of key || salt; `Debug` never shows it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MasterKey {
    bytes: [u8; KEY_SALT_MAX],
    len: u8,
}

impl MasterKey {
    /// `key_salt` is key || salt, at most 46 bytes.
    pub fn new(key_salt: &[u8]) -> Option<MasterKey> {
        let mut bytes = [0u8; KEY_SALT_MAX];
        bytes.get_mut(..key_salt.len())?.copy_from_slice(key_salt);
        Some(MasterKey {
            bytes,
            len: key_salt.len() as u8,
        })
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes[..self.len as usize]
    }

    /// The key and salt, split for `suite` (whose lengths were checked).
    fn split(&self, suite: Suite) -> (&[u8], &[u8]) {
        self.bytes().split_at(suite.key_len())
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MasterKey(<{} bytes redacted>)", self.len)
    }
}

impl Serialize for MasterKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(self.bytes()))
    }
}

impl<'de> Deserialize<'de> for MasterKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<MasterKey, D::Error> {
        use serde::de::Error;
        let text = String::deserialize(d)?;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(text.as_bytes())
            .map_err(|_| D::Error::custom("master key: not base64"))?;
        MasterKey::new(&raw)
            .ok_or_else(|| D::Error::custom("master key: longer than 46 bytes of key and salt"))
    }
}

/// A master key identifier as SDES gives it (`|1:4`): the value and how
/// many bytes it takes on each packet (1 to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mki {
    pub value: u32,
    pub len: u8,
}

/// One direction's keying: what a transcrypt stage is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keying {
    pub suite: Suite,
    pub key: MasterKey,
    /// Present when the packets carry an MKI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mki: Option<Mki>,
    /// Packets the key may protect (SDES lifetime); None: the RFC 3711
    /// maximum (2^48 SRTP, 2^31 SRTCP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lifetime: Option<u64>,
}

impl Keying {
    /// What is wrong with this keying, if anything.
    pub fn check(&self) -> Result<(), String> {
        let want = self.suite.key_len() + self.suite.salt_len();
        if self.key.bytes().len() != want {
            return Err(format!(
                "{}: the key and salt take {want} bytes, not {}",
                self.suite.name(),
                self.key.bytes().len()
            ));
        }
        if let Some(m) = self.mki {
            if !(1..=4).contains(&m.len) || (m.len < 4 && m.value >> (8 * m.len) != 0) {
                return Err(format!("MKI {} does not fit {} byte(s)", m.value, m.len));
            }
        }
        if self.lifetime == Some(0) {
            return Err("key lifetime 0".into());
        }
        Ok(())
    }
}

/// Why a packet could not be protected or unprotected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("shorter than its header and trailer")]
    TooShort,
    #[error("not RTP/RTCP version 2")]
    NotVersion2,
    #[error("authentication failed")]
    Auth,
    #[error("replayed")]
    Replayed,
    #[error("older than the replay window")]
    TooOld,
    #[error("unknown MKI")]
    Mki,
    #[error("the key's lifetime is used up")]
    KeyExpired,
    #[error("no room for the trailer")]
    NoRoom,
}

#[cfg(test)]
mod tests;
