//! `rtcp_demux`: for a peer that does not multiplex RTCP with RTP (no
//! `a=rtcp-mux`), RTCP arriving on the muxed port leaves towards the peer's
//! RTCP port (the destination's port + 1), from the relay's port + 1.
//! RFC 5761 section 4: RTCP packet types 192-223 read as RTP payload types
//! 64-95 with the marker bit set.

use crate::pipeline::{Payload, Verdict};

#[derive(Debug)]
pub struct RtcpDemux;

/// Whether a packet on a muxed port is RTCP rather than RTP.
pub fn is_rtcp(b: &[u8]) -> bool {
    b.len() >= 8 && b[0] >> 6 == 2 && (64..=95).contains(&(b[1] & 0x7f))
}

impl RtcpDemux {
    pub fn process(&mut self, p: &mut Payload) -> Verdict {
        if is_rtcp(p.bytes()) {
            Verdict::ForwardRtcp
        } else {
            Verdict::Forward
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_rtcp_from_rtp() {
        let rr = [0x81, 201, 0, 1, 0, 0, 0, 1];
        let sr = [0x80, 200, 0, 6, 0, 0, 0, 1];
        let pcmu = [0x80, 0, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        let pcmu_marker = [0x80, 0x80, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        let dynamic = [0x80, 96, 0, 1, 0, 0, 0, 160, 1, 2, 3, 4];
        assert!(is_rtcp(&rr) && is_rtcp(&sr));
        assert!(!is_rtcp(&pcmu) && !is_rtcp(&pcmu_marker) && !is_rtcp(&dynamic));
        assert!(!is_rtcp(&rr[..7]), "shorter than an RTCP header");
        assert!(!is_rtcp(&[0x40, 201, 0, 1, 0, 0, 0, 1]), "version 1");
    }
}
