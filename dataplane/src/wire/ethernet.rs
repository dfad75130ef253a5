//! Ethernet II frame view (no VLAN tags: tagged frames are not media for us).

use super::{be16, need, WireError};

pub const HEADER_LEN: usize = 14;
pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// A view of an Ethernet frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Frame<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        need("ethernet", buf.as_ref(), HEADER_LEN)?;
        Ok(Frame(buf))
    }
    pub fn destination(&self) -> [u8; 6] {
        self.0.as_ref()[0..6].try_into().expect("6 bytes")
    }
    pub fn source(&self) -> [u8; 6] {
        self.0.as_ref()[6..12].try_into().expect("6 bytes")
    }
    pub fn ethertype(&self) -> u16 {
        be16(self.0.as_ref(), 12)
    }
    pub fn payload(&self) -> &[u8] {
        &self.0.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    pub fn set_destination(&mut self, mac: [u8; 6]) {
        self.0.as_mut()[0..6].copy_from_slice(&mac);
    }
    pub fn set_source(&mut self, mac: [u8; 6]) {
        self.0.as_mut()[6..12].copy_from_slice(&mac);
    }
    pub fn set_ethertype(&mut self, t: u16) {
        self.0.as_mut()[12..14].copy_from_slice(&t.to_be_bytes());
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.0.as_mut()[HEADER_LEN..]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        let f = [
            0x02, 0, 0, 0, 0, 0xb, 0x02, 0, 0, 0, 0, 0xa, 0x08, 0x00, 0x45,
        ];
        let e = Frame::new_checked(&f[..]).unwrap();
        assert_eq!(e.destination(), [2, 0, 0, 0, 0, 0xb]);
        assert_eq!(e.source(), [2, 0, 0, 0, 0, 0xa]);
        assert_eq!(e.ethertype(), ETHERTYPE_IPV4);
        assert_eq!(e.payload(), &[0x45]);
    }

    #[test]
    fn rejects_short() {
        assert!(matches!(
            Frame::new_checked(&[0u8; 13][..]),
            Err(WireError::Truncated { need: 14, .. })
        ));
    }
}
