//! RTP test traffic: a paced G.711-shaped sender and a receiver that collects
//! what arrives, both on plain UDP sockets bound inside a namespace.

use crate::netns::Topology;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// A PCMU packet: sequence `seq`, timestamp `seq * 160`, 160 payload bytes.
pub fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = Vec::with_capacity(172);
    p.extend_from_slice(&[0x80, 0x00]);
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&(seq as u32).wrapping_mul(160).to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend(std::iter::repeat_n(0xd5u8, 160));
    p
}

/// A UDP socket bound to `addr` inside namespace `ns`, with a large receive buffer.
pub fn bind(ns: &str, addr: SocketAddr) -> UdpSocket {
    let s = Topology::run_in(ns, move || UdpSocket::bind(addr))
        .unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    let size: libc::c_int = 8 << 20;
    // SAFETY: setsockopt with an int value on a socket we own.
    unsafe {
        use std::os::fd::AsRawFd;
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const _ as *const libc::c_void,
            4,
        );
    }
    s
}

/// Sends packets `seqs` to `to`, `gap` apart.
pub fn send(
    sock: &UdpSocket,
    to: SocketAddr,
    ssrc: u32,
    seqs: impl IntoIterator<Item = u16>,
    gap: Duration,
) {
    for seq in seqs {
        sock.send_to(&packet(ssrc, seq), to)
            .unwrap_or_else(|e| panic!("send to {to}: {e}"));
        if !gap.is_zero() {
            std::thread::sleep(gap);
        }
    }
}

/// Receives until `want` packets arrived or `quiet` passed without any (at
/// most `limit` in total). Returns (payload, source) pairs.
pub fn collect(
    sock: &UdpSocket,
    want: usize,
    quiet: Duration,
    limit: Duration,
) -> Vec<(Vec<u8>, SocketAddr)> {
    sock.set_read_timeout(Some(quiet)).expect("timeout");
    let end = Instant::now() + limit;
    let mut out = Vec::new();
    let mut buf = [0u8; 2048];
    while out.len() < want && Instant::now() < end {
        match sock.recv_from(&mut buf) {
            Ok((n, from)) => out.push((buf[..n].to_vec(), from)),
            Err(_) => break,
        }
    }
    out
}

/// Sequence numbers of received RTP packets.
pub fn seqs(got: &[(Vec<u8>, SocketAddr)]) -> Vec<u16> {
    got.iter()
        .map(|(p, _)| u16::from_be_bytes([p[2], p[3]]))
        .collect()
}
