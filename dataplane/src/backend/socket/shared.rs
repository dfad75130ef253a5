//! State a worker shares with the control thread: per-flow and per-worker
//! counters (written by exactly one worker, read by anyone), and the learned
//! source of a flow, which workers holding the reverse flow read.

pub use crate::backend::stats::{Counter, FlowStats};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Totals of one worker; the backend sums them over workers.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    pub rx: Counter,
    pub forwarded: Counter,
    /// UDP payload bytes received and forwarded.
    pub rx_bytes: Counter,
    pub tx_bytes: Counter,
    pub no_flow: Counter,
    pub drop_source: Counter,
    pub malformed: Counter,
    pub send_errors: Counter,
    pub recv_errors: Counter,
    /// Originated packets dropped for want of a free send buffer.
    pub origin_dropped: Counter,
    /// Time spent handling packets (not waiting), and since the start.
    pub busy_ns: Counter,
    pub uptime_ns: Counter,
}

impl WorkerCounters {
    pub fn named(&self) -> [(&'static str, u64); 10] {
        [
            ("rx", self.rx.get()),
            ("forwarded", self.forwarded.get()),
            ("rx_bytes", self.rx_bytes.get()),
            ("tx_bytes", self.tx_bytes.get()),
            ("drop_no_flow", self.no_flow.get()),
            ("drop_source_mismatch", self.drop_source.get()),
            ("drop_malformed", self.malformed.get()),
            ("send_errors", self.send_errors.get()),
            ("recv_errors", self.recv_errors.get()),
            ("drop_origin_no_buffer", self.origin_dropped.get()),
        ]
    }
}

/// Reads a `sockaddr_in`/`sockaddr_in6` as the kernel wrote it.
pub fn sockaddr_from(b: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes([*b.first()?, *b.get(1)?]) as i32;
    let port = u16::from_be_bytes([*b.get(2)?, *b.get(3)?]);
    match family {
        libc::AF_INET if b.len() >= 8 => Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::new(b[4], b[5], b[6], b[7])),
            port,
        )),
        libc::AF_INET6 if b.len() >= 24 => {
            let a: [u8; 16] = b[8..24].try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}

/// Writes `a` as a `sockaddr_in`/`sockaddr_in6`; returns its length.
pub fn sockaddr_to(a: SocketAddr, out: &mut libc::sockaddr_storage) -> libc::socklen_t {
    // SAFETY: sockaddr_storage is large and aligned enough for either form.
    unsafe {
        match a {
            SocketAddr::V4(v4) => {
                let s = &mut *(out as *mut _ as *mut libc::sockaddr_in);
                s.sin_family = libc::AF_INET as libc::sa_family_t;
                s.sin_port = v4.port().to_be();
                s.sin_addr.s_addr = u32::from_ne_bytes(v4.ip().octets());
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
            }
            SocketAddr::V6(v6) => {
                let s = &mut *(out as *mut _ as *mut libc::sockaddr_in6);
                s.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                s.sin6_port = v6.port().to_be();
                s.sin6_flowinfo = 0;
                s.sin6_addr.s6_addr = v6.ip().octets();
                s.sin6_scope_id = v6.scope_id();
                std::mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockaddr_round_trip() {
        for a in ["10.1.2.3:4000", "[fd00::5]:30000"] {
            let a: SocketAddr = a.parse().unwrap();
            // SAFETY: zeroed sockaddr_storage is valid.
            let mut st: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
            let len = sockaddr_to(a, &mut st) as usize;
            let bytes = unsafe { std::slice::from_raw_parts(&st as *const _ as *const u8, len) };
            assert_eq!(sockaddr_from(bytes), Some(a));
        }
        assert_eq!(sockaddr_from(&[0, 0, 1, 2]), None);
    }
}
