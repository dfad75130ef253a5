//! The RTP load: every call is two G.711 streams (caller -> relay -> callee
//! and back), 172-byte packets every 20 ms with correct sequence numbers and
//! timestamps, and a stream id, sequence and send time in the payload.
//!
//! One thread, pinned to a generator core, sends every stream's packets
//! spread evenly over the 20 ms (stream k of n is due at k * 20 ms / n), in
//! `sendmmsg` batches, and drains the receivers with `recvmmsg`. Arrival
//! times are the kernel's receive timestamps (SO_TIMESTAMPNS), so polling
//! does not add to measured latency. When the thread falls behind its
//! schedule it says so in the result.

use crate::measure::{Receiver, SendStats, TrafficResult};
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

pub const PTIME: Duration = Duration::from_millis(20);
pub const PACKET_LEN: usize = 172;
const BATCH: usize = 64;
/// A send later than this behind schedule counts as late.
const LATE: Duration = Duration::from_millis(5);

/// Where each call's two streams are sent.
#[derive(Debug, Clone, Copy)]
pub struct CallTarget {
    /// The relay's caller-facing port (the caller sends here).
    pub to_relay_a: SocketAddr,
    /// The relay's callee-facing port.
    pub to_relay_b: SocketAddr,
}

/// CLOCK_REALTIME now, in nanoseconds: the clock of SO_TIMESTAMPNS.
pub fn realtime_ns() -> u64 {
    tollgate_dataplane::backend::clock_ns(libc::CLOCK_REALTIME)
}

/// Fills an RTP packet of stream `stream`, packet number `n`.
pub fn packet(buf: &mut [u8; PACKET_LEN], stream: u32, n: u32, sent_ns: u64) {
    buf[0] = 0x80;
    buf[1] = 0; // PCMU
    buf[2..4].copy_from_slice(&(n as u16).to_be_bytes());
    buf[4..8].copy_from_slice(&n.wrapping_mul(160).to_be_bytes());
    buf[8..12].copy_from_slice(&(0x7000_0000 | stream).to_be_bytes());
    buf[12..16].copy_from_slice(&stream.to_be_bytes());
    buf[16..20].copy_from_slice(&n.to_be_bytes());
    buf[20..28].copy_from_slice(&sent_ns.to_be_bytes());
}

/// Enables kernel receive timestamps, large buffers and non-blocking mode.
pub fn prepare(sock: &UdpSocket) -> std::io::Result<()> {
    sock.set_nonblocking(true)?;
    let fd = sock.as_raw_fd();
    let one: libc::c_int = 1;
    let size: libc::c_int = 64 << 20;
    // SAFETY: setsockopt with int values on a socket we own.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            &one as *const _ as *const libc::c_void,
            4,
        );
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            &size as *const _ as *const libc::c_void,
            4,
        );
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_SNDBUFFORCE,
            &size as *const _ as *const libc::c_void,
            4,
        );
    }
    Ok(())
}

struct Sender {
    bufs: Box<[[u8; PACKET_LEN]; BATCH]>,
    addrs: Box<[libc::sockaddr_in; BATCH]>,
    len: usize,
}

fn sockaddr(a: SocketAddr) -> libc::sockaddr_in {
    let SocketAddr::V4(v4) = a else {
        panic!("the benchmark topology is IPv4")
    };
    // SAFETY: zeroed sockaddr_in is valid; fields set below.
    let mut s: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    s.sin_family = libc::AF_INET as u16;
    s.sin_port = v4.port().to_be();
    s.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
    s
}

impl Sender {
    fn new() -> Self {
        // SAFETY: zeroed sockaddr_in values are valid.
        Sender {
            bufs: Box::new([[0u8; PACKET_LEN]; BATCH]),
            addrs: Box::new(unsafe { std::mem::zeroed() }),
            len: 0,
        }
    }

    fn push(&mut self, to: SocketAddr, stream: u32, n: u32, now_ns: u64) {
        packet(&mut self.bufs[self.len], stream, n, now_ns);
        self.addrs[self.len] = sockaddr(to);
        self.len += 1;
    }

    /// Sends the batch; returns packets the kernel refused.
    fn flush(&mut self, sock: &UdpSocket) -> u64 {
        let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
        for i in 0..self.len {
            iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: PACKET_LEN,
            };
            msgs[i].msg_hdr.msg_name = &mut self.addrs[i] as *mut _ as *mut libc::c_void;
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_in>() as u32;
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        let mut done = 0;
        let mut failed = 0u64;
        while done < self.len {
            // SAFETY: msgs[done..len] point at live buffers and addresses.
            let n = unsafe {
                libc::sendmmsg(
                    sock.as_raw_fd(),
                    msgs[done..].as_mut_ptr(),
                    (self.len - done) as u32,
                    0,
                )
            };
            if n <= 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    std::thread::yield_now();
                    continue;
                }
                failed += (self.len - done) as u64;
                break;
            }
            done += n as usize;
        }
        self.len = 0;
        failed
    }
}

/// Drains `sock` into `rx` (non-blocking); returns packets read.
fn drain(sock: &UdpSocket, rx: &mut Receiver) -> usize {
    let mut bufs = [[0u8; 256]; BATCH];
    let mut ctrl = [[0u8; 64]; BATCH];
    let mut iov: [libc::iovec; BATCH] = unsafe { std::mem::zeroed() };
    let mut msgs: [libc::mmsghdr; BATCH] = unsafe { std::mem::zeroed() };
    let mut total = 0;
    loop {
        for i in 0..BATCH {
            iov[i] = libc::iovec {
                iov_base: bufs[i].as_mut_ptr() as *mut libc::c_void,
                iov_len: 256,
            };
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_control = ctrl[i].as_mut_ptr() as *mut libc::c_void;
            msgs[i].msg_hdr.msg_controllen = 64;
        }
        // SAFETY: every message points at its own buffers above.
        let n = unsafe {
            libc::recvmmsg(
                sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                BATCH as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n <= 0 {
            return total;
        }
        for i in 0..n as usize {
            let len = msgs[i].msg_len as usize;
            let at = kernel_timestamp(&msgs[i].msg_hdr).unwrap_or_else(realtime_ns);
            rx.packet(&bufs[i][..len], at);
        }
        total += n as usize;
    }
}

/// The kernel's receive timestamp (`SCM_TIMESTAMPNS`) in a received
/// message's control data, in ns since the epoch.
pub(crate) fn kernel_timestamp(h: &libc::msghdr) -> Option<u64> {
    // SAFETY: walking the control buffer the kernel filled, with libc's macros.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(h);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c) as *const libc::timespec);
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(h, c);
        }
    }
    None
}

/// Sends `duration` of media for `calls` and measures what arrives. `stop`
/// ends it early (Ctrl-C); `progress` counts packets sent.
pub fn run(
    caller: &UdpSocket,
    callee: &UdpSocket,
    calls: &[CallTarget],
    duration: Duration,
    stop: &AtomicBool,
    progress: &AtomicU64,
) -> TrafficResult {
    let streams = calls.len() * 2;
    let per_stream = (duration.as_nanos() / PTIME.as_nanos()) as u64;
    let total = per_stream * streams as u64;
    let slot_ns = PTIME.as_nanos() as u64 / streams.max(1) as u64;
    let mut rx = Receiver::new(streams, per_stream);
    let (mut to_callee, mut to_caller) = (Sender::new(), Sender::new());
    let start = Instant::now() + Duration::from_millis(50);
    let mut next = 0u64;
    let (mut late, mut max_late, mut send_failed) = (0u64, Duration::ZERO, 0u64);
    let mut last_send = start;
    while next < total && !stop.load(Ordering::Relaxed) {
        let now = Instant::now();
        let now_ns = realtime_ns();
        while next < total {
            let due = start + Duration::from_nanos(next * slot_ns);
            if due > now {
                break;
            }
            let behind = now - due;
            if behind > LATE {
                late += 1;
            }
            max_late = max_late.max(behind);
            let stream = (next % streams as u64) as u32;
            let n = (next / streams as u64) as u32;
            let call = &calls[(stream / 2) as usize];
            if stream.is_multiple_of(2) {
                to_callee.push(call.to_relay_a, stream, n, now_ns);
                if to_callee.len == BATCH {
                    send_failed += to_callee.flush(caller);
                }
            } else {
                to_caller.push(call.to_relay_b, stream, n, now_ns);
                if to_caller.len == BATCH {
                    send_failed += to_caller.flush(callee);
                }
            }
            next += 1;
        }
        send_failed += to_callee.flush(caller) + to_caller.flush(callee);
        last_send = last_send.max(Instant::now());
        progress.store(next, Ordering::Relaxed);
        drain(callee, &mut rx);
        drain(caller, &mut rx);
        let due = start + Duration::from_nanos(next * slot_ns);
        let now = Instant::now();
        if due > now + Duration::from_micros(200) {
            std::thread::sleep((due - now).min(Duration::from_millis(1)));
        }
    }
    // Let the last packets arrive.
    let end = Instant::now() + Duration::from_millis(500);
    while Instant::now() < end && rx.received() < next {
        drain(callee, &mut rx);
        drain(caller, &mut rx);
        std::thread::sleep(Duration::from_millis(1));
    }
    rx.finish(&SendStats {
        sent: next,
        late,
        max_late,
        failed: send_failed,
        span: last_send.saturating_duration_since(start) + Duration::from_nanos(slot_ns),
    })
}
