//! Tollgate as the B2BUA in the middle: SIPp UAC -> Tollgate SIP (its real
//! data plane, socket backend on loopback) -> SIPp UAS. Each test runs its
//! own node on its own ports and reads the CDR the call left in a JSON-lines
//! sink. Checked: a basic call's RTP both ways through the relay (CDR
//! counters equal what SIPp played), both SDPs pointing at Tollgate, CANCEL,
//! busy, ring timeout, the callee hanging up, hold and unhold by re-INVITE,
//! INFO relayed in the dialog, registration with digest authentication,
//! least-cost routing with failover (SQLite, PostgreSQL, MariaDB), session
//! timers, TCP and TLS, shared registrations, dialplan reloads,
//! dialplan rejections, overload, and a burst of malformed messages
//! answered or dropped without harm.

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};
use tollgate_sip::message::Message;
use tollgate_sip::sdp::Sdp;
use tollgate_tests::peers::{self, sdp_of, Proc};
use tollgate_tests::TempDir;

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/b2bua");

/// How long a node's spool must stay unchanged before its CDRs are taken
/// as complete.
const QUIET: Duration = Duration::from_millis(1500);

/// A node with SIP on 127.0.0.1:`base`, NG on `base`+1, relay ports from
/// 49000 + (`base`-5000)*3 (inside the reserved 20000-59999, above the
/// other test files' ranges); the UAS on `base`+30 (media `base`+40), the
/// UAC on `base`+20 (media `base`+50). Bases are 5000-7900 in steps of 100,
/// leaving out 7100-7299 (tests/tests/resilience.rs).
struct Node {
    dir: TempDir,
    tollgate: Proc,
    sip: SocketAddr,
    uas: SocketAddr,
    uas_media: u16,
    uac: SocketAddr,
    uac_media: u16,
    ports: (u16, u16),
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The dialplan target for 6000: the UAS, or whoever registered as 6000.
const STATIC: &str = "sip:6000@{uas}";
const REGISTERED: &str = "registered";

fn node(base: u16, sip_extra: &str) -> Node {
    node_with(base, sip_extra, STATIC)
}

fn node_with(base: u16, sip_extra: &str, target_6000: &str) -> Node {
    node_full(base, sip_extra, target_6000, "")
}

/// [`node_with`] plus `more` config (more routes, `[sip.lcr]`).
fn node_full(base: u16, sip_extra: &str, target_6000: &str, more: &str) -> Node {
    let dir = TempDir::new("b2bua");
    let (sip, uas) = (addr(base), addr(base + 30));
    let first = 49000 + (base - 5000) * 3;
    let ports = (first, first + 99);
    let sections = format!(
        r#"
[sip]
listen = "{sip}"
{sip_extra}
[[sip.routes]]
match = "6000"
target = "{target}"
[[sip.routes]]
match = "9999"
reject = 480
reason = "IVR not available"
{more}

[cdr]
spool_dir = "{d}/spool"
sinks = [{{ kind = "jsonl", path = "{d}/cdr.jsonl" }}]
"#,
        d = dir.0.display(),
        target = target_6000.replace("{uas}", &uas.to_string()),
    );
    let ng = addr(base + 1).to_string();
    let (tollgate, _) = peers::tollgate_loopback(&dir.0, &ng, ports, &[], &sections);
    Node {
        dir,
        tollgate,
        sip,
        uas,
        uas_media: base + 40,
        uac: addr(base + 20),
        uac_media: base + 50,
        ports,
    }
}

impl Node {
    fn uas(&self, scenario: &str) -> Proc {
        self.uas_with(scenario, &[])
    }

    /// [`Node::uas`] with more SIPp arguments.
    fn uas_with(&self, scenario: &str, extra: &[&str]) -> Proc {
        let s = format!("{SCENARIOS}/{scenario}");
        let mut args: Vec<&str> = if scenario.ends_with(".xml") {
            vec!["-sf", &s]
        } else {
            vec!["-sn", scenario]
        };
        args.extend(["-m", "1"]);
        args.extend(extra);
        peers::sipp_uas_with(None, &self.dir.0, self.uas, self.uas_media, &args)
    }

    /// One UAC call of `scenario` to `number`; panics with the logs unless it passes.
    fn call(&self, scenario: &str, number: &str) -> String {
        self.call_with(scenario, number, &[])
    }

    /// [`Node::call`] with more SIPp arguments.
    fn call_with(&self, scenario: &str, number: &str, extra: &[&str]) -> String {
        let s = format!("{SCENARIOS}/{scenario}");
        let mut args: Vec<&str> = if scenario.ends_with(".xml") {
            vec!["-sf", &s]
        } else {
            vec!["-sn", scenario]
        };
        args.extend(["-s", number]);
        args.extend(extra);
        let (rc, log) =
            peers::sipp_uac(None, &self.dir.0, self.uac, self.uac_media, self.sip, &args);
        assert_eq!(
            rc,
            0,
            "{scenario} to {number} failed (sipp exit {rc});\nuac errors: {}\nuac log: {log}\ntollgate: {}",
            std::fs::read_to_string(self.dir.0.join("uac_errors.log")).unwrap_or_default(),
            self.tollgate.log_text()
        );
        log
    }

    /// REGISTERs user 6000 (password `secret`) with its contact at `contact`'s port.
    fn register_6000(&self, contact: &SocketAddr) -> String {
        let port = contact.port().to_string();
        let args = [
            "-au",
            "6000",
            "-ap",
            "secret",
            "-key",
            "contact_port",
            &port,
        ];
        self.call_with("uac_register.xml", "6000", &args)
    }

    /// The CDR of the only call, once the node is quiet (see [`Node::cdrs`]).
    fn cdr(&self) -> serde_json::Value {
        self.cdrs(1).remove(0)
    }

    /// The `call.ended` CDRs in the sink, `want` of them exactly: waits for
    /// them, then keeps watching until the spool has delivered everything
    /// and nothing new was spooled for [`QUIET`], so that a late extra CDR
    /// fails the test instead of arriving after it.
    fn cdrs(&self, want: usize) -> Vec<serde_json::Value> {
        let path = self.dir.0.join("cdr.jsonl");
        let spool = tollgate_cdr::spool::SpoolConfig::new(self.dir.0.join("spool"));
        let end = Instant::now() + Duration::from_secs(20);
        let mut still: Option<((u64, u64), Instant)> = None;
        loop {
            let ended: Vec<serde_json::Value> = tollgate_tests::cdrs::jsonl(&path)
                .into_iter()
                .filter(|r| r["event"] == "call.ended")
                .collect();
            assert!(ended.len() <= want, "{want} CDR(s) expected: {ended:?}");
            // Read while the node writes: a failed read is just not quiet yet.
            let st = tollgate_cdr::spool::inspect(&spool, &["jsonl".to_string()]);
            let drained = st.as_ref().ok().filter(|st| st.depth == 0).map(|st| {
                let delivered: u64 = st.sinks.iter().map(|s| s.delivered).sum();
                (st.last_seq, delivered)
            });
            let now = Instant::now();
            match (drained, still) {
                (None, _) => still = None,
                _ if ended.len() < want => still = None,
                (Some(state), Some((seen, since))) if seen == state => {
                    if now - since >= QUIET {
                        return ended;
                    }
                }
                (Some(state), _) => still = Some((state, now)),
            }
            assert!(
                now < end,
                "{want} CDR(s) and a quiet spool expected within 20 s: {ended:?}\n{st:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn uas_log(&self) -> String {
        std::fs::read_to_string(self.dir.0.join("uas_messages.log")).unwrap_or_default()
    }
}

/// The SDP's connection address and audio port.
fn media_of(which: &str, sdp: Option<String>) -> (String, u16) {
    let sdp = sdp.unwrap_or_else(|| panic!("no SDP in the {which}"));
    let p = Sdp::parse(&sdp).unwrap_or_else(|e| panic!("{which} SDP: {e}\n{sdp}"));
    let c = p.connection(0).map(|a| a.to_string()).unwrap_or_default();
    (c, p.media[0].port())
}

#[test]
fn basic_call_relays_rtp_both_ways_and_writes_the_cdr() {
    let n = node(5400, "");
    let _uas = n.uas("uas");
    let log = n.call("uac_pcap", "6000");
    let (c, port) = media_of("200 OK the caller got", sdp_of(&log, "SIP/2.0 200 OK"));
    assert_eq!(c, "127.0.0.1");
    assert!(
        (n.ports.0..=n.ports.1).contains(&port),
        "caller's media goes to the relay: {port}"
    );
    let (c, port) = media_of("INVITE the callee got", sdp_of(&n.uas_log(), "INVITE sip:"));
    assert_eq!(c, "127.0.0.1");
    assert!(
        (n.ports.0..=n.ports.1).contains(&port),
        "callee's media goes to the relay: {port}"
    );

    let cdr = n.cdr();
    assert_eq!(cdr["status"], "answered", "{cdr}");
    assert_eq!(cdr["hangup_by"], "caller");
    assert_eq!(cdr["from_number"], "sipp");
    assert_eq!(cdr["to_number"], "6000");
    assert_eq!(cdr["trunk"], format!("sip:6000@{}", n.uas));
    assert!(cdr["answer_ms"].as_i64().unwrap() >= cdr["start_ms"].as_i64().unwrap());
    assert!(
        cdr["end_ms"].as_i64().unwrap() - cdr["answer_ms"].as_i64().unwrap() >= 7000,
        "the pcap plays for 8 s"
    );
    let legs = cdr["legs"].as_array().expect("legs");
    assert_eq!(legs.len(), 2);
    assert_ne!(
        legs[0]["sip_call_id"], legs[1]["sip_call_id"],
        "a B2BUA's legs are two dialogs"
    );
    // The UAC played the pcap; the UAS echoed every packet back.
    let played = peers::uac_pcap_packets();
    for (leg, dir) in [(0, "received"), (0, "sent"), (1, "received"), (1, "sent")] {
        assert_eq!(
            legs[leg][dir]["packets"].as_u64(),
            Some(played),
            "leg {leg} {dir}: {cdr}"
        );
    }
}

#[test]
fn caller_cancels_before_answer() {
    let n = node(5500, "");
    let mut uas = n.uas("uas_ring.xml");
    n.call("uac_cancel.xml", "6000");
    let cdr = n.cdr();
    assert_eq!(cdr["status"], "cancelled", "{cdr}");
    assert_eq!(cdr["sip_code"], 487);
    assert_eq!(cdr["hangup_by"], "caller");
    assert!(cdr["answer_ms"].is_null());
    wait_exit(
        &mut uas,
        "the callee got the CANCEL, answered 487 and got the ACK",
    );
}

#[test]
fn busy_callee_gives_486() {
    let n = node(5600, "");
    let mut uas = n.uas("uas_busy.xml");
    n.call("uac_busy.xml", "6000");
    let cdr = n.cdr();
    assert_eq!(cdr["status"], "busy", "{cdr}");
    assert_eq!(cdr["sip_code"], 486);
    assert_eq!(cdr["hangup_by"], "callee");
    wait_exit(&mut uas, "the callee's 486 was ACKed");
}

#[test]
fn ring_timeout_gives_480_and_cancels_the_callee() {
    let n = node(5700, "ring_timeout_secs = 2");
    let mut uas = n.uas("uas_ring.xml");
    let t0 = Instant::now();
    n.call("uac_noanswer.xml", "6000");
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "not before the ring timeout"
    );
    let cdr = n.cdr();
    assert_eq!(cdr["status"], "no_answer", "{cdr}");
    assert_eq!(cdr["sip_code"], 480);
    wait_exit(&mut uas, "the callee was cancelled");
}

#[test]
fn callee_hangs_up() {
    let n = node(5800, "");
    let mut uas = n.uas("uas_hangup.xml");
    n.call("uac_callee_hangs_up.xml", "6000");
    let cdr = n.cdr();
    assert_eq!(cdr["status"], "answered", "{cdr}");
    assert_eq!(cdr["hangup_by"], "callee");
    wait_exit(&mut uas, "the callee's BYE was answered");
}

#[test]
fn reinvite_puts_the_call_on_hold_and_back() {
    let n = node(6200, "");
    let mut uas = n.uas("uas_hold.xml");
    let log = n.call("uac_hold.xml", "6000");
    wait_exit(&mut uas, "the callee saw both re-INVITEs and the BYE");
    let uas_log = n.uas_log();
    // The callee's view of the hold: the caller's direction, our relay address.
    let hold = uas_log
        .find("CSeq: 2 INVITE")
        .map(|i| &uas_log[uas_log[..i].rfind("INVITE sip:").unwrap_or(0)..])
        .expect("the callee got the hold re-INVITE");
    let sdp = sdp_of(hold, "INVITE sip:");
    assert!(
        sdp.as_deref().is_some_and(|s| s.contains("a=sendonly")),
        "{hold}"
    );
    let (c, port) = media_of("hold re-INVITE", sdp);
    assert_eq!(c, "127.0.0.1");
    assert!((n.ports.0..=n.ports.1).contains(&port), "{port}");
    // The caller's view: the callee's recvonly answer, through the relay.
    assert!(
        log.contains("a=recvonly"),
        "the hold answer reached the caller: {log}"
    );
    let cdr = n.cdr();
    assert_eq!(cdr["status"], "answered", "{cdr}");
    assert_eq!(cdr["hangup_by"], "caller");
}

#[test]
fn dialplan_rejects_the_ivr_placeholder_and_unknown_numbers() {
    let n = node(5900, "");
    let log = n.call("uac_noanswer.xml", "9999");
    assert!(log.contains("480 IVR not available"), "{log}");
    n.call("uac_noroute.xml", "12345");
    let cdrs = n.cdrs(2);
    let codes: Vec<(u64, &str)> = cdrs
        .iter()
        .map(|c| {
            (
                c["sip_code"].as_u64().unwrap(),
                c["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(codes, [(480, "failed"), (404, "failed")], "{cdrs:?}");
}

fn wait_exit(p: &mut Proc, what: &str) {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if let Some(st) = p.child.try_wait().expect("wait") {
            assert!(st.success(), "{what}: sipp exit {st}\n{}", p.log_text());
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: the UAS scenario did not finish\n{}", p.log_text());
}

/// A raw SIP client socket with a receive timeout.
fn client() -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").expect("bind");
    s.set_read_timeout(Some(Duration::from_millis(1500)))
        .expect("timeout");
    s
}

fn invite(number: &str, branch: &str, extra: &str) -> String {
    format!(
        "INVITE sip:{number}@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bK{branch}\r\n\
From: <sip:t@127.0.0.1>;tag=f{branch}\r\nTo: <sip:{number}@127.0.0.1>\r\nCall-ID: {branch}@test\r\n\
CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

/// Final responses to what was sent, in order, skipping 100 Trying.
fn finals(s: &UdpSocket, want: usize) -> Vec<Message> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    while out.len() < want {
        let Ok(n) = s.recv(&mut buf) else { break };
        let m = Message::parse(&buf[..n]).expect("Tollgate sends valid SIP");
        if m.code().is_some_and(|c| c >= 200) {
            out.push(m);
        }
    }
    out
}

#[test]
fn overload_gives_503_with_retry_after() {
    let n = node(6000, "max_cps = 1\nretry_after_secs = 7");
    let s = client();
    for b in ["ov1", "ov2"] {
        s.send_to(invite("9999", b, "").as_bytes(), n.sip)
            .expect("send");
    }
    let got = finals(&s, 2);
    let codes: Vec<u16> = got.iter().filter_map(Message::code).collect();
    assert_eq!(codes, [480, 503]);
    assert_eq!(got[1].header("Retry-After"), Some("7"));
}

/// Malformed and hostile messages, written from RFC 4475's descriptions
/// (§3.1.2 and §3.3): each is answered 400 when it can be answered, else
/// dropped; the node keeps serving.
#[test]
fn malformed_messages_are_answered_or_dropped_and_the_node_carries_on() {
    let n = node(6100, "");
    let s = client();
    let good = invite("9999", "ok1", "");
    let answerable: Vec<String> = vec![
        // Content-Length larger than the body (§3.1.2.7 "clerr").
        good.replace("Content-Length: 0", "Content-Length: 9999"),
        // Negative Content-Length (§3.1.2.4 "ncl").
        good.replace("Content-Length: 0", "Content-Length: -999"),
        // Missing Call-ID (§3.3.1 "insuf").
        good.replace("Call-ID: ok1@test\r\n", ""),
        // CSeq method differs from the request method (§3.1.2.17 "mismatch01").
        good.replace("CSeq: 1 INVITE", "CSeq: 1 OPTIONS"),
        // Unterminated quoted display name (§3.1.2.3 "quotbal").
        good.replace("From: <sip:t@127.0.0.1>", "From: \"Bob <sip:t@127.0.0.1>"),
        // '<' never closed in To (§3.1.2.5 "ltgtruri" kin).
        good.replace("To: <sip:9999@127.0.0.1>", "To: <sip:9999@127.0.0.1"),
        // Non-numeric Max-Forwards.
        good.replace("Max-Forwards: 70", "Max-Forwards: seventy"),
        // Request-URI with spaces (§3.1.2.2 "intmeth"-like).
        good.replace(
            "INVITE sip:9999@127.0.0.1 SIP/2.0",
            "INVITE sip:9999 @127.0.0.1 SIP/2.0",
        ),
        // Two Content-Length headers that disagree (§3.1.2.10 "multi2").
        good.replace("Content-Length: 0", "Content-Length: 0\r\nl: 4"),
    ];
    let dropped: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"\x00\xff\xfe garbage".to_vec(),
        // Unknown protocol version (§3.1.2.16 "badvers"): no way to answer it.
        good.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia").into_bytes(),
        // No blank line after the headers.
        good.trim_end().as_bytes().to_vec(),
        // A response to nothing.
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:a@b>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n".to_vec(),
    ];
    for m in &answerable {
        s.send_to(m.as_bytes(), n.sip).expect("send");
        let got = finals(&s, 1);
        assert_eq!(got.len(), 1, "no answer to:\n{m}");
        assert_eq!(got[0].code(), Some(400), "{m}\ngot: {}", got[0]);
        assert!(!got[0].reason().is_empty());
    }
    for m in &dropped {
        s.send_to(m, n.sip).expect("send");
    }
    // Max-Forwards exhausted: 483 (§8.2.2 / §16.3).
    s.send_to(
        invite("9999", "mf0", "")
            .replace("Max-Forwards: 70", "Max-Forwards: 0")
            .as_bytes(),
        n.sip,
    )
    .expect("send");
    let got = finals(&s, 1);
    assert_eq!(got[0].code(), Some(483));
    // And it still routes calls.
    s.send_to(good.as_bytes(), n.sip).expect("send");
    let got = finals(&s, 1);
    assert_eq!(
        got.iter().filter_map(Message::code).collect::<Vec<_>>(),
        [480],
        "{}",
        n.tollgate.log_text()
    );
    // Counted: the node logs its SIP counters when it stops.
    let mut n = n;
    tollgate_bench::sut::terminate(&mut n.tollgate.child, Duration::from_secs(5));
    let log = n.tollgate.log_text();
    let counters = log
        .lines()
        .rfind(|l| l.contains("SIP counters"))
        .unwrap_or_default();
    assert!(
        counters.contains(&format!("bad_requests={}", answerable.len()))
            // Of the dropped: the empty datagram is a keep-alive and the
            // stray response is valid SIP; the other three are malformed.
            && counters.contains(&format!("malformed={}", dropped.len() - 2)),
        "{counters}"
    );
}

const USERS: &str = r#"
users = [{ name = "6000", password = "secret" }]
digest_algorithms = ["MD5"]  # SIPp answers MD5 challenges only
"#;

#[test]
fn register_with_digest_then_a_call_reaches_the_registered_user() {
    let n = node_with(
        6300,
        &format!("{USERS}\ntrusted = [\"127.0.0.1/32\"]"),
        REGISTERED,
    );
    // Before registering, 6000 is not reachable.
    let log = n.call("uac_noanswer.xml", "6000");
    assert!(log.contains("480 Not Registered"), "{log}");
    n.call_with(
        "uac_register_refused.xml",
        "6000",
        &["-au", "6000", "-ap", "wrong"],
    );
    let port = n.uas.port().to_string();
    let log = n.register_6000(&n.uas);
    assert!(
        log.contains(&format!("<sip:6000@127.0.0.1:{port}>;expires=300")),
        "{log}"
    );
    let mut uas = n.uas("uas");
    n.call("uac", "6000");
    wait_exit(&mut uas, "the registered user got the call");
    let cdrs: Vec<serde_json::Value> = tollgate_tests::cdrs::jsonl(&n.dir.0.join("cdr.jsonl"));
    let last = cdrs.last().expect("CDRs");
    assert_eq!(last["status"], "answered", "{cdrs:?}");
    assert_eq!(last["trunk"], format!("sip:6000@127.0.0.1:{port}"));
}

#[test]
fn untrusted_callers_authenticate_and_bad_credentials_are_refused() {
    let n = node(6400, USERS);
    let mut uas = n.uas("uas");
    n.call_with(
        "uac_auth_call.xml",
        "6000",
        &["-au", "6000", "-ap", "secret"],
    );
    wait_exit(&mut uas, "the authenticated call reached the callee");
    n.call_with(
        "uac_auth_refused.xml",
        "6000",
        &["-au", "6000", "-ap", "wrong"],
    );
    n.call_with(
        "uac_auth_refused.xml",
        "6000",
        &["-au", "nobody", "-ap", "secret"],
    );
    let cdr = n.cdr();
    assert_eq!(
        cdr["status"], "answered",
        "only the authenticated call is a call: {cdr}"
    );
}

/// An LCR database under `dir`: UK numbers (44) priced on carriers alpha
/// (cheaper, gateway 11 at `first`) and beta (gateway 21 at `second`).
fn lcr_db(dir: &std::path::Path, first: SocketAddr, second: Option<SocketAddr>) -> String {
    use sqlx::Connection;
    let url = format!("sqlite://{}/lcr.sqlite?mode=rwc", dir.display());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
        let schema = include_str!("../../controlplane/lcr/schema.sql");
        sqlx::raw_sql(schema).execute(&mut c).await.expect("schema");
        let mut rows = format!(
            "INSERT INTO bands VALUES (1, 'UK');
             INSERT INTO numbers VALUES ('44', 1);
             INSERT INTO carriers VALUES (1, 'alpha', 1), (2, 'beta', 1);
             INSERT INTO rates VALUES (1, 1, 0.010), (1, 2, 0.020);
             INSERT INTO carrier_gateways (id, carrier_id, address, priority) VALUES (11, 1, '{first}', 0);"
        );
        if let Some(second) = second {
            rows.push_str(&format!(
                "INSERT INTO carrier_gateways (id, carrier_id, address, priority) VALUES (21, 2, '{second}', 0);"
            ));
        }
        sqlx::raw_sql(&rows).execute(&mut c).await.expect("rows");
    });
    url
}

#[test]
fn lcr_fails_over_to_the_next_gateway_on_503() {
    let base = 6500;
    let dir = TempDir::new("lcr");
    let (first, second) = (addr(base + 30), addr(base + 35));
    let url = lcr_db(&dir.0, first, Some(second));
    let more = format!("[[sip.routes]]\nmatch = \"44*\"\ntarget = \"lcr\"\n\n[sip.lcr]\nurl = \"{url}\"\nping_secs = 0\n");
    let n = node_full(base, "", STATIC, &more);
    let mut cheap = n.uas("uas_unavailable.xml");
    let second_dir = n.dir.0.join("second");
    std::fs::create_dir_all(&second_dir).unwrap();
    let mut dear = peers::sipp_uas_with(
        None,
        &second_dir,
        second,
        base + 45,
        &["-sn", "uas", "-m", "1"],
    );
    n.call("uac", "442071234567");
    wait_exit(
        &mut cheap,
        "the cheaper gateway was tried first and refused",
    );
    wait_exit(&mut dear, "the call failed over to the second gateway");
    let cdr = n.cdr();
    assert_eq!(cdr["status"], "answered", "{cdr}");
    assert_eq!(cdr["carrier"], "beta");
    assert_eq!(cdr["gateway"], "21");
    assert_eq!(cdr["trunk"], format!("sip:442071234567@{second}"));
}

#[test]
fn lcr_pings_mark_a_silent_gateway_down_and_calls_get_503() {
    let base = 6600;
    let dir = TempDir::new("lcr");
    let silent = addr(base + 39); // nothing listens here
    let url = lcr_db(&dir.0, silent, None);
    let more = format!("[[sip.routes]]\nmatch = \"44*\"\ntarget = \"lcr\"\n\n[sip.lcr]\nurl = \"{url}\"\nping_secs = 1\nreload_secs = 1\n");
    // T1 = 50 ms: a ping times out (64*T1) in 3.2 s.
    let n = node_full(base, "t1_ms = 50\nt2_ms = 400", STATIC, &more);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let down = rt.block_on(async {
        use sqlx::Connection;
        let end = Instant::now() + Duration::from_secs(15);
        loop {
            let mut c = sqlx::SqliteConnection::connect(&url).await.expect("sqlite");
            let up: Option<i64> =
                sqlx::query_scalar("SELECT up FROM carrier_gateway_health WHERE gateway_id = 11")
                    .fetch_optional(&mut c)
                    .await
                    .expect("health");
            if up == Some(0) || Instant::now() > end {
                return up == Some(0);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    assert!(
        down,
        "the silent gateway is recorded down\n{}",
        n.tollgate.log_text()
    );
    let log = n.call("uac_unavailable.xml", "4420");
    assert!(log.contains("503 No Route Available"), "{log}");
}

#[test]
fn an_unrefreshed_session_timer_ends_the_call() {
    let n = node(6700, "min_se_secs = 1");
    let mut uas = n.uas("uas");
    let t0 = Instant::now();
    n.call("uac_session_timer.xml", "6000");
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "not before the interval"
    );
    wait_exit(&mut uas, "the callee got the B2BUA's BYE too");
    let cdr = n.cdr();
    assert_eq!(cdr["status"], "answered", "{cdr}");
    assert_eq!(cdr["sip_reason"], "Session timer expired");
    assert_eq!(cdr["hangup_by"], "relay");
}

#[test]
fn a_session_interval_below_the_minimum_gets_422() {
    let n = node(6800, "");
    let s = client();
    s.send_to(
        invite("6000", "se1", "Session-Expires: 30\r\n").as_bytes(),
        n.sip,
    )
    .expect("send");
    let got = finals(&s, 1);
    assert_eq!(got[0].code(), Some(422), "{}", got[0]);
    assert_eq!(got[0].header("Min-SE"), Some("90"));
}

#[test]
fn calls_over_tcp_on_both_legs() {
    let n = node_with(6900, "", "sip:6000@{uas};transport=tcp");
    let mut uas = n.uas_with("uas", &["-t", "t1"]);
    let log = n.call_with("uac", "6000", &["-t", "t1"]);
    assert!(log.contains("SIP/2.0/TCP"), "the caller spoke TCP: {log}");
    wait_exit(&mut uas, "the callee got the call over TCP");
    assert!(n.uas_log().contains("Via: SIP/2.0/TCP"), "{}", n.uas_log());
    let cdr = n.cdr();
    assert_eq!(cdr["status"], "answered", "{cdr}");
    assert_eq!(cdr["transport"], "tcp");
    assert_eq!(cdr["legs"][1]["transport"], "tcp");
}

/// A user registered on node A is found by node B, which reads the stored
/// registrations from Redis as it starts. (B is started once the
/// registration is stored: a node that is already running merges it when
/// A announces it, at a moment the test cannot observe.)
#[test]
fn nodes_sharing_redis_find_users_registered_on_each_other() {
    use tollgate_tests::services::{self, Service};
    let redis = services::url(Service::Redis);
    let key = "tollgate:registration:6000";
    let mut db = redis::Client::open(redis.as_str())
        .and_then(|c| c.get_connection())
        .unwrap_or_else(|e| panic!("Redis at {redis}: {e}"));
    // A registration left by an earlier run would stand in for this one.
    redis::cmd("DEL")
        .arg(key)
        .query::<()>(&mut db)
        .expect("DEL");
    let extra = format!("{USERS}\ntrusted = [\"127.0.0.1/32\"]\nregistrar_redis = \"{redis}\"");
    let a = node_with(7000, &extra, REGISTERED);
    // The user registers on node A, with its contact where B's callee runs.
    let (b_base, b_uas) = (5100, addr(5130));
    a.register_6000(&b_uas);
    let stored = tollgate_tests::wait_until(Duration::from_secs(10), || {
        let v: Option<String> = redis::cmd("GET").arg(key).query(&mut db).expect("GET");
        v.is_some_and(|v| v.contains(&b_uas.to_string()))
    });
    assert!(
        stored,
        "A stored the registration in Redis\n{}",
        a.tollgate.log_text()
    );
    let b = node_with(b_base, &extra, REGISTERED);
    assert_eq!(b.uas, b_uas);
    let in_step = tollgate_tests::wait_until(Duration::from_secs(10), || {
        b.tollgate
            .log_text()
            .contains("shared registrations: in step with Redis")
    });
    assert!(
        in_step,
        "B read the stored registrations\n{}",
        b.tollgate.log_text()
    );
    let mut uas = b.uas("uas");
    b.call("uac", "6000");
    wait_exit(
        &mut uas,
        "node B routed to the contact registered on node A",
    );
    assert_eq!(b.cdr()["trunk"], format!("sip:6000@{b_uas}"));
}

#[test]
fn sighup_reloads_the_dialplan_and_a_bad_file_changes_nothing() {
    let n = node(5300, "");
    let cfg = n.dir.0.join("tollgate.toml");
    let text = std::fs::read_to_string(&cfg).expect("config");
    // Each SIGHUP ends in one of these two lines.
    let reloads = || {
        let log = n.tollgate.log_text();
        log.matches("dialplan reloaded").count() + log.matches("dialplan not reloaded").count()
    };
    let hup = || {
        let before = reloads();
        // SAFETY: signalling the node this test started.
        unsafe { libc::kill(n.tollgate.child.id() as i32, libc::SIGHUP) };
        let done = tollgate_tests::wait_until(Duration::from_secs(5), || reloads() > before);
        assert!(done, "SIGHUP handled\n{}", n.tollgate.log_text());
    };
    let reason = |branch: &str| {
        let s = client();
        s.send_to(invite("9999", branch, "").as_bytes(), n.sip)
            .expect("send");
        let got = finals(&s, 1);
        format!("{} {}", got[0].code().unwrap_or(0), got[0].reason())
    };
    assert_eq!(reason("r1"), "480 IVR not available");
    std::fs::write(&cfg, text.replace("IVR not available", "IVR moved")).unwrap();
    hup();
    assert_eq!(reason("r2"), "480 IVR moved");
    std::fs::write(&cfg, text.replace("reject = 480", "reject = 200")).unwrap();
    hup();
    assert_eq!(
        reason("r3"),
        "480 IVR moved",
        "an invalid file is not taken"
    );
    assert!(n.tollgate.log_text().contains("dialplan not reloaded"));
}

fn tls_extra(at: SocketAddr, cert: &std::path::Path, key: &std::path::Path) -> String {
    format!(
        "tls_listen = \"{at}\"\ntls_cert = \"{}\"\ntls_key = \"{}\"",
        cert.display(),
        key.display()
    )
}

#[test]
fn sip_over_tls_with_the_configured_certificate() {
    use std::io::{Read, Write};
    let certs = TempDir::new("sip-tls");
    let (cert, key) = tollgate_tests::tls::self_signed(&certs.0);
    let tls_at = addr(7305);
    let extra = tls_extra(tls_at, &cert, &key);
    let n = node(7300, &extra);

    // A client that trusts only this certificate.
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(&cert).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::IpAddress(std::net::Ipv4Addr::LOCALHOST.into());
    let conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let sock = std::net::TcpStream::connect(tls_at).expect("TLS listener");
    sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, sock);
    let req =
        invite("9999", "tls1", "").replace("SIP/2.0/UDP 127.0.0.1:9", "SIP/2.0/TLS 127.0.0.1:9");
    tls.write_all(req.as_bytes()).expect("send over TLS");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains("480 IVR not available") {
        let n = tls.read(&mut buf).expect("answer over TLS");
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("Via: SIP/2.0/TLS"));
    drop(n);
}

/// Node A calls out over TLS trusting one certificate (`tls_ca`): node B
/// presents it and the call reaches B; node C presents another, so A
/// refuses the handshake, the INVITE never reaches C or its callee, and the
/// caller gets 408 when A's transaction times out.
#[test]
fn calls_out_over_tls_verifying_the_target() {
    let (certs, rogue) = (TempDir::new("sip-tls"), TempDir::new("sip-tls"));
    let (cert, key) = tollgate_tests::tls::self_signed(&certs.0);
    let (rogue_cert, rogue_key) = tollgate_tests::tls::self_signed(&rogue.0);
    let (b_tls, c_tls) = (addr(7405), addr(5005));
    let _b = node(7400, &tls_extra(b_tls, &cert, &key));
    let c = node(5000, &tls_extra(c_tls, &rogue_cert, &rogue_key));
    let more = format!(
        "[[sip.routes]]\nmatch = \"8888\"\ntarget = \"sip:9999@{b_tls};transport=tls\"\n\
         [[sip.routes]]\nmatch = \"8889\"\ntarget = \"sip:6000@{c_tls};transport=tls\"\n"
    );
    // T1 = 50 ms: an INVITE nobody took times out (64*T1) in 3.2 s.
    let trust = format!("tls_ca = \"{}\"\nt1_ms = 50\nt2_ms = 400", cert.display());
    let a = node_full(7500, &trust, STATIC, &more);
    let log = a.call("uac_noanswer.xml", "8888");
    assert!(
        log.contains("480 IVR not available"),
        "B's answer came back through A: {log}"
    );

    let _c_callee = c.uas("uas");
    let log = a.call("uac_timeout.xml", "8889");
    assert!(log.contains("SIP/2.0 408"), "{log}");
    assert!(
        a.tollgate.log_text().contains("SIP TLS connection failed"),
        "{}",
        a.tollgate.log_text()
    );
    let cdrs = a.cdrs(2);
    assert_eq!(cdrs[0]["legs"][1]["transport"], "tls", "{cdrs:?}");
    assert_eq!(cdrs[1]["sip_code"], 408, "{cdrs:?}");
    assert!(
        !c.uas_log().contains("INVITE sip:"),
        "C's callee got no call: {}",
        c.uas_log()
    );
    let at_c = tollgate_tests::cdrs::jsonl(&c.dir.0.join("cdr.jsonl"));
    assert!(at_c.is_empty(), "C saw no call: {at_c:?}");
}

/// LCR tables in a shared database server: the node creates them, the
/// operator fills them while it runs, and the next reload routes by them.
fn lcr_on_a_database_server(service: tollgate_tests::services::Service, base: u16) {
    use sqlx::Connection;
    let url = tollgate_tests::services::url(service);
    let more = format!(
        "[[sip.routes]]\nmatch = \"44*\"\ntarget = \"lcr\"\n\n[sip.lcr]\nurl = \"{url}\"\nping_secs = 0\nreload_secs = 1\n"
    );
    let n = node_full(base, "", STATIC, &more);
    let gateway = n.uas;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    sqlx::any::install_default_drivers();
    let mut c = rt
        .block_on(sqlx::AnyConnection::connect(&url))
        .expect("database");
    let mut run = |stmts: &[String]| {
        for stmt in stmts {
            rt.block_on(sqlx::query(stmt).execute(&mut c))
                .unwrap_or_else(|e| panic!("{stmt}: {e}"));
        }
    };
    // The node logs the number of gateways whenever a reload changes it:
    // wait for a reload of the emptied tables, then for one of the filled.
    let reloaded = |now: usize, before: usize| {
        let line = |k: usize| format!("LCR tables reloaded gateways={k}");
        let done = tollgate_tests::wait_until(Duration::from_secs(10), || {
            let log = n.tollgate.log_text();
            log.rfind(&line(now)) > log.rfind(&line(before))
        });
        assert!(
            done,
            "a reload found {now} gateway(s)\n{}",
            n.tollgate.log_text()
        );
    };
    run(&[
        "DELETE FROM bands".to_string(),
        "DELETE FROM numbers".into(),
        "DELETE FROM carriers".into(),
        "DELETE FROM rates".into(),
        "DELETE FROM carrier_gateways".into(),
        "DELETE FROM overrides".into(),
    ]);
    reloaded(0, 1);
    run(&[
        "INSERT INTO bands VALUES (1, 'UK')".to_string(),
        "INSERT INTO numbers VALUES ('44', 1)".into(),
        "INSERT INTO carriers VALUES (1, 'alpha', 1)".into(),
        "INSERT INTO rates VALUES (1, 1, 0.010)".into(),
        format!("INSERT INTO carrier_gateways (id, carrier_id, address, priority, strip, prefix, enabled) VALUES (11, 1, '{gateway}', 0, 0, '', 1)"),
    ]);
    reloaded(1, 0);
    let mut uas = n.uas("uas");
    n.call("uac", "442071234567");
    wait_exit(&mut uas, "the call took the gateway from the database");
    assert_eq!(n.cdr()["carrier"], "alpha");
}

#[test]
fn lcr_tables_in_postgresql() {
    lcr_on_a_database_server(tollgate_tests::services::Service::Postgres, 7600);
}

#[test]
fn lcr_tables_in_mariadb() {
    lcr_on_a_database_server(tollgate_tests::services::Service::Mariadb, 7700);
}

#[test]
fn in_dialog_info_is_relayed_with_its_body() {
    let n = node(7800, "");
    let mut uas = n.uas("uas_info.xml");
    n.call("uac_info.xml", "6000");
    wait_exit(&mut uas, "the callee got the INFO and the BYE");
    let log = n.uas_log();
    let info = &log[log.find("INFO sip:").expect("the INFO reached the callee")..];
    assert!(
        info.contains("application/dtmf-relay") && info.contains("Signal=5"),
        "{info}"
    );
    assert_eq!(n.cdr()["status"], "answered");
}

#[test]
fn silent_media_ends_the_call_with_byes_on_both_legs() {
    let n = node_full(7900, "", STATIC, "[media]\ntimeout_secs = 2\n");
    let mut uas = n.uas("uas");
    let t0 = Instant::now();
    // No RTP flows; the caller waits for a BYE, as does the callee.
    n.call("uac_callee_hangs_up.xml", "6000");
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "not before the timeout"
    );
    wait_exit(&mut uas, "the callee got the B2BUA's BYE");
    let cdr = n.cdr();
    assert_eq!(cdr["sip_reason"], "Media timeout", "{cdr}");
    assert_eq!(cdr["hangup_by"], "relay");
}
