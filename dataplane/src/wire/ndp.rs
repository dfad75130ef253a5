//! IPv6 neighbour discovery (RFC 4861): neighbour solicitations and
//! advertisements with their link-layer address option, the solicited-node
//! multicast address, and the Ethernet multicast MAC of an IPv6 address.
//! Used where the node owns its addresses in user space (DPDK).

use super::{checksum, need, WireError};
use std::net::{IpAddr, Ipv6Addr};

pub const NEXT_HEADER_ICMPV6: u8 = 58;
pub const NEIGHBOR_SOLICIT: u8 = 135;
pub const NEIGHBOR_ADVERT: u8 = 136;
/// Fixed part of a solicitation or advertisement: type, code, checksum,
/// reserved/flags and the target address.
pub const MIN_LEN: usize = 24;
/// Length of one of them carrying a link-layer address option.
pub const LEN_WITH_LLADDR: usize = MIN_LEN + 8;
const OPT_SOURCE_LLADDR: u8 = 1;
const OPT_TARGET_LLADDR: u8 = 2;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// A view of a neighbour solicitation or advertisement (the ICMPv6
/// message, after the IPv6 header). `new_checked` requires type 135 or
/// 136, code 0, and options whose lengths fit.
#[derive(Debug, Clone)]
pub struct Message<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Message<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        need("ndp", b, MIN_LEN)?;
        if !matches!(b[0], NEIGHBOR_SOLICIT | NEIGHBOR_ADVERT) || b[1] != 0 {
            return Err(WireError::Malformed {
                what: "ndp",
                detail: "not a neighbour solicitation or advertisement",
            });
        }
        let mut at = MIN_LEN;
        while at < b.len() {
            let len = *b.get(at + 1).unwrap_or(&0) as usize * 8;
            if len == 0 || at + len > b.len() {
                return Err(WireError::Malformed {
                    what: "ndp",
                    detail: "an option of length zero or beyond the message",
                });
            }
            at += len;
        }
        Ok(Message(buf))
    }
    pub fn msg_type(&self) -> u8 {
        self.0.as_ref()[0]
    }
    pub fn solicited(&self) -> bool {
        self.0.as_ref()[4] & FLAG_SOLICITED != 0
    }
    pub fn target(&self) -> Ipv6Addr {
        let a: [u8; 16] = self.0.as_ref()[8..24].try_into().expect("16 bytes");
        a.into()
    }
    /// The source (NS) or target (NA) link-layer address option, if any.
    pub fn lladdr(&self) -> Option<[u8; 6]> {
        let b = self.0.as_ref();
        let want = if self.msg_type() == NEIGHBOR_SOLICIT {
            OPT_SOURCE_LLADDR
        } else {
            OPT_TARGET_LLADDR
        };
        let mut at = MIN_LEN;
        while at + 8 <= b.len() {
            let len = b[at + 1] as usize * 8;
            if b[at] == want && len == 8 {
                return Some(b[at + 2..at + 8].try_into().expect("6 bytes"));
            }
            at += len.max(8);
        }
        None
    }
}

/// A solicitation or advertisement to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repr {
    /// Who has `target`? `lladdr` is the sender's MAC.
    Solicit { target: Ipv6Addr, lladdr: [u8; 6] },
    /// `target` is at `lladdr`.
    Advert {
        target: Ipv6Addr,
        lladdr: [u8; 6],
        solicited: bool,
    },
}

impl Repr {
    /// Writes the message (with its option) into the first
    /// [`LEN_WITH_LLADDR`] bytes of `out`, checksummed for `src` -> `dst`.
    pub fn emit(&self, src: Ipv6Addr, dst: Ipv6Addr, out: &mut [u8]) -> usize {
        let m = &mut out[..LEN_WITH_LLADDR];
        m.fill(0);
        let (kind, target, lladdr, opt) = match *self {
            Repr::Solicit { target, lladdr } => {
                (NEIGHBOR_SOLICIT, target, lladdr, OPT_SOURCE_LLADDR)
            }
            Repr::Advert {
                target,
                lladdr,
                solicited,
            } => {
                m[4] = FLAG_OVERRIDE | if solicited { FLAG_SOLICITED } else { 0 };
                (NEIGHBOR_ADVERT, target, lladdr, OPT_TARGET_LLADDR)
            }
        };
        m[0] = kind;
        m[8..24].copy_from_slice(&target.octets());
        m[24] = opt;
        m[25] = 1;
        m[26..32].copy_from_slice(&lladdr);
        let c = checksum::icmpv6(IpAddr::V6(src), IpAddr::V6(dst), m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
        LEN_WITH_LLADDR
    }
}

/// The solicited-node multicast address of `a` (ff02::1:ffXX:XXXX).
pub fn solicited_node(a: Ipv6Addr) -> Ipv6Addr {
    let o = a.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | o[13] as u16,
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// The Ethernet address IPv6 multicast `a` is sent to (33:33 + its last 32 bits).
pub fn multicast_mac(a: Ipv6Addr) -> [u8; 6] {
    let o = a.octets();
    [0x33, 0x33, o[12], o[13], o[14], o[15]]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv6Addr {
        s.parse().unwrap()
    }

    #[test]
    fn solicitation_round_trips_and_verifies() {
        let (src, target) = (ip("fd00::2"), ip("fd00::1"));
        let dst = solicited_node(target);
        assert_eq!(dst, ip("ff02::1:ff00:1"));
        assert_eq!(multicast_mac(dst), [0x33, 0x33, 0xff, 0, 0, 1]);
        let mut b = [0u8; 64];
        let n = Repr::Solicit {
            target,
            lladdr: [2, 0, 0, 0, 0, 2],
        }
        .emit(src, dst, &mut b);
        assert!(checksum::icmpv6_verifies(src.into(), dst.into(), &b[..n]));
        let m = Message::new_checked(&b[..n]).unwrap();
        assert_eq!(m.msg_type(), NEIGHBOR_SOLICIT);
        assert_eq!(m.target(), target);
        assert_eq!(m.lladdr(), Some([2, 0, 0, 0, 0, 2]));
    }

    #[test]
    fn advertisement_carries_flags_and_target_lladdr() {
        let mut b = [0u8; 64];
        let n = Repr::Advert {
            target: ip("fd00::1"),
            lladdr: [2, 0, 0, 0, 0, 1],
            solicited: true,
        }
        .emit(ip("fd00::1"), ip("fd00::2"), &mut b);
        let m = Message::new_checked(&b[..n]).unwrap();
        assert_eq!(
            (m.msg_type(), m.solicited(), m.lladdr()),
            (NEIGHBOR_ADVERT, true, Some([2, 0, 0, 0, 0, 1]))
        );
        // A flipped bit fails verification.
        let mut bad = b;
        bad[10] ^= 1;
        assert!(!checksum::icmpv6_verifies(
            ip("fd00::1").into(),
            ip("fd00::2").into(),
            &bad[..n]
        ));
    }

    #[test]
    fn rejects_bad_options_and_types() {
        let mut b = [0u8; 32];
        b[0] = NEIGHBOR_SOLICIT;
        b[24] = 1;
        b[25] = 0; // zero-length option
        assert!(Message::new_checked(&b[..]).is_err());
        b[25] = 2; // beyond the message
        assert!(Message::new_checked(&b[..]).is_err());
        b[0] = 128; // echo request
        b[25] = 1;
        assert!(Message::new_checked(&b[..]).is_err());
        assert!(Message::new_checked(&b[..20]).is_err());
        b[0] = NEIGHBOR_SOLICIT;
        assert_eq!(Message::new_checked(&b[..24]).unwrap().lladdr(), None);
    }
}
