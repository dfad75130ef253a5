//! The lexical pieces every SIP header parser here shares (RFC 3261
//! §25.1): tokens, quoted strings, top-level list commas, `;name=value`
//! parameters, and [`Span`]s recording where a piece sits in a header
//! value, so a parsed view keeps offsets instead of copies. Hand-written
//! for the reasons given in [`crate::message`]: no crate parses SIP's
//! grammar leniently enough and without allocating.

/// Where a piece of text sits inside a header value, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    start: usize,
    end: usize,
}

impl Span {
    /// The span `inner` covers in `outer`; `inner` must be a sub-slice of
    /// `outer` (every parser here only ever slices its input).
    pub(crate) fn of(outer: &str, inner: &str) -> Span {
        let start = (inner.as_ptr() as usize).wrapping_sub(outer.as_ptr() as usize);
        debug_assert!(start + inner.len() <= outer.len(), "not a sub-slice");
        Span {
            start,
            end: start + inner.len(),
        }
    }

    /// The text this span covers in `outer` ("" if `outer` is not what it
    /// was made from, which the view's invalidation rules out).
    pub(crate) fn text(self, outer: &str) -> &str {
        outer.get(self.start..self.end).unwrap_or_default()
    }
}

pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// At most 60 characters of `s`, to quote bad input in an error.
pub(crate) fn clip(s: &str) -> String {
    s.chars().take(60).collect()
}

/// The first `want` outside quoted strings (and, with `angles`, outside
/// `<...>`). All the delimiters are ASCII, so scanning bytes is UTF-8 safe.
fn find_top_level(s: &str, want: u8, angles: bool) -> Option<usize> {
    let bytes = s.as_bytes();
    // Until the first quote or '<' nothing is skipped: a plain search.
    let opens = |b: u8| b == b'"' || (angles && b == b'<');
    let start = bytes.iter().position(|b| *b == want || opens(*b))?;
    if bytes[start] == want {
        return Some(start);
    }
    let (mut quoted, mut escaped, mut angle) = (false, false, false);
    for (i, b) in bytes.iter().enumerate().skip(start) {
        match *b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'<' if angles && !quoted => angle = true,
            b'>' if angles && !quoted => angle = false,
            b if b == want && !quoted && !angle => return Some(i),
            _ => {}
        }
    }
    None
}

/// Whether every quoted string in `s` is closed: text appended after an
/// unclosed one would be read as part of it.
pub(crate) fn quotes_closed(s: &str) -> bool {
    let (mut quoted, mut escaped) = (false, false);
    for b in s.bytes() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            _ => {}
        }
    }
    !quoted
}

/// The first `want` outside quoted strings.
pub(crate) fn find_unquoted(s: &str, want: u8) -> Option<usize> {
    find_top_level(s, want, false)
}

/// The non-empty, trimmed pieces of `s` between top-level `sep`s.
struct Pieces<'a> {
    rest: Option<&'a str>,
    sep: u8,
    angles: bool,
}

impl<'a> Iterator for Pieces<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        loop {
            let rest = self.rest?;
            let piece = match find_top_level(rest, self.sep, self.angles) {
                Some(i) => {
                    self.rest = Some(&rest[i + 1..]);
                    &rest[..i]
                }
                None => {
                    self.rest = None;
                    rest
                }
            };
            let piece = piece.trim_ascii();
            if !piece.is_empty() {
                return Some(piece);
            }
        }
    }
}

/// The values of a list header (Via, Route, Contact...): split at commas
/// outside quotes and angle brackets, trimmed, empty ones skipped.
pub(crate) fn list_items(v: &str) -> impl Iterator<Item = &str> {
    Pieces {
        rest: Some(v),
        sep: b',',
        angles: true,
    }
}

/// The parameters in `;a=b;c` text (a leading ';' is optional): names and
/// values trimmed, names as written.
pub(crate) fn params(s: &str) -> impl Iterator<Item = (&str, Option<&str>)> {
    Pieces {
        rest: Some(s),
        sep: b';',
        angles: false,
    }
    .map(|p| match p.split_once('=') {
        Some((k, v)) => (k.trim_ascii(), Some(v.trim_ascii())),
        None => (p, None),
    })
}

/// Parameter `name` (any case) in `;a=b;c` text: `Some(None)` when it is
/// there without a value.
pub(crate) fn param<'a>(s: &'a str, name: &str) -> Option<Option<&'a str>> {
    params(s)
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// `host[:port]`, IPv6 in brackets; the host is returned without them.
pub(crate) fn split_host_port(s: &str) -> Result<(&str, Option<u16>), String> {
    let s = s.trim_ascii();
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("unclosed '[' in {:?}", clip(s)))?;
        (h, after.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty()
        || !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
    {
        return Err(format!("bad host {:?}", clip(host)));
    }
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("bad port {:?}", clip(p)))
        })
        .transpose()?;
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_split_only_at_top_level_commas() {
        let v = "\"a, b\" <sip:x;p=1,2>;q=1 , <sip:y> ,, ";
        let items: Vec<_> = list_items(v).collect();
        assert_eq!(items, ["\"a, b\" <sip:x;p=1,2>;q=1", "<sip:y>"]);
        assert_eq!(list_items(" , ,").count(), 0);
        let v = "sip:a;p=1 , <sip:b,c>;q=\"x,\\\"y\" , sip:d";
        let items: Vec<_> = list_items(v).collect();
        assert_eq!(items, ["sip:a;p=1", "<sip:b,c>;q=\"x,\\\"y\"", "sip:d"]);
    }

    #[test]
    fn params_are_found_in_any_case_and_quotes_hide_semicolons() {
        let p = "; Tag = abc ;lr; x=\"a;b\"";
        assert_eq!(param(p, "tag"), Some(Some("abc")));
        assert_eq!(param(p, "LR"), Some(None));
        assert_eq!(param(p, "x"), Some(Some("\"a;b\"")));
        assert_eq!(param(p, "b\""), None);
    }

    #[test]
    fn spans_give_back_the_text_they_were_made_from() {
        let outer = "SIP/2.0/UDP host;branch=z9";
        let inner = &outer[12..16];
        assert_eq!(Span::of(outer, inner).text(outer), "host");
        assert_eq!(Span::of(outer, inner).text("short"), "");
    }
}
