//! A closed recording's description, `recording.json` beside its captures:
//! which call, which legs, which streams, when, and which files hold them.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::Path;

/// The file name of a recording's description inside its directory.
pub const META_FILE: &str = "recording.json";

/// What kind of media a recording is (retention is set per kind).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Recording,
    Voicemail,
}

/// One closed recording: a call's legs and the captures of their packets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordingMeta {
    /// Unique per recording (a call may be recorded more than once).
    pub recording_id: String,
    /// The call's id as CDRs and NG know it (the A-leg Call-ID).
    pub call_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    pub kind: Kind,
    /// Start and end, wall clock, RFC 3339.
    pub started_at: String,
    pub ended_at: String,
    pub legs: Vec<LegMeta>,
    /// Capture files in this directory (pcap, LINKTYPE_RAW: IP + UDP + RTP as
    /// received, one capture may hold several legs), names relative to it.
    pub captures: Vec<String>,
}

/// One leg of a recorded call: where its media was received, and what.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LegMeta {
    /// The leg's tag (SIP From/To tag, or NG from-tag/to-tag).
    pub tag: String,
    /// "caller" or "callee", or a name the recorder chose.
    pub label: String,
    /// The relay address the leg's packets arrived at (their UDP destination
    /// in the capture): how a reader tells the legs apart.
    pub local: SocketAddr,
    /// Where the leg's packets came from, as last learnt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<SocketAddr>,
    /// Every SSRC seen on the leg, in order of first appearance.
    #[serde(default)]
    pub ssrcs: Vec<u32>,
    /// Payload types negotiated for the leg, with their encoding names
    /// ("PCMU", "PCMA", "telephone-event", ...).
    #[serde(default)]
    pub codecs: Vec<Codec>,
}

/// One negotiated payload type.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Codec {
    pub payload_type: u8,
    pub name: String,
    pub clock_rate: u32,
}

/// Why a recording's description could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a recording description: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
}

impl RecordingMeta {
    /// Reads `recording.json` from a recording's directory.
    pub fn read(dir: &Path) -> Result<RecordingMeta, MetaError> {
        let path = dir.join(META_FILE);
        let name = path.display().to_string();
        let bytes = std::fs::read(&path).map_err(|source| MetaError::Io {
            path: name.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| MetaError::Json { path: name, source })
    }

    /// Writes `recording.json` into a recording's directory (synced, so the
    /// rename into `ready/` that follows never publishes a torn file).
    pub fn write(&self, dir: &Path) -> Result<(), MetaError> {
        use std::io::Write;
        let path = dir.join(META_FILE);
        let io = |source| MetaError::Io {
            path: path.display().to_string(),
            source,
        };
        let json = serde_json::to_vec_pretty(self).expect("a RecordingMeta always serialises");
        let mut f = std::fs::File::create(&path).map_err(io)?;
        f.write_all(&json).map_err(io)?;
        f.sync_all().map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_its_file() {
        let dir = std::env::temp_dir().join(format!("tg-meta-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let meta = RecordingMeta {
            recording_id: "r1".into(),
            call_id: "abc@host".into(),
            org: Some("acme".into()),
            kind: Kind::Recording,
            started_at: "2026-12-01T20:00:00Z".into(),
            ended_at: "2026-12-01T20:01:00Z".into(),
            legs: vec![LegMeta {
                tag: "t1".into(),
                label: "caller".into(),
                local: "127.0.0.1:30000".parse().unwrap(),
                remote: Some("127.0.0.1:40000".parse().unwrap()),
                ssrcs: vec![7, 9],
                codecs: vec![Codec {
                    payload_type: 0,
                    name: "PCMU".into(),
                    clock_rate: 8000,
                }],
            }],
            captures: vec!["rtp.pcap".into()],
        };
        meta.write(&dir).unwrap();
        assert_eq!(RecordingMeta::read(&dir).unwrap(), meta);
        std::fs::write(dir.join(META_FILE), b"{").unwrap();
        let err = RecordingMeta::read(&dir).unwrap_err().to_string();
        assert!(
            err.contains("recording.json") && err.contains("not a recording"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
