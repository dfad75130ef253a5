//! The Internet checksum (RFC 1071): full computation over buffers and UDP
//! pseudo-headers. Used to build and verify packets; the XDP program's
//! incremental update (RFC 1624) is tested against it below.

use std::net::IpAddr;

/// One's-complement sum of `data` as big-endian 16-bit words, not yet
/// complemented, folded to 16 bits. An odd trailing byte is padded with zero.
pub fn sum(data: &[u8]) -> u16 {
    fold(sum32(data, 0))
}

fn sum32(data: &[u8], mut acc: u32) -> u32 {
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc = acc.wrapping_add(u16::from_be_bytes([w[0], w[1]]) as u32);
        if acc > 0xffff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc = acc.wrapping_add((*last as u32) << 8);
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

/// The checksum to write into a header whose checksum field reads zero.
pub fn compute(data: &[u8]) -> u16 {
    !sum(data)
}

/// Whether a buffer that includes its checksum field verifies.
pub fn verify(data: &[u8]) -> bool {
    sum(data) == 0xffff
}

fn pseudo_header_sum(src: IpAddr, dst: IpAddr, proto: u32, udp_len: u32) -> u32 {
    let mut acc = 0u32;
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            acc = sum32(&s.octets(), acc);
            acc = sum32(&d.octets(), acc);
        }
        (s, d) => {
            acc = sum32(&to_v6(s), acc);
            acc = sum32(&to_v6(d), acc);
        }
    }
    acc += proto;
    acc += udp_len >> 16;
    acc += udp_len & 0xffff;
    acc
}

fn to_v6(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// UDP checksum for `segment` (header with its checksum field zeroed, plus
/// payload) between `src` and `dst`; zero is sent as 0xffff (RFC 768).
pub fn udp(src: IpAddr, dst: IpAddr, segment: &[u8]) -> u16 {
    let acc = sum32(
        segment,
        pseudo_header_sum(src, dst, 17, segment.len() as u32),
    );
    match !fold(acc) {
        0 => 0xffff,
        c => c,
    }
}

/// ICMPv6 checksum (RFC 4443) for `message` with its checksum field zeroed.
pub fn icmpv6(src: IpAddr, dst: IpAddr, message: &[u8]) -> u16 {
    !fold(sum32(
        message,
        pseudo_header_sum(src, dst, 58, message.len() as u32),
    ))
}

/// Whether an ICMPv6 message (with its checksum field as received) verifies.
pub fn icmpv6_verifies(src: IpAddr, dst: IpAddr, message: &[u8]) -> bool {
    fold(sum32(
        message,
        pseudo_header_sum(src, dst, 58, message.len() as u32),
    )) == 0xffff
}

/// Incremental update (RFC 1624) of a checksum field, as stored big-endian,
/// for `from` changing to `to` (equal lengths, an even number of bytes at an
/// even offset of the covered data).
pub fn update(check: u16, from: &[u8], to: &[u8]) -> u16 {
    let mut acc = (!check) as u32;
    for (f, t) in from.chunks_exact(2).zip(to.chunks_exact(2)) {
        acc += (!u16::from_be_bytes([f[0], f[1]])) as u32;
        acc += u16::from_be_bytes([t[0], t[1]]) as u32;
    }
    !fold(acc)
}

/// Whether a UDP segment (with its checksum field as received) verifies.
/// IPv4 allows a zero checksum to mean "not computed".
pub fn udp_verifies(src: IpAddr, dst: IpAddr, segment: &[u8]) -> bool {
    if src.is_ipv4() && segment.len() >= 8 && segment[6] == 0 && segment[7] == 0 {
        return true;
    }
    fold(sum32(
        segment,
        pseudo_header_sum(src, dst, 17, segment.len() as u32),
    )) == 0xffff
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to 0xddf2.
        assert_eq!(
            sum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn ipv4_header_fixture() {
        // A real IPv4 header (checksum 0xb861) from the Wikipedia/RFC examples.
        let hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert!(verify(&hdr));
        let mut z = hdr;
        z[10] = 0;
        z[11] = 0;
        assert_eq!(compute(&z), 0xb861);
    }

    fn words(b: &[u8]) -> Vec<u16> {
        // As the XDP program reads them: native-endian words in memory.
        b.chunks_exact(2)
            .map(|w| u16::from_ne_bytes([w[0], w[1]]))
            .collect()
    }

    proptest! {
        /// The XDP program's incremental update of an IPv4 header checksum
        /// equals recomputing it after the addresses change.
        #[test]
        fn ipv4_incremental_matches_full(
            hdr in proptest::collection::vec(any::<u8>(), 20),
            src in any::<[u8; 4]>(), dst in any::<[u8; 4]>())
        {
            let mut before = hdr.clone();
            before[0] = 0x45;
            before[10] = 0; before[11] = 0;
            let c = compute(&before);
            before[10..12].copy_from_slice(&c.to_be_bytes());
            let mut after = before.clone();
            after[12..16].copy_from_slice(&src);
            after[16..20].copy_from_slice(&dst);
            let stored = u16::from_ne_bytes([before[10], before[11]]);
            let upd = tollgate_ebpf::host::csum_update(stored, &words(&before[12..20]), &words(&after[12..20]));
            after[10..12].copy_from_slice(&upd.to_ne_bytes());
            prop_assert!(verify(&after));
        }

        /// The same for a UDP checksum over IPv6 pseudo-header and ports,
        /// including the zero-is-0xffff rule the program applies.
        #[test]
        fn udp6_incremental_matches_full(
            payload in proptest::collection::vec(any::<u8>(), 0..64),
            a in any::<[[u8; 16]; 4]>(), ports in any::<[u16; 4]>())
        {
            let (s0, d0, s1, d1) = (Ipv6Addr::from(a[0]), Ipv6Addr::from(a[1]), Ipv6Addr::from(a[2]), Ipv6Addr::from(a[3]));
            let mut seg = vec![0u8; 8];
            seg[0..2].copy_from_slice(&ports[0].to_be_bytes());
            seg[2..4].copy_from_slice(&ports[1].to_be_bytes());
            seg[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            seg.extend_from_slice(&payload);
            let c = udp(s0.into(), d0.into(), &seg);
            seg[6..8].copy_from_slice(&c.to_be_bytes());

            let mut old = a[0].to_vec(); old.extend_from_slice(&a[1]); old.extend_from_slice(&seg[0..4]);
            let mut new = a[2].to_vec(); new.extend_from_slice(&a[3]);
            new.extend_from_slice(&ports[2].to_be_bytes()); new.extend_from_slice(&ports[3].to_be_bytes());
            let stored = u16::from_ne_bytes([seg[6], seg[7]]);
            let mut upd = tollgate_ebpf::host::csum_update(stored, &words(&old), &words(&new));
            if upd == 0 { upd = 0xffff; }
            seg[0..4].copy_from_slice(&new[32..36]);
            seg[6..8].copy_from_slice(&upd.to_ne_bytes());
            prop_assert!(udp_verifies(s1.into(), d1.into(), &seg));
        }

        #[test]
        fn udp4_full_roundtrip(payload in proptest::collection::vec(any::<u8>(), 0..100), s in any::<[u8;4]>(), d in any::<[u8;4]>()) {
            let (s, d) = (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(d)));
            let mut seg = vec![0x13, 0x88, 0x0f, 0xa0, 0, 0, 0, 0];
            seg[4..6].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
            seg.extend_from_slice(&payload);
            let c = udp(s, d, &seg);
            prop_assert_ne!(c, 0);
            seg[6..8].copy_from_slice(&c.to_be_bytes());
            prop_assert!(udp_verifies(s, d, &seg));
            let flip = 8 % seg.len();
            seg[flip] ^= 0x01;
            prop_assert!(!udp_verifies(s, d, &seg));
        }
    }
}
