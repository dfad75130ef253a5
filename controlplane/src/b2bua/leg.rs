//! One leg of a B2BUA call: the dialog (RFC 3261 §12) Tollgate holds with
//! the caller (A, where it is the UAS) or with the callee (B, where it is
//! the UAC), and the requests it builds inside it.

use std::net::SocketAddr;
use tollgate_sip::message::{Message, NameAddr};

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

#[derive(Debug, Clone)]
pub struct Leg {
    pub call_id: String,
    pub local_tag: String,
    /// The far end's tag; for B known from its first tagged response.
    pub remote_tag: Option<String>,
    /// Our name-addr (without tag) as this dialog's local URI.
    pub local_uri: String,
    pub remote_uri: String,
    /// Our last CSeq number on this leg.
    pub cseq: u32,
    /// The far end's Contact: the Request-URI of requests we send.
    pub target: String,
    /// Route set, in the order Route headers are written.
    pub routes: Vec<String>,
    /// Where requests on this leg are sent.
    pub addr: SocketAddr,
}

/// A header value without its tag parameter.
fn without_tag(v: &str) -> String {
    match NameAddr::parse(v) {
        Ok(n) => n.without_tag().to_string(),
        Err(_) => v.to_string(),
    }
}

fn contact_uri(m: &Message) -> Option<String> {
    let c = m.header_values("Contact").into_iter().next()?;
    NameAddr::parse(c).ok().map(|n| n.uri)
}

impl Leg {
    /// The caller's dialog, from its INVITE (we are the UAS); `from` is
    /// where the INVITE came from, which is where our requests go.
    pub fn from_invite(invite: &Message, local_tag: String, from: SocketAddr) -> Leg {
        Leg {
            call_id: invite.call_id().unwrap_or_default().to_string(),
            local_tag,
            remote_tag: invite.from_tag(),
            local_uri: without_tag(invite.header("To").unwrap_or_default()),
            remote_uri: without_tag(invite.header("From").unwrap_or_default()),
            cseq: 0,
            target: contact_uri(invite).unwrap_or_else(|| format!("sip:{from}")),
            routes: invite
                .header_values("Record-Route")
                .into_iter()
                .map(str::to_string)
                .collect(),
            addr: from,
        }
    }

    /// The callee's dialog, before any response.
    pub fn outgoing(
        call_id: String,
        local_tag: String,
        from: String,
        to: String,
        target: String,
        addr: SocketAddr,
    ) -> Leg {
        Leg {
            call_id,
            local_tag,
            remote_tag: None,
            local_uri: from,
            remote_uri: to,
            cseq: 0,
            target,
            routes: Vec::new(),
            addr,
        }
    }

    /// Learns the callee's tag, Contact and route set from a response.
    pub fn update_from_response(&mut self, resp: &Message) {
        if let Some(t) = resp.to_tag() {
            self.remote_tag = Some(t);
        }
        if let Some(c) = contact_uri(resp) {
            self.target = c;
        }
        let rr: Vec<String> = resp
            .header_values("Record-Route")
            .into_iter()
            .rev()
            .map(str::to_string)
            .collect();
        if !rr.is_empty() {
            self.routes = rr;
        }
    }

    fn with_tag(uri: &str, tag: Option<&str>) -> String {
        match tag {
            Some(t) => format!("{uri};tag={t}"),
            None => uri.to_string(),
        }
    }

    /// A request in this dialog with the next CSeq (or `cseq` as given,
    /// for ACK), our `via` and `contact`.
    pub fn request(
        &mut self,
        method: &str,
        via: String,
        contact: &str,
        cseq: Option<u32>,
    ) -> Message {
        let n = match cseq {
            Some(n) => n,
            None => {
                self.cseq += 1;
                self.cseq
            }
        };
        let mut m = Message::request(method, &self.target);
        m.add_header("Via", via);
        m.add_header("Max-Forwards", "70");
        m.add_header(
            "From",
            Self::with_tag(&self.local_uri, Some(&self.local_tag)),
        );
        m.add_header(
            "To",
            Self::with_tag(&self.remote_uri, self.remote_tag.as_deref()),
        );
        m.add_header("Call-ID", self.call_id.clone());
        m.add_header("CSeq", format!("{n} {method}"));
        for r in &self.routes {
            m.add_header("Route", r.clone());
        }
        if method != "ACK" && method != "CANCEL" {
            m.add_header("Contact", contact.to_string());
        }
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_carry_the_dialog_state() {
        let invite = Message::parse(
            b"INVITE sip:6000@198.51.100.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\n\
From: \"Alice\" <sip:alice@192.0.2.1>;tag=a1\r\nTo: <sip:6000@198.51.100.1>\r\nCall-ID: c1\r\n\
CSeq: 7 INVITE\r\nContact: <sip:alice@192.0.2.1:5070>\r\nRecord-Route: <sip:p1;lr>, <sip:p2;lr>\r\n\
Content-Length: 0\r\n\r\n",
        )
        .unwrap();
        let from: SocketAddr = "192.0.2.1:5070".parse().unwrap();
        let mut a = Leg::from_invite(&invite, "t1".into(), from);
        let bye = a.request(
            "BYE",
            "SIP/2.0/UDP 198.51.100.1;branch=z9hG4bKx".into(),
            "<sip:198.51.100.1>",
            None,
        );
        assert_eq!(bye.request_uri(), Some("sip:alice@192.0.2.1:5070"));
        assert_eq!(bye.from_tag().as_deref(), Some("t1"));
        assert_eq!(bye.to_tag().as_deref(), Some("a1"));
        assert_eq!(
            bye.header("To"),
            Some("\"Alice\" <sip:alice@192.0.2.1>;tag=a1")
        );
        assert_eq!(bye.cseq().unwrap(), (1, "BYE"));
        assert_eq!(
            bye.header_values("Route"),
            vec!["<sip:p1;lr>", "<sip:p2;lr>"]
        );
        bye.validate().unwrap();
    }
}
