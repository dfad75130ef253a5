//! The B2BUA: each call is an A-leg dialog with the caller and a B-leg
//! dialog with the callee, with the media anchored in Tollgate's relay.
//!
//! A plain state machine like the transactions under it: every input
//! carries a [`Now`] (datagrams, `handle_timeout` at [`B2bua::poll_timeout`]),
//! and it queues datagrams to send, records for the CDR spool and timers;
//! its tags, branches and Call-IDs come from the [`Ids`] it was given. The
//! SIP server owns the socket, the clock and the spool. The SDP of each leg
//! is rewritten by the same media session manager the NG server uses, so
//! flows are in the data plane before the SDP that points at them leaves.
//!
//! What a call does: INVITE from A (100 Trying at once) -> dialplan ->
//! media offer -> INVITE to B -> 18x relayed (183 with SDP: early media) ->
//! 2xx: ACK to B, 200 to A -> BYE from either side ends both. CANCEL from
//! A cancels B; a ring timeout gives A 480 and cancels B; B's failures are
//! relayed; re-INVITEs and other in-dialog requests are relayed to the
//! other leg, re-INVITE SDP through the media manager.
//!
//! This file holds the state (calls, transactions, the timer heap) and the
//! inputs and outputs; what happens to them lives by concern in
//! `transactions` (one driver for client and server transactions), `call`
//! (a call up to its answer), `dialog` (in-dialog requests), `routing`
//! (LCR failover, gateway pings), `ending` (session timers, media timeout,
//! missing ACK), `auth` (REGISTER, digest), `message` (what is read
//! from and carried between messages) and `ivr_call` (calls the IVR
//! answers itself, one leg each).

pub mod cdr;
pub mod config;
pub mod dialplan;
pub mod guard;
pub mod ids;
pub mod journal;
pub mod lcr;
pub mod leg;
pub mod registrar;
pub mod view;

mod auth;
mod call;
mod dialog;
mod ending;
mod ivr_call;
mod ivr_transfer;
mod message;
mod routing;
mod transactions;

use crate::media::options::{Options, Sdes};
use crate::media::{MediaPlane, Sessions};
use crate::time::Now;
use cdr::{failure_status, CallFacts, LegIds, Outcome};
use config::{RouteSrtp, SipConfig};
use dialog::key_of_invite;
use dialplan::{Decision, Dialplan};
use guard::Guard;
use ids::Ids;
use lcr::{Candidate, LcrTable};
use leg::{Leg, Side};
use message::*;
use registrar::Registrar;
use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tollgate_cdr::model::{Disposition, HangupBy, Record};
use tollgate_sip::dialog::Dialog;
use tollgate_sip::digest::{Authenticator, Credentials, Rejection};
use tollgate_sip::message::{reason_phrase, Message};
use tollgate_sip::method::Method;
use tollgate_sip::transaction::{
    Client, ClientEvent, ClientState, Key, Server, ServerEvent, TimerConfig,
};
use tollgate_sip::view::{UriRef, ViaRef};

/// How a message travels: datagrams, or a stream connection (on which
/// nothing is retransmitted and responses go back the way requests came).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
    Tls,
    /// SIP over WebSocket (RFC 7118), plain and over TLS: connections only
    /// browsers open, so requests to them go over the one a REGISTER came in.
    Ws,
    Wss,
}

impl Transport {
    pub fn token(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tcp => "TCP",
            Transport::Tls => "TLS",
            Transport::Ws => "WS",
            Transport::Wss => "WSS",
        }
    }

    /// Whether it runs over TLS (what a SIPS URI needs, RFC 3261 §26.2).
    pub fn secure(self) -> bool {
        matches!(self, Transport::Tls | Transport::Wss)
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
    /// Requests received again for a transaction we have (absorbed).
    pub retransmissions_received: u64,
    /// Requests and responses our transactions sent again on their timers.
    pub retransmissions_sent: u64,
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
    /// B's dialog comes with its first tagged response; until then B's
    /// Call-ID, tag and URIs are those of `b_invite_req`.
    b: Leg<Option<Dialog>>,
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
    /// The last re-INVITE we relayed: the leg it went to, its transaction.
    relayed_invite: Option<(Side, ClientKey)>,
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
    /// The IVR's look at its calls' stage events and digit timers.
    Ivr,
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
    /// The INVITE of an IVR call's transfer.
    IvrTransfer,
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
    /// Per-source bans, drain and shedding.
    pub guard: Guard,
    /// Calls the input being handled changed, and those in the journal
    /// (see [`journal`]).
    touched: BTreeSet<String>,
    journaled: HashSet<String>,
    /// Calls answered by the IVR (see [`ivr_call`]).
    ivr: ivr_call::IvrCalls,
    pub counters: Counters,
}

fn call_mut<'a>(calls: &'a mut HashMap<String, Call>, id: &str) -> &'a mut Call {
    calls
        .get_mut(id)
        .expect("the caller checked the call exists")
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
            guard: Guard::new(cfg.flood.clone(), cfg.trusted.clone()),
            touched: BTreeSet::new(),
            journaled: HashSet::new(),
            timers: cfg.timers(),
            dialplan: Dialplan::new(&cfg.routes, &cfg.orgs),
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
            ivr: ivr_call::IvrCalls::default(),
        }
    }

    pub fn poll_transmit(&mut self) -> Option<(Transport, SocketAddr, Vec<u8>)> {
        self.out.pop_front()
    }

    /// The call (named by its A leg's Call-ID) that the dialog with
    /// `call_id` and our tag `local_tag` is a leg of.
    pub fn call_of_dialog(&self, call_id: &str, local_tag: &str) -> Option<&str> {
        let key = (call_id.to_string(), local_tag.to_string());
        self.dialogs.get(&key).map(|(call, _)| call.as_str())
    }

    pub fn take_records(&mut self) -> Vec<Record> {
        std::mem::take(&mut self.records)
    }

    /// The earliest timer of any transaction or call (possibly a stale
    /// one: waking early costs a heap pop).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.peek().map(|Reverse((t, _))| *t)
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
        match msg.request_method() {
            None => self.on_response(now, msg, media),
            Some(Method::Ack) => self.on_ack(now, msg),
            Some(_) => self.on_request(now, from, msg, media),
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
        let answerable = Message::parse_lenient(bytes).ok().filter(|m| {
            !matches!(m.request_method(), None | Some(Method::Ack)) && m.view().via().is_ok()
        });
        match answerable {
            Some(req) => {
                self.counters.bad_requests += 1;
                tracing::debug!(%from, why, "bad request; 400");
                let mut r = Message::response_to(&req, 400, &why, None);
                let cseq_ok = req.view().cseq().is_ok();
                r.headers.retain(|h| h.name != "CSeq" || cseq_ok);
                self.send(from, &r);
            }
            None => {
                self.counters.malformed += 1;
                tracing::debug!(%from, why, "not an answerable SIP message; dropped");
            }
        }
    }

    fn on_request(&mut self, now: Now, from: SocketAddr, req: Message, media: &mut Media) {
        let Some(key) = Key::server(&req) else {
            let r = Message::response_to(&req, 400, "Missing Via branch", None);
            self.counters.bad_requests += 1;
            self.send(from, &r);
            return;
        };
        if let Some(e) = self.servers.get_mut(&key) {
            e.txn.on_request(now.mono, &req); // a retransmission
            self.counters.retransmissions_received += 1;
            self.pump_server(&key);
            return;
        }
        if req.view().to_tag().is_none() && !self.guard.on_new_request(now.mono, from.ip()) {
            return; // the source is flooding: dropped unanswered
        }
        match req.request_method() {
            Some(Method::Invite) if req.view().to_tag().is_none() => {
                self.on_invite(now, from, key, req, media)
            }
            Some(Method::Register) => {
                let r = self.on_register(now, from, &req);
                self.respond_new(now, from, key, req, r, None);
            }
            Some(Method::Cancel) => self.on_cancel(now, from, key, req, media),
            _ if self.in_ivr(&req) => self.ivr_in_dialog(now, from, key, req, media),
            _ if req.view().to_tag().is_some() => self.in_dialog(now, from, key, req, media),
            Some(Method::Options) => {
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

    /// Replaces the dialplan (a reloaded config); calls in progress keep
    /// the route they took.
    pub fn set_routes(&mut self, routes: &[config::RouteConfig], orgs: &[config::OrgConfig]) {
        self.dialplan = Dialplan::new(routes, orgs);
    }

    /// Registration changes made here, for nodes sharing registrations.
    pub fn take_registrations(&mut self, now: Now) -> Vec<(String, Vec<registrar::Shared>)> {
        self.registrar.export(now)
    }

    /// Registration changes [`B2bua::take_registrations`] gave that could
    /// not be shared: given again next time.
    pub fn unshared_registrations(&mut self, users: Vec<String>) {
        self.registrar.unshared(users);
    }

    /// Another node's bindings for `user`.
    pub fn merge_registration(&mut self, now: Now, user: &str, bindings: &[registrar::Shared]) {
        self.registrar.merge(user, bindings, now);
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
            self.fire(now, t, due, media);
        }
        self.finish_pending(now, media);
    }

    /// One timer-heap entry that came due (at `t`), unless it is stale.
    fn fire(&mut self, now: Now, t: Instant, due: Due, media: &mut Media) {
        match due {
            Due::Server(k) => self.server_timer(now, t, &k),
            Due::Client(k) => self.client_timer(now, t, &k, media),
            Due::Ring(call_id) => self.ring_timer(now, t, &call_id, media),
            Due::Session(call_id) => self.session_timer(now, t, &call_id, media),
            Due::Media if self.media_check == Some(t) => self.media_timer(now, media),
            Due::Ping if self.next_ping == Some(t) => self.ping_timer(now),
            Due::Ivr => self.ivr_timer(now, t, media),
            Due::Media | Due::Ping => {} // stale
        }
    }
}
