//! The `[media]` section: the relay's logical interfaces (addresses and
//! what SDP advertises), its port range, the session timeouts, and the
//! pipeline stages every flow carries.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;
use tollgate_dataplane::pipeline::StageSpec;

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

#[cfg(test)]
mod tests {
    use super::*;

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
