//! `[http]`: where the HTTP server (metrics, JSON API, dashboard) listens
//! and the token it asks for. On by default on loopback; any other
//! address needs a `token`, sent as `Authorization: Bearer TOKEN`.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Serve at all (`tollgate run` does by default).
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Required on every request when set; required to be set when
    /// `listen` is not a loopback address.
    pub token: Option<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 8088)),
            token: None,
        }
    }
}

impl HttpConfig {
    /// Problems, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        let token = self.token.as_deref();
        let url_safe = |c: char| c.is_ascii_alphanumeric() || "-._~".contains(c);
        if token.is_some_and(|t| t.is_empty() || !t.chars().all(url_safe)) {
            problems.push(
                "http.token: must be non-empty, of letters, digits and - . _ ~ \
                 (it may travel in a URL as ?access_token=)"
                    .into(),
            );
        }
        if self.enabled && !self.listen.ip().is_loopback() && token.is_none() {
            problems.push(format!(
                "http.listen = \"{}\" is not a loopback address: set http.token \
                 (clients then send `Authorization: Bearer TOKEN`)",
                self.listen
            ));
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beyond_loopback_a_token_is_required() {
        let mut c = HttpConfig::default();
        assert!(c.validate().is_empty());
        c.listen = "0.0.0.0:8088".parse().unwrap();
        let p = c.validate();
        assert!(p.len() == 1 && p[0].contains("http.token"), "{p:?}");
        c.token = Some("s3cret".into());
        assert!(c.validate().is_empty());
        c.token = Some("a b".into());
        assert!(c.validate()[0].contains("non-empty"));
    }
}
