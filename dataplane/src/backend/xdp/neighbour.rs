//! Makes sure the kernel knows the next hop's MAC address for a destination
//! before media is sent there, so the XDP program's FIB lookup finds it.
//!
//! A relay that has never talked to a peer has no neighbour entry for it, and
//! `bpf_fib_lookup` then answers NO_NEIGH for every packet. Asking the kernel
//! for the route (RTM_GETROUTE) and then touching the next hop's neighbour
//! entry with `NTF_USE` (RTM_NEWNEIGH) makes the kernel resolve it (ARP / ND)
//! the way `ip neigh replace ADDR dev IF use` does.
//!
//! Written by hand on a raw NETLINK_ROUTE socket: two fixed request shapes and
//! three reply attributes, which is smaller than adopting a netlink message
//! crate's (frequently changing) typed API for them.

use std::io;
use std::net::IpAddr;

const NLMSG_HDR: usize = 16;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWROUTE: u16 = 24;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_REPLACE: u16 = 0x100;
const NLM_F_CREATE: u16 = 0x400;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTN_UNICAST: u8 = 1;
const NDA_DST: u16 = 1;
const NUD_PERMANENT: u16 = 0x80;
const NTF_USE: u8 = 0x01;

/// Where the kernel would send a packet for `dst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    pub ifindex: u32,
    pub addr: IpAddr,
}

struct Netlink(libc::c_int);

impl Drop for Netlink {
    fn drop(&mut self) {
        // SAFETY: we own the descriptor.
        unsafe { libc::close(self.0) };
    }
}

impl Netlink {
    fn open() -> io::Result<Self> {
        // SAFETY: plain socket(2) call.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                libc::NETLINK_ROUTE,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let s = Netlink(fd);
        let tv = libc::timeval {
            tv_sec: 1,
            tv_usec: 0,
        };
        // SAFETY: setsockopt with a valid timeval.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as u32,
            )
        };
        Ok(s)
    }

    /// Sends one request and returns the first reply message (type, payload).
    fn call(&self, msg: &[u8]) -> io::Result<(u16, Vec<u8>)> {
        // SAFETY: msg is a valid buffer; the kernel is the implicit peer.
        if unsafe { libc::send(self.0, msg.as_ptr() as *const libc::c_void, msg.len(), 0) } < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = vec![0u8; 8192];
        // SAFETY: buf is writable for its length.
        let n = unsafe { libc::recv(self.0, buf.as_mut_ptr() as *mut libc::c_void, buf.len(), 0) };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        if n < NLMSG_HDR {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "short netlink reply",
            ));
        }
        let len = (u32::from_ne_bytes(buf[0..4].try_into().expect("4 bytes")) as usize).min(n);
        let ty = u16::from_ne_bytes([buf[4], buf[5]]);
        let payload = buf[NLMSG_HDR..len].to_vec();
        if ty == NLMSG_ERROR {
            let code = i32::from_ne_bytes(
                payload
                    .get(0..4)
                    .unwrap_or(&[0; 4])
                    .try_into()
                    .expect("4 bytes"),
            );
            if code != 0 {
                return Err(io::Error::from_raw_os_error(-code));
            }
        }
        Ok((ty, payload))
    }
}

fn message(ty: u16, flags: u16, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDR + body.len());
    m.extend_from_slice(&((NLMSG_HDR + body.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&ty.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // sequence
    m.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel
    m.extend_from_slice(body);
    m
}

fn attr(out: &mut Vec<u8>, ty: u16, data: &[u8]) {
    let len = 4 + data.len();
    out.extend_from_slice(&(len as u16).to_ne_bytes());
    out.extend_from_slice(&ty.to_ne_bytes());
    out.extend_from_slice(data);
    out.resize(out.len() + (len.next_multiple_of(4) - len), 0);
}

fn ip_bytes(ip: IpAddr) -> (u8, Vec<u8>) {
    match ip {
        IpAddr::V4(a) => (libc::AF_INET as u8, a.octets().to_vec()),
        IpAddr::V6(a) => (libc::AF_INET6 as u8, a.octets().to_vec()),
    }
}

/// Looks up the route to `dst` (out of `oif` when non-zero).
fn route_on(nl: &Netlink, dst: IpAddr, oif: u32) -> io::Result<Option<NextHop>> {
    let (family, bytes) = ip_bytes(dst);
    // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags(u32)
    let mut body = vec![
        family,
        (bytes.len() * 8) as u8,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
    ];
    attr(&mut body, RTA_DST, &bytes);
    if oif != 0 {
        attr(&mut body, RTA_OIF, &oif.to_ne_bytes());
    }
    let (ty, payload) = nl.call(&message(RTM_GETROUTE, NLM_F_REQUEST, &body))?;
    if ty != RTM_NEWROUTE || payload.len() < 12 {
        return Ok(None);
    }
    if payload[7] != RTN_UNICAST {
        return Ok(None); // local, blackhole, ...: no neighbour to resolve
    }
    let (mut ifindex, mut gateway) = (0u32, None);
    let mut at = 12;
    while at + 4 <= payload.len() {
        let len = u16::from_ne_bytes([payload[at], payload[at + 1]]) as usize;
        let ty = u16::from_ne_bytes([payload[at + 2], payload[at + 3]]);
        if len < 4 || at + len > payload.len() {
            break;
        }
        let data = &payload[at + 4..at + len];
        match (ty, data.len()) {
            (RTA_OIF, 4) => ifindex = u32::from_ne_bytes(data.try_into().expect("4 bytes")),
            (RTA_GATEWAY, 4) => {
                gateway = Some(IpAddr::from(<[u8; 4]>::try_from(data).expect("4 bytes")))
            }
            (RTA_GATEWAY, 16) => {
                gateway = Some(IpAddr::from(<[u8; 16]>::try_from(data).expect("16 bytes")))
            }
            _ => {}
        }
        at += len.next_multiple_of(4);
    }
    Ok((ifindex != 0).then(|| NextHop {
        ifindex,
        addr: gateway.unwrap_or(dst),
    }))
}

/// Asks the kernel to resolve the next hop toward `dst` if it has not yet.
pub fn prime(dst: IpAddr, oif: u32) -> io::Result<Option<NextHop>> {
    let nl = Netlink::open()?;
    let Some(hop) = route_on(&nl, dst, oif)? else {
        return Ok(None);
    };
    let (family, bytes) = ip_bytes(hop.addr);
    // struct ndmsg: family, pad1, pad2(u16), ifindex(i32), state(u16), flags, type
    let mut body = vec![family, 0, 0, 0];
    body.extend_from_slice(&(hop.ifindex as i32).to_ne_bytes());
    body.extend_from_slice(&NUD_PERMANENT.to_ne_bytes());
    body.extend_from_slice(&[NTF_USE, 0]);
    attr(&mut body, NDA_DST, &bytes);
    nl.call(&message(
        RTM_NEWNEIGH,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        &body,
    ))?;
    Ok(Some(hop))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_route_is_local_so_nothing_to_resolve() {
        assert_eq!(
            route_on(&Netlink::open().unwrap(), "127.0.0.1".parse().unwrap(), 0).unwrap(),
            None
        );
    }

    #[test]
    fn attributes_are_padded() {
        let mut b = Vec::new();
        attr(&mut b, RTA_DST, &[1, 2, 3, 4, 5]);
        assert_eq!(b.len(), 12);
        assert_eq!(u16::from_ne_bytes([b[0], b[1]]), 9);
    }
}
