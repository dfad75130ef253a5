//! RTCP common header view (RFC 3550 section 6.4), enough to recognise and
//! count RTCP on a flow, read the sender's SSRC, an SR's sender info and
//! the first report block of an SR or RR.

use super::{be16, be32, need, WireError};

pub const SR: u8 = 200;
pub const RR: u8 = 201;
pub const BYE: u8 = 203;
/// Most packets of a compound [`Packet::is_plain`] walks.
pub const MAX_PARTS: usize = 4;

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
    /// Whether the buffer is plain RTCP: its compound's packets (at most
    /// [`MAX_PARTS`]) end exactly at the buffer's end. SRTCP appends an
    /// index and an authentication tag (and encrypts the reports), so it is not.
    pub fn is_plain(&self) -> bool {
        let b = self.0.as_ref();
        let mut at = 0;
        for _ in 0..MAX_PARTS {
            if b.len() < at + 4 || b[at] >> 6 != 2 {
                return false;
            }
            at += (be16(b, at + 2) as usize + 1) * 4;
            if at >= b.len() {
                return at == b.len();
            }
        }
        false
    }
    /// An SR's NTP timestamp, middle 32 bits (what a report's LSR names).
    pub fn sr_ntp_middle(&self) -> Option<u32> {
        let b = self.0.as_ref();
        (self.packet_type() == SR && b.len() >= 28).then(|| be32(b, 10))
    }
    /// An SR's sender info, if the buffer holds it.
    pub fn sender_info(&self) -> Option<SenderInfo> {
        let b = self.0.as_ref();
        (self.packet_type() == SR && b.len() >= 28).then(|| SenderInfo {
            ntp_msw: be32(b, 8),
            ntp_lsw: be32(b, 12),
            rtp_ts: be32(b, 16),
            packets: be32(b, 20),
            octets: be32(b, 24),
        })
    }
    /// The first report block of an SR or RR, if it has one in the buffer.
    pub fn first_report_block(&self) -> Option<ReportBlock> {
        let at = match self.packet_type() {
            SR => 28,
            RR => 8,
            _ => return None,
        };
        let b = self.0.as_ref();
        (self.count() > 0 && b.len() >= at + 24).then(|| ReportBlock {
            ssrc: be32(b, at),
            lost: be32(b, at + 4),
            ext_seq: be32(b, at + 8),
            jitter: be32(b, at + 12),
            lsr: be32(b, at + 16),
            dlsr: be32(b, at + 20),
        })
    }
}

/// An SR's sender info (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SenderInfo {
    /// NTP timestamp: seconds, and fraction of a second in 1/2^32.
    pub ntp_msw: u32,
    pub ntp_lsw: u32,
    pub rtp_ts: u32,
    /// Packets and payload octets sent since the stream started.
    pub packets: u32,
    pub octets: u32,
}

/// A reception report block's figures (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReportBlock {
    /// The source the block reports on.
    pub ssrc: u32,
    /// Fraction lost (high 8 bits) and cumulative packets lost (low 24, signed).
    pub lost: u32,
    /// Extended highest sequence number received.
    pub ext_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// Middle 32 bits of the NTP timestamp of the last SR received (0: none).
    pub lsr: u32,
    /// Delay since that SR, in 1/65536 s.
    pub dlsr: u32,
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
        assert_eq!(p.first_report_block(), None);
        assert_eq!(p.sr_ntp_middle(), None);
    }

    #[test]
    fn reads_an_sr_timestamp_and_its_report_block() {
        let mut sr = vec![0x81, SR, 0, 12, 0, 0, 0, 9];
        sr.extend([0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88]); // NTP
        sr.extend([0, 0, 0, 5, 0, 0, 0, 6, 0, 0, 3, 0]); // RTP timestamp, packet and octet counts
        sr.extend([0, 0, 0, 7, 0x40, 0xff, 0xff, 0xfe, 0, 0, 1, 0]); // SSRC, lost, ext seq
        sr.extend([0, 0, 0, 80, 0x33, 0x44, 0x55, 0x66, 0, 1, 0, 0]); // jitter, LSR, DLSR
        let p = Packet::new_checked(&sr[..]).unwrap();
        assert!(p.is_plain());
        assert_eq!(p.sr_ntp_middle(), Some(0x3344_5566));
        // With an SDES after it, still plain; with SRTCP's index and tag, not.
        let mut compound = sr.clone();
        compound.extend([0x81, 202, 0, 1, 0, 0, 0, 9]);
        assert!(Packet::new_checked(&compound[..]).unwrap().is_plain());
        let mut srtcp = sr.clone();
        srtcp.extend([0x80, 0, 0, 1]);
        srtcp.extend([0xab; 10]);
        assert!(!Packet::new_checked(&srtcp[..]).unwrap().is_plain());
        let b = p.first_report_block().unwrap();
        assert_eq!(
            (b.ssrc, b.lost, b.ext_seq, b.jitter, b.lsr, b.dlsr),
            (7, 0x40ff_fffe, 256, 80, 0x3344_5566, 0x1_0000)
        );
        let s = p.sender_info().unwrap();
        assert_eq!(
            (s.ntp_msw, s.ntp_lsw, s.rtp_ts, s.packets, s.octets),
            (0x1122_3344, 0x5566_7788, 5, 6, 768)
        );
    }
}
