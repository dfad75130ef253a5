//! The one time type the control-plane cores take: every input carries a
//! [`Now`], the monotonic instant (for timers) and the wall-clock time (for
//! CDRs, digest nonces and shared registrations) of the same moment.
//!
//! Only the adapters read the clocks ([`Now::real`]); tests start from
//! [`Now::virtual_start`] and move time on themselves.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    pub mono: Instant,
    pub wall: SystemTime,
}

impl Now {
    /// The clocks as they are: for adapters only.
    pub fn real() -> Now {
        Now {
            mono: Instant::now(),
            wall: SystemTime::now(),
        }
    }

    /// A virtual origin for tests: the wall clock reads 2023-11-14
    /// 22:13:20 UTC (Unix 1,700,000,000 s); the monotonic origin is
    /// arbitrary, only differences from it matter.
    pub fn virtual_start() -> Now {
        Now {
            mono: Instant::now(),
            wall: UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        }
    }

    /// This moment `d` later, on both clocks.
    pub fn after(self, d: Duration) -> Now {
        Now {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }

    /// The moment whose monotonic instant is `mono` (a timer's deadline),
    /// the wall clock moved by the same amount; never earlier than self.
    pub fn at(self, mono: Instant) -> Now {
        self.after(mono.saturating_duration_since(self.mono))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_clocks_move_together() {
        let t0 = Now::virtual_start();
        let t1 = t0.after(Duration::from_millis(1500));
        assert_eq!(t1.mono - t0.mono, Duration::from_millis(1500));
        assert_eq!(
            t1.wall.duration_since(t0.wall).unwrap(),
            Duration::from_millis(1500)
        );
        let t2 = t1.at(t0.mono + Duration::from_secs(4));
        assert_eq!(t2, t0.after(Duration::from_secs(4)));
        assert_eq!(t2.at(t0.mono), t2, "a deadline already passed: no change");
    }
}
