//! Transaction plumbing: one driver for the client and server
//! transactions (RFC 3261 §17) of every call. It creates them, sends what
//! they queue over the peer's transport, keeps their next timer on the
//! B2BUA's heap, and hands client events to their purpose (B's INVITE, a
//! relayed request, a gateway ping).

use super::*;

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

impl B2bua {
    pub(super) fn transport_of(&self, peer: SocketAddr) -> Transport {
        self.streams.get(&peer).copied().unwrap_or(Transport::Udp)
    }

    pub(super) fn reliable(&self, peer: SocketAddr) -> bool {
        self.transport_of(peer) != Transport::Udp
    }

    /// Whether a dialog with `peer` is secure (§12.1.1, §12.1.2): over TLS
    /// (or secure WebSocket) with a SIPS `request_uri`.
    pub(super) fn secure(&self, peer: SocketAddr, request_uri: Option<&str>) -> bool {
        let sips = request_uri.is_some_and(|u| UriRef::parse(u).is_ok_and(|u| u.is_sips()));
        sips && self.transport_of(peer).secure()
    }

    /// Our Via for a request to `to`, and its branch.
    pub(super) fn via(&mut self, to: SocketAddr) -> (String, String) {
        let branch = format!("z9hG4bK{}", self.ids.id());
        let t = self.transport_of(to).token();
        (
            format!("SIP/2.0/{t} {};branch={branch};rport", self.local),
            branch,
        )
    }

    pub(super) fn send(&mut self, to: SocketAddr, m: &Message) {
        self.out
            .push_back((self.transport_of(to), to, m.to_bytes()));
    }

    /// Answers `req` at once through a new server transaction.
    pub(super) fn respond_new(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        req: Message,
        resp: Message,
        call: Option<String>,
    ) {
        self.open_server(now, from, key, req, Some(resp), call);
    }

    /// A new server transaction for `req` from `from`, answered with
    /// `resp` when given, then run once.
    pub(super) fn open_server(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        req: Message,
        resp: Option<Message>,
        call: Option<String>,
    ) {
        let mut txn = Server::new(req, now.mono, self.timers, self.reliable(from));
        if let Some(resp) = resp {
            txn.respond(now.mono, resp);
        }
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

    pub(super) fn start_client(
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
    pub(super) fn respond_server(&mut self, now: Now, key: &Key, resp: Message) {
        if let Some(e) = self.servers.get_mut(key) {
            e.txn.respond(now.mono, resp);
        }
        self.pump_server(key);
    }

    /// Sends what a server transaction queued; drops it once terminated.
    pub(super) fn pump_server(&mut self, key: &Key) {
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
            } else if let Some(c) = call.as_ref().filter(|c| self.ivr_invite(c, key)) {
                self.ivr_no_ack(c);
            }
        }
    }

    /// Sends what a client transaction queued and acts on its events.
    pub(super) fn pump_client(&mut self, key: &ClientKey, now: Now, mut media: Option<&mut Media>) {
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
                (Purpose::IvrTransfer, Some(m)) => self.on_transfer_event(now, &call, ev, m),
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

    pub(super) fn on_response(&mut self, now: Now, resp: Message, media: &mut Media) {
        let Some(k) = Key::client(&resp) else { return };
        let key = (k.branch, k.method);
        let call = match self.clients.get_mut(&key) {
            Some(e) => {
                e.txn.on_response(now.mono, resp);
                e.call.clone()
            }
            None => return, // late or stray: nothing waits for it
        };
        self.touch(&call);
        self.pump_client(&key, now, Some(media));
        self.finish_pending(now, media);
    }

    /// A server transaction's timer at `t`, unless the entry is stale.
    pub(super) fn server_timer(&mut self, now: Now, t: Instant, key: &Key) {
        let Some(e) = self.servers.get_mut(key).filter(|e| e.armed == Some(t)) else {
            return;
        };
        e.armed = None;
        e.txn.handle_timeout(now.mono);
        self.counters.retransmissions_sent += e.txn.queued() as u64;
        self.pump_server(key);
    }

    /// A client transaction's timer at `t`, unless the entry is stale.
    pub(super) fn client_timer(
        &mut self,
        now: Now,
        t: Instant,
        key: &ClientKey,
        media: &mut Media,
    ) {
        let Some(e) = self.clients.get_mut(key).filter(|e| e.armed == Some(t)) else {
            return;
        };
        e.armed = None;
        e.txn.handle_timeout(now.mono);
        self.counters.retransmissions_sent += e.txn.queued() as u64;
        self.pump_client(key, now, Some(media));
    }
}
