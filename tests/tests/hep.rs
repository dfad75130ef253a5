//! HEP export (Homer) from the real binary: SIPp UAC -> Tollgate B2BUA ->
//! SIPp UAS, with `[hep]` pointing at a collector that decodes every
//! packet with sipcapture's hep-js (installed by scripts/setup.sh; tshark
//! 4.0 in Debian 12 has no HEP dissector). Checked against SIPp's own
//! message logs: every message of both legs, with its addresses and
//! ports, start line, Call-ID and CSeq, the A leg's Call-ID as correlation
//! id on both legs, the agent id and password; over UDP and TCP, and the
//! NG control messages with `ng = true`.
//!
//! The UDP export is also decoded by Debian's own tools: sngrep's HEP
//! listener turns it back into SIP packets in a pcap, which tshark reads.
//!
//! RTCP reports are exported too (payload type 5, Homer's JSON body): an
//! NG call's parties send an SR and an RR from their own sockets through
//! the relay, on the socket backend and on XDP in namespaces, and the
//! collector's decoded reports are checked field by field against them,
//! with the call-id as correlation id and each exported once; the CDR
//! then holds what each party reported and the RTT. A B2BUA call's RTCP
//! carries its A leg's Call-ID, as its SIP does.
//!
//! Ports: SIP and media 49300-49599 (a node's SIP on `base`, the UAC on
//! `base`+20 and the UAS on `base`+30, media +40/+50, relay ports from
//! `base`+60), NG 22460-22479, HEP collectors 9060-9079, RTCP tests' SIP
//! on 50000-50099, relay ports 51200-51499 and parties 51900-51999;
//! namespaces `tgh*`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_ng::Value;
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::TempDir;

/// Where setup.sh installs hep-js.
const HEP_JS: &str = "/opt/hep-js/node_modules";
const COLLECTOR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/hep/collector.js");

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The collector on 127.0.0.1:`port`, writing decoded packets to `dir/hep.jsonl`.
fn collector(dir: &Path, transport: &str, port: u16) -> Proc {
    collector_in(None, dir, transport, port)
}

/// [`collector`], in network namespace `netns` when given.
fn collector_in(netns: Option<&str>, dir: &Path, transport: &str, port: u16) -> Proc {
    peers::require("node");
    assert!(
        Path::new(HEP_JS).join("hep-js").exists(),
        "hep-js is not installed in {HEP_JS}: run scripts/setup.sh"
    );
    let mut cmd = tollgate_bench::peers::command(netns, "node");
    cmd.env("NODE_PATH", HEP_JS)
        .arg(COLLECTOR)
        .args([transport, &port.to_string()])
        .arg(dir.join("hep.jsonl"));
    let mut p = peers::spawn(cmd, dir, "collector");
    let up = tollgate_tests::wait_until(Duration::from_secs(10), || {
        assert!(
            p.child.try_wait().ok().flatten().is_none(),
            "collector exited: {}",
            p.log_text()
        );
        p.log_text().contains("listening")
    });
    assert!(up, "HEP collector not listening: {}", p.log_text());
    p
}

/// A node with SIP on `base`, NG on `ng`, relay ports `ports`, 6000
/// routed to the UAS at `base`+30, exporting HEP with `hep` (the `[hep]`
/// section's keys).
fn node(dir: &Path, base: u16, ng: u16, ports: (u16, u16), hep: &str) -> Proc {
    let sections = format!(
        "[sip]\nlisten = \"{}\"\n[[sip.routes]]\nmatch = \"6000\"\ntarget = \"sip:6000@{}\"\n[hep]\n{hep}\n",
        addr(base),
        addr(base + 30)
    );
    let ng = addr(ng).to_string();
    peers::tollgate_loopback(dir, &ng, ports, &[], &sections).0
}

/// One basic call UAC (`base`+20) -> node -> UAS (`base`+30).
fn call(dir: &Path, base: u16) {
    let mut uas = peers::sipp_uas_with(
        None,
        dir,
        addr(base + 30),
        base + 40,
        &["-sn", "uas", "-m", "1"],
    );
    let args = ["-sn", "uac", "-s", "6000", "-d", "200"];
    let (rc, log) = peers::sipp_uac(None, dir, addr(base + 20), base + 50, addr(base), &args);
    assert_eq!(rc, 0, "the call failed: {log}");
    // The UAS ends after its one call, its message log complete.
    let ended = tollgate_tests::wait_until(Duration::from_secs(10), || {
        uas.child.try_wait().ok().flatten().is_some()
    });
    assert!(
        ended,
        "the UAS did not end after its call: {}",
        uas.log_text()
    );
}

/// What is compared of one SIP message: from, to, start line, Call-ID, CSeq.
type Seen = (SocketAddr, SocketAddr, String, String, String);

/// The start line, Call-ID and CSeq of a SIP message's text.
fn summary(text: &str) -> (String, String, String) {
    let mut lines = text.lines().map(str::trim_end);
    let start = lines.next().unwrap_or_default().to_string();
    let header = |names: &[&str]| {
        text.lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                names
                    .iter()
                    .any(|w| n.trim().eq_ignore_ascii_case(w))
                    .then(|| v.trim().to_string())
            })
            .unwrap_or_default()
    };
    (start, header(&["Call-ID", "i"]), header(&["CSeq"]))
}

/// The messages in a SIPp `-trace_msg` log of a peer at `peer` that only
/// talked to `node`: what it sent went from it to the node, and back.
fn sipp_saw(log: &str, peer: SocketAddr, node: SocketAddr) -> Vec<Seen> {
    let mut seen = Vec::new();
    for entry in log
        .split("-----------------------------------------------")
        .skip(1)
    {
        let mut parts = entry.splitn(2, "\n\n");
        let (head, text) = (
            parts.next().unwrap_or_default(),
            parts.next().unwrap_or_default(),
        );
        let (from, to) = if head.contains("message sent") {
            (peer, node)
        } else if head.contains("message received") {
            (node, peer)
        } else {
            continue;
        };
        let (start, call_id, cseq) = summary(text.trim_start());
        seen.push((from, to, start, call_id, cseq));
    }
    seen.sort();
    seen
}

/// The decoded packets the collector wrote, once `want` of `kind` (HEP
/// payload type) are there and no more arrive for half a second.
fn packets(dir: &Path, kind: u64, want: usize) -> Vec<serde_json::Value> {
    let path = dir.join("hep.jsonl");
    let read = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("collector line"))
            .collect()
    };
    let of_kind = |all: &[serde_json::Value]| {
        all.iter()
            .filter(|p| p["rcinfo"]["payloadType"] == kind)
            .count()
    };
    let end = Instant::now() + Duration::from_secs(10);
    while of_kind(&read()) < want && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let all = read();
    assert!(
        all.iter().all(|p| p["error"].is_null()),
        "hep-js refused a packet: {all:?}"
    );
    all.into_iter()
        .filter(|p| p["rcinfo"]["payloadType"] == kind)
        .collect()
}

fn endpoint(rc: &serde_json::Value, side: &str) -> SocketAddr {
    let ip = rc[format!("{side}Ip")]
        .as_str()
        .expect("IP")
        .parse()
        .expect("IPv4");
    let port = rc[format!("{side}Port")].as_u64().expect("port") as u16;
    SocketAddr::new(ip, port)
}

/// What SIPp saw, the UAC's messages then the UAS's.
fn sipp_legs(dir: &Path, base: u16) -> (Vec<Seen>, Vec<Seen>) {
    let node = addr(base);
    let uac = sipp_saw(&read(dir, "uac_messages.log"), addr(base + 20), node);
    let uas = sipp_saw(&read(dir, "uas_messages.log"), addr(base + 30), node);
    assert!(
        uac.len() >= 7 && uas.len() >= 6,
        "SIPp logs: {uac:?}\n{uas:?}"
    );
    (uac, uas)
}

/// The exported messages (`hep`) are those SIPp saw on each leg.
fn assert_legs(base: u16, (uac, uas): (Vec<Seen>, Vec<Seen>), mut hep: Vec<Seen>) {
    hep.sort();
    let (a, b): (Vec<Seen>, Vec<Seen>) = hep
        .into_iter()
        .partition(|m| m.0 == addr(base + 20) || m.1 == addr(base + 20));
    assert_eq!(a, uac, "A leg: HEP against what the UAC saw");
    assert_eq!(b, uas, "B leg: HEP against what the UAS saw");
}

/// Checks the SIP hep-js decoded against both SIPp logs, and its agent id
/// and password; returns each leg's packets' correlation ids, by Call-ID.
fn check_call(dir: &Path, base: u16, agent: u64, password: &str) -> BTreeMap<String, Vec<String>> {
    let legs = sipp_legs(dir, base);
    let got = packets(dir, 1, legs.0.len() + legs.1.len());
    let mut hep: Vec<Seen> = Vec::new();
    let mut correlations: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for p in &got {
        let rc = &p["rcinfo"];
        assert_eq!(rc["captureId"], agent, "{p}");
        assert_eq!(rc["capturePass"], password, "{p}");
        assert_eq!(rc["protocol"], 17, "SIP over UDP: {p}");
        let (start, call_id, cseq) = summary(p["payload"].as_str().expect("payload"));
        let corr = rc["correlation_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        correlations.entry(call_id.clone()).or_default().push(corr);
        hep.push((
            endpoint(rc, "src"),
            endpoint(rc, "dst"),
            start,
            call_id,
            cseq,
        ));
    }
    assert_legs(base, legs, hep);
    correlations
}

fn read(dir: &Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap_or_default()
}

/// Both legs' packets carry the A leg's Call-ID as correlation id.
fn assert_one_correlation(dir: &Path, correlations: &BTreeMap<String, Vec<String>>) {
    let uac = read(dir, "uac_messages.log");
    let a_call_id = summary(uac.split("\n\n").nth(1).unwrap_or_default()).1;
    assert_eq!(correlations.len(), 2, "two dialogs: {correlations:?}");
    assert!(
        correlations.contains_key(&a_call_id),
        "{a_call_id}: {correlations:?}"
    );
    for (call_id, ids) in correlations {
        assert!(
            ids.iter().all(|c| *c == a_call_id),
            "{call_id}'s packets correlate to the A leg's Call-ID {a_call_id}: {ids:?}"
        );
    }
}

/// The collector and what the node's `[hep]` section says beyond it.
struct Export {
    transport: &'static str,
    port: u16,
    agent: u64,
    password: &'static str,
    /// More `[hep]` keys.
    more: &'static str,
}

/// One call through a node on `base` (NG on `ng`, relay ports `relay`)
/// exporting as `export` says, checked against SIPp's logs on both legs
/// with one correlation id; returns the test's directory, collector and node.
fn exported_call(
    name: &str,
    base: u16,
    ng: u16,
    relay: (u16, u16),
    export: Export,
) -> (TempDir, Proc, Proc) {
    let dir = TempDir::new(name);
    let collector = collector(&dir.0, export.transport, export.port);
    let hep = format!(
        "collector = \"{}\"\ntransport = \"{}\"\nagent_id = {}\npassword = \"{}\"\n{}",
        addr(export.port),
        export.transport,
        export.agent,
        export.password,
        export.more
    );
    let node = node(&dir.0, base, ng, relay, &hep);
    call(&dir.0, base);
    let correlations = check_call(&dir.0, base, export.agent, export.password);
    assert_one_correlation(&dir.0, &correlations);
    (dir, collector, node)
}

#[test]
fn udp_export_matches_both_legs_sipp_saw_with_the_a_leg_call_id_on_both() {
    let export = Export {
        transport: "udp",
        port: 9060,
        agent: 4242,
        password: "homer",
        more: "",
    };
    exported_call("hep-udp", 49300, 22460, (49360, 49379), export);
}

#[test]
fn tcp_export_carries_the_call_and_the_ng_messages() {
    let export = Export {
        transport: "tcp",
        port: 9061,
        agent: 1,
        password: "p",
        more: "ng = true",
    };
    let (dir, _collector, _node) = exported_call("hep-tcp", 49400, 22461, (49460, 49479), export);
    let mut ng = peers::ng_client(None, addr(22461));
    let query = ng.command("query", [("call-id", Value::str("hep-ng-call"))]);
    assert!(query.is_err(), "an unknown call: {query:?}");
    let got = packets(&dir.0, 100, 2);
    let of_call: Vec<&serde_json::Value> = got
        .iter()
        .filter(|p| p["rcinfo"]["correlation_id"] == "hep-ng-call")
        .collect();
    assert_eq!(of_call.len(), 2, "the query and its reply: {got:?}");
    let (req, reply) = (&of_call[0]["rcinfo"], &of_call[1]["rcinfo"]);
    assert!(
        of_call[0]["payload"].as_str().unwrap().contains("5:query"),
        "{got:?}"
    );
    assert!(
        of_call[1]["payload"]
            .as_str()
            .unwrap()
            .contains("Unknown call-id"),
        "{got:?}"
    );
    assert_eq!(endpoint(req, "dst"), addr(22461));
    assert_eq!(endpoint(reply, "src"), addr(22461));
    assert_eq!(endpoint(req, "src"), endpoint(reply, "dst"));
}

/// sngrep (Debian) as the collector: its HEP listener writes what it
/// decodes as plain SIP packets, with the addresses and ports HEP carried,
/// into `dir/sngrep.pcap`.
fn sngrep(dir: &Path, port: u16) -> Proc {
    peers::require("sngrep");
    let mut cmd = Command::new("sngrep");
    cmd.args(["-N", "-q", "-F", "-L", &format!("udp:{}", addr(port))])
        .arg("-O")
        .arg(dir.join("sngrep.pcap"));
    let mut p = peers::spawn(cmd, dir, "sngrep");
    let hex = format!("0100007F:{port:04X}");
    let up = tollgate_tests::wait_until(Duration::from_secs(10), || {
        assert!(
            p.child.try_wait().ok().flatten().is_none(),
            "sngrep exited: {}",
            p.log_text()
        );
        read(Path::new("/proc/net"), "udp").contains(&hex)
    });
    assert!(up, "sngrep not listening on {port}: {}", p.log_text());
    p
}

/// The SIP messages in a pcap, decoded by tshark.
fn tshark_sip(pcap: &Path) -> Vec<Seen> {
    peers::require("tshark");
    let fields = [
        "ip.src",
        "udp.srcport",
        "ip.dst",
        "udp.dstport",
        "sip.Request-Line",
        "sip.Status-Line",
        "sip.Call-ID",
        "sip.CSeq",
    ];
    let mut cmd = Command::new("tshark");
    cmd.arg("-r").arg(pcap).args(["-Y", "sip", "-T", "fields"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd.output().expect("tshark");
    assert!(out.status.success(), "tshark: {out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), fields.len(), "tshark line {l:?}");
            let at =
                |ip: &str, port: &str| SocketAddr::new(ip.parse().unwrap(), port.parse().unwrap());
            let start = if f[4].is_empty() { f[5] } else { f[4] };
            (
                at(f[0], f[1]),
                at(f[2], f[3]),
                start.to_string(),
                f[6].to_string(),
                f[7].to_string(),
            )
        })
        .collect()
}

#[test]
fn sngrep_and_tshark_decode_the_udp_export_as_the_sip_sipp_saw() {
    let dir = TempDir::new("hep-sngrep");
    let base = 49500;
    let mut sngrep = sngrep(&dir.0, 9062);
    let hep = "collector = \"127.0.0.1:9062\"\npassword = \"x\"";
    let _node = node(&dir.0, base, 22462, (49560, 49579), hep);
    call(&dir.0, base);
    let legs = sipp_legs(&dir.0, base);
    // The pcap is complete once sngrep has ended.
    std::thread::sleep(Duration::from_secs(1));
    tollgate_bench::sut::terminate(&mut sngrep.child, Duration::from_secs(3));
    assert_legs(base, legs, tshark_sip(&dir.0.join("sngrep.pcap")));
}

/// The parties of an RTCP test: each with an RTP and an RTCP socket
/// (port + 1), in its namespace when there are namespaces.
struct Party {
    rtp: std::net::UdpSocket,
    rtcp: std::net::UdpSocket,
    at: SocketAddr,
}

impl Party {
    fn bind(netns: Option<&str>, at: SocketAddr) -> Party {
        let rtcp_at = SocketAddr::new(at.ip(), at.port() + 1);
        let bind = |a: SocketAddr| match netns {
            Some(ns) => tollgate_tests::rtp::bind(ns, a),
            None => std::net::UdpSocket::bind(a).unwrap_or_else(|e| panic!("bind {a}: {e}")),
        };
        Party {
            rtp: bind(at),
            rtcp: bind(rtcp_at),
            at,
        }
    }

    fn rtcp_at(&self) -> SocketAddr {
        SocketAddr::new(self.at.ip(), self.at.port() + 1)
    }
}

fn sdp(at: SocketAddr) -> String {
    let ip = at.ip();
    format!(
        "v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0\r\n",
        at.port()
    )
}

/// The relay's RTP address in an NG reply's SDP.
fn relay_of(reply: &Value) -> SocketAddr {
    let text = reply.get("sdp").and_then(Value::as_str).expect("SDP");
    let s = tollgate_sip::sdp::Sdp::parse(text).unwrap_or_else(|e| panic!("{e}: {text}"));
    SocketAddr::new(s.connection(0).expect("c="), s.media[0].port())
}

/// Offer from `a`, answer from `b`; the relay's RTP address facing each.
fn offer_answer(
    ng: &mut tollgate_ng::client::NgClient,
    call: &str,
    (a, b): (&Party, &Party),
    direction: &[&str],
) -> (SocketAddr, SocketAddr) {
    let replace = || Value::List(vec![Value::str("origin"), Value::str("session-connection")]);
    let mut offer = vec![
        ("call-id", Value::str(call)),
        ("from-tag", Value::str("a")),
        ("sdp", Value::str(&sdp(a.at))),
        ("replace", replace()),
    ];
    if !direction.is_empty() {
        let d = direction.iter().map(|d| Value::str(d)).collect();
        offer.push(("direction", Value::List(d)));
    }
    let towards_b = relay_of(&ng.command("offer", offer).expect("offer"));
    let answer = [
        ("call-id", Value::str(call)),
        ("from-tag", Value::str("a")),
        ("to-tag", Value::str("b")),
        ("sdp", Value::str(&sdp(b.at))),
        ("replace", replace()),
    ];
    let towards_a = relay_of(&ng.command("answer", answer).expect("answer"));
    (towards_a, towards_b)
}

/// Sends `packet` from `from` to `to`, until `peer` receives it (the relay
/// may still be learning; at most 5 s).
fn relayed(from: &std::net::UdpSocket, to: SocketAddr, packet: &[u8], peer: &std::net::UdpSocket) {
    peer.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 1500];
    let end = Instant::now() + Duration::from_secs(5);
    while Instant::now() < end {
        from.send_to(packet, to).expect("send");
        if let Ok((n, _)) = peer.recv_from(&mut buf) {
            if buf[..n] == *packet {
                return;
            }
        }
    }
    panic!("{packet:02x?} sent to {to} never arrived through the relay");
}

fn words(ws: &[u32]) -> Vec<u8> {
    ws.iter().flat_map(|w| w.to_be_bytes()).collect()
}

/// An NG call between `a` and `b` through the node whose NG is `ng`: RTP
/// both ways, then B's SR and A's RR naming it through the relay's RTCP
/// ports; the collector's reports (in `dir`) must be exactly those two,
/// sent by each party to the relay, with the call-id as correlation id;
/// then the API (at `api`, if given) and the CDR show what each reported.
fn rtcp_reports_reach_the_collector(
    dir: &Path,
    ng: &mut tollgate_ng::client::NgClient,
    (a, b): (Party, Party),
    direction: &[&str],
    api: Option<SocketAddr>,
) {
    let call = "hep-rtcp-call";
    let (a_side, b_side) = offer_answer(ng, call, (&a, &b), direction);
    send_reports((&a, a_side), (&b, b_side));
    let rtcp = |s: SocketAddr| SocketAddr::new(s.ip(), s.port() + 1);
    exported_as_sent(
        dir,
        call,
        (a.rtcp_at(), rtcp(a_side)),
        (b.rtcp_at(), rtcp(b_side)),
    );
    if let Some(http) = api {
        api_shows_what_each_party_reported(http, call);
    }
    ng.command("delete", [("call-id", Value::str(call))])
        .expect("delete");
    cdr_has_what_each_party_reported(dir, call);
}

/// RTP each way, then B's SR and A's RR, each through the relay (`a_side`
/// faces A, `b_side` B).
fn send_reports((a, a_side): (&Party, SocketAddr), (b, b_side): (&Party, SocketAddr)) {
    let rtcp = |s: SocketAddr| SocketAddr::new(s.ip(), s.port() + 1);
    let rtp = tollgate_tests::rtp::packet;
    relayed(&a.rtp, a_side, &rtp(0xaaaa, 1), &b.rtp);
    relayed(&b.rtp, b_side, &rtp(0xbbbb, 1), &a.rtp);
    // B's SR: NTP 3900000000.5, RTP ts 8000, 50 packets, 8000 octets; a block
    // on A's stream: 1/256 lost, 3 cumulative, ext seq 65537, jitter 12.
    let mut sr = vec![0x81, 200, 0, 12];
    sr.extend(words(&[0xbbbb, 3_900_000_000, 1 << 31, 8000, 50, 8000]));
    sr.extend(words(&[0xaaaa, 0x0100_0003, 65537, 12, 0, 0]));
    relayed(&b.rtcp, rtcp(b_side), &sr, &a.rtcp);
    // A's RR on B's stream naming that SR (LSR: NTP's middle bits), sent
    // 0.6 s after it arrived, saying it held it 0.5 s (DLSR): a 0.1 s RTT.
    std::thread::sleep(Duration::from_millis(600));
    let mut rr = vec![0x81, 201, 0, 7];
    let block = [0xaaaa, 0xbbbb, 0x0200_0007, 1000, 40, 0x4700_8000, 0x8000];
    rr.extend(words(&block));
    relayed(&a.rtcp, rtcp(a_side), &rr, &b.rtcp);
}

/// The collector got exactly B's SR and A's RR, each once, from the party
/// to the relay (`(from, to)` of A's and of B's), field by field.
fn exported_as_sent(
    dir: &Path,
    call: &str,
    a: (SocketAddr, SocketAddr),
    b: (SocketAddr, SocketAddr),
) {
    let got = packets(dir, 5, 2);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    for p in &got {
        let rc = &p["rcinfo"];
        assert_eq!(rc["correlation_id"], call, "{p}");
        let at = rc["timeSeconds"].as_u64().expect("time");
        assert!(now.abs_diff(at) <= 10, "captured at {at}, now {now}: {p}");
    }
    let body = |p: &serde_json::Value| -> serde_json::Value {
        serde_json::from_str(p["payload"].as_str().expect("payload")).expect("JSON body")
    };
    let find = |kind: u64| {
        got.iter()
            .find(|p| body(p)["type"] == kind)
            .unwrap_or_else(|| panic!("no report of type {kind}: {got:?}"))
    };
    let (sr_hep, rr_hep) = (find(200), find(201));
    assert_eq!(got.len(), 2, "one export per report: {got:?}");
    let ends =
        |p: &serde_json::Value| (endpoint(&p["rcinfo"], "src"), endpoint(&p["rcinfo"], "dst"));
    assert_eq!((ends(sr_hep), ends(rr_hep)), (b, a));
    assert_eq!(
        body(sr_hep),
        serde_json::json!({"type": 200, "ssrc": 0xbbbb, "report_count": 1,
            "sender_information": {"ntp_timestamp_sec": 3_900_000_000_u32,
                "ntp_timestamp_usec": 1_u32 << 31, "rtp_timestamp": 8000, "packets": 50,
                "octets": 8000},
            "report_blocks": [{"source_ssrc": 0xaaaa, "fraction_lost": 1, "packets_lost": 3,
                "highest_seq_no": 65537, "ia_jitter": 12, "lsr": 0, "dlsr": 0}]})
    );
    assert_eq!(
        body(rr_hep),
        serde_json::json!({"type": 201, "ssrc": 0xaaaa, "report_count": 1,
            "report_blocks": [{"source_ssrc": 0xbbbb, "fraction_lost": 2, "packets_lost": 7,
                "highest_seq_no": 1000, "ia_jitter": 40, "lsr": 0x4700_8000_u32,
                "dlsr": 0x8000}]})
    );
    // Later polls find nothing new: still those two.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(packets(dir, 5, 2).len(), 2, "a report exported twice");
}

/// The ended call's CDR has what each party reported, and A's round trip.
fn cdr_has_what_each_party_reported(dir: &Path, call: &str) {
    let legs = cdr_legs(dir, call);
    let [(a_lost, a_jitter, a_rtt), (b_lost, b_jitter, b_rtt)] = legs[..] else {
        panic!("two legs: {legs:?}");
    };
    assert_eq!((a_lost, a_jitter), (Some(7), Some(5.0)), "A's RR: {legs:?}");
    let b = (b_lost, b_jitter, b_rtt);
    assert_eq!(b, (Some(3), Some(1.5), None), "B's SR: {legs:?}");
    let rtt = a_rtt.expect("A's RR named the SR it got");
    assert!(
        (90.0..400.0).contains(&rtt),
        "RTT {rtt} ms, 100 ms expected"
    );
}

/// `/api/calls/{call}`: each leg with what its party reported in RTCP.
fn api_shows_what_each_party_reported(http: SocketAddr, call: &str) {
    let url = format!("http://{http}/api/calls/{call}");
    let body = ureq::get(&url)
        .timeout(Duration::from_secs(5))
        .call()
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .into_string()
        .expect("body");
    let c: serde_json::Value = serde_json::from_str(&body).expect("JSON");
    let (a, b) = (&c["legs"][0]["rtcp"], &c["legs"][1]["rtcp"]);
    assert_eq!(
        (
            &a["remote_lost"],
            &a["remote_jitter_ms"],
            &b["remote_lost"],
            &b["rtt_ms"]
        ),
        (
            &serde_json::json!(7),
            &serde_json::json!(5.0),
            &serde_json::json!(3),
            &serde_json::Value::Null
        ),
        "{c}"
    );
    let rtt = a["rtt_ms"]
        .as_f64()
        .unwrap_or_else(|| panic!("A's RTT: {c}"));
    assert!((90.0..400.0).contains(&rtt), "RTT {rtt} ms: {c}");
}

/// The remote loss, remote jitter and RTT of the call's CDR legs, a then
/// b, as the node's SQLite sink stored them (once it has).
fn cdr_legs(dir: &Path, call: &str) -> Vec<(Option<i64>, Option<f64>, Option<f64>)> {
    let url = format!("sqlite://{}/cdr.sqlite", dir.display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let sql = "SELECT remote_lost, remote_jitter_ms, rtt_ms FROM cdr_legs WHERE call_id = ? ORDER BY leg";
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            // The sink creates the file with its first CDR.
            let rows = match sqlx::SqlitePool::connect(&url).await {
                Ok(pool) => sqlx::query_as(sql)
                    .bind(call)
                    .fetch_all(&pool)
                    .await
                    .unwrap_or_default(),
                Err(_) => Vec::new(),
            };
            if !rows.is_empty() || Instant::now() > end {
                return rows;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
}

#[test]
fn socket_backend_exports_the_rtcp_reports_of_an_ng_call() {
    let dir = TempDir::new("hep-rtcp-socket");
    let _collector = collector(&dir.0, "udp", 9063);
    let hep = "[hep]\ncollector = \"127.0.0.1:9063\"\n[http]\nlisten = \"127.0.0.1:9184\"\n";
    let _node = peers::tollgate_loopback(&dir.0, "127.0.0.1:22470", (51200, 51299), &[], hep);
    let mut ng = peers::ng_client(None, addr(22470));
    let parties = (
        Party::bind(None, addr(51900)),
        Party::bind(None, addr(51910)),
    );
    rtcp_reports_reach_the_collector(&dir.0, &mut ng, parties, &[], Some(addr(9184)));
}

/// A node on XDP in `topo`'s relay namespace; its pinned XDP state is
/// removed on drop.
struct XdpNode {
    tg: Option<Proc>,
    config: std::path::PathBuf,
}

impl Drop for XdpNode {
    fn drop(&mut self) {
        drop(self.tg.take());
        let _ = Command::new(tollgate_tests::process::tollgate_bin())
            .args(["dataplane", "--detach", "--config"])
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

#[test]
fn xdp_backend_exports_the_rtcp_reports_of_an_ng_call() {
    tollgate_tests::require_root();
    let topo = tollgate_tests::netns::Topology::in_namespaces("tgh");
    let bpf = tollgate_tests::process::Bpffs::new();
    let dir = TempDir::new("hep-rtcp-xdp");
    let _collector = collector_in(Some(&topo.relay), &dir.0, "udp", 9064);
    let n = tollgate_tests::netns::v4();
    let config = format!(
        "[dataplane]\nbackend = \"xdp\"\ncontrol_socket = \"{}\"\n[dataplane.xdp]\ninterfaces = [\"{}\", \"{}\"]\npin_dir = \"{}\"\n[hep]\ncollector = \"127.0.0.1:9064\"\n",
        dir.0.join("dp.sock").display(),
        topo.ra,
        topo.rb,
        bpf.dir.display()
    );
    let (ext, int) = (format!("ext/{}", n.relay_a), format!("int/{}", n.relay_b));
    let args = [
        "--interface",
        &ext,
        "--interface",
        &int,
        "--listen-ng",
        "127.0.0.1:22471",
        "--port-min",
        "51300",
        "--port-max",
        "51399",
    ];
    let tg = peers::tollgate_run(Some(&topo.relay), &dir.0, &config, &args, addr(22471));
    let node = XdpNode {
        tg: Some(tg),
        config: dir.0.join("tollgate.toml"),
    };
    let hello = tollgate_dataplane::client::ControlClient::connect(&dir.0.join("dp.sock"))
        .and_then(|mut c| c.request(&tollgate_dataplane::control::Request::Hello))
        .expect("the data plane answers");
    assert_eq!(hello["backend"], "xdp", "{hello}");
    let mut ng = peers::ng_client(Some(&topo.relay), addr(22471));
    let parties = (
        Party::bind(Some(&topo.caller), SocketAddr::new(n.caller, 51920)),
        Party::bind(Some(&topo.callee), SocketAddr::new(n.callee, 51930)),
    );
    rtcp_reports_reach_the_collector(&dir.0, &mut ng, parties, &["ext", "int"], None);
    drop(node);
}

/// The relay's address that carries RTCP to `to`: the local address of the
/// flow whose destination it is, once the call has installed it (≤ 10 s).
fn relay_port_towards(socket: &Path, to: SocketAddr) -> Option<SocketAddr> {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        let flows = tollgate_dataplane::client::ControlClient::connect(socket)
            .and_then(|mut c| c.request(&tollgate_dataplane::control::Request::FlowList));
        if let Some(f) = flows
            .ok()
            .as_ref()
            .and_then(|f| f.as_array())
            .and_then(|fs| {
                fs.iter()
                    .find(|f| f["flow"]["destination"] == to.to_string())
            })
        {
            return f["flow"]["local"].as_str().and_then(|l| l.parse().ok());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

#[test]
fn a_b2bua_calls_rtcp_is_correlated_to_its_a_leg_call_id() {
    let dir = TempDir::new("hep-rtcp-b2bua");
    let base = 50000;
    let _collector = collector(&dir.0, "udp", 9065);
    let hep = "collector = \"127.0.0.1:9065\"";
    let _node = node(&dir.0, base, 22472, (51400, 51499), hep);
    // While SIPp's call is up, a party on A's side sends an RR to the
    // relay's RTCP port towards the UAS (its media on base+40).
    let socket = dir.0.join("dp.sock");
    let uas_rtcp = addr(base + 41);
    let sender = std::thread::spawn(move || {
        let relay = relay_port_towards(&socket, uas_rtcp).expect("the call's RTCP flow");
        let a = std::net::UdpSocket::bind(addr(base + 60)).expect("bind");
        let mut rr = vec![0x81, 201, 0, 7];
        rr.extend(words(&[0x1234, 0x5678, 0x0000_0004, 321, 16, 0, 0]));
        a.send_to(&rr, relay).expect("send RR");
        relay
    });
    let args = ["-sn", "uac", "-s", "6000", "-d", "3000"];
    let mut uas = peers::sipp_uas_with(
        None,
        &dir.0,
        addr(base + 30),
        base + 40,
        &["-sn", "uas", "-m", "1"],
    );
    let (rc, log) = peers::sipp_uac(None, &dir.0, addr(base + 20), base + 50, addr(base), &args);
    assert_eq!(rc, 0, "the call failed: {log}");
    let relay = sender.join().expect("the RR was sent");
    let _ = tollgate_tests::wait_until(Duration::from_secs(5), || {
        uas.child.try_wait().ok().flatten().is_some()
    });
    let uac = read(&dir.0, "uac_messages.log");
    let a_call_id = summary(uac.split("\n\n").nth(1).unwrap_or_default()).1;
    assert!(!a_call_id.is_empty(), "the UAC's Call-ID: {uac}");
    let got = packets(&dir.0, 5, 1);
    assert_eq!(got.len(), 1, "the one RR: {got:?}");
    let rc = &got[0]["rcinfo"];
    assert_eq!(rc["correlation_id"], a_call_id.as_str(), "{rc}");
    assert_eq!(
        (endpoint(rc, "src"), endpoint(rc, "dst")),
        (addr(base + 60), relay)
    );
    let body: serde_json::Value =
        serde_json::from_str(got[0]["payload"].as_str().expect("payload")).expect("JSON");
    assert_eq!(
        (
            &body["type"],
            &body["ssrc"],
            &body["report_blocks"][0]["highest_seq_no"]
        ),
        (
            &serde_json::json!(201),
            &serde_json::json!(0x1234),
            &serde_json::json!(321)
        ),
        "{body}"
    );
}
