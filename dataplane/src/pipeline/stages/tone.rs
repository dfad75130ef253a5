//! `tone`: an originating endpoint stage that plays a tone cadence as G.711
//! RTP, and the tone specs it plays.
//!
//! A spec is one of the seeds' names (`ringback`: US ringback 440+480 Hz,
//! 2 s on, 4 s off; `busy`: 480+620 Hz, 0.5 s on, 0.5 s off; `beep`: 800 Hz
//! for 300 ms) or FreeSWITCH's manual-tone notation: segments
//! `%(on_ms,off_ms,f1[,f2,...])` joined by `;`, e.g. the UK ring
//! `%(400,200,400,450);%(400,2200,400,450)`. The cadence repeats `repeat`
//! times (0: until the stage is replaced); during the off parts the stream
//! goes on with silence, and the first packet of each tone burst carries
//! the RTP marker bit. When a finite cadence ends the stage reports
//! `tone_done` and stops sending.
//!
//! The samples come from a recursive sine oscillator per frequency (one
//! multiply-add a sample, restarted at each burst), encoded straight to
//! G.711: no tables, no allocation per packet.

use super::rtp_out::{RtpOut, HEADER};
use crate::pipeline::{Cx, EventKind};
use serde::{Deserialize, Serialize};
use std::fmt;
use tollgate_codec::Law;

/// Most `%(...)` segments one spec may have.
pub const MAX_SEGMENTS: usize = 8;
/// Most frequencies one segment may mix.
pub const MAX_FREQS: usize = 4;
/// Longest on or off part of a segment.
const MAX_PART_MS: u16 = 60_000;
/// Peak level of the mixed frequencies (about -6 dBFS).
const PEAK: f64 = 16_000.0;

/// One `%(on,off,f...)` segment; frequencies in tenths of a hertz, so a
/// spec is `Eq` and small.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Segment {
    pub on_ms: u16,
    pub off_ms: u16,
    freqs: [u16; MAX_FREQS],
    n_freqs: u8,
}

impl Segment {
    pub fn freqs_hz(&self) -> impl Iterator<Item = f64> + '_ {
        self.freqs[..self.n_freqs as usize]
            .iter()
            .map(|&d| f64::from(d) / 10.0)
    }
}

/// A parsed tone spec (what a `tone` stage's `tone` field names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ToneSpec {
    segments: [Segment; MAX_SEGMENTS],
    len: u8,
}

/// A tone spec that does not parse: the input and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tone {input:?}: {why}")]
pub struct ToneError {
    pub input: String,
    pub why: String,
}

impl ToneSpec {
    pub fn segments(&self) -> &[Segment] {
        &self.segments[..self.len as usize]
    }

    pub fn parse(input: &str) -> Result<ToneSpec, ToneError> {
        let err = |why: String| ToneError {
            input: input.to_string(),
            why,
        };
        let text = match input.trim() {
            "ringback" => "%(2000,4000,440,480)",
            "busy" => "%(500,500,480,620)",
            "beep" => "%(300,0,800)",
            other => other,
        };
        let mut spec = ToneSpec {
            segments: [Segment::default(); MAX_SEGMENTS],
            len: 0,
        };
        for (i, part) in text.split(';').enumerate() {
            if i == MAX_SEGMENTS {
                return Err(err(format!("more than {MAX_SEGMENTS} segments")));
            }
            spec.segments[i] = parse_segment(part.trim())
                .map_err(|why| err(format!("segment {}: {why}", i + 1)))?;
            spec.len += 1;
        }
        if spec
            .segments()
            .iter()
            .all(|s| s.on_ms == 0 && s.off_ms == 0)
        {
            return Err(err("the cadence lasts 0 ms".into()));
        }
        Ok(spec)
    }
}

fn parse_segment(part: &str) -> Result<Segment, String> {
    let inner = part
        .strip_prefix("%(")
        .and_then(|p| p.strip_suffix(')'))
        .ok_or_else(|| {
            format!("{part:?} is not `%(on_ms,off_ms,f1[,f2...])` nor ringback, busy or beep")
        })?;
    let fields: Vec<&str> = inner.split(',').map(str::trim).collect();
    if fields.len() < 3 || fields.len() > 2 + MAX_FREQS {
        return Err(format!(
            "{part:?} needs on_ms, off_ms and 1 to {MAX_FREQS} frequencies"
        ));
    }
    let ms = |name: &str, f: &str| -> Result<u16, String> {
        match f.parse::<u16>() {
            Ok(v) if v <= MAX_PART_MS => Ok(v),
            _ => Err(format!(
                "{name} {f:?} is not a whole number of ms up to {MAX_PART_MS}"
            )),
        }
    };
    let mut seg = Segment {
        on_ms: ms("on_ms", fields[0])?,
        off_ms: ms("off_ms", fields[1])?,
        ..Segment::default()
    };
    for f in &fields[2..] {
        match f.parse::<f64>() {
            // 0 Hz is FreeSWITCH's rest; 8 kHz audio holds tones below 4 kHz.
            Ok(hz) if (0.0..4000.0).contains(&hz) => {
                seg.freqs[seg.n_freqs as usize] = (hz * 10.0).round() as u16;
                seg.n_freqs += 1;
            }
            _ => return Err(format!("frequency {f:?} is not a number of Hz below 4000")),
        }
    }
    Ok(seg)
}

impl fmt::Display for ToneSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, s) in self.segments().iter().enumerate() {
            let sep = if i == 0 { "" } else { ";" };
            write!(f, "{sep}%({},{}", s.on_ms, s.off_ms)?;
            for hz in s.freqs_hz() {
                write!(f, ",{hz}")?;
            }
            f.write_str(")")?;
        }
        Ok(())
    }
}

impl TryFrom<String> for ToneSpec {
    type Error = ToneError;
    fn try_from(s: String) -> Result<Self, ToneError> {
        ToneSpec::parse(&s)
    }
}

impl From<ToneSpec> for String {
    fn from(t: ToneSpec) -> String {
        t.to_string()
    }
}

impl Serialize for ToneSpec {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ToneSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        ToneSpec::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A sine oscillator: y[n] = 2 cos(w) y[n-1] - y[n-2].
#[derive(Debug, Clone, Copy, Default)]
struct Oscillator {
    coeff: f64,
    y1: f64,
    y2: f64,
}

impl Oscillator {
    /// Starts at phase 0 with amplitude `amp`.
    fn new(hz: f64, amp: f64) -> Self {
        let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
        Oscillator {
            coeff: 2.0 * w.cos(),
            y1: -amp * w.sin(),
            y2: -amp * (2.0 * w).sin(),
        }
    }

    fn next(&mut self) -> f64 {
        let y = self.coeff * self.y1 - self.y2;
        self.y2 = self.y1;
        self.y1 = y;
        y
    }
}

/// A tone stage's state on one flow.
#[derive(Debug)]
pub struct Tone {
    spec: ToneSpec,
    law: Law,
    ptime_ms: u32,
    /// Cadences still to play after the current one; None: forever.
    left: Option<u32>,
    out: RtpOut,
    segment: usize,
    /// Samples into the current segment.
    at: u32,
    oscillators: [Oscillator; MAX_FREQS],
    /// Whether the last packet ended inside a tone burst.
    sounding: bool,
    started: bool,
    done: bool,
}

impl Tone {
    /// `repeat` 0 plays until replaced.
    pub fn new(spec: ToneSpec, law: Law, ptime_ms: u32, repeat: u32, seed: u32) -> Self {
        let mut t = Tone {
            spec,
            law,
            ptime_ms,
            left: (repeat > 0).then(|| repeat - 1),
            out: RtpOut::new(law.payload_type(), seed),
            segment: 0,
            at: 0,
            oscillators: [Oscillator::default(); MAX_FREQS],
            sounding: false,
            started: false,
            done: false,
        };
        t.start_segment();
        t
    }

    pub fn interval_ns(&self) -> u64 {
        u64::from(self.ptime_ms) * 1_000_000
    }

    fn start_segment(&mut self) {
        self.at = 0;
        let seg = self.spec.segments[self.segment];
        let amp = PEAK / f64::from(seg.n_freqs.max(1));
        for (o, hz) in self.oscillators.iter_mut().zip(seg.freqs_hz()) {
            *o = Oscillator::new(hz, amp);
        }
    }

    /// Moves past finished segments and cadences (the cadence lasts more
    /// than 0 ms, so this ends).
    fn settle(&mut self) {
        while !self.done {
            let seg = self.spec.segments[self.segment];
            if self.at < (u32::from(seg.on_ms) + u32::from(seg.off_ms)) * 8 {
                return;
            }
            self.segment += 1;
            if self.segment == self.spec.len as usize {
                self.segment = 0;
                match &mut self.left {
                    Some(0) => self.done = true,
                    Some(n) => *n -= 1,
                    None => {}
                }
            }
            self.start_segment();
        }
    }

    /// The next sample and whether it is inside a burst; None once done.
    fn next_sample(&mut self) -> Option<(i16, bool)> {
        self.settle();
        if self.done {
            return None;
        }
        let seg = self.spec.segments[self.segment];
        self.at += 1;
        if self.at > u32::from(seg.on_ms) * 8 {
            return Some((0, false));
        }
        let n = seg.n_freqs as usize;
        let v: f64 = self.oscillators[..n].iter_mut().map(Oscillator::next).sum();
        Some((v.round() as i16, n > 0))
    }

    pub fn originate(&mut self, cx: &mut Cx, buf: &mut [u8]) -> Option<usize> {
        if self.done {
            return None;
        }
        let samples = 8 * self.ptime_ms as usize;
        let out = buf.get_mut(..HEADER + samples)?;
        // The marker goes on the stream's first packet and on each packet
        // in which a burst starts.
        let mut marker = !self.started;
        self.started = true;
        for o in &mut out[HEADER..] {
            let (v, on) = self.next_sample().unwrap_or((0, false));
            marker |= on && !self.sounding;
            self.sounding = on;
            *o = self.law.encode(v);
        }
        self.out.header(out, marker);
        self.out.advance(samples as u32);
        self.settle();
        if self.done {
            cx.report(EventKind::ToneDone);
        }
        Some(out.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::test_events::Events;
    use crate::wire::rtp;

    /// Power of `hz` in 8 kHz `x`, relative to the signal's power.
    fn goertzel(x: &[f64], hz: f64) -> f64 {
        let w = 2.0 * std::f64::consts::PI * hz / 8000.0;
        let (mut s1, mut s2) = (0.0, 0.0);
        for &v in x {
            let s = v + 2.0 * w.cos() * s1 - s2;
            s2 = s1;
            s1 = s;
        }
        let p = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
        p / (x.iter().map(|v| v * v).sum::<f64>() * x.len() as f64 / 2.0).max(1.0)
    }

    #[test]
    fn seed_names_and_the_percent_form_parse_and_print() {
        let ring = ToneSpec::parse("ringback").unwrap();
        assert_eq!(ring.to_string(), "%(2000,4000,440,480)");
        assert_eq!(
            ToneSpec::parse("busy").unwrap().to_string(),
            "%(500,500,480,620)"
        );
        assert_eq!(ToneSpec::parse("beep").unwrap().to_string(), "%(300,0,800)");
        let uk = ToneSpec::parse("%(400,200,400,450);%(400,2200,400,450)").unwrap();
        assert_eq!(uk.segments().len(), 2);
        assert_eq!(uk.segments()[1].off_ms, 2200);
        let sit = ToneSpec::parse("%(274, 0, 913.8)").unwrap();
        assert_eq!(
            sit.segments()[0].freqs_hz().collect::<Vec<_>>(),
            vec![913.8]
        );
        let json = serde_json::to_string(&uk).unwrap();
        assert_eq!(serde_json::from_str::<ToneSpec>(&json).unwrap(), uk);
    }

    #[test]
    fn bad_specs_name_the_input_and_the_fault() {
        let cases = [
            ("ringing", "not `%(on_ms,off_ms,f1[,f2...])`"),
            ("%(2000,abc,440)", "off_ms \"abc\""),
            ("%(2000,4000)", "needs on_ms, off_ms and 1 to 4"),
            ("%(100,0,5000)", "frequency \"5000\""),
            ("%(0,0,440)", "lasts 0 ms"),
            ("%(1,0,1,2,3,4,5)", "1 to 4 frequencies"),
        ];
        for (input, why) in cases {
            let e = ToneSpec::parse(input).unwrap_err().to_string();
            assert!(e.starts_with(&format!("tone {input:?}")), "{e}");
            assert!(e.contains(why), "{input}: {e}");
        }
        let e = serde_json::from_str::<ToneSpec>("\"%(1,x,2)\"").unwrap_err();
        assert!(
            e.to_string().contains("on_ms") || e.to_string().contains("off_ms"),
            "{e}"
        );
    }

    /// Busy tone (0.5 s on, 0.5 s off): 25 packets of 480+620 Hz with the
    /// marker on the first, 25 of silence, then the next burst marked; the
    /// stream is continuous throughout.
    #[test]
    fn busy_plays_its_cadence_as_a_continuous_marked_stream() {
        let mut events = Events::new();
        let mut cx = events.cx();
        let mut t = Tone::new(ToneSpec::parse("busy").unwrap(), Law::Pcma, 20, 0, 1);
        let mut buf = [0u8; 200];
        let mut packets = Vec::new();
        for _ in 0..60 {
            let n = t.originate(&mut cx, &mut buf).unwrap();
            packets.push(buf[..n].to_vec());
        }
        let heads: Vec<_> = packets
            .iter()
            .map(|p| rtp::Packet::new_checked(&p[..]).unwrap())
            .collect();
        for w in heads.windows(2) {
            assert_eq!(w[1].sequence(), w[0].sequence().wrapping_add(1));
            assert_eq!(w[1].timestamp(), w[0].timestamp().wrapping_add(160));
            assert_eq!(w[1].ssrc(), w[0].ssrc());
        }
        let marked: Vec<usize> = heads
            .iter()
            .enumerate()
            .filter(|(_, h)| h.marker())
            .map(|(i, _)| i)
            .collect();
        assert_eq!(marked, vec![0, 50]);
        assert!(heads.iter().all(|h| h.payload_type() == 8));
        let audio = |range: std::ops::Range<usize>| -> Vec<f64> {
            packets[range]
                .iter()
                .flat_map(|p| p[12..].iter().map(|&c| f64::from(Law::Pcma.decode(c))))
                .collect()
        };
        let on = audio(0..25);
        assert!(
            goertzel(&on, 480.0) > 0.4 && goertzel(&on, 620.0) > 0.4,
            "both tones"
        );
        assert!(goertzel(&on, 440.0) < 0.05, "and not another");
        assert!(
            audio(25..50).iter().all(|&v| v.abs() <= 8.0),
            "silence while off"
        );
        assert!(events.kinds().is_empty(), "an endless tone reports nothing");
    }

    #[test]
    fn a_finite_beep_reports_done_and_stops() {
        let mut events = Events::new();
        let mut cx = events.cx();
        let mut t = Tone::new(ToneSpec::parse("beep").unwrap(), Law::Pcmu, 20, 2, 1);
        let mut buf = [0u8; 200];
        let sent = std::iter::from_fn(|| t.originate(&mut cx, &mut buf))
            .take(100)
            .count();
        // Two 300 ms beeps back to back: 30 packets.
        assert_eq!(sent, 30);
        assert_eq!(events.kinds(), vec![EventKind::ToneDone]);
    }
}
