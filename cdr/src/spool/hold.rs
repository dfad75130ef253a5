//! Records the spool could not write (its disk full, or failing), held in
//! memory in their order until a write succeeds again.
//!
//! The choice: calls must go on when the spool's disk fills, and a CDR
//! nobody can write must not vanish. So a record whose write fails is kept
//! here, its waiter is told it is held (the call's BYE or delete is
//! answered: the CDR is in this process's memory, not on disk, and a crash
//! meanwhile loses it, which the one error log says), and the writer tries
//! the held records again, oldest first and before anything newer, at most
//! every [`RETRY`] and whenever new records come. The hold is bounded by
//! bytes: once half of it is used the node refuses new calls (503 to an
//! INVITE, an error to an NG offer), keeping the other half for the CDRs
//! of calls already up, so nothing is dropped unless those overflow it too
//! (then each dropped record is logged whole, the last resort).

use super::writer::Append;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest the writer leaves held records untried.
pub const RETRY: Duration = Duration::from_millis(500);

/// What is held, and the counters the status reads from other threads.
#[derive(Debug, Default)]
pub(super) struct HoldGauge {
    pub records: AtomicU64,
    pub bytes: AtomicU64,
}

impl HoldGauge {
    /// True once half the hold is used: new calls are refused.
    pub fn refusing(&self, max: u64) -> bool {
        self.bytes.load(Ordering::Relaxed) * 2 >= max
    }
}

/// The writer's held records (only the writer thread touches them).
#[derive(Debug, Default)]
pub(super) struct Hold {
    appends: VecDeque<Append>,
    bytes: u64,
    /// When the held records were last tried.
    tried: Option<Instant>,
}

impl Hold {
    pub fn is_empty(&self) -> bool {
        self.appends.is_empty()
    }

    /// When the writer should try again, if anything is held.
    pub fn retry_at(&self) -> Option<Instant> {
        (!self.is_empty()).then(|| self.tried.map_or_else(Instant::now, |t| t + RETRY))
    }

    /// True when a try is due now.
    pub fn due(&self) -> bool {
        self.retry_at().is_some_and(|t| t <= Instant::now())
    }

    /// Holds `a` if it fits under `max` bytes (its waiter is told it is
    /// held); gives it back otherwise.
    pub fn keep(
        &mut self,
        mut a: Append,
        max: u64,
        gauge: &HoldGauge,
        why: &str,
    ) -> Result<(), Append> {
        let size = a.payload.len() as u64;
        if self.bytes + size > max {
            return Err(a);
        }
        let done = a.done.take();
        self.bytes += size;
        self.appends.push_back(a);
        self.publish(gauge);
        if let Some(done) = done {
            let _ = done.send(Err(super::SpoolError::Held(why.to_string())));
        }
        Ok(())
    }

    /// Every held record, oldest first, for a try; the hold is empty until
    /// [`Hold::put_back`].
    pub fn take_all(&mut self) -> Vec<Append> {
        self.tried = Some(Instant::now());
        self.bytes = 0;
        self.appends.drain(..).collect()
    }

    /// Puts back, in front of anything held since, records whose try failed.
    pub fn put_back(&mut self, failed: Vec<Append>, gauge: &HoldGauge) {
        self.bytes += failed.iter().map(|a| a.payload.len() as u64).sum::<u64>();
        for a in failed.into_iter().rev() {
            self.appends.push_front(a);
        }
        self.publish(gauge);
    }

    pub fn publish(&self, gauge: &HoldGauge) {
        gauge
            .records
            .store(self.appends.len() as u64, Ordering::Relaxed);
        gauge.bytes.store(self.bytes, Ordering::Relaxed);
    }
}
