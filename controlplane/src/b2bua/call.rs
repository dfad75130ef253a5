//! The per-call state machine up to the answer: A's INVITE admitted,
//! routed and offered to B; B's provisionals, answer or failure relayed to
//! A; CANCEL; and how a call that never got going ends (its CDR).

use super::routing::Route;
use super::*;

/// Why an attempt fails before B is called: the code and reason for A.
type Refusal = (u16, String);

/// A's INVITE admitted, not yet routed: what the call starts from.
pub(super) struct Setup {
    pub(super) key: Key,
    pub(super) invite: Message,
    pub(super) facts: CallFacts,
    pub(super) a: Leg,
}

/// The facts of the call A's INVITE (from `from`) starts, for its CDR.
fn call_facts(now: Now, from: SocketAddr, invite: &Message) -> CallFacts {
    let v = invite.view();
    let (from_uri, to_uri) = (v.from().ok().map(|n| n.uri), v.to().ok().map(|n| n.uri));
    CallFacts {
        call_id: v.call_id().unwrap_or_default().to_string(),
        start: now.wall,
        answered: None,
        from_number: from_uri.and_then(user_of).unwrap_or_default(),
        to_number: invite.request_uri().and_then(user_of).unwrap_or_default(),
        from_uri: from_uri.map(str::to_string),
        to_uri: to_uri.map(str::to_string),
        request_uri: invite.request_uri().map(str::to_string),
        source_ip: from.ip(),
        destination_ip: None,
        trunk: None,
        carrier: None,
        gateway: None,
        org: None,
    }
}

impl B2bua {
    pub(super) fn overloaded(&mut self, now: Now) -> bool {
        if now.mono.duration_since(self.cps_window.0) >= Duration::from_secs(1) {
            self.cps_window = (now.mono, 0);
        }
        if self.calls.len() + self.ivr_calls() >= self.cfg.max_calls
            || self.cps_window.1 >= self.cfg.max_cps
        {
            return true;
        }
        self.cps_window.1 += 1;
        false
    }

    /// A's INVITE outside a dialog: admitted (or refused at once), routed,
    /// offered to the media manager, and sent on to B as a new call.
    pub(super) fn on_invite(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        invite: Message,
        media: &mut Media,
    ) {
        let Some(mut setup) = self.admit(now, from, key, invite) else {
            return;
        };
        let decision = self.dialplan.decide(&setup.facts.to_number);
        if let Decision::Ivr { menu } = decision {
            return self.answer_in_ivr(now, setup, &menu, media);
        }
        let route = match self.route(now, &setup.facts, decision) {
            Ok(r) => r,
            Err((code, reason)) => return self.refuse(now, &setup, code, &reason),
        };
        setup.facts.carrier = route.carrier.clone();
        setup.facts.gateway = route.gateway.map(|g| g.to_string());
        setup.facts.org = self
            .dialplan
            .org(&setup.facts.to_number)
            .map(str::to_string);
        let srtp = self.dialplan.srtp(&setup.facts.to_number);
        let record = self.dialplan.records(&setup.facts.to_number);
        match self.offer_to_b(now, &setup, (srtp, record), media) {
            Ok(b_offer) => self.call_b(now, setup, route, b_offer),
            Err((code, reason)) => self.refuse(now, &setup, code, &reason),
        }
    }

    /// The answer to an INVITE refused before it becomes a call: 483 for
    /// Max-Forwards 0, 482 for a loop, 422 below Min-SE, 503 when
    /// overloaded, a challenge or 403 for missing credentials.
    fn refusal(&mut self, now: Now, from: SocketAddr, invite: &Message) -> Option<Message> {
        let retry_after = self.cfg.retry_after_secs.to_string();
        let reject = |code: u16, reason: &str| {
            let mut r = Message::response_to(invite, code, reason, None);
            if code == 503 {
                r.add_header("Retry-After", retry_after.clone());
            }
            r
        };
        let looped = invite
            .values("Via")
            .filter_map(|v| ViaRef::parse(v).ok())
            .any(|v| {
                v.host.parse() == Ok(self.local.ip()) && v.port.unwrap_or(5060) == self.local.port()
            });
        let view = invite.view();
        let call_id = view.call_id().unwrap_or_default();
        let early = if view.max_forwards() == Ok(Some(0)) {
            Some(reject(483, reason_phrase(483)))
        } else if looped || self.calls.contains_key(call_id) {
            Some(reject(482, reason_phrase(482)))
        } else if session_expires(invite).is_some_and(|se| se < self.cfg.min_se_secs) {
            let mut r = reject(422, reason_phrase(422));
            r.add_header("Min-SE", self.cfg.min_se_secs.to_string());
            Some(r)
        } else if let Some(closed) = self.guard.closed() {
            Some(reject(503, closed_reason(closed)))
        } else if self.overloaded(now) {
            self.counters.overload += 1;
            Some(reject(503, "Overloaded"))
        } else {
            None
        };
        early.or_else(|| {
            let trusted = self.cfg.trusted.iter().any(|n| n.contains(&from.ip()));
            if self.cfg.users.is_empty() || trusted {
                return None;
            }
            let refused = self.authenticate(now, invite, "Proxy-Authorization", 407);
            refused
                .err()
                .map(|r| self.refused_credentials(now, from, r))
        })
    }

    /// A's INVITE becomes a call attempt (its server transaction, A's
    /// leg, the started record), or is refused at once.
    fn admit(&mut self, now: Now, from: SocketAddr, key: Key, invite: Message) -> Option<Setup> {
        if let Some(r) = self.refusal(now, from, &invite) {
            self.respond_new(now, from, key, invite, r, None);
            return None;
        }
        let secure = self.secure(from, invite.request_uri());
        let a = match Leg::caller(&invite, &self.ids.id(), &self.contact, from, secure) {
            Ok(a) => a,
            Err(e) => {
                self.counters.bad_requests += 1;
                let r = Message::response_to(&invite, 400, &e.to_string(), None);
                self.respond_new(now, from, key, invite, r, None);
                return None;
            }
        };
        self.counters.calls += 1;
        let facts = call_facts(now, from, &invite);
        let call = Some(facts.call_id.clone());
        self.open_server(now, from, key.clone(), invite.clone(), None, call);
        self.records.push(facts.started());
        Some(Setup {
            key,
            invite,
            facts,
            a,
        })
    }

    /// The attempt fails before B is called: `code` to A, a failed CDR.
    pub(super) fn refuse(&mut self, now: Now, s: &Setup, code: u16, reason: &str) {
        let r = Message::response_to(&s.invite, code, reason, Some(&s.a.dialog.id.local_tag));
        self.respond_server(now, &s.key, r);
        let out = Outcome {
            status: Disposition::Failed,
            code,
            reason: reason.to_string(),
            by: HangupBy::Relay,
        };
        let t = self.transport_of(s.a.addr).token().to_ascii_lowercase();
        let a = LegIds::of(&s.a.dialog, s.a.addr);
        let cdr = s.facts.cdr(None, &out, a, None, [&t, ""], now.wall);
        self.records.push(Record::Ended(Box::new(cdr)));
    }

    /// A's offer through the media manager (recorded when the route says):
    /// the SDP for B, in SRTP or plain RTP as the route's `srtp` asks. The
    /// session manager's own records and timeouts give way to this B2BUA's.
    fn offer_to_b(
        &mut self,
        now: Now,
        s: &Setup,
        (srtp, record): (Option<RouteSrtp>, bool),
        media: &mut Media,
    ) -> Result<String, Refusal> {
        let Some(offer) = sdp_of(&s.invite) else {
            return Err((488, "SDP Offer Required".into()));
        };
        let call_id = &s.facts.call_id;
        let mut o = media_options(s.facts.source_ip);
        o.transport_protocol = srtp.and_then(|p| transport_towards(&offer, p));
        o.record_call = record.then_some(true);
        o.org = s.facts.org.clone();
        let a_tag = s.a.dialog.id.remote_tag.as_deref().unwrap_or_default();
        let b_offer = media
            .sessions
            .offer(now, media.plane, call_id, a_tag, None, &offer, &o);
        media.sessions.take_records();
        match b_offer {
            Ok(sdp) => {
                media.sessions.set_managed(call_id);
                Ok(sdp)
            }
            Err(e) => {
                tracing::warn!(call_id, reason = %e.0, "offer refused");
                Err((488, format!("Not Acceptable Here ({})", e.0)))
            }
        }
    }

    /// Requests to `route` go over the transport its URI asks for.
    fn use_transport_of(&mut self, route: &Route) {
        let asked = UriRef::parse(&route.uri)
            .ok()
            .and_then(|u| u.param("transport"))
            .unwrap_or_default();
        if asked.eq_ignore_ascii_case("tcp") {
            self.streams.insert(route.addr, Transport::Tcp);
        } else if asked.eq_ignore_ascii_case("tls") {
            self.streams.insert(route.addr, Transport::Tls);
        }
    }

    /// A new B leg's INVITE (outside any dialog) from `from_uri` to `uri`
    /// at `to`, with a fresh Call-ID and tag; and its branch.
    pub(super) fn outgoing_invite(
        &mut self,
        from_uri: &str,
        uri: &str,
        to: SocketAddr,
    ) -> (Message, String) {
        let call_id = format!("{}@tollgate", self.ids.id());
        let tag = self.ids.id();
        let (via, branch) = self.via(to);
        let mut m = Message::request("INVITE", uri);
        m.add_header("Via", via);
        m.add_header("Max-Forwards", "70");
        m.add_header("From", format!("{from_uri};tag={tag}"));
        m.add_header("To", format!("<{uri}>"));
        m.add_header("Call-ID", call_id);
        m.add_header("CSeq", "1 INVITE");
        m.add_header("Contact", self.contact.clone());
        (m, branch)
    }

    /// The INVITE to B with `b_offer`; the call is made, ringing until the
    /// ring timeout.
    fn call_b(&mut self, now: Now, s: Setup, route: Route, b_offer: String) {
        self.use_transport_of(&route);
        let Setup {
            key,
            invite,
            mut facts,
            a,
        } = s;
        let call_id = facts.call_id.clone();
        facts.trunk = Some(route.uri.clone());
        facts.destination_ip = Some(route.addr.ip());
        let (mut b_req, branch) =
            self.outgoing_invite(&a.dialog.remote_uri, &route.uri, route.addr);
        let mf = invite.view().max_forwards().ok().flatten().unwrap_or(70);
        let mf = mf.saturating_sub(1);
        b_req.set_header("Max-Forwards", mf.to_string());
        copy_headers(&invite, &mut b_req, &SESSION_TIMER_HEADERS);
        let b_req = with_sdp(b_req, Some(b_offer));
        let ck = (branch, "INVITE".to_string());
        self.start_client(
            now,
            ck.clone(),
            b_req.clone(),
            route.addr,
            &call_id,
            Purpose::BInvite,
        );
        tracing::info!(
            call_id,
            number = facts.to_number,
            target = route.uri,
            "call routed"
        );
        let ring = now.mono + Duration::from_secs(self.cfg.ring_timeout_secs);
        self.due.push(Reverse((ring, Due::Ring(call_id.clone()))));
        let invite_cseq = invite.view().cseq().map_or(0, |c| c.number);
        let b = Leg {
            dialog: None,
            addr: route.addr,
        };
        let call = Call {
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
            candidates: route.rest,
            b_provisional: false,
            relayed_invite: None,
            media: true,
        };
        for (dialog, side) in call.dialog_keys().into_iter().zip([Side::A, Side::B]) {
            self.dialogs.insert(dialog, (call_id.clone(), side));
        }
        self.calls.insert(call_id, call);
    }

    pub(super) fn on_b_invite_event(
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
            101..=199 => self.on_b_provisional(now, call_id, &resp, media),
            200..=299 => self.on_b_answer(now, call_id, &resp, media),
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

    /// B rings or sends early media: relayed to A (its SDP through media).
    fn on_b_provisional(&mut self, now: Now, call_id: &str, resp: &Message, media: &mut Media) {
        call_mut(&mut self.calls, call_id).b_provisional = true;
        self.learn_b_dialog(call_id, resp);
        let sdp = sdp_of(resp).and_then(|answer| self.media_answer(now, call_id, &answer, media));
        self.answer_a(now, call_id, resp, resp.code().unwrap_or(180), sdp);
    }

    /// B answers: ACK to B, the answer to A, the call is up (session timer
    /// and media timeout armed). A repeated 2xx only gets our ACK again.
    fn on_b_answer(&mut self, now: Now, call_id: &str, resp: &Message, media: &mut Media) {
        let call = call_mut(&mut self.calls, call_id);
        if call.phase == Phase::Answered {
            // A retransmitted 2xx: our ACK was lost.
            if let Some(ack) = call.b_ack.clone() {
                let to = call.b.addr;
                self.send(to, &ack);
            }
            return;
        }
        self.learn_b_dialog(call_id, resp);
        let call = call_mut(&mut self.calls, call_id);
        let ack_cseq = call.b_invite_req.view().cseq().map_or(1, |c| c.number);
        let to = call.b.addr;
        let (via, _) = self.via(to);
        let call = call_mut(&mut self.calls, call_id);
        call.a.dialog.confirm();
        call.b_ack = call.b.dialog.as_ref().map(|d| d.ack(ack_cseq, &via));
        if let Some(ack) = call.b_ack.clone() {
            self.send(to, &ack);
        }
        let sdp = sdp_of(resp).and_then(|answer| self.media_answer(now, call_id, &answer, media));
        let call = call_mut(&mut self.calls, call_id);
        call.phase = Phase::Answered;
        call.ring_deadline = None;
        call.facts.answered = Some(now.wall);
        self.counters.answered += 1;
        if let Some(r) = call.facts.answered_record() {
            self.records.push(r);
        }
        let interval = session_expires(resp)
            .or_else(|| session_expires(&call.b_invite_req))
            .map(Duration::from_secs);
        self.arm_session(now, call_id, interval);
        self.arm_media_check(now, media);
        self.answer_a(now, call_id, resp, resp.code().unwrap_or(200), sdp);
        self.touch(call_id);
    }

    /// B's dialog from a tagged 1xx or 2xx to our INVITE (§12.1.2): made
    /// by the first one (or one from another fork, whose tag differs) and
    /// confirmed by the 2xx. A 1xx without Contact makes none; a 2xx
    /// without one leaves B reached at our INVITE's Request-URI.
    fn learn_b_dialog(&mut self, call_id: &str, resp: &Message) {
        let (Some(tag), Some(call)) = (resp.view().to_tag(), self.calls.get_mut(call_id)) else {
            return;
        };
        if let Some(d) = call
            .b
            .dialog
            .as_mut()
            .filter(|d| d.id.remote_tag.as_deref() == Some(tag))
        {
            return d.on_response(resp);
        }
        let Some(call) = self.calls.get(call_id) else {
            return;
        };
        let secure = self.secure(call.b.addr, call.b_invite_req.request_uri());
        let uac = |m: &Message| Dialog::uac(m, &self.contact, secure);
        let made = match resp.code() {
            Some(200..=299) => {
                let target = call.b_invite_req.request_uri().unwrap_or_default();
                leg::or_contact(resp, target, uac)
            }
            _ => uac(resp),
        };
        if let Ok(d) = made {
            call_mut(&mut self.calls, call_id).b.dialog = Some(d);
        }
    }

    /// A provisional or 2xx response to A's INVITE, with our tag and Contact.
    pub(super) fn answer_a(
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
        let tag = Some(call.a.dialog.id.local_tag.as_str());
        let mut r = Message::response_to(req, code, resp.reason(), tag);
        r.add_header("Contact", self.contact.clone());
        copy_headers(resp, &mut r, &SESSION_TIMER_HEADERS);
        let key = call.a_invite.clone();
        self.respond_server(now, &key, with_sdp(r, sdp));
    }

    /// B's answer SDP through the media manager; the SDP for A.
    pub(super) fn media_answer(
        &mut self,
        now: Now,
        call_id: &str,
        answer: &str,
        media: &mut Media,
    ) -> Option<String> {
        let call = self.calls.get(call_id)?;
        let a_tag = call.remote_tag(Side::A).unwrap_or_default();
        let b_tag = call.remote_tag(Side::B).unwrap_or_default();
        let o = media_options(call.b.addr.ip());
        let r = media
            .sessions
            .answer(now, media.plane, call_id, a_tag, b_tag, answer, &o);
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
    pub(super) fn fail_call(
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
            let tag = Some(call.a.dialog.id.local_tag.as_str());
            let mut r = Message::response_to(&req, code, reason, tag);
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
    pub(super) fn end_call(&mut self, now: Now, call_id: &str, out: Outcome, media: &mut Media) {
        let Some(call) = self.calls.remove(call_id) else {
            return;
        };
        self.touch(call_id);
        for key in call.dialog_keys() {
            self.dialogs.remove(&key);
        }
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
        let a = LegIds::of(&call.a.dialog, call.a.addr);
        let b = Some(call.b_ids());
        let cdr = call.facts.cdr(media_cdr, &out, a, b, [&ta, &tb], now.wall);
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
    pub(super) fn send_cancel(&mut self, now: Now, call_id: &str) {
        let Some(call) = self.calls.get(call_id).filter(|c| c.b_provisional) else {
            return;
        };
        let (invite, to) = (call.b_invite.clone(), call.b.addr);
        self.cancel_invite(now, &invite, to);
    }

    /// A CANCEL of our INVITE transaction `invite` to `to`, unless one is
    /// out already or the INVITE is over.
    pub(super) fn cancel_invite(&mut self, now: Now, invite: &ClientKey, to: SocketAddr) {
        let key = (invite.0.clone(), "CANCEL".to_string());
        if self.clients.contains_key(&key) {
            return;
        }
        let Some(inv) = self.clients.get(invite).map(|e| e.txn.request()) else {
            return;
        };
        let mut c = Message::request("CANCEL", inv.request_uri().unwrap_or_default());
        for h in ["Via", "From", "To", "Call-ID"] {
            if let Some(v) = inv.values(h).next() {
                c.add_header(h, v);
            }
        }
        let n = inv.view().cseq().map_or(1, |c| c.number);
        c.add_header("CSeq", format!("{n} CANCEL"));
        c.add_header("Max-Forwards", "70");
        self.start_client(now, key, c, to, "", Purpose::Cancel);
    }

    pub(super) fn on_cancel(
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

    /// A 2xx from `to` for an INVITE whose call is gone: ACK it, then BYE
    /// (§13.2.2.4), in the dialog the 2xx made.
    pub(super) fn ack_and_bye_orphan(&mut self, now: Now, to: SocketAddr, resp: &Message) {
        // Our INVITE's To URI is its Request-URI.
        let secure = self.secure(to, resp.view().to().ok().map(|n| n.uri));
        let Ok(mut dialog) = Dialog::uac(resp, &self.contact, secure) else {
            return;
        };
        let n = resp.view().cseq().map_or(1, |c| c.number);
        let (v, _) = self.via(to);
        let ack = dialog.ack(n, &v);
        self.send(to, &ack);
        let (v, branch) = self.via(to);
        let bye = dialog.request(Method::Bye, &v);
        self.start_client(now, (branch, "BYE".into()), bye, to, "", Purpose::Bye);
    }

    /// The ring timeout (`t`) of a call still ringing: 480 to A, CANCEL to B.
    pub(super) fn ring_timer(&mut self, now: Now, t: Instant, call_id: &str, media: &mut Media) {
        if self
            .calls
            .get(call_id)
            .is_some_and(|c| c.ring_deadline == Some(t))
        {
            tracing::info!(call_id, "no answer within the ring timeout");
            self.send_cancel(now, call_id);
            self.fail_call(now, call_id, (480, "No Answer"), HangupBy::Relay, media);
        }
    }
}

/// The reason phrase of a 503 for a node that takes no new calls now.
fn closed_reason(closed: guard::Closed) -> &'static str {
    match closed {
        guard::Closed::Draining => "Draining",
        guard::Closed::Shedding => "Overloaded",
        guard::Closed::SpoolHolding => "CDR Spool Full",
    }
}
