//! A B2BUA call's records: `call.started` with the numbers when the INVITE
//! is routed, `call.answered` on the callee's 2xx, and the CDR. The media
//! session manager's CDR (legs, per-direction counters, quality) is taken
//! and given what only SIP knows: numbers, URIs, the final response, who
//! hung up and each leg's own Call-ID.

use crate::media::ms;
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;
use tollgate_cdr::model::{CallStart, Cdr, Disposition, HangupBy, Record};
use tollgate_sip::dialog::Dialog;
use tollgate_sip::message::{Message, NameAddr};

/// What the B2BUA knows of a call for its CDR.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct CallFacts {
    pub call_id: String,
    pub start: SystemTime,
    pub answered: Option<SystemTime>,
    pub from_number: String,
    pub to_number: String,
    pub from_uri: Option<String>,
    pub to_uri: Option<String>,
    pub request_uri: Option<String>,
    pub source_ip: IpAddr,
    pub destination_ip: Option<IpAddr>,
    /// The callee's target URI, once routed.
    pub trunk: Option<String>,
    /// The carrier and gateway least-cost routing chose.
    pub carrier: Option<String>,
    pub gateway: Option<String>,
    /// The org of the route it took.
    #[serde(default)]
    pub org: Option<String>,
}

/// What a CDR leg names: the leg's Call-ID, our and the peer's tags and
/// URIs (without tags), and the peer's signalling address.
#[derive(Debug, Clone)]
pub struct LegIds {
    pub call_id: String,
    pub local_tag: String,
    pub remote_tag: Option<String>,
    pub local_uri: String,
    pub remote_uri: String,
    pub addr: SocketAddr,
}

impl LegIds {
    pub fn of(d: &Dialog, addr: SocketAddr) -> LegIds {
        LegIds {
            call_id: d.id.call_id.clone(),
            local_tag: d.id.local_tag.clone(),
            remote_tag: d.id.remote_tag.clone(),
            local_uri: d.local_uri.clone(),
            remote_uri: d.remote_uri.clone(),
            addr,
        }
    }

    /// A callee that made no dialog: as the INVITE we sent it names it.
    pub fn of_invite(invite: &Message, addr: SocketAddr) -> LegIds {
        let v = invite.view();
        let uri = |n: Option<NameAddr>| n.map(|n| n.without_tag().to_string());
        LegIds {
            call_id: v.call_id().unwrap_or_default().to_string(),
            local_tag: v.from_tag().unwrap_or_default().to_string(),
            remote_tag: None,
            local_uri: uri(v.from().ok().map(NameAddr::from)).unwrap_or_default(),
            remote_uri: uri(v.to().ok().map(NameAddr::from)).unwrap_or_default(),
            addr,
        }
    }
}

/// How a call ended.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub status: Disposition,
    pub code: u16,
    pub reason: String,
    pub by: HangupBy,
}

impl CallFacts {
    pub fn started(&self) -> Record {
        Record::Started(CallStart {
            call_id: self.call_id.clone(),
            at_ms: ms(self.start),
            from_number: self.from_number.clone(),
            to_number: self.to_number.clone(),
            source_ip: Some(self.source_ip),
            org_id: None,
        })
    }

    pub fn answered_record(&self) -> Option<Record> {
        Some(Record::Answered {
            call_id: self.call_id.clone(),
            at_ms: ms(self.answered?),
        })
    }

    /// The CDR: `media` is the session manager's, when the call had media;
    /// `transports` are the A and B legs' ("udp", "tcp").
    pub fn cdr(
        &self,
        media: Option<Cdr>,
        out: &Outcome,
        a: LegIds,
        b: Option<LegIds>,
        transports: [&str; 2],
        end: SystemTime,
    ) -> Cdr {
        let mut c = media.unwrap_or_default();
        c.call_id = self.call_id.clone();
        c.from_number = self.from_number.clone();
        c.to_number = self.to_number.clone();
        c.from_uri = self.from_uri.clone();
        c.to_uri = self.to_uri.clone();
        c.request_uri = self.request_uri.clone();
        c.source_ip = Some(self.source_ip);
        c.destination_ip = self.destination_ip;
        c.transport = Some(transports[0].into());
        c.trunk = self.trunk.clone();
        c.carrier = self.carrier.clone();
        c.gateway = self.gateway.clone();
        c.org_id = self.org.clone();
        c.start_ms = ms(self.start);
        c.answer_ms = self.answered.map(ms);
        c.end_ms = ms(end);
        c.status = Some(out.status);
        c.sip_code = Some(out.code);
        c.sip_reason = Some(out.reason.clone());
        c.hangup_by = Some(out.by);
        // Legs: the media CDR's order is the offerer (A) first; it lacks B
        // when B never answered (no tag), and both when there was no media.
        let legs = [Some(a), b];
        let wanted = legs.iter().flatten().count();
        while c.legs.len() < wanted {
            let name = if c.legs.is_empty() { "a" } else { "b" };
            c.legs.push(tollgate_cdr::model::Leg {
                leg: name.into(),
                start_ms: c.start_ms,
                end_ms: c.end_ms,
                ..Default::default()
            });
        }
        for ((l, leg), t) in c.legs.iter_mut().zip(legs).zip(transports) {
            let Some(leg) = leg else { continue };
            l.sip_call_id = leg.call_id;
            l.transport = Some(t.into());
            l.answer_ms = c.answer_ms;
            l.signal_ip = Some(leg.addr.ip());
            l.sip_code = Some(out.code);
            let (ours, theirs) = (Some(leg.local_tag), leg.remote_tag);
            // A leg: the caller's From tag, our To tag; B leg: ours, the callee's.
            if l.leg == "a" {
                (l.from_tag, l.to_tag) = (theirs, ours);
                l.from_uri = Some(leg.remote_uri);
                l.to_uri = Some(leg.local_uri);
                l.request_uri = self.request_uri.clone();
            } else {
                (l.from_tag, l.to_tag) = (ours, theirs);
                l.from_uri = Some(leg.local_uri);
                l.to_uri = Some(leg.remote_uri);
                l.request_uri = self.trunk.clone();
            }
        }
        c
    }
}

/// The disposition a final failure response means for the caller.
pub fn failure_status(code: u16) -> Disposition {
    match code {
        486 | 600 => Disposition::Busy,
        408 | 480 => Disposition::NoAnswer,
        487 => Disposition::Cancelled,
        _ => Disposition::Failed,
    }
}
