//! Inside the dialogs of an established call: ACKs, BYE from either side,
//! and other requests (re-INVITE, UPDATE, INFO...) relayed to the other
//! leg with their SDP through the media manager, glare answered 491, an
//! out-of-order CSeq 500 (RFC 3261 §12.2.2).

use super::*;

/// A dialog's key in the B2BUA's map, from the INVITE that made it (the
/// one we sent B): its Call-ID and the From tag (ours).
pub(super) fn key_of_invite(invite: &Message) -> (String, String) {
    let v = invite.view();
    let cid = v.call_id().unwrap_or_default();
    (
        cid.to_string(),
        v.from_tag().unwrap_or_default().to_string(),
    )
}

impl Call {
    /// The dialog on `side`; B has none before its first tagged response.
    pub(super) fn dialog(&self, side: Side) -> Option<&Dialog> {
        match side {
            Side::A => Some(&self.a.dialog),
            Side::B => self.b.dialog.as_ref(),
        }
    }

    pub(super) fn dialog_mut(&mut self, side: Side) -> Option<&mut Dialog> {
        match side {
            Side::A => Some(&mut self.a.dialog),
            Side::B => self.b.dialog.as_mut(),
        }
    }

    /// Where requests on `side` go.
    pub(super) fn addr(&self, side: Side) -> SocketAddr {
        match side {
            Side::A => self.a.addr,
            Side::B => self.b.addr,
        }
    }

    /// The peer's tag on `side`, once known.
    pub(super) fn remote_tag(&self, side: Side) -> Option<&str> {
        self.dialog(side)?.id.remote_tag.as_deref()
    }

    /// The keys of both legs' dialogs in the B2BUA's map (B's as our
    /// INVITE made it, whatever B's responses say).
    pub(super) fn dialog_keys(&self) -> [(String, String); 2] {
        let a = &self.a.dialog.id;
        let b = key_of_invite(&self.b_invite_req);
        [(a.call_id.clone(), a.local_tag.clone()), b]
    }

    /// What the CDR names of B's leg.
    pub(super) fn b_ids(&self) -> LegIds {
        match &self.b.dialog {
            Some(d) => LegIds::of(d, self.b.addr),
            None => LegIds::of_invite(&self.b_invite_req, self.b.addr),
        }
    }
}

impl B2bua {
    pub(super) fn on_ack(&mut self, now: Now, ack: Message) {
        if let Some(key) = Key::server(&ack) {
            if let Some(e) = self.servers.get_mut(&key) {
                e.txn.on_request(now.mono, &ack); // ACK of our non-2xx
                self.pump_server(&key);
                return;
            }
        }
        if self.ivr_ack(now, &ack) {
            return;
        }
        let v = ack.view();
        let (Some(cid), Some(tag)) = (v.call_id(), v.to_tag()) else {
            return;
        };
        let Some((call_id, side)) = self.dialogs.get(&(cid.into(), tag.into())).cloned() else {
            return;
        };
        // The INVITE (initial or re-INVITE) from that side with this CSeq.
        let n = v.cseq().map_or(0, |c| c.number);
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

    pub(super) fn in_dialog(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        req: Message,
        media: &mut Media,
    ) {
        let v = req.view();
        let (Some(cid), Some(tag)) = (v.call_id(), v.to_tag()) else {
            return;
        };
        let Some((call_id, side)) = self.dialogs.get(&(cid.into(), tag.into())).cloned() else {
            let r = Message::response_to(&req, 481, reason_phrase(481), None);
            self.respond_new(now, from, key, req, r, None);
            return;
        };
        self.touch(&call_id);
        let out_of_order = self
            .calls
            .get_mut(&call_id)
            .and_then(|c| c.dialog_mut(side))
            .and_then(|d| d.on_request(&req).err());
        if let Some(r) = out_of_order {
            tracing::debug!(call_id, "in-dialog request with a lower CSeq; 500");
            self.respond_new(now, from, key, req, r, None);
            return;
        }
        match req.request_method() {
            Some(Method::Bye) => self.on_bye(now, from, key, req, (call_id, side), media),
            Some(Method::Invite) if self.reinvite_pending(&call_id, side) => {
                // Glare: our own re-INVITE on this leg is unanswered (§14.1).
                let r = Message::response_to(&req, 491, reason_phrase(491), None);
                self.respond_new(now, from, key, req, r, None);
            }
            _ => self.relay_request(now, from, key, req, (call_id, side), media),
        }
    }

    /// A BYE from `side`: 200, then BYE on the other leg and the CDR; in
    /// A's early dialog it ends the attempt like a CANCEL.
    fn on_bye(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        req: Message,
        (call_id, side): (String, Side),
        media: &mut Media,
    ) {
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
            let out = Outcome {
                status: Disposition::Answered,
                code: 200,
                reason: "BYE".into(),
                by,
            };
            self.end_call(now, &call_id, out, media);
        } else if side == Side::A {
            self.send_cancel(now, &call_id);
            let cancelled = (487, reason_phrase(487));
            self.fail_call(now, &call_id, cancelled, HangupBy::Caller, media);
        }
    }

    /// Any other request from `side` goes to the other leg through a
    /// transaction pair, its SDP offer through the media manager (488 if
    /// refused).
    fn relay_request(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        req: Message,
        (call_id, side): (String, Side),
        media: &mut Media,
    ) {
        if self
            .calls
            .get(&call_id)
            .and_then(|c| c.dialog(side.other()))
            .is_none()
        {
            // The other leg is B before its dialog: nowhere to relay to.
            let r = Message::response_to(&req, 481, reason_phrase(481), None);
            self.respond_new(now, from, key, req, r, None);
            return;
        }
        let sdp = match self.relay_offer(now, from, (&call_id, side), &req, media) {
            Ok(sdp) => sdp,
            Err(why) => {
                let reason = format!("Not Acceptable Here ({why})");
                let r = Message::response_to(&req, 488, &reason, None);
                self.respond_new(now, from, key, req, r, None);
                return;
            }
        };
        let method = req.method().unwrap_or_default().to_string();
        let is_invite = req.request_method() == Some(Method::Invite);
        if is_invite {
            let n = req.view().cseq().map_or(0, |c| c.number);
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
        let Some((to, branch, mut out)) =
            self.leg_request(&call_id, side.other(), Method::parse(&method))
        else {
            return;
        };
        match sdp {
            Some(s) => out = with_sdp(out, Some(s)),
            None => copy_body(&req, &mut out),
        }
        copy_headers(&req, &mut out, &SESSION_TIMER_HEADERS);
        let client = (branch, method);
        if is_invite {
            call_mut(&mut self.calls, &call_id).relayed_invite =
                Some((side.other(), client.clone()));
        }
        let purpose = Purpose::Relay {
            server: key,
            from: side,
        };
        self.start_client(now, client, out, to, &call_id, purpose);
    }

    /// The SDP offer in an in-dialog request from `side` (at `from`),
    /// rewritten for the other leg; None without SDP, the reason when the
    /// media manager refuses it.
    fn relay_offer(
        &mut self,
        now: Now,
        from: SocketAddr,
        (call_id, side): (&str, Side),
        req: &Message,
        media: &mut Media,
    ) -> Result<Option<String>, String> {
        let (Some(offer), Some(call)) = (sdp_of(req), self.calls.get(call_id)) else {
            return Ok(None); // no SDP (the call was checked)
        };
        let o = media_options(from.ip());
        let xt = call.remote_tag(side).unwrap_or_default();
        let yt = call.remote_tag(side.other());
        let out = media
            .sessions
            .offer(now, media.plane, call_id, xt, yt, &offer, &o);
        media.sessions.take_records();
        out.map(Some).map_err(|e| e.0)
    }

    /// Whether a re-INVITE we relayed onto the call's leg `side` still
    /// waits for its final response.
    pub(super) fn reinvite_pending(&self, call_id: &str, side: Side) -> bool {
        self.calls
            .get(call_id)
            .and_then(|c| c.relayed_invite.as_ref())
            .filter(|(to, _)| *to == side)
            .and_then(|(_, key)| self.clients.get(key))
            .is_some_and(|e| {
                matches!(
                    e.txn.state(),
                    ClientState::Calling | ClientState::Proceeding
                )
            })
    }

    /// A response to a relayed in-dialog request: back to the sender.
    pub(super) fn on_relay_event(
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
                if r.view().cseq().is_ok_and(|c| c.method == Method::Invite)
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
        let is_invite = req.request_method() == Some(Method::Invite);
        let accepted = (200..300).contains(&code);
        let sdp = (is_invite && accepted)
            .then(|| self.relay_answer(now, (call_id, from), &resp, media))
            .flatten();
        if accepted {
            // A target refresh's 2xx moves where the leg's requests go.
            let to = self.calls.get_mut(call_id);
            if let Some(d) = to.and_then(|c| c.dialog_mut(from.other())) {
                d.on_response(&resp);
            }
        }
        if is_invite && accepted {
            self.ack_relayed(call_id, from.other(), &resp);
        }
        let refresh = matches!(req.request_method(), Some(Method::Invite | Method::Update));
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
        } else if !is_invite {
            copy_body(&resp, &mut r);
        }
        self.respond_server(now, server, r);
    }

    /// The SDP answer in a 2xx to a re-INVITE from `from`, rewritten for
    /// it; None without SDP or when the media manager refuses it.
    fn relay_answer(
        &mut self,
        now: Now,
        (call_id, from): (&str, Side),
        resp: &Message,
        media: &mut Media,
    ) -> Option<String> {
        let answer = sdp_of(resp)?;
        let call = self.calls.get(call_id)?;
        let o = media_options(call.addr(from.other()).ip());
        let xt = call.remote_tag(from).unwrap_or_default();
        let yt = call.remote_tag(from.other()).unwrap_or_default();
        let out = media
            .sessions
            .answer(now, media.plane, call_id, xt, yt, &answer, &o);
        media.sessions.take_records();
        out.map_err(|e| tracing::warn!(call_id, reason = %e.0, "re-INVITE answer refused"))
            .ok()
    }

    /// ACKs a relayed re-INVITE's 2xx on leg `side` ourselves; the
    /// sender's own ACK is absorbed.
    pub(super) fn ack_relayed(&mut self, call_id: &str, side: Side, resp: &Message) {
        let Ok(cseq) = resp.view().cseq() else {
            return;
        };
        let Some(to) = self.leg_addr(call_id, side) else {
            return;
        };
        let (via, _) = self.via(to);
        let dialog = self.calls.get(call_id).and_then(|c| c.dialog(side));
        if let Some(ack) = dialog.map(|d| d.ack(cseq.number, &via)) {
            self.send(to, &ack);
        }
    }

    /// A BYE on `side` of the call.
    pub(super) fn bye(&mut self, now: Now, call_id: &str, side: Side) {
        if let Some((to, branch, bye)) = self.leg_request(call_id, side, Method::Bye) {
            let id = call_id.to_string();
            self.start_client(now, (branch, "BYE".into()), bye, to, &id, Purpose::Bye);
        }
    }

    /// A request in the dialog on `side` of the call with its next CSeq:
    /// where it goes, its branch, the request. None without that dialog.
    pub(super) fn leg_request(
        &mut self,
        call_id: &str,
        side: Side,
        method: Method<'_>,
    ) -> Option<(SocketAddr, String, Message)> {
        let to = self.leg_addr(call_id, side)?;
        let (via, branch) = self.via(to);
        let dialog = self.calls.get_mut(call_id)?.dialog_mut(side)?;
        Some((to, branch, dialog.request(method, &via)))
    }

    /// Where requests on `side` of the call go.
    pub(super) fn leg_addr(&self, call_id: &str, side: Side) -> Option<SocketAddr> {
        Some(self.calls.get(call_id)?.addr(side))
    }
}
