//! Packets the pipeline's stages originate: not frames of any AF_XDP
//! socket, they leave through a raw IPv4/IPv6 socket per worker (headers
//! built here, so the kernel routes them and resolves the next hop), queued
//! and sent with one `sendmmsg` per family per tick.

use super::Route;
use crate::wire::checksum;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

/// Datagrams one batch holds before it is sent.
pub(super) const ORIGINATE_BATCH: usize = 64;
/// Room for one originated datagram.
pub(super) const ORIGINATE_BUF: usize = 2048;

/// Datagrams waiting to leave through one raw socket.
pub(super) struct Batch {
    fd: Option<OwnedFd>,
    bufs: Box<[u8]>,
    lens: [usize; ORIGINATE_BATCH],
    addrs: Box<[libc::sockaddr_storage; ORIGINATE_BATCH]>,
    iovs: Box<[libc::iovec; ORIGINATE_BATCH]>,
    msgs: Box<[libc::mmsghdr; ORIGINATE_BATCH]>,
    n: usize,
}

impl Batch {
    pub(super) fn new(family: libc::c_int) -> Batch {
        // SAFETY: socket(2); -1 (no such family here) leaves the batch unusable, counted.
        let fd = unsafe {
            libc::socket(
                family,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::IPPROTO_RAW,
            )
        };
        let fd = (fd >= 0).then(|| {
            // SAFETY: fresh descriptor.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            if family == libc::AF_INET6 {
                const IPV6_HDRINCL: libc::c_int = 36;
                let one: libc::c_int = 1;
                // SAFETY: an int option; IPPROTO_RAW implies it on current kernels anyway.
                unsafe {
                    libc::setsockopt(
                        fd.as_raw_fd(),
                        libc::IPPROTO_IPV6,
                        IPV6_HDRINCL,
                        (&one as *const libc::c_int).cast(),
                        4,
                    )
                };
            }
            fd
        });
        // SAFETY: all-zero is valid for these C structs.
        unsafe {
            Batch {
                fd,
                bufs: vec![0u8; ORIGINATE_BATCH * ORIGINATE_BUF].into_boxed_slice(),
                lens: [0; ORIGINATE_BATCH],
                addrs: Box::new(std::mem::zeroed()),
                iovs: Box::new(std::mem::zeroed()),
                msgs: Box::new(std::mem::zeroed()),
                n: 0,
            }
        }
    }

    /// Queues a datagram from `r.source` to `r.destination` (sending the
    /// batch first if it is full); returns (sent, failed) of that send, with
    /// this datagram counted failed if it does not fit a buffer.
    pub(super) fn push(&mut self, r: Route, payload: &[u8]) -> (u64, u64) {
        let (sent, mut failed) = if self.n == ORIGINATE_BATCH {
            self.flush()
        } else {
            (0, 0)
        };
        let k = self.n;
        let room = &mut self.bufs[k * ORIGINATE_BUF..(k + 1) * ORIGINATE_BUF];
        match build_datagram(room, r, payload) {
            Some(len) => {
                self.lens[k] = len;
                self.addrs[k] = sockaddr(r.destination.ip());
                self.n += 1;
            }
            None => failed += 1,
        }
        (sent, failed)
    }

    /// Sends what is queued; returns (sent, failed).
    pub(super) fn flush(&mut self) -> (u64, u64) {
        let n = std::mem::take(&mut self.n);
        if n == 0 {
            return (0, 0);
        }
        let Some(fd) = &self.fd else {
            return (0, n as u64);
        };
        for i in 0..n {
            self.iovs[i] = libc::iovec {
                iov_base: self.bufs[i * ORIGINATE_BUF..].as_mut_ptr().cast(),
                iov_len: self.lens[i],
            };
            let h = &mut self.msgs[i].msg_hdr;
            h.msg_name = (&mut self.addrs[i] as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
            h.msg_iov = &mut self.iovs[i];
            h.msg_iovlen = 1;
        }
        // SAFETY: n initialised headers pointing at our buffers.
        let r = unsafe {
            libc::sendmmsg(
                fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                n as u32,
                libc::MSG_DONTWAIT,
            )
        };
        let sent = r.max(0) as u64;
        (sent, n as u64 - sent)
    }
}

/// A destination for a raw socket (port 0: the headers carry it).
fn sockaddr(ip: IpAddr) -> libc::sockaddr_storage {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut ss: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    match ip {
        IpAddr::V4(v4) => {
            // SAFETY: sockaddr_storage is large enough and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as u16;
            sin.sin_addr.s_addr = u32::from_ne_bytes(v4.octets());
        }
        IpAddr::V6(v6) => {
            // SAFETY: as above, for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut ss as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as u16;
            sin6.sin6_addr.s6_addr = v6.octets();
        }
    }
    ss
}

/// Writes an IP + UDP datagram from `r.source` to `r.destination` carrying
/// `payload` into `out`; returns its length, or None if it does not fit.
pub fn build_datagram(out: &mut [u8], r: Route, payload: &[u8]) -> Option<usize> {
    let (ip_len, v4) = match r.source.ip() {
        IpAddr::V4(_) => (20, true),
        IpAddr::V6(_) => (40, false),
    };
    let udp_len = 8 + payload.len();
    let total = ip_len + udp_len;
    if total > out.len() || udp_len > u16::MAX as usize {
        return None;
    }
    let (ip, rest) = out.split_at_mut(ip_len);
    let udp = &mut rest[..udp_len];
    udp[0..2].copy_from_slice(&r.source.port().to_be_bytes());
    udp[2..4].copy_from_slice(&r.destination.port().to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    udp[6..8].fill(0);
    udp[8..].copy_from_slice(payload);
    let c = checksum::udp(r.source.ip(), r.destination.ip(), udp);
    udp[6..8].copy_from_slice(&c.to_be_bytes());
    match (r.source.ip(), r.destination.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) if v4 => {
            ip.fill(0);
            ip[0] = 0x45;
            ip[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            ip[6] = 0x40; // don't fragment
            ip[8] = 64;
            ip[9] = 17;
            ip[12..16].copy_from_slice(&s.octets());
            ip[16..20].copy_from_slice(&d.octets());
            let c = checksum::compute(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            ip.fill(0);
            ip[0] = 0x60;
            ip[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            ip[6] = 17;
            ip[7] = 64;
            ip[8..24].copy_from_slice(&s.octets());
            ip[24..40].copy_from_slice(&d.octets());
        }
        _ => return None,
    }
    Some(total)
}
