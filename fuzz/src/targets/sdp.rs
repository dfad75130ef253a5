//! SDP bodies as offers and answers carry them (SIP bodies, NG `sdp`):
//! parsing, every accessor the media session manager reads, and the
//! rewrite a relay makes of an offer.
//!
//! Round trips: an SDP that parses prints to text that parses to the same
//! SDP; after the relay's rewrite (origin, connection addresses, ports,
//! ICE stripped, codecs narrowed, attributes laid out as rtpengine writes
//! them) it still prints to text that parses back to the rewritten SDP.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use tollgate_sip::sdp::Sdp;

pub const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"v=0\r\n",
    b"o=- 1 1 IN IP4 192.0.2.1\r\n",
    b"o=- 18446744073709551616 0 IN IP6 ::1\r\n",
    b"s=-\r\n",
    b"c=IN IP4 ",
    b"c=IN IP6 ",
    b"c=IN IP4 224.2.1.1/127/3\r\n",
    b"t=0 0\r\n",
    b"m=audio ",
    b"m=video 0 RTP/AVP\r\n",
    b"m=audio 65535/2 RTP/AVPF 0 8 101\r\n",
    b"m=",
    b"a=rtpmap:",
    b"a=rtpmap:101 telephone-event/8000\r\n",
    b"a=fmtp:",
    b"a=rtcp-fb:",
    b"a=rtcp:",
    b"a=rtcp:65536 IN IP4 ",
    b"a=rtcp-mux\r\n",
    b"a=ptime:20\r\n",
    b"a=sendonly\r\n",
    b"a=inactive\r\n",
    b"a=candidate:1 1 UDP 2130706431 192.0.2.1 5000 typ host\r\n",
    b"a=ice-ufrag:",
    b"a=",
    b" ",
    b"/",
    b":",
    b"0",
    b"65535",
    b"65536",
    b"\xff",
];

pub fn sdp(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let Ok(sdp) = Sdp::parse(&text) else {
        return;
    };
    read_all(&sdp);
    reparses_to(&sdp, data, "parsed");
    let mut rewritten = sdp.clone();
    relay_rewrite(&mut rewritten);
    read_all(&rewritten);
    reparses_to(&rewritten, data, "rewritten");
}

/// Every accessor, on every media section.
fn read_all(sdp: &Sdp) {
    let _ = (
        sdp.origin_addr(),
        sdp.origin_version(),
        sdp.session_connection(),
    );
    for (i, m) in sdp.media.iter().enumerate() {
        let _ = (
            sdp.connection(i),
            m.kind(),
            m.port(),
            m.proto(),
            m.own_connection(),
        );
        let _ = (
            m.rtcp_port(),
            m.rtcp_attr(),
            m.direction(),
            m.has_attr("rtcp-mux"),
        );
        for pt in m.formats() {
            let _ = m.codec_name(&pt);
        }
    }
}

fn reparses_to(sdp: &Sdp, data: &[u8], what: &str) {
    let printed = sdp.to_string();
    match Sdp::parse(&printed) {
        Ok(again) => assert_eq!(
            &again,
            sdp,
            "{what} SDP of {} printed as {printed:?} parses differently",
            crate::show(data)
        ),
        Err(e) => panic!(
            "{what} SDP of {} printed as {printed:?} does not parse: {e}",
            crate::show(data)
        ),
    }
}

/// What the media session manager does to an offer before sending it on.
fn relay_rewrite(sdp: &mut Sdp) {
    let v4 = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 9));
    let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 9));
    let next = sdp.origin_version().map_or(1, |v| v.wrapping_add(1));
    sdp.set_origin_version(next);
    sdp.set_origin_addr(v4);
    sdp.set_session_connection(v6);
    sdp.strip_ice();
    for (i, m) in sdp.media.iter_mut().enumerate() {
        if m.port() == 0 {
            m.strip_to_m_and_c();
            continue;
        }
        let port = 30_000u16.wrapping_add((2 * i) as u16);
        m.set_port(port);
        m.set_connection(v4);
        m.set_proto("RTP/AVP");
        m.retain_formats(|pt, codec| pt != "18" && codec != Some("G729"));
        let direction = m.direction().to_string();
        m.relay_layout(&direction, Some(port.wrapping_add(1)), i % 2 == 1);
    }
}
