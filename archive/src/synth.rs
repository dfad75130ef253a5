//! Synthetic recordings, made the way the recorder hands them over: a tone
//! per leg as G.711 RTP (20 ms packets), captured into one pcap
//! (LINKTYPE_RAW) with a `recording.json`, written under `<spool>/open/`
//! and renamed into `<spool>/ready/`. `tollgate bench archive` and the tests
//! archive these; [`tone_level`] (Goertzel) checks what comes back.

use crate::meta::{Codec, Kind, LegMeta, RecordingMeta};
use chrono::{DateTime, Utc};
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;
use tollgate_codec::Law;

/// Samples per 20 ms packet.
pub const PTIME_SAMPLES: usize = 160;

/// One leg's tone.
#[derive(Debug, Clone)]
pub struct ToneLeg {
    pub label: String,
    /// The relay address its packets arrive at.
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub hz: f64,
    pub law: Law,
    pub ssrc: u32,
}

/// A recording to synthesise.
#[derive(Debug, Clone)]
pub struct ToneRecording {
    pub recording_id: String,
    pub call_id: String,
    pub org: Option<String>,
    pub kind: Kind,
    pub started: DateTime<Utc>,
    pub packets: usize,
    pub legs: Vec<ToneLeg>,
}

impl ToneRecording {
    /// Two legs, 440 Hz from the caller (PCMU) and 1000 Hz from the callee
    /// (PCMA), `secs` long.
    pub fn two_legs(
        recording_id: &str,
        call_id: &str,
        started: DateTime<Utc>,
        secs: usize,
    ) -> Self {
        let addr = |s: &str| s.parse::<SocketAddr>().expect("literal address");
        ToneRecording {
            recording_id: recording_id.into(),
            call_id: call_id.into(),
            org: None,
            kind: Kind::Recording,
            started,
            packets: secs * 50,
            legs: vec![
                ToneLeg {
                    label: "caller".into(),
                    local: addr("127.0.0.1:30000"),
                    remote: addr("127.0.0.1:40000"),
                    hz: 440.0,
                    law: Law::Pcmu,
                    ssrc: 0x1111,
                },
                ToneLeg {
                    label: "callee".into(),
                    local: addr("127.0.0.1:30002"),
                    remote: addr("127.0.0.1:40002"),
                    hz: 1000.0,
                    law: Law::Pcma,
                    ssrc: 0x2222,
                },
            ],
        }
    }

    pub fn meta(&self) -> RecordingMeta {
        let at = |d: DateTime<Utc>| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let length = chrono::Duration::milliseconds(self.packets as i64 * 20);
        RecordingMeta {
            recording_id: self.recording_id.clone(),
            call_id: self.call_id.clone(),
            org: self.org.clone(),
            kind: self.kind,
            started_at: at(self.started),
            ended_at: at(self.started + length),
            legs: self
                .legs
                .iter()
                .enumerate()
                .map(|(i, l)| leg_meta(i, l))
                .collect(),
            captures: vec!["rtp.pcap".into()],
        }
    }

    /// Every leg's packets, interleaved in arrival order, as IP packets.
    pub fn packets(&self) -> Vec<(Duration, Vec<u8>)> {
        let t0 = Duration::from_millis(self.started.timestamp_millis().max(0) as u64);
        let mut out = Vec::with_capacity(self.packets * self.legs.len());
        for n in 0..self.packets {
            for leg in &self.legs {
                let at = t0 + Duration::from_millis(n as u64 * 20);
                out.push((at, ip_udp(leg.remote, leg.local, &rtp_packet(leg, n))));
            }
        }
        out
    }

    /// Writes the recording into `<spool>/open/<id>/` and renames it into
    /// `<spool>/ready/<id>/`; returns the ready directory.
    pub fn write(&self, spool: &Path) -> std::io::Result<PathBuf> {
        let open = spool.join("open").join(&self.recording_id);
        std::fs::create_dir_all(&open)?;
        write_pcap(&open.join("rtp.pcap"), &self.packets())?;
        self.meta()
            .write(&open)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        let ready = spool.join("ready");
        std::fs::create_dir_all(&ready)?;
        let dest = ready.join(&self.recording_id);
        std::fs::rename(&open, &dest)?;
        Ok(dest)
    }
}

fn leg_meta(i: usize, l: &ToneLeg) -> LegMeta {
    LegMeta {
        tag: format!("tag{i}"),
        label: l.label.clone(),
        local: l.local,
        remote: Some(l.remote),
        ssrcs: vec![l.ssrc],
        codecs: vec![
            Codec {
                payload_type: l.law.payload_type(),
                name: l.law.encoding().into(),
                clock_rate: 8000,
            },
            Codec {
                payload_type: 101,
                name: "telephone-event".into(),
                clock_rate: 8000,
            },
        ],
    }
}

/// Packet `n` of a leg's tone: sequence and timestamp count from 0.
fn rtp_packet(leg: &ToneLeg, n: usize) -> Vec<u8> {
    let pt = leg.law.payload_type();
    let ts = (n * PTIME_SAMPLES) as u32;
    let mut p = vec![0x80, pt, 0, 0];
    p[2..4].copy_from_slice(&(n as u16).to_be_bytes());
    p.extend_from_slice(&ts.to_be_bytes());
    p.extend_from_slice(&leg.ssrc.to_be_bytes());
    for i in 0..PTIME_SAMPLES {
        let t = (n * PTIME_SAMPLES + i) as f64 / 8000.0;
        let s = (std::f64::consts::TAU * leg.hz * t).sin() * 12000.0;
        p.push(leg.law.encode(s as i16));
    }
    p
}

/// An IP + UDP packet (checksums zero, as a tap copies what it got).
pub fn ip_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let ulen = (8 + payload.len()) as u16;
    let mut udp = Vec::with_capacity(ulen as usize);
    udp.extend_from_slice(&src.port().to_be_bytes());
    udp.extend_from_slice(&dst.port().to_be_bytes());
    udp.extend_from_slice(&ulen.to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(payload);
    let mut p = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + udp.len()) as u16;
            let mut h = vec![0x45, 0];
            h.extend_from_slice(&total.to_be_bytes());
            h.extend_from_slice(&[0, 0, 0, 0, 64, 17, 0, 0]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
        (s, d) => {
            let (s, d) = (to_v6(s), to_v6(d));
            let mut h = vec![0x60, 0, 0, 0];
            h.extend_from_slice(&(udp.len() as u16).to_be_bytes());
            h.extend_from_slice(&[17, 64]);
            h.extend_from_slice(&s.octets());
            h.extend_from_slice(&d.octets());
            h
        }
    };
    p.extend_from_slice(&udp);
    p
}

fn to_v6(ip: IpAddr) -> std::net::Ipv6Addr {
    match ip {
        IpAddr::V4(v4) => v4.to_ipv6_mapped(),
        IpAddr::V6(v6) => v6,
    }
}

/// Writes IP packets with their arrival times as a LINKTYPE_RAW pcap.
pub fn write_pcap(path: &Path, packets: &[(Duration, Vec<u8>)]) -> std::io::Result<()> {
    let header = PcapHeader {
        datalink: DataLink::RAW,
        ..Default::default()
    };
    let err = |e: pcap_file::PcapError| std::io::Error::other(format!("{}: {e}", path.display()));
    let file = std::io::BufWriter::new(std::fs::File::create(path)?);
    let mut w = PcapWriter::with_header(file, header).map_err(err)?;
    for (at, p) in packets {
        w.write_packet(&PcapPacket::new(*at, p.len() as u32, p))
            .map_err(err)?;
    }
    let mut file = w.into_writer();
    std::io::Write::flush(&mut file)?;
    file.get_ref().sync_all()
}

/// The RMS level of `hz` in `samples` (Goertzel), relative to full scale of
/// the samples' own RMS: near 1 when the tone is all there is, near 0 when
/// it is absent.
pub fn tone_level(samples: &[i16], hz: f64) -> f64 {
    if samples.is_empty() {
        return 0.0;
    }
    let coeff = 2.0 * (std::f64::consts::TAU * hz / 8000.0).cos();
    let (mut s1, mut s2) = (0.0f64, 0.0f64);
    for &x in samples {
        let s0 = f64::from(x) + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
    }
    let power = s1 * s1 + s2 * s2 - coeff * s1 * s2;
    let n = samples.len() as f64;
    let tone_rms = (2.0 * power).sqrt() / n;
    let rms = (samples.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / n).sqrt();
    if rms == 0.0 {
        0.0
    } else {
        tone_rms / rms
    }
}
