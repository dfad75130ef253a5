//! `#[repr(C)]` mirrors of the structs in `src/bpf/shared.h`.
//!
//! Ports are kept in network byte order exactly as the program sees them; the
//! constructors and accessors convert. A test checks every size and offset
//! against the C compiler's view of the header.

/// Version of the layout below; equals `TG_ABI_VERSION` in shared.h.
pub const ABI_VERSION: u64 = 4;

pub const AF_INET: u8 = 4;
pub const AF_INET6: u8 = 6;

pub const FLOW_LEARN: u16 = 1 << 0;
pub const FLOW_STRICT: u16 = 1 << 1;
pub const FLOW_EXPECT: u16 = 1 << 2;
pub const FLOW_FOLLOW: u16 = 1 << 3;
/// After the rewrite the frame goes to an AF_XDP worker (the flow's
/// `slot` of stages) instead of out of the egress interface.
pub const FLOW_PIPELINE: u16 = 1 << 4;

/// `tg_xsk_meta.magic`: the program wrote the metadata in front of a frame.
pub const XSK_META_MAGIC: u32 = 0x7467_786d;

/// A flow's match: the local address and UDP port packets are sent to.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FlowKey {
    pub addr: [u8; 16],
    /// Network byte order.
    pub port: u16,
    pub family: u8,
    pub pad: u8,
}

/// What the program does with a matching packet (see shared.h).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowAction {
    pub src_addr: [u8; 16],
    pub dst_addr: [u8; 16],
    pub expect_addr: [u8; 16],
    pub follow: FlowKey,
    pub src_port: u16,
    pub dst_port: u16,
    pub expect_port: u16,
    pub flags: u16,
    pub egress_ifindex: u32,
    pub clock_rate: u32,
    /// With [`FLOW_PIPELINE`]: the workers' index of the flow's stages.
    pub slot: u32,
}

/// What the program puts just before a pipeline frame's data in the UMEM
/// (`struct tg_xsk_meta`). The frame is already rewritten for `egress_ifindex`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct XskMeta {
    pub magic: u32,
    pub slot: u32,
    pub egress_ifindex: u32,
    pub ingress_ifindex: u32,
}

/// A source learned from a flow's first packet.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Learned {
    pub addr: [u8; 16],
    pub port: u16,
    pub pad: u16,
    pub pad2: u32,
    pub at_ns: u64,
}

/// Per-flow per-CPU counters written by the program.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowStats {
    pub packets: u64,
    pub bytes: u64,
    pub last_seen_ns: u64,
    pub dropped: u64,
}

/// A flow's RTP receive quality and RTCP figures (`struct tg_flow_quality`):
/// the raw state the program keeps, from which the data plane derives loss,
/// jitter and the remote report. `lock` is the program's `bpf_spin_lock`; the
/// kernel leaves it out of what a lookup copies.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FlowQuality {
    pub lock: u32,
    pub ssrc: u32,
    pub base_seq: u32,
    /// Highest sequence number, wrap count in the high 16 bits.
    pub ext_max: u32,
    pub prev_ts: u32,
    pub ssrc_changes: u32,
    pub received: u64,
    pub prev_ns: u64,
    /// Interarrival jitter in nanoseconds, times 16 (RFC 3550 A.8).
    pub jitter16_ns: u64,
    pub rtcp_packets: u64,
    pub sr_seen_ns: u64,
    /// The last SR's NTP timestamp, middle 32 bits.
    pub sr_ntp_mid: u32,
    pub reports: u32,
    /// Last report block: fraction lost << 24 | cumulative lost (24 bits).
    pub remote_lost: u32,
    pub remote_jitter: u32,
    pub rtt_ns: u64,
    pub rtt_samples: u32,
    /// SRs and RRs read: moves with each report kept below.
    pub rtcp_reports: u32,
    /// When the last one passed (CLOCK_MONOTONIC ns).
    pub rtcp_seen_ns: u64,
    /// 200 (SR) or 201 (RR).
    pub rtcp_type: u8,
    /// Its report count (RC).
    pub rtcp_count: u8,
    /// 1 when its first block was read (`remote_*`, `block_*`).
    pub rtcp_block: u8,
    pub pad: u8,
    pub rtcp_ssrc: u32,
    /// The last SR's sender info: NTP seconds and fraction, RTP timestamp,
    /// packet and octet counts.
    pub sr_ntp_msw: u32,
    pub sr_ntp_lsw: u32,
    pub sr_rtp_ts: u32,
    pub sr_packets: u32,
    pub sr_octets: u32,
    /// The last first block: its source, extended highest sequence number,
    /// LSR and DLSR.
    pub block_ssrc: u32,
    pub block_ext_seq: u32,
    pub block_lsr: u32,
    pub block_dlsr: u32,
    pub pad2: u32,
}

/// Global counters, in the order of `enum tg_counter`.
pub const COUNTER_NAMES: [&str; 15] = [
    "rx",
    "forwarded",
    "tx_same_interface",
    "pass_not_ip",
    "pass_not_udp",
    "pass_no_flow",
    "pass_malformed",
    "pass_fragment_or_options",
    "drop_source_mismatch",
    "drop_no_route",
    "drop_no_neighbour",
    "drop_no_egress",
    "to_worker",
    "drop_no_worker",
    "drop_no_metadata",
];

// SAFETY: all of them are plain `repr(C)` integers and byte arrays with explicit
// padding fields, so every bit pattern is valid and there are no implicit holes.
unsafe impl aya::Pod for FlowKey {}
unsafe impl aya::Pod for FlowAction {}
unsafe impl aya::Pod for Learned {}
unsafe impl aya::Pod for FlowStats {}
unsafe impl aya::Pod for FlowQuality {}
unsafe impl aya::Pod for XskMeta {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::mem::{offset_of, size_of};

    #[test]
    fn layouts_match_the_c_header() {
        let c = crate::host::layout();
        let rust: [u64; crate::host::LAYOUT_LEN] = [
            size_of::<FlowKey>() as u64,
            offset_of!(FlowKey, port) as u64,
            offset_of!(FlowKey, family) as u64,
            size_of::<FlowAction>() as u64,
            offset_of!(FlowAction, follow) as u64,
            offset_of!(FlowAction, src_port) as u64,
            offset_of!(FlowAction, flags) as u64,
            offset_of!(FlowAction, egress_ifindex) as u64,
            offset_of!(FlowAction, clock_rate) as u64,
            size_of::<Learned>() as u64,
            offset_of!(Learned, at_ns) as u64,
            size_of::<FlowStats>() as u64,
            offset_of!(FlowStats, dropped) as u64,
            COUNTER_NAMES.len() as u64,
            ABI_VERSION,
            offset_of!(FlowAction, expect_port) as u64,
            offset_of!(FlowAction, slot) as u64,
            size_of::<XskMeta>() as u64,
            offset_of!(XskMeta, slot) as u64,
            offset_of!(XskMeta, egress_ifindex) as u64,
            offset_of!(XskMeta, ingress_ifindex) as u64,
            XSK_META_MAGIC as u64,
            FLOW_PIPELINE as u64,
            size_of::<FlowQuality>() as u64,
            offset_of!(FlowQuality, ssrc) as u64,
            offset_of!(FlowQuality, received) as u64,
            offset_of!(FlowQuality, jitter16_ns) as u64,
            offset_of!(FlowQuality, sr_ntp_mid) as u64,
            offset_of!(FlowQuality, rtt_ns) as u64,
            offset_of!(FlowQuality, pad) as u64,
            offset_of!(FlowQuality, rtcp_reports) as u64,
            offset_of!(FlowQuality, rtcp_seen_ns) as u64,
            offset_of!(FlowQuality, rtcp_type) as u64,
            offset_of!(FlowQuality, block_dlsr) as u64,
            offset_of!(FlowQuality, pad2) as u64,
        ];
        assert_eq!(rust, c);
    }

    #[test]
    fn object_is_a_bpf_elf_with_the_program() {
        let obj = crate::OBJECT;
        assert_eq!(&obj[..4], b"\x7fELF");
        // e_machine at offset 18: EM_BPF = 247.
        assert_eq!(u16::from_le_bytes([obj[18], obj[19]]), 247);
        let name = crate::PROGRAM.as_bytes();
        assert!(obj.windows(name.len()).any(|w| w == name));
    }
}
