//! Per-flow RTP receive quality: sequence loss, interarrival jitter and SSRC
//! changes, following RFC 3550 appendix A.1 (sequence tracking) and A.8
//! (jitter). A plain state machine: feed it each packet's header fields and
//! arrival time; read [`Quality`] whenever.

/// What the tracker has measured so far for the current SSRC (loss and
/// expected count) and over the flow's life (SSRC changes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quality {
    pub ssrc: u32,
    /// RTP packets received for the current SSRC.
    pub received: u64,
    /// Packets expected from the sequence numbers seen for the current SSRC.
    pub expected: u64,
    /// `expected - received`, never below zero (duplicates can exceed it).
    pub lost: u64,
    /// Interarrival jitter in RTP timestamp units (RFC 3550 A.8).
    pub jitter: u32,
    /// How many times the SSRC changed after the first one.
    pub ssrc_changes: u32,
}

impl Quality {
    /// Jitter in microseconds for a clock of `clock_rate` Hz.
    pub fn jitter_us(&self, clock_rate: u32) -> u64 {
        if clock_rate == 0 {
            return 0;
        }
        self.jitter as u64 * 1_000_000 / clock_rate as u64
    }
}

/// Sequence and jitter tracking for one flow.
#[derive(Debug, Clone)]
pub struct RtpTracker {
    clock_rate: u64,
    started: bool,
    q: Quality,
    base_seq: u32,
    max_seq: u16,
    cycles: u32,
    /// Previous transit time in RTP units, and jitter scaled by 16 (A.8).
    transit: i64,
    jitter16: u64,
}

/// A jump of more than this many sequence numbers is a restart, not loss.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;

impl RtpTracker {
    pub fn new(clock_rate: u32) -> Self {
        RtpTracker {
            clock_rate: clock_rate.max(1) as u64,
            started: false,
            q: Quality::default(),
            base_seq: 0,
            max_seq: 0,
            cycles: 0,
            transit: 0,
            jitter16: 0,
        }
    }

    /// Accounts one packet that arrived at `now_ns` (any monotonic clock).
    pub fn on_packet(&mut self, now_ns: u64, ssrc: u32, seq: u16, timestamp: u32) {
        if !self.started || ssrc != self.q.ssrc {
            if self.started {
                self.q.ssrc_changes += 1;
            }
            self.restart(ssrc, seq);
        } else {
            let delta = seq.wrapping_sub(self.max_seq);
            if delta != 0 && delta < MAX_DROPOUT {
                if seq < self.max_seq {
                    self.cycles += 1 << 16;
                }
                self.max_seq = seq;
            } else if delta != 0 && delta <= u16::MAX - MAX_MISORDER {
                // A large jump: the sender restarted its sequence. Start over.
                self.restart(ssrc, seq);
            }
            // else: duplicate or reordered packet; counted as received only.
        }
        self.q.received += 1;
        let ext_max = self.cycles as u64 + self.max_seq as u64;
        self.q.expected = ext_max + 1 - self.base_seq as u64;
        self.q.lost = self.q.expected.saturating_sub(self.q.received);

        // A.8: transit = arrival (in RTP units) - timestamp; J += (|D| - J) / 16.
        let arrival = (now_ns as u128 * self.clock_rate as u128 / 1_000_000_000) as i64;
        let transit = arrival - timestamp as i64;
        if self.q.received > 1 {
            let d = (transit - self.transit).unsigned_abs();
            // Wrapping timestamps give absurd differences; ignore those samples.
            if d < 1 << 31 {
                self.jitter16 = self.jitter16 + d - ((self.jitter16 + 8) >> 4);
            }
        }
        self.transit = transit;
        self.q.jitter = (self.jitter16 >> 4) as u32;
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        self.started = true;
        self.q = Quality {
            ssrc,
            ssrc_changes: self.q.ssrc_changes,
            ..Quality::default()
        };
        self.base_seq = seq as u32;
        self.max_seq = seq;
        self.cycles = 0;
        self.jitter16 = 0;
    }

    pub fn quality(&self) -> Quality {
        self.q
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    #[test]
    fn steady_stream_has_no_loss_and_no_jitter() {
        let mut t = RtpTracker::new(8000);
        for i in 0..500u32 {
            t.on_packet(
                i as u64 * 20 * MS,
                7,
                65000u16.wrapping_add(i as u16),
                1000 + i * 160,
            );
        }
        let q = t.quality();
        assert_eq!(
            (q.received, q.expected, q.lost, q.jitter, q.ssrc_changes),
            (500, 500, 0, 0, 0)
        );
    }

    #[test]
    fn counts_gaps_across_wrap() {
        let mut t = RtpTracker::new(8000);
        for (i, seq) in [65533u16, 65534, 1, 2, 3].iter().enumerate() {
            t.on_packet(i as u64 * 20 * MS, 1, *seq, i as u32 * 160);
        }
        let q = t.quality();
        // 65533..=3 is 7 numbers; 5 arrived.
        assert_eq!((q.expected, q.received, q.lost), (7, 5, 2));
    }

    #[test]
    fn jitter_follows_rfc3550_estimator() {
        let mut t = RtpTracker::new(8000);
        // Alternate arrivals 10 ms early/late: |D| = 20 ms = 160 units each time.
        let mut j = 0f64;
        for i in 0..200u32 {
            let off = if i % 2 == 0 { 0 } else { 20 * MS };
            t.on_packet(i as u64 * 40 * MS + off, 1, i as u16, i * 320);
            if i > 0 {
                j += (160.0 - j) / 16.0;
            }
        }
        let got = t.quality().jitter as f64;
        assert!((got - j).abs() <= 1.0, "jitter {got}, estimator {j}");
        assert_eq!(t.quality().jitter_us(8000), t.quality().jitter as u64 * 125);
    }

    #[test]
    fn ssrc_change_restarts_counts() {
        let mut t = RtpTracker::new(8000);
        for i in 0..10u16 {
            t.on_packet(i as u64 * 20 * MS, 1, i, i as u32 * 160);
        }
        for i in 0..5u16 {
            t.on_packet((10 + i) as u64 * 20 * MS, 2, 5000 + i, i as u32 * 160);
        }
        let q = t.quality();
        assert_eq!((q.ssrc, q.received, q.lost, q.ssrc_changes), (2, 5, 0, 1));
    }

    #[test]
    fn duplicates_and_reorder_are_not_loss() {
        let mut t = RtpTracker::new(8000);
        for (i, seq) in [1u16, 2, 4, 3, 4, 5].iter().enumerate() {
            t.on_packet(i as u64 * 20 * MS, 1, *seq, *seq as u32 * 160);
        }
        let q = t.quality();
        assert_eq!((q.expected, q.lost), (5, 0));
    }
}
