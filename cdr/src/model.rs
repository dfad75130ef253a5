//! What a CDR says about a call, and the call events the spool carries.
//!
//! A [`Cdr`] is one finished call: who called whom, when it was set up,
//! answered and ended, how it ended, and per leg the SIP identities and the
//! media each way. A call in progress also yields [`Record::Started`] and
//! [`Record::Answered`] events, so real-time sinks (Redis, AMQP) can follow
//! it; the SQL sinks store only the finished CDR. Times are UTC milliseconds
//! since the Unix epoch. Nothing secret (SRTP keys, passwords) has a field
//! here, so nothing secret can reach a sink.

use serde::{Deserialize, Serialize};
use std::net::IpAddr;

/// How a call ended, as billing reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    Answered,
    Busy,
    NoAnswer,
    Failed,
    Cancelled,
}

impl Disposition {
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::Answered => "answered",
            Disposition::Busy => "busy",
            Disposition::NoAnswer => "no_answer",
            Disposition::Failed => "failed",
            Disposition::Cancelled => "cancelled",
        }
    }
}

/// Who ended the call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HangupBy {
    Caller,
    Callee,
    /// Tollgate itself: a media or final timeout, a ring timeout, overload.
    Relay,
    Unknown,
}

impl HangupBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HangupBy::Caller => "caller",
            HangupBy::Callee => "callee",
            HangupBy::Relay => "relay",
            HangupBy::Unknown => "unknown",
        }
    }
}

/// Media in one direction of one leg. Loss, jitter and MOS are present once
/// the data plane read RTP headers on the leg (every backend does, the XDP
/// fast path included); the MOS counts the RTCP round trip when known.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct MediaStats {
    pub packets: u64,
    pub bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lost: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jitter_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mos: Option<f64>,
}

/// One leg of a call: the caller's side ("a") or a callee's ("b", "b2" for
/// a second attempt or fork).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Leg {
    pub leg: String,
    /// The Call-ID of this leg's dialog (a B2BUA's legs have different ones).
    pub sip_call_id: String,
    pub from_tag: Option<String>,
    pub to_tag: Option<String>,
    pub from_uri: Option<String>,
    pub to_uri: Option<String>,
    pub request_uri: Option<String>,
    /// Where this leg's signalling came from / went to.
    pub signal_ip: Option<IpAddr>,
    /// Where this leg's media was sent (from its SDP or learned).
    pub media_ip: Option<IpAddr>,
    pub transport: Option<String>,
    pub codec: Option<String>,
    /// How the relay encrypted this leg's media, when it did:
    /// `SDES AES_CM_128_HMAC_SHA1_80` (never a key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srtp: Option<String>,
    /// The relay transcoded this leg's media to and from its peer's codec.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub transcoded: bool,
    pub start_ms: i64,
    pub answer_ms: Option<i64>,
    pub end_ms: i64,
    pub sip_code: Option<u16>,
    /// Media this leg sent to the relay.
    pub received: MediaStats,
    /// Media the relay sent to this leg.
    pub sent: MediaStats,
    /// What this leg's party said in RTCP of the media the relay sent it
    /// (its last report block): packets lost over the stream's life and
    /// interarrival jitter; and the relay's round trip to it (from the
    /// block's LSR/DLSR). None when it sent no such report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_lost: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_jitter_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_ms: Option<f64>,
}

/// One finished call.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Cdr {
    /// The call's identity in every sink (the A-leg Call-ID).
    pub call_id: String,
    pub from_number: String,
    pub to_number: String,
    pub from_uri: Option<String>,
    pub to_uri: Option<String>,
    pub request_uri: Option<String>,
    pub source_ip: Option<IpAddr>,
    pub destination_ip: Option<IpAddr>,
    pub transport: Option<String>,
    pub trunk: Option<String>,
    pub gateway: Option<String>,
    pub carrier: Option<String>,
    pub start_ms: i64,
    pub answer_ms: Option<i64>,
    pub end_ms: i64,
    pub status: Option<Disposition>,
    pub sip_code: Option<u16>,
    pub sip_reason: Option<String>,
    pub hangup_by: Option<HangupBy>,
    pub recording_url: Option<String>,
    pub org_id: Option<String>,
    pub legs: Vec<Leg>,
}

impl Cdr {
    /// Whole seconds from start to end (rounded down), never negative.
    pub fn duration_secs(&self) -> i64 {
        ((self.end_ms - self.start_ms).max(0)) / 1000
    }

    /// Seconds from answer to end, rounded up (a started second is billed);
    /// zero for a call never answered.
    pub fn billable_secs(&self) -> i64 {
        match self.answer_ms {
            Some(a) => ((self.end_ms - a).max(0) + 999) / 1000,
            None => 0,
        }
    }

    /// The disposition, `failed` when the source did not say.
    pub fn disposition(&self) -> Disposition {
        self.status.unwrap_or(Disposition::Failed)
    }
}

/// A call starting: enough for real-time views of active calls.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CallStart {
    pub call_id: String,
    pub at_ms: i64,
    pub from_number: String,
    pub to_number: String,
    pub source_ip: Option<IpAddr>,
    pub org_id: Option<String>,
}

/// One spooled record: a call event, or the finished call's CDR.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event")]
pub enum Record {
    #[serde(rename = "call.started")]
    Started(CallStart),
    #[serde(rename = "call.answered")]
    Answered { call_id: String, at_ms: i64 },
    #[serde(rename = "call.ended")]
    Ended(Box<Cdr>),
}

impl Record {
    /// Whether this is a call's CDR: the record a BYE's 200 or an NG
    /// delete's reply is acknowledged on (call events are not).
    pub fn is_cdr(&self) -> bool {
        matches!(self, Record::Ended(_))
    }

    pub fn call_id(&self) -> &str {
        match self {
            Record::Started(s) => &s.call_id,
            Record::Answered { call_id, .. } => call_id,
            Record::Ended(c) => &c.call_id,
        }
    }

    /// The event name, also the AMQP routing key.
    pub fn event(&self) -> &'static str {
        match self {
            Record::Started(_) => "call.started",
            Record::Answered { .. } => "call.answered",
            Record::Ended(_) => "call.ended",
        }
    }

    /// A key that is the same every time this record is delivered again
    /// (after a restart), so consumers of at-least-once sinks can drop
    /// repeats.
    pub fn dedup_key(&self) -> String {
        format!("{}/{}", self.call_id(), self.event())
    }
}

/// Now, in UTC milliseconds since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duration_rounds_down_and_billing_rounds_up() {
        let c = Cdr {
            start_ms: 1_000,
            answer_ms: Some(3_500),
            end_ms: 63_501,
            ..Cdr::default()
        };
        assert_eq!(c.duration_secs(), 62);
        assert_eq!(c.billable_secs(), 61); // 60.001 s answered
        let unanswered = Cdr {
            answer_ms: None,
            ..c
        };
        assert_eq!(unanswered.billable_secs(), 0);
    }

    #[test]
    fn records_round_trip_through_json_with_their_event_names() {
        let r = Record::Answered {
            call_id: "c1".into(),
            at_ms: 5,
        };
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains(r#""event":"call.answered""#), "{text}");
        assert_eq!(serde_json::from_str::<Record>(&text).unwrap(), r);
        assert_eq!(r.dedup_key(), "c1/call.answered");
    }
}
