//! How many IVR media flows one worker core carries: each flow plays a
//! cached prompt (PCMU, 20 ms packets, looping) and listens for RFC 4733
//! DTMF on the caller's stream, one received packet per flow per tick, a
//! digit now and then. The pipeline runs on virtual time, tick after tick
//! as a worker would, and each tick's wall time is measured: the received
//! packets through `process`, then `tick` originating every flow's packet.
//!
//! A tick's time is how late its last originated packet leaves after its
//! first, so its p99 bounds the pacing jitter the worker adds (the kernel
//! or NIC send that follows is not in it), and tick time over 20 ms is the
//! core's busy share. `cargo bench -p tollgate-dataplane --bench ivr_media`.

use std::time::Instant;
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::stages::AfterPrompt;
use tollgate_dataplane::pipeline::{Payload, Pipeline, PipelineFlow, StageSpec};
use tollgate_dataplane::prompt;

/// Ticks measured per run: 10 s of media.
const TICKS: u64 = 500;
const TICK_NS: u64 = 20_000_000;

fn flow(i: u32) -> Flow {
    let local = format!(
        "10.0.{}.{}:{}",
        i / 250,
        i % 250 + 1,
        30_000 + 2 * (i % 10_000)
    );
    Flow {
        stages: vec![
            StageSpec::DtmfDetect {
                payload_type: 101,
                consume: true,
            },
            StageSpec::Prompt {
                prompt: 1,
                payload_type: 0,
                ptime_ms: 20,
                repeat: 0,
                then: AfterPrompt::Stop,
                consume: true,
            },
        ],
        ..Flow::relay(
            local.parse().unwrap(),
            "10.9.0.1:40000".parse().unwrap(),
            "10.9.0.2:4000".parse().unwrap(),
        )
    }
}

/// The caller's packet of flow `i` at tick `t`: audio, or (one tick in 50,
/// staggered by flow) a telephone-event packet, its end on the fifth.
fn received(buf: &mut [u8; 256], i: u32, t: u64) -> usize {
    let ts = (t as u32).wrapping_mul(160);
    buf[..12].copy_from_slice(&[0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7]);
    buf[2..4].copy_from_slice(&(t as u16).to_be_bytes());
    let phase = (t + u64::from(i)) % 50;
    if phase < 5 {
        buf[1] = 101;
        let start = ts.wrapping_sub(phase as u32 * 160);
        buf[4..8].copy_from_slice(&start.to_be_bytes());
        let end = if phase == 4 { 0x80 } else { 0 };
        let dur = ((phase as u16) + 1) * 160;
        buf[12..16].copy_from_slice(&[5, end | 10, (dur >> 8) as u8, dur as u8]);
        16
    } else {
        buf[4..8].copy_from_slice(&ts.to_be_bytes());
        buf[12..172].fill(0xff);
        172
    }
}

fn run(flows: u32) -> (Vec<u64>, u64, u64) {
    let (tx, rx) = crossbeam_channel::bounded(1 << 16);
    let mut p = Pipeline::new(tx);
    for i in 0..flows {
        p.install(i, PipelineFlow::new(&flow(i)));
    }
    let mut rbuf = [0u8; 256];
    let mut obuf = [0u8; 2048];
    let mut times = Vec::with_capacity(TICKS as usize);
    let (mut sent, mut digits) = (0u64, 0u64);
    for t in 1..=TICKS {
        let now = t * TICK_NS;
        let start = Instant::now();
        for i in 0..flows {
            let len = received(&mut rbuf, i, t);
            p.process(now, i, None, &mut Payload::new(&mut rbuf, len));
        }
        p.tick(now, &mut obuf, |_, _| sent += 1);
        times.push(start.elapsed().as_nanos() as u64);
        digits += rx.try_iter().count() as u64;
    }
    times.sort_unstable();
    (times, sent, digits)
}

fn main() {
    // A 3 s prompt of a 1 kHz tone.
    let pcm: Vec<i16> = (0..24_000)
        .map(|i| (8000.0 * (i as f64 * std::f64::consts::PI / 4.0).sin()) as i16)
        .collect();
    prompt::insert(1, &pcm);
    println!("flows  packets out  digits  tick p50 us  tick p99 us  tick max us  busy p99 %");
    for flows in [500, 2000, 5000] {
        let (times, sent, digits) = run(flows);
        let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize] as f64 / 1000.0;
        assert_eq!(
            sent,
            u64::from(flows) * TICKS,
            "every flow's packet each tick"
        );
        assert_eq!(
            digits,
            u64::from(flows) * TICKS / 50,
            "one digit per flow per second"
        );
        println!(
            "{flows:>5}  {sent:>11}  {digits:>6}  {:>11.1}  {:>11.1}  {:>11.1}  {:>10.1}",
            at(0.5),
            at(0.99),
            at(1.0),
            at(0.99) / 200.0
        );
    }
}
