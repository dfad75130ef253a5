//! [`RtpOut`]: the RTP stream an originating stage writes (silence, tones,
//! prompts, RFC 4733 digits): one SSRC, continuous sequence numbers and
//! timestamps, and the marker bit on the first packet of a talkspurt.

use std::sync::atomic::{AtomicU32, Ordering};

/// RTP fixed header length.
pub const HEADER: usize = 12;

/// Streams started in this process: mixed into each new stream's SSRC so a
/// stage replaced on the same flow starts a distinct stream, not the old
/// stream's sequence numbers again.
static STREAMS: AtomicU32 = AtomicU32::new(0);

#[derive(Debug)]
pub struct RtpOut {
    payload_type: u8,
    ssrc: u32,
    sequence: u16,
    timestamp: u32,
}

impl RtpOut {
    /// A stream whose SSRC and starting sequence/timestamp come from the
    /// flow's `seed` and the process's stream count (built off the packet path).
    pub fn new(payload_type: u8, seed: u32) -> Self {
        let n = STREAMS.fetch_add(1, Ordering::Relaxed);
        RtpOut::seeded(payload_type, seed ^ n.wrapping_mul(0x85eb_ca6b))
    }

    /// A stream fixed by `seed` alone (the same seed, the same stream).
    pub fn seeded(payload_type: u8, seed: u32) -> Self {
        let mixed = seed.wrapping_mul(0x9e37_79b9).rotate_left(13) ^ 0x5bd1_e995;
        RtpOut {
            payload_type,
            ssrc: mixed,
            sequence: (mixed >> 16) as u16,
            timestamp: mixed.rotate_left(7),
        }
    }

    /// Writes the next header into `out[..HEADER]` with the current
    /// timestamp and moves the sequence on; the caller advances time.
    pub fn header(&mut self, out: &mut [u8], marker: bool) {
        out[0] = 0x80;
        out[1] = self.payload_type | if marker { 0x80 } else { 0 };
        out[2..4].copy_from_slice(&self.sequence.to_be_bytes());
        out[4..8].copy_from_slice(&self.timestamp.to_be_bytes());
        out[8..12].copy_from_slice(&self.ssrc.to_be_bytes());
        self.sequence = self.sequence.wrapping_add(1);
    }

    /// Moves the timestamp on by `samples` (one packet's worth, sent or not).
    pub fn advance(&mut self, samples: u32) {
        self.timestamp = self.timestamp.wrapping_add(samples);
    }
}
