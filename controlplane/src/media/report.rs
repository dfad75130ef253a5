//! NG `query` / `delete` replies in rtpengine's shape, so tools written for
//! rtpengine read Tollgate's: per tag, per media, per stream (RTP and RTCP)
//! the local port, endpoint, last packet time and packet/byte counters,
//! plus call totals.

use super::{Call, Participant, Side};
use crate::config::MediaConfig;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tollgate_ng::Value;

/// What the data plane reports for one flow (by its local address).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStat {
    pub packets: u64,
    pub bytes: u64,
    /// Since the last packet, or since installation when none came.
    pub idle_ms: u64,
    pub last_packet_ms_ago: Option<u64>,
    /// RTP loss and jitter (timestamp units), where the data plane sees
    /// payloads (socket backend); XDP forwards without reading them.
    pub lost: Option<u64>,
    pub jitter: Option<u64>,
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

struct Stream<'a> {
    /// The relay's socket: None for a disabled section; port 0 for an RTCP
    /// stream without a port of its own (rtcp-mux).
    local: Option<SocketAddr>,
    remote: Option<SocketAddr>,
    rtcp: bool,
    /// The side uses rtcp-mux.
    mux: bool,
    strict: bool,
    stat: Option<&'a FlowStat>,
}

fn stream(s: &Stream, fallback_time: i64, now: SystemTime) -> Value {
    let last = s
        .stat
        .and_then(|f| f.last_packet_ms_ago)
        .map(|ago| unix(now - Duration::from_millis(ago)))
        .unwrap_or(fallback_time);
    let mut flags = Vec::new();
    if !s.rtcp {
        flags.push("RTP");
    }
    if s.rtcp || s.mux {
        flags.push("RTCP");
    }
    if s.rtcp && s.mux {
        flags.push("fallback RTCP");
    }
    if s.remote.is_some() {
        flags.push("filled");
    }
    if s.stat.is_some_and(|f| f.packets > 0) {
        flags.push("confirmed");
    }
    if s.strict {
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
        ("stats", stream_stats(s.stat)),
    ]);
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
fn media_flags(side: &Side) -> Value {
    let flags = [
        (side.initialized, "initialized"),
        (side.asymmetric, "asymmetric"),
        (side.send, "send"),
        (side.recv, "recv"),
        (side.mux, "rtcp-mux"),
        (side.ice_controlling, "ICE controlling"),
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
type Totals = [(u64, u64); 2];

/// One media section `side` of participant `p`, adding its counters (read
/// at `now`) to `totals`.
fn media(
    i: usize,
    side: &Side,
    p: &Participant,
    addr: IpAddr,
    now: SystemTime,
    stats: &HashMap<SocketAddr, FlowStat>,
    totals: &mut Totals,
) -> Value {
    let (strict, created) = (p.strict, unix(p.created));
    let live = !side.disabled && side.port != 0;
    let rtp_local = SocketAddr::new(addr, side.port);
    let rtcp_local = SocketAddr::new(addr, if side.rtcp_socket { side.port + 1 } else { 0 });
    let a = stats.get(&rtp_local).filter(|_| live);
    let b = stats.get(&rtcp_local).filter(|_| live && !side.mux);
    for (t, s) in totals.iter_mut().zip([a, b]) {
        t.0 += s.map_or(0, |s| s.packets);
        t.1 += s.map_or(0, |s| s.bytes);
    }
    let one = |local, remote, rtcp, stat| Stream {
        local: live.then_some(local),
        remote,
        rtcp,
        mux: side.mux,
        strict,
        stat,
    };
    let streams = vec![
        stream(&one(rtp_local, side.rtp, false, a), created, now),
        stream(&one(rtcp_local, side.rtcp, true, b), created, now),
    ];
    Value::dict([
        ("index", Value::Int(i as i64 + 1)),
        ("type", Value::str(&side.kind)),
        ("protocol", Value::str(&side.proto)),
        ("streams", Value::List(streams)),
        ("flags", media_flags(side)),
    ])
}

/// `{tag, type}` entries naming participants.
fn links<'a>(call: &Call, who: impl Iterator<Item = &'a usize>) -> Value {
    Value::List(
        who.map(|&i| {
            Value::dict([
                ("tag", Value::str(&call.parts[i].tag)),
                ("type", Value::str("offer/answer")),
            ])
        })
        .collect(),
    )
}

/// One participant's entry: its key (`<untagged N>` before it has a tag)
/// and its dictionary.
fn participant(
    call: &Call,
    i: usize,
    cfg: &MediaConfig,
    stats: &HashMap<SocketAddr, FlowStat>,
    now: SystemTime,
    totals: &mut Totals,
) -> (Vec<u8>, Value) {
    let p: &Participant = &call.parts[i];
    let addr = cfg.interfaces[p.iface].address;
    let created = unix(p.created);
    let medias = p
        .sides
        .iter()
        .enumerate()
        .map(|(n, s)| media(n, s, p, addr, now, stats, totals))
        .collect();
    let subscribers = (0..call.parts.len()).filter(|&j| call.parts[j].subs.contains(&i));
    let subscribers: Vec<usize> = subscribers.collect();
    let mut t = Value::dict([
        ("tag", Value::str(&p.tag)),
        ("created", Value::Int(created)),
        ("subscriptions", links(call, p.subs.iter())),
        ("subscribers", links(call, subscribers.iter())),
        ("medias", Value::List(medias)),
    ]);
    if let Some(l) = &p.label {
        t.set("label", Value::str(l));
    }
    let key = if p.tag.is_empty() {
        format!("<untagged {i}>")
    } else {
        p.tag.clone()
    };
    (key.into_bytes(), t)
}

/// The `query` reply for one call (also the body of a `delete` reply):
/// every participant, or with `only` that tag's and those it hears;
/// `stats` were read at `now`.
pub fn query(
    call: &Call,
    cfg: &MediaConfig,
    stats: &HashMap<SocketAddr, FlowStat>,
    now: SystemTime,
    only: Option<&str>,
) -> Value {
    let live = |i: &usize| !call.parts[*i].gone;
    let who: Vec<usize> = match only.and_then(|t| call.tags.get(t)) {
        Some(&p) => std::iter::once(p)
            .chain(call.parts[p].subs.iter().copied())
            .collect(),
        None if only.is_some() => Vec::new(),
        None => (0..call.parts.len()).collect(),
    };
    let mut totals: Totals = [(0, 0); 2];
    let tags = who
        .iter()
        .filter(|i| live(i))
        .map(|&i| participant(call, i, cfg, stats, now, &mut totals))
        .collect();
    let created = call.created.duration_since(UNIX_EPOCH).unwrap_or_default();
    let [rtp, rtcp] = totals;
    Value::dict([
        ("created", Value::Int(created.as_secs() as i64)),
        ("created_us", Value::Int(created.subsec_micros() as i64)),
        ("last signal", Value::Int(unix(call.last_signal))),
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
