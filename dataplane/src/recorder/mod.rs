//! The recorder: where the packets of recorded flows become capture files.
//!
//! A flow is recorded by a `tap` stage naming a recording the control plane
//! opened (`recording_open`, with the directory to write in). The stage
//! copies each packet as received into its worker's [`ring`] (no
//! allocation, lock or syscall on the worker; a full ring is a counted
//! drop). One recorder thread per data-plane process drains every ring a
//! few times a second into the recordings' [`capture`] files, off the
//! packet path; `recording_close` drains what is left, syncs the file and
//! reports what it holds (per leg: packets, SSRCs seen, the last source),
//! from which the control plane writes the recording's description.
//!
//! Rings are made with their pipelines ([`Recorder::attach`]) and belong to
//! the process-wide [`global`] recorder, as the backends that make
//! pipelines know nothing of recordings.

pub mod capture;
pub mod ring;

use capture::Capture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

pub use ring::{RingReader, TapRing};

/// How often the recorder thread drains the rings.
const DRAIN_EVERY: Duration = Duration::from_millis(5);

/// What one recording holds, as `recording_open`, `recording_close` and
/// `recordings` report it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordingReport {
    /// The number `tap` stages name.
    pub recording: u32,
    pub dir: PathBuf,
    /// Capture files in `dir`.
    pub captures: Vec<String>,
    /// Packets written, and their payload bytes.
    pub packets: u64,
    pub bytes: u64,
    /// Packets tapped but not written (a write failed).
    pub lost: u64,
    /// The write failure, if one happened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub legs: Vec<LegReport>,
}

/// Packets of one leg (those sent to one local address) in a recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LegReport {
    pub local: SocketAddr,
    pub packets: u64,
    pub bytes: u64,
    /// RTP SSRCs, in order of first appearance.
    pub ssrcs: Vec<u32>,
    /// The last sender seen (unknown on AF_XDP, whose frames arrive rewritten).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SocketAddr>,
}

/// Why a recording could not be opened or closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecorderError {
    #[error("recording directory {0}")]
    Open(String),
    #[error("no recording {0} is open")]
    NoSuchRecording(u32),
    #[error("recording {0} is open already, in another directory")]
    AlreadyOpen(u32),
}

#[derive(Default)]
struct State {
    readers: Vec<RingReader>,
    captures: BTreeMap<u32, Capture>,
    last_id: u32,
    /// Packets tapped for a recording that is not open.
    unknown: u64,
    write_errors: u64,
}

/// The process's recordings and the rings that feed them.
#[derive(Default)]
pub struct Recorder {
    state: Mutex<State>,
    thread: OnceLock<()>,
}

/// The data-plane process's recorder.
pub fn global() -> &'static Recorder {
    static RECORDER: OnceLock<Recorder> = OnceLock::new();
    RECORDER.get_or_init(Recorder::default)
}

/// CLOCK_REALTIME minus CLOCK_MONOTONIC, to date tapped packets.
fn wall_offset_ns() -> u64 {
    use crate::backend::clock_ns;
    clock_ns(libc::CLOCK_REALTIME).saturating_sub(clock_ns(libc::CLOCK_MONOTONIC))
}

impl State {
    /// Moves every whole record out of the rings into its capture, then
    /// writes the captures.
    fn drain(&mut self, scratch: &mut [u8]) {
        let offset = wall_offset_ns();
        let (payload, datagram) = scratch.split_at_mut(scratch.len() / 2);
        for reader in &mut self.readers {
            while let Some(r) = reader.pop(payload) {
                let Some(c) = self.captures.get_mut(&r.recording) else {
                    self.unknown += 1;
                    continue;
                };
                let wall = Duration::from_nanos(r.at_ns.saturating_add(offset));
                c.add(&r, &payload[..r.len], wall, datagram);
            }
        }
        self.readers.retain(|r| !r.finished());
        for (id, c) in &mut self.captures {
            if let Some(e) = c.flush() {
                self.write_errors += 1;
                tracing::error!(recording = id, error = %e,
                    "recording capture: write failed; the capture keeps what was written, \
                     records nothing more, and calls go on");
            }
        }
    }
}

/// Room for one payload and the datagram rebuilt around it.
const SCRATCH: usize = 2 * (64 << 10) + 128;

impl Recorder {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A ring for a new pipeline; its records reach the recordings from now on.
    pub fn attach(&self) -> TapRing {
        let (tx, rx) = ring::ring(ring::RING_BYTES);
        self.state().readers.push(rx);
        tx
    }

    /// Opens a recording writing into `dir` (created if need be), as
    /// number `reopen` when given (appending to the capture there; a no-op
    /// when that recording is open in `dir` already), and starts the
    /// recorder thread if this is the first.
    pub fn open(
        &'static self,
        dir: &Path,
        reopen: Option<u32>,
    ) -> Result<RecordingReport, RecorderError> {
        let report = {
            let mut s = self.state();
            let id = match reopen.map(|id| (id, s.captures.get(&id).map(Capture::report))) {
                Some((_, Some(open))) if open.dir == dir => return Ok(open),
                Some((id, Some(_))) => return Err(RecorderError::AlreadyOpen(id)),
                Some((id, None)) => id,
                None => s.last_id.wrapping_add(1).max(1),
            };
            let c = Capture::open(id, dir).map_err(RecorderError::Open)?;
            s.last_id = s.last_id.max(id);
            let report = c.report();
            s.captures.insert(id, c);
            report
        };
        self.thread.get_or_init(|| {
            std::thread::Builder::new()
                .name("tg-recorder".into())
                .spawn(move || {
                    let mut scratch = vec![0u8; SCRATCH];
                    loop {
                        std::thread::sleep(DRAIN_EVERY);
                        self.state().drain(&mut scratch);
                    }
                })
                .expect("spawn the recorder thread");
        });
        Ok(report)
    }

    /// Writes out everything tapped so far for `recording`, closes it and
    /// says what it holds.
    pub fn close(&self, recording: u32) -> Result<RecordingReport, RecorderError> {
        let mut s = self.state();
        s.drain(&mut vec![0u8; SCRATCH]);
        let c = s
            .captures
            .remove(&recording)
            .ok_or(RecorderError::NoSuchRecording(recording))?;
        Ok(c.close())
    }

    /// The open recordings.
    pub fn list(&self) -> Vec<RecordingReport> {
        self.state()
            .captures
            .values()
            .map(Capture::report)
            .collect()
    }

    /// The recorder's counters, for the control socket's `counters`.
    pub fn counters(&self) -> Vec<(String, u64)> {
        let s = self.state();
        vec![
            ("recordings_open".into(), s.captures.len() as u64),
            ("recorder_unknown_recording".into(), s.unknown),
            ("recorder_write_errors".into(), s.write_errors),
        ]
    }
}

#[cfg(test)]
mod tests;
