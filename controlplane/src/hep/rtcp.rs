//! RTCP reports to HEP: which of the data plane's flows carry a report not
//! exported yet, and the JSON body Homer reads for HEP payload type 5.
//!
//! How reports get here: the data plane keeps each flow's last SR/RR
//! (header, sender info, first block) with a count of the reports it read
//! (`FlowCounters::rtcp`), in the XDP program's quality entry and in the
//! user-space workers' flow counters alike. The control plane's sampler
//! already asks for every flow once a second; a flow whose count moved
//! since then has a new report, which is exported with the time it passed
//! the relay. So the fast path pays nothing per packet beyond the few
//! stores it makes for an RTCP packet anyway (no per-packet event, ring
//! or copy out of the XDP program), and the export costs one comparison
//! per flow per second. What it gives up: a flow sending reports faster
//! than once a second (RFC 3550 senders report every ~5 s) has only its
//! last report of each second exported; the others are counted in
//! `Counters::rtcp_superseded`. Blocks past the first are not kept.
//!
//! The body follows what rtpengine sends Homer (and heplify decodes
//! into): `{"type", "ssrc", "report_count", "sender_information":
//! {"ntp_timestamp_sec", "ntp_timestamp_usec", "rtp_timestamp", "packets",
//! "octets"}, "report_blocks": [{"source_ssrc", "fraction_lost",
//! "packets_lost", "highest_seq_no", "ia_jitter", "lsr", "dlsr"}]}`, each
//! field the report's own number as on the wire: `ntp_timestamp_usec` is
//! the NTP fraction (as both write it, whatever its name says),
//! `packets_lost` the 24-bit field. `sender_information` only for an SR.

use serde_json::json;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;
use tollgate_dataplane::quality::RtcpReport;
use tollgate_dataplane::table::FlowReport;

/// A report not exported yet, of the flow whose relay address is `local`,
/// sent by `peer`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fresh {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub report: RtcpReport,
    /// Reports the flow read since the one exported before, this one aside.
    pub superseded: u64,
}

/// What was exported of each flow: its report count then.
#[derive(Debug, Default)]
pub struct Cursor {
    seen: HashMap<SocketAddr, u64>,
}

impl Cursor {
    /// The reports in `flows` not exported yet. A flow seen for the first
    /// time has its report exported only when it passed within `recent`
    /// (since the previous poll): an older one was there before this
    /// process (a control plane restarted), and may have been exported.
    /// Flows no longer listed are forgotten.
    pub fn fresh(&mut self, flows: &[FlowReport], recent: Duration) -> Vec<Fresh> {
        let senders: HashMap<SocketAddr, SocketAddr> = flows
            .iter()
            .map(|r| (r.flow.source, r.flow.destination))
            .collect();
        let mut out = Vec::new();
        let mut seen = HashMap::with_capacity(flows.len());
        for r in flows {
            let Some(report) = r.counters.rtcp else {
                continue;
            };
            let local = r.flow.local;
            seen.insert(local, report.seq);
            let superseded = match self.seen.get(&local) {
                Some(&before) if before == report.seq => continue,
                Some(&before) => report.seq.saturating_sub(before + 1),
                None if report.ms_ago > recent.as_millis() as u64 => continue,
                None => 0,
            };
            // Its sender: what the flow learned, else what it expects, else
            // where the reverse flow (sending from this address) goes.
            let peer = r
                .counters
                .learned
                .or(r.flow.expect)
                .or_else(|| senders.get(&local).copied());
            let Some(peer) = peer else { continue };
            out.push(Fresh {
                peer,
                local,
                report,
                superseded,
            });
        }
        self.seen = seen;
        out
    }
}

/// The report as the JSON body of a HEP RTCP packet (module doc).
pub fn body(r: &RtcpReport) -> Vec<u8> {
    let blocks: Vec<serde_json::Value> = r
        .block
        .iter()
        .map(|b| {
            json!({
                "source_ssrc": b.ssrc,
                "fraction_lost": b.fraction_lost,
                "packets_lost": (b.packets_lost as u32) & 0xff_ffff,
                "highest_seq_no": b.highest_seq,
                "ia_jitter": b.jitter,
                "lsr": b.lsr,
                "dlsr": b.dlsr,
            })
        })
        .collect();
    let mut j = json!({
        "type": r.packet_type,
        "ssrc": r.ssrc,
        "report_count": r.report_count,
        "report_blocks": blocks,
    });
    if let Some(s) = r.sender {
        j["sender_information"] = json!({
            "ntp_timestamp_sec": s.ntp_msw,
            "ntp_timestamp_usec": s.ntp_lsw,
            "rtp_timestamp": s.rtp_ts,
            "packets": s.packets,
            "octets": s.octets,
        });
    }
    j.to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tollgate_dataplane::backend::FlowCounters;
    use tollgate_dataplane::flow::Flow;
    use tollgate_dataplane::quality::{BlockReport, SenderReport};

    fn flow(local: u16, source: u16, destination: &str, seq: Option<u64>) -> FlowReport {
        let a = |p: u16| SocketAddr::from(([192, 0, 2, 1], p));
        let flow = Flow::relay(a(local), a(source), destination.parse().unwrap());
        let rtcp = seq.map(|seq| RtcpReport {
            seq,
            ms_ago: 300,
            packet_type: 201,
            ..RtcpReport::default()
        });
        FlowReport {
            flow,
            counters: FlowCounters {
                rtcp,
                ..FlowCounters::default()
            },
            last_packet_ms_ago: None,
            idle_ms: 0,
            idle: false,
        }
    }

    #[test]
    fn a_report_is_fresh_once_and_its_sender_is_the_reverse_flows_destination() {
        let mut c = Cursor::default();
        // 30000 (from A) <-> 30002 (from B): B's flow sends from 30000 to A.
        let mut flows = vec![
            flow(30000, 30002, "198.51.100.2:4000", Some(1)),
            flow(30002, 30000, "198.51.100.1:5000", None),
        ];
        let got = c.fresh(&flows, Duration::from_secs(1));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].peer, "198.51.100.1:5000".parse().unwrap());
        assert!(c.fresh(&flows, Duration::from_secs(1)).is_empty());
        flows[0].counters.rtcp.as_mut().unwrap().seq = 4;
        let got = c.fresh(&flows, Duration::from_secs(1));
        assert_eq!((got.len(), got[0].superseded), (1, 2));
        // A learned source wins; a new flow's old report is not exported.
        flows[0].counters.learned = "203.0.113.9:7000".parse().ok();
        flows[0].counters.rtcp.as_mut().unwrap().seq = 5;
        flows.push(flow(30004, 30006, "198.51.100.3:6000", Some(9)));
        let got = c.fresh(&flows, Duration::from_millis(100));
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].peer, "203.0.113.9:7000".parse().unwrap());
    }

    #[test]
    fn the_body_is_homers_rtcp_json() {
        let r = RtcpReport {
            seq: 1,
            packet_type: 200,
            ssrc: 0xdead_beef,
            report_count: 1,
            sender: Some(SenderReport {
                ntp_msw: 3_900_000_000,
                ntp_lsw: 1 << 31,
                rtp_ts: 160,
                packets: 50,
                octets: 8000,
            }),
            block: Some(BlockReport {
                ssrc: 7,
                fraction_lost: 12,
                packets_lost: -1,
                highest_seq: 70_000,
                jitter: 40,
                lsr: 0x1234_5678,
                dlsr: 0x8000,
            }),
            ..RtcpReport::default()
        };
        let j: serde_json::Value = serde_json::from_slice(&body(&r)).unwrap();
        assert_eq!(
            j,
            json!({"type": 200, "ssrc": 0xdead_beef_u32, "report_count": 1,
                "sender_information": {"ntp_timestamp_sec": 3_900_000_000_u32,
                    "ntp_timestamp_usec": 1_u32 << 31, "rtp_timestamp": 160, "packets": 50,
                    "octets": 8000},
                "report_blocks": [{"source_ssrc": 7, "fraction_lost": 12,
                    "packets_lost": 0xff_ffff, "highest_seq_no": 70_000, "ia_jitter": 40,
                    "lsr": 0x1234_5678, "dlsr": 0x8000}]})
        );
        let rr = RtcpReport {
            packet_type: 201,
            sender: None,
            block: None,
            ..r
        };
        let j: serde_json::Value = serde_json::from_slice(&body(&rr)).unwrap();
        assert!(j.get("sender_information").is_none(), "{j}");
        assert_eq!(j["report_blocks"], json!([]));
    }
}
