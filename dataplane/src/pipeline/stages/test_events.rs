//! For stage unit tests: a [`Cx`] whose reports are kept to read back.

use crate::pipeline::{Cx, Event, EventKind, PipelineCounters};
use crate::recorder::ring::{ring, RingReader};
use crate::recorder::TapRing;

pub struct Events {
    tx: crossbeam_channel::Sender<Event>,
    rx: crossbeam_channel::Receiver<Event>,
    tap: TapRing,
    _reader: RingReader,
    counters: PipelineCounters,
}

impl Events {
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(64);
        let (tap, _reader) = ring(4096);
        Events {
            tx,
            rx,
            tap,
            _reader,
            counters: PipelineCounters::default(),
        }
    }

    pub fn cx(&mut self) -> Cx<'_> {
        Cx::for_test(&self.tx, &mut self.tap, &mut self.counters)
    }

    /// What was reported since the last call.
    pub fn kinds(&self) -> Vec<EventKind> {
        self.rx.try_iter().map(|e| e.kind).collect()
    }
}
