//! Mutations of seed inputs, as proptest values: byte flips and overwrites,
//! truncations, cut and duplicated ranges, splices from another seed,
//! dictionary tokens (the format's own keywords, separators and edge
//! numbers), whole lines duplicated or dropped (a repeated SIP header, a
//! second `m=` line), and huge runs of one byte.
//!
//! Positions are taken modulo the input's length when applied, so a
//! mutation stays meaningful on any seed and proptest can shrink a failing
//! case to the fewest, smallest mutations. Hand-written because the
//! coverage-guided mutators do not fit a `cargo test` pass: libFuzzer's
//! needs nightly, AFL++'s a separately instrumented build of the whole
//! tree (16 minutes here) and a fork server; the same targets run under
//! cargo-afl for the long pass (docs/fuzzing.md).

use proptest::prelude::*;

/// The largest run one [`Mutation::Huge`] inserts: past any header,
/// line or length limit a parser should have.
pub const MAX_RUN: usize = 70_000;

/// One change to an input.
#[derive(Debug, Clone)]
pub enum Mutation {
    FlipBit {
        at: usize,
        bit: u8,
    },
    SetByte {
        at: usize,
        byte: u8,
    },
    Truncate {
        at: usize,
    },
    Remove {
        at: usize,
        len: usize,
    },
    /// Copies `len` bytes at `at` in place right after themselves.
    Duplicate {
        at: usize,
        len: usize,
    },
    /// Inserts `len` bytes of seed `seed` (from `from`) at `at`.
    Splice {
        seed: usize,
        from: usize,
        len: usize,
        at: usize,
    },
    /// Inserts dictionary token `token` at `at`.
    Token {
        token: usize,
        at: usize,
    },
    /// Overwrites the bytes at `at` with dictionary token `token`.
    OverwriteToken {
        token: usize,
        at: usize,
    },
    DuplicateLine {
        line: usize,
    },
    RemoveLine {
        line: usize,
    },
    /// Inserts `len` copies of `byte` at `at`.
    Huge {
        at: usize,
        len: usize,
        byte: u8,
    },
}

/// Seeds and the dictionary mutations draw on.
pub struct Pool<'a> {
    pub seeds: &'a [Vec<u8>],
    pub tokens: &'a [&'a [u8]],
}

pub fn mutation() -> impl Strategy<Value = Mutation> {
    let at = any::<usize>();
    prop_oneof![
        3 => (at, 0u8..8).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
        2 => (at, any::<u8>()).prop_map(|(at, byte)| Mutation::SetByte { at, byte }),
        1 => at.prop_map(|at| Mutation::Truncate { at }),
        2 => (at, 1usize..64).prop_map(|(at, len)| Mutation::Remove { at, len }),
        2 => (at, 1usize..64).prop_map(|(at, len)| Mutation::Duplicate { at, len }),
        2 => (any::<usize>(), at, 1usize..256, at)
            .prop_map(|(seed, from, len, at)| Mutation::Splice { seed, from, len, at }),
        4 => (any::<usize>(), at).prop_map(|(token, at)| Mutation::Token { token, at }),
        2 => (any::<usize>(), at)
            .prop_map(|(token, at)| Mutation::OverwriteToken { token, at }),
        2 => any::<usize>().prop_map(|line| Mutation::DuplicateLine { line }),
        1 => any::<usize>().prop_map(|line| Mutation::RemoveLine { line }),
        1 => (at, prop_oneof![1usize..300, 4000usize..MAX_RUN], any::<u8>())
            .prop_map(|(at, len, byte)| Mutation::Huge { at, len, byte }),
    ]
}

/// A seed's index and the mutations applied to it, in order.
pub fn case(seeds: usize) -> impl Strategy<Value = (usize, Vec<Mutation>)> {
    (0..seeds.max(1), prop::collection::vec(mutation(), 1..6))
}

/// `seed` with `mutations` applied.
pub fn apply(pool: &Pool, seed: usize, mutations: &[Mutation]) -> Vec<u8> {
    let mut buf = pool.seeds.get(seed).cloned().unwrap_or_default();
    for m in mutations {
        apply_one(pool, &mut buf, m);
    }
    buf
}

fn apply_one(pool: &Pool, buf: &mut Vec<u8>, m: &Mutation) {
    let pos = |at: usize, buf: &[u8]| at % (buf.len() + 1);
    match *m {
        Mutation::FlipBit { at, bit } if !buf.is_empty() => {
            let i = at % buf.len();
            buf[i] ^= 1 << bit;
        }
        Mutation::SetByte { at, byte } if !buf.is_empty() => {
            let i = at % buf.len();
            buf[i] = byte;
        }
        Mutation::FlipBit { .. } | Mutation::SetByte { .. } => {}
        Mutation::Truncate { at } => buf.truncate(pos(at, buf)),
        Mutation::Remove { at, len } => {
            let i = pos(at, buf);
            buf.drain(i..(i + len).min(buf.len()));
        }
        Mutation::Duplicate { at, len } => {
            let i = pos(at, buf);
            let copy = buf[i..(i + len).min(buf.len())].to_vec();
            insert(buf, i + copy.len(), &copy);
        }
        Mutation::Splice {
            seed,
            from,
            len,
            at,
        } => {
            let Some(other) = pool.seeds.get(seed % pool.seeds.len().max(1)) else {
                return;
            };
            let f = from % (other.len() + 1);
            let piece = other[f..(f + len).min(other.len())].to_vec();
            let i = pos(at, buf);
            insert(buf, i, &piece);
        }
        Mutation::Token { token, at } => {
            if let Some(t) = pick(pool.tokens, token) {
                let i = pos(at, buf);
                insert(buf, i, t);
            }
        }
        Mutation::OverwriteToken { token, at } => {
            if let Some(t) = pick(pool.tokens, token) {
                let i = pos(at, buf);
                let end = (i + t.len()).min(buf.len());
                buf.splice(i..end, t.iter().copied());
            }
        }
        Mutation::DuplicateLine { line } => {
            if let Some(r) = line_range(buf, line) {
                let copy = buf[r.clone()].to_vec();
                insert(buf, r.end, &copy);
            }
        }
        Mutation::RemoveLine { line } => {
            if let Some(r) = line_range(buf, line) {
                buf.drain(r);
            }
        }
        Mutation::Huge { at, len, byte } => {
            let i = pos(at, buf);
            insert(buf, i, &vec![byte; len]);
        }
    }
}

fn pick<'a>(tokens: &[&'a [u8]], i: usize) -> Option<&'a [u8]> {
    (!tokens.is_empty()).then(|| tokens[i % tokens.len()])
}

fn insert(buf: &mut Vec<u8>, at: usize, bytes: &[u8]) {
    buf.splice(at..at, bytes.iter().copied());
}

/// Line `n` (modulo the line count) with its `\n`.
fn line_range(buf: &[u8], n: usize) -> Option<std::ops::Range<usize>> {
    let lines = buf.split_inclusive(|b| *b == b'\n').count();
    if lines == 0 {
        return None;
    }
    let mut start = 0;
    for (i, l) in buf.split_inclusive(|b| *b == b'\n').enumerate() {
        if i == n % lines {
            return Some(start..start + l.len());
        }
        start += l.len();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> (Vec<Vec<u8>>, Vec<&'static [u8]>) {
        (
            vec![b"a: 1\r\nb: 2\r\n".to_vec(), b"xyz".to_vec()],
            vec![b"TOKEN"],
        )
    }

    #[test]
    fn each_mutation_changes_the_seed_as_named() {
        let (seeds, tokens) = pool();
        let p = Pool {
            seeds: &seeds,
            tokens: &tokens,
        };
        let run = |m: Mutation| String::from_utf8(apply(&p, 0, &[m])).unwrap();
        assert_eq!(run(Mutation::Truncate { at: 4 }), "a: 1");
        assert_eq!(run(Mutation::Remove { at: 0, len: 6 }), "b: 2\r\n");
        assert_eq!(
            run(Mutation::Duplicate { at: 0, len: 2 }),
            "a:a: 1\r\nb: 2\r\n"
        );
        assert_eq!(
            run(Mutation::Splice {
                seed: 1,
                from: 1,
                len: 9,
                at: 0
            }),
            "yza: 1\r\nb: 2\r\n"
        );
        assert_eq!(
            run(Mutation::Token { token: 7, at: 6 }),
            "a: 1\r\nTOKENb: 2\r\n"
        );
        assert_eq!(
            run(Mutation::OverwriteToken { token: 0, at: 9 }),
            "a: 1\r\nb: TOKEN"
        );
        assert_eq!(
            run(Mutation::DuplicateLine { line: 3 }),
            "a: 1\r\nb: 2\r\nb: 2\r\n"
        );
        assert_eq!(run(Mutation::RemoveLine { line: 0 }), "b: 2\r\n");
        assert_eq!(
            run(Mutation::Huge {
                at: 1,
                len: 3,
                byte: b'!'
            }),
            "a!!!: 1\r\nb: 2\r\n"
        );
        assert_eq!(run(Mutation::FlipBit { at: 0, bit: 5 }), "A: 1\r\nb: 2\r\n");
    }

    #[test]
    fn mutations_of_an_empty_seed_do_not_fail() {
        let p = Pool {
            seeds: &[],
            tokens: &[],
        };
        let all = [
            Mutation::FlipBit { at: 3, bit: 1 },
            Mutation::Remove { at: 3, len: 3 },
            Mutation::Duplicate { at: 3, len: 3 },
            Mutation::DuplicateLine { line: 2 },
            Mutation::Splice {
                seed: 1,
                from: 1,
                len: 1,
                at: 1,
            },
            Mutation::Token { token: 1, at: 1 },
        ];
        assert!(apply(&p, 0, &all).is_empty());
    }
}
