//! Zero-copy views of the packets the data plane handles: Ethernet, ARP,
//! IPv4, IPv6 (with neighbour discovery), UDP, RTP and RTCP, plus the
//! Internet checksum.
//!
//! Each view wraps a `T: AsRef<[u8]>`, checks its length once in
//! `new_checked`, and then reads fields in place (writes too where `T` is
//! mutable). Modelled on smoltcp's `wire`.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod ipv6;
pub mod ndp;
pub mod rtcp;
pub mod rtp;
pub mod udp;

/// Why a buffer is not the packet a view expected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    #[error("{what}: {len} bytes is shorter than the {need} the header needs")]
    Truncated {
        what: &'static str,
        len: usize,
        need: usize,
    },
    #[error("{what}: {detail}")]
    Malformed {
        what: &'static str,
        detail: &'static str,
    },
}

pub(crate) fn need(what: &'static str, buf: &[u8], need: usize) -> Result<(), WireError> {
    if buf.len() < need {
        Err(WireError::Truncated {
            what,
            len: buf.len(),
            need,
        })
    } else {
        Ok(())
    }
}

pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
