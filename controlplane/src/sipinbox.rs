//! Everything that reaches the B2BUA thread, and the one place it sleeps:
//! its UDP socket, read in bursts with `recvmmsg` on that thread itself,
//! and a queue of messages framed from TCP and TLS connections whose
//! senders ring an eventfd. One `poll` waits for either (or the next
//! timer), so a UDP datagram costs no hand-off between threads: a receiver
//! thread feeding a channel woke two threads per datagram, and that
//! context switch cost more than the SIP work on it. Raw `libc` calls
//! because std has neither `recvmmsg` nor eventfd, and a poller crate would
//! wrap the same two calls.

use crate::b2bua::Transport;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{mpsc, Arc};
use std::time::Duration;

/// A message as a transport hands it to the B2BUA thread.
pub enum Inbound {
    Datagram(SocketAddr, Vec<u8>),
    /// One whole message framed from a TCP or TLS connection.
    Stream(SocketAddr, Transport, Vec<u8>),
}

impl Inbound {
    /// Who sent it.
    pub fn from(&self) -> SocketAddr {
        match self {
            Inbound::Datagram(from, _) | Inbound::Stream(from, _, _) => *from,
        }
    }
}

/// The sending side of the B2BUA thread's stream queue.
#[derive(Clone)]
pub struct Inbox {
    tx: mpsc::Sender<Inbound>,
    bell: Arc<OwnedFd>,
}

/// The B2BUA thread's side: the queue and the eventfd its senders ring.
pub struct Mailbox {
    rx: mpsc::Receiver<Inbound>,
    bell: Arc<OwnedFd>,
}

/// Queues and an eventfd for one B2BUA thread.
pub fn inbox() -> io::Result<(Inbox, Mailbox)> {
    // SAFETY: eventfd takes no pointers; a non-negative result is a new fd we own.
    let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just created and nothing else owns it.
    let bell = Arc::new(unsafe { OwnedFd::from_raw_fd(fd) });
    let (tx, rx) = mpsc::channel();
    Ok((
        Inbox {
            tx,
            bell: bell.clone(),
        },
        Mailbox { rx, bell },
    ))
}

impl Inbox {
    /// Queues `m` and wakes the B2BUA thread; false when it is gone.
    pub fn send(&self, m: Inbound) -> bool {
        if self.tx.send(m).is_err() {
            return false;
        }
        let one = 1u64.to_ne_bytes();
        // SAFETY: writes 8 bytes from a live buffer to our eventfd. A full
        // counter (EAGAIN) still leaves the thread woken.
        unsafe { libc::write(self.bell.as_raw_fd(), one.as_ptr().cast(), one.len()) };
        true
    }
}

/// The most datagrams one `recvmmsg` takes.
pub const BURST: usize = 64;
/// The largest UDP datagram.
const DATAGRAM: usize = 65536;
/// The kernel's receive buffer asked for: a burst (a flood being banned,
/// a trunk's surge) waits there instead of pushing out honest datagrams.
const RECEIVE_BUFFER: libc::c_int = 8 << 20;

/// Raises the socket's receive buffer to `bytes`: past `rmem_max` where
/// we may (SO_RCVBUFFORCE, root), else as far as it allows.
fn grow_receive_buffer(sock: &UdpSocket, bytes: libc::c_int) {
    let set = |opt| {
        // SAFETY: setsockopt with a live int option value of its size.
        unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&bytes as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        }
    };
    if set(libc::SO_RCVBUFFORCE) != 0 {
        set(libc::SO_RCVBUF);
    }
}

/// Reads the UDP socket in bursts into buffers kept across calls.
pub struct UdpIn {
    sock: UdpSocket,
    bufs: Vec<Vec<u8>>,
}

impl UdpIn {
    /// The socket stays blocking for sends (a full send buffer waits
    /// rather than drops); reads never block (`MSG_DONTWAIT`).
    pub fn new(sock: UdpSocket) -> UdpIn {
        grow_receive_buffer(&sock, RECEIVE_BUFFER);
        UdpIn {
            sock,
            bufs: vec![vec![0u8; DATAGRAM]; BURST],
        }
    }

    /// The socket, for sending.
    pub fn socket(&self) -> &UdpSocket {
        &self.sock
    }

    /// Waits up to `timeout` until a datagram or a stream message is
    /// there (either may be spurious: callers just read).
    pub fn wait(&self, mailbox: &Mailbox, timeout: Duration) {
        let mut fds = [
            libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: mailbox.bell.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
        // SAFETY: `fds` is a live array of two pollfds.
        unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
        if fds[1].revents != 0 {
            let mut count = [0u8; 8];
            // SAFETY: reads 8 bytes into a live buffer, resetting the eventfd.
            unsafe { libc::read(mailbox.bell.as_raw_fd(), count.as_mut_ptr().cast(), 8) };
        }
    }

    /// Appends what is waiting, without blocking: up to [`BURST`]
    /// datagrams (one `recvmmsg`), then up to as many stream messages.
    /// False when every stream sender is gone (the node is stopping).
    pub fn take(&mut self, mailbox: &Mailbox, out: &mut Vec<Inbound>) -> bool {
        self.recv_burst(out);
        for _ in 0..BURST {
            match mailbox.rx.try_recv() {
                Ok(m) => out.push(m),
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    fn recv_burst(&mut self, out: &mut Vec<Inbound>) {
        // SAFETY: zeroed iovec, sockaddr_storage and mmsghdr are valid
        // "empty" values; each is filled in below before use.
        let mut iov: [libc::iovec; BURST] = unsafe { std::mem::zeroed() };
        let mut names: [libc::sockaddr_storage; BURST] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; BURST] = unsafe { std::mem::zeroed() };
        for i in 0..BURST {
            iov[i] = libc::iovec {
                iov_base: self.bufs[i].as_mut_ptr().cast(),
                iov_len: DATAGRAM,
            };
            msgs[i].msg_hdr.msg_iov = &mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
            msgs[i].msg_hdr.msg_name = (&mut names[i] as *mut libc::sockaddr_storage).cast();
            msgs[i].msg_hdr.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as u32;
        }
        // SAFETY: every message points at its own live buffer and address.
        let n = unsafe {
            libc::recvmmsg(
                self.sock.as_raw_fd(),
                msgs.as_mut_ptr(),
                BURST as u32,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        for i in 0..n.max(0) as usize {
            let len = msgs[i].msg_len as usize;
            match peer(&names[i]) {
                Some(from) => out.push(Inbound::Datagram(from, self.bufs[i][..len].to_vec())),
                None => tracing::debug!("SIP datagram from an address that is not IP; dropped"),
            }
        }
    }
}

/// The IPv4 or IPv6 address the kernel wrote into `s`.
fn peer(s: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match s.ss_family as i32 {
        libc::AF_INET => {
            // SAFETY: the family says `s` holds a sockaddr_in.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            let ip = std::net::Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
            Some(SocketAddr::from((ip, u16::from_be(a.sin_port))))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says `s` holds a sockaddr_in6.
            let a = unsafe { &*(s as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            let ip = std::net::Ipv6Addr::from(a.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(a.sin6_port),
                a.sin6_flowinfo,
                a.sin6_scope_id,
            )))
        }
        _ => None,
    }
}
