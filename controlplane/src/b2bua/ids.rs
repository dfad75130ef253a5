//! Where the B2BUA's ids come from: tags, Via branches, B-leg Call-IDs and
//! the digest nonce key, drawn from a generator seeded once. Production
//! seeds it from the OS; tests give a fixed seed, so runs repeat.

use std::collections::hash_map::{DefaultHasher, RandomState};
use std::hash::{BuildHasher, Hash, Hasher};

/// SipHash over a secret key and a counter: unpredictable without the key.
#[derive(Debug, Clone)]
pub struct Ids {
    key: [u64; 4],
    n: u64,
}

impl Ids {
    /// Seeded from the OS (through `RandomState`'s random keys).
    pub fn from_os() -> Ids {
        let s = RandomState::new();
        Ids {
            key: [0, 1, 2, 3].map(|i: u64| s.hash_one(i)),
            n: 0,
        }
    }

    /// The same sequence every time for the same `seed`.
    pub fn seeded(seed: u64) -> Ids {
        Ids {
            key: [seed, !seed, seed.rotate_left(32), 0x746f_6c6c_6761_7465],
            n: 0,
        }
    }

    fn next(&mut self) -> u64 {
        self.n += 1;
        let mut h = DefaultHasher::new();
        (self.key, self.n).hash(&mut h);
        h.finish()
    }

    /// The next id: 16 hex digits.
    pub fn id(&mut self) -> String {
        format!("{:016x}", self.next())
    }

    /// 32 bytes for a secret key.
    pub fn key(&mut self) -> [u8; 32] {
        let mut key = [0u8; 32];
        for chunk in key.chunks_mut(8) {
            chunk.copy_from_slice(&self.next().to_le_bytes());
        }
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_and_ids_differ() {
        let (mut a, mut b) = (Ids::seeded(7), Ids::seeded(7));
        let xs: Vec<String> = (0..3).map(|_| a.id()).collect();
        let ys: Vec<String> = (0..3).map(|_| b.id()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs[0], xs[1]);
        assert_eq!(xs[0].len(), 16);
        assert_ne!(Ids::seeded(8).id(), xs[0]);
        assert_ne!(Ids::from_os().id(), Ids::from_os().id());
    }
}
