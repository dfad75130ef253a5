//! An in-memory data plane, for driving the cores without a real one: it
//! keeps the flows put, logs every put and removal in order, hands out
//! the stage events a test pushed, and reports for each installed flow
//! the counters a test set (by default none, and not idle: media flowing). The tests of the B2BUA, the session manager
//! and the NG handler use it as their fake data plane; clones share state,
//! so a test keeps one while a core owns another. It counts exchanges (one
//! per trait call, as the real link makes one round trip per call), so a
//! test can see what an operation costs.

use super::{Applied, FlowStat, MediaPlane};
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tollgate_dataplane::flow::Flow;
use tollgate_dataplane::pipeline::{Event, EventKind};
use tollgate_dataplane::recorder::RecordingReport;

/// One change the data plane was asked for and made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlowChange {
    Put(Flow),
    Removed(SocketAddr),
}

#[derive(Debug, Default)]
struct State {
    flows: BTreeMap<SocketAddr, Flow>,
    log: Vec<FlowChange>,
    stats: HashMap<SocketAddr, FlowStat>,
    exchanges: u64,
    /// Recordings opened and not closed, by number: their directories.
    recordings: BTreeMap<u32, PathBuf>,
    last_recording: u32,
    /// Stage events a test made, until taken.
    events: Vec<Event>,
}

#[derive(Debug, Clone, Default)]
pub struct MemoryPlane(Arc<Mutex<State>>);

impl MemoryPlane {
    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.0)
    }

    /// The installed flows, by local address.
    pub fn flows(&self) -> BTreeMap<SocketAddr, Flow> {
        self.state().flows.clone()
    }

    pub fn flow(&self, local: SocketAddr) -> Option<Flow> {
        self.state().flows.get(&local).cloned()
    }

    /// The changes made since the last call, oldest first.
    pub fn take_log(&self) -> Vec<FlowChange> {
        std::mem::take(&mut self.state().log)
    }

    /// Exchanges with this data plane so far.
    pub fn exchanges(&self) -> u64 {
        self.state().exchanges
    }

    /// The flow at `local`'s stages report `kind` (a digit, a prompt's end).
    pub fn push_event(&self, local: SocketAddr, kind: EventKind) {
        let e = Event {
            local,
            at_ns: 0,
            kind,
        };
        self.state().events.push(e);
    }

    /// What the flow at `local` reports from now on.
    pub fn set_stat(&self, local: SocketAddr, stat: FlowStat) {
        self.state().stats.insert(local, stat);
    }

    /// The open recordings' directories, by number.
    pub fn recordings(&self) -> BTreeMap<u32, PathBuf> {
        self.state().recordings.clone()
    }

    /// Every installed flow reports `idle_ms` since its last packet.
    pub fn set_idle(&self, idle_ms: u64) {
        let mut s = self.state();
        let locals: Vec<SocketAddr> = s.flows.keys().copied().collect();
        for l in locals {
            s.stats.entry(l).or_default().idle_ms = idle_ms;
        }
    }
}

impl MediaPlane for MemoryPlane {
    /// Refuses a flow the real data plane would (`Flow::validate`); a
    /// removal answers the flow's counters, as the real one's final report.
    fn apply(&mut self, puts: &[Flow], removes: &[SocketAddr]) -> Applied {
        let mut s = self.state();
        s.exchanges += 1;
        let mut applied = Applied::default();
        for f in puts {
            let r = f.validate().map_err(|e| e.to_string());
            if r.is_ok() {
                s.flows.insert(f.local, f.clone());
                s.log.push(FlowChange::Put(f.clone()));
            }
            applied.puts.push(r);
        }
        for l in removes {
            let stat = s.flows.remove(l).map(|_| s.stat(l));
            if stat.is_some() {
                s.log.push(FlowChange::Removed(*l));
            }
            applied.removed.push(Ok(stat));
        }
        applied
    }

    fn events(&mut self) -> Result<Vec<Event>, String> {
        let mut s = self.state();
        s.exchanges += 1;
        Ok(std::mem::take(&mut s.events))
    }

    fn stats(&mut self) -> Result<HashMap<SocketAddr, FlowStat>, String> {
        let locals: Vec<SocketAddr> = self.state().flows.keys().copied().collect();
        self.flow_stats(&locals)
    }

    fn flow_stats(
        &mut self,
        locals: &[SocketAddr],
    ) -> Result<HashMap<SocketAddr, FlowStat>, String> {
        let mut s = self.state();
        s.exchanges += 1;
        Ok(locals
            .iter()
            .filter(|l| s.flows.contains_key(l))
            .map(|l| (*l, s.stat(l)))
            .collect())
    }

    fn open_recording(&mut self, dir: &Path) -> Result<u32, String> {
        let mut s = self.state();
        s.exchanges += 1;
        s.last_recording += 1;
        let n = s.last_recording;
        s.recordings.insert(n, dir.to_path_buf());
        Ok(n)
    }

    /// Answers an empty capture.
    fn close_recording(&mut self, recording: u32) -> Result<RecordingReport, String> {
        let mut s = self.state();
        s.exchanges += 1;
        let dir = s
            .recordings
            .remove(&recording)
            .ok_or_else(|| format!("no recording {recording} is open"))?;
        Ok(RecordingReport {
            recording,
            dir,
            captures: vec!["rtp.pcap".into()],
            ..RecordingReport::default()
        })
    }

    fn keep_recording(&mut self, recording: u32, dir: &Path) -> Result<(), String> {
        let mut s = self.state();
        s.exchanges += 1;
        s.last_recording = s.last_recording.max(recording);
        s.recordings.insert(recording, dir.to_path_buf());
        Ok(())
    }

    /// Forgets the recording, as the real link removes its directory.
    fn discard_recording(&mut self, recording: u32, dir: &Path) -> Result<(), String> {
        let mut s = self.state();
        s.exchanges += 1;
        match s.recordings.remove(&recording) {
            Some(d) if d == dir => Ok(()),
            other => Err(format!("recording {recording} in {dir:?} was {other:?}")),
        }
    }
}

impl State {
    fn stat(&self, local: &SocketAddr) -> FlowStat {
        self.stats.get(local).copied().unwrap_or_default()
    }
}
