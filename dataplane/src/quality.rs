//! Per-flow RTP receive quality and RTCP report reading, for the user-space
//! workers (socket, DPDK): sequence loss, interarrival jitter and SSRC
//! changes after RFC 3550 appendix A.1 (sequence tracking) and A.8 (jitter,
//! computed in nanoseconds), and from RTCP SR/RR the first report block
//! (remote loss and jitter) and a round trip from its LSR/DLSR; and the
//! last SR/RR itself ([`RtcpReport`]), which the control plane exports (HEP).
//!
//! The XDP program does the same in C (`ebpf/src/bpf/quality.h`) on the same
//! state, [`abi::FlowQuality`]; the BPF verifier runs only C, so the logic
//! exists twice, and a test feeds both the same packets and compares their
//! states field by field. [`Quality::of`] and [`RemoteReport::of`] derive
//! the figures from that state for every backend.
//!
//! A plain state machine: feed it each payload and its arrival time; read
//! the figures whenever.

use crate::wire::{rtcp, rtp};
use tollgate_ebpf::abi;

const NS: u64 = 1_000_000_000;
/// A jump of this many sequence numbers or more is a restart, not loss.
const MAX_DROPOUT: u16 = 3000;
const MAX_MISORDER: u16 = 100;
/// A transit change this large is a sender's timeline jump, not jitter.
const JITTER_MAX_D_NS: u64 = 10 * NS;

/// What the tracker has measured so far for the current SSRC (loss and
/// expected count) and over the flow's life (SSRC changes).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Quality {
    pub ssrc: u32,
    /// RTP packets received for the current SSRC.
    pub received: u64,
    /// Packets expected from the sequence numbers seen for the current SSRC.
    pub expected: u64,
    /// `expected - received`, never below zero (duplicates can exceed it).
    pub lost: u64,
    /// Interarrival jitter in RTP timestamp units (RFC 3550 A.8).
    pub jitter: u32,
    /// How many times the SSRC changed after the first one.
    pub ssrc_changes: u32,
}

impl Quality {
    /// The figures of a tracker's state for a clock of `clock_rate` Hz;
    /// None before the first RTP packet.
    pub fn of(s: &abi::FlowQuality, clock_rate: u32) -> Option<Quality> {
        if s.received == 0 {
            return None;
        }
        let expected = u64::from(s.ext_max.wrapping_sub(s.base_seq)) + 1;
        let jitter_ns = s.jitter16_ns >> 4;
        Some(Quality {
            ssrc: s.ssrc,
            received: s.received,
            expected,
            lost: expected.saturating_sub(s.received),
            jitter: (jitter_ns * u64::from(clock_rate) / NS) as u32,
            ssrc_changes: s.ssrc_changes,
        })
    }

    /// Jitter in microseconds for a clock of `clock_rate` Hz.
    pub fn jitter_us(&self, clock_rate: u32) -> u64 {
        if clock_rate == 0 {
            return 0;
        }
        self.jitter as u64 * 1_000_000 / clock_rate as u64
    }
}

/// What the flow's sender said about the stream it receives, in the last
/// report block of its RTCP SR/RR, and the relay's round trip to it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RemoteReport {
    /// Report blocks read.
    pub reports: u64,
    /// Fraction of packets lost since its previous report, in 1/256.
    pub fraction_lost: u8,
    /// Packets lost over the stream's life (may be negative with duplicates).
    pub cumulative_lost: i32,
    /// Interarrival jitter it measured, in RTP units of the stream it receives.
    pub jitter: u32,
    /// Relay -> this flow's sender -> relay: from a report's LSR/DLSR naming
    /// the last SR the relay saw pass towards it on the reverse flow.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rtt_us: Option<u64>,
}

impl RemoteReport {
    /// The report figures of a tracker's state; None before the first block.
    pub fn of(s: &abi::FlowQuality) -> Option<RemoteReport> {
        (s.reports > 0).then(|| RemoteReport {
            reports: u64::from(s.reports),
            fraction_lost: (s.remote_lost >> 24) as u8,
            cumulative_lost: ((s.remote_lost << 8) as i32) >> 8,
            jitter: s.remote_jitter,
            rtt_us: (s.rtt_samples > 0).then_some(s.rtt_ns / 1000),
        })
    }
}

/// The last RTCP SR or RR a flow's sender sent, as kept for export (HEP):
/// its header, an SR's sender info and the first report block (blocks
/// past it are not kept). `seq` counts the reports read on the flow, so
/// a reader polling the flow knows a new one by it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RtcpReport {
    /// SRs and RRs read on the flow, this one included.
    pub seq: u64,
    /// When it passed (CLOCK_MONOTONIC ns), in the data plane only.
    #[serde(skip)]
    pub seen_ns: u64,
    /// Milliseconds since it passed, when reported.
    #[serde(default)]
    pub ms_ago: u64,
    /// 200 (SR) or 201 (RR).
    pub packet_type: u8,
    /// Its sender's SSRC.
    pub ssrc: u32,
    /// Report blocks it said it carries (RC).
    pub report_count: u8,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sender: Option<SenderReport>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block: Option<BlockReport>,
}

/// An SR's sender info (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SenderReport {
    /// NTP timestamp: seconds, and the fraction of a second in 1/2^32.
    pub ntp_msw: u32,
    pub ntp_lsw: u32,
    pub rtp_ts: u32,
    pub packets: u32,
    pub octets: u32,
}

/// A report's first reception block (RFC 3550 6.4.1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BlockReport {
    /// The source it reports on.
    pub ssrc: u32,
    /// In 1/256, since the previous report.
    pub fraction_lost: u8,
    /// Cumulative, 24-bit signed.
    pub packets_lost: i32,
    /// Extended highest sequence number received.
    pub highest_seq: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    pub lsr: u32,
    /// 1/65536 s.
    pub dlsr: u32,
}

impl RtcpReport {
    /// The last report of a tracker's state; None before the first.
    pub fn of(s: &abi::FlowQuality) -> Option<RtcpReport> {
        (s.rtcp_reports > 0).then(|| RtcpReport {
            seq: u64::from(s.rtcp_reports),
            seen_ns: s.rtcp_seen_ns,
            ms_ago: 0,
            packet_type: s.rtcp_type,
            ssrc: s.rtcp_ssrc,
            report_count: s.rtcp_count,
            sender: (s.rtcp_type == rtcp::SR).then_some(SenderReport {
                ntp_msw: s.sr_ntp_msw,
                ntp_lsw: s.sr_ntp_lsw,
                rtp_ts: s.sr_rtp_ts,
                packets: s.sr_packets,
                octets: s.sr_octets,
            }),
            block: (s.rtcp_block != 0).then_some(BlockReport {
                ssrc: s.block_ssrc,
                fraction_lost: (s.remote_lost >> 24) as u8,
                packets_lost: ((s.remote_lost << 8) as i32) >> 8,
                highest_seq: s.block_ext_seq,
                jitter: s.remote_jitter,
                lsr: s.block_lsr,
                dlsr: s.block_dlsr,
            }),
        })
    }
}

/// What a payload was, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    Rtp,
    Rtcp,
    /// STUN, DTLS, anything else: not measured.
    Other,
}

/// Sequence, jitter and RTCP tracking for one flow.
#[derive(Debug, Clone)]
pub struct RtpTracker {
    clock_rate: u32,
    s: abi::FlowQuality,
}

impl RtpTracker {
    pub fn new(clock_rate: u32) -> Self {
        RtpTracker {
            clock_rate: clock_rate.max(1),
            s: abi::FlowQuality::default(),
        }
    }

    /// Measures one UDP payload that arrived at `now_ns` (CLOCK_MONOTONIC).
    /// `reverse_sr` gives the last SR seen on the reverse flow (NTP middle
    /// bits, when), asked only for a report block that names one.
    pub fn on_payload(
        &mut self,
        now_ns: u64,
        payload: &[u8],
        reverse_sr: impl FnOnce() -> Option<(u32, u64)>,
    ) -> Measured {
        if let Ok(r) = rtp::Packet::new_checked(payload) {
            self.on_packet(now_ns, r.ssrc(), r.sequence(), r.timestamp());
            Measured::Rtp
        } else if let Ok(r) = rtcp::Packet::new_checked(payload) {
            self.on_rtcp(now_ns, &r, reverse_sr);
            Measured::Rtcp
        } else {
            Measured::Other
        }
    }

    /// Accounts one RTP packet.
    pub fn on_packet(&mut self, now_ns: u64, ssrc: u32, seq: u16, timestamp: u32) {
        self.sequence(ssrc, seq);
        self.s.received += 1;
        if self.s.received > 1 {
            self.jitter(now_ns, timestamp);
        }
        self.s.prev_ns = now_ns;
        self.s.prev_ts = timestamp;
    }

    /// A.1: the highest sequence number, its wraps, and restarts on jumps.
    fn sequence(&mut self, ssrc: u32, seq: u16) {
        let s = &mut self.s;
        if s.received == 0 || ssrc != s.ssrc {
            if s.received > 0 {
                s.ssrc_changes += 1;
            }
            self.restart(ssrc, seq);
            return;
        }
        let max = s.ext_max as u16;
        let delta = seq.wrapping_sub(max);
        if delta != 0 && delta < MAX_DROPOUT {
            if seq < max {
                s.ext_max = s.ext_max.wrapping_add(1 << 16);
            }
            s.ext_max = (s.ext_max & 0xffff_0000) | u32::from(seq);
        } else if delta != 0 && delta <= u16::MAX - MAX_MISORDER {
            self.restart(ssrc, seq);
        }
        // else: a duplicate or reordered packet, counted as received only.
    }

    fn restart(&mut self, ssrc: u32, seq: u16) {
        let s = &mut self.s;
        s.ssrc = ssrc;
        s.base_seq = u32::from(seq);
        s.ext_max = u32::from(seq);
        s.received = 0;
        s.jitter16_ns = 0;
    }

    /// A.8 in nanoseconds: D = arrival gap - timestamp gap; J += (|D| - J) / 16.
    fn jitter(&mut self, now_ns: u64, timestamp: u32) {
        let s = &mut self.s;
        let dts = timestamp.wrapping_sub(s.prev_ts) as i32;
        let ts_ns = (u64::from(dts.unsigned_abs()) * NS / u64::from(self.clock_rate)) as i64;
        let d =
            (now_ns.wrapping_sub(s.prev_ns) as i64).wrapping_sub(ts_ns * i64::from(dts.signum()));
        let d = d.unsigned_abs();
        if d < JITTER_MAX_D_NS {
            s.jitter16_ns = s.jitter16_ns + d - ((s.jitter16_ns + 8) >> 4);
        }
    }

    /// Records an SR's timestamp and a report block's figures, and the round
    /// trip when the block's LSR names the reverse flow's last SR; of plain
    /// RTCP only (SRTCP's reports are encrypted).
    fn on_rtcp(
        &mut self,
        now_ns: u64,
        r: &rtcp::Packet<&[u8]>,
        reverse_sr: impl FnOnce() -> Option<(u32, u64)>,
    ) {
        let s = &mut self.s;
        s.rtcp_packets += 1;
        if !r.is_plain() {
            return;
        }
        keep(s, now_ns, r);
        if let Some(mid) = r.sr_ntp_middle() {
            s.sr_ntp_mid = mid;
            s.sr_seen_ns = now_ns;
        }
        let Some(b) = r.first_report_block() else {
            return;
        };
        s.reports += 1;
        s.remote_lost = b.lost;
        s.remote_jitter = b.jitter;
        if b.lsr == 0 {
            return;
        }
        let Some((mid, seen_ns)) = reverse_sr() else {
            return;
        };
        let held = (u64::from(b.dlsr) * NS) >> 16;
        match now_ns
            .checked_sub(seen_ns)
            .and_then(|e| e.checked_sub(held))
        {
            Some(rtt) if mid == b.lsr && seen_ns != 0 => {
                s.rtt_ns = rtt;
                s.rtt_samples += 1;
            }
            _ => {}
        }
    }

    pub fn report(&self) -> Option<RtcpReport> {
        RtcpReport::of(&self.s)
    }

    pub fn quality(&self) -> Option<Quality> {
        Quality::of(&self.s, self.clock_rate)
    }

    pub fn remote(&self) -> Option<RemoteReport> {
        RemoteReport::of(&self.s)
    }

    /// The raw state, laid out as the XDP program keeps it.
    pub fn state(&self) -> &abi::FlowQuality {
        &self.s
    }
}

/// Keeps a plain SR or RR (an SR too short for its sender info is none)
/// whole but for blocks past the first, as `tg_rtcp_keep` does.
fn keep(s: &mut abi::FlowQuality, now_ns: u64, r: &rtcp::Packet<&[u8]>) {
    let sender = r.sender_info();
    if sender.is_none() && r.packet_type() != rtcp::RR {
        return;
    }
    s.rtcp_reports += 1;
    s.rtcp_seen_ns = now_ns;
    s.rtcp_type = if sender.is_some() { rtcp::SR } else { rtcp::RR };
    s.rtcp_count = r.count();
    s.rtcp_ssrc = r.sender_ssrc();
    if let Some(i) = sender {
        (s.sr_ntp_msw, s.sr_ntp_lsw, s.sr_rtp_ts) = (i.ntp_msw, i.ntp_lsw, i.rtp_ts);
        (s.sr_packets, s.sr_octets) = (i.packets, i.octets);
    }
    let block = r.first_report_block();
    s.rtcp_block = u8::from(block.is_some());
    if let Some(b) = block {
        (s.block_ssrc, s.block_ext_seq) = (b.ssrc, b.ext_seq);
        (s.block_lsr, s.block_dlsr) = (b.lsr, b.dlsr);
    }
}

#[cfg(test)]
mod tests;
