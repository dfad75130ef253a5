//! Per-SSRC packet indices: the 48-bit SRTP index guessed from a 16-bit
//! sequence number and the rollover counter (RFC 3711 section 3.3.1 and
//! appendix A), and a 128-packet replay window over SRTP indices or
//! SRTCP's 31-bit ones. A packet is checked before it is authenticated and
//! recorded only after, so forged packets cannot move the window.

use super::Error;

/// Packets behind the highest one still accepted once.
const WINDOW: u64 = 128;

/// One SSRC's received (or sent) indices.
#[derive(Debug, Clone, Copy, Default)]
pub struct Window {
    /// Whether any packet has been recorded.
    started: bool,
    /// The highest index recorded.
    highest: u64,
    /// Bit i: `highest - i` was recorded.
    seen: u128,
}

impl Window {
    /// The SRTP index of `seq`: the one nearest the highest seen (its ROC
    /// one less, the same or one more).
    pub fn rtp_index(&self, seq: u16) -> u64 {
        if !self.started {
            return u64::from(seq);
        }
        let roc = self.highest >> 16;
        let s_l = self.highest as u16;
        let guess = if s_l < 0x8000 {
            if seq > s_l && seq - s_l > 0x8000 && roc > 0 {
                roc - 1
            } else {
                roc
            }
        } else if s_l - 0x8000 > seq {
            roc + 1
        } else {
            roc
        };
        (guess << 16) | u64::from(seq)
    }

    /// Whether `index` may still be accepted.
    pub fn check(&self, index: u64) -> Result<(), Error> {
        if !self.started || index > self.highest {
            return Ok(());
        }
        let behind = self.highest - index;
        if behind >= WINDOW {
            Err(Error::TooOld)
        } else if self.seen >> behind & 1 == 1 {
            Err(Error::Replayed)
        } else {
            Ok(())
        }
    }

    /// Records `index` as received (it passed `check` and authentication).
    pub fn record(&mut self, index: u64) {
        if !self.started {
            *self = Window {
                started: true,
                highest: index,
                seen: 1,
            };
        } else if index > self.highest {
            let ahead = index - self.highest;
            self.seen = if ahead >= WINDOW {
                0
            } else {
                self.seen << ahead
            } | 1;
            self.highest = index;
        } else {
            self.seen |= 1 << (self.highest - index);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_follows_the_sequence_across_a_wrap_and_back() {
        let mut w = Window::default();
        for seq in [65530u16, 65533, 65535] {
            let i = w.rtp_index(seq);
            w.record(i);
        }
        assert_eq!(w.rtp_index(2), (1 << 16) | 2, "past the wrap: ROC 1");
        w.record(w.rtp_index(2));
        assert_eq!(
            w.rtp_index(65534),
            65534,
            "a late packet from before the wrap keeps ROC 0"
        );
        assert_eq!(w.rtp_index(3), (1 << 16) | 3);
        let mut w = Window::default();
        w.record(w.rtp_index(10));
        assert_eq!(w.rtp_index(65000), 65000, "ROC never goes below 0");
    }

    #[test]
    fn replays_and_packets_older_than_the_window_are_refused() {
        let mut w = Window::default();
        for i in [100u64, 102, 101, 300] {
            w.check(i).unwrap();
            w.record(i);
        }
        assert_eq!(w.check(300), Err(Error::Replayed));
        assert_eq!(w.check(172), Err(Error::TooOld), "128 behind");
        assert_eq!(w.check(173), Ok(()), "127 behind, never seen");
        w.record(173);
        assert_eq!(w.check(173), Err(Error::Replayed));
        assert_eq!(w.check(301), Ok(()));
    }
}
