//! The data-plane control protocol as both ends read it: length-prefixed
//! frames from a stream, request bodies (the data plane's side) and reply
//! bodies with the typed result for each request (the control plane's).
//!
//! Round trips: a request that decodes encodes to one that decodes to the
//! same request; a reply result that decodes to a typed reply encodes to
//! a frame that decodes to the same reply.

use std::io::Cursor;
use tollgate_dataplane::control::{
    decode_reply, decode_request, encode_reply, encode_request, read_frame, Frame, Reply, Request,
};

pub const TOKENS: &[&[u8]] = &[
    b"{\"v\":1,\"op\":\"",
    b"\"v\":1",
    b"\"v\":18446744073709551616",
    b"\"op\":\"flow_put\"",
    b"\"op\":\"flow_del\"",
    b"\"op\":\"hello\"",
    b"\"flow\":{",
    b"\"local\":\"127.0.0.1:30000\"",
    b"\"[::1]:0\"",
    b"\"stages\":[{\"kind\":\"null\"}]",
    b"\"ok\":true",
    b"\"ok\":false",
    b"\"result\":",
    b"\"kind\":\"bad_request\"",
    b"null",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"-1",
    b"1e400",
    b"\x00\x00\x00\x10",
    b"\xff\xff\xff\xff",
];

/// The requests a reply may answer, to read its result as each would.
fn requests() -> Vec<Request> {
    let local = "127.0.0.1:30000".parse().expect("address");
    vec![
        Request::Hello,
        Request::FlowDel { local },
        Request::FlowList,
        Request::Counters,
        Request::Workers,
        Request::Events,
    ]
}

pub fn control(data: &[u8]) {
    frames(data);
    if let Ok(req) = decode_request(data) {
        let bytes = encode_request(&req);
        match decode_request(&bytes) {
            Ok(again) => assert_eq!(again, req, "request {} re-encoded", crate::show(data)),
            Err(e) => panic!(
                "request {} re-encoded as {} does not decode: {e}",
                crate::show(data),
                crate::show(&bytes)
            ),
        }
    }
    if let Ok(Ok(result)) = decode_reply(data) {
        for req in requests() {
            if let Ok(reply) = Reply::decode(&req, result.clone()) {
                let bytes = encode_reply(&Ok(reply.clone()));
                let again = decode_reply(&bytes)
                    .ok()
                    .and_then(|r| r.ok())
                    .map(|r| Reply::decode(&req, r));
                assert!(
                    matches!(&again, Some(Ok(r)) if *r == reply),
                    "reply {} to {req:?} re-encoded as {} reads as {again:?}",
                    crate::show(data),
                    crate::show(&bytes)
                );
            }
        }
    }
}

/// The input as a stream of frames, read until it ends or breaks.
fn frames(data: &[u8]) {
    let mut r = Cursor::new(data);
    for _ in 0..64 {
        match read_frame(&mut r, 1 << 16) {
            Ok(Frame::Body(b)) => assert!(b.len() <= data.len()),
            Ok(Frame::TooLarge(_)) | Ok(Frame::Closed) | Err(_) => return,
        }
    }
}
