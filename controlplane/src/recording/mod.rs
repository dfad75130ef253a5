//! Call recordings on the control side: which calls are recorded, the
//! data-plane recording each one has, the legs it has seen, and closing
//! it into the archive's hand-off directory (see `tollgate_archive`).
//!
//! A [`Recording`] belongs to a call in the media session manager. While
//! it runs (not paused) every RTP flow of the call carries a `tap` stage
//! naming its data-plane recording, so flows installed again by a
//! re-offer keep recording into the same capture; pausing takes the taps
//! off and keeps the capture open, as rtpengine's `pause recording` keeps
//! its file. Closing asks the data plane what the capture holds and gives
//! a [`Closed`]: the `recording.json` to write and where the directory
//! goes, which an adapter carries out ([`publish`]).

pub mod config;
pub mod publish;

use config::RecordingConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::SystemTime;
use tollgate_archive::meta::{Codec, Kind, LegMeta, RecordingMeta};
use tollgate_dataplane::pipeline::StageSpec;
use tollgate_dataplane::recorder::RecordingReport;

/// One recording of one call, while it is open (journaled with its call,
/// so a restarted control plane goes on recording into the same capture).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Recording {
    pub id: String,
    /// The data plane's number for it (what `tap` stages name).
    pub number: u32,
    pub started: SystemTime,
    pub paused: bool,
    /// The org it belongs to (its route's), which names its objects and
    /// picks its retention.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Every leg the recording has had, by the relay address its packets
    /// arrive at (a re-offer that moves a party adds one).
    legs: BTreeMap<SocketAddr, Leg>,
}

/// What the signalling says about one leg.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leg {
    pub tag: String,
    pub label: String,
    /// Where its SDP says it is.
    pub remote: Option<SocketAddr>,
    pub codecs: Vec<Codec>,
}

/// A closed recording, to hand over.
#[derive(Debug, Clone, PartialEq)]
pub struct Closed {
    /// Where it was written, and where the archive takes it.
    pub open: PathBuf,
    pub ready: PathBuf,
    pub meta: RecordingMeta,
}

fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

impl Recording {
    pub fn new(id: String, number: u32, started: SystemTime) -> Recording {
        Recording {
            id,
            number,
            started,
            paused: false,
            org: None,
            legs: BTreeMap::new(),
        }
    }

    /// The stage a recorded RTP flow carries now: none while paused.
    pub fn tap(&self) -> Option<StageSpec> {
        (!self.paused).then_some(StageSpec::Tap {
            recording: self.number,
        })
    }

    /// The leg whose packets arrive at `local`, as the signalling now has it.
    pub fn note_leg(&mut self, local: SocketAddr, leg: Leg) {
        self.legs.insert(local, leg);
    }

    /// The description of the closed recording, from the legs seen and
    /// what the data plane's capture holds (`report`, None if the data
    /// plane could not say: the legs are then described without SSRCs).
    pub fn close(
        self,
        cfg: &RecordingConfig,
        call_id: &str,
        report: Option<&RecordingReport>,
        ended: SystemTime,
    ) -> Closed {
        let mut legs: Vec<LegMeta> = self
            .legs
            .into_iter()
            .map(|(local, leg)| {
                let seen = report.and_then(|r| r.legs.iter().find(|l| l.local == local));
                LegMeta {
                    tag: leg.tag,
                    label: leg.label,
                    local,
                    remote: seen.and_then(|s| s.source).or(leg.remote),
                    ssrcs: seen.map(|s| s.ssrcs.clone()).unwrap_or_default(),
                    codecs: leg.codecs,
                }
            })
            .collect();
        // The caller's legs first: the WAV's channels follow this order.
        legs.sort_by_key(|l| l.label != "caller");
        let captures = report.map(|r| r.captures.clone()).unwrap_or_default();
        Closed {
            open: cfg.open_dir(&self.id),
            ready: cfg.ready_dir(&self.id),
            meta: RecordingMeta {
                recording_id: self.id,
                call_id: call_id.to_string(),
                org: self.org,
                kind: Kind::Recording,
                started_at: rfc3339(self.started),
                ended_at: rfc3339(ended),
                legs,
                captures,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tollgate_dataplane::recorder::LegReport;

    #[test]
    fn a_closed_recording_describes_every_leg_with_what_the_capture_saw() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_764_619_200);
        let mut r = Recording::new("rec-1".into(), 4, t0);
        assert_eq!(r.tap(), Some(StageSpec::Tap { recording: 4 }));
        r.paused = true;
        assert_eq!(r.tap(), None);
        r.org = Some("acme".into());
        let pcmu = Codec {
            payload_type: 0,
            name: "PCMU".into(),
            clock_rate: 8000,
        };
        let caller = Leg {
            tag: "a1".into(),
            label: "caller".into(),
            remote: Some("192.0.2.1:4000".parse().unwrap()),
            codecs: vec![pcmu.clone()],
        };
        let a_local: SocketAddr = "10.0.0.1:30000".parse().unwrap();
        r.note_leg(a_local, caller);
        r.note_leg(
            "10.0.0.1:30002".parse().unwrap(),
            Leg {
                tag: "b1".into(),
                label: "callee".into(),
                remote: None,
                codecs: vec![pcmu],
            },
        );
        let report = RecordingReport {
            recording: 4,
            captures: vec!["rtp.pcap".into()],
            legs: vec![LegReport {
                local: a_local,
                packets: 3,
                bytes: 480,
                ssrcs: vec![7, 8],
                source: Some("198.51.100.1:4002".parse().unwrap()),
            }],
            ..RecordingReport::default()
        };
        let cfg = RecordingConfig {
            spool: "/s".into(),
            ..RecordingConfig::default()
        };
        let c = r.close(&cfg, "call@x", Some(&report), t0 + Duration::from_secs(61));
        assert_eq!(c.open, PathBuf::from("/s/open/rec-1"));
        assert_eq!(c.ready, PathBuf::from("/s/ready/rec-1"));
        let m = &c.meta;
        assert_eq!(m.started_at, "2025-12-01T20:00:00.000Z");
        assert_eq!(m.ended_at, "2025-12-01T20:01:01.000Z");
        assert_eq!(m.captures, ["rtp.pcap"]);
        assert_eq!(
            m.org.as_deref(),
            Some("acme"),
            "the org names objects and retention"
        );
        assert_eq!(m.legs.len(), 2);
        assert_eq!(m.legs[0].ssrcs, [7, 8]);
        assert_eq!(
            m.legs[0].remote,
            Some("198.51.100.1:4002".parse().unwrap()),
            "learnt beats SDP"
        );
        assert_eq!((m.legs[1].tag.as_str(), m.legs[1].ssrcs.len()), ("b1", 0));
    }
}
