//! Flows: one direction of one media stream through the relay.
//!
//! A flow matches packets sent to a local (address, UDP port) and says where
//! they go next: the relay's source address/port to send from, and the peer's
//! address/port to send to. Options cover symmetric RTP (learn the peer's real
//! source from its first packet, and send the reverse direction there) and
//! strict source checking. The same [`Flow`] drives every backend.

use crate::pipeline::StageSpec;
use serde::{Deserialize, Serialize};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tollgate_ebpf::abi;

/// One direction of one media stream, as installed through the control socket.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Flow {
    /// The relay's address and port the peer sends to: the match.
    pub local: SocketAddr,
    /// The relay's address and port packets leave from.
    pub source: SocketAddr,
    /// Where packets go (until a followed flow has learned better).
    pub destination: SocketAddr,
    /// Only this source is accepted when `strict` (otherwise informative).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expect: Option<SocketAddr>,
    /// Egress interface name; by default the routing table decides.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress: Option<String>,
    /// Record the source of the first packet (NAT latching, symmetric RTP).
    #[serde(default)]
    pub learn: bool,
    /// Drop packets from any source other than `expect`, or else the learned one.
    #[serde(default)]
    pub strict: bool,
    /// Send to the source learned by the flow whose `local` is this, once it
    /// has one: the reverse direction of a symmetric-RTP pair.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<SocketAddr>,
    /// RTP clock rate for jitter, in Hz.
    #[serde(default = "default_clock_rate")]
    pub clock_rate: u32,
    /// Media pipeline stages, in order. A flow without stages stays in the
    /// fast path (XDP); one with stages is handled by a pipeline worker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stages: Vec<StageSpec>,
}

/// Most stages one flow may carry.
pub const MAX_STAGES: usize = 16;

fn default_clock_rate() -> u32 {
    8000
}

/// A flow that cannot be installed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlowError {
    #[error("flow {local}: `{field}` is {value}, but `local` is {family}; a flow stays in one address family")]
    FamilyMismatch {
        local: SocketAddr,
        field: &'static str,
        value: SocketAddr,
        family: &'static str,
    },
    #[error("flow {local}: `{field}` has port 0")]
    PortZero {
        local: SocketAddr,
        field: &'static str,
    },
    #[error("flow {local}: `{field}` {addr} is not a unicast address")]
    NotUnicast {
        local: SocketAddr,
        field: &'static str,
        addr: IpAddr,
    },
    #[error("flow {local}: `clock_rate` must be between 1000 and 192000 Hz, got {rate}")]
    ClockRate { local: SocketAddr, rate: u32 },
    #[error("flow {local}: `strict` needs `expect` or `learn`, else no source could ever match")]
    StrictWithoutSource { local: SocketAddr },
    #[error("flow {local}: stages[{index}]: {why}")]
    Stage {
        local: SocketAddr,
        index: usize,
        why: String,
    },
    #[error("flow {local}: more than {MAX_STAGES} stages")]
    TooManyStages { local: SocketAddr },
    #[error("flow {local}: egress interface `{name}` does not exist")]
    NoSuchInterface { local: SocketAddr, name: String },
}

fn family(a: &SocketAddr) -> &'static str {
    if a.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn unicast(ip: IpAddr) -> bool {
    !(ip.is_unspecified() || ip.is_multicast() || ip == IpAddr::V4(Ipv4Addr::BROADCAST))
}

impl Flow {
    /// A plain relay flow: packets sent to `local` leave from `source` for
    /// `destination`; no learning, no source check, 8 kHz, no stages.
    pub fn relay(local: SocketAddr, source: SocketAddr, destination: SocketAddr) -> Flow {
        Flow {
            local,
            source,
            destination,
            expect: None,
            egress: None,
            learn: false,
            strict: false,
            follow: None,
            clock_rate: default_clock_rate(),
            stages: Vec::new(),
        }
    }

    /// Checks what can be checked without touching the host.
    pub fn validate(&self) -> Result<(), FlowError> {
        let local = self.local;
        let named = [
            ("local", Some(self.local)),
            ("source", Some(self.source)),
            ("destination", Some(self.destination)),
            ("expect", self.expect),
            ("follow", self.follow),
        ];
        for (field, value) in named {
            let Some(value) = value else { continue };
            if value.is_ipv4() != local.is_ipv4() {
                return Err(FlowError::FamilyMismatch {
                    local,
                    field,
                    value,
                    family: family(&local),
                });
            }
            if value.port() == 0 {
                return Err(FlowError::PortZero { local, field });
            }
            if !unicast(value.ip()) {
                return Err(FlowError::NotUnicast {
                    local,
                    field,
                    addr: value.ip(),
                });
            }
        }
        if !(1000..=192_000).contains(&self.clock_rate) {
            return Err(FlowError::ClockRate {
                local,
                rate: self.clock_rate,
            });
        }
        if self.strict && self.expect.is_none() && !self.learn {
            return Err(FlowError::StrictWithoutSource { local });
        }
        if self.stages.len() > MAX_STAGES {
            return Err(FlowError::TooManyStages { local });
        }
        for (index, s) in self.stages.iter().enumerate() {
            s.check()
                .map_err(|why| FlowError::Stage { local, index, why })?;
        }
        Ok(())
    }

    /// The XDP map key and value for this flow; `egress_ifindex` is resolved
    /// by the caller (0 = by route).
    pub fn to_abi(&self, egress_ifindex: u32) -> (abi::FlowKey, abi::FlowAction) {
        let mut flags = 0;
        if self.learn {
            flags |= abi::FLOW_LEARN;
        }
        if self.strict {
            flags |= abi::FLOW_STRICT;
        }
        let mut action = abi::FlowAction {
            src_addr: addr_bytes(self.source.ip()),
            dst_addr: addr_bytes(self.destination.ip()),
            src_port: self.source.port().to_be(),
            dst_port: self.destination.port().to_be(),
            egress_ifindex,
            clock_rate: self.clock_rate,
            ..Default::default()
        };
        if let Some(e) = self.expect {
            flags |= abi::FLOW_EXPECT;
            action.expect_addr = addr_bytes(e.ip());
            action.expect_port = e.port().to_be();
        }
        if let Some(f) = self.follow {
            flags |= abi::FLOW_FOLLOW;
            action.follow = key_of(f);
        }
        action.flags = flags;
        (key_of(self.local), action)
    }

    /// Rebuilds a flow from what the XDP maps hold (adoption after a restart);
    /// `egress` is the interface name for `action.egress_ifindex`.
    pub fn from_abi(key: &abi::FlowKey, a: &abi::FlowAction, egress: Option<String>) -> Flow {
        let fam = key.family;
        Flow {
            local: addr_of(key),
            source: sock(fam, &a.src_addr, a.src_port),
            destination: sock(fam, &a.dst_addr, a.dst_port),
            expect: (a.flags & abi::FLOW_EXPECT != 0)
                .then(|| sock(fam, &a.expect_addr, a.expect_port)),
            egress,
            learn: a.flags & abi::FLOW_LEARN != 0,
            strict: a.flags & abi::FLOW_STRICT != 0,
            follow: (a.flags & abi::FLOW_FOLLOW != 0).then(|| addr_of(&a.follow)),
            clock_rate: a.clock_rate,
            stages: Vec::new(),
        }
    }
}

/// The 16-byte form the XDP maps use (IPv4 in the first four bytes).
pub fn addr_bytes(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&v4.octets());
            b
        }
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The XDP map key for a local address.
pub fn key_of(a: SocketAddr) -> abi::FlowKey {
    abi::FlowKey {
        addr: addr_bytes(a.ip()),
        port: a.port().to_be(),
        family: if a.is_ipv4() {
            abi::AF_INET
        } else {
            abi::AF_INET6
        },
        pad: 0,
    }
}

/// A socket address from map bytes; `port_be` in network byte order.
pub fn sock(family: u8, addr: &[u8; 16], port_be: u16) -> SocketAddr {
    let ip = if family == abi::AF_INET {
        IpAddr::V4(Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]))
    } else {
        IpAddr::V6(Ipv6Addr::from(*addr))
    };
    SocketAddr::new(ip, u16::from_be(port_be))
}

/// The local address a key matches.
pub fn addr_of(k: &abi::FlowKey) -> SocketAddr {
    sock(k.family, &k.addr, k.port)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flow() -> Flow {
        Flow {
            local: "10.0.1.1:30000".parse().unwrap(),
            source: "10.0.2.1:30002".parse().unwrap(),
            destination: "10.0.2.2:4000".parse().unwrap(),
            expect: Some("10.0.1.2:5000".parse().unwrap()),
            egress: None,
            learn: true,
            strict: true,
            follow: Some("10.0.2.1:30002".parse().unwrap()),
            clock_rate: 8000,
            stages: Vec::new(),
        }
    }

    #[test]
    fn abi_round_trip() {
        let f = flow();
        let (k, a) = f.to_abi(0);
        assert_eq!(u16::from_be(k.port), 30000);
        assert_eq!(Flow::from_abi(&k, &a, None), f);
        let v6 = Flow {
            local: "[fd00::1]:30000".parse().unwrap(),
            source: "[fd00:2::1]:30002".parse().unwrap(),
            destination: "[fd00:2::2]:4000".parse().unwrap(),
            expect: None,
            follow: None,
            ..flow()
        };
        let (k, a) = v6.to_abi(3);
        assert_eq!(Flow::from_abi(&k, &a, None), v6);
        assert_eq!(a.egress_ifindex, 3);
    }

    #[test]
    fn validation_names_the_field() {
        let mut f = flow();
        f.destination = "[fd00::2]:4000".parse().unwrap();
        let e = f.validate().unwrap_err().to_string();
        assert!(e.contains("`destination`") && e.contains("IPv4"), "{e}");
        let mut f = flow();
        f.source.set_port(0);
        assert!(f
            .validate()
            .unwrap_err()
            .to_string()
            .contains("`source` has port 0"));
        let mut f = flow();
        f.destination = "224.0.0.1:4000".parse().unwrap();
        assert!(matches!(
            f.validate(),
            Err(FlowError::NotUnicast {
                field: "destination",
                ..
            })
        ));
        let mut f = flow();
        f.expect = None;
        f.learn = false;
        assert!(matches!(
            f.validate(),
            Err(FlowError::StrictWithoutSource { .. })
        ));
        let mut f = flow();
        f.clock_rate = 0;
        assert!(matches!(f.validate(), Err(FlowError::ClockRate { .. })));
        let mut f = flow();
        f.stages = vec![StageSpec::Null, StageSpec::DropEvery { n: 0 }];
        let e = f.validate().unwrap_err().to_string();
        assert!(e.contains("stages[1]: drop_every: `n`"), "{e}");
        assert!(flow().validate().is_ok());
    }
}
