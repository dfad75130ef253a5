//! What a DPDK worker shares with the control thread and the other
//! workers: per-flow and per-worker counters (one writer each, read by
//! anyone), a flow's learned source, and each port's neighbour table as
//! last published by the worker that polls the port.

use super::neighbour::{Interface, Table};
use crate::quality::Quality;
use arc_swap::{ArcSwap, ArcSwapOption};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

/// A counter with a single writer: plain load and store, no locked
/// read-modify-write on the packet path.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1)
    }
    pub fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        )
    }
    pub fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed)
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// One flow's counters and learned source.
#[derive(Debug, Default)]
pub struct FlowStats {
    pub packets: Counter,
    pub bytes: Counter,
    pub last_seen_ns: Counter,
    pub dropped_source: Counter,
    pub rtcp_packets: Counter,
    rtp_ssrc: Counter,
    rtp_received: Counter,
    rtp_expected: Counter,
    rtp_lost: Counter,
    rtp_jitter: Counter,
    rtp_ssrc_changes: Counter,
    /// Set from the first packet when the flow learns; cleared when it changes.
    pub learned: ArcSwapOption<SocketAddr>,
}

impl FlowStats {
    pub fn publish_rtp(&self, q: &Quality) {
        self.rtp_ssrc.set(q.ssrc as u64);
        self.rtp_received.set(q.received);
        self.rtp_expected.set(q.expected);
        self.rtp_lost.set(q.lost);
        self.rtp_jitter.set(q.jitter as u64);
        self.rtp_ssrc_changes.set(q.ssrc_changes as u64);
    }

    pub fn rtp(&self) -> Option<Quality> {
        let received = self.rtp_received.get();
        (received > 0).then(|| Quality {
            ssrc: self.rtp_ssrc.get() as u32,
            received,
            expected: self.rtp_expected.get(),
            lost: self.rtp_lost.get(),
            jitter: self.rtp_jitter.get() as u32,
            ssrc_changes: self.rtp_ssrc_changes.get() as u32,
        })
    }
}

macro_rules! worker_counters {
    ($($field:ident => $name:literal),* $(,)?) => {
        /// Totals of one worker; the backend sums them over workers.
        #[derive(Debug, Default)]
        pub struct WorkerStats {
            $(pub $field: Counter,)*
            /// Nanoseconds spent on bursts that had work.
            pub busy_ns: Counter,
            /// Nanoseconds since the worker started.
            pub uptime_ns: Counter,
            /// Flows this worker holds.
            pub flows: Counter,
            pub pipeline: crate::pipeline::SharedCounters,
        }

        impl WorkerStats {
            pub fn named(&self) -> Vec<(&'static str, u64)> {
                vec![$(($name, self.$field.get()),)*]
            }
        }
    };
}

worker_counters! {
    rx => "rx",
    tx => "tx",
    forwarded => "forwarded",
    no_flow => "drop_no_flow",
    drop_source => "drop_source_mismatch",
    malformed => "drop_malformed",
    fragment => "drop_fragment",
    not_ip => "drop_not_ip",
    not_udp => "drop_not_udp",
    own => "drop_own_frames",
    multi_segment => "drop_multi_segment",
    no_route => "drop_no_route",
    no_neighbour => "drop_no_neighbour",
    tx_full => "drop_tx_full",
    no_mbuf => "drop_no_mbuf",
    pipeline_drops => "drop_pipeline",
    held => "held_for_neighbour",
    arp_answered => "arp_requests_answered",
    ndp_answered => "neighbour_solicitations_answered",
    solicits => "neighbour_requests_sent",
    learned => "neighbours_learned",
    ignored => "neighbour_ignored",
    announcements => "neighbour_announcements",
    neighbour_malformed => "neighbour_malformed",
}

/// A port as the workers see it.
pub struct PortCtx {
    /// The DPDK port id.
    pub id: u16,
    /// Receive queues, all polled by `poller`.
    pub rx_queues: u16,
    pub name: String,
    pub iface: Interface,
    /// The worker that polls the port's receive queue.
    pub poller: usize,
    /// Its neighbours, published by `poller`.
    pub neighbours: ArcSwap<Table>,
}
