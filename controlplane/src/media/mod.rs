//! The media session manager: calls as rtpengine models them, driven by NG
//! offer/answer/delete, turned into data-plane flows.
//!
//! A call has participants (monologues), one per SIP tag. Each participant
//! has, per SDP media section, a relay port pair *facing it* on its logical
//! interface and the endpoint it receives media on. Media sent by X to its
//! facing port goes out of Y's facing port to Y's endpoint, and back. Each
//! such direction is one data-plane flow (two with separate RTCP), learning
//! the sender's real source (symmetric RTP) unless `asymmetric`.
//!
//! This module is a plain state machine over [`MediaPlane`], speaking typed
//! Rust: every input carries a [`Now`] and [`options::Options`], and it
//! answers with SDP and [`CallReport`]s. The NG module translates NG
//! dictionaries to and from these; sockets and clocks live in the NG server
//! and the data-plane link.

mod cdr;
pub mod config;
mod journal;
pub mod memory;
pub mod options;
pub mod ports;
mod recording;
mod report;
mod sdes;
#[cfg(test)]
mod tests;
mod transcode;

use crate::media::config::{MediaConfig, MediaInterface};
use crate::recording::{config::RecordingConfig, Closed, Recording};
use crate::time::Now;
use options::{AddressSource, Options};
use ports::PortPool;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};
use tollgate_cdr::model::{CallStart, Record};
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_sip::sdes::{is_srtp_proto as is_secure, with_srtp};
use tollgate_sip::sdp::{Media as SdpMedia, Sdp};

pub use cdr::{leg_name, ms, Ending, Reported};
pub use report::{CallReport, FlowStat, MediaReport, PartyReport, StreamReport};

/// The data plane as the session manager needs it.
pub trait MediaPlane: Send {
    /// Installs or updates the flows `puts` and removes those matching
    /// `removes` (absent is fine), in one exchange where the data plane
    /// allows it. A removal answers the flow's final counters, so a call's
    /// teardown reads them and removes its flows in one exchange.
    fn apply(&mut self, puts: &[Flow], removes: &[SocketAddr]) -> Applied;
    /// Counters of every installed flow, by local address.
    fn stats(&mut self) -> Result<HashMap<SocketAddr, FlowStat>, String>;
    /// Counters of the given flows only (one call's: cheap at any scale).
    fn flow_stats(
        &mut self,
        locals: &[SocketAddr],
    ) -> Result<HashMap<SocketAddr, FlowStat>, String>;
    /// Opens a recording writing into `dir`: the number its taps name.
    fn open_recording(&mut self, dir: &std::path::Path) -> Result<u32, String>;
    /// Closes a recording once everything tapped is written: what it holds.
    fn close_recording(
        &mut self,
        recording: u32,
    ) -> Result<tollgate_dataplane::recorder::RecordingReport, String>;
    /// Takes on recording `recording` in `dir`, opened by an earlier
    /// control plane (a journaled call): reopened should the data plane
    /// not have it, or lose it later.
    fn keep_recording(&mut self, recording: u32, dir: &std::path::Path) -> Result<(), String>;
    /// Closes a recording nobody keeps (its call never was) and removes
    /// its directory `dir`, even when the data plane cannot close it.
    fn discard_recording(&mut self, recording: u32, dir: &std::path::Path) -> Result<(), String>;
    /// The stages' events (digits, prompts played out) since the last
    /// call, taken; a plane without stages has none.
    fn events(&mut self) -> Result<Vec<tollgate_dataplane::pipeline::Event>, String> {
        Ok(Vec::new())
    }
}

/// What [`MediaPlane::apply`] did, item by item.
#[derive(Debug, Default)]
pub struct Applied {
    /// One result per put, in order.
    pub puts: Vec<Result<(), String>>,
    /// One per removal, in order: the flow's final counters, or None when
    /// it was not installed.
    pub removed: Vec<Result<Option<FlowStat>, String>>,
}

/// An NG request the relay refuses, with the reason for `error-reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgError(pub String);

impl<T: Into<String>> From<T> for NgError {
    fn from(s: T) -> Self {
        NgError(s.into())
    }
}

/// A relay port pair facing a participant, kept for one endpoint of its
/// peer (rtpengine's endpoint map): a peer that moves gets a new pair, one
/// that comes back gets its old one. `key` None is the wildcard made with
/// the offer, taken by the first answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct PortMap {
    key: Option<SocketAddr>,
    port: u16,
    /// The pair's RTCP port is in use (false: RTP port only, rtcp-mux).
    rtcp: bool,
}

/// One SDP media section of one participant.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Side {
    kind: String,
    proto: String,
    /// Relay RTP port facing this participant (RTCP is +1); 0 before any.
    port: u16,
    /// Whether `port + 1` is in use for RTCP.
    rtcp_socket: bool,
    maps: Vec<PortMap>,
    /// Where the participant receives RTP, and RTCP, as its SDP (or SIP
    /// source) says; a zero address while it holds.
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    /// Its first codec ("PCMU/8000"), and that codec's RTP clock rate.
    codec: Option<String>,
    /// Every payload type of its SDP that names a codec.
    #[serde(default)]
    codecs: Vec<tollgate_archive::meta::Codec>,
    clock_rate: u32,
    /// The formats of the last offer the relay sent it.
    offered: Vec<String>,
    /// It uses rtcp-mux (as offered to it, then as answered).
    mux: bool,
    /// The offer fixed the offerer's rtcp-mux: the answer does not change it.
    mux_fixed: bool,
    /// Port 0 in the last SDP of either side: rejected or disabled.
    disabled: bool,
    /// Its own SDP has been seen.
    initialized: bool,
    /// The relay sends to it / receives from it (rtpengine's send/recv).
    send: bool,
    recv: bool,
    asymmetric: bool,
    ice_controlling: bool,
    /// SDES keys, when the relay transcrypts this participant's SRTP.
    srtp: sdes::SideSrtp,
    /// Its own offer's codecs, and what it speaks when the relay transcodes.
    #[serde(default)]
    transcoding: transcode::Transcoding,
}

impl Side {
    fn new(m: &SdpMedia) -> Side {
        Side {
            kind: m.kind().to_string(),
            proto: m.proto().to_string(),
            port: 0,
            rtcp_socket: false,
            maps: Vec::new(),
            rtp: None,
            rtcp: None,
            codec: None,
            codecs: Vec::new(),
            clock_rate: 8000,
            offered: Vec::new(),
            mux: false,
            mux_fixed: false,
            disabled: false,
            initialized: false,
            send: true,
            recv: true,
            asymmetric: false,
            ice_controlling: false,
            srtp: sdes::SideSrtp::default(),
            transcoding: transcode::Transcoding::default(),
        }
    }

    /// This side as another branch answering the same offer starts: what
    /// it was offered, and no ports yet.
    fn for_fork(&self) -> Side {
        Side {
            port: 0,
            rtcp_socket: false,
            maps: Vec::new(),
            ..self.clone()
        }
    }

    /// Direction attribute of the SDP sent to this participant.
    fn direction(&self) -> &'static str {
        match (self.send, self.recv) {
            (true, true) => "sendrecv",
            (true, false) => "sendonly",
            (false, true) => "recvonly",
            (false, false) => "inactive",
        }
    }

    /// Makes the pair kept for the peer endpoint `key` current, allocating
    /// one when none matches: a zero address matches on the port alone.
    fn use_map(
        &mut self,
        pool: &mut PortPool,
        key: Option<SocketAddr>,
        rtcp: bool,
        iface: &str,
        range: (u16, u16),
    ) -> Result<(), NgError> {
        let found = self.maps.iter_mut().rev().find(|m| match (m.key, key) {
            (None, _) => key.is_some(),
            (Some(_), None) => false,
            (Some(a), Some(b)) if a.ip().is_unspecified() || b.ip().is_unspecified() => {
                a.port() == b.port()
            }
            (Some(a), Some(b)) => a == b,
        });
        let map = match found {
            Some(m) => {
                if m.key.is_none() {
                    m.key = key;
                } else {
                    m.rtcp |= rtcp;
                    if m.key.is_some_and(|k| k.ip().is_unspecified()) {
                        m.key = key;
                    }
                }
                m.clone()
            }
            None => {
                self.forget_oldest_map(pool);
                let port = pool.allocate().ok_or_else(|| {
                    NgError(format!(
                        "no free media ports on interface {iface:?} ({}-{})",
                        range.0, range.1
                    ))
                })?;
                let m = PortMap { key, port, rtcp };
                self.maps.push(m.clone());
                m
            }
        };
        self.port = map.port;
        self.rtcp_socket = map.rtcp;
        Ok(())
    }

    /// Keeps the pairs kept for earlier peer endpoints to [`MAX_MAPS`]: a
    /// peer that moves on every re-offer must not drain the pool. The
    /// oldest pair not in use goes back to the pool.
    fn forget_oldest_map(&mut self, pool: &mut PortPool) {
        if self.maps.len() < MAX_MAPS {
            return;
        }
        if let Some(i) = self.maps.iter().position(|m| m.port != self.port) {
            pool.release(self.maps.remove(i).port);
        }
    }
}

/// Port pairs one side keeps for the peer endpoints it has had (a move
/// back to one of them gets its old pair again).
const MAX_MAPS: usize = 4;

#[derive(Debug, Serialize, Deserialize)]
struct Participant {
    tag: String,
    label: Option<String>,
    created: SystemTime,
    /// Where its last offer or answer came from (NG `received from`).
    signal: Option<IpAddr>,
    iface: usize,
    sides: Vec<Side>,
    /// The participant it is in dialogue with (the last offer/answer).
    peer: Option<usize>,
    /// Whose media it receives, newest first (rtpengine's subscriptions):
    /// after a forked answer the offerer still hears the earlier branch.
    subs: Vec<usize>,
    /// A branch deleted on its own: its ports are released.
    gone: bool,
    /// From its last offer/answer: no source learning; drop other sources.
    asymmetric: bool,
    strict: bool,
    /// `replace` `SDP version`: the o= version of the SDP sent to it, and
    /// that SDP, to tell whether the next one changed.
    sdp_version: Option<u64>,
    last_sdp: Option<String>,
}

impl Participant {
    /// Writes this participant's SDP version into `sdp`, advancing it when
    /// the SDP differs from the last one it was sent.
    fn version_sdp(&mut self, sdp: &mut Sdp) {
        let v = *self
            .sdp_version
            .get_or_insert(sdp.origin_version().unwrap_or(1));
        sdp.set_origin_version(v);
        let text = sdp.to_string();
        if self.last_sdp.as_ref().is_some_and(|l| *l != text) {
            let next = v.wrapping_add(1);
            self.sdp_version = Some(next);
            sdp.set_origin_version(next);
        }
        self.last_sdp = Some(sdp.to_string());
    }
}

/// `x` and `y` in dialogue: each receives only the other's media from now
/// on, and keeps hearing anyone it heard before (an earlier branch).
fn subscribe(parts: &mut [Participant], x: usize, y: usize) {
    for (i, p) in parts.iter_mut().enumerate() {
        if i != y {
            p.subs.retain(|&s| s != x);
        }
        if i != x {
            p.subs.retain(|&s| s != y);
        }
    }
    for (a, b) in [(x, y), (y, x)] {
        parts[a].peer = Some(b);
        if !parts[a].subs.contains(&b) {
            parts[a].subs.insert(0, b);
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Call {
    created: SystemTime,
    /// Not journaled: a restored call counts its age from the restore (the
    /// clock is read there, in the journal's adapter, not by the core).
    #[serde(skip, default = "Instant::now")]
    created_mono: Instant,
    last_signal: SystemTime,
    /// When the first answer came.
    answered: Option<SystemTime>,
    /// Its CDR is written (a delayed delete keeps the call a while longer).
    ended: bool,
    parts: Vec<Participant>,
    /// Tags (including branch aliases) to participants.
    tags: HashMap<String, usize>,
    /// A call in its delayed delete is not journaled (its CDR is out).
    #[serde(skip)]
    delete_at: Option<Instant>,
    recording: Option<Recording>,
    /// Where the call's (first) recording will be once archived: the CDR's
    /// `recording_url`.
    #[serde(default)]
    recording_url: Option<String>,
    /// Signalled by Tollgate's own B2BUA, which ends it (with BYEs) when its
    /// media stops: the timeouts here leave it alone.
    managed: bool,
    /// Data-plane flows this call installed, by local address.
    flows: BTreeMap<SocketAddr, Flow>,
}

impl Call {
    fn new(now: Now) -> Call {
        Call {
            created: now.wall,
            created_mono: now.mono,
            last_signal: now.wall,
            answered: None,
            ended: false,
            parts: Vec::new(),
            tags: HashMap::new(),
            delete_at: None,
            recording: None,
            recording_url: None,
            managed: false,
            flows: BTreeMap::new(),
        }
    }
}

/// Totals since start, for `statistics`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Totals {
    pub calls: u64,
    pub timeouts: u64,
    pub final_timeouts: u64,
    pub deleted: u64,
}

pub struct Sessions {
    cfg: MediaConfig,
    pools: Vec<PortPool>,
    calls: BTreeMap<String, Call>,
    pub totals: Totals,
    /// Call events and CDRs produced, for the CDR spool.
    records: Vec<Record>,
    /// Calls changed since the journal was last taken, and those in it.
    touched: BTreeSet<String>,
    journaled: HashSet<String>,
    recording_cfg: RecordingConfig,
    /// Recordings started since start, for their ids.
    recordings_made: u64,
    /// Recordings closed, to hand to the archive.
    closed: Vec<Closed>,
}

fn sock(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

impl Sessions {
    pub fn new(cfg: MediaConfig) -> Self {
        let pools = cfg
            .interfaces
            .iter()
            .map(|_| PortPool::new(cfg.port_min, cfg.port_max))
            .collect();
        Sessions {
            cfg,
            pools,
            calls: BTreeMap::new(),
            totals: Totals::default(),
            records: Vec::new(),
            touched: BTreeSet::new(),
            journaled: HashSet::new(),
            recording_cfg: RecordingConfig::default(),
            recordings_made: 0,
            closed: Vec::new(),
        }
    }

    fn iface(&self, i: usize) -> &MediaInterface {
        &self.cfg.interfaces[i]
    }

    fn iface_by_name(&self, name: &str) -> Result<usize, NgError> {
        self.cfg
            .interfaces
            .iter()
            .position(|i| i.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = self
                    .cfg
                    .interfaces
                    .iter()
                    .map(|i| i.name.as_str())
                    .collect();
                NgError(format!(
                    "unknown interface {name:?} (configured: {})",
                    known.join(", ")
                ))
            })
    }

    /// Active calls (not pending deletion), oldest first.
    pub fn list(&self, limit: usize) -> Vec<String> {
        self.calls
            .iter()
            .filter(|(_, c)| c.delete_at.is_none())
            .take(limit)
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// Whether a call with this id is known (deleted ones included until
    /// they are gone).
    pub fn has_call(&self, call_id: &str) -> bool {
        self.calls.contains_key(call_id)
    }

    pub fn active(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.delete_at.is_none())
            .count()
    }

    /// A relay port pair of the first interface for an endpoint the node
    /// runs itself (an IVR call): the RTP address its flow matches and the
    /// address to announce; None when the range is exhausted. Given back
    /// with [`Sessions::return_port`].
    pub fn lend_port(&mut self) -> Option<(SocketAddr, IpAddr)> {
        let iface = self.cfg.interfaces.first()?;
        let at = (iface.address, iface.advertise.unwrap_or(iface.address));
        let port = self.pools.first_mut()?.allocate()?;
        Some((sock(at.0, port), at.1))
    }

    pub fn return_port(&mut self, port: u16) {
        if let Some(p) = self.pools.first_mut() {
            p.release(port);
        }
    }

    pub fn ports_in_use(&self) -> usize {
        self.pools.iter().map(PortPool::in_use).sum()
    }

    /// `offer`: `sdp` belongs to `from_tag`; the reply SDP goes to the peer.
    #[allow(clippy::too_many_arguments)] // the NG request's fields, one each
    pub fn offer(
        &mut self,
        now: Now,
        plane: &mut dyn MediaPlane,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
        sdp: &str,
        o: &Options,
    ) -> Result<String, NgError> {
        let parsed = Sdp::parse(sdp).map_err(|e| NgError(format!("offer SDP: {e}")))?;
        self.touch(call_id);
        let dirs = o
            .direction
            .iter()
            .map(|d| self.iface_by_name(d))
            .collect::<Result<Vec<_>, _>>()?;
        let is_new = !self.calls.contains_key(call_id);
        let call = self
            .calls
            .entry(call_id.to_string())
            .or_insert_with(|| Call::new(now));
        call.delete_at = None;
        call.last_signal = now.wall;
        let (x, y) = offer_parties(call, from_tag, to_tag, &dirs, now.wall);
        if x == y {
            if is_new {
                self.drop_call(plane, call_id);
            }
            return Err(same_participant(call_id, from_tag, to_tag.unwrap_or("")));
        }
        subscribe(&mut call.parts, x, y);
        if let Some(l) = &o.label {
            call.parts[x].label = Some(l.clone());
        }
        // A refused offer of a new call takes nothing with it: its ports and
        // any flows installed before the refusal are released at once.
        let out = match self
            .signal(call_id, x, y, parsed, o, Role::Offer)
            .and_then(|out| self.record_flag(now, plane, call_id, o).map(|()| out))
            .and_then(|out| self.sync_flows(plane, call_id).map(|()| out))
        {
            Ok(out) => out,
            Err(e) => {
                if is_new {
                    self.drop_call(plane, call_id);
                }
                return Err(e);
            }
        };
        if is_new {
            self.totals.calls += 1;
            self.records.push(Record::Started(CallStart {
                call_id: call_id.to_string(),
                at_ms: cdr::ms(now.wall),
                source_ip: o.received_from,
                ..CallStart::default()
            }));
        }
        Ok(out)
    }

    /// `answer`: `sdp` belongs to `to_tag`; the reply SDP goes to `from_tag`.
    #[allow(clippy::too_many_arguments)] // the NG request's fields, one each
    pub fn answer(
        &mut self,
        now: Now,
        plane: &mut dyn MediaPlane,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
        o: &Options,
    ) -> Result<String, NgError> {
        let parsed = Sdp::parse(sdp).map_err(|e| NgError(format!("answer SDP: {e}")))?;
        self.touch(call_id);
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or_else(|| unknown_call(call_id))?;
        let x = *call
            .tags
            .get(from_tag)
            .ok_or_else(|| NgError(format!("Unknown from-tag {from_tag:?} in call {call_id:?}")))?;
        let y = match call.tags.get(to_tag) {
            Some(y) => *y,
            None => {
                // The pending peer takes this tag; a later answer with another
                // tag (a forked branch) is a participant of its own, with its
                // own ports.
                let y = call.parts[x]
                    .peer
                    .ok_or_else(|| NgError(format!("no offer pending for {from_tag:?}")))?;
                if call.parts[y].tag.is_empty() {
                    call.tags.remove("");
                    call.parts[y].tag = to_tag.to_string();
                    call.tags.insert(to_tag.to_string(), y);
                    y
                } else {
                    // Another branch answering the same offer: it was offered
                    // what the first branch was (so its answer is narrowed
                    // the same way), on ports of its own.
                    let iface = call.parts[y].iface;
                    let sides = call.parts[y].sides.iter().map(Side::for_fork).collect();
                    let f = participant(call, to_tag, iface, now.wall);
                    call.parts[f].sides = sides;
                    f
                }
            }
        };
        if x == y {
            return Err(same_participant(call_id, from_tag, to_tag));
        }
        subscribe(&mut call.parts, x, y);
        call.last_signal = now.wall;
        call.delete_at = None;
        if let Some(l) = &o.label {
            call.parts[y].label = Some(l.clone());
        }
        let out = self.signal(call_id, y, x, parsed, o, Role::Answer)?;
        self.record_flag(now, plane, call_id, o)?;
        self.sync_flows(plane, call_id)?;
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or_else(|| unknown_call(call_id))?;
        if call.answered.is_none() {
            call.answered = Some(now.wall);
            self.records.push(Record::Answered {
                call_id: call_id.to_string(),
                at_ms: cdr::ms(now.wall),
            });
        }
        Ok(out)
    }

    /// Records `x`'s media from its SDP and rewrites that SDP for `y`.
    fn signal(
        &mut self,
        call_id: &str,
        x: usize,
        y: usize,
        mut sdp: Sdp,
        o: &Options,
        role: Role,
    ) -> Result<String, NgError> {
        check_transport(&sdp, o)?;
        transcode::check(o)?;
        let Sessions {
            cfg, pools, calls, ..
        } = self;
        let call = calls
            .get_mut(call_id)
            .ok_or_else(|| unknown_call(call_id))?;
        let (xi, yi) = (call.parts[x].iface, call.parts[y].iface);
        let y_if = &cfg.interfaces[yi];
        let relay = o
            .media_address
            .unwrap_or(y_if.advertise.unwrap_or(y_if.address));
        call.parts[x].strict = o.strict_source;
        call.parts[x].asymmetric = o.asymmetric;
        if o.received_from.is_some() {
            call.parts[x].signal = o.received_from;
        }
        let tag = call.parts[x].tag.clone();
        let Some((xp, yp)) = two(&mut call.parts, x, y) else {
            return Err(same_participant(call_id, &tag, &tag));
        };
        let range = (cfg.port_min, cfg.port_max);
        for i in 0..sdp.media.len() {
            for p in [&mut *xp, &mut *yp] {
                if p.sides.len() <= i {
                    p.sides.push(Side::new(&sdp.media[i]));
                }
            }
            let ep = sdp_conn(sdp.connection(i), o);
            let m = &mut sdp.media[i];
            let (xs, ys) = (&mut xp.sides[i], &mut yp.sides[i]);
            let mux = take_media(xs, ys, m, ep, o, role);
            if !xs.disabled {
                // The port facing y depends on where x is (rtpengine's
                // endpoint maps); x's own is a wildcard until y answers.
                let want_rtcp = !(mux.require && ys.mux);
                let name = &cfg.interfaces[yi].name;
                ys.use_map(&mut pools[yi], xs.rtp, want_rtcp, name, range)?;
                if xs.maps.is_empty() {
                    let want_rtcp = !(xs.mux && (o.mux("demux") || o.mux("accept")));
                    let name = &cfg.interfaces[xi].name;
                    xs.use_map(&mut pools[xi], None, want_rtcp, name, range)?;
                }
            }
            if role == Role::Answer {
                // An answer keeps only formats the relay offered it.
                let offered = &xs.offered;
                if m.formats().iter().any(|f| offered.contains(f)) {
                    m.retain_formats(|pt, _| offered.iter().any(|f| f == pt));
                }
            }
            match role {
                Role::Offer => transcode::offer(&mut xs.transcoding, m, o),
                Role::Answer => transcode::answer(&mut xs.transcoding, &mut ys.transcoding, m),
            }
            rewrite_media(m, ys, relay, mux, o);
            if !ys.disabled {
                transcrypt(xs, ys, m, o, role)?;
            }
            if role == Role::Offer {
                ys.offered = m.formats();
            }
        }
        rewrite_session(&mut sdp, relay, o);
        if o.replace_sdp_version {
            yp.version_sdp(&mut sdp);
        }
        sdp.strip_ice();
        Ok(sdp.to_string())
    }

    /// Installs, updates and removes this call's flows to match its state.
    fn sync_flows(&mut self, plane: &mut dyn MediaPlane, call_id: &str) -> Result<(), NgError> {
        self.note_recorded_legs(call_id);
        let call = self
            .calls
            .get(call_id)
            .ok_or_else(|| unknown_call(call_id))?;
        let want = self.desired_flows(call);
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or_else(|| unknown_call(call_id))?;
        let puts: Vec<Flow> = want
            .iter()
            .filter(|(local, flow)| call.flows.get(*local) != Some(*flow))
            .map(|(_, f)| f.clone())
            .collect();
        let stale: Vec<SocketAddr> = call
            .flows
            .keys()
            .filter(|l| !want.contains_key(l))
            .copied()
            .collect();
        let applied = plane.apply(&puts, &stale);
        let mut first_err = None;
        for (flow, r) in puts.iter().zip(&applied.puts) {
            match r {
                Ok(()) => {
                    call.flows.insert(flow.local, flow.clone());
                }
                Err(e) => {
                    first_err.get_or_insert_with(|| {
                        format!("data plane refused flow {}: {e}", flow.local)
                    });
                }
            }
        }
        for (local, r) in stale.iter().zip(&applied.removed) {
            match r {
                Ok(_) => {
                    call.flows.remove(local);
                }
                Err(e) => {
                    first_err
                        .get_or_insert_with(|| format!("data plane: removing flow {local}: {e}"));
                }
            }
        }
        first_err.map_or(Ok(()), |e| Err(NgError(e)))
    }

    /// The pipeline stages of the flow from x's side to y's, in the one
    /// order every flow keeps ([`StageSpec::place`]): RTCP split off
    /// towards y's RTCP port when x muxes and y does not (`demux`, see
    /// [`Self::demuxes`]); SRTP from x decrypted; the stages every flow
    /// carries (`media.stages`); the recording's tap; SRTP to y encrypted
    /// last.
    fn stages(&self, xs: &Side, ys: &Side, demux: bool, tap: Option<StageSpec>) -> Vec<StageSpec> {
        let mut stages = Vec::new();
        if demux {
            stages.push(StageSpec::RtcpDemux);
        }
        if let Some(k) = xs.srtp.rx {
            stages.push(StageSpec::SrtpDecrypt(k));
        }
        stages.extend_from_slice(&self.cfg.stages);
        if let Some(k) = ys.srtp.tx {
            stages.push(StageSpec::SrtpEncrypt(k));
        }
        if let Some(t) = transcode::stage(&xs.transcoding, &ys.transcoding) {
            t.place_in(&mut stages);
        }
        if let Some(tap) = tap {
            tap.place_in(&mut stages);
        }
        stages
    }

    /// Whether RTCP arriving muxed from x goes to y's RTCP port (rtcp-mux
    /// demux; the data plane sends it to the RTP port + 1, so only when y's
    /// RTCP is there).
    fn demuxes(xs: &Side, ys: &Side, y_rtp: SocketAddr) -> bool {
        let next_port = SocketAddr::new(y_rtp.ip(), y_rtp.port().wrapping_add(1));
        xs.mux && !ys.mux && ys.rtcp_socket && ys.rtcp.is_none_or(|r| r == next_port)
    }

    fn desired_flows(&self, call: &Call) -> BTreeMap<SocketAddr, Flow> {
        let mut out = BTreeMap::new();
        let tap = call.recording.as_ref().and_then(Recording::tap);
        let pairs = call
            .parts
            .iter()
            .flat_map(|y| y.subs.iter().map(move |&x| (x, y)));
        for (xi, y) in pairs {
            let x = &call.parts[xi];
            let (xa, ya) = (self.iface(x.iface).address, self.iface(y.iface).address);
            for (xs, ys) in x.sides.iter().zip(&y.sides) {
                // Media x sends to its facing port goes to y.
                if xs.disabled || ys.disabled {
                    continue;
                }
                let Some(y_rtp) = ys.rtp.filter(|a| !a.ip().is_unspecified()) else {
                    continue; // on hold, or not known yet
                };
                // x's real source is learned (symmetric RTP) unless x is
                // asymmetric; y is sent to where it really is unless y is.
                let follow = |port: u16| (!y.asymmetric).then(|| sock(ya, port));
                let rtp = Flow {
                    local: sock(xa, xs.port),
                    source: sock(ya, ys.port),
                    destination: y_rtp,
                    expect: None,
                    egress: None,
                    learn: !x.asymmetric,
                    strict: x.strict && !x.asymmetric,
                    follow: follow(ys.port),
                    clock_rate: xs.clock_rate,
                    stages: self.stages(xs, ys, Self::demuxes(xs, ys, y_rtp), tap),
                };
                if xs.rtcp_socket && !xs.mux {
                    let src = if ys.mux || !ys.rtcp_socket {
                        ys.port
                    } else {
                        ys.port + 1
                    };
                    let dst = if ys.mux {
                        y_rtp
                    } else {
                        ys.rtcp.unwrap_or(y_rtp)
                    };
                    let rtcp = Flow {
                        local: sock(xa, xs.port + 1),
                        source: sock(ya, src),
                        destination: dst,
                        follow: follow(src),
                        // Recorded too: the capture has the call's RTCP.
                        stages: self.stages(xs, ys, false, tap),
                        ..rtp.clone()
                    };
                    out.insert(rtcp.local, rtcp);
                }
                out.insert(rtp.local, rtp);
            }
        }
        out
    }

    /// `delete`: the whole call, or one branch when `to_tag` names an alias;
    /// `from_tag` is the party hanging up, when the request says. Returns
    /// the call's statistics as they were, or None if unknown. One exchange
    /// with `plane`: without a delay the flows go at once and their final
    /// counters are the call's; with one they are read and stay.
    pub fn delete(
        &mut self,
        now: Now,
        plane: &mut dyn MediaPlane,
        call_id: &str,
        from_tag: Option<&str>,
        to_tag: Option<&str>,
        delay: Option<u64>,
    ) -> Option<CallReport> {
        self.calls.get(call_id)?;
        self.touch(call_id);
        let call = self.calls.get(call_id)?;
        let only = to_tag.filter(|t| !t.is_empty()).or(from_tag);
        if let Some(branch) = lone_branch(call, from_tag, to_tag) {
            let stats = self.call_stats(plane, call_id);
            let reply = report::call(call, &self.cfg, &stats, now.wall, only);
            self.drop_branch(plane, call_id, branch);
            return Some(reply);
        }
        let delay = delay.unwrap_or(self.cfg.delete_delay_secs);
        let (stats, retired) = if delay == 0 {
            self.remove_flows(plane, call_id)
        } else {
            (self.call_stats(plane, call_id), Vec::new())
        };
        self.finish_recording(now, plane, call_id, delay == 0);
        let reply = report::call(self.calls.get(call_id)?, &self.cfg, &stats, now.wall, only);
        self.end(now, call_id, &stats, Ending::Deleted { by_tag: from_tag });
        self.totals.deleted += 1;
        if delay == 0 {
            self.release_call(call_id, &retired);
        } else if let Some(c) = self.calls.get_mut(call_id) {
            // Requests are limited to a day; the configured delay is trusted.
            c.delete_at = now.mono.checked_add(Duration::from_secs(delay));
        }
        Some(reply)
    }

    /// Removes one participant (a losing branch): its ports, flows and tag.
    fn drop_branch(&mut self, plane: &mut dyn MediaPlane, call_id: &str, p: usize) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        let gone = &mut call.parts[p];
        gone.gone = true;
        gone.subs.clear();
        gone.peer = None;
        release(&mut self.pools[gone.iface], gone, &[]);
        let tag = gone.tag.clone();
        call.tags.remove(&tag);
        for q in &mut call.parts {
            q.subs.retain(|&s| s != p);
            if q.peer == Some(p) {
                q.peer = None;
            }
        }
        if let Err(e) = self.sync_flows(plane, call_id) {
            tracing::warn!(call_id, error = %e.0, "removing a branch's flows");
        }
    }

    /// Writes the call's CDR, once.
    fn end(&mut self, now: Now, call_id: &str, stats: &HashMap<SocketAddr, FlowStat>, how: Ending) {
        let addresses: Vec<IpAddr> = self.cfg.interfaces.iter().map(|i| i.address).collect();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if std::mem::replace(&mut call.ended, true) {
            return;
        }
        let cdr = cdr::build(call_id, call, &addresses, stats, now.wall, how);
        self.records.push(Record::Ended(Box::new(cdr)));
    }

    /// Call events and CDRs produced since the last call, oldest first.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// Removes the call, its flows and its ports, writing no CDR.
    fn drop_call(&mut self, plane: &mut dyn MediaPlane, call_id: &str) {
        let (_, retired) = self.remove_flows(plane, call_id);
        self.discard_recording(plane, call_id);
        self.release_call(call_id, &retired);
    }

    /// Removes the call's flows in one exchange. Returns their final
    /// counters, and the port pairs to retire: a pair whose flow the data
    /// plane kept is never handed out again, since a new call on it would
    /// collide with the flow left behind.
    fn remove_flows(
        &self,
        plane: &mut dyn MediaPlane,
        call_id: &str,
    ) -> (HashMap<SocketAddr, FlowStat>, Vec<u16>) {
        let locals = self.call_flows(call_id);
        let mut stats = HashMap::new();
        let mut retired = Vec::new();
        for (local, r) in locals.iter().zip(plane.apply(&[], &locals).removed) {
            match r {
                Ok(Some(stat)) => {
                    stats.insert(*local, stat);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(call_id, %local, error = %e, "could not remove flow; its port pair is retired");
                    retired.push(local.port() & !1);
                }
            }
        }
        (stats, retired)
    }

    /// Forgets the call and frees its ports, but the `retired` pairs.
    fn release_call(&mut self, call_id: &str, retired: &[u16]) {
        let Some(mut call) = self.calls.remove(call_id) else {
            return;
        };
        for p in &mut call.parts {
            release(&mut self.pools[p.iface], p, retired);
        }
    }

    /// `query`: the call, or (`only`) one participant and whom it hears.
    /// `stats` were read at `now`.
    pub fn query(
        &self,
        now: Now,
        call_id: &str,
        only: Option<&str>,
        stats: &HashMap<SocketAddr, FlowStat>,
    ) -> Option<CallReport> {
        self.calls
            .get(call_id)
            .map(|c| report::call(c, &self.cfg, stats, now.wall, only))
    }

    /// Counters of one call's flows (none when the data plane cannot say).
    pub fn call_stats(
        &self,
        plane: &mut dyn MediaPlane,
        call_id: &str,
    ) -> HashMap<SocketAddr, FlowStat> {
        plane
            .flow_stats(&self.call_flows(call_id))
            .unwrap_or_else(|e| {
                tracing::warn!(call_id, error = %e, "data plane counters unavailable");
                HashMap::new()
            })
    }

    /// Hands the call's ending to its signalling (the B2BUA): no media or
    /// final timeout here.
    pub fn set_managed(&mut self, call_id: &str) {
        self.touch(call_id);
        if let Some(c) = self.calls.get_mut(call_id) {
            c.managed = true;
        }
    }

    /// The media timeout, if any.
    pub fn media_timeout(&self) -> Option<Duration> {
        (self.cfg.timeout_secs > 0).then(|| Duration::from_secs(self.cfg.timeout_secs))
    }

    /// What each present participant of a call sent to the relay
    /// (packets, bytes; RTP loss, jitter and a MOS estimate where the
    /// data plane measures them) and what it reported in RTCP, by tag,
    /// from `stats`.
    pub fn quality(
        &self,
        call_id: &str,
        stats: &HashMap<SocketAddr, FlowStat>,
    ) -> Vec<(String, tollgate_cdr::model::MediaStats, Reported)> {
        let Some(call) = self.calls.get(call_id) else {
            return Vec::new();
        };
        call.parts
            .iter()
            .filter(|p| !p.gone)
            .map(|p| {
                let local = self.iface(p.iface).address;
                let reported = cdr::reported_by(p, local, stats);
                (p.tag.clone(), cdr::received_from(p, local, stats), reported)
            })
            .collect()
    }

    /// Every installed flow's call, by the flow's local address.
    pub fn flow_calls(&self) -> HashMap<SocketAddr, String> {
        self.calls
            .iter()
            .flat_map(|(id, c)| c.flows.keys().map(move |l| (*l, id.clone())))
            .collect()
    }

    /// Local addresses of the flows a call has installed.
    pub fn call_flows(&self, call_id: &str) -> Vec<SocketAddr> {
        self.calls
            .get(call_id)
            .map(|c| c.flows.keys().copied().collect())
            .unwrap_or_default()
    }

    /// How often media timeouts need fresh counters: a tenth of the
    /// timeout, between 1 and 10 seconds.
    pub fn stats_every(&self) -> Duration {
        Duration::from_secs((self.cfg.timeout_secs / 10).clamp(1, 10))
    }

    /// Deletes calls whose delay ran out, that reached the final timeout, or
    /// (when `stats` are given) whose media went silent for the timeout.
    /// Returns what it deleted.
    pub fn expire(
        &mut self,
        now: Now,
        plane: &mut dyn MediaPlane,
        stats: Option<&HashMap<SocketAddr, FlowStat>>,
    ) -> Vec<(String, &'static str)> {
        let mut gone = Vec::new();
        for (id, c) in &self.calls {
            if c.delete_at.is_some_and(|t| t <= now.mono) {
                gone.push((id.clone(), "deleted"));
                continue;
            }
            if c.managed {
                continue;
            }
            let age = now.mono.saturating_duration_since(c.created_mono);
            if self.cfg.final_timeout_secs > 0
                && age >= Duration::from_secs(self.cfg.final_timeout_secs)
            {
                gone.push((id.clone(), "final timeout"));
                continue;
            }
            let limit = Duration::from_secs(self.cfg.timeout_secs);
            let Some(stats) = stats else { continue };
            if self.cfg.timeout_secs > 0
                && c.delete_at.is_none()
                && age >= limit
                && !c.flows.is_empty()
            {
                let silent = c.flows.keys().all(|l| {
                    stats
                        .get(l)
                        .is_none_or(|s| s.idle_ms >= limit.as_millis() as u64)
                });
                if silent {
                    gone.push((id.clone(), "media timeout"));
                }
            }
        }
        for (id, why) in &gone {
            self.touch(id);
            let how = match *why {
                "media timeout" => Some(Ending::MediaTimeout),
                "final timeout" => Some(Ending::FinalTimeout),
                _ => None,
            };
            match how {
                Some(Ending::MediaTimeout) => self.totals.timeouts += 1,
                Some(_) => self.totals.final_timeouts += 1,
                None => {}
            }
            let (stats, retired) = self.remove_flows(plane, id);
            self.finish_recording(now, plane, id, true);
            if let Some(how) = how {
                self.end(now, id, &stats, how);
            }
            tracing::info!(call_id = %id, reason = why, "call removed");
            self.release_call(id, &retired);
        }
        gone
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Offer,
    Answer,
}

/// The offerer (`from_tag`) and whom it offers to: `to_tag`'s participant,
/// else its current peer, else a new participant awaiting its tag. The
/// interfaces come from `direction` (offerer's first).
fn offer_parties(
    call: &mut Call,
    from_tag: &str,
    to_tag: Option<&str>,
    dirs: &[usize],
    now: SystemTime,
) -> (usize, usize) {
    let x = participant(call, from_tag, dirs.first().copied().unwrap_or(0), now);
    let y = match to_tag.and_then(|t| call.tags.get(t).copied()) {
        Some(y) => y,
        None => match call.parts[x].peer {
            Some(y) => y,
            None => participant(
                call,
                to_tag.unwrap_or(""),
                dirs.get(1).copied().unwrap_or(call.parts[x].iface),
                now,
            ),
        },
    };
    (x, y)
}

fn participant(call: &mut Call, tag: &str, iface: usize, created: SystemTime) -> usize {
    if let Some(&i) = call.tags.get(tag) {
        return i;
    }
    call.parts.push(Participant {
        tag: tag.to_string(),
        label: None,
        created,
        signal: None,
        iface,
        sides: Vec::new(),
        peer: None,
        subs: Vec::new(),
        gone: false,
        asymmetric: false,
        strict: false,
        sdp_version: None,
        last_sdp: None,
    });
    let i = call.parts.len() - 1;
    call.tags.insert(tag.to_string(), i);
    i
}

/// Gives back every port pair held for `p`.
/// Returns every port pair `p` holds to the pool, but those in `retired`
/// (once: its maps are emptied).
/// The participant `to_tag` names when it is a branch the `from_tag` party
/// is not in dialogue with: a delete naming both removes that branch alone.
fn lone_branch(call: &Call, from_tag: Option<&str>, to_tag: Option<&str>) -> Option<usize> {
    let (&fp, &tp) = (call.tags.get(from_tag?)?, call.tags.get(to_tag?)?);
    let in_dialogue = call.parts.iter().any(|q| !q.gone && q.peer == Some(tp));
    (fp != tp && !in_dialogue).then_some(tp)
}

fn release(pool: &mut PortPool, p: &mut Participant, retired: &[u16]) {
    for m in p.sides.iter_mut().flat_map(|s| s.maps.drain(..)) {
        if !retired.contains(&m.port) {
            pool.release(m.port);
        }
    }
}

/// Two distinct elements of `v`, mutably; None when `a == b`.
fn two<T>(v: &mut [T], a: usize, b: usize) -> Option<(&mut T, &mut T)> {
    use std::cmp::Ordering::*;
    match a.cmp(&b) {
        Less => {
            let (l, r) = v.split_at_mut(b);
            Some((&mut l[a], &mut r[0]))
        }
        Greater => {
            let (l, r) = v.split_at_mut(a);
            Some((&mut r[0], &mut l[b]))
        }
        Equal => None,
    }
}

/// The refusal for a request naming a call the relay does not have. (Inside
/// offer and answer the call was looked up or made just before, so there
/// this is never reached; it stands in for a panic.)
pub(crate) fn unknown_call(call_id: &str) -> NgError {
    NgError(format!("Unknown call-ID {call_id:?}"))
}

/// The refusal for a request whose two tags resolve to one participant
/// (equal tags, or a tag that is an alias of the other side's).
fn same_participant(call_id: &str, from_tag: &str, to_tag: &str) -> NgError {
    NgError(format!(
        "from-tag {from_tag:?} and to-tag {to_tag:?} name the same participant of call {call_id:?}: \
         a participant cannot be its own peer"
    ))
}

/// The section's first format as `name/rate`: its rtpmap, else the RFC 3551
/// name of a static payload type.
fn first_codec(m: &SdpMedia) -> Option<String> {
    encoding(m, &m.formats().into_iter().next()?)
}

/// Format `pt` of the section as `name/rate`: its rtpmap, else the RFC
/// 3551 name of a static payload type.
fn encoding(m: &SdpMedia, pt: &str) -> Option<String> {
    let mapped = m.attrs("rtpmap").find_map(|v| {
        let (p, enc) = v.split_once(' ')?;
        (p == pt).then(|| enc.trim().to_string())
    });
    mapped.or_else(|| {
        let name = match pt {
            "0" => "PCMU/8000",
            "3" => "GSM/8000",
            "4" => "G723/8000",
            "8" => "PCMA/8000",
            "9" => "G722/8000",
            "18" => "G729/8000",
            "34" => "H263/90000",
            _ => return None,
        };
        Some(name.to_string())
    })
}

/// RTP clock of a codec (`name/rate`), else 8000 Hz for audio and 90000 Hz
/// for video.
fn clock_rate(kind: &str, codec: Option<&str>) -> u32 {
    codec
        .and_then(|c| c.split('/').nth(1)?.parse().ok())
        .unwrap_or(if kind == "video" { 90_000 } else { 8000 })
}

/// Where the sender of an SDP receives media: its SIP source with `SIP
/// source address`, else the SDP's c= address. (`media address` is the
/// relay's address to write into the SDP sent on, as in rtpengine.)
fn sdp_conn(from_sdp: Option<IpAddr>, o: &Options) -> Option<IpAddr> {
    match (o.address_source, o.received_from) {
        (AddressSource::SipSource, Some(a)) => Some(a),
        _ => from_sdp,
    }
}

fn filter_codecs(m: &mut SdpMedia, o: &Options) {
    if o.codec_strip.is_empty() && o.codec_offer.is_empty() && o.codec_except.is_empty() {
        return;
    }
    let all = o.codec_strip.iter().any(|c| c == "all" || c == "full");
    let named = |list: &[String], pt: &str, name: Option<&str>| {
        list.iter()
            .any(|c| c == pt || name.is_some_and(|n| n.eq_ignore_ascii_case(c)))
    };
    let keep_list: Vec<String> = o
        .codec_except
        .iter()
        .chain(&o.codec_offer)
        .cloned()
        .collect();
    let before = m.formats();
    let mut trial = m.clone();
    trial.retain_formats(|pt, name| {
        let stripped = all || named(&o.codec_strip, pt, name);
        !stripped || named(&keep_list, pt, name)
    });
    if trial.formats().is_empty() && !before.is_empty() {
        // rtpengine leaves the list alone rather than offer nothing.
        return;
    }
    drop_orphan_supplements(&mut trial);
    *m = trial;
}

/// Codecs that only accompany others (`telephone-event`, `CN`) go when no
/// other codec of their clock rate is left, as rtpengine's codec handling
/// drops them once it has changed the list.
fn drop_orphan_supplements(m: &mut SdpMedia) {
    let supplement = |name: Option<&str>| {
        name.is_some_and(|n| {
            n.eq_ignore_ascii_case("telephone-event") || n.eq_ignore_ascii_case("CN")
        })
    };
    let rate = |m: &SdpMedia, pt: &str| {
        let name = m.codec_name(pt);
        let enc = m.attrs("rtpmap").find_map(|v| {
            let (p, enc) = v.split_once(' ')?;
            (p == pt).then(|| enc.to_string())
        });
        clock_rate(
            m.kind(),
            enc.or(name.map(|n| format!("{n}/8000"))).as_deref(),
        )
    };
    let mains: Vec<u32> = m
        .formats()
        .iter()
        .filter(|pt| !supplement(m.codec_name(pt).as_deref()))
        .map(|pt| rate(m, pt))
        .collect();
    let keep: Vec<String> = m
        .formats()
        .into_iter()
        .filter(|pt| !supplement(m.codec_name(pt).as_deref()) || mains.contains(&rate(m, pt)))
        .collect();
    m.retain_formats(|pt, _| keep.iter().any(|k| k == pt));
}

/// Refuses a `transport protocol` change the relay cannot make: SRTP is
/// transcrypted between RTP/SAVP(F) and RTP/AVP(F) (SDES), not DTLS-SRTP.
fn check_transport(sdp: &Sdp, o: &Options) -> Result<(), NgError> {
    let Some(tp) = &o.transport_protocol else {
        return Ok(());
    };
    for (i, m) in sdp.media.iter().enumerate() {
        if m.proto().contains("TLS") && m.proto() != tp {
            return Err(NgError(format!(
                "media {}: {} is DTLS-SRTP, which this relay cannot turn into {tp}",
                i + 1,
                m.proto()
            )));
        }
    }
    Ok(())
}

/// SDES for one section after its rewrite for y: keys offered, picked or
/// answered (see [`sdes`]); an answer given to y in y's own profile when
/// the relay transcrypts between the two.
fn transcrypt(
    xs: &mut Side,
    ys: &mut Side,
    m: &mut SdpMedia,
    o: &Options,
    role: Role,
) -> Result<(), NgError> {
    match role {
        Role::Offer => {
            // A re-offer (a re-INVITE) without `transport protocol` keeps
            // an established transcrypt.
            let established = xs.srtp.rx.is_some() || ys.srtp.tx.is_some();
            own_profile(m, &ys.proto, o, established);
            // OSRTP (RFC 8643) is SRTP in an RTP/AVP section: accepted from
            // x when asked, offered to y when asked or already in use.
            let from_secure = is_secure(&xs.proto) || (o.sdes.osrtp_accept && m.has_attr("crypto"));
            let to_secure = is_secure(m.proto())
                || o.sdes.osrtp_offer
                || (o.transport_protocol.is_none() && ys.srtp.tx.is_some());
            let secure = (from_secure, to_secure);
            let sections = sdes::Sections {
                from: &mut xs.srtp,
                to: &mut ys.srtp,
            };
            sdes::offer(sections, m, secure, &o.sdes)
        }
        Role::Answer => {
            let sections = sdes::Sections {
                from: &mut xs.srtp,
                to: &mut ys.srtp,
            };
            sdes::answer(sections, m, &o.sdes)?;
            let crypted = xs.srtp.tx.is_some() || ys.srtp.tx.is_some();
            own_profile(m, &ys.proto, o, crypted);
            Ok(())
        }
    }
}

/// Gives y its own profile (`y_proto`'s SRTP or plain form) when the relay
/// transcrypts and the request names no `transport protocol`.
fn own_profile(m: &mut SdpMedia, y_proto: &str, o: &Options, transcrypting: bool) {
    let y_secure = is_secure(y_proto);
    if o.transport_protocol.is_none() && transcrypting && is_secure(m.proto()) != y_secure {
        m.set_proto(&with_srtp(m.proto(), y_secure));
    }
}

/// What the rtcp-mux negotiation decided for the SDP sent on.
#[derive(Debug, Clone, Copy)]
struct MuxOut {
    /// RTCP on the RTP port only (`a=rtcp:` names the RTP port).
    require: bool,
    role: Role,
}

/// Direction attribute to send/receive: (x sends, x receives).
fn directions(m: &SdpMedia) -> (bool, bool) {
    match m.explicit_direction() {
        Some("sendonly") => (true, false),
        Some("recvonly") => (false, true),
        Some("inactive") => (false, false),
        _ => (true, true),
    }
}

/// Takes x's section `m` (its endpoint address `ep`): x's side learns
/// where x is and what it sends; both sides' direction and ICE-role flags
/// follow, as rtpengine sets them.
fn take_media(
    xs: &mut Side,
    ys: &mut Side,
    m: &SdpMedia,
    ep: Option<IpAddr>,
    o: &Options,
    role: Role,
) -> MuxOut {
    xs.kind = m.kind().to_string();
    xs.proto = m.proto().to_string();
    xs.codec = first_codec(m);
    xs.codecs = recording::codecs(m);
    xs.clock_rate = clock_rate(m.kind(), xs.codec.as_deref());
    let (sends, receives) = directions(m);
    (xs.recv, xs.send, ys.send, ys.recv) = (sends, receives, sends, receives);
    // ICE roles are set once, even without ICE: the offer's receiver controls.
    if !ys.initialized {
        ys.ice_controlling = role == Role::Offer;
    }
    if !xs.initialized {
        xs.ice_controlling = role == Role::Answer;
    }
    xs.initialized = true;
    let addr = ep.unwrap_or(IpAddr::from([0, 0, 0, 0]));
    let port = m.port();
    xs.rtp = Some(sock(addr, port));
    xs.rtcp = Some(match m.rtcp_attr() {
        Some((p, a)) => sock(a.unwrap_or(addr), p),
        None => sock(addr, port.wrapping_add(1)),
    });
    xs.disabled = port == 0;
    ys.disabled = xs.disabled;
    if xs.disabled {
        return MuxOut {
            require: false,
            role,
        };
    }
    xs.asymmetric = o.asymmetric;
    if addr.is_unspecified() {
        // RFC 2543 hold: nothing is sent to x.
        ys.recv = false;
        xs.send = false;
    }
    MuxOut {
        require: rtcp_mux(xs, ys, m.has_attr("rtcp-mux"), o, role),
        role,
    }
}

/// rtcp-mux: the offer states what the relay offers y and whether the
/// answer may change x's choice; the answer decides. Returns whether RTCP
/// goes on the RTP port only (`require`, or y already muxing).
fn rtcp_mux(xs: &mut Side, ys: &mut Side, x_mux: bool, o: &Options, role: Role) -> bool {
    xs.mux = x_mux;
    if role == Role::Answer {
        // ys is the offerer here; xs carries the offer's verdict.
        if !xs.mux_fixed {
            ys.mux = x_mux;
        }
        return false;
    }
    let mut require = o.mux("require");
    if ys.mux {
        require = true; // mux in use: no fallback port is offered again
    } else {
        ys.mux = x_mux;
    }
    if o.mux("offer") || require {
        ys.mux = true;
    } else if o.mux("demux") {
        ys.mux = false;
    }
    let reject = o.mux("reject");
    ys.mux_fixed = !x_mux || !ys.mux || o.mux("accept") || reject;
    if x_mux && reject {
        xs.mux = false;
    }
    require
}

/// Rewrites x's section for y: y's port, the relay's address (a zero
/// address stays: hold), codecs, and the attributes the relay owns.
fn rewrite_media(m: &mut SdpMedia, ys: &Side, relay: IpAddr, mux: MuxOut, o: &Options) {
    let keep_zero = |c: Option<IpAddr>| c.is_some_and(|a| a.is_unspecified());
    if let Some(tp) = &o.transport_protocol {
        m.set_proto(tp);
    }
    if !keep_zero(m.own_connection()) && m.own_connection().is_some() {
        m.set_connection(relay);
    }
    if ys.disabled {
        m.set_port(0);
        m.strip_to_m_and_c();
        return;
    }
    m.set_port(ys.port);
    filter_codecs(m, o);
    let same_port = ys.mux && (mux.role == Role::Answer || mux.require);
    let rtcp = if same_port {
        Some(ys.port)
    } else {
        ys.rtcp_socket.then_some(ys.port + 1)
    };
    let rtcp = rtcp.filter(|_| !o.no_rtcp_attribute);
    m.relay_layout(ys.direction(), rtcp, ys.mux);
}

/// The session level: origin (`replace origin`) and session c= (when
/// asked, or when a section relies on it; a zero address stays).
fn rewrite_session(sdp: &mut Sdp, relay: IpAddr, o: &Options) {
    if o.replace_origin {
        sdp.set_origin_addr(relay);
    }
    let relied_on = sdp.media.iter().any(|m| m.own_connection().is_none());
    if let Some(c) = sdp.session_connection() {
        if (o.replace_session_connection || relied_on) && !c.is_unspecified() {
            sdp.set_session_connection(relay);
        }
    }
}
