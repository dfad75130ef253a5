//! rtpengine's NG protocol as the NG server reads it: bencode and JSON
//! values, whole `<cookie> <body>` messages (a datagram, or the front of
//! a TCP stream), and the offer/answer options the control plane reads
//! from a message's dictionary.
//!
//! Round trips: a value that decodes encodes to bytes that decode to the
//! same value (JSON through the NG value model, where `true` is already 1
//! and `null` entries already dropped); a message that decodes re-encodes to one that decodes the same,
//! using every byte.

use tollgate::ng::options;
use tollgate_ng::{json, Message, Value};

pub const TOKENS: &[&[u8]] = &[
    b"d",
    b"e",
    b"l",
    b"i",
    b"i0e",
    b"i-0e",
    b"i-1e",
    b"i9223372036854775807e",
    b"i9223372036854775808e",
    b"i-9223372036854775809e",
    b"0:",
    b"1:",
    b"4294967296:",
    b"18446744073709551616:",
    b"7:command5:offer",
    b"3:sdp",
    b"5:flagsl",
    b"7:replacel6:origine",
    b"3:ICE6:remove",
    b"8:rtcp-mux",
    b"9:direction",
    b"13:received from",
    b"12:delete delay",
    b"5:codec",
    b"5:label",
    b"18:transport protocol",
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b":",
    b",",
    b"null",
    b"true",
    b"1.5",
    b"1e400",
    b"-9223372036854775809",
    b"\"\\ud800\"",
    b" ",
    b"\xff",
];

pub fn bencode(data: &[u8]) {
    if let Ok((v, used)) = Value::decode_prefix(data) {
        assert!(used <= data.len());
        let bytes = v.encode();
        assert_eq!(
            Value::decode(&bytes).as_ref(),
            Ok(&v),
            "bencode {} re-encoded as {}",
            crate::show(data),
            crate::show(&bytes)
        );
        let _ = options::parse(&v);
    }
}

pub fn json(data: &[u8]) {
    let Ok((v, used)) = json::decode_prefix(data) else {
        return;
    };
    assert!(used <= data.len());
    assert_eq!(
        json_again(&v, data),
        v,
        "JSON {} does not come back",
        crate::show(data)
    );
    let _ = options::parse(&v);
}

fn json_again(v: &Value, data: &[u8]) -> Value {
    let mut bytes = Vec::new();
    json::encode_into(v, &mut bytes);
    match json::decode_prefix(&bytes) {
        Ok((again, used)) if used == bytes.len() => again,
        other => panic!(
            "JSON {} re-encoded as {} reads as {other:?}",
            crate::show(data),
            crate::show(&bytes)
        ),
    }
}

pub fn message(data: &[u8]) {
    let Ok((m, used)) = Message::decode_prefix(data) else {
        return;
    };
    assert!(used <= data.len());
    let _ = options::parse(&m.body);
    let bytes = m.encode();
    match Message::decode_prefix(&bytes) {
        Ok((again, used)) => {
            assert_eq!(
                used,
                bytes.len(),
                "{} re-encoded as {}",
                crate::show(data),
                crate::show(&bytes)
            );
            assert_eq!(again.cookie, m.cookie);
            assert_eq!(again.format, m.format);
            assert_eq!(again.body, m.body, "{}", crate::show(data));
        }
        Err((_, e)) => panic!(
            "NG message {} re-encoded as {} does not decode: {e}",
            crate::show(data),
            crate::show(&bytes)
        ),
    }
}
