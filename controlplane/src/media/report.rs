//! What `query` and `delete` report about a call, in the session manager's
//! terms: its participants, their media sections and each section's RTP
//! and RTCP streams with the data plane's counters. The NG module shapes it
//! as rtpengine's reply ([`crate::ng::reply`]).

use super::{Call, Participant, Side};
use crate::media::config::MediaConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::SystemTime;

/// What the data plane reports for one flow (by its local address).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlowStat {
    pub packets: u64,
    pub bytes: u64,
    /// Since the last packet, or since installation when none came.
    pub idle_ms: u64,
    pub last_packet_ms_ago: Option<u64>,
    /// RTP loss and jitter (timestamp units) of what the flow's sender
    /// sends, measured by the data plane on every backend; None before RTP.
    pub lost: Option<u64>,
    pub jitter: Option<u64>,
    /// The round trip from the relay to the flow's sender, from its RTCP
    /// reports (LSR/DLSR), when one named an SR the relay saw.
    pub rtt_us: Option<u64>,
    /// What the flow's sender reported in its last RTCP block of the
    /// stream it receives: cumulative loss, and jitter in timestamp units.
    pub remote_lost: Option<i64>,
    pub remote_jitter: Option<u64>,
}

/// A call as reported, with its flows' counters as read at `at`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallReport {
    pub created: SystemTime,
    pub last_signal: SystemTime,
    /// When the counters were read.
    pub at: SystemTime,
    /// The participants reported on, in the call's order.
    pub parties: Vec<PartyReport>,
}

/// One participant (rtpengine's monologue).
#[derive(Debug, Clone, PartialEq)]
pub struct PartyReport {
    /// Its place in the call, which names it while it has no tag.
    pub index: usize,
    /// Empty before the participant has a tag.
    pub tag: String,
    pub label: Option<String>,
    pub created: SystemTime,
    /// Its media from its last offer/answer: drop sources but the learned one.
    pub strict: bool,
    /// Tags of the participants it hears, newest first.
    pub subscriptions: Vec<String>,
    /// Tags of the participants hearing it.
    pub subscribers: Vec<String>,
    pub medias: Vec<MediaReport>,
}

/// One SDP media section of a participant.
#[derive(Debug, Clone, PartialEq)]
pub struct MediaReport {
    pub kind: String,
    pub protocol: String,
    pub initialized: bool,
    pub asymmetric: bool,
    pub send: bool,
    pub recv: bool,
    pub mux: bool,
    pub ice_controlling: bool,
    /// The SDES suite the relay transcrypts this participant's SRTP with.
    pub crypto_suite: Option<&'static str>,
    /// The relay transcodes this participant's media.
    pub transcoding: bool,
    pub rtp: StreamReport,
    pub rtcp: StreamReport,
}

/// One stream of a media section, as the relay faces the participant.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamReport {
    /// The relay's socket: None for a disabled section; port 0 for an RTCP
    /// stream without a port of its own (rtcp-mux).
    pub local: Option<SocketAddr>,
    /// Where the participant receives it, once known.
    pub remote: Option<SocketAddr>,
    /// The counters of the flow on `local`, where there is one.
    pub stat: Option<FlowStat>,
}

/// The report of one call: every participant, or with `only` that tag's
/// and those it hears; `stats` were read at `at`.
pub fn call(
    call: &Call,
    cfg: &MediaConfig,
    stats: &HashMap<SocketAddr, FlowStat>,
    at: SystemTime,
    only: Option<&str>,
) -> CallReport {
    let who: Vec<usize> = match only.and_then(|t| call.tags.get(t)) {
        Some(&p) => std::iter::once(p)
            .chain(call.parts[p].subs.iter().copied())
            .collect(),
        None if only.is_some() => Vec::new(),
        None => (0..call.parts.len()).collect(),
    };
    CallReport {
        created: call.created,
        last_signal: call.last_signal,
        at,
        parties: who
            .into_iter()
            .filter(|&i| !call.parts[i].gone)
            .map(|i| party(call, i, cfg, stats))
            .collect(),
    }
}

fn party(
    call: &Call,
    i: usize,
    cfg: &MediaConfig,
    stats: &HashMap<SocketAddr, FlowStat>,
) -> PartyReport {
    let p: &Participant = &call.parts[i];
    let addr = cfg.interfaces[p.iface].address;
    let tag = |j: usize| call.parts[j].tag.clone();
    let hears_i = |j: &usize| call.parts[*j].subs.contains(&i);
    PartyReport {
        index: i,
        tag: p.tag.clone(),
        label: p.label.clone(),
        created: p.created,
        strict: p.strict,
        subscriptions: p.subs.iter().copied().map(tag).collect(),
        subscribers: (0..call.parts.len()).filter(hears_i).map(tag).collect(),
        medias: p.sides.iter().map(|s| media(s, addr, stats)).collect(),
    }
}

/// One media section facing a participant on `addr`, with the counters of
/// its flows (none while it is disabled, none for RTCP muxed into RTP).
fn media(
    side: &Side,
    addr: std::net::IpAddr,
    stats: &HashMap<SocketAddr, FlowStat>,
) -> MediaReport {
    let live = !side.disabled && side.port != 0;
    let rtp_local = SocketAddr::new(addr, side.port);
    let rtcp_local = SocketAddr::new(addr, if side.rtcp_socket { side.port + 1 } else { 0 });
    let stream = |local, remote, counted: bool| StreamReport {
        local: live.then_some(local),
        remote,
        stat: stats.get(&local).filter(|_| counted).copied(),
    };
    MediaReport {
        kind: side.kind.clone(),
        protocol: side.proto.clone(),
        initialized: side.initialized,
        asymmetric: side.asymmetric,
        send: side.send,
        recv: side.recv,
        mux: side.mux,
        ice_controlling: side.ice_controlling,
        crypto_suite: side.srtp.suite().map(|s| s.name()),
        transcoding: super::transcode::transcoded(&side.transcoding),
        rtp: stream(rtp_local, side.rtp, live),
        rtcp: stream(rtcp_local, side.rtcp, live && !side.mux),
    }
}
