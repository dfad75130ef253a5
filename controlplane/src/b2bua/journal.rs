//! The B2BUA's side of the call-state journal: what of an answered call
//! must outlive the process ([`CallSnapshot`]), which calls changed since
//! the adapter last asked ([`B2bua::take_journal`]), and how a restarted
//! B2BUA takes its calls back ([`B2bua::restore`]).
//!
//! Only answered calls are journaled: they are what a carrier must keep
//! (a BYE or re-INVITE after a restart must find its dialog). A call still
//! ringing when the process dies is gone with its transactions; its caller
//! sees the INVITE fail. Transactions in flight are not kept: their peers
//! retransmit, and the restored dialogs answer what arrives anew.
//!
//! A snapshot is taken after every input that touched the call, so the
//! dialogs' CSeq numbers in the journal are those last used; a restored
//! dialog's local CSeq is still moved on by [`CSEQ_MARGIN`], so a request
//! sent in the instant between an input and its journal write is never
//! numbered twice.

use super::*;
use serde::{Deserialize, Serialize};
use std::time::SystemTime;

/// How far a restored dialog's local CSeq moves on (RFC 3261 §12.2.1.1
/// asks only that it grows).
pub const CSEQ_MARGIN: u32 = 100;

/// An answered call as the journal keeps it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CallSnapshot {
    pub call_id: String,
    facts: CallFacts,
    a: Dialog,
    a_addr: SocketAddr,
    b: Dialog,
    b_addr: SocketAddr,
    a_invite: Key,
    b_invite: ClientKey,
    /// Our INVITE to B, as sent: B's dialog is keyed by its Call-ID and
    /// our From tag, and B's CDR leg names come from it.
    b_invite_req: String,
    /// The negotiated session interval and when it runs out (wall clock).
    session_interval_secs: Option<u64>,
    session_deadline: Option<SystemTime>,
    media: bool,
}

impl B2bua {
    /// Marks a call as changed by the input being handled.
    pub(super) fn touch(&mut self, call_id: &str) {
        if !self.touched.contains(call_id) {
            self.touched.insert(call_id.to_string());
        }
    }

    /// The journal entries since the last call: each touched call's
    /// snapshot while it is answered, `None` once a journaled call is gone.
    pub fn take_journal(&mut self, now: Now) -> Vec<(String, Option<CallSnapshot>)> {
        let mut out = Vec::new();
        for id in std::mem::take(&mut self.touched) {
            match self.snapshot(now, &id) {
                Some(s) => {
                    self.journaled.insert(id.clone());
                    out.push((id, Some(s)));
                }
                None if self.journaled.remove(&id) => out.push((id, None)),
                None => {}
            }
        }
        out
    }

    fn snapshot(&self, now: Now, call_id: &str) -> Option<CallSnapshot> {
        let c = self
            .calls
            .get(call_id)
            .filter(|c| c.phase == Phase::Answered)?;
        let b = c.b.dialog.clone()?;
        let deadline = c
            .session_deadline
            .map(|t| now.wall + t.saturating_duration_since(now.mono));
        Some(CallSnapshot {
            call_id: call_id.to_string(),
            facts: c.facts.clone(),
            a: c.a.dialog.clone(),
            a_addr: c.a.addr,
            b,
            b_addr: c.b.addr,
            a_invite: c.a_invite.clone(),
            b_invite: c.b_invite.clone(),
            b_invite_req: c.b_invite_req.to_string(),
            session_interval_secs: c.session_interval.map(|d| d.as_secs()),
            session_deadline: deadline,
            media: c.media,
        })
    }

    /// Takes back an answered call from the journal of a previous process.
    /// Its media session is restored by the session manager; here come
    /// its dialogs, its session timer and the media check.
    pub fn restore(&mut self, now: Now, s: CallSnapshot, media: &Media) -> Result<(), String> {
        let b_invite_req = Message::parse(s.b_invite_req.as_bytes())
            .map_err(|e| format!("call {}: the journaled INVITE to B: {e}", s.call_id))?;
        let (mut a, mut b) = (s.a, s.b);
        for d in [&mut a, &mut b] {
            d.local_seq = Some(d.local_seq.unwrap_or(0).saturating_add(CSEQ_MARGIN));
        }
        let interval = s.session_interval_secs.map(Duration::from_secs);
        let call = Call {
            facts: s.facts,
            a: Leg {
                dialog: a,
                addr: s.a_addr,
            },
            b: Leg {
                dialog: Some(b),
                addr: s.b_addr,
            },
            phase: Phase::Answered,
            a_invite: s.a_invite,
            server_invites: Vec::new(),
            b_invite: s.b_invite,
            b_invite_req,
            b_ack: None,
            ring_deadline: None,
            session_interval: interval,
            session_deadline: None,
            candidates: VecDeque::new(),
            b_provisional: true,
            relayed_invite: None,
            media: s.media,
        };
        let call_id = s.call_id;
        for (dialog, side) in call.dialog_keys().into_iter().zip([Side::A, Side::B]) {
            self.dialogs.insert(dialog, (call_id.clone(), side));
        }
        self.calls.insert(call_id.clone(), call);
        self.journaled.insert(call_id.clone());
        if let (Some(_), Some(at)) = (interval, s.session_deadline) {
            let left = at.duration_since(now.wall).unwrap_or_default();
            let t = now.mono + left;
            let c = call_mut(&mut self.calls, &call_id);
            c.session_deadline = Some(t);
            self.due.push(Reverse((t, Due::Session(call_id.clone()))));
        }
        self.arm_media_check(now, media);
        Ok(())
    }
}
