//! RFC 3261 §12 dialogs as plain state: what a UA keeps between the
//! requests of one peer-to-peer relationship, and the two things it does
//! with it. It builds in-dialog requests (§12.2.1.1: Request-URI and Route
//! from the remote target and the route set, loose or strict routing) and
//! checks requests received in the dialog (§12.2.2: an out-of-order CSeq is
//! answered 500, a target refresh replaces the remote target).
//!
//! A [`Dialog`] is made by the UAS from the request it answers with a tag
//! ([`Dialog::uas`], §12.1.1) or by the UAC from a tagged 1xx or 2xx
//! ([`Dialog::uac`], §12.1.2; the response carries everything the UAC
//! needs). Sockets and where a request is sent are the owner's.

use crate::message::{reason_phrase, Message, NameAddr, ParseError};
use crate::method::Method;
use crate::view::{NameAddrRef, UriRef};

/// What identifies a dialog (§12): Call-ID and the two tags. The remote
/// tag is None for a peer that sent none (RFC 2543, §12.1.1).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct DialogId {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum State {
    /// Created by a provisional response.
    Early,
    /// Created or confirmed by a 2xx.
    Confirmed,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Dialog {
    pub id: DialogId,
    pub state: State,
    /// Our last CSeq number; None until we send a request (the UAS side).
    pub local_seq: Option<u32>,
    /// The peer's last CSeq number; None until it sends one (the UAC side).
    pub remote_seq: Option<u32>,
    /// Our From (as UAC) or To (as UAS) name-addr, without its tag.
    pub local_uri: String,
    /// The peer's name-addr, without its tag.
    pub remote_uri: String,
    /// The peer's Contact URI: the Request-URI of requests we send.
    pub remote_target: String,
    /// Our Contact value, put in requests we send (not ACK or CANCEL).
    pub local_contact: String,
    /// Record-Route values in the order Route headers are written.
    pub route_set: Vec<String>,
    /// Created over TLS with a SIPS Request-URI (§12.1.1).
    pub secure: bool,
}

/// The name-addr of a From or To value without its tag parameter.
fn without_tag(n: NameAddrRef<'_>) -> String {
    NameAddr::from(n).without_tag().to_string()
}

/// The URI of the first Contact: the remote target (§12.1.1, §12.1.2).
fn contact_uri(m: &Message) -> Result<String, ParseError> {
    let contact = m.view().contact()?.ok_or(ParseError::Missing("Contact"))?;
    Ok(contact.uri.to_string())
}

impl Dialog {
    /// The UAS's dialog from a dialog-creating request it answers with
    /// `local_tag` and `local_contact` (§12.1.1): route set from
    /// Record-Route in order, remote target from Contact, remote CSeq from
    /// the request. Early; [`Dialog::confirm`] once the 2xx is sent.
    pub fn uas(
        req: &Message,
        local_tag: &str,
        local_contact: &str,
        secure: bool,
    ) -> Result<Dialog, ParseError> {
        let v = req.view();
        let cseq = v.cseq()?;
        Ok(Dialog {
            id: DialogId {
                call_id: v.call_id().ok_or(ParseError::Missing("Call-ID"))?.into(),
                local_tag: local_tag.into(),
                remote_tag: v.from()?.tag.map(str::to_string),
            },
            state: State::Early,
            local_seq: None,
            remote_seq: Some(cseq.number),
            local_uri: without_tag(v.to()?),
            remote_uri: without_tag(v.from()?),
            remote_target: contact_uri(req)?,
            local_contact: local_contact.into(),
            route_set: req.values("Record-Route").map(str::to_string).collect(),
            secure,
        })
    }

    /// The UAC's dialog from a tagged 1xx (early) or 2xx (confirmed) to its
    /// request (§12.1.2): route set from Record-Route reversed, remote
    /// target from Contact, local CSeq from the request's (copied into the
    /// response, as are From, To and Call-ID).
    pub fn uac(resp: &Message, local_contact: &str, secure: bool) -> Result<Dialog, ParseError> {
        let v = resp.view();
        let code = resp.code().ok_or(ParseError::Missing("status line"))?;
        let to = v.to()?;
        let remote_tag = to.tag.ok_or(ParseError::Missing("To tag"))?;
        Ok(Dialog {
            id: DialogId {
                call_id: v.call_id().ok_or(ParseError::Missing("Call-ID"))?.into(),
                local_tag: v.from()?.tag.ok_or(ParseError::Missing("From tag"))?.into(),
                remote_tag: Some(remote_tag.into()),
            },
            state: if code < 200 {
                State::Early
            } else {
                State::Confirmed
            },
            local_seq: Some(v.cseq()?.number),
            remote_seq: None,
            local_uri: without_tag(v.from()?),
            remote_uri: without_tag(to),
            remote_target: contact_uri(resp)?,
            local_contact: local_contact.into(),
            route_set: Self::uac_route_set(resp),
            secure,
        })
    }

    fn uac_route_set(resp: &Message) -> Vec<String> {
        let mut routes: Vec<String> = resp.values("Record-Route").map(str::to_string).collect();
        routes.reverse();
        routes
    }

    /// The UAS has sent its 2xx.
    pub fn confirm(&mut self) {
        self.state = State::Confirmed;
    }

    /// A response the UAC receives in this dialog: the 2xx confirming an
    /// early dialog recomputes its route set and target (§13.2.2.4); a 2xx
    /// to a target refresh (re-INVITE, UPDATE) replaces the target
    /// (§12.2.1.2); the route set never changes once confirmed.
    pub fn on_response(&mut self, resp: &Message) {
        if !resp.code().is_some_and(|c| (200..300).contains(&c)) {
            return;
        }
        let refresh = resp
            .view()
            .cseq()
            .is_ok_and(|c| matches!(c.method, Method::Invite | Method::Update));
        if self.state == State::Early {
            self.state = State::Confirmed;
            self.route_set = Self::uac_route_set(resp);
        } else if !refresh {
            return;
        }
        if let Ok(target) = contact_uri(resp) {
            self.remote_target = target;
        }
    }

    /// Checks a request the peer sent in this dialog (§12.2.2): a CSeq
    /// lower than the last one is out of order, and the `Err` is the 500 to
    /// answer it with; otherwise it becomes the remote CSeq, and a target
    /// refresh's Contact the remote target. ACK and CANCEL carry the CSeq
    /// of the request they belong to and are not checked.
    pub fn on_request(&mut self, req: &Message) -> Result<(), Message> {
        let v = req.view();
        let method = req.request_method();
        if matches!(method, Some(Method::Ack | Method::Cancel)) {
            return Ok(());
        }
        let n = v.cseq().map_or(0, |c| c.number);
        if self.remote_seq.is_some_and(|last| n < last) {
            return Err(Message::response_to(req, 500, reason_phrase(500), None));
        }
        self.remote_seq = Some(n);
        if matches!(method, Some(Method::Invite | Method::Update)) {
            if let Ok(target) = contact_uri(req) {
                self.remote_target = target;
            }
        }
        Ok(())
    }

    /// Whether a request received belongs to this dialog: its Call-ID, its
    /// To tag ours, its From tag the peer's.
    pub fn is_for(&self, req: &Message) -> bool {
        let v = req.view();
        v.call_id() == Some(self.id.call_id.as_str())
            && v.to_tag() == Some(self.id.local_tag.as_str())
            && v.from_tag() == self.id.remote_tag.as_deref()
    }

    /// A request in this dialog with the next local CSeq (§12.2.1.1), our
    /// `via` on top.
    pub fn request(&mut self, method: Method<'_>, via: &str) -> Message {
        let n = self.local_seq.map_or(1, |n| n.wrapping_add(1));
        self.local_seq = Some(n);
        self.build(method, n, via)
    }

    /// The ACK for a 2xx to the INVITE with CSeq `invite_cseq` (§13.2.2.4).
    pub fn ack(&self, invite_cseq: u32, via: &str) -> Message {
        self.build(Method::Ack, invite_cseq, via)
    }

    fn build(&self, method: Method<'_>, cseq: u32, via: &str) -> Message {
        let (uri, routes) = self.request_uri_and_routes();
        let mut m = Message::request(method.as_str(), &uri);
        m.add_header("Via", via);
        m.add_header("Max-Forwards", "70");
        m.add_header(
            "From",
            format!("{};tag={}", self.local_uri, self.id.local_tag),
        );
        m.add_header(
            "To",
            match &self.id.remote_tag {
                Some(t) => format!("{};tag={t}", self.remote_uri),
                None => self.remote_uri.clone(),
            },
        );
        m.add_header("Call-ID", self.id.call_id.as_str());
        m.add_header("CSeq", format!("{cseq} {method}"));
        for r in routes {
            m.add_header("Route", r);
        }
        if !matches!(method, Method::Ack | Method::Cancel) {
            m.add_header("Contact", self.local_contact.as_str());
        }
        m
    }

    /// §12.2.1.1: with no route set or a loose-routing first hop (`lr`),
    /// the remote target is the Request-URI and the route set the Route
    /// headers; a strict router gets the request addressed to itself, the
    /// rest of the route set and the remote target as the last Route.
    fn request_uri_and_routes(&self) -> (String, Vec<String>) {
        let first = self.route_set.first().and_then(|r| {
            let uri = NameAddrRef::parse(r).ok()?.uri;
            let strict = !UriRef::parse(uri).ok()?.has_param("lr");
            strict.then_some(uri)
        });
        match first {
            None => (self.remote_target.clone(), self.route_set.clone()),
            Some(strict) => {
                // Header parameters (`?...`) are not allowed in a Request-URI.
                let uri = strict.split('?').next().unwrap_or(strict);
                let mut routes = self.route_set[1..].to_vec();
                routes.push(format!("<{}>", self.remote_target));
                (uri.to_string(), routes)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Message {
        let m = Message::parse(text.replace('\n', "\r\n").as_bytes()).unwrap();
        m.validate().unwrap();
        m
    }

    /// RFC 3261 §24.2 F1: Alice's INVITE, as Bob receives it.
    const F1: &str = "INVITE sip:bob@biloxi.com SIP/2.0
Via: SIP/2.0/UDP server10.biloxi.com;branch=z9hG4bK4b43c2ff8.1;received=192.0.2.3
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;received=192.0.2.1
Max-Forwards: 68
To: Bob <sip:bob@biloxi.com>
From: Alice <sip:alice@atlanta.com>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
Contact: <sip:alice@pc33.atlanta.com>
Content-Length: 0

";

    /// RFC 3261 §24.2 F9: Bob's 200 OK, as Alice receives it.
    const F9: &str = "SIP/2.0 200 OK
Via: SIP/2.0/UDP pc33.atlanta.com;branch=z9hG4bKnashds8;received=192.0.2.1
To: Bob <sip:bob@biloxi.com>;tag=a6c85cf
From: Alice <sip:alice@atlanta.com>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 314159 INVITE
Contact: <sip:bob@192.0.2.4>
Content-Length: 0

";

    /// RFC 3261 §24.2 F13: Bob's BYE, as Alice receives it.
    const F13: &str = "BYE sip:alice@pc33.atlanta.com SIP/2.0
Via: SIP/2.0/UDP 192.0.2.4;branch=z9hG4bKnashds10
Max-Forwards: 70
From: Bob <sip:bob@biloxi.com>;tag=a6c85cf
To: Alice <sip:alice@atlanta.com>;tag=1928301774
Call-ID: a84b4c76e66710
CSeq: 231 BYE
Content-Length: 0

";

    /// RFC 3261 §16.12.1.2: the Record-Route a dialog through four proxies
    /// collects, the third one a strict router.
    const FOUR_PROXIES: &str = "Record-Route: <sip:p4.domain.com;lr>
Record-Route: <sip:p3.middle.com>
Record-Route: <sip:p2.example.com;lr>
Record-Route: <sip:p1.example.com;lr>
";

    fn with_headers(msg: &str, extra: &str) -> String {
        msg.replacen("Content-Length", &format!("{extra}Content-Length"), 1)
    }

    const VIA: &str = "SIP/2.0/UDP 192.0.2.9;branch=z9hG4bKnew";

    #[test]
    fn uas_dialog_from_the_invite_it_answers() {
        let invite = parse(F1);
        let mut bob = Dialog::uas(&invite, "a6c85cf", "<sip:bob@192.0.2.4>", false).unwrap();
        assert_eq!(bob.id.call_id, "a84b4c76e66710");
        assert_eq!(bob.id.remote_tag.as_deref(), Some("1928301774"));
        assert_eq!((bob.local_seq, bob.remote_seq), (None, Some(314159)));
        assert_eq!(bob.remote_target, "sip:alice@pc33.atlanta.com");
        assert_eq!(bob.state, State::Early);
        bob.confirm();
        // Bob's BYE (F13): to Alice's Contact, his tag in From, hers in To.
        let bye = bob.request(Method::Bye, VIA);
        let v = bye.view();
        assert_eq!(bye.request_uri(), Some("sip:alice@pc33.atlanta.com"));
        assert_eq!(v.from().unwrap().uri, "sip:bob@biloxi.com");
        assert_eq!(
            (v.from_tag(), v.to_tag()),
            (Some("a6c85cf"), Some("1928301774"))
        );
        assert_eq!(v.to().unwrap().display, Some("Alice"));
        assert_eq!(v.cseq().unwrap().number, 1);
        assert_eq!(v.contact().unwrap().unwrap().uri, "sip:bob@192.0.2.4");
        assert_eq!(bye.header("Route"), None);
        bye.validate().unwrap();
        assert_eq!(
            bob.request(Method::Info, VIA).view().cseq().unwrap().number,
            2
        );
    }

    #[test]
    fn uac_dialog_from_the_2xx_and_its_ack() {
        let ok = parse(F9);
        let mut alice = Dialog::uac(&ok, "<sip:alice@pc33.atlanta.com>", false).unwrap();
        assert_eq!(alice.state, State::Confirmed);
        assert_eq!(alice.id.local_tag, "1928301774");
        assert_eq!(alice.id.remote_tag.as_deref(), Some("a6c85cf"));
        assert_eq!((alice.local_seq, alice.remote_seq), (Some(314159), None));
        // F12: the ACK has the INVITE's CSeq and no Contact.
        let ack = alice.ack(314159, VIA);
        assert_eq!(ack.request_uri(), Some("sip:bob@192.0.2.4"));
        assert_eq!(ack.cseq().unwrap(), (314159, "ACK"));
        assert_eq!(ack.header("Contact"), None);
        ack.validate().unwrap();
        let bye = alice.request(Method::Bye, VIA);
        assert_eq!(bye.cseq().unwrap(), (314160, "BYE"));
        assert_eq!(bye.view().to_tag(), Some("a6c85cf"));
        // Bob's BYE (F13) is in Alice's dialog and sets its remote CSeq.
        let f13 = parse(F13);
        assert!(alice.is_for(&f13));
        assert_eq!(alice.on_request(&f13), Ok(()));
        assert_eq!(alice.remote_seq, Some(231));
        assert!(!Dialog::uas(&parse(F1), "other", "<sip:b@h>", false)
            .unwrap()
            .is_for(&f13));
    }

    #[test]
    fn the_uas_keeps_record_route_in_order() {
        // §16.12.1.2: U2's BYE goes to the remote target through p4..p1.
        let invite = parse(&with_headers(F1, FOUR_PROXIES));
        let mut u2 = Dialog::uas(&invite, "t2", "<sip:bob@192.0.2.4>", false).unwrap();
        let bye = u2.request(Method::Bye, VIA);
        assert_eq!(bye.request_uri(), Some("sip:alice@pc33.atlanta.com"));
        assert_eq!(
            bye.header_values("Route"),
            [
                "<sip:p4.domain.com;lr>",
                "<sip:p3.middle.com>",
                "<sip:p2.example.com;lr>",
                "<sip:p1.example.com;lr>"
            ]
        );
    }

    #[test]
    fn the_uac_reverses_record_route() {
        let ok = parse(&with_headers(F9, FOUR_PROXIES));
        let mut u1 = Dialog::uac(&ok, "<sip:alice@pc33.atlanta.com>", false).unwrap();
        let bye = u1.request(Method::Bye, VIA);
        assert_eq!(bye.request_uri(), Some("sip:bob@192.0.2.4"));
        assert_eq!(
            bye.header_values("Route"),
            [
                "<sip:p1.example.com;lr>",
                "<sip:p2.example.com;lr>",
                "<sip:p3.middle.com>",
                "<sip:p4.domain.com;lr>"
            ]
        );
    }

    #[test]
    fn a_strict_router_first_gets_the_request_addressed_to_it() {
        // §12.2.1.1's example, word for word.
        let mut d = Dialog::uac(&parse(F9), "<sip:a@h>", false).unwrap();
        d.remote_target = "sip:user@remoteua".into();
        d.route_set = [
            "<sip:proxy1>",
            "<sip:proxy2>",
            "<sip:proxy3;lr>",
            "<sip:proxy4>",
        ]
        .map(String::from)
        .to_vec();
        let m = d.request(Method::Other("METHOD"), VIA);
        assert_eq!(m.request_uri(), Some("sip:proxy1"));
        assert_eq!(
            m.header_values("Route"),
            [
                "<sip:proxy2>",
                "<sip:proxy3;lr>",
                "<sip:proxy4>",
                "<sip:user@remoteua>"
            ]
        );
        d.route_set = vec!["<sip:proxy1?X-Hdr=1>".into()];
        let m = d.request(Method::Info, VIA);
        assert_eq!(m.request_uri(), Some("sip:proxy1"));
        assert_eq!(m.header_values("Route"), ["<sip:user@remoteua>"]);
    }

    #[test]
    fn an_out_of_order_cseq_is_answered_500() {
        let mut bob = Dialog::uas(&parse(F1), "a6c85cf", "<sip:bob@192.0.2.4>", false).unwrap();
        let in_dialog = |method: &str, n: u32, contact: &str| {
            let text = F1
                .replace(
                    "To: Bob <sip:bob@biloxi.com>",
                    "To: Bob <sip:bob@biloxi.com>;tag=a6c85cf",
                )
                .replace("INVITE sip:bob", &format!("{method} sip:bob"))
                .replace("314159 INVITE", &format!("{n} {method}"))
                .replace("<sip:alice@pc33.atlanta.com>", contact);
            parse(&text)
        };
        let reinvite = in_dialog("INVITE", 314160, "<sip:alice@192.0.2.101>");
        assert!(bob.is_for(&reinvite));
        assert_eq!(bob.on_request(&reinvite), Ok(()));
        assert_eq!(bob.remote_seq, Some(314160));
        assert_eq!(
            bob.remote_target, "sip:alice@192.0.2.101",
            "a target refresh"
        );
        let stale = in_dialog("INFO", 314159, "<sip:alice@192.0.2.102>");
        let r = bob.on_request(&stale).unwrap_err();
        assert_eq!((r.code(), r.cseq().unwrap()), (Some(500), (314159, "INFO")));
        assert_eq!(bob.remote_seq, Some(314160));
        assert_eq!(bob.remote_target, "sip:alice@192.0.2.101");
        // The ACK for the first INVITE carries its lower CSeq: never refused.
        assert_eq!(
            bob.on_request(&in_dialog("ACK", 314159, "<sip:x@y>")),
            Ok(())
        );
        assert_eq!(
            bob.on_request(&in_dialog("INFO", 314160, "<sip:x@y>")),
            Ok(())
        );
        assert_eq!(
            bob.remote_target, "sip:alice@192.0.2.101",
            "INFO is no refresh"
        );
    }

    #[test]
    fn the_2xx_fixes_an_early_dialogs_route_set_for_good() {
        let ringing = parse(
            &with_headers(F9, "Record-Route: <sip:early.example.com;lr>\n")
                .replace("200 OK", "180 Ringing")
                .replace("<sip:bob@192.0.2.4>", "<sip:bob@192.0.2.5>"),
        );
        let mut d = Dialog::uac(&ringing, "<sip:a@h>", false).unwrap();
        assert_eq!(d.state, State::Early);
        assert_eq!(d.route_set, ["<sip:early.example.com;lr>"]);
        let ok = parse(&with_headers(F9, FOUR_PROXIES));
        d.on_response(&ok);
        assert_eq!(d.state, State::Confirmed);
        assert_eq!(
            d.route_set.first().map(String::as_str),
            Some("<sip:p1.example.com;lr>")
        );
        assert_eq!(d.remote_target, "sip:bob@192.0.2.4");
        // A re-INVITE's 2xx refreshes the target only; an INFO's does nothing.
        let moved = F9.replace("<sip:bob@192.0.2.4>", "<sip:bob@192.0.2.6>");
        d.on_response(&parse(&moved.replace("314159 INVITE", "314161 INFO")));
        assert_eq!(d.remote_target, "sip:bob@192.0.2.4");
        d.on_response(&parse(&with_headers(
            &moved,
            "Record-Route: <sip:new;lr>\n",
        )));
        assert_eq!(d.remote_target, "sip:bob@192.0.2.6");
        assert_eq!(d.route_set.len(), 4);
    }

    #[test]
    fn what_a_dialog_cannot_be_made_from_is_named() {
        let no_tag = parse(&F9.replace(";tag=a6c85cf", ""));
        assert_eq!(
            Dialog::uac(&no_tag, "<sip:a@h>", false),
            Err(ParseError::Missing("To tag"))
        );
        let no_contact = parse(&F1.replace("Contact: <sip:alice@pc33.atlanta.com>\n", ""));
        assert_eq!(
            Dialog::uas(&no_contact, "t", "<sip:b@h>", false),
            Err(ParseError::Missing("Contact"))
        );
        let bad_contact = parse(&F1.replace("<sip:alice@pc33.atlanta.com>", "<sip:alice"));
        let e = Dialog::uas(&bad_contact, "t", "<sip:b@h>", false).unwrap_err();
        assert!(
            e.to_string().starts_with("Bad Contact: unclosed '<'"),
            "{e}"
        );
        assert!(
            Dialog::uac(&parse(F1), "<sip:a@h>", false).is_err(),
            "a request"
        );
    }
}
