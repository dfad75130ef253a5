//! tollgate.toml: one file for the whole node, validated at start with
//! messages that name the key and say what is wrong. Each section is
//! defined and validated by the module that owns it: `[dataplane]` (the
//! media data plane, `tollgate_dataplane::config`), `[media]` (relay
//! addresses, ports, timeouts: `media::config`), `[ng]` (the
//! rtpengine-compatible control protocol: `ng::config`), `[sip]` (the
//! B2BUA and its dialplan: `b2bua::config`), `[cdr]` (the CDR spool and
//! sinks: `tollgate_cdr::config`), `[hep]` (HEP export to Homer:
//! `hep::config`), `[http]` (metrics and the API: `http::config`),
//! `[journal]` (the call-state journal: `journal`), `[failover]` (calls
//! in Redis for another node to take over: `failover`), `[archive]`
//! (where recordings are spooled: `recording::config`) and `[ivr]` (the
//! IVR's menus and timers: `ivr::config`). This
//! file joins them and checks them all.

use crate::media::config::MediaConfig;
use crate::ng::config::NgConfig;
use serde::{Deserialize, Serialize};
#[cfg(test)]
use std::net::IpAddr;
use std::path::Path;
use tollgate_dataplane::config::DataplaneConfig;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub dataplane: DataplaneConfig,
    pub media: MediaConfig,
    pub ng: NgConfig,
    pub sip: crate::b2bua::config::SipConfig,
    pub cdr: tollgate_cdr::config::CdrConfig,
    pub hep: crate::hep::config::HepConfig,
    pub http: crate::http::config::HttpConfig,
    pub archive: crate::archive::config::ArchiveConfig,
    pub journal: crate::journal::JournalConfig,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failover: Option<crate::failover::FailoverConfig>,
    pub ivr: crate::ivr::config::IvrConfig,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("config file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("config file {path} is invalid:\n  {}", .problems.join("\n  "))]
    Invalid { path: String, problems: Vec<String> },
}

impl Config {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: p.clone(),
            source,
        })?;
        Self::parse(&text, &p)
    }

    /// Parses and validates TOML text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: origin.into(),
            message: e.to_string(),
        })?;
        cfg.validate(origin)
    }

    /// Checks every section, and hands the media interfaces' addresses to
    /// the data plane's backend choice; used again after command-line
    /// overrides.
    pub fn validate(mut self, origin: &str) -> Result<Config, ConfigError> {
        self.dataplane.media_addresses = self.media.interfaces.iter().map(|i| i.address).collect();
        let mut problems = self.dataplane.validate(tollgate_dataplane::host_cores());
        problems.extend(self.media.validate());
        problems.extend(self.sip.validate());
        problems.extend(self.cdr.validate());
        problems.extend(self.hep.validate());
        problems.extend(self.http.validate());
        problems.extend(self.archive.validate(&self.cdr));
        if let Some(f) = &self.failover {
            problems.extend(f.validate(&self.journal));
        }
        problems.extend(self.ivr.validate());
        if problems.is_empty() {
            Ok(self)
        } else {
            Err(ConfigError::Invalid {
                path: origin.into(),
                problems,
            })
        }
    }
}

/// The sections a `tollgate dataplane` child needs, as TOML.
#[derive(Serialize)]
struct DataplaneSections<'a> {
    dataplane: &'a DataplaneConfig,
    media: &'a MediaConfig,
}

impl Config {
    /// This configuration's `[dataplane]` and `[media]` sections as TOML:
    /// the config of a data-plane child, so that it runs on the effective
    /// settings (the file's with the command line's overrides), media
    /// interfaces included. Other sections are left out (they may hold
    /// database credentials the data plane has no use for).
    pub fn dataplane_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(&DataplaneSections {
            dataplane: &self.dataplane,
            media: &self.media,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_config_is_valid() {
        let text = include_str!("../../tollgate.example.toml");
        Config::parse(text, "tollgate.example.toml").unwrap();
    }

    #[test]
    fn empty_file_is_all_defaults() {
        let c = Config::parse("", "empty").unwrap();
        assert_eq!(
            c.dataplane,
            DataplaneConfig {
                media_addresses: vec![IpAddr::from([127, 0, 0, 1])],
                ..DataplaneConfig::default()
            }
        );
        assert_eq!(c.media, MediaConfig::default());
    }

    #[test]
    fn media_addresses_reach_the_data_plane_through_its_own_config() {
        let mut c =
            Config::parse("[dataplane]\ncontrol_socket = \"/tmp/x.sock\"\n", "t.toml").unwrap();
        c.media.interfaces = ["ext/10.0.1.1", "int/fd00:2::1!198.51.100.5"]
            .iter()
            .map(|s| MediaConfig::parse_interface(s).unwrap())
            .collect();
        let c = c.validate("command line").unwrap();
        let want: Vec<IpAddr> = vec!["10.0.1.1".parse().unwrap(), "fd00:2::1".parse().unwrap()];
        assert_eq!(c.dataplane.media_addresses, want);
        let child = Config::parse(&c.dataplane_toml().unwrap(), "child.toml").unwrap();
        assert_eq!(child.dataplane, c.dataplane);
        assert_eq!(child.media, c.media);
    }

    #[test]
    fn unknown_key_and_bad_value_are_named() {
        let e = Config::parse("[dataplane]\nbackend = \"xdp\"\nbogus = 1\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown field `bogus`") && e.contains("line 3"),
            "{e}"
        );
        let e = Config::parse("[dataplane]\nbackend = \"dpdk\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dataplane.dpdk.ports"), "{e}");
        let e = Config::parse("[dataplane]\nbackend = \"xdp\"\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("dataplane.xdp.interfaces"), "{e}");
        let e = Config::parse("[media]\nport_min = 5000\nport_max = 4000\n", "t.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("media.port_min/port_max: 5000-4000"), "{e}");
    }
}
