//! `dtmf_send`: an originating stage that sends one DTMF digit as RFC 4733
//! telephone-events: one packet per ptime, all with the timestamp of the
//! event's start and a growing duration, the first with the marker bit,
//! then the final duration three times with the end bit (section 2.5.1.4),
//! then nothing more.

use super::dtmf::code_of;
use super::rtp_out::{RtpOut, HEADER};

/// End packets sent, the first and its two retransmissions.
const ENDS: u8 = 3;

#[derive(Debug)]
pub struct DtmfSend {
    code: u8,
    volume: u8,
    /// The event's length in samples (8 kHz).
    total: u16,
    ptime_ms: u32,
    out: RtpOut,
    sent: u16,
    ends: u8,
}

impl DtmfSend {
    /// `digit` was checked by the spec (`0`-`9`, `*`, `#`, `A`-`D`);
    /// `duration_ms` is at most 8000 so the duration fits 16 bits.
    pub fn new(
        digit: char,
        duration_ms: u32,
        volume: u8,
        payload_type: u8,
        ptime_ms: u32,
        seed: u32,
    ) -> Self {
        DtmfSend {
            code: code_of(digit).unwrap_or(0),
            volume: volume & 0x3f,
            total: (duration_ms * 8).min(u32::from(u16::MAX)) as u16,
            ptime_ms,
            out: RtpOut::new(payload_type, seed),
            sent: 0,
            ends: 0,
        }
    }

    pub fn interval_ns(&self) -> u64 {
        u64::from(self.ptime_ms) * 1_000_000
    }

    pub fn originate(&mut self, buf: &mut [u8]) -> Option<usize> {
        if self.ends == ENDS {
            return None;
        }
        let out = buf.get_mut(..HEADER + 4)?;
        let first = self.sent == 0 && self.ends == 0;
        let step = (8 * self.ptime_ms) as u16;
        self.sent = self.sent.saturating_add(step).min(self.total);
        let end = self.sent == self.total;
        if end {
            self.ends += 1;
        }
        self.out.header(out, first);
        out[HEADER] = self.code;
        out[HEADER + 1] = if end { 0x80 } else { 0 } | self.volume;
        out[HEADER + 2..].copy_from_slice(&self.sent.to_be_bytes());
        if self.ends == ENDS {
            self.out.advance(u32::from(self.total));
        }
        Some(out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::super::dtmf::DtmfDetector;
    use super::*;
    use crate::wire::rtp;

    #[test]
    fn a_digit_is_sent_with_growing_durations_and_three_ends() {
        let mut s = DtmfSend::new('9', 100, 12, 101, 20, 3);
        let mut buf = [0u8; 64];
        let packets: Vec<Vec<u8>> =
            std::iter::from_fn(|| s.originate(&mut buf).map(|n| buf[..n].to_vec()))
                .take(50)
                .collect();
        assert_eq!(
            packets.len(),
            5 + 2,
            "100 ms in 20 ms steps, the last of them an end sent thrice"
        );
        let heads: Vec<_> = packets
            .iter()
            .map(|p| rtp::Packet::new_checked(&p[..]).unwrap())
            .collect();
        assert!(heads[0].marker() && heads[1..].iter().all(|h| !h.marker()));
        assert!(heads
            .iter()
            .all(|h| h.timestamp() == heads[0].timestamp() && h.payload_type() == 101));
        let durations: Vec<u16> = packets
            .iter()
            .map(|p| u16::from_be_bytes([p[14], p[15]]))
            .collect();
        assert_eq!(durations, vec![160, 320, 480, 640, 800, 800, 800]);
        let ends = packets.iter().filter(|p| p[13] & 0x80 != 0).count();
        assert_eq!(ends, 3);
        // What the detector makes of it: one '9' of 100 ms at volume 12.
        let mut d = DtmfDetector::default();
        for (h, p) in heads.iter().zip(&packets) {
            d.on_event(h.timestamp(), &p[12..]);
        }
        let got = d.poll().unwrap();
        assert_eq!((got.digit, got.duration_ms, got.volume), ('9', 100, 12));
        assert!(d.poll().is_none());
    }
}
