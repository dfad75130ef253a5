//! The media pipeline: where packets of flows that carry stages are handled
//! in user space, on the same terms by every backend that has a worker
//! (socket, AF_XDP, DPDK).
//!
//! A [`Pipeline`] belongs to one worker thread. The backend's control thread
//! builds a [`PipelineFlow`] (which allocates its stages' state) and sends it
//! to the worker by message; the worker installs it in a slot and from then
//! on runs [`Pipeline::process`] on each packet of that flow and
//! [`Pipeline::tick`] for stages that originate packets. Neither allocates,
//! locks, logs or makes a syscall: events go out on a bounded channel
//! (counted when it is full) and counters are plain per-worker integers the
//! backend publishes to [`SharedCounters`] once per burst.
//!
//! The pipeline sees UDP payloads only; headers, routing and sending belong
//! to the backend, which acts on the [`Verdict`].

mod payload;
pub mod stages;
pub mod wheel;

pub use payload::{Payload, TooLong};
pub use stages::{Stage, StageSpec};

use crate::flow::Flow;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use wheel::{Timer, Wheel};

/// A pipeline flow's index in its worker, assigned by the backend.
pub type Slot = u32;

/// What the backend does with a packet once the stages have run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// On to the flow's destination.
    Forward,
    /// To the destination's port + 1, from the flow's source port + 1
    /// (RTCP towards a peer without rtcp-mux).
    ForwardRtcp,
    Drop(DropReason),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// A stage chose to drop the packet.
    Stage,
    /// An endpoint stage took the packet (it terminates the stream).
    Consumed,
    /// No flow is installed in the slot the packet was steered to.
    NoFlow,
}

/// Something a stage reports to the control plane.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// The flow's local address.
    pub local: SocketAddr,
    /// CLOCK_MONOTONIC ns of the packet or tick that caused it.
    pub at_ns: u64,
    pub kind: EventKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// `drop_every` dropped the flow's `packet`th packet, its `dropped`th drop.
    StageDrop { packet: u64, dropped: u64 },
    /// A transcrypt stage dropped its `count`th packet for `reason`
    /// (reported at counts 1, 2, 4, 8, ...: an attack cannot flood events).
    SrtpDrop {
        reason: stages::SrtpDropReason,
        count: u64,
    },
}

/// Where a worker's events go: a bounded channel the control thread drains.
pub type EventSink = crossbeam_channel::Sender<Event>;

/// A worker's pipeline counters, owned by the worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PipelineCounters {
    /// Packets handed to `process`.
    pub processed: u64,
    pub forwarded: u64,
    pub forwarded_rtcp: u64,
    pub dropped_stage: u64,
    pub consumed: u64,
    pub dropped_no_flow: u64,
    /// Packets originated by stages.
    pub originated: u64,
    /// Events lost because the control thread fell behind.
    pub events_lost: u64,
}

/// [`PipelineCounters`] readable from other threads: the worker stores, the
/// control thread loads; relaxed, as counters need no ordering.
#[derive(Debug, Default)]
pub struct SharedCounters([AtomicU64; 8]);

impl SharedCounters {
    pub fn store(&self, c: &PipelineCounters) {
        let v = [
            c.processed,
            c.forwarded,
            c.forwarded_rtcp,
            c.dropped_stage,
            c.consumed,
            c.dropped_no_flow,
            c.originated,
            c.events_lost,
        ];
        for (a, v) in self.0.iter().zip(v) {
            a.store(v, Ordering::Relaxed);
        }
    }

    pub fn load(&self) -> PipelineCounters {
        let v = |i: usize| self.0[i].load(Ordering::Relaxed);
        PipelineCounters {
            processed: v(0),
            forwarded: v(1),
            forwarded_rtcp: v(2),
            dropped_stage: v(3),
            consumed: v(4),
            dropped_no_flow: v(5),
            originated: v(6),
            events_lost: v(7),
        }
    }
}

/// What a stage may use while it handles a packet.
pub struct Cx<'a> {
    pub now_ns: u64,
    pub local: SocketAddr,
    events: &'a EventSink,
    lost: &'a mut u64,
}

impl Cx<'_> {
    /// Reports `kind` for this flow; never blocks (a full channel counts).
    pub fn report(&mut self, kind: EventKind) {
        let e = Event {
            local: self.local,
            at_ns: self.now_ns,
            kind,
        };
        if self.events.try_send(e).is_err() {
            *self.lost += 1;
        }
    }
}

/// A flow's stages with their state, built off the packet path.
#[derive(Debug)]
pub struct PipelineFlow {
    local: SocketAddr,
    specs: Vec<StageSpec>,
    stages: Vec<Stage>,
}

impl PipelineFlow {
    /// The stages `flow` asks for, fresh (the flow was validated).
    pub fn new(flow: &Flow) -> Self {
        let seed = seed_of(flow.local);
        PipelineFlow {
            local: flow.local,
            specs: flow.stages.clone(),
            stages: flow.stages.iter().map(|s| Stage::new(s, seed)).collect(),
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    /// Keeps the state of each stage `old` ran at the same position with the
    /// same parameters (a re-sent flow does not restart its streams).
    fn inherit(&mut self, old: PipelineFlow) {
        for (i, (stage, spec)) in old.stages.into_iter().zip(old.specs).enumerate() {
            if self.specs.get(i) == Some(&spec) {
                self.stages[i] = stage;
            }
        }
    }
}

/// A per-flow seed: distinct streams for distinct flows, stable per flow.
fn seed_of(local: SocketAddr) -> u32 {
    let ip = match local.ip() {
        std::net::IpAddr::V4(v4) => u32::from(v4),
        std::net::IpAddr::V6(v6) => v6.octets().chunks(4).fold(0u32, |h, c| {
            h.rotate_left(5) ^ u32::from_be_bytes([c[0], c[1], c[2], c[3]])
        }),
    };
    ip.rotate_left(16) ^ u32::from(local.port())
}

struct Installed {
    flow: PipelineFlow,
    generation: u32,
}

/// One worker's pipeline: its flows by slot, its timer wheel, its counters.
pub struct Pipeline {
    slots: Vec<Option<Installed>>,
    flows: usize,
    generation: u32,
    wheel: Wheel,
    /// Flows installed with originating stages not yet on the wheel (armed,
    /// due at once, at the next tick).
    fresh: Vec<(Slot, u32)>,
    events: EventSink,
    counters: PipelineCounters,
}

impl Pipeline {
    pub fn new(events: EventSink) -> Self {
        Pipeline {
            slots: Vec::new(),
            flows: 0,
            generation: 0,
            wheel: Wheel::default(),
            fresh: Vec::new(),
            events,
            counters: PipelineCounters::default(),
        }
    }

    /// Installs `flow` in `slot`, replacing (and inheriting unchanged stage
    /// state from) what was there. Runs between bursts, never per packet.
    pub fn install(&mut self, slot: Slot, mut flow: PipelineFlow) {
        let i = slot as usize;
        if self.slots.len() <= i {
            self.slots.resize_with(i + 1, || None);
        }
        match self.slots[i].take() {
            Some(old) => flow.inherit(old.flow),
            None => self.flows += 1,
        }
        self.generation = self.generation.wrapping_add(1);
        if flow.stages.iter().any(|s| s.interval_ns().is_some()) {
            self.fresh.push((slot, self.generation));
        }
        self.slots[i] = Some(Installed {
            flow,
            generation: self.generation,
        });
    }

    pub fn remove(&mut self, slot: Slot) -> Option<PipelineFlow> {
        let gone = self.slots.get_mut(slot as usize)?.take()?;
        self.flows -= 1;
        Some(gone.flow)
    }

    pub fn has(&self, slot: Slot) -> bool {
        self.installed(slot).is_some()
    }

    fn installed(&self, slot: Slot) -> Option<&Installed> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// Runs the slot's stages in order over one payload. `Forward` goes on to
    /// the next stage, `ForwardRtcp` too (and sticks), a drop ends the chain.
    pub fn process(&mut self, now_ns: u64, slot: Slot, payload: &mut Payload) -> Verdict {
        self.counters.processed += 1;
        let Some(entry) = self.slots.get_mut(slot as usize).and_then(Option::as_mut) else {
            self.counters.dropped_no_flow += 1;
            return Verdict::Drop(DropReason::NoFlow);
        };
        let mut cx = Cx {
            now_ns,
            local: entry.flow.local,
            events: &self.events,
            lost: &mut self.counters.events_lost,
        };
        let mut verdict = Verdict::Forward;
        for stage in &mut entry.flow.stages {
            match stage.process(&mut cx, payload) {
                Verdict::Forward => {}
                Verdict::ForwardRtcp => verdict = Verdict::ForwardRtcp,
                drop @ Verdict::Drop(_) => {
                    verdict = drop;
                    break;
                }
            }
        }
        match verdict {
            Verdict::Forward => self.counters.forwarded += 1,
            Verdict::ForwardRtcp => self.counters.forwarded_rtcp += 1,
            Verdict::Drop(DropReason::Consumed) => self.counters.consumed += 1,
            Verdict::Drop(_) => self.counters.dropped_stage += 1,
        }
        verdict
    }

    /// Originates every datagram due by `now_ns`: each is written into `buf`
    /// and passed to `emit` with its flow's slot, to go to the destination.
    pub fn tick(&mut self, now_ns: u64, buf: &mut [u8], mut emit: impl FnMut(Slot, &Payload)) {
        self.arm_new(now_ns);
        let slots = &mut self.slots;
        let originated = &mut self.counters.originated;
        self.wheel.expire(now_ns, |t, wheel| {
            let Some(entry) = slots.get_mut(t.slot as usize).and_then(Option::as_mut) else {
                return;
            };
            if entry.generation != t.generation {
                return;
            }
            let Some(stage) = entry.flow.stages.get_mut(t.stage as usize) else {
                return;
            };
            let Some(interval) = stage.interval_ns() else {
                return;
            };
            if let Some(len) = stage.originate(buf) {
                *originated += 1;
                emit(t.slot, &Payload::new(buf, len));
            }
            // A worker stalled for several intervals resumes at `now`
            // rather than bursting out everything it missed.
            let next = t.due_ns + interval;
            let due_ns = if next + 3 * interval < now_ns {
                now_ns + interval
            } else {
                next
            };
            wheel.arm(Timer { due_ns, ..t });
        });
    }

    /// Puts newly installed originating stages on the wheel, due now.
    fn arm_new(&mut self, now_ns: u64) {
        for (slot, generation) in self.fresh.drain(..) {
            let Some(e) = self.slots[slot as usize]
                .as_ref()
                .filter(|e| e.generation == generation)
            else {
                continue;
            };
            for (i, s) in e.flow.stages.iter().enumerate() {
                if s.interval_ns().is_some() {
                    self.wheel.arm(Timer {
                        slot,
                        generation,
                        stage: i as u8,
                        due_ns: now_ns,
                    });
                }
            }
        }
    }

    /// When the next originated packet is due (ns), for a worker that sleeps.
    pub fn next_deadline(&self) -> Option<u64> {
        if !self.fresh.is_empty() {
            return Some(0);
        }
        self.wheel.next_deadline()
    }

    pub fn counters(&self) -> &PipelineCounters {
        &self.counters
    }

    /// Flows installed.
    pub fn flows(&self) -> usize {
        self.flows
    }
}

#[cfg(test)]
mod tests;
