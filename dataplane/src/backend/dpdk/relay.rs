//! The relay in user space, as the XDP program does it in the kernel
//! (ebpf/src/bpf/tollgate.bpf.c), on frames a DPDK worker received: what a
//! frame is ([`classify`]), whether its source is admitted ([`admit`]:
//! learning, strict, expect), and the rewrite of addresses and ports with
//! the IPv4 header and UDP checksums updated incrementally ([`rewrite`]), or
//! recomputed when a pipeline stage changed the payload. Sans-IO.

use crate::wire::{checksum, ethernet, ipv4, ipv6, ndp, udp};
use std::net::{IpAddr, SocketAddr};

/// What a received frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Udp(Udp),
    /// ARP, or an IPv6 neighbour solicitation or advertisement.
    Neighbour,
    /// IPv4 or IPv6 but not UDP (nor neighbour discovery).
    NotUdp,
    /// Neither IPv4, IPv6 nor ARP.
    NotIp,
    /// An IPv4 fragment or a packet with options, an IPv6 packet with
    /// extension headers: not media we relay.
    Fragment,
    /// Headers that do not add up (lengths, versions).
    Malformed,
}

/// Where a UDP datagram sits in its frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    /// Offset of the UDP header.
    pub l4: usize,
    /// Bytes of UDP payload.
    pub payload_len: usize,
}

impl Udp {
    pub fn payload_at(&self) -> usize {
        self.l4 + udp::HEADER_LEN
    }
}

/// Classifies an Ethernet frame (IPv4 without options or fragments, IPv6
/// without extension headers, UDP whose length matches the IP packet).
pub fn classify(frame: &[u8]) -> Class {
    let Ok(eth) = ethernet::Frame::new_checked(frame) else {
        return Class::Malformed;
    };
    let l3 = ethernet::HEADER_LEN;
    let (src, dst, l4, l4_bytes) = match eth.ethertype() {
        crate::wire::arp::ETHERTYPE => return Class::Neighbour,
        ethernet::ETHERTYPE_IPV4 => {
            let Ok(ip) = ipv4::Packet::new_checked(&frame[l3..]) else {
                return Class::Malformed;
            };
            if ip.protocol() != ipv4::PROTO_UDP {
                return Class::NotUdp;
            }
            let b = &frame[l3..];
            let frag = u16::from_be_bytes([b[6], b[7]]) & 0x3fff;
            if ip.header_len() != ipv4::MIN_HEADER_LEN || frag != 0 {
                return Class::Fragment;
            }
            let l4 = l3 + ipv4::MIN_HEADER_LEN;
            (
                IpAddr::V4(ip.source()),
                IpAddr::V4(ip.destination()),
                l4,
                &frame[l4..l3 + ip.total_len() as usize],
            )
        }
        ethernet::ETHERTYPE_IPV6 => {
            let Ok(ip) = ipv6::Packet::new_checked(&frame[l3..]) else {
                return Class::Malformed;
            };
            let l4 = l3 + ipv6::HEADER_LEN;
            let payload = &frame[l4..l4 + ip.payload_len() as usize];
            match ip.next_header() {
                ipv4::PROTO_UDP => {}
                ndp::NEXT_HEADER_ICMPV6 => {
                    return match payload.first() {
                        Some(&ndp::NEIGHBOR_SOLICIT | &ndp::NEIGHBOR_ADVERT) => Class::Neighbour,
                        _ => Class::NotUdp,
                    }
                }
                6 => return Class::NotUdp,
                _ => return Class::Fragment,
            }
            (
                IpAddr::V6(ip.source()),
                IpAddr::V6(ip.destination()),
                l4,
                payload,
            )
        }
        _ => return Class::NotIp,
    };
    let Ok(d) = udp::Datagram::new_checked(l4_bytes) else {
        return Class::Malformed;
    };
    if d.len() as usize != l4_bytes.len() {
        return Class::Malformed;
    }
    Class::Udp(Udp {
        src: SocketAddr::new(src, d.source_port()),
        dst: SocketAddr::new(dst, d.destination_port()),
        l4,
        payload_len: d.payload().len(),
    })
}

/// A flow's source rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub learn: bool,
    pub strict: bool,
    pub expect: Option<SocketAddr>,
}

/// What the source rules make of a packet from `src`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admit {
    /// Record `src` as the flow's learned source (its first packet).
    pub learn: bool,
    /// Relay the packet; false: count it in `dropped_source` and drop it.
    pub pass: bool,
}

/// The XDP program's rules: a learning flow records the first source it
/// sees (never replaced while the flow lives); a strict flow passes only
/// `expect`, or else only the learned source (a strict flow without either
/// is refused at install).
pub fn admit(p: &Policy, learned: Option<SocketAddr>, src: SocketAddr) -> Admit {
    let learn = p.learn && learned.is_none();
    let seen = if learn { Some(src) } else { learned };
    let pass = !p.strict
        || match p.expect {
            Some(e) => e == src,
            None => seen.is_none_or(|l| l == src),
        };
    Admit { learn, pass }
}

/// Rewrites the datagram at `u` in `frame` to go from `from` to `to`. With
/// `new_payload_len` (a stage changed the payload, maybe its length), the
/// lengths are set and the UDP checksum is computed afresh; otherwise the
/// checksums are updated incrementally, and an IPv4 datagram sent without a
/// checksum stays without one. Returns the frame's new length (Ethernet
/// padding after the IP packet is dropped).
pub fn rewrite(
    frame: &mut [u8],
    u: &Udp,
    from: SocketAddr,
    to: SocketAddr,
    new_payload_len: Option<usize>,
) -> usize {
    let l3 = ethernet::HEADER_LEN;
    let payload_len = new_payload_len.unwrap_or(u.payload_len);
    let udp_len = (udp::HEADER_LEN + payload_len) as u16;
    let end = u.payload_at() + payload_len;
    let old_ports = {
        let b = &frame[u.l4..u.l4 + 4];
        [b[0], b[1], b[2], b[3]]
    };
    let mut new_ports = [0u8; 4];
    new_ports[..2].copy_from_slice(&from.port().to_be_bytes());
    new_ports[2..].copy_from_slice(&to.port().to_be_bytes());
    match (from.ip(), to.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let mut ip = ipv4::Packet::new_checked(&mut frame[l3..]).expect("classified");
            let (os, od) = (ip.source().octets(), ip.destination().octets());
            ip.set_source(s);
            ip.set_destination(d);
            if new_payload_len.is_some() {
                ip.set_total_len((ipv4::MIN_HEADER_LEN + udp_len as usize) as u16);
            }
            let seg = &mut frame[u.l4..end];
            let mut dg = udp::Datagram::new_unchecked(seg);
            match new_payload_len {
                Some(_) => {
                    set_ports_len(&mut dg, from, to, udp_len);
                    dg.set_checksum(0);
                    let c = checksum::udp(s.into(), d.into(), dg.segment());
                    dg.set_checksum(c);
                }
                None => {
                    let c0 = dg.checksum();
                    set_ports_len(&mut dg, from, to, udp_len);
                    if c0 != 0 {
                        let c = checksum::update(c0, &os, &s.octets());
                        let c = checksum::update(c, &od, &d.octets());
                        let c = checksum::update(c, &old_ports, &new_ports);
                        dg.set_checksum(if c == 0 { 0xffff } else { c });
                    }
                }
            }
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            let mut ip = ipv6::Packet::new_checked(&mut frame[l3..]).expect("classified");
            let (os, od) = (ip.source().octets(), ip.destination().octets());
            ip.set_source(s);
            ip.set_destination(d);
            if new_payload_len.is_some() {
                ip.set_payload_len(udp_len);
            }
            let seg = &mut frame[u.l4..end];
            let mut dg = udp::Datagram::new_unchecked(seg);
            let c0 = dg.checksum();
            set_ports_len(&mut dg, from, to, udp_len);
            let c = if new_payload_len.is_some() || c0 == 0 {
                dg.set_checksum(0);
                checksum::udp(s.into(), d.into(), dg.segment())
            } else {
                let c = checksum::update(c0, &os, &s.octets());
                let c = checksum::update(c, &od, &d.octets());
                checksum::update(c, &old_ports, &new_ports)
            };
            dg.set_checksum(if c == 0 { 0xffff } else { c });
        }
        _ => unreachable!("a flow stays in one address family"),
    }
    end
}

fn set_ports_len(dg: &mut udp::Datagram<&mut [u8]>, from: SocketAddr, to: SocketAddr, len: u16) {
    dg.set_source_port(from.port());
    dg.set_destination_port(to.port());
    dg.set_len(len);
}

/// Builds, at the start of `out`, an Ethernet frame carrying a UDP datagram
/// `from` -> `to` with `payload` (MAC addresses left zero for the caller;
/// TTL/hop limit 64; full checksums). Returns its length, or None when
/// `out` is too small.
pub fn build(out: &mut [u8], from: SocketAddr, to: SocketAddr, payload: &[u8]) -> Option<usize> {
    let l3 = ethernet::HEADER_LEN;
    let ip_len = if from.is_ipv4() {
        ipv4::MIN_HEADER_LEN
    } else {
        ipv6::HEADER_LEN
    };
    let l4 = l3 + ip_len;
    let udp_len = udp::HEADER_LEN + payload.len();
    let end = l4 + udp_len;
    if out.len() < end.max(60) || udp_len > u16::MAX as usize - ip_len {
        return None;
    }
    out[..l4].fill(0);
    let mut eth = ethernet::Frame::new_checked(&mut out[..]).expect("room");
    match (from.ip(), to.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            eth.set_ethertype(ethernet::ETHERTYPE_IPV4);
            let h = &mut out[l3..l4];
            h[0] = 0x45;
            h[2..4].copy_from_slice(&((ip_len + udp_len) as u16).to_be_bytes());
            h[6] = 0x40; // don't fragment
            h[8] = 64;
            h[9] = ipv4::PROTO_UDP;
            h[12..16].copy_from_slice(&s.octets());
            h[16..20].copy_from_slice(&d.octets());
            let c = checksum::compute(h);
            h[10..12].copy_from_slice(&c.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            eth.set_ethertype(ethernet::ETHERTYPE_IPV6);
            let h = &mut out[l3..l4];
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
            h[6] = ipv4::PROTO_UDP;
            h[7] = 64;
            h[8..24].copy_from_slice(&s.octets());
            h[24..40].copy_from_slice(&d.octets());
        }
        _ => return None,
    }
    out[l4 + udp::HEADER_LEN..end].copy_from_slice(payload);
    let mut dg = udp::Datagram::new_unchecked(&mut out[l4..end]);
    set_ports_len(&mut dg, from, to, udp_len as u16);
    dg.set_checksum(0);
    let c = checksum::udp(from.ip(), to.ip(), dg.segment());
    dg.set_checksum(c);
    out[end..end.max(60)].fill(0);
    Some(end.max(60))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An Ethernet frame carrying UDP `src` -> `dst` with `payload`, with
    /// valid checksums, padded to the Ethernet minimum.
    pub fn frame(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0, 0];
        let udp_len = 8 + payload.len();
        let mut seg = Vec::new();
        seg.extend_from_slice(&src.port().to_be_bytes());
        seg.extend_from_slice(&dst.port().to_be_bytes());
        seg.extend_from_slice(&(udp_len as u16).to_be_bytes());
        seg.extend_from_slice(&[0, 0]);
        seg.extend_from_slice(payload);
        let c = checksum::udp(src.ip(), dst.ip(), &seg);
        seg[6..8].copy_from_slice(&c.to_be_bytes());
        match (src.ip(), dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
                let mut h = vec![0x45, 0, 0, 0, 0x12, 0x34, 0x40, 0, 64, 17, 0, 0];
                h[2..4].copy_from_slice(&((20 + udp_len) as u16).to_be_bytes());
                h.extend_from_slice(&s.octets());
                h.extend_from_slice(&d.octets());
                let c = checksum::compute(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                f.extend_from_slice(&h);
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
                f.extend_from_slice(&[0x60, 0, 0, 0]);
                f.extend_from_slice(&(udp_len as u16).to_be_bytes());
                f.extend_from_slice(&[17, 64]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            _ => panic!("one family"),
        }
        f.extend_from_slice(&seg);
        if f.len() < 60 {
            f.resize(60, 0);
        }
        f
    }

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Checks the frame's IP and UDP headers say `from` -> `to` and verify.
    fn verifies(f: &[u8], from: SocketAddr, to: SocketAddr, payload: &[u8]) {
        let Class::Udp(u) = classify(f) else {
            panic!("not UDP: {:?}", classify(f))
        };
        assert_eq!((u.src, u.dst), (from, to));
        let seg = &f[u.l4..u.payload_at() + u.payload_len];
        assert_eq!(&seg[8..], payload);
        assert!(
            checksum::udp_verifies(from.ip(), to.ip(), seg),
            "UDP checksum"
        );
        assert_ne!(u16::from_be_bytes([seg[6], seg[7]]), 0);
        if from.is_ipv4() {
            assert!(ipv4::Packet::new_checked(&f[14..]).unwrap().checksum_ok());
        }
    }

    #[test]
    fn classifies_like_the_xdp_parser() {
        let f = frame(sa("10.0.1.2:5000"), sa("10.0.1.1:30000"), b"hello");
        let Class::Udp(u) = classify(&f) else {
            panic!()
        };
        assert_eq!((u.l4, u.payload_len), (34, 5));
        let mut bad_len = f.clone();
        bad_len[14 + 20 + 5] = 200; // UDP length beyond the IP packet
        assert_eq!(classify(&bad_len), Class::Malformed);
        let mut short_udp = f.clone();
        short_udp[14 + 20 + 5] = 9; // UDP length shorter than the IP payload
        assert_eq!(classify(&short_udp), Class::Malformed);
        let mut frag = f.clone();
        frag[14 + 6] = 0x20; // more fragments
        assert_eq!(classify(&frag), Class::Fragment);
        let mut tcp = f.clone();
        tcp[14 + 9] = 6;
        assert_eq!(classify(&tcp), Class::NotUdp);
        let mut arp = f.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(classify(&arp), Class::Neighbour);
        let mut other = f.clone();
        other[12..14].copy_from_slice(&[0x88, 0xcc]);
        assert_eq!(classify(&other), Class::NotIp);
        assert_eq!(classify(&f[..20]), Class::Malformed);
        let v6 = frame(sa("[fd00::2]:5000"), sa("[fd00::1]:30000"), b"hi");
        assert!(matches!(classify(&v6), Class::Udp(u) if u.l4 == 54 && u.payload_len == 2));
        let mut ext = v6.clone();
        ext[14 + 6] = 0; // hop-by-hop options
        assert_eq!(classify(&ext), Class::Fragment);
    }

    #[test]
    fn source_rules_match_the_xdp_program() {
        let (a, b) = (sa("10.0.0.2:5000"), sa("10.0.0.2:5001"));
        let learn_strict = Policy {
            learn: true,
            strict: true,
            expect: None,
        };
        assert_eq!(
            admit(&learn_strict, None, a),
            Admit {
                learn: true,
                pass: true
            }
        );
        assert_eq!(
            admit(&learn_strict, Some(a), a),
            Admit {
                learn: false,
                pass: true
            }
        );
        assert_eq!(
            admit(&learn_strict, Some(a), b),
            Admit {
                learn: false,
                pass: false
            }
        );
        let learn_only = Policy {
            strict: false,
            ..learn_strict
        };
        assert_eq!(
            admit(&learn_only, Some(a), b),
            Admit {
                learn: false,
                pass: true
            }
        );
        let expect = Policy {
            learn: true,
            strict: true,
            expect: Some(b),
        };
        // Learned from the first packet even when it is then dropped.
        assert_eq!(
            admit(&expect, None, a),
            Admit {
                learn: true,
                pass: false
            }
        );
        assert_eq!(
            admit(&expect, Some(a), b),
            Admit {
                learn: false,
                pass: true
            }
        );
        let plain = Policy {
            learn: false,
            strict: false,
            expect: None,
        };
        assert_eq!(
            admit(&plain, None, a),
            Admit {
                learn: false,
                pass: true
            }
        );
    }

    #[test]
    fn ipv4_without_checksum_stays_without() {
        let (s, d) = (sa("10.0.1.2:5000"), sa("10.0.1.1:30000"));
        let mut f = frame(s, d, b"abc");
        f[14 + 20 + 6] = 0;
        f[14 + 20 + 7] = 0;
        let Class::Udp(u) = classify(&f) else {
            panic!()
        };
        let (from, to) = (sa("10.0.2.1:30002"), sa("10.0.2.2:4000"));
        let end = rewrite(&mut f, &u, from, to, None);
        assert_eq!(end, 14 + 20 + 8 + 3, "padding dropped");
        assert_eq!(&f[14 + 20 + 6..14 + 20 + 8], &[0, 0]);
        assert!(ipv4::Packet::new_checked(&f[14..end])
            .unwrap()
            .checksum_ok());
    }

    #[test]
    fn built_datagrams_classify_and_verify() {
        let mut out = [0u8; 300];
        for (from, to) in [
            (sa("10.0.2.1:30002"), sa("10.0.2.2:4000")),
            (sa("[fd00:2::1]:30002"), sa("[fd00:2::2]:4000")),
        ] {
            let n = build(&mut out, from, to, b"silence").unwrap();
            assert!(n >= 60);
            verifies(&out[..n], from, to, b"silence");
        }
        assert_eq!(
            build(&mut out[..40], sa("10.0.0.1:1"), sa("10.0.0.2:2"), b"x"),
            None
        );
    }

    proptest! {
        /// Incremental rewrite equals a packet built for the new addresses.
        #[test]
        fn rewrite_keeps_checksums_valid(
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            a in any::<[u8; 4]>(), b in any::<[u8; 4]>(),
            a6 in any::<[u8; 16]>(), b6 in any::<[u8; 16]>(),
            ports in any::<[u16; 2]>(),
        ) {
            let ports = ports.map(|p| p.max(1));
            let cases = [
                (sa("10.0.1.2:5000"), sa("10.0.1.1:30000"),
                 SocketAddr::new(IpAddr::from(a), ports[0]), SocketAddr::new(IpAddr::from(b), ports[1])),
                (sa("[fd00::2]:5000"), sa("[fd00::1]:30000"),
                 SocketAddr::new(IpAddr::from(a6), ports[0]), SocketAddr::new(IpAddr::from(b6), ports[1])),
            ];
            for (s, d, from, to) in cases {
                let mut f = frame(s, d, &payload);
                let Class::Udp(u) = classify(&f) else { panic!() };
                let end = rewrite(&mut f, &u, from, to, None);
                verifies(&f[..end], from, to, &payload);
            }
        }

        /// Whatever arrives, classifying and rewriting never panic.
        #[test]
        fn any_frame_classifies_without_panic(
            mut frame in proptest::collection::vec(any::<u8>(), 0..200),
            kind in 0u8..3,
        ) {
            if frame.len() >= 14 {
                let t: u16 = [0x0800, 0x86dd, 0x0806][kind as usize];
                frame[12..14].copy_from_slice(&t.to_be_bytes());
                if frame.len() > 23 {
                    frame[14] = if kind == 1 { 0x60 } else { 0x45 };
                    frame[if kind == 1 { 20 } else { 23 }] = 17;
                }
            }
            if let Class::Udp(u) = classify(&frame) {
                // Back where it came from: the same family, other addresses.
                let (from, to) = (u.dst, u.src);
                let end = rewrite(&mut frame, &u, from, to, None);
                prop_assert!(end <= frame.len());
                prop_assert!(matches!(classify(&frame[..end]), Class::Udp(_)));
            }
        }

        /// A payload a stage resized gets correct lengths and checksums.
        #[test]
        fn rewrite_after_a_stage_resized_the_payload(
            payload in proptest::collection::vec(any::<u8>(), 1..100),
            new_len in 0usize..150,
        ) {
            for (s, d, from, to) in [
                (sa("10.0.1.2:5000"), sa("10.0.1.1:30000"), sa("10.0.2.1:30003"), sa("10.0.2.2:4001")),
                (sa("[fd00::2]:5000"), sa("[fd00::1]:30000"), sa("[fd00:2::1]:30003"), sa("[fd00:2::2]:4001")),
            ] {
                let mut f = frame(s, d, &payload);
                let Class::Udp(u) = classify(&f) else { panic!() };
                f.resize(u.payload_at() + 150, 0xee);
                let end = rewrite(&mut f, &u, from, to, Some(new_len));
                let want = f[u.payload_at()..u.payload_at() + new_len].to_vec();
                verifies(&f[..end], from, to, &want);
            }
        }
    }
}
