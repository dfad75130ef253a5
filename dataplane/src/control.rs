//! The data plane's control protocol, spoken over a Unix stream socket by
//! the control plane and `tollgate ctl`.
//!
//! Framing: each message is a 4-byte big-endian length followed by that many
//! bytes of UTF-8 JSON. Requests are at most [`MAX_REQUEST`] (the server's
//! guard against a bad client); replies may be far larger (a flow list of
//! tens of thousands of flows), up to [`MAX_REPLY`]. A client sends requests
//! and reads one reply per request, in order, on one connection.
//!
//! Request: `{"v": 1, "op": "<op>", ...}` where `v` is [`PROTOCOL_VERSION`].
//!
//! | op          | fields              | result                           |
//! |-------------|---------------------|----------------------------------|
//! | `hello`     |                     | `{"version", "backend", "instance"}` |
//! | `flow_put`  | `flow`: a [`Flow`]  | `null` (installs or updates)     |
//! | `flow_del`  | `local`: "ip:port"  | the flow's final report          |
//! | `flow_get`  | `local`             | a report (flow, counters, idle)  |
//! | `flow_list` |                     | list of reports                  |
//! | `idle`      |                     | reports of idle flows            |
//! | `counters`  |                     | `{name: value}` global counters  |
//! | `workers`   |                     | list of per-worker reports       |
//! | `events`    |                     | pipeline events since last asked |
//!
//! Reply: `{"ok": true, "result": ...}` or `{"ok": false, "error": "..."}`;
//! the error says what was wrong with which field. A frame over the size
//! limit is answered with an error and the connection is closed, since the
//! stream can no longer be trusted to be in step.

use crate::flow::Flow;
use serde::{Deserialize, Serialize};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

pub const PROTOCOL_VERSION: u64 = 1;
/// Largest request the server reads.
pub const MAX_REQUEST: usize = 1 << 20;
/// Largest reply a client reads.
pub const MAX_REPLY: usize = 1 << 30;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    Hello,
    FlowPut { flow: Flow },
    FlowDel { local: SocketAddr },
    FlowGet { local: SocketAddr },
    FlowList,
    Idle,
    Counters,
    Workers,
    Events,
}

/// Parses one request frame's JSON, checking the version first so an old or
/// new client gets a clear answer.
pub fn decode_request(body: &[u8]) -> Result<Request, String> {
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("request is not valid JSON: {e}"))?;
    let obj = v.as_object_mut().ok_or("request must be a JSON object")?;
    match obj.remove("v") {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(PROTOCOL_VERSION) => {}
        Some(other) => {
            return Err(format!(
                "unsupported protocol version {other}; this data plane speaks version {PROTOCOL_VERSION}"
            ))
        }
        None => return Err(format!("request has no \"v\" (protocol version, {PROTOCOL_VERSION})")),
    }
    if !obj.contains_key("op") {
        return Err("request has no \"op\"".into());
    }
    serde_json::from_value(v).map_err(|e| format!("bad request: {e}"))
}

pub fn encode_request(req: &Request) -> Vec<u8> {
    let mut v = serde_json::to_value(req).expect("requests serialize");
    v.as_object_mut()
        .expect("tagged enum is an object")
        .insert("v".into(), PROTOCOL_VERSION.into());
    serde_json::to_vec(&v).expect("values serialize")
}

pub fn ok_reply(result: serde_json::Value) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"ok": true, "result": result}))
        .expect("values serialize")
}

pub fn error_reply(msg: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"ok": false, "error": msg})).expect("values serialize")
}

/// What reading a frame produced.
#[derive(Debug)]
pub enum Frame {
    Body(Vec<u8>),
    /// The peer closed the connection between frames.
    Closed,
    /// The length prefix exceeds the reader's limit.
    TooLarge(usize),
}

/// Reads one frame of at most `max` bytes.
pub fn read_frame(r: &mut impl Read, max: usize) -> io::Result<Frame> {
    let mut len = [0u8; 4];
    match r.read_exact(&mut len) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(Frame::Closed),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Ok(Frame::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body)?;
    Ok(Frame::Body(body))
}

pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame longer than 4 GiB"))?;
    w.write_all(&len.to_be_bytes())?;
    w.write_all(body)?;
    w.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_round_trip() {
        let r = Request::FlowDel {
            local: "10.0.0.1:30000".parse().unwrap(),
        };
        assert_eq!(decode_request(&encode_request(&r)).unwrap(), r);
        assert_eq!(
            decode_request(br#"{"v":1,"op":"flow_list"}"#).unwrap(),
            Request::FlowList
        );
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let e = decode_request(b"{nope").unwrap_err();
        assert!(e.starts_with("request is not valid JSON"), "{e}");
        let e = decode_request(br#"{"op":"hello"}"#).unwrap_err();
        assert!(e.contains("no \"v\""), "{e}");
        let e = decode_request(br#"{"v":2,"op":"hello"}"#).unwrap_err();
        assert!(e.contains("unsupported protocol version 2"), "{e}");
        let e = decode_request(br#"{"v":1,"op":"explode"}"#).unwrap_err();
        assert!(e.contains("explode"), "{e}");
        let e = decode_request(br#"{"v":1,"op":"flow_del","local":"nowhere"}"#).unwrap_err();
        assert!(e.contains("invalid socket address"), "{e}");
        let e =
            decode_request(br#"{"v":1,"op":"flow_put","flow":{"local":"1.2.3.4:5"}}"#).unwrap_err();
        assert!(e.contains("missing field `source`"), "{e}");
        assert!(decode_request(b"[1]").unwrap_err().contains("JSON object"));
    }

    #[test]
    fn frames_round_trip_and_limit() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"hello").unwrap();
        let mut r = &buf[..];
        assert!(
            matches!(read_frame(&mut r, MAX_REQUEST).unwrap(), Frame::Body(b) if b == b"hello")
        );
        assert!(matches!(
            read_frame(&mut r, MAX_REQUEST).unwrap(),
            Frame::Closed
        ));
        let big = ((MAX_REQUEST + 1) as u32).to_be_bytes();
        assert!(matches!(
            read_frame(&mut &big[..], MAX_REQUEST).unwrap(),
            Frame::TooLarge(_)
        ));
    }
}
