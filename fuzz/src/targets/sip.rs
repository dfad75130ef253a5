//! SIP messages as the transports hand them over: a UDP datagram, the
//! front of a TCP/TLS stream, the lenient read a 400 is built from; every
//! typed accessor the B2BUA reads; the owned Via, URI and name-addr
//! values; digest credentials.
//!
//! Round trips: a message that parses serialises to bytes that parse to
//! the same message (its Content-Length rewritten to the body's length,
//! and moved last), and those bytes are exactly one stream message; Via
//! and URI values print to text that parses to the same value, name-addrs
//! too but for a display name that cannot be quoted as written (printed
//! without its quotes, once and for all).

use tollgate_sip::digest::{Algorithm, Authenticator, Credentials};
use tollgate_sip::message::{split_list, Message, NameAddr, Uri, Via};
use tollgate_sip::view::{NameAddrRef, UriRef, ViaRef};

pub const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r\n\r\n",
    b"\r\n ",
    b"\r\n\t",
    b" SIP/2.0\r\n",
    b"SIP/2.0 200 OK\r\n",
    b"INVITE sip:bob@192.0.2.4 SIP/2.0\r\n",
    b"Via: SIP/2.0/UDP ",
    b"v: SIP/2.0/TCP [2001:db8::1]:5060",
    b";branch=z9hG4bK",
    b";rport",
    b";received=",
    b";tag=",
    b"From: ",
    b"To: ",
    b"f: ",
    b"t: ",
    b"Call-ID: ",
    b"CSeq: ",
    b"CSeq: 4294967296 INVITE\r\n",
    b"Contact: ",
    b"m: <sip:a@[::1]:0>;expires=",
    b"Max-Forwards: ",
    b"Content-Length: ",
    b"l: ",
    b"Content-Length: 18446744073709551616\r\n",
    b"Content-Type: application/sdp\r\n",
    b"Authorization: Digest ",
    b"Proxy-Authorization: Digest username=\"",
    b"realm=\"",
    b"nonce=\"",
    b"response=\"",
    b"uri=\"",
    b", ",
    b",",
    b"\"",
    b"\\\"",
    b"<",
    b">",
    b"<sip:",
    b"sips:",
    b"tel:+",
    b"@",
    b":",
    b"::",
    b";",
    b"=",
    b"[",
    b"]",
    b"0",
    b"65535",
    b"65536",
    b"4294967295",
    b"-1",
    b"\xff\xfe",
    b"\xc3\xa9",
];

/// Messages: every parse entry point, then the accessors and round trip.
pub fn message(data: &[u8]) {
    let _ = Message::parse_lenient(data).map(|m| accessors(&m));
    if let Ok((m, used)) = Message::parse_stream(data) {
        assert!(
            used <= data.len(),
            "stream parse used {used} of {} bytes",
            data.len()
        );
        accessors(&m);
    }
    if let Ok(m) = Message::parse(data) {
        accessors(&m);
        round_trip(&m, data);
    }
}

fn accessors(m: &Message) {
    let _ = m.validate();
    let v = m.view();
    let _ = (
        v.via(),
        v.from(),
        v.to(),
        v.cseq(),
        v.contact(),
        v.max_forwards(),
    );
    let _ = (v.call_id(), v.from_tag(), v.to_tag());
    let _ = (
        m.top_via(),
        m.from_tag(),
        m.to_tag(),
        m.cseq(),
        m.max_forwards(),
    );
    let _ = (m.request_method(), m.code(), m.reason(), m.call_id());
    if let Some(uri) = m.request_uri() {
        uri_value(uri);
    }
    for h in m.headers.iter() {
        for item in split_list(&h.value) {
            header_value(item);
        }
        if h.name.ends_with("Authorization") {
            credentials(&h.value);
        }
    }
}

fn round_trip(m: &Message, data: &[u8]) {
    let bytes = m.to_bytes();
    let again = Message::parse(&bytes).unwrap_or_else(|e| {
        panic!(
            "{} parsed, but its serialisation {} does not: {e}",
            crate::show(data),
            crate::show(&bytes)
        )
    });
    let without_length = |m: &Message| {
        let mut m = m.clone();
        m.remove_header("Content-Length");
        m
    };
    assert_eq!(
        without_length(&again),
        without_length(m),
        "round trip changed {}",
        crate::show(data)
    );
    match Message::parse_stream(&bytes) {
        Ok((s, used)) => {
            assert_eq!(used, bytes.len(), "stream read of {}", crate::show(&bytes));
            assert_eq!(
                s,
                again,
                "stream and datagram reads of {}",
                crate::show(&bytes)
            );
        }
        Err(e) => panic!("{} is not one stream message: {e}", crate::show(&bytes)),
    }
}

/// A header value read as each of the typed values the B2BUA reads;
/// each that parses must print back to text that parses the same.
fn header_value(v: &str) {
    if ViaRef::parse(v).is_ok() {
        let via = Via::parse(v).expect("owned Via parses where the view does");
        let printed = via.to_string();
        assert_eq!(
            Via::parse(&printed).as_ref(),
            Ok(&via),
            "Via {v:?} printed as {printed:?}"
        );
    }
    if NameAddrRef::parse(v).is_ok() {
        let na = NameAddr::parse(v).expect("owned name-addr parses where the view does");
        let _ = (na.tag(), na.uri());
        // A display name that cannot go between quotes as written is
        // printed without its quotes: the rest must come back as it was,
        // and printing again must change nothing.
        let printed = na.to_string();
        let again = NameAddr::parse(&printed)
            .unwrap_or_else(|e| panic!("name-addr {v:?} printed as {printed:?}: {e}"));
        assert_eq!(
            (&again.uri, &again.params),
            (&na.uri, &na.params),
            "name-addr {v:?} printed as {printed:?}"
        );
        assert_eq!(again.to_string(), printed, "name-addr {v:?} printed twice");
        let tagged = na.clone().with_tag("fuzz").to_string();
        let retagged = NameAddr::parse(&tagged)
            .unwrap_or_else(|e| panic!("name-addr {v:?} with a tag, {tagged:?}: {e}"));
        assert_eq!(retagged.tag().as_deref(), Some("fuzz"), "{tagged:?}");
    }
    uri_value(v);
}

fn uri_value(v: &str) {
    if let Ok(r) = UriRef::parse(v) {
        let _ = (r.is_sips(), r.param("transport"));
        let uri = Uri::parse(v).expect("owned URI parses where the view does");
        let _ = uri.ip();
        let printed = uri.to_string();
        assert_eq!(
            Uri::parse(&printed).as_ref(),
            Ok(&uri),
            "URI {v:?} printed as {printed:?}"
        );
    }
}

/// Digest credentials, and a check of them against a challenge.
fn credentials(v: &str) {
    let Ok(c) = Credentials::parse(v) else {
        return;
    };
    let auth = Authenticator::new(
        &c.realm,
        [7; 32],
        std::time::Duration::from_secs(30),
        vec![Algorithm::Sha256, Algorithm::Md5],
    );
    let _ = auth.verify(std::time::SystemTime::UNIX_EPOCH, "INVITE", &c, "secret");
}

/// A bare Authorization / Proxy-Authorization value.
pub fn digest(data: &[u8]) {
    credentials(&String::from_utf8_lossy(data));
}
