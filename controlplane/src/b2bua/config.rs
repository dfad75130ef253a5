//! The `[sip]` section: where the B2BUA listens, its timers and limits, and
//! the dialplan (`[[sip.routes]]`), validated with messages naming the key.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tollgate_sip::digest::Algorithm;
use tollgate_sip::message::Uri;
use tollgate_sip::transaction::TimerConfig;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SipConfig {
    /// UDP address of the B2BUA. Unset: no SIP, the node is driven over NG.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// SIP over TLS (RFC 3261 §26): where it listens, and the server
    /// certificate chain and private key (PEM files) it presents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_cert: Option<std::path::PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_key: Option<std::path::PathBuf>,
    /// CA certificates (PEM) that targets called over TLS are verified
    /// against; unset: the system's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tls_ca: Option<std::path::PathBuf>,
    /// SIP over WebSocket (RFC 7118) for browsers: plain WebSocket here,
    /// and over TLS (WSS, with `tls_cert`/`tls_key`) at `wss_listen`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ws_listen: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wss_listen: Option<SocketAddr>,
    /// Address written in our Via and Contact (default: the listen address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advertise: Option<IpAddr>,
    /// RFC 3261 timers, milliseconds.
    pub t1_ms: u64,
    pub t2_ms: u64,
    pub t4_ms: u64,
    /// An unanswered call is given up after this long: 480 to the caller,
    /// CANCEL to the callee.
    pub ring_timeout_secs: u64,
    /// Concurrent calls and new calls per second above which INVITEs get
    /// 503 with Retry-After.
    pub max_calls: usize,
    pub max_cps: u32,
    pub retry_after_secs: u32,
    /// The smallest session interval (RFC 4028) accepted; below it, 422.
    pub min_se_secs: u64,
    /// The dialplan, first match wins; no match is 404.
    pub routes: Vec<RouteConfig>,
    /// The organisations routes belong to, with their defaults.
    pub orgs: Vec<OrgConfig>,
    /// Users who may REGISTER and place calls, with their passwords. With
    /// none, REGISTER is refused and INVITEs need no credentials.
    pub users: Vec<UserConfig>,
    /// Redis shared by nodes that share registrations (`redis://…`);
    /// unset: registrations stay on this node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registrar_redis: Option<String>,
    /// Sources (CIDR) whose INVITEs need no credentials: trunks, proxies.
    pub trusted: Vec<ipnet::IpNet>,
    /// Digest realm and algorithms offered, preferred first (RFC 8760).
    pub realm: String,
    pub digest_algorithms: Vec<Algorithm>,
    /// Registration expiry: used when the REGISTER gives none, and the
    /// bounds a requested one must fall in (below: 423, above: capped).
    pub default_expires_secs: u32,
    pub min_expires_secs: u32,
    pub max_expires_secs: u32,
    pub lcr: LcrConfig,
    /// `[sip.flood]`: per-source bans and load shedding.
    pub flood: super::guard::FloodConfig,
}

/// `[sip.lcr]`: where the least-cost routing tables are, how often they
/// are read again, and how often gateways are pinged with OPTIONS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LcrConfig {
    /// `sqlite://…`, `postgres://…` or `mysql://…`; unset: no LCR routes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    pub reload_secs: u64,
    /// 0: no pings, every gateway counts as up.
    pub ping_secs: u64,
}

impl Default for LcrConfig {
    fn default() -> Self {
        LcrConfig {
            url: None,
            reload_secs: 30,
            ping_secs: 30,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub password: String,
}

/// One dialplan entry: a number pattern and what to do with it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Digits and other characters match themselves, `x` any digit, and a
    /// trailing `*` any rest: `6000`, `555xxxx`, `44*`.
    #[serde(rename = "match")]
    pub pattern: String,
    /// Where to send the call: a SIP URI with an IP host (`{user}` stands
    /// for the dialled number), `registered`: the dialled user's
    /// registered contact, `lcr`: the gateways least-cost routing picks, or
    /// `ivr:MENU_ID`: answered here by the IVR in that menu.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    /// Or reject with this final response code ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject: Option<u16>,
    /// ... and reason phrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// SRTP towards the target: `sdes` offers it SDES-SRTP (RTP/SAVP),
    /// `off` plain RTP, the relay transcrypting when the caller's side
    /// differs; unset: the caller's offer as it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srtp: Option<RouteSrtp>,
    /// Record the calls this route sends on (their media, both ways, from
    /// the first offer to the end), or not; unset: as its org's `record`
    /// says (not recorded without an org).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub record: Option<bool>,
    /// The organisation (`[[sip.orgs]]`) its calls belong to: in their
    /// CDRs and recordings (whose retention is then the org's policy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
}

/// One organisation (tenant) routes name, and what its calls get by default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgConfig {
    pub name: String,
    /// Record the calls of all its routes.
    #[serde(default)]
    pub record: bool,
}

/// A route's `srtp` setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RouteSrtp {
    Sdes,
    Off,
}

/// The route target meaning "where the dialled user registered".
pub const REGISTERED: &str = "registered";
/// The route target meaning "least-cost routing from the LCR tables".
pub const LCR: &str = "lcr";
/// The prefix of a route target answered here by the IVR: `ivr:MENU_ID`.
pub const IVR: &str = "ivr:";

impl Default for SipConfig {
    fn default() -> Self {
        SipConfig {
            listen: None,
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            tls_ca: None,
            ws_listen: None,
            wss_listen: None,
            advertise: None,
            t1_ms: 500,
            t2_ms: 4000,
            t4_ms: 5000,
            ring_timeout_secs: 60,
            max_calls: 10_000,
            max_cps: 500,
            retry_after_secs: 5,
            min_se_secs: 90,
            routes: Vec::new(),
            orgs: Vec::new(),
            users: Vec::new(),
            registrar_redis: None,
            trusted: Vec::new(),
            realm: "tollgate".into(),
            digest_algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            default_expires_secs: 3600,
            min_expires_secs: 60,
            max_expires_secs: 7200,
            lcr: LcrConfig::default(),
            flood: super::guard::FloodConfig::default(),
        }
    }
}

impl SipConfig {
    pub fn timers(&self) -> TimerConfig {
        TimerConfig {
            t1: Duration::from_millis(self.t1_ms),
            t2: Duration::from_millis(self.t2_ms),
            t4: Duration::from_millis(self.t4_ms),
        }
    }

    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.t1_ms == 0 || self.t2_ms < self.t1_ms || self.t4_ms == 0 {
            errs.push(format!(
                "sip.t1_ms/t2_ms/t4_ms: {}/{}/{} must be non-zero with T2 >= T1",
                self.t1_ms, self.t2_ms, self.t4_ms
            ));
        }
        errs.extend(self.flood.check());
        if self.ring_timeout_secs == 0 {
            errs.push("sip.ring_timeout_secs: must be at least 1".into());
        }
        if self.max_calls == 0 || self.max_cps == 0 {
            errs.push("sip.max_calls/max_cps: must be at least 1".into());
        }
        if let Some(a) = self.listen {
            if a.port() == 0 {
                errs.push(format!("sip.listen: {a} needs a port"));
            }
            if a.ip().is_unspecified() && self.advertise.is_none() {
                errs.push(format!(
                    "sip.advertise: needed with sip.listen = {a}, to write a reachable address in Via and Contact"
                ));
            }
        }
        for (name, at) in [
            ("tls_listen", self.tls_listen),
            ("ws_listen", self.ws_listen),
            ("wss_listen", self.wss_listen),
        ] {
            if at.is_some() && self.listen.is_none() {
                errs.push(format!(
                    "sip.{name}: needs sip.listen too (the B2BUA's UDP/TCP address)"
                ));
            }
        }
        let secure = [
            ("tls_listen", self.tls_listen),
            ("wss_listen", self.wss_listen),
        ];
        if let Some((listen, _)) = secure.into_iter().find(|(_, at)| at.is_some()) {
            for (key, path) in [("tls_cert", &self.tls_cert), ("tls_key", &self.tls_key)] {
                match path {
                    None => errs.push(format!("sip.{key}: needed with sip.{listen}")),
                    Some(p) if !p.is_file() => {
                        errs.push(format!("sip.{key}: {} is not a readable file", p.display()))
                    }
                    Some(_) => {}
                }
            }
        }
        if let Some(p) = self.tls_ca.as_ref().filter(|p| !p.is_file()) {
            errs.push(format!(
                "sip.tls_ca: {} is not a readable file",
                p.display()
            ));
        }
        if let Some(u) = &self.registrar_redis {
            if !u.starts_with("redis://") && !u.starts_with("rediss://") {
                errs.push(format!("sip.registrar_redis: {u:?} is not a redis:// URL"));
            }
        }
        if let Some(u) = &self.lcr.url {
            if !["sqlite:", "postgres:", "postgresql:", "mysql:", "mariadb:"]
                .iter()
                .any(|p| u.starts_with(p))
            {
                errs.push(format!(
                    "sip.lcr.url: {u:?} is not a sqlite:, postgres: or mysql: URL"
                ));
            }
            if self.lcr.reload_secs == 0 {
                errs.push("sip.lcr.reload_secs: must be at least 1".into());
            }
        }
        if self.digest_algorithms.is_empty() {
            errs.push("sip.digest_algorithms: name at least one of \"SHA-256\", \"MD5\"".into());
        }
        if self.min_expires_secs > self.max_expires_secs
            || !(self.min_expires_secs..=self.max_expires_secs).contains(&self.default_expires_secs)
        {
            errs.push(format!(
                "sip.min/default/max_expires_secs: {}/{}/{} must be in order",
                self.min_expires_secs, self.default_expires_secs, self.max_expires_secs
            ));
        }
        for (i, u) in self.users.iter().enumerate() {
            if u.name.is_empty() || u.password.is_empty() {
                errs.push(format!(
                    "sip.users[{i}]: name and password must not be empty"
                ));
            }
            if self.users[..i].iter().any(|o| o.name == u.name) {
                errs.push(format!("sip.users[{i}]: {:?} is listed twice", u.name));
            }
        }
        for (i, o) in self.orgs.iter().enumerate() {
            if o.name.is_empty() || o.name.contains('/') {
                errs.push(format!("sip.orgs[{i}]: name {:?} must be non-empty, without `/` (it starts the archive's object keys)", o.name));
            }
            if self.orgs[..i].iter().any(|p| p.name == o.name) {
                errs.push(format!("sip.orgs[{i}]: {:?} is listed twice", o.name));
            }
        }
        for (i, r) in self.routes.iter().enumerate() {
            let at = format!("sip.routes[{i}] (match {:?})", r.pattern);
            if let Some(org) = r
                .org
                .as_ref()
                .filter(|o| !self.orgs.iter().any(|p| &&p.name == o))
            {
                errs.push(format!("{at}.org: {org:?} is not one of sip.orgs"));
            }
            let p = r.pattern.strip_suffix('*').unwrap_or(&r.pattern);
            if p.contains('*') || (p.is_empty() && !r.pattern.ends_with('*')) {
                errs.push(format!("{at}: `*` may only end a non-empty pattern"));
            }
            match (&r.target, r.reject) {
                (Some(t), None) if t == REGISTERED => {}
                (Some(t), None) if t == LCR => {
                    if self.lcr.url.is_none() {
                        errs.push(format!("{at}.target: `lcr` needs sip.lcr.url"));
                    }
                }
                (Some(t), None) if t.starts_with(IVR) => {
                    if t.len() == IVR.len() {
                        errs.push(format!("{at}.target: {t:?} names no IVR menu after `ivr:`"));
                    }
                }
                (Some(t), None) => {
                    let sample = t.replace("{user}", "0");
                    match Uri::parse(&sample) {
                        Err(e) => errs.push(format!("{at}.target: {e}")),
                        Ok(u) if u.ip().is_none() => errs.push(format!(
                            "{at}.target: {t:?} needs an IP address host (no DNS lookups yet)"
                        )),
                        Ok(_) => {}
                    }
                }
                (None, Some(code)) if (300..700).contains(&code) => {}
                (None, Some(code)) => errs.push(format!(
                    "{at}.reject: {code} is not a final failure code (300-699)"
                )),
                _ => errs.push(format!("{at}: give exactly one of `target` or `reject`")),
            }
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_checked_with_their_index() {
        let c = SipConfig {
            routes: vec![
                RouteConfig {
                    pattern: "6000".into(),
                    target: Some("sip:6000@example.com".into()),
                    reject: None,
                    reason: None,
                    srtp: None,
                    record: None,
                    org: None,
                },
                RouteConfig {
                    pattern: "9*9".into(),
                    target: None,
                    reject: Some(200),
                    reason: None,
                    srtp: None,
                    record: None,
                    org: None,
                },
            ],
            ..SipConfig::default()
        };
        let errs = c.validate();
        assert!(
            errs[0].contains("sip.routes[0] (match \"6000\").target")
                && errs[0].contains("IP address"),
            "{errs:?}"
        );
        assert!(errs[1].contains("`*` may only end"), "{errs:?}");
        assert!(
            errs[2].contains("200 is not a final failure code"),
            "{errs:?}"
        );
    }
}
