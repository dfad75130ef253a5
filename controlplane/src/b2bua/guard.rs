//! Who may start something on the B2BUA, and when: per-source flood bans
//! (Kamailio's pike), bans after repeated digest failures, the drain mode
//! for maintenance and shedding when the SIP thread runs out of CPU.
//!
//! A source is counted on what costs us: new out-of-dialog requests (an
//! INVITE, REGISTER or OPTIONS that opens a transaction). In-dialog requests
//! and responses belong to calls already admitted, and retransmissions are
//! absorbed by their transactions, so a busy but honest peer is not punished
//! for its calls' BYEs. A banned source's messages are dropped by the SIP
//! adapter, a burst at a time, before they are parsed or counted
//! ([`Guard::banned`]), without an answer (answering a flood feeds it), and
//! they keep the ban alive while they exceed the limit. Trusted sources (`sip.trusted`:
//! trunks and proxies that carry many users) are never banned.
//!
//! Plain state, `now` passed in: the adapter feeds the thread's load and the
//! drain switch as inputs.

use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// `[sip.flood]`: the per-source limits and the CPU shedding threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FloodConfig {
    /// New out-of-dialog requests per second one source may send, averaged
    /// over `window_secs`; above it the source is banned. 0: no limit.
    /// Keep `max_requests_per_sec × window_secs` well below `sip.max_cps`:
    /// what a flood sends before its ban counts against the node's budget.
    /// A peer that carries more (a trunk, a proxy) belongs in `sip.trusted`.
    pub max_requests_per_sec: u32,
    pub window_secs: u64,
    /// How long a ban lasts once the source has calmed down.
    pub ban_secs: u64,
    /// Refused digest credentials (403) from one source within
    /// `auth_window_secs` after which it is banned. 0: no limit.
    pub max_auth_failures: u32,
    pub auth_window_secs: u64,
    /// The SIP thread's busy share (percent) from which new INVITEs get 503
    /// until it falls 10 points below. 0: never shed.
    pub shed_cpu_percent: u8,
    /// Sources tracked at once; beyond, new ones are admitted untracked.
    pub max_sources: usize,
}

impl Default for FloodConfig {
    fn default() -> Self {
        FloodConfig {
            max_requests_per_sec: 200,
            window_secs: 2,
            ban_secs: 30,
            max_auth_failures: 10,
            auth_window_secs: 60,
            shed_cpu_percent: 95,
            max_sources: 65536,
        }
    }
}

impl FloodConfig {
    pub fn check(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.window_secs == 0 || self.ban_secs == 0 || self.auth_window_secs == 0 {
            errs.push(
                "sip.flood: `window_secs`, `ban_secs` and `auth_window_secs` must be at least 1"
                    .into(),
            );
        }
        if self.shed_cpu_percent > 100 {
            errs.push(format!(
                "sip.flood.shed_cpu_percent: {} is above 100",
                self.shed_cpu_percent
            ));
        }
        errs
    }
}

/// What the guard has refused, for the counters and metrics.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GuardCounters {
    /// Datagrams dropped unparsed because their source is banned.
    pub banned_dropped: u64,
    /// Bans imposed for request floods and for digest failures.
    pub flood_bans: u64,
    pub auth_bans: u64,
    /// New INVITEs refused 503 while draining, shedding or while the CDR
    /// spool holds records it cannot write.
    pub drain_refused: u64,
    pub shed_refused: u64,
    pub spool_refused: u64,
}

/// Why a new call is refused before anything else is looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closed {
    Draining,
    Shedding,
    /// The CDR spool's disk refuses writes and its memory hold is half full.
    SpoolHolding,
}

#[derive(Debug)]
struct Source {
    window_start: Instant,
    /// Requests in the current window (datagrams, while banned).
    requests: u32,
    auth_start: Instant,
    auth_failures: u32,
    banned_until: Option<Instant>,
}

pub struct Guard {
    cfg: FloodConfig,
    trusted: Vec<ipnet::IpNet>,
    sources: HashMap<IpAddr, Source>,
    last_purge: Option<Instant>,
    draining: bool,
    shedding: bool,
    spool_holding: bool,
    pub counters: GuardCounters,
}

impl Guard {
    pub fn new(cfg: FloodConfig, trusted: Vec<ipnet::IpNet>) -> Guard {
        Guard {
            cfg,
            trusted,
            sources: HashMap::new(),
            last_purge: None,
            draining: false,
            shedding: false,
            spool_holding: false,
            counters: GuardCounters::default(),
        }
    }

    fn window(&self) -> Duration {
        Duration::from_secs(self.cfg.window_secs)
    }

    /// The most requests one window may hold.
    fn limit(&self) -> u64 {
        u64::from(self.cfg.max_requests_per_sec) * self.cfg.window_secs
    }

    /// True when a datagram from `ip` is to be dropped unparsed. Its
    /// arrivals keep counting, so a source flooding on keeps its ban.
    pub fn banned(&mut self, now: Instant, ip: IpAddr) -> bool {
        let (window, limit, ban) = (self.window(), self.limit(), self.cfg.ban_secs);
        let Some(s) = self.sources.get_mut(&ip) else {
            return false;
        };
        let Some(until) = s.banned_until else {
            return false;
        };
        let elapsed = now.duration_since(s.window_start);
        if elapsed >= window {
            // Only the window just ended speaks for the source, not one
            // before a quiet spell.
            if elapsed < 2 * window && limit > 0 && u64::from(s.requests) > limit {
                s.banned_until = Some(until.max(now + Duration::from_secs(ban)));
            }
            s.window_start = now;
            s.requests = 0;
        }
        s.requests = s.requests.saturating_add(1);
        if s.banned_until.is_some_and(|u| now < u) {
            self.counters.banned_dropped += 1;
            return true;
        }
        s.banned_until = None;
        tracing::info!(source = %ip, "SIP source ban lifted");
        false
    }

    /// A new out-of-dialog request from `ip`; false when it tips the
    /// source over the limit (it is banned from now on, the request dropped).
    pub fn on_new_request(&mut self, now: Instant, ip: IpAddr) -> bool {
        if self.cfg.max_requests_per_sec == 0 || self.is_trusted(ip) {
            return true;
        }
        let (window, limit) = (self.window(), self.limit());
        let ban = Duration::from_secs(self.cfg.ban_secs);
        let Some(s) = self.source(now, ip) else {
            return true;
        };
        if s.banned_until.is_some_and(|u| now < u) {
            // Banned within this burst: the rest of it goes the same way.
            self.counters.banned_dropped += 1;
            return false;
        }
        if now.duration_since(s.window_start) >= window {
            s.window_start = now;
            s.requests = 0;
        }
        s.requests = s.requests.saturating_add(1);
        if u64::from(s.requests) <= limit {
            return true;
        }
        s.banned_until = Some(now + ban);
        self.counters.flood_bans += 1;
        tracing::warn!(source = %ip, limit_per_sec = self.cfg.max_requests_per_sec,
            ban_secs = self.cfg.ban_secs, "SIP flood: source banned");
        false
    }

    /// Digest credentials from `ip` were refused (403).
    pub fn on_auth_failure(&mut self, now: Instant, ip: IpAddr) {
        if self.cfg.max_auth_failures == 0 || self.is_trusted(ip) {
            return;
        }
        let (window, ban) = (
            Duration::from_secs(self.cfg.auth_window_secs),
            Duration::from_secs(self.cfg.ban_secs),
        );
        let max = self.cfg.max_auth_failures;
        let Some(s) = self.source(now, ip) else {
            return;
        };
        if now.duration_since(s.auth_start) >= window {
            s.auth_start = now;
            s.auth_failures = 0;
        }
        s.auth_failures += 1;
        if s.auth_failures < max || s.banned_until.is_some() {
            return;
        }
        s.banned_until = Some(now + ban);
        tracing::warn!(source = %ip, failures = s.auth_failures,
            ban_secs = ban.as_secs(), "repeated digest failures: source banned");
        self.counters.auth_bans += 1;
    }

    /// Drain mode: new calls are refused, calls in progress go on.
    pub fn set_draining(&mut self, on: bool) {
        if on != self.draining {
            tracing::warn!(draining = on, "SIP drain mode changed");
        }
        self.draining = on;
    }

    /// The CDR spool holds records it cannot write: new calls are refused
    /// until it writes again (their CDRs would have nowhere to go).
    pub fn set_spool_holding(&mut self, on: bool) {
        if on != self.spool_holding {
            tracing::warn!(
                refusing = on,
                "new calls refused while the CDR spool cannot write"
            );
        }
        self.spool_holding = on;
    }

    /// The SIP thread's busy share over the last sample, 0.0 to 1.0.
    pub fn set_load(&mut self, busy: f64) {
        let threshold = f64::from(self.cfg.shed_cpu_percent) / 100.0;
        let was = self.shedding;
        self.shedding = if self.cfg.shed_cpu_percent == 0 {
            false
        } else if self.shedding {
            busy >= threshold - 0.10
        } else {
            busy >= threshold
        };
        if was != self.shedding {
            tracing::warn!(
                shedding = self.shedding,
                busy_percent = (busy * 100.0).round(),
                "SIP load shedding changed"
            );
        }
    }

    /// Why a new call is refused now, if it is (counted).
    pub fn closed(&mut self) -> Option<Closed> {
        if self.draining {
            self.counters.drain_refused += 1;
            Some(Closed::Draining)
        } else if self.shedding {
            self.counters.shed_refused += 1;
            Some(Closed::Shedding)
        } else if self.spool_holding {
            self.counters.spool_refused += 1;
            Some(Closed::SpoolHolding)
        } else {
            None
        }
    }

    /// Sources banned right now.
    pub fn bans(&self, now: Instant) -> usize {
        self.sources
            .values()
            .filter(|s| s.banned_until.is_some_and(|u| now < u))
            .count()
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(&ip))
    }

    /// `ip`'s entry, made if there is room (after forgetting quiet ones
    /// at most once a window).
    fn source(&mut self, now: Instant, ip: IpAddr) -> Option<&mut Source> {
        if !self.sources.contains_key(&ip) {
            self.purge(now);
            if self.sources.len() >= self.cfg.max_sources {
                return None;
            }
        }
        Some(self.sources.entry(ip).or_insert(Source {
            window_start: now,
            requests: 0,
            auth_start: now,
            auth_failures: 0,
            banned_until: None,
        }))
    }

    /// Forgets sources with no ban and nothing counted lately.
    fn purge(&mut self, now: Instant) {
        let window = self.window();
        if self
            .last_purge
            .is_some_and(|t| now.duration_since(t) < window)
        {
            return;
        }
        self.last_purge = Some(now);
        let auth = Duration::from_secs(self.cfg.auth_window_secs);
        self.sources.retain(|_, s| {
            s.banned_until.is_some()
                || now.duration_since(s.window_start) < 2 * window
                || (s.auth_failures > 0 && now.duration_since(s.auth_start) < auth)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(per_sec: u32) -> Guard {
        let cfg = FloodConfig {
            max_requests_per_sec: per_sec,
            max_auth_failures: 3,
            ..FloodConfig::default()
        };
        Guard::new(cfg, vec!["10.0.0.0/8".parse().unwrap()])
    }

    const FLOODER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));
    const HONEST: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 2));

    #[test]
    fn a_flood_bans_its_source_alone_until_it_calms_down() {
        let mut g = guard(10);
        let t0 = Instant::now();
        // 20 per window of 2 s are allowed; the 21st bans.
        for i in 0..20 {
            assert!(g.on_new_request(t0, FLOODER), "request {i}");
        }
        assert!(!g.on_new_request(t0, FLOODER));
        assert!(!g.on_new_request(t0, FLOODER), "the rest of its burst");
        assert!(g.banned(t0, FLOODER));
        assert!(!g.banned(t0, HONEST) && g.on_new_request(t0, HONEST));
        // Flooding on through the ban's end keeps it.
        let mut t = t0;
        for _ in 0..40 {
            t += Duration::from_secs(1);
            for _ in 0..100 {
                assert!(g.banned(t, FLOODER));
            }
        }
        assert_eq!(g.counters.flood_bans, 1);
        assert_eq!(g.bans(t), 1);
        // Quiet for the ban's length: lifted.
        t += Duration::from_secs(31);
        assert!(!g.banned(t, FLOODER));
        assert!(g.on_new_request(t, FLOODER));
        assert_eq!(g.bans(t), 0);
    }

    #[test]
    fn trusted_sources_and_a_zero_limit_are_never_banned() {
        let mut g = guard(1);
        let trunk: IpAddr = "10.1.2.3".parse().unwrap();
        let t = Instant::now();
        assert!((0..1000).all(|_| g.on_new_request(t, trunk)));
        (0..100).for_each(|_| g.on_auth_failure(t, trunk));
        assert!(!g.banned(t, trunk));
        let mut off = guard(0);
        assert!((0..100_000).all(|_| off.on_new_request(t, FLOODER)));
    }

    #[test]
    fn repeated_digest_failures_ban_within_their_window_only() {
        let mut g = guard(1000);
        let t = Instant::now();
        g.on_auth_failure(t, FLOODER);
        g.on_auth_failure(t, FLOODER);
        // The third comes after the window: the count starts again.
        g.on_auth_failure(t + Duration::from_secs(61), FLOODER);
        assert!(!g.banned(t + Duration::from_secs(61), FLOODER));
        let t = t + Duration::from_secs(61);
        g.on_auth_failure(t, FLOODER);
        g.on_auth_failure(t, FLOODER);
        assert!(g.banned(t, FLOODER));
        assert_eq!(g.counters.auth_bans, 1);
    }

    #[test]
    fn draining_and_shedding_close_new_calls_with_hysteresis() {
        let mut g = guard(1000);
        assert_eq!(g.closed(), None);
        g.set_draining(true);
        assert_eq!(g.closed(), Some(Closed::Draining));
        g.set_draining(false);
        g.set_load(0.96);
        assert_eq!(g.closed(), Some(Closed::Shedding));
        g.set_load(0.90);
        assert_eq!(g.closed(), Some(Closed::Shedding), "within the hysteresis");
        g.set_load(0.80);
        assert_eq!(g.closed(), None);
        assert_eq!((g.counters.drain_refused, g.counters.shed_refused), (1, 2));
    }

    #[test]
    fn a_spool_holding_cdrs_closes_new_calls_until_it_writes_again() {
        let mut g = guard(1000);
        g.set_spool_holding(true);
        assert_eq!(g.closed(), Some(Closed::SpoolHolding));
        g.set_draining(true);
        assert_eq!(g.closed(), Some(Closed::Draining), "draining says it first");
        g.set_draining(false);
        g.set_spool_holding(false);
        assert_eq!(g.closed(), None);
        assert_eq!(g.counters.spool_refused, 1);
    }

    #[test]
    fn the_source_table_is_bounded_and_forgets_quiet_sources() {
        let mut g = Guard::new(
            FloodConfig {
                max_sources: 2,
                ..FloodConfig::default()
            },
            Vec::new(),
        );
        let t = Instant::now();
        let ip = |n: u8| IpAddr::from([192, 0, 2, n]);
        assert!(g.on_new_request(t, ip(1)) && g.on_new_request(t, ip(2)));
        assert!(g.on_new_request(t, ip(3)), "untracked, still admitted");
        assert_eq!(g.sources.len(), 2);
        let later = t + Duration::from_secs(5);
        assert!(g.on_new_request(later, ip(3)));
        assert_eq!(g.sources.len(), 1, "the quiet ones were forgotten");
    }
}
