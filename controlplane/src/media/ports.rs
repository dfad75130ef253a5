//! Relay port pairs for one media interface: an even RTP port and the odd
//! RTCP port after it, from the configured range, never handed out twice
//! while held. Allocation moves round the range so a just-freed pair is the
//! last to be reused (late packets of an old call do not reach a new one).

use std::collections::BTreeSet;

#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    used: BTreeSet<u16>,
    cursor: u16,
}

impl PortPool {
    /// Pairs within `min..=max` (the first even port at or above `min`).
    pub fn new(min: u16, max: u16) -> Self {
        let first = min + (min % 2);
        let last = if max % 2 == 1 {
            max - 1
        } else {
            max.saturating_sub(2)
        };
        PortPool {
            first,
            last,
            used: BTreeSet::new(),
            cursor: first,
        }
    }

    /// Number of pairs the range holds.
    pub fn capacity(&self) -> usize {
        if self.last < self.first {
            0
        } else {
            ((self.last - self.first) / 2 + 1) as usize
        }
    }

    pub fn in_use(&self) -> usize {
        self.used.len()
    }

    /// An unused pair's RTP port, or None when the range is exhausted.
    pub fn allocate(&mut self) -> Option<u16> {
        if self.used.len() >= self.capacity() {
            return None;
        }
        loop {
            let p = self.cursor;
            self.cursor = if p >= self.last { self.first } else { p + 2 };
            if self.used.insert(p) {
                return Some(p);
            }
        }
    }

    pub fn release(&mut self, rtp: u16) {
        self.used.remove(&rtp);
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
        let q = PortPool::new(30000, 30003);
        assert_eq!(q.capacity(), 2);
    }
}
