//! The media pipeline on real packets between network namespaces: flows
//! that carry stages, on each backend with workers (socket; XDP, whose
//! flows with stages go to its AF_XDP workers). What the callee receives
//! says what the stages did: every Nth packet dropped and reported, RTCP
//! sent to the RTCP port, silence originated every 20 ms, and a flow moved
//! between the fast path and the pipeline under a 1 ms stream without a
//! packet lost or doubled.

use std::collections::BTreeMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tollgate_dataplane::control::Request;
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_tests::netns::{self, Topology};
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

fn relay(backend: Backend) -> Relay {
    let topo = Topology::new();
    let bpf = matches!(backend, Backend::Xdp).then(Bpffs::new);
    let dp = Dataplane::start(Some(&topo.relay), backend, bpf.as_ref(), "");
    Relay {
        dp,
        _bpf: bpf,
        topo,
    }
}

/// Caller 10.201.1.2:5000 -> relay 10.201.1.1:30000 -> (from
/// 10.201.2.1:30002) -> callee 10.201.2.2:4000, with `stages`.
fn caller_to_callee(stages: Vec<StageSpec>) -> Flow {
    Flow {
        stages,
        ..flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000")
    }
}

struct Ends {
    caller: UdpSocket,
    callee: UdpSocket,
    local: SocketAddr,
}

fn ends(r: &Relay) -> Ends {
    let a = netns::v4();
    Ends {
        caller: rtp::bind(&r.topo.caller, SocketAddr::new(a.caller, 5000)),
        callee: rtp::bind(&r.topo.callee, SocketAddr::new(a.callee, 4000)),
        local: SocketAddr::new(a.relay_a, 30000),
    }
}

fn drop_every_nth_is_dropped_and_reported(backend: Backend) {
    let r = relay(backend);
    r.dp.put(caller_to_callee(vec![
        StageSpec::Null,
        StageSpec::DropEvery { n: 5 },
    ]));
    let e = ends(&r);
    // Packets 1..=100: the 5th, 10th, ... are dropped.
    rtp::send(&e.caller, e.local, 7, 1..=100, Duration::from_micros(500));
    let got = rtp::seqs(&rtp::collect(&e.callee, 80, QUIET, LIMIT));
    let want: Vec<u16> = (1..=100).filter(|s| s % 5 != 0).collect();
    assert_eq!(got, want, "what the callee received");

    let events = r.dp.request(Request::Events).expect("events");
    let drops: Vec<u64> = events
        .as_array()
        .expect("a list")
        .iter()
        .filter(|ev| ev["kind"]["event"] == "stage_drop" && ev["local"] == e.local.to_string())
        .map(|ev| ev["kind"]["packet"].as_u64().unwrap())
        .collect();
    assert_eq!(
        drops,
        (1..=20).map(|i| i * 5).collect::<Vec<_>>(),
        "{events}"
    );
    let workers = r.dp.request(Request::Workers).expect("workers");
    let stage_drops: u64 = workers
        .as_array()
        .expect("a list")
        .iter()
        .map(|w| w["pipeline"]["dropped_stage"].as_u64().unwrap())
        .sum();
    assert_eq!(stage_drops, 20, "{workers}");
    assert_eq!(r.dp.flow(e.local)["counters"]["packets"], 100);
}

#[test]
fn socket_drop_every_nth_is_dropped_and_reported() {
    drop_every_nth_is_dropped_and_reported(Backend::Socket);
}

#[test]
fn afxdp_drop_every_nth_is_dropped_and_reported() {
    drop_every_nth_is_dropped_and_reported(Backend::Xdp);
}

/// RTCP on the muxed port leaves for the peer's RTCP port from the relay's.
fn rtcp_is_demultiplexed(backend: Backend) {
    let r = relay(backend);
    r.dp.put(caller_to_callee(vec![StageSpec::RtcpDemux]));
    let e = ends(&r);
    let a = netns::v4();
    let callee_rtcp = rtp::bind(&r.topo.callee, SocketAddr::new(a.callee, 4001));
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
    assert_eq!(rtp::seqs(&media), (0..20).collect::<Vec<_>>());
    assert!(
        media.iter().all(|(p, _)| p.len() == 172),
        "only RTP on 4000"
    );
    assert_eq!(control.len(), 20, "RTCP on 4001");
    let relay_rtcp = SocketAddr::new(a.relay_b, 30003);
    assert!(
        control
            .iter()
            .all(|(p, from)| p[..] == rr && *from == relay_rtcp),
        "RTCP unchanged, from the relay's RTCP port: {control:?}"
    );
}

#[test]
fn socket_rtcp_is_demultiplexed() {
    rtcp_is_demultiplexed(Backend::Socket);
}

#[test]
fn afxdp_rtcp_is_demultiplexed() {
    rtcp_is_demultiplexed(Backend::Xdp);
}

/// An originating stage: silence every 20 ms, the caller's packets consumed.
fn silence_is_originated_every_ptime(backend: Backend) {
    let r = relay(backend);
    let e = ends(&r);
    r.dp.put(caller_to_callee(vec![StageSpec::Silence {
        payload_type: 8,
        ptime_ms: 20,
    }]));
    rtp::send(&e.caller, e.local, 7, 0..10, Duration::from_millis(1));
    let t0 = Instant::now();
    let got = rtp::collect(&e.callee, 50, QUIET, LIMIT);
    let secs = t0.elapsed().as_secs_f64();
    assert_eq!(got.len(), 50, "50 packets of silence");
    assert!(
        secs > 0.8,
        "50 packets at 20 ms take about a second, not {secs:.2} s"
    );
    let relay_src: SocketAddr = "10.201.2.1:30002".parse().unwrap();
    for (p, from) in &got {
        assert_eq!(*from, relay_src);
        assert_eq!((p.len(), p[1]), (172, 8), "PCMA, 160 samples");
        assert!(p[12..].iter().all(|&b| b == 0xd5), "PCMA silence");
    }
    let seqs = rtp::seqs(&got);
    assert!(
        seqs.windows(2).all(|w| w[1] == w[0].wrapping_add(1)),
        "one continuous stream: {seqs:?}"
    );
    let ssrc = u32::from_be_bytes(got[0].0[8..12].try_into().unwrap());
    assert_ne!(ssrc, 7, "the caller's packets were consumed, not forwarded");
}

#[test]
fn socket_silence_is_originated_every_ptime() {
    silence_is_originated_every_ptime(Backend::Socket);
}

#[test]
fn afxdp_silence_is_originated_every_ptime() {
    silence_is_originated_every_ptime(Backend::Xdp);
}

/// A 1 ms stream while the flow gains and loses a stage every 150 ms: each
/// packet arrives exactly once.
fn stages_come_and_go_without_loss(backend: Backend) {
    let r = relay(backend);
    let e = ends(&r);
    r.dp.put(caller_to_callee(Vec::new()));
    let n: u16 = 2500;
    let done = AtomicBool::new(false);
    let got = std::thread::scope(|s| {
        let rx = s.spawn(|| rtp::collect(&e.callee, n as usize, QUIET, LIMIT));
        s.spawn(|| {
            let mut with = true;
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(150));
                let stages = if with {
                    vec![StageSpec::Null]
                } else {
                    Vec::new()
                };
                r.dp.put(caller_to_callee(stages));
                with = !with;
            }
        });
        rtp::send(&e.caller, e.local, 9, 0..n, Duration::from_millis(1));
        let got = rx.join().expect("receiver");
        done.store(true, Ordering::Relaxed);
        got
    });
    let mut seen: BTreeMap<u16, u32> = BTreeMap::new();
    for s in rtp::seqs(&got) {
        *seen.entry(s).or_default() += 1;
    }
    let lost = (0..n).filter(|s| !seen.contains_key(s)).count();
    let doubled = seen.values().filter(|&&c| c > 1).count();
    assert_eq!((lost, doubled), (0, 0), "lost and doubled of {n}");
    let workers = r.dp.request(Request::Workers).expect("workers");
    let through_pipeline: u64 = workers
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["pipeline"]["processed"].as_u64().unwrap())
        .sum();
    assert!(
        through_pipeline > 0 && through_pipeline < n as u64,
        "part of the stream went through the pipeline: {workers}"
    );
}

#[test]
fn socket_stages_come_and_go_without_loss() {
    stages_come_and_go_without_loss(Backend::Socket);
}

#[test]
fn afxdp_stages_come_and_go_without_loss() {
    stages_come_and_go_without_loss(Backend::Xdp);
}
