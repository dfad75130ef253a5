//! How the relay ends calls itself: session timers (RFC 4028), the media
//! timeout, and a caller that never ACKs our 2xx; BYEs on both legs.

use super::*;

impl B2bua {
    /// (Re)starts the call's session timer (RFC 4028) when a session
    /// interval was negotiated: unless refreshed, the call ends with it.
    pub(super) fn arm_session(&mut self, now: Now, call_id: &str, interval: Option<Duration>) {
        let Some(call) = self.calls.get_mut(call_id) else {
            return;
        };
        if interval.is_some() {
            call.session_interval = interval;
        }
        if let Some(i) = call.session_interval {
            let t = now.mono + i;
            call.session_deadline = Some(t);
            self.due
                .push(Reverse((t, Due::Session(call_id.to_string()))));
        }
    }

    /// Schedules the next media-timeout look, if there is a media timeout
    /// and an answered call, and none is scheduled.
    pub(super) fn arm_media_check(&mut self, now: Now, media: &Media) {
        let answered = self.calls.values().any(|c| c.phase == Phase::Answered);
        if self.media_check.is_some() || !answered || media.sessions.media_timeout().is_none() {
            return;
        }
        let t = now.mono + media.sessions.stats_every();
        self.media_check = Some(t);
        self.due.push(Reverse((t, Due::Media)));
    }

    /// Answered calls whose media has been silent for the media timeout
    /// are ended with BYEs on both legs (the counters of those calls'
    /// flows only, in one pipelined exchange with the data plane).
    pub(super) fn end_silent_calls(&mut self, now: Now, media: &mut Media) {
        let Some(limit) = media.sessions.media_timeout() else {
            return;
        };
        let old_enough = |c: &Call| {
            c.phase == Phase::Answered
                && c.facts
                    .answered
                    .and_then(|t| now.wall.duration_since(t).ok())
                    .is_some_and(|age| age >= limit)
        };
        let candidates: Vec<String> = self
            .calls
            .iter()
            .filter(|(_, c)| old_enough(c))
            .map(|(id, _)| id.clone())
            .collect();
        if candidates.is_empty() {
            return;
        }
        let flows: Vec<(String, Vec<SocketAddr>)> = candidates
            .into_iter()
            .map(|id| {
                let locals = media.sessions.call_flows(&id);
                (id, locals)
            })
            .collect();
        let all: Vec<SocketAddr> = flows.iter().flat_map(|(_, l)| l.iter().copied()).collect();
        let stats = match media.plane.flow_stats(&all) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "data plane counters unavailable");
                return;
            }
        };
        let limit_ms = limit.as_millis() as u64;
        for (call_id, locals) in flows {
            let silent = !locals.is_empty()
                && locals
                    .iter()
                    .all(|l| stats.get(l).is_none_or(|s| s.idle_ms >= limit_ms));
            if !silent {
                continue;
            }
            tracing::info!(call_id, "media timeout; ending the call");
            let ended = (Disposition::Answered, HangupBy::Relay);
            self.hang_up(now, &call_id, ended, "Media timeout", media);
        }
    }

    /// The relay ends a call itself (408 in the CDR): BYEs on both legs if
    /// it was answered, then its CDR with `status`, `by` and `reason`.
    pub(super) fn hang_up(
        &mut self,
        now: Now,
        call_id: &str,
        (status, by): (Disposition, HangupBy),
        reason: &str,
        media: &mut Media,
    ) {
        if self
            .calls
            .get(call_id)
            .is_some_and(|c| c.phase == Phase::Answered)
        {
            self.bye(now, call_id, Side::A);
            self.bye(now, call_id, Side::B);
        }
        let code = 408;
        let reason = reason.to_string();
        self.end_call(
            now,
            call_id,
            Outcome {
                status,
                code,
                reason,
                by,
            },
            media,
        );
    }

    /// Calls whose caller never ACKed our 2xx: BYE both legs, CDR.
    pub(super) fn finish_pending(&mut self, now: Now, media: &mut Media) {
        for (call_id, by, reason) in std::mem::take(&mut self.pending_end) {
            self.hang_up(now, &call_id, (Disposition::Failed, by), reason, media);
        }
    }

    /// The session timer (`t`) of a call nobody refreshed: BYEs both ways.
    pub(super) fn session_timer(&mut self, now: Now, t: Instant, call_id: &str, media: &mut Media) {
        self.touch(call_id);
        if self
            .calls
            .get(call_id)
            .is_some_and(|c| c.session_deadline == Some(t))
        {
            tracing::info!(call_id, "session timer expired without a refresh");
            let ended = (Disposition::Answered, HangupBy::Relay);
            self.hang_up(now, call_id, ended, "Session timer expired", media);
        }
    }

    /// The media-timeout look: silent calls end, the next look is armed.
    pub(super) fn media_timer(&mut self, now: Now, media: &mut Media) {
        self.media_check = None;
        self.end_silent_calls(now, media);
        self.arm_media_check(now, media);
    }
}
