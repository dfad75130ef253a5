//! What only the XDP backend's AF_XDP workers do, between network
//! namespaces (veth, so copy mode). The relay suite (relay.rs, `afxdp_*`)
//! and the stage contract (pipeline.rs, `afxdp_*`) run on these workers
//! too; here: busy polling with small rings, a flood into small rings
//! accounted for, a hairpin that sends the received frame itself, two
//! queues over two workers, the pipeline flows of a killed and of a
//! cleanly stopped data plane, and flows with stages refused without
//! workers.

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use tollgate_dataplane::control::Request;
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_tests::netns::{self, Topology};
use tollgate_tests::process::flow;
use tollgate_tests::process::Dataplane;
use tollgate_tests::relay::{hairpin, round_trip, sa, Kind, OneWay, Relay, LIMIT, QUIET};
use tollgate_tests::rtp;

/// Busy polling on, small rings and bursts, copy mode forced: the relay
/// suite's round trip, every packet through a worker.
#[test]
fn afxdp_relays_with_busy_polling_and_small_rings() {
    let r = Relay::new(
        Kind::Afxdp,
        "[dataplane.xdp.afxdp]\nbusy_poll = true\nzero_copy = \"off\"\nframes = 256\nring_size = 64\nburst = 8\n",
    );
    round_trip(&r, netns::v4());
}

/// A flood into small rings: whatever is lost is counted where it was lost.
/// Every frame the program steered to a socket was either taken by a worker
/// or dropped by the kernel for want of room (counted per socket), and
/// every frame a worker took was sent or dropped by a named reason.
#[test]
fn afxdp_flood_into_small_rings_is_accounted_for() {
    let OneWay { r, local, tx, rx } = OneWay::new(
        Kind::Afxdp,
        "[dataplane.xdp.afxdp]\nframes = 128\nring_size = 64\nburst = 8\n",
    );
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
fn afxdp_hairpins_the_frame_itself() {
    let r = Relay::new(Kind::Afxdp, "");
    hairpin(&r);
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
fn afxdp_two_queues_two_workers() {
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
    let r = Relay::on(topo, Kind::Afxdp, "cores = [0, 1]");
    let w = r.workers();
    let workers = w.as_array().expect("a list");
    assert_eq!(workers.len(), 2, "{w}");
    let a = netns::v4();
    let n = 8u16;
    let mut pairs = Vec::new();
    for i in 0..n {
        r.put(flow(
            &format!("10.201.1.1:{}", 30000 + 2 * i),
            &format!("10.201.2.1:{}", 30100 + 2 * i),
            &format!("10.201.2.2:{}", 4000 + 2 * i),
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
fn afxdp_killed_data_plane_leaves_its_pipeline_flows_to_the_fast_path() {
    let mut w = OneWay::new(Kind::Afxdp, "");
    let n = 2000u16;
    let got = w.restart_under_stream(
        n,
        200,
        "packets go through the pipeline first",
        Dataplane::kill_and_restart,
    );
    let (r, local) = (&w.r, w.local);
    let seqs: BTreeSet<u16> = rtp::seqs(&got).into_iter().collect();
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
fn afxdp_clean_restart_loses_no_packet_of_a_pipeline_flow() {
    let mut w = OneWay::new(Kind::Afxdp, "");
    let n = 2000u16;
    let got = w.restart_under_stream(
        n,
        200,
        "packets go through the pipeline first",
        Dataplane::stop_and_restart,
    );
    let r = &w.r;
    let seqs: BTreeSet<u16> = rtp::seqs(&got).into_iter().collect();
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

/// Without workers (`[dataplane.xdp.afxdp] enabled = false`) a flow with
/// stages is refused by name, and one without is relayed as ever.
#[test]
fn afxdp_without_workers_a_flow_with_stages_is_refused() {
    let r = Relay::new(Kind::Xdp, "[dataplane.xdp.afxdp]\nenabled = false\n");
    let (dp, topo) = (&r.dp, &r.topo);
    let f = flow("10.201.1.1:30000", "10.201.2.1:30002", "10.201.2.2:4000");
    let e = dp
        .request(Request::FlowPut {
            flow: Flow {
                stages: vec![StageSpec::Null],
                ..f.clone()
            },
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
}
