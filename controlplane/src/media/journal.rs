//! The session manager's side of the call-state journal: the media
//! sessions that changed since the adapter last asked, as JSON, and how a
//! restarted manager takes them back (their relay ports held again, their
//! flows handed to the adapter to install). A session whose CDR is out (a
//! delayed delete) is not kept: after a restart it is simply gone.

use super::*;

impl Sessions {
    pub(super) fn touch(&mut self, call_id: &str) {
        if !self.touched.contains(call_id) {
            self.touched.insert(call_id.to_string());
        }
    }

    /// The journal entries since the last call: each touched session's
    /// state while it is live, `None` once a journaled one is over.
    pub fn take_journal(&mut self) -> Vec<(String, Option<serde_json::Value>)> {
        let mut out = Vec::new();
        for id in std::mem::take(&mut self.touched) {
            let live = self.calls.get(&id).filter(|c| !c.ended);
            match live.map(serde_json::to_value) {
                Some(Ok(v)) => {
                    self.journaled.insert(id.clone());
                    out.push((id, Some(v)));
                }
                Some(Err(e)) => {
                    tracing::error!(call_id = id, error = %e, "media session not journaled")
                }
                None if self.journaled.remove(&id) => out.push((id, None)),
                None => {}
            }
        }
        out
    }

    /// Takes back a session from the journal of a previous process: its
    /// ports are held again and its flows returned, for the data plane
    /// (where, with XDP or a data plane that kept running, they still are).
    pub fn restore(
        &mut self,
        call_id: &str,
        state: serde_json::Value,
    ) -> Result<Vec<Flow>, String> {
        let call: Call = serde_json::from_value(state).map_err(|e| {
            format!("media session {call_id}: not a session the journal wrote: {e}")
        })?;
        for p in &call.parts {
            let pool = self.pools.get_mut(p.iface).ok_or_else(|| {
                format!(
                    "media session {call_id}: interface {} is no longer configured",
                    p.iface
                )
            })?;
            for port in p.sides.iter().flat_map(|s| s.maps.iter().map(|m| m.port)) {
                if !pool.take(port) {
                    return Err(format!(
                        "media session {call_id}: relay port {port} is outside media.port_min/port_max or held twice"
                    ));
                }
            }
        }
        let flows = call.flows.values().cloned().collect();
        self.calls.insert(call_id.to_string(), call);
        self.journaled.insert(call_id.to_string());
        Ok(flows)
    }
}
