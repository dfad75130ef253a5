//! The media pipeline on the XDP backend's AF_XDP workers, between network
//! namespaces (veth, so copy mode): flows carrying stages are rewritten by
//! the XDP program, steered into the workers' sockets, run through their
//! stages and sent on. What the callee receives (every packet, addresses,
//! MACs, checksums, both directions, IPv4 and IPv6), latching and strict
//! source, counters, removal, bad input; `drop_every` dropping exactly every
//! Nth packet and reporting it; `rtcp_demux` sending RTCP to port + 1; a
//! `silence` stage originating packets; and a flow moved between the fast
//! path and the pipeline under a 1 ms stream without loss or duplicates.

use serde_json::Value;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tollgate_dataplane::control::Request;
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_tests::capture::Capture;
use tollgate_tests::netns::{self, Addrs, Topology};
use tollgate_tests::process::{flow, Backend, Bpffs, Dataplane};
use tollgate_tests::rtp;

const QUIET: Duration = Duration::from_millis(1500);
const LIMIT: Duration = Duration::from_secs(20);

struct Relay {
    // Drop order: data plane, then bpffs, then namespaces.
    dp: Dataplane,
    _bpf: Bpffs,
    topo: Topology,
}

fn relay() -> Relay {
    relay_with("")
}

/// A relay whose config has `extra` after the `[dataplane]` keys.
fn relay_with(extra: &str) -> Relay {
    tollgate_tests::require_root();
    let topo = Topology::new();
    let bpf = Bpffs::new();
    let dp = Dataplane::start(Some(&topo.relay), Backend::Xdp, Some(&bpf), extra);
    let r = Relay {
        dp,
        _bpf: bpf,
        topo,
    };
    let workers = r.workers();
    assert!(
        workers.as_array().is_some_and(|w| !w.is_empty()),
        "AF_XDP workers run: {workers}\n{}",
        r.dp.log_text()
    );
    r
}

impl Relay {
    fn workers(&self) -> Value {
        self.dp.request(Request::Workers).expect("workers")
    }

    /// A pipeline counter summed over workers.
    fn pipeline(&self, name: &str) -> u64 {
        self.workers()
            .as_array()
            .expect("a list")
            .iter()
            .map(|w| w["pipeline"][name].as_u64().expect(name))
            .sum()
    }

    fn counters(&self) -> String {
        self.dp
            .request(Request::Counters)
            .map(|c| c.to_string())
            .unwrap_or_default()
    }

    fn events(&self) -> Vec<Value> {
        let v = self.dp.request(Request::Events).expect("events");
        v.as_array().cloned().unwrap_or_default()
    }
}

fn sa(ip: std::net::IpAddr, port: u16) -> SocketAddr {
    SocketAddr::new(ip, port)
}

fn with(mut f: Flow, stages: &[StageSpec]) -> Flow {
    f.stages = stages.to_vec();
    f
}

/// Caller -> relay -> callee and back through `stages`, checking every
/// packet and the wire.
fn round_trip(a: Addrs, extra: &str) {
    let r = relay_with(extra);
    let (t, dp) = (&r.topo, &r.dp);
    let (a_local, b_local) = (sa(a.relay_a, 30000), sa(a.relay_b, 30002));
    let (caller, callee) = (sa(a.caller, 5000), sa(a.callee, 4000));
    let null = [StageSpec::Null];
    dp.put(with(
        flow(
            &a_local.to_string(),
            &b_local.to_string(),
            &callee.to_string(),
        ),
        &null,
    ));
    dp.put(with(
        flow(
            &b_local.to_string(),
            &a_local.to_string(),
            &caller.to_string(),
        ),
        &null,
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
        let seqs: std::collections::BTreeSet<u16> = rtp::seqs(&got).into_iter().collect();
        assert_eq!(
            (got.len(), seqs.len()),
            (n as usize, n as usize),
            "to {to_if}: {} of {n} arrived; counters {}; workers {}",
            got.len(),
            r.counters(),
            r.workers()
        );
        assert!(
            got.iter().all(|(_, src)| *src == relay_src),
            "packets come from the relay's {relay_src}"
        );
        assert!(
            got.iter()
                .all(|(p, _)| *p == rtp::packet(0x1000, u16::from_be_bytes([p[2], p[3]]))),
            "payload changed"
        );
        let frames = cap.udp_to(dest, n as usize, LIMIT);
        assert_eq!(frames.len(), n as usize, "capture on {to_if}");
        let macs = (
            Topology::mac(&t.relay, relay_if),
            Topology::mac(to_ns, to_if),
        );
        for f in &frames {
            assert_eq!(f.from, relay_src, "rewritten source");
            assert!(f.ip_checksum_ok, "IP header checksum: {f:?}");
            assert!(
                f.udp_checksum_ok && f.udp_checksum != 0,
                "UDP checksum: {f:?}"
            );
            assert_eq!((f.src_mac, f.dst_mac), macs, "MAC rewrite");
        }
    }
    for local in [a_local, b_local] {
        let c = &dp.flow(local)["counters"];
        assert_eq!(c["packets"], n as u64, "flow {local} counters: {c}");
        assert_eq!(c["bytes"], n as u64 * 172, "flow {local} counters: {c}");
    }
    // Every packet went through a worker, none past it.
    let total = 2 * n as u64;
    assert_eq!(dp.counter("to_worker"), total, "{}", r.counters());
    assert_eq!(dp.counter("forwarded"), 0, "none by the fast path");
    assert_eq!(dp.counter("worker_rx"), total);
    assert_eq!(dp.counter("worker_tx"), total);
    assert_eq!(dp.counter("worker_tx_copied"), total, "ra <-> rb: copies");
    assert_eq!(r.pipeline("processed"), total);
    assert_eq!(r.pipeline("forwarded"), total);
    let w = r.workers();
    assert_eq!(w[0]["flows"], 2, "{w}");
    assert!(w[0]["busy_ns"].as_u64() > Some(0), "{w}");
}

#[test]
fn pipeline_relays_ipv4_both_ways() {
    round_trip(netns::v4(), "");
}

#[test]
fn pipeline_relays_ipv6_both_ways() {
    round_trip(netns::v6(), "");
}

/// Busy polling on, small rings and bursts, copy mode forced: the same.
#[test]
fn pipeline_relays_with_busy_polling_and_small_rings() {
    round_trip(
        netns::v4(),
        "[dataplane.xdp.afxdp]\nbusy_poll = true\nzero_copy = \"off\"\nframes = 256\nring_size = 64\nburst = 8\n",
    );
}

/// The caller is behind NAT (sends from 5000, signalled 5999): the
/// reverse flow follows the learned source, a stranger is dropped by the
/// strict flow, all with the flows in the pipeline.
#[test]
fn pipeline_latches_and_drops_strangers() {
    let r = relay();
    let a = netns::v4();
    let (a_local, b_local) = (sa(a.relay_a, 30000), sa(a.relay_b, 30002));
    let mut fa = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    fa.learn = true;
    fa.strict = true;
    let mut fb = flow("10.201.2.1:30002", "10.201.1.1:30000", "10.201.1.2:5999");
    fb.follow = Some(a_local);
    r.dp.put(with(fa, &[StageSpec::Null]));
    r.dp.put(with(fb, &[StageSpec::Null]));
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
    assert_eq!(back.len(), 10, "replies go to the learned 5000");
    assert!(back.iter().all(|(_, s)| *s == a_local));

    rtp::send(&stranger, a_local, 9, 0..10, Duration::from_micros(200));
    assert!(
        rtp::collect(&callee, 1, Duration::from_millis(700), LIMIT).is_empty(),
        "strict flow forwarded a stranger's packets"
    );
    let c = &r.dp.flow(a_local)["counters"];
    assert_eq!(
        (c["dropped_source"].as_u64(), c["packets"].as_u64()),
        (Some(10), Some(10)),
        "{c}"
    );
    assert_eq!(r.dp.counter("drop_source_mismatch"), 10);
    assert_eq!(
        r.pipeline("processed"),
        20,
        "strangers never reach a worker"
    );
}

/// A removed pipeline flow forwards nothing more; its packets go to the
/// kernel, counted, and the worker lets go of its stages.
#[test]
fn pipeline_flow_removal_stops_forwarding() {
    let r = relay();
    let a = netns::v4();
    let local = sa(a.relay_a, 30000);
    r.dp.put(with(
        flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000"),
        &[StageSpec::Null],
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    rtp::send(&tx, local, 1, 0..20, Duration::from_micros(200));
    assert_eq!(rtp::collect(&rx, 20, QUIET, LIMIT).len(), 20);
    let last = r.dp.request(Request::FlowDel { local }).expect("flow_del");
    assert_eq!(last["counters"]["packets"], 20, "final counters: {last}");
    let before = r.dp.counter("pass_no_flow");
    rtp::send(&tx, local, 1, 20..40, Duration::from_micros(200));
    assert!(
        rtp::collect(&rx, 1, Duration::from_millis(700), LIMIT).is_empty(),
        "forwarded after removal"
    );
    assert!(r.dp.counter("pass_no_flow") >= before + 20);
    assert_eq!(r.pipeline("processed"), 20);
    // The slot retires on a later change or housekeeping: another flow's
    // installation reaps it.
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

/// A UDP header whose length disagrees with the IP packet is counted by the
/// program and not relayed, and never reaches a worker.
#[test]
fn pipeline_counts_malformed_udp_and_does_not_relay_it() {
    let r = relay();
    let a = netns::v4();
    let local = sa(a.relay_a, 30000);
    r.dp.put(with(
        flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000"),
        &[StageSpec::Null],
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
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
                pkt.as_ptr().cast(),
                pkt.len(),
                0,
                (&to as *const libc::sockaddr_in).cast(),
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
    assert_eq!(r.pipeline("processed"), 0);
    rtp::send(&tx, local, 1, 0..5, Duration::ZERO);
    assert_eq!(rtp::collect(&rx, 5, QUIET, LIMIT).len(), 5);
    assert_eq!(r.dp.counter("worker_malformed"), 0);
    assert_eq!(r.dp.counter("worker_bad_metadata"), 0);
}

/// `drop_every` with n = 5 drops packets 5, 10, 15, ... of the flow (seqs
/// 4, 9, 14, ...), exactly those, and reports each one as an event.
#[test]
fn drop_every_drops_exactly_every_nth_packet_and_reports_it() {
    let r = relay();
    let a = netns::v4();
    let local = sa(a.relay_a, 30000);
    r.dp.put(with(
        flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000"),
        &[StageSpec::Null, StageSpec::DropEvery { n: 5 }],
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let _ = r.events();
    rtp::send(&tx, local, 1, 0..100, Duration::from_micros(300));
    let got = rtp::collect(&rx, 80, QUIET, LIMIT);
    let mut seqs = rtp::seqs(&got);
    seqs.sort_unstable();
    let want: Vec<u16> = (0..100).filter(|s| (s + 1) % 5 != 0).collect();
    assert_eq!(seqs, want, "exactly every 5th dropped");
    assert!(
        rtp::collect(&rx, 1, Duration::from_millis(300), LIMIT).is_empty(),
        "nothing more"
    );
    assert_eq!(r.pipeline("dropped_stage"), 20);
    assert_eq!(r.pipeline("forwarded"), 80);
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while events.len() < 20 && Instant::now() < deadline {
        events.extend(r.events());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(events.len(), 20, "{events:?}");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["local"], local.to_string(), "{e}");
        assert_eq!(e["kind"]["event"], "stage_drop", "{e}");
        assert_eq!(e["kind"]["packet"], (i as u64 + 1) * 5, "{e}");
        assert_eq!(e["kind"]["dropped"], i as u64 + 1, "{e}");
    }
}

/// `rtcp_demux`: RTP goes to the callee's 4000 from the relay's 30002, RTCP
/// (PT 200/201) to 4001 from 30003.
#[test]
fn rtcp_demux_sends_rtcp_to_port_plus_one() {
    let r = relay();
    let a = netns::v4();
    let local = sa(a.relay_a, 30000);
    r.dp.put(with(
        flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000"),
        &[StageSpec::RtcpDemux],
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rtp_rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let rtcp_rx = rtp::bind(&r.topo.callee, sa(a.callee, 4001));
    let cap = Capture::open(&r.topo.callee, "eb");
    let rr = [0x81u8, 201, 0, 1, 0, 0, 0xaa, 0xaa];
    for seq in 0..10u16 {
        tx.send_to(&rtp::packet(3, seq), local).expect("send RTP");
        tx.send_to(&rr, local).expect("send RTCP");
    }
    let media = rtp::collect(&rtp_rx, 10, QUIET, LIMIT);
    let control = rtp::collect(&rtcp_rx, 10, QUIET, LIMIT);
    assert_eq!(media.len(), 10, "RTP on 4000");
    assert!(media
        .iter()
        .all(|(p, s)| p.len() == 172 && *s == sa(a.relay_b, 30002)));
    assert_eq!(control.len(), 10, "RTCP on 4001; counters {}", r.counters());
    assert!(control
        .iter()
        .all(|(p, s)| p[..] == rr && *s == sa(a.relay_b, 30003)));
    let frames = cap.udp_to(sa(a.callee, 4001), 10, LIMIT);
    assert_eq!(frames.len(), 10);
    assert!(
        frames.iter().all(|f| f.udp_checksum_ok && f.ip_checksum_ok),
        "checksums after the port change"
    );
    assert_eq!(r.pipeline("forwarded_rtcp"), 10);
}

/// `silence` consumes what arrives and originates a PCMU packet every
/// 20 ms from the flow's source to its destination (raw socket path).
fn silence(a: Addrs) {
    let r = relay();
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let local = sa(a.relay_a, 30000);
    r.dp.put(with(
        flow(
            &local.to_string(),
            &sa(a.relay_b, 30002).to_string(),
            &sa(a.callee, 4000).to_string(),
        ),
        &[StageSpec::Silence {
            payload_type: 0,
            ptime_ms: 20,
        }],
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    rtp::send(&tx, local, 1, 0..5, Duration::ZERO);
    let start = Instant::now();
    let got = rtp::collect(&rx, 25, QUIET, LIMIT);
    let took = start.elapsed();
    assert_eq!(got.len(), 25, "counters {}", r.counters());
    assert!(
        got.iter().all(|(p, s)| *s == sa(a.relay_b, 30002)
            && p[1] & 0x7f == 0
            && p[12..].iter().all(|b| *b == 0xff)),
        "silence from the relay, not the caller's packets"
    );
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_millis(1500),
        "25 packets at 20 ms took {took:?}"
    );
    assert!(r.dp.counter("worker_originated_sent") >= 25);
    assert_eq!(r.dp.counter("worker_originate_failed"), 0);
    assert_eq!(
        r.pipeline("consumed"),
        5,
        "what the caller sent was consumed"
    );
}

#[test]
fn silence_originates_packets_every_ptime_ipv4() {
    silence(netns::v4());
}

#[test]
fn silence_originates_packets_every_ptime_ipv6() {
    silence(netns::v6());
}

/// A flow moved from the fast path to the pipeline and back, several
/// times, while a 1 ms stream runs through it: every packet arrives once.
#[test]
fn a_flow_moves_between_fast_path_and_pipeline_without_loss_or_duplicates() {
    let r = relay();
    let a = netns::v4();
    let local = sa(a.relay_a, 30000);
    let base = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    r.dp.put(base.clone());
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let n = 2500u16;
    let sender =
        std::thread::spawn(move || rtp::send(&tx, local, 5, 0..n, Duration::from_millis(1)));
    let receiver =
        std::thread::spawn(move || rtp::collect(&rx, n as usize, QUIET, Duration::from_secs(30)));
    let mut switches = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !sender.is_finished() && Instant::now() < deadline && switches < 12 {
        std::thread::sleep(Duration::from_millis(150));
        let on = switches % 2 == 0;
        let f = if on {
            with(base.clone(), &[StageSpec::Null])
        } else {
            base.clone()
        };
        r.dp.put(f);
        switches += 1;
    }
    sender.join().expect("sender");
    let got = receiver.join().expect("receiver");
    let mut count: BTreeMap<u16, u32> = BTreeMap::new();
    for s in rtp::seqs(&got) {
        *count.entry(s).or_default() += 1;
    }
    let lost = (0..n).filter(|s| !count.contains_key(s)).count();
    let dups: u32 = count.values().map(|c| c - 1).sum();
    assert!(switches >= 8, "switched {switches} times");
    assert_eq!(
        (lost, dups),
        (0, 0),
        "lost and duplicated after {switches} switches; counters {}; workers {}",
        r.counters(),
        r.workers()
    );
    let via_worker = r.pipeline("processed");
    let fast = r.dp.counter("forwarded");
    assert!(
        via_worker > 200 && fast > 200,
        "both paths carried the stream: {via_worker} by a worker, {fast} by XDP"
    );
    assert_eq!(via_worker + fast, n as u64);
    assert_eq!(r.dp.flow(local)["counters"]["packets"], n as u64);
}

/// Without workers (`[dataplane.xdp.afxdp] enabled = false`) a flow with
/// stages is refused by name, and one without is relayed as ever.
#[test]
fn without_workers_a_flow_with_stages_is_refused() {
    tollgate_tests::require_root();
    let topo = Topology::new();
    let bpf = Bpffs::new();
    let dp = Dataplane::start(
        Some(&topo.relay),
        Backend::Xdp,
        Some(&bpf),
        "[dataplane.xdp.afxdp]\nenabled = false\n",
    );
    let f = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    let e = dp
        .request(Request::FlowPut {
            flow: with(f.clone(), &[StageSpec::Null]),
        })
        .expect_err("refused")
        .to_string();
    assert!(
        e.contains("flow 10.201.1.1:30000") && e.contains("no AF_XDP workers"),
        "{e}"
    );
    assert_eq!(
        dp.request(Request::Workers).expect("workers"),
        serde_json::json!([])
    );
    dp.put(f);
    let a = netns::v4();
    let tx = rtp::bind(&topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&topo.callee, sa(a.callee, 4000));
    rtp::send(&tx, sa(a.relay_a, 30000), 1, 0..5, Duration::ZERO);
    assert_eq!(rtp::collect(&rx, 5, QUIET, LIMIT).len(), 5);
    drop(dp);
}

/// A flood into small rings: whatever is lost is counted where it was lost.
/// Every frame the program steered to a socket was either taken by a worker
/// or dropped by the kernel for want of room (counted per socket), and
/// every frame a worker took was sent or dropped by a named reason.
#[test]
fn a_flood_into_small_rings_is_accounted_for() {
    let r = relay_with("[dataplane.xdp.afxdp]\nframes = 128\nring_size = 64\nburst = 8\n");
    let a = netns::v4();
    let local = sa(a.relay_a, 30000);
    r.dp.put(with(
        flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000"),
        &[StageSpec::Null],
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let n = 5000u16;
    rtp::send(&tx, local, 1, 0..n, Duration::ZERO);
    let got = rtp::collect(&rx, n as usize, QUIET, LIMIT);
    let w = r.workers();
    let sum = |f: &dyn Fn(&Value) -> u64| -> u64 { w.as_array().unwrap().iter().map(f).sum() };
    let worker_rx = sum(&|w| w["rx_packets"].as_u64().unwrap());
    let worker_tx = sum(&|w| w["tx_packets"].as_u64().unwrap());
    let kernel = sum(&|w| {
        w["drops"]["xsk_rx_dropped"].as_u64().unwrap()
            + w["drops"]["xsk_rx_ring_full"].as_u64().unwrap()
    });
    let worker_drops = sum(&|w| {
        w["drops"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| !k.starts_with("xsk_"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum()
    });
    let stage_drops = r.pipeline("dropped_stage") + r.pipeline("dropped_no_flow");
    let steered = r.dp.counter("to_worker");
    eprintln!(
        "flood of {n}: steered {steered}, kernel dropped {kernel}, worker rx {worker_rx}, tx {worker_tx}, \
         dropped {worker_drops}, received {}",
        got.len()
    );
    assert!(steered > 0 && !got.is_empty(), "{w}");
    assert_eq!(
        steered,
        worker_rx + kernel,
        "steered = taken + dropped by the kernel: {w}"
    );
    assert_eq!(
        worker_rx,
        worker_tx + worker_drops + stage_drops,
        "taken = sent + dropped: {w}"
    );
    assert!(got.len() as u64 <= worker_tx);
    assert_eq!(
        r.dp.counter("worker_bad_metadata") + r.dp.counter("worker_malformed"),
        0
    );
}

/// A pipeline flow whose peer is behind the interface the packets came in
/// on: the worker sends the received frame itself back out (no copy).
#[test]
fn pipeline_hairpins_the_frame_itself() {
    let r = relay();
    let a = netns::v4();
    r.dp.put(with(
        flow("10.201.1.1:30010", "10.201.1.1:30012", "10.201.1.2:6000"),
        &[StageSpec::Null],
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
    assert_eq!(got.len(), 50, "counters {}", r.counters());
    assert!(got.iter().all(|(_, s)| *s == sa(a.relay_a, 30012)));
    assert_eq!(r.dp.counter("worker_tx"), 50);
    assert_eq!(
        r.dp.counter("worker_tx_copied"),
        0,
        "same interface, same frame"
    );
    assert_eq!(r.dp.counter("tx_same_interface"), 0, "not by XDP_TX");
}

/// Two rx queues on every veth and two worker cores: a socket per
/// (interface, queue), the queues split over the workers, and every packet
/// of eight flows relayed whichever queue it arrived on.
#[test]
fn two_queues_two_workers() {
    tollgate_tests::require_root();
    let topo = Topology::new();
    for (ns, ifname) in [
        (&topo.relay, &topo.ra),
        (&topo.relay, &topo.rb),
        (&topo.caller, &topo.ca),
        (&topo.callee, &topo.eb),
    ] {
        netns::sh(&[
            "ip", "netns", "exec", ns, "ethtool", "-L", ifname, "rx", "2", "tx", "2",
        ]);
    }
    let bpf = Bpffs::new();
    let dp = Dataplane::start(
        Some(&topo.relay),
        Backend::Xdp,
        Some(&bpf),
        "cores = [0, 1]",
    );
    let r = Relay {
        dp,
        _bpf: bpf,
        topo,
    };
    let w = r.workers();
    let workers = w.as_array().expect("a list");
    assert_eq!(workers.len(), 2, "{w}");
    let a = netns::v4();
    let n = 8u16;
    let mut pairs = Vec::new();
    for i in 0..n {
        r.dp.put(with(
            flow(
                &format!("10.201.1.1:{}", 30000 + 2 * i),
                &format!("10.201.2.1:{}", 30100 + 2 * i),
                &format!("10.201.2.2:{}", 4000 + 2 * i),
            ),
            &[StageSpec::Null],
        ));
        pairs.push((
            rtp::bind(&r.topo.caller, sa(a.caller, 5000 + i)),
            rtp::bind(&r.topo.callee, sa(a.callee, 4000 + 2 * i)),
        ));
    }
    for (i, (tx, _)) in pairs.iter().enumerate() {
        let local = sa(a.relay_a, 30000 + 2 * i as u16);
        rtp::send(tx, local, i as u32, 0..50, Duration::from_micros(100));
    }
    for (i, (_, rx)) in pairs.iter().enumerate() {
        let got = rtp::collect(rx, 50, QUIET, LIMIT);
        assert_eq!(
            got.len(),
            50,
            "flow {i}: counters {}; workers {}",
            r.counters(),
            r.workers()
        );
    }
    let w = r.workers();
    let per: Vec<u64> = w
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["rx_packets"].as_u64().unwrap())
        .collect();
    eprintln!("frames per worker: {per:?}");
    assert_eq!(per.iter().sum::<u64>(), 400, "{w}");
    assert!(
        w.as_array().unwrap().iter().all(|w| w["flows"] == n as u64),
        "{w}"
    );
}

/// The data plane is killed while a pipeline flow carries a 1 ms stream:
/// its workers' sockets die with it, so the program drops the flow's
/// packets, counted as `drop_no_worker`, until the restarted process
/// adopts the flow (its stages are gone with the old process) back onto
/// the fast path. Beyond those, only frames already in the dying process's
/// rings are lost (a ring's worth at most, and counted: steered to a worker
/// but never sent).
#[test]
fn a_killed_data_plane_leaves_its_pipeline_flows_to_the_fast_path() {
    let mut r = relay();
    let a = netns::v4();
    let local = sa(a.relay_a, 30000);
    r.dp.put(with(
        flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000"),
        &[StageSpec::Null],
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let n = 2000u16;
    let sender =
        std::thread::spawn(move || rtp::send(&tx, local, 3, 0..n, Duration::from_millis(1)));
    let flowing = tollgate_tests::wait_until(Duration::from_secs(5), || {
        r.dp.flow(local)["counters"]["packets"].as_u64() >= Some(200)
    });
    assert!(flowing, "packets go through the pipeline first");
    r.dp.kill_and_restart();
    let got = rtp::collect(&rx, n as usize, QUIET, Duration::from_secs(30));
    sender.join().expect("sender");
    let seqs: std::collections::BTreeSet<u16> = rtp::seqs(&got).into_iter().collect();
    assert_eq!(seqs.len(), got.len(), "no duplicates");
    let (no_worker, steered, fast) = (
        r.dp.counter("drop_no_worker"),
        r.dp.counter("to_worker"),
        r.dp.counter("forwarded"),
    );
    assert_eq!(
        steered + no_worker + fast,
        n as u64,
        "the program saw every packet"
    );
    // Received through the old process's workers: all but the fast path's.
    let by_workers = got.len() as u64 - fast;
    let in_dying_rings = steered - by_workers;
    eprintln!(
        "sent {n}: {by_workers} by the workers, {fast} by XDP after the restart, \
         {no_worker} dropped for want of a worker, {in_dying_rings} left in the dying process's rings"
    );
    assert!(
        in_dying_rings <= 64,
        "{in_dying_rings} lost in the dying process"
    );
    assert!(
        (n - 200..n).all(|s| seqs.contains(&s)),
        "the end of the stream arrives, by the fast path"
    );
    assert!(r.dp.counter("forwarded") > 0);
    let log = r.dp.log_text();
    assert!(
        log.contains("adopted a pipeline flow without its stages"),
        "{log}"
    );
    let f = r.dp.flow(local);
    assert!(f["flow"]["stages"].is_null(), "adopted without stages: {f}");
}

/// A clean stop (SIGTERM) hands the pipeline flows to the fast path first:
/// through the restart of the data plane under a 1 ms stream, every packet
/// arrives once, by a worker before and by XDP after.
#[test]
fn a_clean_restart_loses_no_packet_of_a_pipeline_flow() {
    let mut r = relay();
    let a = netns::v4();
    let local = sa(a.relay_a, 30000);
    r.dp.put(with(
        flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000"),
        &[StageSpec::Null],
    ));
    let tx = rtp::bind(&r.topo.caller, sa(a.caller, 5000));
    let rx = rtp::bind(&r.topo.callee, sa(a.callee, 4000));
    let n = 2000u16;
    let sender =
        std::thread::spawn(move || rtp::send(&tx, local, 3, 0..n, Duration::from_millis(1)));
    let flowing = tollgate_tests::wait_until(Duration::from_secs(5), || {
        r.dp.flow(local)["counters"]["packets"].as_u64() >= Some(200)
    });
    assert!(flowing, "packets go through the pipeline first");
    r.dp.stop_and_restart();
    let got = rtp::collect(&rx, n as usize, QUIET, Duration::from_secs(30));
    sender.join().expect("sender");
    let seqs: std::collections::BTreeSet<u16> = rtp::seqs(&got).into_iter().collect();
    assert_eq!(
        (got.len(), seqs.len()),
        (n as usize, n as usize),
        "every packet once; counters {}",
        r.counters()
    );
    assert_eq!(r.dp.counter("drop_no_worker"), 0);
    assert!(r.dp.counter("forwarded") > 0, "XDP took over");
    assert!(
        r.dp.log_text()
            .contains("pipeline flows handed to the XDP fast path"),
        "{}",
        r.dp.log_text()
    );
}
