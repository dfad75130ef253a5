//! What the B2BUA shows an operator (the HTTP API and metrics): its calls
//! in progress with both legs, the registrations it holds and the
//! gateways least-cost routing knows with their health. Read-only
//! snapshots taken under the lock the SIP thread holds per message, so a
//! look costs one short wait, never a message's.

use super::*;
use crate::media::ms;
use serde::Serialize;

/// One leg of a call in progress.
#[derive(Debug, Clone, Serialize)]
pub struct LegView {
    /// "a" (the caller's) or "b" (the callee's).
    pub leg: &'static str,
    /// This leg's own Call-ID.
    pub sip_call_id: String,
    /// Where its requests go.
    pub peer: SocketAddr,
    /// The remote party's URI and tag (the tag also names the leg's
    /// participant in the media session).
    pub remote_uri: String,
    pub remote_tag: Option<String>,
}

/// A call the B2BUA is handling.
#[derive(Debug, Clone, Serialize)]
pub struct CallView {
    /// The call's id everywhere (the A-leg Call-ID; the media session's too).
    pub call_id: String,
    /// "calling" (the callee has not answered) or "answered".
    pub state: &'static str,
    pub from_number: String,
    pub to_number: String,
    /// Unix milliseconds.
    pub start_ms: i64,
    pub answer_ms: Option<i64>,
    pub gateway: Option<String>,
    pub carrier: Option<String>,
    pub legs: Vec<LegView>,
}

/// One live registration binding.
#[derive(Debug, Clone, Serialize)]
pub struct RegistrationView {
    pub user: String,
    pub contact: String,
    pub addr: SocketAddr,
    pub expires_in_secs: u64,
}

/// A gateway of the least-cost routing tables.
#[derive(Debug, Clone, Serialize)]
pub struct GatewayView {
    pub id: i64,
    pub carrier: Option<String>,
    pub addr: SocketAddr,
    pub priority: i64,
    /// From OPTIONS pings; None before the first answer or timeout.
    pub up: Option<bool>,
}

impl B2bua {
    /// Calls in progress, oldest first.
    pub fn calls_view(&self) -> Vec<CallView> {
        let mut calls: Vec<CallView> = self.calls.values().map(call_view).collect();
        calls.sort_by(|x, y| (x.start_ms, &x.call_id).cmp(&(y.start_ms, &y.call_id)));
        calls
    }

    /// Calls in progress.
    pub fn active_calls(&self) -> usize {
        self.calls.len()
    }

    /// Every live binding, by user.
    pub fn registrations_view(&self, now: Instant) -> Vec<RegistrationView> {
        self.registrar
            .all(now)
            .map(|(user, b)| RegistrationView {
                user: user.to_string(),
                contact: b.contact.clone(),
                addr: b.addr,
                expires_in_secs: b.expires.saturating_duration_since(now).as_secs(),
            })
            .collect()
    }

    /// Every gateway of the LCR tables, with its health.
    pub fn gateways_view(&self) -> Vec<GatewayView> {
        let mut out: Vec<GatewayView> = self
            .lcr
            .all_gateways()
            .map(|g| GatewayView {
                id: g.id,
                carrier: self.lcr.carrier_name(g.carrier).map(str::to_string),
                addr: g.addr,
                priority: g.priority,
                up: self.health.get(&g.id).copied(),
            })
            .collect();
        out.sort_by_key(|g| g.id);
        out
    }
}

fn call_view(c: &Call) -> CallView {
    let (b_call_id, b_uri, b_tag) = match &c.b.dialog {
        Some(d) => (
            d.id.call_id.clone(),
            d.remote_uri.clone(),
            d.id.remote_tag.clone(),
        ),
        None => (
            c.b_invite_req.call_id().unwrap_or_default().to_string(),
            c.facts.to_uri.clone().unwrap_or_default(),
            None,
        ),
    };
    CallView {
        call_id: c.facts.call_id.clone(),
        state: match c.phase {
            Phase::Calling => "calling",
            Phase::Answered => "answered",
        },
        from_number: c.facts.from_number.clone(),
        to_number: c.facts.to_number.clone(),
        start_ms: ms(c.facts.start),
        answer_ms: c.facts.answered.map(ms),
        gateway: c.facts.gateway.clone(),
        carrier: c.facts.carrier.clone(),
        legs: vec![
            LegView {
                leg: "a",
                sip_call_id: c.a.dialog.id.call_id.clone(),
                peer: c.a.addr,
                remote_uri: c.a.dialog.remote_uri.clone(),
                remote_tag: c.a.dialog.id.remote_tag.clone(),
            },
            LegView {
                leg: "b",
                sip_call_id: b_call_id,
                peer: c.b.addr,
                remote_uri: b_uri,
                remote_tag: b_tag,
            },
        ],
    }
}
