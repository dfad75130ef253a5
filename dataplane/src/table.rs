//! The flow table: the set of installed flows, keyed by their local address,
//! kept in step with the running backend, plus idle-flow detection.
//!
//! This is the control path (the control socket's requests and a once-a-
//! second sweep); the packet path never touches it. Backends keep their own
//! per-core copies and counters.

use crate::backend::{monotonic_ns, Backend, BackendError, FlowCounters};
use crate::flow::Flow;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;

/// A flow with its counters and idle state, as reported to clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowReport {
    pub flow: Flow,
    pub counters: FlowCounters,
    /// Milliseconds since the last packet; absent before the first.
    pub last_packet_ms_ago: Option<u64>,
    /// Milliseconds since the last packet (or since installation if none).
    pub idle_ms: u64,
    pub idle: bool,
}

pub struct FlowTable {
    /// Identifies this data-plane process, so a client can tell a restart
    /// (and re-install its flows) from a mere reconnect.
    pub instance: u64,
    backend: Box<dyn Backend>,
    flows: BTreeMap<SocketAddr, (Flow, u64)>,
    idle_timeout_ns: u64,
    idle_reported: HashSet<SocketAddr>,
}

#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("no flow matches local address {0}")]
    NoSuchFlow(SocketAddr),
    #[error(transparent)]
    Backend(#[from] BackendError),
}

impl FlowTable {
    /// Wraps a started backend, taking over the flows it adopted.
    pub fn new(backend: Box<dyn Backend>, idle_timeout_secs: u64) -> Self {
        let now = monotonic_ns();
        let flows = backend
            .adopted()
            .into_iter()
            .map(|f| (f.local, (f, now)))
            .collect();
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        FlowTable {
            instance: wall.as_nanos() as u64 ^ ((std::process::id() as u64) << 32),
            backend,
            flows,
            idle_timeout_ns: idle_timeout_secs.saturating_mul(1_000_000_000),
            idle_reported: HashSet::new(),
        }
    }

    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    pub fn workers(&self) -> Vec<crate::backend::WorkerReport> {
        self.backend.workers()
    }

    pub fn take_events(&mut self) -> Vec<crate::pipeline::Event> {
        self.backend.take_events()
    }

    /// Installs or updates a flow.
    pub fn put(&mut self, flow: Flow) -> Result<(), TableError> {
        flow.validate().map_err(BackendError::from)?;
        let previous = self.flows.get(&flow.local).map(|(f, _)| f);
        if previous == Some(&flow) {
            return Ok(());
        }
        self.backend.put(&flow, previous)?;
        self.idle_reported.remove(&flow.local);
        self.flows.insert(flow.local, (flow, monotonic_ns()));
        Ok(())
    }

    /// Removes a flow; its counters are returned as they were at removal.
    pub fn remove(&mut self, local: SocketAddr) -> Result<FlowReport, TableError> {
        let report = self.report(local)?;
        self.backend.remove(&report.flow)?;
        self.flows.remove(&local);
        self.idle_reported.remove(&local);
        Ok(report)
    }

    pub fn report(&self, local: SocketAddr) -> Result<FlowReport, TableError> {
        let (flow, installed) = self
            .flows
            .get(&local)
            .ok_or(TableError::NoSuchFlow(local))?;
        Ok(self.make_report(flow, *installed, monotonic_ns()))
    }

    pub fn list(&self) -> Vec<FlowReport> {
        let now = monotonic_ns();
        self.flows
            .values()
            .map(|(f, at)| self.make_report(f, *at, now))
            .collect()
    }

    pub fn counters(&self) -> Vec<(String, u64)> {
        let mut c = self.backend.counters();
        c.push(("flows".into(), self.flows.len() as u64));
        c
    }

    /// Flows idle for at least the timeout.
    pub fn idle(&self) -> Vec<FlowReport> {
        self.list().into_iter().filter(|r| r.idle).collect()
    }

    /// Backend housekeeping, then flows that became idle since the last sweep (each reported once until
    /// it sees traffic again or is changed).
    pub fn sweep(&mut self) -> Vec<FlowReport> {
        self.backend.maintain();
        let mut newly = Vec::new();
        for r in self.list() {
            if r.idle {
                if self.idle_reported.insert(r.flow.local) {
                    newly.push(r);
                }
            } else {
                self.idle_reported.remove(&r.flow.local);
            }
        }
        newly
    }

    fn make_report(&self, flow: &Flow, installed_ns: u64, now: u64) -> FlowReport {
        let mut counters = self.backend.flow_counters(flow);
        if let Some(r) = &mut counters.rtcp {
            r.ms_ago = now.saturating_sub(r.seen_ns) / 1_000_000;
        }
        let since = counters
            .last_seen_ns
            .unwrap_or(installed_ns)
            .max(installed_ns);
        let idle_ns = now.saturating_sub(since);
        FlowReport {
            flow: flow.clone(),
            last_packet_ms_ago: counters
                .last_seen_ns
                .map(|t| now.saturating_sub(t) / 1_000_000),
            counters,
            idle_ms: idle_ns / 1_000_000,
            idle: idle_ns >= self.idle_timeout_ns,
        }
    }
}
