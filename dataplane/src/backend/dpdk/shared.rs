//! What a DPDK worker shares with the control thread and the other
//! workers: per-flow and per-worker counters (one writer each, read by
//! anyone), a flow's learned source, and each port's neighbour table as
//! last published by the worker that polls the port.

use super::neighbour::{Interface, Table};
pub use crate::backend::stats::{Counter, FlowStats};
use arc_swap::ArcSwap;

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
    rx_bytes => "rx_bytes",
    tx_bytes => "tx_bytes",
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
