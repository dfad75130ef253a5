//! A running node under churn and hostile input (`tollgate run` on loopback,
//! socket backend, real SIPp and Kamailio):
//! - thousands of zero-length calls through the B2BUA, and through Kamailio
//!   driving Tollgate over NG, against relay ranges of 100 pairs:
//!   every call completes, and no call or flow is left afterwards;
//! - an offer the data plane refuses (its port held by someone else) takes
//!   nothing with it: no session left, its ports free for the next offer;
//! - tens of thousands of corrupted SIP datagrams and NG commands (equal,
//!   duplicated and missing tags among them), after which the same process
//!   still completes calls over SIP and over NG.
//!
//! Ports: SIP/NG 7100-7299, relay ports 46000-46999 (reserved range).

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tollgate_bench::peers::{answers_options, UAS_NO180};
use tollgate_bench::sip::{sipp_stat, sipp_uac_load, SIPP_LOAD};
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::Request;
use tollgate_ng::client::{ClientError, NgClient};
use tollgate_ng::Value;
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::TempDir;

/// These tests load both cores (SIPp at 100 cps, Kamailio, the storm):
/// one at a time, so that a call failing is the node's fault, not the
/// machine's.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|p| p.into_inner())
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// `tollgate run` with SIP on `sip` (6000 to `uas`, 9999 rejected), NG on
/// `ng`, relay ports `ports`, no delete delay; returns it and its data
/// plane's control socket.
fn node(
    dir: &Path,
    sip: SocketAddr,
    uas: SocketAddr,
    ng: SocketAddr,
    ports: (u16, u16),
) -> (Proc, std::path::PathBuf) {
    let sections = format!(
        r#"
[sip]
listen = "{sip}"
[[sip.routes]]
match = "6000"
target = "sip:6000@{uas}"
[[sip.routes]]
match = "9999"
reject = 480
reason = "IVR not available"
"#
    );
    peers::tollgate_loopback(
        dir,
        &ng.to_string(),
        ports,
        &["--delete-delay", "0"],
        &sections,
    )
}

/// A SIPp UAS answering at once (no 180), sized for load.
fn uas(dir: &Path, listen: SocketAddr, media: u16) -> Proc {
    let mut args = vec!["-sf", UAS_NO180];
    args.extend(SIPP_LOAD);
    peers::sipp_uas_with(None, dir, listen, media, &args)
}

/// Offers `calls` zero-length calls to 6000 at `cps` through `target` and
/// asserts that every one completed.
fn churn(dir: &Path, target: SocketAddr, local: (u16, u16), cps: u32, calls: u64, node: &Proc) {
    let limit = (calls / u64::from(cps)) as u32 * 3 + 30;
    let status = sipp_uac_load(&target.to_string(), "6000", local, (cps, calls), limit)
        .args(["-trace_err", "-error_file", "uac_errors.log"])
        .current_dir(dir)
        .status()
        .expect("run sipp");
    let stat = sipp_stat(dir).expect("SIPp statistics");
    let refused: Vec<String> = node
        .log_text()
        .lines()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .take(8)
        .map(str::to_string)
        .collect();
    assert!(
        stat.ok == calls && stat.failed == 0,
        "{} of {calls} calls completed, {} failed (sipp exit {:?}); first warnings:\n{}\nSIPp errors:\n{}",
        stat.ok,
        stat.failed,
        status.code(),
        refused.join("\n"),
        std::fs::read_to_string(dir.join("uac_errors.log")).unwrap_or_default()
    );
}

/// Waits (up to 15 s) until the node has no call over NG and its data
/// plane no flow; panics with what is left otherwise.
fn nothing_left(ng: &mut NgClient, ctl: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let calls = ng.command("list", []).expect("NG list");
        let calls = calls
            .get("calls")
            .and_then(Value::as_list)
            .map_or(0, <[Value]>::len);
        let flows = ControlClient::connect(ctl)
            .and_then(|mut c| c.request(&Request::FlowList))
            .expect("data plane flow list");
        let flows = flows
            .as_array()
            .or_else(|| flows["flows"].as_array())
            .map_or(0, Vec::len);
        let stats = ng.command("statistics", []).expect("NG statistics");
        let ports = stats
            .get("statistics")
            .and_then(|s| s.get("currentstatistics"))
            .and_then(|c| c.get("portsinuse"))
            .and_then(Value::as_int)
            .expect("portsinuse in NG statistics");
        if calls == 0 && flows == 0 && ports == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{calls} calls, {flows} flows and {ports} ports left after every call ended"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn b2bua_churn_on_a_small_port_range_fails_no_call() {
    tollgate_tests::require_root();
    let _turn = one_at_a_time();
    let dir = TempDir::new("churn-b2bua");
    let (sip, uas_at, ng) = (addr(7100), addr(7130), addr(7101));
    let (tollgate, ctl) = node(&dir.0, sip, uas_at, ng, (46000, 46199));
    let _uas = uas(&dir.0, uas_at, 7140);
    churn(&dir.0, sip, (7120, 7150), 100, 2000, &tollgate);
    nothing_left(&mut peers::ng_client(None, ng), &ctl);
}

#[test]
fn kamailio_churn_over_ng_on_a_small_port_range_fails_no_call() {
    tollgate_tests::require_root();
    let _turn = one_at_a_time();
    let dir = TempDir::new("churn-kam");
    let (kam, uas_at, ng) = (addr(7160), addr(7170), addr(7161));
    let (tollgate, ctl) = node(&dir.0, addr(7162), uas_at, ng, (46200, 46399));
    let _uas = uas(&dir.0, uas_at, 7180);
    let _kam = peers::kamailio(
        None,
        &dir.0,
        kam,
        uas_at,
        ng,
        "replace-origin replace-session-connection",
    );
    churn(&dir.0, kam, (7190, 7196), 100, 2000, &tollgate);
    nothing_left(&mut peers::ng_client(None, ng), &ctl);
}

const OFFER_SDP: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 7299 RTP/AVP 0 8\r\na=rtpmap:0 PCMU/8000\r\n";

fn offer(ng: &mut NgClient, call_id: &str) -> Result<Value, ClientError> {
    ng.command(
        "offer",
        [
            ("call-id", Value::str(call_id)),
            ("from-tag", Value::str("caller")),
            ("sdp", Value::str(OFFER_SDP)),
        ],
    )
}

#[test]
fn a_refused_offer_leaves_no_session_and_frees_its_ports() {
    tollgate_tests::require_root();
    let _turn = one_at_a_time();
    let dir = TempDir::new("refused");
    let ng_at = addr(7201);
    // Two pairs: exactly one call's worth.
    let (_tollgate, ctl) = node(&dir.0, addr(7200), addr(7230), ng_at, (46400, 46403));
    let mut ng = peers::ng_client(None, ng_at);
    let blocker = UdpSocket::bind("127.0.0.1:46400").expect("hold a relay port");
    for attempt in 0..3 {
        match offer(&mut ng, &format!("refused-{attempt}")) {
            Err(ClientError::Refused(why)) => assert!(
                why.contains("46400") && why.contains("in use"),
                "refusal names the port and why: {why}"
            ),
            other => panic!("offer on a held port must be refused, got {other:?}"),
        }
        // Nothing is kept: were the ports leaked, the next attempt would
        // say "no free media ports" instead of naming the held one.
        nothing_left(&mut ng, &ctl);
    }
    drop(blocker);
    let ok = offer(&mut ng, "refused-then-ok").expect("the ports are free again");
    assert!(ok.get("sdp").is_some(), "an SDP in {ok:?}");
}

/// A small deterministic generator (xorshift64*): the same corpus each run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> &'a T {
        &v[self.below(v.len())]
    }
}

/// Corrupts `msg`: flipped, dropped, inserted or repeated bytes, a cut, or
/// lines deleted, swapped or doubled.
fn mutate(r: &mut Rng, msg: &[u8]) -> Vec<u8> {
    let mut m = msg.to_vec();
    for _ in 0..=r.below(4) {
        if m.is_empty() {
            m.push(b'x');
        }
        let at = r.below(m.len());
        match r.below(8) {
            0 => m[at] ^= 1 << r.below(8),
            1 => {
                m.remove(at);
            }
            2 => m.insert(at, *r.pick(b"\0\r\n :;,<>\"=@%\xff0-9")),
            3 => m.truncate(at),
            4 => {
                let end = (at + 1 + r.below(40)).min(m.len());
                let piece = m[at..end].to_vec();
                m.splice(at..at, piece);
            }
            _ => {
                let text = String::from_utf8_lossy(&m).into_owned();
                let mut lines: Vec<&str> = text.split("\r\n").collect();
                let (a, b) = (r.below(lines.len()), r.below(lines.len()));
                match r.below(3) {
                    0 => {
                        lines.remove(a);
                    }
                    1 => lines.swap(a, b),
                    _ => lines.insert(a, lines[b]),
                }
                m = lines.join("\r\n").into_bytes();
            }
        }
    }
    m
}

/// SIP messages to corrupt: requests of each method (tags equal, missing
/// and doubled among them) and stray responses.
fn sip_corpus(sip: SocketAddr) -> Vec<String> {
    let sdp = OFFER_SDP;
    let req = |method: &str, user: &str, from_tag: &str, to_tag: &str, extra: &str, body: &str| {
        format!(
            "{method} sip:{user}@{sip} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:7298;branch=z9hG4bKm{method}{from_tag}\r\n\
             From: <sip:caller@127.0.0.1>{from_tag}\r\nTo: <sip:{user}@{sip}>{to_tag}\r\n\
             Call-ID: mut-{method}{from_tag}@127.0.0.1\r\nCSeq: 1 {method}\r\nMax-Forwards: 70\r\n\
             Contact: <sip:caller@127.0.0.1:7298>\r\n{extra}Content-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    let sdp_type = "Content-Type: application/sdp\r\n";
    vec![
        req("INVITE", "9999", ";tag=a", "", sdp_type, sdp),
        req("INVITE", "6101", ";tag=a", "", sdp_type, sdp),
        // Reach the media manager: 6000 routes to the UAS.
        req("INVITE", "6000", ";tag=a", "", sdp_type, sdp),
        req("INVITE", "6000", ";tag=same", ";tag=same", sdp_type, sdp),
        req("INVITE", "6000", "", ";tag=b", sdp_type, sdp),
        req("INVITE", "6000", ";tag=a;tag=a", ";tag=a", sdp_type, sdp),
        req("INVITE", "6000", ";tag=b", ";tag=a", sdp_type, sdp),
        req("INVITE", "9999", ";tag=same", ";tag=same", sdp_type, sdp),
        req("INVITE", "9999", "", "", sdp_type, sdp),
        req("INVITE", "9999", ";tag=a;tag=b", ";tag=a", sdp_type, sdp),
        req("INVITE", "9999", ";tag=a", "", "From: <sip:x@y>;tag=b\r\nContent-Type: application/sdp\r\n", sdp),
        req("ACK", "9999", ";tag=a", ";tag=b", "", ""),
        req("BYE", "9999", ";tag=a", ";tag=a", "", ""),
        req("CANCEL", "9999", ";tag=a", "", "", ""),
        req("OPTIONS", "9999", ";tag=a", "", "", ""),
        req("REGISTER", "6000", ";tag=a", "", "Expires: 60\r\nAuthorization: Digest username=\"6000\", realm=\"x\", nonce=\"n\", uri=\"sip:x\", response=\"00\"\r\n", ""),
        req("INFO", "9999", ";tag=a", ";tag=b", "Content-Type: application/dtmf-relay\r\n", "Signal=1\r\nDuration=100\r\n"),
        req("UPDATE", "9999", ";tag=a", ";tag=b", sdp_type, sdp),
        format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP {sip};branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=x\r\nTo: <sip:c@d>;tag=x\r\nCall-ID: stray@x\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{sdp}", sdp.len()),
        format!("SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP {sip};branch=z9hG4bKnone\r\nFrom: <sip:a@b>;tag=x\r\nTo: <sip:c@d>\r\nCall-ID: stray@x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"),
    ]
}

/// An NG command built from a small vocabulary, so tags collide often
/// (equal from- and to-tags, tags of other calls, missing tags).
fn ng_command(r: &mut Rng) -> Value {
    const COMMANDS: [&str; 10] = [
        "offer",
        "answer",
        "delete",
        "query",
        "list",
        "ping",
        "statistics",
        "start recording",
        "stop recording",
        "bogus",
    ];
    const TAGS: [&str; 4] = ["a", "b", "c", ""];
    const FLAGS: [&str; 8] = [
        "asymmetric",
        "strict source",
        "trust address",
        "SIP source address",
        "symmetric",
        "all",
        "fatal",
        "no-rtcp-attribute",
    ];
    let mut body = Value::dict([("command", Value::str(r.pick::<&str>(&COMMANDS)))]);
    let call = format!("mut-ng-{}", r.below(6));
    body.set("call-id", Value::str(&call));
    for key in ["from-tag", "to-tag"] {
        if r.below(4) != 0 {
            body.set(key, Value::str(r.pick::<&str>(&TAGS)));
        }
    }
    if r.below(2) == 0 {
        let sdp = mutate(r, OFFER_SDP.as_bytes());
        body.set(
            "sdp",
            Value::Bytes(if r.below(2) == 0 {
                sdp
            } else {
                OFFER_SDP.into()
            }),
        );
    }
    if r.below(3) == 0 {
        let n = r.below(3);
        let flags = (0..n).map(|_| Value::str(r.pick::<&str>(&FLAGS))).collect();
        body.set("flags", Value::List(flags));
    }
    for (key, choices) in [
        (
            "rtcp-mux",
            &["offer", "require", "demux", "accept", "reject"][..],
        ),
        (
            "replace",
            &["origin", "session-connection", "SDP version"][..],
        ),
        ("direction", &["external", "internal", "nowhere"][..]),
    ] {
        if r.below(5) == 0 {
            body.set(key, Value::List(vec![Value::str(r.pick::<&str>(choices))]));
        }
    }
    if r.below(6) == 0 {
        body.set("delete delay", Value::Int(r.below(3) as i64 - 1));
    }
    body
}

/// Sends `n` corrupted SIP datagrams to `sip` (bounded to 60 s), reading
/// whatever comes back.
fn sip_storm(sip: SocketAddr, n: usize, r: &mut Rng) -> usize {
    let s = UdpSocket::bind("127.0.0.1:7298").expect("bind the storm's SIP socket");
    s.set_nonblocking(true).expect("nonblocking");
    let corpus = sip_corpus(sip);
    let (deadline, mut buf, mut answers) =
        (Instant::now() + Duration::from_secs(60), [0u8; 65536], 0);
    for i in 0..n {
        let template = r.pick(&corpus).clone();
        let msg = mutate(r, template.as_bytes());
        let _ = s.send_to(&msg, sip);
        while s.recv(&mut buf).is_ok() {
            answers += 1;
        }
        if i % 64 == 63 {
            std::thread::sleep(Duration::from_millis(5));
        }
        if Instant::now() > deadline {
            break;
        }
    }
    answers
}

/// Sends `n` NG commands to `ng` (bounded to 90 s): generated ones, and
/// their encodings corrupted; counts the replies.
fn ng_storm(ng: SocketAddr, n: usize, r: &mut Rng) -> usize {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let (deadline, mut buf, mut replies) =
        (Instant::now() + Duration::from_secs(90), [0u8; 65536], 0);
    for i in 0..n {
        let mut msg = format!("mut{i} ").into_bytes();
        msg.extend(ng_command(r).encode());
        if r.below(3) == 0 {
            msg = mutate(r, &msg);
        }
        let _ = s.send_to(&msg, ng);
        if s.recv(&mut buf).is_ok() {
            replies += 1;
        }
        if Instant::now() > deadline {
            break;
        }
    }
    replies
}

#[test]
fn after_a_storm_of_corrupted_sip_and_ng_the_node_still_completes_calls() {
    tollgate_tests::require_root();
    let _turn = one_at_a_time();
    let dir = TempDir::new("storm");
    let (sip, uas_at, ng_at) = (addr(7250), addr(7280), addr(7251));
    let (mut tollgate, _ctl) = node(&dir.0, sip, uas_at, ng_at, (46600, 46799));
    // The UAS answers the storm's calls to 6000, so that mutated offers and
    // answers reach the media manager.
    let _uas = uas(&dir.0, uas_at, 7290);
    // The same corpus each run; TOLLGATE_STORM_SEED tries another.
    let seed = std::env::var("TOLLGATE_STORM_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_1234_abcd_0042);
    eprintln!("storm seed {seed}");
    let mut r = Rng(seed);
    let sip_answers = sip_storm(sip, 20_000, &mut r);
    let ng_replies = ng_storm(ng_at, 20_000, &mut r);
    eprintln!("storm: {sip_answers} SIP answers, {ng_replies} NG replies");
    assert!(
        sip_answers > 1000 && ng_replies > 10_000,
        "the node went quiet during the storm"
    );
    let log = tollgate.log_text();
    assert!(!log.contains("panicked"), "a thread panicked:\n{log}");
    assert!(
        tollgate.child.try_wait().expect("wait").is_none(),
        "the node exited:\n{log}"
    );

    // SIP still answers and completes calls, with media anchored.
    assert!(
        answers_options(sip, Duration::from_secs(5)),
        "OPTIONS unanswered after the storm"
    );
    churn(&dir.0, sip, (7270, 7295), 20, 100, &tollgate);
    // NG still carries a call from offer to delete.
    let mut ng = peers::ng_client(None, ng_at);
    offer(&mut ng, "after-storm").expect("offer after the storm");
    let answer = OFFER_SDP.replace("7299", "7297");
    ng.command(
        "answer",
        [
            ("call-id", Value::str("after-storm")),
            ("from-tag", Value::str("caller")),
            ("to-tag", Value::str("callee")),
            ("sdp", Value::str(&answer)),
        ],
    )
    .expect("answer after the storm");
    let gone = ng
        .command(
            "delete",
            [
                ("call-id", Value::str("after-storm")),
                ("from-tag", Value::str("caller")),
            ],
        )
        .expect("delete after the storm");
    assert!(
        gone.get("tags").is_some(),
        "delete reports the call: {gone:?}"
    );
    let query = ng.command("query", [("call-id", Value::str("after-storm"))]);
    assert!(
        matches!(query, Err(ClientError::Refused(_))),
        "the call is gone after delete: {query:?}"
    );
}
