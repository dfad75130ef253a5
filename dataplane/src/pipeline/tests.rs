//! The pipeline's contract on virtual time: verdicts, events, counters,
//! state kept across a re-install, and originated packets on the wheel.

use super::*;
use crate::wire::rtp;

fn flow(stages: Vec<StageSpec>) -> Flow {
    Flow {
        stages,
        ..Flow::relay(
            "10.0.1.1:30000".parse().unwrap(),
            "10.0.2.1:30002".parse().unwrap(),
            "10.0.2.2:4000".parse().unwrap(),
        )
    }
}

fn pipeline(cap: usize) -> (Pipeline, crossbeam_channel::Receiver<Event>) {
    let (tx, rx) = crossbeam_channel::bounded(cap);
    (Pipeline::new(tx), rx)
}

const RTP: [u8; 16] = [0x80, 0, 0, 1, 0, 0, 0, 160, 0, 0, 0, 9, 1, 2, 3, 4];

fn run(p: &mut Pipeline, slot: Slot, bytes: &[u8]) -> Verdict {
    let mut buf = [0u8; 64];
    buf[..bytes.len()].copy_from_slice(bytes);
    let mut payload = Payload::new(&mut buf, bytes.len());
    let v = p.process(1, slot, &mut payload);
    assert!(!payload.modified(), "these stages never write");
    v
}

#[test]
fn null_stage_forwards_everything() {
    let (mut p, _rx) = pipeline(8);
    p.install(3, PipelineFlow::new(&flow(vec![StageSpec::Null])));
    for _ in 0..100 {
        assert_eq!(run(&mut p, 3, &RTP), Verdict::Forward);
    }
    assert_eq!(p.counters().forwarded, 100);
    assert_eq!(p.flows(), 1);
}

#[test]
fn drop_every_drops_exactly_every_nth_and_reports_each() {
    let (mut p, rx) = pipeline(64);
    p.install(
        0,
        PipelineFlow::new(&flow(vec![StageSpec::DropEvery { n: 4 }])),
    );
    let verdicts: Vec<Verdict> = (0..12).map(|_| run(&mut p, 0, &RTP)).collect();
    let dropped: Vec<usize> = (0..12)
        .filter(|&i| verdicts[i] == Verdict::Drop(DropReason::Stage))
        .map(|i| i + 1)
        .collect();
    assert_eq!(dropped, vec![4, 8, 12]);
    let events: Vec<EventKind> = rx.try_iter().map(|e| e.kind).collect();
    assert_eq!(
        events,
        vec![
            EventKind::StageDrop {
                packet: 4,
                dropped: 1
            },
            EventKind::StageDrop {
                packet: 8,
                dropped: 2
            },
            EventKind::StageDrop {
                packet: 12,
                dropped: 3
            },
        ]
    );
    let c = p.counters();
    assert_eq!((c.processed, c.forwarded, c.dropped_stage), (12, 9, 3));
}

#[test]
fn a_full_event_channel_counts_lost_events_and_never_blocks() {
    let (mut p, rx) = pipeline(1);
    p.install(
        0,
        PipelineFlow::new(&flow(vec![StageSpec::DropEvery { n: 1 }])),
    );
    for _ in 0..5 {
        run(&mut p, 0, &RTP);
    }
    assert_eq!(rx.try_iter().count(), 1);
    assert_eq!(p.counters().events_lost, 4);
}

#[test]
fn a_drop_ends_the_chain_and_rtcp_routing_sticks() {
    let (mut p, _rx) = pipeline(8);
    let stages = vec![
        StageSpec::RtcpDemux,
        StageSpec::Null,
        StageSpec::DropEvery { n: 2 },
    ];
    p.install(1, PipelineFlow::new(&flow(stages)));
    let rr = [0x81, 201, 0, 1, 0, 0, 0, 1];
    assert_eq!(run(&mut p, 1, &rr), Verdict::ForwardRtcp);
    assert_eq!(run(&mut p, 1, &RTP), Verdict::Drop(DropReason::Stage));
    assert_eq!(run(&mut p, 1, &RTP), Verdict::Forward);
    assert_eq!(p.counters().forwarded_rtcp, 1);
}

#[test]
fn an_empty_slot_drops_and_counts() {
    let (mut p, _rx) = pipeline(8);
    assert_eq!(run(&mut p, 7, &RTP), Verdict::Drop(DropReason::NoFlow));
    p.install(7, PipelineFlow::new(&flow(vec![StageSpec::Null])));
    assert!(p.remove(7).is_some());
    assert!(!p.has(7));
    assert_eq!(run(&mut p, 7, &RTP), Verdict::Drop(DropReason::NoFlow));
    assert_eq!(p.counters().dropped_no_flow, 2);
    assert_eq!(p.flows(), 0);
}

#[test]
fn reinstalling_keeps_the_state_of_unchanged_stages() {
    let (mut p, _rx) = pipeline(64);
    let f = flow(vec![StageSpec::Null, StageSpec::DropEvery { n: 3 }]);
    p.install(0, PipelineFlow::new(&f));
    run(&mut p, 0, &RTP);
    run(&mut p, 0, &RTP);
    // The destination moved (a re-INVITE): same stages, the count goes on.
    p.install(0, PipelineFlow::new(&f));
    assert_eq!(run(&mut p, 0, &RTP), Verdict::Drop(DropReason::Stage));
    // Different parameters: fresh state.
    p.install(
        0,
        PipelineFlow::new(&flow(vec![StageSpec::DropEvery { n: 2 }])),
    );
    assert_eq!(run(&mut p, 0, &RTP), Verdict::Forward);
    assert_eq!(p.flows(), 1);
}

/// Ticks every `step_ms` up to `until_ms`, collecting (ms, slot, sequence).
fn originated(p: &mut Pipeline, until_ms: u64, step_ms: u64) -> Vec<(u64, Slot, u16)> {
    let mut out = Vec::new();
    let mut buf = [0u8; 1500];
    let mut t = 0;
    while t <= until_ms {
        p.tick(t * 1_000_000, &mut buf, |slot, payload| {
            let r = rtp::Packet::new_checked(payload.bytes()).expect("valid RTP");
            out.push((t, slot, r.sequence()));
        });
        t += step_ms;
    }
    out
}

fn silence(ptime_ms: u32) -> StageSpec {
    StageSpec::Silence {
        payload_type: 0,
        ptime_ms,
    }
}

#[test]
fn silence_originates_one_packet_per_ptime_and_consumes_input() {
    let (mut p, _rx) = pipeline(8);
    p.install(2, PipelineFlow::new(&flow(vec![silence(20)])));
    assert_eq!(p.next_deadline(), Some(0));
    assert_eq!(run(&mut p, 2, &RTP), Verdict::Drop(DropReason::Consumed));
    let out = originated(&mut p, 1000, 5);
    assert_eq!(out.len(), 51, "at 0, 20, ..., 1000 ms");
    for (i, w) in out.windows(2).enumerate() {
        assert_eq!(w[1].0 - w[0].0, 20, "packet {i}: one per 20 ms");
        assert_eq!(
            w[1].2,
            w[0].2.wrapping_add(1),
            "consecutive sequence numbers"
        );
    }
    assert_eq!(p.counters().originated, 51);
    assert_eq!(p.counters().consumed, 1);
}

#[test]
fn timers_follow_the_flow_through_reinstall_and_removal() {
    let (mut p, _rx) = pipeline(8);
    let f = flow(vec![silence(40)]);
    p.install(0, PipelineFlow::new(&f));
    let before = originated(&mut p, 100, 20);
    assert_eq!(before.len(), 3, "0, 40, 80 ms");
    // Re-installed with the same stage: one stream, no doubled packets.
    p.install(0, PipelineFlow::new(&f));
    let mut buf = [0u8; 1500];
    let mut seqs = Vec::new();
    for t in (120..=400).step_by(20) {
        p.tick(t * 1_000_000, &mut buf, |_, pl| {
            seqs.push(rtp::Packet::new_checked(pl.bytes()).unwrap().sequence())
        });
    }
    assert_eq!(seqs.len(), 8, "every 40 ms from 120 to 400 ms");
    assert_eq!(seqs[0], before[2].2.wrapping_add(1), "the stream goes on");
    p.remove(0);
    p.tick(500_000_000, &mut buf, |_, _| {
        panic!("removed flows send nothing")
    });
    assert_eq!(p.next_deadline(), None);
}

#[test]
fn a_stalled_worker_resumes_without_a_burst() {
    let (mut p, _rx) = pipeline(8);
    p.install(0, PipelineFlow::new(&flow(vec![silence(20)])));
    let mut buf = [0u8; 1500];
    let mut n = 0;
    p.tick(0, &mut buf, |_, _| n += 1);
    p.tick(2_000_000_000, &mut buf, |_, _| n += 1);
    assert!(n <= 5, "{n} packets after a 2 s stall");
}

#[test]
fn srtp_drops_are_reported_at_powers_of_two_per_reason() {
    use crate::srtp::{Keying, MasterKey, Suite};
    let (mut p, rx) = pipeline(64);
    let k = Keying {
        suite: Suite::AesCm128HmacSha1_80,
        key: MasterKey::new(&[7; 30]).unwrap(),
        mki: None,
        lifetime: None,
    };
    p.install(0, PipelineFlow::new(&flow(vec![StageSpec::SrtpDecrypt(k)])));
    for _ in 0..9 {
        // Plain RTP is not SRTP: its last 10 bytes are no valid tag.
        let mut buf = [RTP, RTP].concat();
        let v = p.process(1, 0, &mut Payload::new(&mut buf, 32));
        assert_eq!(v, Verdict::Drop(DropReason::Stage));
    }
    let counts: Vec<u64> = rx
        .try_iter()
        .map(|e| match e.kind {
            EventKind::SrtpDrop { reason, count } => {
                assert_eq!(reason, stages::SrtpDropReason::Auth);
                count
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(counts, [1, 2, 4, 8]);
    assert_eq!(p.counters().dropped_stage, 9);
}
