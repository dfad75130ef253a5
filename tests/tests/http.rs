//! The control plane's HTTP server, driven as an operator would: a node
//! (`tollgate run`, socket backend on loopback) carries SIPp calls while
//! the test reads `/api/calls`, then scrapes `/metrics`, has Prometheus's
//! own text parser (Python `prometheus_client`) read it, and checks the
//! SIP counters against the message counts SIPp itself kept (`-trace_counts`)
//! on both sides. Also: the token rule (refused at start beyond loopback
//! without one; 401 without it when set) and readiness; and the
//! dashboard in headless Chromium on a phone-sized screen during calls
//! (its active-calls count, no console errors, no sideways scrolling, a
//! screenshot kept under target/tmp/).
//!
//! Ports: SIP 49000-49299, HTTP 9180-9199, NG 22450-22459.

use serde_json::Value;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::{wait_until, TempDir};

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A GET to the node's HTTP server: status and body (errors are answers too).
fn get(http: SocketAddr, path: &str, token: Option<&str>) -> (u16, String) {
    let mut req = ureq::get(&format!("http://{http}{path}")).timeout(Duration::from_secs(5));
    if let Some(t) = token {
        req = req.set("Authorization", &format!("Bearer {t}"));
    }
    match req.call() {
        Ok(r) => (r.status(), r.into_string().expect("body")),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("GET http://{http}{path}: {e}"),
    }
}

fn get_json(http: SocketAddr, path: &str) -> Value {
    let (code, body) = get(http, path, None);
    assert_eq!(code, 200, "GET {path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("GET {path}: {e}: {body}"))
}

/// A B2BUA node: SIP on `sip`, NG on `ng`, HTTP on `http`, relay ports
/// `ports`, calls to 6000 going to a UAS at `uas`.
fn b2bua_node(
    dir: &Path,
    sip: SocketAddr,
    ng: SocketAddr,
    http: SocketAddr,
    ports: (u16, u16),
    uas: SocketAddr,
) -> Proc {
    let sections = format!(
        "[sip]\nlisten = \"{sip}\"\n[[sip.routes]]\nmatch = \"6000\"\ntarget = \"sip:6000@{uas}\"\n\
         [http]\nlisten = \"{http}\"\n[cdr]\nspool_dir = \"{d}/spool\"\n\
         sinks = [{{ kind = \"jsonl\", path = \"{d}/cdr.jsonl\" }}]\n",
        d = dir.display()
    );
    let (p, _) = peers::tollgate_loopback(dir, &ng.to_string(), ports, &[], &sections);
    p
}

/// A sample's name and sorted labels.
type SampleKey = (String, Vec<(String, String)>);
type Samples = HashMap<SampleKey, f64>;

/// Samples of Prometheus text as Python's `prometheus_client` parser
/// reads it (it raises on anything that is not the text format): (sample
/// name, labels) to value.
fn parse_metrics(text: &str) -> Samples {
    // Debian's python3, where scripts/setup.sh installs the parser.
    let script = r#"
import json, sys
from prometheus_client.parser import text_string_to_metric_families
out = []
for fam in text_string_to_metric_families(sys.stdin.read()):
    for s in fam.samples:
        out.append([[s.name, sorted(s.labels.items())], s.value])
json.dump(out, sys.stdout)
"#;
    let mut child = Command::new("/usr/bin/python3")
        .args(["-c", script])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("/usr/bin/python3 (scripts/setup.sh installs python3-prometheus-client)");
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write metrics");
    let out = child.wait_with_output().expect("python3");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains("No module named"),
        "Python's prometheus_client is not installed: run scripts/setup.sh ({err})"
    );
    assert!(
        out.status.success(),
        "the Prometheus parser refused /metrics: {err}\n{text}"
    );
    let samples: Vec<(SampleKey, f64)> =
        serde_json::from_slice(&out.stdout).expect("parser output");
    samples.into_iter().collect()
}

/// The value of sample `name` with exactly `labels` (0 when absent: a
/// labelled counter appears once it counted something).
fn sample(m: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut l: Vec<(String, String)> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.sort();
    m.get(&(name.to_string(), l)).copied().unwrap_or(0.0)
}

/// What SIPp counted (`-trace_counts`, its last row), by (method, code or
/// "" for a request, what SIPp did: "Sent", "Recv", "Retrans"); a response's
/// method is that of the last request before it in the scenario.
fn sipp_counts(dir: &Path, scenario: &str) -> HashMap<(String, String, String), u64> {
    let prefix = format!("{scenario}_");
    let file = std::fs::read_dir(dir)
        .expect("test dir")
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let n = p
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .to_string();
            n.starts_with(&prefix) && n.ends_with("_counts.csv")
        })
        .unwrap_or_else(|| panic!("no {scenario} counts file in {}", dir.display()));
    let text = std::fs::read_to_string(&file).expect("counts file");
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().expect("header").split(';').collect();
    let last: Vec<&str> = lines.last().expect("a row").split(';').collect();
    let mut out = HashMap::new();
    let mut method = String::new();
    for (col, val) in head.iter().zip(&last).skip(2) {
        let parts: Vec<&str> = col.splitn(3, '_').collect();
        let [_, name, kind] = parts[..] else { continue };
        let n: u64 = val.parse().unwrap_or(0);
        let key = if name.chars().all(|c| c.is_ascii_digit()) {
            (method.clone(), name.to_string(), kind.to_string())
        } else if name.chars().all(|c| c.is_ascii_uppercase()) {
            method = name.to_string();
            (method.clone(), String::new(), kind.to_string())
        } else {
            continue; // Pause
        };
        *out.entry(key).or_insert(0) += n;
    }
    out
}

/// SIPp's count of `what` (Sent/Recv) plus its retransmissions.
fn with_retrans(
    c: &HashMap<(String, String, String), u64>,
    method: &str,
    code: &str,
    what: &str,
) -> u64 {
    let k = |w: &str| (method.to_string(), code.to_string(), w.to_string());
    c.get(&k(what)).copied().unwrap_or(0) + c.get(&k("Retrans")).copied().unwrap_or(0)
}

const CALLS: u32 = 4;

/// A SIPp UAC at `uac` (media on `media`) placing `calls` calls of the
/// built-in `scenario` to 6000 at `sip`, `rate` a second, all at once at
/// most; bounded to 60 s.
#[allow(clippy::too_many_arguments)] // SIPp's own knobs, one each
fn caller(
    dir: &Path,
    sip: SocketAddr,
    uac: SocketAddr,
    media: u16,
    scenario: &str,
    calls: u32,
    rate: u32,
    extra: &[&str],
) -> Proc {
    let (n, r, mp, port) = (
        calls.to_string(),
        rate.to_string(),
        media.to_string(),
        uac.port().to_string(),
    );
    let mut cmd = tollgate_bench::peers::command(None, "timeout");
    cmd.args([
        "-s",
        "INT",
        "-k",
        "10",
        "60",
        "sipp",
        &sip.to_string(),
        "-sn",
        scenario,
    ])
    .args([
        "-s",
        "6000",
        "-i",
        "127.0.0.1",
        "-p",
        &port,
        "-bind_local",
        "-nostdin",
    ])
    .args([
        "-mi",
        "127.0.0.1",
        "-mp",
        &mp,
        "-m",
        &n,
        "-l",
        &n,
        "-r",
        &r,
        "-timeout",
        "50s",
    ])
    .args(extra);
    peers::spawn(cmd, dir, "sipp-uac")
}

/// While the calls play their RTP: the API lists them with both legs
/// and what each leg's party sent (the socket backend measures RTP).
fn check_calls_while_they_play(http: SocketAddr, uac: SocketAddr, uas: SocketAddr) {
    let mut seen = Value::Null;
    let playing = wait_until(Duration::from_secs(20), || {
        seen = get_json(http, "/api/calls");
        seen["calls"].as_array().is_some_and(|c| {
            c.len() >= 2
                && c.iter().all(|call| {
                    call["legs"][0]["media"]["packets"].as_u64() > Some(50)
                        && call["legs"][1]["media"]["packets"].as_u64() > Some(50)
                })
        })
    });
    assert!(
        playing,
        "no two calls with media both ways in /api/calls: {seen:#}"
    );
    let call = &seen["calls"][0];
    assert_eq!(call["kind"], "sip");
    assert_eq!(call["state"], "answered");
    assert_eq!(call["to_number"], "6000");
    let legs = call["legs"].as_array().expect("legs");
    assert_eq!(
        (legs[0]["leg"].as_str(), legs[1]["leg"].as_str()),
        (Some("a"), Some("b"))
    );
    assert_eq!(legs[0]["peer"], uac.to_string());
    assert_eq!(legs[1]["peer"], uas.to_string());
    assert_ne!(
        legs[0]["sip_call_id"], legs[1]["sip_call_id"],
        "a B2BUA's legs have their own Call-IDs"
    );
    let a = &legs[0]["media"];
    assert_eq!(a["lost"], 0, "nothing is lost on loopback: {a}");
    let mos = a["mos"]
        .as_f64()
        .unwrap_or_else(|| panic!("leg a has no MOS: {a}"));
    assert!((3.5..=4.5).contains(&mos), "MOS of a clean call: {mos}");
    let id = call["call_id"].as_str().expect("call id");
    let one = get_json(http, &format!("/api/calls/{id}"));
    assert_eq!(one["call_id"], id);
    assert_eq!(get(http, "/api/calls/no-such-call", None).0, 404);
}

#[test]
fn metrics_match_what_sipp_counted_and_the_api_shows_calls_with_quality() {
    peers::require("sipp");
    let dir = TempDir::new("http");
    let (sip, uac, uas, http) = (addr(49000), addr(49020), addr(49030), addr(9180));
    let node = b2bua_node(&dir.0, sip, addr(22450), http, (49100, 49199), uas);
    let ready = wait_until(Duration::from_secs(10), || {
        get(http, "/ready", None).0 == 200
    });
    assert!(
        ready,
        "never ready: {:?}\n{}",
        get(http, "/ready", None),
        node.log_text()
    );
    let n = CALLS.to_string();
    let mut callee = peers::sipp_uas_with(
        None,
        &dir.0,
        uas,
        49040,
        &["-sn", "uas", "-m", &n, "-trace_counts"],
    );
    let pcap = dir.0.join("pcap");
    std::os::unix::fs::symlink("/usr/share/sip-tester", &pcap).expect("pcap link");
    let stats = ["-trace_counts", "-trace_stat", "-stf", "uac_stat.csv"];
    let mut caller = caller(&dir.0, sip, uac, 49050, "uac_pcap", CALLS, 2, &stats);

    check_calls_while_they_play(http, uac, uas);

    let st = caller.child.wait().expect("sipp uac");
    assert!(
        st.success(),
        "SIPp UAC failed ({st}): {}\n{}",
        caller.log_text(),
        node.log_text()
    );
    let done = wait_until(Duration::from_secs(10), || {
        get_json(http, "/api/cdrs?limit=100")["cdrs"]
            .as_array()
            .map(Vec::len)
            == Some(CALLS as usize)
    });
    assert!(done, "CDRs: {}", get(http, "/api/cdrs", None).1);
    // The UAS writes its final counts as it exits, after its last call.
    let exited = wait_until(Duration::from_secs(10), || {
        callee.child.try_wait().ok().flatten().is_some()
    });
    assert!(
        exited,
        "the UAS did not finish its {CALLS} calls: {}",
        callee.log_text()
    );
    check_metrics(&dir.0, http);
}

/// `/metrics` parses, and its SIP and call counters agree with SIPp's.
fn check_metrics(dir: &Path, http: SocketAddr) {
    let (code, text) = get(http, "/metrics", None);
    assert_eq!(code, 200);
    let m = parse_metrics(&text);
    assert!(m.keys().all(|(n, _)| n.starts_with("tollgate_")), "{text}");
    let calls = CALLS as f64;
    assert_eq!(
        sample(&m, "tollgate_calls_started_total", &[]),
        calls,
        "{text}"
    );
    assert_eq!(
        sample(&m, "tollgate_calls_ended_total", &[("outcome", "answered")]),
        calls
    );
    assert_eq!(sample(&m, "tollgate_calls_active", &[]), 0.0);
    let stat = std::fs::read_to_string(dir.join("uac_stat.csv")).expect("SIPp statistics");
    let (head, last) = (
        stat.lines().next().unwrap_or(""),
        stat.lines().last().unwrap_or(""),
    );
    let col = |name: &str| {
        let i = head
            .split(';')
            .position(|c| c == name)
            .expect("SIPp stat column");
        last.split(';')
            .nth(i)
            .and_then(|v| v.parse::<f64>().ok())
            .expect("SIPp stat value")
    };
    assert_eq!(
        col("SuccessfulCall(C)"),
        calls,
        "SIPp's own count of successful calls"
    );

    let uac = sipp_counts(dir, "uac_pcap");
    let uas = sipp_counts(dir, "uas");
    let got = |dir: &str, method: &str, code: &str| {
        if code.is_empty() {
            sample(
                &m,
                "tollgate_sip_requests_total",
                &[("direction", dir), ("method", method)],
            )
        } else {
            let l = [("code", code), ("direction", dir), ("method", method)];
            sample(&m, "tollgate_sip_responses_total", &l)
        }
    };
    // What each SIPp sent, the node received, and the other way round.
    let mut checked = 0;
    for (peer, counts) in [("UAC", &uac), ("UAS", &uas)] {
        for ((method, code, what), _) in counts
            .iter()
            .filter(|(k, _)| k.2 == "Sent" || k.2 == "Recv")
        {
            let want = with_retrans(counts, method, code, what) as f64;
            let ours = if what == "Sent" { "received" } else { "sent" };
            assert_eq!(
                got(ours, method, code),
                want,
                "{peer} {what} {method} {code}: node {ours}\n{text}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 12,
        "SIPp's counts named too few messages: {uac:?} {uas:?}"
    );
    for method in ["INVITE", "ACK", "BYE"] {
        assert!(
            got("received", method, "") >= calls,
            "{method}s received\n{text}"
        );
        assert!(got("sent", method, "") >= calls, "{method}s sent\n{text}");
    }
    let retrans = uac
        .iter()
        .filter(|(k, _)| k.2 == "Retrans" && k.1.is_empty() && k.0 != "ACK");
    let retrans: u64 = retrans.map(|(_, v)| v).sum();
    let ours = sample(
        &m,
        "tollgate_sip_retransmissions_total",
        &[("direction", "received")],
    );
    assert_eq!(ours, retrans as f64, "requests SIPp retransmitted");
    assert_eq!(sample(&m, "tollgate_dataplane_up", &[]), 1.0);
    assert!(
        sample(
            &m,
            "tollgate_dataplane_packets_total",
            &[("backend", "socket"), ("counter", "forwarded")]
        ) > 0.0
    );
    check_bytes(&m, &text);
}

/// The workers' byte counters: summed, the backend's; what they relayed
/// is what they received (no drops on a clean run), in RTP-sized packets.
fn check_bytes(m: &Samples, text: &str) {
    let workers = |name: &str| -> f64 {
        m.iter()
            .filter(|((n, l), _)| n == name && l.iter().any(|(k, _)| k == "worker"))
            .map(|(_, v)| v)
            .sum()
    };
    let backend = |counter: &str| {
        let l = [("backend", "socket"), ("counter", counter)];
        sample(m, "tollgate_dataplane_bytes_total", &l)
    };
    let (rx, tx) = (
        workers("tollgate_worker_rx_bytes_total"),
        workers("tollgate_worker_tx_bytes_total"),
    );
    let packets = workers("tollgate_worker_rx_packets_total");
    assert!(rx > 0.0 && rx == backend("rx_bytes"), "rx bytes\n{text}");
    assert!(tx == rx && tx == backend("tx_bytes"), "tx bytes\n{text}");
    let per_packet = rx / packets;
    assert!(
        (12.0..=1500.0).contains(&per_packet),
        "{per_packet} bytes a packet\n{text}"
    );
    assert!(
        text.contains("tollgate_dataplane_rx_packets_per_second{backend=\"socket\"}"),
        "{text}"
    );
}

#[test]
fn a_token_is_required_beyond_loopback_and_asked_for_when_set() {
    let dir = TempDir::new("http-token");
    let cfg = dir.0.join("open.toml");
    std::fs::write(&cfg, "[http]\nlisten = \"0.0.0.0:9181\"\n").expect("config");
    let out = Command::new(tollgate_tests::process::tollgate_bin())
        .args(["run", "--config"])
        .arg(&cfg)
        .output()
        .expect("tollgate run");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "a node open beyond loopback without a token started"
    );
    assert!(
        err.contains("http.listen") && err.contains("http.token"),
        "{err}"
    );

    let http = addr(9182);
    let sections = format!("[http]\nlisten = \"{http}\"\ntoken = \"s3cret\"\n");
    let (node, _) =
        peers::tollgate_loopback(&dir.0, "127.0.0.1:22451", (49200, 49219), &[], &sections);
    assert_eq!(get(http, "/health", None).0, 200, "{}", node.log_text());
    let (code, body) = get(http, "/metrics", None);
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("http.token"), "{body}");
    assert_eq!(get(http, "/api/calls", Some("wrong")).0, 401);
    let ready = wait_until(Duration::from_secs(10), || {
        get(http, "/ready", Some("s3cret")).0 == 200
    });
    assert!(ready, "{:?}", get(http, "/ready", Some("s3cret")));
    let (code, body) = get(http, "/ready", Some("s3cret"));
    let r: Value = serde_json::from_str(&body).expect("ready JSON");
    assert_eq!(
        (code, &r["sip"], &r["dataplane"]),
        (200, &Value::Null, &Value::Bool(true)),
        "{body}"
    );
    for (path, key) in [
        ("/api/gateways", "gateways"),
        ("/api/registrations", "registrations"),
    ] {
        let (code, body) = get(http, path, Some("s3cret"));
        let v: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(
            (code, &v[key]),
            (200, &Value::Array(Vec::new())),
            "{path}: {body}"
        );
    }
    // NG requests are counted by command, failed ones as errors.
    let mut ng = peers::ng_client(None, addr(22451));
    ng.command("ping", []).expect("ping");
    assert!(ng.command("no such command", []).is_err());
    let (code, text) = get(http, "/metrics", Some("s3cret"));
    assert_eq!(code, 200);
    let m = parse_metrics(&text);
    assert_eq!(
        sample(&m, "tollgate_calls_started_total", &[]),
        0.0,
        "{text}"
    );
    let ng = |name: &str, c: &str| sample(&m, name, &[("command", c)]);
    assert!(
        ng("tollgate_ng_commands_total", "ping") >= 2.0,
        "the harness's ping and ours\n{text}"
    );
    assert_eq!(ng("tollgate_ng_errors_total", "ping"), 0.0);
    assert_eq!(ng("tollgate_ng_commands_total", "other"), 1.0);
    assert_eq!(ng("tollgate_ng_errors_total", "other"), 1.0);
}

#[test]
fn the_dashboard_shows_the_calls_in_progress_on_a_phone_screen() {
    peers::require("sipp");
    let dir = TempDir::new("http-dash");
    let (sip, uac, uas, http) = (addr(49220), addr(49230), addr(49240), addr(9183));
    let node = b2bua_node(&dir.0, sip, addr(22452), http, (49270, 49299), uas);
    let n = "3";
    let _callee = peers::sipp_uas_with(None, &dir.0, uas, 49250, &["-sn", "uas", "-m", n]);
    let _caller = caller(&dir.0, sip, uac, 49260, "uac", 3, 10, &["-d", "30000"]);
    let answered = |v: &Value| {
        v["calls"]
            .as_array()
            .is_some_and(|c| c.len() == 3 && c.iter().all(|c| c["state"] == "answered"))
    };
    let up = wait_until(Duration::from_secs(15), || {
        answered(&get_json(http, "/api/calls"))
    });
    assert!(
        up,
        "3 answered calls: {}\n{}",
        get(http, "/api/calls", None).1,
        node.log_text()
    );

    let mut b = tollgate_tests::browser::Browser::launch(&dir.0);
    b.open(&format!("http://{http}/"), 390, 844, true);
    let drawn = b.wait_for(
        "document.body.dataset.updated !== undefined && \
         document.getElementById('active-calls').textContent === '3'",
        Duration::from_secs(20),
    );
    let count = b.eval("document.getElementById('active-calls').textContent");
    assert!(
        drawn,
        "the dashboard shows {count} active calls, not 3; console: {:?}",
        b.console
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#calls tbody tr').length"),
        6,
        "a row per leg"
    );
    assert_eq!(
        b.eval("document.getElementById('link').textContent"),
        "live"
    );
    assert_eq!(b.eval("document.getElementById('errors').hidden"), true);
    let sideways = b.eval("document.documentElement.scrollWidth > window.innerWidth");
    assert_eq!(sideways, false, "the page scrolls sideways on a phone");
    assert!(
        b.eval("document.querySelectorAll('#workers .bar').length")
            .as_u64()
            >= Some(1)
    );
    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-phone.png");
    b.screenshot(&shot);
    let png = std::fs::read(&shot).expect("screenshot");
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 10_000,
        "screenshot {}",
        shot.display()
    );
    assert!(b.console.is_empty(), "console messages: {:?}", b.console);
    assert!(
        answered(&get_json(http, "/api/calls")),
        "the calls were still up"
    );
}
