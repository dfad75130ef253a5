//! The spool's on-disk format: segment files of checksummed records.
//!
//! A segment is named after the sequence number of its first record
//! (`00000000000000000001.seg`) and starts with an 8-byte magic. Each record
//! is a 16-byte header, then its payload:
//!
//! ```text
//! u32 LE payload length | u32 LE CRC-32 of (seq bytes ++ payload) | u64 LE seq | payload
//! ```
//!
//! Sequence numbers rise by one across the whole spool, so a record that is
//! out of order is as much damage as a bad checksum. Scanning is done over
//! bytes in memory (sans-IO), so recovery is tested on crafted damage.

use std::fmt;

pub const MAGIC: &[u8; 8] = b"TGSPOOL1";
pub const HEADER: usize = 16;
/// A payload larger than this is damage, not a CDR.
pub const MAX_PAYLOAD: usize = 16 << 20;
/// The highest sequence number a record may carry: what an SQL sink's
/// signed 64-bit column holds, and far from where `+ 1` overflows. A
/// record beyond it is damage, not a CDR.
pub const MAX_SEQ: u64 = i64::MAX as u64;

pub fn file_name(first_seq: u64) -> String {
    format!("{first_seq:020}.seg")
}

/// The first sequence number of a segment file name, if it is one.
pub fn parse_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".seg")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

fn checksum(seq: u64, payload: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&seq.to_le_bytes());
    h.update(payload);
    h.finalize()
}

/// Appends one framed record to `out`.
pub fn encode(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&checksum(seq, payload).to_le_bytes());
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(payload);
}

/// What is wrong at the first bad byte of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    BadMagic,
    /// The file ends inside a record header or payload (a torn write).
    Truncated {
        needed: usize,
        have: usize,
    },
    TooLong {
        length: usize,
    },
    BadChecksum {
        seq: u64,
    },
    OutOfOrder {
        expected: u64,
        found: u64,
    },
    SeqBeyondLimit {
        seq: u64,
    },
}

impl fmt::Display for Damage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Damage::BadMagic => write!(f, "not a spool segment (bad magic)"),
            Damage::Truncated { needed, have } => write!(
                f,
                "record cut short: {needed} bytes needed, {have} left (torn write)"
            ),
            Damage::TooLong { length } => write!(
                f,
                "record length {length} exceeds the {MAX_PAYLOAD}-byte limit"
            ),
            Damage::BadChecksum { seq } => write!(f, "checksum mismatch in record {seq}"),
            Damage::OutOfOrder { expected, found } => {
                write!(f, "record {found} where {expected} was expected")
            }
            Damage::SeqBeyondLimit { seq } => {
                write!(f, "record {seq} is numbered beyond the limit {MAX_SEQ}")
            }
        }
    }
}

/// One record found at `offset` of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Found {
    pub seq: u64,
    pub offset: usize,
    pub len: usize,
}

impl Found {
    pub fn payload<'a>(&self, bytes: &'a [u8]) -> &'a [u8] {
        &bytes[self.offset + HEADER..self.offset + HEADER + self.len]
    }

    pub fn end(&self) -> usize {
        self.offset + HEADER + self.len
    }
}

/// Decodes the record at `offset`; `expected` is the sequence number it
/// must carry when known.
pub fn decode_at(bytes: &[u8], offset: usize, expected: Option<u64>) -> Result<Found, Damage> {
    let rest = &bytes[offset..];
    if rest.len() < HEADER {
        return Err(Damage::Truncated {
            needed: HEADER,
            have: rest.len(),
        });
    }
    let word = |i: usize| u32::from_le_bytes(rest[i..i + 4].try_into().expect("4 bytes"));
    let len = word(0) as usize;
    let crc = word(4);
    let seq = u64::from_le_bytes(rest[8..16].try_into().expect("8 bytes"));
    if len > MAX_PAYLOAD {
        return Err(Damage::TooLong { length: len });
    }
    if rest.len() < HEADER + len {
        return Err(Damage::Truncated {
            needed: HEADER + len,
            have: rest.len(),
        });
    }
    if checksum(seq, &rest[HEADER..HEADER + len]) != crc {
        return Err(Damage::BadChecksum { seq });
    }
    if seq > MAX_SEQ {
        return Err(Damage::SeqBeyondLimit { seq });
    }
    if let Some(e) = expected {
        if seq != e {
            return Err(Damage::OutOfOrder {
                expected: e,
                found: seq,
            });
        }
    }
    Ok(Found { seq, offset, len })
}

/// A whole segment checked from its start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scan {
    pub records: Vec<Found>,
    /// Bytes up to the end of the last good record.
    pub good_len: usize,
    /// The first damage and its byte offset; nothing after it is trusted.
    pub damage: Option<(usize, Damage)>,
}

impl Scan {
    pub fn last_seq(&self) -> Option<u64> {
        self.records.last().map(|r| r.seq)
    }
}

/// Checks a segment whose first record must be `first_seq`.
pub fn scan(bytes: &[u8], first_seq: u64) -> Scan {
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        return Scan {
            records: Vec::new(),
            good_len: 0,
            damage: Some((0, Damage::BadMagic)),
        };
    }
    let mut records = Vec::new();
    let mut offset = MAGIC.len();
    let mut expected = first_seq;
    while offset < bytes.len() {
        match decode_at(bytes, offset, Some(expected)) {
            Ok(found) => {
                offset = found.end();
                expected += 1;
                records.push(found);
            }
            Err(d) => {
                return Scan {
                    records,
                    good_len: offset,
                    damage: Some((offset, d)),
                }
            }
        }
    }
    Scan {
        records,
        good_len: offset,
        damage: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(first: u64, payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = MAGIC.to_vec();
        for (i, p) in payloads.iter().enumerate() {
            encode(first + i as u64, p, &mut out);
        }
        out
    }

    #[test]
    fn names_carry_the_first_sequence_number() {
        assert_eq!(parse_name(&file_name(42)), Some(42));
        assert_eq!(parse_name("42.seg"), None);
        assert_eq!(parse_name("00000000000000000042.seg.corrupt"), None);
    }

    #[test]
    fn a_clean_segment_yields_every_record() {
        let bytes = segment(7, &[b"one", b"", b"three"]);
        let s = scan(&bytes, 7);
        assert_eq!(s.damage, None);
        assert_eq!(s.good_len, bytes.len());
        let seqs: Vec<u64> = s.records.iter().map(|r| r.seq).collect();
        assert_eq!(seqs, [7, 8, 9]);
        assert_eq!(s.records[2].payload(&bytes), b"three");
    }

    /// Found by fuzzing (fuzz/corpus/spool_segment/seed-last-seq): the
    /// scan's `expected += 1` overflowed after a record numbered 2^64-1.
    #[test]
    fn a_record_numbered_beyond_the_limit_is_damage() {
        let bytes = segment(MAX_SEQ, &[b"last", b"beyond"]);
        let s = scan(&bytes, MAX_SEQ);
        assert_eq!(s.last_seq(), Some(MAX_SEQ));
        let at = s.records[0].end();
        assert_eq!(
            s.damage,
            Some((at, Damage::SeqBeyondLimit { seq: MAX_SEQ + 1 }))
        );
        let s = scan(&segment(u64::MAX, &[b"x"]), u64::MAX);
        assert_eq!(
            s.damage,
            Some((MAGIC.len(), Damage::SeqBeyondLimit { seq: u64::MAX }))
        );
        assert_eq!(
            Damage::SeqBeyondLimit { seq: u64::MAX }.to_string(),
            "record 18446744073709551615 is numbered beyond the limit 9223372036854775807"
        );
    }

    #[test]
    fn a_torn_tail_keeps_every_record_before_it() {
        let bytes = segment(1, &[b"alpha", b"beta", b"gamma"]);
        for cut in 1..(HEADER + 5) {
            let torn = &bytes[..bytes.len() - cut];
            let s = scan(torn, 1);
            assert_eq!(s.last_seq(), Some(2), "cut {cut}");
            assert!(
                matches!(s.damage, Some((_, Damage::Truncated { .. }))),
                "cut {cut}: {:?}",
                s.damage
            );
            assert_eq!(s.good_len, s.records[1].end());
        }
    }

    #[test]
    fn flipped_bits_wrong_lengths_and_gaps_are_found() {
        let bytes = segment(1, &[b"alpha", b"beta", b"gamma"]);
        let second = scan(&bytes, 1).records[1];

        let mut flipped = bytes.clone();
        flipped[second.offset + HEADER + 1] ^= 0x40;
        let s = scan(&flipped, 1);
        assert_eq!(
            s.damage,
            Some((second.offset, Damage::BadChecksum { seq: 2 }))
        );
        assert_eq!(s.last_seq(), Some(1));

        let mut long = bytes.clone();
        long[second.offset..second.offset + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            scan(&long, 1).damage,
            Some((_, Damage::TooLong { .. }))
        ));

        let gap = segment(5, &[b"x"]);
        assert_eq!(
            scan(&gap, 4).damage,
            Some((
                MAGIC.len(),
                Damage::OutOfOrder {
                    expected: 4,
                    found: 5
                }
            ))
        );
        assert_eq!(scan(b"garbage!", 1).damage, Some((0, Damage::BadMagic)));
    }
}
