//! `dtmf_send`: an originating stage that sends one DTMF digit as RFC 4733
//! telephone-events: one packet per ptime, all with the timestamp of the
//! event's start and a growing duration, the first with the marker bit,
//! then the final duration three times with the end bit (section 2.5.1.4),
//! then nothing more.

use super::dtmf::code_of;
use super::rtp_out::{RtpOut, HEADER};
use super::{check_event_pt, check_ptime, default_event_pt, default_ptime};
use serde::{Deserialize, Serialize};

/// What a `dtmf_send` stage sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DigitSpec {
    /// `0`-`9`, `*`, `#`, `A`-`D`.
    pub digit: char,
    #[serde(default = "default_digit_ms")]
    pub duration_ms: u32,
    /// 0 to 63 (-dBm0).
    #[serde(default = "default_volume")]
    pub volume: u8,
    #[serde(default = "default_event_pt")]
    pub payload_type: u8,
    #[serde(default = "default_ptime")]
    pub ptime_ms: u32,
}

fn default_digit_ms() -> u32 {
    100
}

fn default_volume() -> u8 {
    10
}

impl DigitSpec {
    /// What is wrong with it, naming the field; the duration must fit
    /// RFC 4733's 16 bits at 8 kHz.
    pub fn check(&self) -> Result<(), String> {
        if code_of(self.digit).is_none() {
            return Err(format!(
                "dtmf_send: `digit` {:?} is not 0-9, *, # or A-D",
                self.digit
            ));
        }
        if self.duration_ms == 0 || self.duration_ms > 8000 {
            return Err(format!(
                "dtmf_send: `duration_ms` {} must be 1 to 8000",
                self.duration_ms
            ));
        }
        if self.volume > 63 {
            return Err(format!("dtmf_send: `volume` {} is over 63", self.volume));
        }
        check_event_pt("dtmf_send", self.payload_type)?;
        check_ptime("dtmf_send", self.ptime_ms)
    }
}

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
    /// A sender of `spec` (checked).
    pub fn new(spec: &DigitSpec, seed: u32) -> Self {
        DtmfSend {
            code: code_of(spec.digit).unwrap_or(0),
            volume: spec.volume & 0x3f,
            total: (spec.duration_ms * 8).min(u32::from(u16::MAX)) as u16,
            ptime_ms: spec.ptime_ms,
            out: RtpOut::new(spec.payload_type, seed),
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
        let spec = DigitSpec {
            digit: '9',
            duration_ms: 100,
            volume: 12,
            payload_type: 101,
            ptime_ms: 20,
        };
        let mut s = DtmfSend::new(&spec, 3);
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
