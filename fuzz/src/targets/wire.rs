//! Packets as the data plane's user-space paths receive them: whole
//! Ethernet frames (classified as the DPDK relay does, rewritten for a
//! relay, answered when ARP or neighbour discovery), and UDP payloads read
//! as RTP or RTCP.
//!
//! Properties: a frame classified as UDP and rewritten to new addresses
//! still classifies as UDP between those addresses with the same payload,
//! and checksums that verified before still verify; a neighbour reply
//! classifies as neighbour traffic; a frame built around a payload reads
//! back with that payload.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use tollgate_dataplane::backend::dpdk::neighbour::{self, Answer, Interface};
use tollgate_dataplane::backend::dpdk::relay::{self, Class};
use tollgate_dataplane::wire::{arp, checksum, ethernet, ipv4, ipv6, ndp, rtcp, rtp, udp};

pub const TOKENS: &[&[u8]] = &[
    b"\x08\x00",
    b"\x86\xdd",
    b"\x08\x06",
    b"\x45\x00",
    b"\x46\x00",
    b"\x60\x00\x00\x00",
    b"\x11",
    b"\x3a",
    b"\x87\x00",
    b"\x88\x00",
    b"\x00\x01\x08\x00\x06\x04\x00\x01",
    b"\xc0\x00\x02\x01",
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01",
    b"\x00\x00",
    b"\xff\xff",
    b"\x80\x00",
    b"\x80\x48",
    b"\x80\xc8",
    b"\x81\xc9\x00\x07",
    b"\x90",
    b"\xa0",
    b"\xbe\xde\x00\x01",
    b"\xff",
];

fn interface() -> Interface {
    Interface {
        mac: [2, 0, 0, 0, 0, 1],
        addresses: vec![
            (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)), 24),
            (
                IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
                64,
            ),
        ],
        gateways: vec![IpAddr::V4(Ipv4Addr::new(192, 0, 2, 254))],
    }
}

pub fn frame(data: &[u8]) {
    views(data);
    match relay::classify(data) {
        Class::Udp(u) => relayed(data, &u),
        Class::Neighbour => answered(data),
        _ => {}
    }
}

/// Every view's accessors over the frame, as far as they parse.
fn views(data: &[u8]) {
    let Ok(eth) = ethernet::Frame::new_checked(data) else {
        return;
    };
    let _ = (eth.source(), eth.destination(), eth.ethertype());
    let l3 = eth.payload();
    if let Ok(p) = arp::Packet::new_checked(l3) {
        let r = arp::Repr::parse(&p);
        let mut out = vec![0; arp::LEN];
        r.emit(&mut out);
        let again = arp::Packet::new_checked(&out[..]).expect("an emitted ARP packet parses");
        assert_eq!(arp::Repr::parse(&again), r, "ARP round trip of {:?}", l3);
    }
    if let Ok(ip) = ipv4::Packet::new_checked(l3) {
        let _ = (
            ip.ttl(),
            ip.protocol(),
            ip.source(),
            ip.destination(),
            ip.checksum_ok(),
        );
        transport(
            IpAddr::V4(ip.source()),
            IpAddr::V4(ip.destination()),
            ip.payload(),
        );
    }
    if let Ok(ip) = ipv6::Packet::new_checked(l3) {
        let (s, d) = (ip.source(), ip.destination());
        if let Ok(m) = ndp::Message::new_checked(ip.payload()) {
            let _ = (m.msg_type(), m.solicited(), m.target(), m.lladdr());
            let _ = checksum::icmpv6_verifies(IpAddr::V6(s), IpAddr::V6(d), ip.payload());
        }
        transport(IpAddr::V6(s), IpAddr::V6(d), ip.payload());
    }
}

fn transport(src: IpAddr, dst: IpAddr, l4: &[u8]) {
    if let Ok(d) = udp::Datagram::new_checked(l4) {
        let _ = (d.source_port(), d.destination_port(), d.checksum());
        let _ = checksum::udp_verifies(src, dst, d.segment());
        payload(d.payload());
    }
}

/// A frame the relay forwards: rewritten from one relay address to a peer.
fn relayed(data: &[u8], u: &relay::Udp) {
    let (from, to) = if u.src.is_ipv4() {
        (
            SocketAddr::new(Ipv4Addr::new(203, 0, 113, 1).into(), 30_000),
            SocketAddr::new(Ipv4Addr::new(198, 51, 100, 7).into(), 40_001),
        )
    } else {
        (
            SocketAddr::new(
                Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1).into(),
                30_000,
            ),
            SocketAddr::new(
                Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, 7).into(),
                40_001,
            ),
        )
    };
    let verified = udp_ok(data, u);
    let mut out = data.to_vec();
    let len = relay::rewrite(&mut out, u, from, to, None);
    let out = &out[..len];
    let Class::Udp(r) = relay::classify(out) else {
        panic!("frame {data:?} rewritten as {out:?} no longer classifies as UDP");
    };
    assert_eq!(
        (r.src, r.dst, r.payload_len),
        (from, to, u.payload_len),
        "rewrite of {data:?}"
    );
    if verified {
        assert!(
            udp_ok(out, &r),
            "UDP checksum broken by the rewrite of {data:?}: {out:?}"
        );
    }
    if u.src.is_ipv4() {
        let before = ipv4::Packet::new_checked(&data[ethernet::HEADER_LEN..]).expect("classified");
        let after = ipv4::Packet::new_checked(&out[ethernet::HEADER_LEN..]).expect("classified");
        if before.checksum_ok() {
            assert!(
                after.checksum_ok(),
                "IPv4 checksum broken by the rewrite of {data:?}"
            );
        }
    }
    built(u, &data[u.payload_at()..u.payload_at() + u.payload_len]);
}

fn udp_ok(frame: &[u8], u: &relay::Udp) -> bool {
    let seg = &frame[u.l4..u.payload_at() + u.payload_len];
    checksum::udp_verifies(u.src.ip(), u.dst.ip(), seg)
}

/// A frame built around the payload reads back with it.
fn built(u: &relay::Udp, payload: &[u8]) {
    let mut out = vec![0u8; payload.len() + 100];
    let Some(len) = relay::build(&mut out, u.src, u.dst, payload) else {
        return;
    };
    let Class::Udp(b) = relay::classify(&out[..len]) else {
        panic!("a built frame does not classify as UDP: {:?}", &out[..len]);
    };
    assert_eq!((b.src, b.dst), (u.src, u.dst));
    assert_eq!(
        &out[b.payload_at()..b.payload_at() + b.payload_len],
        payload
    );
    assert!(
        udp_ok(&out, &b),
        "a built frame's UDP checksum does not verify"
    );
}

/// ARP and neighbour discovery answered for our interface.
fn answered(data: &[u8]) {
    let mut buf = data.to_vec();
    buf.resize(data.len().max(neighbour::ANSWER_ROOM), 0);
    if let Answer::Reply { len, .. } = neighbour::answer(&interface(), &mut buf, data.len()) {
        let reply = &buf[..len];
        assert_eq!(
            relay::classify(reply),
            Class::Neighbour,
            "the reply {reply:?} to {data:?} is not neighbour traffic"
        );
    }
}

/// A UDP payload, as media: RTP or RTCP.
pub fn payload(data: &[u8]) {
    if let Ok(p) = rtp::Packet::new_checked(data) {
        let _ = (
            p.marker(),
            p.payload_type(),
            p.sequence(),
            p.timestamp(),
            p.ssrc(),
        );
    }
    if let Ok(p) = rtcp::Packet::new_checked(data) {
        let _ = (p.packet_type(), p.count(), p.sender_ssrc());
        assert!(p.len_bytes() <= data.len());
    }
}
