//! What the adapters count for the metrics and the API, and what they
//! publish for it to read: SIP messages by direction, method and status
//! code (read from the start line and CSeq of the bytes the SIP thread
//! received and sent, so the B2BUA core is untouched), NG commands and
//! their errors, calls started and ended by outcome with the last CDRs
//! (from the records every call's CDRs pass through on their way to the
//! spool), and the B2BUA once it is listening. Counting a message is a
//! relaxed atomic add: no lock on the SIP path.

use crate::b2bua::B2bua;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use tollgate_cdr::model::{Cdr, Disposition, Record};
use tollgate_sip::method::{Method, KNOWN_COUNT};

/// Which way a message went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    Received = 0,
    Sent = 1,
}

impl Direction {
    pub const ALL: [Direction; 2] = [Direction::Received, Direction::Sent];

    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Received => "received",
            Direction::Sent => "sent",
        }
    }
}

/// Method slots: the known methods, then one for any other.
const METHODS: usize = KNOWN_COUNT + 1;
/// Status codes 100-699.
const CODES: usize = 600;

/// The name of method slot `i`.
pub fn method_name(i: usize) -> &'static str {
    Method::known_names().nth(i).unwrap_or("other")
}

fn method_slot(name: &str) -> usize {
    Method::parse(name).known_index().unwrap_or(KNOWN_COUNT)
}

fn zeros(n: usize) -> Box<[AtomicU64]> {
    (0..n).map(|_| AtomicU64::new(0)).collect()
}

/// SIP messages the SIP thread received and sent.
pub struct SipMeters {
    /// [direction][method]
    requests: Box<[AtomicU64]>,
    /// [direction][method of the CSeq][code - 100]
    responses: Box<[AtomicU64]>,
}

impl Default for SipMeters {
    fn default() -> Self {
        SipMeters {
            requests: zeros(2 * METHODS),
            responses: zeros(2 * METHODS * CODES),
        }
    }
}

/// What a message's start line (and, for a response, its CSeq) says.
#[derive(Debug, PartialEq, Eq)]
enum Kind<'a> {
    Request(&'a str),
    Response(u16, &'static str),
}

/// Reads the start line, and a response's CSeq method, without parsing
/// the rest; None for what is not SIP (keep-alives, garbage).
fn kind(bytes: &[u8]) -> Option<Kind<'_>> {
    let line_end = find(bytes, b"\r\n").unwrap_or(bytes.len());
    let start = std::str::from_utf8(&bytes[..line_end]).ok()?;
    let Some(rest) = start.strip_prefix("SIP/2.0 ") else {
        let (method, rest) = start.split_once(' ')?;
        return rest.ends_with("SIP/2.0").then_some(Kind::Request(method));
    };
    let code: u16 = rest.get(..3)?.parse().ok()?;
    if !(100..700).contains(&code) {
        return None;
    }
    let head = &bytes[line_end..];
    let head = &head[..find(head, b"\r\n\r\n").unwrap_or(head.len())];
    let method = std::str::from_utf8(head)
        .ok()?
        .split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim().eq_ignore_ascii_case("CSeq").then_some(value)
        })
        .and_then(|v| v.split_whitespace().nth(1).map(method_of))
        .unwrap_or("");
    Some(Kind::Response(code, method))
}

/// A CSeq method as one of the counted names.
fn method_of(name: &str) -> &'static str {
    method_name(method_slot(name))
}

fn find(bytes: &[u8], what: &[u8]) -> Option<usize> {
    bytes.windows(what.len()).position(|w| w == what)
}

impl SipMeters {
    /// Counts one message that went `dir`.
    pub fn count(&self, dir: Direction, bytes: &[u8]) {
        let d = dir as usize;
        let slot = match kind(bytes) {
            Some(Kind::Request(m)) => &self.requests[d * METHODS + method_slot(m)],
            Some(Kind::Response(code, m)) => {
                let i = (d * METHODS + method_slot(m)) * CODES + usize::from(code - 100);
                &self.responses[i]
            }
            None => return,
        };
        slot.fetch_add(1, Ordering::Relaxed);
    }

    /// Non-zero request counts: (direction, method, count).
    pub fn requests(&self) -> Vec<(Direction, &'static str, u64)> {
        let mut out = Vec::new();
        for dir in Direction::ALL {
            for m in 0..METHODS {
                let n = self.requests[dir as usize * METHODS + m].load(Ordering::Relaxed);
                if n > 0 {
                    out.push((dir, method_name(m), n));
                }
            }
        }
        out
    }

    /// Non-zero response counts: (direction, CSeq method, code, count).
    pub fn responses(&self) -> Vec<(Direction, &'static str, u16, u64)> {
        let mut out = Vec::new();
        for dir in Direction::ALL {
            for m in 0..METHODS {
                let base = (dir as usize * METHODS + m) * CODES;
                for c in 0..CODES {
                    let n = self.responses[base + c].load(Ordering::Relaxed);
                    if n > 0 {
                        out.push((dir, method_name(m), 100 + c as u16, n));
                    }
                }
            }
        }
        out
    }
}

/// NG commands the server answers, in counter order; anything else is "other".
pub const NG_COMMANDS: [&str; 10] = [
    "ping",
    "offer",
    "answer",
    "delete",
    "query",
    "list",
    "statistics",
    "start recording",
    "stop recording",
    "other",
];

/// NG requests by command, and those answered with `result: error`.
#[derive(Default)]
pub struct NgMeters {
    commands: [AtomicU64; NG_COMMANDS.len()],
    errors: [AtomicU64; NG_COMMANDS.len()],
}

impl NgMeters {
    /// Counts one answered request.
    pub fn count(&self, command: Option<&str>, error: bool) {
        let last = NG_COMMANDS.len() - 1;
        let i = command
            .and_then(|c| NG_COMMANDS[..last].iter().position(|n| *n == c))
            .unwrap_or(last);
        self.commands[i].fetch_add(1, Ordering::Relaxed);
        if error {
            self.errors[i].fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (command, requests, errors) for every command.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64, u64)> + '_ {
        NG_COMMANDS.iter().enumerate().map(|(i, c)| {
            (
                *c,
                self.commands[i].load(Ordering::Relaxed),
                self.errors[i].load(Ordering::Relaxed),
            )
        })
    }
}

/// Outcomes in counter order.
pub const OUTCOMES: [Disposition; 5] = [
    Disposition::Answered,
    Disposition::Busy,
    Disposition::NoAnswer,
    Disposition::Failed,
    Disposition::Cancelled,
];

/// How many CDRs the tail keeps.
pub const CDR_TAIL: usize = 100;

/// Calls started and ended (NG and SIP alike), and the latest CDRs.
#[derive(Default)]
pub struct CallMeters {
    started: AtomicU64,
    ended: [AtomicU64; OUTCOMES.len()],
    tail: Mutex<VecDeque<Cdr>>,
}

impl CallMeters {
    /// Counts what records on their way to the spool say (once per call
    /// event, not per message).
    pub fn on_records<'a>(&self, records: impl IntoIterator<Item = &'a Record>) {
        for r in records {
            match r {
                Record::Started(_) => {
                    self.started.fetch_add(1, Ordering::Relaxed);
                }
                Record::Answered { .. } => {}
                Record::Ended(cdr) => {
                    let i = OUTCOMES.iter().position(|o| *o == cdr.disposition());
                    self.ended[i.unwrap_or(3)].fetch_add(1, Ordering::Relaxed);
                    let mut tail = crate::sync::lock(&self.tail);
                    if tail.len() == CDR_TAIL {
                        tail.pop_front();
                    }
                    tail.push_back((**cdr).clone());
                }
            }
        }
    }

    pub fn started(&self) -> u64 {
        self.started.load(Ordering::Relaxed)
    }

    /// (outcome, calls) for every outcome.
    pub fn ended(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        OUTCOMES
            .iter()
            .zip(&self.ended)
            .map(|(o, n)| (o.as_str(), n.load(Ordering::Relaxed)))
    }

    /// The last `limit` CDRs, newest first.
    pub fn recent(&self, limit: usize) -> Vec<Cdr> {
        crate::sync::lock(&self.tail)
            .iter()
            .rev()
            .take(limit)
            .cloned()
            .collect()
    }
}

/// Everything the adapters count and publish for the HTTP server.
#[derive(Default)]
pub struct Observed {
    pub sip: SipMeters,
    pub ng: NgMeters,
    pub calls: CallMeters,
    pub failover: crate::failover::FailoverMeters,
    b2bua: OnceLock<Arc<Mutex<B2bua>>>,
    ng_listening: AtomicBool,
}

impl std::fmt::Debug for Observed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observed") // counters, read through their own methods
    }
}

impl Observed {
    /// The SIP server is listening with this B2BUA.
    pub fn sip_listening(&self, b2bua: Arc<Mutex<B2bua>>) {
        let _ = self.b2bua.set(b2bua);
    }

    /// The B2BUA, once SIP listens.
    pub fn b2bua(&self) -> Option<&Arc<Mutex<B2bua>>> {
        self.b2bua.get()
    }

    /// The NG listeners are bound.
    pub fn ng_listening(&self) {
        self.ng_listening.store(true, Ordering::Relaxed);
    }

    pub fn is_ng_listening(&self) -> bool {
        self.ng_listening.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_lines_and_cseq_are_read_without_a_full_parse() {
        let inv = b"INVITE sip:6000@x SIP/2.0\r\nVia: x\r\n\r\nv=0";
        assert_eq!(kind(inv), Some(Kind::Request("INVITE")));
        let ok = b"SIP/2.0 200 OK\r\nVia: x\r\ncseq: 2 BYE\r\n\r\n";
        assert_eq!(kind(ok), Some(Kind::Response(200, "BYE")));
        assert_eq!(kind(b"\r\n\r\n"), None);
        assert_eq!(kind(b"SIP/2.0 999 Nope\r\n\r\n"), None);
        assert_eq!(kind(b"hello world\r\n\r\n"), None);
        assert_eq!(kind(&[0xff, 0xfe, b' ']), None);
    }

    #[test]
    fn messages_are_counted_by_direction_method_and_code() {
        let m = SipMeters::default();
        m.count(Direction::Received, b"INVITE sip:a@b SIP/2.0\r\n\r\n");
        m.count(Direction::Received, b"FOO sip:a@b SIP/2.0\r\n\r\n");
        m.count(
            Direction::Sent,
            b"SIP/2.0 100 Trying\r\nCSeq: 1 INVITE\r\n\r\n",
        );
        m.count(Direction::Sent, b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n");
        m.count(Direction::Sent, b"SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n");
        assert_eq!(
            m.requests(),
            [
                (Direction::Received, "INVITE", 1),
                (Direction::Received, "other", 1)
            ]
        );
        assert_eq!(
            m.responses(),
            [
                (Direction::Sent, "INVITE", 100, 1),
                (Direction::Sent, "INVITE", 200, 2)
            ]
        );
    }

    #[test]
    fn ng_commands_outside_the_list_are_other() {
        let n = NgMeters::default();
        n.count(Some("offer"), false);
        n.count(Some("offer"), true);
        n.count(Some("bogus"), true);
        n.count(None, true);
        let c: Vec<_> = n.counts().filter(|(_, r, _)| *r > 0).collect();
        assert_eq!(c, [("offer", 2, 1), ("other", 2, 2)]);
    }
}
