//! A relay port's UDP socket, shared by the control thread and the workers,
//! that reports when it is really closed.
//!
//! Removing a flow only asks its worker to let go of the socket: the worker
//! first cancels its armed receive, and other workers may still hold the
//! socket as a flow's send socket. Until the last holder drops it the port
//! stays bound, and a new call given that port would fail to bind it. So the
//! last `Arc` to drop closes the descriptor and then sends the socket's id and
//! address on the backend's `closed` channel: the control thread recycles
//! the id, and rebinds the address, only after that notice.

use crossbeam_channel::Sender;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

/// Sent when a [`RelaySocket`] has been closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Closed {
    pub id: u32,
    pub addr: SocketAddr,
}

#[derive(Debug)]
pub struct RelaySocket {
    fd: Option<OwnedFd>,
    closed: Closed,
    notify: Sender<Closed>,
}

impl RelaySocket {
    pub fn new(fd: OwnedFd, id: u32, addr: SocketAddr, notify: Sender<Closed>) -> Self {
        RelaySocket {
            fd: Some(fd),
            closed: Closed { id, addr },
            notify,
        }
    }
}

impl AsRawFd for RelaySocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }
}

impl Drop for RelaySocket {
    fn drop(&mut self) {
        drop(self.fd.take()); // close(2) first: the port is free when the notice arrives
        let _ = self.notify.send(self.closed); // the backend may be gone already
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::sync::Arc;

    #[test]
    fn the_notice_comes_after_the_last_holder_and_the_port_is_free_then() {
        let (tx, rx) = crossbeam_channel::unbounded();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let a = Arc::new(RelaySocket::new(udp.into(), 7, addr, tx));
        let b = a.clone();
        drop(a);
        assert!(rx.try_recv().is_err(), "closed while a holder remains");
        assert!(UdpSocket::bind(addr).is_err(), "port free while held");
        drop(b);
        assert_eq!(rx.try_recv().unwrap(), Closed { id: 7, addr });
        UdpSocket::bind(addr).expect("the port is free once the notice came");
    }
}
