//! The hand-over between the spool's appenders and its writer thread.
//!
//! An append someone waits on (a CDR) wakes the writer; a lazy one (a call
//! event nothing is acknowledged on) only joins the queue, and is taken with
//! the next awaited append or once it has waited `lazy_bound` (the writer
//! passes [`super::LAZY_WRITE`]: a process killed meanwhile loses at most
//! that much of call events, never a CDR). Records keep
//! the order they were queued in, so a call's events still precede its CDR,
//! and a call costs the writer one wakeup instead of one per record. (A
//! channel would wake the writer for every record; this is a `Mutex` and a
//! `Condvar` because what wakes is decided per record.)

use super::writer::Append;
use std::collections::VecDeque;
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

#[derive(Default)]
struct State {
    appends: VecDeque<Append>,
    /// Queued appends someone waits on.
    awaited: usize,
    /// When the oldest queued lazy append was queued.
    oldest_lazy: Option<Instant>,
    /// The writer waits with no deadline: a first lazy append must wake it
    /// to start the wait for its bound.
    writer_idle: bool,
    closed: bool,
}

#[derive(Default)]
pub(super) struct Queue {
    state: Mutex<State>,
    ready: Condvar,
}

/// What [`Queue::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Taken {
    /// Appends were moved into the caller's group.
    Group,
    /// `until` passed with nothing due.
    TimedOut,
    /// The spool closed and the queue is empty.
    Closed,
}

impl Queue {
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `a`, waking the writer if `a` is awaited; gives it back if
    /// the spool is closed.
    pub fn push(&self, a: Append) -> Result<(), Append> {
        let mut s = self.state();
        if s.closed {
            return Err(a);
        }
        let awaited = a.awaited();
        let wake = if awaited {
            s.awaited += 1;
            true
        } else {
            let first = s.oldest_lazy.is_none();
            s.oldest_lazy.get_or_insert_with(Instant::now);
            first && s.writer_idle
        };
        s.appends.push_back(a);
        drop(s);
        if wake {
            self.ready.notify_one();
        }
        Ok(())
    }

    /// No more appends; the writer takes what is queued, then stops.
    pub fn close(&self) {
        self.state().closed = true;
        self.ready.notify_one();
    }

    /// Waits until an awaited append is queued, a lazy one has waited
    /// `lazy_bound`, the spool closed, or `until`; then moves up to `max`
    /// queued appends, oldest first, into `group`.
    pub fn take(
        &self,
        group: &mut Vec<Append>,
        max: usize,
        lazy_bound: Duration,
        until: Option<Instant>,
    ) -> Taken {
        let mut s = self.state();
        loop {
            let lazy_due = s.oldest_lazy.map(|t| t + lazy_bound);
            let now = Instant::now();
            if s.awaited > 0 || s.closed || lazy_due.is_some_and(|t| t <= now) {
                break;
            }
            let wake_at = [lazy_due, until].into_iter().flatten().min();
            match wake_at {
                Some(t) if t <= now => return Taken::TimedOut,
                Some(t) => {
                    s = match self.ready.wait_timeout(s, t - now) {
                        Ok((s, _)) => s,
                        Err(p) => p.into_inner().0,
                    }
                }
                None => {
                    s.writer_idle = true;
                    s = self.ready.wait(s).unwrap_or_else(|p| p.into_inner());
                    s.writer_idle = false;
                }
            }
        }
        if s.appends.is_empty() {
            return Taken::Closed;
        }
        let n = s.appends.len().min(max);
        let s = &mut *s;
        for a in s.appends.drain(..n) {
            s.awaited -= usize::from(a.awaited());
            group.push(a);
        }
        if s.appends.iter().all(Append::awaited) {
            s.oldest_lazy = None;
        }
        Taken::Group
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn append(awaited: bool, byte: u8) -> Append {
        Append {
            payload: vec![byte],
            done: awaited.then(|| oneshot::channel().0),
        }
    }

    fn payloads(g: &[Append]) -> Vec<u8> {
        g.iter().map(|a| a.payload[0]).collect()
    }

    #[test]
    fn lazy_appends_wait_for_an_awaited_one_and_keep_their_order() {
        let q = Queue::default();
        q.push(append(false, 1)).unwrap();
        q.push(append(false, 2)).unwrap();
        let mut g = Vec::new();
        let soon = Some(Instant::now() + Duration::from_millis(20));
        assert_eq!(
            q.take(&mut g, 10, Duration::from_secs(60), soon),
            Taken::TimedOut
        );
        assert!(g.is_empty(), "lazy appends alone do not make a group");
        q.push(append(true, 3)).unwrap();
        assert_eq!(
            q.take(&mut g, 10, Duration::from_secs(60), None),
            Taken::Group
        );
        assert_eq!(payloads(&g), [1, 2, 3]);
    }

    #[test]
    fn a_lazy_append_wakes_an_idle_writer_to_wait_out_its_bound() {
        let q = std::sync::Arc::new(Queue::default());
        let writer = {
            let q = q.clone();
            std::thread::spawn(move || {
                let mut g = Vec::new();
                let taken = q.take(&mut g, 10, Duration::from_millis(20), None);
                (taken, payloads(&g))
            })
        };
        while !q.state().writer_idle {
            std::thread::yield_now();
        }
        q.push(append(false, 5)).unwrap();
        assert_eq!(writer.join().unwrap(), (Taken::Group, vec![5]));
    }

    #[test]
    fn a_lazy_append_is_taken_once_it_waited_its_bound() {
        let q = Queue::default();
        q.push(append(false, 7)).unwrap();
        let mut g = Vec::new();
        let t = Instant::now();
        assert_eq!(
            q.take(&mut g, 10, Duration::from_millis(30), None),
            Taken::Group
        );
        assert!(t.elapsed() >= Duration::from_millis(30));
        assert_eq!(payloads(&g), [7]);
    }

    #[test]
    fn a_group_is_at_most_max_and_the_rest_stays_queued() {
        let q = Queue::default();
        for b in 0..5 {
            q.push(append(true, b)).unwrap();
        }
        let mut g = Vec::new();
        assert_eq!(
            q.take(&mut g, 3, Duration::from_secs(1), None),
            Taken::Group
        );
        assert_eq!(payloads(&g), [0, 1, 2]);
        g.clear();
        assert_eq!(
            q.take(&mut g, 3, Duration::from_secs(1), None),
            Taken::Group
        );
        assert_eq!(payloads(&g), [3, 4]);
    }

    #[test]
    fn closing_hands_over_what_is_queued_then_says_closed() {
        let q = Queue::default();
        q.push(append(false, 9)).unwrap();
        q.close();
        assert!(
            q.push(append(true, 1)).is_err(),
            "closed: appends are refused"
        );
        let mut g = Vec::new();
        assert_eq!(
            q.take(&mut g, 10, Duration::from_secs(60), None),
            Taken::Group
        );
        assert_eq!(payloads(&g), [9]);
        g.clear();
        assert_eq!(
            q.take(&mut g, 10, Duration::from_secs(60), None),
            Taken::Closed
        );
    }
}
