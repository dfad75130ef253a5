//! SDP (RFC 8866) as a list of lines that keeps everything it does not
//! touch exactly as received, with accessors for what a media relay rewrites:
//! origin and connection addresses, media ports and transport, RTCP and
//! rtcp-mux attributes, ICE attributes, codecs and direction.
//!
//! Written here rather than taken from a crate: typed SDP parsers normalise
//! or reject what they do not model, and a relay must pass unknown
//! attributes on unchanged.

use std::fmt;
use std::net::IpAddr;

/// One `x=value` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: char,
    pub value: String,
}

/// A media section: its `m=` line first, then its other lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Media {
    pub lines: Vec<Line>,
}

/// A session description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sdp {
    pub session: Vec<Line>,
    pub media: Vec<Media>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP line {line}: {what}")]
    Line { line: usize, what: String },
    #[error("SDP: {0}")]
    Structure(String),
}

/// Direction attributes (RFC 8866 6.7).
const DIRECTIONS: [&str; 4] = ["sendrecv", "sendonly", "recvonly", "inactive"];

/// ICE attributes a relay removes when it makes itself the only path.
const ICE_ATTRS: [&str; 7] = [
    "candidate",
    "ice-ufrag",
    "ice-pwd",
    "ice-options",
    "ice-lite",
    "remote-candidates",
    "end-of-candidates",
];

fn line_err(line: usize, what: impl Into<String>) -> SdpError {
    SdpError::Line {
        line,
        what: what.into(),
    }
}

impl Sdp {
    pub fn parse(text: &str) -> Result<Sdp, SdpError> {
        let mut session = Vec::new();
        let mut media: Vec<Media> = Vec::new();
        for (i, raw) in text.split('\n').enumerate() {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            let n = i + 1;
            let mut chars = raw.chars();
            let (Some(kind), Some('=')) = (chars.next(), chars.next()) else {
                return Err(line_err(n, format!("{raw:?} is not of the form x=value")));
            };
            if !kind.is_ascii_lowercase() {
                return Err(line_err(
                    n,
                    format!("line type {kind:?} is not a lowercase letter"),
                ));
            }
            let line = Line {
                kind,
                value: raw[2..].to_string(),
            };
            if kind == 'm' {
                let m = Media { lines: vec![line] };
                m.check_m_line().map_err(|w| line_err(n, w))?;
                media.push(m);
            } else if let Some(m) = media.last_mut() {
                m.lines.push(line);
            } else {
                session.push(line);
            }
        }
        match session.first() {
            Some(l) if l.kind == 'v' && l.value == "0" => {}
            _ => return Err(SdpError::Structure("the first line must be v=0".into())),
        }
        let sdp = Sdp { session, media };
        if sdp.origin_fields().is_none() {
            return Err(SdpError::Structure("missing or malformed o= line".into()));
        }
        for (i, m) in sdp.media.iter().enumerate() {
            if m.port() != 0 && sdp.connection(i).is_none() {
                return Err(SdpError::Structure(format!(
                    "media {} has no usable c= address",
                    i + 1
                )));
            }
        }
        Ok(sdp)
    }

    fn origin_fields(&self) -> Option<Vec<&str>> {
        let o = self.session.iter().find(|l| l.kind == 'o')?;
        let f: Vec<&str> = o.value.split(' ').collect();
        (f.len() == 6).then_some(f)
    }

    /// The address in the `o=` line.
    pub fn origin_addr(&self) -> Option<&str> {
        self.origin_fields().map(|f| f[5])
    }

    /// The session version in the `o=` line.
    pub fn origin_version(&self) -> Option<u64> {
        self.origin_fields()?.get(2)?.parse().ok()
    }

    /// Replaces the session version in the `o=` line.
    pub fn set_origin_version(&mut self, version: u64) {
        if let Some(o) = self.session.iter_mut().find(|l| l.kind == 'o') {
            let mut f: Vec<String> = o.value.split(' ').map(str::to_string).collect();
            if f.len() == 6 {
                f[2] = version.to_string();
                o.value = f.join(" ");
            }
        }
    }

    /// Replaces the address (and its family) in the `o=` line.
    pub fn set_origin_addr(&mut self, ip: IpAddr) {
        if let Some(o) = self.session.iter_mut().find(|l| l.kind == 'o') {
            let mut f: Vec<String> = o.value.split(' ').map(str::to_string).collect();
            if f.len() == 6 {
                f[4] = family(ip).into();
                f[5] = ip.to_string();
                o.value = f.join(" ");
            }
        }
    }

    /// The session-level `c=` address, if any.
    pub fn session_connection(&self) -> Option<IpAddr> {
        self.session
            .iter()
            .find(|l| l.kind == 'c')
            .and_then(|l| parse_c(&l.value))
    }

    /// Sets (or adds, before the first `t=`) the session-level `c=` line.
    pub fn set_session_connection(&mut self, ip: IpAddr) {
        let c = Line {
            kind: 'c',
            value: c_value(ip),
        };
        if let Some(l) = self.session.iter_mut().find(|l| l.kind == 'c') {
            *l = c;
        } else {
            let at = self
                .session
                .iter()
                .position(|l| l.kind == 't')
                .unwrap_or(self.session.len());
            self.session.insert(at, c);
        }
    }

    /// The address media `i` is sent to: its own `c=`, else the session's.
    pub fn connection(&self, i: usize) -> Option<IpAddr> {
        self.media
            .get(i)?
            .own_connection()
            .or_else(|| self.session_connection())
    }

    /// Removes session-level attributes named `name`.
    pub fn remove_session_attrs(&mut self, pred: impl Fn(&str) -> bool) {
        self.session
            .retain(|l| l.kind != 'a' || !pred(attr_name(&l.value)));
    }

    /// Strips ICE attributes at session and media level.
    pub fn strip_ice(&mut self) {
        self.remove_session_attrs(|n| ICE_ATTRS.contains(&n));
        for m in &mut self.media {
            m.remove_attrs(|n| ICE_ATTRS.contains(&n));
        }
    }
}

impl fmt::Display for Sdp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for l in self
            .session
            .iter()
            .chain(self.media.iter().flat_map(|m| m.lines.iter()))
        {
            write!(f, "{}={}\r\n", l.kind, l.value)?;
        }
        Ok(())
    }
}

fn family(ip: IpAddr) -> &'static str {
    if ip.is_ipv4() {
        "IP4"
    } else {
        "IP6"
    }
}

fn c_value(ip: IpAddr) -> String {
    format!("IN {} {ip}", family(ip))
}

/// The address of a `c=` value (`IN IP4 addr[/ttl]`).
fn parse_c(v: &str) -> Option<IpAddr> {
    let mut f = v.split(' ');
    let (_, _, addr) = (f.next()?, f.next()?, f.next()?);
    addr.split('/').next()?.parse().ok()
}

/// The name of an attribute value (`rtpmap:0 PCMU/8000` -> `rtpmap`).
pub fn attr_name(v: &str) -> &str {
    v.split(':').next().unwrap_or(v)
}

impl Media {
    fn m_fields(&self) -> Vec<&str> {
        self.lines[0].value.split(' ').collect()
    }

    fn check_m_line(&self) -> Result<(), String> {
        let f = self.m_fields();
        if f.len() < 3 {
            return Err(format!(
                "m={} needs media, port, transport",
                self.lines[0].value
            ));
        }
        f[1].split('/')
            .next()
            .unwrap_or("")
            .parse::<u16>()
            .map_err(|_| format!("m= port {:?} is not a number", f[1]))?;
        Ok(())
    }

    /// `audio`, `video`, ...
    pub fn kind(&self) -> &str {
        self.m_fields()[0]
    }

    pub fn port(&self) -> u16 {
        self.m_fields()[1]
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0)
    }

    pub fn proto(&self) -> &str {
        self.m_fields()[2]
    }

    /// Payload types / formats of the m= line.
    pub fn formats(&self) -> Vec<String> {
        self.m_fields()[3..].iter().map(|s| s.to_string()).collect()
    }

    fn set_m(&mut self, port: Option<u16>, proto: Option<&str>, formats: Option<&[String]>) {
        let f = self.m_fields();
        let kind = f[0].to_string();
        let port = port
            .map(|p| p.to_string())
            .unwrap_or_else(|| f[1].to_string());
        let proto = proto.unwrap_or(f[2]).to_string();
        let fmts = formats
            .map(|x| x.to_vec())
            .unwrap_or_else(|| f[3..].iter().map(|s| s.to_string()).collect());
        let mut v = format!("{kind} {port} {proto}");
        for x in fmts {
            v.push(' ');
            v.push_str(&x);
        }
        self.lines[0].value = v;
    }

    pub fn set_port(&mut self, port: u16) {
        self.set_m(Some(port), None, None)
    }

    pub fn set_proto(&mut self, proto: &str) {
        self.set_m(None, Some(proto), None)
    }

    /// The media-level `c=` address, if any.
    pub fn own_connection(&self) -> Option<IpAddr> {
        self.lines
            .iter()
            .find(|l| l.kind == 'c')
            .and_then(|l| parse_c(&l.value))
    }

    /// Sets (or adds, after the m= line and any i=) the media-level `c=`.
    pub fn set_connection(&mut self, ip: IpAddr) {
        let c = Line {
            kind: 'c',
            value: c_value(ip),
        };
        if let Some(l) = self.lines.iter_mut().find(|l| l.kind == 'c') {
            *l = c;
        } else {
            let at = 1 + self.lines[1..].iter().take_while(|l| l.kind == 'i').count();
            self.lines.insert(at, c);
        }
    }

    pub fn remove_connection(&mut self) {
        self.lines.retain(|l| l.kind != 'c');
    }

    /// Values of attributes named `name` (the part after `name:`; empty for flags).
    pub fn attrs<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.lines
            .iter()
            .filter(move |l| l.kind == 'a' && attr_name(&l.value) == name)
            .map(move |l| l.value[name.len()..].strip_prefix(':').unwrap_or(""))
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.attrs(name).next().is_some()
    }

    pub fn remove_attrs(&mut self, pred: impl Fn(&str) -> bool) {
        self.lines
            .retain(|l| l.kind != 'a' || !pred(attr_name(&l.value)));
    }

    pub fn push_attr(&mut self, value: impl Into<String>) {
        self.lines.push(Line {
            kind: 'a',
            value: value.into(),
        });
    }

    /// The RTCP port: `a=rtcp:PORT`, else RTP port + 1 (RFC 3605).
    pub fn rtcp_port(&self) -> u16 {
        self.attrs("rtcp")
            .next()
            .and_then(|v| v.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| self.port().wrapping_add(1))
    }

    /// The `a=rtcp:` attribute: its port and, when it names one, its address
    /// (RFC 3605 `a=rtcp:PORT [IN IP4 ADDRESS]`).
    pub fn rtcp_attr(&self) -> Option<(u16, Option<IpAddr>)> {
        let v = self.attrs("rtcp").next()?;
        let (port, rest) = v.split_once(' ').unwrap_or((v, ""));
        Some((port.parse().ok()?, parse_c(rest)))
    }

    /// The `a=rtpmap`, `a=fmtp` and `a=rtcp-fb` lines of each format in m=
    /// order, as a relay that regenerates them writes them: static payload
    /// types get an rtpmap of their own.
    fn codec_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for pt in self.formats() {
            let pt = pt.as_str();
            let of = |name: &'static str| -> Vec<String> {
                self.attrs(name)
                    .filter_map(|v| {
                        let (p, rest) = v.split_once(' ')?;
                        (p == pt).then(|| format!("{name}:{pt} {rest}"))
                    })
                    .collect()
            };
            let mapped = of("rtpmap");
            if mapped.is_empty() {
                if let Some(enc) = static_encoding(pt) {
                    out.push(format!("rtpmap:{pt} {enc}"));
                }
            }
            out.extend(mapped);
            out.extend(of("fmtp"));
            out.extend(of("rtcp-fb"));
        }
        out
    }

    /// Lays the attributes out as rtpengine writes them: the ones a relay
    /// does not own stay where they were, then come the codecs' lines, the
    /// direction, `a=rtcp:` (when given) and `a=rtcp-mux` (when set), then
    /// `a=ptime`.
    pub fn relay_layout(&mut self, direction: &str, rtcp: Option<u16>, mux: bool) {
        const OWNED: [&str; 6] = ["rtpmap", "fmtp", "rtcp-fb", "ptime", "rtcp", "rtcp-mux"];
        let codecs = self.codec_lines();
        let ptime: Vec<String> = self.attrs("ptime").map(|v| format!("ptime:{v}")).collect();
        self.remove_attrs(|n| OWNED.contains(&n) || DIRECTIONS.contains(&n));
        for l in codecs {
            self.push_attr(l);
        }
        self.push_attr(direction);
        if let Some(p) = rtcp {
            self.push_attr(format!("rtcp:{p}"));
        }
        if mux {
            self.push_attr("rtcp-mux");
        }
        for p in ptime {
            self.push_attr(p);
        }
    }

    /// Keeps only the m= and c= lines: a rejected (port 0) section as a
    /// relay passes it on.
    pub fn strip_to_m_and_c(&mut self) {
        let mut first = true;
        self.lines
            .retain(|l| std::mem::take(&mut first) || l.kind == 'c');
    }

    /// The direction attribute, `sendrecv` when absent.
    pub fn direction(&self) -> &str {
        self.explicit_direction().unwrap_or("sendrecv")
    }

    /// The direction attribute, if the section has one.
    pub fn explicit_direction(&self) -> Option<&str> {
        self.lines
            .iter()
            .filter(|l| l.kind == 'a')
            .map(|l| l.value.as_str())
            .find(|v| DIRECTIONS.contains(v))
    }

    /// Codec name of payload type `pt`: from `a=rtpmap`, else the static table.
    pub fn codec_name(&self, pt: &str) -> Option<String> {
        for v in self.attrs("rtpmap") {
            let mut it = v.splitn(2, ' ');
            if it.next() == Some(pt) {
                return it
                    .next()
                    .and_then(|enc| enc.split('/').next())
                    .map(str::to_string);
            }
        }
        static_codec(pt).map(str::to_string)
    }

    /// Replaces the m= line's formats (their attributes are the caller's).
    pub fn set_formats(&mut self, formats: &[String]) {
        self.set_m(None, None, Some(formats));
    }

    /// Keeps only the formats `keep` says yes to (in their order), dropping
    /// the rtpmap/fmtp/rtcp-fb attributes of the others.
    pub fn retain_formats(&mut self, keep: impl Fn(&str, Option<&str>) -> bool) {
        let fmts = self.formats();
        let (kept, dropped): (Vec<String>, Vec<String>) = fmts
            .into_iter()
            .partition(|pt| keep(pt, self.codec_name(pt).as_deref()));
        self.set_m(None, None, Some(&kept));
        self.lines.retain(|l| {
            if l.kind != 'a' {
                return true;
            }
            let name = attr_name(&l.value);
            if !["rtpmap", "fmtp", "rtcp-fb"].contains(&name) {
                return true;
            }
            // `a=rtpmap` with no value names no payload type.
            let value = l.value.get(name.len() + 1..).unwrap_or("");
            let pt = value.split(' ').next().unwrap_or("");
            !dropped.iter().any(|d| d == pt)
        });
    }
}

/// `name/rate` of an RFC 3551 static payload type, as an rtpmap writes it.
fn static_encoding(pt: &str) -> Option<String> {
    let rate = match pt {
        "26" | "31" | "34" => 90_000,
        _ => 8000,
    };
    static_codec(pt).map(|n| format!("{n}/{rate}"))
}

/// RFC 3551 static payload types.
fn static_codec(pt: &str) -> Option<&'static str> {
    Some(match pt {
        "0" => "PCMU",
        "3" => "GSM",
        "4" => "G723",
        "8" => "PCMA",
        "9" => "G722",
        "13" => "CN",
        "18" => "G729",
        "26" => "JPEG",
        "31" => "H261",
        "34" => "H263",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const OFFER: &str = "v=0\r\no=user1 53655765 2353687637 IN IP4 10.0.0.5\r\ns=-\r\nc=IN IP4 10.0.0.5\r\nt=0 0\r\n\
m=audio 7000 RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n\
a=x-unknown:keep me\r\na=sendonly\r\na=ice-ufrag:abcd\r\na=candidate:1 1 UDP 2130706431 10.0.0.5 7000 typ host\r\n\
m=video 0 RTP/AVP 96\r\n";

    #[test]
    fn a_codec_attribute_without_a_value_is_kept_and_does_not_panic() {
        let text = OFFER.replace("a=rtpmap:0 PCMU/8000\r\n", "a=rtpmap\r\na=fmtp\r\n");
        let mut s = Sdp::parse(&text).unwrap();
        s.media[0].retain_formats(|pt, _| pt != "8");
        assert_eq!(s.media[0].formats(), ["0", "101"]);
        assert!(s.to_string().contains("a=rtpmap\r\n"));
    }

    #[test]
    fn round_trips_and_reads_fields() {
        let s = Sdp::parse(OFFER).unwrap();
        assert_eq!(
            s.to_string(),
            OFFER,
            "unchanged SDP is re-emitted byte for byte"
        );
        let m = &s.media[0];
        assert_eq!(
            (m.kind(), m.port(), m.proto(), m.rtcp_port()),
            ("audio", 7000, "RTP/AVP", 7001)
        );
        assert_eq!(m.formats(), ["0", "8", "101"]);
        assert_eq!(m.codec_name("8").as_deref(), Some("PCMA"));
        assert_eq!(m.codec_name("101").as_deref(), Some("telephone-event"));
        assert_eq!(m.direction(), "sendonly");
        assert_eq!(s.connection(0), Some("10.0.0.5".parse().unwrap()));
        assert_eq!(s.origin_addr(), Some("10.0.0.5"));
        assert_eq!(s.media[1].port(), 0);
    }

    #[test]
    fn rewrites_addresses_ports_ice_and_codecs() {
        let mut s = Sdp::parse(OFFER).unwrap();
        let relay: IpAddr = "192.0.2.1".parse().unwrap();
        s.set_origin_addr(relay);
        s.set_session_connection(relay);
        s.strip_ice();
        let m = &mut s.media[0];
        m.set_port(30000);
        m.retain_formats(|_, name| name != Some("PCMA"));
        m.push_attr("rtcp:30001");
        let out = s.to_string();
        assert!(
            out.contains("o=user1 53655765 2353687637 IN IP4 192.0.2.1\r\n"),
            "{out}"
        );
        assert!(out.contains("c=IN IP4 192.0.2.1\r\n"));
        assert!(out.contains("m=audio 30000 RTP/AVP 0 101\r\n"), "{out}");
        assert!(!out.contains("candidate") && !out.contains("ice-ufrag"));
        assert!(out.contains("a=x-unknown:keep me\r\n") && out.contains("a=fmtp:101 0-15\r\n"));
        assert_eq!(Sdp::parse(&out).unwrap().media[0].rtcp_port(), 30001);
        let mut v6 = Sdp::parse(OFFER).unwrap();
        v6.media[0].set_connection("2001:db8::1".parse().unwrap());
        assert_eq!(v6.connection(0), Some("2001:db8::1".parse().unwrap()));
        assert!(v6
            .to_string()
            .contains("m=audio 7000 RTP/AVP 0 8 101\r\nc=IN IP6 2001:db8::1\r\n"));
    }

    #[test]
    fn bad_sdp_is_refused_with_the_line() {
        let e = Sdp::parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\ngarbage\r\n")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "SDP line 3: \"garbage\" is not of the form x=value");
        let e = Sdp::parse(
            "v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nc=IN IP4 1.2.3.4\r\nm=audio x RTP/AVP 0\r\n",
        )
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("SDP line 4: m= port \"x\" is not a number"),
            "{e}"
        );
        assert!(Sdp::parse("o=- 1 1 IN IP4 1.2.3.4\r\n")
            .unwrap_err()
            .to_string()
            .contains("v=0"));
        assert!(Sdp::parse("v=0\r\no=broken\r\n")
            .unwrap_err()
            .to_string()
            .contains("o= line"));
        let e = Sdp::parse("v=0\r\no=- 1 1 IN IP4 1.2.3.4\r\nm=audio 5 RTP/AVP 0\r\n").unwrap_err();
        assert!(
            e.to_string().contains("media 1 has no usable c= address"),
            "{e}"
        );
        assert!(
            Sdp::parse("v=0\n\no=- 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\nm=audio 5 RTP/AVP 0\n")
                .is_ok(),
            "bare LF accepted"
        );
    }
}
