//! What the media pipeline costs per packet on one core, beside a baseline
//! measured in the same run: a burst of 64 G.711 payloads through
//! `Pipeline::process` with no stage (the slot lookup and accounting alone),
//! the null stage, and a chain of three; and the packet-touching floor, a
//! copy of the same payloads. Then what recording costs: the same burst on
//! flows with a `null` stage, unrecorded, against flows that also carry a
//! `tap` (each packet copied into the worker's tap ring), in the same run;
//! the ring is emptied between bursts, outside the timing, as the recorder
//! thread would. `cargo bench -p tollgate-dataplane`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use std::time::{Duration, Instant};
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::{Payload, Pipeline, PipelineFlow, StageSpec};
use tollgate_dataplane::recorder::ring;

const BURST: usize = 64;
const LEN: usize = 172;

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

fn burst() -> Vec<[u8; 256]> {
    (0..BURST)
        .map(|i| {
            let mut b = [0xd5u8; 256];
            b[..4].copy_from_slice(&[0x80, 0, 0, i as u8]);
            b
        })
        .collect()
}

fn pipeline(c: &mut Criterion) {
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(BURST as u64));
    let (tx, _rx) = crossbeam_channel::bounded(1024);
    let chains: [(&str, Vec<StageSpec>); 3] = [
        ("empty chain", vec![]),
        ("null stage", vec![StageSpec::Null]),
        (
            "rtcp_demux + null + drop_every 1000",
            vec![
                StageSpec::RtcpDemux,
                StageSpec::Null,
                StageSpec::DropEvery { n: 1000 },
            ],
        ),
    ];
    for (name, stages) in chains {
        let mut p = Pipeline::new(tx.clone());
        // Slots spread like a busy worker's: the flow is not the first.
        for slot in 0..512 {
            p.install(slot, PipelineFlow::new(&flow(stages.clone())));
        }
        let mut bufs = burst();
        let mut now = 0u64;
        g.bench_function(name, |b| {
            b.iter(|| {
                now += 20_000_000;
                for (i, buf) in bufs.iter_mut().enumerate() {
                    let mut payload = Payload::new(&mut buf[..], LEN);
                    black_box(p.process(now, (i * 7 % 512) as u32, None, &mut payload));
                }
            })
        });
    }
    let src = burst();
    g.bench_function("baseline: copy the payloads", |b| {
        b.iter_batched_ref(
            || vec![[0u8; 256]; BURST],
            |dst| {
                for (d, s) in dst.iter_mut().zip(&src) {
                    d[..LEN].copy_from_slice(black_box(&s[..LEN]));
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Null-stage flows against the same flows with a tap, each burst timed on
/// its own and the tap ring drained after it.
fn tap(c: &mut Criterion) {
    let mut g = c.benchmark_group("tap");
    g.throughput(Throughput::Elements(BURST as u64));
    let (tx, _rx) = crossbeam_channel::bounded(1024);
    let chains: [(&str, Vec<StageSpec>); 2] = [
        ("null stage, unrecorded", vec![StageSpec::Null]),
        (
            "null stage + tap, recorded",
            vec![StageSpec::Null, StageSpec::Tap { recording: 1 }],
        ),
    ];
    for (name, stages) in chains {
        let (tap, mut reader) = ring::ring(ring::RING_BYTES);
        let mut p = Pipeline::with_tap(tx.clone(), tap);
        for slot in 0..512 {
            p.install(slot, PipelineFlow::new(&flow(stages.clone())));
        }
        let mut bufs = burst();
        let mut scratch = vec![0u8; 64 << 10];
        let mut now = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    now += 20_000_000;
                    let t = Instant::now();
                    for (i, buf) in bufs.iter_mut().enumerate() {
                        let mut payload = Payload::new(&mut buf[..], LEN);
                        black_box(p.process(now, (i * 7 % 512) as u32, None, &mut payload));
                    }
                    spent += t.elapsed();
                    while reader.pop(&mut scratch).is_some() {}
                }
                spent
            })
        });
        assert_eq!(p.counters().tap_dropped, 0, "the ring never filled");
    }
    g.finish();
}

criterion_group!(benches, pipeline, tap);
criterion_main!(benches);
