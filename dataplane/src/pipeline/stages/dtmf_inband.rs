//! `dtmf_inband`: DTMF heard in the G.711 audio itself, for trunks that
//! send neither RFC 4733 events nor SIP INFO. Each digit is reported once,
//! when it ends, as the same `dtmf` event `dtmf_detect` gives.
//!
//! [`InbandDetector`] is the sans-IO core: the decoded audio in blocks of
//! 205 samples (25.6 ms, the classic size whose bins fall near the eight
//! DTMF frequencies), a Goertzel filter per frequency, and a block counts
//! as a digit when one row and one column tone hold most of its energy,
//! within 8 dB of each other (twist), above -35 dBm0. A digit starts after
//! two such blocks in a row and ends after two blocks without it, so a
//! block of speech that looks like a digit is not one.

use crate::pipeline::{Cx, EventKind, Payload, Verdict};
use crate::wire::rtp;
use tollgate_codec::Law;

const BLOCK: usize = 205;
const ROWS: [f64; 4] = [697.0, 770.0, 852.0, 941.0];
const COLUMNS: [f64; 4] = [1209.0, 1336.0, 1477.0, 1633.0];
const KEYS: [[char; 4]; 4] = [
    ['1', '2', '3', 'A'],
    ['4', '5', '6', 'B'],
    ['7', '8', '9', 'C'],
    ['*', '0', '#', 'D'],
];
/// The RMS of a 0 dBm0 sine in 16-bit G.711 (full scale is +3.17 dBm0).
const DBM0_RMS: f64 = 15_749.0;
/// Each tone's share of the block's energy, and the pair's.
const MIN_TONE: f64 = 0.2;
const MIN_PAIR: f64 = 0.75;
/// ±8 dB between the two tones.
const MAX_TWIST: f64 = 6.3;
/// -35 dBm0.
const MIN_RMS: f64 = DBM0_RMS * 0.017_78;
/// Blocks to confirm a digit, and to confirm its end.
const CONFIRM: u32 = 2;

/// Fraction of `x`'s energy at `hz` (1.0 for a pure tone there).
fn goertzel(x: &[f64; BLOCK], energy: f64, hz: f64) -> f64 {
    let c = 2.0 * (2.0 * std::f64::consts::PI * hz / 8000.0).cos();
    let (s1, s2) = x
        .iter()
        .fold((0.0, 0.0), |(s1, s2), &v| (v + c * s1 - s2, s1));
    (s1 * s1 + s2 * s2 - c * s1 * s2) / (energy * BLOCK as f64 / 2.0)
}

/// The strongest of `freqs` in `x`: its index and its share of the energy.
fn strongest(x: &[f64; BLOCK], energy: f64, freqs: &[f64; 4]) -> (usize, f64) {
    freqs
        .iter()
        .map(|&f| goertzel(x, energy, f))
        .enumerate()
        .fold(
            (0, 0.0),
            |best, (i, p)| if p > best.1 { (i, p) } else { best },
        )
}

/// The digit one block holds, with its level in -dBm0.
fn classify(x: &[f64; BLOCK]) -> Option<(char, u8)> {
    let energy: f64 = x.iter().map(|v| v * v).sum();
    let rms = (energy / BLOCK as f64).sqrt();
    if rms < MIN_RMS {
        return None;
    }
    let (r, pr) = strongest(x, energy, &ROWS);
    let (c, pc) = strongest(x, energy, &COLUMNS);
    let twist = pr.max(pc) / pr.min(pc).max(1e-9);
    if pr < MIN_TONE || pc < MIN_TONE || pr + pc < MIN_PAIR || twist > MAX_TWIST {
        return None;
    }
    // Each tone's level: its share of the power, against 0 dBm0.
    let tone_rms = rms * (pr.min(pc)).sqrt();
    let dbm0 = 20.0 * (tone_rms / DBM0_RMS).log10();
    Some((KEYS[r][c], (-dbm0).round().clamp(0.0, 63.0) as u8))
}

#[derive(Debug)]
pub struct InbandDetector {
    block: [f64; BLOCK],
    filled: usize,
    /// The last block's digit and how many blocks in a row had it.
    run: Option<(char, u8)>,
    run_len: u32,
    /// The digit held down: its key, level and blocks.
    pressed: Option<(char, u8, u32)>,
    quiet: u32,
    ready: Option<super::dtmf::Digit>,
}

impl Default for InbandDetector {
    fn default() -> Self {
        InbandDetector {
            block: [0.0; BLOCK],
            filled: 0,
            run: None,
            run_len: 0,
            pressed: None,
            quiet: 0,
            ready: None,
        }
    }
}

impl InbandDetector {
    /// Takes one packet's G.711 code words.
    pub fn push(&mut self, law: Law, codes: &[u8]) {
        for &c in codes {
            self.block[self.filled] = f64::from(law.decode(c));
            self.filled += 1;
            if self.filled == BLOCK {
                self.filled = 0;
                let heard = classify(&self.block);
                self.on_block(heard);
            }
        }
    }

    fn on_block(&mut self, heard: Option<(char, u8)>) {
        let same = heard.map(|h| h.0) == self.run.map(|r| r.0);
        self.run_len = if same { self.run_len + 1 } else { 1 };
        self.run = heard;
        match (self.pressed.as_mut(), heard) {
            (Some(p), Some((key, _))) if p.0 == key => {
                p.2 += 1;
                self.quiet = 0;
            }
            (Some(_), _) => {
                self.quiet += 1;
                if self.quiet >= CONFIRM {
                    self.release();
                    self.on_block_start(heard);
                }
            }
            (None, _) => self.on_block_start(heard),
        }
    }

    /// With no digit held: one starts once `CONFIRM` blocks agree.
    fn on_block_start(&mut self, heard: Option<(char, u8)>) {
        if let Some((key, level)) = heard {
            if self.run_len >= CONFIRM {
                self.pressed = Some((key, level, self.run_len));
                self.quiet = 0;
            }
        }
    }

    fn release(&mut self) {
        if let Some((digit, volume, blocks)) = self.pressed.take() {
            self.ready = Some(super::dtmf::Digit {
                digit,
                duration_ms: blocks * BLOCK as u32 / 8,
                volume,
            });
        }
    }

    pub fn poll(&mut self) -> Option<super::dtmf::Digit> {
        self.ready.take()
    }
}

/// The stage: a detector on one flow's G.711 audio; packets go on.
#[derive(Debug)]
pub struct DtmfInband {
    payload_type: u8,
    law: Law,
    detector: Box<InbandDetector>,
}

impl DtmfInband {
    /// `payload_type` was checked to be G.711.
    pub fn new(payload_type: u8) -> Self {
        DtmfInband {
            payload_type,
            law: Law::from_payload_type(payload_type).unwrap_or(Law::Pcmu),
            detector: Box::default(),
        }
    }

    pub fn process(&mut self, cx: &mut Cx, p: &mut Payload) -> Verdict {
        let Ok(packet) = rtp::Packet::new_checked(p.bytes()) else {
            return Verdict::Forward;
        };
        if packet.payload_type() == self.payload_type {
            self.detector.push(self.law, packet.payload());
            if let Some(d) = self.detector.poll() {
                cx.report(EventKind::Dtmf {
                    digit: d.digit,
                    duration_ms: d.duration_ms,
                    volume: d.volume,
                });
            }
        }
        Verdict::Forward
    }
}

#[cfg(test)]
mod tests {
    use super::super::tone::{Tone, ToneSpec};
    use super::*;
    use crate::pipeline::stages::test_events::Events;

    /// What the detector hears in `packets` packets of the tone `spec`.
    fn heard(spec: &str, law: Law, packets: usize) -> Vec<super::super::dtmf::Digit> {
        let mut events = Events::new();
        let mut cx = events.cx();
        let mut tone = Tone::new(ToneSpec::parse(spec).unwrap(), law, 20, 1, 1);
        let mut d = InbandDetector::default();
        let mut buf = [0u8; 200];
        let mut out = Vec::new();
        for _ in 0..packets {
            let n = tone.originate(&mut cx, &mut buf).unwrap_or(172);
            d.push(law, &buf[12..n]);
            out.extend(d.poll());
        }
        out
    }

    #[test]
    fn digits_played_in_band_are_heard_once_each_with_their_length() {
        // 1, 5, #, D: 100 ms on, 60 ms off, the way a phone keys them.
        let keyed = "%(100,60,697,1209);%(100,60,770,1336);%(100,60,941,1477);%(100,300,941,1633)";
        for law in [Law::Pcmu, Law::Pcma] {
            let got = heard(keyed, law, 60);
            let keys: String = got.iter().map(|d| d.digit).collect();
            assert_eq!(keys, "15#D", "{law:?}: {got:?}");
            assert!(
                got.iter().all(|d| (76..=128).contains(&d.duration_ms)),
                "{got:?}"
            );
            // The tone stage plays each at about -9 dBm0.
            assert!(got.iter().all(|d| (5..=13).contains(&d.volume)), "{got:?}");
        }
    }

    #[test]
    fn single_tones_chords_and_short_blips_are_not_digits() {
        for spec in [
            "%(1000,0,1000)",
            "%(1000,0,440,480)",
            "%(1000,0,697)",
            "%(1000,0,697,1209,1477)",
            "%(30,200,697,1209)",
        ] {
            assert_eq!(heard(spec, Law::Pcmu, 60), vec![], "{spec}");
        }
    }
}
