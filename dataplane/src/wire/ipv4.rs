//! IPv4 header view.

use super::{be16, checksum, need, WireError};
use std::net::Ipv4Addr;

pub const MIN_HEADER_LEN: usize = 20;
pub const PROTO_UDP: u8 = 17;

/// A view of an IPv4 packet; `new_checked` validates version, header length
/// and total length against the buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        need("ipv4", b, MIN_HEADER_LEN)?;
        let p = Packet(buf);
        if p.version() != 4 {
            return Err(WireError::Malformed {
                what: "ipv4",
                detail: "version is not 4",
            });
        }
        if p.header_len() < MIN_HEADER_LEN {
            return Err(WireError::Malformed {
                what: "ipv4",
                detail: "IHL below 5",
            });
        }
        let total = p.total_len() as usize;
        if total < p.header_len() || total > p.0.as_ref().len() {
            return Err(WireError::Malformed {
                what: "ipv4",
                detail: "total length outside the buffer or below the header length",
            });
        }
        Ok(p)
    }
    pub fn version(&self) -> u8 {
        self.0.as_ref()[0] >> 4
    }
    pub fn header_len(&self) -> usize {
        ((self.0.as_ref()[0] & 0x0f) as usize) * 4
    }
    pub fn total_len(&self) -> u16 {
        be16(self.0.as_ref(), 2)
    }
    pub fn ttl(&self) -> u8 {
        self.0.as_ref()[8]
    }
    pub fn protocol(&self) -> u8 {
        self.0.as_ref()[9]
    }
    pub fn header_checksum(&self) -> u16 {
        be16(self.0.as_ref(), 10)
    }
    pub fn source(&self) -> Ipv4Addr {
        let b = self.0.as_ref();
        Ipv4Addr::new(b[12], b[13], b[14], b[15])
    }
    pub fn destination(&self) -> Ipv4Addr {
        let b = self.0.as_ref();
        Ipv4Addr::new(b[16], b[17], b[18], b[19])
    }
    /// Whether the header checksum verifies.
    pub fn checksum_ok(&self) -> bool {
        checksum::verify(&self.0.as_ref()[..self.header_len()])
    }
    /// The bytes after the header, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.0.as_ref()[self.header_len()..self.total_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes the source address, updating the header checksum incrementally.
    pub fn set_source(&mut self, a: Ipv4Addr) {
        self.replace_checked(12, a.octets());
    }
    /// Writes the destination address, updating the header checksum incrementally.
    pub fn set_destination(&mut self, a: Ipv4Addr) {
        self.replace_checked(16, a.octets());
    }
    /// Writes the total length, updating the header checksum incrementally.
    pub fn set_total_len(&mut self, len: u16) {
        self.replace_checked(2, len.to_be_bytes());
    }
    fn replace_checked<const N: usize>(&mut self, at: usize, new: [u8; N]) {
        let b = self.0.as_mut();
        let c = checksum::update(be16(b, 10), &b[at..at + N], &new);
        b[at..at + N].copy_from_slice(&new);
        b[10..12].copy_from_slice(&c.to_be_bytes());
    }
    /// The bytes after the header, up to the total length.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len() as usize);
        &mut self.0.as_mut()[h..t]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 10.0.1.2 -> 10.0.1.1, UDP, total 28 (empty UDP), checksum valid.
    const PKT: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x12, 0x9b, 10, 0, 1, 2, 10, 0,
        1, 1, 0x13, 0x88, 0x75, 0x30, 0x00, 0x08, 0x00, 0x00,
    ];

    #[test]
    fn parses_fixture() {
        let p = Packet::new_checked(&PKT[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.protocol(), PROTO_UDP);
        assert_eq!(p.ttl(), 64);
        assert_eq!(p.source(), Ipv4Addr::new(10, 0, 1, 2));
        assert_eq!(p.destination(), Ipv4Addr::new(10, 0, 1, 1));
        assert_eq!(p.payload().len(), 8);
        assert!(p.checksum_ok(), "checksum {:#06x}", p.header_checksum());
    }

    #[test]
    fn detects_bad_checksum_and_bad_lengths() {
        let mut bad = PKT;
        bad[11] ^= 1;
        assert!(!Packet::new_checked(&bad[..]).unwrap().checksum_ok());
        let mut long = PKT;
        long[3] = 0xff;
        assert!(Packet::new_checked(&long[..]).is_err());
        let mut v6 = PKT;
        v6[0] = 0x65;
        assert!(Packet::new_checked(&v6[..]).is_err());
        assert!(Packet::new_checked(&PKT[..19]).is_err());
    }
}
