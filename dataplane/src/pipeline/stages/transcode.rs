//! `transcode`: one direction of a call whose legs speak different codecs
//! (or packet sizes). Each RTP packet of the sender's codec is decoded,
//! resampled to the receiver's rate, queued, and sent on as packets of the
//! receiver's codec and ptime: one packet in gives at most one out, in the
//! same buffer; where the receiver's packets are shorter than the sender's
//! (30 -> 20 ms) the queue's surplus leaves on the worker's 20 ms tick.
//! The stream keeps the sender's SSRC; its sequence numbers count the
//! packets sent, and its timestamps are the sender's in the receiver's
//! clock (a jump in the sender's, a lost packet or silence, drops the part
//! packet queued and starts again from there). RFC 4733 telephone-events
//! pass through with their payload type mapped and their timestamps and
//! durations in the receiver's clock; RTCP passes untouched; anything else
//! is dropped and counted. All buffers are sized when the flow is built:
//! nothing allocates per packet.

use super::rtcp_demux::is_rtcp;
use super::rtp_out::HEADER;
use crate::pipeline::{Cx, DropReason, Payload, Verdict};
use crate::wire::rtp;
use serde::{Deserialize, Serialize};
use std::ops::Range;
use tollgate_codec::resample::BLOCK_MS;
use tollgate_codec::{Codec, Decoder, Encoder, Resampler};

/// Longest packet a sender may send (ms); a longer one is cut there.
pub const MAX_PTIME_MS: u32 = 120;

/// One leg's side of a transcode: its codec, payload type and ptime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Side {
    pub codec: Codec,
    pub payload_type: u8,
    #[serde(default = "super::default_ptime")]
    pub ptime_ms: u32,
}

/// Telephone-event payload types: as received, and as sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventMap {
    pub from: u8,
    pub to: u8,
}

/// What a control request names: the sender's side, the receiver's, and
/// the telephone-event mapping (absent: such packets are dropped).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TranscodeSpec {
    pub from: Side,
    pub to: Side,
    #[serde(default)]
    pub events: Option<EventMap>,
}

impl Side {
    fn check(&self, which: &str) -> Result<(), String> {
        let ms = self.ptime_ms;
        if ms == 0 || ms > MAX_PTIME_MS || !ms.is_multiple_of(BLOCK_MS) {
            return Err(format!(
                "transcode: `{which}.ptime_ms` {ms} must be a multiple of {BLOCK_MS} up to {MAX_PTIME_MS}"
            ));
        }
        if !self.codec.takes_ptime(ms) {
            return Err(format!(
                "transcode: `{which}.ptime_ms` {ms} is not a frame size {} can send",
                self.codec.encoding()
            ));
        }
        if self.payload_type > 127 {
            return Err(format!(
                "transcode: `{which}.payload_type` {} is over 127",
                self.payload_type
            ));
        }
        Ok(())
    }

    /// Samples of one packet at the codec's PCM rate.
    fn samples(&self) -> usize {
        (self.codec.sample_rate() * self.ptime_ms / 1000) as usize
    }
}

impl TranscodeSpec {
    pub fn check(&self) -> Result<(), String> {
        self.from.check("from")?;
        self.to.check("to")?;
        if let Some(e) = self.events {
            super::check_event_pt("transcode events.from", e.from)?;
            super::check_event_pt("transcode events.to", e.to)?;
        }
        Coders::new(self).map(drop)
    }
}

/// Why a transcode stage dropped a packet, counted per flow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TranscodeCounters {
    /// Audio packets decoded, and packets of the receiver's codec sent.
    pub decoded: u64,
    pub encoded: u64,
    /// Telephone-events passed on.
    pub events: u64,
    /// Not RTP version 2, or its header does not fit.
    pub malformed: u64,
    /// Neither the sender's codec nor its telephone-event.
    pub other_payload_type: u64,
    /// The decoder or encoder refused the packet.
    pub codec_errors: u64,
}

/// The coders and buffers, built off the packet path.
struct Coders {
    decoder: Decoder,
    resampler: Resampler,
    encoder: Encoder,
    /// One received packet, decoded.
    decoded: Box<[i16]>,
    /// Audio at the receiver's rate waiting to be sent.
    queue: Box<[i16]>,
}

impl Coders {
    fn new(spec: &TranscodeSpec) -> Result<Coders, String> {
        let (from, to) = (spec.from.codec, spec.to.codec);
        let err = |e: &dyn std::fmt::Display| format!("transcode: {e}");
        let longest = |c: Codec| (c.sample_rate() * MAX_PTIME_MS / 1000) as usize;
        Ok(Coders {
            decoder: Decoder::new(from).map_err(|e| err(&e))?,
            resampler: Resampler::new(from.sample_rate(), to.sample_rate()).map_err(|e| err(&e))?,
            encoder: Encoder::new(to).map_err(|e| err(&e))?,
            decoded: vec![0; longest(from)].into_boxed_slice(),
            queue: vec![0; longest(to) + spec.to.samples()].into_boxed_slice(),
        })
    }
}

/// The stream sent on: where it is and what its next packet carries.
#[derive(Debug, Clone, Copy)]
struct Out {
    ssrc: u32,
    sequence: u16,
    /// The receiver's timestamp of the queue's first sample.
    timestamp: u32,
    /// The sender's timestamp expected next, and the pair the clocks were
    /// lined up on.
    next_in: u32,
    origin_in: u32,
    origin_out: u32,
    /// The next packet starts a talkspurt.
    marker: bool,
}

/// One direction's transcoder.
pub struct Transcode {
    spec: TranscodeSpec,
    /// None if the coders could not be built (the flow then drops audio).
    coders: Option<Box<Coders>>,
    queued: usize,
    out: Option<Out>,
    counters: TranscodeCounters,
}

impl std::fmt::Debug for Transcode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transcode")
            .field("spec", &self.spec)
            .field("queued", &self.queued)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Transcode {
    pub fn new(spec: &TranscodeSpec) -> Self {
        Transcode {
            spec: *spec,
            coders: Coders::new(spec).ok().map(Box::new),
            queued: 0,
            out: None,
            counters: TranscodeCounters::default(),
        }
    }

    pub fn counters(&self) -> TranscodeCounters {
        self.counters
    }

    /// The tick that sends the queue's surplus, where packets out are
    /// shorter than packets in.
    pub fn interval_ns(&self) -> Option<u64> {
        (self.spec.to.ptime_ms < self.spec.from.ptime_ms)
            .then_some(u64::from(super::super::wheel::TICK_MS) * 1_000_000)
    }

    /// Handles one received packet.
    pub fn process(&mut self, _cx: &mut Cx, p: &mut Payload) -> Verdict {
        if is_rtcp(p.bytes()) {
            return Verdict::Forward;
        }
        let Ok(packet) = rtp::Packet::new_checked(p.bytes()) else {
            self.counters.malformed += 1;
            return Verdict::Drop(DropReason::Stage);
        };
        let (pt, ts) = (packet.payload_type(), packet.timestamp());
        let body = packet.payload();
        let start = body.as_ptr() as usize - p.bytes().as_ptr() as usize;
        let body = start..start + body.len();
        self.follow(&packet);
        match self.spec.events {
            Some(e) if pt == e.from => return self.event(p, e.to, ts, body),
            _ if pt != self.spec.from.payload_type => {
                self.counters.other_payload_type += 1;
                return Verdict::Drop(DropReason::Stage);
            }
            _ => {}
        }
        if !self.take_audio(&p.bytes()[body], ts) {
            return Verdict::Drop(DropReason::Stage);
        }
        let room = p.room();
        if p.set_len(room).is_err() {
            return Verdict::Drop(DropReason::Stage);
        }
        match self.send(p.bytes_mut()) {
            Some(len) => {
                let _ = p.set_len(len);
                Verdict::Forward
            }
            None => Verdict::Drop(DropReason::Consumed),
        }
    }

    /// Starts the stream sent on at the first packet (same sequence and
    /// timestamp), and follows the sender's SSRC and talkspurts.
    fn follow<T: AsRef<[u8]>>(&mut self, packet: &rtp::Packet<T>) {
        let ts = packet.timestamp();
        let out = self.out.get_or_insert(Out {
            ssrc: packet.ssrc(),
            sequence: packet.sequence(),
            timestamp: ts,
            next_in: ts,
            origin_in: ts,
            origin_out: ts,
            marker: false,
        });
        out.ssrc = packet.ssrc();
        out.marker |= packet.marker();
    }

    /// Decodes `audio` onto the queue at the receiver's rate, after lining
    /// the clocks up again where the sender's jumped; false if it could
    /// not be decoded.
    fn take_audio(&mut self, audio: &[u8], ts: u32) -> bool {
        let (Some(c), Some(mut out)) = (self.coders.as_deref_mut(), self.out) else {
            self.counters.codec_errors += 1;
            return false;
        };
        let Ok(n) = c.decoder.decode(audio, &mut c.decoded) else {
            self.counters.codec_errors += 1;
            return false;
        };
        self.counters.decoded += 1;
        if ts != out.next_in {
            // A jump: the partial packet queued would sit at the wrong time.
            self.queued = 0;
            let resumed = out_timestamp(&self.spec, &out, ts);
            (out.origin_in, out.origin_out, out.timestamp) = (ts, resumed, resumed);
        }
        let from = self.spec.from.codec;
        out.next_in = ts.wrapping_add(ticks(from, n));
        self.out = Some(out);
        match c
            .resampler
            .process(&c.decoded[..n], &mut c.queue[self.queued..])
        {
            Ok(m) => {
                self.queued += m;
                true
            }
            Err(_) => {
                self.counters.codec_errors += 1;
                false
            }
        }
    }

    /// Encodes the queue's first packet into `buf` (header and payload)
    /// if it holds one; the datagram's length.
    fn send(&mut self, buf: &mut [u8]) -> Option<usize> {
        let c = self.coders.as_deref_mut()?;
        let out = self.out.as_mut()?;
        let samples = self.spec.to.samples();
        if self.queued < samples || buf.len() < HEADER {
            return None;
        }
        let (header, body) = buf.split_at_mut(HEADER);
        let Ok(len) = c.encoder.encode(&c.queue[..samples], body) else {
            self.counters.codec_errors += 1;
            self.queued = 0;
            return None;
        };
        write_header(header, self.spec.to.payload_type, out);
        out.marker = false;
        out.sequence = out.sequence.wrapping_add(1);
        out.timestamp = out
            .timestamp
            .wrapping_add(ticks(self.spec.to.codec, samples));
        c.queue.copy_within(samples..self.queued, 0);
        self.queued -= samples;
        self.counters.encoded += 1;
        Some(HEADER + len)
    }

    /// Writes the queue's surplus packet into `buf`, on the tick.
    pub fn originate(&mut self, buf: &mut [u8]) -> Option<usize> {
        self.send(buf)
    }

    /// Passes a telephone-event (its payload at `body`) on as payload type
    /// `to`, its timestamp and durations in the receiver's clock.
    fn event(&mut self, p: &mut Payload, to: u8, ts: u32, body: Range<usize>) -> Verdict {
        let Some(out) = self.out.as_mut() else {
            return Verdict::Drop(DropReason::Stage);
        };
        let (from_clock, to_clock) = (
            self.spec.from.codec.rtp_clock_rate(),
            self.spec.to.codec.rtp_clock_rate(),
        );
        let header = Out {
            timestamp: out_timestamp(&self.spec, out, ts),
            marker: p.bytes()[1] & 0x80 != 0,
            ..*out
        };
        out.sequence = out.sequence.wrapping_add(1);
        let len = HEADER + body.len();
        let buf = p.bytes_mut();
        buf.copy_within(body, HEADER);
        for block in buf[HEADER..len].chunks_exact_mut(4) {
            let duration = u32::from(u16::from_be_bytes([block[2], block[3]]));
            let scaled = (duration * to_clock / from_clock).min(u32::from(u16::MAX)) as u16;
            block[2..4].copy_from_slice(&scaled.to_be_bytes());
        }
        write_header(&mut buf[..HEADER], to, &header);
        let _ = p.set_len(len);
        self.counters.events += 1;
        Verdict::Forward
    }
}

/// A sender's timestamp in the receiver's clock, from the pair `out`'s
/// clocks were lined up on.
fn out_timestamp(spec: &TranscodeSpec, out: &Out, ts: u32) -> u32 {
    let (from, to) = (
        spec.from.codec.rtp_clock_rate(),
        spec.to.codec.rtp_clock_rate(),
    );
    let delta = u64::from(ts.wrapping_sub(out.origin_in)) * u64::from(to) / u64::from(from);
    out.origin_out.wrapping_add(delta as u32)
}

/// RTP timestamp ticks of `samples` at `codec`'s PCM rate.
fn ticks(codec: Codec, samples: usize) -> u32 {
    (samples as u64 * u64::from(codec.rtp_clock_rate()) / u64::from(codec.sample_rate())) as u32
}

/// Writes a 12-byte RTP header for `out`'s next packet, its
/// timestamp and sequence as they are.
fn write_header(h: &mut [u8], payload_type: u8, out: &Out) {
    h[0] = 0x80;
    h[1] = payload_type | if out.marker { 0x80 } else { 0 };
    h[2..4].copy_from_slice(&out.sequence.to_be_bytes());
    h[4..8].copy_from_slice(&out.timestamp.to_be_bytes());
    h[8..12].copy_from_slice(&out.ssrc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::stages::test_events::Events;

    fn side(codec: Codec, payload_type: u8, ptime_ms: u32) -> Side {
        Side {
            codec,
            payload_type,
            ptime_ms,
        }
    }

    fn spec(from: Side, to: Side) -> TranscodeSpec {
        TranscodeSpec {
            from,
            to,
            events: Some(EventMap { from: 101, to: 96 }),
        }
    }

    /// `ms` of a 1 kHz tone at -10 dBFS starting at sample `at`, at `rate`.
    fn tone(rate: u32, at: usize, ms: u32) -> Vec<i16> {
        let n = (rate * ms / 1000) as usize;
        (at..at + n)
            .map(|i| {
                let t = i as f64 / f64::from(rate);
                (10362.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
            })
            .collect()
    }

    fn rtp(pt: u8, seq: u16, ts: u32, marker: bool, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80, pt | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        p.extend_from_slice(payload);
        p
    }

    /// Runs `packet` through `stage` in a 1500-byte buffer: the verdict and
    /// what left.
    fn through(stage: &mut Transcode, packet: &[u8]) -> (Verdict, Vec<u8>) {
        let mut events = Events::new();
        let mut cx = events.cx();
        let mut buf = [0u8; 1500];
        buf[..packet.len()].copy_from_slice(packet);
        let mut p = Payload::new(&mut buf, packet.len());
        let v = stage.process(&mut cx, &mut p);
        (v, p.bytes().to_vec())
    }

    /// (payload type, sequence, timestamp, marker) of a packet sent.
    fn header(p: &[u8]) -> (u8, u16, u32, bool) {
        let r = rtp::Packet::new_checked(p).unwrap();
        (r.payload_type(), r.sequence(), r.timestamp(), r.marker())
    }

    /// Power (dBFS) at 1 kHz, by Goertzel, over `pcm`'s last half.
    fn level_1k(pcm: &[i16], rate: u32) -> f64 {
        let tail = &pcm[pcm.len() / 2..];
        let c = 2.0 * (2.0 * std::f64::consts::PI * 1000.0 / f64::from(rate)).cos();
        let (s1, s2) = tail.iter().fold((0.0, 0.0), |(s1, s2), &x| {
            (f64::from(x) / 32768.0 + c * s1 - s2, s1)
        });
        let amplitude = 2.0 * (s1 * s1 + s2 * s2 - c * s1 * s2).sqrt() / tail.len() as f64;
        20.0 * amplitude.log10()
    }

    #[test]
    fn pcmu_becomes_opus_with_the_tone_kept_and_the_clock_converted() {
        let mut stage = Transcode::new(&spec(side(Codec::Pcmu, 0, 20), side(Codec::Opus, 111, 20)));
        let mut enc = Encoder::new(Codec::Pcmu).unwrap();
        let mut dec = Decoder::new(Codec::Opus).unwrap();
        let mut heard = Vec::new();
        for i in 0..50u16 {
            let mut g711 = [0u8; 160];
            enc.encode(&tone(8000, 160 * usize::from(i), 20), &mut g711)
                .unwrap();
            let ts = 1000 + 160 * u32::from(i);
            let (v, out) = through(&mut stage, &rtp(0, 7 + i, ts, i == 0, &g711));
            assert_eq!(v, Verdict::Forward);
            let (pt, seq, out_ts, marker) = header(&out);
            assert_eq!((pt, seq, marker), (111, 7 + i, i == 0));
            assert_eq!(out_ts, 1000 + 960 * u32::from(i), "48 kHz timestamps");
            let mut pcm = [0i16; 960];
            let n = dec.decode(&out[HEADER..], &mut pcm).unwrap();
            heard.extend_from_slice(&pcm[..n]);
        }
        let level = level_1k(&heard, 48_000);
        assert!((level + 10.0).abs() < 1.0, "tone at {level:.2} dBFS");
        assert_eq!(stage.counters().encoded, 50);
    }

    #[test]
    fn twenty_ms_packets_become_thirty_and_thirty_become_twenty_on_the_tick() {
        let mut up = Transcode::new(&spec(side(Codec::Pcmu, 0, 20), side(Codec::Pcma, 8, 30)));
        assert_eq!(up.interval_ns(), None);
        let verdicts: Vec<_> = (0..6u16)
            .map(|i| through(&mut up, &rtp(0, i, 160 * u32::from(i), false, &[0xff; 160])))
            .collect();
        let sent: Vec<_> = verdicts
            .iter()
            .filter(|(v, _)| *v == Verdict::Forward)
            .map(|(_, p)| (p.len(), header(p)))
            .collect();
        assert_eq!(
            sent,
            [
                (252, (8, 0, 0, false)),
                (252, (8, 1, 240, false)),
                (252, (8, 2, 480, false)),
                (252, (8, 3, 720, false))
            ]
        );
        assert_eq!(verdicts[0].0, Verdict::Drop(DropReason::Consumed));

        let mut down = Transcode::new(&spec(side(Codec::Pcma, 8, 30), side(Codec::Pcmu, 0, 20)));
        assert_eq!(down.interval_ns(), Some(20_000_000));
        let mut stamps = Vec::new();
        let mut buf = [0u8; 1500];
        for i in 0..4u16 {
            let (v, p) = through(
                &mut down,
                &rtp(8, i, 240 * u32::from(i), false, &[0xd5; 240]),
            );
            assert_eq!(v, Verdict::Forward, "every 30 ms packet gives one of 20");
            stamps.push(header(&p).2);
            if let Some(len) = down.originate(&mut buf) {
                assert_eq!(len, HEADER + 160);
                stamps.push(header(&buf[..len]).2);
            }
        }
        assert_eq!(stamps, [0, 160, 320, 480, 640, 800]);
        assert_eq!(down.originate(&mut buf), None, "the queue is empty");
    }

    #[test]
    fn telephone_events_are_mapped_into_the_receivers_clock() {
        let mut stage = Transcode::new(&spec(side(Codec::Pcmu, 0, 20), side(Codec::Opus, 111, 20)));
        through(&mut stage, &rtp(0, 1, 8000, false, &[0xff; 160]));
        // Digit 5, end bit off, volume 10, 400 ticks (50 ms at 8 kHz).
        let (v, out) = through(&mut stage, &rtp(101, 2, 8160, true, &[5, 10, 0x01, 0x90]));
        assert_eq!(v, Verdict::Forward);
        assert_eq!(header(&out), (96, 2, 8000 + 960, true));
        assert_eq!(&out[HEADER..], &[5, 10, 0x09, 0x60], "2400 ticks at 48 kHz");
        let (_, after) = through(&mut stage, &rtp(0, 3, 8160, false, &[0xff; 160]));
        assert_eq!(header(&after).1, 3, "one sequence for audio and events");
        assert_eq!(stage.counters().events, 1);
    }

    #[test]
    fn a_timestamp_jump_restarts_the_queue_at_the_new_time() {
        let mut stage = Transcode::new(&spec(side(Codec::Pcmu, 0, 20), side(Codec::G722, 9, 20)));
        let (_, first) = through(&mut stage, &rtp(0, 1, 0, false, &[0xff; 160]));
        assert_eq!(header(&first).2, 0);
        // 1 s of silence suppressed, then a talkspurt.
        let (v, next) = through(&mut stage, &rtp(0, 2, 8000, true, &[0xff; 160]));
        assert_eq!(v, Verdict::Forward);
        assert_eq!(header(&next), (9, 2, 8000, true));
        assert_eq!(next.len(), HEADER + 160, "G.722: 160 octets per 20 ms");
    }

    #[test]
    fn bad_input_is_counted_and_rtcp_passes() {
        let mut stage = Transcode::new(&spec(side(Codec::G729, 18, 20), side(Codec::Pcmu, 0, 20)));
        let rr = [0x81, 201, 0, 1, 0, 0, 0, 7];
        assert_eq!(through(&mut stage, &rr), (Verdict::Forward, rr.to_vec()));
        let short = through(&mut stage, &[0x80, 0, 0]);
        assert_eq!(short.0, Verdict::Drop(DropReason::Stage));
        let cn = through(&mut stage, &rtp(13, 1, 0, false, &[40]));
        assert_eq!(cn.0, Verdict::Drop(DropReason::Stage));
        let (v, out) = through(&mut stage, &rtp(18, 2, 0, false, &[0x55; 20]));
        assert_eq!((v, out.len()), (Verdict::Forward, HEADER + 160));
        let c = stage.counters();
        assert_eq!((c.malformed, c.other_payload_type, c.decoded), (1, 1, 1));
    }

    #[test]
    fn checks_name_the_side_and_field() {
        let opus30 = spec(side(Codec::Pcmu, 0, 20), side(Codec::Opus, 111, 30));
        let e = opus30.check().unwrap_err();
        assert!(e.contains("`to.ptime_ms` 30") && e.contains("opus"), "{e}");
        let odd = spec(side(Codec::Pcmu, 0, 25), side(Codec::Pcma, 8, 20));
        assert!(odd.check().unwrap_err().contains("`from.ptime_ms` 25"));
        let mut bad_event = spec(side(Codec::Pcmu, 0, 20), side(Codec::Pcma, 8, 20));
        bad_event.events = Some(EventMap { from: 101, to: 8 });
        assert!(bad_event.check().unwrap_err().contains("`payload_type` 8"));
        let json = r#"{"kind":"transcode","from":{"codec":"PCMU","payload_type":0},
            "to":{"codec":"opus","payload_type":111},"events":{"from":101,"to":96}}"#;
        let s: crate::pipeline::StageSpec = serde_json::from_str(json).unwrap();
        assert_eq!(
            s,
            crate::pipeline::StageSpec::Transcode(spec(
                side(Codec::Pcmu, 0, 20),
                side(Codec::Opus, 111, 20)
            ))
        );
        assert!(s.check().is_ok());
    }
}
