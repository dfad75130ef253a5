//! The typed view of the headers transactions, dialogs and the B2BUA read
//! on every message (RFC 3261 §8.1.1, §18.2, RFC 3581): the top Via, From,
//! To, Call-ID, CSeq, the first Contact and Max-Forwards.
//!
//! `Parsed` is built once from a header list and keeps only spans into
//! the header values; [`View`] pairs it with the list and
//! hands out borrowed values, so reading a tag or a branch neither
//! allocates nor parses again. The grammar of Via and name-addr values
//! lives here once: the owned `message::Via` and `message::NameAddr` are
//! built from these borrowed parses.

use crate::headers::Header;
use crate::lex::{self, clip, is_token, split_host_port, Span};
use crate::message::ParseError;
use crate::method::Method;

/// A name-addr or addr-spec with header parameters (From, To, Contact,
/// Route and Record-Route values); `S` is `&str` in a [`NameAddrRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NameAddrOf<S> {
    /// The display name as written, without its quotes (escapes kept).
    pub display: Option<S>,
    /// The URI text as written, without angle brackets.
    pub uri: S,
    /// The header parameters after the URI, as written (`tag=1;x`).
    pub params: S,
    pub tag: Option<S>,
}

pub type NameAddrRef<'a> = NameAddrOf<&'a str>;

impl<S: Copy> NameAddrOf<S> {
    fn map<T>(self, f: impl Fn(S) -> T) -> NameAddrOf<T> {
        NameAddrOf {
            display: self.display.map(&f),
            uri: f(self.uri),
            params: f(self.params),
            tag: self.tag.map(&f),
        }
    }
}

impl<'a> NameAddrRef<'a> {
    pub fn parse(v: &'a str) -> Result<NameAddrRef<'a>, String> {
        let v = v.trim_ascii();
        if v.is_empty() {
            return Err("empty".into());
        }
        let Some(lt) = lex::find_unquoted(v, b'<') else {
            return Self::addr_spec(v);
        };
        let gt = v[lt..]
            .find('>')
            .map(|i| i + lt)
            .ok_or_else(|| format!("unclosed '<' in {:?}", clip(v)))?;
        let display = v[..lt].trim_ascii();
        // A quoted display name is kept as written inside its quotes.
        let display = display
            .strip_prefix('"')
            .and_then(|d| d.strip_suffix('"'))
            .unwrap_or(display);
        let after = v[gt + 1..].trim_ascii();
        let params = match after.strip_prefix(';') {
            Some(p) => p,
            None if after.is_empty() => after,
            None => return Err(format!("unexpected {:?} after '>'", clip(after))),
        };
        let uri = v[lt + 1..gt].trim_ascii();
        if !uri.contains(':') {
            return Err(format!("bad URI {:?}", clip(uri)));
        }
        Self::check_params(params)?;
        Ok(NameAddrOf {
            display: (!display.is_empty()).then_some(display),
            uri,
            params,
            tag: lex::param(params, "tag").flatten(),
        })
    }

    /// Without angle brackets, parameters after the URI are the header's.
    fn addr_spec(v: &'a str) -> Result<NameAddrRef<'a>, String> {
        let (uri, params) = match v.find(';') {
            Some(i) => (v[..i].trim_ascii(), &v[i + 1..]),
            None => (v, &v[v.len()..]),
        };
        if !uri.contains(':') || uri.contains(char::is_whitespace) {
            return Err(format!("bad URI {:?}", clip(uri)));
        }
        // Printed back in brackets, a '>' here would close them early.
        if uri.contains(['<', '>']) {
            return Err(format!("'<' or '>' in the bare URI {:?}", clip(uri)));
        }
        Self::check_params(params)?;
        Ok(NameAddrOf {
            display: None,
            uri,
            params,
            tag: lex::param(params, "tag").flatten(),
        })
    }

    /// A tag added after parameters with an unclosed quote would be read
    /// as inside it.
    fn check_params(params: &str) -> Result<(), String> {
        if lex::quotes_closed(params) {
            Ok(())
        } else {
            Err(format!(
                "unclosed '\"' in the parameters {:?}",
                clip(params)
            ))
        }
    }

    /// Header parameter `name` (any case); None when absent or valueless.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        lex::param(self.params, name).flatten()
    }
}

/// A SIP or SIPS URI, `sip:user@host:port;params?headers`, borrowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UriRef<'a> {
    /// `sip` or `sips`, as written (compare it ignoring case).
    pub scheme: &'a str,
    pub user: Option<&'a str>,
    /// IPv6 without brackets.
    pub host: &'a str,
    pub port: Option<u16>,
    /// The URI parameters as written (`transport=tcp;lr`).
    pub params: &'a str,
}

impl<'a> UriRef<'a> {
    pub fn parse(s: &'a str) -> Result<UriRef<'a>, String> {
        let s = s.trim_ascii();
        if s.contains(char::is_whitespace) {
            return Err(format!("{:?} contains whitespace", clip(s)));
        }
        let (scheme, rest) = s
            .split_once(':')
            .ok_or_else(|| format!("{:?} has no scheme", clip(s)))?;
        if !scheme.eq_ignore_ascii_case("sip") && !scheme.eq_ignore_ascii_case("sips") {
            return Err(format!("unsupported URI scheme {:?}", clip(scheme)));
        }
        // A user part may hold '?' and ';' but never a raw '@' (it is
        // escaped), so the first '@' ends it; '?' after the host starts headers.
        let (userinfo, hostpart) = match rest.find('@') {
            Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
            None => (None, rest),
        };
        let hostpart = hostpart.split('?').next().unwrap_or_default();
        let (hostport, params) = match hostpart.find(';') {
            Some(i) => (&hostpart[..i], &hostpart[i + 1..]),
            None => (hostpart, &hostpart[hostpart.len()..]),
        };
        let (host, port) = split_host_port(hostport)?;
        Ok(UriRef {
            scheme,
            user: userinfo.map(|u| u.split(':').next().unwrap_or_default()),
            host,
            port,
            params,
        })
    }

    /// Parameter `name` (any case); None when absent or valueless.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        lex::param(self.params, name).flatten()
    }

    /// Whether parameter `name` (any case) is there, with a value or not.
    pub fn has_param(&self, name: &str) -> bool {
        lex::param(self.params, name).is_some()
    }

    pub fn is_sips(&self) -> bool {
        self.scheme.eq_ignore_ascii_case("sips")
    }
}

/// One Via value, `SIP/2.0/UDP host:port;branch=...`; `S` is `&str` in a
/// [`ViaRef`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ViaOf<S> {
    /// As written (compare it ignoring case).
    pub transport: S,
    /// The sent-by host, IPv6 without brackets.
    pub host: S,
    pub port: Option<u16>,
    /// The parameters as written (`branch=z9hG4bK1;rport`).
    pub params: S,
    pub branch: Option<S>,
    /// Where the next hop saw the request come from (§18.2.1).
    pub received: Option<S>,
    /// RFC 3581's rport: `Some("")` when asked for, the port once filled in.
    pub rport: Option<S>,
}

pub type ViaRef<'a> = ViaOf<&'a str>;

impl<S: Copy> ViaOf<S> {
    fn map<T>(self, f: impl Fn(S) -> T) -> ViaOf<T> {
        ViaOf {
            transport: f(self.transport),
            host: f(self.host),
            port: self.port,
            params: f(self.params),
            branch: self.branch.map(&f),
            received: self.received.map(&f),
            rport: self.rport.map(&f),
        }
    }
}

impl<'a> ViaRef<'a> {
    pub fn parse(v: &'a str) -> Result<ViaRef<'a>, String> {
        // "SIP / 2.0 / UDP host" (RFC 4475 allows whitespace around '/').
        let mut parts = v.splitn(3, '/');
        let (name, version, tail) = (parts.next(), parts.next(), parts.next());
        if !name.is_some_and(|n| n.trim_ascii().eq_ignore_ascii_case("SIP"))
            || version.map(str::trim) != Some("2.0")
        {
            return Err(format!("{:?} is not SIP/2.0/transport", clip(v)));
        }
        let tail = tail.unwrap_or_default().trim_ascii_start();
        let t_end = tail
            .find(char::is_whitespace)
            .ok_or_else(|| format!("{:?} has no sent-by", clip(v)))?;
        let transport = &tail[..t_end];
        let after = tail[t_end..].trim_ascii();
        if !is_token(transport) || after.is_empty() {
            return Err(format!("{:?} has no transport or sent-by", clip(v)));
        }
        let (sent_by, params) = match after.find(';') {
            Some(i) => (after[..i].trim_ascii(), &after[i + 1..]),
            None => (after, &after[after.len()..]),
        };
        let (host, port) = split_host_port(sent_by)?;
        let mut via = ViaOf {
            transport,
            host,
            port,
            params,
            branch: None,
            received: None,
            rport: None,
        };
        // One pass over the parameters; the first valued one of each counts.
        for (k, v) in lex::params(params) {
            let is = |name: &str| k.eq_ignore_ascii_case(name);
            let (slot, value) = if is("branch") {
                (&mut via.branch, v)
            } else if is("received") {
                (&mut via.received, v)
            } else if is("rport") {
                (&mut via.rport, Some(v.unwrap_or(&k[k.len()..])))
            } else {
                continue;
            };
            if slot.is_none() {
                *slot = value;
            }
        }
        Ok(via)
    }

    /// Parameter `name` (any case); None when absent or valueless.
    pub fn param(&self, name: &str) -> Option<&'a str> {
        lex::param(self.params, name).flatten()
    }

    /// The sent-by port, or the default for the transport (§18.2.2).
    pub fn port_or_default(&self) -> u16 {
        let tls = self.transport.eq_ignore_ascii_case("TLS");
        self.port.unwrap_or(if tls { 5061 } else { 5060 })
    }
}

/// CSeq: the sequence number and the method it counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CSeq<'a> {
    pub number: u32,
    pub method: Method<'a>,
}

/// CSeq's number and method text.
fn parse_cseq(v: &str) -> Result<(u32, &str), String> {
    let bad = || format!("{:?} is not a number below 2^32 and a method", clip(v));
    let mut it = v.split_whitespace();
    let number = it.next().and_then(|n| n.parse().ok()).ok_or_else(bad)?;
    let method = it.next().filter(|m| is_token(m)).ok_or_else(bad)?;
    if it.next().is_some() {
        return Err(bad());
    }
    Ok((number, method))
}

/// A CSeq kept as its number and the span of its method.
#[derive(Debug, Clone, Copy)]
struct CSeqAt {
    number: u32,
    method: Span,
}

/// Where a header's parsed value is: its index in the list and the spans
/// of its parts in that header's value; or why it is not there.
type Field<T> = Result<(usize, T), ParseError>;

/// The parsed headers, as offsets into the list they were parsed from.
#[derive(Debug, Clone)]
pub(crate) struct Parsed {
    via: Field<ViaOf<Span>>,
    from: Field<NameAddrOf<Span>>,
    to: Field<NameAddrOf<Span>>,
    call_id: Option<usize>,
    cseq: Field<CSeqAt>,
    contact: Option<Field<NameAddrOf<Span>>>,
    max_forwards: Option<Result<u32, ParseError>>,
}

fn position(headers: &[Header], name: &str) -> Option<usize> {
    headers
        .iter()
        .position(|h| h.name.eq_ignore_ascii_case(name))
}

/// Parses the first `name` header (the first list item of any `name`
/// header when `list`) with `parse`, then keeps what it found as spans via
/// `spans`. None when there is no such header (or list item).
fn field<'h, P, T>(
    headers: &'h [Header],
    name: &'static str,
    list: bool,
    parse: impl FnOnce(&'h str) -> Result<P, String>,
    spans: impl FnOnce(P, &'h str) -> T,
) -> Option<Field<T>> {
    let mut named = headers
        .iter()
        .enumerate()
        .filter(|(_, h)| h.name.eq_ignore_ascii_case(name));
    let (i, text) = if list {
        named.find_map(|(i, h)| lex::list_items(&h.value).next().map(|t| (i, t)))?
    } else {
        named.next().map(|(i, h)| (i, h.value.as_str()))?
    };
    let parsed = parse(text).map_err(|what| ParseError::Header { name, what });
    Some(parsed.map(|p| (i, spans(p, &headers[i].value))))
}

fn required<T>(f: Option<Field<T>>, name: &'static str) -> Field<T> {
    f.unwrap_or(Err(ParseError::Missing(name)))
}

impl Parsed {
    pub(crate) fn new(headers: &[Header]) -> Parsed {
        let name_addr = |name, list| {
            field(headers, name, list, NameAddrRef::parse, |n, v| {
                n.map(|s| Span::of(v, s))
            })
        };
        let via = field(headers, "Via", true, ViaRef::parse, |n, v| {
            n.map(|s| Span::of(v, s))
        });
        let cseq = field(headers, "CSeq", false, parse_cseq, |(number, m), v| {
            CSeqAt {
                number,
                method: Span::of(v, m),
            }
        });
        Parsed {
            via: required(via, "Via"),
            from: required(name_addr("From", false), "From"),
            to: required(name_addr("To", false), "To"),
            call_id: position(headers, "Call-ID"),
            cseq: required(cseq, "CSeq"),
            contact: name_addr("Contact", true),
            max_forwards: position(headers, "Max-Forwards").map(|i| {
                let v = &headers[i].value;
                v.parse().map_err(|_| ParseError::Header {
                    name: "Max-Forwards",
                    what: format!("{:?} is not a number below 2^32", clip(v)),
                })
            }),
        }
    }
}

/// The typed headers of one message, borrowed from it.
#[derive(Clone, Copy)]
pub struct View<'a> {
    headers: &'a [Header],
    parsed: &'a Parsed,
}

impl<'a> View<'a> {
    pub(crate) fn new(headers: &'a [Header], parsed: &'a Parsed) -> View<'a> {
        View { headers, parsed }
    }

    fn value(&self, i: usize) -> &'a str {
        self.headers.get(i).map_or("", |h| h.value.as_str())
    }

    fn name_addr(&self, f: &'a Field<NameAddrOf<Span>>) -> Result<NameAddrRef<'a>, ParseError> {
        let (i, n) = f.as_ref().map_err(Clone::clone)?;
        let v = self.value(*i);
        Ok(n.map(|s| s.text(v)))
    }

    /// The top Via: the first value of the first Via header.
    pub fn via(&self) -> Result<ViaRef<'a>, ParseError> {
        let (i, via) = self.parsed.via.as_ref().map_err(Clone::clone)?;
        let v = self.value(*i);
        Ok(via.map(|s| s.text(v)))
    }

    pub fn from(&self) -> Result<NameAddrRef<'a>, ParseError> {
        self.name_addr(&self.parsed.from)
    }

    pub fn to(&self) -> Result<NameAddrRef<'a>, ParseError> {
        self.name_addr(&self.parsed.to)
    }

    /// The From tag; None when absent or From is malformed.
    pub fn from_tag(&self) -> Option<&'a str> {
        self.from().ok()?.tag
    }

    /// The To tag; None when absent or To is malformed.
    pub fn to_tag(&self) -> Option<&'a str> {
        self.to().ok()?.tag
    }

    pub fn call_id(&self) -> Option<&'a str> {
        self.parsed.call_id.map(|i| self.value(i))
    }

    pub fn cseq(&self) -> Result<CSeq<'a>, ParseError> {
        let (i, c) = self.parsed.cseq.as_ref().map_err(Clone::clone)?;
        Ok(CSeq {
            number: c.number,
            method: Method::parse(c.method.text(self.value(*i))),
        })
    }

    /// The first Contact value; `Ok(None)` without a Contact header.
    pub fn contact(&self) -> Result<Option<NameAddrRef<'a>>, ParseError> {
        self.parsed
            .contact
            .as_ref()
            .map(|f| self.name_addr(f))
            .transpose()
    }

    /// `Ok(None)` without a Max-Forwards header.
    pub fn max_forwards(&self) -> Result<Option<u32>, ParseError> {
        self.parsed.max_forwards.clone().transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;

    fn parse(text: &str) -> Message {
        Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Compact forms for every header the view reads, two Vias in one
    /// line, RFC 3581 rport and received on the top one.
    const COMPACT: &str = "BYE sip:bob@192.0.2.4 SIP/2.0\r\n\
v: SIP/2.0/udp 192.0.2.1:5070;received=198.51.100.7;rport=41234;branch=z9hG4bKtop , SIP/2.0/TCP [2001:db8::9];branch=z9hG4bK2\r\n\
v: SIP/2.0/TLS proxy.example.com;branch=z9hG4bK3;rport\r\n\
f: \"A. G. Bell\" <sip:agb@bell-telephone.com> ;TAG=a48s\r\n\
t: sip:watson@bell-telephone.com;tag=w1\r\n\
i: a84b4c76e66710\r\n\
CSeq: 4711 BYE\r\n\
m: <sip:agb@192.0.2.1:5070;transport=udp>;expires=60, <sip:other@192.0.2.2>\r\n\
Max-Forwards: 69\r\n\
l: 0\r\n\r\n";

    #[test]
    fn every_accessor_reads_compact_forms() {
        let m = parse(COMPACT);
        let v = m.view();
        let via = v.via().unwrap();
        assert_eq!(via.transport, "udp");
        assert_eq!((via.host, via.port), ("192.0.2.1", Some(5070)));
        assert_eq!(via.branch, Some("z9hG4bKtop"));
        assert_eq!(via.received, Some("198.51.100.7"));
        assert_eq!(via.rport, Some("41234"));
        assert_eq!(via.port_or_default(), 5070);
        let from = v.from().unwrap();
        assert_eq!(from.display, Some("A. G. Bell"));
        assert_eq!(from.uri, "sip:agb@bell-telephone.com");
        assert_eq!(from.tag, Some("a48s"));
        let to = v.to().unwrap();
        assert_eq!(
            (to.display, to.uri),
            (None, "sip:watson@bell-telephone.com")
        );
        assert_eq!(v.to_tag(), Some("w1"));
        assert_eq!(v.from_tag(), Some("a48s"));
        assert_eq!(v.call_id(), Some("a84b4c76e66710"));
        let cseq = v.cseq().unwrap();
        assert_eq!((cseq.number, cseq.method), (4711, Method::Bye));
        let contact = v.contact().unwrap().unwrap();
        assert_eq!(contact.uri, "sip:agb@192.0.2.1:5070;transport=udp");
        assert_eq!(contact.param("Expires"), Some("60"));
        assert_eq!(v.max_forwards(), Ok(Some(69)));
        assert_eq!(m.request_method(), Some(Method::Bye));
        m.validate().unwrap();
    }

    #[test]
    fn uris_are_read_in_place() {
        let u = UriRef::parse(" SIPS:+1555;npdi@[2001:db8::1]:5061;LR;transport=tls?h=1 ").unwrap();
        assert_eq!(
            (u.user, u.host, u.port),
            (Some("+1555;npdi"), "2001:db8::1", Some(5061))
        );
        assert!(u.is_sips() && u.has_param("lr") && !u.has_param("maddr"));
        assert_eq!(u.param("Transport"), Some("tls"));
        let e = |s| UriRef::parse(s).unwrap_err();
        assert!(e("tel:+1555").starts_with("unsupported URI scheme \"tel\""));
        assert!(e("sip:a b@h").contains("whitespace"));
        assert!(e("sip:a@[::1").starts_with("unclosed '['"));
        assert!(e("sip:a@h:70000").starts_with("bad port"));
    }

    #[test]
    fn the_top_via_is_the_first_of_a_list_in_one_line() {
        let m = parse(COMPACT);
        let vias: Vec<_> = m.values("Via").map(|v| ViaRef::parse(v).unwrap()).collect();
        assert_eq!(vias.len(), 3);
        assert_eq!(vias[0], m.view().via().unwrap());
        assert_eq!((vias[1].host, vias[1].port), ("2001:db8::9", None));
        assert_eq!(vias[2].rport, Some(""));
        assert_eq!(vias[2].port_or_default(), 5061);
    }

    #[test]
    fn changing_a_header_changes_what_the_view_reads() {
        let mut m = parse(COMPACT);
        assert_eq!(m.view().to_tag(), Some("w1"));
        m.set_header("t", "<sip:watson@bell-telephone.com>;tag=w2");
        assert_eq!(m.view().to_tag(), Some("w2"));
        assert_eq!(m.to_tag().as_deref(), Some("w2"));
        m.push_front("Via", "SIP/2.0/UDP 203.0.113.1;branch=z9hG4bKnew");
        assert_eq!(m.view().via().unwrap().branch, Some("z9hG4bKnew"));
        m.remove_header("Via");
        assert_eq!(m.view().via(), Err(ParseError::Missing("Via")));
        m.set_header("CSeq", "4712 BYE");
        assert_eq!(m.view().cseq().unwrap().number, 4712);
        m.remove_header("m");
        assert_eq!(m.view().contact(), Ok(None));
        m.add_header("Contact", "<sip:late@192.0.2.1>");
        assert_eq!(
            m.view().contact().unwrap().unwrap().uri,
            "sip:late@192.0.2.1"
        );
        m.headers.retain(|h| h.name != "Call-ID");
        assert_eq!(m.view().call_id(), None);
        m.set_header("Max-Forwards", "0");
        assert_eq!(m.max_forwards(), Some(0));
    }

    #[test]
    fn a_clone_keeps_a_view_of_its_own_headers() {
        let m = parse(COMPACT);
        assert_eq!(m.view().from_tag(), Some("a48s"));
        let mut c = m.clone();
        c.set_header("From", "<sip:x@example.com>;tag=other");
        assert_eq!(c.view().from_tag(), Some("other"));
        assert_eq!(m.view().from_tag(), Some("a48s"));
        assert_eq!(m.clone(), m);
    }

    #[test]
    fn malformed_headers_say_which_and_why() {
        let with = |from: &str, to: &str| {
            let text = COMPACT.replacen(from, to, 1);
            parse(&text)
        };
        let m = with("v: SIP/2.0/udp", "v: SIP/3.0/udp");
        let e = m.view().via().unwrap_err();
        assert!(matches!(e, ParseError::Header { name: "Via", .. }), "{e}");
        assert!(e.to_string().starts_with("Bad Via: \"SIP/3.0/udp"), "{e}");
        let m = with("192.0.2.1:5070;", "192.0.2.1:99999;");
        assert!(m
            .view()
            .via()
            .unwrap_err()
            .to_string()
            .contains("bad port \"99999\""));
        let m = with(
            "f: \"A. G. Bell\" <sip:agb@bell-telephone.com>",
            "f: <sip:agb",
        );
        assert!(m
            .view()
            .from()
            .unwrap_err()
            .to_string()
            .starts_with("Bad From: unclosed '<'"));
        assert_eq!(m.view().from_tag(), None);
        assert_eq!(
            m.view().to_tag(),
            Some("w1"),
            "one bad header spoils no other"
        );
        let m = with("CSeq: 4711 BYE", "CSeq: 99999999999 BYE");
        assert!(m
            .view()
            .cseq()
            .unwrap_err()
            .to_string()
            .starts_with("Bad CSeq: \"99999999999 BYE\""));
        let m = with("CSeq: 4711 BYE", "CSeq: 4711 BYE extra");
        assert!(m.validate().unwrap_err().starts_with("Bad CSeq"));
        let m = with("Max-Forwards: 69", "Max-Forwards: -1");
        assert!(m
            .view()
            .max_forwards()
            .unwrap_err()
            .to_string()
            .starts_with("Bad Max-Forwards"));
        let m = with(
            "m: <sip:agb@192.0.2.1:5070;transport=udp>;expires=60, ",
            "m: *, ",
        );
        assert!(m
            .view()
            .contact()
            .unwrap_err()
            .to_string()
            .starts_with("Bad Contact: bad URI"));
        let m = with("v: SIP/2.0/udp", "v: ,,, , SIP/2.0/udp");
        assert_eq!(m.view().via().unwrap().branch, Some("z9hG4bKtop"));
        let m = with("v: SIP/2.0/udp", "Via: ,\r\nv: SIP/2.0/udp");
        assert_eq!(m.view().via().unwrap().branch, Some("z9hG4bKtop"));
        let m = with("i: a84b4c76e66710\r\n", "");
        assert_eq!(m.validate(), Err("Missing Call-ID".into()));
    }

    #[test]
    fn truncated_and_garbled_messages_never_panic() {
        let bytes = COMPACT.as_bytes();
        let nasty = b"<>\";,:@ \\\0\xff";
        for n in 0..bytes.len() {
            let mut garbled = bytes.to_vec();
            garbled[n] = nasty[n % nasty.len()];
            for text in [&bytes[..n], &garbled[..]] {
                if let Ok(m) = Message::parse_lenient(text) {
                    let v = m.view();
                    let _ = (v.via(), v.from(), v.to(), v.cseq(), v.contact());
                    let _ = (v.max_forwards(), v.call_id(), m.validate());
                }
            }
        }
    }

    #[test]
    fn adversarial_values_never_panic() {
        let nasty = [
            "",
            " ",
            ",",
            ";",
            "<",
            ">",
            "\"",
            "\"<sip:a>",
            "<>",
            "<:>;tag",
            "sip:",
            ";tag=",
            "SIP/",
            "SIP/2.0",
            "SIP/2.0/",
            "SIP/2.0/UDP",
            "SIP/2.0/UDP ;",
            "SIP/2.0/UDP [",
            "SIP/2.0/UDP [::1]:",
            "SIP/2.0/UDP h:1:2",
            "\u{e9}\u{e9}<sip:\u{e9}>;tag=\u{e9}",
            "1",
            "1 ",
            "x INVITE",
        ];
        for v in nasty {
            for h in [
                "Via",
                "From",
                "To",
                "CSeq",
                "Contact",
                "Max-Forwards",
                "Call-ID",
            ] {
                let mut m = parse(COMPACT);
                m.set_header(h, v);
                let view = m.view();
                let _ = (view.via(), view.from(), view.to(), view.cseq());
                let _ = (view.contact(), view.max_forwards(), view.call_id());
                let _ = m.validate();
            }
        }
    }
}
