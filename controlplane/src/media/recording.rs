//! Recording a call's media, on the session manager's side: NG's `record
//! call` flag and `start`/`stop`/`pause recording` (and the B2BUA's
//! dialplan `record`, which sets the flag), the legs a recording
//! describes, and closing it when the call ends. The recording itself,
//! its tap and its description are [`crate::recording`].

use super::options::Options;
use super::{cdr, encoding, sock, unknown_call, MediaPlane, NgError, Sessions};
use crate::recording::{config::RecordingConfig, Closed, Leg, Recording};
use crate::time::Now;
use tollgate_archive::meta::Codec;
use tollgate_sip::sdp::Media as SdpMedia;

/// The codecs of an SDP section: each format that names one.
pub(super) fn codecs(m: &SdpMedia) -> Vec<Codec> {
    m.formats()
        .iter()
        .filter_map(|pt| {
            let enc = encoding(m, pt)?;
            let mut parts = enc.split('/');
            let name = parts.next()?.to_string();
            Some(Codec {
                payload_type: pt.parse().ok()?,
                name,
                clock_rate: parts.next().and_then(|r| r.parse().ok()).unwrap_or(8000),
            })
        })
        .collect()
}

impl Sessions {
    /// Where recordings are written and handed over.
    pub fn with_recordings(mut self, cfg: RecordingConfig) -> Self {
        self.recording_cfg = cfg;
        self
    }

    /// `start recording`: records the call from now on, or resumes a
    /// paused recording (the same capture).
    pub fn start_recording(
        &mut self,
        now: Now,
        plane: &mut dyn MediaPlane,
        call_id: &str,
    ) -> Result<(), NgError> {
        self.open_recording(now, plane, call_id, None)?;
        self.sync_flows(plane, call_id)
    }

    /// `pause recording`: no packet is recorded until the next start, and
    /// the capture stays open.
    pub fn pause_recording(
        &mut self,
        plane: &mut dyn MediaPlane,
        call_id: &str,
    ) -> Result<(), NgError> {
        self.set_paused(call_id, true)?;
        self.sync_flows(plane, call_id)
    }

    /// Pauses or resumes the call's recording; whether it has one.
    fn set_paused(&mut self, call_id: &str, paused: bool) -> Result<bool, NgError> {
        self.touch(call_id);
        let call = self
            .calls
            .get_mut(call_id)
            .ok_or_else(|| unknown_call(call_id))?;
        Ok(call.recording.as_mut().map(|r| r.paused = paused).is_some())
    }

    /// `stop recording`: the recording is closed and handed over; a later
    /// start makes a new one.
    pub fn stop_recording(
        &mut self,
        now: Now,
        plane: &mut dyn MediaPlane,
        call_id: &str,
    ) -> Result<(), NgError> {
        if !self.calls.contains_key(call_id) {
            return Err(unknown_call(call_id));
        }
        self.finish_recording(now, plane, call_id, false);
        Ok(())
    }

    /// An offer's or answer's `record call`: on opens (or resumes) the
    /// recording (of `o.org`) before the flows are synced, off stops it.
    pub(super) fn record_flag(
        &mut self,
        now: Now,
        plane: &mut dyn MediaPlane,
        call_id: &str,
        o: &Options,
    ) -> Result<(), NgError> {
        match o.record_call {
            Some(true) => self.open_recording(now, plane, call_id, o.org.as_deref()),
            Some(false) => self.stop_recording(now, plane, call_id),
            None => Ok(()),
        }
    }

    fn open_recording(
        &mut self,
        now: Now,
        plane: &mut dyn MediaPlane,
        call_id: &str,
        org: Option<&str>,
    ) -> Result<(), NgError> {
        if self.set_paused(call_id, false)? {
            return Ok(());
        }
        self.recordings_made += 1;
        let id = format!("rec-{}-{}", cdr::ms(now.wall), self.recordings_made);
        let number = plane
            .open_recording(&self.recording_cfg.open_dir(&id))
            .map_err(|e| NgError(format!("cannot record call {call_id:?}: {e}")))?;
        tracing::info!(call_id, recording = %id, "recording started");
        self.touch(call_id);
        if let Some(call) = self.calls.get_mut(call_id) {
            let mut r = Recording::new(id, number, now.wall);
            r.org = org.map(str::to_string);
            call.recording = Some(r);
        }
        Ok(())
    }

    /// Closes the call's recording, if it has one: its taps come off first
    /// (unless its flows are gone already), so the capture is whole.
    pub(super) fn finish_recording(
        &mut self,
        now: Now,
        plane: &mut dyn MediaPlane,
        call_id: &str,
        flows_gone: bool,
    ) {
        let Some(r) = self.calls.get_mut(call_id).and_then(|c| c.recording.take()) else {
            return;
        };
        self.touch(call_id);
        let url = self
            .recording_cfg
            .url(r.org.as_deref(), call_id, &r.id, r.started);
        if let Some(c) = self.calls.get_mut(call_id) {
            // A call recorded twice (stop, then start) points at its first.
            c.recording_url.get_or_insert(url);
        }
        if !flows_gone {
            if let Err(e) = self.sync_flows(plane, call_id) {
                tracing::warn!(call_id, error = %e.0, "taking the recording's taps off");
            }
        }
        let report = plane
            .close_recording(r.number)
            .map_err(|e| tracing::error!(call_id, recording = %r.id, error = %e, "closing the recording"))
            .ok();
        tracing::info!(call_id, recording = %r.id, packets = report.as_ref().map(|r| r.packets), "recording stopped");
        self.closed
            .push(r.close(&self.recording_cfg, call_id, report.as_ref(), now.wall));
    }

    /// A call that never was (a refused first offer): its recording is
    /// closed in the data plane, its directory removed, nothing handed over.
    pub(super) fn discard_recording(&mut self, plane: &mut dyn MediaPlane, call_id: &str) {
        self.touch(call_id);
        if let Some(r) = self.calls.get_mut(call_id).and_then(|c| c.recording.take()) {
            let dir = self.recording_cfg.open_dir(&r.id);
            if let Err(e) = plane.discard_recording(r.number, &dir) {
                tracing::warn!(call_id, recording = %r.id, error = %e, "discarding the recording of a refused offer");
            }
        }
    }

    /// Notes, in the call's running recording, every leg as the signalling
    /// has it now: the relay address each participant's media arrives at,
    /// with its tag, label and codecs.
    pub(super) fn note_recorded_legs(&mut self, call_id: &str) {
        let Sessions { cfg, calls, .. } = self;
        let Some(call) = calls.get_mut(call_id) else {
            return;
        };
        let Some(rec) = call.recording.as_mut() else {
            return;
        };
        for (i, p) in call.parts.iter().enumerate().filter(|(_, p)| !p.gone) {
            let label = p
                .label
                .clone()
                .unwrap_or_else(|| if i == 0 { "caller" } else { "callee" }.to_string());
            let address = cfg.interfaces[p.iface].address;
            for s in p.sides.iter().filter(|s| s.port != 0 && !s.disabled) {
                let leg = Leg {
                    tag: p.tag.clone(),
                    label: label.clone(),
                    remote: s.rtp.filter(|a| !a.ip().is_unspecified()),
                    codecs: s.codecs.clone(),
                };
                rec.note_leg(sock(address, s.port), leg);
            }
        }
    }

    /// The open recording of a call (its number and directory), for the
    /// data plane to keep once the call is restored from the journal.
    pub fn recording_of(&self, call_id: &str) -> Option<(u32, std::path::PathBuf)> {
        let r = self.calls.get(call_id)?.recording.as_ref()?;
        Some((r.number, self.recording_cfg.open_dir(&r.id)))
    }

    /// Recordings closed since the last call, for an adapter to hand over
    /// ([`crate::recording::publish::publish`]).
    pub fn take_recordings(&mut self) -> Vec<Closed> {
        std::mem::take(&mut self.closed)
    }
}
