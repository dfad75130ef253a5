//! What the receivers measure, per stream and in total: packets lost,
//! duplicated and reordered, one-way latency through the relay (send time in
//! the payload to the kernel's receive timestamp; an HDR histogram), and
//! RFC 3550 interarrival jitter.

use hdrhistogram::Histogram;
use serde::Serialize;
use std::time::Duration;
use tollgate_dataplane::quality::RtpTracker;

struct Stream {
    seen: Vec<u64>,
    highest: Option<u32>,
    tracker: RtpTracker,
}

pub struct Receiver {
    streams: Vec<Stream>,
    per_stream: u64,
    latency: Histogram<u64>,
    received: u64,
    duplicates: u64,
    reordered: u64,
    foreign: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Latency {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct TrafficResult {
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub duplicates: u64,
    pub reordered: u64,
    /// Packets that were not ours (wrong length, stream or sequence).
    pub foreign: u64,
    pub latency_us: Latency,
    pub jitter_ms_mean: f64,
    pub jitter_ms_max: f64,
    /// Sends more than 5 ms behind schedule: the generator fell behind.
    pub late_sends: u64,
    pub max_late_ms: f64,
    pub send_failed: u64,
    /// Packets per second the generator actually offered: those the kernel
    /// took, over the time from the first one due to the last one sent (one
    /// period longer than the last is due). Below the offered rate, the
    /// generator saturated.
    pub achieved_pps: f64,
    /// Latency histogram: (upper bound in µs, packets) for plots.
    pub latency_histogram: Vec<(u64, u64)>,
}

/// What the generator did, for [`Receiver::finish`].
#[derive(Debug, Clone, Default)]
pub struct SendStats {
    pub sent: u64,
    /// Sends later than the lateness bound, and the latest.
    pub late: u64,
    pub max_late: Duration,
    /// Packets the kernel refused.
    pub failed: u64,
    /// From the first packet's due time to the last send, plus one period.
    pub span: Duration,
}

impl Receiver {
    pub fn new(streams: usize, per_stream: u64) -> Self {
        let words = per_stream.div_ceil(64) as usize;
        Receiver {
            streams: (0..streams)
                .map(|_| Stream {
                    seen: vec![0; words],
                    highest: None,
                    tracker: RtpTracker::new(8000),
                })
                .collect(),
            per_stream,
            latency: Histogram::new_with_bounds(1, 60_000_000, 3).expect("histogram bounds"),
            received: 0,
            duplicates: 0,
            reordered: 0,
            foreign: 0,
        }
    }

    pub fn received(&self) -> u64 {
        self.received
    }

    /// One received packet and its arrival time (CLOCK_REALTIME ns).
    pub fn packet(&mut self, p: &[u8], at_ns: u64) {
        if p.len() < 28 {
            self.foreign += 1;
            return;
        }
        let stream = u32::from_be_bytes([p[12], p[13], p[14], p[15]]) as usize;
        let n = u32::from_be_bytes([p[16], p[17], p[18], p[19]]);
        let sent = u64::from_be_bytes(p[20..28].try_into().expect("8 bytes"));
        if stream >= self.streams.len() || n as u64 >= self.per_stream {
            self.foreign += 1;
            return;
        }
        let s = &mut self.streams[stream];
        let (w, bit) = ((n / 64) as usize, 1u64 << (n % 64));
        if s.seen[w] & bit != 0 {
            self.duplicates += 1;
            return;
        }
        s.seen[w] |= bit;
        self.received += 1;
        match s.highest {
            Some(h) if n < h => self.reordered += 1,
            _ => s.highest = Some(n),
        }
        let _ = self
            .latency
            .record((at_ns.saturating_sub(sent) / 1000).clamp(1, 60_000_000));
        let ssrc = u32::from_be_bytes([p[8], p[9], p[10], p[11]]);
        let ts = u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        s.tracker
            .on_packet(at_ns, ssrc, u16::from_be_bytes([p[2], p[3]]), ts);
    }

    pub fn finish(self, send: &SendStats) -> TrafficResult {
        let sent = send.sent;
        let h = &self.latency;
        let jitters: Vec<f64> = self
            .streams
            .iter()
            .filter(|s| s.highest.is_some())
            .filter_map(|s| s.tracker.quality())
            .map(|q| q.jitter as f64 / 8.0)
            .collect();
        let mut hist = Vec::new();
        if !h.is_empty() {
            for v in h.iter_log(10, 1.25) {
                if v.count_since_last_iteration() > 0 {
                    hist.push((v.value_iterated_to(), v.count_since_last_iteration()));
                }
            }
        }
        TrafficResult {
            sent,
            received: self.received,
            lost: sent.saturating_sub(self.received),
            duplicates: self.duplicates,
            reordered: self.reordered,
            foreign: self.foreign,
            latency_us: if h.is_empty() {
                Latency::default()
            } else {
                Latency {
                    p50: h.value_at_quantile(0.5),
                    p90: h.value_at_quantile(0.9),
                    p99: h.value_at_quantile(0.99),
                    p999: h.value_at_quantile(0.999),
                    max: h.max(),
                    mean: h.mean(),
                }
            },
            jitter_ms_mean: if jitters.is_empty() {
                0.0
            } else {
                jitters.iter().sum::<f64>() / jitters.len() as f64
            },
            jitter_ms_max: jitters.iter().cloned().fold(0.0, f64::max),
            late_sends: send.late,
            max_late_ms: send.max_late.as_secs_f64() * 1000.0,
            send_failed: send.failed,
            achieved_pps: sent.saturating_sub(send.failed) as f64
                / send.span.as_secs_f64().max(1e-9),
            latency_histogram: hist,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::traffic::{packet, PACKET_LEN};

    #[test]
    fn counts_loss_duplicates_reordering_and_latency() {
        let mut rx = Receiver::new(2, 10);
        let mut buf = [0u8; PACKET_LEN];
        let t0 = 1_000_000_000_000u64;
        for n in [0u32, 1, 3, 2, 2, 5] {
            packet(&mut buf, 1, n, t0 + n as u64 * 20_000_000);
            rx.packet(&buf, t0 + n as u64 * 20_000_000 + 250_000); // 250 µs in flight
        }
        rx.packet(&buf[..10], t0); // not ours
        packet(&mut buf, 7, 0, t0); // no such stream
        rx.packet(&buf, t0);
        let r = rx.finish(&SendStats {
            sent: 20,
            failed: 4,
            span: Duration::from_secs(2),
            ..Default::default()
        });
        assert_eq!(
            (r.received, r.lost, r.duplicates, r.reordered, r.foreign),
            (5, 15, 1, 1, 2)
        );
        assert!(
            (245..=255).contains(&r.latency_us.p50),
            "{:?}",
            r.latency_us
        );
        assert_eq!(r.latency_histogram.iter().map(|(_, c)| c).sum::<u64>(), 5);
        assert_eq!(r.achieved_pps, 8.0, "16 packets taken in 2 s");
    }
}
