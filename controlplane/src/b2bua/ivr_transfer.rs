//! An IVR call's `transfer` to an extension (through the dialplan) or a
//! SIP URI: B is called with an offer from a second relay port, in the
//! caller's codec, while the caller hears ringback on the IVR's port; on
//! B's answer the two ports are bridged (each forwards to the other's
//! peer, out of the other port), so the caller, whose SDP already points
//! at the IVR's port, needs no re-INVITE. B's failure or silence puts the
//! caller back in the menu it left; after the bridge a BYE from either
//! side ends both legs.

use super::ivr_call::{caller_media, our_sdp};
use super::*;
use crate::ivr::menu::Target;
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::stages::ToneSpec;
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_sip::message::Uri;

/// The B leg of a transferred IVR call.
pub(super) struct Transfer {
    /// Our RTP address facing B.
    pub(super) local: SocketAddr,
    pub(super) invite: ClientKey,
    pub(super) req: Message,
    pub(super) b: Leg<Option<Dialog>>,
    /// The ACK of B's 2xx, sent again if the 2xx is.
    ack: Option<Message>,
}

impl Transfer {
    /// Whether B answered and the media is bridged.
    pub(super) fn bridged(&self) -> bool {
        self.ack.is_some()
    }

    pub(super) fn ids(&self) -> LegIds {
        match &self.b.dialog {
            Some(d) => LegIds::of(d, self.b.addr),
            None => LegIds::of_invite(&self.req, self.b.addr),
        }
    }
}

impl B2bua {
    /// Where `target` is reached: its URI and address.
    fn transfer_route(&self, now: Now, target: &Target) -> Result<(String, SocketAddr), String> {
        match target {
            Target::Extension(n) => match self.dialplan.decide(n) {
                Decision::Forward { uri, addr } => Ok((uri, addr)),
                Decision::Registered => self
                    .registrar
                    .lookup(n, now.mono)
                    .map(|b| (b.contact.clone(), b.addr))
                    .ok_or_else(|| format!("transfer to {n}: not registered")),
                _ => Err(format!("transfer to {n}: the dialplan gives no SIP target")),
            },
            Target::Uri(u) => Uri::parse(u)
                .ok()
                .and_then(|p| Some(SocketAddr::new(p.ip()?, p.port.unwrap_or(5060))))
                .map(|addr| (u.clone(), addr))
                .ok_or_else(|| format!("transfer to {u}: needs an IP address host")),
            Target::Agent(_) => Err("agent transfer not carried out yet".into()),
        }
    }

    /// The engine's transfer of `call_id` to `target`: B called, the
    /// caller hearing ringback; or why not.
    pub(super) fn start_transfer(
        &mut self,
        now: Now,
        call_id: &str,
        target: &Target,
        media: &mut Media,
    ) -> Result<(), String> {
        let (uri, addr) = self.transfer_route(now, target)?;
        let Some(call) = self.ivr.calls.get(call_id) else {
            return Ok(());
        };
        let (local, advertise) = media
            .sessions
            .lend_port()
            .ok_or("transfer: no media ports")?;
        let caller = call.caller;
        let from_uri = call.a.dialog.remote_uri.clone();
        let version = crate::media::ms(now.wall).unsigned_abs();
        let offer = our_sdp(advertise, local.port(), &caller, version);
        let (req, branch) = self.outgoing_invite(&from_uri, &uri, addr);
        let req = with_sdp(req, Some(offer));
        let invite = (branch, "INVITE".to_string());
        self.ivr
            .b_dialogs
            .insert(key_of_invite(&req), call_id.to_string());
        let ringback = StageSpec::Tone {
            tone: ToneSpec::parse("ringback").expect("`ringback` is a named tone"),
            payload_type: caller.audio_pt,
            ptime_ms: 20,
            repeat: 0,
            consume: true,
        };
        let Some(call) = self.ivr.calls.get_mut(call_id) else {
            return Ok(());
        };
        call.playing = None;
        let flow = call.flow(vec![ringback]);
        call.transfer = Some(Transfer {
            local,
            invite: invite.clone(),
            req: req.clone(),
            b: Leg { dialog: None, addr },
            ack: None,
        });
        media.plane.apply(&[flow], &[]);
        tracing::info!(call_id, target = uri, "IVR call transferred");
        self.start_client(now, invite, req, addr, call_id, Purpose::IvrTransfer);
        Ok(())
    }

    /// B's answer to a transfer's INVITE, its failure or its silence.
    pub(super) fn on_transfer_event(
        &mut self,
        now: Now,
        call_id: &str,
        ev: ClientEvent,
        media: &mut Media,
    ) {
        let resp = match ev {
            ClientEvent::Timeout => return self.transfer_failed(now, call_id, 408, media),
            ClientEvent::Response(r) => r,
        };
        match resp.code().unwrap_or(500) {
            100..=199 => {}
            200..=299 => self.bridge(now, call_id, &resp, media),
            code => self.transfer_failed(now, call_id, code, media),
        }
    }

    /// The transfer did not come about (`code`): B's leg goes (with a BYE
    /// if B answered), and the caller is back in the menu it left.
    fn transfer_failed(&mut self, now: Now, call_id: &str, code: u16, media: &mut Media) {
        let Some(mut t) = self
            .ivr
            .calls
            .get_mut(call_id)
            .and_then(|c| c.transfer.take())
        else {
            return;
        };
        tracing::info!(call_id, code, "IVR transfer failed; back to the menu");
        self.ivr.b_dialogs.remove(&key_of_invite(&t.req));
        if let Some(Err(e)) = media.plane.apply(&[], &[t.local]).removed.pop() {
            tracing::warn!(local = %t.local, error = %e, "IVR flow not removed");
        }
        media.sessions.return_port(t.local.port());
        if t.bridged() {
            self.bye_b(now, call_id, &mut t);
        }
        if let Some(engine) = self.ivr.engine.as_mut() {
            engine.resume(call_id);
        }
        self.drive_ivr(now, HashMap::new(), media);
    }

    /// BYE in B's dialog, once it has one.
    pub(super) fn bye_b(&mut self, now: Now, call_id: &str, t: &mut Transfer) {
        if let Some(d) = t.b.dialog.as_mut() {
            let (via, branch) = self.via(t.b.addr);
            let bye = d.request(Method::Bye, &via);
            let key = (branch, "BYE".to_string());
            self.start_client(now, key, bye, t.b.addr, call_id, Purpose::Bye);
        }
    }

    /// B answered: ACK, and the caller's port and B's bridged.
    fn bridge(&mut self, now: Now, call_id: &str, resp: &Message, media: &mut Media) {
        let Some(t) = self
            .ivr
            .calls
            .get(call_id)
            .and_then(|c| c.transfer.as_ref())
        else {
            return;
        };
        let to = t.b.addr;
        if let Some(ack) = t.ack.clone() {
            return self.send(to, &ack); // a retransmitted 2xx: our ACK was lost
        }
        let target = t.req.request_uri().unwrap_or_default().to_string();
        let cseq = t.req.view().cseq().map_or(1, |c| c.number);
        let secure = self.secure(to, Some(&target));
        let uac = |m: &Message| Dialog::uac(m, &self.contact, secure);
        let Ok(mut d) = leg::or_contact(resp, &target, uac) else {
            return self.transfer_failed(now, call_id, 502, media);
        };
        let (via, _) = self.via(to);
        d.confirm();
        let ack = d.ack(cseq, &via);
        self.send(to, &ack);
        let Some(call) = self.ivr.calls.get_mut(call_id) else {
            return;
        };
        let Some(t) = call.transfer.as_mut() else {
            return;
        };
        t.b.dialog = Some(d);
        t.ack = Some(ack);
        let b_local = t.local;
        let Some(Ok(b_media)) = sdp_of(resp).map(|s| caller_media(&s)) else {
            tracing::warn!(call_id, "the transfer's callee answered without usable SDP");
            return self.transfer_failed(now, call_id, 488, media);
        };
        let flows = [
            Flow::relay(call.local, b_local, b_media.addr),
            Flow::relay(b_local, call.local, call.caller.addr),
        ];
        media.plane.apply(&flows, &[]);
        tracing::info!(call_id, "IVR transfer answered; media bridged");
    }
}
