//! RTP fixed header view (RFC 3550 section 5.1).

use super::{be16, be32, need, WireError};

pub const HEADER_LEN: usize = 12;

/// A view of an RTP packet; `new_checked` requires version 2 and that the
/// CSRC list, extension and padding fit the buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>>(T);

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        need("rtp", buf.as_ref(), HEADER_LEN)?;
        let p = Packet(buf);
        let b = p.0.as_ref();
        if b[0] >> 6 != 2 {
            return Err(WireError::Malformed {
                what: "rtp",
                detail: "version is not 2",
            });
        }
        if p.is_rtcp() {
            return Err(WireError::Malformed {
                what: "rtp",
                detail: "payload type 72-76 is RTCP (RFC 5761)",
            });
        }
        let mut end = HEADER_LEN + 4 * (b[0] & 0x0f) as usize;
        need("rtp csrc list", b, end)?;
        if b[0] & 0x10 != 0 {
            need("rtp extension", b, end + 4)?;
            end += 4 + 4 * be16(b, end + 2) as usize;
            need("rtp extension", b, end)?;
        }
        if b[0] & 0x20 != 0 {
            let pad = *b.last().expect("non-empty") as usize;
            if pad == 0 || end + pad > b.len() {
                return Err(WireError::Malformed {
                    what: "rtp",
                    detail: "padding count is zero or beyond the payload",
                });
            }
        }
        Ok(p)
    }
    pub fn marker(&self) -> bool {
        self.0.as_ref()[1] & 0x80 != 0
    }
    pub fn payload_type(&self) -> u8 {
        self.0.as_ref()[1] & 0x7f
    }
    pub fn sequence(&self) -> u16 {
        be16(self.0.as_ref(), 2)
    }
    pub fn timestamp(&self) -> u32 {
        be32(self.0.as_ref(), 4)
    }
    pub fn ssrc(&self) -> u32 {
        be32(self.0.as_ref(), 8)
    }
    /// The payload: after the CSRC list and extension, before any padding
    /// (`new_checked` made sure they fit).
    pub fn payload(&self) -> &[u8] {
        let b = self.0.as_ref();
        let mut start = HEADER_LEN + 4 * (b[0] & 0x0f) as usize;
        if b[0] & 0x10 != 0 {
            start += 4 + 4 * be16(b, start + 2) as usize;
        }
        let pad = if b[0] & 0x20 != 0 {
            b[b.len() - 1] as usize
        } else {
            0
        };
        &b[start..b.len() - pad]
    }
    fn is_rtcp(&self) -> bool {
        (72..=76).contains(&self.payload_type())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pcmu_fixture() {
        // V=2, M=1, PT=0, seq 0x1234, ts 0x000000a0, ssrc 0xdeadbeef, 160 bytes of payload.
        let mut p = vec![
            0x80, 0x80, 0x12, 0x34, 0, 0, 0, 0xa0, 0xde, 0xad, 0xbe, 0xef,
        ];
        p.extend_from_slice(&[0xff; 160]);
        let v = Packet::new_checked(&p[..]).unwrap();
        assert!(v.marker());
        assert_eq!(
            (v.payload_type(), v.sequence(), v.timestamp(), v.ssrc()),
            (0, 0x1234, 0xa0, 0xdeadbeef)
        );
        assert_eq!(v.payload(), &[0xff; 160][..]);
        let mut ext = vec![0xb1, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        ext.extend_from_slice(&[0, 0, 0, 9]); // one CSRC
        ext.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // one extension word
        ext.extend_from_slice(&[7, 7, 0, 2]); // payload 7 7, two bytes of padding
        assert_eq!(
            Packet::new_checked(&ext[..]).unwrap().payload(),
            &[7, 7][..]
        );
    }

    #[test]
    fn rejects_bad_version_rtcp_and_overruns() {
        let base = [0x80u8, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1];
        let mut v1 = base;
        v1[0] = 0x40;
        assert!(Packet::new_checked(&v1[..]).is_err());
        let mut rtcp = base;
        rtcp[1] = 200 & 0x7f | 0x80; // SR
        assert!(Packet::new_checked(&rtcp[..]).is_err());
        let mut csrc = base;
        csrc[0] = 0x82; // two CSRCs, none present
        assert!(Packet::new_checked(&csrc[..]).is_err());
        let mut pad = base.to_vec();
        pad[0] = 0xa0;
        pad.push(9); // padding count 9 > available
        assert!(Packet::new_checked(&pad[..]).is_err());
        let mut ext = base.to_vec();
        ext[0] = 0x90;
        ext.extend_from_slice(&[0xbe, 0xde, 0, 2, 1, 2, 3, 4]); // says 2 words, has 1
        assert!(Packet::new_checked(&ext[..]).is_err());
    }
}
