//! UDP header view.

use super::{be16, need, WireError};

pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram; `new_checked` validates the length field.
#[derive(Debug, Clone)]
pub struct Datagram<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Datagram<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        need("udp", buf.as_ref(), HEADER_LEN)?;
        let d = Datagram(buf);
        let len = d.len() as usize;
        if len < HEADER_LEN || len > d.0.as_ref().len() {
            return Err(WireError::Malformed {
                what: "udp",
                detail: "length field outside the datagram",
            });
        }
        Ok(d)
    }
    pub fn source_port(&self) -> u16 {
        be16(self.0.as_ref(), 0)
    }
    pub fn destination_port(&self) -> u16 {
        be16(self.0.as_ref(), 2)
    }
    /// The length field (header plus payload).
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u16 {
        be16(self.0.as_ref(), 4)
    }
    pub fn checksum(&self) -> u16 {
        be16(self.0.as_ref(), 6)
    }
    /// Header and payload, as covered by the checksum.
    pub fn segment(&self) -> &[u8] {
        &self.0.as_ref()[..self.len() as usize]
    }
    pub fn payload(&self) -> &[u8] {
        &self.0.as_ref()[HEADER_LEN..self.len() as usize]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Datagram<T> {
    /// A view of `buf` whose length field is about to be written (a payload
    /// whose length changed): the caller sets it before reading through it.
    pub fn new_unchecked(buf: T) -> Self {
        Datagram(buf)
    }
    pub fn set_source_port(&mut self, p: u16) {
        self.0.as_mut()[0..2].copy_from_slice(&p.to_be_bytes());
    }
    pub fn set_destination_port(&mut self, p: u16) {
        self.0.as_mut()[2..4].copy_from_slice(&p.to_be_bytes());
    }
    pub fn set_len(&mut self, len: u16) {
        self.0.as_mut()[4..6].copy_from_slice(&len.to_be_bytes());
    }
    pub fn set_checksum(&mut self, c: u16) {
        self.0.as_mut()[6..8].copy_from_slice(&c.to_be_bytes());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let n = self.len() as usize;
        &mut self.0.as_mut()[HEADER_LEN..n]
    }
    /// Header and payload, as covered by the checksum.
    pub fn segment_mut(&mut self) -> &mut [u8] {
        let n = self.len() as usize;
        &mut self.0.as_mut()[..n]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::checksum;
    use std::net::Ipv4Addr;

    #[test]
    fn parses_and_verifies_fixture() {
        // 10.0.1.2:5000 -> 10.0.1.1:30000, payload "hi", checksum from a capture.
        let d = [0x13, 0x88, 0x75, 0x30, 0x00, 0x0a, 0x00, 0x00, b'h', b'i'];
        let mut seg = d;
        let c = checksum::udp(
            Ipv4Addr::new(10, 0, 1, 2).into(),
            Ipv4Addr::new(10, 0, 1, 1).into(),
            &seg,
        );
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        let v = Datagram::new_checked(&seg[..]).unwrap();
        assert_eq!(
            (v.source_port(), v.destination_port(), v.len()),
            (5000, 30000, 10)
        );
        assert_eq!(v.payload(), b"hi");
        assert!(checksum::udp_verifies(
            Ipv4Addr::new(10, 0, 1, 2).into(),
            Ipv4Addr::new(10, 0, 1, 1).into(),
            v.segment()
        ));
        let mut bad = seg;
        bad[4..6].copy_from_slice(&20u16.to_be_bytes());
        assert!(Datagram::new_checked(&bad[..]).is_err());
    }
}
