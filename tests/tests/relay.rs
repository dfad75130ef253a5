//! The data plane relaying real UDP between network namespaces, on every
//! backend: socket, XDP (its fast path), AF_XDP (XDP with a `null` stage on
//! every flow, so each packet goes through the pipeline workers) and, with
//! `--features dpdk`, DPDK. What the callee receives (addresses, ports,
//! MACs, checksums, every packet, both directions, IPv4 and IPv6), flow
//! removal, symmetric-RTP latching and strict sources, malformed UDP
//! counted and not relayed, RTP quality and idle flows where the backend
//! measures them, and counters that match what was sent; then what only
//! XDP's fast path does (the kernel's packets, restarts, hairpins, large
//! flow lists). The fixture and the round trip are in tollgate_tests::relay.

use std::collections::BTreeSet;
use std::time::Duration;
use tollgate_dataplane::control::Request;
use tollgate_tests::netns;
use tollgate_tests::process::{flow, Dataplane};
use tollgate_tests::relay::{
    hairpin, neighbour_mac, round_trip, sa, send_malformed_udp, Kind, OneWay, Relay, LIMIT, QUIET,
};
use tollgate_tests::rtp;

#[cfg(feature = "dpdk")]
const DPDK: Kind = Kind::Dpdk { workers: 1 };

/// The named numeric fields of a JSON object.
fn fields(v: &serde_json::Value, names: &[&str]) -> Vec<Option<u64>> {
    names.iter().map(|n| v[*n].as_u64()).collect()
}

fn relays_both_ways(kind: Kind, a: netns::Addrs) {
    round_trip(&Relay::new(kind, ""), a);
}

#[test]
fn socket_relays_ipv4_both_ways() {
    relays_both_ways(Kind::Socket, netns::v4());
}

#[test]
fn socket_relays_ipv6_both_ways() {
    relays_both_ways(Kind::Socket, netns::v6());
}

#[test]
fn xdp_relays_ipv4_both_ways() {
    relays_both_ways(Kind::Xdp, netns::v4());
}

#[test]
fn xdp_relays_ipv6_both_ways() {
    relays_both_ways(Kind::Xdp, netns::v6());
}

#[test]
fn afxdp_relays_ipv4_both_ways() {
    relays_both_ways(Kind::Afxdp, netns::v4());
}

#[test]
fn afxdp_relays_ipv6_both_ways() {
    relays_both_ways(Kind::Afxdp, netns::v6());
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_relays_ipv4_both_ways() {
    relays_both_ways(DPDK, netns::v4());
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_relays_ipv6_both_ways() {
    relays_both_ways(DPDK, netns::v6());
}

/// A removed flow forwards nothing more, its packets are counted where the
/// backend counts packets for no flow, and it is gone from the flow table.
/// AF_XDP: the worker lets go of its stages too.
fn removal_stops_forwarding(kind: Kind) {
    let OneWay { r, local, tx, rx } = OneWay::new(kind, "");
    rtp::send(&tx, local, 1, 0..20, Duration::from_micros(200));
    assert_eq!(rtp::collect(&rx, 20, QUIET, LIMIT).len(), 20);

    let last = r.dp.request(Request::FlowDel { local }).expect("flow_del");
    assert_eq!(last["counters"]["packets"], 20, "final counters: {last}");
    let no_flow = kind.no_flow_counter();
    let before = no_flow.map(|(name, _)| r.dp.counter(name));
    rtp::send(&tx, local, 1, 20..40, Duration::from_micros(200));
    let after_removal = rtp::collect(&rx, 1, Duration::from_millis(700), LIMIT);
    assert!(
        after_removal.is_empty(),
        "{} packets forwarded after removal",
        after_removal.len()
    );
    if let (Some((name, within)), Some(before)) = (no_flow, before) {
        assert!(
            tollgate_tests::wait_until(within, || r.dp.counter(name) >= before + 20),
            "packets for no flow are counted in {name}: {}",
            r.counters()
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
    if kind == Kind::Afxdp {
        assert_eq!(r.pipeline("processed"), 20);
        // The slot retires on a later change or housekeeping: another
        // flow's installation (one without stages) reaps it.
        std::thread::sleep(Duration::from_millis(300));
        r.dp.put(flow(
            "10.201.1.1:30010",
            "10.201.2.1:30012",
            "10.201.2.2:4010",
        ));
        assert!(
            tollgate_tests::wait_until(Duration::from_secs(3), || r.workers()[0]["flows"] == 0),
            "the worker let go of the stages: {}",
            r.workers()
        );
    }
}

#[test]
fn socket_removal_stops_forwarding() {
    removal_stops_forwarding(Kind::Socket);
}

#[test]
fn xdp_removal_stops_forwarding() {
    removal_stops_forwarding(Kind::Xdp);
}

#[test]
fn afxdp_removal_stops_forwarding() {
    removal_stops_forwarding(Kind::Afxdp);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_removal_stops_forwarding() {
    removal_stops_forwarding(DPDK);
}

/// The caller is "behind NAT": it sends from port 5000 although its SDP said
/// 5999. The reverse flow follows the learned source, and the strict flow
/// drops a stranger (on AF_XDP before it reaches a worker).
fn latching(kind: Kind) {
    let r = Relay::new(kind, "");
    let a = netns::v4();
    let (a_local, b_local) = (sa(a.relay_a, 30000), sa(a.relay_b, 30002));
    let mut fa = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    fa.learn = true;
    fa.strict = true;
    let mut fb = flow("10.201.2.1:30002", "10.201.1.1:30000", "10.201.1.2:5999");
    fb.follow = Some(a_local);
    r.put(fa);
    r.put(fb);
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
    if kind == Kind::Afxdp {
        assert_eq!(
            r.pipeline("processed"),
            20,
            "strangers never reach a worker"
        );
    }
}

#[test]
fn socket_symmetric_rtp_latching_and_strict_source() {
    latching(Kind::Socket);
}

#[test]
fn xdp_symmetric_rtp_latching_and_strict_source() {
    latching(Kind::Xdp);
}

#[test]
fn afxdp_symmetric_rtp_latching_and_strict_source() {
    latching(Kind::Afxdp);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_symmetric_rtp_latching_and_strict_source() {
    latching(DPDK);
}

/// A UDP header whose length disagrees with the IP packet is not relayed,
/// and counted as malformed where the backend sees it (XDP passes it to the
/// kernel, which drops it; DPDK drops it; the socket backend never gets it
/// from the kernel); AF_XDP: it never reaches a worker. The flow still
/// relays well-formed packets, and only those count.
fn malformed_udp_is_not_relayed(kind: Kind) {
    let OneWay { r, local, tx, rx } = OneWay::new(kind, "");
    // Resolve first, so the raw packets are not held by the caller's
    // kernel waiting for the relay's MAC (DPDK answers that).
    rtp::send(&tx, local, 1, 0..3, Duration::ZERO);
    assert_eq!(rtp::collect(&rx, 3, QUIET, LIMIT).len(), 3);
    send_malformed_udp(&r.topo.caller, 5);
    assert!(
        rtp::collect(&rx, 1, Duration::from_millis(700), LIMIT).is_empty(),
        "malformed packets were relayed"
    );
    if let Some(name) = kind.malformed_counter() {
        assert_eq!(r.dp.counter(name), 5, "{}", r.counters());
    }
    rtp::send(&tx, local, 1, 3..8, Duration::ZERO);
    assert_eq!(rtp::collect(&rx, 5, QUIET, LIMIT).len(), 5);
    assert_eq!(r.dp.flow(local)["counters"]["packets"], 8);
    if kind == Kind::Afxdp {
        assert_eq!(
            r.pipeline("processed"),
            8,
            "only the well-formed packets reached a worker"
        );
        assert_eq!(r.dp.counter("worker_malformed"), 0);
        assert_eq!(r.dp.counter("worker_bad_metadata"), 0);
    }
}

#[test]
fn socket_does_not_relay_malformed_udp() {
    malformed_udp_is_not_relayed(Kind::Socket);
}

#[test]
fn xdp_counts_malformed_udp_and_does_not_relay_it() {
    malformed_udp_is_not_relayed(Kind::Xdp);
}

#[test]
fn afxdp_counts_malformed_udp_and_does_not_relay_it() {
    malformed_udp_is_not_relayed(Kind::Afxdp);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_counts_malformed_udp_and_does_not_relay_it() {
    malformed_udp_is_not_relayed(DPDK);
}

/// RTP receive quality (loss, SSRC changes) and RTCP counts on the flow.
fn measures_rtp_quality(kind: Kind) {
    let OneWay { r, local, tx, rx } = OneWay::new(kind, "");
    // The caller resolves the relay's address first (through a port with no
    // flow): a first packet held in its neighbour queue can leave after the
    // second, and would skew the counts.
    let a = netns::v4();
    let probe = rtp::bind(&r.topo.caller, sa(a.caller, 5100));
    let _ = probe.send_to(b"resolve", sa(a.relay_a, 9));
    assert!(
        neighbour_mac(&r.topo.caller, "ca", a.relay_a).is_some(),
        "the caller resolved {}",
        a.relay_a
    );
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

#[test]
fn socket_measures_rtp_quality() {
    measures_rtp_quality(Kind::Socket);
}

#[test]
fn xdp_measures_rtp_quality() {
    measures_rtp_quality(Kind::Xdp);
}

#[test]
fn afxdp_measures_rtp_quality() {
    measures_rtp_quality(Kind::Afxdp);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_measures_rtp_quality() {
    measures_rtp_quality(DPDK);
}

/// With a 1 s idle timeout: a flow silent since it was installed becomes
/// idle; traffic through it ends that; silence after the traffic makes it
/// idle again no sooner than the timeout, and the sweep logs it.
fn idle_detection(kind: Kind) {
    let OneWay { r, local, tx, rx } = OneWay::new(kind, "idle_timeout_secs = 1");
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
fn socket_reports_idle_flows() {
    idle_detection(Kind::Socket);
}

#[test]
fn xdp_reports_idle_flows() {
    idle_detection(Kind::Xdp);
}

#[test]
fn xdp_passes_packets_for_no_flow_to_the_kernel() {
    let r = Relay::new(Kind::Xdp, "");
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
    let mut w = OneWay::new(Kind::Xdp, "");
    w.r.dp.put(flow(
        "10.201.2.1:30002",
        "10.201.1.1:30000",
        "10.201.1.2:5000",
    ));
    let n = 3000u16;
    // Kill it mid-stream: once packets are going through.
    let got = w.restart_under_stream(
        n,
        100,
        "packets go through before the restart",
        Dataplane::kill_and_restart,
    );
    let (r, local) = (&w.r, w.local);
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

/// A flow whose peer sits behind the interface the packet came in on is sent
/// straight back out of it (XDP_TX): two endpoints on the caller's side.
#[test]
fn xdp_hairpins_on_the_ingress_interface() {
    let r = Relay::new(Kind::Xdp, "");
    hairpin(&r);
    assert_eq!(r.dp.counter("tx_same_interface"), 50);
    assert_eq!(r.dp.counter("forwarded"), 0);
}

/// Thousands of flows: the flow list reply is megabytes (well past the
/// request size limit) and still arrives whole.
#[test]
fn xdp_lists_thousands_of_flows() {
    let r = Relay::new(Kind::Xdp, "");
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
