//! SIP messages (RFC 3261 §7 and §25): parsing a datagram or a stream
//! buffer into a start line, an ordered header list ([`Headers`]) and a
//! body; the owned [`Via`], [`Uri`] and [`NameAddr`] values; serialisation.
//! The headers every message carries are read through [`Message::view`]
//! (see [`crate::view`]), parsed once; the older accessors here (`cseq`,
//! `top_via`, `from_tag`...) are thin wrappers over it.
//!
//! Written here rather than taken from `rsip` (the design's first choice):
//! rsip 0.4.0, its latest release, rejects RFC 4475 §3.1.1.1 ("wsinv", a
//! valid message with folded lines, compact forms and odd whitespace) with a
//! tokenizer error that quotes the whole message instead of saying where, and
//! ezk's `sip-types` has no message-level parser outside its transport. The
//! parser keeps every header as written (unfolded) so a B2BUA can pass
//! unknown ones through, expands compact names, never panics, and says in
//! its error which line is wrong and why.

use crate::headers::{canonical, lookup_name};
pub use crate::headers::{Header, Headers};
use crate::lex::{self, clip, is_token};
use crate::method::Method;
use crate::view::{NameAddrRef, UriRef, ViaRef, View};
use std::borrow::Cow;
use std::fmt;
use std::iter::{Enumerate, Peekable};
use std::net::IpAddr;
use std::str::Split;

/// Why bytes are not a SIP message, and where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// A stream buffer that does not hold a whole message yet.
    #[error("incomplete message")]
    Incomplete,
    #[error("line {line}: {what}")]
    Line { line: usize, what: String },
    #[error("{0}")]
    Message(String),
    /// A header every message must carry is absent.
    #[error("Missing {0}")]
    Missing(&'static str),
    /// A header's value does not parse.
    #[error("Bad {name}: {what}")]
    Header { name: &'static str, what: String },
}

fn at(line: usize, what: impl Into<String>) -> ParseError {
    ParseError::Line {
        line,
        what: what.into(),
    }
}

/// The first line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    Request { method: String, uri: String },
    Response { code: u16, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub start: StartLine,
    pub headers: Headers,
    pub body: Vec<u8>,
}

/// Where the header section ends: (end of headers, start of body), at the
/// first blank line, CRLF or bare LF. One pass over the line ends only.
fn header_end(buf: &[u8]) -> Option<(usize, usize)> {
    let mut from = 0;
    while let Some(i) = buf[from..].iter().position(|b| *b == b'\n') {
        let i = from + i;
        match &buf[i + 1..] {
            [b'\n', ..] => return Some((i, i + 2)),
            [b'\r', b'\n', ..] if i > 0 && buf[i - 1] == b'\r' => return Some((i - 1, i + 3)),
            _ => from = i + 1,
        }
    }
    None
}

/// The header section's lines, numbered from 1, with folded continuation
/// lines (§7.3.1) joined to the line they continue; borrowed unless folded.
struct Unfolded<'a>(Peekable<Enumerate<Split<'a, char>>>);

impl<'a> Iterator for Unfolded<'a> {
    type Item = (usize, Cow<'a, str>);

    fn next(&mut self) -> Option<Self::Item> {
        let no_cr = |l: &'a str| l.strip_suffix('\r').unwrap_or(l);
        let (i, raw) = self.0.next()?;
        let mut line = Cow::Borrowed(no_cr(raw));
        while let Some((_, more)) = self.0.next_if(|(_, l)| l.starts_with([' ', '\t'])) {
            let line = line.to_mut();
            line.push(' ');
            line.push_str(more.trim_ascii());
        }
        Some((i + 1, line))
    }
}

impl Message {
    /// Parses a whole datagram: a missing Content-Length means the rest of
    /// the datagram is the body.
    pub fn parse(datagram: &[u8]) -> Result<Message, ParseError> {
        match Self::parse_prefix(datagram, false) {
            Err(ParseError::Incomplete) => Err(ParseError::Message(
                "no blank line ends the header section".into(),
            )),
            r => r.map(|(m, _)| m),
        }
    }

    /// Parses one message from the front of a stream buffer; returns it and
    /// the bytes used, or `Incomplete` when more are needed.
    pub fn parse_stream(buf: &[u8]) -> Result<(Message, usize), ParseError> {
        Self::parse_prefix(buf, true)
    }

    /// What can be read of a message whose framing or start line is
    /// broken: the start line (a request line with a bad URI is kept as
    /// written) and the headers, without a body. Enough to answer 400 and
    /// say why.
    pub fn parse_lenient(datagram: &[u8]) -> Result<Message, ParseError> {
        let (start, headers, _, _) = Self::head(datagram, true)?;
        Ok(Message {
            start,
            headers: headers.into(),
            body: Vec::new(),
        })
    }

    /// Start line, headers, where the body starts, bytes skipped before.
    fn head(
        buf: &[u8],
        lenient: bool,
    ) -> Result<(StartLine, Vec<Header>, usize, usize), ParseError> {
        // Keep-alive CRLFs between messages (RFC 5626) are skipped.
        let skip = buf
            .iter()
            .take_while(|b| **b == b'\r' || **b == b'\n')
            .count();
        let buf = &buf[skip..];
        let (head_end, body_start) = header_end(buf).ok_or(ParseError::Incomplete)?;
        let head = std::str::from_utf8(&buf[..head_end])
            .map_err(|e| ParseError::Message(format!("header section is not UTF-8: {e}")))?;
        let mut lines = Unfolded(head.split('\n').enumerate().peekable());
        let (first_no, first) = lines.next().ok_or_else(|| at(1, "empty"))?;
        let start = match parse_start(&first) {
            Ok(s) => s,
            Err(_) if lenient && first.ends_with(" SIP/2.0") => {
                let (method, rest) = first.split_once(' ').unwrap_or_default();
                if !is_token(method) {
                    return Err(at(first_no, format!("bad method {:?}", clip(method))));
                }
                StartLine::Request {
                    method: method.to_string(),
                    uri: rest.trim_end_matches(" SIP/2.0").to_string(),
                }
            }
            Err(w) => return Err(at(first_no, w)),
        };
        let mut headers = Vec::with_capacity(16);
        for (no, l) in lines {
            let (name, value) = l
                .split_once(':')
                .ok_or_else(|| at(no, format!("header line without ':': {:?}", clip(&l))))?;
            let name = name.trim_ascii();
            if !is_token(name) {
                return Err(at(no, format!("bad header name {:?}", clip(name))));
            }
            headers.push(Header::new(name, value.trim_ascii()));
        }
        Ok((start, headers, body_start, skip))
    }

    fn parse_prefix(buf: &[u8], stream: bool) -> Result<(Message, usize), ParseError> {
        let (start, headers, body_start, skip) = Self::head(buf, false)?;
        let buf = &buf[skip..];
        let rest = &buf[body_start..];
        let declared = headers
            .iter()
            .filter(|h| h.name == "Content-Length")
            .map(|h| h.value.parse::<usize>())
            .collect::<Vec<_>>();
        let body_len = match declared.as_slice() {
            [] if stream => {
                return Err(ParseError::Message(
                    "Content-Length is required on a stream transport".into(),
                ))
            }
            [] => rest.len(),
            [Ok(n)] => *n,
            [Err(_)] => return Err(ParseError::Message("Content-Length is not a number".into())),
            _ => {
                return Err(ParseError::Message(
                    "more than one Content-Length header".into(),
                ))
            }
        };
        if rest.len() < body_len {
            if stream {
                return Err(ParseError::Incomplete);
            }
            return Err(ParseError::Message(format!(
                "Content-Length is {body_len} but only {} body bytes follow",
                rest.len()
            )));
        }
        let m = Message {
            start,
            headers: headers.into(),
            body: rest[..body_len].to_vec(),
        };
        Ok((m, skip + body_start + body_len))
    }

    /// Checks the headers every request and response must carry (§8.1.1)
    /// and that they make sense; the error text suits a 400 reason phrase.
    pub fn validate(&self) -> Result<(), String> {
        let view = self.view();
        view.via().map_err(|e| e.to_string())?;
        for h in ["From", "To", "Call-ID"] {
            if self.header(h).is_none() {
                return Err(ParseError::Missing(h).to_string());
            }
        }
        let cseq = view.cseq().map_err(|e| e.to_string())?;
        if let StartLine::Request { method: m, uri } = &self.start {
            if m != cseq.method.as_str() {
                return Err(format!("CSeq method {} differs from {m}", cseq.method));
            }
            UriRef::parse(uri).map_err(|e| format!("Bad Request-URI: {e}"))?;
        }
        view.from().map_err(|e| e.to_string())?;
        view.to().map_err(|e| e.to_string())?;
        view.max_forwards().map_err(|e| e.to_string())?;
        Ok(())
    }

    pub fn request(method: &str, uri: &str) -> Message {
        Message {
            start: StartLine::Request {
                method: method.into(),
                uri: uri.into(),
            },
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// A response to `req` (§8.2.6): Via, From, To, Call-ID and CSeq copied;
    /// the To tag added when given and the request's To has none.
    pub fn response_to(req: &Message, code: u16, reason: &str, to_tag: Option<&str>) -> Message {
        let mut headers = Vec::new();
        for h in req.headers.iter() {
            if matches!(&*h.name, "Via" | "From" | "Call-ID" | "CSeq") {
                headers.push(h.clone());
            } else if h.name == "To" {
                let mut value = h.value.clone();
                if let (Some(tag), None) = (to_tag, req.view().to_tag()) {
                    value = format!("{value};tag={tag}");
                }
                headers.push(Header {
                    name: "To".into(),
                    value,
                });
            }
        }
        Message {
            start: StartLine::Response {
                code,
                reason: reason.into(),
            },
            headers: headers.into(),
            body: Vec::new(),
        }
    }

    /// The typed view of the headers every message carries, parsed once.
    pub fn view(&self) -> View<'_> {
        self.headers.view()
    }

    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => None,
        }
    }

    /// The request's method as a value (None for a response).
    pub fn request_method(&self) -> Option<Method<'_>> {
        self.method().map(Method::parse)
    }

    pub fn code(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { code, .. } => Some(*code),
            StartLine::Request { .. } => None,
        }
    }

    /// The reason phrase of a response ("" for a request).
    pub fn reason(&self) -> &str {
        match &self.start {
            StartLine::Response { reason, .. } => reason,
            StartLine::Request { .. } => "",
        }
    }

    pub fn request_uri(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { uri, .. } => Some(uri),
            StartLine::Response { .. } => None,
        }
    }

    /// The first header called `name` (any spelling, compact forms too).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = lookup_name(name);
        self.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value.as_str())
    }

    /// Every value of `name`: all its headers, each split at top-level
    /// commas (Via, Route, Record-Route, Contact carry lists).
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.values(name).collect()
    }

    /// [`Message::header_values`] without collecting them.
    pub fn values<'a, 'n>(&'a self, name: &'n str) -> impl Iterator<Item = &'a str> + use<'a, 'n> {
        let name = lookup_name(name);
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .flat_map(|h| lex::list_items(&h.value))
    }

    /// Replaces every `name` header with one holding `value`.
    pub fn set_header(&mut self, name: &str, value: impl Into<String>) {
        let name = canonical(name);
        let value = value.into();
        match self.headers.iter().position(|h| h.name == name) {
            Some(i) => {
                if let Some(h) = self.headers.get_mut(i) {
                    h.value = value;
                }
                let mut n = 0;
                self.headers.retain(|h| {
                    n += usize::from(h.name == name);
                    h.name != name || n == 1
                });
            }
            None => self.headers.push(Header { name, value }),
        }
    }

    pub fn add_header(&mut self, name: &str, value: impl Into<String>) {
        self.headers.push(Header::new(name, value));
    }

    /// Inserts `name` before any other header (a new top Via).
    pub fn push_front(&mut self, name: &str, value: impl Into<String>) {
        self.headers.insert(0, Header::new(name, value));
    }

    pub fn remove_header(&mut self, name: &str) {
        let name = lookup_name(name);
        self.headers.retain(|h| !h.name.eq_ignore_ascii_case(name));
    }

    pub fn call_id(&self) -> Option<&str> {
        self.view().call_id()
    }

    /// CSeq number and method.
    pub fn cseq(&self) -> Result<(u32, &str), String> {
        let c = self.view().cseq().map_err(|e| e.to_string())?;
        Ok((c.number, c.method.as_str()))
    }

    pub fn top_via(&self) -> Result<Via, String> {
        let v = self.view().via().map_err(|e| e.to_string())?;
        Ok(Via::from(v))
    }

    pub fn from_tag(&self) -> Option<String> {
        self.view().from_tag().map(str::to_string)
    }

    pub fn to_tag(&self) -> Option<String> {
        self.view().to_tag().map(str::to_string)
    }

    pub fn max_forwards(&self) -> Option<u32> {
        self.view().max_forwards().ok().flatten()
    }

    /// Serialises with a Content-Length matching the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512);
        match &self.start {
            StartLine::Request { method, uri } => {
                out.push_str(&format!("{method} {uri} SIP/2.0\r\n"))
            }
            StartLine::Response { code, reason } => {
                out.push_str(&format!("SIP/2.0 {code} {reason}\r\n"))
            }
        }
        for h in self.headers.iter().filter(|h| h.name != "Content-Length") {
            out.push_str(&h.name);
            out.push_str(": ");
            out.push_str(&h.value);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&String::from_utf8_lossy(&self.to_bytes()))
    }
}

/// The usual reason phrase for a status code (RFC 3261 §21 and RFC 4028).
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        422 => "Session Interval Too Small",
        423 => "Interval Too Brief",
        480 => "Temporarily Unavailable",
        481 => "Call/Transaction Does Not Exist",
        482 => "Loop Detected",
        483 => "Too Many Hops",
        484 => "Address Incomplete",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Unknown",
    }
}

fn parse_start(l: &str) -> Result<StartLine, String> {
    if let Some(rest) = l.strip_prefix("SIP/") {
        let mut it = rest.splitn(3, ' ');
        let version = it.next().unwrap_or_default();
        if version != "2.0" {
            return Err(format!("unsupported version SIP/{}", clip(version)));
        }
        let code = it
            .next()
            .and_then(|c| c.parse::<u16>().ok())
            .filter(|c| (100..700).contains(c))
            .ok_or_else(|| format!("bad status line {:?}", clip(l)))?;
        return Ok(StartLine::Response {
            code,
            reason: it.next().unwrap_or_default().to_string(),
        });
    }
    let parts: Vec<&str> = l.split(' ').collect();
    match parts.as_slice() {
        [method, uri, version] => {
            if !is_token(method) {
                return Err(format!("bad method {:?}", clip(method)));
            }
            if !version.eq_ignore_ascii_case("SIP/2.0") {
                return Err(format!("unsupported version {:?}", clip(version)));
            }
            if uri.is_empty() || !uri.contains(':') {
                return Err(format!("bad Request-URI {:?}", clip(uri)));
            }
            Ok(StartLine::Request {
                method: method.to_string(),
                uri: uri.to_string(),
            })
        }
        _ => Err(format!(
            "request line must be `METHOD URI SIP/2.0` with single spaces: {:?}",
            clip(l)
        )),
    }
}

/// Splits a header value at commas outside quotes and angle brackets.
pub fn split_list(v: &str) -> Vec<&str> {
    lex::list_items(v).collect()
}

/// `;name=value` parameters, as written (names lower-cased).
pub type Params = Vec<(String, Option<String>)>;

fn parse_params(s: &str) -> Params {
    lex::params(s)
        .map(|(k, v)| (k.to_ascii_lowercase(), v.map(str::to_string)))
        .collect()
}

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.as_deref())
}

fn params_to_string(params: &Params) -> String {
    params
        .iter()
        .map(|(k, v)| match v {
            Some(v) => format!(";{k}={v}"),
            None => format!(";{k}"),
        })
        .collect()
}

/// One Via value: `SIP/2.0/UDP host:port;branch=...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    pub transport: String,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Via {
    pub fn parse(v: &str) -> Result<Via, String> {
        ViaRef::parse(v).map(Via::from)
    }

    pub fn branch(&self) -> Option<&str> {
        param(&self.params, "branch")
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        param(&self.params, name)
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SIP/2.0/{} {}",
            self.transport,
            host_port(&self.host, self.port)
        )?;
        f.write_str(&params_to_string(&self.params))
    }
}

fn host_port(host: &str, port: Option<u16>) -> String {
    let h = if host.contains(':') && !host.starts_with('[') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    match port {
        Some(p) => format!("{h}:{p}"),
        None => h,
    }
}

/// A SIP or SIPS URI: `sip:user@host:port;params?headers`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uri {
    pub scheme: String,
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub params: Params,
}

impl Uri {
    pub fn parse(s: &str) -> Result<Uri, String> {
        UriRef::parse(s).map(Uri::from)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        param(&self.params, name)
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.params.iter().any(|(k, _)| k == name)
    }

    /// The host as an IP address, when it is one.
    pub fn ip(&self) -> Option<IpAddr> {
        self.host.parse().ok()
    }
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme)?;
        if let Some(u) = &self.user {
            write!(f, "{u}@")?;
        }
        f.write_str(&host_port(&self.host, self.port))?;
        f.write_str(&params_to_string(&self.params))
    }
}

/// A name-addr or addr-spec with header parameters: From, To, Contact,
/// Route, Record-Route values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    pub display: Option<String>,
    /// The URI text as written.
    pub uri: String,
    pub params: Params,
}

impl NameAddr {
    pub fn parse(v: &str) -> Result<NameAddr, String> {
        NameAddrRef::parse(v).map(NameAddr::from)
    }

    pub fn tag(&self) -> Option<String> {
        param(&self.params, "tag").map(str::to_string)
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        param(&self.params, name)
    }

    pub fn uri(&self) -> Result<Uri, String> {
        Uri::parse(&self.uri)
    }

    /// With `tag` set (replacing any).
    pub fn with_tag(self, tag: &str) -> NameAddr {
        let mut n = self.without_tag();
        n.params.push(("tag".into(), Some(tag.into())));
        n
    }

    /// Without its tag parameter.
    pub fn without_tag(mut self) -> NameAddr {
        self.params.retain(|(k, _)| k != "tag");
        self
    }
}

/// Whether `d` can go between quotes as it is: every quote and backslash
/// escaped (a parsed display name keeps its escapes).
fn is_quoted_content(d: &str) -> bool {
    let mut escaped = false;
    for b in d.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return false,
            _ => {}
        }
    }
    !escaped
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.display {
            Some(d) if is_quoted_content(d) => write!(f, "\"{d}\" ")?,
            // Nothing left once unquotable: no display name, not `""`.
            Some(d) => match d.replace(['"', '\\'], "") {
                d if d.is_empty() => {}
                d => write!(f, "\"{d}\" ")?,
            },
            None => {}
        }
        write!(f, "<{}>", self.uri)?;
        f.write_str(&params_to_string(&self.params))
    }
}

impl From<ViaRef<'_>> for Via {
    fn from(v: ViaRef<'_>) -> Via {
        Via {
            transport: v.transport.to_ascii_uppercase(),
            host: v.host.to_string(),
            port: v.port,
            params: parse_params(v.params),
        }
    }
}

impl From<UriRef<'_>> for Uri {
    fn from(u: UriRef<'_>) -> Uri {
        Uri {
            scheme: u.scheme.to_ascii_lowercase(),
            user: u.user.map(str::to_string),
            host: u.host.to_string(),
            port: u.port,
            params: parse_params(u.params),
        }
    }
}

impl From<NameAddrRef<'_>> for NameAddr {
    fn from(n: NameAddrRef<'_>) -> NameAddr {
        NameAddr {
            display: n.display.map(str::to_string),
            uri: n.uri.to_string(),
            params: parse_params(n.params),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n\
Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n\
Max-Forwards: 70\r\n\
To: Bob <sip:bob@biloxi.example.com>\r\n\
From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n\
Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n\
CSeq: 314159 INVITE\r\n\
Contact: <sip:alice@pc33.atlanta.example.com>\r\n\
Content-Type: application/sdp\r\n\
Content-Length: 4\r\n\r\nv=0\n";

    #[test]
    fn lookups_take_any_spelling_of_a_name() {
        let m = Message::parse(
            b"OPTIONS sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\ni: abc\r\nX-Custom-Thing: 1\r\n\r\n",
        )
        .unwrap();
        for q in ["Call-ID", "call-id", "CALL-ID", "i", "I"] {
            assert_eq!(m.header(q), Some("abc"), "{q}");
        }
        assert_eq!(m.header_values("v").len(), 1);
        assert_eq!(m.header("x-custom-thing"), Some("1"));
        assert_eq!(m.header("X-Custom"), None);
        let mut m = m;
        m.remove_header("VIA");
        assert!(m.header("Via").is_none());
    }

    #[test]
    fn parses_and_reserialises_a_plain_invite() {
        let m = Message::parse(INVITE.as_bytes()).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
        assert_eq!(m.cseq().unwrap(), (314159, "INVITE"));
        assert_eq!(m.top_via().unwrap().branch(), Some("z9hG4bK776asdhds"));
        assert_eq!(m.from_tag().as_deref(), Some("1928301774"));
        assert_eq!(m.to_tag(), None);
        assert_eq!(m.body, b"v=0\n");
        m.validate().unwrap();
        let again = Message::parse(&m.to_bytes()).unwrap();
        assert_eq!(again, m);
    }

    /// RFC 4475 §3.1.1.1, written from its description: folded lines,
    /// compact forms, whitespace around ':' ';' '=' '/', an unknown header
    /// with an odd value, and several Vias in one header.
    #[test]
    fn accepts_the_wsinv_torture_message() {
        let body = "v=0\r\no=mhandley 29739 7272939 IN IP4 192.0.2.3\r\ns=-\r\nc=IN IP4 192.0.2.4\r\nt=0 0\r\nm=audio 49217 RTP/AVP 0 12\r\nm=video 3227 RTP/AVP 31\r\na=rtpmap:31 LPC\r\n";
        let text = format!(
            "INVITE sip:vivekg@chair-dnrc.example.com;unknownparam SIP/2.0\r\n\
TO :\r\n sip:vivekg@chair-dnrc.example.com ;   tag    = 1918181833n\r\n\
from   : \"J Rosenberg \\\\\\\"\"       <sip:jdrosen@example.com>\r\n  ;\r\n  tag = 98asjd8\r\n\
MaX-fOrWaRdS: 0068\r\n\
Call-ID: wsinv.ndaksdj@192.0.2.1\r\n\
Content-Length   : {}\r\n\
cseq: 0009\r\n  INVITE\r\n\
Via  : SIP  /   2.0\r\n  /UDP\r\n    192.0.2.2;branch=390skdjuw\r\n\
s :\r\n\
NewFangledHeader:   newfangled value\r\n continued newfangled value\r\n\
UnknownHeaderWithUnusualValue: ;;,,;;,;\r\n\
Content-Type: application/sdp\r\n\
Route:\r\n <sip:services.example.com;lr;unknownwith=value;unknown-no-value>\r\n\
v:  SIP  / 2.0  / TCP     spindle.example.com   ;\r\n  branch  =   z9hG4bK9ikj8  ,\r\n SIP  /    2.0   / UDP  192.168.255.111   ; branch=\r\n z9hG4bK30239\r\n\
m:\"Quoted string \\\"\\\"\" <sip:jdrosen@example.com> ; newparam =\r\n      newvalue ;\r\n  secondparam ; q = 0.33\r\n\r\n{body}",
            body.len()
        );
        let m = Message::parse(text.as_bytes()).unwrap();
        m.validate().unwrap();
        assert_eq!(m.cseq().unwrap(), (9, "INVITE"));
        assert_eq!(m.max_forwards(), Some(68));
        assert_eq!(m.to_tag().as_deref(), Some("1918181833n"));
        assert_eq!(m.from_tag().as_deref(), Some("98asjd8"));
        let vias = m.header_values("Via");
        assert_eq!(vias.len(), 3);
        let v2 = Via::parse(vias[1]).unwrap();
        assert_eq!(v2.transport, "TCP");
        assert_eq!(v2.host, "spindle.example.com");
        assert_eq!(v2.branch(), Some("z9hG4bK9ikj8"));
        assert_eq!(Via::parse(vias[2]).unwrap().branch(), Some("z9hG4bK30239"));
        assert_eq!(m.header("Subject"), Some(""));
        assert_eq!(
            m.header("NewFangledHeader"),
            Some("newfangled value continued newfangled value")
        );
        let contact = NameAddr::parse(m.header("m").unwrap()).unwrap();
        assert_eq!(contact.uri, "sip:jdrosen@example.com");
        assert_eq!(contact.param("q"), Some("0.33"));
        assert_eq!(m.body, body.as_bytes());
        let v = m.view();
        let via = v.via().unwrap();
        assert_eq!(
            (via.transport, via.host, via.port),
            ("UDP", "192.0.2.2", None)
        );
        assert_eq!(via.branch, Some("390skdjuw"));
        assert_eq!(v.to().unwrap().uri, "sip:vivekg@chair-dnrc.example.com");
        let from = v.from().unwrap();
        assert_eq!(from.uri, "sip:jdrosen@example.com");
        assert_eq!(from.display, Some(r#"J Rosenberg \\\""#));
        assert_eq!(v.call_id(), Some("wsinv.ndaksdj@192.0.2.1"));
        assert_eq!(v.cseq().unwrap().method, Method::Invite);
        let contact = v.contact().unwrap().unwrap();
        assert_eq!(contact.display, Some(r#"Quoted string \"\""#));
        let again = NameAddr::from(contact).to_string();
        let again = NameAddrRef::parse(&again).unwrap();
        assert_eq!((again.display, again.uri), (contact.display, contact.uri));
        assert_eq!(again.param("q"), Some("0.33"));
        assert_eq!(contact.param("newparam"), Some("newvalue"));
        assert_eq!(v.max_forwards(), Ok(Some(68)));
    }

    #[test]
    fn errors_say_which_line_is_wrong() {
        let bad = INVITE.replace("Max-Forwards: 70", "Max-Forwards 70");
        assert_eq!(
            Message::parse(bad.as_bytes()).unwrap_err().to_string(),
            "line 3: header line without ':': \"Max-Forwards 70\""
        );
        let bad = INVITE.replace("SIP/2.0\r\nVia", "SIP/7.0\r\nVia");
        assert!(Message::parse(bad.as_bytes())
            .unwrap_err()
            .to_string()
            .starts_with("line 1: unsupported version"));
        let bad = INVITE.replace("Content-Length: 4", "Content-Length: 40");
        assert_eq!(
            Message::parse(bad.as_bytes()).unwrap_err().to_string(),
            "Content-Length is 40 but only 4 body bytes follow"
        );
        let bad = INVITE.replace("CSeq: 314159 INVITE", "CSeq: 314159 BYE");
        assert_eq!(
            Message::parse(bad.as_bytes()).unwrap().validate(),
            Err("CSeq method BYE differs from INVITE".into())
        );
    }

    #[test]
    fn the_first_blank_line_ends_the_headers_crlf_or_bare_lf() {
        let lf = INVITE.replace("\r\n", "\n").replace("v=0\n", "v=0\n\n");
        let lf = lf.replace("Content-Length: 4", "Content-Length: 5");
        let m = Message::parse(lf.as_bytes()).unwrap();
        assert_eq!((m.headers.len(), &m.body[..]), (9, &b"v=0\n\n"[..]));
        let mixed = INVITE.replacen("\r\n\r\n", "\r\n\n", 1);
        let mixed = mixed.replace("Content-Length: 4", "Content-Length: 5");
        let m = Message::parse(format!("{mixed}\r").as_bytes()).unwrap();
        assert_eq!(m.body, b"v=0\n\r");
        assert_eq!(header_end(b"a\n\r\nb\r\n\r\n"), Some((5, 9)));
        assert_eq!(header_end(b"\n"), None);
    }

    #[test]
    fn stream_framing_waits_for_the_whole_body() {
        let bytes = INVITE.as_bytes();
        assert_eq!(
            Message::parse_stream(&bytes[..bytes.len() - 2]),
            Err(ParseError::Incomplete)
        );
        let mut two = b"\r\n\r\n".to_vec();
        two.extend_from_slice(bytes);
        two.extend_from_slice(bytes);
        let (_, used) = Message::parse_stream(&two).unwrap();
        assert_eq!(used, 4 + bytes.len());
        let (m, _) = Message::parse_stream(&two[used..]).unwrap();
        assert_eq!(m.method(), Some("INVITE"));
    }

    #[test]
    fn never_panics_on_truncations_of_a_valid_message() {
        let bytes = INVITE.as_bytes();
        for n in 0..bytes.len() {
            let _ = Message::parse(&bytes[..n]).map(|m| m.validate());
            let _ = Message::parse_stream(&bytes[..n]);
        }
    }

    #[test]
    fn uris_and_name_addrs() {
        let u = Uri::parse("sip:+15551234@[2001:db8::1]:5070;transport=udp;lr").unwrap();
        assert_eq!(u.user.as_deref(), Some("+15551234"));
        assert_eq!(u.host, "2001:db8::1");
        assert_eq!(u.port, Some(5070));
        assert!(u.has_param("lr"));
        assert_eq!(
            u.to_string(),
            "sip:+15551234@[2001:db8::1]:5070;transport=udp;lr"
        );
        let n = NameAddr::parse("sip:bob@example.com;tag=abc").unwrap();
        assert_eq!(n.uri, "sip:bob@example.com");
        assert_eq!(n.tag().as_deref(), Some("abc"));
        assert!(NameAddr::parse("<sip:bob@example.com").is_err());
        assert!(Uri::parse("http://example.com").is_err());
    }
}

/// RFC 4475's torture cases, each written here from the RFC's description
/// of what makes it hard (not copied): valid messages must parse and
/// validate; invalid ones must fail with a reason, never panic.
#[cfg(test)]
mod torture {
    use super::*;

    fn request(start: &str, extra: &str, body: &str) -> String {
        format!(
            "{start}\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKtort\r\nTo: <sip:j@example.com>\r\n\
From: <sip:c@example.net>;tag=t1\r\nCall-ID: tort@192.0.2.1\r\nCSeq: 8 {method}\r\nMax-Forwards: 70\r\n\
{extra}Content-Length: {len}\r\n\r\n{body}",
            method = start.split(' ').next().unwrap_or_default(),
            len = body.len()
        )
    }

    fn valid(text: &str) -> Message {
        let m = Message::parse(text.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{text}"));
        m.validate().unwrap_or_else(|e| panic!("{e}\n{text}"));
        m
    }

    fn invalid(text: &str) -> String {
        match Message::parse(text.as_bytes()).map(|m| m.validate()) {
            Err(e) => e.to_string(),
            Ok(Err(e)) => e,
            Ok(Ok(())) => panic!("accepted:\n{text}"),
        }
    }

    #[test]
    fn valid_but_unusual() {
        // A method made of every token character (§3.1.1.2).
        let m = valid(&request(
            "!interesting-Method0123456789_*+`.%indeed'~ sip:1_unusual.URI~(to-be!sure)&isn't+it$/crazy?,/;;*:&it+has=1,weird!*pas$wo~d_too.(doesn't-it)@example.com SIP/2.0",
            "",
            "",
        ));
        assert_eq!(
            m.method(),
            Some("!interesting-Method0123456789_*+`.%indeed'~")
        );
        // Escaped characters and an escaped NUL in the user part (§3.1.1.3-4).
        valid(&request(
            "INVITE sip:sips%3Auser%40example.com@example.net SIP/2.0",
            "",
            "",
        ));
        valid(&request(
            "REGISTER sip:example.com SIP/2.0",
            "Contact: <sip:%00@192.0.2.1>\r\n",
            "",
        ));
        // A semicolon-laden user part (§3.1.1.9).
        let m = valid(&request(
            "OPTIONS sip:user;par=u%40example.net@example.com SIP/2.0",
            "",
            "",
        ));
        assert_eq!(
            Uri::parse(m.request_uri().unwrap()).unwrap().host,
            "example.com"
        );
        // Transports nobody knows, in a Via list (§3.1.1.10).
        let m = valid(&request(
            "OPTIONS sip:user@example.com SIP/2.0",
            "Via: SIP/2.0/SCTP t.example.com;branch=z9hG4bKa, SIP/2.0/TLS t2.example.com;branch=z9hG4bKb, SIP/2.0/UNKNOWN t3.example.com;branch=z9hG4bKc\r\n",
            "",
        ));
        assert_eq!(m.header_values("Via").len(), 4);
        // Unquoted display names with runs of whitespace (§3.1.1.6).
        let m = valid(
            &request("INVITE sip:c@example.com SIP/2.0", "", "").replace(
                "To: <sip:j@example.com>",
                "To: caller  of   the  year <sip:j@example.com>",
            ),
        );
        assert_eq!(
            NameAddr::parse(m.header("To").unwrap())
                .unwrap()
                .display
                .as_deref(),
            Some("caller  of   the  year")
        );
        // Very long values and many headers (§3.1.1.7).
        let long = format!("X-Long: {}\r\n", "z".repeat(10_000)).repeat(20);
        valid(&request("INVITE sip:c@example.com SIP/2.0", &long, ""));
        // A multipart body is opaque to the parser (§3.1.1.11).
        let body = "--b\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--b--\r\n";
        let m = valid(&request(
            "INVITE sip:c@example.com SIP/2.0",
            "Content-Type: multipart/mixed;boundary=b\r\n",
            body,
        ));
        assert_eq!(m.body, body.as_bytes());
        // Responses with an empty or non-ASCII reason phrase (§3.1.1.12-13).
        let resp = |line: &str| {
            request("OPTIONS sip:x@example.com SIP/2.0", "", "").replacen(
                "OPTIONS sip:x@example.com SIP/2.0",
                line,
                1,
            )
        };
        assert_eq!(valid(&resp("SIP/2.0 200 ")).reason(), "");
        assert_eq!(
            valid(&resp("SIP/2.0 200 = 2**3 * 5**2 но сто девяносто девять")).code(),
            Some(200)
        );
        // Two requests in one datagram: Content-Length ends the first, the rest is not a body (§3.1.1.8).
        let first = request("INVITE sip:c@example.com SIP/2.0", "", "");
        let two = format!("{first}{first}");
        let m = Message::parse_stream(two.as_bytes()).unwrap();
        assert_eq!(m.1, first.len());
    }

    #[test]
    fn invalid_with_a_reason() {
        let base = request("INVITE sip:c@example.com SIP/2.0", "", "");
        // Max-Forwards far beyond any integer (§3.1.2.8 "scalar02").
        assert!(
            invalid(&base.replace("Max-Forwards: 70", "Max-Forwards: 99999999999999999999"))
                .contains("Max-Forwards")
        );
        // CSeq number beyond 2**32 (§3.1.2.8).
        assert!(
            invalid(&base.replace("CSeq: 8 INVITE", "CSeq: 36893488147419103232 INVITE"))
                .contains("CSeq")
        );
        // Request-URI in angle brackets (§3.1.2.11 "ltgtruri").
        assert!(invalid(&base.replace(
            "INVITE sip:c@example.com SIP/2.0",
            "INVITE <sip:c@example.com> SIP/2.0"
        ))
        .contains("Request-URI"));
        // Whitespace inside the Request-URI, and extra spaces in the request line (§3.1.2.12-13).
        assert!(invalid(&base.replace(
            "INVITE sip:c@example.com SIP/2.0",
            "INVITE sip:c @example.com SIP/2.0"
        ))
        .contains("line 1"));
        assert!(invalid(&base.replace(
            "INVITE sip:c@example.com SIP/2.0",
            "INVITE  sip:c@example.com SIP/2.0"
        ))
        .contains("line 1"));
        // Unknown protocol version (§3.1.2.16 "badvers").
        assert!(invalid(&base.replace(" SIP/2.0\r\nVia", " SIP/7.0\r\nVia")).contains("version"));
        // A body longer than Content-Length says is cut; a shorter one is an error (§3.1.2.6-7).
        assert!(
            invalid(&base.replace("Content-Length: 0", "Content-Length: 10"))
                .contains("Content-Length")
        );
        // Missing required headers (§3.3.1 "insuf").
        assert!(invalid(&base.replace("Call-ID: tort@192.0.2.1\r\n", "")).contains("Call-ID"));
        // A response with a status code out of range (§3.1.2.? "bigcode").
        assert!(invalid(&base.replacen(
            "INVITE sip:c@example.com SIP/2.0",
            "SIP/2.0 4294967301 better not break the receiver",
            1
        ))
        .contains("status line"));
    }
}
