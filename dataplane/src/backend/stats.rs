//! Counters shared between a packet worker and the control thread, for
//! the backends whose workers run in user space (socket, DPDK): each has one
//! writer (the worker), any number of readers, and a flow's learned source;
//! and the measuring of a flow's payloads that both workers share.

use super::FlowCounters;
use crate::quality::{Measured, Quality, RemoteReport, RtcpReport, RtpTracker};
use arc_swap::ArcSwapOption;
use std::net::SocketAddr;
use std::sync::atomic::{fence, AtomicU64, Ordering};
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
    /// The last SR/RR ([`LastRtcp`]), behind its own sequence lock.
    last_rtcp: LastRtcp,
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
        if u64::from(s.rtcp_reports) != self.last_rtcp.reports() {
            self.last_rtcp.publish(s);
        }
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
            rtcp: self.last_rtcp.read(),
        }
    }
}

/// A flow's last SR/RR, published by its worker and read by the control
/// thread whole: a single-writer sequence lock (odd while the worker
/// writes; a reader that saw it move reads again), so a report is never
/// torn and the worker never waits.
#[derive(Debug, Default)]
struct LastRtcp {
    version: AtomicU64,
    reports: Counter,
    seen_ns: Counter,
    /// type << 40 | count << 32 | sender SSRC, and bit 48 when the first
    /// block was read.
    head: Counter,
    /// SR sender info: NTP seconds << 32 | fraction, RTP timestamp << 32 |
    /// packets, octets.
    sender: [Counter; 3],
    /// First block: source SSRC << 32 | extended highest sequence, LSR << 32
    /// | DLSR, fraction and cumulative lost << 32 | jitter.
    block: [Counter; 3],
}

impl LastRtcp {
    fn reports(&self) -> u64 {
        self.reports.get()
    }

    fn publish(&self, s: &abi::FlowQuality) {
        let hi = |a: u32, b: u32| (u64::from(a) << 32) | u64::from(b);
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        self.reports.set(u64::from(s.rtcp_reports));
        self.seen_ns.set(s.rtcp_seen_ns);
        let head = (u64::from(s.rtcp_block) << 48)
            | (u64::from(s.rtcp_type) << 40)
            | (u64::from(s.rtcp_count) << 32)
            | u64::from(s.rtcp_ssrc);
        self.head.set(head);
        self.sender[0].set(hi(s.sr_ntp_msw, s.sr_ntp_lsw));
        self.sender[1].set(hi(s.sr_rtp_ts, s.sr_packets));
        self.sender[2].set(u64::from(s.sr_octets));
        self.block[0].set(hi(s.block_ssrc, s.block_ext_seq));
        self.block[1].set(hi(s.block_lsr, s.block_dlsr));
        self.block[2].set(hi(s.remote_lost, s.remote_jitter));
        self.version.store(v + 2, Ordering::Release);
    }

    /// The report, read again (a few times at most) while the worker was
    /// writing it.
    fn read(&self) -> Option<RtcpReport> {
        for _ in 0..4 {
            let v = self.version.load(Ordering::Acquire);
            if v % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let state = self.state();
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) == v {
                return RtcpReport::of(&state);
            }
        }
        None
    }

    fn state(&self) -> abi::FlowQuality {
        let (lo, hi) = (|w: u64| w as u32, |w: u64| (w >> 32) as u32);
        let head = self.head.get();
        let [s0, s1, s2] = [0, 1, 2].map(|i| self.sender[i].get());
        let [b0, b1, b2] = [0, 1, 2].map(|i| self.block[i].get());
        abi::FlowQuality {
            rtcp_reports: self.reports.get() as u32,
            rtcp_seen_ns: self.seen_ns.get(),
            rtcp_block: (head >> 48) as u8,
            rtcp_type: (head >> 40) as u8,
            rtcp_count: (head >> 32) as u8,
            rtcp_ssrc: lo(head),
            sr_ntp_msw: hi(s0),
            sr_ntp_lsw: lo(s0),
            sr_rtp_ts: hi(s1),
            sr_packets: lo(s1),
            sr_octets: lo(s2),
            block_ssrc: hi(b0),
            block_ext_seq: lo(b0),
            block_lsr: hi(b1),
            block_dlsr: lo(b1),
            remote_lost: hi(b2),
            remote_jitter: lo(b2),
            ..Default::default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_workers_last_report_reads_back_whole() {
        let (stats, mut tracker) = (FlowStats::default(), RtpTracker::new(8000));
        assert_eq!(stats.counters().rtcp, None);
        // SR from 0x5e: NTP 1.5, RTP ts 160, 3 packets, 480 octets; one block
        // on source 9: 1/256 lost, 2 cumulative, ext seq 70000, jitter 12.
        let mut sr = vec![0x81, 200, 0, 12, 0, 0, 0, 0x5e, 0, 0, 0, 1, 0x80, 0, 0, 0];
        for w in [160u32, 3, 480, 9, 0x0100_0002, 70_000, 12, 0xabcd, 0x10] {
            sr.extend(w.to_be_bytes());
        }
        stats.measure(&mut tracker, None, &sr, 1_000);
        let got = stats.counters().rtcp.expect("the SR");
        assert_eq!(Some(got), tracker.report());
        let b = got.block.unwrap();
        assert_eq!(
            (b.ssrc, b.packets_lost, b.highest_seq, b.lsr),
            (9, 2, 70_000, 0xabcd)
        );
        assert_eq!(
            got.sender.map(|s| (s.ntp_lsw, s.octets)),
            Some((0x8000_0000, 480))
        );
    }
}
