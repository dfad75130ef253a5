//! The harness, in the manner of quinn-proto's test `Pair`: the real
//! [`B2bua`] between a fake caller and a fake callee, over a fake data
//! plane, on virtual time. The test moves every datagram itself and moves
//! time to the relay's next timer; nothing sleeps.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tollgate::b2bua::config::{RouteConfig, SipConfig};
use tollgate::b2bua::ids::Ids;
use tollgate::b2bua::{B2bua, Media, Transport};
use tollgate::media::config::MediaConfig;
use tollgate::media::memory::{FlowChange, MemoryPlane};
use tollgate::media::Sessions;
use tollgate::time::Now;
use tollgate_cdr::model::{Cdr, Record};
use tollgate_sip::message::{Message, NameAddr};

pub const RELAY: &str = "198.51.100.1:5060";
pub const CALLER: &str = "192.0.2.10:5060";
pub const CALLEE: &str = "192.0.2.20:5060";

pub fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a socket address")
}

/// The relay's configuration for the scenarios: 6000 goes to the callee.
pub fn sip_config() -> SipConfig {
    SipConfig {
        routes: vec![RouteConfig {
            pattern: "6000".into(),
            target: Some(format!("sip:6000@{CALLEE}")),
            reject: None,
            reason: None,
            srtp: None,
            record: None,
            org: None,
        }],
        ring_timeout_secs: 30,
        ..SipConfig::default()
    }
}

pub fn media_config() -> MediaConfig {
    MediaConfig {
        port_min: 30000,
        port_max: 30099,
        timeout_secs: 20,
        ..MediaConfig::default()
    }
}

pub fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// The port of the first `m=` line of a message's SDP.
pub fn sdp_port(m: &Message) -> u16 {
    let body = String::from_utf8_lossy(&m.body);
    let line = body
        .lines()
        .find(|l| l.starts_with("m="))
        .unwrap_or_else(|| panic!("no SDP in {}", String::from_utf8_lossy(&m.to_bytes())));
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

/// One side of a dialog as a fake UA holds it.
#[derive(Debug, Clone, Default)]
pub struct Dialog {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    pub local_uri: String,
    pub remote_uri: String,
    /// Where in-dialog requests go (the peer's Contact).
    pub target: String,
    pub cseq: u32,
}

/// A tiny user agent: builds requests and responses, remembers its dialog
/// and its last INVITE (for ACKs of failures and for retransmissions).
pub struct Ua {
    pub addr: SocketAddr,
    user: &'static str,
    /// Messages the relay sent it, not yet taken by the test.
    pub inbox: VecDeque<Message>,
    pub dialog: Dialog,
    /// The last INVITE it sent.
    pub invite: Option<Message>,
    n: u32,
}

impl Ua {
    pub fn new(user: &'static str, at: &str) -> Ua {
        Ua {
            addr: addr(at),
            user,
            inbox: VecDeque::new(),
            dialog: Dialog::default(),
            invite: None,
            n: 0,
        }
    }

    fn fresh(&mut self, what: &str) -> String {
        self.n += 1;
        format!("{what}{}{}", self.user, self.n)
    }

    fn via(&mut self) -> String {
        let b = self.fresh("z9hG4bK");
        format!("SIP/2.0/UDP {};branch={b}", self.addr)
    }

    fn contact(&self) -> String {
        format!("<sip:{}@{}>", self.user, self.addr)
    }

    /// The next message the relay sent it; fails when there is none.
    pub fn recv(&mut self) -> Message {
        self.inbox
            .pop_front()
            .unwrap_or_else(|| panic!("{} received nothing", self.user))
    }

    /// The next message, which must be `what` ("BYE", "200 INVITE").
    pub fn expect(&mut self, what: &str) -> Message {
        let m = self.recv();
        assert_eq!(
            summary(&m),
            what,
            "{} got {}",
            self.user,
            String::from_utf8_lossy(&m.to_bytes())
        );
        m
    }

    /// A new call to `number` at the relay, offering `offer`.
    pub fn invite(&mut self, number: &str, offer: &str) -> Message {
        let tag = self.fresh("tag");
        self.dialog = Dialog {
            call_id: self.fresh("call-"),
            local_tag: tag,
            remote_tag: None,
            local_uri: format!("<sip:{}@{}>", self.user, self.addr.ip()),
            remote_uri: format!("<sip:{number}@{RELAY}>"),
            target: format!("sip:{number}@{RELAY}"),
            cseq: 1,
        };
        let mut m = Message::request("INVITE", &self.dialog.target.clone());
        let via = self.via();
        self.headers(&mut m, via, "INVITE", 1);
        m.add_header("Contact", self.contact());
        with_body(&mut m, offer);
        self.invite = Some(m.clone());
        m
    }

    fn headers(&self, m: &mut Message, via: String, method: &str, cseq: u32) {
        let d = &self.dialog;
        m.add_header("Via", via);
        m.add_header("Max-Forwards", "70");
        m.add_header("From", format!("{};tag={}", d.local_uri, d.local_tag));
        let to = match &d.remote_tag {
            Some(t) => format!("{};tag={t}", d.remote_uri),
            None => d.remote_uri.clone(),
        };
        m.add_header("To", to);
        m.add_header("Call-ID", d.call_id.clone());
        m.add_header("CSeq", format!("{cseq} {method}"));
    }

    /// A request in its dialog with the next CSeq (BYE, re-INVITE, UPDATE...).
    pub fn request(&mut self, method: &str, offer: Option<&str>) -> Message {
        self.dialog.cseq += 1;
        let mut m = Message::request(method, &self.dialog.target.clone());
        let via = self.via();
        self.headers(&mut m, via, method, self.dialog.cseq);
        m.add_header("Contact", self.contact());
        if let Some(o) = offer {
            with_body(&mut m, o);
        }
        if method == "INVITE" {
            self.invite = Some(m.clone());
        }
        m
    }

    /// CANCEL of its pending INVITE (same branch, §9.1).
    pub fn cancel(&self) -> Message {
        let inv = self.invite.as_ref().expect("an INVITE to cancel");
        let mut m = Message::request("CANCEL", inv.request_uri().unwrap());
        for h in ["Via", "From", "To", "Call-ID"] {
            m.add_header(h, inv.header(h).unwrap());
        }
        let n = inv.cseq().unwrap().0;
        m.add_header("CSeq", format!("{n} CANCEL"));
        m.add_header("Max-Forwards", "70");
        m
    }

    /// The ACK for `resp` to its INVITE: in the dialog for a 2xx (a new
    /// transaction), on the INVITE's branch otherwise.
    pub fn ack(&mut self, resp: &Message) -> Message {
        let inv = self.invite.clone().expect("an INVITE to acknowledge");
        let code = resp.code().expect("a response");
        let n = inv.cseq().unwrap().0;
        if (200..300).contains(&code) {
            self.learn(resp);
            let mut m = Message::request("ACK", &self.dialog.target.clone());
            let via = self.via();
            self.headers(&mut m, via, "ACK", n);
            m
        } else {
            let mut m = Message::request("ACK", inv.request_uri().unwrap());
            for h in ["Via", "From", "Call-ID"] {
                m.add_header(h, inv.header(h).unwrap());
            }
            m.add_header("To", resp.header("To").unwrap());
            m.add_header("CSeq", format!("{n} ACK"));
            m.add_header("Max-Forwards", "70");
            m
        }
    }

    /// The peer's tag and Contact from a response that made the dialog.
    fn learn(&mut self, resp: &Message) {
        self.dialog.remote_tag = resp.to_tag();
        if let Some(c) = resp.header("Contact") {
            self.dialog.target = NameAddr::parse(c).unwrap().uri;
        }
    }

    /// Its response to `req`: with its tag (a dialog with the relay when
    /// `req` is an INVITE outside one), Contact for INVITEs, `sdp` if given.
    pub fn respond(&mut self, req: &Message, code: u16, sdp: Option<&str>) -> Message {
        let initial = req.method() == Some("INVITE") && req.to_tag().is_none();
        if initial && self.dialog.call_id != req.call_id().unwrap() {
            self.dialog = Dialog {
                call_id: req.call_id().unwrap().to_string(),
                local_tag: self.fresh("tag"),
                remote_tag: req.from_tag(),
                local_uri: strip_tag(req.header("To").unwrap()),
                remote_uri: strip_tag(req.header("From").unwrap()),
                target: NameAddr::parse(req.header("Contact").unwrap()).unwrap().uri,
                cseq: 0,
            };
        }
        let tag = (req.to_tag().is_none() && code > 100).then(|| self.dialog.local_tag.clone());
        let reason = tollgate_sip::message::reason_phrase(code);
        let mut r = Message::response_to(req, code, reason, tag.as_deref());
        if req.method() == Some("INVITE") && code > 100 && code < 300 {
            r.add_header("Contact", self.contact());
        }
        if let Some(s) = sdp {
            with_body(&mut r, s);
        }
        r
    }
}

fn strip_tag(v: &str) -> String {
    NameAddr::parse(v).unwrap().without_tag().to_string()
}

pub fn with_body(m: &mut Message, sdp: &str) {
    m.set_header("Content-Type", "application/sdp");
    m.body = sdp.as_bytes().to_vec();
}

/// Which message from the relay is lost: a test of (to, message).
type Loss = Box<dyn Fn(SocketAddr, &Message) -> bool>;

/// The relay, its media, the two UAs and the clock.
pub struct Net {
    pub now: Now,
    pub start: Now,
    pub b2b: B2bua,
    pub sessions: Sessions,
    pub plane: MemoryPlane,
    pub caller: Ua,
    pub callee: Ua,
    /// What the relay sent since the test last looked: "who <- start line".
    wire: Vec<String>,
    /// Messages from the relay that are lost: the next ones matching.
    losses: Vec<Loss>,
    /// CDR records, as the relay produced them.
    pub records: Vec<Record>,
}

/// A message in short: its method, or its code and CSeq method ("200 BYE").
fn summary(m: &Message) -> String {
    match m.method() {
        Some(method) => method.to_string(),
        None => {
            let cseq = m.cseq().map(|(_, x)| x.to_string()).unwrap_or_default();
            format!("{} {cseq}", m.code().unwrap_or(0))
        }
    }
}

/// "who <- summary" for a message the relay sent.
fn line(to: SocketAddr, m: &Message) -> String {
    let who = match to {
        t if t == addr(CALLER) => "caller".to_string(),
        t if t == addr(CALLEE) => "callee".to_string(),
        t => t.to_string(),
    };
    format!("{who} <- {}", summary(m))
}

impl Default for Net {
    fn default() -> Net {
        Net::new(sip_config(), media_config())
    }
}

impl Net {
    pub fn new(sip: SipConfig, media: MediaConfig) -> Net {
        let now = Now::virtual_start();
        Net {
            now,
            start: now,
            b2b: B2bua::new(sip, addr(RELAY), now, Ids::seeded(1)),
            sessions: Sessions::new(media),
            plane: MemoryPlane::default(),
            caller: Ua::new("alice", CALLER),
            callee: Ua::new("bob", CALLEE),
            wire: Vec::new(),
            losses: Vec::new(),
            records: Vec::new(),
        }
    }

    /// A datagram from `from` reaches the relay; what it sends is delivered.
    pub fn deliver(&mut self, from: SocketAddr, m: &Message) {
        let mut media = Media {
            sessions: &mut self.sessions,
            plane: &mut self.plane,
        };
        self.b2b
            .on_datagram(self.now, from, &m.to_bytes(), &mut media);
        self.flush();
    }

    /// A message from `from` read off its TCP or TLS connection.
    pub fn deliver_stream(&mut self, from: SocketAddr, transport: Transport, m: &Message) {
        let mut media = Media {
            sessions: &mut self.sessions,
            plane: &mut self.plane,
        };
        self.b2b
            .on_stream_message(self.now, transport, from, &m.to_bytes(), &mut media);
        self.flush();
    }

    pub fn caller_sends(&mut self, m: &Message) {
        self.deliver(addr(CALLER), m);
    }

    pub fn callee_sends(&mut self, m: &Message) {
        self.deliver(addr(CALLEE), m);
    }

    /// The next message from the relay to `to` matching `lost` is lost.
    pub fn lose(&mut self, lost: impl Fn(SocketAddr, &Message) -> bool + 'static) {
        self.losses.push(Box::new(lost));
    }

    fn flush(&mut self) {
        while let Some((transport, to, bytes)) = self.b2b.poll_transmit() {
            let m = Message::parse(&bytes).expect("the relay sends valid SIP");
            let line = match transport {
                Transport::Udp => line(to, &m),
                t => format!("{} ({})", line(to, &m), t.token()),
            };
            if let Some(i) = self.losses.iter().position(|l| l(to, &m)) {
                drop(self.losses.remove(i));
                self.wire.push(format!("{line} (lost)"));
                continue;
            }
            self.wire.push(line);
            if to == self.caller.addr {
                self.caller.inbox.push_back(m);
            } else if to == self.callee.addr {
                self.callee.inbox.push_back(m);
            }
        }
        self.records.extend(self.b2b.take_records());
    }

    /// What the relay sent since the last call.
    pub fn wire(&mut self) -> Vec<String> {
        std::mem::take(&mut self.wire)
    }

    /// Runs the relay's timers, in order, up to `until`.
    pub fn run_until(&mut self, until: Instant) {
        while let Some(t) = self.b2b.poll_timeout().filter(|t| *t <= until) {
            self.now = self.now.at(t);
            self.timeout();
        }
        self.now = self.now.at(until);
    }

    fn timeout(&mut self) {
        let mut media = Media {
            sessions: &mut self.sessions,
            plane: &mut self.plane,
        };
        self.b2b.handle_timeout(self.now, &mut media);
        self.flush();
    }

    /// Moves virtual time on by `d`, running every timer due meanwhile.
    pub fn advance(&mut self, d: Duration) {
        self.run_until(self.now.mono + d);
    }

    /// Seconds since the start of the test, as a wall-clock ms timestamp.
    pub fn ms_at(&self, secs_from_start: f64) -> i64 {
        tollgate::media::ms(self.start.wall) + (secs_from_start * 1000.0) as i64
    }

    /// The CDRs written so far.
    pub fn cdrs(&self) -> Vec<&Cdr> {
        self.records
            .iter()
            .filter_map(|r| match r {
                Record::Ended(c) => Some(c.as_ref()),
                _ => None,
            })
            .collect()
    }

    /// The installed flows: (local port, destination), by port.
    pub fn flows(&self) -> Vec<(u16, String)> {
        let flows = self.plane.flows();
        flows
            .values()
            .map(|f| (f.local.port(), f.destination.to_string()))
            .collect()
    }

    /// Flow changes since the last call: ("put"/"removed", local address).
    pub fn flow_changes(&self) -> Vec<(&'static str, SocketAddr)> {
        self.plane
            .take_log()
            .into_iter()
            .map(|c| match c {
                FlowChange::Put(f) => ("put", f.local),
                FlowChange::Removed(l) => ("removed", l),
            })
            .collect()
    }
}
