//! For stage unit tests: a [`Cx`] whose reports are kept to read back.

use crate::pipeline::{Cx, Event, EventKind};

pub struct Events {
    tx: crossbeam_channel::Sender<Event>,
    rx: crossbeam_channel::Receiver<Event>,
    lost: u64,
}

impl Events {
    pub fn new() -> Self {
        let (tx, rx) = crossbeam_channel::bounded(64);
        Events { tx, rx, lost: 0 }
    }

    pub fn cx(&mut self) -> Cx<'_> {
        Cx {
            now_ns: 0,
            local: "127.0.0.1:1".parse().expect("an address"),
            events: &self.tx,
            lost: &mut self.lost,
        }
    }

    /// What was reported since the last call.
    pub fn kinds(&self) -> Vec<EventKind> {
        self.rx.try_iter().map(|e| e.kind).collect()
    }
}
