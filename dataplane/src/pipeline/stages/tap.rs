//! `tap`: records the flow. Each packet is copied, as received (after
//! RTCP demux and SRTP decryption, before anything rewrites it: see
//! [`super::Place`]), into the worker's tap ring for the recorder thread,
//! and goes on untouched. A full ring drops the copy, never the packet
//! (counted `tap_dropped`).

use crate::pipeline::{Cx, Payload, Verdict};

#[derive(Debug)]
pub struct Tap {
    recording: u32,
}

impl Tap {
    pub fn new(recording: u32) -> Self {
        Tap { recording }
    }

    pub fn process(&mut self, cx: &mut Cx, p: &mut Payload) -> Verdict {
        cx.tap(self.recording, p.bytes());
        Verdict::Forward
    }
}
