//! The session manager on virtual time over the in-memory data plane:
//! offer, answer and delete as flow changes and records, the delete
//! delay, the final and media timeouts, and query counters.

use super::memory::{FlowChange, MemoryPlane};
use super::options::Options;
use super::*;
use crate::time::Now;
use std::time::Duration;
use tollgate_cdr::model::{Disposition, HangupBy};

const A: &str = "192.0.2.10";
const B: &str = "192.0.2.20";

fn sdp(ip: &str, port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
    )
}

/// Sessions, their data plane and the virtual clock.
struct Relay {
    s: Sessions,
    plane: MemoryPlane,
    t0: Now,
}

impl Relay {
    /// The relay address of the flow that sends to A (192.0.2.20:6000).
    fn a_facing(&self) -> SocketAddr {
        self.plane
            .flows()
            .values()
            .find(|f| f.destination.to_string() == "192.0.2.20:6000")
            .map(|f| f.local)
            .expect("a flow towards A")
    }

    fn new(cfg: MediaConfig) -> Relay {
        Relay {
            s: Sessions::new(cfg),
            plane: MemoryPlane::default(),
            t0: Now::virtual_start(),
        }
    }

    fn at(&self, secs: f64) -> Now {
        self.t0.after(Duration::from_secs_f64(secs))
    }

    fn ms(&self, secs: f64) -> i64 {
        ms(self.at(secs).wall)
    }

    /// A's offer and B's answer of call `c1` at `secs`: A and B as told.
    fn call(&mut self, secs: f64) {
        let (now, o) = (self.at(secs), Options::default());
        let offer = sdp(A, 7000);
        self.s
            .offer(now, &mut self.plane, "c1", "A", None, &offer, &o)
            .unwrap();
        let answer = sdp(B, 6000);
        self.s
            .answer(now, &mut self.plane, "c1", "A", "B", &answer, &o)
            .unwrap();
    }

    fn expire(&mut self, secs: f64, stats: bool) -> Vec<(String, &'static str)> {
        let now = self.at(secs);
        let stats = stats.then(|| self.plane.stats().unwrap());
        self.s.expire(now, &mut self.plane, stats.as_ref())
    }

    fn destinations(&self) -> Vec<String> {
        let mut d: Vec<String> = self
            .plane
            .flows()
            .values()
            .map(|f| f.destination.to_string())
            .collect();
        d.sort();
        d
    }
}

fn cfg() -> MediaConfig {
    MediaConfig {
        delete_delay_secs: 0,
        timeout_secs: 20,
        ..MediaConfig::default()
    }
}

#[test]
fn offer_answer_and_delete_are_flow_changes_and_records() {
    let mut r = Relay::new(cfg());
    let (now, o) = (r.at(0.0), Options::default());
    let offer = sdp(A, 7000);
    r.s.offer(now, &mut r.plane, "c1", "A", None, &offer, &o)
        .unwrap();
    assert_eq!(r.destinations(), ["192.0.2.10:7000", "192.0.2.10:7001"]);
    let now = r.at(3.0);
    let answer = sdp(B, 6000);
    r.s.answer(now, &mut r.plane, "c1", "A", "B", &answer, &o)
        .unwrap();
    assert_eq!(
        r.destinations(),
        [
            "192.0.2.10:7000",
            "192.0.2.10:7001",
            "192.0.2.20:6000",
            "192.0.2.20:6001"
        ]
    );
    let puts = r.plane.take_log();
    assert!(
        puts.iter().all(|c| matches!(c, FlowChange::Put(_))),
        "{puts:?}"
    );

    let reply =
        r.s.delete(r.at(10.0), &mut r.plane, "c1", Some("A"), None, None);
    assert!(reply.is_some());
    let removed = r.plane.take_log();
    assert_eq!(removed.len(), 4, "{removed:?}");
    assert!(removed.iter().all(|c| matches!(c, FlowChange::Removed(_))));
    assert_eq!((r.s.active(), r.s.ports_in_use()), (0, 0));
    let recs = r.s.take_records();
    let [Record::Started(start), Record::Answered { at_ms, .. }, Record::Ended(cdr)] = &recs[..]
    else {
        panic!("{recs:?}");
    };
    assert_eq!(start.at_ms, r.ms(0.0));
    assert_eq!(*at_ms, r.ms(3.0));
    assert_eq!(
        (cdr.start_ms, cdr.answer_ms, cdr.end_ms),
        (r.ms(0.0), Some(r.ms(3.0)), r.ms(10.0))
    );
    assert_eq!(cdr.status, Some(Disposition::Answered));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Caller), "A deleted it");
    assert!(r
        .s
        .delete(r.at(11.0), &mut r.plane, "c1", None, None, None)
        .is_none());
}

#[test]
fn a_delete_reads_and_removes_the_flows_in_one_exchange() {
    let mut r = Relay::new(cfg());
    r.call(0.0);
    let a_facing = r.a_facing();
    let stat = FlowStat {
        packets: 50,
        bytes: 8000,
        lost: Some(2),
        ..FlowStat::default()
    };
    r.plane.set_stat(a_facing, stat);
    let before = r.plane.exchanges();
    let reply =
        r.s.delete(r.at(10.0), &mut r.plane, "c1", Some("A"), None, None);
    assert_eq!(r.plane.exchanges() - before, 1, "one exchange per teardown");
    assert!(r.plane.flows().is_empty());
    let a_media = &reply.unwrap().parties[0].medias[0];
    assert_eq!(
        a_media.rtp.stat.map(|s| s.packets),
        Some(50),
        "the reply has the final counters"
    );
    let Some(Record::Ended(cdr)) = r.s.take_records().pop() else {
        panic!("no CDR");
    };
    let a = &cdr.legs[0];
    assert_eq!((a.received.packets, a.received.bytes), (50, 8000), "{a:?}");
    assert_eq!(a.received.lost, Some(2));
    assert_eq!(cdr.legs[1].sent.packets, 50, "what A sent went to B");
}

#[test]
fn a_delete_delay_keeps_media_until_it_runs_out() {
    let mut r = Relay::new(cfg());
    r.call(0.0);
    r.s.delete(r.at(5.0), &mut r.plane, "c1", None, None, Some(30));
    assert_eq!(r.s.list(10), Vec::<String>::new(), "hidden at once");
    assert_eq!(
        r.s.take_records().len(),
        3,
        "the CDR is written at the delete"
    );
    assert!(r.expire(34.999, true).is_empty());
    assert_eq!(r.plane.flows().len(), 4, "media flows during the delay");
    assert_eq!(r.expire(35.0, true), [("c1".to_string(), "deleted")]);
    assert!(r.plane.flows().is_empty());
    assert_eq!(r.s.ports_in_use(), 0);
    assert!(r.s.take_records().is_empty(), "no second CDR");
    // Gone for good: query no longer knows it.
    assert!(r.s.query(r.at(36.0), "c1", None, &HashMap::new()).is_none());
}

#[test]
fn the_final_timeout_counts_from_creation() {
    let mut r = Relay::new(MediaConfig {
        final_timeout_secs: 60,
        ..cfg()
    });
    r.call(0.0);
    r.s.take_records();
    assert!(r.expire(59.999, false).is_empty());
    assert_eq!(r.expire(60.0, false), [("c1".to_string(), "final timeout")]);
    let recs = r.s.take_records();
    let [Record::Ended(cdr)] = &recs[..] else {
        panic!("{recs:?}")
    };
    assert_eq!(cdr.end_ms, r.ms(60.0));
    assert_eq!(cdr.hangup_by, Some(HangupBy::Relay));
    assert_eq!(r.s.totals.final_timeouts, 1);
    assert!(r.plane.flows().is_empty());
}

#[test]
fn the_media_timeout_needs_every_flow_idle_and_a_call_that_old() {
    let mut r = Relay::new(cfg());
    r.call(0.0);
    r.plane.set_idle(25_000);
    assert!(r.expire(19.0, true).is_empty(), "younger than the timeout");
    let one = *r.plane.flows().keys().next().unwrap();
    r.plane.set_stat(one, FlowStat::default());
    assert!(
        r.expire(30.0, true).is_empty(),
        "one flow still carries media"
    );
    assert!(
        r.expire(31.0, false).is_empty(),
        "no fresh counters: no verdict"
    );
    r.plane.set_idle(20_000);
    assert_eq!(r.expire(32.0, true), [("c1".to_string(), "media timeout")]);
    assert_eq!(r.s.totals.timeouts, 1);
    let Some(Record::Ended(cdr)) = r.s.take_records().pop() else {
        panic!("no CDR")
    };
    assert_eq!(cdr.end_ms, r.ms(32.0));
    assert_eq!(cdr.sip_reason.as_deref(), Some("media timeout"));
}

#[test]
fn a_managed_call_is_left_to_its_signalling() {
    let mut r = Relay::new(MediaConfig {
        final_timeout_secs: 60,
        ..cfg()
    });
    r.call(0.0);
    r.s.set_managed("c1");
    r.plane.set_idle(100_000);
    assert!(
        r.expire(100.0, true).is_empty(),
        "no media or final timeout"
    );
    assert_eq!(r.s.active(), 1);
}

#[test]
fn query_reports_the_data_planes_counters_as_of_now() {
    let mut r = Relay::new(cfg());
    r.call(0.0);
    let a_facing = r.a_facing();
    r.plane.set_stat(
        a_facing,
        FlowStat {
            packets: 50,
            bytes: 8000,
            last_packet_ms_ago: Some(2000),
            ..FlowStat::default()
        },
    );
    let stats = r.s.call_stats(&mut r.plane, "c1");
    let q = r.s.query(r.at(10.0), "c1", None, &stats).unwrap();
    let tag_a = q.parties.iter().find(|p| p.tag == "A").unwrap();
    let rtp = &tag_a.medias[0].rtp;
    assert_eq!(rtp.local, Some(a_facing));
    assert_eq!(rtp.stat.map(|s| (s.packets, s.bytes)), Some((50, 8000)));
    assert_eq!(q.at, r.at(10.0).wall, "counters as of now");
    assert_eq!(q.created, r.at(0.0).wall);
}

#[test]
fn a_journaled_session_is_restored_with_its_flows_and_ports_and_forgotten_when_deleted() {
    let mut r = Relay::new(cfg());
    r.call(0.0);
    let journal = r.s.take_journal();
    assert_eq!(journal.len(), 1);
    let (id, state) = journal.into_iter().next().unwrap();
    assert_eq!(id, "c1");
    assert!(r.s.take_journal().is_empty(), "nothing changed since");

    // A new process: the session comes back with the same flows, and its
    // ports are held (the next call gets others).
    let mut again = Relay::new(cfg());
    let flows = again.s.restore("c1", state.unwrap()).unwrap();
    let mut want: Vec<Flow> = r.plane.flows().values().cloned().collect();
    want.sort_by_key(|f| f.local);
    assert_eq!(flows, want);
    assert_eq!(again.s.ports_in_use(), r.s.ports_in_use());
    assert!(again.s.has_call("c1"));
    let held: Vec<u16> = flows.iter().map(|f| f.local.port()).collect();
    let now = again.at(1.0);
    let out = again
        .s
        .offer(
            now,
            &mut again.plane,
            "c2",
            "X",
            None,
            &sdp(A, 8000),
            &Options::default(),
        )
        .unwrap();
    assert!(
        held.iter().all(|p| !out.contains(&format!("audio {p} "))),
        "{out}"
    );

    // Deleted: a tombstone, once.
    again.s.take_journal();
    let now = again.at(2.0);
    again
        .s
        .delete(now, &mut again.plane, "c1", None, None, Some(0));
    assert_eq!(again.s.take_journal(), vec![("c1".to_string(), None)]);
    assert!(again.s.take_journal().is_empty());
}

/// A recorded call's journal entry carries its recording: restored by a
/// new process, its flows keep the tap with the same data-plane recording,
/// which the new process's data-plane link takes on (to reopen it should
/// the data plane restart), and its delete hands the recording over as the
/// first process would.
#[test]
fn a_journaled_recording_goes_on_in_the_restored_session() {
    let mut r = Relay::new(cfg());
    r.call(0.0);
    let now = r.at(1.0);
    r.s.start_recording(now, &mut r.plane, "c1").unwrap();
    let tap = StageSpec::Tap { recording: 1 };
    let rtp = |f: &&Flow| f.local.port().is_multiple_of(2);
    let tapped = |fs: &[Flow]| {
        fs.iter().filter(rtp).count() == 2
            && fs.len() == 4
            && fs.iter().all(|f| f.stages.contains(&tap))
    };
    let flows: Vec<Flow> = r.plane.flows().into_values().collect();
    assert!(
        tapped(&flows),
        "the RTP flows and the RTCP flows on their own ports carry the tap: {flows:?}"
    );
    let (_, state) =
        r.s.take_journal()
            .pop()
            .expect("the recording touched the call");
    let mut again = Relay::new(cfg());
    let flows = again.s.restore("c1", state.unwrap()).unwrap();
    assert!(tapped(&flows), "{flows:?}");
    let now = again.at(2.0);
    // What the journal's restore does: the link takes the recording on.
    let (n, dir) = again.s.recording_of("c1").expect("the call's recording");
    assert_eq!(n, 1);
    assert!(
        dir.starts_with("/var/lib/tollgate/recordings/open/"),
        "{dir:?}"
    );
    again.plane.keep_recording(n, &dir).unwrap();
    again.plane.apply(&flows, &[]);
    again
        .s
        .delete(now, &mut again.plane, "c1", None, None, Some(0));
    let closed = again.s.take_recordings();
    assert_eq!(closed.len(), 1);
    assert_eq!(closed[0].meta.call_id, "c1");
    assert_eq!(closed[0].meta.legs.len(), 2, "{:?}", closed[0].meta);
    assert!(
        again.plane.recordings().is_empty(),
        "closed in the data plane"
    );
}

/// A recorded first offer the data plane refuses leaves nothing behind:
/// its recording is discarded in its own directory, and none is handed over.
#[test]
fn a_refused_recorded_first_offer_discards_its_recording() {
    let mut r = Relay::new(cfg());
    let o = Options {
        record_call: Some(true),
        ..Options::default()
    };
    let offer = sdp("239.1.1.1", 7000);
    let refused =
        r.s.offer(r.at(0.0), &mut r.plane, "c1", "A", None, &offer, &o);
    assert!(
        refused.is_err(),
        "a multicast party is refused: {refused:?}"
    );
    assert!(
        r.plane.recordings().is_empty(),
        "discarded in the data plane"
    );
    assert!(r.s.take_recordings().is_empty(), "nothing handed over");
    assert!(r.plane.flows().is_empty());
}
