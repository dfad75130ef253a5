//! NG message framing: `<cookie> <bencoded dictionary>`, or `<cookie> <JSON
//! object>` (a body starting with `{`), as rtpengine accepts both.

use crate::bencode::{BencodeError, Value};
use crate::json::{self, JsonError};

/// How a message's dictionary is written; a reply uses its request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    #[default]
    Bencode,
    Json,
}

/// One NG message: the cookie that pairs request and reply, and its dictionary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub cookie: Vec<u8>,
    pub body: Value,
    pub format: Format,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message ends before it is complete")]
    Incomplete,
    #[error("no cookie: a message starts with `<cookie> ` (cookie, then one space)")]
    NoCookie,
    #[error("the message after the cookie is not a bencoded dictionary")]
    NotADict,
    #[error("{0}")]
    Bencode(BencodeError),
    #[error("the message after the cookie is not a JSON object")]
    NotAnObject,
    #[error("{0}")]
    Json(JsonError),
}

/// A parsed message and the bytes it used, or the error with the cookie
/// when one could be read (so the error reply can carry it).
pub type Decoded = Result<(Message, usize), (Option<Vec<u8>>, MessageError)>;

/// Longest cookie accepted.
pub const MAX_COOKIE: usize = 256;

impl Message {
    pub fn new(cookie: &[u8], body: Value) -> Self {
        Message {
            cookie: cookie.to_vec(),
            body,
            format: Format::Bencode,
        }
    }

    /// The reply to this message: same cookie, same format.
    pub fn reply(&self, body: Value) -> Self {
        Message {
            cookie: self.cookie.clone(),
            body,
            format: self.format,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.cookie.clone();
        out.push(b' ');
        match self.format {
            Format::Bencode => self.body.encode_into(&mut out),
            Format::Json => json::encode_into(&self.body, &mut out),
        }
        out
    }

    /// Parses one message at the start of `buf` (a datagram, or the front of
    /// a TCP stream); returns it and the bytes it used. The cookie is returned
    /// even when the body is bad, so the error reply can carry it.
    pub fn decode_prefix(buf: &[u8]) -> Decoded {
        let Some(space) = buf.iter().take(MAX_COOKIE + 1).position(|b| *b == b' ') else {
            return Err(if buf.len() <= MAX_COOKIE {
                (None, MessageError::Incomplete)
            } else {
                (None, MessageError::NoCookie)
            });
        };
        if space == 0 {
            return Err((None, MessageError::NoCookie));
        }
        let cookie = buf[..space].to_vec();
        if Self::format_of(buf) == Format::Json {
            return Self::decode_json(cookie, space + 1, &buf[space + 1..]);
        }
        match Value::decode_prefix(&buf[space + 1..]) {
            Ok((body @ Value::Dict(_), used)) => Ok((
                Message {
                    cookie,
                    body,
                    format: Format::Bencode,
                },
                space + 1 + used,
            )),
            Ok(_) => Err((Some(cookie), MessageError::NotADict)),
            Err(BencodeError::Incomplete) => Err((Some(cookie), MessageError::Incomplete)),
            Err(BencodeError::Invalid { at, what }) => Err((
                Some(cookie),
                MessageError::Bencode(BencodeError::Invalid {
                    at: at + space + 1,
                    what,
                }),
            )),
        }
    }
}

impl Message {
    /// The format of the body after the cookie in `buf` (a JSON object
    /// starts with `{`), also for answering a message too broken to decode
    /// in the format it was written in.
    pub fn format_of(buf: &[u8]) -> Format {
        let body = buf.iter().position(|b| *b == b' ').map(|s| s + 1);
        match body.and_then(|at| buf.get(at)) {
            Some(b'{') => Format::Json,
            _ => Format::Bencode,
        }
    }

    /// The JSON body that starts `skip` bytes into the message.
    fn decode_json(cookie: Vec<u8>, skip: usize, body: &[u8]) -> Decoded {
        match json::decode_prefix(body) {
            Ok((body @ Value::Dict(_), used)) => Ok((
                Message {
                    cookie,
                    body,
                    format: Format::Json,
                },
                skip + used,
            )),
            Ok(_) => Err((Some(cookie), MessageError::NotAnObject)),
            Err(JsonError::Incomplete) => Err((Some(cookie), MessageError::Incomplete)),
            Err(JsonError::Invalid { at, what }) => Err((
                Some(cookie),
                MessageError::Json(JsonError::Invalid {
                    at: at + skip,
                    what,
                }),
            )),
            Err(e) => Err((Some(cookie), MessageError::Json(e))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_body_format_is_told_by_its_first_byte() {
        assert_eq!(Message::format_of(b"c1 {\"command\":"), Format::Json);
        assert_eq!(Message::format_of(b"c1 d7:command"), Format::Bencode);
        assert_eq!(Message::format_of(b"c1"), Format::Bencode);
        assert_eq!(Message::format_of(b"c1 "), Format::Bencode);
    }

    #[test]
    fn parses_a_datagram_and_a_stream() {
        let (m, used) = Message::decode_prefix(b"5323_1 d7:command4:pinge").unwrap();
        assert_eq!(m.cookie, b"5323_1");
        assert_eq!(m.body.get("command").and_then(Value::as_str), Some("ping"));
        assert_eq!(used, 24);
        let two = b"a d7:command4:pingeb d7:command4:pinge";
        let (_, used) = Message::decode_prefix(two).unwrap();
        let (m2, _) = Message::decode_prefix(&two[used..]).unwrap();
        assert_eq!(m2.cookie, b"b");
        assert_eq!(
            Message::new(b"c", m2.body.clone()).encode(),
            b"c d7:command4:pinge"
        );
    }

    #[test]
    fn json_requests_get_json_replies() {
        let (m, used) = Message::decode_prefix(br#"j1 {"command":"ping"}"#).unwrap();
        assert_eq!((m.format, used), (Format::Json, 21));
        assert_eq!(m.body.get("command").and_then(Value::as_str), Some("ping"));
        let r = m.reply(Value::dict([("result", Value::str("pong"))]));
        assert_eq!(r.encode(), br#"j1 {"result":"pong"}"#);
        assert_eq!(
            Message::decode_prefix(br#"j2 {"command":"#).unwrap_err(),
            (Some(b"j2".to_vec()), MessageError::Incomplete)
        );
        let (c, e) = Message::decode_prefix(br#"j3 {"a" 1}"#).unwrap_err();
        assert_eq!(c, Some(b"j3".to_vec()));
        assert!(e.to_string().starts_with("JSON error at byte"), "{e}");
    }

    #[test]
    fn bad_messages_keep_their_cookie() {
        assert_eq!(
            Message::decode_prefix(b"x d7:com").unwrap_err(),
            (Some(b"x".to_vec()), MessageError::Incomplete)
        );
        assert_eq!(
            Message::decode_prefix(b"x i1e").unwrap_err(),
            (Some(b"x".to_vec()), MessageError::NotADict)
        );
        let (c, e) = Message::decode_prefix(b"k1 dxe").unwrap_err();
        assert_eq!(c, Some(b"k1".to_vec()));
        assert_eq!(
            e.to_string(),
            "bencode error at byte 4: dictionary key is not a byte string"
        );
        assert_eq!(
            Message::decode_prefix(b" d").unwrap_err().1,
            MessageError::NoCookie
        );
        assert_eq!(
            Message::decode_prefix(&[b'a'; 300]).unwrap_err().1,
            MessageError::NoCookie
        );
    }
}
