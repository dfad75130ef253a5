//! NG replies in rtpengine's shape, so tools written for rtpengine read
//! Tollgate's: `ok` and `error`, `statistics`, and `query` / `delete` (per
//! tag, per media, per stream (RTP and RTCP) the local port, endpoint, last
//! packet time and packet/byte counters, plus call totals), made from the
//! session manager's [`CallReport`].

use crate::media::{CallReport, FlowStat, MediaReport, PartyReport, StreamReport, Totals};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_ng::Value;

/// A refusal: `result: error` and the reason.
pub fn error(reason: &str) -> Value {
    Value::dict([
        ("result", Value::str("error")),
        ("error-reason", Value::str(reason)),
    ])
}

pub fn ok() -> Value {
    Value::dict([("result", Value::str("ok"))])
}

/// What the `statistics` reply counts.
pub struct Statistics {
    pub totals: Totals,
    /// Calls in progress.
    pub active: usize,
    /// Relay port pairs held.
    pub ports_in_use: usize,
    pub uptime: Duration,
    /// Requests refused.
    pub errors: u64,
}

/// The `statistics` reply: rtpengine's current and total statistics.
pub fn statistics(s: &Statistics) -> Value {
    let (t, active) = (s.totals, s.active as i64);
    let current = Value::dict([
        ("sessionsown", Value::Int(active)),
        ("sessionsforeign", Value::Int(0)),
        ("sessionstotal", Value::Int(active)),
        ("transcodedmedia", Value::Int(0)),
        ("portsinuse", Value::Int(s.ports_in_use as i64 * 2)),
    ]);
    let total = Value::dict([
        ("uptime", Value::Int(s.uptime.as_secs() as i64)),
        ("managedsessions", Value::Int(t.calls as i64)),
        ("totaltimeoutsessions", Value::Int(t.timeouts as i64)),
        (
            "totalfinaltimeoutsessions",
            Value::Int(t.final_timeouts as i64),
        ),
        (
            "totalregularterminatedsessions",
            Value::Int(t.deleted as i64),
        ),
        ("errors", Value::Int(s.errors as i64)),
    ]);
    let mut r = ok();
    r.set(
        "statistics",
        Value::dict([("currentstatistics", current), ("totalstatistics", total)]),
    );
    r
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IPv4"
    } else {
        "IPv6"
    }
}

fn endpoint(a: Option<SocketAddr>) -> Value {
    match a {
        Some(a) => Value::dict([
            ("family", Value::str(family(a.ip()))),
            ("address", Value::str(&a.ip().to_string())),
            ("port", Value::Int(a.port() as i64)),
        ]),
        None => Value::dict([]),
    }
}

fn counters(packets: u64, bytes: u64) -> Value {
    Value::dict([
        ("packets", Value::Int(packets as i64)),
        ("bytes", Value::Int(bytes as i64)),
        ("errors", Value::Int(0)),
    ])
}

/// How a stream is shown: which of its media section's it is, and the
/// participant's facts its flags and times come from.
struct Shown {
    rtcp: bool,
    crypto_suite: Option<&'static str>,
    /// The section uses rtcp-mux.
    mux: bool,
    strict: bool,
    /// The participant's creation, the `last packet` before any came.
    created: i64,
    /// When the counters were read.
    at: SystemTime,
}

fn stream(s: &StreamReport, how: &Shown) -> Value {
    let stat = s.stat.as_ref();
    let last = stat
        .and_then(|f| f.last_packet_ms_ago)
        .map(|ago| unix(how.at - Duration::from_millis(ago)))
        .unwrap_or(how.created);
    let mut flags = Vec::new();
    if !how.rtcp {
        flags.push("RTP");
    }
    if how.rtcp || how.mux {
        flags.push("RTCP");
    }
    if how.rtcp && how.mux {
        flags.push("fallback RTCP");
    }
    if s.remote.is_some() {
        flags.push("filled");
    }
    if stat.is_some_and(|f| f.packets > 0) {
        flags.push("confirmed");
    }
    if how.strict {
        flags.push("strict source address");
    }
    let mut v = Value::dict([
        ("endpoint", endpoint(s.remote)),
        ("advertised endpoint", endpoint(s.remote)),
        ("last packet", Value::Int(last)),
        (
            "flags",
            Value::List(flags.into_iter().map(Value::str).collect()),
        ),
        ("stats", stream_stats(stat)),
    ]);
    if let Some(suite) = how.crypto_suite {
        v.set("crypto suite", Value::str(suite));
    }
    if let Some(l) = s.local {
        v.set("local port", Value::Int(l.port() as i64));
        v.set("local address", Value::str(&l.ip().to_string()));
        v.set("family", Value::str(family(l.ip())));
    }
    v
}

/// Packet/byte counters, plus RTP loss and jitter when the data plane has them.
fn stream_stats(stat: Option<&FlowStat>) -> Value {
    let mut c = counters(stat.map_or(0, |f| f.packets), stat.map_or(0, |f| f.bytes));
    if let Some(lost) = stat.and_then(|f| f.lost) {
        c.set("packets lost", Value::Int(lost as i64));
    }
    if let Some(j) = stat.and_then(|f| f.jitter) {
        c.set("jitter", Value::Int(j as i64));
    }
    c
}

/// Media flags in rtpengine's order and spelling.
fn media_flags(m: &MediaReport) -> Value {
    let flags = [
        (m.initialized, "initialized"),
        (m.asymmetric, "asymmetric"),
        (m.send, "send"),
        (m.recv, "recv"),
        (m.mux, "rtcp-mux"),
        (m.crypto_suite.is_some(), "SDES"),
        (m.ice_controlling, "ICE controlling"),
        (m.transcoding, "transcoding"),
    ];
    Value::List(
        flags
            .iter()
            .filter(|(on, _)| *on)
            .map(|(_, f)| Value::str(f))
            .collect(),
    )
}

/// Running RTP and RTCP totals: (packets, bytes) each.
type Counted = [(u64, u64); 2];

/// Media section `i` of participant `p`, adding its counters to `totals`.
fn media(
    i: usize,
    m: &MediaReport,
    p: &PartyReport,
    at: SystemTime,
    totals: &mut Counted,
) -> Value {
    for (t, s) in totals.iter_mut().zip([&m.rtp, &m.rtcp]) {
        t.0 += s.stat.map_or(0, |s| s.packets);
        t.1 += s.stat.map_or(0, |s| s.bytes);
    }
    let shown = |rtcp| Shown {
        rtcp,
        crypto_suite: m.crypto_suite,
        mux: m.mux,
        strict: p.strict,
        created: unix(p.created),
        at,
    };
    let streams = vec![stream(&m.rtp, &shown(false)), stream(&m.rtcp, &shown(true))];
    Value::dict([
        ("index", Value::Int(i as i64 + 1)),
        ("type", Value::str(&m.kind)),
        ("protocol", Value::str(&m.protocol)),
        ("streams", Value::List(streams)),
        ("flags", media_flags(m)),
    ])
}

/// `{tag, type}` entries naming participants.
fn links(tags: &[String]) -> Value {
    Value::List(
        tags.iter()
            .map(|t| Value::dict([("tag", Value::str(t)), ("type", Value::str("offer/answer"))]))
            .collect(),
    )
}

/// One participant's entry: its key (`<untagged N>` before it has a tag)
/// and its dictionary.
fn participant(p: &PartyReport, at: SystemTime, totals: &mut Counted) -> (Vec<u8>, Value) {
    let medias = p
        .medias
        .iter()
        .enumerate()
        .map(|(n, m)| media(n, m, p, at, totals))
        .collect();
    let mut t = Value::dict([
        ("tag", Value::str(&p.tag)),
        ("created", Value::Int(unix(p.created))),
        ("subscriptions", links(&p.subscriptions)),
        ("subscribers", links(&p.subscribers)),
        ("medias", Value::List(medias)),
    ]);
    if let Some(l) = &p.label {
        t.set("label", Value::str(l));
    }
    let key = if p.tag.is_empty() {
        format!("<untagged {}>", p.index)
    } else {
        p.tag.clone()
    };
    (key.into_bytes(), t)
}

/// The `query` reply for one call (also the body of a `delete` reply),
/// without its `result`.
pub fn call(r: &CallReport) -> Value {
    let mut totals: Counted = [(0, 0); 2];
    let tags = r
        .parties
        .iter()
        .map(|p| participant(p, r.at, &mut totals))
        .collect();
    let created = r.created.duration_since(UNIX_EPOCH).unwrap_or_default();
    let [rtp, rtcp] = totals;
    Value::dict([
        ("created", Value::Int(created.as_secs() as i64)),
        ("created_us", Value::Int(created.subsec_micros() as i64)),
        ("last signal", Value::Int(unix(r.last_signal))),
        ("SSRC", Value::dict([])),
        ("tags", Value::Dict(tags)),
        (
            "totals",
            Value::dict([
                ("RTP", counters(rtp.0, rtp.1)),
                ("RTCP", counters(rtcp.0, rtcp.1)),
            ]),
        ),
    ])
}
