//! Calls survive a control-plane restart: the planes run as separate
//! processes (`tollgate dataplane`, `tollgate controlplane`), SIPp places
//! calls through the B2BUA that play G.711 and DTMF from a pcap (the UAS
//! echoes it), the control plane is killed with SIGKILL while every call is
//! up and started again on the same config. The data plane relays on
//! untouched; the restarted B2BUA takes the calls back from its journal, so
//! SIPp's BYEs (sent after the restart) are answered and relayed, every
//! call completes for SIPp, and every call has exactly one CDR whose media
//! counts show every packet the relay received passed on, both ways.
//!
//! The same for calls set up over NG: after the restart `query` finds them
//! and `delete` ends them with their one CDR.
//!
//! Ports: SIP 56000-56099, relay media 56100-56999, NG 22540-22549.

use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::process::{tollgate_bin, Backend, Dataplane};
use tollgate_tests::{wait_until, TempDir};

const SIP: u16 = 56000;
const UAS: u16 = 56010;
const NG: &str = "127.0.0.1:22540";
const CALLS: u32 = 40;

/// A control plane's config: the data plane `dp`, NG on `ng`, relay ports
/// `ports`, CDRs to `cdr.jsonl` in `dir`, plus `extra` sections.
fn write_config(dir: &Path, dp: &Dataplane, ng: &str, ports: (u16, u16), extra: &str) -> PathBuf {
    let config = dir.join("controlplane.toml");
    let text = format!(
        "[dataplane]\ncontrol_socket = \"{sock}\"\n[media]\nport_min = {min}\nport_max = {max}\ndelete_delay_secs = 0\n\
         [ng]\nlisten = \"{ng}\"\n{extra}\n[cdr]\nspool_dir = \"{d}/spool\"\n\
         sinks = [{{ kind = \"jsonl\", path = \"{d}/cdr.jsonl\" }}]\n[http]\nlisten = \"127.0.0.1:0\"\n",
        sock = dp.socket.display(),
        min = ports.0,
        max = ports.1,
        d = dir.display(),
    );
    std::fs::write(&config, text).expect("config");
    config
}

/// `tollgate controlplane` on `config`, waiting until NG answers at `ng`.
fn controlplane(dir: &Path, config: &Path, ng: &str) -> Proc {
    let mut cmd = Command::new(tollgate_bin());
    cmd.arg("controlplane")
        .arg("--config")
        .arg(config)
        .env("TOLLGATE_LOG", "info");
    let p = peers::spawn(cmd, dir, "controlplane");
    peers::wait_ng(None, ng.parse().expect("NG address"), &p);
    p
}

fn kill(p: &mut Proc) {
    let _ = p.child.kill();
    let _ = p.child.wait();
}

fn cdrs(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[test]
fn sigkill_of_the_control_plane_keeps_every_call_its_media_and_one_cdr() {
    let dir = TempDir::new("tg-restart");
    let dp = Dataplane::start(None, Backend::Socket, None, "");
    let jsonl = dir.0.join("cdr.jsonl");
    let sip = format!(
        "[sip]\nlisten = \"127.0.0.1:{SIP}\"\n[[sip.routes]]\nmatch = \"6000\"\n\
         target = \"sip:6000@127.0.0.1:{UAS}\"\n"
    );
    let config = write_config(&dir.0, &dp, NG, (56100, 56899), &sip);
    let mut cp = controlplane(&dir.0, &config, NG);
    let n = CALLS.to_string();
    let _uas = peers::sipp_uas_with(
        None,
        &dir.0,
        ([127, 0, 0, 1], UAS).into(),
        56020,
        &["-sn", "uas", "-m", &n],
    );
    let pcap = dir.0.join("pcap");
    std::os::unix::fs::symlink("/usr/share/sip-tester", &pcap).expect("pcap link");
    let mut uac = Command::new("timeout");
    uac.args([
        "-s",
        "INT",
        "-k",
        "10",
        "90",
        "sipp",
        &format!("127.0.0.1:{SIP}"),
    ])
    .args([
        "-sn",
        "uac_pcap",
        "-s",
        "6000",
        "-i",
        "127.0.0.1",
        "-p",
        "56001",
    ])
    .args([
        "-bind_local",
        "-nostdin",
        "-mi",
        "127.0.0.1",
        "-mp",
        "56040",
    ])
    .args(["-m", &n, "-l", &n, "-r", "20", "-timeout", "80s"])
    .args(["-trace_err", "-error_file"])
    .arg(dir.0.join("uac_errors.log"));
    let mut uac = peers::spawn(uac, &dir.0, "sipp-uac");

    // Every call is up (their pcaps play for about 10 s): kill and restart.
    let up = wait_until(Duration::from_secs(15), || {
        let calls = ureq_calls(&cp);
        calls >= CALLS as usize
    });
    assert!(up, "not every call was answered\n{}", cp.log_text());
    kill(&mut cp);
    let before = cp.log_text();
    let mut cp = controlplane(&dir.0, &config, NG);
    let restored = cp.log_text();
    assert!(
        restored.contains(&format!(
            "B2BUA calls restored from the journal calls={CALLS} failed=0"
        )),
        "{restored}\n--- before the kill ---\n{before}"
    );

    peers::wait_sipp_success(&mut uac, &dir.0.join("uac_errors.log"), || cp.log_text());
    let all = wait_until(Duration::from_secs(10), || {
        cdrs(&jsonl).len() >= CALLS as usize
    });
    assert!(
        all,
        "{} CDRs of {CALLS}\n{}",
        cdrs(&jsonl).len(),
        cp.log_text()
    );
    std::thread::sleep(Duration::from_millis(500));
    let cdrs = cdrs(&jsonl);
    let mut seen: HashMap<String, usize> = HashMap::new();
    for c in &cdrs {
        *seen
            .entry(c["call_id"].as_str().unwrap_or("").to_string())
            .or_default() += 1;
    }
    assert_eq!(seen.len(), CALLS as usize, "distinct calls in the CDRs");
    assert!(seen.values().all(|&n| n == 1), "a CDR twice: {seen:?}");
    // The UAC played its pcap into A's leg; the relay passed all of it to
    // the UAS, and all the UAS echoed (SIPp's echo with many calls on one
    // port sends more than a call's own) back to the UAC.
    let played = peers::uac_pcap_packets();
    for c in &cdrs {
        assert_eq!(c["status"], "answered", "{c}");
        assert_eq!(c["hangup_by"], "caller", "{c}");
        let (a, b) = (&c["legs"][0], &c["legs"][1]);
        let count = |leg: &Value, dir: &str| leg[dir]["packets"].as_u64().unwrap_or(0);
        assert_eq!(count(a, "received"), played, "{c}");
        assert_eq!(count(b, "sent"), count(a, "received"), "A to B lost: {c}");
        assert!(count(b, "received") > 0, "{c}");
        assert_eq!(count(a, "sent"), count(b, "received"), "B to A lost: {c}");
    }
    kill(&mut cp);
    drop(dp);
}

/// Calls the node's HTTP API lists as answered; its port is in the log.
fn ureq_calls(cp: &Proc) -> usize {
    let Some(port) = peers::http_address(cp) else {
        return 0;
    };
    let Ok(r) = ureq::get(&format!("http://{port}/api/calls"))
        .timeout(Duration::from_secs(2))
        .call()
    else {
        return 0;
    };
    let v: Value =
        serde_json::from_str(&r.into_string().unwrap_or_default()).unwrap_or(Value::Null);
    v["calls"]
        .as_array()
        .map_or(0, |c| c.iter().filter(|c| c["state"] != "calling").count())
}

/// A PCMU SDP for a party on loopback at `port`.
fn sdp(port: u16) -> String {
    peers::pcmu_sdp(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
}

#[test]
fn ng_calls_are_found_and_deleted_once_after_a_control_plane_sigkill() {
    use tollgate_ng::Value as Ng;
    const NG2: &str = "127.0.0.1:22541";
    let dir = TempDir::new("tg-restart-ng");
    let dp = Dataplane::start(None, Backend::Socket, None, "");
    // 20 port pairs: the 10 calls hold them all.
    let config = write_config(&dir.0, &dp, NG2, (56900, 56939), "");
    let mut cp = controlplane(&dir.0, &config, NG2);
    let mut ng = peers::ng_client(None, NG2.parse().expect("address"));
    let call = |id: &str, extra: Vec<(&'static str, Ng)>| {
        let mut p = vec![("call-id", Ng::str(id)), ("from-tag", Ng::str("caller"))];
        p.extend(extra);
        p
    };
    let ids: Vec<String> = (0..10).map(|i| format!("ng-restart-{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let port = 40000 + 2 * i as u16;
        ng.command("offer", call(id, vec![("sdp", Ng::str(&sdp(port)))]))
            .expect("offer");
        let answer = vec![
            ("sdp", Ng::str(&sdp(port + 100))),
            ("to-tag", Ng::str("callee")),
        ];
        ng.command("answer", call(id, answer)).expect("answer");
    }
    kill(&mut cp);
    let mut cp = controlplane(&dir.0, &config, NG2);
    let mut ng = peers::ng_client(None, NG2.parse().expect("address"));
    for id in &ids {
        let q = ng.command("query", call(id, vec![])).expect("query");
        assert_eq!(q.get("result").and_then(Ng::as_str), Some("ok"), "{q:?}");
    }
    let unknown = ng.command("query", call("never-offered", vec![]));
    assert!(unknown.is_err(), "{unknown:?}");
    // The restored calls hold their ports again: none is left for another.
    let full = ng.command("offer", call("extra", vec![("sdp", Ng::str(&sdp(41000)))]));
    assert!(
        format!("{full:?}").contains("no free media ports"),
        "{full:?}"
    );
    for id in &ids {
        ng.command("delete", call(id, vec![])).expect("delete");
    }
    let jsonl = dir.0.join("cdr.jsonl");
    let done = wait_until(Duration::from_secs(10), || cdrs(&jsonl).len() >= ids.len());
    assert!(done, "{}", cp.log_text());
    std::thread::sleep(Duration::from_millis(500));
    let mut got: Vec<String> = cdrs(&jsonl)
        .iter()
        .map(|c| c["call_id"].as_str().unwrap_or("").to_string())
        .collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "each NG call's CDR exactly once");
    // Their relay ports are free again: a new call gets one.
    ng.command("offer", call("after", vec![("sdp", Ng::str(&sdp(41000)))]))
        .expect("an offer after the restored calls ended");
    kill(&mut cp);
}

/// A datagram of call `i`, packet `seq`: the receiver tells calls apart by
/// it (every call's party shares one socket).
fn tagged(i: u32, seq: u16) -> Vec<u8> {
    let mut p = tollgate_tests::rtp::packet(0x1000 + i, seq);
    p[12..16].copy_from_slice(&i.to_be_bytes());
    p
}

/// What `sock` receives, per call, until each of `calls` has `each` or
/// `limit` has passed (read as it arrives: 5,000 packets a second overflow
/// any receive buffer left unread).
fn receive_per_call(
    sock: std::net::UdpSocket,
    calls: usize,
    each: u64,
    limit: Duration,
) -> std::thread::JoinHandle<Vec<u64>> {
    std::thread::spawn(move || {
        sock.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let (mut per, mut buf) = (vec![0u64; calls], [0u8; 2048]);
        let (end, want) = (std::time::Instant::now() + limit, calls as u64 * each);
        let mut total = 0;
        while total < want && std::time::Instant::now() < end {
            let Ok(n) = sock.recv(&mut buf) else { continue };
            let i = (n >= 16).then(|| u32::from_be_bytes(buf[12..16].try_into().unwrap()));
            if let Some(c) = i.and_then(|i| per.get_mut(i as usize)) {
                *c += 1;
                total += 1;
            }
        }
        per
    })
}

/// The must-show of issue 18 on XDP: `tollgate run` (both planes) SIGKILLed
/// while 1,000 NG calls carry RTP, and started again on the same config.
/// The XDP program and its pinned maps keep forwarding meanwhile, the new
/// data plane adopts the flows and the new control plane takes the calls
/// back from its journal: not one packet is lost, and every call is then
/// deleted with exactly one CDR counting all its packets.
#[test]
fn xdp_node_sigkilled_under_1000_calls_loses_no_packet_and_writes_each_cdr_once() {
    use std::net::SocketAddr;
    use tollgate_ng::Value as Ng;
    use tollgate_tests::netns::{self, Topology};
    tollgate_tests::require_root();
    const N: u32 = 1000;
    let topo = Topology::in_namespaces("tgj");
    let bpf = tollgate_tests::process::Bpffs::new();
    let dir = TempDir::new("tg-restart-xdp");
    let config = format!(
        "[dataplane]\ncontrol_socket = \"{}/dp.sock\"\nbackend = \"xdp\"\n\
         [dataplane.xdp]\ninterfaces = [\"{}\", \"{}\"]\npin_dir = \"{}\"\n\
         [cdr]\nspool_dir = \"{d}/spool\"\nsinks = [{{ kind = \"jsonl\", path = \"{d}/cdr.jsonl\" }}]\n",
        dir.0.display(),
        topo.ra,
        topo.rb,
        bpf.dir.display(),
        d = dir.0.display(),
    );
    let n = netns::v4();
    let ng = "127.0.0.1:22542";
    // In the relay's namespace the ports are its own: no other test's.
    let args = peers::namespace_relay_args(ng, (20000, 27999));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ng_at: SocketAddr = ng.parse().expect("NG address");
    let start = || peers::tollgate_run(Some(&topo.relay), &dir.0, &config, &args, ng_at);
    let mut tg = start();

    // Every caller and every callee share one socket each; the payload says whose.
    let (a_at, b_at) = (
        SocketAddr::new(n.caller, 49000),
        SocketAddr::new(n.callee, 49010),
    );
    let a = tollgate_tests::rtp::bind(&topo.caller, a_at);
    let b = tollgate_tests::rtp::bind(&topo.callee, b_at);
    let mut client = peers::ng_client(Some(&topo.relay), ng_at);
    let interfaces = Ng::List(vec![Ng::str("caller"), Ng::str("callee")]);
    let mut to_relay = Vec::new();
    for i in 0..N {
        let id = format!("xdp-restart-{i}");
        let call = |extra: Vec<(&'static str, Ng)>| {
            let mut p = vec![("call-id", Ng::str(&id)), ("from-tag", Ng::str("A"))];
            p.extend(extra);
            p
        };
        let offer = vec![
            ("sdp", Ng::str(&peers::pcmu_sdp(a_at))),
            ("direction", interfaces.clone()),
        ];
        client.command("offer", call(offer)).expect("offer");
        let answer = vec![
            ("sdp", Ng::str(&peers::pcmu_sdp(b_at))),
            ("to-tag", Ng::str("B")),
        ];
        let r = client.command("answer", call(answer)).expect("answer");
        to_relay.push(peers::relay_media(&r));
    }

    // 6 s of RTP from every caller, 5 packets a second each (5,000 pps),
    // with the node SIGKILLed after 2 s and started again at once.
    let receiver = receive_per_call(b, N as usize, 30, Duration::from_secs(20));
    let sender = {
        let to = to_relay.clone();
        std::thread::spawn(move || {
            let t0 = std::time::Instant::now();
            for seq in 0..30u16 {
                for (i, at) in to.iter().enumerate() {
                    let _ = a.send_to(&tagged(i as u32, seq), at);
                }
                let due = t0 + Duration::from_millis(200) * u32::from(seq + 1);
                std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    peers::kill(&mut tg);
    let tg = start();
    sender.join().expect("sender");
    let got = receiver.join().expect("receiver");
    let short: Vec<(usize, u64)> = got
        .iter()
        .copied()
        .enumerate()
        .filter(|&(_, c)| c != 30)
        .collect();
    let counters = Command::new(tollgate_bin())
        .args(["ctl", "--socket"])
        .arg(dir.0.join("dp.sock"))
        .arg("counters")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    assert!(
        short.is_empty(),
        "calls that lost packets (of 30 each): {:?}...\ndata plane counters:\n{counters}\n{}",
        &short[..short.len().min(10)],
        tg.log_text()
    );
    assert!(
        tg.log_text()
            .contains(&format!("calls restored from the journal sessions={N}")),
        "{}",
        tg.log_text()
    );

    let mut client = peers::ng_client(Some(&topo.relay), ng_at);
    for i in 0..N {
        let id = format!("xdp-restart-{i}");
        let del = vec![("call-id", Ng::str(&id)), ("from-tag", Ng::str("A"))];
        client
            .command("delete", del)
            .expect("delete after the restart");
    }
    let jsonl = dir.0.join("cdr.jsonl");
    let all = wait_until(Duration::from_secs(20), || cdrs(&jsonl).len() >= N as usize);
    assert!(all, "{} CDRs of {N}", cdrs(&jsonl).len());
    let cdrs = cdrs(&jsonl);
    let ids: std::collections::BTreeSet<&str> =
        cdrs.iter().filter_map(|c| c["call_id"].as_str()).collect();
    assert_eq!(
        (cdrs.len(), ids.len()),
        (N as usize, N as usize),
        "one CDR per call"
    );
    for c in &cdrs {
        assert_eq!(c["legs"][0]["received"]["packets"], 30, "{c}");
    }
    drop(tg);
}
