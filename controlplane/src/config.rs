//! tollgate.toml: one file for the whole node, validated at start with
//! messages that name the key and say what is wrong. Sections: `[dataplane]`
//! (the media data plane), `[media]` (relay addresses, ports, timeouts),
//! `[ng]` (the rtpengine-compatible control protocol), `[sip]` (the B2BUA
//! and its dialplan) and `[cdr]` (the CDR spool and sinks).

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use tollgate_dataplane::config::DataplaneConfig;
use tollgate_dataplane::pipeline::StageSpec;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub dataplane: DataplaneConfig,
    pub media: MediaConfig,
    pub ng: NgConfig,
    pub sip: crate::b2bua::config::SipConfig,
    pub cdr: tollgate_cdr::config::CdrConfig,
}

/// A logical media interface: a name the NG `direction`/`interface` flags
/// pick, the local address media is relayed on, and optionally a different
/// address to advertise in SDP (behind 1:1 NAT).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaInterface {
    pub name: String,
    pub address: IpAddr,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub advertise: Option<IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MediaConfig {
    /// The first is the default for offers that name none.
    pub interfaces: Vec<MediaInterface>,
    /// Relay ports come from this range: even for RTP, the next odd for RTCP.
    pub port_min: u16,
    pub port_max: u16,
    /// A call whose media has been silent this long is deleted (0: never).
    pub timeout_secs: u64,
    /// A call is deleted this long after it started, whatever happens (0: never).
    pub final_timeout_secs: u64,
    /// After `delete`, keep relaying this long (0: remove at once).
    pub delete_delay_secs: u64,
    /// Media pipeline stages every flow carries, e.g. `[{ kind = "null" }]`
    /// to run all media through the pipeline workers (AF_XDP on the XDP
    /// backend) rather than the kernel fast path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageSpec>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NgConfig {
    /// UDP and TCP address of the NG control protocol.
    pub listen: SocketAddr,
}

impl Default for MediaConfig {
    fn default() -> Self {
        MediaConfig {
            interfaces: vec![MediaInterface {
                name: "default".into(),
                address: IpAddr::from([127, 0, 0, 1]),
                advertise: None,
            }],
            port_min: 30000,
            port_max: 40000,
            timeout_secs: 60,
            final_timeout_secs: 0,
            delete_delay_secs: 30,
            stages: Vec::new(),
        }
    }
}

impl Default for NgConfig {
    fn default() -> Self {
        NgConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 22222)),
        }
    }
}

impl MediaConfig {
    pub fn validate(&self) -> Vec<String> {
        let mut errs = Vec::new();
        if self.interfaces.is_empty() {
            errs.push("media.interfaces: at least one interface is needed".into());
        }
        for (i, iface) in self.interfaces.iter().enumerate() {
            if iface.name.is_empty() || iface.name.contains(['/', ' ']) {
                errs.push(format!(
                    "media.interfaces[{i}].name: {:?} must be non-empty, without '/' or spaces",
                    iface.name
                ));
            }
            if self.interfaces[..i].iter().any(|o| o.name == iface.name) {
                errs.push(format!(
                    "media.interfaces[{i}].name: {:?} is used twice",
                    iface.name
                ));
            }
            if iface.address.is_unspecified() || iface.address.is_multicast() {
                errs.push(format!(
                    "media.interfaces[{i}].address: {} is not a unicast address",
                    iface.address
                ));
            }
        }
        if self.port_min < 1024 || self.port_min >= self.port_max {
            errs.push(format!(
                "media.port_min/port_max: {}-{} must be a range above 1023 with min below max",
                self.port_min, self.port_max
            ));
        } else if (self.port_max - self.port_min) < 3 {
            errs.push("media.port_min/port_max: the range holds no RTP/RTCP pair".into());
        }
        for (i, s) in self.stages.iter().enumerate() {
            if let Err(why) = s.check() {
                errs.push(format!("media.stages[{i}]: {why}"));
            }
        }
        errs
    }

    /// Parses rtpengine's `--interface` spelling: `ADDR`, `NAME/ADDR` or
    /// `NAME/ADDR!ADVERTISED`.
    pub fn parse_interface(spec: &str) -> Result<MediaInterface, String> {
        let (name, rest) = match spec.split_once('/') {
            Some((n, r)) => (n.to_string(), r),
            None => ("default".to_string(), spec),
        };
        let (addr, adv) = match rest.split_once('!') {
            Some((a, b)) => (a, Some(b)),
            None => (rest, None),
        };
        let address = addr
            .parse()
            .map_err(|_| format!("--interface {spec}: {addr:?} is not an IP address"))?;
        let advertise = adv
            .map(|a| {
                a.parse()
                    .map_err(|_| format!("--interface {spec}: {a:?} is not an IP address"))
            })
            .transpose()?;
        Ok(MediaInterface {
            name,
            address,
            advertise,
        })
    }
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

    #[test]
    fn rtpengine_interface_spelling() {
        let i = MediaConfig::parse_interface("pub/203.0.113.5!198.51.100.5").unwrap();
        assert_eq!(
            (
                i.name.as_str(),
                i.address.to_string(),
                i.advertise.map(|a| a.to_string())
            ),
            ("pub", "203.0.113.5".into(), Some("198.51.100.5".into()))
        );
        assert_eq!(
            MediaConfig::parse_interface("10.0.0.1").unwrap().name,
            "default"
        );
        assert!(MediaConfig::parse_interface("x/nope")
            .unwrap_err()
            .contains("\"nope\" is not an IP address"));
    }
}
