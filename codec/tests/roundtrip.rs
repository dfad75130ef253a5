//! Every codec round-trips known signals (a 1 kHz tone at -10 dBFS and a
//! 200-3400 Hz chirp at -16 dBFS), coded in 20 ms packets as a stream
//! would be; the decoded signal, aligned on the codec's delay, is held to a
//! signal-to-noise floor per codec, and a tone keeps its frequency and its
//! level. Floors, from what each coding scheme is published to reach:
//! - G.711: ITU-T G.712's signal-to-total-distortion mask asks 35 dB of a
//!   sine between -30 and 0 dBm0; companding reaches about 38 dB.
//! - G.722 at 64 kbit/s: sub-band ADPCM keeps the waveform; 6 bits in the
//!   lower band put it above G.711 on narrowband signals (here 47 dB on the
//!   tone, 44 on the chirp; floors 40 and 35).
//! - Opus at 64 kbit/s and G.729: perceptual and CELP coders keep what a
//!   listener hears, not the waveform (CELP's waveform SNR is about 10 dB);
//!   looser floors (Opus 20/12 dB, G.729 8/8 dB), and the tone check
//!   (frequency, level within 1 dB) is what matters there.
//!
//! The figures measured print with `--nocapture`.

use std::f64::consts::PI;
use tollgate_codec::{Codec, Decoder, Encoder, Resampler};

fn tone(rate: u32, hz: f64, dbfs: f64, secs: f64) -> Vec<i16> {
    let amp = 32767.0 * 10f64.powf(dbfs / 20.0);
    let n = (f64::from(rate) * secs) as usize;
    (0..n)
        .map(|i| (amp * (2.0 * PI * hz * i as f64 / f64::from(rate)).sin()) as i16)
        .collect()
}

/// A linear sweep from `f0` to `f1` Hz.
fn chirp(rate: u32, f0: f64, f1: f64, dbfs: f64, secs: f64) -> Vec<i16> {
    let amp = 32767.0 * 10f64.powf(dbfs / 20.0);
    let n = (f64::from(rate) * secs) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 / f64::from(rate);
            let phase = 2.0 * PI * (f0 * t + (f1 - f0) * t * t / (2.0 * secs));
            (amp * phase.sin()) as i16
        })
        .collect()
}

/// Codes `pcm` in 20 ms packets and decodes them again.
fn round_trip(codec: Codec, pcm: &[i16]) -> Vec<i16> {
    let mut enc = Encoder::new(codec).unwrap();
    let mut dec = Decoder::new(codec).unwrap();
    let per_packet = codec.sample_rate() as usize / 50;
    let mut packet = vec![0u8; codec.max_payload(20)];
    let mut out = Vec::new();
    let mut frame = vec![0i16; per_packet];
    for chunk in pcm.chunks_exact(per_packet) {
        let n = enc.encode(chunk, &mut packet).unwrap();
        assert!(n > 0 && n <= packet.len(), "{codec:?} wrote {n} bytes");
        let m = dec.decode(&packet[..n], &mut frame).unwrap();
        assert_eq!(m, per_packet, "{codec:?} decoded {m} samples");
        out.extend_from_slice(&frame);
    }
    out
}

/// SNR in dB of `got` against `want` delayed by the lag (up to `max_lag`
/// samples) that fits best, skipping the first 100 ms (the coders'
/// start-up); the lag too.
fn snr(want: &[i16], got: &[i16], max_lag: usize) -> (f64, usize) {
    let skip = want.len() / 10;
    let score = |lag: usize| {
        let (mut sig, mut err) = (0f64, 0f64);
        for i in skip..want.len() - max_lag {
            let w = f64::from(want[i]);
            let e = f64::from(got[i + lag]) - w;
            sig += w * w;
            err += e * e;
        }
        (10.0 * (sig / err.max(1e-9)).log10(), lag)
    };
    (0..=max_lag)
        .map(score)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap()
}

/// Power (dBFS) of `pcm` at `hz`, by Goertzel, over its last half.
fn level_at(pcm: &[i16], rate: u32, hz: f64) -> f64 {
    let tail = &pcm[pcm.len() / 2..];
    let w = 2.0 * PI * hz / f64::from(rate);
    let (mut s1, mut s2) = (0f64, 0f64);
    for &x in tail {
        let s = f64::from(x) / 32768.0 + 2.0 * w.cos() * s1 - s2;
        s2 = s1;
        s1 = s;
    }
    let power = s1 * s1 + s2 * s2 - 2.0 * w.cos() * s1 * s2;
    let amplitude = 2.0 * power.sqrt() / tail.len() as f64;
    20.0 * amplitude.log10()
}

fn check(codec: Codec, tone_floor: f64, chirp_floor: f64) {
    let rate = codec.sample_rate();
    let t = tone(rate, 1000.0, -10.0, 1.0);
    let got = round_trip(codec, &t);
    let (tone_snr, lag) = snr(&t, &got, rate as usize / 50);
    let level = level_at(&got, rate, 1000.0);
    let beside = level_at(&got, rate, 1300.0);
    let c = chirp(rate, 200.0, 3400.0, -16.0, 2.0);
    let (chirp_snr, _) = snr(&c, &round_trip(codec, &c), rate as usize / 50);
    println!(
        "{codec:?}: tone SNR {tone_snr:.1} dB (delay {lag} samples), level {level:.2} dBFS, \
         chirp SNR {chirp_snr:.1} dB"
    );
    assert!(
        tone_snr >= tone_floor,
        "{codec:?} tone SNR {tone_snr:.1} dB"
    );
    assert!(
        chirp_snr >= chirp_floor,
        "{codec:?} chirp SNR {chirp_snr:.1} dB"
    );
    assert!(
        (level + 10.0).abs() < 1.0,
        "{codec:?} tone at {level:.2} dBFS"
    );
    assert!(
        beside < level - 30.0,
        "{codec:?} 1300 Hz at {beside:.1} dBFS"
    );
}

#[test]
fn pcmu_and_pcma_keep_g712s_distortion_mask() {
    check(Codec::Pcmu, 35.0, 33.0);
    check(Codec::Pcma, 35.0, 33.0);
}

#[test]
fn g722_keeps_tones_and_chirps_at_adpcm_quality() {
    check(Codec::G722, 40.0, 35.0);
}

#[test]
fn opus_at_64_kbits_keeps_tones_and_chirps() {
    check(Codec::Opus, 20.0, 12.0);
}

#[test]
fn g729_keeps_a_tone_and_follows_a_chirp() {
    check(Codec::G729, 8.0, 8.0);
}

#[test]
fn resampling_up_and_back_keeps_the_signal() {
    for (low, high) in [(8000, 16000), (8000, 48000), (16000, 48000)] {
        let mut up = Resampler::new(low, high).unwrap();
        let mut down = Resampler::new(high, low).unwrap();
        let t = tone(low, 1000.0, -10.0, 1.0);
        let mut wide = vec![0i16; up.output_len(t.len())];
        assert_eq!(up.process(&t, &mut wide).unwrap(), wide.len());
        assert!(
            (level_at(&wide, high, 1000.0) + 10.0).abs() < 0.5,
            "{low}->{high}"
        );
        // Below the anti-aliasing filter's roll-off towards 4 kHz.
        let c = chirp(low, 200.0, 3000.0, -16.0, 1.0);
        let mut wide = vec![0i16; up.output_len(t.len())];
        assert_eq!(up.process(&c, &mut wide).unwrap(), wide.len());
        let mut back = vec![0i16; c.len()];
        assert_eq!(down.process(&wide, &mut back).unwrap(), c.len());
        let (s, lag) = snr(&c, &back, low as usize / 20);
        println!("{low} -> {high} -> {low} Hz: SNR {s:.1} dB, delay {lag} samples");
        assert!(s >= 60.0, "{low}->{high}->{low}: SNR {s:.1} dB");
    }
    assert!(Resampler::new(8000, 8000).unwrap().delay() == 0);
    let e = Resampler::new(8000, 16000)
        .unwrap()
        .process(&[0; 81], &mut [0; 200])
        .unwrap_err();
    assert!(e.to_string().contains("81 samples at 8000 Hz"), "{e}");
}

#[test]
fn codecs_read_by_their_sdp_names() {
    assert_eq!(Codec::from_encoding("opus", 48000), Some(Codec::Opus));
    assert_eq!(Codec::from_encoding("G722", 8000), Some(Codec::G722));
    assert_eq!(Codec::from_encoding("g729", 8000), Some(Codec::G729));
    assert_eq!(Codec::from_encoding("PCMU", 16000), None);
    assert_eq!(Codec::from_static_payload_type(9), Some(Codec::G722));
    assert!(Codec::Opus.takes_ptime(20) && !Codec::Opus.takes_ptime(30));
    assert!(Codec::G729.takes_ptime(30) && !Codec::G729.takes_ptime(25));
}

#[test]
fn garbage_payloads_decode_without_panicking() {
    let junk: Vec<u8> = (0..400u32).map(|i| (i * 37 % 251) as u8).collect();
    for codec in Codec::ALL {
        let mut dec = Decoder::new(codec).unwrap();
        let mut out = vec![0i16; 5760];
        for len in [0, 1, 2, 3, 11, 160, 400] {
            // An error is fine (Opus refuses junk); a panic is not.
            let _ = dec.decode(&junk[..len], &mut out);
        }
    }
}
