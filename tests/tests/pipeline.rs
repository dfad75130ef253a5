//! The media pipeline on real packets between network namespaces: flows
//! that carry stages, on each backend with workers (socket; XDP, whose
//! flows with stages go to its AF_XDP workers; with `--features dpdk`,
//! DPDK). What the callee receives says what the stages did: every Nth
//! packet dropped and reported, RTCP sent to the RTCP port, silence
//! originated every 20 ms (IPv4, and IPv6 on AF_XDP), and a flow moved
//! between the fast path and the pipeline under a 1 ms stream without a
//! packet lost or doubled.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_tests::capture::Capture;
use tollgate_tests::netns::{self, Addrs};
use tollgate_tests::process::flow;
use tollgate_tests::relay::{sa, Kind, Relay, LIMIT, QUIET};
use tollgate_tests::rtp;

#[cfg(feature = "dpdk")]
const DPDK: Kind = Kind::Dpdk { workers: 1 };

/// Caller 5000 -> relay 30000 -> (from 30002) -> callee 4000 over the
/// addresses `a`, with `stages`.
fn caller_to_callee(a: &Addrs, stages: Vec<StageSpec>) -> Flow {
    Flow {
        stages,
        ..flow(
            &sa(a.relay_a, 30000).to_string(),
            &sa(a.relay_b, 30002).to_string(),
            &sa(a.callee, 4000).to_string(),
        )
    }
}

struct Ends {
    caller: UdpSocket,
    callee: UdpSocket,
    local: SocketAddr,
}

fn ends(r: &Relay, a: &Addrs) -> Ends {
    Ends {
        caller: rtp::bind(&r.topo.caller, sa(a.caller, 5000)),
        callee: rtp::bind(&r.topo.callee, sa(a.callee, 4000)),
        local: sa(a.relay_a, 30000),
    }
}

/// `drop_every` with n = 5 drops packets 5, 10, 15, ... of the flow, exactly
/// those, counts them, and reports each one as an event, in order.
fn drop_every_nth_is_dropped_and_reported(kind: Kind) {
    let r = Relay::new(kind, "");
    let a = netns::v4();
    let e = ends(&r, &a);
    r.dp.put(caller_to_callee(
        &a,
        vec![StageSpec::Null, StageSpec::DropEvery { n: 5 }],
    ));
    let _ = r.events();
    // Packets 1..=100: the 5th, 10th, ... are dropped.
    rtp::send(&e.caller, e.local, 7, 1..=100, Duration::from_micros(500));
    let got = rtp::seqs(&rtp::collect(&e.callee, 80, QUIET, LIMIT));
    let want: Vec<u16> = (1..=100).filter(|s| s % 5 != 0).collect();
    assert_eq!(got, want, "what the callee received; {}", r.counters());
    assert!(
        rtp::collect(&e.callee, 1, Duration::from_millis(300), LIMIT).is_empty(),
        "nothing more"
    );

    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(3);
    while events.len() < 20 && Instant::now() < deadline {
        events.extend(r.events());
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(events.len(), 20, "{events:?}");
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev["local"], e.local.to_string(), "{ev}");
        assert_eq!(ev["kind"]["event"], "stage_drop", "{ev}");
        assert_eq!(ev["kind"]["packet"], (i as u64 + 1) * 5, "{ev}");
        assert_eq!(ev["kind"]["dropped"], i as u64 + 1, "{ev}");
    }
    assert_eq!(r.pipeline("dropped_stage"), 20, "{}", r.workers());
    assert_eq!(r.pipeline("forwarded"), 80, "{}", r.workers());
    assert_eq!(r.dp.flow(e.local)["counters"]["packets"], 100);
    if matches!(kind, Kind::Dpdk { .. }) {
        assert_eq!(r.dp.counter("drop_pipeline"), 20, "{}", r.counters());
    }
}

#[test]
fn socket_drop_every_nth_is_dropped_and_reported() {
    drop_every_nth_is_dropped_and_reported(Kind::Socket);
}

#[test]
fn afxdp_drop_every_nth_is_dropped_and_reported() {
    drop_every_nth_is_dropped_and_reported(Kind::Afxdp);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_drop_every_nth_is_dropped_and_reported() {
    drop_every_nth_is_dropped_and_reported(DPDK);
}

/// `rtcp_demux`: RTP goes on to the callee's 4000 from the relay's 30002;
/// RTCP on the muxed port leaves, unchanged, for 4001 from 30003, with
/// valid checksums after the port change.
fn rtcp_is_demultiplexed(kind: Kind) {
    let r = Relay::new(kind, "");
    let a = netns::v4();
    let e = ends(&r, &a);
    r.dp.put(caller_to_callee(&a, vec![StageSpec::RtcpDemux]));
    let callee_rtcp = rtp::bind(&r.topo.callee, sa(a.callee, 4001));
    let cap = Capture::open(&r.topo.callee, "eb");
    let rr = [0x81u8, 201, 0, 1, 0, 0, 0, 7];
    for seq in 0..20u16 {
        e.caller
            .send_to(&rtp::packet(7, seq), e.local)
            .expect("send RTP");
        e.caller.send_to(&rr, e.local).expect("send RTCP");
        std::thread::sleep(Duration::from_millis(1));
    }
    let media = rtp::collect(&e.callee, 20, QUIET, LIMIT);
    let control = rtp::collect(&callee_rtcp, 20, QUIET, LIMIT);
    assert_eq!(
        rtp::seqs(&media),
        (0..20).collect::<Vec<_>>(),
        "{}",
        r.counters()
    );
    assert!(
        media
            .iter()
            .all(|(p, s)| p.len() == 172 && *s == sa(a.relay_b, 30002)),
        "only RTP on 4000, from the relay's 30002"
    );
    assert_eq!(control.len(), 20, "RTCP on 4001; {}", r.counters());
    let relay_rtcp = sa(a.relay_b, 30003);
    assert!(
        control
            .iter()
            .all(|(p, from)| p[..] == rr && *from == relay_rtcp),
        "RTCP unchanged, from the relay's RTCP port: {control:?}"
    );
    let frames = cap.udp_to(sa(a.callee, 4001), 20, LIMIT);
    assert_eq!(frames.len(), 20, "capture on eb");
    assert!(
        frames.iter().all(|f| f.udp_checksum_ok && f.ip_checksum_ok),
        "checksums after the port change"
    );
    assert_eq!(r.pipeline("forwarded_rtcp"), 20, "{}", r.workers());
}

#[test]
fn socket_rtcp_is_demultiplexed() {
    rtcp_is_demultiplexed(Kind::Socket);
}

#[test]
fn afxdp_rtcp_is_demultiplexed() {
    rtcp_is_demultiplexed(Kind::Afxdp);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_rtcp_is_demultiplexed() {
    rtcp_is_demultiplexed(DPDK);
}

/// An originating stage: G.711 silence of `payload_type` (0 PCMU, 8 PCMA)
/// every 20 ms from the flow's source to its destination, one continuous
/// stream, the caller's packets consumed.
fn silence_is_originated_every_ptime(kind: Kind, a: Addrs, payload_type: u8) {
    let silent = match payload_type {
        0 => 0xff,
        8 => 0xd5,
        pt => panic!("no G.711 silence for payload type {pt}"),
    };
    let r = Relay::new(kind, "");
    let e = ends(&r, &a);
    r.dp.put(caller_to_callee(
        &a,
        vec![StageSpec::Silence {
            payload_type,
            ptime_ms: 20,
        }],
    ));
    rtp::send(&e.caller, e.local, 7, 0..10, Duration::from_millis(1));
    let t0 = Instant::now();
    let got = rtp::collect(&e.callee, 50, QUIET, LIMIT);
    let took = t0.elapsed();
    assert_eq!(got.len(), 50, "50 packets of silence; {}", r.counters());
    assert!(
        took > Duration::from_millis(800) && took < Duration::from_secs(3),
        "50 packets at 20 ms take about a second, not {took:?}"
    );
    let relay_src = sa(a.relay_b, 30002);
    for (p, from) in &got {
        assert_eq!(*from, relay_src, "silence from the relay");
        assert_eq!((p.len(), p[1]), (172, payload_type), "160 samples");
        assert!(p[12..].iter().all(|&b| b == silent), "G.711 silence");
    }
    let seqs = rtp::seqs(&got);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "one continuous stream: {seqs:?}"
    );
    let ssrc = u32::from_be_bytes(got[0].0[8..12].try_into().unwrap());
    assert_ne!(ssrc, 7, "the caller's packets were consumed, not forwarded");
    assert_eq!(
        r.pipeline("consumed"),
        10,
        "what the caller sent was consumed"
    );
    assert!(r.pipeline("originated") >= 50, "{}", r.workers());
    if kind == Kind::Afxdp {
        // Originated by the raw socket path.
        assert!(r.dp.counter("worker_originated_sent") >= 50);
        assert_eq!(r.dp.counter("worker_originate_failed"), 0);
    }
}

#[test]
fn socket_silence_is_originated_every_ptime_ipv4() {
    silence_is_originated_every_ptime(Kind::Socket, netns::v4(), 8);
}

#[test]
fn afxdp_silence_is_originated_every_ptime_ipv4() {
    silence_is_originated_every_ptime(Kind::Afxdp, netns::v4(), 8);
}

#[test]
fn afxdp_silence_is_originated_every_ptime_ipv6() {
    silence_is_originated_every_ptime(Kind::Afxdp, netns::v6(), 0);
}

/// From the worker's timer wheel, towards the destination it resolves first.
#[cfg(feature = "dpdk")]
#[test]
fn dpdk_silence_is_originated_every_ptime_ipv4() {
    silence_is_originated_every_ptime(DPDK, netns::v4(), 0);
}

/// A 1 ms stream while the flow gains and loses a `null` stage every 150 ms
/// (at least 8 times): each packet arrives exactly once, and both the
/// pipeline and the path without it carried a good part of the stream.
fn stages_come_and_go_without_loss(kind: Kind) {
    let r = Relay::new(kind, "");
    let a = netns::v4();
    let e = ends(&r, &a);
    r.dp.put(caller_to_callee(&a, Vec::new()));
    let n: u16 = 2500;
    let done = AtomicBool::new(false);
    let (got, switches) = std::thread::scope(|s| {
        let rx = s.spawn(|| rtp::collect(&e.callee, n as usize, QUIET, Duration::from_secs(30)));
        let switcher = s.spawn(|| {
            let mut switches = 0u32;
            while !done.load(Ordering::Relaxed) && switches < 16 {
                std::thread::sleep(Duration::from_millis(150));
                let stages = if switches.is_multiple_of(2) {
                    vec![StageSpec::Null]
                } else {
                    Vec::new()
                };
                r.dp.put(caller_to_callee(&a, stages));
                switches += 1;
            }
            switches
        });
        rtp::send(&e.caller, e.local, 9, 0..n, Duration::from_millis(1));
        done.store(true, Ordering::Relaxed);
        let switches = switcher.join().expect("switcher");
        (rx.join().expect("receiver"), switches)
    });
    let mut seen: BTreeMap<u16, u32> = BTreeMap::new();
    for s in rtp::seqs(&got) {
        *seen.entry(s).or_default() += 1;
    }
    let lost = (0..n).filter(|s| !seen.contains_key(s)).count();
    let doubled: u32 = seen.values().map(|c| c - 1).sum();
    assert!(switches >= 8, "switched {switches} times");
    assert_eq!(
        (lost, doubled),
        (0, 0),
        "lost and doubled of {n} after {switches} switches; counters {}; workers {}",
        r.counters(),
        r.workers()
    );
    let through_pipeline = r.pipeline("processed");
    assert!(
        through_pipeline > 200 && through_pipeline < n as u64,
        "part of the stream went through the pipeline: {}",
        r.workers()
    );
    if kind == Kind::Afxdp {
        let fast = r.dp.counter("forwarded");
        assert!(
            fast > 200,
            "both paths carried the stream: {through_pipeline} by a worker, {fast} by XDP"
        );
        assert_eq!(through_pipeline + fast, n as u64);
        assert_eq!(r.dp.flow(e.local)["counters"]["packets"], n as u64);
    }
}

#[test]
fn socket_stages_come_and_go_without_loss() {
    stages_come_and_go_without_loss(Kind::Socket);
}

#[test]
fn afxdp_stages_come_and_go_without_loss() {
    stages_come_and_go_without_loss(Kind::Afxdp);
}

#[cfg(feature = "dpdk")]
#[test]
fn dpdk_stages_come_and_go_without_loss() {
    stages_come_and_go_without_loss(DPDK);
}
