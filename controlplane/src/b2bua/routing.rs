//! Least-cost routing at run time: failover to the next gateway when one
//! fails, and the OPTIONS pings that keep gateway health.

use super::*;

/// Where a new call goes: the target, the LCR carrier and gateway when
/// least-cost routing chose it, and the gateways left for failover.
pub(super) struct Route {
    pub(super) uri: String,
    pub(super) addr: SocketAddr,
    pub(super) carrier: Option<String>,
    pub(super) gateway: Option<i64>,
    pub(super) rest: VecDeque<Candidate>,
}

impl Route {
    fn to(uri: String, addr: SocketAddr) -> Route {
        Route {
            uri,
            addr,
            carrier: None,
            gateway: None,
            rest: VecDeque::new(),
        }
    }
}

impl B2bua {
    /// The dialplan's decision for the call's number, resolved: a URI, a
    /// registered user's contact, or the best live LCR gateway; or the
    /// code and reason to refuse it with.
    pub(super) fn route(
        &self,
        now: Now,
        facts: &CallFacts,
        decision: Decision,
    ) -> Result<Route, (u16, String)> {
        let number = &facts.to_number;
        match decision {
            Decision::Forward { uri, addr } => Ok(Route::to(uri, addr)),
            Decision::Registered => match self.registrar.lookup(number, now.mono) {
                Some(b) => Ok(Route::to(b.contact.clone(), b.addr)),
                None => Err((480, "Not Registered".into())),
            },
            Decision::Lcr => {
                let health = &self.health;
                let mut rest: VecDeque<Candidate> = self
                    .lcr
                    .route(number, |g| health.get(&g).copied().unwrap_or(true))
                    .into();
                let first = rest
                    .pop_front()
                    .ok_or((503, "No Route Available".to_string()))?;
                Ok(Route {
                    uri: first.uri,
                    addr: first.addr,
                    carrier: Some(first.carrier),
                    gateway: Some(first.gateway),
                    rest,
                })
            }
            // `on_invite` answers these itself, before routing.
            Decision::Ivr { .. } => Err((500, reason_phrase(500).into())),
            Decision::Reject { code, reason } => {
                let call_id = &facts.call_id;
                tracing::info!(
                    call_id,
                    number,
                    code,
                    reason,
                    "call rejected by the dialplan"
                );
                Err((code, reason))
            }
        }
    }

    pub(super) fn gateway_health(&mut self, now: Now, gateway: i64, up: bool) {
        if self.health.insert(gateway, up) != Some(up) {
            tracing::info!(gateway, up, "LCR gateway health changed");
        }
        self.health_changes
            .push((gateway, up, crate::media::ms(now.wall)));
    }

    /// OPTIONS to every LCR gateway; answers mark it up, silence down.
    pub(super) fn ping_gateways(&mut self, now: Now) {
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
    pub(super) fn try_next_gateway(&mut self, now: Now, call_id: &str) -> bool {
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
        let [_, old] = call.dialog_keys();
        let (local_uri, old_req) = (call.a.dialog.remote_uri.clone(), call.b_invite_req.clone());
        self.dialogs.remove(&old);
        let (mut req, branch) = self.outgoing_invite(&local_uri, &next.uri, next.addr);
        for h in ["Max-Forwards", "Content-Type"] {
            if let Some(v) = old_req.header(h) {
                req.set_header(h, v);
            }
        }
        req.body = old_req.body.clone();
        let ck = (branch, "INVITE".to_string());
        self.dialogs
            .insert(key_of_invite(&req), (call_id.to_string(), Side::B));
        let call = call_mut(&mut self.calls, call_id);
        call.facts.trunk = Some(next.uri.clone());
        call.facts.destination_ip = Some(next.addr.ip());
        call.facts.carrier = Some(next.carrier);
        call.facts.gateway = Some(next.gateway.to_string());
        call.b = Leg {
            dialog: None,
            addr: next.addr,
        };
        call.b_invite = ck.clone();
        call.b_invite_req = req.clone();
        call.b_provisional = false;
        call.b_ack = None;
        self.start_client(now, ck, req, next.addr, call_id, Purpose::BInvite);
        true
    }

    /// The ping interval came round: OPTIONS to every gateway, next armed.
    pub(super) fn ping_timer(&mut self, now: Now) {
        let next = now.mono + Duration::from_secs(self.cfg.lcr.ping_secs);
        self.next_ping = Some(next);
        self.due.push(Reverse((next, Due::Ping)));
        self.ping_gateways(now);
    }
}
