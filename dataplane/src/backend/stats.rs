//! Counters shared between a packet worker and the control thread, for
//! the backends whose workers run in user space (socket, DPDK): each has one
//! writer (the worker), any number of readers, and a flow's learned source;
//! and the measuring of a flow's payloads that both workers share.

use super::FlowCounters;
use crate::quality::{Measured, Quality, RemoteReport, RtpTracker};
use arc_swap::ArcSwapOption;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use tollgate_ebpf::abi;

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
    /// The last SR seen on the flow, for the reverse flow's round trip.
    sr_ntp_mid: Counter,
    sr_seen_ns: Counter,
    remote_reports: Counter,
    remote_lost: Counter,
    remote_jitter: Counter,
    rtt_ns: Counter,
    rtt_samples: Counter,
    /// Set from the first packet when the flow learns; cleared when it changes.
    pub learned: ArcSwapOption<SocketAddr>,
}

impl FlowStats {
    /// Measures an admitted packet's payload with the flow's tracker and
    /// publishes the figures; `follow` is the reverse flow's (whose SRs a
    /// report on this flow may name).
    pub fn measure(
        &self,
        tracker: &mut RtpTracker,
        follow: Option<&FlowStats>,
        payload: &[u8],
        now: u64,
    ) {
        let reverse_sr = || follow.map(|f| (f.sr_ntp_mid.get() as u32, f.sr_seen_ns.get()));
        match tracker.on_payload(now, payload, reverse_sr) {
            Measured::Rtp => {
                if let Some(q) = tracker.quality() {
                    self.publish_rtp(&q)
                }
            }
            Measured::Rtcp => self.publish_rtcp(tracker.state()),
            Measured::Other => {}
        }
    }

    fn publish_rtcp(&self, s: &abi::FlowQuality) {
        self.rtcp_packets.set(s.rtcp_packets);
        self.sr_ntp_mid.set(u64::from(s.sr_ntp_mid));
        self.sr_seen_ns.set(s.sr_seen_ns);
        self.remote_reports.set(u64::from(s.reports));
        self.remote_lost.set(u64::from(s.remote_lost));
        self.remote_jitter.set(u64::from(s.remote_jitter));
        self.rtt_ns.set(s.rtt_ns);
        self.rtt_samples.set(u64::from(s.rtt_samples));
    }

    fn remote(&self) -> Option<RemoteReport> {
        RemoteReport::of(&abi::FlowQuality {
            reports: self.remote_reports.get() as u32,
            remote_lost: self.remote_lost.get() as u32,
            remote_jitter: self.remote_jitter.get() as u32,
            rtt_ns: self.rtt_ns.get(),
            rtt_samples: self.rtt_samples.get() as u32,
            ..Default::default()
        })
    }

    fn publish_rtp(&self, q: &Quality) {
        self.rtp_ssrc.set(q.ssrc as u64);
        self.rtp_received.set(q.received);
        self.rtp_expected.set(q.expected);
        self.rtp_lost.set(q.lost);
        self.rtp_jitter.set(q.jitter as u64);
        self.rtp_ssrc_changes.set(q.ssrc_changes as u64);
    }

    fn rtp(&self) -> Option<Quality> {
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

impl FlowStats {
    /// What the control socket reports for the flow.
    pub fn counters(&self) -> FlowCounters {
        let last = self.last_seen_ns.get();
        FlowCounters {
            packets: self.packets.get(),
            bytes: self.bytes.get(),
            last_seen_ns: (last != 0).then_some(last),
            dropped_source: self.dropped_source.get(),
            learned: self.learned.load().as_deref().copied(),
            rtp: self.rtp(),
            rtcp_packets: Some(self.rtcp_packets.get()),
            remote: self.remote(),
        }
    }
}

/// Global counters summed over workers, each giving its counters by name
/// in the same order.
pub fn sum_by_name<'a>(
    workers: impl IntoIterator<Item = Vec<(&'a str, u64)>>,
) -> Vec<(String, u64)> {
    let mut totals: Vec<(String, u64)> = Vec::new();
    for named in workers {
        for (i, (name, v)) in named.into_iter().enumerate() {
            match totals.get_mut(i) {
                Some(t) => t.1 += v,
                None => totals.push((name.to_string(), v)),
            }
        }
    }
    totals
}
