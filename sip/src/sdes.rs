//! SDES (RFC 4568): the `a=crypto` attribute of an SRTP media section,
//! parsed and written. `a=crypto:<tag> <suite> inline:<key||salt,
//! base64>[|<lifetime>][|<MKI>:<length>][;inline:...] [<session params>]`;
//! several lines offer several suites (or keys), the answer keeps one tag.
//! The suite stays a name here (the media layer knows which it supports);
//! keys never print in `Debug`.

use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use base64::Engine;
use std::fmt;

/// One `inline:` key parameter.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyParam {
    /// The master key followed by the master salt.
    pub key_salt: Vec<u8>,
    /// Packets the key may protect, when given (`2^31` or `1048576`).
    pub lifetime: Option<u64>,
    /// `MKI:length`: the identifier and its length on the wire in bytes.
    pub mki: Option<(u32, u8)>,
}

impl fmt::Debug for KeyParam {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyParam")
            .field(
                "key_salt",
                &format_args!("<{} bytes redacted>", self.key_salt.len()),
            )
            .field("lifetime", &self.lifetime)
            .field("mki", &self.mki)
            .finish()
    }
}

/// One `a=crypto` line's value (after `crypto:`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Crypto {
    pub tag: u32,
    pub suite: String,
    pub keys: Vec<KeyParam>,
    /// Session parameters (`UNENCRYPTED_SRTCP`, `KDR=1`, ...), as given.
    pub params: Vec<String>,
    /// Keys are written with base64's `=` padding (read either way).
    pub padded: bool,
}

/// Why an `a=crypto` value could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a=crypto {line:?}: {what}")]
pub struct CryptoError {
    /// The line with its keys cut off.
    pub line: String,
    pub what: String,
}

fn lifetime(s: &str) -> Option<u64> {
    match s.strip_prefix("2^") {
        Some(exp) => exp
            .parse::<u32>()
            .ok()
            .filter(|&e| e < 64)
            .map(|e| 1u64 << e),
        None => s.parse().ok(),
    }
}

fn key_param(s: &str) -> Result<KeyParam, String> {
    let inline = s
        .strip_prefix("inline:")
        .ok_or_else(|| "only inline keys are supported".to_string())?;
    let mut parts = inline.split('|');
    let b64 = parts.next().unwrap_or("");
    let key_salt = STANDARD
        .decode(b64)
        .or_else(|_| STANDARD_NO_PAD.decode(b64))
        .map_err(|_| "the key is not base64".to_string())?;
    let mut k = KeyParam {
        key_salt,
        lifetime: None,
        mki: None,
    };
    for p in parts {
        if let Some((v, len)) = p.split_once(':') {
            let value = v
                .parse()
                .map_err(|_| format!("MKI value {v:?} is not a number"))?;
            let len = len
                .parse::<u8>()
                .ok()
                .filter(|l| (1..=128).contains(l))
                .ok_or_else(|| format!("MKI length {len:?} is not 1-128"))?;
            k.mki = Some((value, len));
        } else {
            k.lifetime =
                Some(lifetime(p).ok_or_else(|| format!("lifetime {p:?} is not a number"))?);
        }
    }
    Ok(k)
}

impl Crypto {
    /// Reads the value of an `a=crypto` attribute (after `crypto:`).
    pub fn parse(value: &str) -> Result<Crypto, CryptoError> {
        let mut f = value.split_ascii_whitespace();
        let (tag, suite, keys) = (f.next(), f.next(), f.next());
        let err = |what: String| CryptoError {
            line: format!("{} {}", tag.unwrap_or(""), suite.unwrap_or("")),
            what,
        };
        let (Some(tag), Some(suite), Some(keys)) = (tag, suite, keys) else {
            return Err(err("needs a tag, a suite and a key".into()));
        };
        let tag = tag
            .parse()
            .ok()
            .filter(|t| *t <= 999_999_999)
            .ok_or_else(|| err(format!("tag {tag:?} is not a 1-9 digit number")))?;
        let keys = keys
            .split(';')
            .map(key_param)
            .collect::<Result<Vec<_>, _>>()
            .map_err(err)?;
        Ok(Crypto {
            tag,
            suite: suite.to_string(),
            keys,
            params: f.map(str::to_string).collect(),
            padded: ["=|", "= ", "=;"].iter().any(|p| value.contains(p)) || value.ends_with('='),
        })
    }

    /// A line with one key and no session parameters, as a relay writes
    /// its own.
    pub fn new(tag: u32, suite: &str, key: KeyParam, padded: bool) -> Crypto {
        Crypto {
            tag,
            suite: suite.to_string(),
            keys: vec![key],
            params: Vec::new(),
            padded,
        }
    }
}

/// Writes the attribute value, keys in unpadded base64 as rtpengine does
/// unless `padded`.
impl fmt::Display for Crypto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} ", self.tag, self.suite)?;
        for (i, k) in self.keys.iter().enumerate() {
            if i > 0 {
                f.write_str(";")?;
            }
            let engine = if self.padded {
                &STANDARD
            } else {
                &STANDARD_NO_PAD
            };
            write!(f, "inline:{}", engine.encode(&k.key_salt))?;
            match k.lifetime {
                Some(l) if l.is_power_of_two() => write!(f, "|2^{}", l.trailing_zeros())?,
                Some(l) => write!(f, "|{l}")?,
                None => {}
            }
            if let Some((v, len)) = k.mki {
                write!(f, "|{v}:{len}")?;
            }
        }
        for p in &self.params {
            write!(f, " {p}")?;
        }
        Ok(())
    }
}

/// Whether an m= transport is SRTP (RTP/SAVP, RTP/SAVPF, and the DTLS forms).
pub fn is_srtp_proto(proto: &str) -> bool {
    proto.contains("SAVP")
}

/// The plain or secure twin of an RTP profile: RTP/AVP <-> RTP/SAVP,
/// RTP/AVPF <-> RTP/SAVPF.
pub fn with_srtp(proto: &str, secure: bool) -> String {
    let feedback = proto.ends_with('F');
    match (secure, feedback) {
        (true, false) => "RTP/SAVP",
        (true, true) => "RTP/SAVPF",
        (false, false) => "RTP/AVP",
        (false, true) => "RTP/AVPF",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_keys_lifetimes_mkis_and_params_and_writes_them_back() {
        let v = "1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj|2^20|1:4 UNENCRYPTED_SRTCP";
        let c = Crypto::parse(v).unwrap();
        assert_eq!((c.tag, c.suite.as_str()), (1, "AES_CM_128_HMAC_SHA1_80"));
        assert_eq!(c.keys[0].key_salt.len(), 30);
        assert_eq!(c.keys[0].lifetime, Some(1 << 20));
        assert_eq!(c.keys[0].mki, Some((1, 4)));
        assert_eq!(c.params, vec!["UNENCRYPTED_SRTCP"]);
        assert_eq!(c.to_string(), v);
        // Padded base64 reads too; two keys; a decimal lifetime.
        let two = "7 AEAD_AES_128_GCM inline:MYPI6KpLEfajWXQTsK2sEPay2cPjE06HjFIzdw==|1000;inline:54+EJuGIm11/acrn+MoczKi1skNBBvg3aXfUUg|2:1";
        let c = Crypto::parse(two).unwrap();
        assert_eq!(c.keys.len(), 2);
        assert_eq!(c.keys[0].lifetime, Some(1000));
        assert_eq!(c.keys[1].mki, Some((2, 1)));
        assert!(c.padded);
        assert_eq!(Crypto::parse(&c.to_string()).unwrap(), c);
        assert!(c.to_string().contains("zdw==|1000"), "{c}");
    }

    #[test]
    fn bad_lines_say_what_is_wrong_without_the_key() {
        let cases = [
            (
                "1 AES_CM_128_HMAC_SHA1_80",
                "needs a tag, a suite and a key",
            ),
            ("x AES_CM_128_HMAC_SHA1_80 inline:AAAA", "tag \"x\""),
            (
                "1 AES_CM_128_HMAC_SHA1_80 uri:https://k",
                "only inline keys",
            ),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:!!!!", "not base64"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|1:0", "MKI length"),
            ("1 AES_CM_128_HMAC_SHA1_80 inline:AAAA|2^x", "lifetime"),
        ];
        for (v, want) in cases {
            let e = Crypto::parse(v).unwrap_err().to_string();
            assert!(e.contains(want), "{v}: {e}");
            if let Some(key) = v.split("inline:").nth(1) {
                assert!(!e.contains(&key[..4]), "{v}: the key stays out: {e}");
            }
        }
        let c = Crypto::parse(
            "1 AES_CM_128_HMAC_SHA1_80 inline:d0RmdmcmVCspeEc3QGZiNWpVLFJhQX1cfHAwJSoj",
        )
        .unwrap();
        assert!(!format!("{c:?}").contains("d0Rm"));
    }

    #[test]
    fn profiles_pair_plain_and_secure() {
        assert_eq!(with_srtp("RTP/AVP", true), "RTP/SAVP");
        assert_eq!(with_srtp("RTP/SAVPF", false), "RTP/AVPF");
        assert!(is_srtp_proto("RTP/SAVPF") && !is_srtp_proto("RTP/AVPF"));
    }
}
