//! The `[hep]` section: where captured SIP (and optionally NG) messages and
//! the RTCP reports the data plane reads are exported as HEPv3, for Homer
//! or any HEP collector. Off without a `collector`.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// How HEP packets reach the collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HepTransport {
    #[default]
    Udp,
    Tcp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HepConfig {
    /// The collector's address; no export without one.
    pub collector: Option<SocketAddr>,
    pub transport: HepTransport,
    /// The capture agent id the collector shows for this node.
    pub agent_id: u32,
    /// The collector's password (sent in every packet), if it wants one.
    pub password: Option<String>,
    /// Also export the NG control messages (requests and replies).
    pub ng: bool,
    /// Export the RTCP SR/RR the data plane reads on calls' flows.
    pub rtcp: bool,
    /// Messages waiting for the exporter at most; past that they are
    /// dropped (and counted) rather than slowing the SIP path.
    pub queue: usize,
}

impl Default for HepConfig {
    fn default() -> Self {
        HepConfig {
            collector: None,
            transport: HepTransport::Udp,
            agent_id: 1,
            password: None,
            ng: false,
            rtcp: true,
            queue: 16384,
        }
    }
}

impl HepConfig {
    /// What is wrong with this section, each naming its key.
    pub fn validate(&self) -> Vec<String> {
        let mut problems = Vec::new();
        if self.queue == 0 {
            problems.push("hep.queue: must be at least 1".to_string());
        }
        if self.collector.is_none() && (self.ng || self.password.is_some()) {
            problems.push("hep.ng/hep.password: set hep.collector (\"IP:PORT\") to export".into());
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_by_default_and_options_without_a_collector_are_named() {
        let c: HepConfig = toml::from_str("").unwrap();
        assert_eq!(c, HepConfig::default());
        assert!(c.collector.is_none() && c.validate().is_empty());
        let c: HepConfig = toml::from_str("ng = true\nqueue = 0").unwrap();
        let p = c.validate().join("; ");
        assert!(
            p.contains("hep.queue") && p.contains("hep.collector"),
            "{p}"
        );
        let c: HepConfig =
            toml::from_str("collector = \"127.0.0.1:9060\"\ntransport = \"tcp\"").unwrap();
        assert_eq!(c.transport, HepTransport::Tcp);
        assert!(c.rtcp, "RTCP reports are exported by default");
        let c: HepConfig = toml::from_str("collector = \"127.0.0.1:9060\"\nrtcp = false").unwrap();
        assert!(!c.rtcp && c.validate().is_empty());
        assert!(c.validate().is_empty());
        assert!(toml::from_str::<HepConfig>("transport = \"sctp\"").is_err());
    }
}
