//! The recorder end to end inside the process: a pipeline with a tap stage
//! feeds a recording whose pcap a real parser (`pcap-file`) reads back, and
//! a capture on a device that takes no bytes fails cleanly.

use super::*;
use crate::flow::Flow;
use crate::pipeline::{Payload, Pipeline, PipelineFlow, StageSpec, Verdict};
use pcap_file::pcap::PcapReader;

fn recorder() -> &'static Recorder {
    Box::leak(Box::default())
}

fn temp_dir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("tg-rec-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn rtp(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut b = vec![0x80, 0, 0, 0, 0, 0, 0, 160];
    b[2..4].copy_from_slice(&seq.to_be_bytes());
    b.extend_from_slice(&ssrc.to_be_bytes());
    b.extend((0..160).map(|i| (i as u8) ^ (seq as u8)));
    b
}

/// A pipeline on `rec` with one tapped flow at slot 0 for `recording`.
fn tapped(rec: &'static Recorder, local: &str, recording: u32) -> Pipeline {
    let (events, _) = crossbeam_channel::bounded(8);
    let mut p = Pipeline::with_tap(events, rec.attach());
    let flow = Flow {
        stages: vec![StageSpec::Null, StageSpec::Tap { recording }],
        ..Flow::relay(
            local.parse().unwrap(),
            "10.0.2.1:30002".parse().unwrap(),
            "10.0.2.2:4000".parse().unwrap(),
        )
    };
    p.install(0, PipelineFlow::new(&flow));
    p
}

fn send(p: &mut Pipeline, from: &str, bytes: &[u8]) {
    let mut buf = vec![0u8; 2048];
    buf[..bytes.len()].copy_from_slice(bytes);
    let mut payload = Payload::new(&mut buf, bytes.len());
    let v = p.process(5_000_000, 0, Some(from.parse().unwrap()), &mut payload);
    assert_eq!(v, Verdict::Forward);
    assert!(!payload.modified(), "a tap leaves the packet alone");
}

#[test]
fn tapped_packets_land_in_the_pcap_as_received() {
    let rec = recorder();
    let dir = temp_dir("pcap");
    let opened = rec.open(&dir, None).unwrap();
    let id = opened.recording;
    let mut p = tapped(rec, "10.0.1.1:30000", id);
    let sent: Vec<Vec<u8>> = (0..10u16)
        .map(|i| rtp(if i < 6 { 0x1111 } else { 0x2222 }, i))
        .collect();
    for b in &sent {
        send(&mut p, "192.0.2.7:4000", b);
    }
    assert_eq!(p.counters().tapped, 10);
    let report = rec.close(id).unwrap();
    assert_eq!((report.packets, report.lost, report.error), (10, 0, None));
    let leg = &report.legs[0];
    assert_eq!(leg.local, "10.0.1.1:30000".parse().unwrap());
    assert_eq!(leg.ssrcs, vec![0x1111, 0x2222]);
    assert_eq!(leg.source, Some("192.0.2.7:4000".parse().unwrap()));
    let file = std::fs::File::open(dir.join(capture::CAPTURE_FILE)).unwrap();
    let mut r = PcapReader::new(file).unwrap();
    assert_eq!(r.header().datalink, pcap_file::DataLink::RAW);
    let mut got = Vec::new();
    while let Some(pkt) = r.next_packet() {
        let d = pkt.unwrap().data.into_owned();
        assert_eq!(d[0], 0x45, "IPv4 without options");
        assert_eq!(&d[12..16], &[192, 0, 2, 7], "the sender");
        assert_eq!(&d[16..20], &[10, 0, 1, 1], "the flow's local address");
        assert_eq!(u16::from_be_bytes([d[22], d[23]]), 30000);
        got.push(d[28..].to_vec());
    }
    assert_eq!(got, sent);
    assert!(rec.close(id).is_err(), "closed once");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn packets_for_a_recording_not_open_are_counted_not_written() {
    let rec = recorder();
    let mut p = tapped(rec, "10.0.1.1:30010", 77);
    send(&mut p, "192.0.2.7:4000", &rtp(1, 1));
    let dir = temp_dir("unknown");
    let other = rec.open(&dir, None).unwrap().recording;
    rec.close(other).unwrap();
    let unknown = rec
        .counters()
        .into_iter()
        .find(|(k, _)| k == "recorder_unknown_recording");
    assert_eq!(unknown, Some(("recorder_unknown_recording".into(), 1)));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_device_that_takes_no_bytes_fails_the_capture_once_and_loses_no_calls() {
    let rec = recorder();
    let dir = temp_dir("full");
    std::fs::create_dir_all(&dir).unwrap();
    std::os::unix::fs::symlink("/dev/full", dir.join(capture::CAPTURE_FILE)).unwrap();
    let id = rec.open(&dir, None).unwrap().recording;
    let mut p = tapped(rec, "10.0.1.1:30020", id);
    for i in 0..5 {
        send(&mut p, "192.0.2.7:4000", &rtp(9, i));
    }
    rec.state().drain(&mut vec![0u8; SCRATCH]);
    for i in 5..8 {
        send(&mut p, "192.0.2.7:4000", &rtp(9, i));
    }
    let report = rec.close(id).unwrap();
    let error = report.error.unwrap();
    assert!(
        error.contains("rtp.pcap") && error.contains("No space left"),
        "{error}"
    );
    assert_eq!((report.packets, report.lost), (0, 8));
    assert_eq!(
        report.legs[0].packets, 8,
        "the leg's packets are still known"
    );
    let errors = rec
        .counters()
        .into_iter()
        .find(|(k, _)| k == "recorder_write_errors");
    assert_eq!(errors.map(|(_, v)| v), Some(1), "one failure, counted once");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_recording_reopened_under_its_number_appends_after_its_last_whole_packet() {
    let rec = recorder();
    let dir = temp_dir("reopen");
    let id = rec.open(&dir, None).unwrap().recording;
    let mut p = tapped(rec, "10.0.1.1:30030", id);
    let sent: Vec<Vec<u8>> = (0..8u16).map(|i| rtp(0x3333, i)).collect();
    for b in &sent[..5] {
        send(&mut p, "192.0.2.7:4000", b);
    }
    rec.close(id).unwrap();
    // A process killed in the middle of a write leaves half a record.
    let path = dir.join(capture::CAPTURE_FILE);
    let mut torn = std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap();
    std::io::Write::write_all(&mut torn, &[7u8; 20]).unwrap();
    assert!(
        matches!(rec.open(&dir, Some(id)), Ok(r) if r.recording == id),
        "reopened under its number"
    );
    assert!(
        matches!(rec.open(&dir, Some(id)), Ok(r) if r.recording == id),
        "reopening an open recording is a no-op"
    );
    let other = temp_dir("after-reopen");
    assert!(
        matches!(rec.open(&other, Some(id)), Err(RecorderError::AlreadyOpen(n)) if n == id),
        "not under another directory"
    );
    let fresh = rec.open(&other, None).unwrap().recording;
    assert!(fresh > id, "new numbers stay clear of reopened ones");
    rec.close(fresh).unwrap();
    std::fs::remove_dir_all(&other).unwrap();
    for b in &sent[5..] {
        send(&mut p, "192.0.2.7:4000", b);
    }
    assert_eq!(rec.close(id).unwrap().packets, 3, "this run's packets");
    let mut r = PcapReader::new(std::fs::File::open(&path).unwrap()).unwrap();
    let mut got = Vec::new();
    while let Some(pkt) = r.next_packet() {
        got.push(pkt.expect("whole records only").data[28..].to_vec());
    }
    assert_eq!(got, sent, "both runs, in order, nothing torn");
    std::fs::remove_dir_all(&dir).unwrap();
}
