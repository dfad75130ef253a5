//! NG messages in JSON: rtpengine accepts `<cookie> {...}` as well as
//! bencode and answers in the format it was asked in. Strings become byte
//! strings, integers stay integers, `true`/`false` become 1/0 and `null`
//! entries are left out, so the handler sees one [`Value`] model for both.

use crate::bencode::Value;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JsonError {
    /// The input ends before the value does (more may arrive on a stream).
    #[error("JSON ends early: the value is incomplete")]
    Incomplete,
    #[error("JSON error at byte {at}: {what}")]
    Invalid { at: usize, what: String },
    #[error("JSON number {0} is not an integer (NG values are integers or strings)")]
    NotInteger(String),
}

/// Parses one JSON value at the start of `buf`; returns it and the bytes used.
pub fn decode_prefix(buf: &[u8]) -> Result<(Value, usize), JsonError> {
    let mut stream = serde_json::Deserializer::from_slice(buf).into_iter::<serde_json::Value>();
    match stream.next() {
        Some(Ok(v)) => Ok((from_json(v)?, stream.byte_offset())),
        Some(Err(e)) if e.is_eof() => Err(JsonError::Incomplete),
        Some(Err(e)) => Err(JsonError::Invalid {
            at: stream.byte_offset(),
            what: e.to_string(),
        }),
        None => Err(JsonError::Incomplete),
    }
}

fn from_json(v: serde_json::Value) -> Result<Value, JsonError> {
    use serde_json::Value as J;
    Ok(match v {
        J::Null => Value::Bytes(Vec::new()),
        J::Bool(b) => Value::Int(b as i64),
        J::Number(n) => Value::Int(
            n.as_i64()
                .ok_or_else(|| JsonError::NotInteger(n.to_string()))?,
        ),
        J::String(s) => Value::Bytes(s.into_bytes()),
        J::Array(a) => Value::List(a.into_iter().map(from_json).collect::<Result<_, _>>()?),
        J::Object(o) => Value::Dict(
            o.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| Ok((k.into_bytes(), from_json(v)?)))
                .collect::<Result<_, JsonError>>()?,
        ),
    })
}

/// A bencoded value as JSON: byte strings as (lossy UTF-8) text,
/// dictionaries as objects.
pub fn to_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Int(i) => J::from(*i),
        Value::Bytes(b) => J::String(String::from_utf8_lossy(b).into_owned()),
        Value::List(l) => J::Array(l.iter().map(to_json).collect()),
        Value::Dict(d) => J::Object(
            d.iter()
                .map(|(k, v)| (String::from_utf8_lossy(k).into_owned(), to_json(v)))
                .collect(),
        ),
    }
}

/// `v` as compact JSON (byte strings as UTF-8, invalid bytes replaced).
pub fn encode_into(v: &Value, out: &mut Vec<u8>) {
    out.extend_from_slice(to_json(v).to_string().as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_ng_dictionaries() {
        let (v, used) =
            decode_prefix(br#"{"command":"offer","flags":["asymmetric"],"delete delay":5,"x":true,"n":null} tail"#)
                .unwrap();
        assert_eq!(v.get("command").and_then(Value::as_str), Some("offer"));
        assert_eq!(v.get("delete delay"), Some(&Value::Int(5)));
        assert_eq!(v.get("x"), Some(&Value::Int(1)));
        assert!(v.get("n").is_none());
        assert_eq!(used, 77);
        let mut out = Vec::new();
        encode_into(&Value::dict([("result", Value::str("pong"))]), &mut out);
        assert_eq!(out, br#"{"result":"pong"}"#);
        assert_eq!(decode_prefix(br#"{"command":"#), Err(JsonError::Incomplete));
        assert!(matches!(
            decode_prefix(br#"{"a":1.5}"#),
            Err(JsonError::NotInteger(_))
        ));
        assert!(matches!(
            decode_prefix(br#"{"a" 1}"#),
            Err(JsonError::Invalid { .. })
        ));
    }
}
