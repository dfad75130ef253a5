//! The DPDK backend relaying real UDP between network namespaces: DPDK owns
//! the relay's veths through net_af_packet (no hugepages), and the kernel's
//! addresses are taken off them, so the relay's ARP replies and neighbour
//! advertisements can only come from DPDK, and DPDK resolves the peers
//! itself. IPv4 and IPv6 both ways (addresses, ports, MACs, checksums,
//! every packet), latching and strict source, counters, removal, malformed
//! UDP, a flow with pipeline stages, and neighbour discovery answered for
//! the media addresses only.
//!
//! Needs a `tollgate` built with `--features dpdk` (libdpdk-dev) and root:
//! `cargo build -p tollgate --features dpdk && cargo test -p tollgate-tests
//! --features dpdk --test dpdk`.
#![cfg(feature = "dpdk")]

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::process::Command;
use std::time::Duration;
use tollgate_dataplane::control::Request;
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_tests::capture::Capture;
use tollgate_tests::netns::{self, Addrs, Topology};
use tollgate_tests::process::{flow, Backend, Dataplane};
use tollgate_tests::rtp;

const QUIET: Duration = Duration::from_millis(1500);
const LIMIT: Duration = Duration::from_secs(20);

struct Relay {
    // Drop order: data plane, then namespaces.
    dp: Dataplane,
    topo: Topology,
}

/// A topology whose relay veths belong to DPDK alone: no kernel address on
/// them (IPv6 off), and end hosts that forgot the relay's MAC addresses.
fn relay(extra: &str) -> Relay {
    relay_with(1, extra)
}

/// [`relay`] with `workers` DPDK workers (`extra` sets as many cores).
fn relay_with(workers: usize, extra: &str) -> Relay {
    tollgate_tests::require_root();
    let topo = Topology::new();
    topo.give_relay_links_away();
    let dp = Dataplane::start(Some(&topo.relay), Backend::Dpdk { workers }, None, extra);
    let log = dp.log_text();
    assert!(
        log.contains("DPDK port started"),
        "the data plane did not start DPDK (is `tollgate` built with --features dpdk?):\n{log}"
    );
    Relay { dp, topo }
}

fn sa(ip: IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

/// The MAC `ns` has for `addr` on `ifname`, once it has one (at most 3 s).
fn neighbour_mac(ns: &str, ifname: &str, addr: IpAddr) -> Option<[u8; 6]> {
    let mut mac = None;
    tollgate_tests::wait_until(Duration::from_secs(3), || {
        let out = Command::new("ip")
            .args(["-n", ns, "neigh", "show", &addr.to_string(), "dev", ifname])
            .output()
            .expect("ip neigh");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        mac = text.split("lladdr ").nth(1).and_then(|s| {
            let m: Vec<u8> = s
                .split_whitespace()
                .next()?
                .split(':')
                .map(|h| u8::from_str_radix(h, 16).ok())
                .collect::<Option<_>>()?;
            m.try_into().ok()
        });
        mac.is_some()
    });
    mac
}

fn counters(dp: &Dataplane) -> String {
    dp.request(Request::Counters)
        .map(|c| c.to_string())
        .unwrap_or_default()
}

/// Caller -> relay -> callee and back, checking every packet and the wire,
/// and that the end hosts learned the relay's MACs from DPDK.
fn round_trip(a: Addrs) {
    round_trip_with(1, "", a)
}

fn round_trip_with(workers: usize, extra: &str, a: Addrs) {
    let r = relay_with(workers, extra);
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
    for (from_sock, to_sock, to_ns, to_if, relay_if, local, relay_src, dest) in [
        (
            &caller_sock,
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
            "-> {to_if}: {} of {n} arrived; counters {}",
            seqs.len(),
            counters(dp)
        );
        assert_eq!(got.len(), n as usize, "duplicates");
        assert!(got.iter().all(|(_, src)| *src == relay_src));
        assert!(
            got.iter()
                .all(|(p, _)| *p == rtp::packet(0x1000, u16::from_be_bytes([p[2], p[3]]))),
            "payload changed"
        );
        let frames = cap.udp_to(dest, n as usize, LIMIT);
        assert_eq!(frames.len(), n as usize, "capture on {to_if}");
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
    // Only DPDK could have told the end hosts the relay's MACs, and the
    // relay learned theirs by asking.
    for (ns, ifname, addr, relay_if) in [
        (&t.caller, "ca", a.relay_a, "ra"),
        (&t.callee, "eb", a.relay_b, "rb"),
    ] {
        assert_eq!(
            neighbour_mac(ns, ifname, addr),
            Some(Topology::mac(&t.relay, relay_if)),
            "{ns} resolved {addr}"
        );
    }
    let (answered, asked) = if a.caller.is_ipv4() {
        ("arp_requests_answered", "neighbour_requests_sent")
    } else {
        (
            "neighbour_solicitations_answered",
            "neighbour_requests_sent",
        )
    };
    // The callee learns the relay from the relay's own request (the kernel
    // records the sender of a request for itself), so one answer suffices.
    assert!(dp.counter(answered) >= 1, "{}", counters(dp));
    assert!(dp.counter(asked) >= 1, "{}", counters(dp));
    assert_eq!(dp.counter("port_ra_neighbours"), 1, "{}", counters(dp));
    assert_eq!(dp.counter("forwarded"), 2 * n as u64);
    let report = dp.request(Request::Workers).expect("workers");
    let busy: Vec<u64> = (0..workers)
        .map(|w| report[w]["rx_packets"].as_u64().unwrap_or(0))
        .collect();
    assert!(
        busy.iter().all(|&rx| rx >= n as u64),
        "every worker polls its port: {report}"
    );
    assert_eq!(dp.counter("drop_no_neighbour"), 0);
}

#[test]
fn dpdk_relays_ipv4_both_ways() {
    round_trip(netns::v4());
}

#[test]
fn dpdk_relays_ipv6_both_ways() {
    round_trip(netns::v6());
}

/// Two workers: each polls one port (both queues of it) and sends on its
/// own queue of the other, with the neighbours the other worker learned.
#[test]
fn dpdk_two_workers_relay_both_ways() {
    round_trip_with(2, "cores = [0, 1]", netns::v4());
}

/// One flow caller 10.201.1.2:5000 -> 10.201.1.1:30000 -> callee 10.201.2.2:4000.
fn one_way(extra: &str) -> (Relay, SocketAddr, UdpSocket, UdpSocket) {
    let r = relay(extra);
    let a = netns::v4();
    r.dp.put(flow(
        "10.201.1.1:30000",
        "10.201.2.1:30002",
        "10.201.2.2:4000",
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    (r, sa(a.relay_a, 30000), tx, rx)
}

#[test]
fn dpdk_removal_stops_forwarding() {
    let (r, local, tx, rx) = one_way("");
    rtp::send(&tx, local, 1, 0..20, Duration::from_micros(200));
    assert_eq!(rtp::collect(&rx, 20, QUIET, LIMIT).len(), 20);
    let last = r.dp.request(Request::FlowDel { local }).expect("flow_del");
    assert_eq!(last["counters"]["packets"], 20, "final counters: {last}");
    let before = r.dp.counter("drop_no_flow");
    rtp::send(&tx, local, 1, 20..40, Duration::from_micros(200));
    let after = rtp::collect(&rx, 1, Duration::from_millis(700), LIMIT);
    assert!(after.is_empty(), "{} forwarded after removal", after.len());
    assert!(
        tollgate_tests::wait_until(Duration::from_secs(2), || r.dp.counter("drop_no_flow")
            >= before + 20),
        "packets for no flow are counted: {}",
        counters(&r.dp)
    );
    let e =
        r.dp.request(Request::FlowGet { local })
            .unwrap_err()
            .to_string();
    assert!(
        e.contains("no flow matches local address 10.201.1.1:30000"),
        "{e}"
    );
}

/// The caller sends from 5000 although its SDP said 5999: the reverse flow
/// follows the learned source, and the strict flow drops a stranger.
#[test]
fn dpdk_symmetric_rtp_latching_and_strict_source() {
    let r = relay("");
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
    assert_eq!(
        r.dp.flow(a_local)["counters"]["learned"],
        "10.201.1.2:5000",
        "learned source"
    );
    rtp::send(&callee, b_local, 8, 0..10, Duration::from_micros(200));
    let back = rtp::collect(&caller, 10, QUIET, LIMIT);
    assert_eq!(back.len(), 10, "replies go to the learned 5000, not 5999");
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

/// A UDP header whose length disagrees with the IP packet is counted as
/// malformed and not relayed; the flow still relays good packets.
#[test]
fn dpdk_counts_malformed_udp_and_does_not_relay_it() {
    let (r, local, tx, rx) = one_way("");
    // Resolve first, so the raw packets are not held by the caller's kernel.
    rtp::send(&tx, local, 1, 0..3, Duration::ZERO);
    assert_eq!(rtp::collect(&rx, 3, QUIET, LIMIT).len(), 3);
    let raw = Topology::run_in(&r.topo.caller, || {
        // SAFETY: a raw UDP socket; the kernel adds the IP header.
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_UDP) };
        assert!(fd >= 0, "raw socket: {}", std::io::Error::last_os_error());
        fd
    });
    let mut pkt = vec![0x13, 0x88, 0x75, 0x30, 0x00, 0xc8, 0x00, 0x00]; // 5000 -> 30000, length 200
    pkt.extend_from_slice(&rtp::packet(1, 0)[..20]);
    // SAFETY: all-zero is a valid sockaddr_in.
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
    assert_eq!(r.dp.counter("drop_malformed"), 5, "{}", counters(&r.dp));
    rtp::send(&tx, local, 1, 3..8, Duration::ZERO);
    assert_eq!(rtp::collect(&rx, 5, QUIET, LIMIT).len(), 5);
    assert_eq!(r.dp.flow(local)["counters"]["packets"], 8);
}

/// A flow with stages runs the pipeline on the worker before the rewrite:
/// `drop_every` 4 drops a quarter of the packets, counted and reported.
#[test]
fn dpdk_runs_the_pipeline_on_flows_with_stages() {
    let r = relay("");
    let a = netns::v4();
    let mut f = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    f.stages = vec![StageSpec::DropEvery { n: 4 }];
    r.dp.put(f);
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let local = sa(a.relay_a, 30000);
    rtp::send(&tx, local, 2, 0..100, Duration::from_micros(300));
    let got = rtp::collect(&rx, 75, QUIET, LIMIT);
    let seqs = rtp::seqs(&got);
    assert_eq!(seqs.len(), 75, "{}", counters(&r.dp));
    assert!(
        seqs.iter().all(|s| (s + 1) % 4 != 0),
        "every 4th dropped: {seqs:?}"
    );
    assert_eq!(r.dp.counter("drop_pipeline"), 25, "{}", counters(&r.dp));
    assert_eq!(r.dp.flow(local)["counters"]["packets"], 100);
    let events = r.dp.request(Request::Events).expect("events");
    let drops: Vec<&serde_json::Value> = events
        .as_array()
        .expect("a list")
        .iter()
        .filter(|e| e["kind"]["event"] == "stage_drop" && e["local"] == local.to_string())
        .collect();
    assert_eq!(drops.len(), 25, "each drop reported: {events}");
    assert_eq!(drops[0]["kind"]["packet"], 4, "{events}");
}

/// ARP requests and neighbour solicitations are answered for the ports'
/// addresses, and not for other addresses on the same prefixes.
#[test]
fn dpdk_answers_arp_and_ndp_for_its_addresses_only() {
    let r = relay("");
    let t = &r.topo;
    let ra_mac = Topology::mac(&t.relay, "ra");
    for (ours, other, from) in [
        ("10.201.1.1", "10.201.1.77", "10.201.1.2:5100"),
        ("fd00:201:1::1", "fd00:201:1::77", "[fd00:201:1::2]:5100"),
    ] {
        let sock = rtp::bind(&t.caller, from.parse().unwrap());
        for target in [ours, other] {
            // Any datagram makes the caller's kernel ask for the target.
            let to = SocketAddr::new(target.parse().unwrap(), 9);
            let _ = sock.send_to(b"who", to);
        }
        assert_eq!(
            neighbour_mac(&t.caller, "ca", ours.parse().unwrap()),
            Some(ra_mac),
            "{ours} is answered with ra's MAC"
        );
        std::thread::sleep(Duration::from_millis(300));
        assert_eq!(
            neighbour_mac_now(&t.caller, "ca", other.parse().unwrap()),
            None,
            "{other} is not ours and must stay unresolved"
        );
    }
    assert!(
        r.dp.counter("arp_requests_answered") >= 1,
        "{}",
        counters(&r.dp)
    );
    assert!(
        r.dp.counter("neighbour_solicitations_answered") >= 1,
        "{}",
        counters(&r.dp)
    );
    // The caller's requests for the stranger: an ARP request for someone
    // else only refreshes the sender; a solicitation for someone else is ignored.
    assert!(
        r.dp.counter("neighbour_announcements") >= 1,
        "{}",
        counters(&r.dp)
    );
    assert!(
        r.dp.counter("neighbour_ignored") >= 1,
        "{}",
        counters(&r.dp)
    );
}

fn neighbour_mac_now(ns: &str, ifname: &str, addr: IpAddr) -> Option<String> {
    let out = Command::new("ip")
        .args(["-n", ns, "neigh", "show", &addr.to_string(), "dev", ifname])
        .output()
        .expect("ip neigh");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.split("lladdr ")
        .nth(1)
        .map(|s| s.split_whitespace().next().unwrap_or_default().to_string())
}

/// CPU time (user + system, in clock ticks) of `pid`'s threads named `tg-dpdk-*`.
fn worker_cpu_ticks(pid: u32) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc task list")
        .flatten()
    {
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let Some((comm, rest)) = stat.split_once(") ") else {
            continue;
        };
        if !comm.contains("(tg-dpdk-") {
            continue;
        }
        // After the command: state, then fields 4.. of proc(5); utime and
        // stime are fields 14 and 15.
        let f: Vec<&str> = rest.split_whitespace().collect();
        total += f[11].parse::<u64>().unwrap_or(0) + f[12].parse::<u64>().unwrap_or(0);
    }
    total
}

/// Workers report rx, tx and busy time through the `workers` request, and
/// an idle worker sleeps instead of spinning: over a quiet second it uses
/// well under half a core.
#[test]
fn dpdk_worker_report_and_idle_sleep() {
    let (r, local, tx, rx) = one_way("");
    rtp::send(&tx, local, 1, 0..50, Duration::from_micros(200));
    assert_eq!(rtp::collect(&rx, 50, QUIET, LIMIT).len(), 50);
    let w = r.dp.request(Request::Workers).expect("workers");
    let w0 = &w[0];
    assert!(w0["rx_packets"].as_u64() >= Some(50), "{w}");
    assert!(w0["tx_packets"].as_u64() >= Some(50), "{w}");
    assert!(w0["busy_ns"].as_u64() > Some(0), "{w}");
    assert!(w0["uptime_ns"].as_u64() > w0["busy_ns"].as_u64(), "{w}");

    let pid = r.dp.pid().expect("running");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    let before = worker_cpu_ticks(pid);
    let t0 = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(1));
    let used = (worker_cpu_ticks(pid) - before) as f64 / hz as f64;
    let share = used / t0.elapsed().as_secs_f64();
    assert!(
        share < 0.5,
        "an idle DPDK worker used {:.0}% of a core",
        share * 100.0
    );
}

/// `rtcp_demux`: RTCP on the RTP port goes out from the relay's port + 1 to
/// the callee's port + 1 (Verdict::ForwardRtcp); RTP goes on as before.
#[test]
fn dpdk_rtcp_demux_sends_rtcp_to_the_next_ports() {
    let r = relay("");
    let a = netns::v4();
    let mut f = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    f.stages = vec![StageSpec::RtcpDemux];
    r.dp.put(f);
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rtp_rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let rtcp_rx = rtp::bind(&r.topo.callee, sa(a.callee, 4001));
    let local = sa(a.relay_a, 30000);
    rtp::send(&tx, local, 3, 0..10, Duration::from_micros(300));
    let rr = [0x80, 201, 0, 1, 0, 0, 0, 3]; // receiver report, SSRC 3
    for _ in 0..3 {
        tx.send_to(&rr, local).expect("send RTCP");
    }
    let media = rtp::collect(&rtp_rx, 10, QUIET, LIMIT);
    assert_eq!(media.len(), 10, "{}", counters(&r.dp));
    assert!(media.iter().all(|(_, s)| *s == sa(a.relay_b, 30002)));
    let reports = rtp::collect(&rtcp_rx, 3, QUIET, LIMIT);
    assert_eq!(reports.len(), 3, "{}", counters(&r.dp));
    assert!(
        reports
            .iter()
            .all(|(p, s)| p[..] == rr[..] && *s == sa(a.relay_b, 30003)),
        "RTCP from the relay's port + 1: {reports:?}"
    );
}

/// `silence` originates G.711 silence every 20 ms from the worker's timer
/// wheel towards the destination (resolving it first), and consumes what
/// the caller sends.
#[test]
fn dpdk_originates_silence_from_the_timer_wheel() {
    let r = relay("");
    let a = netns::v4();
    let mut f = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    f.stages = vec![StageSpec::Silence {
        payload_type: 0,
        ptime_ms: 20,
    }];
    r.dp.put(f);
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    rtp::send(
        &tx,
        sa(a.relay_a, 30000),
        0x5151,
        0..10,
        Duration::from_millis(5),
    );
    let got = rtp::collect(&rx, 20, QUIET, LIMIT);
    assert!(
        got.len() >= 20,
        "{} silence packets; {}",
        got.len(),
        counters(&r.dp)
    );
    assert!(got.iter().all(|(p, s)| {
        *s == sa(a.relay_b, 30002) && p[1] & 0x7f == 0 && p[8..12] != 0x5151u32.to_be_bytes()
    }));
    let w = r.dp.request(Request::Workers).expect("workers");
    assert!(w[0]["pipeline"]["originated"].as_u64() >= Some(20), "{w}");
    assert_eq!(w[0]["pipeline"]["consumed"].as_u64(), Some(10), "{w}");
}

/// RTP receive quality and RTCP counts, as the socket backend measures them.
#[test]
fn dpdk_measures_rtp_quality() {
    let (r, local, tx, rx) = one_way("");
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
        ["expected", "received", "lost"].map(|k| q[k].as_u64()),
        [Some(100), Some(90), Some(10)],
        "{q}"
    );
    rtp::send(&tx, local, 0xbbbb, 500..520, Duration::from_micros(200));
    assert_eq!(rtp::collect(&rx, 20, QUIET, LIMIT).len(), 20);
    let q = r.dp.flow(local)["counters"]["rtp"].clone();
    assert_eq!(
        ["ssrc", "ssrc_changes", "lost"].map(|k| q[k].as_u64()),
        [Some(0xbbbb), Some(1), Some(0)],
        "{q}"
    );
    tx.send_to(&[0x80, 201, 0, 1, 0, 0, 0xaa, 0xaa], local)
        .expect("send RTCP");
    assert_eq!(rtp::collect(&rx, 1, QUIET, LIMIT).len(), 1);
    let c = r.dp.flow(local)["counters"].clone();
    assert_eq!(c["rtcp_packets"], 1, "{c}");
    assert_eq!(c["rtp"]["received"], 20, "{c}");
}

/// A destination off the port's prefixes goes to the port's gateway (the
/// callee's host here: the capture sees frames for 192.0.2.10 sent to its
/// MAC); one with no gateway on its port is dropped, counted.
#[test]
fn dpdk_routes_off_link_destinations_through_the_gateway() {
    let r = relay("");
    let a = netns::v4();
    r.dp.put(flow(
        "10.201.1.1:30000",
        "10.201.2.1:30002",
        "192.0.2.10:4000",
    ));
    r.dp.put(flow(
        "10.201.2.1:30004",
        "10.201.1.1:30006",
        "198.51.100.1:4000",
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let back = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let cap = Capture::open(&r.topo.callee, "eb");
    rtp::send(
        &tx,
        sa(a.relay_a, 30000),
        4,
        0..20,
        Duration::from_micros(300),
    );
    let off_link: SocketAddr = "192.0.2.10:4000".parse().unwrap();
    let frames = cap.udp_to(off_link, 20, LIMIT);
    assert_eq!(frames.len(), 20, "{}", counters(&r.dp));
    let gw_mac = Topology::mac(&r.topo.callee, "eb");
    assert!(frames
        .iter()
        .all(|f| f.dst_mac == gw_mac && f.udp_checksum_ok));

    rtp::send(&back, sa(a.relay_b, 30004), 5, 0..7, Duration::ZERO);
    assert!(
        tollgate_tests::wait_until(Duration::from_secs(2), || r.dp.counter("drop_no_route")
            == 7),
        "no gateway on ra: {}",
        counters(&r.dp)
    );
}

/// A flow gains and loses pipeline stages while a 1 ms stream runs through
/// it: no packet lost or duplicated.
#[test]
fn dpdk_flow_gains_and_loses_stages_under_a_stream() {
    let (r, local, tx, rx) = one_way("");
    let n = 1000u16;
    let sender =
        std::thread::spawn(move || rtp::send(&tx, local, 6, 0..n, Duration::from_millis(1)));
    let plain = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    let mut staged = plain.clone();
    staged.stages = vec![StageSpec::Null];
    for i in 0..8 {
        std::thread::sleep(Duration::from_millis(100));
        r.dp.put(if i % 2 == 0 {
            staged.clone()
        } else {
            plain.clone()
        });
    }
    sender.join().expect("sender");
    let got = rtp::collect(&rx, n as usize, QUIET, LIMIT);
    let seqs: BTreeSet<u16> = rtp::seqs(&got).into_iter().collect();
    assert_eq!(
        (got.len(), seqs.len()),
        (n as usize, n as usize),
        "received, distinct of {n}; {}",
        counters(&r.dp)
    );
    let w = r.dp.request(Request::Workers).expect("workers");
    assert!(
        w[0]["pipeline"]["processed"].as_u64() > Some(100),
        "the stages ran: {w}"
    );
}
