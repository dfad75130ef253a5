//! Calls the IVR answers itself (a route's `target = "ivr:MENU_ID"`).
//!
//! Such a call has one leg, the caller's, and its media is one data-plane
//! flow on a relay port the media manager lends: it matches what the
//! caller sends and sends back to the caller. Its stages are RFC 4733
//! detection and what the caller is to hear: a cached prompt, a beep
//! standing in for a text prompt (nothing speaks text yet) or for a
//! prompt the data plane has not loaded, or silence.
//! The IVR [`Engine`] walks the call through the menus. Digits reach it
//! from the flow's `dtmf` events and from SIP INFO (application/dtmf-relay,
//! `Signal=5`); prompt ends from `prompt_done` and `tone_done`; its digit
//! timers from the B2BUA's timer heap. Its outputs become flow updates
//! and, for a hangup, our BYE. The stages' events are taken from the data
//! plane every [`POLL`] while an IVR call is up. Each call writes one
//! CDR: its trunk is `ivr:MENU_ID`, its reason names how it left the IVR,
//! the menus it went through and the digits it heard.
//!
//! A `transfer` calls B from a second relay port (`ivr_transfer`).
//!
//! Not yet: queues and agents (the engine asks, the call is hung up
//! saying so), SRTP callers (488), and surviving a control-plane restart
//! (IVR calls are not journaled).

use super::call::Setup;
use super::ivr_transfer::Transfer;
use super::*;
use crate::ivr::engine::{Engine, Output, Trail};
use crate::ivr::menu::Prompt;
use std::net::IpAddr;
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::stages::{AfterPrompt, ToneSpec};
use tollgate_dataplane::pipeline::{EventKind, StageSpec};
use tollgate_sip::sdp::Sdp;

/// How often the data plane's stage events are taken while IVR calls are up.
const POLL: Duration = Duration::from_millis(20);
/// Packet interval of everything the IVR sends.
const PTIME_MS: u32 = 20;

/// The caller's media as its offer gives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CallerMedia {
    pub(super) addr: SocketAddr,
    /// 0 (PCMU) or 8 (PCMA): the first of them the caller offered.
    pub(super) audio_pt: u8,
    /// The caller's telephone-event payload type, if it offered one.
    event_pt: Option<u8>,
}

pub(super) struct IvrCall {
    facts: CallFacts,
    pub(super) a: Leg,
    a_invite: Key,
    /// Our RTP address: the flow's match and source.
    pub(super) local: SocketAddr,
    pub(super) caller: CallerMedia,
    /// What plays, with the engine's token for its end.
    pub(super) playing: Option<(Sound, u64)>,
    /// The B leg of a `transfer`, once asked for.
    pub(super) transfer: Option<Transfer>,
}

/// The IVR calls and their engine.
#[derive(Default)]
pub(super) struct IvrCalls {
    pub(super) engine: Option<Engine>,
    /// By the caller's Call-ID.
    pub(super) calls: HashMap<String, IvrCall>,
    /// The flow's local address to its call.
    flows: HashMap<SocketAddr, String>,
    /// Transfers' B dialogs, (Call-ID, our tag), to their calls.
    pub(super) b_dialogs: HashMap<(String, String), String>,
    /// The time of the live [`Due::Ivr`] entry on the timer heap.
    armed: Option<Instant>,
    /// Calls whose caller never acknowledged our 200, to end at the next
    /// look (where the media manager is at hand).
    unacknowledged: Vec<String>,
}

/// How an IVR call ended, for its CDR.
pub(super) enum Left {
    /// The IVR hung up: its engine's `hangup`, or what it could not do.
    Ivr(String),
    Caller,
    /// The callee of a transfer.
    Callee,
}

/// The caller's audio stream in `offer`: where it listens, the first of
/// PCMU/PCMA it offers and its telephone-event type; or why the IVR
/// cannot take it.
pub(super) fn caller_media(offer: &str) -> Result<CallerMedia, String> {
    let sdp = Sdp::parse(offer).map_err(|e| format!("offer SDP: {e}"))?;
    let (i, m) = sdp
        .media
        .iter()
        .enumerate()
        .find(|(_, m)| m.kind() == "audio" && m.port() != 0)
        .ok_or("the offer has no audio stream")?;
    if m.proto() != "RTP/AVP" {
        return Err(format!("the IVR takes RTP/AVP, not {}", m.proto()));
    }
    let formats = m.formats();
    let audio_pt = formats
        .iter()
        .find_map(|f| match m.codec_name(f)?.to_ascii_uppercase().as_str() {
            "PCMU" | "PCMA" => f.parse().ok().filter(|pt| matches!(pt, 0 | 8)),
            _ => None,
        })
        .ok_or("the IVR speaks PCMU or PCMA (payload type 0 or 8); the offer has neither")?;
    let event_pt = formats.iter().find_map(|f| {
        let name = m.codec_name(f)?;
        name.eq_ignore_ascii_case("telephone-event")
            .then(|| f.parse().ok())
            .flatten()
    });
    let ip = sdp
        .connection(i)
        .ok_or("the audio stream has no c= address")?;
    Ok(CallerMedia {
        addr: SocketAddr::new(ip, m.port()),
        audio_pt,
        event_pt,
    })
}

/// Our SDP (the caller's answer, a transfer's offer): `caller`'s codec and telephone-event type, at `port` of `ip`.
pub(super) fn our_sdp(ip: IpAddr, port: u16, caller: &CallerMedia, version: u64) -> String {
    let family = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let codec = if caller.audio_pt == 0 { "PCMU" } else { "PCMA" };
    let mut formats = caller.audio_pt.to_string();
    let mut attrs = format!("a=rtpmap:{} {codec}/8000\r\n", caller.audio_pt);
    if let Some(ev) = caller.event_pt {
        formats.push_str(&format!(" {ev}"));
        attrs.push_str(&format!(
            "a=rtpmap:{ev} telephone-event/8000\r\na=fmtp:{ev} 0-16\r\n"
        ));
    }
    format!(
        "v=0\r\no=tollgate {version} {version} IN {family} {ip}\r\ns=tollgate IVR\r\n\
         c=IN {family} {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP {formats}\r\n{attrs}\
         a=ptime:{PTIME_MS}\r\na=sendrecv\r\n"
    )
}

/// The digit of an application/dtmf-relay body (`Signal=5`), if any.
fn relayed_digit(body: &[u8]) -> Option<char> {
    let text = std::str::from_utf8(body).ok()?;
    let value = text.lines().find_map(|l| {
        let (k, v) = l.split_once('=')?;
        k.trim().eq_ignore_ascii_case("signal").then(|| v.trim())
    })?;
    let mut chars = value.chars();
    let digit = chars.next()?.to_ascii_uppercase();
    (chars.next().is_none() && "0123456789*#ABCD".contains(digit)).then_some(digit)
}

/// What the caller hears for a prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Sound {
    /// A prompt of the data plane's cache.
    Cached(u32),
    /// The beep standing in for text (or for a prompt not in the cache).
    Beep,
}

impl Sound {
    fn of(p: &Prompt) -> Sound {
        match p {
            Prompt::Cached(id) => Sound::Cached(*id),
            Prompt::Text(_) => Sound::Beep,
        }
    }
}

/// The stages of an IVR flow: digit detection, then `sound` (silence
/// when none).
fn stages(caller: &CallerMedia, sound: Option<Sound>) -> Vec<StageSpec> {
    let detect = caller.event_pt.map(|payload_type| StageSpec::DtmfDetect {
        payload_type,
        consume: true,
    });
    let payload_type = caller.audio_pt;
    let sound = match sound {
        Some(Sound::Cached(prompt)) => StageSpec::Prompt {
            prompt,
            payload_type,
            ptime_ms: PTIME_MS,
            repeat: 1,
            then: AfterPrompt::Silence,
            consume: true,
        },
        Some(Sound::Beep) => StageSpec::Tone {
            tone: ToneSpec::parse("beep").expect("`beep` is a named tone"),
            payload_type,
            ptime_ms: PTIME_MS,
            repeat: 1,
            consume: true,
        },
        None => StageSpec::Silence {
            payload_type,
            ptime_ms: PTIME_MS,
        },
    };
    detect.into_iter().chain([sound]).collect()
}

impl IvrCall {
    /// The flow of the caller's port: back to the caller through `stages`.
    pub(super) fn flow(&self, stages: Vec<StageSpec>) -> Flow {
        Flow {
            stages,
            ..Flow::relay(self.local, self.local, self.caller.addr)
        }
    }
}

impl B2bua {
    /// Calls routed to `ivr:` routes are answered by `engine` from now on.
    pub fn set_ivr(&mut self, engine: Engine) {
        self.ivr.engine = Some(engine);
    }

    /// The IVR's menus read anew: calls move to them at their next menu.
    pub fn set_ivr_menus(&mut self, menus: crate::ivr::menu::Menus) {
        if let Some(e) = self.ivr.engine.as_mut() {
            e.set_menus(menus);
        }
    }

    /// Calls in the IVR.
    pub fn ivr_calls(&self) -> usize {
        self.ivr.calls.len()
    }

    /// A's INVITE to an `ivr:` route: answered here with a relay port
    /// whose flow plays `menu`'s prompt, or refused (no IVR loaded, no
    /// usable audio, no port, no such menu).
    pub(super) fn answer_in_ivr(&mut self, now: Now, s: Setup, menu: &str, media: &mut Media) {
        let refusal = match self.take_ivr_call(now, &s, menu, media) {
            Ok(()) => return,
            Err(r) => r,
        };
        tracing::info!(
            call_id = s.facts.call_id,
            menu,
            code = refusal.0,
            reason = refusal.1,
            "IVR call refused"
        );
        self.refuse(now, &s, refusal.0, &refusal.1);
    }

    fn take_ivr_call(
        &mut self,
        now: Now,
        s: &Setup,
        menu: &str,
        media: &mut Media,
    ) -> Result<(), (u16, String)> {
        let call_id = s.facts.call_id.clone();
        let Some(engine) = self.ivr.engine.as_mut() else {
            return Err((503, "IVR Unavailable".into()));
        };
        let offer = sdp_of(&s.invite).ok_or((488, "SDP Offer Required".to_string()))?;
        let caller =
            caller_media(&offer).map_err(|e| (488, format!("Not Acceptable Here ({e})")))?;
        let (local, advertise) = media
            .sessions
            .lend_port()
            .ok_or((503, "No Media Ports".to_string()))?;
        if let Err(e) = engine.start(now, &call_id, menu) {
            media.sessions.return_port(local.port());
            return Err((404, e.to_string()));
        }
        let version = crate::media::ms(now.wall).unsigned_abs();
        let sdp = our_sdp(advertise, local.port(), &caller, version);
        let tag = Some(s.a.dialog.id.local_tag.as_str());
        let mut ok = Message::response_to(&s.invite, 200, "OK", tag);
        ok.add_header("Contact", self.contact.clone());
        self.respond_server(now, &s.key, with_sdp(ok, Some(sdp)));
        let mut facts = s.facts.clone();
        facts.answered = Some(now.wall);
        facts.trunk = Some(format!("{}{menu}", config::IVR));
        facts.destination_ip = Some(local.ip());
        self.counters.answered += 1;
        tracing::info!(call_id, menu, %local, caller = %caller.addr, "call answered by the IVR");
        self.ivr.flows.insert(local, call_id.clone());
        let call = IvrCall {
            facts,
            a: s.a.clone(),
            a_invite: s.key.clone(),
            local,
            caller,
            playing: None,
            transfer: None,
        };
        self.ivr.calls.insert(call_id, call);
        self.drive_ivr(now, HashMap::new(), media);
        Ok(())
    }

    /// The IVR call and side the dialog of `req` (or ACK) belongs to.
    fn ivr_side(&self, req: &Message) -> Option<(String, Side)> {
        let v = req.view();
        let (cid, tag) = (v.call_id()?, v.to_tag()?);
        if let Some(c) = self.ivr.calls.get(cid) {
            return (c.a.dialog.id.local_tag == tag).then(|| (cid.to_string(), Side::A));
        }
        let key = (cid.to_string(), tag.to_string());
        Some((self.ivr.b_dialogs.get(&key)?.clone(), Side::B))
    }

    /// Whether `req` (in a dialog) belongs to an IVR call.
    pub(super) fn in_ivr(&self, req: &Message) -> bool {
        self.ivr_side(req).is_some()
    }

    /// The ACK of our 200 to an IVR call's INVITE; false if it is not one.
    pub(super) fn ivr_ack(&mut self, now: Now, ack: &Message) -> bool {
        let Some((cid, Side::A)) = self.ivr_side(ack) else {
            return false;
        };
        let key = self.ivr.calls[&cid].a_invite.clone();
        if let Some(e) = self.servers.get_mut(&key) {
            e.txn.acknowledged(now.mono);
        }
        self.pump_server(&key);
        true
    }

    /// Whether `key` is the INVITE transaction of IVR call `call_id`.
    pub(super) fn ivr_invite(&self, call_id: &str, key: &Key) -> bool {
        self.ivr
            .calls
            .get(call_id)
            .is_some_and(|c| &c.a_invite == key)
    }

    /// The caller of `call_id` never acknowledged our 200: the call ends
    /// at the IVR's next look.
    pub(super) fn ivr_no_ack(&mut self, call_id: &str) {
        tracing::warn!(call_id, "no ACK for the IVR's 200; ending the call");
        self.ivr.unacknowledged.push(call_id.to_string());
    }

    /// A request in an IVR call's dialog: BYE ends it, INFO may carry a
    /// digit, a new offer is refused (the IVR's media stays as it is).
    pub(super) fn ivr_in_dialog(
        &mut self,
        now: Now,
        from: SocketAddr,
        key: Key,
        req: Message,
        media: &mut Media,
    ) {
        let Some((call_id, side)) = self.ivr_side(&req) else {
            return;
        };
        let Some(call) = self.ivr.calls.get_mut(&call_id) else {
            return;
        };
        let dialog = match side {
            Side::A => Some(&mut call.a.dialog),
            Side::B => call.transfer.as_mut().and_then(|t| t.b.dialog.as_mut()),
        };
        if let Some(Err(r)) = dialog.map(|d| d.on_request(&req)) {
            return self.respond_new(now, from, key, req, r, None);
        }
        let (code, digit) = match req.request_method() {
            Some(Method::Bye) => (200, None),
            Some(Method::Info) if side == Side::A => {
                let relay = req
                    .header("Content-Type")
                    .is_some_and(|t| t.eq_ignore_ascii_case("application/dtmf-relay"));
                match relay.then(|| relayed_digit(&req.body)).flatten() {
                    Some(d) => (200, Some(d)),
                    None if relay => (400, None),
                    None => (415, None),
                }
            }
            Some(Method::Invite | Method::Update) => (488, None),
            _ => (200, None),
        };
        let bye = req.request_method() == Some(Method::Bye);
        let r = Message::response_to(&req, code, reason_phrase(code), None);
        self.respond_new(now, from, key, req, r, Some(call_id.clone()));
        if bye {
            let left = match side {
                Side::A => Left::Caller,
                Side::B => Left::Callee,
            };
            self.end_ivr_call(now, &call_id, left, media);
        } else if let (Some(d), Some(engine)) = (digit, self.ivr.engine.as_mut()) {
            tracing::debug!(call_id, digit = %d, "IVR digit by SIP INFO");
            engine.handle_digit(now, &call_id, d);
            self.drive_ivr(now, HashMap::new(), media);
        }
    }

    /// The IVR's timer: stage events from the data plane, digit timers.
    pub(super) fn ivr_timer(&mut self, now: Now, t: Instant, media: &mut Media) {
        if self.ivr.armed != Some(t) {
            return; // stale
        }
        self.ivr.armed = None;
        for call_id in std::mem::take(&mut self.ivr.unacknowledged) {
            let why = "no ACK from the caller".to_string();
            self.end_ivr_call(now, &call_id, Left::Ivr(why), media);
        }
        let events = match media.plane.events() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "IVR: the data plane's events could not be read");
                Vec::new()
            }
        };
        let mut sounds = HashMap::new();
        let Some(engine) = self.ivr.engine.as_mut() else {
            return;
        };
        for e in events {
            let Some(call_id) = self.ivr.flows.get(&e.local) else {
                continue;
            };
            let Some(call) = self.ivr.calls.get_mut(call_id) else {
                continue;
            };
            let done = match (e.kind, &call.playing) {
                (EventKind::Dtmf { digit, .. }, _) => {
                    tracing::debug!(call_id, %digit, "IVR digit by RFC 4733");
                    engine.handle_digit(now, call_id, digit);
                    None
                }
                (EventKind::PromptDone { prompt }, Some((Sound::Cached(id), token)))
                    if prompt == *id =>
                {
                    Some(*token)
                }
                (EventKind::ToneDone, Some((Sound::Beep, token))) => Some(*token),
                _ => None,
            };
            if let Some(token) = done {
                call.playing = None;
                sounds.insert(call_id.clone(), stages(&call.caller, None));
                engine.prompt_done(now, call_id, token);
            }
        }
        engine.handle_timeout(now);
        self.drive_ivr(now, sounds, media);
    }

    /// Carries out the engine's outputs: what each call hears (starting
    /// from `sounds`, silence for prompts that ended) becomes one flow
    /// update per call; hangups end their calls. Then the timer is armed.
    pub(super) fn drive_ivr(
        &mut self,
        now: Now,
        mut sounds: HashMap<String, Vec<StageSpec>>,
        media: &mut Media,
    ) {
        let (mut ending, mut transfers) = (Vec::new(), Vec::new());
        while let Some(out) = self.ivr.engine.as_mut().and_then(Engine::poll_output) {
            let (call_id, sound) = match out {
                Output::Play {
                    call,
                    prompt,
                    token,
                } => (call, Some((Sound::of(&prompt), token))),
                Output::Stop { call } => (call, None),
                Output::Hangup { call } => {
                    ending.push((call, "hangup".to_string()));
                    continue;
                }
                Output::Transfer { call, target } => {
                    transfers.push((call, target));
                    continue;
                }
                Output::Queue { call, .. } => {
                    ending.push((call, "queue not carried out yet".to_string()));
                    continue;
                }
            };
            let Some(call) = self.ivr.calls.get_mut(&call_id) else {
                continue;
            };
            sounds.insert(call_id, stages(&call.caller, sound.map(|s| s.0)));
            call.playing = sound;
        }
        self.put_ivr_flows(sounds, media);
        for (call_id, target) in transfers {
            if let Err(why) = self.start_transfer(now, &call_id, &target, media) {
                ending.push((call_id, why));
            }
        }
        for (call_id, why) in ending {
            self.end_ivr_call(now, &call_id, Left::Ivr(why), media);
        }
        self.arm_ivr(now);
    }

    /// Installs the flows of `sounds`. A prompt the data plane refuses
    /// (not in its cache) is replaced by the beep, so the caller hears
    /// something and the engine hears of its end.
    fn put_ivr_flows(&mut self, sounds: HashMap<String, Vec<StageSpec>>, media: &mut Media) {
        let (ids, puts): (Vec<String>, Vec<Flow>) = sounds
            .into_iter()
            .filter_map(|(id, st)| {
                let flow = self.ivr.calls.get(&id)?.flow(st);
                Some((id, flow))
            })
            .unzip();
        if puts.is_empty() {
            return;
        }
        let mut beeps = HashMap::new();
        for ((id, f), r) in ids
            .iter()
            .zip(&puts)
            .zip(media.plane.apply(&puts, &[]).puts)
        {
            let Err(e) = r else { continue };
            tracing::warn!(local = %f.local, error = %e, "IVR flow not installed");
            let Some(call) = self.ivr.calls.get_mut(id) else {
                continue;
            };
            if let Some((sound @ Sound::Cached(_), _)) = &mut call.playing {
                *sound = Sound::Beep;
                beeps.insert(id.clone(), stages(&call.caller, Some(Sound::Beep)));
            }
        }
        if !beeps.is_empty() {
            self.put_ivr_flows(beeps, media);
        }
    }

    /// The next look at the data plane and the engine's digit timers,
    /// while calls are in the IVR.
    fn arm_ivr(&mut self, now: Now) {
        if self.ivr.calls.is_empty() {
            return;
        }
        let poll = now.mono + POLL;
        let next = match self.ivr.engine.as_mut().and_then(Engine::poll_timeout) {
            Some(t) => t.min(poll),
            None => poll,
        };
        if self.ivr.armed.is_none_or(|a| next < a) {
            self.ivr.armed = Some(next);
            self.due.push(Reverse((next, Due::Ivr)));
        }
    }

    /// Removes an IVR call, its flows and ports; BYE to each leg that did
    /// not hang up (CANCEL to a transfer's unanswered B); its CDR.
    pub(super) fn end_ivr_call(&mut self, now: Now, call_id: &str, left: Left, media: &mut Media) {
        let Some(mut call) = self.ivr.calls.remove(call_id) else {
            return;
        };
        self.ivr.flows.remove(&call.local);
        let mut locals = vec![call.local];
        locals.extend(call.transfer.as_ref().map(|t| t.local));
        for (l, r) in locals.iter().zip(media.plane.apply(&[], &locals).removed) {
            if let Err(e) = r {
                tracing::warn!(local = %l, error = %e, "IVR flow not removed");
            }
            media.sessions.return_port(l.port());
        }
        let trail = self
            .ivr
            .engine
            .as_mut()
            .and_then(|e| e.end(call_id))
            .unwrap_or_default();
        if !matches!(left, Left::Caller) {
            let (via, branch) = self.via(call.a.addr);
            let bye = call.a.dialog.request(Method::Bye, &via);
            let key = (branch, "BYE".to_string());
            self.start_client(now, key, bye, call.a.addr, call_id, Purpose::Bye);
        }
        let b = call
            .transfer
            .take()
            .map(|t| self.end_transfer(now, call_id, t, &left));
        let (mut how, by) = match left {
            Left::Ivr(why) => (why, HangupBy::Relay),
            Left::Caller => ("caller hung up".to_string(), HangupBy::Caller),
            Left::Callee => ("callee hung up".to_string(), HangupBy::Callee),
        };
        let b = b.map(|(ids, uri)| {
            how = format!("transfer to {uri}, {how}");
            ids
        });
        let out = Outcome {
            status: Disposition::Answered,
            code: 200,
            reason: ivr_reason(&how, &trail),
            by,
        };
        tracing::info!(call_id, reason = out.reason, "IVR call ended");
        let t = self.transport_of(call.a.addr).token().to_ascii_lowercase();
        let tb = b
            .as_ref()
            .map(|b| self.transport_of(b.addr).token().to_ascii_lowercase());
        let a = LegIds::of(&call.a.dialog, call.a.addr);
        let transports = [t.as_str(), tb.as_deref().unwrap_or("")];
        let cdr = call.facts.cdr(None, &out, a, b, transports, now.wall);
        self.records.push(Record::Ended(Box::new(cdr)));
    }

    /// A transfer's B leg at the end of its call: BYE if it answered and
    /// did not hang up, CANCEL if it did not answer; its ids for the CDR
    /// and the URI called.
    fn end_transfer(
        &mut self,
        now: Now,
        call_id: &str,
        mut t: Transfer,
        left: &Left,
    ) -> (LegIds, String) {
        self.ivr.b_dialogs.remove(&key_of_invite(&t.req));
        match (t.bridged(), left) {
            (true, Left::Callee) => {}
            (true, _) => self.bye_b(now, call_id, &mut t),
            (false, _) => self.cancel_invite(now, &t.invite, t.b.addr),
        }
        let uri = t.req.request_uri().unwrap_or_default().to_string();
        (t.ids(), uri)
    }
}

/// The CDR's reason of an IVR call: how it left, its menus and digits.
fn ivr_reason(how: &str, trail: &Trail) -> String {
    format!(
        "IVR {how}; menus {}; digits {}",
        trail.menus.join(">"),
        if trail.digits.is_empty() {
            "none"
        } else {
            &trail.digits
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=- 1 1 IN IP4 192.0.2.5\r\ns=-\r\nc=IN IP4 192.0.2.5\r\nt=0 0\r\n\
m=audio 6000 RTP/AVP 18 8 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

    #[test]
    fn the_callers_first_g711_and_its_event_type_are_taken() {
        let m = caller_media(OFFER).unwrap();
        assert_eq!(
            m,
            CallerMedia {
                addr: "192.0.2.5:6000".parse().unwrap(),
                audio_pt: 8,
                event_pt: Some(101),
            }
        );
        let sdp = our_sdp("198.51.100.1".parse().unwrap(), 30000, &m, 7);
        assert!(sdp.contains("m=audio 30000 RTP/AVP 8 101\r\n"), "{sdp}");
        assert!(sdp.contains("c=IN IP4 198.51.100.1\r\n"), "{sdp}");
        assert!(sdp.contains("a=rtpmap:8 PCMA/8000\r\n"), "{sdp}");
        Sdp::parse(&sdp).expect("our answer parses");
    }

    #[test]
    fn offers_the_ivr_cannot_take_are_named() {
        let g729 = OFFER.replace("18 8 0 101", "18 101");
        assert!(caller_media(&g729).unwrap_err().contains("PCMU or PCMA"));
        let srtp = OFFER.replace("RTP/AVP", "RTP/SAVP");
        assert!(caller_media(&srtp).unwrap_err().contains("RTP/SAVP"));
        let held = OFFER.replace("audio 6000", "audio 0");
        assert!(caller_media(&held).unwrap_err().contains("no audio"));
    }

    #[test]
    fn a_dtmf_relay_body_gives_its_signal() {
        assert_eq!(relayed_digit(b"Signal=5\r\nDuration=160\r\n"), Some('5'));
        assert_eq!(relayed_digit(b"Signal= #\nDuration=100"), Some('#'));
        assert_eq!(relayed_digit(b"signal=b"), Some('B'));
        assert_eq!(relayed_digit(b"Signal=12"), None);
        assert_eq!(relayed_digit(b"Signal=x"), None);
        assert_eq!(relayed_digit(b"Duration=160"), None);
        assert_eq!(relayed_digit(&[0xff, 0xfe]), None);
    }

    #[test]
    fn what_plays_follows_the_prompt_kind() {
        let m = caller_media(OFFER).unwrap();
        let cached = stages(&m, Some(Sound::of(&Prompt::Cached(7))));
        assert!(matches!(
            cached[..],
            [
                StageSpec::DtmfDetect {
                    payload_type: 101,
                    consume: true
                },
                StageSpec::Prompt {
                    prompt: 7,
                    payload_type: 8,
                    ..
                }
            ]
        ));
        let text = stages(&m, Some(Sound::of(&Prompt::Text("Hello".into()))));
        assert!(matches!(text[1], StageSpec::Tone { repeat: 1, .. }));
        let quiet = stages(
            &CallerMedia {
                event_pt: None,
                ..m
            },
            None,
        );
        assert!(matches!(
            quiet[..],
            [StageSpec::Silence {
                payload_type: 8,
                ..
            }]
        ));
    }
}
