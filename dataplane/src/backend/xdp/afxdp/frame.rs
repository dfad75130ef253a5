//! The frames an AF_XDP worker handles, as the XDP program left them: the
//! headers' offsets, the destination they were rewritten to, the RTCP port
//! move and the resize after a stage changed the payload.

use super::ETH_LEN;
use crate::wire::checksum;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// Where the headers of a rewritten frame are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Headers {
    pub(super) v4: bool,
    /// Offset of the UDP header.
    pub(super) udp: usize,
    /// Offset and length of the UDP payload.
    pub(super) payload: usize,
    pub(super) payload_len: usize,
}

impl Headers {
    /// Ethernet + IPv4 (no options) or IPv6 (no extension headers) + UDP,
    /// consistent lengths; what the XDP program lets through, checked again.
    pub(super) fn parse(f: &[u8]) -> Option<Headers> {
        if f.len() < ETH_LEN {
            return None;
        }
        let ethertype = u16::from_be_bytes([f[12], f[13]]);
        let (v4, ip_len, l4_len) = match ethertype {
            0x0800 => {
                let ip = f.get(ETH_LEN..ETH_LEN + 20)?;
                if ip[0] != 0x45 || ip[9] != 17 {
                    return None;
                }
                let tot = u16::from_be_bytes([ip[2], ip[3]]) as usize;
                (true, 20, tot.checked_sub(20)?)
            }
            0x86dd => {
                let ip = f.get(ETH_LEN..ETH_LEN + 40)?;
                if ip[0] >> 4 != 6 || ip[6] != 17 {
                    return None;
                }
                (false, 40, u16::from_be_bytes([ip[4], ip[5]]) as usize)
            }
            _ => return None,
        };
        let udp = ETH_LEN + ip_len;
        let u = f.get(udp..udp + 8)?;
        let udp_len = u16::from_be_bytes([u[4], u[5]]) as usize;
        if udp_len != l4_len || udp_len < 8 || udp + udp_len > f.len() {
            return None;
        }
        Some(Headers {
            v4,
            udp,
            payload: udp + 8,
            payload_len: udp_len - 8,
        })
    }

    pub(super) fn destination(&self, f: &[u8]) -> SocketAddr {
        let port = u16::from_be_bytes([f[self.udp + 2], f[self.udp + 3]]);
        let ip: IpAddr = if self.v4 {
            let a: [u8; 4] = f[ETH_LEN + 16..ETH_LEN + 20].try_into().expect("4 bytes");
            Ipv4Addr::from(a).into()
        } else {
            let a: [u8; 16] = f[ETH_LEN + 24..ETH_LEN + 40].try_into().expect("16 bytes");
            Ipv6Addr::from(a).into()
        };
        SocketAddr::new(ip, port)
    }

    pub(super) fn addrs(&self, f: &[u8]) -> (IpAddr, IpAddr) {
        if self.v4 {
            let s: [u8; 4] = f[ETH_LEN + 12..ETH_LEN + 16].try_into().expect("4 bytes");
            let d: [u8; 4] = f[ETH_LEN + 16..ETH_LEN + 20].try_into().expect("4 bytes");
            (Ipv4Addr::from(s).into(), Ipv4Addr::from(d).into())
        } else {
            let s: [u8; 16] = f[ETH_LEN + 8..ETH_LEN + 24].try_into().expect("16 bytes");
            let d: [u8; 16] = f[ETH_LEN + 24..ETH_LEN + 40].try_into().expect("16 bytes");
            (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into())
        }
    }

    /// Both UDP ports up by one (RTCP beside RTP), the checksum updated
    /// incrementally when `fix_checksum` (else the caller redoes it).
    pub(super) fn rtcp_ports(&self, f: &mut [u8], fix_checksum: bool) {
        let u = self.udp;
        let mut check = u16::from_be_bytes([f[u + 6], f[u + 7]]);
        for at in [u, u + 2] {
            let old = u16::from_be_bytes([f[at], f[at + 1]]);
            let new = old.wrapping_add(1);
            f[at..at + 2].copy_from_slice(&new.to_be_bytes());
            if fix_checksum && (check != 0 || !self.v4) {
                check = checksum::update(check, &old.to_be_bytes(), &new.to_be_bytes());
            }
        }
        if fix_checksum && (check != 0 || !self.v4) {
            let check = if check == 0 { 0xffff } else { check };
            f[u + 6..u + 8].copy_from_slice(&check.to_be_bytes());
        }
    }

    /// The payload is now `len` bytes: IP and UDP lengths, the IPv4 header
    /// checksum and the UDP checksum redone. Returns the frame's length.
    pub(super) fn resize(&self, f: &mut [u8], len: usize) -> usize {
        let u = self.udp;
        let udp_len = 8 + len;
        if self.v4 {
            let ip = &mut f[ETH_LEN..ETH_LEN + 20];
            ip[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
            ip[10..12].fill(0);
            let c = checksum::compute(ip);
            ip[10..12].copy_from_slice(&c.to_be_bytes());
        } else {
            f[ETH_LEN + 4..ETH_LEN + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        }
        let had_checksum = f[u + 6] != 0 || f[u + 7] != 0 || !self.v4;
        f[u + 4..u + 6].copy_from_slice(&(udp_len as u16).to_be_bytes());
        f[u + 6..u + 8].fill(0);
        if had_checksum {
            let (s, d) = self.addrs(f);
            let c = checksum::udp(s, d, &f[u..u + udp_len]);
            f[u + 6..u + 8].copy_from_slice(&c.to_be_bytes());
        }
        u + udp_len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::xdp::afxdp::{build_datagram, Route};

    /// An Ethernet frame with a UDP datagram between a and b.
    fn frame(a: SocketAddr, b: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0u8; ETH_LEN];
        f[12..14].copy_from_slice(if a.is_ipv4() {
            &[0x08, 0]
        } else {
            &[0x86, 0xdd]
        });
        let mut dg = vec![0u8; 100 + payload.len()];
        let n = build_datagram(
            &mut dg,
            Route {
                source: a,
                destination: b,
            },
            payload,
        )
        .unwrap();
        f.extend_from_slice(&dg[..n]);
        f
    }

    fn udp_ok(f: &[u8], h: &Headers) -> bool {
        let (s, d) = h.addrs(f);
        let udp_len = u16::from_be_bytes([f[h.udp + 4], f[h.udp + 5]]) as usize;
        checksum::udp_verifies(s, d, &f[h.udp..h.udp + udp_len])
    }

    #[test]
    fn headers_parse_and_rtcp_ports_keep_the_checksum_valid() {
        for (a, b) in [
            ("10.0.0.1:30000", "10.0.0.2:4000"),
            ("[fd00::1]:30000", "[fd00::2]:4000"),
        ] {
            let (a, b): (SocketAddr, SocketAddr) = (a.parse().unwrap(), b.parse().unwrap());
            let mut f = frame(a, b, &[0x81, 201, 0, 1, 1, 2, 3, 4]);
            let h = Headers::parse(&f).expect("parses");
            assert_eq!(h.payload_len, 8);
            assert_eq!(h.destination(&f), b);
            assert!(udp_ok(&f, &h));
            h.rtcp_ports(&mut f, true);
            assert_eq!(h.destination(&f).port(), 4001);
            assert_eq!(u16::from_be_bytes([f[h.udp], f[h.udp + 1]]), 30001);
            assert!(udp_ok(&f, &h), "incremental update verifies");
            // A payload grown by a stage: lengths and checksums redone.
            f.resize(f.len() + 12, 0xab);
            let n = h.resize(&mut f, 20);
            assert_eq!(n, f.len());
            let h2 = Headers::parse(&f).expect("still parses");
            assert_eq!(h2.payload_len, 20);
            assert!(udp_ok(&f, &h2));
            if a.is_ipv4() {
                assert!(checksum::verify(&f[ETH_LEN..ETH_LEN + 20]));
            }
        }
    }

    #[test]
    fn bad_frames_do_not_parse() {
        let a: SocketAddr = "10.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:2".parse().unwrap();
        let good = frame(a, b, &[1, 2, 3, 4]);
        assert!(Headers::parse(&good).is_some());
        for cut in [0, 13, 20, 40, good.len() - 1] {
            assert!(Headers::parse(&good[..cut]).is_none(), "cut at {cut}");
        }
        let mut bad_len = good.clone();
        bad_len[ETH_LEN + 20 + 5] = 200;
        assert!(Headers::parse(&bad_len).is_none());
        let mut tcp = good.clone();
        tcp[ETH_LEN + 9] = 6;
        assert!(Headers::parse(&tcp).is_none());
    }
}
