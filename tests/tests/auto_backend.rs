//! `backend = "auto"` driven by rtpengine's command line alone: `tollgate run
//! --interface ext/ADDR1 --interface int/ADDR2` with no `[dataplane.xdp]
//! interfaces` puts XDP on the devices holding those addresses, in the data
//! plane child too. Checked across network namespaces: the data plane says
//! `xdp`, the kernel shows the program on exactly those two veths, and a call
//! set up by NG offer/answer has its RTP relayed both ways by the XDP program
//! (its counters, and no socket bound on the relay ports). A loopback-only
//! node keeps the socket backend and says why, and a device whose driver
//! refuses native XDP (a bridge) falls back to socket, leaving no program
//! behind.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tollgate_dataplane::client::ControlClient;
use tollgate_dataplane::control::Request;
use tollgate_ng::client::NgClient;
use tollgate_ng::Value;
use tollgate_sip::sdp::Sdp;
use tollgate_tests::netns::{self, sh, Topology};
use tollgate_tests::peers::{self, Proc};
use tollgate_tests::process::{tollgate_bin, Bpffs};
use tollgate_tests::{rtp, TempDir};

const NG: &str = "127.0.0.1:22400";
const PORTS: (u16, u16) = (45000, 45999);
const PACKETS: u16 = 200;

/// `tollgate run` in `ns` with `--interface` for each of `interfaces`, its
/// config naming only the control socket (and `pin_dir`, for a bpffs that
/// outlives `ip netns exec`). Stops it and removes its XDP state on drop.
struct Node {
    tg: Option<Proc>,
    config: PathBuf,
    ctl: PathBuf,
}

impl Node {
    fn start(ns: &str, dir: &Path, pin_dir: Option<&Path>, interfaces: &[&str]) -> Node {
        let ctl = dir.join("dp.sock");
        let mut config = format!("[dataplane]\ncontrol_socket = \"{}\"\n", ctl.display());
        if let Some(p) = pin_dir {
            config += &format!("[dataplane.xdp]\npin_dir = \"{}\"\n", p.display());
        }
        let (min, max) = (PORTS.0.to_string(), PORTS.1.to_string());
        let mut args = vec![];
        for i in interfaces {
            args.extend(["--interface", i]);
        }
        args.extend(["--listen-ng", NG, "--port-min", &min, "--port-max", &max]);
        args.extend(["--delete-delay", "0"]);
        let tg = peers::tollgate_run(Some(ns), dir, &config, &args, NG.parse().unwrap());
        Node {
            tg: Some(tg),
            config: dir.join("tollgate.toml"),
            ctl,
        }
    }

    fn request(&self, req: Request) -> serde_json::Value {
        ControlClient::connect(&self.ctl)
            .and_then(|mut c| c.request(&req))
            .unwrap_or_else(|e| panic!("data plane {req:?}: {e}\n{}", self.log()))
    }

    fn backend(&self) -> String {
        self.request(Request::Hello)["backend"]
            .as_str()
            .expect("hello names the backend")
            .to_string()
    }

    fn log(&self) -> String {
        self.tg.as_ref().map(Proc::log_text).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        drop(self.tg.take());
        let _ = Command::new(tollgate_bin())
            .args(["dataplane", "--detach", "--config"])
            .arg(&self.config)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status();
    }
}

/// Whether the kernel has an XDP program on `dev` in `ns`.
fn xdp_attached(ns: &str, dev: &str) -> bool {
    let out = Command::new("ip")
        .args(["-n", ns, "-d", "link", "show", "dev", dev])
        .output()
        .expect("ip link show");
    assert!(out.status.success(), "ip link show {dev} in {ns}");
    String::from_utf8_lossy(&out.stdout).contains("prog/xdp")
}

/// Waits (up to 5 s) until `ns` has resolved the link-layer address of each
/// of `peers` (the data plane asks the kernel to when a flow is installed).
fn wait_neighbours(ns: &str, peers: &[IpAddr]) {
    let deadline = Instant::now() + Duration::from_secs(5);
    for ip in peers {
        loop {
            let out = Command::new("ip")
                .args(["-n", ns, "neigh", "show", &ip.to_string()])
                .output()
                .expect("ip neigh show");
            let text = String::from_utf8_lossy(&out.stdout);
            if text.contains("lladdr") && !text.contains("INCOMPLETE") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{ns} never resolved {ip}: {text}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn sdp(ip: IpAddr, port: u16) -> String {
    format!("v=0\r\no=- 1 1 IN IP4 {ip}\r\ns=-\r\nc=IN IP4 {ip}\r\nt=0 0\r\nm=audio {port} RTP/AVP 0\r\n")
}

/// The relay's address and port in an NG reply's SDP.
fn relay_side(reply: &Value) -> SocketAddr {
    let text = reply
        .get("sdp")
        .and_then(Value::as_str)
        .expect("SDP in reply");
    let s = Sdp::parse(text).unwrap_or_else(|e| panic!("reply SDP: {e}\n{text}"));
    let addr = SocketAddr::new(s.connection(0).expect("c="), s.media[0].port());
    assert!(
        (PORTS.0..=PORTS.1).contains(&addr.port()),
        "relay port {addr} outside the range:\n{text}"
    );
    addr
}

/// Offer from `caller`, answer from `callee`, over NG in `ns`; returns the
/// relay's side towards the caller and towards the callee.
fn offer_answer(
    ns: &str,
    call: &str,
    caller: SocketAddr,
    callee: SocketAddr,
    direction: [&str; 2],
) -> (SocketAddr, SocketAddr) {
    let mut ng: NgClient = peers::ng_client(Some(ns), NG.parse().unwrap());
    let replace = || Value::List(vec![Value::str("origin"), Value::str("session-connection")]);
    let offer = ng
        .command(
            "offer",
            [
                ("call-id", Value::str(call)),
                ("from-tag", Value::str("a")),
                ("sdp", Value::str(&sdp(caller.ip(), caller.port()))),
                ("replace", replace()),
                (
                    "direction",
                    Value::List(direction.iter().map(|d| Value::str(d)).collect()),
                ),
            ],
        )
        .expect("offer");
    let towards_callee = relay_side(&offer);
    let answer = ng
        .command(
            "answer",
            [
                ("call-id", Value::str(call)),
                ("from-tag", Value::str("a")),
                ("to-tag", Value::str("b")),
                ("sdp", Value::str(&sdp(callee.ip(), callee.port()))),
                ("replace", replace()),
            ],
        )
        .expect("answer");
    (relay_side(&answer), towards_callee)
}

/// Sends PACKETS RTP packets each way between `caller` (in `caller_ns`) and
/// `callee` (in `callee_ns`) through the relay's `a_side` / `b_side`, and
/// checks every one arrives from the relay's other side.
fn relay_both_ways(
    node: &Node,
    (caller_ns, caller): (&str, SocketAddr),
    (callee_ns, callee): (&str, SocketAddr),
    (a_side, b_side): (SocketAddr, SocketAddr),
) {
    let a = rtp::bind(caller_ns, caller);
    let b = rtp::bind(callee_ns, callee);
    let gap = Duration::from_micros(300);
    for (from, to, dest, relay_src, ssrc) in
        [(&a, &b, a_side, b_side, 1), (&b, &a, b_side, a_side, 2)]
    {
        rtp::send(from, dest, ssrc, 0..PACKETS, gap);
        let got = rtp::collect(
            to,
            PACKETS as usize,
            Duration::from_millis(1500),
            Duration::from_secs(20),
        );
        assert_eq!(
            got.len(),
            PACKETS as usize,
            "to {dest}: {} of {PACKETS} relayed; counters {}\n{}",
            got.len(),
            node.request(Request::Counters),
            node.log()
        );
        assert!(
            got.iter().all(|(_, src)| *src == relay_src),
            "relayed packets must come from {relay_src}"
        );
    }
}

/// Whether anything in `ns` has a UDP socket on `port`.
fn udp_socket_on(ns: &str, port: u16) -> bool {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "ss", "-Hanu"])
        .arg(format!("sport = :{port}"))
        .output()
        .expect("ss");
    !String::from_utf8_lossy(&out.stdout).trim().is_empty()
}

#[test]
fn rtpengine_interfaces_get_xdp_on_their_devices() {
    tollgate_tests::require_root();
    let topo = Topology::with_prefix("tgab");
    let bpf = Bpffs::new();
    let dir = TempDir::new("tgab");
    let a = netns::v4();
    let ext = format!("ext/{}", a.relay_a);
    let int = format!("int/{}", a.relay_b);
    let node = Node::start(&topo.relay, &dir.0, Some(&bpf.dir), &[&ext, &int]);

    assert_eq!(node.backend(), "xdp", "{}", node.log());
    let log = node.log();
    assert!(
        log.contains("XDP attached to the devices holding the media addresses")
            && log.contains(&format!("devices={},{}", topo.ra, topo.rb)),
        "the log names the backend and its devices:\n{log}"
    );
    for dev in [&topo.ra, &topo.rb] {
        assert!(xdp_attached(&topo.relay, dev), "no XDP program on {dev}");
    }
    assert!(!xdp_attached(&topo.relay, "lo"), "XDP must not go on lo");

    let (caller, callee) = (
        SocketAddr::new(a.caller, 5000),
        SocketAddr::new(a.callee, 4000),
    );
    let (a_side, b_side) = offer_answer(&topo.relay, "auto-xdp", caller, callee, ["ext", "int"]);
    assert_eq!((a_side.ip(), b_side.ip()), (a.relay_a, a.relay_b));
    wait_neighbours(&topo.relay, &[a.caller, a.callee]);
    relay_both_ways(
        &node,
        (&topo.caller, caller),
        (&topo.callee, callee),
        (a_side, b_side),
    );

    // The XDP program's own counters, per flow and in total; and no socket
    // on the relay ports, so the kernel's stack cannot have relayed them.
    let flows = node.request(Request::FlowList);
    let flows = flows.as_array().expect("flow list");
    assert_eq!(flows.len(), 4, "RTP and RTCP, both ways: {flows:?}");
    for side in [a_side, b_side] {
        let f = flows
            .iter()
            .find(|f| f["flow"]["local"] == side.to_string())
            .unwrap_or_else(|| panic!("no flow on {side}: {flows:?}"));
        assert_eq!(f["counters"]["packets"], PACKETS as u64, "{f}");
    }
    let c = node.request(Request::Counters);
    assert!(c["forwarded"].as_u64() >= Some(2 * PACKETS as u64), "{c}");
    assert!(
        c.get("pass_no_flow").is_some() && c.get("sockets").is_none(),
        "counters are the XDP program's: {c}"
    );
    for port in [a_side.port(), b_side.port()] {
        assert!(
            !udp_socket_on(&topo.relay, port),
            "a UDP socket is bound on relay port {port}"
        );
    }
}

/// A namespace of its own, deleted on drop.
struct Netns(String);

impl Netns {
    fn new() -> Netns {
        let ns = netns::unique("tgab");
        sh(&["ip", "netns", "add", &ns]);
        sh(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        Netns(ns)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.0]).status();
    }
}

#[test]
fn loopback_only_media_keeps_the_socket_backend() {
    tollgate_tests::require_root();
    let ns = Netns::new();
    let dir = TempDir::new("tgab");
    let node = Node::start(&ns.0, &dir.0, None, &["lo/127.0.0.1"]);

    assert_eq!(node.backend(), "socket", "{}", node.log());
    let log = node.log();
    assert!(
        log.contains("backend auto: media address 127.0.0.1 is on loopback only")
            && log.contains("using the socket backend"),
        "the log says why:\n{log}"
    );
    assert!(!xdp_attached(&ns.0, "lo"), "XDP must not go on lo");

    let (caller, callee) = (
        "127.0.0.1:5000".parse().unwrap(),
        "127.0.0.1:4000".parse().unwrap(),
    );
    let sides = offer_answer(&ns.0, "auto-lo", caller, callee, ["lo", "lo"]);
    relay_both_ways(&node, (&ns.0, caller), (&ns.0, callee), sides);
    let c = node.request(Request::Counters);
    assert!(
        c.get("sockets").is_some() && c["forwarded"].as_u64() >= Some(2 * PACKETS as u64),
        "{c}"
    );
}

#[test]
fn a_device_refusing_native_xdp_falls_back_to_socket() {
    tollgate_tests::require_root();
    let ns = Netns::new();
    let bpf = Bpffs::new();
    let dir = TempDir::new("tgab");
    let br = "tgabbr0";
    sh(&["ip", "-n", &ns.0, "link", "add", br, "type", "bridge"]);
    sh(&["ip", "-n", &ns.0, "addr", "add", "10.203.1.1/24", "dev", br]);
    sh(&["ip", "-n", &ns.0, "link", "set", br, "up"]);
    let node = Node::start(&ns.0, &dir.0, Some(&bpf.dir), &["ext/10.203.1.1"]);

    assert_eq!(node.backend(), "socket", "{}", node.log());
    let log = node.log();
    assert!(
        log.contains(&format!("attaching XDP to `{br}`"))
            && log.contains("(os error")
            && log.contains("falling back to the socket backend"),
        "the log says the kernel refused XDP on {br}:\n{log}"
    );
    assert!(!xdp_attached(&ns.0, br), "nothing is left attached to {br}");
    let left: Vec<_> = std::fs::read_dir(&bpf.dir)
        .expect("the bpffs")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_none_or(|x| x != "debug")) // the kernel's own iterators
        .collect();
    assert!(
        left.is_empty(),
        "the XDP attempt's pins are removed: {left:?}\n{log}"
    );
}
