//! The data plane relaying real UDP between network namespaces, with both
//! backends: what the callee receives (addresses, ports, MACs, checksums,
//! every packet, both directions, IPv4 and IPv6), flow removal, symmetric-RTP
//! latching and strict sources, and counters that match what was sent.

use std::collections::BTreeSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;
use tollgate_dataplane::control::Request;
use tollgate_tests::capture::Capture;
use tollgate_tests::netns::{self, Addrs, Topology};
use tollgate_tests::process::{flow, Backend, Bpffs, Dataplane};
use tollgate_tests::rtp;

const QUIET: Duration = Duration::from_millis(1500);
const LIMIT: Duration = Duration::from_secs(20);

struct Relay {
    // Drop order: data plane, then bpffs, then namespaces.
    dp: Dataplane,
    _bpf: Option<Bpffs>,
    topo: Topology,
}

fn relay(backend: Backend, extra: &str) -> Relay {
    let topo = Topology::new();
    let bpf = matches!(backend, Backend::Xdp).then(Bpffs::new);
    let dp = Dataplane::start(Some(&topo.relay), backend, bpf.as_ref(), extra);
    Relay {
        dp,
        _bpf: bpf,
        topo,
    }
}

fn sa(ip: std::net::IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// A relay with one flow, caller 10.201.1.2:5000 -> relay 10.201.1.1:30000
/// -> (from 10.201.2.1:30002) -> callee 10.201.2.2:4000, and both end sockets.
struct OneWay {
    r: Relay,
    local: SocketAddr,
    tx: UdpSocket,
    rx: UdpSocket,
}

fn one_way(backend: Backend, extra: &str) -> OneWay {
    let r = relay(backend, extra);
    let a = netns::v4();
    r.dp.put(flow(
        "10.201.1.1:30000",
        "10.201.2.1:30002",
        "10.201.2.2:4000",
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    OneWay {
        r,
        local: sa(a.relay_a, 30000),
        tx,
        rx,
    }
}

/// The named numeric fields of a JSON object.
fn fields(v: &serde_json::Value, names: &[&str]) -> Vec<Option<u64>> {
    names.iter().map(|n| v[*n].as_u64()).collect()
}

/// Caller -> relay -> callee and back, checking every packet and the wire.
fn round_trip(backend: Backend, a: Addrs) {
    let r = relay(backend, "");
    let (t, dp) = (&r.topo, &r.dp);
    let (a_local, b_local) = (sa(a.relay_a, 30000), sa(a.relay_b, 30002));
    let (caller, callee) = (sa(a.caller, 5000), sa(a.callee, 4000));
    dp.put(flow(
        &a_local.to_string(),
        &b_local.to_string(),
        &callee.to_string(),
    ));
    dp.put(flow(
        &b_local.to_string(),
        &a_local.to_string(),
        &caller.to_string(),
    ));

    let caller_sock = rtp::bind(&t.caller, caller);
    let callee_sock = rtp::bind(&t.callee, callee);
    let n = 300u16;
    for (from_sock, from_ns_if, to_sock, to_ns, to_if, relay_if, local, relay_src, dest) in [
        (
            &caller_sock,
            "ca",
            &callee_sock,
            &t.callee,
            "eb",
            "rb",
            a_local,
            b_local,
            callee,
        ),
        (
            &callee_sock,
            "eb",
            &caller_sock,
            &t.caller,
            "ca",
            "ra",
            b_local,
            a_local,
            caller,
        ),
    ] {
        let cap = Capture::open(to_ns, to_if);
        rtp::send(from_sock, local, 0x1000, 0..n, Duration::from_micros(300));
        let got = rtp::collect(to_sock, n as usize, QUIET, LIMIT);
        let seqs: BTreeSet<u16> = rtp::seqs(&got).into_iter().collect();
        assert_eq!(
            seqs.len(),
            n as usize,
            "{from_ns_if} -> {to_if}: {} of {n} arrived; counters {}",
            seqs.len(),
            dp.request(Request::Counters)
                .map(|c| c.to_string())
                .unwrap_or_default()
        );
        assert!(
            got.iter().all(|(_, src)| *src == relay_src),
            "packets must come from the relay's {relay_src}"
        );
        assert!(
            got.iter()
                .all(|(p, _)| *p == rtp::packet(0x1000, u16::from_be_bytes([p[2], p[3]]))),
            "payload changed"
        );

        let frames = cap.udp_to(dest, n as usize, LIMIT);
        assert_eq!(
            frames.len(),
            n as usize,
            "capture on {to_if} saw {} frames",
            frames.len()
        );
        let (relay_mac, peer_mac) = (
            Topology::mac(&t.relay, relay_if),
            Topology::mac(to_ns, to_if),
        );
        for f in &frames {
            assert_eq!(f.from, relay_src, "rewritten source");
            assert!(f.ip_checksum_ok, "IP header checksum invalid: {f:?}");
            assert!(
                f.udp_checksum_ok && f.udp_checksum != 0,
                "UDP checksum invalid or absent: {f:?}"
            );
            assert_eq!((f.src_mac, f.dst_mac), (relay_mac, peer_mac), "MAC rewrite");
        }
    }
    for local in [a_local, b_local] {
        let c = &dp.flow(local)["counters"];
        assert_eq!(c["packets"], n as u64, "flow {local} counters: {c}");
        assert_eq!(c["bytes"], n as u64 * 172, "flow {local} counters: {c}");
    }
}

#[test]
fn xdp_relays_ipv4_both_ways() {
    round_trip(Backend::Xdp, netns::v4());
}

#[test]
fn xdp_relays_ipv6_both_ways() {
    round_trip(Backend::Xdp, netns::v6());
}

#[test]
fn socket_relays_ipv4_both_ways() {
    round_trip(Backend::Socket, netns::v4());
}

#[test]
fn socket_relays_ipv6_both_ways() {
    round_trip(Backend::Socket, netns::v6());
}

fn removal_stops_forwarding(backend: Backend) {
    let xdp = matches!(backend, Backend::Xdp);
    let OneWay { r, local, tx, rx } = one_way(backend, "");
    rtp::send(&tx, local, 1, 0..20, Duration::from_micros(200));
    assert_eq!(rtp::collect(&rx, 20, QUIET, LIMIT).len(), 20);

    let last = r.dp.request(Request::FlowDel { local }).expect("flow_del");
    assert_eq!(last["counters"]["packets"], 20, "final counters: {last}");
    let before = if xdp { r.dp.counter("pass_no_flow") } else { 0 };
    rtp::send(&tx, local, 1, 20..40, Duration::from_micros(200));
    let after_removal = rtp::collect(&rx, 1, Duration::from_millis(700), LIMIT);
    assert!(
        after_removal.is_empty(),
        "{} packets forwarded after removal",
        after_removal.len()
    );
    if xdp {
        assert!(
            r.dp.counter("pass_no_flow") >= before + 20,
            "packets for no flow go to the kernel, counted"
        );
    }
    let e =
        r.dp.request(Request::FlowGet { local })
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("no flow matches local address 10.201.1.1:30000"),
        "{e}"
    );
}

#[test]
fn xdp_removal_stops_forwarding() {
    removal_stops_forwarding(Backend::Xdp);
}

#[test]
fn socket_removal_stops_forwarding() {
    removal_stops_forwarding(Backend::Socket);
}

/// The caller is "behind NAT": it sends from port 5000 although its SDP said
/// 5999. The reverse flow follows the learned source, and the strict flow
/// drops a stranger.
fn latching(backend: Backend) {
    let r = relay(backend, "");
    let a = netns::v4();
    let (a_local, b_local) = (sa(a.relay_a, 30000), sa(a.relay_b, 30002));
    let mut fa = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    fa.learn = true;
    fa.strict = true;
    let mut fb = flow("10.201.2.1:30002", "10.201.1.1:30000", "10.201.1.2:5999");
    fb.follow = Some(a_local);
    r.dp.put(fa);
    r.dp.put(fb);
    let caller = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let stranger = rtp::bind(&r.topo.caller, sa(a.caller, 5001));
    let callee = rtp::bind(&r.topo.callee, sa(a.callee, 4000));

    rtp::send(&caller, a_local, 7, 0..10, Duration::from_micros(200));
    assert_eq!(rtp::collect(&callee, 10, QUIET, LIMIT).len(), 10);
    let learned = r.dp.flow(a_local)["counters"]["learned"].clone();
    assert_eq!(learned, "10.201.1.2:5000", "learned source");

    rtp::send(&callee, b_local, 8, 0..10, Duration::from_micros(200));
    let back = rtp::collect(&caller, 10, QUIET, LIMIT);
    assert_eq!(
        back.len(),
        10,
        "replies go to the learned 5000, not the signalled 5999"
    );
    assert!(back.iter().all(|(_, s)| *s == a_local));

    rtp::send(&stranger, a_local, 9, 0..10, Duration::from_micros(200));
    let leaked = rtp::collect(&callee, 1, Duration::from_millis(700), LIMIT);
    assert!(
        leaked.is_empty(),
        "strict flow forwarded a stranger's packets"
    );
    let c = &r.dp.flow(a_local)["counters"];
    assert_eq!(c["dropped_source"], 10, "{c}");
    assert_eq!(c["packets"], 10, "{c}");
    assert_eq!(r.dp.counter("drop_source_mismatch"), 10);
}

#[test]
fn xdp_symmetric_rtp_latching_and_strict_source() {
    latching(Backend::Xdp);
}

#[test]
fn socket_symmetric_rtp_latching_and_strict_source() {
    latching(Backend::Socket);
}

#[test]
fn xdp_passes_packets_for_no_flow_to_the_kernel() {
    let r = relay(Backend::Xdp, "");
    let a = netns::v4();
    let listener = rtp::bind(&r.topo.relay, sa(a.relay_a, 31000));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    rtp::send(&tx, sa(a.relay_a, 31000), 1, 0..5, Duration::ZERO);
    assert_eq!(
        rtp::collect(&listener, 5, QUIET, LIMIT).len(),
        5,
        "the kernel's socket got them"
    );
    assert!(r.dp.counter("pass_no_flow") >= 5);
    assert_eq!(r.dp.counter("forwarded"), 0);
}

#[test]
fn xdp_restart_loses_no_packet() {
    let OneWay {
        mut r,
        local,
        tx,
        rx,
    } = one_way(Backend::Xdp, "");
    r.dp.put(flow(
        "10.201.2.1:30002",
        "10.201.1.1:30000",
        "10.201.1.2:5000",
    ));
    let n = 3000u16;
    let sender =
        std::thread::spawn(move || rtp::send(&tx, local, 3, 0..n, Duration::from_millis(1)));
    // Kill it mid-stream: once packets are going through.
    let flowing = tollgate_tests::wait_until(Duration::from_secs(5), || {
        r.dp.flow(local)["counters"]["packets"].as_u64() >= Some(100)
    });
    assert!(flowing, "packets go through before the restart");
    r.dp.kill_and_restart();
    let got = rtp::collect(&rx, n as usize, QUIET, Duration::from_secs(30));
    sender.join().expect("sender");
    let seqs: BTreeSet<u16> = rtp::seqs(&got).into_iter().collect();
    assert_eq!(
        got.len(),
        n as usize,
        "received {} packets, {} distinct, of {n}",
        got.len(),
        seqs.len()
    );
    assert_eq!(seqs.len(), n as usize);
    let log = r.dp.log_text();
    assert!(
        log.contains("took over the pinned XDP link"),
        "restart must adopt the pinned links:\n{log}"
    );
    let list = r.dp.request(Request::FlowList).expect("flow_list");
    assert_eq!(
        list.as_array().map(Vec::len),
        Some(2),
        "adopted flows: {list}"
    );
    assert_eq!(
        r.dp.flow(local)["counters"]["packets"],
        n as u64,
        "counters survive the restart"
    );
}

#[test]
fn socket_measures_rtp_quality() {
    let OneWay { r, local, tx, rx } = one_way(Backend::Socket, "");
    // 100 sequence numbers with 50..60 missing, then a new SSRC.
    rtp::send(
        &tx,
        local,
        0xaaaa,
        (0..50).chain(60..100),
        Duration::from_micros(200),
    );
    assert_eq!(rtp::collect(&rx, 90, QUIET, LIMIT).len(), 90);
    let q = r.dp.flow(local)["counters"]["rtp"].clone();
    assert_eq!(
        fields(&q, &["expected", "received", "lost"]),
        [Some(100), Some(90), Some(10)],
        "{q}"
    );
    rtp::send(&tx, local, 0xbbbb, 500..520, Duration::from_micros(200));
    assert_eq!(rtp::collect(&rx, 20, QUIET, LIMIT).len(), 20);
    let q = r.dp.flow(local)["counters"]["rtp"].clone();
    assert_eq!(
        fields(&q, &["ssrc", "ssrc_changes", "lost"]),
        [Some(0xbbbb), Some(1), Some(0)],
        "{q}"
    );
    // RTCP on the same port (rtcp-mux) is counted, not mistaken for RTP.
    tx.send_to(&[0x80, 201, 0, 1, 0, 0, 0xaa, 0xaa], local)
        .expect("send RTCP");
    assert_eq!(rtp::collect(&rx, 1, QUIET, LIMIT).len(), 1);
    let c = r.dp.flow(local)["counters"].clone();
    assert_eq!(c["rtcp_packets"], 1, "{c}");
    assert_eq!(c["rtp"]["received"], 20, "{c}");
}

/// With a 1 s idle timeout: a flow silent since it was installed becomes
/// idle; traffic through it ends that; silence after the traffic makes it
/// idle again no sooner than the timeout, and the sweep logs it.
fn idle_detection(backend: Backend) {
    let OneWay { r, local, tx, rx } = one_way(backend, "idle_timeout_secs = 1");
    let idle = || r.dp.request(Request::Idle).expect("idle");
    let listed = |v: &serde_json::Value| {
        v.as_array()
            .is_some_and(|l| l.iter().any(|f| f["flow"]["local"] == local.to_string()))
    };
    assert!(
        tollgate_tests::wait_until(Duration::from_secs(5), || listed(&idle())),
        "a flow without packets becomes idle: {}",
        idle()
    );
    let through = |seqs: std::ops::Range<u16>| {
        let n = seqs.len();
        rtp::send(&tx, local, 1, seqs, Duration::ZERO);
        assert_eq!(rtp::collect(&rx, n, QUIET, LIMIT).len(), n, "relayed");
        std::time::Instant::now()
    };
    let sent = through(0..3);
    let now_idle = idle();
    let since = sent.elapsed();
    assert!(
        since >= Duration::from_secs(1) || !listed(&now_idle),
        "traffic ends idleness: {now_idle}"
    );
    assert!(
        tollgate_tests::wait_until(Duration::from_secs(5), || listed(&idle())),
        "silence after traffic makes the flow idle again: {}",
        idle()
    );
    assert!(
        sent.elapsed() >= Duration::from_millis(990),
        "idle after {:?} of silence, before the 1 s timeout",
        sent.elapsed()
    );
    let report = idle();
    assert!(report[0]["idle_ms"].as_u64().unwrap() >= 1000, "{report}");
    assert!(
        report[0]["last_packet_ms_ago"].as_u64().is_some(),
        "{report}"
    );
    // The sweep reports it within one sweep period (1 s at this timeout).
    assert!(
        tollgate_tests::wait_until(Duration::from_secs(3), || r
            .dp
            .log_text()
            .contains("flow idle")),
        "idle flows are reported in the log"
    );
    let sent = through(3..6);
    let now_idle = idle();
    assert!(
        sent.elapsed() >= Duration::from_secs(1) || !listed(&now_idle),
        "traffic ends idleness again: {now_idle}"
    );
}

#[test]
fn xdp_reports_idle_flows() {
    idle_detection(Backend::Xdp);
}

#[test]
fn socket_reports_idle_flows() {
    idle_detection(Backend::Socket);
}

/// A flow whose peer sits behind the interface the packet came in on is sent
/// straight back out of it (XDP_TX): two endpoints on the caller's side.
#[test]
fn xdp_hairpins_on_the_ingress_interface() {
    let r = relay(Backend::Xdp, "");
    let a = netns::v4();
    r.dp.put(flow(
        "10.201.1.1:30010",
        "10.201.1.1:30012",
        "10.201.1.2:6000",
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.caller, sa(a.caller, 6000));
    rtp::send(
        &tx,
        sa(a.relay_a, 30010),
        5,
        0..50,
        Duration::from_micros(200),
    );
    let got = rtp::collect(&rx, 50, QUIET, LIMIT);
    assert_eq!(got.len(), 50);
    assert!(got.iter().all(|(_, s)| *s == sa(a.relay_a, 30012)));
    assert_eq!(r.dp.counter("tx_same_interface"), 50);
    assert_eq!(r.dp.counter("forwarded"), 0);
}

/// A UDP header whose length disagrees with the IP packet is not relayed: it
/// goes to the kernel (which drops it) and is counted as malformed.
#[test]
fn xdp_counts_malformed_udp_and_does_not_relay_it() {
    let OneWay { r, local, tx, rx } = one_way(Backend::Xdp, "");
    let raw = netns::Topology::run_in(&r.topo.caller, || {
        // SAFETY: a raw UDP socket; the kernel adds the IP header.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        fd
    });
    let mut pkt = vec![0x13, 0x88, 0x75, 0x30, 0x00, 0xc8, 0x00, 0x00]; // 5000 -> 30000, length 200
    pkt.extend_from_slice(&rtp::packet(1, 0)[..20]);
    let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
    to.sin_family = libc::AF_INET as u16;
    to.sin_addr.s_addr = u32::from_ne_bytes([10, 201, 1, 1]);
    for _ in 0..5 {
        // SAFETY: sending a buffer we own to a valid sockaddr_in.
        let n = unsafe {
            libc::sendto(
                raw,
                pkt.as_ptr() as *const libc::c_void,
                pkt.len(),
                0,
                &to as *const _ as *const libc::sockaddr,
                16,
            )
        };
        assert_eq!(n, pkt.len() as isize, "{}", std::io::Error::last_os_error());
    }
    // SAFETY: closing the raw socket we opened.
    unsafe { libc::close(raw) };
    assert!(
        rtp::collect(&rx, 1, Duration::from_millis(700), LIMIT).is_empty(),
        "malformed packets were relayed"
    );
    assert_eq!(r.dp.counter("pass_malformed"), 5);
    // The flow still relays well-formed packets.
    rtp::send(&tx, local, 1, 0..5, Duration::ZERO);
    assert_eq!(rtp::collect(&rx, 5, QUIET, LIMIT).len(), 5);
    assert_eq!(r.dp.flow(local)["counters"]["packets"], 5);
}

/// Thousands of flows: the flow list reply is megabytes (well past the
/// request size limit) and still arrives whole.
#[test]
fn xdp_lists_thousands_of_flows() {
    let r = relay(Backend::Xdp, "");
    let mut c = r.dp.client();
    let n = 6000u16;
    for i in 0..n {
        let local = format!("10.201.1.1:{}", 20000 + i);
        let f = flow(
            &local,
            "10.201.2.1:19998",
            &format!("10.201.2.2:{}", 4000 + i),
        );
        c.request(&Request::FlowPut { flow: f })
            .unwrap_or_else(|e| panic!("flow {i}: {e}"));
    }
    let list = c.request(&Request::FlowList).expect("a large flow list");
    assert_eq!(list.as_array().map(Vec::len), Some(n as usize));
    assert!(
        list.to_string().len() > 1 << 20,
        "the reply is larger than a request may be"
    );
    assert_eq!(r.dp.counter("flows"), n as u64);
}
