//! Reading a recording's packet captures: pcap files (through the
//! `pcap-file` crate) of LINKTYPE_RAW packets, IP + UDP + RTP as received,
//! parsed with the data plane's own packet views. Each packet comes out with
//! its arrival time and UDP destination (which tells the legs apart).
//! Packets that are not UDP over IP are skipped and counted; a file that is
//! not a pcap, has another link type or is cut mid-record is an error naming
//! the file.

use pcap_file::pcap::PcapReader;
use pcap_file::DataLink;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::time::Duration;
use tollgate_dataplane::wire::{ipv4, ipv6, udp};

/// Why a capture could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("capture {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("capture {path}: not a readable pcap file: {detail}")]
    Format { path: String, detail: String },
    #[error("capture {path}: link type {link:?}, expected RAW (IP packets without a link header)")]
    LinkType { path: String, link: DataLink },
}

/// One UDP datagram of a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Datagram {
    /// Arrival time (since the Unix epoch, as the capture stamped it).
    pub at: Duration,
    pub source: SocketAddr,
    pub destination: SocketAddr,
    pub payload: Vec<u8>,
}

/// A capture's datagrams in file order, and how many records were not UDP.
#[derive(Debug, Default)]
pub struct Capture {
    pub datagrams: Vec<Datagram>,
    pub skipped: u64,
}

/// Reads every record of the pcap file at `path`.
pub fn read(path: &Path) -> Result<Capture, CaptureError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| CaptureError::Io {
        path: name.clone(),
        source,
    })?;
    let format = |e: pcap_file::PcapError| CaptureError::Format {
        path: name.clone(),
        detail: e.to_string(),
    };
    let mut reader = PcapReader::new(std::io::BufReader::new(file)).map_err(format)?;
    let link = reader.header().datalink;
    if !matches!(link, DataLink::RAW | DataLink::IPV4 | DataLink::IPV6) {
        return Err(CaptureError::LinkType { path: name, link });
    }
    let mut capture = Capture::default();
    while let Some(record) = reader.next_packet() {
        let record = record.map_err(format)?;
        match parse(&record.data) {
            Some((source, destination, payload)) => capture.datagrams.push(Datagram {
                at: record.timestamp,
                source,
                destination,
                payload,
            }),
            None => capture.skipped += 1,
        }
    }
    Ok(capture)
}

/// Source, destination and payload of a UDP datagram in an IP packet.
fn parse(packet: &[u8]) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
    match packet.first()? >> 4 {
        4 => {
            let ip = ipv4::Packet::new_checked(packet).ok()?;
            (ip.protocol() == ipv4::PROTO_UDP)
                .then(|| datagram(ip.source().into(), ip.destination().into(), ip.payload()))?
        }
        6 => {
            let ip = ipv6::Packet::new_checked(packet).ok()?;
            (ip.next_header() == ipv4::PROTO_UDP)
                .then(|| datagram(ip.source().into(), ip.destination().into(), ip.payload()))?
        }
        _ => None,
    }
}

fn datagram(src: IpAddr, dst: IpAddr, segment: &[u8]) -> Option<(SocketAddr, SocketAddr, Vec<u8>)> {
    let d = udp::Datagram::new_checked(segment).ok()?;
    Some((
        SocketAddr::new(src, d.source_port()),
        SocketAddr::new(dst, d.destination_port()),
        d.payload().to_vec(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::synth::{ip_udp as ipv4_udp, write_pcap};

    #[test]
    fn reads_udp_datagrams_and_skips_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rtp.pcap");
        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:30000".parse().unwrap();
        let mut tcp = ipv4_udp(a, b, b"x");
        tcp[9] = 6;
        write_pcap(
            &path,
            &[
                (Duration::from_millis(5), ipv4_udp(a, b, b"hello")),
                (Duration::from_millis(6), tcp),
                (Duration::from_millis(7), vec![0x45, 0]),
            ],
        )
        .unwrap();
        let c = read(&path).unwrap();
        assert_eq!(c.skipped, 2);
        assert_eq!(
            c.datagrams,
            vec![Datagram {
                at: Duration::from_millis(5),
                source: a,
                destination: b,
                payload: b"hello".to_vec(),
            }]
        );
    }

    #[test]
    fn bad_files_are_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("junk.pcap");
        std::fs::write(&path, b"this is not a capture at all").unwrap();
        let e = read(&path).unwrap_err().to_string();
        assert!(
            e.contains("junk.pcap") && e.contains("not a readable pcap"),
            "{e}"
        );

        let a: SocketAddr = "10.0.0.1:4000".parse().unwrap();
        let cut = dir.path().join("cut.pcap");
        write_pcap(&cut, &[(Duration::ZERO, ipv4_udp(a, a, &[0; 100]))]).unwrap();
        let len = std::fs::metadata(&cut).unwrap().len();
        let f = std::fs::OpenOptions::new().write(true).open(&cut).unwrap();
        f.set_len(len - 50).unwrap();
        let e = read(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.pcap"), "{e}");

        let e = read(&dir.path().join("gone.pcap")).unwrap_err().to_string();
        assert!(e.contains("gone.pcap"), "{e}");
    }
}
