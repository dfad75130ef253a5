use super::*;
use crate::synth::{tone_level, write_pcap, ToneRecording};
use chrono::TimeZone;

const RTP_AT: usize = 28; // IPv4 + UDP headers in the synthetic packets

fn recording(secs: usize) -> ToneRecording {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 20, 0, 0).unwrap();
    ToneRecording::two_legs("r1", "call-1@host", t0, secs)
}

use chrono::Utc;

/// Writes `packets` as the recording's capture and renders it.
fn render_with(rec: &ToneRecording, packets: &[(Duration, Vec<u8>)], layout: Layout) -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    write_pcap(&dir.path().join("rtp.pcap"), packets).unwrap();
    render(dir.path(), &rec.meta(), layout).unwrap()
}

fn channels(wav: &[u8]) -> Vec<Vec<i16>> {
    let mut r = hound::WavReader::new(wav).unwrap();
    let n = r.spec().channels as usize;
    assert_eq!(r.spec().sample_rate, 8000);
    let all: Vec<i16> = r.samples::<i16>().map(Result::unwrap).collect();
    (0..n)
        .map(|c| all.iter().skip(c).step_by(n).copied().collect())
        .collect()
}

#[test]
fn two_legs_give_one_channel_each_with_their_tone() {
    let rec = recording(3);
    let out = render_with(&rec, &rec.packets(), Layout::PerLeg);
    assert_eq!(
        (out.channels, out.codec.as_str(), out.skipped),
        (2, "PCMA,PCMU", 0)
    );
    assert_eq!(out.duration, Duration::from_secs(3));
    let ch = channels(&out.wav);
    assert!(
        tone_level(&ch[0], 440.0) > 0.9,
        "{}",
        tone_level(&ch[0], 440.0)
    );
    assert!(tone_level(&ch[0], 1000.0) < 0.05);
    assert!(tone_level(&ch[1], 1000.0) > 0.9);
    assert!(tone_level(&ch[1], 440.0) < 0.05);
}

#[test]
fn mixed_layout_sums_the_legs_into_one_channel() {
    let rec = recording(2);
    let out = render_with(&rec, &rec.packets(), Layout::Mixed);
    let ch = channels(&out.wav);
    assert_eq!(ch.len(), 1);
    assert!(tone_level(&ch[0], 440.0) > 0.5);
    assert!(tone_level(&ch[0], 1000.0) > 0.5);
}

#[test]
fn lost_packets_leave_silence_in_place_and_reordering_is_undone() {
    let rec = recording(3);
    let mut packets = rec.packets();
    // Drop the caller's second second (packets 50..100, every other one is
    // the caller's), and swap two of the callee's packets.
    packets.retain(|(at, p)| {
        let caller = p[RTP_AT + 11] == 0x11;
        let ms = (*at - packets_t0(&rec)).as_millis();
        !(caller && (1000..2000).contains(&ms))
    });
    packets.swap(1, 3);
    let out = render_with(&rec, &packets, Layout::PerLeg);
    let ch = channels(&out.wav);
    assert_eq!(ch[0].len(), 24000);
    assert!(ch[0][8000..16000].iter().all(|&s| s == 0));
    assert!(tone_level(&ch[0][16000..], 440.0) > 0.9);
    assert!(tone_level(&ch[0][..8000], 440.0) > 0.9);
    assert!(tone_level(&ch[1], 1000.0) > 0.9);
}

fn packets_t0(rec: &ToneRecording) -> Duration {
    Duration::from_millis(rec.started.timestamp_millis() as u64)
}

#[test]
fn a_new_ssrc_starts_a_new_timeline_at_its_arrival() {
    let rec = recording(4);
    let mut packets = rec.packets();
    // From 2 s on the caller's stream is a new SSRC whose timestamps start
    // at a random base: it must still land at 2 s, not at its timestamp.
    for (at, p) in &mut packets {
        if p[RTP_AT + 11] == 0x11 && (*at - packets_t0(&rec)).as_millis() >= 2000 {
            p[RTP_AT + 8..RTP_AT + 12].copy_from_slice(&0x3333u32.to_be_bytes());
            let ts = u32::from_be_bytes(p[RTP_AT + 4..RTP_AT + 8].try_into().unwrap());
            p[RTP_AT + 4..RTP_AT + 8].copy_from_slice(&ts.wrapping_add(0x7000_0000).to_be_bytes());
        }
    }
    let out = render_with(&rec, &packets, Layout::PerLeg);
    let ch = channels(&out.wav);
    assert_eq!(ch[0].len(), 32000, "the new stream is placed by arrival");
    assert!(tone_level(&ch[0][16000..], 440.0) > 0.9);
    assert!(ch[0][16000..].iter().filter(|&&s| s == 0).count() < 400);
}

#[test]
fn telephone_events_and_unknown_payload_types_are_skipped() {
    let rec = recording(1);
    let mut packets = rec.packets();
    packets[0].1[RTP_AT + 1] = 101; // telephone-event
    packets[1].1[RTP_AT + 1] = 18; // not negotiated
    packets[2].1[RTP_AT] = 0x40; // not RTP version 2
    let out = render_with(&rec, &packets, Layout::PerLeg);
    assert_eq!(out.skipped, 3);
    let ch = channels(&out.wav);
    assert!(ch[0][..160].iter().all(|&s| s == 0));
    assert!(tone_level(&ch[0][160..], 440.0) > 0.9);
}

#[test]
fn a_missing_or_broken_capture_is_an_error_naming_it() {
    let rec = recording(1);
    let dir = tempfile::tempdir().unwrap();
    let e = render(dir.path(), &rec.meta(), Layout::PerLeg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rtp.pcap"), "{e}");
    std::fs::write(dir.path().join("rtp.pcap"), [0u8; 10]).unwrap();
    let e = render(dir.path(), &rec.meta(), Layout::PerLeg)
        .unwrap_err()
        .to_string();
    assert!(e.contains("rtp.pcap") && e.contains("pcap"), "{e}");
}
