//! HEPv3, the Homer Encapsulation Protocol: one captured packet (a SIP
//! message, an RTCP report, a log line) with its addresses, ports, capture
//! time, the capture agent's id and a correlation id, as a collector such
//! as Homer's heplify-server or sngrep's HEP listener reads it.
//!
//! A packet is the ASCII `HEP3`, its total length (16 bits, network order,
//! counting these 6 bytes), then chunks: vendor (0 = generic), type, length
//! (each 16 bits, the length counting the chunk's own 6-byte header), value.
//! Only the generic chunks a capture agent sends are written: IP family
//! and protocol, IPv4 or IPv6 source and destination, ports, seconds and
//! microseconds of the capture time, payload type, agent id, the optional
//! authentication key, the payload, and the correlation id.
//!
//! Written by hand: no HEP crate on crates.io is maintained and made for
//! sending (the few there are abandoned decoders or bound to one collector),
//! and the encoder is one function over a fixed format. It is its own
//! crate, knowing nothing of SIP, so that the control plane (SIP, NG) and
//! the data plane (RTCP) can both use it. Sans-IO: the caller passes the
//! capture time and sends the bytes.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// The transport the captured packet travelled on (HEP's "IP protocol ID").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp = 17,
    /// TCP, and TLS over it.
    Tcp = 6,
}

/// What the payload is (HEP's "protocol type").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadKind {
    Sip = 1,
    Rtcp = 5,
    /// A log line or a JSON document (used for rtpengine NG messages).
    Log = 100,
}

/// One captured packet to encapsulate.
#[derive(Debug, Clone)]
pub struct Capture<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub transport: Transport,
    /// The capture time, since the Unix epoch.
    pub time: Duration,
    pub kind: PayloadKind,
    pub agent_id: u32,
    /// The collector's password (the "authenticate key" chunk), if any.
    pub password: Option<&'a str>,
    /// Ties captures of one call together (Homer shows them as one flow).
    pub correlation: Option<&'a str>,
    pub payload: &'a [u8],
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HepError {
    #[error("HEP source {src} and destination {dst} are of different IP families")]
    MixedFamilies { src: SocketAddr, dst: SocketAddr },
    #[error("a HEP packet holds at most 65535 bytes; this capture needs {0}")]
    TooLong(usize),
}

/// Generic chunk types (vendor 0) of HEPv3.
mod chunk {
    pub const IP_FAMILY: u16 = 0x0001;
    pub const IP_PROTOCOL: u16 = 0x0002;
    pub const IPV4_SRC: u16 = 0x0003;
    pub const IPV4_DST: u16 = 0x0004;
    pub const IPV6_SRC: u16 = 0x0005;
    pub const IPV6_DST: u16 = 0x0006;
    pub const SRC_PORT: u16 = 0x0007;
    pub const DST_PORT: u16 = 0x0008;
    pub const TIME_SECONDS: u16 = 0x0009;
    pub const TIME_MICROS: u16 = 0x000a;
    pub const PROTOCOL_TYPE: u16 = 0x000b;
    pub const AGENT_ID: u16 = 0x000c;
    pub const AUTH_KEY: u16 = 0x000e;
    pub const PAYLOAD: u16 = 0x000f;
    pub const CORRELATION_ID: u16 = 0x0011;
}

/// Address families as HEP numbers them (those of BSD sockets).
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// The packet header: `HEP3` and the total length.
const HEADER: usize = 6;

impl Capture<'_> {
    /// Appends this capture as one HEPv3 packet to `out` (unchanged on error).
    pub fn encode(&self, out: &mut Vec<u8>) -> Result<(), HepError> {
        let (family, src, dst) = match (self.src.ip(), self.dst.ip()) {
            (IpAddr::V4(s), IpAddr::V4(d)) => (AF_INET, s.octets().to_vec(), d.octets().to_vec()),
            (IpAddr::V6(s), IpAddr::V6(d)) => (AF_INET6, s.octets().to_vec(), d.octets().to_vec()),
            _ => {
                return Err(HepError::MixedFamilies {
                    src: self.src,
                    dst: self.dst,
                })
            }
        };
        let (src_type, dst_type) = if family == AF_INET {
            (chunk::IPV4_SRC, chunk::IPV4_DST)
        } else {
            (chunk::IPV6_SRC, chunk::IPV6_DST)
        };
        let micros = self.time.subsec_micros();
        let mut chunks: Vec<(u16, &[u8])> = Vec::with_capacity(14);
        let (proto, kind) = ([self.transport as u8], [self.kind as u8]);
        let (sport, dport) = (self.src.port().to_be_bytes(), self.dst.port().to_be_bytes());
        let secs = (self.time.as_secs() as u32).to_be_bytes();
        let (micros, agent) = (micros.to_be_bytes(), self.agent_id.to_be_bytes());
        let family = [family];
        chunks.extend([
            (chunk::IP_FAMILY, &family[..]),
            (chunk::IP_PROTOCOL, &proto[..]),
            (src_type, &src[..]),
            (dst_type, &dst[..]),
            (chunk::SRC_PORT, &sport[..]),
            (chunk::DST_PORT, &dport[..]),
            (chunk::TIME_SECONDS, &secs[..]),
            (chunk::TIME_MICROS, &micros[..]),
            (chunk::PROTOCOL_TYPE, &kind[..]),
            (chunk::AGENT_ID, &agent[..]),
        ]);
        if let Some(p) = self.password {
            chunks.push((chunk::AUTH_KEY, p.as_bytes()));
        }
        chunks.push((chunk::PAYLOAD, self.payload));
        if let Some(c) = self.correlation {
            chunks.push((chunk::CORRELATION_ID, c.as_bytes()));
        }
        let total = HEADER + chunks.iter().map(|(_, v)| HEADER + v.len()).sum::<usize>();
        let total16 = u16::try_from(total).map_err(|_| HepError::TooLong(total))?;
        out.reserve(total);
        out.extend_from_slice(b"HEP3");
        out.extend_from_slice(&total16.to_be_bytes());
        for (kind, value) in chunks {
            out.extend_from_slice(&0u16.to_be_bytes()); // generic vendor
            out.extend_from_slice(&kind.to_be_bytes());
            out.extend_from_slice(&((HEADER + value.len()) as u16).to_be_bytes());
            out.extend_from_slice(value);
        }
        Ok(())
    }
}

/// The length of the HEPv3 packet at the start of `buf`, once its header
/// is there: how a stream of packets (HEP over TCP) is split.
pub fn packet_len(buf: &[u8]) -> Option<usize> {
    match buf {
        [b'H', b'E', b'P', b'3', hi, lo, ..] => Some(u16::from_be_bytes([*hi, *lo]) as usize),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sip_v4<'a>(
        payload: &'a [u8],
        password: Option<&'a str>,
        corr: Option<&'a str>,
    ) -> Capture<'a> {
        Capture {
            src: "192.0.2.1:5060".parse().unwrap(),
            dst: "198.51.100.7:5080".parse().unwrap(),
            transport: Transport::Udp,
            time: Duration::new(0x6000_0001, 2_000_999),
            kind: PayloadKind::Sip,
            agent_id: 0x0102_0304,
            password,
            correlation: corr,
            payload,
        }
    }

    /// The chunk `vendor 0, kind`, with `value`.
    fn ch(kind: u8, value: &[u8]) -> Vec<u8> {
        let mut c = vec![0, 0, 0, kind, 0, 6 + value.len() as u8];
        c.extend_from_slice(value);
        c
    }

    #[test]
    fn ipv4_sip_with_password_and_correlation_is_byte_exact() {
        let mut out = Vec::new();
        sip_v4(b"OPTIONS", Some("pw"), Some("abc@x"))
            .encode(&mut out)
            .unwrap();
        let chunks = [
            ch(0x01, &[2]),
            ch(0x02, &[17]),
            ch(0x03, &[192, 0, 2, 1]),
            ch(0x04, &[198, 51, 100, 7]),
            ch(0x07, &[0x13, 0xc4]),
            ch(0x08, &[0x13, 0xd8]),
            ch(0x09, &[0x60, 0, 0, 1]),
            ch(0x0a, &[0, 0, 0x07, 0xd0]), // 2000 µs: nanoseconds are cut, not rounded
            ch(0x0b, &[1]),
            ch(0x0c, &[1, 2, 3, 4]),
            ch(0x0e, b"pw"),
            ch(0x0f, b"OPTIONS"),
            ch(0x11, b"abc@x"),
        ]
        .concat();
        let mut want = b"HEP3".to_vec();
        want.extend_from_slice(&((6 + chunks.len()) as u16).to_be_bytes());
        want.extend_from_slice(&chunks);
        assert_eq!(out, want);
        assert_eq!(packet_len(&out), Some(out.len()));
    }

    #[test]
    fn ipv6_tcp_rtcp_without_options_leaves_their_chunks_out() {
        let c = Capture {
            src: "[2001:db8::1]:40000".parse().unwrap(),
            dst: "[2001:db8::2]:40001".parse().unwrap(),
            transport: Transport::Tcp,
            kind: PayloadKind::Rtcp,
            ..sip_v4(&[0x81, 0xc8], None, None)
        };
        let mut out = vec![0xee]; // appended after what is there
        c.encode(&mut out).unwrap();
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let mut dst = src;
        src[15] = 1;
        dst[15] = 2;
        let chunks = [
            ch(0x01, &[10]),
            ch(0x02, &[6]),
            ch(0x05, &src),
            ch(0x06, &dst),
            ch(0x07, &40000u16.to_be_bytes()),
            ch(0x08, &40001u16.to_be_bytes()),
            ch(0x09, &[0x60, 0, 0, 1]),
            ch(0x0a, &[0, 0, 0x07, 0xd0]),
            ch(0x0b, &[5]),
            ch(0x0c, &[1, 2, 3, 4]),
            ch(0x0f, &[0x81, 0xc8]),
        ]
        .concat();
        assert_eq!(
            &out[1..7],
            &[b'H', b'E', b'P', b'3', 0, 6 + chunks.len() as u8]
        );
        assert_eq!(&out[7..], &chunks[..]);
    }

    #[test]
    fn mixed_families_and_oversized_payloads_are_refused_and_write_nothing() {
        let mut c = sip_v4(b"x", None, None);
        c.dst = "[::1]:5060".parse().unwrap();
        let mut out = Vec::new();
        assert!(matches!(
            c.encode(&mut out),
            Err(HepError::MixedFamilies { .. })
        ));
        let big = vec![b'x'; 65535];
        assert!(matches!(
            sip_v4(&big, None, None).encode(&mut out),
            Err(HepError::TooLong(n)) if n > 65535
        ));
        assert!(out.is_empty());
        assert_eq!(packet_len(b"HEP2\0\x10"), None);
        assert_eq!(packet_len(b"HEP3\0"), None);
    }
}
