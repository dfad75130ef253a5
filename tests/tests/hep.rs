//! HEP export (Homer) from the real binary: SIPp UAC -> Tollgate B2BUA ->
//! SIPp UAS, with `[hep]` pointing at a collector that decodes every
//! packet with sipcapture's hep-js (installed by scripts/setup.sh; tshark
//! 4.0 in Debian 12 has no HEP dissector). Checked against SIPp's own
//! message logs: every message of both legs, with its addresses and
//! ports, start line, Call-ID and CSeq, the A leg's Call-ID as correlation
//! id on both legs, the agent id and password; over UDP and TCP, and the
//! NG control messages with `ng = true`.
//!
//! Ports: SIP and media 49300-49599 (a node's SIP on `base`, the UAC on
//! `base`+20 and the UAS on `base`+30, media +40/+50; relay ports given),
//! NG 22460-22469, HEP collectors 9060-9079.

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
    peers::require("node");
    assert!(
        Path::new(HEP_JS).join("hep-js").exists(),
        "hep-js is not installed in {HEP_JS}: run scripts/setup.sh"
    );
    let mut cmd = Command::new("node");
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

/// Checks the exported SIP against both SIPp logs; returns each leg's
/// packets' correlation ids, by Call-ID.
fn check_call(dir: &Path, base: u16, agent: u64, password: &str) -> BTreeMap<String, Vec<String>> {
    let node = addr(base);
    let uac = sipp_saw(&read(dir, "uac_messages.log"), addr(base + 20), node);
    let uas = sipp_saw(&read(dir, "uas_messages.log"), addr(base + 30), node);
    assert!(
        uac.len() >= 7 && uas.len() >= 6,
        "SIPp logs: {uac:?}\n{uas:?}"
    );
    let got = packets(dir, 1, uac.len() + uas.len());
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
    hep.sort();
    let (a, b): (Vec<Seen>, Vec<Seen>) = hep
        .into_iter()
        .partition(|m| m.0 == addr(base + 20) || m.1 == addr(base + 20));
    assert_eq!(a, uac, "A leg: HEP against what the UAC saw");
    assert_eq!(b, uas, "B leg: HEP against what the UAS saw");
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

#[test]
fn udp_export_matches_both_legs_sipp_saw_with_the_a_leg_call_id_on_both() {
    let dir = TempDir::new("hep-udp");
    let base = 49300;
    let _collector = collector(&dir.0, "udp", 9060);
    let _node = node(
        &dir.0,
        base,
        22460,
        (49400, 49449),
        "collector = \"127.0.0.1:9060\"\nagent_id = 4242\npassword = \"homer\"",
    );
    call(&dir.0, base);
    let correlations = check_call(&dir.0, base, 4242, "homer");
    assert_one_correlation(&dir.0, &correlations);
}

#[test]
fn tcp_export_carries_the_call_and_the_ng_messages() {
    let dir = TempDir::new("hep-tcp");
    let base = 49450;
    let _collector = collector(&dir.0, "tcp", 9061);
    let _node = node(
        &dir.0,
        base,
        22461,
        (49510, 49559),
        "collector = \"127.0.0.1:9061\"\ntransport = \"tcp\"\nng = true\npassword = \"p\"",
    );
    call(&dir.0, base);
    let correlations = check_call(&dir.0, base, 1, "p");
    assert_one_correlation(&dir.0, &correlations);

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
