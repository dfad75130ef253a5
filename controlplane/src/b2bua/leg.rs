//! One leg of a B2BUA call: the RFC 3261 §12 dialog Tollgate holds with
//! the caller (A, where it is the UAS) or with the callee (B, where it is
//! the UAC, and which exists only from B's first tagged response), and the
//! address that leg's requests are sent to.

use std::net::SocketAddr;
use tollgate_sip::dialog::Dialog;
use tollgate_sip::message::{Message, ParseError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    A,
    B,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::A => Side::B,
            Side::B => Side::A,
        }
    }
}

/// A leg: its dialog (`Option<Dialog>` for B, none before B's first
/// tagged response) and where its requests go.
#[derive(Debug, Clone)]
pub struct Leg<D = Dialog> {
    pub dialog: D,
    pub addr: SocketAddr,
}

impl Leg {
    /// The caller's leg from its INVITE, which came from `from` (where our
    /// requests go): we are the UAS with `local_tag` and `contact`
    /// (§12.1.1). An INVITE without Contact gets `from` as its remote
    /// target; a malformed Contact is an error.
    pub fn caller(
        invite: &Message,
        local_tag: &str,
        contact: &str,
        from: SocketAddr,
        secure: bool,
    ) -> Result<Leg, ParseError> {
        let uas = |m: &Message| Dialog::uas(m, local_tag, contact, secure);
        let dialog = or_contact(invite, &format!("sip:{from}"), uas)?;
        Ok(Leg { dialog, addr: from })
    }
}

/// `make` of `m`; when `m` has no Contact, of a copy of `m` whose Contact
/// is `target`: a peer that sent none is reached there.
pub fn or_contact<T>(
    m: &Message,
    target: &str,
    make: impl Fn(&Message) -> Result<T, ParseError>,
) -> Result<T, ParseError> {
    match make(m) {
        Err(ParseError::Missing("Contact")) => {
            let mut with_contact = m.clone();
            with_contact.add_header("Contact", format!("<{target}>"));
            make(&with_contact)
        }
        made => made,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_sip::method::Method;

    const INVITE: &str = "INVITE sip:6000@198.51.100.1 SIP/2.0\r\n\
Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: \"Alice\" <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:6000@198.51.100.1>\r\nCall-ID: c1\r\n\
CSeq: 7 INVITE\r\nContact: <sip:alice@192.0.2.1:5070>\r\n\
Content-Length: 0\r\n\r\n";

    #[test]
    fn a_caller_without_contact_is_reached_where_it_sent_from() {
        let from: SocketAddr = "192.0.2.1:5070".parse().unwrap();
        let text = INVITE.replace("Contact: <sip:alice@192.0.2.1:5070>\r\n", "");
        let invite = Message::parse(text.as_bytes()).unwrap();
        let mut a = Leg::caller(&invite, "t1", "<sip:198.51.100.1>", from, false).unwrap();
        assert_eq!(a.addr, from);
        let bye = a
            .dialog
            .request(Method::Bye, "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKx");
        assert_eq!(bye.request_uri(), Some("sip:192.0.2.1:5070"));
        assert_eq!(
            bye.header("To"),
            Some("\"Alice\" <sip:alice@192.0.2.1>;tag=a1")
        );
        let bad = INVITE.replace("<sip:alice@192.0.2.1:5070>", "<sip:alice");
        let invite = Message::parse(bad.as_bytes()).unwrap();
        let e = Leg::caller(&invite, "t1", "<sip:198.51.100.1>", from, false).unwrap_err();
        assert!(e.to_string().starts_with("Bad Contact"), "{e}");
    }
}
