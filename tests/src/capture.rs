//! A raw AF_PACKET capture on one interface in a namespace, to check frames
//! as they crossed the wire: addresses, ports, MACs and both checksums,
//! verified with the data plane's own packet views.

use crate::netns::Topology;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use tollgate_dataplane::wire::{checksum, ethernet, ipv4, ipv6, udp};

pub struct Capture(OwnedFd);

/// One captured UDP frame, decoded.
#[derive(Debug, Clone)]
pub struct UdpFrame {
    pub src_mac: [u8; 6],
    pub dst_mac: [u8; 6],
    pub from: SocketAddr,
    pub to: SocketAddr,
    pub ip_checksum_ok: bool,
    pub udp_checksum_ok: bool,
    pub udp_checksum: u16,
    pub payload: Vec<u8>,
}

impl Capture {
    /// Opens a capture of frames received on `ifname` in `ns`.
    pub fn open(ns: &str, ifname: &str) -> Capture {
        let ifname = ifname.to_string();
        let fd = Topology::run_in(ns, move || {
            let proto = (libc::ETH_P_ALL as u16).to_be() as i32;
            // SAFETY: plain socket/bind calls with valid arguments.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, proto);
                assert!(
                    fd >= 0,
                    "AF_PACKET socket: {}",
                    std::io::Error::last_os_error()
                );
                let name = std::ffi::CString::new(ifname.clone()).unwrap();
                let index = libc::if_nametoindex(name.as_ptr());
                assert!(index != 0, "no interface {ifname}");
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_protocol = proto as u16;
                sll.sll_ifindex = index as i32;
                let r = libc::bind(
                    fd,
                    &sll as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sll) as u32,
                );
                assert_eq!(r, 0, "bind AF_PACKET: {}", std::io::Error::last_os_error());
                let size: libc::c_int = 32 << 20;
                libc::setsockopt(
                    fd,
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    &size as *const _ as *const libc::c_void,
                    4,
                );
                OwnedFd::from_raw_fd(fd)
            }
        });
        Capture(fd)
    }

    /// Incoming UDP frames addressed to `to`, until `want` were seen or `limit` passed.
    pub fn udp_to(&self, to: SocketAddr, want: usize, limit: Duration) -> Vec<UdpFrame> {
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 200_000,
        };
        // SAFETY: setsockopt with a timeval on our socket.
        unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                &tv as *const _ as *const libc::c_void,
                16,
            )
        };
        let end = Instant::now() + limit;
        let mut out = Vec::new();
        let mut buf = vec![0u8; 65536];
        while out.len() < want && Instant::now() < end {
            // SAFETY: sockaddr_ll and buffer are valid for writing.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = std::mem::size_of_val(&sll) as u32;
            let n = unsafe {
                libc::recvfrom(
                    self.0.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    0,
                    &mut sll as *mut _ as *mut libc::sockaddr,
                    &mut len,
                )
            };
            if n <= 0 || sll.sll_pkttype == libc::PACKET_OUTGOING {
                continue;
            }
            if let Some(f) = decode(&buf[..n as usize]) {
                if f.to == to {
                    out.push(f);
                }
            }
        }
        out
    }
}

/// Decodes an Ethernet/IP/UDP frame, verifying both checksums.
pub fn decode(frame: &[u8]) -> Option<UdpFrame> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let (src, dst, ip_ok, segment) = match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
            if ip.protocol() != ipv4::PROTO_UDP {
                return None;
            }
            (
                IpAddr::V4(ip.source()),
                IpAddr::V4(ip.destination()),
                ip.checksum_ok(),
                ip.payload().to_vec(),
            )
        }
        ethernet::ETHERTYPE_IPV6 => {
            let ip = ipv6::Packet::new_checked(eth.payload()).ok()?;
            if ip.next_header() != 17 {
                return None;
            }
            (
                IpAddr::V6(ip.source()),
                IpAddr::V6(ip.destination()),
                true,
                ip.payload().to_vec(),
            )
        }
        _ => return None,
    };
    let d = udp::Datagram::new_checked(&segment[..]).ok()?;
    Some(UdpFrame {
        src_mac: eth.source(),
        dst_mac: eth.destination(),
        from: SocketAddr::new(src, d.source_port()),
        to: SocketAddr::new(dst, d.destination_port()),
        ip_checksum_ok: ip_ok,
        udp_checksum_ok: checksum::udp_verifies(src, dst, d.segment()),
        udp_checksum: d.checksum(),
        payload: d.payload().to_vec(),
    })
}
