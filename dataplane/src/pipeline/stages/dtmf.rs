//! `dtmf_detect`: DTMF received as RFC 4733 telephone-events, each digit
//! reported once as a `dtmf` event with its duration and volume.
//!
//! [`DtmfDetector`] is the sans-IO core. An event is identified by its RTP
//! timestamp (RFC 4733 section 2.5.1: every packet of one event carries the
//! timestamp of its start), so:
//! - the end bit reports the digit, and the two retransmitted end packets
//!   that follow (and any late packet of that event) are recognised by their
//!   timestamp and ignored;
//! - an event whose first packets were lost is reported from whatever
//!   packets arrive, with the duration the last of them gives;
//! - an event whose end packets were all lost is reported when the next
//!   event starts, or when audio resumes well past its last duration;
//! - a long press, which RFC 4733 section 2.5.1.3 splits into segments of
//!   at most 0xFFFF samples, the next starting where the last ended, is
//!   one digit with the segments' summed duration;
//! - two digits back to back, even the same digit twice, are two events
//!   because their timestamps differ.
//!
//! The stage passes audio on; telephone-event packets are consumed or
//! passed as its `consume` says.

use crate::pipeline::{Cx, DropReason, EventKind, Payload, Verdict};
use crate::wire::rtp;

/// The telephone-event clock (telephone-event/8000).
const CLOCK_KHZ: u32 = 8;
/// How far past an event's last duration audio must be before an event
/// without an end packet counts as over (three 20 ms packets).
const AUDIO_GRACE: u32 = 480;
/// Timestamps of reported events remembered, for late and repeated packets.
const REMEMBERED: usize = 4;

/// One detected digit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digit {
    /// `0`-`9`, `*`, `#`, `A`-`D`.
    pub digit: char,
    pub duration_ms: u32,
    /// The sender's level as RFC 4733 gives it: 0 to 63, in -dBm0.
    pub volume: u8,
}

/// The digit of RFC 4733 event code `code` (section 3.2), if it is DTMF.
pub fn digit_of(code: u8) -> Option<char> {
    b"0123456789*#ABCD".get(code as usize).map(|&b| b as char)
}

/// The RFC 4733 event code of `digit` (either case for A-D).
pub fn code_of(digit: char) -> Option<u8> {
    let up = digit.to_ascii_uppercase();
    b"0123456789*#ABCD"
        .iter()
        .position(|&b| b as char == up)
        .map(|i| i as u8)
}

#[derive(Debug, Clone, Copy)]
struct Current {
    timestamp: u32,
    code: u8,
    /// Samples of earlier segments of a long press.
    earlier: u32,
    /// The largest duration seen in this segment.
    duration: u16,
    volume: u8,
}

#[derive(Debug, Default)]
pub struct DtmfDetector {
    current: Option<Current>,
    reported: [Option<u32>; REMEMBERED],
    next_slot: usize,
    ready: [Option<Digit>; 2],
}

impl DtmfDetector {
    /// Takes one telephone-event packet: its RTP timestamp and payload.
    /// Payloads shorter than 4 bytes and non-DTMF events are ignored.
    pub fn on_event(&mut self, timestamp: u32, payload: &[u8]) {
        let &[code, flags, d0, d1, ..] = payload else {
            return;
        };
        if digit_of(code).is_none() || self.reported.contains(&Some(timestamp)) {
            return;
        }
        let duration = u16::from_be_bytes([d0, d1]);
        let volume = flags & 0x3f;
        match self.current {
            Some(ref mut c) if c.timestamp == timestamp => {
                c.duration = c.duration.max(duration);
                c.volume = volume;
            }
            Some(c) if continues(&c, code, timestamp) => {
                self.remember(c.timestamp);
                self.current = Some(Current {
                    timestamp,
                    earlier: c.earlier + u32::from(c.duration),
                    duration,
                    volume,
                    code,
                });
            }
            other => {
                if other.is_some() {
                    self.finish();
                }
                self.current = Some(Current {
                    timestamp,
                    code,
                    earlier: 0,
                    duration,
                    volume,
                });
            }
        }
        if flags & 0x80 != 0 {
            self.finish();
        }
    }

    /// Takes the RTP timestamp of an audio packet: an event left without an
    /// end is over once audio is well past it.
    pub fn on_audio(&mut self, timestamp: u32) {
        if let Some(c) = self.current {
            let past = timestamp.wrapping_sub(c.timestamp) as i32;
            if past > (c.earlier + u32::from(c.duration) + AUDIO_GRACE) as i32 {
                self.finish();
            }
        }
    }

    /// The next digit detected, oldest first.
    pub fn poll(&mut self) -> Option<Digit> {
        let d = self.ready[0].take();
        self.ready.swap(0, 1);
        d
    }

    fn finish(&mut self) {
        let Some(c) = self.current.take() else {
            return;
        };
        self.remember(c.timestamp);
        let digit = Digit {
            digit: digit_of(c.code).unwrap_or('?'),
            duration_ms: (c.earlier + u32::from(c.duration)) / CLOCK_KHZ,
            volume: c.volume,
        };
        // Two slots suffice: one packet finishes at most two events.
        let slot = if self.ready[0].is_none() { 0 } else { 1 };
        self.ready[slot] = Some(digit);
    }

    fn remember(&mut self, timestamp: u32) {
        self.reported[self.next_slot] = Some(timestamp);
        self.next_slot = (self.next_slot + 1) % REMEMBERED;
    }
}

/// Whether an event at `timestamp` is the next segment of the long press `c`.
fn continues(c: &Current, code: u8, timestamp: u32) -> bool {
    c.code == code && c.duration == u16::MAX && timestamp == c.timestamp.wrapping_add(0xffff)
}

/// The stage: a detector on one flow.
#[derive(Debug)]
pub struct DtmfDetect {
    payload_type: u8,
    consume: bool,
    detector: DtmfDetector,
}

impl DtmfDetect {
    pub fn new(payload_type: u8, consume: bool) -> Self {
        DtmfDetect {
            payload_type,
            consume,
            detector: DtmfDetector::default(),
        }
    }

    pub fn process(&mut self, cx: &mut Cx, p: &mut Payload) -> Verdict {
        let Ok(packet) = rtp::Packet::new_checked(p.bytes()) else {
            return Verdict::Forward;
        };
        let is_event = packet.payload_type() == self.payload_type;
        if is_event {
            self.detector.on_event(packet.timestamp(), packet.payload());
        } else {
            self.detector.on_audio(packet.timestamp());
        }
        while let Some(d) = self.detector.poll() {
            cx.report(EventKind::Dtmf {
                digit: d.digit,
                duration_ms: d.duration_ms,
                volume: d.volume,
            });
        }
        if is_event && self.consume {
            Verdict::Drop(DropReason::Consumed)
        } else {
            Verdict::Forward
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::test_events::Events;

    /// One telephone-event payload: event, end bit, volume, duration.
    fn ev(code: u8, end: bool, volume: u8, duration: u16) -> [u8; 4] {
        let d = duration.to_be_bytes();
        [code, if end { 0x80 } else { 0 } | volume, d[0], d[1]]
    }

    fn digits(d: &mut DtmfDetector) -> Vec<Digit> {
        std::iter::from_fn(|| d.poll()).collect()
    }

    fn digit(digit: char, duration_ms: u32, volume: u8) -> Digit {
        Digit {
            digit,
            duration_ms,
            volume,
        }
    }

    #[test]
    fn a_digit_with_its_three_end_packets_is_reported_once() {
        let mut d = DtmfDetector::default();
        // A recorded '5': timestamp 1000, 20 ms steps, ends at 800 samples.
        let packets: [&[u8]; 8] = [
            &[0x05, 0x0a, 0x00, 0xa0],
            &[0x05, 0x0a, 0x01, 0x40],
            &[0x05, 0x0a, 0x01, 0xe0],
            &[0x05, 0x0a, 0x02, 0x80],
            &[0x05, 0x0a, 0x03, 0x20],
            &[0x05, 0x8a, 0x03, 0x20],
            &[0x05, 0x8a, 0x03, 0x20],
            &[0x05, 0x8a, 0x03, 0x20],
        ];
        let mut reported = Vec::new();
        for p in packets {
            d.on_event(1000, p);
            reported.extend(digits(&mut d));
        }
        assert_eq!(reported, vec![digit('5', 100, 10)]);
    }

    #[test]
    fn lost_first_packets_still_give_the_digit_and_its_full_duration() {
        let mut d = DtmfDetector::default();
        d.on_event(500, &ev(11, false, 7, 640));
        d.on_event(500, &ev(11, true, 7, 800));
        assert_eq!(digits(&mut d), vec![digit('#', 100, 7)]);
    }

    #[test]
    fn an_event_whose_ends_were_lost_is_reported_by_the_next_or_by_audio() {
        let mut d = DtmfDetector::default();
        d.on_event(0, &ev(1, false, 10, 160));
        d.on_event(0, &ev(1, false, 10, 480));
        // Audio resumes right after: not yet over.
        d.on_audio(800);
        assert_eq!(digits(&mut d), vec![]);
        d.on_audio(1200);
        assert_eq!(digits(&mut d), vec![digit('1', 60, 10)]);
        // Ends lost, then the next digit's single end packet: both, in order.
        d.on_event(4000, &ev(2, false, 10, 320));
        d.on_event(8000, &ev(3, true, 10, 400));
        assert_eq!(digits(&mut d), vec![digit('2', 40, 10), digit('3', 50, 10)]);
    }

    #[test]
    fn two_digits_back_to_back_even_the_same_are_two() {
        let mut d = DtmfDetector::default();
        for ts in [0u32, 960] {
            for dur in [160u16, 320, 480] {
                d.on_event(ts, &ev(7, false, 10, dur));
            }
            for _ in 0..3 {
                d.on_event(ts, &ev(7, true, 10, 640));
            }
        }
        // A late retransmission of the first digit's end changes nothing.
        d.on_event(0, &ev(7, true, 10, 640));
        assert_eq!(digits(&mut d), vec![digit('7', 80, 10); 2]);
    }

    #[test]
    fn a_long_press_split_into_segments_is_one_digit() {
        let mut d = DtmfDetector::default();
        d.on_event(100, &ev(0, false, 12, 0xfff0));
        d.on_event(100, &ev(0, false, 12, 0xffff));
        // RFC 4733 2.5.1.3: the next segment starts where the last ended.
        let next = 100 + 0xffff;
        d.on_event(next, &ev(0, false, 12, 8000));
        assert_eq!(digits(&mut d), vec![]);
        for _ in 0..3 {
            d.on_event(next, &ev(0, true, 12, 16000));
        }
        d.on_event(100, &ev(0, false, 12, 0xffff));
        assert_eq!(digits(&mut d), vec![digit('0', (0xffff + 16000) / 8, 12)]);
    }

    #[test]
    fn short_payloads_and_non_dtmf_events_are_ignored() {
        let mut d = DtmfDetector::default();
        d.on_event(0, &[1, 0x80]);
        d.on_event(0, &ev(16, true, 10, 800));
        assert_eq!(digits(&mut d), vec![]);
        assert_eq!(
            (code_of('a'), code_of('#'), code_of('x')),
            (Some(12), Some(11), None)
        );
    }

    /// The UDP payloads of a classic pcap of Ethernet/IPv4/UDP frames.
    fn pcap_udp_payloads(bytes: &[u8]) -> Vec<Vec<u8>> {
        assert_eq!(&bytes[..4], &[0xd4, 0xc3, 0xb2, 0xa1], "little-endian pcap");
        let mut out = Vec::new();
        let mut at = 24;
        while at + 16 <= bytes.len() {
            let len = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap()) as usize;
            let frame = &bytes[at + 16..at + 16 + len];
            let ihl = 4 * (frame[14] & 0x0f) as usize;
            out.push(frame[14 + ihl + 8..].to_vec());
            at += 16 + len;
        }
        out
    }

    /// Debian sip-tester's RFC 2833 captures (what SIPp's uac_pcap plays):
    /// each holds one digit, which is reported once, as that digit.
    #[test]
    fn sip_testers_rfc2833_captures_each_give_their_digit() {
        let mut events = Events::new();
        for n in 0..=9 {
            let path = format!("/usr/share/sip-tester/dtmf_2833_{n}.pcap");
            let bytes = std::fs::read(&path).unwrap_or_else(|e| {
                panic!("{path}: {e}; install sip-tester (scripts/setup.sh does)")
            });
            let mut stage = DtmfDetect::new(101, true);
            let mut cx = events.cx();
            for mut p in pcap_udp_payloads(&bytes) {
                let len = p.len();
                let v = stage.process(&mut cx, &mut Payload::new(&mut p, len));
                assert_eq!(v, Verdict::Drop(DropReason::Consumed), "{path}");
            }
            let got: Vec<EventKind> = events.kinds();
            let want = char::from(b'0' + n);
            assert!(
                matches!(got[..], [EventKind::Dtmf { digit, duration_ms, volume: 10 }]
                    if digit == want && duration_ms > 100),
                "{path}: {got:?}"
            );
        }
    }
}
