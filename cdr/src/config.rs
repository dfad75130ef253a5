//! The `[cdr]` section of Tollgate's config: where the spool lives, how it
//! syncs and how large it may grow, and the sinks records go to. Every
//! option has a default that works on one host: a spool and an SQLite
//! database under `/var/lib/tollgate`.

use crate::sink::Batching;
use crate::spool::{Fsync, SpoolConfig};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CdrConfig {
    pub spool_dir: PathBuf,
    /// `always` (a CDR synced before it is acknowledged), `interval` or
    /// `never`.
    pub fsync: FsyncPolicy,
    /// `interval`'s period; under `always`, the longest a call event waits
    /// for a CDR's sync to carry it.
    pub fsync_interval_ms: u64,
    pub segment_mb: u64,
    /// Appends are refused beyond this; an alarm is raised before.
    pub max_spool_mb: u64,
    pub alarm_percent: u8,
    /// Records the spool's disk refuses (full, failing) are held in memory
    /// up to this; new calls are refused once half of it is used.
    pub hold_mb: u64,
    /// Most records a sink takes per delivery.
    pub batch: usize,
    /// How long a sink gathers records after the first before delivering
    /// (one transaction and one cursor sync per batch); 0 delivers at once.
    pub batch_linger_ms: u64,
    pub sinks: Vec<SinkConfig>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    Always,
    Interval,
    Never,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SinkKind {
    Sqlite,
    Postgres,
    Mysql,
    Amqp,
    Redis,
    Jsonl,
}

impl SinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SinkKind::Sqlite => "sqlite",
            SinkKind::Postgres => "postgres",
            SinkKind::Mysql => "mysql",
            SinkKind::Amqp => "amqp",
            SinkKind::Redis => "redis",
            SinkKind::Jsonl => "jsonl",
        }
    }

    pub fn is_sql(self) -> bool {
        matches!(
            self,
            SinkKind::Sqlite | SinkKind::Postgres | SinkKind::Mysql
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// Names the sink's cursor; defaults to the kind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Database, broker or Redis URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The JSON-lines file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<PathBuf>,
    /// AMQP topic exchange (default `events`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exchange: Option<String>,
    /// Redis: how long `session:{call_id}` lives while the call is up, and
    /// after it ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_ttl_secs: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_ttl_secs: Option<u64>,
}

impl SinkConfig {
    pub fn name(&self) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| self.kind.as_str().to_string())
    }

    fn sqlite_default() -> Self {
        SinkConfig {
            kind: SinkKind::Sqlite,
            name: None,
            url: Some("sqlite:///var/lib/tollgate/cdr.sqlite".into()),
            path: None,
            exchange: None,
            session_ttl_secs: None,
            ended_ttl_secs: None,
        }
    }
}

impl Default for CdrConfig {
    fn default() -> Self {
        CdrConfig {
            spool_dir: PathBuf::from("/var/lib/tollgate/spool"),
            fsync: FsyncPolicy::Always,
            fsync_interval_ms: 100,
            segment_mb: 64,
            max_spool_mb: 4096,
            alarm_percent: 80,
            hold_mb: 64,
            batch: 1000,
            batch_linger_ms: 50,
            sinks: vec![SinkConfig::sqlite_default()],
        }
    }
}

impl CdrConfig {
    pub fn spool(&self) -> SpoolConfig {
        SpoolConfig {
            dir: self.spool_dir.clone(),
            fsync: match self.fsync {
                FsyncPolicy::Always => Fsync::Always,
                FsyncPolicy::Interval => {
                    Fsync::Interval(Duration::from_millis(self.fsync_interval_ms))
                }
                FsyncPolicy::Never => Fsync::Never,
            },
            segment_bytes: self.segment_mb << 20,
            max_bytes: self.max_spool_mb << 20,
            alarm_percent: self.alarm_percent,
            lazy_sync: Duration::from_millis(self.fsync_interval_ms),
            hold_bytes: self.hold_mb << 20,
        }
    }

    pub fn batching(&self) -> Batching {
        Batching {
            max: self.batch,
            linger: Duration::from_millis(self.batch_linger_ms),
        }
    }

    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(SinkConfig::name).collect()
    }

    /// The SQL sink exports read from: `name`, or the first SQL sink.
    pub fn sql_sink(&self, name: Option<&str>) -> Result<&SinkConfig, String> {
        let sql = |s: &&SinkConfig| s.kind.is_sql();
        match name {
            Some(n) => self
                .sinks
                .iter()
                .find(|s| s.name() == n)
                .filter(sql)
                .ok_or_else(|| format!("no SQL sink named {n:?} in [cdr]")),
            None => self
                .sinks
                .iter()
                .find(sql)
                .ok_or_else(|| "no SQL sink (sqlite, postgres, mysql) in [cdr]".into()),
        }
    }

    /// Every problem, each naming the option.
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.sinks.is_empty() {
            errs.push("cdr.sinks: at least one sink is needed (records would pile up)".into());
        }
        if self.batch == 0 {
            errs.push("cdr.batch: must be at least 1".into());
        }
        if self.segment_mb == 0 || self.max_spool_mb < self.segment_mb {
            errs.push(format!(
                "cdr.max_spool_mb ({}) must be at least cdr.segment_mb ({}), which must be > 0",
                self.max_spool_mb, self.segment_mb
            ));
        }
        if self.hold_mb == 0 {
            errs.push("cdr.hold_mb: must be at least 1".into());
        }
        if !(1..=100).contains(&self.alarm_percent) {
            errs.push("cdr.alarm_percent: must be 1-100".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        for (i, s) in self.sinks.iter().enumerate() {
            let at = format!("cdr.sinks[{i}] ({})", s.kind.as_str());
            let name = s.name();
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                errs.push(format!(
                    "{at}: name {name:?} may hold only letters, digits, - and _"
                ));
            }
            if !seen.insert(name.clone()) {
                errs.push(format!(
                    "{at}: a second sink named {name:?}; give one a `name`"
                ));
            }
            let scheme = |prefixes: &[&str]| match &s.url {
                None => Some(format!("{at}: `url` is required")),
                Some(u) if !prefixes.iter().any(|p| u.starts_with(p)) => Some(format!(
                    "{at}: url {u:?} should start with {}",
                    prefixes.join(" or ")
                )),
                Some(_) => None,
            };
            let problem = match s.kind {
                SinkKind::Sqlite => scheme(&["sqlite:"]),
                SinkKind::Postgres => scheme(&["postgres://", "postgresql://"]),
                SinkKind::Mysql => scheme(&["mysql://", "mariadb://"]),
                SinkKind::Amqp => scheme(&["amqp://", "amqps://"]),
                SinkKind::Redis => scheme(&["redis://", "rediss://", "redis+unix://"]),
                SinkKind::Jsonl => s
                    .path
                    .is_none()
                    .then(|| format!("{at}: `path` is required")),
            };
            errs.extend(problem);
        }
        errs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_sinks_are_named() {
        assert!(CdrConfig::default().validate().is_empty());
        let cfg: CdrConfig = toml::from_str(
            r#"
            sinks = [
              { kind = "postgres", url = "mysql://x" },
              { kind = "jsonl" },
              { kind = "redis", url = "redis://127.0.0.1" },
              { kind = "redis", url = "redis://127.0.0.2" },
            ]
            "#,
        )
        .unwrap();
        let errs = cfg.validate();
        assert_eq!(errs.len(), 3, "{errs:?}");
        assert!(errs[0].starts_with("cdr.sinks[0] (postgres): url \"mysql://x\""));
        assert!(errs[1].contains("cdr.sinks[1] (jsonl): `path` is required"));
        assert!(errs[2].contains("a second sink named \"redis\""));
        let unknown = toml::from_str::<CdrConfig>("sinks = [{ kind = \"kafka\" }]");
        assert!(unknown.unwrap_err().to_string().contains("kafka"));
    }
}
