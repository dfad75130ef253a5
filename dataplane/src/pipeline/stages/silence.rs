//! `silence`: an originating endpoint stage. The peer's packets are consumed
//! and a G.711 silence packet (RFC 3551: PCMU 0xFF, PCMA 0xD5) leaves every
//! ptime, driven by the worker's timer wheel: media towards a leg whose other
//! side is on hold or gone, and the model for the prompt player and tone
//! generator.

use super::rtp_out::{RtpOut, HEADER};

#[derive(Debug)]
pub struct Silence {
    fill: u8,
    ptime_ms: u32,
    out: RtpOut,
}

impl Silence {
    /// `seed` gives the stream its SSRC and starting sequence/timestamp.
    pub fn new(payload_type: u8, ptime_ms: u32, seed: u32) -> Self {
        Silence {
            fill: if payload_type == 8 { 0xd5 } else { 0xff },
            ptime_ms,
            out: RtpOut::seeded(payload_type, seed),
        }
    }

    pub fn interval_ns(&self) -> u64 {
        u64::from(self.ptime_ms) * 1_000_000
    }

    pub fn originate(&mut self, buf: &mut [u8]) -> Option<usize> {
        let samples = 8 * self.ptime_ms as usize;
        let out = buf.get_mut(..HEADER + samples)?;
        self.out.header(out, false);
        out[HEADER..].fill(self.fill);
        self.out.advance(samples as u32);
        Some(out.len())
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
