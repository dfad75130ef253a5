//! Tollgate as a drop-in rtpengine: SIPp UAC -> Kamailio (rtpengine module,
//! rtpengine_offer/answer/delete) -> SIPp UAS, with Tollgate answering NG and
//! relaying the call's RTP (SIPp plays a G.711 + RFC 2833 pcap; the UAS
//! echoes it). Once on loopback with the socket backend, once across network
//! namespaces with the XDP backend. Checked: the call completes, both SDPs
//! point at Tollgate, Tollgate's per-leg packet counters equal what SIPp
//! sent, the XDP path did the forwarding, and no session is left after BYE.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tollgate_ng::client::NgClient;
use tollgate_ng::Value;
use tollgate_sip::sdp::Sdp;
use tollgate_tests::netns::{sh, Topology};
use tollgate_tests::peers::{self, sdp_of};
use tollgate_tests::process::{tollgate_bin, Bpffs};
use tollgate_tests::TempDir;

struct Setup<'a> {
    netns: [Option<&'a str>; 3], // caller, relay, callee
    kamailio: SocketAddr,
    uas: SocketAddr,
    uas_media: u16,
    uac: SocketAddr,
    uac_media: u16,
    ng: SocketAddr,
    /// Relay addresses as the UAS and the UAC must see them.
    towards_uas: &'a str,
    towards_uac: &'a str,
    ports: (u16, u16),
    flags: &'a str,
}

/// Per-leg RTP packet counts of a call, from an NG query.
fn rtp_packets(q: &Value) -> Vec<i64> {
    rtp_stat(q, "packets")
}

/// One `stats` field of every RTP stream of a call, sorted (-1 when absent).
fn rtp_stat(q: &Value, field: &str) -> Vec<i64> {
    let mut out = Vec::new();
    for tag in q
        .get("tags")
        .and_then(Value::as_dict)
        .expect("tags")
        .values()
    {
        for m in tag.get("medias").and_then(Value::as_list).unwrap_or(&[]) {
            for s in m.get("streams").and_then(Value::as_list).unwrap_or(&[]) {
                let rtp = s
                    .get("flags")
                    .and_then(Value::as_list)
                    .is_some_and(|f| f.contains(&Value::str("RTP")));
                if rtp {
                    out.push(
                        s.get("stats")
                            .and_then(|x| x.get(field))
                            .and_then(Value::as_int)
                            .unwrap_or(-1),
                    );
                }
            }
        }
    }
    out.sort();
    out
}

fn check_sdp(which: &str, sdp: Option<String>, addr: &str, ports: (u16, u16), endpoint_port: u16) {
    let sdp = sdp.unwrap_or_else(|| panic!("no SDP in the {which}"));
    let parsed =
        Sdp::parse(&sdp).unwrap_or_else(|e| panic!("{which} SDP does not parse: {e}\n{sdp}"));
    let m = &parsed.media[0];
    assert_eq!(
        parsed.connection(0).map(|a| a.to_string()).as_deref(),
        Some(addr),
        "{which}: c= must be Tollgate's\n{sdp}"
    );
    assert!(
        (ports.0..=ports.1).contains(&m.port()) && m.port() != endpoint_port,
        "{which}: m= port must be Tollgate's\n{sdp}"
    );
    assert_eq!(
        m.rtcp_port(),
        m.port() + 1,
        "{which}: RTCP on the next port\n{sdp}"
    );
}

fn call_through_kamailio(s: &Setup, dir: &Path, tollgate: &peers::Proc) -> Value {
    let [caller_ns, relay_ns, callee_ns] = s.netns;
    let _kam = peers::kamailio(relay_ns, dir, s.kamailio, s.uas, s.ng, s.flags);
    let _uas = peers::sipp_uas(callee_ns, dir, s.uas, s.uas_media);
    let mut ng: NgClient = peers::ng_client(relay_ns, s.ng);

    let uac_dir = dir.to_path_buf();
    let (uac, uac_media, target, caller) = (
        s.uac,
        s.uac_media,
        s.kamailio,
        caller_ns.map(str::to_string),
    );
    let call = std::thread::spawn(move || {
        peers::sipp_uac_pcap(caller.as_deref(), &uac_dir, uac, uac_media, target)
    });
    // Mid-call: the session is up and media has reached the relay.
    let (mut mid, mut flowing) = (Value::List(vec![]), false);
    tollgate_tests::wait_until(Duration::from_secs(20), || {
        mid = ng.command("list", []).expect("NG list mid-call");
        if let Some(id) = mid
            .get("calls")
            .and_then(Value::as_list)
            .and_then(|c| c.first())
        {
            let q = ng.command("query", [("call-id", id.clone())]);
            flowing = q.is_ok_and(|q| rtp_packets(&q).iter().any(|n| *n > 0));
        }
        flowing || call.is_finished()
    });
    let (rc, uac_log) = call.join().expect("uac thread");
    assert!(
        flowing,
        "no call with media at Tollgate while SIPp played its pcap: {mid:?}\n{}",
        tollgate.log_text()
    );
    assert_eq!(
        rc,
        0,
        "the call failed (sipp exit {rc});\nuac errors: {}\ntollgate: {}",
        std::fs::read_to_string(dir.join("uac_errors.log")).unwrap_or_default(),
        tollgate.log_text()
    );
    let calls = mid
        .get("calls")
        .and_then(Value::as_list)
        .unwrap_or_else(|| panic!("NG list reply: {mid:?}"));
    assert_eq!(calls.len(), 1, "one call relayed mid-call: {mid:?}");
    let call_id = calls[0].as_str().expect("call-id").to_string();

    let uas_log = std::fs::read_to_string(dir.join("uas_messages.log")).unwrap_or_default();
    check_sdp(
        "INVITE seen by the UAS",
        sdp_of(&uas_log, "INVITE sip:"),
        s.towards_uas,
        s.ports,
        s.uac_media,
    );
    check_sdp(
        "200 OK seen by the UAC",
        sdp_of(&uac_log, "SIP/2.0 200 OK"),
        s.towards_uac,
        s.ports,
        s.uas_media,
    );

    // Kamailio deletes the session when the BYE passes; wait for that.
    let mut after = Value::List(vec![]);
    let deleted = tollgate_tests::wait_until(Duration::from_secs(5), || {
        after = ng.command("list", []).expect("NG list after BYE");
        after.get("calls") == Some(&Value::List(vec![]))
    });
    assert!(deleted, "sessions left after BYE: {after:?}");
    // Within the delete delay the deleted call can still be queried.
    let q = ng
        .command("query", [("call-id", Value::str(&call_id))])
        .expect("query after BYE");
    let sent = peers::uac_pcap_packets() as i64;
    assert_eq!(
        rtp_packets(&q),
        vec![sent, sent],
        "per-leg RTP packets at Tollgate vs {sent} sent by SIPp (and echoed): {q:?}"
    );
    q
}

fn dataplane_counter(socket: &Path, name: &str) -> u64 {
    let mut c = tollgate_dataplane::client::ControlClient::connect(socket).expect("data plane");
    c.request(&tollgate_dataplane::control::Request::Counters)
        .expect("counters")[name]
        .as_u64()
        .expect("counter")
}

#[test]
fn kamailio_drives_tollgate_socket_backend_on_loopback() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgkam");
    let ng: SocketAddr = "127.0.0.1:22322".parse().unwrap();
    let (tg, ctl) = peers::tollgate_loopback(
        &dir.0,
        "127.0.0.1:22322",
        (32000, 32999),
        &["--delete-delay", "5"],
        "",
    );
    let s = Setup {
        netns: [None, None, None],
        kamailio: "127.0.0.1:5260".parse().unwrap(),
        uas: "127.0.0.1:5290".parse().unwrap(),
        uas_media: 5280,
        uac: "127.0.0.1:5270".parse().unwrap(),
        uac_media: 5284,
        ng,
        towards_uas: "127.0.0.1",
        towards_uac: "127.0.0.1",
        ports: (32000, 32999),
        flags: "replace-origin replace-session-connection",
    };
    let q = call_through_kamailio(&s, &dir.0, &tg);
    // The socket path reads RTP headers: both legs report loss (none here).
    assert_eq!(rtp_stat(&q, "packets lost"), vec![0, 0], "{q:?}");
    let sent = peers::uac_pcap_packets();
    assert!(
        dataplane_counter(&ctl, "forwarded") >= 2 * sent,
        "the data plane relayed both directions"
    );
}

#[test]
fn kamailio_drives_tollgate_xdp_backend_across_namespaces() {
    let topo = Topology::new();
    sh(&[
        "ip",
        "-n",
        &topo.caller,
        "route",
        "add",
        "default",
        "via",
        "10.201.1.1",
    ]);
    sh(&[
        "ip",
        "-n",
        &topo.callee,
        "route",
        "add",
        "default",
        "via",
        "10.201.2.1",
    ]);
    let bpf = Bpffs::new();
    let dir = TempDir::new("tgkamx");
    let ctl = dir.0.join("dp.sock");
    let config = format!(
        "[dataplane]\nbackend = \"xdp\"\ncontrol_socket = \"{}\"\n[dataplane.xdp]\ninterfaces = [\"ra\", \"rb\"]\npin_dir = \"{}\"\n",
        ctl.display(),
        bpf.dir.display()
    );
    let ng: SocketAddr = "127.0.0.1:22222".parse().unwrap();
    let tg = peers::tollgate_run(
        Some(&topo.relay),
        &dir.0,
        &config,
        &[
            "--interface",
            "caller/10.201.1.1",
            "--interface",
            "callee/10.201.2.1",
            "--delete-delay",
            "5",
        ],
        ng,
    );
    let s = Setup {
        netns: [Some(&topo.caller), Some(&topo.relay), Some(&topo.callee)],
        kamailio: "10.201.1.1:5060".parse().unwrap(),
        uas: "10.201.2.2:5090".parse().unwrap(),
        uas_media: 6000,
        uac: "10.201.1.2:5070".parse().unwrap(),
        uac_media: 7000,
        ng,
        towards_uas: "10.201.2.1",
        towards_uac: "10.201.1.1",
        ports: (30000, 40000),
        flags: "replace-origin replace-session-connection direction=caller direction=callee",
    };
    call_through_kamailio(&s, &dir.0, &tg);
    let sent = peers::uac_pcap_packets();
    let forwarded = dataplane_counter(&ctl, "forwarded");
    assert!(
        forwarded >= 2 * sent,
        "XDP forwarded {forwarded} packets; the call's media was {} packets",
        2 * sent
    );
    drop(tg);
    let _ = std::process::Command::new(tollgate_bin())
        .args(["dataplane", "--detach", "--config"])
        .arg(dir.0.join("tollgate.toml"))
        .stdout(std::process::Stdio::null())
        .status();
}
