//! RTCP common header view (RFC 3550 section 6.4), enough to recognise and
//! count RTCP on a flow and read the sender's SSRC.

use super::{be16, be32, need, WireError};

pub const SR: u8 = 200;
pub const RR: u8 = 201;
pub const BYE: u8 = 203;

/// A view of the first RTCP packet of a compound packet.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        need("rtcp", buf.as_ref(), 8)?;
        let p = Packet(buf);
        let b = p.0.as_ref();
        if b[0] >> 6 != 2 {
            return Err(WireError::Malformed {
                what: "rtcp",
                detail: "version is not 2",
            });
        }
        if !(192..=223).contains(&p.packet_type()) {
            return Err(WireError::Malformed {
                what: "rtcp",
                detail: "packet type outside 192-223",
            });
        }
        if p.len_bytes() > b.len() {
            return Err(WireError::Malformed {
                what: "rtcp",
                detail: "length field beyond the buffer",
            });
        }
        Ok(p)
    }
    pub fn packet_type(&self) -> u8 {
        self.0.as_ref()[1]
    }
    /// Reception report count (or subtype) field.
    pub fn count(&self) -> u8 {
        self.0.as_ref()[0] & 0x1f
    }
    /// Length of this RTCP packet in bytes, from its length field.
    pub fn len_bytes(&self) -> usize {
        (be16(self.0.as_ref(), 2) as usize + 1) * 4
    }
    pub fn sender_ssrc(&self) -> u32 {
        be32(self.0.as_ref(), 4)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_receiver_report() {
        // RR with no report blocks: length 1 (8 bytes), SSRC 0x01020304.
        let rr = [0x80, RR, 0x00, 0x01, 1, 2, 3, 4];
        let p = Packet::new_checked(&rr[..]).unwrap();
        assert_eq!(
            (p.packet_type(), p.count(), p.len_bytes(), p.sender_ssrc()),
            (RR, 0, 8, 0x01020304)
        );
        let mut long = rr;
        long[3] = 5;
        assert!(Packet::new_checked(&long[..]).is_err());
        let mut rtp = rr;
        rtp[1] = 0;
        assert!(Packet::new_checked(&rtp[..]).is_err());
    }
}
