//! The per-worker timer wheel that drives originating stages (prompt
//! players, tone and silence generators): one wheel per worker with 20 ms
//! buckets, no thread and no timer per call. An entry names a flow slot, the
//! stage and the flow's generation (a slot reused by a new flow does not
//! inherit the old flow's timers).
//!
//! Buckets keep their capacity between laps and expiry swaps through one
//! scratch vector, so a steady set of streams allocates nothing per tick.

/// The wheel's granularity.
pub const TICK_MS: u32 = 20;
const TICK_NS: u64 = TICK_MS as u64 * 1_000_000;
/// 64 buckets of 20 ms: 1.28 s ahead, beyond any ptime.
const BUCKETS: usize = 64;

/// A timer: when `stage` of the flow in `slot` (at `generation`) is due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timer {
    pub slot: u32,
    pub generation: u32,
    pub stage: u8,
    pub due_ns: u64,
}

#[derive(Debug)]
pub struct Wheel {
    buckets: Vec<Vec<Timer>>,
    scratch: Vec<Timer>,
    /// The last tick expired (ns / TICK_NS), None before the first expiry.
    last: Option<u64>,
    len: usize,
}

impl Default for Wheel {
    fn default() -> Self {
        Wheel {
            buckets: (0..BUCKETS).map(|_| Vec::new()).collect(),
            scratch: Vec::new(),
            last: None,
            len: 0,
        }
    }
}

impl Wheel {
    /// Arms `t`. A timer already due fires at the next expiry.
    pub fn arm(&mut self, t: Timer) {
        let tick = (t.due_ns / TICK_NS).max(self.last.map_or(0, |l| l + 1));
        self.buckets[(tick % BUCKETS as u64) as usize].push(t);
        self.len += 1;
    }

    /// Calls `fire` for every timer due by `now_ns`, in due order per bucket;
    /// a timer re-armed from `fire` that is due again by `now_ns` (a worker
    /// that fell behind) fires again within this call.
    pub fn expire(&mut self, now_ns: u64, mut fire: impl FnMut(Timer, &mut Wheel)) {
        let now_tick = now_ns / TICK_NS;
        // Each bucket needs one visit however long the worker slept.
        let from = self
            .last
            .map_or(now_tick, |l| l + 1)
            .max(now_tick.saturating_sub(BUCKETS as u64 - 1));
        for tick in from..=now_tick {
            self.last = Some(tick);
            let b = (tick % BUCKETS as u64) as usize;
            std::mem::swap(&mut self.buckets[b], &mut self.scratch);
            let mut due = std::mem::take(&mut self.scratch);
            for t in due.drain(..) {
                if t.due_ns / TICK_NS > tick {
                    // Armed a lap or more ahead: not yet.
                    self.buckets[b].push(t);
                    continue;
                }
                self.len -= 1;
                fire(t, self);
            }
            self.scratch = due;
        }
    }

    /// The earliest tick boundary at which a timer may be due.
    pub fn next_deadline(&self) -> Option<u64> {
        if self.len == 0 {
            return None;
        }
        let next = self.last.map_or(0, |l| l + 1);
        (next..next + BUCKETS as u64)
            .find(|t| !self.buckets[(t % BUCKETS as u64) as usize].is_empty())
            .map(|t| t * TICK_NS)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timer(slot: u32, due_ms: u64) -> Timer {
        Timer {
            slot,
            generation: 0,
            stage: 0,
            due_ns: due_ms * 1_000_000,
        }
    }

    #[test]
    fn fires_each_timer_once_when_due_and_rearms() {
        let mut w = Wheel::default();
        w.expire(0, |_, _| unreachable!());
        w.arm(timer(1, 20));
        w.arm(timer(2, 40));
        let mut fired = Vec::new();
        w.expire(19_000_000, |t, _| fired.push(t.slot));
        assert!(fired.is_empty());
        assert_eq!(w.next_deadline(), Some(20_000_000));
        w.expire(20_000_000, |t, _| fired.push(t.slot));
        assert_eq!(fired, vec![1]);
        w.expire(45_000_000, |t, w| {
            fired.push(t.slot);
            w.arm(Timer {
                due_ns: t.due_ns + 20_000_000,
                ..t
            });
        });
        assert_eq!(fired, vec![1, 2]);
        assert_eq!(w.len(), 1);
        assert_eq!(w.next_deadline(), Some(60_000_000));
    }

    #[test]
    fn a_late_worker_catches_up_within_one_call() {
        let mut w = Wheel::default();
        w.expire(0, |_, _| {});
        w.arm(timer(1, 20));
        let mut n = 0;
        w.expire(100_000_000, |t, w| {
            n += 1;
            w.arm(Timer {
                due_ns: t.due_ns + 20_000_000,
                ..t
            });
        });
        assert_eq!(n, 5, "due at 20, 40, 60, 80 and 100 ms");
    }

    #[test]
    fn timers_beyond_a_lap_wait_their_turn() {
        let mut w = Wheel::default();
        w.expire(0, |_, _| {});
        w.arm(timer(1, 20 + 64 * 20));
        let mut n = 0;
        w.expire(30_000_000, |_, _| n += 1);
        assert_eq!(n, 0);
        w.expire((20 + 64 * 20) * 1_000_000, |_, _| n += 1);
        assert_eq!(n, 1);
    }
}
