//! HTTP digest authentication for SIP (RFC 3261 §22, RFC 8760): the
//! challenge a registrar or B2BUA sends, parsing the credentials that come
//! back, and checking them against a password, with MD5 or SHA-256 and
//! `qop=auth`. Nonces are stateless: a timestamp and a keyed hash of it,
//! so any request within the nonce's lifetime can be checked without a
//! table of issued nonces.

use md5::Md5;
use sha2::{Digest, Sha256};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Algorithm {
    #[serde(rename = "MD5")]
    Md5,
    #[serde(rename = "SHA-256")]
    Sha256,
}

impl Algorithm {
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::Md5 => "MD5",
            Algorithm::Sha256 => "SHA-256",
        }
    }

    fn parse(s: &str) -> Option<Algorithm> {
        match s.to_ascii_uppercase().as_str() {
            "MD5" => Some(Algorithm::Md5),
            "SHA-256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    fn hash(self, s: &str) -> String {
        match self {
            Algorithm::Md5 => hex::encode(Md5::digest(s.as_bytes())),
            Algorithm::Sha256 => hex::encode(Sha256::digest(s.as_bytes())),
        }
    }
}

/// Credentials from an Authorization or Proxy-Authorization header.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Credentials {
    pub username: String,
    pub realm: String,
    pub nonce: String,
    pub uri: String,
    pub response: String,
    pub algorithm: Option<String>,
    pub qop: Option<String>,
    pub nc: Option<String>,
    pub cnonce: Option<String>,
}

impl Credentials {
    /// Parses `Digest name="value", ...`.
    pub fn parse(header: &str) -> Result<Credentials, String> {
        let rest = header
            .trim()
            .strip_prefix("Digest")
            .or_else(|| header.trim().strip_prefix("digest"))
            .ok_or("not Digest credentials")?;
        let mut c = Credentials::default();
        for part in crate::message::split_list(rest) {
            let (k, v) = part
                .split_once('=')
                .ok_or_else(|| format!("parameter without '=': {part:?}"))?;
            let v = v.trim().trim_matches('"').to_string();
            match k.trim().to_ascii_lowercase().as_str() {
                "username" => c.username = v,
                "realm" => c.realm = v,
                "nonce" => c.nonce = v,
                "uri" => c.uri = v,
                "response" => c.response = v.to_ascii_lowercase(),
                "algorithm" => c.algorithm = Some(v),
                "qop" => c.qop = Some(v),
                "nc" => c.nc = Some(v),
                "cnonce" => c.cnonce = Some(v),
                _ => {}
            }
        }
        for (name, v) in [
            ("username", &c.username),
            ("nonce", &c.nonce),
            ("uri", &c.uri),
            ("response", &c.response),
        ] {
            if v.is_empty() {
                return Err(format!("credentials without {name}"));
            }
        }
        Ok(c)
    }
}

/// Why credentials were not accepted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejection {
    /// Our nonce, but too old: challenge again with `stale=true`.
    Stale,
    /// Anything else: wrong password, foreign nonce, other realm.
    Invalid(String),
}

/// Issues and checks nonces for one realm.
#[derive(Debug, Clone)]
pub struct Authenticator {
    pub realm: String,
    key: [u8; 32],
    pub lifetime: Duration,
    pub algorithms: Vec<Algorithm>,
}

fn now_secs(now: SystemTime) -> u64 {
    now.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl Authenticator {
    pub fn new(realm: &str, key: [u8; 32], lifetime: Duration, algorithms: Vec<Algorithm>) -> Self {
        Authenticator {
            realm: realm.to_string(),
            key,
            lifetime,
            algorithms,
        }
    }

    fn nonce_at(&self, secs: u64) -> String {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update(secs.to_be_bytes());
        format!("{secs:x}.{}", hex::encode(&h.finalize()[..12]))
    }

    /// The WWW-Authenticate / Proxy-Authenticate values, one per algorithm
    /// in preference order (RFC 8760 §2.4).
    pub fn challenges(&self, now: SystemTime, stale: bool) -> Vec<String> {
        let nonce = self.nonce_at(now_secs(now));
        self.algorithms
            .iter()
            .map(|a| {
                let mut v = format!(
                    "Digest realm=\"{}\", nonce=\"{nonce}\", algorithm={}, qop=\"auth\"",
                    self.realm,
                    a.name()
                );
                if stale {
                    v.push_str(", stale=true");
                }
                v
            })
            .collect()
    }

    /// Checks `c` for a request with `method` against `password`.
    pub fn verify(
        &self,
        now: SystemTime,
        method: &str,
        c: &Credentials,
        password: &str,
    ) -> Result<(), Rejection> {
        if c.realm != self.realm {
            return Err(Rejection::Invalid(format!(
                "realm {:?} is not ours",
                c.realm
            )));
        }
        let alg = match c.algorithm.as_deref() {
            None => Algorithm::Md5,
            Some(a) => {
                Algorithm::parse(a).ok_or_else(|| Rejection::Invalid(format!("algorithm {a:?}")))?
            }
        };
        if !self.algorithms.contains(&alg) {
            return Err(Rejection::Invalid(format!(
                "algorithm {} not offered",
                alg.name()
            )));
        }
        let issued = c
            .nonce
            .split_once('.')
            .and_then(|(t, _)| u64::from_str_radix(t, 16).ok())
            .ok_or_else(|| Rejection::Invalid("not our nonce".into()))?;
        if self.nonce_at(issued) != c.nonce {
            return Err(Rejection::Invalid("not our nonce".into()));
        }
        let ha1 = alg.hash(&format!("{}:{}:{password}", c.username, self.realm));
        let ha2 = alg.hash(&format!("{method}:{}", c.uri));
        let expected = match (&c.qop, &c.nc, &c.cnonce) {
            (Some(q), Some(nc), Some(cn)) if q == "auth" => {
                alg.hash(&format!("{ha1}:{}:{nc}:{cn}:auth:{ha2}", c.nonce))
            }
            (None, _, _) => alg.hash(&format!("{ha1}:{}:{ha2}", c.nonce)),
            _ => return Err(Rejection::Invalid("unsupported qop".into())),
        };
        if expected != c.response {
            return Err(Rejection::Invalid("wrong response (password)".into()));
        }
        if now_secs(now).saturating_sub(issued) > self.lifetime.as_secs() {
            return Err(Rejection::Stale);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Authenticator {
        Authenticator::new(
            "tollgate",
            [7; 32],
            Duration::from_secs(300),
            vec![Algorithm::Sha256, Algorithm::Md5],
        )
    }

    /// A client's answer, computed the way RFC 2617/8760 describe.
    fn answer(a: &Authenticator, alg: Algorithm, nonce: &str, password: &str) -> Credentials {
        let ha1 = alg.hash(&format!("6000:{}:{password}", a.realm));
        let ha2 = alg.hash("REGISTER:sip:tollgate");
        Credentials {
            username: "6000".into(),
            realm: a.realm.clone(),
            nonce: nonce.into(),
            uri: "sip:tollgate".into(),
            response: alg.hash(&format!("{ha1}:{nonce}:00000001:abc:auth:{ha2}")),
            algorithm: Some(alg.name().into()),
            qop: Some("auth".into()),
            nc: Some("00000001".into()),
            cnonce: Some("abc".into()),
        }
    }

    #[test]
    fn hashes_match_known_values() {
        // From Python's hashlib, an independent implementation.
        assert_eq!(
            Algorithm::Md5.hash("abc"),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            Algorithm::Sha256.hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn sha256_first_then_md5_and_both_verify() {
        let a = auth();
        let now = SystemTime::now();
        let ch = a.challenges(now, false);
        assert_eq!(ch.len(), 2);
        assert!(ch[0].contains("algorithm=SHA-256") && ch[1].contains("algorithm=MD5"));
        let nonce = ch[0]
            .split("nonce=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        for alg in [Algorithm::Sha256, Algorithm::Md5] {
            assert_eq!(
                a.verify(now, "REGISTER", &answer(&a, alg, nonce, "secret"), "secret"),
                Ok(())
            );
            assert!(matches!(
                a.verify(now, "REGISTER", &answer(&a, alg, nonce, "wrong"), "secret"),
                Err(Rejection::Invalid(_))
            ));
        }
        let later = now + Duration::from_secs(301);
        assert_eq!(
            a.verify(
                later,
                "REGISTER",
                &answer(&a, Algorithm::Md5, nonce, "secret"),
                "secret"
            ),
            Err(Rejection::Stale)
        );
        let forged = format!(
            "{}.000000000000000000000000",
            nonce.split('.').next().unwrap()
        );
        assert!(matches!(
            a.verify(
                now,
                "REGISTER",
                &answer(&a, Algorithm::Md5, &forged, "secret"),
                "secret"
            ),
            Err(Rejection::Invalid(_))
        ));
    }

    #[test]
    fn parses_a_sipp_authorization_header() {
        let c = Credentials::parse(
            "Digest username=\"6000\",realm=\"tollgate\",cnonce=\"6b8b4567\",nc=00000001,qop=auth,uri=\"sip:127.0.0.1:5060\",nonce=\"1a.b\",response=\"ABCDEF\",algorithm=MD5",
        )
        .unwrap();
        assert_eq!(c.username, "6000");
        assert_eq!(c.response, "abcdef");
        assert_eq!(c.qop.as_deref(), Some("auth"));
        assert!(Credentials::parse("Basic abc").is_err());
        assert!(Credentials::parse("Digest username=\"x\"").is_err());
    }
}
