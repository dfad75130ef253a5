//! NG `query` / `delete` replies in rtpengine's shape, so tools written for
//! rtpengine read Tollgate's: per tag, per media, per stream (RTP and RTCP)
//! the local port, endpoint, last packet time and packet/byte counters,
//! plus call totals.

use super::{Call, Side};
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
    local: SocketAddr,
    remote: Option<SocketAddr>,
    advertised: Option<SocketAddr>,
    rtcp: bool,
    stat: Option<&'a FlowStat>,
}

fn stream(s: &Stream, fallback_time: i64, now: SystemTime) -> Value {
    let last = s
        .stat
        .and_then(|f| f.last_packet_ms_ago)
        .map(|ago| unix(now - Duration::from_millis(ago)))
        .unwrap_or(fallback_time);
    let mut flags = vec![Value::str(if s.rtcp { "RTCP" } else { "RTP" })];
    if s.remote.is_some() {
        flags.push(Value::str("filled"));
    }
    if s.stat.is_some_and(|f| f.packets > 0) {
        flags.push(Value::str("confirmed"));
    }
    Value::dict([
        ("local port", Value::Int(s.local.port() as i64)),
        ("local address", Value::str(&s.local.ip().to_string())),
        ("family", Value::str(family(s.local.ip()))),
        ("endpoint", endpoint(s.remote)),
        ("advertised endpoint", endpoint(s.advertised)),
        ("last packet", Value::Int(last)),
        ("flags", Value::List(flags)),
        ("stats", stream_stats(s.stat)),
    ])
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

/// The `query` reply for one call (also the body of a `delete` reply).
pub fn query(
    call_id: &str,
    call: &Call,
    cfg: &MediaConfig,
    stats: &HashMap<SocketAddr, FlowStat>,
) -> Value {
    let now = SystemTime::now();
    let (mut rtp, mut rtcp) = ((0u64, 0u64), (0u64, 0u64));
    let mut tags = Vec::new();
    for p in &call.parts {
        let addr = cfg.interfaces[p.iface].address;
        let mut medias = Vec::new();
        for (i, side) in p.sides.iter().enumerate() {
            let side: &Side = side;
            let rtp_local = SocketAddr::new(addr, side.port);
            let rtcp_local = SocketAddr::new(addr, side.port + 1);
            let (a, b) = (
                stats.get(&rtp_local),
                if side.mux {
                    None
                } else {
                    stats.get(&rtcp_local)
                },
            );
            rtp.0 += a.map_or(0, |s| s.packets);
            rtp.1 += a.map_or(0, |s| s.bytes);
            rtcp.0 += b.map_or(0, |s| s.packets);
            rtcp.1 += b.map_or(0, |s| s.bytes);
            let created = unix(p.created);
            let streams = vec![
                stream(
                    &Stream {
                        local: rtp_local,
                        remote: side.rtp,
                        advertised: side.advertised,
                        rtcp: false,
                        stat: a,
                    },
                    created,
                    now,
                ),
                stream(
                    &Stream {
                        local: rtcp_local,
                        remote: side.rtcp,
                        advertised: side
                            .advertised
                            .map(|x| SocketAddr::new(x.ip(), x.port() + 1)),
                        rtcp: true,
                        stat: b,
                    },
                    created,
                    now,
                ),
            ];
            let mut flags = vec![Value::str("initialized")];
            if !side.disabled {
                flags.extend([Value::str("send"), Value::str("recv")]);
            }
            if side.mux {
                flags.push(Value::str("rtcp-mux"));
            }
            medias.push(Value::dict([
                ("index", Value::Int(i as i64 + 1)),
                ("type", Value::str(&side.kind)),
                ("protocol", Value::str(&side.proto)),
                ("streams", Value::List(streams)),
                ("flags", Value::List(flags)),
            ]));
        }
        let mut t = Value::dict([
            ("tag", Value::str(&p.tag)),
            ("created", Value::Int(unix(p.created))),
            ("medias", Value::List(medias)),
        ]);
        if let Some(l) = &p.label {
            t.set("label", Value::str(l));
        }
        if let Some(peer) = p.peer {
            t.set("in dialogue with", Value::str(&call.parts[peer].tag));
        }
        tags.push((p.tag.clone(), t));
    }
    let created = call.created.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mut v = Value::dict([
        ("call-id", Value::str(call_id)),
        ("created", Value::Int(created.as_secs() as i64)),
        ("created_us", Value::Int(created.subsec_micros() as i64)),
        ("last signal", Value::Int(unix(call.last_signal))),
        ("SSRC", Value::dict([])),
        (
            "totals",
            Value::dict([
                ("RTP", counters(rtp.0, rtp.1)),
                ("RTCP", counters(rtcp.0, rtcp.1)),
            ]),
        ),
        ("recording", Value::Int(call.recording as i64)),
    ]);
    v.set(
        "tags",
        Value::Dict(tags.into_iter().map(|(k, t)| (k.into_bytes(), t)).collect()),
    );
    v
}
