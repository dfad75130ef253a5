//! The CDR of a call the NG server relayed, built from the session state
//! and the data plane's counters when the call ends.
//!
//! NG says less than SIP: it carries the Call-ID, the tags and the SIP
//! source address, but no numbers, URIs or final responses. So an NG CDR
//! has empty numbers and no SIP code; its legs are the participants in the
//! order they appeared (the offerer is leg "a"); it is `answered` once an
//! answer was seen, otherwise `cancelled` (deleted by signalling) or
//! `failed` (timed out); who hung up is the party whose tag the `delete`
//! named, or the relay for timeouts.

use super::{Call, FlowStat, Participant};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};
use tollgate_cdr::model::{Cdr, Disposition, HangupBy, Leg, MediaStats};
use tollgate_cdr::quality;

/// How a call ended, as the session manager saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending<'a> {
    /// An NG `delete`, naming the tag of the party that hung up if known.
    Deleted {
        by_tag: Option<&'a str>,
    },
    MediaTimeout,
    FinalTimeout,
}

pub fn ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Leg names in order of appearance: a, b, b2, b3...
pub fn leg_name(i: usize) -> String {
    match i {
        0 => "a".into(),
        1 => "b".into(),
        n => format!("b{n}"),
    }
}

/// What `p` said in RTCP, on either of its facing flows (muxed or not),
/// the worst of its streams: cumulative loss, jitter, and the round trip.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct Reported {
    #[serde(rename = "remote_lost")]
    pub lost: Option<i64>,
    #[serde(rename = "remote_jitter_ms")]
    pub jitter_ms: Option<f64>,
    pub rtt_ms: Option<f64>,
}

impl Reported {
    /// None when `p` reported nothing.
    pub fn some(self) -> Option<Reported> {
        (self != Reported::default()).then_some(self)
    }
}

pub(super) fn reported_by(
    p: &Participant,
    local_ip: std::net::IpAddr,
    stats: &HashMap<SocketAddr, FlowStat>,
) -> Reported {
    let worst = |a: Option<f64>, b: f64| Some(a.map_or(b, |x| x.max(b)));
    let mut r = Reported::default();
    for side in &p.sides {
        for port in [side.port, side.port + 1] {
            let Some(s) = stats.get(&SocketAddr::new(local_ip, port)) else {
                continue;
            };
            if let Some(rtt) = s.rtt_us {
                r.rtt_ms = worst(r.rtt_ms, rtt as f64 / 1000.0);
            }
            if let Some(l) = s.remote_lost {
                r.lost = Some(r.lost.map_or(l, |x| x.max(l)));
            }
            if let Some(j) = s.remote_jitter {
                let j = j as f64 * 1000.0 / side.clock_rate.max(1) as f64;
                r.jitter_ms = worst(r.jitter_ms, (j * 100.0).round() / 100.0);
            }
        }
    }
    r
}

/// Sums the flows on `p`'s facing ports: what `p` sent to the relay.
pub(super) fn received_from(
    p: &Participant,
    local_ip: std::net::IpAddr,
    stats: &HashMap<SocketAddr, FlowStat>,
) -> MediaStats {
    let mut m = MediaStats::default();
    let (mut rtp_packets, mut lost, mut jitter_ms) = (0u64, None::<u64>, None::<f64>);
    let rtt_ms = reported_by(p, local_ip, stats).rtt_ms;
    for side in &p.sides {
        for (port, rtp) in [(side.port, true), (side.port + 1, false)] {
            let Some(s) = stats.get(&SocketAddr::new(local_ip, port)) else {
                continue;
            };
            m.packets += s.packets;
            m.bytes += s.bytes;
            if rtp {
                rtp_packets += s.packets;
                if let Some(l) = s.lost {
                    *lost.get_or_insert(0) += l;
                }
                if let Some(j) = s.jitter {
                    let j = j as f64 * 1000.0 / side.clock_rate.max(1) as f64;
                    jitter_ms = Some(jitter_ms.map_or(j, |x: f64| x.max(j)));
                }
            }
        }
    }
    m.lost = lost;
    m.jitter_ms = jitter_ms.map(|j| (j * 100.0).round() / 100.0);
    m.mos = lost.map(|l| {
        let expected = (l + rtp_packets).max(1);
        quality::mos(&quality::Impairments {
            loss_ratio: l as f64 / expected as f64,
            jitter_ms: jitter_ms.unwrap_or(0.0),
            rtt_ms,
        })
    });
    m
}

/// The finished call's CDR.
pub fn build(
    call_id: &str,
    call: &Call,
    addresses: &[std::net::IpAddr],
    stats: &HashMap<SocketAddr, FlowStat>,
    end: SystemTime,
    how: Ending,
) -> Cdr {
    let parts: Vec<&Participant> = call.parts.iter().filter(|p| !p.tag.is_empty()).collect();
    let answer_ms = call.answered.map(ms);
    let end_ms = ms(end);
    let caller_tag = parts.first().map(|p| p.tag.clone());
    let callee_tag = parts.get(1).map(|p| p.tag.clone());
    let received: Vec<MediaStats> = parts
        .iter()
        .map(|p| received_from(p, addresses[p.iface], stats))
        .collect();
    let reported: Vec<Reported> = parts
        .iter()
        .map(|p| reported_by(p, addresses[p.iface], stats))
        .collect();
    let legs = parts
        .iter()
        .enumerate()
        .map(|(i, p)| {
            // What the relay sent to p is what its peer sent to the relay.
            let peer = p.peer.and_then(|y| {
                let tag = &call.parts[y].tag;
                parts.iter().position(|q| &q.tag == tag)
            });
            Leg {
                leg: leg_name(i),
                sip_call_id: call_id.to_string(),
                from_tag: caller_tag.clone(),
                to_tag: if i == 0 {
                    callee_tag.clone()
                } else {
                    Some(p.tag.clone())
                },
                signal_ip: p.signal,
                media_ip: p.sides.iter().find_map(|s| s.rtp.map(|a| a.ip())),
                codec: p.sides.first().and_then(|s| s.codec.clone()),
                srtp: p
                    .sides
                    .iter()
                    .find_map(|s| s.srtp.suite())
                    .map(|s| format!("SDES {}", s.name())),
                transcoded: p
                    .sides
                    .iter()
                    .any(|s| super::transcode::transcoded(&s.transcoding)),
                start_ms: ms(p.created),
                answer_ms,
                end_ms,
                received: received[i],
                sent: peer.map(|j| received[j]).unwrap_or_default(),
                remote_lost: reported[i].lost,
                remote_jitter_ms: reported[i].jitter_ms,
                rtt_ms: reported[i].rtt_ms,
                ..Leg::default()
            }
        })
        .collect();
    let answered = answer_ms.is_some();
    let (status, hangup_by, reason) = ending(how, answered, caller_tag.as_deref(), &parts);
    Cdr {
        call_id: call_id.to_string(),
        recording_url: call.recording_url.clone(),
        source_ip: parts.first().and_then(|p| p.signal),
        destination_ip: parts.get(1).and_then(|p| p.signal),
        start_ms: ms(call.created),
        answer_ms,
        end_ms,
        status: Some(status),
        sip_reason: Some(reason.to_string()),
        hangup_by: Some(hangup_by),
        legs,
        ..Cdr::default()
    }
}

/// How the call ended, who ended it and why, as the CDR says it.
fn ending(
    how: Ending,
    answered: bool,
    caller_tag: Option<&str>,
    parts: &[&Participant],
) -> (Disposition, HangupBy, &'static str) {
    match how {
        Ending::Deleted { by_tag } => {
            let by = match by_tag {
                Some(t) if Some(t) == caller_tag => HangupBy::Caller,
                Some(t) if parts.iter().skip(1).any(|p| p.tag == t) => HangupBy::Callee,
                _ => HangupBy::Unknown,
            };
            let status = if answered {
                Disposition::Answered
            } else {
                Disposition::Cancelled
            };
            (status, by, "deleted over NG")
        }
        Ending::MediaTimeout | Ending::FinalTimeout => {
            let status = if answered {
                Disposition::Answered
            } else {
                Disposition::Failed
            };
            let why = if how == Ending::MediaTimeout {
                "media timeout"
            } else {
                "final timeout"
            };
            (status, HangupBy::Relay, why)
        }
    }
}
