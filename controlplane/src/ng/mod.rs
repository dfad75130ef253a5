//! NG commands onto the session manager: `ping`, `offer`, `answer`,
//! `delete`, `query`, `list`, `statistics`, `start recording`, `stop
//! recording` and `pause recording` (or `stop recording` with the flag
//! `pause` or `pause=yes`). Replies follow rtpengine's shapes; anything wrong comes back
//! as `result: error` with an `error-reason` that says what.
//!
//! A plain state machine: every request and the housekeeping tick carry a
//! [`Now`]; the NG server owns the sockets and the clock. It translates
//! between NG dictionaries and the session manager's typed requests and
//! reports: [`options`] reads what a request asks for, [`reply`] shapes
//! what comes back.

pub mod config;
pub mod options;
pub mod reply;

use crate::media::{FlowStat, MediaPlane, NgError, Sessions};
use crate::time::Now;
use reply::{error, ok};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;
use tollgate_ng::Value;

pub struct NgHandler {
    pub sessions: Sessions,
    pub plane: Box<dyn MediaPlane>,
    started: Instant,
    /// Offers and answers refused, by any cause.
    pub errors: u64,
    /// When counters were last read for media timeouts.
    last_stats: Instant,
    /// Drain mode: offers for calls not known yet are refused.
    pub draining: bool,
    /// The CDR spool's memory hold is half full (its disk refuses
    /// writes): offers for calls not known yet are refused.
    pub spool_holding: bool,
}

/// rtpengine's words for a `delete` of an unknown call or tag.
const NOT_FOUND: &str = "Call-ID not found or tags didn't match";

fn text<'a>(req: &'a Value, key: &str) -> Result<&'a str, NgError> {
    match req.get(key) {
        Some(v) => v
            .as_str()
            .ok_or_else(|| NgError(format!("`{key}` must be a string"))),
        None => Err(NgError(format!("missing required key `{key}`"))),
    }
}

fn opt_text<'a>(req: &'a Value, key: &str) -> Result<Option<&'a str>, NgError> {
    req.get(key)
        .map(|v| {
            v.as_str()
                .ok_or_else(|| NgError(format!("`{key}` must be a string")))
        })
        .transpose()
}

/// What a recording command asks: `start`, `stop` or `pause` (a `stop
/// recording` with `pause` in its flags or `pause=yes` pauses).
fn recording_verb<'a>(command: &'a str, req: &Value) -> &'a str {
    let verb = command.trim_end_matches(" recording");
    let flagged = match req.get("flags") {
        Some(Value::List(l)) => l.iter().any(|f| f.as_str() == Some("pause")),
        _ => false,
    };
    let keyed = req.get("pause").and_then(Value::as_str) == Some("yes");
    if verb == "stop" && (flagged || keyed) {
        "pause"
    } else {
        verb
    }
}

impl NgHandler {
    pub fn new(sessions: Sessions, plane: Box<dyn MediaPlane>, now: Now) -> Self {
        NgHandler {
            sessions,
            plane,
            started: now.mono,
            errors: 0,
            last_stats: now.mono,
            draining: false,
            spool_holding: false,
        }
    }

    /// Answers one request dictionary.
    pub fn handle(&mut self, now: Now, req: &Value) -> Value {
        let command = match req.get("command").map(|c| c.as_str()) {
            Some(Some(c)) => c.to_string(),
            Some(None) => return error("`command` must be a string"),
            None => return error("missing required key `command`"),
        };
        match self.dispatch(now, &command, req) {
            Ok(v) => v,
            Err(NgError(reason)) => {
                self.errors += 1;
                tracing::warn!(command, reason, "NG request refused");
                error(&reason)
            }
        }
    }

    fn stats(&mut self) -> HashMap<SocketAddr, FlowStat> {
        self.plane.stats().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "data plane counters unavailable");
            HashMap::new()
        })
    }

    fn dispatch(&mut self, now: Now, command: &str, req: &Value) -> Result<Value, NgError> {
        match command {
            "ping" => Ok(Value::dict([("result", Value::str("pong"))])),
            "offer" | "answer" => {
                let sdp = text(req, "sdp")?;
                let call_id = text(req, "call-id")?;
                let from_tag = text(req, "from-tag")?;
                let o = options::parse(req).map_err(NgError)?;
                let out = if command == "offer" {
                    if !self.sessions.has_call(call_id) {
                        if self.draining {
                            return Err(NgError("draining: no new calls on this node".into()));
                        }
                        if self.spool_holding {
                            return Err(NgError(
                                "the CDR spool cannot write: no new calls on this node".into(),
                            ));
                        }
                    }
                    let to_tag = opt_text(req, "to-tag")?;
                    let plane = self.plane.as_mut();
                    self.sessions
                        .offer(now, plane, call_id, from_tag, to_tag, sdp, &o)?
                } else {
                    let to_tag = text(req, "to-tag")?;
                    let plane = self.plane.as_mut();
                    self.sessions
                        .answer(now, plane, call_id, from_tag, to_tag, sdp, &o)?
                };
                let mut r = ok();
                r.set("sdp", Value::str(&out));
                Ok(r)
            }
            "delete" => {
                let call_id = text(req, "call-id")?;
                let o = options::parse(req).map_err(NgError)?;
                let from_tag = opt_text(req, "from-tag")?;
                let to_tag = opt_text(req, "to-tag")?;
                let plane = self.plane.as_mut();
                match self
                    .sessions
                    .delete(now, plane, call_id, from_tag, to_tag, o.delete_delay)
                {
                    // As rtpengine: the statistics come back when a tag says
                    // whose; a whole-call delete by Call-ID alone is just ok.
                    Some(report) if from_tag.is_some_and(|t| !t.is_empty()) => {
                        let mut r = reply::call(&report);
                        r.set("result", Value::str("ok"));
                        Ok(r)
                    }
                    Some(_) => Ok(ok()),
                    None if o.fatal => Err(NgError(NOT_FOUND.into())),
                    None => {
                        let mut r = ok();
                        r.set("warning", Value::str(NOT_FOUND));
                        Ok(r)
                    }
                }
            }
            "query" => {
                let call_id = text(req, "call-id")?;
                let only = opt_text(req, "to-tag")?
                    .filter(|t| !t.is_empty())
                    .or(opt_text(req, "from-tag")?.filter(|t| !t.is_empty()));
                let stats = self.sessions.call_stats(self.plane.as_mut(), call_id);
                let report = self
                    .sessions
                    .query(now, call_id, only, &stats)
                    .ok_or_else(|| NgError("Unknown call-id".into()))?;
                let mut r = reply::call(&report);
                r.set("result", Value::str("ok"));
                Ok(r)
            }
            "list" => {
                let limit = match req.get("limit") {
                    None => 32,
                    Some(Value::Int(n)) if *n > 0 => *n as usize,
                    Some(_) => return Err(NgError("`limit` must be a positive integer".into())),
                };
                let calls = self
                    .sessions
                    .list(limit)
                    .iter()
                    .map(|c| Value::str(c))
                    .collect();
                let mut r = ok();
                r.set("calls", Value::List(calls));
                Ok(r)
            }
            "statistics" => Ok(self.statistics(now)),
            "start recording" | "stop recording" | "pause recording" => {
                let call_id = text(req, "call-id")?;
                let plane = self.plane.as_mut();
                match recording_verb(command, req) {
                    "start" => self.sessions.start_recording(now, plane, call_id)?,
                    "pause" => self.sessions.pause_recording(plane, call_id)?,
                    _ => self.sessions.stop_recording(now, plane, call_id)?,
                }
                Ok(ok())
            }
            other => Err(NgError(format!("Unrecognized command {other:?}"))),
        }
    }

    fn statistics(&self, now: Now) -> Value {
        reply::statistics(&reply::Statistics {
            totals: self.sessions.totals,
            active: self.sessions.active(),
            ports_in_use: self.sessions.ports_in_use(),
            uptime: now.mono.saturating_duration_since(self.started),
            errors: self.errors,
        })
    }

    /// Housekeeping once a second: timeouts and delayed deletes.
    pub fn tick(&mut self, now: Now) {
        let fresh = now.mono.duration_since(self.last_stats) >= self.sessions.stats_every();
        let stats = fresh.then(|| self.stats());
        if fresh {
            self.last_stats = now.mono;
        }
        self.sessions
            .expire(now, self.plane.as_mut(), stats.as_ref());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::config::{MediaConfig, MediaInterface};
    use crate::media::memory::MemoryPlane as Plane;
    use tollgate_dataplane::flow::Flow;

    /// The handler on virtual time: requests and ticks happen at `now`,
    /// which only `advance` moves.
    struct Clocked {
        h: NgHandler,
        now: Now,
    }

    impl Clocked {
        fn handle(&mut self, req: &Value) -> Value {
            self.h.handle(self.now, req)
        }
        fn tick(&mut self) {
            self.h.tick(self.now)
        }
        fn advance(&mut self, d: std::time::Duration) {
            self.now = self.now.after(d);
        }
    }

    impl std::ops::Deref for Clocked {
        type Target = NgHandler;
        fn deref(&self) -> &NgHandler {
            &self.h
        }
    }

    impl std::ops::DerefMut for Clocked {
        fn deref_mut(&mut self) -> &mut NgHandler {
            &mut self.h
        }
    }

    fn handler(cfg: MediaConfig) -> (Clocked, Plane) {
        let plane = Plane::default();
        let now = Now::virtual_start();
        let h = NgHandler::new(Sessions::new(cfg), Box::new(plane.clone()), now);
        (Clocked { h, now }, plane)
    }

    fn two_interfaces() -> MediaConfig {
        MediaConfig {
            interfaces: vec![
                MediaInterface {
                    name: "priv".into(),
                    address: "10.0.1.1".parse().unwrap(),
                    advertise: None,
                },
                MediaInterface {
                    name: "pub".into(),
                    address: "10.0.2.1".parse().unwrap(),
                    advertise: Some("198.51.100.1".parse().unwrap()),
                },
            ],
            delete_delay_secs: 0,
            ..MediaConfig::default()
        }
    }

    fn sdp(ip: &str, port: u16, extra: &str) -> String {
        format!("v=0\r\no=user1 53655765 2353687637 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n{extra}")
    }

    fn list(items: &[&str]) -> Value {
        Value::List(items.iter().map(|s| Value::str(s)).collect())
    }

    fn req(command: &str, pairs: Vec<(&str, Value)>) -> Value {
        let mut v = Value::dict(pairs);
        v.set("command", Value::str(command));
        v
    }

    fn ok_sdp(r: &Value) -> String {
        assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"), "{r:?}");
        r.get("sdp")
            .and_then(Value::as_str)
            .expect("sdp")
            .to_string()
    }

    fn port_of(sdp: &str) -> u16 {
        tollgate_sip::sdp::Sdp::parse(sdp).unwrap().media[0].port()
    }

    fn offer(h: &mut Clocked, from_sdp: String, extra: Vec<(&str, Value)>) -> String {
        let mut p = vec![
            ("sdp", Value::str(&from_sdp)),
            ("call-id", Value::str("c1")),
            ("from-tag", Value::str("A")),
        ];
        p.extend(extra);
        ok_sdp(&h.handle(&req("offer", p)))
    }

    fn answer(h: &mut Clocked, from_sdp: String, extra: Vec<(&str, Value)>) -> String {
        let mut p = vec![
            ("sdp", Value::str(&from_sdp)),
            ("call-id", Value::str("c1")),
            ("from-tag", Value::str("A")),
            ("to-tag", Value::str("B")),
        ];
        p.extend(extra);
        ok_sdp(&h.handle(&req("answer", p)))
    }

    fn flow(p: &Plane, local: &str) -> Option<Flow> {
        p.flow(local.parse().unwrap())
    }

    /// A muxing caller, a callee offered no mux: the caller's RTCP, which
    /// arrives on its RTP port, is split off to the callee's RTCP port by
    /// the data plane's rtcp_demux stage; the other flows need no stage.
    #[test]
    fn rtcp_mux_demux_puts_the_split_in_the_pipeline() {
        use tollgate_dataplane::pipeline::StageSpec;
        let (mut h, p) = handler(MediaConfig {
            delete_delay_secs: 0,
            ..MediaConfig::default()
        });
        let demux = ("rtcp-mux", list(&["demux"]));
        let to_b = offer(
            &mut h,
            sdp("192.0.2.10", 7000, "a=rtcp-mux\r\n"),
            vec![demux],
        );
        assert!(!to_b.contains("a=rtcp-mux"), "B is offered no mux: {to_b}");
        let pb = port_of(&to_b);
        let to_a = answer(&mut h, sdp("192.0.2.20", 6000, ""), vec![]);
        assert!(to_a.contains("a=rtcp-mux"), "A keeps its mux: {to_a}");
        let pa = port_of(&to_a);
        let a_to_b = flow(&p, &format!("127.0.0.1:{pa}")).unwrap();
        assert_eq!(a_to_b.stages, vec![StageSpec::RtcpDemux]);
        assert_eq!(a_to_b.destination, "192.0.2.20:6000".parse().unwrap());
        let b_to_a = flow(&p, &format!("127.0.0.1:{pb}")).unwrap();
        assert!(b_to_a.stages.is_empty(), "{b_to_a:?}");
        let b_rtcp = flow(&p, &format!("127.0.0.1:{}", pb + 1)).unwrap();
        assert_eq!(b_rtcp.destination, "192.0.2.10:7000".parse().unwrap());
        assert!(b_rtcp.stages.is_empty());
    }

    #[test]
    fn stages_from_the_config_go_on_every_flow() {
        use tollgate_dataplane::pipeline::StageSpec;
        let (mut h, p) = handler(MediaConfig {
            stages: vec![StageSpec::Null],
            ..MediaConfig::default()
        });
        offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![]);
        answer(&mut h, sdp("192.0.2.20", 6000, ""), vec![]);
        let flows = p.flows();
        assert_eq!(flows.len(), 4);
        assert!(flows.values().all(|f| f.stages == [StageSpec::Null]));
    }

    #[test]
    fn offer_answer_rewrites_sdp_and_installs_both_directions() {
        let (mut h, p) = handler(MediaConfig {
            delete_delay_secs: 0,
            ..MediaConfig::default()
        });
        let replace = ("replace", list(&["origin", "session-connection"]));
        let to_b = offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![replace.clone()]);
        let pb = port_of(&to_b);
        assert!(
            to_b.contains("o=user1 53655765 2353687637 IN IP4 127.0.0.1\r\n"),
            "{to_b}"
        );
        assert!(to_b.contains("c=IN IP4 127.0.0.1\r\n"));
        assert!(
            to_b.contains(&format!("a=rtcp:{}\r\n", pb + 1)) && to_b.contains("a=sendrecv\r\n")
        );
        assert_eq!(pb % 2, 0);
        // Before the answer only B -> A can flow.
        let b_to_a = flow(&p, &format!("127.0.0.1:{pb}")).expect("B-facing flow after offer");
        assert_eq!(b_to_a.destination, "192.0.2.10:7000".parse().unwrap());
        assert_eq!(p.flows().len(), 2, "RTP and RTCP towards A");

        let to_a = answer(&mut h, sdp("192.0.2.20", 6000, ""), vec![replace]);
        let pa = port_of(&to_a);
        assert_ne!(pa, pb);
        let a_to_b = flow(&p, &format!("127.0.0.1:{pa}")).unwrap();
        assert_eq!(a_to_b.source, format!("127.0.0.1:{pb}").parse().unwrap());
        assert_eq!(a_to_b.destination, "192.0.2.20:6000".parse().unwrap());
        assert!(a_to_b.learn, "symmetric RTP learns the sender");
        assert_eq!(
            a_to_b.follow,
            Some(format!("127.0.0.1:{pb}").parse().unwrap()),
            "and sends where B really is"
        );
        let rtcp = flow(&p, &format!("127.0.0.1:{}", pa + 1)).unwrap();
        assert_eq!(rtcp.destination, "192.0.2.20:6001".parse().unwrap());
        assert_eq!(p.flows().len(), 4);

        let r = h.handle(&req("list", vec![]));
        assert_eq!(r.get("calls"), Some(&list(&["c1"])));
        let q = h.handle(&req("query", vec![("call-id", Value::str("c1"))]));
        let tag_a = q.get("tags").and_then(|t| t.get("A")).expect("tag A");
        let stream = &tag_a.get("medias").unwrap().as_list().unwrap()[0]
            .get("streams")
            .unwrap()
            .as_list()
            .unwrap()[0];
        assert_eq!(stream.get("local port"), Some(&Value::Int(pa as i64)));
        assert_eq!(
            stream.get("endpoint").and_then(|e| e.get("port")),
            Some(&Value::Int(7000))
        );
        assert_eq!(
            tag_a.get("subscriptions"),
            Some(&Value::List(vec![Value::dict([
                ("tag", Value::str("B")),
                ("type", Value::str("offer/answer"))
            ])]))
        );

        let d = h.handle(&req(
            "delete",
            vec![("call-id", Value::str("c1")), ("from-tag", Value::str("A"))],
        ));
        assert_eq!(d.get("result").and_then(Value::as_str), Some("ok"));
        assert!(
            d.get("tags").is_some(),
            "delete replies with the call's stats"
        );
        assert!(p.flows().is_empty());
        assert_eq!(h.sessions.ports_in_use(), 0);
        assert_eq!(
            h.handle(&req("list", vec![])).get("calls"),
            Some(&list(&[]))
        );
    }

    #[test]
    fn a_call_yields_started_answered_and_a_cdr_with_both_directions() {
        use tollgate_cdr::model::{Disposition, HangupBy, Record};
        let (mut h, p) = handler(two_interfaces());
        let from = |ip: &str| ("received from", list(&["IP4", ip]));
        let dir = ("direction", list(&["priv", "pub"]));
        let pb = port_of(&offer(
            &mut h,
            sdp("192.0.2.10", 7000, ""),
            vec![from("192.0.2.1"), dir],
        ));
        let pa = port_of(&answer(
            &mut h,
            sdp("203.0.113.20", 6000, ""),
            vec![from("203.0.113.2")],
        ));
        let started = h.sessions.take_records();
        assert!(
            matches!(&started[..], [Record::Started(s), Record::Answered { .. }]
                if s.call_id == "c1" && s.source_ip == Some("192.0.2.1".parse().unwrap())),
            "{started:?}"
        );
        // A sent 100 packets (2 lost) to its facing port, B sent 90.
        let stat = |packets, lost| FlowStat {
            packets,
            bytes: packets * 172,
            lost,
            jitter: Some(80),
            ..FlowStat::default()
        };
        // A's RTCP (muxed) gave a 400 ms round trip.
        p.set_stat(
            format!("10.0.1.1:{pa}").parse().unwrap(),
            FlowStat {
                rtt_us: Some(400_000),
                remote_lost: Some(3),
                remote_jitter: Some(160),
                ..stat(100, Some(2))
            },
        );
        p.set_stat(format!("10.0.2.1:{pb}").parse().unwrap(), stat(90, None));
        h.handle(&req(
            "delete",
            vec![("call-id", Value::str("c1")), ("from-tag", Value::str("B"))],
        ));
        let ended = h.sessions.take_records();
        let [Record::Ended(cdr)] = &ended[..] else {
            panic!("one CDR: {ended:?}");
        };
        assert_eq!(cdr.status, Some(Disposition::Answered));
        assert_eq!(cdr.hangup_by, Some(HangupBy::Callee), "B sent the delete");
        assert_eq!(cdr.source_ip, Some("192.0.2.1".parse().unwrap()));
        assert_eq!(cdr.destination_ip, Some("203.0.113.2".parse().unwrap()));
        assert!(cdr.answer_ms.is_some() && cdr.end_ms >= cdr.start_ms);
        let (a, b) = (&cdr.legs[0], &cdr.legs[1]);
        assert_eq!((a.leg.as_str(), b.leg.as_str()), ("a", "b"));
        assert_eq!(a.codec.as_deref(), Some("PCMU/8000"));
        assert_eq!(a.media_ip, Some("192.0.2.10".parse().unwrap()));
        assert_eq!((a.received.packets, a.sent.packets), (100, 90));
        assert_eq!((b.received.packets, b.sent.packets), (90, 100));
        assert_eq!(a.received.lost, Some(2));
        assert_eq!(a.received.jitter_ms, Some(10.0), "80 ticks at 8 kHz");
        assert_eq!(
            (a.remote_lost, a.remote_jitter_ms, a.rtt_ms),
            (Some(3), Some(20.0), Some(400.0)),
            "what A reported in RTCP"
        );
        assert_eq!((b.remote_lost, b.rtt_ms), (None, None), "B sent no RTCP");
        let impaired = |rtt_ms| {
            tollgate_cdr::quality::mos(&tollgate_cdr::quality::Impairments {
                loss_ratio: 2.0 / 102.0,
                jitter_ms: 10.0,
                rtt_ms,
            })
        };
        assert_eq!(
            a.received.mos,
            Some(impaired(Some(400.0))),
            "loss, jitter and RTT"
        );
        assert!(impaired(Some(400.0)) < impaired(None) && impaired(Some(400.0)) > 3.5);
        assert_eq!(b.received.mos, None, "no RTP view, no MOS");
    }

    #[test]
    fn an_unanswered_call_that_times_out_is_a_failed_cdr_ended_by_the_relay() {
        use tollgate_cdr::model::{Disposition, HangupBy, Record};
        let (mut h, _p) = handler(MediaConfig {
            final_timeout_secs: 1,
            ..MediaConfig::default()
        });
        offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![]);
        h.advance(std::time::Duration::from_millis(1100));
        h.tick();
        let recs = h.sessions.take_records();
        let Some(Record::Ended(cdr)) = recs.last() else {
            panic!("{recs:?}");
        };
        assert_eq!(cdr.status, Some(Disposition::Failed));
        assert_eq!(cdr.hangup_by, Some(HangupBy::Relay));
        assert_eq!(cdr.sip_reason.as_deref(), Some("final timeout"));
        assert_eq!(cdr.legs.len(), 1, "the callee never had a tag");
    }

    #[test]
    fn reoffers_keep_ports_and_follow_hold_and_moves() {
        let (mut h, p) = handler(MediaConfig::default());
        let pb = port_of(&offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![]));
        let pa = port_of(&answer(&mut h, sdp("192.0.2.20", 6000, ""), vec![]));
        // A holds with the zero address: nothing is sent towards A any more.
        let hold = offer(&mut h, sdp("0.0.0.0", 7000, "a=sendonly\r\n"), vec![]);
        assert_eq!(port_of(&hold), pb, "ports stay");
        assert!(hold.contains("a=sendonly") && !hold.contains("a=sendrecv"));
        assert!(
            flow(&p, &format!("127.0.0.1:{pb}")).is_none(),
            "no flow towards a held party"
        );
        assert!(flow(&p, &format!("127.0.0.1:{pa}")).is_some());
        // Unhold at the same port: the ports stay.
        offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![]);
        assert_eq!(
            flow(&p, &format!("127.0.0.1:{pb}")).unwrap().destination,
            "192.0.2.10:7000".parse().unwrap()
        );
        // A moves: as rtpengine, B gets a new port to send to.
        let pb2 = port_of(&offer(&mut h, sdp("192.0.2.11", 7100, ""), vec![]));
        assert_ne!(pb2, pb);
        assert_eq!(
            flow(&p, &format!("127.0.0.1:{pb2}")).unwrap().destination,
            "192.0.2.11:7100".parse().unwrap()
        );
        // B re-INVITEs (B's tag is the from-tag now) and moves.
        let r = h.handle(&req(
            "offer",
            vec![
                ("sdp", Value::str(&sdp("192.0.2.21", 6200, ""))),
                ("call-id", Value::str("c1")),
                ("from-tag", Value::str("B")),
                ("to-tag", Value::str("A")),
            ],
        ));
        let pa2 = port_of(&ok_sdp(&r));
        assert_ne!(pa2, pa, "B moved: A's port is new");
        assert_eq!(
            flow(&p, &format!("127.0.0.1:{pa2}")).unwrap().destination,
            "192.0.2.21:6200".parse().unwrap()
        );
        assert_eq!(
            h.sessions.ports_in_use(),
            4,
            "old pairs stay for a move back"
        );
    }

    #[test]
    fn direction_picks_interfaces_and_advertised_addresses() {
        let (mut h, p) = handler(two_interfaces());
        let to_b = offer(
            &mut h,
            sdp("10.0.1.50", 7000, ""),
            vec![("direction", list(&["priv", "pub"]))],
        );
        assert!(
            to_b.contains("c=IN IP4 198.51.100.1\r\n"),
            "B sees pub's advertised address: {to_b}"
        );
        let pb = port_of(&to_b);
        let to_a = answer(&mut h, sdp("203.0.113.9", 6000, ""), vec![]);
        assert!(to_a.contains("c=IN IP4 10.0.1.1\r\n"), "{to_a}");
        let a_to_b = flow(&p, &format!("10.0.1.1:{}", port_of(&to_a))).unwrap();
        assert_eq!(a_to_b.source, format!("10.0.2.1:{pb}").parse().unwrap());
        let e = h.handle(&req(
            "offer",
            vec![
                ("sdp", Value::str(&sdp("10.0.1.50", 7000, ""))),
                ("call-id", Value::str("c2")),
                ("from-tag", Value::str("X")),
                ("direction", list(&["priv", "moon"])),
            ],
        ));
        assert!(e
            .get("error-reason")
            .and_then(Value::as_str)
            .unwrap()
            .contains("unknown interface \"moon\" (configured: priv, pub)"));
    }

    #[test]
    fn nat_source_media_address_codecs_ice_and_rtcp_mux() {
        let (mut h, p) = handler(MediaConfig::default());
        let ice = "a=ice-ufrag:x\r\na=ice-pwd:y\r\na=candidate:1 1 UDP 1 192.0.2.10 7000 typ host\r\na=rtcp-mux\r\n";
        let to_b = offer(
            &mut h,
            sdp("192.168.1.5", 7000, ice),
            vec![
                (
                    "flags",
                    list(&[
                        "SIP-source-address",
                        "codec-strip-PCMA",
                        "codec-offer-telephone-event",
                    ]),
                ),
                ("received-from", list(&["IP4", "203.0.113.7"])),
                ("ICE", Value::str("remove")),
            ],
        );
        assert!(
            !to_b.contains("ice-") && !to_b.contains("candidate"),
            "{to_b}"
        );
        assert!(
            to_b.contains(" RTP/AVP 0 101\r\n"),
            "PCMA stripped, order kept (codec offer only adds): {to_b}"
        );
        assert!(
            to_b.contains("a=rtcp-mux\r\n"),
            "A's rtcp-mux is offered on"
        );
        let pb = port_of(&to_b);
        assert_eq!(
            flow(&p, &format!("127.0.0.1:{pb}")).unwrap().destination,
            "203.0.113.7:7000".parse().unwrap(),
            "SIP source, not the private SDP address"
        );
        // B accepts mux: both sides mux, no RTCP flows at all.
        let to_a = answer(
            &mut h,
            sdp("192.0.2.20", 6000, "a=rtcp-mux\r\n"),
            vec![("media address", Value::str("192.0.2.99"))],
        );
        assert!(to_a.contains("a=rtcp-mux\r\n"));
        assert!(
            to_a.contains("c=IN IP4 192.0.2.99\r\n"),
            "`media address` is the relay's, written into the SDP: {to_a}"
        );
        let pa = port_of(&to_a);
        assert_eq!(
            flow(&p, &format!("127.0.0.1:{pa}")).unwrap().destination,
            "192.0.2.20:6000".parse().unwrap()
        );
        assert!(
            flow(&p, &format!("127.0.0.1:{}", pa + 1)).is_none()
                && flow(&p, &format!("127.0.0.1:{}", pb + 1)).is_none()
        );
        // rtcp-mux=require: RTCP on the RTP port, as rtpengine writes it.
        let (mut h2, _) = handler(MediaConfig::default());
        let to_b2 = offer(
            &mut h2,
            sdp("192.0.2.10", 7000, ""),
            vec![("rtcp-mux", list(&["require"]))],
        );
        let p2 = port_of(&to_b2);
        assert!(
            to_b2.contains(&format!("a=rtcp:{p2}\r\na=rtcp-mux\r\n")),
            "{to_b2}"
        );
    }

    #[test]
    fn asymmetric_and_strict_source_reach_the_flows() {
        let (mut h, p) = handler(MediaConfig::default());
        offer(
            &mut h,
            sdp("192.0.2.10", 7000, ""),
            vec![("flags", list(&["strict-source"]))],
        );
        let pa = port_of(&answer(
            &mut h,
            sdp("192.0.2.20", 6000, ""),
            vec![("flags", list(&["asymmetric"]))],
        ));
        let a_to_b = flow(&p, &format!("127.0.0.1:{pa}")).unwrap();
        assert!(a_to_b.strict && a_to_b.learn, "A is strict");
        assert_eq!(
            a_to_b.follow, None,
            "B is asymmetric: send to its SDP address"
        );
    }

    #[test]
    fn branches_deletes_and_timeouts() {
        let (mut h, p) = handler(MediaConfig {
            delete_delay_secs: 0,
            timeout_secs: 1,
            ..MediaConfig::default()
        });
        offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![]);
        answer(&mut h, sdp("192.0.2.20", 6000, ""), vec![]);
        // A second branch answers (forking): it takes over the B side.
        let r = h.handle(&req(
            "answer",
            vec![
                ("sdp", Value::str(&sdp("192.0.2.30", 6000, ""))),
                ("call-id", Value::str("c1")),
                ("from-tag", Value::str("A")),
                ("to-tag", Value::str("B2")),
            ],
        ));
        ok_sdp(&r);
        assert!(p
            .flows()
            .values()
            .any(|f| f.destination == "192.0.2.30:6000".parse().unwrap()));
        // Deleting the losing branch leaves the call up.
        let d = h.handle(&req(
            "delete",
            vec![
                ("call-id", Value::str("c1")),
                ("from-tag", Value::str("A")),
                ("to-tag", Value::str("B")),
            ],
        ));
        assert_eq!(d.get("result").and_then(Value::as_str), Some("ok"));
        assert_eq!(h.sessions.active(), 1);
        // Media timeout: every flow idle beyond the limit.
        h.advance(std::time::Duration::from_millis(1100));
        p.set_idle(5000);
        h.tick();
        assert_eq!(h.sessions.active(), 0);
        assert!(p.flows().is_empty());
        assert_eq!(h.sessions.totals.timeouts, 1);
        let s = h.handle(&req("statistics", vec![]));
        let total = s
            .get("statistics")
            .and_then(|s| s.get("totalstatistics"))
            .unwrap();
        assert_eq!(total.get("totaltimeoutsessions"), Some(&Value::Int(1)));
        assert_eq!(
            total.get("uptime"),
            Some(&Value::Int(1)),
            "1.1 s of virtual time"
        );
    }

    #[test]
    fn delete_delay_hides_the_call_but_keeps_media_until_it_expires() {
        let (mut h, p) = handler(MediaConfig::default());
        offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![]);
        answer(&mut h, sdp("192.0.2.20", 6000, ""), vec![]);
        h.handle(&req(
            "delete",
            vec![
                ("call-id", Value::str("c1")),
                ("delete delay", Value::Int(30)),
            ],
        ));
        assert_eq!(
            h.handle(&req("list", vec![])).get("calls"),
            Some(&list(&[]))
        );
        assert_eq!(p.flows().len(), 4, "media keeps flowing during the delay");
        h.tick();
        assert_eq!(p.flows().len(), 4);
        h.advance(std::time::Duration::from_millis(29_999));
        h.tick();
        assert_eq!(p.flows().len(), 4, "not before the delay is over");
        h.advance(std::time::Duration::from_millis(1));
        h.tick();
        assert!(p.flows().is_empty(), "removed when it is");
        let q = h.handle(&req("query", vec![("call-id", Value::str("c1"))]));
        assert_eq!(q.get("result").and_then(Value::as_str), Some("error"));
    }

    #[test]
    fn errors_say_what_is_wrong() {
        let (mut h, _) = handler(MediaConfig {
            port_min: 30000,
            port_max: 30003,
            ..MediaConfig::default()
        });
        let reason = |r: Value| {
            r.get("error-reason")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| format!("{r:?}"))
        };
        assert_eq!(
            reason(h.handle(&Value::dict([]))),
            "missing required key `command`"
        );
        assert_eq!(
            reason(h.handle(&req("dance", vec![]))),
            "Unrecognized command \"dance\""
        );
        assert_eq!(
            reason(h.handle(&req("offer", vec![("call-id", Value::str("c"))]))),
            "missing required key `sdp`"
        );
        let bad = h.handle(&req(
            "offer",
            vec![
                ("sdp", Value::str("v=0\r\nnonsense\r\n")),
                ("call-id", Value::str("c")),
                ("from-tag", Value::str("a")),
            ],
        ));
        assert_eq!(
            reason(bad),
            "offer SDP: SDP line 2: \"nonsense\" is not of the form x=value"
        );
        let unknown = h.handle(&req(
            "answer",
            vec![
                ("sdp", Value::str(&sdp("192.0.2.1", 5, ""))),
                ("call-id", Value::str("nope")),
                ("from-tag", Value::str("a")),
                ("to-tag", Value::str("b")),
            ],
        ));
        assert_eq!(reason(unknown), "Unknown call-ID \"nope\"");
        let fatal = h.handle(&req(
            "delete",
            vec![("call-id", Value::str("nope")), ("flags", list(&["fatal"]))],
        ));
        assert_eq!(reason(fatal), NOT_FOUND);
        let soft = h.handle(&req("delete", vec![("call-id", Value::str("nope"))]));
        assert!(soft.get("warning").is_some() && soft.get("result") == Some(&Value::str("ok")));
        // Two port pairs: one call takes both; the next is refused cleanly.
        offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![]);
        let full = h.handle(&req(
            "offer",
            vec![
                ("sdp", Value::str(&sdp("192.0.2.10", 7000, ""))),
                ("call-id", Value::str("c2")),
                ("from-tag", Value::str("Z")),
            ],
        ));
        assert_eq!(
            reason(full),
            "no free media ports on interface \"default\" (30000-30003)"
        );
        assert_eq!(
            h.sessions.active(),
            1,
            "the refused call left nothing behind"
        );
        assert_eq!(h.sessions.ports_in_use(), 2);
    }

    /// The taps on the call's RTP flows, by local address: the recording
    /// number each names (the RTCP-only flows carry none).
    fn taps(p: &Plane) -> Vec<(SocketAddr, Option<u32>)> {
        use tollgate_dataplane::pipeline::StageSpec;
        p.flows()
            .into_iter()
            .filter(|(l, _)| l.port() % 2 == 0)
            .map(|(l, f)| {
                let tap = f.stages.iter().find_map(|s| match s {
                    StageSpec::Tap { recording } => Some(*recording),
                    _ => None,
                });
                (l, tap)
            })
            .collect()
    }

    fn command(h: &mut Clocked, command: &str, extra: Vec<(&str, Value)>) -> Value {
        let mut p = vec![("call-id", Value::str("c1"))];
        p.extend(extra);
        h.handle(&req(command, p))
    }

    /// `record call` on the offer taps both directions from the start; a
    /// re-offer keeps the same recording on the flows; pause takes the
    /// taps off and start puts the same recording back; delete closes it
    /// with both legs described.
    #[test]
    fn record_call_start_pause_and_delete_keep_one_recording_per_run() {
        let (mut h, p) = handler(MediaConfig {
            delete_delay_secs: 0,
            ..MediaConfig::default()
        });
        let rec = ("record call", Value::str("yes"));
        offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![rec]);
        answer(&mut h, sdp("192.0.2.20", 6000, ""), vec![]);
        let taps = taps(&p);
        assert_eq!(taps.len(), 2, "{taps:?}");
        assert!(taps.iter().all(|(_, t)| *t == Some(1)), "{taps:?}");
        offer(&mut h, sdp("192.0.2.10", 7000, "a=sendrecv\r\n"), vec![]);
        assert!(taps_all(&p, Some(1)), "a re-offer keeps the tap");
        let r = command(&mut h, "pause recording", vec![]);
        assert_eq!(r.get("result").and_then(Value::as_str), Some("ok"));
        assert!(taps_all(&p, None), "paused: no tap");
        assert_eq!(p.recordings().len(), 1, "the capture stays open");
        command(&mut h, "start recording", vec![]);
        assert!(taps_all(&p, Some(1)), "resumed into the same recording");
        command(&mut h, "stop recording", vec![("flags", list(&["pause"]))]);
        assert!(taps_all(&p, None), "stop with the pause flag pauses");
        assert!(h.sessions.take_recordings().is_empty());
        command(&mut h, "start recording", vec![]);
        let del = command(&mut h, "delete", vec![("from-tag", Value::str("A"))]);
        assert_eq!(del.get("result").and_then(Value::as_str), Some("ok"));
        let closed = h.sessions.take_recordings();
        assert_eq!(closed.len(), 1);
        let m = &closed[0].meta;
        assert_eq!(m.call_id, "c1");
        let legs: Vec<(&str, &str)> = m
            .legs
            .iter()
            .map(|l| (l.tag.as_str(), l.label.as_str()))
            .collect();
        assert!(
            legs.contains(&("A", "caller")) && legs.contains(&("B", "callee")),
            "{legs:?}"
        );
        let codecs: Vec<&str> = m.legs[0].codecs.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(codecs, ["PCMU", "PCMA", "telephone-event"]);
        assert!(closed[0].open.ends_with(format!("open/{}", m.recording_id)));
        assert!(p.recordings().is_empty(), "closed in the data plane");
    }

    fn taps_all(p: &Plane, want: Option<u32>) -> bool {
        let t = taps(p);
        !t.is_empty() && t.iter().all(|(_, n)| *n == want)
    }

    /// A stopped recording is handed over; starting again makes a new one;
    /// an unknown call is refused; `record call=no` on an answer stops it.
    #[test]
    fn stop_hands_over_and_a_new_start_is_a_new_recording() {
        let (mut h, p) = handler(MediaConfig {
            delete_delay_secs: 0,
            ..MediaConfig::default()
        });
        offer(&mut h, sdp("192.0.2.10", 7000, ""), vec![]);
        answer(&mut h, sdp("192.0.2.20", 6000, ""), vec![]);
        assert!(taps_all(&p, None), "not recorded unless asked");
        command(&mut h, "start recording", vec![]);
        assert!(taps_all(&p, Some(1)));
        command(&mut h, "stop recording", vec![]);
        assert!(taps_all(&p, None));
        assert_eq!(h.sessions.take_recordings().len(), 1);
        command(&mut h, "start recording", vec![]);
        assert!(taps_all(&p, Some(2)), "a second recording of the call");
        answer(
            &mut h,
            sdp("192.0.2.20", 6000, ""),
            vec![("record call", Value::str("no"))],
        );
        assert!(taps_all(&p, None));
        assert_eq!(h.sessions.take_recordings().len(), 1);
        let unknown = h.handle(&req(
            "start recording",
            vec![("call-id", Value::str("nope"))],
        ));
        assert_eq!(unknown.get("result").and_then(Value::as_str), Some("error"));
        let bad = h.handle(&req(
            "offer",
            vec![
                ("sdp", Value::str(&sdp("192.0.2.10", 7000, ""))),
                ("call-id", Value::str("c2")),
                ("from-tag", Value::str("A")),
                ("record call", Value::str("maybe")),
            ],
        ));
        let why = bad
            .get("error-reason")
            .and_then(Value::as_str)
            .unwrap_or_default();
        assert!(why.contains("`record call`: \"maybe\""), "{why}");
    }
}
