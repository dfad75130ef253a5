//! Call recording end to end, on a real `tollgate run`: what a recording
//! leaves in the archive's spool (`ready/<id>/` with `rtp.pcap` and
//! `recording.json`) read back with tshark and with the archive's own
//! reader of the description.
//!
//! - Through the B2BUA (socket backend on loopback): a SIPp call on a
//!   route with `record = true` that plays G.711 from a pcap, echoed by the
//!   callee, with a re-INVITE while the audio plays: one recording, each
//!   leg's packets exactly what was played, byte for byte, with its SSRC.
//! - Through NG, on the socket backend, on XDP (AF_XDP workers) and on DPDK
//!   (with the `dpdk` feature) across namespaces: `start recording` mid-call, `pause recording`, a resume,
//!   a re-offer that moves the caller (new ports facing it), an SSRC
//!   change, `stop recording`; then a call recorded from its offer
//!   (`record call`) to its delete. Each leg's recorded packets are
//!   exactly those sent while recording was on.
//! - A spool on a small tmpfs that fills during a recorded call: one error
//!   logged, one write error counted, every packet still relayed, and the
//!   capture cut at its last whole packet, readable, and handed over.
//! - The data plane SIGKILLed mid-recording (socket backend): the rest of
//!   the call is recorded into the same capture after its restart; and the
//!   two planes as separate processes, the control plane SIGKILLed and
//!   restarted, then the data plane: one capture still holds it all.
//! - RTCP on its own port (no rtcp-mux) recorded beside the RTP; a refused
//!   recorded first offer leaves nothing in the spool.
//!
//! Ports: SIP 50600-50699, NG 22480-22484 and 22571-22573, relay media
//! 52000-52499 and 58200-58499, RTP peers 52800-52999 and 58900-58999;
//! namespaces `tgr*`.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;
use tollgate_archive::meta::RecordingMeta;
use tollgate_dataplane::control::Request;
use tollgate_ng::client::NgClient;
use tollgate_ng::Value;
use tollgate_tests::netns::{self, Topology};
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::process::Bpffs;
use tollgate_tests::{rtp, wait_until, TempDir};

/// One UDP datagram of a capture, as tshark decoded it.
#[derive(Debug)]
struct Seen {
    dst: SocketAddr,
    ssrc: Option<u32>,
    payload: Vec<u8>,
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("tshark prints hex"))
        .collect()
}

/// Every UDP datagram of `pcap`, read by tshark (RTP found by its
/// heuristic); tshark must read the whole file without complaint.
fn tshark(pcap: &Path) -> Vec<Seen> {
    peers::require("tshark");
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["--enable-heuristic", "rtp_udp", "-T", "fields"])
        .args([
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
            "-e",
            "rtp.ssrc",
            "-e",
            "udp.payload",
        ])
        .output()
        .expect("run tshark");
    assert!(
        out.status.success(),
        "tshark cannot read {}: {}",
        pcap.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "tshark line {l:?}");
            let ip: IpAddr = f[0].parse().expect("an IPv4 address");
            Seen {
                dst: SocketAddr::new(ip, f[1].parse().expect("a UDP port")),
                ssrc: f[2]
                    .strip_prefix("0x")
                    .map(|h| u32::from_str_radix(h, 16).expect("an SSRC")),
                payload: unhex(f[3]),
            }
        })
        .collect()
}

/// The recorded datagrams sent to each relay address, in order.
fn by_local(seen: &[Seen]) -> BTreeMap<SocketAddr, Vec<Vec<u8>>> {
    let mut out: BTreeMap<SocketAddr, Vec<Vec<u8>>> = BTreeMap::new();
    for s in seen {
        out.entry(s.dst).or_default().push(s.payload.clone());
    }
    out
}

/// The SSRCs tshark read in the datagrams to `local`, in order of first
/// appearance.
fn ssrcs_at(seen: &[Seen], local: SocketAddr) -> Vec<u32> {
    let mut out = Vec::new();
    for s in seen.iter().filter(|s| s.dst == local) {
        if let Some(x) = s.ssrc.filter(|x| !out.contains(x)) {
            out.push(x);
        }
    }
    out
}

/// The recordings handed to the archive, oldest first, once `want` are there.
fn ready(spool: &Path, want: usize) -> Vec<PathBuf> {
    let list = || {
        let mut v: Vec<PathBuf> = std::fs::read_dir(spool.join("ready"))
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .collect();
        v.sort_by_key(|p| {
            RecordingMeta::read(p)
                .map(|m| m.started_at)
                .unwrap_or_default()
        });
        v
    };
    wait_until(Duration::from_secs(10), || list().len() >= want);
    let got = list();
    assert_eq!(
        got.len(),
        want,
        "recordings in {}/ready: {got:?}",
        spool.display()
    );
    got
}

/// The leg of `meta` received on relay address `local`.
fn leg(meta: &RecordingMeta, local: SocketAddr) -> &tollgate_archive::meta::LegMeta {
    meta.legs
        .iter()
        .find(|l| l.local == local)
        .unwrap_or_else(|| panic!("no leg on relay address {local}: {meta:#?}"))
}

/// A PCMU packet whose payload says who sent it and when.
fn packet(ssrc: u32, seq: u16) -> Vec<u8> {
    let mut p = rtp::packet(ssrc, seq);
    for (i, b) in p[12..].iter_mut().enumerate() {
        *b = (ssrc as u8) ^ (seq as u8).wrapping_add(i as u8);
    }
    p
}

fn sdp(addr: SocketAddr, version: u32) -> String {
    let ip = addr.ip();
    format!(
        "v=0\r\no=- 1 {version} IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\n",
        addr.port()
    )
}

/// One side of an NG-driven call: its socket, and where it sends.
struct Party {
    sock: UdpSocket,
    at: SocketAddr,
    to: SocketAddr,
}

/// An NG call between a caller and a callee, tags `A` and `B`.
struct NgCall {
    ng: NgClient,
    call_id: String,
    a: Party,
    b: Party,
    /// Extra keys of every offer (interfaces).
    offer_keys: Vec<(&'static str, Value)>,
}

impl NgCall {
    fn command(&mut self, command: &str, extra: Vec<(&str, Value)>) -> Value {
        let mut p = vec![("call-id", Value::str(&self.call_id))];
        p.extend(extra);
        self.ng
            .command(command, p)
            .unwrap_or_else(|e| panic!("NG {command}: {e}"))
    }

    /// Offer from A (SDP version `version`) and B's answer; the relay
    /// addresses each now sends to.
    fn offer_answer(&mut self, version: u32, record: Option<&str>) {
        let mut o = vec![
            ("from-tag", Value::str("A")),
            ("sdp", Value::str(&sdp(self.a.at, version))),
        ];
        o.extend(self.offer_keys.iter().cloned());
        o.extend(record.map(|r| ("record call", Value::str(r))));
        let to_b = self.command("offer", o);
        self.b.to = peers::relay_media(&to_b);
        let a = vec![
            ("from-tag", Value::str("A")),
            ("to-tag", Value::str("B")),
            ("sdp", Value::str(&sdp(self.b.at, version))),
        ];
        let to_a = self.command("answer", a);
        self.a.to = peers::relay_media(&to_a);
    }

    /// A sends `seqs` with `a_ssrc`, then B with `b_ssrc`, 2 ms apart; each
    /// arrives, all of it, at the other. Returns what each sent.
    fn talk(&self, a_ssrc: u32, b_ssrc: u32, seqs: std::ops::Range<u16>) -> [Vec<Vec<u8>>; 2] {
        [
            one_way(&self.a, &self.b, a_ssrc, seqs.clone()),
            one_way(&self.b, &self.a, b_ssrc, seqs),
        ]
    }

    /// A control change reaches the workers by message: a moment for it.
    fn settle() {
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `from` sends `seqs` of `ssrc` to the relay, 2 ms apart, and `to`
/// receives every one of them, unchanged. Returns what was sent.
fn one_way(from: &Party, to: &Party, ssrc: u32, seqs: std::ops::Range<u16>) -> Vec<Vec<u8>> {
    let mut sent = Vec::new();
    for seq in seqs {
        let p = packet(ssrc, seq);
        from.sock.send_to(&p, from.to).expect("send RTP");
        sent.push(p);
        std::thread::sleep(Duration::from_millis(2));
    }
    let quiet = Duration::from_millis(1500);
    let got = rtp::collect(&to.sock, sent.len(), quiet, Duration::from_secs(30));
    let got: Vec<Vec<u8>> = got.into_iter().map(|(p, _)| p).collect();
    same(&got, &sent, &format!("relayed {} -> {}", from.at, to.at));
    sent
}

/// `got` is `want`; else where they part, without printing them whole.
fn same(got: &[Vec<u8>], want: &[Vec<u8>], what: &str) {
    let differ = got.iter().zip(want).position(|(g, w)| g != w);
    assert!(
        got.len() == want.len() && differ.is_none(),
        "{what}: {} packets for {} expected, first difference at {differ:?}",
        got.len(),
        want.len()
    );
}

/// A node (control plane and data plane) started for a test, and what it
/// needs to stay up: dropped in this order.
struct Node {
    tg: Proc,
    ng: SocketAddr,
    /// In the relay's namespace, for NG clients.
    netns: Option<String>,
    spool: PathBuf,
    ctl: PathBuf,
    _bpf: Option<Bpffs>,
    topo: Option<Topology>,
    dir: TempDir,
}

const SPOOL: &str = "spool";

/// The archive's spool, with its uploader off: these tests read the
/// hand-off as the recorder leaves it (the archive's own are archive.rs).
fn archive_section(spool: &Path) -> String {
    format!(
        "[archive]\nenabled = false\nspool = \"{}\"\n",
        spool.display()
    )
}

/// A node on loopback, socket backend, relay ports `ports`, NG at `ng`.
fn loopback(ng: &str, ports: (u16, u16), sections: &str) -> Node {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgrec");
    let spool = dir.0.join(SPOOL);
    std::fs::create_dir_all(&spool).expect("spool");
    let sections = format!("{sections}\n{}", archive_section(&spool));
    let (tg, ctl) =
        peers::tollgate_loopback(&dir.0, ng, ports, &["--delete-delay", "0"], &sections);
    Node {
        tg,
        ng: ng.parse().expect("NG address"),
        netns: None,
        spool,
        ctl,
        _bpf: None,
        topo: None,
        dir,
    }
}

/// A node in the relay namespace of a caller-relay-callee topology:
/// interfaces `caller` and `callee` on the relay's two veths.
/// The data plane's backend for a test.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Backend {
    Socket,
    /// XDP, recorded flows on its AF_XDP workers.
    Xdp,
    /// DPDK on the relay's veths (`net_af_packet`), a `tollgate` built with
    /// `--features dpdk`.
    #[cfg(feature = "dpdk")]
    Dpdk,
}

/// `prepare` gets the spool directory before the node starts.
fn in_namespaces(
    backend: Backend,
    ng: &str,
    ports: (u16, u16),
    prepare: impl FnOnce(&Path),
) -> Node {
    tollgate_tests::require_root();
    let topo = Topology::in_namespaces("tgr");
    let dir = TempDir::new("tgrec");
    let spool = dir.0.join(SPOOL);
    std::fs::create_dir_all(&spool).expect("spool");
    prepare(&spool);
    let ctl = dir.0.join("dp.sock");
    let bpf = (backend == Backend::Xdp).then(Bpffs::new);
    let backend = match (backend, &bpf) {
        (Backend::Xdp, Some(b)) => format!(
            "backend = \"xdp\"\n[dataplane.xdp]\ninterfaces = [\"{}\", \"{}\"]\npin_dir = \"{}\"\n",
            topo.ra,
            topo.rb,
            b.dir.display()
        ),
        #[cfg(feature = "dpdk")]
        (Backend::Dpdk, _) => {
            topo.give_relay_links_away();
            format!(
                "backend = \"dpdk\"\n{}",
                netns::dpdk_section(&topo.ra, &topo.rb, 1)
            )
        }
        _ => "backend = \"socket\"\n".to_string(),
    };
    let config = format!(
        "[dataplane]\ncontrol_socket = \"{}\"\n{backend}\n{}",
        ctl.display(),
        archive_section(&spool)
    );
    let args = peers::namespace_relay_args(ng, ports);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let ng: SocketAddr = ng.parse().expect("NG address");
    let tg = peers::tollgate_run(Some(&topo.relay), &dir.0, &config, &args, ng);
    Node {
        tg,
        ng,
        netns: Some(topo.relay.clone()),
        spool,
        ctl,
        _bpf: bpf,
        topo: Some(topo),
        dir,
    }
}

impl Node {
    /// A data-plane counter, read on the control socket.
    fn counter(&self, name: &str) -> u64 {
        let mut c = tollgate_dataplane::client::ControlClient::connect(&self.ctl)
            .expect("the data plane's control socket");
        let v = c.request(&Request::Counters).expect("counters");
        v[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {name}: {v}"))
    }

    fn topo(&self) -> &Topology {
        self.topo
            .as_ref()
            .expect("NG calls run across the namespaces")
    }

    /// The caller's (or else the callee's) socket on `at`, in its namespace.
    fn party(&self, caller: bool, at: SocketAddr) -> Party {
        let t = self.topo();
        let sock = rtp::bind(if caller { &t.caller } else { &t.callee }, at);
        Party { sock, at, to: at }
    }

    /// A call between parties on `a` and `b`, offered across the relay's
    /// `caller` and `callee` interfaces.
    fn call(&self, call_id: &str, a: SocketAddr, b: SocketAddr) -> NgCall {
        let interfaces = Value::List(vec![Value::str("caller"), Value::str("callee")]);
        NgCall {
            ng: peers::ng_client(self.netns.as_deref(), self.ng),
            call_id: call_id.into(),
            a: self.party(true, a),
            b: self.party(false, b),
            offer_keys: vec![("direction", interfaces)],
        }
    }
}

/// Addresses of the parties in the caller's and callee's namespaces.
fn parties(a_port: u16, b_port: u16) -> (SocketAddr, SocketAddr) {
    let n = netns::v4();
    (
        SocketAddr::new(n.caller, a_port),
        SocketAddr::new(n.callee, b_port),
    )
}

/// The NG story on `node`: recording started, paused, resumed across a
/// re-offer that moves the caller and an SSRC change, stopped; then a
/// call recorded from its offer to its delete.
fn start_pause_resume_stop(node: &Node) {
    let (a_at, b_at) = parties(52800, 52810);
    let mut c = node.call("rec-ng-1", a_at, b_at);
    c.offer_answer(1, None);
    let (a_relay, b_relay) = (c.a.to, c.b.to);
    c.talk(0xa1, 0xb1, 0..10);
    c.command("start recording", vec![]);
    NgCall::settle();
    let [a1, b1] = c.talk(0xa1, 0xb1, 10..60);
    c.command("pause recording", vec![]);
    NgCall::settle();
    c.talk(0xa1, 0xb1, 60..80);
    c.command("start recording", vec![]);
    // The caller moves to a new port: a re-offer from there. The relay
    // keeps its port facing the caller and gives the callee a new one.
    c.a = node.party(true, SocketAddr::new(a_at.ip(), a_at.port() + 2));
    c.offer_answer(2, None);
    NgCall::settle();
    assert_eq!(
        c.a.to, a_relay,
        "the caller keeps sending to the same relay port"
    );
    let b_relay2 = c.b.to;
    assert_ne!(
        b_relay2, b_relay,
        "the callee gets a new port facing the moved caller"
    );
    let [a3, b3] = c.talk(0xa2, 0xb1, 80..110);
    c.command("stop recording", vec![]);
    NgCall::settle();
    c.talk(0xa2, 0xb1, 110..120);

    let dirs = ready(&node.spool, 1);
    let meta = RecordingMeta::read(&dirs[0]).expect("recording.json");
    assert_eq!(meta.call_id, "rec-ng-1");
    assert_eq!(meta.captures, ["rtp.pcap"]);
    assert!(meta.started_at < meta.ended_at, "{meta:?}");
    let caller = leg(&meta, a_relay);
    assert_eq!(
        (caller.tag.as_str(), caller.label.as_str()),
        ("A", "caller")
    );
    assert_eq!(
        caller.ssrcs,
        [0xa1, 0xa2],
        "both of the caller's SSRCs, in order"
    );
    let names: Vec<(u8, &str)> = caller
        .codecs
        .iter()
        .map(|c| (c.payload_type, c.name.as_str()))
        .collect();
    assert_eq!(names, [(0, "PCMU"), (101, "telephone-event")]);
    for port in [b_relay, b_relay2] {
        let callee = leg(&meta, port);
        assert_eq!(
            (callee.tag.as_str(), callee.label.as_str()),
            ("B", "callee")
        );
    }
    assert_eq!(leg(&meta, b_relay).ssrcs, [0xb1]);
    let all = tshark(&dirs[0].join("rtp.pcap"));
    for l in &meta.legs {
        assert_eq!(
            ssrcs_at(&all, l.local),
            l.ssrcs,
            "tshark and recording.json agree"
        );
    }
    let seen = by_local(&all);
    let want_a: Vec<Vec<u8>> = a1.into_iter().chain(a3).collect();
    let at = |l: &SocketAddr| seen.get(l).cloned().unwrap_or_default();
    same(
        &at(&a_relay),
        &want_a,
        "the caller's packets while recording",
    );
    same(&at(&b_relay), &b1, "the callee's before the move");
    same(&at(&b_relay2), &b3, "the callee's after the move");
    assert_eq!(seen.len(), 3, "nothing else: {:?}", seen.keys());
    c.command("delete", vec![]);
    drop(c);

    let mut d = node.call("rec-ng-2", a_at, b_at);
    d.offer_answer(1, Some("yes"));
    let [a, b] = d.talk(0xc1, 0xd1, 0..25);
    d.command("delete", vec![]);
    let dirs = ready(&node.spool, 2);
    let meta = RecordingMeta::read(&dirs[1]).expect("recording.json");
    assert_eq!(meta.call_id, "rec-ng-2");
    let seen = by_local(&tshark(&dirs[1].join("rtp.pcap")));
    let at = |l: &SocketAddr| seen.get(l).cloned().unwrap_or_default();
    same(&at(&d.a.to), &a, "the caller's, recorded from the offer on");
    same(&at(&d.b.to), &b, "the callee's, recorded from the offer on");
}

/// [`start_pause_resume_stop`] on `backend`: every recorded packet passed
/// a tap on the backend's workers, and every recording was closed.
fn ng_recording_on(backend: Backend, name: &str, ng: &str, ports: (u16, u16)) {
    let node = in_namespaces(backend, ng, ports, |_| {});
    start_pause_resume_stop(&node);
    assert_eq!(node.counter("recordings_open"), 0, "every recording closed");
    let mut c =
        tollgate_dataplane::client::ControlClient::connect(&node.ctl).expect("control socket");
    let hello = c.request(&Request::Hello).expect("hello");
    assert_eq!(hello["backend"], name, "{hello}");
    let workers = c.request(&Request::Workers).expect("workers");
    let tapped: u64 = workers
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["pipeline"]["tapped"].as_u64().unwrap_or(0))
        .sum();
    // Recorded: 50 + 30 each way in the first call, 25 each way in the second.
    assert_eq!(
        tapped, 210,
        "every recorded packet went through a worker's tap: {workers}"
    );
}

#[test]
fn ng_recording_on_the_socket_backend() {
    ng_recording_on(Backend::Socket, "socket", "127.0.0.1:22480", (52000, 52099));
}

#[test]
fn ng_recording_on_xdp_through_afxdp_workers() {
    ng_recording_on(Backend::Xdp, "xdp", "127.0.0.1:22481", (52100, 52199));
}

#[cfg(feature = "dpdk")]
#[test]
fn ng_recording_on_dpdk() {
    ng_recording_on(Backend::Dpdk, "dpdk", "127.0.0.1:22484", (52400, 52499));
}

#[test]
fn a_full_spool_logs_once_keeps_the_call_up_and_keeps_what_was_written() {
    let mut mount = None;
    let node = in_namespaces(
        Backend::Socket,
        "127.0.0.1:22482",
        (52200, 52299),
        |spool| mount = Some(tollgate_tests::Tmpfs::mount(spool, "400k")),
    );
    let (a_at, b_at) = parties(52820, 52830);
    let mut c = node.call("rec-full", a_at, b_at);
    c.offer_answer(1, Some("on"));
    // 216 bytes a packet in the capture: 2500 packets overflow 400 KiB.
    let sent = one_way(&c.a, &c.b, 0xe1, 0..2500);
    c.command("delete", vec![]);
    let log = node.tg.log_text();
    let failures = log.matches("recording capture: write failed").count();
    assert_eq!(failures, 1, "one error for the full disk:\n{log}");
    assert!(log.contains("No space left on device"), "{log}");
    assert_eq!(node.counter("recorder_write_errors"), 1);
    let dirs = ready(&node.spool, 1);
    let meta = RecordingMeta::read(&dirs[0]).expect("the description fits the room kept for it");
    assert_eq!(meta.call_id, "rec-full");
    let seen = by_local(&tshark(&dirs[0].join("rtp.pcap")));
    let kept = seen.get(&c.a.to).cloned().unwrap_or_default();
    assert!(
        kept.len() > 500 && kept.len() < sent.len(),
        "a readable prefix of the call: {} of {} packets",
        kept.len(),
        sent.len()
    );
    same(
        &kept,
        &sent[..kept.len()],
        "what was written is what was sent",
    );
    drop(node);
    drop(mount);
}

/// RTP payloads of a pcap SIPp plays, in order.
fn played(pcap: &str) -> Vec<Vec<u8>> {
    tshark(Path::new(pcap))
        .into_iter()
        .map(|s| s.payload)
        .collect()
}

const SCENARIOS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/peers/recording");

#[test]
fn b2bua_records_a_route_with_record_through_a_reinvite() {
    let uas: SocketAddr = "127.0.0.1:50630".parse().unwrap();
    let sections = format!(
        "[sip]\nlisten = \"127.0.0.1:50600\"\n[[sip.routes]]\nmatch = \"6000\"\ntarget = \"sip:6000@{uas}\"\nrecord = true\n"
    );
    let node = loopback("127.0.0.1:22483", (52300, 52399), &sections);
    let dir = &node.dir.0;
    let uas_args = ["-sf", &format!("{SCENARIOS}/uas_reinvite.xml"), "-m", "1"];
    let _uas = peers::sipp_uas_with(None, dir, uas, 50640, &uas_args);
    let uac: SocketAddr = "127.0.0.1:50620".parse().unwrap();
    let scenario = [
        "-sf",
        &format!("{SCENARIOS}/uac_reinvite.xml"),
        "-s",
        "6000",
    ];
    let (status, log) = peers::sipp_uac(
        None,
        dir,
        uac,
        50650,
        "127.0.0.1:50600".parse().unwrap(),
        &scenario,
    );
    assert_eq!(
        status,
        0,
        "the call went through:\n{log}\n{}",
        node.tg.log_text()
    );
    let call_id = log
        .lines()
        .find_map(|l| l.trim().strip_prefix("Call-ID: "))
        .expect("the caller's Call-ID")
        .to_string();

    let dirs = ready(&node.spool, 1);
    let meta = RecordingMeta::read(&dirs[0]).expect("recording.json");
    assert_eq!(meta.call_id, call_id, "the A leg's Call-ID");
    assert_eq!(
        meta.legs.len(),
        2,
        "the re-INVITE kept both legs where they were: {meta:#?}"
    );
    let audio = played("/usr/share/sip-tester/g711a.pcap");
    let all = tshark(&dirs[0].join("rtp.pcap"));
    let seen = by_local(&all);
    for l in &meta.legs {
        assert_eq!(
            ssrcs_at(&all, l.local),
            l.ssrcs,
            "{}: tshark and recording.json",
            l.label
        );
        assert_eq!(
            l.ssrcs,
            [0xdee0_ee8f],
            "{}: the pcap's SSRC (echoed by the callee)",
            l.label
        );
        assert_eq!(l.codecs[0].name, "PCMA", "{l:?}");
        let got = seen.get(&l.local).cloned().unwrap_or_default();
        same(
            &got,
            &audio,
            &format!("{}: every packet played, once, byte for byte", l.label),
        );
    }
    let labels: Vec<&str> = meta.legs.iter().map(|l| l.label.as_str()).collect();
    assert!(
        labels.contains(&"caller") && labels.contains(&"callee"),
        "{labels:?}"
    );
}

/// The data plane of `node` (the child of its `tollgate run`) SIGKILLed;
/// returns once the supervisor's new one answers on the control socket.
fn kill_the_data_plane(node: &Node) {
    let hello = |ctl: &Path| {
        tollgate_dataplane::client::ControlClient::connect(ctl)
            .and_then(|mut c| c.request(&Request::Hello))
            .ok()
    };
    let before = hello(&node.ctl).expect("the data plane answers")["instance"].clone();
    let pid = node.tg.child.id();
    let children = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .expect("the node's children");
    let dp: i32 = children
        .split_whitespace()
        .next()
        .and_then(|c| c.parse().ok())
        .expect("the node runs its data plane as a child");
    // SAFETY: signalling the data plane this test's node started.
    unsafe { libc::kill(dp, libc::SIGKILL) };
    let back = wait_until(Duration::from_secs(30), || {
        hello(&node.ctl).is_some_and(|h| h["instance"] != before)
    });
    assert!(
        back,
        "no new data plane within 30 s:\n{}",
        node.tg.log_text()
    );
}

/// An NG call recorded from its offer; its data plane SIGKILLed in the
/// middle; the supervisor starts another, the control plane opens the
/// recording again under its number and re-installs the flows with their
/// taps: the capture holds what was said before and after, and nothing
/// torn between.
#[test]
fn a_data_plane_restarted_mid_recording_records_the_rest_of_the_call() {
    let node = in_namespaces(Backend::Socket, "127.0.0.1:22571", (58200, 58299), |_| {});
    let (a_at, b_at) = parties(58900, 58910);
    let mut c = node.call("rec-dp-restart", a_at, b_at);
    c.offer_answer(1, Some("on"));
    NgCall::settle();
    let [a1, b1] = c.talk(0xa1, 0xb1, 0..40);
    // The recorder writes what its taps hold every 5 ms: a SIGKILL takes
    // what it had not written yet, which is not what this test is about.
    NgCall::settle();
    kill_the_data_plane(&node);
    // The next exchange with the data plane finds it restarted.
    c.command("query", vec![]);
    NgCall::settle();
    let [a2, b2] = c.talk(0xa1, 0xb1, 40..80);
    c.command("delete", vec![]);
    let log = node.tg.log_text();
    assert!(
        log.contains("opening recordings and installing flows again"),
        "{log}"
    );
    let dirs = ready(&node.spool, 1);
    let meta = RecordingMeta::read(&dirs[0]).expect("recording.json");
    assert_eq!(meta.call_id, "rec-dp-restart");
    let seen = by_local(&tshark(&dirs[0].join("rtp.pcap")));
    let at = |l: &SocketAddr| seen.get(l).cloned().unwrap_or_default();
    let both =
        |x: Vec<Vec<u8>>, y: Vec<Vec<u8>>| -> Vec<Vec<u8>> { x.into_iter().chain(y).collect() };
    same(
        &at(&c.a.to),
        &both(a1, a2),
        "the caller's, before and after the restart",
    );
    same(
        &at(&c.b.to),
        &both(b1, b2),
        "the callee's, before and after the restart",
    );
    assert_eq!(
        node.counter("recordings_open"),
        0,
        "closed in the new data plane"
    );
}

/// An RTCP sender report from `ssrc`, its packet count `n`.
fn sender_report(ssrc: u32, n: u32) -> Vec<u8> {
    let mut p = vec![0x80, 200, 0, 6];
    p.extend_from_slice(&ssrc.to_be_bytes());
    p.extend_from_slice(&[0; 12]); // NTP and RTP timestamps
    p.extend_from_slice(&n.to_be_bytes());
    p.extend_from_slice(&(n * 160).to_be_bytes());
    p
}

/// A recorded call without rtcp-mux: the RTCP each party sends from its
/// RTCP port to the relay's (RTP + 1) is relayed and recorded too, apart from
/// the RTP; and a recorded first offer the data plane refuses (a multicast
/// party) leaves nothing in the spool, neither in `open/` nor in `ready/`.
#[test]
fn rtcp_on_its_own_port_is_recorded_and_a_refused_offer_leaves_no_recording() {
    let node = in_namespaces(Backend::Socket, "127.0.0.1:22572", (58300, 58399), |_| {});
    let (a_at, b_at) = parties(58920, 58930);
    let next = |s: SocketAddr| SocketAddr::new(s.ip(), s.port() + 1);
    let t = node.topo();
    let (a_rtcp, b_rtcp) = (
        rtp::bind(&t.caller, next(a_at)),
        rtp::bind(&t.callee, next(b_at)),
    );
    let mut c = node.call("rec-rtcp", a_at, b_at);
    c.offer_answer(1, Some("on"));
    NgCall::settle();
    let [a, b] = c.talk(0xa1, 0xb1, 0..20);
    let (a_sr, b_sr): (Vec<_>, Vec<_>) = (1..=5)
        .map(|n| (sender_report(0xa1, n), sender_report(0xb1, n)))
        .unzip();
    for (x, y) in a_sr.iter().zip(&b_sr) {
        a_rtcp.send_to(x, next(c.a.to)).expect("caller RTCP");
        b_rtcp.send_to(y, next(c.b.to)).expect("callee RTCP");
        std::thread::sleep(Duration::from_millis(20));
    }
    let relayed = |s: &UdpSocket| -> Vec<Vec<u8>> {
        rtp::collect(s, 5, Duration::from_millis(1500), Duration::from_secs(10))
            .into_iter()
            .map(|(p, _)| p)
            .collect()
    };
    same(
        &relayed(&b_rtcp),
        &a_sr,
        "the caller's RTCP reached the callee",
    );
    same(
        &relayed(&a_rtcp),
        &b_sr,
        "the callee's RTCP reached the caller",
    );
    c.command("delete", vec![]);
    let dirs = ready(&node.spool, 1);
    let seen = by_local(&tshark(&dirs[0].join("rtp.pcap")));
    let at = |l: SocketAddr| seen.get(&l).cloned().unwrap_or_default();
    same(&at(c.a.to), &a, "the caller's RTP");
    same(&at(c.b.to), &b, "the callee's RTP");
    same(
        &at(next(c.a.to)),
        &a_sr,
        "the caller's RTCP, on the relay's RTCP port",
    );
    same(
        &at(next(c.b.to)),
        &b_sr,
        "the callee's RTCP, on the relay's RTCP port",
    );
    assert_eq!(seen.len(), 4, "nothing else: {:?}", seen.keys());

    let mcast: SocketAddr = "239.1.1.1:58940".parse().unwrap();
    let refused = c.ng.command(
        "offer",
        vec![
            ("call-id", Value::str("rec-refused")),
            ("from-tag", Value::str("A")),
            ("sdp", Value::str(&sdp(mcast, 1))),
            ("record call", Value::str("on")),
        ],
    );
    assert!(
        refused.is_err(),
        "a multicast party is refused: {refused:?}"
    );
    let log = node.tg.log_text();
    assert!(
        log.lines()
            .any(|l| l.contains("recording started") && l.contains("rec-refused")),
        "the recording was opened before the refusal:\n{log}"
    );
    let left: Vec<PathBuf> = ["open", "ready"]
        .iter()
        .flat_map(|d| {
            std::fs::read_dir(node.spool.join(d))
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| !dirs.contains(p))
        .collect();
    assert!(left.is_empty(), "the refused offer left {left:?}");
}

/// `tollgate controlplane` on `config`, once NG answers at `ng`.
fn controlplane(dir: &Path, config: &Path, ng: SocketAddr) -> Proc {
    let mut cmd = Command::new(tollgate_tests::process::tollgate_bin());
    cmd.arg("controlplane").arg("--config").arg(config);
    let p = peers::spawn(cmd, dir, "controlplane");
    peers::wait_ng(None, ng, &p);
    p
}

/// The two planes as separate processes (socket backend, loopback), an NG
/// call recorded from its offer: the control plane SIGKILLed and started
/// again (it takes the recording back from its journal), then the data
/// plane SIGKILLed and started again (the new control plane reopens the
/// recording it took on): one capture holds all three stretches of talk.
#[test]
fn a_recording_survives_a_control_plane_and_then_a_data_plane_restart() {
    tollgate_tests::require_root();
    let dir = TempDir::new("tgrec-both");
    let mut dp = tollgate_tests::process::Dataplane::start(
        None,
        tollgate_tests::process::Backend::Socket,
        None,
        "",
    );
    let spool = dir.0.join(SPOOL);
    let ng: SocketAddr = "127.0.0.1:22573".parse().unwrap();
    let config = dir.0.join("controlplane.toml");
    let text = format!(
        "[dataplane]\ncontrol_socket = \"{}\"\n[media]\nport_min = 58400\nport_max = 58499\n\
         delete_delay_secs = 0\n[ng]\nlisten = \"{ng}\"\n[cdr]\nspool_dir = \"{d}/cdr\"\n\
         sinks = [{{ kind = \"jsonl\", path = \"{d}/cdr.jsonl\" }}]\n[http]\nlisten = \"127.0.0.1:0\"\n{}",
        dp.socket.display(),
        archive_section(&spool),
        d = dir.0.display(),
    );
    std::fs::write(&config, text).expect("config");
    let mut cp = controlplane(&dir.0, &config, ng);
    let party = |port: u16| {
        let at = SocketAddr::from(([127, 0, 0, 1], port));
        let sock = UdpSocket::bind(at).expect("a party's socket");
        Party { sock, at, to: at }
    };
    let mut c = NgCall {
        ng: peers::ng_client(None, ng),
        call_id: "rec-both".into(),
        a: party(58950),
        b: party(58960),
        offer_keys: Vec::new(),
    };
    c.offer_answer(1, Some("on"));
    NgCall::settle();
    let [a1, b1] = c.talk(0xa1, 0xb1, 0..30);
    peers::kill(&mut cp);
    cp = controlplane(&dir.0, &config, ng);
    c.ng = peers::ng_client(None, ng);
    let [a2, b2] = c.talk(0xa1, 0xb1, 30..60);
    NgCall::settle(); // the recorder's last write, as above
    dp.kill_and_restart();
    c.command("query", vec![]);
    NgCall::settle();
    let [a3, b3] = c.talk(0xa1, 0xb1, 60..90);
    c.command("delete", vec![]);
    let dirs = ready(&spool, 1);
    let seen = by_local(&tshark(&dirs[0].join("rtp.pcap")));
    let at = |l: &SocketAddr| seen.get(l).cloned().unwrap_or_default();
    let all = |x: [Vec<Vec<u8>>; 3]| -> Vec<Vec<u8>> { x.into_iter().flatten().collect() };
    let log = cp.log_text();
    same(
        &at(&c.a.to),
        &all([a1, a2, a3]),
        &format!("the caller's, all three stretches\n{log}"),
    );
    same(
        &at(&c.b.to),
        &all([b1, b2, b3]),
        "the callee's, all three stretches",
    );
    peers::kill(&mut cp);
}
