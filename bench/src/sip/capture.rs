//! Setup latency from the packets: the SIP datagrams to and from the
//! benchmark's UAC, captured on `lo` by an AF_PACKET socket with the
//! kernel's receive timestamps. A classic BPF filter keeps only UDP on the
//! UAC's port, and outgoing copies are ignored, so each datagram is seen
//! once, when loopback delivers it. A call's setup time runs from the
//! UAC's first INVITE to the first 200 for that INVITE reaching the UAC,
//! matched by Call-ID, in nanoseconds.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tollgate_dataplane::wire::{ethernet, ipv4, udp};
use tollgate_sip::message::Message;

// Linux ABI values libc does not export at its top level.
const SO_ATTACH_FILTER: libc::c_int = 26;
const PACKET_STATISTICS: libc::c_int = 6;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

#[repr(C)]
#[derive(Default)]
struct TpacketStats {
    packets: u32,
    drops: u32,
}

#[derive(Debug, thiserror::Error)]
#[error(
    "capturing SIP on lo: {what}: {source} (an AF_PACKET socket needs CAP_NET_RAW: run as root)"
)]
pub struct CaptureError {
    what: &'static str,
    source: std::io::Error,
}

/// What the capture saw, once stopped.
#[derive(Debug, Clone, Default)]
pub struct Setups {
    /// Calls whose INVITE from the UAC was seen.
    pub invites: u64,
    /// Setup time of each of those calls whose 200 was seen, in ns.
    pub setup_ns: Vec<u64>,
    /// Datagrams on the UAC's port without a kernel timestamp or not
    /// readable as SIP.
    pub unusable: u64,
    /// Packets the kernel dropped because the capture's queue was full.
    pub kernel_drops: u64,
}

/// A running capture; [`Capture::stop`] ends it and matches the calls.
pub struct Capture {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Setups>,
}

impl Capture {
    /// Starts capturing the UDP datagrams to and from 127.0.0.1:`uac_port`.
    pub fn start(uac_port: u16) -> Result<Capture, CaptureError> {
        let fd = open(uac_port)?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("sip-capture".into())
            .spawn(move || read(&fd, uac_port, &flag))
            .map_err(|source| CaptureError {
                what: "starting its thread",
                source,
            })?;
        Ok(Capture { stop, thread })
    }

    /// Reads what is still queued, then stops and matches INVITEs to 200s.
    pub fn stop(self) -> Setups {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .join()
            .expect("the capture thread does not panic")
    }
}

fn os_err(what: &'static str) -> CaptureError {
    CaptureError {
        what,
        source: std::io::Error::last_os_error(),
    }
}

fn set<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, v: &T) -> libc::c_int {
    // SAFETY: `v` is a live value of the size passed, on a socket we own.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            v as *const T as *const libc::c_void,
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    }
}

/// Classic BPF: IPv4 UDP, not a fragment, source or destination port
/// `port`; everything else is dropped in the kernel.
fn filter(port: u16) -> [libc::sock_filter; 13] {
    let op = |code: u16, jt: u8, jf: u8, k: u32| libc::sock_filter { code, jt, jf, k };
    let port = u32::from(port);
    [
        op(0x28, 0, 0, 12),      // 0: ldh [12] (ethertype)
        op(0x15, 0, 10, 0x0800), // 1: IPv4, else drop
        op(0x30, 0, 0, 23),      // 2: ldb [23] (protocol)
        op(0x15, 0, 8, 17),      // 3: UDP, else drop
        op(0x28, 0, 0, 20),      // 4: ldh [20] (flags, fragment offset)
        op(0x45, 6, 0, 0x1fff),  // 5: a fragment: drop
        op(0xb1, 0, 0, 14),      // 6: x = IP header length
        op(0x48, 0, 0, 14),      // 7: ldh [x + 14] (source port)
        op(0x15, 2, 0, port),    // 8: the UAC's: accept
        op(0x48, 0, 0, 16),      // 9: ldh [x + 16] (destination port)
        op(0x15, 0, 1, port),    // 10: the UAC's: accept, else drop
        op(0x06, 0, 0, 0x40000), // 11: accept the whole frame
        op(0x06, 0, 0, 0),       // 12: drop
    ]
}

/// The filtered, timestamped socket, bound to `lo`.
fn open(port: u16) -> Result<OwnedFd, CaptureError> {
    // Protocol 0 receives nothing until bound, after the filter is in place.
    // SAFETY: a plain socket call; the fd is owned at once.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(os_err("opening an AF_PACKET socket"));
    }
    // SAFETY: `fd` is a fresh socket nobody else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let code = filter(port);
    let prog = libc::sock_fprog {
        len: code.len() as u16,
        filter: code.as_ptr() as *mut libc::sock_filter,
    };
    if set(&fd, libc::SOL_SOCKET, SO_ATTACH_FILTER, &prog) != 0 {
        return Err(os_err("attaching the port filter"));
    }
    let one: libc::c_int = 1;
    if set(&fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, &one) != 0 {
        return Err(os_err("ignoring outgoing copies"));
    }
    if set(&fd, libc::SOL_SOCKET, libc::SO_TIMESTAMPNS, &one) != 0 {
        return Err(os_err("enabling receive timestamps"));
    }
    let size: libc::c_int = 32 << 20;
    if set(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &size) != 0 {
        return Err(os_err("sizing the receive queue"));
    }
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 100_000,
    };
    if set(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv) != 0 {
        return Err(os_err("setting the receive timeout"));
    }
    let proto = (libc::ETH_P_ALL as u16).to_be();
    // SAFETY: a NUL-terminated name.
    let index = unsafe { libc::if_nametoindex(c"lo".as_ptr()) };
    if index == 0 {
        return Err(os_err("finding lo"));
    }
    // SAFETY: a zeroed sockaddr_ll is valid; the fields set are its own.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = proto;
    sll.sll_ifindex = index as i32;
    // SAFETY: binding our socket to a valid sockaddr_ll of the size passed.
    let r = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            &sll as *const _ as *const libc::sockaddr,
            std::mem::size_of_val(&sll) as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(os_err("binding to lo"));
    }
    Ok(fd)
}

/// One datagram and its kernel receive timestamp, or None on timeout.
fn recv(fd: &OwnedFd, buf: &mut [u8]) -> Option<(usize, Option<u64>)> {
    let mut control = [0u64; 16];
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr() as *mut libc::c_void,
        iov_len: buf.len(),
    };
    // SAFETY: a zeroed msghdr is valid; the pointers set are live buffers.
    let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
    h.msg_iov = &mut iov;
    h.msg_iovlen = 1;
    h.msg_control = control.as_mut_ptr() as *mut libc::c_void;
    h.msg_controllen = std::mem::size_of_val(&control);
    // SAFETY: recvmsg into the buffers `h` points at.
    let n = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut h, 0) };
    if n < 0 {
        return None;
    }
    Some((n as usize, crate::traffic::kernel_timestamp(&h)))
}

/// The UDP ports and SIP message of an Ethernet/IPv4 frame.
fn sip_of(frame: &[u8]) -> Option<(u16, u16, Message)> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
    let d = udp::Datagram::new_checked(ip.payload()).ok()?;
    let m = Message::parse(d.payload()).ok()?;
    Some((d.source_port(), d.destination_port(), m))
}

/// First INVITE and first 200-to-INVITE per Call-ID, by kernel timestamp.
#[derive(Default)]
struct Calls {
    invited: HashMap<String, u64>,
    answered: HashMap<String, u64>,
    unusable: u64,
}

impl Calls {
    fn datagram(&mut self, uac_port: u16, frame: &[u8], at: Option<u64>) {
        let parsed = sip_of(frame).and_then(|(src, dst, m)| {
            let call_id = m.call_id()?.to_string();
            Some((src, dst, m, call_id, at?))
        });
        let Some((src, dst, m, call_id, at)) = parsed else {
            self.unusable += 1;
            return;
        };
        let invite = m.cseq().is_ok_and(|(_, method)| method == "INVITE");
        if src == uac_port && m.method() == Some("INVITE") {
            self.invited.entry(call_id).or_insert(at);
        } else if dst == uac_port && invite && m.code() == Some(200) {
            self.answered.entry(call_id).or_insert(at);
        }
    }

    fn setups(self, kernel_drops: u64) -> Setups {
        let setup_ns = self
            .invited
            .iter()
            .filter_map(|(id, sent)| Some(self.answered.get(id)?.saturating_sub(*sent)))
            .collect();
        Setups {
            invites: self.invited.len() as u64,
            setup_ns,
            unusable: self.unusable,
            kernel_drops,
        }
    }
}

/// Reads until stopped and then until the queue is empty (at most 2 s more).
fn read(fd: &OwnedFd, uac_port: u16, stop: &AtomicBool) -> Setups {
    let mut calls = Calls::default();
    let mut buf = vec![0u8; 65536];
    let mut stopped_at: Option<Instant> = None;
    loop {
        match recv(fd, &mut buf) {
            Some((n, at)) => calls.datagram(uac_port, &buf[..n], at),
            None if stopped_at.is_some() => break,
            None => {}
        }
        if stop.load(Ordering::Relaxed) {
            let at = *stopped_at.get_or_insert_with(Instant::now);
            if at.elapsed() > Duration::from_secs(2) {
                break;
            }
        }
    }
    let mut stats = TpacketStats::default();
    let mut len = std::mem::size_of::<TpacketStats>() as libc::socklen_t;
    // SAFETY: getsockopt into a tpacket_stats of the size passed.
    let ok = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            PACKET_STATISTICS,
            &mut stats as *mut _ as *mut libc::c_void,
            &mut len,
        )
    } == 0;
    calls.setups(if ok { u64::from(stats.drops) } else { u64::MAX })
}

#[cfg(test)]
mod tests {
    use super::Calls;

    /// An Ethernet/IPv4/UDP frame on loopback from port `src` to `dst`.
    fn frame(src: u16, dst: u16, sip: &str) -> Vec<u8> {
        let mut f = vec![0u8; 12];
        f.extend([0x08, 0x00]);
        let total = 20 + 8 + sip.len();
        f.extend([
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            0,
            0,
            0x40,
            0,
            64,
            17,
            0,
            0,
        ]);
        f.extend([127, 0, 0, 1, 127, 0, 0, 1]);
        let ulen = 8 + sip.len();
        f.extend(src.to_be_bytes());
        f.extend(dst.to_be_bytes());
        f.extend([(ulen >> 8) as u8, ulen as u8, 0, 0]);
        f.extend(sip.as_bytes());
        f
    }

    fn sip(start: &str, call_id: &str, cseq: &str) -> String {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\nFrom: <sip:a@x>;tag=1\r\n\
             To: <sip:b@x>\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
        )
    }

    #[test]
    fn setup_runs_from_the_first_invite_to_the_first_200_to_it() {
        let mut c = Calls::default();
        let invite = sip("INVITE sip:b@x SIP/2.0", "c1", "1 INVITE");
        let ok = sip("SIP/2.0 200 OK", "c1", "1 INVITE");
        let bye_ok = sip("SIP/2.0 200 OK", "c2", "2 BYE");
        c.datagram(5070, &frame(5070, 5060, &invite), Some(1_000));
        c.datagram(5070, &frame(5070, 5060, &invite), Some(1_500)); // retransmission
        c.datagram(
            5070,
            &frame(5060, 5070, &sip("SIP/2.0 100 Trying", "c1", "1 INVITE")),
            Some(1_700),
        );
        c.datagram(5070, &frame(5060, 5070, &ok), Some(3_000));
        c.datagram(5070, &frame(5060, 5070, &ok), Some(4_000)); // retransmission
        c.datagram(
            5070,
            &frame(5070, 5060, &sip("INVITE sip:b@x SIP/2.0", "c2", "1 INVITE")),
            Some(5_000),
        );
        c.datagram(5070, &frame(5060, 5070, &bye_ok), Some(6_000)); // not the INVITE's 200
        c.datagram(5070, &frame(5060, 5070, &ok), None); // no timestamp
        c.datagram(5070, &frame(5060, 5070, "garbage"), Some(7_000));
        let s = c.setups(0);
        assert_eq!((s.invites, s.setup_ns, s.unusable), (2, vec![2_000], 2));
    }
}
