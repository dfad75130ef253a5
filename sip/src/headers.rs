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

/// Compact forms (RFC 3261 §7.3.3 and later RFCs) and the usual spelling
/// of long names, so lookups and output are uniform and the names of
/// common headers are never allocated.
const KNOWN: &[(&str, &str)] = &[
    ("i", "Call-ID"),
    ("m", "Contact"),
    ("e", "Content-Encoding"),
    ("l", "Content-Length"),
    ("c", "Content-Type"),
    ("f", "From"),
    ("s", "Subject"),
    ("k", "Supported"),
    ("t", "To"),
    ("v", "Via"),
    ("r", "Refer-To"),
    ("o", "Event"),
    ("u", "Allow-Events"),
    ("x", "Session-Expires"),
    ("via", "Via"),
    ("from", "From"),
    ("to", "To"),
    ("call-id", "Call-ID"),
    ("cseq", "CSeq"),
    ("contact", "Contact"),
    ("max-forwards", "Max-Forwards"),
    ("route", "Route"),
    ("record-route", "Record-Route"),
    ("content-length", "Content-Length"),
    ("content-type", "Content-Type"),
    ("allow", "Allow"),
    ("supported", "Supported"),
    ("require", "Require"),
    ("user-agent", "User-Agent"),
    ("server", "Server"),
    ("expires", "Expires"),
    ("authorization", "Authorization"),
    ("proxy-authorization", "Proxy-Authorization"),
    ("proxy-authenticate", "Proxy-Authenticate"),
    ("www-authenticate", "WWW-Authenticate"),
    ("session-expires", "Session-Expires"),
    ("min-se", "Min-SE"),
];

/// The usual spelling of a compact form or a known long name, found
/// without allocating.
fn known(name: &str) -> Option<&'static str> {
    KNOWN
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, long)| *long)
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
