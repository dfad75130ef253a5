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
//! | op          | fields              | result ([`Reply`] variant)                 |
//! |-------------|---------------------|--------------------------------------------|
//! | `hello`     |                     | [`Hello`]: `{"version", "backend", "instance"}` |
//! | `flow_put`  | `flow`: a [`Flow`]  | `Installed`: `null` (installs or updates)  |
//! | `flow_del`  | `local`: "ip:port"  | `Flow`: the flow's final [`FlowReport`]    |
//! | `flow_get`  | `local`             | `Flow`: its report (flow, counters, idle)  |
//! | `flow_list` |                     | `Flows`: every flow's report               |
//! | `idle`      |                     | `Flows`: reports of idle flows             |
//! | `counters`  |                     | `Counters`: `{name: value}` global counters |
//! | `workers`   |                     | `Workers`: per-worker [`WorkerReport`]s    |
//! | `events`    |                     | `Events`: pipeline [`Event`]s since last asked |
//! | `recording_open` | `dir`: a directory; `recording`: N to reopen (optional) | `Recording`: a fresh [`RecordingReport`] (its number for `tap` stages: N when given, the capture in `dir` appended to) |
//! | `recording_close` | `recording`: N    | `Recording`: what the closed capture holds |
//! | `recordings` |                    | `Recordings`: the open recordings          |
//! | `prompt_load` | `id`, `path`      | `Prompt`: [`PromptInfo`] of the WAV cached as prompt `id` |
//!
//! Reply: `{"ok": true, "result": ...}` (a [`Reply`], whose shape the
//! request's op decides) or `{"ok": false, "error": "...", "kind": "..."}` (a
//! [`ControlError`]): the error says what was wrong with which field, the
//! kind lets a client act on it without reading the text. A frame over the
//! size limit is answered with an error and the connection is closed, since
//! the stream can no longer be trusted to be in step.

use crate::backend::WorkerReport;
use crate::flow::Flow;
use crate::pipeline::Event;
use crate::prompt::PromptInfo;
use crate::recorder::RecordingReport;
use crate::table::FlowReport;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
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
    FlowPut {
        flow: Flow,
    },
    FlowDel {
        local: SocketAddr,
    },
    FlowGet {
        local: SocketAddr,
    },
    FlowList,
    Idle,
    Counters,
    Workers,
    Events,
    RecordingOpen {
        dir: std::path::PathBuf,
        /// Reopen under this number (a control plane re-installing a
        /// recording into a restarted data plane, whose flows' taps name it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        recording: Option<u32>,
    },
    RecordingClose {
        recording: u32,
    },
    Recordings,
    /// Reads the WAV file at `path` (on the data plane's host) into the
    /// prompt cache as prompt `id`, for `prompt` stages.
    PromptLoad {
        id: u32,
        path: std::path::PathBuf,
    },
}

/// `hello`'s result: who is answering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    /// The protocol version the data plane speaks ([`PROTOCOL_VERSION`]).
    pub version: u64,
    /// The running backend (`xdp`, `socket`, `dpdk`).
    pub backend: String,
    /// Identifies the data-plane process: it changes when the data plane
    /// restarts, so a client knows to install its flows again.
    pub instance: u64,
}

/// The `result` of a successful reply; which variant answers which op is in
/// the table above, and [`Reply::decode`] reads it accordingly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Reply {
    Hello(Hello),
    /// `flow_put` done (`null` on the wire).
    Installed,
    /// `flow_get`, and `flow_del` (the flow's final report).
    Flow(Box<FlowReport>),
    /// `flow_list` and `idle`.
    Flows(Vec<FlowReport>),
    /// Global counters by name.
    Counters(BTreeMap<String, u64>),
    Workers(Vec<WorkerReport>),
    Events(Vec<Event>),
    /// `recording_open` and `recording_close`.
    Recording(Box<RecordingReport>),
    Recordings(Vec<RecordingReport>),
    Prompt(PromptInfo),
}

impl Reply {
    /// Reads the `result` of a successful reply to `req`.
    pub fn decode(req: &Request, result: serde_json::Value) -> Result<Reply, serde_json::Error> {
        use serde_json::from_value;
        Ok(match req {
            Request::Hello => Reply::Hello(from_value(result)?),
            Request::FlowPut { .. } => from_value::<()>(result).map(|()| Reply::Installed)?,
            Request::FlowDel { .. } | Request::FlowGet { .. } => Reply::Flow(from_value(result)?),
            Request::FlowList | Request::Idle => Reply::Flows(from_value(result)?),
            Request::Counters => Reply::Counters(from_value(result)?),
            Request::Workers => Reply::Workers(from_value(result)?),
            Request::Events => Reply::Events(from_value(result)?),
            Request::RecordingOpen { .. } | Request::RecordingClose { .. } => {
                Reply::Recording(from_value(result)?)
            }
            Request::Recordings => Reply::Recordings(from_value(result)?),
            Request::PromptLoad { .. } => Reply::Prompt(from_value(result)?),
        })
    }
}

/// What kind of refusal an error reply is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The request could not be read: not JSON, wrong version, unknown op,
    /// a bad or missing field, or too large.
    BadRequest,
    /// No flow is installed at the `local` address named.
    NoSuchFlow,
    /// No recording with the number named is open.
    NoSuchRecording,
    /// The flow is not installable as given (it mixes address families, ...).
    Invalid,
    /// The backend could not apply the change (a bind or BPF map failed).
    Backend,
    /// A kind this client does not know, or none (a data plane older than
    /// error kinds).
    #[default]
    #[serde(other)]
    Other,
}

/// A refused request: its kind, and a message naming the input and what is
/// wrong with it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ControlError {
    pub kind: ErrorKind,
    pub message: String,
}

impl ControlError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ControlError {
            kind,
            message: message.into(),
        }
    }

    fn bad_request(message: impl Into<String>) -> Self {
        ControlError::new(ErrorKind::BadRequest, message)
    }
}

/// Parses one request frame's JSON, checking the version first so an old or
/// new client gets a clear answer.
pub fn decode_request(body: &[u8]) -> Result<Request, ControlError> {
    let bad = ControlError::bad_request;
    let mut v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| bad(format!("request is not valid JSON: {e}")))?;
    let obj = v
        .as_object_mut()
        .ok_or_else(|| bad("request must be a JSON object".into()))?;
    match obj.remove("v") {
        Some(serde_json::Value::Number(n)) if n.as_u64() == Some(PROTOCOL_VERSION) => {}
        Some(other) => {
            return Err(bad(format!(
                "unsupported protocol version {other}; this data plane speaks version {PROTOCOL_VERSION}"
            )))
        }
        None => {
            return Err(bad(format!(
                "request has no \"v\" (protocol version, {PROTOCOL_VERSION})"
            )))
        }
    }
    if !obj.contains_key("op") {
        return Err(bad("request has no \"op\"".into()));
    }
    serde_json::from_value(v).map_err(|e| bad(format!("bad request: {e}")))
}

pub fn encode_request(req: &Request) -> Vec<u8> {
    let mut v = serde_json::to_value(req).expect("requests serialize");
    v.as_object_mut()
        .expect("tagged enum is an object")
        .insert("v".into(), PROTOCOL_VERSION.into());
    serde_json::to_vec(&v).expect("values serialize")
}

/// A reply frame's JSON, as the server writes it.
#[derive(Serialize)]
#[serde(untagged)]
enum Outgoing<'a> {
    Ok {
        ok: bool,
        result: &'a Reply,
    },
    Refused {
        ok: bool,
        error: &'a str,
        kind: ErrorKind,
    },
}

/// A reply frame's JSON, as a client reads it.
#[derive(Deserialize)]
struct Incoming {
    ok: bool,
    #[serde(default)]
    result: serde_json::Value,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    kind: ErrorKind,
}

pub fn encode_reply(reply: &Result<Reply, ControlError>) -> Vec<u8> {
    let out = match reply {
        Ok(result) => Outgoing::Ok { ok: true, result },
        Err(e) => Outgoing::Refused {
            ok: false,
            error: &e.message,
            kind: e.kind,
        },
    };
    serde_json::to_vec(&out).expect("replies serialize")
}

/// Reads a reply frame: the `result` of a success (for [`Reply::decode`]),
/// or the refusal. The outer error says the frame is not a reply at all.
pub fn decode_reply(body: &[u8]) -> Result<Result<serde_json::Value, ControlError>, String> {
    let r: Incoming = serde_json::from_slice(body)
        .map_err(|e| format!("{e}: {}", String::from_utf8_lossy(body)))?;
    Ok(if r.ok {
        Ok(r.result)
    } else {
        let message = r.error.unwrap_or_else(|| "unspecified error".into());
        Err(ControlError::new(r.kind, message))
    })
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

/// Writes one frame with one `write` (a length and a body written apart
/// would cost the peer two reads).
pub fn write_frame(w: &mut impl Write, body: &[u8]) -> io::Result<()> {
    let mut frame = Vec::with_capacity(4 + body.len());
    push_frame(&mut frame, body)?;
    w.write_all(&frame)?;
    w.flush()
}

/// Appends one frame to `out`, for a writer that sends several at once.
pub fn push_frame(out: &mut Vec<u8>, body: &[u8]) -> io::Result<()> {
    let len = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame longer than 4 GiB"))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    Ok(())
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
        assert_eq!(e.kind, ErrorKind::BadRequest);
        let e = e.message;
        assert!(e.starts_with("request is not valid JSON"), "{e}");
        let e = decode_request(br#"{"op":"hello"}"#).unwrap_err().message;
        assert!(e.contains("no \"v\""), "{e}");
        let e = decode_request(br#"{"v":2,"op":"hello"}"#)
            .unwrap_err()
            .message;
        assert!(e.contains("unsupported protocol version 2"), "{e}");
        let e = decode_request(br#"{"v":1,"op":"explode"}"#)
            .unwrap_err()
            .message;
        assert!(e.contains("explode"), "{e}");
        let e = decode_request(br#"{"v":1,"op":"flow_del","local":"nowhere"}"#)
            .unwrap_err()
            .message;
        assert!(e.contains("invalid socket address"), "{e}");
        let e = decode_request(br#"{"v":1,"op":"flow_put","flow":{"local":"1.2.3.4:5"}}"#)
            .unwrap_err()
            .message;
        assert!(e.contains("missing field `source`"), "{e}");
        assert!(decode_request(b"[1]")
            .unwrap_err()
            .message
            .contains("JSON object"));
    }

    fn answer(req: &Request, frame: &[u8]) -> Result<Reply, ControlError> {
        decode_reply(frame)
            .unwrap()
            .map(|v| Reply::decode(req, v).unwrap())
    }

    #[test]
    fn replies_keep_their_wire_shape_and_read_back_typed() {
        let hello = Reply::Hello(Hello {
            version: 1,
            backend: "socket".into(),
            instance: 7,
        });
        let frame = encode_reply(&Ok(hello.clone()));
        let v: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"ok": true, "result": {"version": 1, "backend": "socket", "instance": 7}})
        );
        assert_eq!(answer(&Request::Hello, &frame), Ok(hello));
        let put = Request::FlowPut {
            flow: serde_json::from_str(
                r#"{"local":"127.0.0.1:1","source":"127.0.0.1:2","destination":"127.0.0.1:3"}"#,
            )
            .unwrap(),
        };
        let frame = encode_reply(&Ok(Reply::Installed));
        assert_eq!(frame, br#"{"ok":true,"result":null}"#);
        assert_eq!(answer(&put, &frame), Ok(Reply::Installed));
        let counters = Reply::Counters([("flows".to_string(), 2)].into());
        let frame = encode_reply(&Ok(counters.clone()));
        assert_eq!(frame, br#"{"ok":true,"result":{"flows":2}}"#);
        assert_eq!(answer(&Request::Counters, &frame), Ok(counters));
    }

    #[test]
    fn prompt_load_reads_back_typed() {
        let req =
            decode_request(br#"{"v":1,"op":"prompt_load","id":3,"path":"/p/w.wav"}"#).unwrap();
        assert_eq!(
            req,
            Request::PromptLoad {
                id: 3,
                path: "/p/w.wav".into()
            }
        );
        let info = PromptInfo {
            id: 3,
            path: "/p/w.wav".into(),
            source_rate: 44_100,
            source_channels: 2,
            source_format: "pcm16".into(),
            samples: 8000,
            duration_ms: 1000,
        };
        let frame = encode_reply(&Ok(Reply::Prompt(info.clone())));
        assert_eq!(answer(&req, &frame), Ok(Reply::Prompt(info)));
    }

    #[test]
    fn a_flow_report_reads_back_as_sent() {
        let flow: Flow = serde_json::from_str(
            r#"{"local":"127.0.0.1:1","source":"127.0.0.1:2","destination":"127.0.0.1:3","stages":[{"kind":"rtcp_demux"}]}"#,
        )
        .unwrap();
        let report = FlowReport {
            flow,
            counters: crate::backend::FlowCounters {
                packets: 9,
                bytes: 900,
                learned: "192.0.2.1:4000".parse().ok(),
                rtp: Some(crate::quality::Quality {
                    lost: 2,
                    jitter: 40,
                    ..Default::default()
                }),
                remote: Some(crate::quality::RemoteReport {
                    reports: 3,
                    fraction_lost: 12,
                    cumulative_lost: -1,
                    jitter: 80,
                    rtt_us: Some(41_500),
                }),
                rtcp: Some(crate::quality::RtcpReport {
                    seq: 3,
                    ms_ago: 700,
                    packet_type: 201,
                    ssrc: 0xaa,
                    report_count: 1,
                    block: Some(crate::quality::BlockReport {
                        packets_lost: -1,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            },
            last_packet_ms_ago: Some(20),
            idle_ms: 20,
            idle: false,
        };
        let reply = Reply::Flow(Box::new(report));
        let frame = encode_reply(&Ok(reply.clone()));
        let del = Request::FlowDel {
            local: "127.0.0.1:1".parse().unwrap(),
        };
        assert_eq!(answer(&del, &frame), Ok(reply));
        let v: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(v["result"]["counters"]["rtp"]["lost"], 2, "{v}");
        assert_eq!(v["result"]["counters"]["remote"]["rtt_us"], 41_500, "{v}");
        assert_eq!(
            v["result"]["counters"]["remote"]["cumulative_lost"], -1,
            "{v}"
        );
        assert_eq!(v["result"]["flow"]["local"], "127.0.0.1:1");
    }

    #[test]
    fn refusals_carry_their_kind() {
        let e = ControlError::new(
            ErrorKind::NoSuchFlow,
            "no flow matches local address 1.2.3.4:5",
        );
        let frame = encode_reply(&Err(e.clone()));
        let v: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(v["error"], "no flow matches local address 1.2.3.4:5");
        assert_eq!(v["kind"], "no_such_flow");
        assert_eq!(answer(&Request::FlowList, &frame), Err(e));
        // A data plane older than kinds, or one with a kind this side does not know.
        let old = answer(&Request::FlowList, br#"{"ok":false,"error":"nope"}"#).unwrap_err();
        assert_eq!((old.kind, old.message.as_str()), (ErrorKind::Other, "nope"));
        let new = br#"{"ok":false,"error":"x","kind":"solar_flare"}"#;
        assert_eq!(
            answer(&Request::FlowList, new).unwrap_err().kind,
            ErrorKind::Other
        );
        assert!(decode_reply(b"[]").is_err());
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
