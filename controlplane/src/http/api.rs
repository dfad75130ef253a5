//! The JSON API's answers, built from snapshots: the B2BUA's calls and
//! the media sessions (each call's legs with what each leg's party sent
//! the relay, from the sampler's flow counters), the last CDRs, gateways
//! and registrations. Shapes are in the module doc of [`super`].

use super::State;
use crate::b2bua::view::{CallView, LegView};
use crate::media::Reported;
use crate::sync::lock;
use serde::Serialize;
use std::collections::HashMap;
use std::net::SocketAddr;
use tollgate_cdr::model::MediaStats;

/// What one party of a call sent to the relay, and reported in RTCP.
#[derive(Debug, Clone, Serialize)]
pub struct PartyQuality {
    /// The party's tag (a leg's `remote_tag`).
    pub tag: String,
    #[serde(flatten)]
    pub stats: MediaStats,
    pub rtcp: Option<Reported>,
}

/// One leg: its signalling and its party's media.
#[derive(Debug, Clone, Serialize)]
pub struct LegJson {
    pub leg: String,
    pub sip_call_id: Option<String>,
    pub peer: Option<SocketAddr>,
    pub remote_uri: Option<String>,
    pub tag: Option<String>,
    /// None until the leg's party has media at the relay.
    pub media: Option<MediaStats>,
    /// What the leg's party reported in RTCP of the media it receives, and
    /// the relay's round trip to it; None before its first report.
    pub rtcp: Option<Reported>,
}

/// A call in progress.
#[derive(Debug, Clone, Serialize)]
pub struct CallJson {
    pub call_id: String,
    /// "sip": the B2BUA's call; "ng": a media session an NG client drives.
    pub kind: &'static str,
    /// "calling" or "answered" (SIP); "media" (NG).
    pub state: &'static str,
    pub from_number: Option<String>,
    pub to_number: Option<String>,
    pub start_ms: Option<i64>,
    pub answer_ms: Option<i64>,
    pub gateway: Option<String>,
    pub carrier: Option<String>,
    pub legs: Vec<LegJson>,
}

/// Every call in progress: the B2BUA's first (oldest first), then media
/// sessions no B2BUA call owns.
pub fn calls(state: &State) -> Vec<CallJson> {
    let sip: Vec<CallView> = state
        .observed
        .b2bua()
        .map(|b| lock(b).calls_view())
        .unwrap_or_default();
    let flows = state.samples.latest();
    let mut media: HashMap<String, Vec<PartyQuality>> = {
        let h = lock(&state.ng.handler);
        h.sessions
            .list(usize::MAX)
            .into_iter()
            .map(|id| {
                let q = h.sessions.quality(&id, &flows.flows);
                let parties = q
                    .into_iter()
                    .map(|(tag, stats, r)| PartyQuality {
                        tag,
                        stats,
                        rtcp: r.some(),
                    })
                    .collect();
                (id, parties)
            })
            .collect()
    };
    let mut out: Vec<CallJson> = sip
        .into_iter()
        .map(|c| {
            let parties = media.remove(&c.call_id).unwrap_or_default();
            sip_call(c, &parties)
        })
        .collect();
    let mut ng: Vec<(String, Vec<PartyQuality>)> = media.into_iter().collect();
    ng.sort_by(|a, b| a.0.cmp(&b.0));
    out.extend(ng.into_iter().map(|(id, parties)| ng_call(id, parties)));
    out
}

fn sip_call(c: CallView, parties: &[PartyQuality]) -> CallJson {
    let leg = |l: LegView| {
        let party = parties
            .iter()
            .find(|p| l.remote_tag.as_deref() == Some(p.tag.as_str()));
        LegJson {
            leg: l.leg.to_string(),
            sip_call_id: Some(l.sip_call_id),
            peer: Some(l.peer),
            remote_uri: Some(l.remote_uri),
            tag: l.remote_tag,
            media: party.map(|p| p.stats),
            rtcp: party.and_then(|p| p.rtcp),
        }
    };
    CallJson {
        call_id: c.call_id,
        kind: "sip",
        state: c.state,
        from_number: Some(c.from_number),
        to_number: Some(c.to_number),
        start_ms: Some(c.start_ms),
        answer_ms: c.answer_ms,
        gateway: c.gateway,
        carrier: c.carrier,
        legs: c.legs.into_iter().map(leg).collect(),
    }
}

/// A media session without a B2BUA call: its parties are its legs, named
/// in order of appearance as in its CDR.
fn ng_call(call_id: String, parties: Vec<PartyQuality>) -> CallJson {
    let legs = parties
        .into_iter()
        .enumerate()
        .map(|(i, p)| LegJson {
            leg: crate::media::leg_name(i),
            sip_call_id: None,
            peer: None,
            remote_uri: None,
            tag: (!p.tag.is_empty()).then_some(p.tag),
            media: Some(p.stats),
            rtcp: p.rtcp,
        })
        .collect();
    CallJson {
        call_id,
        kind: "ng",
        state: "media",
        from_number: None,
        to_number: None,
        start_ms: None,
        answer_ms: None,
        gateway: None,
        carrier: None,
        legs,
    }
}
