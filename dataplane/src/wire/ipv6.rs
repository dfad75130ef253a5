//! IPv6 fixed header view (extension headers are not followed).

use super::{be16, need, WireError};
use std::net::Ipv6Addr;

pub const HEADER_LEN: usize = 40;

/// A view of an IPv6 packet; `new_checked` validates the version and the
/// payload length against the buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        need("ipv6", buf.as_ref(), HEADER_LEN)?;
        let p = Packet(buf);
        if p.0.as_ref()[0] >> 4 != 6 {
            return Err(WireError::Malformed {
                what: "ipv6",
                detail: "version is not 6",
            });
        }
        if HEADER_LEN + p.payload_len() as usize > p.0.as_ref().len() {
            return Err(WireError::Malformed {
                what: "ipv6",
                detail: "payload length beyond the buffer",
            });
        }
        Ok(p)
    }
    pub fn payload_len(&self) -> u16 {
        be16(self.0.as_ref(), 4)
    }
    pub fn next_header(&self) -> u8 {
        self.0.as_ref()[6]
    }
    pub fn hop_limit(&self) -> u8 {
        self.0.as_ref()[7]
    }
    pub fn source(&self) -> Ipv6Addr {
        let a: [u8; 16] = self.0.as_ref()[8..24].try_into().expect("16 bytes");
        a.into()
    }
    pub fn destination(&self) -> Ipv6Addr {
        let a: [u8; 16] = self.0.as_ref()[24..40].try_into().expect("16 bytes");
        a.into()
    }
    pub fn payload(&self) -> &[u8] {
        &self.0.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    pub fn set_source(&mut self, a: Ipv6Addr) {
        self.0.as_mut()[8..24].copy_from_slice(&a.octets());
    }
    pub fn set_destination(&mut self, a: Ipv6Addr) {
        self.0.as_mut()[24..40].copy_from_slice(&a.octets());
    }
    pub fn set_payload_len(&mut self, len: u16) {
        self.0.as_mut()[4..6].copy_from_slice(&len.to_be_bytes());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let n = self.payload_len() as usize;
        &mut self.0.as_mut()[HEADER_LEN..HEADER_LEN + n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixture() {
        let mut p = vec![0x60, 0, 0, 0, 0x00, 0x08, 17, 64];
        p.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&[0x13, 0x88, 0x13, 0x89, 0, 8, 0, 0]);
        let v = Packet::new_checked(&p[..]).unwrap();
        assert_eq!(v.next_header(), 17);
        assert_eq!(v.hop_limit(), 64);
        assert_eq!(v.source(), "fd00::1".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v.destination(), "fd00::2".parse::<Ipv6Addr>().unwrap());
        assert_eq!(v.payload().len(), 8);
        p[5] = 9;
        assert!(Packet::new_checked(&p[..]).is_err());
    }
}
