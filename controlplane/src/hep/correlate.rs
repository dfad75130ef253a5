//! Correlation ids for exported messages: the A leg's Call-ID for both
//! legs of a B2BUA call, an NG message's `call-id`. What the exporter
//! learned (B legs to their calls, NG cookies to their call-ids) is kept
//! in bounded maps that forget the oldest first.

use crate::b2bua::B2bua;
use std::collections::{HashMap, VecDeque};
use tollgate_sip::message::Message;

/// For a message the B2BUA sends: the call a new B leg belongs to, when
/// the message is a B leg's first INVITE (no To tag yet). Parses only
/// INVITEs, so the SIP thread pays for one parse per B leg.
pub fn new_leg_of(b2b: &B2bua, bytes: &[u8]) -> Option<String> {
    if !bytes.starts_with(b"INVITE ") {
        return None;
    }
    let m = Message::parse(bytes).ok()?;
    if m.to_tag().is_some() {
        return None;
    }
    let call = b2b.call_of_dialog(m.call_id()?, &m.from_tag()?)?;
    (call != m.call_id()?).then(|| call.to_string())
}

/// Keys to correlation ids, at most `cap` of them, oldest forgotten first.
pub struct Links {
    map: HashMap<String, String>,
    order: VecDeque<String>,
    cap: usize,
}

impl Links {
    pub fn new(cap: usize) -> Links {
        Links {
            map: HashMap::new(),
            order: VecDeque::new(),
            cap,
        }
    }

    pub fn learn(&mut self, key: &str, correlation: &str) {
        if self.map.contains_key(key) {
            return;
        }
        if self.order.len() >= self.cap {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        self.order.push_back(key.to_string());
        self.map.insert(key.to_string(), correlation.to_string());
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.map.get(key).map(String::as_str)
    }
}

/// The correlation id of a SIP message: its call's A-leg Call-ID when a
/// B leg of it was learned (now, from `new_leg`, or before), else its own
/// Call-ID. None for what is not a SIP message.
pub fn sip(legs: &mut Links, bytes: &[u8], new_leg: Option<&str>) -> Option<String> {
    let m = Message::parse(bytes)
        .or_else(|_| Message::parse_lenient(bytes))
        .ok()?;
    let call_id = m.call_id()?;
    if let Some(call) = new_leg {
        legs.learn(call_id, call);
    }
    Some(legs.get(call_id).unwrap_or(call_id).to_string())
}

/// The correlation id of an NG message: its `call-id`, or for a reply
/// (which has none) its request's, by cookie.
pub fn ng(cookies: &mut Links, bytes: &[u8]) -> Option<String> {
    let (m, _) = tollgate_ng::Message::decode_prefix(bytes).ok()?;
    let cookie = String::from_utf8_lossy(&m.cookie);
    match m.body.get("call-id").and_then(tollgate_ng::Value::as_str) {
        Some(call_id) => {
            cookies.learn(&cookie, call_id);
            Some(call_id.to_string())
        }
        None => cookies.get(&cookie).map(str::to_string),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B_BYE: &[u8] = b"BYE sip:x@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKb\r\nFrom: <sip:a@x>;tag=1\r\nTo: <sip:b@x>;tag=2\r\nCall-ID: b1@tollgate\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n";

    #[test]
    fn a_learned_leg_is_correlated_to_its_call_and_the_oldest_is_forgotten() {
        let mut legs = Links::new(2);
        assert_eq!(sip(&mut legs, B_BYE, None).as_deref(), Some("b1@tollgate"));
        assert_eq!(sip(&mut legs, B_BYE, Some("a1")).as_deref(), Some("a1"));
        assert_eq!(sip(&mut legs, B_BYE, None).as_deref(), Some("a1"));
        legs.learn("b2", "a2");
        legs.learn("b3", "a3");
        assert_eq!(legs.get("b1@tollgate"), None);
        assert_eq!(legs.get("b3"), Some("a3"));
        assert_eq!(sip(&mut legs, b"\x00\x01 not SIP", None), None);
    }

    #[test]
    fn an_ng_reply_is_correlated_by_its_request_cookie() {
        let mut cookies = Links::new(8);
        let req = b"c1 d7:call-id3:abc7:command4:pinge";
        assert_eq!(ng(&mut cookies, req).as_deref(), Some("abc"));
        let reply = b"c1 d6:result4:ponge";
        assert_eq!(ng(&mut cookies, reply).as_deref(), Some("abc"));
        assert_eq!(ng(&mut cookies, b"c2 d6:result4:ponge"), None);
        assert_eq!(ng(&mut cookies, b"garbage"), None);
    }
}
