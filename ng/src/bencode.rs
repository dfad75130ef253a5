//! Bencode values, encoding, and decoding with errors that say where.
//!
//! Written here rather than taken from a crate because the NG server needs
//! what the serde-based crates do not give: incremental parsing of a TCP
//! stream (telling "incomplete" from "wrong"), byte offsets in errors sent
//! back to the client, and a depth limit against hostile nesting.

use std::collections::BTreeMap;
use std::fmt;

/// A bencoded value. Dictionaries keep keys sorted, as bencode specifies.
#[derive(Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Bytes(Vec<u8>),
    List(Vec<Value>),
    Dict(BTreeMap<Vec<u8>, Value>),
}

/// Nesting deeper than this is refused.
pub const MAX_DEPTH: usize = 32;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    /// The input ends before the value does (more may arrive on a stream).
    #[error("bencode ends early: the value is incomplete")]
    Incomplete,
    #[error("bencode error at byte {at}: {what}")]
    Invalid { at: usize, what: &'static str },
}

fn bad(at: usize, what: &'static str) -> BencodeError {
    BencodeError::Invalid { at, what }
}

impl Value {
    pub fn str(s: &str) -> Value {
        Value::Bytes(s.as_bytes().to_vec())
    }

    /// A dictionary from string keys.
    pub fn dict<'a>(pairs: impl IntoIterator<Item = (&'a str, Value)>) -> Value {
        Value::Dict(
            pairs
                .into_iter()
                .map(|(k, v)| (k.as_bytes().to_vec(), v))
                .collect(),
        )
    }

    pub fn as_dict(&self) -> Option<&BTreeMap<Vec<u8>, Value>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    pub fn as_dict_mut(&mut self) -> Option<&mut BTreeMap<Vec<u8>, Value>> {
        match self {
            Value::Dict(d) => Some(d),
            _ => None,
        }
    }

    /// The value under `key` when this is a dictionary.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.as_dict()?.get(key.as_bytes())
    }

    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    /// A byte string that is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(self.as_bytes()?).ok()
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_list(&self) -> Option<&[Value]> {
        match self {
            Value::List(l) => Some(l),
            _ => None,
        }
    }

    /// Inserts into a dictionary (no-op otherwise).
    pub fn set(&mut self, key: &str, v: Value) {
        if let Value::Dict(d) = self {
            d.insert(key.as_bytes().to_vec(), v);
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    pub fn encode_into(&self, out: &mut Vec<u8>) {
        match self {
            Value::Int(i) => {
                out.push(b'i');
                out.extend_from_slice(i.to_string().as_bytes());
                out.push(b'e');
            }
            Value::Bytes(b) => {
                out.extend_from_slice(b.len().to_string().as_bytes());
                out.push(b':');
                out.extend_from_slice(b);
            }
            Value::List(l) => {
                out.push(b'l');
                for v in l {
                    v.encode_into(out);
                }
                out.push(b'e');
            }
            Value::Dict(d) => {
                out.push(b'd');
                for (k, v) in d {
                    out.extend_from_slice(k.len().to_string().as_bytes());
                    out.push(b':');
                    out.extend_from_slice(k);
                    v.encode_into(out);
                }
                out.push(b'e');
            }
        }
    }

    /// Decodes one value at the start of `buf`; returns it and the bytes used.
    pub fn decode_prefix(buf: &[u8]) -> Result<(Value, usize), BencodeError> {
        let mut p = Parser { buf, at: 0 };
        let v = p.value(0)?;
        Ok((v, p.at))
    }

    /// Decodes exactly one value filling `buf`.
    pub fn decode(buf: &[u8]) -> Result<Value, BencodeError> {
        let (v, used) = Self::decode_prefix(buf)?;
        if used != buf.len() {
            return Err(bad(used, "trailing bytes after the value"));
        }
        Ok(v)
    }
}

struct Parser<'a> {
    buf: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Result<u8, BencodeError> {
        self.buf
            .get(self.at)
            .copied()
            .ok_or(BencodeError::Incomplete)
    }

    fn value(&mut self, depth: usize) -> Result<Value, BencodeError> {
        if depth > MAX_DEPTH {
            return Err(bad(self.at, "nested deeper than 32 levels"));
        }
        match self.peek()? {
            b'i' => {
                self.at += 1;
                let n = self.number(b'e')?;
                Ok(Value::Int(n))
            }
            b'0'..=b'9' => Ok(Value::Bytes(self.bytes()?)),
            b'l' => {
                self.at += 1;
                let mut l = Vec::new();
                while self.peek()? != b'e' {
                    l.push(self.value(depth + 1)?);
                }
                self.at += 1;
                Ok(Value::List(l))
            }
            b'd' => {
                self.at += 1;
                let mut d = BTreeMap::new();
                while self.peek()? != b'e' {
                    if !self.peek()?.is_ascii_digit() {
                        return Err(bad(self.at, "dictionary key is not a byte string"));
                    }
                    let k = self.bytes()?;
                    let v = self.value(depth + 1)?;
                    d.insert(k, v);
                }
                self.at += 1;
                Ok(Value::Dict(d))
            }
            _ => Err(bad(self.at, "expected 'i', 'l', 'd' or a string length")),
        }
    }

    /// An integer terminated by `end` (leading '-' allowed, no leading zeros).
    fn number(&mut self, end: u8) -> Result<i64, BencodeError> {
        let start = self.at;
        loop {
            let c = self.peek()?;
            if c == end {
                break;
            }
            if !(c.is_ascii_digit() || (c == b'-' && self.at == start)) {
                return Err(bad(self.at, "invalid character in a number"));
            }
            if self.at - start > 19 {
                return Err(bad(start, "number too long"));
            }
            self.at += 1;
        }
        let digits = std::str::from_utf8(&self.buf[start..self.at]).expect("ASCII");
        let ok_form = !digits.is_empty()
            && digits != "-"
            && digits != "-0"
            && !(digits.len() > 1 && digits.starts_with('0'))
            && !digits.starts_with("-0");
        if !ok_form {
            return Err(bad(start, "malformed number"));
        }
        let n = digits
            .parse()
            .map_err(|_| bad(start, "number out of range"))?;
        self.at += 1;
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Vec<u8>, BencodeError> {
        let start = self.at;
        let len = self.number(b':')?;
        let len = usize::try_from(len).map_err(|_| bad(start, "negative string length"))?;
        if len > 16 << 20 {
            return Err(bad(start, "string longer than 16 MiB"));
        }
        let end = self
            .at
            .checked_add(len)
            .ok_or(bad(start, "string length overflows"))?;
        if end > self.buf.len() {
            return Err(BencodeError::Incomplete);
        }
        let b = self.buf[self.at..end].to_vec();
        self.at = end;
        Ok(b)
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Bytes(b) => match std::str::from_utf8(b) {
                Ok(s) => write!(f, "{s:?}"),
                Err(_) => write!(f, "<{} bytes>", b.len()),
            },
            Value::List(l) => f.debug_list().entries(l).finish(),
            Value::Dict(d) => f
                .debug_map()
                .entries(d.iter().map(|(k, v)| (String::from_utf8_lossy(k), v)))
                .finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_what_kamailio_sends() {
        let m = b"d7:command4:ping8:supportsl10:load limitee";
        let v = Value::decode(m).unwrap();
        assert_eq!(v.get("command").and_then(Value::as_str), Some("ping"));
        assert_eq!(
            v.get("supports").and_then(Value::as_list).map(|l| l.len()),
            Some(1)
        );
        assert_eq!(Value::decode(b"i-42e").unwrap(), Value::Int(-42));
        assert_eq!(Value::decode(b"0:").unwrap(), Value::Bytes(vec![]));
    }

    #[test]
    fn encodes_sorted_and_round_trips() {
        let v = Value::dict([("result", Value::str("ok")), ("created", Value::Int(7))]);
        assert_eq!(v.encode(), b"d7:createdi7e6:result2:oke");
        assert_eq!(Value::decode(&v.encode()).unwrap(), v);
    }

    #[test]
    fn errors_say_where() {
        let cases: [(&[u8], &str); 7] = [
            (b"d3:fooi1x", "at byte 8: invalid character in a number"),
            (b"x", "at byte 0: expected"),
            (
                b"di1ei2ee",
                "at byte 1: dictionary key is not a byte string",
            ),
            (b"i01e", "at byte 1: malformed number"),
            (b"i-0e", "malformed number"),
            (b"4:spam!", "at byte 6: trailing bytes"),
            (b"99999999999:", "string longer than 16 MiB"),
        ];
        for (input, want) in cases {
            let e = Value::decode(input).unwrap_err().to_string();
            assert!(
                e.contains(want),
                "{:?}: {e}",
                String::from_utf8_lossy(input)
            );
        }
        assert_eq!(
            Value::decode(b"d3:foo").unwrap_err(),
            BencodeError::Incomplete
        );
        assert_eq!(
            Value::decode(b"5:abc").unwrap_err(),
            BencodeError::Incomplete
        );
        let deep = [b"l".repeat(40), b"e".repeat(40)].concat();
        assert!(Value::decode(&deep)
            .unwrap_err()
            .to_string()
            .contains("nested deeper"));
    }

    fn arb() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            proptest::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
        ];
        leaf.prop_recursive(4, 32, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::List),
                proptest::collection::btree_map(
                    proptest::collection::vec(any::<u8>(), 0..8),
                    inner,
                    0..6
                )
                .prop_map(Value::Dict),
            ]
        })
    }

    proptest! {
        #[test]
        fn round_trip(v in arb()) {
            prop_assert_eq!(Value::decode(&v.encode()).unwrap(), v);
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Value::decode(&bytes);
        }

        #[test]
        fn every_prefix_is_incomplete(v in arb()) {
            let e = v.encode();
            for cut in 0..e.len() {
                prop_assert_eq!(Value::decode(&e[..cut]).unwrap_err(), BencodeError::Incomplete);
            }
        }
    }
}
