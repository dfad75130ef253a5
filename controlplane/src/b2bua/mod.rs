//! The B2BUA: each call is an A-leg dialog with the caller and a B-leg
//! dialog with the callee, with the media anchored in Tollgate's relay.
//!
//! A plain state machine like the transactions under it: it takes `now`
//! and datagrams, and queues datagrams to send, records for the CDR spool
//! and timers. The SIP server owns the socket, the clock and the spool. The
//! SDP of each leg is rewritten by the same media session manager the NG
//! server uses, so flows are in the data plane before the SDP that points
//! at them leaves.
//!
//! What a call does: INVITE from A (100 Trying at once) -> dialplan ->
//! media offer -> INVITE to B -> 18x relayed (183 with SDP: early media) ->
//! 2xx: ACK to B, 200 to A -> BYE from either side ends both. CANCEL from
//! A cancels B; a ring timeout gives A 480 and cancels B; B's failures are
//! relayed; re-INVITEs and other in-dialog requests are relayed to the
//! other leg, re-INVITE SDP through the media manager.

pub mod cdr;
pub mod config;
pub mod dialplan;
pub mod ids;
pub mod lcr;
pub mod leg;
pub mod registrar;

use crate::media::options::Options;
use crate::media::{MediaPlane, Sessions};
use crate::time::Now;
use cdr::{failure_status, CallFacts, Outcome};
use config::SipConfig;
use dialplan::{Decision, Dialplan};
use ids::Ids;
use lcr::{Candidate, LcrTable};
use leg::{Leg, Side};
use registrar::Registrar;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tollgate_cdr::model::{Disposition, HangupBy, Record};
use tollgate_sip::digest::{Authenticator, Credentials, Rejection};
use tollgate_sip::message::{reason_phrase, Message, NameAddr, Uri};
use tollgate_sip::transaction::{
    Client, ClientEvent, ClientState, Key, Server, ServerEvent, TimerConfig,
};

/// How a message travels: datagrams, or a stream connection (on which
/// nothing is retransmitted and responses go back the way requests came).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
}

impl Transport {
    pub fn token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
        }
    }
}

/// The media side a call needs: the session manager and the data plane.
pub struct Media<'a> {
    pub sessions: &'a mut Sessions,
    pub plane: &'a mut dyn MediaPlane,
}

/// Counters since start.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub received: u64,
    /// Datagrams that are not SIP messages (dropped: nothing to answer).
    pub malformed: u64,
    /// Requests answered 400.
    pub bad_requests: u64,
    /// INVITEs refused with 503 for max_calls / max_cps.
    pub overload: u64,
    pub calls: u64,
    pub answered: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// INVITE sent to B, no final yet.
    Calling,
    Answered,
}

struct Call {
    facts: CallFacts,
    a: Leg,
    b: Leg,
    phase: Phase,
    /// A's INVITE server transaction.
    a_invite: Key,
    /// INVITE server transactions waiting for the ACK of our 2xx: the
    /// side, CSeq number and transaction of each.
    server_invites: Vec<(Side, u32, Key)>,
    /// B's INVITE client transaction, and its request (for CANCEL).
    b_invite: ClientKey,
    b_invite_req: Message,
    /// The ACK we sent for B's 2xx, resent when the 2xx is.
    b_ack: Option<Message>,
    ring_deadline: Option<Instant>,
    /// The negotiated session interval (RFC 4028) and when the session
    /// ends unless a re-INVITE or UPDATE refreshes it.
    session_interval: Option<Duration>,
    session_deadline: Option<Instant>,
    /// Gateways still to try if the current one fails (least-cost routing).
    candidates: VecDeque<Candidate>,
    /// B has sent a provisional (a CANCEL may go out, §9.1).
    b_provisional: bool,
    media: bool,
}

type ClientKey = (String, String);

/// What a timer-heap entry is for. Entries are never removed: one whose
/// time no longer matches its owner's is stale and skipped when it pops.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Due {
    Server(Key),
    Client(ClientKey),
    Ring(String),
    Session(String),
    Ping,
    /// A look at answered calls' media for the media timeout.
    Media,
}

#[derive(Clone)]
enum Purpose {
    BInvite,
    Cancel,
    Bye,
    /// An in-dialog request relayed from `server` on the other leg.
    Relay {
        server: Key,
        from: Side,
    },
    /// An OPTIONS health ping to an LCR gateway.
    Ping(i64),
}

struct ClientEntry {
    txn: Client,
    /// The time of this transaction's live entry in the timer heap.
    armed: Option<Instant>,
    to: SocketAddr,
    call: String,
    purpose: Purpose,
}

struct ServerEntry {
    txn: Server,
    /// The time of this transaction's live entry in the timer heap.
    armed: Option<Instant>,
    to: SocketAddr,
    call: Option<String>,
}

pub struct B2bua {
    cfg: SipConfig,
    timers: TimerConfig,
    dialplan: Dialplan,
    /// Our address in Via and Contact.
    local: SocketAddr,
    contact: String,
    calls: HashMap<String, Call>,
    /// (Call-ID, our tag) of each leg to (call, side).
    dialogs: HashMap<(String, String), (String, Side)>,
    servers: HashMap<Key, ServerEntry>,
    clients: HashMap<ClientKey, ClientEntry>,
    out: VecDeque<(Transport, SocketAddr, Vec<u8>)>,
    records: Vec<Record>,
    ids: Ids,
    /// Start of the current one-second window and INVITEs accepted in it.
    cps_window: (Instant, u32),
    registrar: Registrar,
    auth: Authenticator,
    /// Peers reached over a stream (TCP or TLS): those whose messages came
    /// over one and the targets whose URI asks for TCP. Everyone else is UDP.
    streams: HashMap<SocketAddr, Transport>,
    /// Every pending timer, earliest first: handling them costs
    /// O(log n) each instead of a scan of every transaction.
    due: BinaryHeap<Reverse<(Instant, Due)>>,
    lcr: LcrTable,
    /// Gateway health from OPTIONS pings; absent means not yet known (up).
    health: HashMap<i64, bool>,
    /// Health changes not yet written to the LCR database.
    health_changes: Vec<(i64, bool, i64)>,
    next_ping: Option<Instant>,
    /// The next look at answered calls' media for the media timeout
    /// (armed while any call is answered).
    media_check: Option<Instant>,
    /// Calls to end once the current input is handled (a missing ACK
    /// is noticed where the media manager is not at hand).
    pending_end: Vec<(String, HangupBy, &'static str)>,
    pub counters: Counters,
}

/// Puts a transaction's next timer on the heap unless it is there already.
fn arm(
    heap: &mut BinaryHeap<Reverse<(Instant, Due)>>,
    armed: &mut Option<Instant>,
    next: Option<Instant>,
    due: impl FnOnce() -> Due,
) {
    if let Some(t) = next.filter(|t| *armed != Some(*t)) {
        *armed = Some(t);
        heap.push(Reverse((t, due())));
    }
}

/// NG options for SDP the B2BUA rewrites: `from` is where the SDP's
/// sender signalled from; origin and session connection become ours.
fn media_options(from: std::net::IpAddr) -> Options {
    Options {
        received_from: Some(from),
        replace_origin: true,
        replace_session_connection: true,
        ..Options::default()
    }
}

fn call_mut<'a>(calls: &'a mut HashMap<String, Call>, id: &str) -> &'a mut Call {
    calls
        .get_mut(id)
        .expect("the caller checked the call exists")
}

/// RFC 4028 headers a B2BUA carries from one leg to the other.
const SESSION_TIMER_HEADERS: [&str; 4] = ["Session-Expires", "Min-SE", "Supported", "Require"];

fn copy_headers(from: &Message, to: &mut Message, names: &[&str]) {
    for h in names {
        if let Some(v) = from.header(h) {
            to.set_header(h, v);
        }
    }
}

/// The delta-seconds of a Session-Expires header.
fn session_expires(m: &Message) -> Option<u64> {
    m.header("Session-Expires")?
        .split(';')
        .next()?
        .trim()
        .parse()
        .ok()
}

fn sdp_of(m: &Message) -> Option<String> {
    let is_sdp = m
        .header("Content-Type")
        .is_some_and(|t| t.to_ascii_lowercase().starts_with("application/sdp"));
    (is_sdp && !m.body.is_empty()).then(|| String::from_utf8_lossy(&m.body).into_owned())
}

fn with_sdp(mut m: Message, sdp: Option<String>) -> Message {
    if let Some(s) = sdp {
        m.set_header("Content-Type", "application/sdp");
        m.body = s.into_bytes();
    }
    m
}

fn user_of(v: Option<&str>) -> Option<String> {
    let v = v?;
    let uri = match NameAddr::parse(v) {
        Ok(n) => n.uri,
        Err(_) => v.to_string(),
    };
    Uri::parse(&uri).ok()?.user
}

impl B2bua {
    /// A B2BUA at `local` (our address in Via and Contact) whose tags,
    /// branches, Call-IDs and nonce key come from `ids`.
    pub fn new(cfg: SipConfig, local: SocketAddr, now: Now, mut ids: Ids) -> Self {
        let contact = format!("<sip:{local}>");
        let auth = Authenticator::new(
            &cfg.realm,
            ids.key(),
            Duration::from_secs(300),
            cfg.digest_algorithms.clone(),
        );
        B2bua {
            timers: cfg.timers(),
            dialplan: Dialplan::new(&cfg.routes),
            cfg,
            local,
            contact,
            calls: HashMap::new(),
            dialogs: HashMap::new(),
            servers: HashMap::new(),
            clients: HashMap::new(),
            out: VecDeque::new(),
            records: Vec::new(),
            ids,
            cps_window: (now.mono, 0),
            pending_end: Vec::new(),
            counters: Counters::default(),
            registrar: Registrar::default(),
            auth,
            streams: HashMap::new(),
            due: BinaryHeap::new(),
            lcr: LcrTable::default(),
            health: HashMap::new(),
            health_changes: Vec::new(),
            next_ping: None,
            media_check: None,
        }
    }

    fn transport_of(&self, peer: SocketAddr) -> Transport {
        self.streams.get(&peer).copied().unwrap_or(Transport::Udp)
    }

    fn reliable(&self, peer: SocketAddr) -> bool {
        self.transport_of(peer) != Transport::Udp
    }

    /// Our Via for a request to `to`, and its branch.
    fn via(&mut self, to: SocketAddr) -> (String, String) {
        let branch = format!("z9hG4bK{}", self.ids.id());
        let t = self.transport_of(to).token();
        (
            format!("SIP/2.0/{t} {};branch={branch};rport", self.local),
            branch,
        )
    }

    pub fn poll_transmit(&mut self) -> Option<(Transport, SocketAddr, Vec<u8>)> {
        self.out.pop_front()
    }

    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// The earliest timer of any transaction or call (possibly a stale
    /// one: waking early costs a heap pop).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((t, _))| *t)
    }

    fn send(&mut self, to: SocketAddr, m: &Message) {
        self.out
            .push_back((self.transport_of(to), to, m.to_bytes()));
    }

    /// One datagram from `from`.
    pub fn on_datagram(&mut self, now: Now, from: SocketAddr, bytes: &[u8], media: &mut Media) {
        self.on_message(now, Transport::Udp, from, bytes, media);
    }

    /// One message read from the TCP or TLS connection with `from`.
    pub fn on_stream_message(
        &mut self,
        now: Now,
        transport: Transport,
        from: SocketAddr,
        bytes: &[u8],
        media: &mut Media,
    ) {
        self.on_message(now, transport, from, bytes, media);
    }

    fn on_message(
        &mut self,
        now: Now,
        transport: Transport,
        from: SocketAddr,
        bytes: &[u8],
        media: &mut Media,
    ) {
        self.counters.received += 1;
        match transport {
            Transport::Udp => self.streams.remove(&from),
            stream => self.streams.insert(from, stream),
        };
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return; // keep-alive
        }
        let parsed = Message::parse(bytes).and_then(|m| match m.validate() {
            Ok(()) => Ok(m),
            Err(why) => Err(tollgate_sip::message::ParseError::Message(why)),
        });
        let msg = match parsed {
            Ok(m) => m,
            Err(e) => return self.on_malformed(from, bytes, e),
        };
        match msg.method().map(str::to_string) {
            None => self.on_response(now, msg, media),
            Some(m) if m == "ACK" => self.on_ack(now, msg),
            Some(m) => self.on_request(now, from, &m, msg, media),
        }
    }

    /// A datagram that is not a valid message: a request whose headers can
    /// still be read is answered 400 with the reason; the rest is dropped.
    fn on_malformed(
        &mut self,
        from: SocketAddr,
        bytes: &[u8],
        e: tollgate_sip::message::ParseError,
    ) {
        let why = e.to_string().replace(['\r', '\n'], " ");
        let answerable = Message::parse_lenient(bytes)
            .ok()
            .filter(|m| m.method().is_some_and(|x| x != "ACK") && m.top_via().is_ok());
        match answerable {
            Some(req) => {
                self.counters.bad_requests += 1;
                tracing::debug!(%from, why, "bad request; 400");
                let mut r = Message::response_to(&req, 400, &why, None);
                r.headers.retain(|h| h.name != "CSeq" || req.cseq().is_ok());
                self.send(from, &r);
            }
            None => {
                self.counters.malformed += 1;
                tracing::debug!(%from, why, "not an answerable SIP message; dropped");
            }
        }
    }

    fn on_request(
        &mut self,
        now: Now,
        from: SocketAddr,
        method: &str,
        req: Message,
        media: &mut Media,
    ) {
        let Some(key) = Key::server(&req) else {
            let r = Message::response_to(&req, 400, "Missing Via branch", None);
            self.counters.bad_requests += 1;
            self.send(from, &r);
            return;
        };
        if let Some(e) = self.servers.get_mut(&key) {
            e.txn.on_request(now.mono, &req); // a retransmission
            self.pump_server(&key);
            return;
        }
        match method {
            "INVITE" if req.to_tag().is_none() => self.on_invite(now, from, key, req, media),
            "REGISTER" => {
                let r = self.on_register(now, from, &req);
                self.respond_new(now, from, key, req, r, None);
            }
            "CANCEL" => self.on_cancel(now, from, key, req, media),
            _ if req.to_tag().is_some() => self.in_dialog(now, from, key, req, media),
            "OPTIONS" => {
                let mut r = Message::response_to(&req, 200, "OK", Some(&self.ids.id()));
                r.add_header("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO");
                self.respond_new(now, from, key, req, r, None);
            }
            _ => {
                let r = Message::response_to(&req, 481, reason_phrase(481), None);
                self.respond_new(now, from, key, req, r, None);
            }
        }
    }

    /// Answers `req` at once through a new server transaction.
    fn respond_new(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        req: Message,
        resp: Message,
        call: Option<String>,
    ) {
        let mut txn = Server::new(req, now.mono, self.timers, self.reliable(from));
        txn.respond(now.mono, resp);
        self.servers.insert(
            key.clone(),
            ServerEntry {
                txn,
                armed: None,
                to: from,
                call,
            },
        );
        self.pump_server(&key);
    }

    /// Checks the digest credentials in `header`: the user's name, or the
    /// response to send (a challenge with `challenge` 401/407, or 403).
    fn authenticate(
        &self,
        now: Now,
        req: &Message,
        header: &str,
        challenge: u16,
    ) -> Result<String, Message> {
        let method = req.method().unwrap_or_default();
        let challenged = |stale: bool| {
            let name = if challenge == 401 {
                "WWW-Authenticate"
            } else {
                "Proxy-Authenticate"
            };
            let mut r = Message::response_to(req, challenge, reason_phrase(challenge), None);
            for c in self.auth.challenges(now.wall, stale) {
                r.add_header(name, c);
            }
            r
        };
        let forbidden = |why: &str| {
            tracing::info!(method, why, "credentials refused");
            Message::response_to(req, 403, reason_phrase(403), None)
        };
        let Some(h) = req.header(header) else {
            return Err(challenged(false));
        };
        let c = Credentials::parse(h).map_err(|e| forbidden(&e))?;
        let Some(user) = self.cfg.users.iter().find(|u| u.name == c.username) else {
            return Err(forbidden("unknown user"));
        };
        match self.auth.verify(now.wall, method, &c, &user.password) {
            Ok(()) => Ok(c.username),
            Err(Rejection::Stale) => Err(challenged(true)),
            Err(Rejection::Invalid(why)) => Err(forbidden(&why)),
        }
    }

    /// A REGISTER: authenticated, then bindings changed; the response.
    fn on_register(&mut self, now: Now, from: SocketAddr, req: &Message) -> Message {
        if self.cfg.users.is_empty() {
            return Message::response_to(req, 403, "No Users Configured", None);
        }
        let user = match self.authenticate(now, req, "Authorization", 401) {
            Ok(u) => u,
            Err(r) => return r,
        };
        let aor = user_of(req.header("To")).unwrap_or_default();
        if aor != user {
            return Message::response_to(req, 403, "Not Your Address of Record", None);
        }
        let change = match registrar::requested(req, self.cfg.default_expires_secs) {
            Ok(c) => c,
            Err(why) => return Message::response_to(req, 400, &why, None),
        };
        let change = match change {
            registrar::Change::Set(list) => {
                let min = self.cfg.min_expires_secs;
                if list.iter().any(|(_, e)| *e != 0 && *e < min) {
                    let mut r = Message::response_to(req, 423, reason_phrase(423), None);
                    r.add_header("Min-Expires", min.to_string());
                    return r;
                }
                let max = self.cfg.max_expires_secs;
                registrar::Change::Set(list.into_iter().map(|(c, e)| (c, e.min(max))).collect())
            }
            all => all,
        };
        self.registrar.apply(&user, change, from, now.mono);
        let mut r = Message::response_to(req, 200, "OK", Some(&self.ids.id()));
        for b in self.registrar.bindings(&user, now.mono) {
            let left = b.expires.saturating_duration_since(now.mono).as_secs();
            r.add_header("Contact", format!("<{}>;expires={left}", b.contact));
        }
        tracing::info!(user, %from, "registered");
        r
    }

    fn overloaded(&mut self, now: Now) -> bool {
        if now.mono.duration_since(self.cps_window.0) >= Duration::from_secs(1) {
            self.cps_window = (now.mono, 0);
        }
        if self.calls.len() >= self.cfg.max_calls || self.cps_window.1 >= self.cfg.max_cps {
            return true;
        }
        self.cps_window.1 += 1;
        false
    }

    fn on_invite(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        invite: Message,
        media: &mut Media,
    ) {
        let retry_after = self.cfg.retry_after_secs.to_string();
        let reject = |code: u16, reason: &str| {
            let mut r = Message::response_to(&invite, code, reason, None);
            if code == 503 {
                r.add_header("Retry-After", retry_after.clone());
            }
            r
        };
        let ours = format!("{}", self.local);
        let looped = invite.header_values("Via").iter().any(|v| {
            tollgate_sip::message::Via::parse(v)
                .is_ok_and(|v| format!("{}:{}", v.host, v.port.unwrap_or(5060)) == ours)
        });
        let call_id = invite.call_id().unwrap_or_default().to_string();
        let invite_cseq = invite.cseq().map(|(n, _)| n).unwrap_or(0);
        let early = if invite.max_forwards() == Some(0) {
            Some(reject(483, reason_phrase(483)))
        } else if looped || self.calls.contains_key(&call_id) {
            Some(reject(482, reason_phrase(482)))
        } else if session_expires(&invite).is_some_and(|se| se < self.cfg.min_se_secs) {
            let mut r = reject(422, reason_phrase(422));
            r.add_header("Min-SE", self.cfg.min_se_secs.to_string());
            Some(r)
        } else if self.overloaded(now) {
            self.counters.overload += 1;
            Some(reject(503, "Overloaded"))
        } else {
            None
        };
        let early = early.or_else(|| {
            let trusted = self.cfg.trusted.iter().any(|n| n.contains(&from.ip()));
            if self.cfg.users.is_empty() || trusted {
                return None;
            }
            self.authenticate(now, &invite, "Proxy-Authorization", 407)
                .err()
        });
        if let Some(r) = early {
            self.respond_new(now, from, key, invite, r, None);
            return;
        }
        self.counters.calls += 1;
        let a_tag = self.ids.id();
        let number = user_of(invite.request_uri()).unwrap_or_default();
        let mut facts = CallFacts {
            call_id: call_id.clone(),
            start: now.wall,
            answered: None,
            from_number: user_of(invite.header("From")).unwrap_or_default(),
            to_number: number.clone(),
            from_uri: NameAddr::parse(invite.header("From").unwrap_or_default())
                .ok()
                .map(|n| n.uri),
            to_uri: NameAddr::parse(invite.header("To").unwrap_or_default())
                .ok()
                .map(|n| n.uri),
            request_uri: invite.request_uri().map(str::to_string),
            source_ip: from.ip(),
            destination_ip: None,
            trunk: None,
            carrier: None,
            gateway: None,
        };
        let a = Leg::from_invite(&invite, a_tag.clone(), from);
        let txn = Server::new(invite.clone(), now.mono, self.timers, self.reliable(from));
        self.servers.insert(
            key.clone(),
            ServerEntry {
                txn,
                armed: None,
                to: from,
                call: Some(call_id.clone()),
            },
        );
        self.pump_server(&key);
        self.records.push(facts.started());

        let fail = |me: &mut Self, facts: &CallFacts, a: &Leg, code: u16, reason: &str| {
            let r = Message::response_to(&invite, code, reason, Some(&a.local_tag));
            me.respond_server(now, &key, r);
            let out = Outcome {
                status: Disposition::Failed,
                code,
                reason: reason.to_string(),
                by: HangupBy::Relay,
            };
            let t = me.transport_of(a.addr).token().to_ascii_lowercase();
            let cdr = facts.cdr(None, &out, a, None, [&t, ""], now.wall);
            me.records.push(Record::Ended(Box::new(cdr)));
        };
        let mut candidates = VecDeque::new();
        let decision = match self.dialplan.decide(&number) {
            Decision::Lcr => {
                let health = &self.health;
                let mut list: VecDeque<Candidate> = self
                    .lcr
                    .route(&number, |g| health.get(&g).copied().unwrap_or(true))
                    .into();
                match list.pop_front() {
                    Some(first) => {
                        facts.carrier = Some(first.carrier.clone());
                        facts.gateway = Some(first.gateway.to_string());
                        candidates = list;
                        Decision::Forward {
                            uri: first.uri,
                            addr: first.addr,
                        }
                    }
                    None => Decision::Reject {
                        code: 503,
                        reason: "No Route Available".into(),
                    },
                }
            }
            Decision::Registered => match self.registrar.lookup(&number, now.mono) {
                Some(b) => Decision::Forward {
                    uri: b.contact.clone(),
                    addr: b.addr,
                },
                None => Decision::Reject {
                    code: 480,
                    reason: "Not Registered".into(),
                },
            },
            d => d,
        };
        let (uri, addr) = match decision {
            Decision::Lcr => return fail(self, &facts, &a, 503, "No Route Available"),
            Decision::Forward { uri, addr } => (uri, addr),
            Decision::Registered => return fail(self, &facts, &a, 480, "Not Registered"),
            Decision::Reject { code, reason } => {
                tracing::info!(
                    call_id,
                    number,
                    code,
                    reason,
                    "call rejected by the dialplan"
                );
                return fail(self, &facts, &a, code, &reason);
            }
        };
        let Some(offer) = sdp_of(&invite) else {
            return fail(self, &facts, &a, 488, "SDP Offer Required");
        };
        let o = media_options(from.ip());
        let a_from_tag = a.remote_tag.clone().unwrap_or_default();
        let b_offer =
            match media
                .sessions
                .offer(now, media.plane, &call_id, &a_from_tag, None, &offer, &o)
            {
                Ok(s) => s,
                Err(e) => {
                    media.sessions.take_records();
                    tracing::warn!(call_id, reason = %e.0, "offer refused");
                    return fail(
                        self,
                        &facts,
                        &a,
                        488,
                        &format!("Not Acceptable Here ({})", e.0),
                    );
                }
            };
        // Our records replace the session manager's NG-style start, and
        // this B2BUA, not the session manager's timeouts, ends the call.
        media.sessions.take_records();
        media.sessions.set_managed(&call_id);
        facts.trunk = Some(uri.clone());
        facts.destination_ip = Some(addr.ip());

        let b_call_id = format!("{}@tollgate", self.ids.id());
        let b_tag = self.ids.id();
        let from_uri = match NameAddr::parse(invite.header("From").unwrap_or_default()) {
            Ok(n) => n.without_tag().to_string(),
            Err(_) => format!("<sip:{}@{}>", facts.from_number, self.local.ip()),
        };
        let mut b = Leg::outgoing(
            b_call_id,
            b_tag,
            from_uri,
            format!("<{uri}>"),
            uri.clone(),
            addr,
        );
        let asked = Uri::parse(&uri)
            .ok()
            .and_then(|u| u.param("transport").map(str::to_ascii_lowercase));
        match asked.as_deref() {
            Some("tcp") => {
                self.streams.insert(addr, Transport::Tcp);
            }
            Some("tls") => {
                self.streams.insert(addr, Transport::Tls);
            }
            _ => {}
        }
        let (via, branch) = self.via(addr);
        let contact = self.contact.clone();
        let mut b_req = b.request("INVITE", via, &contact, None);
        let mf = invite.max_forwards().unwrap_or(70).saturating_sub(1);
        b_req.set_header("Max-Forwards", mf.to_string());
        copy_headers(&invite, &mut b_req, &SESSION_TIMER_HEADERS);
        let b_req = with_sdp(b_req, Some(b_offer));
        let ck = (branch, "INVITE".to_string());
        self.start_client(
            now,
            ck.clone(),
            b_req.clone(),
            addr,
            &call_id,
            Purpose::BInvite,
        );
        self.dialogs.insert(
            (a.call_id.clone(), a.local_tag.clone()),
            (call_id.clone(), Side::A),
        );
        self.dialogs.insert(
            (b.call_id.clone(), b.local_tag.clone()),
            (call_id.clone(), Side::B),
        );
        tracing::info!(call_id, number, target = uri, "call routed");
        let ring = now.mono + Duration::from_secs(self.cfg.ring_timeout_secs);
        self.due.push(Reverse((ring, Due::Ring(call_id.clone()))));
        self.calls.insert(
            call_id,
            Call {
                facts,
                a,
                b,
                phase: Phase::Calling,
                server_invites: vec![(Side::A, invite_cseq, key.clone())],
                a_invite: key,
                b_invite: ck,
                b_invite_req: b_req,
                b_ack: None,
                ring_deadline: Some(ring),
                session_interval: None,
                session_deadline: None,
                candidates,
                b_provisional: false,
                media: true,
            },
        );
    }

    fn start_client(
        &mut self,
        now: Now,
        key: ClientKey,
        req: Message,
        to: SocketAddr,
        call: &str,
        purpose: Purpose,
    ) {
        let txn = Client::new(req, now.mono, self.timers, self.reliable(to));
        self.clients.insert(
            key.clone(),
            ClientEntry {
                txn,
                armed: None,
                to,
                call: call.to_string(),
                purpose,
            },
        );
        self.pump_client(&key, now, None);
    }

    /// Sends a response through an existing server transaction.
    fn respond_server(&mut self, now: Now, key: &Key, resp: Message) {
        if let Some(e) = self.servers.get_mut(key) {
            e.txn.respond(now.mono, resp);
        }
        self.pump_server(key);
    }

    /// Sends what a server transaction queued; drops it once terminated.
    fn pump_server(&mut self, key: &Key) {
        let Some(e) = self.servers.get_mut(key) else {
            return;
        };
        let to = e.to;
        let mut sends = Vec::new();
        while let Some(m) = e.txn.poll_transmit() {
            sends.push(m);
        }
        let events: Vec<ServerEvent> = std::iter::from_fn(|| e.txn.poll_event()).collect();
        let call = e.call.clone();
        if e.txn.is_terminated() {
            self.servers.remove(key);
        } else {
            arm(&mut self.due, &mut e.armed, e.txn.poll_timeout(), || {
                Due::Server(key.clone())
            });
        }
        for m in sends {
            self.send(to, &m);
        }
        for ev in events {
            let ServerEvent::NoAck = ev;
            if let Some(c) = call
                .as_ref()
                .filter(|c| self.calls.get(*c).is_some_and(|c| &c.a_invite == key))
            {
                tracing::warn!(call_id = c, "no ACK for our 2xx; ending the call");
                let c = c.clone();
                self.pending_end
                    .push((c, HangupBy::Relay, "no ACK from the caller"));
            }
        }
    }

    /// Sends what a client transaction queued and acts on its events.
    fn pump_client(&mut self, key: &ClientKey, now: Now, mut media: Option<&mut Media>) {
        let Some(e) = self.clients.get_mut(key) else {
            return;
        };
        let to = e.to;
        let sends: Vec<Message> = std::iter::from_fn(|| e.txn.poll_transmit()).collect();
        let events: Vec<ClientEvent> = std::iter::from_fn(|| e.txn.poll_event()).collect();
        let call = e.call.clone();
        let purpose = e.purpose.clone();
        if e.txn.is_terminated() {
            self.clients.remove(key);
        } else {
            arm(&mut self.due, &mut e.armed, e.txn.poll_timeout(), || {
                Due::Client(key.clone())
            });
        }
        for m in sends {
            self.send(to, &m);
        }
        for ev in events {
            match (&purpose, media.as_deref_mut()) {
                (Purpose::BInvite, Some(m)) => self.on_b_invite_event(now, key, &call, to, ev, m),
                (Purpose::Relay { server, from }, Some(m)) => {
                    self.on_relay_event(now, &call, server, *from, ev, m)
                }
                (Purpose::Ping(g), _) => match ev {
                    ClientEvent::Response(r) if r.code().is_some_and(|c| c >= 200) => {
                        self.gateway_health(now, *g, true)
                    }
                    ClientEvent::Timeout => self.gateway_health(now, *g, false),
                    ClientEvent::Response(_) => {}
                },
                _ => {}
            }
        }
    }

    fn on_response(&mut self, now: Now, resp: Message, media: &mut Media) {
        let Some(k) = Key::client(&resp) else { return };
        let key = (k.branch, k.method);
        match self.clients.get_mut(&key) {
            Some(e) => e.txn.on_response(now.mono, resp),
            None => return, // late or stray: nothing waits for it
        }
        self.pump_client(&key, now, Some(media));
        self.finish_pending(now, media);
    }

    fn on_b_invite_event(
        &mut self,
        now: Now,
        key: &ClientKey,
        call_id: &str,
        to: SocketAddr,
        ev: ClientEvent,
        media: &mut Media,
    ) {
        if !self.calls.contains_key(call_id) {
            // The call is over (cancelled, timed out) with this INVITE
            // pending: B's first provisional lets the CANCEL go (§9.1); a
            // late 2xx still needs its ACK, then a BYE.
            if let ClientEvent::Response(r) = ev {
                match r.code().unwrap_or(0) {
                    101..=199 => self.cancel_invite(now, key, to),
                    200..=299 => self.ack_and_bye_orphan(now, to, &r),
                    _ => {}
                }
            }
            return;
        }
        let resp = match ev {
            ClientEvent::Timeout => {
                if !self.try_next_gateway(now, call_id) {
                    self.fail_call(
                        now,
                        call_id,
                        (408, reason_phrase(408)),
                        HangupBy::Relay,
                        media,
                    );
                }
                return;
            }
            ClientEvent::Response(r) => r,
        };
        let code = resp.code().unwrap_or(500);
        match code {
            100 => {}
            101..=199 => {
                let call = self.calls.get_mut(call_id).expect("checked");
                call.b_provisional = true;
                call.b.update_from_response(&resp);
                let sdp = sdp_of(&resp)
                    .and_then(|answer| self.media_answer(now, call_id, &answer, media));
                self.answer_a(now, call_id, &resp, code, sdp);
            }
            200..=299 => {
                let call = self.calls.get_mut(call_id).expect("checked");
                if call.phase == Phase::Answered {
                    // A retransmitted 2xx: our ACK was lost.
                    if let Some(ack) = call.b_ack.clone() {
                        let to = call.b.addr;
                        self.send(to, &ack);
                    }
                    return;
                }
                call.b.update_from_response(&resp);
                let ack_cseq = call.b_invite_req.cseq().map(|(n, _)| n).unwrap_or(1);
                let b_addr = call.b.addr;
                let (via, _) = self.via(b_addr);
                let contact = self.contact.clone();
                let call = self.calls.get_mut(call_id).expect("checked");
                let ack = call.b.request("ACK", via, &contact, Some(ack_cseq));
                let to = call.b.addr;
                call.b_ack = Some(ack.clone());
                self.send(to, &ack);
                let sdp = sdp_of(&resp)
                    .and_then(|answer| self.media_answer(now, call_id, &answer, media));
                let call = self.calls.get_mut(call_id).expect("checked");
                call.phase = Phase::Answered;
                call.ring_deadline = None;
                call.facts.answered = Some(now.wall);
                self.counters.answered += 1;
                if let Some(r) = call.facts.answered_record() {
                    self.records.push(r);
                }
                let interval = session_expires(&resp)
                    .or_else(|| session_expires(&call.b_invite_req))
                    .map(Duration::from_secs);
                self.arm_session(now, call_id, interval);
                self.arm_media_check(now, media);
                self.answer_a(now, call_id, &resp, code, sdp);
            }
            _ => {
                // 408 and 5xx: the next gateway, if least-cost routing gave more.
                let failover = code == 408 || (500..600).contains(&code);
                if failover && self.try_next_gateway(now, call_id) {
                    return;
                }
                let reason = resp.reason().to_string();
                self.fail_call(now, call_id, (code, &reason), HangupBy::Callee, media);
            }
        }
    }

    /// A provisional or 2xx response to A's INVITE, with our tag and Contact.
    fn answer_a(
        &mut self,
        now: Now,
        call_id: &str,
        resp: &Message,
        code: u16,
        sdp: Option<String>,
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let Some(req) = self.servers.get(&call.a_invite).map(|e| e.txn.request()) else {
            return;
        };
        let mut r = Message::response_to(req, code, resp.reason(), Some(&call.a.local_tag));
        r.add_header("Contact", self.contact.clone());
        copy_headers(resp, &mut r, &SESSION_TIMER_HEADERS);
        let key = call.a_invite.clone();
        self.respond_server(now, &key, with_sdp(r, sdp));
    }

    /// B's answer SDP through the media manager; the SDP for A.
    fn media_answer(
        &mut self,
        now: Now,
        call_id: &str,
        answer: &str,
        media: &mut Media,
    ) -> Option<String> {
        let call = self.calls.get(call_id)?;
        let a_tag = call.a.remote_tag.clone().unwrap_or_default();
        let b_tag = call.b.remote_tag.clone().unwrap_or_default();
        let o = media_options(call.b.addr.ip());
        let r = media
            .sessions
            .answer(now, media.plane, call_id, &a_tag, &b_tag, answer, &o);
        media.sessions.take_records(); // our answered record is the 2xx
        match r {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(call_id, reason = %e.0, "answer SDP refused; relaying without SDP");
                None
            }
        }
    }

    /// The call fails before an answer: `code` to A (unless A already has a
    /// final), then its CDR saying who ended it.
    fn fail_call(
        &mut self,
        now: Now,
        call_id: &str,
        (code, reason): (u16, &str),
        by: HangupBy,
        media: &mut Media,
    ) {
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let key = call.a_invite.clone();
        let a_done = self.servers.get(&key).is_none_or(|e| {
            e.txn
                .last_response()
                .and_then(|r| r.code())
                .is_some_and(|c| c >= 200)
        });
        if !a_done {
            let req = self.servers[&key].txn.request().clone();
            let mut r = Message::response_to(&req, code, reason, Some(&call.a.local_tag));
            if code == 503 {
                r.add_header("Retry-After", self.cfg.retry_after_secs.to_string());
            }
            self.respond_server(now, &key, r);
        }
        let out = Outcome {
            status: failure_status(code),
            code,
            reason: reason.to_string(),
            by,
        };
        self.end_call(now, call_id, out, media);
    }

    /// Removes the call, its media session and dialogs, and writes its CDR.
    fn end_call(&mut self, now: Now, call_id: &str, out: Outcome, media: &mut Media) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        self.dialogs
            .remove(&(call.a.call_id.clone(), call.a.local_tag.clone()));
        self.dialogs
            .remove(&(call.b.call_id.clone(), call.b.local_tag.clone()));
        let mut media_cdr = None;
        if call.media {
            media
                .sessions
                .delete(now, media.plane, call_id, None, None, Some(0));
            for r in media.sessions.take_records() {
                match r {
                    Record::Ended(c) if c.call_id == call_id => media_cdr = Some(*c),
                    other => self.records.push(other),
                }
            }
        }
        let ta = self.transport_of(call.a.addr).token().to_ascii_lowercase();
        let tb = self.transport_of(call.b.addr).token().to_ascii_lowercase();
        let cdr = call.facts.cdr(
            media_cdr,
            &out,
            &call.a,
            Some(&call.b),
            [&ta, &tb],
            now.wall,
        );
        tracing::info!(
            call_id,
            status = out.status.as_str(),
            code = out.code,
            "call ended"
        );
        self.records.push(Record::Ended(Box::new(cdr)));
    }

    /// Cancels B's INVITE: now if B has sent a provisional, else when its
    /// first one reaches the transaction, which outlives the call (§9.1).
    fn send_cancel(&mut self, now: Now, call_id: &str) {
        let Some(call) = self.calls.get(call_id).filter(|c| c.b_provisional) else {
            return;
        };
        let (invite, to) = (call.b_invite.clone(), call.b.addr);
        self.cancel_invite(now, &invite, to);
    }

    /// A CANCEL of our INVITE transaction `invite` to `to`, unless one is
    /// out already or the INVITE is over.
    fn cancel_invite(&mut self, now: Now, invite: &ClientKey, to: SocketAddr) {
        let key = (invite.0.clone(), "CANCEL".to_string());
        if self.clients.contains_key(&key) {
            return;
        }
        let Some(inv) = self.clients.get(invite).map(|e| e.txn.request()) else {
            return;
        };
        let mut c = Message::request("CANCEL", inv.request_uri().unwrap_or_default());
        for h in ["Via", "From", "To", "Call-ID"] {
            if let Some(v) = inv.header_values(h).first() {
                c.add_header(h, *v);
            }
        }
        let n = inv.cseq().map(|(n, _)| n).unwrap_or(1);
        c.add_header("CSeq", format!("{n} CANCEL"));
        c.add_header("Max-Forwards", "70");
        self.start_client(now, key, c, to, "", Purpose::Cancel);
    }

    fn on_cancel(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        cancel: Message,
        media: &mut Media,
    ) {
        let invite_key = Key {
            method: "INVITE".into(),
            ..key.clone()
        };
        let call_id = self
            .servers
            .get(&invite_key)
            .and_then(|e| e.call.clone())
            .filter(|c| self.calls.get(c).is_some_and(|c| c.phase == Phase::Calling));
        let code = if call_id.is_some() { 200 } else { 481 };
        let r = Message::response_to(&cancel, code, reason_phrase(code), None);
        self.respond_new(now, from, key, cancel, r, None);
        let Some(call_id) = call_id else { return };
        tracing::info!(call_id, "caller cancelled");
        self.send_cancel(now, &call_id);
        // 487 to A now; B's 487 later finds the call gone.
        self.fail_call(
            now,
            &call_id,
            (487, reason_phrase(487)),
            HangupBy::Caller,
            media,
        );
    }

    fn on_ack(&mut self, now: Now, ack: Message) {
        if let Some(key) = Key::server(&ack) {
            if let Some(e) = self.servers.get_mut(&key) {
                e.txn.on_request(now.mono, &ack); // ACK of our non-2xx
                self.pump_server(&key);
                return;
            }
        }
        let (Some(cid), Some(tag)) = (ack.call_id(), ack.to_tag()) else {
            return;
        };
        let Some((call_id, side)) = self.dialogs.get(&(cid.to_string(), tag)).cloned() else {
            return;
        };
        // The INVITE (initial or re-INVITE) from that side with this CSeq.
        let n = ack.cseq().map(|(n, _)| n).unwrap_or(0);
        let Some(call) = self.calls.get_mut(&call_id) else {
            return;
        };
        let Some(i) = call
            .server_invites
            .iter()
            .position(|(s, c, _)| *s == side && *c == n)
        else {
            return;
        };
        let (_, _, key) = call.server_invites.swap_remove(i);
        if let Some(e) = self.servers.get_mut(&key) {
            e.txn.acknowledged(now.mono);
        }
        self.pump_server(&key);
    }

    fn in_dialog(&mut self, now: Now, from: SocketAddr, key: Key, req: Message, media: &mut Media) {
        let (Some(cid), Some(tag)) = (req.call_id(), req.to_tag()) else {
            return;
        };
        let Some((call_id, side)) = self.dialogs.get(&(cid.to_string(), tag)).cloned() else {
            let r = Message::response_to(&req, 481, reason_phrase(481), None);
            self.respond_new(now, from, key, req, r, None);
            return;
        };
        let method = req.method().unwrap_or_default().to_string();
        if method == "BYE" {
            let r = Message::response_to(&req, 200, "OK", None);
            self.respond_new(now, from, key, req, r, Some(call_id.clone()));
            let answered = self
                .calls
                .get(&call_id)
                .is_some_and(|c| c.phase == Phase::Answered);
            if answered {
                self.bye(now, &call_id, side.other());
                let by = if side == Side::A {
                    HangupBy::Caller
                } else {
                    HangupBy::Callee
                };
                tracing::info!(call_id, ?by, "hangup");
                self.end_call(
                    now,
                    &call_id,
                    Outcome {
                        status: Disposition::Answered,
                        code: 200,
                        reason: "BYE".into(),
                        by,
                    },
                    media,
                );
            } else if side == Side::A {
                // A BYE in A's early dialog ends the attempt like CANCEL.
                self.send_cancel(now, &call_id);
                self.fail_call(
                    now,
                    &call_id,
                    (487, reason_phrase(487)),
                    HangupBy::Caller,
                    media,
                );
            }
            return;
        }
        if method == "INVITE" && self.reinvite_pending(&call_id, side) {
            // Glare: our own re-INVITE on this leg is unanswered (§14.1).
            let r = Message::response_to(&req, 491, reason_phrase(491), None);
            self.respond_new(now, from, key, req, r, None);
            return;
        }
        // Anything else is relayed to the other leg; SDP goes through media.
        let Some(call) = self.calls.get(&call_id) else {
            return;
        };
        let mut body = sdp_of(&req);
        if let Some(offer) = body.take() {
            let (x, y) = match side {
                Side::A => (&call.a, &call.b),
                Side::B => (&call.b, &call.a),
            };
            let o = media_options(from.ip());
            let (xt, yt) = (
                x.remote_tag.clone().unwrap_or_default(),
                y.remote_tag.clone(),
            );
            match media
                .sessions
                .offer(now, media.plane, &call_id, &xt, yt.as_deref(), &offer, &o)
            {
                Ok(s) => body = Some(s),
                Err(e) => {
                    media.sessions.take_records();
                    let r = Message::response_to(
                        &req,
                        488,
                        &format!("Not Acceptable Here ({})", e.0),
                        None,
                    );
                    self.respond_new(now, from, key, req, r, None);
                    return;
                }
            }
            media.sessions.take_records();
        }
        if method == "INVITE" {
            let n = req.cseq().map(|(n, _)| n).unwrap_or(0);
            call_mut(&mut self.calls, &call_id)
                .server_invites
                .push((side, n, key.clone()));
        }
        let server = Server::new(req.clone(), now.mono, self.timers, self.reliable(from));
        self.servers.insert(
            key.clone(),
            ServerEntry {
                txn: server,
                armed: None,
                to: from,
                call: Some(call_id.clone()),
            },
        );
        self.pump_server(&key);
        let Some((to, branch, mut out)) = self.leg_request(&call_id, side.other(), &method, None)
        else {
            return;
        };
        if let Some(s) = body {
            out = with_sdp(out, Some(s));
        } else if !req.body.is_empty() {
            if let Some(t) = req.header("Content-Type") {
                out.set_header("Content-Type", t);
            }
            out.body = req.body.clone();
        }
        copy_headers(&req, &mut out, &SESSION_TIMER_HEADERS);
        self.start_client(
            now,
            (branch, method),
            out,
            to,
            &call_id,
            Purpose::Relay {
                server: key,
                from: side,
            },
        );
    }

    /// Whether a re-INVITE we relayed onto the call's leg `side` still
    /// waits for its final response.
    fn reinvite_pending(&self, call_id: &str, side: Side) -> bool {
        self.clients.iter().any(|((_, method), e)| {
            method == "INVITE"
                && e.call == call_id
                && matches!(e.purpose, Purpose::Relay { from, .. } if from == side.other())
                && matches!(
                    e.txn.state(),
                    ClientState::Calling | ClientState::Proceeding
                )
        })
    }

    /// A response to a relayed in-dialog request: back to the sender.
    fn on_relay_event(
        &mut self,
        now: Now,
        call_id: &str,
        server: &Key,
        from: Side,
        ev: ClientEvent,
        media: &mut Media,
    ) {
        let Some(req) = self.servers.get(server).map(|e| e.txn.request().clone()) else {
            // Our side answered already (timeout): still ACK a late 2xx.
            if let ClientEvent::Response(r) = ev {
                if r.cseq().is_ok_and(|(_, m)| m == "INVITE")
                    && r.code().is_some_and(|c| (200..300).contains(&c))
                {
                    self.ack_relayed(call_id, from.other(), &r);
                }
            }
            return;
        };
        let resp = match ev {
            ClientEvent::Timeout => {
                let r = Message::response_to(&req, 408, reason_phrase(408), None);
                self.respond_server(now, server, r);
                return;
            }
            ClientEvent::Response(r) => r,
        };
        let code = resp.code().unwrap_or(500);
        if code == 100 {
            return;
        }
        let is_invite = req.method() == Some("INVITE");
        let mut sdp = None;
        if let (true, Some(answer)) = (is_invite && (200..300).contains(&code), sdp_of(&resp)) {
            if let Some(call) = self.calls.get(call_id) {
                let (x, y) = match from {
                    Side::A => (&call.a, &call.b),
                    Side::B => (&call.b, &call.a),
                };
                let o = media_options(y.addr.ip());
                let (xt, yt) = (
                    x.remote_tag.clone().unwrap_or_default(),
                    y.remote_tag.clone().unwrap_or_default(),
                );
                sdp = media
                    .sessions
                    .answer(now, media.plane, call_id, &xt, &yt, &answer, &o)
                    .map_err(|e| tracing::warn!(call_id, reason = %e.0, "re-INVITE answer refused"))
                    .ok();
                media.sessions.take_records();
            }
        }
        if is_invite && (200..300).contains(&code) {
            self.ack_relayed(call_id, from.other(), &resp);
        }
        let refresh = matches!(req.method(), Some("INVITE" | "UPDATE"));
        if refresh && (200..300).contains(&code) {
            let interval = session_expires(&resp).map(Duration::from_secs);
            self.arm_session(now, call_id, interval);
        }
        let mut r = Message::response_to(&req, code, resp.reason(), None);
        if is_invite && code < 300 {
            r.add_header("Contact", self.contact.clone());
        }
        copy_headers(&resp, &mut r, &SESSION_TIMER_HEADERS);
        if sdp.is_some() {
            r = with_sdp(r, sdp);
        } else if !resp.body.is_empty() && !is_invite {
            if let Some(t) = resp.header("Content-Type") {
                r.set_header("Content-Type", t);
            }
            r.body = resp.body.clone();
        }
        self.respond_server(now, server, r);
    }

    /// ACKs a relayed re-INVITE's 2xx on leg `side` ourselves; the
    /// sender's own ACK is absorbed.
    fn ack_relayed(&mut self, call_id: &str, side: Side, resp: &Message) {
        let n = resp.cseq().map(|(n, _)| n).ok();
        if let Some((to, _, ack)) = self.leg_request(call_id, side, "ACK", n) {
            self.send(to, &ack);
        }
    }

    /// A BYE on `side` of the call.
    fn bye(&mut self, now: Now, call_id: &str, side: Side) {
        if let Some((to, branch, bye)) = self.leg_request(call_id, side, "BYE", None) {
            let id = call_id.to_string();
            self.start_client(now, (branch, "BYE".into()), bye, to, &id, Purpose::Bye);
        }
    }

    /// A request in the dialog on `side` of the call (the next CSeq unless
    /// given): where it goes, its branch, the request.
    fn leg_request(
        &mut self,
        call_id: &str,
        side: Side,
        method: &str,
        cseq: Option<u32>,
    ) -> Option<(SocketAddr, String, Message)> {
        let to = self.leg_addr(call_id, side)?;
        let (via, branch) = self.via(to);
        let contact = self.contact.clone();
        let call = self.calls.get_mut(call_id)?;
        let leg = match side {
            Side::A => &mut call.a,
            Side::B => &mut call.b,
        };
        Some((to, branch, leg.request(method, via, &contact, cseq)))
    }

    /// Where requests on `side` of the call go.
    fn leg_addr(&self, call_id: &str, side: Side) -> Option<SocketAddr> {
        let call = self.calls.get(call_id)?;
        Some(match side {
            Side::A => call.a.addr,
            Side::B => call.b.addr,
        })
    }

    /// A 2xx from `to` for an INVITE whose call is gone: ACK it, then BYE
    /// (§13.2.2.4), in the dialog the 2xx made.
    fn ack_and_bye_orphan(&mut self, now: Now, to: SocketAddr, resp: &Message) {
        let (Some(cid), Some(from), Some(callee)) =
            (resp.call_id(), resp.header("From"), resp.header("To"))
        else {
            return;
        };
        let (Ok(from), Ok(callee)) = (NameAddr::parse(from), NameAddr::parse(callee)) else {
            return;
        };
        let strip = |n: NameAddr| n.without_tag().to_string();
        let tag = from.tag().unwrap_or_default();
        let target = callee.uri.clone();
        let mut leg = Leg::outgoing(cid.to_string(), tag, strip(from), strip(callee), target, to);
        leg.update_from_response(resp);
        let n = resp.cseq().map(|(n, _)| n).unwrap_or(1);
        let contact = self.contact.clone();
        let (v, _) = self.via(to);
        let ack = leg.request("ACK", v, &contact, Some(n));
        self.send(to, &ack);
        let (v, branch) = self.via(to);
        let bye = leg.request("BYE", v, &contact, Some(n + 1));
        self.start_client(now, (branch, "BYE".into()), bye, to, "", Purpose::Bye);
    }

    /// Replaces the dialplan (a reloaded config); calls in progress keep
    /// the route they took.
    pub fn set_routes(&mut self, routes: &[config::RouteConfig]) {
        self.dialplan = Dialplan::new(routes);
    }

    /// Registration changes made here, for nodes sharing registrations.
    pub fn take_registrations(&mut self, now: Now) -> Vec<(String, Vec<registrar::Shared>)> {
        self.registrar.export(now)
    }

    /// Another node's bindings for `user`.
    pub fn merge_registration(&mut self, now: Now, user: &str, bindings: &[registrar::Shared]) {
        self.registrar.merge(user, bindings, now);
    }

    /// (Re)starts the call's session timer (RFC 4028) when a session
    /// interval was negotiated: unless refreshed, the call ends with it.
    fn arm_session(&mut self, now: Now, call_id: &str, interval: Option<Duration>) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if interval.is_some() {
            call.session_interval = interval;
        }
        if let Some(i) = call.session_interval {
            let t = now.mono + i;
            call.session_deadline = Some(t);
            self.due
                .push(Reverse((t, Due::Session(call_id.to_string()))));
        }
    }

    /// Replaces the least-cost routing tables (reloaded from SQL).
    pub fn set_lcr(&mut self, now: Now, table: LcrTable) {
        self.lcr = table;
        if self.cfg.lcr.ping_secs > 0 && self.next_ping.is_none() {
            let t = now.mono;
            self.next_ping = Some(t);
            self.due.push(Reverse((t, Due::Ping)));
        }
    }

    /// Gateway health changes since the last call: (gateway, up, Unix ms).
    pub fn take_health(&mut self) -> Vec<(i64, bool, i64)> {
        std::mem::take(&mut self.health_changes)
    }

    fn gateway_health(&mut self, now: Now, gateway: i64, up: bool) {
        if self.health.insert(gateway, up) != Some(up) {
            tracing::info!(gateway, up, "LCR gateway health changed");
        }
        self.health_changes
            .push((gateway, up, crate::media::ms(now.wall)));
    }

    /// OPTIONS to every LCR gateway; answers mark it up, silence down.
    fn ping_gateways(&mut self, now: Now) {
        let gateways: Vec<(i64, SocketAddr)> =
            self.lcr.all_gateways().map(|g| (g.id, g.addr)).collect();
        for (id, addr) in gateways {
            let (via, branch) = self.via(addr);
            let mut m = Message::request("OPTIONS", &format!("sip:{addr}"));
            m.add_header("Via", via);
            m.add_header("Max-Forwards", "70");
            let tag = self.ids.id();
            m.add_header("From", format!("<sip:ping@{}>;tag={tag}", self.local));
            m.add_header("To", format!("<sip:{addr}>"));
            m.add_header("Call-ID", format!("{}@tollgate", self.ids.id()));
            m.add_header("CSeq", "1 OPTIONS");
            self.start_client(
                now,
                (branch, "OPTIONS".into()),
                m,
                addr,
                "",
                Purpose::Ping(id),
            );
        }
    }

    /// After a gateway failed: the call goes to the next candidate as a
    /// new B leg (same offer). False when none is left.
    fn try_next_gateway(&mut self, now: Now, call_id: &str) -> bool {
        let Some(call) = self.calls.get_mut(call_id) else {
            return false;
        };
        if call.phase != Phase::Calling {
            return false;
        }
        let Some(next) = call.candidates.pop_front() else {
            return false;
        };
        tracing::info!(
            call_id,
            carrier = next.carrier,
            gateway = next.gateway,
            "failing over to the next gateway"
        );
        let old = (call.b.call_id.clone(), call.b.local_tag.clone());
        let (local_uri, old_req) = (call.b.local_uri.clone(), call.b_invite_req.clone());
        self.dialogs.remove(&old);
        let (b_call_id, b_tag) = (format!("{}@tollgate", self.ids.id()), self.ids.id());
        let mut b = Leg::outgoing(
            b_call_id,
            b_tag,
            local_uri,
            format!("<{}>", next.uri),
            next.uri.clone(),
            next.addr,
        );
        let (via, branch) = self.via(next.addr);
        let contact = self.contact.clone();
        let mut req = b.request("INVITE", via, &contact, None);
        for h in ["Max-Forwards", "Content-Type"] {
            if let Some(v) = old_req.header(h) {
                req.set_header(h, v);
            }
        }
        req.body = old_req.body.clone();
        let ck = (branch, "INVITE".to_string());
        self.dialogs.insert(
            (b.call_id.clone(), b.local_tag.clone()),
            (call_id.to_string(), Side::B),
        );
        let call = call_mut(&mut self.calls, call_id);
        call.facts.trunk = Some(next.uri.clone());
        call.facts.destination_ip = Some(next.addr.ip());
        call.facts.carrier = Some(next.carrier);
        call.facts.gateway = Some(next.gateway.to_string());
        call.b = b;
        call.b_invite = ck.clone();
        call.b_invite_req = req.clone();
        call.b_provisional = false;
        call.b_ack = None;
        self.start_client(now, ck, req, next.addr, call_id, Purpose::BInvite);
        true
    }

    /// Runs every timer that is due.
    pub fn handle_timeout(&mut self, now: Now, media: &mut Media) {
        while self
            .due
            .peek()
            .is_some_and(|Reverse((t, _))| *t <= now.mono)
        {
            let Some(Reverse((t, due))) = self.due.pop() else {
                break;
            };
            match due {
                Due::Server(k) => {
                    let Some(e) = self.servers.get_mut(&k).filter(|e| e.armed == Some(t)) else {
                        continue;
                    };
                    e.armed = None;
                    e.txn.handle_timeout(now.mono);
                    self.pump_server(&k);
                }
                Due::Client(k) => {
                    let Some(e) = self.clients.get_mut(&k).filter(|e| e.armed == Some(t)) else {
                        continue;
                    };
                    e.armed = None;
                    e.txn.handle_timeout(now.mono);
                    self.pump_client(&k, now, Some(media));
                }
                Due::Ring(call_id) => {
                    if self
                        .calls
                        .get(&call_id)
                        .is_some_and(|c| c.ring_deadline == Some(t))
                    {
                        tracing::info!(call_id, "no answer within the ring timeout");
                        self.send_cancel(now, &call_id);
                        self.fail_call(now, &call_id, (480, "No Answer"), HangupBy::Relay, media);
                    }
                }
                Due::Session(call_id) => {
                    if self
                        .calls
                        .get(&call_id)
                        .is_some_and(|c| c.session_deadline == Some(t))
                    {
                        tracing::info!(call_id, "session timer expired without a refresh");
                        let ended = (Disposition::Answered, HangupBy::Relay);
                        self.hang_up(now, &call_id, ended, "Session timer expired", media);
                    }
                }
                Due::Media => {
                    if self.media_check == Some(t) {
                        self.media_check = None;
                        self.end_silent_calls(now, media);
                        self.arm_media_check(now, media);
                    }
                }
                Due::Ping => {
                    if self.next_ping == Some(t) {
                        let next = now.mono + Duration::from_secs(self.cfg.lcr.ping_secs);
                        self.next_ping = Some(next);
                        self.due.push(Reverse((next, Due::Ping)));
                        self.ping_gateways(now);
                    }
                }
            }
        }
        self.finish_pending(now, media);
    }

    /// Schedules the next media-timeout look, if there is a media timeout
    /// and an answered call, and none is scheduled.
    fn arm_media_check(&mut self, now: Now, media: &Media) {
        let answered = self.calls.values().any(|c| c.phase == Phase::Answered);
        if self.media_check.is_some() || !answered || media.sessions.media_timeout().is_none() {
            return;
        }
        let t = now.mono + media.sessions.stats_every();
        self.media_check = Some(t);
        self.due.push(Reverse((t, Due::Media)));
    }

    /// Answered calls whose media has been silent for the media timeout
    /// are ended with BYEs on both legs (the counters of those calls'
    /// flows only, in one pipelined exchange with the data plane).
    fn end_silent_calls(&mut self, now: Now, media: &mut Media) {
        let Some(limit) = media.sessions.media_timeout() else {
            return;
        };
        let old_enough = |c: &Call| {
            c.phase == Phase::Answered
                && c.facts
                    .answered
                    .and_then(|t| now.wall.duration_since(t).ok())
                    .is_some_and(|age| age >= limit)
        };
        let candidates: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| old_enough(c))
            .map(|(id, _)| id.clone())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let flows: Vec<(String, Vec<SocketAddr>)> = candidates
            .into_iter()
            .map(|id| {
                let locals = media.sessions.call_flows(&id);
                (id, locals)
            })
            .collect();
        let all: Vec<SocketAddr> = flows.iter().flat_map(|(_, l)| l.iter().copied()).collect();
        let stats = match media.plane.flow_stats(&all) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "data plane counters unavailable");
                return;
            }
        };
        let limit_ms = limit.as_millis() as u64;
        for (call_id, locals) in flows {
            let silent = !locals.is_empty()
                && locals
                    .iter()
                    .all(|l| stats.get(l).is_none_or(|s| s.idle_ms >= limit_ms));
            if !silent {
                continue;
            }
            tracing::info!(call_id, "media timeout; ending the call");
            let ended = (Disposition::Answered, HangupBy::Relay);
            self.hang_up(now, &call_id, ended, "Media timeout", media);
        }
    }

    /// The relay ends a call itself (408 in the CDR): BYEs on both legs if
    /// it was answered, then its CDR with `status`, `by` and `reason`.
    fn hang_up(
        &mut self,
        now: Now,
        call_id: &str,
        (status, by): (Disposition, HangupBy),
        reason: &str,
        media: &mut Media,
    ) {
        if self
            .calls
            .get(call_id)
            .is_some_and(|c| c.phase == Phase::Answered)
        {
            self.bye(now, call_id, Side::A);
            self.bye(now, call_id, Side::B);
        }
        let code = 408;
        let reason = reason.to_string();
        self.end_call(
            now,
            call_id,
            Outcome {
                status,
                code,
                reason,
                by,
            },
            media,
        );
    }

    /// Calls whose caller never ACKed our 2xx: BYE both legs, CDR.
    fn finish_pending(&mut self, now: Now, media: &mut Media) {
        for (call_id, by, reason) in std::mem::take(&mut self.pending_end) {
            self.hang_up(now, &call_id, (Disposition::Failed, by), reason, media);
        }
    }
}
