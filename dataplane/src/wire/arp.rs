//! ARP for IPv4 over Ethernet (RFC 826): the view of a request or reply, and
//! building one. Used where the node owns its addresses in user space (DPDK).

use super::{be16, need, WireError};
use std::net::Ipv4Addr;

pub const LEN: usize = 28;
pub const ETHERTYPE: u16 = 0x0806;
pub const OP_REQUEST: u16 = 1;
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet; `new_checked` requires hardware
/// type 1, protocol 0x0800 and address lengths 6 and 4.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        need("arp", b, LEN)?;
        if be16(b, 0) != 1 || be16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(WireError::Malformed {
                what: "arp",
                detail: "not Ethernet/IPv4 (htype 1, ptype 0x0800, lengths 6 and 4)",
            });
        }
        Ok(Packet(buf))
    }
    pub fn operation(&self) -> u16 {
        be16(self.0.as_ref(), 6)
    }
    pub fn sender_mac(&self) -> [u8; 6] {
        self.0.as_ref()[8..14].try_into().expect("6 bytes")
    }
    pub fn sender_ip(&self) -> Ipv4Addr {
        let b = self.0.as_ref();
        Ipv4Addr::new(b[14], b[15], b[16], b[17])
    }
    pub fn target_mac(&self) -> [u8; 6] {
        self.0.as_ref()[18..24].try_into().expect("6 bytes")
    }
    pub fn target_ip(&self) -> Ipv4Addr {
        let b = self.0.as_ref();
        Ipv4Addr::new(b[24], b[25], b[26], b[27])
    }
}

/// The parts of an ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: u16,
    pub sender_mac: [u8; 6],
    pub sender_ip: Ipv4Addr,
    pub target_mac: [u8; 6],
    pub target_ip: Ipv4Addr,
}

impl Repr {
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Repr {
        Repr {
            operation: p.operation(),
            sender_mac: p.sender_mac(),
            sender_ip: p.sender_ip(),
            target_mac: p.target_mac(),
            target_ip: p.target_ip(),
        }
    }

    /// Writes the packet into the first [`LEN`] bytes of `out`.
    pub fn emit(&self, out: &mut [u8]) {
        out[0..2].copy_from_slice(&1u16.to_be_bytes());
        out[2..4].copy_from_slice(&0x0800u16.to_be_bytes());
        out[4] = 6;
        out[5] = 4;
        out[6..8].copy_from_slice(&self.operation.to_be_bytes());
        out[8..14].copy_from_slice(&self.sender_mac);
        out[14..18].copy_from_slice(&self.sender_ip.octets());
        out[18..24].copy_from_slice(&self.target_mac);
        out[24..28].copy_from_slice(&self.target_ip.octets());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_fixture_round_trips() {
        // Who has 10.0.0.1? Tell 10.0.0.2 (02:00:00:00:00:02), as captured.
        let req = [
            0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x01, 2, 0, 0, 0, 0, 2, 10, 0, 0, 2, 0, 0, 0, 0, 0,
            0, 10, 0, 0, 1,
        ];
        let p = Packet::new_checked(&req[..]).unwrap();
        let r = Repr::parse(&p);
        assert_eq!(r.operation, OP_REQUEST);
        assert_eq!(r.sender_mac, [2, 0, 0, 0, 0, 2]);
        assert_eq!(r.sender_ip, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!(r.target_ip, Ipv4Addr::new(10, 0, 0, 1));
        let mut out = [0u8; LEN];
        r.emit(&mut out);
        assert_eq!(out, req);
    }

    #[test]
    fn rejects_other_hardware_and_short() {
        let mut b = [0u8; LEN];
        Repr {
            operation: OP_REPLY,
            sender_mac: [1; 6],
            sender_ip: Ipv4Addr::LOCALHOST,
            target_mac: [2; 6],
            target_ip: Ipv4Addr::LOCALHOST,
        }
        .emit(&mut b);
        assert!(Packet::new_checked(&b[..]).is_ok());
        assert!(Packet::new_checked(&b[..27]).is_err());
        b[5] = 16;
        assert!(Packet::new_checked(&b[..]).is_err());
    }
}
