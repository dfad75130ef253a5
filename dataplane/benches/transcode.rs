//! What the transcode stage costs per packet on one core, per codec pair,
//! beside a plain relay (a flow with the `null` stage) in the same run:
//! 10 s of a 1 kHz tone, coded beforehand in the sender's codec as 20 ms
//! RTP packets (500 of them), goes through `Pipeline::process` on one flow,
//! in bursts of 50, each burst timed alone; the median burst's time per
//! packet is reported, and the calls one core would carry (two directions
//! of 50 packets a second each) if it did nothing else.
//! `cargo bench -p tollgate-dataplane --bench transcode`.

use std::time::Instant;
use tollgate_codec::{Codec, Encoder};
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::stages::{EventMap, Side, TranscodeSpec};
use tollgate_dataplane::pipeline::{Payload, Pipeline, PipelineFlow, StageSpec};

const PACKETS: usize = 500;
const BURST: usize = 50;
/// Passes over the stream per pair (each one a fresh flow).
const ROUNDS: usize = 6;

fn side(codec: Codec) -> Side {
    Side {
        codec,
        payload_type: codec.static_payload_type().unwrap_or(111),
        ptime_ms: 20,
    }
}

/// The sender's stream: 20 ms RTP packets of a tone in `codec`.
fn stream(codec: Codec) -> Vec<Vec<u8>> {
    let rate = codec.sample_rate();
    let per = rate as usize / 50;
    let mut enc = Encoder::new(codec).unwrap();
    let pt = side(codec).payload_type;
    let ticks = codec.rtp_clock_rate() / 50;
    (0..PACKETS)
        .map(|i| {
            let pcm: Vec<i16> = (i * per..(i + 1) * per)
                .map(|n| {
                    let t = n as f64 / f64::from(rate);
                    (10_000.0 * (2.0 * std::f64::consts::PI * 1000.0 * t).sin()) as i16
                })
                .collect();
            let mut p = vec![0x80, pt, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];
            p[2..4].copy_from_slice(&(i as u16).to_be_bytes());
            p[4..8].copy_from_slice(&(i as u32 * ticks).to_be_bytes());
            let mut body = vec![0u8; codec.max_payload(20)];
            let n = enc.encode(&pcm, &mut body).unwrap();
            p.extend_from_slice(&body[..n]);
            p
        })
        .collect()
}

fn flow(stage: StageSpec) -> Flow {
    Flow {
        stages: vec![stage],
        ..Flow::relay(
            "10.0.1.1:30000".parse().unwrap(),
            "10.0.2.1:30002".parse().unwrap(),
            "10.0.2.2:4000".parse().unwrap(),
        )
    }
}

/// The median time per packet (ns) of `stage` over `packets`.
fn measure(stage: StageSpec, packets: &[Vec<u8>]) -> f64 {
    let (tx, _rx) = crossbeam_channel::bounded(1024);
    let mut buf = vec![0u8; 2048];
    let mut bursts = Vec::new();
    let mut sent = 0u64;
    for _ in 0..ROUNDS {
        let mut p = Pipeline::new(tx.clone());
        p.install(3, PipelineFlow::new(&flow(stage)));
        for chunk in packets.chunks(BURST) {
            let start = Instant::now();
            for pkt in chunk {
                buf[..pkt.len()].copy_from_slice(pkt);
                let mut payload = Payload::new(&mut buf, pkt.len());
                let v = p.process(0, 3, None, &mut payload);
                sent += u64::from(v == tollgate_dataplane::pipeline::Verdict::Forward);
            }
            bursts.push(start.elapsed().as_nanos() as f64 / chunk.len() as f64);
        }
    }
    assert!(
        sent >= (ROUNDS * packets.len() * 9 / 10) as u64,
        "{stage:?}: {sent} sent"
    );
    bursts.sort_by(f64::total_cmp);
    bursts[bursts.len() / 2]
}

fn transcode(from: Codec, to: Codec) -> StageSpec {
    StageSpec::Transcode(TranscodeSpec {
        from: side(from),
        to: side(to),
        events: Some(EventMap { from: 101, to: 101 }),
    })
}

fn main() {
    let pcmu = stream(Codec::Pcmu);
    let relay = measure(StageSpec::Null, &pcmu);
    println!("| pair | per packet, A to B | per packet, B to A | vs relay | calls per core |");
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| relay (`null` stage), PCMU | {relay:.0} ns | {relay:.0} ns | 1x | {:.0} |",
        1e9 / (2.0 * relay * 50.0)
    );
    for other in [Codec::Pcma, Codec::G722, Codec::Opus, Codec::G729] {
        let there = measure(transcode(Codec::Pcmu, other), &pcmu);
        let back = measure(transcode(other, Codec::Pcmu), &stream(other));
        println!(
            "| PCMU <-> {} | {there:.0} ns | {back:.0} ns | {:.0}x | {:.0} |",
            other.encoding(),
            (there + back) / (2.0 * relay),
            1e9 / ((there + back) * 50.0)
        );
    }
}
