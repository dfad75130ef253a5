//! `silence`: an originating endpoint stage. The peer's packets are consumed
//! and a G.711 silence packet (RFC 3551: PCMU 0xFF, PCMA 0xD5) leaves every
//! ptime, driven by the worker's timer wheel: media towards a leg whose other
//! side is on hold or gone, and the model for the prompt player and tone
//! generator.

/// RTP fixed header length.
const HEADER: usize = 12;

#[derive(Debug)]
pub struct Silence {
    payload_type: u8,
    ptime_ms: u32,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
}

impl Silence {
    /// `seed` gives the stream its SSRC and starting sequence/timestamp.
    pub fn new(payload_type: u8, ptime_ms: u32, seed: u32) -> Self {
        let mixed = seed.wrapping_mul(0x9e37_79b9).rotate_left(13) ^ 0x5bd1_e995;
        Silence {
            payload_type,
            ptime_ms,
            ssrc: mixed,
            sequence: (mixed >> 16) as u16,
            timestamp: mixed.rotate_left(7),
        }
    }

    pub fn interval_ns(&self) -> u64 {
        u64::from(self.ptime_ms) * 1_000_000
    }

    /// Samples per packet at G.711's 8 kHz.
    fn samples(&self) -> usize {
        8 * self.ptime_ms as usize
    }

    pub fn originate(&mut self, buf: &mut [u8]) -> Option<usize> {
        let len = HEADER + self.samples();
        let out = buf.get_mut(..len)?;
        out[0] = 0x80;
        out[1] = self.payload_type;
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        let fill = if self.payload_type == 8 { 0xd5 } else { 0xff };
        out[HEADER..].fill(fill);
        self.sequence = self.sequence.wrapping_add(1);
        self.timestamp = self.timestamp.wrapping_add(self.samples() as u32);
        Some(len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::rtp;

    #[test]
    fn originates_a_continuous_g711_stream() {
        let mut s = Silence::new(8, 20, 7);
        let mut buf = [0u8; 400];
        let n = s.originate(&mut buf).unwrap();
        assert_eq!(n, 172);
        let first = rtp::Packet::new_checked(&buf[..n]).unwrap();
        let (seq, ts, ssrc) = (first.sequence(), first.timestamp(), first.ssrc());
        assert_eq!(first.payload_type(), 8);
        assert!(buf[12..n].iter().all(|&b| b == 0xd5));
        s.originate(&mut buf).unwrap();
        let next = rtp::Packet::new_checked(&buf[..n]).unwrap();
        assert_eq!(next.sequence(), seq.wrapping_add(1));
        assert_eq!(next.timestamp(), ts.wrapping_add(160));
        assert_eq!(next.ssrc(), ssrc);
        assert_eq!(s.originate(&mut buf[..100]), None, "no room, no packet");
    }
}
