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
//! This module is a plain state machine over [`MediaPlane`]: it takes `now`
//! and requests and returns replies; sockets and clocks live in the NG
//! server and the data-plane link.

mod cdr;
pub mod options;
pub mod ports;
mod report;

use crate::config::{MediaConfig, MediaInterface};
use options::{AddressSource, Options};
use ports::PortPool;
use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};
use tollgate_cdr::model::{CallStart, Record};
use tollgate_dataplane::flow::Flow;
use tollgate_sip::sdp::{Media as SdpMedia, Sdp};

pub use cdr::{ms, Ending};
pub use report::FlowStat;

/// The data plane as the session manager needs it.
pub trait MediaPlane: Send {
    /// Installs or updates the flows `puts` and removes those matching
    /// `removes` (absent is fine), in one exchange where the data plane
    /// allows it; one result per item, puts first.
    fn apply(&mut self, puts: &[Flow], removes: &[SocketAddr]) -> Vec<Result<(), String>>;
    /// Counters of every installed flow, by local address.
    fn stats(&mut self) -> Result<HashMap<SocketAddr, FlowStat>, String>;
    /// Counters of the given flows only (one call's: cheap at any scale).
    fn flow_stats(
        &mut self,
        locals: &[SocketAddr],
    ) -> Result<HashMap<SocketAddr, FlowStat>, String>;
}

/// An NG request the relay refuses, with the reason for `error-reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NgError(pub String);

impl<T: Into<String>> From<T> for NgError {
    fn from(s: T) -> Self {
        NgError(s.into())
    }
}

/// One SDP media section of one participant.
#[derive(Debug, Clone)]
struct Side {
    kind: String,
    proto: String,
    /// Relay RTP port facing this participant (RTCP is +1).
    port: u16,
    /// Where the participant receives RTP, and RTCP; None while on hold
    /// (zero address) or not yet known.
    rtp: Option<SocketAddr>,
    rtcp: Option<SocketAddr>,
    /// As written in its SDP (before `received from` / `media address`).
    advertised: Option<SocketAddr>,
    /// Its first codec ("PCMU/8000"), and that codec's RTP clock rate.
    codec: Option<String>,
    clock_rate: u32,
    /// It offered rtcp-mux / it uses rtcp-mux (answer decided).
    offered_mux: bool,
    mux: bool,
    /// Port 0 in its SDP: the section is rejected or disabled.
    disabled: bool,
}

#[derive(Debug)]
struct Participant {
    tag: String,
    label: Option<String>,
    created: SystemTime,
    /// Where its last offer or answer came from (NG `received from`).
    signal: Option<IpAddr>,
    iface: usize,
    sides: Vec<Side>,
    peer: Option<usize>,
    /// From its last offer/answer: no source learning; drop other sources.
    asymmetric: bool,
    strict: bool,
}

#[derive(Debug)]
struct Call {
    created: SystemTime,
    created_mono: Instant,
    last_signal: SystemTime,
    /// When the first answer came.
    answered: Option<SystemTime>,
    /// Its CDR is written (a delayed delete keeps the call a while longer).
    ended: bool,
    parts: Vec<Participant>,
    /// Tags (including branch aliases) to participants.
    tags: HashMap<String, usize>,
    delete_at: Option<Instant>,
    recording: bool,
    /// Signalled by Tollgate's own B2BUA, which ends it (with BYEs) when its
    /// media stops: the timeouts here leave it alone.
    managed: bool,
    /// Data-plane flows this call installed, by local address.
    flows: BTreeMap<SocketAddr, Flow>,
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

    pub fn active(&self) -> usize {
        self.calls
            .values()
            .filter(|c| c.delete_at.is_none())
            .count()
    }

    pub fn ports_in_use(&self) -> usize {
        self.pools.iter().map(PortPool::in_use).sum()
    }

    /// `offer`: `sdp` belongs to `from_tag`; the reply SDP goes to the peer.
    pub fn offer(
        &mut self,
        plane: &mut dyn MediaPlane,
        call_id: &str,
        from_tag: &str,
        to_tag: Option<&str>,
        sdp: &str,
        o: &Options,
    ) -> Result<String, NgError> {
        let parsed = Sdp::parse(sdp).map_err(|e| NgError(format!("offer SDP: {e}")))?;
        let dirs = o
            .direction
            .iter()
            .map(|d| self.iface_by_name(d))
            .collect::<Result<Vec<_>, _>>()?;
        let now = SystemTime::now();
        let is_new = !self.calls.contains_key(call_id);
        let call = self
            .calls
            .entry(call_id.to_string())
            .or_insert_with(|| Call {
                created: now,
                created_mono: Instant::now(),
                last_signal: now,
                answered: None,
                ended: false,
                parts: Vec::new(),
                tags: HashMap::new(),
                delete_at: None,
                recording: false,
                managed: false,
                flows: BTreeMap::new(),
            });
        if is_new {
            self.totals.calls += 1;
        }
        call.delete_at = None;
        call.last_signal = now;
        call.recording |= o.record_call;
        let x = participant(call, from_tag, dirs.first().copied().unwrap_or(0));
        let y = match to_tag.and_then(|t| call.tags.get(t).copied()) {
            Some(y) => y,
            None => match call.parts[x].peer {
                Some(y) => y,
                None => participant(
                    call,
                    to_tag.unwrap_or(""),
                    dirs.get(1).copied().unwrap_or(call.parts[x].iface),
                ),
            },
        };
        if x == y {
            if is_new {
                self.drop_call(plane, call_id);
            }
            return Err(same_participant(call_id, from_tag, to_tag.unwrap_or("")));
        }
        call.parts[x].peer = Some(y);
        call.parts[y].peer = Some(x);
        if let Some(l) = &o.label {
            call.parts[x].label = Some(l.clone());
        }
        // A refused offer of a new call takes nothing with it: its ports and
        // any flows installed before the refusal are released at once.
        let out = match self
            .signal(call_id, x, y, parsed, o, Role::Offer)
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
            self.records.push(Record::Started(CallStart {
                call_id: call_id.to_string(),
                at_ms: cdr::ms(now),
                source_ip: o.received_from,
                ..CallStart::default()
            }));
        }
        Ok(out)
    }

    /// `answer`: `sdp` belongs to `to_tag`; the reply SDP goes to `from_tag`.
    pub fn answer(
        &mut self,
        plane: &mut dyn MediaPlane,
        call_id: &str,
        from_tag: &str,
        to_tag: &str,
        sdp: &str,
        o: &Options,
    ) -> Result<String, NgError> {
        let parsed = Sdp::parse(sdp).map_err(|e| NgError(format!("answer SDP: {e}")))?;
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or_else(|| NgError(format!("Unknown call-ID {call_id:?}")))?;
        let x = *call
            .tags
            .get(from_tag)
            .ok_or_else(|| NgError(format!("Unknown from-tag {from_tag:?} in call {call_id:?}")))?;
        let y = match call.tags.get(to_tag) {
            Some(y) => *y,
            None => {
                // The pending peer takes this tag; a later answer with another
                // tag (a forked branch) becomes an alias of the same side.
                let y = call.parts[x]
                    .peer
                    .ok_or_else(|| NgError(format!("no offer pending for {from_tag:?}")))?;
                if call.parts[y].tag.is_empty() {
                    call.tags.remove("");
                }
                call.parts[y].tag = to_tag.to_string();
                call.tags.insert(to_tag.to_string(), y);
                y
            }
        };
        if x == y {
            return Err(same_participant(call_id, from_tag, to_tag));
        }
        call.parts[x].peer = Some(y);
        call.parts[y].peer = Some(x);
        call.last_signal = SystemTime::now();
        call.delete_at = None;
        if let Some(l) = &o.label {
            call.parts[y].label = Some(l.clone());
        }
        let out = self.signal(call_id, y, x, parsed, o, Role::Answer)?;
        self.sync_flows(plane, call_id)?;
        let call = self.calls.get_mut(call_id).expect("call");
        if call.answered.is_none() {
            let now = SystemTime::now();
            call.answered = Some(now);
            self.records.push(Record::Answered {
                call_id: call_id.to_string(),
                at_ms: cdr::ms(now),
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
        if x == y {
            let tag = &self.calls[call_id].parts[x].tag;
            return Err(same_participant(call_id, tag, tag));
        }
        let (xi, yi) = {
            let c = &self.calls[call_id];
            (c.parts[x].iface, c.parts[y].iface)
        };
        for (i, m) in sdp.media.iter().enumerate() {
            if let Some(tp) = &o.transport_protocol {
                if is_secure(m.proto()) {
                    return Err(NgError(format!(
                        "media {}: {} is SRTP, which this relay cannot turn into {tp}",
                        i + 1,
                        m.proto()
                    )));
                }
            }
            for who in [x, y] {
                let have = self.calls[call_id].parts[who].sides.len();
                if have <= i {
                    let iface = if who == x { xi } else { yi };
                    let port = self.pools[iface].allocate().ok_or_else(|| {
                        NgError(format!(
                            "no free media ports on interface {:?} ({}-{})",
                            self.iface(iface).name,
                            self.cfg.port_min,
                            self.cfg.port_max
                        ))
                    })?;
                    self.calls.get_mut(call_id).expect("call").parts[who]
                        .sides
                        .push(Side {
                            kind: m.kind().to_string(),
                            proto: m.proto().to_string(),
                            port,
                            rtp: None,
                            rtcp: None,
                            advertised: None,
                            codec: None,
                            clock_rate: 8000,
                            offered_mux: false,
                            mux: false,
                            disabled: false,
                        });
                }
            }
        }
        let y_addr = self.iface(yi).advertise.unwrap_or(self.iface(yi).address);
        let advertised: Vec<Option<IpAddr>> =
            (0..sdp.media.len()).map(|i| sdp.connection(i)).collect();
        let call = self.calls.get_mut(call_id).expect("call");
        call.parts[x].asymmetric = o.asymmetric;
        call.parts[x].strict = o.strict_source;
        if o.received_from.is_some() {
            call.parts[x].signal = o.received_from;
        }
        for (i, m) in sdp.media.iter_mut().enumerate() {
            let conn = sdp_conn(advertised[i], o);
            let Some((xs, ys)) = two(&mut call.parts, x, y) else {
                continue; // x == y was refused above
            };
            let xside = &mut xs.sides[i];
            let yside = &mut ys.sides[i];
            xside.disabled = m.port() == 0;
            xside.kind = m.kind().to_string();
            xside.proto = m.proto().to_string();
            xside.codec = first_codec(m);
            xside.clock_rate = clock_rate(m.kind(), xside.codec.as_deref());
            let addr = conn.unwrap_or(IpAddr::from([0, 0, 0, 0]));
            xside.advertised = advertised[i].map(|a| sock(a, m.port()));
            let hold = addr.is_unspecified() || xside.disabled;
            xside.rtp = (!hold).then(|| sock(addr, m.port()));
            xside.rtcp = (!hold).then(|| sock(addr, m.rtcp_port()));
            let x_mux = m.has_attr("rtcp-mux");
            // rtcp-mux: an offer states a preference; the answer decides both sides.
            let send_mux = match role {
                Role::Offer => {
                    xside.offered_mux = x_mux;
                    if o.mux("require") {
                        yside.mux = true;
                    }
                    o.mux("require")
                        || o.mux("offer")
                        || (x_mux && !o.mux("demux") && !o.mux("reject"))
                }
                Role::Answer => {
                    xside.mux = x_mux;
                    let accept = yside.offered_mux
                        && (x_mux || o.mux("demux") || o.mux("accept"))
                        && !o.mux("reject");
                    yside.mux = accept;
                    accept
                }
            };
            // Rewrite towards y.
            m.remove_attrs(|n| n == "rtcp" || n == "rtcp-mux");
            if yside.disabled && role == Role::Answer {
                m.set_port(0);
            } else if !xside.disabled {
                m.set_port(yside.port);
            }
            if m.own_connection().is_some() {
                m.set_connection(y_addr);
            }
            if let Some(tp) = &o.transport_protocol {
                m.set_proto(tp);
            }
            filter_codecs(m, o);
            if !xside.disabled {
                if send_mux {
                    m.push_attr("rtcp-mux");
                }
                if !(o.no_rtcp_attribute || send_mux && o.mux("require")) {
                    let rtcp = if send_mux && role == Role::Answer {
                        yside.port
                    } else {
                        yside.port + 1
                    };
                    m.push_attr(format!("rtcp:{rtcp}"));
                }
                if m.explicit_direction().is_none() {
                    m.push_attr("sendrecv");
                }
            }
        }
        if sdp.session_connection().is_some() || o.replace_session_connection {
            sdp.set_session_connection(y_addr);
        }
        if o.replace_origin {
            sdp.set_origin_addr(y_addr);
        }
        sdp.strip_ice();
        Ok(sdp.to_string())
    }

    /// Installs, updates and removes this call's flows to match its state.
    fn sync_flows(&mut self, plane: &mut dyn MediaPlane, call_id: &str) -> Result<(), NgError> {
        let want = self.desired_flows(call_id);
        let call = self.calls.get_mut(call_id).expect("call");
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
        let results = plane.apply(&puts, &stale);
        let mut first_err = None;
        for (flow, r) in puts.iter().zip(&results) {
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
        for (local, r) in stale.iter().zip(results.iter().skip(puts.len())) {
            match r {
                Ok(()) => {
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

    fn desired_flows(&self, call_id: &str) -> BTreeMap<SocketAddr, Flow> {
        let call = &self.calls[call_id];
        let mut out = BTreeMap::new();
        for x in &call.parts {
            let Some(yi) = x.peer else { continue };
            let y = &call.parts[yi];
            let (xa, ya) = (self.iface(x.iface).address, self.iface(y.iface).address);
            for (xs, ys) in x.sides.iter().zip(&y.sides) {
                // Media x sends to its facing port goes to y.
                if xs.disabled || ys.disabled {
                    continue;
                }
                let Some(y_rtp) = ys.rtp else { continue };
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
                };
                if !xs.mux {
                    let (dst, src) = if ys.mux {
                        (y_rtp, ys.port)
                    } else {
                        (ys.rtcp.unwrap_or(y_rtp), ys.port + 1)
                    };
                    let rtcp = Flow {
                        local: sock(xa, xs.port + 1),
                        source: sock(ya, src),
                        destination: dst,
                        follow: follow(src),
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
    /// the call's statistics as they were, or None if unknown.
    pub fn delete(
        &mut self,
        plane: &mut dyn MediaPlane,
        call_id: &str,
        from_tag: Option<&str>,
        to_tag: Option<&str>,
        delay: Option<u64>,
        stats: &HashMap<SocketAddr, FlowStat>,
    ) -> Option<tollgate_ng::Value> {
        let call = self.calls.get_mut(call_id)?;
        if let Some(t) = to_tag {
            if let Some(&p) = call.tags.get(t) {
                if call.parts[p].tag != t {
                    call.tags.remove(t); // a losing branch: the call goes on
                    return Some(report::query(
                        call_id,
                        self.calls.get(call_id)?,
                        &self.cfg,
                        stats,
                    ));
                }
            }
        }
        let reply = report::query(call_id, &self.calls[call_id], &self.cfg, stats);
        self.end(call_id, stats, Ending::Deleted { by_tag: from_tag });
        let delay = delay.unwrap_or(self.cfg.delete_delay_secs);
        self.totals.deleted += 1;
        if delay == 0 {
            self.drop_call(plane, call_id);
        } else if let Some(c) = self.calls.get_mut(call_id) {
            c.delete_at = Some(Instant::now() + Duration::from_secs(delay));
        }
        Some(reply)
    }

    /// Writes the call's CDR, once.
    fn end(&mut self, call_id: &str, stats: &HashMap<SocketAddr, FlowStat>, how: Ending) {
        let addresses: Vec<IpAddr> = self.cfg.interfaces.iter().map(|i| i.address).collect();
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if std::mem::replace(&mut call.ended, true) {
            return;
        }
        let cdr = cdr::build(call_id, call, &addresses, stats, SystemTime::now(), how);
        self.records.push(Record::Ended(Box::new(cdr)));
    }

    /// Call events and CDRs produced since the last call, oldest first.
    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    fn drop_call(&mut self, plane: &mut dyn MediaPlane, call_id: &str) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        let locals: Vec<SocketAddr> = call.flows.keys().copied().collect();
        for (local, r) in locals.iter().zip(plane.apply(&[], &locals)) {
            if let Err(e) = r {
                tracing::warn!(call_id, %local, error = %e, "could not remove flow");
            }
        }
        for p in &call.parts {
            for s in &p.sides {
                self.pools[p.iface].release(s.port);
            }
        }
    }

    pub fn query(
        &self,
        call_id: &str,
        stats: &HashMap<SocketAddr, FlowStat>,
    ) -> Option<tollgate_ng::Value> {
        self.calls
            .get(call_id)
            .map(|c| report::query(call_id, c, &self.cfg, stats))
    }

    pub fn set_recording(&mut self, call_id: &str, on: bool) -> bool {
        self.calls
            .get_mut(call_id)
            .map(|c| c.recording = on)
            .is_some()
    }

    /// Local addresses of the flows a call has installed.
    /// Hands the call's ending to its signalling (the B2BUA): no media or
    /// final timeout here.
    pub fn set_managed(&mut self, call_id: &str) {
        if let Some(c) = self.calls.get_mut(call_id) {
            c.managed = true;
        }
    }

    /// The media timeout, if any.
    pub fn media_timeout(&self) -> Option<Duration> {
        (self.cfg.timeout_secs > 0).then(|| Duration::from_secs(self.cfg.timeout_secs))
    }

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
        plane: &mut dyn MediaPlane,
        now: Instant,
        stats: Option<&HashMap<SocketAddr, FlowStat>>,
    ) -> Vec<(String, &'static str)> {
        let mut gone = Vec::new();
        for (id, c) in &self.calls {
            if c.delete_at.is_some_and(|t| t <= now) {
                gone.push((id.clone(), "deleted"));
                continue;
            }
            if c.managed {
                continue;
            }
            let age = now.saturating_duration_since(c.created_mono);
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
            if let Some(how) = how {
                let flows = self.call_flows(id);
                let stats = plane.flow_stats(&flows).unwrap_or_else(|e| {
                    tracing::warn!(call_id = %id, error = %e, "no counters for the CDR");
                    HashMap::new()
                });
                self.end(id, &stats, how);
            }
            tracing::info!(call_id = %id, reason = why, "call removed");
            self.drop_call(plane, id);
        }
        gone
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Offer,
    Answer,
}

fn participant(call: &mut Call, tag: &str, iface: usize) -> usize {
    if let Some(&i) = call.tags.get(tag) {
        return i;
    }
    call.parts.push(Participant {
        tag: tag.to_string(),
        label: None,
        created: SystemTime::now(),
        signal: None,
        iface,
        sides: Vec::new(),
        peer: None,
        asymmetric: false,
        strict: false,
    });
    let i = call.parts.len() - 1;
    call.tags.insert(tag.to_string(), i);
    i
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

/// The refusal for a request whose two tags resolve to one participant
/// (equal tags, or a tag that is an alias of the other side's).
fn same_participant(call_id: &str, from_tag: &str, to_tag: &str) -> NgError {
    NgError(format!(
        "from-tag {from_tag:?} and to-tag {to_tag:?} name the same participant of call {call_id:?}: \
         a participant cannot be its own peer"
    ))
}

fn is_secure(proto: &str) -> bool {
    proto.contains("SAVP")
}

/// The section's first format as `name/rate`: its rtpmap, else the RFC 3551
/// name of a static payload type.
fn first_codec(m: &SdpMedia) -> Option<String> {
    let first = m.formats().into_iter().next()?;
    let mapped = m.attrs("rtpmap").find_map(|v| {
        let (pt, enc) = v.split_once(' ')?;
        (pt == first).then(|| enc.trim().to_string())
    });
    mapped.or_else(|| {
        let name = match first.as_str() {
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

/// Which address to send to: `media address` > SIP source > SDP.
fn sdp_conn(from_sdp: Option<IpAddr>, o: &Options) -> Option<IpAddr> {
    if let Some(a) = o.media_address {
        return Some(a);
    }
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
    if !o.codec_offer.is_empty() {
        trial.prefer_formats(&o.codec_offer);
    }
    *m = trial;
}
