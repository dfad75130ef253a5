//! Relay port pairs for one media interface: an even RTP port and the odd
//! RTCP port after it, from the configured range, never handed out twice
//! while held.
//!
//! Free pairs are handed out least recently freed first: a pair released by
//! one call goes to the back of the queue, so it is the last to be reused.
//! Under churn that gives the data plane the longest possible time to close
//! the old call's sockets, and late packets of an old call do not reach a
//! new one. (A round-robin cursor does not: a pair freed just ahead of the
//! cursor is handed out again at once.)

use std::collections::{BTreeSet, VecDeque};

#[derive(Debug)]
pub struct PortPool {
    /// Free pairs' RTP ports, least recently freed first.
    free: VecDeque<u16>,
    used: BTreeSet<u16>,
}

impl PortPool {
    /// Pairs within `min..=max` (the first even port at or above `min`).
    pub fn new(min: u16, max: u16) -> Self {
        let first = u32::from(min) + u32::from(min % 2);
        let last = u32::from(max).saturating_sub(1);
        let free = (first..=last).step_by(2).map(|p| p as u16).collect();
        PortPool {
            free,
            used: BTreeSet::new(),
        }
    }

    /// Number of pairs the range holds.
    #[cfg(test)]
    pub fn capacity(&self) -> usize {
        self.free.len() + self.used.len()
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// The least recently freed pair's RTP port, or None when the range is
    /// exhausted.
    pub fn allocate(&mut self) -> Option<u16> {
        let p = self.free.pop_front()?;
        self.used.insert(p);
        Some(p)
    }

    /// Takes the pair of `rtp` out of the free ones (a call restored from
    /// the journal holds it); false when it is not in the range or held.
    pub fn take(&mut self, rtp: u16) -> bool {
        match self.free.iter().position(|&p| p == rtp) {
            Some(i) => {
                self.free.remove(i);
                self.used.insert(rtp)
            }
            None => false,
        }
    }

    /// Returns a pair to the back of the queue; a port not held is ignored.
    pub fn release(&mut self, rtp: u16) {
        if self.used.remove(&rtp) {
            self.free.push_back(rtp);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn even_pairs_no_reuse_until_freed_and_exhaustion() {
        let mut p = PortPool::new(30001, 30008);
        assert_eq!(p.capacity(), 3); // 30002, 30004, 30006 (+1 each)
        let a: Vec<u16> = (0..3).map(|_| p.allocate().unwrap()).collect();
        assert_eq!(a, [30002, 30004, 30006]);
        assert_eq!(p.allocate(), None);
        p.release(30004);
        assert_eq!(p.allocate(), Some(30004));
        assert_eq!(p.in_use(), 3);
        assert_eq!(PortPool::new(30000, 30003).capacity(), 2);
        assert_eq!(PortPool::new(30000, 30000).capacity(), 0);
        assert_eq!(PortPool::new(65534, 65535).capacity(), 1);
    }

    #[test]
    fn the_least_recently_freed_pair_comes_first() {
        let mut p = PortPool::new(30000, 30009); // 5 pairs
        for _ in 0..5 {
            p.allocate().unwrap();
        }
        // Freed in the order 30006, 30002, 30008: reused in that order,
        // whatever their place in the range.
        for port in [30006, 30002, 30008] {
            p.release(port);
        }
        assert_eq!(
            (0..3).map(|_| p.allocate().unwrap()).collect::<Vec<_>>(),
            [30006, 30002, 30008]
        );
    }

    #[test]
    fn a_pair_freed_now_waits_behind_every_other_free_pair() {
        let mut p = PortPool::new(30000, 30019); // 10 pairs
        let mut held: Vec<u16> = (0..4).map(|_| p.allocate().unwrap()).collect();
        // Churn, calls ending in any order: each round frees one held pair
        // and takes a new one; the pair just freed must not come back before
        // the 6 other free pairs have (a cursor going round the range hands
        // out a pair freed just ahead of it at once).
        let mut freed_at = std::collections::HashMap::new();
        for round in 0..200u32 {
            let old = held.remove((round as usize * 7 + 3) % held.len());
            p.release(old);
            freed_at.insert(old, round);
            let new = p.allocate().unwrap();
            if let Some(&r) = freed_at.get(&new) {
                assert!(
                    round - r >= 6,
                    "{new} reused {} rounds after it was freed",
                    round - r
                );
            }
            held.push(new);
        }
    }

    #[test]
    fn releasing_a_port_not_held_changes_nothing() {
        let mut p = PortPool::new(30000, 30003);
        p.release(30000);
        p.release(31000);
        assert_eq!(p.capacity(), 2);
        let a = p.allocate().unwrap();
        p.release(a);
        p.release(a);
        assert_eq!(p.capacity(), 2);
    }
}
