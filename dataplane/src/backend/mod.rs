//! Backends move packets for the flows in the flow table. Each one applies
//! flow changes and reports per-flow and global counters; the rest of the
//! data plane (control socket, idle detection) does not care which runs.
//!
//! - [`xdp`]: the whole forward in the driver hook, state in pinned BPF maps.
//! - [`socket`]: io_uring on pinned worker threads; portable, and the baseline.
//! - [`dpdk`]: ports given wholly to DPDK, polled by pinned workers that also
//!   answer ARP/NDP for the node (the `dpdk` feature).
//!
//! Future backends (AF_XDP, user-space media endpoints) implement the same
//! trait.

pub mod dpdk;
pub mod socket;
pub mod stats;
pub mod xdp;

use crate::flow::Flow;
use crate::pipeline::{Event, PipelineCounters};
use crate::quality::{Quality, RemoteReport, RtcpReport};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::net::SocketAddr;

/// What a backend measured for one flow.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlowCounters {
    pub packets: u64,
    pub bytes: u64,
    /// CLOCK_MONOTONIC nanoseconds of the last packet, if any arrived.
    #[serde(skip)]
    pub last_seen_ns: Option<u64>,
    /// Packets dropped because their source did not match (strict flows).
    pub dropped_source: u64,
    /// The source learned from the first packet (symmetric RTP).
    pub learned: Option<SocketAddr>,
    /// RTP receive quality of what the flow's sender sends (every backend
    /// reads the headers; None before the first RTP packet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtp: Option<Quality>,
    /// RTCP packets seen on the flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtcp_packets: Option<u64>,
    /// What the flow's sender reported in RTCP about the stream it receives,
    /// and the relay's round trip to it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteReport>,
    /// The last RTCP SR or RR the flow's sender sent, for export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtcp: Option<RtcpReport>,
}

/// What one packet worker did since it started, for `tollgate ctl workers`.
/// Counters are cumulative: a reader samples twice for rates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerReport {
    /// The worker's index in its backend.
    pub worker: usize,
    /// The core it is pinned to.
    pub core: usize,
    /// Flows this worker handles.
    pub flows: usize,
    pub rx_packets: u64,
    pub tx_packets: u64,
    /// Bytes of what it received and sent: UDP payloads on the socket
    /// backend, whole frames on DPDK and AF_XDP.
    #[serde(default)]
    pub rx_bytes: u64,
    #[serde(default)]
    pub tx_bytes: u64,
    /// Nanoseconds spent handling packets and timers (not waiting).
    pub busy_ns: u64,
    /// Nanoseconds since the worker started.
    pub uptime_ns: u64,
    /// Packets dropped, by reason, outside the pipeline's own counters.
    pub drops: std::collections::BTreeMap<Cow<'static, str>, u64>,
    /// The worker's media pipeline.
    pub pipeline: PipelineCounters,
}

/// A backend failed to apply a change.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("{0}")]
    Flow(#[from] crate::flow::FlowError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("BPF map `{map}`: {detail}")]
    Map { map: &'static str, detail: String },
    #[error("{0}")]
    Other(String),
}

pub trait Backend: Send {
    /// `xdp` or `socket`.
    fn name(&self) -> &'static str;
    /// Installs `flow`, replacing `previous` (same `local`) if there was one.
    fn put(&mut self, flow: &Flow, previous: Option<&Flow>) -> Result<(), BackendError>;
    /// Removes the flow matching `flow.local`.
    fn remove(&mut self, flow: &Flow) -> Result<(), BackendError>;
    /// Counters of an installed flow.
    fn flow_counters(&self, flow: &Flow) -> FlowCounters;
    /// Global counters by name (drops by reason, totals).
    fn counters(&self) -> Vec<(String, u64)>;
    /// Flows that were already installed when the backend started (state that
    /// outlived a restart of the process).
    fn adopted(&self) -> Vec<Flow>;
    /// Periodic housekeeping from the control path (about twice a second).
    fn maintain(&mut self) {}
    /// The packet workers (none where the kernel does all the work).
    fn workers(&self) -> Vec<WorkerReport> {
        Vec::new()
    }
    /// Events the pipeline stages reported since the last call.
    fn take_events(&mut self) -> Vec<Event> {
        Vec::new()
    }
}

/// Events a worker may queue before the control thread drains them; beyond
/// it they are counted lost (`events_lost`), never waited for.
pub const EVENT_QUEUE: usize = 4096;

/// Interface index of `name` in this network namespace, or None.
pub fn ifindex(name: &str) -> Option<u32> {
    let c = std::ffi::CString::new(name).ok()?;
    // SAFETY: c is a valid NUL-terminated string.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    (i != 0).then_some(i)
}

/// CLOCK_MONOTONIC now, in nanoseconds: the clock of `bpf_ktime_get_ns()`.
pub fn monotonic_ns() -> u64 {
    clock_ns(libc::CLOCK_MONOTONIC)
}

/// `clock` now, in nanoseconds.
pub fn clock_ns(clock: libc::clockid_t) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}
