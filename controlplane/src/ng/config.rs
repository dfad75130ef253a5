//! The `[ng]` section: where the rtpengine-compatible control protocol
//! listens, and who may use it.

use serde::{Deserialize, Serialize};
use std::net::{IpAddr, SocketAddr};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NgConfig {
    /// UDP and TCP address of the NG control protocol.
    pub listen: SocketAddr,
    /// Sources (CIDR) whose NG messages are served; everyone else's are
    /// dropped unanswered and counted (NG has no authentication of its own,
    /// so this list is what keeps strangers from placing media). Default:
    /// loopback only.
    pub allow: Vec<ipnet::IpNet>,
}

impl Default for NgConfig {
    fn default() -> Self {
        NgConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 22222)),
            allow: vec![
                "127.0.0.0/8".parse().expect("a valid network"),
                "::1/128".parse().expect("a valid network"),
            ],
        }
    }
}

impl NgConfig {
    /// Whether a message from `ip` is served.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.allow.iter().any(|n| n.contains(&ip))
    }

    /// A word for the operator when the listen address is reachable from
    /// elsewhere but only loopback may use it.
    pub fn warning(&self) -> Option<String> {
        let remote_allowed = self.allow.iter().any(|n| !n.addr().is_loopback());
        (!self.listen.ip().is_loopback() && !remote_allowed).then(|| {
            format!(
                "ng.listen is {} but ng.allow admits loopback only: add your SIP proxies' addresses to ng.allow",
                self.listen
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_by_default_and_mapped_addresses_match_their_v4_network() {
        let c = NgConfig::default();
        assert!(c.allows("127.0.0.1".parse().unwrap()));
        assert!(c.allows("::ffff:127.0.0.2".parse().unwrap()));
        assert!(!c.allows("192.0.2.1".parse().unwrap()));
        assert_eq!(c.warning(), None);
        let open = NgConfig {
            listen: "0.0.0.0:22222".parse().unwrap(),
            ..NgConfig::default()
        };
        assert!(open.warning().unwrap().contains("ng.allow"));
    }
}
