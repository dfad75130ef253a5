//! `drop_every`: drops every nth packet of a flow and reports each drop. It
//! exists to prove the stage contract end to end (a verdict other than
//! forward, and an event reaching the control socket).

use crate::pipeline::{Cx, DropReason, EventKind, Payload, Verdict};

#[derive(Debug)]
pub struct DropEvery {
    n: u32,
    seen: u64,
    dropped: u64,
}

impl DropEvery {
    pub fn new(n: u32) -> Self {
        DropEvery {
            n: n.max(1),
            seen: 0,
            dropped: 0,
        }
    }

    pub fn process(&mut self, cx: &mut Cx, _p: &mut Payload) -> Verdict {
        self.seen += 1;
        if !self.seen.is_multiple_of(u64::from(self.n)) {
            return Verdict::Forward;
        }
        self.dropped += 1;
        cx.report(EventKind::StageDrop {
            packet: self.seen,
            dropped: self.dropped,
        });
        Verdict::Drop(DropReason::Stage)
    }
}
