//! A message's header list: names kept in one canonical spelling (compact
//! forms expanded), lookups in any spelling without allocating, and the
//! typed [`View`] of the headers transactions and dialogs read, parsed on
//! first use and dropped whenever the list is changed. The list can only
//! be changed through methods here, so the view can never go stale.

use crate::view::{Parsed, View};
use std::borrow::Cow;
use std::ops::Deref;
use std::sync::OnceLock;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The long form, spelled as RFC 3261 does for known headers (which
    /// are not allocated).
    pub name: Cow<'static, str>,
    /// Unfolded, without leading and trailing whitespace.
    pub value: String,
}

impl Header {
    pub fn new(name: &str, value: impl Into<String>) -> Header {
        Header {
            name: canonical(name),
            value: value.into(),
        }
    }
}

/// The usual spelling of a compact form (RFC 3261 §7.3.3 and later RFCs)
/// or of a common long name, so lookups and output are uniform and the
/// names of common headers are never allocated. Found without allocating:
/// the name is lower-cased on the stack and matched, which is far cheaper
/// than comparing it with a table ignoring case (it runs for every header).
fn known(name: &str) -> Option<&'static str> {
    let mut buf = [0u8; 20];
    let lower = buf.get_mut(..name.len())?; // no known name is longer
    for (l, b) in lower.iter_mut().zip(name.bytes()) {
        *l = b.to_ascii_lowercase();
    }
    Some(match &*lower {
        b"i" | b"call-id" => "Call-ID",
        b"m" | b"contact" => "Contact",
        b"e" | b"content-encoding" => "Content-Encoding",
        b"l" | b"content-length" => "Content-Length",
        b"c" | b"content-type" => "Content-Type",
        b"f" | b"from" => "From",
        b"s" | b"subject" => "Subject",
        b"k" | b"supported" => "Supported",
        b"t" | b"to" => "To",
        b"v" | b"via" => "Via",
        b"r" | b"refer-to" => "Refer-To",
        b"o" | b"event" => "Event",
        b"u" | b"allow-events" => "Allow-Events",
        b"x" | b"session-expires" => "Session-Expires",
        b"cseq" => "CSeq",
        b"max-forwards" => "Max-Forwards",
        b"route" => "Route",
        b"record-route" => "Record-Route",
        b"allow" => "Allow",
        b"require" => "Require",
        b"user-agent" => "User-Agent",
        b"server" => "Server",
        b"expires" => "Expires",
        b"authorization" => "Authorization",
        b"proxy-authorization" => "Proxy-Authorization",
        b"proxy-authenticate" => "Proxy-Authenticate",
        b"www-authenticate" => "WWW-Authenticate",
        b"min-se" => "Min-SE",
        _ => return None,
    })
}

/// What a lookup for `query` (any case, compact or long) compares stored
/// (canonical) names with, ignoring case. Resolved once per lookup, not
/// once per header; no allocation.
pub(crate) fn lookup_name(query: &str) -> &str {
    known(query).unwrap_or(query)
}

pub(crate) fn canonical(name: &str) -> Cow<'static, str> {
    if let Some(long) = known(name) {
        return Cow::Borrowed(long);
    }
    let mut out = String::with_capacity(name.len());
    // Title-Case each dash-separated word: "max-forwards" -> "Max-Forwards".
    let mut word_start = true;
    for c in name.chars() {
        out.push(if word_start {
            c.to_ascii_uppercase()
        } else {
            c.to_ascii_lowercase()
        });
        word_start = c == '-';
    }
    Cow::Owned(out)
}

/// The headers of one message, in order, with their typed view.
#[derive(Default, Clone)]
pub struct Headers {
    list: Vec<Header>,
    /// Boxed: a message is moved often and most of it is this view.
    view: OnceLock<Box<Parsed>>,
}

impl Headers {
    pub fn new() -> Headers {
        Headers::default()
    }

    /// The typed view, parsed from the list the first time it is asked for.
    pub fn view(&self) -> View<'_> {
        View::new(
            &self.list,
            self.view.get_or_init(|| Box::new(Parsed::new(&self.list))),
        )
    }

    /// Every change goes through here: the view no longer describes the list.
    fn changing(&mut self) -> &mut Vec<Header> {
        self.view = OnceLock::new();
        &mut self.list
    }

    pub fn push(&mut self, h: Header) {
        self.changing().push(h);
    }

    pub fn insert(&mut self, at: usize, h: Header) {
        self.changing().insert(at, h);
    }

    pub fn retain(&mut self, keep: impl FnMut(&Header) -> bool) {
        self.changing().retain(keep);
    }

    pub fn get_mut(&mut self, i: usize) -> Option<&mut Header> {
        self.changing().get_mut(i)
    }
}

impl Deref for Headers {
    type Target = [Header];

    fn deref(&self) -> &[Header] {
        &self.list
    }
}

impl From<Vec<Header>> for Headers {
    fn from(list: Vec<Header>) -> Headers {
        Headers {
            list,
            view: OnceLock::new(),
        }
    }
}

/// Two header lists are equal when their headers are; the view is derived.
impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.list == other.list
    }
}

impl Eq for Headers {}

impl std::fmt::Debug for Headers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.list.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stored_in_one_spelling() {
        for (name, long) in [("I", "Call-ID"), ("CONTENT-type", "Content-Type")] {
            assert!(
                matches!(canonical(name), Cow::Borrowed(l) if l == long),
                "{name}"
            );
        }
        assert_eq!(canonical("Proxy-Authorization-X"), "Proxy-Authorization-X");
        assert_eq!(canonical("v"), "Via");
        assert_eq!(canonical("MAX-forwards"), "Max-Forwards");
        assert_eq!(canonical("x-my-header"), "X-My-Header");
        assert_eq!(canonical("newfangledheader"), "Newfangledheader");
        assert_eq!(lookup_name("i"), "Call-ID");
        assert_eq!(lookup_name("CALL-id"), "Call-ID");
        assert_eq!(lookup_name("X-Other"), "X-Other");
        assert!(matches!(canonical("via"), Cow::Borrowed("Via")));
    }

    #[test]
    fn a_message_can_still_be_shared_across_threads() {
        fn shared<T: Send + Sync>() {}
        shared::<Headers>();
    }

    #[test]
    fn every_change_drops_the_view() {
        let mut h = Headers::from(vec![Header::new("i", "one")]);
        assert_eq!(h.view().call_id(), Some("one"));
        h.get_mut(0).unwrap().value = "two".into();
        assert_eq!(h.view().call_id(), Some("two"));
        h.insert(0, Header::new("Call-ID", "zero"));
        assert_eq!(h.view().call_id(), Some("zero"));
        h.retain(|h| h.value != "zero");
        assert_eq!(h.view().call_id(), Some("two"));
        h.retain(|_| false);
        h.push(Header::new("call-id", "three"));
        assert_eq!(h.view().call_id(), Some("three"));
    }
}
