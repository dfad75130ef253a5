//! One recording's capture file: `rtp.pcap` (LINKTYPE_RAW, nanosecond
//! timestamps, written with the `pcap-file` crate) in the recording's
//! directory. Packets are gathered in memory and written once per drain;
//! each gets an IP and UDP header rebuilt from its source and the flow's
//! local address around the payload exactly as received, so a reader tells
//! the legs apart by UDP destination. Also keeps, per leg (local address),
//! what a recording's description needs: packets, bytes, SSRCs seen, the
//! last source.
//!
//! A write that fails (a full disk) is logged once at error level and
//! counted; the file is cut back to its last whole packet, so what was
//! written stays readable, and the capture takes no more packets. A capture
//! opened again (a data plane restarted mid-recording) is cut back the same
//! way first, as the killed process may have left half a packet, and then
//! appended to.

use super::ring::Record;
use super::{LegReport, RecordingReport};
use byteorder_slice::LittleEndian;
use pcap_file::pcap::{PcapHeader, PcapPacket};
use pcap_file::{DataLink, Endianness, TsResolution};
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The capture's file name in its recording's directory.
pub const CAPTURE_FILE: &str = "rtp.pcap";
/// Legs and SSRCs per leg a capture keeps track of (a stream that changes
/// SSRC on every packet must not grow the report without bound).
const MAX_LEGS: usize = 64;
const MAX_SSRCS: usize = 32;
const SNAPLEN: u32 = 65535 + 48;

pub struct Capture {
    recording: u32,
    dir: PathBuf,
    path: PathBuf,
    file: File,
    /// Bytes on disk.
    written: u64,
    /// Packets gathered since the last flush, pcap-encoded, and where each
    /// ends in it.
    pending: Vec<u8>,
    ends: Vec<usize>,
    packets: u64,
    bytes: u64,
    lost: u64,
    error: Option<String>,
    legs: Vec<LegReport>,
}

fn header() -> PcapHeader {
    PcapHeader {
        datalink: DataLink::RAW,
        ts_resolution: TsResolution::NanoSecond,
        snaplen: SNAPLEN,
        endianness: Endianness::Little,
        ..PcapHeader::default()
    }
}

fn io_error(path: &Path, e: impl std::fmt::Display) -> String {
    format!("{}: {e}", path.display())
}

impl Capture {
    /// Opens (creating the directory) the capture of `dir`; one that
    /// exists already is cut to its whole packets and appended to, so
    /// opening again after a restart keeps what was there.
    pub fn open(recording: u32, dir: &Path) -> Result<Capture, String> {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let path = dir.join(CAPTURE_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .read(true)
            .append(true)
            .open(&path)
            .map_err(|e| io_error(&path, e))?;
        let (written, len) = whole_records(&file).map_err(|e| io_error(&path, e))?;
        if written < len {
            file.set_len(written).map_err(|e| io_error(&path, e))?;
        }
        let mut c = Capture {
            recording,
            dir: dir.to_path_buf(),
            path,
            file,
            written,
            pending: Vec::new(),
            ends: Vec::new(),
            packets: 0,
            bytes: 0,
            lost: 0,
            error: None,
            legs: Vec::new(),
        };
        if written == 0 {
            header()
                .write_to(&mut c.pending)
                .expect("a pcap header writes to memory");
        }
        c.ends.push(c.pending.len());
        Ok(c)
    }

    /// Adds one packet, received at `wall` (since the Unix epoch).
    /// `scratch` is room for the datagram (at least 64 KiB + 48 bytes).
    pub fn add(&mut self, r: &Record, payload: &[u8], wall: Duration, scratch: &mut [u8]) {
        self.note_leg(r, payload);
        if self.error.is_some() {
            self.lost += 1;
            return;
        }
        let unknown = match r.local.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let route = crate::backend::xdp::afxdp::Route {
            source: r.source.unwrap_or(SocketAddr::new(unknown, 0)),
            destination: r.local,
        };
        let Some(n) = crate::backend::xdp::afxdp::build_datagram(scratch, route, payload) else {
            self.lost += 1;
            return;
        };
        let packet = PcapPacket::new(wall, n as u32, &scratch[..n]);
        let written = packet.write_to::<_, LittleEndian>(
            &mut self.pending,
            TsResolution::NanoSecond,
            SNAPLEN,
        );
        if written.is_err() {
            self.lost += 1;
            return;
        }
        self.ends.push(self.pending.len());
        self.packets += 1;
        self.bytes += payload.len() as u64;
    }

    fn note_leg(&mut self, r: &Record, payload: &[u8]) {
        let i = match self.legs.iter().position(|l| l.local == r.local) {
            Some(i) => i,
            None if self.legs.len() < MAX_LEGS => {
                self.legs.push(LegReport {
                    local: r.local,
                    packets: 0,
                    bytes: 0,
                    ssrcs: Vec::new(),
                    source: None,
                });
                self.legs.len() - 1
            }
            None => return,
        };
        let leg = &mut self.legs[i];
        leg.packets += 1;
        leg.bytes += payload.len() as u64;
        if r.source.is_some() {
            leg.source = r.source;
        }
        if let Some(ssrc) = rtp_ssrc(payload) {
            if !leg.ssrcs.contains(&ssrc) && leg.ssrcs.len() < MAX_SSRCS {
                leg.ssrcs.push(ssrc);
            }
        }
    }

    /// Writes what was gathered. On failure, returns the error (the first
    /// time only, for the one log line) after cutting the file back to its
    /// last whole packet.
    pub fn flush(&mut self) -> Option<String> {
        let mut buf = std::mem::take(&mut self.pending);
        let ends = std::mem::replace(&mut self.ends, vec![0]);
        if buf.is_empty() || self.error.is_some() {
            buf.clear();
            self.pending = buf;
            return None;
        }
        let mut done = 0;
        let failure = loop {
            if done == buf.len() {
                break None;
            }
            match self.file.write(&buf[done..]) {
                Ok(0) => break Some("the disk took no more bytes".to_string()),
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Some(e.to_string()),
            }
        };
        buf.clear();
        self.pending = buf;
        let Some(why) = failure else {
            self.written += done as u64;
            return None;
        };
        let whole = ends
            .iter()
            .copied()
            .filter(|&e| e <= done)
            .max()
            .unwrap_or(0);
        let unwritten = ends[1..].iter().filter(|&&e| e > whole).count() as u64;
        self.packets -= unwritten;
        self.lost += unwritten;
        self.written += whole as u64;
        let _ = self.file.set_len(self.written);
        let message = io_error(&self.path, why);
        self.error = Some(message.clone());
        Some(message)
    }

    /// Syncs the file (the archive takes it from here) and says what the
    /// capture holds.
    pub fn close(mut self) -> RecordingReport {
        if let Some(e) = self.flush() {
            tracing::error!(recording = self.recording, error = %e, "recording capture: write failed");
        }
        if let Err(e) = self.file.sync_all() {
            self.error.get_or_insert_with(|| io_error(&self.path, e));
        }
        self.report()
    }

    pub fn report(&self) -> RecordingReport {
        RecordingReport {
            recording: self.recording,
            dir: self.dir.clone(),
            captures: vec![CAPTURE_FILE.to_string()],
            packets: self.packets,
            bytes: self.bytes,
            lost: self.lost,
            error: self.error.clone(),
            legs: self.legs.clone(),
        }
    }
}

/// Bytes of `file` that are a pcap header and whole records (0 when the
/// header itself is cut), and its length. Walks the record headers only:
/// the packet format is this module's own, so no general pcap reader is
/// needed.
fn whole_records(file: &File) -> std::io::Result<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    const HEADER: u64 = 24;
    const RECORD: u64 = 16;
    let len = file.metadata()?.len();
    if len < HEADER {
        return Ok((0, len));
    }
    let mut f = file;
    let mut at = HEADER;
    let mut rec = [0u8; RECORD as usize];
    while at + RECORD <= len {
        f.seek(SeekFrom::Start(at))?;
        f.read_exact(&mut rec)?;
        let caplen = u32::from_le_bytes([rec[8], rec[9], rec[10], rec[11]]);
        let end = at + RECORD + u64::from(caplen);
        if end > len {
            break;
        }
        at = end;
    }
    Ok((at, len))
}

/// The SSRC of an RTP packet (version 2, not RTCP by RFC 5761's rule).
fn rtp_ssrc(b: &[u8]) -> Option<u32> {
    let rtcp = crate::pipeline::stages::is_rtcp(b);
    (b.len() >= 12 && b[0] >> 6 == 2 && !rtcp)
        .then(|| u32::from_be_bytes([b[8], b[9], b[10], b[11]]))
}
