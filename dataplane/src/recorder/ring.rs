//! The tap ring: how a worker hands the packets of recorded flows to the
//! recorder thread. One single-producer single-consumer byte ring per
//! pipeline (`rtrb`, wait-free, allocated once when the pipeline is made):
//! the worker pushes a fixed header and the payload as received, the
//! recorder pops whole records. A full ring refuses the record (the worker
//! counts it) rather than ever waiting.

use std::mem::MaybeUninit;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Bytes of one worker's ring: at 50 packets/s of 200 bytes per recorded
/// flow, 2000 recorded flows on one worker fill it in 400 ms, and the
/// recorder drains every few ms. Pages are touched only as they are used.
pub const RING_BYTES: usize = 8 << 20;

/// Bytes of a record's header in the ring.
pub const HEADER: usize = 52;

/// One tapped packet's facts, as the header carries them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record {
    pub recording: u32,
    /// CLOCK_MONOTONIC ns the packet was handled at.
    pub at_ns: u64,
    /// Where it came from, when the backend knows (AF_XDP frames arrive
    /// already rewritten: the sender is not in them).
    pub source: Option<SocketAddr>,
    /// The flow's local address: where it was sent to.
    pub local: SocketAddr,
    pub len: usize,
}

fn put_addr(b: &mut [u8], ip: IpAddr) {
    let v6 = match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    };
    b.copy_from_slice(&v6.octets());
}

fn get_addr(b: &[u8], v4: bool) -> IpAddr {
    let mut o = [0u8; 16];
    o.copy_from_slice(b);
    let a = Ipv6Addr::from(o);
    match (v4, a.to_ipv4_mapped()) {
        (true, Some(a)) => IpAddr::V4(a),
        (true, None) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        (false, _) => IpAddr::V6(a),
    }
}

impl Record {
    pub fn encode(&self) -> [u8; HEADER] {
        let mut h = [0u8; HEADER];
        h[0..2].copy_from_slice(&(self.len as u16).to_be_bytes());
        h[2] = if self.local.is_ipv4() { 4 } else { 6 };
        h[3] = u8::from(self.source.is_some());
        h[4..8].copy_from_slice(&self.recording.to_be_bytes());
        h[8..16].copy_from_slice(&self.at_ns.to_be_bytes());
        if let Some(s) = self.source {
            h[16..18].copy_from_slice(&s.port().to_be_bytes());
            put_addr(&mut h[20..36], s.ip());
        }
        h[18..20].copy_from_slice(&self.local.port().to_be_bytes());
        put_addr(&mut h[36..52], self.local.ip());
        h
    }

    pub fn decode(h: &[u8; HEADER]) -> Record {
        let be16 = |i: usize| u16::from_be_bytes([h[i], h[i + 1]]);
        let v4 = h[2] == 4;
        let mut at = [0u8; 8];
        at.copy_from_slice(&h[8..16]);
        Record {
            recording: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            at_ns: u64::from_be_bytes(at),
            source: (h[3] == 1).then(|| SocketAddr::new(get_addr(&h[20..36], v4), be16(16))),
            local: SocketAddr::new(get_addr(&h[36..52], v4), be16(18)),
            len: usize::from(be16(0)),
        }
    }
}

/// The worker's end of its ring.
pub struct TapRing {
    tx: rtrb::Producer<u8>,
}

/// The recorder's end of one worker's ring.
pub struct RingReader {
    rx: rtrb::Consumer<u8>,
}

/// A fresh ring of `bytes`, both ends.
pub fn ring(bytes: usize) -> (TapRing, RingReader) {
    let (tx, rx) = rtrb::RingBuffer::new(bytes);
    (TapRing { tx }, RingReader { rx })
}

impl TapRing {
    /// Queues one packet; false (nothing queued) when the ring is full or
    /// the payload is longer than a datagram. Header and payload go in as
    /// one chunk, made readable by one commit.
    pub fn push(&mut self, r: &Record, payload: &[u8]) -> bool {
        if payload.len() > usize::from(u16::MAX) {
            return false;
        }
        let Ok(mut chunk) = self.tx.write_chunk_uninit(HEADER + payload.len()) else {
            return false;
        };
        let (first, second) = chunk.as_mut_slices();
        fill([first, second], [&r.encode(), payload]);
        // SAFETY: `fill` wrote every byte of both slices (they are as long
        // as the header and payload together).
        unsafe { chunk.commit_all() };
        true
    }
}

/// Copies the `sources`, in order, into the `dests`, in order (the ring's
/// two slices, split where it wraps), which are exactly as long together.
fn fill(dests: [&mut [MaybeUninit<u8>]; 2], mut sources: [&[u8]; 2]) {
    let [first, second] = dests;
    if second.is_empty() {
        // Mostly the ring does not wrap: two straight copies.
        let (h, p) = first.split_at_mut(sources[0].len());
        h.write_copy_of_slice(sources[0]);
        p.write_copy_of_slice(sources[1]);
        return;
    }
    for dst in [first, second] {
        let mut at = 0;
        for src in &mut sources {
            let n = src.len().min(dst.len() - at);
            dst[at..at + n].write_copy_of_slice(&src[..n]);
            *src = &src[n..];
            at += n;
        }
    }
}

impl RingReader {
    /// The next whole record, its payload copied into `buf` (at least
    /// 64 KiB); None when the ring holds no whole record.
    pub fn pop(&mut self, buf: &mut [u8]) -> Option<Record> {
        let mut h = [0u8; HEADER];
        {
            let chunk = self.rx.read_chunk(HEADER).ok()?;
            let (a, b) = chunk.as_slices();
            h[..a.len()].copy_from_slice(a);
            h[a.len()..].copy_from_slice(b);
        }
        let r = Record::decode(&h);
        if self.rx.slots() < HEADER + r.len {
            return None;
        }
        let _ = self
            .rx
            .read_chunk(HEADER)
            .map(rtrb::chunks::ReadChunk::commit_all);
        self.rx.pop_entire_slice(&mut buf[..r.len]).ok()?;
        Some(r)
    }

    /// The worker that fed this ring is gone and everything it sent is read.
    pub fn finished(&self) -> bool {
        self.rx.is_abandoned() && self.rx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_full_ring_refuses() {
        let (mut tx, mut rx) = ring(256);
        let r = Record {
            recording: 7,
            at_ns: 123_456_789,
            source: Some("192.0.2.9:4000".parse().unwrap()),
            local: "10.0.0.1:30000".parse().unwrap(),
            len: 40,
        };
        assert!(tx.push(&r, &[0xab; 40]));
        assert!(tx.push(&r, &[0xab; 40]));
        assert!(
            !tx.push(&r, &[0xab; 40]),
            "the third does not fit 256 bytes"
        );
        let mut buf = vec![0u8; 65536];
        assert_eq!(rx.pop(&mut buf), Some(r));
        assert_eq!(&buf[..40], &[0xab; 40]);
        let v6 = Record {
            source: None,
            local: "[2001:db8::1]:30002".parse().unwrap(),
            len: 3,
            ..r
        };
        assert!(tx.push(&v6, &[1, 2, 3]), "room again after a pop");
        assert_eq!(rx.pop(&mut buf), Some(r));
        assert_eq!(rx.pop(&mut buf), Some(v6));
        assert_eq!(rx.pop(&mut buf), None);
        assert!(!rx.finished());
        drop(tx);
        assert!(rx.finished());
    }

    #[test]
    fn a_record_split_where_the_ring_wraps_reads_back_whole() {
        let (mut tx, mut rx) = ring(200);
        let r = Record {
            recording: 1,
            at_ns: 9,
            source: None,
            local: "10.0.0.1:30000".parse().unwrap(),
            len: 60,
        };
        let mut buf = vec![0u8; 65536];
        for round in 0..20u8 {
            let payload: Vec<u8> = (0..60).map(|i| i ^ round).collect();
            assert!(tx.push(&r, &payload), "round {round}");
            assert_eq!(rx.pop(&mut buf), Some(r));
            assert_eq!(&buf[..60], &payload[..], "round {round}");
        }
    }
}
