//! RFC 3261 §17 transactions as sans-IO state machines, with RFC 6026's
//! Accepted state for INVITE 2xx.
//!
//! A [`Client`] or [`Server`] takes `now` and messages, and hands back what
//! to send (`poll_transmit`), when it next needs the clock
//! (`poll_timeout` / `handle_timeout`) and what the transaction user must
//! know (`poll_event`). Sockets, clocks and matching a message to its
//! transaction ([`Key`]) are the owner's. Timers, by RFC name: A/B/D for the
//! INVITE client, E/F/K for the non-INVITE client, G/H/I/L for the INVITE
//! server (and the 2xx retransmission the RFC gives the server core), J for
//! the non-INVITE server. Over a reliable transport nothing is retransmitted
//! and D, I, J and K are zero.

use crate::message::{reason_phrase, Message};
use crate::method::Method;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// T1, T2 and T4 (§17.1.1.1): RTT estimate, retransmit cap, network linger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    pub t1: Duration,
    pub t2: Duration,
    pub t4: Duration,
}

impl Default for TimerConfig {
    fn default() -> Self {
        TimerConfig {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl TimerConfig {
    /// 64*T1: how long a transaction tries before giving up (B, F, H, J, L).
    pub fn give_up(&self) -> Duration {
        self.t1 * 64
    }
}

/// What identifies a transaction (§17.1.3, §17.2.3): the top Via's branch,
/// its sent-by (servers only; empty for clients) and the CSeq method, with
/// ACK matching its INVITE.
#[derive(
    Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct Key {
    pub branch: String,
    pub sent_by: String,
    pub method: String,
}

impl Key {
    /// A request's server-transaction key; None without an RFC 3261 branch.
    pub fn server(req: &Message) -> Option<Key> {
        let v = req.view();
        let via = v.via().ok()?;
        let method = match v.cseq().ok()?.method {
            Method::Ack => Method::Invite,
            m => m,
        };
        Some(Key {
            branch: via.branch?.to_string(),
            sent_by: format!("{}:{}", via.host, via.port.unwrap_or(5060)),
            method: method.as_str().to_string(),
        })
    }

    /// A response's client-transaction key.
    pub fn client(resp: &Message) -> Option<Key> {
        let v = resp.view();
        Some(Key {
            branch: v.via().ok()?.branch?.to_string(),
            sent_by: String::new(),
            method: v.cseq().ok()?.method.as_str().to_string(),
        })
    }
}

/// The three timers of a transaction: the next retransmission (and the
/// interval after it), the give-up deadline, and the linger that ends it.
#[derive(Debug, Default)]
struct Clock {
    retransmit: Option<(Instant, Duration)>,
    deadline: Option<Instant>,
    linger: Option<Instant>,
}

/// What fired at one `Clock::fire`.
struct Fired {
    gave_up: bool,
    resend: bool,
    ended: bool,
}

impl Clock {
    fn next(&self) -> Option<Instant> {
        [self.retransmit.map(|(t, _)| t), self.deadline, self.linger]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs what is due at `now`. A passed deadline stops everything;
    /// a due retransmission is rescheduled at twice its interval, capped
    /// at `cap` when given.
    fn fire(&mut self, now: Instant, cap: Option<Duration>) -> Fired {
        if self.deadline.is_some_and(|t| t <= now) {
            self.deadline = None;
            self.retransmit = None;
            return Fired {
                gave_up: true,
                resend: false,
                ended: false,
            };
        }
        let mut resend = false;
        if let Some((t, interval)) = self.retransmit {
            if t <= now {
                resend = true;
                let next = cap.map_or(interval * 2, |c| (interval * 2).min(c));
                self.retransmit = Some((now + next, next));
            }
        }
        let ended = self.linger.is_some_and(|t| t <= now);
        if ended {
            self.linger = None;
        }
        Fired {
            gave_up: false,
            resend,
            ended,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Calling (INVITE) or Trying (non-INVITE).
    Calling,
    Proceeding,
    Completed,
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientEvent {
    /// A response for the transaction user: every provisional, the first
    /// final, and (INVITE) each 2xx, retransmissions and forks included,
    /// since their ACK is the user's to send.
    Response(Message),
    /// Timer B or F: no final response.
    Timeout,
}

/// A client transaction: one request sent, its responses received.
#[derive(Debug)]
pub struct Client {
    invite: bool,
    reliable: bool,
    timers: TimerConfig,
    state: ClientState,
    request: Message,
    ack: Option<Message>,
    /// Timer A or E (retransmit), B or F (deadline), D, K or M (linger).
    clock: Clock,
    out: VecDeque<Message>,
    events: VecDeque<ClientEvent>,
}

impl Client {
    /// Starts the transaction: `request` is queued for sending.
    pub fn new(request: Message, now: Instant, timers: TimerConfig, reliable: bool) -> Client {
        let invite = request.request_method() == Some(Method::Invite);
        let mut c = Client {
            invite,
            reliable,
            timers,
            state: ClientState::Calling,
            request: request.clone(),
            ack: None,
            clock: Clock {
                retransmit: (!reliable).then_some((now + timers.t1, timers.t1)),
                deadline: Some(now + timers.give_up()),
                linger: None,
            },
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        c.out.push_back(request);
        c
    }

    pub fn state(&self) -> ClientState {
        self.state
    }

    pub fn request(&self) -> &Message {
        &self.request
    }

    pub fn on_response(&mut self, now: Instant, resp: Message) {
        let Some(code) = resp.code() else { return };
        match (self.state, code) {
            (ClientState::Calling | ClientState::Proceeding, 100..=199) => {
                self.state = ClientState::Proceeding;
                if !self.invite {
                    // Timer E now fires at T2 (§17.1.2.2).
                    if let Some((_, _)) = self.clock.retransmit {
                        self.clock.retransmit = Some((now + self.timers.t2, self.timers.t2));
                    }
                } else {
                    self.clock.retransmit = None;
                }
                self.events.push_back(ClientEvent::Response(resp));
            }
            (ClientState::Calling | ClientState::Proceeding, 200..=299) if self.invite => {
                self.state = ClientState::Accepted;
                self.clock.retransmit = None;
                self.clock.deadline = None;
                self.clock.linger = Some(now + self.timers.give_up()); // timer M
                self.events.push_back(ClientEvent::Response(resp));
            }
            (ClientState::Accepted, 200..=299) => {
                self.events.push_back(ClientEvent::Response(resp));
            }
            (ClientState::Calling | ClientState::Proceeding, 200..=699) => {
                self.state = ClientState::Completed;
                self.clock.retransmit = None;
                self.clock.deadline = None;
                let linger = match (self.reliable, self.invite) {
                    (true, _) => Duration::ZERO,
                    (false, true) => Duration::from_secs(32).max(self.timers.give_up()), // D
                    (false, false) => self.timers.t4,                                    // K
                };
                self.clock.linger = Some(now + linger);
                if self.invite {
                    let ack = ack_for(&self.request, &resp);
                    self.out.push_back(ack.clone());
                    self.ack = Some(ack);
                }
                self.events.push_back(ClientEvent::Response(resp));
            }
            (ClientState::Completed, 300..=699) => {
                // A retransmitted final: our ACK was lost.
                if let Some(ack) = &self.ack {
                    self.out.push_back(ack.clone());
                }
            }
            _ => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clock.next()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        // Timer A doubles without a cap; E is capped at T2.
        let fired = self
            .clock
            .fire(now, (!self.invite).then_some(self.timers.t2));
        if fired.gave_up {
            self.state = ClientState::Terminated;
            self.events.push_back(ClientEvent::Timeout);
            return;
        }
        if fired.resend {
            self.out.push_back(self.request.clone());
        }
        if fired.ended {
            self.state = ClientState::Terminated;
        }
    }

    /// Messages queued and not yet taken by [`Self::poll_transmit`].
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }
}

/// The ACK for a non-2xx final response (§17.1.1.3): same Request-URI,
/// top Via, Call-ID, From, CSeq number and Route as the INVITE; the
/// response's To.
pub fn ack_for(invite: &Message, resp: &Message) -> Message {
    let mut ack = Message::request("ACK", invite.request_uri().unwrap_or_default());
    if let Some(v) = invite.header_values("Via").first() {
        ack.add_header("Via", *v);
    }
    for h in ["From", "Call-ID"] {
        if let Some(v) = invite.header(h) {
            ack.add_header(h, v);
        }
    }
    if let Some(v) = resp.header("To") {
        ack.add_header("To", v);
    }
    let n = invite.cseq().map(|(n, _)| n).unwrap_or(1);
    ack.add_header("CSeq", format!("{n} ACK"));
    for r in invite.header_values("Route") {
        ack.add_header("Route", r);
    }
    ack.add_header("Max-Forwards", "70");
    ack
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Proceeding (INVITE) or Trying/Proceeding (non-INVITE).
    Proceeding,
    Completed,
    Confirmed,
    Accepted,
    Terminated,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServerEvent {
    /// Timer H (no ACK for a non-2xx final), or no ACK for a 2xx within
    /// 64*T1: the user should end the dialog the 2xx created.
    NoAck,
}

/// A server transaction: one request received, our responses to it.
#[derive(Debug)]
pub struct Server {
    invite: bool,
    reliable: bool,
    timers: TimerConfig,
    state: ServerState,
    request: Message,
    last_response: Option<Message>,
    /// Timer G or the 2xx retransmission (retransmit), H or the 2xx
    /// give-up (deadline), I, J or L (linger).
    clock: Clock,
    out: VecDeque<Message>,
    events: VecDeque<ServerEvent>,
}

impl Server {
    /// A new server transaction for `request`; an INVITE is answered with
    /// 100 Trying at once (§17.2.1: it stops the client retransmitting).
    pub fn new(request: Message, now: Instant, timers: TimerConfig, reliable: bool) -> Server {
        let invite = request.request_method() == Some(Method::Invite);
        let mut s = Server {
            invite,
            reliable,
            timers,
            state: ServerState::Proceeding,
            request,
            last_response: None,
            clock: Clock::default(),
            out: VecDeque::new(),
            events: VecDeque::new(),
        };
        if invite {
            let trying = Message::response_to(&s.request, 100, reason_phrase(100), None);
            s.respond(now, trying);
        }
        s
    }

    pub fn state(&self) -> ServerState {
        self.state
    }

    pub fn request(&self) -> &Message {
        &self.request
    }

    /// The last response sent, if any.
    pub fn last_response(&self) -> Option<&Message> {
        self.last_response.as_ref()
    }

    /// A request matching this transaction arrived again: a retransmission
    /// (answered with the last response) or the ACK of a non-2xx final.
    pub fn on_request(&mut self, now: Instant, req: &Message) {
        if req.request_method() == Some(Method::Ack) {
            if self.state == ServerState::Completed {
                self.state = ServerState::Confirmed;
                self.clock.retransmit = None;
                self.clock.deadline = None;
                let i = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.t4
                };
                self.clock.linger = Some(now + i);
            }
            return;
        }
        if matches!(self.state, ServerState::Proceeding | ServerState::Completed) {
            if let Some(r) = &self.last_response {
                self.out.push_back(r.clone());
            }
        }
    }

    /// The ACK for our 2xx arrived (it is a transaction of its own, matched
    /// by the dialog): stop retransmitting the 2xx.
    pub fn acknowledged(&mut self, now: Instant) {
        if self.state == ServerState::Accepted {
            self.clock.retransmit = None;
            self.clock.deadline = None;
            self.clock.linger.get_or_insert(now + self.timers.give_up());
        }
    }

    /// Sends a response from the transaction user.
    pub fn respond(&mut self, now: Instant, resp: Message) {
        let Some(code) = resp.code() else { return };
        if !matches!(self.state, ServerState::Proceeding) {
            // A second final, or a provisional after the final: not allowed.
            if !(self.state == ServerState::Accepted && (200..300).contains(&code)) {
                return;
            }
        }
        self.out.push_back(resp.clone());
        self.last_response = Some(resp);
        let give_up = now + self.timers.give_up();
        match code {
            100..=199 => {}
            200..=299 if self.invite => {
                self.state = ServerState::Accepted;
                if !self.reliable {
                    self.clock.retransmit = Some((now + self.timers.t1, self.timers.t1));
                }
                self.clock.deadline = Some(give_up);
                self.clock.linger = None;
            }
            _ if self.invite => {
                self.state = ServerState::Completed;
                if !self.reliable {
                    self.clock.retransmit = Some((now + self.timers.t1, self.timers.t1));
                    // G
                }
                self.clock.deadline = Some(give_up); // H
            }
            _ => {
                self.state = ServerState::Completed;
                let j = if self.reliable {
                    Duration::ZERO
                } else {
                    self.timers.give_up()
                };
                self.clock.linger = Some(now + j);
            }
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.clock.next()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let fired = self.clock.fire(now, Some(self.timers.t2));
        if fired.gave_up {
            self.state = ServerState::Terminated;
            self.events.push_back(ServerEvent::NoAck);
            return;
        }
        if fired.resend {
            if let Some(r) = &self.last_response {
                self.out.push_back(r.clone());
            }
        }
        if fired.ended {
            self.state = ServerState::Terminated;
        }
    }

    /// Messages queued and not yet taken by [`Self::poll_transmit`].
    pub fn queued(&self) -> usize {
        self.out.len()
    }

    pub fn poll_transmit(&mut self) -> Option<Message> {
        self.out.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<ServerEvent> {
        self.events.pop_front()
    }

    pub fn is_terminated(&self) -> bool {
        self.state == ServerState::Terminated
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(method: &str) -> Message {
        let text = format!(
            "{method} sip:bob@192.0.2.2 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n\
Max-Forwards: 70\r\nTo: <sip:bob@192.0.2.2>\r\n\
From: <sip:alice@192.0.2.1>;tag=a1\r\nCall-ID: c1\r\nCSeq: 1 {method}\r\n\
Content-Length: 0\r\n\r\n"
        );
        Message::parse(text.as_bytes()).unwrap()
    }

    fn response(req: &Message, code: u16) -> Message {
        Message::response_to(req, code, "X", Some("b1"))
    }

    fn drain(c: &mut Client) -> Vec<Message> {
        std::iter::from_fn(|| c.poll_transmit()).collect()
    }

    /// Runs `c`'s timers from `t0` for `span`, returning when each send happened.
    fn sends_over(c: &mut Client, t0: Instant, span: Duration) -> Vec<Duration> {
        let mut at = Vec::new();
        while let Some(t) = c.poll_timeout() {
            if t > t0 + span {
                break;
            }
            c.handle_timeout(t);
            for _ in drain(c) {
                at.push(t - t0);
            }
        }
        at
    }

    fn ms(v: &[u64]) -> Vec<Duration> {
        v.iter().map(|m| Duration::from_millis(*m)).collect()
    }

    #[test]
    fn invite_client_retransmits_on_timer_a_and_gives_up_on_timer_b() {
        let t0 = Instant::now();
        let mut c = Client::new(request("INVITE"), t0, TimerConfig::default(), false);
        assert_eq!(drain(&mut c).len(), 1);
        let sends = sends_over(&mut c, t0, Duration::from_secs(40));
        // A doubles from T1 without a cap: 0.5, 1.5, 3.5, 7.5, 15.5, 31.5 s.
        assert_eq!(sends, ms(&[500, 1500, 3500, 7500, 15500, 31500]));
        assert_eq!(c.poll_event(), Some(ClientEvent::Timeout));
        assert!(c.is_terminated());
    }

    #[test]
    fn non_invite_client_caps_timer_e_at_t2_and_uses_t2_once_proceeding() {
        let t0 = Instant::now();
        let req = request("OPTIONS");
        let mut c = Client::new(req.clone(), t0, TimerConfig::default(), false);
        drain(&mut c);
        let sends = sends_over(&mut c, t0, Duration::from_millis(12_000));
        assert_eq!(sends, ms(&[500, 1500, 3500, 7500, 11500]));
        c.on_response(t0 + Duration::from_millis(11_600), response(&req, 100));
        let later = sends_over(&mut c, t0, Duration::from_millis(20_000));
        assert_eq!(later, ms(&[15_600, 19_600]));
        c.on_response(t0 + Duration::from_secs(20), response(&req, 200));
        assert_eq!(c.state(), ClientState::Completed);
        // Timer K (T4) ends it; no Timeout event after a final.
        c.handle_timeout(t0 + Duration::from_secs(25));
        assert!(c.is_terminated());
        let events: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
        assert_eq!(events.len(), 2);
        assert!(!events.contains(&ClientEvent::Timeout));
    }

    #[test]
    fn invite_client_acks_a_non_2xx_final_and_again_for_its_retransmission() {
        let t0 = Instant::now();
        let req = request("INVITE");
        let mut c = Client::new(req.clone(), t0, TimerConfig::default(), false);
        drain(&mut c);
        c.on_response(t0, response(&req, 180));
        assert_eq!(
            c.poll_timeout(),
            Some(t0 + Duration::from_secs(32)),
            "only B is left"
        );
        let busy = response(&req, 486);
        c.on_response(t0, busy.clone());
        let ack = drain(&mut c);
        assert_eq!(ack.len(), 1);
        let ack = &ack[0];
        assert_eq!(ack.method(), Some("ACK"));
        assert_eq!(ack.cseq().unwrap(), (1, "ACK"));
        assert_eq!(ack.top_via().unwrap().branch(), Some("z9hG4bKabc"));
        assert_eq!(ack.to_tag().as_deref(), Some("b1"));
        assert_eq!(ack.request_uri(), req.request_uri());
        c.on_response(t0 + Duration::from_millis(600), busy);
        assert_eq!(
            drain(&mut c).len(),
            1,
            "the retransmitted 486 is ACKed again"
        );
        let codes: Vec<u16> = std::iter::from_fn(|| c.poll_event())
            .map(|e| match e {
                ClientEvent::Response(r) => r.code().unwrap(),
                ClientEvent::Timeout => 0,
            })
            .collect();
        assert_eq!(codes, vec![180, 486], "the retransmission is absorbed");
        c.handle_timeout(t0 + Duration::from_secs(32));
        assert!(c.is_terminated(), "timer D");
    }

    #[test]
    fn invite_client_passes_every_2xx_up_while_accepted() {
        let t0 = Instant::now();
        let req = request("INVITE");
        let mut c = Client::new(req.clone(), t0, TimerConfig::default(), true);
        drain(&mut c);
        c.on_response(t0, response(&req, 200));
        c.on_response(t0, response(&req, 200));
        assert_eq!(drain(&mut c).len(), 0, "the 2xx ACK is the user's");
        assert_eq!(std::iter::from_fn(|| c.poll_event()).count(), 2);
        c.handle_timeout(t0 + Duration::from_secs(32));
        assert!(c.is_terminated(), "timer M");
    }

    #[test]
    fn reliable_transport_retransmits_nothing() {
        let t0 = Instant::now();
        let mut c = Client::new(request("INVITE"), t0, TimerConfig::default(), true);
        drain(&mut c);
        assert!(sends_over(&mut c, t0, Duration::from_secs(40)).is_empty());
        assert_eq!(c.poll_event(), Some(ClientEvent::Timeout));
    }

    #[test]
    fn invite_server_sends_trying_and_absorbs_retransmissions() {
        let t0 = Instant::now();
        let req = request("INVITE");
        let mut s = Server::new(req.clone(), t0, TimerConfig::default(), false);
        let first: Vec<_> = std::iter::from_fn(|| s.poll_transmit()).collect();
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].code(), Some(100));
        s.respond(t0, response(&req, 180));
        s.poll_transmit();
        s.on_request(t0, &req);
        assert_eq!(s.poll_transmit().and_then(|m| m.code()), Some(180));
    }

    #[test]
    fn invite_server_retransmits_a_failure_on_timer_g_until_ack() {
        let t0 = Instant::now();
        let req = request("INVITE");
        let mut s = Server::new(req.clone(), t0, TimerConfig::default(), false);
        s.respond(t0, response(&req, 486));
        while s.poll_transmit().is_some() {}
        let mut at = Vec::new();
        while let Some(t) = s.poll_timeout() {
            if t > t0 + Duration::from_secs(9) {
                break;
            }
            s.handle_timeout(t);
            while s.poll_transmit().is_some() {
                at.push(t - t0);
            }
        }
        // G doubles up to T2: 0.5, 1.5, 3.5, 7.5 s.
        assert_eq!(at, ms(&[500, 1500, 3500, 7500]));
        let ack = ack_for(&req, &response(&req, 486));
        s.on_request(t0 + Duration::from_secs(9), &ack);
        assert_eq!(s.state(), ServerState::Confirmed);
        assert_eq!(
            s.poll_timeout(),
            Some(t0 + Duration::from_secs(14)),
            "timer I = T4"
        );
        s.handle_timeout(t0 + Duration::from_secs(14));
        assert!(s.is_terminated());
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn invite_server_reports_a_missing_ack_on_timer_h() {
        let t0 = Instant::now();
        let req = request("INVITE");
        let mut s = Server::new(req.clone(), t0, TimerConfig::default(), true);
        s.respond(t0, response(&req, 404));
        s.handle_timeout(t0 + Duration::from_secs(32));
        assert_eq!(s.poll_event(), Some(ServerEvent::NoAck));
        assert!(s.is_terminated());
    }

    #[test]
    fn invite_server_retransmits_2xx_until_acknowledged() {
        let t0 = Instant::now();
        let req = request("INVITE");
        let mut s = Server::new(req.clone(), t0, TimerConfig::default(), false);
        s.respond(t0, response(&req, 200));
        while s.poll_transmit().is_some() {}
        s.handle_timeout(t0 + Duration::from_millis(500));
        assert_eq!(s.poll_transmit().and_then(|m| m.code()), Some(200));
        s.acknowledged(t0 + Duration::from_millis(700));
        s.handle_timeout(t0 + Duration::from_millis(1500));
        assert!(s.poll_transmit().is_none());
        s.on_request(t0 + Duration::from_secs(2), &req);
        assert!(s.poll_transmit().is_none(), "timer L absorbs the INVITE");
        s.handle_timeout(t0 + Duration::from_millis(32_700));
        assert!(s.is_terminated());
        assert_eq!(s.poll_event(), None);
    }

    #[test]
    fn non_invite_server_answers_retransmissions_until_timer_j() {
        let t0 = Instant::now();
        let req = request("BYE");
        let mut s = Server::new(req.clone(), t0, TimerConfig::default(), false);
        assert!(s.poll_transmit().is_none(), "no 100 for non-INVITE");
        s.respond(t0, response(&req, 200));
        s.poll_transmit();
        s.on_request(t0 + Duration::from_secs(1), &req);
        assert_eq!(s.poll_transmit().and_then(|m| m.code()), Some(200));
        s.handle_timeout(t0 + Duration::from_secs(32));
        assert!(s.is_terminated());
    }

    #[test]
    fn keys_match_ack_to_its_invite() {
        let req = request("INVITE");
        let ack = ack_for(&req, &response(&req, 486));
        assert_eq!(Key::server(&req), Key::server(&ack));
        assert_ne!(Key::server(&req), Key::server(&request("CANCEL")));
        assert_eq!(Key::client(&response(&req, 180)).unwrap().method, "INVITE");
    }
}
